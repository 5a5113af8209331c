//! The typed command model: what one `set` or `unset` line means, before it
//! meets the rest of the configuration.
//!
//! Values in a command are already checked on their own (a [`Prefix`] is a
//! valid canonical prefix, a [`Cipher`] is one esprit implements, a manual
//! key has the right length); whether the objects they name exist is the
//! business of [`crate::Config`].

use core::fmt;
use std::net::IpAddr;

use esprit_policy::{Prefix, Service};

use crate::error::ParseError;
use crate::proposal::{Cipher, Hash, P1Proposal, P2Proposal, ProposalChoice};
use crate::secret::Secret;

/// One configuration line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A `set` line.
    Set(SetCommand),
    /// An `unset` line.
    Unset(UnsetCommand),
    /// A ScreenOS line kept without being enforced (zones, addresses,
    /// policies), or accepted and dropped ([`crate::kept`]).
    Kept(crate::kept::KeptLine),
}

/// An interface name, lowercased (`ethernet0/2`, `tunnel.1`). Interface
/// names are case-insensitive, as in ScreenOS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceName(String);

/// Longest interface name accepted.
pub const MAX_INTERFACE_NAME: usize = 32;

/// The name of the null interface.
pub const NULL_INTERFACE: &str = "null";

impl InterfaceName {
    /// Checks and lowercases a name: 1 to 32 characters of `a-z 0-9 . / : _ -`;
    /// a `tunnel.` name must be `tunnel.N` with N from 1 to 9999, no leading
    /// zero.
    pub fn new(name: &str) -> Result<InterfaceName, ParseError> {
        let bad = |reason: &str| ParseError::BadValue {
            what: "interface name",
            word: name.into(),
            reason: reason.into(),
        };
        let lower = name.to_ascii_lowercase();
        if lower.is_empty() || lower.len() > MAX_INTERFACE_NAME {
            return Err(bad("expected 1 to 32 characters"));
        }
        if !lower.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b':' | b'_' | b'-'))
        {
            return Err(bad("expected letters, digits and . / : _ -"));
        }
        if let Some(n) = lower.strip_prefix("tunnel.") {
            let ok =
                !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0');
            if !ok {
                return Err(bad("a tunnel interface is tunnel.N with N from 1 to 9999"));
            }
        }
        Ok(InterfaceName(lower))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `null`, the blackhole a route may point at (ScreenOS's
    /// `set route ... interface null`); no `set interface` line defines it.
    pub fn is_null(&self) -> bool {
        self.0 == NULL_INTERFACE
    }

    /// True for `tunnel.N`.
    pub fn is_tunnel(&self) -> bool {
        self.0.starts_with("tunnel.")
    }

    /// N of `tunnel.N`.
    pub fn tunnel_number(&self) -> Option<u32> {
        self.0.strip_prefix("tunnel.").and_then(|n| n.parse().ok())
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An interface address with its subnet length (`198.51.100.1/24`); host
/// bits are allowed, unlike a [`Prefix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterfaceAddress {
    /// The address of the interface.
    pub addr: IpAddr,
    /// The subnet length.
    pub len: u8,
}

impl InterfaceAddress {
    /// The connected subnet.
    pub fn subnet(&self) -> Option<Prefix> {
        Prefix::new_masked(self.addr, self.len).ok()
    }
}

impl fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An IKE identity (`local-id`, `peer-id`, `dynamic`, a user's `ike-id`):
/// esprit-suite's, shared with IKE.
pub use esprit_suite::Identity;

/// How the peer of an IKE gateway is found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GatewayPeer {
    /// `address A`: a static peer.
    Address(IpAddr),
    /// `dialup NAME`: a dialup IKE user (`set user`) or user group
    /// (`set user-group`).
    Dialup(String),
    /// `dynamic ID`: a peer with a dynamic address known by its IKE ID.
    Dynamic(Identity),
}

/// IKEv1 phase-1 mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IkeMode {
    /// `Main` (the default).
    #[default]
    Main,
    /// `Aggr`.
    Aggressive,
}

impl IkeMode {
    /// ScreenOS word.
    pub const fn word(self) -> &'static str {
        match self {
            IkeMode::Main => "Main",
            IkeMode::Aggressive => "Aggr",
        }
    }
}

/// The IKE version of a gateway: `set ike gateway NAME ...` is IKEv1,
/// `set ike gateway ikev2 NAME ...` IKEv2 (RFC 7296), as in ScreenOS 6.1
/// and later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IkeVersion {
    /// IKEv1 (RFC 2409), the default.
    #[default]
    V1,
    /// IKEv2 (RFC 7296).
    V2,
}

impl IkeVersion {
    /// How the operator reads it (`get ike gateway`, errors).
    pub const fn name(self) -> &'static str {
        match self {
            IkeVersion::V1 => "IKEv1",
            IkeVersion::V2 => "IKEv2",
        }
    }
}

/// `set interface NAME ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceSetting {
    /// `zone ZONE`.
    Zone(String),
    /// `ip A/L`.
    Ip(InterfaceAddress),
    /// `ip unnumbered interface IF` (tunnel interfaces only).
    Unnumbered(InterfaceName),
    /// `mtu N`.
    Mtu(u16),
    /// `port NETDEV` (esprit): the Linux network device of this port.
    Port(String),
    /// `manage ...`: accepted and ignored with a warning.
    Manage(Vec<String>),
    /// `nhtb A vpn NAME` (tunnel interfaces only): next-hop tunnel binding,
    /// the VPN that carries what routes send to next hop A.
    Nhtb {
        /// The next hop: the peer's tunnel address, as routes name it.
        next_hop: IpAddr,
        /// The VPN.
        vpn: String,
    },
}

/// A static route: `set route P interface IF [gateway A] [metric N]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination.
    pub prefix: Prefix,
    /// Outgoing interface (a tunnel interface for VPN traffic).
    pub interface: InterfaceName,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Preference (lower wins); 1 when not given, as in ScreenOS.
    pub metric: u32,
}

/// Default route metric.
pub const DEFAULT_METRIC: u32 = 1;

/// NAT traversal settings of a gateway (RFC 3947, RFC 3948).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatTraversal {
    /// `udp-checksum`: compute UDP checksums on ESP-in-UDP.
    pub udp_checksum: bool,
    /// `keepalive-frequency N`, seconds (RFC 3948 §4); 0 = none.
    pub keepalive_secs: u16,
}

/// Default NAT-T keepalive interval (ScreenOS default), seconds.
pub const DEFAULT_NAT_KEEPALIVE_SECS: u16 = 5;

/// Dead peer detection settings (RFC 3706).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dpd {
    /// `interval N`, seconds; 0 = off.
    pub interval_secs: u16,
    /// `retry N`: unanswered probes before the peer is declared dead.
    pub retry: u16,
}

/// Default DPD retry count (ScreenOS default).
pub const DEFAULT_DPD_RETRY: u16 = 5;

/// One setting of a `set ike gateway NAME ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewaySetting {
    /// `ikev2` before the name: the gateway speaks IKEv2 (first of the
    /// line's settings when given).
    Version(IkeVersion),
    /// `address A`, `dialup NAME`, `dynamic ID`.
    Peer(GatewayPeer),
    /// `Main` / `Aggr`.
    Mode(IkeMode),
    /// `outgoing-interface IF`.
    OutgoingInterface(InterfaceName),
    /// `preshare "KEY"`.
    Preshare(Secret),
    /// `sec-level WORD` / `proposal NAME...`.
    Proposals(ProposalChoice),
    /// `nat-traversal [udp-checksum] [keepalive-frequency N]`.
    NatTraversal {
        /// `udp-checksum` was given.
        udp_checksum: bool,
        /// `keepalive-frequency N` if given.
        keepalive_secs: Option<u16>,
    },
    /// `dpd-liveness [interval N] [retry N]`.
    Dpd {
        /// `interval N` if given.
        interval_secs: Option<u16>,
        /// `retry N` if given.
        retry: Option<u16>,
    },
    /// `local-id ID`.
    LocalId(Identity),
    /// `peer-id ID`.
    PeerId(Identity),
    /// `cert my-cert NAME`: our certificate and key (`set pki local-cert`).
    MyCert(String),
    /// `cert peer-ca NAME`: the CA the peer's certificate must chain to
    /// (`set pki ca-cert`).
    PeerCa(String),
    /// `fragmentation size N` / `fragmentation disable` (IKEv2, RFC
    /// 7383; Junos's words): the IP datagram size IKE messages are cut
    /// to, or no fragmentation.
    Fragmentation(Fragmentation),
}

/// IKEv2 fragmentation of a gateway (RFC 7383).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragmentation {
    /// Announced; messages cut to IP datagrams of this many bytes.
    Size(u16),
    /// Not announced; the peer's fragments are dropped.
    Disabled,
}

/// The default IKEv2 fragment size: 1280 bytes of IP datagram, IPv6's
/// minimum MTU, for IPv4 too (strongSwan's `fragment_size`).
pub const DEFAULT_FRAGMENT_SIZE: u16 = 1280;
/// The bounds of `fragmentation size N` (RFC 7383 §2.5.1's IPv4 floor
/// of 576; at most a 16,000-byte datagram, as Junos).
pub const FRAGMENT_SIZE_RANGE: (u32, u32) = (576, 16000);

/// `set pki ...`: esprit's words for what ScreenOS keeps in its PKI store
/// (loaded there with `exec pki`), as files controld reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiSetting {
    /// `local-cert NAME certificate FILE key FILE`: a PEM certificate
    /// (the end-entity one first, then intermediates to send) and its
    /// PKCS#8 PEM private key.
    LocalCert {
        /// Its name.
        name: String,
        /// The certificate file.
        certificate: String,
        /// The key file.
        key: String,
    },
    /// `ca-cert NAME file FILE`: a trusted CA certificate (PEM).
    CaCert {
        /// Its name.
        name: String,
        /// The file.
        file: String,
    },
}

/// `set vpn NAME gateway GW ...`: an AutoKey IKE VPN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AutoKey {
    /// The IKE gateway.
    pub gateway: String,
    /// Anti-replay (RFC 4303 §3.4.3); on unless `no-replay`.
    pub replay: bool,
    /// `replay window N`: the inbound window in packets while `replay` is
    /// on ([`DEFAULT_AUTOKEY_REPLAY_WINDOW`] when not given).
    pub replay_window: u32,
    /// `esn` (esprit): 64-bit extended sequence numbers (RFC 4303
    /// §2.2.1), offered and required by IKEv2 (RFC 7296 §3.3.2).
    pub esn: bool,
    /// `idletime N`, minutes without traffic before the SAs are deleted; 0 = never.
    pub idletime_mins: u32,
    /// Phase-2 proposals.
    pub proposals: ProposalChoice,
}

/// `set vpn NAME manual ...`: a manual-key VPN (lab and benchmark use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualKey {
    /// SPI of the inbound SA (the peer sends with it), the first SPI.
    pub local_spi: u32,
    /// SPI of the outbound SA (we send with it), the second SPI.
    pub remote_spi: u32,
    /// The peer's address.
    pub gateway: IpAddr,
    /// Interface whose address is our end of the tunnel.
    pub outgoing_interface: InterfaceName,
    /// Cipher.
    pub cipher: Cipher,
    /// Encryption key (lowercase hex), for GCM followed by the 4-byte salt.
    pub encryption_key: Secret,
    /// HMAC and its key (lowercase hex); `None` for GCM.
    pub auth: Option<(Hash, Secret)>,
    /// Anti-replay (RFC 4303 §3.4.3); on unless `no-replay`.
    pub replay: bool,
    /// `replay window N`: the inbound window in packets while `replay` is
    /// on ([`DEFAULT_MANUAL_REPLAY_WINDOW`] when not given).
    pub replay_window: u32,
    /// `esn`: 64-bit extended sequence numbers (RFC 4303 §2.2.1). IKE
    /// negotiates it; with manual keys both ends must be configured alike.
    pub esn: bool,
}

/// Anti-replay window of an AutoKey VPN without `replay window N`, packets.
pub const DEFAULT_AUTOKEY_REPLAY_WINDOW: u32 = 128;
/// Anti-replay window of a manual-key VPN without `replay window N`,
/// packets (RFC 4303 §3.4.3 recommends 64).
pub const DEFAULT_MANUAL_REPLAY_WINDOW: u32 = 64;
/// The smallest window accepted: RFC 4303 §3.4.3 requires receivers to
/// support 32.
pub const MIN_REPLAY_WINDOW: u32 = 32;
/// The largest window the fast path's ESP core keeps.
pub const MAX_REPLAY_WINDOW: u32 = 4096;

/// `set vpn NAME monitor ...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Monitor {
    /// `source-interface IF`.
    pub source_interface: Option<InterfaceName>,
    /// `destination-ip A`: a host behind the peer (needed with non-ScreenOS peers).
    pub destination: Option<IpAddr>,
    /// `optimized`.
    pub optimized: bool,
    /// `rekey`: keep the SAs up (negotiate without waiting for traffic).
    pub rekey: bool,
}

/// `set vpnmonitor ...`: the VPN monitor's timing, shared by every VPN
/// with `monitor` (ScreenOS's global setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VpnMonitorTiming {
    /// `interval N`: seconds between two probes of a VPN.
    pub interval_secs: u32,
    /// `threshold N`: consecutive unanswered probes before the VPN's
    /// monitor status goes DOWN.
    pub threshold: u32,
}

/// The MSS of `set flow tcp-mss` without a number (ScreenOS's default:
/// a 1500-byte path less 40 bytes of TCP/IP headers and up to 80 of ESP).
pub const DEFAULT_TCP_MSS: u16 = 1380;
/// Smallest MSS `set flow tcp-mss` accepts (a 104-byte IPv4 packet).
pub const MIN_TCP_MSS: u16 = 64;

/// ScreenOS's default VPN monitor interval, seconds.
pub const DEFAULT_VPNMONITOR_INTERVAL: u32 = 10;
/// ScreenOS's default VPN monitor threshold, probes.
pub const DEFAULT_VPNMONITOR_THRESHOLD: u32 = 10;
/// Longest VPN monitor interval accepted, seconds.
pub const MAX_VPNMONITOR_INTERVAL: u32 = 3600;
/// Largest VPN monitor threshold accepted.
pub const MAX_VPNMONITOR_THRESHOLD: u32 = 65535;

impl Default for VpnMonitorTiming {
    fn default() -> Self {
        VpnMonitorTiming {
            interval_secs: DEFAULT_VPNMONITOR_INTERVAL,
            threshold: DEFAULT_VPNMONITOR_THRESHOLD,
        }
    }
}

/// One proxy-ID as written: prefixes and a service *name* (resolved
/// against predefined and custom services by [`crate::Config`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyIdSpec {
    /// `local-ip P`.
    pub local: Prefix,
    /// `remote-ip P`.
    pub remote: Prefix,
    /// The service name; predefined names in their canonical spelling
    /// (`ANY`, `HTTP`).
    pub service: String,
}

impl ProxyIdSpec {
    /// Same selectors, service names compared case-insensitively.
    pub fn same_as(&self, other: &ProxyIdSpec) -> bool {
        self.local == other.local
            && self.remote == other.remote
            && self.service.eq_ignore_ascii_case(&other.service)
    }
}

impl fmt::Display for ProxyIdSpec {
    /// `local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 "ANY"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "local-ip {} remote-ip {} \"{}\"", self.local, self.remote, self.service)
    }
}

/// One setting of a `set vpn NAME ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VpnSetting {
    /// `gateway GW ...`: creates or updates an AutoKey IKE VPN.
    AutoKey(AutoKey),
    /// `manual ...`: creates or updates a manual-key VPN.
    Manual(ManualKey),
    /// `monitor ...`: replaces the VPN monitor settings.
    Monitor(Monitor),
    /// `[id N] [bind interface IF]`.
    Bind {
        /// `id N`.
        id: Option<u32>,
        /// `bind interface IF`.
        interface: Option<InterfaceName>,
    },
    /// `proxy-id check`.
    ProxyIdCheck,
    /// `proxy-id local-ip P remote-ip P SERVICE`.
    ProxyId(ProxyIdSpec),
    /// `withdraw-routes` (esprit).
    WithdrawRoutes,
}

/// Concurrent clients of one user identity without `share-limit`
/// (ScreenOS's default).
pub const DEFAULT_SHARE_LIMIT: u32 = 1;
/// The largest `share-limit` accepted.
pub const MAX_SHARE_LIMIT: u32 = 10_000;
/// Longest IKE identity of a user (`ike-id`), in characters: an FQDN is at
/// most 255 octets (RFC 1035 §2.3.4).
pub const MAX_IKE_ID: usize = 255;

/// One setting of a `set user NAME ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSetting {
    /// `uid N`: the number ScreenOS gives the user in saved configurations.
    Uid(u32),
    /// `ike-id u-fqdn|fqdn|ip VALUE [share-limit N]`.
    IkeId {
        /// The identity the client must present in phase 1.
        id: Identity,
        /// At most this many clients with this identity at once.
        share_limit: u32,
    },
    /// `type ike`: a dialup VPN user.
    TypeIke,
    /// `enable` (true) or `disable` (false).
    Enabled(bool),
}

/// One setting of a `set user-group NAME ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserGroupSetting {
    /// `[id N] [location local]`: creates the group (or sets its id).
    Define {
        /// `id N`, if given.
        id: Option<u32>,
    },
    /// `user NAME`: adds a member.
    Member(String),
}

/// A `set` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetCommand {
    /// `set interface NAME ...`.
    Interface {
        /// The interface.
        name: InterfaceName,
        /// What is set.
        setting: InterfaceSetting,
    },
    /// `set route ...`.
    Route(Route),
    /// `set ike gateway NAME ...` (one or more settings).
    IkeGateway {
        /// The gateway.
        name: String,
        /// The settings in line order.
        settings: Vec<GatewaySetting>,
    },
    /// `set pki ...`.
    Pki(PkiSetting),
    /// `set ike p1-proposal ...`.
    P1Proposal(P1Proposal),
    /// `set ike p2-proposal ...`.
    P2Proposal(P2Proposal),
    /// `set vpn NAME ...`.
    Vpn {
        /// The VPN.
        name: String,
        /// What is set.
        setting: VpnSetting,
    },
    /// `set vpnmonitor [interval N] [threshold N]` (at least one).
    VpnMonitor {
        /// `interval N`.
        interval_secs: Option<u32>,
        /// `threshold N`.
        threshold: Option<u32>,
    },
    /// `set flow tcp-mss [N]`: the MSS limit of TCP SYNs entering a tunnel.
    FlowTcpMss(u16),
    /// `set service NAME protocol ...` (`add` false) or
    /// `set service NAME + ...` (`add` true).
    Service {
        /// The service.
        name: String,
        /// The member.
        member: Service,
        /// `+`: add a member to an existing service.
        add: bool,
    },
    /// `set user NAME ...`.
    User {
        /// The user.
        name: String,
        /// What is set.
        setting: UserSetting,
    },
    /// `set user-group NAME ...`.
    UserGroup {
        /// The group.
        name: String,
        /// What is set.
        setting: UserGroupSetting,
    },
}

/// What `unset user NAME ...` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserItem {
    /// `ike-id` (with its share-limit).
    IkeId,
    /// `type`: no longer an IKE user.
    Type,
    /// `uid`.
    Uid,
}

/// What `unset interface NAME ...` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceItem {
    /// `zone`.
    Zone,
    /// `ip` (address or unnumbered).
    Ip,
    /// `mtu`.
    Mtu,
    /// `port`.
    Port,
    /// `manage ...` (ignored with a warning).
    Manage,
}

/// What `unset ike gateway NAME ...` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayItem {
    /// `nat-traversal`.
    NatTraversal,
    /// `dpd-liveness`.
    Dpd,
    /// `local-id`.
    LocalId,
    /// `peer-id`.
    PeerId,
    /// `cert` (both `my-cert` and `peer-ca`).
    Cert,
    /// `fragmentation`: back to the default size.
    Fragmentation,
}

/// What `unset vpn NAME ...` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VpnItem {
    /// `monitor`.
    Monitor,
    /// `bind interface` (the binding and the id).
    Bind,
    /// `proxy-id check`.
    ProxyIdCheck,
    /// `proxy-id local-ip P remote-ip P SERVICE`.
    ProxyId(ProxyIdSpec),
    /// `proxy-id`: every proxy-ID.
    AllProxyIds,
    /// `withdraw-routes`.
    WithdrawRoutes,
}

/// An `unset` line. `item: None` removes the whole object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsetCommand {
    /// `unset interface NAME [ITEM]`.
    Interface {
        /// The interface.
        name: InterfaceName,
        /// What to remove; `None` for the interface.
        item: Option<InterfaceItem>,
    },
    /// `unset route P [interface IF [gateway A]]`: every route that matches.
    Route {
        /// Destination.
        prefix: Prefix,
        /// Only routes through this interface.
        interface: Option<InterfaceName>,
        /// Only routes through this next hop.
        gateway: Option<IpAddr>,
    },
    /// `unset ike gateway NAME [ITEM]`.
    IkeGateway {
        /// The gateway.
        name: String,
        /// What to remove; `None` for the gateway.
        item: Option<GatewayItem>,
    },
    /// `unset pki local-cert NAME` (`ca` false) or `unset pki ca-cert NAME`.
    Pki {
        /// A CA certificate.
        ca: bool,
        /// Its name.
        name: String,
    },
    /// `unset ike p1-proposal NAME`.
    P1Proposal(String),
    /// `unset ike p2-proposal NAME`.
    P2Proposal(String),
    /// `unset vpn NAME [ITEM]`.
    Vpn {
        /// The VPN.
        name: String,
        /// What to remove; `None` for the VPN.
        item: Option<VpnItem>,
    },
    /// `unset flow tcp-mss`: SYNs enter tunnels as they are.
    FlowTcpMss,
    /// `unset vpnmonitor [interval | threshold]`: back to the default
    /// (both when neither is named).
    VpnMonitor {
        /// Reset the interval.
        interval: bool,
        /// Reset the threshold.
        threshold: bool,
    },
    /// `unset service NAME [+ MEMBER]`.
    Service {
        /// The service.
        name: String,
        /// The member to remove; `None` for the service.
        member: Option<Service>,
    },
    /// `unset interface tunnel.N nhtb A [vpn NAME]`.
    Nhtb {
        /// The tunnel interface.
        interface: InterfaceName,
        /// The next hop whose binding goes.
        next_hop: IpAddr,
        /// `vpn NAME`: only if the entry names this VPN.
        vpn: Option<String>,
    },
    /// `unset user NAME [ITEM]`.
    User {
        /// The user.
        name: String,
        /// What to remove; `None` for the user.
        item: Option<UserItem>,
    },
    /// `unset user-group NAME [user MEMBER]`.
    UserGroup {
        /// The group.
        name: String,
        /// The member to remove; `None` for the group.
        member: Option<String>,
    },
}
