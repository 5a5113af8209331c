//! The IPv4 forwarding table: longest-prefix match over connected and
//! static routes whose next hop is a port (with or without a gateway), a
//! tunnel interface or nothing (a null route). Built by the management thread, read by the workers;
//! immutable once built (a change builds a new table).

use core::net::Ipv4Addr;

use crate::fasthash::FastMap;
use crate::{PortId, TunnelId};

/// Where a route sends a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Directly connected on a port: the destination itself is the neighbour.
    Connected { port: PortId },
    /// Through a gateway on a port.
    Gateway { port: PortId, gateway: Ipv4Addr },
    /// Into a tunnel interface (`tunnel.N`): the VPN bound to it decides.
    Tunnel(TunnelId),
    /// A blackhole: matching packets are dropped (`null-route`).
    Null,
}

/// One route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: Ipv4Addr,
    pub len: u8,
    pub next_hop: NextHop,
}

/// Longest-prefix match: one hash map per prefix length present, searched
/// from the longest length down. Cost: one hash probe per distinct length
/// present (a handful in a gateway's table), independent of the number of
/// routes.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Lengths present, longest first, each with its map of masked prefixes.
    levels: Vec<(u8, FastMap<u32, NextHop>)>,
    routes: Vec<Route>,
}

const fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

/// A route that cannot be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("prefix length {0} exceeds 32")]
    BadLength(u8),
    #[error("duplicate route {0}/{1}")]
    Duplicate(Ipv4Addr, u8),
}

impl RouteTable {
    /// Builds a table; host bits of prefixes are masked off.
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Result<RouteTable, RouteError> {
        let mut t = RouteTable::default();
        for r in routes {
            t.insert(r)?;
        }
        Ok(t)
    }

    fn insert(&mut self, r: Route) -> Result<(), RouteError> {
        if r.len > 32 {
            return Err(RouteError::BadLength(r.len));
        }
        let key = u32::from(r.prefix) & mask(r.len);
        let pos = match self.levels.iter().position(|(l, _)| *l <= r.len) {
            Some(i) if self.levels[i].0 == r.len => i,
            Some(i) => {
                self.levels.insert(i, (r.len, FastMap::default()));
                i
            }
            None => {
                self.levels.push((r.len, FastMap::default()));
                self.levels.len() - 1
            }
        };
        if self.levels[pos].1.insert(key, r.next_hop).is_some() {
            return Err(RouteError::Duplicate(Ipv4Addr::from(key), r.len));
        }
        self.routes.push(Route { prefix: Ipv4Addr::from(key), ..r });
        Ok(())
    }

    /// The next hop of the longest matching prefix.
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let d = u32::from(dst);
        for (len, map) in &self.levels {
            if let Some(nh) = map.get(&(d & mask(*len))) {
                return Some(*nh);
            }
        }
        None
    }

    /// The routes as given (masked), in insertion order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str, len: u8, nh: NextHop) -> Route {
        Route { prefix: p.parse().unwrap(), len, next_hop: nh }
    }

    #[test]
    fn longest_prefix_wins() {
        let lan = NextHop::Connected { port: PortId(0) };
        let wan = NextHop::Gateway { port: PortId(1), gateway: "198.51.100.254".parse().unwrap() };
        let t1 = NextHop::Tunnel(TunnelId(1));
        let t = RouteTable::new([
            r("0.0.0.0", 0, wan),
            r("10.1.1.0", 24, lan),
            r("10.2.0.0", 16, t1),
            r("10.2.9.9", 32, lan),
        ])
        .unwrap();
        assert_eq!(t.lookup("10.1.1.7".parse().unwrap()), Some(lan));
        assert_eq!(t.lookup("10.2.1.7".parse().unwrap()), Some(t1));
        assert_eq!(t.lookup("10.2.9.9".parse().unwrap()), Some(lan));
        assert_eq!(t.lookup("203.0.113.9".parse().unwrap()), Some(wan));
        let t = RouteTable::new([r("10.1.1.99", 24, lan)]).unwrap();
        assert_eq!(t.routes()[0].prefix, "10.1.1.0".parse::<Ipv4Addr>().unwrap());
        assert_eq!(t.lookup("10.9.9.9".parse().unwrap()), None);
    }

    #[test]
    fn errors() {
        let lan = NextHop::Connected { port: PortId(0) };
        assert_eq!(RouteTable::new([r("10.0.0.0", 33, lan)]).unwrap_err(), RouteError::BadLength(33));
        assert!(matches!(
            RouteTable::new([r("10.0.0.0", 8, lan), r("10.1.0.0", 8, lan)]),
            Err(RouteError::Duplicate(_, 8))
        ));
    }
}
