//! From a frame to what the pipeline decides on: the IP header's place and
//! the flow key the classifier reads (RFC 4301 §4.4.1.1 selectors).

use core::net::Ipv4Addr;

use esprit_policy::FlowKey;
use esprit_wire::{ip_proto, ipv4};

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
