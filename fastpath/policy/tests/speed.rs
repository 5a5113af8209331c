//! A quick timing sanity check, not a benchmark (those live in `bench/`).
//!
//! `cargo test --release -p esprit-policy --test speed -- --ignored --nocapture`
//! (`ONLY=10000` to run one case alone: then its table stays warm in cache
//! between windows, as in a per-case benchmark).

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use esprit_policy::{FlowKey, Prefix, ProxyId, ProxyIdTable, Service, Verdict};
use esprit_testrng::TestRng;

/// Local `10.a.b.0/24`, remote `172.(16+a).b.0/24` for pair `i`.
fn pair(i: u32) -> (u32, u32) {
    (0x0a00_0000 | i << 8, 0xac10_0000 | i << 8)
}

fn table(n: u32) -> ProxyIdTable {
    let ids = (0..n)
        .map(|i| {
            let (l, r) = pair(i);
            ProxyId {
                local: Prefix::new(Ipv4Addr::from_bits(l).into(), 24).unwrap(),
                remote: Prefix::new(Ipv4Addr::from_bits(r).into(), 24).unwrap(),
                service: Service::ANY,
            }
        })
        .collect();
    ProxyIdTable::new(ids, true).unwrap()
}

/// `count` keys spread over the first `n` pairs (fixed seed);
/// `miss` moves the destination out of every remote prefix.
fn keys(n: u32, count: usize, miss: bool) -> Vec<FlowKey> {
    let mut rng = TestRng::default();
    (0..count)
        .map(|_| {
            let x = rng.next_u64();
            let i = (x % u64::from(n)) as u32;
            let host = (x >> 32) as u32 & 0xff;
            let (l, r) = pair(i);
            let r = if miss { r ^ 0x0100_0000 } else { r };
            FlowKey::v4(Ipv4Addr::from_bits(l | host), Ipv4Addr::from_bits(r | host), 6, 40000, 443)
        })
        .collect()
}

/// Time of one pass over `keys`, in ns per packet: in bursts of 64 or one
/// by one.
fn pass(t: &ProxyIdTable, keys: &[FlowKey], burst: bool) -> f64 {
    let mut out = [Verdict::NoMatch; 64];
    let start = Instant::now();
    if burst {
        for chunk in keys.chunks(64) {
            t.classify(black_box(chunk), &mut out);
            black_box(&out);
        }
    } else {
        for k in keys {
            black_box(t.classify_one(black_box(k)));
        }
    }
    start.elapsed().as_nanos() as f64 / keys.len() as f64
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn ns_per_packet_1_4_10000() {
    // (proxy-IDs, pairs the keys are drawn from). Every case is timed in
    // short windows, interleaved, so that all see the same machine load;
    // the minimum over windows is reported.
    let only: Option<u32> = std::env::var("ONLY").ok().and_then(|v| v.parse().ok());
    let mut cases = Vec::new();
    for (n, spread) in [(1u32, 1u32), (4, 4), (10_000, 64), (10_000, 10_000)] {
        if only.is_some_and(|o| o != spread) {
            continue;
        }
        let t = table(n);
        let hit = keys(spread, 4096, false);
        let miss = keys(spread, 4096, true);
        let mut out = [Verdict::NoMatch; 64];
        t.classify(&hit[..64], &mut out);
        assert!(out.iter().all(|v| v.index().is_some()));
        t.classify(&miss[..64], &mut out);
        assert!(out.iter().all(|v| v.index().is_none()));
        cases.push((n, spread, t, hit, miss));
    }
    let mut best = vec![[f64::MAX; 4]; cases.len()];
    for _ in 0..1500 {
        for ((_, _, t, hit, miss), best) in cases.iter().zip(best.iter_mut()) {
            let runs = [pass(t, hit, true), pass(t, miss, true), pass(t, hit, false), pass(t, miss, false)];
            for (b, r) in best.iter_mut().zip(runs) {
                *b = b.min(r);
            }
        }
    }
    for ((n, spread, ..), b) in cases.iter().zip(&best) {
        println!(
            "{n:>6} proxy-IDs, keys over {spread:>5} of them: classify hit {:.2} miss {:.2} ns/packet; \
             classify_one hit {:.2} miss {:.2}",
            b[0], b[1], b[2], b[3]
        );
    }
}
