//! Reassembly of outer IPv4 fragments: ESP (protocol 50) and ESP-in-UDP
//! datagrams addressed to the gateway that a path with a small MTU cut up.
//! RFC 4303 §3.4.1: reassembly happens before ESP processing; RFC 791 §3.2:
//! fragments of one datagram share (source, destination, protocol,
//! identification), their offsets count 8-byte units and every fragment
//! but the last carries a multiple of 8 bytes.
//!
//! Bounds, all fixed when the worker starts (no allocation per packet):
//! a few datagrams at once (`slots`), each at most `max_datagram` bytes
//! and `max_fragments` fragments, and none kept longer than `timeout`.
//! What a stranger can send costs at most that memory and one slot's
//! timeout:
//!
//! * fragments that overlap (the teardrop family) or whose offsets cannot
//!   belong to one datagram (a middle fragment not a multiple of 8 bytes,
//!   two different ends, data beyond the end) discard the whole datagram
//!   (`frag-overlap`), as RFC 5722 requires for IPv6 and Linux does for
//!   IPv4;
//! * a datagram larger than `max_datagram` (up to the 64 KiB the offsets
//!   allow) is discarded (`frag-too-large`), likewise one of more than
//!   `max_fragments` pieces (`frag-too-many`);
//! * when every slot is busy, a fragment of a new datagram is dropped
//!   (`frag-no-slot`): endless first fragments from many sources fill the
//!   slots until they time out (`frag-timeout`), they do not evict
//!   datagrams already under way.
//!
//! A complete datagram is written back into the frame of its last
//! fragment (Ethernet header, the first fragment's IP header with the
//! fragment fields cleared and the length and checksum fixed, the data),
//! and goes on as if it had arrived whole.

use core::net::Ipv4Addr;
use core::ops::Range;
use std::time::{Duration, Instant};

use esprit_wire::{ethernet, ipv4};

use crate::drop::DropReason;

/// Limits of one worker's reassembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Datagrams reassembled at once.
    pub slots: usize,
    /// Largest reassembled datagram (IP header included), in bytes.
    pub max_datagram: usize,
    /// Most fragments per datagram.
    pub max_fragments: usize,
    /// How long a datagram may take to complete.
    pub timeout: Duration,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        // An ESP packet of a 1500-byte inner packet over a smaller path
        // MTU is 2 or 3 fragments; the frame it is rebuilt in (a 2 KiB
        // UMEM chunk) bounds the size anyway.
        ReassemblyConfig { slots: 32, max_datagram: 2048, max_fragments: 16, timeout: Duration::from_secs(3) }
    }
}

/// What became of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reassembly {
    /// Kept; its datagram is not complete yet.
    Kept,
    /// It completed its datagram, which now fills the frame from `head`:
    /// an Ethernet header and `len` bytes of IPv4 datagram.
    Complete { len: usize },
    /// Dropped (its datagram too, where the reason says so).
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ident: u16,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: Key,
    since: Instant,
    /// Fragments kept (their ranges are `ranges[slot * max_fragments..][..count]`).
    count: usize,
    /// Data bytes kept.
    bytes: usize,
    /// The data's length, known once the last fragment came.
    total: Option<usize>,
    /// The first fragment's IP header length (0 until it came).
    header_len: usize,
}

/// One worker's reassembly buffers.
#[derive(Debug)]
pub struct Reassembler {
    cfg: ReassemblyConfig,
    slots: Vec<Option<Slot>>,
    /// `max_datagram` bytes per slot: the first fragment's IP header in
    /// front (at most 60 bytes), the data after `MAX_HEADER`.
    data: Vec<u8>,
    ranges: Vec<(u16, u16)>,
}

/// Room for the longest IPv4 header.
const MAX_HEADER: usize = 60;

impl Reassembler {
    pub fn new(cfg: ReassemblyConfig) -> Reassembler {
        let cfg = ReassemblyConfig {
            slots: cfg.slots.clamp(1, 4096),
            max_datagram: cfg.max_datagram.clamp(576, 65535),
            max_fragments: cfg.max_fragments.clamp(2, 64),
            timeout: cfg.timeout,
        };
        Reassembler {
            slots: vec![None; cfg.slots],
            data: vec![0; cfg.slots * (MAX_HEADER + cfg.max_datagram)],
            ranges: vec![(0, 0); cfg.slots * cfg.max_fragments],
            cfg,
        }
    }

    /// Datagrams under way.
    pub fn pending(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Forgets datagrams older than the timeout; returns how many.
    pub fn expire(&mut self, now: Instant) -> u64 {
        let mut n = 0;
        for s in &mut self.slots {
            if s.is_some_and(|s| now.duration_since(s.since) > self.cfg.timeout) {
                *s = None;
                n += 1;
            }
        }
        n
    }

    /// Takes the fragment whose IPv4 packet is `buf[ip]` (an Ethernet
    /// header right before it, the frame starting at `head`). On
    /// completion the datagram is written to `buf[head..]`. `expired`
    /// counts the datagrams that timed out meanwhile (their slots are
    /// reused).
    pub fn push(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        head: usize,
        ip: Range<usize>,
        expired: &mut u64,
    ) -> Reassembly {
        let Some(bytes) = buf.get(ip.clone()) else { return Reassembly::Drop(DropReason::Ipv4Malformed) };
        let Ok(p) = ipv4::Packet::new_checked(bytes) else {
            return Reassembly::Drop(DropReason::Ipv4Malformed);
        };
        let key = Key { src: p.src_addr(), dst: p.dst_addr(), protocol: p.protocol(), ident: p.ident() };
        let hl = p.header_len();
        let offset = usize::from(p.frag_offset());
        let more = p.more_frags();
        let len = bytes.len().saturating_sub(hl);
        let end = offset + len;
        let max_data = self.cfg.max_datagram.saturating_sub(hl);

        // The slot of its datagram, or a free one.
        let i = match self.slots.iter().position(|s| s.is_some_and(|s| s.key == key)) {
            Some(i) => i,
            None => {
                if let Some(t) = self
                    .slots
                    .iter_mut()
                    .find(|s| s.is_some_and(|s| now.duration_since(s.since) > self.cfg.timeout))
                {
                    *t = None;
                    *expired += 1;
                }
                let Some(i) = self.slots.iter().position(Option::is_none) else {
                    return Reassembly::Drop(DropReason::FragNoSlot);
                };
                // Judged before it takes the slot: a fragment that cannot
                // start a datagram leaves nothing behind.
                if let Some(r) = Self::refuse(len, more, end, max_data) {
                    return Reassembly::Drop(r);
                }
                self.slots[i] =
                    Some(Slot { key, since: now, count: 0, bytes: 0, total: None, header_len: 0 });
                i
            }
        };
        let Some(mut s) = self.slots[i] else { return Reassembly::Drop(DropReason::FragNoSlot) };
        let discard = |slots: &mut [Option<Slot>], r| {
            slots[i] = None;
            Reassembly::Drop(r)
        };
        if let Some(r) = Self::refuse(len, more, end, max_data) {
            return discard(&mut self.slots, r);
        }
        let ranges = &mut self.ranges[i * self.cfg.max_fragments..(i + 1) * self.cfg.max_fragments];
        let kept = &ranges[..s.count];
        // RFC 791: one end; nothing past it; no overlap (RFC 5722's rule).
        let past_end = |e: usize| s.total.is_some_and(|t| e > t);
        let bad_end = if more { past_end(end) } else { s.total.is_some_and(|t| t != end) };
        if bad_end
            || (!more && kept.iter().any(|&(_, e)| usize::from(e) > end))
            || kept.iter().any(|&(b, e)| offset < usize::from(e) && usize::from(b) < end)
        {
            return discard(&mut self.slots, DropReason::FragOverlap);
        }
        if s.count == self.cfg.max_fragments {
            return discard(&mut self.slots, DropReason::FragTooMany);
        }
        // `end` <= max_data < 65535: fits in u16.
        ranges[s.count] = (offset as u16, end as u16);
        s.count += 1;
        s.bytes += len;
        if !more {
            s.total = Some(end);
        }
        let base = i * (MAX_HEADER + self.cfg.max_datagram);
        let payload = ip.start + hl..ip.end;
        self.data[base + MAX_HEADER + offset..base + MAX_HEADER + end].copy_from_slice(&buf[payload]);
        if offset == 0 {
            self.data[base..base + hl].copy_from_slice(&buf[ip.start..ip.start + hl]);
            s.header_len = hl;
        }
        let complete = s.header_len != 0 && s.total == Some(s.bytes);
        if !complete {
            self.slots[i] = Some(s);
            return Reassembly::Kept;
        }
        self.slots[i] = None;
        let (hl, total) = (s.header_len, s.bytes);
        let len = hl + total;
        let at = head + ethernet::HEADER_LEN;
        if buf.len() < at + len || ip.start != at {
            return Reassembly::Drop(DropReason::FragTooLarge);
        }
        buf[at..at + hl].copy_from_slice(&self.data[base..base + hl]);
        buf[at + hl..at + len].copy_from_slice(&self.data[base + MAX_HEADER..base + MAX_HEADER + total]);
        let mut p = ipv4::Packet::new_unchecked(&mut buf[at..at + len]);
        // `len` <= max_datagram <= 65535.
        p.set_total_len(len as u16);
        p.clear_frag_fields();
        p.fill_checksum();
        Reassembly::Complete { len }
    }

    /// Why a fragment of `len` data bytes ending at `end` cannot be part
    /// of any datagram.
    fn refuse(len: usize, more: bool, end: usize, max_data: usize) -> Option<DropReason> {
        if end > max_data {
            return Some(DropReason::FragTooLarge);
        }
        // Empty, or a middle piece not a multiple of 8 bytes (RFC 791 §3.2).
        if len == 0 || (more && !len.is_multiple_of(8)) {
            return Some(DropReason::FragOverlap);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: usize = 64;

    /// A frame buffer holding, at `HEAD`, an Ethernet header and a fragment
    /// of datagram 0x77 from 192.0.2.2 to 192.0.2.1 (ESP): `data` at byte
    /// `offset`, IP options of `options` bytes.
    fn frag(data: &[u8], offset: usize, more: bool, options: usize) -> (Vec<u8>, Range<usize>) {
        let hl = 20 + options;
        let mut buf = vec![0u8; 2048];
        let ip = HEAD + ethernet::HEADER_LEN;
        let b = &mut buf[ip..ip + hl + data.len()];
        b[0] = 0x40 | (hl / 4) as u8;
        b[2..4].copy_from_slice(&((hl + data.len()) as u16).to_be_bytes());
        b[4..6].copy_from_slice(&0x77u16.to_be_bytes());
        let flags = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        b[6..8].copy_from_slice(&flags.to_be_bytes());
        b[8] = 64;
        b[9] = 50;
        b[12..16].copy_from_slice(&[192, 0, 2, 2]);
        b[16..20].copy_from_slice(&[192, 0, 2, 1]);
        for (k, o) in b[20..hl].iter_mut().enumerate() {
            *o = if k == 0 { 1 } else { 0 }; // NOP, then end of options
        }
        b[hl..].copy_from_slice(data);
        ipv4::Packet::new_checked(&mut b[..]).unwrap().fill_checksum();
        (buf, ip..ip + hl + data.len())
    }

    #[test]
    fn three_pieces_in_any_order_make_the_datagram_with_the_first_ones_header() {
        let data: Vec<u8> = (0..40u8).collect();
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let now = Instant::now();
        let mut expired = 0;
        // Middle, last, then the first (with 4 bytes of options).
        let (mut b, ip) = frag(&data[16..32], 16, true, 0);
        assert_eq!(r.push(now, &mut b, HEAD, ip, &mut expired), Reassembly::Kept);
        let (mut b, ip) = frag(&data[32..], 32, false, 0);
        assert_eq!(r.push(now, &mut b, HEAD, ip, &mut expired), Reassembly::Kept);
        let (mut b, ip) = frag(&data[..16], 0, true, 4);
        assert_eq!(r.push(now, &mut b, HEAD, ip.clone(), &mut expired), Reassembly::Complete { len: 64 });
        let p = ipv4::Packet::new_checked(&b[ip.start..ip.start + 64]).unwrap();
        assert!(p.verify_checksum() && !p.is_fragment());
        assert_eq!((p.header_len(), usize::from(p.total_len()), p.ident()), (24, 64, 0x77));
        assert_eq!(p.payload(), &data[..]);
        assert_eq!((r.pending(), expired), (0, 0));
    }

    #[test]
    fn a_repeated_fragment_is_an_overlap_and_a_late_one_starts_over() {
        let data = [7u8; 24];
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let now = Instant::now();
        let mut expired = 0;
        let (mut b, ip) = frag(&data[..16], 0, true, 0);
        assert_eq!(r.push(now, &mut b, HEAD, ip.clone(), &mut expired), Reassembly::Kept);
        let again = r.push(now, &mut b, HEAD, ip.clone(), &mut expired);
        assert_eq!(again, Reassembly::Drop(DropReason::FragOverlap));
        assert_eq!(r.pending(), 0, "the datagram is gone");
        assert_eq!(r.push(now, &mut b, HEAD, ip, &mut expired), Reassembly::Kept);
        assert_eq!(r.expire(now + Duration::from_secs(4)), 1);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn a_busy_slot_is_taken_over_only_once_it_timed_out() {
        let data = [7u8; 24];
        let mut r = Reassembler::new(ReassemblyConfig { slots: 1, ..Default::default() });
        let now = Instant::now();
        let mut expired = 0;
        let (mut first, ip) = frag(&data[..16], 0, true, 0);
        assert_eq!(r.push(now, &mut first, HEAD, ip, &mut expired), Reassembly::Kept);
        // Another datagram (identification 0x78) finds no slot...
        let (mut other, ip) = frag(&data[16..], 16, false, 0);
        other[HEAD + ethernet::HEADER_LEN + 5] = 0x78;
        ipv4::Packet::new_checked(&mut other[ip.clone()]).unwrap().fill_checksum();
        let busy = r.push(now, &mut other, HEAD, ip.clone(), &mut expired);
        assert_eq!(busy, Reassembly::Drop(DropReason::FragNoSlot));
        // ...until the first one's time is up.
        let later = now + Duration::from_secs(4);
        assert_eq!(r.push(later, &mut other, HEAD, ip, &mut expired), Reassembly::Kept);
        assert_eq!((expired, r.pending()), (1, 1));
    }
}
