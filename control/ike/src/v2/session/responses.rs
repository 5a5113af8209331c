//! The peer's responses to our requests: the child made or refused (and
//! INVALID_KE_PAYLOAD tried again once, §1.3), the IKE SA rekeyed, a
//! Delete or liveness check answered; and the end of a child rekey
//! (§2.8, §2.8.1).

use super::*;

impl<R: Random> Session<R> {
    /// A response under the IKE SA, to our outstanding request.
    pub(super) fn response(&mut self, now: Instant, h: &Header, bytes: &[u8]) -> Handled {
        let exchange = exchange_of(h);
        let Some(ike) = self.ike.as_mut() else { return Err((Dropped::UnknownSpi, exchange)) };
        if !ike.is_from_peer(h) {
            return Err((Dropped::UnknownSpi, exchange));
        }
        let Some(out) = self.out.take() else { return Err((Dropped::UnexpectedResponse, exchange)) };
        if out.message_id != h.message_id {
            self.out = Some(out);
            return Err((Dropped::UnexpectedResponse, exchange));
        }
        let Outstanding { message_id, bytes: sent, retx, kind } = out;
        match kind {
            OutKind::Child { pending, rekey_of, retried } => {
                let req = *pending.child_request();
                let group = pending.group();
                match ike.handle_child_response(*pending, bytes) {
                    ChildResponse::Ignored(pending, e) => {
                        let kind = OutKind::Child { pending, rekey_of, retried };
                        self.out = Some(Outstanding { message_id, bytes: sent, retx, kind });
                        Err((exchange_dropped(&e), exchange))
                    }
                    ChildResponse::Created(c) => {
                        self.last_heard = Some(now);
                        self.child_made(now, &c, rekey_of);
                        Ok(())
                    }
                    ChildResponse::Failed(e) => {
                        self.last_heard = Some(now);
                        // §1.3: once, with the group the responder asked
                        // for, if we offered it.
                        if let (ChildError::InvalidKe { want, .. }, false, Some(sent)) = (&e, retried, group)
                        {
                            let want = DhGroup::from_number((*want).into());
                            if let Some(g) =
                                want.filter(|g| offered_groups(&self.cfg.child, sent).contains(g))
                            {
                                if g != sent {
                                    self.work.push_front(Work::ChildRetry {
                                        proxy_id: req.proxy_id,
                                        group: g,
                                        rekey_of,
                                    });
                                    return Ok(());
                                }
                            }
                        }
                        match rekey_of {
                            None => self.child_failed(exchange, &req, &e),
                            Some(old) => {
                                if peer_made_it(&e) {
                                    self.work.push_front(Work::Delete(req.spi_in));
                                }
                                self.rekey_failed(old, req.proxy_id, failure_reason(&e));
                            }
                        }
                        Ok(())
                    }
                }
            }
            OutKind::IkeRekey(pending) => match ike.handle_ike_rekey_response(*pending, bytes) {
                IkeRekeyResponse::Ignored(pending, e) => {
                    let kind = OutKind::IkeRekey(pending);
                    self.out = Some(Outstanding { message_id, bytes: sent, retx, kind });
                    Err((exchange_dropped(&e), exchange))
                }
                IkeRekeyResponse::Rekeyed(new) => {
                    self.our_ike_rekey_done(now, *new);
                    Ok(())
                }
                IkeRekeyResponse::Failed(n) => {
                    self.last_heard = Some(now);
                    self.our_ike_rekey_failed(now, n);
                    Ok(())
                }
            },
            kind => {
                let opened = match ike.receive_response(bytes, message_id, ExchangeType::Informational) {
                    Ok(o) => o,
                    Err(e) => {
                        self.out = Some(Outstanding { message_id, bytes: sent, retx, kind });
                        return Err((exchange_dropped(&e), exchange));
                    }
                };
                drop(opened);
                self.last_heard = Some(now);
                match kind {
                    OutKind::Delete { spi_in } => self.child_down(spi_in, Reason::DeletedLocally),
                    OutKind::DeleteIke => self.ike_gone(Reason::DeletedLocally),
                    OutKind::Dpd | OutKind::Child { .. } | OutKind::IkeRekey(_) => {}
                }
                Ok(())
            }
        }
    }
}
