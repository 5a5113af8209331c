//! Fitting inner packets to a tunnel: buffers for the fragments a datagram
//! makes when it is fragmented before encryption.
//!
//! A datagram over the tunnel MTU without DF is split (RFC 791 §3.2, done
//! by `esprit_wire::ipv4_frag`) before it is sealed, each fragment its own
//! ESP packet, as ScreenOS does by default (RFC 4459 §3 calls it
//! pre-fragmentation: the peer decrypts whole ESP packets and the
//! destination host reassembles, so neither gateway reassembles). The first
//! fragment stays in the datagram's frame and leaves with the burst; the
//! later ones are sealed into these buffers, allocated when the worker
//! starts, and the I/O shell sends them after the burst
//! ([`crate::Worker::drain_fragments`]). Bounds: at most
//! [`MAX_FRAGMENTS`] fragments per datagram and [`FRAGMENT_SLOTS`] later
//! fragments waiting per worker; beyond either the datagram is dropped
//! and counted (`too-big`, `frag-no-buffer`), never half sent.

use core::ops::Range;

use esprit_esp::{MAX_HEADROOM, MAX_TAILROOM};
use esprit_wire::ethernet;

use crate::PortId;

/// Most fragments one datagram may make: a 1500-byte datagram at a tunnel
/// MTU of 216 bytes. (A tunnel MTU so small that a datagram needs more is
/// a configuration error; its datagrams are dropped as `too-big`.)
pub const MAX_FRAGMENTS: usize = 8;
/// Later fragments waiting for the I/O shell, per worker: a whole burst
/// of datagrams each split in two.
pub const FRAGMENT_SLOTS: usize = 64;
/// Room before a fragment for the Ethernet, outer IPv4, UDP and ESP headers.
pub const FRAGMENT_HEADROOM: usize = ethernet::HEADER_LEN + MAX_HEADROOM;
/// Largest inner fragment a slot holds (no inner packet is larger than the
/// 2 KiB frame it came in).
pub const MAX_FRAGMENT_LEN: usize = 2048;
const SLOT_LEN: usize = FRAGMENT_HEADROOM + MAX_FRAGMENT_LEN + MAX_TAILROOM;

/// The later fragments of datagrams fragmented in this burst: slots
/// `0..ready.len()` are sealed Ethernet frames ready to send; the slots
/// after them may hold fragments being sealed.
pub(crate) struct FragmentOut {
    slots: Box<[u8]>,
    /// (port, where the frame sits in its slot), one per ready slot.
    ready: Vec<(PortId, Range<usize>)>,
}

impl Default for FragmentOut {
    fn default() -> Self {
        FragmentOut {
            slots: vec![0; FRAGMENT_SLOTS * SLOT_LEN].into_boxed_slice(),
            ready: Vec::with_capacity(FRAGMENT_SLOTS),
        }
    }
}

impl FragmentOut {
    /// Free slots.
    pub(crate) fn free(&self) -> usize {
        FRAGMENT_SLOTS - self.ready.len()
    }

    /// The `n`-th free slot (0 is the next to become ready), whole.
    pub(crate) fn free_slot(&mut self, n: usize) -> Option<&mut [u8]> {
        let i = self.ready.len() + n;
        if i >= FRAGMENT_SLOTS {
            return None;
        }
        self.slots.get_mut(i * SLOT_LEN..(i + 1) * SLOT_LEN)
    }

    /// The next free slot now holds a frame for `port` at `frame` (which
    /// was written while it was free slot 0).
    pub(crate) fn commit(&mut self, port: PortId, frame: Range<usize>) {
        if self.ready.len() < FRAGMENT_SLOTS {
            self.ready.push((port, frame));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// Hands each ready frame to `f` with its port, in the order made, and
    /// frees every slot.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(PortId, &[u8])) {
        for (i, (port, frame)) in self.ready.iter().enumerate() {
            let slot = &self.slots[i * SLOT_LEN..(i + 1) * SLOT_LEN];
            if let Some(bytes) = slot.get(frame.clone()) {
                f(*port, bytes);
            }
        }
        self.ready.clear();
    }
}
