//! The IKE header (RFC 7296 §3.1), 28 bytes:
//!
//! ```text
//!  0..8   IKE SA initiator's SPI    8..16  IKE SA responder's SPI
//!  16     next payload              17     major (high 4 bits) | minor version
//!  18     exchange type             19     flags: I = 0x08, V = 0x10, R = 0x20
//!  20..24 message ID                24..28 length of the whole message
//! ```
//!
//! [`Header::parse`] checks the major version (2; the minor is ignored as
//! §3.1 says), that the initiator's SPI is not zero (§3.1), and that the
//! length field equals the datagram's length: a shorter datagram is
//! truncated, a longer one has bytes no length accounts for.

use super::{be32, need, Error, Result};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 28;
/// Flag: sent by the original initiator of the IKE SA (§3.1).
pub const FLAG_INITIATOR: u8 = 0x08;
/// Flag: the sender can speak a higher major version (§3.1).
pub const FLAG_VERSION: u8 = 0x10;
/// Flag: this message is a response (§3.1).
pub const FLAG_RESPONSE: u8 = 0x20;
/// Major version 2, minor 0 (§3.1).
const VERSION_2_0: u8 = 0x20;

wire_enum! {
    /// Exchange types (RFC 7296 §3.1).
    pub enum ExchangeType: u8 {
        /// IKE_SA_INIT (34, §1.2).
        IkeSaInit = 34,
        /// IKE_AUTH (35, §1.2).
        IkeAuth = 35,
        /// CREATE_CHILD_SA (36, §1.3).
        CreateChildSa = 36,
        /// INFORMATIONAL (37, §1.4).
        Informational = 37,
    }
}

/// The fixed header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// IKE SA initiator's SPI (never zero).
    pub spi_i: u64,
    /// IKE SA responder's SPI (zero in the first IKE_SA_INIT request).
    pub spi_r: u64,
    /// Type of the first payload.
    pub next_payload: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags as received; the reserved bits are ignored (§3.1), the
    /// accessors read the three defined ones.
    pub flags: u8,
    /// Message ID (§2.2).
    pub message_id: u32,
    /// Length of the whole message, header included.
    pub length: u32,
}

impl Header {
    /// Parses and checks the header of a whole datagram (non-ESP marker
    /// already removed).
    pub fn parse(buf: &[u8]) -> Result<Header> {
        need("IKE header", 0, buf, HEADER_LEN)?;
        let major = buf[17] >> 4;
        if major != 2 {
            return Err(Error::UnsupportedVersion { major });
        }
        let length = be32(buf, 24);
        if length as usize != buf.len() {
            return Err(Error::BadLength {
                what: "IKE message",
                at: 0,
                len: length as usize,
                room: buf.len(),
            });
        }
        let header = Header::parse_unchecked(buf);
        if header.spi_i == 0 {
            return Err(Error::BadValue { what: "IKE header initiator's SPI", at: 0, value: 0 });
        }
        Ok(header)
    }

    /// Reads the fields of `buf[..28]` without any check (`buf` is at
    /// least that long).
    fn parse_unchecked(buf: &[u8]) -> Header {
        let mut spi_i = [0u8; 8];
        spi_i.copy_from_slice(&buf[0..8]);
        let mut spi_r = [0u8; 8];
        spi_r.copy_from_slice(&buf[8..16]);
        Header {
            spi_i: u64::from_be_bytes(spi_i),
            spi_r: u64::from_be_bytes(spi_r),
            next_payload: buf[16],
            exchange: ExchangeType::from_value(buf[18]),
            flags: buf[19],
            message_id: be32(buf, 20),
            length: be32(buf, 24),
        }
    }

    /// True if the original initiator sent this message.
    pub fn from_initiator(&self) -> bool {
        self.flags & FLAG_INITIATOR != 0
    }

    /// True if this message is a response.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// True if the sender can speak a higher major version.
    pub fn higher_version(&self) -> bool {
        self.flags & FLAG_VERSION != 0
    }

    /// Writes the header into `out[..28]` (nothing if `out` is shorter),
    /// version 2.0, the reserved flag bits cleared (§3.1).
    pub fn emit(&self, out: &mut [u8]) {
        let Some(out) = out.get_mut(..HEADER_LEN) else {
            return;
        };
        out[0..8].copy_from_slice(&self.spi_i.to_be_bytes());
        out[8..16].copy_from_slice(&self.spi_r.to_be_bytes());
        out[16] = self.next_payload;
        out[17] = VERSION_2_0;
        out[18] = self.exchange.value();
        out[19] = self.flags & (FLAG_INITIATOR | FLAG_VERSION | FLAG_RESPONSE);
        out[20..24].copy_from_slice(&self.message_id.to_be_bytes());
        out[24..28].copy_from_slice(&self.length.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // IKE_SA_INIT request header: SPIi 0x0102030405060708, SPIr 0, next
    // payload SA (33), 2.0, exchange 34, flags I, message ID 0, length 28.
    const HDR: [u8; 28] =
        [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 33, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0, 28];

    #[test]
    fn parse_and_emit_round_trip() {
        let h = Header::parse(&HDR).unwrap();
        assert_eq!(h.spi_i, 0x0102030405060708);
        assert_eq!(h.spi_r, 0);
        assert_eq!(h.next_payload, 33);
        assert_eq!(h.exchange, ExchangeType::IkeSaInit);
        assert!(h.from_initiator() && !h.is_response() && !h.higher_version());
        assert_eq!(h.length, 28);
        let mut out = [0u8; 28];
        h.emit(&mut out);
        assert_eq!(out, HDR);
    }

    #[test]
    fn refusals_say_what() {
        assert_eq!(
            Header::parse(&HDR[..27]),
            Err(Error::Truncated { what: "IKE header", at: 0, need: 28, have: 27 })
        );
        let mut v1 = HDR;
        v1[17] = 0x10;
        assert_eq!(Header::parse(&v1), Err(Error::UnsupportedVersion { major: 1 }));
        // Minor versions are ignored (§3.1).
        let mut minor = HDR;
        minor[17] = 0x21;
        assert!(Header::parse(&minor).is_ok());
        let mut long = HDR.to_vec();
        long.push(0);
        assert_eq!(
            Header::parse(&long),
            Err(Error::BadLength { what: "IKE message", at: 0, len: 28, room: 29 })
        );
        let mut zero = HDR;
        zero[..8].fill(0);
        assert!(matches!(Header::parse(&zero), Err(Error::BadValue { value: 0, .. })));
        assert_eq!(Header::parse(&v1).unwrap_err().notify(), super::super::NotifyType::InvalidMajorVersion);
    }
}
