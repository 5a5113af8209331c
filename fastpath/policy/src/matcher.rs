//! A [`Service`] compiled for the packet path: three branch-free compares.

use crate::Service;

/// A service as masks and offsets, in the orientation of the packets it
/// will see (outbound as configured, or reversed for the inbound check).
///
/// `protocol & protocol_mask == protocol` (mask 0 for any protocol), and
/// each port is in range when `port - first <= span` in wrapping
/// arithmetic: one compare per range, no branch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ServiceMatcher {
    protocol: u8,
    protocol_mask: u8,
    src_first: u16,
    src_span: u16,
    dst_first: u16,
    dst_span: u16,
}

impl ServiceMatcher {
    /// The matcher for outbound packets (`src_port` of the local host).
    pub(crate) const fn outbound(service: &Service) -> ServiceMatcher {
        let (src, dst) = (service.src_ports(), service.dst_ports());
        ServiceMatcher {
            protocol: match service.ip_protocol() {
                Some(p) => p,
                None => 0,
            },
            protocol_mask: if service.is_any() { 0 } else { u8::MAX },
            src_first: src.first(),
            src_span: src.last() - src.first(),
            dst_first: dst.first(),
            dst_span: dst.last() - dst.first(),
        }
    }

    /// The matcher for inbound packets (RFC 4301 §5.2): port selectors
    /// swapped; ICMP type-code (a single selector) and opaque protocols
    /// unchanged.
    pub(crate) const fn inbound(service: &Service) -> ServiceMatcher {
        let m = ServiceMatcher::outbound(service);
        if service.reverses_inbound() {
            ServiceMatcher {
                src_first: m.dst_first,
                src_span: m.dst_span,
                dst_first: m.src_first,
                dst_span: m.src_span,
                ..m
            }
        } else {
            m
        }
    }

    /// True when a packet of this protocol and ports is covered.
    #[inline(always)]
    pub(crate) const fn matches(&self, protocol: u8, src_port: u16, dst_port: u16) -> bool {
        // Non-short-circuit `&`: three independent compares, no branches.
        ((protocol & self.protocol_mask) == self.protocol)
            & (src_port.wrapping_sub(self.src_first) <= self.src_span)
            & (dst_port.wrapping_sub(self.dst_first) <= self.dst_span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PortRange;

    #[test]
    fn agrees_with_service_matches() {
        let services = [
            Service::ANY,
            Service::named("HTTP").unwrap(),
            Service::named("PING").unwrap(),
            Service::protocol(47),
            Service::with_ports(17, PortRange::new(1000, 2000).unwrap(), PortRange::new(0, 10).unwrap())
                .unwrap(),
            Service::with_ports(6, PortRange::single(65535), PortRange::single(0)).unwrap(),
        ];
        let ports = [0u16, 1, 10, 11, 80, 999, 1000, 2000, 2001, 0x0800, 0x08ff, 0x0900, 65534, 65535];
        for s in services {
            let m = ServiceMatcher::outbound(&s);
            for proto in [0u8, 1, 6, 17, 47, 255] {
                for &sp in &ports {
                    for &dp in &ports {
                        assert_eq!(
                            m.matches(proto, sp, dp),
                            s.matches(proto, sp, dp),
                            "{s} {proto} {sp} {dp}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn inbound_swaps_ports_only() {
        let http = Service::named("HTTP").unwrap();
        let m = ServiceMatcher::inbound(&http);
        assert!(m.matches(6, 80, 40000));
        assert!(!m.matches(6, 40000, 80));
        let ping = Service::named("PING").unwrap();
        assert_eq!(ServiceMatcher::inbound(&ping), ServiceMatcher::outbound(&ping));
        let gre = Service::protocol(47);
        assert_eq!(ServiceMatcher::inbound(&gre), ServiceMatcher::outbound(&gre));
    }
}
