//! The ISAKMP header (RFC 2408 §3.1), 28 bytes:
//!
//! ```text
//!  0..8   initiator cookie      8..16  responder cookie
//!  16     next payload          17     version (major 1, minor 0: 0x10)
//!  18     exchange type         19     flags (E=1, C=2, A=4)
//!  20..24 message ID            24..28 length of the whole message
//! ```
//!
//! [`Header::parse`] checks the version and that the length field equals
//! the datagram length: a shorter datagram is truncated, a longer one has
//! bytes no length accounts for; both are refused.

use super::{be32, need, Result, WireError};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 28;
/// Flag: the payloads are encrypted (RFC 2408 §3.1).
pub const FLAG_ENCRYPTION: u8 = 0x01;
/// Flag: commit bit (RFC 2408 §3.1); accepted and ignored.
pub const FLAG_COMMIT: u8 = 0x02;

/// Exchange types IKEv1 uses (RFC 2408 §3.1, RFC 2409 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeType {
    /// Identity Protection = Main Mode.
    MainMode,
    /// Aggressive Mode.
    Aggressive,
    /// Informational.
    Informational,
    /// Quick Mode (RFC 2409 §5.5).
    QuickMode,
    /// Anything else.
    Other(u8),
}

impl ExchangeType {
    /// Wire value.
    pub fn value(self) -> u8 {
        match self {
            ExchangeType::MainMode => 2,
            ExchangeType::Aggressive => 4,
            ExchangeType::Informational => 5,
            ExchangeType::QuickMode => 32,
            ExchangeType::Other(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_value(v: u8) -> ExchangeType {
        match v {
            2 => ExchangeType::MainMode,
            4 => ExchangeType::Aggressive,
            5 => ExchangeType::Informational,
            32 => ExchangeType::QuickMode,
            other => ExchangeType::Other(other),
        }
    }
}

/// The fixed header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Initiator cookie.
    pub icookie: [u8; 8],
    /// Responder cookie (zero in the first message).
    pub rcookie: [u8; 8],
    /// Type of the first payload.
    pub next_payload: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags.
    pub flags: u8,
    /// Message ID (0 in phase 1).
    pub message_id: u32,
    /// Length of the whole message, header included.
    pub length: u32,
}

impl Header {
    /// Parses and checks the header of a whole datagram.
    pub fn parse(buf: &[u8]) -> Result<Header> {
        need("ISAKMP header", buf, HEADER_LEN)?;
        let version = buf[17];
        if version >> 4 != 1 {
            return Err(WireError::Unsupported {
                what: "ISAKMP major version",
                value: u32::from(version >> 4),
            });
        }
        let length = be32(buf, 24);
        if length as usize != buf.len() {
            return Err(WireError::BadLength {
                what: "ISAKMP message",
                len: length as usize,
                room: buf.len(),
            });
        }
        let mut icookie = [0u8; 8];
        icookie.copy_from_slice(&buf[0..8]);
        let mut rcookie = [0u8; 8];
        rcookie.copy_from_slice(&buf[8..16]);
        Ok(Header {
            icookie,
            rcookie,
            next_payload: buf[16],
            exchange: ExchangeType::from_value(buf[18]),
            flags: buf[19],
            message_id: be32(buf, 20),
            length,
        })
    }

    /// Writes the header into `out[..28]` (which must be that long).
    pub fn emit(&self, out: &mut [u8]) {
        if out.len() < HEADER_LEN {
            return;
        }
        out[0..8].copy_from_slice(&self.icookie);
        out[8..16].copy_from_slice(&self.rcookie);
        out[16] = self.next_payload;
        out[17] = 0x10;
        out[18] = self.exchange.value();
        out[19] = self.flags;
        out[20..24].copy_from_slice(&self.message_id.to_be_bytes());
        out[24..28].copy_from_slice(&self.length.to_be_bytes());
    }

    /// True when the encryption flag is set.
    pub fn encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTION != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MM1_HEADER: [u8; 28] =
        [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x10, 2, 0, 0, 0, 0, 0, 0, 0, 0, 28];

    #[test]
    fn parse_emit_roundtrip() {
        let h = Header::parse(&MM1_HEADER).unwrap();
        assert_eq!(h.exchange, ExchangeType::MainMode);
        assert_eq!(h.next_payload, 1);
        let mut out = [0u8; 28];
        h.emit(&mut out);
        assert_eq!(out, MM1_HEADER);
    }

    #[test]
    fn every_truncation_and_extension_refused() {
        for n in 0..28 {
            assert!(Header::parse(&MM1_HEADER[..n]).is_err());
        }
        let mut long = MM1_HEADER.to_vec();
        long.push(0);
        assert!(matches!(Header::parse(&long), Err(WireError::BadLength { .. })));
        let mut v2 = MM1_HEADER;
        v2[17] = 0x20;
        assert!(Header::parse(&v2).is_err());
    }
}
