//! The peer's requests under an established IKE SA (or the one a rekey
//! replaced): CREATE_CHILD_SA for a child, a child rekey or an IKE SA
//! rekey; INFORMATIONAL with Deletes or empty (liveness). Each goes
//! through the window and the Encrypted payload first; a retransmission
//! is answered from memory.

use super::*;

impl<R: Random> Session<R> {
    /// A request under the IKE SA: CREATE_CHILD_SA or INFORMATIONAL.
    pub(super) fn request(&mut self, now: Instant, h: &Header, bytes: &[u8]) -> Handled {
        let exchange = exchange_of(h);
        let (h, opened) = self.take_request(None, now, bytes, exchange)?;
        if h.exchange == ExchangeType::CreateChildSa {
            self.child_request(now, &h, bytes, &opened)
        } else {
            self.informational_request(&h, bytes, &opened)
        }
    }

    /// The peer's CREATE_CHILD_SA: a new child, or a rekey of one
    /// (§1.3.3, §2.8.1).
    pub(super) fn child_request(
        &mut self,
        now: Instant,
        h: &Header,
        bytes: &[u8],
        opened: &Opened,
    ) -> Handled {
        let exchange = Exchange::CreateChildSa(h.message_id);
        let Some(ike) = self.ike.as_mut() else { return Err((Dropped::UnknownSpi, exchange)) };
        let refuse = |ike: &mut IkeSa, rng: &mut R, kind: NotifyType| {
            let mut chain = PayloadChain::new();
            push_error(&mut chain, kind, &[]);
            ike.respond(h, bytes, &chain, rng).map_err(|e| (exchange_dropped(&e), exchange))
        };
        let p = match read_child(opened) {
            Ok(p) => p,
            Err(_) => {
                let r = refuse(ike, &mut self.rng, NotifyType::InvalidSyntax)?;
                self.answer(r);
                return Err((Dropped::Malformed, exchange));
            }
        };
        if is_ike_rekey(&p) {
            // §2.25: not while another request of ours is outstanding on
            // this SA (it could not finish on the new one), nor while our
            // Delete of the one before is; the peer tries again later.
            // Our own rekey of it is no obstacle: the two are settled by
            // their nonces (§2.8.1, `ike_crossing`).
            let ours_runs = matches!(&self.out, Some(Outstanding { kind: OutKind::IkeRekey(_), .. }));
            let crossing = ours_runs && self.crossed_ike.is_none();
            if (self.out.is_some() && !crossing) || self.old_ike.iter().any(|o| o.delete.is_some()) {
                let r = refuse(ike, &mut self.rng, NotifyType::TemporaryFailure)?;
                self.answer(r);
                return Ok(());
            }
            let (response, made) = ike
                .answer_ike_rekey(h, bytes, &p, &self.cfg.proposals, &mut self.rng)
                .map_err(|e| (exchange_dropped(&e), exchange))?;
            self.answer(response);
            match made {
                Ok(new) if crossing => self.crossed_ike = Some(new),
                Ok(new) => self.ike_rekeyed(now, *new, false),
                Err(_) => {}
            }
            return Ok(());
        }
        // §2.25: a rekey of a child we do not have, or are deleting.
        let rekeyed = match p.rekey {
            None => None,
            Some(spi) => match self.children.iter().find(|c| c.spi_out == spi) {
                None => {
                    let r = refuse(ike, &mut self.rng, NotifyType::ChildSaNotFound)?;
                    self.answer(r);
                    return Ok(());
                }
                Some(c) if c.deleting || c.redundant => {
                    let r = refuse(ike, &mut self.rng, NotifyType::TemporaryFailure)?;
                    self.answer(r);
                    return Ok(());
                }
                Some(c) => Some(c.spi_in),
            },
        };
        let spi_in = self.rng.spi();
        let (response, child) = ike
            .answer_child(h, bytes, &p, &self.cfg.child, spi_in, &mut self.rng)
            .map_err(|e| (exchange_dropped(&e), exchange))?;
        self.answer(response);
        match child {
            Ok(c) => self.child_made(now, &c, rekeyed),
            Err(e) => self.refused_peer_child(h.message_id, &e),
        }
        Ok(())
    }

    /// The peer's INFORMATIONAL: Deletes (§1.4.1) or a liveness check.
    pub(super) fn informational_request(&mut self, h: &Header, bytes: &[u8], opened: &Opened) -> Handled {
        let exchange = Exchange::Informational;
        let mut esp = Vec::new();
        let mut ike_deleted = false;
        let mut malformed = false;
        for raw in opened.payloads() {
            let payload = raw.and_then(|r| Payload::parse(&r));
            match payload {
                Ok(Payload::Delete(d)) if d.protocol == ProtocolId::Ike => ike_deleted = true,
                Ok(Payload::Delete(d)) if d.protocol == ProtocolId::Esp && d.spi_size == 4 => {
                    esp.extend(d.spis().filter_map(|s| <[u8; 4]>::try_from(s).ok()).map(u32::from_be_bytes));
                }
                Ok(_) => {}
                Err(_) => malformed = true,
            }
        }
        let Some(ike) = self.ike.as_mut() else { return Err((Dropped::UnknownSpi, exchange)) };
        if malformed {
            // Authenticated but unreadable: answered INVALID_SYNTAX so the
            // window moves on (§2.21.2), acted on in no part.
            let mut chain = PayloadChain::new();
            push_error(&mut chain, NotifyType::InvalidSyntax, &[]);
            let r =
                ike.respond(h, bytes, &chain, &mut self.rng).map_err(|e| (exchange_dropped(&e), exchange))?;
            self.answer(r);
            return Err((Dropped::Malformed, exchange));
        }
        if ike_deleted {
            // §1.4.1: answered empty; the IKE SA and its children are gone
            // (to the one we made answering the peer's rekey, if any).
            let r = ike.respond(h, bytes, &PayloadChain::new(), &mut self.rng);
            if let Ok(r) = r {
                self.answer(r);
            }
            if !self.peer_finished_its_rekey() {
                self.ike_gone(Reason::DeletedByPeer);
            }
            return Ok(());
        }
        // Each child of ours the peer deleted: its inbound SPI in our
        // answer (§1.4.1), unless we are deleting it ourselves (then the
        // two Deletes crossed and neither answers with it).
        let mut gone = Vec::new();
        for spi in esp {
            if let Some(c) = self.children.iter().find(|c| c.spi_out == spi) {
                gone.push((c.spi_in, c.deleting));
            }
        }
        let ours: Vec<u8> = gone.iter().filter(|(_, d)| !d).flat_map(|(s, _)| s.to_be_bytes()).collect();
        let mut chain = PayloadChain::new();
        if !ours.is_empty() {
            chain.push_payload(&Payload::Delete(DeletePayload::new(ProtocolId::Esp, 4, &ours)));
        }
        let r = ike.respond(h, bytes, &chain, &mut self.rng).map_err(|e| (exchange_dropped(&e), exchange))?;
        self.answer(r);
        for (spi_in, _) in gone {
            self.child_down(spi_in, Reason::DeletedByPeer);
        }
        Ok(())
    }

    /// A request under the current IKE SA (or, with `old`, the one a
    /// rekey replaced), through the window and the Encrypted payload: a
    /// retransmission is answered from memory here.
    pub(super) fn take_request(
        &mut self,
        old: Option<usize>,
        now: Instant,
        bytes: &[u8],
        exchange: Exchange,
    ) -> Result<(Header, Opened), (Dropped, Exchange)> {
        let sa = match old {
            Some(i) => self.old_ike.get(i).map(|o| &o.sa),
            None => self.ike.as_ref(),
        };
        let Some(sa) = sa else { return Err((Dropped::UnknownSpi, exchange)) };
        match sa.receive_request(bytes) {
            IncomingRequest::Retransmit(r) => {
                self.answer(r);
                Err((Dropped::RetransmitAnswered, exchange))
            }
            IncomingRequest::Dropped(e) => Err((exchange_dropped(&e), exchange)),
            IncomingRequest::Fresh(h, o) => {
                self.last_heard = Some(now);
                // §2.23: behind a NAT, the peer's mapping may change; an
                // authenticated request says where it is now.
                if old.is_none() && self.nat_t {
                    self.path = Some(self.arrived);
                }
                Ok((h, o))
            }
        }
    }

    /// A message on the IKE SA a rekey replaced: the answer to our Delete
    /// of it, the peer's Delete of it, a retransmission. Its children have
    /// moved; nothing else is taken on it.
    pub(super) fn old_ike_message(&mut self, now: Instant, i: usize, h: &Header, bytes: &[u8]) -> Handled {
        let exchange = Exchange::Informational;
        let Some(old) = self.old_ike.get_mut(i) else { return Err((Dropped::UnknownSpi, exchange)) };
        if h.is_response() {
            let Some((id, _, _)) = old.delete else { return Err((Dropped::UnexpectedResponse, exchange)) };
            old.sa
                .receive_response(bytes, id, ExchangeType::Informational)
                .map_err(|e| (exchange_dropped(&e), exchange))?;
            self.old_ike.remove(i);
            self.last_heard = Some(now);
            return Ok(());
        }
        let (h, opened) = self.take_request(Some(i), now, bytes, exchange)?;
        let Some(old) = self.old_ike.get_mut(i) else { return Err((Dropped::UnknownSpi, exchange)) };
        let deleted = opened
            .payloads()
            .filter_map(|r| r.ok())
            .any(|r| matches!(Payload::parse(&r), Ok(Payload::Delete(d)) if d.protocol == ProtocolId::Ike));
        let mut chain = PayloadChain::new();
        if h.exchange != ExchangeType::Informational {
            push_error(&mut chain, NotifyType::TemporaryFailure, &[]);
        }
        let r =
            old.sa.respond(&h, bytes, &chain, &mut self.rng).map_err(|e| (exchange_dropped(&e), exchange))?;
        self.answer(r);
        if deleted {
            self.old_ike.remove(i);
        }
        Ok(())
    }
}
