#![no_main]
use std::sync::{Mutex, OnceLock};

use esprit_dataplane::{fuzz, Worker};

// One lab gateway B per process: building one allocates its hold pool,
// and its replay windows and hold queue filling up is state worth fuzzing.
static GATEWAY: OnceLock<Mutex<Worker>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let w = GATEWAY.get_or_init(|| Mutex::new(fuzz::lab_gateway()));
    fuzz::worker_burst(&mut w.lock().unwrap_or_else(|e| e.into_inner()), data);
});
