//! Replays the kept `ike_message` fuzz corpus through the entry point the
//! fuzzer uses, so every build on stable re-checks the inputs that once
//! mattered; and writes the seeds (run the ignored test to regenerate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use esprit_ike::fuzz;
use esprit_ike::wire::{ExchangeType, Header};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ike_message")
}

#[test]
fn replay_ike_message_corpus() {
    let dir = corpus_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        fuzz::ike_message(&data);
        // Every prefix too: truncation is where parsers break.
        for cut in 0..data.len() {
            fuzz::ike_message(&data[..cut]);
        }
        n += 1;
    }
    assert!(n >= 5, "corpus at {} has only {n} inputs", dir.display());
}

/// Writes the seeds from the recorded exchanges of the fuzzed peers: each
/// message alone (MM1..MM6 or AM1..AM3, QM1..QM3, DPD, Delete), and each
/// side's messages in order, which the fuzzed peer replays validly.
///
/// `cargo test -p esprit-ike --test fuzz_corpus -- --ignored`
/// Feeds `seq` (split as the fuzzer splits it) to `peer`; counts child
/// SAs that came up.
fn children_up(mut peer: esprit_ike::Peer<fuzz::FuzzRng>, seq: &[u8], initiator: bool) -> usize {
    let now = std::time::Instant::now();
    let (i, r) = (fuzz::INITIATOR.parse().unwrap(), fuzz::RESPONDER.parse().unwrap());
    let (local, remote) = if initiator { (i, r) } else { (r, i) };
    let mut up = 0;
    for d in fuzz::datagrams(seq) {
        peer.handle_datagram(now, local, remote, d).unwrap();
        while peer.poll_transmit().is_some() {}
        while let Some(e) = peer.poll_event() {
            up += usize::from(matches!(e, esprit_ike::Event::ChildSaUp(_)));
        }
    }
    up
}

#[test]
#[ignore = "writes fuzz/corpus/ike_message"]
fn write_ike_message_seeds() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for aggressive in [false, true] {
        let log = fuzz::exchange(aggressive);
        let mode = if aggressive { "am" } else { "mm" };
        let mut counts = std::collections::HashMap::new();
        let (mut from_i, mut from_r) = (Vec::new(), Vec::new());
        for (from_initiator, bytes) in &log {
            let kind = match Header::parse(bytes).unwrap().exchange {
                ExchangeType::MainMode => "mm",
                ExchangeType::Aggressive => "am",
                ExchangeType::QuickMode => "qm",
                ExchangeType::Informational => "info",
                ExchangeType::Other(_) => "other",
            };
            let k = counts.entry(kind).or_insert(0);
            *k += 1;
            let name = format!("{mode}-{kind}{k}-{}", if *from_initiator { "i" } else { "r" });
            std::fs::write(dir.join(name), bytes).unwrap();
            if *from_initiator { &mut from_i } else { &mut from_r }.extend_from_slice(bytes);
        }
        eprintln!("{mode}: {} messages", log.len());
        // The fuzzed responder, fed the initiator's side, brings the child
        // up: the sequence seeds reach the end of the exchange.
        assert!(children_up(fuzz::responder(), &from_i, false) >= 1, "{mode}: responder replay");
        if !aggressive {
            let now = std::time::Instant::now();
            assert!(children_up(fuzz::initiator(now), &from_r, true) >= 1, "{mode}: initiator replay");
        }
        std::fs::write(dir.join(format!("{mode}-all-from-initiator")), from_i).unwrap();
        if !aggressive {
            // Only the Main Mode initiator is fuzzed.
            std::fs::write(dir.join(format!("{mode}-all-from-responder")), from_r).unwrap();
        }
    }
}
