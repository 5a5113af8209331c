//! controld: esprit's control plane daemon, and the pieces it is made of.
//!
//! The module tree is the file tree:
//!
//! * [`core`]: configuration, plan, SA manager, SPIs, HEX IDs, state file,
//!   queues, events and the VPN monitor, tied together by
//!   [`core::controller`], and with IKE by [`core::engine::Core`], the
//!   sans-IO core the daemon drives (no I/O, time passed in);
//! * [`ike`]: IKE (manager, persistence, views, UDP sockets);
//! * [`status`]: the seed's UP/READY/DOWN rules and route withdrawal;
//! * [`show`]: what `get` and `clear` print (renders only);
//! * [`metrics`]: the optional Prometheus endpoint (`--metrics`);
//! * [`journal`]: the framing of the state directory's journals;
//! * [`io`]: the thin I/O shell (sockets, queues, files and the clock
//!   around the core; operator socket);
//! * [`shell`]: the interactive shell of `esprit` (completion, history).
//!
//! Guarantees: a restart of controld re-installs nothing that fastpathd
//! already holds as configured; a restart of fastpathd is re-programmed
//! without the operator; a configuration change sends only the requests
//! that change something, so SAs it does not touch keep forwarding.

#![forbid(unsafe_code)]

pub mod core;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod ike;
#[cfg(feature = "fuzzing")]
pub mod ike_fuzz;
pub mod io;
pub mod journal;
pub mod metrics;
pub mod shell;
pub mod show;
pub mod status;

#[cfg(test)]
mod tests;
