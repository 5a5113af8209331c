//! The session's IKE SA in the making: IKE_SA_INIT and IKE_AUTH, as
//! the initiator (the answers to ours) and as the responder (the peer's
//! requests, through [`InitResponder`] and its half-open bounds).

use super::*;

impl<R: Random> Session<R> {
    /// An IKE_SA_INIT request, arrived at `to` from `from`.
    pub(super) fn init_request(&mut self, now: Instant, (to, from): Addrs, bytes: &[u8]) -> Handled {
        let half_open = self.responder.half_open_len();
        let reply = self.responder.respond(bytes, to, from, half_open, now, &mut self.rng);
        if let Some(a) = reply.answer() {
            let a = a.to_vec();
            self.answer(a);
        }
        match reply {
            Reply::Opened(..) => Ok(()),
            Reply::Retransmitted(_) => Err((Dropped::RetransmitAnswered, Exchange::IkeSaInit)),
            Reply::Silent(_) | Reply::Refused(..) => Err((Dropped::InitIgnored, Exchange::IkeSaInit)),
        }
    }

    pub(super) fn init_response(&mut self, now: Instant, bytes: &[u8]) -> Handled {
        if !matches!(self.making, Some(Making::Init(..))) {
            return Err((Dropped::InitIgnored, Exchange::IkeSaInit));
        }
        let Some(Making::Init(s, retx)) = self.making.take() else {
            return Err((Dropped::InitIgnored, Exchange::IkeSaInit));
        };
        match s.handle_response(bytes, &mut self.rng) {
            InitiatorStep::Resend(s, _) => {
                self.send(s.request().to_vec());
                self.making = Some(Making::Init(Box::new(s), Retx::new(now, self.cfg.retransmit)));
                Ok(())
            }
            InitiatorStep::Ignored(s, _) => {
                self.making = Some(Making::Init(Box::new(s), retx));
                Err((Dropped::InitIgnored, Exchange::IkeSaInit))
            }
            InitiatorStep::Failed(e) => {
                let reason = match e {
                    InitError::Refused(n) => Reason::PeerNotify(v1_notify(n)),
                    InitError::TooManyRetries(_) => Reason::Timeout,
                    _ => Reason::Refused(v1_notify(NotifyType::NoProposalChosen)),
                };
                if matches!(e, InitError::AnswerNotOffered | InitError::Refused(NotifyType::NoProposalChosen))
                {
                    self.events.push_back(Event::ProposalMismatch {
                        exchange: Exchange::IkeSaInit,
                        proposed: vec![e.to_string()],
                        configured: Vec::new(),
                        peer_refused: matches!(e, InitError::Refused(_)),
                    });
                }
                self.fail_making(reason);
                Ok(())
            }
            InitiatorStep::Done(done) => {
                self.peer_announced_fragments(&done.response);
                // §2.23: a NAT on the way (or a peer that says so), and
                // IKE_AUTH and everything after go from and to port 4500.
                if done.nat.local_behind_nat || done.nat.remote_behind_nat {
                    let float = |a: SocketAddr| SocketAddr::new(a.ip(), NATT_PORT);
                    self.path = Some((float(self.cfg.local), float(self.cfg.remote)));
                }
                // The first proxy-ID waiting rides in IKE_AUTH (§1.2).
                let first = self.work.iter().position(|w| matches!(w, Work::Child(_)));
                let first = first.and_then(|i| self.work.remove(i)).and_then(|w| match w {
                    Work::Child(p) => Some(p),
                    _ => None,
                });
                let req =
                    first.map(|proxy_id| ChildRequest { proxy_id, packet: None, spi_in: self.rng.spi() });
                let child = req.map(|r| (r, self.cfg.child.clone()));
                match done.send_auth_first(self.cfg.auth.clone(), child, true, &mut self.rng) {
                    Ok(s) => {
                        self.send(s.request().to_vec());
                        let retx = Retx::new(now, self.cfg.retransmit);
                        self.making = Some(Making::Auth(Box::new(s), req, retx));
                    }
                    Err(_) => {
                        self.making = None;
                        if let Some(p) = first {
                            self.work.push_front(Work::Child(p));
                        }
                        self.fail_making(Reason::Refused(v1_notify(NotifyType::InvalidSyntax)));
                    }
                }
                Ok(())
            }
        }
    }

    pub(super) fn auth_response(&mut self, now: Instant, bytes: &[u8]) -> Handled {
        if !matches!(self.making, Some(Making::Auth(..))) {
            return Err((Dropped::AuthIgnored, Exchange::IkeAuth));
        }
        let Some(Making::Auth(s, first, retx)) = self.making.take() else {
            return Err((Dropped::AuthIgnored, Exchange::IkeAuth));
        };
        match s.handle_response_at(bytes, self.wall_at(now)) {
            InitiatorAuthStep::Ignored(s, _) => {
                self.making = Some(Making::Auth(s, first, retx));
                Err((Dropped::AuthIgnored, Exchange::IkeAuth))
            }
            InitiatorAuthStep::Failed(e) => {
                self.events
                    .push_back(Event::AuthFailed { exchange: Exchange::IkeAuth, detail: e.to_string() });
                let reason = Reason::Refused(v1_notify(NotifyType::AuthenticationFailed));
                if let Some(r) = first {
                    self.events
                        .push_back(Event::ChildSaFailed { proxy_id: r.proxy_id, reason: reason.clone() });
                }
                self.fail_making(reason);
                Ok(())
            }
            InitiatorAuthStep::Established(est) => {
                let (child, child_error) = (est.child.clone(), est.child_error.clone());
                let ic = est.peer_initial_contact;
                self.ike_up(now, IkeSa::new(*est, true), ic);
                match (first, child, child_error) {
                    (_, Some(c), _) => self.child_up(now, &c),
                    (Some(r), None, Some(e)) => self.child_failed(Exchange::IkeAuth, &r, &e),
                    _ => {}
                }
                Ok(())
            }
        }
    }

    pub(super) fn auth_request(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        h: &Header,
        bytes: &[u8],
    ) -> Handled {
        let Some(done) = self.responder.take(remote, h.spi_i) else {
            return Err((Dropped::UnknownSpi, Exchange::IkeAuth));
        };
        let spi_in = self.rng.spi();
        let child = Some((&self.cfg.child, spi_in));
        let wall = self.wall_at(now);
        match done.handle_auth_at(bytes, &self.cfg.auth, child, wall, &mut self.rng) {
            ResponderAuthStep::Ignored(done, _) => {
                self.responder.put_back(*done);
                Err((Dropped::AuthIgnored, Exchange::IkeAuth))
            }
            ResponderAuthStep::Failed { response, error } => {
                if let Some(r) = response {
                    self.answer(r);
                }
                self.events
                    .push_back(Event::AuthFailed { exchange: Exchange::IkeAuth, detail: error.to_string() });
                Ok(())
            }
            ResponderAuthStep::Established(est) => {
                self.answer(est.last_response.clone());
                // The IKE SA's path is where its IKE_AUTH came: port 4500
                // when the initiator floated (§2.23).
                self.path = (self.arrived != (self.cfg.local, self.cfg.remote)).then_some(self.arrived);
                let (child, child_error) = (est.child.clone(), est.child_error.clone());
                let ic = est.peer_initial_contact;
                // Our own IKE SA in the making is not needed any more: the
                // child it carried waits for its turn on this one.
                if let Some(Making::Auth(_, Some(r), _)) = self.making.take() {
                    self.work.push_front(Work::Child(r.proxy_id));
                }
                self.ike_up(now, IkeSa::new(*est, false), ic);
                if let Some(c) = child {
                    self.child_up(now, &c);
                }
                if let Some(e) = child_error {
                    self.refused_peer_child(1, &e);
                }
                Ok(())
            }
        }
    }
}
