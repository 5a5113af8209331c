//! Both ends rekey the IKE SA at once (RFC 7296 §2.8.1, §2.8.2, §2.18):
//!
//! ```text
//! A                                                       B
//! HDR(old), SK{SA, Ni_a, KEi}  -->        <--  HDR(old), SK{SA, Ni_b, KEi}
//!   answers B's: new SA "Y" (kept aside)     answers A's: new SA "X"
//! <-- SK{SA, Nr_b, KEr}: new SA "X"                SK{SA, Nr_a, KEr} -->
//! ```
//!
//! Three IKE SAs then exist. Both ends compute the same rule from the
//! four nonces: the new SA whose exchange holds the lowest of them is
//! redundant, and the end that initiated it deletes it (on itself); the
//! other new SA takes every child, once (one `IkeSaDown{Rekeyed}` and one
//! `IkeSaUp` per end), and its initiator deletes the old SA as after any
//! rekey. The other end keeps each SA it does not delete until the
//! peer's Delete of it comes.
//!
//! When only one end saw the crossing (the other had its answer before
//! our request arrived, and so deleted the old SA and refused our rekey
//! with TEMPORARY_FAILURE, §2.25), the SA we made answering the peer is
//! the one: it takes the children when the refusal or the peer's Delete
//! of the old SA comes, whichever first (§2.8.2: our own attempt is
//! forgotten). A rekey of the peer's that meets any other request of ours
//! is refused with TEMPORARY_FAILURE, and the owner asks again.

use super::collide::holds_the_lowest_nonce;
use super::*;

impl<R: Random> Session<R> {
    /// Our rekey of the IKE SA is in flight.
    pub(super) fn our_ike_rekey_runs(&self) -> bool {
        matches!(&self.out, Some(Outstanding { kind: OutKind::IkeRekey(_), .. }))
    }

    /// Keeps `sa`, replaced, until it is deleted: by us now (`delete`:
    /// a Delete sent on it, §1.4.1) or by the peer.
    pub(super) fn keep_old_ike(&mut self, now: Instant, mut sa: IkeSa, delete: bool) {
        let delete = if delete {
            let mut chain = PayloadChain::new();
            chain.push_payload(&Payload::Delete(DeletePayload::new(ProtocolId::Ike, 0, &[])));
            match sa.send_request(ExchangeType::Informational, &chain, &mut self.rng) {
                Ok((id, bytes)) => {
                    self.send(bytes.clone());
                    Some((id, bytes, Retx::new(now, self.cfg.retransmit)))
                }
                Err(_) => None,
            }
        } else {
            None
        };
        if self.old_ike.len() >= OLD_IKE_KEPT {
            self.old_ike.remove(0);
        }
        self.old_ike.push(OldIke { sa, delete });
    }

    /// Our rekey made `ours`; settled against the one we made answering
    /// the peer's at the same time, if any.
    pub(super) fn our_ike_rekey_done(&mut self, now: Instant, ours: IkeSa) {
        let Some(theirs) = self.crossed_ike.take() else {
            self.ike_rekeyed(now, ours, true);
            return;
        };
        if holds_the_lowest_nonce(&lowest_nonce(&ours), &lowest_nonce(&theirs)) {
            // Ours is redundant: deleted by us; the peer made the survivor
            // and deletes the old SA.
            let Some(old) = self.ike.take() else { return };
            self.keep_old_ike(now, old, false);
            self.keep_old_ike(now, ours, true);
            self.events.push_back(Event::IkeSaDown { reason: Reason::Rekeyed });
            self.report_up(&theirs);
            self.ike = Some(*theirs);
            self.last_heard = Some(now);
        } else {
            // Ours survives: we delete the old SA, the peer its own.
            self.ike_rekeyed(now, ours, true);
            self.keep_old_ike(now, *theirs, false);
        }
    }

    /// Our rekey failed (the Notify `n`). If we made an SA answering the
    /// peer's meanwhile, the peer finished first and refused ours: its SA
    /// is the one (the peer deletes the old SA). Else the owner hears of
    /// it, to try again.
    pub(super) fn our_ike_rekey_failed(&mut self, now: Instant, n: NotifyType) {
        match self.crossed_ike.take() {
            Some(theirs) => self.ike_rekeyed(now, *theirs, false),
            None => {
                self.events.push_back(Event::Phase1RekeyFailed { reason: Reason::PeerNotify(v1_notify(n)) })
            }
        }
    }

    /// The peer deleted the IKE SA (its Delete answered) while our rekey
    /// of it ran and we had answered the peer's: the peer finished its
    /// rekey without seeing ours (§2.8.2). The SA we made answering it
    /// takes the children; ours is forgotten. False if there is none.
    /// (The Delete's arrival already counts as hearing from the peer.)
    pub(super) fn peer_finished_its_rekey(&mut self) -> bool {
        let Some(theirs) = self.crossed_ike.take() else { return false };
        if self.our_ike_rekey_runs() {
            self.out = None;
        }
        self.ike = None;
        self.events.push_back(Event::IkeSaDown { reason: Reason::Rekeyed });
        self.report_up(&theirs);
        self.ike = Some(*theirs);
        true
    }
}

/// The lower nonce of the exchange that made `sa` (§2.8.1).
fn lowest_nonce(sa: &IkeSa) -> Vec<u8> {
    let x = &sa.established().exchange;
    x.ni.as_slice().min(x.nr.as_slice()).to_vec()
}
