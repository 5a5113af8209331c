#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| esprit_ike::fuzz::ike_message(data));
