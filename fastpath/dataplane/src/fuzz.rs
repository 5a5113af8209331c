//! Fuzz entry points for the pipeline (see `fuzz/`).

use std::time::{Duration, Instant};

use crate::lab::{self, LabOptions, Side};
use crate::update::VecOutput;
use crate::{Action, PortId, Update, VecFrame, Worker};

/// A gateway of the lab with SAs installed, built once per fuzz process;
/// it takes VPN monitor replies (identifier 0x6573, controld's) too.
pub fn lab_gateway() -> Worker {
    let mut w = lab::gateway(Side::B, &LabOptions::default());
    w.apply(Update::ProbeIdent(0x6573), &mut VecOutput::default());
    // SYNs entering the tunnel are clamped (`set flow tcp-mss 536`).
    w.apply(Update::Flow(crate::FlowConf { tcp_mss: Some(536) }), &mut VecOutput::default());
    w
}

/// Feeds `data` as one Ethernet frame to `w`, first as if received on
/// the WAN port, then on the LAN port. Must never panic; every frame gets
/// an action.
pub fn worker_burst(w: &mut Worker, data: &[u8]) {
    let now = Instant::now();
    let mut out = VecOutput::default();
    for port in [lab::WAN, lab::LAN] {
        let mut frames = [VecFrame::new(2048, 256, data)];
        let mut actions = [Action::Held];
        w.process_burst(now, port, &mut frames, &mut actions, &mut out);
        if let Action::Tx(_) = actions[0] {
            let f = &frames[0];
            assert!(f.head + f.len <= f.buf.len());
        }
        // The later fragments of a datagram fragmented before encryption,
        // sent as the I/O shell sends them.
        w.drain_fragments(|_, b| assert!(b.len() > esprit_wire::ethernet::HEADER_LEN));
    }
}

/// The lab hub's two workers ([`lab::hub`]) with the hand-off between
/// them, as fastpathd moves frames: the multi-worker pipeline, hand-offs
/// and outer reassembly under one input.
#[derive(Debug)]
pub struct HubPair {
    workers: [Worker; 2],
    now: Instant,
    /// (to, frame, decrypted, rx port) in flight.
    inbox: Vec<(usize, Vec<u8>, bool, PortId)>,
}

impl Default for HubPair {
    fn default() -> Self {
        HubPair {
            workers: [lab::hub::worker(0), lab::hub::worker(1)],
            now: Instant::now(),
            inbox: Vec::new(),
        }
    }
}

/// Most rounds of hand-offs one burst may cause: a fragment to the worker
/// that reassembles its datagram, the datagram to its SA's owner, the
/// decrypted packet to its next SA's owner.
const HANDOFF_ROUNDS: usize = 3;

impl HubPair {
    fn burst(&mut self, w: usize, port: PortId, decrypted: bool, frames: &[Vec<u8>]) {
        let mut fs: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(2048, 256, f)).collect();
        let mut actions = vec![Action::Held; fs.len()];
        let mut out = VecOutput::default();
        let worker = &mut self.workers[w];
        if decrypted {
            worker.process_decrypted_burst(self.now, port, &mut fs, &mut actions, &mut out);
        } else {
            worker.process_burst(self.now, port, &mut fs, &mut actions, &mut out);
        }
        for (f, a) in fs.iter().zip(&actions) {
            assert!(f.head + f.len <= f.buf.len());
            match *a {
                Action::HandOff(to) => self.inbox.push((usize::from(to.0), f.packet().to_vec(), false, port)),
                Action::HandOffDecrypted(to) => {
                    self.inbox.push((usize::from(to.0), f.packet().to_vec(), true, port))
                }
                _ => {}
            }
        }
    }

    /// Delivers the hand-offs, a burst per (worker, kind, port), until none
    /// is left; panics if they do not settle within [`HANDOFF_ROUNDS`].
    fn settle(&mut self) {
        for _ in 0..=HANDOFF_ROUNDS {
            if self.inbox.is_empty() {
                return;
            }
            let inbox = core::mem::take(&mut self.inbox);
            for to in 0..2 {
                for decrypted in [false, true] {
                    for port in [lab::LAN, lab::WAN] {
                        let run: Vec<Vec<u8>> = inbox
                            .iter()
                            .filter(|(t, _, d, p)| *t == to && *d == decrypted && *p == port)
                            .map(|(_, b, _, _)| b.clone())
                            .collect();
                        if !run.is_empty() {
                            self.burst(to, port, decrypted, &run);
                        }
                    }
                }
            }
        }
        panic!("hand-offs did not settle in {HANDOFF_ROUNDS} rounds: {} left", self.inbox.len());
    }

    /// Counters of both workers: (reassembled, decrypted, encrypted).
    pub fn totals(&self) -> (u64, u64, u64) {
        let c = |f: fn(&crate::WorkerCounters) -> u64| self.workers.iter().map(|w| f(w.counters())).sum();
        (c(|c| c.reassembled), c(|c| c.decrypted), c(|c| c.encrypted))
    }
}

/// Feeds `data` to the hub's two workers. `data` is a list of records,
/// `[control][length: 2 bytes, big-endian][frame]`; the control byte says
/// which worker receives the frame (bit 0), on which port (bit 1: LAN or
/// WAN), whether as a decrypted inner packet handed off (bit 2), how far
/// the clock moves first (bits 3-4: none, 1 ms, 1 s, 4 s: past the
/// reassembly timeout, with a tick), and whether the burst ends after it
/// (bit 5). Hand-offs are delivered after every burst. Must never panic.
pub fn hub_bursts(h: &mut HubPair, data: &[u8]) {
    let mut rest = data;
    let mut burst: Vec<Vec<u8>> = Vec::new();
    let mut kind = None;
    while let [ctl, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        let k = (usize::from(ctl & 1), if ctl & 2 == 0 { lab::LAN } else { lab::WAN }, ctl & 4 != 0);
        let step = match (ctl >> 3) & 3 {
            0 => Duration::ZERO,
            1 => Duration::from_millis(1),
            2 => Duration::from_secs(1),
            _ => Duration::from_secs(4),
        };
        // A new kind, a clock step or a full burst ends the burst so far.
        if kind.is_some_and(|x| x != k) || !step.is_zero() || burst.len() == crate::MAX_BURST {
            h.flush(kind, &mut burst);
        }
        if !step.is_zero() {
            h.now += step;
            let mut out = VecOutput::default();
            for w in &mut h.workers {
                w.tick(h.now, &mut out);
            }
        }
        kind = Some(k);
        burst.push(frame.to_vec());
        if ctl & 0x20 != 0 {
            h.flush(kind, &mut burst);
        }
    }
    h.flush(kind, &mut burst);
}

impl HubPair {
    fn flush(&mut self, kind: Option<(usize, PortId, bool)>, burst: &mut Vec<Vec<u8>>) {
        if let (Some((w, port, decrypted)), false) = (kind, burst.is_empty()) {
            self.burst(w, port, decrypted, burst);
            self.settle();
        }
        burst.clear();
    }
}
