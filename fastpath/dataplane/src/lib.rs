//! The packet pipeline of one fast-path worker, without I/O.
//!
//! A worker owns a burst of frames (up to [`MAX_BURST`]) taken from its
//! AF_XDP rings and calls [`Worker::process_burst`]; every frame comes back
//! with an [`Action`]: transmit on a port (rewritten in place: routed,
//! encrypted or decrypted), hand off to the worker that owns its SA, held
//! until its SA arrives, or dropped for a [`DropReason`]. The I/O shell
//! (`fastpathd`) moves the frames; this crate decides.
//!
//! The path of a burst (DESIGN.md §3):
//! 1. parse Ethernet/IPv4 with zero-copy views;
//! 2. ESP addressed to the gateway: SPI lookup, anti-replay, decrypt in
//!    place, inbound proxy-ID check (RFC 4301 §5.2), route, transmit;
//! 3. clear traffic: a source that only a tunnel may deliver is a spoof,
//!    dropped (`source.rs`); then longest-prefix route; into a tunnel interface: batch
//!    classification against the bound VPN's proxy-IDs, then the matched
//!    proxy-ID's SA encrypts in place; no SA yet: an acquire event to the
//!    control plane (rate-limited per proxy-ID) and a bounded hold queue;
//! 4. every drop is counted under its reason.
//!
//! Each stage has its own file under `worker/` (`ingress`, `classify`,
//! `encrypt`, `decrypt`, `forward`, `icmp`, `local`; the table in that
//! module's doc), over a per-packet context; an SA's per-packet counters
//! and limits share one cache line (`sa.rs`, offsets asserted).
//!
//! A decrypted packet whose next SA belongs to another worker is handed
//! off as the inner packet ([`Action::HandOffDecrypted`]) and taken
//! through [`Worker::process_decrypted_burst`] there.
//!
//! Guarantees: no panics on any packet; no allocation, lock or system call
//! in `process_burst` (but for the spoofed-source filter, rebuilt once
//! after its routes or VPNs changed, before the next burst); tables change
//! only through [`Update`]s applied between bursts; an SA's sequence numbers and replay window have one
//! writer (the worker that owns the SA; others hand its packets off).

pub mod counters;
pub mod drop;
pub mod fasthash;
pub mod flow;
mod hold;
#[doc(hidden)]
#[cfg(feature = "lab")]
pub mod lab;
pub mod mtu;
pub mod neighbor;
pub mod reassembly;
pub mod route;
mod sa;
pub mod source;
mod update;
mod worker;

#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz;

pub use counters::{CounterInfo, WorkerCounters};
pub use drop::{DropCounters, DropReason, DROP_REASON_COUNT};
pub use neighbor::NeighborTable;
pub use route::{NextHop, Route, RouteTable};
pub use sa::{Lifetime, SaCounters};
pub use update::{
    ExpireReason, FlowConf, InboundInstall, OutboundInstall, PortInfo, Probe, Retired, SaStats, TunnelConf,
    Update, VecOutput, VpnConf, WorkerEvent, WorkerOutput, WorkerStats,
};
pub use worker::{
    Action, Frame, VecFrame, Worker, WorkerConfig, ACQUIRE_BACKOFF_MAX_SHIFT, MAX_PROBE_DATA,
    MAX_PROBE_IDENTS,
};

/// Most frames in one burst (DESIGN.md §2).
pub const MAX_BURST: usize = 64;

/// A port (NIC netdev) by its position in fastpathd's port list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u8);

/// A tunnel interface, `tunnel.N` -> `TunnelId(N)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelId(pub u32);

/// A VPN (phase-2 definition) as numbered by the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VpnId(pub u32);

/// An SA as numbered by the control plane (one per direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaId(pub u64);

/// A worker thread by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u16);

impl core::fmt::Display for TunnelId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "tunnel.{}", self.0)
    }
}
