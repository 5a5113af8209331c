//! Notify (RFC 7296 §3.10) and Delete (§3.11) payloads.
//!
//! ```text
//! Notify  0 protocol ID  1 SPI size  2..4 notify message type  4.. SPI, data
//! Delete  0 protocol ID  1 SPI size  2..4 number of SPIs       4.. SPIs
//! ```

use super::{be16, need, Error, Result};

wire_enum! {
    /// Protocol IDs (§3.3.1, §3.10, §3.11).
    pub enum ProtocolId: u8 {
        /// Not about an SA (a Notify's 0).
        None = 0,
        /// IKE (1).
        Ike = 1,
        /// AH (2).
        Ah = 2,
        /// ESP (3).
        Esp = 3,
    }
}

wire_enum! {
    /// Notify message types: the error types (below 16384) and status
    /// types of RFC 7296 §3.10.1, and the status types of the
    /// extensions spoken here.
    pub enum NotifyType: u16 {
        /// UNSUPPORTED_CRITICAL_PAYLOAD (§3.10.1); data: the payload type.
        UnsupportedCriticalPayload = 1,
        /// INVALID_IKE_SPI.
        InvalidIkeSpi = 4,
        /// INVALID_MAJOR_VERSION.
        InvalidMajorVersion = 5,
        /// INVALID_SYNTAX.
        InvalidSyntax = 7,
        /// INVALID_MESSAGE_ID; data: the message ID.
        InvalidMessageId = 9,
        /// INVALID_SPI; data: the SPI.
        InvalidSpi = 11,
        /// NO_PROPOSAL_CHOSEN.
        NoProposalChosen = 14,
        /// INVALID_KE_PAYLOAD; data: the group wanted (§1.3).
        InvalidKePayload = 17,
        /// AUTHENTICATION_FAILED.
        AuthenticationFailed = 24,
        /// SINGLE_PAIR_REQUIRED.
        SinglePairRequired = 34,
        /// NO_ADDITIONAL_SAS.
        NoAdditionalSas = 35,
        /// INTERNAL_ADDRESS_FAILURE.
        InternalAddressFailure = 36,
        /// FAILED_CP_REQUIRED.
        FailedCpRequired = 37,
        /// TS_UNACCEPTABLE.
        TsUnacceptable = 38,
        /// INVALID_SELECTORS.
        InvalidSelectors = 39,
        /// TEMPORARY_FAILURE (§2.25).
        TemporaryFailure = 43,
        /// CHILD_SA_NOT_FOUND (§2.25).
        ChildSaNotFound = 44,
        /// INITIAL_CONTACT.
        InitialContact = 16384,
        /// SET_WINDOW_SIZE.
        SetWindowSize = 16385,
        /// ADDITIONAL_TS_POSSIBLE.
        AdditionalTsPossible = 16386,
        /// IPCOMP_SUPPORTED.
        IpcompSupported = 16387,
        /// NAT_DETECTION_SOURCE_IP (§2.23).
        NatDetectionSourceIp = 16388,
        /// NAT_DETECTION_DESTINATION_IP (§2.23).
        NatDetectionDestinationIp = 16389,
        /// COOKIE (§2.6).
        Cookie = 16390,
        /// USE_TRANSPORT_MODE.
        UseTransportMode = 16391,
        /// HTTP_CERT_LOOKUP_SUPPORTED.
        HttpCertLookupSupported = 16392,
        /// REKEY_SA (§2.8).
        RekeySa = 16393,
        /// ESP_TFC_PADDING_NOT_SUPPORTED.
        EspTfcPaddingNotSupported = 16394,
        /// NON_FIRST_FRAGMENTS_ALSO.
        NonFirstFragmentsAlso = 16395,
        /// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
        FragmentationSupported = 16430,
        /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).
        SignatureHashAlgorithms = 16431,
    }
}

impl NotifyType {
    /// True for the error types (§3.10.1: below 16384).
    pub fn is_error(self) -> bool {
        self.value() < 16384
    }
}

/// A Notify payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyPayload<'a> {
    /// Protocol of the SA it concerns (`None` when it concerns none).
    pub protocol: ProtocolId,
    /// Notify message type.
    pub kind: NotifyType,
    /// The SPI it concerns (empty when none).
    pub spi: &'a [u8],
    /// Notification data.
    pub data: &'a [u8],
}

impl<'a> NotifyPayload<'a> {
    /// Reads a Notify body starting at offset `at` of the message.
    pub fn parse(body: &'a [u8], at: usize) -> Result<NotifyPayload<'a>> {
        need("Notify payload", at, body, 4)?;
        let spi_size = usize::from(body[1]);
        let room = body.len() - 4;
        if spi_size > room {
            return Err(Error::BadLength { what: "Notify SPI", at, len: spi_size, room });
        }
        Ok(NotifyPayload {
            protocol: ProtocolId::from_value(body[0]),
            kind: NotifyType::from_value(be16(body, 2)),
            spi: &body[4..4 + spi_size],
            data: &body[4 + spi_size..],
        })
    }

    /// Appends the body to `out` (an SPI over 255 bytes is cut to 255).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let spi = &self.spi[..self.spi.len().min(255)];
        out.extend_from_slice(&[self.protocol.value(), spi.len() as u8]);
        out.extend_from_slice(&self.kind.value().to_be_bytes());
        out.extend_from_slice(spi);
        out.extend_from_slice(self.data);
    }
}

/// A Delete payload: SPIs of one size (empty for the IKE SA itself, §3.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletePayload<'a> {
    /// Protocol of the SAs.
    pub protocol: ProtocolId,
    /// SPI size (0 for IKE, 4 for ESP and AH).
    pub spi_size: u8,
    spis: &'a [u8],
}

impl<'a> DeletePayload<'a> {
    /// Reads a Delete body starting at offset `at` of the message: the SPI
    /// count times the SPI size must be exactly the bytes after the fixed
    /// part.
    pub fn parse(body: &'a [u8], at: usize) -> Result<DeletePayload<'a>> {
        need("Delete payload", at, body, 4)?;
        let spi_size = body[1];
        let count = usize::from(be16(body, 2));
        let spis = &body[4..];
        let found = if spi_size == 0 { 0 } else { spis.len() / usize::from(spi_size) };
        let whole =
            if spi_size == 0 { spis.is_empty() } else { spis.len().is_multiple_of(usize::from(spi_size)) };
        if !whole || (spi_size == 0 && count != 0) {
            return Err(Error::BadLength {
                what: "Delete SPIs",
                at,
                len: count * usize::from(spi_size),
                room: spis.len(),
            });
        }
        if found != count {
            return Err(Error::BadCount { what: "Delete SPIs", at, count, found });
        }
        Ok(DeletePayload { protocol: ProtocolId::from_value(body[0]), spi_size, spis })
    }

    /// A Delete of the given SPIs, all `spi_size` bytes long, concatenated.
    pub fn new(protocol: ProtocolId, spi_size: u8, spis: &'a [u8]) -> DeletePayload<'a> {
        DeletePayload { protocol, spi_size, spis }
    }

    /// The SPIs.
    pub fn spis(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let size = usize::from(self.spi_size).max(1);
        let spis = if self.spi_size == 0 { &[][..] } else { self.spis };
        spis.chunks_exact(size)
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let count = self.spis().count() as u16;
        out.extend_from_slice(&[self.protocol.value(), self.spi_size]);
        out.extend_from_slice(&count.to_be_bytes());
        for spi in self.spis() {
            out.extend_from_slice(spi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_round_trip_and_bounds() {
        let n = NotifyPayload {
            protocol: ProtocolId::Esp,
            kind: NotifyType::RekeySa,
            spi: &[0xc0, 0, 0, 7],
            data: &[],
        };
        let mut out = Vec::new();
        n.emit(&mut out);
        assert_eq!(out, [3, 4, 0x40, 0x09, 0xc0, 0, 0, 7]);
        assert_eq!(NotifyPayload::parse(&out, 60).unwrap(), n);
        assert_eq!(
            NotifyPayload::parse(&out[..7], 60),
            Err(Error::BadLength { what: "Notify SPI", at: 60, len: 4, room: 3 })
        );
        assert_eq!(
            NotifyPayload::parse(&out[..3], 60),
            Err(Error::Truncated { what: "Notify payload", at: 60, need: 4, have: 3 })
        );
        assert!(NotifyType::from_value(17).is_error());
        assert_eq!(NotifyType::from_value(16388), NotifyType::NatDetectionSourceIp);
        assert_eq!(NotifyType::from_value(40000), NotifyType::Other(40000));
    }

    #[test]
    fn delete_counts_checked() {
        let spis = [0xc0, 0, 0, 1, 0xc0, 0, 0, 2];
        let d = DeletePayload::new(ProtocolId::Esp, 4, &spis);
        let mut out = Vec::new();
        d.emit(&mut out);
        assert_eq!(out[..4], [3, 4, 0, 2]);
        let back = DeletePayload::parse(&out, 0).unwrap();
        assert_eq!(back.spis().collect::<Vec<_>>(), vec![&spis[..4], &spis[4..]]);
        let mut wrong = out.clone();
        wrong[3] = 3;
        assert_eq!(
            DeletePayload::parse(&wrong, 9),
            Err(Error::BadCount { what: "Delete SPIs", at: 9, count: 3, found: 2 })
        );
        assert!(matches!(DeletePayload::parse(&out[..7], 9), Err(Error::BadLength { .. })));
        // The IKE SA: no SPIs (§3.11).
        let ike = DeletePayload::parse(&[1, 0, 0, 0], 0).unwrap();
        assert_eq!(ike.spis().count(), 0);
        assert!(DeletePayload::parse(&[1, 0, 0, 1], 0).is_err());
    }
}
