//! ICMP for IPv4 (RFC 792): echo (VPN monitor pings), and the errors the
//! gateway originates — "fragmentation needed" with the next-hop MTU for
//! path MTU discovery (RFC 1191 §4) and "time exceeded".
//!
//! `new_checked` guarantees at least the 8-byte ICMP header.

use crate::{be16, checksum, put16, Error, Result};

mod field {
    use crate::Field;
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Field = 2..4;
    pub(super) const ECHO_IDENT: Field = 4..6;
    pub(super) const ECHO_SEQ: Field = 6..8;
    /// RFC 1191 §4: the low 16 bits of the unused word.
    pub(super) const NEXT_HOP_MTU: Field = 6..8;
}

pub const HEADER_LEN: usize = 8;

/// ICMP message types esprit handles.
pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

/// Destination-unreachable code 4: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;

/// A view of an ICMP message.
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
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    pub fn echo_seq(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQ.start)
    }

    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::NEXT_HOP_MTU.start)
    }

    /// Everything after the 8-byte header: echo data, or the offending
    /// packet's header for errors.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Checksum over the whole message (the view's buffer must end where
    /// the message ends).
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    pub fn fill_checksum(&mut self) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, 0);
        let c = checksum::checksum(self.buffer.as_ref());
        put16(self.buffer.as_mut(), field::CHECKSUM.start, c);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// ICMP messages esprit writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    EchoRequest {
        ident: u16,
        seq: u16,
    },
    EchoReply {
        ident: u16,
        seq: u16,
    },
    /// RFC 1191 §4: type 3 code 4 carrying the MTU of the next hop.
    FragNeeded {
        next_hop_mtu: u16,
    },
    /// Type 11 code 0: TTL exceeded in transit.
    TimeExceeded,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        match (p.msg_type(), p.code()) {
            (msg_type::ECHO_REQUEST, 0) => Ok(Repr::EchoRequest { ident: p.echo_ident(), seq: p.echo_seq() }),
            (msg_type::ECHO_REPLY, 0) => Ok(Repr::EchoReply { ident: p.echo_ident(), seq: p.echo_seq() }),
            (msg_type::DEST_UNREACHABLE, CODE_FRAG_NEEDED) => {
                Ok(Repr::FragNeeded { next_hop_mtu: p.next_hop_mtu() })
            }
            (msg_type::TIME_EXCEEDED, 0) => Ok(Repr::TimeExceeded),
            _ => Err(Error::Malformed),
        }
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 8-byte header into `msg[..8]`; the caller then writes the
    /// data after it and calls `fill_checksum` on the whole message (or uses
    /// [`Repr::emit_with_data`]).
    pub fn emit_header(&self, msg: &mut [u8]) {
        let b = &mut msg[..HEADER_LEN];
        let (t, c, w1, w2) = match *self {
            Repr::EchoRequest { ident, seq } => (msg_type::ECHO_REQUEST, 0, ident, seq),
            Repr::EchoReply { ident, seq } => (msg_type::ECHO_REPLY, 0, ident, seq),
            Repr::FragNeeded { next_hop_mtu } => {
                (msg_type::DEST_UNREACHABLE, CODE_FRAG_NEEDED, 0, next_hop_mtu)
            }
            Repr::TimeExceeded => (msg_type::TIME_EXCEEDED, 0, 0, 0),
        };
        b[field::TYPE] = t;
        b[field::CODE] = c;
        put16(b, field::CHECKSUM.start, 0);
        put16(b, field::ECHO_IDENT.start, w1);
        put16(b, field::ECHO_SEQ.start, w2);
    }

    /// Writes header and data into `msg` (which must be 8 + data long) with
    /// the checksum filled.
    pub fn emit_with_data(&self, msg: &mut [u8], data: &[u8]) {
        self.emit_header(msg);
        msg[HEADER_LEN..HEADER_LEN + data.len()].copy_from_slice(data);
        Packet::new_unchecked(&mut msg[..HEADER_LEN + data.len()]).fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request ident 0x0102 seq 3 with data "ping", checksum from scapy.
    const ECHO: [u8; 12] = [0x08, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x03, 0x70, 0x69, 0x6e, 0x67];

    #[test]
    fn test_echo_roundtrip() {
        let mut buf = [0u8; 12];
        Repr::EchoRequest { ident: 0x0102, seq: 3 }.emit_with_data(&mut buf, b"ping");
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.checksum(), ECHO_CHECKSUM);
        assert!(p.verify_checksum());
        assert_eq!(Repr::parse(&p).unwrap(), Repr::EchoRequest { ident: 0x0102, seq: 3 });
        assert_eq!(p.data(), b"ping");
        assert_eq!(&buf[4..], &ECHO[4..]);
    }

    const ECHO_CHECKSUM: u16 = 0x182a;

    #[test]
    fn test_frag_needed() {
        let mut buf = [0u8; 8];
        Repr::FragNeeded { next_hop_mtu: 1400 }.emit_header(&mut buf);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!((p.msg_type(), p.code(), p.next_hop_mtu()), (3, 4, 1400));
        assert_eq!(Repr::parse(&p).unwrap(), Repr::FragNeeded { next_hop_mtu: 1400 });
    }

    #[test]
    fn malformed() {
        for n in 0..8 {
            assert_eq!(Packet::new_checked(&ECHO[..n]).unwrap_err(), Error::Truncated);
        }
        let mut b = ECHO;
        b[0] = 42;
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(), Error::Malformed);
    }
}
