//! Anti-replay window (RFC 4303 §3.4.3, Appendix A) and extended sequence
//! number inference (RFC 4303 Appendix A2, RFC 4304).
//!
//! The window is a ring of 64-bit words in the manner of RFC 6479: bit
//! `s mod (64 * words)` records sequence number `s`; moving the window
//! forward clears whole words instead of shifting the bitmap, so a jump
//! costs at most one pass over the ring and an in-order packet one word
//! write. The ring has a power-of-two number of words, at least one more
//! than the window needs, so the word being reused is always outside the
//! window. Window sizes 1..=4096 are exact (a packet is "too old" when it
//! is `size` or more below the highest one seen); size 0 disables the
//! check for VPNs configured without replay protection.
//!
//! Contract (RFC 4303 §3.4.3): call [`ReplayWindow::check`] before the ICV
//! is verified (cheap rejection), and [`ReplayWindow::commit`] only after
//! it verified, so forged packets never move the window. `commit` checks
//! again, so two copies of a packet that both passed `check` (e.g. in one
//! burst) cannot both be accepted.

use thiserror::Error;

/// The largest window esprit supports.
pub const MAX_REPLAY_WINDOW: u32 = 4096;

/// With anti-replay disabled, ESN inference still needs a window: a packet
/// is placed in the 2^32 subspace that puts it within 2^31 of the highest
/// authenticated number.
const ESN_INFERENCE_WINDOW_WHEN_DISABLED: u64 = 1 << 31;

/// Why a sequence number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum ReplayError {
    /// Below the left edge of the window (RFC 4303 §3.4.3).
    #[error("sequence number older than the replay window")]
    TooOld,
    /// Already received (RFC 4303 §3.4.3).
    #[error("sequence number already received (replay)")]
    Duplicate,
}

/// The window size asked for is above [`MAX_REPLAY_WINDOW`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("replay window {0} is larger than the maximum {MAX_REPLAY_WINDOW}")]
pub struct WindowTooLarge(pub u32);

/// An anti-replay window with its highest authenticated sequence number
/// (first: the SA's hot line starts with it, see `inbound.rs`).
#[derive(Clone, PartialEq, Eq)]
#[repr(C)]
pub struct ReplayWindow {
    /// Highest authenticated sequence number (full 64 bits); 0 before the
    /// first packet.
    top: u64,
    /// Window size W; 0 = anti-replay disabled.
    size: u32,
    /// `words.len() - 1` (the length is a power of two).
    mask: usize,
    /// The ring; empty when disabled. Allocated once, at SA creation.
    words: Box<[u64]>,
}

const _: () = assert!(core::mem::offset_of!(ReplayWindow, top) == 0);

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("top", &self.top)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// A window of `size` packets (0 disables anti-replay).
    pub fn new(size: u32) -> Result<ReplayWindow, WindowTooLarge> {
        if size > MAX_REPLAY_WINDOW {
            return Err(WindowTooLarge(size));
        }
        let words = if size == 0 {
            Box::default()
        } else {
            // One spare word beyond what the window spans, rounded up to a
            // power of two (RFC 6479 §2).
            let n = (size as usize).div_ceil(64) + 1;
            vec![0u64; n.next_power_of_two()].into_boxed_slice()
        };
        let mut w = ReplayWindow { top: 0, size, mask: words.len().saturating_sub(1), words };
        // Sequence number 0 is never sent (RFC 4303 §3.3.3: the first
        // packet carries 1); mark it seen so it is refused.
        if let Some(first) = w.words.first_mut() {
            *first = 1;
        }
        Ok(w)
    }

    /// A window that resumes an SA whose highest authenticated sequence
    /// number was `top` (e.g. after the fast path restarted and was
    /// re-programmed): which numbers below `top` arrived is unknown, so
    /// all of them are treated as received.
    pub fn resume(size: u32, top: u64) -> Result<ReplayWindow, WindowTooLarge> {
        let mut w = ReplayWindow::new(size)?;
        w.top = top;
        w.words.fill(u64::MAX);
        let shift = (top & 63) + 1;
        let idx = ((top >> 6) as usize) & w.mask;
        if let (Some(word), true) = (w.words.get_mut(idx), shift < 64) {
            // Numbers above `top` in its own word have not arrived yet.
            *word = (1u64 << shift) - 1;
        }
        Ok(w)
    }

    /// The configured window size (0 = disabled).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The highest authenticated sequence number so far.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Bytes of the bitmap ring (for sizing docs and tests).
    pub fn ring_bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// RFC 4303 Appendix A2.1: the full 64-bit sequence number of a packet
    /// that carries the low 32 bits `seq_lo`, given the window. Without ESN
    /// the high half is 0.
    ///
    /// With T = top = Th:Tl and window W, the packet is placed in the
    /// subspace Th, Th + 1 or Th - 1 that puts it inside or ahead of the
    /// window:
    /// * Case A, Tl >= W - 1 (the window lies in one subspace): Seql below
    ///   the window means the sender wrapped into Th + 1;
    /// * Case B, Tl < W - 1 (the window straddles the subspace boundary):
    ///   Seql in the window's upper part, above 2^32 + Tl - W, belongs to
    ///   Th - 1.
    ///
    /// The guess is confirmed only by the ICV (the high bits enter it), so
    /// a packet far below the window is taken as coming from the next
    /// subspace and fails as `IcvMismatch` rather than `TooOld` — as the
    /// RFC intends. Before any 2^32 wrap there is no subspace -1; a guess of
    /// Th - 1 with Th = 0 stays in subspace 0.
    pub fn infer(&self, seq_lo: u32, esn: bool) -> u64 {
        if !esn {
            return u64::from(seq_lo);
        }
        let w = if self.size == 0 { ESN_INFERENCE_WINDOW_WHEN_DISABLED } else { u64::from(self.size) };
        let th = self.top >> 32;
        let tl = self.top & 0xffff_ffff;
        let sl = u64::from(seq_lo);
        let hi = if tl + 1 >= w {
            // Case A.
            if sl + w > tl {
                th
            } else {
                th + 1
            }
        } else {
            // Case B: the window starts at 2^32 + Tl - W + 1 in subspace Th - 1.
            if sl > (1 << 32) + tl - w && th > 0 {
                th - 1
            } else {
                th
            }
        };
        // Th + 1 overflows only when the 2^64 space is spent, which the
        // sender refuses to reach (RFC 4303 §3.3.3).
        (hi.min(0xffff_ffff) << 32) | sl
    }

    /// RFC 4303 §3.4.3 pre-check, before the ICV.
    #[inline]
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if self.size == 0 || seq > self.top {
            return Ok(());
        }
        if self.top - seq >= u64::from(self.size) {
            return Err(ReplayError::TooOld);
        }
        if self.bit(seq) {
            return Err(ReplayError::Duplicate);
        }
        Ok(())
    }

    /// Records an authenticated `seq` (RFC 4303 §3.4.3: "the receive window
    /// is updated only if the integrity verification succeeds"). Re-checks
    /// first and changes nothing on error.
    #[inline]
    pub fn commit(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        if self.size == 0 {
            // Still track the top: ESN inference needs it.
            self.top = self.top.max(seq);
            return Ok(());
        }
        if seq > self.top {
            let from = self.top >> 6;
            let to = seq >> 6;
            // Clear the words entered by the move; past one full ring all
            // of them are stale.
            let n = (to - from).min(self.words.len() as u64);
            for i in 1..=n {
                let idx = ((from + i) as usize) & self.mask;
                if let Some(word) = self.words.get_mut(idx) {
                    *word = 0;
                }
            }
            self.top = seq;
        }
        let idx = ((seq >> 6) as usize) & self.mask;
        if let Some(word) = self.words.get_mut(idx) {
            *word |= 1 << (seq & 63);
        }
        Ok(())
    }

    #[inline]
    fn bit(&self, seq: u64) -> bool {
        let idx = ((seq >> 6) as usize) & self.mask;
        self.words.get(idx).is_some_and(|w| w & (1 << (seq & 63)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const SIZES: [u32; 5] = [32, 64, 128, 1024, 4096];

    /// The obvious model: every accepted number kept in a set.
    struct Model {
        seen: BTreeSet<u64>,
        top: u64,
        size: u64,
    }

    impl Model {
        fn new(size: u32) -> Model {
            Model { seen: BTreeSet::from([0]), top: 0, size: u64::from(size) }
        }
        fn check(&self, s: u64) -> Result<(), ReplayError> {
            if self.size == 0 || s > self.top {
                Ok(())
            } else if self.top - s >= self.size {
                Err(ReplayError::TooOld)
            } else if self.seen.contains(&s) {
                Err(ReplayError::Duplicate)
            } else {
                Ok(())
            }
        }
        fn commit(&mut self, s: u64) -> Result<(), ReplayError> {
            self.check(s)?;
            self.seen.insert(s);
            self.top = self.top.max(s);
            Ok(())
        }
    }

    fn accept(w: &mut ReplayWindow, s: u64) -> Result<(), ReplayError> {
        w.check(s)?;
        w.commit(s)
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(ReplayWindow::new(0).unwrap().ring_bytes(), 0);
        assert_eq!(ReplayWindow::new(32).unwrap().ring_bytes(), 16);
        assert_eq!(ReplayWindow::new(64).unwrap().ring_bytes(), 16);
        assert_eq!(ReplayWindow::new(128).unwrap().ring_bytes(), 32);
        assert_eq!(ReplayWindow::new(1024).unwrap().ring_bytes(), 256);
        assert_eq!(ReplayWindow::new(4096).unwrap().ring_bytes(), 1024);
        assert_eq!(ReplayWindow::new(4097).unwrap_err(), WindowTooLarge(4097));
    }

    #[test]
    fn in_order() {
        for size in SIZES {
            let mut w = ReplayWindow::new(size).unwrap();
            assert_eq!(accept(&mut w, 0), Err(ReplayError::Duplicate), "seq 0 is never valid");
            for s in 1..20_000 {
                assert_eq!(accept(&mut w, s), Ok(()), "size {size} seq {s}");
                assert_eq!(w.check(s), Err(ReplayError::Duplicate));
            }
            assert_eq!(w.top(), 19_999);
        }
    }

    #[test]
    fn reordered_within_window_then_duplicates() {
        for size in SIZES {
            let size64 = u64::from(size);
            let mut w = ReplayWindow::new(size).unwrap();
            let top = 10_000u64;
            accept(&mut w, top).unwrap();
            // Every number still inside the window arrives late, backwards.
            for s in (top - size64 + 1..top).rev() {
                assert_eq!(accept(&mut w, s), Ok(()), "size {size} seq {s}");
            }
            for s in top - size64 + 1..=top {
                assert_eq!(w.check(s), Err(ReplayError::Duplicate), "size {size} seq {s}");
            }
            // The first one outside the window.
            assert_eq!(w.check(top - size64), Err(ReplayError::TooOld));
            assert_eq!(w.check(0), Err(ReplayError::TooOld));
        }
    }

    #[test]
    fn edge_of_window_exact() {
        for size in SIZES {
            let s64 = u64::from(size);
            let mut w = ReplayWindow::new(size).unwrap();
            accept(&mut w, 5000).unwrap();
            assert_eq!(w.check(5000 - s64 + 1), Ok(()), "left edge is inside");
            assert_eq!(w.check(5000 - s64), Err(ReplayError::TooOld));
        }
    }

    #[test]
    fn big_jumps_clear_stale_bits() {
        for size in SIZES {
            let s64 = u64::from(size);
            let mut w = ReplayWindow::new(size).unwrap();
            for s in 1..=s64 {
                accept(&mut w, s).unwrap();
            }
            // Jump by exactly one ring, by a ring + 1 and by far more: the
            // numbers that alias old bits must read as unseen.
            let ring_bits = (w.ring_bytes() * 8) as u64;
            for jump in [ring_bits, ring_bits + 1, ring_bits * 7 + 3, 1 << 40] {
                let top = w.top() + jump;
                accept(&mut w, top).unwrap();
                for back in 1..s64.min(top) {
                    assert_eq!(w.check(top - back), Ok(()), "size {size} jump {jump} back {back}");
                }
            }
        }
    }

    #[test]
    fn resume_refuses_everything_up_to_top() {
        for size in SIZES {
            for top in [0u64, 1, 63, 64, 65, 1000, (1 << 32) + 7] {
                let mut w = ReplayWindow::resume(size, top).unwrap();
                assert_eq!(w.top(), top);
                for back in 0..u64::from(size).min(top + 1) {
                    assert!(w.check(top - back).is_err(), "size {size} top {top} back {back}");
                }
                for ahead in 1..200 {
                    assert_eq!(w.check(top + ahead), Ok(()), "size {size} top {top} ahead {ahead}");
                }
                // Moving on clears the ring as usual.
                accept(&mut w, top + 150).unwrap();
                assert_eq!(accept(&mut w, top + 149), Ok(()));
                assert_eq!(accept(&mut w, top + 150), Err(ReplayError::Duplicate));
            }
        }
    }

    #[test]
    fn disabled_accepts_everything_but_tracks_top() {
        let mut w = ReplayWindow::new(0).unwrap();
        for s in [5u64, 5, 1, 0, 1 << 33, 3] {
            assert_eq!(accept(&mut w, s), Ok(()));
        }
        assert_eq!(w.top(), 1 << 33);
    }

    #[test]
    fn esn_inference_case_a() {
        let mut w = ReplayWindow::new(64).unwrap();
        w.commit((7 << 32) | 1000).unwrap();
        // Inside or above the window: same subspace.
        assert_eq!(w.infer(1000, true), (7 << 32) | 1000);
        assert_eq!(w.infer(937, true), (7 << 32) | 937); // left edge Tl - W + 1
        assert_eq!(w.infer(5000, true), (7 << 32) | 5000);
        assert_eq!(w.infer(u32::MAX, true), (7 << 32) | 0xffff_ffff);
        // Below the window: the sender wrapped.
        assert_eq!(w.infer(936, true), (8 << 32) | 936);
        assert_eq!(w.infer(0, true), 8 << 32);
        // Without ESN nothing is inferred.
        assert_eq!(w.infer(936, false), 936);
    }

    #[test]
    fn esn_inference_case_b_straddling_2_32() {
        for size in SIZES {
            let s64 = u64::from(size);
            let mut w = ReplayWindow::new(size).unwrap();
            // Top just past the boundary: the window reaches back into the
            // previous subspace.
            let top = (1u64 << 32) + 5;
            w.commit(top).unwrap();
            let lowest = top - s64 + 1;
            // The window's part in subspace 0.
            assert_eq!(w.infer(lowest as u32, true), lowest, "size {size}");
            assert_eq!(w.infer(u32::MAX, true), 0xffff_ffff);
            // Just below the window: taken as subspace 1 (far ahead).
            assert_eq!(w.infer((lowest - 1) as u32, true), (1 << 32) | ((lowest - 1) & 0xffff_ffff));
            // The new subspace's part and beyond.
            assert_eq!(w.infer(0, true), 1 << 32);
            assert_eq!(w.infer(5, true), top);
            assert_eq!(w.infer(6, true), top + 1);
            // Late packets from subspace 0 are accepted once each.
            let late = w.infer(u32::MAX, true);
            assert_eq!(accept(&mut w, late), Ok(()));
            let again = w.infer(u32::MAX, true);
            assert_eq!(accept(&mut w, again), Err(ReplayError::Duplicate));
            let edge = w.infer(lowest as u32, true);
            assert_eq!(accept(&mut w, edge), Ok(()));
        }
    }

    #[test]
    fn esn_crossing_in_order_and_reordered() {
        let mut w = ReplayWindow::new(128).unwrap();
        let start = (1u64 << 32) - 300;
        // Deliver 600 packets across the boundary in a scrambled order that
        // never strays more than 100 behind the top.
        let mut order: Vec<u64> = (start..start + 600).collect();
        for chunk in order.chunks_mut(100) {
            chunk.reverse();
        }
        // Seed the window near the boundary first (as if the earlier packets
        // had arrived).
        w.commit(start - 1).unwrap();
        for &s in &order {
            let inferred = w.infer(s as u32, true);
            assert_eq!(inferred, s, "lo {:#x}", s as u32);
            assert_eq!(accept(&mut w, inferred), Ok(()));
        }
        assert_eq!(w.top(), start + 599);
    }

    #[test]
    fn esn_before_first_wrap_has_no_subspace_minus_one() {
        let w = ReplayWindow::new(64).unwrap();
        // top = 0, Tl < W - 1: case B, but subspace -1 does not exist.
        assert_eq!(w.infer(0xffff_fff0, true), 0xffff_fff0);
        assert_eq!(w.infer(1, true), 1);
    }

    #[test]
    fn esn_disabled_window_infers_nearest() {
        let mut w = ReplayWindow::new(0).unwrap();
        w.commit((3 << 32) | 10).unwrap();
        assert_eq!(w.infer(5, true), (3 << 32) | 5);
        assert_eq!(w.infer(0xffff_fff0, true), (2 << 32) | 0xffff_fff0);
        assert_eq!(w.infer(0x8000_0000, true), (3 << 32) | 0x8000_0000);
    }

    proptest! {
        #[test]
        fn matches_model(size_idx in 0usize..6, steps in proptest::collection::vec((0u8..4, 0u64..5000), 1..400)) {
            let size = [0, 32, 64, 128, 1024, 4096][size_idx];
            let mut w = ReplayWindow::new(size).unwrap();
            let mut m = Model::new(size);
            for (kind, n) in steps {
                // Mix small steps forward, steps back, and big jumps.
                let s = match kind {
                    0 => m.top + n % 70,
                    1 => m.top.saturating_sub(n),
                    2 => m.top + n * 97,
                    _ => n,
                };
                prop_assert_eq!(w.check(s), m.check(s), "check {}", s);
                prop_assert_eq!(w.commit(s), m.commit(s), "commit {}", s);
                prop_assert_eq!(w.top(), m.top);
            }
        }

        #[test]
        fn esn_inference_recovers_numbers_near_top(top in 1u64..(1 << 40), size_idx in 0usize..5, back in 0u64..4096, ahead in 0u64..(1 << 30)) {
            let size = SIZES[size_idx];
            let mut w = ReplayWindow::new(size).unwrap();
            w.commit(top).unwrap();
            // Anything inside the window...
            let b = back % u64::from(size);
            if b < top {
                let s = top - b;
                prop_assert_eq!(w.infer(s as u32, true), s);
            }
            // ... or ahead of it by less than 2^32 - W is recovered exactly.
            let s = top + ahead;
            prop_assert_eq!(w.infer(s as u32, true), s);
        }
    }
}
