//! The I/O shell: sockets, threads, the clock and signals around the core.
//!
//! * [`daemon`]: the main loop (IKE sockets, fastpathd, timers);
//! * [`operator`]: the operator socket's line protocol.

pub mod daemon;
pub mod operator;
