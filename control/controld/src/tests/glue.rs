//! Two controld cores back to back, in memory: each programs a model of
//! fastpathd (SAs, proxy-ID tables, routes, per-SA counters, acquire on
//! the first packet of a proxy-ID without an SA, hard expiry by time, VPN
//! monitor probes answered through the SAs), their IKE datagrams cross an
//! in-memory wire, and the test owns the clock. No socket, no thread, no
//! sleep: what `daemon` does with real sockets, in a few milliseconds.
//!
//! ```text
//!   core A (198.51.100.1)            wire             core B (203.0.113.2)
//!   10.1.1.0/24 --- model A  <-- ESP (counted) -->  model B --- 10.2.1.0/24
//!                     |                                  |
//!                     +-- IKE: MM1..MM6, QM1..QM3 -------+
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use esprit_config::Config;
use esprit_fastpath_api::{
    Direction, Dump, FastPathEvent, NextHopSpec, Reply, Request, SaSpec, SaStatsView, Stats,
};
use esprit_ike::{Transmit, WallClock};
use esprit_policy::{FlowKey, ProxyId};

use super::Model;
use crate::core::controller::{Controller, FastPathError, Response};
use crate::core::engine::{Core, Output};
use crate::core::port::{Answer, Token};
use crate::core::state::{State, StateWrite};
use crate::ike::persist::{Loaded, MemStore};
use crate::ike::RandomFill;

const ICMP: u8 = 1;
/// The proxy-ID A negotiates (B's is the mirror).
const PID_A: &str = "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY";
const PID_B: &str = "local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY";

/// Gateway A: child SAs of 120 s, ISAKMP SA of 600 s, DPD every 10 s, a
/// VPN monitor through the proxy-ID towards a host behind B, and route
/// withdrawal.
fn config_a() -> String {
    r#"set interface ethernet0/1 zone Trust
set interface ethernet0/1 ip 10.1.1.1/24
set interface ethernet0/1 port lan1
set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 198.51.100.1/24
set interface ethernet0/2 port wan0
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set route 0.0.0.0/0 interface ethernet0/2 gateway 198.51.100.254
set route 10.2.1.0/24 interface tunnel.1
set route 10.2.1.0/24 interface null metric 250
set ike p1-proposal "p1" preshare group14 esp aes128 sha-1 second 600
set ike p2-proposal "p2" no-pfs esp aes128 sha-1 second 120
set ike gateway "gwb" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "glue-test-psk" proposal "p1"
set ike gateway "gwb" dpd-liveness interval 10 retry 3
set vpn "v" gateway "gwb" no-replay tunnel idletime 0 proposal "p2"
set vpn "v" id 0x5 bind interface tunnel.1
set vpn "v" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any
set vpn "v" monitor source-interface ethernet0/1 destination-ip 10.2.1.5 rekey
set vpn "v" withdraw-routes
set vpnmonitor interval 2 threshold 3
"#
    .to_owned()
}

/// Gateway B, the mirror of A, without monitor or withdrawal.
fn config_b() -> String {
    r#"set interface ethernet0/1 zone Trust
set interface ethernet0/1 ip 10.2.1.1/24
set interface ethernet0/1 port lan1
set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 203.0.113.2/24
set interface ethernet0/2 port wan0
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set route 0.0.0.0/0 interface ethernet0/2 gateway 203.0.113.254
set route 10.1.1.0/24 interface tunnel.1
set ike p1-proposal "p1" preshare group14 esp aes128 sha-1 second 600
set ike p2-proposal "p2" no-pfs esp aes128 sha-1 second 120
set ike gateway "gwa" address 198.51.100.1 Main outgoing-interface "ethernet0/2" preshare "glue-test-psk" proposal "p1"
set ike gateway "gwa" dpd-liveness interval 10 retry 3
set vpn "v" gateway "gwa" no-replay tunnel idletime 0 proposal "p2"
set vpn "v" id 0x5 bind interface tunnel.1
set vpn "v" proxy-id local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 any
"#
    .to_owned()
}

/// A deterministic random source (xorshift), one seed per side.
fn random(seed: u64) -> RandomFill {
    let state = Rc::new(RefCell::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1));
    Rc::new(move |b: &mut [u8]| {
        let mut x = state.borrow_mut();
        for v in b {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *v = (*x >> 24) as u8;
        }
    })
}

/// One installed SA of the model, with its counters.
#[derive(Debug, Clone)]
struct ModelSa {
    spec: SaSpec,
    installed_at: Instant,
    packets: u64,
    bytes: u64,
    seq: u64,
}

/// fastpathd in memory: what its management thread holds and what its
/// workers count and report.
#[derive(Debug, Default)]
struct ModelFastPath {
    now: Option<Instant>,
    routes: Vec<esprit_fastpath_api::RouteSpec>,
    tunnels: BTreeMap<u32, (u16, Option<u32>)>,
    vpns: BTreeMap<u32, (bool, Vec<String>)>,
    sas: BTreeMap<u64, ModelSa>,
    /// Events for controld, in order.
    events: Vec<FastPathEvent>,
    /// Proxy-IDs ((VPN, proxy-ID)) that raised an acquire and have no
    /// SA yet: one acquire each (fastpathd's rate limit).
    acquired: Vec<(u32, String)>,
    /// Every request but `Dump`, `Stats` and `Probe`, in words.
    log: Vec<String>,
    /// Probes sent, to be answered (or not) by the lab.
    probes: Vec<(Ipv4Addr, Ipv4Addr, u16, u16)>,
    /// Something other than controld changed what the model holds: the
    /// next reading says so ([`Stats::changed_by_others`]).
    changed_by_others: bool,
    /// `Dump` requests answered: controld's whole comparisons.
    dumps: usize,
}

impl ModelFastPath {
    fn at(&mut self, now: Instant) {
        self.now = Some(now);
        // Hard lifetimes are fastpathd's own (DESIGN §7).
        let due: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, s)| {
                s.spec.hard_secs > 0
                    && now >= s.installed_at + Duration::from_secs(u64::from(s.spec.hard_secs))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.sas.remove(&id);
            self.events.push(FastPathEvent::HardExpire { sa: id, reason: "lifetime".into() });
        }
    }

    /// The newest installed SA of `direction` for (VPN, proxy-ID).
    fn sa_for(&self, vpn: u32, proxy_id: &str, direction: Direction) -> Option<u64> {
        self.sas
            .iter()
            .rev()
            .find(|(_, s)| s.spec.vpn == vpn && s.spec.proxy_id == proxy_id && s.spec.direction == direction)
            .map(|(id, _)| *id)
    }

    /// The proxy-ID of `tunnel`'s VPN an ICMP echo from `src` to `dst`
    /// matches, most specific first (as the classifier does).
    fn classify(&self, tunnel: u32, src: Ipv4Addr, dst: Ipv4Addr) -> Option<(u32, String)> {
        let vpn = self.tunnels.get(&tunnel)?.1?;
        let key = FlowKey::v4(src, dst, ICMP, 0, FlowKey::icmp_type_code(8, 0));
        let (_, ids) = self.vpns.get(&vpn)?;
        ids.iter()
            .filter_map(|s| s.parse::<ProxyId>().ok().map(|p| (s, p)))
            .filter(|(_, p)| p.matches_outbound(&key))
            .max_by_key(|(_, p)| (p.remote.len(), p.local.len()))
            .map(|(s, _)| (vpn, s.clone()))
    }

    /// A packet of `len` bytes routed into `tunnel`: encrypted on its SA
    /// (returns its SPI), or an acquire (once) and a drop.
    fn send(&mut self, tunnel: u32, src: Ipv4Addr, dst: Ipv4Addr, len: u64) -> Option<u32> {
        let (vpn, pid) = self.classify(tunnel, src, dst)?;
        let Some(id) = self.sa_for(vpn, &pid, Direction::Outbound) else {
            if !self.acquired.contains(&(vpn, pid.clone())) {
                self.acquired.push((vpn, pid.clone()));
                self.events.push(FastPathEvent::Acquire {
                    vpn,
                    tunnel,
                    proxy_id: pid,
                    src: src.to_string(),
                    dst: dst.to_string(),
                    protocol: ICMP,
                });
            }
            return None;
        };
        let sa = self.sas.get_mut(&id)?;
        sa.packets += 1;
        sa.bytes += len;
        sa.seq += 1;
        Some(sa.spec.spi)
    }

    /// ESP with `spi` arrived: counted on the inbound SA, whose id it
    /// returns; `None` when no inbound SA has that SPI (dropped).
    fn receive(&mut self, spi: u32, len: u64) -> Option<u64> {
        let (id, sa) =
            self.sas.iter_mut().find(|(_, s)| s.spec.direction == Direction::Inbound && s.spec.spi == spi)?;
        sa.packets += 1;
        sa.bytes += len;
        sa.seq += 1;
        Some(*id)
    }

    fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    fn dump(&self) -> Dump {
        Dump {
            routes: self.routes.clone(),
            tunnels: self.tunnels.iter().map(|(t, (m, v))| (*t, *m, *v)).collect(),
            vpns: self.vpns.iter().map(|(v, (c, p))| (*v, *c, p.clone())).collect(),
            sas: self
                .sas
                .iter()
                .map(|(id, s)| (*id, s.spec.direction, s.spec.spi, s.spec.vpn, s.spec.proxy_id.clone()))
                .collect(),
            ..Dump::default()
        }
    }
}

impl Model for ModelFastPath {
    fn answer(&mut self, r: Request) -> Result<Reply, FastPathError> {
        let refused = |reason: String| FastPathError::Refused { what: "model".into(), reason };
        match r {
            Request::Dump => {
                self.dumps += 1;
                return Ok(Reply::Dump(Box::new(self.dump())));
            }
            Request::Stats | Request::StatsSince { .. } => {
                let sas = self
                    .sas
                    .iter()
                    .map(|(id, s)| SaStatsView {
                        id: *id,
                        spi: s.spec.spi,
                        direction: Some(s.spec.direction),
                        packets: s.packets,
                        bytes: s.bytes,
                        seq: s.seq,
                        ..SaStatsView::default()
                    })
                    .collect();
                let changed_by_others = std::mem::take(&mut self.changed_by_others);
                return Ok(Reply::Stats(Box::new(Stats { sas, changed_by_others, ..Stats::default() })));
            }
            Request::Probe { src, dst, ident, seq, .. } => {
                self.probes.push((src, dst, ident, seq));
                return Ok(Reply::Ok);
            }
            _ => {}
        }
        self.log.push(crate::core::controller::describe(&r));
        match r {
            Request::SetRoutes { routes } => self.routes = routes,
            Request::SetTunnel { tunnel, mtu, vpn } => {
                self.tunnels.insert(tunnel, (mtu, vpn));
            }
            Request::RemoveTunnel { tunnel } => {
                self.tunnels.remove(&tunnel);
            }
            Request::SetVpn { vpn, check, proxy_ids } => {
                self.vpns.insert(vpn, (check, proxy_ids));
            }
            Request::RemoveVpn { vpn } => {
                self.vpns.remove(&vpn);
                self.sas.retain(|_, s| s.spec.vpn != vpn);
            }
            Request::AddSa(s) => {
                let Some((_, ids)) = self.vpns.get(&s.vpn) else {
                    return Err(refused(format!("SA {:#x}: no VPN {}", s.id, s.vpn)));
                };
                if !ids.contains(&s.proxy_id) {
                    return Err(refused(format!(
                        "SA {:#x}: proxy-ID {} not in VPN {}",
                        s.id, s.proxy_id, s.vpn
                    )));
                }
                self.acquired.retain(|(v, p)| !(*v == s.vpn && *p == s.proxy_id));
                let now = self.now.unwrap_or_else(Instant::now);
                let seq = s.last_seq;
                self.sas.insert(s.id, ModelSa { spec: *s, installed_at: now, packets: 0, bytes: 0, seq });
            }
            Request::RemoveSa { id } => {
                if self.sas.remove(&id).is_none() {
                    return Err(refused(format!("no SA {id:#x}")));
                }
            }
            other => return Err(refused(format!("unexpected {other:?}"))),
        }
        Ok(Reply::Ok)
    }
}

/// One gateway: its core, its fastpathd, what it last persisted.
struct Gateway {
    name: &'static str,
    core: Core,
    fp: ModelFastPath,
    /// Its `controld.json` and journal, as bytes.
    state_files: (Option<Vec<u8>>, Vec<u8>),
    /// Appends to that journal.
    state_appends: usize,
    /// Its IKE snapshot and journal.
    ike_store: MemStore,
    log: Vec<String>,
    /// fastpathd connected.
    connected: bool,
    /// Requests the model has not answered yet (all of them while `hold`
    /// is set), oldest first.
    held: std::collections::VecDeque<Request>,
    /// Leave fastpathd's requests unanswered (in `held`) until released.
    hold: bool,
    /// Start holding at the first batch that installs an SA.
    hold_on_add: bool,
    /// Late answers to operator commands, in order.
    replies: Vec<(Token, Response)>,
    /// Outputs the gateway's own pump left for the lab (datagrams, ...).
    stash: Vec<Output>,
    /// Connections the core dropped (a test that breaks one sets
    /// `may_lose`; any other loss fails the test).
    losses: usize,
    may_lose: bool,
}

/// Two gateways, the wire between them, and the clock.
struct Lab {
    a: Gateway,
    b: Gateway,
    start: Instant,
    wall: SystemTime,
    now: Instant,
    /// The wire carries IKE (and ESP) while true.
    link_up: bool,
    /// Datagrams in flight: (to B, datagram).
    wire: Vec<(bool, Transmit)>,
    /// Monitor probes A's outbound SAs carried (they count with the pings).
    probes_carried: u64,
    /// IKE datagrams delivered to A.
    to_a: usize,
}

fn controller(text: &str, state: State) -> Controller {
    let (config, _) = Config::load(text).unwrap_or_else(|e| panic!("{e}"));
    Controller::new(config, None, BTreeMap::new(), state).unwrap()
}

impl Gateway {
    fn new(name: &'static str, text: &str, seed: u64, clock: WallClock) -> Gateway {
        let ike_store = MemStore::default();
        let store = Box::new(ike_store.clone());
        let core = Core::new(controller(text, State::default()), Loaded::Absent, random(seed), clock, store);
        Gateway {
            name,
            core,
            fp: ModelFastPath::default(),
            state_files: (None, Vec::new()),
            state_appends: 0,
            ike_store,
            log: Vec::new(),
            connected: false,
            held: Default::default(),
            hold: false,
            hold_on_add: false,
            replies: Vec::new(),
            stash: Vec::new(),
            losses: 0,
            may_lose: false,
        }
    }

    /// The shell's fastpathd part, in memory: the core's requests go to
    /// the model (or wait in `held`), the replies come back in order, late
    /// answers are kept; other outputs wait in `stash` for the lab.
    fn pump(&mut self, now: Instant) {
        loop {
            if !self.hold {
                while let Some(r) = self.held.pop_front() {
                    let reply = self.fp.answer(r);
                    self.core.handle_fastpath_reply(now, reply);
                }
            }
            let Some(o) = self.core.poll_output() else {
                if self.hold || self.held.is_empty() {
                    return;
                }
                continue;
            };
            match o {
                Output::FastPath(requests) => {
                    if self.hold_on_add && requests.iter().any(|r| matches!(r, Request::AddSa(_))) {
                        self.hold = true;
                    }
                    self.held.extend(requests);
                }
                Output::Reply { token, response } => self.replies.push((token, response)),
                Output::FastPathLost => {
                    assert!(self.may_lose, "{}: the model never breaks the connection", self.name);
                    self.losses += 1;
                    self.connected = false;
                    self.held.clear();
                }
                other => self.stash.push(other),
            }
        }
    }

    /// Lets the held requests go: the model answers them in order.
    fn release(&mut self, now: Instant) {
        self.hold = false;
        self.pump(now);
    }

    /// What a restart would load from its state files.
    fn saved_state(&self) -> State {
        let (snapshot, journal) = &self.state_files;
        let (state, cut) = State::from_bytes(snapshot.as_deref(), Some(journal)).unwrap();
        assert_eq!(cut, None, "no torn append");
        state.expect("a snapshot")
    }

    fn command(&mut self, now: Instant, line: &str) -> Vec<String> {
        let r = match self.core.handle_command(now, line) {
            Answer::Now(r) => r,
            Answer::Later(token) => {
                self.pump(now);
                let at = self.replies.iter().position(|(t, _)| *t == token);
                let at = at.unwrap_or_else(|| panic!("{}: {line}: no answer", self.name));
                self.replies.remove(at).1
            }
        };
        assert_eq!(r.result, Ok(()), "{}: {line}", self.name);
        r.output
    }
}

impl Lab {
    fn new() -> Lab {
        Lab::with(&config_a(), &config_b())
    }

    /// A lab whose gateways run `a` and `b`.
    fn with(a: &str, b: &str) -> Lab {
        let start = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = WallClock { now: start, wall };
        let mut lab = Lab {
            a: Gateway::new("A", a, 1, clock),
            b: Gateway::new("B", b, 2, clock),
            start,
            wall,
            now: start,
            link_up: true,
            wire: Vec::new(),
            probes_carried: 0,
            to_a: 0,
        };
        for g in [&mut lab.a, &mut lab.b] {
            g.fp.at(start);
            g.core.handle_connected(start);
            g.connected = true;
        }
        lab.settle();
        lab
    }

    fn clock(&self) -> WallClock {
        WallClock { now: self.now, wall: self.wall + (self.now - self.start) }
    }

    /// Carries out a gateway's outputs; datagrams go on the wire.
    fn outputs(g: &mut Gateway, to_b: bool, wire: &mut Vec<(bool, Transmit)>, now: Instant) {
        g.pump(now);
        for o in std::mem::take(&mut g.stash) {
            match o {
                Output::Transmit(t) => wire.push((to_b, t)),
                Output::Log(l) => g.log.push(l),
                Output::SaveState(StateWrite::Snapshot(s)) => {
                    g.state_files = (Some(serde_json::to_vec(&s).unwrap()), Vec::new());
                    let begin = crate::core::state::StateRecord::Begin {
                        version: crate::core::state::STATE_VERSION,
                        generation: s.generation,
                    };
                    g.state_files.1 = crate::journal::encode(&[begin]).to_vec();
                }
                Output::SaveState(StateWrite::Append(frames)) => {
                    g.state_files.1.extend_from_slice(&frames);
                    g.state_appends += 1;
                }
                Output::FastPath(_) | Output::Reply { .. } | Output::FastPathLost => {
                    unreachable!("kept by the gateway's pump")
                }
                Output::Listen(_) | Output::Stats(_) => {}
            }
        }
    }

    /// Runs both cores until nothing moves at this instant: events and
    /// datagrams delivered, each core's turn taken.
    fn settle(&mut self) {
        for _ in 0..100 {
            let now = self.now;
            let mut moved = false;
            for (g, to_b) in [(&mut self.a, true), (&mut self.b, false)] {
                g.fp.at(now);
                for e in std::mem::take(&mut g.fp.events) {
                    g.core.handle_event(now, &e);
                    moved = true;
                }
                g.core.handle_timeout(now);
                Self::outputs(g, to_b, &mut self.wire, now);
            }
            for (to_b, t) in std::mem::take(&mut self.wire) {
                moved = true;
                if !self.link_up {
                    continue;
                }
                let g = if to_b { &mut self.b } else { &mut self.a };
                self.to_a += usize::from(!to_b);
                g.core.handle_datagram(now, t.remote, t.local, &t.bytes);
                Self::outputs(g, !to_b, &mut self.wire, now);
            }
            self.answer_probes();
            if !moved {
                return;
            }
        }
        panic!("the cores never settle");
    }

    /// A's VPN monitor probes: answered through the SAs while the link is up.
    fn answer_probes(&mut self) {
        for (src, dst, ident, seq) in std::mem::take(&mut self.a.fp.probes) {
            if !self.link_up {
                continue;
            }
            let Some(spi) = self.a.fp.send(1, src, dst, 84) else { continue };
            self.probes_carried += 1;
            if self.b.fp.receive(spi, 84).is_none() {
                continue;
            }
            let Some(back) = self.b.fp.send(1, dst, src, 84) else { continue };
            let Some(sa) = self.a.fp.receive(back, 84) else { continue };
            self.a.fp.events.push(FastPathEvent::ProbeReply {
                vpn: 1,
                tunnel: 1,
                sa,
                src: dst,
                dst: src,
                ident,
                seq,
            });
        }
    }

    /// Advances the clock by `d` in steps of the cores' turn interval.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            let next = self.a.core.poll_timeout().min(self.b.core.poll_timeout()).min(end);
            self.now = next.max(self.now + Duration::from_millis(1)).min(end);
            self.settle();
        }
    }

    /// One ping from 10.1.1.10 (behind A) to 10.2.1.10 (behind B) and its
    /// answer: true if both crossed.
    fn ping(&mut self) -> bool {
        let (a, b) = (Ipv4Addr::new(10, 1, 1, 10), Ipv4Addr::new(10, 2, 1, 10));
        let ok = match self.a.fp.send(1, a, b, 100) {
            Some(spi) if self.link_up => {
                self.b.fp.receive(spi, 100).is_some()
                    && self.b.fp.send(1, b, a, 100).is_some_and(|back| self.a.fp.receive(back, 100).is_some())
            }
            _ => false,
        };
        self.settle();
        ok
    }

    fn get(&mut self, a: bool, line: &str) -> String {
        let now = self.now;
        let g = if a { &mut self.a } else { &mut self.b };
        g.command(now, line).join("\n")
    }

    /// The (inbound SPI, outbound SPI) of each side's newest pair.
    fn spis(&self) -> ((u32, u32), (u32, u32)) {
        let pair = |fp: &ModelFastPath, pid: &str| {
            let spi = |d| fp.sa_for(1, pid, d).map(|id| fp.sas[&id].spec.spi).unwrap_or(0);
            (spi(Direction::Inbound), spi(Direction::Outbound))
        };
        (pair(&self.a.fp, PID_A), pair(&self.b.fp, PID_B))
    }
}

/// The status word of tunnel.1 in `get interface`.
fn tunnel_word(get_interface: &str) -> &str {
    let line = get_interface.lines().find(|l| l.starts_with("tunnel.1")).unwrap_or("");
    ["UP", "READY", "DOWN"].into_iter().find(|w| line.split_whitespace().any(|x| x == *w)).unwrap_or("?")
}

#[test]
fn acquire_negotiate_install_monitor_withdraw_rekey_and_restart_in_memory() {
    let mut lab = Lab::new();
    // Configured, nothing negotiated: both tunnels READY, no SA.
    assert_eq!(lab.a.fp.sas.len(), 0);
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "READY");

    // The first packet has no SA: one acquire, IKE Main Mode and Quick
    // Mode across the wire, the pair installed on both sides.
    assert!(!lab.ping(), "the first packet waits for IKE");
    lab.run(Duration::from_millis(500));
    let ((a_in, a_out), (b_in, b_out)) = lab.spis();
    assert!(a_in != 0 && a_out != 0, "A holds a pair: {:?}", lab.a.fp.dump().sas);
    assert_eq!((a_out, a_in), (b_in, b_out), "each side's outbound SPI is the other's inbound");
    // The SPIs the seeded random sources give (a change here is a change
    // in what the cores draw, or in the order they draw it).
    assert_eq!((a_in, a_out), (0x76f5_3906, 0x9ea9_ff10));
    assert_eq!(lab.a.fp.sas.len(), 2);
    assert_eq!(lab.b.fp.sas.len(), 2);

    // Traffic counters: 3 pings, each counted once per direction.
    for _ in 0..3 {
        assert!(lab.ping());
    }
    lab.run(Duration::from_secs(2));
    let out = lab.a.fp.sa_for(1, PID_A, Direction::Outbound).unwrap();
    assert_eq!(
        (lab.a.fp.sas[&out].packets, lab.a.fp.sas[&out].bytes),
        (3 + lab.probes_carried, 300 + 84 * lab.probes_carried)
    );
    let get_sa = lab.get(true, "get sa");
    assert!(
        get_sa.contains(&format!("00000005> 203.0.113.2       500 esp:aes128/sha1   {a_out:08x}")),
        "{get_sa}"
    );
    assert!(
        get_sa.contains(&format!("00000005< 203.0.113.2       500 esp:aes128/sha1   {a_in:08x}")),
        "{get_sa}"
    );
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "UP");
    assert_eq!(tunnel_word(&lab.get(false, "get interface")), "UP");

    // The VPN monitor probes through the pair and comes UP.
    lab.run(Duration::from_secs(5));
    assert!(lab.probes_carried > 0, "the monitor probes through the SA");
    let vpn = lab.get(true, "get vpn v");
    assert!(vpn.contains(&format!("{PID_A} UP ")), "{vpn}");
    let events = lab.get(true, "get event");
    assert!(events.contains("vpn v: vpn monitor UP"), "{events}");

    // The peer goes away: nothing crosses the wire. The monitor misses
    // its threshold (3 probes 2 s apart), DPD gives up; the proxy-ID is
    // DOWN and its route withdrawn (the null route takes over).
    lab.link_up = false;
    lab.run(Duration::from_secs(60));
    let vpn = lab.get(true, "get vpn v");
    assert!(vpn.contains(&format!("{PID_A} DOWN ")) && vpn.contains("(routes withdrawn)"), "{vpn}");
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "DOWN");
    let tunnel_route =
        |fp: &ModelFastPath| fp.routes.iter().find(|r| r.prefix == "10.2.1.0/24").map(|r| r.next_hop.clone());
    assert_eq!(tunnel_route(&lab.a.fp), Some(NextHopSpec::Null), "withdrawn: the null route");
    let events = lab.get(true, "get event");
    assert!(events.contains("route(s) withdrawn: 10.2.1.0/24 interface tunnel.1"), "{events}");

    // It comes back: controld renegotiates the withdrawn proxy-ID itself
    // (no traffic reaches it), the pair is UP and the route restored.
    lab.link_up = true;
    lab.run(Duration::from_secs(30));
    let ((a_in2, a_out2), (b_in2, b_out2)) = lab.spis();
    assert!(a_in2 != 0 && (a_in2, a_out2) != (a_in, a_out), "a new pair: {:?}", lab.a.fp.dump().sas);
    assert_eq!((a_out2, a_in2), (b_in2, b_out2));
    let vpn = lab.get(true, "get vpn v");
    assert!(vpn.contains(&format!("{PID_A} UP ")) && !vpn.contains("(routes withdrawn)"), "{vpn}");
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "UP");
    assert_eq!(tunnel_route(&lab.a.fp), Some(NextHopSpec::Tunnel { tunnel: 1 }), "restored");
    assert!(lab.ping());

    // Child rekey by time (lifetime 120 s): a new pair on both sides
    // before the old one expires; traffic keeps flowing.
    let ike_sas_before = lab.get(true, "get ike cookies");
    lab.run(Duration::from_secs(120));
    let ((a_in3, a_out3), (b_in3, b_out3)) = lab.spis();
    assert!(a_in3 != a_in2 && a_out3 != a_out2, "rekeyed: {:?}", lab.a.fp.dump().sas);
    assert_eq!((a_out3, a_in3), (b_in3, b_out3));
    assert!(lab.ping());
    assert!(lab.a.log.iter().any(|l| l.contains("rekey")), "{:?}", lab.a.log);

    // Phase-1 rekey by time (600 s): a new ISAKMP SA; children go on.
    lab.run(Duration::from_secs(600));
    let ike_sas_after = lab.get(true, "get ike cookies");
    assert_ne!(ike_sas_before, ike_sas_after, "a new ISAKMP SA");
    assert!(lab.ping());
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "UP");

    // A restarts: a new core from what it persisted (controld.json and
    // ike.json) adopts what its fastpathd holds and installs nothing.
    // (Between rekeys: a superseded inbound SA lives REKEY_GRACE after
    // its successor, and a restart within it drops it.)
    for _ in 0..200 {
        if lab.a.fp.sas.len() == 2 {
            break;
        }
        lab.run(Duration::from_secs(1));
    }
    assert_eq!(lab.a.fp.sas.len(), 2, "one pair, nothing superseded");
    let held: Vec<u64> = lab.a.fp.sas.keys().copied().collect();
    let state = lab.a.saved_state();
    assert!(lab.a.state_appends > 0, "A appended to controld.journal");
    let file = lab.a.ike_store.load();
    assert!(matches!(file, Loaded::State(_)), "A saved its IKE state: {file:?}");
    assert!(lab.a.ike_store.0.borrow().appends > 0, "A appended to its journal");
    lab.a.fp.take_log();
    let ctl = controller(&config_a(), state);
    let store = Box::new(lab.a.ike_store.clone());
    lab.a.core = Core::new(ctl, file, random(3), lab.clock(), store);
    lab.a.core.handle_connected(lab.now);
    Lab::outputs(&mut lab.a, true, &mut lab.wire, lab.now);
    let sync = lab.a.log.iter().rev().find(|l| l.starts_with("fastpathd synchronised")).cloned();
    assert_eq!(
        sync.as_deref(),
        Some(
            format!(
                "fastpathd synchronised: 0 request(s), {} SA(s) adopted, 0 installed, 0 removed",
                held.len()
            )
            .as_str()
        )
    );
    assert_eq!(lab.a.fp.take_log(), Vec::<String>::new(), "nothing reinstalled");
    assert_eq!(lab.a.fp.sas.keys().copied().collect::<Vec<_>>(), held);
    lab.run(Duration::from_secs(3));
    assert!(lab.ping());
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "UP");
}

#[test]
fn idletime_deletes_a_quiet_pair_with_the_peer_and_traffic_negotiates_it_again() {
    // A: idletime 2 (minutes), no VPN monitor (its probes are traffic).
    let quiet: String = config_a()
        .replace("idletime 0", "idletime 2")
        .lines()
        .filter(|l| !l.contains(" monitor ") && !l.contains("withdraw-routes"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut lab = Lab::with(&quiet, &config_b());
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "READY", "never negotiated");
    assert!(!lab.ping(), "the first packet waits for IKE");
    lab.run(Duration::from_millis(500));
    assert!(lab.ping());
    // Traffic every 50 s for 200 s (child rekeys at most 120 s apart
    // included): the pair stays.
    for _ in 0..4 {
        lab.run(Duration::from_secs(50));
        assert!(lab.ping());
    }
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "UP");
    assert!(!lab.a.fp.sas.is_empty());
    // Quiet for 119 s: still there; at 2 minutes (plus the polling
    // interval) A deletes it, and tells B (Delete): both hold nothing.
    lab.run(Duration::from_secs(119));
    assert!(!lab.a.fp.sas.is_empty(), "not idle yet");
    lab.run(Duration::from_secs(3));
    assert_eq!((lab.a.fp.sas.len(), lab.b.fp.sas.len()), (0, 0), "deleted on both sides");
    // Idle is not lost: READY everywhere, not DOWN.
    let vpn = lab.get(true, "get vpn v");
    assert!(vpn.contains(&format!("{PID_A} READY ")), "{vpn}");
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "READY");
    assert!(lab.get(true, "get sa id 5").contains(&format!("proxy-id {PID_A}: READY")));
    let events = lab.get(true, "get event");
    assert!(
        events.contains(&format!(
            "vpn v proxy-id {PID_A}: no traffic for 2 minute(s) (idletime): SA pair deleted"
        )),
        "{events}"
    );
    assert!(events.contains(&format!("vpn v proxy-id {PID_A}: READY (was UP)")), "{events}");
    // Traffic negotiates it again, on demand.
    assert!(!lab.ping(), "waits for IKE again");
    lab.run(Duration::from_millis(500));
    assert!(lab.ping());
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "UP");
}

/// controld compares everything with fastpathd (its whole dump) only
/// when something says they may differ: a reading that says another
/// client or fastpathd itself changed what it holds; otherwise once a
/// minute, as a safety net, not every 2 s (O(SAs) each time).
#[test]
fn fastpathd_is_compared_whole_only_when_a_reading_says_it_changed() {
    let mut lab = Lab::new();
    assert!(!lab.ping(), "the first packet waits for IKE");
    lab.run(Duration::from_millis(500));
    assert!(lab.ping());
    let dumps = lab.a.fp.dumps;
    lab.run(Duration::from_secs(30));
    assert_eq!(lab.a.fp.dumps, dumps, "no comparison while nothing says they differ");
    // Another client removes A's outbound SA: the next reading says so,
    // and the comparison that follows puts it back.
    let out = lab.a.fp.sa_for(1, PID_A, Direction::Outbound).unwrap();
    lab.a.fp.sas.remove(&out);
    lab.a.fp.changed_by_others = true;
    assert!(!lab.ping());
    lab.run(Duration::from_millis(1500));
    assert_eq!(lab.a.fp.dumps, dumps + 1);
    assert!(lab.a.fp.sas.contains_key(&out), "re-installed");
    assert!(lab.ping());
    // Nothing says so, but a minute passed: the safety net.
    lab.run(Duration::from_secs(61));
    assert_eq!(lab.a.fp.dumps, dumps + 2);
}

#[test]
fn get_ike_cookies_shows_the_negotiated_isakmp_lifetime() {
    // B's phase 1 lives 300 s, A's 600 s: the SA lives the shorter on
    // both sides, and `get ike cookies` says so, not A's configured 600.
    let short_b = config_b().replace("sha-1 second 600", "sha-1 second 300");
    let mut lab = Lab::with(&config_a(), &short_b);
    assert!(!lab.ping(), "the first packet waits for IKE");
    lab.run(Duration::from_millis(500));
    assert!(lab.ping());
    for a in [true, false] {
        let v: serde_json::Value = serde_json::from_str(&lab.get(a, "get ike cookies --json")).unwrap();
        let sa = &v["sas"][0];
        assert_eq!(sa["state"], "established", "{v}");
        assert_eq!(sa["lifetime_secs"], 300, "side A {a}: {v}");
        assert!(sa["remaining_secs"].as_u64().is_some_and(|r| (299..=300).contains(&r)), "side A {a}: {v}");
    }
}

/// fastpathd repeats an acquire every 500 ms while its proxy-ID waits.
/// The first is logged (fastpathd's event and IKE's answer); the repeats
/// are summed up in IKE's summary line, not logged one by one.
#[test]
fn repeated_acquires_are_summed_up_in_the_log() {
    let mut lab = Lab::new();
    lab.link_up = false;
    assert!(!lab.ping(), "the first packet waits for IKE");
    let acquire = lab.a.fp.acquired[0].clone();
    for _ in 0..5 {
        lab.a.fp.events.push(FastPathEvent::Acquire {
            vpn: acquire.0,
            tunnel: 1,
            proxy_id: acquire.1.clone(),
            src: "10.1.1.10".into(),
            dst: "10.2.1.10".into(),
            protocol: ICMP,
        });
    }
    lab.settle();
    lab.run(Duration::from_secs(1));
    let acquires: Vec<&String> = lab.a.log.iter().filter(|l| l.starts_with("acquire:")).collect();
    assert_eq!(acquires.len(), 2, "{acquires:?}");
    assert!(acquires[0].ends_with("(no SA yet)"), "fastpathd's event: {acquires:?}");
    assert!(
        acquires[1].ends_with(&format!("proxy-id {PID_A}: negotiating (Main Mode, then Quick Mode)")),
        "{acquires:?}"
    );
    let summary: Vec<&String> = lab.a.log.iter().filter(|l| l.contains("repeated acquire")).collect();
    assert_eq!(summary, ["IKE: 5 repeated acquire(s) for proxy-IDs already negotiating"], "{:?}", lab.a.log);
}

/// The requests held, in words.
fn held(g: &Gateway) -> Vec<String> {
    g.held.iter().map(crate::core::controller::describe).collect()
}

/// A's installs wait for fastpathd's replies while time passes and IKE
/// datagrams arrive: sent is not installed (the tunnel stays READY, the
/// peer has not had QM3, nothing is sent twice); the replies, when they
/// come, install the pair and let QM3 go, and the tunnel comes UP.
#[test]
fn installs_answered_after_later_timers_and_datagrams() {
    let mut lab = Lab::new();
    lab.a.hold_on_add = true;
    assert!(!lab.ping(), "the first packet waits for IKE");
    let held_adds = held(&lab.a);
    assert_eq!(held_adds.len(), 2, "{held_adds:?}");
    assert!(held_adds.iter().all(|r| r.starts_with("add-sa ")), "{held_adds:?}");
    assert_eq!(lab.a.core.fastpath_outstanding(), 2);
    // A's fastpathd holds nothing yet, QM3 waits for A's inbound SA, and
    // the pair is not counted as installed.
    assert!(lab.a.fp.sas.is_empty());
    let b_inbound_only = |lab: &Lab| {
        lab.b.fp.sas.values().map(|s| s.spec.direction).collect::<Vec<_>>() == [Direction::Inbound]
    };
    assert!(b_inbound_only(&lab), "B's inbound SA went in before QM2, its outbound waits for QM3");
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "READY");
    // Time passes (B retransmits QM2: datagrams arrive at A), A's turns
    // run: nothing more is asked of fastpathd, nothing is sent twice.
    let to_a = lab.to_a;
    lab.run(Duration::from_secs(12));
    assert!(lab.to_a > to_a, "B's retransmissions reached A meanwhile");
    assert_eq!(held(&lab.a), held_adds, "the same two installs, once");
    assert!(b_inbound_only(&lab), "no QM3 before A's inbound SA is in");
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "READY");
    // The replies arrive: installed, QM3 leaves, B installs, traffic flows.
    let now = lab.now;
    lab.a.release(now);
    lab.settle();
    assert_eq!((lab.a.fp.sas.len(), lab.b.fp.sas.len()), (2, 2));
    assert!(lab.ping());
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "UP");
    let installs: Vec<&String> = lab.a.log.iter().filter(|l| l.starts_with("IKE: install SAs")).collect();
    assert_eq!(installs.len(), 1, "{installs:?}");
    assert!(installs[0].ends_with(": 2 request(s), 2 SA(s) installed, 0 removed"), "{installs:?}");
}

/// The connection drops with A's installs outstanding: they fail (never
/// reported up), the core drops the connection once, and the next
/// connection re-installs what IKE negotiated from a dump, as after any
/// loss.
#[test]
fn a_connection_lost_with_installs_outstanding_resynchronises() {
    let mut lab = Lab::new();
    lab.a.hold_on_add = true;
    assert!(!lab.ping());
    assert_eq!(lab.a.core.fastpath_outstanding(), 2);
    // The shell sees the connection end.
    lab.a.may_lose = true;
    lab.a.held.clear();
    let now = lab.now;
    lab.a.core.handle_fastpath_reply(now, Err(FastPathError::Lost("end of file".into())));
    lab.a.hold = false;
    lab.a.hold_on_add = false;
    lab.settle();
    assert_eq!(lab.a.losses, 1);
    assert!(!lab.a.core.is_connected());
    assert_eq!(lab.a.core.fastpath_outstanding(), 0);
    let lost: Vec<&String> = lab.a.log.iter().filter(|l| l.contains("end of file")).collect();
    assert_eq!(lost.len(), 1, "{:?}", lab.a.log);
    assert!(lost[0].starts_with("IKE: install SAs ") && lost[0].ends_with(": reconnecting"), "{lost:?}");
    assert!(lab.a.fp.sas.is_empty());
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "READY", "never reported up");
    // The turns go on without fastpathd (no request while disconnected).
    lab.run(Duration::from_secs(2));
    assert!(lab.a.held.is_empty() && lab.a.core.fastpath_outstanding() == 0);
    // Reconnected: the dump shows nothing, the negotiated pair goes in.
    let now = lab.now;
    lab.a.core.handle_connected(now);
    Lab::outputs(&mut lab.a, true, &mut lab.wire, now);
    let sync = lab.a.log.iter().rev().find(|l| l.starts_with("fastpathd synchronised")).cloned();
    assert!(
        sync.as_deref().is_some_and(|l| l.ends_with("0 SA(s) adopted, 2 installed, 0 removed")),
        "{sync:?}"
    );
    lab.settle();
    assert!(lab.ping());
    assert_eq!(tunnel_word(&lab.get(true, "get interface")), "UP");
}

/// A configuration change is answered when fastpathd has answered: by
/// token, after a `get` that needed nothing from fastpathd was answered
/// at once; a second change waits for the first, and both answers come
/// in order.
#[test]
fn operator_changes_are_answered_late_by_token() {
    let mut lab = Lab::new();
    let now = lab.now;
    lab.a.hold = true;
    let set1 = "set vpn v proxy-id local-ip 10.1.9.0/24 remote-ip 10.2.9.0/24 any";
    let set2 = "set vpn v proxy-id local-ip 10.1.8.0/24 remote-ip 10.2.8.0/24 any";
    let Answer::Later(t1) = lab.a.core.handle_command(now, set1) else { panic!("{set1}: answered at once") };
    lab.a.pump(now);
    assert_eq!(held(&lab.a), ["Dump"], "the change starts with a dump");
    let Answer::Now(get) = lab.a.core.handle_command(now, "get vpn v") else { panic!("get waits") };
    assert_eq!(get.result, Ok(()));
    let Answer::Later(t2) = lab.a.core.handle_command(now, set2) else { panic!("{set2}: answered at once") };
    assert_ne!(t1, t2);
    lab.a.pump(now);
    assert_eq!(held(&lab.a), ["Dump"], "the second change waits for the first");
    assert!(lab.a.replies.is_empty());
    lab.a.release(now);
    let answers: Vec<(Token, Result<(), String>, Vec<String>)> =
        lab.a.replies.drain(..).map(|(t, r)| (t, r.result, r.output)).collect();
    assert_eq!(
        answers,
        [
            (t1, Ok(()), vec!["fastpathd: 1 request(s): 0 SA(s) added, 0 removed, 0 unchanged".to_owned()]),
            (t2, Ok(()), vec!["fastpathd: 1 request(s): 0 SA(s) added, 0 removed, 0 unchanged".to_owned()]),
        ]
    );
    let (_, ids) = lab.a.fp.vpns.values().next().unwrap();
    assert!(
        ids.iter().any(|p| p.contains("10.1.9.0/24")) && ids.iter().any(|p| p.contains("10.1.8.0/24")),
        "{ids:?}"
    );
    Lab::outputs(&mut lab.a, true, &mut lab.wire, now);
    let log: Vec<&String> =
        lab.a.log.iter().filter(|l| l.starts_with("operator: set vpn v proxy-id")).collect();
    assert_eq!(log.len(), 2, "{log:?}");
}
