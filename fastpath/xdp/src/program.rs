//! Our XDP program (`bpf/esprit_xdp.c`, compiled by `build.rs`): loading it,
//! its maps, and attaching it to one interface.
//!
//! Guarantees: the program is attached only through a bpf_link (never the
//! netlink attach that would survive the process), so it is detached when
//! the [`AttachedProgram`] is dropped or the process dies. Each attached
//! interface gets its own loaded instance, hence its own `xsks` map indexed
//! by rx queue and its own verdict counters.

use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};

use aya::maps::{HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::Xdp;
use aya::Ebpf;

use crate::error::{Error, Result};
use crate::sys;
use crate::verdict::{Verdict, VerdictCounts};

/// The compiled object, embedded at build time (8-byte aligned: the ELF
/// parser wants it).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/esprit_xdp.o"));

const PROGRAM_NAME: &str = "esprit_xdp";

/// Entries of the `xsks` and `no_socket` maps: rx queues a port may have.
pub(crate) const MAX_QUEUES: u32 = 64;

/// `XDP_FLAGS_SKB_MODE` / `XDP_FLAGS_DRV_MODE` from `<linux/if_link.h>`.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Generic XDP, after the kernel built an skb. Works everywhere; on veth
    /// every frame reports rx queue 0.
    Skb,
    /// Native XDP in the driver (veth supports it; real queues are used).
    Driver,
}

impl AttachMode {
    fn flags(self) -> u32 {
        match self {
            AttachMode::Skb => XDP_FLAGS_SKB_MODE,
            AttachMode::Driver => XDP_FLAGS_DRV_MODE,
        }
    }

    /// `skb` or `driver`, for messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            AttachMode::Skb => "skb",
            AttachMode::Driver => "driver",
        }
    }
}

/// One loaded instance of the program, attached to one interface.
pub(crate) struct AttachedProgram {
    // Field order is drop order: the link goes first, detaching the program.
    link: OwnedFd,
    xsks: XskMap<MapData>,
    local_v4: HashMap<MapData, u32, u8>,
    local_v6: HashMap<MapData, [u8; 16], u8>,
    verdicts: PerCpuArray<MapData, u64>,
    no_socket: PerCpuArray<MapData, u64>,
    _ebpf: Ebpf,
    name: String,
}

impl std::fmt::Debug for AttachedProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachedProgram").field("name", &self.name).field("link", &self.link).finish()
    }
}

impl AttachedProgram {
    /// Loads a fresh instance and attaches it to `ifindex` (`name` is for
    /// messages).
    pub(crate) fn load_and_attach(name: &str, ifindex: u32, mode: AttachMode) -> Result<Self> {
        let load_err = |detail: String| Error::Load { detail };
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| load_err(format!("{e}")))?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| load_err(format!("no program `{PROGRAM_NAME}` in the object")))?
            .try_into()
            .map_err(|e| load_err(format!("{e}")))?;
        prog.load().map_err(|e| load_err(format!("verifier: {e:?}")))?;
        let prog_fd = prog.fd().map_err(|e| load_err(format!("{e}")))?;

        let link =
            sys::bpf_link_create_xdp(prog_fd.as_fd(), ifindex, mode.flags()).map_err(
                |source| match source.raw_os_error() {
                    Some(libc::EBUSY) | Some(libc::EEXIST) => Error::PortBusy { name: name.to_owned() },
                    _ => Error::Attach { name: name.to_owned(), mode: mode.as_str(), source },
                },
            )?;

        let map_err = |map: &'static str, detail: String| Error::Map { name: name.to_owned(), map, detail };
        let mut take = |map: &'static str| {
            ebpf.take_map(map).ok_or_else(|| map_err(map, "missing from the object".into()))
        };
        let xsks = XskMap::try_from(take("xsks")?).map_err(|e| map_err("xsks", e.to_string()))?;
        let local_v4 =
            HashMap::try_from(take("local_v4")?).map_err(|e| map_err("local_v4", e.to_string()))?;
        let local_v6 =
            HashMap::try_from(take("local_v6")?).map_err(|e| map_err("local_v6", e.to_string()))?;
        let verdicts =
            PerCpuArray::try_from(take("verdicts")?).map_err(|e| map_err("verdicts", e.to_string()))?;

        let no_socket =
            PerCpuArray::try_from(take("no_socket")?).map_err(|e| map_err("no_socket", e.to_string()))?;

        Ok(Self { link, xsks, local_v4, local_v6, verdicts, no_socket, _ebpf: ebpf, name: name.to_owned() })
    }

    fn map_err(&self, map: &'static str, e: impl std::fmt::Display) -> Error {
        Error::Map { name: self.name.clone(), map, detail: e.to_string() }
    }

    /// Puts an AF_XDP socket at `queue` in `xsks`.
    pub(crate) fn set_socket(&mut self, queue: u32, fd: std::os::fd::RawFd) -> Result<()> {
        self.xsks.set(queue, fd, 0).map_err(|e| self.map_err("xsks", e))
    }

    /// Adds one of the gateway's own addresses.
    pub(crate) fn add_local(&mut self, addr: IpAddr) -> Result<()> {
        match addr {
            IpAddr::V4(a) => {
                let key = u32::from_ne_bytes(a.octets());
                self.local_v4.insert(key, 1u8, 0).map_err(|e| self.map_err("local_v4", e))
            }
            IpAddr::V6(a) => {
                self.local_v6.insert(a.octets(), 1u8, 0).map_err(|e| self.map_err("local_v6", e))
            }
        }
    }

    /// Removes one of the gateway's addresses (absent is not an error).
    pub(crate) fn remove_local(&mut self, addr: IpAddr) -> Result<()> {
        let r = match addr {
            IpAddr::V4(a) => self.local_v4.remove(&u32::from_ne_bytes(a.octets())),
            IpAddr::V6(a) => self.local_v6.remove(&a.octets()),
        };
        match r {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(self.map_err("local", e)),
        }
    }

    /// Frames dropped because their rx queue had no socket: (queue,
    /// frames) summed over CPUs, non-zero only.
    pub(crate) fn no_socket_drops(&self) -> Result<Vec<(u32, u64)>> {
        let mut out = Vec::new();
        for q in 0..MAX_QUEUES {
            let per_cpu = self.no_socket.get(&q, 0).map_err(|e| self.map_err("no_socket", e))?;
            let n: u64 = per_cpu.iter().sum();
            if n != 0 {
                out.push((q, n));
            }
        }
        Ok(out)
    }

    /// The verdict counters, summed over CPUs.
    pub(crate) fn verdicts(&self) -> Result<VerdictCounts> {
        let mut out = VerdictCounts::default();
        for v in Verdict::ALL {
            let per_cpu = self.verdicts.get(&(v as u32), 0).map_err(|e| self.map_err("verdicts", e))?;
            out.0[v as usize] = per_cpu.iter().sum();
        }
        Ok(out)
    }
}
