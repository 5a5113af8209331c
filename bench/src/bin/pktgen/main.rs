//! pktgen: the AF_XDP traffic generator and sink of esprit's whole-system
//! benchmark (`scripts/bench-throughput.sh`).
//!
//! ```text
//! pktgen tx --port eth0 --src-mac .. --dst-mac .. --src 10.1.1.10 --dst 10.2.1.10 \
//!           --size 64|imix --seconds 3 [--count C] [--flows 16] [--dst-count N] [--rate PPS] [--latency]
//! pktgen rx --port eth0 --seconds 10 [--size 64] [--dst 10.2.1.10] [--latency] [--expect esp]
//! ```
//!
//! Each run prints one JSON line on stdout (for scripts) and one human line
//! on stderr. Sizes are Ethernet frames without FCS; Gbit/s counts those
//! bytes. Run inside the interface's network namespace, as root; our XDP
//! program is attached through a bpf_link for the run and gone after it.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use esprit_xdp::AttachMode;

mod measure;
mod rx;
mod template;
mod tx;

use measure::{gbps, if_counter, mono_ns, mpps, r3};
use template::{parse_mac, parse_sizes, Spec};

/// AF_XDP traffic generator and sink (IPv4/UDP, prebuilt frames).
#[derive(Debug, Parser)]
#[command(name = "pktgen", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Send prebuilt IPv4/UDP frames as fast as the ring takes them (or paced).
    Tx(TxArgs),
    /// Count (and check) received frames.
    Rx(RxArgs),
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Interface (in the current network namespace).
    #[arg(long)]
    port: String,
    /// Queue of the interface.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// How our XDP program attaches.
    #[arg(long, value_enum, default_value_t = Mode::Driver)]
    xdp_mode: Mode,
    /// Seconds to send; for rx, the longest run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Stamp send times / record one-way latency (HDR histogram).
    #[arg(long)]
    latency: bool,
}

#[derive(Debug, clap::Args)]
struct TxArgs {
    #[command(flatten)]
    common: Common,
    /// Source MAC (the sending interface's).
    #[arg(long, value_parser = parse_mac)]
    src_mac: [u8; 6],
    /// Destination MAC (the next hop's).
    #[arg(long, value_parser = parse_mac)]
    dst_mac: [u8; 6],
    #[arg(long)]
    src: Ipv4Addr,
    #[arg(long)]
    dst: Ipv4Addr,
    /// Ethernet frame length without FCS (62 ..= 1664), or `imix`: the
    /// 7:4:1 mix of 64, 570 and 1400 B, round-robin.
    #[arg(long, default_value = "64")]
    size: String,
    /// Flows: distinct UDP source ports from --sport, round-robin.
    #[arg(long, default_value_t = 1)]
    flows: u16,
    /// Destinations: --dst and the next N-1 addresses, round-robin (one
    /// flow per proxy-ID of a VPN with /32 proxy-IDs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    dst_count: u32,
    #[arg(long, default_value_t = 10_000)]
    sport: u16,
    #[arg(long, default_value_t = 9)]
    dport: u16,
    /// Packets per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<u64>,
    /// Stop after this many packets (or at --seconds, whichever is first).
    #[arg(long)]
    count: Option<u64>,
}

#[derive(Debug, clap::Args)]
struct RxArgs {
    #[command(flatten)]
    common: Common,
    /// Expected frame size: others count as mangled.
    #[arg(long)]
    size: Option<usize>,
    /// Expected destination address: others count as mangled.
    #[arg(long)]
    dst: Option<Ipv4Addr>,
    /// What counts as good: the generator's clear UDP, or ESP (sink behind
    /// an encrypting gateway; --size is then the ESP frame's, --dst ignored).
    #[arg(long, value_enum, default_value_t = Expect::Udp)]
    expect: Expect,
    /// Stop this many ms after the last frame, once traffic has started.
    #[arg(long, default_value_t = 1000)]
    idle_exit_ms: u64,
    /// Never nap when the ring is empty (a dedicated core).
    #[arg(long)]
    busy_poll: bool,
    /// Nap when idle, in microseconds (without --busy-poll).
    #[arg(long, default_value_t = 50)]
    idle_sleep_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Expect {
    Udp,
    Esp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Driver,
    Skb,
}

impl From<Mode> for AttachMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Driver => AttachMode::Driver,
            Mode::Skb => AttachMode::Skb,
        }
    }
}

fn duration(seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("--seconds {seconds}: not a duration"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("pktgen: signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let r = match args.cmd {
        Cmd::Tx(a) => run_tx(a, &stop),
        Cmd::Rx(a) => run_rx(a, &stop),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pktgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_tx(a: TxArgs, stop: &AtomicBool) -> Result<(), String> {
    if a.rate == Some(0) {
        return Err("--rate 0: nothing to send".into());
    }
    let sizes = parse_sizes(&a.size)?;
    let plan = tx::TxPlan {
        port: a.common.port,
        queue: a.common.queue,
        mode: a.common.xdp_mode.into(),
        spec: Spec {
            src_mac: a.src_mac,
            dst_mac: a.dst_mac,
            src: a.src,
            dst: a.dst,
            sport: a.sport,
            dport: a.dport,
            size: sizes[0],
        },
        sizes,
        duration: duration(a.common.seconds)?,
        flows: a.flows.max(1),
        dst_count: a.dst_count,
        count: a.count,
        rate: a.rate,
        latency: a.common.latency,
    };
    let rep = tx::run(&plan, stop)?;
    println!("{}", rep.json(&plan));
    eprintln!("{}", rep.human(&plan));
    Ok(())
}

fn run_rx(a: RxArgs, stop: &AtomicBool) -> Result<(), String> {
    let plan = rx::RxPlan {
        port: a.common.port,
        queue: a.common.queue,
        mode: a.common.xdp_mode.into(),
        duration: duration(a.common.seconds)?,
        idle_exit: Duration::from_millis(a.idle_exit_ms),
        size: a.size,
        dst: a.dst,
        latency: a.common.latency,
        esp: a.expect == Expect::Esp,
        busy_poll: a.busy_poll,
        idle_sleep: Duration::from_micros(a.idle_sleep_us),
    };
    let rep = rx::run(&plan, stop)?;
    println!("{}", rep.json(&plan));
    eprintln!("{}", rep.human(&plan));
    Ok(())
}
