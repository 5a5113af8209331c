#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| esprit_wire::fuzz::parse_frame(data));
