//! The data of a RESPONDER-LIFETIME notification (RFC 2407 §4.6.3.1):
//! an attribute list (RFC 2408 §3.3) of SA Life Type / SA Life Duration
//! pairs (RFC 2407 §4.5), the type before its duration, at most one pair
//! per type (seconds, kilobytes).
//!
//! ```text
//! 80 01 00 01            SA Life Type = seconds (TV)
//! 00 02 00 04 00 01 51 80  SA Life Duration = 86400 (TLV, 4 bytes)
//! ```
//!
//! Parsing never panics and refuses, with a [`WireError`] naming what is
//! wrong: an empty list, an attribute other than the two life
//! attributes, a life type other than seconds or kilobytes, a duration
//! with no type before it, a type with no duration after it, the same
//! type twice, a zero duration, a duration wider than 32 bits.

use super::attr::{emit_u32, Attribute};
use super::{Result, WireError};

/// The attribute numbers of the life pair. Phase 2 uses RFC 2407 §4.5's
/// (1 and 2); the ISAKMP SA's own are RFC 2409 Appendix A's (11 and 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifeAttributes {
    /// The SA Life Type attribute.
    pub life_type: u16,
    /// The SA Life Duration attribute.
    pub life_duration: u16,
}

/// RFC 2407 §4.5: IPsec SA attributes.
pub const LIFE_IPSEC: LifeAttributes = LifeAttributes { life_type: 1, life_duration: 2 };
/// RFC 2409 Appendix A: ISAKMP SA attributes.
pub const LIFE_ISAKMP: LifeAttributes = LifeAttributes { life_type: 11, life_duration: 12 };

/// Life type values (the same in RFC 2407 §4.5 and RFC 2409 Appendix A).
const LIFE_SECONDS: u64 = 1;
const LIFE_KILOBYTES: u64 = 2;

/// The lifetimes a RESPONDER-LIFETIME notification states; `None` for a
/// measure it does not mention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifeDurations {
    /// SA Life Duration in seconds.
    pub seconds: Option<u32>,
    /// SA Life Duration in kilobytes.
    pub kilobytes: Option<u32>,
}

fn invalid(why: &'static str) -> WireError {
    WireError::Invalid { what: "RESPONDER-LIFETIME data", why }
}

impl LifeDurations {
    /// Parses notification data whose life pairs use one of `numbering`.
    pub fn parse(data: &[u8], numbering: &[LifeAttributes]) -> Result<LifeDurations> {
        let mut out = LifeDurations::default();
        let mut pending: Option<u64> = None;
        let mut any = false;
        for a in Attribute::parse_all(data)? {
            if numbering.iter().any(|n| n.life_type == a.kind) {
                if pending.is_some() {
                    return Err(invalid("a life type without a duration after it"));
                }
                let t = a.as_u64().ok_or(invalid("life type wider than 64 bits"))?;
                if t != LIFE_SECONDS && t != LIFE_KILOBYTES {
                    return Err(WireError::Unsupported {
                        what: "SA life type",
                        value: u32::try_from(t).unwrap_or(u32::MAX),
                    });
                }
                pending = Some(t);
            } else if numbering.iter().any(|n| n.life_duration == a.kind) {
                let t = pending.take().ok_or(invalid("a life duration without a life type before it"))?;
                let v = a.as_u64().ok_or(invalid("life duration wider than 64 bits"))?;
                let v = u32::try_from(v).map_err(|_| invalid("life duration wider than 32 bits"))?;
                if v == 0 {
                    return Err(invalid("zero life duration"));
                }
                let slot = if t == LIFE_SECONDS { &mut out.seconds } else { &mut out.kilobytes };
                if slot.replace(v).is_some() {
                    return Err(invalid("the same life type twice"));
                }
                any = true;
            } else {
                return Err(WireError::Unsupported {
                    what: "RESPONDER-LIFETIME attribute",
                    value: a.kind.into(),
                });
            }
        }
        if pending.is_some() {
            return Err(invalid("a life type without a duration after it"));
        }
        if !any {
            return Err(invalid("no lifetime"));
        }
        Ok(out)
    }

    /// Writes the data: seconds first, then kilobytes, each duration as a
    /// TV attribute when it fits 16 bits, else a 4-byte TLV.
    pub fn emit(&self, numbering: LifeAttributes) -> Vec<u8> {
        let mut out = Vec::new();
        for (t, v) in [(LIFE_SECONDS, self.seconds), (LIFE_KILOBYTES, self.kilobytes)] {
            if let Some(v) = v {
                emit_u32(&mut out, numbering.life_type, t as u32);
                emit_u32(&mut out, numbering.life_duration, v);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECONDS_86400: [u8; 12] = [0x80, 1, 0, 1, 0, 2, 0, 4, 0, 1, 0x51, 0x80];

    #[test]
    fn emit_and_parse() {
        let d = LifeDurations { seconds: Some(86400), kilobytes: None };
        assert_eq!(d.emit(LIFE_IPSEC), SECONDS_86400);
        assert_eq!(LifeDurations::parse(&SECONDS_86400, &[LIFE_IPSEC]), Ok(d));
        let both = LifeDurations { seconds: Some(600), kilobytes: Some(100_000) };
        let b = both.emit(LIFE_ISAKMP);
        assert_eq!(b, [0x80, 11, 0, 1, 0x80, 12, 0x02, 0x58, 0x80, 11, 0, 2, 0, 12, 0, 4, 0, 1, 0x86, 0xa0]);
        assert_eq!(LifeDurations::parse(&b, &[LIFE_ISAKMP]), Ok(both));
        // Phase-2 numbering is not phase-1 numbering.
        assert!(LifeDurations::parse(&b, &[LIFE_IPSEC]).is_err());
        assert_eq!(LifeDurations::parse(&b, &[LIFE_IPSEC, LIFE_ISAKMP]), Ok(both));
    }

    #[test]
    fn malformed_lists_refused() {
        let bad: [(&[u8], &str); 9] = [
            (&[], "no lifetime"),
            (&[0x80, 1, 0, 1], "a life type without a duration after it"),
            (&[0x80, 2, 0, 5], "a life duration without a life type before it"),
            (&[0x80, 1, 0, 1, 0x80, 2, 0, 0], "zero life duration"),
            (&[0x80, 1, 0, 1, 0x80, 1, 0, 2, 0x80, 2, 0, 5], "a life type without a duration after it"),
            (&[0x80, 1, 0, 1, 0x80, 2, 0, 5, 0x80, 1, 0, 1, 0x80, 2, 0, 6], "the same life type twice"),
            (&[0x80, 1, 0, 1, 0, 2, 0, 5, 1, 0, 0, 0, 0], "life duration wider than 32 bits"),
            (&[0x80, 1, 0, 3, 0x80, 2, 0, 5], "SA life type: unsupported value 3"),
            (&[0x80, 4, 0, 1], "RESPONDER-LIFETIME attribute: unsupported value 4"),
        ];
        for (data, want) in bad {
            let e = LifeDurations::parse(data, &[LIFE_IPSEC]).unwrap_err();
            assert!(e.to_string().ends_with(want), "{data:02x?}: {e}");
        }
        // A truncated list is the attribute parser's error.
        for n in 1..SECONDS_86400.len() {
            assert!(LifeDurations::parse(&SECONDS_86400[..n], &[LIFE_IPSEC]).is_err(), "cut at {n}");
        }
    }
}
