//! One AF_XDP socket bound to (interface, queue), registered on its worker's
//! UMEM, with its four rings and the ring discipline the worker relies on:
//!
//! * fill: kept topped up to `fill_target` frames owned by the kernel
//!   (fill ring + rx ring), in chunks of at most [`BURST_MAX`];
//! * rx: drained in bursts into a [`Burst`];
//! * tx: fed in chunks of at most [`BURST_MAX`], halving the chunk when the
//!   ring is nearly full (the `xdp` crate's enqueue is all-or-nothing), then
//!   kicked with `sendto` when the kernel asks (copy mode always does;
//!   the kernel sends at most 32 frames per kick, so kicks repeat);
//! * completion: reclaimed into the UMEM free pool before every tx and poll.
//!
//! Guarantees: every frame is always in exactly one place: the free pool,
//! a kernel ring, or a caller's burst; this module never loses one on the
//! success path and never blocks. This is one of the modules allowed to use
//! `unsafe`: the `xdp` crate's ring operations are `unsafe` because frames
//! must not outlive their UMEM, which the worker guarantees.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, BorrowedFd};

use xdp::slab::Slab;

use crate::burst::{Burst, BURST_MAX};
use crate::counters::{KernelStats, QueueCounters};
use crate::error::{Error, Result};
use crate::frame::UmemFrame;
use crate::sys::{self, Kick, RingFlags, RingKind};
use crate::umem::Umem;

/// How to bind: zero-copy needs driver support (veth has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Zero-copy if the driver supports it, else copy.
    #[default]
    Auto,
    /// Always copy mode.
    Copy,
    /// Zero-copy or fail with [`Error::ZeroCopyUnsupported`].
    ZeroCopy,
}

/// Ring sizes and refill policy of each socket (powers of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// rx ring entries.
    pub rx: u32,
    /// tx ring entries.
    pub tx: u32,
    /// fill ring entries (>= `fill_target`).
    pub fill: u32,
    /// completion ring entries (>= `tx`).
    pub completion: u32,
    /// Frames the worker keeps in the kernel's hands for receiving.
    pub fill_target: u32,
    /// Honour the kernel's `XDP_RING_NEED_WAKEUP` flags (kick only when
    /// asked); `false` kicks after every enqueue.
    pub need_wakeup: bool,
}

impl RingConfig {
    /// Every ring `entries` long, the fill ring kept full, need-wakeup on.
    pub const fn uniform(entries: u32) -> Self {
        Self {
            rx: entries,
            tx: entries,
            fill: entries,
            completion: entries,
            fill_target: entries,
            need_wakeup: true,
        }
    }
}

impl Default for RingConfig {
    fn default() -> Self {
        Self::uniform(1024)
    }
}

/// Where rx descriptors land: the back of a caller's burst.
struct RxSink<'a> {
    frames: &'a mut VecDeque<UmemFrame>,
    room: usize,
    headroom: u32,
    bytes: u64,
}

impl Slab for RxSink<'_> {
    fn available(&self) -> usize {
        self.room
    }
    fn len(&self) -> usize {
        0
    }
    fn is_empty(&self) -> bool {
        true
    }
    fn push_front(&mut self, packet: xdp::Packet) -> Option<xdp::Packet> {
        if self.room == 0 {
            return Some(packet);
        }
        self.room -= 1;
        self.bytes += packet.len() as u64;
        self.frames.push_back(UmemFrame::from_packet(packet, self.headroom));
        None
    }
    fn pop_back(&mut self) -> Option<xdp::Packet> {
        None
    }
}

/// Where tx descriptors come from: the first `n` frames of a caller's burst.
/// The `xdp` crate asks `len()` first and pops only after it reserved that
/// many slots, so a refused chunk leaves the burst untouched.
struct TxSource<'a> {
    frames: &'a mut VecDeque<UmemFrame>,
    n: usize,
    bytes: u64,
}

impl Slab for TxSource<'_> {
    fn available(&self) -> usize {
        0
    }
    fn len(&self) -> usize {
        self.n
    }
    fn is_empty(&self) -> bool {
        self.n == 0
    }
    fn push_front(&mut self, packet: xdp::Packet) -> Option<xdp::Packet> {
        Some(packet)
    }
    fn pop_back(&mut self) -> Option<xdp::Packet> {
        if self.n == 0 {
            return None;
        }
        let frame = self.frames.pop_front()?;
        self.n -= 1;
        self.bytes += frame.len() as u64;
        Some(frame.into_packet())
    }
}

/// One AF_XDP socket of a worker.
pub(crate) struct XskSocket {
    // Rings are unmapped before the socket closes (field order).
    fill: xdp::WakableFillRing,
    rx: xdp::RxRing,
    completion: xdp::CompletionRing,
    tx: xdp::WakableTxRing,
    fill_flags: RingFlags,
    tx_flags: RingFlags,
    socket: xdp::socket::XdpSocket,
    zerocopy: bool,
    need_wakeup: bool,
    /// Frames in the fill and rx rings.
    in_kernel_rx: u32,
    /// Frames in the tx and completion rings.
    in_kernel_tx: u32,
    fill_target: u32,
    /// The last kick stopped at the kernel's budget: kick again on poll.
    tx_kick_pending: bool,
    pub(crate) counters: QueueCounters,
    pub(crate) port: String,
    pub(crate) queue: u32,
}

impl std::fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSocket")
            .field("port", &self.port)
            .field("queue", &self.queue)
            .field("zerocopy", &self.zerocopy)
            .field("in_kernel_rx", &self.in_kernel_rx)
            .field("in_kernel_tx", &self.in_kernel_tx)
            .finish()
    }
}

impl XskSocket {
    /// Creates the socket, registers `umem`, binds to (`ifindex`, `queue`).
    pub(crate) fn open(
        umem: &Umem,
        port: &str,
        ifindex: u32,
        queue: u32,
        rings: RingConfig,
        mode: BindMode,
    ) -> Result<Self> {
        let attempts: &[bool] = match mode {
            BindMode::Auto => &[true, false],
            BindMode::Copy => &[false],
            BindMode::ZeroCopy => &[true],
        };
        let mut last = None;
        for &zc in attempts {
            match Self::try_open(umem, port, ifindex, queue, rings, zc) {
                Ok(s) => return Ok(s),
                // veth: EOPNOTSUPP; some drivers say EINVAL for zero-copy.
                Err(BindFailure::ZeroCopyRefused) if mode == BindMode::ZeroCopy => {
                    return Err(Error::ZeroCopyUnsupported { name: port.to_owned(), queue });
                }
                Err(BindFailure::ZeroCopyRefused) => last = None,
                Err(BindFailure::Other(e)) => {
                    last = Some(e);
                    break;
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Socket {
            name: port.to_owned(),
            queue,
            detail: "no bind mode worked".into(),
        }))
    }

    fn try_open(
        umem: &Umem,
        port: &str,
        ifindex: u32,
        queue: u32,
        rings: RingConfig,
        zerocopy: bool,
    ) -> std::result::Result<Self, BindFailure> {
        let err = |detail: String| BindFailure::Other(Error::Socket { name: port.to_owned(), queue, detail });
        let cfg = xdp::RingConfigBuilder {
            rx_count: rings.rx,
            tx_count: rings.tx,
            fill_count: rings.fill,
            completion_count: rings.completion,
        }
        .build()
        .map_err(|e| err(format!("ring sizes: {e:?}")))?;
        if rings.fill_target > rings.fill {
            return Err(err(format!(
                "fill_target {} exceeds the fill ring ({})",
                rings.fill_target, rings.fill
            )));
        }

        let mut builder = xdp::socket::XdpSocketBuilder::new().map_err(|e| err(format!("socket(): {e}")))?;
        let (wr, mut flags) = builder
            .build_wakable_rings(&umem.inner, cfg)
            .map_err(|e| err(format!("UMEM registration / rings: {e}")))?;
        if zerocopy {
            flags.force_zerocopy();
        } else {
            flags.force_copy();
        }
        let socket = match builder.bind(xdp::nic::NicIndex(ifindex), queue, flags) {
            Ok(s) => s,
            Err(xdp::socket::SocketError::Bind(e))
                if zerocopy && matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)) =>
            {
                return Err(BindFailure::ZeroCopyRefused);
            }
            Err(e) => return Err(err(format!("bind: {e}"))),
        };
        let (Some(rx), Some(tx)) = (wr.rx_ring, wr.tx_ring) else {
            return Err(err("rx or tx ring missing".into()));
        };
        let fd = socket_fd(&socket);
        let fill_flags =
            RingFlags::map(fd, RingKind::Fill).map_err(|e| err(format!("fill ring flags: {e}")))?;
        let tx_flags = RingFlags::map(fd, RingKind::Tx).map_err(|e| err(format!("tx ring flags: {e}")))?;
        let zc = sys::xdp_is_zerocopy(socket.as_raw_fd()).map_err(|e| err(format!("XDP_OPTIONS: {e}")))?;
        Ok(Self {
            fill: wr.fill_ring,
            rx,
            completion: wr.completion_ring,
            tx,
            fill_flags,
            tx_flags,
            socket,
            zerocopy: zc,
            need_wakeup: rings.need_wakeup,
            in_kernel_rx: 0,
            in_kernel_tx: 0,
            fill_target: rings.fill_target,
            tx_kick_pending: false,
            counters: QueueCounters::default(),
            port: port.to_owned(),
            queue,
        })
    }

    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }

    pub(crate) fn is_zerocopy(&self) -> bool {
        self.zerocopy
    }

    /// Tops the fill ring up to `fill_target` kernel-owned frames.
    pub(crate) fn refill(&mut self, umem: &mut Umem) {
        let mut want = self.fill_target.saturating_sub(self.in_kernel_rx) as usize;
        let mut added = 0usize;
        while want > 0 {
            let chunk = want.min(BURST_MAX);
            // SAFETY: the frames come from `umem`, which the worker keeps
            // alive (and registered) for as long as this socket exists.
            let got = unsafe { self.fill.enqueue(&mut umem.inner, chunk, false) }.unwrap_or(0);
            if got == 0 {
                if umem.inner.allocatable() == 0 {
                    self.counters.fill_starved += 1;
                }
                break;
            }
            added += got;
            want -= got;
        }
        self.in_kernel_rx += added as u32;
        if added > 0 && (!self.need_wakeup || self.fill_flags.needs_wakeup()) {
            self.counters.fill_kicks += 1;
            if sys::kick_rx(self.raw_fd()).is_err() {
                self.counters.kick_errors += 1;
            }
        }
    }

    /// Moves up to `burst.spare()` received frames to the back of `burst`.
    pub(crate) fn rx_burst(&mut self, umem: &mut Umem, burst: &mut Burst) -> usize {
        let room = burst.spare();
        if room == 0 {
            return 0;
        }
        let mut sink = RxSink { frames: &mut burst.frames, room, headroom: umem.cfg.headroom, bytes: 0 };
        // SAFETY: the frames point into `umem`, which outlives them (the
        // worker leaks the mapping rather than unmap it under live frames).
        let n = unsafe { self.rx.recv(&umem.inner, &mut sink) };
        let bytes = sink.bytes;
        if n == 0 {
            self.counters.rx_empty_polls += 1;
        } else {
            self.counters.rx_packets += n as u64;
            self.counters.rx_bytes += bytes;
            self.in_kernel_rx = self.in_kernel_rx.saturating_sub(n as u32);
        }
        self.refill(umem);
        n
    }

    /// Returns completed tx frames to the free pool.
    pub(crate) fn reclaim(&mut self, umem: &mut Umem) {
        loop {
            let n = self.completion.dequeue(&mut umem.inner, BURST_MAX);
            if n == 0 {
                break;
            }
            self.in_kernel_tx = self.in_kernel_tx.saturating_sub(n as u32);
            self.counters.tx_completed += n as u64;
        }
    }

    /// Queues frames from the front of `burst`; returns how many left it.
    pub(crate) fn tx_burst(&mut self, umem: &mut Umem, burst: &mut Burst) -> usize {
        self.reclaim(umem);
        let mut sent = 0usize;
        let mut bytes = 0u64;
        'outer: while !burst.is_empty() {
            let mut n = burst.len().min(BURST_MAX);
            loop {
                let mut src = TxSource { frames: &mut burst.frames, n, bytes: 0 };
                // SAFETY: the frames come from `umem` (checked by the worker)
                // which outlives this socket.
                let got = unsafe { self.tx.send(&mut src, false) }.unwrap_or(0);
                bytes += src.bytes;
                if got > 0 {
                    sent += got;
                    break;
                }
                if n == 1 {
                    self.counters.tx_ring_full += 1;
                    break 'outer;
                }
                n /= 2;
            }
        }
        if sent > 0 {
            self.in_kernel_tx += sent as u32;
            self.counters.tx_packets += sent as u64;
            self.counters.tx_bytes += bytes;
            self.kick_tx(sent);
        } else if self.tx_kick_pending {
            self.kick_tx(BURST_MAX);
        }
        sent
    }

    /// Kicks the kernel until it has looked at `queued` frames, at 32 per
    /// call in copy mode (its per-call budget), plus one to observe the end.
    pub(crate) fn kick_tx(&mut self, queued: usize) {
        if self.need_wakeup && !self.tx_flags.needs_wakeup() {
            self.tx_kick_pending = false;
            return;
        }
        let rounds = queued.div_ceil(32) + 1;
        self.tx_kick_pending = true;
        for _ in 0..rounds {
            self.counters.tx_kicks += 1;
            match sys::kick_tx(self.raw_fd()) {
                Ok(Kick::Done) => {
                    self.tx_kick_pending = false;
                    break;
                }
                Ok(Kick::Again) => {}
                Err(_) => {
                    self.counters.kick_errors += 1;
                    break;
                }
            }
        }
    }

    /// Between bursts: reclaim completions and finish an interrupted kick.
    pub(crate) fn poll(&mut self, umem: &mut Umem) {
        self.reclaim(umem);
        if self.tx_kick_pending {
            self.kick_tx(BURST_MAX);
        }
        if self.in_kernel_rx < self.fill_target {
            self.refill(umem);
        }
    }

    pub(crate) fn kernel_stats(&self) -> Result<KernelStats> {
        let s = self.socket.statistics().map_err(|e| Error::Socket {
            name: self.port.clone(),
            queue: self.queue,
            detail: format!("XDP_STATISTICS: {e}"),
        })?;
        Ok(KernelStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }

    /// Frames currently lent to the kernel (fill + rx, tx + completion).
    pub(crate) fn in_kernel(&self) -> (u32, u32) {
        (self.in_kernel_rx, self.in_kernel_tx)
    }
}

enum BindFailure {
    ZeroCopyRefused,
    Other(Error),
}

fn socket_fd(socket: &xdp::socket::XdpSocket) -> BorrowedFd<'_> {
    // SAFETY: the fd is owned by `socket` (`XdpSocket` offers only
    // `AsRawFd`) and stays open while the borrow lives.
    unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) }
}
