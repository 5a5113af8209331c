#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| esprit_ike::v2::fuzz::x509_certificate(data));
