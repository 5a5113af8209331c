//! controld: esprit's control plane daemon, and the pieces it is made of.
//!
//! * [`translate`]: the configuration into what fastpathd must hold (pure);
//! * [`plan`]: the difference between two such states as control requests
//!   (pure), so a change touches only what it changes;
//! * [`sa`]: the SA manager, the single source of truth about SAs
//!   (fingerprints, sequence numbers across restarts, `get sa`);
//! * [`spi`]: inbound SPI allocation without collisions;
//! * [`ids`]: VPN HEX IDs, stable across restarts;
//! * [`state`]: what survives a restart of controld (`--state-dir`), and
//!   `ike::persist`: the IKE state that does (`ike.json`);
//! * [`ingest`]: the main loop's bounded queues (IKE, operator, fastpathd);
//! * [`metrics`]: the optional Prometheus endpoint (`--metrics`);
//! * [`shell`]: the interactive shell of `esprit` (completion, history);
//! * [`controller`]: the core that ties them together and runs operator
//!   commands, against any [`controller::FastPath`];
//! * [`operator`]: the operator socket's line protocol;
//! * [`events`]: the event log of `get event` and the system log;
//! * [`monitor`]: the VPN monitor (probes through the tunnels, sans-IO);
//! * [`daemon`]: the thin I/O shell (sockets, threads, clock, signals).
//!
//! Guarantees: a restart of controld re-installs nothing that fastpathd
//! already holds as configured; a restart of fastpathd is re-programmed
//! without the operator; a configuration change sends only the requests
//! that change something, so SAs it does not touch keep forwarding.

#![forbid(unsafe_code)]

pub mod controller;
pub mod daemon;
pub mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod ids;
pub mod ike;
#[doc(hidden)]
pub mod ike_fuzz;
pub mod ike_io;
pub mod ingest;
pub mod metrics;
pub mod monitor;
pub mod operator;
pub mod plan;
pub mod sa;
pub mod shell;
pub mod spi;
pub mod state;
pub mod translate;

#[cfg(test)]
mod tests;
