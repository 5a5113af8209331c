//! The ESP header (RFC 4303 §2): SPI and sequence number, then the
//! encrypted payload (IV, data, padding, pad length, next header) and the
//! ICV. This view only reads the clear header; `esprit-esp` does the rest.
//!
//! `new_checked` guarantees the 8-byte header and refuses SPI 0, which
//! RFC 4303 §2.1 reserves for local use and never puts on the wire.

use crate::{be32, put32, Error, Result};

mod field {
    use crate::Field;
    pub(super) const SPI: Field = 0..4;
    pub(super) const SEQ: Field = 4..8;
}

pub const HEADER_LEN: usize = 8;

/// A view of an ESP packet.
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
        if p.spi() == 0 {
            return Err(Error::Malformed);
        }
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SPI.start)
    }

    /// The low 32 bits of the sequence number (the high 32 of an ESN are
    /// never sent, RFC 4303 §2.2.1).
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ.start)
    }

    /// IV, ciphertext, trailer and ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_spi(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::SPI.start, v);
    }

    pub fn set_seq(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::SEQ.start, v);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The clear ESP header to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub spi: u32,
    pub seq: u32,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr { spi: p.spi(), seq: p.seq() })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit(&self, buf: &mut [u8]) {
        put32(buf, field::SPI.start, self.spi);
        put32(buf, field::SEQ.start, self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKET: [u8; 12] = [0xae, 0xc2, 0xa2, 0x3a, 0x00, 0x00, 0x00, 0x07, 0x01, 0x02, 0x03, 0x04];

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.spi(), 0xaec2_a23a);
        assert_eq!(p.seq(), 7);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert_eq!(Repr::parse(&p).unwrap(), Repr { spi: 0xaec2_a23a, seq: 7 });
    }

    #[test]
    fn test_emit() {
        let mut buf = PACKET;
        buf[..8].fill(0);
        Repr { spi: 0xaec2_a23a, seq: 7 }.emit(&mut buf);
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn malformed() {
        for n in 0..8 {
            assert_eq!(Packet::new_checked(&PACKET[..n]).unwrap_err(), Error::Truncated);
        }
        let zero_spi = [0u8; 8];
        assert_eq!(Packet::new_checked(&zero_spi[..]).unwrap_err(), Error::Malformed);
    }
}
