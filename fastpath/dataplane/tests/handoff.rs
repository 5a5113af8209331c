//! Hub and spoke across workers: spoke A -> hub -> spoke B, where the
//! hub's inbound SA from A belongs to worker 0 and its outbound SA to B to
//! worker 1. Worker 0 decrypts and hands the inner packet to worker 1,
//! which seals it for B. The hand-off is modelled as fastpathd does it: a
//! copy of the frame's bytes, taken through `process_burst` (a frame as
//! received) or `process_decrypted_burst` (an inner packet) by the
//! receiver.
//!
//! ```text
//!  spoke A 192.0.2.1          hub 192.0.2.3            spoke B 192.0.2.2
//!  10.1.0.0/16  ==ESP 0x1100==> [w0 decrypts]
//!                                 | hand-off (inner packet)
//!                               [w1 seals] ==ESP 0x3200==>  10.2.0.0/16
//! ```
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use esprit_dataplane::lab::{self, hub, Side, WAN};
use esprit_dataplane::{
    Action, DropReason, Lifetime, OutboundInstall, SaId, Update, VecFrame, VecOutput, VpnId, Worker, WorkerId,
};
use esprit_esp::{OutboundConfig, OutboundSa, Payload};
use esprit_wire::{ethernet, ip_proto, ipv4};

/// What spoke A sends: `n` packets 10.1.1.10 -> 10.2.1.10 sealed with the
/// SA the hub's worker 0 opens, as Ethernet frames to the hub; and the
/// inner packets.
fn from_spoke_a(n: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut sa = hub::spoke_sa(Side::A);
    let (mut wire, mut inner) = (Vec::new(), Vec::new());
    for i in 0..n {
        let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 60 + i);
        let ip = f[ethernet::HEADER_LEN..].to_vec();
        wire.push(hub::seal(&mut sa, Side::A, &ip));
        inner.push(ip);
    }
    (wire, inner)
}

/// The hub's two workers and the frames in flight between them.
struct Hub {
    workers: [Worker; 2],
    /// (to, bytes, decrypted), as fastpathd's hand-off inboxes carry them.
    inbox: Vec<(usize, Vec<u8>, bool)>,
    /// Frames sent on the WAN.
    sent: Vec<Vec<u8>>,
    drops: Vec<DropReason>,
}

impl Hub {
    fn burst(&mut self, w: usize, frames: &[Vec<u8>], decrypted: bool) {
        let mut fs: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(2048, 256, f)).collect();
        let mut actions = vec![Action::Held; fs.len()];
        let mut out = VecOutput::default();
        let worker = &mut self.workers[w];
        if decrypted {
            worker.process_decrypted_burst(Instant::now(), WAN, &mut fs, &mut actions, &mut out);
        } else {
            worker.process_burst(Instant::now(), WAN, &mut fs, &mut actions, &mut out);
        }
        for (f, a) in fs.iter().zip(&actions) {
            match *a {
                Action::Tx(p) => {
                    assert_eq!(p, WAN);
                    self.sent.push(f.packet().to_vec());
                }
                Action::HandOff(to) => self.inbox.push((usize::from(to.0), f.packet().to_vec(), false)),
                Action::HandOffDecrypted(to) => {
                    self.inbox.push((usize::from(to.0), f.packet().to_vec(), true))
                }
                Action::Drop(r) => self.drops.push(r),
                Action::Held | Action::Fragment => panic!("nothing should wait"),
            }
        }
    }

    /// Delivers the hand-offs, in bursts per receiver and kind, until none
    /// is left (bounded: a frame is never handed on more than twice).
    fn settle(&mut self) {
        for _ in 0..4 {
            if self.inbox.is_empty() {
                return;
            }
            let inbox = core::mem::take(&mut self.inbox);
            for to in 0..2 {
                for kind in [false, true] {
                    let run: Vec<Vec<u8>> = inbox
                        .iter()
                        .filter(|(t, _, d)| *t == to && *d == kind)
                        .map(|(_, b, _)| b.clone())
                        .collect();
                    if !run.is_empty() {
                        self.burst(to, &run, kind);
                    }
                }
            }
        }
        panic!("hand-offs did not settle");
    }
}

#[test]
fn spoke_to_spoke_across_two_workers_is_sealed_for_the_other_spoke() {
    let mut hub =
        Hub { workers: [hub::worker(0), hub::worker(1)], inbox: vec![], sent: vec![], drops: vec![] };
    let (wire, inner) = from_spoke_a(8);
    // Received on worker 1's queue: the ESP goes to worker 0 (the SA's
    // owner) as received, is decrypted there, and comes back to worker 1
    // (the owner of the SA to B) as the inner packet.
    hub.burst(1, &wire, false);
    assert_eq!(hub.inbox.len(), 8);
    assert!(hub.inbox.iter().all(|(to, _, d)| *to == 0 && !*d));
    hub.settle();
    assert_eq!(hub.drops, vec![]);
    assert_eq!(hub.sent.len(), 8);
    assert_eq!(hub.workers[0].counters().decrypted, 8);
    assert_eq!(hub.workers[1].counters().encrypted, 8);
    assert_eq!(hub.workers[0].counters().handed_off, 8, "to worker 1, as inner packets");
    assert_eq!(hub.workers[1].counters().handed_off, 8, "to worker 0, as received");

    // Spoke B opens them: the inner packets as A sent them, TTL one less,
    // on SPI 0x3200 from the hub, sequence numbers 1..=8 in order.
    let mut b = hub::spoke_inbound(Side::B);
    for (k, (frame, want)) in hub.sent.iter().zip(&inner).enumerate() {
        let ip = ipv4::Packet::new_checked(&frame[ethernet::HEADER_LEN..]).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.protocol()),
            (hub::ADDR, Side::B.wan_addr(), ip_proto::ESP)
        );
        let esp = esprit_wire::esp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((esp.spi(), esp.seq()), (hub::SPI_TO_B, k as u32 + 1));
        let mut buf = frame.clone();
        let start = ethernet::HEADER_LEN + ip.header_len();
        let end = ethernet::HEADER_LEN + usize::from(ip.total_len());
        let dec = b.decapsulate(&mut buf, start..end).unwrap();
        let Payload::Ipv4(r) = dec.payload else { panic!("not IPv4") };
        let got = &buf[r];
        let mut want = want.clone();
        let mut p = ipv4::Packet::new_checked(&mut want[..]).unwrap();
        p.decrement_ttl();
        assert_eq!(got, &want[..], "packet {k}");
    }
}

#[test]
fn decrypted_on_the_owner_of_both_sas_needs_no_hand_off() {
    // The single-worker path for comparison: worker 0 owning both.
    let mut w = hub::worker(0);
    let oc = OutboundConfig::new(hub::SPI_TO_B, hub::SUITE, hub::ADDR, Side::B.wan_addr());
    let sa = OutboundSa::new(&oc, &hub::key(hub::SPI_TO_B), &[], &[0x42; 16]).unwrap();
    w.apply(
        Update::Outbound(OutboundInstall {
            id: SaId(3),
            vpn: VpnId(2),
            proxy_id: hub::proxy_id(false),
            owner: WorkerId(0),
            sa: Some(Box::new(sa)),
            life: Lifetime::default(),
        }),
        &mut VecOutput::default(),
    );
    let (wire, _) = from_spoke_a(3);
    let mut fs: Vec<VecFrame> = wire.iter().map(|f| VecFrame::new(2048, 256, f)).collect();
    let mut actions = vec![Action::Held; 3];
    w.process_burst(Instant::now(), WAN, &mut fs, &mut actions, &mut VecOutput::default());
    assert_eq!(actions, vec![Action::Tx(WAN); 3]);
}

#[test]
fn an_inner_packet_to_the_gateway_or_from_nowhere_is_dropped_not_opened() {
    let mut w = hub::worker(1);
    // An inner packet addressed to the hub itself: the decrypting worker
    // delivers those; handed off, it is dropped.
    let f = lab::lan_frame(Side::A, Side::A.host(1), hub::ADDR, 20);
    let mut fs = vec![VecFrame::new(2048, 256, &f)];
    let mut actions = vec![Action::Held];
    w.process_decrypted_burst(Instant::now(), WAN, &mut fs, &mut actions, &mut VecOutput::default());
    assert_eq!(actions, vec![Action::Drop(DropReason::TunnelToSelf)]);
    // Garbage behind the Ethernet header.
    let mut g = f.clone();
    g[14] = 0x99;
    let mut fs = vec![VecFrame::new(2048, 256, &g), VecFrame::new(2048, 256, &g[..10])];
    let mut actions = vec![Action::Held; 2];
    w.process_decrypted_burst(Instant::now(), WAN, &mut fs, &mut actions, &mut VecOutput::default());
    assert_eq!(actions, vec![Action::Drop(DropReason::Ipv4Malformed), Action::Drop(DropReason::NotIp)]);
}
