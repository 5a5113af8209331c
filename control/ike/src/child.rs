//! What a finished Quick Mode hands to the SA manager: one child SA pair.

use std::net::SocketAddr;

use esprit_policy::ProxyId;
use zeroize::Zeroizing;

use crate::config::Lifetime;
use crate::Suite;

/// Key material of one direction. `Debug` never shows the bytes.
#[derive(Clone)]
pub struct DirectionKeys {
    /// Encryption key; for GCM suites key || 4-byte salt (RFC 4106 §8.1).
    pub encryption: Zeroizing<Vec<u8>>,
    /// Integrity key (empty for GCM).
    pub integrity: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "DirectionKeys {{ encryption: <{} bytes>, integrity: <{} bytes> }}",
            self.encryption.len(),
            self.integrity.len()
        )
    }
}

/// UDP encapsulation of ESP (RFC 3948), when NAT-T is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    /// Our port (4500).
    pub local_port: u16,
    /// The peer's port (4500, or what a NAT mapped it to).
    pub remote_port: u16,
}

/// One negotiated child SA pair (inbound and outbound ESP SAs).
#[derive(Debug, Clone)]
pub struct ChildSa {
    /// The proxy-ID the SAs carry, from this gateway's side (a configured
    /// one, see `proxy`).
    pub proxy_id: ProxyId,
    /// ESP suite.
    pub suite: Suite,
    /// SPI of the inbound SA (ours).
    pub spi_in: u32,
    /// SPI of the outbound SA (the peer's).
    pub spi_out: u32,
    /// Inbound keys.
    pub keys_in: DirectionKeys,
    /// Outbound keys.
    pub keys_out: DirectionKeys,
    /// Lifetimes agreed.
    pub lifetime: Lifetime,
    /// UDP encapsulation ports, when NAT-T is in use.
    pub encap: Option<UdpEncap>,
    /// Our outer address.
    pub local: SocketAddr,
    /// The peer's outer address.
    pub remote: SocketAddr,
    /// True if we initiated the Quick Mode.
    pub initiator: bool,
    /// Quick Mode message ID (identifies the exchange in logs).
    pub message_id: u32,
    /// Whether PFS was used.
    pub pfs: bool,
    /// Extended sequence numbers agreed (RFC 4303 §2.2.1; IKEv2 only).
    pub esn: bool,
}
