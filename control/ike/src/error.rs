//! Errors: what went wrong, with which peer, in which exchange.

use crate::event::Exchange;
use crate::wire::WireError;

/// Why a datagram or an API call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer {peer}: {exchange}: {kind}")]
pub struct Error {
    /// Gateway name.
    pub peer: String,
    /// Exchange concerned.
    pub exchange: Exchange,
    /// What.
    pub kind: ErrorKind,
}

/// The kinds of [`Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Malformed message.
    #[error("malformed message: {0}")]
    Malformed(#[from] WireError),
    /// A payload the message must carry is absent.
    #[error("missing {0} payload")]
    MissingPayload(&'static str),
    /// A payload type not allowed in this message (INVALID-PAYLOAD-TYPE).
    #[error("unexpected payload type {0}")]
    UnexpectedPayload(u8),
    /// The message does not belong to any exchange we know.
    #[error("no matching exchange (unknown cookies or message ID)")]
    NoExchange,
    /// Out-of-order or unexpected message in this exchange.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    /// Decryption failed or the HASH payload did not verify.
    #[error("integrity check failed: {0}")]
    Integrity(&'static str),
    /// A Diffie-Hellman value was refused.
    #[error("{0}")]
    Dh(#[from] crate::crypto::dh::DhError),
    /// From an address that is not the configured peer's.
    #[error("datagram from {0}, not from the configured peer")]
    WrongPeer(std::net::SocketAddr),
    /// The proxy-ID cannot be expressed as IKEv1 IDs (one port only).
    #[error("proxy-ID {0} cannot be sent as IKEv1 IDs: {1}")]
    ProxyIdNotExpressible(String, &'static str),
    /// Refused by policy (reported as an event as well).
    #[error("refused: {0}")]
    Refused(String),
    /// No IKE SA for the call.
    #[error("no established IKE SA")]
    NoIkeSa,
}
