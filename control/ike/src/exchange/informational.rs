//! Informational exchanges (RFC 2408 §4.8, RFC 2409 §5.7): notifications,
//! Deletes and DPD (RFC 3706).
//!
//! ```text
//! HDR*, HASH(1), N/D        HASH(1) = prf(SKEYID_a, M-ID | N/D)
//! ```
//!
//! Once the ISAKMP SA exists they are encrypted with an IV of their own
//! (hash(last phase-1 block | M-ID)). Before it, errors travel in clear
//! (NO-PROPOSAL-CHOSEN answering MM1, AUTHENTICATION-FAILED): they are
//! unauthenticated, so they only end the phase 1 in progress.
//!
//! DPD: after `dpd_delay` without hearing from the peer, send R-U-THERE
//! (ISAKMP SPI = the cookies, data = sequence number); every
//! retransmission is a fresh R-U-THERE with the next number; no ACK after
//! the last try = DPD timeout, the ISAKMP SA is dropped.

use std::time::Instant;

use crate::crypto::ct_eq;
use crate::discard::Discard;
use crate::error::{Error, ErrorKind};
use crate::event::{Event, Exchange, Reason};
use crate::exchange::phase1::payloads;
use crate::ike_sa::{open, seal};
use crate::peer::{Peer, Pending};
use crate::wire::{
    chain, DeletePayload, ExchangeType, Header, MessageBuilder, NotifyPayload, NotifyType, PayloadType,
    HEADER_LEN,
};
use crate::Random;

const PROTO_ISAKMP: u8 = 1;
const PROTO_ESP: u8 = 3;

impl<R: Random> Peer<R> {
    /// An unencrypted Informational with one notification (phase-1 errors).
    pub(crate) fn send_clear_notify(
        &mut self,
        now: Instant,
        icookie: [u8; 8],
        rcookie: [u8; 8],
        kind: NotifyType,
    ) -> Vec<u8> {
        let out = self.clear_notify(icookie, rcookie, kind);
        self.send(now, out.clone(), false);
        out
    }

    /// The bytes of an unencrypted Informational with one notification.
    pub(crate) fn clear_notify(&self, icookie: [u8; 8], rcookie: [u8; 8], kind: NotifyType) -> Vec<u8> {
        let n = NotifyPayload { doi: 1, protocol: PROTO_ISAKMP, spi: &[], kind, data: &[] };
        let mut b = MessageBuilder::new(icookie, rcookie, ExchangeType::Informational, 0);
        b.push(PayloadType::Notify, &n.emit());
        b.finish()
    }

    /// An encrypted Informational carrying `payloads`; returns its bytes.
    pub(crate) fn send_informational(
        &mut self,
        now: Instant,
        rest: &[(PayloadType, &[u8])],
    ) -> Result<Vec<u8>, Error> {
        let mut m = [0u8; 4];
        while m == [0; 4] {
            self.rng.fill(&mut m);
        }
        let msgid = u32::from_be_bytes(m);
        let Some(ike) = self.ike.as_mut() else {
            return Err(self.err(Exchange::Informational, ErrorKind::NoIkeSa));
        };
        // Ours too: the same message reflected back must not verify as
        // the peer's (HASH(1) is keyed the same both ways).
        ike.msgids.insert(msgid);
        let mut iv = ike.keys.exchange_iv(&ike.p1_iv, msgid);
        let (rest_bytes, _) = chain(rest);
        let hash = ike.keys.qm_hash1(msgid, &rest_bytes);
        let mut b = MessageBuilder::new(ike.icookie, ike.rcookie, ExchangeType::Informational, msgid);
        b.push(PayloadType::Hash, &hash);
        for (k, body) in rest {
            b.push(*k, body);
        }
        let out = seal(&ike.keys, &mut iv, b);
        self.send(now, out.clone(), false);
        Ok(out)
    }

    /// An encrypted notification.
    pub(crate) fn send_notify(
        &mut self,
        now: Instant,
        kind: NotifyType,
        protocol: u8,
        spi: &[u8],
        data: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let n = NotifyPayload { doi: 1, protocol, spi, kind, data }.emit();
        self.send_informational(now, &[(PayloadType::Notify, &n)])
    }

    pub(crate) fn send_delete_esp(&mut self, now: Instant, spis: &[u32]) -> Result<(), Error> {
        let spis: Vec<[u8; 4]> = spis.iter().map(|s| s.to_be_bytes()).collect();
        let d = DeletePayload { protocol: PROTO_ESP, spis: spis.iter().map(|s| &s[..]).collect() }.emit();
        self.send_informational(now, &[(PayloadType::Delete, &d)]).map(|_| ())
    }

    pub(crate) fn send_delete_isakmp(&mut self, now: Instant) -> Result<(), Error> {
        let Some(ike) = self.ike.as_ref() else {
            return Err(self.err(Exchange::Informational, ErrorKind::NoIkeSa));
        };
        let spi = ike.spi();
        let d = DeletePayload { protocol: PROTO_ISAKMP, spis: vec![&spi[..]] }.emit();
        self.send_informational(now, &[(PayloadType::Delete, &d)]).map(|_| ())
    }

    pub(crate) fn on_informational(&mut self, now: Instant, h: &Header, bytes: &[u8]) -> Result<(), Error> {
        let ex = Exchange::Informational;
        if !h.encrypted() {
            let list =
                payloads(&bytes[HEADER_LEN..], h.next_payload, false).map_err(|e| self.err(ex, e.into()))?;
            // Unauthenticated (RFC 2408 §5): it may end only our own phase
            // 1 while it waits for the answer to its first message (the
            // responder has no keys yet to refuse with). Later, it is only
            // noted: if no authenticated answer comes, the exchange times
            // out with it as the reason. Responder exchanges and the ISAKMP
            // SA are never touched by one.
            let ours = self.phase1.as_ref().filter(|p| p.icookie == h.icookie);
            let first_answer =
                ours.is_some_and(|p| p.step == 1 && (h.rcookie == [0; 8] || h.rcookie == p.rcookie));
            let later = ours.is_some_and(|p| p.step > 1 && h.rcookie == p.rcookie);
            for p in list.iter().filter(|p| p.kind == PayloadType::Notify) {
                let n = NotifyPayload::parse(p.body).map_err(|e| self.err(ex, e.into()))?;
                let phase1_ex = match self.phase1.as_ref().map(|p| p.mode) {
                    Some(crate::exchange::phase1::Mode::Aggressive) => Exchange::AggressiveMode,
                    _ => Exchange::MainMode,
                };
                match n.kind {
                    _ if later => {
                        self.discards.add(Discard::UnauthenticatedNotify);
                        if let Some(p1) = self.phase1.as_mut() {
                            p1.peer_notify = Some(n.kind);
                        }
                    }
                    NotifyType::NoProposalChosen if first_answer => {
                        self.events.push_back(Event::ProposalMismatch {
                            exchange: phase1_ex,
                            proposed: self.cfg.ike_proposals.iter().map(|p| p.name()).collect(),
                            configured: self.cfg.ike_proposals.iter().map(|p| p.name()).collect(),
                            peer_refused: true,
                        });
                        self.fail_phase1(Reason::PeerNotify(n.kind));
                    }
                    NotifyType::AuthenticationFailed
                    | NotifyType::InvalidHashInformation
                    | NotifyType::PayloadMalformed
                        if first_answer =>
                    {
                        self.events.push_back(Event::AuthFailed {
                            exchange: phase1_ex,
                            detail: format!("peer says {:?}", n.kind),
                        });
                        self.fail_phase1(Reason::PeerNotify(n.kind));
                    }
                    _ => self.discards.add(Discard::UnauthenticatedNotify),
                }
            }
            return Ok(());
        }
        let Some(ike) = self.ike.as_ref() else {
            return Err(self.err(ex, ErrorKind::NoIkeSa));
        };
        if ike.icookie != h.icookie || ike.rcookie != h.rcookie {
            return Err(self.err(ex, ErrorKind::NoExchange));
        }
        if ike.msgids.contains(h.message_id) {
            self.discards.add(Discard::ReplayedMessageId);
            return Err(self.err(ex, ErrorKind::Unexpected("message ID already used (replay)")));
        }
        let iv = ike.keys.exchange_iv(&ike.p1_iv, h.message_id);
        let (plain, _) = open(&ike.keys, &iv, bytes).map_err(|k| self.err(ex, k))?;
        let list = payloads(&plain, h.next_payload, true)
            .map_err(|_| self.err(ex, ErrorKind::Integrity("Informational does not decrypt")))?;
        let first = list
            .first()
            .filter(|p| p.kind == PayloadType::Hash)
            .ok_or_else(|| self.err(ex, ErrorKind::MissingPayload("HASH(1)")))?;
        let end: usize = list.iter().map(|p| p.raw.len()).sum();
        let rest = plain.get(first.raw.len()..end).unwrap_or(&[]);
        if !ct_eq(&ike.keys.qm_hash1(h.message_id, rest), first.body) {
            return Err(self.err(ex, ErrorKind::Integrity("HASH(1) does not verify")));
        }
        if let Some(ike) = self.ike.as_mut() {
            ike.msgids.insert(h.message_id);
        }
        self.authenticated_from_rx();
        self.remember(bytes, None);
        for p in &list[1..] {
            match p.kind {
                PayloadType::Notify => {
                    let n = NotifyPayload::parse(p.body).map_err(|e| self.err(ex, e.into()))?;
                    self.on_notify(now, &n)?;
                }
                PayloadType::Delete => {
                    let d = DeletePayload::parse(p.body).map_err(|e| self.err(ex, e.into()))?;
                    self.on_delete(&d);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn on_notify(&mut self, now: Instant, n: &NotifyPayload<'_>) -> Result<(), Error> {
        let ex = Exchange::Informational;
        match n.kind {
            NotifyType::RUThere => {
                let spi = self.ike.as_ref().map(|i| i.spi()).unwrap_or([0; 16]);
                let data = n.data.to_vec();
                self.send_notify(now, NotifyType::RUThereAck, PROTO_ISAKMP, &spi, &data)?;
            }
            NotifyType::RUThereAck => {
                // RFC 3706 §5: the ACK carries the sequence number of the
                // outstanding R-U-THERE (any of its retransmissions, each
                // numbered anew, §7); another one proves nothing.
                let seq = <[u8; 4]>::try_from(n.data).ok().map(u32::from_be_bytes);
                let outstanding = self.dpd.pending.is_some()
                    && seq.is_some_and(|s| {
                        s.wrapping_sub(self.dpd.first) <= self.dpd.seq.wrapping_sub(self.dpd.first)
                    });
                if outstanding {
                    self.dpd.pending = None;
                } else {
                    self.discards.add(Discard::DpdAckStale);
                }
            }
            kind => {
                // A refused Quick Mode of ours: by SPI, else the only one.
                let by_spi =
                    (n.spi.len() == 4).then(|| u32::from_be_bytes([n.spi[0], n.spi[1], n.spi[2], n.spi[3]]));
                let ours: Vec<usize> =
                    self.quick.iter().enumerate().filter(|(_, q)| q.initiator).map(|(i, _)| i).collect();
                let target = ours
                    .iter()
                    .copied()
                    .find(|i| Some(self.quick[*i].spi_in) == by_spi)
                    .or(if ours.len() == 1 { ours.first().copied() } else { None });
                let is_error = kind.value() < 8192;
                if let (true, Some(i)) = (is_error, target) {
                    let q = self.quick.remove(i);
                    self.events.push_back(Event::ChildSaFailed {
                        proxy_id: q.proxy_id,
                        reason: Reason::PeerNotify(kind),
                    });
                }
                self.events.push_back(Event::Notify { kind, exchange: ex });
            }
        }
        Ok(())
    }

    fn on_delete(&mut self, d: &DeletePayload<'_>) {
        match d.protocol {
            PROTO_ESP => {
                for spi in &d.spis {
                    if spi.len() != 4 {
                        continue;
                    }
                    let spi = u32::from_be_bytes([spi[0], spi[1], spi[2], spi[3]]);
                    // The peer deletes its inbound SA: our outbound SPI.
                    if let Some(pos) = self.children.iter().position(|c| c.spi_out == spi) {
                        let c = self.children.remove(pos);
                        self.events.push_back(Event::ChildSaDown {
                            proxy_id: c.proxy_id,
                            spi_in: c.spi_in,
                            spi_out: c.spi_out,
                            reason: Reason::DeletedByPeer,
                        });
                    }
                }
            }
            PROTO_ISAKMP => {
                let ours = self.ike.as_ref().map(|i| i.spi());
                if d.spis.iter().any(|s| Some(*s) == ours.as_ref().map(|o| &o[..])) {
                    self.ike = None;
                    self.abandon_quick_modes(Reason::DeletedByPeer);
                    self.dpd.pending = None;
                    self.events.push_back(Event::IkeSaDown { reason: Reason::DeletedByPeer });
                }
            }
            _ => {}
        }
    }

    /// DPD probes and their timeout (called from handle_timeout).
    /// DPD (RFC 3706 §5): after `dpd_delay` without hearing from the
    /// peer, an R-U-THERE; unanswered, another every `dpd_delay` (each
    /// with a new sequence number, §7), `dpd_retries` in all; then the
    /// peer is dead: its ISAKMP SA and its child SAs are gone (§5.5: the
    /// SAs with a dead peer are deleted; there is no one to send a Delete
    /// to), and the next packet for it negotiates afresh.
    pub(crate) fn dpd_timeout(&mut self, now: Instant) {
        let Some(delay) = self.cfg.dpd_delay else { return };
        if let Some(p) = &self.dpd.pending {
            if p.next > now {
                return;
            }
            if p.tries_left == 0 {
                self.dpd.pending = None;
                self.ike = None;
                self.abandon_quick_modes(Reason::DpdTimeout);
                self.events.push_back(Event::DpdTimeout);
                for c in std::mem::take(&mut self.children) {
                    self.events.push_back(Event::ChildSaDown {
                        proxy_id: c.proxy_id,
                        spi_in: c.spi_in,
                        spi_out: c.spi_out,
                        reason: Reason::DpdTimeout,
                    });
                }
                self.events.push_back(Event::IkeSaDown { reason: Reason::DpdTimeout });
                return;
            }
            let left = p.tries_left - 1;
            let _ = self.send_r_u_there(now, delay, left);
            return;
        }
        let idle_since = match (self.ike.as_ref(), self.last_heard) {
            (Some(ike), Some(t)) if ike.peer_dpd => t + delay,
            _ => return,
        };
        if idle_since <= now {
            let _ = self.send_r_u_there(now, delay, self.cfg.dpd_retries.max(1) - 1);
        }
    }

    fn send_r_u_there(
        &mut self,
        now: Instant,
        delay: std::time::Duration,
        tries_left: u32,
    ) -> Result<(), Error> {
        self.dpd.seq = self.dpd.seq.wrapping_add(1);
        if self.dpd.pending.is_none() {
            self.dpd.first = self.dpd.seq;
        }
        let seq = self.dpd.seq.to_be_bytes();
        let spi = self.ike.as_ref().map(|i| i.spi()).unwrap_or([0; 16]);
        let out = self.send_notify(now, NotifyType::RUThere, PROTO_ISAKMP, &spi, &seq)?;
        self.dpd.pending = Some(Pending {
            bytes: out,
            local: self.local,
            remote: self.remote,
            next: now + delay,
            interval: delay,
            tries_left,
        });
        Ok(())
    }
}
