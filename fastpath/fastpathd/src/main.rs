//! fastpathd: esprit's poll-mode fast path.
//!
//! It owns the ports (AF_XDP sockets and our XDP program on each), runs one
//! pinned worker thread per core polling its rings, and serves the control
//! socket through which controld (or `fpctl`) installs routes, tunnel
//! interfaces, VPN proxy-ID tables and SAs. Run it inside the network
//! namespace of its ports; it stops cleanly on SIGINT/SIGTERM (sockets
//! closed, XDP programs detached).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

mod control;
mod handoff;
mod host;
mod mgmt;
mod worker;

/// esprit's fast path: AF_XDP ports, pinned poll-mode workers, a control socket.
#[derive(Debug, Parser)]
#[command(name = "fastpathd", version)]
pub(crate) struct Args {
    /// A network interface to drive (repeat: `--port lan0 --port wan0`).
    #[arg(long = "port", required = true)]
    pub(crate) ports: Vec<String>,
    /// Worker threads (one per core).
    #[arg(long, default_value_t = 1)]
    pub(crate) workers: usize,
    /// Cores to pin the workers to, in order (default: 0, 1, ...).
    #[arg(long, value_delimiter = ',')]
    pub(crate) cores: Vec<usize>,
    /// Receive queues used on each port (default: one per worker); worker
    /// `i` takes queues `i`, `i + workers`, ...
    #[arg(long)]
    pub(crate) queues: Option<u32>,
    /// Path of the control socket (created with mode 0600).
    #[arg(long, default_value = "/run/esprit/fastpathd.sock")]
    pub(crate) socket: PathBuf,
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
pub(crate) enum XdpMode {
    Driver,
    Skb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Bind {
    Auto,
    Copy,
    Zerocopy,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match mgmt::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fastpathd: {e}");
            ExitCode::FAILURE
        }
    }
}
