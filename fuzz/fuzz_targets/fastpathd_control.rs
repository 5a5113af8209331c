#![no_main]
use std::sync::{Mutex, OnceLock};

use esprit_fastpathd::fuzz::ControlHarness;

// One management state per process: installed VPNs and SAs carry over
// between inputs, as they do over a real connection's life.
static HARNESS: OnceLock<Mutex<ControlHarness>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let h = HARNESS.get_or_init(|| Mutex::new(ControlHarness::new()));
    h.lock().unwrap_or_else(|e| e.into_inner()).run(data);
});
