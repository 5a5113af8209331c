//! [`UmemFrame`]: one packet in a UMEM chunk, owned by the worker that received
//! or allocated it, with room to grow at both ends.
//!
//! Chunk layout (copy mode, and zero-copy with our program, which never
//! moves the packet start). `H` is [`crate::UmemConfig::headroom`]:
//!
//! ```text
//! chunk start                                                   chunk end
//! | kernel XDP_PACKET_HEADROOM (256) | H (ours)  | packet ... | tailroom |
//!                                    ^ min start ^ rx data starts here
//! ```
//!
//! The kernel writes a received packet at `chunk + 256 + H` (verified by the
//! integration tests). The first 256 bytes are left alone by the kernel but
//! the `xdp` crate does not let us reach them, so the usable headroom of a
//! fresh rx frame is exactly `H`, and its tailroom is
//! `frame_size - 256 - H - len`.
//!
//! Guarantees: a `UmemFrame` never exposes bytes outside its own chunk; growing
//! past either end fails with [`FrameError`] and changes nothing. A `UmemFrame`
//! is neither `Send` nor `Clone`: it stays with the worker whose UMEM holds
//! it, and must go back to that worker (`tx_burst` or `recycle`); dropping
//! it leaks its chunk until the worker is dropped (memory stays valid).

use std::fmt;

/// Why a frame could not be resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not enough headroom in front of the packet.
    #[error("need {wanted} bytes of headroom, have {available}")]
    NoHeadroom { wanted: usize, available: usize },
    /// Not enough tailroom after the packet.
    #[error("need {wanted} bytes of tailroom, have {available}")]
    NoTailroom { wanted: usize, available: usize },
    /// Asked to remove more bytes than the packet has.
    #[error("cannot remove {wanted} bytes from a {len}-byte packet")]
    TooShort { wanted: usize, len: usize },
}

/// A packet in a UMEM chunk. Derefs to nothing: use [`UmemFrame::data`] /
/// [`UmemFrame::data_mut`] for the packet bytes (starting at the Ethernet header).
#[must_use = "a frame must be transmitted or recycled, or its chunk leaks"]
pub struct UmemFrame {
    pkt: xdp::Packet,
    /// Bytes between the reachable start of the chunk and the packet start.
    head: u32,
}

impl fmt::Debug for UmemFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UmemFrame")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

impl UmemFrame {
    /// Wraps a packet the `xdp` crate produced from our UMEM with its head
    /// at `head` (the configured headroom).
    pub(crate) fn from_packet(pkt: xdp::Packet, head: u32) -> Self {
        Self { pkt, head }
    }

    pub(crate) fn into_packet(self) -> xdp::Packet {
        self.pkt
    }

    /// Address of the packet start relative to the UMEM start (what goes in
    /// an `xdp_desc`).
    pub(crate) fn umem_addr(&mut self) -> u64 {
        xdp::libc::xdp::xdp_desc::from(self.pkt.__inner_copy()).addr
    }

    /// Packet length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.pkt.len()
    }

    /// True for a zero-length packet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pkt.is_empty()
    }

    /// The packet bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.pkt
    }

    /// The packet bytes, writable in place.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.pkt
    }

    /// Bytes that [`UmemFrame::prepend`] can still add in front.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head as usize
    }

    /// Bytes that [`UmemFrame::append`] can still add at the end.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.pkt.capacity() - self.head as usize - self.pkt.len()
    }

    /// Moves the packet start `n` bytes back into the headroom (e.g. to put
    /// an outer IPv4 + UDP + ESP header + IV in front of the inner packet)
    /// and returns the `n` new bytes, which hold stale data.
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8], FrameError> {
        let available = self.headroom();
        if n > available {
            return Err(FrameError::NoHeadroom { wanted: n, available });
        }
        self.pkt.adjust_head(-(n as i32)).map_err(|_| FrameError::NoHeadroom { wanted: n, available })?;
        self.head -= n as u32;
        Ok(&mut self.pkt[..n])
    }

    /// Moves the packet start `n` bytes forward (strips outer headers).
    pub fn remove_front(&mut self, n: usize) -> Result<(), FrameError> {
        let len = self.len();
        if n > len {
            return Err(FrameError::TooShort { wanted: n, len });
        }
        self.pkt.adjust_head(n as i32).map_err(|_| FrameError::TooShort { wanted: n, len })?;
        self.head += n as u32;
        Ok(())
    }

    /// Extends the packet end by `n` bytes into the tailroom (ESP padding,
    /// trailer and ICV) and returns the `n` new bytes, which hold stale data.
    pub fn append(&mut self, n: usize) -> Result<&mut [u8], FrameError> {
        let available = self.tailroom();
        if n > available {
            return Err(FrameError::NoTailroom { wanted: n, available });
        }
        self.pkt.adjust_tail(n as i32).map_err(|_| FrameError::NoTailroom { wanted: n, available })?;
        let len = self.len();
        Ok(&mut self.pkt[len - n..])
    }

    /// Shortens the packet to `len` bytes (no-op if already shorter).
    pub fn truncate(&mut self, len: usize) {
        let cur = self.len();
        if len < cur {
            // Cannot fail: the new tail stays at or after the head.
            let _ = self.pkt.adjust_tail(-((cur - len) as i32));
        }
    }

    /// Empties the frame and places its start `headroom` bytes into the
    /// chunk's reachable area, ready to build a packet from scratch with
    /// [`UmemFrame::append`]. Fails if `headroom` exceeds the chunk.
    pub fn reset(&mut self, headroom: usize) -> Result<(), FrameError> {
        self.truncate(0);
        let cur = self.head as usize;
        let cap = self.pkt.capacity();
        if headroom > cap {
            return Err(FrameError::NoTailroom { wanted: headroom, available: cap });
        }
        if headroom < cur {
            self.prepend(cur - headroom)?;
            self.truncate(0);
        } else if headroom > cur {
            self.append(headroom - cur)?;
            self.remove_front(headroom - cur)?;
        }
        Ok(())
    }
}
