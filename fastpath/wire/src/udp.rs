//! UDP headers (RFC 768).
//!
//! `new_checked` guarantees: at least 8 bytes and 8 <= length field <=
//! buffer length. A length of 0 (RFC 2675 jumbograms) is rejected.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::{be16, checksum, ip_proto, put16, Error, Result};

mod field {
    use crate::Field;
    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const CHECKSUM: Field = 6..8;
}

pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
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
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if b.len() < len {
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

    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Verifies the checksum over an IPv4 pseudo-header; 0 means "none sent"
    /// and is accepted (RFC 768).
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let d = &self.buffer.as_ref()[..usize::from(self.len())];
        let acc = checksum::pseudo_header_v4(src, dst, ip_proto::UDP, self.len());
        checksum::finish(checksum::sum(acc, d)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Computes the checksum over an IPv4 pseudo-header and the datagram.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let acc = checksum::pseudo_header_v4(src, dst, ip_proto::UDP, len);
        let c = checksum::finish(checksum::sum(acc, &self.buffer.as_ref()[..usize::from(len)]));
        // RFC 768: a computed zero is sent as all ones.
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Computes the checksum over an IPv6 pseudo-header (mandatory for IPv6,
    /// RFC 8200 §8.1).
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let len = self.len();
        let acc = checksum::pseudo_header_v6(src, dst, ip_proto::UDP, u32::from(len));
        let c = checksum::finish(checksum::sum(acc, &self.buffer.as_ref()[..usize::from(len)]));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }
}

/// A UDP header to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Length of what follows the header.
    pub payload_len: u16,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr { src_port: p.src_port(), dst_port: p.dst_port(), payload_len: p.len() - HEADER_LEN as u16 })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 8-byte header with a zero checksum (allowed over IPv4,
    /// and what RFC 3948 §3.1 permits for UDP-encapsulated ESP); call
    /// `fill_checksum_v4` afterwards where a checksum is wanted.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..HEADER_LEN];
        put16(b, field::SRC_PORT.start, self.src_port);
        put16(b, field::DST_PORT.start, self.dst_port);
        put16(b, field::LENGTH.start, self.payload_len.saturating_add(HEADER_LEN as u16));
        put16(b, field::CHECKSUM.start, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.1.1.5:1234 -> 10.2.1.7:53, payload "abcd", checksum from scapy.
    const DATAGRAM: [u8; 12] = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64];
    const SRC: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 5);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 2, 1, 7);

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (1234, 53, 12));
        assert_eq!(p.payload(), b"abcd");
        assert_eq!(Repr::parse(&p).unwrap(), Repr { src_port: 1234, dst_port: 53, payload_len: 4 });
    }

    #[test]
    fn test_emit_and_checksum() {
        let mut buf = [0u8; 12];
        Repr { src_port: 1234, dst_port: 53, payload_len: 4 }.emit(&mut buf);
        buf[8..].copy_from_slice(b"abcd");
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum_v4(SRC, DST);
        assert_eq!(p.checksum(), CHECKSUM_FROM_SCAPY);
        assert!(p.verify_checksum_v4(SRC, DST));
        p.set_checksum(CHECKSUM_FROM_SCAPY ^ 1);
        assert!(!p.verify_checksum_v4(SRC, DST));
    }

    const CHECKSUM_FROM_SCAPY: u16 = 0x1ffa;

    #[test]
    fn malformed() {
        for n in 0..12 {
            assert_eq!(Packet::new_checked(&DATAGRAM[..n]).unwrap_err(), Error::Truncated);
        }
        let mut b = DATAGRAM;
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
    }
}
