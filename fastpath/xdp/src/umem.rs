//! UMEM configuration and the per-worker UMEM: one memory area of equal
//! chunks, registered on every socket of one worker, with its free-frame
//! pool (the `xdp` crate's preallocated free list: no allocation per packet).
//!
//! Guarantees: the configuration is checked before anything is mapped; the
//! base address is learned once so that frames from another worker's UMEM
//! can be recognised and refused.

use crate::error::{Error, Result};
use crate::frame::UmemFrame;

/// Bytes the kernel keeps at the start of every chunk (`XDP_PACKET_HEADROOM`);
/// rx data never lands there. The `xdp` crate does not let us use them.
pub const XDP_PACKET_HEADROOM: usize = 256;

/// What UDP-encapsulated tunnel-mode ESP puts in front of the inner packet
/// beyond the Ethernet header: outer IPv4 20 + UDP 8 + ESP 8 + IV 16
/// (RFC 4303 §2, RFC 3948 §2.1; 16 is the CBC IV, GCM's is 8).
pub const ESP_UDP_ENCAP_HEADROOM: usize = 20 + 8 + 8 + 16;

/// What ESP appends at most: padding up to 15 (CBC block 16) + pad length +
/// next header (2) + ICV up to 16 (RFC 4303 §2.4-2.8), rounded up.
pub const ESP_TAILROOM: usize = 48;

/// Size of a UMEM chunk (the kernel accepts 2048..=4096 aligned powers of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSize {
    /// 2048 B: with headroom 128, up to 1664 B of received frame.
    B2048,
    /// 4096 B: with headroom 256, up to 3584 B (covers veth's native-XDP MTU
    /// cap of 3506).
    B4096,
}

impl FrameSize {
    /// The size in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            FrameSize::B2048 => 2048,
            FrameSize::B4096 => 4096,
        }
    }
}

/// How a worker's UMEM is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Chunk size.
    pub frame_size: FrameSize,
    /// Number of chunks. Budget: for every socket, its fill target plus its
    /// tx ring, plus what the worker holds in bursts.
    pub frame_count: u32,
    /// Headroom `H` reserved in front of every received packet (beyond the
    /// kernel's 256): room to prepend headers without moving the packet.
    /// At least [`ESP_UDP_ENCAP_HEADROOM`].
    pub headroom: u32,
}

impl Default for UmemConfig {
    fn default() -> Self {
        Self { frame_size: FrameSize::B2048, frame_count: 4096, headroom: 128 }
    }
}

impl UmemConfig {
    /// Largest frame (Ethernet header included) the kernel can place in a chunk.
    pub const fn max_rx_len(&self) -> usize {
        self.frame_size.bytes() - XDP_PACKET_HEADROOM - self.headroom as usize
    }

    /// Bytes after a received frame of `len` bytes.
    pub const fn tailroom_after(&self, len: usize) -> usize {
        self.max_rx_len().saturating_sub(len)
    }

    fn check(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::Umem { detail });
        if (self.headroom as usize) < ESP_UDP_ENCAP_HEADROOM {
            return bad(format!(
                "headroom {} is less than the {ESP_UDP_ENCAP_HEADROOM} B ESP-in-UDP encapsulation needs",
                self.headroom
            ));
        }
        // An MTU-1500 Ethernet frame plus ESP's tail must fit.
        if self.max_rx_len() < 1514 + ESP_TAILROOM {
            return bad(format!(
                "headroom {} leaves {} B per chunk of {}: less than 1514 + {ESP_TAILROOM}",
                self.headroom,
                self.max_rx_len(),
                self.frame_size.bytes()
            ));
        }
        if self.frame_count == 0 {
            return bad("frame_count is 0".into());
        }
        Ok(())
    }
}

/// The UMEM of one worker.
pub(crate) struct Umem {
    pub(crate) inner: xdp::Umem,
    pub(crate) cfg: UmemConfig,
    /// Address of the first byte of the mapping.
    base: usize,
    len: usize,
}

impl std::fmt::Debug for Umem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Umem").field("cfg", &self.cfg).field("free", &self.inner.allocatable()).finish()
    }
}

impl Umem {
    pub(crate) fn new(cfg: UmemConfig) -> Result<Self> {
        cfg.check()?;
        let err = |detail: String| Error::Umem { detail };
        let frame_size = match cfg.frame_size {
            FrameSize::B2048 => xdp::umem::FrameSize::TwoK,
            FrameSize::B4096 => xdp::umem::FrameSize::FourK,
        };
        let builder = xdp::umem::UmemCfgBuilder {
            frame_size,
            head_room: cfg.headroom,
            frame_count: cfg.frame_count,
            ..Default::default()
        };
        let built = builder.build().map_err(|e| err(format!("{e:?}")))?;
        let mut inner =
            xdp::Umem::map(built).map_err(|e| err(format!("mapping {} frames: {e}", cfg.frame_count)))?;
        let base = learn_base(&mut inner, cfg.headroom)?;
        let len = cfg.frame_count as usize * cfg.frame_size.bytes();
        Ok(Self { inner, cfg, base, len })
    }

    /// True if `frame` lives in this UMEM.
    #[inline]
    pub(crate) fn owns(&self, frame: &UmemFrame) -> bool {
        let p = frame.data().as_ptr() as usize;
        p >= self.base && p < self.base + self.len
    }

    /// Offset of the frame's first byte from the UMEM start.
    pub(crate) fn offset_of(&self, frame: &UmemFrame) -> Option<usize> {
        self.owns(frame).then(|| frame.data().as_ptr() as usize - self.base)
    }

    /// Takes a free chunk as an empty frame with the configured headroom.
    pub(crate) fn alloc(&mut self) -> Option<UmemFrame> {
        #[allow(unsafe_code)]
        // SAFETY: the frame points into this UMEM; the worker keeps the UMEM
        // mapped while any frame it handed out is outstanding (see XdpSockets's
        // Drop), and `UmemFrame` is !Send so it cannot leave the worker's thread.
        let pkt = unsafe { self.inner.alloc() }?;
        Some(UmemFrame::from_packet(pkt, self.cfg.headroom))
    }

    /// Returns a chunk to the free pool.
    pub(crate) fn free(&mut self, frame: UmemFrame) {
        self.inner.free_packet(frame.into_packet());
    }
}

/// Allocates the first chunk and compares its pointer with its UMEM offset.
fn learn_base(inner: &mut xdp::Umem, headroom: u32) -> Result<usize> {
    #[allow(unsafe_code)]
    // SAFETY: the packet is returned to the pool below, before `inner` can go.
    let pkt = unsafe { inner.alloc() }.ok_or_else(|| Error::Umem { detail: "no frame to probe".into() })?;
    let mut frame = UmemFrame::from_packet(pkt, headroom);
    let ptr = frame.data().as_ptr() as usize;
    let addr = frame.umem_addr() as usize;
    inner.free_packet(frame.into_packet());
    Ok(ptr - addr)
}
