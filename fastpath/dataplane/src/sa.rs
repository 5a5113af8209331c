//! The worker's SA slots: per-SA contexts from `esprit-esp`, with the
//! counters that drive volume lifetimes and `get sa id N`.

use std::time::Instant;

use esprit_esp::{InboundSa, OutboundSa};

use esprit_wire::ethernet::MacAddr;

use crate::flow::InboundCheck;
use crate::{PortId, SaId, TunnelId, VpnId, WorkerId};

/// Volume lifetime of an SA in bytes (RFC 2409 §4.5 "kilobytes", RFC 4301
/// §4.4.2.1 soft and hard). 0 = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetime {
    /// Past this, the control plane is told to rekey (once).
    pub soft_bytes: u64,
    /// Past this, the SA carries no more traffic.
    pub hard_bytes: u64,
    /// Seconds without traffic after which the control plane hears
    /// `WorkerEvent::Idle` (ScreenOS `idletime`); 0 = never.
    pub idle_secs: u32,
}

/// Traffic an SA has carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaCounters {
    pub packets: u64,
    /// Bytes of inner packets (what lifetimes count).
    pub bytes: u64,
    /// Packets refused by this SA (replay, ICV, policy).
    pub errors: u64,
}

/// What the worker reads and writes of an SA for every packet it seals or
/// opens, on one 64-byte cache line (VPP's "hot" runtime half of an SA):
/// the traffic counters, the volume limits they are checked against, the
/// once-only report flags and the time of the last packet. It sits first
/// in [`OutEntry`] and [`InEntry`]; the ESP context (sequence number or
/// replay window, SPI, keys) follows it, its own per-packet fields on one
/// line too (`esprit_esp`'s `Hot`). The offsets are asserted below: a
/// field added here must find room on the line or go to the cold part.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
pub(crate) struct SaHot {
    /// Bytes of inner packets carried (what volume lifetimes count).
    pub bytes: u64,
    pub packets: u64,
    /// Packets refused by this SA (replay, ICV, policy).
    pub errors: u64,
    /// [`Lifetime::soft_bytes`] (0 = unlimited).
    pub soft_bytes: u64,
    /// [`Lifetime::hard_bytes`] (0 = unlimited).
    pub hard_bytes: u64,
    pub soft_reported: bool,
    pub hard_reported: bool,
    /// Set by the idle scan once reported, cleared by every packet.
    pub idle_reported: bool,
    pub last_used: Option<Instant>,
}

const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<SaHot>() == 64);
    assert!(align_of::<SaHot>() == 64);
    assert!(offset_of!(SaHot, bytes) == 0);
    assert!(offset_of!(SaHot, packets) == 8);
    assert!(offset_of!(SaHot, errors) == 16);
    assert!(offset_of!(SaHot, soft_bytes) == 24);
    assert!(offset_of!(SaHot, hard_bytes) == 32);
    assert!(offset_of!(SaHot, soft_reported) == 40);
    assert!(offset_of!(SaHot, hard_reported) == 41);
    assert!(offset_of!(SaHot, idle_reported) == 42);
    assert!(offset_of!(SaHot, last_used) == 48);
    assert!(offset_of!(SaHot, last_used) + size_of::<Option<Instant>>() <= 64);
    // First in both entries: the line the entry's box starts with.
    assert!(offset_of!(OutEntry, hot) == 0);
    assert!(offset_of!(InEntry, hot) == 0);
    // The outbound entry's outer next hop: read per packet, on the line
    // after.
    assert!(offset_of!(OutEntry, outer_hop) == 64);
    assert!(offset_of!(OutEntry, outer_hop) + size_of::<Option<OuterHop>>() <= 128);
};

impl SaHot {
    /// A fresh SA's line: no traffic yet, `life`'s volume limits.
    pub(crate) fn new(life: &Lifetime) -> SaHot {
        SaHot { soft_bytes: life.soft_bytes, hard_bytes: life.hard_bytes, ..SaHot::default() }
    }

    /// True when the SA carried its hard volume lifetime: it carries no
    /// more traffic.
    #[inline]
    pub(crate) fn hard_expired(&self) -> bool {
        self.hard_bytes != 0 && self.bytes >= self.hard_bytes
    }

    /// Counts one packet of `len` inner bytes at `now`.
    #[inline]
    pub(crate) fn count(&mut self, now: Instant, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
        self.last_used = Some(now);
        self.idle_reported = false;
    }

    /// True, once, when the bytes carried reach the soft volume lifetime.
    #[inline]
    pub(crate) fn soft_bytes_crossed(&mut self) -> bool {
        if !self.soft_reported && self.soft_bytes != 0 && self.bytes >= self.soft_bytes {
            self.soft_reported = true;
            return true;
        }
        false
    }

    /// True, once, when the bytes carried reach the hard volume lifetime.
    #[inline]
    pub(crate) fn hard_bytes_crossed(&mut self) -> bool {
        if !self.hard_reported && self.hard_expired() {
            self.hard_reported = true;
            return true;
        }
        false
    }

    /// The counters `get sa` shows.
    pub(crate) fn counters(&self) -> SaCounters {
        SaCounters { packets: self.packets, bytes: self.bytes, errors: self.errors }
    }
}

/// An outbound SA installed on this worker.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct OutEntry {
    /// Counters and lifetimes, line 0.
    pub hot: SaHot,
    /// Where this SA's packets leave, resolved once per table generation
    /// (line 1).
    pub outer_hop: Option<OuterHop>,
    pub id: SaId,
    /// Seconds without traffic before `WorkerEvent::Idle` (0 = never).
    pub idle_secs: u32,
    pub sa: OutboundSa,
}

impl OutEntry {
    pub(crate) fn new(id: SaId, sa: OutboundSa, life: &Lifetime) -> OutEntry {
        OutEntry { hot: SaHot::new(life), outer_hop: None, id, idle_secs: life.idle_secs, sa }
    }
}

/// An SA's resolved outer next hop (see `Worker::seal_for_tunnel`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OuterHop {
    pub generation: u64,
    pub port: PortId,
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    pub max_inner: usize,
}

/// Where a proxy-ID's outbound traffic goes.
#[derive(Debug)]
pub(crate) enum OutSlot {
    /// No SA yet: the last acquire was sent at `last_acquire`, and
    /// `repeats` more after the first (each doubles the wait for the next,
    /// see [`crate::WorkerConfig::acquire_interval`]).
    Empty { last_acquire: Option<Instant>, repeats: u8 },
    /// This worker owns the SA.
    Local(Box<OutEntry>),
    /// Another worker owns it: hand the packet off.
    Remote { owner: WorkerId, id: SaId },
}

impl OutSlot {
    /// No SA, no acquire sent yet.
    pub(crate) const EMPTY: OutSlot = OutSlot::Empty { last_acquire: None, repeats: 0 };
}

/// An inbound SA installed on this worker.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct InEntry {
    /// Counters and lifetimes, line 0.
    pub hot: SaHot,
    pub id: SaId,
    pub vpn: VpnId,
    pub tunnel: TunnelId,
    /// Seconds without traffic before `WorkerEvent::Idle` (0 = never).
    pub idle_secs: u32,
    /// What its decrypted packets must match (RFC 4301 §5.2).
    pub check: InboundCheck,
    pub sa: InboundSa,
}

#[derive(Debug)]
pub(crate) enum InSlot {
    Local(Box<InEntry>),
    Remote { owner: WorkerId },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hot(soft: u64, hard: u64) -> SaHot {
        SaHot::new(&Lifetime { soft_bytes: soft, hard_bytes: hard, idle_secs: 0 })
    }

    #[test]
    fn volume_limits_are_reported_once_each() {
        let now = Instant::now();
        let mut h = hot(1000, 2000);
        h.count(now, 999);
        assert!(!h.soft_bytes_crossed());
        h.count(now, 1);
        assert!(h.soft_bytes_crossed());
        assert!(!h.soft_bytes_crossed(), "soft limit reported twice");
        assert!(!h.hard_expired());
        h.count(now, 1000);
        assert!(h.hard_expired());
        assert!(h.hard_bytes_crossed());
        assert!(!h.hard_bytes_crossed(), "hard limit reported twice");
        assert_eq!(h.counters(), SaCounters { packets: 3, bytes: 2000, errors: 0 });
    }

    #[test]
    fn zero_limits_never_expire() {
        let mut h = hot(0, 0);
        h.count(Instant::now(), usize::MAX >> 1);
        assert!(!h.soft_bytes_crossed());
        assert!(!h.hard_expired());
        assert!(!h.hard_bytes_crossed());
    }

    #[test]
    fn a_packet_clears_the_idle_report() {
        let now = Instant::now();
        let mut h = hot(0, 0);
        h.idle_reported = true;
        h.count(now, 64);
        assert!(!h.idle_reported);
        assert_eq!(h.last_used, Some(now));
    }
}
