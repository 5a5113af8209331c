//! ESP addressed to the gateway: outer fragments reassembled first
//! (RFC 4303 §3.4.1, by the worker a hash of the datagram names), the
//! SA found by SPI (or the frame handed to the worker that owns it), the
//! packet opened in place (anti-replay, ICV), its inner packet checked
//! against the SA's proxy-ID (RFC 4301 §5.2), the SA's counters and
//! volume lifetimes updated; then the inner packet is delivered to the
//! gateway (`local.rs`) or routed on (`forward.rs`).

use core::net::Ipv4Addr;

use esprit_esp::{DecapError, Payload};
use esprit_wire::ethernet;
use esprit_wire::udp_encap::{self, Encapsulated as Encap};
use esprit_wire::{esp, ip_proto, ipv4, udp};

use super::{Action, Frame, PacketCtx, Worker};
use crate::drop::DropReason;
use crate::flow::flow_key_v4;
use crate::reassembly::Reassembly;
use crate::sa::InSlot;
use crate::update::{ExpireReason, WorkerEvent, WorkerOutput};
use crate::WorkerId;

impl Worker {
    /// ESP (or anything else) addressed to the gateway.
    pub(super) fn inbound_esp<F: Frame>(
        &mut self,
        p: PacketCtx,
        f: &mut F,
        out: &mut impl WorkerOutput,
    ) -> Action {
        let PacketCtx { now, l3, ip_len, .. } = p;
        let head = f.head();
        let ip_range = head + l3..head + l3 + ip_len;
        let (protocol, hl) = {
            let ip = ipv4::Packet::new_unchecked(&f.buffer()[ip_range.clone()]);
            if ip.is_fragment() {
                let key = (ip.src_addr(), ip.dst_addr(), ip.protocol(), ip.ident());
                return self.outer_fragment(p, f, key, out);
            }
            (ip.protocol(), ip.header_len())
        };
        let esp_start = match protocol {
            ip_proto::ESP => ip_range.start + hl,
            ip_proto::UDP => {
                let b = &f.buffer()[ip_range.start + hl..ip_range.end];
                let Ok(u) = udp::Packet::new_checked(b) else { return Action::Drop(DropReason::LocalNotEsp) };
                if u.dst_port() != udp_encap::NAT_T_PORT {
                    return Action::Drop(DropReason::LocalNotEsp);
                }
                match udp_encap::classify(u.payload()) {
                    Encap::Esp => ip_range.start + hl + udp::HEADER_LEN,
                    Encap::Keepalive => return Action::Drop(DropReason::NatKeepalive),
                    Encap::Ike | Encap::Invalid => return Action::Drop(DropReason::LocalNotEsp),
                }
            }
            _ => return Action::Drop(DropReason::LocalNotEsp),
        };
        let esp_range = esp_start..ip_range.end;
        let spi = match esp::Packet::new_checked(&f.buffer()[esp_range.clone()]) {
            Ok(e) => e.spi(),
            Err(_) => return Action::Drop(DropReason::EspMalformed),
        };
        let entry = match self.inbound.get_mut(&spi) {
            None => return Action::Drop(DropReason::EspUnknownSpi),
            Some(InSlot::Remote { owner }) => return Action::HandOff(*owner),
            Some(InSlot::Local(e)) => e,
        };
        if entry.hot.hard_expired() {
            return Action::Drop(DropReason::SaExpired);
        }
        let dec = match entry.sa.decapsulate(f.buffer(), esp_range) {
            Ok(d) => d,
            Err(e) => {
                entry.hot.errors += 1;
                return Action::Drop(decap_reason(e));
            }
        };
        let inner = match dec.payload {
            Payload::Ipv4(r) => r,
            Payload::Ipv6(_) => return Action::Drop(DropReason::Ipv6NotRouted),
            Payload::Dummy => return Action::Drop(DropReason::DummyPacket),
        };
        let inner_len = inner.len();
        let (key, dst, ttl) = match ipv4::Packet::new_checked(&f.buffer()[inner.clone()]) {
            Ok(ip) => (flow_key_v4(&ip), ip.dst_addr(), ip.ttl()),
            Err(_) => return Action::Drop(DropReason::InnerMalformed),
        };
        // RFC 4301 §5.2 step 4: the packet must be one its SA may carry
        // (any, on a VPN with proxy-id check off and one proxy-ID).
        if !entry.check.admits(&key) {
            entry.hot.errors += 1;
            return Action::Drop(DropReason::InboundPolicy);
        }
        entry.hot.count(now, inner_len);
        let sa_id = entry.id;
        let via = (entry.vpn, entry.tunnel, entry.id);
        if entry.hot.soft_bytes_crossed() {
            out.event(WorkerEvent::SoftExpire { sa: sa_id, reason: ExpireReason::Bytes });
        }
        // Reported once, like the outbound side: fastpathd removes the SA.
        if entry.hot.hard_bytes_crossed() {
            out.event(WorkerEvent::HardExpire { sa: sa_id, reason: ExpireReason::Bytes });
        }
        self.counters.decrypted += 1;
        if self.net.local.contains(&dst) {
            return self.addressed_to_self(f, inner, via, out);
        }
        // From here the inner packet is an ordinary packet in the frame.
        let l3 = inner.start - head;
        f.set_packet(head, l3 + inner_len);
        let inner_p = PacketCtx { decrypted: true, l3, ip_len: inner_len, ..p };
        let action = self.route_decrypted(inner_p, f, (key, dst, ttl), out);
        if let Action::HandOff(w) = action {
            // Hub and spoke across workers: the next SA's owner gets the
            // inner packet behind an Ethernet header (the receiving
            // worker's Ethernet header goes where the outer headers
            // ended; the addresses are rewritten on the way out).
            let at = head + l3 - ethernet::HEADER_LEN;
            f.buffer().copy_within(head..head + ethernet::HEADER_LEN, at);
            f.set_packet(at, ethernet::HEADER_LEN + inner_len);
            return Action::HandOffDecrypted(w);
        }
        action
    }

    /// An outer fragment addressed to the gateway (RFC 4303 §3.4.1:
    /// reassembled before ESP processing). The XDP program sends the fast
    /// path the fragments of ESP and of ESP-in-UDP datagrams only (IKE's
    /// go to the kernel, judged by their first fragment); anything else
    /// here is not ours. A reassembled datagram goes through the same
    /// checks as a whole one: should it be IKE after all (a later fragment
    /// of an IKE datagram that reused a recent ESP-in-UDP datagram's
    /// identification and overtook its first fragment, which went to the
    /// kernel), it cannot complete here and times out, or is dropped as
    /// `local-not-esp`; the kernel, missing that fragment, drops its copy
    /// and the peer retransmits (RFC 2409 §5 / RFC 7296 §2.1).
    fn outer_fragment<F: Frame>(
        &mut self,
        p: PacketCtx,
        f: &mut F,
        (src, dst, protocol, ident): (Ipv4Addr, Ipv4Addr, u8, u16),
        out: &mut impl WorkerOutput,
    ) -> Action {
        let PacketCtx { now, l3, ip_len, .. } = p;
        if protocol != ip_proto::ESP && protocol != ip_proto::UDP {
            return Action::Drop(DropReason::LocalNotEsp);
        }
        if self.cfg.workers > 1 {
            let h = (u64::from(u32::from(src)) << 32 | u64::from(u32::from(dst)))
                ^ (u64::from(ident) << 8 | u64::from(protocol)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let owner = (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % u64::from(self.cfg.workers);
            // < workers, a u16.
            let owner = WorkerId(owner as u16);
            if owner != self.cfg.id {
                return Action::HandOff(owner);
            }
        }
        let head = f.head();
        let ip = head + l3..head + l3 + ip_len;
        let mut expired = 0;
        let r = self.reassembly.push(now, f.buffer(), head, ip, &mut expired);
        for _ in 0..expired {
            self.drops.count(DropReason::FragTimeout);
        }
        match r {
            Reassembly::Kept => {
                self.counters.fragments += 1;
                Action::Fragment
            }
            Reassembly::Drop(reason) => Action::Drop(reason),
            Reassembly::Complete { len } => {
                self.counters.fragments += 1;
                self.counters.reassembled += 1;
                f.set_packet(head, l3 + len);
                // Whole now: not a fragment any more, so this recurses once.
                self.inbound_esp(PacketCtx { ip_len: len, ..p }, f, out)
            }
        }
    }
}

fn decap_reason(e: DecapError) -> DropReason {
    match e {
        DecapError::BadRange | DecapError::Truncated | DecapError::BadLength => DropReason::EspTruncated,
        DecapError::SpiMismatch => DropReason::EspUnknownSpi,
        DecapError::ReplayTooOld => DropReason::ReplayTooOld,
        DecapError::ReplayDuplicate => DropReason::ReplayDuplicate,
        DecapError::IcvMismatch => DropReason::IcvMismatch,
        DecapError::BadPadding => DropReason::BadPadding,
        DecapError::BadNextHeader => DropReason::BadNextHeader,
        DecapError::InnerMalformed => DropReason::InnerMalformed,
        _ => DropReason::EspMalformed,
    }
}
