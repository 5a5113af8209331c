//! Data attributes (RFC 2408 §3.3): `AF|type` (2 bytes), then either a
//! 2-byte value (AF=1, "TV") or a 2-byte length and that many bytes
//! (AF=0, "TLV").

use super::{be16, need, Result, WireError};

/// An attribute's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeValue<'a> {
    /// TV form.
    Basic(u16),
    /// TLV form.
    Variable(&'a [u8]),
}

/// One attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Attribute type (without the AF bit).
    pub kind: u16,
    /// Its value.
    pub value: AttributeValue<'a>,
}

impl<'a> Attribute<'a> {
    /// The value as an integer when it fits 8 bytes (life durations may
    /// come as 4-byte TLVs, RFC 2407 §4.5).
    pub fn as_u64(&self) -> Option<u64> {
        match self.value {
            AttributeValue::Basic(v) => Some(u64::from(v)),
            AttributeValue::Variable(b) if b.len() <= 8 => {
                Some(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
            }
            AttributeValue::Variable(_) => None,
        }
    }

    /// Parses a list of attributes filling `buf` exactly.
    pub fn parse_all(mut buf: &'a [u8]) -> Result<Vec<Attribute<'a>>> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            need("attribute", buf, 4)?;
            let t = be16(buf, 0);
            if t & 0x8000 != 0 {
                out.push(Attribute { kind: t & 0x7fff, value: AttributeValue::Basic(be16(buf, 2)) });
                buf = &buf[4..];
            } else {
                let len = usize::from(be16(buf, 2));
                if buf.len() - 4 < len {
                    return Err(WireError::BadLength { what: "attribute value", len, room: buf.len() - 4 });
                }
                out.push(Attribute { kind: t, value: AttributeValue::Variable(&buf[4..4 + len]) });
                buf = &buf[4 + len..];
            }
        }
        Ok(out)
    }
}

/// Appends an attribute with an integer value: TV when it fits 16 bits,
/// else a 4-byte TLV (how peers send long life durations).
pub fn emit_u32(out: &mut Vec<u8>, kind: u16, value: u32) {
    if let Ok(v) = u16::try_from(value) {
        out.extend_from_slice(&(kind | 0x8000).to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tv_and_tlv() {
        let mut b = Vec::new();
        emit_u32(&mut b, 1, 7);
        emit_u32(&mut b, 12, 86400);
        assert_eq!(b, [0x80, 1, 0, 7, 0, 12, 0, 4, 0, 1, 0x51, 0x80]);
        let a = Attribute::parse_all(&b).unwrap();
        assert_eq!(a[0].as_u64(), Some(7));
        assert_eq!(a[1].kind, 12);
        assert_eq!(a[1].as_u64(), Some(86400));
        for n in 1..b.len() {
            if n == 4 {
                continue;
            }
            assert!(Attribute::parse_all(&b[..n]).is_err(), "cut at {n}");
        }
    }
}
