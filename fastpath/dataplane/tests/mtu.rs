//! Fitting packets to the tunnel, in memory between two lab gateways:
//! `set flow tcp-mss` clamping of SYNs entering the tunnel, and non-DF
//! datagrams over the tunnel MTU fragmented before encryption.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use esprit_dataplane::lab::{self, LabOptions, Side, LAN, WAN};
use esprit_dataplane::mtu::{FRAGMENT_SLOTS, MAX_FRAGMENTS};
use esprit_dataplane::{Action, DropReason, FlowConf, PortId, Update, VecFrame, VecOutput, Worker};
use esprit_wire::{checksum, ip_proto, ipv4, tcp};

fn run(w: &mut Worker, port: PortId, frames: Vec<Vec<u8>>) -> (Vec<VecFrame>, Vec<Action>) {
    let mut fs: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(2048, 256, f)).collect();
    let mut actions = vec![Action::Held; fs.len()];
    w.process_burst(Instant::now(), port, &mut fs, &mut actions, &mut VecOutput::default());
    (fs, actions)
}

/// The frames sent on `port`: the burst's own, then the later fragments.
fn sent(w: &mut Worker, fs: &[VecFrame], actions: &[Action], port: PortId) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = fs
        .iter()
        .zip(actions)
        .filter(|(_, a)| **a == Action::Tx(port))
        .map(|(f, _)| f.packet().to_vec())
        .collect();
    w.drain_fragments(|p, b| {
        assert_eq!(p, port);
        v.push(b.to_vec());
    });
    v
}

/// `frame` with DF cleared (header checksum refilled).
fn without_df(mut frame: Vec<u8>) -> Vec<u8> {
    frame[14 + 6] &= !0x40;
    ipv4::Packet::new_unchecked(&mut frame[14..]).fill_checksum();
    frame
}

/// A TCP SYN frame from A's host 1 to B's host 1 announcing `mss`, as
/// Linux sends it (MSS, SACK permitted, timestamps, NOP, window scale).
fn syn_frame(mss: u16, ack: bool) -> Vec<u8> {
    let mut f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 40 - 8);
    let (src, dst) = (Side::A.host(1), Side::B.host(1));
    f[14 + 9] = ip_proto::TCP;
    ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
    let t = &mut f[34..];
    t.fill(0);
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&5001u16.to_be_bytes());
    t[12] = 10 << 4;
    t[13] = tcp::FLAG_SYN | if ack { tcp::FLAG_ACK } else { 0 };
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let [hi, lo] = mss.to_be_bytes();
    t[20..40].copy_from_slice(&[2, 4, hi, lo, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
    let c = tcp_checksum(src, dst, t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    f
}

/// The TCP checksum of `seg` computed from scratch.
fn tcp_checksum(src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr, seg: &[u8]) -> u16 {
    let mut s = seg.to_vec();
    s[16] = 0;
    s[17] = 0;
    let acc = checksum::pseudo_header_v4(src, dst, ip_proto::TCP, s.len() as u16);
    checksum::finish(checksum::sum(acc, &s))
}

/// Sends `frame` from A's LAN through the tunnel to B's LAN; returns what
/// B delivers.
fn through(a: &mut Worker, b: &mut Worker, frame: Vec<u8>) -> Vec<Vec<u8>> {
    let (fs, actions) = run(a, LAN, vec![frame]);
    let wan = sent(a, &fs, &actions, WAN);
    assert!(!wan.is_empty(), "{actions:?}");
    let (fs, actions) = run(b, WAN, wan);
    sent(b, &fs, &actions, LAN)
}

#[test]
fn syns_entering_the_tunnel_are_clamped_when_set() {
    let opts = LabOptions::default();
    let (mut a, mut b) = (lab::gateway(Side::A, &opts), lab::gateway(Side::B, &opts));
    // Off (the default): the SYN arrives as sent.
    let got = through(&mut a, &mut b, syn_frame(1460, false));
    assert_eq!(&got[0][34 + 22..34 + 24], &1460u16.to_be_bytes());
    a.apply(Update::Flow(FlowConf { tcp_mss: Some(1380) }), &mut VecOutput::default());
    for (mss, ack, want) in
        [(1460, false, 1380), (1460, true, 1380), (1200, false, 1200), (65535, true, 1380)]
    {
        let got = through(&mut a, &mut b, syn_frame(mss, ack));
        assert_eq!(got.len(), 1);
        let seg = &got[0][34..];
        assert_eq!(&seg[22..24], &u16::to_be_bytes(want), "mss {mss}");
        // The checksum the clamp patched equals a recomputation.
        assert_eq!(
            u16::from_be_bytes([seg[16], seg[17]]),
            tcp_checksum(Side::A.host(1), Side::B.host(1), seg),
            "mss {mss}"
        );
        // Everything else is as sent (TTL two hops lower).
        let mut want_frame = syn_frame(mss, ack);
        want_frame[34 + 22..34 + 24].copy_from_slice(&u16::to_be_bytes(want));
        assert_eq!(&seg[..16], &want_frame[34..50]);
        assert_eq!(&seg[18..], &want_frame[34 + 18..]);
    }
    assert_eq!(a.counters().mss_clamped, 3);
    // The decrypting side does not clamp (ScreenOS: only the encrypting
    // gateway does): B, set to 1000, leaves A's SYNs alone.
    b.apply(Update::Flow(FlowConf { tcp_mss: Some(1000) }), &mut VecOutput::default());
    let got = through(&mut a, &mut b, syn_frame(1460, false));
    assert_eq!(&got[0][34 + 22..34 + 24], &1380u16.to_be_bytes());
    assert_eq!(b.counters().mss_clamped, 0);
    // Unset again.
    a.apply(Update::Flow(FlowConf { tcp_mss: None }), &mut VecOutput::default());
    let got = through(&mut a, &mut b, syn_frame(1460, false));
    assert_eq!(&got[0][34 + 22..34 + 24], &1460u16.to_be_bytes());
}

#[test]
fn a_non_df_datagram_over_the_tunnel_mtu_crosses_in_fragments() {
    for mtu in [1400u16, 1000, 576] {
        let opts = LabOptions { tunnel_mtu: mtu, ..Default::default() };
        let (mut a, mut b) = (lab::gateway(Side::A, &opts), lab::gateway(Side::B, &opts));
        // 1472 bytes of UDP payload: a 1500-byte datagram.
        let orig = without_df(lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 1472));
        let (fs, actions) = run(&mut a, LAN, vec![orig.clone()]);
        assert_eq!(actions, [Action::Tx(WAN)]);
        let wan = sent(&mut a, &fs, &actions, WAN);
        let chunk = (usize::from(mtu) - 20) & !7;
        let n = 1480usize.div_ceil(chunk);
        assert_eq!(wan.len(), n, "mtu {mtu}");
        // Each is its own ESP packet, with consecutive sequence numbers.
        let seqs: Vec<u32> =
            wan.iter().map(|f| u32::from_be_bytes(f[14 + 20 + 4..14 + 20 + 8].try_into().unwrap())).collect();
        assert_eq!(seqs, (1..=n as u32).collect::<Vec<_>>());
        let c = a.counters();
        assert_eq!(
            (c.fragmented, c.fragments_made, c.encrypted, c.tx_packets),
            (1, n as u64, n as u64, n as u64)
        );
        assert_eq!(a.drops().total(), 0);
        // B decrypts each and forwards the fragments; host 1 reassembles.
        let (fs, actions) = run(&mut b, WAN, wan);
        assert!(actions.iter().all(|x| *x == Action::Tx(LAN)), "{actions:?}");
        let mut data = Vec::new();
        for (k, f) in fs.iter().enumerate() {
            let ip = ipv4::Packet::new_checked(&f.packet()[14..]).unwrap();
            assert!(ip.verify_checksum());
            assert!(usize::from(ip.total_len()) <= usize::from(mtu));
            assert_eq!(usize::from(ip.frag_offset()), data.len());
            assert_eq!(ip.more_frags(), k + 1 < n);
            assert_eq!((ip.ident(), ip.ttl(), ip.dont_frag()), (7, 62, false));
            data.extend_from_slice(ip.payload());
        }
        assert_eq!(data, &orig[34..], "mtu {mtu}");
    }
}

#[test]
fn df_datagrams_still_get_fragmentation_needed() {
    let opts = LabOptions { tunnel_mtu: 1000, ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let f = lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 1472);
    let (_, actions) = run(&mut a, LAN, vec![f]);
    assert_eq!(actions, [Action::Tx(LAN)]);
    assert!(!a.has_fragments());
    assert_eq!((a.drops().get(DropReason::TooBigDf), a.counters().fragmented), (1, 0));
}

#[test]
fn fragmenting_is_bounded() {
    // More fragments than a datagram may make: dropped whole.
    let mtu = 1480 / MAX_FRAGMENTS as u16;
    let opts = LabOptions { tunnel_mtu: mtu, ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let f = without_df(lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 1472));
    let (_, actions) = run(&mut a, LAN, vec![f]);
    assert_eq!(actions, [Action::Drop(DropReason::TooBig)]);
    assert!(!a.has_fragments());

    // More later fragments than the buffers hold before the shell sends
    // them: the datagrams that do not fit are dropped whole, counted.
    let opts = LabOptions { tunnel_mtu: 1000, ..Default::default() };
    let mut a = lab::gateway(Side::A, &opts);
    let f = without_df(lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), 1472));
    let burst = vec![f; 40];
    let (_, first) = run(&mut a, LAN, burst.clone());
    let (_, second) = run(&mut a, LAN, burst.clone());
    let txed = first.iter().chain(&second).filter(|x| **x == Action::Tx(WAN)).count();
    assert_eq!(txed, FRAGMENT_SLOTS);
    assert_eq!(a.drops().get(DropReason::FragNoBuffer), (80 - FRAGMENT_SLOTS) as u64);
    let mut later = 0;
    a.drain_fragments(|_, _| later += 1);
    assert_eq!(later, FRAGMENT_SLOTS);
    // Sent: the buffers are free again.
    let (_, third) = run(&mut a, LAN, burst);
    assert!(third.iter().all(|x| *x == Action::Tx(WAN)));
}
