//! Zero-copy views of the packet headers esprit handles.
//!
//! One module per header, in the manner of smoltcp: a `Packet<T>` wraps any
//! buffer (`T: AsRef<[u8]>`, and `AsMut<[u8]>` to write) and reads or writes
//! fields in place; where a header is also built from scratch there is a
//! `Repr` with `parse` / `buffer_len` / `emit`.
//!
//! # The no-panic contract
//! Every view has `new_checked`, which validates the buffer against the
//! header's length fields once. After `new_checked` succeeds, *every*
//! accessor of that view is in bounds: parsing untrusted bytes never panics
//! and never allocates. `new_unchecked` skips the check and is meant for
//! buffers the caller built itself (its accessors may panic on a short
//! buffer). The fuzz targets in `fuzz/` hold this contract to
//! account.
#![forbid(unsafe_code)]

pub mod arp;
pub mod checksum;
pub mod esp;
pub mod ethernet;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod icmpv4;
pub mod ipv4;
pub mod ipv4_frag;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod udp_encap;

use core::fmt;

/// Why a buffer is not a valid header of the kind asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The buffer is shorter than the header or than its length fields say.
    Truncated,
    /// A length field is smaller than the header it belongs to.
    BadLength,
    /// The version nibble is not the one this view handles.
    BadVersion,
    /// A field holds a value the protocol forbids (e.g. ESP SPI 0).
    Malformed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "buffer shorter than the header or its length fields",
            Error::BadLength => "length field smaller than the header",
            Error::BadVersion => "wrong IP version",
            Error::Malformed => "field value forbidden by the protocol",
        })
    }
}

impl std::error::Error for Error {}

/// Result of parsing a header.
pub type Result<T> = core::result::Result<T, Error>;

/// Byte range of a field inside its header.
pub(crate) type Field = core::ops::Range<usize>;

/// Reads a big-endian u16 at `at`.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a big-endian u32 at `at`.
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// IP protocol numbers esprit looks at (IANA "Assigned Internet Protocol Numbers").
pub mod ip_proto {
    pub const ICMP: u8 = 1;
    pub const IPV4: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ESP: u8 = 50;
    pub const ICMPV6: u8 = 58;
    /// "No next header": an ESP dummy packet, RFC 4303 §2.6.
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const SCTP: u8 = 132;
}
