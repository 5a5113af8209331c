//! Fuzz entry points: what `fuzz/` targets call, and what this
//! crate's tests replay from the kept corpora. Not an API for anything else.

// A fuzz body asserts its invariants: a failed one is a finding.
#![allow(clippy::unwrap_used)]

use crate::{arp, esp, ethernet, icmpv4, ipv4, ipv4_frag, ipv6, tcp, udp, udp_encap};

/// Parses `data` as an Ethernet frame and walks every header below it with
/// the checked views, touching every accessor and round-tripping each
/// `Repr`. Must never panic, whatever the bytes.
pub fn parse_frame(data: &[u8]) {
    let Ok(frame) = ethernet::EthernetFrame::new_checked(data) else { return };
    let _ = (frame.src_addr(), frame.dst_addr());
    match frame.ethertype() {
        ethernet::ethertype::ARP => {
            if let Ok(p) = arp::Packet::new_checked(frame.payload()) {
                if let Ok(r) = arp::Repr::parse(&p) {
                    let mut buf = [0u8; arp::PACKET_LEN];
                    r.emit(&mut buf);
                    assert_eq!(arp::Repr::parse(&arp::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
                }
            }
        }
        ethernet::ethertype::IPV4 => parse_ipv4(frame.payload()),
        ethernet::ethertype::IPV6 => parse_ipv6(frame.payload()),
        _ => {}
    }
}

/// Walks an IPv4 packet and what it carries.
pub fn parse_ipv4(data: &[u8]) {
    let Ok(p) = ipv4::Packet::new_checked(data) else { return };
    let _ = (p.verify_checksum(), p.options(), p.is_fragment(), p.ttl(), p.tos(), p.ident());
    if let Ok(r) = ipv4::Repr::parse(&p) {
        let mut buf = [0u8; ipv4::HEADER_LEN];
        r.emit(&mut buf);
        let q = ipv4::Packet::new_unchecked(&buf[..]);
        assert!(q.verify_checksum());
        assert_eq!((q.src_addr(), q.dst_addr(), q.protocol()), (r.src_addr, r.dst_addr, r.protocol));
    }
    if !p.is_fragment() || p.frag_offset() == 0 {
        parse_l4(p.protocol(), p.payload());
    }
    fit_to_mtu(data);
}

/// What the fast path does to a packet entering a tunnel: the MSS clamp
/// (the result never announces more than the limit) and fragmentation
/// (every fragment fits, and their data put together is the datagram's).
fn fit_to_mtu(data: &[u8]) {
    let mut b = data.to_vec();
    if let tcp::MssClamp::Clamped(old) = tcp::clamp_mss(&mut b, 536) {
        assert!(old > 536);
        assert_eq!(tcp::clamp_mss(&mut b, 536), tcp::MssClamp::Kept(536));
    }
    let Ok(p) = ipv4::Packet::new_checked(data) else { return };
    let payload = p.payload();
    for mtu in [68, 576, 1400] {
        let Ok(plan) = ipv4_frag::Plan::new(data, mtu, 64) else { continue };
        let mut joined = Vec::new();
        let mut out = [0u8; 2048];
        for k in 1..plan.count() {
            let n = plan.emit(data, k, &mut out).unwrap();
            assert!(n <= mtu && n == plan.len(k));
            let f = ipv4::Packet::new_checked(&out[..n]).unwrap();
            assert!(f.verify_checksum());
            joined.extend_from_slice(f.payload());
        }
        let mut first = data.to_vec();
        let n = plan.first_in_place(&mut first).unwrap();
        assert!(n <= mtu);
        let f = ipv4::Packet::new_checked(&first[..n]).unwrap();
        assert!(f.verify_checksum());
        let mut all = f.payload().to_vec();
        all.extend_from_slice(&joined);
        assert_eq!(all, payload);
    }
}

/// Walks an IPv6 packet and what it carries.
pub fn parse_ipv6(data: &[u8]) {
    let Ok(p) = ipv6::Packet::new_checked(data) else { return };
    if let Ok(r) = ipv6::Repr::parse(&p) {
        let mut buf = [0u8; ipv6::HEADER_LEN];
        r.emit(&mut buf);
        let q = ipv6::Packet::new_unchecked(&buf[..]);
        assert_eq!((q.src_addr(), q.dst_addr(), q.payload_len()), (r.src_addr, r.dst_addr, r.payload_len));
        assert_eq!(
            (q.traffic_class(), q.flow_label(), q.next_header()),
            (r.traffic_class, r.flow_label, r.next_header)
        );
    }
    parse_l4(p.next_header(), p.payload());
}

fn parse_l4(protocol: u8, data: &[u8]) {
    match protocol {
        crate::ip_proto::UDP => {
            let Ok(u) = udp::Packet::new_checked(data) else { return };
            let _ = (u.src_port(), u.dst_port(), u.checksum());
            if u.dst_port() == udp_encap::NAT_T_PORT
                && udp_encap::classify(u.payload()) == udp_encap::Encapsulated::Esp
            {
                parse_esp(u.payload());
            }
        }
        crate::ip_proto::ICMP => {
            let Ok(i) = icmpv4::Packet::new_checked(data) else { return };
            let _ = (i.verify_checksum(), i.data(), icmpv4::Repr::parse(&i));
        }
        crate::ip_proto::ESP => parse_esp(data),
        _ => {}
    }
}

fn parse_esp(data: &[u8]) {
    if let Ok(e) = esp::Packet::new_checked(data) {
        let _ = (e.spi(), e.seq(), e.payload());
    }
}
