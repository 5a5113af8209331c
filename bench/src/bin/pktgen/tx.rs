//! The generator: blasts prebuilt IPv4/UDP frames out of one AF_XDP socket.
//!
//! Every UMEM chunk gets the frame template once, before the clock starts;
//! afterwards a frame taken from the free pool already holds it, and per
//! packet only the flow's UDP source port, the sequence number and (with
//! `--latency`) the send time of the burst are written. A chunk whose
//! Ethernet/IPv4 header no longer matches (the kernel received into it) is
//! rebuilt and counted. The sender's own address is registered with the XDP
//! program so replies addressed to it reach its kernel, not this socket;
//! whatever else arrives is recycled and counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use esprit_xdp::{AttachMode, Burst, Port, XdpSockets, XdpSocketsConfig};
use serde_json::json;

use super::template::{self, Spec, FIXED};
use super::{gbps, if_counter, mono_ns, mpps, r3};

/// What to send.
#[derive(Debug, Clone)]
pub(crate) struct TxPlan {
    pub(crate) port: String,
    pub(crate) queue: u32,
    pub(crate) mode: AttachMode,
    /// The frame; its `size` is the first of `sizes`.
    pub(crate) spec: Spec,
    /// Frame lengths sent round-robin (one for a fixed size, [`template::IMIX`]).
    pub(crate) sizes: Vec<usize>,
    pub(crate) duration: Duration,
    /// Distinct UDP source ports, used round-robin.
    pub(crate) flows: u16,
    /// Distinct destination addresses from `spec.dst` on, round-robin.
    pub(crate) dst_count: u32,
    /// Packets to send at most.
    pub(crate) count: Option<u64>,
    /// Packets per second; `None`: as fast as the ring takes them.
    pub(crate) rate: Option<u64>,
    /// Stamp the send time (one clock read per burst).
    pub(crate) latency: bool,
}

impl TxPlan {
    /// The frame length, or `imix`.
    pub(crate) fn size_label(&self) -> String {
        match self.sizes.as_slice() {
            [one] => one.to_string(),
            _ => "imix".into(),
        }
    }
}

/// What was sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct TxReport {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) elapsed: Duration,
    /// Frames whose header had to be rebuilt (a chunk reused for receive,
    /// or, with several sizes, last sent with another length).
    pub(crate) rebuilt: u64,
    /// Frames received on the generator's socket (recycled unseen).
    pub(crate) rx_recycled: u64,
    pub(crate) ring_full: u64,
    pub(crate) kicks: u64,
    /// Frames still queued at the end that never left (not counted as sent).
    pub(crate) unsent: u64,
    /// The interface's kernel counters over the run (veth counts frames
    /// its peer could not take as tx_dropped).
    pub(crate) if_tx_packets: u64,
    pub(crate) if_tx_dropped: u64,
    pub(crate) tx_invalid_descs: u64,
}

impl TxReport {
    pub(crate) fn json(&self, plan: &TxPlan) -> serde_json::Value {
        json!({
            "mode": "tx", "port": plan.port, "size": plan.size_label(), "flows": plan.flows, "dst_count": plan.dst_count,
            "rate_pps": plan.rate, "seconds": r3(self.elapsed.as_secs_f64()),
            "packets": self.packets, "bytes": self.bytes,
            "mpps": r3(mpps(self.packets, self.elapsed)), "gbps": r3(gbps(self.bytes, self.elapsed)),
            "if_tx_packets": self.if_tx_packets, "if_tx_dropped": self.if_tx_dropped,
            "tx_invalid_descs": self.tx_invalid_descs, "rebuilt": self.rebuilt,
            "rx_recycled": self.rx_recycled, "ring_full": self.ring_full, "kicks": self.kicks,
            "unsent": self.unsent,
        })
    }

    pub(crate) fn human(&self, plan: &TxPlan) -> String {
        format!(
            "tx {}: {} packets of {} B in {:.2} s: {:.3} Mpps, {:.3} Gbit/s ({} flows{}; if tx_dropped {})",
            plan.port,
            self.packets,
            plan.size_label(),
            self.elapsed.as_secs_f64(),
            mpps(self.packets, self.elapsed),
            gbps(self.bytes, self.elapsed),
            plan.flows,
            plan.rate.map(|r| format!(", paced at {r} pps")).unwrap_or_default(),
            self.if_tx_dropped,
        )
    }
}

/// Sends for `plan.duration` (or until `stop`). Call it in the port's
/// network namespace, as root.
pub(crate) fn run(plan: &TxPlan, stop: &AtomicBool) -> Result<TxReport, String> {
    let spec = plan.spec;
    let mut cfg = XdpSocketsConfig::default();
    // The generator receives next to nothing: keep few chunks in the fill
    // ring, the rest serve transmission.
    cfg.rings.fill = 64;
    cfg.rings.fill_target = 64;
    let specs: Vec<Spec> = plan.sizes.iter().map(|&size| Spec { size, ..spec }).collect();
    for s in &specs {
        s.check(cfg.umem.max_rx_len())?;
    }
    let mut port = Port::open(&plan.port, plan.mode).map_err(|e| e.to_string())?;
    port.add_local_addr(spec.src.into()).map_err(|e| e.to_string())?;
    let mut w = XdpSockets::new(cfg).map_err(|e| e.to_string())?;
    let sock = w.bind(&mut port, plan.queue).map_err(|e| e.to_string())?;

    // Build the template into every free chunk, once.
    let mut all = Vec::with_capacity(cfg.umem.frame_count as usize);
    while let Some(mut f) = w.alloc() {
        match f.append(spec.size) {
            Ok(buf) => spec.emit(buf),
            Err(e) => {
                w.recycle(f);
                for f in all {
                    w.recycle(f);
                }
                return Err(format!("frame of {} B: {e}", spec.size));
            }
        }
        all.push(f);
    }
    for f in all {
        w.recycle(f);
    }
    let fixed: Vec<Vec<u8>> = specs.iter().map(Spec::fixed).collect();
    let flows = u64::from(plan.flows.max(1));
    let dsts = u64::from(plan.dst_count.max(1));
    let dst0 = u32::from(spec.dst);

    let if_tx0 = if_counter(&plan.port, "tx_packets");
    let if_drop0 = if_counter(&plan.port, "tx_dropped");
    let mut rep = TxReport::default();
    let (mut burst, mut rx) = (Burst::new(), Burst::new());
    let mut seq = 0u64;
    let t0 = Instant::now();
    let end = t0 + plan.duration;
    loop {
        let now = Instant::now();
        if now >= end || stop.load(Ordering::Relaxed) {
            break;
        }
        let mut want = burst.spare() as u64;
        if let Some(count) = plan.count {
            if seq >= count && burst.is_empty() {
                break;
            }
            want = want.min(count - seq.min(count));
        }
        if let Some(rate) = plan.rate {
            let due = ((now - t0).as_secs_f64() * rate as f64) as u64;
            want = want.min(due.saturating_sub(seq));
            if want == 0 && burst.is_empty() {
                // Nothing due: at low rates give the core to the gateways.
                let next = Duration::from_secs_f64((seq + 1) as f64 / rate as f64);
                let wait = (t0 + next).saturating_duration_since(now);
                if wait > Duration::from_micros(100) {
                    std::thread::sleep(wait.min(Duration::from_millis(1)) - Duration::from_micros(60));
                }
            }
        }
        let time_ns = if plan.latency && want > 0 { mono_ns() } else { 0 };
        for _ in 0..want {
            let Some(mut f) = w.alloc() else { break };
            let k = (seq % specs.len() as u64) as usize;
            let Ok(buf) = f.append(specs[k].size) else {
                w.recycle(f);
                break;
            };
            let intact =
                if dsts > 1 { template::same_but_dst(buf, &fixed[k]) } else { buf[FIXED] == fixed[k][..] };
            if !intact {
                specs[k].emit(buf);
                rep.rebuilt += 1;
            }
            let sport = spec.sport.wrapping_add((seq % flows) as u16);
            template::stamp(buf, sport, seq, time_ns);
            if dsts > 1 {
                template::set_dst(buf, dst0.wrapping_add((seq % dsts) as u32).into());
            }
            seq += 1;
            if let Err(f) = burst.push(f) {
                w.recycle(f);
                break;
            }
        }
        if !burst.is_empty() {
            w.tx_burst(sock, &mut burst);
        }
        w.poll();
        if w.rx_burst(sock, &mut rx) > 0 {
            rep.rx_recycled += rx.len() as u64;
            w.recycle_burst(&mut rx);
        }
    }
    rep.elapsed = t0.elapsed();

    // Let the ring drain (bounded), then give back what never left.
    let drain_end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < drain_end && (!burst.is_empty() || w.kernel_frames(sock).1 > 0) {
        if !burst.is_empty() {
            w.tx_burst(sock, &mut burst);
        }
        w.poll();
    }
    rep.unsent = burst.len() as u64;
    w.recycle_burst(&mut burst);
    let c = w.counters(sock);
    rep.packets = c.tx_packets;
    rep.bytes = c.tx_bytes;
    rep.ring_full = c.tx_ring_full;
    rep.kicks = c.tx_kicks;
    rep.tx_invalid_descs = w.kernel_stats(sock).map(|k| k.tx_invalid_descs).unwrap_or(0);
    rep.if_tx_packets = if_counter(&plan.port, "tx_packets").saturating_sub(if_tx0);
    rep.if_tx_dropped = if_counter(&plan.port, "tx_dropped").saturating_sub(if_drop0);
    drop(w);
    drop(port);
    Ok(rep)
}
