//! Forwarding out of a port: clear packets and decrypted ones (which may
//! also go straight into another tunnel, hub and spoke), the destination
//! cache in front of the route and neighbour tables, neighbour misses
//! (rate-limited events, the frame held until the neighbour table
//! changes) and the Ethernet rewrite every transmitted frame gets.

use core::net::Ipv4Addr;
use std::time::Instant;

use esprit_policy::{FlowKey, Verdict};
use esprit_wire::ethernet::{self, ethertype, MacAddr};
use esprit_wire::{icmpv4, ipv4};

use super::{Action, Classified, Frame, PacketCtx, Worker};
use crate::drop::DropReason;
use crate::hold::HoldKey;
use crate::update::{WorkerEvent, WorkerOutput};
use crate::{NextHop, PortId};

/// A next hop's resolved link layer: the port, the next hop's MAC and
/// the port's MAC.
pub(super) type LinkLayer = (PortId, MacAddr, MacAddr);

/// A destination's route and, for port next hops, its resolved link
/// layer: a direct-mapped cache in front of the route and neighbour tables,
/// valid for one table generation.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DestEntry {
    dst: u32,
    generation: u64,
    pub(super) next_hop: Option<NextHop>,
    pub(super) l2: Option<LinkLayer>,
}

pub(super) const DEST_CACHE_SLOTS: usize = 1024;

impl Worker {
    /// Routes a decrypted packet (`p.l3` in the frame, `p.decrypted`
    /// set): to a port, or straight into another tunnel (hub and spoke).
    pub(super) fn route_decrypted<F: Frame>(
        &mut self,
        p: PacketCtx,
        f: &mut F,
        (key, dst, ttl): (FlowKey, Ipv4Addr, u8),
        out: &mut impl WorkerOutput,
    ) -> Action {
        if ttl <= 1 {
            return self.icmp_error(p, f, icmpv4::Repr::TimeExceeded, DropReason::TtlExceeded);
        }
        let d = *self.dest(dst);
        match d.next_hop {
            None => Action::Drop(DropReason::NoRoute),
            Some(NextHop::Null) => Action::Drop(DropReason::NullRoute),
            Some(NextHop::Tunnel(t)) => {
                // Hub and spoke: straight into another tunnel.
                let Some(vpn) = self.net.tunnels.get(&t.0).and_then(|t| t.vpn) else {
                    return Action::Drop(DropReason::TunnelUnbound);
                };
                let verdict = match self.vpns.get(&vpn.0) {
                    Some(v) => v.conf.table.classify_one(&key),
                    None => Verdict::NoMatch,
                };
                // The key goes on the burst's key list only for this call.
                self.keys.push(key);
                let c = Classified { tunnel: t, vpn, verdict, key: self.keys.len() - 1 };
                let action = self.seal_for_tunnel(p, f, c, out);
                self.keys.pop();
                action
            }
            Some(nh) => self.forward_clear(p, f, dst, (nh, d.l2), out),
        }
    }

    /// Routes a clear IPv4 packet at `f[head + p.l3..]` out of a port:
    /// TTL, MAC rewrite. The Ethernet header goes right before `p.l3`.
    /// `route` is the destination's next hop and, when the destination
    /// cache had it, the resolved link layer.
    pub(super) fn forward_clear<F: Frame>(
        &mut self,
        p: PacketCtx,
        f: &mut F,
        dst: Ipv4Addr,
        route: (NextHop, Option<LinkLayer>),
        out: &mut impl WorkerOutput,
    ) -> Action {
        let PacketCtx { now, l3, ip_len, .. } = p;
        let (nh, l2) = route;
        let (port, mac, src_mac) = match l2 {
            Some(l2) => l2,
            None => {
                let (port, hop) = match nh {
                    NextHop::Connected { port } => (port, dst),
                    NextHop::Gateway { port, gateway } => (port, gateway),
                    NextHop::Tunnel(_) => return Action::Drop(DropReason::NoRoute),
                    NextHop::Null => return Action::Drop(DropReason::NullRoute),
                };
                let Some(mac) = self.neighbor(now, port, hop, out) else {
                    return self.hold_for_neighbor(p, f, port, hop);
                };
                let Some(src_mac) = self.net.ports.get(usize::from(port.0)).map(|p| p.mac) else {
                    return Action::Drop(DropReason::NoRoute);
                };
                // Only a destination whose route is this next hop caches it.
                let e = self.dest(dst);
                if e.next_hop == Some(nh) {
                    e.l2 = Some((port, mac, src_mac));
                }
                (port, mac, src_mac)
            }
        };
        let head = f.head();
        let buf = f.buffer();
        ipv4::Packet::new_unchecked(&mut buf[head + l3..head + l3 + ip_len]).decrement_ttl();
        self.emit_eth(f, head + l3 - ethernet::HEADER_LEN, ip_len, mac, src_mac);
        Action::Tx(port)
    }

    pub(super) fn emit_eth<F: Frame>(
        &mut self,
        f: &mut F,
        at: usize,
        ip_len: usize,
        dst: MacAddr,
        src: MacAddr,
    ) {
        let buf = f.buffer();
        ethernet::Repr { src_addr: src, dst_addr: dst, ethertype: ethertype::IPV4 }
            .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut buf[at..at + ethernet::HEADER_LEN]));
        let len = ethernet::HEADER_LEN + ip_len;
        f.set_packet(at, len);
        self.counters.tx_bytes += len as u64;
    }

    /// The cache entry of `dst`, filled from the route table on a miss.
    #[inline]
    pub(super) fn dest(&mut self, dst: Ipv4Addr) -> &mut DestEntry {
        let d = u32::from(dst);
        let i = (d.wrapping_mul(0x9e37_79b1) >> 22) as usize % DEST_CACHE_SLOTS;
        let e = &mut self.dest_cache[i];
        if e.generation != self.net.generation || e.dst != d {
            *e = DestEntry {
                dst: d,
                generation: self.net.generation,
                next_hop: self.net.routes.lookup(dst),
                l2: None,
            };
        }
        e
    }

    pub(super) fn neighbor(
        &mut self,
        now: Instant,
        port: PortId,
        addr: Ipv4Addr,
        out: &mut impl WorkerOutput,
    ) -> Option<MacAddr> {
        if let Some(m) = self.net.neighbors.lookup(port, addr) {
            return Some(m);
        }
        let key = u64::from(port.0) << 32 | u64::from(u32::from(addr));
        let slot = &mut self.miss_cache[(key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize];
        let due =
            slot.0 != key || slot.1.is_none_or(|t| now.duration_since(t) >= self.cfg.neighbor_miss_interval);
        if due {
            *slot = (key, Some(now));
            out.event(WorkerEvent::NeighborMiss { port, addr });
        }
        None
    }

    /// The next hop's MAC address is being resolved: a copy of the frame
    /// (not yet changed by this hop: TTL and addresses are rewritten after
    /// the neighbour lookup) waits for the neighbour table to change.
    pub(super) fn hold_for_neighbor<F: Frame>(
        &mut self,
        p: PacketCtx,
        f: &mut F,
        port: PortId,
        hop: Ipv4Addr,
    ) -> Action {
        if self.hold_packet(HoldKey::Neighbor(port, hop), p, f) {
            Action::Held
        } else {
            Action::Drop(DropReason::NoNeighbor)
        }
    }

    /// Keeps a copy of the packet as a frame from the LAN: its Ethernet
    /// header, then the IP packet (a decrypted one sits after the outer
    /// headers it arrived in, which must not go with it).
    pub(super) fn hold_packet<F: Frame>(&mut self, key: HoldKey, p: PacketCtx, f: &mut F) -> bool {
        let PacketCtx { l3, ip_len, .. } = p;
        let head = f.head();
        let b = f.buffer();
        let (Some(eth), Some(ip)) =
            (b.get(head..head + ethernet::HEADER_LEN), b.get(head + l3..head + l3 + ip_len))
        else {
            return false;
        };
        self.hold.hold_parts(key, &[eth, ip], p.now, p.decrypted)
    }
}
