//! RESPONDER-LIFETIME (RFC 2407 §4.6.3.1) between two esprit-ike
//! endpoints in memory. Where a test needs a responder that says
//! something esprit never says (a longer lifetime, a malformed
//! notification), the responder's message is opened with the
//! responder's own keys (from its exported state), changed, and sealed
//! again with a correct HASH(2), so that only the lifetime differs.
//!
//! ```text
//!   A (initiator)                          B (responder)
//!   MM1 .. MM5*                    -->
//!                                  <--     MM6* IDir, HASH_R [, N(RESPONDER-LIFETIME)]
//!   QM1* HASH(1), SA, Ni, IDci, IDcr -->
//!                                  <--     QM2* HASH(2), SA, Nr, IDci, IDcr [, N(RESPONDER-LIFETIME)]
//!   QM3* HASH(3)                   -->
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Instant;

use esprit_ike::wire::{
    chain, ExchangeType, Header, LifeDurations, MessageBuilder, NotifyPayload, NotifyType, PayloadIter,
    PayloadType, HEADER_LEN, LIFE_IPSEC, LIFE_ISAKMP,
};
use esprit_ike::{
    ChildSa, Discard, EncryptionAlg, Event, HashAlg, Lifetime, Peer, PeerConfig, Random, WallClock,
};
use esprit_policy::ProxyId;

/// Deterministic randomness (xorshift); SPIs base + n.
struct Rng(u64, u32);

impl Random for Rng {
    fn fill(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
    }
    fn spi(&mut self) -> u32 {
        self.1 += 1;
        self.1
    }
}

const PROXY_A: &str = "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY";
const PROXY_B: &str = "local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY";
/// B's inbound SPI for the first child (Rng's base + 1).
const SPI_B: u32 = 0xb200_0001;

fn peers(life_a: Lifetime, life_b: Lifetime) -> (Peer<Rng>, Peer<Rng>) {
    let a: SocketAddr = "198.51.100.1:500".parse().unwrap();
    let b: SocketAddr = "203.0.113.1:500".parse().unwrap();
    let mut ca = PeerConfig::new("gw-b", a, b, b"lifetime-psk-0123456789");
    let mut cb = PeerConfig::new("gw-a", b, a, b"lifetime-psk-0123456789");
    ca.proxy_ids = vec![PROXY_A.parse().unwrap()];
    cb.proxy_ids = vec![PROXY_B.parse().unwrap()];
    ca.child_lifetime = life_a;
    cb.child_lifetime = life_b;
    (
        Peer::new(ca, Rng(0x1234_5678_9abc_def1, 0xa100_0000)),
        Peer::new(cb, Rng(0x0fed_cba9_8765_4321, SPI_B - 1)),
    )
}

const fn life(seconds: u32, kilobytes: u32) -> Lifetime {
    Lifetime { seconds, kilobytes }
}

/// Rewrites a message from B, given B and every message before it.
type Tamper<'a> = dyn FnMut(&Peer<Rng>, &[Vec<u8>], &mut Vec<u8>) + 'a;

/// A asks for the child; messages move both ways until both are quiet,
/// each of B's passing through `tamper` first.
fn negotiate(a: &mut Peer<Rng>, b: &mut Peer<Rng>, tamper: &mut Tamper<'_>) -> Vec<Vec<u8>> {
    let now = Instant::now();
    a.initiate_child(now, PROXY_A.parse::<ProxyId>().unwrap()).unwrap();
    let mut log: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            log.push(t.bytes.clone());
            let _ = b.handle_datagram(now, t.remote, t.local, &t.bytes);
            moved = true;
        }
        while let Some(mut t) = b.poll_transmit() {
            tamper(b, &log, &mut t.bytes);
            log.push(t.bytes.clone());
            let _ = a.handle_datagram(now, t.remote, t.local, &t.bytes);
            moved = true;
        }
        if !moved {
            return log;
        }
    }
}

fn no_tamper() -> impl FnMut(&Peer<Rng>, &[Vec<u8>], &mut Vec<u8>) {
    |_, _, _| {}
}

/// The keys of B's ISAKMP SA, as it exported them.
struct Keys {
    hash: HashAlg,
    cipher: EncryptionAlg,
    skeyid_a: Vec<u8>,
    enc_key: Vec<u8>,
    p1_iv: Vec<u8>,
}

fn keys(p: &Peer<Rng>) -> Keys {
    let s = p.export_state(&WallClock::read()).isakmp.expect("ISAKMP SA");
    Keys {
        hash: HashAlg::from_value(u64::from(s.hash)).unwrap(),
        cipher: EncryptionAlg::from_key_bits(u64::from(s.cipher_bits)).unwrap(),
        skeyid_a: s.skeyid_a.0.to_vec(),
        enc_key: s.enc_key.0.to_vec(),
        p1_iv: s.p1_iv,
    }
}

/// A message's payloads, as (type, body).
type Payloads = Vec<(PayloadType, Vec<u8>)>;

/// The last ciphertext block of a message (the next one's IV).
fn last_block(msg: &[u8]) -> Vec<u8> {
    msg[msg.len() - 16..].to_vec()
}

/// The payloads of an encrypted message, decrypted with `iv`.
fn open(k: &Keys, iv: &[u8], msg: &[u8]) -> Payloads {
    let h = Header::parse(msg).unwrap();
    let plain = k.cipher.decrypt(&k.enc_key, iv, &msg[HEADER_LEN..]).unwrap();
    PayloadIter::new(&plain, h.next_payload, true)
        .collect_all()
        .unwrap()
        .into_iter()
        .map(|p| (p.kind, p.body.to_vec()))
        .collect()
}

/// `list` as an encrypted message with `h`'s header, with `iv`.
fn seal(k: &Keys, h: &Header, iv: &[u8], list: &[(PayloadType, Vec<u8>)]) -> Vec<u8> {
    let mut b = MessageBuilder::new(h.icookie, h.rcookie, h.exchange, h.message_id);
    for (kind, body) in list {
        b.push(*kind, body);
    }
    let ct = k.cipher.encrypt(&k.enc_key, iv, b.payloads());
    b.finish_encrypted(&ct)
}

fn is_quick_mode(msg: &[u8]) -> bool {
    Header::parse(msg).unwrap().exchange == ExchangeType::QuickMode
}

/// Opens B's QM2 (its QM1 is the last Quick Mode message in `log`),
/// lets `change` edit the payloads after HASH(2), and seals it again
/// with HASH(2) computed over the result.
fn rewrite_qm2(b: &Peer<Rng>, log: &[Vec<u8>], msg: &mut Vec<u8>, change: &mut dyn FnMut(&mut Payloads)) {
    if !is_quick_mode(msg) {
        return;
    }
    let k = keys(b);
    let h = Header::parse(msg).unwrap();
    let qm1 = log.iter().rev().find(|m| is_quick_mode(m)).unwrap();
    let mut iv = k.hash.hash(&[&k.p1_iv, &h.message_id.to_be_bytes()]);
    iv.truncate(16);
    let ni = open(&k, &iv, qm1).into_iter().find(|(t, _)| *t == PayloadType::Nonce).unwrap().1;
    let iv = last_block(qm1);
    let mut list = open(&k, &iv, msg);
    assert_eq!(list.remove(0).0, PayloadType::Hash);
    change(&mut list);
    let refs: Vec<(PayloadType, &[u8])> = list.iter().map(|(t, b)| (*t, b.as_slice())).collect();
    let (rest, _) = chain(&refs);
    let hash2 = k.hash.prf(&k.skeyid_a, &[&h.message_id.to_be_bytes(), &ni, &rest]);
    list.insert(0, (PayloadType::Hash, hash2.to_vec()));
    *msg = seal(&k, &h, &iv, &list);
}

fn notify(protocol: u8, spi: &[u8], data: &[u8]) -> (PayloadType, Vec<u8>) {
    let n = NotifyPayload { doi: 1, protocol, spi, kind: NotifyType::ResponderLifetime, data };
    (PayloadType::Notify, n.emit())
}

fn esp_notify(seconds: Option<u32>, kilobytes: Option<u32>) -> (PayloadType, Vec<u8>) {
    notify(3, &SPI_B.to_be_bytes(), &LifeDurations { seconds, kilobytes }.emit(LIFE_IPSEC))
}

/// A's child, B's child (if it got QM3), and A's other events.
fn outcome(a: &mut Peer<Rng>, b: &mut Peer<Rng>) -> (ChildSa, Option<ChildSa>, Vec<Event>) {
    let mut child = None;
    let mut rest = Vec::new();
    while let Some(e) = a.poll_event() {
        match e {
            Event::ChildSaUp(c) => child = Some(*c),
            other => rest.push(other),
        }
    }
    let theirs = std::iter::from_fn(|| b.poll_event()).find_map(|e| match e {
        Event::ChildSaUp(c) => Some(*c),
        _ => None,
    });
    (child.expect("A's child is up"), theirs, rest)
}

fn ignored(ev: &[Event]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e {
            Event::LifetimeIgnored { detail, .. } => Some(detail.clone()),
            _ => None,
        })
        .collect()
}

/// The RESPONDER-LIFETIME notifications in B's QM2, decoded.
fn qm2_notifies(b: &Peer<Rng>, log: &[Vec<u8>]) -> Vec<(u8, Vec<u8>, LifeDurations)> {
    let k = keys(b);
    let qm: Vec<&Vec<u8>> = log.iter().filter(|m| is_quick_mode(m)).collect();
    let (qm1, qm2) = (qm[0], qm[1]);
    open(&k, &last_block(qm1), qm2)
        .into_iter()
        .filter(|(t, _)| *t == PayloadType::Notify)
        .map(|(_, body)| {
            let n = NotifyPayload::parse(&body).unwrap();
            assert_eq!(n.kind, NotifyType::ResponderLifetime);
            (n.protocol, n.spi.to_vec(), LifeDurations::parse(n.data, &[LIFE_IPSEC]).unwrap())
        })
        .collect()
}

/// The responder says RESPONDER-LIFETIME exactly when it lowered the
/// lifetime proposed, for its own SPI, with the whole lifetime agreed.
#[test]
fn responder_notifies_exactly_when_it_lowers() {
    let cases = [
        // (A proposes, B allows, notify expected, agreed)
        (life(7200, 0), life(3600, 0), Some((Some(3600), None)), life(3600, 0)),
        (life(3600, 0), life(3600, 0), None, life(3600, 0)),
        (life(1800, 0), life(3600, 0), None, life(1800, 0)),
        (life(3600, 0), life(3600, 50_000), Some((Some(3600), Some(50_000))), life(3600, 50_000)),
        (life(3600, 80_000), life(7200, 50_000), Some((Some(3600), Some(50_000))), life(3600, 50_000)),
        (life(3600, 20_000), life(7200, 50_000), None, life(3600, 20_000)),
    ];
    for (la, lb, want, agreed) in cases {
        let (mut a, mut b) = peers(la, lb);
        let log = negotiate(&mut a, &mut b, &mut no_tamper());
        let got = qm2_notifies(&b, &log);
        match want {
            None => assert!(got.is_empty(), "{la:?} vs {lb:?}: {got:?}"),
            Some((seconds, kilobytes)) => assert_eq!(
                got,
                [(3, SPI_B.to_be_bytes().to_vec(), LifeDurations { seconds, kilobytes })],
                "{la:?} vs {lb:?}"
            ),
        }
        let (ca, cb, ev) = outcome(&mut a, &mut b);
        assert_eq!(ca.lifetime, agreed, "{la:?} vs {lb:?}");
        assert_eq!(cb.expect("B's child is up").lifetime, agreed);
        assert!(ignored(&ev).is_empty());
        assert_eq!(a.discards().get(Discard::LifetimeLonger), 0);
    }
}

/// A shorter lifetime in the notification alone (the SA payload keeps
/// the one proposed) is adopted, seconds and kilobytes each; the child
/// handed over carries it.
#[test]
fn shorter_notified_lifetime_is_adopted() {
    let (mut a, mut b) = peers(life(3600, 100_000), life(3600, 100_000));
    let mut tamper = |b: &Peer<Rng>, log: &[Vec<u8>], msg: &mut Vec<u8>| {
        rewrite_qm2(b, log, msg, &mut |list| list.push(esp_notify(Some(600), Some(2000))))
    };
    negotiate(&mut a, &mut b, &mut tamper);
    let (ca, _, ev) = outcome(&mut a, &mut b);
    assert_eq!(ca.lifetime, life(600, 2000));
    assert!(ignored(&ev).is_empty(), "{ev:?}");
    assert_eq!(a.discards().get(Discard::LifetimeNotifyMalformed), 0);
}

/// A longer one is not adopted: counted and told, the child keeps what
/// was proposed; a shorter measure in the same notification still is.
#[test]
fn longer_notified_lifetime_is_ignored_and_counted() {
    let (mut a, mut b) = peers(life(3600, 100_000), life(3600, 100_000));
    let mut tamper = |b: &Peer<Rng>, log: &[Vec<u8>], msg: &mut Vec<u8>| {
        rewrite_qm2(b, log, msg, &mut |list| {
            list.push(esp_notify(Some(86_400), None));
            list.push(esp_notify(Some(1200), Some(500_000)));
        })
    };
    negotiate(&mut a, &mut b, &mut tamper);
    let (ca, _, ev) = outcome(&mut a, &mut b);
    assert_eq!(ca.lifetime, life(1200, 100_000));
    assert_eq!(
        ignored(&ev),
        [
            "RESPONDER-LIFETIME of 86400 s where 3600 s was proposed: longer, not adopted",
            "RESPONDER-LIFETIME of 500000 KB where 100000 KB was proposed: longer, not adopted",
        ]
    );
    assert_eq!(a.discards().get(Discard::LifetimeLonger), 2);
}

/// A responder whose SA payload carries a longer lifetime than proposed
/// gets the same treatment.
#[test]
fn longer_lifetime_in_the_sa_payload_is_ignored_and_counted() {
    let (mut a, mut b) = peers(life(3600, 0), life(3600, 0));
    let mut tamper = |b: &Peer<Rng>, log: &[Vec<u8>], msg: &mut Vec<u8>| {
        rewrite_qm2(b, log, msg, &mut |list| {
            let sa = &mut list.iter_mut().find(|(t, _)| *t == PayloadType::Sa).unwrap().1;
            // SA Life Duration 3600 (TV) becomes 7200.
            let at = sa.windows(4).position(|w| w == [0x80, 0x02, 0x0e, 0x10]).unwrap();
            sa[at + 2..at + 4].copy_from_slice(&7200u16.to_be_bytes());
        })
    };
    negotiate(&mut a, &mut b, &mut tamper);
    let (ca, _, ev) = outcome(&mut a, &mut b);
    assert_eq!(ca.lifetime, life(3600, 0));
    assert_eq!(
        ignored(&ev),
        ["SA payload lifetime of 7200 s where 3600 s was proposed: longer, not adopted"]
    );
    assert_eq!(a.discards().get(Discard::LifetimeLonger), 1);
}

/// Malformed notifications, or ones for another SA, are counted and
/// ignored: the exchange completes with the lifetime of the SA payload.
#[test]
fn malformed_notify_is_counted_and_the_exchange_completes() {
    let spi = SPI_B.to_be_bytes();
    let seconds_600 = LifeDurations { seconds: Some(600), kilobytes: None }.emit(LIFE_IPSEC);
    let cases: Vec<((PayloadType, Vec<u8>), &str)> = vec![
        // A TLV duration whose length runs past the data.
        (notify(3, &spi, &[0x80, 1, 0, 1, 0, 2, 0, 8, 0, 0, 2, 0x58]), "has length 8, but 4 bytes remain"),
        (notify(3, &spi, &[0x80, 1, 0, 3, 0x80, 2, 2, 0x58]), "SA life type: unsupported value 3"),
        (notify(3, &spi, &[0x80, 1, 0, 1, 0x80, 2, 0, 0]), "zero life duration"),
        (notify(3, &spi[..3], &seconds_600), "SPI size 3 (an ESP SPI has 4 bytes)"),
        (notify(3, &[0xde, 0xad, 0xbe, 0xef], &seconds_600), "names SPI deadbeef, not one of this exchange"),
        (notify(1, &spi, &seconds_600), "protocol 1 where the SA is protocol 3"),
        ((PayloadType::Notify, vec![0, 0, 0, 1, 3, 4, 0x60, 0]), "truncated"),
    ];
    for (n, want) in cases {
        let (mut a, mut b) = peers(life(3600, 0), life(3600, 0));
        let mut tamper = |b: &Peer<Rng>, log: &[Vec<u8>], msg: &mut Vec<u8>| {
            rewrite_qm2(b, log, msg, &mut |list| list.push(n.clone()))
        };
        negotiate(&mut a, &mut b, &mut tamper);
        let (ca, _, ev) = outcome(&mut a, &mut b);
        assert_eq!(ca.lifetime, life(3600, 0), "{want}");
        let got = ignored(&ev);
        assert_eq!(got.len(), 1, "{want}: {got:?}");
        assert!(
            got[0].starts_with("RESPONDER-LIFETIME ignored: ") && got[0].contains(want),
            "{want}: {got:?}"
        );
        assert_eq!(a.discards().get(Discard::LifetimeNotifyMalformed), 1, "{want}");
    }
}

/// Main Mode: a RESPONDER-LIFETIME in MM6 for the ISAKMP SA shortens its
/// lifetime (so its rekey and expiry), and the exported state carries
/// it; a longer one is counted and not adopted.
#[test]
fn main_mode_notify_shortens_the_isakmp_sa() {
    for (told, want, longer) in [(600, 600, 0), (86_400, 28_800, 1)] {
        let (mut a, mut b) = peers(life(3600, 0), life(3600, 0));
        assert_eq!(a.config().ike_lifetime, 28_800);
        let mut tamper = |b: &Peer<Rng>, log: &[Vec<u8>], msg: &mut Vec<u8>| {
            let h = Header::parse(msg).unwrap();
            if h.exchange != ExchangeType::MainMode || !h.encrypted() {
                return;
            }
            let k = keys(b);
            let mm5 = log.last().unwrap();
            let iv = last_block(mm5);
            let mut list = open(&k, &iv, msg);
            let mut cookies = h.icookie.to_vec();
            cookies.extend_from_slice(&h.rcookie);
            let data = LifeDurations { seconds: Some(told), kilobytes: Some(1000) }.emit(LIFE_ISAKMP);
            list.push(notify(1, &cookies, &data));
            *msg = seal(&k, &h, &iv, &list);
        };
        negotiate(&mut a, &mut b, &mut tamper);
        // The lifetime the ISAKMP SA's rekey and expiry are timed from,
        // as persisted.
        let state = a.export_state(&WallClock::read());
        assert_eq!(state.isakmp.unwrap().lifetime, want, "{told}");
        assert_eq!(a.discards().get(Discard::LifetimeLonger), longer, "{told}");
        assert_eq!(a.discards().get(Discard::LifetimeNotifyMalformed), 0, "{told}");
    }
}
