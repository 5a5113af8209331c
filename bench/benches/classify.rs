//! Classify stage: a burst of 64 flow keys against proxy-ID tables of 1, 4,
//! 200 and 10,000 `/24` pairs, and 10,000 overlapping `/16`-`/24`-`/32`
//! proxy-IDs; keys hit random entries. ns per packet.
//!
//! The keys rotate through a pool of 64 bursts (4,096 keys) so that the
//! large tables are not benched on 64 cache-hot entries only.

#![allow(clippy::expect_used)] // bench set-up: a broken fixture must stop it

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use esprit_bench::{grid_table, ids, keys_hitting, mixed_table, BURST};
use esprit_policy::{FlowKey, ProxyIdTable, Verdict};

const POOL_BURSTS: usize = 64;

fn check(table: &ProxyIdTable, keys: &[FlowKey]) {
    let mut out = vec![Verdict::NoMatch; keys.len()];
    table.classify(keys, &mut out);
    for (k, v) in keys.iter().zip(&out) {
        let i = v.index().expect("every bench key hits a proxy-ID");
        assert!(table.proxy_ids()[i.get()].matches_outbound(k), "verdict covers the key");
    }
}

fn run(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    t: &ProxyIdTable,
) {
    let keys = keys_hitting(t, BURST * POOL_BURSTS);
    check(t, &keys);
    let mut out = [Verdict::NoMatch; BURST];
    let mut at = 0;
    g.bench_function(id, |b| {
        b.iter(|| {
            let chunk = &keys[at..at + BURST];
            at = (at + BURST) % keys.len();
            t.classify(black_box(chunk), &mut out);
            black_box(&out);
        })
    });
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group(ids::CLASSIFY);
    g.throughput(Throughput::Elements(BURST as u64));
    for (locals, remotes) in [(1u32, 1u32), (2, 2), (10, 20), (100, 100)] {
        let t = grid_table(locals, remotes);
        run(&mut g, BenchmarkId::new(ids::GRID, locals * remotes), &t);
    }
    let t = mixed_table(10_000);
    run(&mut g, BenchmarkId::new(ids::MIXED, 10_000), &t);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
