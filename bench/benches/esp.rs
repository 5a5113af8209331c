//! ESP stage: encapsulate and decapsulate per suite at inner sizes 64, 512
//! and 1400 B, and in the same run the raw crypto they are built on, so
//! that the report gives ratios measured side by side:
//!
//! * ring `LessSafeKey` AES-128-GCM and AES-256-GCM
//!   `seal_in_place_separate_tag` over exactly what ESP seals for that
//!   inner size (inner + padding + 2 trailer bytes, 8-byte AAD), tag
//!   copied out;
//! * ring AES-128-GCM `open_in_place` over the same ESP packet;
//! * RustCrypto AES-128-CBC + HMAC-SHA1-96 (keyed state cloned per packet,
//!   as `esprit-esp` does) over what ESP encrypts and authenticates.
//!
//! Decapsulation (and ring open) decrypt in place, so every iteration
//! first copies the pristine ESP packet back; that copy is benched alone
//! (`crypto/copy-esp-packet`, the AES-128-GCM packet length; the CBC
//! suites' packets are at most 30 B longer) for the report to subtract.
//! The inbound SAs have anti-replay off (`replay_window: 0`) so the same
//! packet can be opened again and again; the window's own cost is benched
//! separately (`esp-replay`).
//! Encapsulation restores only the inner IPv4 header (20 B) per
//! iteration: it reads nothing else, and encrypting ciphertext again costs
//! what encrypting plaintext does.

#![allow(clippy::expect_used)] // bench set-up: a broken fixture must stop it

use std::hint::black_box;

use aes::cipher::{BlockEncryptMut, KeyIvInit};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use esprit_bench::{ids, inner_packet, FRAME_CAPACITY, FRAME_HEADROOM, SIZES};
use esprit_dataplane::lab::{self, LabOptions, Side};
use esprit_esp::{Payload, ReplayWindow, Suite, ESP_HEADER_LEN, ESP_TRAILER_LEN, IPV4_HEADER_LEN};
use hmac::{Hmac, Mac};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use sha1::Sha1;

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

const INNER: usize = FRAME_HEADROOM;

/// The ESP packet (header to ICV) of `suite` carrying `inner_len` bytes.
fn esp_len(suite: Suite, inner_len: usize) -> usize {
    suite.outer_len(inner_len, false) - IPV4_HEADER_LEN
}

/// Encrypted length (inner + padding + trailer) of `suite` for `inner_len`.
fn sealed_len(suite: Suite, inner_len: usize) -> usize {
    inner_len + suite.pad_len(inner_len) + ESP_TRAILER_LEN
}

fn opts(suite: Suite) -> LabOptions {
    LabOptions { suite, replay_window: 0, ..Default::default() }
}

fn encap(g: &mut Group<'_>, suite: Suite, size: usize) {
    let (mut sa, _) = lab::sa_pair(Side::A, 0, &opts(suite));
    let inner = inner_packet(size);
    let mut buf = vec![0u8; FRAME_CAPACITY];
    buf[INNER..INNER + size].copy_from_slice(&inner);
    sa.encapsulate(&mut buf, INNER..INNER + size).expect("encapsulates");
    g.bench_function(BenchmarkId::new(suite.name(), size), |b| {
        b.iter(|| {
            buf[INNER..INNER + IPV4_HEADER_LEN].copy_from_slice(&inner[..IPV4_HEADER_LEN]);
            black_box(sa.encapsulate(black_box(&mut buf), INNER..INNER + size)).expect("encapsulates")
        })
    });
}

/// The pristine ESP packet of `suite` for an inner packet of `size`, as
/// A's SA 0 sends it, and the buffer range it sits in.
fn sealed_esp(suite: Suite, size: usize) -> (Vec<u8>, core::ops::Range<usize>) {
    let (mut sa, _) = lab::sa_pair(Side::A, 0, &opts(suite));
    let mut buf = vec![0u8; FRAME_CAPACITY];
    buf[INNER..INNER + size].copy_from_slice(&inner_packet(size));
    let enc = sa.encapsulate(&mut buf, INNER..INNER + size).expect("encapsulates");
    let esp = enc.outer.start + IPV4_HEADER_LEN..enc.outer.end;
    assert_eq!(esp.len(), esp_len(suite, size));
    (buf, esp)
}

fn decap(g: &mut Group<'_>, suite: Suite, size: usize) {
    // B's inbound SA for A's SA 0 (same SPI and keys), anti-replay off.
    let (_, mut sa) = lab::sa_pair(Side::B, 0, &opts(suite));
    let (mut buf, esp) = sealed_esp(suite, size);
    let pristine = buf[esp.clone()].to_vec();
    let d = sa.decapsulate(&mut buf, esp.clone()).expect("decapsulates");
    assert!(matches!(d.payload, Payload::Ipv4(ref r) if r.len() == size), "{suite}: {d:?}");
    g.bench_function(BenchmarkId::new(suite.name(), size), |b| {
        b.iter(|| {
            buf[esp.clone()].copy_from_slice(&pristine);
            black_box(sa.decapsulate(black_box(&mut buf), esp.clone())).expect("decapsulates")
        })
    });
}

fn ring_key(alg: &'static aead::Algorithm) -> LessSafeKey {
    let key: Vec<u8> = (0..alg.key_len()).map(|i| i as u8 ^ 0x5c).collect();
    LessSafeKey::new(UnboundKey::new(alg, &key).expect("key length"))
}

fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[..4].copy_from_slice(&[1, 2, 3, 4]);
    n[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// ring seal over what ESP seals for an inner packet of `size`: header
/// and IV (16 B, the header is the AAD), data, 16-byte tag copied out.
fn ring_seal(g: &mut Group<'_>, name: &str, alg: &'static aead::Algorithm, size: usize) {
    let key = ring_key(alg);
    let data_len = sealed_len(Suite::Aes128Gcm16, size);
    let mut esp = vec![0u8; ESP_HEADER_LEN + 8 + data_len + 16];
    let mut seq = 0u64;
    g.bench_function(BenchmarkId::new(name, size), |b| {
        b.iter(|| {
            seq += 1;
            let (head, rest) = esp.split_at_mut(ESP_HEADER_LEN + 8);
            let aad = [head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]];
            let (data, icv) = rest.split_at_mut(data_len);
            let tag =
                key.seal_in_place_separate_tag(nonce(seq), Aad::from(aad), black_box(data)).expect("seals");
            icv.copy_from_slice(tag.as_ref());
            black_box(&esp);
        })
    });
}

/// Copy of the pristine packet + ring open, as decapsulation does it.
fn ring_open(g: &mut Group<'_>, size: usize) {
    let key = ring_key(&aead::AES_128_GCM);
    let data_len = sealed_len(Suite::Aes128Gcm16, size);
    let mut pristine = vec![0u8; ESP_HEADER_LEN + 8 + data_len + 16];
    {
        let (head, rest) = pristine.split_at_mut(ESP_HEADER_LEN + 8);
        let aad = [head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]];
        let (data, icv) = rest.split_at_mut(data_len);
        let tag = key.seal_in_place_separate_tag(nonce(1), Aad::from(aad), data).expect("seals");
        icv.copy_from_slice(tag.as_ref());
    }
    let mut esp = pristine.clone();
    g.bench_function(BenchmarkId::new(ids::RING_OPEN_128, size), |b| {
        b.iter(|| {
            esp.copy_from_slice(&pristine);
            let (head, rest) = esp.split_at_mut(ESP_HEADER_LEN + 8);
            let aad = [head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]];
            black_box(key.open_in_place(nonce(1), Aad::from(aad), black_box(rest)).expect("opens").len())
        })
    });
}

/// The copy included in `ring_open` and the AES-128-GCM decapsulation.
fn copy_esp(g: &mut Group<'_>, size: usize) {
    let (buf, esp) = sealed_esp(Suite::Aes128Gcm16, size);
    let pristine = buf[esp.clone()].to_vec();
    let mut buf = buf;
    g.bench_function(BenchmarkId::new(ids::COPY_ESP, size), |b| {
        b.iter(|| {
            black_box(&mut buf)[esp.clone()].copy_from_slice(black_box(&pristine));
        })
    });
}

/// RustCrypto AES-128-CBC encrypt + HMAC-SHA1-96 over what ESP
/// (aes128-sha1) encrypts and authenticates for an inner packet of `size`.
fn cbc_sha1(g: &mut Group<'_>, size: usize) {
    let suite = Suite::Aes128CbcSha1;
    let data_len = sealed_len(suite, size);
    let mut esp = vec![0u8; ESP_HEADER_LEN + 16 + data_len + 12];
    let key = [0x11u8; 16];
    let iv = [0x22u8; 16];
    let mac = <Hmac<Sha1> as Mac>::new_from_slice(&[0x33u8; 20]).expect("any HMAC key length");
    g.bench_function(BenchmarkId::new(ids::RC_CBC_SHA1, size), |b| {
        b.iter(|| {
            let icv_at = esp.len() - 12;
            let data = &mut esp[ESP_HEADER_LEN + 16..icv_at];
            cbc::Encryptor::<aes::Aes128>::new(&key.into(), &iv.into())
                .encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(black_box(data), data_len)
                .expect("whole blocks");
            let mut m = mac.clone();
            m.update(&esp[..icv_at]);
            let out = m.finalize().into_bytes();
            esp[icv_at..].copy_from_slice(&out[..12]);
            black_box(&esp);
        })
    });
}

fn replay(c: &mut Criterion) {
    let mut g = c.benchmark_group(ids::REPLAY);
    g.throughput(Throughput::Elements(1));
    let mut w = ReplayWindow::new(64).expect("64 fits");
    let mut seq = 0u32;
    g.bench_function("infer-check-commit-64", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1).max(1);
            let s = w.infer(black_box(seq), false);
            // After a 2^32 wrap (never in a run this short) numbers repeat.
            if w.check(s).is_ok() {
                black_box(w.commit(s)).ok();
            }
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group(ids::CRYPTO);
    g.throughput(Throughput::Elements(1));
    for size in SIZES {
        ring_seal(&mut g, ids::RING_SEAL_128, &aead::AES_128_GCM, size);
        ring_seal(&mut g, ids::RING_SEAL_256, &aead::AES_256_GCM, size);
        ring_open(&mut g, size);
        copy_esp(&mut g, size);
        cbc_sha1(&mut g, size);
    }
    g.finish();

    let mut g = c.benchmark_group(ids::ESP_ENCAP);
    g.throughput(Throughput::Elements(1));
    for suite in Suite::ALL {
        for size in SIZES {
            encap(&mut g, suite, size);
        }
    }
    g.finish();

    let mut g = c.benchmark_group(ids::ESP_DECAP);
    g.throughput(Throughput::Elements(1));
    for suite in Suite::ALL {
        for size in SIZES {
            decap(&mut g, suite, size);
        }
    }
    g.finish();
    replay(c);
}

criterion_group!(benches, bench);
criterion_main!(benches);
