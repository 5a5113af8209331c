//! The whole configuration: objects, `apply`, `load`, and validation of
//! cross references.
//!
//! Guarantees:
//!
//! * [`Config::apply`] is atomic: it applies the line to a copy, validates
//!   the whole copy, and only then replaces `self`. A line that fails leaves
//!   the configuration exactly as it was.
//! * A [`Config`] obtained from [`Config::default`], [`Config::apply`] or
//!   [`Config::load`] is always valid as a whole: every name it refers to
//!   exists and is of the right kind, no tunnel interface has two VPNs
//!   (except manual-key VPNs with distinct proxy-IDs, esprit's extension,
//!   and AutoKey VPNs told apart by next-hop tunnel binding, [`Nhtb`]),
//!   no VPN has a duplicate proxy-ID, every proposal resolves to suites
//!   esprit implements.
//! * [`Config::load`] accepts forward references (a file may bind a VPN to
//!   `tunnel.1` before the line that creates `tunnel.1`, as the seed's
//!   sample does): it applies every line, then validates once; a reference
//!   that is still dangling is reported on the line that made it.
//!   [`Config::apply`], used interactively, needs the referenced objects to
//!   exist already, as ScreenOS does.
//! * `Config::load(&c.to_lines().join("\n"))` gives back a configuration
//!   equal to `c`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use esprit_policy::{Prefix, ProxyId, Service, MAX_PROXY_IDS};

use crate::error::{q, ConfigError, ErrorKind, Warning};
use crate::model::*;
use crate::parse::parse_line;
use crate::proposal::{
    resolve_p1, resolve_p2, DhGroup, P1Proposal, P1Suite, P2Proposal, P2Suite, ProposalChoice,
};
use crate::secret::Secret;

mod dialup;
pub(crate) use dialup::identity_kind;
pub use dialup::{Nhtb, User, UserGroup, MAX_NHTB, MAX_USERS, MAX_USER_GROUPS};

/// The address of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InterfaceIp {
    /// `ip A/L`.
    Address(InterfaceAddress),
    /// `ip unnumbered interface IF`: borrows the address of IF.
    Unnumbered(InterfaceName),
}

/// An interface: a port (`ethernet0/2`) or a tunnel interface (`tunnel.1`).
/// It exists while it has at least one setting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Interface {
    /// Its name.
    pub name: InterfaceName,
    /// `zone`.
    pub zone: Option<String>,
    /// `ip`.
    pub ip: Option<InterfaceIp>,
    /// `mtu`.
    pub mtu: Option<u16>,
    /// `port`: the Linux network device (ports only).
    pub port: Option<String>,
}

impl Interface {
    fn new(name: InterfaceName) -> Interface {
        Interface { name, zone: None, ip: None, mtu: None, port: None }
    }

    fn is_empty(&self) -> bool {
        self.zone.is_none() && self.ip.is_none() && self.mtu.is_none() && self.port.is_none()
    }
}

/// An IKE gateway (phase 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeGateway {
    /// Its name.
    pub name: String,
    /// The peer.
    pub peer: GatewayPeer,
    /// IKEv1 or IKEv2 (`set ike gateway ikev2 NAME ...`).
    pub version: IkeVersion,
    /// Main or aggressive mode (IKEv1 only).
    pub mode: IkeMode,
    /// The interface whose address is our end.
    pub outgoing_interface: InterfaceName,
    /// The pre-shared key.
    pub preshare: Secret,
    /// Phase-1 proposals.
    pub proposals: ProposalChoice,
    /// NAT traversal, when enabled.
    pub nat_traversal: Option<NatTraversal>,
    /// Dead peer detection, when configured.
    pub dpd: Option<Dpd>,
    /// Our IKE identity, when not the default (our address).
    pub local_id: Option<Identity>,
    /// The identity expected of the peer, when not the default.
    pub peer_id: Option<Identity>,
    /// `cert my-cert NAME`: our certificate (`set pki local-cert`).
    pub my_cert: Option<String>,
    /// `cert peer-ca NAME`: the CA of the peer's (`set pki ca-cert`).
    pub peer_ca: Option<String>,
    /// `fragmentation ...` when given (IKEv2); else fragments of
    /// [`DEFAULT_FRAGMENT_SIZE`].
    pub fragmentation: Option<Fragmentation>,
}

/// `set pki local-cert NAME certificate FILE key FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCert {
    /// Its name.
    pub name: String,
    /// PEM certificate file: the end-entity certificate, then any
    /// intermediates to send.
    pub certificate: String,
    /// PEM private key file (PKCS#8).
    pub key: String,
}

/// AutoKey IKE or manual key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VpnKind {
    /// Negotiated with IKE through a gateway.
    AutoKey(AutoKey),
    /// Static SAs.
    Manual(ManualKey),
}

/// A VPN (phase 2), bound to a tunnel interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpn {
    /// Its name.
    pub name: String,
    /// AutoKey IKE or manual key.
    pub kind: VpnKind,
    /// `id N` (the HEX ID of `get sa`).
    pub id: Option<u32>,
    /// `bind interface tunnel.N`.
    pub bind: Option<InterfaceName>,
    /// VPN monitor settings, when enabled.
    pub monitor: Option<Monitor>,
    /// `proxy-id check`.
    pub proxy_id_check: bool,
    /// The configured proxy-IDs, in order (a manual-key VPN has at most one).
    pub proxy_ids: Vec<ProxyIdSpec>,
    /// `withdraw-routes` (esprit): while one of the proxy-IDs is DOWN, the
    /// routes into the bound tunnel interface that lie inside its remote
    /// prefix are withdrawn (controld decides; see its README).
    pub withdraw_routes: bool,
}

impl Vpn {
    /// True when routed packets must match a proxy-ID: `proxy-id check`,
    /// or more than one proxy-ID (KB16008: then the check is always done).
    pub fn enforces_proxy_ids(&self) -> bool {
        self.proxy_id_check || self.proxy_ids.len() > 1
    }

    /// True for a manual-key VPN.
    pub fn is_manual(&self) -> bool {
        matches!(self.kind, VpnKind::Manual(_))
    }
}

/// A custom service: one or more members (protocol and ports).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomService {
    /// Its name as first given.
    pub name: String,
    /// Its members in order.
    pub members: Vec<Service>,
}

/// Where a whole-configuration error comes from, to find its line when
/// loading a file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Site {
    Unnumbered(InterfaceName),
    Port(InterfaceName),
    Route(Prefix, InterfaceName, Option<IpAddr>),
    GatewayInterface(String),
    GatewayProposals(String),
    VpnAutoKey(String),
    VpnManual(String),
    VpnBind(String),
    VpnId(String),
    VpnMonitor(String),
    VpnProxyId(String, ProxyIdSpec),
    GatewayPeer(String),
    UserIkeId(String),
    UserUid(String),
    GroupDefine(String),
    GroupMember(String, String),
    Nhtb(InterfaceName, IpAddr),
}

impl Site {
    /// True when `cmd` set what this site refers to.
    fn made_by(&self, cmd: &Command) -> bool {
        let Command::Set(set) = cmd else { return false };
        match (self, set) {
            (Site::Unnumbered(n), SetCommand::Interface { name, setting }) => {
                n == name && matches!(setting, InterfaceSetting::Unnumbered(_))
            }
            (Site::Port(n), SetCommand::Interface { name, setting }) => {
                n == name && matches!(setting, InterfaceSetting::Port(_))
            }
            (Site::Route(p, i, g), SetCommand::Route(r)) => {
                *p == r.prefix && *i == r.interface && *g == r.gateway
            }
            (Site::GatewayInterface(n), SetCommand::IkeGateway { name, settings }) => {
                n == name && settings.iter().any(|s| matches!(s, GatewaySetting::OutgoingInterface(_)))
            }
            (Site::GatewayProposals(n), SetCommand::IkeGateway { name, settings }) => {
                n == name && settings.iter().any(|s| matches!(s, GatewaySetting::Proposals(_)))
            }
            (Site::VpnAutoKey(n), SetCommand::Vpn { name, setting }) => {
                n == name && matches!(setting, VpnSetting::AutoKey(_))
            }
            (Site::VpnManual(n), SetCommand::Vpn { name, setting }) => {
                n == name && matches!(setting, VpnSetting::Manual(_))
            }
            (Site::VpnBind(n), SetCommand::Vpn { name, setting }) => {
                n == name && matches!(setting, VpnSetting::Bind { interface: Some(_), .. })
            }
            (Site::VpnId(n), SetCommand::Vpn { name, setting }) => {
                n == name && matches!(setting, VpnSetting::Bind { id: Some(_), .. })
            }
            (Site::VpnMonitor(n), SetCommand::Vpn { name, setting }) => {
                n == name && matches!(setting, VpnSetting::Monitor(_))
            }
            (Site::VpnProxyId(n, spec), SetCommand::Vpn { name, setting }) => {
                n == name && matches!(setting, VpnSetting::ProxyId(s) if s.same_as(spec))
            }
            (Site::GatewayPeer(n), SetCommand::IkeGateway { name, settings }) => {
                n == name && settings.iter().any(|s| matches!(s, GatewaySetting::Peer(_)))
            }
            (Site::UserIkeId(n), SetCommand::User { name, setting }) => {
                n == name && matches!(setting, UserSetting::IkeId { .. })
            }
            (Site::UserUid(n), SetCommand::User { name, setting }) => {
                n == name && matches!(setting, UserSetting::Uid(_))
            }
            (Site::GroupDefine(n), SetCommand::UserGroup { name, setting }) => {
                n == name && matches!(setting, UserGroupSetting::Define { .. })
            }
            (Site::GroupMember(g, u), SetCommand::UserGroup { name, setting }) => {
                g == name && matches!(setting, UserGroupSetting::Member(m) if m == u)
            }
            (Site::Nhtb(i, a), SetCommand::Interface { name, setting }) => {
                i == name && matches!(setting, InterfaceSetting::Nhtb { next_hop, .. } if next_hop == a)
            }
            _ => false,
        }
    }
}

/// The configuration of one esprit gateway.
///
/// Equality compares every setting (secrets included), not the order of
/// the lines that built it, except where order matters (routes, proxy-IDs,
/// service members, proposal lists).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    interfaces: BTreeMap<InterfaceName, Interface>,
    routes: Vec<Route>,
    gateways: BTreeMap<String, IkeGateway>,
    p1_proposals: BTreeMap<String, P1Proposal>,
    p2_proposals: BTreeMap<String, P2Proposal>,
    vpns: BTreeMap<String, Vpn>,
    /// Keyed by lowercased name: service names are case-insensitive.
    services: BTreeMap<String, CustomService>,
    /// `set vpnmonitor ...`.
    vpnmonitor: VpnMonitorTiming,
    /// Zones, addresses, policies: kept, not enforced ([`crate::kept`]).
    pub(crate) kept: crate::kept::Kept,
    /// `set flow tcp-mss N`.
    tcp_mss: Option<u16>,
    /// `set user ...`.
    users: BTreeMap<String, User>,
    /// `set user-group ...`.
    user_groups: BTreeMap<String, UserGroup>,
    /// `set interface tunnel.N nhtb A vpn NAME`, by tunnel and next hop.
    nhtb: BTreeMap<(InterfaceName, IpAddr), String>,
    /// `set pki local-cert ...`, by name.
    local_certs: BTreeMap<String, LocalCert>,
    /// `set pki ca-cert NAME file FILE`: the files, by name.
    ca_certs: BTreeMap<String, String>,
}

fn conflict(message: String) -> ErrorKind {
    ErrorKind::Conflict(message)
}

fn no_such(kind: &'static str, name: &str, hint: &str) -> ErrorKind {
    ErrorKind::NoSuchObject { kind, name: name.into(), hint: hint.into() }
}

const VPN_HINT: &str = ": create it first with set vpn NAME gateway GW ... or set vpn NAME manual ...";

/// Pre-shared keys shorter than this are warned about: 20 random
/// characters are about 120 bits, out of reach of an offline search of a
/// recorded exchange; words an operator types are far fewer.
pub const MIN_PRESHARE_CHARS: usize = 20;

/// DH group 2 is accepted (ScreenOS peers often speak nothing else), and
/// said to be weak.
const GROUP2_WARNING: &str =
    "DH group 2 (MODP 1024) is accepted for ScreenOS compatibility, but RFC 8247 §2.4 says \
     it SHOULD NOT be used (under 80 bits of strength, within reach of precomputation): use group 14 or 19";

impl Config {
    /// An empty configuration.
    pub fn new() -> Config {
        Config::default()
    }

    /// Applies one line (interactive use). Blank lines and comments do
    /// nothing. Atomic: on error `self` is unchanged. The objects the line
    /// refers to must already exist.
    pub fn apply(&mut self, line: &str) -> Result<Vec<Warning>, ConfigError> {
        let Some(command) = self.parse_in_context(line).map_err(|e| ConfigError::new(None, line, e))? else {
            return Ok(Vec::new());
        };
        let mut candidate = self.clone();
        let mut messages = candidate.apply_command(&command).map_err(|e| ConfigError::new(None, line, e))?;
        candidate.validate().map_err(|(_, e)| {
            let e = match command {
                Command::Unset(_) => ErrorKind::InUse(Box::new(e)),
                Command::Set(_) | Command::Kept(_) => e,
            };
            ConfigError::new(None, line, e)
        })?;
        // What the whole says (an empty group, an idle binding) is said
        // once, by the line that makes it so.
        let before: Vec<String> = self.standing_warnings().into_iter().map(|(_, m)| m).collect();
        messages.extend(
            candidate.standing_warnings().into_iter().map(|(_, m)| m).filter(|m| !before.contains(m)),
        );
        *self = candidate;
        Ok(messages.into_iter().map(|message| Warning { line: None, message }).collect())
    }

    /// Loads a whole configuration file: applies every line in order, then
    /// validates cross references. Returns the first error with its line
    /// number, or the configuration and its warnings.
    pub fn load(text: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
        let mut config = Config::default();
        let mut warnings = Vec::new();
        let mut commands = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let Some(command) =
                config.parse_in_context(line).map_err(|e| ConfigError::new(Some(n), line, e))?
            else {
                continue;
            };
            let messages = config.apply_command(&command).map_err(|e| ConfigError::new(Some(n), line, e))?;
            warnings.extend(messages.into_iter().map(|message| Warning { line: Some(n), message }));
            commands.push((n, line, command));
        }
        if let Err((site, e)) = config.validate() {
            let place = commands.iter().rev().find(|(_, _, c)| site.made_by(c));
            return Err(match place {
                Some((n, line, _)) => ConfigError::new(Some(*n), line, e),
                None => ConfigError::new(None, "", e),
            });
        }
        for (site, message) in config.standing_warnings() {
            let line = commands.iter().rev().find(|(_, _, c)| site.made_by(c)).map(|(n, _, _)| *n);
            warnings.push(Warning { line, message });
        }
        Ok((config, warnings))
    }

    // ----- reading -----

    /// Every interface, ports and tunnel interfaces, by name.
    pub fn interfaces(&self) -> impl Iterator<Item = &Interface> {
        self.interfaces.values()
    }

    /// One interface (name case-insensitive).
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        let name = InterfaceName::new(name).ok()?;
        self.interfaces.get(&name)
    }

    /// The static routes, in the order they were added.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Every IKE gateway, by name.
    pub fn gateways(&self) -> impl Iterator<Item = &IkeGateway> {
        self.gateways.values()
    }

    /// One IKE gateway.
    pub fn gateway(&self, name: &str) -> Option<&IkeGateway> {
        self.gateways.get(name)
    }

    /// `set pki local-cert NAME ...`.
    pub fn local_cert(&self, name: &str) -> Option<&LocalCert> {
        self.local_certs.get(name)
    }

    /// Every `set pki local-cert`.
    pub fn local_certs(&self) -> impl Iterator<Item = &LocalCert> {
        self.local_certs.values()
    }

    /// `set pki ca-cert NAME file FILE`: the file.
    pub fn ca_cert(&self, name: &str) -> Option<&str> {
        self.ca_certs.get(name).map(String::as_str)
    }

    /// Every `set pki ca-cert`, as (name, file).
    pub fn ca_certs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.ca_certs.iter().map(|(n, f)| (n.as_str(), f.as_str()))
    }

    /// Every VPN, by name.
    pub fn vpns(&self) -> impl Iterator<Item = &Vpn> {
        self.vpns.values()
    }

    /// One VPN.
    pub fn vpn(&self, name: &str) -> Option<&Vpn> {
        self.vpns.get(name)
    }

    /// The VPN bound to a tunnel interface.
    pub fn vpn_bound_to(&self, interface: &str) -> Option<&Vpn> {
        let name = InterfaceName::new(interface).ok()?;
        self.vpns.values().find(|v| v.bind.as_ref() == Some(&name))
    }

    /// Every user, by name.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// One user.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Every user group, by name.
    pub fn user_groups(&self) -> impl Iterator<Item = &UserGroup> {
        self.user_groups.values()
    }

    /// One user group.
    pub fn user_group(&self, name: &str) -> Option<&UserGroup> {
        self.user_groups.get(name)
    }

    /// The users a dialup gateway admits: the user it names, or the
    /// members of the group it names, in order. Empty for a gateway that
    /// is not a dialup gateway.
    pub fn dialup_users(&self, gateway: &str) -> Vec<&User> {
        let Some(GatewayPeer::Dialup(name)) = self.gateways.get(gateway).map(|g| &g.peer) else {
            return Vec::new();
        };
        if let Some(u) = self.users.get(name) {
            return vec![u];
        }
        self.user_groups
            .get(name)
            .map(|g| g.members.iter().filter_map(|m| self.users.get(m)).collect())
            .unwrap_or_default()
    }

    /// Every next-hop tunnel binding, by tunnel interface and next hop.
    pub fn nhtb(&self) -> impl Iterator<Item = Nhtb> + '_ {
        self.nhtb.iter().map(|((interface, next_hop), vpn)| Nhtb {
            interface: interface.clone(),
            next_hop: *next_hop,
            vpn: vpn.clone(),
        })
    }

    /// The VPN a next hop of a tunnel interface is bound to.
    pub fn nhtb_vpn(&self, interface: &str, next_hop: IpAddr) -> Option<&str> {
        let name = InterfaceName::new(interface).ok()?;
        self.nhtb.get(&(name, next_hop)).map(String::as_str)
    }

    /// The VPNs bound to a tunnel interface, by name: more than one only
    /// for manual-key VPNs (esprit's extension) or AutoKey VPNs told apart
    /// by next-hop tunnel binding.
    pub fn vpns_bound_to(&self, interface: &str) -> Vec<&Vpn> {
        let Ok(name) = InterfaceName::new(interface) else { return Vec::new() };
        self.vpns.values().filter(|v| v.bind.as_ref() == Some(&name)).collect()
    }

    /// The MSS limit of TCP SYNs entering a tunnel (`set flow tcp-mss`),
    /// if set.
    pub fn tcp_mss(&self) -> Option<u16> {
        self.tcp_mss
    }

    /// The VPN monitor's interval and threshold (`set vpnmonitor`).
    pub fn vpnmonitor(&self) -> VpnMonitorTiming {
        self.vpnmonitor
    }

    /// Custom phase-1 proposals.
    pub fn p1_proposals(&self) -> impl Iterator<Item = &P1Proposal> {
        self.p1_proposals.values()
    }

    /// Custom phase-2 proposals.
    pub fn p2_proposals(&self) -> impl Iterator<Item = &P2Proposal> {
        self.p2_proposals.values()
    }

    /// Custom services.
    pub fn services(&self) -> impl Iterator<Item = &CustomService> {
        self.services.values()
    }

    /// A service by name (case-insensitive): predefined, or a custom
    /// service of exactly one member.
    pub fn resolve_service(&self, name: &str) -> Option<Service> {
        if let Some(s) = Service::named(name) {
            return Some(s);
        }
        match self.services.get(&name.to_ascii_lowercase())?.members.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The phase-1 suites a gateway proposes, in preference order.
    pub fn p1_suites(&self, gateway: &str) -> Vec<P1Suite> {
        self.gateways
            .get(gateway)
            .and_then(|g| resolve_p1(&g.proposals, &self.p1_proposals).ok())
            .map(|r| r.suites)
            .unwrap_or_default()
    }

    /// The phase-2 suites an AutoKey VPN proposes, in preference order.
    pub fn p2_suites(&self, vpn: &str) -> Vec<P2Suite> {
        match self.vpns.get(vpn).map(|v| &v.kind) {
            Some(VpnKind::AutoKey(a)) => {
                resolve_p2(&a.proposals, &self.p2_proposals).map(|r| r.suites).unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }

    /// The resolved proxy-IDs of a VPN, in configuration order (one for a
    /// manual-key VPN: its SA's selectors). A VPN without proxy-IDs has the
    /// route-based default `local-ip 0.0.0.0/0 remote-ip 0.0.0.0/0 ANY` (as
    /// ScreenOS). Empty for unknown names.
    pub fn proxy_ids(&self, vpn: &str) -> Vec<ProxyId> {
        let Some(v) = self.vpns.get(vpn) else { return Vec::new() };
        if v.proxy_ids.is_empty() {
            return vec![ProxyId { local: Prefix::ANY_V4, remote: Prefix::ANY_V4, service: Service::ANY }];
        }
        v.proxy_ids
            .iter()
            .filter_map(|p| {
                Some(ProxyId { local: p.local, remote: p.remote, service: self.resolve_service(&p.service)? })
            })
            .collect()
    }

    // ----- applying one command (no cross-reference checks) -----

    /// Applies one command to `self`, checking what the line and the objects
    /// it modifies can tell; returns warning messages. Not atomic by itself:
    /// callers work on a copy or stop at the first error.
    fn apply_command(&mut self, command: &Command) -> Result<Vec<String>, ErrorKind> {
        match command {
            Command::Set(s) => self.apply_set(s),
            Command::Unset(u) => self.apply_unset(u),
            Command::Kept(k) => self.kept.apply(k).map_err(conflict),
        }
    }

    /// [`parse_line`], but inside a policy's context (after `set policy id
    /// N` alone, until `exit`) every `set` and `unset` line is the
    /// policy's ([`crate::kept`]).
    fn parse_in_context(&self, line: &str) -> Result<Option<Command>, crate::error::ParseError> {
        if self.kept.context.is_some() {
            let tokens = crate::lexer::lex(line)?;
            if let Some(k) = crate::kept::parse_policy_setting(&tokens) {
                return Ok(Some(Command::Kept(k)));
            }
        }
        parse_line(line)
    }

    /// The lines kept without being enforced (zones, addresses, policies),
    /// in their order.
    pub fn kept_lines(&self) -> Vec<String> {
        self.kept.entries.iter().map(|e| e.line.text()).collect()
    }

    fn apply_set(&mut self, set: &SetCommand) -> Result<Vec<String>, ErrorKind> {
        let mut warnings = Vec::new();
        match set {
            SetCommand::Interface { name, setting } => {
                if let InterfaceSetting::Manage(_) = setting {
                    warnings.push(format!(
                        "interface {}: manage is ignored: esprit is managed through its control socket, not on its ports",
                        q(name.as_str())
                    ));
                    return Ok(warnings);
                }
                if let InterfaceSetting::Nhtb { next_hop, vpn } = setting {
                    self.set_nhtb(name, *next_hop, vpn)?;
                    return Ok(warnings);
                }
                match setting {
                    InterfaceSetting::Unnumbered(target) => {
                        if !name.is_tunnel() {
                            return Err(conflict(format!(
                                "interface {} is not a tunnel interface: only tunnel.N can be unnumbered",
                                q(name.as_str())
                            )));
                        }
                        if target.is_tunnel() {
                            return Err(ErrorKind::WrongReference {
                                referrer: format!("interface {} ip unnumbered", q(name.as_str())),
                                name: target.to_string(),
                                reason: "it is a tunnel interface: borrow the address of a port".into(),
                            });
                        }
                    }
                    InterfaceSetting::Port(_) if name.is_tunnel() => {
                        return Err(conflict(format!(
                            "interface {} is a tunnel interface: only ports are bound to a Linux network device",
                            q(name.as_str())
                        )));
                    }
                    _ => {}
                }
                let i = self.interfaces.entry(name.clone()).or_insert_with(|| Interface::new(name.clone()));
                match setting {
                    InterfaceSetting::Zone(z) => i.zone = Some(z.clone()),
                    InterfaceSetting::Ip(a) => i.ip = Some(InterfaceIp::Address(*a)),
                    InterfaceSetting::Unnumbered(t) => i.ip = Some(InterfaceIp::Unnumbered(t.clone())),
                    InterfaceSetting::Mtu(m) => i.mtu = Some(*m),
                    InterfaceSetting::Port(p) => i.port = Some(p.clone()),
                    InterfaceSetting::Manage(_) | InterfaceSetting::Nhtb { .. } => {}
                }
            }
            SetCommand::Route(r) => {
                match self
                    .routes
                    .iter_mut()
                    .find(|x| x.prefix == r.prefix && x.interface == r.interface && x.gateway == r.gateway)
                {
                    Some(existing) => existing.metric = r.metric,
                    None => self.routes.push(r.clone()),
                }
            }
            SetCommand::IkeGateway { name, settings } => {
                warnings.extend(self.set_gateway(name, settings)?);
            }
            SetCommand::User { name, setting } => warnings.extend(self.set_user(name, setting)?),
            SetCommand::UserGroup { name, setting } => self.set_user_group(name, setting)?,
            SetCommand::Pki(PkiSetting::LocalCert { name, certificate, key }) => {
                let c = LocalCert { name: name.clone(), certificate: certificate.clone(), key: key.clone() };
                self.local_certs.insert(name.clone(), c);
            }
            SetCommand::Pki(PkiSetting::CaCert { name, file }) => {
                self.ca_certs.insert(name.clone(), file.clone());
            }
            SetCommand::P1Proposal(p) => {
                self.p1_proposals.insert(p.name.clone(), p.clone());
            }
            SetCommand::P2Proposal(p) => {
                self.p2_proposals.insert(p.name.clone(), p.clone());
            }
            SetCommand::Vpn { name, setting } => {
                warnings.extend(self.set_vpn(name, setting)?);
            }
            SetCommand::FlowTcpMss(mss) => self.tcp_mss = Some(*mss),
            SetCommand::VpnMonitor { interval_secs, threshold } => {
                if let Some(i) = interval_secs {
                    self.vpnmonitor.interval_secs = *i;
                }
                if let Some(t) = threshold {
                    self.vpnmonitor.threshold = *t;
                }
            }
            SetCommand::Service { name, member, add } => {
                let key = name.to_ascii_lowercase();
                match (self.services.get_mut(&key), add) {
                    (Some(s), false) => {
                        return Err(conflict(format!(
                            "service {} already exists: add a member with set service {} + ..., or unset it first",
                            q(&s.name),
                            q(&s.name)
                        )))
                    }
                    (None, false) => {
                        self.services.insert(
                            key,
                            CustomService {
                                name: name.clone(),
                                members: vec![*member],
                            },
                        );
                    }
                    (Some(s), true) => {
                        if s.members.contains(member) {
                            return Err(conflict(format!(
                                "service {} already has member {}",
                                q(&s.name),
                                member_words(member)
                            )));
                        }
                        s.members.push(*member);
                    }
                    (None, true) => {
                        return Err(no_such(
                            "service",
                            name,
                            ": define it first with set service NAME protocol ...",
                        ))
                    }
                }
            }
        }
        Ok(warnings)
    }

    fn set_gateway(&mut self, name: &str, settings: &[GatewaySetting]) -> Result<Vec<String>, ErrorKind> {
        let mut warnings = Vec::new();
        for s in settings {
            if let GatewaySetting::Proposals(choice) = s {
                let r = resolve_p1(choice, &self.p1_proposals)?;
                warnings.extend(r.warnings.into_iter().map(|w| format!("ike gateway {}: {w}", q(name))));
                for s in r.suites.iter().filter(|s| s.group == DhGroup::Modp1024) {
                    warnings.push(format!("ike gateway {}: {s}: {GROUP2_WARNING}", q(name)));
                }
            }
            if let GatewaySetting::Preshare(key) = s {
                // Only the length is said: the key never reaches a log.
                let n = key.expose().chars().count();
                if n < MIN_PRESHARE_CHARS {
                    warnings.push(format!(
                        "ike gateway {}: preshare is {n} characters, under {MIN_PRESHARE_CHARS}: whoever records one \
                         exchange (any Aggressive Mode answer carries HASH_R in clear; Main Mode to an active \
                         attacker) can search a short key offline: use {MIN_PRESHARE_CHARS} or more random characters",
                        q(name)
                    ));
                }
            }
        }
        let gateway = match self.gateways.get_mut(name) {
            Some(g) => g,
            None => {
                let find = |f: fn(&GatewaySetting) -> bool| settings.iter().find(|s| f(s));
                let peer = find(|s| matches!(s, GatewaySetting::Peer(_)));
                let out = find(|s| matches!(s, GatewaySetting::OutgoingInterface(_)));
                let key = find(|s| matches!(s, GatewaySetting::Preshare(_)));
                let props = find(|s| matches!(s, GatewaySetting::Proposals(_)));
                // A gateway that authenticates by certificate has no key
                // (validate() says which method needs what).
                let no_key = key.is_none();
                let key = match key {
                    Some(GatewaySetting::Preshare(k)) => k.clone(),
                    _ => Secret::new(String::new()),
                };
                match (peer, out, props) {
                    (
                        Some(GatewaySetting::Peer(peer)),
                        Some(GatewaySetting::OutgoingInterface(out)),
                        Some(GatewaySetting::Proposals(props)),
                    ) => {
                        self.gateways.insert(
                            name.to_string(),
                            IkeGateway {
                                name: name.to_string(),
                                peer: peer.clone(),
                                version: if settings.contains(&GatewaySetting::Version(IkeVersion::V2)) {
                                    IkeVersion::V2
                                } else {
                                    IkeVersion::V1
                                },
                                mode: IkeMode::Main,
                                outgoing_interface: out.clone(),
                                preshare: key,
                                proposals: props.clone(),
                                nat_traversal: None,
                                dpd: None,
                                local_id: None,
                                peer_id: None,
                                my_cert: None,
                                peer_ca: None,
                                fragmentation: None,
                            },
                        );
                    }
                    _ => {
                        let mut missing = Vec::new();
                        if peer.is_none() {
                            missing.push("address, dialup or dynamic");
                        }
                        if out.is_none() {
                            missing.push("outgoing-interface");
                        }
                        // Proposals say whether a key is needed.
                        if no_key && props.is_none() {
                            missing.push("preshare");
                        }
                        if props.is_none() {
                            missing.push("sec-level or proposal");
                        }
                        return Err(ErrorKind::Incomplete {
                            kind: "ike gateway",
                            name: name.into(),
                            missing: missing.join("; "),
                        });
                    }
                }
                self.gateways.get_mut(name).ok_or_else(|| no_such("ike gateway", name, ""))?
            }
        };
        // The version is fixed when the gateway is made: a line may name
        // it again (`set ike gateway ikev2 NAME ...` for an IKEv2 one),
        // never change it; IKEv1's phase-1 modes are not IKEv2 words.
        for s in settings {
            match s {
                GatewaySetting::Version(v) if *v != gateway.version => {
                    return Err(conflict(format!(
                        "ike gateway {} is an {} gateway: unset it first to make it {}",
                        q(name),
                        gateway.version.name(),
                        v.name()
                    )))
                }
                GatewaySetting::Mode(m) if gateway.version == IkeVersion::V2 => {
                    return Err(conflict(format!(
                        "ike gateway {}: {} is an IKEv1 phase-1 mode; an ikev2 gateway has none",
                        q(name),
                        m.word()
                    )))
                }
                _ => {}
            }
        }
        for s in settings {
            match s {
                GatewaySetting::Version(_) => {}
                GatewaySetting::Peer(p) => gateway.peer = p.clone(),
                GatewaySetting::Mode(m) => gateway.mode = *m,
                GatewaySetting::OutgoingInterface(i) => gateway.outgoing_interface = i.clone(),
                GatewaySetting::Preshare(k) => gateway.preshare = k.clone(),
                GatewaySetting::Proposals(p) => gateway.proposals = p.clone(),
                GatewaySetting::NatTraversal { udp_checksum, keepalive_secs } => {
                    let nat = gateway.nat_traversal.get_or_insert(NatTraversal {
                        udp_checksum: false,
                        keepalive_secs: DEFAULT_NAT_KEEPALIVE_SECS,
                    });
                    nat.udp_checksum |= *udp_checksum;
                    if let Some(k) = keepalive_secs {
                        nat.keepalive_secs = *k;
                    }
                }
                GatewaySetting::Dpd { interval_secs, retry } => {
                    let dpd = gateway.dpd.get_or_insert(Dpd { interval_secs: 0, retry: DEFAULT_DPD_RETRY });
                    if let Some(i) = interval_secs {
                        dpd.interval_secs = *i;
                    }
                    if let Some(r) = retry {
                        dpd.retry = *r;
                    }
                }
                GatewaySetting::LocalId(id) => gateway.local_id = Some(id.clone()),
                GatewaySetting::PeerId(id) => gateway.peer_id = Some(id.clone()),
                GatewaySetting::MyCert(n) => gateway.my_cert = Some(n.clone()),
                GatewaySetting::PeerCa(n) => gateway.peer_ca = Some(n.clone()),
                GatewaySetting::Fragmentation(f) => gateway.fragmentation = Some(*f),
            }
        }
        Ok(warnings)
    }

    /// One authentication method per gateway, and what it needs: a key
    /// for `preshare` proposals; for `rsa-sig` / `ecdsa-sig` an ikev2
    /// gateway, and the certificate and CA it names defined. A gateway
    /// still without `cert my-cert` or `cert peer-ca` loads (ScreenOS
    /// writes them on lines after the one that makes the gateway);
    /// controld does not run IKE for it, and says so.
    fn check_gateway_auth(&self, g: &IkeGateway, suites: &[P1Suite]) -> Result<(), ErrorKind> {
        let Some(first) = suites.first().map(|s| s.auth) else { return Ok(()) };
        let gq = q(&g.name);
        if suites.iter().any(|s| s.auth != first) {
            return Err(conflict(format!(
                "ike gateway {gq}: its proposals mix authentication methods ({} and others): one method per gateway",
                first.word()
            )));
        }
        if !first.uses_certificates() {
            if g.preshare.expose().is_empty() {
                return Err(ErrorKind::Incomplete {
                    kind: "ike gateway",
                    name: g.name.clone(),
                    missing: "preshare (its proposals authenticate with a pre-shared key)".into(),
                });
            }
            return Ok(());
        }
        if g.version != IkeVersion::V2 {
            return Err(conflict(format!(
                "ike gateway {gq}: {} proposals need an ikev2 gateway (esprit's IKEv1 authenticates with pre-shared keys only)",
                first.word()
            )));
        }
        let refer = |what: &str, kind: &'static str, name: &Option<String>, known: bool| match name {
            Some(n) if !known => Err(ErrorKind::UnknownReference {
                referrer: format!("ike gateway {gq} cert {what}"),
                kind,
                name: n.clone(),
                hint: format!(": define it with set pki {kind} ..."),
            }),
            _ => Ok(()),
        };
        let mine = g.my_cert.as_ref().is_some_and(|n| self.local_certs.contains_key(n));
        refer("my-cert", "local-cert", &g.my_cert, mine)?;
        let ca = g.peer_ca.as_ref().is_some_and(|n| self.ca_certs.contains_key(n));
        refer("peer-ca", "ca-cert", &g.peer_ca, ca)
    }

    fn set_vpn(&mut self, name: &str, setting: &VpnSetting) -> Result<Vec<String>, ErrorKind> {
        let mut warnings = Vec::new();
        let kind_conflict = |is: &str, want: &str| {
            conflict(format!("vpn {} is {is}: unset it before making it {want}", q(name)))
        };
        match setting {
            VpnSetting::AutoKey(a) => {
                let r = resolve_p2(&a.proposals, &self.p2_proposals)?;
                warnings.extend(r.warnings.into_iter().map(|w| format!("vpn {}: {w}", q(name))));
                for s in r.suites.iter().filter(|s| s.pfs == Some(DhGroup::Modp1024)) {
                    warnings.push(format!("vpn {}: {s}: {GROUP2_WARNING}", q(name)));
                }
                match self.vpns.get_mut(name) {
                    Some(v) => match &mut v.kind {
                        VpnKind::AutoKey(existing) => *existing = a.clone(),
                        VpnKind::Manual(_) => {
                            return Err(kind_conflict("a manual-key VPN", "an AutoKey IKE VPN"))
                        }
                    },
                    None => {
                        self.vpns.insert(name.into(), new_vpn(name, VpnKind::AutoKey(a.clone())));
                    }
                }
                return Ok(warnings);
            }
            VpnSetting::Manual(m) => {
                match self.vpns.get_mut(name) {
                    Some(v) => match &mut v.kind {
                        VpnKind::Manual(existing) => *existing = m.clone(),
                        VpnKind::AutoKey(_) => {
                            return Err(kind_conflict("an AutoKey IKE VPN", "a manual-key VPN"))
                        }
                    },
                    None => {
                        self.vpns.insert(name.into(), new_vpn(name, VpnKind::Manual(m.clone())));
                    }
                }
                return Ok(warnings);
            }
            _ => {}
        }
        let vpn = self.vpns.get_mut(name).ok_or_else(|| no_such("vpn", name, VPN_HINT))?;
        match setting {
            VpnSetting::Monitor(m) => vpn.monitor = Some(m.clone()),
            VpnSetting::Bind { id, interface } => {
                if let Some(i) = interface {
                    if !i.is_tunnel() {
                        return Err(ErrorKind::WrongReference {
                            referrer: format!("vpn {} bind interface", q(name)),
                            name: i.to_string(),
                            reason: "it is not a tunnel interface (tunnel.N)".into(),
                        });
                    }
                    vpn.bind = Some(i.clone());
                }
                if id.is_some() {
                    vpn.id = *id;
                }
            }
            // esprit's extension: a manual-key VPN carries exactly one
            // proxy-ID (ScreenOS refuses proxy-id on manual VPNs).
            VpnSetting::ProxyId(spec)
                if vpn.is_manual() && vpn.proxy_ids.iter().any(|p| !p.same_as(spec)) =>
            {
                return Err(ErrorKind::ProxyIdOnManualVpn {
                    vpn: name.into(),
                    existing: vpn.proxy_ids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
                });
            }
            VpnSetting::ProxyIdCheck => vpn.proxy_id_check = true,
            VpnSetting::WithdrawRoutes => vpn.withdraw_routes = true,
            VpnSetting::ProxyId(spec) => {
                if vpn.proxy_ids.iter().any(|p| p.same_as(spec)) {
                    return Err(ErrorKind::DuplicateProxyId { vpn: name.into(), proxy_id: spec.to_string() });
                }
                if vpn.proxy_ids.len() >= MAX_PROXY_IDS {
                    return Err(conflict(format!(
                        "vpn {} already has {MAX_PROXY_IDS} proxy-ids, the most one VPN can hold",
                        q(name)
                    )));
                }
                vpn.proxy_ids.push(spec.clone());
            }
            VpnSetting::AutoKey(_) | VpnSetting::Manual(_) => {}
        }
        Ok(warnings)
    }

    fn apply_unset(&mut self, unset: &UnsetCommand) -> Result<Vec<String>, ErrorKind> {
        let mut warnings = Vec::new();
        match unset {
            UnsetCommand::Interface { name, item } => {
                if *item == Some(InterfaceItem::Manage) {
                    warnings.push(format!("interface {}: manage is ignored", q(name.as_str())));
                    return Ok(warnings);
                }
                let i =
                    self.interfaces.get_mut(name).ok_or_else(|| no_such("interface", name.as_str(), ""))?;
                match item {
                    None => {
                        self.interfaces.remove(name);
                        return Ok(warnings);
                    }
                    Some(InterfaceItem::Zone) => i.zone = None,
                    Some(InterfaceItem::Ip) => i.ip = None,
                    Some(InterfaceItem::Mtu) => i.mtu = None,
                    Some(InterfaceItem::Port) => i.port = None,
                    Some(InterfaceItem::Manage) => {}
                }
                // An interface exists while it has a setting (so that the
                // printed configuration shows it).
                if i.is_empty() {
                    self.interfaces.remove(name);
                }
            }
            UnsetCommand::Route { prefix, interface, gateway } => {
                let before = self.routes.len();
                self.routes.retain(|r| {
                    !(r.prefix == *prefix
                        && interface.as_ref().is_none_or(|i| *i == r.interface)
                        && gateway.is_none_or(|g| Some(g) == r.gateway))
                });
                if self.routes.len() == before {
                    let mut item = format!("route {prefix}");
                    if let Some(i) = interface {
                        item.push_str(&format!(" interface {i}"));
                    }
                    if let Some(g) = gateway {
                        item.push_str(&format!(" gateway {g}"));
                    }
                    return Err(ErrorKind::NoSuchItem { object: "the route table".into(), item });
                }
            }
            UnsetCommand::IkeGateway { name, item } => {
                let g = self.gateways.get_mut(name).ok_or_else(|| no_such("ike gateway", name, ""))?;
                match item {
                    None => {
                        self.gateways.remove(name);
                    }
                    Some(GatewayItem::NatTraversal) => g.nat_traversal = None,
                    Some(GatewayItem::Dpd) => g.dpd = None,
                    Some(GatewayItem::LocalId) => g.local_id = None,
                    Some(GatewayItem::PeerId) => g.peer_id = None,
                    Some(GatewayItem::Cert) => {
                        g.my_cert = None;
                        g.peer_ca = None;
                    }
                    Some(GatewayItem::Fragmentation) => g.fragmentation = None,
                }
            }
            UnsetCommand::Pki { ca, name } => {
                let uses = |g: &&IkeGateway| {
                    if *ca {
                        g.peer_ca.as_deref() == Some(name.as_str())
                    } else {
                        g.my_cert.as_deref() == Some(name.as_str())
                    }
                };
                let kind = if *ca { "ca-cert" } else { "local-cert" };
                if let Some(g) = self.gateways.values().find(uses) {
                    return Err(conflict(format!(
                        "pki {kind} {} is used by ike gateway {}: unset it there first",
                        q(name),
                        q(&g.name)
                    )));
                }
                let gone = if *ca {
                    self.ca_certs.remove(name).is_some()
                } else {
                    self.local_certs.remove(name).is_some()
                };
                if !gone {
                    return Err(no_such(if *ca { "pki ca-cert" } else { "pki local-cert" }, name, ""));
                }
            }
            UnsetCommand::P1Proposal(name) => {
                self.p1_proposals.remove(name).ok_or_else(|| no_such("p1-proposal", name, ""))?;
            }
            UnsetCommand::P2Proposal(name) => {
                self.p2_proposals.remove(name).ok_or_else(|| no_such("p2-proposal", name, ""))?;
            }
            UnsetCommand::Vpn { name, item } => {
                let v = self.vpns.get_mut(name).ok_or_else(|| no_such("vpn", name, ""))?;
                match item {
                    None => {
                        self.vpns.remove(name);
                    }
                    Some(VpnItem::Monitor) => v.monitor = None,
                    Some(VpnItem::Bind) => {
                        v.bind = None;
                        v.id = None;
                    }
                    Some(VpnItem::ProxyIdCheck) => v.proxy_id_check = false,
                    Some(VpnItem::WithdrawRoutes) => v.withdraw_routes = false,
                    Some(VpnItem::AllProxyIds) => v.proxy_ids.clear(),
                    Some(VpnItem::ProxyId(spec)) => {
                        let before = v.proxy_ids.len();
                        v.proxy_ids.retain(|p| !p.same_as(spec));
                        if v.proxy_ids.len() == before {
                            return Err(ErrorKind::NoSuchItem {
                                object: format!("vpn {}", q(name)),
                                item: format!("proxy-id {spec}"),
                            });
                        }
                    }
                }
            }
            UnsetCommand::Nhtb { interface, next_hop, vpn } => {
                let key = (interface.clone(), *next_hop);
                match self.nhtb.get(&key) {
                    Some(v) if vpn.as_ref().is_none_or(|want| want == v) => {
                        self.nhtb.remove(&key);
                    }
                    _ => {
                        let mut item = format!("nhtb {next_hop}");
                        if let Some(v) = vpn {
                            item.push_str(&format!(" vpn {}", q(v)));
                        }
                        return Err(ErrorKind::NoSuchItem {
                            object: format!("interface {}", q(interface.as_str())),
                            item,
                        });
                    }
                }
            }
            UnsetCommand::User { name, item } => {
                let u = self.users.get_mut(name).ok_or_else(|| no_such("user", name, ""))?;
                match item {
                    None => {
                        self.users.remove(name);
                    }
                    Some(UserItem::IkeId) => {
                        u.ike_id = None;
                        u.share_limit = DEFAULT_SHARE_LIMIT;
                    }
                    Some(UserItem::Type) => u.ike = false,
                    Some(UserItem::Uid) => u.uid = None,
                }
            }
            UnsetCommand::UserGroup { name, member } => {
                let g = self.user_groups.get_mut(name).ok_or_else(|| no_such("user-group", name, ""))?;
                match member {
                    None => {
                        self.user_groups.remove(name);
                    }
                    Some(m) => {
                        let before = g.members.len();
                        g.members.retain(|x| x != m);
                        if g.members.len() == before {
                            return Err(ErrorKind::NoSuchItem {
                                object: format!("user-group {}", q(name)),
                                item: format!("user {}", q(m)),
                            });
                        }
                    }
                }
            }
            UnsetCommand::FlowTcpMss => self.tcp_mss = None,
            UnsetCommand::VpnMonitor { interval, threshold } => {
                let d = VpnMonitorTiming::default();
                if *interval {
                    self.vpnmonitor.interval_secs = d.interval_secs;
                }
                if *threshold {
                    self.vpnmonitor.threshold = d.threshold;
                }
            }
            UnsetCommand::Service { name, member } => {
                let key = name.to_ascii_lowercase();
                let s = self.services.get_mut(&key).ok_or_else(|| no_such("service", name, ""))?;
                match member {
                    None => {
                        self.services.remove(&key);
                    }
                    Some(m) => {
                        let Some(pos) = s.members.iter().position(|x| x == m) else {
                            return Err(ErrorKind::NoSuchItem {
                                object: format!("service {}", q(&s.name)),
                                item: format!("member {}", member_words(m)),
                            });
                        };
                        if s.members.len() == 1 {
                            return Err(conflict(format!(
                                "{} is the last member of service {}: unset the service instead",
                                member_words(m),
                                q(&s.name)
                            )));
                        }
                        s.members.remove(pos);
                    }
                }
            }
        }
        Ok(warnings)
    }

    // ----- validation of the whole -----

    fn require_port(&self, referrer: String, name: &InterfaceName) -> Result<(), ErrorKind> {
        match self.interfaces.get(name) {
            None => Err(ErrorKind::UnknownReference {
                referrer,
                kind: "interface",
                name: name.to_string(),
                hint: String::new(),
            }),
            Some(_) if name.is_tunnel() => Err(ErrorKind::WrongReference {
                referrer,
                name: name.to_string(),
                reason: "it is a tunnel interface: name the port whose address is our end".into(),
            }),
            Some(_) => Ok(()),
        }
    }

    fn require_interface(&self, referrer: String, name: &InterfaceName) -> Result<(), ErrorKind> {
        if self.interfaces.contains_key(name) || name.is_null() {
            return Ok(());
        }
        Err(ErrorKind::UnknownReference {
            referrer,
            kind: "interface",
            name: name.to_string(),
            hint: String::new(),
        })
    }

    /// Checks the configuration as a whole; the error comes with the site
    /// that made the bad reference.
    #[allow(clippy::result_large_err)] // private, and only on the error path
    fn validate(&self) -> Result<(), (Site, ErrorKind)> {
        let mut ports: BTreeMap<&str, &InterfaceName> = BTreeMap::new();
        for i in self.interfaces.values() {
            if let Some(InterfaceIp::Unnumbered(t)) = &i.ip {
                let site = || Site::Unnumbered(i.name.clone());
                let referrer = format!("interface {} ip unnumbered", q(i.name.as_str()));
                self.require_port(referrer.clone(), t).map_err(|e| (site(), e))?;
                if !matches!(
                    self.interfaces.get(t).and_then(|x| x.ip.as_ref()),
                    Some(InterfaceIp::Address(_))
                ) {
                    return Err((
                        site(),
                        ErrorKind::WrongReference {
                            referrer,
                            name: t.to_string(),
                            reason: "it has no IP address".into(),
                        },
                    ));
                }
            }
            if let Some(p) = &i.port {
                if let Some(other) = ports.insert(p, &i.name) {
                    return Err((
                        Site::Port(i.name.clone()),
                        conflict(format!(
                            "port {} is already bound to interface {}",
                            q(p),
                            q(other.as_str())
                        )),
                    ));
                }
            }
        }
        self.validate_users()?;
        let shared = self.shared_tunnels();
        for r in &self.routes {
            let site = || Site::Route(r.prefix, r.interface.clone(), r.gateway);
            self.require_interface(format!("route {}", r.prefix), &r.interface).map_err(|e| (site(), e))?;
            self.check_route_next_hop(r, &shared).map_err(|e| (site(), e))?;
        }
        let mut dialup_reach: BTreeMap<&str, &str> = BTreeMap::new();
        for g in self.gateways.values() {
            self.require_port(
                format!("ike gateway {} outgoing-interface", q(&g.name)),
                &g.outgoing_interface,
            )
            .map_err(|e| (Site::GatewayInterface(g.name.clone()), e))?;
            if let GatewayPeer::Dialup(d) = &g.peer {
                self.check_dialup(g, d, &mut dialup_reach)
                    .map_err(|e| (Site::GatewayPeer(g.name.clone()), e))?;
            }
            let site = || Site::GatewayProposals(g.name.clone());
            let r = resolve_p1(&g.proposals, &self.p1_proposals).map_err(|e| (site(), e.into()))?;
            if let Some(unknown) = r.unknown.first() {
                return Err((
                    site(),
                    ErrorKind::UnknownReference {
                        referrer: format!("ike gateway {} proposal", q(&g.name)),
                        kind: "p1-proposal",
                        name: unknown.clone(),
                        hint: ": define it with set ike p1-proposal, or use a predefined name such as pre-g14-aes128-sha"
                            .into(),
                    },
                ));
            }
            self.check_gateway_auth(g, &r.suites).map_err(|e| (site(), e))?;
        }
        let mut bound: BTreeMap<&InterfaceName, Vec<&Vpn>> = BTreeMap::new();
        let mut ids: BTreeMap<u32, &str> = BTreeMap::new();
        for v in self.vpns.values() {
            let vq = q(&v.name).to_string();
            match &v.kind {
                VpnKind::AutoKey(a) => {
                    let site = || Site::VpnAutoKey(v.name.clone());
                    if !self.gateways.contains_key(&a.gateway) {
                        return Err((
                            site(),
                            ErrorKind::UnknownReference {
                                referrer: format!("vpn {vq} gateway"),
                                kind: "ike gateway",
                                name: a.gateway.clone(),
                                hint: String::new(),
                            },
                        ));
                    }
                    let r = resolve_p2(&a.proposals, &self.p2_proposals).map_err(|e| (site(), e.into()))?;
                    if let Some(unknown) = r.unknown.first() {
                        return Err((
                            site(),
                            ErrorKind::UnknownReference {
                                referrer: format!("vpn {vq} proposal"),
                                kind: "p2-proposal",
                                name: unknown.clone(),
                                hint: ": define it with set ike p2-proposal, or use a predefined name such as g14-esp-aes128-sha"
                                    .into(),
                            },
                        ));
                    }
                }
                VpnKind::Manual(m) => {
                    self.require_port(format!("vpn {vq} outgoing-interface"), &m.outgoing_interface)
                        .map_err(|e| (Site::VpnManual(v.name.clone()), e))?;
                }
            }
            if let Some(t) = &v.bind {
                let site = || Site::VpnBind(v.name.clone());
                self.require_interface(format!("vpn {vq} bind interface"), t).map_err(|e| (site(), e))?;
                let others = bound.entry(t).or_default();
                if let Some(e) = others
                    .iter()
                    .filter(|o| !(o.is_manual() && v.is_manual()))
                    .find_map(|o| self.sharing_conflict(t, o, v))
                {
                    return Err((site(), e));
                }
                // esprit's extension: several manual-key VPNs may share a
                // tunnel interface, whose proxy-ID table is then the union
                // of theirs (one each); the union has no duplicate.
                let mine = if v.is_manual() { self.proxy_ids(&v.name) } else { Vec::new() };
                if let Some(other) =
                    others.iter().find(|o| self.proxy_ids(&o.name).iter().any(|p| mine.contains(p)))
                {
                    let shown = mine.first().map(|p| p.to_string()).unwrap_or_default();
                    return Err((
                        site(),
                        conflict(format!(
                            "interface {} already carries proxy-id {shown} of vpn {}: manual-key VPNs sharing a tunnel \
                             interface need distinct proxy-ids (give vpn {vq} its proxy-id before binding it)",
                            q(t.as_str()),
                            q(&other.name)
                        )),
                    ));
                }
                others.push(v);
            }
            if let Some(id) = v.id {
                if let Some(other) = ids.insert(id, &v.name) {
                    return Err((
                        Site::VpnId(v.name.clone()),
                        conflict(format!("vpn id {id:#x} is already used by vpn {}", q(other))),
                    ));
                }
            }
            if let Some(src) = v.monitor.as_ref().and_then(|m| m.source_interface.as_ref()) {
                self.require_interface(format!("vpn {vq} monitor source-interface"), src)
                    .map_err(|e| (Site::VpnMonitor(v.name.clone()), e))?;
            }
            let mut resolved: HashMap<ProxyId, &ProxyIdSpec> = HashMap::with_capacity(v.proxy_ids.len());
            for p in &v.proxy_ids {
                let site = || Site::VpnProxyId(v.name.clone(), p.clone());
                let referrer = format!("vpn {vq} proxy-id local-ip {} remote-ip {}", p.local, p.remote);
                let service = match Service::named(&p.service) {
                    Some(s) => s,
                    None => match self.services.get(&p.service.to_ascii_lowercase()) {
                        None => {
                            return Err((
                                site(),
                                ErrorKind::UnknownReference {
                                    referrer,
                                    kind: "service",
                                    name: p.service.clone(),
                                    hint: ": define it with set service NAME protocol ..., or use a predefined service such as ANY"
                                        .into(),
                                },
                            ))
                        }
                        Some(s) => match s.members.as_slice() {
                            [one] => *one,
                            more => {
                                return Err((
                                    site(),
                                    ErrorKind::WrongReference {
                                        referrer,
                                        name: p.service.clone(),
                                        reason: format!(
                                            "it has {} members and a proxy-id carries one protocol and port range: \
                                             give each member its own service and proxy-id",
                                            more.len()
                                        ),
                                    },
                                ))
                            }
                        },
                    },
                };
                let id = ProxyId { local: p.local, remote: p.remote, service };
                if let Some(first) = resolved.insert(id, p) {
                    return Err((
                        site(),
                        ErrorKind::DuplicateProxyId {
                            vpn: v.name.clone(),
                            proxy_id: format!("{first} (as {p})"),
                        },
                    ));
                }
            }
        }
        Ok(())
    }
}

fn new_vpn(name: &str, kind: VpnKind) -> Vpn {
    Vpn {
        name: name.into(),
        kind,
        id: None,
        bind: None,
        monitor: None,
        proxy_id_check: false,
        proxy_ids: Vec::new(),
        withdraw_routes: false,
    }
}

/// A service member in `set service` words, without `protocol`/`+`:
/// `tcp src-port 0-65535 dst-port 80-80`, `icmp type 8`, `47`.
pub(crate) fn member_words(s: &Service) -> String {
    let proto = s.ip_protocol().unwrap_or(0);
    let word = match proto {
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        1 => "icmp".to_string(),
        58 => "icmp6".to_string(),
        132 => "sctp".to_string(),
        n => n.to_string(),
    };
    match proto {
        6 | 17 | 132 => format!("{word} src-port {} dst-port {}", s.src_ports(), s.dst_ports()),
        1 | 58 => {
            let d = s.dst_ports();
            if d.is_any() {
                word
            } else if d.first() == d.last() {
                format!("{word} type {} code {}", d.first() >> 8, d.first() & 0xff)
            } else {
                format!("{word} type {}", d.first() >> 8)
            }
        }
        _ => word,
    }
}
