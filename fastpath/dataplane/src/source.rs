//! The spoofed-source check: which source addresses a clear packet may not
//! carry.
//!
//! A packet that arrives in clear (not decrypted) is a spoof, and is
//! dropped on every port (`spoofed-source`), when the most specific of
//! these prefixes that contains its source address says so:
//!
//! * a route whose next hop is a tunnel interface or the null interface:
//!   spoofed (the answer to that source would go into a tunnel, or
//!   nowhere; a null route is how `withdraw-routes` keeps a DOWN
//!   proxy-ID's prefix out of the clear path, and what uRPF treats as a
//!   failed check too);
//! * a route through a port: not spoofed;
//! * the remote prefix of a proxy-ID of any VPN: spoofed, unless a route at
//!   least as specific says otherwise. So a proxy-ID whose route was
//!   withdrawn with no null route in its place (its traffic falling back to
//!   a wider route, the default one through the WAN) still admits nothing
//!   from its remote prefix in clear; a remote prefix of `0.0.0.0/0` does
//!   not turn the whole internet into spoofs where a default route leads
//!   to a port (a tie goes to the route); and a LAN route more specific
//!   than a summarising remote prefix (`10.1.0.0/16` on the LAN, remote
//!   `10.0.0.0/8`) keeps the LAN's own sources.
//!
//! Decrypted packets are not checked here: their SA's inbound selector
//! (RFC 4301 §5.2) already admitted them. Nor is traffic addressed to the
//! gateway itself (the kernel's), nor IPv6 (not routed).
//!
//! One table of prefixes, each with its verdict, searched from the longest
//! length down like the route table: the worker builds it when its routes
//! or VPNs change, between bursts, and looks it up once per run of packets
//! from one source.

use core::net::{IpAddr, Ipv4Addr};

use crate::fasthash::FastMap;
use crate::{NextHop, RouteTable};

/// Prefixes and whether a clear source inside them is a spoof.
#[derive(Debug, Clone, Default)]
pub struct SourceFilter {
    /// Lengths present, longest first, each with masked prefix -> spoofed.
    levels: Vec<(u8, FastMap<u32, bool>)>,
    /// No prefix says "spoofed": every lookup is false.
    open: bool,
}

const fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

impl SourceFilter {
    /// The filter for these routes and these proxy-ID remote prefixes
    /// (IPv6 prefixes are skipped).
    pub fn new(routes: &RouteTable, remote: impl IntoIterator<Item = esprit_policy::Prefix>) -> SourceFilter {
        let mut f = SourceFilter::default();
        for r in routes.routes() {
            let spoofed = matches!(r.next_hop, NextHop::Tunnel(_) | NextHop::Null);
            f.insert(u32::from(r.prefix), r.len, spoofed, true);
        }
        for p in remote {
            if let IpAddr::V4(a) = p.addr() {
                // A route of the same prefix decides (inserted first).
                f.insert(u32::from(a), p.len(), true, false);
            }
        }
        f.open = !f.levels.iter().any(|(_, m)| m.values().any(|s| *s));
        f
    }

    fn insert(&mut self, addr: u32, len: u8, spoofed: bool, replace: bool) {
        let len = len.min(32);
        let key = addr & mask(len);
        let pos = match self.levels.iter().position(|(l, _)| *l <= len) {
            Some(i) if self.levels[i].0 == len => i,
            Some(i) => {
                self.levels.insert(i, (len, FastMap::default()));
                i
            }
            None => {
                self.levels.push((len, FastMap::default()));
                self.levels.len() - 1
            }
        };
        let map = &mut self.levels[pos].1;
        if replace || !map.contains_key(&key) {
            map.insert(key, spoofed);
        }
    }

    /// True when a clear packet from `src` must be dropped as a spoof.
    #[inline]
    pub fn is_spoofed(&self, src: Ipv4Addr) -> bool {
        if self.open {
            return false;
        }
        let s = u32::from(src);
        for (len, map) in &self.levels {
            if let Some(spoofed) = map.get(&(s & mask(*len))) {
                return *spoofed;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PortId, Route, TunnelId};

    fn r(p: &str, len: u8, next_hop: NextHop) -> Route {
        Route { prefix: p.parse().unwrap(), len, next_hop }
    }

    fn pfx(s: &str) -> esprit_policy::Prefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    const LAN: NextHop = NextHop::Connected { port: PortId(0) };
    const WAN: NextHop = NextHop::Connected { port: PortId(1) };
    const T1: NextHop = NextHop::Tunnel(TunnelId(1));

    #[test]
    fn tunnel_and_null_routes_are_spoofed_sources() {
        let routes = RouteTable::new([
            r("0.0.0.0", 0, WAN),
            r("10.1.0.0", 16, LAN),
            r("10.2.0.0", 16, T1),
            r("10.3.0.0", 16, NextHop::Null),
            r("10.2.9.0", 24, LAN),
        ])
        .unwrap();
        let f = SourceFilter::new(&routes, []);
        assert!(!f.is_spoofed(ip("10.1.1.10")));
        assert!(f.is_spoofed(ip("10.2.1.10")));
        assert!(f.is_spoofed(ip("10.3.1.10")));
        assert!(!f.is_spoofed(ip("10.2.9.1")), "a more specific port route wins");
        assert!(!f.is_spoofed(ip("203.0.113.9")));
    }

    #[test]
    fn remote_prefix_of_a_withdrawn_route_stays_spoofed() {
        // 10.2.0.0/16's tunnel route was withdrawn, nothing in its place:
        // the default route through the WAN would admit it.
        let routes = RouteTable::new([r("0.0.0.0", 0, WAN), r("10.1.0.0", 16, LAN)]).unwrap();
        let f = SourceFilter::new(&routes, [pfx("10.2.0.0/16")]);
        assert!(f.is_spoofed(ip("10.2.200.1")));
        assert!(!f.is_spoofed(ip("10.1.1.1")));
        assert!(!f.is_spoofed(ip("198.51.100.7")));
    }

    #[test]
    fn routes_win_ties_and_more_specific_routes() {
        // A summarising remote prefix over the LAN's own, and 0/0.
        let routes =
            RouteTable::new([r("0.0.0.0", 0, WAN), r("10.1.0.0", 16, LAN), r("10.0.0.0", 8, T1)]).unwrap();
        let f = SourceFilter::new(&routes, [pfx("10.0.0.0/8"), pfx("0.0.0.0/0"), pfx("2001:db8::/32")]);
        assert!(!f.is_spoofed(ip("10.1.2.3")));
        assert!(f.is_spoofed(ip("10.7.2.3")));
        assert!(!f.is_spoofed(ip("8.8.8.8")), "0/0 remote ties with the default route");
        // No default route: 0/0 remote covers what no route does.
        let routes = RouteTable::new([r("10.1.0.0", 16, LAN)]).unwrap();
        let f = SourceFilter::new(&routes, [pfx("0.0.0.0/0")]);
        assert!(f.is_spoofed(ip("8.8.8.8")));
        assert!(!f.is_spoofed(ip("10.1.2.3")));
    }

    #[test]
    fn nothing_to_filter_is_open() {
        let routes = RouteTable::new([r("0.0.0.0", 0, WAN), r("10.1.0.0", 16, LAN)]).unwrap();
        let f = SourceFilter::new(&routes, []);
        assert!(f.open);
        assert!(!f.is_spoofed(ip("10.2.0.1")));
    }
}
