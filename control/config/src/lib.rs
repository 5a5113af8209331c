//! The configuration language of esprit: ScreenOS 6.3 `set`/`unset`
//! commands, read into a typed, validated configuration.
//!
//! Layers, each usable alone:
//!
//! * [`lexer`]: a line into words (double quotes, `#` comment lines);
//! * [`parse_line`]: a line into a typed [`Command`] whose values are valid
//!   on their own;
//! * [`Config`]: the whole configuration; [`Config::apply`] (one line,
//!   atomic), [`Config::load`] (a file, forward references allowed),
//!   [`Config::to_lines`] (canonical `set` lines).
//!
//! Guarantees:
//!
//! * nothing in this crate panics on any input (lines are fuzzed through
//!   [`parse_line`] and [`Config::apply`]);
//! * a failing [`Config::apply`] leaves the configuration unchanged;
//! * every [`Config`] value reachable through the API is valid as a whole
//!   (references resolve, one AutoKey VPN per tunnel interface unless
//!   next-hop tunnel binding tells them apart, no duplicate proxy-ID, no
//!   two users with one IKE identity, only algorithms esprit implements);
//! * errors name the line, the word and what was expected, and never contain
//!   a secret; [`Secret`] never prints its value in `Debug` or `Display`;
//! * `Config::load(&c.to_lines().join("\n"))` equals `c`.
//!
//! The language is described in `REFERENCE.md` beside this crate.

pub mod config;
pub mod error;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod kept;
pub mod lexer;
pub mod model;
pub mod parse;
mod print;
pub mod proposal;
pub mod secret;

pub use config::{
    Config, CustomService, IkeGateway, Interface, InterfaceIp, Nhtb, User, UserGroup, Vpn, VpnKind,
};
pub use error::{ConfigError, ErrorKind, ParseError, Warning};
pub use model::{Command, Fragmentation, SetCommand, UnsetCommand, DEFAULT_FRAGMENT_SIZE};
pub use parse::parse_line;
pub use proposal::{P1Suite, P2Suite, ProposalChoice, SecLevel};
pub use secret::Secret;
