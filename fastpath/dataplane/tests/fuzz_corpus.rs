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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pipeline_burst")
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
        .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
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
    .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
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
#[ignore = "writes fastpath/fuzz/corpus/pipeline_burst"]
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
