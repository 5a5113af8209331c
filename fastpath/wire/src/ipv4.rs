//! IPv4 headers (RFC 791), options included.
//!
//! `new_checked` guarantees: the buffer holds at least 20 bytes, the version
//! is 4, the header length (IHL) is at least 5 words, and
//! header length <= total length <= buffer length. The buffer may be longer
//! than the total length (Ethernet padding); `payload()` stops at the total
//! length.

use core::net::Ipv4Addr;

use crate::{be16, checksum, put16, Error, Result};

mod field {
    use crate::Field;
    pub(super) const VER_IHL: usize = 0;
    pub(super) const TOS: usize = 1;
    pub(super) const TOTAL_LEN: Field = 2..4;
    pub(super) const IDENT: Field = 4..6;
    pub(super) const FLAGS_FRAG: Field = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Field = 10..12;
    pub(super) const SRC: Field = 12..16;
    pub(super) const DST: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
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
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        let hl = self.header_len();
        let tl = usize::from(self.total_len());
        if hl < HEADER_LEN || tl < hl {
            return Err(Error::BadLength);
        }
        if b.len() < tl {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL x 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The TOS byte: DSCP (6 bits) and ECN (2 bits), RFC 2474 / RFC 3168.
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TOTAL_LEN.start)
    }

    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG.start) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLAGS_FRAG.start) & FRAG_OFFSET_MASK) * 8
    }

    /// True for any fragment (first, middle or last): only the first one
    /// carries transport ports.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The options bytes (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// True when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }

    /// The bytes after the header, up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }

    pub fn set_total_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::TOTAL_LEN.start, v);
    }

    /// Makes the header that of a whole datagram: MF and the fragment
    /// offset cleared, DF kept (a reassembled datagram, RFC 791 §3.2).
    pub fn clear_frag_fields(&mut self) {
        let b = self.buffer.as_mut();
        let v = be16(b, field::FLAGS_FRAG.start) & FLAG_DF;
        put16(b, field::FLAGS_FRAG.start, v);
    }

    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Recomputes the header checksum over the whole header, options included.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(c);
    }

    /// Decrements the TTL for forwarding and patches the checksum
    /// incrementally (RFC 1624), as routers do (RFC 1812 §5.3.1). Returns
    /// the new TTL; the caller drops the packet (and may send ICMP time
    /// exceeded) when the old TTL was 1 or 0 — this does not underflow.
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        // One bounds check for the whole header, then plain byte access.
        let b = &mut self.buffer.as_mut()[..HEADER_LEN];
        let (ttl, protocol) = (b[field::TTL], b[field::PROTOCOL]);
        if ttl == 0 {
            return 0;
        }
        b[field::TTL] = ttl - 1;
        // TTL is the high byte of the word it shares with the protocol.
        let old = u16::from_be_bytes([ttl, protocol]);
        let new = u16::from_be_bytes([ttl - 1, protocol]);
        let check = u16::from_be_bytes([b[field::CHECKSUM.start], b[field::CHECKSUM.start + 1]]);
        let c = checksum::update16(check, old, new);
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        ttl - 1
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// An option-less IPv4 header to write (outer headers of ESP tunnels,
/// ICMP errors the gateway originates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    /// DSCP and ECN.
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
    /// Length of what follows the header.
    pub payload_len: u16,
}

impl Repr {
    /// Reads the fields of a checked packet (options are not kept).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            payload_len: p.total_len() - p.header_len() as u16,
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header, checksum included, into `buf[..20]`.
    /// `payload_len` must leave the total length within u16 (the caller
    /// sized the packet; a frame is never near 64 KiB).
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..HEADER_LEN];
        b[field::VER_IHL] = 0x45;
        b[field::TOS] = self.tos;
        put16(b, field::TOTAL_LEN.start, self.payload_len.saturating_add(HEADER_LEN as u16));
        put16(b, field::IDENT.start, self.ident);
        put16(b, field::FLAGS_FRAG.start, if self.dont_frag { FLAG_DF } else { 0 });
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        put16(b, field::CHECKSUM.start, 0);
        b[field::SRC].copy_from_slice(&self.src_addr.octets());
        b[field::DST].copy_from_slice(&self.dst_addr.octets());
        let c = checksum::checksum(b);
        put16(b, field::CHECKSUM.start, c);
    }
}

/// A precomputed option-less IPv4 header for one (source, destination,
/// protocol, TTL), as an SA's outer header: per packet only TOS, total
/// length, ident and DF change, and the checksum is finished from a partial
/// sum of the fixed words (RFC 1071 §2(C), incremental update) instead of
/// being summed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderTemplate {
    bytes: [u8; HEADER_LEN],
    partial: u32,
}

impl HeaderTemplate {
    pub fn new(src_addr: Ipv4Addr, dst_addr: Ipv4Addr, protocol: u8, ttl: u8) -> HeaderTemplate {
        let mut bytes = [0u8; HEADER_LEN];
        Repr { src_addr, dst_addr, protocol, ttl, tos: 0, ident: 0, dont_frag: false, payload_len: 0 }
            .emit(&mut bytes);
        // The variable fields are zero in the template and out of the sum.
        put16(&mut bytes, field::TOTAL_LEN.start, 0);
        put16(&mut bytes, field::CHECKSUM.start, 0);
        HeaderTemplate { bytes, partial: checksum::sum(0, &bytes) }
    }

    /// Writes the header into `buf[..20]`: the same bytes as [`Repr::emit`]
    /// with these fields.
    #[inline]
    pub fn emit(&self, buf: &mut [u8], tos: u8, total_len: u16, ident: u16, dont_frag: bool) {
        let b = &mut buf[..HEADER_LEN];
        b.copy_from_slice(&self.bytes);
        b[field::TOS] = tos;
        put16(b, field::TOTAL_LEN.start, total_len);
        put16(b, field::IDENT.start, ident);
        let flags = if dont_frag { FLAG_DF } else { 0 };
        put16(b, field::FLAGS_FRAG.start, flags);
        // TOS is the low byte of the first word (version/IHL is the high).
        let acc = self.partial + u32::from(tos) + u32::from(total_len) + u32::from(ident) + u32::from(flags);
        put16(b, field::CHECKSUM.start, checksum::finish(acc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip_proto;

    #[test]
    fn template_emits_what_repr_emits() {
        let t = HeaderTemplate::new(Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(203, 0, 113, 2), 50, 64);
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let (tos, len, ident, df) = (x as u8, (x >> 8) as u16 | 20, (x >> 13) as u16, x & 1 == 1);
            let mut a = [0u8; 20];
            let mut b = [0u8; 20];
            t.emit(&mut a, tos, len, ident, df);
            Repr {
                src_addr: Ipv4Addr::new(198, 51, 100, 1),
                dst_addr: Ipv4Addr::new(203, 0, 113, 2),
                protocol: 50,
                ttl: 64,
                tos,
                ident,
                dont_frag: df,
                payload_len: len - 20,
            }
            .emit(&mut b);
            assert_eq!(a, b, "tos {tos} len {len} ident {ident} df {df}");
        }
    }

    // 10.1.1.5 -> 10.2.1.7, ICMP, TTL 64, DF, ident 0x1234, 4 bytes payload,
    // checksum computed independently (scapy: IP(...).build()).
    const PACKET: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x12, 0xa3, 0x0a, 0x01, 0x01, 0x05, 0x0a,
        0x02, 0x01, 0x07, 0xde, 0xad, 0xbe, 0xef,
    ];

    fn repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(10, 1, 1, 5),
            dst_addr: Ipv4Addr::new(10, 2, 1, 7),
            protocol: ip_proto::ICMP,
            ttl: 64,
            tos: 0,
            ident: 0x1234,
            dont_frag: true,
            payload_len: 4,
        }
    }

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert!(p.dont_frag() && !p.is_fragment());
        assert_eq!(p.protocol(), ip_proto::ICMP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 1, 1, 5));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 2, 1, 7));
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(Repr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn test_emit() {
        let mut buf = [0u8; 24];
        repr().emit(&mut buf);
        buf[20..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn options_and_padding() {
        // IHL 6 with a 4-byte option (NOP NOP NOP EOL), then Ethernet padding.
        let mut buf = [0u8; 40];
        repr().emit(&mut buf);
        buf[0] = 0x46;
        buf[2..4].copy_from_slice(&28u16.to_be_bytes());
        buf[20..24].copy_from_slice(&[1, 1, 1, 0]);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 4);
        assert!(p.verify_checksum());
    }

    #[test]
    fn malformed() {
        for n in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&PACKET[..n]).unwrap_err(), Error::Truncated);
        }
        assert_eq!(Packet::new_checked(&PACKET[..23]).unwrap_err(), Error::Truncated);
        let mut b = PACKET;
        b[0] = 0x65;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        b[0] = 0x44;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
        b[0] = 0x45;
        b[3] = 19; // total length below the header
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
        b[0] = 0x4f; // 60-byte header in a 24-byte packet
        b[3] = 24;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut b = PACKET;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.decrement_ttl(), 63);
        assert!(p.verify_checksum());
        p.set_ttl(0);
        p.fill_checksum();
        assert_eq!(p.decrement_ttl(), 0);
    }

    #[test]
    fn fragments() {
        let mut b = PACKET;
        b[6] = 0x20; // MF
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment() && p.more_frags());
        b[6] = 0x00;
        b[7] = 0x03; // offset 24 bytes
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.frag_offset(), 24);
        assert!(p.is_fragment());
        // DF | MF | offset 0x1fff units: cleared but for DF.
        b[6] = 0x7f;
        b[7] = 0xff;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.frag_offset(), 0x1fff * 8);
        p.clear_frag_fields();
        assert!(!p.is_fragment() && p.dont_frag());
        assert_eq!(&b[6..8], &[0x40, 0x00]);
    }
}
