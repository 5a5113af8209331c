//! The sink: counts what one AF_XDP socket receives, checks it is the
//! generator's IPv4/UDP of the expected size (and destination), estimates
//! loss from the sequence numbers, and with `--latency` records one-way
//! latency (send time in the payload, same CLOCK_MONOTONIC) in an HDR
//! histogram.
//!
//! With `--expect esp` it counts ESP instead (the generator's traffic
//! after an encrypting gateway), with the ESP sequence number for loss.
//!
//! No local address is registered with the XDP program, so everything but
//! ARP and IPv6/IPv4 control traffic comes to the socket. The rate is taken
//! between the first and the last frame received, so a sink started early
//! and stopped late measures only the traffic. It stops at `--seconds`, or
//! `--idle-exit-ms` after traffic stopped, or on SIGINT/SIGTERM.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use esprit_xdp::{AttachMode, Burst, KernelStats, Port, XdpSockets, XdpSocketsConfig};
use hdrhistogram::Histogram;
use serde_json::json;

use super::template::{self, Seen};
use super::{gbps, if_counter, mono_ns, mpps, r3};

/// What to listen for.
#[derive(Debug, Clone)]
pub(crate) struct RxPlan {
    pub(crate) port: String,
    pub(crate) queue: u32,
    pub(crate) mode: AttachMode,
    /// Longest run.
    pub(crate) duration: Duration,
    /// Stop this long after the last frame (once some arrived).
    pub(crate) idle_exit: Duration,
    /// Expected frame size; others count as mangled.
    pub(crate) size: Option<usize>,
    /// Expected destination address; others count as mangled.
    pub(crate) dst: Option<Ipv4Addr>,
    pub(crate) latency: bool,
    /// Count ESP (the generator's traffic, encrypted) instead of clear UDP.
    pub(crate) esp: bool,
    /// Never nap when the ring is empty.
    pub(crate) busy_poll: bool,
    pub(crate) idle_sleep: Duration,
}

/// What arrived.
#[derive(Debug)]
pub(crate) struct RxReport {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) good: u64,
    pub(crate) good_bytes: u64,
    pub(crate) mangled: u64,
    pub(crate) foreign: u64,
    /// First to last frame.
    pub(crate) elapsed: Duration,
    pub(crate) seq_min: u64,
    pub(crate) seq_max: u64,
    pub(crate) kernel: KernelStats,
    /// XDP verdicts on the port: redirected to the socket, or passed to the
    /// kernel (ARP, control, or no socket on the queue).
    pub(crate) redirected: u64,
    pub(crate) passed: u64,
    pub(crate) if_rx_packets: u64,
    pub(crate) if_rx_dropped: u64,
    pub(crate) latency: Option<Histogram<u64>>,
}

impl RxReport {
    /// Sequence numbers missing between the lowest and highest seen.
    pub(crate) fn lost_by_seq(&self) -> u64 {
        if self.good == 0 {
            return 0;
        }
        (self.seq_max - self.seq_min + 1).saturating_sub(self.good)
    }

    pub(crate) fn json(&self, plan: &RxPlan) -> serde_json::Value {
        let lat = self.latency.as_ref().filter(|h| !h.is_empty()).map(|h| {
            json!({
                "count": h.len(), "min": h.min(), "p50": h.value_at_quantile(0.5),
                "p90": h.value_at_quantile(0.9), "p99": h.value_at_quantile(0.99),
                "p999": h.value_at_quantile(0.999), "max": h.max(),
            })
        });
        json!({
            "mode": "rx", "port": plan.port, "size": plan.size, "expect": if plan.esp { "esp" } else { "udp" },
            "seconds": r3(self.elapsed.as_secs_f64()),
            "packets": self.packets, "bytes": self.bytes,
            "good": self.good, "good_bytes": self.good_bytes, "mangled": self.mangled, "foreign": self.foreign,
            "mpps": r3(mpps(self.good, self.elapsed)), "gbps": r3(gbps(self.good_bytes, self.elapsed)),
            "seq_min": self.seq_min, "seq_max": self.seq_max, "lost_by_seq": self.lost_by_seq(),
            "xsk_rx_dropped": self.kernel.rx_dropped, "xsk_rx_ring_full": self.kernel.rx_ring_full,
            "xsk_fill_ring_empty": self.kernel.rx_fill_ring_empty_descs,
            "xdp_redirected": self.redirected, "xdp_passed": self.passed,
            "if_rx_packets": self.if_rx_packets, "if_rx_dropped": self.if_rx_dropped,
            "latency_ns": lat,
        })
    }

    pub(crate) fn human(&self, plan: &RxPlan) -> String {
        let lat = match &self.latency {
            Some(h) if !h.is_empty() => format!(
                "; latency p50 {:.1} us, p99 {:.1} us, max {:.1} us",
                h.value_at_quantile(0.5) as f64 / 1e3,
                h.value_at_quantile(0.99) as f64 / 1e3,
                h.max() as f64 / 1e3
            ),
            _ => String::new(),
        };
        format!(
            "rx {}: {} good packets in {:.2} s: {:.3} Mpps, {:.3} Gbit/s ({} mangled, {} foreign, \
             {} missing by sequence, socket rx_dropped {}){lat}",
            plan.port,
            self.good,
            self.elapsed.as_secs_f64(),
            mpps(self.good, self.elapsed),
            gbps(self.good_bytes, self.elapsed),
            self.mangled,
            self.foreign,
            self.lost_by_seq(),
            self.kernel.rx_dropped,
        )
    }
}

/// Receives until the plan says stop. Call it in the port's network
/// namespace, as root.
pub(crate) fn run(plan: &RxPlan, stop: &AtomicBool) -> Result<RxReport, String> {
    let mut cfg = XdpSocketsConfig::default();
    // Deep rings: the sink naps when idle and must absorb the bursts meanwhile.
    cfg.umem.frame_count = 8192;
    cfg.rings.rx = 4096;
    cfg.rings.fill = 4096;
    cfg.rings.fill_target = 4096;
    cfg.rings.tx = 64;
    cfg.rings.completion = 64;
    let mut port = Port::open(&plan.port, plan.mode).map_err(|e| e.to_string())?;
    let mut w = XdpSockets::new(cfg).map_err(|e| e.to_string())?;
    let sock = w.bind(&mut port, plan.queue).map_err(|e| e.to_string())?;
    let v0 = port.verdicts().unwrap_or_default();
    let if_rx0 = if_counter(&plan.port, "rx_packets");
    let if_drop0 = if_counter(&plan.port, "rx_dropped");

    let mut latency = if plan.latency {
        // 1 ns .. 10 s, 3 significant digits.
        Some(Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let mut rep = RxReport {
        packets: 0,
        bytes: 0,
        good: 0,
        good_bytes: 0,
        mangled: 0,
        foreign: 0,
        elapsed: Duration::ZERO,
        seq_min: u64::MAX,
        seq_max: 0,
        kernel: KernelStats::default(),
        redirected: 0,
        passed: 0,
        if_rx_packets: 0,
        if_rx_dropped: 0,
        latency: None,
    };
    let mut burst = Burst::new();
    let start = Instant::now();
    let end = start + plan.duration;
    let (mut first, mut last): (Option<Instant>, Instant) = (None, start);
    let mut idle_loops = 0u32;
    loop {
        let n = w.rx_burst(sock, &mut burst);
        if n == 0 {
            idle_loops = idle_loops.saturating_add(1);
            if idle_loops.is_multiple_of(64) {
                let now = Instant::now();
                if now >= end
                    || stop.load(Ordering::Relaxed)
                    || (first.is_some() && now - last >= plan.idle_exit)
                {
                    break;
                }
                if !plan.busy_poll && idle_loops >= 256 {
                    std::thread::sleep(plan.idle_sleep);
                }
            }
            w.poll();
            continue;
        }
        idle_loops = 0;
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
        let now_ns = if latency.is_some() { mono_ns() } else { 0 };
        while let Some(f) = burst.pop() {
            let d = f.data();
            rep.packets += 1;
            rep.bytes += d.len() as u64;
            let seen = if plan.esp {
                template::inspect_esp(d, plan.size)
            } else {
                template::inspect(d, plan.size, plan.dst)
            };
            match seen {
                Seen::Good { seq, time_ns } => {
                    rep.good += 1;
                    rep.good_bytes += d.len() as u64;
                    rep.seq_min = rep.seq_min.min(seq);
                    rep.seq_max = rep.seq_max.max(seq);
                    if let (Some(h), true) = (latency.as_mut(), time_ns != 0) {
                        h.saturating_record(now_ns.saturating_sub(time_ns).max(1));
                    }
                }
                Seen::Mangled => rep.mangled += 1,
                Seen::Foreign => rep.foreign += 1,
            }
            w.recycle(f);
        }
        w.poll();
        if now >= end || stop.load(Ordering::Relaxed) {
            break;
        }
    }
    // From the first burst to the last (the first burst's frames are counted
    // too: one burst in millions, over seconds).
    rep.elapsed = first.map(|f| last - f).unwrap_or_default();
    if rep.seq_min == u64::MAX {
        rep.seq_min = 0;
    }
    rep.kernel = w.kernel_stats(sock).unwrap_or_default();
    let v = port.verdicts().unwrap_or_default().since(&v0);
    rep.redirected = v.redirected();
    rep.passed = v.0.iter().sum::<u64>() - rep.redirected;
    rep.if_rx_packets = if_counter(&plan.port, "rx_packets").saturating_sub(if_rx0);
    rep.if_rx_dropped = if_counter(&plan.port, "rx_dropped").saturating_sub(if_drop0);
    rep.latency = latency;
    drop(w);
    drop(port);
    Ok(rep)
}
