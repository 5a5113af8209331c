//! What the operator configures for one IKE gateway (ScreenOS `set ike
//! gateway` + `set vpn ... proxy-id`), in protocol terms.

use std::net::SocketAddr;
use std::time::Duration;

use esprit_policy::ProxyId;
use zeroize::Zeroizing;

use crate::crypto::{EncryptionAlg, HashAlg};
use crate::{DhGroup, Suite};

/// A phase-1 proposal: cipher, hash (and its HMAC as PRF), DH group.
/// Authentication is always pre-shared key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeProposal {
    /// AES-CBC key size.
    pub cipher: EncryptionAlg,
    /// Hash / PRF.
    pub hash: HashAlg,
    /// DH group.
    pub group: DhGroup,
}

impl IkeProposal {
    /// strongSwan-style name, `aes128-sha1-modp2048`.
    pub fn name(&self) -> String {
        let c = match self.cipher {
            EncryptionAlg::Aes128Cbc => "aes128",
            EncryptionAlg::Aes256Cbc => "aes256",
        };
        let h = match self.hash {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
        };
        format!("{c}-{h}-{}", group_name(self.group))
    }
}

/// strongSwan name of a DH group.
pub fn group_name(g: DhGroup) -> &'static str {
    g.name()
}

/// SA lifetimes; 0 = not limited by that measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Seconds.
    pub seconds: u32,
    /// Kilobytes.
    pub kilobytes: u32,
}

impl Lifetime {
    /// The lower of two lifetimes, measure by measure (0 = unlimited).
    pub fn min(self, other: Lifetime) -> Lifetime {
        fn m(a: u32, b: u32) -> u32 {
            match (a, b) {
                (0, x) | (x, 0) => x,
                (a, b) => a.min(b),
            }
        }
        Lifetime { seconds: m(self.seconds, other.seconds), kilobytes: m(self.kilobytes, other.kilobytes) }
    }
}

/// A phase-1 identity (RFC 2407 §4.6.2.1): esprit-suite's, shared with
/// the configuration and IKEv2.
pub use esprit_suite::Identity;

/// Retransmission policy (strongSwan's defaults are 4 s x 1.8^n, 5 tries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    /// Delay before the first retransmission.
    pub initial: Duration,
    /// Retransmissions before giving up; the delay doubles each time.
    pub tries: u32,
}

impl Default for Retransmit {
    fn default() -> Retransmit {
        Retransmit { initial: Duration::from_secs(2), tries: 5 }
    }
}

/// NAT-keepalive interval of [`PeerConfig::new`], seconds (RFC 3948 §4
/// suggests 20).
pub const DEFAULT_NAT_KEEPALIVE_SECS: u64 = 20;

/// One IKE gateway.
#[derive(Clone)]
pub struct PeerConfig {
    /// Name (the ScreenOS gateway name), used in errors and events.
    pub name: String,
    /// Our address (port 500).
    pub local: SocketAddr,
    /// The peer's address (port 500).
    pub remote: SocketAddr,
    /// Pre-shared key.
    pub psk: Zeroizing<Vec<u8>>,
    /// Our phase-1 identity.
    pub local_id: Identity,
    /// The identity the peer must present (None: any).
    pub remote_id: Option<Identity>,
    /// Use Aggressive Mode (dialup peers) instead of Main Mode as initiator.
    pub aggressive: bool,
    /// Phase-1 proposals, in preference order.
    pub ike_proposals: Vec<IkeProposal>,
    /// Phase-1 lifetime in seconds.
    pub ike_lifetime: u32,
    /// Phase-2 suites, in preference order.
    pub esp_suites: Vec<Suite>,
    /// PFS group for Quick Mode (None: no PFS).
    pub pfs: Option<DhGroup>,
    /// Phase-2 lifetime we propose / the most we accept.
    pub child_lifetime: Lifetime,
    /// Extended sequence numbers for the child SAs (RFC 4303 §2.2.1):
    /// IKEv2 offers and requires them (transform type 5, RFC 7296
    /// §3.3.2); IKEv1 here does not negotiate them (RFC 4304).
    pub esn: bool,
    /// Configured proxy-IDs: a responder accepts these (or narrower).
    pub proxy_ids: Vec<ProxyId>,
    /// Speak NAT traversal (RFC 3947): send its vendor ID and NAT-D
    /// payloads, and float to port 4500 when a NAT is seen. Without it the
    /// peer's NAT-T vendor ID is ignored, so neither side floats and ESP
    /// is never encapsulated in UDP.
    pub nat_traversal: bool,
    /// Send a fake NAT-D so that the peer sees a NAT and both sides use
    /// UDP encapsulation (strongSwan's `encap = yes`). Implies
    /// `nat_traversal`.
    pub force_encap: bool,
    /// Interval of NAT-keepalives (RFC 3948 §2.3), sent while we are
    /// behind a NAT (our NAT-D did not match, RFC 3947 §3.2) and an ISAKMP
    /// SA or a child SA with the peer exists. None or zero: never.
    pub nat_keepalive: Option<Duration>,
    /// Send DPD R-U-THERE after this much idle time (None: never).
    pub dpd_delay: Option<std::time::Duration>,
    /// R-U-THERE probes sent, `dpd_delay` apart, before the peer is
    /// declared dead (ScreenOS `dpd-liveness retry`).
    pub dpd_retries: u32,
    /// Send INITIAL-CONTACT in MM5 / AM3.
    pub initial_contact: bool,
    /// Retransmission policy.
    pub retransmit: Retransmit,
    /// Quick Modes we run at once as initiator; the others wait. strongSwan
    /// runs one exchange at a time per IKE SA and tracks only a few IVs:
    /// four concurrent Quick Modes make it lose the IV of the first ones.
    pub max_quick_modes: usize,
    /// Send esprit's vendor ID in phase 1 (the default): a peer that sends
    /// it back runs many Quick Modes at once with us, and installs its
    /// inbound SAs before its QM2 leaves. Off, we look like any other
    /// implementation to the peer (strongSwan's `send_vendor_id = no`).
    pub announce_esprit: bool,
    /// A peer with a dynamic address (ScreenOS `dynamic ID`): `remote` is
    /// unknown until the peer opens an Aggressive Mode whose identity is
    /// `remote_id` (which must be set); from then on it is the address
    /// that message came from. Main Mode cannot serve such a peer with a
    /// pre-shared key: the key would have to be chosen before the peer's
    /// identity is known (RFC 2409 §5.4).
    pub dynamic: bool,
    /// What strangers can make the responder hold (the half-open bounds).
    pub half_open: crate::HalfOpenLimits,
    /// IKEv2 only: fragmentation (RFC 7383) with IP datagrams of this
    /// many bytes, or `None` for none (see
    /// [`crate::v2::session::SessionConfig::fragment_size`]).
    pub fragment_size: Option<u16>,
}

impl core::fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PeerConfig")
            .field("name", &self.name)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("psk", &"<hidden>")
            .field("ike_proposals", &self.ike_proposals)
            .field("esp_suites", &self.esp_suites)
            .field("pfs", &self.pfs)
            .field("proxy_ids", &self.proxy_ids)
            .field("nat_traversal", &self.nat_traversal)
            .field("nat_keepalive", &self.nat_keepalive)
            .finish_non_exhaustive()
    }
}

impl PeerConfig {
    /// Whether NAT traversal is spoken (configured, or forced).
    pub fn speaks_nat_traversal(&self) -> bool {
        self.nat_traversal || self.force_encap
    }

    /// A configuration with esprit's defaults: Main Mode,
    /// aes128-sha1-modp2048 and aes256-sha256-modp2048, ESP aes128gcm16
    /// then aes128-sha1, no PFS, 28800 s / 3600 s lifetimes, the local
    /// address as identity, INITIAL-CONTACT sent, NAT traversal spoken
    /// with a NAT-keepalive every 20 s (RFC 3948 §4's suggested default),
    /// IKEv2 fragments of 1280-byte datagrams.
    pub fn new(name: &str, local: SocketAddr, remote: SocketAddr, psk: &[u8]) -> PeerConfig {
        PeerConfig {
            name: name.to_owned(),
            local,
            remote,
            psk: Zeroizing::new(psk.to_vec()),
            local_id: Identity::Address(local.ip()),
            remote_id: None,
            aggressive: false,
            ike_proposals: vec![
                IkeProposal {
                    cipher: EncryptionAlg::Aes128Cbc,
                    hash: HashAlg::Sha1,
                    group: DhGroup::Modp2048,
                },
                IkeProposal {
                    cipher: EncryptionAlg::Aes256Cbc,
                    hash: HashAlg::Sha256,
                    group: DhGroup::Modp2048,
                },
            ],
            ike_lifetime: 28800,
            esp_suites: vec![Suite::Aes128Gcm16, Suite::Aes128CbcSha1],
            pfs: None,
            child_lifetime: Lifetime { seconds: 3600, kilobytes: 0 },
            esn: false,
            proxy_ids: Vec::new(),
            nat_traversal: true,
            force_encap: false,
            nat_keepalive: Some(Duration::from_secs(DEFAULT_NAT_KEEPALIVE_SECS)),
            dpd_delay: None,
            dpd_retries: 5,
            initial_contact: true,
            retransmit: Retransmit::default(),
            max_quick_modes: 1,
            announce_esprit: true,
            dynamic: false,
            half_open: crate::HalfOpenLimits::default(),
            fragment_size: Some(crate::v2::frag::FRAGMENT_SIZE_DEFAULT),
        }
    }
}
