//! Per-packet cost of ESP encapsulation and decapsulation, per suite, for
//! inner IPv4 packets of 64, 512 and 1400 bytes (FACTS.md's sizes).
//!
//! `cargo bench -p esprit-esp --bench esp`
//!
//! Each iteration encapsulates a fresh copy of the inner packet in a
//! 2048-byte frame (the copy is part of the measured cost, as a worker
//! would see it), or decapsulates a copy of a prepared packet with the
//! replay window disabled so the same packet can be opened again.

// Bench code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use esprit_esp::{InboundConfig, InboundSa, OutboundConfig, OutboundSa, Suite};

const OFF: usize = 64;

fn inner(total: usize) -> Vec<u8> {
    let mut p = vec![0x5au8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[6] = 0x40;
    p
}

fn sa_pair(suite: Suite) -> (OutboundSa, InboundSa) {
    let e = vec![7u8; suite.encr_key_len()];
    let a = vec![9u8; suite.integ_key_len()];
    let src = Ipv4Addr::new(192, 0, 2, 1);
    let dst = Ipv4Addr::new(198, 51, 100, 2);
    let out =
        OutboundSa::new(&OutboundConfig::new(0x1000, suite, src, dst).with_esn(), &e, &a, &[3; 16]).unwrap();
    let mut ic = InboundConfig::new(0x1000, suite);
    ic.esn = true;
    ic.replay_window = 0;
    (out, InboundSa::new(&ic, &e, &a).unwrap())
}

fn bench(c: &mut Criterion) {
    for suite in [Suite::Aes128Gcm16, Suite::Aes256Gcm16, Suite::Aes128CbcSha1, Suite::Aes128CbcSha256] {
        let mut g = c.benchmark_group(format!("esp/{suite}"));
        for size in [64usize, 512, 1400] {
            g.throughput(Throughput::Bytes(size as u64));
            let pkt = inner(size);
            let (mut out, mut inb) = sa_pair(suite);
            let mut frame = vec![0u8; 2048];
            g.bench_with_input(BenchmarkId::new("encapsulate", size), &pkt, |b, pkt| {
                b.iter(|| {
                    frame[OFF..OFF + pkt.len()].copy_from_slice(pkt);
                    black_box(out.encapsulate(&mut frame, OFF..OFF + pkt.len()).unwrap());
                })
            });
            frame[OFF..OFF + size].copy_from_slice(&pkt);
            let r = out.encapsulate(&mut frame, OFF..OFF + size).unwrap();
            let sealed = frame.clone();
            let esp = r.outer.start + 20..r.outer.end;
            g.bench_with_input(BenchmarkId::new("decapsulate", size), &sealed, |b, sealed| {
                b.iter(|| {
                    frame[esp.clone()].copy_from_slice(&sealed[esp.clone()]);
                    black_box(inb.decapsulate(&mut frame, esp.clone()).unwrap());
                })
            });
        }
        g.finish();
    }
}

/// The bare primitives on the same sizes, so one run shows esprit's own
/// overhead (headers, padding, IV, checks) as a ratio.
fn baseline(c: &mut Criterion) {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7; 16]).unwrap());
    let mut g = c.benchmark_group("raw");
    for size in [64usize, 512, 1400] {
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x5au8; size + 4];
        g.bench_function(BenchmarkId::new("ring-aes128gcm-seal", size), |b| {
            b.iter(|| {
                let n = Nonce::assume_unique_for_key([1; 12]);
                let tag = key.seal_in_place_separate_tag(n, Aad::from([0u8; 8]), &mut buf).unwrap();
                black_box(tag.as_ref()[0]);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, baseline);
criterion_main!(benches);
