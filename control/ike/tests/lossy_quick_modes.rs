//! Thousands of Quick Modes between two esprit endpoints over a network
//! that loses datagrams, with each endpoint a single-threaded server
//! (one datagram at a time, a bounded receive queue that drops what does
//! not fit, as a UDP socket's buffer does). Time is simulated; loss and
//! delays come from a seeded generator, so a failure replays exactly.
//!
//! A plays controld: the generator's traffic asks for every proxy-ID not
//! up every 500 ms ([`Peer::initiate_child`]); a proxy-ID whose Quick Mode
//! failed is asked for again by the next packet, one still waiting or
//! running is not (what controld keeps in its negotiating map).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use esprit_ike::{ChildSa, Event, Peer, PeerConfig, Reason, Transmit};
use esprit_policy::ProxyId;
use esprit_testrng::TestRng;

mod common;
use common::FixedRng;

const A: &str = "198.51.100.1:500";
const B: &str = "203.0.113.1:500";

/// The k-th proxy-ID as bench-scale.sh configures it: 10.1.1.10/32 to
/// 10.2.64.1 + k.
fn proxy_ids(n: u32) -> (Vec<ProxyId>, Vec<ProxyId>) {
    let base = u32::from(std::net::Ipv4Addr::new(10, 2, 64, 1));
    let mut a = Vec::new();
    let mut b = Vec::new();
    for k in 0..n {
        let host = std::net::Ipv4Addr::from(base + k);
        a.push(format!("local-ip 10.1.1.10/32 remote-ip {host}/32 ANY").parse().unwrap());
        b.push(format!("local-ip {host}/32 remote-ip 10.1.1.10/32 ANY").parse().unwrap());
    }
    (a, b)
}

/// The network and the two servers' timing.
#[derive(Clone, Copy)]
struct Net {
    /// Datagrams lost in the network, per mille.
    loss_per_mille: u64,
    /// One-way delay: `delay` plus up to `jitter` (so datagrams reorder).
    delay: Duration,
    jitter: Duration,
    /// Time an endpoint spends on one datagram.
    service: Duration,
    /// Datagrams an endpoint's receive queue holds; more are dropped.
    queue: usize,
    /// From when to when (since the start) every datagram B sends is
    /// lost.
    blackout: Option<(Duration, Duration)>,
}

struct Side {
    peer: Peer<FixedRng>,
    /// When the datagram now being handled is done.
    free_at: Instant,
    /// Datagrams accepted into the receive queue, not yet handled.
    backlog: usize,
}

/// What happened to A's proxy-IDs, and what B saw.
#[derive(Default)]
struct Tally {
    /// A's ChildSaUp, per proxy-ID.
    up_a: BTreeMap<ProxyId, Vec<ChildSa>>,
    /// B's ChildSaUp (as responder), by B's inbound SPI.
    up_b: BTreeMap<u32, ChildSa>,
    /// B's child SAs gone (its QM3 never came), by B's inbound SPI.
    down_b: BTreeSet<u32>,
    /// A's failed Quick Modes, by reason.
    failed_a: BTreeMap<String, u32>,
    /// Datagrams dropped: in the network, by a full receive queue.
    lost: u64,
    overflow: u64,
    /// The longest any initiate_child waited for its ChildSaUp or
    /// ChildSaFailed.
    longest: Duration,
}

enum Due {
    /// A datagram reaches a side (`true`: B).
    Arrive(bool, Transmit),
    /// A side handles a datagram from its queue.
    Handle(bool, Transmit),
}

struct Sim {
    net: Net,
    rng: TestRng,
    a: Side,
    b: Side,
    /// Scheduled deliveries and handlings, by time then order.
    due: BTreeMap<(Instant, u64), Due>,
    seq: u64,
    tally: Tally,
    start: Instant,
    /// A's proxy-IDs negotiating, with when they were asked for.
    negotiating: BTreeMap<ProxyId, Instant>,
}

impl Sim {
    fn new(n: u32, net: Net, seed: u64) -> (Sim, Vec<ProxyId>) {
        let a_addr: SocketAddr = A.parse().unwrap();
        let b_addr: SocketAddr = B.parse().unwrap();
        let (pa, pb) = proxy_ids(n);
        let mut ca = PeerConfig::new("gw-b", a_addr, b_addr, b"lossy-psk-0123456789");
        let mut cb = PeerConfig::new("gw-a", b_addr, a_addr, b"lossy-psk-0123456789");
        ca.proxy_ids = pa.clone();
        cb.proxy_ids = pb;
        let now = Instant::now();
        let side = move |cfg, seed, spi_base| Side {
            peer: Peer::new(cfg, FixedRng { bytes: TestRng::new(seed), spi_base, spis: 0 }),
            free_at: now,
            backlog: 0,
        };
        let sim = Sim {
            net,
            rng: TestRng::new(seed),
            a: side(ca, seed ^ 0x1111, 0xa100_0000),
            b: side(cb, seed ^ 0x2222, 0xb200_0000),
            due: BTreeMap::new(),
            seq: 0,
            tally: Tally::default(),
            start: now,
            negotiating: BTreeMap::new(),
        };
        (sim, pa)
    }

    fn side(&mut self, b: bool) -> &mut Side {
        if b {
            &mut self.b
        } else {
            &mut self.a
        }
    }

    fn schedule(&mut self, at: Instant, d: Due) {
        self.seq += 1;
        self.due.insert((at, self.seq), d);
    }

    /// What both sides want sent goes on the wire (or is lost).
    fn send(&mut self, now: Instant) {
        for from_b in [false, true] {
            while let Some(t) = self.side(from_b).peer.poll_transmit() {
                let dark = from_b
                    && self
                        .net
                        .blackout
                        .is_some_and(|(from, to)| (self.start + from..self.start + to).contains(&now));
                if self.rng.below(1000) < self.net.loss_per_mille || dark {
                    self.tally.lost += 1;
                    continue;
                }
                let jitter = self.rng.below(self.net.jitter.as_micros() as u64 + 1);
                let at = now + self.net.delay + Duration::from_micros(jitter);
                self.schedule(at, Due::Arrive(!from_b, t));
            }
        }
    }

    fn events(&mut self, now: Instant) {
        while let Some(e) = self.a.peer.poll_event() {
            match e {
                Event::ChildSaUp(c) => {
                    if let Some(t) = self.negotiating.remove(&c.proxy_id) {
                        self.tally.longest = self.tally.longest.max(now - t);
                    }
                    self.tally.up_a.entry(c.proxy_id).or_default().push(*c);
                }
                Event::ChildSaFailed { proxy_id, reason } => {
                    if let Some(t) = self.negotiating.remove(&proxy_id) {
                        self.tally.longest = self.tally.longest.max(now - t);
                    }
                    *self.tally.failed_a.entry(format!("{reason:?}")).or_default() += 1;
                }
                Event::IkeSaUp { .. } | Event::IkeSaDown { .. } => {}
                other => panic!("A: unexpected {other:?}"),
            }
        }
        while let Some(e) = self.b.peer.poll_event() {
            match e {
                Event::ChildSaUp(c) => {
                    self.tally.up_b.insert(c.spi_in, *c);
                }
                Event::ChildSaDown { spi_in, reason, .. } => {
                    assert_eq!(reason, Reason::Timeout);
                    self.tally.down_b.insert(spi_in);
                }
                Event::ChildSaInbound(_) | Event::IkeSaUp { .. } | Event::Notify { .. } => {}
                other => panic!("B: unexpected {other:?}"),
            }
        }
    }

    /// Runs until every proxy-ID is up on A or `limit` passes (the
    /// generator asks for what is not up every 500 ms), then as long again
    /// as a Quick Mode may take, so that B's exchanges finish or time out
    /// too. Returns when the last proxy-ID came up on A.
    fn run(&mut self, all: &[ProxyId], limit: Duration, settle: Duration) -> Duration {
        let start = self.start;
        let mut now = start;
        let mut next_acquire = start;
        let mut all_up: Option<Instant> = None;
        loop {
            if all_up.is_none() && (self.tally.up_a.len() == all.len() || now - start > limit) {
                all_up = Some(now);
            }
            if let Some(t) = all_up.filter(|t| now - *t > settle) {
                return t - start;
            }
            if next_acquire <= now {
                for p in all {
                    if !self.tally.up_a.contains_key(p) && !self.negotiating.contains_key(p) {
                        self.a.peer.initiate_child(now, *p).unwrap();
                        self.negotiating.insert(*p, now);
                    }
                }
                next_acquire = now + Duration::from_millis(500);
            }
            for b in [false, true] {
                if self.side(b).peer.poll_timeout().is_some_and(|t| t <= now) {
                    self.side(b).peer.handle_timeout(now);
                }
            }
            self.events(now);
            self.send(now);
            // The next thing due.
            let timers = [self.a.peer.poll_timeout(), self.b.peer.poll_timeout(), Some(next_acquire)];
            let mut next = timers.into_iter().flatten().min().unwrap();
            if let Some((&(t, s), _)) = self.due.iter().next() {
                if t <= next {
                    next = t;
                    let d = self.due.remove(&(t, s)).unwrap();
                    now = now.max(t);
                    self.step(now, d);
                    continue;
                }
            }
            now = now.max(next);
        }
    }

    fn step(&mut self, now: Instant, d: Due) {
        match d {
            Due::Arrive(to_b, t) => {
                let (service, queue) = (self.net.service, self.net.queue);
                let s = self.side(to_b);
                if s.backlog >= queue {
                    self.tally.overflow += 1;
                    return;
                }
                s.backlog += 1;
                let at = s.free_at.max(now) + service;
                s.free_at = at;
                self.schedule(at, Due::Handle(to_b, t));
            }
            Due::Handle(to_b, t) => {
                let s = self.side(to_b);
                s.backlog -= 1;
                let _ = s.peer.handle_datagram(now, t.remote, t.local, &t.bytes);
                self.events(now);
                self.send(now);
            }
        }
    }

    /// The invariants: every proxy-ID up on A exactly once, each of A's
    /// children up on B with the mirrored SPIs and keys, and none of them
    /// gone on B; no Quick Mode outlived its retransmissions.
    fn check(&self, all: &[ProxyId], bound: Duration) {
        let t = &self.tally;
        let twice: Vec<_> = t.up_a.iter().filter(|(_, v)| v.len() > 1).map(|(p, _)| p).collect();
        assert!(twice.is_empty(), "{} proxy-IDs negotiated twice, e.g. {:?}", twice.len(), twice.first());
        let missing = all.iter().filter(|p| !t.up_a.contains_key(p)).count();
        assert_eq!(missing, 0, "proxy-IDs never up on A (failed: {:?})", t.failed_a);
        let mut lost_on_b = 0;
        for c in t.up_a.values().flatten() {
            match t.up_b.get(&c.spi_out) {
                Some(y) if !t.down_b.contains(&c.spi_out) => {
                    assert_eq!(y.spi_out, c.spi_in);
                    assert_eq!(*y.keys_in.encryption, *c.keys_out.encryption);
                }
                _ => lost_on_b += 1,
            }
        }
        assert_eq!(
            lost_on_b,
            0,
            "children up on A but not (or no longer) on B; B timed out {}",
            t.down_b.len()
        );
        assert!(t.longest <= bound, "a Quick Mode ran {:?} (bound {bound:?})", t.longest);
    }
}

/// The retransmission schedule's whole length (2 s doubling, 5 tries:
/// the last try waits 64 s), plus time queued behind the window.
const QUICK_MODE_BOUND: Duration = Duration::from_secs(126 + 60);

/// Runs `n` proxy-IDs through [`Sim`], checks the invariants; returns
/// A's failed Quick Modes by reason.
fn lossy(
    n: u32,
    loss_per_mille: u64,
    blackout: Option<(Duration, Duration)>,
    seed: u64,
) -> BTreeMap<String, u32> {
    let net = Net {
        loss_per_mille,
        delay: Duration::from_micros(200),
        jitter: Duration::from_millis(2),
        service: Duration::from_micros(500),
        queue: 256,
        blackout,
    };
    let (mut sim, all) = Sim::new(n, net, seed);
    let took = sim.run(&all, Duration::from_secs(900), QUICK_MODE_BOUND);
    eprintln!(
        "{n} proxy-IDs, loss {loss_per_mille}/1000, blackout {blackout:?}: all up after {took:?}; lost {} overflow {}; A failed {:?}; B timed out {}; longest {:?}",
        sim.tally.lost,
        sim.tally.overflow,
        sim.tally.failed_a,
        sim.tally.down_b.len(),
        sim.tally.longest
    );
    sim.check(&all, QUICK_MODE_BOUND);
    sim.tally.failed_a
}

/// 1,000 proxy-IDs, 5 % of datagrams lost: every QM3 lost is repaired by
/// the responder's QM2 again (answered from A's finished Quick Modes, not
/// from a replay memory that 64 exchanges at once overrun).
#[test]
fn thousand_quick_modes_with_five_percent_loss() {
    assert!(lossy(1000, 50, None, 0x5eed_0001).is_empty());
}

/// 2,000 proxy-IDs, 15 % lost: QM1s again are answered by B's QM2 again.
#[test]
fn two_thousand_quick_modes_with_fifteen_percent_loss() {
    assert!(lossy(2000, 150, None, 0x5eed_0002).is_empty());
}

/// Nothing lost but everything B sends from 0.5 s to 150 s: the 64 Quick Modes
/// running time out and are reported, their slots go to the proxy-IDs
/// waiting, which time out in turn until B is heard again; then all come
/// up, once each. (Were A's QM3 lost too, for longer than B retransmits
/// QM2, B would time out children that A has up: IKEv1 without the
/// commit bit cannot tell, RFC 2409 §5.5.)
#[test]
fn quick_modes_time_out_and_the_queue_moves_on_after_a_blackout() {
    let blackout = (Duration::from_millis(500), Duration::from_secs(150));
    let failed = lossy(1000, 0, Some(blackout), 0x5eed_0003);
    // The window's worth running when B fell silent; those started in
    // their place heard B again before their last retransmission.
    assert_eq!(failed, BTreeMap::from([("Timeout".to_owned(), 64)]));
}

/// bench-scale.sh's N = 10,000 in memory, with 2 % lost and a receive
/// queue of 64 datagrams behind a server of 1.5 ms per datagram (so the
/// queue overflows too). 15 s in a debug build: run with `--ignored`.
#[test]
#[ignore]
fn ten_thousand_quick_modes_through_a_small_receive_queue() {
    let net = Net {
        loss_per_mille: 20,
        delay: Duration::from_micros(200),
        jitter: Duration::from_millis(2),
        service: Duration::from_micros(1500),
        queue: 64,
        blackout: None,
    };
    let (mut sim, all) = Sim::new(10_000, net, 0x5eed_0004);
    sim.run(&all, Duration::from_secs(900), QUICK_MODE_BOUND);
    assert!(sim.tally.overflow > 0, "the receive queue overflowed");
    sim.check(&all, QUICK_MODE_BOUND);
}
