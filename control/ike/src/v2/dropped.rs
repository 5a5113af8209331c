//! Why a [`super::session::Session`] dropped a datagram, or answered one
//! from memory, as data (the pattern of `crate::Discard`): one line per
//! reason with its description; the owner shows the counts.

/// A reason an IKEv2 datagram changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Dropped {
    /// Not an IKEv2 message: shorter than the header, its length field
    /// not the datagram's, another version.
    Unreadable,
    /// From an address that is not the peer's.
    WrongPeer,
    /// SPIs of no IKE SA of this peer, or the I flag of the wrong side.
    UnknownSpi,
    /// A request under a message ID already answered, with other bytes
    /// than the one answered, or older (a replay, §2.2).
    ReplayedRequest,
    /// A request under a message ID beyond the window (§2.3).
    RequestAhead,
    /// A response to no request outstanding, or under another ID (a
    /// duplicate or a replay, §2.2).
    UnexpectedResponse,
    /// The Encrypted payload did not open under the IKE SA's keys
    /// (§2.21.2: it may be forged; no answer).
    Integrity,
    /// Opened, but a payload inside is malformed.
    Malformed,
    /// An exchange type this IKE SA does not take here.
    UnsupportedExchange,
    /// An IKE_SA_INIT message the responder or initiator ignored (its own
    /// counters, [`super::init::InitReason`], say why).
    InitIgnored,
    /// An IKE_AUTH message that is not the one expected or does not open.
    AuthIgnored,
    /// A retransmitted request answered again with the stored response
    /// (§2.1): not processed a second time.
    RetransmitAnswered,
    /// An Encrypted Fragment where fragmentation is off, in IKE_SA_INIT,
    /// or of an IKE SA that did not announce it (RFC 7383 §2.3).
    FragmentUnwanted,
    /// An Encrypted Fragment whose numbers are wrong: Fragment Number 0
    /// or past Total Fragments, Total Fragments 0 or over the bound, or a
    /// Next Payload in a fragment other than the first (RFC 7383 §2.5).
    FragmentInvalid,
    /// An Encrypted Fragment that failed its integrity check (RFC 7383
    /// §2.6: it may be forged; not kept).
    FragmentIntegrity,
    /// A fragment already held.
    FragmentDuplicate,
    /// A fragment of a message older than the one being reassembled, or
    /// of one already answered other than its first (RFC 7383 §2.6.1).
    FragmentStale,
    /// A fragment whose Total Fragments is below that of the message
    /// being reassembled (RFC 7383 §2.6.1).
    FragmentTotalChanged,
    /// The fragments held would exceed the reassembly bound: the message
    /// is discarded.
    FragmentTooLarge,
    /// A message whose fragments did not all arrive in time, discarded.
    FragmentExpired,
}

impl Dropped {
    /// Every reason, in counter order.
    pub const ALL: [Dropped; 20] = [
        Dropped::Unreadable,
        Dropped::WrongPeer,
        Dropped::UnknownSpi,
        Dropped::ReplayedRequest,
        Dropped::RequestAhead,
        Dropped::UnexpectedResponse,
        Dropped::Integrity,
        Dropped::Malformed,
        Dropped::UnsupportedExchange,
        Dropped::InitIgnored,
        Dropped::AuthIgnored,
        Dropped::RetransmitAnswered,
        Dropped::FragmentUnwanted,
        Dropped::FragmentInvalid,
        Dropped::FragmentIntegrity,
        Dropped::FragmentDuplicate,
        Dropped::FragmentStale,
        Dropped::FragmentTotalChanged,
        Dropped::FragmentTooLarge,
        Dropped::FragmentExpired,
    ];

    /// The counter's name.
    pub fn name(self) -> &'static str {
        match self {
            Dropped::Unreadable => "unreadable",
            Dropped::WrongPeer => "wrong-peer",
            Dropped::UnknownSpi => "unknown-spi",
            Dropped::ReplayedRequest => "replayed-request",
            Dropped::RequestAhead => "request-ahead",
            Dropped::UnexpectedResponse => "unexpected-response",
            Dropped::Integrity => "integrity",
            Dropped::Malformed => "malformed",
            Dropped::UnsupportedExchange => "unsupported-exchange",
            Dropped::InitIgnored => "ike-sa-init-ignored",
            Dropped::AuthIgnored => "ike-auth-ignored",
            Dropped::RetransmitAnswered => "retransmit-answered",
            Dropped::FragmentUnwanted => "fragment-unwanted",
            Dropped::FragmentInvalid => "fragment-invalid",
            Dropped::FragmentIntegrity => "fragment-integrity",
            Dropped::FragmentDuplicate => "fragment-duplicate",
            Dropped::FragmentStale => "fragment-stale",
            Dropped::FragmentTotalChanged => "fragment-total-changed",
            Dropped::FragmentTooLarge => "fragment-too-large",
            Dropped::FragmentExpired => "fragment-expired",
        }
    }

    /// The counter's name among IKEv1's discards (`get counter`, the
    /// metrics): the name with `ikev2-` before it.
    pub fn counter_name(self) -> &'static str {
        match self {
            Dropped::Unreadable => "ikev2-unreadable",
            Dropped::WrongPeer => "ikev2-wrong-peer",
            Dropped::UnknownSpi => "ikev2-unknown-spi",
            Dropped::ReplayedRequest => "ikev2-replayed-request",
            Dropped::RequestAhead => "ikev2-request-ahead",
            Dropped::UnexpectedResponse => "ikev2-unexpected-response",
            Dropped::Integrity => "ikev2-integrity",
            Dropped::Malformed => "ikev2-malformed",
            Dropped::UnsupportedExchange => "ikev2-unsupported-exchange",
            Dropped::InitIgnored => "ikev2-ike-sa-init-ignored",
            Dropped::AuthIgnored => "ikev2-ike-auth-ignored",
            Dropped::RetransmitAnswered => "ikev2-retransmit-answered",
            Dropped::FragmentUnwanted => "ikev2-fragment-unwanted",
            Dropped::FragmentInvalid => "ikev2-fragment-invalid",
            Dropped::FragmentIntegrity => "ikev2-fragment-integrity",
            Dropped::FragmentDuplicate => "ikev2-fragment-duplicate",
            Dropped::FragmentStale => "ikev2-fragment-stale",
            Dropped::FragmentTotalChanged => "ikev2-fragment-total-changed",
            Dropped::FragmentTooLarge => "ikev2-fragment-too-large",
            Dropped::FragmentExpired => "ikev2-fragment-expired",
        }
    }

    /// One line for the operator.
    pub fn description(self) -> &'static str {
        match self {
            Dropped::Unreadable => "not an IKEv2 message",
            Dropped::WrongPeer => "from an address that is not the peer's",
            Dropped::UnknownSpi => "IKE SPIs of no IKE SA with this peer",
            Dropped::ReplayedRequest => "request under a message ID already used (replay)",
            Dropped::RequestAhead => "request under a message ID beyond the window",
            Dropped::UnexpectedResponse => "response to no outstanding request (duplicate or replay)",
            Dropped::Integrity => "Encrypted payload failed its integrity check",
            Dropped::Malformed => "malformed payload inside an authenticated message",
            Dropped::UnsupportedExchange => "exchange type not taken on this IKE SA",
            Dropped::InitIgnored => "IKE_SA_INIT message ignored",
            Dropped::AuthIgnored => "IKE_AUTH message ignored",
            Dropped::RetransmitAnswered => "retransmitted request answered from memory",
            Dropped::FragmentUnwanted => "IKE fragment not negotiated or not allowed here",
            Dropped::FragmentInvalid => "IKE fragment with wrong numbers",
            Dropped::FragmentIntegrity => "IKE fragment failed its integrity check",
            Dropped::FragmentDuplicate => "IKE fragment already held",
            Dropped::FragmentStale => "IKE fragment of an older or answered message",
            Dropped::FragmentTotalChanged => "IKE fragment with fewer total fragments than held",
            Dropped::FragmentTooLarge => "IKE fragments over the reassembly bound, message discarded",
            Dropped::FragmentExpired => "IKE fragments not completed in time, message discarded",
        }
    }
}

/// Counts per [`Dropped`] reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DroppedCounts([u64; Dropped::ALL.len()]);

impl DroppedCounts {
    /// Counts one.
    pub fn add(&mut self, d: Dropped) {
        self.0[d as usize] += 1;
    }

    /// The count of one reason.
    pub fn get(&self, d: Dropped) -> u64 {
        self.0[d as usize]
    }

    /// All of them together.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &DroppedCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// (reason, count) for every reason, in [`Dropped::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Dropped, u64)> + '_ {
        Dropped::ALL.iter().copied().zip(self.0.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_counted_in_order_with_distinct_names() {
        for (i, r) in Dropped::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(!r.description().is_empty());
        }
        for r in Dropped::ALL {
            assert_eq!(r.counter_name(), format!("ikev2-{}", r.name()));
        }
        let mut names: Vec<_> = Dropped::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Dropped::ALL.len());
    }
}
