//! ICMP errors the gateway sends (RFC 792): time exceeded for a packet
//! whose TTL runs out here, fragmentation needed for a DF packet too big
//! for its tunnel. Never about an ICMP error, a later fragment or a packet
//! from nowhere (RFC 1122 §3.2.2), and at most `icmp_per_100ms` per
//! 100 ms (RFC 1812 §4.3.2.8). The offending frame becomes the error.

use std::time::Duration;

use esprit_wire::ethernet;
use esprit_wire::{icmpv4, ip_proto, ipv4};

use super::{Action, Frame, PacketCtx, Worker};
use crate::drop::DropReason;
use crate::NextHop;

impl Worker {
    /// Turns the packet at `p.l3` into an ICMP error back to its source
    /// (RFC 792: the offending IP header and 8 bytes of its payload), or
    /// drops it where RFC 1122 §3.2.2 forbids an error or the rate limit
    /// is spent. `reason` is counted either way by the caller's action.
    pub(super) fn icmp_error<F: Frame>(
        &mut self,
        p: PacketCtx,
        f: &mut F,
        repr: icmpv4::Repr,
        reason: DropReason,
    ) -> Action {
        let PacketCtx { now, rx_port, l3, ip_len, .. } = p;
        let head = f.head();
        let mut quote = [0u8; 68];
        let (qlen, orig_src) = {
            let b = &f.buffer()[head + l3..head + l3 + ip_len];
            let p = ipv4::Packet::new_unchecked(b);
            let hl = p.header_len();
            // Never about an ICMP error, a non-first fragment, or a packet
            // from nowhere (RFC 1122 §3.2.2).
            let payload = p.payload();
            let is_icmp_error = p.protocol() == ip_proto::ICMP
                && payload.first().is_some_and(|t| !matches!(*t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18));
            let src = p.src_addr();
            if is_icmp_error
                || p.frag_offset() != 0
                || src.is_unspecified()
                || src.is_broadcast()
                || src.is_multicast()
            {
                return Action::Drop(reason);
            }
            let qlen = (hl + 8).min(ip_len).min(quote.len());
            quote[..qlen].copy_from_slice(&b[..qlen]);
            (qlen, src)
        };
        // Rate limit (RFC 1812 §4.3.2.8).
        let (start, sent) = &mut self.icmp_window;
        if start.is_none_or(|t| now.duration_since(t) >= Duration::from_millis(100)) {
            *start = Some(now);
            *sent = 0;
        }
        if *sent >= self.cfg.icmp_per_100ms {
            return Action::Drop(reason);
        }
        let Some(src) = self
            .net
            .ports
            .get(usize::from(rx_port.0))
            .and_then(|p| p.addrs.first().copied())
            .or_else(|| self.net.local.first().copied())
        else {
            return Action::Drop(reason);
        };
        let (port, hop) = match self.net.routes.lookup(orig_src) {
            Some(NextHop::Connected { port }) => (port, orig_src),
            Some(NextHop::Gateway { port, gateway }) => (port, gateway),
            _ => return Action::Drop(reason),
        };
        let Some(mac) = self.net.neighbors.lookup(port, hop) else { return Action::Drop(reason) };
        let Some(src_mac) = self.net.ports.get(usize::from(port.0)).map(|p| p.mac) else {
            return Action::Drop(reason);
        };
        let total = ipv4::HEADER_LEN + icmpv4::HEADER_LEN + qlen;
        let at = head + l3;
        let buf = f.buffer();
        if buf.len() < at + total {
            return Action::Drop(reason);
        }
        ipv4::Repr {
            src_addr: src,
            dst_addr: orig_src,
            protocol: ip_proto::ICMP,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
            payload_len: (icmpv4::HEADER_LEN + qlen) as u16,
        }
        .emit(&mut buf[at..at + ipv4::HEADER_LEN]);
        let msg = &mut buf[at + ipv4::HEADER_LEN..at + total];
        repr.emit_with_data(msg, &quote[..qlen]);
        self.icmp_window.1 += 1;
        self.counters.icmp_errors += 1;
        // The drop reason is counted; the frame goes out as the ICMP error.
        self.drops.count(reason);
        self.emit_eth(f, at - ethernet::HEADER_LEN, total, mac, src_mac);
        Action::Tx(port)
    }
}
