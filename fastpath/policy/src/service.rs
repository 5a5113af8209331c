//! Services: the protocol and port selectors of a proxy-ID
//! (RFC 4301 §4.4.1.1, "Next Layer Protocol", "Local Port", "Remote Port").
//!
//! A [`Service`] is `ANY` (every protocol, every port) or one IP protocol
//! with a source and a destination port range, in the orientation of
//! *outbound* traffic (source = a host behind this gateway). Representation
//! is canonical, so two services are equal exactly when they match the same
//! packets:
//!
//! * protocol 0 means any protocol (as in IKE traffic selectors,
//!   RFC 7296 §3.13.1) and is the same as [`Service::ANY`];
//! * port ranges are selectors only for TCP (6), UDP (17) and SCTP (132);
//! * for ICMP (1) and ICMPv6 (58) the destination range selects the ICMP
//!   type and code as one 16-bit number, type in the high octet
//!   (RFC 4301 §4.4.1.1, RFC 7296 §3.13.1); the source range is always
//!   all. The packet parser puts `type << 8 | code` in the flow key's
//!   destination port for ICMP (see [`crate::FlowKey::icmp_type_code`]).
//!   ICMP type and code form a single selector, so the inbound check does
//!   **not** reverse it: a `PING` (echo request) proxy-ID admits echo
//!   requests in both directions, not their replies; use `ICMP-ANY` to
//!   carry ping and its replies;
//! * for every other protocol both ranges are all (the parser reports
//!   ports 0 and they are never compared).
//!
//! [`Service::named`] is the table of ScreenOS predefined service names
//! (`HTTP`, `PING`, ...), shared with the configuration language.

use core::fmt;
use core::str::FromStr;

use crate::PolicyError;

/// IP protocol numbers that this module gives a meaning to (IANA).
pub mod protocol {
    /// ICMP for IPv4; the destination "port" selects type and code.
    pub const ICMP: u8 = 1;
    /// TCP; port ranges apply.
    pub const TCP: u8 = 6;
    /// UDP; port ranges apply.
    pub const UDP: u8 = 17;
    /// ICMPv6; the destination "port" selects type and code.
    pub const ICMPV6: u8 = 58;
    /// SCTP; port ranges apply.
    pub const SCTP: u8 = 132;
}

/// An inclusive range of 16-bit ports (or ICMP type-code numbers), never
/// empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// `0-65535`.
    pub const ANY: PortRange = PortRange { first: 0, last: u16::MAX };

    /// The range `first-last`; refused when `first > last`.
    pub fn new(first: u16, last: u16) -> Result<PortRange, PolicyError> {
        if first > last {
            return Err(PolicyError::InvalidPortRange {
                text: format!("{first}-{last}"),
                reason: "first port after last port",
            });
        }
        Ok(PortRange { first, last })
    }

    /// The range holding one port.
    pub const fn single(port: u16) -> PortRange {
        PortRange { first: port, last: port }
    }

    /// First port of the range.
    pub const fn first(&self) -> u16 {
        self.first
    }

    /// Last port of the range (inclusive).
    pub const fn last(&self) -> u16 {
        self.last
    }

    /// True when `port` is in the range.
    pub const fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }

    /// True for `0-65535`.
    pub const fn is_any(&self) -> bool {
        self.first == 0 && self.last == u16::MAX
    }

    /// Number of ports in the range (1 to 65536).
    pub const fn width(&self) -> u32 {
        (self.last - self.first) as u32 + 1
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for PortRange {
    type Err = PolicyError;

    /// `80` or `1024-65535`.
    fn from_str(text: &str) -> Result<PortRange, PolicyError> {
        let invalid = |reason| PolicyError::InvalidPortRange { text: text.to_owned(), reason };
        let number = |s: &str| {
            if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("not a port number"));
            }
            s.parse::<u16>().map_err(|_| invalid("port above 65535"))
        };
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let p = number(text)?;
                (p, p)
            }
        };
        if first > last {
            return Err(invalid("first port after last port"));
        }
        Ok(PortRange { first, last })
    }
}

/// What a proxy-ID carries beyond addresses: `ANY`, or one IP protocol with
/// source and destination port ranges (see the module doc for the canonical
/// form and for ICMP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Service {
    /// 0 = any protocol.
    protocol: u8,
    src_ports: PortRange,
    dst_ports: PortRange,
}

/// How a protocol uses the two 16-bit selector fields.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PortKind {
    /// Source and destination ports (TCP, UDP, SCTP).
    Ports,
    /// One type-code selector in the destination field (ICMP, ICMPv6).
    IcmpTypeCode,
    /// None.
    Opaque,
}

const fn port_kind(protocol: u8) -> PortKind {
    match protocol {
        protocol::TCP | protocol::UDP | protocol::SCTP => PortKind::Ports,
        protocol::ICMP | protocol::ICMPV6 => PortKind::IcmpTypeCode,
        _ => PortKind::Opaque,
    }
}

const fn tcp_dst(port: u16) -> Service {
    Service { protocol: protocol::TCP, src_ports: PortRange::ANY, dst_ports: PortRange::single(port) }
}

const fn udp_dst(port: u16) -> Service {
    Service { protocol: protocol::UDP, src_ports: PortRange::ANY, dst_ports: PortRange::single(port) }
}

const fn all_ports(protocol: u8) -> Service {
    Service { protocol, src_ports: PortRange::ANY, dst_ports: PortRange::ANY }
}

const fn icmp(protocol: u8, icmp_type: u8) -> Service {
    let first = (icmp_type as u16) << 8;
    Service { protocol, src_ports: PortRange::ANY, dst_ports: PortRange { first, last: first | 0xff } }
}

/// ScreenOS predefined services (name, definition). Names match
/// case-insensitively; [`Service`]'s `Display` prints the first name whose
/// definition equals the service.
///
/// ScreenOS's `DNS` also covers TCP 53; a proxy-ID carries one protocol
/// (one IKE ID payload), so here `DNS` is UDP 53 and zone transfers need a
/// proxy-ID of their own (`protocol tcp dst-port 53`).
const NAMED: [(&str, Service); 14] = [
    ("ANY", Service::ANY),
    ("HTTP", tcp_dst(80)),
    ("HTTPS", tcp_dst(443)),
    ("SSH", tcp_dst(22)),
    ("TELNET", tcp_dst(23)),
    ("FTP", tcp_dst(21)),
    ("SMTP", tcp_dst(25)),
    ("DNS", udp_dst(53)),
    ("NTP", udp_dst(123)),
    ("SYSLOG", udp_dst(514)),
    ("TCP-ANY", all_ports(protocol::TCP)),
    ("UDP-ANY", all_ports(protocol::UDP)),
    ("ICMP-ANY", all_ports(protocol::ICMP)),
    // ICMP echo request (RFC 792 type 8).
    ("PING", icmp(protocol::ICMP, 8)),
];

impl Service {
    /// Every protocol, every port.
    pub const ANY: Service = Service { protocol: 0, src_ports: PortRange::ANY, dst_ports: PortRange::ANY };

    /// One protocol with all ports (0 = [`Service::ANY`]).
    pub const fn protocol(protocol: u8) -> Service {
        all_ports(protocol)
    }

    /// One protocol with port ranges (outbound orientation: `src` ports of
    /// the local host, `dst` ports of the remote host). Refuses ranges other
    /// than all on protocols that carry no ports, and a source range on
    /// ICMP/ICMPv6 (whose single type-code selector is `dst`).
    pub fn with_ports(protocol: u8, src: PortRange, dst: PortRange) -> Result<Service, PolicyError> {
        let ok = match port_kind(protocol) {
            PortKind::Ports => true,
            PortKind::IcmpTypeCode => src.is_any(),
            PortKind::Opaque => src.is_any() && dst.is_any(),
        };
        if !ok || (protocol == 0 && !(src.is_any() && dst.is_any())) {
            return Err(PolicyError::InvalidService {
                text: format!("protocol {protocol} src-port {src} dst-port {dst}"),
                reason: "port ranges on a protocol that has no such ports",
            });
        }
        Ok(Service { protocol, src_ports: src, dst_ports: dst })
    }

    /// TCP to a destination port range, any source port.
    pub const fn tcp(dst: PortRange) -> Service {
        Service { protocol: protocol::TCP, src_ports: PortRange::ANY, dst_ports: dst }
    }

    /// UDP to a destination port range, any source port.
    pub const fn udp(dst: PortRange) -> Service {
        Service { protocol: protocol::UDP, src_ports: PortRange::ANY, dst_ports: dst }
    }

    /// ICMP (IPv4) messages of one type, any code.
    pub const fn icmp_type(icmp_type: u8) -> Service {
        icmp(protocol::ICMP, icmp_type)
    }

    /// ICMPv6 messages of one type, any code.
    pub const fn icmpv6_type(icmp_type: u8) -> Service {
        icmp(protocol::ICMPV6, icmp_type)
    }

    /// The ScreenOS predefined service of that name (case-insensitive):
    /// `ANY`, `HTTP`, `HTTPS`, `SSH`, `TELNET`, `FTP`, `SMTP`, `DNS`, `NTP`,
    /// `SYSLOG`, `TCP-ANY`, `UDP-ANY`, `ICMP-ANY`, `PING`.
    pub fn named(name: &str) -> Option<Service> {
        NAMED.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, s)| s)
    }

    /// The predefined names and their definitions, in display order.
    pub fn named_services() -> &'static [(&'static str, Service)] {
        &NAMED
    }

    /// The predefined name of this service, if it has one.
    pub fn name(&self) -> Option<&'static str> {
        NAMED.iter().find(|(_, s)| s == self).map(|&(n, _)| n)
    }

    /// The protocol, `None` for any protocol.
    pub const fn ip_protocol(&self) -> Option<u8> {
        if self.protocol == 0 {
            None
        } else {
            Some(self.protocol)
        }
    }

    /// True for [`Service::ANY`].
    pub const fn is_any(&self) -> bool {
        self.protocol == 0
    }

    /// Source port range (outbound orientation).
    pub const fn src_ports(&self) -> PortRange {
        self.src_ports
    }

    /// Destination port range, or ICMP type-code range (outbound
    /// orientation).
    pub const fn dst_ports(&self) -> PortRange {
        self.dst_ports
    }

    /// True when the service covers a packet of this protocol and ports,
    /// in outbound orientation (`src_port` of the local host). For ICMP,
    /// `dst_port` is `type << 8 | code`.
    pub const fn matches(&self, protocol: u8, src_port: u16, dst_port: u16) -> bool {
        (self.protocol == 0 || self.protocol == protocol)
            && self.src_ports.contains(src_port)
            && self.dst_ports.contains(dst_port)
    }

    /// True when the selector fields are reversed by the inbound check
    /// (ports: yes; ICMP type-code and opaque protocols: nothing to reverse).
    pub(crate) const fn reverses_inbound(&self) -> bool {
        matches!(port_kind(self.protocol), PortKind::Ports)
    }

    /// Sort key of the overlap rule's service part, smaller = more
    /// specific: a specific protocol before ANY, then the narrower
    /// destination range, then the narrower source range.
    pub(crate) const fn specificity(&self) -> (bool, u32, u32) {
        (self.protocol == 0, self.dst_ports.width(), self.src_ports.width())
    }
}

fn protocol_name(p: u8) -> Option<&'static str> {
    Some(match p {
        protocol::ICMP => "icmp",
        protocol::TCP => "tcp",
        protocol::UDP => "udp",
        protocol::ICMPV6 => "icmp6",
        protocol::SCTP => "sctp",
        _ => return None,
    })
}

impl fmt::Display for Service {
    /// The predefined name, else `protocol P [src-port A-B] [dst-port C-D]`
    /// (port protocols) or `protocol P [icmp-type T | type-code A-B]`
    /// (ICMP), which [`FromStr`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.name() {
            return f.write_str(name);
        }
        match protocol_name(self.protocol) {
            Some(n) => write!(f, "protocol {n}")?,
            None => write!(f, "protocol {}", self.protocol)?,
        }
        match port_kind(self.protocol) {
            PortKind::Ports => write!(f, " src-port {} dst-port {}", self.src_ports, self.dst_ports),
            PortKind::IcmpTypeCode => {
                let d = self.dst_ports;
                if d.is_any() {
                    Ok(())
                } else if d.first & 0xff == 0 && d.last == d.first | 0xff {
                    write!(f, " icmp-type {}", d.first >> 8)
                } else {
                    write!(f, " type-code {d}")
                }
            }
            PortKind::Opaque => Ok(()),
        }
    }
}

impl FromStr for Service {
    type Err = PolicyError;

    /// A predefined name (`HTTP`, `any`), or
    /// `protocol P [src-port R] [dst-port R] [icmp-type T] [type-code R]`
    /// with P one of `tcp udp sctp icmp icmp6` or a number 0-255.
    fn from_str(text: &str) -> Result<Service, PolicyError> {
        let mut words = text.split_ascii_whitespace();
        let first = words.next().unwrap_or("");
        if !first.eq_ignore_ascii_case("protocol") {
            if words.next().is_none() {
                if let Some(s) = Service::named(first) {
                    return Ok(s);
                }
            }
            return Err(PolicyError::UnknownService { text: text.to_owned() });
        }
        let invalid = |reason| PolicyError::InvalidService { text: text.to_owned(), reason };
        let p = words.next().ok_or_else(|| invalid("protocol missing"))?;
        let protocol = match p.to_ascii_lowercase().as_str() {
            "icmp" => protocol::ICMP,
            "tcp" => protocol::TCP,
            "udp" => protocol::UDP,
            "icmp6" | "ipv6-icmp" => protocol::ICMPV6,
            "sctp" => protocol::SCTP,
            n if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse::<u8>().map_err(|_| invalid("protocol above 255"))?
            }
            _ => return Err(invalid("unknown protocol")),
        };
        let kind = port_kind(protocol);
        let (mut src, mut dst) = (None, None);
        while let Some(key) = words.next() {
            let value = words.next().ok_or_else(|| invalid("keyword without a value"))?;
            let (slot, range) = match key.to_ascii_lowercase().as_str() {
                "src-port" if kind == PortKind::Ports => (&mut src, value.parse::<PortRange>()?),
                "dst-port" if kind == PortKind::Ports => (&mut dst, value.parse::<PortRange>()?),
                "type-code" if kind == PortKind::IcmpTypeCode => (&mut dst, value.parse::<PortRange>()?),
                "icmp-type" if kind == PortKind::IcmpTypeCode => {
                    let t = value
                        .parse::<u8>()
                        .ok()
                        .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| invalid("icmp-type is not a number 0-255"))?;
                    (&mut dst, icmp(protocol, t).dst_ports)
                }
                _ => return Err(invalid("keyword not valid for this protocol")),
            };
            if slot.replace(range).is_some() {
                return Err(invalid("selector given twice"));
            }
        }
        Service::with_ports(protocol, src.unwrap_or(PortRange::ANY), dst.unwrap_or(PortRange::ANY))
            .map_err(|_| invalid("port ranges on a protocol that has no such ports"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Service {
        text.parse().unwrap()
    }

    #[test]
    fn port_ranges() {
        assert_eq!("80".parse::<PortRange>().unwrap(), PortRange::single(80));
        assert_eq!("1024-65535".parse::<PortRange>().unwrap(), PortRange::new(1024, 65535).unwrap());
        assert_eq!(PortRange::ANY.to_string(), "0-65535");
        assert_eq!(PortRange::ANY.width(), 65536);
        assert_eq!(PortRange::single(7).width(), 1);
        for bad in ["", "-", "80-", "-80", "81-80", "65536", "+80", "8O", "1-2-3"] {
            let e = bad.parse::<PortRange>().unwrap_err();
            assert!(matches!(&e, PolicyError::InvalidPortRange { text, .. } if text == bad), "{bad}");
        }
        assert!(PortRange::new(2, 1).is_err());
    }

    #[test]
    fn named_services() {
        let http = Service::named("HTTP").unwrap();
        assert_eq!(http.ip_protocol(), Some(protocol::TCP));
        assert_eq!(http.dst_ports(), PortRange::single(80));
        assert!(http.src_ports().is_any());
        assert_eq!(Service::named("https").unwrap().dst_ports(), PortRange::single(443));
        assert_eq!(Service::named("SSH").unwrap(), Service::tcp(PortRange::single(22)));
        assert_eq!(Service::named("DNS").unwrap(), Service::udp(PortRange::single(53)));
        assert_eq!(Service::named("ICMP-ANY").unwrap(), Service::protocol(protocol::ICMP));
        assert_eq!(Service::named("PING").unwrap(), Service::icmp_type(8));
        assert_eq!(Service::named("any").unwrap(), Service::ANY);
        assert_eq!(Service::named("Any"), Some(Service::ANY));
        assert_eq!(Service::named("GOPHER"), None);
        // Every table entry is distinct, so each displays as its own name.
        for &(name, svc) in Service::named_services() {
            assert_eq!(svc.to_string(), name);
            assert_eq!(s(name), svc);
        }
    }

    #[test]
    fn matching() {
        let http = Service::named("HTTP").unwrap();
        assert!(http.matches(protocol::TCP, 40000, 80));
        assert!(!http.matches(protocol::TCP, 80, 8080));
        assert!(!http.matches(protocol::UDP, 40000, 80));
        assert!(Service::ANY.matches(47, 0, 0));
        let ping = Service::named("PING").unwrap();
        assert!(ping.matches(protocol::ICMP, 0, 8 << 8));
        assert!(ping.matches(protocol::ICMP, 0, 8 << 8 | 3));
        assert!(!ping.matches(protocol::ICMP, 0, 0)); // echo reply
        assert!(Service::protocol(47).matches(47, 0, 0));
        assert!(!Service::protocol(47).matches(50, 0, 0));
    }

    #[test]
    fn canonical_form() {
        assert_eq!(Service::protocol(0), Service::ANY);
        assert_eq!(
            Service::with_ports(6, PortRange::ANY, PortRange::ANY).unwrap(),
            Service::named("TCP-ANY").unwrap()
        );
        assert!(Service::with_ports(47, PortRange::ANY, PortRange::single(1)).is_err());
        assert!(Service::with_ports(0, PortRange::single(1), PortRange::ANY).is_err());
        assert!(Service::with_ports(1, PortRange::single(1), PortRange::ANY).is_err());
        assert!(Service::with_ports(1, PortRange::ANY, PortRange::single(0x0800)).is_ok());
    }

    #[test]
    fn display_and_parse_specifications() {
        let cases = [
            (Service::tcp(PortRange::single(8080)), "protocol tcp src-port 0-65535 dst-port 8080-8080"),
            (
                Service::with_ports(
                    17,
                    PortRange::new(1024, 65535).unwrap(),
                    PortRange::new(5000, 5010).unwrap(),
                )
                .unwrap(),
                "protocol udp src-port 1024-65535 dst-port 5000-5010",
            ),
            (Service::protocol(132), "protocol sctp src-port 0-65535 dst-port 0-65535"),
            (Service::protocol(47), "protocol 47"),
            (Service::protocol(protocol::ICMPV6), "protocol icmp6"),
            (Service::icmpv6_type(128), "protocol icmp6 icmp-type 128"),
            (Service::icmp_type(3), "protocol icmp icmp-type 3"),
            (
                Service::with_ports(1, PortRange::ANY, PortRange::single(0x0304)).unwrap(),
                "protocol icmp type-code 772-772",
            ),
        ];
        for (svc, text) in cases {
            assert_eq!(svc.to_string(), text);
            assert_eq!(s(text), svc, "{text}");
        }
        assert_eq!(s("protocol tcp dst-port 80"), Service::named("HTTP").unwrap());
        assert_eq!(s("PROTOCOL 6"), Service::named("TCP-ANY").unwrap());
        assert_eq!(s("protocol 0"), Service::ANY);
        assert_eq!(s("protocol icmp icmp-type 8"), Service::named("PING").unwrap());
    }

    #[test]
    fn parse_rejects_and_names_the_text() {
        for bad in ["", "GOPHER", "HTTP HTTPS", "any any"] {
            assert_eq!(bad.parse::<Service>().unwrap_err(), PolicyError::UnknownService { text: bad.into() });
        }
        for bad in [
            "protocol",
            "protocol foo",
            "protocol 256",
            "protocol -1",
            "protocol tcp dst-port",
            "protocol tcp dst-port 80 dst-port 81",
            "protocol 47 dst-port 80",
            "protocol 0 dst-port 80",
            "protocol tcp icmp-type 8",
            "protocol icmp src-port 1",
            "protocol icmp icmp-type 256",
            "protocol icmp icmp-type +8",
            "protocol tcp color blue",
        ] {
            let e = bad.parse::<Service>().unwrap_err();
            assert!(matches!(&e, PolicyError::InvalidService { text, .. } if text == bad), "{bad} -> {e:?}");
        }
        assert!(matches!(
            "protocol tcp dst-port 90-80".parse::<Service>(),
            Err(PolicyError::InvalidPortRange { .. })
        ));
    }

    #[test]
    fn specificity_orders_protocol_then_dst_then_src() {
        let any = Service::ANY.specificity();
        let tcp_any = Service::protocol(6).specificity();
        let http = Service::named("HTTP").unwrap().specificity();
        let http_hi_src = Service::with_ports(6, PortRange::new(1024, 65535).unwrap(), PortRange::single(80))
            .unwrap()
            .specificity();
        assert!(tcp_any < any);
        assert!(http < tcp_any);
        assert!(http_hi_src < http);
    }
}
