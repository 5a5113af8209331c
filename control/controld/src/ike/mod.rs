//! IKE in controld, without I/O: the configuration as `esprit_ike`
//! [`PeerConfig`]s, negotiated child SAs as fastpathd SA pairs, and the
//! [`IkeManager`] that owns one sans-IO [`Peer`] per AutoKey gateway.
//!
//! Time and randomness come from the caller (`ike::io` and the daemon give
//! the clock, kernel UDP sockets and `ring`'s system generator), so all of
//! it runs in memory in tests.
//!
//! * **On demand**: fastpathd's `Acquire` for a proxy-ID of an AutoKey VPN
//!   becomes [`Peer::initiate_child`] (Main Mode first if there is no
//!   ISAKMP SA); a proxy-ID already negotiating or up is not asked for
//!   again (fastpathd repeats acquires while it holds packets).
//! * **Responder**: Quick Modes from the peer for configured proxy-IDs are
//!   accepted by the `Peer` itself (its `proxy_ids`).
//! * **ChildSaUp** becomes an [`IkeAction::Install`] of an inbound and an
//!   outbound [`DesiredSa`] (ids: the VPN's HEX ID, the direction, and a
//!   serial per negotiation, from 1: serial 0 is the manual-key SA's);
//!   **ChildSaDown** an [`IkeAction::Remove`] of both.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use esprit_config::model::{GatewayPeer, IkeMode, IkeVersion};
use esprit_config::proposal::{Cipher, Hash as CfgHash};
use esprit_config::{Config, InterfaceIp, VpnKind};
use esprit_fastpath_api::{Direction, Key, SaSpec};
use esprit_ike::{
    ChildSa, DhGroup, EncryptionAlg, Event, HashAlg, IkeProposal, Lifetime, PeerConfig, Random, Reason,
    Transmit, IKE_PORT,
};
use esprit_policy::ProxyId;

use crate::core::spi::SpiAllocator;
use crate::core::translate::{algorithm_words, sa_id, DesiredSa};

mod children;
mod endpoint;
pub mod pki;
mod view;
pub use endpoint::{session_config, Endpoint, IkeSaSummary, IKE_REKEY_RETRY};
pub use view::{ChildSaView, IkeView, IsakmpSaView, IsakmpState};
pub mod counters;
pub mod io;
pub mod persist;

/// An acquire for a proxy-ID that has been negotiating longer than this
/// starts a new negotiation (the previous one is presumed lost).
pub const RENEGOTIATE_AFTER: Duration = Duration::from_secs(30);

/// When we initiated a Quick Mode, our outbound SA is installed this long
/// after the inbound one. RFC 2409 §5.5: the responder installs its SAs
/// only once QM3 arrives, and the initiator may send as soon as it sent
/// QM3, so the first ESP packet (the one fastpathd held) can overtake QM3's
/// processing. Measured against strongSwan 5.9.8 with libipsec here: the
/// held packet arrived 2.3 ms after QM3 and was dropped about one time in
/// eight. The commit bit (RFC 2408 §4.6.3) would say it exactly, but
/// strongSwan does not implement it. Not towards an esprit peer (its
/// vendor ID in phase 1): its inbound SA is in its fast path before its
/// QM2 leaves (`Event::ChildSaInbound`), so ours goes in at once and the
/// held first packet leaves with QM3 (its round trip, Quick Mode
/// included, is then a few milliseconds rather than 50 more).
pub const INITIATOR_OUTBOUND_DELAY: Duration = Duration::from_millis(50);

/// The soft volume lifetime, as a fraction of the hard one (per mille).
const SOFT_PER_MILLE: u64 = 900;

/// Rekey by time (make-before-break): the side that initiated a child SA
/// starts its successor between 85% and 90% of the lifetime (spread at
/// random, so that many SAs negotiated together are not rekeyed in one
/// burst), the responder at 95% — only if the initiator did not. A peer
/// that rekeys first (strongSwan: `rekey_time`) supersedes ours.
const REKEY_INITIATOR_PER_MILLE: (u64, u64) = (850, 900);
const REKEY_RESPONDER_PER_MILLE: u64 = 950;

/// After a rekey, the old pair's inbound SA stays installed this long for
/// packets already on their way (its outbound is replaced at once), then
/// the side that ran the rekey deletes it (Delete to the peer). The other
/// side waits twice as long for that Delete before deleting it itself.
/// Never beyond the old SA's own lifetime, less [`RETIRE_BEFORE_EXPIRY`]
/// (half of it for the side that did not run the rekey, so that late in
/// the old pair's life the side that ran it still deletes it first).
pub const REKEY_GRACE: Duration = Duration::from_secs(10);

/// A superseded pair is retired this long before its hard lifetime ends:
/// fastpathd enforces that lifetime on its own clock, and controld, not
/// the expiry, should end the pair (with a Delete to the peer), even when
/// its timers run late on a busy machine.
const RETIRE_BEFORE_EXPIRY: Duration = Duration::from_secs(2);

/// A rekey that failed is tried again after this long (while the SA
/// lives).
pub const REKEY_RETRY: Duration = Duration::from_secs(10);

/// Half-open responder exchanges in all, over every gateway: the same
/// bound a single peer applies to itself ([`esprit_ike::HalfOpenLimits`],
/// 1,024: at most about 5 MiB held for strangers).
pub const HALF_OPEN_GLOBAL: usize = 1024;

/// At [`HALF_OPEN_GLOBAL`], a peer holding at most this many half-open
/// exchanges keeps them: another peer's newcomer does not displace them.
pub const HALF_OPEN_SHARE: usize = 32;

/// On a soft volume expiry, the child's responder waits this long for the
/// initiator's rekey before starting one itself (both sides see the same
/// volume at almost the same time).
pub const SOFT_VOLUME_RESPONDER_DELAY: Duration = Duration::from_secs(2);

/// An AutoKey VPN as IKE sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeVpn {
    /// The VPN's name.
    pub name: String,
    /// Its HEX ID.
    pub hex_id: u32,
    /// Its tunnel interface's number (= fastpathd's VPN number).
    pub tunnel: u32,
    /// Its proxy-IDs.
    pub proxy_ids: Vec<ProxyId>,
    /// Anti-replay window of its inbound SAs in packets (`replay window
    /// N`, 128 by default); 0 = `no-replay`.
    pub replay_window: u32,
    /// Idle time in seconds (0 = never).
    pub idle_secs: u32,
}

/// An AutoKey gateway: its `PeerConfig` and the VPNs that use it.
#[derive(Debug, Clone)]
pub struct IkeGateway {
    /// The IKE peer's configuration.
    pub config: PeerConfig,
    /// The VPNs through this gateway (their proxy-IDs make up
    /// `config.proxy_ids`).
    pub vpns: Vec<IkeVpn>,
    /// It speaks IKEv2 (`set ike gateway ikev2 NAME ...`).
    pub ikev2: bool,
    /// Its certificates, when it authenticates by signature (IKEv2).
    pub cert: Option<pki::CertFiles>,
}

fn group(g: DhGroup) -> Option<DhGroup> {
    // One type since the configuration and IKE share esprit-suite's.
    Some(g)
}

/// The IKE gateways of a configuration: every gateway with a static peer
/// address that an AutoKey VPN bound to a tunnel interface uses. What
/// cannot be expressed (dialup peers, VPNs sharing a tunnel interface by
/// next-hop tunnel binding, IPv6) is left out with a warning. A DH group
/// esprit-ike cannot compute is refused with the gateway or VPN named,
/// never dropped silently.
pub fn ike_gateways(config: &Config, hex_ids: &BTreeMap<String, u32>) -> (Vec<IkeGateway>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut by_gateway: BTreeMap<String, Vec<IkeVpn>> = BTreeMap::new();
    let shared = config.shared_tunnels();
    for v in config.vpns() {
        let VpnKind::AutoKey(a) = &v.kind else { continue };
        let Some(bind) = v.bind.as_ref() else { continue };
        let Some(tunnel) = bind.tunnel_number() else { continue };
        // Several VPNs told apart by next-hop tunnel binding are
        // configured, not yet negotiated (core::translate says so once
        // each): no SA of one can carry another's traffic.
        if shared.contains_key(bind) {
            continue;
        }
        let Some(&hex_id) = hex_ids.get(&v.name) else { continue };
        by_gateway.entry(a.gateway.clone()).or_default().push(IkeVpn {
            name: v.name.clone(),
            hex_id,
            tunnel,
            proxy_ids: config.proxy_ids(&v.name),
            replay_window: if a.replay { a.replay_window } else { 0 },
            idle_secs: a.idletime_mins.saturating_mul(60),
        });
    }
    let mut out = Vec::new();
    for (name, vpns) in by_gateway {
        let Some(g) = config.gateway(&name) else { continue };
        let ikev2 = g.version == IkeVersion::V2;
        if ikev2 && !matches!(g.peer, GatewayPeer::Address(_)) {
            warnings.push(format!(
                "ike gateway \"{name}\": an ikev2 gateway with a dialup or dynamic peer is configured, not yet negotiated: IKE is not run for it (give it the peer's address)"
            ));
            continue;
        }
        let (remote, dynamic) = match &g.peer {
            GatewayPeer::Address(a @ IpAddr::V4(_)) => (*a, None),
            GatewayPeer::Address(a) => {
                warnings.push(format!("ike gateway \"{name}\": peer {a} is IPv6: IKE is not run for it"));
                continue;
            }
            // The address is learnt when the peer opens an Aggressive Mode
            // with this identity (esprit_ike::PeerConfig::dynamic).
            GatewayPeer::Dynamic(id) if g.mode == IkeMode::Aggressive => {
                (IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), Some(id.clone()))
            }
            GatewayPeer::Dynamic(_) => {
                warnings.push(format!(
                    "ike gateway \"{name}\": a dynamic peer with a pre-shared key needs Aggressive Mode (Main Mode would have to choose the key before knowing who the peer is): IKE is not run for it"
                ));
                continue;
            }
            GatewayPeer::Dialup(d) => {
                let what = if config.user_group(d).is_some() { "user-group" } else { "user" };
                warnings.push(format!(
                    "ike gateway \"{name}\": dialup {what} \"{d}\" ({} users) is configured, not yet negotiated: controld answers none of its clients yet (a single client can use a dynamic peer)",
                    config.dialup_users(&name).len()
                ));
                continue;
            }
        };
        let local = match config.interface(g.outgoing_interface.as_str()).and_then(|i| i.ip.clone()) {
            Some(InterfaceIp::Address(a)) if a.addr.is_ipv4() => a.addr,
            _ => {
                warnings.push(format!(
                    "ike gateway \"{name}\": outgoing-interface {} has no IPv4 address: IKE is not run for it",
                    g.outgoing_interface
                ));
                continue;
            }
        };
        let mut cfg = PeerConfig::new(
            &name,
            SocketAddr::new(local, IKE_PORT),
            SocketAddr::new(remote, IKE_PORT),
            g.preshare.expose().as_bytes(),
        );
        cfg.aggressive = g.mode == IkeMode::Aggressive;
        if let Some(id) = &g.local_id {
            cfg.local_id = id.clone();
        }
        cfg.remote_id = g.peer_id.clone();
        if let Some(id) = dynamic {
            cfg.dynamic = true;
            cfg.remote_id = cfg.remote_id.or(Some(id));
        }
        let p1 = config.p1_suites(&name);
        cfg.ike_proposals = p1
            .iter()
            .filter_map(|s| {
                let cipher = match s.cipher {
                    Cipher::Aes128 => EncryptionAlg::Aes128Cbc,
                    Cipher::Aes256 => EncryptionAlg::Aes256Cbc,
                    _ => return None,
                };
                let hash = match s.hash {
                    CfgHash::Sha1 => HashAlg::Sha1,
                    CfgHash::Sha256 => HashAlg::Sha256,
                    _ => return None,
                };
                match group(s.group) {
                    Some(group) => Some(IkeProposal { cipher, hash, group }),
                    None => {
                        warnings.push(format!(
                            "ike gateway \"{name}\": phase-1 proposal {s} is left out (its DH group is not implemented by esprit-ike)"
                        ));
                        None
                    }
                }
            })
            .collect();
        if cfg.ike_proposals.is_empty() {
            warnings
                .push(format!("ike gateway \"{name}\": no usable phase-1 proposal: IKE is not run for it"));
            continue;
        }
        if let Some(s) = p1.first() {
            cfg.ike_lifetime = s.lifetime_secs;
        }
        // Phase 2: one PeerConfig per gateway, so the first VPN's proposals
        // (ScreenOS gateways usually carry one VPN).
        let p2 = config.p2_suites(&vpns[0].name);
        if vpns.len() > 1 {
            warnings.push(format!(
                "ike gateway \"{name}\": {} VPNs use it; phase-2 proposals are VPN \"{}\"'s for all",
                vpns.len(),
                vpns[0].name
            ));
        }
        cfg.esp_suites = Vec::new();
        for s in &p2 {
            if !cfg.esp_suites.contains(&s.esp) {
                cfg.esp_suites.push(s.esp);
            }
        }
        if cfg.esp_suites.is_empty() {
            warnings
                .push(format!("ike gateway \"{name}\": no usable phase-2 proposal: IKE is not run for it"));
            continue;
        }
        if let Some(s) = p2.first() {
            cfg.pfs = s.pfs.and_then(group);
            if s.pfs.is_some() && cfg.pfs.is_none() {
                // Never "no PFS" in place of the group asked for.
                warnings.push(format!(
                    "vpn \"{}\": its PFS group is not implemented by esprit-ike: IKE is not run for gateway \"{name}\"",
                    vpns[0].name
                ));
                continue;
            }
            cfg.child_lifetime =
                Lifetime { seconds: s.lifetime_secs, kilobytes: s.lifetime_kbytes.unwrap_or(0) };
        }
        cfg.proxy_ids = vpns.iter().flat_map(|v| v.proxy_ids.iter().copied()).collect();
        // ESN, like the suites, from the first VPN; IKEv1 here does not
        // negotiate it (RFC 4304), so an IKEv1 gateway's SAs go without.
        cfg.esn = match config.vpn(&vpns[0].name).map(|v| &v.kind) {
            Some(VpnKind::AutoKey(a)) => a.esn,
            _ => false,
        };
        if cfg.esn && !ikev2 {
            warnings.push(format!(
                "vpn \"{}\": esn is negotiated by IKEv2 only: the SAs of IKEv1 gateway \"{name}\" use 32-bit sequence numbers",
                vpns[0].name
            ));
            cfg.esn = false;
        }
        cfg.dpd_delay =
            g.dpd.filter(|d| d.interval_secs > 0).map(|d| Duration::from_secs(u64::from(d.interval_secs)));
        if let Some(d) = g.dpd {
            cfg.dpd_retries = u32::from(d.retry.max(1));
        }
        // ScreenOS: NAT-T only where `nat-traversal` is configured (no
        // NAT-T vendor ID otherwise, so no float and plain ESP), with a
        // keepalive every `keepalive-frequency` seconds (0: none) while
        // we are behind a NAT.
        cfg.nat_traversal = g.nat_traversal.is_some();
        cfg.nat_keepalive = g
            .nat_traversal
            .map(|n| Duration::from_secs(u64::from(n.keepalive_secs)))
            .filter(|d| !d.is_zero());
        if g.nat_traversal.is_some_and(|n| n.udp_checksum) {
            warnings.push(format!(
                "ike gateway \"{name}\": udp-checksum is not implemented: ESP in UDP is sent with a zero UDP checksum (RFC 3948 §2.1 allows it)"
            ));
        }
        // IKEv2 fragmentation (RFC 7383), in Junos's words: `fragmentation
        // size N` or `disable`; 1280-byte datagrams when not said.
        cfg.fragment_size = match g.fragmentation {
            Some(esprit_config::Fragmentation::Disabled) => None,
            Some(esprit_config::Fragmentation::Size(n)) => Some(n),
            None => Some(esprit_config::DEFAULT_FRAGMENT_SIZE),
        };
        if !ikev2 && g.fragmentation.is_some() {
            warnings.push(format!(
                "ike gateway \"{name}\": fragmentation is IKEv2's (RFC 7383): not used with IKEv1"
            ));
        }
        let cert = match pki::load(config, &name) {
            Ok(c) => c,
            Err(e) => {
                warnings.push(format!("ike gateway \"{name}\": {e}: IKE is not run for it"));
                continue;
            }
        };
        if ikev2 {
            if g.nat_traversal
                .is_some_and(|n| n.keepalive_secs != esprit_config::model::DEFAULT_NAT_KEEPALIVE_SECS)
            {
                warnings.push(format!(
                    "ike gateway \"{name}\": IKEv2 always detects NATs (RFC 7296 §2.23) and sends its NAT-keepalives every 20 s: keepalive-frequency is not used"
                ));
            }
            if let Err(e) = session_config(&cfg, cert.as_ref()) {
                warnings.push(format!("ike gateway \"{name}\": {e}: IKE is not run for it"));
                continue;
            }
        }
        out.push(IkeGateway { config: cfg, vpns, ikev2, cert });
    }
    (out, warnings)
}

/// The VPN of each proxy-ID, by index (the first VPN that has it).
fn vpn_index(vpns: &[IkeVpn]) -> std::collections::HashMap<ProxyId, usize> {
    let mut m = std::collections::HashMap::new();
    for (i, v) in vpns.iter().enumerate() {
        for p in &v.proxy_ids {
            m.entry(*p).or_insert(i);
        }
    }
    m
}

/// Starts the rekey of the child SA `spi` of `g` (a Quick Mode for its
/// proxy-ID), unless one runs or it was superseded.
fn start_rekey(g: &mut GatewayState, now: Instant, spi: u32) {
    let Some(c) = g.children.get_mut(&spi) else { return };
    g.dirty.children.insert(spi);
    g.due.set(None);
    c.rekey_at = None;
    if c.rekeying || c.superseded.is_some() {
        return;
    }
    c.rekeying = true;
    let pid = c.proxy_id;
    if g.peer.rekey_child(now, pid, spi).is_err() {
        c.rekeying = false;
        c.rekey_at = Some(now + REKEY_RETRY);
    }
}

/// The fastpathd SA pair (inbound first) of a negotiated child SA of `vpn`,
/// under `serial`.
pub fn child_sa_pair(vpn: &IkeVpn, child: &ChildSa, serial: u32) -> Result<[DesiredSa; 2], String> {
    let v4 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(x) => Ok(x),
        IpAddr::V6(x) => Err(format!("vpn \"{}\": child SA with IPv6 address {x}", vpn.name)),
    };
    let (local, peer) = (v4(child.local)?, v4(child.remote)?);
    let hard_bytes = u64::from(child.lifetime.kilobytes) * 1024;
    let algorithm = algorithm_words(child.suite);
    let mk = |direction: Direction, spi: u32, keys: &esprit_ike::DirectionKeys| {
        let spec = SaSpec {
            id: sa_id(vpn.hex_id, direction, serial),
            direction,
            spi,
            suite: child.suite.into(),
            encr_key: Key::new(keys.encryption.to_vec()),
            integ_key: Key::new(keys.integrity.to_vec()),
            iv_key: None,
            local,
            peer,
            udp_encap: child.encap.map(|e| (e.local_port, e.remote_port)),
            // IKEv1 as spoken here does not offer RFC 4304's ESN
            // attribute: 32-bit sequence numbers, rekeyed before they run
            // out. A child SA that negotiated ESN sets it here.
            esn: child.esn,
            replay_window: vpn.replay_window,
            vpn: vpn.tunnel,
            tunnel: vpn.tunnel,
            proxy_id: child.proxy_id.to_string(),
            soft_bytes: hard_bytes / 1000 * SOFT_PER_MILLE,
            hard_bytes,
            idle_secs: vpn.idle_secs,
            // fastpathd removes the SA at its hard lifetime even when
            // controld is gone (0 = no limit in seconds).
            hard_secs: child.lifetime.seconds,
            last_seq: 0,
        };
        DesiredSa { spec, vpn_name: vpn.name.clone(), algorithm: algorithm.clone(), manual: false }
    };
    Ok([
        mk(Direction::Inbound, child.spi_in, &child.keys_in),
        mk(Direction::Outbound, child.spi_out, &child.keys_out),
    ])
}

/// A source of random bytes: fills the buffer it is given.
pub type RandomFill = Rc<dyn Fn(&mut [u8])>;

/// Randomness for the IKE peers: bytes from the caller's source, inbound
/// SPIs from controld's [`SpiAllocator`] (shared by every gateway).
#[derive(Clone)]
pub struct IkeRandom {
    fill: RandomFill,
    spis: Rc<RefCell<SpiAllocator>>,
}

impl core::fmt::Debug for IkeRandom {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "IkeRandom {{ spis in use: {} }}", self.spis.borrow().len())
    }
}

impl IkeRandom {
    /// `fill` fills a buffer with random bytes (the system generator in the
    /// daemon, a fixed sequence in tests).
    pub fn new(fill: RandomFill, spis: Rc<RefCell<SpiAllocator>>) -> IkeRandom {
        IkeRandom { fill, spis }
    }
}

impl Random for IkeRandom {
    fn fill(&mut self, dest: &mut [u8]) {
        (self.fill)(dest);
    }

    fn spi(&mut self) -> u32 {
        let fill = self.fill.clone();
        let draw = move || {
            let mut b = [0u8; 4];
            fill(&mut b);
            u32::from_be_bytes(b)
        };
        let got = self.spis.borrow_mut().allocate(draw.clone());
        match got {
            Ok(spi) => spi,
            // Astronomically unlikely (see SpiAllocator): a plain draw.
            Err(_) => draw().max(crate::core::spi::MIN_SPI),
        }
    }
}

/// What became of fastpathd's acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    /// The line for the log.
    pub line: String,
    /// It repeats an acquire already being negotiated: fastpathd repeats
    /// one every 500 ms while its proxy-ID waits, so with thousands
    /// waiting these are counted and summed up, not logged one by one.
    pub repeat: bool,
}

/// What the daemon must do for IKE.
#[derive(Debug)]
pub enum IkeAction {
    /// Send a datagram (port 4500: with the non-ESP marker).
    Send(Transmit),
    /// Install SAs in fastpathd (inbound ones first).
    Install(Vec<DesiredSa>),
    /// Remove these SAs from fastpathd.
    Remove(Vec<u64>),
    /// A line for the log.
    Log(String),
}

#[derive(Debug)]
struct ChildRecord {
    vpn: usize,
    proxy_id: ProxyId,
    ids: [u64; 2],
    /// We ran the Quick Mode that made it.
    initiator: bool,
    /// When the lifetime in seconds runs out (None: no limit).
    expires: Option<Instant>,
    /// When to start its successor (None: no time limit, or the successor
    /// is negotiating or up).
    rekey_at: Option<Instant>,
    /// Its successor's Quick Mode is running.
    rekeying: bool,
    /// A newer pair for the same proxy-ID is up: this one's inbound is
    /// deleted at this time (see [`REKEY_GRACE`]).
    superseded: Option<Instant>,
    /// Responder between QM2 and QM3: the inbound SA is installed, the
    /// outbound one waits for QM3 (`Event::ChildSaInbound`).
    pending_outbound: Option<Box<DesiredSa>>,
}

impl ChildRecord {
    /// The next time something is due for it.
    fn deadline(&self) -> Option<Instant> {
        [self.expires, self.rekey_at, self.superseded].into_iter().flatten().min()
    }
}

#[derive(Debug)]
struct GatewayState {
    vpns: Vec<IkeVpn>,
    peer: Endpoint,
    /// Proxy-IDs asked for, with when the acquire came.
    negotiating: BTreeMap<ProxyId, Instant>,
    /// Child SAs up, by inbound SPI (with their proxy-IDs' and SA ids'
    /// indexes).
    children: children::Children,
    /// The VPN of each proxy-ID (an index into `vpns`).
    vpn_of: std::collections::HashMap<ProxyId, usize>,
    /// What changed since the IKE state was last written.
    dirty: persist::GatewayDirty,
    /// The earliest deadline of `children` and their number when it was
    /// found (`None`: a child changed since). Every change to a child's
    /// timers marks it for the journal ([`GatewayState::touch`]), which
    /// clears this: the timers and the next wake-up then cost a scan of
    /// every child only after a change, not at every turn.
    due: std::cell::Cell<Option<(Option<Instant>, usize)>>,
}

impl GatewayState {
    /// The earliest time something is due for one of its children.
    fn child_deadline(&self) -> Option<Instant> {
        match self.due.get() {
            Some((t, n)) if n == self.children.len() => t,
            _ => {
                let t = self.children.values().filter_map(|c| c.deadline()).min();
                self.due.set(Some((t, self.children.len())));
                t
            }
        }
    }
}

/// Every IKE peer of controld.
pub struct IkeManager {
    gateways: Vec<GatewayState>,
    spis: Rc<RefCell<SpiAllocator>>,
    serials: BTreeMap<u32, u32>,
    /// SAs to remove that no peer event will report.
    orphans: Vec<u64>,
    /// Outbound SAs waiting for [`INITIATOR_OUTBOUND_DELAY`], with the
    /// ids of the outbound SAs they replace (removed once they are in).
    delayed: Vec<(Instant, DesiredSa, Vec<u64>)>,
    fill: RandomFill,
    /// Events of the peers, counted for the metrics endpoint.
    events: counters::IkeCounters,
    /// An exchange completed or failed since the state was last saved
    /// ([`IkeManager::take_changed`]).
    changed: bool,
    /// What changed since the state was last written.
    dirty: persist::Dirty,
    /// Discards that are the manager's own (the half-open limit across
    /// peers); the peers count theirs.
    discards: esprit_ike::Discards,
    /// Lines for the log at the next [`IkeManager::poll`].
    notes: Vec<String>,
    /// Both clocks at one moment, given by the owner: IKEv2 sessions
    /// check certificates' validity against the wall clock.
    wall: Option<esprit_ike::WallClock>,
}

impl core::fmt::Debug for IkeManager {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IkeManager")
            .field("gateways", &self.gateways)
            .field("serials", &self.serials)
            .field("orphans", &self.orphans)
            .finish_non_exhaustive()
    }
}

/// True when two peer configurations negotiate the same way.
fn same_peer(a: &PeerConfig, b: &PeerConfig) -> bool {
    a.name == b.name
        && a.local == b.local
        // A dynamic peer's running configuration holds the address learnt.
        && (a.dynamic || a.remote == b.remote)
        && a.psk[..] == b.psk[..]
        && a.local_id == b.local_id
        && a.remote_id == b.remote_id
        && a.aggressive == b.aggressive
        && a.ike_proposals == b.ike_proposals
        && a.ike_lifetime == b.ike_lifetime
        && a.esp_suites == b.esp_suites
        && a.pfs == b.pfs
        && a.child_lifetime == b.child_lifetime
        && a.proxy_ids == b.proxy_ids
        && a.dpd_delay == b.dpd_delay
        && a.dpd_retries == b.dpd_retries
        && a.dynamic == b.dynamic
        && a.nat_traversal == b.nat_traversal
        && a.nat_keepalive == b.nat_keepalive
        && a.fragment_size == b.fragment_size
}

impl IkeManager {
    /// One peer per gateway; `spis` holds the SPIs already in use (manual
    /// keys); `fill` is the random source.
    pub fn new(gateways: Vec<IkeGateway>, spis: SpiAllocator, fill: RandomFill) -> IkeManager {
        let mut m = IkeManager {
            gateways: Vec::new(),
            spis: Rc::new(RefCell::new(spis)),
            fill,
            serials: BTreeMap::new(),
            orphans: Vec::new(),
            delayed: Vec::new(),
            events: counters::IkeCounters::default(),
            changed: false,
            dirty: persist::Dirty::default(),
            discards: esprit_ike::Discards::default(),
            notes: Vec::new(),
            wall: None,
        };
        for g in gateways {
            if let Some(st) = m.gateway_state(g) {
                m.gateways.push(st);
            }
        }
        m
    }

    /// A gateway's state; `None` (said in the log at the next
    /// [`IkeManager::poll`]) if its IKEv2 session cannot be made, which
    /// [`ike_gateways`] has already ruled out.
    fn gateway_state(&mut self, g: IkeGateway) -> Option<GatewayState> {
        let rng = IkeRandom::new(self.fill.clone(), self.spis.clone());
        let name = g.config.name.clone();
        let peer = if g.ikev2 {
            match Endpoint::v2(g.config, g.cert, rng, self.wall) {
                Ok(e) => e,
                Err(e) => {
                    self.notes.push(format!("gateway {name}: {e}: IKE is not run for it"));
                    return None;
                }
            }
        } else {
            Endpoint::v1(g.config, rng)
        };
        Some(GatewayState {
            peer,
            vpn_of: vpn_index(&g.vpns),
            vpns: g.vpns,
            negotiating: BTreeMap::new(),
            children: children::Children::default(),
            dirty: persist::GatewayDirty::default(),
            due: Default::default(),
        })
    }

    /// The configuration changed: gateways whose peer configuration or
    /// VPNs are unchanged keep their state and SAs; the others start
    /// afresh. A gateway that changed or is gone has its child SAs and
    /// ISAKMP SA deleted (Delete sent to the peer, SAs removed from
    /// fastpathd): esprit-ike cannot change a running peer's
    /// configuration, and the next packet negotiates under the new one.
    pub fn reconfigure(&mut self, now: Instant, gateways: Vec<IkeGateway>) -> Vec<IkeAction> {
        let mut out = Vec::new();
        let mut old = std::mem::take(&mut self.gateways);
        for g in gateways {
            let version = |o: &GatewayState| {
                o.peer.major() == if g.ikev2 { 2 } else { 1 } && o.peer.cert() == g.cert.as_ref()
            };
            let same = old
                .iter()
                .position(|o| version(o) && same_peer(o.peer.config(), &g.config) && o.vpns == g.vpns);
            // Only proxy-IDs added or removed, or the NAT-keepalive
            // frequency changed: the gateway keeps running; the SAs of the
            // proxy-IDs that stay keep flowing.
            let same_but_proxy_ids = || {
                old.iter().position(|o| {
                    let mut c = g.config.clone();
                    c.proxy_ids = o.peer.config().proxy_ids.clone();
                    c.nat_keepalive = o.peer.config().nat_keepalive;
                    version(o)
                        && same_peer(o.peer.config(), &c)
                        && o.vpns.len() == g.vpns.len()
                        && o.vpns.iter().zip(&g.vpns).all(|(a, b)| {
                            (&a.name, a.hex_id, a.tunnel, a.replay_window, a.idle_secs)
                                == (&b.name, b.hex_id, b.tunnel, b.replay_window, b.idle_secs)
                        })
                })
            };
            match same {
                Some(i) => self.gateways.push(old.remove(i)),
                None if let Some(i) = same_but_proxy_ids() => {
                    let mut st = old.remove(i);
                    let keep = g.config.proxy_ids.clone();
                    let gone: Vec<u32> = st
                        .children
                        .iter()
                        .filter(|(_, c)| !keep.contains(&c.proxy_id))
                        .map(|(s, _)| *s)
                        .collect();
                    if st.peer.config().nat_keepalive != g.config.nat_keepalive {
                        st.peer.set_nat_keepalive(now, g.config.nat_keepalive);
                        out.push(IkeAction::Log(format!(
                            "gateway {}: NAT-keepalive frequency changed: {}",
                            g.config.name,
                            g.config
                                .nat_keepalive
                                .map_or("none".to_owned(), |d| format!("{} s", d.as_secs()))
                        )));
                    }
                    if st.peer.config().proxy_ids != keep {
                        st.peer.set_proxy_ids(keep.clone());
                        st.negotiating.retain(|p, _| keep.contains(p));
                        for spi in &gone {
                            // ChildSaDown follows (poll): the pair is removed.
                            let _ = st.peer.delete_child(now, *spi);
                        }
                        out.push(IkeAction::Log(format!(
                            "gateway {}: proxy-IDs changed: {} now, {} child SA(s) of removed ones deleted, the others kept",
                            g.config.name,
                            keep.len(),
                            gone.len()
                        )));
                    }
                    st.vpn_of = vpn_index(&g.vpns);
                    st.vpns = g.vpns;
                    self.gateways.push(st);
                }
                None => {
                    out.push(IkeAction::Log(format!("gateway {}: configured", g.config.name)));
                    if let Some(st) = self.gateway_state(g) {
                        self.gateways.push(st);
                    }
                }
            }
        }
        for mut o in old {
            let name = o.peer.config().name.clone();
            self.dirty.gone.push(name.clone());
            // IKEv2 asks one thing at a time (RFC 7296 §2.3): a Delete per
            // child would hold the IKE SA's behind the first, and this
            // session goes now. Its IKE SA's Delete closes the children
            // with it (§1.4.1).
            let one_delete = o.peer.major() == 2 && o.peer.is_established();
            let spis: Vec<u32> = o.children.keys().copied().collect();
            for spi in spis {
                if !one_delete {
                    let _ = o.peer.delete_child(now, spi);
                }
                self.spis.borrow_mut().release(spi);
            }
            if o.peer.is_established() {
                let _ = o.peer.delete_ike(now);
            }
            while let Some(t) = o.peer.poll_transmit() {
                out.push(IkeAction::Send(t));
            }
            let ids: Vec<u64> = o.children.values().flat_map(|c| c.ids).collect();
            out.push(IkeAction::Log(format!(
                "gateway {name}: its configuration changed or is gone: {} child SA(s) and the {} deleted",
                ids.len() / 2,
                if o.peer.major() == 1 { "ISAKMP SA" } else { "IKE SA" }
            )));
            if !ids.is_empty() {
                self.drop_delayed(&ids);
                out.push(IkeAction::Remove(ids));
            }
        }
        out
    }

    /// Both clocks at one moment (the shell reads them): IKEv2 sessions
    /// made from now on, and those running, count the wall-clock time on
    /// from it to check certificates.
    pub fn set_wall_clock(&mut self, clock: esprit_ike::WallClock) {
        self.wall = Some(clock);
        for g in &mut self.gateways {
            g.peer.set_wall_clock(clock);
        }
    }

    /// True when there is no gateway to run.
    pub fn is_empty(&self) -> bool {
        self.gateways.is_empty()
    }

    /// The addresses of the peers, where known (a dynamic peer's once it
    /// has authenticated): their datagrams take the peers' lane of the
    /// inbox, ahead of strangers'.
    pub fn peer_addresses(&self) -> std::collections::HashSet<IpAddr> {
        self.gateways.iter().map(|g| g.peer.config().remote.ip()).filter(|ip| !ip.is_unspecified()).collect()
    }

    /// The local addresses to bind (ports 500 and 4500).
    pub fn local_addresses(&self) -> BTreeSet<IpAddr> {
        self.gateways.iter().map(|g| g.peer.config().local.ip()).collect()
    }

    /// fastpathd's acquire: traffic for `proxy_id` (ScreenOS words) in
    /// tunnel.`tunnel` has no SA. Returns a line for the log, and whether
    /// it only repeats one already being answered.
    pub fn acquire(&mut self, now: Instant, tunnel: u32, proxy_id: &str) -> Acquired {
        let line = |line: String| Acquired { line, repeat: false };
        let Ok(pid) = proxy_id.parse::<ProxyId>() else {
            return line(format!("acquire: tunnel.{tunnel}: unreadable proxy-id {proxy_id:?}"));
        };
        let Some(g) = self.gateways.iter_mut().find(|g| g.vpns.iter().any(|v| v.tunnel == tunnel)) else {
            return line(format!("acquire: tunnel.{tunnel} proxy-id {pid}: no AutoKey VPN on this tunnel"));
        };
        let name = g.peer.config().name.clone();
        // The negotiating map first: fastpathd repeats an acquire every
        // 500 ms while a proxy-ID waits, so with thousands negotiating this
        // lookup, not the scan of every child below, answers most of them.
        if let Some(t) = g.negotiating.get(&pid) {
            // Past RENEGOTIATE_AFTER a negotiation is presumed lost, unless
            // its Quick Mode still waits for its turn or runs (thousands of
            // proxy-IDs take their turns for longer than that).
            if now.saturating_duration_since(*t) < RENEGOTIATE_AFTER || g.peer.is_negotiating(&pid) {
                return Acquired {
                    line: format!("acquire: gateway {name} proxy-id {pid}: already negotiating"),
                    repeat: true,
                };
            }
        }
        if g.children.has_proxy(&pid) {
            return line(format!("acquire: gateway {name} proxy-id {pid}: SA already up (being installed)"));
        }
        line(match g.peer.initiate_child(now, pid) {
            Ok(()) => {
                g.negotiating.insert(pid, now);
                let phase = match (g.peer.major(), g.peer.is_established()) {
                    (1, true) => "Quick Mode",
                    (1, false) => "Main Mode, then Quick Mode",
                    (_, true) => "CREATE_CHILD_SA",
                    (_, false) => "IKE_SA_INIT, then IKE_AUTH",
                };
                format!("acquire: gateway {name} proxy-id {pid}: negotiating ({phase})")
            }
            Err(e) => format!("acquire: gateway {name} proxy-id {pid}: {e}"),
        })
    }

    /// A datagram for IKE (non-ESP marker stripped). Returns why it was
    /// dropped, if it was, for the log; what strangers can send at will
    /// (from an address no gateway knows, or what a peer counted as a
    /// discard: half-open limits, replays, Aggressive Mode refused, ...)
    /// is counted instead (`get counter`), never one log line each.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), String> {
        // A peer's address names its gateway; should an IKEv1 and an
        // IKEv2 gateway share one, the message's version picks.
        let speaks = Endpoint::speaks(bytes);
        let ours = |g: &GatewayState| {
            let c = g.peer.config();
            c.remote.ip() == remote.ip() && c.local.ip() == local.ip()
        };
        let known = self.gateways.iter().position(|g| ours(g) && speaks == Some(g.peer.major()));
        if known.is_none() && self.gateways.iter().any(ours) {
            // The peer's gateway speaks the other version: not for it
            // (an IKEv1-only responder ignores IKEv2, RFC 7296 §1.5).
            self.discards.add(esprit_ike::Discard::NoGateway);
            return Ok(());
        }
        // A dynamic peer from an address not (yet) its own: the gateway
        // whose identity its Aggressive Mode presents.
        let found = known.or_else(|| {
            self.gateways
                .iter()
                .position(|g| g.peer.config().local.ip() == local.ip() && g.peer.expects_from(remote, bytes))
        });
        let Some(gi) = found else {
            self.discards.add(esprit_ike::Discard::NoGateway);
            return Ok(());
        };
        // Half-open exchanges are bounded across the peers too (each
        // peer bounds its own, shared fairly among its sources): at the
        // bound, the peer holding the most gives way, this one's own
        // always, another only beyond its share (HALF_OPEN_SHARE).
        if self.gateways[gi].peer.opens_exchange(bytes) && self.half_open() >= HALF_OPEN_GLOBAL {
            let own = self.gateways[gi].peer.half_open();
            let largest = (0..self.gateways.len())
                .max_by_key(|&i| (self.gateways[i].peer.half_open(), i == gi))
                .unwrap_or(gi);
            let most = self.gateways[largest].peer.half_open();
            let victim = if own >= most { gi } else { largest };
            if (victim != gi && most <= HALF_OPEN_SHARE) || !self.gateways[victim].peer.displace_half_open() {
                self.discards.add(esprit_ike::Discard::HalfOpenLimitGlobal);
                return Ok(());
            }
        }
        let g = &mut self.gateways[gi];
        let counted = g.peer.discard_total();
        let r = g.peer.handle_datagram(now, local, remote, bytes);
        if g.peer.discard_total() > counted {
            return Ok(());
        }
        r.map_err(|e| e.to_string())
    }

    /// Responder exchanges not yet authenticated, over every peer.
    pub fn half_open(&self) -> usize {
        self.gateways.iter().map(|g| g.peer.half_open()).sum()
    }

    /// Per gateway: (half-open exchanges, the most from one source).
    pub fn half_open_by_gateway(&self) -> Vec<(usize, usize)> {
        self.gateways.iter().map(|g| (g.peer.half_open(), g.peer.half_open_per_source_max())).collect()
    }

    /// Discards so far: the manager's and every peer's.
    pub fn discards(&self) -> esprit_ike::Discards {
        let mut d = self.discards;
        for g in &self.gateways {
            d.merge(&g.peer.discards());
        }
        d
    }

    /// IKEv2's drops so far, over every IKEv2 gateway.
    pub fn v2_dropped(&self) -> esprit_ike::v2::dropped::DroppedCounts {
        let mut d = esprit_ike::v2::dropped::DroppedCounts::default();
        for g in &self.gateways {
            if let Some(x) = g.peer.v2_dropped() {
                d.merge(x);
            }
        }
        d
    }

    /// The earliest deadline of any peer or child SA lifetime.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let peers = self.gateways.iter().filter_map(|g| g.peer.poll_timeout());
        let lives = self.gateways.iter().filter_map(|g| g.child_deadline());
        let delayed = self.delayed.iter().map(|(t, _, _)| *t);
        peers.chain(lives).chain(delayed).min()
    }

    /// Runs the timers that are due: retransmissions, DPD, rekeys of child
    /// SAs, deletion of the pairs a rekey superseded, and of child SAs
    /// whose lifetime ran out (deleted with the peer; the next packet
    /// negotiates a new pair).
    pub fn handle_timeout(&mut self, now: Instant) {
        for g in &mut self.gateways {
            if g.peer.poll_timeout().is_some_and(|t| t <= now) {
                g.peer.handle_timeout(now);
            }
            if g.child_deadline().is_none_or(|t| t > now) {
                continue;
            }
            g.due.set(None);
            let rekey: Vec<u32> = g
                .children
                .iter()
                .filter(|(_, c)| c.rekey_at.is_some_and(|t| t <= now))
                .map(|(spi, _)| *spi)
                .collect();
            for spi in rekey {
                start_rekey(g, now, spi);
            }
            let expired: Vec<u32> = g
                .children
                .iter()
                .filter(|(_, c)| [c.expires, c.superseded].into_iter().flatten().any(|t| t <= now))
                .map(|(spi, _)| *spi)
                .collect();
            for spi in expired {
                if g.peer.delete_child(now, spi).is_err() {
                    // The peer no longer knows it: drop it ourselves.
                    if let Some(c) = g.children.remove(&spi) {
                        g.touch(spi);
                        self.orphans.extend(c.ids);
                    }
                }
            }
        }
    }

    /// Seconds of lifetime left per installed IKE SA id (`get sa`).
    pub fn life_remaining(&self, now: Instant) -> BTreeMap<u64, u64> {
        let mut out = BTreeMap::new();
        for c in self.gateways.iter().flat_map(|g| g.children.values()) {
            if let Some(t) = c.expires {
                for id in c.ids {
                    out.insert(id, t.saturating_duration_since(now).as_secs());
                }
            }
        }
        out
    }

    /// fastpathd reports an SA's soft limit (volume, or sequence numbers
    /// running out): rekey its pair — the child's initiator now, its
    /// responder after [`SOFT_VOLUME_RESPONDER_DELAY`] unless the peer's
    /// rekey came first. Returns a line for the log if the SA is an IKE
    /// one.
    pub fn sa_soft_expired(&mut self, now: Instant, sa: u64) -> Option<String> {
        for g in &mut self.gateways {
            let Some(spi) = g.children.by_sa(sa) else { continue };
            let Some(c) = g.children.get_mut(&spi) else { continue };
            let name = g.peer.config().name.clone();
            if c.rekeying || c.superseded.is_some() {
                return Some(format!("gateway {name}: SA {sa:#x} soft limit: already rekeyed or rekeying"));
            }
            g.dirty.children.insert(spi);
            g.due.set(None);
            if c.initiator {
                c.rekey_at = Some(now);
                start_rekey(g, now, spi);
                return Some(format!("gateway {name}: SA {sa:#x} soft limit: rekeying child SA {spi:08x}"));
            }
            let at = now + SOFT_VOLUME_RESPONDER_DELAY;
            c.rekey_at = Some(c.rekey_at.map_or(at, |t| t.min(at)));
            return Some(format!(
                "gateway {name}: SA {sa:#x} soft limit: rekeying child SA {spi:08x} unless the peer does first"
            ));
        }
        None
    }

    /// The SA `sa` was re-installed into a restarted fastpathd: its
    /// keys carried traffic whose replay window was lost, so its child SA
    /// is rekeyed now (new SPIs and keys), whichever side initiated it.
    /// Returns a line for the log if the SA is an IKE one.
    pub fn rekey_now(&mut self, now: Instant, sa: u64) -> Option<String> {
        for g in &mut self.gateways {
            let Some(spi) = g.children.by_sa(sa) else { continue };
            let name = g.peer.config().name.clone();
            start_rekey(g, now, spi);
            return Some(format!(
                "gateway {name}: SA {sa:#x} re-installed after a fastpathd restart: rekeying child SA {spi:08x}"
            ));
        }
        None
    }

    /// fastpathd reports an SA expired (volume): delete its pair with the
    /// peer. Returns a line for the log if the SA is an IKE one.
    pub fn sa_expired(&mut self, now: Instant, sa: u64) -> Option<String> {
        for g in &mut self.gateways {
            if let Some(spi) = g.children.by_sa(sa) {
                let name = g.peer.config().name.clone();
                return Some(match g.peer.delete_child(now, spi) {
                    Ok(()) => format!("gateway {name}: SA {sa:#x} expired: child SA {spi:08x} deleted"),
                    Err(e) => format!("gateway {name}: SA {sa:#x} expired: {e}"),
                });
            }
        }
        None
    }

    /// Everything the peers produced: datagrams, SAs to install or remove,
    /// log lines.
    pub fn poll(&mut self, now: Instant) -> Vec<IkeAction> {
        let mut out: Vec<IkeAction> = self.notes.drain(..).map(IkeAction::Log).collect();
        if !self.orphans.is_empty() {
            let ids = std::mem::take(&mut self.orphans);
            self.drop_delayed(&ids);
            out.push(IkeAction::Remove(ids));
        }
        if self.delayed.iter().any(|(t, _, _)| *t <= now) {
            let (due, wait): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.delayed).into_iter().partition(|(t, _, _)| *t <= now);
            self.delayed = wait;
            self.dirty.delayed.extend(due.iter().map(|(_, s, _)| s.spec.id));
            let replaced: Vec<u64> = due.iter().flat_map(|(_, _, r)| r.iter().copied()).collect();
            out.push(IkeAction::Install(due.into_iter().map(|(_, s, _)| s).collect()));
            if !replaced.is_empty() {
                out.push(IkeAction::Remove(replaced));
            }
        }
        // Events before datagrams: the SAs a message's events install must
        // be in fastpathd before the message that lets the peer use them
        // leaves (the daemon carries out the actions in order). The QM3 an
        // initiator sends and the QM2 a responder sends come with the
        // inbound SA the peer may send on as soon as it has them (RFC 2409
        // §5.5); sent first, the peer's first packets on the new SA could
        // beat the install and be dropped as esp-unknown-spi.
        for gi in 0..self.gateways.len() {
            while let Some(e) = self.gateways[gi].peer.poll_event(now) {
                self.on_event(gi, now, e, &mut out);
            }
            while let Some(t) = self.gateways[gi].peer.poll_transmit() {
                out.push(IkeAction::Send(t));
            }
        }
        let d = self.discards();
        self.events.set_discards(d, self.v2_dropped());
        out
    }

    /// The peers' events counted so far (exchanges completed and failed),
    /// and the discards as of the last [`IkeManager::poll`].
    pub fn events(&self) -> &counters::IkeCounters {
        &self.events
    }

    /// The next SA serial of a VPN (1 to 2^31 - 1, then round again).
    fn next_serial(&mut self, hex_id: u32) -> u32 {
        self.dirty.serials.insert(hex_id);
        let serial = self.serials.entry(hex_id).or_insert(0);
        *serial = (*serial % 0x7fff_ffff) + 1;
        *serial
    }

    fn on_event(&mut self, gi: usize, now: Instant, e: Event, out: &mut Vec<IkeAction>) {
        self.events.record(&e);
        self.changed = true;
        let g = &mut self.gateways[gi];
        let name = g.peer.config().name.clone();
        let v1 = g.peer.major() == 1;
        // The words of each version's exchanges (RFC 2409, RFC 7296).
        let (phase1, child_exchange) =
            if v1 { ("phase 1", "Quick Mode") } else { ("IKE SA", "IKEv2 exchange") };
        let mut log = |s: String| out.push(IkeAction::Log(s));
        match e {
            Event::IkeSaUp { initiator, proposal, nat, behind_nat, local, remote, .. } => log(format!(
                "gateway {name}: {phase1} up ({}, {proposal}, NAT-T {}, {local} <-> {remote})",
                if initiator { "we initiated" } else { "the peer initiated" },
                match (nat, behind_nat, g.peer.keepalive_every()) {
                    (false, _, _) => "off".to_owned(),
                    (true, false, _) => "on: ESP in UDP 4500".to_owned(),
                    (true, true, Some(every)) => format!(
                        "on: ESP in UDP 4500, we are behind a NAT: keepalive every {} s",
                        every.as_secs()
                    ),
                    (true, true, None) => "on: ESP in UDP 4500, we are behind a NAT: no keepalive".to_owned(),
                }
            )),
            Event::IkeSaDown { reason: Reason::Rekeyed } => {
                log(format!("gateway {name}: {phase1} rekeyed: the previous one is deleted"))
            }
            Event::IkeSaDown { reason } => {
                g.negotiating.clear();
                for (spi, c) in g.children.iter_mut() {
                    if c.rekeying {
                        g.dirty.children.insert(*spi);
                        g.due.set(None);
                        c.rekeying = false;
                        c.rekey_at = Some(now + REKEY_RETRY);
                    }
                }
                log(format!("gateway {name}: {phase1} down: {}", reason_words(&reason)));
            }
            Event::Phase1RekeyFailed { reason } => log(format!(
                "gateway {name}: phase-1 rekey failed ({}): the current ISAKMP SA stays until its lifetime ends",
                reason_words(&reason)
            )),
            Event::PeerPhase1Failed { reason } => log(format!(
                "gateway {name}: a phase 1 started from the peer's address failed ({}): the current ISAKMP SA stays",
                reason_words(&reason)
            )),
            Event::ChildSaInbound(c) => {
                // Responder, QM2 sent: the inbound SA now, so that what
                // the initiator sends before our QM3 arrives is not lost;
                // the outbound SA waits for QM3.
                let vi = g.vpn_of.get(&c.proxy_id).copied().unwrap_or(0);
                let Some(hex_id) = g.vpns.get(vi).map(|v| v.hex_id) else { return };
                let serial = self.next_serial(hex_id);
                let g = &mut self.gateways[gi];
                match child_sa_pair(&g.vpns[vi], &c, serial) {
                    Ok([inbound, outbound]) => {
                        g.children.insert(
                            c.spi_in,
                            ChildRecord {
                                vpn: vi,
                                proxy_id: c.proxy_id,
                                ids: [inbound.spec.id, outbound.spec.id],
                                initiator: false,
                                expires: None,
                                rekey_at: None,
                                rekeying: false,
                                superseded: None,
                                pending_outbound: Some(Box::new(outbound)),
                            },
                        );
                        out.push(IkeAction::Install(vec![inbound]));
                    }
                    Err(e) => out.push(IkeAction::Log(format!("gateway {name}: child SA not installed: {e}"))),
                }
            }
            Event::ChildSaUp(c) => {
                let known = esprit_ike::ChildState { proxy_id: c.proxy_id.to_string(), spi_in: c.spi_in, spi_out: c.spi_out };
                g.dirty.peer_children.insert(c.spi_in, Some(known));
                let vi = g.vpn_of.get(&c.proxy_id).copied().unwrap_or(0);
                let waited = g.negotiating.remove(&c.proxy_id).map(|t| now.saturating_duration_since(t));
                let Some(hex_id) = g.vpns.get(vi).map(|v| v.hex_id) else { return };
                // As responder, the inbound SA is in since QM2: only the
                // outbound one is left (its ids were chosen then).
                let prepared = g
                    .children
                    .get_mut(&c.spi_in)
                    .and_then(|r| r.pending_outbound.take().map(|o| (r.ids[0], *o)));
                let pair = match prepared {
                    Some((inbound_id, outbound)) => Ok((inbound_id, None, outbound)),
                    None => {
                        let serial = self.next_serial(hex_id);
                        child_sa_pair(&self.gateways[gi].vpns[vi], &c, serial).map(|[i, o]| (i.spec.id, Some(i), o))
                    }
                };
                let g = &mut self.gateways[gi];
                let vpn_name = g.vpns[vi].name.clone();
                // Outbound SAs of the pairs this one supersedes: one still
                // waiting to go in never does (it would take this newer
                // pair's place in fastpathd's slot for the proxy-ID, and
                // leave the slot empty when its own pair is deleted).
                let mut superseded_out = Vec::new();
                match pair {
                    Ok((inbound_id, inbound, outbound)) => {
                        // Make-before-break: older pairs of this proxy-ID
                        // are superseded; their outbound SAs are replaced
                        // by this one's, their inbound ones stay a while.
                        let grace = if c.initiator { REKEY_GRACE } else { REKEY_GRACE * 2 };
                        // Late in the old pair's life both sides are capped
                        // by its expiry: the side that ran the rekey still
                        // goes first (its Delete reaches the other side a
                        // second before that one would delete it).
                        let retire = if c.initiator { RETIRE_BEFORE_EXPIRY } else { RETIRE_BEFORE_EXPIRY / 2 };
                        let mut replaced = Vec::new();
                        let mut rekeyed = Vec::new();
                        for spi in g.children.of_proxy(&c.proxy_id) {
                            let Some(old) = g.children.get_mut(&spi) else { continue };
                            if spi != c.spi_in && old.superseded.is_none() {
                                let at = now + grace;
                                let last = old.expires.map(|e| e.checked_sub(retire).unwrap_or(e).max(now));
                                old.superseded = Some(last.map_or(at, |l| l.min(at)));
                                g.dirty.children.insert(spi);
                                g.due.set(None);
                                old.rekey_at = None;
                                old.rekeying = false;
                                replaced.push(old.ids[1]);
                                superseded_out.push(old.ids[1]);
                                rekeyed.push(format!("{spi:08x}"));
                            }
                        }
                        let rekey_at = (c.lifetime.seconds > 0).then(|| {
                            let per_mille = if c.initiator {
                                let (lo, hi) = REKEY_INITIATOR_PER_MILLE;
                                let mut b = [0u8; 2];
                                (self.fill)(&mut b);
                                lo + u64::from(u16::from_be_bytes(b)) % (hi - lo + 1)
                            } else {
                                REKEY_RESPONDER_PER_MILLE
                            };
                            now + Duration::from_millis(u64::from(c.lifetime.seconds) * per_mille)
                        });
                        g.touch(c.spi_in);
                        g.children.insert(
                            c.spi_in,
                            ChildRecord {
                                vpn: vi,
                                proxy_id: c.proxy_id,
                                ids: [inbound_id, outbound.spec.id],
                                initiator: c.initiator,
                                expires: (c.lifetime.seconds > 0)
                                    .then(|| now + Duration::from_secs(u64::from(c.lifetime.seconds))),
                                rekey_at,
                                rekeying: false,
                                superseded: None,
                                pending_outbound: None,
                            },
                        );
                        if !rekeyed.is_empty() {
                            out.push(IkeAction::Log(format!(
                                "gateway {name} vpn {} proxy-id {}: rekeyed: child SA {} superseded by {:08x} (its inbound SA stays {} s)",
                                vpn_name,
                                c.proxy_id,
                                rekeyed.join(", "),
                                c.spi_in,
                                grace.as_secs()
                            )));
                        }
                        out.push(IkeAction::Log(format!(
                            "gateway {name} vpn {} proxy-id {}: child SA up ({}, {child_exchange} {:08x}): SPI in {:08x} out {:08x}, {}{}, {}, lifetime {} s{}",
                            vpn_name,
                            c.proxy_id,
                            if c.initiator { "we initiated" } else { "the peer initiated" },
                            c.message_id,
                            c.spi_in,
                            c.spi_out,
                            c.suite.name(),
                            if c.pfs {
                                g.peer.config().pfs.map_or(", PFS".to_owned(), |p| format!(", PFS {}", esprit_ike::group_name(p)))
                            } else {
                                String::new()
                            },
                            c.encap.map_or("ESP".to_owned(), |e| format!("ESP in UDP {}/{}", e.local_port, e.remote_port)),
                            c.lifetime.seconds,
                            waited.map_or(String::new(), |w| format!(", {:.1} ms after the acquire", w.as_secs_f64() * 1e3)),
                        )));
                        if c.initiator && !g.peer.installs_before_answering() {
                            out.push(IkeAction::Install(inbound.into_iter().collect()));
                            self.dirty.delayed.insert(outbound.spec.id);
                            self.delayed.push((now + INITIATOR_OUTBOUND_DELAY, outbound, replaced));
                        } else if c.initiator {
                            // The same actions as when the delay ends.
                            out.push(IkeAction::Install(inbound.into_iter().collect()));
                            out.push(IkeAction::Install(vec![outbound]));
                            if !replaced.is_empty() {
                                out.push(IkeAction::Remove(replaced));
                            }
                        } else if !v1 && !replaced.is_empty() {
                            // IKEv2 responder of a rekey (RFC 7296 §2.8):
                            // the initiator installs its new inbound SA
                            // only when our answer reaches it, so we keep
                            // sending on the old pair until its Delete of
                            // that pair comes (it has the new one by then),
                            // or REKEY_GRACE passes.
                            out.push(IkeAction::Install(inbound.into_iter().collect()));
                            self.dirty.delayed.insert(outbound.spec.id);
                            self.delayed.push((now + REKEY_GRACE, outbound, replaced));
                        } else {
                            out.push(IkeAction::Install(inbound.into_iter().chain([outbound]).collect()));
                            if !replaced.is_empty() {
                                out.push(IkeAction::Remove(replaced));
                            }
                        }
                    }
                    Err(e) => out.push(IkeAction::Log(format!("gateway {name}: child SA not installed: {e}"))),
                }
                self.drop_delayed(&superseded_out);
            }
            Event::ChildSaDown { proxy_id, spi_in, spi_out, reason } => {
                self.spis.borrow_mut().release(spi_in);
                g.dirty.peer_children.insert(spi_in, None);
                g.touch(spi_in);
                let rec = g.children.remove(&spi_in);
                let ids = rec.as_ref().map(|c| c.ids.to_vec()).unwrap_or_default();
                let vpn = rec.and_then(|c| g.vpns.get(c.vpn)).map(|v| format!(" vpn {}", v.name)).unwrap_or_default();
                log(format!(
                    "gateway {name}{vpn} proxy-id {proxy_id}: child SA down (SPI in {spi_in:08x} out {spi_out:08x}): {}",
                    reason_words(&reason)
                ));
                if !ids.is_empty() {
                    self.drop_delayed(&ids);
                    // An outbound SA waiting to replace this pair's goes
                    // in first: its traffic never lacks an SA.
                    let (now_due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
                        .into_iter()
                        .partition(|(_, _, replaces)| replaces.iter().any(|r| ids.contains(r)));
                    self.delayed = wait;
                    if !now_due.is_empty() {
                        self.dirty.delayed.extend(now_due.iter().map(|(_, s, _)| s.spec.id));
                        out.push(IkeAction::Install(now_due.into_iter().map(|(_, s, _)| s).collect()));
                    }
                    out.push(IkeAction::Remove(ids));
                }
            }
            Event::ChildSaFailed { proxy_id, reason } => {
                g.negotiating.remove(&proxy_id);
                for spi in g.children.of_proxy(&proxy_id) {
                    let Some(c) = g.children.get_mut(&spi).filter(|c| c.rekeying) else { continue };
                    g.dirty.children.insert(spi);
                    g.due.set(None);
                    c.rekeying = false;
                    c.rekey_at = Some(now + REKEY_RETRY);
                }
                log(format!("gateway {name} proxy-id {proxy_id}: {child_exchange} failed: {}", reason_words(&reason)));
            }
            Event::ProposalMismatch { exchange, proposed, peer_refused: true, .. } => log(format!(
                "gateway {name}: {exchange}: the peer accepted none of our proposals ({}): NO-PROPOSAL-CHOSEN",
                proposed.join(", ")
            )),
            Event::ProposalMismatch { exchange, proposed, configured, .. } => log(format!(
                "gateway {name}: {exchange}: no proposal in common: the peer offered {}; configured {}",
                proposed.join(", "),
                configured.join(", ")
            )),
            Event::ProxyIdMismatch { message_id, proposed, configured } if v1 => log(format!(
                "gateway {name}: {child_exchange} {message_id:08x}: the peer asked for proxy-id {proposed}, which is not configured (configured: {}): refused with INVALID-ID-INFORMATION",
                configured.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "),
            )),
            // IKEv2's words already say what was asked and what is
            // configured (RFC 7296 §2.9).
            Event::ProxyIdMismatch { message_id, proposed, .. } => log(format!(
                "gateway {name}: {child_exchange} {message_id:08x}: the peer asked for proxy-id {proposed}, which is not configured: refused with TS_UNACCEPTABLE"
            )),
            Event::AuthFailed { exchange, detail } => {
                let detail = detail.strip_prefix("authentication failed: ").unwrap_or(&detail);
                log(format!("gateway {name}: {exchange}: authentication failed: {detail}"))
            }
            Event::DpdTimeout => log(format!("gateway {name}: dead peer detection: no answer, peer declared dead")),
            Event::Notify { kind, exchange } => log(format!("gateway {name}: {exchange}: notification {kind:?}")),
            Event::LifetimeIgnored { exchange, detail } => log(format!("gateway {name}: {exchange}: {detail}")),
            other => log(format!("gateway {name}: {other:?}")),
        }
    }
}

fn reason_words(r: &Reason) -> String {
    match r {
        Reason::DeletedByPeer => "deleted by the peer".into(),
        Reason::DeletedLocally => "deleted by us".into(),
        Reason::Timeout => "no answer after every retransmission".into(),
        Reason::DpdTimeout => "dead peer detection timed out".into(),
        Reason::Expired => "its lifetime ran out".into(),
        Reason::Rekeyed => "replaced by a rekey".into(),
        Reason::PeerRestarted => "the peer restarted (INITIAL-CONTACT)".into(),
        Reason::PeerNotify(n) => format!("the peer refused ({n:?})"),
        Reason::Refused(n) => format!("we refused ({n:?})"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use esprit_ike::{DirectionKeys, Suite, UdpEncap};
    use zeroize::Zeroizing;

    const CONF: &str = r#"set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 198.51.100.1/24
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set ike gateway "gw2" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "s3cret-psk" proposal "pre-g14-aes128-sha"
set vpn "v" gateway "gw2" no-replay tunnel idletime 0 proposal "nopfs-esp-aes128gcm" "nopfs-esp-aes128-sha"
set vpn "v" id 0x5 bind interface tunnel.1
set vpn "v" proxy-id check
set vpn "v" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any
set vpn "v" proxy-id local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 any
"#;

    fn gateways() -> Vec<IkeGateway> {
        let (config, _) = Config::load(CONF).unwrap();
        let ids = BTreeMap::from([("v".to_string(), 5)]);
        let (g, warnings) = ike_gateways(&config, &ids);
        assert!(warnings.is_empty(), "{warnings:?}");
        g
    }

    /// Dialup gateways and VPNs that share a tunnel interface by next-hop
    /// tunnel binding load and get no IKE; a dialup gateway says so.
    #[test]
    fn dialup_and_nhtb_are_configured_not_negotiated() {
        let (config, _) = Config::load(include_str!("../../../config/tests/data/dialup-nhtb.conf")).unwrap();
        let ids =
            BTreeMap::from([("dialvpn".to_string(), 1), ("e".to_string(), 0x10), ("w".to_string(), 0x11)]);
        let (g, warnings) = ike_gateways(&config, &ids);
        assert!(g.is_empty(), "{:?}", g.iter().map(|g| &g.config.name).collect::<Vec<_>>());
        assert_eq!(
            warnings,
            [
                r#"ike gateway "dial": dialup user-group "road" (2 users) is configured, not yet negotiated: controld answers none of its clients yet (a single client can use a dynamic peer)"#,
            ]
        );
        // One VPN on a tunnel interface with a binding is negotiated as ever.
        let mut config = config;
        config.apply("unset route 10.3.0.0/16").unwrap();
        config.apply("unset vpn w bind interface").unwrap();
        let (g, _) = ike_gateways(&config, &ids);
        assert_eq!(g.iter().map(|g| g.config.name.as_str()).collect::<Vec<_>>(), ["east"]);
    }

    /// DH group 15 (MODP 3072) is negotiated as configured, in phase 1
    /// and as PFS: never dropped to "no PFS".
    #[test]
    fn group_15_is_kept_in_phase_1_and_as_pfs() {
        let conf = CONF
            .replace("pre-g14-aes128-sha", "pre-g15-aes128-sha")
            .replace(r#""nopfs-esp-aes128gcm" "nopfs-esp-aes128-sha""#, r#""g15-esp-aes128-sha""#);
        let (config, _) = Config::load(&conf).unwrap();
        let (g, warnings) = ike_gateways(&config, &BTreeMap::from([("v".to_string(), 5)]));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(g[0].config.ike_proposals[0].group, DhGroup::Modp3072);
        assert_eq!(g[0].config.pfs, Some(DhGroup::Modp3072));
    }

    #[test]
    fn config_becomes_a_peer_config() {
        let g = gateways();
        assert_eq!(g.len(), 1);
        let c = &g[0].config;
        assert_eq!(c.name, "gw2");
        assert_eq!(c.local, "198.51.100.1:500".parse().unwrap());
        assert_eq!(c.remote, "203.0.113.2:500".parse().unwrap());
        assert_eq!(&c.psk[..], b"s3cret-psk");
        assert!(!c.aggressive);
        assert_eq!(
            c.ike_proposals,
            vec![IkeProposal {
                cipher: EncryptionAlg::Aes128Cbc,
                hash: HashAlg::Sha1,
                group: DhGroup::Modp2048
            }]
        );
        assert_eq!(c.esp_suites, vec![Suite::Aes128Gcm16, Suite::Aes128CbcSha1]);
        assert_eq!(c.pfs, None);
        assert_eq!(c.child_lifetime, Lifetime { seconds: 3600, kilobytes: 0 });
        let pids: Vec<String> = c.proxy_ids.iter().map(|p| p.to_string()).collect();
        assert_eq!(pids.len(), 2);
        assert!(pids[0].contains("10.1.1.0/24") && pids[0].contains("10.2.1.0/24"), "{pids:?}");
        let v = &g[0].vpns[0];
        assert_eq!((v.name.as_str(), v.hex_id, v.tunnel, v.replay_window), ("v", 5, 1, 0));
    }

    /// `nat-traversal` as ScreenOS means it: off unless configured; on,
    /// keepalives every 5 s by default, every N s with
    /// `keepalive-frequency N`, none with 0; `udp-checksum` is accepted
    /// with a warning (zero checksums are sent).
    #[test]
    fn fragmentation_follows_the_configuration() {
        let with = |conf: String| {
            let (config, _) = Config::load(&conf).unwrap();
            let (g, warnings) = ike_gateways(&config, &BTreeMap::from([("v".to_string(), 5)]));
            let size = session_config(&g[0].config, None).unwrap().fragment_size;
            (g[0].config.fragment_size, size, warnings)
        };
        let v2 = |line: &str| {
            let conf = CONF
                .replace("set ike gateway \"gw2\" address", "set ike gateway ikev2 \"gw2\" address")
                .replace(" Main outgoing", " outgoing");
            with(format!("{conf}{line}\n"))
        };
        assert_eq!(v2(""), (Some(1280), Some(1280), vec![]), "not said: 1280-byte datagrams");
        assert_eq!(v2(r#"set ike gateway "gw2" fragmentation size 1400"#), (Some(1400), Some(1400), vec![]));
        assert_eq!(v2(r#"set ike gateway "gw2" fragmentation disable"#), (None, None, vec![]));
        let (_, _, warnings) = with(format!("{CONF}set ike gateway \"gw2\" fragmentation size 1400\n"));
        assert_eq!(
            warnings,
            vec!["ike gateway \"gw2\": fragmentation is IKEv2's (RFC 7383): not used with IKEv1".to_string()]
        );
    }

    #[test]
    fn nat_traversal_follows_the_configuration() {
        let with = |line: &str| {
            let conf = format!("{CONF}{line}\n");
            let (config, _) = Config::load(&conf).unwrap();
            let (g, warnings) = ike_gateways(&config, &BTreeMap::from([("v".to_string(), 5)]));
            (g[0].config.nat_traversal, g[0].config.nat_keepalive.map(|d| d.as_secs()), warnings)
        };
        assert_eq!(with(""), (false, None, vec![]), "not configured: no NAT-T");
        assert_eq!(with(r#"set ike gateway "gw2" nat-traversal"#), (true, Some(5), vec![]));
        assert_eq!(
            with(r#"set ike gateway "gw2" nat-traversal keepalive-frequency 2"#),
            (true, Some(2), vec![])
        );
        assert_eq!(
            with(r#"set ike gateway "gw2" nat-traversal keepalive-frequency 0"#),
            (true, None, vec![])
        );
        let (on, every, warnings) =
            with(r#"set ike gateway "gw2" nat-traversal udp-checksum keepalive-frequency 20"#);
        assert_eq!((on, every), (true, Some(20)));
        assert_eq!(
            warnings,
            vec![
                "ike gateway \"gw2\": udp-checksum is not implemented: ESP in UDP is sent with a zero UDP checksum (RFC 3948 §2.1 allows it)"
                    .to_string()
            ]
        );
        // Turning NAT-T on or changing the frequency is a new peer
        // configuration: the gateway starts afresh under it.
        let (off, _) = Config::load(CONF).unwrap();
        let conf = format!("{CONF}set ike gateway \"gw2\" nat-traversal\n");
        let (on, _) = Config::load(&conf).unwrap();
        let ids = BTreeMap::from([("v".to_string(), 5)]);
        let (a, b) = (ike_gateways(&off, &ids).0, ike_gateways(&on, &ids).0);
        assert!(!same_peer(&a[0].config, &b[0].config));
        // Only the keepalive frequency changed: the gateway goes on (no
        // Delete, no renegotiation) with the new frequency.
        let fill: RandomFill = Rc::new(|b: &mut [u8]| b.iter_mut().for_each(|x| *x = 7));
        let mut m = IkeManager::new(b, SpiAllocator::new(), fill);
        let conf = format!("{CONF}set ike gateway \"gw2\" nat-traversal keepalive-frequency 2\n");
        let (two, _) = Config::load(&conf).unwrap();
        let actions = m.reconfigure(Instant::now(), ike_gateways(&two, &ids).0);
        assert!(
            matches!(&actions[..], [IkeAction::Log(l)] if l == "gateway gw2: NAT-keepalive frequency changed: 2 s"),
            "{actions:?}"
        );
        assert_eq!(m.gateways[0].peer.config().nat_keepalive, Some(Duration::from_secs(2)));
    }

    fn child(proxy_id: ProxyId) -> ChildSa {
        ChildSa {
            proxy_id,
            suite: Suite::Aes128CbcSha1,
            spi_in: 0xc100_0001,
            spi_out: 0xc200_0002,
            keys_in: DirectionKeys {
                encryption: Zeroizing::new(vec![1; 16]),
                integrity: Zeroizing::new(vec![2; 20]),
            },
            keys_out: DirectionKeys {
                encryption: Zeroizing::new(vec![3; 16]),
                integrity: Zeroizing::new(vec![4; 20]),
            },
            lifetime: Lifetime { seconds: 3600, kilobytes: 1000 },
            encap: Some(UdpEncap { local_port: 4500, remote_port: 4501 }),
            local: "198.51.100.1:4500".parse().unwrap(),
            remote: "203.0.113.2:4501".parse().unwrap(),
            initiator: true,
            message_id: 7,
            pfs: false,
            esn: false,
        }
    }

    #[test]
    fn child_sa_up_becomes_an_inbound_then_outbound_pair() {
        let g = gateways();
        let vpn = &g[0].vpns[0];
        let pid = vpn.proxy_ids[1];
        let [i, o] = child_sa_pair(vpn, &child(pid), 3).unwrap();
        assert_eq!(i.spec.direction, Direction::Inbound);
        assert_eq!(i.spec.id, sa_id(5, Direction::Inbound, 3));
        assert_eq!(o.spec.id, sa_id(5, Direction::Outbound, 3));
        assert_eq!((i.spec.spi, o.spec.spi), (0xc100_0001, 0xc200_0002));
        assert_eq!(i.spec.encr_key.as_bytes(), &[1; 16]);
        assert_eq!(i.spec.integ_key.as_bytes(), &[2; 20]);
        assert_eq!(o.spec.encr_key.as_bytes(), &[3; 16]);
        assert_eq!(o.spec.integ_key.as_bytes(), &[4; 20]);
        assert_eq!(i.spec.suite.name(), "aes128-sha1");
        assert_eq!(i.spec.udp_encap, Some((4500, 4501)));
        assert_eq!(o.spec.peer.to_string(), "203.0.113.2");
        assert_eq!(o.spec.local.to_string(), "198.51.100.1");
        assert_eq!((i.spec.vpn, i.spec.tunnel), (1, 1));
        assert_eq!(i.spec.proxy_id, pid.to_string());
        assert_eq!(i.spec.hard_bytes, 1000 * 1024);
        assert_eq!((i.spec.hard_secs, o.spec.hard_secs), (3600, 3600));
        assert!(i.spec.soft_bytes < i.spec.hard_bytes && i.spec.soft_bytes > 0);
        assert_eq!(i.spec.replay_window, 0, "no-replay");
        assert_eq!(i.algorithm, "esp:aes128/sha1");
    }

    /// `replay` gives the default window, `replay window N` that one.
    #[test]
    fn the_configured_replay_window_reaches_the_child_sa() {
        for (words, want) in [("replay", 128), ("replay window 2048", 2048), ("no-replay", 0)] {
            let conf = CONF.replace(r#""gw2" no-replay tunnel"#, &format!(r#""gw2" {words} tunnel"#));
            let (config, _) = Config::load(&conf).unwrap();
            let (g, _) = ike_gateways(&config, &BTreeMap::from([("v".to_string(), 5)]));
            let vpn = &g[0].vpns[0];
            assert_eq!(vpn.replay_window, want, "{words}");
            let [i, o] = child_sa_pair(vpn, &child(vpn.proxy_ids[0]), 1).unwrap();
            assert_eq!((i.spec.replay_window, i.spec.esn, o.spec.esn), (want, false, false), "{words}");
        }
    }

    /// A manager of [`gateways`] with nothing negotiated, and the first
    /// proxy-ID of its VPN.
    fn fresh_manager() -> (IkeManager, String) {
        let g = gateways();
        let pid = g[0].vpns[0].proxy_ids[0].to_string();
        let fill: RandomFill =
            Rc::new(|b: &mut [u8]| b.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8 | 1));
        (IkeManager::new(g, SpiAllocator::new(), fill), pid)
    }

    #[test]
    fn acquire_starts_main_mode_once() {
        let (mut m, pid) = fresh_manager();
        let now = Instant::now();
        assert!(m.acquire(now, 1, &pid).line.contains("Main Mode"));
        assert!(m.acquire(now, 1, &pid).line.contains("already negotiating"));
        assert!(m.acquire(now, 2, &pid).line.contains("no AutoKey VPN"));
        let sends = m.poll(now).into_iter().filter(|a| matches!(a, IkeAction::Send(_))).count();
        assert_eq!(sends, 1, "MM1");

        // The same configuration again: nothing happens, Main Mode goes on.
        assert!(m.reconfigure(now, gateways()).is_empty());
        assert!(m.acquire(now, 1, &pid).line.contains("already negotiating"));
        // One more proxy-ID: the gateway goes on (Main Mode included).
        let mut changed = gateways();
        let extra: ProxyId = "local-ip 10.1.3.0/24 remote-ip 10.2.3.0/24 ANY".parse().unwrap();
        changed[0].config.proxy_ids.push(extra);
        changed[0].vpns[0].proxy_ids.push(extra);
        let actions = m.reconfigure(now, changed.clone());
        assert!(
            matches!(&actions[..], [IkeAction::Log(l)] if l.contains("proxy-IDs changed: 3 now, 0 child SA(s)")),
            "{actions:?}"
        );
        assert!(m.acquire(now, 1, &pid).line.contains("already negotiating"));
        // Another pre-shared key: the gateway starts afresh.
        changed[0].config.psk = zeroize::Zeroizing::new(b"another-key".to_vec());
        let actions = m.reconfigure(now, changed);
        assert!(actions.iter().any(|a| matches!(a, IkeAction::Log(l) if l.contains("configured"))));
        assert!(m.acquire(now, 1, &pid).line.contains("Main Mode"));
    }

    /// Main Mode never completes here: the proxy-ID stays queued behind
    /// it. fastpathd's repeated acquire, even past RENEGOTIATE_AFTER, must
    /// not queue a second Quick Mode for it (at scale, proxy-IDs wait for
    /// their turn longer than that).
    #[test]
    fn a_queued_proxy_id_is_not_negotiated_twice() {
        let (mut m, pid) = fresh_manager();
        let now = Instant::now();
        assert!(m.acquire(now, 1, &pid).line.contains("Main Mode"));
        let p: ProxyId = pid.parse().unwrap();
        assert!(m.gateways[0].peer.is_negotiating(&p));
        let later = now + RENEGOTIATE_AFTER + Duration::from_secs(1);
        assert!(m.acquire(later, 1, &pid).line.contains("already negotiating"));
        assert!(m.acquire(later, 1, &pid).line.contains("already negotiating"));
    }

    const CONF_B: &str = r#"set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 203.0.113.2/24
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set ike gateway "gw1" address 198.51.100.1 Main outgoing-interface "ethernet0/2" preshare "s3cret-psk" proposal "pre-g14-aes128-sha"
set vpn "v" gateway "gw1" no-replay tunnel idletime 0 proposal "nopfs-esp-aes128gcm" "nopfs-esp-aes128-sha"
set vpn "v" id 0x5 bind interface tunnel.1
set vpn "v" proxy-id check
set vpn "v" proxy-id local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 any
set vpn "v" proxy-id local-ip 10.2.2.0/24 remote-ip 10.1.2.0/24 any
"#;

    /// The child lifetime of both sides set to `secs`.
    fn manager(conf: &str, secs: u32, seed: u8) -> IkeManager {
        manager_with(conf, secs, seed, true)
    }

    /// A controld that does not send esprit's vendor ID: to its peer it
    /// looks like any other implementation (strongSwan, say).
    fn foreign(conf: &str, secs: u32, seed: u8) -> IkeManager {
        manager_with(conf, secs, seed, false)
    }

    fn manager_with(conf: &str, secs: u32, seed: u8, announce_esprit: bool) -> IkeManager {
        let (config, _) = Config::load(conf).unwrap();
        let ids = BTreeMap::from([("v".to_string(), 5)]);
        let (mut g, warnings) = ike_gateways(&config, &ids);
        assert!(warnings.is_empty(), "{warnings:?}");
        g[0].config.child_lifetime = Lifetime { seconds: secs, kilobytes: 0 };
        g[0].config.announce_esprit = announce_esprit;
        let state = Rc::new(RefCell::new(u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1));
        let fill: RandomFill = Rc::new(move |b: &mut [u8]| {
            let mut x = state.borrow_mut();
            for v in b {
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                *v = (*x >> 24) as u8;
            }
        });
        IkeManager::new(g, SpiAllocator::new(), fill)
    }

    /// What one side did to fastpathd, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Fp {
        Install(Vec<u64>),
        Remove(Vec<u64>),
    }

    /// Runs both managers at `now` until neither has anything to send,
    /// delivering the datagrams; `seen` gets each poll's actions, with the
    /// side (`false`: a, `true`: b).
    fn exchange(
        now: Instant,
        a: &mut IkeManager,
        b: &mut IkeManager,
        seen: impl FnMut(bool, Vec<IkeAction>),
    ) {
        exchange_losing(now, a, b, |_, _| false, seen);
    }

    /// [`exchange`], losing the datagrams `lose` picks (by side and
    /// bytes) on the way.
    fn exchange_losing(
        now: Instant,
        a: &mut IkeManager,
        b: &mut IkeManager,
        mut lose: impl FnMut(bool, &[u8]) -> bool,
        mut seen: impl FnMut(bool, Vec<IkeAction>),
    ) {
        let mut step = |side: bool, from: &mut IkeManager, to: &mut IkeManager| -> bool {
            let acts = from.poll(now);
            let mut moved = false;
            for act in &acts {
                if let IkeAction::Send(t) = act {
                    moved = true;
                    if !lose(side, &t.bytes) {
                        let _ = to.handle_datagram(now, t.remote, t.local, &t.bytes);
                    }
                }
            }
            seen(side, acts);
            moved
        };
        loop {
            let moved_a = step(false, a, b);
            let moved_b = step(true, b, a);
            if !moved_a && !moved_b {
                return;
            }
        }
    }

    /// Runs both managers at `now` until neither has anything to send;
    /// returns what each asked of its fastpathd, and their log lines.
    fn pump(now: Instant, a: &mut IkeManager, b: &mut IkeManager) -> (Vec<Fp>, Vec<Fp>, Vec<String>) {
        let (mut fa, mut fb, mut logs) = (Vec::new(), Vec::new(), Vec::new());
        exchange(now, a, b, |side, acts| {
            let fp = if side { &mut fb } else { &mut fa };
            for act in acts {
                match act {
                    IkeAction::Send(_) => {}
                    IkeAction::Install(s) => fp.push(Fp::Install(s.iter().map(|d| d.spec.id).collect())),
                    IkeAction::Remove(ids) => fp.push(Fp::Remove(ids)),
                    IkeAction::Log(l) => logs.push(l),
                }
            }
        });
        (fa, fb, logs)
    }

    /// Runs every timer of both up to `until`, pumping after each.
    fn run_until(
        now: &mut Instant,
        until: Instant,
        a: &mut IkeManager,
        b: &mut IkeManager,
    ) -> (Vec<Fp>, Vec<Fp>) {
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        loop {
            let next = [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min();
            let Some(t) = next.filter(|t| *t <= until) else { break };
            *now = t.max(*now);
            a.handle_timeout(*now);
            b.handle_timeout(*now);
            let (x, y, _) = pump(*now, a, b);
            fa.extend(x);
            fb.extend(y);
        }
        *now = until;
        (fa, fb)
    }

    /// Towards a peer that sent esprit's vendor ID the initiator's
    /// outbound SA goes in with its inbound one (the responder's inbound SA
    /// was installed before its QM2 left); towards any other peer it waits
    /// INITIATOR_OUTBOUND_DELAY for the responder to take QM3.
    #[test]
    fn the_outbound_sa_waits_only_for_a_peer_that_is_not_esprit() {
        let (in1, out1) = (sa_id(5, Direction::Inbound, 1), sa_id(5, Direction::Outbound, 1));
        for esprit_peer in [true, false] {
            let mut a = manager(CONF, 3600, 1);
            let mut b = manager_with(CONF_B, 3600, 2, esprit_peer);
            let pid = a.gateways[0].vpns[0].proxy_ids[0].to_string();
            let t0 = Instant::now();
            let mut now = t0;
            a.acquire(now, 1, &pid);
            let (fa, fb, _) = pump(now, &mut a, &mut b);
            assert_eq!(a.gateways[0].peer.installs_before_answering(), esprit_peer);
            assert_eq!(
                fb,
                vec![Fp::Install(vec![in1]), Fp::Install(vec![out1])],
                "responder: inbound at QM2"
            );
            if esprit_peer {
                assert_eq!(fa, vec![Fp::Install(vec![in1]), Fp::Install(vec![out1])], "at once");
                assert!(a.delayed.is_empty());
            } else {
                assert_eq!(fa, vec![Fp::Install(vec![in1])], "the outbound SA waits");
                let (fa, _) = run_until(&mut now, t0 + INITIATOR_OUTBOUND_DELAY, &mut a, &mut b);
                assert_eq!(fa, vec![Fp::Install(vec![out1])]);
            }
        }
    }

    /// Child rekey by time between two controlds, make-before-break:
    /// the initiator's new inbound, then its new outbound (which replaces
    /// the old one: the old outbound id is removed only after), the
    /// responder's new pair, and only after the grace period the old
    /// pair's inbound SAs go, on both sides, with one Delete.
    #[test]
    fn child_rekey_by_time_is_make_before_break() {
        let mut a = manager(CONF, 100, 1);
        let mut b = foreign(CONF_B, 100, 2);
        let pid = a.gateways[0].vpns[0].proxy_ids[0].to_string();
        let t0 = Instant::now();
        let mut now = t0;
        assert!(a.acquire(now, 1, &pid).line.contains("Main Mode"));
        let (fa, fb, _) = pump(now, &mut a, &mut b);
        let (in1, out1) = (sa_id(5, Direction::Inbound, 1), sa_id(5, Direction::Outbound, 1));
        assert_eq!(fa, vec![Fp::Install(vec![in1])], "initiator: inbound first");
        assert_eq!(
            fb,
            vec![Fp::Install(vec![in1]), Fp::Install(vec![out1])],
            "responder: inbound at QM2, outbound at QM3"
        );
        let (fa, fb) = run_until(&mut now, t0 + INITIATOR_OUTBOUND_DELAY, &mut a, &mut b);
        assert_eq!((fa, fb), (vec![Fp::Install(vec![out1])], vec![]));

        // Nothing until 85% of the lifetime; the rekey by 90%.
        let (fa, fb) = run_until(&mut now, t0 + Duration::from_secs(84), &mut a, &mut b);
        assert_eq!((fa, fb), (vec![], vec![]));
        let (fa, fb) = run_until(&mut now, t0 + Duration::from_secs(91), &mut a, &mut b);
        let (in2, out2) = (sa_id(5, Direction::Inbound, 2), sa_id(5, Direction::Outbound, 2));
        assert_eq!(
            fa,
            vec![Fp::Install(vec![in2]), Fp::Install(vec![out2]), Fp::Remove(vec![out1])],
            "new inbound, new outbound, then the old outbound goes"
        );
        assert_eq!(fb, vec![Fp::Install(vec![in2]), Fp::Install(vec![out2]), Fp::Remove(vec![out1])]);
        assert_eq!(a.gateways[0].children.len(), 2, "the old pair's inbound SA stays for the grace period");

        // Grace: the rekeying side deletes the old pair (one Delete), the
        // peer removes its copy on that Delete. Nothing else happens.
        let (fa, fb) = run_until(&mut now, t0 + Duration::from_secs(99), &mut a, &mut b);
        assert_eq!(fa, vec![Fp::Remove(vec![in1, out1])]);
        assert_eq!(fb, vec![Fp::Remove(vec![in1, out1])]);
        assert_eq!((a.gateways[0].children.len(), b.gateways[0].children.len()), (1, 1));
        // The old lifetime's end passes without any effect; the new pair
        // is rekeyed in turn at 85-90% of ITS lifetime.
        let t_rekey2 = now;
        let (fa, fb) = run_until(&mut now, t_rekey2 + Duration::from_secs(70), &mut a, &mut b);
        assert_eq!((fa, fb), (vec![], vec![]));
        let (fa, _) = run_until(&mut now, t_rekey2 + Duration::from_secs(95), &mut a, &mut b);
        assert!(fa.contains(&Fp::Install(vec![sa_id(5, Direction::Inbound, 3)])), "{fa:?}");
    }

    /// `conf` made an IKEv2 gateway (`set ike gateway ikev2 NAME`), with
    /// these child and IKE SA lifetimes.
    fn v2_manager(conf: &str, child_secs: u32, ike_secs: u32, seed: u8) -> IkeManager {
        let conf =
            conf.replace("set ike gateway ", "set ike gateway ikev2 ").replace(" Main outgoing", " outgoing");
        let mut m = manager(&conf, child_secs, seed);
        let mut gws: Vec<IkeGateway> = m
            .gateways
            .iter()
            .map(|g| IkeGateway {
                config: g.peer.config().clone(),
                vpns: g.vpns.clone(),
                ikev2: true,
                cert: None,
            })
            .collect();
        gws[0].config.ike_lifetime = ike_secs;
        let fill = m.fill.clone();
        m = IkeManager::new(gws, SpiAllocator::new(), fill);
        assert_eq!(m.gateways[0].peer.version(), "IKEv2");
        m
    }

    /// IKEv2 between two controlds (RFC 7296): the first proxy-ID's child
    /// comes up in IKE_AUTH, the second by CREATE_CHILD_SA, each on its
    /// own SPI pair; both directions go in at once on both sides (the
    /// responder's are in before its answer leaves); the child is rekeyed
    /// by time make-before-break, and the IKE SA by time with the children
    /// staying up.
    #[test]
    fn ikev2_negotiates_each_proxy_id_as_its_own_child_and_rekeys_by_time() {
        let mut a = v2_manager(CONF, 100, 300, 1);
        let mut b = v2_manager(CONF_B, 100, 300, 2);
        let pids: Vec<String> = a.gateways[0].vpns[0].proxy_ids.iter().map(|p| p.to_string()).collect();
        let t0 = Instant::now();
        let mut now = t0;
        assert!(a.acquire(now, 1, &pids[0]).line.contains("IKE_SA_INIT, then IKE_AUTH"));
        let (fa, fb, logs) = pump(now, &mut a, &mut b);
        let (in1, out1) = (sa_id(5, Direction::Inbound, 1), sa_id(5, Direction::Outbound, 1));
        assert_eq!(fa, vec![Fp::Install(vec![in1]), Fp::Install(vec![out1])], "initiator: no outbound delay");
        assert_eq!(fb, vec![Fp::Install(vec![in1, out1])], "responder: both before IKE_AUTH's answer");
        assert!(
            logs.iter().any(|l| l.contains("gw2: IKE SA up (we initiated, aes128-sha1-prfsha1-modp2048")),
            "{logs:?}"
        );
        assert!(a.acquire(now, 1, &pids[1]).line.contains("CREATE_CHILD_SA"));
        let (fa, fb, _) = pump(now, &mut a, &mut b);
        let (in2, out2) = (sa_id(5, Direction::Inbound, 2), sa_id(5, Direction::Outbound, 2));
        assert_eq!(fa, vec![Fp::Install(vec![in2]), Fp::Install(vec![out2])]);
        assert_eq!(fb, vec![Fp::Install(vec![in2, out2])]);
        let spis = |m: &IkeManager| m.gateways[0].children.keys().copied().collect::<BTreeSet<u32>>();
        assert_eq!(spis(&a).len(), 2);
        assert!(spis(&a).is_disjoint(&spis(&b)), "each side's inbound SPIs are its own");
        assert!(a.acquire(now, 1, &pids[1]).line.contains("SA already up"));

        // Both children rekeyed by time (85-90 % of 100 s): new pairs
        // first, then the old ones go, on both sides; two pairs after.
        let (fa, fb) = run_until(&mut now, t0 + Duration::from_secs(84), &mut a, &mut b);
        assert_eq!((fa, fb), (vec![], vec![]));
        let (fa, fb) = run_until(&mut now, t0 + Duration::from_secs(91), &mut a, &mut b);
        for (side, f) in [("initiator", &fa), ("responder", &fb)] {
            let first_remove = f.iter().position(|x| matches!(x, Fp::Remove(_))).unwrap();
            let installed: Vec<u64> = f[..first_remove]
                .iter()
                .flat_map(|x| match x {
                    Fp::Install(ids) => ids.clone(),
                    Fp::Remove(_) => vec![],
                })
                .collect();
            assert!(installed.contains(&sa_id(5, Direction::Inbound, 3)), "{side}: {f:?}");
            assert!(f.contains(&Fp::Remove(vec![in1, out1])), "{side}: the old pair goes: {f:?}");
        }
        // The responder's new outbound SA waits for the initiator's
        // Delete of the old pair (the initiator has its new inbound SA by
        // then), and goes in just before that pair comes out.
        let out3 = sa_id(5, Direction::Outbound, 3);
        let at = |x: &Fp| fb.iter().position(|y| y == x).unwrap();
        assert!(!fb.contains(&Fp::Install(vec![sa_id(5, Direction::Inbound, 3), out3])), "{fb:?}");
        assert_eq!(at(&Fp::Install(vec![out3])) + 1, at(&Fp::Remove(vec![in1, out1])), "{fb:?}");
        assert_eq!((a.gateways[0].children.len(), b.gateways[0].children.len()), (2, 2));

        // The IKE SA by time (85-90 % of 300 s): the children move to
        // the new one and stay up (they are rekeyed on their own time).
        let (ike_a, ike_b) = (a.gateways[0].peer.ike_cookies(), b.gateways[0].peer.ike_cookies());
        let _ = run_until(&mut now, t0 + Duration::from_secs(271), &mut a, &mut b);
        assert_ne!(a.gateways[0].peer.ike_cookies(), ike_a);
        assert_eq!(a.gateways[0].peer.ike_cookies(), b.gateways[0].peer.ike_cookies());
        assert_ne!(b.gateways[0].peer.ike_cookies(), ike_b);
        assert_eq!((a.gateways[0].children.len(), b.gateways[0].children.len()), (2, 2));
        assert!(a.gateways[0].peer.summary().is_some_and(|s| s.established > t0 + Duration::from_secs(250)));
        assert!(b.gateways[0].peer.summary().is_some_and(|s| s.established > t0 + Duration::from_secs(250)));
    }

    /// A model of the two fastpathds for [`exchange`], as their workers
    /// keep SAs: inbound ones by id, one outbound slot per proxy-ID (an
    /// install replaces the slot's SA; removing the SA in the slot empties
    /// it, removing one already replaced does nothing). Checked whenever
    /// the datagrams have settled: a proxy-ID that had an outbound SA
    /// still has one (no packet finds the slot empty), and its inbound SA
    /// is on the other side (nothing sent on it is lost).
    #[derive(Default)]
    struct TwoFastPaths {
        inbound: [BTreeMap<u64, u32>; 2],
        slots: [BTreeMap<String, Option<(u64, u32)>>; 2],
        /// The next INFORMATIONAL request B sends is lost (once).
        lose_bs_informational: bool,
    }

    impl TwoFastPaths {
        fn apply(&mut self, side: bool, acts: &[IkeAction]) {
            let (inbound, slots) = (&mut self.inbound[usize::from(side)], &mut self.slots[usize::from(side)]);
            for act in acts {
                match act {
                    IkeAction::Install(v) => {
                        for d in v {
                            let s = &d.spec;
                            match s.direction {
                                Direction::Inbound => inbound.insert(s.id, s.spi),
                                Direction::Outbound => slots
                                    .insert(s.proxy_id.clone(), Some((s.id, s.spi)))
                                    .flatten()
                                    .map(|o| o.1),
                            };
                        }
                    }
                    IkeAction::Remove(ids) => {
                        for id in ids {
                            inbound.remove(id);
                            for slot in slots.values_mut() {
                                if slot.is_some_and(|(i, _)| i == *id) {
                                    *slot = None;
                                }
                            }
                        }
                    }
                    IkeAction::Send(_) | IkeAction::Log(_) => {}
                }
            }
        }

        /// Once the datagrams have settled: see the type.
        fn check(&self) {
            for (from, to) in [(0, 1), (1, 0)] {
                let inbound: BTreeSet<u32> = self.inbound[to].values().copied().collect();
                for (pid, slot) in &self.slots[from] {
                    let Some((_, spi)) = slot else { panic!("side {from}: no outbound SA for {pid}") };
                    assert!(inbound.contains(spi), "side {from}: outbound {spi:08x} has no inbound SA");
                }
            }
        }

        /// Delivers, then runs every timer of both up to `until`.
        fn run(&mut self, now: &mut Instant, until: Instant, a: &mut IkeManager, b: &mut IkeManager) {
            let mut lose = std::mem::take(&mut self.lose_bs_informational);
            let mut lost = |from_b: bool, bytes: &[u8]| {
                use esprit_ike::v2::wire::{ExchangeType, Header};
                let informational = Header::parse(bytes)
                    .is_ok_and(|h| h.exchange == ExchangeType::Informational && !h.is_response());
                let hit = lose && from_b && informational;
                lose &= !hit;
                hit
            };
            loop {
                exchange_losing(*now, a, b, &mut lost, |side, acts| self.apply(side, &acts));
                self.check();
                let next = [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min();
                let Some(t) = next.filter(|t| *t <= until) else { break };
                *now = t.max(*now);
                a.handle_timeout(*now);
                b.handle_timeout(*now);
            }
        }

        /// What each side holds is exactly its children's SAs (the
        /// inbound ones, and the outbound one of each proxy-ID), and the
        /// two sides' mirror each other. Returns A's inbound SPIs.
        fn assert_coherent(&self, a: &IkeManager, b: &IkeManager) -> BTreeSet<u32> {
            for (side, m) in [(0, a), (1, b)] {
                let ids: BTreeSet<u64> = m.gateways[0].children.values().flat_map(|c| c.ids).collect();
                let held: BTreeSet<u64> = self.inbound[side]
                    .keys()
                    .copied()
                    .chain(self.slots[side].values().flatten().map(|(id, _)| *id))
                    .collect();
                assert_eq!(held, ids, "side {side}");
            }
            let spis = |side: usize| -> BTreeSet<u32> { self.inbound[side].values().copied().collect() };
            let out =
                |side: usize| -> BTreeSet<u32> { self.slots[side].values().flatten().map(|o| o.1).collect() };
            assert_eq!(spis(0), out(1));
            assert_eq!(out(0), spis(1));
            spis(0)
        }
    }

    /// Both controlds get an acquire for the same proxy-ID at once and
    /// each sends CREATE_CHILD_SA for it; later both rekey its child at
    /// once (their fastpathds restarted), then the IKE SA. Each time one
    /// pair is left on both sides, installed alone, and whenever the
    /// datagrams have settled, each proxy-ID's outbound SA is in place and
    /// has its inbound one on the other side.
    #[test]
    fn ikev2_crossing_acquires_and_simultaneous_rekeys_leave_one_pair() {
        for (seed, lose) in (1..9).flat_map(|s| [(s, false), (s, true)]) {
            let mut a = v2_manager(CONF, 1000, 3000, seed);
            let mut b = v2_manager(CONF_B, 1000, 3000, seed + 10);
            let pid = |m: &IkeManager, i: usize| m.gateways[0].vpns[0].proxy_ids[i].to_string();
            let t0 = Instant::now();
            let mut now = t0;
            let mut fp = TwoFastPaths::default();
            a.acquire(now, 1, &pid(&a, 0));
            fp.run(&mut now, t0, &mut a, &mut b);
            a.acquire(now, 1, &pid(&a, 1));
            b.acquire(now, 1, &pid(&b, 1));
            // Every timer for a minute: redundant pairs deleted, superseded
            // ones retired.
            fp.run(&mut now, t0 + Duration::from_secs(60), &mut a, &mut b);
            let spis = fp.assert_coherent(&a, &b);
            assert_eq!(spis.len(), 2, "seed {seed}: one pair per proxy-ID");
            // Both rekey the second proxy-ID's child at once.
            let sa_of = |m: &IkeManager| {
                let p: ProxyId = pid(m, 1).parse().unwrap();
                m.gateways[0].children.values().find(|c| c.proxy_id == p).unwrap().ids[1]
            };
            let (a_sa, b_sa) = (sa_of(&a), sa_of(&b));
            assert!(a.rekey_now(now, a_sa).is_some() && b.rekey_now(now, b_sa).is_some());
            // B's first Delete after them is lost (and sent again).
            fp.lose_bs_informational = lose;
            let until = now + Duration::from_secs(60);
            fp.run(&mut now, until, &mut a, &mut b);
            let after = fp.assert_coherent(&a, &b);
            assert_eq!(after.len(), 2, "seed {seed}: one pair per proxy-ID after the rekeys");
            assert_eq!(after.intersection(&spis).count(), 1, "seed {seed}: the rekeyed child has new SPIs");
            // Both rekey the IKE SA at once: one new SA, the same on both
            // sides; the children and their SAs stay as they are.
            let cookies = a.gateways[0].peer.ike_cookies();
            a.gateways[0].peer.rekey_ike_now(now);
            b.gateways[0].peer.rekey_ike_now(now);
            let until = now + Duration::from_secs(60);
            fp.run(&mut now, until, &mut a, &mut b);
            assert_ne!(a.gateways[0].peer.ike_cookies(), cookies, "seed {seed}");
            assert_eq!(a.gateways[0].peer.ike_cookies(), b.gateways[0].peer.ike_cookies(), "seed {seed}");
            assert_eq!(fp.assert_coherent(&a, &b), after, "seed {seed}");
        }
    }

    /// `esn` on both VPNs: IKEv2 agrees on extended sequence numbers
    /// (RFC 7296 §3.3.2) and every SA is installed with them; on one side
    /// only, no proposal is in common and nothing is installed.
    #[test]
    fn ikev2_negotiates_esn_and_the_sas_use_it() {
        let esn = |c: &str| c.replace(" no-replay tunnel idletime 0", " no-replay tunnel esn idletime 0");
        for (a_esn, b_esn) in [(true, true), (true, false)] {
            let mut a = v2_manager(&if a_esn { esn(CONF) } else { CONF.to_string() }, 100, 300, 1);
            let mut b = v2_manager(&if b_esn { esn(CONF_B) } else { CONF_B.to_string() }, 100, 300, 2);
            let pid = a.gateways[0].vpns[0].proxy_ids[0].to_string();
            let now = Instant::now();
            a.acquire(now, 1, &pid);
            let mut installed = Vec::new();
            let mut logs = Vec::new();
            exchange(now, &mut a, &mut b, |_, acts| {
                for act in acts {
                    match act {
                        IkeAction::Install(v) => installed.extend(v.iter().map(|d| d.spec.esn)),
                        IkeAction::Log(l) => logs.push(l),
                        _ => {}
                    }
                }
            });
            if b_esn {
                assert_eq!(installed, [true; 4], "{logs:?}");
            } else {
                assert!(installed.is_empty(), "{installed:?}");
                assert!(
                    logs.iter()
                        .any(|l| l.contains("no proposal in common") || l.contains("NO-PROPOSAL-CHOSEN")),
                    "{logs:?}"
                );
            }
        }
    }

    /// A CA and two gateways' certificates (ECDSA P-256, SAN dNSName),
    /// written as PEM files in a fresh directory; a second CA that
    /// signed nothing of theirs.
    fn lab_pki() -> std::path::PathBuf {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let dir = std::env::temp_dir().join(format!(
            "esprit-pki-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::default();
            p.distinguished_name.push(DnType::CommonName, name);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            let pem = p.self_signed(&key).unwrap().pem();
            (pem, Issuer::new(p, key))
        };
        let (ca_pem, issuer) = ca("esprit lab CA");
        std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
        std::fs::write(dir.join("other-ca.pem"), ca("another CA").0).unwrap();
        for host in ["west", "east"] {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(vec![format!("{host}.example")]).unwrap();
            p.distinguished_name.push(DnType::CommonName, format!("{host}.example"));
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            std::fs::write(dir.join(format!("{host}-cert.pem")), p.signed_by(&key, &issuer).unwrap().pem())
                .unwrap();
            std::fs::write(dir.join(format!("{host}-key.pem")), key.serialize_pem()).unwrap();
        }
        dir
    }

    /// `conf` as an IKEv2 gateway that authenticates with `me`'s
    /// certificate and trusts `ca`.
    fn cert_manager(
        conf: &str,
        dir: &std::path::Path,
        me: &str,
        peer: &str,
        ca: &str,
        seed: u8,
    ) -> IkeManager {
        let d = dir.display();
        let conf = format!(
            "set pki local-cert \"mine\" certificate \"{d}/{me}-cert.pem\" key \"{d}/{me}-key.pem\"\n\
             set pki ca-cert \"ca\" file \"{d}/{ca}.pem\"\n{}\n\
             set ike gateway ikev2 GW cert my-cert \"mine\"\n\
             set ike gateway ikev2 GW cert peer-ca \"ca\"\n\
             set ike gateway ikev2 GW local-id \"{me}.example\"\n\
             set ike gateway ikev2 GW peer-id \"{peer}.example\"\n",
            conf.replace("set ike gateway ", "set ike gateway ikev2 ")
                .replace(" Main outgoing", " outgoing")
                .replace(
                    " preshare \"s3cret-psk\" proposal \"pre-g14-aes128-sha\"",
                    " proposal \"ecdsa-g19-aes128-sha256\""
                )
        );
        let gw = if conf.contains("\"gw2\"") { "gw2" } else { "gw1" };
        let conf = conf.replace("GW", gw);
        let (config, warnings) = Config::load(&conf).unwrap_or_else(|e| panic!("{e}\n{conf}"));
        assert!(warnings.is_empty(), "{warnings:?}");
        let (g, warnings) = ike_gateways(&config, &BTreeMap::from([("v".to_string(), 5)]));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(g[0].cert.is_some());
        let fill = manager(CONF, 60, seed).fill.clone();
        let mut m = IkeManager::new(g, SpiAllocator::new(), fill);
        m.set_wall_clock(esprit_ike::WallClock::read());
        m
    }

    /// IKEv2 with certificates between two controlds (RFC 7296 §2.15,
    /// RFC 7427), from `set pki` files: both authenticate and the child
    /// comes up; a gateway that trusts another CA refuses its peer
    /// (AUTHENTICATION_FAILED), installs nothing and says why.
    #[test]
    fn ikev2_with_certificates_from_pki_files() {
        let dir = lab_pki();
        let mut a = cert_manager(CONF, &dir, "west", "east", "ca", 1);
        let mut b = cert_manager(CONF_B, &dir, "east", "west", "ca", 2);
        let pid = a.gateways[0].vpns[0].proxy_ids[0].to_string();
        let now = Instant::now();
        a.acquire(now, 1, &pid);
        let (fa, fb, logs) = pump(now, &mut a, &mut b);
        let (in1, out1) = (sa_id(5, Direction::Inbound, 1), sa_id(5, Direction::Outbound, 1));
        assert_eq!(fa, vec![Fp::Install(vec![in1]), Fp::Install(vec![out1])], "{logs:?}");
        assert_eq!(fb, vec![Fp::Install(vec![in1, out1])]);

        let mut a = cert_manager(CONF, &dir, "west", "east", "ca", 3);
        let mut b = cert_manager(CONF_B, &dir, "east", "west", "other-ca", 4);
        a.acquire(now, 1, &pid);
        let (fa, fb, logs) = pump(now, &mut a, &mut b);
        assert_eq!((fa, fb), (vec![], vec![]));
        assert!(
            logs.iter().any(|l| l.contains("gw1: IKE_AUTH: authentication failed") && l.contains("CA")),
            "{logs:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Each side's new inbound SA is asked of fastpathd before the Quick
    /// Mode message that lets the peer send on it (QM3 from the
    /// initiator, QM2 from the responder) leaves.
    #[test]
    fn inbound_sas_are_installed_before_the_message_that_enables_them_leaves() {
        let mut a = manager(CONF, 3600, 1);
        let mut b = manager(CONF_B, 3600, 2);
        let pid = a.gateways[0].vpns[0].proxy_ids[0].to_string();
        let now = Instant::now();
        assert!(a.acquire(now, 1, &pid).line.contains("Main Mode"));
        // Each poll's actions as letters: S(end), I(nstall), R(emove), L(og).
        let word = |acts: &[IkeAction]| -> String {
            acts.iter()
                .map(|a| match a {
                    IkeAction::Send(_) => 'S',
                    IkeAction::Install(_) => 'I',
                    IkeAction::Remove(_) => 'R',
                    IkeAction::Log(_) => 'L',
                })
                .collect()
        };
        let mut polls: Vec<(char, String)> = Vec::new();
        exchange(now, &mut a, &mut b, |side, acts| polls.push((if side { 'b' } else { 'a' }, word(&acts))));
        let installs: Vec<&(char, String)> = polls.iter().filter(|(_, w)| w.contains('I')).collect();
        assert_eq!(installs.len(), 3, "a: inbound at QM2; b: inbound at QM2, outbound at QM3: {polls:?}");
        for (side, w) in installs {
            let (i, s) = (w.find('I'), w.find('S'));
            assert!(s.is_none() || s > i, "{side}: a message left before the install: {w}");
        }
    }

    /// A soft volume limit on the child's initiator rekeys at once; on the
    /// responder, only if the initiator has not rekeyed within the delay.
    #[test]
    fn soft_volume_limit_rekeys() {
        let mut a = manager(CONF, 0, 3);
        let mut b = foreign(CONF_B, 0, 4);
        let pid = a.gateways[0].vpns[0].proxy_ids[1].to_string();
        let t0 = Instant::now();
        let mut now = t0;
        a.acquire(now, 1, &pid);
        pump(now, &mut a, &mut b);
        run_until(&mut now, t0 + Duration::from_secs(1), &mut a, &mut b);
        let (in1, out1) = (sa_id(5, Direction::Inbound, 1), sa_id(5, Direction::Outbound, 1));
        // The responder sees it first: it waits.
        assert!(b.sa_soft_expired(now, out1).unwrap().contains("unless the peer does first"));
        let (_, fb, _) = pump(now, &mut a, &mut b);
        assert!(fb.is_empty());
        // The initiator rekeys at once.
        assert!(a.sa_soft_expired(now, out1).unwrap().contains("rekeying"));
        let (fa, fb, _) = pump(now, &mut a, &mut b);
        let (in2, out2) = (sa_id(5, Direction::Inbound, 2), sa_id(5, Direction::Outbound, 2));
        assert_eq!(fa, vec![Fp::Install(vec![in2])]);
        assert_eq!(fb, vec![Fp::Install(vec![in2]), Fp::Install(vec![out2]), Fp::Remove(vec![out1])]);
        assert!(a.sa_soft_expired(now, in1).unwrap().contains("already"));
        // The responder's delayed rekey does not happen: superseded.
        let (fa, fb) = run_until(&mut now, t0 + Duration::from_secs(15), &mut a, &mut b);
        assert_eq!(fa, vec![Fp::Install(vec![out2]), Fp::Remove(vec![out1]), Fp::Remove(vec![in1, out1])]);
        assert_eq!(fb, vec![Fp::Remove(vec![in1, out1])]);
        assert_eq!(b.gateways[0].children.len(), 1);
    }

    /// After a fastpathd restart the re-installed pair is rekeyed at
    /// once, also from the child's responder (new SPIs and keys).
    #[test]
    fn a_reinstalled_pair_is_rekeyed_at_once_by_either_side() {
        let mut a = manager(CONF, 3600, 5);
        let mut b = foreign(CONF_B, 3600, 6);
        let pid = a.gateways[0].vpns[0].proxy_ids[0].to_string();
        let t0 = Instant::now();
        let mut now = t0;
        a.acquire(now, 1, &pid);
        pump(now, &mut a, &mut b);
        run_until(&mut now, t0 + Duration::from_secs(1), &mut a, &mut b);
        let (in1, out1) = (sa_id(5, Direction::Inbound, 1), sa_id(5, Direction::Outbound, 1));
        // b (the responder) restarted its fastpathd: it rekeys now.
        let line = b.rekey_now(now, in1).unwrap();
        assert!(line.contains("re-installed after a fastpathd restart: rekeying child SA"), "{line}");
        assert!(b.rekey_now(now, out1).is_some(), "the pair's other SA: no second Quick Mode");
        let (fa, fb, _) = pump(now, &mut a, &mut b);
        let (in2, out2) = (sa_id(5, Direction::Inbound, 2), sa_id(5, Direction::Outbound, 2));
        // b does not announce esprit, but a does: b's new outbound SA at once.
        assert_eq!(
            fb,
            vec![Fp::Install(vec![in2]), Fp::Install(vec![out2]), Fp::Remove(vec![out1])],
            "{fb:?}"
        );
        assert_eq!(
            fa,
            vec![Fp::Install(vec![in2]), Fp::Install(vec![out2]), Fp::Remove(vec![out1])],
            "{fa:?}"
        );
        assert!(b.rekey_now(now, sa_id(9, Direction::Inbound, 1)).is_none(), "not an IKE SA");
    }

    /// A dynamic peer (`dynamic ID Aggr`): unknown until it connects; its
    /// Aggressive Mode is routed to the gateway by its identity, and the
    /// pair is installed; before, an acquire says why nothing happens.
    #[test]
    fn dynamic_peer_is_found_by_its_identity() {
        let hq = CONF.replace(r#"address 203.0.113.2 Main"#, r#"dynamic road.example.net Aggr"#).replace(
            "set vpn \"v\" gateway",
            "set ike gateway \"gw2\" local-id hq.example.net\nset vpn \"v\" gateway",
        );
        let road = CONF_B.replace(" Main ", " Aggr ").replace(
            "set vpn \"v\" gateway",
            "set ike gateway \"gw1\" local-id road.example.net\nset vpn \"v\" gateway",
        );
        let mut a = manager(&hq, 3600, 5);
        let mut b = manager(&road, 3600, 6);
        assert!(a.gateways[0].peer.config().dynamic);
        let now = Instant::now();
        let pid_a = a.gateways[0].vpns[0].proxy_ids[0].to_string();
        assert!(a.acquire(now, 1, &pid_a).line.contains("not known yet"), "no address to send to");
        let pid_b = b.gateways[0].vpns[0].proxy_ids[0].to_string();
        assert!(b.acquire(now, 1, &pid_b).line.contains("Main Mode, then Quick Mode"));
        let (fa, fb, logs) = pump(now, &mut a, &mut b);
        let (in1, out1) = (sa_id(5, Direction::Inbound, 1), sa_id(5, Direction::Outbound, 1));
        assert_eq!(fa, vec![Fp::Install(vec![in1]), Fp::Install(vec![out1])], "{logs:?}");
        // b initiated towards an esprit peer: its outbound SA at once.
        assert_eq!(fb, vec![Fp::Install(vec![in1]), Fp::Install(vec![out1])]);
        assert_eq!(a.gateways[0].peer.addresses().1, "203.0.113.2:500".parse().unwrap());
        // A datagram from a stranger that is no Aggressive Mode with that
        // identity finds no gateway: counted, not logged.
        let r = a.handle_datagram(
            now,
            "198.51.100.1:500".parse().unwrap(),
            "192.0.2.9:500".parse().unwrap(),
            &[0; 28],
        );
        assert!(r.is_ok());
        assert_eq!(a.discards().get(esprit_ike::Discard::NoGateway), 1);
    }

    /// An IKEv2 gateway whose configuration goes: its IKE SA is deleted
    /// with the peer (one Delete, closing the children with it), not left
    /// behind a child's Delete that the session never gets to send.
    #[test]
    fn an_ikev2_gateway_removed_deletes_its_ike_sa_with_the_peer() {
        let mut a = v2_manager(CONF, 3600, 28800, 3);
        let mut b = v2_manager(CONF_B, 3600, 28800, 4);
        let now = Instant::now();
        for pid in a.gateways[0].vpns[0].proxy_ids.clone() {
            a.acquire(now, 1, &pid.to_string());
            pump(now, &mut a, &mut b);
        }
        assert_eq!((a.gateways[0].children.len(), b.gateways[0].children.len()), (2, 2));
        let acts = a.reconfigure(now, Vec::new());
        let sends: Vec<&Transmit> =
            acts.iter().filter_map(|x| if let IkeAction::Send(t) = x { Some(t) } else { None }).collect();
        assert_eq!(sends.len(), 1, "{acts:?}");
        for t in sends {
            let _ = b.handle_datagram(now, t.remote, t.local, &t.bytes);
        }
        let (_, fb, _) = pump(now, &mut a, &mut b);
        assert!(!b.gateways[0].peer.is_established());
        assert!(b.gateways[0].children.is_empty());
        assert_eq!(fb.iter().filter(|x| matches!(x, Fp::Remove(_))).count(), 2, "{fb:?}");
    }

    /// Removing one proxy-ID deletes only its pair (a Delete to the peer,
    /// which removes its copy); the other pair and the ISAKMP SA stay.
    #[test]
    fn removing_a_proxy_id_deletes_only_its_sas() {
        let mut a = manager(CONF, 3600, 7);
        let mut b = manager(CONF_B, 3600, 8);
        let t0 = Instant::now();
        let mut now = t0;
        for pid in a.gateways[0].vpns[0].proxy_ids.clone() {
            a.acquire(now, 1, &pid.to_string());
            pump(now, &mut a, &mut b);
        }
        run_until(&mut now, t0 + Duration::from_secs(1), &mut a, &mut b);
        assert_eq!((a.gateways[0].children.len(), b.gateways[0].children.len()), (2, 2));
        let kept = a.gateways[0].vpns[0].proxy_ids[0];
        let mut g = {
            let (config, _) = Config::load(CONF).unwrap();
            ike_gateways(&config, &BTreeMap::from([("v".to_string(), 5)])).0
        };
        g[0].config.child_lifetime = Lifetime { seconds: 3600, kilobytes: 0 };
        g[0].config.proxy_ids.truncate(1);
        g[0].vpns[0].proxy_ids.truncate(1);
        let log = a.reconfigure(now, g);
        assert!(
            matches!(&log[..], [IkeAction::Log(l)] if l.contains("1 child SA(s) of removed ones deleted")),
            "{log:?}"
        );
        let (fa, fb, _) = pump(now, &mut a, &mut b);
        let gone = sa_id(5, Direction::Inbound, 2);
        assert_eq!(fa, vec![Fp::Remove(vec![gone, sa_id(5, Direction::Outbound, 2)])]);
        assert_eq!(fb, vec![Fp::Remove(vec![gone, sa_id(5, Direction::Outbound, 2)])]);
        assert_eq!(a.gateways[0].children.len(), 1);
        assert!(a.gateways[0].children.values().all(|c| c.proxy_id == kept));
        assert!(a.gateways[0].peer.is_established());
    }
}
