//! ISAKMP wire format (RFC 2408 §3): the fixed header, the generic payload
//! chain and the payload bodies IKEv1 uses.
//!
//! Guarantees: parsing never panics on untrusted input. Every length field
//! is checked against the bytes actually present before it is used; a
//! payload shorter than its fixed part, a length running past its parent,
//! a count that disagrees with the payloads present, or bytes after the
//! last payload of a clear message are refused with a [`WireError`] that
//! says which payload and which length. Views borrow the datagram
//! (`&'a [u8]`); only the SA payload's proposal list is collected into a
//! small `Vec` (IKE is the control plane, not the packet path).

mod attr;
mod header;
mod id;
mod lifetime;
mod notify;
mod payload;
mod sa;

pub use attr::{emit_u32, Attribute, AttributeValue};
pub use header::{ExchangeType, Header, FLAG_COMMIT, FLAG_ENCRYPTION, HEADER_LEN};
pub use id::{IdPayload, IdType};
pub use lifetime::{LifeAttributes, LifeDurations, LIFE_IPSEC, LIFE_ISAKMP};
pub use notify::{DeletePayload, NotifyPayload, NotifyType};
pub use payload::{chain, MessageBuilder, PayloadIter, PayloadType, RawPayload};
pub use sa::{
    emit_sa, Proposal, ProposalRepr, SaPayload, Transform, TransformRepr, DOI_IPSEC, SIT_IDENTITY_ONLY,
};

/// Why bytes were refused as an ISAKMP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the structure needs.
    #[error("{what} truncated: needs {need} bytes, {have} present")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A length field disagrees with the bytes present.
    #[error("{what} has length {len}, but {room} bytes remain")]
    BadLength {
        /// The structure whose length is wrong.
        what: &'static str,
        /// The length it claims.
        len: usize,
        /// The room actually left for it.
        room: usize,
    },
    /// Bytes after the last payload of a message that carries no padding.
    #[error("{extra} bytes after the last payload")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A value this implementation does not accept.
    #[error("{what}: unsupported value {value}")]
    Unsupported {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u32,
    },
    /// A count field disagrees with the items present.
    #[error("{what}: count {count} but {found} present")]
    BadCount {
        /// What was counted.
        what: &'static str,
        /// The count field.
        count: usize,
        /// Items present.
        found: usize,
    },
    /// A structure whose parts are each well formed but do not fit together.
    #[error("{what}: {why}")]
    Invalid {
        /// The structure.
        what: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Result of the wire module.
pub type Result<T> = core::result::Result<T, WireError>;

pub(crate) fn need(what: &'static str, buf: &[u8], n: usize) -> Result<()> {
    if buf.len() < n {
        Err(WireError::Truncated { what, need: n, have: buf.len() })
    } else {
        Ok(())
    }
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}
