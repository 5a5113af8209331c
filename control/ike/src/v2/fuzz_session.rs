//! Fuzz entry point of [`super::session::Session`]: what the
//! `ikev2_session` target calls, and what this crate's tests replay from
//! the kept corpus. Not an API for anything else.
//!
//! [`ikev2_session`] brings two sessions up in memory (the seed's four
//! proxy-IDs, each its own child; one deleted and made again; the IKE SA
//! rekeyed once), with messages over [`FUZZ_FRAGMENT_SIZE`] bytes of IP
//! in fragments (RFC 7383), keeps every datagram they exchanged,
//! and then plays a stranger with the input: a list of operations, each
//! an opcode byte and a length-prefixed chunk:
//!
//! * `0`, `1`: the chunk as a datagram from the peer's address to B, A;
//! * `2`, `3`: a datagram they exchanged, chosen by the chunk's first
//!   byte, with the rest of the chunk XORed in from the offset its second
//!   byte names, to B, A (replays and near-misses of real messages);
//! * `4`: the datagrams the two sent meanwhile delivered to each other
//!   (answers from memory meet their duplicates);
//! * `5`: both owners act at once, as the chunk's first byte says (bit 0:
//!   A rekeys the IKE SA, bit 1: B does; bit 2: A rekeys a child, bit 3:
//!   B rekeys the same one; bit 4: A deletes a child, and once that is
//!   done both ask for its proxy-ID again), the child chosen by the
//!   second byte; what they send is held, not delivered;
//! * `6`, `7`: the oldest datagram held from A, B delivered (the rest
//!   wait: requests and answers cross in any order the input picks).
//!
//! Invariants: nothing panics. Without `5`: no child and no IKE SA goes
//! down or comes up, and both sides still hold the same four children.
//! With it: once everything held is delivered and the timers have run,
//! both sides are on one IKE SA and hold the same four children, one per
//! proxy-ID (RFC 7296 §2.8.1 and crossing requests settled alike on both
//! sides, §2.8.2, §2.25). A failed invariant is a finding.

// A fuzz body asserts its invariants: a failed one is a finding.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use esprit_policy::ProxyId;
use zeroize::Zeroizing;

use super::alg::{EncrAlg, IntegAlg, PrfAlg};
use super::auth::{PskAuth, WireIdentity};
use super::child::ChildConfig;
use super::config::IkeSaProposal;
use super::session::{Session, SessionConfig};
use super::wire::IdType;
use crate::{DhGroup, Event, Lifetime, Retransmit, Suite};

/// Datagrams of at most this many bytes: small enough that IKE_AUTH and
/// CREATE_CHILD_SA go in fragments (RFC 7383), so that the log holds
/// fragments to replay and alter.
pub const FUZZ_FRAGMENT_SIZE: u16 = 200;

const A: &str = "198.51.100.1:500";
const B: &str = "203.0.113.1:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The seed's four proxy-IDs from A's side (`a`) or B's.
fn proxy_ids(a: bool) -> Vec<ProxyId> {
    let mut v = Vec::new();
    for l in ["10.1.1.0/24", "10.1.2.0/24"] {
        for r in ["10.2.1.0/24", "10.2.2.0/24"] {
            let (ours, theirs) = if a { (l, r) } else { (r, l) };
            v.push(format!("local-ip {ours} remote-ip {theirs} ANY").parse().unwrap());
        }
    }
    v
}

/// The first of the seed's proxy-IDs, from A's side.
pub fn proxy_id() -> ProxyId {
    proxy_ids(true)[0]
}

/// A's configuration (`a`) or B's: a pre-shared key, the seed's
/// proxy-IDs, and fragments of [`FUZZ_FRAGMENT_SIZE`].
pub fn config(a: bool) -> SessionConfig {
    let id = |s: &str| WireIdentity { kind: IdType::Fqdn, data: s.as_bytes().to_vec() };
    let (me, peer) = if a { ("a.example", "b.example") } else { ("b.example", "a.example") };
    let (encr, integ) = (vec![EncrAlg::AesCbc128], vec![IntegAlg::HmacSha256_128]);
    let proposal = IkeSaProposal { encr, integ, prf: vec![PrfAlg::HmacSha256], dh: vec![DhGroup::Ecp256] };
    SessionConfig {
        name: me.to_string(),
        local: addr(if a { A } else { B }),
        remote: addr(if a { B } else { A }),
        proposals: vec![proposal],
        auth: PskAuth { psk: Zeroizing::new(b"fuzz".to_vec()), local: id(me), remote: Some(id(peer)) }.into(),
        child: ChildConfig {
            suites: vec![Suite::Aes128Gcm16],
            esn: false,
            pfs: None,
            pfs_also: Vec::new(),
            proxy_ids: proxy_ids(a),
            lifetime: Lifetime { seconds: 3600, kilobytes: 0 },
        },
        retransmit: Retransmit { initial: Duration::from_secs(1), tries: 2 },
        dpd: None,
        dpd_retries: None,
        fragment_size: Some(FUZZ_FRAGMENT_SIZE),
    }
}

/// The sessions' randomness: a seeded stream of bytes, and inbound SPIs
/// handed out once each, as controld's allocator does (a stream that
/// repeated SPIs or nonces would make two children one).
#[derive(Debug)]
pub struct SessionRng {
    bytes: esprit_testrng::TestRng,
    next_spi: u32,
}

impl SessionRng {
    fn new(seed: u64, spi_base: u32) -> SessionRng {
        SessionRng { bytes: esprit_testrng::TestRng::new(seed), next_spi: spi_base }
    }
}

impl crate::Random for SessionRng {
    fn fill(&mut self, dest: &mut [u8]) {
        self.bytes.fill_bytes(dest);
    }

    fn spi(&mut self) -> u32 {
        self.next_spi += 1;
        self.next_spi
    }
}

/// Two established sessions and the datagrams they exchanged, as
/// (from A, bytes).
#[derive(Debug)]
pub struct Established {
    /// The initiator.
    pub a: Session<SessionRng>,
    /// The responder.
    pub b: Session<SessionRng>,
    /// Every datagram, in order.
    pub log: Vec<(bool, Vec<u8>)>,
    /// The clock.
    pub now: Instant,
    /// Datagrams sent but held back (from A, from B).
    pub held: [std::collections::VecDeque<Vec<u8>>; 2],
}

impl Established {
    /// Moves datagrams between the two (the held ones first) until none
    /// is left.
    pub fn deliver(&mut self) {
        while self.give(true) || self.give(false) {}
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                let _ = self.b.handle_datagram(self.now, t.remote, t.local, &t.bytes);
                self.log.push((true, t.bytes));
                moved = true;
            }
            while let Some(t) = self.b.poll_transmit() {
                let _ = self.a.handle_datagram(self.now, t.remote, t.local, &t.bytes);
                self.log.push((false, t.bytes));
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// Holds what A and B have sent.
    pub fn hold(&mut self) {
        while let Some(t) = self.a.poll_transmit() {
            self.held[0].push_back(t.bytes);
        }
        while let Some(t) = self.b.poll_transmit() {
            self.held[1].push_back(t.bytes);
        }
    }

    /// Delivers the oldest datagram held from A (`from_a`) or B; false if
    /// there is none.
    pub fn give(&mut self, from_a: bool) -> bool {
        self.hold();
        let Some(bytes) = self.held[usize::from(!from_a)].pop_front() else { return false };
        let (aa, ba) = (addr(A), addr(B));
        let _ = if from_a {
            self.b.handle_datagram(self.now, ba, aa, &bytes)
        } else {
            self.a.handle_datagram(self.now, aa, ba, &bytes)
        };
        self.log.push((from_a, bytes));
        true
    }

    /// Both owners act at once as `what` says (see the module doc), on
    /// the child `pick`; what they send is held.
    fn act(&mut self, what: u8, pick: u8) {
        let children = self.a.children();
        let Some(&(proxy_id, a_in, a_out)) = children.get(usize::from(pick) % children.len().max(1)) else {
            return;
        };
        if what & 0x10 != 0 && self.a.delete_child(self.now, a_in).is_ok() {
            self.deliver();
            if !self.a.children().iter().any(|c| c.0 == proxy_id) {
                let mirror = ProxyId { local: proxy_id.remote, remote: proxy_id.local, ..proxy_id };
                let _ = self.a.initiate_child(self.now, proxy_id);
                let _ = self.b.initiate_child(self.now, mirror);
            }
        }
        if what & 4 != 0 {
            let _ = self.a.rekey_child(self.now, a_in);
        }
        if what & 8 != 0 {
            let _ = self.b.rekey_child(self.now, a_out);
        }
        if what & 1 != 0 {
            let _ = self.a.rekey_ike(self.now);
        }
        if what & 2 != 0 {
            let _ = self.b.rekey_ike(self.now);
        }
        self.hold();
    }

    /// Delivers everything and runs both sides' timers until nothing is
    /// due in the next ten minutes.
    fn settle(&mut self) {
        let horizon = self.now + Duration::from_secs(600);
        loop {
            self.deliver();
            let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= horizon => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => return,
            }
        }
    }

    /// Events since the last call, both sides.
    pub fn events(&mut self) -> Vec<Event> {
        let mut v = Vec::new();
        while let Some(e) = self.a.poll_event() {
            v.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            v.push(e);
        }
        v
    }
}

/// A and B with the four children up (deterministic).
pub fn established() -> Established {
    let a = Session::new(config(true), SessionRng::new(1, 0xa000_0000)).unwrap();
    let b = Session::new(config(false), SessionRng::new(2, 0xb000_0000)).unwrap();
    let mut e = Established { a, b, log: Vec::new(), now: Instant::now(), held: Default::default() };
    for p in proxy_ids(true) {
        e.a.initiate_child(e.now, p).unwrap();
        e.deliver();
    }
    // Delete one and ask again: the log holds INFORMATIONAL too.
    let spi = e.a.children()[0].1;
    e.a.delete_child(e.now, spi).unwrap();
    e.deliver();
    e.a.initiate_child(e.now, proxy_ids(true)[0]).unwrap();
    e.deliver();
    // And rekey the IKE SA: the log holds messages of an SA gone.
    e.a.rekey_ike(e.now).unwrap();
    e.deliver();
    assert_eq!(e.a.children().len(), 4);
    e
}

fn chunk(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&op, rest) = data.split_first()?;
    let (len, rest) = match rest {
        [hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
        _ => (rest.len(), &[][..]),
    };
    let len = len.min(rest.len());
    Some((op, &rest[..len], &rest[len..]))
}

/// The fuzz body; see the module doc.
pub fn ikev2_session(data: &[u8]) {
    let mut e = established();
    let _ = e.events();
    let before = (e.a.children(), e.b.children(), e.a.ike_spis());
    let (aa, ba) = (addr(A), addr(B));
    let mut rest = data;
    let mut acted = false;
    while let Some((op, body, next)) = chunk(rest) {
        rest = next;
        match op % 8 {
            0 => {
                let _ = e.b.handle_datagram(e.now, ba, aa, body);
            }
            1 => {
                let _ = e.a.handle_datagram(e.now, aa, ba, body);
            }
            to_b @ (2 | 3) => {
                let Some((&pick, xor)) = body.split_first() else { continue };
                let mut msg = e.log[usize::from(pick) % e.log.len()].1.clone();
                if let Some((&at, xor)) = xor.split_first() {
                    for (b, x) in msg.iter_mut().skip(usize::from(at)).zip(xor) {
                        *b ^= x;
                    }
                }
                if to_b == 2 {
                    let _ = e.b.handle_datagram(e.now, ba, aa, &msg);
                } else {
                    let _ = e.a.handle_datagram(e.now, aa, ba, &msg);
                }
            }
            4 => e.deliver(),
            5 => {
                acted = true;
                e.act(body.first().copied().unwrap_or(0), body.get(1).copied().unwrap_or(0));
            }
            6 => {
                e.give(true);
            }
            _ => {
                e.give(false);
            }
        }
    }
    if !acted {
        e.deliver();
        let events = e.events();
        assert!(events.is_empty(), "{events:?}");
        assert_eq!((e.a.children(), e.b.children(), e.a.ike_spis()), before);
        return;
    }
    e.settle();
    assert!(e.a.ike_spis().is_some() && e.a.ike_spis() == e.b.ike_spis());
    let (a, mut b) = (e.a.children(), e.b.children());
    let mut mirrored: Vec<_> =
        a.iter().map(|(p, i, o)| (ProxyId { local: p.remote, remote: p.local, ..*p }, *o, *i)).collect();
    mirrored.sort();
    b.sort();
    assert_eq!(mirrored, b);
    let mut ids: Vec<ProxyId> = a.iter().map(|c| c.0).collect();
    ids.sort();
    let mut want = proxy_ids(true);
    want.sort();
    assert_eq!(ids, want, "one child per proxy-ID");
}

/// True if `msg` is an Encrypted Fragment message (RFC 7383).
pub fn is_fragment(msg: &[u8]) -> bool {
    msg.get(16) == Some(&super::wire::PayloadType::EncryptedFragment.value())
}

/// Seeds: every datagram of the bring-up replayed to its receiver, and
/// each once with a byte flipped, as one input apiece; each fragment
/// also with its Fragment Number and its Total Fragments changed.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let e = established();
    let mut out = Vec::new();
    for (i, (from_a, msg)) in e.log.iter().enumerate() {
        let op = if *from_a { 2 } else { 3 };
        let i = u8::try_from(i).unwrap_or(u8::MAX);
        out.push((format!("replay-{i:02}"), vec![op, 0, 1, i, 4]));
        out.push((format!("flip-{i:02}"), vec![op, 0, 3, i, 40, 1, 4]));
        if is_fragment(msg) {
            out.push((format!("fragment-number-{i:02}"), vec![op, 0, 3, i, 33, 3, 4]));
            out.push((format!("fragment-total-{i:02}"), vec![op, 0, 3, i, 35, 0x40, 4]));
        }
    }
    out.push(("garbage".to_string(), vec![0, 0, 4, 0x12, 0x34, 0x56, 0x78, 1, 0, 2, 0, 0]));
    // Both owners at once: IKE SA rekeys, child rekeys, crossing requests
    // for one proxy-ID; delivered together, or B's first.
    for (name, what) in [("both-rekey-ike", 3), ("both-rekey-child", 12), ("both-ask", 16), ("all", 31)] {
        out.push((name.to_string(), vec![5, 0, 2, what, 1, 4]));
        out.push((format!("{name}-b-first"), vec![5, 0, 2, what, 1, 7, 0, 0, 7, 0, 0, 6, 0, 0, 4]));
    }
    out
}
