//! SA, Proposal and Transform payloads (RFC 2408 §3.4-3.6, RFC 2407 §4.6.1).
//!
//! ```text
//! SA body:        DOI (4) | Situation (4) | Proposal payloads...
//! Proposal body:  #  | protocol | SPI size | #transforms | SPI | Transforms...
//! Transform body: #  | transform ID | reserved (2) | attributes...
//! ```
//!
//! Proposals and transforms are themselves payloads with generic headers,
//! chained with next-payload 2 (resp. 3) and 0 for the last one.

use super::attr::{self, Attribute};
use super::{be32, need, Result, WireError};

/// IPsec DOI (RFC 2407 §4.2).
pub const DOI_IPSEC: u32 = 1;
/// SIT_IDENTITY_ONLY (RFC 2407 §4.2.1).
pub const SIT_IDENTITY_ONLY: u32 = 1;

/// A transform: one complete alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform<'a> {
    /// Transform number.
    pub number: u8,
    /// Transform ID (KEY_IKE = 1; ESP_AES = 12, ESP_AES_GCM_16 = 20 ...).
    pub id: u8,
    /// Its attributes.
    pub attributes: Vec<Attribute<'a>>,
}

impl Transform<'_> {
    /// First attribute of this type, as an integer.
    pub fn attr(&self, kind: u16) -> Option<u64> {
        self.attributes.iter().find(|a| a.kind == kind).and_then(|a| a.as_u64())
    }
}

/// A proposal: a protocol, an SPI and its alternative transforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal<'a> {
    /// Proposal number.
    pub number: u8,
    /// Protocol ID (PROTO_ISAKMP = 1, PROTO_IPSEC_ESP = 3).
    pub protocol: u8,
    /// The SPI (empty or 16 bytes for ISAKMP, 4 for ESP).
    pub spi: &'a [u8],
    /// Transforms, in the order offered.
    pub transforms: Vec<Transform<'a>>,
}

/// An SA payload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPayload<'a> {
    /// Domain of interpretation (1 = IPsec).
    pub doi: u32,
    /// Situation.
    pub situation: u32,
    /// Proposals.
    pub proposals: Vec<Proposal<'a>>,
}

fn sub_chain<'a>(what: &'static str, mut buf: &'a [u8], more: u8) -> Result<Vec<&'a [u8]>> {
    let mut out = Vec::new();
    loop {
        need(what, buf, 4)?;
        let next = buf[0];
        let len = usize::from(super::be16(buf, 2));
        if len < 4 || len > buf.len() {
            return Err(WireError::BadLength { what, len, room: buf.len() });
        }
        out.push(&buf[4..len]);
        buf = &buf[len..];
        if next == 0 {
            break;
        }
        if next != more {
            return Err(WireError::Unsupported { what: "next payload inside SA", value: u32::from(next) });
        }
    }
    if !buf.is_empty() {
        return Err(WireError::TrailingBytes { extra: buf.len() });
    }
    Ok(out)
}

impl<'a> SaPayload<'a> {
    /// Parses an SA body.
    pub fn parse(body: &'a [u8]) -> Result<SaPayload<'a>> {
        need("SA payload", body, 8)?;
        let doi = be32(body, 0);
        let situation = be32(body, 4);
        if doi != DOI_IPSEC {
            return Err(WireError::Unsupported { what: "DOI", value: doi });
        }
        let mut proposals = Vec::new();
        for p in sub_chain("proposal payload", &body[8..], 2)? {
            need("proposal payload", p, 4)?;
            let (number, protocol, spi_size, count) = (p[0], p[1], usize::from(p[2]), usize::from(p[3]));
            need("proposal SPI", &p[4..], spi_size)?;
            let spi = &p[4..4 + spi_size];
            let mut transforms = Vec::new();
            for t in sub_chain("transform payload", &p[4 + spi_size..], 3)? {
                need("transform payload", t, 4)?;
                transforms.push(Transform {
                    number: t[0],
                    id: t[1],
                    attributes: Attribute::parse_all(&t[4..])?,
                });
            }
            if transforms.len() != count {
                return Err(WireError::BadCount { what: "transforms", count, found: transforms.len() });
            }
            proposals.push(Proposal { number, protocol, spi, transforms });
        }
        Ok(SaPayload { doi, situation, proposals })
    }
}

/// A transform to emit: number, ID and `(type, value)` attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformRepr {
    /// Transform number.
    pub number: u8,
    /// Transform ID.
    pub id: u8,
    /// Attributes (written TV when the value fits 16 bits).
    pub attributes: Vec<(u16, u32)>,
}

/// A proposal to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRepr {
    /// Proposal number.
    pub number: u8,
    /// Protocol ID.
    pub protocol: u8,
    /// SPI.
    pub spi: Vec<u8>,
    /// Transforms.
    pub transforms: Vec<TransformRepr>,
}

/// Writes an SA body (DOI IPsec, SIT_IDENTITY_ONLY) with these proposals.
pub fn emit_sa(proposals: &[ProposalRepr]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&DOI_IPSEC.to_be_bytes());
    out.extend_from_slice(&SIT_IDENTITY_ONLY.to_be_bytes());
    for (pi, p) in proposals.iter().enumerate() {
        let mut body = vec![p.number, p.protocol, p.spi.len() as u8, p.transforms.len() as u8];
        body.extend_from_slice(&p.spi);
        for (ti, t) in p.transforms.iter().enumerate() {
            let mut tb = vec![t.number, t.id, 0, 0];
            for (k, v) in &t.attributes {
                attr::emit_u32(&mut tb, *k, *v);
            }
            let next = if ti + 1 < p.transforms.len() { 3 } else { 0 };
            body.extend_from_slice(&[next, 0]);
            body.extend_from_slice(&((tb.len() + 4) as u16).to_be_bytes());
            body.extend_from_slice(&tb);
        }
        let next = if pi + 1 < proposals.len() { 2 } else { 0 };
        out.extend_from_slice(&[next, 0]);
        out.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        out.extend_from_slice(&body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        emit_sa(&[ProposalRepr {
            number: 1,
            protocol: 3,
            spi: vec![0xc1, 0, 0, 1],
            transforms: vec![
                TransformRepr { number: 1, id: 20, attributes: vec![(1, 1), (2, 3600), (4, 3), (6, 128)] },
                TransformRepr {
                    number: 2,
                    id: 12,
                    attributes: vec![(1, 1), (2, 86400), (4, 3), (5, 2), (6, 128)],
                },
            ],
        }])
    }

    #[test]
    fn roundtrip() {
        let b = sample();
        let sa = SaPayload::parse(&b).unwrap();
        assert_eq!(sa.proposals.len(), 1);
        let p = &sa.proposals[0];
        assert_eq!(p.spi, &[0xc1, 0, 0, 1]);
        assert_eq!(p.transforms[1].id, 12);
        assert_eq!(p.transforms[1].attr(2), Some(86400));
        assert_eq!(p.transforms[1].attr(5), Some(2));
    }

    #[test]
    fn every_truncation_refused() {
        let b = sample();
        for n in 0..b.len() {
            assert!(SaPayload::parse(&b[..n]).is_err(), "cut at {n}");
        }
        let mut extra = b.clone();
        extra.push(0);
        assert!(SaPayload::parse(&extra).is_err());
    }
}
