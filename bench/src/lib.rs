//! Fixtures shared by the per-stage criterion benches in `benches/` and by
//! the `microbench-report` tool.
//!
//! * [`SIZES`] and [`inner_packet`]: the inner IPv4/UDP packets every
//!   per-packet bench uses (total IP length 64, 512, 1400 B).
//! * [`TestRng`]: a fixed-seed generator, so every run benches the same
//!   keys and tables.
//! * [`grid_table`], [`mixed_table`], [`keys_hitting`]: proxy-ID tables of
//!   the classifier benches and keys that hit random entries of them.
//! * [`Burst`]: 64 frames in [`VecFrame`]s plus their pristine copies, with
//!   the two ways to reset them between iterations (headers only, or the
//!   whole frame), each benched on its own so its cost can be subtracted.
//! * [`interleaved`]: the goal checks' side-by-side timing (all workloads
//!   in alternating short windows, fastest window kept), robust to a
//!   shared, loaded machine.
//! * [`ndr`]: the throughput bench's no-drop-rate search (sans-IO).
//! * [`ids`]: the criterion benchmark ids, shared by the benches and the
//!   report so that the two cannot drift apart.
//!
//! Everything here panics on a broken fixture (it is set-up code, run
//! before any measurement); nothing here is on a measured path except
//! [`Burst::reset_headers`] and [`Burst::reset_full`], which are measured
//! themselves.

#![allow(clippy::expect_used)] // fixtures: a broken one must stop the bench

use core::net::{IpAddr, Ipv4Addr};

use esprit_dataplane::lab::{self, Side};
use esprit_dataplane::VecFrame;
use esprit_policy::{FlowKey, Prefix, ProxyId, ProxyIdTable, Service};
use esprit_wire::{ethernet, ipv4, udp};

pub mod interleaved;
pub mod ndr;

/// Inner IPv4 packet sizes (total length) of the per-packet benches.
pub const SIZES: [usize; 3] = [64, 512, 1400];

/// Packets per burst (the worker's `MAX_BURST`).
pub const BURST: usize = esprit_dataplane::MAX_BURST;

/// Frame buffer size and headroom, as the AF_XDP shell lays frames out.
pub const FRAME_CAPACITY: usize = 2048;
pub const FRAME_HEADROOM: usize = 256;

/// Bytes restored by [`Burst::reset_headers`]: Ethernet + IPv4 + UDP.
pub const CLEAR_HEADERS: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Criterion ids (`group/function/parameter`), shared with the report.
pub mod ids {
    pub const PARSE: &str = "parse";
    pub const CLASSIFY: &str = "classify";
    /// `/24`-`/24` pairs on a locals x remotes grid.
    pub const GRID: &str = "grid-24";
    /// Overlapping `/16`, `/24` and `/32` on both sides.
    pub const MIXED: &str = "mixed-16-24-32";
    pub const ESP_ENCAP: &str = "esp-encap";
    /// Decapsulation, the copy of the pristine ESP packet included.
    pub const ESP_DECAP: &str = "esp-decap+copy";
    pub const CRYPTO: &str = "crypto";
    pub const RING_SEAL_128: &str = "ring-aes128gcm-seal";
    pub const RING_SEAL_256: &str = "ring-aes256gcm-seal";
    /// ring open, the copy of the pristine ciphertext included.
    pub const RING_OPEN_128: &str = "ring-aes128gcm-open+copy";
    pub const RC_CBC_SHA1: &str = "rustcrypto-aes128cbc-hmacsha1";
    /// The copy that `ESP_DECAP` and `RING_OPEN_128` include.
    pub const COPY_ESP: &str = "copy-esp-packet";
    pub const REPLAY: &str = "esp-replay";
    pub const PIPELINE: &str = "pipeline";
    pub const ENCRYPT: &str = "lan-to-wan-encrypt";
    /// The decrypt path, the copy of 64 pristine frames included.
    pub const DECRYPT: &str = "wan-to-lan-decrypt+copy";
    pub const RESET_HEADERS: &str = "reset-headers";
    pub const COPY_FRAMES: &str = "copy-frames";
}

/// An IPv4/UDP packet of `total_len` bytes (at least 28) from A's host 1 to
/// B's host 1, checksums filled: the lab's LAN frame without Ethernet.
pub fn inner_packet(total_len: usize) -> Vec<u8> {
    let payload = total_len.checked_sub(ipv4::HEADER_LEN + udp::HEADER_LEN).expect("inner packet >= 28 B");
    lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), payload)[ethernet::HEADER_LEN..].to_vec()
}

/// The lab LAN frame (A's host 1 to B's host 1) whose IP packet is
/// `total_len` bytes long.
pub fn lan_frame(total_len: usize) -> Vec<u8> {
    let payload = total_len.checked_sub(ipv4::HEADER_LEN + udp::HEADER_LEN).expect("inner packet >= 28 B");
    lab::lan_frame(Side::A, Side::A.host(1), Side::B.host(1), payload)
}

/// The fixed-seed generator of every bench: reproducible keys and tables.
pub use esprit_testrng::TestRng;

fn v4_prefix(bits: u32, len: u8) -> Prefix {
    Prefix::new_masked(IpAddr::V4(Ipv4Addr::from_bits(bits)), len).expect("IPv4 prefix length <= 32")
}

fn v4_bits(p: &Prefix) -> u32 {
    match p.addr() {
        IpAddr::V4(a) => a.to_bits(),
        IpAddr::V6(_) => unreachable!("bench tables are IPv4"),
    }
}

/// `locals x remotes` proxy-IDs `10.1.l.0/24 -> 10.2.r.0/24 ANY` (the
/// 10,000-entry table is 100 x 100), check on.
pub fn grid_table(locals: u32, remotes: u32) -> ProxyIdTable {
    assert!(locals <= 256 && remotes <= 256, "one octet per side");
    let mut ids = Vec::with_capacity((locals * remotes) as usize);
    for l in 0..locals {
        for r in 0..remotes {
            let text = format!("local-ip 10.1.{l}.0/24 remote-ip 10.2.{r}.0/24 ANY");
            ids.push(text.parse::<ProxyId>().expect("grid proxy-ID"));
        }
    }
    ProxyIdTable::new(ids, true).expect("grid table")
}

/// `n` distinct proxy-IDs mixing `/16`, `/24` and `/32` on both sides (the
/// nine (local, remote) length shapes in equal shares), drawn so that they
/// overlap: locals `10.a.b.c` with a < 64, b < 16; remotes `172.a.b.c`
/// likewise. Check on.
pub fn mixed_table(n: usize) -> ProxyIdTable {
    const LENS: [u8; 3] = [16, 24, 32];
    let mut rng = TestRng::default();
    let mut draw = |first: u32, len: u8| {
        let a = rng.below(64) as u32;
        let b = rng.below(16) as u32;
        let c = rng.below(256) as u32;
        v4_prefix(first << 24 | a << 16 | b << 8 | c, len)
    };
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let shape = ids.len() % 9;
        let local = draw(10, LENS[shape / 3]);
        let remote = draw(172, LENS[shape % 3]);
        let p = ProxyId::new(local, remote, Service::ANY).expect("same family");
        if seen.insert(p) {
            ids.push(p);
        }
    }
    ProxyIdTable::new(ids, true).expect("mixed table")
}

/// `count` UDP keys, each inside a proxy-ID of `table` picked at random
/// (random host bits under both prefixes).
pub fn keys_hitting(table: &ProxyIdTable, count: usize) -> Vec<FlowKey> {
    let mut rng = TestRng::default();
    let pids = table.proxy_ids();
    (0..count)
        .map(|_| {
            let p = &pids[rng.below(pids.len() as u64) as usize];
            let host = |rng: &mut TestRng, pfx: &Prefix| {
                let len = u32::from(pfx.len());
                let host_mask = u32::MAX.checked_shr(len).unwrap_or(0);
                Ipv4Addr::from_bits(v4_bits(pfx) | (rng.next_u64() as u32 & host_mask))
            };
            let src = host(&mut rng, &p.local);
            let dst = host(&mut rng, &p.remote);
            FlowKey::v4(src, dst, 17, 40000 + rng.below(1000) as u16, 5001)
        })
        .collect()
}

/// A burst of frames plus their pristine copies. The pipeline rewrites
/// frames in place (outer headers, ciphertext, trailer; or the decrypted
/// packet moved), so each iteration starts by resetting them.
#[derive(Debug, Clone)]
pub struct Burst {
    pub frames: Vec<VecFrame>,
    pristine: Vec<Vec<u8>>,
}

impl Burst {
    /// The frames as received, each at [`FRAME_HEADROOM`] in a
    /// [`FRAME_CAPACITY`] buffer.
    pub fn new(frames: &[Vec<u8>]) -> Burst {
        Burst {
            frames: frames.iter().map(|f| VecFrame::new(FRAME_CAPACITY, FRAME_HEADROOM, f)).collect(),
            pristine: frames.to_vec(),
        }
    }

    /// Puts each frame back where it was received and restores its first
    /// [`CLEAR_HEADERS`] bytes only. Enough for the encrypt path: it reads
    /// only those bytes (Ethernet, IPv4 header with checksum and TTL, the
    /// UDP ports) and AES-GCM costs the same whatever the payload bytes.
    #[inline]
    pub fn reset_headers(&mut self) {
        for (f, p) in self.frames.iter_mut().zip(&self.pristine) {
            f.head = FRAME_HEADROOM;
            f.len = p.len();
            let n = CLEAR_HEADERS.min(p.len());
            f.buf[FRAME_HEADROOM..FRAME_HEADROOM + n].copy_from_slice(&p[..n]);
        }
    }

    /// Puts each frame back and restores all of its bytes (the decrypt
    /// path needs the exact ciphertext: its ICV must verify).
    #[inline]
    pub fn reset_full(&mut self) {
        for (f, p) in self.frames.iter_mut().zip(&self.pristine) {
            f.head = FRAME_HEADROOM;
            f.len = p.len();
            f.buf[FRAME_HEADROOM..FRAME_HEADROOM + p.len()].copy_from_slice(p);
        }
    }
}
