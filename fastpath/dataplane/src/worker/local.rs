//! Packets of the gateway itself: the VPN monitor's probes (ICMP echo
//! requests built here and sent through the pipeline like LAN traffic)
//! and, among decrypted packets addressed to the gateway, their replies
//! (reported to the control plane and consumed); any other decrypted
//! packet for the gateway has nowhere to go.

use esprit_wire::ethernet::{self, ethertype, MacAddr};
use esprit_wire::{icmpv4, ip_proto, ipv4};

use super::{Action, Frame, Worker};
use crate::drop::DropReason;
use crate::update::{WorkerEvent, WorkerOutput};
use crate::{SaId, TunnelId, VpnId};

/// Probes waiting to be built (the control plane sends a few a second;
/// more than this between two loops of the worker are dropped and counted).
pub(super) const MAX_PENDING_PROBES: usize = 64;
/// ICMP identifiers the worker recognises as VPN monitor replies.
pub const MAX_PROBE_IDENTS: usize = 8;
/// Largest echo data of a probe (the frame must fit a 2 KiB UMEM chunk
/// with the ESP overhead).
pub const MAX_PROBE_DATA: u16 = 1400;

impl Worker {
    /// True when VPN monitor probes wait to be sent.
    pub fn has_probes(&self) -> bool {
        !self.probes.is_empty()
    }

    /// Builds every waiting VPN monitor probe — an Ethernet frame holding
    /// an ICMP echo request (RFC 792) from the gateway's address — and
    /// hands it to `f`, which sends it through [`Worker::process_burst`]
    /// like a packet from the LAN: route, tunnel, proxy-ID, SA, or hold and
    /// acquire when the proxy-ID has no SA (how `monitor rekey` brings an SA
    /// up). The Ethernet addresses are zero: the pipeline rewrites them.
    pub fn drain_probes(&mut self, mut f: impl FnMut(&[u8])) {
        let mut probes = core::mem::take(&mut self.probes);
        for p in probes.drain(..) {
            let data_len = usize::from(p.size.min(MAX_PROBE_DATA));
            let icmp_len = icmpv4::HEADER_LEN + data_len;
            let ip_len = ipv4::HEADER_LEN + icmp_len;
            let frame = &mut self.probe_frame;
            frame.clear();
            frame.resize(ethernet::HEADER_LEN + ip_len, 0);
            ethernet::Repr {
                src_addr: MacAddr([0; 6]),
                dst_addr: MacAddr([0; 6]),
                ethertype: ethertype::IPV4,
            }
            .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut frame[..ethernet::HEADER_LEN]));
            let l3 = ethernet::HEADER_LEN;
            ipv4::Repr {
                src_addr: p.src,
                dst_addr: p.dst,
                protocol: ip_proto::ICMP,
                ttl: 64,
                tos: 0,
                ident: p.seq,
                dont_frag: false,
                payload_len: icmp_len as u16,
            }
            .emit(&mut frame[l3..l3 + ipv4::HEADER_LEN]);
            let msg = &mut frame[l3 + ipv4::HEADER_LEN..];
            // Recognisable data, as ping's: bytes counting up.
            for (i, b) in msg[icmpv4::HEADER_LEN..].iter_mut().enumerate() {
                *b = i as u8;
            }
            icmpv4::Repr::EchoRequest { ident: p.ident, seq: p.seq }.emit_header(msg);
            icmpv4::Packet::new_unchecked(&mut msg[..]).fill_checksum();
            self.counters.probes += 1;
            f(&self.probe_frame);
        }
        // Keep the allocation for the next probes.
        self.probes = probes;
    }

    /// A decrypted packet addressed to the gateway: a VPN monitor echo
    /// reply (one of our identifiers) is reported and consumed; anything
    /// else has nowhere to go.
    pub(super) fn addressed_to_self<F: Frame>(
        &mut self,
        f: &mut F,
        inner: core::ops::Range<usize>,
        via: (VpnId, TunnelId, SaId),
        out: &mut impl WorkerOutput,
    ) -> Action {
        let Ok(ip) = ipv4::Packet::new_checked(&f.buffer()[inner]) else {
            return Action::Drop(DropReason::InnerMalformed);
        };
        if ip.protocol() != ip_proto::ICMP || ip.is_fragment() {
            return Action::Drop(DropReason::TunnelToSelf);
        }
        let Ok(icmp) = icmpv4::Packet::new_checked(ip.payload()) else {
            return Action::Drop(DropReason::TunnelToSelf);
        };
        if !icmp.verify_checksum() {
            return Action::Drop(DropReason::TunnelToSelf);
        }
        let Ok(icmpv4::Repr::EchoReply { ident, seq }) = icmpv4::Repr::parse(&icmp) else {
            return Action::Drop(DropReason::TunnelToSelf);
        };
        if !self.probe_idents.contains(&Some(ident)) {
            return Action::Drop(DropReason::TunnelToSelf);
        }
        self.counters.probe_replies += 1;
        let (vpn, tunnel, sa) = via;
        out.event(WorkerEvent::ProbeReply {
            vpn,
            tunnel,
            sa,
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            ident,
            seq,
        });
        Action::Drop(DropReason::MonitorReply)
    }
}
