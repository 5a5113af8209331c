//! What the in-memory tests share.

use esprit_ike::Random;
use esprit_testrng::TestRng;

/// Deterministic randomness: the test generator's bytes; SPIs base + n.
pub(crate) struct FixedRng {
    pub(crate) bytes: TestRng,
    pub(crate) spi_base: u32,
    pub(crate) spis: u32,
}

impl Random for FixedRng {
    fn fill(&mut self, dest: &mut [u8]) {
        self.bytes.fill_bytes(dest);
    }
    fn spi(&mut self) -> u32 {
        self.spis += 1;
        self.spi_base + self.spis
    }
}
