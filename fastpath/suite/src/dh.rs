//! The Diffie-Hellman groups esprit implements, one type for IKE (which
//! computes with them) and the configuration (which names them).

use core::fmt;

/// A Diffie-Hellman group (IKEv1 phase-1 attribute 4, phase-2 attribute 3;
/// IANA group numbers). Group 1 (768-bit MODP) is not one: RFC 8247 §2.4
/// forbids it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DhGroup {
    /// 1024-bit MODP, group 2 (RFC 2409 §6.2); kept for ScreenOS
    /// `sec-level standard`.
    Modp1024,
    /// 1536-bit MODP, group 5 (RFC 3526 §2).
    Modp1536,
    /// 2048-bit MODP, group 14 (RFC 3526 §3), the RFC 8247 MUST.
    Modp2048,
    /// 3072-bit MODP, group 15 (RFC 3526 §4).
    Modp3072,
    /// 256-bit random ECP, group 19 (RFC 5903).
    Ecp256,
    /// 384-bit random ECP, group 20 (RFC 5903).
    Ecp384,
    /// Curve25519, group 31 (RFC 8031, X25519 of RFC 7748).
    Curve25519,
}

impl DhGroup {
    /// Every group, by number.
    pub const ALL: [DhGroup; 7] = [
        DhGroup::Modp1024,
        DhGroup::Modp1536,
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Curve25519,
    ];

    /// The IANA / RFC 2409 group number.
    pub const fn number(self) -> u16 {
        match self {
            DhGroup::Modp1024 => 2,
            DhGroup::Modp1536 => 5,
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Curve25519 => 31,
        }
    }

    /// The group of a number; `None` for group 1 and every group esprit
    /// does not implement.
    pub fn from_number(n: u64) -> Option<DhGroup> {
        DhGroup::ALL.into_iter().find(|g| u64::from(g.number()) == n)
    }

    /// strongSwan's name (`modp2048`, `ecp256`), as IKE logs and events
    /// show it.
    pub const fn name(self) -> &'static str {
        match self {
            DhGroup::Modp1024 => "modp1024",
            DhGroup::Modp1536 => "modp1536",
            DhGroup::Modp2048 => "modp2048",
            DhGroup::Modp3072 => "modp3072",
            DhGroup::Ecp256 => "ecp256",
            DhGroup::Ecp384 => "ecp384",
            DhGroup::Curve25519 => "curve25519",
        }
    }

    /// Length of a public value on the wire: MODP left-padded to the
    /// prime's length, ECP x | y (RFC 5903 §7), Curve25519 the 32-byte
    /// u-coordinate (RFC 8031 §2).
    pub const fn public_len(self) -> usize {
        match self {
            DhGroup::Modp1024 => 128,
            DhGroup::Modp1536 => 192,
            DhGroup::Modp2048 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Curve25519 => 32,
        }
    }
}

impl fmt::Display for DhGroup {
    /// The ScreenOS word: `group14`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group{}", self.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        let table: Vec<_> = DhGroup::ALL.iter().map(|g| (g.number(), g.name(), g.to_string())).collect();
        assert_eq!(table[2], (14, "modp2048", "group14".to_string()));
        assert_eq!(table[4], (19, "ecp256", "group19".to_string()));
        assert_eq!(table[6], (31, "curve25519", "group31".to_string()));
        assert_eq!(DhGroup::Curve25519.public_len(), 32);
        for g in DhGroup::ALL {
            assert_eq!(DhGroup::from_number(g.number().into()), Some(g));
        }
        for n in [0, 1, 3, 16, 21, 30, 32, 1 << 20] {
            assert_eq!(DhGroup::from_number(n), None, "{n}");
        }
    }
}
