//! [`Burst`]: a fixed-capacity FIFO of up to [`BURST_MAX`] frames, allocated
//! once and reused for every burst (no allocation on the packet path).

use std::collections::VecDeque;

use crate::frame::UmemFrame;

/// Most frames one `rx_burst` returns or one `tx_burst` call takes per ring
/// operation (the `xdp` crate's enqueue is all-or-nothing, FACTS.md).
pub const BURST_MAX: usize = 64;

/// Up to [`BURST_MAX`] frames, in arrival order.
#[derive(Debug)]
pub struct Burst {
    pub(crate) frames: VecDeque<UmemFrame>,
}

impl Default for Burst {
    fn default() -> Self {
        Self::new()
    }
}

impl Burst {
    /// An empty burst with room for [`BURST_MAX`] frames (the only allocation).
    pub fn new() -> Self {
        Self { frames: VecDeque::with_capacity(BURST_MAX) }
    }

    /// Number of frames held.
    #[inline]
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when no frame is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Free slots.
    #[inline]
    pub fn spare(&self) -> usize {
        BURST_MAX - self.frames.len()
    }

    /// Appends a frame; gives it back if the burst is full.
    #[inline]
    pub fn push(&mut self, frame: UmemFrame) -> Result<(), UmemFrame> {
        if self.frames.len() >= BURST_MAX {
            return Err(frame);
        }
        self.frames.push_back(frame);
        Ok(())
    }

    /// Takes the oldest frame.
    #[inline]
    pub fn pop(&mut self) -> Option<UmemFrame> {
        self.frames.pop_front()
    }

    /// The frames, oldest first, for in-place processing.
    #[inline]
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut UmemFrame> + '_ {
        self.frames.iter_mut()
    }

    /// The frames, oldest first.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = &UmemFrame> + '_ {
        self.frames.iter()
    }
}
