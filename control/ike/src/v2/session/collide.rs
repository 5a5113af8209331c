//! Two children made at the same time for one proxy-ID, one by each end:
//! both ends rekeyed the same child (RFC 7296 §2.8.1), or both asked for
//! a new child for the same proxy-ID (crossing acquires; RFC 7296 allows
//! the duplicate, esprit keeps one pair per proxy-ID).
//!
//! ```text
//! A                                                  B
//! CREATE_CHILD_SA{[N(REKEY_SA)], Ni_a}  -->  <--  CREATE_CHILD_SA{.., Ni_b}
//!   answers B's: child Y (B made it)        answers A's: child X (A made it)
//! <-- {Nr_b}: child X                                 {Nr_a} --> : child Y
//! ```
//!
//! Both ends compute the same rule from the same four nonces: the child
//! whose exchange holds the lowest of them is redundant, and the end that
//! made it deletes it; the other survives on both ends. When a rekey is
//! settled so, the end that made the survivor deletes the old child.
//!
//! The rule applies however the messages cross. An end that sees its own
//! request answered before the peer's request arrives settles the two
//! children when the second is made, as the other end does; and when it
//! refuses the peer's rekey instead (its old child already going, §2.25),
//! the other end's rekey fails and its own answered one survives alone.
//!
//! What the owner sees follows the survivor: the redundant child is
//! reported by its inbound SA only ([`Event::ChildSaInbound`]: the peer
//! may have sent on it before it learnt which survives), never as a pair
//! up after the survivor, and goes down when its Delete is answered. A
//! peer that does not delete the redundant child it made has it deleted
//! after [`Session::crossing_window`].
//!
//! A new child (not a rekey) is taken for a collision only when the other
//! end made the other one, not longer ago than our retransmission
//! schedule lasts: a request older than that cannot have crossed ours.

use super::*;

impl<R: Random> Session<R> {
    /// A child made by CREATE_CHILD_SA, by us or by the peer, rekeying
    /// the child `replaces` or new: kept, settled against one the other
    /// end made at the same time for the same proxy-ID, and reported.
    pub(super) fn child_made(&mut self, now: Instant, c: &NewChild, replaces: Option<u32>) {
        let ours = c.sa.initiator;
        let window = self.crossing_window();
        let partner = self.children.iter().position(|o| {
            o.proxy_id == c.sa.proxy_id
                && o.live()
                && o.ours != ours
                && o.replaces == replaces
                && (replaces.is_some() || now.saturating_duration_since(o.made) <= window)
        });
        self.record_child(now, c, replaces);
        let Some(pi) = partner else {
            self.report_child(c, false);
            match replaces {
                // The peer's rekey while ours of the same child runs: our
                // answer settles it.
                Some(old) if !ours && self.rekeying(old) => {}
                Some(old) => self.replaced(old, ours),
                None => {}
            }
            return;
        };
        let new_redundant = holds_the_lowest_nonce(&c.lowest_nonce, &self.children[pi].lowest_nonce);
        let (loser, winner_ours) =
            if new_redundant { (c.sa.spi_in, !ours) } else { (self.children[pi].spi_in, ours) };
        self.report_child(c, new_redundant);
        self.make_redundant(now, loser);
        if let Some(old) = replaces {
            self.replaced(old, winner_ours);
        }
    }

    /// The child reported to the owner: the pair up, or only its inbound
    /// SA when it is redundant.
    fn report_child(&mut self, c: &NewChild, redundant: bool) {
        let sa = Box::new(self.on_path(c.sa.clone()));
        self.events.push_back(if redundant { Event::ChildSaInbound(sa) } else { Event::ChildSaUp(sa) });
    }

    /// Our rekey of the child `old` is in flight.
    fn rekeying(&self, old: u32) -> bool {
        matches!(&self.out, Some(Outstanding { kind: OutKind::Child { rekey_of: Some(o), .. }, .. }) if *o == old)
    }

    /// The child `old` is replaced by a rekey (§2.8): deleted by us if we
    /// made its successor, by the peer otherwise.
    fn replaced(&mut self, old: u32, by_us: bool) {
        let Some(oc) = self.children.iter_mut().find(|c| c.spi_in == old) else { return };
        oc.rekeyed = true;
        if by_us {
            self.work.push_front(Work::Delete(old));
        }
    }

    /// The child `spi_in` lost the tie-break: we delete it if we made it;
    /// the peer has until the crossing window ends to delete its own.
    fn make_redundant(&mut self, now: Instant, spi_in: u32) {
        let window = self.crossing_window();
        let Some(c) = self.children.iter_mut().find(|c| c.spi_in == spi_in) else { return };
        c.redundant = true;
        if c.ours {
            self.work.push_front(Work::Delete(spi_in));
        } else {
            c.delete_at = Some(now + window);
        }
    }

    /// Our rekey of `old` failed: if the peer's rekey of it was answered
    /// meanwhile, that one replaced it (the peer, having finished first,
    /// refused ours, §2.25, and deletes `old`); otherwise the owner hears
    /// of it to try again.
    pub(super) fn rekey_failed(&mut self, old: u32, proxy_id: ProxyId, reason: Reason) {
        if !self.children.iter().any(|c| c.replaces == Some(old) && !c.ours && c.live()) {
            self.events.push_back(Event::ChildSaFailed { proxy_id, reason });
        } else if let Some(oc) = self.children.iter_mut().find(|c| c.spi_in == old) {
            oc.rekeyed = true;
        }
    }

    /// Redundant children the peer made and did not delete in time: we
    /// delete them.
    pub(super) fn delete_redundant(&mut self, now: Instant) {
        let due: Vec<u32> = self
            .children
            .iter_mut()
            .filter(|c| c.delete_at.is_some_and(|t| t <= now))
            .map(|c| {
                c.delete_at = None;
                c.spi_in
            })
            .collect();
        for spi in due {
            if !self.work.contains(&Work::Delete(spi)) {
                self.work.push_back(Work::Delete(spi));
            }
        }
    }

    /// How long our retransmission schedule lasts (§2.1): a request of
    /// the peer's that crossed ours arrives within it.
    pub(super) fn crossing_window(&self) -> Duration {
        let r = self.cfg.retransmit;
        let mut interval = r.initial;
        let mut span = r.initial;
        for _ in 0..r.tries.min(16) {
            interval = interval.saturating_mul(2);
            span = span.saturating_add(interval);
        }
        span
    }
}

/// §2.8.1: of two exchanges that made a child each at once, the one
/// whose nonces hold the lowest of all four made the redundant child.
/// `this` and `other` are the lower nonce of each exchange (compared as
/// octet strings, the shorter first on a common prefix). Our nonces are
/// 256 random bits: equal ones are not planned for.
pub(super) fn holds_the_lowest_nonce(this: &[u8], other: &[u8]) -> bool {
    this < other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn the_lowest_nonce_made_the_redundant_child() {
        assert!(holds_the_lowest_nonce(&[0x10; 32], &[0x11; 32]));
        assert!(!holds_the_lowest_nonce(&[0x11; 32], &[0x10; 32]));
        let mut a = [0xff; 32];
        a[31] = 0;
        assert!(holds_the_lowest_nonce(&a, &[0xff; 32]));
        assert!(!holds_the_lowest_nonce(&[1, 0], &[0, 0xff]));
    }
}
