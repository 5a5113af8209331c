//! The worker thread: poll the AF_XDP rings of its queues, run each burst
//! through the dataplane pipeline, transmit, recycle; apply table updates
//! between bursts. No locks, no allocation and no system call on this path
//! other than the ring kicks AF_XDP asks for (and the idle nap, when not
//! busy-polling).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use esprit_dataplane::{
    Action, DropReason, Event, Frame as DpFrame, PortId, Retired, Update, Worker as Pipeline, WorkerOutput,
    MAX_BURST,
};
use esprit_fastpath_api::SocketStatsView;
use esprit_xdp::{Burst, Frame, SocketId, Worker as Rings};

use crate::handoff::Handoffs;

/// What a worker sends to the management thread.
#[derive(Debug)]
pub(crate) enum FromWorker {
    Event(u16, Event),
    Retired(Retired),
    /// AF_XDP counters, answering the stats request with this tag.
    Sockets(u64, u16, Vec<SocketStatsView>),
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
    pub(crate) rings: Rings,
    pub(crate) pipeline: Pipeline,
    pub(crate) sockets: SocketMap,
    pub(crate) updates: Receiver<Update>,
    pub(crate) to_mgmt: Sender<FromWorker>,
    pub(crate) handoffs: Arc<Handoffs>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) busy_poll: bool,
    pub(crate) idle_sleep: Duration,
}

/// A received frame opened up to its whole chunk, as the pipeline wants it.
struct Open {
    frame: Frame,
    head: usize,
    len: usize,
}

impl Open {
    fn new(mut frame: Frame) -> Open {
        let (head, len, tail) = (frame.headroom(), frame.len(), frame.tailroom());
        // Both cannot fail: exactly the room the frame reports.
        let _ = frame.prepend(head);
        let _ = frame.append(tail);
        Open { frame, head, len }
    }

    fn close(mut self) -> Frame {
        let _ = self.frame.remove_front(self.head);
        self.frame.truncate(self.len);
        self.frame
    }
}

impl DpFrame for Open {
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

struct Output<'a> {
    index: u16,
    to_mgmt: &'a Sender<FromWorker>,
    lost_events: u64,
}

impl WorkerOutput for Output<'_> {
    fn event(&mut self, e: Event) {
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
        let to_mgmt = self.to_mgmt.clone();
        let mut out = Output { index: self.index, to_mgmt: &to_mgmt, lost_events: 0 };
        let mut held: Vec<(Frame, bool)> = Vec::with_capacity(256);
        let mut inbox: Vec<(Frame, (u8, bool))> = Vec::with_capacity(MAX_BURST);

        while !self.stop.load(Ordering::Relaxed) {
            let mut work = 0usize;
            // Table updates, between bursts.
            while let Ok(u) = self.updates.try_recv() {
                if let Update::Stats(tag) = u {
                    let _ = self.to_mgmt.try_send(FromWorker::Sockets(tag, self.index, self.socket_stats()));
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
fn copy_in(rings: &mut Rings, headroom: usize, bytes: &[u8]) -> Option<Frame> {
    let mut f = rings.alloc()?;
    if f.reset(headroom).is_err() || f.append(bytes.len()).is_err() {
        rings.recycle(f);
        return None;
    }
    f.data_mut().copy_from_slice(bytes);
    Some(f)
}
