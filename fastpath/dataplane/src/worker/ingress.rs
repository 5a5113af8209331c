//! Pass 1, ingress: every frame of a burst is parsed (Ethernet, IPv4
//! header and checksum) and routed. ESP (or anything) addressed to the
//! gateway goes to the decrypt stage; a clear packet from a source only a
//! tunnel may deliver is dropped before anything answers it; TTL expiry
//! becomes an ICMP error; a packet routed out of a port is forwarded; one
//! routed into a tunnel interface leaves its flow key for pass 2
//! (`classify.rs`) and waits.

use core::net::Ipv4Addr;

use esprit_policy::FlowKey;
use esprit_wire::ethernet::{self, ethertype};
use esprit_wire::{icmpv4, ipv4};

use super::{Action, Frame, PacketCtx, Stage, Worker};
use crate::drop::DropReason;
use crate::flow::flow_key_v4;
use crate::source::SourceFilter;
use crate::update::WorkerOutput;
use crate::NextHop;

impl Worker {
    /// Rebuilds the spoofed-source filter after its routes or VPNs changed
    /// (once per change, before the burst that follows it).
    pub(super) fn refresh_sources(&mut self) {
        if !self.sources_stale {
            return;
        }
        self.sources_stale = false;
        self.last_source = None;
        let remote = self.vpns.values().flat_map(|v| v.conf.table.proxy_ids().iter().map(|p| p.remote));
        self.sources = SourceFilter::new(&self.net.routes, remote);
    }

    /// True when a clear packet from `src` is a spoof (`source.rs`); one
    /// lookup per run of packets from one source.
    #[inline]
    fn spoofed(&mut self, src: Ipv4Addr) -> bool {
        match self.last_source {
            Some((s, verdict)) if s == src => verdict,
            _ => {
                let verdict = self.sources.is_spoofed(src);
                self.last_source = Some((src, verdict));
                verdict
            }
        }
    }

    /// Parses and routes one frame (`ctx`: when and how the burst
    /// arrived). Returns the stage (tunnel-bound packets continue in
    /// pass 2) and the action if the packet is done.
    pub(super) fn ingress<F: Frame>(
        &mut self,
        ctx: PacketCtx,
        f: &mut F,
        out: &mut impl WorkerOutput,
    ) -> (Stage, Action) {
        let done = |a| (Stage::Done, a);
        let head = f.head();
        let len = f.len();
        let buf = f.buffer();
        let Some(pkt) = buf.get(head..head + len) else { return done(Action::Drop(DropReason::NotIp)) };
        let Ok(eth) = ethernet::EthernetFrame::new_checked(pkt) else {
            return done(Action::Drop(DropReason::NotIp));
        };
        match eth.ethertype() {
            ethertype::IPV4 => {}
            ethertype::IPV6 => return done(Action::Drop(DropReason::Ipv6NotRouted)),
            _ => return done(Action::Drop(DropReason::NotIp)),
        }
        let l3 = ethernet::HEADER_LEN;
        let ip = match ipv4::Packet::new_checked(&pkt[l3..]) {
            Ok(p) => p,
            Err(_) => return done(Action::Drop(DropReason::Ipv4Malformed)),
        };
        if !ip.verify_checksum() {
            return done(Action::Drop(DropReason::Ipv4BadChecksum));
        }
        let ip_len = usize::from(ip.total_len());
        let dst = ip.dst_addr();
        let p = PacketCtx { l3, ip_len, ..ctx };
        if self.net.local.contains(&dst) {
            if p.decrypted {
                // Delivered by the worker that decrypted it; not ESP to open.
                return done(Action::Drop(DropReason::TunnelToSelf));
            }
            return done(self.inbound_esp(p, f, out));
        }
        // Before anything answers it (an ICMP error to a forged source
        // would reflect at the tunnel's hosts): see `source.rs`.
        if !p.decrypted && self.spoofed(ip.src_addr()) {
            return done(Action::Drop(DropReason::SpoofedSource));
        }
        if ip.ttl() <= 1 {
            return done(self.icmp_error(p, f, icmpv4::Repr::TimeExceeded, DropReason::TtlExceeded));
        }
        // A run of packets to one destination: the route and tunnel of the
        // tunnel-bound packet before, whose key is the last one (the
        // tables change only between bursts, so they are the same).
        if let (Some(FlowKey::V4(k)), Some(last)) = (self.keys.last(), self.pending.last()) {
            if k.dst == dst {
                let (tunnel, vpn) = (last.tunnel, last.vpn);
                let key = flow_key_v4(&ip);
                // Same flow too: same verdict, so the same key (pass 2
                // classifies it once).
                if self.keys.last() != Some(&key) {
                    self.keys.push(key);
                }
                let key = self.keys.len() - 1;
                return (Stage::Tunnel { l3, len: ip_len, tunnel, vpn, key }, Action::Drop(DropReason::NoSa));
            }
        }
        let d = *self.dest(dst);
        match d.next_hop {
            None => done(Action::Drop(DropReason::NoRoute)),
            Some(NextHop::Null) => done(Action::Drop(DropReason::NullRoute)),
            Some(NextHop::Tunnel(t)) => match self.net.tunnels.get(&t.0).and_then(|t| t.vpn) {
                Some(vpn) => {
                    self.keys.push(flow_key_v4(&ip));
                    let key = self.keys.len() - 1;
                    (Stage::Tunnel { l3, len: ip_len, tunnel: t, vpn, key }, Action::Drop(DropReason::NoSa))
                }
                None => done(Action::Drop(DropReason::TunnelUnbound)),
            },
            Some(nh) => {
                let a = self.forward_clear(p, f, dst, (nh, d.l2), out);
                if matches!(a, Action::Tx(_)) {
                    self.counters.forwarded += 1;
                }
                done(a)
            }
        }
    }
}
