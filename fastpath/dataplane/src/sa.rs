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

/// An outbound SA installed on this worker.
#[derive(Debug)]
pub(crate) struct OutEntry {
    pub id: SaId,
    pub sa: OutboundSa,
    pub life: Lifetime,
    pub counters: SaCounters,
    pub soft_reported: bool,
    pub hard_reported: bool,
    pub last_used: Option<Instant>,
    pub idle_reported: bool,
    /// Where this SA's packets leave, resolved once per table generation.
    pub outer_hop: Option<OuterHop>,
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
pub(crate) struct InEntry {
    pub id: SaId,
    pub sa: InboundSa,
    pub vpn: VpnId,
    pub tunnel: TunnelId,
    /// What its decrypted packets must match (RFC 4301 §5.2).
    pub check: InboundCheck,
    pub life: Lifetime,
    pub counters: SaCounters,
    pub soft_reported: bool,
    pub hard_reported: bool,
    pub last_used: Option<Instant>,
    pub idle_reported: bool,
}

#[derive(Debug)]
pub(crate) enum InSlot {
    Local(Box<InEntry>),
    Remote { owner: WorkerId },
}
