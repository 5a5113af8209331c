//! [`Port`]: one network interface with our XDP program attached, its local
//! addresses, and the XSK map that workers' sockets register in.
//!
//! Guarantees: opening a port attaches through a bpf_link, so the program
//! is detached when the `Port` is dropped or the process dies; an interface
//! that already has a program is refused with [`Error::PortBusy`] naming it.
//! All calls act in the network namespace of the calling thread.

use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::program::{AttachMode, AttachedProgram};
use crate::sys;
use crate::verdict::VerdictCounts;

/// One interface driven by the fast path.
#[derive(Debug)]
pub struct Port {
    program: AttachedProgram,
    name: String,
    ifindex: u32,
    mode: AttachMode,
}

impl Port {
    /// Loads a fresh instance of the XDP program and attaches it to `name`
    /// in `mode`. Until a socket is bound to a queue, that queue's would-be
    /// redirects are dropped (counted as [`crate::Verdict::NoSocket`] and
    /// per queue, [`Port::no_socket_drops`]): the program fails closed.
    pub fn open(name: &str, mode: AttachMode) -> Result<Self> {
        let ifindex = sys::if_nametoindex(name)
            .map_err(|source| Error::NoSuchInterface { name: name.to_owned(), source })?;
        let program = AttachedProgram::load_and_attach(name, ifindex, mode)?;
        Ok(Self { program, name: name.to_owned(), ifindex, mode })
    }

    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Interface index (in the namespace it was opened in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// How the program is attached.
    pub fn attach_mode(&self) -> AttachMode {
        self.mode
    }

    /// Declares one of the gateway's own addresses: traffic to it goes to
    /// the kernel, except ESP (which goes to the fast path).
    pub fn add_local_addr(&mut self, addr: IpAddr) -> Result<()> {
        self.program.add_local(addr)
    }

    /// Withdraws a local address (absent is fine).
    pub fn remove_local_addr(&mut self, addr: IpAddr) -> Result<()> {
        self.program.remove_local(addr)
    }

    /// The XDP program's verdict counters on this port, summed over CPUs
    /// (a system call per verdict: not for the packet path).
    pub fn verdicts(&self) -> Result<VerdictCounts> {
        self.program.verdicts()
    }

    /// Frames meant for the fast path that arrived on an rx queue without
    /// a socket and were dropped: (queue, frames), non-zero only (a system
    /// call per queue: not for the packet path).
    pub fn no_socket_drops(&self) -> Result<Vec<(u32, u64)>> {
        self.program.no_socket_drops()
    }

    pub(crate) fn register_socket(&mut self, queue: u32, fd: std::os::fd::RawFd) -> Result<()> {
        self.program.set_socket(queue, fd)
    }
}
