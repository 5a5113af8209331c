//! Two IKEv2 [`Session`]s in memory (RFC 7296): the seed's four proxy-IDs
//! brought up on demand, each its own child (the first in IKE_AUTH, the
//! others by CREATE_CHILD_SA); lost and duplicated datagrams; DELETE both
//! ways; liveness checks with the peer gone; rekeys (§2.8), simultaneous
//! ones and crossing requests for one proxy-ID (§2.8.1, §2.8.2, §2.25);
//! INVALID_KE_PAYLOAD in CREATE_CHILD_SA (§1.3); strangers' datagrams.
//!
//! ```text
//! A (198.51.100.1, 10.1.x)                       B (203.0.113.1, 10.2.x)
//! HDR(0), SAi1, KEi, Ni, N(NAT_D*)  -->
//!                        <--  HDR(0), SAr1, KEr, Nr, N(NAT_D*)
//! HDR(1), SK{IDi, N(INITIAL_CONTACT), IDr, AUTH, SAi2, TSi, TSr}  -->
//!                        <--  HDR(1), SK{IDr, AUTH, SAr2, TSi, TSr}
//! HDR(2..4), SK{SA, Ni, TSi, TSr}  -->   (one at a time, §2.3)
//!                        <--  HDR(2..4), SK{SA, Nr, TSi, TSr}
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use esprit_ike::v2::alg::{EncrAlg, IntegAlg, PrfAlg};
use esprit_ike::v2::auth::{PskAuth, WireIdentity};
use esprit_ike::v2::child::ChildConfig;
use esprit_ike::v2::config::IkeSaProposal;
use esprit_ike::v2::dropped::Dropped;
use esprit_ike::v2::session::{Session, SessionConfig};
use esprit_ike::v2::wire::{Header, IdType};
use esprit_ike::{ChildSa, DhGroup, Event, Lifetime, Reason, Retransmit, Suite, Transmit};
use esprit_policy::ProxyId;
use esprit_testrng::TestRng;
use zeroize::Zeroizing;

mod common;
use common::FixedRng;

const A: &str = "198.51.100.1:500";
const B: &str = "203.0.113.1:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The seed's four proxy-IDs from A's side.
const SEED: [&str; 4] = [
    "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY",
    "local-ip 10.1.1.0/24 remote-ip 10.2.2.0/24 ANY",
    "local-ip 10.1.2.0/24 remote-ip 10.2.1.0/24 ANY",
    "local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 ANY",
];

fn seed_proxy_ids() -> Vec<ProxyId> {
    SEED.iter().map(|s| s.parse().unwrap()).collect()
}

/// The same proxy-ID from the peer's side.
fn mirror(p: &ProxyId) -> ProxyId {
    ProxyId { local: p.remote, remote: p.local, service: p.service }
}

fn config(me: &str, peer: &str, proxy_ids: Vec<ProxyId>, pfs: Option<DhGroup>) -> SessionConfig {
    let id = |s: &str| WireIdentity { kind: IdType::Fqdn, data: s.as_bytes().to_vec() };
    let (local, remote, lid, rid) =
        if me == A { (A, B, "a.example", "b.example") } else { (B, A, "b.example", "a.example") };
    let _ = peer;
    SessionConfig {
        name: lid.to_string(),
        local: addr(local),
        remote: addr(remote),
        proposals: vec![IkeSaProposal {
            encr: vec![EncrAlg::AesCbc256],
            prf: vec![PrfAlg::HmacSha256],
            integ: vec![IntegAlg::HmacSha256_128],
            dh: vec![DhGroup::Ecp256],
        }],
        auth: PskAuth { psk: Zeroizing::new(b"s3cret".to_vec()), local: id(lid), remote: Some(id(rid)) }
            .into(),
        child: ChildConfig {
            proxy_ids,
            pfs,
            pfs_also: vec![],
            lifetime: Lifetime { seconds: 1800, kilobytes: 0 },
            suites: vec![Suite::Aes128Gcm16],
            esn: false,
        },
        retransmit: Retransmit { initial: Duration::from_secs(1), tries: 3 },
        dpd: None,
        dpd_retries: None,
        fragment_size: Some(esprit_ike::v2::frag::FRAGMENT_SIZE_DEFAULT),
    }
}

fn rng(seed: u64, spi_base: u32) -> FixedRng {
    FixedRng { bytes: TestRng::new(seed), spi_base, spis: 0 }
}

fn session(cfg: SessionConfig, seed: u64, spi_base: u32) -> Session<FixedRng> {
    Session::new(cfg, rng(seed, spi_base)).unwrap()
}

/// What became of the datagrams on the wire.
#[derive(Clone, Copy, Default)]
struct Wire {
    /// Lost, per mille.
    loss: u64,
    /// Delivered twice, per mille.
    dup: u64,
    /// Every datagram to B lost (B is gone).
    b_gone: bool,
    /// B sits behind a NAT at this private address (A knows it by B's
    /// public one; the NAT keeps ports).
    b_private: Option<std::net::IpAddr>,
}

/// Two sessions, a clock and a seeded wire.
struct Pair {
    a: Session<FixedRng>,
    b: Session<FixedRng>,
    now: Instant,
    start: Instant,
    wire: Wire,
    dice: TestRng,
    ea: Vec<Event>,
    eb: Vec<Event>,
    /// Every datagram sent, as (from A, bytes).
    log: Vec<(bool, Vec<u8>)>,
}

impl Pair {
    fn new(a: SessionConfig, b: SessionConfig, seed: u64) -> Pair {
        let now = Instant::now();
        Pair {
            a: session(a, 31 + seed, 0xa000_0000),
            b: session(b, 0x7777 + seed, 0xb000_0000),
            now,
            start: now,
            wire: Wire::default(),
            dice: TestRng::new(seed),
            ea: Vec::new(),
            eb: Vec::new(),
            log: Vec::new(),
        }
    }

    fn seed() -> Pair {
        Pair::seeded(0)
    }

    /// The seed's proxy-IDs on both sides, the randomness from `seed`.
    fn seeded(seed: u64) -> Pair {
        let ids = seed_proxy_ids();
        Pair::new(config(A, B, ids.clone(), None), config(B, A, ids.iter().map(mirror).collect(), None), seed)
    }

    /// Moves datagrams until none is in flight; returns how many moved.
    fn deliver(&mut self) -> usize {
        let mut moved = 0;
        loop {
            let mut batch: Vec<(bool, Transmit)> = Vec::new();
            while let Some(t) = self.a.poll_transmit() {
                batch.push((true, t));
            }
            while let Some(t) = self.b.poll_transmit() {
                batch.push((false, t));
            }
            self.collect();
            if batch.is_empty() {
                return moved;
            }
            for (from_a, t) in batch {
                self.log.push((from_a, t.bytes.clone()));
                moved += 1;
                if (from_a && self.wire.b_gone) || self.dice.below(1000) < self.wire.loss {
                    continue;
                }
                let copies = if self.dice.below(1000) < self.wire.dup { 2 } else { 1 };
                let (mut local, mut remote) = (t.local, t.remote);
                if let Some(private) = self.wire.b_private {
                    // The NAT in front of B: B's address in, B's out.
                    if from_a {
                        remote.set_ip(private);
                    } else {
                        local.set_ip(addr(B).ip());
                    }
                }
                for _ in 0..copies {
                    let to = if from_a { &mut self.b } else { &mut self.a };
                    let _ = to.handle_datagram(self.now, remote, local, &t.bytes);
                }
            }
        }
    }

    /// Takes the datagrams both sides have sent, undelivered: (A's, B's).
    fn hold(&mut self) -> (Vec<Transmit>, Vec<Transmit>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        while let Some(t) = self.a.poll_transmit() {
            a.push(t);
        }
        while let Some(t) = self.b.poll_transmit() {
            b.push(t);
        }
        self.collect();
        (a, b)
    }

    /// Delivers one datagram held from A (`from_a`) or B.
    fn give(&mut self, from_a: bool, t: &Transmit) {
        self.log.push((from_a, t.bytes.clone()));
        let to = if from_a { &mut self.b } else { &mut self.a };
        let _ = to.handle_datagram(self.now, t.remote, t.local, &t.bytes);
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(e) = self.a.poll_event() {
            self.ea.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.eb.push(e);
        }
    }

    /// Delivers, then moves the clock to the next deadline and runs the
    /// timers, until `horizon` from the start.
    fn run_until(&mut self, horizon: Duration) {
        loop {
            self.deliver();
            let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= self.start + horizon => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => {
                    self.deliver();
                    return;
                }
            }
        }
    }

    fn run(&mut self) {
        self.run_until(Duration::from_secs(120));
    }
}

fn ups(events: &[Event]) -> Vec<&ChildSa> {
    events.iter().filter_map(|e| if let Event::ChildSaUp(c) = e { Some(&**c) } else { None }).collect()
}

fn downs(events: &[Event]) -> Vec<(ProxyId, u32, u32, Reason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaDown { proxy_id, spi_in, spi_out, reason } => {
                Some((*proxy_id, *spi_in, *spi_out, reason.clone()))
            }
            _ => None,
        })
        .collect()
}

fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

/// The pairs agree: B's children are A's, SPIs crossed, proxy-IDs mirrored.
fn assert_same_children(p: &Pair) {
    let mut a: Vec<_> = p.a.children().into_iter().map(|(x, i, o)| (mirror(&x), o, i)).collect();
    let mut b = p.b.children();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

/// Brings the seed's four proxy-IDs up on demand, one after the other.
fn bring_up(p: &mut Pair) {
    for id in seed_proxy_ids() {
        p.a.initiate_child(p.now, id).unwrap();
        p.run_until(p.now - p.start + Duration::from_secs(60));
    }
}

/// B behind a NAT (RFC 7296 §2.23): both ends see it in IKE_SA_INIT's
/// NAT detection, IKE_AUTH and every later message go between the ports
/// 4500, and each child is ESP in UDP on them, on both sides; a rekey
/// keeps it so.
#[test]
fn behind_a_nat_ike_floats_to_4500_and_esp_goes_in_udp() {
    let ids = seed_proxy_ids();
    let private: std::net::IpAddr = "192.0.2.2".parse().unwrap();
    let mut cb = config(B, A, ids.iter().map(mirror).collect(), None);
    cb.local.set_ip(private);
    let mut p = Pair::new(config(A, B, ids.clone(), None), cb, 0);
    p.wire.b_private = Some(private);
    bring_up(&mut p);
    assert_eq!(p.a.children().len(), 4);
    assert_same_children(&p);
    for (side, events) in [("A", &p.ea), ("B", &p.eb)] {
        assert!(
            events.iter().any(|e| matches!(e, Event::IkeSaUp { nat: true, local, remote, .. } if local.port() == 4500 && remote.port() == 4500)),
            "{side}: {events:?}"
        );
        for c in ups(events) {
            let e = c.encap.unwrap_or_else(|| panic!("{side}: child without ESP in UDP"));
            assert_eq!(
                (e.local_port, e.remote_port, c.local.port(), c.remote.port()),
                (4500, 4500, 4500, 4500),
                "{side}"
            );
        }
    }
    let b_local = ups(&p.eb)[0].local;
    assert_eq!((b_local.ip(), ups(&p.ea)[0].remote.ip()), (private, addr(B).ip()), "each side's own view");
    // Only IKE_SA_INIT went between the ports 500.
    let on_500 = p
        .log
        .iter()
        .filter(|(_, b)| {
            Header::parse(b).is_ok_and(|h| h.exchange == esprit_ike::v2::wire::ExchangeType::IkeSaInit)
        })
        .count();
    assert_eq!(on_500, 2);
    // B, behind the NAT, keeps its mapping open: a NAT-keepalive every
    // 20 s to A's 4500; A, not behind one, sends none.
    assert_eq!((p.a.keepalive_every(), p.b.keepalive_every()), (None, Some(Duration::from_secs(20))));
    let before = p.log.len();
    p.run_until(p.now - p.start + Duration::from_secs(45));
    let keepalives: Vec<bool> =
        p.log[before..].iter().filter(|(_, b)| b[..] == [0xff]).map(|(a, _)| *a).collect();
    assert_eq!(keepalives, [false, false], "two from B in 45 s");
    // A rekey stays in UDP.
    let (pid, spi_in, _) = p.a.children()[0];
    p.a.rekey_child(p.now, spi_in).unwrap();
    p.run_until(p.now - p.start + Duration::from_secs(60));
    let last = ups(&p.ea).into_iter().rev().find(|c| c.proxy_id == pid).unwrap();
    assert!(last.spi_in != spi_in && last.encap.is_some(), "{last:?}");
}

#[test]
fn seed_four_proxy_ids_each_on_its_own_child() {
    let mut p = Pair::seed();
    let ids = seed_proxy_ids();
    // Asked for again and again while waiting: once on the wire.
    p.a.initiate_child(p.now, ids[0]).unwrap();
    p.a.initiate_child(p.now, ids[0]).unwrap();
    assert!(p.a.is_negotiating(&ids[0]));
    p.run();
    for id in &ids[1..] {
        p.a.initiate_child(p.now, *id).unwrap();
        p.a.initiate_child(p.now, *id).unwrap();
        p.run();
    }
    // Asked for once more when up: nothing.
    p.a.initiate_child(p.now, ids[2]).unwrap();
    assert_eq!(p.deliver(), 0);

    assert!(p.a.is_established() && p.b.is_established());
    assert_eq!(p.a.ike_spis(), p.b.ike_spis());
    assert!(
        matches!(&p.ea[0], Event::IkeSaUp { initiator: true, proposal, .. } if proposal == "aes256-sha256-prfsha256-ecp256"),
        "{:?}",
        p.ea[0]
    );
    assert!(matches!(p.eb[0], Event::IkeSaUp { initiator: false, .. }), "{:?}", p.eb[0]);
    let (ua, ub) = (ups(&p.ea), ups(&p.eb));
    assert_eq!(ua.len(), 4);
    assert_eq!(ub.len(), 4);
    // §2.2: IKE_AUTH is message 1, then 2, 3, 4.
    for (n, (ca, cb)) in ua.iter().zip(&ub).enumerate() {
        assert_eq!(ca.proxy_id, ids[n]);
        assert_eq!(cb.proxy_id, mirror(&ids[n]));
        assert_eq!((ca.spi_in, ca.spi_out), (cb.spi_out, cb.spi_in));
        assert_eq!(*ca.keys_out.encryption, *cb.keys_in.encryption);
        assert_eq!(*ca.keys_in.encryption, *cb.keys_out.encryption);
        assert_eq!((ca.message_id, cb.message_id), (n as u32 + 1, n as u32 + 1));
        assert!(ca.initiator && !cb.initiator);
    }
    // Every SPI is its own: four pairs, eight SPIs.
    let mut spis: Vec<u32> = ua.iter().flat_map(|c| [c.spi_in, c.spi_out]).collect();
    spis.sort_unstable();
    spis.dedup();
    assert_eq!(spis.len(), 8);
    assert_same_children(&p);
    // Six request/response pairs: IKE_SA_INIT, IKE_AUTH, three CREATE_CHILD_SA.
    assert_eq!(p.log.len(), 10);
    assert_eq!(p.a.dropped().total() + p.b.dropped().total(), 0);
}

/// Lost and duplicated datagrams, several seeds: every child comes up
/// exactly once on each side, on the same SPI pair.
#[test]
fn lost_and_duplicated_datagrams_still_bring_every_child_up_once() {
    let ids = seed_proxy_ids();
    let (mut retransmitted, mut restarted) = (0, 0);
    for seed in 1..=12 {
        // Six retransmissions: an exchange fails only if seven tries in a
        // row lose the request or the response.
        let (mut a, mut b) =
            (config(A, B, ids.clone(), None), config(B, A, ids.iter().map(mirror).collect(), None));
        a.retransmit.tries = 6;
        b.retransmit.tries = 6;
        let mut p = Pair::new(a, b, seed);
        p.wire = Wire { loss: 250, dup: 200, ..Wire::default() };
        for id in &ids {
            p.a.initiate_child(p.now, *id).unwrap();
        }
        p.run();
        // A child whose exchange ran out of tries is asked for again, as
        // the fast path's next packet would.
        for _ in 0..5 {
            for id in &ids {
                if !p.a.children().iter().any(|c| c.0 == *id) {
                    p.a.initiate_child(p.now, *id).unwrap();
                }
            }
            let h = p.now - p.start + Duration::from_secs(120);
            p.run_until(h);
        }
        assert!(p.a.is_established(), "seed {seed}: no IKE SA");
        let (ua, ub) = (ups(&p.ea), ups(&p.eb));
        let mut up: Vec<ProxyId> = ua.iter().map(|c| c.proxy_id).collect();
        up.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(up, want, "seed {seed}: each proxy-ID up exactly once on A");
        // B may have made an IKE SA whose IKE_AUTH response never reached
        // A (A gave up and started over with INITIAL_CONTACT, §2.4): then,
        // and only then, B saw a child come and go.
        let a_failed = count(&p.ea, |e| matches!(e, Event::IkeSaDown { reason: Reason::Timeout }));
        let b_replaced = count(&p.eb, |e| matches!(e, Event::IkeSaDown { reason: Reason::PeerRestarted }));
        assert!(
            b_replaced <= a_failed,
            "seed {seed}: {:?}",
            p.ea.iter().map(|e| format!("{e:?}").chars().take(60).collect::<String>()).collect::<Vec<_>>()
        );
        assert!(downs(&p.eb).iter().all(|d| d.3 == Reason::PeerRestarted), "seed {seed}");
        assert_eq!(ub.len() - downs(&p.eb).len(), 4, "seed {seed}: B");
        assert_eq!(downs(&p.ea).len(), 0, "seed {seed}");
        let mut live: Vec<ProxyId> = p.a.children().iter().map(|c| c.0).collect();
        live.sort();
        assert_eq!(live, want, "seed {seed}");
        restarted += b_replaced;
        assert_same_children(&p);
        // An IKE SA rekey over the same wire: the children stay.
        let before = p.a.children();
        p.a.rekey_ike(p.now).unwrap();
        let h = p.now - p.start + Duration::from_secs(120);
        p.run_until(h);
        assert_eq!(p.a.children(), before, "seed {seed}");
        assert_eq!(p.a.ike_spis(), p.b.ike_spis(), "seed {seed}");
        assert_same_children(&p);
        retransmitted += p.a.dropped().get(Dropped::RetransmitAnswered)
            + p.b.dropped().get(Dropped::RetransmitAnswered)
            + p.a.dropped().get(Dropped::UnexpectedResponse)
            + p.b.dropped().get(Dropped::UnexpectedResponse);
    }
    // The losses and copies did happen, and were answered from memory
    // or dropped as duplicates.
    assert!(retransmitted > 20, "{retransmitted}");
    assert!(restarted <= 2, "{restarted}");
}

#[test]
fn delete_child_both_ways_and_the_ike_sa() {
    let mut p = Pair::seed();
    bring_up(&mut p);
    let a0 = p.a.children();
    let (ea, eb) = (p.ea.len(), p.eb.len());
    // A deletes its first child; B answers with its own Delete for the
    // pair (§1.4.1); both report the same pair down.
    let (pa, ina, outa) = a0[0];
    p.a.delete_child(p.now, ina).unwrap();
    p.run();
    assert_eq!(downs(&p.ea[ea..]), [(pa, ina, outa, Reason::DeletedLocally)]);
    assert_eq!(downs(&p.eb[eb..]), [(mirror(&pa), outa, ina, Reason::DeletedByPeer)]);
    // B deletes one of its own.
    let (pb, inb, outb) = p.b.children()[1];
    let (ea, eb) = (p.ea.len(), p.eb.len());
    p.b.delete_child(p.now, inb).unwrap();
    p.run();
    assert_eq!(downs(&p.eb[eb..]), [(pb, inb, outb, Reason::DeletedLocally)]);
    assert_eq!(downs(&p.ea[ea..]), [(mirror(&pb), outb, inb, Reason::DeletedByPeer)]);
    assert_eq!(p.a.children().len(), 2);
    assert_same_children(&p);
    // An unknown SPI is refused in words, nothing sent.
    let e = p.a.delete_child(p.now, 0x1234).unwrap_err();
    assert_eq!(
        e.to_string(),
        "peer a.example: Informational: refused: no child SA with inbound SPI 00001234"
    );
    assert_eq!(p.deliver(), 0);
    // A deletes the IKE SA: every child goes with it, on both sides.
    let (ea, eb) = (p.ea.len(), p.eb.len());
    p.a.delete_ike(p.now).unwrap();
    p.run();
    assert_eq!(downs(&p.ea[ea..]).len(), 2);
    assert!(downs(&p.ea[ea..]).iter().all(|d| d.3 == Reason::DeletedLocally));
    assert_eq!(downs(&p.eb[eb..]).len(), 2);
    assert!(downs(&p.eb[eb..]).iter().all(|d| d.3 == Reason::DeletedByPeer));
    assert!(matches!(p.ea.last(), Some(Event::IkeSaDown { reason: Reason::DeletedLocally })));
    assert!(matches!(p.eb.last(), Some(Event::IkeSaDown { reason: Reason::DeletedByPeer })));
    assert!(!p.a.is_established() && !p.b.is_established());
    // On demand again: a new IKE SA, the first child in its IKE_AUTH.
    p.a.initiate_child(p.now, seed_proxy_ids()[3]).unwrap();
    p.run();
    assert!(p.a.is_established());
    assert_eq!(p.a.children().len(), 1);
    assert_same_children(&p);
}

/// The seed's children up, A checking liveness after 10 s of silence.
fn seed_up_with_liveness_checks() -> Pair {
    let ids = seed_proxy_ids();
    let mut a = config(A, B, ids.clone(), None);
    a.dpd = Some(Duration::from_secs(10));
    let mut p = Pair::new(a, config(B, A, ids.iter().map(mirror).collect(), None), 0);
    bring_up(&mut p);
    p
}

/// The liveness check (§2.4) with the peer gone: the request, its
/// retransmissions on the configured schedule, then the IKE SA and every
/// child down.
#[test]
fn liveness_check_with_the_peer_gone() {
    let mut p = seed_up_with_liveness_checks();
    // With the peer there, an empty INFORMATIONAL every 10 s, answered.
    let sent = p.log.len();
    let t0 = p.now;
    p.run_until(p.now - p.start + Duration::from_secs(35));
    assert_eq!(p.log.len() - sent, 6, "three checks, three answers");
    assert_eq!(p.a.children().len(), 4);
    assert!(p.now - t0 >= Duration::from_secs(30));
    // B gone: the check and its 3 retransmissions (1, 2, 4 s apart),
    // 8 s after the last, the IKE SA is dead.
    p.wire.b_gone = true;
    let (sent, ea) = (p.log.len(), p.ea.len());
    let t1 = p.now;
    p.run_until(p.now - p.start + Duration::from_secs(60));
    assert_eq!(p.log.len() - sent, 4);
    assert!(p.log[sent..].iter().all(|(from_a, _)| *from_a));
    // The same bytes each time (§2.1).
    assert!(p.log[sent..].windows(2).all(|w| w[0].1 == w[1].1));
    let ev = &p.ea[ea..];
    assert!(matches!(ev[0], Event::DpdTimeout), "{ev:?}");
    assert_eq!(downs(ev).len(), 4);
    assert!(downs(ev).iter().all(|d| d.3 == Reason::DpdTimeout));
    assert!(matches!(ev.last(), Some(Event::IkeSaDown { reason: Reason::DpdTimeout })));
    assert!(!p.a.is_established());
    // First check 10 s after the last answer; given up 1+2+4+8 s later.
    let _ = t1;
    assert_eq!(p.a.poll_timeout(), None);
}

/// `dpd-liveness interval 2 retry 3`: with the peer gone, the liveness
/// check is sent 3 times in all, 2 s apart, and 2 s after the last the
/// IKE SA is dead (8 s after the last answer), not after the whole
/// retransmission schedule.
#[test]
fn liveness_check_with_retries_declares_the_peer_dead_after_them() {
    let ids = seed_proxy_ids();
    let mut a = config(A, B, ids.clone(), None);
    a.dpd = Some(Duration::from_secs(2));
    a.dpd_retries = Some(3);
    a.retransmit = Retransmit { initial: Duration::from_secs(2), tries: 5 };
    let mut p = Pair::new(a, config(B, A, ids.iter().map(mirror).collect(), None), 0);
    p.a.initiate_child(p.now, ids[0]).unwrap();
    p.deliver();
    let t0 = p.now;
    p.wire.b_gone = true;
    let (sent, ea) = (p.log.len(), p.ea.len());
    p.run_until(p.now - p.start + Duration::from_secs(60));
    assert_eq!(p.log.len() - sent, 3);
    assert!(p.log[sent..].windows(2).all(|w| w[0].1 == w[1].1));
    let ev = &p.ea[ea..];
    assert!(matches!(ev[0], Event::DpdTimeout), "{ev:?}");
    assert!(!p.a.is_established());
    assert_eq!(p.now - t0, Duration::from_secs(8));
}

/// A stranger's datagrams (garbage, wrong SPIs, forged or replayed
/// messages, another address) change nothing and are counted.
#[test]
fn strangers_change_nothing_and_are_counted() {
    let mut p = Pair::seed();
    bring_up(&mut p);
    let (ea, eb, ca, cb) = (p.ea.len(), p.eb.len(), p.a.children(), p.b.children());
    let requests: Vec<Vec<u8>> = p
        .log
        .iter()
        .filter(|(from_a, m)| *from_a && !Header::parse(m).unwrap().is_response())
        .map(|(_, m)| m.clone())
        .collect();
    let responses: Vec<Vec<u8>> = p
        .log
        .iter()
        .filter(|(from_a, m)| !*from_a && Header::parse(m).unwrap().is_response())
        .map(|(_, m)| m.clone())
        .collect();
    let (a, b) = (addr(A), addr(B));
    let now = p.now;
    // Garbage.
    assert!(p.b.handle_datagram(now, b, a, &[0x55; 40]).is_err());
    assert!(p.b.handle_datagram(now, b, a, &[]).is_err());
    // Another address.
    let e = p.b.handle_datagram(now, b, addr("192.0.2.66:500"), &requests[3]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "peer b.example: Informational: datagram from 192.0.2.66:500, not from the configured peer"
    );
    // Wrong SPIs.
    let mut wrong = requests[3].clone();
    wrong[0] ^= 0xff;
    assert!(p.b.handle_datagram(now, b, a, &wrong).is_err());
    // The last request under the next message ID: the ICV, which
    // covers the header, fails.
    let mut forged = requests[4].clone();
    let id = Header::parse(&forged).unwrap().message_id;
    forged[20..24].copy_from_slice(&(id + 1).to_be_bytes());
    assert!(p.b.handle_datagram(now, b, a, &forged).is_err());
    // Replays of older requests (IKE_AUTH's is message 1, answered from
    // memory only while it is the last one).
    for r in &requests[1..4] {
        assert!(p.b.handle_datagram(now, b, a, r).is_err());
    }
    // The last request again: answered from memory, not processed.
    p.b.handle_datagram(now, b, a, &requests[4]).unwrap();
    let again = p.b.poll_transmit().unwrap();
    assert_eq!(again.bytes, *responses.last().unwrap());
    // Replayed responses to A.
    for r in &responses {
        assert!(p.a.handle_datagram(now, a, b, r).is_err());
    }
    // A new IKE_SA_INIT from the peer's address: a half-open SA at most.
    p.b.handle_datagram(now, b, a, &requests[0]).unwrap();
    assert_eq!(p.b.init_responder().half_open_len(), 1);
    while p.b.poll_transmit().is_some() {}
    // It is forgotten when its time is up (30 s), by B's own deadline.
    let due = p.b.poll_timeout().unwrap();
    assert_eq!(due, now + Duration::from_secs(30));
    p.b.handle_timeout(due);
    assert_eq!(p.b.init_responder().half_open_len(), 0);
    assert_eq!(p.b.poll_timeout(), None);

    let db = p.b.dropped();
    assert_eq!(
        [
            db.get(Dropped::Unreadable),
            db.get(Dropped::WrongPeer),
            db.get(Dropped::UnknownSpi),
            db.get(Dropped::Integrity),
            db.get(Dropped::ReplayedRequest),
            db.get(Dropped::RetransmitAnswered),
        ],
        [2, 1, 1, 1, 3, 1]
    );
    assert_eq!(
        p.a.dropped().get(Dropped::UnexpectedResponse)
            + p.a.dropped().get(Dropped::InitIgnored)
            + p.a.dropped().get(Dropped::AuthIgnored),
        responses.len() as u64
    );
    p.collect();
    assert_eq!((p.ea.len(), p.eb.len()), (ea, eb), "no event");
    assert_eq!((p.a.children(), p.b.children()), (ca, cb));
    assert_eq!(p.a.poll_transmit(), None);
    // And the IKE SA still works: a child deleted and made again.
    let spi = p.a.children()[0].1;
    p.a.delete_child(p.now, spi).unwrap();
    p.a.initiate_child(p.now, seed_proxy_ids()[0]).unwrap();
    p.run();
    assert_eq!(p.a.children().len(), 4);
    assert_same_children(&p);
}

/// A peer that restarted (a new Session with the same configuration)
/// says INITIAL_CONTACT in its first IKE_AUTH: B drops the old IKE SA and
/// its children (§2.4) and brings up the new one.
#[test]
fn initial_contact_replaces_what_the_peer_forgot() {
    let mut p = Pair::seed();
    bring_up(&mut p);
    let old = p.b.children();
    let ids = seed_proxy_ids();
    p.a = session(config(A, B, ids.clone(), None), 99, 0xa100_0000);
    let eb = p.eb.len();
    p.a.initiate_child(p.now, ids[1]).unwrap();
    p.run();
    let ev = &p.eb[eb..];
    let d = downs(ev);
    assert_eq!(d.len(), 4);
    assert!(d.iter().all(|x| x.3 == Reason::PeerRestarted));
    assert_eq!(d.iter().map(|x| (x.0, x.1, x.2)).collect::<Vec<_>>(), old);
    assert!(matches!(
        ev.iter().find(|e| matches!(e, Event::IkeSaDown { .. })),
        Some(Event::IkeSaDown { reason: Reason::PeerRestarted })
    ));
    assert_eq!(count(ev, |e| matches!(e, Event::IkeSaUp { .. })), 1);
    assert_eq!(p.b.children().len(), 1);
    assert_same_children(&p);
}

/// Index of the first event matching `f`.
fn position(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().position(f).unwrap()
}

/// §2.8: A rekeys a child; on both sides the new pair is up before the
/// old one goes, and the old goes as rekeyed.
#[test]
fn child_rekey_is_make_before_break() {
    let mut p = Pair::seed();
    bring_up(&mut p);
    for rekeyer_is_a in [true, false] {
        let (ea, eb) = (p.ea.len(), p.eb.len());
        let before = p.a.children();
        let (old_in, old_out) =
            if rekeyer_is_a { (before[1].1, before[1].2) } else { (before[1].2, before[1].1) };
        if rekeyer_is_a {
            p.a.rekey_child(p.now, old_in).unwrap();
        } else {
            p.b.rekey_child(p.now, old_in).unwrap();
        }
        p.run();
        let (mine, theirs) =
            if rekeyer_is_a { (&p.ea[ea..], &p.eb[eb..]) } else { (&p.eb[eb..], &p.ea[ea..]) };
        for (ev, (i, o)) in [(mine, (old_in, old_out)), (theirs, (old_out, old_in))] {
            let up = position(
                ev,
                |e| matches!(e, Event::ChildSaUp(c) if c.proxy_id.local == before[1].0.local || c.proxy_id.local == before[1].0.remote),
            );
            let down = position(
                ev,
                |e| matches!(e, Event::ChildSaDown { spi_in, spi_out, reason: Reason::Rekeyed, .. } if (*spi_in, *spi_out) == (i, o)),
            );
            assert!(up < down, "{ev:?}");
            assert_eq!(ups(ev).len(), 1);
            assert_eq!(downs(ev).len(), 1);
        }
        let after = p.a.children();
        assert_eq!(after.len(), 4);
        assert!(!after.iter().any(|c| c.1 == before[1].1 || c.2 == before[1].2));
        assert!(after.iter().any(|c| c.0 == before[1].0));
        assert_same_children(&p);
    }
}

/// §2.8.1: both ends rekey one child at once. Each answers the other's
/// request; the exchange holding the lowest of the four nonces made the
/// redundant child and its initiator deletes it; the other deletes the
/// old one. One child is left for the proxy-ID, the same on both sides.
#[test]
fn simultaneous_rekey_keeps_one_child() {
    let (mut a_redundant, mut b_redundant) = (0, 0);
    for seed in 0..6 {
        let mut p = Pair::seeded(seed);
        bring_up(&mut p);
        let (ea, eb) = (p.ea.len(), p.eb.len());
        let (id, a_in, a_out) = p.a.children()[2];
        // Both requests go out before either side sees the other's.
        p.a.rekey_child(p.now, a_in).unwrap();
        p.b.rekey_child(p.now, a_out).unwrap();
        p.run();
        let (new_in, _) = assert_one_pair(&p, &id, &format!("seed {seed}"));
        assert!(new_in != a_in);
        assert_eq!(p.a.children().len(), 4);
        // Two children were made on each side (the redundant one reported
        // by its inbound SA only when it came second), one of them and the
        // old one went, each reported once.
        for ev in [&p.ea[ea..], &p.eb[eb..]] {
            assert_eq!(ups(ev).len() + inbounds(ev).len(), 2, "seed {seed}");
            assert_eq!(downs(ev).len(), 2, "seed {seed}");
        }
        assert!(downs(&p.ea[ea..]).iter().any(|d| (d.1, d.2) == (a_in, a_out)));
        // Whose exchange made the redundant child: the new child A saw go.
        let gone = downs(&p.ea[ea..]).into_iter().find(|d| d.1 != a_in).unwrap();
        let made =
            ups(&p.ea[ea..]).into_iter().chain(inbounds(&p.ea[ea..])).find(|c| c.spi_in == gone.1).unwrap();
        if made.initiator {
            a_redundant += 1;
        } else {
            b_redundant += 1;
        }
    }
    // Both outcomes of the nonce comparison were seen.
    assert!(a_redundant > 0 && b_redundant > 0, "{a_redundant} {b_redundant}");
}

/// A rekey of a child the responder is deleting is answered
/// TEMPORARY_FAILURE, of one it no longer has CHILD_SA_NOT_FOUND (§2.25);
/// neither makes a child.
#[test]
fn rekey_of_a_child_going_or_gone_changes_nothing() {
    let mut p = Pair::seed();
    bring_up(&mut p);
    // Crossing: B's Delete and A's rekey of the same child.
    let (id, a_in, _) = p.a.children()[0];
    let b_in = p.b.children().into_iter().find(|c| c.2 == a_in).unwrap().1;
    p.b.delete_child(p.now, b_in).unwrap();
    p.a.rekey_child(p.now, a_in).unwrap();
    p.run();
    assert!(!p.a.children().iter().any(|c| c.0 == id));
    assert_eq!(p.a.children().len(), 3);
    assert_same_children(&p);
    // Gone: A's rekey is lost, B deletes the child meanwhile, and A's
    // retransmission finds nothing to rekey.
    let (id, a_in, _) = p.a.children()[0];
    let b_in = p.b.children().into_iter().find(|c| c.2 == a_in).unwrap().1;
    p.a.rekey_child(p.now, a_in).unwrap();
    assert!(p.a.poll_transmit().is_some());
    p.b.delete_child(p.now, b_in).unwrap();
    p.run();
    assert!(!p.a.children().iter().any(|c| c.0 == id));
    assert_eq!(p.a.children().len(), 2);
    assert_eq!(ups(&p.ea).len(), 4);
    assert_same_children(&p);
}

/// §1.3: B wants MODP-2048 for PFS, A sends its KE in P-256 but offers
/// 2048 too: A tries once more with a KE of 2048 and the child comes up
/// (the refused exchange used a message ID). Without 2048 offered, B
/// finds no proposal with its group (NO_PROPOSAL_CHOSEN): the child fails
/// with the peer's reason, nothing is retried, and the IKE SA stands.
#[test]
fn invalid_ke_payload_in_create_child_sa_is_retried_once() {
    let ids = seed_proxy_ids();
    for offer_2048 in [true, false] {
        let mut a = config(A, B, ids.clone(), Some(DhGroup::Ecp256));
        if offer_2048 {
            a.child.pfs_also = vec![DhGroup::Modp2048];
        }
        let b = config(B, A, ids.iter().map(mirror).collect(), Some(DhGroup::Modp2048));
        let mut p = Pair::new(a, b, 0);
        p.a.initiate_child(p.now, ids[0]).unwrap();
        p.run();
        let sent = p.log.len();
        p.a.initiate_child(p.now, ids[1]).unwrap();
        p.run();
        let up = ups(&p.ea);
        if offer_2048 {
            assert_eq!(p.log.len() - sent, 4, "refused, then made");
            assert_eq!(up.len(), 2);
            assert_eq!((up[1].proxy_id, up[1].pfs, up[1].message_id), (ids[1], true, 3));
            assert_eq!(ups(&p.eb)[1].message_id, 3);
            assert_eq!(count(&p.ea, |e| matches!(e, Event::ChildSaFailed { .. })), 0);
        } else {
            assert_eq!(p.log.len() - sent, 2, "refused, not retried");
            assert_eq!(up.len(), 1);
            let failed: Vec<_> =
                p.ea.iter()
                    .filter_map(|e| match e {
                        Event::ChildSaFailed { proxy_id, reason } => Some((*proxy_id, reason.clone())),
                        _ => None,
                    })
                    .collect();
            assert_eq!(
                failed,
                [(ids[1], Reason::PeerNotify(esprit_ike::wire::NotifyType::NoProposalChosen))]
            );
            // The IKE SA carries on.
            assert!(p.a.is_established());
        }
        assert_same_children(&p);
    }
}

/// §2.9: A asks for supersets; B has one proxy-ID inside each and narrows
/// to it; A takes the narrower child, in IKE_AUTH and in CREATE_CHILD_SA.
#[test]
fn narrowed_children_are_taken() {
    let a_ids = [
        ProxyId::from_str("local-ip 10.1.1.0/24 remote-ip 10.2.0.0/16 ANY").unwrap(),
        ProxyId::from_str("local-ip 10.1.2.0/24 remote-ip 10.2.0.0/16 ANY").unwrap(),
    ];
    let b_ids = vec![
        ProxyId::from_str("local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY").unwrap(),
        ProxyId::from_str("local-ip 10.2.2.0/24 remote-ip 10.1.2.0/24 ANY").unwrap(),
    ];
    let mut p = Pair::new(config(A, B, a_ids.to_vec(), None), config(B, A, b_ids.clone(), None), 0);
    for id in a_ids {
        p.a.initiate_child(p.now, id).unwrap();
        p.run();
    }
    let got: Vec<ProxyId> = ups(&p.ea).iter().map(|c| c.proxy_id).collect();
    assert_eq!(got, b_ids.iter().map(mirror).collect::<Vec<_>>());
    assert_same_children(&p);
}

/// A as a Session, B played by hand from the exchange layers: the IKE SA
/// up with the first proxy-ID's child.
fn a_with_b_by_hand() -> (Session<FixedRng>, esprit_ike::v2::create_child::IkeSa, FixedRng, Instant) {
    a_with_b_by_hand_seeded(5)
}

/// [`a_with_b_by_hand`], A's randomness from `seed` and B's from the next.
fn a_with_b_by_hand_seeded(
    seed: u64,
) -> (Session<FixedRng>, esprit_ike::v2::create_child::IkeSa, FixedRng, Instant) {
    use esprit_ike::v2::auth::ResponderAuthStep;
    use esprit_ike::v2::create_child::IkeSa;
    use esprit_ike::v2::responder::{InitResponder, ResponderConfig};
    let ids = seed_proxy_ids();
    let acfg = config(A, B, ids.clone(), None);
    let bcfg = config(B, A, ids.iter().map(mirror).collect(), None);
    let mut a = session(acfg, seed, 0xa000_0000);
    let mut brng = rng(seed + 1, 0xb000_0000);
    let mut resp = InitResponder::new(ResponderConfig::new(bcfg.proposals.clone()), &mut brng).unwrap();
    let now = Instant::now();
    let (aa, ba) = (addr(A), addr(B));
    a.initiate_child(now, ids[0]).unwrap();
    let init = a.poll_transmit().unwrap().bytes;
    let reply = resp.respond(&init, ba, aa, 0, now, &mut brng);
    a.handle_datagram(now, aa, ba, reply.answer().unwrap()).unwrap();
    let auth = a.poll_transmit().unwrap().bytes;
    let h = Header::parse(&auth).unwrap();
    let done = resp.take(aa, h.spi_i).unwrap();
    let step = done.handle_auth_at(&auth, &bcfg.auth, Some((&bcfg.child, 0xb1)), None, &mut brng);
    let ResponderAuthStep::Established(est) = step else { panic!("{step:?}") };
    a.handle_datagram(now, aa, ba, &est.last_response).unwrap();
    let b = IkeSa::new(*est, false);
    assert_eq!(a.children().len(), 1);
    (a, b, brng, now)
}

/// B played by hand from the exchange layers, answering A's
/// CREATE_CHILD_SA with selectors wider than asked: A refuses the child
/// and deletes the one B made, by the SPI B sends to (§1.4.1, §2.9). A
/// forged response before it changes nothing.
#[test]
fn a_wider_answer_is_refused_and_the_peers_child_deleted() {
    use esprit_ike::v2::child::{proxy_selectors, ChosenEsp};
    use esprit_ike::v2::create_child::IncomingRequest;
    use esprit_ike::v2::wire::{Payload, PayloadChain, PayloadType, TrafficSelector, TsAddresses};

    let ids = seed_proxy_ids();
    let (mut a, mut b, mut brng, now) = a_with_b_by_hand();
    let (aa, ba) = (addr(A), addr(B));
    a.initiate_child(now, ids[1]).unwrap();
    let req = a.poll_transmit().unwrap().bytes;
    let IncomingRequest::Fresh(h, opened) = b.receive_request(&req) else { panic!() };
    let mut a_spi = 0;
    for raw in opened.payloads() {
        if let Payload::Sa(sa) = Payload::parse(&raw.unwrap()).unwrap() {
            let p = sa.proposals().next().unwrap();
            a_spi = u32::from_be_bytes(p.spi.try_into().unwrap());
        }
    }
    // The answer: A's proposal, a nonce, and TSr 10.2.0.0/16 where A asked
    // for 10.2.2.0/24.
    let chosen = ChosenEsp { num: 1, suite: Suite::Aes128Gcm16, esn: false, spi_peer: a_spi, dh: None };
    let (l, r) = proxy_selectors(&ids[1]);
    let wide = TrafficSelector {
        addresses: TsAddresses::V4 {
            start: "10.2.0.0".parse().unwrap(),
            end: "10.2.255.255".parse().unwrap(),
        },
        ..r
    };
    let mut chain = PayloadChain::new();
    chain.push_with(PayloadType::Sa, false, |out| chosen.emit_answer(0xb2, out));
    chain.push(PayloadType::Nonce, &[9; 32]);
    chain.push_with(PayloadType::TsI, false, |out| TrafficSelector::emit_payload(&[l], out));
    chain.push_with(PayloadType::TsR, false, |out| TrafficSelector::emit_payload(&[wide], out));
    let answer = b.respond(&h, &req, &chain, &mut brng).unwrap();
    // A forgery first: the answer with a bit of its ICV flipped.
    let mut forged = answer.clone();
    *forged.last_mut().unwrap() ^= 1;
    assert!(a.handle_datagram(now, aa, ba, &forged).is_err());
    assert_eq!(a.dropped().get(Dropped::Integrity), 1);
    assert!(a.is_negotiating(&ids[1]));
    assert_eq!(a.poll_transmit(), None);
    // Then the real one: refused, and B's child deleted.
    a.handle_datagram(now, aa, ba, &answer).unwrap();
    let mut events = Vec::new();
    while let Some(e) = a.poll_event() {
        events.push(e);
    }
    assert!(events.iter().any(|e| matches!(e, Event::ChildSaFailed { proxy_id, .. } if *proxy_id == ids[1])));
    assert_eq!(ups(&events).len(), 1, "only IKE_AUTH's child");
    let delete = a.poll_transmit().unwrap().bytes;
    let IncomingRequest::Fresh(h, opened) = b.receive_request(&delete) else { panic!() };
    assert_eq!((h.exchange, h.message_id), (esprit_ike::v2::wire::ExchangeType::Informational, 3));
    let mut deleted = Vec::new();
    for raw in opened.payloads() {
        if let Payload::Delete(d) = Payload::parse(&raw.unwrap()).unwrap() {
            deleted.extend(d.spis().map(|s| u32::from_be_bytes(s.try_into().unwrap())));
        }
    }
    assert_eq!(deleted, [a_spi]);
    assert_eq!(a.children().len(), 1);
}

/// §2.18: the IKE SA rekeyed by either side; the children move to the
/// new one unchanged, the old one is deleted, and the new one carries
/// every exchange after (children made, rekeyed, deleted; liveness).
#[test]
fn ike_sa_rekey_moves_the_children() {
    let mut p = seed_up_with_liveness_checks();
    let children = p.a.children();
    let mut spis = vec![p.a.ike_spis().unwrap()];
    for a_rekeys in [true, false, true] {
        let (ea, eb) = (p.ea.len(), p.eb.len());
        let old_log = p.log.len();
        if a_rekeys {
            p.a.rekey_ike(p.now).unwrap();
        } else {
            p.b.rekey_ike(p.now).unwrap();
        }
        p.run_until(p.now - p.start + Duration::from_secs(5));
        // Rekey, its answer, the Delete of the old SA and its answer.
        assert_eq!(p.log.len() - old_log, 4);
        let now_spis = p.a.ike_spis().unwrap();
        assert_eq!(p.b.ike_spis().unwrap(), now_spis);
        assert!(!spis.contains(&now_spis));
        spis.push(now_spis);
        for (ev, initiator) in [(&p.ea[ea..], a_rekeys), (&p.eb[eb..], !a_rekeys)] {
            assert_eq!(ev.len(), 2, "{ev:?}");
            assert!(matches!(ev[0], Event::IkeSaDown { reason: Reason::Rekeyed }));
            let Event::IkeSaUp { icookie, rcookie, initiator: i, .. } = &ev[1] else { panic!("{ev:?}") };
            assert_eq!((u64::from_be_bytes(*icookie), u64::from_be_bytes(*rcookie)), now_spis);
            assert_eq!(*i, initiator);
        }
        assert_eq!(p.a.children(), children);
        assert_same_children(&p);
    }
    // A message on an old SA now is a stranger's.
    let stale = p.log.iter().rev().find(|(from_a, m)| *from_a && !Header::parse(m).unwrap().is_response());
    let stale = stale.unwrap().1.clone();
    assert!(p.b.handle_datagram(p.now, addr(B), addr(A), &stale).is_err());
    // The new SA works: a child rekeyed, one deleted and asked for again,
    // and a liveness check answered.
    let (_, spi, _) = p.a.children()[0];
    p.a.rekey_child(p.now, spi).unwrap();
    p.run_until(p.now - p.start + Duration::from_secs(5));
    let (id, spi, _) = p.b.children()[3];
    p.b.delete_child(p.now, spi).unwrap();
    p.run_until(p.now - p.start + Duration::from_secs(5));
    p.a.initiate_child(p.now, mirror(&id)).unwrap();
    p.run_until(p.now - p.start + Duration::from_secs(40));
    assert_eq!(p.a.children().len(), 4);
    assert_same_children(&p);
    assert!(p.a.is_established() && p.b.is_established());
    assert_eq!(count(&p.ea, |e| matches!(e, Event::DpdTimeout)), 0);
}

/// A response replayed from an earlier exchange of the same type, while
/// a request is outstanding, is not its answer (§2.2): it opens under the
/// IKE SA's keys, but its message ID is not the outstanding one.
#[test]
fn an_old_response_does_not_answer_the_outstanding_request() {
    let mut p = Pair::seed();
    bring_up(&mut p);
    let (_, first, _) = p.a.children()[0];
    p.a.delete_child(p.now, first).unwrap();
    p.run();
    let old = p.log.last().unwrap().1.clone();
    assert!(Header::parse(&old).unwrap().is_response());
    // B goes quiet; A deletes another child: its request waits.
    p.wire.b_gone = true;
    let (_, second, _) = p.a.children()[0];
    p.a.delete_child(p.now, second).unwrap();
    p.deliver();
    let ea = p.ea.len();
    assert!(p.a.handle_datagram(p.now, addr(A), addr(B), &old).is_err());
    assert_eq!(p.a.dropped().get(Dropped::UnexpectedResponse), 1);
    p.collect();
    assert_eq!(downs(&p.ea[ea..]), []);
    assert!(p.a.children().iter().any(|c| c.1 == second));
    // B back: the real answer takes it down.
    p.wire.b_gone = false;
    p.run();
    assert!(!p.a.children().iter().any(|c| c.1 == second));
    assert_same_children(&p);
}

/// The events of an IKE SA rekey on one side: one `IkeSaDown{Rekeyed}`
/// then one `IkeSaUp` for the SA `spis`, nothing else; returns whether
/// this side initiated the surviving SA.
fn one_ike_rekey(ev: &[Event], spis: (u64, u64)) -> bool {
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(matches!(ev[0], Event::IkeSaDown { reason: Reason::Rekeyed }), "{ev:?}");
    let Event::IkeSaUp { icookie, rcookie, initiator, .. } = &ev[1] else { panic!("{ev:?}") };
    assert_eq!((u64::from_be_bytes(*icookie), u64::from_be_bytes(*rcookie)), spis);
    *initiator
}

/// After an IKE SA rekey however it went: both sides on one new SA, the
/// children unchanged and moved once, nothing left to delete or resend,
/// and the new SA carries a child rekey. Returns whether A initiated the
/// surviving SA.
fn assert_ike_rekeyed(
    p: &mut Pair,
    before: (u64, u64),
    children: &[(ProxyId, u32, u32)],
    ea: usize,
    eb: usize,
) -> bool {
    let spis = p.a.ike_spis().unwrap();
    assert_ne!(spis, before);
    assert_eq!(p.b.ike_spis(), Some(spis));
    let a_made = one_ike_rekey(&p.ea[ea..], spis);
    assert_eq!(one_ike_rekey(&p.eb[eb..], spis), !a_made);
    assert_eq!(p.a.children(), children);
    assert_same_children(p);
    // Every old and redundant SA deleted, every Delete answered.
    assert_eq!((p.a.poll_timeout(), p.b.poll_timeout()), (None, None));
    let (_, spi, _) = children[0];
    p.a.rekey_child(p.now, spi).unwrap();
    p.run();
    assert!(!p.a.children().iter().any(|c| c.1 == spi));
    assert_same_children(p);
    a_made
}

/// Both ends rekey the IKE SA at once (§2.8.1, §2.8.2) and both requests
/// cross: each answers the other's; the new SA whose exchange holds the
/// lowest of the four nonces is deleted by its initiator, the other
/// takes the children (once), and the old SA is deleted by the
/// survivor's initiator.
#[test]
fn simultaneous_ike_sa_rekeys_keep_one_new_sa() {
    let mut made = [0, 0];
    for seed in 0..8 {
        let mut p = Pair::seeded(seed);
        bring_up(&mut p);
        let (spis, children) = (p.a.ike_spis().unwrap(), p.a.children());
        let (ea, eb) = (p.ea.len(), p.eb.len());
        let sent = p.log.len();
        p.a.rekey_ike(p.now).unwrap();
        p.b.rekey_ike(p.now).unwrap();
        p.run();
        // Two rekeys and their answers; the Deletes of the old SA and of
        // the redundant one and their answers.
        assert_eq!(p.log.len() - sent, 8, "seed {seed}");
        made[usize::from(assert_ike_rekeyed(&mut p, spis, &children, ea, eb))] += 1;
    }
    assert!(made[0] > 0 && made[1] > 0, "{made:?}");
}

/// The same crossing seen by A only: B has A's answer to its rekey before
/// A's rekey reaches it, deletes the old SA and refuses A's rekey with
/// TEMPORARY_FAILURE (§2.25). A moves to B's new SA on the refusal or on
/// the Delete, whichever comes first, and forgets its own (§2.8.2).
#[test]
fn simultaneous_ike_sa_rekeys_seen_by_one_side_keep_the_other() {
    for refusal_first in [true, false] {
        let mut p = Pair::seed();
        bring_up(&mut p);
        let (spis, children) = (p.a.ike_spis().unwrap(), p.a.children());
        let (ea, eb) = (p.ea.len(), p.eb.len());
        p.a.rekey_ike(p.now).unwrap();
        p.b.rekey_ike(p.now).unwrap();
        let (a_req, b_req) = p.hold();
        p.give(false, &b_req[0]);
        let (a_answer, _) = p.hold();
        p.give(true, &a_answer[0]);
        let (_, b_delete) = p.hold();
        p.give(true, &a_req[0]);
        let (_, b_refusal) = p.hold();
        let order = if refusal_first { [&b_refusal[0], &b_delete[0]] } else { [&b_delete[0], &b_refusal[0]] };
        for t in order {
            p.give(false, t);
        }
        p.run();
        assert!(!assert_ike_rekeyed(&mut p, spis, &children, ea, eb), "B's SA survives");
        assert_eq!(count(&p.ea, |e| matches!(e, Event::Phase1RekeyFailed { .. })), 0);
    }
}

/// A child rekey crossing an IKE SA rekey (§2.25): B's IKE SA rekey
/// meets A's child rekey outstanding and is refused with
/// TEMPORARY_FAILURE; A's child rekey is answered on the old SA. The
/// child is rekeyed, B reports its IKE SA rekey failed for the owner to
/// ask again, and the next one goes through with every child moving.
#[test]
fn a_child_rekey_crossing_an_ike_sa_rekey() {
    let mut p = Pair::seed();
    bring_up(&mut p);
    let (spis, (_, a_in, _)) = (p.a.ike_spis().unwrap(), p.a.children()[1]);
    let eb = p.eb.len();
    p.a.rekey_child(p.now, a_in).unwrap();
    p.b.rekey_ike(p.now).unwrap();
    p.run();
    let failed = count(&p.eb[eb..], |e| {
        matches!(
            e,
            Event::Phase1RekeyFailed { reason: Reason::PeerNotify(esprit_ike::wire::NotifyType::Other(43)) }
        )
    });
    assert_eq!(failed, 1, "{:?}", &p.eb[eb..]);
    assert_eq!(p.a.ike_spis(), Some(spis));
    assert!(!p.a.children().iter().any(|c| c.1 == a_in));
    assert_eq!(p.a.children().len(), 4);
    assert_same_children(&p);
    let children = p.a.children();
    let (ea, eb) = (p.ea.len(), p.eb.len());
    p.b.rekey_ike(p.now).unwrap();
    p.run();
    assert!(!assert_ike_rekeyed(&mut p, spis, &children, ea, eb));
}

/// An authenticated INFORMATIONAL whose Delete payload is malformed is
/// answered INVALID_SYNTAX and acted on in no part; the window moves on,
/// and the next request is taken.
#[test]
fn a_malformed_authenticated_request_is_answered_and_changes_nothing() {
    use esprit_ike::v2::wire::{ExchangeType, PayloadChain, PayloadType};
    let (mut a, mut b, mut brng, now) = a_with_b_by_hand();
    let (aa, ba) = (addr(A), addr(B));
    // B sends on A's inbound SPI, and names its own inbound one, A's
    // outbound, in a Delete (§3.11).
    let (_, _, b_spi) = a.children()[0];
    while a.poll_event().is_some() {}
    // A Delete of A's child claiming two SPIs and carrying one.
    let mut body = vec![3, 4, 0, 2];
    body.extend_from_slice(&b_spi.to_be_bytes());
    let mut chain = PayloadChain::new();
    chain.push(PayloadType::Delete, &body);
    let (id, req) = b.send_request(ExchangeType::Informational, &chain, &mut brng).unwrap();
    assert!(a.handle_datagram(now, aa, ba, &req).is_err());
    assert_eq!(a.dropped().get(Dropped::Malformed), 1);
    assert_eq!(a.children().len(), 1);
    assert!(a.poll_event().is_none());
    let answer = a.poll_transmit().unwrap().bytes;
    let opened = b.receive_response(&answer, id, ExchangeType::Informational).unwrap();
    let inner: Vec<String> = opened
        .payloads()
        .map(|r| format!("{:?}", esprit_ike::v2::wire::Payload::parse(&r.unwrap()).unwrap()))
        .collect();
    assert_eq!(inner.len(), 1);
    assert!(inner[0].contains("InvalidSyntax"), "{inner:?}");
    // The next request, well formed, deletes the child.
    let mut chain = PayloadChain::new();
    let spi = b_spi.to_be_bytes();
    chain.push_payload(&esprit_ike::v2::wire::Payload::Delete(esprit_ike::v2::wire::DeletePayload::new(
        esprit_ike::v2::wire::ProtocolId::Esp,
        4,
        &spi,
    )));
    let (id, req) = b.send_request(ExchangeType::Informational, &chain, &mut brng).unwrap();
    let (_, a_spi, _) = a.children()[0];
    a.handle_datagram(now, aa, ba, &req).unwrap();
    assert!(a.children().is_empty());
    assert!(matches!(a.poll_event(), Some(Event::ChildSaDown { reason: Reason::DeletedByPeer, .. })));
    // §1.4.1: A's answer deletes its own half of the pair.
    let answer = a.poll_transmit().unwrap().bytes;
    let opened = b.receive_response(&answer, id, ExchangeType::Informational).unwrap();
    let deleted: Vec<(esprit_ike::v2::wire::ProtocolId, Vec<u8>)> = opened
        .payloads()
        .filter_map(|r| match esprit_ike::v2::wire::Payload::parse(&r.unwrap()).unwrap() {
            esprit_ike::v2::wire::Payload::Delete(d) => {
                Some((d.protocol, d.spis().flatten().copied().collect()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(deleted, [(esprit_ike::v2::wire::ProtocolId::Esp, a_spi.to_be_bytes().to_vec())]);
}

/// Either side asks: B, the responder of A's IKE SA, asks for children
/// on it (its message IDs from 0, §2.2); with no IKE SA, B initiates one.
#[test]
fn the_responder_asks_for_children_too() {
    let mut p = Pair::seed();
    let ids = seed_proxy_ids();
    p.a.initiate_child(p.now, ids[0]).unwrap();
    p.run();
    let eb = p.eb.len();
    for id in &ids[1..3] {
        p.b.initiate_child(p.now, mirror(id)).unwrap();
        p.run();
    }
    let made = ups(&p.eb[eb..]);
    assert_eq!(made.iter().map(|c| (c.message_id, c.initiator)).collect::<Vec<_>>(), [(0, true), (1, true)]);
    assert_eq!(p.a.children().len(), 3);
    assert_same_children(&p);
    // The IKE SA deleted, B asks: B is the initiator of the new one.
    p.a.delete_ike(p.now).unwrap();
    p.run();
    let eb = p.eb.len();
    p.b.initiate_child(p.now, mirror(&ids[3])).unwrap();
    p.run();
    assert!(matches!(p.eb[eb], Event::IkeSaUp { initiator: true, .. }), "{:?}", p.eb[eb]);
    assert_eq!(ups(&p.eb[eb..]).len(), 1);
    assert_same_children(&p);
}

fn inbounds(events: &[Event]) -> Vec<&ChildSa> {
    events.iter().filter_map(|e| if let Event::ChildSaInbound(c) = e { Some(&**c) } else { None }).collect()
}

/// What an owner that installs on `ChildSaUp`/`ChildSaInbound` and
/// removes on `ChildSaDown` holds for `id` after `events`, and which pair
/// it sends on (the last one reported up, as controld's newest pair
/// supersedes the older ones): (installed inbound SPIs, sending SPI out).
fn owner_view(events: &[Event], id: &ProxyId) -> (Vec<u32>, Option<u32>) {
    let mut installed = Vec::new();
    let mut sending = None;
    for e in events {
        match e {
            Event::ChildSaUp(c) if c.proxy_id == *id || mirror(&c.proxy_id) == *id => {
                installed.push(c.spi_in);
                sending = Some((c.spi_in, c.spi_out));
            }
            Event::ChildSaInbound(c) if c.proxy_id == *id || mirror(&c.proxy_id) == *id => {
                installed.push(c.spi_in)
            }
            Event::ChildSaDown { spi_in, .. } => {
                installed.retain(|s| s != spi_in);
                if sending.is_some_and(|(i, _)| i == *spi_in) {
                    sending = None;
                }
            }
            _ => {}
        }
    }
    installed.sort();
    (installed, sending.map(|s| s.1))
}

/// After a collision on `id` (A's side): one pair on both sides, the
/// same; what each owner installed is that pair alone, and it sends on
/// it. Returns A's (inbound, outbound) SPIs of the survivor.
fn assert_one_pair(p: &Pair, id: &ProxyId, ctx: &str) -> (u32, u32) {
    let live: Vec<_> = p.a.children().into_iter().filter(|c| c.0 == *id).collect();
    assert_eq!(live.len(), 1, "{ctx}: {:?}", p.a.children());
    assert_same_children(p);
    let (_, a_in, a_out) = live[0];
    assert_eq!(owner_view(&p.ea, id), (vec![a_in], Some(a_out)), "{ctx}: A {:?}", p.ea);
    assert_eq!(owner_view(&p.eb, id), (vec![a_out], Some(a_in)), "{ctx}: B {:?}", p.eb);
    (a_in, a_out)
}

/// The IKE SA up with the first proxy-ID's child (its events taken), then
/// both sides asking for the second at once: the two requests are sent,
/// not delivered.
fn crossing_acquires(seed: u64) -> (Pair, Vec<ProxyId>) {
    let ids = seed_proxy_ids();
    let mut p = Pair::seeded(seed);
    p.a.initiate_child(p.now, ids[0]).unwrap();
    p.run();
    p.ea.clear();
    p.eb.clear();
    p.a.initiate_child(p.now, ids[1]).unwrap();
    p.b.initiate_child(p.now, mirror(&ids[1])).unwrap();
    (p, ids)
}

/// Both gateways get an acquire for one proxy-ID at once and each sends
/// CREATE_CHILD_SA for it; both requests are delivered before either
/// answer. Each answers the other's, then the child whose exchange holds
/// the lowest of the four nonces is deleted by the side that asked for
/// it: one pair is left, the same on both sides, and neither owner ever
/// sent on the redundant one after the survivor was up.
#[test]
fn crossing_requests_for_one_proxy_id_keep_one_pair() {
    // Seeds whose redundant child A made, and B made.
    let mut redundant = [0, 0];
    for seed in 0..8 {
        let (mut p, ids) = crossing_acquires(seed);
        let (ea, eb) = (0, 0);
        p.run();
        let ctx = format!("seed {seed}");
        let (a_in, _) = assert_one_pair(&p, &ids[1], &ctx);
        assert_eq!(p.a.children().len(), 2);
        for ev in [&p.ea[ea..], &p.eb[eb..]] {
            // Two children made on each side, one of them gone.
            assert_eq!(ups(ev).len() + inbounds(ev).len(), 2, "{ctx}: {ev:?}");
            assert_eq!(downs(ev).len(), 1, "{ctx}: {ev:?}");
            assert_eq!(count(ev, |e| matches!(e, Event::ChildSaFailed { .. })), 0, "{ctx}");
        }
        let survivor = ups(&p.ea[ea..]).into_iter().find(|c| c.spi_in == a_in).unwrap();
        redundant[usize::from(survivor.initiator)] += 1;
        // The IKE SA carries on: the surviving child rekeys.
        p.a.rekey_child(p.now, a_in).unwrap();
        p.run();
        assert_one_pair(&p, &ids[1], &ctx);
    }
    assert!(redundant[0] > 0 && redundant[1] > 0, "{redundant:?}");
}

/// The same crossing seen by one side only: A's request is answered by B
/// (B's own request is outstanding) and A has its child before B's
/// request reaches it. A settles the two children as B does: one pair.
#[test]
fn crossing_requests_seen_by_one_side_keep_one_pair() {
    // Seeds whose redundant child A made, and B made.
    let mut redundant = [0, 0];
    for seed in 0..8 {
        let (mut p, ids) = crossing_acquires(seed);
        let (a_req, b_req) = p.hold();
        assert_eq!((a_req.len(), b_req.len()), (1, 1));
        p.give(true, &a_req[0]);
        let (none, b_answer) = p.hold();
        assert_eq!((none.len(), b_answer.len()), (0, 1));
        p.give(false, &b_answer[0]);
        assert_eq!(p.a.children().iter().filter(|c| c.0 == ids[1]).count(), 1);
        // B's request, late.
        p.give(false, &b_req[0]);
        p.run();
        let ctx = format!("seed {seed}");
        let (a_in, _) = assert_one_pair(&p, &ids[1], &ctx);
        let a_made_it =
            p.ea.iter().any(|e| matches!(e, Event::ChildSaUp(c) if c.spi_in == a_in && c.initiator));
        redundant[usize::from(a_made_it)] += 1;
    }
    assert!(redundant[0] > 0 && redundant[1] > 0, "{redundant:?}");
}

/// §2.8.1 seen by one side only: A's rekey is answered by B (B's rekey
/// of the same child is outstanding) and A deletes the old child before
/// B's rekey reaches it; A refuses that one with TEMPORARY_FAILURE
/// (§2.25), and B keeps A's new child: one pair, no retry asked for.
#[test]
fn simultaneous_rekey_seen_by_one_side_keeps_one_pair() {
    let mut p = Pair::seed();
    bring_up(&mut p);
    let (ea, eb) = (p.ea.len(), p.eb.len());
    let (id, a_in, a_out) = p.a.children()[2];
    p.a.rekey_child(p.now, a_in).unwrap();
    p.b.rekey_child(p.now, a_out).unwrap();
    let (a_req, b_req) = p.hold();
    p.give(true, &a_req[0]);
    let (_, b_answer) = p.hold();
    p.give(false, &b_answer[0]);
    p.give(false, &b_req[0]);
    p.run();
    let (new_in, _) = assert_one_pair(&p, &id, "one side");
    assert_ne!(new_in, a_in);
    assert!(ups(&p.ea[ea..]).iter().any(|c| c.spi_in == new_in && c.initiator));
    for ev in [&p.ea[ea..], &p.eb[eb..]] {
        assert_eq!(ups(ev).len(), 1, "{ev:?}");
        assert_eq!(downs(ev).len(), 1, "{ev:?}");
        assert!(matches!(downs(ev)[0].3, Reason::Rekeyed | Reason::DeletedLocally), "{ev:?}");
        assert_eq!(count(ev, |e| matches!(e, Event::ChildSaFailed { .. })), 0);
    }
}

/// A rekey the peer refuses for another reason than a crossing (here:
/// the proxy-ID is no longer configured on B, TS_UNACCEPTABLE) is
/// reported failed, so that the owner asks again; the child stays, and
/// is rekeyed once B takes the proxy-ID again.
#[test]
fn a_refused_rekey_is_reported_for_the_owner_to_retry() {
    let mut p = Pair::seed();
    bring_up(&mut p);
    let (id, a_in, _) = p.a.children()[0];
    let ea = p.ea.len();
    let b_ids: Vec<ProxyId> = p.b.config().child.proxy_ids.clone();
    p.b.set_proxy_ids(b_ids.iter().copied().filter(|x| *x != mirror(&id)).collect());
    p.a.rekey_child(p.now, a_in).unwrap();
    p.run();
    let failed: Vec<_> = p.ea[ea..]
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaFailed { proxy_id, reason } => Some((*proxy_id, reason.clone())),
            _ => None,
        })
        .collect();
    let refused = Reason::PeerNotify(esprit_ike::wire::NotifyType::InvalidIdInformation);
    assert_eq!(failed, [(id, refused)], "{:?}", &p.ea[ea..]);
    assert!(p.a.children().iter().any(|c| c.1 == a_in));
    p.b.set_proxy_ids(b_ids);
    p.a.rekey_child(p.now, a_in).unwrap();
    p.run();
    assert!(!p.a.children().iter().any(|c| c.1 == a_in));
    assert_one_pair(&p, &id, "retried");
}

/// Crossing requests for one proxy-ID with a peer that does not settle
/// them (B played by hand): when B's child is the redundant one, A waits
/// for B to delete it, for as long as its retransmission schedule lasts
/// (1 + 2 + 4 + 8 s), then deletes it itself; never before. When A's is,
/// A deletes its own at once.
#[test]
fn a_redundant_child_the_peer_keeps_is_deleted_after_the_crossing_window() {
    use esprit_ike::v2::child::ChildRequest;
    use esprit_ike::v2::create_child::{ChildResponse, IncomingRequest, RequestOutcome};
    use esprit_ike::v2::wire::{Payload, ProtocolId};
    let ids = seed_proxy_ids();
    let bcfg = config(B, A, ids.iter().map(mirror).collect(), None);
    let (aa, ba) = (addr(A), addr(B));
    let mut waited = 0;
    for seed in 5..15 {
        let (mut a, mut b, mut brng, now) = a_with_b_by_hand_seeded(seed);
        while a.poll_event().is_some() {}
        a.initiate_child(now, ids[1]).unwrap();
        let a_req = a.poll_transmit().unwrap().bytes;
        let req = ChildRequest { proxy_id: mirror(&ids[1]), packet: None, spi_in: 0xb000_0b05 };
        let pending = b.create_child(req, &bcfg.child, &mut brng).unwrap();
        a.handle_datagram(now, aa, ba, pending.request()).unwrap();
        let a_answer = a.poll_transmit().unwrap().bytes;
        let RequestOutcome::Answered { response, child: Ok(_) } =
            b.handle_request(&a_req, &bcfg.child, 0xb000_0b06, &mut brng)
        else {
            panic!("B refused A's child")
        };
        a.handle_datagram(now, aa, ba, &response).unwrap();
        let ChildResponse::Created(b_child) = b.handle_child_response(pending, &a_answer) else { panic!() };
        let mut events = Vec::new();
        while let Some(e) = a.poll_event() {
            events.push(e);
        }
        let b_made = ups(&events).into_iter().chain(inbounds(&events)).find(|c| !c.initiator).unwrap().spi_in;
        assert_eq!(b_made, b_child.sa.spi_out);
        let deleted = |a: &mut Session<FixedRng>, b: &mut esprit_ike::v2::create_child::IkeSa| {
            let t = a.poll_transmit()?;
            let IncomingRequest::Fresh(_, opened) = b.receive_request(&t.bytes) else { panic!() };
            opened.payloads().find_map(|raw| match Payload::parse(&raw.unwrap()).unwrap() {
                Payload::Delete(d) if d.protocol == ProtocolId::Esp => {
                    d.spis().next().map(|s| u32::from_be_bytes(s.try_into().unwrap()))
                }
                _ => None,
            })
        };
        // A's child, reported by its inbound SA only if redundant (B's
        // came first, reported up, and is superseded otherwise).
        let a_made = ups(&events).into_iter().chain(inbounds(&events)).find(|c| c.initiator).unwrap().spi_in;
        if !inbounds(&events).iter().any(|c| c.spi_in == a_made) {
            // B's is redundant: nothing until the window ends.
            waited += 1;
            assert_eq!(a.poll_transmit(), None);
            let window = Duration::from_secs(15);
            assert_eq!(a.poll_timeout(), Some(now + window));
            a.handle_timeout(now + window - Duration::from_millis(1));
            assert_eq!(a.poll_transmit(), None);
            a.handle_timeout(now + window);
            assert_eq!(deleted(&mut a, &mut b), Some(b_made));
        } else {
            // A's is: deleted at once, by A.
            assert_eq!(deleted(&mut a, &mut b), Some(a_made));
        }
    }
    assert!(waited > 0 && waited < 10, "{waited}");
}
