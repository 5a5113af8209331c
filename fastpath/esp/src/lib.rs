//! ESP in tunnel mode (RFC 4303), in place, with per-SA contexts.
//!
//! * [`Suite`]: AES-GCM-128/256 (RFC 4106) and AES-CBC-128/256 with
//!   HMAC-SHA1-96 (RFC 3602, RFC 2404) or HMAC-SHA-256-128 (RFC 4868),
//!   named as operators and IKE name them (`aes128gcm16`, `aes256-sha1`,
//!   ...); DES, 3DES, MD5 and unauthenticated CBC are refused citing
//!   RFC 8221.
//! * [`OutboundSa::encapsulate`]: inner IPv4/IPv6 packet -> outer IPv4
//!   [+ UDP, RFC 3948] + ESP, written around the inner packet in the same
//!   frame; [`MAX_HEADROOM`] / [`MAX_TAILROOM`] (or [`Suite::headroom`],
//!   [`Suite::tailroom`], [`Suite::max_inner_len`]) size the frame and the
//!   tunnel MTU.
//! * [`InboundSa::decapsulate`]: ESP -> inner packet, with anti-replay
//!   ([`ReplayWindow`], up to 4096 packets, RFC 4303 §3.4.3) and extended
//!   sequence numbers (RFC 4304, RFC 4303 Appendix A2).
//! * [`ecn`]: RFC 6040 ECN handling on the way out of the tunnel.
//!
//! # Guarantees
//! * No panic on any input: packet bytes, ranges and lengths from the wire
//!   or from the caller are checked, and every failure is an error value
//!   ([`EncapError`], [`DecapError`]) the fast path maps to a drop reason.
//! * No allocation and no system call per packet. Contexts (key schedules,
//!   keyed HMAC states, replay rings) are built once, off the packet path,
//!   by [`OutboundSa::new`] / [`InboundSa::new`].
//! * Tags are compared in constant time by the cryptographic libraries
//!   (ring's AEAD open; `hmac`'s `verify_truncated_left`). For CBC the ICV
//!   is checked before decryption; the replay window moves only after the
//!   ICV verified (RFC 4303 §3.4.3).
//! * Sequence numbers never wrap: without ESN the last one sent is
//!   2^32 - 1, with ESN 2^64 - 1; then encapsulation fails with
//!   [`EncapError::SequenceExhausted`] (RFC 4303 §3.3.3).
//!   [`OutboundSa::needs_rekey`] turns true at a configurable soft limit
//!   before that.
//! * IVs: GCM's 8-byte IV is the 64-bit sequence number (unique per key,
//!   RFC 4106 §3.1). CBC's IV must be unpredictable (RFC 3602 §2.1):
//!   it is AES-128 under a per-SA random key (supplied by the control
//!   plane) of the sequence number — unpredictable, distinct per packet,
//!   and no system call per packet.
//! * Keys: what this crate owns is zeroized on drop (AES-CBC key schedules
//!   via `aes`'s `zeroize` feature, the IV key, the GCM salt). ring's
//!   AES-GCM key schedule and `hmac`'s keyed states offer no zeroization
//!   and are freed as they are.
//! * One writer: an SA is `&mut` for each packet (sequence counter, replay
//!   window); the fast path gives each SA to one worker, no atomics.
#![forbid(unsafe_code)]

mod crypto;
pub mod ecn;
mod error;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod inbound;
mod outbound;
pub mod replay;

pub use error::{DecapError, EncapError, SaError};
pub use esprit_suite::{
    Suite, SuiteError, ESP_HEADER_LEN, ESP_TRAILER_LEN, IPV4_HEADER_LEN, MAX_HEADROOM, MAX_TAILROOM,
    UDP_HEADER_LEN,
};
pub use inbound::{Decapsulated, InboundConfig, InboundSa, Payload};
pub use outbound::{DfPolicy, Encapsulated, OutboundConfig, OutboundSa, UdpEncap};
pub use replay::{ReplayError, ReplayWindow, MAX_REPLAY_WINDOW};

// Contexts are built on the management thread and moved to a worker.
const _: () = {
    const fn send<T: Send>() {}
    send::<OutboundSa>();
    send::<InboundSa>();
};

#[cfg(test)]
mod tests;
