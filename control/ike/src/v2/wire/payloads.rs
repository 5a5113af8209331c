//! The payload bodies with a small fixed part: KE (RFC 7296 §3.4), IDi/IDr
//! (§3.5), CERT (§3.6), CERTREQ (§3.7), AUTH (§3.8), Nonce (§3.9), Vendor
//! ID (§3.12); and [`Payload`], any understood payload parsed by its type.
//!
//! Each view borrows its data and writes itself back with `emit`; what
//! `parse` accepts, `emit` reproduces byte for byte except for reserved
//! fields, which are written as zero (§3.2: sent as zero, ignored on
//! receipt). Certificates and certificate requests are opaque encodings
//! here; their contents are read by the authentication layer.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{
    be16, need, DeletePayload, EncryptedFragment, Error, NotifyPayload, PayloadChain, PayloadType,
    RawPayload, Result, SaPayload, TsPayload,
};

/// Shortest nonce (§2.10: at least 128 bits).
pub const NONCE_MIN: usize = 16;
/// Longest nonce (§3.9).
pub const NONCE_MAX: usize = 256;

/// A Key Exchange payload (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KePayload<'a> {
    /// Diffie-Hellman group number.
    pub group: u16,
    /// The public value.
    pub data: &'a [u8],
}

impl<'a> KePayload<'a> {
    /// Reads a KE body starting at offset `at` of the message.
    pub fn parse(body: &'a [u8], at: usize) -> Result<KePayload<'a>> {
        need("KE payload", at, body, 5)?;
        Ok(KePayload { group: be16(body, 0), data: &body[4..] })
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.group.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(self.data);
    }
}

wire_enum! {
    /// Identification types (§3.5).
    pub enum IdType: u8 {
        /// ID_IPV4_ADDR (1).
        Ipv4Addr = 1,
        /// ID_FQDN (2).
        Fqdn = 2,
        /// ID_RFC822_ADDR (3).
        Rfc822Addr = 3,
        /// ID_IPV6_ADDR (5).
        Ipv6Addr = 5,
        /// ID_DER_ASN1_DN (9).
        DerAsn1Dn = 9,
        /// ID_DER_ASN1_GN (10).
        DerAsn1Gn = 10,
        /// ID_KEY_ID (11).
        KeyId = 11,
    }
}

/// An IDi or IDr payload (§3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdPayload<'a> {
    /// ID type.
    pub kind: IdType,
    /// Identification data (4 bytes for IPv4, 16 for IPv6).
    pub data: &'a [u8],
}

impl<'a> IdPayload<'a> {
    /// Reads an ID body starting at offset `at` of the message.
    pub fn parse(body: &'a [u8], at: usize) -> Result<IdPayload<'a>> {
        need("ID payload", at, body, 5)?;
        let id = IdPayload { kind: IdType::from_value(body[0]), data: &body[4..] };
        let want = match id.kind {
            IdType::Ipv4Addr => Some(4),
            IdType::Ipv6Addr => Some(16),
            _ => None,
        };
        match want {
            Some(n) if n != id.data.len() => {
                Err(Error::BadLength { what: "ID payload address", at, len: id.data.len(), room: n })
            }
            _ => Ok(id),
        }
    }

    /// The IPv4 address of an ID_IPV4_ADDR.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        let o: [u8; 4] = self.data.try_into().ok()?;
        (self.kind == IdType::Ipv4Addr).then(|| Ipv4Addr::from(o))
    }

    /// The IPv6 address of an ID_IPV6_ADDR.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        let o: [u8; 16] = self.data.try_into().ok()?;
        (self.kind == IdType::Ipv6Addr).then(|| Ipv6Addr::from(o))
    }

    /// Appends the body (the octets AUTH covers as RestOfInitIDPayload,
    /// §2.15) to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.kind.value(), 0, 0, 0]);
        out.extend_from_slice(self.data);
    }
}

wire_enum! {
    /// Certificate encodings (§3.6).
    pub enum CertEncoding: u8 {
        /// PKCS #7 wrapped X.509 certificate (1).
        Pkcs7 = 1,
        /// X.509 Certificate - Signature (4).
        X509Signature = 4,
        /// Certificate Revocation List (7).
        Crl = 7,
        /// Raw RSA Key (11).
        RawRsaKey = 11,
        /// Hash and URL of X.509 certificate (12).
        HashUrlX509 = 12,
        /// Hash and URL of X.509 bundle (13).
        HashUrlBundle = 13,
    }
}

/// A CERT (§3.6) or CERTREQ (§3.7) payload: an encoding and opaque data
/// (for CERTREQ of X.509, concatenated SHA-1 hashes of CA public keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertPayload<'a> {
    /// Certificate encoding.
    pub encoding: CertEncoding,
    /// Certificate data, or the certification authorities asked for.
    pub data: &'a [u8],
}

impl<'a> CertPayload<'a> {
    /// Reads a CERT or CERTREQ body starting at offset `at` of the message.
    pub fn parse(body: &'a [u8], at: usize) -> Result<CertPayload<'a>> {
        need("CERT payload", at, body, 1)?;
        Ok(CertPayload { encoding: CertEncoding::from_value(body[0]), data: &body[1..] })
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.encoding.value());
        out.extend_from_slice(self.data);
    }
}

wire_enum! {
    /// Authentication methods (§3.8, RFC 7427 §3).
    pub enum AuthMethod: u8 {
        /// RSA Digital Signature (1).
        RsaSignature = 1,
        /// Shared Key Message Integrity Code (2).
        SharedKey = 2,
        /// DSS Digital Signature (3).
        DssSignature = 3,
        /// ECDSA with SHA-256 on P-256 (9, RFC 4754).
        EcdsaP256 = 9,
        /// ECDSA with SHA-384 on P-384 (10, RFC 4754).
        EcdsaP384 = 10,
        /// ECDSA with SHA-512 on P-521 (11, RFC 4754).
        EcdsaP521 = 11,
        /// Digital Signature (14, RFC 7427).
        DigitalSignature = 14,
    }
}

/// An AUTH payload (§3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthPayload<'a> {
    /// Authentication method.
    pub method: AuthMethod,
    /// Authentication data (a MAC or a signature; never empty).
    pub data: &'a [u8],
}

impl<'a> AuthPayload<'a> {
    /// Reads an AUTH body starting at offset `at` of the message.
    pub fn parse(body: &'a [u8], at: usize) -> Result<AuthPayload<'a>> {
        need("AUTH payload", at, body, 5)?;
        Ok(AuthPayload { method: AuthMethod::from_value(body[0]), data: &body[4..] })
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.method.value(), 0, 0, 0]);
        out.extend_from_slice(self.data);
    }
}

/// A Nonce payload (§3.9): 16 to 256 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoncePayload<'a> {
    /// The nonce.
    pub nonce: &'a [u8],
}

impl<'a> NoncePayload<'a> {
    /// Reads a Nonce body starting at offset `at` of the message.
    pub fn parse(body: &'a [u8], at: usize) -> Result<NoncePayload<'a>> {
        if !(NONCE_MIN..=NONCE_MAX).contains(&body.len()) {
            let room = if body.len() < NONCE_MIN { NONCE_MIN } else { NONCE_MAX };
            return Err(Error::BadLength { what: "Nonce", at, len: body.len(), room });
        }
        Ok(NoncePayload { nonce: body })
    }
}

/// A Vendor ID payload (§3.12): opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorIdPayload<'a> {
    /// The vendor's identifier.
    pub id: &'a [u8],
}

/// Any understood payload, parsed by its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// SA.
    Sa(SaPayload<'a>),
    /// KE.
    Ke(KePayload<'a>),
    /// IDi.
    IdI(IdPayload<'a>),
    /// IDr.
    IdR(IdPayload<'a>),
    /// CERT.
    Cert(CertPayload<'a>),
    /// CERTREQ.
    CertReq(CertPayload<'a>),
    /// AUTH.
    Auth(AuthPayload<'a>),
    /// Nonce.
    Nonce(NoncePayload<'a>),
    /// Notify.
    Notify(NotifyPayload<'a>),
    /// Delete.
    Delete(DeletePayload<'a>),
    /// Vendor ID.
    VendorId(VendorIdPayload<'a>),
    /// TSi.
    TsI(TsPayload<'a>),
    /// TSr.
    TsR(TsPayload<'a>),
    /// SK: IV, ciphertext and ICV, opened by [`crate::v2::sk`].
    Encrypted(&'a [u8]),
    /// SKF: fragment fields and its IV, ciphertext and ICV.
    EncryptedFragment(EncryptedFragment<'a>),
}

impl<'a> Payload<'a> {
    /// Parses the body of `raw` by its type.
    pub fn parse(raw: &RawPayload<'a>) -> Result<Payload<'a>> {
        let (b, at) = (raw.body, raw.body_at());
        Ok(match raw.kind {
            PayloadType::Sa => Payload::Sa(SaPayload::parse(b, at)?),
            PayloadType::Ke => Payload::Ke(KePayload::parse(b, at)?),
            PayloadType::IdI => Payload::IdI(IdPayload::parse(b, at)?),
            PayloadType::IdR => Payload::IdR(IdPayload::parse(b, at)?),
            PayloadType::Cert => Payload::Cert(CertPayload::parse(b, at)?),
            PayloadType::CertReq => Payload::CertReq(CertPayload::parse(b, at)?),
            PayloadType::Auth => Payload::Auth(AuthPayload::parse(b, at)?),
            PayloadType::Nonce => Payload::Nonce(NoncePayload::parse(b, at)?),
            PayloadType::Notify => Payload::Notify(NotifyPayload::parse(b, at)?),
            PayloadType::Delete => Payload::Delete(DeletePayload::parse(b, at)?),
            PayloadType::VendorId => Payload::VendorId(VendorIdPayload { id: b }),
            PayloadType::TsI => Payload::TsI(TsPayload::parse(b, at)?),
            PayloadType::TsR => Payload::TsR(TsPayload::parse(b, at)?),
            PayloadType::Encrypted => Payload::Encrypted(b),
            PayloadType::EncryptedFragment => {
                Payload::EncryptedFragment(EncryptedFragment::parse(b, at, raw.next)?)
            }
            PayloadType::Cp | PayloadType::Eap | PayloadType::Other(_) => {
                return Err(Error::BadValue {
                    what: "payload type not understood",
                    at: raw.at,
                    value: u32::from(raw.kind.value()),
                })
            }
        })
    }

    /// Its payload type.
    pub fn kind(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::Sa,
            Payload::Ke(_) => PayloadType::Ke,
            Payload::IdI(_) => PayloadType::IdI,
            Payload::IdR(_) => PayloadType::IdR,
            Payload::Cert(_) => PayloadType::Cert,
            Payload::CertReq(_) => PayloadType::CertReq,
            Payload::Auth(_) => PayloadType::Auth,
            Payload::Nonce(_) => PayloadType::Nonce,
            Payload::Notify(_) => PayloadType::Notify,
            Payload::Delete(_) => PayloadType::Delete,
            Payload::VendorId(_) => PayloadType::VendorId,
            Payload::TsI(_) => PayloadType::TsI,
            Payload::TsR(_) => PayloadType::TsR,
            Payload::Encrypted(_) => PayloadType::Encrypted,
            Payload::EncryptedFragment(_) => PayloadType::EncryptedFragment,
        }
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Sa(p) => out.extend_from_slice(p.body()),
            Payload::Ke(p) => p.emit(out),
            Payload::IdI(p) | Payload::IdR(p) => p.emit(out),
            Payload::Cert(p) | Payload::CertReq(p) => p.emit(out),
            Payload::Auth(p) => p.emit(out),
            Payload::Nonce(p) => out.extend_from_slice(p.nonce),
            Payload::Notify(p) => p.emit(out),
            Payload::Delete(p) => p.emit(out),
            Payload::VendorId(p) => out.extend_from_slice(p.id),
            Payload::TsI(p) | Payload::TsR(p) => {
                let selectors: Vec<_> = p.selectors().collect();
                super::TrafficSelector::emit_payload(&selectors, out);
            }
            Payload::Encrypted(b) => out.extend_from_slice(b),
            Payload::EncryptedFragment(f) => f.emit(out),
        }
    }
}

impl PayloadChain {
    /// Appends `payload` (not critical: every type here is one the RFC
    /// requires implementations to understand, §2.5).
    pub fn push_payload(&mut self, payload: &Payload<'_>) {
        self.push_with(payload.kind(), false, |out| payload.emit(out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payloads_round_trip() {
        let payloads = [
            Payload::Ke(KePayload { group: 19, data: &[7; 64] }),
            Payload::IdI(IdPayload { kind: IdType::Ipv4Addr, data: &[192, 0, 2, 1] }),
            Payload::IdR(IdPayload { kind: IdType::Fqdn, data: b"gw.example" }),
            Payload::Cert(CertPayload { encoding: CertEncoding::X509Signature, data: &[0x30, 0x82, 1, 0] }),
            Payload::CertReq(CertPayload { encoding: CertEncoding::X509Signature, data: &[0xab; 20] }),
            Payload::Auth(AuthPayload { method: AuthMethod::SharedKey, data: &[0x11; 32] }),
            Payload::Nonce(NoncePayload { nonce: &[0x22; 32] }),
            Payload::VendorId(VendorIdPayload { id: b"esprit" }),
        ];
        let mut chain = PayloadChain::new();
        for p in &payloads {
            chain.push_payload(p);
        }
        let bytes = chain.bytes().unwrap();
        let parsed: Vec<Payload<'_>> = super::super::PayloadIter::new(bytes, chain.first(), 0)
            .map(|r| Payload::parse(&r.unwrap()).unwrap())
            .collect();
        assert_eq!(parsed, payloads);
        // KE: group 19, two reserved bytes.
        assert_eq!(&bytes[4..8], &[0, 19, 0, 0]);
    }

    #[test]
    fn small_payload_bounds() {
        assert_eq!(
            NoncePayload::parse(&[0; 15], 40),
            Err(Error::BadLength { what: "Nonce", at: 40, len: 15, room: 16 })
        );
        assert_eq!(
            NoncePayload::parse(&[0; 257], 40),
            Err(Error::BadLength { what: "Nonce", at: 40, len: 257, room: 256 })
        );
        assert!(NoncePayload::parse(&[0; 16], 40).is_ok() && NoncePayload::parse(&[0; 256], 40).is_ok());
        assert_eq!(
            IdPayload::parse(&[1, 0, 0, 0, 10, 0, 0], 8),
            Err(Error::BadLength { what: "ID payload address", at: 8, len: 3, room: 4 })
        );
        let v6 = [&[5u8, 0, 0, 0][..], &[0x20, 1, 0xd, 0xb8], &[0; 12]].concat();
        assert_eq!(IdPayload::parse(&v6, 0).unwrap().ipv6(), Some("2001:db8::".parse().unwrap()));
        assert!(matches!(KePayload::parse(&[0, 19, 0, 0], 3), Err(Error::Truncated { at: 3, .. })));
        assert!(matches!(AuthPayload::parse(&[2, 0, 0, 0], 3), Err(Error::Truncated { at: 3, .. })));
        assert!(matches!(CertPayload::parse(&[], 3), Err(Error::Truncated { at: 3, .. })));
    }
}
