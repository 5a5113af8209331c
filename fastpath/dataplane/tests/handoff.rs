//! Hub and spoke across workers (#12): spoke A -> hub -> spoke B, where the
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

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use esprit_dataplane::lab::{self, Side};
use esprit_dataplane::{
    Action, DropReason, InboundInstall, Lifetime, NeighborTable, NextHop, OutboundInstall, PortId, PortInfo,
    Route, RouteTable, SaId, TunnelConf, TunnelId, Update, VecFrame, VecOutput, VpnConf, VpnId, Worker,
    WorkerConfig, WorkerId,
};
use esprit_esp::{InboundConfig, InboundSa, OutboundConfig, OutboundSa, Payload, Suite};
use esprit_policy::{ProxyId, ProxyIdTable};
use esprit_wire::ethernet::{self, ethertype, MacAddr};
use esprit_wire::{ip_proto, ipv4};

const WAN: PortId = PortId(1);
const SUITE: Suite = Suite::Aes128Gcm16;
const HUB: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
const HUB_MAC: MacAddr = MacAddr([2, 0, 0, 0, 3, 1]);
/// A -> hub and hub -> B.
const SPI_FROM_A: u32 = 0x1100;
const SPI_TO_B: u32 = 0x3200;

fn key(seed: u8) -> Vec<u8> {
    (0..SUITE.encr_key_len()).map(|k| seed ^ (k as u8).wrapping_mul(7)).collect()
}

fn pid(s: &str) -> ProxyId {
    s.parse().unwrap()
}

/// The hub's worker `me` of two: tunnel.1 to spoke A (VPN 1), tunnel.2 to
/// spoke B (VPN 2); worker 0 owns the SAs with A, worker 1 those with B.
fn hub_worker(me: u16) -> Worker {
    let mut w = Worker::new(WorkerConfig::new(WorkerId(me)));
    let mut out = VecOutput::default();
    w.apply(
        Update::Ports(vec![
            // PortId(0), the LAN: unused here.
            PortInfo { name: "lan0".into(), mac: MacAddr([2, 0, 0, 0, 3, 0]), mtu: 1500, addrs: vec![] },
            PortInfo { name: "wan0".into(), mac: HUB_MAC, mtu: 1500, addrs: vec![HUB] },
        ]),
        &mut out,
    );
    let routes = RouteTable::new([
        Route { prefix: Ipv4Addr::new(192, 0, 2, 0), len: 24, next_hop: NextHop::Connected { port: WAN } },
        Route { prefix: Ipv4Addr::new(10, 1, 0, 0), len: 16, next_hop: NextHop::Tunnel(TunnelId(1)) },
        Route { prefix: Ipv4Addr::new(10, 2, 0, 0), len: 16, next_hop: NextHop::Tunnel(TunnelId(2)) },
    ])
    .unwrap();
    w.apply(Update::Routes(Arc::new(routes)), &mut out);
    let mut n = NeighborTable::default();
    n.insert(WAN, Side::A.wan_addr(), Side::A.wan_mac());
    n.insert(WAN, Side::B.wan_addr(), Side::B.wan_mac());
    w.apply(Update::Neighbors(Arc::new(n)), &mut out);
    // Towards A: spoke A's subnet behind it, spoke B's "local" to the hub.
    let to_a = pid("local-ip 10.2.0.0/16 remote-ip 10.1.0.0/16 ANY");
    let to_b = pid("local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 ANY");
    for (t, p) in [(1, to_a), (2, to_b)] {
        w.apply(Update::Tunnel(TunnelConf { id: TunnelId(t), mtu: 1400, vpn: Some(VpnId(t)) }), &mut out);
        let table = ProxyIdTable::new(vec![p], true).unwrap();
        w.apply(Update::Vpn(VpnConf { id: VpnId(t), table: Arc::new(table) }), &mut out);
    }
    let owner_a = WorkerId(0);
    let owner_b = WorkerId(1);
    let mine = |owner: WorkerId| owner.0 == me;
    let in_a = InboundSa::new(&InboundConfig::new(SPI_FROM_A, SUITE), &key(0xa1), &[]).unwrap();
    w.apply(
        Update::Inbound(InboundInstall {
            id: SaId(1),
            spi: SPI_FROM_A,
            vpn: VpnId(1),
            tunnel: TunnelId(1),
            proxy_id: to_a,
            owner: owner_a,
            sa: mine(owner_a).then(|| Box::new(in_a)),
            life: Lifetime::default(),
        }),
        &mut out,
    );
    let oc = OutboundConfig::new(SPI_TO_B, SUITE, HUB, Side::B.wan_addr());
    let out_b = OutboundSa::new(&oc, &key(0xb2), &[], &[0x42; 16]).unwrap();
    w.apply(
        Update::Outbound(OutboundInstall {
            id: SaId(2),
            vpn: VpnId(2),
            proxy_id: to_b,
            owner: owner_b,
            sa: mine(owner_b).then(|| Box::new(out_b)),
            life: Lifetime::default(),
        }),
        &mut out,
    );
    w
}

/// What spoke A sends: `n` packets 10.1.1.10 -> 10.2.1.10 sealed with the
/// SA the hub's worker 0 opens, as Ethernet frames to the hub.
fn from_spoke_a(n: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let oc = OutboundConfig::new(SPI_FROM_A, SUITE, Side::A.wan_addr(), HUB);
    let mut sa = OutboundSa::new(&oc, &key(0xa1), &[], &[0x42; 16]).unwrap();
    let (mut wire, mut inner) = (Vec::new(), Vec::new());
    for i in 0..n {
        let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 60 + i);
        let ip = f[ethernet::HEADER_LEN..].to_vec();
        inner.push(ip.clone());
        let mut buf = vec![0u8; 2048];
        buf[256..256 + ip.len()].copy_from_slice(&ip);
        let enc = sa.encapsulate(&mut buf, 256..256 + ip.len()).unwrap();
        let at = enc.outer.start - ethernet::HEADER_LEN;
        ethernet::Repr { src_addr: Side::A.wan_mac(), dst_addr: HUB_MAC, ethertype: ethertype::IPV4 }
            .emit(&mut ethernet::Frame::new_unchecked(&mut buf[at..enc.outer.start]));
        wire.push(buf[at..enc.outer.end].to_vec());
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
    let mut hub = Hub { workers: [hub_worker(0), hub_worker(1)], inbox: vec![], sent: vec![], drops: vec![] };
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
    let mut b = InboundSa::new(&InboundConfig::new(SPI_TO_B, SUITE), &key(0xb2), &[]).unwrap();
    for (k, (frame, want)) in hub.sent.iter().zip(&inner).enumerate() {
        let ip = ipv4::Packet::new_checked(&frame[ethernet::HEADER_LEN..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr(), ip.protocol()), (HUB, Side::B.wan_addr(), ip_proto::ESP));
        let esp = esprit_wire::esp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((esp.spi(), esp.seq()), (SPI_TO_B, k as u32 + 1));
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
    let mut w = hub_worker(0);
    let oc = OutboundConfig::new(SPI_TO_B, SUITE, HUB, Side::B.wan_addr());
    let sa = OutboundSa::new(&oc, &key(0xb2), &[], &[0x42; 16]).unwrap();
    w.apply(
        Update::Outbound(OutboundInstall {
            id: SaId(3),
            vpn: VpnId(2),
            proxy_id: pid("local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 ANY"),
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
    let mut w = hub_worker(1);
    // An inner packet addressed to the hub itself: the decrypting worker
    // delivers those; handed off, it is dropped.
    let f = lab::lan_frame(Side::A, Side::A.host(1), HUB, 20);
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
