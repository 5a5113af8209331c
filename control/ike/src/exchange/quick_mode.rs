//! Quick Mode (RFC 2409 §5.5): one child SA pair per proxy-ID.
//!
//! ```text
//! Initiator                                              Responder
//! QM1  HDR*, HASH(1), SA, Ni [, KE] , IDci, IDcr     -->
//!                                  <-- QM2  HDR*, HASH(2), SA, Nr [, KE], IDci, IDcr
//!                                           [, N(RESPONDER-LIFETIME)]
//! QM3  HDR*, HASH(3)                                 -->
//! ```
//!
//! Lifetimes: the responder answers with the lower of the proposed
//! lifetime and its own, and when that is lower than proposed also says
//! so in a RESPONDER-LIFETIME notification naming its SPI (RFC 2407
//! §4.6.3.1; racoon does the same, strongSwan takes the SA payload's and
//! passes over the notification). The initiator adopts a shorter
//! lifetime from either, never a longer one (`responder_lifetime`).
//!
//! IVs: hash(last phase-1 block | M-ID), then chained within the exchange
//! (RFC 2409 Appendix B). The initiator retransmits QM1 until QM2; the
//! responder retransmits QM2 until QM3. The initiator reports the child up
//! when it sends QM3. The responder announces the inbound half when it
//! sends QM2 (`ChildSaInbound`: the initiator may send on the new SA as
//! soon as it has QM2) and the whole child when QM3 arrives.
//!
//! Retransmissions are answered, never reprocessed (RFC 2408 §5), per
//! exchange and for as long as the other side may send them, however many
//! Quick Modes run at once: a copy of QM1 gets the responder's QM2 again
//! while it waits for QM3, and a copy of QM2 gets the initiator's QM3
//! again ([`FinishedQuickModes`]) for the whole retransmission schedule.
//! QM3 is never answered, so a lost QM3 is repaired only this way: were
//! the copy dropped, the responder would time out a child that the
//! initiator has up and sends on.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use esprit_policy::{Prefix, ProxyId, Service};
use zeroize::Zeroizing;

use crate::child::{ChildSa, DirectionKeys, UdpEncap};
use crate::config::{group_name, Lifetime};
use crate::crypto::ct_eq;
use crate::crypto::dh::DhSecret;
use crate::crypto::keys::Phase1Keys;
use crate::discard::Discard;
use crate::error::{Error, ErrorKind};
use crate::event::{Event, Exchange, Reason};
use crate::exchange::phase1::{find, find_all, payloads, unknown_payload};
use crate::exchange::responder_lifetime::{durations, shorten, NamedSa};
use crate::ike_sa::{open, seal};
use crate::peer::{ChildRecord, Peer, Pending, NONCE_RANGE};
use crate::proxy;
use crate::wire::{
    chain, emit_sa, ExchangeType, Header, IdPayload, MessageBuilder, NotifyPayload, NotifyType, PayloadType,
    ProposalRepr, RawPayload, SaPayload, Transform, TransformRepr, DOI_IPSEC, LIFE_IPSEC,
};
use crate::Suite;
use crate::{DhGroup, Random};

const PROTO_ESP: u8 = 3;

/// Phase-2 attribute types (RFC 2407 §4.5).
mod attr {
    pub(crate) const LIFE_TYPE: u16 = 1;
    pub(crate) const LIFE_DURATION: u16 = 2;
    pub(crate) const GROUP: u16 = 3;
    pub(crate) const ENCAPSULATION: u16 = 4;
    pub(crate) const AUTH: u16 = 5;
    pub(crate) const KEY_LENGTH: u16 = 6;
}
/// Encapsulation modes: Tunnel (RFC 2407), UDP-Encapsulated-Tunnel
/// (RFC 3947 §5.1) and its draft value.
const ENCAP_TUNNEL: u32 = 1;
const ENCAP_UDP_TUNNEL: u32 = 3;
const ENCAP_UDP_TUNNEL_DRAFT: u32 = 61443;

/// A Quick Mode in progress.
#[derive(Debug)]
pub(crate) struct QuickMode {
    pub msgid: u32,
    pub initiator: bool,
    pub iv: Vec<u8>,
    /// Initiator: the proxy-ID asked for. Responder: the one accepted.
    pub proxy_id: ProxyId,
    pub spi_in: u32,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub dh: Option<DhSecret>,
    pub pending: Option<Pending>,
    /// Responder: the child, reported when QM3 arrives.
    pub child: Option<ChildSa>,
    /// Responder: the digest of the QM1 answered (a copy of it gets the
    /// same QM2 again, from `pending`).
    pub qm1: Option<[u8; 32]>,
}

/// Quick Modes we initiated and finished: our QM3 for each, sent again to
/// a copy of the responder's QM2 (its QM3 was lost) until the responder
/// has given up retransmitting. Bounded by [`FinishedQuickModes::CAPACITY`]
/// (about 130 bytes each), so thousands of children at once are covered
/// and a flood of them costs a bounded amount of memory.
#[derive(Debug, Default)]
pub(crate) struct FinishedQuickModes {
    by_msgid: HashMap<u32, Finished>,
    /// Message IDs by when they are forgotten, oldest first.
    order: VecDeque<(Instant, u32)>,
}

#[derive(Debug)]
struct Finished {
    qm2: [u8; 32],
    qm3: Vec<u8>,
}

impl FinishedQuickModes {
    /// 16,384 exchanges: 40 s of children at 400 per second.
    const CAPACITY: usize = 16_384;

    /// Remembers that QM2 `qm2` of exchange `msgid` was answered with
    /// `qm3`, until `until`.
    pub(crate) fn insert(&mut self, now: Instant, until: Instant, msgid: u32, qm2: &[u8], qm3: Vec<u8>) {
        self.forget_expired(now);
        if self.order.len() == Self::CAPACITY {
            if let Some((_, old)) = self.order.pop_front() {
                self.by_msgid.remove(&old);
            }
        }
        if self.by_msgid.insert(msgid, Finished { qm2: digest(qm2), qm3 }).is_none() {
            self.order.push_back((until, msgid));
        }
    }

    /// Whether exchange `msgid` is one of ours that finished.
    pub(crate) fn contains(&self, msgid: u32) -> bool {
        self.by_msgid.contains_key(&msgid)
    }

    /// Our QM3 if `bytes` is a copy of the QM2 that exchange `msgid`
    /// finished with (and it is not too late for one).
    pub(crate) fn answer(&mut self, now: Instant, msgid: u32, bytes: &[u8]) -> Option<Vec<u8>> {
        self.forget_expired(now);
        let f = self.by_msgid.get(&msgid)?;
        (f.qm2 == digest(bytes)).then(|| f.qm3.clone())
    }

    pub(crate) fn clear(&mut self) {
        self.by_msgid.clear();
        self.order.clear();
    }

    fn forget_expired(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, old)) = self.order.pop_front() {
                self.by_msgid.remove(&old);
            }
        }
    }
}

/// How long a side retransmits before it gives up: `initial`, doubled at
/// each of `tries` retransmissions, and the wait after the last one (2 s
/// and 5 tries: 126 s). The peer's schedule is taken to be ours.
fn retransmission_schedule(r: &crate::config::Retransmit) -> Duration {
    r.initial.saturating_mul((1u32 << r.tries.min(20)).saturating_mul(2) - 1)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// An ESP transform as read from the wire.
#[derive(Debug, Clone, Copy)]
struct EspChoice {
    suite: Suite,
    group: Option<DhGroup>,
    encap: u32,
    lifetime: Lifetime,
}

fn read_esp(t: &Transform<'_>) -> Result<EspChoice, String> {
    let mut lifetime = Lifetime { seconds: 0, kilobytes: 0 };
    let mut life_type = 1;
    for a in &t.attributes {
        match a.kind {
            attr::LIFE_TYPE => life_type = a.as_u64().unwrap_or(0),
            attr::LIFE_DURATION => {
                let v = a.as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32;
                if life_type == 1 {
                    lifetime.seconds = v;
                } else if life_type == 2 {
                    lifetime.kilobytes = v;
                }
            }
            _ => {}
        }
    }
    let group_n = t.attr(attr::GROUP);
    let suite = Suite::from_ikev1_transform(t.id, t.attr(attr::KEY_LENGTH), t.attr(attr::AUTH));
    let name = match suite {
        Some(s) => s.name().to_owned(),
        None => format!(
            "esp-transform{}-keylen{}-auth{}",
            t.id,
            t.attr(attr::KEY_LENGTH).unwrap_or(0),
            t.attr(attr::AUTH).unwrap_or(0)
        ),
    };
    let group = match group_n {
        None => None,
        Some(n) => Some(DhGroup::from_number(n).ok_or_else(|| format!("{name}-group{n}"))?),
    };
    let encap = t.attr(attr::ENCAPSULATION).unwrap_or(u64::from(ENCAP_TUNNEL)) as u32;
    match suite {
        Some(suite) if matches!(encap, ENCAP_TUNNEL | ENCAP_UDP_TUNNEL | ENCAP_UDP_TUNNEL_DRAFT) => {
            Ok(EspChoice { suite, group, encap, lifetime })
        }
        _ => Err(format!("{name}-encap{encap}")),
    }
}

fn esp_transform(number: u8, c: &EspChoice) -> TransformRepr {
    let mut a = Vec::new();
    if c.lifetime.seconds > 0 {
        a.push((attr::LIFE_TYPE, 1));
        a.push((attr::LIFE_DURATION, c.lifetime.seconds));
    }
    if c.lifetime.kilobytes > 0 {
        a.push((attr::LIFE_TYPE, 2));
        a.push((attr::LIFE_DURATION, c.lifetime.kilobytes));
    }
    if let Some(g) = c.group {
        a.push((attr::GROUP, u32::from(g.number())));
    }
    a.push((attr::ENCAPSULATION, c.encap));
    if let Some(auth) = c.suite.ikev1_auth_alg() {
        a.push((attr::AUTH, u32::from(auth)));
    }
    a.push((attr::KEY_LENGTH, u32::from(c.suite.key_bits())));
    TransformRepr { number, id: c.suite.ikev1_transform_id(), attributes: a }
}

fn describe(c: &EspChoice) -> String {
    match c.group {
        Some(g) => format!("{}-{}", c.suite.name(), group_name(g)),
        None => c.suite.name().to_owned(),
    }
}

/// The payloads after the HASH payload, as hashed: from the end of the
/// first (HASH) payload to the end of the last one (padding excluded).
fn after_hash<'a>(plain: &'a [u8], list: &[RawPayload<'a>]) -> Option<(&'a [u8], &'a [u8])> {
    let first = list.first().filter(|p| p.kind == PayloadType::Hash)?;
    let start = first.raw.len();
    let end: usize = list.iter().map(|p| p.raw.len()).sum();
    Some((first.body, plain.get(start..end)?))
}

fn split_keys(km: Zeroizing<Vec<u8>>, suite: Suite) -> DirectionKeys {
    let e = suite.encr_key_len();
    DirectionKeys {
        encryption: Zeroizing::new(km[..e].to_vec()),
        integrity: Zeroizing::new(km[e..].to_vec()),
    }
}

impl<R: Random> Peer<R> {
    fn new_message_id(&mut self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b);
            let id = u32::from_be_bytes(b);
            let used = self.ike.as_ref().is_some_and(|i| i.msgids.contains(id));
            if id != 0 && !used && !self.quick.iter().any(|q| q.msgid == id) {
                if let Some(ike) = self.ike.as_mut() {
                    ike.msgids.insert(id);
                }
                return id;
            }
        }
    }

    /// QM1 for `proxy_id`.
    pub(crate) fn start_quick_mode(&mut self, now: Instant, proxy_id: ProxyId) -> Result<(), Error> {
        let msgid = self.new_message_id();
        let ex = Exchange::QuickMode(msgid);
        let (l, r) = proxy::selectors(&proxy_id)
            .map_err(|why| self.err(ex, ErrorKind::ProxyIdNotExpressible(proxy_id.to_string(), why)))?;
        let Some(ike) = self.ike.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoIkeSa));
        };
        let mut iv = ike.keys.exchange_iv(&ike.p1_iv, msgid);
        let encap = if ike.nat { ENCAP_UDP_TUNNEL } else { ENCAP_TUNNEL };
        let (icookie, rcookie) = (ike.icookie, ike.rcookie);
        let spi_in = self.rng.spi();
        let ni = self.random(self.nonce_len);
        let dh = self.cfg.pfs.map(|g| DhSecret::generate(g, &mut self.rng));
        let transforms = self
            .cfg
            .esp_suites
            .iter()
            .enumerate()
            .map(|(i, s)| {
                esp_transform(
                    i as u8 + 1,
                    &EspChoice { suite: *s, group: self.cfg.pfs, encap, lifetime: self.cfg.child_lifetime },
                )
            })
            .collect();
        let sa = emit_sa(&[ProposalRepr {
            number: 1,
            protocol: PROTO_ESP,
            spi: spi_in.to_be_bytes().to_vec(),
            transforms,
        }]);
        let (idci, idcr) = (proxy::encode(&l), proxy::encode(&r));
        let mut rest: Vec<(PayloadType, &[u8])> = vec![(PayloadType::Sa, &sa), (PayloadType::Nonce, &ni)];
        if let Some(dh) = &dh {
            rest.push((PayloadType::KeyExchange, dh.public()));
        }
        rest.push((PayloadType::Id, &idci));
        rest.push((PayloadType::Id, &idcr));
        let Some(ike) = self.ike.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoIkeSa));
        };
        let (rest_bytes, _) = chain(&rest);
        let hash = ike.keys.qm_hash1(msgid, &rest_bytes);
        let mut b = MessageBuilder::new(icookie, rcookie, ExchangeType::QuickMode, msgid);
        b.push(PayloadType::Hash, &hash);
        for (k, body) in &rest {
            b.push(*k, body);
        }
        let out = seal(&ike.keys, &mut iv, b);
        let pending = self.send(now, out, true);
        self.quick.push(QuickMode {
            msgid,
            initiator: true,
            iv,
            proxy_id,
            spi_in,
            ni,
            nr: Vec::new(),
            dh,
            pending,
            child: None,
            qm1: None,
        });
        Ok(())
    }

    pub(crate) fn on_quick_mode(&mut self, now: Instant, h: &Header, bytes: &[u8]) -> Result<(), Error> {
        let ex = Exchange::QuickMode(h.message_id);
        let Some(ike) = self.ike.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoIkeSa));
        };
        if ike.icookie != h.icookie || ike.rcookie != h.rcookie {
            return Err(self.err(ex, ErrorKind::NoExchange));
        }
        if !h.encrypted() {
            return Err(self.err(ex, ErrorKind::Unexpected("Quick Mode message not encrypted")));
        }
        let msgids_used = ike.msgids.contains(h.message_id);
        match self.quick.iter().position(|q| q.msgid == h.message_id) {
            // The responder's QM2 again: its copy of our QM3 was lost.
            None if self.quick_done.contains(h.message_id) => {
                if let Some(qm3) = self.quick_done.answer(now, h.message_id, bytes) {
                    let t = crate::peer::Transmit { local: self.local, remote: self.remote, bytes: qm3 };
                    self.transmits.push_back(t);
                    return Ok(());
                }
                self.discards.add(Discard::ReplayedMessageId);
                Err(self.err(ex, ErrorKind::Unexpected("message ID already used (replay)")))
            }
            // RFC 2408 §3.1: a message ID names one exchange; a finished
            // one's ID again is a replay (a retransmission of a message
            // still in the replay memory was answered before this).
            None if msgids_used => {
                self.discards.add(Discard::ReplayedMessageId);
                Err(self.err(ex, ErrorKind::Unexpected("message ID already used (replay)")))
            }
            None => self.qm_respond(now, h, bytes),
            Some(i) if self.quick[i].initiator => self.qm2(now, i, h, bytes),
            // QM1 again: QM2 was lost (or is on its way); the same QM2.
            Some(i) if self.quick[i].qm1 == Some(digest(bytes)) => {
                if let Some(p) = &self.quick[i].pending {
                    let t =
                        crate::peer::Transmit { local: p.local, remote: p.remote, bytes: p.bytes.clone() };
                    self.transmits.push_back(t);
                }
                Ok(())
            }
            Some(i) => self.qm3(i, h, bytes),
        }
    }

    /// Decrypts and authenticates a Quick Mode message; returns the
    /// plaintext, the IV after it, and checks its hash with `verify`.
    fn qm_open(&self, iv: &[u8], h: &Header, bytes: &[u8]) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), Error> {
        let ex = Exchange::QuickMode(h.message_id);
        let Some(ike) = self.ike.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoIkeSa));
        };
        open(&ike.keys, iv, bytes).map_err(|k| self.err(ex, k))
    }

    fn keys(&self) -> Option<&Phase1Keys> {
        self.ike.as_ref().map(|i| &i.keys)
    }

    fn qm_respond(&mut self, now: Instant, h: &Header, bytes: &[u8]) -> Result<(), Error> {
        let msgid = h.message_id;
        let ex = Exchange::QuickMode(msgid);
        let Some(ike) = self.ike.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoIkeSa));
        };
        let iv = ike.keys.exchange_iv(&ike.p1_iv, msgid);
        let nat = ike.nat;
        let (plain, mut iv) = self.qm_open(&iv, h, bytes)?;
        let list = payloads(&plain, h.next_payload, true)
            .map_err(|_| self.err(ex, ErrorKind::Integrity("QM1 does not decrypt")))?;
        let (hash, rest) =
            after_hash(&plain, &list).ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("HASH(1)")))?;
        let Some(keys) = self.keys() else {
            return Err(self.err(ex, ErrorKind::NoIkeSa));
        };
        if !ct_eq(&keys.qm_hash1(msgid, rest), hash) {
            return Err(self.err(ex, ErrorKind::Integrity("HASH(1) does not verify")));
        }
        if let Some(ike) = self.ike.as_mut() {
            ike.msgids.insert(msgid);
        }
        self.authenticated_from_rx();
        if let Some(t) = unknown_payload(&list) {
            let answer = self.send_notify(now, NotifyType::InvalidPayloadType, 1, &[], &[])?;
            self.remember(bytes, Some(answer));
            return Err(self.err(ex, ErrorKind::UnexpectedPayload(t)));
        }
        let sa_b =
            find(&list, PayloadType::Sa).ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("SA")))?;
        let ni = find(&list, PayloadType::Nonce)
            .ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("NONCE")))?;
        if !NONCE_RANGE.contains(&ni.len()) {
            return Err(self.err(ex, ErrorKind::Unexpected("nonce length outside 8..256 (RFC 2409 §5)")));
        }
        let ke = find(&list, PayloadType::KeyExchange);
        let ids = find_all(&list, PayloadType::Id);
        let sa = SaPayload::parse(sa_b).map_err(|e| self.err(ex, e.into()))?;
        let their_spi = sa.proposals.first().map(|p| p.spi.to_vec()).unwrap_or_default();

        // The proxy-ID check (RFC 2409 §5.5: IDs absent = the IKE peers).
        let proposed = match ids.as_slice() {
            [] => ProxyId::new(Prefix::host(self.local.ip()), Prefix::host(self.remote.ip()), Service::ANY)
                .map_err(|_| "mixed families"),
            [ci, cr] => match (IdPayload::parse(ci), IdPayload::parse(cr)) {
                (Ok(ci), Ok(cr)) => match (proxy::decode(&cr), proxy::decode(&ci)) {
                    (Ok(local), Ok(remote)) => proxy::proxy_id(local, remote),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                },
                _ => Err("truncated ID payload"),
            },
            _ => Err("Quick Mode needs no IDs or exactly two"),
        };
        let accepted = match proposed {
            Ok(p) => proxy::check(&self.cfg.proxy_ids, &p).ok_or_else(|| p.to_string()),
            Err(why) => Err(format!("undecodable IDs ({why})")),
        };
        let proxy_id = match accepted {
            Ok(p) => p,
            Err(proposed) => {
                let answer =
                    self.send_notify(now, NotifyType::InvalidIdInformation, PROTO_ESP, &their_spi, &[])?;
                self.remember(bytes, Some(answer));
                self.events.push_back(Event::ProxyIdMismatch {
                    message_id: msgid,
                    proposed,
                    configured: self.cfg.proxy_ids.clone(),
                });
                return Ok(());
            }
        };

        // Proposal selection: first offered transform we are configured for.
        let mut offered = Vec::new();
        let mut chosen = None;
        'outer: for p in sa.proposals.iter().filter(|p| p.protocol == PROTO_ESP && p.spi.len() == 4) {
            for t in &p.transforms {
                match read_esp(t) {
                    Ok(c) => {
                        let group_ok = match (self.cfg.pfs, c.group) {
                            (Some(ours), Some(theirs)) => ours == theirs,
                            (Some(_), None) => false,
                            // No PFS configured: accept the peer's if it asks.
                            (None, _) => true,
                        };
                        if self.cfg.esp_suites.contains(&c.suite)
                            && group_ok
                            && (c.group.is_some() == ke.is_some())
                        {
                            let spi_out = u32::from_be_bytes([p.spi[0], p.spi[1], p.spi[2], p.spi[3]]);
                            chosen = Some((p.number, t.number, c, spi_out));
                            break 'outer;
                        }
                        offered.push(describe(&c));
                    }
                    Err(name) => offered.push(name),
                }
            }
        }
        let Some((pnum, tnum, mut choice, spi_out)) = chosen else {
            let answer = self.send_notify(now, NotifyType::NoProposalChosen, PROTO_ESP, &their_spi, &[])?;
            self.remember(bytes, Some(answer));
            self.events.push_back(Event::ProposalMismatch {
                exchange: ex,
                proposed: offered,
                configured: self
                    .cfg
                    .esp_suites
                    .iter()
                    .map(|s| match self.cfg.pfs {
                        Some(g) => format!("{}-{}", s.name(), group_name(g)),
                        None => s.name().to_owned(),
                    })
                    .collect(),
                peer_refused: false,
            });
            return Ok(());
        };
        // Lifetimes: the lower of theirs and ours (RFC 2407 §4.5.4).
        let proposed_lifetime = choice.lifetime;
        choice.lifetime = choice.lifetime.min(self.cfg.child_lifetime);

        let spi_in = self.rng.spi();
        let nr = self.random(self.nonce_len);
        let (dh, gqm) = match (choice.group, ke) {
            (Some(g), Some(ke)) => {
                let dh = DhSecret::generate(g, &mut self.rng);
                let gqm = dh.agree(ke).map_err(|e| self.err(ex, e.into()))?;
                (Some(dh), Some(gqm))
            }
            _ => (None, None),
        };
        let sa_out = emit_sa(&[ProposalRepr {
            number: pnum,
            protocol: PROTO_ESP,
            spi: spi_in.to_be_bytes().to_vec(),
            transforms: vec![esp_transform(tnum, &choice)],
        }]);
        let mut rest: Vec<(PayloadType, &[u8])> = vec![(PayloadType::Sa, &sa_out), (PayloadType::Nonce, &nr)];
        if let Some(dh) = &dh {
            rest.push((PayloadType::KeyExchange, dh.public()));
        }
        for id in &ids {
            rest.push((PayloadType::Id, id));
        }
        // Ours is lower than proposed: say so for our SA (RFC 2407
        // §4.6.3.1), after the payloads RFC 2409 §5.5 places.
        let lifetime_notify = (choice.lifetime != proposed_lifetime).then(|| {
            NotifyPayload {
                doi: DOI_IPSEC,
                protocol: PROTO_ESP,
                spi: &spi_in.to_be_bytes(),
                kind: NotifyType::ResponderLifetime,
                data: &durations(choice.lifetime).emit(LIFE_IPSEC),
            }
            .emit()
        });
        if let Some(n) = &lifetime_notify {
            rest.push((PayloadType::Notify, n));
        }
        let (rest_bytes, _) = chain(&rest);
        let Some(ike) = self.ike.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoIkeSa));
        };
        let keys = &ike.keys;
        let hash2 = keys.qm_hash2(msgid, ni, &rest_bytes);
        let mut b = MessageBuilder::new(ike.icookie, ike.rcookie, ExchangeType::QuickMode, msgid);
        b.push(PayloadType::Hash, &hash2);
        for (k, body) in &rest {
            b.push(*k, body);
        }
        let out = seal(keys, &mut iv, b);
        let total = choice.suite.encr_key_len() + choice.suite.integ_key_len();
        let g = gqm.as_ref().map(|z| z.as_slice());
        let keys_in = split_keys(keys.keymat(g, PROTO_ESP, spi_in, ni, &nr, total), choice.suite);
        let keys_out = split_keys(keys.keymat(g, PROTO_ESP, spi_out, ni, &nr, total), choice.suite);
        let child = ChildSa {
            proxy_id,
            suite: choice.suite,
            spi_in,
            spi_out,
            keys_in,
            keys_out,
            lifetime: choice.lifetime,
            encap: (nat || choice.encap != ENCAP_TUNNEL)
                .then_some(UdpEncap { local_port: self.local.port(), remote_port: self.remote.port() }),
            local: self.local,
            remote: self.remote,
            initiator: false,
            message_id: msgid,
            pfs: gqm.is_some(),
            esn: false,
        };
        let pending = self.send(now, out, true);
        self.events.push_back(Event::ChildSaInbound(Box::new(child.clone())));
        self.quick.push(QuickMode {
            msgid,
            initiator: false,
            iv,
            proxy_id,
            spi_in,
            ni: ni.to_vec(),
            nr,
            dh,
            pending,
            child: Some(child),
            qm1: Some(digest(bytes)),
        });
        Ok(())
    }

    fn qm2(&mut self, now: Instant, i: usize, h: &Header, bytes: &[u8]) -> Result<(), Error> {
        let msgid = h.message_id;
        let ex = Exchange::QuickMode(msgid);
        let (plain, next_iv) = self.qm_open(&self.quick[i].iv, h, bytes)?;
        let list = payloads(&plain, h.next_payload, true)
            .map_err(|_| self.err(ex, ErrorKind::Integrity("QM2 does not decrypt")))?;
        let (hash, rest) =
            after_hash(&plain, &list).ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("HASH(2)")))?;
        let Some(keys) = self.keys() else {
            return Err(self.err(ex, ErrorKind::NoIkeSa));
        };
        if !ct_eq(&keys.qm_hash2(msgid, &self.quick[i].ni, rest), hash) {
            return Err(self.err(ex, ErrorKind::Integrity("HASH(2) does not verify")));
        }
        self.authenticated_from_rx();
        let mut q = self.quick.remove(i);
        q.iv = next_iv;
        match self.qm2_accept(now, &mut q, &list, bytes) {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.events.push_back(Event::ChildSaFailed {
                    proxy_id: q.proxy_id,
                    reason: Reason::Refused(reason),
                });
                self.remember(bytes, None);
                Err(self.err(ex, ErrorKind::Refused(format!("QM2 refused: {reason:?}"))))
            }
        }
    }

    fn qm2_accept(
        &mut self,
        now: Instant,
        q: &mut QuickMode,
        list: &[RawPayload<'_>],
        bytes: &[u8],
    ) -> Result<(), NotifyType> {
        let sa_b = find(list, PayloadType::Sa).ok_or(NotifyType::PayloadMalformed)?;
        let nr = find(list, PayloadType::Nonce).ok_or(NotifyType::PayloadMalformed)?;
        if !NONCE_RANGE.contains(&nr.len()) {
            return Err(NotifyType::PayloadMalformed);
        }
        let sa = SaPayload::parse(sa_b).map_err(|_| NotifyType::PayloadMalformed)?;
        let p = match sa.proposals.as_slice() {
            [p] if p.protocol == PROTO_ESP && p.spi.len() == 4 && p.transforms.len() == 1 => p,
            _ => return Err(NotifyType::NoProposalChosen),
        };
        let spi_out = u32::from_be_bytes([p.spi[0], p.spi[1], p.spi[2], p.spi[3]]);
        let c = read_esp(&p.transforms[0]).map_err(|_| NotifyType::NoProposalChosen)?;
        if !self.cfg.esp_suites.contains(&c.suite) || c.group != self.cfg.pfs {
            return Err(NotifyType::NoProposalChosen);
        }
        let gqm = match (&q.dh, find(list, PayloadType::KeyExchange)) {
            (Some(dh), Some(ke)) => Some(dh.agree(ke).map_err(|_| NotifyType::InvalidKeyInformation)?),
            (None, None) => None,
            _ => return Err(NotifyType::InvalidKeyInformation),
        };
        // The responder must answer with the IDs we proposed (see proxy.rs).
        let ids = find_all(list, PayloadType::Id);
        let proxy_id = match ids.as_slice() {
            [] => q.proxy_id,
            [ci, cr] => {
                let ci = IdPayload::parse(ci).map_err(|_| NotifyType::InvalidIdInformation)?;
                let cr = IdPayload::parse(cr).map_err(|_| NotifyType::InvalidIdInformation)?;
                let l = proxy::decode(&ci).map_err(|_| NotifyType::InvalidIdInformation)?;
                let r = proxy::decode(&cr).map_err(|_| NotifyType::InvalidIdInformation)?;
                let got = proxy::proxy_id(l, r).map_err(|_| NotifyType::InvalidIdInformation)?;
                if got != q.proxy_id {
                    return Err(NotifyType::InvalidIdInformation);
                }
                got
            }
            _ => return Err(NotifyType::InvalidIdInformation),
        };
        // The SA payload's lifetime, then RESPONDER-LIFETIME: shorter is
        // adopted, longer never (RFC 2407 §4.6.3.1).
        let ex = Exchange::QuickMode(q.msgid);
        let proposed = self.cfg.child_lifetime;
        let (lifetime, longer) = shorten(proposed, proposed, durations(c.lifetime));
        for l in longer {
            self.lifetime_ignored(
                ex,
                Discard::LifetimeLonger,
                format!("SA payload lifetime of {l}: longer, not adopted"),
            );
        }
        let notifies = list.iter().filter(|p| p.kind == PayloadType::Notify).map(|p| p.body);
        let lifetime = self.responder_lifetimes(
            ex,
            notifies,
            NamedSa::Esp { spis: [spi_out, q.spi_in] },
            proposed,
            lifetime,
        );
        let Some(ike) = self.ike.as_ref() else {
            return Err(NotifyType::InvalidCookie);
        };
        let keys = &ike.keys;
        q.nr = nr.to_vec();
        let hash3 = keys.qm_hash3(q.msgid, &q.ni, nr);
        let mut b = MessageBuilder::new(ike.icookie, ike.rcookie, ExchangeType::QuickMode, q.msgid);
        b.push(PayloadType::Hash, &hash3);
        let out = seal(keys, &mut q.iv, b);
        let total = c.suite.encr_key_len() + c.suite.integ_key_len();
        let g = gqm.as_ref().map(|z| z.as_slice());
        let keys_in = split_keys(keys.keymat(g, PROTO_ESP, q.spi_in, &q.ni, nr, total), c.suite);
        let keys_out = split_keys(keys.keymat(g, PROTO_ESP, spi_out, &q.ni, nr, total), c.suite);
        let nat = ike.nat;
        self.send(now, out.clone(), false);
        let until = now + retransmission_schedule(&self.cfg.retransmit);
        self.quick_done.insert(now, until, q.msgid, bytes, out);
        self.children.push(ChildRecord { proxy_id, spi_in: q.spi_in, spi_out });
        self.events.push_back(Event::ChildSaUp(Box::new(ChildSa {
            proxy_id,
            suite: c.suite,
            spi_in: q.spi_in,
            spi_out,
            keys_in,
            keys_out,
            lifetime,
            encap: (nat || c.encap != ENCAP_TUNNEL)
                .then_some(UdpEncap { local_port: self.local.port(), remote_port: self.remote.port() }),
            local: self.local,
            remote: self.remote,
            initiator: true,
            message_id: q.msgid,
            pfs: gqm.is_some(),
            esn: false,
        })));
        Ok(())
    }

    fn qm3(&mut self, i: usize, h: &Header, bytes: &[u8]) -> Result<(), Error> {
        let msgid = h.message_id;
        let ex = Exchange::QuickMode(msgid);
        let (plain, _) = self.qm_open(&self.quick[i].iv, h, bytes)?;
        let list = payloads(&plain, h.next_payload, true)
            .map_err(|_| self.err(ex, ErrorKind::Integrity("QM3 does not decrypt")))?;
        let hash = find(&list, PayloadType::Hash)
            .ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("HASH(3)")))?;
        let Some(keys) = self.keys() else {
            return Err(self.err(ex, ErrorKind::NoIkeSa));
        };
        let q = &self.quick[i];
        if !ct_eq(&keys.qm_hash3(msgid, &q.ni, &q.nr), hash) {
            return Err(self.err(ex, ErrorKind::Integrity("HASH(3) does not verify")));
        }
        self.authenticated_from_rx();
        let mut q = self.quick.remove(i);
        // The exchange is complete: its QM1 is answered no more; a copy
        // of it is a replay (dropped by message ID).
        self.replays.retain(|r| Header::parse(&r.received).map(|h| h.message_id) != Ok(msgid));
        self.remember(bytes, None);
        if let Some(child) = q.child.take() {
            self.children.push(ChildRecord {
                proxy_id: child.proxy_id,
                spi_in: child.spi_in,
                spi_out: child.spi_out,
            });
            self.events.push_back(Event::ChildSaUp(Box::new(child)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of the QM2 gets the QM3 until the retransmission schedule
    /// is over; another message with the same ID gets nothing; the oldest
    /// exchange goes first beyond the capacity.
    #[test]
    fn finished_quick_modes_answer_their_qm2_for_the_schedule_only() {
        let t0 = Instant::now();
        let schedule = retransmission_schedule(&crate::config::Retransmit::default());
        assert_eq!(schedule, Duration::from_secs(126), "2 + 4 + 8 + 16 + 32 + 64");
        let mut f = FinishedQuickModes::default();
        f.insert(t0, t0 + schedule, 7, b"qm2 of 7", b"qm3 of 7".to_vec());
        assert_eq!(f.answer(t0 + Duration::from_secs(62), 7, b"qm2 of 7").as_deref(), Some(&b"qm3 of 7"[..]));
        assert_eq!(f.answer(t0, 7, b"something else"), None);
        assert_eq!(f.answer(t0, 8, b"qm2 of 7"), None);
        assert_eq!(f.answer(t0 + schedule, 7, b"qm2 of 7"), None, "the responder has given up");
        assert!(!f.contains(7));

        for id in 0..=FinishedQuickModes::CAPACITY as u32 {
            f.insert(t0, t0 + schedule, id, &id.to_be_bytes(), vec![1]);
        }
        assert!(!f.contains(0), "the oldest forgotten");
        assert!(f.contains(1) && f.contains(FinishedQuickModes::CAPACITY as u32));
        assert_eq!(f.order.len(), FinishedQuickModes::CAPACITY);
        assert_eq!(f.by_msgid.len(), FinishedQuickModes::CAPACITY);
    }
}
