//! Outbound SA: ESP tunnel-mode encapsulation in place (RFC 4303 §3.3).
//!
//! The caller hands a frame buffer and the range of the inner IPv4/IPv6
//! packet inside it, with headroom before it and tailroom after it (see
//! [`Suite::headroom`], [`Suite::max_tailroom`], [`crate::MAX_HEADROOM`],
//! [`crate::MAX_TAILROOM`]). [`OutboundSa::encapsulate`] writes
//!
//! ```text
//!  outer IPv4 (20) [UDP (8), RFC 3948] ESP hdr (8) IV (8|16)  inner packet  pad 1,2,3.. padlen nh  ICV
//! |<------------------ headroom ------------------------->|<-- inner -->|<------ tailroom ------->|
//!                                                         |<-------- encrypted ------->|
//! ```
//!
//! and returns the range of the outer packet. It never allocates, never
//! panics on any input, and on error leaves the SA unchanged (no sequence
//! number consumed).
//!
//! Outer header policy (RFC 4301 §5.1.2.1 and §8.1, RFC 6040):
//! * TOS: DSCP copied from the inner header; ECN copied too (RFC 6040 §4.1
//!   "normal mode": the outer header reveals congestion capability, and
//!   the decapsulator folds outer CE back into the inner header — see
//!   [`crate::ecn`]).
//! * DF: [`DfPolicy::Copy`] (default) copies DF from an inner IPv4 header
//!   and sets it for inner IPv6 (IPv6 is never fragmented in flight, so the
//!   tunnel should not be either); `Set` and `Clear` override (RFC 4301
//!   §8.1 lets the SA choose).
//! * TTL: per SA, 64 by default. Ident: a per-SA counter (RFC 6864 only
//!   requires uniqueness for fragmentable packets).
//! * UDP encapsulation (RFC 3948 §2.1): checksum 0, which RFC 3948 §3.1
//!   allows over IPv4.

use core::net::Ipv4Addr;
use core::ops::Range;

use esprit_wire::{esp, ip_proto, ipv4, ipv6, udp};

use crate::crypto::Sealer;
use crate::error::{EncapError, SaError};
use esprit_suite::{Suite, ESP_HEADER_LEN, ESP_TRAILER_LEN, IPV4_HEADER_LEN, UDP_HEADER_LEN};

/// How the outer DF bit is chosen (RFC 4301 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DfPolicy {
    /// Copy DF from an inner IPv4 packet; set it for inner IPv6.
    #[default]
    Copy,
    /// Always set DF.
    Set,
    /// Always clear DF.
    Clear,
}

/// UDP ports of ESP-in-UDP (RFC 3948), usually 4500 -> 4500 or the NAT's
/// mapped port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    pub src_port: u16,
    pub dst_port: u16,
}

/// Everything but the keys that defines an outbound SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundConfig {
    pub spi: u32,
    pub suite: Suite,
    /// Extended sequence numbers (RFC 4304), as negotiated.
    pub esn: bool,
    /// Outer source (the local gateway address).
    pub src: Ipv4Addr,
    /// Outer destination (the peer).
    pub dst: Ipv4Addr,
    /// `Some` for ESP-in-UDP (NAT traversal, RFC 3948).
    pub udp_encap: Option<UdpEncap>,
    /// Outer TTL.
    pub ttl: u8,
    pub df: DfPolicy,
    /// The last sequence number already sent: 0 for a new SA (the first
    /// packet then carries 1, RFC 4303 §3.3.3). Non-zero only to resume.
    pub last_seq: u64,
    /// From this sequence number on, [`OutboundSa::needs_rekey`] is true:
    /// the control plane should have a new SA ready before the hard limit.
    pub soft_seq_limit: u64,
}

impl OutboundConfig {
    /// Default soft limit without ESN: 7/8 of the 32-bit space.
    pub const DEFAULT_SOFT_LIMIT: u64 = 0xe000_0000;
    /// Default soft limit with ESN: 7/8 of the 64-bit space.
    pub const DEFAULT_SOFT_LIMIT_ESN: u64 = 0xe000_0000_0000_0000;

    /// A configuration with the defaults: no ESN, no UDP encapsulation,
    /// TTL 64, DF copied, a new SA.
    pub fn new(spi: u32, suite: Suite, src: Ipv4Addr, dst: Ipv4Addr) -> OutboundConfig {
        OutboundConfig {
            spi,
            suite,
            esn: false,
            src,
            dst,
            udp_encap: None,
            ttl: 64,
            df: DfPolicy::Copy,
            last_seq: 0,
            soft_seq_limit: OutboundConfig::DEFAULT_SOFT_LIMIT,
        }
    }

    /// Turns ESN on, moving the soft limit to its ESN default if it was the
    /// non-ESN default.
    pub fn with_esn(mut self) -> OutboundConfig {
        self.esn = true;
        if self.soft_seq_limit == OutboundConfig::DEFAULT_SOFT_LIMIT {
            self.soft_seq_limit = OutboundConfig::DEFAULT_SOFT_LIMIT_ESN;
        }
        self
    }

    /// ESP-in-UDP with these ports.
    pub fn with_udp_encap(mut self, src_port: u16, dst_port: u16) -> OutboundConfig {
        self.udp_encap = Some(UdpEncap { src_port, dst_port });
        self
    }
}

/// What [`OutboundSa::encapsulate`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encapsulated {
    /// The outer IPv4 packet inside the buffer.
    pub outer: Range<usize>,
    /// The full (64-bit) sequence number used.
    pub seq: u64,
    /// True for exactly the packet whose sequence number reached the soft
    /// limit: the moment to ask the control plane for a rekey.
    pub soft_limit_crossed: bool,
}

/// The fields read and written for every packet, kept together on one
/// 64-byte cache line, the first of [`OutboundSa`] (offsets asserted
/// below). The key schedule follows.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct Hot {
    /// Last sequence number sent.
    seq: u64,
    /// Last sequence number that may be sent (2^32 - 1 or 2^64 - 1).
    seq_max: u64,
    soft_limit: u64,
    spi: u32,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    udp_src: u16,
    udp_dst: u16,
    ident: u16,
    udp: bool,
    esn: bool,
    df: DfPolicy,
    suite: Suite,
}

// The line, first in the context; the sequence number leads it, the
// limits it is checked against and the SPI follow.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Hot>() == 64 && align_of::<Hot>() == 64 && offset_of!(OutboundSa, hot) == 0);
    let (seq, seq_max, soft_limit) =
        (offset_of!(Hot, seq), offset_of!(Hot, seq_max), offset_of!(Hot, soft_limit));
    assert!(seq == 0 && seq_max == 8 && soft_limit == 16);
    assert!(offset_of!(Hot, spi) == 24 && offset_of!(Hot, suite) < 64);
};

/// An outbound SA: its header fields, sequence counter and sealing keys.
/// Built once by the management thread (key schedule), then owned by one
/// worker, which calls [`OutboundSa::encapsulate`] per packet.
///
/// Size (x86-64): 704 bytes = one 64-byte line of per-packet fields
/// (sequence number, limits, SPI, addresses, ports, ident, flags), the
/// outer header template, ring's AES-GCM key schedule inline (560 bytes),
/// rounded up to whole lines. For CBC suites the 560 bytes
/// hold a pointer to a boxed 1856-byte context (AES-NI and bitsliced
/// fallback key schedules of `aes`, the IV key, the keyed HMAC state).
#[repr(C)]
pub struct OutboundSa {
    hot: Hot,
    /// The outer IPv4 header with its fixed fields and their partial sum.
    outer: ipv4::HeaderTemplate,
    sealer: Sealer,
}

impl core::fmt::Debug for OutboundSa {
    /// Prints the header fields and counters, never key material.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:#010x}", self.hot.spi))
            .field("suite", &format_args!("{}", self.hot.suite))
            .field("seq", &self.hot.seq)
            .field("esn", &self.hot.esn)
            .field("src", &self.hot.src)
            .field("dst", &self.hot.dst)
            .field("udp", &self.hot.udp)
            .finish_non_exhaustive()
    }
}

impl OutboundSa {
    /// Builds the context. `encr` is the encryption key material (GCM:
    /// key || 4-byte salt), `integ` the integrity key (empty for GCM),
    /// `iv_key` 16 random bytes from the control plane used to derive
    /// unpredictable CBC IVs without a system call per packet (ignored for
    /// GCM, whose IV is the sequence number).
    pub fn new(
        cfg: &OutboundConfig,
        encr: &[u8],
        integ: &[u8],
        iv_key: &[u8; 16],
    ) -> Result<OutboundSa, SaError> {
        let suite = cfg.suite;
        check_key_lengths(suite, encr, integ)?;
        if cfg.spi < 256 {
            return Err(SaError::ReservedSpi(cfg.spi));
        }
        let seq_max = if cfg.esn { u64::MAX } else { u64::from(u32::MAX) };
        if cfg.last_seq > seq_max {
            return Err(SaError::InitialSeq(cfg.last_seq));
        }
        let sealer = Sealer::new(suite, encr, integ, iv_key).map_err(|_| SaError::EncrKeyLen {
            suite,
            expected: suite.encr_key_len(),
            got: encr.len(),
        })?;
        let (udp, udp_src, udp_dst) = match cfg.udp_encap {
            Some(u) => (true, u.src_port, u.dst_port),
            None => (false, 0, 0),
        };
        let protocol = if udp { ip_proto::UDP } else { ip_proto::ESP };
        let outer = ipv4::HeaderTemplate::new(cfg.src, cfg.dst, protocol, cfg.ttl);
        Ok(OutboundSa {
            outer,
            hot: Hot {
                seq: cfg.last_seq,
                seq_max,
                soft_limit: cfg.soft_seq_limit,
                spi: cfg.spi,
                src: cfg.src,
                dst: cfg.dst,
                udp_src,
                udp_dst,
                ident: 0,
                udp,
                esn: cfg.esn,
                df: cfg.df,
                suite,
            },
            sealer,
        })
    }

    pub fn spi(&self) -> u32 {
        self.hot.spi
    }

    pub fn suite(&self) -> Suite {
        self.hot.suite
    }

    /// The outer destination: the peer gateway this SA sends to.
    pub fn outer_dst(&self) -> Ipv4Addr {
        self.hot.dst
    }

    /// The outer source: this gateway's address.
    pub fn outer_src(&self) -> Ipv4Addr {
        self.hot.src
    }

    /// Whether extended sequence numbers are in use (RFC 4303 §2.2.1).
    pub fn esn(&self) -> bool {
        self.hot.esn
    }

    /// The last sequence number sent (0 before the first packet).
    pub fn last_seq(&self) -> u64 {
        self.hot.seq
    }

    /// True once the sequence number has reached the soft limit: time to
    /// rekey (RFC 4303 §3.3.3 forbids cycling the counter).
    pub fn needs_rekey(&self) -> bool {
        self.hot.seq >= self.hot.soft_limit
    }

    /// True when no sequence number is left: every further
    /// [`OutboundSa::encapsulate`] fails with `SequenceExhausted`.
    pub fn is_exhausted(&self) -> bool {
        self.hot.seq >= self.hot.seq_max
    }

    /// Bytes this SA writes before the inner packet.
    pub fn headroom(&self) -> usize {
        self.hot.suite.headroom(self.hot.udp)
    }

    /// Bytes this SA writes after an inner packet of `inner_len` bytes.
    pub fn tailroom(&self, inner_len: usize) -> usize {
        self.hot.suite.tailroom(inner_len)
    }

    /// The outer packet length for an inner packet of `inner_len` bytes.
    pub fn outer_len(&self, inner_len: usize) -> usize {
        self.hot.suite.outer_len(inner_len, self.hot.udp)
    }

    /// The largest inner packet whose outer packet fits `path_mtu`.
    pub fn max_inner_len(&self, path_mtu: usize) -> usize {
        self.hot.suite.max_inner_len(path_mtu, self.hot.udp)
    }

    /// Encrypts the inner packet at `buf[inner]` in place into a tunnel-mode
    /// ESP packet and writes the outer headers before it; returns the range
    /// of the outer IPv4 packet in `buf`.
    pub fn encapsulate(&mut self, buf: &mut [u8], inner: Range<usize>) -> Result<Encapsulated, EncapError> {
        let Range { start, end } = inner;
        if start > end || end > buf.len() {
            return Err(EncapError::BadRange);
        }
        let h = &self.hot;
        let suite = h.suite;
        let inner_len = end - start;
        let (tos, inner_df, next_header) = inspect_inner(&buf[start..end])?;

        let head = suite.headroom(h.udp);
        if start < head {
            return Err(EncapError::Headroom { need: head, have: start });
        }
        let pad = suite.pad_len(inner_len);
        let tail = pad + ESP_TRAILER_LEN + suite.icv_len();
        if buf.len() - end < tail {
            return Err(EncapError::Tailroom { need: tail, have: buf.len() - end });
        }
        let outer_len = head + inner_len + tail;
        if outer_len > usize::from(u16::MAX) {
            return Err(EncapError::TooBig);
        }
        // RFC 4303 §3.3.3: never cycle the counter; the SA dies instead.
        if h.seq >= h.seq_max {
            return Err(EncapError::SequenceExhausted);
        }
        let seq = h.seq + 1;

        // RFC 4303 §2.4 default padding 1, 2, 3, ...; then Pad Length and
        // Next Header (§2.6).
        let trailer = &mut buf[end..end + pad + ESP_TRAILER_LEN];
        for (i, b) in trailer.iter_mut().take(pad).enumerate() {
            *b = (i + 1) as u8;
        }
        trailer[pad] = pad as u8;
        trailer[pad + 1] = next_header;

        let outer_start = start - head;
        let esp_start = start - suite.iv_len() - ESP_HEADER_LEN;
        let esp_end = end + tail;
        esp::Repr { spi: h.spi, seq: seq as u32 }.emit(&mut buf[esp_start..esp_start + ESP_HEADER_LEN]);
        // RFC 4303 §2.2.1: the high half of an ESN is authenticated, not sent.
        let seq_hi = h.esn.then_some((seq >> 32) as u32);
        self.sealer.seal(&mut buf[esp_start..esp_end], seq, seq_hi).map_err(|_| EncapError::Crypto)?;

        let h = &mut self.hot;
        if h.udp {
            udp::Repr { src_port: h.udp_src, dst_port: h.udp_dst, payload_len: (esp_end - esp_start) as u16 }
                .emit(&mut buf[esp_start - UDP_HEADER_LEN..esp_start]);
        }
        let dont_frag = match h.df {
            DfPolicy::Copy => inner_df,
            DfPolicy::Set => true,
            DfPolicy::Clear => false,
        };
        // DSCP and ECN copied: RFC 4301 §5.1.2.1, RFC 6040 §4.1. The fixed
        // fields come from the SA's template (addresses, protocol, TTL).
        self.outer.emit(
            &mut buf[outer_start..outer_start + IPV4_HEADER_LEN],
            tos,
            outer_len as u16,
            h.ident,
            dont_frag,
        );

        h.ident = h.ident.wrapping_add(1);
        h.seq = seq;
        Ok(Encapsulated { outer: outer_start..esp_end, seq, soft_limit_crossed: seq == h.soft_limit })
    }
}

/// Checks that the key lengths fit the suite, naming which one does not.
pub(crate) fn check_key_lengths(suite: Suite, encr: &[u8], integ: &[u8]) -> Result<(), SaError> {
    if encr.len() != suite.encr_key_len() {
        return Err(SaError::EncrKeyLen { suite, expected: suite.encr_key_len(), got: encr.len() });
    }
    if integ.len() != suite.integ_key_len() {
        return Err(SaError::IntegKeyLen { suite, expected: suite.integ_key_len(), got: integ.len() });
    }
    Ok(())
}

/// Validates the inner packet and returns (TOS/traffic class, DF, next
/// header for the ESP trailer).
fn inspect_inner(p: &[u8]) -> Result<(u8, bool, u8), EncapError> {
    match p.first().map(|b| b >> 4) {
        Some(4) if p.len() >= ipv4::HEADER_LEN => {
            let v = ipv4::Packet::new_unchecked(p);
            if usize::from(v.total_len()) != p.len() {
                return Err(EncapError::InnerLength);
            }
            v.check_len().map_err(|_| EncapError::InnerNotIp)?;
            Ok((v.tos(), v.dont_frag(), ip_proto::IPV4))
        }
        Some(6) if p.len() >= ipv6::HEADER_LEN => {
            let v = ipv6::Packet::new_unchecked(p);
            if v.total_len() != p.len() {
                return Err(EncapError::InnerLength);
            }
            v.check_len().map_err(|_| EncapError::InnerNotIp)?;
            Ok((v.traffic_class(), true, ip_proto::IPV6))
        }
        _ => Err(EncapError::InnerNotIp),
    }
}
