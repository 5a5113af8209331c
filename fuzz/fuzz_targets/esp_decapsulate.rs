#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| esprit_esp::fuzz::esp_decapsulate(data));
