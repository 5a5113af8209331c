//! The whole in-memory worker pipeline, per packet, in bursts of 64:
//!
//! * `lan-to-wan-encrypt`: gateway A, frames from LAN host 10.1.1.10 to
//!   10.2.1.10 (one SA, AES-128-GCM): parse, route, classify, encrypt,
//!   Ethernet rewrite. Each iteration first resets the frames' position
//!   and their 42 header bytes (`reset-headers`, benched alone to
//!   subtract; the payload left over is ciphertext, which AES-GCM
//!   encrypts at the same cost).
//! * `wan-to-lan-decrypt+copy`: gateway B, the same frames as A sent them:
//!   parse, SPI lookup, decrypt, inbound proxy-ID check, route, Ethernet
//!   rewrite. Decryption is in place, so each iteration first copies the
//!   64 pristine frames back (`copy-frames`, benched alone to subtract).
//!   B's inbound SAs have anti-replay off (`replay_window: 0`) so the same
//!   frames can be replayed; `esp-replay` in `esp.rs` measures the
//!   window's cost.

#![allow(clippy::expect_used)] // bench set-up: a broken fixture must stop it

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use esprit_bench::{ids, lan_frame, Burst, BURST, SIZES};
use esprit_dataplane::lab::{self, LabOptions, Side, LAN, WAN};
use esprit_dataplane::{Action, VecOutput};
use esprit_esp::Suite;

fn opts() -> LabOptions {
    LabOptions { suite: Suite::Aes128Gcm16, replay_window: 0, ..Default::default() }
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let mut g = c.benchmark_group(ids::PIPELINE);
    g.throughput(Throughput::Elements(BURST as u64));
    for size in SIZES {
        let clear: Vec<Vec<u8>> = (0..BURST).map(|_| lan_frame(size)).collect();
        let mut actions = vec![Action::Held; BURST];
        let mut out = VecOutput::default();

        // Encrypt on A.
        let mut a = lab::gateway(Side::A, &opts());
        let mut burst = Burst::new(&clear);
        a.process_burst(now, LAN, &mut burst.frames, &mut actions, &mut out);
        assert!(actions.iter().all(|x| *x == Action::Tx(WAN)), "A encrypts: {actions:?}");
        let wire: Vec<Vec<u8>> = burst.frames.iter().map(|f| f.packet().to_vec()).collect();
        burst.reset_headers();
        a.process_burst(now, LAN, &mut burst.frames, &mut actions, &mut out);
        assert!(actions.iter().all(|x| *x == Action::Tx(WAN)), "A encrypts after a reset: {actions:?}");
        g.bench_function(BenchmarkId::new(ids::ENCRYPT, size), |b| {
            b.iter(|| {
                burst.reset_headers();
                a.process_burst(now, LAN, &mut burst.frames, &mut actions, &mut out);
                out.events.clear();
                black_box(&actions);
            })
        });
        g.bench_function(BenchmarkId::new(ids::RESET_HEADERS, size), |b| {
            b.iter(|| {
                burst.reset_headers();
                black_box(&mut burst.frames);
            })
        });
        assert_eq!(a.drops().total(), 0, "no drops on A");

        // Decrypt on B.
        let mut b_gw = lab::gateway(Side::B, &opts());
        let mut burst = Burst::new(&wire);
        for _ in 0..2 {
            burst.reset_full();
            b_gw.process_burst(now, WAN, &mut burst.frames, &mut actions, &mut out);
            assert!(actions.iter().all(|x| *x == Action::Tx(LAN)), "B decrypts: {actions:?}");
        }
        g.bench_function(BenchmarkId::new(ids::DECRYPT, size), |b| {
            b.iter(|| {
                burst.reset_full();
                b_gw.process_burst(now, WAN, &mut burst.frames, &mut actions, &mut out);
                out.events.clear();
                black_box(&actions);
            })
        });
        g.bench_function(BenchmarkId::new(ids::COPY_FRAMES, size), |b| {
            b.iter(|| {
                burst.reset_full();
                black_box(&mut burst.frames);
            })
        });
        assert_eq!(b_gw.drops().total(), 0, "no drops on B");
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
