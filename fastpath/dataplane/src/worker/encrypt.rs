//! Pass 3, encrypt: a classified tunnel-bound packet goes to its
//! proxy-ID's SA. No SA yet: an acquire for the control plane (backed off
//! per proxy-ID) and a copy in the hold queue; an SA another worker owns:
//! hand the frame off. Then the SA's outer next hop (resolved once per
//! table generation), fragmentation before encryption for a packet the
//! tunnel cannot carry whole (or an ICMP error when DF is set), TCP MSS
//! clamping, the seal in place and the SA's volume lifetimes.

use core::net::Ipv4Addr;
use std::time::Instant;

use esprit_esp::EncapError;
use esprit_policy::{FlowKey, Verdict};
use esprit_wire::ethernet::{self, ethertype};
use esprit_wire::ipv4_frag::Plan as FragmentPlan;
use esprit_wire::{icmpv4, ipv4, tcp};

use super::{Action, Classified, Frame, NetTables, PacketCtx, Worker, ACQUIRE_BACKOFF_MAX_SHIFT};
use crate::drop::DropReason;
use crate::hold::HoldKey;
use crate::mtu::{FRAGMENT_HEADROOM, MAX_FRAGMENTS, MAX_FRAGMENT_LEN};
use crate::sa::{OutEntry, OutSlot, OuterHop};
use crate::update::{ExpireReason, WorkerEvent, WorkerOutput};
use crate::{NextHop, PortId, TunnelId};

impl Worker {
    /// The tunnel path of one packet after classification.
    pub(super) fn seal_for_tunnel<F: Frame>(
        &mut self,
        p: PacketCtx,
        f: &mut F,
        c: Classified,
        out: &mut impl WorkerOutput,
    ) -> Action {
        let PacketCtx { now, l3, ip_len, .. } = p;
        let Classified { tunnel, vpn: vpn_id, verdict, key: key_index } = c;
        let Verdict::Match(index) = verdict else { return Action::Drop(DropReason::ProxyIdMismatch) };
        let Some(vpn) = self.vpns.get_mut(&vpn_id.0) else { return Action::Drop(DropReason::TunnelUnbound) };
        let Some(slot) = vpn.slots.get_mut(index.get()) else {
            return Action::Drop(DropReason::ProxyIdMismatch);
        };
        let entry = match slot {
            OutSlot::Local(e) => e,
            OutSlot::Remote { owner, .. } => return Action::HandOff(*owner),
            OutSlot::Empty { last_acquire, repeats } => {
                let proxy_id = vpn.conf.table.proxy_ids()[index.get()];
                let wait = self.cfg.acquire_interval * (1u32 << (*repeats).min(ACQUIRE_BACKOFF_MAX_SHIFT));
                if last_acquire.is_none_or(|t| now.duration_since(t) >= wait) {
                    if last_acquire.is_some() {
                        *repeats = repeats.saturating_add(1);
                    }
                    *last_acquire = Some(now);
                    self.counters.acquires += 1;
                    let flow = self.keys.get(key_index).copied().unwrap_or(FlowKey::v4(
                        Ipv4Addr::UNSPECIFIED,
                        Ipv4Addr::UNSPECIFIED,
                        0,
                        0,
                        0,
                    ));
                    out.event(WorkerEvent::Acquire { vpn: vpn_id, tunnel, proxy_id, index, flow });
                }
                return if self.hold_packet(HoldKey::Sa(vpn_id, proxy_id), p, f) {
                    Action::Held
                } else if self.cfg.hold_per_proxy_id == 0 {
                    Action::Drop(DropReason::NoSa)
                } else {
                    Action::Drop(DropReason::HoldQueueFull)
                };
            }
        };
        if entry.hot.hard_expired() {
            return Action::Drop(DropReason::SaExpired);
        }
        // Outer route and neighbour first: no sequence number is spent on a
        // packet that cannot leave. They are resolved once per table
        // generation and cached in the SA (the per-packet cost is a compare).
        let hop = match entry.outer_hop {
            Some(h) if h.generation == self.net.generation => h,
            _ => match resolve_outer(&self.net, tunnel, entry.sa.outer_dst(), |mtu| {
                entry.sa.max_inner_len(mtu)
            }) {
                Ok(h) => {
                    entry.outer_hop = Some(h);
                    h
                }
                Err(Unresolved::Route) => return Action::Drop(DropReason::NoRoute),
                Err(Unresolved::Neighbor(port, addr)) => {
                    self.neighbor(now, port, addr, out);
                    return self.hold_for_neighbor(p, f, port, addr);
                }
            },
        };
        let head = f.head();
        let inner = head + l3..head + l3 + ip_len;
        let fragment = ip_len > hop.max_inner;
        if fragment && ipv4::Packet::new_unchecked(&f.buffer()[inner.clone()]).dont_frag() {
            let next_hop_mtu = u16::try_from(hop.max_inner).unwrap_or(u16::MAX);
            let repr = icmpv4::Repr::FragNeeded { next_hop_mtu };
            return self.icmp_error(p, f, repr, DropReason::TooBigDf);
        }
        let (port, mac, src_mac) = (hop.port, hop.dst_mac, hop.src_mac);
        // The inner packet is forwarded by this gateway (RFC 4301 §5.1.2):
        // its TTL goes down by one before it is sealed (or split: the
        // fragments copy the header).
        ipv4::Packet::new_unchecked(&mut f.buffer()[inner.clone()]).decrement_ttl();
        // `set flow tcp-mss`: SYNs entering the tunnel, before encryption
        // (as ScreenOS: only the gateway that encrypts clamps).
        if let Some(mss) = self.flow.tcp_mss {
            if let tcp::MssClamp::Clamped(_) = tcp::clamp_mss(&mut f.buffer()[inner.clone()], mss) {
                self.counters.mss_clamped += 1;
            }
        }
        let first = if fragment {
            // Not DF: fragmented before encryption (`mtu.rs`). The later
            // fragments are copied out before the first is sealed in place
            // (its trailer overwrites what follows it).
            let plan = match FragmentPlan::new(&f.buffer()[inner.clone()], hop.max_inner, MAX_FRAGMENTS) {
                Ok(p) if p.len(0) <= MAX_FRAGMENT_LEN => p,
                _ => return Action::Drop(DropReason::TooBig),
            };
            let later = plan.count() - 1;
            if later > self.fragments.free() {
                return Action::Drop(DropReason::FragNoBuffer);
            }
            for k in 1..plan.count() {
                let (datagram, slot) = (&f.buffer()[inner.clone()], self.fragments.free_slot(k - 1));
                if slot.and_then(|b| plan.emit(datagram, k, &mut b[FRAGMENT_HEADROOM..])).is_none() {
                    return Action::Drop(DropReason::FragNoBuffer);
                }
            }
            let Some(len) = plan.first_in_place(&mut f.buffer()[inner.clone()]) else {
                return Action::Drop(DropReason::TooBig);
            };
            let first = match seal(now, entry, f.buffer(), inner.start..inner.start + len, out) {
                Ok(r) => r,
                Err(reason) => return Action::Drop(reason),
            };
            self.counters.fragmented += 1;
            self.counters.fragments_made += 1;
            for k in 1..plan.count() {
                let Some(slot) = self.fragments.free_slot(0) else { break };
                let frag = FRAGMENT_HEADROOM..FRAGMENT_HEADROOM + plan.len(k);
                // A later fragment that cannot be sealed (its SA just ran
                // out) ends the datagram: the rest could not be reassembled.
                let outer = match seal(now, entry, slot, frag, out) {
                    Ok(r) => r,
                    Err(reason) => {
                        self.drops.count(reason);
                        break;
                    }
                };
                let at = outer.start - ethernet::HEADER_LEN;
                ethernet::Repr { src_addr: src_mac, dst_addr: mac, ethertype: ethertype::IPV4 }
                    .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut slot[at..outer.start]));
                self.fragments.commit(port, at..outer.end);
                self.counters.fragments_made += 1;
                self.counters.encrypted += 1;
                self.counters.tx_packets += 1;
                self.counters.tx_bytes += (outer.end - at) as u64;
            }
            first
        } else {
            match seal(now, entry, f.buffer(), inner, out) {
                Ok(r) => r,
                Err(reason) => return Action::Drop(reason),
            }
        };
        self.counters.encrypted += 1;
        self.emit_eth(f, first.start - ethernet::HEADER_LEN, first.len(), mac, src_mac);
        Action::Tx(port)
    }
}

/// Seals the inner packet at `buf[inner]` on the SA of `entry` and
/// accounts for it (counters, soft and hard lifetimes); returns the range
/// of the outer IPv4 packet, which has room for an Ethernet header before
/// it.
fn seal(
    now: Instant,
    entry: &mut OutEntry,
    buf: &mut [u8],
    inner: core::ops::Range<usize>,
    out: &mut impl WorkerOutput,
) -> Result<core::ops::Range<usize>, DropReason> {
    let ip_len = inner.len();
    let enc = match entry.sa.encapsulate(buf, inner) {
        Ok(e) => e,
        Err(EncapError::SequenceExhausted) => {
            // Reported once; the control plane replaces the SA.
            if !entry.hot.hard_reported {
                entry.hot.hard_reported = true;
                out.event(WorkerEvent::HardExpire { sa: entry.id, reason: ExpireReason::Sequence });
            }
            return Err(DropReason::SeqExhausted);
        }
        Err(EncapError::Headroom { .. } | EncapError::Tailroom { .. } | EncapError::TooBig) => {
            return Err(DropReason::EncapNoRoom)
        }
        Err(_) => return Err(DropReason::Ipv4Malformed),
    };
    entry.hot.count(now, ip_len);
    if enc.soft_limit_crossed && !entry.hot.soft_reported {
        entry.hot.soft_reported = true;
        out.event(WorkerEvent::SoftExpire { sa: entry.id, reason: ExpireReason::Sequence });
    } else if entry.hot.soft_bytes_crossed() {
        out.event(WorkerEvent::SoftExpire { sa: entry.id, reason: ExpireReason::Bytes });
    }
    if entry.hot.hard_bytes_crossed() {
        out.event(WorkerEvent::HardExpire { sa: entry.id, reason: ExpireReason::Bytes });
    }
    if enc.outer.start < ethernet::HEADER_LEN {
        return Err(DropReason::EncapNoRoom);
    }
    Ok(enc.outer)
}

/// Why an SA's outer next hop could not be resolved.
enum Unresolved {
    Route,
    Neighbor(PortId, Ipv4Addr),
}

/// The outer next hop of an SA: the port and MACs its packets leave with,
/// and the largest inner packet that fits both the tunnel interface's MTU
/// and the port's MTU after encapsulation.
fn resolve_outer(
    net: &NetTables,
    tunnel: TunnelId,
    dst: Ipv4Addr,
    max_inner_for: impl Fn(usize) -> usize,
) -> Result<OuterHop, Unresolved> {
    let NetTables { routes, ports, tunnels, neighbors, generation, .. } = net;
    let generation = *generation;
    let (port, hop) = match routes.lookup(dst) {
        Some(NextHop::Connected { port }) => (port, dst),
        Some(NextHop::Gateway { port, gateway }) => (port, gateway),
        _ => return Err(Unresolved::Route),
    };
    let pinfo = ports.get(usize::from(port.0)).ok_or(Unresolved::Route)?;
    let tunnel_mtu = tunnels.get(&tunnel.0).map_or(1500, |t| usize::from(t.mtu));
    let max_inner = tunnel_mtu.min(max_inner_for(usize::from(pinfo.mtu)));
    let dst_mac = neighbors.lookup(port, hop).ok_or(Unresolved::Neighbor(port, hop))?;
    Ok(OuterHop { generation, port, dst_mac, src_mac: pinfo.mac, max_inner })
}
