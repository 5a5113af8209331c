//! Proxy-IDs as Quick Mode IDs (RFC 2409 §5.5, RFC 2407 §4.6.2), and the
//! responder's proxy-ID check.
//!
//! IDci describes the initiator's side, IDcr the responder's. Each carries
//! an address (a host as ID_IPV4_ADDR/ID_IPV6_ADDR, a prefix as
//! ID_*_ADDR_SUBNET; an ID_*_ADDR_RANGE is accepted when it is exactly a
//! prefix), one IP protocol and one port (0 = any): an IKEv1 ID cannot
//! carry a port range, so a proxy-ID with a range other than one port or
//! all ports cannot be negotiated and is refused before anything is sent.
//!
//! Responder policy: only a proposal *equal* to a configured proxy-ID is
//! accepted (as ScreenOS does). A narrower one (a subnet inside, one
//! protocol or port of an ANY service) is refused like a wider or
//! unrelated one, with INVALID-ID-INFORMATION and an event that lists the
//! configured proxy-IDs: the fast path sends each configured proxy-ID's
//! traffic on its one SA, and an SA with narrower selectors would carry
//! traffic the peer then drops (the very failure the seed is about). So
//! esprit never installs a superset of what the operator configured, nor
//! a subset it cannot keep to. As initiator, the IDs of QM2 must be the
//! ones proposed (RFC 2409 §5.5 has no narrowing in IKEv1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use esprit_policy::{PortRange, Prefix, ProxyId, Service};

use crate::wire::{IdPayload, IdType};

/// One side of a Quick Mode ID, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdSelector {
    /// Address prefix.
    pub prefix: Prefix,
    /// IP protocol (0 = any).
    pub protocol: u8,
    /// Port (0 = any).
    pub port: u16,
}

fn one_port(r: PortRange) -> Result<u16, &'static str> {
    if r.is_any() {
        Ok(0)
    } else if r.first() == r.last() {
        Ok(r.first())
    } else {
        Err("an IKEv1 ID carries one port or all ports, not a range")
    }
}

/// (local, remote) selectors of a proxy-ID, in outbound orientation.
pub fn selectors(p: &ProxyId) -> Result<(IdSelector, IdSelector), &'static str> {
    let protocol = p.service.ip_protocol().unwrap_or(0);
    Ok((
        IdSelector { prefix: p.local, protocol, port: one_port(p.service.src_ports())? },
        IdSelector { prefix: p.remote, protocol, port: one_port(p.service.dst_ports())? },
    ))
}

/// The proxy-ID that local/remote selectors describe.
pub fn proxy_id(local: IdSelector, remote: IdSelector) -> Result<ProxyId, &'static str> {
    if local.protocol != remote.protocol {
        return Err("IDci and IDcr name different protocols");
    }
    let service = if local.protocol == 0 {
        if local.port != 0 || remote.port != 0 {
            return Err("a port without a protocol");
        }
        Service::ANY
    } else {
        let r = |p: u16| if p == 0 { PortRange::ANY } else { PortRange::single(p) };
        Service::with_ports(local.protocol, r(local.port), r(remote.port))
            .map_err(|_| "ports on a protocol without ports")?
    };
    ProxyId::new(local.prefix, remote.prefix, service)
        .map_err(|_| "IDci and IDcr of different address families")
}

/// The ID payload body for a selector.
pub fn encode(s: &IdSelector) -> Vec<u8> {
    let mut data = Vec::new();
    let host = match s.prefix.addr() {
        IpAddr::V4(_) => s.prefix.len() == 32,
        IpAddr::V6(_) => s.prefix.len() == 128,
    };
    let id_type = match (s.prefix.addr(), host) {
        (IpAddr::V4(a), true) => {
            data.extend_from_slice(&a.octets());
            IdType::Ipv4Addr
        }
        (IpAddr::V4(a), false) => {
            data.extend_from_slice(&a.octets());
            data.extend_from_slice(&mask_v4(s.prefix.len()).to_be_bytes());
            IdType::Ipv4AddrSubnet
        }
        (IpAddr::V6(a), true) => {
            data.extend_from_slice(&a.octets());
            IdType::Ipv6Addr
        }
        (IpAddr::V6(a), false) => {
            data.extend_from_slice(&a.octets());
            data.extend_from_slice(&mask_v6(s.prefix.len()).to_be_bytes());
            IdType::Ipv6AddrSubnet
        }
    };
    IdPayload { id_type, protocol: s.protocol, port: s.port, data: &data }.emit()
}

fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0)
}

fn mask_v6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0)
}

fn contiguous_len_v4(mask: u32) -> Option<u8> {
    let len = mask.leading_ones();
    (mask_v4(len as u8) == mask).then_some(len as u8)
}

fn contiguous_len_v6(mask: u128) -> Option<u8> {
    let len = mask.leading_ones();
    (mask_v6(len as u8) == mask).then_some(len as u8)
}

/// Decodes a Quick Mode ID payload.
pub fn decode(id: &IdPayload<'_>) -> Result<IdSelector, &'static str> {
    let d = id.data;
    let v4 = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let v6 = |b: &[u8]| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[..16]);
        Ipv6Addr::from(a)
    };
    let prefix = match (id.id_type, d.len()) {
        (IdType::Ipv4Addr, 4) => Prefix::host(IpAddr::V4(v4(d))),
        (IdType::Ipv6Addr, 16) => Prefix::host(IpAddr::V6(v6(d))),
        (IdType::Ipv4AddrSubnet, 8) => {
            let len = contiguous_len_v4(v4(&d[4..]).to_bits()).ok_or("non-contiguous IPv4 mask")?;
            Prefix::new_masked(IpAddr::V4(v4(d)), len).map_err(|_| "bad IPv4 subnet")?
        }
        (IdType::Ipv6AddrSubnet, 32) => {
            let len = contiguous_len_v6(v6(&d[16..]).to_bits()).ok_or("non-contiguous IPv6 mask")?;
            Prefix::new_masked(IpAddr::V6(v6(d)), len).map_err(|_| "bad IPv6 subnet")?
        }
        (IdType::Ipv4AddrRange, 8) => {
            let (a, b) = (v4(d).to_bits(), v4(&d[4..]).to_bits());
            let size = b.wrapping_sub(a).wrapping_add(1);
            if b < a || (size != 0 && !size.is_power_of_two()) || (size != 0 && a % size != 0) {
                return Err("IPv4 range that is not a prefix");
            }
            let len = if size == 0 { 0 } else { 32 - size.trailing_zeros() as u8 };
            Prefix::new_masked(IpAddr::V4(v4(d)), len).map_err(|_| "bad IPv4 range")?
        }
        (IdType::Ipv6AddrRange, 32) => {
            let (a, b) = (v6(d).to_bits(), v6(&d[16..]).to_bits());
            let size = b.wrapping_sub(a).wrapping_add(1);
            if b < a || (size != 0 && !size.is_power_of_two()) || (size != 0 && a % size != 0) {
                return Err("IPv6 range that is not a prefix");
            }
            let len = if size == 0 { 0 } else { 128 - size.trailing_zeros() as u8 };
            Prefix::new_masked(IpAddr::V6(v6(d)), len).map_err(|_| "bad IPv6 range")?
        }
        _ => return Err("not an address, subnet or range ID of the right length"),
    };
    Ok(IdSelector { prefix, protocol: id.protocol, port: id.port })
}

fn range_inside(inner: PortRange, outer: PortRange) -> bool {
    outer.first() <= inner.first() && inner.last() <= outer.last()
}

fn service_inside(inner: &Service, outer: &Service) -> bool {
    if outer.is_any() {
        return true;
    }
    inner.ip_protocol() == outer.ip_protocol()
        && range_inside(inner.src_ports(), outer.src_ports())
        && range_inside(inner.dst_ports(), outer.dst_ports())
}

/// True when `inner` asks for nothing outside `outer`.
pub fn inside(inner: &ProxyId, outer: &ProxyId) -> bool {
    outer.local.covers(&inner.local)
        && outer.remote.covers(&inner.remote)
        && service_inside(&inner.service, &outer.service)
}

/// The responder's check: the proposal, if it is a configured proxy-ID.
pub fn check(configured: &[ProxyId], proposed: &ProxyId) -> Option<ProxyId> {
    configured.contains(proposed).then_some(*proposed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ProxyId {
        s.parse().unwrap()
    }

    #[test]
    fn roundtrip_through_ids() {
        for s in [
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY",
            "local-ip 10.1.1.7/32 remote-ip 10.2.0.0/16 HTTP",
            "local-ip 2001:db8:1::/48 remote-ip 2001:db8:2::1/128 ANY",
            "local-ip 0.0.0.0/0 remote-ip 0.0.0.0/0 UDP-ANY",
        ] {
            let pid = p(s);
            let (l, r) = selectors(&pid).unwrap();
            let lb = encode(&l);
            let rb = encode(&r);
            let l2 = decode(&IdPayload::parse(&lb).unwrap()).unwrap();
            let r2 = decode(&IdPayload::parse(&rb).unwrap()).unwrap();
            assert_eq!(proxy_id(l2, r2).unwrap(), pid, "{s}");
        }
    }

    #[test]
    fn range_ids_only_when_a_prefix() {
        let body = [7, 0, 0, 0, 10, 1, 1, 0, 10, 1, 1, 255];
        let s = decode(&IdPayload::parse(&body).unwrap()).unwrap();
        assert_eq!(s.prefix.to_string(), "10.1.1.0/24");
        let body = [7, 0, 0, 0, 10, 1, 1, 1, 10, 1, 1, 255];
        assert!(decode(&IdPayload::parse(&body).unwrap()).is_err());
        let body = [4, 0, 0, 0, 10, 1, 1, 0, 255, 0, 255, 0];
        assert!(decode(&IdPayload::parse(&body).unwrap()).is_err());
    }

    #[test]
    fn responder_accepts_exact_proxy_ids_only() {
        let conf = vec![p("local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY")];
        assert!(check(&conf, &conf[0]).is_some());
        let narrow = p("local-ip 10.2.1.0/25 remote-ip 10.1.1.9/32 HTTP");
        assert!(inside(&narrow, &conf[0]));
        assert_eq!(check(&conf, &narrow), None);
        assert!(check(&conf, &p("local-ip 10.2.0.0/16 remote-ip 10.1.1.0/24 ANY")).is_none());
        assert!(check(&conf, &p("local-ip 10.9.1.0/24 remote-ip 10.1.1.0/24 ANY")).is_none());
    }
}
