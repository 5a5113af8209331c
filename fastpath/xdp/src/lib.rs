//! AF_XDP I/O for the esprit fast path — the only crate of esprit with
//! `unsafe` (confined to `sys`, `socket` and two lines of `umem`/`worker`,
//! each block with a `SAFETY:` line).
//!
//! * [`Port`] (`port.rs`, `program.rs`): one interface with our XDP program
//!   (`bpf/esprit_xdp.c`) attached through a bpf_link. The program passes
//!   ARP, IPv6 control, IKE and everything else addressed to the gateway to
//!   the kernel, and redirects transit traffic and ESP to the AF_XDP socket
//!   of the receive queue. Its [`Verdict`] counters are readable.
//! * [`XdpSockets`] (`worker.rs`, `socket.rs`, `umem.rs`): what one fast-path
//!   thread owns: one UMEM shared by all its sockets (one per (port, queue)),
//!   so a frame received on the LAN port leaves on the WAN port uncopied.
//! * [`UmemFrame`] (`frame.rs`) and [`Burst`] (`burst.rs`): the packet view with
//!   headroom and tailroom, and the fixed-size burst the ring calls use.
//!
//! A worker's loop, in short:
//!
//! ```no_run
//! # use esprit_xdp::*;
//! # fn run(mut lan: Port, mut wan: Port) -> Result<()> {
//! let mut w = XdpSockets::new(XdpSocketsConfig::default())?;
//! let lan0 = w.bind(&mut lan, 0)?;
//! let wan0 = w.bind(&mut wan, 0)?;
//! let (mut rx, mut tx) = (Burst::new(), Burst::new());
//! loop {
//!     w.rx_burst(lan0, &mut rx);
//!     while let Some(mut f) = rx.pop() {
//!         if f.len() < 14 { w.recycle(f); continue; }
//!         let hdr = f.prepend(ESP_UDP_ENCAP_HEADROOM); // room for encapsulation
//!         # let _ = hdr;
//!         let _ = tx.push(f);
//!     }
//!     w.tx_burst(wan0, &mut tx);
//!     w.recycle_burst(&mut tx); // what the ring could not take
//!     w.poll();
//! }
//! # }
//! ```

mod burst;
mod counters;
mod error;
mod frame;
mod port;
mod program;
mod socket;
mod sys;
mod umem;
mod verdict;
mod worker;

pub use burst::{Burst, BURST_MAX};
pub use counters::{KernelStats, QueueCounters};
pub use error::{Error, Result};
pub use frame::{FrameError, UmemFrame};
pub use port::Port;
pub use program::AttachMode;
pub use socket::{BindMode, RingConfig};
pub use umem::{FrameSize, UmemConfig, ESP_TAILROOM, ESP_UDP_ENCAP_HEADROOM, XDP_PACKET_HEADROOM};
pub use verdict::{Verdict, VerdictCounts};
pub use worker::{SocketId, SocketInfo, XdpSockets, XdpSocketsConfig, MAX_SOCKETS_PER_WORKER};

// Workers and ports are built by the management thread (in the ports'
// network namespace) and then moved to their threads.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<XdpSockets>();
    assert_send::<Port>();
};
