#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| esprit_config::fuzz::config_line(data));
