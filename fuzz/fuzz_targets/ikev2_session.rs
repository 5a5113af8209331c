#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| esprit_ike::v2::fuzz_session::ikev2_session(data));
