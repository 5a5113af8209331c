//! One worker's tables and its burst pipeline.
//!
//! The pipeline is split by stage, one file each (as VPP's graph nodes),
//! over a per-packet context ([`PacketCtx`]) and disjoint parts of the
//! worker's state ([`NetTables`], the SA tables, the counters):
//!
//! | file | stage |
//! |---|---|
//! | `mod.rs` | the [`Worker`], its tables and updates (`apply`, `tick`, `stats`), the burst entry points and the batch loop over the stages |
//! | `ingress.rs` | pass 1: Ethernet/IPv4 checks, spoofed sources, TTL, route lookup; ESP to the gateway goes to `decrypt.rs`, clear traffic to `forward.rs`, tunnel-bound packets wait for pass 2 |
//! | `classify.rs` | pass 2: the tunnel-bound packets' flow keys classified in batches, one call per run of one VPN |
//! | `encrypt.rs` | pass 3: the proxy-ID's SA seals (acquire and hold when it has none, fragments before encryption), outer next hop |
//! | `decrypt.rs` | ESP addressed to the gateway: outer reassembly, SPI lookup, open, inbound selector check, lifetimes |
//! | `forward.rs` | routing out of a port (clear or decrypted), the destination cache, neighbours and frames held for them, the Ethernet rewrite |
//! | `icmp.rs` | ICMP errors (time exceeded, fragmentation needed), rate-limited |
//! | `local.rs` | packets for the gateway itself: VPN monitor probes out and their replies in |

use core::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_policy::{FlowKey, ProxyIdIndex, Verdict};

use crate::counters::WorkerCounters;
use crate::drop::{DropCounters, DropReason};
use crate::fasthash::{FastMap, IdMap};
use crate::flow::InboundCheck;
use crate::hold::HoldPool;
use crate::mtu::FragmentOut;
use crate::reassembly::{Reassembler, ReassemblyConfig};
use crate::sa::{InEntry, InSlot, OutEntry, OutSlot, SaHot};
use crate::source::SourceFilter;
use crate::update::{
    FlowConf, PortInfo, Probe, Retired, SaStats, TunnelConf, Update, VpnConf, WorkerEvent, WorkerOutput,
    WorkerStats,
};
use crate::{NeighborTable, PortId, RouteTable, SaId, VpnId, WorkerId, MAX_BURST};

mod classify;
mod decrypt;
mod encrypt;
mod forward;
mod icmp;
mod ingress;
mod local;

use classify::{Classified, Stage, TunnelBound};
use forward::{DestEntry, DEST_CACHE_SLOTS};
use local::MAX_PENDING_PROBES;
pub use local::{MAX_PROBE_DATA, MAX_PROBE_IDENTS};

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

struct VpnState {
    conf: VpnConf,
    /// One per proxy-ID, by `ProxyIdIndex`.
    slots: Vec<OutSlot>,
}

/// The ports, addresses, routes, neighbours and tunnel interfaces a
/// worker routes with: what the forwarding stages read, apart from the SA
/// tables they write (a stage borrows this and an SA at once).
struct NetTables {
    ports: Vec<PortInfo>,
    /// The gateway's own addresses (of every port).
    local: Vec<Ipv4Addr>,
    routes: Arc<RouteTable>,
    neighbors: Arc<NeighborTable>,
    tunnels: IdMap<TunnelConf>,
    /// Bumped by every change of ports, routes, neighbours or tunnels:
    /// SAs' cached outer next hops from an older generation are stale.
    generation: u64,
}

/// The packet a stage works on: when and where it arrived, how, and where
/// its IPv4 header sits in the frame. Stages pass it along by value
/// instead of threading its fields one by one.
#[derive(Debug, Clone, Copy)]
struct PacketCtx {
    now: Instant,
    /// The port the packet (or, for a decrypted one, its outer packet)
    /// arrived on: the source of ICMP errors about it.
    rx_port: PortId,
    /// Decrypted here or by the worker that handed it off: no spoofed-
    /// source check, and held copies remember it.
    decrypted: bool,
    /// The IPv4 header's offset from the frame's packet start.
    l3: usize,
    /// The IPv4 total length.
    ip_len: usize,
}

impl PacketCtx {
    /// The context of a burst's packets before their headers are read.
    fn arrived(now: Instant, rx_port: PortId, arrival: Arrival) -> PacketCtx {
        PacketCtx { now, rx_port, decrypted: arrival == Arrival::Decrypted, l3: 0, ip_len: 0 }
    }
}

/// One fast-path worker: its tables, SA contexts and counters.
pub struct Worker {
    cfg: WorkerConfig,
    net: NetTables,
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
            .field("ports", &self.net.ports.len())
            .field("tunnels", &self.net.tunnels.len())
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
            net: NetTables {
                ports: Vec::new(),
                local: Vec::new(),
                routes: Arc::new(RouteTable::default()),
                neighbors: Arc::new(NeighborTable::default()),
                tunnels: IdMap::default(),
                generation: 1,
            },
            vpns: IdMap::default(),
            inbound: FastMap::default(),
            outbound_ids: FastMap::default(),
            hold,
            counters: WorkerCounters::default(),
            drops: DropCounters::default(),
            miss_cache: [(0, None); 64],
            icmp_window: (None, 0),
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
            self.net.generation += 1;
        }
        if matches!(update, Update::Routes(_) | Update::Vpn(_) | Update::RemoveVpn(_)) {
            self.sources_stale = true;
        }
        match update {
            Update::Ports(p) => {
                self.net.local = p.iter().flat_map(|p| p.addrs.iter().copied()).collect();
                self.net.ports = p;
            }
            Update::Routes(r) => self.net.routes = r,
            Update::Neighbors(n) => {
                self.net.neighbors = n;
                self.hold.release_neighbors();
            }
            Update::Tunnel(t) => {
                self.net.tunnels.insert(t.id.0, t);
            }
            Update::RemoveTunnel(id) => {
                self.net.tunnels.remove(&id.0);
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
                    Some(sa) if ins.owner == self.cfg.id => {
                        OutSlot::Local(Box::new(OutEntry::new(ins.id, *sa, &ins.life)))
                    }
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
                        hot: SaHot::new(&ins.life),
                        id: ins.id,
                        vpn: ins.vpn,
                        tunnel: ins.tunnel,
                        idle_secs: ins.life.idle_secs,
                        check,
                        sa: *sa,
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
                        counters: e.hot.counters(),
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
                    counters: e.hot.counters(),
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
                    if idle(e.idle_secs, &mut e.hot.last_used, &mut e.hot.idle_reported) {
                        out.event(WorkerEvent::Idle { sa: e.id });
                    }
                }
            }
        }
        for slot in self.inbound.values_mut() {
            if let InSlot::Local(e) = slot {
                if idle(e.idle_secs, &mut e.hot.last_used, &mut e.hot.idle_reported) {
                    out.event(WorkerEvent::Idle { sa: e.id });
                }
            }
        }
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
        self.run_burst(PacketCtx::arrived(now, rx_port, Arrival::Port), frames, actions, out);
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
        self.run_burst(PacketCtx::arrived(now, rx_port, Arrival::Decrypted), frames, actions, out);
    }

    /// The stages over one burst, `ctx` saying when and how it arrived.
    fn run_burst<F: Frame>(
        &mut self,
        ctx: PacketCtx,
        frames: &mut [F],
        actions: &mut [Action],
        out: &mut impl WorkerOutput,
    ) {
        let n = frames.len().min(actions.len()).min(MAX_BURST);
        self.refresh_sources();
        self.pending.clear();
        self.keys.clear();
        self.verdicts.clear();
        let decrypted = ctx.decrypted;

        // Pass 1 (`ingress.rs`): parse, deliver ESP to the decrypt path,
        // route clear traffic; packets bound for a tunnel wait for pass 2.
        for i in 0..n {
            let f = &mut frames[i];
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += f.len() as u64;
            let (stage, action) = self.ingress(ctx, f, out);
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

        // Pass 2 (`classify.rs`).
        self.classify_pending();

        // Pass 3 (`encrypt.rs`).
        for k in 0..self.pending.len() {
            let TunnelBound { frame, key, l3, len, tunnel, vpn } = self.pending[k];
            let i = usize::from(frame);
            let key = usize::from(key);
            let verdict = self.verdicts.get(key).copied().unwrap_or(Verdict::NoMatch);
            let p = PacketCtx { l3: usize::from(l3), ip_len: usize::from(len), ..ctx };
            let c = Classified { tunnel, vpn, verdict, key };
            actions[i] = self.seal_for_tunnel(p, &mut frames[i], c, out);
        }

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

    /// The outbound SA id of a proxy-ID, if installed on any worker.
    pub fn outbound_sa(&self, vpn: VpnId, index: ProxyIdIndex) -> Option<SaId> {
        match self.vpns.get(&vpn.0)?.slots.get(index.get())? {
            OutSlot::Local(e) => Some(e.id),
            OutSlot::Remote { id, .. } => Some(*id),
            OutSlot::Empty { .. } => None,
        }
    }
}
