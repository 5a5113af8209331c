#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| esprit_controld::ike_fuzz::ike_dispatch(data));
