//! Errors of proxy-ID parsing and table building.
//!
//! Every error names what was wrong and where: the text that failed to
//! parse, or the proxy-ID (by its position in the configuration and in
//! ScreenOS words) that a table refused.

/// Why a prefix, a service, a proxy-ID or a proxy-ID table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The text is not `address/length` (or `address/dotted-mask`, or a bare
    /// address) of IPv4 or IPv6.
    #[error("invalid prefix `{text}`: {reason}")]
    InvalidPrefix {
        /// The text as given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The prefix has bits set past its length (`10.1.1.5/24`). Refused
    /// rather than masked, since it is usually a typo for a host (`/32`) or
    /// for the network.
    #[error("prefix `{text}` has host bits set (did you mean `{canonical}`?)")]
    HostBitsSet {
        /// The text (or address/length) as given.
        text: String,
        /// The same prefix with the host bits cleared.
        canonical: String,
    },

    /// A port range is empty or malformed.
    #[error("invalid port range `{text}`: {reason}")]
    InvalidPortRange {
        /// The text (or `first-last`) as given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The service text is neither a known service name nor a
    /// `protocol ...` specification.
    #[error("unknown service `{text}`")]
    UnknownService {
        /// The text as given.
        text: String,
    },

    /// A service specification is malformed, for example port ranges on a
    /// protocol that has no ports (RFC 4301 §4.4.1.1: ports are selectors
    /// only for protocols that carry them).
    #[error("invalid service `{text}`: {reason}")]
    InvalidService {
        /// The text (or a description of the values) as given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The text is not `local-ip PREFIX remote-ip PREFIX SERVICE`.
    #[error("invalid proxy-id `{text}`: {reason}")]
    InvalidProxyId {
        /// The text as given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A proxy-ID's local and remote prefixes are of different address
    /// families; no packet can match it.
    #[error("proxy-id #{position} ({proxy_id}): local-ip and remote-ip are of different address families")]
    MixedFamily {
        /// Position of the proxy-ID in the configured list (0-based).
        position: usize,
        /// The proxy-ID in ScreenOS words.
        proxy_id: String,
    },

    /// Two proxy-IDs of one VPN have the same local prefix, remote prefix
    /// and service: each would need its own SA but no packet could ever
    /// tell them apart.
    #[error("proxy-id #{second} duplicates proxy-id #{first}: {proxy_id}")]
    DuplicateProxyId {
        /// Position of the first occurrence (0-based).
        first: usize,
        /// Position of the duplicate (0-based).
        second: usize,
        /// The proxy-ID in ScreenOS words.
        proxy_id: String,
    },

    /// More proxy-IDs than one table holds.
    #[error("too many proxy-ids on one vpn: {count} (at most {limit})")]
    TooManyProxyIds {
        /// How many were given.
        count: usize,
        /// The limit, [`crate::MAX_PROXY_IDS`].
        limit: usize,
    },
}
