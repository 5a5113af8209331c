//! The inbound proxy-ID check (RFC 4301 §5.2 step 4): a packet decrypted
//! from an SA must match that SA's selectors in reverse, else it is
//! dropped and counted.

use std::net::Ipv6Addr;

use crate::matcher::ServiceMatcher;
use crate::prefix::{mask_v4, mask_v6};
use crate::{FlowKey, ProxyId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Addresses {
    V4 {
        remote: u32,
        remote_mask: u32,
        local: u32,
        local_mask: u32,
    },
    // Stored unaligned (`Ipv6Addr` is bytes) to keep the selector small
    // enough to sit in an SA's hot cache line; lengths, not masks.
    V6 {
        remote: Ipv6Addr,
        local: Ipv6Addr,
        remote_len: u8,
        local_len: u8,
    },
    /// A proxy-ID with mixed families: nothing matches it.
    Never,
}

/// One proxy-ID compiled for the inbound check: `Copy`, at most 48 bytes,
/// no pointers, so an SA context can hold it by value.
///
/// [`admits`](InboundSelector::admits) is true when the packet's source is
/// in the remote prefix, its destination in the local prefix, and the
/// service matches with ports reversed (the packet's source port against
/// the service's destination range, its destination port against the
/// source range). ICMP type-code is a single selector and is compared
/// unreversed (see [`crate::Service`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundSelector {
    addresses: Addresses,
    service: ServiceMatcher,
}

const _: () = assert!(core::mem::size_of::<InboundSelector>() <= 48);

impl InboundSelector {
    /// Compiles a proxy-ID's selectors, reversed.
    pub fn new(proxy_id: &ProxyId) -> InboundSelector {
        let addresses = match (
            proxy_id.remote.v4_bits(),
            proxy_id.local.v4_bits(),
            proxy_id.remote.v6_bits(),
            proxy_id.local.v6_bits(),
        ) {
            (Some((remote, rl)), Some((local, ll)), _, _) => {
                Addresses::V4 { remote, remote_mask: mask_v4(rl), local, local_mask: mask_v4(ll) }
            }
            (_, _, Some((remote, rl)), Some((local, ll))) => Addresses::V6 {
                remote: Ipv6Addr::from_bits(remote),
                local: Ipv6Addr::from_bits(local),
                remote_len: rl,
                local_len: ll,
            },
            _ => Addresses::Never,
        };
        InboundSelector { addresses, service: ServiceMatcher::inbound(&proxy_id.service) }
    }

    /// True when a decrypted packet may be delivered.
    #[inline]
    pub fn admits(&self, key: &FlowKey) -> bool {
        let (addresses_ok, protocol, src_port, dst_port) = match (&self.addresses, key) {
            (Addresses::V4 { remote, remote_mask, local, local_mask }, FlowKey::V4(k)) => (
                (k.src.to_bits() & remote_mask) == *remote && (k.dst.to_bits() & local_mask) == *local,
                k.protocol,
                k.src_port,
                k.dst_port,
            ),
            (Addresses::V6 { remote, local, remote_len, local_len }, FlowKey::V6(k)) => (
                (k.src.to_bits() & mask_v6(*remote_len)) == remote.to_bits()
                    && (k.dst.to_bits() & mask_v6(*local_len)) == local.to_bits(),
                k.protocol,
                k.src_port,
                k.dst_port,
            ),
            _ => return false,
        };
        addresses_ok && self.service.matches(protocol, src_port, dst_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Prefix;

    fn pid(s: &str) -> ProxyId {
        s.parse().unwrap()
    }

    fn key(src: &str, dst: &str, proto: u8, sport: u16, dport: u16) -> FlowKey {
        FlowKey::new(src.parse().unwrap(), dst.parse().unwrap(), proto, sport, dport).unwrap()
    }

    #[test]
    fn reverse_addresses_and_ports() {
        let p =
            pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 protocol tcp src-port 1024-65535 dst-port 443");
        let sel = InboundSelector::new(&p);
        // Reply from the server 10.2.1.9:443 to the client 10.1.1.5:50000.
        assert!(sel.admits(&key("10.2.1.9", "10.1.1.5", 6, 443, 50000)));
        // Ports not reversed: refused.
        assert!(!sel.admits(&key("10.2.1.9", "10.1.1.5", 6, 50000, 443)));
        // Client port outside 1024-65535.
        assert!(!sel.admits(&key("10.2.1.9", "10.1.1.5", 6, 443, 1000)));
        // Addresses not reversed (an outbound packet): refused.
        assert!(!sel.admits(&key("10.1.1.5", "10.2.1.9", 6, 443, 50000)));
        // Wrong protocol.
        assert!(!sel.admits(&key("10.2.1.9", "10.1.1.5", 17, 443, 50000)));
        // Source outside remote, destination outside local.
        assert!(!sel.admits(&key("10.2.2.9", "10.1.1.5", 6, 443, 50000)));
        assert!(!sel.admits(&key("10.2.1.9", "10.1.2.5", 6, 443, 50000)));
        // Wrong family.
        assert!(!sel.admits(&key("::1", "::2", 6, 443, 50000)));
    }

    #[test]
    fn ipv6_and_any() {
        let p = pid("local-ip 2001:db8:1::/48 remote-ip 2001:db8:2::/48 ANY");
        let sel = InboundSelector::new(&p);
        assert!(sel.admits(&key("2001:db8:2::9", "2001:db8:1:ffff::5", 47, 0, 0)));
        assert!(!sel.admits(&key("2001:db8:1::5", "2001:db8:2::9", 47, 0, 0)));
        assert!(!sel.admits(&key("10.2.1.9", "10.1.1.5", 6, 443, 50000)));
        let all = InboundSelector::new(&pid("local-ip ::/0 remote-ip ::/0 ANY"));
        assert!(all.admits(&key("::1", "ffff::", 6, 1, 2)));
    }

    #[test]
    fn mixed_family_admits_nothing() {
        let bad = ProxyId { local: Prefix::ANY_V4, remote: Prefix::ANY_V6, service: crate::Service::ANY };
        let sel = InboundSelector::new(&bad);
        assert!(!sel.admits(&key("10.2.1.9", "10.1.1.5", 6, 443, 50000)));
        assert!(!sel.admits(&key("::1", "::2", 6, 443, 50000)));
    }

    #[test]
    fn agrees_with_proxy_id_matches_inbound() {
        let ids = [
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 HTTP",
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 PING",
            "local-ip 0.0.0.0/0 remote-ip 10.2.0.0/16 protocol udp src-port 53 dst-port 1024-2048",
            "local-ip 10.1.1.7/32 remote-ip 0.0.0.0/0 protocol 47",
        ];
        let keys = [
            key("10.2.1.9", "10.1.1.5", 6, 80, 40000),
            key("10.2.1.9", "10.1.1.7", 6, 40000, 80),
            key("10.2.1.9", "10.1.1.5", 1, 0, 0x0800),
            key("10.2.1.9", "10.1.1.5", 1, 0, 0),
            key("10.2.200.9", "10.9.9.9", 17, 1500, 53),
            key("10.2.200.9", "10.9.9.9", 17, 53, 1500),
            key("192.0.2.1", "10.1.1.7", 47, 0, 0),
        ];
        for text in ids {
            let p = pid(text);
            let sel = InboundSelector::new(&p);
            for k in &keys {
                assert_eq!(sel.admits(k), p.matches_inbound(k), "{text} {k:?}");
            }
        }
    }
}
