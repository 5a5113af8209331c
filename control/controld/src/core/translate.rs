//! From the configuration to what fastpathd must hold: a pure function.
//!
//! [`translate`] reads a validated [`Config`] and gives the [`Desired`]
//! state of fastpathd: its route table, tunnel interfaces, per-tunnel
//! proxy-ID tables and the manual-key SAs, each with the control plane's
//! SA id. Nothing here does I/O; [`crate::core::plan`] turns the difference
//! between two such states into requests.
//!
//! Numbering (stable, so that a restarted controld finds its SAs again):
//!
//! * fastpathd's VPN number is the tunnel interface's number: fastpathd has
//!   one VPN (one proxy-ID table) per tunnel interface. Several manual-key
//!   VPNs may share one (esprit's extension, `control/config/REFERENCE.md`
//!   §6.3) and their proxy-IDs make up the table. Several AutoKey VPNs
//!   share one only by next-hop tunnel binding (§6.5), which is configured
//!   but not yet programmed: such a tunnel interface gets no table, so
//!   its traffic is dropped (`tunnel-unbound`).
//! * an SA's id is [`sa_id`]: the VPN's HEX ID (the `id` of `get sa`), the
//!   direction and a serial number (IKE counts rekeys there; a manual-key
//!   SA's serial moves on when its SPI changes, [`ManualSerials`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use esprit_config::model::InterfaceName;
use esprit_config::proposal::{esp_suite, esp_words, Hash, Suite};
use esprit_config::{Config, InterfaceIp, VpnKind};
use esprit_fastpath_api::{Direction, Key, NextHopSpec, RouteSpec, SaSpec};

use crate::core::spi::SpiAllocator;

/// MTU of a tunnel interface without `set interface tunnel.N mtu`.
pub const DEFAULT_TUNNEL_MTU: u16 = 1400;

/// The control plane's id of an SA: HEX ID in the high 32 bits, then the
/// direction (bit 31 set for outbound), then a 31-bit serial.
pub fn sa_id(hex_id: u32, direction: Direction, serial: u32) -> u64 {
    let dir = match direction {
        Direction::Inbound => 0,
        Direction::Outbound => 1u64 << 31,
    };
    (u64::from(hex_id) << 32) | dir | u64::from(serial & 0x7fff_ffff)
}

/// The HEX ID of an SA id.
pub fn hex_id_of(id: u64) -> u32 {
    (id >> 32) as u32
}

/// One SA controld wants installed, with what `get sa` shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredSa {
    /// What fastpathd gets (`last_seq` 0; the SA manager sets it).
    pub spec: SaSpec,
    /// The VPN it belongs to.
    pub vpn_name: String,
    /// `esp:aes128/sha1`, `esp:aes128gcm`.
    pub algorithm: String,
    /// A manual-key SA (from the configuration), not one IKE negotiated.
    pub manual: bool,
}

/// A proxy-ID of an AutoKey VPN: programmed in the table, no SA until IKE
/// negotiates one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingProxyId {
    /// The VPN's HEX ID.
    pub hex_id: u32,
    /// The VPN.
    pub vpn_name: String,
    /// The peer's address, if static.
    pub peer: Option<IpAddr>,
    /// First phase-2 algorithm proposed.
    pub algorithm: String,
    /// The proxy-ID in ScreenOS words.
    pub proxy_id: String,
}

/// Everything fastpathd should hold for a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// The whole route table, in a fixed order: per prefix, the candidate
    /// of lowest metric (see [`select_routes`]).
    pub routes: Vec<RouteSpec>,
    /// Every route the configuration gives (connected subnets, then static
    /// routes, in order) with its metric: the losers of [`Desired::routes`]
    /// take over when a winner is withdrawn (`withdraw-routes`).
    pub route_candidates: Vec<(u32, RouteSpec)>,
    /// tunnel number -> (MTU, fastpathd VPN number).
    pub tunnels: BTreeMap<u32, (u16, Option<u32>)>,
    /// fastpathd VPN number -> (proxy-id check, proxy-IDs in ScreenOS words).
    pub vpns: BTreeMap<u32, (bool, Vec<String>)>,
    /// SA id -> SA.
    pub sas: BTreeMap<u64, DesiredSa>,
    /// AutoKey proxy-IDs waiting for IKE.
    pub pending: Vec<PendingProxyId>,
    /// `set flow tcp-mss N`.
    pub tcp_mss: Option<u16>,
}

/// The route table fastpathd gets: per prefix, the candidate of lowest
/// metric (the first of equals) that is not `withdrawn`; a prefix whose
/// candidates are all withdrawn has no route. In the candidates' order.
pub fn select_routes(
    candidates: &[(u32, RouteSpec)],
    withdrawn: impl Fn(&RouteSpec) -> bool,
) -> Vec<RouteSpec> {
    let mut best: BTreeMap<&str, (u32, usize)> = BTreeMap::new();
    for (i, (metric, spec)) in candidates.iter().enumerate() {
        if withdrawn(spec) {
            continue;
        }
        match best.get(spec.prefix.as_str()) {
            Some((m, _)) if *m <= *metric => {}
            _ => {
                best.insert(&spec.prefix, (*metric, i));
            }
        }
    }
    let mut chosen: Vec<usize> = best.into_values().map(|(_, i)| i).collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| candidates[i].1.clone()).collect()
}

/// `withdraw-routes` without a fallback: a route that may be withdrawn and
/// has no other route to its prefix hands its traffic to a wider route —
/// in clear if that one leaves by a port (the default route, usually).
fn withdrawal_warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for v in config.vpns().filter(|v| v.withdraw_routes) {
        let Some(tunnel) = &v.bind else { continue };
        let remotes: Vec<_> = config.proxy_ids(&v.name).iter().map(|p| p.remote).collect();
        for r in config.routes().iter().filter(|r| &r.interface == tunnel) {
            let inside = remotes.iter().any(|m| m.covers(&r.prefix));
            let fallback = config.routes().iter().any(|o| o.prefix == r.prefix && &o.interface != tunnel);
            if inside && !fallback {
                out.push(format!(
                    "vpn \"{}\" withdraw-routes: route {} interface {tunnel} has no other route to fall back on: while it is withdrawn its traffic follows a wider route, in clear if that leaves by a port (add set route {} interface null metric 250)",
                    v.name, r.prefix, r.prefix
                ));
            }
        }
    }
    out
}

/// What [`translate`] found wrong: the configuration is valid, but
/// fastpathd cannot be programmed from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A route or SA goes out of a port with no Linux device.
    #[error(
        "{what}: interface \"{interface}\" has no Linux device: add set interface {interface} port NETDEV, or controld --port-map {interface}=NETDEV"
    )]
    NoDevice { what: String, interface: String },
    /// fastpathd speaks IPv4 only.
    #[error("{what}: {addr} is IPv6, and the fast path carries IPv4 tunnels only")]
    Ipv6 { what: String, addr: IpAddr },
    /// A manual-key VPN's outgoing interface has no address of its own.
    #[error(
        "vpn \"{vpn}\": outgoing-interface \"{interface}\" has no IPv4 address to be our end of the tunnel"
    )]
    NoLocalAddress { vpn: String, interface: String },
    /// Two inbound SAs with one SPI: fastpathd could not tell them apart.
    #[error("vpn \"{vpn}\": inbound SPI {spi:x} is already vpn \"{other}\"'s: give each manual-key VPN its own LOCAL-SPI")]
    SpiCollision { vpn: String, spi: u32, other: String },
    /// A VPN has no HEX ID (the caller assigns them, see [`crate::core::ids`]).
    #[error("vpn \"{0}\" has no HEX ID")]
    NoHexId(String),
}

/// The result of [`translate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// What fastpathd should hold.
    pub desired: Desired,
    /// Things left out, worth a line in the log.
    pub warnings: Vec<String>,
    /// The serials of the manual-key SAs (see [`ManualSerials`]): persist
    /// them, and pass them to the next translation.
    pub serials: ManualSerials,
}

/// The serial of every manual-key SA: `sa_id(HEX ID, direction, 0)` ->
/// (SPI, serial). A manual SA keeps its serial while its SPI stays; a new
/// SPI takes the next serial, so the new SA has a new id and can be
/// installed next to the old one (make-before-break, [`crate::core::plan`]). Kept
/// in the state directory, so a restarted controld computes the same ids
/// and adopts what fastpathd holds. A VPN seen for the first time has
/// serial 0.
pub type ManualSerials = BTreeMap<u64, (u32, u32)>;

/// The serial of a manual SA with SPI `spi` whose previous (SPI, serial)
/// was `previous`.
pub fn manual_serial(previous: Option<(u32, u32)>, spi: u32) -> u32 {
    match previous {
        None => 0,
        Some((old_spi, serial)) if old_spi == spi => serial,
        Some((_, serial)) => (serial + 1) & 0x7fff_ffff,
    }
}

/// `esp:aes128/sha1`, `esp:aes256/sha256`, `esp:aes128gcm` (as `get sa`).
pub fn algorithm_words(suite: Suite) -> String {
    let (cipher, hash) = esp_words(suite);
    match hash {
        _ if cipher.is_aead() => format!("esp:{}", cipher.word()),
        Some(Hash::Sha256) => format!("esp:{}/sha256", cipher.word()),
        _ => format!("esp:{}/sha1", cipher.word()),
    }
}

fn v4(what: impl Fn() -> String, addr: IpAddr) -> Result<Ipv4Addr, TranslateError> {
    match addr {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(TranslateError::Ipv6 { what: what(), addr }),
    }
}

/// Translates a configuration. `port_map` (ScreenOS port name -> Linux
/// device, from controld's command line) wins over `set interface X port`;
/// `hex_ids` gives every VPN its HEX ID.
pub fn translate(
    config: &Config,
    port_map: &BTreeMap<String, String>,
    hex_ids: &BTreeMap<String, u32>,
) -> Result<Translation, TranslateError> {
    translate_with_serials(config, port_map, hex_ids, &ManualSerials::new())
}

/// [`translate`], given the serials of the manual SAs of the previous
/// translation (or the state directory).
pub fn translate_with_serials(
    config: &Config,
    port_map: &BTreeMap<String, String>,
    hex_ids: &BTreeMap<String, u32>,
    previous_serials: &ManualSerials,
) -> Result<Translation, TranslateError> {
    // Entries of VPNs that are gone stay: a VPN unset and set again with
    // the same SPI gets its id back, and with it its sequence number record.
    let mut serials = previous_serials.clone();
    let mut warnings = Vec::new();
    let mut desired = Desired { tcp_mss: config.tcp_mss(), ..Desired::default() };
    let device = |name: &InterfaceName| -> Option<String> {
        port_map.get(name.as_str()).cloned().or_else(|| config.interface(name.as_str())?.port.clone())
    };

    // Routes: connected subnets of the ports (metric 0), then static routes;
    // one route per prefix, the lowest metric wins (fastpathd has no metric).
    let mut candidates: Vec<(u32, RouteSpec)> = Vec::new();
    let add_route =
        |metric: u32, spec: RouteSpec, list: &mut Vec<(u32, RouteSpec)>| list.push((metric, spec));
    for i in config.interfaces() {
        if i.name.is_tunnel() {
            continue;
        }
        let Some(InterfaceIp::Address(a)) = &i.ip else { continue };
        let Some(subnet) = a.subnet() else { continue };
        if !subnet.is_ipv4() {
            warnings
                .push(format!("interface {}: IPv6 address {a} is not programmed (IPv4 fast path)", i.name));
            continue;
        }
        match device(&i.name) {
            Some(port) => add_route(
                0,
                RouteSpec { prefix: subnet.to_string(), next_hop: NextHopSpec::Port { port, gateway: None } },
                &mut candidates,
            ),
            None => warnings.push(format!(
                "interface {}: no Linux device (set interface {} port NETDEV): its connected route {subnet} is not programmed",
                i.name, i.name
            )),
        }
    }
    for r in config.routes() {
        let what = || format!("route {} interface {}", r.prefix, r.interface);
        if !r.prefix.is_ipv4() {
            warnings.push(format!("{}: IPv6 route not programmed (IPv4 fast path)", what()));
            continue;
        }
        let next_hop = match r.interface.tunnel_number() {
            Some(tunnel) => NextHopSpec::Tunnel { tunnel },
            None if r.interface.is_null() => NextHopSpec::Null,
            None => {
                let port = device(&r.interface).ok_or_else(|| TranslateError::NoDevice {
                    what: what(),
                    interface: r.interface.to_string(),
                })?;
                let gateway = r.gateway.map(|g| v4(what, g)).transpose()?;
                NextHopSpec::Port { port, gateway }
            }
        };
        add_route(r.metric, RouteSpec { prefix: r.prefix.to_string(), next_hop }, &mut candidates);
    }
    desired.routes = select_routes(&candidates, |_| false);
    desired.route_candidates = candidates;
    warnings.extend(withdrawal_warnings(config));

    // Tunnel interfaces.
    for i in config.interfaces() {
        if let Some(n) = i.name.tunnel_number() {
            desired.tunnels.insert(n, (i.mtu.unwrap_or(DEFAULT_TUNNEL_MTU), None));
        }
    }

    // VPNs: one fastpathd VPN per tunnel interface.
    let mut spis = SpiAllocator::new();
    let mut spi_owner: BTreeMap<u32, String> = BTreeMap::new();
    let shared = config.shared_tunnels();
    for v in config.vpns() {
        let hex_id = *hex_ids.get(&v.name).ok_or_else(|| TranslateError::NoHexId(v.name.clone()))?;
        let Some(tunnel) = v.bind.as_ref().and_then(|b| b.tunnel_number()) else {
            warnings.push(format!(
                "vpn \"{}\" is not bound to a tunnel interface: nothing routes into it, it is not programmed",
                v.name
            ));
            continue;
        };
        // Several AutoKey VPNs on one tunnel interface are told apart by
        // next-hop tunnel binding, which fastpathd (one VPN per tunnel
        // interface) does not do yet: configured, not programmed, so
        // what routes send there is dropped, never sent on another
        // VPN's SA.
        if !v.is_manual() && v.bind.as_ref().is_some_and(|b| shared.contains_key(b)) {
            let nhtb: Vec<String> =
                config.nhtb().filter(|n| n.vpn == v.name).map(|n| format!("nhtb {}", n.next_hop)).collect();
            warnings.push(format!(
                "vpn \"{}\": tunnel.{tunnel} carries several VPNs told apart by next-hop tunnel binding ({}): configured, not yet negotiated: what routes send to its next hop is dropped",
                v.name,
                nhtb.join(", ")
            ));
            continue;
        }
        let proxy_ids: Vec<String> = config.proxy_ids(&v.name).iter().map(|p| p.to_string()).collect();
        if let Some(t) = desired.tunnels.get_mut(&tunnel) {
            t.1 = Some(tunnel);
        }
        let table = desired.vpns.entry(tunnel).or_insert_with(|| (false, Vec::new()));
        // One VPN on the tunnel: check as configured; several (manual-key
        // VPNs only): the union is always checked.
        table.0 = if table.1.is_empty() { v.proxy_id_check } else { true };
        table.1.extend(proxy_ids.iter().cloned());
        match &v.kind {
            VpnKind::AutoKey(a) => {
                let algorithm = config
                    .p2_suites(&v.name)
                    .first()
                    .map(|s| algorithm_words(s.esp))
                    .unwrap_or_else(|| "esp:-".into());
                let peer = config.gateway(&a.gateway).and_then(|g| match &g.peer {
                    esprit_config::model::GatewayPeer::Address(a) => Some(*a),
                    _ => None,
                });
                for p in proxy_ids {
                    desired.pending.push(PendingProxyId {
                        hex_id,
                        vpn_name: v.name.clone(),
                        peer,
                        algorithm: algorithm.clone(),
                        proxy_id: p,
                    });
                }
            }
            VpnKind::Manual(m) => {
                let vpn_what = || format!("vpn \"{}\"", v.name);
                let local = match config.interface(m.outgoing_interface.as_str()).and_then(|i| i.ip.clone()) {
                    Some(InterfaceIp::Address(a)) => v4(vpn_what, a.addr)?,
                    _ => {
                        return Err(TranslateError::NoLocalAddress {
                            vpn: v.name.clone(),
                            interface: m.outgoing_interface.to_string(),
                        })
                    }
                };
                let peer = v4(vpn_what, m.gateway)?;
                if spis.reserve(m.local_spi).is_err() {
                    return Err(TranslateError::SpiCollision {
                        vpn: v.name.clone(),
                        spi: m.local_spi,
                        other: spi_owner.get(&m.local_spi).cloned().unwrap_or_default(),
                    });
                }
                spi_owner.insert(m.local_spi, v.name.clone());
                let suite = esp_suite(m.cipher, m.auth.as_ref().map(|(h, _)| *h));
                // Zeroizing copies (validated hex, so to_bytes succeeds).
                let encr = m.encryption_key.to_bytes().unwrap_or_default();
                let integ = m.auth.as_ref().and_then(|(_, k)| k.to_bytes()).unwrap_or_default();
                let proxy_id = proxy_ids.first().cloned().unwrap_or_default();
                for (direction, spi) in
                    [(Direction::Inbound, m.local_spi), (Direction::Outbound, m.remote_spi)]
                {
                    let base = sa_id(hex_id, direction, 0);
                    let serial = manual_serial(previous_serials.get(&base).copied(), spi);
                    serials.insert(base, (spi, serial));
                    let id = sa_id(hex_id, direction, serial);
                    let spec = SaSpec {
                        id,
                        direction,
                        spi,
                        suite: suite.into(),
                        encr_key: Key::new(encr.to_vec()),
                        integ_key: Key::new(integ.to_vec()),
                        iv_key: None,
                        local,
                        peer,
                        udp_encap: None,
                        // Both ends configure these alike (RFC 4303 §2.2.1:
                        // nothing tells a manual SA's peer about ESN).
                        esn: m.esn,
                        replay_window: if m.replay { m.replay_window } else { 0 },
                        vpn: tunnel,
                        tunnel,
                        proxy_id: proxy_id.clone(),
                        soft_bytes: 0,
                        hard_bytes: 0,
                        // Manual keys never expire; idle time is for IKE SAs.
                        idle_secs: 0,
                        hard_secs: 0,
                        last_seq: 0,
                    };
                    desired.sas.insert(
                        id,
                        DesiredSa {
                            spec,
                            vpn_name: v.name.clone(),
                            algorithm: algorithm_words(suite),
                            manual: true,
                        },
                    );
                }
            }
        }
    }
    Ok(Translation { desired, warnings, serials })
}
