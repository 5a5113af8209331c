//! Notification and Delete payloads (RFC 2408 §3.14, §3.15).
//!
//! ```text
//! Notify: DOI (4) | protocol | SPI size | type (2) | SPI | data
//! Delete: DOI (4) | protocol | SPI size | #SPIs (2) | SPIs
//! ```

use super::{be16, be32, need, Result, WireError};

/// Notify message types used here (RFC 2408 §3.14.1, RFC 2407 §4.6.3,
/// RFC 3706 §5).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyType {
    InvalidPayloadType,
    InvalidCookie,
    InvalidExchangeType,
    InvalidSpi,
    NoProposalChosen,
    PayloadMalformed,
    InvalidKeyInformation,
    InvalidIdInformation,
    InvalidHashInformation,
    AuthenticationFailed,
    ResponderLifetime,
    InitialContact,
    /// DPD (RFC 3706 §5).
    RUThere,
    RUThereAck,
    Other(u16),
}

impl NotifyType {
    /// Wire value.
    pub fn value(self) -> u16 {
        match self {
            NotifyType::InvalidPayloadType => 1,
            NotifyType::InvalidCookie => 4,
            NotifyType::InvalidExchangeType => 7,
            NotifyType::InvalidSpi => 11,
            NotifyType::NoProposalChosen => 14,
            NotifyType::PayloadMalformed => 16,
            NotifyType::InvalidKeyInformation => 17,
            NotifyType::InvalidIdInformation => 18,
            NotifyType::InvalidHashInformation => 23,
            NotifyType::AuthenticationFailed => 24,
            NotifyType::ResponderLifetime => 24576,
            NotifyType::InitialContact => 24578,
            NotifyType::RUThere => 36136,
            NotifyType::RUThereAck => 36137,
            NotifyType::Other(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_value(v: u16) -> NotifyType {
        match v {
            1 => NotifyType::InvalidPayloadType,
            4 => NotifyType::InvalidCookie,
            7 => NotifyType::InvalidExchangeType,
            11 => NotifyType::InvalidSpi,
            14 => NotifyType::NoProposalChosen,
            16 => NotifyType::PayloadMalformed,
            17 => NotifyType::InvalidKeyInformation,
            18 => NotifyType::InvalidIdInformation,
            23 => NotifyType::InvalidHashInformation,
            24 => NotifyType::AuthenticationFailed,
            24576 => NotifyType::ResponderLifetime,
            24578 => NotifyType::InitialContact,
            36136 => NotifyType::RUThere,
            36137 => NotifyType::RUThereAck,
            o => NotifyType::Other(o),
        }
    }
}

/// A Notification payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyPayload<'a> {
    /// DOI (1; 0 is seen for ISAKMP-level errors).
    pub doi: u32,
    /// Protocol ID.
    pub protocol: u8,
    /// SPI (cookies for ISAKMP, 4 bytes for ESP, or empty).
    pub spi: &'a [u8],
    /// Message type.
    pub kind: NotifyType,
    /// Notification data.
    pub data: &'a [u8],
}

impl<'a> NotifyPayload<'a> {
    /// Parses a body.
    pub fn parse(body: &'a [u8]) -> Result<NotifyPayload<'a>> {
        need("notification payload", body, 8)?;
        let spi_size = usize::from(body[5]);
        need("notification SPI", &body[8..], spi_size)?;
        Ok(NotifyPayload {
            doi: be32(body, 0),
            protocol: body[4],
            spi: &body[8..8 + spi_size],
            kind: NotifyType::from_value(be16(body, 6)),
            data: &body[8 + spi_size..],
        })
    }

    /// Writes the body.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = self.doi.to_be_bytes().to_vec();
        out.push(self.protocol);
        out.push(self.spi.len() as u8);
        out.extend_from_slice(&self.kind.value().to_be_bytes());
        out.extend_from_slice(self.spi);
        out.extend_from_slice(self.data);
        out
    }
}

/// A Delete payload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePayload<'a> {
    /// Protocol ID (1 = ISAKMP, 3 = ESP).
    pub protocol: u8,
    /// The SPIs (each `spi_size` bytes).
    pub spis: Vec<&'a [u8]>,
}

impl<'a> DeletePayload<'a> {
    /// Parses a body.
    pub fn parse(body: &'a [u8]) -> Result<DeletePayload<'a>> {
        need("delete payload", body, 8)?;
        let spi_size = usize::from(body[5]);
        let count = usize::from(be16(body, 6));
        let rest = &body[8..];
        if spi_size == 0 || rest.len() != spi_size * count {
            return Err(WireError::BadLength {
                what: "delete payload SPIs",
                len: spi_size * count,
                room: rest.len(),
            });
        }
        Ok(DeletePayload { protocol: body[4], spis: rest.chunks(spi_size).collect() })
    }

    /// Writes the body (all SPIs of one size).
    pub fn emit(&self) -> Vec<u8> {
        let size = self.spis.first().map_or(0, |s| s.len());
        let mut out = super::DOI_IPSEC.to_be_bytes().to_vec();
        out.push(self.protocol);
        out.push(size as u8);
        out.extend_from_slice(&(self.spis.len() as u16).to_be_bytes());
        for s in &self.spis {
            out.extend_from_slice(s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_and_delete_roundtrip_and_truncation() {
        let n = NotifyPayload {
            doi: 1,
            protocol: 1,
            spi: &[7; 16],
            kind: NotifyType::RUThere,
            data: &[0, 0, 0, 5],
        };
        let b = n.emit();
        assert_eq!(NotifyPayload::parse(&b).unwrap(), n);
        for k in 0..24 {
            assert!(NotifyPayload::parse(&b[..k]).is_err(), "cut at {k}");
        }
        let d = DeletePayload { protocol: 3, spis: vec![&[1, 2, 3, 4], &[5, 6, 7, 8]] };
        let b = d.emit();
        assert_eq!(DeletePayload::parse(&b).unwrap(), d);
        for k in 0..b.len() {
            assert!(DeletePayload::parse(&b[..k]).is_err(), "cut at {k}");
        }
    }
}
