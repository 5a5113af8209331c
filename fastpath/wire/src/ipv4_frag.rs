//! Fragmenting an IPv4 datagram (RFC 791 §3.2, "An Example Fragmentation
//! Procedure"; RFC 1812 §5.2.6 for routers).
//!
//! Sans-IO: [`Plan::new`] decides how a datagram splits for an MTU, then
//! [`Plan::first_in_place`] turns the datagram's own buffer into the first
//! fragment and [`Plan::emit`] writes each later fragment into a buffer the
//! caller owns. Nothing allocates; nothing panics on any input (a datagram
//! that fails [`ipv4::Packet::new_checked`] or whose options are malformed
//! is refused by [`Plan::new`]).
//!
//! Every fragment but the last carries a multiple of 8 data bytes; all keep
//! the datagram's identification, protocol, addresses, TTL and TOS. The first
//! fragment keeps every option; the later ones only those whose copied flag
//! is set (RFC 791 §3.1, "Options"), padded with end-of-options to a
//! multiple of 4 bytes. A datagram that is itself a fragment splits into
//! fragments of the same original datagram: offsets start at its own, and
//! its last piece keeps its MF flag.

use crate::{ipv4, put16, Error};

/// Why a datagram cannot be fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragError {
    /// Not a valid IPv4 packet, or its options are malformed.
    Malformed(Error),
    /// DF is set (RFC 791 §3.2): the sender must learn the MTU instead.
    DontFragment,
    /// The MTU leaves no room for 8 data bytes after the header (RFC 791
    /// guarantees 68, RFC 1122 §3.3.3 576 for reassembly).
    MtuTooSmall,
    /// More fragments than the caller allows.
    TooMany,
}

/// RFC 791 §3.1: the option type's high bit says "copy into every fragment".
const OPT_COPIED: u8 = 0x80;
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
/// Longest IPv4 header (IHL 15).
const MAX_HEADER: usize = 60;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;
/// Byte offset of the flags and fragment offset word.
const FLAGS_AT: usize = 6;

/// How one datagram splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The datagram's header length (the first fragment's).
    header_len: usize,
    /// The later fragments' header: the fixed 20 bytes, then the copied
    /// options and padding.
    later_header: [u8; MAX_HEADER],
    later_header_len: usize,
    /// Data bytes of the datagram.
    data_len: usize,
    /// Data bytes per fragment (a multiple of 8), the last one excepted.
    chunk: usize,
    count: usize,
    /// The datagram's own fragment offset (bytes) and MF flag.
    base_offset: usize,
    last_mf: bool,
}

impl Plan {
    /// Plans the fragments of `packet` so that each fits `mtu` bytes, at
    /// most `max` of them. A datagram that fits needs no plan: the caller
    /// checks the length first (here it plans one fragment).
    pub fn new(packet: &[u8], mtu: usize, max: usize) -> Result<Plan, FragError> {
        let p = ipv4::Packet::new_checked(packet).map_err(FragError::Malformed)?;
        if p.dont_frag() {
            return Err(FragError::DontFragment);
        }
        let header_len = p.header_len();
        let data_len = usize::from(p.total_len()) - header_len;
        let mut later_header = [0u8; MAX_HEADER];
        later_header[..ipv4::HEADER_LEN].copy_from_slice(&packet[..ipv4::HEADER_LEN]);
        let copied = copied_options(p.options(), &mut later_header[ipv4::HEADER_LEN..])?;
        let later_header_len = ipv4::HEADER_LEN + copied.next_multiple_of(4);
        // The first fragment has the longest header, so a chunk sized for
        // it fits every fragment.
        let chunk = mtu.saturating_sub(header_len) & !7;
        if chunk == 0 {
            return Err(FragError::MtuTooSmall);
        }
        let count = data_len.div_ceil(chunk).max(1);
        if count > max {
            return Err(FragError::TooMany);
        }
        Ok(Plan {
            header_len,
            later_header,
            later_header_len,
            data_len,
            chunk,
            count,
            base_offset: usize::from(p.frag_offset()),
            last_mf: p.more_frags(),
        })
    }

    /// How many fragments.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The length of fragment `k` (header included).
    pub fn len(&self, k: usize) -> usize {
        let header = if k == 0 { self.header_len } else { self.later_header_len };
        header + self.data(k).len()
    }

    /// Never empty: a plan has at least one fragment.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The range of the datagram's data that fragment `k` carries.
    fn data(&self, k: usize) -> core::ops::Range<usize> {
        let start = (k * self.chunk).min(self.data_len);
        start..(start + self.chunk).min(self.data_len)
    }

    /// The flags and offset word of fragment `k`.
    fn flags_offset(&self, k: usize) -> u16 {
        let last = k + 1 == self.count;
        let mf = if last { self.last_mf } else { true };
        // The offset fits 13 bits of 8-byte units: the datagram's own offset
        // plus less than its 64 KiB total length, as RFC 791 allows only
        // when the original datagram fits 65,535 bytes; a hostile one past
        // that is cut to the field (its receiver discards it).
        let units = ((self.base_offset + self.data(k).start) / 8) as u16 & OFFSET_MASK;
        units | if mf { FLAG_MF } else { 0 }
    }

    /// Makes `packet`, the datagram this plan was made for, its first
    /// fragment in place (the data beyond it is left in the buffer, so
    /// emit the later fragments from it before overwriting it). Returns the
    /// fragment's length, or `None` for a buffer shorter than the plan's
    /// datagram.
    pub fn first_in_place(&self, packet: &mut [u8]) -> Option<usize> {
        let len = self.len(0);
        let header = packet.get_mut(..self.header_len)?;
        put16(header, FLAGS_AT, self.flags_offset(0));
        let mut p = ipv4::Packet::new_unchecked(header);
        p.set_total_len(len as u16);
        p.fill_checksum();
        Some(len)
    }

    /// Writes fragment `k` (1 <= k < count) of `packet` (the datagram as it
    /// was planned, unchanged past the first fragment) into `out`. Returns
    /// its length, or `None` when `k` is out of range or `out` too short.
    pub fn emit(&self, packet: &[u8], k: usize, out: &mut [u8]) -> Option<usize> {
        if k == 0 || k >= self.count {
            return None;
        }
        let len = self.len(k);
        let hl = self.later_header_len;
        let data = self.data(k);
        let src = packet.get(self.header_len + data.start..self.header_len + data.end)?;
        let out = out.get_mut(..len)?;
        out[..hl].copy_from_slice(&self.later_header[..hl]);
        out[hl..].copy_from_slice(src);
        out[0] = 0x40 | (hl / 4) as u8;
        put16(out, FLAGS_AT, self.flags_offset(k));
        let mut p = ipv4::Packet::new_unchecked(&mut out[..hl]);
        p.set_total_len(len as u16);
        p.fill_checksum();
        Some(len)
    }
}

/// Copies the options of `opts` whose copied flag is set into `out` and
/// returns their length; malformed options are refused.
fn copied_options(opts: &[u8], out: &mut [u8]) -> Result<usize, FragError> {
    let (mut i, mut n) = (0, 0);
    while i < opts.len() {
        match opts[i] {
            OPT_END => break,
            OPT_NOP => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1).ok_or(FragError::Malformed(Error::Malformed))?);
                if len < 2 || i + len > opts.len() {
                    return Err(FragError::Malformed(Error::Malformed));
                }
                if kind & OPT_COPIED != 0 {
                    out[n..n + len].copy_from_slice(&opts[i..i + len]);
                    n += len;
                }
                i += len;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{checksum, ip_proto};
    use core::net::Ipv4Addr;

    /// A datagram with `options` and `data_len` bytes of counting data.
    fn datagram(options: &[u8], data_len: usize, flags: u16) -> Vec<u8> {
        let hl = ipv4::HEADER_LEN + options.len();
        let mut p = vec![0u8; hl + data_len];
        ipv4::Repr {
            src_addr: Ipv4Addr::new(10, 1, 1, 10),
            dst_addr: Ipv4Addr::new(10, 2, 1, 10),
            protocol: ip_proto::UDP,
            ttl: 63,
            tos: 0xb8,
            ident: 0x1234,
            dont_frag: false,
            payload_len: data_len as u16,
        }
        .emit(&mut p[..ipv4::HEADER_LEN]);
        p[0] = 0x40 | (hl / 4) as u8;
        p[2..4].copy_from_slice(&((hl + data_len) as u16).to_be_bytes());
        p[6..8].copy_from_slice(&flags.to_be_bytes());
        p[ipv4::HEADER_LEN..hl].copy_from_slice(options);
        for (i, b) in p[hl..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    }

    /// Every fragment of `p` for `mtu`, the first made in place.
    fn fragments(p: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let plan = Plan::new(p, mtu, 64).unwrap();
        let mut frags = vec![Vec::new(); plan.count()];
        for (k, f) in frags.iter_mut().enumerate().skip(1) {
            let mut out = [0u8; 2048];
            let n = plan.emit(p, k, &mut out).unwrap();
            assert_eq!(n, plan.len(k));
            *f = out[..n].to_vec();
        }
        let mut first = p.to_vec();
        let n = plan.first_in_place(&mut first).unwrap();
        frags[0] = first[..n].to_vec();
        frags
    }

    /// Puts fragments back together as a receiver does (RFC 791 §3.2).
    fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
        let mut data = Vec::new();
        for f in frags {
            let p = ipv4::Packet::new_checked(&f[..]).unwrap();
            let at = usize::from(p.frag_offset());
            assert_eq!(at, data.len(), "fragments in order and contiguous");
            data.extend_from_slice(p.payload());
        }
        data
    }

    #[test]
    fn a_1500_byte_datagram_for_a_1400_byte_mtu() {
        let p = datagram(&[], 1480, 0);
        let frags = fragments(&p, 1400);
        assert_eq!(frags.len(), 2);
        // 1376 data bytes (1400 - 20, rounded down to 8) then 104.
        assert_eq!(frags.iter().map(Vec::len).collect::<Vec<_>>(), [1396, 124]);
        let a = ipv4::Packet::new_checked(&frags[0][..]).unwrap();
        let b = ipv4::Packet::new_checked(&frags[1][..]).unwrap();
        assert!(a.more_frags() && !b.more_frags());
        assert_eq!((a.frag_offset(), b.frag_offset()), (0, 1376));
        // The bytes of the flags word: MF, then offset 172 units.
        assert_eq!(&frags[0][6..8], &[0x20, 0x00]);
        assert_eq!(&frags[1][6..8], &[0x00, 0xac]);
        for f in &frags {
            let q = ipv4::Packet::new_checked(&f[..]).unwrap();
            assert!(q.verify_checksum());
            assert_eq!(usize::from(q.total_len()), f.len());
            assert!(f.len() <= 1400);
            assert_eq!((q.ident(), q.ttl(), q.tos(), q.protocol()), (0x1234, 63, 0xb8, ip_proto::UDP));
            assert_eq!(
                (q.src_addr(), q.dst_addr()),
                (Ipv4Addr::new(10, 1, 1, 10), Ipv4Addr::new(10, 2, 1, 10))
            );
        }
        assert_eq!(reassemble(&frags), p[20..]);
    }

    #[test]
    fn small_mtus_make_many_fragments_each_a_multiple_of_8() {
        for mtu in [68, 100, 576, 577, 1279, 1280] {
            let p = datagram(&[], 1480, 0);
            let frags = fragments(&p, mtu);
            let chunk = (mtu - 20) & !7;
            assert_eq!(frags.len(), 1480usize.div_ceil(chunk), "mtu {mtu}");
            for (k, f) in frags.iter().enumerate() {
                let q = ipv4::Packet::new_checked(&f[..]).unwrap();
                assert!(f.len() <= mtu);
                assert!(q.verify_checksum());
                assert_eq!(q.more_frags(), k + 1 < frags.len());
                if k + 1 < frags.len() {
                    assert_eq!(q.payload().len(), chunk);
                }
            }
            assert_eq!(reassemble(&frags), p[20..]);
        }
    }

    #[test]
    fn a_fragment_is_fragmented_again_within_its_datagram() {
        // A middle fragment at offset 2960 with MF: its pieces start there
        // and all keep MF.
        let p = datagram(&[], 1000, FLAG_MF | (2960 / 8));
        let frags = fragments(&p, 600);
        let offs: Vec<(u16, bool)> = frags
            .iter()
            .map(|f| {
                let q = ipv4::Packet::new_checked(&f[..]).unwrap();
                (q.frag_offset(), q.more_frags())
            })
            .collect();
        assert_eq!(offs, [(2960, true), (3536, true)]);
        // A last fragment: its last piece has no MF.
        let p = datagram(&[], 1000, 2960 / 8);
        let frags = fragments(&p, 600);
        let q = ipv4::Packet::new_checked(&frags[1][..]).unwrap();
        assert_eq!((q.frag_offset(), q.more_frags()), (3536, false));
    }

    #[test]
    fn only_copied_options_go_into_later_fragments() {
        // Record route (7, not copied, 11 bytes), NOP, security-like option
        // 0x82 (copied, 4 bytes), end: 16 bytes of options.
        let opts = [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x82, 4, 0xaa, 0xbb];
        let p = datagram(&opts, 1000, 0);
        let frags = fragments(&p, 600);
        assert_eq!(frags.len(), 2);
        // First: all 36 header bytes; later: 20 + 4.
        assert_eq!(ipv4::Packet::new_checked(&frags[0][..]).unwrap().header_len(), 36);
        let q = ipv4::Packet::new_checked(&frags[1][..]).unwrap();
        assert_eq!(q.header_len(), 24);
        assert_eq!(q.options(), &[0x82, 4, 0xaa, 0xbb]);
        assert!(q.verify_checksum());
        assert_eq!(reassemble(&frags), p[36..]);
        // A 3-byte copied option is padded with end-of-options.
        let opts = [0x83, 3, 0x55, 0];
        let p = datagram(&opts, 1000, 0);
        let frags = fragments(&p, 600);
        let q = ipv4::Packet::new_checked(&frags[1][..]).unwrap();
        assert_eq!(q.options(), &[0x83, 3, 0x55, 0]);
    }

    #[test]
    fn refusals() {
        let p = datagram(&[], 1480, 0x4000);
        assert_eq!(Plan::new(&p, 1400, 8), Err(FragError::DontFragment));
        let p = datagram(&[], 1480, 0);
        assert_eq!(Plan::new(&p, 27, 8), Err(FragError::MtuTooSmall));
        assert_eq!(Plan::new(&p, 28, 8), Err(FragError::TooMany));
        assert_eq!(Plan::new(&p, 28, 185).map(|p| p.count()), Ok(185));
        let bad = datagram(&[7, 12, 4, 0], 100, 0);
        assert_eq!(Plan::new(&bad, 68, 8), Err(FragError::Malformed(Error::Malformed)));
        assert!(matches!(Plan::new(&p[..100], 1400, 8), Err(FragError::Malformed(_))));
        let plan = Plan::new(&p, 1400, 8).unwrap();
        let mut out = [0u8; 64];
        assert_eq!(plan.emit(&p, 0, &mut out), None);
        assert_eq!(plan.emit(&p, 2, &mut out), None);
        assert_eq!(plan.emit(&p, 1, &mut out), None, "out too short");
        // The checksums are recomputed, not patched.
        let frags = fragments(&p, 1400);
        assert_eq!(checksum::checksum(&frags[1][..20]), 0);
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let p = datagram(&[0x82, 4, 1, 2], 300, 0);
        for n in 0..p.len() {
            for mtu in [0, 8, 28, 68, 200] {
                if let Ok(plan) = Plan::new(&p[..n], mtu, 64) {
                    let mut out = [0u8; 512];
                    for k in 0..plan.count() + 1 {
                        let _ = plan.emit(&p[..n], k, &mut out);
                    }
                    let mut b = p[..n].to_vec();
                    plan.first_in_place(&mut b);
                }
            }
        }
    }
}
