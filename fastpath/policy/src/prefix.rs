//! IPv4 and IPv6 prefixes: the address selectors of a proxy-ID
//! (RFC 4301 §4.4.1.1, "Local Address" and "Remote Address" as a prefix).
//!
//! A [`Prefix`] is always canonical: its host bits (the bits past its
//! length) are zero. Text with host bits set (`10.1.1.5/24`) is refused with
//! [`PolicyError::HostBitsSet`], which names the canonical form, because in a
//! proxy-ID it is almost always a typo and IKE would announce a different
//! selector than the operator meant. [`Prefix::new_masked`] is there for
//! callers that want the bits cleared instead.

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::PolicyError;

/// An IPv4 or IPv6 prefix (address and length), with its host bits zero.
///
/// Text forms accepted by [`FromStr`]: `10.1.1.0/24`, `0.0.0.0/0`,
/// `10.1.1.0/255.255.255.0` (a contiguous IPv4 netmask), `2001:db8::/32`,
/// and a bare address (`10.1.1.1`, `2001:db8::1`) meaning a host prefix
/// (`/32`, `/128`). [`Display`](fmt::Display) always writes `address/length`.
///
/// Ordering (derived) is by family, then address, then length; it is only
/// meant for sorting in displays, not for matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// The network mask of an IPv4 prefix of `len` bits; all ones past 32.
#[inline]
pub(crate) const fn mask_v4(len: u8) -> u32 {
    match u32::MAX.checked_shl(32u32.saturating_sub(len as u32)) {
        Some(m) => m,
        None => 0,
    }
}

/// The network mask of an IPv6 prefix of `len` bits; all ones past 128.
#[inline]
pub(crate) const fn mask_v6(len: u8) -> u128 {
    match u128::MAX.checked_shl(128u32.saturating_sub(len as u32)) {
        Some(m) => m,
        None => 0,
    }
}

impl Prefix {
    /// `0.0.0.0/0`: every IPv4 address.
    pub const ANY_V4: Prefix = Prefix { addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED), len: 0 };

    /// `::/0`: every IPv6 address.
    pub const ANY_V6: Prefix = Prefix { addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED), len: 0 };

    /// The prefix `addr/len`. Refuses a length longer than the family's
    /// address and an address with host bits set.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PolicyError> {
        let masked = Prefix::new_masked(addr, len)?;
        if masked.addr != addr {
            return Err(PolicyError::HostBitsSet {
                text: format!("{addr}/{len}"),
                canonical: masked.to_string(),
            });
        }
        Ok(masked)
    }

    /// The prefix `addr/len` with the host bits of `addr` cleared. Refuses
    /// only a length longer than the family's address.
    pub fn new_masked(addr: IpAddr, len: u8) -> Result<Prefix, PolicyError> {
        let addr = match addr {
            IpAddr::V4(a) if len <= 32 => IpAddr::V4(Ipv4Addr::from_bits(a.to_bits() & mask_v4(len))),
            IpAddr::V6(a) if len <= 128 => IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() & mask_v6(len))),
            _ => {
                return Err(PolicyError::InvalidPrefix {
                    text: format!("{addr}/{len}"),
                    reason: "length longer than the address",
                })
            }
        };
        Ok(Prefix { addr, len })
    }

    /// The host prefix of one address (`/32` or `/128`).
    pub const fn host(addr: IpAddr) -> Prefix {
        let len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Prefix { addr, len }
    }

    /// The network address (host bits zero).
    pub const fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    #[allow(clippy::len_without_is_empty)] // a prefix length, not a container
    pub const fn len(&self) -> u8 {
        self.len
    }

    /// True for an IPv4 prefix.
    pub const fn is_ipv4(&self) -> bool {
        matches!(self.addr, IpAddr::V4(_))
    }

    /// True for an IPv6 prefix.
    pub const fn is_ipv6(&self) -> bool {
        matches!(self.addr, IpAddr::V6(_))
    }

    /// True when `addr` is of the same family and inside the prefix.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(p), IpAddr::V4(a)) => (a.to_bits() & mask_v4(self.len)) == p.to_bits(),
            (IpAddr::V6(p), IpAddr::V6(a)) => (a.to_bits() & mask_v6(self.len)) == p.to_bits(),
            _ => false,
        }
    }

    /// True when `other` lies inside the prefix: same family, at least as
    /// long, its network address inside.
    pub fn covers(&self, other: &Prefix) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// The network address and length as integers, when IPv4.
    pub(crate) fn v4_bits(&self) -> Option<(u32, u8)> {
        match self.addr {
            IpAddr::V4(a) => Some((a.to_bits(), self.len)),
            IpAddr::V6(_) => None,
        }
    }

    /// The network address and length as integers, when IPv6.
    pub(crate) fn v6_bits(&self) -> Option<(u128, u8)> {
        match self.addr {
            IpAddr::V6(a) => Some((a.to_bits(), self.len)),
            IpAddr::V4(_) => None,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Prefix, PolicyError> {
        let invalid = |reason| PolicyError::InvalidPrefix { text: text.to_owned(), reason };
        let (addr_text, len_text) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| invalid("not an IPv4 or IPv6 address"))?;
        let len = match (len_text, addr) {
            (None, _) => return Ok(Prefix::host(addr)),
            (Some(l), IpAddr::V4(_)) if l.contains('.') => {
                let mask: Ipv4Addr = l.parse().map_err(|_| invalid("netmask is not an address"))?;
                let bits = mask.to_bits();
                let ones = bits.leading_ones();
                if ones + bits.trailing_zeros() < 32 {
                    return Err(invalid("netmask is not contiguous"));
                }
                // `ones` is at most 32.
                ones as u8
            }
            (Some(l), _) => {
                if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid("length is not a number"));
                }
                l.parse::<u8>().map_err(|_| invalid("length too long"))?
            }
        };
        let masked = Prefix::new_masked(addr, len).map_err(|_| invalid("length longer than the address"))?;
        if masked.addr != addr {
            return Err(PolicyError::HostBitsSet { text: text.to_owned(), canonical: masked.to_string() });
        }
        Ok(masked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        for s in [
            "10.1.1.0/24",
            "0.0.0.0/0",
            "10.2.2.7/32",
            "128.0.0.0/1",
            "2001:db8::/32",
            "::/0",
            "2001:db8::1/128",
            "fe80::/10",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
        assert_eq!(p("10.1.1.0/255.255.255.0"), p("10.1.1.0/24"));
        assert_eq!(p("0.0.0.0/0.0.0.0"), Prefix::ANY_V4);
        assert_eq!(p("::/0"), Prefix::ANY_V6);
        assert_eq!(p("10.1.1.1").to_string(), "10.1.1.1/32");
        assert_eq!(p("2001:db8::1").to_string(), "2001:db8::1/128");
        assert_eq!(p("10.1.1.0/024").len(), 24);
    }

    #[test]
    fn parse_rejects_and_names_the_text() {
        for s in [
            "",
            "/24",
            "10.1.1/24",
            "10.1.1.0/",
            "10.1.1.0/33",
            "10.1.1.0/+24",
            "10.1.1.0/-1",
            "10.1.1.0/2a",
            "10.1.1.0/0024",
            "10.1.1.0/255.0.255.0",
            "10.1.1.0/24/8",
            "2001:db8::/129",
            "2001:db8::/255.255.0.0",
            "010.1.1.0/24",
            " 10.1.1.0/24",
            "host",
        ] {
            let e = s.parse::<Prefix>().unwrap_err();
            assert!(matches!(&e, PolicyError::InvalidPrefix { text, .. } if text == s), "{s:?} -> {e:?}");
            assert!(e.to_string().contains(&format!("`{s}`")), "{e}");
        }
    }

    #[test]
    fn host_bits_are_refused_with_the_canonical_form() {
        let e = "10.1.1.5/24".parse::<Prefix>().unwrap_err();
        assert_eq!(
            e,
            PolicyError::HostBitsSet { text: "10.1.1.5/24".into(), canonical: "10.1.1.0/24".into() }
        );
        assert!(e.to_string().contains("did you mean `10.1.1.0/24`"));
        assert!(matches!("2001:db8::1/32".parse::<Prefix>(), Err(PolicyError::HostBitsSet { .. })));
        let a: IpAddr = "10.1.1.5".parse().unwrap();
        assert!(Prefix::new(a, 24).is_err());
        assert_eq!(Prefix::new_masked(a, 24).unwrap(), p("10.1.1.0/24"));
        assert!(Prefix::new_masked(a, 33).is_err());
    }

    #[test]
    fn covers() {
        let net = p("10.1.0.0/16");
        assert!(net.covers(&net));
        assert!(net.covers(&p("10.1.2.0/24")));
        assert!(net.covers(&p("10.1.2.3/32")));
        assert!(!net.covers(&p("10.0.0.0/8")), "wider");
        assert!(!net.covers(&p("10.2.0.0/24")), "beside");
        assert!(!Prefix::ANY_V4.covers(&p("2001:db8::/32")), "other family");
        assert!(Prefix::ANY_V4.covers(&p("0.0.0.0/0")));
    }

    #[test]
    fn contains() {
        let net = p("10.1.1.0/24");
        assert!(net.contains("10.1.1.0".parse().unwrap()));
        assert!(net.contains("10.1.1.255".parse().unwrap()));
        assert!(!net.contains("10.1.2.0".parse().unwrap()));
        assert!(!net.contains("::a01:100".parse().unwrap()));
        assert!(Prefix::ANY_V4.contains("255.255.255.255".parse().unwrap()));
        assert!(!Prefix::ANY_V4.contains("::".parse().unwrap()));
        let v6 = p("2001:db8::/32");
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::".parse().unwrap()));
        assert!(Prefix::ANY_V6.contains("::1".parse().unwrap()));
    }

    #[test]
    fn masks() {
        assert_eq!(mask_v4(0), 0);
        assert_eq!(mask_v4(1), 0x8000_0000);
        assert_eq!(mask_v4(24), 0xffff_ff00);
        assert_eq!(mask_v4(32), u32::MAX);
        assert_eq!(mask_v4(200), u32::MAX);
        assert_eq!(mask_v6(0), 0);
        assert_eq!(mask_v6(64), u128::MAX << 64);
        assert_eq!(mask_v6(128), u128::MAX);
        assert_eq!(mask_v6(255), u128::MAX);
    }
}
