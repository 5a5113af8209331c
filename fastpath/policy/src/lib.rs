//! Proxy-IDs (traffic selectors) of a route-based VPN and the batch
//! classifier that picks, for each packet routed into a tunnel interface,
//! the proxy-ID (and so the SA pair) it travels on.
//!
//! # Model
//!
//! A VPN bound to `tunnel.N` has a list of [`ProxyId`]s
//! `(local prefix, remote prefix, service)`, each with its own SA pair
//! (ScreenOS 6.3 "multiple proxy-ID support", KB16008). As SPD entries
//! they are RFC 4301 §4.4.1 selector sets; "local" is the side behind this
//! gateway. A [`ProxyIdTable`] compiles a VPN's list once, off the packet
//! path, and is immutable afterwards (rebuild and swap on change).
//!
//! # Outbound: [`ProxyIdTable::classify`]
//!
//! * `proxy-id check` on, or more than one proxy-ID: a packet gets
//!   [`Verdict::Match`] of the most specific proxy-ID covering it (source
//!   in local, destination in remote, service matching), else
//!   [`Verdict::NoMatch`], which the caller drops and counts.
//! * check off and exactly one proxy-ID: that proxy-ID only built the SA;
//!   every packet gets `Match(0)`, whatever its addresses or family.
//! * no proxy-ID: every packet gets `NoMatch` (there is no SA to use).
//!
//! The index in a `Match` is the proxy-ID's position in the list given to
//! [`ProxyIdTable::new`], stable for the table's life.
//!
//! ## Overlap rule: most specific wins
//!
//! When several proxy-IDs cover a packet, the winner is decided by, in
//! order:
//!
//! 1. the longer **remote** prefix;
//! 2. the longer **local** prefix;
//! 3. a specific **protocol** over `ANY`;
//! 4. the narrower **destination** port range (ICMP: type-code range);
//! 5. the narrower **source** port range;
//! 6. **configuration order**: the earlier proxy-ID.
//!
//! Route-based operators think in longest-prefix terms, as the route that
//! brought the packet to the tunnel did; and adding a broader proxy-ID to a
//! live VPN never steals traffic from a narrower one, wherever it is added
//! in the list. Only exact ties (same prefixes, same protocol, same range
//! widths, different ranges) depend on order. Equal proxy-IDs are refused.
//!
//! ## Cost
//!
//! Tuple-space search (module `tss`): the proxy-IDs of one family are
//! grouped by *shape*, (remote length, local length), one hash table per
//! shape keyed on the masked (remote, local) pair. Shapes are searched most
//! specific first and the search stops at the first shape holding a
//! covering proxy-ID; that early exit is valid because shape order is
//! exactly the first two keys of the overlap rule. The tables are
//! bucketized cuckoo hashes: a lookup hashes once (a folded 64×64→128-bit
//! multiply, written here; no hashing crate) and compares one cache-line
//! bucket of four entries without branches, sometimes a second bucket.
//!
//! The common VPNs (one proxy-ID, the seed's four, 10,000 `/24` pairs) have
//! one shape, so a packet costs one hash and one bucket (for a few keys of
//! a large table, two) whatever the table size; a 10,000-pair table takes
//! 229 KB (a load of 7/10). A packet that matches nothing visits every
//! shape (at most 33 × 33 for IPv4). Proxy-IDs sharing both prefixes are
//! checked in rank order, so that part is linear in how many services one
//! prefix pair has. Building is `O(n log n)`, done once per change, off the
//! packet path.
//!
//! # Inbound: [`InboundSelector`], [`ProxyIdTable::admits_inbound`]
//!
//! A packet decrypted from an SA must match that SA's proxy-ID in reverse
//! (RFC 4301 §5.2): source in remote, destination in local, the packet's
//! source port in the service's destination range and its destination port
//! in the source range. ICMP type-code is one selector and is not reversed
//! (see [`Service`]).
//!
//! # Guarantees
//!
//! * No panics on any input: parsers refuse bad text with a
//!   [`PolicyError`] naming it; classification handles every key, any
//!   burst length and mismatched `keys`/`out` lengths.
//! * No allocation, no locks, no system calls in `classify`,
//!   `classify_one`, `admits_inbound` or [`InboundSelector::admits`].
//! * The fast classifier gives the same verdict as the plain definition
//!   ([`ProxyId::matches_outbound`] + the overlap rule); a property test
//!   checks this against a brute-force model.
//! * IPv4 keys are hashed as two `u32`s; IPv6 as two `u128`s. IPv4 and IPv6
//!   proxy-IDs may share a table; a packet only meets its own family.

#![forbid(unsafe_code)]

mod error;
mod flow;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod inbound;
mod matcher;
mod prefix;
mod proxy_id;
pub mod service;
mod table;
mod tss;

pub use error::PolicyError;
pub use flow::{FlowKey, FlowKeyV4, FlowKeyV6, ProxyIdIndex, Verdict};
pub use inbound::InboundSelector;
pub use prefix::Prefix;
pub use proxy_id::ProxyId;
pub use service::{PortRange, Service};
pub use table::{ProxyIdTable, MAX_PROXY_IDS};
