//! Inbound SA: ESP tunnel-mode decapsulation in place (RFC 4303 §3.4).
//!
//! The caller has stripped the outer IPv4 (and UDP, RFC 3948) header and
//! looked the SA up by SPI; it passes the range that starts at the ESP
//! header and ends with the ICV. [`InboundSa::decapsulate`] then runs, in
//! the order RFC 4303 §3.4 prescribes:
//!
//! 1. length checks, SPI check;
//! 2. sequence number: ESN high half inferred (Appendix A2), anti-replay
//!    pre-check (§3.4.3) — cheap rejection before any cryptography;
//! 3. ICV verification and decryption in place (§3.4.4; for CBC the ICV is
//!    verified first and a forged packet is never decrypted);
//! 4. replay window update — only now that the packet is authentic;
//! 5. padding (§2.4) and next header (§2.6) checks; the inner packet is
//!    trimmed to its own IP length, which drops TFC padding (§2.7);
//!    next header 59 is a dummy packet, reported as [`Payload::Dummy`] so
//!    the caller drops it silently (§2.6).
//!
//! Guarantees: no panic and no allocation for any bytes and any range;
//! the window moves only for authentic packets. After an error the bytes
//! of the range are unspecified (GCM may have decrypted in place before
//! the tag check failed; ring does not restore them).

use core::ops::Range;

use esprit_wire::{ip_proto, ipv4, ipv6};

use crate::crypto::Opener;
use crate::error::{DecapError, SaError};
use crate::outbound::check_key_lengths;
use crate::replay::ReplayWindow;
use esprit_suite::{Suite, ESP_HEADER_LEN, ESP_TRAILER_LEN};

/// Everything but the keys that defines an inbound SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundConfig {
    pub spi: u32,
    pub suite: Suite,
    /// Extended sequence numbers (RFC 4304), as negotiated.
    pub esn: bool,
    /// Anti-replay window in packets, 0..=4096; 0 disables anti-replay
    /// (ScreenOS "no-replay").
    pub replay_window: u32,
    /// The highest sequence number already received: 0 for a new SA.
    /// Non-zero only to resume an SA (every number up to it is then
    /// refused as a replay), and needed with ESN so that the high half is
    /// inferred from the right 2^32 subspace.
    pub last_seq: u64,
}

impl InboundConfig {
    /// Defaults: no ESN, a 64-packet window (RFC 4303 §3.4.3's default).
    pub fn new(spi: u32, suite: Suite) -> InboundConfig {
        InboundConfig { spi, suite, esn: false, replay_window: 64, last_seq: 0 }
    }
}

/// What the decrypted payload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// An IPv4 packet at this range of the buffer (trimmed to its total
    /// length).
    Ipv4(Range<usize>),
    /// An IPv6 packet at this range (trimmed to its header + payload
    /// length).
    Ipv6(Range<usize>),
    /// A dummy packet (next header 59, RFC 4303 §2.6): authentic, counted
    /// by the replay window, to be dropped silently.
    Dummy,
}

/// What [`InboundSa::decapsulate`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decapsulated {
    pub payload: Payload,
    /// The full (ESN-inferred) sequence number.
    pub seq: u64,
}

/// An inbound SA: SPI, opening keys and the anti-replay window. Built once
/// by the management thread, owned by one worker.
///
/// Size (x86-64): 640 bytes = the per-packet state read before the key
/// schedule (window top/size/ring pointer, SPI, ESN flag, suite: one
/// 64-byte line, asserted) + ring's AES-GCM context inline (560 bytes), or for CBC a
/// pointer to a boxed 1152-byte context. The replay ring is a separate
/// allocation made once: 16 B for windows up to 64 packets, 1 KiB for 4096.
#[repr(C)]
pub struct InboundSa {
    hot: Hot,
    opener: Opener,
}

/// What every packet reads and writes, on one 64-byte cache line, the
/// first of [`InboundSa`]; the window's highest number leads it.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct Hot {
    /// Highest number, size and ring pointer.
    window: ReplayWindow,
    spi: u32,
    esn: bool,
    suite: Suite,
}

const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Hot>() == 64);
    assert!(align_of::<Hot>() == 64);
    assert!(offset_of!(Hot, window) == 0);
    assert!(offset_of!(Hot, spi) == size_of::<ReplayWindow>());
    assert!(offset_of!(Hot, suite) < 64);
    assert!(offset_of!(InboundSa, hot) == 0);
};

impl core::fmt::Debug for InboundSa {
    /// Prints the SPI, suite and window, never key material.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:#010x}", self.hot.spi))
            .field("suite", &format_args!("{}", self.hot.suite))
            .field("esn", &self.hot.esn)
            .field("window", &self.hot.window)
            .finish_non_exhaustive()
    }
}

impl InboundSa {
    /// Builds the context. `encr` is the encryption key material (GCM:
    /// key || 4-byte salt), `integ` the integrity key (empty for GCM).
    pub fn new(cfg: &InboundConfig, encr: &[u8], integ: &[u8]) -> Result<InboundSa, SaError> {
        let suite = cfg.suite;
        check_key_lengths(suite, encr, integ)?;
        if cfg.spi < 256 {
            return Err(SaError::ReservedSpi(cfg.spi));
        }
        let window = if cfg.last_seq == 0 {
            ReplayWindow::new(cfg.replay_window)?
        } else {
            ReplayWindow::resume(cfg.replay_window, cfg.last_seq)?
        };
        let opener = Opener::new(suite, encr, integ).map_err(|_| SaError::EncrKeyLen {
            suite,
            expected: suite.encr_key_len(),
            got: encr.len(),
        })?;
        Ok(InboundSa { hot: Hot { window, spi: cfg.spi, esn: cfg.esn, suite }, opener })
    }

    pub fn spi(&self) -> u32 {
        self.hot.spi
    }

    pub fn suite(&self) -> Suite {
        self.hot.suite
    }

    /// Whether extended sequence numbers are in use.
    pub fn esn(&self) -> bool {
        self.hot.esn
    }

    /// The anti-replay state (highest authenticated sequence number, size).
    pub fn replay_window(&self) -> &ReplayWindow {
        &self.hot.window
    }

    /// The shortest ESP packet (header to ICV) this SA can accept: header,
    /// IV, the smallest encrypted part (2 trailer bytes, a whole block for
    /// CBC) and the ICV.
    pub fn min_esp_len(&self) -> usize {
        let s = self.hot.suite;
        ESP_HEADER_LEN
            + s.iv_len()
            + ESP_TRAILER_LEN.max(if s.is_aead() { 0 } else { s.align() })
            + s.icv_len()
    }

    /// Verifies, decrypts and strips the ESP packet at `buf[esp]` in place;
    /// returns where the inner packet is.
    pub fn decapsulate(&mut self, buf: &mut [u8], esp: Range<usize>) -> Result<Decapsulated, DecapError> {
        let Range { start, end } = esp;
        if start > end || end > buf.len() {
            return Err(DecapError::BadRange);
        }
        let suite = self.hot.suite;
        let pkt = &mut buf[start..end];
        if pkt.len() < self.min_esp_len() {
            return Err(DecapError::Truncated);
        }
        let data_at = ESP_HEADER_LEN + suite.iv_len();
        let icv_at = pkt.len() - suite.icv_len();
        if !suite.is_aead() && !(icv_at - data_at).is_multiple_of(suite.align()) {
            return Err(DecapError::BadLength);
        }
        let spi = u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]);
        if spi != self.hot.spi {
            return Err(DecapError::SpiMismatch);
        }
        let seq_lo = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let seq = self.hot.window.infer(seq_lo, self.hot.esn);
        self.hot.window.check(seq)?;

        let seq_hi = self.hot.esn.then_some((seq >> 32) as u32);
        self.opener.open(pkt, seq_hi).map_err(|_| DecapError::IcvMismatch)?;
        self.hot.window.commit(seq)?;

        // Trailer: ... Padding | Pad Length | Next Header (RFC 4303 §2.4, §2.6).
        let plain = &pkt[data_at..icv_at];
        let (next_header, pad_len) = match plain {
            [.., pad_len, nh] => (*nh, usize::from(*pad_len)),
            _ => return Err(DecapError::Truncated),
        };
        let Some(payload_len) = plain.len().checked_sub(ESP_TRAILER_LEN + pad_len) else {
            return Err(DecapError::BadPadding);
        };
        let padding = &plain[payload_len..payload_len + pad_len];
        // Default padding is 1, 2, 3, ... (RFC 4303 §2.4: the receiver
        // SHOULD inspect it).
        if padding.iter().enumerate().any(|(i, &b)| usize::from(b) != i + 1) {
            return Err(DecapError::BadPadding);
        }
        let inner = &plain[..payload_len];
        let from = start + data_at;
        let payload = match next_header {
            ip_proto::IPV4 => {
                let p = ipv4::Packet::new_checked(inner).map_err(|_| DecapError::InnerMalformed)?;
                Payload::Ipv4(from..from + usize::from(p.total_len()))
            }
            ip_proto::IPV6 => {
                let p = ipv6::Packet::new_checked(inner).map_err(|_| DecapError::InnerMalformed)?;
                Payload::Ipv6(from..from + p.total_len())
            }
            ip_proto::NO_NEXT_HEADER => Payload::Dummy,
            _ => return Err(DecapError::BadNextHeader),
        };
        Ok(Decapsulated { payload, seq })
    }
}
