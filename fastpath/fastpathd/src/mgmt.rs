//! The management thread: owns the ports, starts the workers, serves the
//! control socket, builds SA contexts (key schedules) and pushes table
//! updates to the workers over crossbeam queues; receives their events
//! (acquires, expiries, neighbour misses) and retired SA contexts, which it
//! drops off the packet path (keys zeroized).
//!
//! It also enforces what must hold without a control plane (DESIGN.md §7):
//! an SA past its hard lifetime (seconds, counted here from its install;
//! bytes or sequence numbers, reported by its worker) is removed, so its
//! traffic is dropped and its proxy-ID goes back to "no SA" (the next
//! packet makes an acquire); and a worker thread that died or stopped
//! polling takes the process down (see `watchdog`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, select, Receiver, Sender};
use esprit_dataplane::{
    DropReason, ExpireReason, FlowConf, InboundInstall, Lifetime, NeighborTable, NextHop, OutboundInstall,
    PortId, PortInfo, Probe, Route, RouteTable, SaId, TunnelConf, TunnelId, Update, VpnConf, VpnId, Worker,
    WorkerConfig, WorkerEvent, WorkerId, WorkerStats, MAX_PROBE_DATA, MAX_PROBE_IDENTS,
};
use esprit_esp::{InboundConfig, InboundSa, OutboundConfig, OutboundSa, UdpEncap};
use esprit_fastpath_api::{
    Direction, Dump, Envelope, FastPathEvent, NextHopSpec, PortStatsView, PortView, Reply, Request,
    RouteSpec, SaSpec, SaStatsView, ServerMessage, SocketStatsView, Stats, WorkerStatsView,
    MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW, PROTOCOL_VERSION,
};

// The API's bound is the ESP core's.
const _: () = assert!(MAX_REPLAY_WINDOW == esprit_esp::MAX_REPLAY_WINDOW);
use esprit_policy::{ProxyId, ProxyIdTable};
use esprit_xdp::{AttachMode, BindMode, Port, RingConfig, UmemConfig, Verdict, XdpSockets, XdpSocketsConfig};
use ring::rand::{SecureRandom, SystemRandom};

use crate::control::{self, Access, ControlCounters, Incoming, Sink, Writer};
use crate::handoff::Handoffs;
use crate::host;
use crate::neigh;
use crate::queues::{self, worker_queues, PortQueues};
use crate::readings::Readings;
use crate::watchdog::{self, Heartbeat, Watchdog};
use crate::worker::{
    FromWorker, NeighborMissReport, ShellStats, SocketMap, WorkerThread, EVENT_CHANNEL, NEIGHBOR_MISS_CHANNEL,
};
use crate::{Args, Bind, Stop, XdpMode};

struct SaRecord {
    direction: Direction,
    spi: u32,
    vpn: u32,
    proxy_id: String,
    /// When its hard lifetime in seconds runs out (RFC 4301 §4.4.2.1).
    hard_deadline: Option<Instant>,
}

/// fastpathd's own counters, by name (`fpctl stats`: `daemon`).
#[derive(Debug, Default)]
struct DaemonCounters {
    /// SAs fastpathd removed at their hard lifetime, by kind.
    expired_seconds: u64,
    expired_bytes: u64,
    expired_sequence: u64,
    /// Neighbour misses served (a datagram to make the kernel resolve).
    neighbor_misses: u64,
}

pub(crate) struct State {
    ports: Vec<PortInfo>,
    port_views: Vec<PortView>,
    routes: Vec<RouteSpec>,
    tunnels: BTreeMap<u32, (u16, Option<u32>)>,
    vpns: BTreeMap<u32, (bool, Vec<String>)>,
    sas: BTreeMap<u64, SaRecord>,
    /// `set flow ...` as the workers have it.
    flow: FlowConf,
    neighbors: NeighborTable,
    /// Counters of the neighbour mirror, as it last reported them.
    neighbor_counters: neigh::MirrorCounters,
    workers: Vec<Sender<Update>>,
    cores: Vec<Option<usize>>,
    subscribers: Vec<Writer>,
    rng: SystemRandom,
    /// ICMP identifiers of VPN monitor probes the workers know.
    probe_idents: Vec<u16>,
    /// The worker that sends the next probe (round robin).
    next_prober: usize,
    /// The ports' XDP programs (their counters); none in memory tests.
    xdp_ports: Vec<Port>,
    control: Arc<ControlCounters>,
    daemon: DaemonCounters,
    /// How long a stats request waits for the workers' answers.
    stats_wait: Duration,
    /// The SAs' counters as last read, for [`Request::StatsSince`].
    readings: Readings,
    /// Connections that asked for counters, each with whether what
    /// fastpathd holds changed since by anything but that connection
    /// ([`Stats::changed_by_others`]). Weak: a closed connection's
    /// entry is dropped, never kept open.
    watchers: Vec<(Weak<Mutex<dyn Sink>>, bool)>,
}

/// A random first epoch for this instance's readings (a clock-derived
/// one if the system's generator fails: still another instance's epochs
/// are unlikely to fall in it).
fn random_epoch() -> u64 {
    let mut b = [0u8; 8];
    if SystemRandom::new().fill(&mut b).is_ok() {
        return u64::from_le_bytes(b);
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
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
fn rings_config(bind: BindMode, ring: u32, sockets: usize) -> XdpSocketsConfig {
    let frames = (sockets as u32).saturating_add(1).saturating_mul(ring);
    XdpSocketsConfig {
        bind,
        rings: RingConfig::uniform(ring),
        umem: UmemConfig { frame_count: frames, ..UmemConfig::default() },
    }
}

/// Runs fastpathd until SIGINT/SIGTERM.
pub fn run(args: Args) -> Result<(), Stop> {
    if args.workers == 0 || args.workers > 64 {
        return Err(Stop::Refused(format!("--workers {}: must be 1..=64", args.workers)));
    }
    let mut port_queues = Vec::new();
    for name in &args.ports {
        port_queues.push(PortQueues {
            name: name.clone(),
            rx_queues: host::rx_queues(name).map_err(Stop::Refused)?,
        });
    }
    // Every rx queue of every port gets a socket, or fastpathd refuses.
    let queue_plan = queues::plan(&port_queues, args.workers, args.queues).map_err(Stop::Refused)?;
    let access = Access::new(args.socket_group.as_deref()).map_err(Stop::Refused)?;
    let ring = ring_size(args.ring_size).map_err(Stop::Refused)?;
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
    for (name, &queues) in args.ports.iter().zip(&queue_plan) {
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

    if let Some(line) = host::forwarding_warning(&args.ports) {
        eprintln!("fastpathd: {line}");
    }

    // Workers: one UMEM each, sockets for their queues on every port.
    let stop = Arc::new(AtomicBool::new(false));
    let handoffs = Arc::new(Handoffs::new(args.workers, 1024));
    let (to_mgmt, from_workers) = bounded::<FromWorker>(EVENT_CHANNEL);
    let (misses_tx, misses_rx) = bounded::<NeighborMissReport>(NEIGHBOR_MISS_CHANNEL);
    #[cfg(feature = "fault-injection")]
    let fault = crate::fault::Fault::from_env().map_err(Stop::Refused)?;
    let mut heartbeats = Vec::new();
    watchdog::quiet_worker_panics();
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let mut update_txs = Vec::new();
    let mut threads = Vec::new();
    let mut cores = Vec::new();
    for w in 0..args.workers {
        let sockets: usize = queue_plan.iter().map(|q| worker_queues(w, args.workers, *q).count()).sum();
        let mut rings = XdpSockets::new(rings_config(bind, ring, sockets))
            .map_err(|e| format!("worker {w}: UMEM: {e}"))?;
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for (pi, port) in ports.iter_mut().enumerate() {
            let mut first = None;
            for q in worker_queues(w, args.workers, queue_plan[pi]) {
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
        let mut pcfg = WorkerConfig::new(WorkerId(w as u16));
        pcfg.hold_slots = args.hold_slots;
        pcfg.workers = args.workers as u16;
        let mut pipeline = Worker::new(pcfg);
        let mut sink = esprit_dataplane::VecOutput::default();
        pipeline.apply(Update::Ports(infos.clone()), &mut sink);
        let (utx, urx) = bounded::<Update>(65_536);
        update_txs.push(utx);
        let heartbeat = Heartbeat::default();
        heartbeats.push(heartbeat.clone());
        let t = WorkerThread {
            index: w as u16,
            core,
            rings,
            pipeline,
            sockets: SocketMap { rx, tx },
            updates: urx,
            to_mgmt: to_mgmt.clone(),
            misses: misses_tx.clone(),
            handoffs: handoffs.clone(),
            stop: stop.clone(),
            heartbeat,
            #[cfg(feature = "fault-injection")]
            fault,
            busy_poll: args.busy_poll,
            idle_sleep: Duration::from_micros(args.idle_sleep_us),
        };
        threads.push(Some(
            std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .spawn(move || t.run())
                .map_err(|e| format!("worker {w}: {e}"))?,
        ));
    }

    let (ctl_tx, ctl_rx) = bounded::<Incoming>(1024);
    let control_counters = Arc::new(ControlCounters::default());
    let socket = control::serve(&args.socket, access, control_counters.clone(), ctl_tx)?;
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone()).map_err(|e| format!("signal handler: {e}"))?;
    }
    eprintln!(
        "fastpathd: {} port(s) [{}], {} worker(s), rx queues bound per port [{}], rings of {ring}, control socket {}",
        ports.len(),
        args.ports.join(", "),
        args.workers,
        queue_plan.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
        socket.display()
    );

    let mut st = State::new(infos, views, update_txs, cores);
    st.xdp_ports = ports;
    st.control = control_counters;
    // Neighbours follow the kernel's notifications (no polling).
    let (neigh_tx, neigh_rx) = bounded::<neigh::MirrorReport>(64);
    let mut neigh_ports = Vec::new();
    for (i, name) in args.ports.iter().enumerate() {
        neigh_ports.push((neigh::ifindex(name).map_err(Stop::Refused)?, PortId(i as u8)));
    }
    neigh::spawn(neigh_ports, neigh_tx).map_err(Stop::Refused)?;
    let mut last_expiry_scan = Instant::now();
    let mut dog = Watchdog::new(args.workers, Duration::from_millis(args.stall_timeout_ms), Instant::now());
    let mut beats = vec![0u64; args.workers];
    let mut death = None;
    while !term.load(Ordering::Relaxed) {
        select! {
            recv(ctl_rx) -> m => if let Ok(m) = m { st.handle(m, &from_workers) },
            recv(from_workers) -> m => if let Ok(m) = m { st.on_worker_message(m, None) },
            recv(neigh_rx) -> m => if let Ok(m) = m { st.on_neighbors(m) },
            recv(misses_rx) -> m => if let Ok((_, _, addr)) = m {
                st.daemon.neighbor_misses += 1;
                host::resolve(addr);
            },
            default(Duration::from_millis(50)) => {},
        }
        let now = Instant::now();
        // Lifetimes are checked ten times a second, not per event: the
        // scan walks every SA.
        if now.duration_since(last_expiry_scan) >= Duration::from_millis(100) {
            st.expire_sas(now);
            last_expiry_scan = now;
        }
        for (b, h) in beats.iter_mut().zip(&heartbeats) {
            *b = h.read();
        }
        death = watchdog::ended(&mut threads).or_else(|| dog.check(now, &beats));
        if death.is_some() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(d) = death {
        // No half-alive process: the other workers are left to the exit
        // (a stalled one would never join); the XDP programs go with their
        // bpf_links when the process ends.
        drop(st);
        let _ = std::fs::remove_file(&socket);
        return Err(Stop::Failed(d.to_string()));
    }
    eprintln!("fastpathd: stopping");
    for t in threads.into_iter().flatten() {
        let _ = t.join();
    }
    drop(st); // detaches the XDP programs
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
    /// A management state over these ports and worker queues, nothing
    /// installed (fastpathd's start; tests and the fuzz target without
    /// ports).
    pub(crate) fn new(
        ports: Vec<PortInfo>,
        port_views: Vec<PortView>,
        workers: Vec<Sender<Update>>,
        cores: Vec<Option<usize>>,
    ) -> State {
        State {
            ports,
            port_views,
            routes: Vec::new(),
            tunnels: BTreeMap::new(),
            vpns: BTreeMap::new(),
            sas: BTreeMap::new(),
            flow: FlowConf::default(),
            neighbors: NeighborTable::default(),
            neighbor_counters: neigh::MirrorCounters::default(),
            workers,
            cores,
            subscribers: Vec::new(),
            rng: SystemRandom::new(),
            probe_idents: Vec::new(),
            next_prober: 0,
            xdp_ports: Vec::new(),
            control: Arc::new(ControlCounters::default()),
            daemon: DaemonCounters::default(),
            stats_wait: Duration::from_secs(2),
            readings: Readings::new(random_epoch()),
            watchers: Vec::new(),
        }
    }

    /// How long stats requests wait for the workers (the fuzz target does
    /// not wait).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn set_stats_wait(&mut self, d: Duration) {
        self.stats_wait = d;
    }

    /// Removes the SAs whose hard lifetime in seconds ran out: every worker
    /// forgets them (outbound: the proxy-ID has no SA again, so its next
    /// packet makes an acquire; inbound: the SPI is unknown), and the
    /// control plane, if any, hears a `hard-expire` (`seconds`).
    pub(crate) fn expire_sas(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, r)| r.hard_deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if self.remove_sa(id).is_some() {
                self.changed_by(None);
                self.daemon.expired_seconds += 1;
                eprintln!("fastpathd: SA {id:#x} reached its hard lifetime in seconds: removed");
                self.notify(FastPathEvent::HardExpire { sa: id, reason: "seconds".into() });
            }
        }
    }

    /// Forgets an SA and has every worker drop it.
    fn remove_sa(&mut self, id: u64) -> Option<SaRecord> {
        let r = self.sas.remove(&id)?;
        match r.direction {
            Direction::Outbound => self.broadcast(|| Update::RemoveOutbound(SaId(id))),
            Direction::Inbound => self.broadcast(|| Update::RemoveInbound { spi: r.spi }),
        }
        Some(r)
    }

    /// What fastpathd holds changed, by the connection of `writer` (None:
    /// by fastpathd itself): every other watcher is told at its next
    /// stats request. Closed connections are forgotten here.
    fn changed_by(&mut self, writer: Option<&Writer>) {
        self.watchers.retain(|(w, _)| w.strong_count() > 0);
        let own = writer.map(|w| Arc::as_ptr(w) as *const ());
        for (w, changed) in &mut self.watchers {
            if Some(w.as_ptr() as *const ()) != own {
                *changed = true;
            }
        }
    }

    /// A stats request from the connection of `writer`: whether anything
    /// but it changed what fastpathd holds since its previous one (true
    /// the first time: nothing to vouch from). It is watched from now on.
    fn take_changed_by_others(&mut self, writer: &Writer) -> bool {
        let own = Arc::as_ptr(writer) as *const ();
        match self.watchers.iter_mut().find(|(w, _)| w.as_ptr() as *const () == own) {
            Some((_, changed)) => std::mem::take(changed),
            None => {
                self.watchers.retain(|(w, _)| w.strong_count() > 0);
                self.watchers.push((Arc::downgrade(writer), false));
                true
            }
        }
    }

    fn notify(&mut self, event: FastPathEvent) {
        let msg = ServerMessage::Event { event };
        let before = self.subscribers.len();
        self.subscribers.retain(|w| control::send(w, &msg));
        if self.subscribers.len() < before {
            // Its connection is shut down with the failed write: the
            // subscriber sees it end and subscribes again.
            eprintln!(
                "fastpathd: {} event subscriber(s) gone or not reading for 5 s: connection closed, events since are lost to it",
                before - self.subscribers.len()
            );
        }
    }

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

    /// A report of the neighbour mirror: a changed table goes to every
    /// worker as a new copy (they swap it between bursts).
    fn on_neighbors(&mut self, m: neigh::MirrorReport) {
        self.neighbor_counters = m.counters;
        if let Some(t) = m.table {
            self.neighbors = (*t).clone();
            self.broadcast(|| Update::Neighbors(t.clone()));
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
        let result = self.handle_request(request, &m.writer, from_workers);
        let _ = m.reply.send(ServerMessage::Reply { id, result });
    }

    /// Answers one request (sans-IO: `writer` is only kept by `subscribe`).
    pub(crate) fn handle_request(
        &mut self,
        request: Request,
        writer: &Writer,
        from_workers: &Receiver<FromWorker>,
    ) -> Result<Reply, String> {
        let changes = matches!(
            request,
            Request::SetRoutes { .. }
                | Request::SetTunnel { .. }
                | Request::SetFlow { .. }
                | Request::RemoveTunnel { .. }
                | Request::SetVpn { .. }
                | Request::RemoveVpn { .. }
                | Request::AddSa(_)
                | Request::RemoveSa { .. }
                | Request::Reset
        );
        let result = self.answer(request, writer, from_workers);
        if changes && result.is_ok() {
            self.changed_by(Some(writer));
        }
        result
    }

    fn answer(
        &mut self,
        request: Request,
        writer: &Writer,
        from_workers: &Receiver<FromWorker>,
    ) -> Result<Reply, String> {
        match request {
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
            Request::SetFlow { tcp_mss } => {
                self.flow = FlowConf { tcp_mss };
                let flow = self.flow;
                self.broadcast(|| Update::Flow(flow));
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
            Request::RemoveSa { id } => match self.remove_sa(id) {
                Some(_) => Ok(Reply::Ok),
                None => Err(format!("no SA {id}")),
            },
            Request::Stats => Ok(self.stats_reply(from_workers, writer, None)),
            Request::StatsSince { epoch } => Ok(self.stats_reply(from_workers, writer, Some(epoch))),
            Request::Dump => Ok(Reply::Dump(Box::new(self.dump()))),
            Request::Reset => {
                for id in self.sas.keys().copied().collect::<Vec<_>>() {
                    self.remove_sa(id);
                }
                for v in std::mem::take(&mut self.vpns).into_keys() {
                    self.broadcast(|| Update::RemoveVpn(VpnId(v)));
                }
                for t in std::mem::take(&mut self.tunnels).into_keys() {
                    self.broadcast(|| Update::RemoveTunnel(TunnelId(t)));
                }
                self.flow = FlowConf::default();
                self.broadcast(|| Update::Flow(FlowConf::default()));
                self.set_routes(Vec::new()).map(|()| Reply::Ok)
            }
            Request::Subscribe => {
                // One entry per connection, however often it asks.
                if !self.subscribers.iter().any(|w| Arc::ptr_eq(w, writer)) {
                    self.subscribers.push(writer.clone());
                }
                Ok(Reply::Ok)
            }
            Request::Probe { src, dst, ident, seq, size } => {
                self.probe(src, dst, ident, seq, size).map(|()| Reply::Ok)
            }
        }
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
        let suite = s.suite.suite().map_err(|e| format!("SA {}: {e}", s.id))?;
        let proxy_id: ProxyId =
            s.proxy_id.parse().map_err(|e| format!("SA {}: proxy-ID {:?}: {e}", s.id, s.proxy_id))?;
        if !self.vpns.contains_key(&s.vpn) {
            return Err(format!("SA {}: no VPN {}", s.id, s.vpn));
        }
        let owner = self.owner_of(s.vpn, &proxy_id);
        let life = Lifetime { soft_bytes: s.soft_bytes, hard_bytes: s.hard_bytes, idle_secs: s.idle_secs };
        let hard_deadline =
            (s.hard_secs != 0).then(|| Instant::now() + Duration::from_secs(u64::from(s.hard_secs)));
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
                if s.replay_window != 0 && !(MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW).contains(&s.replay_window)
                {
                    return Err(format!(
                        "SA {}: replay window {} is outside {MIN_REPLAY_WINDOW}..{MAX_REPLAY_WINDOW} packets (0 = anti-replay off)",
                        s.id, s.replay_window
                    ));
                }
                let mut cfg = InboundConfig::new(s.spi, suite);
                cfg.esn = s.esn;
                cfg.replay_window = s.replay_window;
                // A re-installed SA: its window starts above last_seq.
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
            SaRecord {
                direction: s.direction,
                spi: s.spi,
                vpn: s.vpn,
                proxy_id: proxy_id.to_string(),
                hard_deadline,
            },
        );
        Ok(())
    }

    /// A stats request's answer for the connection of `writer`.
    fn stats_reply(
        &mut self,
        from_workers: &Receiver<FromWorker>,
        writer: &Writer,
        since: Option<u64>,
    ) -> Reply {
        let mut stats = self.stats(from_workers, since);
        stats.changed_by_others = self.take_changed_by_others(writer);
        Reply::Stats(Box::new(stats))
    }

    /// Counters of every worker; of every SA (`since` None) or of those
    /// changed since that epoch (see [`Readings`]).
    fn stats(&mut self, from_workers: &Receiver<FromWorker>, since: Option<u64>) -> Stats {
        static TAG: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let tag = TAG.fetch_add(1, Ordering::Relaxed);
        self.broadcast(|| Update::Stats(tag));
        let mut got: Vec<WorkerStats> = Vec::new();
        let mut shells: BTreeMap<u16, ShellStats> = BTreeMap::new();
        let deadline = Instant::now() + self.stats_wait;
        while got.len() < self.workers.len() || shells.len() < self.workers.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match from_workers.recv_timeout(left) {
                Ok(FromWorker::Shell(t, w, v)) if t == tag => {
                    shells.insert(w, v);
                }
                Ok(m) => self.on_worker_message(m, Some((tag, &mut got))),
                Err(_) => break,
            }
        }
        got.sort_by_key(|w| w.worker);
        let answered: Vec<u16> = got.iter().map(|w| w.worker.0).collect();
        let mut stats = Stats::default();
        // The XDP programs' counters; frames dropped on a queue without a
        // socket are shown under the worker that polls (or would poll) it.
        let mut xdp_drops: BTreeMap<u16, u64> = BTreeMap::new();
        let mut xdp_queues: BTreeMap<u16, Vec<SocketStatsView>> = BTreeMap::new();
        for p in &self.xdp_ports {
            let mut view = PortStatsView { port: p.name().to_owned(), ..PortStatsView::default() };
            if let Ok(v) = p.verdicts() {
                view.verdicts = Verdict::ALL
                    .iter()
                    .filter(|x| v.get(**x) != 0)
                    .map(|x| (x.name().to_owned(), v.get(*x)))
                    .collect();
            }
            if let Ok(q) = p.no_socket_drops() {
                for &(queue, n) in &q {
                    let w = queues::owner_of_queue(queue, self.workers.len()) as u16;
                    *xdp_drops.entry(w).or_default() += n;
                    xdp_queues.entry(w).or_default().push(SocketStatsView {
                        port: p.name().to_owned(),
                        queue,
                        counters: vec![("xdp-no-socket".to_owned(), n)],
                    });
                }
                view.no_socket_drops = q;
            }
            stats.ports.push(view);
        }
        stats.daemon = self.daemon_counters();
        for w in got {
            let shell = shells.remove(&w.worker.0).unwrap_or_default();
            let mut drops: Vec<(String, u64)> =
                w.drops.nonzero().map(|(r, n)| (r.name().to_owned(), n)).collect();
            if let Some(n) = xdp_drops.remove(&w.worker.0) {
                drops.push((DropReason::XdpNoSocket.name().to_owned(), n));
            }
            let mut sockets = shell.sockets;
            sockets.extend(xdp_queues.remove(&w.worker.0).unwrap_or_default());
            stats.workers.push(WorkerStatsView {
                worker: w.worker.0,
                core: self.cores.get(usize::from(w.worker.0)).copied().flatten(),
                counters: w.counters,
                drops,
                sockets,
                neighbor_misses_suppressed: shell.neighbor_misses_suppressed,
                events_lost: shell.events_lost,
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
                    replay_window: s.replay_window,
                    esn: s.esn,
                    admits_any: s.admits_any,
                });
            }
        }
        stats.sas.sort_by_key(|s| (s.id, s.worker));
        stats.epoch = self.readings.record(&stats.sas, &answered);
        if since.is_some() {
            let a = self.readings.since(since);
            (stats.sas, stats.removed, stats.partial) = (a.sas, a.removed, a.partial);
        }
        stats
    }

    fn daemon_counters(&self) -> Vec<(String, u64)> {
        let d = &self.daemon;
        let mut v: Vec<(String, u64)> = [
            ("sa-hard-expired-seconds", d.expired_seconds),
            ("sa-hard-expired-bytes", d.expired_bytes),
            ("sa-hard-expired-sequence", d.expired_sequence),
            ("neighbor-misses-resolved", d.neighbor_misses),
            ("neighbor-events", self.neighbor_counters.events),
            ("neighbor-redumps", self.neighbor_counters.redumps),
            ("neighbor-bad-messages", self.neighbor_counters.bad_messages),
        ]
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
        v.extend(self.control.nonzero());
        v
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
            tcp_mss: self.flow.tcp_mss,
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
            FromWorker::Shell(..) => return,
        };
        let api = match e {
            WorkerEvent::Stats(s) => {
                if let Some((tag, got)) = collect.as_mut() {
                    if s.tag == *tag {
                        got.push(*s);
                    }
                }
                return;
            }
            // Neighbour misses come on their own channel; one sent here
            // anyway is served the same way.
            WorkerEvent::NeighborMiss { addr, .. } => {
                self.daemon.neighbor_misses += 1;
                host::resolve(addr);
                return;
            }
            WorkerEvent::Acquire { vpn, tunnel, proxy_id, flow, .. } => FastPathEvent::Acquire {
                vpn: vpn.0,
                tunnel: tunnel.0,
                proxy_id: proxy_id.to_string(),
                src: flow.src().to_string(),
                dst: flow.dst().to_string(),
                protocol: flow.protocol(),
            },
            WorkerEvent::SoftExpire { sa, reason } => {
                FastPathEvent::SoftExpire { sa: sa.0, reason: reason_name(reason) }
            }
            WorkerEvent::HardExpire { sa, reason } => {
                // The worker already drops the SA's traffic; removing it
                // frees the proxy-ID for an acquire, controld or not.
                if self.remove_sa(sa.0).is_some() {
                    self.changed_by(None);
                    match reason {
                        ExpireReason::Bytes => self.daemon.expired_bytes += 1,
                        ExpireReason::Sequence => self.daemon.expired_sequence += 1,
                    }
                    eprintln!(
                        "fastpathd: SA {:#x} reached its hard lifetime ({}): removed",
                        sa.0,
                        reason_name(reason)
                    );
                }
                FastPathEvent::HardExpire { sa: sa.0, reason: reason_name(reason) }
            }
            WorkerEvent::Idle { sa } => FastPathEvent::Idle { sa: sa.0 },
            WorkerEvent::ProbeReply { vpn, tunnel, sa, src, dst, ident, seq } => {
                FastPathEvent::ProbeReply { vpn: vpn.0, tunnel: tunnel.0, sa: sa.0, src, dst, ident, seq }
            }
        };
        self.notify(api);
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
    use esprit_fastpath_api::Key;
    use std::sync::Mutex;

    /// Lines written to a subscribed connection.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn sa(id: u64, direction: Direction, spi: u32, hard_secs: u32, hard_bytes: u64) -> Request {
        Request::AddSa(Box::new(SaSpec {
            id,
            direction,
            spi,
            suite: esprit_esp::Suite::Aes128CbcSha1.into(),
            encr_key: Key::new(vec![1; 16]),
            integ_key: Key::new(vec![2; 20]),
            iv_key: None,
            local: Ipv4Addr::new(192, 0, 2, 1),
            peer: Ipv4Addr::new(192, 0, 2, 2),
            udp_encap: None,
            esn: false,
            replay_window: 64,
            vpn: 1,
            tunnel: 1,
            proxy_id: "local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 ANY".into(),
            soft_bytes: 0,
            hard_bytes,
            idle_secs: 0,
            hard_secs,
            last_seq: 0,
        }))
    }

    /// A management state with one worker queue, a VPN, and a subscriber.
    fn state() -> (State, Receiver<Update>, Lines, Writer, Receiver<FromWorker>) {
        let (tx, rx) = bounded(1024);
        let mut st = State::new(Vec::new(), Vec::new(), vec![tx], vec![None]);
        let lines = Lines::default();
        let writer: Writer = Arc::new(std::sync::Mutex::new(lines.clone()));
        let (_keep, from_workers) = bounded(1);
        let set_vpn = Request::SetVpn {
            vpn: 1,
            check: false,
            proxy_ids: vec!["local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 ANY".into()],
        };
        st.handle_request(set_vpn, &writer, &from_workers).unwrap();
        st.handle_request(Request::Subscribe, &writer, &from_workers).unwrap();
        while rx.try_recv().is_ok() {}
        (st, rx, lines, writer, from_workers)
    }

    /// An SA past its hard lifetime in seconds is removed by
    /// fastpathd itself (no control plane needed), the workers told, and
    /// a subscriber, if any, hears `hard-expire` (`seconds`).
    #[test]
    fn an_sa_past_its_hard_seconds_is_removed_without_the_control_plane() {
        let (mut st, rx, lines, w, fw) = state();
        st.handle_request(sa(0x10, Direction::Outbound, 0x1001, 30, 0), &w, &fw).unwrap();
        st.handle_request(sa(0x11, Direction::Inbound, 0x2001, 30, 0), &w, &fw).unwrap();
        st.handle_request(sa(0x12, Direction::Inbound, 0x2002, 0, 0), &w, &fw).unwrap();
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        st.expire_sas(t0 + Duration::from_secs(29));
        assert_eq!(st.sas.len(), 3);
        assert!(rx.try_recv().is_err());
        st.expire_sas(t0 + Duration::from_secs(31));
        // The SA without a limit in seconds stays.
        assert_eq!(st.sas.keys().copied().collect::<Vec<_>>(), vec![0x12]);
        let updates: Vec<String> = rx.try_iter().map(|u| format!("{u:?}")).collect();
        assert_eq!(updates, vec!["RemoveOutbound(SaId(16))", "RemoveInbound { spi: 8193 }"]);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "{\"type\":\"event\",\"event\":{\"kind\":\"hard-expire\",\"sa\":16,\"reason\":\"seconds\"}}\n\
             {\"type\":\"event\",\"event\":{\"kind\":\"hard-expire\",\"sa\":17,\"reason\":\"seconds\"}}\n"
        );
        assert_eq!(st.daemon_counters(), vec![("sa-hard-expired-seconds".to_owned(), 2)]);
        // controld's own remove-sa afterwards is answered as before.
        assert_eq!(st.handle_request(Request::RemoveSa { id: 0x10 }, &w, &fw).unwrap_err(), "no SA 16");
    }

    /// A stats request says whether anything but its own connection
    /// changed what fastpathd holds since that connection's previous one:
    /// another connection's request, or fastpathd's own expiry; a
    /// connection's first request cannot be vouched for; a closed
    /// connection is forgotten.
    #[test]
    fn a_stats_reading_says_whether_others_changed_anything() {
        let (mut st, _rx, _lines, a, fw) = state();
        st.set_stats_wait(Duration::ZERO);
        let b: Writer = Arc::new(std::sync::Mutex::new(Lines::default()));
        let others = |st: &mut State, w: &Writer, since: bool| {
            let r = if since { Request::StatsSince { epoch: 0 } } else { Request::Stats };
            match st.handle_request(r, w, &fw).unwrap() {
                Reply::Stats(s) => s.changed_by_others,
                other => panic!("{other:?}"),
            }
        };
        assert!(others(&mut st, &a, false), "first reading");
        assert!(!others(&mut st, &a, true));
        // Its own changes, and refused requests, are not others'.
        st.handle_request(sa(0x10, Direction::Outbound, 0x1001, 30, 0), &a, &fw).unwrap();
        assert!(st.handle_request(Request::RemoveSa { id: 0x99 }, &b, &fw).is_err());
        assert!(!others(&mut st, &a, true));
        // Another connection's change; reading counters changes nothing.
        assert!(others(&mut st, &b, false), "b's first reading");
        st.handle_request(Request::RemoveSa { id: 0x10 }, &b, &fw).unwrap();
        assert!(others(&mut st, &a, true));
        assert!(!others(&mut st, &a, true));
        assert!(!others(&mut st, &b, true), "b's own change");
        // fastpathd's own expiry.
        st.handle_request(sa(0x11, Direction::Inbound, 0x2001, 30, 0), &a, &fw).unwrap();
        assert!(!others(&mut st, &a, true));
        st.expire_sas(Instant::now() + Duration::from_secs(31));
        assert!(others(&mut st, &a, true));
        assert!(others(&mut st, &b, true));
        // b's connection closes: its entry goes at the next change.
        drop(b);
        st.handle_request(Request::SetFlow { tcp_mss: Some(1300) }, &a, &fw).unwrap();
        assert_eq!(st.watchers.len(), 1);
    }

    /// A worker's hard expiry (bytes) removes the SA too.
    #[test]
    fn a_worker_hard_expiry_removes_the_sa() {
        let (mut st, rx, lines, w, fw) = state();
        st.handle_request(sa(0x11, Direction::Inbound, 0x2001, 0, 1000), &w, &fw).unwrap();
        while rx.try_recv().is_ok() {}
        st.on_worker_message(
            FromWorker::Event(0, WorkerEvent::HardExpire { sa: SaId(0x11), reason: ExpireReason::Bytes }),
            None,
        );
        assert!(st.sas.is_empty());
        assert_eq!(
            rx.try_iter().map(|u| format!("{u:?}")).collect::<Vec<_>>(),
            vec!["RemoveInbound { spi: 8193 }"]
        );
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("\"kind\":\"hard-expire\",\"sa\":17,\"reason\":\"bytes\""), "{text}");
        assert_eq!(st.daemon_counters(), vec![("sa-hard-expired-bytes".to_owned(), 1)]);
    }

    /// An inbound window outside 32..4096 (0 = off) is refused with the
    /// reason, and nothing is installed; the bounds and 0 are taken.
    #[test]
    fn an_inbound_replay_window_out_of_range_is_refused() {
        let (mut st, rx, _lines, w, fw) = state();
        let with = |id: u64, window: u32| {
            let Request::AddSa(mut s) = sa(id, Direction::Inbound, 0x3000 + id as u32, 0, 0) else {
                unreachable!()
            };
            s.replay_window = window;
            Request::AddSa(s)
        };
        for bad in [1, 31, 4097, u32::MAX] {
            let e = st.handle_request(with(0x20, bad), &w, &fw).unwrap_err();
            assert_eq!(
                e,
                format!("SA 32: replay window {bad} is outside 32..4096 packets (0 = anti-replay off)")
            );
        }
        assert!(st.sas.is_empty() && rx.try_recv().is_err());
        for (id, ok) in [(0x21, 0), (0x22, 32), (0x23, 4096)] {
            st.handle_request(with(id, ok), &w, &fw).unwrap();
        }
        assert_eq!(st.sas.len(), 3);
    }

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
        assert_eq!(cfg, XdpSocketsConfig { bind: BindMode::Auto, ..XdpSocketsConfig::default() });
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
