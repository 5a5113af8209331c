//! TCP headers (RFC 9293), as far as a gateway touches them: the flags and
//! the maximum segment size option of a SYN, which
//! [`clamp_mss`] lowers for segments about to enter a tunnel.
//!
//! `new_checked` guarantees: the buffer holds at least 20 bytes and the data
//! offset names a header of at least 20 bytes that fits the buffer; every
//! accessor is then in bounds. [`clamp_mss`] never panics on any input.

use crate::{be16, checksum, ip_proto, ipv4, put16, Error, Result};

mod field {
    use crate::Field;
    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const DATA_OFFSET: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const CHECKSUM: Field = 16..18;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;

/// The SYN flag (RFC 9293 §3.1).
pub const FLAG_SYN: u8 = 0x02;
/// The ACK flag.
pub const FLAG_ACK: u8 = 0x10;

/// Option kinds (RFC 9293 §3.2).
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_MSS_LEN: usize = 4;

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if b.len() < hl {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Header length in bytes (data offset x 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// The eight flag bits (CWR ECE URG ACK PSH RST SYN FIN).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The options bytes (empty when the data offset is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Offset of the MSS option's value in the segment, if the options
    /// carry a well-formed one (RFC 9293 §3.2: kind 2, length 4). A
    /// malformed option list (a length below 2 or past the header) has
    /// none.
    pub fn mss_at(&self) -> Option<usize> {
        let opts = self.options();
        let mut i = 0;
        while i < opts.len() {
            match opts[i] {
                OPT_END => return None,
                OPT_NOP => i += 1,
                kind => {
                    let len = usize::from(*opts.get(i + 1)?);
                    if len < 2 || i + len > opts.len() {
                        return None;
                    }
                    if kind == OPT_MSS {
                        return (len == OPT_MSS_LEN).then_some(HEADER_LEN + i + 2);
                    }
                    i += len;
                }
            }
        }
        None
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }
}

/// What [`clamp_mss`] did to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MssClamp {
    /// Not a TCP SYN (or SYN-ACK) whose header is in this packet.
    NotSyn,
    /// A SYN without an MSS option: left as it is (the peer then assumes
    /// 536, RFC 9293 §3.7.1, below any clamp worth setting).
    NoOption,
    /// The SYN's MSS was at most the limit already.
    Kept(u16),
    /// The SYN's MSS was lowered from this value to the limit.
    Clamped(u16),
}

/// Lowers the MSS option of a TCP SYN or SYN-ACK in the IPv4 packet `ip`
/// to `mss` when it is larger, and patches the TCP checksum incrementally
/// (RFC 1624 eqn. 3): the segment is not re-summed, so the cost does not
/// grow with its size, and a segment that arrived with a wrong checksum
/// still has a wrong one. Anything else (not TCP, a non-first fragment,
/// a header cut short) is left alone.
pub fn clamp_mss(ip: &mut [u8], mss: u16) -> MssClamp {
    let (l4, end) = {
        let Ok(p) = ipv4::Packet::new_checked(&*ip) else { return MssClamp::NotSyn };
        if p.protocol() != ip_proto::TCP || p.frag_offset() != 0 {
            return MssClamp::NotSyn;
        }
        (p.header_len(), usize::from(p.total_len()))
    };
    let Some(seg) = ip.get_mut(l4..end) else { return MssClamp::NotSyn };
    let (at, check) = {
        let Ok(tcp) = Packet::new_checked(&*seg) else { return MssClamp::NotSyn };
        if tcp.flags() & FLAG_SYN == 0 {
            return MssClamp::NotSyn;
        }
        let Some(at) = tcp.mss_at() else { return MssClamp::NoOption };
        (at, tcp.checksum())
    };
    let old = be16(seg, at);
    if old <= mss {
        return MssClamp::Kept(old);
    }
    put16(seg, at, mss);
    // The checksum sums 16-bit words from the segment's start; a value at
    // an odd offset straddles two of them, its bytes swapped in the sum
    // (RFC 1071 §2(B): the sum is byte-order independent).
    let (o, n) = if at % 2 == 0 { (old, mss) } else { (old.swap_bytes(), mss.swap_bytes()) };
    let c = checksum::update16(check, o, n);
    Packet::new_unchecked(seg).set_checksum(c);
    MssClamp::Clamped(old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    /// A SYN from 10.1.1.10:40000 to 10.2.1.10:5001 with `opts` and a
    /// correct checksum.
    fn syn(flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let tcp_len = HEADER_LEN + opts.len() + payload.len();
        let mut p = vec![0u8; ipv4::HEADER_LEN + tcp_len];
        ipv4::Repr {
            src_addr: Ipv4Addr::new(10, 1, 1, 10),
            dst_addr: Ipv4Addr::new(10, 2, 1, 10),
            protocol: ip_proto::TCP,
            ttl: 64,
            tos: 0,
            ident: 7,
            dont_frag: true,
            payload_len: tcp_len as u16,
        }
        .emit(&mut p[..ipv4::HEADER_LEN]);
        let t = &mut p[ipv4::HEADER_LEN..];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&5001u16.to_be_bytes());
        t[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        t[12] = (((HEADER_LEN + opts.len()) / 4) as u8) << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&64240u16.to_be_bytes());
        t[HEADER_LEN..HEADER_LEN + opts.len()].copy_from_slice(opts);
        t[HEADER_LEN + opts.len()..].copy_from_slice(payload);
        let c = full_checksum(&p);
        p[ipv4::HEADER_LEN + 16..ipv4::HEADER_LEN + 18].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// The TCP checksum computed from scratch (checksum field zeroed).
    fn full_checksum(ip: &[u8]) -> u16 {
        let p = ipv4::Packet::new_checked(ip).unwrap();
        let mut seg = p.payload().to_vec();
        seg[16] = 0;
        seg[17] = 0;
        let acc = checksum::pseudo_header_v4(p.src_addr(), p.dst_addr(), ip_proto::TCP, seg.len() as u16);
        checksum::finish(checksum::sum(acc, &seg))
    }

    fn tcp_checksum(ip: &[u8]) -> u16 {
        let b = &ip[ipv4::HEADER_LEN..];
        u16::from_be_bytes([b[16], b[17]])
    }

    fn mss(ip: &[u8]) -> Option<u16> {
        let t = Packet::new_checked(&ip[ipv4::HEADER_LEN..]).unwrap();
        t.mss_at().map(|at| be16(&ip[ipv4::HEADER_LEN..], at))
    }

    // Linux's SYN options: MSS 1460, SACK permitted, timestamps, NOP,
    // window scale 7.
    const LINUX_OPTS: [u8; 20] = [
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x03, 0x03, 0x07,
    ];

    #[test]
    fn a_syn_is_clamped_and_its_checksum_matches_a_recomputation() {
        let mut p = syn(FLAG_SYN, &LINUX_OPTS, &[]);
        assert_eq!(clamp_mss(&mut p, 1380), MssClamp::Clamped(1460));
        assert_eq!(mss(&p), Some(1380));
        assert_eq!(&p[ipv4::HEADER_LEN + 22..ipv4::HEADER_LEN + 24], &[0x05, 0x64]);
        assert_eq!(tcp_checksum(&p), full_checksum(&p));
        // The other options are untouched.
        assert_eq!(&p[ipv4::HEADER_LEN + 24..], &LINUX_OPTS[4..]);
    }

    #[test]
    fn a_syn_ack_is_clamped_too() {
        let mut p = syn(FLAG_SYN | FLAG_ACK, &LINUX_OPTS, &[]);
        assert_eq!(clamp_mss(&mut p, 1200), MssClamp::Clamped(1460));
        assert_eq!(mss(&p), Some(1200));
        assert_eq!(tcp_checksum(&p), full_checksum(&p));
    }

    #[test]
    fn an_mss_at_an_odd_offset_gets_the_byte_swapped_update() {
        // NOP, then MSS 8960 at option offset 1 (value at segment offset 23),
        // then NOP NOP NOP to fill the word; a payload makes the sum busier.
        let opts = [0x01, 0x02, 0x04, 0x23, 0x00, 0x01, 0x01, 0x01];
        for limit in [1380u16, 1, 0x00ff, 0x2200, 8959] {
            let mut p = syn(FLAG_SYN, &opts, b"odd payload bytes");
            assert_eq!(clamp_mss(&mut p, limit), MssClamp::Clamped(8960));
            assert_eq!(mss(&p), Some(limit));
            assert_eq!(tcp_checksum(&p), full_checksum(&p), "limit {limit}");
        }
    }

    #[test]
    fn many_values_keep_the_checksum_right() {
        // Every old value against a few limits, at both parities: the
        // incremental update equals the recomputation (RFC 1624 eqn. 3
        // avoids the -0 case of eqn. 2).
        for old in (0u16..=u16::MAX).step_by(97).chain([u16::MAX, 0xfffe, 0x8000]) {
            // The value at an even, then an odd, segment offset.
            for (opts, at) in
                [([0x02, 0x04, 0, 0, 0x01, 0x01, 0x01, 0x00], 2), ([0x01, 0x02, 0x04, 0, 0, 0, 0, 0], 3)]
            {
                let mut o = opts;
                o[at..at + 2].copy_from_slice(&old.to_be_bytes());
                for limit in [536u16, 1380, 1460] {
                    let mut p = syn(FLAG_SYN, &o, &[0xff, 0xff, 0x00]);
                    let r = clamp_mss(&mut p, limit);
                    if old > limit {
                        assert_eq!(r, MssClamp::Clamped(old));
                        assert_eq!(mss(&p), Some(limit));
                    } else {
                        assert_eq!(r, MssClamp::Kept(old));
                    }
                    assert_eq!(tcp_checksum(&p), full_checksum(&p), "old {old} limit {limit}");
                }
            }
        }
    }

    #[test]
    fn what_is_not_clamped_is_left_byte_for_byte() {
        // Smaller already.
        let mut p = syn(FLAG_SYN, &[0x02, 0x04, 0x04, 0x00], &[]);
        let before = p.clone();
        assert_eq!(clamp_mss(&mut p, 1380), MssClamp::Kept(1024));
        assert_eq!(p, before);
        // Not a SYN.
        let mut p = syn(FLAG_ACK, &LINUX_OPTS, b"data");
        let before = p.clone();
        assert_eq!(clamp_mss(&mut p, 1380), MssClamp::NotSyn);
        assert_eq!(p, before);
        // No MSS option; an option list that ends early; a bad length.
        for opts in [
            &[0x01, 0x01, 0x01, 0x01][..],
            &[0x00, 0x02, 0x04, 0x05, 0xb4, 0, 0, 0][..],
            &[0x08, 0x01, 0x02, 0x04, 0x05, 0xb4, 0, 0][..],
            &[0x04, 0x09, 0x02, 0x04, 0x05, 0xb4, 0, 0][..],
            &[0x02, 0x05, 0x05, 0xb4, 0x00, 0, 0, 0][..],
        ] {
            let mut p = syn(FLAG_SYN, opts, &[]);
            let before = p.clone();
            assert_eq!(clamp_mss(&mut p, 1380), MssClamp::NoOption, "{opts:02x?}");
            assert_eq!(p, before);
        }
        // Not TCP; a non-first fragment; truncated.
        let mut p = syn(FLAG_SYN, &LINUX_OPTS, &[]);
        p[9] = ip_proto::UDP;
        assert_eq!(clamp_mss(&mut p, 1380), MssClamp::NotSyn);
        let mut p = syn(FLAG_SYN, &LINUX_OPTS, &[]);
        p[6] = 0x00;
        p[7] = 0x01;
        assert_eq!(clamp_mss(&mut p, 1380), MssClamp::NotSyn);
        let mut p = syn(FLAG_SYN, &LINUX_OPTS, &[]);
        p[ipv4::HEADER_LEN + 12] = 0xf0;
        assert_eq!(clamp_mss(&mut p, 1380), MssClamp::NotSyn);
        for n in 0..p.len() {
            let mut cut = p[..n].to_vec();
            let _ = clamp_mss(&mut cut, 1380);
        }
    }
}
