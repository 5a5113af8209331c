//! Parse stage: Ethernet + IPv4 (+ checksum) + UDP views and the flow key
//! the classifier reads, over a burst of 64 frames (ns per packet).

#![allow(clippy::expect_used)] // bench set-up: a broken fixture must stop it

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use esprit_bench::{ids, lan_frame, Burst, BURST};
use esprit_dataplane::flow::flow_key_v4;
use esprit_dataplane::lab::{self, LabOptions, Side, LAN};
use esprit_dataplane::{Action, VecOutput};
use esprit_policy::FlowKey;
use esprit_wire::ethernet::{self, ethertype};
use esprit_wire::{esp, ip_proto, ipv4, tcp, udp};

/// What the worker's first pass does before routing: Ethernet, IPv4 with
/// header checksum, then the UDP header's ports.
#[inline]
fn eth_ipv4_udp(frame: &[u8]) -> Option<(u16, u16)> {
    let eth = ethernet::EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != ethertype::IPV4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    if !ip.verify_checksum() || ip.protocol() != ip_proto::UDP {
        return None;
    }
    let u = udp::Packet::new_checked(ip.payload()).ok()?;
    Some((u.src_port(), u.dst_port()))
}

/// Ethernet, IPv4 with checksum, and the classifier's flow key.
#[inline]
fn eth_ipv4_flow_key(frame: &[u8]) -> Option<FlowKey> {
    let eth = ethernet::EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != ethertype::IPV4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    if !ip.verify_checksum() {
        return None;
    }
    Some(flow_key_v4(&ip))
}

/// Ethernet, IPv4 with checksum, ESP header: the SPI the decrypt path
/// looks up.
#[inline]
fn eth_ipv4_esp(frame: &[u8]) -> Option<u32> {
    let eth = ethernet::EthernetFrame::new_checked(frame).ok()?;
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    if !ip.verify_checksum() || ip.protocol() != ip_proto::ESP {
        return None;
    }
    Some(esp::Packet::new_checked(ip.payload()).ok()?.spi())
}

fn bench(c: &mut Criterion) {
    // Clear frames, inner IP 64 B (parsing reads headers only).
    let clear: Vec<Vec<u8>> = (0..BURST).map(|_| lan_frame(64)).collect();
    // ESP frames as gateway A sends them.
    let mut a = lab::gateway(Side::A, &LabOptions::default());
    let mut burst = Burst::new(&clear);
    let mut actions = vec![Action::Held; BURST];
    a.process_burst(Instant::now(), LAN, &mut burst.frames, &mut actions, &mut VecOutput::default());
    assert!(actions.iter().all(|x| *x == Action::Tx(lab::WAN)), "lab encrypts: {actions:?}");
    let wire: Vec<Vec<u8>> = burst.frames.iter().map(|f| f.packet().to_vec()).collect();
    assert!(clear.iter().all(|f| eth_ipv4_udp(f).is_some() && eth_ipv4_flow_key(f).is_some()));
    assert!(wire.iter().all(|f| eth_ipv4_esp(f).is_some()));

    let mut g = c.benchmark_group(ids::PARSE);
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("eth-ipv4-udp", |b| {
        b.iter(|| {
            for f in black_box(&clear) {
                black_box(eth_ipv4_udp(f));
            }
        })
    });
    g.bench_function("eth-ipv4-flowkey", |b| {
        b.iter(|| {
            for f in black_box(&clear) {
                black_box(eth_ipv4_flow_key(f));
            }
        })
    });
    g.bench_function("eth-ipv4-esp", |b| {
        b.iter(|| {
            for f in black_box(&wire) {
                black_box(eth_ipv4_esp(f));
            }
        })
    });
    // `set flow tcp-mss`: the check every packet entering a tunnel pays
    // when it is set (a UDP packet: the IPv4 header says not TCP), and a
    // TCP SYN whose MSS option is found and compared (after the first
    // pass it is at the limit already: the cost of the walk and compare,
    // not of the two-byte write and checksum update).
    let mut ips: Vec<Vec<u8>> = clear.iter().map(|f| f[ethernet::HEADER_LEN..].to_vec()).collect();
    g.bench_function("tcp-mss-check-udp", |b| {
        b.iter(|| {
            for ip in &mut ips {
                black_box(tcp::clamp_mss(black_box(ip), 1380));
            }
        })
    });
    let mut syns: Vec<Vec<u8>> = ips.iter().map(|ip| syn(ip)).collect();
    assert!(matches!(tcp::clamp_mss(&mut syns[0].clone(), 1380), tcp::MssClamp::Clamped(1460)));
    g.bench_function("tcp-mss-check-syn", |b| {
        b.iter(|| {
            for ip in &mut syns {
                black_box(tcp::clamp_mss(black_box(ip), 1380));
            }
        })
    });
    g.finish();
}

/// `ip` (an IPv4/UDP packet) made a TCP SYN announcing MSS 1460 with
/// Linux's options (checksum not filled: the clamp does not check it).
fn syn(ip: &[u8]) -> Vec<u8> {
    let mut p = ip[..ipv4::HEADER_LEN].to_vec();
    p.extend_from_slice(&[0; 40]);
    p[9] = ip_proto::TCP;
    p[2..4].copy_from_slice(&60u16.to_be_bytes());
    let t = &mut p[ipv4::HEADER_LEN..];
    t[12] = 10 << 4;
    t[13] = tcp::FLAG_SYN;
    t[20..40].copy_from_slice(&[2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
    ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
    p
}

criterion_group!(benches, bench);
criterion_main!(benches);
