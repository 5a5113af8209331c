//! The core of controld: what it knows and decides, with no sockets, no
//! threads and no clock of its own (time is passed in). Nothing here
//! renders (`show`, `metrics`) or does I/O (`io`).
//!
//! * [`translate`]: the configuration into what fastpathd must hold (pure);
//! * [`plan`]: the difference between two such states as control requests
//!   (pure), so a change touches only what it changes;
//! * [`sa`]: the SA manager, the single source of truth about SAs
//!   (fingerprints, sequence numbers across restarts, `get sa`);
//! * [`spi`]: inbound SPI allocation without collisions;
//! * [`ids`]: VPN HEX IDs and the proxy-IDs' tunnel IDs, stable across
//!   restarts;
//! * [`idle`]: `idletime`, pairs deleted for want of traffic;
//! * [`state`]: what survives a restart of controld (`--state-dir`);
//! * [`ingest`]: the main loop's bounded queues (IKE, operator, fastpathd);
//! * [`events`]: the event log of `get event` and the system log;
//! * [`monitor`]: the VPN monitor (probes through the tunnels);
//! * [`negotiated`]: the SAs IKE negotiated, by id and by proxy-ID;
//! * [`controller`]: what ties them together and runs operator commands;
//! * [`port`]: fastpathd as requests out and replies in, with what each
//!   request was for kept as data (synchronisations, counters, probes,
//!   commands answered late);
//! * [`engine`]: the [`engine::Core`], the controller and IKE driven by
//!   events, datagrams, fastpathd's replies and the time, answering with
//!   outputs (fastpathd requests among them) and a deadline (what the
//!   daemon's loop carries out).

pub mod controller;
pub mod engine;
pub mod events;
pub mod idle;
pub mod ids;
pub mod ingest;
pub mod monitor;
pub mod negotiated;
pub mod plan;
pub mod port;
pub mod sa;
pub mod spi;
pub mod state;
pub mod translate;
