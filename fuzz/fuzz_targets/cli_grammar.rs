#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| esprit_controld::fuzz::cli_grammar(data));
