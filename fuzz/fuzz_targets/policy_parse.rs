#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| esprit_policy::fuzz::policy_parse(data));
