//! The pipeline end to end in memory: two lab gateways (the seed's
//! topology) pass frames to each other through their bursts.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_dataplane::lab::{self, LabOptions, Side, LAN, TUNNEL, VPN, WAN};
use esprit_dataplane::{
    Action, DropReason, Lifetime, OutboundInstall, Probe, SaId, Update, VecFrame, VecOutput, Worker,
    WorkerEvent, WorkerId,
};
use esprit_esp::Suite;
use esprit_wire::ethernet::{self, ethertype};
use esprit_wire::{esp, icmpv4, ip_proto, ipv4, udp};

fn run(
    w: &mut Worker,
    port: esprit_dataplane::PortId,
    frames: Vec<Vec<u8>>,
) -> (Vec<VecFrame>, Vec<Action>, VecOutput) {
    let mut fs: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(2048, 256, f)).collect();
    let mut actions = vec![Action::Held; fs.len()];
    let mut out = VecOutput::default();
    w.process_burst(Instant::now(), port, &mut fs, &mut actions, &mut out);
    (fs, actions, out)
}

/// SPI of an ESP frame as sent on the WAN (ESP or ESP-in-UDP).
fn wire_spi(frame: &[u8]) -> u32 {
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    match ip.protocol() {
        ip_proto::ESP => esp::Packet::new_checked(ip.payload()).unwrap().spi(),
        ip_proto::UDP => {
            let u = udp::Packet::new_checked(ip.payload()).unwrap();
            assert_eq!((u.src_port(), u.dst_port()), (4500, 4500));
            esp::Packet::new_checked(u.payload()).unwrap().spi()
        }
        p => panic!("not ESP: protocol {p}"),
    }
}

fn pairs() -> Vec<(u8, u8)> {
    vec![(1, 1), (1, 2), (2, 1), (2, 2)]
}

#[test]
fn each_subnet_pair_crosses_on_its_own_sa_for_every_suite() {
    for suite in Suite::ALL {
        for udp_encap in [false, true] {
            let opts = LabOptions { suite, udp_encap, ..Default::default() };
            let mut a = lab::gateway(Side::A, &opts);
            let mut b = lab::gateway(Side::B, &opts);
            // One burst with all four pairs: classification is batched.
            let originals: Vec<Vec<u8>> = pairs()
                .iter()
                .map(|&(l, r)| lab::lan_frame(Side::A, Side::A.host(l), Side::B.host(r), 100))
                .collect();
            let (fs, actions, _) = run(&mut a, LAN, originals.clone());
            assert!(actions.iter().all(|a| *a == Action::Tx(WAN)), "{suite} udp={udp_encap}: {actions:?}");
            let spis: Vec<u32> = fs.iter().map(|f| wire_spi(f.packet())).collect();
            assert_eq!(spis, (0..4).map(|i| lab::spi(Side::A, i)).collect::<Vec<_>>(), "{suite}");
            for f in &fs {
                let e = ethernet::EthernetFrame::new_checked(f.packet()).unwrap();
                assert_eq!((e.src_addr(), e.dst_addr()), (Side::A.wan_mac(), Side::B.wan_mac()));
            }
            let wan: Vec<Vec<u8>> = fs.iter().map(|f| f.packet().to_vec()).collect();
            let (fs, actions, _) = run(&mut b, WAN, wan);
            assert!(actions.iter().all(|a| *a == Action::Tx(LAN)), "{suite} udp={udp_encap}: {actions:?}");
            for (f, orig) in fs.iter().zip(&originals) {
                let got = f.packet();
                let e = ethernet::EthernetFrame::new_checked(got).unwrap();
                assert_eq!(
                    e.dst_addr(),
                    Side::B.host_mac(ipv4::Packet::new_checked(&got[14..]).unwrap().dst_addr().octets()[2])
                );
                // The inner packet is the original, two routers further
                // (TTL 64 -> 62, checksum patched).
                let mut want = orig[14..].to_vec();
                let mut p = ipv4::Packet::new_checked(&mut want[..]).unwrap();
                p.decrement_ttl();
                p.decrement_ttl();
                assert_eq!(&got[14..], &want[..], "{suite} udp={udp_encap}");
            }
            assert_eq!(a.counters().encrypted, 4);
            assert_eq!(b.counters().decrypted, 4);
            assert_eq!(a.drops().total() + b.drops().total(), 0);
        }
    }
}

#[test]
fn runs_of_one_flow_or_one_destination_keep_their_own_sa() {
    // Runs of one flow, runs of one destination from different sources
    // (proxy-IDs 0 and 2 share 10.2.1.0/24), a TTL-expiring packet and one
    // matching no proxy-ID inside a run to the same destination: each
    // gets what it would get alone.
    let opts = LabOptions::default();
    let mut a = lab::gateway(Side::A, &opts);
    let frame = |l: u8, r: u8| lab::lan_frame(Side::A, Side::A.host(l), Side::B.host(r), 40);
    let mut ttl_one = frame(1, 1);
    {
        let mut p = ipv4::Packet::new_checked(&mut ttl_one[14..]).unwrap();
        p.set_ttl(1);
        p.fill_checksum();
    }
    let stranger = lab::lan_frame(Side::A, "10.1.9.9".parse().unwrap(), Side::B.host(1), 40);
    let burst =
        vec![frame(1, 1), frame(1, 1), frame(2, 1), ttl_one, frame(2, 1), stranger, frame(1, 1), frame(1, 2)];
    let alone: Vec<Action> = burst.iter().map(|f| run(&mut a, LAN, vec![f.clone()]).1[0]).collect();
    assert_eq!(alone[3], Action::Tx(LAN), "TTL 1: time exceeded back to the LAN");
    assert_eq!(alone[5], Action::Drop(DropReason::ProxyIdMismatch));
    let (fs, actions, _) = run(&mut a, LAN, burst);
    assert_eq!(actions, alone);
    let spis: Vec<Option<u32>> =
        fs.iter().zip(&actions).map(|(f, a)| (*a == Action::Tx(WAN)).then(|| wire_spi(f.packet()))).collect();
    let sa = |i| Some(lab::spi(Side::A, i));
    assert_eq!(spis, vec![sa(0), sa(0), sa(2), None, sa(2), None, sa(0), sa(1)]);
}

#[test]
fn unmatched_traffic_into_the_tunnel_is_dropped_and_counted() {
    let mut a = lab::gateway(Side::A, &LabOptions::default());
    // 10.2.3.0/24 is routed into tunnel.1 but no proxy-ID covers it.
    let f = lab::lan_frame(Side::A, Side::A.host(1), "10.2.3.10".parse().unwrap(), 10);
    let (_, actions, out) = run(&mut a, LAN, vec![f]);
    assert_eq!(actions, vec![Action::Drop(DropReason::ProxyIdMismatch)]);
    assert_eq!(a.drops().get(DropReason::ProxyIdMismatch), 1);
    assert!(out.events.is_empty());
}

#[test]
fn a_null_route_drops_and_counts() {
    use esprit_dataplane::{NextHop, Route, RouteTable};
    let mut a = lab::gateway(Side::A, &LabOptions::default());
    // 10.2.2.0/24's tunnel route withdrawn, the null route behind it.
    let routes = RouteTable::new([
        Route { prefix: "10.2.2.0".parse().unwrap(), len: 24, next_hop: NextHop::Null },
        Route { prefix: "0.0.0.0".parse().unwrap(), len: 0, next_hop: NextHop::Connected { port: WAN } },
    ])
    .unwrap();
    a.apply(Update::Routes(Arc::new(routes)), &mut VecOutput::default());
    let f = lab::lan_frame(Side::A, Side::A.host(1), "10.2.2.10".parse().unwrap(), 10);
    let (_, actions, out) = run(&mut a, LAN, vec![f]);
    assert_eq!(actions, vec![Action::Drop(DropReason::NullRoute)]);
    assert_eq!(a.drops().get(DropReason::NullRoute), 1);
    assert!(out.events.is_empty(), "no acquire, nothing sent");
}

/// `lan`'s IPv4 packet sealed by A on its SA of proxy-ID `i`, whatever A's
/// classifier would say: the Ethernet frame B receives.
fn sealed_by_a_on(i: usize, opts: &LabOptions, lan: &[u8]) -> Vec<u8> {
    let (mut sa, _) = lab::sa_pair(Side::A, i, opts);
    let mut buf = vec![0u8; 2048];
    buf[256..256 + lan.len() - 14].copy_from_slice(&lan[14..]);
    let enc = sa.encapsulate(&mut buf, 256..256 + lan.len() - 14).unwrap();
    let mut frame = vec![0u8; 14];
    ethernet::Repr { src_addr: Side::A.wan_mac(), dst_addr: Side::B.wan_mac(), ethertype: ethertype::IPV4 }
        .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut frame[..]));
    frame.extend_from_slice(&buf[enc.outer]);
    frame
}

/// The inner IPv4 packet of `frame` as it should leave the far gateway:
/// `orig`'s, two routers further (TTL - 2, checksum patched).
fn two_hops_later(orig: &[u8]) -> Vec<u8> {
    let mut want = orig[14..].to_vec();
    let mut p = ipv4::Packet::new_checked(&mut want[..]).unwrap();
    p.decrement_ttl();
    p.decrement_ttl();
    want
}

/// The inbound SA stats of a worker: (SPI, window, ESN, admits any).
fn inbound_sas(w: &Worker) -> Vec<(u32, u32, bool, bool)> {
    let mut v: Vec<_> = w
        .stats(0)
        .sas
        .iter()
        .filter(|s| !s.outbound)
        .map(|s| (s.spi, s.replay_window, s.esn, s.admits_any))
        .collect();
    v.sort_unstable();
    v
}

/// ScreenOS: with `proxy-id check` off and a single proxy-ID, all traffic
/// routed into the tunnel uses that proxy-ID's SA, and the replies come
/// back through the peer's SA of it, whatever their addresses.
#[test]
fn check_off_with_one_proxy_id_carries_everything_both_ways() {
    // The one proxy-ID: 10.1.1.0/24 <-> 10.2.1.0/24; the traffic is
    // 10.1.2.10 <-> 10.2.2.10, outside it at both ends.
    let opts = LabOptions { check: false, single: Some(0), ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let mut b = lab::gateway(Side::B, &opts);
    let there = lab::lan_frame(Side::A, Side::A.host(2), Side::B.host(2), 30);
    let (fs, actions, _) = run(&mut a, LAN, vec![there.clone()]);
    assert_eq!(actions, vec![Action::Tx(WAN)]);
    assert_eq!(wire_spi(fs[0].packet()), lab::spi(Side::A, 0));
    let (fs, actions, _) = run(&mut b, WAN, vec![fs[0].packet().to_vec()]);
    assert_eq!(actions, vec![Action::Tx(LAN)]);
    assert_eq!(&fs[0].packet()[14..], &two_hops_later(&there)[..]);

    let back = lab::lan_frame(Side::B, Side::B.host(2), Side::A.host(2), 30);
    let (fs, actions, _) = run(&mut b, LAN, vec![back.clone()]);
    assert_eq!(actions, vec![Action::Tx(WAN)]);
    assert_eq!(wire_spi(fs[0].packet()), lab::spi(Side::B, 0));
    let (fs, actions, _) = run(&mut a, WAN, vec![fs[0].packet().to_vec()]);
    assert_eq!(actions, vec![Action::Tx(LAN)]);
    assert_eq!(&fs[0].packet()[14..], &two_hops_later(&back)[..]);
    let e = ethernet::EthernetFrame::new_checked(fs[0].packet()).unwrap();
    assert_eq!(e.dst_addr(), Side::A.host_mac(2));
    assert_eq!(a.drops().total() + b.drops().total(), 0);
    assert_eq!((a.counters().encrypted, a.counters().decrypted), (1, 1));
    assert_eq!(inbound_sas(&b), [(lab::spi(Side::A, 0), 64, false, true)]);

    // The operator turns `proxy-id check` on at B: its SA is strict from
    // the next packet on (A still sends everything on the one SA).
    let pid = lab::seed_proxy_ids(Side::B)[0];
    let strict = esprit_policy::ProxyIdTable::new(vec![pid], true).unwrap();
    b.apply(
        Update::Vpn(esprit_dataplane::VpnConf { id: VPN, table: Arc::new(strict) }),
        &mut VecOutput::default(),
    );
    assert_eq!(inbound_sas(&b), [(lab::spi(Side::A, 0), 64, false, false)]);
    let inside = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 30);
    let (fs, actions, _) = run(&mut a, LAN, vec![there, inside]);
    assert_eq!(actions, vec![Action::Tx(WAN), Action::Tx(WAN)]);
    let (_, actions, _) = run(&mut b, WAN, fs.iter().map(|f| f.packet().to_vec()).collect());
    assert_eq!(actions, vec![Action::Drop(DropReason::InboundPolicy), Action::Tx(LAN)]);
}

/// With `proxy-id check` on, one proxy-ID is enforced both ways.
#[test]
fn check_on_with_one_proxy_id_enforces_it_both_ways() {
    let opts = LabOptions { check: true, single: Some(0), ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let mut b = lab::gateway(Side::B, &opts);
    let outside = lab::lan_frame(Side::A, Side::A.host(2), Side::B.host(2), 30);
    let (_, actions, _) = run(&mut a, LAN, vec![outside.clone()]);
    assert_eq!(actions, vec![Action::Drop(DropReason::ProxyIdMismatch)]);
    // The same packet sealed on the SA anyway (a peer without the check):
    // B refuses it after decryption.
    let frame = sealed_by_a_on(0, &opts, &outside);
    let (_, actions, _) = run(&mut b, WAN, vec![frame]);
    assert_eq!(actions, vec![Action::Drop(DropReason::InboundPolicy)]);
    assert_eq!(inbound_sas(&b), [(lab::spi(Side::A, 0), 64, false, false)]);
}

/// RFC 4303 §3.4.3: with a window of N and N + 1 packets sent, the last
/// one first, the N - 1 before it are accepted late and the first (N
/// below the highest) is too old.
#[test]
fn a_window_of_n_accepts_n_minus_1_late_packets_and_refuses_the_nth() {
    for n in [32u32, 1024, 4096] {
        let opts = LabOptions { replay_window: n, single: Some(0), ..Default::default() };
        let mut a = lab::gateway(Side::A, &opts);
        let mut b = lab::gateway(Side::B, &opts);
        let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 8);
        let mut sealed: Vec<Vec<u8>> = Vec::new();
        for _ in 0..(n + 1).div_ceil(64) {
            let k = (n as usize + 1 - sealed.len()).min(64);
            let (fs, actions, _) = run(&mut a, LAN, vec![f.clone(); k]);
            assert!(actions.iter().all(|x| *x == Action::Tx(WAN)));
            sealed.extend(fs.iter().map(|x| x.packet().to_vec()));
        }
        assert_eq!(sealed.len(), n as usize + 1);
        // Sequence numbers 1..=N+1: N+1 first, then N down to 2, then 1.
        let last = sealed.pop().unwrap();
        let first = sealed.remove(0);
        assert_eq!(run(&mut b, WAN, vec![last]).1, vec![Action::Tx(LAN)]);
        sealed.reverse();
        let mut late = 0;
        for chunk in sealed.chunks(64) {
            let (_, actions, _) = run(&mut b, WAN, chunk.to_vec());
            late += actions.iter().filter(|x| **x == Action::Tx(LAN)).count();
        }
        assert_eq!(late, n as usize - 1, "window {n}");
        assert_eq!(
            run(&mut b, WAN, vec![first]).1,
            vec![Action::Drop(DropReason::ReplayTooOld)],
            "window {n}"
        );
        assert_eq!(b.drops().total(), 1);
        assert_eq!(inbound_sas(&b), [(lab::spi(Side::A, 0), n, false, false)]);
    }
}

/// ESN (RFC 4303 §2.2.1, Appendix A2): an SA whose sequence numbers cross
/// 2^32 keeps carrying traffic both ways; the same SA without ESN stops at
/// 2^32 - 1 (RFC 4303 §3.3.3) and must be rekeyed.
#[test]
fn esn_sequence_numbers_cross_2_to_the_32() {
    let start = (1u64 << 32) - 3;
    let opts = LabOptions { esn: true, last_seq: start, single: Some(0), ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let mut b = lab::gateway(Side::B, &opts);
    for src in [Side::A, Side::B] {
        let dst = src.peer();
        let (from, to) = if src == Side::A { (&mut a, &mut b) } else { (&mut b, &mut a) };
        // One packet at a time, so each is decrypted knowing the last.
        for k in 1..=6u64 {
            let f = lab::lan_frame(src, src.host(1), dst.host(1), 20);
            let (fs, actions, _) = run(from, LAN, vec![f.clone()]);
            assert_eq!(actions, vec![Action::Tx(WAN)], "{src:?} packet {k}");
            let (fs, actions, _) = run(to, WAN, vec![fs[0].packet().to_vec()]);
            assert_eq!(actions, vec![Action::Tx(LAN)], "{src:?} packet {k}");
            assert_eq!(&fs[0].packet()[14..], &two_hops_later(&f)[..]);
        }
    }
    for w in [&a, &b] {
        let st = w.stats(0);
        let seqs: Vec<(bool, u64, bool)> = st.sas.iter().map(|s| (s.outbound, s.seq, s.esn)).collect();
        assert!(
            seqs.contains(&(true, start + 6, true)) && seqs.contains(&(false, start + 6, true)),
            "{seqs:?}"
        );
        assert_eq!(w.drops().total(), 0);
    }

    let opts = LabOptions { esn: false, ..opts };
    let mut a = lab::gateway(Side::A, &opts);
    let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 20);
    let (_, actions, _) = run(&mut a, LAN, vec![f; 3]);
    assert_eq!(actions, vec![Action::Tx(WAN), Action::Tx(WAN), Action::Drop(DropReason::SeqExhausted)]);
}

#[test]
fn decrypted_packet_outside_its_proxy_id_is_dropped() {
    let opts = LabOptions::default();
    let mut b = lab::gateway(Side::B, &opts);
    // A packet of pair (1,1) sealed on the SA of pair (1,2): B's SA for
    // 10.1.1.0/24 <-> 10.2.2.0/24 must refuse 10.1.1.10 -> 10.2.1.10.
    let orig = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 20);
    let frame = sealed_by_a_on(1, &opts, &orig);
    let (_, actions, _) = run(&mut b, WAN, vec![frame]);
    assert_eq!(actions, vec![Action::Drop(DropReason::InboundPolicy)]);
    assert_eq!(b.drops().get(DropReason::InboundPolicy), 1);
}

#[test]
fn replayed_tampered_and_unknown_esp_are_dropped() {
    let opts = LabOptions::default();
    let mut a = lab::gateway(Side::A, &opts);
    let mut b = lab::gateway(Side::B, &opts);
    let (fs, _, _) = run(&mut a, LAN, vec![lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 50)]);
    let wire = fs[0].packet().to_vec();
    let mut tampered = wire.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let mut unknown = wire.clone();
    unknown[34..38].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    let (_, actions, _) = run(&mut b, WAN, vec![tampered, wire.clone(), wire, unknown]);
    assert_eq!(
        actions,
        vec![
            Action::Drop(DropReason::IcvMismatch),
            Action::Tx(LAN),
            Action::Drop(DropReason::ReplayDuplicate),
            Action::Drop(DropReason::EspUnknownSpi),
        ]
    );
}

/// A proxy-ID still waiting for its SA is acquired again after 500 ms,
/// then after waits that double up to 8 s: a lost acquire is answered
/// within seconds, and thousands of proxy-IDs waiting their turn in IKE do
/// not flood the control plane.
#[test]
fn repeated_acquires_back_off_to_eight_seconds() {
    let opts = LabOptions { installed: vec![0, 1, 2], ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let frame = lab::lan_frame(Side::A, Side::A.host(2), Side::B.host(2), 30);
    let t0 = Instant::now();
    let mut at = Vec::new();
    // A packet every 100 ms for 40 s.
    for tenth in 0..400u64 {
        let now = t0 + Duration::from_millis(tenth * 100);
        let mut fs = vec![VecFrame::new(2048, 256, &frame)];
        let mut actions = vec![Action::Held];
        let mut out = VecOutput::default();
        a.process_burst(now, LAN, &mut fs, &mut actions, &mut out);
        if out.events.iter().any(|e| matches!(e, WorkerEvent::Acquire { .. })) {
            at.push(tenth * 100);
        }
    }
    // 0, +0.5, +1, +2, +4, then every 8 s.
    assert_eq!(at, vec![0, 500, 1500, 3500, 7500, 15500, 23500, 31500, 39500]);
    assert_eq!(esprit_dataplane::ACQUIRE_BACKOFF_MAX_SHIFT, 4);
}

#[test]
fn acquire_hold_and_release_when_the_sa_arrives() {
    let opts = LabOptions { installed: vec![0, 1, 2], ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let first = lab::lan_frame(Side::A, Side::A.host(2), Side::B.host(2), 30);
    let (_, actions, out) = run(&mut a, LAN, vec![first.clone(), first.clone()]);
    assert_eq!(actions, vec![Action::Held, Action::Held]);
    // One acquire, rate-limited for the second packet.
    let acquires: Vec<&WorkerEvent> =
        out.events.iter().filter(|e| matches!(e, WorkerEvent::Acquire { .. })).collect();
    assert_eq!(acquires.len(), 1);
    let WorkerEvent::Acquire { vpn, tunnel, proxy_id, .. } = acquires[0] else { unreachable!() };
    assert_eq!((*vpn, *tunnel), (VPN, TUNNEL));
    assert_eq!(proxy_id.to_string(), "local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 ANY");
    assert_eq!(a.held(), 2);

    // The control plane negotiated the SA and installs it.
    let (sa, _) = lab::sa_pair(Side::A, 3, &opts);
    let mut sink = VecOutput::default();
    a.apply(
        Update::Outbound(OutboundInstall {
            id: SaId(99),
            vpn: VPN,
            proxy_id: *proxy_id,
            owner: WorkerId(0),
            sa: Some(Box::new(sa)),
            life: Lifetime::default(),
        }),
        &mut sink,
    );
    assert!(a.has_released());
    let mut released = Vec::new();
    a.drain_released(|f, decrypted| {
        assert!(!decrypted);
        released.push(f.to_vec())
    });
    assert_eq!(released, vec![first.clone(), first]);
    let (fs, actions, _) = run(&mut a, LAN, released);
    assert_eq!(actions, vec![Action::Tx(WAN), Action::Tx(WAN)]);
    assert!(fs.iter().all(|f| wire_spi(f.packet()) == lab::spi(Side::A, 3)));
    assert_eq!(a.held(), 0);
}

#[test]
fn hold_queue_overflow_and_timeout_are_counted() {
    let opts = LabOptions { installed: vec![], ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 30);
    let (_, actions, _) = run(&mut a, LAN, vec![f; 6]);
    assert_eq!(actions.iter().filter(|a| **a == Action::Held).count(), 4);
    assert_eq!(a.drops().get(DropReason::HoldQueueFull), 2);
    a.tick(Instant::now() + Duration::from_secs(10), &mut VecOutput::default());
    assert_eq!(a.held(), 0);
    assert_eq!(a.counters().hold_expired, 4);
}

#[test]
fn sa_owned_by_another_worker_is_handed_off() {
    let opts = LabOptions { installed: vec![], ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let (sa, _) = lab::sa_pair(Side::A, 0, &opts);
    let mut sink = VecOutput::default();
    a.apply(
        Update::Outbound(OutboundInstall {
            id: SaId(7),
            vpn: VPN,
            proxy_id: lab::seed_proxy_ids(Side::A)[0],
            owner: WorkerId(1),
            sa: Some(Box::new(sa)),
            life: Lifetime::default(),
        }),
        &mut sink,
    );
    // The context went back to be dropped: this worker is not the owner.
    assert_eq!(sink.retired.len(), 1);
    let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 30);
    let (fs, actions, _) = run(&mut a, LAN, vec![f.clone()]);
    assert_eq!(actions, vec![Action::HandOff(WorkerId(1))]);
    assert_eq!(fs[0].packet(), &f[..], "handed off unchanged");
}

#[test]
fn too_big_with_df_gets_icmp_fragmentation_needed() {
    let opts = LabOptions { tunnel_mtu: 1400, ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 1401 - 28);
    let (fs, actions, _) = run(&mut a, LAN, vec![f]);
    assert_eq!(actions, vec![Action::Tx(LAN)]);
    let p = fs[0].packet();
    let ip = ipv4::Packet::new_checked(&p[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), ("10.1.1.1".parse().unwrap(), Side::A.host(1)));
    let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(icmpv4::Repr::parse(&icmp).unwrap(), icmpv4::Repr::FragNeeded { next_hop_mtu: 1400 });
    assert_eq!(a.drops().get(DropReason::TooBigDf), 1);
    // A packet of exactly the tunnel MTU goes through.
    let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 1400 - 28);
    let (_, actions, _) = run(&mut a, LAN, vec![f]);
    assert_eq!(actions, vec![Action::Tx(WAN)]);
}

#[test]
fn ttl_one_gets_time_exceeded() {
    let mut a = lab::gateway(Side::A, &LabOptions::default());
    let mut f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 10);
    let mut ip = ipv4::Packet::new_checked(&mut f[14..]).unwrap();
    ip.set_ttl(1);
    ip.fill_checksum();
    let (fs, actions, _) = run(&mut a, LAN, vec![f]);
    assert_eq!(actions, vec![Action::Tx(LAN)]);
    let ip = ipv4::Packet::new_checked(&fs[0].packet()[14..]).unwrap();
    let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(icmpv4::Repr::parse(&icmp).unwrap(), icmpv4::Repr::TimeExceeded);
    assert_eq!(a.drops().get(DropReason::TtlExceeded), 1);
}

#[test]
fn missing_neighbor_asks_the_control_plane_once_and_holds_the_packets() {
    let mut a = lab::gateway(Side::A, &LabOptions::default());
    let mut sink = VecOutput::default();
    a.apply(Update::Neighbors(Arc::new(Default::default())), &mut sink);
    let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 10);
    let six = vec![f.clone(); 6];
    let (_, actions, out) = run(&mut a, LAN, six);
    // A few per next hop wait for its MAC address (as the kernel's ARP
    // queue does); beyond that they are dropped and counted.
    let mut want = vec![Action::Held; 4];
    want.extend([Action::Drop(DropReason::NoNeighbor); 2]);
    assert_eq!(actions, want);
    let misses: Vec<_> =
        out.events.iter().filter(|e| matches!(e, WorkerEvent::NeighborMiss { .. })).collect();
    assert_eq!(misses, vec![&WorkerEvent::NeighborMiss { port: WAN, addr: Side::B.wan_addr() }]);
    // No sequence number was spent on them.
    assert_eq!(a.stats(0).sas.iter().filter(|s| s.outbound).map(|s| s.seq).sum::<u64>(), 0);
    assert!(!a.has_released());

    // The neighbour is learnt: the held packets go through the pipeline
    // again, are encrypted on their SA, in order, and leave on the WAN.
    let mut n = esprit_dataplane::NeighborTable::default();
    n.insert(WAN, Side::B.wan_addr(), Side::B.wan_mac());
    a.apply(Update::Neighbors(Arc::new(n)), &mut sink);
    assert!(a.has_released());
    let mut again = Vec::new();
    a.drain_released(|b, decrypted| {
        assert!(!decrypted, "a LAN packet is released as one");
        again.push(b.to_vec())
    });
    assert_eq!(again, vec![f; 4], "the frames as they were held");
    let (out_frames, actions, _) = run(&mut a, LAN, again);
    assert_eq!(actions, vec![Action::Tx(WAN); 4]);
    let spi = wire_spi(out_frames[0].packet());
    assert!(out_frames.iter().all(|fr| wire_spi(fr.packet()) == spi), "one SA");
    let seqs: Vec<u32> = out_frames
        .iter()
        .map(|fr| {
            let ip = ipv4::Packet::new_checked(&fr.packet()[14..]).unwrap();
            assert_eq!(ip.protocol(), ip_proto::ESP, "the lab's SAs are plain ESP");
            esp::Packet::new_checked(ip.payload()).unwrap().seq()
        })
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
}

/// A decrypted packet whose LAN host's MAC address is not known yet waits
/// for the neighbour table too, held as a plain LAN frame (without the
/// outer headers it arrived in), and reaches the host once it is learnt:
/// the same bytes as when the host was known from the start.
#[test]
fn decrypted_packet_waits_for_its_lan_neighbor() {
    for udp_encap in [false, true] {
        let opts = LabOptions { udp_encap, ..Default::default() };
        let mut a = lab::gateway(Side::A, &opts);
        let mut b = lab::gateway(Side::B, &opts);
        let mut known = lab::gateway(Side::B, &opts);
        let orig = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 100);
        let (fs, _, _) = run(&mut a, LAN, vec![orig.clone(), orig]);
        let wan: Vec<Vec<u8>> = fs.iter().map(|f| f.packet().to_vec()).collect();
        let (want, actions, _) = run(&mut known, WAN, vec![wan[0].clone()]);
        assert_eq!(actions, vec![Action::Tx(LAN)]);

        // B knows its WAN peer but not the LAN host yet.
        let mut n = esprit_dataplane::NeighborTable::default();
        n.insert(WAN, Side::A.wan_addr(), Side::A.wan_mac());
        let mut sink = VecOutput::default();
        b.apply(Update::Neighbors(Arc::new(n.clone())), &mut sink);
        let (_, actions, _) = run(&mut b, WAN, vec![wan[0].clone()]);
        assert_eq!(actions, vec![Action::Held], "udp={udp_encap}");
        n.insert(LAN, Side::B.host(1), Side::B.host_mac(1));
        b.apply(Update::Neighbors(Arc::new(n)), &mut sink);
        let mut again = Vec::new();
        b.drain_released(|f, decrypted| {
            assert!(decrypted, "held as an inner packet");
            again.push(f.to_vec())
        });
        assert_eq!(again.len(), 1);
        // As a clear packet from the LAN its source (behind the tunnel)
        // would be a spoof; as the decrypted packet it is, it goes.
        let (_, actions, _) = run(&mut b, LAN, again.clone());
        assert_eq!(actions, vec![Action::Drop(DropReason::SpoofedSource)]);
        let mut fs: Vec<VecFrame> = again.iter().map(|f| VecFrame::new(2048, 256, f)).collect();
        let mut actions = vec![Action::Held; 1];
        b.process_decrypted_burst(Instant::now(), WAN, &mut fs, &mut actions, &mut VecOutput::default());
        let got = fs;
        assert_eq!(actions, vec![Action::Tx(LAN)], "udp={udp_encap}");
        assert_eq!(got[0].packet(), want[0].packet(), "udp={udp_encap}");
        assert_eq!(b.drops().total(), 1);
        assert_eq!(b.drops().get(DropReason::SpoofedSource), 1);
    }
}

#[test]
fn malformed_frames_are_counted_not_panicked_on() {
    let mut a = lab::gateway(Side::A, &LabOptions::default());
    let good = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 10);
    let mut bad_sum = good.clone();
    bad_sum[24] ^= 0xff;
    let mut v6 = good.clone();
    v6[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
    let frames = vec![vec![], good[..20].to_vec(), bad_sum, v6, good[..13].to_vec()];
    let (_, actions, _) = run(&mut a, LAN, frames);
    assert_eq!(
        actions,
        vec![
            Action::Drop(DropReason::NotIp),
            Action::Drop(DropReason::Ipv4Malformed),
            Action::Drop(DropReason::Ipv4BadChecksum),
            Action::Drop(DropReason::Ipv6NotRouted),
            Action::Drop(DropReason::NotIp),
        ]
    );
}

#[test]
fn a_new_neighbor_table_reaches_sas_already_in_use() {
    let mut a = lab::gateway(Side::A, &LabOptions::default());
    let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 10);
    let (fs, _, _) = run(&mut a, LAN, vec![f.clone()]);
    assert_eq!(ethernet::EthernetFrame::new_checked(fs[0].packet()).unwrap().dst_addr(), Side::B.wan_mac());
    // The peer's MAC changes (a new router, a failover): the SA's cached
    // next hop must follow.
    let moved = esprit_wire::ethernet::MacAddr([2, 0, 0, 0, 9, 9]);
    let mut n = esprit_dataplane::NeighborTable::default();
    n.insert(WAN, Side::B.wan_addr(), moved);
    a.apply(Update::Neighbors(Arc::new(n)), &mut VecOutput::default());
    let (fs, actions, _) = run(&mut a, LAN, vec![f]);
    assert_eq!(actions, vec![Action::Tx(WAN)]);
    assert_eq!(ethernet::EthernetFrame::new_checked(fs[0].packet()).unwrap().dst_addr(), moved);
}

#[test]
fn an_sa_without_traffic_for_its_idle_time_is_reported_once() {
    let opts = LabOptions { installed: vec![], ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let (sa, _) = lab::sa_pair(Side::A, 0, &opts);
    let mut out = VecOutput::default();
    a.apply(
        Update::Outbound(OutboundInstall {
            id: SaId(5),
            vpn: VPN,
            proxy_id: lab::seed_proxy_ids(Side::A)[0],
            owner: WorkerId(0),
            sa: Some(Box::new(sa)),
            life: Lifetime { idle_secs: 30, ..Default::default() },
        }),
        &mut out,
    );
    let t0 = Instant::now();
    a.tick(t0, &mut out);
    a.tick(t0 + Duration::from_secs(20), &mut out);
    assert!(out.events.is_empty(), "not idle yet: {:?}", out.events);
    a.tick(t0 + Duration::from_secs(31), &mut out);
    a.tick(t0 + Duration::from_secs(45), &mut out);
    assert_eq!(out.events, vec![WorkerEvent::Idle { sa: SaId(5) }]);
}

/// Sends the worker's waiting probes through its pipeline (what fastpathd's
/// worker loop does with them).
fn send_probes(w: &mut Worker) -> (Vec<Vec<u8>>, Vec<VecFrame>, Vec<Action>, VecOutput) {
    let mut built = Vec::new();
    w.drain_probes(|f| built.push(f.to_vec()));
    let (fs, actions, out) = run(w, LAN, built.clone());
    (built, fs, actions, out)
}

/// A host's echo reply (RFC 792) as it arrives on `side`'s LAN port.
fn echo_reply_frame(
    side: Side,
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    ident: u16,
    seq: u16,
) -> Vec<u8> {
    let icmp_len = icmpv4::HEADER_LEN + 8;
    let mut f = vec![0u8; 14 + ipv4::HEADER_LEN + icmp_len];
    ethernet::Repr { src_addr: side.host_mac(1), dst_addr: side.lan_mac(), ethertype: ethertype::IPV4 }
        .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut f[..]));
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: ip_proto::ICMP,
        ttl: 64,
        tos: 0,
        ident: 9,
        dont_frag: false,
        payload_len: icmp_len as u16,
    }
    .emit(&mut f[14..34]);
    icmpv4::Repr::EchoReply { ident, seq }.emit_with_data(&mut f[34..], &[7; 8]);
    f
}

const MONITOR_SRC: [u8; 4] = [10, 1, 1, 1];

fn probe(seq: u16) -> Probe {
    Probe { src: MONITOR_SRC.into(), dst: Side::B.host(1), ident: 0xe5e5, seq, size: 56 }
}

#[test]
fn a_probe_is_encrypted_on_the_sa_of_its_destinations_proxy_id() {
    let opts = LabOptions::default();
    let mut a = lab::gateway(Side::A, &opts);
    let mut b = lab::gateway(Side::B, &opts);
    let mut sink = VecOutput::default();
    a.apply(Update::Probe(probe(1)), &mut sink);
    assert!(a.has_probes());
    let (built, fs, actions, _) = send_probes(&mut a);
    assert!(!a.has_probes());
    assert_eq!(actions, vec![Action::Tx(WAN)]);
    // 10.1.1.1 -> 10.2.1.10 is proxy-ID 0 (10.1.1.0/24 <-> 10.2.1.0/24).
    assert_eq!(wire_spi(fs[0].packet()), lab::spi(Side::A, 0));
    assert_eq!(a.counters().probes, 1);
    assert_eq!(a.counters().encrypted, 1);

    // The peer decrypts it into an ordinary echo request for its host.
    let (fs, actions, _) = run(&mut b, WAN, vec![fs[0].packet().to_vec()]);
    assert_eq!(actions, vec![Action::Tx(LAN)]);
    let got = fs[0].packet();
    let ip = ipv4::Packet::new_checked(&got[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.protocol()),
        (MONITOR_SRC.into(), Side::B.host(1), ip_proto::ICMP)
    );
    let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(icmpv4::Repr::parse(&icmp).unwrap(), icmpv4::Repr::EchoRequest { ident: 0xe5e5, seq: 1 });
    assert_eq!(icmp.data().len(), 56);
    assert_eq!(&got[34..], &built[0][34..], "the ICMP message crosses unchanged");
}

#[test]
fn a_probe_without_an_sa_is_held_and_asks_for_one() {
    // Proxy-ID 0 has no SA: the probe is what brings it up (monitor rekey).
    let opts = LabOptions { installed: vec![1, 2, 3], ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let mut sink = VecOutput::default();
    a.apply(Update::Probe(probe(1)), &mut sink);
    let (_, _, actions, out) = send_probes(&mut a);
    assert_eq!(actions, vec![Action::Held]);
    let Some(WorkerEvent::Acquire { proxy_id, flow, .. }) = out.events.first() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(proxy_id.to_string(), "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY");
    assert_eq!((flow.src(), flow.protocol()), (std::net::IpAddr::from(MONITOR_SRC), ip_proto::ICMP));
}

#[test]
fn a_monitor_reply_is_consumed_and_reported_other_traffic_to_self_is_dropped() {
    let opts = LabOptions::default();
    let mut a = lab::gateway(Side::A, &opts);
    let mut b = lab::gateway(Side::B, &opts);
    let mut sink = VecOutput::default();
    a.apply(Update::ProbeIdent(0xe5e5), &mut sink);
    // The peer's host answers; the peer seals the reply on its SA.
    let reply = |ident, seq| echo_reply_frame(Side::B, Side::B.host(1), MONITOR_SRC.into(), ident, seq);
    let (fs, actions, _) = run(&mut b, LAN, vec![reply(0xe5e5, 1), reply(0x1234, 2)]);
    assert_eq!(actions, vec![Action::Tx(WAN), Action::Tx(WAN)]);
    let wan: Vec<Vec<u8>> = fs.iter().map(|f| f.packet().to_vec()).collect();
    let (_, actions, out) = run(&mut a, WAN, wan);
    assert_eq!(actions, vec![Action::Drop(DropReason::MonitorReply), Action::Drop(DropReason::TunnelToSelf)]);
    let replies: Vec<&WorkerEvent> =
        out.events.iter().filter(|e| matches!(e, WorkerEvent::ProbeReply { .. })).collect();
    assert_eq!(
        replies,
        vec![&WorkerEvent::ProbeReply {
            vpn: VPN,
            tunnel: TUNNEL,
            sa: SaId(u64::from(lab::spi(Side::B, 0))),
            src: Side::B.host(1),
            dst: MONITOR_SRC.into(),
            ident: 0xe5e5,
            seq: 1,
        }]
    );
    assert_eq!(a.counters().probe_replies, 1);
    assert_eq!(a.drops().get(DropReason::TunnelToSelf), 1);
    // A truncated echo reply (4 bytes of ICMP) is never taken for ours.
    let mut short = reply(0xe5e5, 3);
    short.truncate(14 + 20 + 4);
    let total = (20 + 4) as u16;
    short[16..18].copy_from_slice(&total.to_be_bytes());
    let mut ip = ipv4::Packet::new_checked(&mut short[14..]).unwrap();
    ip.fill_checksum();
    let (fs, actions, _) = run(&mut b, LAN, vec![short]);
    assert_eq!(actions, vec![Action::Tx(WAN)]);
    let (_, actions, out) = run(&mut a, WAN, vec![fs[0].packet().to_vec()]);
    assert_eq!(actions, vec![Action::Drop(DropReason::TunnelToSelf)]);
    assert!(out.events.is_empty());
}

/// An inbound SA reports its hard byte lifetime once (fastpathd
/// then removes it) and refuses what comes after as `sa-expired`.
#[test]
fn an_inbound_sa_past_its_hard_bytes_reports_once_then_refuses() {
    let opts = LabOptions::default();
    let mut a = lab::gateway(Side::A, &opts);
    let mut b = lab::gateway(Side::B, &opts);
    let (_, in_sa) = lab::sa_pair(Side::B, 0, &opts);
    let spi = lab::spi(Side::A, 0);
    let mut out = VecOutput::default();
    b.apply(
        Update::Inbound(esprit_dataplane::InboundInstall {
            id: SaId(0x51),
            spi,
            vpn: VPN,
            tunnel: TUNNEL,
            proxy_id: lab::seed_proxy_ids(Side::B)[0],
            owner: WorkerId(0),
            sa: Some(Box::new(in_sa)),
            life: Lifetime { hard_bytes: 300, ..Default::default() },
        }),
        &mut out,
    );
    let sealed = |a: &mut Worker| {
        let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 200);
        let (fs, actions, _) = run(a, LAN, vec![f]);
        assert_eq!(actions[0], Action::Tx(WAN));
        assert_eq!(wire_spi(fs[0].packet()), spi);
        fs[0].packet().to_vec()
    };
    // 228 bytes, then 456 (past 300): both delivered, the second reports.
    let (_, actions, out1) = run(&mut b, WAN, vec![sealed(&mut a)]);
    assert_eq!((actions[0], out1.events.len()), (Action::Tx(LAN), 0));
    let (_, actions, out2) = run(&mut b, WAN, vec![sealed(&mut a)]);
    assert_eq!(actions[0], Action::Tx(LAN));
    assert_eq!(
        out2.events,
        vec![WorkerEvent::HardExpire { sa: SaId(0x51), reason: esprit_dataplane::ExpireReason::Bytes }]
    );
    // Past it: refused, and reported no more.
    let (_, actions, out3) = run(&mut b, WAN, vec![sealed(&mut a)]);
    assert_eq!(actions[0], Action::Drop(DropReason::SaExpired));
    assert!(out3.events.is_empty());
}
