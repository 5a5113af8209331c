//! Errors of the AF_XDP layer. Each names the interface (and queue) it is
//! about, so an operator can act on it without reading code.

use std::io;

/// Everything that can go wrong while setting up ports and workers.
/// (The packet path itself does not return errors: it counts.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No interface of that name in the calling thread's network namespace.
    #[error("interface {name}: not found in this network namespace: {source}")]
    NoSuchInterface { name: String, source: io::Error },
    /// The interface already carries an XDP program (EBUSY/EEXIST).
    #[error(
        "interface {name}: already has an XDP program attached (left over from a crash?); \
         remove it with `ip link set dev {name} xdp off`"
    )]
    PortBusy { name: String },
    /// The kernel refused to attach our program.
    #[error("interface {name}: attaching the XDP program in {mode} mode: {source}")]
    Attach { name: String, mode: &'static str, source: io::Error },
    /// The embedded BPF object could not be loaded (verifier, maps, BTF).
    #[error("loading the esprit XDP program: {detail}")]
    Load { detail: String },
    /// A BPF map operation failed.
    #[error("interface {name}: XDP map `{map}`: {detail}")]
    Map { name: String, map: &'static str, detail: String },
    /// The UMEM configuration is invalid or its memory could not be mapped.
    #[error("UMEM: {detail}")]
    Umem { detail: String },
    /// An AF_XDP socket could not be created, registered or bound.
    #[error("interface {name} queue {queue}: AF_XDP socket: {detail}")]
    Socket { name: String, queue: u32, detail: String },
    /// Zero-copy was demanded ([`crate::BindMode::ZeroCopy`]) but the driver
    /// does not offer it (veth never does).
    #[error("interface {name} queue {queue}: zero-copy AF_XDP is not supported by this driver")]
    ZeroCopyUnsupported { name: String, queue: u32 },
    /// A worker may bind at most [`crate::MAX_SOCKETS_PER_WORKER`] sockets.
    #[error("worker already has {max} sockets")]
    TooManySockets { max: usize },
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
