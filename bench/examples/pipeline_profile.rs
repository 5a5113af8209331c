//! Runs the in-memory encrypt pipeline (lab gateway A, AES-128-GCM, 64 B
//! payload) for a fixed number of bursts, for instruction-level profiling:
//!
//! ```text
//! cargo build --profile bench -p esprit-bench --example pipeline_profile
//! valgrind --tool=callgrind target/release/examples/pipeline_profile 2000
//! callgrind_annotate --inclusive=yes callgrind.out.* | head -40
//! ```
#![allow(clippy::expect_used)]

use std::time::Instant;

use esprit_dataplane::lab::{self, LabOptions, Side, LAN};
use esprit_dataplane::{Action, VecFrame, VecOutput};

fn main() {
    let bursts: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let decrypt = std::env::args().nth(2).is_some_and(|a| a == "decrypt");
    let opts = LabOptions { replay_window: 0, ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let mut b = lab::gateway(Side::B, &opts);
    let frame = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 64 - 28);
    let pristine: Vec<VecFrame> = (0..64).map(|_| VecFrame::new(2048, 256, &frame)).collect();
    let mut out = VecOutput::default();
    let mut actions = vec![Action::Held; 64];
    let now = Instant::now();
    // Encrypted copies for the decrypt run.
    let mut wire = pristine.clone();
    a.process_burst(now, LAN, &mut wire, &mut actions, &mut out);
    let wire: Vec<VecFrame> =
        wire.iter().map(|f| VecFrame::new(2048, 256, &f.buf[f.head..f.head + f.len])).collect();
    let mut frames = pristine.clone();
    let mut sent = 0u64;
    for _ in 0..bursts {
        if decrypt {
            frames.clone_from(&wire);
            b.process_burst(now, lab::WAN, &mut frames, &mut actions, &mut out);
        } else {
            frames.clone_from(&pristine);
            a.process_burst(now, LAN, &mut frames, &mut actions, &mut out);
        }
        sent += actions.iter().filter(|x| matches!(x, Action::Tx(_))).count() as u64;
    }
    println!("{sent} packets out of {}", bursts * 64);
}
