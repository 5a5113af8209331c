//! The proxy-ID: one traffic selector of a VPN, (local prefix, remote
//! prefix, service), negotiated as the phase-2 IDs (IKEv1, RFC 2409 §5.5)
//! or traffic selectors (IKEv2, RFC 7296 §2.9) of its own SA pair. As an
//! SPD entry it is RFC 4301 §4.4.1's selector set, written from this
//! gateway's side: local = hosts behind us, remote = hosts behind the peer.

use crate::{FlowKey, PolicyError, Prefix, Service};
use core::fmt;
use core::str::FromStr;

/// One proxy-ID: `local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY`.
///
/// Both prefixes must be of one address family; [`ProxyId::new`] and
/// [`crate::ProxyIdTable::new`] refuse mixed families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyId {
    /// Hosts behind this gateway (source of outbound traffic).
    pub local: Prefix,
    /// Hosts behind the peer (destination of outbound traffic).
    pub remote: Prefix,
    /// Protocol and ports, in outbound orientation.
    pub service: Service,
}

impl ProxyId {
    /// A proxy-ID; refuses local and remote prefixes of different families.
    pub fn new(local: Prefix, remote: Prefix, service: Service) -> Result<ProxyId, PolicyError> {
        let p = ProxyId { local, remote, service };
        if local.is_ipv4() != remote.is_ipv4() {
            return Err(PolicyError::MixedFamily { position: 0, proxy_id: p.to_string() });
        }
        Ok(p)
    }

    /// True for an IPv4 proxy-ID (by its local prefix).
    pub const fn is_ipv4(&self) -> bool {
        self.local.is_ipv4()
    }

    /// Outbound match (RFC 4301 §5.1): source in local, destination in
    /// remote, service as configured. This is the plain definition the
    /// classifier implements fast; it ignores other proxy-IDs.
    pub fn matches_outbound(&self, key: &FlowKey) -> bool {
        self.local.contains(key.src())
            && self.remote.contains(key.dst())
            && self.service.matches(key.protocol(), key.src_port(), key.dst_port())
    }

    /// Inbound match (RFC 4301 §5.2): the selectors reversed. Source in
    /// remote, destination in local, the packet's source port in the
    /// service's destination range and its destination port in the
    /// service's source range (ICMP type-code is one selector and is not
    /// reversed). See [`crate::InboundSelector`] for the fast form.
    pub fn matches_inbound(&self, key: &FlowKey) -> bool {
        let (sport, dport) = if self.service.reverses_inbound() {
            (key.dst_port(), key.src_port())
        } else {
            (key.src_port(), key.dst_port())
        };
        self.remote.contains(key.src())
            && self.local.contains(key.dst())
            && self.service.matches(key.protocol(), sport, dport)
    }
}

impl fmt::Display for ProxyId {
    /// ScreenOS words: `local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "local-ip {} remote-ip {} {}", self.local, self.remote, self.service)
    }
}

impl FromStr for ProxyId {
    type Err = PolicyError;

    /// `local-ip PREFIX remote-ip PREFIX SERVICE` (keywords
    /// case-insensitive; SERVICE as [`Service`]'s `FromStr`).
    fn from_str(text: &str) -> Result<ProxyId, PolicyError> {
        let invalid = |reason| PolicyError::InvalidProxyId { text: text.to_owned(), reason };
        let mut words = text.split_ascii_whitespace();
        let mut keyword = |kw: &str| match (words.next(), words.next()) {
            (Some(k), Some(v)) if k.eq_ignore_ascii_case(kw) => Ok(v),
            _ => Err(invalid("expected `local-ip PREFIX remote-ip PREFIX SERVICE`")),
        };
        let local: Prefix = keyword("local-ip")?.parse()?;
        let remote: Prefix = keyword("remote-ip")?.parse()?;
        let rest: Vec<&str> = words.collect();
        if rest.is_empty() {
            return Err(invalid("service missing"));
        }
        let service: Service = rest.join(" ").parse()?;
        ProxyId::new(local, remote, service)
            .map_err(|_| invalid("local-ip and remote-ip of different families"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::protocol;

    fn pid(s: &str) -> ProxyId {
        s.parse().unwrap()
    }

    fn key(src: &str, dst: &str, proto: u8, sport: u16, dport: u16) -> FlowKey {
        FlowKey::new(src.parse().unwrap(), dst.parse().unwrap(), proto, sport, dport).unwrap()
    }

    #[test]
    fn display_in_screenos_words_and_back() {
        for text in [
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY",
            "local-ip 0.0.0.0/0 remote-ip 0.0.0.0/0 ANY",
            "local-ip 10.1.1.0/24 remote-ip 10.2.2.0/24 HTTP",
            "local-ip 2001:db8:1::/48 remote-ip 2001:db8:2::/48 protocol tcp src-port 0-65535 dst-port 8080-8080",
        ] {
            assert_eq!(pid(text).to_string(), text);
        }
        let p = pid("LOCAL-IP 10.1.1.0/24  Remote-Ip 10.2.1.0/24 any");
        assert_eq!(p.to_string(), "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY");
        assert_eq!(
            pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 protocol tcp dst-port 80").service,
            Service::named("HTTP").unwrap()
        );
    }

    #[test]
    fn parse_errors_name_the_text() {
        for bad in [
            "",
            "local-ip 10.1.1.0/24",
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24",
            "remote-ip 10.2.1.0/24 local-ip 10.1.1.0/24 ANY",
            "local-ip 10.1.1.0/24 remote-ip 2001:db8::/32 ANY",
        ] {
            let e = bad.parse::<ProxyId>().unwrap_err();
            assert!(matches!(&e, PolicyError::InvalidProxyId { text, .. } if text == bad), "{bad} -> {e:?}");
        }
        assert!(matches!(
            "local-ip 10.1.1.5/24 remote-ip 10.2.1.0/24 ANY".parse::<ProxyId>(),
            Err(PolicyError::HostBitsSet { .. })
        ));
        assert!(matches!(
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 GOPHER".parse::<ProxyId>(),
            Err(PolicyError::UnknownService { .. })
        ));
        assert!(ProxyId::new(Prefix::ANY_V4, Prefix::ANY_V6, Service::ANY).is_err());
    }

    #[test]
    fn outbound_and_inbound_matching() {
        let http = pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 HTTP");
        // Outbound: 10.1.1.5:40000 -> 10.2.1.9:80.
        assert!(http.matches_outbound(&key("10.1.1.5", "10.2.1.9", 6, 40000, 80)));
        assert!(!http.matches_outbound(&key("10.2.1.9", "10.1.1.5", 6, 80, 40000)));
        // Inbound is the reply: 10.2.1.9:80 -> 10.1.1.5:40000; ports reversed.
        assert!(http.matches_inbound(&key("10.2.1.9", "10.1.1.5", 6, 80, 40000)));
        assert!(!http.matches_inbound(&key("10.2.1.9", "10.1.1.5", 6, 40000, 80)));
        assert!(!http.matches_inbound(&key("10.1.1.5", "10.2.1.9", 6, 40000, 80)));
        // ICMP type-code is not reversed: PING is echo requests both ways.
        let ping = pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 PING");
        let echo = FlowKey::icmp_type_code(8, 0);
        assert!(ping.matches_outbound(&key("10.1.1.5", "10.2.1.9", protocol::ICMP, 0, echo)));
        assert!(ping.matches_inbound(&key("10.2.1.9", "10.1.1.5", protocol::ICMP, 0, echo)));
        assert!(!ping.matches_inbound(&key("10.2.1.9", "10.1.1.5", protocol::ICMP, 0, 0)));
        // Family mismatch never matches.
        let v6 = pid("local-ip 2001:db8:1::/48 remote-ip 2001:db8:2::/48 ANY");
        assert!(!v6.matches_outbound(&key("10.1.1.5", "10.2.1.9", 6, 1, 2)));
        assert!(v6.matches_outbound(&key("2001:db8:1::5", "2001:db8:2::9", 6, 1, 2)));
        assert!(v6.matches_inbound(&key("2001:db8:2::9", "2001:db8:1::5", 6, 1, 2)));
    }
}
