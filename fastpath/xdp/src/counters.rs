//! Counters of one AF_XDP socket, kept by the worker that owns it (single
//! writer, plain integers: no atomics on the packet path). A worker that
//! wants them seen elsewhere copies them out between bursts.

/// What one socket (port, queue) of a worker has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// `rx_burst` calls that found the rx ring empty.
    pub rx_empty_polls: u64,
    /// Frames handed to the tx ring.
    pub tx_packets: u64,
    /// Bytes handed to the tx ring.
    pub tx_bytes: u64,
    /// Times the tx ring had no room for even one frame.
    pub tx_ring_full: u64,
    /// Transmit completions reclaimed into the free pool.
    pub tx_completed: u64,
    /// `sendto` kicks made (copy mode transmits inside them).
    pub tx_kicks: u64,
    /// Times the fill ring could not be topped up because the free pool was
    /// empty (the kernel may then drop received frames).
    pub fill_starved: u64,
    /// `recvfrom` kicks made because the driver asked for a fill wakeup.
    pub fill_kicks: u64,
    /// Kick system calls that failed with an unexpected error.
    pub kick_errors: u64,
}

/// The kernel's own counters for a socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Dropped for other reasons (e.g. no fill frame in copy mode).
    pub rx_dropped: u64,
    /// Invalid rx descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid tx descriptors (bad address or length).
    pub tx_invalid_descs: u64,
    /// Dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the tx ring was empty when the kernel looked.
    pub tx_ring_empty_descs: u64,
}
