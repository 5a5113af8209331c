//! Fuzz entry points: what `fuzz/` targets call, and what this
//! crate's tests replay from the kept corpora. Not an API for anything else.
//!
//! [`esp_decapsulate`] drives the inbound path three ways from one input:
//!
//! 1. the bytes as an ESP packet, for every suite, as they come and with
//!    the SA's SPI written in (so the replay check and the ICV check are
//!    reached): never a panic, the window moved only by authentic packets
//!    (seeds sealed with [`keys`] pass the ICV, and mutations of them
//!    reach the checks after it);
//! 2. the bytes as the *plaintext* of an ESP packet sealed validly for an
//!    AES-GCM SA, with ring directly (RFC 4106: nonce = salt || IV, AAD =
//!    SPI || seq, or SPI || seq_hi || seq_lo with ESN): arbitrary padding,
//!    pad length and next header then reach the checks after the ICV, and
//!    the outcome must equal a model of RFC 4303 §2.4-§2.6 written here;
//! 3. when the bytes start with a valid IPv4 or IPv6 packet, an
//!    encapsulate -> decapsulate round trip for every suite, with and
//!    without ESN and UDP encapsulation, that must give the packet back.

// A fuzz body asserts its invariants: a failed one is a finding.
#![allow(clippy::unwrap_used)]

use core::net::Ipv4Addr;
use core::ops::Range;

use esprit_wire::{ip_proto, ipv4, ipv6};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::{
    DecapError, InboundConfig, InboundSa, OutboundConfig, OutboundSa, Payload, Suite, ESP_HEADER_LEN,
    ESP_TRAILER_LEN, IPV4_HEADER_LEN, MAX_HEADROOM, MAX_TAILROOM, UDP_HEADER_LEN,
};

/// The SPI of every fuzzed SA.
pub const SPI: u32 = 0x0000_c0de;
const IV_KEY: [u8; 16] = [0x5a; 16];

/// Fixed key material for `suite`: (encryption || GCM salt, integrity).
pub fn keys(suite: Suite) -> (Vec<u8>, Vec<u8>) {
    let e = (0..suite.encr_key_len()).map(|i| (i as u8).wrapping_mul(13).wrapping_add(1)).collect();
    let a = (0..suite.integ_key_len()).map(|i| (i as u8).wrapping_mul(29).wrapping_add(7)).collect();
    (e, a)
}

fn inbound(suite: Suite, esn: bool, last_seq: u64) -> InboundSa {
    let (e, a) = keys(suite);
    let mut c = InboundConfig::new(SPI, suite);
    c.esn = esn;
    c.last_seq = last_seq;
    InboundSa::new(&c, &e, &a).unwrap()
}

/// The three modes of the module doc, on one input. Must never panic.
pub fn esp_decapsulate(data: &[u8]) {
    forged(data);
    sealed_plaintext(data);
    round_trip(data);
}

/// Mode 1: `data` as an ESP packet (header to ICV) for every suite.
pub fn forged(data: &[u8]) {
    let mut buf = data.to_vec();
    let mut patched = data.to_vec();
    if let Some(spi) = patched.get_mut(..4) {
        spi.copy_from_slice(&SPI.to_be_bytes());
    }
    // A range from the first two bytes: may be reversed or out of bounds.
    let odd = match data {
        [a, b, ..] => usize::from(*a)..usize::from(*b),
        _ => data.len()..data.len() + 1,
    };
    for suite in Suite::ALL {
        for (esn, last_seq) in [(false, 0), (true, 0x1_0000_0000)] {
            let mut sa = inbound(suite, esn, last_seq);
            let r = sa.decapsulate(&mut buf, 0..data.len());
            check(&sa, &r, 0..data.len(), last_seq);
            buf.copy_from_slice(data);
            let top = sa.replay_window().top();
            let r = sa.decapsulate(&mut patched, 0..data.len());
            check(&sa, &r, 0..data.len(), top);
            if data.len() >= 4 {
                patched[4..].copy_from_slice(&data[4..]);
            }
            let top = sa.replay_window().top();
            let r = sa.decapsulate(&mut buf, odd.clone());
            if odd.start > odd.end || odd.end > buf.len() {
                assert_eq!(r, Err(DecapError::BadRange));
            } else {
                check(&sa, &r, odd.clone(), top);
            }
            buf.copy_from_slice(data);
        }
    }
}

/// What holds after any decapsulation: an accepted packet (a seed sealed
/// with the fixed keys, or the fuzzer's luck) yields an inner packet inside
/// the ESP range and moves the window to its number; a refused one leaves
/// the window where it was, `top_before`.
fn check(sa: &InboundSa, r: &Result<crate::Decapsulated, DecapError>, esp: Range<usize>, top_before: u64) {
    let top = sa.replay_window().top();
    match r {
        Ok(d) => {
            assert_eq!(top, top_before.max(d.seq));
            if let Payload::Ipv4(p) | Payload::Ipv6(p) = &d.payload {
                let data_at = esp.start + ESP_HEADER_LEN + sa.suite().iv_len();
                assert!(data_at <= p.start && p.start <= p.end && p.end <= esp.end - sa.suite().icv_len());
            }
        }
        // Refused before the ICV verified, or not authentic: unchanged.
        // Refused after it (padding, next header, inner packet): moved.
        Err(DecapError::BadPadding | DecapError::BadNextHeader | DecapError::InnerMalformed) => {
            assert!(top >= top_before);
        }
        Err(_) => assert_eq!(top, top_before),
    }
}

/// Mode 2: `data` as the plaintext (payload | padding | pad length | next
/// header) of a GCM packet sealed with the SA's keys; the result must be
/// what RFC 4303 §2.4-§2.6 say.
pub fn sealed_plaintext(data: &[u8]) {
    for suite in [Suite::Aes128Gcm16, Suite::Aes256Gcm16] {
        // Without ESN, sequence 1 of a new SA; with ESN, the first number
        // of the second 2^32 subspace (seq_hi = 1 only in the AAD).
        for (esn, last_seq, seq) in [(false, 0, 1u64), (true, 0xffff_fff0, 0x1_0000_0002)] {
            let mut sa = inbound(suite, esn, last_seq);
            let off = 7; // the ESP packet does not start at 0
            let mut buf = vec![0u8; off + ESP_HEADER_LEN + 8 + data.len() + 16 + 3];
            let esp = off..off + ESP_HEADER_LEN + 8 + data.len() + 16;
            gcm_seal(suite, &mut buf[esp.clone()], seq, esn, data);
            let r = sa.decapsulate(&mut buf, esp.clone());
            let want = model(data);
            match (&r, &want) {
                (Ok(d), Ok(w)) => {
                    assert_eq!(d.seq, seq);
                    let from = esp.start + ESP_HEADER_LEN + 8;
                    match (&d.payload, w) {
                        (Payload::Ipv4(got), Payload::Ipv4(w)) | (Payload::Ipv6(got), Payload::Ipv6(w)) => {
                            assert_eq!(*got, from + w.start..from + w.end);
                            assert_eq!(&buf[got.clone()], &data[w.clone()]);
                        }
                        (Payload::Dummy, Payload::Dummy) => {}
                        (g, w) => panic!("{suite}: payload {g:?}, model {w:?}"),
                    }
                    assert_eq!(sa.replay_window().top(), seq);
                }
                (Err(e), Err(w)) => {
                    assert_eq!(e, w, "{suite} esn={esn}");
                    // Authentic: the window moved even though the payload
                    // was refused (RFC 4303 §3.4.3 orders the update after
                    // the ICV check, before the payload checks).
                    if *e != DecapError::Truncated {
                        assert_eq!(sa.replay_window().top(), seq);
                    }
                }
                _ => panic!("{suite} esn={esn}: decapsulate {r:?}, model {want:?}"),
            }
            // The same packet again is a replay.
            if r.is_ok() {
                let mut again = vec![0u8; buf.len()];
                gcm_seal(suite, &mut again[esp.clone()], seq, esn, data);
                assert_eq!(sa.decapsulate(&mut again, esp.clone()), Err(DecapError::ReplayDuplicate));
            }
        }
    }
}

/// RFC 4106 sealing with ring, independent of this crate's `crypto`:
/// `esp` = SPI | seq_lo | IV (= seq) | ciphertext of `plain` | ICV.
fn gcm_seal(suite: Suite, esp: &mut [u8], seq: u64, esn: bool, plain: &[u8]) {
    let (material, _) = keys(suite);
    let (key, salt) = material.split_at(suite.aes_key_len());
    let alg = if suite == Suite::Aes128Gcm16 { &aead::AES_128_GCM } else { &aead::AES_256_GCM };
    let key = LessSafeKey::new(UnboundKey::new(alg, key).unwrap());
    esp[..4].copy_from_slice(&SPI.to_be_bytes());
    esp[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
    esp[8..16].copy_from_slice(&seq.to_be_bytes());
    let mut nonce = [0u8; aead::NONCE_LEN];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    // RFC 4106 §5: AAD = SPI || seq (8 bytes) or SPI || seq_hi || seq_lo.
    let mut aad = SPI.to_be_bytes().to_vec();
    if esn {
        aad.extend_from_slice(&((seq >> 32) as u32).to_be_bytes());
    }
    aad.extend_from_slice(&(seq as u32).to_be_bytes());
    let (body, icv) = esp[16..].split_at_mut(plain.len());
    body.copy_from_slice(plain);
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad[..]), body)
        .unwrap();
    icv.copy_from_slice(tag.as_ref());
}

/// What decapsulation must make of an authentic plaintext, with ranges
/// relative to the plaintext: RFC 4303 §2.4 (padding 1, 2, 3, ...), §2.6
/// (next header IPv4, IPv6, or 59 for a dummy packet), the inner packet
/// trimmed to its own length (§2.7, TFC padding).
fn model(plain: &[u8]) -> Result<Payload, DecapError> {
    let [.., pad_len, nh] = plain else { return Err(DecapError::Truncated) };
    let pad_len = usize::from(*pad_len);
    if pad_len + ESP_TRAILER_LEN > plain.len() {
        return Err(DecapError::BadPadding);
    }
    let payload_len = plain.len() - ESP_TRAILER_LEN - pad_len;
    if (1..=pad_len).any(|i| usize::from(plain[payload_len + i - 1]) != i) {
        return Err(DecapError::BadPadding);
    }
    let inner = &plain[..payload_len];
    match *nh {
        ip_proto::IPV4 => {
            // Version 4, IHL >= 5, IHL*4 <= total length <= bytes present.
            let ok = inner.len() >= 20 && inner[0] >> 4 == 4 && {
                let ihl = usize::from(inner[0] & 0xf) * 4;
                let total = usize::from(u16::from_be_bytes([inner[2], inner[3]]));
                ihl >= 20 && total >= ihl && total <= inner.len()
            };
            if !ok {
                return Err(DecapError::InnerMalformed);
            }
            Ok(Payload::Ipv4(0..usize::from(u16::from_be_bytes([inner[2], inner[3]]))))
        }
        ip_proto::IPV6 => {
            let ok = inner.len() >= 40 && inner[0] >> 4 == 6 && {
                40 + usize::from(u16::from_be_bytes([inner[4], inner[5]])) <= inner.len()
            };
            if !ok {
                return Err(DecapError::InnerMalformed);
            }
            Ok(Payload::Ipv6(0..40 + usize::from(u16::from_be_bytes([inner[4], inner[5]]))))
        }
        ip_proto::NO_NEXT_HEADER => Ok(Payload::Dummy),
        _ => Err(DecapError::BadNextHeader),
    }
}

/// Mode 3: when `data` starts with an IPv4 or IPv6 packet, that packet
/// (trimmed to its length field) must survive encapsulate -> decapsulate
/// unchanged for every suite, with and without ESN and UDP encapsulation.
pub fn round_trip(data: &[u8]) {
    let (inner, v4) = match data.first().map(|b| b >> 4) {
        Some(4) => match ipv4::Packet::new_checked(data) {
            Ok(p) => (&data[..usize::from(p.total_len())], true),
            Err(_) => return,
        },
        Some(6) => match ipv6::Packet::new_checked(data) {
            Ok(p) => (&data[..p.total_len()], false),
            Err(_) => return,
        },
        _ => return,
    };
    // A little more than the largest headroom, so offsets vary by suite.
    let at = MAX_HEADROOM + 3;
    for suite in Suite::ALL {
        for (udp, esn) in [(false, false), (true, true)] {
            let (e, a) = keys(suite);
            let mut oc =
                OutboundConfig::new(SPI, suite, Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
            if esn {
                oc = oc.with_esn();
                oc.last_seq = 0xffff_ffff; // the next one crosses into seq_hi = 1
            }
            if udp {
                oc = oc.with_udp_encap(4500, 4500);
            }
            let mut out = OutboundSa::new(&oc, &e, &a, &IV_KEY).unwrap();
            let mut sa = inbound(suite, esn, if esn { 0xffff_fff0 } else { 0 });
            let mut buf = vec![0u8; at + inner.len() + MAX_TAILROOM];
            buf[at..at + inner.len()].copy_from_slice(inner);
            let enc = match out.encapsulate(&mut buf, at..at + inner.len()) {
                Ok(enc) => enc,
                // Only a packet too big for an outer IPv4 may be refused.
                Err(crate::EncapError::TooBig) => return,
                Err(err) => panic!("{suite}: valid inner packet refused: {err}"),
            };
            assert_eq!(enc.outer.len(), out.outer_len(inner.len()));
            let esp: Range<usize> =
                enc.outer.start + IPV4_HEADER_LEN + if udp { UDP_HEADER_LEN } else { 0 }..enc.outer.end;
            let d = sa.decapsulate(&mut buf, esp).unwrap();
            assert_eq!(d.seq, enc.seq);
            let got = match d.payload {
                Payload::Ipv4(r) if v4 => r,
                Payload::Ipv6(r) if !v4 => r,
                p => panic!("{suite}: payload {p:?}"),
            };
            assert_eq!(&buf[got], inner, "{suite}: inner packet changed");
        }
    }
}
