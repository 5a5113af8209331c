//! Next-hop MAC addresses. The kernel owns ARP (the XDP program passes ARP
//! to it, and the gateway's addresses live on the kernel interfaces);
//! fastpathd mirrors the kernel's neighbour entries into this table and
//! pushes a new copy to the workers when it changes.

use core::net::Ipv4Addr;

use esprit_wire::ethernet::MacAddr;

use crate::fasthash::FastMap;
use crate::PortId;

/// IPv4 neighbours per port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NeighborTable {
    map: FastMap<u64, MacAddr>,
}

#[inline]
fn key(port: PortId, addr: Ipv4Addr) -> u64 {
    u64::from(port.0) << 32 | u64::from(u32::from(addr))
}

impl NeighborTable {
    pub fn insert(&mut self, port: PortId, addr: Ipv4Addr, mac: MacAddr) {
        self.map.insert(key(port, addr), mac);
    }

    pub fn remove(&mut self, port: PortId, addr: Ipv4Addr) {
        self.map.remove(&key(port, addr));
    }

    #[inline]
    pub fn lookup(&self, port: PortId, addr: Ipv4Addr) -> Option<MacAddr> {
        self.map.get(&key(port, addr)).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every entry as (port, address, MAC), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (PortId, Ipv4Addr, MacAddr)> + '_ {
        self.map.iter().map(|(k, m)| (PortId((k >> 32) as u8), Ipv4Addr::from(*k as u32), *m))
    }
}
