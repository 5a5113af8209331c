//! The management thread: owns the ports, starts the workers, serves the
//! control socket, builds SA contexts (key schedules) and pushes table
//! updates to the workers over crossbeam queues; receives their events
//! (acquires, expiries, neighbour misses) and retired SA contexts, which it
//! drops off the packet path (keys zeroized).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, select, Receiver, Sender};
use esprit_dataplane::{
    Event as DpEvent, ExpireReason, InboundInstall, Lifetime, NeighborTable, NextHop, OutboundInstall,
    PortId, PortInfo, Probe, Route, RouteTable, SaId, TunnelConf, TunnelId, Update, VpnConf, VpnId,
    Worker as Pipeline, WorkerConfig as PipelineConfig, WorkerId, WorkerStats, MAX_PROBE_DATA,
    MAX_PROBE_IDENTS,
};
use esprit_esp::{InboundConfig, InboundSa, OutboundConfig, OutboundSa, Suite, UdpEncap};
use esprit_fastpath_api::{
    Direction, Dump, Envelope, Event, NextHopSpec, PortView, Reply, Request, RouteSpec, SaSpec, SaStatsView,
    ServerMessage, SocketStatsView, Stats, WorkerStatsView, PROTOCOL_VERSION,
};
use esprit_policy::{ProxyId, ProxyIdTable};
use esprit_xdp::{
    AttachMode, BindMode, Port, RingConfig, UmemConfig, Worker as Rings, WorkerConfig as RingsConfig,
};
use ring::rand::{SecureRandom, SystemRandom};

use crate::control::{self, Incoming, Writer};
use crate::handoff::Handoffs;
use crate::host;
use crate::worker::{FromWorker, SocketMap, WorkerThread};
use crate::{Args, Bind, XdpMode};

struct SaRecord {
    direction: Direction,
    spi: u32,
    vpn: u32,
    proxy_id: String,
}

struct State {
    ports: Vec<PortInfo>,
    port_views: Vec<PortView>,
    routes: Vec<RouteSpec>,
    tunnels: BTreeMap<u32, (u16, Option<u32>)>,
    vpns: BTreeMap<u32, (bool, Vec<String>)>,
    sas: BTreeMap<u64, SaRecord>,
    neighbors: NeighborTable,
    workers: Vec<Sender<Update>>,
    cores: Vec<Option<usize>>,
    subscribers: Vec<Writer>,
    rng: SystemRandom,
    /// ICMP identifiers of VPN monitor probes the workers know.
    probe_idents: Vec<u16>,
    /// The worker that sends the next probe (round robin).
    next_prober: usize,
}

/// Bounds of `--ring-size`: below 64 a ring holds one burst; 16384 is
/// where the kernel's own limits on ring memory start to matter.
const MIN_RING: u32 = 64;
const MAX_RING: u32 = 16_384;

/// `--ring-size`, checked.
fn ring_size(ring: u32) -> Result<u32, String> {
    if ring.is_power_of_two() && (MIN_RING..=MAX_RING).contains(&ring) {
        Ok(ring)
    } else {
        Err(format!("--ring-size {ring}: must be a power of two from {MIN_RING} to {MAX_RING}"))
    }
}

/// A worker's UMEM and rings for `sockets` sockets of `ring` entries per
/// ring. Frames: every socket's fill ring kept full, plus one ring's worth
/// in flight (tx rings, completion, the burst being processed); a frame
/// forwarded goes out in the buffer it came in, so tx needs no more.
fn rings_config(bind: BindMode, ring: u32, sockets: usize) -> RingsConfig {
    let frames = (sockets as u32).saturating_add(1).saturating_mul(ring);
    RingsConfig {
        bind,
        rings: RingConfig::uniform(ring),
        umem: UmemConfig { frame_count: frames, ..UmemConfig::default() },
    }
}

/// The queues of each port worker `w` of `workers` serves: `w`,
/// `w + workers`, ... below `queues`.
fn worker_queues(w: usize, workers: usize, queues: u32) -> impl Iterator<Item = u32> {
    (w as u32..queues).step_by(workers)
}

/// Runs fastpathd until SIGINT/SIGTERM.
pub(crate) fn run(args: Args) -> Result<(), String> {
    if args.workers == 0 || args.workers > 64 {
        return Err(format!("--workers {}: must be 1..=64", args.workers));
    }
    let queues = args.queues.unwrap_or(args.workers as u32);
    if (queues as usize) < args.workers {
        return Err(format!(
            "--queues {queues} is fewer than --workers {}: a worker would have nothing",
            args.workers
        ));
    }
    let ring = ring_size(args.ring_size)?;
    let mode = match args.xdp_mode {
        XdpMode::Driver => AttachMode::Driver,
        XdpMode::Skb => AttachMode::Skb,
    };
    let bind = match args.bind {
        Bind::Auto => BindMode::Auto,
        Bind::Copy => BindMode::Copy,
        Bind::Zerocopy => BindMode::ZeroCopy,
    };

    // Ports: facts from the host, then our XDP program on each.
    let mut ports = Vec::new();
    let mut infos = Vec::new();
    let mut views = Vec::new();
    for name in &args.ports {
        let i = host::interface(name)?;
        let mut p = Port::open(name, mode).map_err(|e| format!("port {name}: {e}"))?;
        for a in &i.addrs {
            p.add_local_addr((*a).into()).map_err(|e| format!("port {name}: local address {a}: {e}"))?;
        }
        views.push(PortView {
            name: name.clone(),
            mac: i.mac.to_string(),
            mtu: i.mtu,
            addrs: i.addrs.clone(),
            queues,
            xdp_mode: format!("{:?}", args.xdp_mode).to_lowercase(),
        });
        infos.push(PortInfo { name: name.clone(), mac: i.mac, mtu: i.mtu, addrs: i.addrs });
        ports.push(p);
    }

    // Workers: one UMEM each, sockets for their queues on every port.
    let stop = Arc::new(AtomicBool::new(false));
    let handoffs = Arc::new(Handoffs::new(args.workers, 1024));
    let (to_mgmt, from_workers) = bounded::<FromWorker>(65_536);
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let mut update_txs = Vec::new();
    let mut threads = Vec::new();
    let mut cores = Vec::new();
    for w in 0..args.workers {
        let sockets = ports.len() * worker_queues(w, args.workers, queues).count();
        let mut rings =
            Rings::new(rings_config(bind, ring, sockets)).map_err(|e| format!("worker {w}: UMEM: {e}"))?;
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for (pi, port) in ports.iter_mut().enumerate() {
            let mut first = None;
            for q in worker_queues(w, args.workers, queues) {
                let id =
                    rings.bind(port, q).map_err(|e| format!("worker {w}: {} queue {q}: {e}", port.name()))?;
                rx.push((id, PortId(pi as u8)));
                first.get_or_insert(id);
            }
            tx.push(first.ok_or_else(|| format!("worker {w} has no queue on {}", port.name()))?);
        }
        let core_index = args.cores.get(w).copied().unwrap_or(w);
        let core = core_ids.iter().find(|c| c.id == core_index).copied();
        cores.push(core.map(|c| c.id));
        let mut pcfg = PipelineConfig::new(WorkerId(w as u16));
        pcfg.hold_slots = args.hold_slots;
        pcfg.workers = args.workers as u16;
        let mut pipeline = Pipeline::new(pcfg);
        let mut sink = esprit_dataplane::VecOutput::default();
        pipeline.apply(Update::Ports(infos.clone()), &mut sink);
        let (utx, urx) = bounded::<Update>(65_536);
        update_txs.push(utx);
        let t = WorkerThread {
            index: w as u16,
            core,
            rings,
            pipeline,
            sockets: SocketMap { rx, tx },
            updates: urx,
            to_mgmt: to_mgmt.clone(),
            handoffs: handoffs.clone(),
            stop: stop.clone(),
            busy_poll: args.busy_poll,
            idle_sleep: Duration::from_micros(args.idle_sleep_us),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .spawn(move || t.run())
                .map_err(|e| format!("worker {w}: {e}"))?,
        );
    }

    let (ctl_tx, ctl_rx) = bounded::<Incoming>(1024);
    let socket = control::serve(&args.socket, ctl_tx)?;
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone()).map_err(|e| format!("signal handler: {e}"))?;
    }
    eprintln!(
        "fastpathd: {} port(s) [{}], {} worker(s), {} queue(s) per port, rings of {ring}, control socket {}",
        ports.len(),
        args.ports.join(", "),
        args.workers,
        queues,
        socket.display()
    );

    let mut st = State {
        ports: infos,
        port_views: views,
        routes: Vec::new(),
        tunnels: BTreeMap::new(),
        vpns: BTreeMap::new(),
        sas: BTreeMap::new(),
        neighbors: NeighborTable::default(),
        workers: update_txs,
        cores,
        subscribers: Vec::new(),
        rng: SystemRandom::new(),
        probe_idents: Vec::new(),
        next_prober: 0,
    };
    st.refresh_neighbors();
    let mut last_neigh = Instant::now();
    while !term.load(Ordering::Relaxed) {
        select! {
            recv(ctl_rx) -> m => if let Ok(m) = m { st.handle(m, &from_workers) },
            recv(from_workers) -> m => if let Ok(m) = m { st.on_worker_message(m, None) },
            default(Duration::from_millis(50)) => {},
        }
        if last_neigh.elapsed() >= Duration::from_millis(100) {
            st.refresh_neighbors();
            last_neigh = Instant::now();
        }
    }
    eprintln!("fastpathd: stopping");
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    drop(ports); // detaches the XDP programs
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

fn parse_prefix(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, l) = text.split_once('/').ok_or_else(|| format!("route prefix {text:?}: expected A.B.C.D/L"))?;
    let addr = a.parse().map_err(|_| format!("route prefix {text:?}: bad address"))?;
    let len: u8 = l.parse().map_err(|_| format!("route prefix {text:?}: bad length"))?;
    if len > 32 {
        return Err(format!("route prefix {text:?}: length {len} exceeds 32"));
    }
    Ok((addr, len))
}

impl State {
    fn broadcast(&self, make: impl Fn() -> Update) {
        for w in &self.workers {
            let _ = w.send(make());
        }
    }

    fn port_id(&self, name: &str) -> Result<PortId, String> {
        self.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| PortId(i as u8))
            .ok_or_else(|| format!("no port {name:?} (fastpathd has {})", self.port_names()))
    }

    fn port_names(&self) -> String {
        self.ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    fn refresh_neighbors(&mut self) {
        let mut t = NeighborTable::default();
        for n in host::neighbors() {
            if let Some(i) = self.ports.iter().position(|p| p.name == n.device) {
                t.insert(PortId(i as u8), n.addr, n.mac);
            }
        }
        if t != self.neighbors {
            self.neighbors = t;
            let arc = Arc::new(self.neighbors.clone());
            self.broadcast(|| Update::Neighbors(arc.clone()));
        }
    }

    fn owner_of(&self, vpn: u32, proxy_id: &ProxyId) -> u16 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (vpn, proxy_id).hash(&mut h);
        (h.finish() % self.workers.len() as u64) as u16
    }

    fn handle(&mut self, m: Incoming, from_workers: &Receiver<FromWorker>) {
        let Envelope { id, request } = m.envelope;
        let result = match request {
            Request::Hello { version, .. } if version == PROTOCOL_VERSION => {
                Ok(Reply::Hello { version, server: format!("fastpathd {}", env!("CARGO_PKG_VERSION")) })
            }
            Request::Hello { version, .. } => {
                Err(format!("protocol version {version} not supported: fastpathd speaks {PROTOCOL_VERSION}"))
            }
            Request::Ports => Ok(Reply::Ports { ports: self.port_views.clone() }),
            Request::SetRoutes { routes } => self.set_routes(routes).map(|()| Reply::Ok),
            Request::SetTunnel { tunnel, mtu, vpn } => {
                self.tunnels.insert(tunnel, (mtu, vpn));
                self.broadcast(|| {
                    Update::Tunnel(TunnelConf { id: TunnelId(tunnel), mtu, vpn: vpn.map(VpnId) })
                });
                Ok(Reply::Ok)
            }
            Request::RemoveTunnel { tunnel } => {
                self.tunnels.remove(&tunnel);
                self.broadcast(|| Update::RemoveTunnel(TunnelId(tunnel)));
                Ok(Reply::Ok)
            }
            Request::SetVpn { vpn, check, proxy_ids } => {
                self.set_vpn(vpn, check, proxy_ids).map(|()| Reply::Ok)
            }
            Request::RemoveVpn { vpn } => {
                self.vpns.remove(&vpn);
                self.sas.retain(|_, s| s.vpn != vpn);
                self.broadcast(|| Update::RemoveVpn(VpnId(vpn)));
                Ok(Reply::Ok)
            }
            Request::AddSa(spec) => self.add_sa(*spec).map(|()| Reply::Ok),
            Request::RemoveSa { id } => match self.sas.remove(&id) {
                Some(r) => {
                    match r.direction {
                        Direction::Outbound => self.broadcast(|| Update::RemoveOutbound(SaId(id))),
                        Direction::Inbound => self.broadcast(|| Update::RemoveInbound { spi: r.spi }),
                    }
                    Ok(Reply::Ok)
                }
                None => Err(format!("no SA {id}")),
            },
            Request::Stats => Ok(Reply::Stats(Box::new(self.stats(from_workers)))),
            Request::Dump => Ok(Reply::Dump(Box::new(self.dump()))),
            Request::Reset => {
                for id in self.sas.keys().copied().collect::<Vec<_>>() {
                    if let Some(r) = self.sas.remove(&id) {
                        match r.direction {
                            Direction::Outbound => self.broadcast(|| Update::RemoveOutbound(SaId(id))),
                            Direction::Inbound => self.broadcast(|| Update::RemoveInbound { spi: r.spi }),
                        }
                    }
                }
                for v in std::mem::take(&mut self.vpns).into_keys() {
                    self.broadcast(|| Update::RemoveVpn(VpnId(v)));
                }
                for t in std::mem::take(&mut self.tunnels).into_keys() {
                    self.broadcast(|| Update::RemoveTunnel(TunnelId(t)));
                }
                self.set_routes(Vec::new()).map(|()| Reply::Ok)
            }
            Request::Subscribe => {
                self.subscribers.push(m.writer.clone());
                Ok(Reply::Ok)
            }
            Request::Probe { src, dst, ident, seq, size } => {
                self.probe(src, dst, ident, seq, size).map(|()| Reply::Ok)
            }
        };
        let _ = m.reply.send(ServerMessage::Reply { id, result });
    }

    /// Hands a VPN monitor probe to a worker (any: the pipeline hands it
    /// to its SA's owner). Every worker learns its identifier first, since
    /// the reply is decrypted by the inbound SA's owner.
    fn probe(&mut self, src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16, size: u16) -> Result<(), String> {
        if !self.ports.iter().any(|p| p.addrs.contains(&src)) {
            return Err(format!("probe: source {src} is not an address of a fastpathd port"));
        }
        if size > MAX_PROBE_DATA {
            return Err(format!("probe: size {size} exceeds {MAX_PROBE_DATA} bytes"));
        }
        if !self.probe_idents.contains(&ident) {
            // The workers keep the newest few, and so does this list.
            if self.probe_idents.len() == MAX_PROBE_IDENTS {
                self.probe_idents.remove(0);
            }
            self.probe_idents.push(ident);
            self.broadcast(|| Update::ProbeIdent(ident));
        }
        let w = self.next_prober % self.workers.len().max(1);
        self.next_prober = self.next_prober.wrapping_add(1);
        let tx = self.workers.get(w).ok_or("probe: no worker")?;
        tx.try_send(Update::Probe(Probe { src, dst, ident, seq, size }))
            .map_err(|_| format!("probe: worker {w}'s queue is full"))
    }

    fn set_routes(&mut self, specs: Vec<RouteSpec>) -> Result<(), String> {
        let mut routes = Vec::new();
        for s in &specs {
            let (prefix, len) = parse_prefix(&s.prefix)?;
            let next_hop = match &s.next_hop {
                NextHopSpec::Port { port, gateway: None } => NextHop::Connected { port: self.port_id(port)? },
                NextHopSpec::Port { port, gateway: Some(g) } => {
                    NextHop::Gateway { port: self.port_id(port)?, gateway: *g }
                }
                NextHopSpec::Tunnel { tunnel } => NextHop::Tunnel(TunnelId(*tunnel)),
                NextHopSpec::Null => NextHop::Null,
            };
            routes.push(Route { prefix, len, next_hop });
        }
        let table = Arc::new(RouteTable::new(routes).map_err(|e| format!("routes: {e}"))?);
        self.routes = specs;
        self.broadcast(|| Update::Routes(table.clone()));
        Ok(())
    }

    fn set_vpn(&mut self, vpn: u32, check: bool, texts: Vec<String>) -> Result<(), String> {
        let mut pids = Vec::new();
        for t in &texts {
            pids.push(t.parse::<ProxyId>().map_err(|e| format!("vpn {vpn}: proxy-ID {t:?}: {e}"))?);
        }
        let table = Arc::new(ProxyIdTable::new(pids, check).map_err(|e| format!("vpn {vpn}: {e}"))?);
        self.vpns.insert(vpn, (check, texts));
        self.broadcast(|| Update::Vpn(VpnConf { id: VpnId(vpn), table: table.clone() }));
        Ok(())
    }

    fn add_sa(&mut self, s: SaSpec) -> Result<(), String> {
        let suite: Suite = s.suite.parse().map_err(|e| format!("SA {}: {e}", s.id))?;
        let proxy_id: ProxyId =
            s.proxy_id.parse().map_err(|e| format!("SA {}: proxy-ID {:?}: {e}", s.id, s.proxy_id))?;
        if !self.vpns.contains_key(&s.vpn) {
            return Err(format!("SA {}: no VPN {}", s.id, s.vpn));
        }
        let owner = self.owner_of(s.vpn, &proxy_id);
        let life = Lifetime { soft_bytes: s.soft_bytes, hard_bytes: s.hard_bytes, idle_secs: s.idle_secs };
        match s.direction {
            Direction::Outbound => {
                let mut cfg = OutboundConfig::new(s.spi, suite, s.local, s.peer);
                cfg.esn = s.esn;
                cfg.last_seq = s.last_seq;
                cfg.udp_encap = s.udp_encap.map(|(src_port, dst_port)| UdpEncap { src_port, dst_port });
                let mut iv_key = [0u8; 16];
                match &s.iv_key {
                    Some(k) if k.as_bytes().len() == 16 => iv_key.copy_from_slice(k.as_bytes()),
                    Some(k) => {
                        return Err(format!(
                            "SA {}: iv_key is {} bytes, expected 16",
                            s.id,
                            k.as_bytes().len()
                        ))
                    }
                    None => {
                        self.rng.fill(&mut iv_key).map_err(|_| "no randomness for the IV key".to_owned())?
                    }
                }
                let sa = OutboundSa::new(&cfg, s.encr_key.as_bytes(), s.integ_key.as_bytes(), &iv_key)
                    .map_err(|e| format!("SA {}: {e}", s.id))?;
                let mut sa = Some(Box::new(sa));
                for (w, tx) in self.workers.iter().enumerate() {
                    let mine = w as u16 == owner;
                    let _ = tx.send(Update::Outbound(OutboundInstall {
                        id: SaId(s.id),
                        vpn: VpnId(s.vpn),
                        proxy_id,
                        owner: WorkerId(owner),
                        sa: if mine { sa.take() } else { None },
                        life,
                    }));
                }
            }
            Direction::Inbound => {
                let mut cfg = InboundConfig::new(s.spi, suite);
                cfg.esn = s.esn;
                cfg.replay_window = s.replay_window;
                // A re-installed SA: its window starts above last_seq (#12).
                cfg.last_seq = s.last_seq;
                let sa = InboundSa::new(&cfg, s.encr_key.as_bytes(), s.integ_key.as_bytes())
                    .map_err(|e| format!("SA {}: {e}", s.id))?;
                let mut sa = Some(Box::new(sa));
                for (w, tx) in self.workers.iter().enumerate() {
                    let mine = w as u16 == owner;
                    let _ = tx.send(Update::Inbound(InboundInstall {
                        id: SaId(s.id),
                        spi: s.spi,
                        vpn: VpnId(s.vpn),
                        tunnel: TunnelId(s.tunnel),
                        proxy_id,
                        owner: WorkerId(owner),
                        sa: if mine { sa.take() } else { None },
                        life,
                    }));
                }
            }
        }
        self.sas.insert(
            s.id,
            SaRecord { direction: s.direction, spi: s.spi, vpn: s.vpn, proxy_id: proxy_id.to_string() },
        );
        Ok(())
    }

    fn stats(&mut self, from_workers: &Receiver<FromWorker>) -> Stats {
        static TAG: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let tag = TAG.fetch_add(1, Ordering::Relaxed);
        self.broadcast(|| Update::Stats(tag));
        let mut got: Vec<WorkerStats> = Vec::new();
        let mut sockets: BTreeMap<u16, Vec<SocketStatsView>> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while got.len() < self.workers.len() || sockets.len() < self.workers.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match from_workers.recv_timeout(left) {
                Ok(FromWorker::Sockets(t, w, v)) if t == tag => {
                    sockets.insert(w, v);
                }
                Ok(m) => self.on_worker_message(m, Some((tag, &mut got))),
                Err(_) => break,
            }
        }
        got.sort_by_key(|w| w.worker);
        let mut stats = Stats::default();
        for w in got {
            let c = w.counters;
            stats.workers.push(WorkerStatsView {
                worker: w.worker.0,
                core: self.cores.get(usize::from(w.worker.0)).copied().flatten(),
                rx_packets: c.rx_packets,
                rx_bytes: c.rx_bytes,
                tx_packets: c.tx_packets,
                tx_bytes: c.tx_bytes,
                forwarded: c.forwarded,
                encrypted: c.encrypted,
                decrypted: c.decrypted,
                held: c.held,
                released: c.released,
                handed_off: c.handed_off,
                acquires: c.acquires,
                icmp_errors: c.icmp_errors,
                hold_expired: c.hold_expired,
                probes: c.probes,
                probe_replies: c.probe_replies,
                fragments: c.fragments,
                reassembled: c.reassembled,
                drops: w.drops.nonzero().map(|(r, n)| (r.name().to_owned(), n)).collect(),
                sockets: sockets.remove(&w.worker.0).unwrap_or_default(),
            });
            for s in w.sas {
                stats.sas.push(SaStatsView {
                    id: s.id.0,
                    spi: s.spi,
                    direction: Some(if s.outbound { Direction::Outbound } else { Direction::Inbound }),
                    worker: w.worker.0,
                    packets: s.counters.packets,
                    bytes: s.counters.bytes,
                    errors: s.counters.errors,
                    seq: s.seq,
                });
            }
        }
        stats.sas.sort_by_key(|s| s.id);
        stats
    }

    fn dump(&self) -> Dump {
        Dump {
            routes: self.routes.clone(),
            tunnels: self.tunnels.iter().map(|(t, (m, v))| (*t, *m, *v)).collect(),
            vpns: self.vpns.iter().map(|(v, (c, p))| (*v, *c, p.clone())).collect(),
            sas: self
                .sas
                .iter()
                .map(|(id, r)| (*id, r.direction, r.spi, r.vpn, r.proxy_id.clone()))
                .collect(),
        }
    }

    fn on_worker_message(&mut self, m: FromWorker, mut collect: Option<(u64, &mut Vec<WorkerStats>)>) {
        let (_w, e) = match m {
            FromWorker::Retired(r) => {
                drop(r); // zeroized on drop, here, off the packet path
                return;
            }
            FromWorker::Event(w, e) => (w, e),
            // A late answer to a stats request that timed out.
            FromWorker::Sockets(..) => return,
        };
        let api = match e {
            DpEvent::Stats(s) => {
                if let Some((tag, got)) = collect.as_mut() {
                    if s.tag == *tag {
                        got.push(*s);
                    }
                }
                return;
            }
            DpEvent::NeighborMiss { addr, .. } => {
                host::resolve(addr);
                return;
            }
            DpEvent::Acquire { vpn, tunnel, proxy_id, flow, .. } => Event::Acquire {
                vpn: vpn.0,
                tunnel: tunnel.0,
                proxy_id: proxy_id.to_string(),
                src: flow.src().to_string(),
                dst: flow.dst().to_string(),
                protocol: flow.protocol(),
            },
            DpEvent::SoftExpire { sa, reason } => Event::SoftExpire { sa: sa.0, reason: reason_name(reason) },
            DpEvent::HardExpire { sa, reason } => Event::HardExpire { sa: sa.0, reason: reason_name(reason) },
            DpEvent::Idle { sa } => Event::Idle { sa: sa.0 },
            DpEvent::ProbeReply { vpn, tunnel, sa, src, dst, ident, seq } => {
                Event::ProbeReply { vpn: vpn.0, tunnel: tunnel.0, sa: sa.0, src, dst, ident, seq }
            }
        };
        let msg = ServerMessage::Event { event: api };
        self.subscribers.retain(|w| control::send(w, &msg));
    }
}

fn reason_name(r: ExpireReason) -> String {
    match r {
        ExpireReason::Bytes => "bytes".into(),
        ExpireReason::Sequence => "sequence".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_is_a_power_of_two_in_range() {
        for ok in [64, 1024, 4096, 16_384] {
            assert_eq!(ring_size(ok), Ok(ok));
        }
        for bad in [0, 32, 1000, 32_768] {
            let e = ring_size(bad).unwrap_err();
            assert_eq!(e, format!("--ring-size {bad}: must be a power of two from 64 to 16384"));
        }
    }

    #[test]
    fn the_default_ring_size_keeps_the_library_defaults() {
        // Three ports, one queue each: what fastpathd always ran with.
        let cfg = rings_config(BindMode::Auto, 1024, 3);
        assert_eq!(cfg, RingsConfig { bind: BindMode::Auto, ..RingsConfig::default() });
    }

    #[test]
    fn frames_cover_every_fill_ring_and_one_in_flight() {
        let cfg = rings_config(BindMode::Copy, 4096, 2);
        assert_eq!(cfg.umem.frame_count, 3 * 4096);
        assert_eq!(
            (cfg.rings.rx, cfg.rings.tx, cfg.rings.fill, cfg.rings.completion),
            (4096, 4096, 4096, 4096)
        );
        assert_eq!(cfg.rings.fill_target, 4096);
        // Six ports, two queues each.
        assert_eq!(rings_config(BindMode::Copy, 1024, 12).umem.frame_count, 13 * 1024);
    }
}
