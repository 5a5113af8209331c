//! Inbound SPI allocation.
//!
//! fastpathd finds an inbound SA by its SPI alone (RFC 4301 §4.1: the SPI
//! chosen by the receiver identifies the SA for unicast), so no two inbound
//! SAs of a gateway may share one. The allocator holds every SPI in use:
//! manual-key SPIs are reserved (a collision is a configuration error), and
//! IKE draws fresh ones at random (RFC 4303 §2.1: 1 to 255 are reserved by
//! IANA, 0 is never sent). Randomness is passed in, so tests are
//! deterministic.

use std::collections::BTreeSet;

/// The smallest SPI esprit uses (RFC 4303 §2.1).
pub const MIN_SPI: u32 = 0x100;

/// Draws after which [`SpiAllocator::allocate`] gives up: with fewer than
/// half the space in use, 64 straight collisions have probability < 2^-64.
const MAX_DRAWS: usize = 64;

/// Why an SPI could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpiError {
    /// Reserved by IANA (RFC 4303 §2.1).
    #[error("SPI {0:#x} is reserved (RFC 4303 §2.1: 1 to 255; 0 is never used)")]
    Reserved(u32),
    /// Already held by another inbound SA.
    #[error("SPI {0:#x} is already in use")]
    InUse(u32),
    /// The random source kept giving SPIs in use.
    #[error("no free SPI after {MAX_DRAWS} draws ({0} in use)")]
    Exhausted(usize),
}

/// The inbound SPIs in use on this gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpiAllocator {
    used: BTreeSet<u32>,
}

impl SpiAllocator {
    /// An allocator with nothing in use.
    pub fn new() -> SpiAllocator {
        SpiAllocator::default()
    }

    /// Claims a given SPI (a manual key, or an SA adopted after a restart).
    pub fn reserve(&mut self, spi: u32) -> Result<(), SpiError> {
        if spi < MIN_SPI {
            return Err(SpiError::Reserved(spi));
        }
        if !self.used.insert(spi) {
            return Err(SpiError::InUse(spi));
        }
        Ok(())
    }

    /// A fresh SPI drawn from `random` (uniform u32s), never one in use or
    /// reserved.
    pub fn allocate(&mut self, mut random: impl FnMut() -> u32) -> Result<u32, SpiError> {
        for _ in 0..MAX_DRAWS {
            let spi = random();
            if spi >= MIN_SPI && self.used.insert(spi) {
                return Ok(spi);
            }
        }
        Err(SpiError::Exhausted(self.used.len()))
    }

    /// Gives an SPI back (its SA is gone). True if it was in use.
    pub fn release(&mut self, spi: u32) -> bool {
        self.used.remove(&spi)
    }

    /// True if the SPI is in use.
    pub fn in_use(&self, spi: u32) -> bool {
        self.used.contains(&spi)
    }

    /// How many SPIs are in use.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// True when no SPI is in use.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A deterministic "random" source: the given values, in order.
    fn seq(values: &[u32]) -> impl FnMut() -> u32 + '_ {
        let mut i = 0;
        move || {
            let v = values[i % values.len()];
            i += 1;
            v
        }
    }

    #[test]
    fn reserve_refuses_reserved_and_duplicates() {
        let mut a = SpiAllocator::new();
        assert_eq!(a.reserve(0), Err(SpiError::Reserved(0)));
        assert_eq!(a.reserve(0xff), Err(SpiError::Reserved(0xff)));
        a.reserve(0x1011).unwrap();
        assert_eq!(a.reserve(0x1011), Err(SpiError::InUse(0x1011)));
        assert!(a.in_use(0x1011));
    }

    #[test]
    fn allocate_skips_reserved_and_used_values() {
        let mut a = SpiAllocator::new();
        a.reserve(0x2000).unwrap();
        // 0 and 5 are reserved, 0x2000 is in use: the fourth draw is taken.
        assert_eq!(a.allocate(seq(&[0, 5, 0x2000, 0xaec2_a23a])), Ok(0xaec2_a23a));
        assert_eq!(a.len(), 2);
        // The same value again is never handed out twice.
        assert_eq!(a.allocate(seq(&[0xaec2_a23a, 0xaec2_a23b])), Ok(0xaec2_a23b));
    }

    #[test]
    fn allocate_gives_up_instead_of_looping() {
        let mut a = SpiAllocator::new();
        a.reserve(0x300).unwrap();
        assert_eq!(a.allocate(seq(&[0x300])), Err(SpiError::Exhausted(1)));
    }

    #[test]
    fn release_makes_an_spi_available_again() {
        let mut a = SpiAllocator::new();
        let spi = a.allocate(seq(&[0x4242])).unwrap();
        assert!(a.release(spi));
        assert!(!a.release(spi));
        assert_eq!(a.allocate(seq(&[0x4242])), Ok(0x4242));
    }

    #[test]
    fn many_allocations_never_collide() {
        // The test generator stands in for the system RNG.
        let mut x = esprit_testrng::TestRng::new(0x9e37_79b9);
        let mut rng = move || x.next_u32();
        let mut a = SpiAllocator::new();
        let mut seen = BTreeSet::new();
        for _ in 0..10_000 {
            let spi = a.allocate(&mut rng).unwrap();
            assert!(spi >= MIN_SPI);
            assert!(seen.insert(spi));
        }
        assert_eq!(a.len(), 10_000);
    }
}
