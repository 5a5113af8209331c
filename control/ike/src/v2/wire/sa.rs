//! The Security Association payload (RFC 7296 §3.3): proposals, each with
//! its transforms, each with its attributes.
//!
//! ```text
//! proposal  (§3.3.1)  0 last(0)/more(2)  1 reserved  2..4 length
//!                     4 number  5 protocol ID  6 SPI size  7 transform count
//!                     8.. SPI, then the transforms
//! transform (§3.3.2)  0 last(0)/more(3)  1 reserved  2..4 length
//!                     4 type  5 reserved  6..8 transform ID  8.. attributes
//! attribute (§3.3.5)  0..2 AF (0x8000) | type; AF set: 2..4 value;
//!                     AF clear: 2..4 length, then the value
//! ```
//!
//! [`SaPayload::parse`] checks the whole structure once (lengths, the
//! last/more markers against what follows, the transform counts, proposal
//! numbers starting at 1 and rising by 0 or 1, or a lone proposal of any
//! number but 0, as an answer holds (§3.3.1)), so walking the
//! views afterwards cannot fail.

use super::{be16, need, Error, ProtocolId, Result};

const PROPOSAL_FIXED: usize = 8;
const TRANSFORM_FIXED: usize = 8;
const ATTRIBUTE_FIXED: usize = 4;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
/// Attribute Format bit: the value is the two bytes after the type (§3.3.5).
const AF: u16 = 0x8000;
/// The Key Length attribute (§3.3.5), always in the short (TV) form.
pub const ATTR_KEY_LENGTH: u16 = 14;

wire_enum! {
    /// Transform types (§3.3.2).
    pub enum TransformType: u8 {
        /// Encryption Algorithm (ENCR, 1).
        Encr = 1,
        /// Pseudorandom Function (PRF, 2).
        Prf = 2,
        /// Integrity Algorithm (INTEG, 3).
        Integ = 3,
        /// Diffie-Hellman group (D-H, 4).
        Dh = 4,
        /// Extended Sequence Numbers (ESN, 5).
        Esn = 5,
    }
}

/// Transform IDs this implementation names (IANA "IKEv2 Parameters";
/// RFC 7296 §3.3.2, RFC 4868, RFC 5282, RFC 3602). D-H IDs are the group
/// numbers of [`crate::DhGroup`].
pub mod transform_id {
    /// ENCR_AES_CBC (RFC 3602), with a Key Length attribute.
    pub const ENCR_AES_CBC: u16 = 12;
    /// ENCR_AES_GCM_16 (RFC 4106, RFC 5282), with a Key Length attribute.
    pub const ENCR_AES_GCM_16: u16 = 20;
    /// PRF_HMAC_SHA1 (RFC 2104).
    pub const PRF_HMAC_SHA1: u16 = 2;
    /// PRF_HMAC_SHA2_256 (RFC 4868).
    pub const PRF_HMAC_SHA2_256: u16 = 5;
    /// PRF_HMAC_SHA2_384 (RFC 4868).
    pub const PRF_HMAC_SHA2_384: u16 = 6;
    /// PRF_HMAC_SHA2_512 (RFC 4868).
    pub const PRF_HMAC_SHA2_512: u16 = 7;
    /// AUTH_NONE: no integrity transform, with an AEAD cipher (RFC 5282 §8).
    pub const AUTH_NONE: u16 = 0;
    /// AUTH_HMAC_SHA1_96 (RFC 2404).
    pub const AUTH_HMAC_SHA1_96: u16 = 2;
    /// AUTH_HMAC_SHA2_256_128 (RFC 4868).
    pub const AUTH_HMAC_SHA2_256_128: u16 = 12;
    /// AUTH_HMAC_SHA2_384_192 (RFC 4868).
    pub const AUTH_HMAC_SHA2_384_192: u16 = 13;
    /// AUTH_HMAC_SHA2_512_256 (RFC 4868).
    pub const AUTH_HMAC_SHA2_512_256: u16 = 14;
    /// ESN: no Extended Sequence Numbers (§3.3.2).
    pub const ESN_NONE: u16 = 0;
    /// ESN: Extended Sequence Numbers (§3.3.2).
    pub const ESN_ON: u16 = 1;
}

/// An attribute value: the short (TV) or the long (TLV) form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeValue<'a> {
    /// AF set: two bytes.
    Short(u16),
    /// AF clear: the bytes after the length.
    Long(&'a [u8]),
}

/// One transform attribute (§3.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Attribute type (15 bits).
    pub kind: u16,
    /// Its value.
    pub value: AttributeValue<'a>,
}

/// A checked SA payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaPayload<'a> {
    body: &'a [u8],
    at: usize,
}

/// A checked proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal<'a> {
    /// Proposal number (§3.3.1).
    pub num: u8,
    /// Protocol ID.
    pub protocol: ProtocolId,
    /// The sender's SPI (empty in IKE_SA_INIT, 4 bytes for ESP/AH, 8 for
    /// an IKE SA rekey).
    pub spi: &'a [u8],
    transforms: &'a [u8],
    count: u8,
    at: usize,
}

/// A checked transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transform<'a> {
    /// Transform type.
    pub kind: TransformType,
    /// Transform ID.
    pub id: u16,
    attributes: &'a [u8],
    /// Offset of the transform from the start of the message.
    pub at: usize,
}

/// Reads the structure at the start of `rest` whose generic part is
/// `last/more, reserved, length` with `fixed` bytes of fixed part; returns
/// (more follows, its bytes).
fn substructure<'a>(
    what: &'static str,
    rest: &'a [u8],
    at: usize,
    fixed: usize,
    more_marker: u8,
) -> Result<(bool, &'a [u8])> {
    need(what, at, rest, fixed)?;
    let len = usize::from(be16(rest, 2));
    if len < fixed || len > rest.len() {
        return Err(Error::BadLength { what, at, len, room: rest.len() });
    }
    let more = match rest[0] {
        0 => false,
        m if m == more_marker => true,
        other => return Err(Error::BadValue { what, at, value: u32::from(other) }),
    };
    if more == (len == rest.len()) {
        // "last" with bytes after it, or "more" with nothing after it.
        return Err(Error::BadValue { what, at, value: u32::from(rest[0]) });
    }
    Ok((more, &rest[..len]))
}

fn parse_proposal(rest: &[u8], at: usize) -> Result<(Proposal<'_>, usize)> {
    let (_, p) = substructure("proposal", rest, at, PROPOSAL_FIXED, MORE_PROPOSALS)?;
    let spi_size = usize::from(p[6]);
    if p.len() < PROPOSAL_FIXED + spi_size {
        return Err(Error::BadLength {
            what: "proposal SPI",
            at,
            len: spi_size,
            room: p.len() - PROPOSAL_FIXED,
        });
    }
    let proposal = Proposal {
        num: p[4],
        protocol: ProtocolId::from_value(p[5]),
        spi: &p[PROPOSAL_FIXED..PROPOSAL_FIXED + spi_size],
        transforms: &p[PROPOSAL_FIXED + spi_size..],
        count: p[7],
        at,
    };
    Ok((proposal, p.len()))
}

fn parse_transform(rest: &[u8], at: usize) -> Result<(Transform<'_>, usize)> {
    let (_, t) = substructure("transform", rest, at, TRANSFORM_FIXED, MORE_TRANSFORMS)?;
    let transform = Transform {
        kind: TransformType::from_value(t[4]),
        id: be16(t, 6),
        attributes: &t[TRANSFORM_FIXED..],
        at,
    };
    Ok((transform, t.len()))
}

fn parse_attribute(rest: &[u8], at: usize) -> Result<(Attribute<'_>, usize)> {
    need("transform attribute", at, rest, ATTRIBUTE_FIXED)?;
    let word = be16(rest, 0);
    let kind = word & !AF;
    if word & AF != 0 {
        return Ok((Attribute { kind, value: AttributeValue::Short(be16(rest, 2)) }, ATTRIBUTE_FIXED));
    }
    let len = usize::from(be16(rest, 2));
    let room = rest.len() - ATTRIBUTE_FIXED;
    if len > room {
        return Err(Error::BadLength { what: "transform attribute", at, len, room });
    }
    let value = AttributeValue::Long(&rest[ATTRIBUTE_FIXED..ATTRIBUTE_FIXED + len]);
    Ok((Attribute { kind, value }, ATTRIBUTE_FIXED + len))
}

impl<'a> SaPayload<'a> {
    /// Checks an SA payload body starting at offset `at` of the message.
    pub fn parse(body: &'a [u8], at: usize) -> Result<SaPayload<'a>> {
        if body.is_empty() {
            return Err(Error::BadCount { what: "SA payload proposals", at, count: 1, found: 0 });
        }
        let mut pos = 0;
        let mut prev_num: Option<u8> = None;
        while pos < body.len() {
            let (p, len) = parse_proposal(&body[pos..], at + pos)?;
            // §3.3.1: an initiator numbers its first proposal 1; an
            // answer holds the one proposal accepted, under its number.
            let num_ok = match prev_num {
                None => p.num == 1 || (p.num != 0 && len == body.len()),
                Some(prev) => p.num == prev || Some(p.num) == prev.checked_add(1),
            };
            if !num_ok {
                return Err(Error::BadValue {
                    what: "proposal number",
                    at: at + pos,
                    value: u32::from(p.num),
                });
            }
            prev_num = Some(p.num);
            let mut found = 0;
            let mut tpos = 0;
            let tat = at + pos + PROPOSAL_FIXED + p.spi.len();
            while tpos < p.transforms.len() {
                let (t, tlen) = parse_transform(&p.transforms[tpos..], tat + tpos)?;
                let mut apos = 0;
                while apos < t.attributes.len() {
                    let (_, alen) = parse_attribute(&t.attributes[apos..], t.at + TRANSFORM_FIXED + apos)?;
                    apos += alen;
                }
                tpos += tlen;
                found += 1;
            }
            if found != usize::from(p.count) {
                return Err(Error::BadCount {
                    what: "proposal transforms",
                    at: at + pos,
                    count: usize::from(p.count),
                    found,
                });
            }
            pos += len;
        }
        Ok(SaPayload { body, at })
    }

    /// The proposals, in order.
    pub fn proposals(&self) -> ProposalIter<'a> {
        ProposalIter { rest: self.body, at: self.at }
    }

    /// The body's bytes (for the AUTH octets, §2.15, and re-emission).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// Walks the proposals of a checked SA payload.
#[derive(Debug, Clone)]
pub struct ProposalIter<'a> {
    rest: &'a [u8],
    at: usize,
}

impl<'a> Iterator for ProposalIter<'a> {
    type Item = Proposal<'a>;

    fn next(&mut self) -> Option<Proposal<'a>> {
        // Checked by SaPayload::parse: an error here cannot happen, and
        // would only end the walk.
        let (p, len) = parse_proposal(self.rest, self.at).ok()?;
        self.rest = &self.rest[len..];
        self.at += len;
        Some(p)
    }
}

impl<'a> Proposal<'a> {
    /// The transforms, in order.
    pub fn transforms(&self) -> TransformIter<'a> {
        TransformIter { rest: self.transforms, at: self.at + PROPOSAL_FIXED + self.spi.len() }
    }
}

/// Walks the transforms of a checked proposal.
#[derive(Debug, Clone)]
pub struct TransformIter<'a> {
    rest: &'a [u8],
    at: usize,
}

impl<'a> Iterator for TransformIter<'a> {
    type Item = Transform<'a>;

    fn next(&mut self) -> Option<Transform<'a>> {
        let (t, len) = parse_transform(self.rest, self.at).ok()?;
        self.rest = &self.rest[len..];
        self.at += len;
        Some(t)
    }
}

impl<'a> Transform<'a> {
    /// The attributes, in order.
    pub fn attributes(&self) -> impl Iterator<Item = Attribute<'a>> + 'a {
        let mut rest = self.attributes;
        let mut at = self.at + TRANSFORM_FIXED;
        core::iter::from_fn(move || {
            let (a, len) = parse_attribute(rest, at).ok()?;
            rest = &rest[len..];
            at += len;
            Some(a)
        })
    }

    /// The Key Length attribute, in bits (§3.3.5).
    pub fn key_length(&self) -> Option<u16> {
        self.attributes().find_map(|a| match (a.kind, a.value) {
            (ATTR_KEY_LENGTH, AttributeValue::Short(v)) => Some(v),
            _ => None,
        })
    }

    /// True if an attribute other than a short Key Length is present: a
    /// responder must then not pick this transform (§3.3.6).
    pub fn has_unknown_attribute(&self) -> bool {
        self.attributes().any(|a| !(a.kind == ATTR_KEY_LENGTH && matches!(a.value, AttributeValue::Short(_))))
    }
}

/// A transform to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransformRepr {
    /// Transform type.
    pub kind: TransformType,
    /// Transform ID.
    pub id: u16,
    /// Key Length attribute, in bits.
    pub key_length: Option<u16>,
}

impl From<&Transform<'_>> for TransformRepr {
    fn from(t: &Transform<'_>) -> TransformRepr {
        TransformRepr { kind: t.kind, id: t.id, key_length: t.key_length() }
    }
}

/// A proposal to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRepr {
    /// Proposal number (1 for the first, §3.3.1).
    pub num: u8,
    /// Protocol ID.
    pub protocol: ProtocolId,
    /// The sender's SPI.
    pub spi: Vec<u8>,
    /// The transforms.
    pub transforms: Vec<TransformRepr>,
}

impl From<&Proposal<'_>> for ProposalRepr {
    fn from(p: &Proposal<'_>) -> ProposalRepr {
        ProposalRepr {
            num: p.num,
            protocol: p.protocol,
            spi: p.spi.to_vec(),
            transforms: p.transforms().map(|t| TransformRepr::from(&t)).collect(),
        }
    }
}

impl ProposalRepr {
    /// Writes an SA payload body holding `proposals` to `out`. Lengths
    /// that do not fit their fields are written truncated; the payload
    /// chain refuses a payload over 64 KiB, which every such case is.
    pub fn emit_sa(proposals: &[ProposalRepr], out: &mut Vec<u8>) {
        for (i, p) in proposals.iter().enumerate() {
            let start = out.len();
            let more = if i + 1 < proposals.len() { MORE_PROPOSALS } else { 0 };
            out.extend_from_slice(&[more, 0, 0, 0, p.num, p.protocol.value(), p.spi.len() as u8]);
            out.push(p.transforms.len() as u8);
            out.extend_from_slice(&p.spi);
            for (j, t) in p.transforms.iter().enumerate() {
                let more = if j + 1 < p.transforms.len() { MORE_TRANSFORMS } else { 0 };
                let len: u16 = if t.key_length.is_some() { 12 } else { 8 };
                out.extend_from_slice(&[more, 0]);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&[t.kind.value(), 0]);
                out.extend_from_slice(&t.id.to_be_bytes());
                if let Some(bits) = t.key_length {
                    out.extend_from_slice(&(AF | ATTR_KEY_LENGTH).to_be_bytes());
                    out.extend_from_slice(&bits.to_be_bytes());
                }
            }
            let len = (out.len() - start) as u16;
            out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::transform_id::*;
    use super::*;

    fn ike_proposal() -> ProposalRepr {
        ProposalRepr {
            num: 1,
            protocol: ProtocolId::Ike,
            spi: vec![],
            transforms: vec![
                TransformRepr { kind: TransformType::Encr, id: ENCR_AES_CBC, key_length: Some(256) },
                TransformRepr { kind: TransformType::Prf, id: PRF_HMAC_SHA2_256, key_length: None },
                TransformRepr { kind: TransformType::Integ, id: AUTH_HMAC_SHA2_256_128, key_length: None },
                TransformRepr { kind: TransformType::Dh, id: 19, key_length: None },
            ],
        }
    }

    #[test]
    fn emit_matches_hand_assembled_bytes() {
        let mut out = Vec::new();
        ProposalRepr::emit_sa(&[ike_proposal()], &mut out);
        let want = hex::decode(concat!(
            "0000002c01010004",         // last proposal, 44 bytes, #1, IKE, no SPI, 4 transforms
            "0300000c0100000c800e0100", // ENCR AES-CBC, key length 256
            "0300000802000005",         // PRF HMAC-SHA2-256
            "030000080300000c",         // INTEG HMAC-SHA2-256-128
            "0000000804000013",         // D-H 19, last
        ))
        .unwrap();
        assert_eq!(out, want);
        let sa = SaPayload::parse(&out, 32).unwrap();
        let ps: Vec<_> = sa.proposals().collect();
        assert_eq!(ps.len(), 1);
        assert_eq!(ProposalRepr::from(&ps[0]), ike_proposal());
        let ts: Vec<_> = ps[0].transforms().collect();
        assert_eq!(ts[0].key_length(), Some(256));
        assert_eq!((ts[0].at, ts[3].at), (32 + 8, 32 + 8 + 12 + 16));
        assert!(!ts[0].has_unknown_attribute());
    }

    #[test]
    fn esp_proposals_with_esn_and_spi() {
        let esp = |num| ProposalRepr {
            num,
            protocol: ProtocolId::Esp,
            spi: vec![0xc0, 0, 0, 1],
            transforms: vec![
                TransformRepr { kind: TransformType::Encr, id: ENCR_AES_GCM_16, key_length: Some(128) },
                TransformRepr { kind: TransformType::Esn, id: ESN_ON, key_length: None },
                TransformRepr { kind: TransformType::Esn, id: ESN_NONE, key_length: None },
            ],
        };
        let mut out = Vec::new();
        ProposalRepr::emit_sa(&[esp(1), esp(2)], &mut out);
        let sa = SaPayload::parse(&out, 0).unwrap();
        let got: Vec<ProposalRepr> = sa.proposals().map(|p| ProposalRepr::from(&p)).collect();
        assert_eq!(got, vec![esp(1), esp(2)]);
    }

    #[test]
    fn malformed_structures_are_refused_with_place() {
        let mut good = Vec::new();
        ProposalRepr::emit_sa(&[ike_proposal()], &mut good);
        // Proposal number 2 first of two (§3.3.1); alone it is an answer
        // accepting proposal 2, but 0 is never a number.
        let mut two = Vec::new();
        ProposalRepr::emit_sa(&[ike_proposal(), ike_proposal()], &mut two);
        two[4] = 2;
        assert_eq!(
            SaPayload::parse(&two, 40),
            Err(Error::BadValue { what: "proposal number", at: 40, value: 2 })
        );
        let mut b = good.clone();
        b[4] = 2;
        assert_eq!(SaPayload::parse(&b, 40).unwrap().proposals().next().unwrap().num, 2);
        b[4] = 0;
        assert_eq!(
            SaPayload::parse(&b, 40),
            Err(Error::BadValue { what: "proposal number", at: 40, value: 0 })
        );
        // Transform count 5, 4 present.
        let mut b = good.clone();
        b[7] = 5;
        assert_eq!(
            SaPayload::parse(&b, 40),
            Err(Error::BadCount { what: "proposal transforms", at: 40, count: 5, found: 4 })
        );
        // "More" on the last proposal.
        let mut b = good.clone();
        b[0] = 2;
        assert_eq!(SaPayload::parse(&b, 40), Err(Error::BadValue { what: "proposal", at: 40, value: 2 }));
        // A transform running past its proposal.
        let mut b = good.clone();
        b[8 + 3] = 200;
        assert!(matches!(
            SaPayload::parse(&b, 40),
            Err(Error::BadLength { what: "transform", at: 48, len: 200, .. })
        ));
        // A long attribute running past its transform.
        let mut b = good.clone();
        b[8 + 8] = 0x00; // AF cleared: 0x0100 is read as a length
        assert!(matches!(
            SaPayload::parse(&b, 40),
            Err(Error::BadLength { what: "transform attribute", .. })
        ));
        // Every truncation fails cleanly.
        for cut in 0..good.len() {
            assert!(SaPayload::parse(&good[..cut], 0).is_err(), "cut {cut}");
        }
    }
}
