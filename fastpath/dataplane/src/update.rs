//! What flows between the management thread and a worker: table updates
//! in, events and retired SA contexts out. Updates are applied between
//! bursts, so a burst always sees one consistent set of tables.

use core::net::Ipv4Addr;
use std::sync::Arc;

use esprit_esp::{InboundSa, OutboundSa};
use esprit_policy::{FlowKey, ProxyId, ProxyIdIndex, ProxyIdTable};
use esprit_wire::ethernet::MacAddr;

use crate::counters::WorkerCounters;
use crate::drop::DropCounters;
use crate::sa::{Lifetime, SaCounters};
use crate::{NeighborTable, PortId, RouteTable, SaId, TunnelId, VpnId, WorkerId};

/// A port as the workers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub mac: MacAddr,
    pub mtu: u16,
    /// The gateway's IPv4 addresses on this port (sources of ICMP errors).
    pub addrs: Vec<Ipv4Addr>,
}

/// A tunnel interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConf {
    pub id: TunnelId,
    /// MTU of the tunnel interface: the largest inner packet it carries.
    pub mtu: u16,
    pub vpn: Option<VpnId>,
}

/// A VPN's proxy-ID table (compiled), shared by all workers.
#[derive(Clone)]
pub struct VpnConf {
    pub id: VpnId,
    pub table: Arc<ProxyIdTable>,
}

impl core::fmt::Debug for VpnConf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VpnConf").field("id", &self.id).field("proxy_ids", &self.table.len()).finish()
    }
}

/// An outbound SA for one proxy-ID of one VPN. The context (`sa`) goes only
/// to the owning worker; the others get `sa: None` and hand packets off.
#[derive(Debug)]
pub struct OutboundInstall {
    pub id: SaId,
    pub vpn: VpnId,
    pub proxy_id: ProxyId,
    pub owner: WorkerId,
    pub sa: Option<Box<OutboundSa>>,
    pub life: Lifetime,
}

/// An inbound SA: its SPI, the tunnel it belongs to and the proxy-ID its
/// packets must match (RFC 4301 §5.2).
#[derive(Debug)]
pub struct InboundInstall {
    pub id: SaId,
    pub spi: u32,
    pub vpn: VpnId,
    pub tunnel: TunnelId,
    pub proxy_id: ProxyId,
    pub owner: WorkerId,
    pub sa: Option<Box<InboundSa>>,
    pub life: Lifetime,
}

/// A change to a worker's tables.
#[derive(Debug)]
pub enum Update {
    /// The ports, indexed by `PortId`.
    Ports(Vec<PortInfo>),
    Routes(Arc<RouteTable>),
    Neighbors(Arc<NeighborTable>),
    Tunnel(TunnelConf),
    RemoveTunnel(TunnelId),
    /// A VPN's proxy-ID table, new or changed. Installed SAs stay with
    /// their proxy-IDs (matched by value), SAs of removed proxy-IDs are
    /// retired.
    Vpn(VpnConf),
    RemoveVpn(VpnId),
    /// Install, or replace (make-before-break: the new SA takes the traffic
    /// from the next packet on), the outbound SA of a proxy-ID.
    Outbound(OutboundInstall),
    /// Install an inbound SA (an old one for the same proxy-ID keeps working
    /// until removed: both coexist during a rekey).
    Inbound(InboundInstall),
    RemoveOutbound(SaId),
    RemoveInbound {
        spi: u32,
    },
    /// Report counters as a [`WorkerEvent::Stats`] tagged with this number.
    Stats(u64),
    /// Send a VPN monitor echo request (built by the worker, then through
    /// the pipeline like any packet from the LAN).
    Probe(Probe),
    /// Echo replies with this ICMP identifier, decrypted and addressed to
    /// the gateway, are VPN monitor replies: consumed and reported as
    /// [`WorkerEvent::ProbeReply`]. Every worker gets it (the reply is decrypted
    /// by the inbound SA's owner).
    ProbeIdent(u16),
    /// Settings of the flow through tunnels (`set flow ...`).
    Flow(FlowConf),
}

/// How packets entering a tunnel are adjusted (`set flow ...`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowConf {
    /// `set flow tcp-mss N`: the largest MSS a TCP SYN or SYN-ACK entering
    /// a tunnel may announce; `None` leaves SYNs as they are.
    pub tcp_mss: Option<u16>,
}

/// A VPN monitor probe: an ICMP echo request from one of the gateway's
/// addresses to a host behind the peer, sent through the tunnel its
/// destination is routed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ident: u16,
    pub seq: u16,
    /// Bytes of echo data after the ICMP header.
    pub size: u16,
}

/// Something the control plane must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEvent {
    /// Traffic matched a proxy-ID that has no SA (rate-limited per proxy-ID).
    Acquire { vpn: VpnId, tunnel: TunnelId, proxy_id: ProxyId, index: ProxyIdIndex, flow: FlowKey },
    /// An SA passed its soft volume lifetime or sequence-number threshold:
    /// rekey it.
    SoftExpire { sa: SaId, reason: ExpireReason },
    /// An SA passed its hard lifetime: it no longer carries traffic.
    HardExpire { sa: SaId, reason: ExpireReason },
    /// An SA carried nothing for its idle time (reported once per idle
    /// period).
    Idle { sa: SaId },
    /// A next hop has no MAC address: ask the kernel to resolve it.
    NeighborMiss { port: PortId, addr: Ipv4Addr },
    /// Answer to [`Update::Stats`].
    Stats(Box<WorkerStats>),
    /// A VPN monitor echo reply came back through the tunnel.
    ProbeReply { vpn: VpnId, tunnel: TunnelId, sa: SaId, src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16 },
}

/// Why an SA expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireReason {
    Bytes,
    /// RFC 4303 §3.3.3: the sequence counter is (nearly) exhausted.
    Sequence,
}

/// Counters of one SA on one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaStats {
    pub id: SaId,
    pub spi: u32,
    pub outbound: bool,
    /// Inbound SAs: the VPN and tunnel interface they deliver into.
    pub binding: Option<(VpnId, TunnelId)>,
    pub counters: SaCounters,
    /// Outbound: last sequence number sent; inbound: highest received.
    pub seq: u64,
    /// Inbound: the anti-replay window in packets (0 = off); outbound: 0.
    pub replay_window: u32,
    /// 64-bit extended sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Inbound: decrypted packets are not held to the proxy-ID (`proxy-id
    /// check` off with one proxy-ID).
    pub admits_any: bool,
}

/// A snapshot of one worker's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    pub tag: u64,
    pub worker: WorkerId,
    pub counters: WorkerCounters,
    pub drops: DropCounters,
    pub sas: Vec<SaStats>,
}

/// An SA context the worker no longer uses, sent back so that it is
/// dropped (and its keys zeroized) off the packet path.
#[derive(Debug)]
pub enum Retired {
    Outbound(Box<OutboundSa>),
    Inbound(Box<InboundSa>),
}

/// Where a worker puts what it produces besides frames.
pub trait WorkerOutput {
    fn event(&mut self, e: WorkerEvent);
    fn retire(&mut self, r: Retired);
}

/// Collects into vectors (tests, benches, single-threaded use).
#[derive(Debug, Default)]
pub struct VecOutput {
    pub events: Vec<WorkerEvent>,
    pub retired: Vec<Retired>,
}

impl WorkerOutput for VecOutput {
    fn event(&mut self, e: WorkerEvent) {
        self.events.push(e);
    }
    fn retire(&mut self, r: Retired) {
        self.retired.push(r);
    }
}
