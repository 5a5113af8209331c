//! [`XdpSockets`]: what one fast-path thread owns: one UMEM shared by all its
//! AF_XDP sockets (one per (port, queue) it serves), so a frame received on
//! one port is transmitted on another without a copy.
//!
//! The packet-path calls ([`XdpSockets::rx_burst`], [`XdpSockets::tx_burst`],
//! [`XdpSockets::recycle`], [`XdpSockets::alloc`], [`XdpSockets::poll`]) never allocate,
//! never block, never lock; their only system calls are the ring kicks the
//! kernel asks for.
//!
//! Guarantees: a frame from another worker's UMEM is refused (counted in
//! [`XdpSockets::foreign_frames`]) rather than put on this worker's rings; the
//! UMEM stays mapped while sockets exist, and if frames handed out to the
//! caller have not come back when the worker is dropped, the mapping is
//! leaked rather than unmapped under them.

use crate::burst::Burst;
use crate::counters::{KernelStats, QueueCounters};
use crate::error::{Error, Result};
#[cfg(test)]
use crate::frame::FrameError;
use crate::frame::UmemFrame;
use crate::port::Port;
use crate::socket::{BindMode, RingConfig, XskSocket};
use crate::umem::{Umem, UmemConfig};

/// Most sockets one worker binds.
pub const MAX_SOCKETS_PER_WORKER: usize = 64;

/// How a worker's UMEM and sockets are set up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpSocketsConfig {
    /// UMEM layout (frame size, count, headroom).
    pub umem: UmemConfig,
    /// Ring sizes and refill policy of every socket.
    pub rings: RingConfig,
    /// Copy / zero-copy selection.
    pub bind: BindMode,
}

/// Handle of one of a worker's sockets (a (port, queue) pair), returned by
/// [`XdpSockets::bind`]. Cheap to copy; only meaningful for that worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId(u16);

impl SocketId {
    /// Position in [`XdpSockets::sockets`] order (0, 1, ...).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Facts about a bound socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    /// Interface name.
    pub port: String,
    /// Queue index on that interface.
    pub queue: u32,
    /// True if the kernel bound it zero-copy.
    pub zerocopy: bool,
}

/// The UMEM and sockets of one fast-path thread. `Send`: build it anywhere
/// (e.g. the management thread, inside the ports' network namespace), then
/// move it to its thread.
#[derive(Debug)]
pub struct XdpSockets {
    // Sockets close before the UMEM they registered is unmapped.
    sockets: Vec<XskSocket>,
    umem: std::mem::ManuallyDrop<Umem>,
    cfg: XdpSocketsConfig,
    /// Frames handed to the caller and not yet given back.
    lent: usize,
    foreign: u64,
}

impl Drop for XdpSockets {
    fn drop(&mut self) {
        self.sockets.clear();
        if self.lent == 0 {
            #[allow(unsafe_code)]
            // SAFETY: called once, and `self.umem` is not used afterwards.
            unsafe {
                std::mem::ManuallyDrop::drop(&mut self.umem)
            };
        }
        // Otherwise frames still point into the mapping: leak it.
    }
}

impl XdpSockets {
    /// Maps the UMEM. Sockets are added with [`XdpSockets::bind`].
    pub fn new(cfg: XdpSocketsConfig) -> Result<Self> {
        let umem = Umem::new(cfg.umem)?;
        Ok(Self { sockets: Vec::new(), umem: std::mem::ManuallyDrop::new(umem), cfg, lent: 0, foreign: 0 })
    }

    /// The configuration this worker was made with.
    pub fn config(&self) -> &XdpSocketsConfig {
        &self.cfg
    }

    /// Creates an AF_XDP socket on `port`'s `queue`, registers this worker's
    /// UMEM on it, fills its fill ring and puts it in the port's XSK map, so
    /// that the XDP program starts redirecting that queue's traffic here.
    /// Call from a thread in the port's network namespace.
    pub fn bind(&mut self, port: &mut Port, queue: u32) -> Result<SocketId> {
        if self.sockets.len() >= MAX_SOCKETS_PER_WORKER {
            return Err(Error::TooManySockets { max: MAX_SOCKETS_PER_WORKER });
        }
        let mut socket =
            XskSocket::open(&self.umem, port.name(), port.ifindex(), queue, self.cfg.rings, self.cfg.bind)?;
        socket.refill(&mut self.umem);
        port.register_socket(queue, socket.raw_fd())?;
        let id = SocketId(self.sockets.len() as u16);
        self.sockets.push(socket);
        Ok(id)
    }

    /// The bound sockets, in [`SocketId`] order.
    pub fn sockets(&self) -> impl Iterator<Item = (SocketId, SocketInfo)> + '_ {
        self.sockets.iter().enumerate().map(|(i, s)| {
            (
                SocketId(i as u16),
                SocketInfo { port: s.port.clone(), queue: s.queue, zerocopy: s.is_zerocopy() },
            )
        })
    }

    /// Receives up to `burst.spare()` frames (at most [`crate::BURST_MAX`])
    /// from `id`'s rx ring into the back of `burst`, then tops the fill ring
    /// up. Returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, id: SocketId, burst: &mut Burst) -> usize {
        let Some(s) = self.sockets.get_mut(id.index()) else { return 0 };
        let n = s.rx_burst(&mut self.umem, burst);
        self.lent += n;
        n
    }

    /// Transmits frames from the front of `burst` on `id`, reclaiming
    /// completions first. Returns how many were queued; frames that did not
    /// fit (tx ring full) stay in `burst`, oldest first, for the caller to
    /// retry or [`XdpSockets::recycle_burst`]. Frames of another worker's UMEM
    /// are removed, counted ([`XdpSockets::foreign_frames`]) and never reach the
    /// ring.
    #[inline]
    pub fn tx_burst(&mut self, id: SocketId, burst: &mut Burst) -> usize {
        self.drop_foreign(burst);
        let Some(s) = self.sockets.get_mut(id.index()) else { return 0 };
        let n = s.tx_burst(&mut self.umem, burst);
        self.lent -= n;
        n
    }

    /// Gives a frame back to the free pool (a dropped packet).
    #[inline]
    pub fn recycle(&mut self, frame: UmemFrame) {
        if !self.umem.owns(&frame) {
            self.foreign += 1;
            // `UmemFrame` has no destructor: its chunk stays with its owner.
            drop(frame);
            return;
        }
        self.umem.free(frame);
        self.lent -= 1;
    }

    /// Gives every frame of `burst` back to the free pool.
    #[inline]
    pub fn recycle_burst(&mut self, burst: &mut Burst) {
        while let Some(f) = burst.pop() {
            self.recycle(f);
        }
    }

    /// Takes an empty frame from the free pool (to build a packet from
    /// scratch: [`UmemFrame::append`], headroom as configured). `None` when the
    /// pool is empty.
    #[inline]
    pub fn alloc(&mut self) -> Option<UmemFrame> {
        let f = self.umem.alloc()?;
        self.lent += 1;
        Some(f)
    }

    /// Between bursts (at least once per loop): reclaims tx completions,
    /// finishes interrupted tx kicks, tops up fill rings.
    #[inline]
    pub fn poll(&mut self) {
        for s in &mut self.sockets {
            s.poll(&mut self.umem);
        }
    }

    /// The worker-side counters of `id`.
    pub fn counters(&self, id: SocketId) -> QueueCounters {
        self.sockets.get(id.index()).map(|s| s.counters).unwrap_or_default()
    }

    /// The kernel's counters of `id` (a system call: not for the packet path).
    pub fn kernel_stats(&self, id: SocketId) -> Result<KernelStats> {
        match self.sockets.get(id.index()) {
            Some(s) => s.kernel_stats(),
            None => Ok(KernelStats::default()),
        }
    }

    /// Offset of `frame`'s first byte from the start of this worker's UMEM
    /// (`None` for a foreign frame). `offset % frame_size` tells where in
    /// its chunk the kernel put a received packet: `256 + headroom`.
    pub fn umem_offset(&self, frame: &UmemFrame) -> Option<usize> {
        self.umem.offset_of(frame)
    }

    /// Frames in the free pool.
    pub fn free_frames(&self) -> usize {
        self.umem.inner.allocatable()
    }

    /// Frames held by the caller (received or allocated, not yet returned).
    pub fn lent_frames(&self) -> usize {
        self.lent
    }

    /// Frames lent to the kernel by `id`: (fill + rx rings, tx + completion rings).
    pub fn kernel_frames(&self, id: SocketId) -> (u32, u32) {
        self.sockets.get(id.index()).map(|s| s.in_kernel()).unwrap_or_default()
    }

    /// Frames of another worker's UMEM that were handed to this one and refused.
    pub fn foreign_frames(&self) -> u64 {
        self.foreign
    }

    fn drop_foreign(&mut self, burst: &mut Burst) {
        let umem = &self.umem;
        let mut foreign = 0;
        // Dropping a `UmemFrame` only forgets it (its chunk stays with its owner).
        burst.frames.retain(|f| {
            let ours = umem.owns(f);
            foreign += u64::from(!ours);
            ours
        });
        self.foreign += foreign;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::umem::{ESP_TAILROOM, ESP_UDP_ENCAP_HEADROOM, XDP_PACKET_HEADROOM};

    fn worker() -> XdpSockets {
        let mut cfg = XdpSocketsConfig::default();
        cfg.umem.frame_count = 64;
        XdpSockets::new(cfg).unwrap()
    }

    #[test]
    fn alloc_grow_and_recycle_keep_the_pool_whole() {
        let mut w = worker();
        assert_eq!(w.free_frames(), 64);
        let mut f = w.alloc().unwrap();
        assert_eq!(w.lent_frames(), 1);
        assert_eq!(f.headroom(), 128);
        assert_eq!(f.tailroom(), 2048 - XDP_PACKET_HEADROOM - 128);
        assert_eq!(w.umem_offset(&f).unwrap() % 2048, XDP_PACKET_HEADROOM + 128);

        f.append(100).unwrap().fill(7);
        let hdr = f.prepend(ESP_UDP_ENCAP_HEADROOM).unwrap();
        hdr.fill(1);
        assert_eq!(f.len(), 100 + ESP_UDP_ENCAP_HEADROOM);
        assert_eq!(f.headroom(), 128 - ESP_UDP_ENCAP_HEADROOM);
        assert_eq!(f.data()[ESP_UDP_ENCAP_HEADROOM], 7);
        f.append(ESP_TAILROOM).unwrap();
        f.remove_front(ESP_UDP_ENCAP_HEADROOM).unwrap();
        f.truncate(100);
        assert_eq!(f.data(), &[7u8; 100][..]);

        assert!(matches!(f.prepend(129), Err(FrameError::NoHeadroom { wanted: 129, available: 128 })));
        let room = f.tailroom();
        assert!(matches!(f.append(room + 1), Err(FrameError::NoTailroom { .. })));
        assert_eq!(f.len(), 100, "failed resizes change nothing");
        assert!(f.remove_front(101).is_err());

        w.recycle(f);
        assert_eq!(w.lent_frames(), 0);
        assert_eq!(w.free_frames(), 64);
    }

    #[test]
    fn foreign_frames_are_refused() {
        let mut a = worker();
        let mut b = worker();
        let f = a.alloc().unwrap();
        b.recycle(f);
        assert_eq!(b.foreign_frames(), 1);
        assert_eq!(b.free_frames(), 64);
        let mut burst = Burst::new();
        burst.push(a.alloc().unwrap()).unwrap();
        burst.push(b.alloc().unwrap()).unwrap();
        b.recycle_burst(&mut burst);
        assert_eq!(b.foreign_frames(), 2);
        assert_eq!(b.lent_frames(), 0);
        // `a` still counts two frames lent: dropping it leaks its mapping
        // instead of unmapping memory that frames might point into.
        assert_eq!(a.lent_frames(), 2);
    }

    #[test]
    fn pool_runs_dry_without_panicking() {
        let mut w = worker();
        let mut burst = Burst::new();
        while let Some(f) = w.alloc() {
            if burst.push(f).is_err() {
                break;
            }
        }
        assert_eq!(w.free_frames(), 0);
        assert!(w.alloc().is_none());
        w.recycle_burst(&mut burst);
        assert_eq!(w.free_frames(), 64);
    }

    #[test]
    fn config_is_checked() {
        let mut cfg = XdpSocketsConfig::default();
        cfg.umem.headroom = 16;
        assert!(matches!(XdpSockets::new(cfg), Err(Error::Umem { .. })));
        cfg.umem.headroom = 512;
        assert!(matches!(XdpSockets::new(cfg), Err(Error::Umem { .. })));
        cfg.umem.frame_size = crate::FrameSize::B4096;
        assert!(XdpSockets::new(cfg).is_ok());
    }
}
