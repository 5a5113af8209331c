//! Errors of SA construction, encapsulation and decapsulation.
//!
//! The per-packet errors ([`EncapError`], [`DecapError`]) are `Copy`
//! values the fast path maps one-to-one to its drop reasons; building them
//! never allocates.

use thiserror::Error;

use crate::replay::WindowTooLarge;
use esprit_suite::Suite;

/// Why an SA context could not be built (control-plane input).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SaError {
    /// The encryption key material has the wrong length for the suite
    /// (GCM: key + 4-byte salt, RFC 4106 §8.1).
    #[error("{suite}: encryption key material is {got} bytes, expected {expected}")]
    EncrKeyLen { suite: Suite, expected: usize, got: usize },
    /// The integrity key has the wrong length (0 for GCM).
    #[error("{suite}: integrity key is {got} bytes, expected {expected}")]
    IntegKeyLen { suite: Suite, expected: usize, got: usize },
    /// SPI 0 is reserved (RFC 4303 §2.1) and SPIs 1..=255 are reserved by
    /// IANA for future use.
    #[error("SPI {0:#x} is reserved (RFC 4303 §2.1)")]
    ReservedSpi(u32),
    /// The replay window is too large.
    #[error(transparent)]
    ReplayWindow(#[from] WindowTooLarge),
    /// A starting sequence number beyond what the SA can send.
    #[error("starting sequence number {0} is beyond the 32-bit space of an SA without ESN")]
    InitialSeq(u64),
}

/// Why a packet could not be encapsulated. Nothing has been consumed
/// (sequence number, ident) when this is returned, except for
/// [`EncapError::Crypto`], which cannot happen with valid contexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncapError {
    /// The inner range is reversed or not inside the buffer.
    #[error("inner packet range is not inside the frame")]
    BadRange,
    /// Not enough room before the inner packet for the outer headers.
    #[error("not enough headroom: {need} bytes needed before the inner packet, {have} available")]
    Headroom { need: usize, have: usize },
    /// Not enough room after the inner packet for the ESP trailer and ICV.
    #[error("not enough tailroom: {need} bytes needed after the inner packet, {have} available")]
    Tailroom { need: usize, have: usize },
    /// The inner packet is neither a valid IPv4 nor a valid IPv6 packet.
    #[error("inner packet is not a valid IPv4 or IPv6 packet")]
    InnerNotIp,
    /// The inner IP length field disagrees with the range given (trim
    /// Ethernet padding before encapsulating).
    #[error("inner IP length field disagrees with the inner range")]
    InnerLength,
    /// The outer packet would be longer than 65535 bytes.
    #[error("outer packet would exceed the IPv4 maximum of 65535 bytes")]
    TooBig,
    /// The sequence number space is spent: 2^32 - 1 without ESN, 2^64 - 1
    /// with; the SA must be replaced (RFC 4303 §3.3.3, never wraps).
    #[error("sequence numbers exhausted: the SA must be rekeyed (RFC 4303 §3.3.3)")]
    SequenceExhausted,
    /// The cipher refused its input (cannot happen with the lengths this
    /// crate computes; reported rather than panicking).
    #[error("cipher failure")]
    Crypto,
}

/// Why an inbound ESP packet was dropped. `#[repr(u8)]` so the fast path
/// can index its per-worker drop counters with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[repr(u8)]
#[non_exhaustive]
pub enum DecapError {
    /// The ESP range is reversed or not inside the buffer.
    #[error("ESP range is not inside the frame")]
    BadRange = 0,
    /// Shorter than header + IV + minimal payload + ICV.
    #[error("ESP packet too short for its SA's suite")]
    Truncated = 1,
    /// A CBC ciphertext that is not a whole number of blocks
    /// (RFC 3602 §3).
    #[error("ESP ciphertext is not a whole number of cipher blocks")]
    BadLength = 2,
    /// The SPI in the packet is not this SA's.
    #[error("ESP SPI does not belong to this SA")]
    SpiMismatch = 3,
    /// Sequence number left of the replay window (RFC 4303 §3.4.3).
    #[error("ESP sequence number older than the replay window")]
    ReplayTooOld = 4,
    /// Sequence number already received (RFC 4303 §3.4.3).
    #[error("ESP sequence number already received (replay)")]
    ReplayDuplicate = 5,
    /// Integrity check failed (RFC 4303 §3.4.4): forged, corrupted, wrong
    /// key, or (with ESN) a packet from far outside the window.
    #[error("ESP integrity check failed")]
    IcvMismatch = 6,
    /// Pad length larger than the payload, or padding bytes other than
    /// 1, 2, 3, ... (RFC 4303 §2.4).
    #[error("ESP padding malformed")]
    BadPadding = 7,
    /// Next header neither IPv4 (4), IPv6 (41) nor "no next header" (59):
    /// tunnel mode carries only IP (RFC 4303 §3.1.2).
    #[error("ESP next header is not IPv4, IPv6 or a dummy packet")]
    BadNextHeader = 8,
    /// The decrypted payload is not a valid packet of the family the next
    /// header announced.
    #[error("decrypted inner packet malformed")]
    InnerMalformed = 9,
}

impl DecapError {
    /// Every variant, in discriminant order (for counter tables).
    pub const ALL: [DecapError; 10] = [
        DecapError::BadRange,
        DecapError::Truncated,
        DecapError::BadLength,
        DecapError::SpiMismatch,
        DecapError::ReplayTooOld,
        DecapError::ReplayDuplicate,
        DecapError::IcvMismatch,
        DecapError::BadPadding,
        DecapError::BadNextHeader,
        DecapError::InnerMalformed,
    ];
}

impl From<crate::replay::ReplayError> for DecapError {
    fn from(e: crate::replay::ReplayError) -> DecapError {
        match e {
            crate::replay::ReplayError::TooOld => DecapError::ReplayTooOld,
            crate::replay::ReplayError::Duplicate => DecapError::ReplayDuplicate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decap_discriminants_are_dense() {
        for (i, e) in DecapError::ALL.iter().enumerate() {
            assert_eq!(*e as u8 as usize, i);
            assert!(!e.to_string().is_empty());
        }
    }
}
