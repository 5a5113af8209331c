//! Why a datagram (or a part of one) was discarded without an answer, as data (the pattern of
//! `fastpath/dataplane/src/drop.rs`): one line per reason with its
//! description; the owner shows the counts.

/// A reason to discard a datagram (or to forget a half-open exchange).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Discard {
    /// The half-open limit in all was reached: a new exchange not opened.
    HalfOpenLimitGlobal,
    /// A source's half-open share was full: its oldest first message
    /// (still waiting for its second) was forgotten, or, when every one
    /// of them has shown its address, the new one was not opened.
    HalfOpenLimitSource,
    /// A half-open exchange timed out.
    HalfOpenTimedOut,
    /// A Main Mode message 3 whose responder cookie is not ours for its
    /// initiator cookie and addresses.
    CookieMismatch,
    /// An Aggressive Mode request to a gateway configured for Main Mode.
    AggressiveNotConfigured,
    /// An Aggressive Mode request beyond the rate limit.
    AggressiveRateLimited,
    /// A Quick Mode or Informational message whose message ID was already
    /// used under this ISAKMP SA (a replay).
    ReplayedMessageId,
    /// A copy of a message already handled that needs no answer.
    ReplayedMessage,
    /// An R-U-THERE-ACK whose sequence number is not one of the
    /// outstanding probe's (RFC 3706 §5).
    DpdAckStale,
    /// An unauthenticated notification that may not end the exchange it
    /// names (RFC 2408 §5: only an answer to our first message may).
    UnauthenticatedNotify,
    /// A first message whose SA payload is larger than a half-open
    /// exchange may keep.
    OversizedSa,
    /// A responder's lifetime longer than the one we proposed (in its SA
    /// payload or a RESPONDER-LIFETIME notification): not adopted (RFC
    /// 2407 §4.6.3.1 lets a responder shorten a lifetime, never lengthen
    /// it).
    LifetimeLonger,
    /// A RESPONDER-LIFETIME notification that is malformed or names
    /// another SA: ignored, the exchange goes on (notifications are
    /// informational, RFC 2408 §3.14).
    LifetimeNotifyMalformed,
    /// From an address no gateway is configured for (counted by the
    /// owner of the peers).
    NoGateway,
}

impl Discard {
    /// Every reason, in counter order.
    pub const ALL: [Discard; 14] = [
        Discard::HalfOpenLimitGlobal,
        Discard::HalfOpenLimitSource,
        Discard::HalfOpenTimedOut,
        Discard::CookieMismatch,
        Discard::AggressiveNotConfigured,
        Discard::AggressiveRateLimited,
        Discard::ReplayedMessageId,
        Discard::ReplayedMessage,
        Discard::DpdAckStale,
        Discard::UnauthenticatedNotify,
        Discard::OversizedSa,
        Discard::LifetimeLonger,
        Discard::LifetimeNotifyMalformed,
        Discard::NoGateway,
    ];

    /// The counter's name.
    pub fn name(self) -> &'static str {
        match self {
            Discard::HalfOpenLimitGlobal => "half-open-limit-global",
            Discard::HalfOpenLimitSource => "half-open-limit-source",
            Discard::HalfOpenTimedOut => "half-open-timed-out",
            Discard::CookieMismatch => "cookie-mismatch",
            Discard::AggressiveNotConfigured => "aggressive-not-configured",
            Discard::AggressiveRateLimited => "aggressive-rate-limited",
            Discard::ReplayedMessageId => "replayed-message-id",
            Discard::ReplayedMessage => "replayed-message",
            Discard::DpdAckStale => "dpd-ack-stale",
            Discard::UnauthenticatedNotify => "unauthenticated-notify",
            Discard::OversizedSa => "oversized-sa",
            Discard::LifetimeLonger => "responder-lifetime-longer",
            Discard::LifetimeNotifyMalformed => "responder-lifetime-malformed",
            Discard::NoGateway => "no-gateway",
        }
    }

    /// One line for the operator.
    pub fn description(self) -> &'static str {
        match self {
            Discard::HalfOpenLimitGlobal => {
                "new exchange not opened: half-open exchanges at their limit in all"
            }
            Discard::HalfOpenLimitSource => {
                "half-open exchange displaced: all were in use and its source held the most"
            }
            Discard::HalfOpenTimedOut => "half-open exchange forgotten: not authenticated in time",
            Discard::CookieMismatch => "Main Mode message with a responder cookie that is not ours",
            Discard::AggressiveNotConfigured => {
                "Aggressive Mode request to a Main Mode gateway (not answered)"
            }
            Discard::AggressiveRateLimited => "Aggressive Mode request over the rate limit (not answered)",
            Discard::ReplayedMessageId => "message ID already used under this ISAKMP SA (replay)",
            Discard::ReplayedMessage => "copy of a message already handled that needs no answer",
            Discard::DpdAckStale => "R-U-THERE-ACK without the outstanding sequence number",
            Discard::UnauthenticatedNotify => "unauthenticated notification that may not end an exchange",
            Discard::OversizedSa => "first message with an SA payload too large to keep",
            Discard::LifetimeLonger => "responder's lifetime longer than the one proposed (not adopted)",
            Discard::LifetimeNotifyMalformed => {
                "RESPONDER-LIFETIME notification malformed or for another SA (ignored)"
            }
            Discard::NoGateway => "from an address no gateway is configured for",
        }
    }
}

/// Counts per [`Discard`] reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discards([u64; Discard::ALL.len()]);

impl Discards {
    /// Counts one.
    pub fn add(&mut self, d: Discard) {
        self.0[d as usize] += 1;
    }

    /// The count of one reason.
    pub fn get(&self, d: Discard) -> u64 {
        self.0[d as usize]
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &Discards) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// (reason, count) for every reason, in [`Discard::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Discard, u64)> + '_ {
        Discard::ALL.iter().copied().zip(self.0.iter().copied())
    }
}
