//! IKEv2 wire format (RFC 7296 §3): the header, the generic payload chain
//! and every payload body the exchanges use, as zero-copy views that double
//! as builders.
//!
//! Guarantees: parsing never panics on untrusted input and never
//! allocates, except where a caller asks for an owned copy. Every length
//! field is checked against the bytes actually present before it is used:
//! the header's length against the datagram (§3.1), each payload's against
//! what is left of the message (§3.2), each substructure's against its
//! payload. A refusal is an [`Error`] that names the structure and the byte
//! offset where it starts, counted from the first byte of the message (for
//! the payloads inside an Encrypted payload, from the first byte of its
//! decrypted plaintext), and maps to the Notify an exchange answers with
//! ([`Error::notify`]).
//!
//! Builders ([`PayloadChain`], [`MessageBuilder`]) append to a `Vec`: IKE
//! is the control plane, and a message is built once and retransmitted as
//! the same bytes (§2.1).

/// A wire enumeration: named values, `Other` for the rest, and the
/// conversions both ways (every value maps to exactly one variant, so
/// what is parsed is emitted unchanged).
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $repr:ty {
            $($(#[$doc:meta])* $variant:ident = $value:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$doc])* $variant,)*
            /// Any other value.
            Other($repr),
        }

        impl $name {
            /// Wire value.
            pub fn value(self) -> $repr {
                match self {
                    $($name::$variant => $value,)*
                    $name::Other(v) => v,
                }
            }

            /// From the wire value.
            pub fn from_value(v: $repr) -> $name {
                match v {
                    $($value => $name::$variant,)*
                    other => $name::Other(other),
                }
            }
        }
    };
}

mod encrypted;
mod header;
mod notify;
mod payload;
mod payloads;
mod sa;
mod ts;

pub use encrypted::{EncryptedFragment, ENCRYPTED_FRAGMENT_FIXED};
pub use header::{ExchangeType, Header, FLAG_INITIATOR, FLAG_RESPONSE, FLAG_VERSION, HEADER_LEN};
pub use notify::{DeletePayload, NotifyPayload, NotifyType, ProtocolId};
pub use payload::{MessageBuilder, PayloadChain, PayloadIter, PayloadType, RawPayload, GENERIC_HEADER_LEN};
pub use payloads::{
    AuthMethod, AuthPayload, CertEncoding, CertPayload, IdPayload, IdType, KePayload, NoncePayload, Payload,
    VendorIdPayload, NONCE_MAX, NONCE_MIN,
};
pub use sa::{
    transform_id, Attribute, AttributeValue, Proposal, ProposalIter, ProposalRepr, SaPayload, Transform,
    TransformIter, TransformRepr, TransformType, ATTR_KEY_LENGTH,
};
pub use ts::{TrafficSelector, TsAddresses, TsIter, TsPayload, TS_IPV4_ADDR_RANGE, TS_IPV6_ADDR_RANGE};

/// Why bytes were refused as an IKEv2 message or payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than the structure's fixed part needs.
    #[error("{what} at byte {at} truncated: needs {need} bytes, {have} present")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Where it starts.
        at: usize,
        /// Bytes it needs.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A length field that does not fit the bytes present (too short for
    /// its own header, or running past its parent).
    #[error("{what} at byte {at} has length {len}, but {room} bytes are there for it")]
    BadLength {
        /// The structure whose length is wrong.
        what: &'static str,
        /// Where it starts.
        at: usize,
        /// The length it claims.
        len: usize,
        /// The room actually left for it.
        room: usize,
    },
    /// A field whose value this implementation refuses.
    #[error("{what} at byte {at}: value {value} refused")]
    BadValue {
        /// The field.
        what: &'static str,
        /// Where the structure holding it starts.
        at: usize,
        /// Its value.
        value: u32,
    },
    /// A count field that disagrees with the items present.
    #[error("{what} at byte {at}: count {count}, but {found} present")]
    BadCount {
        /// What was counted.
        what: &'static str,
        /// Where the structure holding the count starts.
        at: usize,
        /// The count field.
        count: usize,
        /// Items present.
        found: usize,
    },
    /// A major version other than 2 (RFC 7296 §3.1, §2.5).
    #[error("IKE major version {major} (only 2 is spoken)")]
    UnsupportedVersion {
        /// The major version received.
        major: u8,
    },
    /// A payload of a type not understood, with the critical bit set
    /// (RFC 7296 §2.5, §3.2): the message is refused.
    #[error("payload type {kind} at byte {at} is not understood and is marked critical")]
    UnsupportedCritical {
        /// Its payload type.
        kind: u8,
        /// Where its generic header starts.
        at: usize,
    },
}

impl Error {
    /// The error Notify an exchange answers a request refused this way
    /// with (RFC 7296 §3.10.1): UNSUPPORTED_CRITICAL_PAYLOAD (whose data is
    /// the payload type, §3.10.1), INVALID_MAJOR_VERSION, or INVALID_SYNTAX.
    pub fn notify(&self) -> NotifyType {
        match self {
            Error::UnsupportedCritical { .. } => NotifyType::UnsupportedCriticalPayload,
            Error::UnsupportedVersion { .. } => NotifyType::InvalidMajorVersion,
            _ => NotifyType::InvalidSyntax,
        }
    }
}

/// Result of the wire module.
pub type Result<T> = core::result::Result<T, Error>;

/// Refuses `buf` if it is shorter than `n` bytes.
fn need(what: &'static str, at: usize, buf: &[u8], n: usize) -> Result<()> {
    if buf.len() < n {
        Err(Error::Truncated { what, at, need: n, have: buf.len() })
    } else {
        Ok(())
    }
}

/// Big-endian u16 at `i` (0 past the end: callers check lengths first).
fn be16(b: &[u8], i: usize) -> u16 {
    match b.get(i..i + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// Big-endian u32 at `i` (0 past the end: callers check lengths first).
fn be32(b: &[u8], i: usize) -> u32 {
    match b.get(i..i + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors read as what was refused and where.
    #[test]
    fn error_messages_name_what_and_where() {
        let cases = [
            (
                Error::Truncated { what: "KE payload", at: 60, need: 5, have: 4 },
                "KE payload at byte 60 truncated: needs 5 bytes, 4 present",
            ),
            (
                Error::BadLength { what: "payload", at: 28, len: 300, room: 40 },
                "payload at byte 28 has length 300, but 40 bytes are there for it",
            ),
            (
                Error::BadValue { what: "proposal number", at: 32, value: 3 },
                "proposal number at byte 32: value 3 refused",
            ),
            (
                Error::BadCount { what: "traffic selectors", at: 90, count: 2, found: 1 },
                "traffic selectors at byte 90: count 2, but 1 present",
            ),
            (Error::UnsupportedVersion { major: 1 }, "IKE major version 1 (only 2 is spoken)"),
            (
                Error::UnsupportedCritical { kind: 47, at: 28 },
                "payload type 47 at byte 28 is not understood and is marked critical",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
    }
}
