//! One worker's tables and its burst pipeline.

use core::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_esp::{DecapError, EncapError, Payload};
use esprit_policy::{FlowKey, ProxyIdIndex, Verdict};
use esprit_wire::ethernet::{self, ethertype, MacAddr};
use esprit_wire::ipv4_frag::Plan as FragmentPlan;
use esprit_wire::udp_encap::{self, Encapsulated as Encap};
use esprit_wire::{esp, icmpv4, ip_proto, ipv4, tcp, udp};

use crate::counters::WorkerCounters;
use crate::drop::{DropCounters, DropReason};
use crate::fasthash::{FastMap, IdMap};
use crate::flow::{flow_key_v4, InboundCheck};
use crate::hold::{HoldKey, HoldPool};
use crate::mtu::{FragmentOut, FRAGMENT_HEADROOM, MAX_FRAGMENTS, MAX_FRAGMENT_LEN};
use crate::reassembly::{Reassembler, Reassembly, ReassemblyConfig};
use crate::sa::{InEntry, InSlot, OutEntry, OutSlot, OuterHop};
use crate::source::SourceFilter;
use crate::update::{
    ExpireReason, FlowConf, PortInfo, Probe, Retired, SaStats, TunnelConf, Update, VpnConf, WorkerEvent,
    WorkerOutput, WorkerStats,
};
use crate::{NeighborTable, NextHop, PortId, RouteTable, SaId, TunnelId, VpnId, WorkerId, MAX_BURST};

/// A frame the pipeline works on: the whole buffer (headroom and tailroom
/// included) and where the packet sits in it. The pipeline moves the
/// packet's start backwards to prepend headers and its end forwards to
/// append the ESP trailer.
pub trait Frame {
    fn buffer(&mut self) -> &mut [u8];
    fn head(&self) -> usize;
    fn len(&self) -> usize;
    fn set_packet(&mut self, head: usize, len: usize);
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A frame in a `Vec` (tests, benches, re-injected held packets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecFrame {
    pub buf: Vec<u8>,
    pub head: usize,
    pub len: usize,
}

impl VecFrame {
    /// A `capacity`-byte frame holding `packet` at offset `headroom`.
    pub fn new(capacity: usize, headroom: usize, packet: &[u8]) -> VecFrame {
        let mut buf = vec![0; capacity.max(headroom + packet.len())];
        buf[headroom..headroom + packet.len()].copy_from_slice(packet);
        VecFrame { buf, head: headroom, len: packet.len() }
    }

    pub fn packet(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }
}

impl Frame for VecFrame {
    fn buffer(&mut self) -> &mut [u8] {
        &mut self.buf
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

/// What becomes of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Transmit the (rewritten) frame on this port.
    Tx(PortId),
    /// Drop it (and recycle the frame); already counted.
    Drop(DropReason),
    /// A copy waits in the hold queue for its SA; recycle the frame.
    Held,
    /// Its SA belongs to another worker: pass the frame to it unchanged
    /// (it goes through [`Worker::process_burst`] there).
    HandOff(WorkerId),
    /// Decrypted here, and the SA of its next hop belongs to another
    /// worker (hub and spoke): the frame now holds an Ethernet header and
    /// the inner packet, which the other worker takes through
    /// [`Worker::process_decrypted_burst`] (its inbound selector was
    /// checked here; the outer headers are gone).
    HandOffDecrypted(WorkerId),
    /// An outer IP fragment was copied into the reassembly buffers; its
    /// datagram goes on with the fragment that completes it. Recycle the
    /// frame.
    Fragment,
}

/// How the frames of a burst entered the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// Received on a port: ESP to decrypt, or clear traffic whose source
    /// must pass the spoofed-source check.
    Port,
    /// Inner packets already decrypted and admitted by their SA's inbound
    /// selector (handed off by another worker, or released from the hold
    /// queue), or built by the gateway (VPN monitor probes).
    Decrypted,
}

/// Tunables of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub id: WorkerId,
    /// Frames the hold queue keeps in all (allocated at start).
    pub hold_slots: usize,
    /// Frames one proxy-ID may hold.
    pub hold_per_proxy_id: usize,
    /// How long a held frame waits for its SA.
    pub hold_timeout: Duration,
    /// Least time between the first two acquires for one proxy-ID; each
    /// repeat doubles it, up to 2^[`ACQUIRE_BACKOFF_MAX_SHIFT`] times
    /// (500 ms: then 1, 2, 4 and 8 s). A lost acquire is still answered
    /// within seconds, while 10,000 proxy-IDs waiting for their turn in
    /// IKE cost the control plane a few thousand events a second at
    /// first, not 20,000 a second for as long as they wait.
    pub acquire_interval: Duration,
    /// Least time between two neighbour-miss events for one next hop.
    pub neighbor_miss_interval: Duration,
    /// ICMP errors sent per 100 ms at most (RFC 1812 §4.3.2.8 rate limit).
    pub icmp_per_100ms: u32,
    /// Workers sharing the ports: the fragments of one outer datagram are
    /// reassembled by one of them, chosen by a hash of (source,
    /// destination, protocol, identification), whatever queue each
    /// fragment arrived on (RSS may spread them).
    pub workers: u16,
    /// Bounds of outer fragment reassembly.
    pub reassembly: ReassemblyConfig,
}

impl WorkerConfig {
    pub fn new(id: WorkerId) -> WorkerConfig {
        WorkerConfig {
            id,
            hold_slots: 256,
            hold_per_proxy_id: 4,
            hold_timeout: Duration::from_secs(3),
            acquire_interval: Duration::from_millis(500),
            neighbor_miss_interval: Duration::from_millis(200),
            icmp_per_100ms: 100,
            workers: 1,
            reassembly: ReassemblyConfig::default(),
        }
    }
}

/// Repeated acquires for one proxy-ID wait at most 2^this times
/// [`WorkerConfig::acquire_interval`].
pub const ACQUIRE_BACKOFF_MAX_SHIFT: u8 = 4;

/// Probes waiting to be built (the control plane sends a few a second;
/// more than this between two loops of the worker are dropped and counted).
const MAX_PENDING_PROBES: usize = 64;
/// ICMP identifiers the worker recognises as VPN monitor replies.
pub const MAX_PROBE_IDENTS: usize = 8;
/// Largest echo data of a probe (the frame must fit a 2 KiB UMEM chunk
/// with the ESP overhead).
pub const MAX_PROBE_DATA: u16 = 1400;

struct VpnState {
    conf: VpnConf,
    /// One per proxy-ID, by `ProxyIdIndex`.
    slots: Vec<OutSlot>,
}

/// A destination's route and, for port next hops, its resolved link
/// layer: a direct-mapped cache in front of the route and neighbour tables,
/// valid for one table generation.
#[derive(Debug, Clone, Copy, Default)]
struct DestEntry {
    dst: u32,
    generation: u64,
    next_hop: Option<NextHop>,
    /// (port, next hop's MAC, port's MAC)
    l2: Option<(PortId, MacAddr, MacAddr)>,
}

const DEST_CACHE_SLOTS: usize = 1024;

/// What the first pass decided for a packet.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Done,
    /// Into a tunnel: classify (batch) then encrypt. `l3` is the IPv4
    /// header offset, `len` the IP total length; its selectors are at
    /// `key` in `Worker::keys`.
    Tunnel {
        l3: usize,
        len: usize,
        tunnel: TunnelId,
        vpn: VpnId,
        key: usize,
    },
}

/// A packet pass 1 sent towards a tunnel, as passes 2 and 3 need it (16
/// bytes), in `Worker::pending`; the later passes walk that short array
/// instead of a per-frame stage array.
#[derive(Debug, Clone, Copy)]
struct TunnelBound {
    /// Position of the frame in the burst (< `MAX_BURST`).
    frame: u8,
    /// Its flow key's position in `Worker::keys`. A packet of the same
    /// flow as the tunnel-bound packet before it shares that one's key,
    /// so a run of one flow is classified once (as VPP looks an SA up
    /// once per run of packets on it). Keys are pushed in `pending`
    /// order, so the keys of a run of one VPN are contiguous.
    key: u8,
    /// IPv4 header offset in the packet (the Ethernet header's length).
    l3: u16,
    /// IP total length (a 16-bit field).
    len: u16,
    tunnel: TunnelId,
    vpn: VpnId,
}

/// One fast-path worker: its tables, SA contexts and counters.
pub struct Worker {
    cfg: WorkerConfig,
    ports: Vec<PortInfo>,
    local: Vec<Ipv4Addr>,
    routes: Arc<RouteTable>,
    neighbors: Arc<NeighborTable>,
    tunnels: IdMap<TunnelConf>,
    vpns: IdMap<VpnState>,
    inbound: FastMap<u32, InSlot>,
    /// Outbound SA id -> where its slot is.
    outbound_ids: FastMap<u64, (VpnId, ProxyIdIndex)>,
    hold: HoldPool,
    reassembly: Reassembler,
    counters: WorkerCounters,
    drops: DropCounters,
    /// Direct-mapped (next hop -> last miss event) for rate limiting.
    miss_cache: [(u64, Option<Instant>); 64],
    icmp_window: (Option<Instant>, u32),
    /// Bumped by every change of ports, routes, neighbours or tunnels:
    /// SAs' cached outer next hops from an older generation are stale.
    generation: u64,
    last_idle_scan: Option<Instant>,
    dest_cache: Box<[DestEntry]>,
    /// Tunnel-bound packets of the burst being processed; their flow
    /// keys (one per run of one flow) and the keys' verdicts.
    pending: Vec<TunnelBound>,
    keys: Vec<FlowKey>,
    verdicts: Vec<Verdict>,
    /// VPN monitor probes to build (`Update::Probe`).
    probes: Vec<Probe>,
    /// Echo identifiers of VPN monitor replies (`Update::ProbeIdent`), a
    /// small ring: the newest replaces the oldest.
    probe_idents: [Option<u16>; MAX_PROBE_IDENTS],
    probe_ident_next: usize,
    probe_frame: Vec<u8>,
    /// The spoofed-source filter (`source.rs`), rebuilt before the next
    /// burst when routes or VPNs changed.
    sources: SourceFilter,
    sources_stale: bool,
    /// The last source looked up and its verdict: a run of packets from
    /// one source costs one lookup.
    last_source: Option<(Ipv4Addr, bool)>,
    /// The packet being processed was decrypted (here or by the worker
    /// that handed it off): held copies remember it.
    decrypted: bool,
    /// `set flow ...`.
    flow: FlowConf,
    /// Later fragments of datagrams fragmented before encryption, sealed,
    /// waiting for the I/O shell (`mtu.rs`).
    fragments: FragmentOut,
}

impl core::fmt::Debug for Worker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.cfg.id)
            .field("ports", &self.ports.len())
            .field("tunnels", &self.tunnels.len())
            .field("vpns", &self.vpns.len())
            .field("inbound_sas", &self.inbound.len())
            .field("outbound_sas", &self.outbound_ids.len())
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(cfg: WorkerConfig) -> Worker {
        let hold = HoldPool::new(cfg.hold_slots, cfg.hold_per_proxy_id);
        let reassembly = Reassembler::new(cfg.reassembly);
        Worker {
            reassembly,
            cfg,
            ports: Vec::new(),
            local: Vec::new(),
            routes: Arc::new(RouteTable::default()),
            neighbors: Arc::new(NeighborTable::default()),
            tunnels: IdMap::default(),
            vpns: IdMap::default(),
            inbound: FastMap::default(),
            outbound_ids: FastMap::default(),
            hold,
            counters: WorkerCounters::default(),
            drops: DropCounters::default(),
            miss_cache: [(0, None); 64],
            icmp_window: (None, 0),
            generation: 1,
            last_idle_scan: None,
            dest_cache: vec![DestEntry::default(); DEST_CACHE_SLOTS].into_boxed_slice(),
            pending: Vec::with_capacity(MAX_BURST),
            keys: Vec::with_capacity(MAX_BURST),
            verdicts: Vec::with_capacity(MAX_BURST),
            probes: Vec::with_capacity(MAX_PENDING_PROBES),
            probe_idents: [None; MAX_PROBE_IDENTS],
            probe_ident_next: 0,
            probe_frame: Vec::with_capacity(2048),
            sources: SourceFilter::default(),
            sources_stale: true,
            last_source: None,
            decrypted: false,
            flow: FlowConf::default(),
            fragments: FragmentOut::default(),
        }
    }

    pub fn id(&self) -> WorkerId {
        self.cfg.id
    }

    pub fn counters(&self) -> &WorkerCounters {
        &self.counters
    }

    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Counts a drop the I/O shell decided (ring full, no frame, hand-off
    /// inbox full): the counters have one writer, this worker's thread.
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops.count(reason);
    }

    /// Frames waiting in the hold queue.
    pub fn held(&self) -> usize {
        self.hold.held()
    }

    // ------------------------------------------------------------------
    // Updates (between bursts)

    /// Applies one table update. Replaced or removed SA contexts go to
    /// `out.retire`; events (stats) to `out.event`.
    pub fn apply(&mut self, update: Update, out: &mut impl WorkerOutput) {
        if matches!(
            update,
            Update::Ports(_)
                | Update::Routes(_)
                | Update::Neighbors(_)
                | Update::Tunnel(_)
                | Update::RemoveTunnel(_)
        ) {
            self.generation += 1;
        }
        if matches!(update, Update::Routes(_) | Update::Vpn(_) | Update::RemoveVpn(_)) {
            self.sources_stale = true;
        }
        match update {
            Update::Ports(p) => {
                self.local = p.iter().flat_map(|p| p.addrs.iter().copied()).collect();
                self.ports = p;
            }
            Update::Routes(r) => self.routes = r,
            Update::Neighbors(n) => {
                self.neighbors = n;
                self.hold.release_neighbors();
            }
            Update::Tunnel(t) => {
                self.tunnels.insert(t.id.0, t);
            }
            Update::RemoveTunnel(id) => {
                self.tunnels.remove(&id.0);
            }
            Update::Vpn(conf) => self.set_vpn(conf, out),
            Update::RemoveVpn(id) => {
                if let Some(v) = self.vpns.remove(&id.0) {
                    for slot in v.slots {
                        self.retire_slot(slot, out);
                    }
                    self.outbound_ids.retain(|_, (vpn, _)| *vpn != id);
                    self.counters.hold_expired += self.hold.discard_vpn(id);
                    self.inbound_checks_follow(id, None);
                }
            }
            Update::Outbound(ins) => {
                let Some(vpn) = self.vpns.get_mut(&ins.vpn.0) else {
                    // The VPN went away meanwhile: nothing to attach it to.
                    if let Some(sa) = ins.sa {
                        out.retire(Retired::Outbound(sa));
                    }
                    return;
                };
                let Some(index) = vpn.conf.table.proxy_ids().iter().position(|p| *p == ins.proxy_id) else {
                    if let Some(sa) = ins.sa {
                        out.retire(Retired::Outbound(sa));
                    }
                    return;
                };
                let new = match ins.sa {
                    Some(sa) if ins.owner == self.cfg.id => OutSlot::Local(Box::new(OutEntry {
                        id: ins.id,
                        sa: *sa,
                        life: ins.life,
                        counters: Default::default(),
                        soft_reported: false,
                        hard_reported: false,
                        last_used: None,
                        idle_reported: false,
                        outer_hop: None,
                    })),
                    Some(sa) => {
                        out.retire(Retired::Outbound(sa));
                        OutSlot::Remote { owner: ins.owner, id: ins.id }
                    }
                    None => OutSlot::Remote { owner: ins.owner, id: ins.id },
                };
                let old = core::mem::replace(&mut vpn.slots[index], new);
                let index = ProxyIdIndex::new(index as u32);
                if let OutSlot::Local(e) = &old {
                    self.outbound_ids.remove(&e.id.0);
                }
                if let OutSlot::Remote { id, .. } = &old {
                    self.outbound_ids.remove(&id.0);
                }
                self.outbound_ids.insert(ins.id.0, (ins.vpn, index));
                self.retire_slot(old, out);
                // Whatever waited for this proxy-ID may go now (on the
                // owning worker, or handed off there by the next pass).
                self.hold.release(ins.vpn, &ins.proxy_id);
            }
            Update::Inbound(ins) => {
                let check =
                    InboundCheck::new(ins.proxy_id, self.vpns.get(&ins.vpn.0).map(|v| &*v.conf.table));
                let slot = match ins.sa {
                    Some(sa) if ins.owner == self.cfg.id => InSlot::Local(Box::new(InEntry {
                        id: ins.id,
                        sa: *sa,
                        vpn: ins.vpn,
                        tunnel: ins.tunnel,
                        check,
                        life: ins.life,
                        counters: Default::default(),
                        soft_reported: false,
                        hard_reported: false,
                        last_used: None,
                        idle_reported: false,
                    })),
                    Some(sa) => {
                        out.retire(Retired::Inbound(sa));
                        InSlot::Remote { owner: ins.owner }
                    }
                    None => InSlot::Remote { owner: ins.owner },
                };
                if let Some(InSlot::Local(old)) = self.inbound.insert(ins.spi, slot) {
                    out.retire(Retired::Inbound(Box::new(old.sa)));
                }
            }
            Update::RemoveOutbound(id) => {
                if let Some((vpn, index)) = self.outbound_ids.remove(&id.0) {
                    if let Some(v) = self.vpns.get_mut(&vpn.0) {
                        if let Some(slot) = v.slots.get_mut(index.get()) {
                            let old = core::mem::replace(slot, OutSlot::EMPTY);
                            self.retire_slot(old, out);
                        }
                    }
                }
            }
            Update::RemoveInbound { spi } => {
                if let Some(InSlot::Local(old)) = self.inbound.remove(&spi) {
                    out.retire(Retired::Inbound(Box::new(old.sa)));
                }
            }
            Update::Stats(tag) => out.event(WorkerEvent::Stats(Box::new(self.stats(tag)))),
            Update::Probe(p) => {
                if self.probes.len() < MAX_PENDING_PROBES {
                    self.probes.push(p);
                } else {
                    self.drops.count(DropReason::ProbeQueueFull);
                }
            }
            Update::Flow(conf) => self.flow = conf,
            Update::ProbeIdent(ident) => {
                if !self.probe_idents.contains(&Some(ident)) {
                    self.probe_idents[self.probe_ident_next] = Some(ident);
                    self.probe_ident_next = (self.probe_ident_next + 1) % MAX_PROBE_IDENTS;
                }
            }
        }
    }

    /// True when VPN monitor probes wait to be sent.
    pub fn has_probes(&self) -> bool {
        !self.probes.is_empty()
    }

    /// Builds every waiting VPN monitor probe — an Ethernet frame holding
    /// an ICMP echo request (RFC 792) from the gateway's address — and
    /// hands it to `f`, which sends it through [`Worker::process_burst`]
    /// like a packet from the LAN: route, tunnel, proxy-ID, SA, or hold and
    /// acquire when the proxy-ID has no SA (how `monitor rekey` brings an SA
    /// up). The Ethernet addresses are zero: the pipeline rewrites them.
    pub fn drain_probes(&mut self, mut f: impl FnMut(&[u8])) {
        let mut probes = core::mem::take(&mut self.probes);
        for p in probes.drain(..) {
            let data_len = usize::from(p.size.min(MAX_PROBE_DATA));
            let icmp_len = icmpv4::HEADER_LEN + data_len;
            let ip_len = ipv4::HEADER_LEN + icmp_len;
            let frame = &mut self.probe_frame;
            frame.clear();
            frame.resize(ethernet::HEADER_LEN + ip_len, 0);
            ethernet::Repr {
                src_addr: MacAddr([0; 6]),
                dst_addr: MacAddr([0; 6]),
                ethertype: ethertype::IPV4,
            }
            .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut frame[..ethernet::HEADER_LEN]));
            let l3 = ethernet::HEADER_LEN;
            ipv4::Repr {
                src_addr: p.src,
                dst_addr: p.dst,
                protocol: ip_proto::ICMP,
                ttl: 64,
                tos: 0,
                ident: p.seq,
                dont_frag: false,
                payload_len: icmp_len as u16,
            }
            .emit(&mut frame[l3..l3 + ipv4::HEADER_LEN]);
            let msg = &mut frame[l3 + ipv4::HEADER_LEN..];
            // Recognisable data, as ping's: bytes counting up.
            for (i, b) in msg[icmpv4::HEADER_LEN..].iter_mut().enumerate() {
                *b = i as u8;
            }
            icmpv4::Repr::EchoRequest { ident: p.ident, seq: p.seq }.emit_header(msg);
            icmpv4::Packet::new_unchecked(&mut msg[..]).fill_checksum();
            self.counters.probes += 1;
            f(&self.probe_frame);
        }
        // Keep the allocation for the next probes.
        self.probes = probes;
    }

    /// A decrypted packet addressed to the gateway: a VPN monitor echo
    /// reply (one of our identifiers) is reported and consumed; anything
    /// else has nowhere to go.
    fn addressed_to_self<F: Frame>(
        &mut self,
        f: &mut F,
        inner: core::ops::Range<usize>,
        via: (VpnId, TunnelId, SaId),
        out: &mut impl WorkerOutput,
    ) -> Action {
        let Ok(ip) = ipv4::Packet::new_checked(&f.buffer()[inner]) else {
            return Action::Drop(DropReason::InnerMalformed);
        };
        if ip.protocol() != ip_proto::ICMP || ip.is_fragment() {
            return Action::Drop(DropReason::TunnelToSelf);
        }
        let Ok(icmp) = icmpv4::Packet::new_checked(ip.payload()) else {
            return Action::Drop(DropReason::TunnelToSelf);
        };
        if !icmp.verify_checksum() {
            return Action::Drop(DropReason::TunnelToSelf);
        }
        let Ok(icmpv4::Repr::EchoReply { ident, seq }) = icmpv4::Repr::parse(&icmp) else {
            return Action::Drop(DropReason::TunnelToSelf);
        };
        if !self.probe_idents.contains(&Some(ident)) {
            return Action::Drop(DropReason::TunnelToSelf);
        }
        self.counters.probe_replies += 1;
        let (vpn, tunnel, sa) = via;
        out.event(WorkerEvent::ProbeReply {
            vpn,
            tunnel,
            sa,
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            ident,
            seq,
        });
        Action::Drop(DropReason::MonitorReply)
    }

    fn set_vpn(&mut self, conf: VpnConf, out: &mut impl WorkerOutput) {
        let mut old = self.vpns.remove(&conf.id.0);
        let mut slots = Vec::with_capacity(conf.table.len());
        for (i, p) in conf.table.proxy_ids().iter().enumerate() {
            // Keep the SA of a proxy-ID that stays (matched by value).
            let kept = old.as_mut().and_then(|o| {
                let j = o.conf.table.proxy_ids().iter().position(|q| q == p)?;
                Some(core::mem::replace(&mut o.slots[j], OutSlot::EMPTY))
            });
            let slot = kept.unwrap_or(OutSlot::EMPTY);
            match &slot {
                OutSlot::Local(e) => {
                    self.outbound_ids.insert(e.id.0, (conf.id, ProxyIdIndex::new(i as u32)));
                }
                OutSlot::Remote { id, .. } => {
                    self.outbound_ids.insert(id.0, (conf.id, ProxyIdIndex::new(i as u32)));
                }
                OutSlot::Empty { .. } => {}
            }
            slots.push(slot);
        }
        if let Some(o) = old {
            for slot in o.slots {
                if let OutSlot::Local(e) = &slot {
                    self.outbound_ids.remove(&e.id.0);
                }
                if let OutSlot::Remote { id, .. } = &slot {
                    self.outbound_ids.remove(&id.0);
                }
                self.retire_slot(slot, out);
            }
        }
        self.inbound_checks_follow(conf.id, Some(&conf.table));
        self.vpns.insert(conf.id.0, VpnState { conf, slots });
    }

    /// The inbound SAs of `vpn` re-read its proxy-ID table (see
    /// [`InboundCheck`]).
    fn inbound_checks_follow(&mut self, vpn: VpnId, table: Option<&esprit_policy::ProxyIdTable>) {
        for slot in self.inbound.values_mut() {
            if let InSlot::Local(e) = slot {
                if e.vpn == vpn {
                    e.check.follow(table);
                }
            }
        }
    }

    fn retire_slot(&mut self, slot: OutSlot, out: &mut impl WorkerOutput) {
        if let OutSlot::Local(e) = slot {
            out.retire(Retired::Outbound(Box::new(e.sa)));
        }
    }

    /// A snapshot of the counters, tagged.
    pub fn stats(&self, tag: u64) -> WorkerStats {
        let mut sas = Vec::new();
        for v in self.vpns.values() {
            for s in &v.slots {
                if let OutSlot::Local(e) = s {
                    sas.push(SaStats {
                        id: e.id,
                        spi: e.sa.spi(),
                        outbound: true,
                        binding: None,
                        counters: e.counters,
                        seq: e.sa.last_seq(),
                        replay_window: 0,
                        esn: e.sa.esn(),
                        admits_any: false,
                    });
                }
            }
        }
        for (spi, s) in &self.inbound {
            if let InSlot::Local(e) = s {
                sas.push(SaStats {
                    id: e.id,
                    spi: *spi,
                    outbound: false,
                    binding: Some((e.vpn, e.tunnel)),
                    counters: e.counters,
                    seq: e.sa.replay_window().top(),
                    replay_window: e.sa.replay_window().size(),
                    esn: e.sa.esn(),
                    admits_any: e.check.admits_any(),
                });
            }
        }
        WorkerStats { tag, worker: self.cfg.id, counters: self.counters, drops: self.drops.clone(), sas }
    }

    /// Housekeeping between bursts: expires held frames; about once a
    /// second, reports SAs idle past their idle time.
    pub fn tick(&mut self, now: Instant, out: &mut impl WorkerOutput) {
        self.counters.hold_expired += self.hold.expire(now, self.cfg.hold_timeout);
        for _ in 0..self.reassembly.expire(now) {
            self.drops.count(DropReason::FragTimeout);
        }
        if self.last_idle_scan.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            return;
        }
        self.last_idle_scan = Some(now);
        let idle = |idle_secs: u32, last: &mut Option<Instant>, reported: &mut bool| {
            // An SA never used counts from the first scan that sees it.
            let t = *last.get_or_insert(now);
            if idle_secs != 0
                && !*reported
                && now.duration_since(t) >= Duration::from_secs(u64::from(idle_secs))
            {
                *reported = true;
                return true;
            }
            false
        };
        for v in self.vpns.values_mut() {
            for slot in &mut v.slots {
                if let OutSlot::Local(e) = slot {
                    if idle(e.life.idle_secs, &mut e.last_used, &mut e.idle_reported) {
                        out.event(WorkerEvent::Idle { sa: e.id });
                    }
                }
            }
        }
        for slot in self.inbound.values_mut() {
            if let InSlot::Local(e) = slot {
                if idle(e.life.idle_secs, &mut e.last_used, &mut e.idle_reported) {
                    out.event(WorkerEvent::Idle { sa: e.id });
                }
            }
        }
    }

    /// The next hop's MAC address is being resolved: a copy of the frame
    /// (not yet changed by this hop: TTL and addresses are rewritten after
    /// the neighbour lookup) waits for the neighbour table to change.
    #[allow(clippy::too_many_arguments)]
    fn hold_for_neighbor<F: Frame>(
        &mut self,
        now: Instant,
        f: &mut F,
        l3: usize,
        ip_len: usize,
        port: PortId,
        hop: Ipv4Addr,
    ) -> Action {
        if self.hold_packet(HoldKey::Neighbor(port, hop), now, f, l3, ip_len) {
            Action::Held
        } else {
            Action::Drop(DropReason::NoNeighbor)
        }
    }

    /// Keeps a copy of the packet as a frame from the LAN: its Ethernet
    /// header, then the IP packet (a decrypted one sits after the outer
    /// headers it arrived in, which must not go with it).
    fn hold_packet<F: Frame>(
        &mut self,
        key: HoldKey,
        now: Instant,
        f: &mut F,
        l3: usize,
        ip_len: usize,
    ) -> bool {
        let head = f.head();
        let b = f.buffer();
        let (Some(eth), Some(ip)) =
            (b.get(head..head + ethernet::HEADER_LEN), b.get(head + l3..head + l3 + ip_len))
        else {
            return false;
        };
        self.hold.hold_parts(key, &[eth, ip], now, self.decrypted)
    }

    /// True when held frames were released by an SA install.
    pub fn has_released(&self) -> bool {
        self.hold.has_released()
    }

    /// Hands every released held frame (an Ethernet header and the IP
    /// packet) to `f` with its `decrypted` flag: a decrypted one is
    /// re-injected through [`Worker::process_decrypted_burst`], any other
    /// through [`Worker::process_burst`].
    pub fn drain_released(&mut self, mut f: impl FnMut(&[u8], bool)) {
        let mut n = 0;
        self.hold.drain_released(|b, decrypted| {
            n += 1;
            f(b, decrypted)
        });
        self.counters.released += n;
    }

    /// True when later fragments of datagrams fragmented before encryption
    /// wait to be sent.
    pub fn has_fragments(&self) -> bool {
        !self.fragments.is_empty()
    }

    /// Hands every waiting fragment — a sealed Ethernet frame, ready to
    /// send — to `f` with the port it leaves by, in the order made (the
    /// order of their ESP sequence numbers). The I/O shell calls this after
    /// each burst, once the burst's own frames are queued: the first
    /// fragment of each datagram left with them.
    pub fn drain_fragments(&mut self, f: impl FnMut(PortId, &[u8])) {
        self.fragments.drain(f);
    }

    // ------------------------------------------------------------------
    // The burst pipeline

    /// Processes a burst of frames received on `rx_port`; `actions[i]` says
    /// what to do with `frames[i]`. At most [`MAX_BURST`] frames are
    /// processed; `actions` must be at least as long as `frames`.
    pub fn process_burst<F: Frame>(
        &mut self,
        now: Instant,
        rx_port: PortId,
        frames: &mut [F],
        actions: &mut [Action],
        out: &mut impl WorkerOutput,
    ) {
        self.run_burst(now, rx_port, frames, actions, out, Arrival::Port);
    }

    /// Processes a burst of inner packets (each an Ethernet header and an
    /// IPv4 packet) that were decrypted and admitted by their SA's inbound
    /// selector already: frames another worker handed off with
    /// [`Action::HandOffDecrypted`], held frames released with their
    /// `decrypted` flag set, and the gateway's own VPN monitor probes.
    /// They are routed and sealed like clear packets, without the
    /// spoofed-source check (their source lies behind a tunnel); one
    /// addressed to the gateway is dropped (`tunnel-to-self`): the worker
    /// that decrypted it delivers such packets itself. `rx_port` is the
    /// port the outer packet arrived on (the source of ICMP errors).
    pub fn process_decrypted_burst<F: Frame>(
        &mut self,
        now: Instant,
        rx_port: PortId,
        frames: &mut [F],
        actions: &mut [Action],
        out: &mut impl WorkerOutput,
    ) {
        self.run_burst(now, rx_port, frames, actions, out, Arrival::Decrypted);
    }

    /// Rebuilds the spoofed-source filter after its routes or VPNs changed
    /// (once per change, before the burst that follows it).
    fn refresh_sources(&mut self) {
        if !self.sources_stale {
            return;
        }
        self.sources_stale = false;
        self.last_source = None;
        let remote = self.vpns.values().flat_map(|v| v.conf.table.proxy_ids().iter().map(|p| p.remote));
        self.sources = SourceFilter::new(&self.routes, remote);
    }

    /// True when a clear packet from `src` is a spoof (`source.rs`); one
    /// lookup per run of packets from one source.
    #[inline]
    fn spoofed(&mut self, src: Ipv4Addr) -> bool {
        match self.last_source {
            Some((s, verdict)) if s == src => verdict,
            _ => {
                let verdict = self.sources.is_spoofed(src);
                self.last_source = Some((src, verdict));
                verdict
            }
        }
    }

    fn run_burst<F: Frame>(
        &mut self,
        now: Instant,
        rx_port: PortId,
        frames: &mut [F],
        actions: &mut [Action],
        out: &mut impl WorkerOutput,
        arrival: Arrival,
    ) {
        let n = frames.len().min(actions.len()).min(MAX_BURST);
        self.refresh_sources();
        self.pending.clear();
        self.keys.clear();
        self.verdicts.clear();
        let decrypted = arrival == Arrival::Decrypted;

        // Pass 1: parse, deliver ESP to the decrypt path, route clear
        // traffic; packets bound for a tunnel wait for pass 2.
        for i in 0..n {
            let f = &mut frames[i];
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += f.len() as u64;
            self.decrypted = decrypted;
            let (stage, action) = self.first_pass(now, rx_port, f, out);
            if let Stage::Tunnel { l3, len, tunnel, vpn, key } = stage {
                // `i` and `key` < MAX_BURST; `l3` is 14 and `len` an IPv4
                // total length: all fit.
                self.pending.push(TunnelBound {
                    frame: i as u8,
                    key: key as u8,
                    l3: l3 as u16,
                    len: len as u16,
                    tunnel,
                    vpn,
                });
            }
            actions[i] = action;
        }

        // Pass 2: classify the tunnel-bound packets' keys in runs of one
        // VPN.
        self.verdicts.resize(self.keys.len(), Verdict::NoMatch);
        let mut k = 0;
        while k < self.pending.len() {
            let vpn = self.pending[k].vpn;
            let end = k + self.pending[k..].iter().take_while(|p| p.vpn == vpn).count();
            let keys = usize::from(self.pending[k].key)..=usize::from(self.pending[end - 1].key);
            if let (Some(v), Some(keys), Some(verdicts)) =
                (self.vpns.get(&vpn.0), self.keys.get(keys.clone()), self.verdicts.get_mut(keys))
            {
                v.conf.table.classify(keys, verdicts);
            }
            k = end;
        }

        // Pass 3: encrypt.
        for k in 0..self.pending.len() {
            let TunnelBound { frame, key, l3, len, tunnel, vpn } = self.pending[k];
            let i = usize::from(frame);
            let key = usize::from(key);
            let verdict = self.verdicts.get(key).copied().unwrap_or(Verdict::NoMatch);
            self.decrypted = decrypted;
            actions[i] = self.seal_for_tunnel(
                now,
                rx_port,
                &mut frames[i],
                usize::from(l3),
                usize::from(len),
                tunnel,
                vpn,
                verdict,
                key,
                out,
            );
        }

        self.decrypted = false;
        for a in &mut actions[..n] {
            match *a {
                Action::Drop(r) => self.drops.count(r),
                Action::Tx(_) => self.counters.tx_packets += 1,
                Action::Held => self.counters.held += 1,
                // An inner packet passed on again (the SA moved meanwhile)
                // stays an inner packet.
                Action::HandOff(w) if decrypted => {
                    *a = Action::HandOffDecrypted(w);
                    self.counters.handed_off += 1;
                }
                Action::HandOff(_) | Action::HandOffDecrypted(_) => self.counters.handed_off += 1,
                Action::Fragment => {}
            }
        }
    }

    /// Parse and route one frame. Returns the stage (tunnel-bound packets
    /// continue in pass 2) and the action if the packet is done.
    fn first_pass<F: Frame>(
        &mut self,
        now: Instant,
        rx_port: PortId,
        f: &mut F,
        out: &mut impl WorkerOutput,
    ) -> (Stage, Action) {
        let done = |a| (Stage::Done, a);
        let head = f.head();
        let len = f.len();
        let buf = f.buffer();
        let Some(pkt) = buf.get(head..head + len) else { return done(Action::Drop(DropReason::NotIp)) };
        let Ok(eth) = ethernet::EthernetFrame::new_checked(pkt) else {
            return done(Action::Drop(DropReason::NotIp));
        };
        match eth.ethertype() {
            ethertype::IPV4 => {}
            ethertype::IPV6 => return done(Action::Drop(DropReason::Ipv6NotRouted)),
            _ => return done(Action::Drop(DropReason::NotIp)),
        }
        let l3 = ethernet::HEADER_LEN;
        let ip = match ipv4::Packet::new_checked(&pkt[l3..]) {
            Ok(p) => p,
            Err(_) => return done(Action::Drop(DropReason::Ipv4Malformed)),
        };
        if !ip.verify_checksum() {
            return done(Action::Drop(DropReason::Ipv4BadChecksum));
        }
        let ip_len = usize::from(ip.total_len());
        let dst = ip.dst_addr();
        if self.local.contains(&dst) {
            if self.decrypted {
                // Delivered by the worker that decrypted it; not ESP to open.
                return done(Action::Drop(DropReason::TunnelToSelf));
            }
            return done(self.inbound_esp(now, rx_port, f, l3, ip_len, out));
        }
        // Before anything answers it (an ICMP error to a forged source
        // would reflect at the tunnel's hosts): see `source.rs`.
        if !self.decrypted && self.spoofed(ip.src_addr()) {
            return done(Action::Drop(DropReason::SpoofedSource));
        }
        if ip.ttl() <= 1 {
            let a = self.icmp_error(
                now,
                rx_port,
                f,
                l3,
                ip_len,
                icmpv4::Repr::TimeExceeded,
                DropReason::TtlExceeded,
            );
            return done(a);
        }
        // A run of packets to one destination: the route and tunnel of the
        // tunnel-bound packet before, whose key is the last one (the
        // tables change only between bursts, so they are the same).
        if let (Some(FlowKey::V4(k)), Some(p)) = (self.keys.last(), self.pending.last()) {
            if k.dst == dst {
                let (tunnel, vpn) = (p.tunnel, p.vpn);
                let key = flow_key_v4(&ip);
                // Same flow too: same verdict, so the same key (pass 2
                // classifies it once).
                if self.keys.last() != Some(&key) {
                    self.keys.push(key);
                }
                let key = self.keys.len() - 1;
                return (Stage::Tunnel { l3, len: ip_len, tunnel, vpn, key }, Action::Drop(DropReason::NoSa));
            }
        }
        let d = *self.dest(dst);
        match d.next_hop {
            None => done(Action::Drop(DropReason::NoRoute)),
            Some(NextHop::Null) => done(Action::Drop(DropReason::NullRoute)),
            Some(NextHop::Tunnel(t)) => match self.tunnels.get(&t.0).and_then(|t| t.vpn) {
                Some(vpn) => {
                    self.keys.push(flow_key_v4(&ip));
                    let key = self.keys.len() - 1;
                    (Stage::Tunnel { l3, len: ip_len, tunnel: t, vpn, key }, Action::Drop(DropReason::NoSa))
                }
                None => done(Action::Drop(DropReason::TunnelUnbound)),
            },
            Some(nh) => {
                let a = self.forward_clear(now, f, l3, ip_len, dst, (nh, d.l2), out);
                if matches!(a, Action::Tx(_)) {
                    self.counters.forwarded += 1;
                }
                done(a)
            }
        }
    }

    /// Routes a clear IPv4 packet at `f[head+l3..]` out of a port: TTL, MAC
    /// rewrite. The Ethernet header goes right before `l3`.
    /// `route` is the destination's next hop and, when the destination
    /// cache had it, the resolved link layer.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn forward_clear<F: Frame>(
        &mut self,
        now: Instant,
        f: &mut F,
        l3: usize,
        ip_len: usize,
        dst: Ipv4Addr,
        route: (NextHop, Option<(PortId, MacAddr, MacAddr)>),
        out: &mut impl WorkerOutput,
    ) -> Action {
        let (nh, l2) = route;
        let (port, mac, src_mac) = match l2 {
            Some(l2) => l2,
            None => {
                let (port, hop) = match nh {
                    NextHop::Connected { port } => (port, dst),
                    NextHop::Gateway { port, gateway } => (port, gateway),
                    NextHop::Tunnel(_) => return Action::Drop(DropReason::NoRoute),
                    NextHop::Null => return Action::Drop(DropReason::NullRoute),
                };
                let Some(mac) = self.neighbor(now, port, hop, out) else {
                    return self.hold_for_neighbor(now, f, l3, ip_len, port, hop);
                };
                let Some(src_mac) = self.ports.get(usize::from(port.0)).map(|p| p.mac) else {
                    return Action::Drop(DropReason::NoRoute);
                };
                // Only a destination whose route is this next hop caches it.
                let e = self.dest(dst);
                if e.next_hop == Some(nh) {
                    e.l2 = Some((port, mac, src_mac));
                }
                (port, mac, src_mac)
            }
        };
        let head = f.head();
        let buf = f.buffer();
        ipv4::Packet::new_unchecked(&mut buf[head + l3..head + l3 + ip_len]).decrement_ttl();
        self.emit_eth(f, head + l3 - ethernet::HEADER_LEN, ip_len, mac, src_mac);
        Action::Tx(port)
    }

    fn emit_eth<F: Frame>(&mut self, f: &mut F, at: usize, ip_len: usize, dst: MacAddr, src: MacAddr) {
        let buf = f.buffer();
        ethernet::Repr { src_addr: src, dst_addr: dst, ethertype: ethertype::IPV4 }
            .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut buf[at..at + ethernet::HEADER_LEN]));
        let len = ethernet::HEADER_LEN + ip_len;
        f.set_packet(at, len);
        self.counters.tx_bytes += len as u64;
    }

    /// The cache entry of `dst`, filled from the route table on a miss.
    #[inline]
    fn dest(&mut self, dst: Ipv4Addr) -> &mut DestEntry {
        let d = u32::from(dst);
        let i = (d.wrapping_mul(0x9e37_79b1) >> 22) as usize % DEST_CACHE_SLOTS;
        let e = &mut self.dest_cache[i];
        if e.generation != self.generation || e.dst != d {
            *e = DestEntry {
                dst: d,
                generation: self.generation,
                next_hop: self.routes.lookup(dst),
                l2: None,
            };
        }
        e
    }

    fn neighbor(
        &mut self,
        now: Instant,
        port: PortId,
        addr: Ipv4Addr,
        out: &mut impl WorkerOutput,
    ) -> Option<MacAddr> {
        if let Some(m) = self.neighbors.lookup(port, addr) {
            return Some(m);
        }
        let key = u64::from(port.0) << 32 | u64::from(u32::from(addr));
        let slot = &mut self.miss_cache[(key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize];
        let due =
            slot.0 != key || slot.1.is_none_or(|t| now.duration_since(t) >= self.cfg.neighbor_miss_interval);
        if due {
            *slot = (key, Some(now));
            out.event(WorkerEvent::NeighborMiss { port, addr });
        }
        None
    }

    /// The tunnel path of one packet after classification.
    #[allow(clippy::too_many_arguments)]
    fn seal_for_tunnel<F: Frame>(
        &mut self,
        now: Instant,
        rx_port: PortId,
        f: &mut F,
        l3: usize,
        ip_len: usize,
        tunnel: TunnelId,
        vpn_id: VpnId,
        verdict: Verdict,
        key_index: usize,
        out: &mut impl WorkerOutput,
    ) -> Action {
        let Verdict::Match(index) = verdict else { return Action::Drop(DropReason::ProxyIdMismatch) };
        let Some(vpn) = self.vpns.get_mut(&vpn_id.0) else { return Action::Drop(DropReason::TunnelUnbound) };
        let Some(slot) = vpn.slots.get_mut(index.get()) else {
            return Action::Drop(DropReason::ProxyIdMismatch);
        };
        let entry = match slot {
            OutSlot::Local(e) => e,
            OutSlot::Remote { owner, .. } => return Action::HandOff(*owner),
            OutSlot::Empty { last_acquire, repeats } => {
                let proxy_id = vpn.conf.table.proxy_ids()[index.get()];
                let wait = self.cfg.acquire_interval * (1u32 << (*repeats).min(ACQUIRE_BACKOFF_MAX_SHIFT));
                if last_acquire.is_none_or(|t| now.duration_since(t) >= wait) {
                    if last_acquire.is_some() {
                        *repeats = repeats.saturating_add(1);
                    }
                    *last_acquire = Some(now);
                    self.counters.acquires += 1;
                    let flow = self.keys.get(key_index).copied().unwrap_or(FlowKey::v4(
                        Ipv4Addr::UNSPECIFIED,
                        Ipv4Addr::UNSPECIFIED,
                        0,
                        0,
                        0,
                    ));
                    out.event(WorkerEvent::Acquire { vpn: vpn_id, tunnel, proxy_id, index, flow });
                }
                return if self.hold_packet(HoldKey::Sa(vpn_id, proxy_id), now, f, l3, ip_len) {
                    Action::Held
                } else if self.cfg.hold_per_proxy_id == 0 {
                    Action::Drop(DropReason::NoSa)
                } else {
                    Action::Drop(DropReason::HoldQueueFull)
                };
            }
        };
        if entry.life.hard_bytes != 0 && entry.counters.bytes >= entry.life.hard_bytes {
            return Action::Drop(DropReason::SaExpired);
        }
        // Outer route and neighbour first: no sequence number is spent on a
        // packet that cannot leave. They are resolved once per table
        // generation and cached in the SA (the per-packet cost is a compare).
        let hop = match entry.outer_hop {
            Some(h) if h.generation == self.generation => h,
            _ => match resolve_outer(
                &self.routes,
                &self.ports,
                &self.tunnels,
                &self.neighbors,
                tunnel,
                entry.sa.outer_dst(),
                |mtu| entry.sa.max_inner_len(mtu),
                self.generation,
            ) {
                Ok(h) => {
                    entry.outer_hop = Some(h);
                    h
                }
                Err(Unresolved::Route) => return Action::Drop(DropReason::NoRoute),
                Err(Unresolved::Neighbor(port, addr)) => {
                    self.neighbor(now, port, addr, out);
                    return self.hold_for_neighbor(now, f, l3, ip_len, port, addr);
                }
            },
        };
        let head = f.head();
        let inner = head + l3..head + l3 + ip_len;
        let fragment = ip_len > hop.max_inner;
        if fragment && ipv4::Packet::new_unchecked(&f.buffer()[inner.clone()]).dont_frag() {
            let next_hop_mtu = u16::try_from(hop.max_inner).unwrap_or(u16::MAX);
            let repr = icmpv4::Repr::FragNeeded { next_hop_mtu };
            return self.icmp_error(now, rx_port, f, l3, ip_len, repr, DropReason::TooBigDf);
        }
        let (port, mac, src_mac) = (hop.port, hop.dst_mac, hop.src_mac);
        // The inner packet is forwarded by this gateway (RFC 4301 §5.1.2):
        // its TTL goes down by one before it is sealed (or split: the
        // fragments copy the header).
        ipv4::Packet::new_unchecked(&mut f.buffer()[inner.clone()]).decrement_ttl();
        // `set flow tcp-mss`: SYNs entering the tunnel, before encryption
        // (as ScreenOS: only the gateway that encrypts clamps).
        if let Some(mss) = self.flow.tcp_mss {
            if let tcp::MssClamp::Clamped(_) = tcp::clamp_mss(&mut f.buffer()[inner.clone()], mss) {
                self.counters.mss_clamped += 1;
            }
        }
        let first = if fragment {
            // Not DF: fragmented before encryption (`mtu.rs`). The later
            // fragments are copied out before the first is sealed in place
            // (its trailer overwrites what follows it).
            let plan = match FragmentPlan::new(&f.buffer()[inner.clone()], hop.max_inner, MAX_FRAGMENTS) {
                Ok(p) if p.len(0) <= MAX_FRAGMENT_LEN => p,
                _ => return Action::Drop(DropReason::TooBig),
            };
            let later = plan.count() - 1;
            if later > self.fragments.free() {
                return Action::Drop(DropReason::FragNoBuffer);
            }
            for k in 1..plan.count() {
                let (datagram, slot) = (&f.buffer()[inner.clone()], self.fragments.free_slot(k - 1));
                if slot.and_then(|b| plan.emit(datagram, k, &mut b[FRAGMENT_HEADROOM..])).is_none() {
                    return Action::Drop(DropReason::FragNoBuffer);
                }
            }
            let Some(len) = plan.first_in_place(&mut f.buffer()[inner.clone()]) else {
                return Action::Drop(DropReason::TooBig);
            };
            let first = match seal(now, entry, f.buffer(), inner.start..inner.start + len, out) {
                Ok(r) => r,
                Err(reason) => return Action::Drop(reason),
            };
            self.counters.fragmented += 1;
            self.counters.fragments_made += 1;
            for k in 1..plan.count() {
                let Some(slot) = self.fragments.free_slot(0) else { break };
                let frag = FRAGMENT_HEADROOM..FRAGMENT_HEADROOM + plan.len(k);
                // A later fragment that cannot be sealed (its SA just ran
                // out) ends the datagram: the rest could not be reassembled.
                let outer = match seal(now, entry, slot, frag, out) {
                    Ok(r) => r,
                    Err(reason) => {
                        self.drops.count(reason);
                        break;
                    }
                };
                let at = outer.start - ethernet::HEADER_LEN;
                ethernet::Repr { src_addr: src_mac, dst_addr: mac, ethertype: ethertype::IPV4 }
                    .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut slot[at..outer.start]));
                self.fragments.commit(port, at..outer.end);
                self.counters.fragments_made += 1;
                self.counters.encrypted += 1;
                self.counters.tx_packets += 1;
                self.counters.tx_bytes += (outer.end - at) as u64;
            }
            first
        } else {
            match seal(now, entry, f.buffer(), inner, out) {
                Ok(r) => r,
                Err(reason) => return Action::Drop(reason),
            }
        };
        self.counters.encrypted += 1;
        self.emit_eth(f, first.start - ethernet::HEADER_LEN, first.len(), mac, src_mac);
        Action::Tx(port)
    }

    /// ESP (or anything else) addressed to the gateway.
    fn inbound_esp<F: Frame>(
        &mut self,
        now: Instant,
        rx_port: PortId,
        f: &mut F,
        l3: usize,
        ip_len: usize,
        out: &mut impl WorkerOutput,
    ) -> Action {
        let head = f.head();
        let ip_range = head + l3..head + l3 + ip_len;
        let (protocol, hl) = {
            let p = ipv4::Packet::new_unchecked(&f.buffer()[ip_range.clone()]);
            if p.is_fragment() {
                let key = (p.src_addr(), p.dst_addr(), p.protocol(), p.ident());
                return self.outer_fragment(now, rx_port, f, (l3, ip_len), key, out);
            }
            (p.protocol(), p.header_len())
        };
        let esp_start = match protocol {
            ip_proto::ESP => ip_range.start + hl,
            ip_proto::UDP => {
                let b = &f.buffer()[ip_range.start + hl..ip_range.end];
                let Ok(u) = udp::Packet::new_checked(b) else { return Action::Drop(DropReason::LocalNotEsp) };
                if u.dst_port() != udp_encap::NAT_T_PORT {
                    return Action::Drop(DropReason::LocalNotEsp);
                }
                match udp_encap::classify(u.payload()) {
                    Encap::Esp => ip_range.start + hl + udp::HEADER_LEN,
                    Encap::Keepalive => return Action::Drop(DropReason::NatKeepalive),
                    Encap::Ike | Encap::Invalid => return Action::Drop(DropReason::LocalNotEsp),
                }
            }
            _ => return Action::Drop(DropReason::LocalNotEsp),
        };
        let esp_range = esp_start..ip_range.end;
        let spi = match esp::Packet::new_checked(&f.buffer()[esp_range.clone()]) {
            Ok(e) => e.spi(),
            Err(_) => return Action::Drop(DropReason::EspMalformed),
        };
        let entry = match self.inbound.get_mut(&spi) {
            None => return Action::Drop(DropReason::EspUnknownSpi),
            Some(InSlot::Remote { owner }) => return Action::HandOff(*owner),
            Some(InSlot::Local(e)) => e,
        };
        if entry.life.hard_bytes != 0 && entry.counters.bytes >= entry.life.hard_bytes {
            return Action::Drop(DropReason::SaExpired);
        }
        let dec = match entry.sa.decapsulate(f.buffer(), esp_range) {
            Ok(d) => d,
            Err(e) => {
                entry.counters.errors += 1;
                return Action::Drop(decap_reason(e));
            }
        };
        let inner = match dec.payload {
            Payload::Ipv4(r) => r,
            Payload::Ipv6(_) => return Action::Drop(DropReason::Ipv6NotRouted),
            Payload::Dummy => return Action::Drop(DropReason::DummyPacket),
        };
        let inner_len = inner.len();
        let (key, dst, ttl) = match ipv4::Packet::new_checked(&f.buffer()[inner.clone()]) {
            Ok(p) => (flow_key_v4(&p), p.dst_addr(), p.ttl()),
            Err(_) => return Action::Drop(DropReason::InnerMalformed),
        };
        // RFC 4301 §5.2 step 4: the packet must be one its SA may carry
        // (any, on a VPN with proxy-id check off and one proxy-ID).
        if !entry.check.admits(&key) {
            entry.counters.errors += 1;
            return Action::Drop(DropReason::InboundPolicy);
        }
        entry.counters.packets += 1;
        entry.counters.bytes += inner_len as u64;
        entry.last_used = Some(now);
        entry.idle_reported = false;
        let sa_id = entry.id;
        let via = (entry.vpn, entry.tunnel, entry.id);
        if !entry.soft_reported && entry.life.soft_bytes != 0 && entry.counters.bytes >= entry.life.soft_bytes
        {
            entry.soft_reported = true;
            out.event(WorkerEvent::SoftExpire { sa: sa_id, reason: ExpireReason::Bytes });
        }
        // Reported once, like the outbound side: fastpathd removes the SA.
        if !entry.hard_reported && entry.life.hard_bytes != 0 && entry.counters.bytes >= entry.life.hard_bytes
        {
            entry.hard_reported = true;
            out.event(WorkerEvent::HardExpire { sa: sa_id, reason: ExpireReason::Bytes });
        }
        self.counters.decrypted += 1;
        if self.local.contains(&dst) {
            return self.addressed_to_self(f, inner, via, out);
        }
        // From here the inner packet is an ordinary packet in the frame.
        let l3 = inner.start - head;
        f.set_packet(head, l3 + inner_len);
        self.decrypted = true;
        let action = self.route_decrypted(now, rx_port, f, l3, inner_len, (key, dst, ttl), out);
        self.decrypted = false;
        if let Action::HandOff(w) = action {
            // Hub and spoke across workers: the next SA's owner gets the
            // inner packet behind an Ethernet header (the receiving
            // worker's Ethernet header goes where the outer headers
            // ended; the addresses are rewritten on the way out).
            let at = head + l3 - ethernet::HEADER_LEN;
            f.buffer().copy_within(head..head + ethernet::HEADER_LEN, at);
            f.set_packet(at, ethernet::HEADER_LEN + inner_len);
            return Action::HandOffDecrypted(w);
        }
        action
    }

    /// Routes a decrypted packet at `l3` in the frame: to a port, or
    /// straight into another tunnel (hub and spoke).
    #[allow(clippy::too_many_arguments)]
    fn route_decrypted<F: Frame>(
        &mut self,
        now: Instant,
        rx_port: PortId,
        f: &mut F,
        l3: usize,
        inner_len: usize,
        (key, dst, ttl): (FlowKey, Ipv4Addr, u8),
        out: &mut impl WorkerOutput,
    ) -> Action {
        if ttl <= 1 {
            return self.icmp_error(
                now,
                rx_port,
                f,
                l3,
                inner_len,
                icmpv4::Repr::TimeExceeded,
                DropReason::TtlExceeded,
            );
        }
        let d = *self.dest(dst);
        match d.next_hop {
            None => Action::Drop(DropReason::NoRoute),
            Some(NextHop::Null) => Action::Drop(DropReason::NullRoute),
            Some(NextHop::Tunnel(t)) => {
                // Hub and spoke: straight into another tunnel.
                let Some(vpn) = self.tunnels.get(&t.0).and_then(|t| t.vpn) else {
                    return Action::Drop(DropReason::TunnelUnbound);
                };
                let verdict = match self.vpns.get(&vpn.0) {
                    Some(v) => v.conf.table.classify_one(&key),
                    None => Verdict::NoMatch,
                };
                // The key goes on the burst's key list only for this call.
                self.keys.push(key);
                let k = self.keys.len() - 1;
                let action = self.seal_for_tunnel(now, rx_port, f, l3, inner_len, t, vpn, verdict, k, out);
                self.keys.pop();
                action
            }
            Some(nh) => self.forward_clear(now, f, l3, inner_len, dst, (nh, d.l2), out),
        }
    }

    /// An outer fragment addressed to the gateway (RFC 4303 §3.4.1:
    /// reassembled before ESP processing). The XDP program sends the fast
    /// path the fragments of ESP and of ESP-in-UDP datagrams only (IKE's
    /// go to the kernel, judged by their first fragment); anything else
    /// here is not ours. A reassembled datagram goes through the same
    /// checks as a whole one: should it be IKE after all (a later fragment
    /// of an IKE datagram that reused a recent ESP-in-UDP datagram's
    /// identification and overtook its first fragment, which went to the
    /// kernel), it cannot complete here and times out, or is dropped as
    /// `local-not-esp`; the kernel, missing that fragment, drops its copy
    /// and the peer retransmits (RFC 2409 §5 / RFC 7296 §2.1).
    fn outer_fragment<F: Frame>(
        &mut self,
        now: Instant,
        rx_port: PortId,
        f: &mut F,
        (l3, ip_len): (usize, usize),
        (src, dst, protocol, ident): (Ipv4Addr, Ipv4Addr, u8, u16),
        out: &mut impl WorkerOutput,
    ) -> Action {
        if protocol != ip_proto::ESP && protocol != ip_proto::UDP {
            return Action::Drop(DropReason::LocalNotEsp);
        }
        if self.cfg.workers > 1 {
            let h = (u64::from(u32::from(src)) << 32 | u64::from(u32::from(dst)))
                ^ (u64::from(ident) << 8 | u64::from(protocol)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let owner = (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % u64::from(self.cfg.workers);
            // < workers, a u16.
            let owner = WorkerId(owner as u16);
            if owner != self.cfg.id {
                return Action::HandOff(owner);
            }
        }
        let head = f.head();
        let ip = head + l3..head + l3 + ip_len;
        let mut expired = 0;
        let r = self.reassembly.push(now, f.buffer(), head, ip, &mut expired);
        for _ in 0..expired {
            self.drops.count(DropReason::FragTimeout);
        }
        match r {
            Reassembly::Kept => {
                self.counters.fragments += 1;
                Action::Fragment
            }
            Reassembly::Drop(reason) => Action::Drop(reason),
            Reassembly::Complete { len } => {
                self.counters.fragments += 1;
                self.counters.reassembled += 1;
                f.set_packet(head, l3 + len);
                // Whole now: not a fragment any more, so this recurses once.
                self.inbound_esp(now, rx_port, f, l3, len, out)
            }
        }
    }

    /// Turns the packet at `l3` into an ICMP error back to its source
    /// (RFC 792: the offending IP header and 8 bytes of its payload), or
    /// drops it where RFC 1122 §3.2.2 forbids an error or the rate limit
    /// is spent. `reason` is counted either way by the caller's action.
    #[allow(clippy::too_many_arguments)]
    fn icmp_error<F: Frame>(
        &mut self,
        now: Instant,
        rx_port: PortId,
        f: &mut F,
        l3: usize,
        ip_len: usize,
        repr: icmpv4::Repr,
        reason: DropReason,
    ) -> Action {
        let head = f.head();
        let mut quote = [0u8; 68];
        let (qlen, orig_src) = {
            let b = &f.buffer()[head + l3..head + l3 + ip_len];
            let p = ipv4::Packet::new_unchecked(b);
            let hl = p.header_len();
            // Never about an ICMP error, a non-first fragment, or a packet
            // from nowhere (RFC 1122 §3.2.2).
            let payload = p.payload();
            let is_icmp_error = p.protocol() == ip_proto::ICMP
                && payload.first().is_some_and(|t| !matches!(*t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18));
            let src = p.src_addr();
            if is_icmp_error
                || p.frag_offset() != 0
                || src.is_unspecified()
                || src.is_broadcast()
                || src.is_multicast()
            {
                return Action::Drop(reason);
            }
            let qlen = (hl + 8).min(ip_len).min(quote.len());
            quote[..qlen].copy_from_slice(&b[..qlen]);
            (qlen, src)
        };
        // Rate limit (RFC 1812 §4.3.2.8).
        let (start, sent) = &mut self.icmp_window;
        if start.is_none_or(|t| now.duration_since(t) >= Duration::from_millis(100)) {
            *start = Some(now);
            *sent = 0;
        }
        if *sent >= self.cfg.icmp_per_100ms {
            return Action::Drop(reason);
        }
        let Some(src) = self
            .ports
            .get(usize::from(rx_port.0))
            .and_then(|p| p.addrs.first().copied())
            .or_else(|| self.local.first().copied())
        else {
            return Action::Drop(reason);
        };
        let (port, hop) = match self.routes.lookup(orig_src) {
            Some(NextHop::Connected { port }) => (port, orig_src),
            Some(NextHop::Gateway { port, gateway }) => (port, gateway),
            _ => return Action::Drop(reason),
        };
        let Some(mac) = self.neighbors.lookup(port, hop) else { return Action::Drop(reason) };
        let Some(src_mac) = self.ports.get(usize::from(port.0)).map(|p| p.mac) else {
            return Action::Drop(reason);
        };
        let total = ipv4::HEADER_LEN + icmpv4::HEADER_LEN + qlen;
        let at = head + l3;
        let buf = f.buffer();
        if buf.len() < at + total {
            return Action::Drop(reason);
        }
        ipv4::Repr {
            src_addr: src,
            dst_addr: orig_src,
            protocol: ip_proto::ICMP,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
            payload_len: (icmpv4::HEADER_LEN + qlen) as u16,
        }
        .emit(&mut buf[at..at + ipv4::HEADER_LEN]);
        let msg = &mut buf[at + ipv4::HEADER_LEN..at + total];
        repr.emit_with_data(msg, &quote[..qlen]);
        self.icmp_window.1 += 1;
        self.counters.icmp_errors += 1;
        // The drop reason is counted; the frame goes out as the ICMP error.
        self.drops.count(reason);
        self.emit_eth(f, at - ethernet::HEADER_LEN, total, mac, src_mac);
        Action::Tx(port)
    }

    /// The outbound SA id of a proxy-ID, if installed on any worker.
    pub fn outbound_sa(&self, vpn: VpnId, index: ProxyIdIndex) -> Option<SaId> {
        match self.vpns.get(&vpn.0)?.slots.get(index.get())? {
            OutSlot::Local(e) => Some(e.id),
            OutSlot::Remote { id, .. } => Some(*id),
            OutSlot::Empty { .. } => None,
        }
    }
}

/// Seals the inner packet at `buf[inner]` on the SA of `entry` and
/// accounts for it (counters, soft and hard lifetimes); returns the range
/// of the outer IPv4 packet, which has room for an Ethernet header before
/// it.
fn seal(
    now: Instant,
    entry: &mut OutEntry,
    buf: &mut [u8],
    inner: core::ops::Range<usize>,
    out: &mut impl WorkerOutput,
) -> Result<core::ops::Range<usize>, DropReason> {
    let ip_len = inner.len();
    let enc = match entry.sa.encapsulate(buf, inner) {
        Ok(e) => e,
        Err(EncapError::SequenceExhausted) => {
            // Reported once; the control plane replaces the SA.
            if !entry.hard_reported {
                entry.hard_reported = true;
                out.event(WorkerEvent::HardExpire { sa: entry.id, reason: ExpireReason::Sequence });
            }
            return Err(DropReason::SeqExhausted);
        }
        Err(EncapError::Headroom { .. } | EncapError::Tailroom { .. } | EncapError::TooBig) => {
            return Err(DropReason::EncapNoRoom)
        }
        Err(_) => return Err(DropReason::Ipv4Malformed),
    };
    entry.counters.packets += 1;
    entry.counters.bytes += ip_len as u64;
    entry.last_used = Some(now);
    entry.idle_reported = false;
    if !entry.soft_reported {
        if enc.soft_limit_crossed {
            entry.soft_reported = true;
            out.event(WorkerEvent::SoftExpire { sa: entry.id, reason: ExpireReason::Sequence });
        } else if entry.life.soft_bytes != 0 && entry.counters.bytes >= entry.life.soft_bytes {
            entry.soft_reported = true;
            out.event(WorkerEvent::SoftExpire { sa: entry.id, reason: ExpireReason::Bytes });
        }
    }
    if !entry.hard_reported && entry.life.hard_bytes != 0 && entry.counters.bytes >= entry.life.hard_bytes {
        entry.hard_reported = true;
        out.event(WorkerEvent::HardExpire { sa: entry.id, reason: ExpireReason::Bytes });
    }
    if enc.outer.start < ethernet::HEADER_LEN {
        return Err(DropReason::EncapNoRoom);
    }
    Ok(enc.outer)
}

/// Why an SA's outer next hop could not be resolved.
enum Unresolved {
    Route,
    Neighbor(PortId, Ipv4Addr),
}

/// The outer next hop of an SA: the port and MACs its packets leave with,
/// and the largest inner packet that fits both the tunnel interface's MTU
/// and the port's MTU after encapsulation.
#[allow(clippy::too_many_arguments)]
fn resolve_outer(
    routes: &RouteTable,
    ports: &[PortInfo],
    tunnels: &IdMap<TunnelConf>,
    neighbors: &NeighborTable,
    tunnel: TunnelId,
    dst: Ipv4Addr,
    max_inner_for: impl Fn(usize) -> usize,
    generation: u64,
) -> Result<OuterHop, Unresolved> {
    let (port, hop) = match routes.lookup(dst) {
        Some(NextHop::Connected { port }) => (port, dst),
        Some(NextHop::Gateway { port, gateway }) => (port, gateway),
        _ => return Err(Unresolved::Route),
    };
    let pinfo = ports.get(usize::from(port.0)).ok_or(Unresolved::Route)?;
    let tunnel_mtu = tunnels.get(&tunnel.0).map_or(1500, |t| usize::from(t.mtu));
    let max_inner = tunnel_mtu.min(max_inner_for(usize::from(pinfo.mtu)));
    let dst_mac = neighbors.lookup(port, hop).ok_or(Unresolved::Neighbor(port, hop))?;
    Ok(OuterHop { generation, port, dst_mac, src_mac: pinfo.mac, max_inner })
}

fn decap_reason(e: DecapError) -> DropReason {
    match e {
        DecapError::BadRange | DecapError::Truncated | DecapError::BadLength => DropReason::EspTruncated,
        DecapError::SpiMismatch => DropReason::EspUnknownSpi,
        DecapError::ReplayTooOld => DropReason::ReplayTooOld,
        DecapError::ReplayDuplicate => DropReason::ReplayDuplicate,
        DecapError::IcvMismatch => DropReason::IcvMismatch,
        DecapError::BadPadding => DropReason::BadPadding,
        DecapError::BadNextHeader => DropReason::BadNextHeader,
        DecapError::InnerMalformed => DropReason::InnerMalformed,
        _ => DropReason::EspMalformed,
    }
}
