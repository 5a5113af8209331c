//! Aggressive Mode with pre-shared keys (RFC 2409 §5), for dialup peers
//! whose address does not identify them: identities travel in clear.
//!
//! ```text
//! Initiator                                        Responder
//! AM1  HDR, SA, KE, Ni, IDii, VID(NAT-T), VID(DPD) -->
//!                   <-- AM2  HDR, SA, KE, Nr, IDir, HASH_R, VID..., NAT-D, NAT-D
//! AM3  HDR, HASH_I, NAT-D, NAT-D                    -->
//! ```
//!
//! AM3 is sent in clear as RFC 2409 writes it; an encrypted AM3 (some
//! peers send one) is accepted too. One DH group only can be offered (KE
//! is in the first message): the first configured proposal's.

use std::time::Instant;

use crate::crypto::ct_eq;
use crate::crypto::dh::DhSecret;
use crate::discard::Discard;
use crate::error::{Error, ErrorKind};
use crate::event::{Event, Exchange, Reason};
use crate::exchange::phase1::{
    self, find, find_all, payloads, Mode, Phase1, Step, VID_DPD, VID_ESPRIT, VID_NATT_RFC3947,
};
use crate::peer::Peer;
use crate::wire::{ExchangeType, Header, MessageBuilder, NotifyType, PayloadType, SaPayload, HEADER_LEN};
use crate::Random;

impl<R: Random> Peer<R> {
    /// AM1.
    pub(crate) fn start_aggressive_mode(&mut self, now: Instant) {
        let Some(group) = self.cfg.ike_proposals.first().map(|p| p.group) else {
            self.fail_phase1(Reason::Refused(NotifyType::NoProposalChosen));
            return;
        };
        let icookie = self.cookie();
        let mut p1 = Phase1::new(Mode::Aggressive, true, icookie, now, (self.local, self.remote));
        p1.sai_b = phase1::offer(&self.cfg, Some(group));
        let dh = DhSecret::generate(group, &mut self.rng);
        p1.gxi = dh.public().to_vec();
        p1.dh = Some(dh);
        p1.ni = self.random(self.nonce_len);
        p1.id_b = phase1::identity_body(&self.cfg.local_id);
        let mut b = MessageBuilder::new(icookie, [0; 8], ExchangeType::Aggressive, 0);
        b.push(PayloadType::Sa, &p1.sai_b)
            .push(PayloadType::KeyExchange, &p1.gxi)
            .push(PayloadType::Nonce, &p1.ni)
            .push(PayloadType::Id, &p1.id_b);
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

    pub(crate) fn on_aggressive_mode(&mut self, now: Instant, h: &Header, bytes: &[u8]) -> Result<(), Error> {
        let ex = Exchange::AggressiveMode;
        // A gateway configured for Main Mode never answers one: any AM2
        // carries HASH_R, which lets an eavesdropper search the
        // pre-shared key offline (RFC 2409 §5 leaves it to policy).
        if !self.cfg.aggressive {
            self.discards.add(Discard::AggressiveNotConfigured);
            return Err(self.err(
                ex,
                ErrorKind::Refused(
                    "Aggressive Mode is not configured for this gateway: not answered".to_owned(),
                ),
            ));
        }
        if h.rcookie == [0; 8] {
            return self.am_respond_1(now, h, bytes);
        }
        if self.phase1_matches(Mode::Aggressive, h) {
            let Some(mut p1) = self.phase1.take() else {
                return Err(self.err(ex, ErrorKind::NoExchange));
            };
            let r = match p1.step {
                1 => self.am2(now, &mut p1, h, bytes),
                _ => Err(self.err(ex, ErrorKind::Unexpected("Aggressive Mode message out of order"))),
            };
            return self.finish_phase1_step(now, p1, r);
        }
        let Some(i) = self.responders.iter().position(|p| {
            p.mode == Mode::Aggressive
                && p.icookie == h.icookie
                && p.rcookie == h.rcookie
                && p.remote.ip() == self.rx_remote.ip()
        }) else {
            return Err(self.err(ex, ErrorKind::NoExchange));
        };
        let mut p1 = self.responders.remove(i);
        let r = match p1.step {
            2 => self.am3(now, &mut p1, h, bytes),
            _ => Err(self.err(ex, ErrorKind::Unexpected("Aggressive Mode message out of order"))),
        };
        self.finish_phase1_step(now, p1, r)
    }

    /// AM1: rate-limited (it costs a DH before any proof of address) and
    /// bounded like every half-open exchange.
    fn am_respond_1(&mut self, now: Instant, h: &Header, bytes: &[u8]) -> Result<(), Error> {
        let ex = Exchange::AggressiveMode;
        let (local, remote) = (self.rx_local, self.rx_remote);
        if let Some(p) =
            self.responders.iter().find(|p| p.icookie == h.icookie && p.remote.ip() == remote.ip())
        {
            if p.last_in == bytes {
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
        let lim = self.cfg.half_open;
        if !self.aggressive_bucket.take(now, lim.aggressive_per_second, lim.aggressive_burst) {
            self.discards.add(Discard::AggressiveRateLimited);
            return Err(self.err(ex, ErrorKind::Refused("Aggressive Mode rate limit".to_owned())));
        }
        if !self.admit_half_open(remote) {
            return Err(self.err(ex, ErrorKind::Refused("half-open exchanges at their limit".to_owned())));
        }
        let mut p1 = Phase1::new(Mode::Aggressive, false, h.icookie, now, (local, remote));
        // Its DH is done at once: never displaced by a later first message.
        p1.proven = true;
        let r = self.am1(now, &mut p1, h, bytes);
        self.finish_phase1_step(now, p1, r)
    }

    fn am1(&mut self, now: Instant, p1: &mut Phase1, h: &Header, bytes: &[u8]) -> Result<Step, Error> {
        let ex = Exchange::AggressiveMode;
        let list =
            payloads(&bytes[HEADER_LEN..], h.next_payload, false).map_err(|e| self.err(ex, e.into()))?;
        let sa_b =
            find(&list, PayloadType::Sa).ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("SA")))?;
        let idii =
            find(&list, PayloadType::Id).ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("ID")))?;
        let sa = SaPayload::parse(sa_b).map_err(|e| self.err(ex, e.into()))?;
        let (number, prop, life) = match phase1::select(&self.cfg, &sa) {
            Ok(x) => x,
            Err(offered) => {
                let answer = self.clear_notify(h.icookie, [0; 8], NotifyType::NoProposalChosen);
                self.answer_to(p1, answer);
                self.events.push_back(Event::ProposalMismatch {
                    exchange: ex,
                    proposed: offered,
                    configured: self.cfg.ike_proposals.iter().map(|p| p.name()).collect(),
                    peer_refused: false,
                });
                return Ok(Step::Abort(Reason::Refused(NotifyType::NoProposalChosen)));
            }
        };
        if sa_b.len() > self.cfg.half_open.max_sa_bytes {
            self.discards.add(Discard::OversizedSa);
            return Ok(Step::Abort(Reason::Refused(NotifyType::PayloadMalformed)));
        }
        p1.rcookie = self.cookie_secret.cookie(&h.icookie, self.rx_local, self.rx_remote);
        if !phase1::identity_matches(self.cfg.remote_id.as_ref(), idii) {
            return Ok(self.auth_failed(now, p1, bytes, ex, "peer identity is not the configured one"));
        }
        p1.sai_b = sa_b.to_vec();
        p1.chosen = Some((prop, life));
        let vids = find_all(&list, PayloadType::VendorId);
        p1.peer_natt = self.cfg.speaks_nat_traversal() && vids.contains(&&VID_NATT_RFC3947[..]);
        p1.peer_dpd = vids.contains(&&VID_DPD[..]);
        p1.peer_esprit = vids.contains(&&VID_ESPRIT[..]);
        p1.id_b = idii.to_vec();
        self.take_ke_nonce(p1, &list, ex)?;
        let my_id = phase1::identity_body(&self.cfg.local_id);
        let Some(keys) = p1.keys.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoExchange));
        };
        let hash_r = keys.hash_r(&p1.gxi, &p1.gxr, &p1.icookie, &p1.rcookie, &p1.sai_b, &my_id);
        let mut b = MessageBuilder::new(p1.icookie, p1.rcookie, ExchangeType::Aggressive, 0);
        b.push(PayloadType::Sa, &phase1::answer(number, &prop, life))
            .push(PayloadType::KeyExchange, &p1.gxr)
            .push(PayloadType::Nonce, &p1.nr)
            .push(PayloadType::Id, &my_id)
            .push(PayloadType::Hash, &hash_r);
        if p1.peer_natt {
            b.push(PayloadType::VendorId, &VID_NATT_RFC3947);
        }
        b.push(PayloadType::VendorId, &VID_DPD);
        if self.cfg.announce_esprit {
            b.push(PayloadType::VendorId, &VID_ESPRIT);
        }
        if p1.peer_natt {
            for d in self.natd_payloads(p1) {
                b.push(PayloadType::NatD, &d);
            }
        }
        let out = b.finish();
        self.answer_to(p1, out.clone());
        p1.last_in = bytes.to_vec();
        p1.last_out = Some(out);
        p1.step = 2;
        Ok(Step::Continue)
    }

    fn am2(&mut self, now: Instant, p1: &mut Phase1, h: &Header, bytes: &[u8]) -> Result<Step, Error> {
        let ex = Exchange::AggressiveMode;
        let list =
            payloads(&bytes[HEADER_LEN..], h.next_payload, false).map_err(|e| self.err(ex, e.into()))?;
        let sa_b =
            find(&list, PayloadType::Sa).ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("SA")))?;
        let idir =
            find(&list, PayloadType::Id).ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("ID")))?;
        let hash =
            find(&list, PayloadType::Hash).ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("HASH")))?;
        if self.accept_responder_sa(p1, h, &list, sa_b, ex)?.is_none() {
            return Ok(Step::Abort(Reason::Refused(NotifyType::NoProposalChosen)));
        }
        self.take_ke_nonce(p1, &list, ex)?;
        let Some(keys) = p1.keys.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoExchange));
        };
        let want = keys.hash_r(&p1.gxi, &p1.gxr, &p1.icookie, &p1.rcookie, &p1.sai_b, idir);
        if !ct_eq(&want, hash) {
            return Ok(self.auth_failed(
                now,
                p1,
                bytes,
                ex,
                "HASH_R does not verify: pre-shared key mismatch",
            ));
        }
        if !phase1::identity_matches(self.cfg.remote_id.as_ref(), idir) {
            return Ok(self.auth_failed(now, p1, bytes, ex, "peer identity is not the configured one"));
        }
        let hash_i = keys.hash_i(&p1.gxi, &p1.gxr, &p1.icookie, &p1.rcookie, &p1.sai_b, &p1.id_b);
        if p1.nat {
            self.float();
        }
        let mut b = MessageBuilder::new(p1.icookie, p1.rcookie, ExchangeType::Aggressive, 0);
        b.push(PayloadType::Hash, &hash_i);
        if p1.peer_natt {
            for d in self.natd_payloads(p1) {
                b.push(PayloadType::NatD, &d);
            }
        }
        let out = b.finish();
        self.send(now, out.clone(), false);
        self.remember(bytes, Some(out));
        Ok(self.make_ike_sa(now, p1))
    }

    fn am3(&mut self, now: Instant, p1: &mut Phase1, h: &Header, bytes: &[u8]) -> Result<Step, Error> {
        let ex = Exchange::AggressiveMode;
        let Some(keys) = p1.keys.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoExchange));
        };
        // AM3 carries HASH_I and, with NAT-T, the initiator's NAT-D
        // payloads (RFC 3947 §3.2: messages 2 and 3 in Aggressive Mode).
        let (hash, natd) = if h.encrypted() {
            let (plain, next_iv) = crate::ike_sa::open(keys, &p1.iv, bytes).map_err(|k| self.err(ex, k))?;
            let found = payloads(&plain, h.next_payload, true).ok().and_then(|l| {
                let natd: Vec<Vec<u8>> =
                    find_all(&l, PayloadType::NatD).into_iter().map(<[u8]>::to_vec).collect();
                find(&l, PayloadType::Hash).map(|h| (h.to_vec(), natd))
            });
            match found {
                Some(hsh) => {
                    p1.iv = next_iv;
                    hsh
                }
                None => {
                    return Ok(self.auth_failed(
                        now,
                        p1,
                        bytes,
                        ex,
                        "AM3 does not decrypt: pre-shared key mismatch?",
                    ))
                }
            }
        } else {
            let list =
                payloads(&bytes[HEADER_LEN..], h.next_payload, false).map_err(|e| self.err(ex, e.into()))?;
            let hash = find(&list, PayloadType::Hash)
                .ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("HASH")))?
                .to_vec();
            (hash, find_all(&list, PayloadType::NatD).into_iter().map(<[u8]>::to_vec).collect())
        };
        let Some(keys) = p1.keys.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoExchange));
        };
        let want = keys.hash_i(&p1.gxi, &p1.gxr, &p1.icookie, &p1.rcookie, &p1.sai_b, &p1.id_b);
        if !ct_eq(&want, &hash) {
            return Ok(self.auth_failed(
                now,
                p1,
                bytes,
                ex,
                "HASH_I does not verify: pre-shared key mismatch",
            ));
        }
        if p1.peer_natt {
            let natd: Vec<&[u8]> = natd.iter().map(Vec::as_slice).collect();
            let hash = p1.chosen.map_or(crate::crypto::HashAlg::Sha1, |(p, _)| p.hash);
            let seen =
                phase1::detect_nat(hash, &p1.icookie, &p1.rcookie, &natd, self.rx_local, self.rx_remote);
            // An initiator that floated to 4500 for AM3 saw a NAT too.
            p1.nat = self.cfg.force_encap || self.rx_local.port() == crate::peer::NATT_PORT || seen.any();
            p1.behind_nat = seen.here;
        }
        self.remember(bytes, None);
        Ok(self.make_ike_sa(now, p1))
    }
}
