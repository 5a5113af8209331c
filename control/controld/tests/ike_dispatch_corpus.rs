//! Replays the kept `ike_dispatch` fuzz corpus through the entry point the
//! fuzzer uses (fuzz/fuzz_targets/ike_dispatch.rs), and writes its
//! seeds from a real exchange (run the ignored test to regenerate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use esprit_controld::ike::{IkeAction, IkeManager};
use esprit_controld::ike_fuzz::{self, record};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ike_dispatch")
}

#[test]
fn replay_ike_dispatch_corpus() {
    let dir = corpus_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        ike_fuzz::ike_dispatch(&data);
        n += 1;
    }
    assert!(n >= 3, "corpus at {} has only {n} inputs", dir.display());
    // The recorded exchanges still bring up the gateways' SAs.
    let all = std::fs::read(dir.join("both-peers")).unwrap();
    assert!(ike_fuzz::run(&all) >= 4, "the seed no longer reaches the end of the exchange");
    let v2 = std::fs::read(dir.join("ikev2-peer")).unwrap();
    assert!(ike_fuzz::run(&v2) >= 4, "the IKEv2 seed no longer reaches the end of its exchange");
}

/// Moves datagrams between the fuzzed manager and one peer (source
/// selector `sel` for the record) until both are quiet; records what the
/// fuzzed manager received.
fn pump(now: Instant, hq: &mut IkeManager, peer: &mut IkeManager, sel: u8, out: &mut Vec<u8>) {
    loop {
        let mut moved = false;
        for a in peer.poll(now) {
            if let IkeAction::Send(t) = a {
                out.extend(record(sel, t.local.port(), t.remote.port() == 4500, &t.bytes));
                let _ = hq.handle_datagram(now, t.remote, ike_fuzz::source(sel, t.local.port()), &t.bytes);
                moved = true;
            }
        }
        for a in hq.poll(now) {
            if let IkeAction::Send(t) = a {
                let from: SocketAddr = t.local;
                let _ = peer.handle_datagram(now, t.remote, from, &t.bytes);
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

#[test]
#[ignore = "writes fuzz/corpus/ike_dispatch"]
fn write_ike_dispatch_seeds() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let now = Instant::now();
    let mut hq = ike_fuzz::hq();
    let mut stat = ike_fuzz::manager(ike_fuzz::STATIC_PEER, 2);
    let mut dynamic = ike_fuzz::manager(ike_fuzz::DYNAMIC_PEER, 3);
    let mut all = Vec::new();
    // The static peer: Main Mode and a Quick Mode with PFS.
    let mut mm = Vec::new();
    stat.acquire(now, 1, "local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY");
    pump(now, &mut hq, &mut stat, 0, &mut mm);
    // The dynamic peer: Aggressive Mode with NAT-T, a Quick Mode.
    let mut am = Vec::new();
    dynamic.acquire(now, 1, "local-ip 10.3.1.0/24 remote-ip 10.1.2.0/24 ANY");
    pump(now, &mut hq, &mut dynamic, 1, &mut am);
    all.extend_from_slice(&mm);
    all.extend_from_slice(&am);
    // Idle: the static peer's DPD probe, answered.
    let later = now + Duration::from_secs(12);
    all.extend([2, 48]);
    hq.handle_timeout(later);
    stat.handle_timeout(later);
    let mut dpd = Vec::new();
    pump(later, &mut hq, &mut stat, 0, &mut dpd);
    all.extend_from_slice(&dpd);
    assert!(
        hq.view(later).gateways.iter().filter(|g| g.version == "IKEv1").all(|g| g.children == 1),
        "{:?}",
        hq.view(later).gateways
    );
    std::fs::write(dir.join("main-mode"), &mm).unwrap();
    std::fs::write(dir.join("aggressive-mode"), &am).unwrap();
    std::fs::write(dir.join("both-peers"), &all).unwrap();
    // The static peer's first message from strangers and from its own
    // address with other initiator cookies, then the real exchange.
    let first = &mm[..7 + u16::from_be_bytes([mm[5], mm[6]]) as usize];
    let mut flood = Vec::new();
    for n in 2..40u8 {
        let mut m = first[7..].to_vec();
        m[0] = n;
        flood.extend(record(if n % 3 == 0 { 0 } else { n }, 500, false, &m));
    }
    flood.extend_from_slice(&all);
    std::fs::write(dir.join("flood-then-both-peers"), &flood).unwrap();
    assert!(ike_fuzz::run(&all) >= 4);
    assert!(ike_fuzz::run(&flood) >= 4);
    // The IKEv2 peer: IKE_SA_INIT, IKE_AUTH with the first child, a
    // CREATE_CHILD_SA for the second proxy-ID, then a liveness check.
    let mut hq = ike_fuzz::hq();
    let mut v2peer = ike_fuzz::manager(ike_fuzz::IKEV2_PEER, 4);
    let mut v2 = Vec::new();
    for pid in
        ["local-ip 10.4.1.0/24 remote-ip 10.1.3.0/24 ANY", "local-ip 10.4.2.0/24 remote-ip 10.1.3.0/24 ANY"]
    {
        v2peer.acquire(now, 1, pid);
        pump(now, &mut hq, &mut v2peer, 3, &mut v2);
    }
    v2.extend([2, 48]);
    hq.handle_timeout(later);
    v2peer.handle_timeout(later);
    pump(later, &mut hq, &mut v2peer, 3, &mut v2);
    assert_eq!(hq.view(later).children.len(), 2, "{:?}", hq.view(later));
    std::fs::write(dir.join("ikev2-peer"), &v2).unwrap();
    assert!(ike_fuzz::run(&v2) >= 4);
}
