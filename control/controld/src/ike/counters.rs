//! IKE events counted since controld started, for the Prometheus
//! endpoint and `get counter`.

/// The kinds of IKE events counted, as the `event` label shows them:
/// exchanges that completed (`phase1-up`: Main or Aggressive Mode;
/// `phase2-up`: Quick Mode) and the ways they fail or end.
pub const IKE_EVENTS: [&str; 11] = [
    "phase1-up",
    "phase1-down",
    "phase2-up",
    "phase2-down",
    "phase2-failed",
    "no-proposal-chosen",
    "proxy-id-mismatch",
    "auth-failed",
    "dpd-timeout",
    "notify",
    "other",
];

/// IKE events since controld started, by kind ([`IKE_EVENTS`]): counted by
/// the IKE manager as the peers report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IkeCounters {
    pub(crate) counts: [u64; IKE_EVENTS.len()],
    /// IKE datagrams discarded unanswered (and half-open exchanges
    /// forgotten), by reason ([`esprit_ike::Discard`]).
    pub(crate) discards: esprit_ike::Discards,
    /// IKEv2 datagrams dropped (or answered from memory), by reason.
    pub(crate) v2_dropped: esprit_ike::v2::dropped::DroppedCounts,
}

impl IkeCounters {
    /// Counts one event.
    pub fn record(&mut self, e: &esprit_ike::Event) {
        use esprit_ike::Event as E;
        let i = match e {
            E::IkeSaUp { .. } => 0,
            E::IkeSaDown { .. } => 1,
            E::ChildSaUp(_) => 2,
            E::ChildSaDown { .. } => 3,
            E::ChildSaFailed { .. } => 4,
            E::ProposalMismatch { .. } => 5,
            E::ProxyIdMismatch { .. } => 6,
            E::AuthFailed { .. } => 7,
            E::DpdTimeout => 8,
            E::Notify { .. } => 9,
            _ => 10,
        };
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
    }

    /// (kind, count) for every kind, in [`IKE_EVENTS`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        IKE_EVENTS.iter().copied().zip(self.counts.iter().copied())
    }

    /// The discard counts (summed over the peers by the IKE manager):
    /// IKEv1's and the manager's, and IKEv2's.
    pub fn set_discards(&mut self, d: esprit_ike::Discards, v2: esprit_ike::v2::dropped::DroppedCounts) {
        self.discards = d;
        self.v2_dropped = v2;
    }

    /// (reason, count) for every discard reason, IKEv2's as `ikev2-...`.
    pub fn discards(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let v2 = self.v2_dropped.iter().map(|(d, n)| (d.counter_name(), n));
        self.discards.iter().map(|(d, n)| (d.name(), n)).chain(v2)
    }
}
