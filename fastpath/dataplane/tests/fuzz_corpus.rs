//! Replays the kept `pipeline_burst` fuzz corpus through the entry point
//! the fuzzer uses, so every build on stable re-checks the inputs that once
//! mattered; and writes the seeds (run the ignored test to regenerate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use esprit_dataplane::lab::{self, LabOptions, Side, LAN};
use esprit_dataplane::{fuzz, Action, VecFrame, VecOutput, Worker};
use esprit_wire::checksum;
use esprit_wire::ethernet::{self, ethertype};
use esprit_wire::{ip_proto, ipv4};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/pipeline_burst")
}

#[test]
fn replay_pipeline_burst_corpus() {
    let dir = corpus_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        // One gateway per file, as deterministic as a test should be; the
        // fuzzer keeps one per process (its windows and hold queue fill).
        let mut w = fuzz::lab_gateway();
        fuzz::worker_burst(&mut w, &data);
        // Every prefix too: truncation is where parsers break.
        for cut in 0..data.len() {
            fuzz::worker_burst(&mut w, &data[..cut]);
        }
        n += 1;
    }
    assert!(n >= 5, "corpus at {} has only {n} inputs", dir.display());
}

/// Gateway A's WAN output for these LAN frames: ESP frames for B.
fn esp_from_a(opts: &LabOptions, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut a = lab::gateway(Side::A, opts);
    let mut fs: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(2048, 256, f)).collect();
    let mut actions = vec![Action::Held; fs.len()];
    a.process_burst(Instant::now(), LAN, &mut fs, &mut actions, &mut VecOutput::default());
    assert!(actions.iter().all(|a| *a == Action::Tx(lab::WAN)), "{actions:?}");
    fs.iter().map(|f| f.packet().to_vec()).collect()
}

fn action(w: &mut Worker, port: esprit_dataplane::PortId, data: &[u8]) -> Action {
    let mut fs = [VecFrame::new(2048, 256, data)];
    let mut actions = [Action::Held];
    w.process_burst(Instant::now(), port, &mut fs, &mut actions, &mut VecOutput::default());
    actions[0]
}

/// An ICMP echo request from host 1 behind B to B's LAN address.
fn ping_gateway() -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 16];
    ethernet::Repr { src_addr: Side::B.host_mac(1), dst_addr: Side::B.lan_mac(), ethertype: ethertype::IPV4 }
        .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut f[..]));
    ipv4::Repr {
        src_addr: Side::B.host(1),
        dst_addr: "10.2.1.1".parse().unwrap(),
        protocol: ip_proto::ICMP,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: false,
        payload_len: 24,
    }
    .emit(&mut f[14..34]);
    f[34..42].copy_from_slice(&[8, 0, 0, 0, 0x12, 0x34, 0, 1]);
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let c = checksum::checksum(&f[34..]);
    f[36..38].copy_from_slice(&c.to_be_bytes());
    f
}

/// An ARP request from A's WAN for B's WAN address.
fn arp_request() -> Vec<u8> {
    let mut f = vec![0u8; 14 + 28];
    ethernet::Repr {
        src_addr: Side::A.wan_mac(),
        dst_addr: ethernet::MacAddr([0xff; 6]),
        ethertype: ethertype::ARP,
    }
    .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut f[..]));
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&Side::A.wan_mac().0);
    f[28..32].copy_from_slice(&Side::A.wan_addr().octets());
    f[38..42].copy_from_slice(&Side::B.wan_addr().octets());
    f
}

/// Writes the seeds: clear LAN frames of B (to encrypt, to a subnet no
/// proxy-ID covers, too big for the tunnel MTU), ESP frames sealed by
/// gateway A (plain and UDP-encapsulated), a ping to the gateway, an ARP
/// request.
///
/// `cargo test -p esprit-dataplane --test fuzz_corpus -- --ignored`
#[test]
#[ignore = "writes fuzz/corpus/pipeline_burst"]
fn write_pipeline_burst_seeds() {
    let (a, b) = (Side::A, Side::B);
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("lan-b1-a1", lab::lan_frame(b, b.host(1), a.host(1), 100)),
        ("lan-b2-a2-tiny", lab::lan_frame(b, b.host(2), a.host(2), 1)),
        ("lan-no-proxy-id", lab::lan_frame(b, b.host(1), "10.1.3.10".parse().unwrap(), 20)),
        ("lan-too-big", lab::lan_frame(b, b.host(1), a.host(2), 1400)),
        ("ping-gateway", ping_gateway()),
        ("arp-request", arp_request()),
    ];
    let clear: Vec<Vec<u8>> =
        [(1, 1), (2, 2)].iter().map(|&(l, r)| lab::lan_frame(a, a.host(l), b.host(r), 64)).collect();
    let esp = esp_from_a(&LabOptions::default(), &clear);
    seeds.push(("esp-a1-b1", esp[0].clone()));
    seeds.push(("esp-a2-b2", esp[1].clone()));
    let natt = esp_from_a(&LabOptions { udp_encap: true, ..Default::default() }, &clear[..1]);
    seeds.push(("esp-in-udp-a1-b1", natt[0].clone()));
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in seeds {
        // The seeds reach where their names say, on a fresh gateway B.
        let port = if name.starts_with("esp") { lab::WAN } else { LAN };
        let got = action(&mut fuzz::lab_gateway(), port, &data);
        let want = match name {
            "lan-b1-a1" | "lan-b2-a2-tiny" => Some(Action::Tx(lab::WAN)),
            "esp-a1-b1" | "esp-a2-b2" | "esp-in-udp-a1-b1" => Some(Action::Tx(LAN)),
            _ => None,
        };
        if let Some(want) = want {
            assert_eq!(got, want, "{name}");
        }
        eprintln!("{name}: {got:?}");
        std::fs::write(dir.join(name), data).unwrap();
    }
}

fn handoff_corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/pipeline_handoff")
}

/// Replays the kept `pipeline_handoff` corpus (the hub's two workers, the
/// hand-off between them, reassembly), each input and its prefixes.
#[test]
fn replay_pipeline_handoff_corpus() {
    let dir = handoff_corpus_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        let mut h = fuzz::HubPair::default();
        fuzz::hub_bursts(&mut h, &data);
        for cut in (0..data.len()).step_by(7) {
            fuzz::hub_bursts(&mut fuzz::HubPair::default(), &data[..cut]);
        }
        n += 1;
    }
    assert!(n >= 5, "corpus at {} has only {n} inputs", dir.display());
}

/// One record of a `pipeline_handoff` input (see `fuzz::hub_bursts`).
fn record(ctl: u8, frame: &[u8]) -> Vec<u8> {
    let mut r = vec![ctl];
    r.extend_from_slice(&(frame.len() as u16).to_be_bytes());
    r.extend_from_slice(frame);
    r
}

/// Cuts an Ethernet frame's IPv4 packet in two fragments, the first
/// carrying `first` bytes of data (a multiple of 8).
fn two_fragments(frame: &[u8], first: usize, ident: u16) -> [Vec<u8>; 2] {
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    let hl = ip.header_len();
    let data = &frame[14 + hl..14 + usize::from(ip.total_len())];
    let piece = |d: &[u8], offset: usize, more: bool| {
        let mut f = frame[..14 + hl].to_vec();
        f.extend_from_slice(d);
        f[16..18].copy_from_slice(&((hl + d.len()) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&ident.to_be_bytes());
        let flags = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&flags.to_be_bytes());
        ipv4::Packet::new_checked(&mut f[14..]).unwrap().fill_checksum();
        f
    };
    [piece(&data[..first], 0, true), piece(&data[first..], first, false)]
}

/// Writes the `pipeline_handoff` seeds: spoke A's ESP through the hub
/// (received by the worker that does not own its SA), the same ESP in
/// fragments received by both workers, fragments whose datagram times
/// out, overlapping fragments, a spoofed clear packet, an inner packet
/// handed off, spoke B's ESP.
///
/// `cargo test -p esprit-dataplane --test fuzz_corpus -- --ignored`
#[test]
#[ignore = "writes fuzz/corpus/pipeline_handoff"]
fn write_pipeline_handoff_seeds() {
    use esprit_dataplane::lab::hub;
    // Control bytes: worker 0/1, WAN (2), decrypted (4), 4 s step (0x18),
    // end of burst (0x20).
    const W0: u8 = 2;
    const W1: u8 = 3;
    let (a, b) = (Side::A, Side::B);
    let mut from_a = hub::spoke_sa(a);
    let mut from_b = hub::spoke_sa(b);
    let inner = |s: Side, d: Side, n| lab::lan_frame(s, s.host(1), d.host(1), n)[14..].to_vec();
    let esp_a: Vec<Vec<u8>> = (0..3).map(|k| hub::seal(&mut from_a, a, &inner(a, b, 100 + k))).collect();
    let big = hub::seal(&mut from_a, a, &inner(a, b, 1200));
    let late = hub::seal(&mut from_a, a, &inner(a, b, 900));
    let [f1, f2] = two_fragments(&big, 800, 0x77);
    let [l1, l2] = two_fragments(&late, 512, 0x78);
    let esp_b = hub::seal(&mut from_b, b, &inner(b, a, 64));
    let [o1, _] = two_fragments(&big, 800, 0x79);
    let [o2, _] = two_fragments(&big, 400, 0x79);
    // (name, input, (reassembled, decrypted, encrypted) on the hub)
    type Seed = (&'static str, Vec<u8>, (u64, u64, u64));
    let seeds: Vec<Seed> = vec![
        ("a-to-b-via-w1", esp_a.iter().flat_map(|f| record(W1, f)).collect(), (0, 3, 3)),
        ("a-to-b-fragments-on-both", [record(W0, &f1), record(W1, &f2)].concat(), (1, 1, 1)),
        ("fragments-time-out", [record(W0, &l1), record(W0 | 0x18, &l2)].concat(), (0, 0, 0)),
        ("fragments-overlap", [record(W1, &o1), record(W1, &o2)].concat(), (0, 0, 0)),
        ("spoofed-clear", record(W0, &lab::lan_frame(a, a.host(1), b.host(1), 40)), (0, 0, 0)),
        ("inner-handed-off", record(4, &lab::lan_frame(a, a.host(1), b.host(1), 40)), (0, 0, 1)),
        ("b-to-a-via-w1", record(W1 | 0x20, &esp_b), (0, 1, 1)),
    ];
    let dir = handoff_corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data, want) in seeds {
        let mut h = fuzz::HubPair::default();
        fuzz::hub_bursts(&mut h, &data);
        // (reassembled, decrypted, encrypted) on the hub.
        assert_eq!(h.totals(), want, "{name}");
        std::fs::write(dir.join(name), data).unwrap();
    }
}
