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
use esprit_wire::{esp, ip_proto, ipv4, udp};

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
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
