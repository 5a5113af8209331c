//! The session's IKE fragmentation (RFC 7383): our messages cut into
//! Encrypted Fragments as they leave ([`Session::poll_transmit`]), the
//! peer's fragments checked against the window and the IKE SA's keys
//! before they are kept, and a whole message handed to the exchanges
//! like any other.
//!
//! ```text
//! poll_transmit:  HDR, SK{...} > fragment size   -> HDR, SKF(1/n) .. SKF(n/n)
//!                 (the same fragments again for a retransmission)
//! handle_datagram: HDR, SKF(k/n) -> window, ICV -> kept | whole -> exchanges
//!                  HDR, SKF(1/n) of the request answered last -> response again
//! ```

use super::*;

use crate::v2::frag::{self, Accepted};
use crate::v2::sk::SkCipher;

/// Fragmented messages of ours remembered, so that a retransmission
/// sends the very same fragments: our request and our response in
/// flight, and an old IKE SA's Delete.
const SENT_FRAGMENTS_KEPT: usize = 4;

/// Where a fragment belongs.
enum FragSa {
    /// The IKE SA, or one it replaced (by its place among them).
    Ike { old: Option<usize> },
    /// Our IKE_AUTH request's response.
    MakingAuth,
    /// An IKE_AUTH request for a half-open IKE SA of the responder.
    HalfOpen(Box<SkCipher>),
}

impl<R: Random> Session<R> {
    /// Both ends announced fragmentation (RFC 7383 §2.3) and it is on
    /// here: the size of the IP datagrams to fill.
    fn fragment_size(&self) -> Option<u16> {
        self.cfg.fragment_size.filter(|_| self.peer_fragments)
    }

    /// Records whether the peer's IKE_SA_INIT message `msg` announced
    /// fragmentation; an IKE SA rekey keeps what the first one agreed.
    pub(super) fn peer_announced_fragments(&mut self, msg: &[u8]) {
        self.peer_fragments = frag::announced(msg);
    }

    /// The next datagram: a message too big for the fragment size leaves
    /// as its fragments, one per call (RFC 7383 §2.5).
    pub(super) fn next_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front()?;
        let Some(size) = self.fragment_size() else { return Some(t) };
        let max = frag::max_message(size, t.local, t.remote);
        if t.bytes.len() <= max {
            return Some(t);
        }
        let kept = self.sent_fragments.iter().find(|(whole, _)| *whole == t.bytes).map(|(_, f)| f.clone());
        let fragments = match kept {
            Some(f) => f,
            None => {
                let Ok(h) = Header::parse(&t.bytes) else { return Some(t) };
                let spis = (h.spi_i, h.spi_r);
                let old = self.old_ike.iter_mut().find(|o| o.sa.spis() == spis);
                let cipher = match (&mut self.ike, old, &mut self.making) {
                    (Some(ike), _, _) if ike.spis() == spis => ike.cipher_mut(),
                    (_, Some(old), _) => old.sa.cipher_mut(),
                    (_, _, Some(Making::Auth(s, _, _))) if s.spis() == spis => s.cipher_mut(),
                    // An SA gone since: the message goes whole.
                    _ => return Some(t),
                };
                match frag::fragment(cipher, &t.bytes, max, &mut self.rng) {
                    Ok(Some(f)) => {
                        if self.sent_fragments.len() == SENT_FRAGMENTS_KEPT {
                            self.sent_fragments.pop_front();
                        }
                        self.sent_fragments.push_back((t.bytes.clone(), f.clone()));
                        f
                    }
                    Ok(None) | Err(_) => return Some(t),
                }
            }
        };
        let (local, remote) = (t.local, t.remote);
        for bytes in fragments.into_iter().rev() {
            self.transmits.push_front(Transmit { local, remote, bytes });
        }
        self.transmits.pop_front()
    }

    /// A datagram whose first payload is an Encrypted Fragment (RFC 7383
    /// §2.6), arrived at `local` from `remote`.
    pub(super) fn fragment_in(&mut self, now: Instant, addrs: Addrs, h: &Header, bytes: &[u8]) -> Handled {
        let exchange = exchange_of(h);
        if self.cfg.fragment_size.is_none() || h.exchange == ExchangeType::IkeSaInit {
            return Err((Dropped::FragmentUnwanted, exchange));
        }
        let (_, number, _) = frag::check_numbers(bytes).map_err(|d| (d, exchange))?;
        let sa = self.fragment_sa(addrs.1, h).map_err(|d| (d, exchange))?;
        // The window first (§2.2), then the ICV (§2.6): nothing is kept
        // that is not the peer's and not due.
        let cipher = match &sa {
            FragSa::Ike { old: None } => self.ike.as_ref().map(|s| &s.established().cipher),
            FragSa::Ike { old: Some(i) } => self.old_ike.get(*i).map(|o| &o.sa.established().cipher),
            FragSa::MakingAuth => match &self.making {
                Some(Making::Auth(s, _, _)) => Some(s.cipher()),
                _ => None,
            },
            FragSa::HalfOpen(c) => Some(&**c),
        };
        let cipher = cipher.ok_or((Dropped::UnknownSpi, exchange))?;
        let opened = cipher.open_fragment(bytes).map_err(|e| match e {
            super::super::sk::SkError::BadIcv => (Dropped::FragmentIntegrity, exchange),
            _ => (Dropped::FragmentInvalid, exchange),
        })?;
        if let FragSa::Ike { old } = sa {
            if !h.is_response() {
                let ike = match old {
                    Some(i) => self.old_ike.get(i).map(|o| &o.sa),
                    None => self.ike.as_ref(),
                };
                let Some(ike) = ike else { return Err((Dropped::UnknownSpi, exchange)) };
                // RFC 7383 §2.6.1: a fragment of the request answered last
                // is a retransmission; fragment 1 alone sends the
                // response again, once.
                if let Some((id, response)) = ike.answered() {
                    if id == h.message_id {
                        if number != 1 {
                            return Err((Dropped::FragmentStale, exchange));
                        }
                        let response = response.to_vec();
                        self.answer(response);
                        return Err((Dropped::RetransmitAnswered, exchange));
                    }
                }
                if h.message_id != ike.peer_next() {
                    let d = if h.message_id < ike.peer_next() {
                        Dropped::FragmentStale
                    } else {
                        Dropped::RequestAhead
                    };
                    return Err((d, exchange));
                }
            }
        }
        match self.reassembly.accept(now, &opened, bytes) {
            Accepted::Kept => Ok(()),
            Accepted::Dropped(d) => Err((d, exchange)),
            Accepted::Complete(message) => match Header::parse(&message) {
                Ok(whole) => self.route(now, addrs, &whole, &message),
                Err(_) => Err((Dropped::FragmentTooLarge, exchange)),
            },
        }
    }

    /// The IKE SA a fragment with header `h` from `remote` belongs to,
    /// if its direction is due there.
    fn fragment_sa(&self, remote: SocketAddr, h: &Header) -> Result<FragSa, Dropped> {
        let spis = (h.spi_i, h.spi_r);
        if self.ike.as_ref().is_some_and(|s| s.spis() == spis && s.is_from_peer(h)) {
            let due = !h.is_response() || self.out.as_ref().is_some_and(|o| o.message_id == h.message_id);
            return due.then_some(FragSa::Ike { old: None }).ok_or(Dropped::UnexpectedResponse);
        }
        if let Some((i, old)) =
            self.old_ike.iter().enumerate().find(|(_, o)| o.sa.spis() == spis && o.sa.is_from_peer(h))
        {
            let due = !h.is_response() || old.delete.as_ref().is_some_and(|d| d.0 == h.message_id);
            return due.then_some(FragSa::Ike { old: Some(i) }).ok_or(Dropped::UnexpectedResponse);
        }
        if h.exchange != ExchangeType::IkeAuth || h.message_id != 1 {
            return Err(Dropped::UnknownSpi);
        }
        if h.is_response() {
            return match &self.making {
                Some(Making::Auth(s, _, _)) if s.spis() == spis => Ok(FragSa::MakingAuth),
                _ => Err(Dropped::UnknownSpi),
            };
        }
        let done = self.responder.peek(remote, h.spi_i).ok_or(Dropped::UnknownSpi)?;
        let x = done.exchange();
        if x.spi_r != h.spi_r || !h.from_initiator() {
            return Err(Dropped::UnknownSpi);
        }
        SkCipher::new(&x.keys, false).map(|c| FragSa::HalfOpen(Box::new(c))).map_err(|_| Dropped::UnknownSpi)
    }

    /// Discards reassemblies that waited too long, counted.
    pub(super) fn expire_fragments(&mut self, now: Instant) {
        for _ in 0..self.reassembly.expire(now) {
            self.dropped.add(Dropped::FragmentExpired);
        }
    }
}
