//! Classifies bursts of 64 keys against a grid table of N x N `/24` pairs,
//! or (`mixed`) 10,000 overlapping `/16`-`/24`-`/32` proxy-IDs (keys
//! hitting random entries, a pool of 4,096 as in the classify bench), for
//! counter-level profiling; with 0 bursts it measures the set-up alone, to
//! subtract:
//!
//! ```text
//! cargo build --profile bench -p esprit-bench --example classify_profile
//! perf stat -e cycles,instructions,branch-misses,L1-dcache-load-misses \
//!     target/release/examples/classify_profile 100 2000000
//! valgrind --tool=cachegrind --cache-sim=no --branch-sim=yes \
//!     target/release/examples/classify_profile mixed 50000
//! ```
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use esprit_bench::{grid_table, keys_hitting, mixed_table, BURST};
use esprit_policy::Verdict;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "100".into());
    let bursts: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let table = match which.parse::<u32>() {
        Ok(side) => grid_table(side, side),
        Err(_) => mixed_table(10_000),
    };
    let keys = keys_hitting(&table, BURST * 64);
    let mut out = [Verdict::NoMatch; BURST];
    let start = Instant::now();
    for b in 0..bursts {
        let at = (b % 64) * BURST;
        table.classify(black_box(&keys[at..at + BURST]), &mut out);
        black_box(&out);
    }
    let ns = start.elapsed().as_nanos() as f64 / (bursts * BURST).max(1) as f64;
    println!("{} proxy-IDs: {ns:.2} ns per key over {bursts} bursts", table.len());
}
