//! The system calls esprit makes itself (the rest go through `xdp` and `aya`).
//!
//! Guarantees: every function here checks the kernel's return value and turns
//! it into an `io::Error`; no pointer handed to the kernel outlives the call,
//! except the two read-only ring-flag mappings, which [`RingFlags`] owns and
//! unmaps on drop. This is one of the two modules allowed to use `unsafe`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// `BPF_LINK_CREATE` from `<linux/bpf.h>`.
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_XDP` attach type from `<linux/bpf.h>`.
const BPF_XDP: u32 = 37;

/// The interface index of `name` in the calling thread's network namespace.
pub(crate) fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string that lives across the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// The `link_create` member of `union bpf_attr` (the fields XDP uses).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    // The kernel requires the unused tail of `bpf_attr` to be zero; this
    // covers the rest of the `link_create` member.
    _pad: [u64; 8],
}

/// Attaches an XDP program to `ifindex` through a bpf_link and returns the
/// link: closing it (dropping the `OwnedFd`, or the process dying) detaches
/// the program. Never falls back to netlink attachment, which would outlive
/// the process.
pub(crate) fn bpf_link_create_xdp(prog: BorrowedFd<'_>, ifindex: u32, xdp_flags: u32) -> io::Result<OwnedFd> {
    let attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: xdp_flags,
        ..Default::default()
    };
    // SAFETY: `attr` is a properly laid out, zero-padded prefix of
    // `union bpf_attr` that lives across the call; its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            &attr as *const LinkCreateAttr,
            std::mem::size_of::<LinkCreateAttr>() as u32,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

fn getsockopt_xdp<T>(fd: RawFd, opt: libc::c_int, out: &mut T) -> io::Result<()> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `out` is a valid, writable `T` and `len` holds its size; the
    // kernel writes at most `len` bytes.
    let ret = unsafe { libc::getsockopt(fd, libc::SOL_XDP, opt, (out as *mut T).cast(), &mut len) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True when the socket is bound in zero-copy mode (`XDP_OPTIONS`).
pub(crate) fn xdp_is_zerocopy(fd: RawFd) -> io::Result<bool> {
    let mut opts = libc::xdp_options { flags: 0 };
    getsockopt_xdp(fd, libc::XDP_OPTIONS, &mut opts)?;
    Ok(opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// Outcome of a ring kick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    /// The kernel took what was there.
    Done,
    /// The kernel stopped at its per-call budget, or was busy: kick again.
    Again,
}

fn kick_result(ret: isize) -> io::Result<Kick> {
    if ret >= 0 {
        return Ok(Kick::Done);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) => Ok(Kick::Again),
        Some(libc::EINTR) => Ok(Kick::Again),
        _ => Err(err),
    }
}

/// Tells the kernel to process the tx ring (copy mode transmits in here).
pub(crate) fn kick_tx(fd: RawFd) -> io::Result<Kick> {
    // SAFETY: a zero-length send with null buffers is the documented AF_XDP
    // tx wakeup; the kernel reads no memory from us.
    let ret = unsafe { libc::sendto(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    kick_result(ret)
}

/// Tells the kernel that the fill ring has new frames (needed when the
/// driver set `XDP_RING_NEED_WAKEUP` on it).
pub(crate) fn kick_rx(fd: RawFd) -> io::Result<Kick> {
    // SAFETY: a zero-length recv with null buffers is the documented AF_XDP
    // rx wakeup; the kernel writes no memory of ours.
    let ret = unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    kick_result(ret)
}

/// A read-only view of one ring's `flags` word, mapped a second time beside
/// the `xdp` crate's own mapping (which does not expose it), so that the
/// `XDP_RING_NEED_WAKEUP` bit can be honoured: a kick only when the kernel
/// asks for one.
#[derive(Debug)]
pub(crate) struct RingFlags {
    base: *mut libc::c_void,
    len: usize,
    flags_offset: usize,
}

// SAFETY: the mapping is owned by this value and only read atomically.
unsafe impl Send for RingFlags {}

/// Which ring of a socket a [`RingFlags`] watches.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RingKind {
    Fill,
    Tx,
}

impl RingFlags {
    pub(crate) fn map(fd: BorrowedFd<'_>, kind: RingKind) -> io::Result<Self> {
        let raw = fd.as_raw_fd();
        // SAFETY: xdp_mmap_offsets is plain old data; all-zero is valid.
        let mut offsets: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        getsockopt_xdp(raw, libc::XDP_MMAP_OFFSETS, &mut offsets)?;
        let (ring, pgoff) = match kind {
            RingKind::Fill => (&offsets.fr, libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t),
            RingKind::Tx => (&offsets.tx, libc::XDP_PGOFF_TX_RING),
        };
        let flags_offset = ring.flags as usize;
        let len = flags_offset + std::mem::size_of::<u32>();
        // SAFETY: mapping a ring of a bound AF_XDP socket at its documented
        // page offset, read-only and shared; the result is checked below.
        let base =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, raw, pgoff) };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { base, len, flags_offset })
    }

    /// True when the kernel asks for a kick before it looks at this ring.
    #[inline]
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: `flags_offset + 4 <= len` lies inside the live mapping; the
        // kernel reports it 4-byte aligned and updates it concurrently, hence
        // the atomic load.
        let flags = unsafe {
            let p = self.base.cast::<u8>().add(self.flags_offset).cast::<AtomicU32>();
            (*p).load(Ordering::Acquire)
        };
        flags & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

impl Drop for RingFlags {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` describe a mapping this value created and
        // nothing else unmaps.
        unsafe {
            libc::munmap(self.base, self.len);
        }
    }
}
