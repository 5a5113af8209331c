//! Replays the kept `ikev2_message` fuzz corpus through the entry point the
//! fuzzer uses, so every build on stable re-checks the inputs that once
//! mattered; and writes the seeds (run the ignored test to regenerate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use esprit_ike::v2::fuzz;
use esprit_ike::v2::wire::{Header, Payload, PayloadIter};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ikev2_message")
}

#[test]
fn replay_ikev2_message_corpus() {
    let dir = corpus_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        fuzz::ikev2_message(&data);
        // Every prefix too: truncation is where parsers break.
        for cut in 0..data.len() {
            fuzz::ikev2_message(&data[..cut]);
        }
        n += 1;
    }
    assert!(n >= 8, "corpus at {} has only {n} inputs", dir.display());
}

/// The seeds are what they claim: each parses (the sealed ones open with
/// the fuzz body's fixed keys) and its payloads all parse.
#[test]
fn seeds_are_real_messages() {
    let seeds = fuzz::seeds();
    assert_eq!(seeds.len(), 9);
    let (mut clear, mut opened) = (0, 0);
    for (name, msg) in &seeds {
        let h = Header::parse(msg).unwrap_or_else(|e| panic!("{name}: {e}"));
        for raw in PayloadIter::of_message(msg, &h) {
            Payload::parse(&raw.unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        clear += 1;
        for suite in fuzz::corpus_suites() {
            if let Ok(o) = fuzz::cipher(suite, false).open(msg) {
                let mut inner = 0;
                for raw in o.payloads() {
                    Payload::parse(&raw.unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
                    inner += 1;
                }
                assert!(inner >= 2, "{name}");
                opened += 1;
            }
        }
    }
    assert_eq!((clear, opened), (9, 6));
}

/// `cargo test -p esprit-ike --features fuzzing --test v2_fuzz_corpus -- --ignored`
#[test]
#[ignore = "writes fuzz/corpus/ikev2_message"]
fn write_ikev2_message_seeds() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, msg) in fuzz::seeds() {
        std::fs::write(dir.join(name), msg).unwrap();
    }
}

fn session_corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ikev2_session")
}

/// Replays the kept `ikev2_session` corpus: a stranger's datagrams, real
/// ones replayed and near-misses, against two established sessions.
#[test]
fn replay_ikev2_session_corpus() {
    let mut n = 0;
    for entry in std::fs::read_dir(session_corpus_dir()).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        esprit_ike::v2::fuzz_session::ikev2_session(&data);
        n += 1;
    }
    assert!(n >= 8, "only {n} inputs");
}

/// The session seeds replay real datagrams: each one of them, resent,
/// is dropped or answered from memory, and nothing changes.
#[test]
fn session_seeds_cover_every_datagram() {
    let seeds = esprit_ike::v2::fuzz_session::seeds();
    let e = esprit_ike::v2::fuzz_session::established();
    let fragments = e.log.iter().filter(|(_, m)| esprit_ike::v2::fuzz_session::is_fragment(m)).count();
    // IKE_AUTH and CREATE_CHILD_SA at least go in fragments.
    assert!(fragments >= 4, "{fragments} fragments");
    // Two per datagram, two more per fragment, the garbage one, and the
    // eight where both owners act at once.
    assert_eq!(seeds.len(), 2 * e.log.len() + 2 * fragments + 9);
    for (_, s) in &seeds {
        esprit_ike::v2::fuzz_session::ikev2_session(s);
    }
}

/// `cargo test -p esprit-ike --features fuzzing --test v2_fuzz_corpus -- --ignored`
#[test]
#[ignore = "writes fuzz/corpus/ikev2_session"]
fn write_ikev2_session_seeds() {
    let dir = session_corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in esprit_ike::v2::fuzz_session::seeds() {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

/// Replays the kept `x509_certificate` corpus, every prefix too; the
/// seeds are real certificates (an ECDSA end entity with subjectAltNames,
/// an RSA CA) whose subject is read.
#[test]
fn replay_x509_certificate_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/x509_certificate");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        fuzz::x509_certificate(&data);
        for cut in 0..data.len() {
            fuzz::x509_certificate(&data[..cut]);
        }
        n += 1;
    }
    assert!(n >= 2, "corpus at {} has only {n} inputs", dir.display());
    for seed in ["ec-leaf-san.der", "rsa-ca.der"] {
        let der = std::fs::read(dir.join(seed)).unwrap();
        assert!(esprit_ike::v2::cert::subject_identity(&der).is_some(), "{seed}");
    }
}
