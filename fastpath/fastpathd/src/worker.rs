//! The worker thread: poll the AF_XDP rings of its queues, run each burst
//! through the dataplane pipeline, transmit, recycle; apply table updates
//! between bursts. No locks, no allocation and no system call on this path
//! other than the ring kicks AF_XDP asks for (and the idle nap, when not
//! busy-polling).
//!
//! Events leave on two channels (DESIGN.md §7): expiries, acquires
//! and the other events the control plane must hear on `to_mgmt`;
//! neighbour misses, which any stranger's traffic can cause, on their own
//! small channel behind a per-worker token bucket ([`MissLimiter`]), so
//! that a flood of them can neither fill the first channel nor make the
//! management thread spend more than the bucket allows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use esprit_dataplane::{
    Action, DropReason, Frame, PortId, Retired, Update, Worker, WorkerEvent, WorkerOutput, MAX_BURST,
};
use esprit_fastpath_api::SocketStatsView;
use esprit_xdp::{Burst, SocketId, UmemFrame, XdpSockets};

use crate::handoff::Handoffs;
use crate::watchdog::Heartbeat;

/// What a worker sends to the management thread.
#[derive(Debug)]
pub(crate) enum FromWorker {
    Event(u16, WorkerEvent),
    Retired(Retired),
    /// The I/O shell's counters, answering the stats request with this tag.
    Shell(u64, u16, ShellStats),
}

/// Counters kept by the worker's I/O shell (not the pipeline).
#[derive(Debug, Clone, Default)]
pub(crate) struct ShellStats {
    pub(crate) sockets: Vec<SocketStatsView>,
    pub(crate) neighbor_misses_suppressed: u64,
    pub(crate) events_lost: u64,
}

/// A neighbour miss on its way to the management thread: (worker, port,
/// next hop).
pub(crate) type NeighborMissReport = (u16, PortId, std::net::Ipv4Addr);

/// Capacity of the event channel (expiries, acquires, stats, retired SA
/// contexts): no traffic-driven event shares it.
pub(crate) const EVENT_CHANNEL: usize = 65_536;
/// Capacity of the neighbour-miss channel.
pub(crate) const NEIGHBOR_MISS_CHANNEL: usize = 1024;
/// Neighbour misses a worker reports per second (each costs the
/// management thread a datagram to make the kernel resolve the address)
/// and in one burst.
pub(crate) const NEIGHBOR_MISSES_PER_SEC: u32 = 200;
pub(crate) const NEIGHBOR_MISS_BURST: u32 = 64;

/// A token bucket for neighbour misses, refilled by the worker's
/// housekeeping tick (no clock read per miss).
#[derive(Debug, Clone)]
pub(crate) struct MissLimiter {
    tokens: u32,
    burst: u32,
    per_sec: u32,
    /// Refill owed in thousandths of a token (kept between ticks).
    credit_milli: u64,
    pub(crate) suppressed: u64,
}

impl MissLimiter {
    pub(crate) fn new(per_sec: u32, burst: u32) -> MissLimiter {
        MissLimiter { tokens: burst, burst, per_sec, credit_milli: 0, suppressed: 0 }
    }

    /// Adds the tokens `elapsed` earned.
    pub(crate) fn refill(&mut self, elapsed: Duration) {
        self.credit_milli += elapsed.as_micros() as u64 * u64::from(self.per_sec) / 1000;
        let whole = self.credit_milli / 1000;
        self.credit_milli %= 1000;
        self.tokens = (u64::from(self.tokens) + whole).min(u64::from(self.burst)) as u32;
    }

    /// Takes a token; false (and counted) when none is left.
    pub(crate) fn take(&mut self) -> bool {
        if self.tokens == 0 {
            self.suppressed += 1;
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// A worker's sockets: for each, the port it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct SocketMap {
    pub(crate) rx: Vec<(SocketId, PortId)>,
    /// The socket a frame for port `p` leaves by (`tx[p]`).
    pub(crate) tx: Vec<SocketId>,
}

/// Everything a worker thread owns.
#[derive(Debug)]
pub(crate) struct WorkerThread {
    pub(crate) index: u16,
    pub(crate) core: Option<core_affinity::CoreId>,
    pub(crate) rings: XdpSockets,
    pub(crate) pipeline: Worker,
    pub(crate) sockets: SocketMap,
    pub(crate) updates: Receiver<Update>,
    pub(crate) to_mgmt: Sender<FromWorker>,
    pub(crate) misses: Sender<NeighborMissReport>,
    pub(crate) handoffs: Arc<Handoffs>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) heartbeat: Heartbeat,
    pub(crate) busy_poll: bool,
    pub(crate) idle_sleep: Duration,
    /// Test builds only (`--features fault-injection`): a fault to play.
    #[cfg(feature = "fault-injection")]
    pub(crate) fault: Option<crate::fault::Fault>,
}

/// A received frame opened up to its whole chunk, as the pipeline wants it.
struct Open {
    frame: UmemFrame,
    head: usize,
    len: usize,
}

impl Open {
    fn new(mut frame: UmemFrame) -> Open {
        let (head, len, tail) = (frame.headroom(), frame.len(), frame.tailroom());
        // Both cannot fail: exactly the room the frame reports.
        let _ = frame.prepend(head);
        let _ = frame.append(tail);
        Open { frame, head, len }
    }

    fn close(mut self) -> UmemFrame {
        let _ = self.frame.remove_front(self.head);
        self.frame.truncate(self.len);
        self.frame
    }
}

impl Frame for Open {
    fn buffer(&mut self) -> &mut [u8] {
        self.frame.data_mut()
    }
    fn head(&self) -> usize {
        self.head
    }
    fn len(&self) -> usize {
        self.len
    }
    fn set_packet(&mut self, head: usize, len: usize) {
        self.head = head;
        self.len = len;
    }
}

/// Where the pipeline's events and retired SA contexts go.
pub(crate) struct Output<'a> {
    pub(crate) index: u16,
    pub(crate) to_mgmt: &'a Sender<FromWorker>,
    pub(crate) misses: &'a Sender<NeighborMissReport>,
    pub(crate) limiter: MissLimiter,
    pub(crate) lost_events: u64,
}

impl WorkerOutput for Output<'_> {
    fn event(&mut self, e: WorkerEvent) {
        if let WorkerEvent::NeighborMiss { port, addr } = e {
            if self.limiter.take() && self.misses.try_send((self.index, port, addr)).is_err() {
                self.limiter.suppressed += 1;
            }
            return;
        }
        if self.to_mgmt.try_send(FromWorker::Event(self.index, e)).is_err() {
            self.lost_events += 1;
        }
    }
    fn retire(&mut self, r: Retired) {
        // The management thread drops (and zeroizes) it; if its queue is
        // full, dropping here is still correct, only off-schedule.
        let _ = self.to_mgmt.try_send(FromWorker::Retired(r));
    }
}

impl WorkerThread {
    pub(crate) fn run(mut self) {
        if let Some(core) = self.core {
            core_affinity::set_for_current(core);
        }
        let ports = self.sockets.tx.len();
        let mut rx = Burst::new();
        let mut opened: Vec<Open> = Vec::with_capacity(MAX_BURST);
        let mut actions = vec![Action::Held; MAX_BURST];
        let mut tx: Vec<Burst> = (0..ports).map(|_| Burst::new()).collect();
        let mut idle_loops = 0u32;
        let mut last_tick = Instant::now();
        let (to_mgmt, misses) = (self.to_mgmt.clone(), self.misses.clone());
        let mut out = Output {
            index: self.index,
            to_mgmt: &to_mgmt,
            misses: &misses,
            limiter: MissLimiter::new(NEIGHBOR_MISSES_PER_SEC, NEIGHBOR_MISS_BURST),
            lost_events: 0,
        };
        let mut held: Vec<(UmemFrame, bool)> = Vec::with_capacity(256);
        let mut inbox: Vec<(UmemFrame, (u8, bool))> = Vec::with_capacity(MAX_BURST);
        let mut turns = 0u64;
        #[cfg(feature = "fault-injection")]
        let started = Instant::now();

        while !self.stop.load(Ordering::Relaxed) {
            turns += 1;
            self.heartbeat.beat(turns);
            #[cfg(feature = "fault-injection")]
            if let Some(f) = self.fault {
                f.play(self.index, started.elapsed());
            }
            let mut work = 0usize;
            // Table updates, between bursts.
            while let Ok(u) = self.updates.try_recv() {
                if let Update::Stats(tag) = u {
                    let shell = ShellStats {
                        sockets: self.socket_stats(),
                        neighbor_misses_suppressed: out.limiter.suppressed,
                        events_lost: out.lost_events,
                    };
                    let _ = self.to_mgmt.try_send(FromWorker::Shell(tag, self.index, shell));
                }
                self.pipeline.apply(u, &mut out);
                work += 1;
            }
            // Frames released from the hold queue, and frames handed off to
            // us by other workers, go through the pipeline again.
            let headroom = self.rings.config().umem.headroom as usize;
            // VPN monitor probes are built here and go the same way, as
            // packets from the LAN (port 0).
            // (Released decrypted frames and probes take the decrypted
            // path: their sources lie behind a tunnel or are the gateway's.)
            if self.pipeline.has_released() || self.pipeline.has_probes() {
                let (rings, pipeline) = (&mut self.rings, &mut self.pipeline);
                let mut lost = 0;
                let mut take_in = |bytes: &[u8], decrypted: bool| match copy_in(rings, headroom, bytes) {
                    Some(f) => held.push((f, decrypted)),
                    None => lost += 1,
                };
                pipeline.drain_released(&mut take_in);
                pipeline.drain_probes(|bytes| take_in(bytes, true));
                for _ in 0..lost {
                    self.pipeline.count_drop(DropReason::NoFrame);
                }
                while let Some(&(_, decrypted)) = held.first() {
                    // A run of one kind, at most a burst.
                    let take = held.iter().take(MAX_BURST).take_while(|(_, d)| *d == decrypted).count();
                    opened.extend(held.drain(..take).map(|(f, _)| Open::new(f)));
                    work +=
                        self.run_opened(&mut opened, &mut actions, PortId(0), decrypted, &mut out, &mut tx);
                }
            }
            // Frames handed off to us, in bursts of one port and kind.
            while let Some(h) = self.handoffs.recv(usize::from(self.index)) {
                let kind = (h.rx_port, h.decrypted);
                let f = copy_in(&mut self.rings, headroom, &h.buf[..usize::from(h.len)]);
                self.handoffs.release(h);
                match f {
                    Some(f) => inbox.push((f, kind)),
                    None => self.pipeline.count_drop(DropReason::NoFrame),
                }
                if inbox.len() == MAX_BURST {
                    break;
                }
            }
            while let Some(&(_, kind)) = inbox.first() {
                let take = inbox.iter().take_while(|(_, k)| *k == kind).count();
                opened.extend(inbox.drain(..take).map(|(f, _)| Open::new(f)));
                let (port, decrypted) = kind;
                work +=
                    self.run_opened(&mut opened, &mut actions, PortId(port), decrypted, &mut out, &mut tx);
            }

            for k in 0..self.sockets.rx.len() {
                let (sock, port) = self.sockets.rx[k];
                if self.rings.rx_burst(sock, &mut rx) == 0 {
                    continue;
                }
                work += rx.len();
                while let Some(f) = rx.pop() {
                    opened.push(Open::new(f));
                }
                let now = Instant::now();
                let n = opened.len();
                self.pipeline.process_burst(now, port, &mut opened, &mut actions[..n], &mut out);
                self.dispatch(&mut opened, &actions, port, &mut tx);
            }
            for (p, burst) in tx.iter_mut().enumerate() {
                self.flush(PortId(p as u8), burst);
            }
            self.rings.poll();

            let now = Instant::now();
            if now.duration_since(last_tick) >= Duration::from_millis(10) {
                self.pipeline.tick(now, &mut out);
                out.limiter.refill(now.duration_since(last_tick));
                last_tick = now;
            }
            if work == 0 {
                idle_loops = idle_loops.saturating_add(1);
                if !self.busy_poll && idle_loops > 256 {
                    std::thread::sleep(self.idle_sleep);
                }
            } else {
                idle_loops = 0;
            }
        }
    }

    /// Runs the frames in `opened` (at most a burst) through the pipeline,
    /// as received on `port` or as decrypted inner packets, and sends each
    /// where its action says. Returns how many there were.
    fn run_opened(
        &mut self,
        opened: &mut Vec<Open>,
        actions: &mut [Action],
        port: PortId,
        decrypted: bool,
        out: &mut Output<'_>,
        tx: &mut [Burst],
    ) -> usize {
        let n = opened.len();
        let now = Instant::now();
        if decrypted {
            self.pipeline.process_decrypted_burst(now, port, opened, &mut actions[..n], out);
        } else {
            self.pipeline.process_burst(now, port, opened, &mut actions[..n], out);
        }
        self.dispatch(opened, actions, port, tx);
        n
    }

    /// Sends each frame where its action says, and empties `opened`.
    fn dispatch(&mut self, opened: &mut Vec<Open>, actions: &[Action], rx_port: PortId, tx: &mut [Burst]) {
        for (o, a) in opened.drain(..).zip(actions.iter()) {
            let f = o.close();
            match *a {
                Action::Tx(p) => match tx.get_mut(usize::from(p.0)) {
                    Some(b) => {
                        if let Err(f) = b.push(f) {
                            // A full burst goes out now, and the frame
                            // joins the next one.
                            self.flush(p, b);
                            if let Err(f) = b.push(f) {
                                self.pipeline.count_drop(DropReason::TxRingFull);
                                self.rings.recycle(f);
                            }
                        }
                    }
                    None => self.rings.recycle(f),
                },
                Action::HandOff(w) | Action::HandOffDecrypted(w) => {
                    let decrypted = matches!(*a, Action::HandOffDecrypted(_));
                    if !self.handoffs.send(usize::from(w.0), f.data(), rx_port.0, decrypted) {
                        self.pipeline.count_drop(DropReason::HandoffFull);
                    }
                    self.rings.recycle(f);
                }
                Action::Drop(_) | Action::Held | Action::Fragment => self.rings.recycle(f),
            }
        }
        // The later fragments of datagrams fragmented before encryption
        // follow the burst (its frames hold their first fragments).
        if self.pipeline.has_fragments() {
            let headroom = self.rings.config().umem.headroom as usize;
            let (rings, pipeline, sockets) = (&mut self.rings, &mut self.pipeline, &self.sockets);
            let (mut no_frame, mut ring_full) = (0, 0);
            pipeline.drain_fragments(|port, bytes| {
                let Some(f) = copy_in(rings, headroom, bytes) else {
                    no_frame += 1;
                    return;
                };
                let p = usize::from(port.0);
                let (Some(b), Some(&sock)) = (tx.get_mut(p), sockets.tx.get(p)) else {
                    rings.recycle(f);
                    return;
                };
                let Err(f) = b.push(f) else { return };
                // A full burst goes out now (as `flush` does), and the
                // frame joins the next one.
                rings.tx_burst(sock, b);
                ring_full += b.len();
                rings.recycle_burst(b);
                if let Err(f) = b.push(f) {
                    rings.recycle(f);
                    ring_full += 1;
                }
            });
            for _ in 0..no_frame {
                self.pipeline.count_drop(DropReason::NoFrame);
            }
            for _ in 0..ring_full {
                self.pipeline.count_drop(DropReason::TxRingFull);
            }
        }
    }
}

impl WorkerThread {
    /// Non-zero AF_XDP counters of every socket of this worker.
    fn socket_stats(&self) -> Vec<SocketStatsView> {
        let mut v = Vec::new();
        for (id, info) in self.rings.sockets() {
            let c = self.rings.counters(id);
            let mut counters = vec![
                ("rx-packets", c.rx_packets),
                ("tx-packets", c.tx_packets),
                ("tx-completed", c.tx_completed),
                ("tx-ring-full", c.tx_ring_full),
                ("fill-starved", c.fill_starved),
                ("kick-errors", c.kick_errors),
            ];
            if let Ok(k) = self.rings.kernel_stats(id) {
                counters.extend([
                    ("kernel-rx-dropped", k.rx_dropped),
                    ("kernel-rx-ring-full", k.rx_ring_full),
                    ("kernel-rx-fill-ring-empty", k.rx_fill_ring_empty_descs),
                    ("kernel-rx-invalid-descs", k.rx_invalid_descs),
                    ("kernel-tx-invalid-descs", k.tx_invalid_descs),
                ]);
            }
            v.push(SocketStatsView {
                port: info.port,
                queue: info.queue,
                counters: counters
                    .into_iter()
                    .filter(|(_, n)| *n != 0)
                    .map(|(k, n)| (k.to_owned(), n))
                    .collect(),
            });
        }
        v
    }

    /// Transmits a port's burst. What the ring could not take is dropped
    /// and counted: a full tx ring means the port is saturated.
    fn flush(&mut self, port: PortId, burst: &mut Burst) {
        if burst.is_empty() {
            return;
        }
        let Some(&sock) = self.sockets.tx.get(usize::from(port.0)) else {
            self.rings.recycle_burst(burst);
            return;
        };
        self.rings.tx_burst(sock, burst);
        for _ in 0..burst.len() {
            self.pipeline.count_drop(DropReason::TxRingFull);
        }
        self.rings.recycle_burst(burst);
    }
}

/// A fresh frame holding a copy of `bytes` (held or handed-off frames).
fn copy_in(rings: &mut XdpSockets, headroom: usize, bytes: &[u8]) -> Option<UmemFrame> {
    let mut f = rings.alloc()?;
    if f.reset(headroom).is_err() || f.append(bytes.len()).is_err() {
        rings.recycle(f);
        return None;
    }
    f.data_mut().copy_from_slice(bytes);
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam::channel::bounded;
    use esprit_dataplane::lab::{self, LabOptions, Side};
    use esprit_dataplane::{
        ExpireReason, Lifetime, NextHop, OutboundInstall, Route, RouteTable, SaId, VecFrame, WorkerId,
    };
    use std::net::Ipv4Addr;

    /// A stranger's flood of neighbour misses (transit to
    /// 70,000 distinct unresolved next hops, more than the event channel
    /// holds) neither crowds out the expiry and acquire events that follow
    /// nor reaches the management thread past the token bucket.
    #[test]
    fn a_neighbor_miss_flood_loses_no_expiry_and_no_acquire() {
        let opts = LabOptions { installed: vec![], ..LabOptions::default() };
        let mut w = lab::gateway(Side::A, &opts);
        let mut sink = esprit_dataplane::VecOutput::default();
        // The lab's routes, plus a connected /10 on the WAN: every address
        // in it is its own, unresolved, next hop.
        let routes = RouteTable::new([
            Route {
                prefix: Ipv4Addr::new(10, 1, 0, 0),
                len: 16,
                next_hop: NextHop::Connected { port: lab::LAN },
            },
            Route {
                prefix: Ipv4Addr::new(192, 0, 2, 0),
                len: 24,
                next_hop: NextHop::Connected { port: lab::WAN },
            },
            Route { prefix: Ipv4Addr::new(10, 2, 0, 0), len: 16, next_hop: NextHop::Tunnel(lab::TUNNEL) },
            Route {
                prefix: Ipv4Addr::new(100, 64, 0, 0),
                len: 10,
                next_hop: NextHop::Connected { port: lab::WAN },
            },
        ])
        .unwrap();
        w.apply(Update::Routes(Arc::new(routes)), &mut sink);
        // Proxy-ID 0 gets an SA whose soft and hard byte lifetimes the
        // first packet passes; proxy-ID 1 has none (acquire).
        let (out_sa, _) = lab::sa_pair(Side::A, 0, &opts);
        let pid0 = lab::seed_proxy_ids(Side::A)[0];
        w.apply(
            Update::Outbound(OutboundInstall {
                id: SaId(0x77),
                vpn: lab::VPN,
                proxy_id: pid0,
                owner: WorkerId(0),
                sa: Some(Box::new(out_sa)),
                life: Lifetime { soft_bytes: 1, hard_bytes: 2, idle_secs: 0 },
            }),
            &mut sink,
        );

        let (to_mgmt, events) = bounded::<FromWorker>(EVENT_CHANNEL);
        let (misses_tx, misses) = bounded::<NeighborMissReport>(NEIGHBOR_MISS_CHANNEL);
        let mut out = Output {
            index: 0,
            to_mgmt: &to_mgmt,
            misses: &misses_tx,
            limiter: MissLimiter::new(NEIGHBOR_MISSES_PER_SEC, NEIGHBOR_MISS_BURST),
            lost_events: 0,
        };
        let now = Instant::now();
        let flood = 70_000u32;
        let base = u32::from(Ipv4Addr::new(100, 64, 0, 1));
        let src = Side::A.host(1);
        let mut sent = 0;
        while sent < flood {
            let n = (flood - sent).min(MAX_BURST as u32);
            let mut frames: Vec<VecFrame> = (0..n)
                .map(|k| {
                    let dst = Ipv4Addr::from(base + sent + k);
                    VecFrame::new(2048, 256, &lab::lan_frame(Side::A, src, dst, 16))
                })
                .collect();
            let mut actions = vec![Action::Held; frames.len()];
            w.process_burst(now, lab::LAN, &mut frames, &mut actions, &mut out);
            sent += n;
        }
        // Then what the control plane must hear: an expiry and an acquire.
        for dst in [Side::B.host(1), Side::B.host(2)] {
            let mut frames = vec![VecFrame::new(2048, 256, &lab::lan_frame(Side::A, src, dst, 16))];
            let mut actions = [Action::Held];
            w.process_burst(now, lab::LAN, &mut frames, &mut actions, &mut out);
        }

        let (mut soft, mut hard, mut acquires) = (0, 0, 0);
        for m in events.try_iter() {
            match m {
                FromWorker::Event(
                    _,
                    WorkerEvent::SoftExpire { sa: SaId(0x77), reason: ExpireReason::Bytes },
                ) => soft += 1,
                FromWorker::Event(
                    _,
                    WorkerEvent::HardExpire { sa: SaId(0x77), reason: ExpireReason::Bytes },
                ) => hard += 1,
                FromWorker::Event(_, WorkerEvent::Acquire { .. }) => acquires += 1,
                FromWorker::Event(_, WorkerEvent::NeighborMiss { .. }) => {
                    panic!("a neighbour miss on the event channel")
                }
                _ => {}
            }
        }
        assert_eq!((soft, hard, acquires), (1, 1, 1));
        assert_eq!(out.lost_events, 0);
        // The bucket let its burst through and counted the rest.
        assert_eq!(misses.len(), NEIGHBOR_MISS_BURST as usize);
        assert_eq!(out.limiter.suppressed, u64::from(flood) - u64::from(NEIGHBOR_MISS_BURST));
    }

    #[test]
    fn the_miss_bucket_refills_at_its_rate() {
        let mut b = MissLimiter::new(200, 4);
        assert!((0..4).all(|_| b.take()));
        assert!(!b.take());
        b.refill(Duration::from_millis(10)); // 2 tokens
        assert!(b.take() && b.take());
        assert!(!b.take());
        b.refill(Duration::from_millis(3)); // 0.6 token, kept
        assert!(!b.take());
        b.refill(Duration::from_millis(2)); // 1.0
        assert!(b.take());
        b.refill(Duration::from_secs(10));
        assert!((0..4).all(|_| b.take()));
        assert!(!b.take());
        assert_eq!(b.suppressed, 4);
    }
}
