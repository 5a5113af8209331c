//! Outer fragment reassembly (RFC 4303 §3.4.1): ESP and ESP-in-UDP
//! cut into IP fragments on the way are reassembled before ESP processing
//! and delivered as if they had arrived whole; hostile fragments stay
//! within the bounds and are counted by reason.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use esprit_dataplane::lab::{self, LabOptions, Side, LAN, WAN};
use esprit_dataplane::reassembly::ReassemblyConfig;
use esprit_dataplane::{Action, DropReason, PortId, VecFrame, VecOutput, Worker, WorkerConfig, WorkerId};
use esprit_wire::ipv4;

fn run_at(w: &mut Worker, now: Instant, port: PortId, frames: &[Vec<u8>]) -> (Vec<VecFrame>, Vec<Action>) {
    let mut fs: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(2048, 256, f)).collect();
    let mut actions = vec![Action::Held; fs.len()];
    w.process_burst(now, port, &mut fs, &mut actions, &mut VecOutput::default());
    (fs, actions)
}

fn run(w: &mut Worker, port: PortId, frames: &[Vec<u8>]) -> (Vec<VecFrame>, Vec<Action>) {
    run_at(w, Instant::now(), port, frames)
}

/// B's ESP frames (as they leave B's WAN) for `n` packets of `size` bytes
/// of payload from B's host to A's.
fn esp_from_b(opts: &LabOptions, n: usize, size: usize) -> Vec<Vec<u8>> {
    let mut b = lab::gateway(Side::B, opts);
    let clear: Vec<Vec<u8>> =
        (0..n).map(|_| lab::lan_frame(Side::B, Side::B.host(1), Side::A.host(1), size)).collect();
    let (fs, actions) = run(&mut b, LAN, &clear);
    assert_eq!(actions, vec![Action::Tx(WAN); n]);
    fs.iter().map(|f| f.packet().to_vec()).collect()
}

/// Cuts the IPv4 packet of an Ethernet frame into fragments carrying
/// `sizes` bytes of data each (the last takes the rest), RFC 791 §3.2,
/// identification `ident`.
fn fragment(frame: &[u8], sizes: &[usize], ident: u16) -> Vec<Vec<u8>> {
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    let hl = ip.header_len();
    let data = &frame[14 + hl..14 + usize::from(ip.total_len())];
    let mut out = Vec::new();
    let mut at = 0;
    for (k, &size) in sizes.iter().chain([&usize::MAX]).enumerate() {
        if at >= data.len() && k > 0 {
            break;
        }
        let end = at.saturating_add(size).min(data.len());
        let more = end < data.len();
        out.push(piece(frame, hl, &data[at..end], at, more, ident));
        at = end;
    }
    out
}

/// One fragment: `frame`'s Ethernet and IP header, `data` at byte offset
/// `offset` (a multiple of 8 unless a test wants otherwise).
fn piece(frame: &[u8], hl: usize, data: &[u8], offset: usize, more: bool, ident: u16) -> Vec<u8> {
    let mut f = frame[..14 + hl].to_vec();
    f.extend_from_slice(data);
    let total = (hl + data.len()) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[18..20].copy_from_slice(&ident.to_be_bytes());
    let flags = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
    f[20..22].copy_from_slice(&flags.to_be_bytes());
    let mut p = ipv4::Packet::new_checked(&mut f[14..]).unwrap();
    p.fill_checksum();
    f
}

#[test]
fn fragmented_esp_is_reassembled_and_delivered_like_the_whole_packet() {
    for udp_encap in [false, true] {
        let opts = LabOptions { udp_encap, ..Default::default() };
        let whole = esp_from_b(&opts, 3, 1200);
        // What A delivers from the whole packets.
        let mut reference = lab::gateway(Side::A, &opts);
        let (want, actions) = run(&mut reference, WAN, &whole);
        assert_eq!(actions, vec![Action::Tx(LAN); 3]);

        let mut a = lab::gateway(Side::A, &opts);
        // In order, out of order (last first), and in three pieces.
        let mut frames = fragment(&whole[0], &[1000], 0x100);
        let mut second = fragment(&whole[1], &[600], 0x101);
        second.reverse();
        frames.extend(second);
        frames.extend(fragment(&whole[2], &[400, 400], 0x102));
        assert_eq!(frames.len(), 7);
        let (got, actions) = run(&mut a, WAN, &frames);
        let tx = Action::Tx(LAN);
        let frag = Action::Fragment;
        assert_eq!(actions, vec![frag, tx, frag, tx, frag, frag, tx], "udp={udp_encap}");
        let delivered: Vec<&[u8]> =
            actions.iter().zip(&got).filter(|(a, _)| **a == tx).map(|(_, f)| f.packet()).collect();
        let want: Vec<&[u8]> = want.iter().map(|f| f.packet()).collect();
        assert_eq!(delivered, want, "udp={udp_encap}");
        assert_eq!((a.counters().fragments, a.counters().reassembled), (7, 3));
        assert_eq!(a.counters().decrypted, 3);
        assert_eq!(a.drops().total(), 0);
    }
}

/// Fragments of one datagram arriving on two workers' queues meet on
/// one of them (the hash of the datagram's identity picks it).
#[test]
fn fragments_on_different_workers_meet_on_one() {
    let opts = LabOptions::default();
    let whole = esp_from_b(&opts, 1, 1200);
    let frags = fragment(&whole[0], &[1000], 0x4242);
    let worker = |id| {
        let cfg = WorkerConfig { workers: 2, ..WorkerConfig::new(WorkerId(id)) };
        lab::gateway_with(Side::A, &opts, cfg)
    };
    let mut ws = [worker(0), worker(1)];
    // Both fragments on both workers: one says "hand off" to the other.
    let (_, a0) = run(&mut ws[0], WAN, &frags[..1]);
    let (_, a1) = run(&mut ws[1], WAN, &frags[..1]);
    let owner = match (a0[0], a1[0]) {
        (Action::Fragment, Action::HandOff(WorkerId(0))) => 0,
        (Action::HandOff(WorkerId(1)), Action::Fragment) => 1,
        other => panic!("{other:?}"),
    };
    // The second fragment on the other worker goes to the owner too,
    // which completes the datagram.
    let (_, a) = run(&mut ws[1 - owner], WAN, &frags[1..]);
    assert_eq!(a, vec![Action::HandOff(WorkerId(owner as u16))]);
    let (_, a) = run(&mut ws[owner], WAN, &frags[1..]);
    assert_eq!(a, vec![Action::Tx(LAN)]);
    assert_eq!(ws[owner].counters().reassembled, 1);
}

#[test]
fn hostile_fragments_stay_within_bounds_and_are_counted() {
    let opts = LabOptions::default();
    let whole = &esp_from_b(&opts, 1, 1200)[0];
    let hl = 20;
    let data = &whole[14 + hl..];
    let mut a = lab::gateway(Side::A, &opts);

    // Overlap: 0..800 then 400..1200 (the teardrop shape): the datagram
    // goes, the good last piece after it starts a new one that times out.
    let frames =
        vec![piece(whole, hl, &data[..800], 0, true, 1), piece(whole, hl, &data[400..1200], 400, true, 1)];
    let (_, actions) = run(&mut a, WAN, &frames);
    assert_eq!(actions, vec![Action::Fragment, Action::Drop(DropReason::FragOverlap)]);

    // A middle fragment not a multiple of 8 bytes; two different ends;
    // a middle fragment past the end; an empty one.
    let past = (data.len() / 8 + 1) * 8;
    let frames = vec![
        piece(whole, hl, &data[..801], 0, true, 2),
        piece(whole, hl, &data[800..], 800, false, 3),
        piece(whole, hl, &data[800..808], 800, false, 3),
        piece(whole, hl, &data[800..], 800, false, 4),
        piece(whole, hl, &data[..16], past, true, 4),
        piece(whole, hl, &[], 0, true, 5),
    ];
    let (_, actions) = run(&mut a, WAN, &frames);
    let bad = Action::Drop(DropReason::FragOverlap);
    assert_eq!(actions, vec![bad, Action::Fragment, bad, Action::Fragment, bad, bad]);
    assert_eq!(a.drops().get(DropReason::FragOverlap), 5);

    // 64 KiB: a last fragment ending at 65,535 bytes.
    let frames = vec![piece(whole, hl, &data[..1000], 64_000, false, 6)];
    let (_, actions) = run(&mut a, WAN, &frames);
    assert_eq!(actions, vec![Action::Drop(DropReason::FragTooLarge)]);

    // Too many pieces: 17 of 8 bytes (the limit is 16).
    let frames: Vec<Vec<u8>> =
        (0..17).map(|k| piece(whole, hl, &data[k * 8..k * 8 + 8], k * 8, true, 7)).collect();
    let (_, actions) = run(&mut a, WAN, &frames);
    assert_eq!(actions[..16], vec![Action::Fragment; 16][..]);
    assert_eq!(actions[16], Action::Drop(DropReason::FragTooMany));
    assert_eq!(a.drops().get(DropReason::FragTooLarge), 1);
    assert_eq!(a.drops().get(DropReason::FragTooMany), 1);
    assert_eq!(a.counters().reassembled, 0);
}

#[test]
fn endless_first_fragments_fill_the_slots_then_time_out() {
    let opts = LabOptions::default();
    let whole = esp_from_b(&opts, 1, 1200);
    let cfg = WorkerConfig {
        reassembly: ReassemblyConfig { slots: 8, timeout: Duration::from_secs(3), ..Default::default() },
        ..WorkerConfig::new(WorkerId(0))
    };
    let mut a = lab::gateway_with(Side::A, &opts, cfg);
    let t0 = Instant::now();
    // 8 slots: first fragments of 20 datagrams from 20 sources.
    let firsts: Vec<Vec<u8>> = (0..20u16)
        .map(|k| {
            let mut f = fragment(&whole[0], &[1000], 0x200 + k).remove(0);
            f[14 + 12..14 + 16].copy_from_slice(&[198, 51, 100, k as u8]);
            let mut p = ipv4::Packet::new_checked(&mut f[14..]).unwrap();
            p.fill_checksum();
            f
        })
        .collect();
    let (_, actions) = run_at(&mut a, t0, WAN, &firsts);
    assert_eq!(actions.iter().filter(|x| **x == Action::Fragment).count(), 8);
    assert_eq!(a.drops().get(DropReason::FragNoSlot), 12);
    // A real datagram meanwhile finds no slot either (bounded, not evicting).
    let real = fragment(&whole[0], &[1000], 0x999);
    let (_, actions) = run_at(&mut a, t0, WAN, &real[..1]);
    assert_eq!(actions, vec![Action::Drop(DropReason::FragNoSlot)]);
    // After the timeout the slots are free again: counted once per datagram.
    a.tick(t0 + Duration::from_secs(4), &mut VecOutput::default());
    assert_eq!(a.drops().get(DropReason::FragTimeout), 8);
    let (_, actions) = run_at(&mut a, t0 + Duration::from_secs(4), WAN, &real);
    assert_eq!(actions, vec![Action::Fragment, Action::Tx(LAN)]);
}

#[test]
fn a_reassembled_datagram_too_big_for_the_frame_is_dropped() {
    let opts = LabOptions { tunnel_mtu: 1500, ..Default::default() };
    let whole = &esp_from_b(&opts, 1, 1400)[0];
    let frags = fragment(whole, &[800], 9);
    let mut a = lab::gateway(Side::A, &opts);
    // Frames of 1,200 bytes (no room for the 1,480-byte datagram).
    let mut fs: Vec<VecFrame> = frags.iter().map(|f| VecFrame::new(1200, 100, f)).collect();
    let mut actions = vec![Action::Held; 2];
    a.process_burst(Instant::now(), WAN, &mut fs, &mut actions, &mut VecOutput::default());
    assert_eq!(actions, vec![Action::Fragment, Action::Drop(DropReason::FragTooLarge)]);
}
