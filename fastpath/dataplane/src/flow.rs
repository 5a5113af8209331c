//! From a frame to what the pipeline decides on: the IP header's place,
//! the flow key the classifier reads (RFC 4301 §4.4.1.1 selectors), and
//! the inbound proxy-ID check of a decrypted packet.

use core::net::Ipv4Addr;

use esprit_policy::{FlowKey, InboundSelector, ProxyId, ProxyIdTable};
use esprit_wire::{ip_proto, ipv4};

/// The inbound proxy-ID check of one inbound SA (RFC 4301 §5.2 step 4):
/// a packet decrypted from the SA must match its proxy-ID in reverse.
///
/// One exception, ScreenOS's: a VPN with `proxy-id check` off and a single
/// proxy-ID sends everything routed into its tunnel on that proxy-ID's SA
/// (the proxy-ID only named the SA to IKE), so the replies of that traffic
/// come back on the peer's SA with any addresses. Such an SA admits every
/// inner packet; it is still authenticated ESP from the peer, and the
/// decrypted packet is routed like any other. The exception follows the
/// VPN's table: a second proxy-ID or `proxy-id check` makes it strict
/// again at the next table update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InboundCheck {
    proxy_id: ProxyId,
    selector: InboundSelector,
    any_inner: bool,
}

impl InboundCheck {
    /// The check of an SA carrying `proxy_id` of a VPN whose table is
    /// `table` (`None`: no such VPN on this worker, strict).
    pub(crate) fn new(proxy_id: ProxyId, table: Option<&ProxyIdTable>) -> InboundCheck {
        let mut c = InboundCheck { proxy_id, selector: InboundSelector::new(&proxy_id), any_inner: false };
        c.follow(table);
        c
    }

    /// Re-reads the VPN's table after it changed (`None`: removed).
    pub(crate) fn follow(&mut self, table: Option<&ProxyIdTable>) {
        self.any_inner =
            table.is_some_and(|t| !t.enforces() && t.proxy_ids().first() == Some(&self.proxy_id));
    }

    /// True when a decrypted packet with flow `key` may be delivered.
    #[inline]
    pub(crate) fn admits(&self, key: &FlowKey) -> bool {
        self.any_inner || self.selector.admits(key)
    }

    /// True when any inner packet is admitted (check off, one proxy-ID).
    pub(crate) fn admits_any(&self) -> bool {
        self.any_inner
    }
}

/// Reads the selector fields of a checked IPv4 packet. Ports come from the
/// first four bytes of TCP/UDP/SCTP; ICMP puts type and code in the
/// destination "port"; non-first fragments and other protocols have 0
/// (RFC 4301 §4.4.1.1 OPAQUE), which only any-port services match.
#[inline]
pub fn flow_key_v4<T: AsRef<[u8]>>(p: &ipv4::Packet<T>) -> FlowKey {
    let protocol = p.protocol();
    let (mut sport, mut dport) = (0, 0);
    if p.frag_offset() == 0 {
        let l4 = p.payload();
        match protocol {
            ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP if l4.len() >= 4 => {
                sport = u16::from_be_bytes([l4[0], l4[1]]);
                dport = u16::from_be_bytes([l4[2], l4[3]]);
            }
            ip_proto::ICMP if l4.len() >= 2 => dport = FlowKey::icmp_type_code(l4[0], l4[1]),
            _ => {}
        }
    }
    FlowKey::v4(p.src_addr(), p.dst_addr(), protocol, sport, dport)
}

/// The IPv4 source and destination of a flow key, if it is IPv4.
pub fn v4_addrs(k: &FlowKey) -> Option<(Ipv4Addr, Ipv4Addr)> {
    match k {
        FlowKey::V4(k) => Some((k.src, k.dst)),
        FlowKey::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(protocol: u8, l4: &[u8], frag: u16) -> Vec<u8> {
        let mut b = vec![0u8; 20 + l4.len()];
        ipv4::Repr {
            src_addr: Ipv4Addr::new(10, 1, 1, 5),
            dst_addr: Ipv4Addr::new(10, 2, 1, 7),
            protocol,
            ttl: 64,
            tos: 0,
            ident: 1,
            dont_frag: false,
            payload_len: l4.len() as u16,
        }
        .emit(&mut b);
        b[6..8].copy_from_slice(&frag.to_be_bytes());
        b[20..].copy_from_slice(l4);
        b
    }

    fn table(ids: &[&str], check: bool) -> ProxyIdTable {
        ProxyIdTable::new(ids.iter().map(|s| s.parse().unwrap()).collect(), check).unwrap()
    }

    #[test]
    fn inbound_check_relaxed_only_for_one_proxy_id_with_check_off() {
        let p11 = "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY";
        let p22 = "local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 ANY";
        let pid: ProxyId = p11.parse().unwrap();
        // A reply from outside the proxy-ID: 10.2.2.10 -> 10.1.2.10.
        let outside = FlowKey::v4(Ipv4Addr::new(10, 2, 2, 10), Ipv4Addr::new(10, 1, 2, 10), 17, 5001, 40000);
        let inside = FlowKey::v4(Ipv4Addr::new(10, 2, 1, 10), Ipv4Addr::new(10, 1, 1, 10), 17, 5001, 40000);
        let off = table(&[p11], false);
        let mut c = InboundCheck::new(pid, Some(&off));
        assert!(c.admits_any() && c.admits(&outside) && c.admits(&inside));
        // Check on, or a second proxy-ID (the check is then forced), or the
        // VPN gone: strict.
        for t in [Some(table(&[p11], true)), Some(table(&[p11, p22], false)), None] {
            c.follow(t.as_ref());
            assert!(!c.admits_any() && !c.admits(&outside) && c.admits(&inside), "{t:?}");
        }
        // An SA of another proxy-ID than the table's one stays strict.
        let c = InboundCheck::new(p22.parse().unwrap(), Some(&off));
        assert!(!c.admits_any() && !c.admits(&inside));
    }

    #[test]
    fn ports_and_icmp() {
        let b = packet(ip_proto::UDP, &[0x04, 0xd2, 0x00, 0x35, 0, 8, 0, 0], 0);
        let k = flow_key_v4(&ipv4::Packet::new_checked(&b[..]).unwrap());
        assert_eq!((k.protocol(), k.src_port(), k.dst_port()), (17, 1234, 53));
        let b = packet(ip_proto::ICMP, &[8, 0, 0, 0, 0, 0, 0, 0], 0);
        let k = flow_key_v4(&ipv4::Packet::new_checked(&b[..]).unwrap());
        assert_eq!((k.src_port(), k.dst_port()), (0, 0x0800));
    }

    #[test]
    fn non_first_fragment_and_short_l4_are_opaque() {
        let b = packet(ip_proto::TCP, &[0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 0], 3);
        let k = flow_key_v4(&ipv4::Packet::new_checked(&b[..]).unwrap());
        assert_eq!((k.src_port(), k.dst_port()), (0, 0));
        let b = packet(ip_proto::TCP, &[0x04, 0xd2], 0);
        let k = flow_key_v4(&ipv4::Packet::new_checked(&b[..]).unwrap());
        assert_eq!((k.src_port(), k.dst_port()), (0, 0));
    }
}
