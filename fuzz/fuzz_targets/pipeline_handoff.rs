#![no_main]
use std::sync::{Mutex, OnceLock};

use esprit_dataplane::fuzz::{self, HubPair};

// One hub of two workers per process: replay windows, reassembly slots and
// hold queues filling up across inputs is state worth fuzzing.
static HUB: OnceLock<Mutex<HubPair>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let h = HUB.get_or_init(|| Mutex::new(HubPair::default()));
    fuzz::hub_bursts(&mut h.lock().unwrap_or_else(|e| e.into_inner()), data);
});
