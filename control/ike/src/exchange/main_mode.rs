//! Main Mode with pre-shared keys (RFC 2409 §5, RFC 3947 for NAT-T):
//!
//! ```text
//! Initiator                                   Responder
//! MM1  HDR, SA, VID(NAT-T), VID(DPD)      -->
//!                                         <-- MM2  HDR, SA, VID...
//! MM3  HDR, KE, Ni, NAT-D, NAT-D          -->
//!                                         <-- MM4  HDR, KE, Nr, NAT-D, NAT-D
//!      (NAT seen: both float to 4500)
//! MM5  HDR*, IDii, HASH_I [, N(INITIAL-CONTACT)] -->
//!                                         <-- MM6  HDR*, IDir, HASH_R [, N(RESPONDER-LIFETIME)]
//! ```
//!
//! A RESPONDER-LIFETIME in MM6 (RFC 2407 §4.6.3.1, SPI the cookie pair)
//! shortens the ISAKMP SA's lifetime, never lengthens it; it is read
//! once HASH_R has verified (see `responder_lifetime`).
//!
//! Only the initiator retransmits; the responder answers repeats from
//! its replay memory.

use std::time::Instant;

use crate::crypto::ct_eq;
use crate::crypto::dh::DhSecret;
use crate::discard::Discard;
use crate::error::{Error, ErrorKind};
use crate::event::{Event, Exchange, Reason};
use crate::exchange::phase1::{
    self, detect_nat, find, find_all, payloads, Mode, Phase1, Step, VID_DPD, VID_ESPRIT, VID_NATT_RFC3947,
};
use crate::exchange::responder_lifetime::{notify_type, NamedSa};
use crate::ike_sa::{open, seal, IkeSa};
use crate::peer::{Peer, NONCE_RANGE};
use crate::wire::{
    ExchangeType, Header, MessageBuilder, NotifyPayload, NotifyType, PayloadType, SaPayload, HEADER_LEN,
};
use crate::Random;

/// ID and HASH bodies of an authentication message, or the step that
/// ends phase 1 when it does not authenticate.
pub(crate) type Authenticated = Result<(Vec<u8>, Vec<u8>), Step>;

impl<R: Random> Peer<R> {
    /// MM1.
    pub(crate) fn start_main_mode(&mut self, now: Instant) {
        let icookie = self.cookie();
        let mut p1 = Phase1::new(Mode::Main, true, icookie, now, (self.local, self.remote));
        p1.sai_b = phase1::offer(&self.cfg, None);
        let mut b = MessageBuilder::new(icookie, [0; 8], ExchangeType::MainMode, 0);
        b.push(PayloadType::Sa, &p1.sai_b);
        if self.cfg.speaks_nat_traversal() {
            b.push(PayloadType::VendorId, &VID_NATT_RFC3947);
        }
        b.push(PayloadType::VendorId, &VID_DPD);
        if self.cfg.announce_esprit {
            b.push(PayloadType::VendorId, &VID_ESPRIT);
        }
        p1.step = 1;
        p1.pending = self.send(now, b.finish(), true);
        self.phase1 = Some(p1);
    }

    pub(crate) fn on_main_mode(&mut self, now: Instant, h: &Header, bytes: &[u8]) -> Result<(), Error> {
        let ex = Exchange::MainMode;
        if h.rcookie == [0; 8] {
            return self.mm_respond_1(now, h, bytes);
        }
        if self.phase1_matches(Mode::Main, h) {
            let Some(mut p1) = self.phase1.take() else {
                return Err(self.err(ex, ErrorKind::NoExchange));
            };
            let r = match p1.step {
                1 => self.mm2(now, &mut p1, h, bytes),
                3 => self.mm4(now, &mut p1, h, bytes),
                5 => self.mm6(now, &mut p1, h, bytes),
                _ => Err(self.err(ex, ErrorKind::Unexpected("Main Mode message out of order"))),
            };
            return self.finish_phase1_step(now, p1, r);
        }
        // A responder exchange: the cookie says, before any search or
        // DH, whether we gave it to this initiator cookie at this address
        // (RFC 2408 §2.5.3).
        if h.rcookie != self.cookie_secret.cookie(&h.icookie, self.rx_local, self.rx_remote) {
            self.discards.add(Discard::CookieMismatch);
            return Err(self.err(ex, ErrorKind::NoExchange));
        }
        let Some(i) = self
            .responders
            .iter()
            .position(|p| p.mode == Mode::Main && p.icookie == h.icookie && p.rcookie == h.rcookie)
        else {
            return Err(self.err(ex, ErrorKind::NoExchange));
        };
        if self.responders[i].last_in == bytes {
            if let Some(out) = self.responders[i].last_out.clone() {
                let (local, remote) = (self.responders[i].local, self.responders[i].remote);
                self.transmits.push_back(crate::peer::Transmit { local, remote, bytes: out });
            }
            return Ok(());
        }
        let mut p1 = self.responders.remove(i);
        let r = match p1.step {
            2 => self.mm3(now, &mut p1, h, bytes),
            4 => self.mm5(now, &mut p1, h, bytes),
            _ => Err(self.err(ex, ErrorKind::Unexpected("Main Mode message out of order"))),
        };
        self.finish_phase1_step(now, p1, r)
    }

    /// Makes room for a new half-open responder exchange from `remote`
    /// (see [`crate::guard`]): false when there is none.
    ///
    /// Room is shared max-min fairly: a source may fill the whole table
    /// while nobody else needs it, and when it is full the source holding
    /// the most entries gives way, with its oldest that has not shown its
    /// address. A flood from one address (a peer's own, spoofed) then
    /// cycles through all the room there is, so the real peer's message 3
    /// has `global` spoofs' time to arrive, not `per_source`'s; and it
    /// never displaces another source holding at most `per_source`.
    pub(crate) fn admit_half_open(&mut self, remote: std::net::SocketAddr) -> bool {
        if self.responders.len() < self.cfg.half_open.global.max(1) {
            return true;
        }
        match self.half_open_victim(Some(remote.ip())) {
            Some(i) => {
                self.discards.add(Discard::HalfOpenLimitSource);
                self.responders.remove(i);
                true
            }
            None => {
                self.discards.add(Discard::HalfOpenLimitGlobal);
                false
            }
        }
    }

    /// Displaces one half-open exchange, as [`Peer::admit_half_open`]
    /// would for a newcomer from a source of its own: for the owner of
    /// several peers, whose bound in all is reached while this peer holds
    /// the most. False when nothing here may be displaced.
    pub fn displace_half_open(&mut self) -> bool {
        match self.half_open_victim(None) {
            Some(i) => {
                self.discards.add(Discard::HalfOpenLimitSource);
                self.responders.remove(i);
                true
            }
            None => false,
        }
    }

    /// Responder exchanges that have not shown their address, held by the
    /// source with the most of them: the index of that source's oldest,
    /// if it may give way to a newcomer from `newcomer` (its own source
    /// always; another only beyond `per_source`). Ties go to the
    /// newcomer's source, then to the source with the oldest entry.
    fn half_open_victim(&self, newcomer: Option<std::net::IpAddr>) -> Option<usize> {
        // Source -> (entries, index of its oldest); the table is at most
        // `global` long, entries in the order they were opened.
        let mut held: std::collections::HashMap<std::net::IpAddr, (usize, usize)> = Default::default();
        for (i, p) in self.responders.iter().enumerate().filter(|(_, p)| !p.proven) {
            held.entry(p.remote.ip()).or_insert((0, i)).0 += 1;
        }
        let largest = held.values().copied().max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))?;
        match newcomer.and_then(|ip| held.get(&ip).copied()) {
            Some(own) if own.0 >= largest.0 => Some(own.1),
            _ if newcomer.is_none() || largest.0 > self.cfg.half_open.per_source => Some(largest.1),
            _ => None,
        }
    }

    /// Applies the outcome of a phase-1 handler.
    pub(crate) fn finish_phase1_step(
        &mut self,
        now: Instant,
        p1: Phase1,
        r: Result<Step, Error>,
    ) -> Result<(), Error> {
        let initiator = p1.initiator;
        let result = match &r {
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone()),
        };
        match r {
            Ok(Step::Continue) if !initiator => self.responders.push(p1),
            // A bad message does not end a responder exchange under way;
            // a first message that failed leaves nothing behind.
            Err(_) if !initiator => {
                if p1.step > 0 {
                    self.responders.push(p1);
                }
            }
            Ok(Step::Continue) => self.phase1 = Some(p1),
            Ok(Step::Done(ike)) => self.established(now, *ike),
            Ok(Step::Abort(reason)) if !initiator => self.fail_responder(reason),
            Ok(Step::Abort(reason)) => self.fail_phase1(reason),
            // A bad message does not end the exchange: keep waiting
            // (the peer may retransmit a good one).
            Err(_) => self.phase1 = Some(p1),
        }
        result
    }

    /// MM1 from the peer (or from anyone claiming its address): costs no
    /// DH; what it leaves is one bounded half-open entry (see
    /// [`crate::guard`]), and never displaces an exchange in progress.
    fn mm_respond_1(&mut self, now: Instant, h: &Header, bytes: &[u8]) -> Result<(), Error> {
        let ex = Exchange::MainMode;
        let (local, remote) = (self.rx_local, self.rx_remote);
        // A retransmitted MM1: the same answer; another MM1 with the
        // initiator cookie of an exchange in progress changes nothing.
        if let Some(p) =
            self.responders.iter().find(|p| p.icookie == h.icookie && p.remote.ip() == remote.ip())
        {
            if p.step == 2 && p.last_in == bytes {
                if let Some(out) = p.last_out.clone() {
                    self.transmits.push_back(crate::peer::Transmit {
                        local: p.local,
                        remote: p.remote,
                        bytes: out,
                    });
                }
                return Ok(());
            }
            return Err(self.err(ex, ErrorKind::Unexpected("first message for an exchange in progress")));
        }
        let list =
            payloads(&bytes[HEADER_LEN..], h.next_payload, false).map_err(|e| self.err(ex, e.into()))?;
        if let Some(t) = phase1::unknown_payload(&list) {
            self.send_clear_notify(now, h.icookie, [0; 8], NotifyType::InvalidPayloadType);
            return Err(self.err(ex, ErrorKind::UnexpectedPayload(t)));
        }
        let sa_b =
            find(&list, PayloadType::Sa).ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("SA")))?;
        if sa_b.len() > self.cfg.half_open.max_sa_bytes {
            self.discards.add(Discard::OversizedSa);
            return Err(self.err(ex, ErrorKind::Unexpected("SA payload too large for a half-open exchange")));
        }
        let sa = SaPayload::parse(sa_b).map_err(|e| self.err(ex, e.into()))?;
        let (number, prop, life) = match phase1::select(&self.cfg, &sa) {
            Ok(x) => x,
            Err(offered) => {
                // Answered each time (nothing kept: a stranger can send
                // these at will).
                self.send_clear_notify(now, h.icookie, [0; 8], NotifyType::NoProposalChosen);
                self.events.push_back(Event::ProposalMismatch {
                    exchange: ex,
                    proposed: offered,
                    configured: self.cfg.ike_proposals.iter().map(|p| p.name()).collect(),
                    peer_refused: false,
                });
                return Ok(());
            }
        };
        if !self.admit_half_open(remote) {
            return Err(self.err(ex, ErrorKind::Refused("half-open exchanges at their limit".to_owned())));
        }
        let rcookie = self.cookie_secret.cookie(&h.icookie, local, remote);
        let mut p1 = Phase1::new(Mode::Main, false, h.icookie, now, (local, remote));
        p1.rcookie = rcookie;
        p1.sai_b = sa_b.to_vec();
        p1.chosen = Some((prop, life));
        let vids = find_all(&list, PayloadType::VendorId);
        // NAT-T only as configured: the peer's vendor ID alone never
        // makes us float (RFC 3947 §3.1: both must send it).
        p1.peer_natt = self.cfg.speaks_nat_traversal() && vids.contains(&&VID_NATT_RFC3947[..]);
        p1.peer_dpd = vids.contains(&&VID_DPD[..]);
        p1.peer_esprit = vids.contains(&&VID_ESPRIT[..]);
        let mut b = MessageBuilder::new(h.icookie, rcookie, ExchangeType::MainMode, 0);
        let sa = phase1::answer(number, &prop, life);
        b.push(PayloadType::Sa, &sa);
        if p1.peer_natt {
            b.push(PayloadType::VendorId, &VID_NATT_RFC3947);
        }
        b.push(PayloadType::VendorId, &VID_DPD);
        if self.cfg.announce_esprit {
            b.push(PayloadType::VendorId, &VID_ESPRIT);
        }
        let out = b.finish();
        self.answer_to(&p1, out.clone());
        p1.last_in = bytes.to_vec();
        p1.last_out = Some(out);
        p1.step = 2;
        self.responders.push(p1);
        Ok(())
    }

    fn mm2(&mut self, now: Instant, p1: &mut Phase1, h: &Header, bytes: &[u8]) -> Result<Step, Error> {
        let ex = Exchange::MainMode;
        let list =
            payloads(&bytes[HEADER_LEN..], h.next_payload, false).map_err(|e| self.err(ex, e.into()))?;
        let sa_b =
            find(&list, PayloadType::Sa).ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("SA")))?;
        let Some(prop) = self.accept_responder_sa(p1, h, &list, sa_b, ex)? else {
            return Ok(Step::Abort(Reason::Refused(NotifyType::NoProposalChosen)));
        };
        let dh = DhSecret::generate(prop.group, &mut self.rng);
        p1.ni = self.random(self.nonce_len);
        p1.gxi = dh.public().to_vec();
        p1.dh = Some(dh);
        let out = self.ke_nonce_natd(p1, &p1.gxi.clone(), &p1.ni.clone(), ExchangeType::MainMode);
        p1.pending = self.send(now, out, true);
        p1.step = 3;
        Ok(Step::Continue)
    }

    /// KE, NONCE and (when the peer speaks NAT-T) the two NAT-D payloads.
    /// Initiator, on the responder's first answer (MM2 or AM2): takes the
    /// proposal it chose (RFC 2409 §5: exactly one of ours), its cookie
    /// and its vendor IDs (NAT-T, DPD). `None`: the choice is not one we
    /// offered; an event says so and the exchange is to be refused.
    pub(crate) fn accept_responder_sa(
        &mut self,
        p1: &mut Phase1,
        h: &Header,
        list: &[crate::wire::RawPayload<'_>],
        sa_body: &[u8],
        ex: Exchange,
    ) -> Result<Option<crate::IkeProposal>, Error> {
        let sa = SaPayload::parse(sa_body).map_err(|e| self.err(ex, e.into()))?;
        let (prop, life) = match phase1::accept(&self.cfg, &sa) {
            Ok(x) => x,
            Err(chosen) => {
                // The responder answered with something we did not offer.
                self.events.push_back(Event::ProposalMismatch {
                    exchange: ex,
                    proposed: vec![chosen],
                    configured: self.cfg.ike_proposals.iter().map(|p| p.name()).collect(),
                    peer_refused: false,
                });
                return Ok(None);
            }
        };
        p1.rcookie = h.rcookie;
        p1.chosen = Some((prop, life));
        let vids = find_all(list, PayloadType::VendorId);
        // NAT-T only as configured: the peer's vendor ID alone never
        // makes us float (RFC 3947 §3.1: both must send it).
        p1.peer_natt = self.cfg.speaks_nat_traversal() && vids.contains(&&VID_NATT_RFC3947[..]);
        p1.peer_dpd = vids.contains(&&VID_DPD[..]);
        p1.peer_esprit = vids.contains(&&VID_ESPRIT[..]);
        Ok(Some(prop))
    }

    fn ke_nonce_natd(&mut self, p1: &Phase1, ke: &[u8], nonce: &[u8], exchange: ExchangeType) -> Vec<u8> {
        let mut b = MessageBuilder::new(p1.icookie, p1.rcookie, exchange, 0);
        b.push(PayloadType::KeyExchange, ke).push(PayloadType::Nonce, nonce);
        if p1.peer_natt {
            for d in self.natd_payloads(p1) {
                b.push(PayloadType::NatD, &d);
            }
        }
        b.finish()
    }

    /// Our NAT-D payloads: the peer's address, then ours (a random one
    /// with `force_encap`, so that the peer sees a NAT).
    pub(crate) fn natd_payloads(&mut self, p1: &Phase1) -> [Vec<u8>; 2] {
        let hash = p1.chosen.map_or(crate::crypto::HashAlg::Sha1, |(p, _)| p.hash);
        // A responder answers where the exchange came from.
        let (ours, theirs) = if p1.initiator { (self.local, self.remote) } else { (p1.local, p1.remote) };
        let remote = phase1::nat_d(hash, &p1.icookie, &p1.rcookie, theirs);
        let local = if self.cfg.force_encap {
            self.random(hash.output_len())
        } else {
            phase1::nat_d(hash, &p1.icookie, &p1.rcookie, ours)
        };
        [remote, local]
    }

    /// Reads the peer's KE and nonce, derives the keys, detects NAT.
    pub(crate) fn take_ke_nonce(
        &mut self,
        p1: &mut Phase1,
        list: &[crate::wire::RawPayload<'_>],
        ex: Exchange,
    ) -> Result<(), Error> {
        let ke = find(list, PayloadType::KeyExchange)
            .ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("KE")))?;
        let nonce =
            find(list, PayloadType::Nonce).ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("NONCE")))?;
        if !NONCE_RANGE.contains(&nonce.len()) {
            return Err(self.err(ex, ErrorKind::Unexpected("nonce length outside 8..256 (RFC 2409 §5)")));
        }
        if p1.initiator {
            p1.gxr = ke.to_vec();
            p1.nr = nonce.to_vec();
        } else {
            let group = p1.chosen.map(|(p, _)| p.group).ok_or_else(|| self.err(ex, ErrorKind::NoExchange))?;
            let dh = DhSecret::generate(group, &mut self.rng);
            p1.gxr = dh.public().to_vec();
            p1.dh = Some(dh);
            p1.gxi = ke.to_vec();
            p1.ni = nonce.to_vec();
            p1.nr = self.random(self.nonce_len);
        }
        let peer_ke = if p1.initiator { &p1.gxr } else { &p1.gxi };
        let gxy = match &p1.dh {
            Some(dh) => dh.agree(peer_ke).map_err(|e| self.err(ex, e.into()))?,
            None => return Err(self.err(ex, ErrorKind::NoExchange)),
        };
        p1.derive(&self.cfg.psk, &gxy);
        let natd = find_all(list, PayloadType::NatD);
        if p1.peer_natt && !natd.is_empty() {
            let hash = p1.chosen.map_or(crate::crypto::HashAlg::Sha1, |(p, _)| p.hash);
            let seen = detect_nat(hash, &p1.icookie, &p1.rcookie, &natd, self.rx_local, self.rx_remote);
            p1.nat = self.cfg.force_encap || seen.any();
            p1.behind_nat = seen.here;
        }
        Ok(())
    }

    fn mm3(&mut self, now: Instant, p1: &mut Phase1, h: &Header, bytes: &[u8]) -> Result<Step, Error> {
        let ex = Exchange::MainMode;
        let list =
            payloads(&bytes[HEADER_LEN..], h.next_payload, false).map_err(|e| self.err(ex, e.into()))?;
        self.take_ke_nonce(p1, &list, ex)?;
        // The initiator echoed our cookie from its address: it receives
        // there (the DH above is the first one this exchange cost).
        p1.proven = true;
        let out = self.ke_nonce_natd(p1, &p1.gxr.clone(), &p1.nr.clone(), ExchangeType::MainMode);
        let _ = now;
        self.answer_to(p1, out.clone());
        p1.last_in = bytes.to_vec();
        p1.last_out = Some(out);
        p1.step = 4;
        Ok(Step::Continue)
    }

    fn mm4(&mut self, now: Instant, p1: &mut Phase1, h: &Header, bytes: &[u8]) -> Result<Step, Error> {
        let ex = Exchange::MainMode;
        let list =
            payloads(&bytes[HEADER_LEN..], h.next_payload, false).map_err(|e| self.err(ex, e.into()))?;
        self.take_ke_nonce(p1, &list, ex)?;
        if p1.nat {
            self.float();
        }
        let id_b = phase1::identity_body(&self.cfg.local_id);
        let Some(keys) = p1.keys.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoExchange));
        };
        let hash_i = keys.hash_i(&p1.gxi, &p1.gxr, &p1.icookie, &p1.rcookie, &p1.sai_b, &id_b);
        let mut b = MessageBuilder::new(p1.icookie, p1.rcookie, ExchangeType::MainMode, 0);
        b.push(PayloadType::Id, &id_b).push(PayloadType::Hash, &hash_i);
        // INITIAL-CONTACT says "forget every SA of mine" (RFC 2407
        // §4.6.3.3): never on a phase-1 rekey, whose children stay.
        if self.cfg.initial_contact && self.ike.is_none() && self.children.is_empty() {
            let mut spi = p1.icookie.to_vec();
            spi.extend_from_slice(&p1.rcookie);
            let n =
                NotifyPayload { doi: 1, protocol: 1, spi: &spi, kind: NotifyType::InitialContact, data: &[] };
            b.push(PayloadType::Notify, &n.emit());
        }
        let out = seal(keys, &mut p1.iv, b);
        p1.pending = self.send(now, out, true);
        p1.step = 5;
        Ok(Step::Continue)
    }

    /// Decrypts and checks an MM5/MM6 (or encrypted AM3): returns ID body
    /// and HASH body, or reports an authentication failure (a wrong
    /// pre-shared key shows up as garbage after decryption).
    pub(crate) fn open_auth(
        &mut self,
        now: Instant,
        p1: &mut Phase1,
        h: &Header,
        bytes: &[u8],
        ex: Exchange,
    ) -> Result<Authenticated, Error> {
        if !h.encrypted() {
            return Err(self.err(ex, ErrorKind::Unexpected("authentication message not encrypted")));
        }
        let Some(keys) = p1.keys.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoExchange));
        };
        let (plain, next_iv) = open(keys, &p1.iv, bytes).map_err(|k| self.err(ex, k))?;
        let parsed = payloads(&plain, h.next_payload, true).ok().and_then(|list| {
            let id = find(&list, PayloadType::Id)?.to_vec();
            let hash = find(&list, PayloadType::Hash)?.to_vec();
            let ic = list.iter().any(|p| {
                p.kind == PayloadType::Notify
                    && NotifyPayload::parse(p.body).is_ok_and(|n| n.kind == NotifyType::InitialContact)
            });
            // Main Mode initiator: MM6 may shorten the lifetime.
            let lifetimes = list
                .iter()
                .filter(|p| p1.initiator && p1.mode == Mode::Main && p.kind == PayloadType::Notify)
                .filter(|p| notify_type(p.body) == Some(NotifyType::ResponderLifetime))
                .map(|p| p.body.to_vec())
                .collect::<Vec<_>>();
            Some((id, hash, ic, lifetimes))
        });
        let Some((id, hash, initial_contact, lifetimes)) = parsed else {
            return Ok(Err(self.auth_failed(
                now,
                p1,
                bytes,
                ex,
                "message does not decrypt to ID and HASH: pre-shared key mismatch?",
            )));
        };
        // Acted upon once the peer is authenticated (`Peer::established`).
        p1.initial_contact |= initial_contact;
        p1.responder_lifetimes = lifetimes;
        p1.iv = next_iv;
        Ok(Ok((id, hash)))
    }

    /// Reports an authentication failure and tells the peer.
    pub(crate) fn auth_failed(
        &mut self,
        now: Instant,
        p1: &Phase1,
        bytes: &[u8],
        ex: Exchange,
        detail: &str,
    ) -> Step {
        if p1.initiator {
            let answer =
                self.send_clear_notify(now, p1.icookie, p1.rcookie, NotifyType::AuthenticationFailed);
            self.remember(bytes, Some(answer));
        } else {
            let answer = self.clear_notify(p1.icookie, p1.rcookie, NotifyType::AuthenticationFailed);
            self.answer_to(p1, answer);
        }
        self.events.push_back(Event::AuthFailed { exchange: ex, detail: detail.to_owned() });
        Step::Abort(Reason::Refused(NotifyType::AuthenticationFailed))
    }

    fn mm5(&mut self, now: Instant, p1: &mut Phase1, h: &Header, bytes: &[u8]) -> Result<Step, Error> {
        let ex = Exchange::MainMode;
        let (id_b, hash) = match self.open_auth(now, p1, h, bytes, ex)? {
            Ok(x) => x,
            Err(step) => return Ok(step),
        };
        let Some(keys) = p1.keys.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoExchange));
        };
        let want = keys.hash_i(&p1.gxi, &p1.gxr, &p1.icookie, &p1.rcookie, &p1.sai_b, &id_b);
        if !ct_eq(&want, &hash) {
            return Ok(self.auth_failed(
                now,
                p1,
                bytes,
                ex,
                "HASH_I does not verify: pre-shared key mismatch",
            ));
        }
        if !phase1::identity_matches(self.cfg.remote_id.as_ref(), &id_b) {
            return Ok(self.auth_failed(now, p1, bytes, ex, "peer identity is not the configured one"));
        }
        let my_id = phase1::identity_body(&self.cfg.local_id);
        let hash_r = keys.hash_r(&p1.gxi, &p1.gxr, &p1.icookie, &p1.rcookie, &p1.sai_b, &my_id);
        let mut b = MessageBuilder::new(p1.icookie, p1.rcookie, ExchangeType::MainMode, 0);
        b.push(PayloadType::Id, &my_id).push(PayloadType::Hash, &hash_r);
        let out = seal(keys, &mut p1.iv, b);
        // MM5 authenticated: answer where it came from (with NAT-T, the
        // initiator's port on 4500).
        p1.local = self.rx_local;
        p1.remote = self.rx_remote;
        self.answer_to(p1, out.clone());
        self.remember(bytes, Some(out));
        Ok(self.make_ike_sa(now, p1))
    }

    fn mm6(&mut self, now: Instant, p1: &mut Phase1, h: &Header, bytes: &[u8]) -> Result<Step, Error> {
        let ex = Exchange::MainMode;
        let (id_b, hash) = match self.open_auth(now, p1, h, bytes, ex)? {
            Ok(x) => x,
            Err(step) => return Ok(step),
        };
        let Some(keys) = p1.keys.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoExchange));
        };
        let want = keys.hash_r(&p1.gxi, &p1.gxr, &p1.icookie, &p1.rcookie, &p1.sai_b, &id_b);
        if !ct_eq(&want, &hash) {
            return Ok(self.auth_failed(
                now,
                p1,
                bytes,
                ex,
                "HASH_R does not verify: pre-shared key mismatch",
            ));
        }
        if !phase1::identity_matches(self.cfg.remote_id.as_ref(), &id_b) {
            return Ok(self.auth_failed(now, p1, bytes, ex, "peer identity is not the configured one"));
        }
        self.remember(bytes, None);
        if let Some((prop, life)) = p1.chosen {
            let mut cookies = [0u8; 16];
            cookies[..8].copy_from_slice(&p1.icookie);
            cookies[8..].copy_from_slice(&p1.rcookie);
            let secs = |seconds| crate::Lifetime { seconds, kilobytes: 0 };
            let notifies = std::mem::take(&mut p1.responder_lifetimes);
            let life = self.responder_lifetimes(
                ex,
                notifies.iter().map(Vec::as_slice),
                NamedSa::Isakmp { cookies },
                secs(self.cfg.ike_lifetime),
                secs(life),
            );
            p1.chosen = Some((prop, life.seconds));
        }
        Ok(self.make_ike_sa(now, p1))
    }

    /// Turns a finished phase 1 into the ISAKMP SA.
    pub(crate) fn make_ike_sa(&mut self, now: Instant, p1: &mut Phase1) -> Step {
        let (Some(keys), Some((proposal, lifetime))) = (p1.keys.take(), p1.chosen) else {
            return Step::Abort(Reason::Timeout);
        };
        Step::Done(Box::new(IkeSa {
            icookie: p1.icookie,
            rcookie: p1.rcookie,
            initiator: p1.initiator,
            keys,
            p1_iv: p1.iv.clone(),
            proposal,
            nat: p1.nat,
            behind_nat: p1.behind_nat,
            peer_dpd: p1.peer_dpd,
            peer_esprit: p1.peer_esprit,
            established: now,
            lifetime,
            peer_initial_contact: p1.initial_contact,
            msgids: crate::guard::MessageIds::default(),
        }))
    }
}
