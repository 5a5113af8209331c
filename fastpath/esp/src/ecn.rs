//! ECN through the tunnel (RFC 6040, "normal mode").
//!
//! Encapsulation copies the inner ECN field to the outer header (done by
//! [`crate::OutboundSa::encapsulate`], RFC 6040 §4.1). Decapsulation must
//! fold congestion marks that routers put on the outer header back into the
//! inner one (RFC 6040 §4.2, Figure 4); [`decapsulate`] does that on the
//! inner packet returned by [`crate::InboundSa::decapsulate`], given the
//! outer TOS byte the caller stripped. Never panics: a buffer that is not
//! an IP header is left alone.

use thiserror::Error;

/// ECN codepoints (RFC 3168 §5), the low two bits of TOS / traffic class.
pub const NOT_ECT: u8 = 0b00;
pub const ECT1: u8 = 0b01;
pub const ECT0: u8 = 0b10;
pub const CE: u8 = 0b11;

/// RFC 6040 §4.2: an outer CE mark on a packet whose inner header is
/// Not-ECT cannot be passed on; the packet must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("outer header marked CE but the inner packet is not ECN-capable (RFC 6040 §4.2)")]
pub struct EcnDrop;

/// The inner ECN field RFC 6040 Figure 4 gives for an arriving inner and
/// outer pair, or `Err` when the packet must be dropped.
pub fn combine(inner: u8, outer: u8) -> Result<u8, EcnDrop> {
    let (inner, outer) = (inner & 3, outer & 3);
    match (inner, outer) {
        (NOT_ECT, CE) => Err(EcnDrop),
        (NOT_ECT, _) => Ok(NOT_ECT),
        (CE, _) | (_, CE) => Ok(CE),
        (ECT0, ECT1) => Ok(ECT1),
        _ => Ok(inner),
    }
}

/// Applies RFC 6040 decapsulation to the inner IP packet in place
/// (patching the IPv4 header checksum incrementally, RFC 1624).
pub fn decapsulate(outer_tos: u8, inner: &mut [u8]) -> Result<(), EcnDrop> {
    match inner.first().map(|b| b >> 4) {
        Some(4) if inner.len() >= 20 => {
            let old_word = u16::from_be_bytes([inner[0], inner[1]]);
            let ecn = combine(inner[1], outer_tos)?;
            let tos = (inner[1] & !3) | ecn;
            if tos != inner[1] {
                inner[1] = tos;
                let new_word = u16::from_be_bytes([inner[0], inner[1]]);
                let check = u16::from_be_bytes([inner[10], inner[11]]);
                let check = esprit_wire::checksum::update16(check, old_word, new_word);
                inner[10..12].copy_from_slice(&check.to_be_bytes());
            }
            Ok(())
        }
        Some(6) if inner.len() >= 40 => {
            // Traffic class = low nibble of byte 0, high nibble of byte 1;
            // its ECN bits are bits 5..4 of byte 1.
            let ecn = combine(inner[1] >> 4, outer_tos)?;
            inner[1] = (inner[1] & 0xcf) | (ecn << 4);
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6040_figure_4() {
        // Rows: inner Not-ECT, ECT(0), ECT(1), CE; columns: outer the same.
        let expect: [[Option<u8>; 4]; 4] = [
            [Some(NOT_ECT), Some(NOT_ECT), Some(NOT_ECT), None],
            [Some(ECT0), Some(ECT0), Some(ECT1), Some(CE)],
            [Some(ECT1), Some(ECT1), Some(ECT1), Some(CE)],
            [Some(CE), Some(CE), Some(CE), Some(CE)],
        ];
        let cps = [NOT_ECT, ECT0, ECT1, CE];
        for (i, inner) in cps.iter().enumerate() {
            for (o, outer) in cps.iter().enumerate() {
                assert_eq!(combine(*inner, *outer).ok(), expect[i][o], "inner {inner} outer {outer}");
            }
        }
    }

    #[test]
    fn ipv4_checksum_patched() {
        // 10.1.1.5 -> 10.2.1.7, DSCP AF41, ECT(0).
        let mut p =
            [0x45, 0x8a, 0x00, 0x14, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0, 0, 10, 1, 1, 5, 10, 2, 1, 7];
        let c = esprit_wire::checksum::checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        decapsulate(CE, &mut p).unwrap();
        assert_eq!(p[1], 0x8b);
        assert_eq!(esprit_wire::checksum::checksum(&p), 0);
        p[1] = 0x88; // Not-ECT
        let c = {
            p[10..12].fill(0);
            esprit_wire::checksum::checksum(&p)
        };
        p[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(decapsulate(CE, &mut p), Err(EcnDrop));
        assert_eq!(decapsulate(ECT0, &mut p), Ok(()));
        assert_eq!(p[1], 0x88);
    }

    #[test]
    fn ipv6_traffic_class() {
        let mut p = [0u8; 40];
        p[0] = 0x6b; // TC high nibble 0xb
        p[1] = 0x20; // TC low nibble 0x2 = ECT(0)
        decapsulate(ECT1, &mut p).unwrap();
        assert_eq!(p[..2], [0x6b, 0x10]);
        decapsulate(CE, &mut p).unwrap();
        assert_eq!(p[..2], [0x6b, 0x30]);
        // Not an IP packet / too short: untouched.
        let mut short = [0x45u8; 10];
        assert_eq!(decapsulate(CE, &mut short), Ok(()));
        assert_eq!(short, [0x45; 10]);
    }
}
