//! fastpathd: esprit's poll-mode fast path, as a library for its binary,
//! its tests and its fuzz target.
//!
//! It owns the ports (AF_XDP sockets and our XDP program on each), runs one
//! pinned worker thread per core polling its rings, and serves the control
//! socket through which controld (or `fpctl`) installs routes, tunnel
//! interfaces, VPN proxy-ID tables and SAs. Run it inside the network
//! namespace of its ports; it stops cleanly on SIGINT/SIGTERM (sockets
//! closed, XDP programs detached), and exits non-zero with one log line
//! when a worker thread dies or stops polling (DESIGN.md §7).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

mod control;
#[cfg(feature = "fault-injection")]
mod fault;
mod handoff;
mod host;
pub mod mgmt;
mod neigh;
mod queues;
mod readings;
mod watchdog;
mod worker;

#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz;

/// Why fastpathd stopped with an error; it decides the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The command line, the ports or the environment cannot work as given
    /// (e.g. a port with fewer rx queues than workers): exit status 2,
    /// which the systemd unit does not retry (`RestartPreventExitStatus=2`).
    Refused(String),
    /// Anything else, a dead worker included: exit status 1, restarted.
    Failed(String),
}

impl From<String> for Stop {
    fn from(s: String) -> Stop {
        Stop::Failed(s)
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Refused(m) | Stop::Failed(m) => f.write_str(m),
        }
    }
}

/// esprit's fast path: AF_XDP ports, pinned poll-mode workers, a control socket.
#[derive(Debug, Parser)]
#[command(name = "fastpathd", version)]
pub struct Args {
    /// A network interface to drive (repeat: `--port lan0 --port wan0`).
    #[arg(long = "port", required = true)]
    pub(crate) ports: Vec<String>,
    /// Worker threads (one per core).
    #[arg(long, default_value_t = 1)]
    pub(crate) workers: usize,
    /// Cores to pin the workers to, in order (default: 0, 1, ...).
    #[arg(long, value_delimiter = ',')]
    pub(crate) cores: Vec<usize>,
    /// Receive queues expected on each port. fastpathd binds every rx
    /// queue of every port (worker `i` takes queues `i`, `i + workers`,
    /// ...), so that no transit frame reaches a queue without a socket; a
    /// port whose queue count differs from this is refused, naming the
    /// `ethtool -L` command that fixes it. Default: each port's own count.
    #[arg(long)]
    pub(crate) queues: Option<u32>,
    /// Path of the control socket (mode 0600 from the moment it exists;
    /// 0660 with `--socket-group`).
    #[arg(long, default_value = "/run/esprit/fastpathd.sock")]
    pub(crate) socket: PathBuf,
    /// A group whose members may use the control socket besides root
    /// (checked on every connection with SO_PEERCRED).
    #[arg(long)]
    pub(crate) socket_group: Option<String>,
    /// A worker that makes no progress (no turn of its polling loop) for
    /// this many milliseconds takes fastpathd down, as a panicking one does.
    #[arg(long, default_value_t = 2000)]
    pub(crate) stall_timeout_ms: u64,
    /// How the XDP program attaches: native in the driver, or generic (skb).
    #[arg(long, value_enum, default_value_t = XdpMode::Driver)]
    pub(crate) xdp_mode: XdpMode,
    /// AF_XDP binding: zero-copy where the driver supports it, else copy.
    #[arg(long, value_enum, default_value_t = Bind::Auto)]
    pub(crate) bind: Bind,
    /// Never sleep when idle (dedicated cores, benchmarks). By default a
    /// worker that found nothing for a while naps for `--idle-sleep-us`.
    #[arg(long)]
    pub(crate) busy_poll: bool,
    /// Nap of an idle worker, in microseconds.
    #[arg(long, default_value_t = 50)]
    pub(crate) idle_sleep_us: u64,
    /// Frames a worker holds for proxy-IDs waiting for their SA.
    #[arg(long, default_value_t = 256)]
    pub(crate) hold_slots: usize,
    /// Entries of every AF_XDP ring (rx, tx, fill, completion) of every
    /// socket: a power of two, 64 to 16384. Larger rings ride out longer
    /// stalls of a worker (a core shared with other work, a burst at line
    /// rate) for memory: each worker's UMEM holds (sockets + 1) x this
    /// many 2 KB frames, one socket per port and queue it serves.
    #[arg(long, default_value_t = 1024)]
    pub(crate) ring_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XdpMode {
    Driver,
    Skb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Bind {
    Auto,
    Copy,
    Zerocopy,
}
