//! Fuzz entry points: what `fuzz/` targets call, and what this
//! crate's tests replay from the kept corpora. Not an API for anything else.
//!
//! [`ike_message`] takes one input two ways:
//!
//! 1. as one ISAKMP message read with [`crate::wire`]: the header, the
//!    payload chain (clear and padded), and every payload body through
//!    every payload view, each round-tripped through its `emit` where the
//!    format allows;
//! 2. as a sequence of datagrams (split by each header's length field)
//!    given to a [`Peer`] with a fixed configuration and a fixed
//!    [`Random`]: a responder when the first datagram's responder cookie
//!    is zero, else an initiator that has sent its MM1. The peers are
//!    deterministic, so a recorded exchange ([`exchange`]) replays validly
//!    (MM3 and MM5 of the corpus decrypt and authenticate), and mutations
//!    of it reach every state. Everything the peer sends must parse.
//!
//! Never panics, whatever the bytes.

// A fuzz body asserts its invariants: a failed one is a finding.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use esprit_policy::ProxyId;
use esprit_testrng::TestRng;

use crate::wire::{
    emit_sa, Attribute, AttributeValue, DeletePayload, ExchangeType, Header, IdPayload, IdType,
    LifeDurations, MessageBuilder, NotifyPayload, NotifyType, PayloadIter, PayloadType, ProposalRepr,
    RawPayload, SaPayload, TransformRepr, DOI_IPSEC, HEADER_LEN, LIFE_IPSEC, LIFE_ISAKMP,
};
use crate::{DhGroup, EncryptionAlg, HashAlg, Identity, IkeProposal, Peer, PeerConfig, Random, Suite};

/// Deterministic randomness: the test generator's bytes; SPIs `base + n`.
#[derive(Debug, Clone)]
pub struct FuzzRng {
    bytes: TestRng,
    spi_base: u32,
    spis: u32,
}

impl Random for FuzzRng {
    fn fill(&mut self, dest: &mut [u8]) {
        self.bytes.fill_bytes(dest);
    }

    fn spi(&mut self) -> u32 {
        self.spis += 1;
        self.spi_base + self.spis
    }
}

/// The initiator's address.
pub const INITIATOR: &str = "198.51.100.1:500";
/// The responder's address.
pub const RESPONDER: &str = "203.0.113.1:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn proxy_id(s: &str) -> ProxyId {
    s.parse().unwrap()
}

/// The fuzzed peers' configuration, `(initiator, responder)`: cheap DH
/// groups (ECP-256 first, MODP-1024 as the second proposal, so both
/// families are reachable without making every input cost milliseconds),
/// PFS, DPD, one proxy-ID.
pub fn configs() -> (PeerConfig, PeerConfig) {
    let (a, b) = (addr(INITIATOR), addr(RESPONDER));
    let mut ca = PeerConfig::new("gw-b", a, b, b"fuzz-psk-0123456789");
    let mut cb = PeerConfig::new("gw-a", b, a, b"fuzz-psk-0123456789");
    for c in [&mut ca, &mut cb] {
        c.ike_proposals = vec![
            IkeProposal { cipher: EncryptionAlg::Aes128Cbc, hash: HashAlg::Sha1, group: DhGroup::Ecp256 },
            IkeProposal { cipher: EncryptionAlg::Aes256Cbc, hash: HashAlg::Sha256, group: DhGroup::Modp1024 },
        ];
        c.esp_suites = vec![Suite::Aes128Gcm16, Suite::Aes256CbcSha256];
        c.pfs = Some(DhGroup::Ecp256);
        c.dpd_delay = Some(Duration::from_secs(30));
    }
    // The responder answers Aggressive Mode only where configured.
    cb.aggressive = true;
    ca.proxy_ids = vec![proxy_id("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY")];
    cb.proxy_ids = vec![
        proxy_id("local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY"),
        proxy_id("local-ip 10.2.2.0/24 remote-ip 10.1.0.0/16 protocol tcp dst-port 443"),
    ];
    (ca, cb)
}

fn initiator_rng() -> FuzzRng {
    FuzzRng { bytes: TestRng::new(0x1234_5678_9abc_def1), spi_base: 0xa100_0000, spis: 0 }
}

fn responder_rng() -> FuzzRng {
    FuzzRng { bytes: TestRng::new(0x0fed_cba9_8765_4321), spi_base: 0xb200_0000, spis: 0 }
}

/// The fuzzed responder.
pub fn responder() -> Peer<FuzzRng> {
    Peer::new(configs().1, responder_rng())
}

/// The fuzzed initiator, its MM1 sent (and drained).
pub fn initiator(now: Instant) -> Peer<FuzzRng> {
    let (ca, _) = configs();
    let pid = ca.proxy_ids[0];
    let mut a = Peer::new(ca, initiator_rng());
    a.initiate_child(now, pid).unwrap();
    while a.poll_transmit().is_some() {}
    a
}

/// A recorded exchange between the fuzzed initiator and responder: Main
/// Mode (or Aggressive Mode), one Quick Mode with PFS, a DPD probe and its
/// answer, then a Delete of the child. `(from_initiator, bytes)` in order.
pub fn exchange(aggressive: bool) -> Vec<(bool, Vec<u8>)> {
    let now = Instant::now();
    let (mut ca, cb) = configs();
    if aggressive {
        ca.aggressive = true;
        ca.local_id = Identity::Fqdn("dialup.example".into());
    }
    let pid = ca.proxy_ids[0];
    let mut a = Peer::new(ca, initiator_rng());
    let mut b = Peer::new(cb, responder_rng());
    let mut log = Vec::new();
    a.initiate_child(now, pid).unwrap();
    pump(now, &mut a, &mut b, &mut log);
    // DPD: idle past the delay; A probes, B answers.
    let later = now + Duration::from_secs(31);
    a.handle_timeout(later);
    pump(later, &mut a, &mut b, &mut log);
    let mut spi = None;
    while let Some(e) = a.poll_event() {
        if let crate::Event::ChildSaUp(c) = e {
            spi = Some(c.spi_in);
        }
    }
    if let Some(spi) = spi {
        a.delete_child(later, spi).unwrap();
        pump(later, &mut a, &mut b, &mut log);
    }
    log
}

fn pump(now: Instant, a: &mut Peer<FuzzRng>, b: &mut Peer<FuzzRng>, log: &mut Vec<(bool, Vec<u8>)>) {
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            let _ = b.handle_datagram(now, t.remote, t.local, &t.bytes);
            log.push((true, t.bytes));
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            let _ = a.handle_datagram(now, t.remote, t.local, &t.bytes);
            log.push((false, t.bytes));
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// Both ways of the module doc on one input.
pub fn ike_message(data: &[u8]) {
    parse_message(data);
    drive_peer(data);
}

/// Splits `data` into datagrams by the ISAKMP length field: a plausible
/// length (a whole header, within the bytes left) takes that much, anything
/// else takes the rest.
pub fn datagrams(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let len = match data.get(24..28) {
            Some(l) => u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize,
            None => data.len(),
        };
        let take = if (HEADER_LEN..=data.len()).contains(&len) { len } else { data.len() };
        out.push(&data[..take]);
        data = &data[take..];
    }
    out
}

/// Way 2: the datagrams to a responder or to an initiator, then time.
pub fn drive_peer(data: &[u8]) {
    let now = Instant::now();
    let to_responder = data.get(8..16).is_none_or(|c| c == [0u8; 8]);
    let (mut peer, local, remote) = if to_responder {
        (responder(), addr(RESPONDER), addr(INITIATOR))
    } else {
        (initiator(now), addr(INITIATOR), addr(RESPONDER))
    };
    for d in datagrams(data) {
        // Errors are the peer refusing the datagram: fine.
        let _ = peer.handle_datagram(now, local, remote, d);
        drain(&mut peer);
    }
    // Retransmissions, DPD, give-ups.
    for secs in [3, 31, 100, 1000] {
        let t = now + Duration::from_secs(secs);
        peer.handle_timeout(t);
        drain(&mut peer);
        if let Some(next) = peer.poll_timeout() {
            assert!(next >= now, "deadline in the past");
        }
    }
}

/// Takes what the peer sends (it must parse: header, and the payload chain
/// when in clear) and its events.
fn drain(peer: &mut Peer<FuzzRng>) {
    while let Some(t) = peer.poll_transmit() {
        // A NAT-keepalive (RFC 3948 §2.3) is one octet, not ISAKMP.
        if t.is_nat_keepalive() {
            assert_eq!(t.bytes, crate::peer::NAT_KEEPALIVE);
            continue;
        }
        let h = Header::parse(&t.bytes).unwrap();
        if !h.encrypted() {
            PayloadIter::new(&t.bytes[HEADER_LEN..], h.next_payload, false).collect_all().unwrap();
        }
        parse_message(&t.bytes);
    }
    while let Some(e) = peer.poll_event() {
        let _ = format!("{e:?}");
    }
}

/// Way 1: `data` as one ISAKMP message, read with every view.
pub fn parse_message(data: &[u8]) {
    let header = Header::parse(data);
    if let Ok(h) = &header {
        let mut out = [0u8; HEADER_LEN];
        h.emit(&mut out);
        // Everything but the minor version (emit writes 1.0).
        assert_eq!(out[..17], data[..17]);
        assert_eq!(out[18..], data[18..HEADER_LEN]);
        assert_eq!(h.length as usize, data.len());
        assert_eq!(ExchangeType::from_value(h.exchange.value()), h.exchange);
    }
    // The chain after the header, whether or not the header parsed.
    let (Some(body), Some(&first)) = (data.get(HEADER_LEN..), data.get(16)) else { return };
    for padded in [false, true] {
        for p in PayloadIter::new(body, first, padded) {
            let Ok(p) = p else { break };
            payload(&p);
        }
    }
    // A clear, canonical message is rebuilt byte for byte by the builder.
    if let Ok(h) = header {
        let canonical = h.flags == 0 && data[17] == 0x10;
        if let (true, Ok(payloads)) = (canonical, PayloadIter::new(body, first, false).collect_all()) {
            if payloads.iter().all(|p| p.raw[1] == 0) {
                let mut b = MessageBuilder::new(h.icookie, h.rcookie, h.exchange, h.message_id);
                for p in &payloads {
                    b.push(p.kind, p.body);
                }
                assert_eq!(b.finish(), data);
            }
        }
    }
}

/// Every view on one payload body, whatever its type: each may be handed
/// anything by a confused or hostile peer.
fn payload(p: &RawPayload<'_>) {
    assert_eq!(p.raw.len(), p.body.len() + 4);
    assert_eq!(PayloadType::from_value(p.kind.value()), p.kind);
    let body = p.body;
    if let Ok(sa) = SaPayload::parse(body) {
        sa_round_trip(&sa);
    }
    if let Ok(id) = IdPayload::parse(body) {
        assert_eq!(IdType::from_value(id.id_type.value()), id.id_type);
        assert_eq!(id.emit(), body);
    }
    if let Ok(n) = NotifyPayload::parse(body) {
        assert_eq!(NotifyType::from_value(n.kind.value()), n.kind);
        assert_eq!(n.emit(), body);
        // As RESPONDER-LIFETIME data: what parses is written and read back
        // the same.
        if let Ok(d) = LifeDurations::parse(n.data, &[LIFE_IPSEC, LIFE_ISAKMP]) {
            assert_eq!(LifeDurations::parse(&d.emit(LIFE_IPSEC), &[LIFE_IPSEC]), Ok(d));
        }
    }
    if let Ok(d) = DeletePayload::parse(body) {
        // Emit writes the IPsec DOI, and takes the SPI size from the first
        // SPI: a Delete of no SPI (accepted, it deletes nothing) comes back
        // with SPI size 0. Otherwise the rest is the body.
        if !d.spis.is_empty() {
            let e = d.emit();
            assert_eq!(e[4..], body[4..]);
            if body[..4] == DOI_IPSEC.to_be_bytes() {
                assert_eq!(e, body);
            }
        }
    }
    if let Ok(attrs) = Attribute::parse_all(body) {
        for a in &attrs {
            let _ = a.as_u64();
        }
    }
}

/// An SA payload whose attribute values fit 32 bits is emitted again and
/// read back the same.
fn sa_round_trip(sa: &SaPayload<'_>) {
    let mut reprs = Vec::new();
    for p in &sa.proposals {
        let mut transforms = Vec::new();
        for t in &p.transforms {
            let mut attributes = Vec::new();
            for a in &t.attributes {
                let _ = t.attr(a.kind);
                let v = match a.value {
                    AttributeValue::Basic(v) => u32::from(v),
                    // emit_u32 writes 4-byte TLVs only for values above 16 bits.
                    AttributeValue::Variable(b) if b.len() == 4 => {
                        let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        if v <= 0xffff {
                            return;
                        }
                        v
                    }
                    AttributeValue::Variable(_) => return,
                };
                attributes.push((a.kind, v));
            }
            transforms.push(TransformRepr { number: t.number, id: t.id, attributes });
        }
        reprs.push(ProposalRepr { number: p.number, protocol: p.protocol, spi: p.spi.to_vec(), transforms });
    }
    let bytes = emit_sa(&reprs);
    let again = SaPayload::parse(&bytes).unwrap();
    assert_eq!(again.proposals, sa.proposals);
}
