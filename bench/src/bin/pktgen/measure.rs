//! What the generator ([`crate::tx`]) and the sink ([`crate::rx`]) both
//! measure with: one clock, the interfaces' own counters, rates.

use std::time::Duration;

/// CLOCK_MONOTONIC in nanoseconds: one clock for every network namespace
/// of the machine, so a generator and a sink in different namespaces can
/// compare timestamps.
#[inline]
pub(crate) fn mono_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => (t.tv_sec() as u64).wrapping_mul(1_000_000_000).wrapping_add(t.tv_nsec() as u64),
        Err(_) => 0,
    }
}

/// One of the interface's kernel counters (`/sys/class/net/IF/statistics/NAME`,
/// as seen from the calling process's network namespace; `ip netns exec`
/// mounts that namespace's sysfs). 0 if unreadable.
pub(crate) fn if_counter(port: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{port}/statistics/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Million packets per second.
pub(crate) fn mpps(packets: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        packets as f64 / s / 1e6
    } else {
        0.0
    }
}

/// Gigabits per second of frame bytes (Ethernet header to payload, no FCS,
/// preamble or gap).
pub(crate) fn gbps(bytes: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        bytes as f64 * 8.0 / s / 1e9
    } else {
        0.0
    }
}

/// Rounds for JSON output (three decimals are plenty for rates).
pub(crate) fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
