//! Replays the kept fuzz corpus of the control API through the same entry
//! point the fuzzer uses, so every build on stable re-checks it.

use std::path::Path;

use esprit_fastpathd::fuzz::{control_lines, ControlHarness};

#[test]
fn replay_fastpathd_control_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/fastpathd_control");
    let mut n = 0;
    // One harness over all inputs, as the fuzz target keeps one per process.
    let mut h = ControlHarness::new();
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        h.run(&data);
        // Cut inside every line: a truncated last request.
        for (i, _) in data.iter().enumerate().filter(|(_, b)| **b == b'\n') {
            control_lines(&data[..i.saturating_sub(5)]);
        }
        n += 1;
    }
    assert!(n >= 5, "corpus at {} has only {n} inputs", dir.display());
    assert!(h.replies > 40 && h.refused >= 4, "replies {} refused {}", h.replies, h.refused);
}

#[test]
fn an_oversized_line_is_refused_without_being_buffered() {
    let mut h = ControlHarness::new();
    let mut data = vec![b' '; (1 << 20) + 10];
    data.push(b'\n');
    h.run(&data);
    assert_eq!((h.replies, h.refused), (0, 1));
}
