//! What the classifier reads from a packet ([`FlowKey`]) and what it
//! answers ([`Verdict`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The selector fields of an IPv4 packet (RFC 4301 §4.4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKeyV4 {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol (next header after any extension headers).
    pub protocol: u8,
    /// Source port for TCP/UDP/SCTP, else 0.
    pub src_port: u16,
    /// Destination port for TCP/UDP/SCTP; `type << 8 | code` for ICMP;
    /// else 0.
    pub dst_port: u16,
}

/// The selector fields of an IPv6 packet (RFC 4301 §4.4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKeyV6 {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// IP protocol (the upper-layer next header after extension headers).
    pub protocol: u8,
    /// Source port for TCP/UDP/SCTP, else 0.
    pub src_port: u16,
    /// Destination port for TCP/UDP/SCTP; `type << 8 | code` for ICMPv6;
    /// else 0.
    pub dst_port: u16,
}

/// What the packet parser extracts for classification: addresses,
/// protocol, ports. `Copy` and at most 40 bytes; the IPv4 variant is
/// hashed as two `u32`s, never widened to IPv6.
///
/// Field conventions (the parser's side of the contract): ports are the
/// TCP/UDP/SCTP ports; for ICMP and ICMPv6 `src_port` is 0 and `dst_port`
/// is [`FlowKey::icmp_type_code`]; for any other protocol (and for non-first
/// fragments, whose ports are unknown) both are 0, which only `ANY`-port
/// services match (RFC 4301 §4.4.1.1 "OPAQUE" ports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowKey {
    /// An IPv4 packet.
    V4(FlowKeyV4),
    /// An IPv6 packet.
    V6(FlowKeyV6),
}

const _: () = assert!(core::mem::size_of::<FlowKey>() <= 40);

impl FlowKey {
    /// The key of an IPv4 packet.
    pub const fn v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, src_port: u16, dst_port: u16) -> FlowKey {
        FlowKey::V4(FlowKeyV4 { src, dst, protocol, src_port, dst_port })
    }

    /// The key of an IPv6 packet.
    pub const fn v6(src: Ipv6Addr, dst: Ipv6Addr, protocol: u8, src_port: u16, dst_port: u16) -> FlowKey {
        FlowKey::V6(FlowKeyV6 { src, dst, protocol, src_port, dst_port })
    }

    /// The key of a packet, `None` when `src` and `dst` differ in family.
    pub const fn new(
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        src_port: u16,
        dst_port: u16,
    ) -> Option<FlowKey> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(FlowKey::v4(s, d, protocol, src_port, dst_port)),
            (IpAddr::V6(s), IpAddr::V6(d)) => Some(FlowKey::v6(s, d, protocol, src_port, dst_port)),
            _ => None,
        }
    }

    /// The 16-bit ICMP selector: type in the high octet, code in the low
    /// one (RFC 4301 §4.4.1.1, RFC 7296 §3.13.1). Goes in `dst_port`.
    pub const fn icmp_type_code(icmp_type: u8, code: u8) -> u16 {
        (icmp_type as u16) << 8 | code as u16
    }

    /// Source address.
    pub const fn src(&self) -> IpAddr {
        match self {
            FlowKey::V4(k) => IpAddr::V4(k.src),
            FlowKey::V6(k) => IpAddr::V6(k.src),
        }
    }

    /// Destination address.
    pub const fn dst(&self) -> IpAddr {
        match self {
            FlowKey::V4(k) => IpAddr::V4(k.dst),
            FlowKey::V6(k) => IpAddr::V6(k.dst),
        }
    }

    /// IP protocol.
    pub const fn protocol(&self) -> u8 {
        match self {
            FlowKey::V4(k) => k.protocol,
            FlowKey::V6(k) => k.protocol,
        }
    }

    /// Source port (0 when none).
    pub const fn src_port(&self) -> u16 {
        match self {
            FlowKey::V4(k) => k.src_port,
            FlowKey::V6(k) => k.src_port,
        }
    }

    /// Destination port, or ICMP type-code (0 when none).
    pub const fn dst_port(&self) -> u16 {
        match self {
            FlowKey::V4(k) => k.dst_port,
            FlowKey::V6(k) => k.dst_port,
        }
    }
}

impl From<FlowKeyV4> for FlowKey {
    fn from(k: FlowKeyV4) -> FlowKey {
        FlowKey::V4(k)
    }
}

impl From<FlowKeyV6> for FlowKey {
    fn from(k: FlowKeyV6) -> FlowKey {
        FlowKey::V6(k)
    }
}

/// Position of a proxy-ID in its table, as configured (0-based). Stable for
/// the life of the table: the caller maps it to the proxy-ID's SA pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyIdIndex(u32);

impl ProxyIdIndex {
    /// The index of the proxy-ID at `position` in the configured list.
    pub const fn new(position: u32) -> ProxyIdIndex {
        ProxyIdIndex(position)
    }

    /// The position as a `usize`, for indexing the caller's SA array.
    pub const fn get(self) -> usize {
        self.0 as usize
    }

    /// The position as a `u32`.
    pub const fn as_u32(self) -> u32 {
        self.0
    }
}

/// The classifier's answer for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Send on this proxy-ID's SA.
    Match(ProxyIdIndex),
    /// No proxy-ID takes the packet: the caller drops and counts it.
    NoMatch,
}

impl Verdict {
    /// The matched proxy-ID, if any.
    pub const fn index(self) -> Option<ProxyIdIndex> {
        match self {
            Verdict::Match(i) => Some(i),
            Verdict::NoMatch => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_accessors() {
        let k = FlowKey::new("10.1.1.1".parse().unwrap(), "10.2.1.1".parse().unwrap(), 6, 40000, 80).unwrap();
        assert_eq!(k.src().to_string(), "10.1.1.1");
        assert_eq!(k.dst().to_string(), "10.2.1.1");
        assert_eq!((k.protocol(), k.src_port(), k.dst_port()), (6, 40000, 80));
        assert!(FlowKey::new("10.1.1.1".parse().unwrap(), "::1".parse().unwrap(), 6, 1, 2).is_none());
        assert_eq!(FlowKey::icmp_type_code(8, 0), 0x0800);
        assert_eq!(FlowKey::icmp_type_code(3, 4), 0x0304);
        assert!(core::mem::size_of::<FlowKey>() <= 40);
        assert_eq!(Verdict::Match(ProxyIdIndex::new(3)).index().map(ProxyIdIndex::get), Some(3));
        assert_eq!(Verdict::NoMatch.index(), None);
    }
}
