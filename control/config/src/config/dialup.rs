//! Dialup users and user groups, and next-hop tunnel binding: the
//! objects, what a line does to them, and the checks of the whole
//! (`REFERENCE.md` §4.1 and §6.5).
//!
//! Guarantees, with the rest of [`crate::config`]: a user a dialup gateway
//! admits is an IKE user with one identity no other user has; a user is in
//! one group and admitted by one gateway; every next-hop binding names a
//! tunnel interface and an AutoKey VPN bound there (or not bound yet); a
//! tunnel interface carries several AutoKey VPNs only when each has a
//! binding on it, and a route's `gateway` on it names a binding.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{conflict, no_such, Config, IkeGateway, Site, Vpn};
use crate::error::{q, ErrorKind};
use crate::model::*;

/// A dialup IKE user (`set user NAME ...`): an identity a client presents
/// in phase 1, admitted through a dialup gateway that names the user or
/// a group the user is in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct User {
    /// Its name.
    pub name: String,
    /// `uid N` (ScreenOS numbers its users in saved configurations).
    pub uid: Option<u32>,
    /// `ike-id ...`: the identity, matched whole.
    pub ike_id: Option<Identity>,
    /// `share-limit N`: at most N clients with this identity at once.
    pub share_limit: u32,
    /// `type ike`.
    pub ike: bool,
    /// `enable` (the default) or `disable`: a disabled user is refused in
    /// phase 1.
    pub enabled: bool,
}

impl User {
    fn new(name: &str) -> User {
        User {
            name: name.into(),
            uid: None,
            ike_id: None,
            share_limit: DEFAULT_SHARE_LIMIT,
            ike: false,
            enabled: true,
        }
    }

    /// True for a user a dialup gateway can admit: `type ike` with an
    /// `ike-id`.
    pub fn is_ike_user(&self) -> bool {
        self.ike && self.ike_id.is_some()
    }
}

/// A local user group (`set user-group NAME ...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserGroup {
    /// Its name.
    pub name: String,
    /// `id N`.
    pub id: Option<u32>,
    /// Its members (user names), in the order added.
    pub members: Vec<String>,
}

/// One next-hop tunnel binding (`set interface tunnel.N nhtb A vpn NAME`):
/// what routes through `interface` send to next hop `next_hop` goes into
/// `vpn`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nhtb {
    /// The tunnel interface.
    pub interface: InterfaceName,
    /// The next hop (the peer's tunnel address, as routes name it).
    pub next_hop: IpAddr,
    /// The VPN that carries it.
    pub vpn: String,
}

/// Most users a configuration holds.
pub const MAX_USERS: usize = 100_000;
/// Most user groups a configuration holds.
pub const MAX_USER_GROUPS: usize = 10_000;
/// Most next-hop tunnel bindings a configuration holds.
pub const MAX_NHTB: usize = 100_000;

impl Config {
    pub(super) fn set_nhtb(
        &mut self,
        interface: &InterfaceName,
        next_hop: IpAddr,
        vpn: &str,
    ) -> Result<(), ErrorKind> {
        if !interface.is_tunnel() {
            return Err(conflict(format!(
                "interface {} is not a tunnel interface: next-hop tunnel binding (nhtb) is for tunnel.N",
                q(interface.as_str())
            )));
        }
        let key = (interface.clone(), next_hop);
        match self.nhtb.get(&key) {
            Some(existing) if existing == vpn => {}
            Some(existing) => {
                return Err(conflict(format!(
                    "next hop {next_hop} on interface {} is already bound to vpn {}: one next hop leads to one VPN \
                     (unset interface {interface} nhtb {next_hop} first)",
                    q(interface.as_str()),
                    q(existing)
                )))
            }
            None if self.nhtb.len() >= MAX_NHTB => {
                return Err(conflict(format!("{MAX_NHTB} next-hop tunnel bindings are configured already: esprit holds no more")))
            }
            None => {
                self.nhtb.insert(key, vpn.to_owned());
            }
        }
        Ok(())
    }

    pub(super) fn set_user(&mut self, name: &str, setting: &UserSetting) -> Result<Vec<String>, ErrorKind> {
        let mut warnings = Vec::new();
        if !self.users.contains_key(name) {
            if self.users.len() >= MAX_USERS {
                return Err(conflict(format!(
                    "{MAX_USERS} users are configured already: esprit holds no more"
                )));
            }
            self.users.insert(name.to_owned(), User::new(name));
        }
        let user = self.users.get_mut(name).ok_or_else(|| no_such("user", name, ""))?;
        match setting {
            UserSetting::Uid(n) => user.uid = Some(*n),
            UserSetting::IkeId { id, share_limit } => {
                user.ike_id = Some(id.clone());
                user.share_limit = *share_limit;
                if *share_limit > 1 {
                    warnings.push(format!(
                        "user {}: share-limit {share_limit}: up to {share_limit} clients may present this one identity and \
                         key at once, and esprit tells them apart only by their addresses (ScreenOS pairs a shared IKE ID \
                         with XAuth, which esprit does not have): give each client its own user where you can",
                        q(name)
                    ));
                }
            }
            UserSetting::TypeIke => user.ike = true,
            UserSetting::Enabled(e) => user.enabled = *e,
        }
        Ok(warnings)
    }

    pub(super) fn set_user_group(&mut self, name: &str, setting: &UserGroupSetting) -> Result<(), ErrorKind> {
        match setting {
            UserGroupSetting::Define { id } => {
                if !self.user_groups.contains_key(name) {
                    if self.user_groups.len() >= MAX_USER_GROUPS {
                        return Err(conflict(format!(
                            "{MAX_USER_GROUPS} user groups are configured already: esprit holds no more"
                        )));
                    }
                    self.user_groups.insert(
                        name.to_owned(),
                        UserGroup { name: name.to_owned(), id: None, members: Vec::new() },
                    );
                }
                if let (Some(g), Some(id)) = (self.user_groups.get_mut(name), id) {
                    g.id = Some(*id);
                }
            }
            UserGroupSetting::Member(user) => {
                let g = self.user_groups.get_mut(name).ok_or_else(|| {
                    no_such("user-group", name, ": create it first with set user-group NAME location local")
                })?;
                if g.members.contains(user) {
                    return Err(conflict(format!(
                        "user {} is already a member of user-group {}",
                        q(user),
                        q(name)
                    )));
                }
                g.members.push(user.clone());
            }
        }
        Ok(())
    }
}

impl Config {
    /// True when `vpn` has a next-hop tunnel binding on `tunnel`.
    pub(super) fn has_nhtb(&self, tunnel: &InterfaceName, vpn: &str) -> bool {
        self.nhtb.iter().any(|((i, _), v)| i == tunnel && v == vpn)
    }

    /// Why `v` may not share `tunnel` with `other` (one of them AutoKey),
    /// or `None` when next-hop tunnel binding tells them apart.
    pub(super) fn sharing_conflict(&self, tunnel: &InterfaceName, other: &Vpn, v: &Vpn) -> Option<ErrorKind> {
        let t = q(tunnel.as_str());
        let (a, b) = (q(&other.name), q(&v.name));
        if other.is_manual() != v.is_manual() {
            let (auto, manual) = if other.is_manual() { (b, a) } else { (a, b) };
            return Some(conflict(format!(
                "interface {t} carries AutoKey IKE vpn {auto} and manual-key vpn {manual}: the two kinds never share a \
                 tunnel interface; bind one of them to another tunnel interface"
            )));
        }
        let missing = [other, v].into_iter().find(|x| !self.has_nhtb(tunnel, &x.name))?;
        Some(conflict(format!(
            "interface {t} carries vpn {a} and vpn {b}: several VPNs share a tunnel interface only by next-hop tunnel \
             binding, and vpn {} has no nhtb entry on it: add set interface {tunnel} nhtb PEER-ADDRESS vpn {} first, \
             put the proxy-ids on one VPN, or bind one of them to another tunnel interface",
            q(&missing.name),
            q(&missing.name)
        )))
    }

    /// The tunnel interfaces that carry several AutoKey VPNs (told apart
    /// by next-hop tunnel binding), with the names of those VPNs.
    pub fn shared_tunnels(&self) -> BTreeMap<InterfaceName, Vec<String>> {
        let mut on: BTreeMap<InterfaceName, Vec<String>> = BTreeMap::new();
        for v in self.vpns.values().filter(|v| !v.is_manual()) {
            if let Some(t) = &v.bind {
                on.entry(t.clone()).or_default().push(v.name.clone());
            }
        }
        on.retain(|_, vpns| vpns.len() > 1);
        on
    }

    /// A route's `gateway` on a tunnel interface with next-hop tunnel
    /// bindings names one of them (on a tunnel interface without any, the
    /// one VPN bound to it carries the route whatever its gateway, as
    /// before bindings existed); a route without one cannot choose among
    /// several VPNs (`shared` is [`Config::shared_tunnels`]).
    pub(super) fn check_route_next_hop(
        &self,
        r: &Route,
        shared: &BTreeMap<InterfaceName, Vec<String>>,
    ) -> Result<(), ErrorKind> {
        if !r.interface.is_tunnel() {
            return Ok(());
        }
        match r.gateway {
            Some(g)
                if !self.nhtb.contains_key(&(r.interface.clone(), g))
                    && self.nhtb.keys().any(|(i, _)| *i == r.interface) =>
            {
                Err(ErrorKind::WrongReference {
                referrer: format!("route {} interface {} gateway", r.prefix, r.interface),
                name: g.to_string(),
                reason: format!(
                    "{} has no nhtb entry for it: on a tunnel interface the gateway selects the VPN by next-hop \
                     tunnel binding (set interface {} nhtb {g} vpn NAME), or leave the gateway out",
                    r.interface, r.interface
                ),
                })
            }
            Some(_) => Ok(()),
            None => {
                if let Some(vpns) = shared.get(&r.interface) {
                    let bound: Vec<String> = vpns.iter().map(|v| q(v).to_string()).collect();
                    return Err(conflict(format!(
                        "route {} interface {} names no gateway, and {} carries vpn {}: give the route the next hop \
                         of its VPN's nhtb entry (gateway A)",
                        r.prefix,
                        r.interface,
                        r.interface,
                        bound.join(" and vpn ")
                    )));
                }
                Ok(())
            }
        }
    }

    /// Users, user groups and next-hop tunnel bindings on their own.
    #[allow(clippy::result_large_err)] // private, and only on the error path
    pub(super) fn validate_users(&self) -> Result<(), (Site, ErrorKind)> {
        let mut identities: BTreeMap<(u8, String), &User> = BTreeMap::new();
        let mut uids: BTreeMap<u32, &str> = BTreeMap::new();
        let shown = |u: &User| {
            u.ike_id
                .as_ref()
                .map(|id| format!("{} {}", identity_kind(id), q(&id.to_string())))
                .unwrap_or_default()
        };
        for u in self.users.values() {
            if let Some(id) = &u.ike_id {
                if let Some(other) = identities.insert(identity_key(id), u) {
                    return Err((
                        Site::UserIkeId(u.name.clone()),
                        conflict(format!(
                            "user {} (ike-id {}) and user {} (ike-id {}) have one identity: a client's identity \
                             names one user (share-limit N lets N clients share one user)",
                            q(&other.name),
                            shown(other),
                            q(&u.name),
                            shown(u)
                        )),
                    ));
                }
            }
            if let Some(uid) = u.uid {
                if let Some(other) = uids.insert(uid, &u.name) {
                    return Err((
                        Site::UserUid(u.name.clone()),
                        conflict(format!("user {} and user {} both have uid {uid}", q(other), q(&u.name))),
                    ));
                }
            }
        }
        let mut group_of: BTreeMap<&str, &str> = BTreeMap::new();
        let mut group_ids: BTreeMap<u32, &str> = BTreeMap::new();
        for g in self.user_groups.values() {
            let gq = q(&g.name);
            if self.users.contains_key(&g.name) {
                return Err((
                    Site::GroupDefine(g.name.clone()),
                    conflict(format!(
                        "user-group {gq} has the name of a user: a dialup gateway names one or the other, so their \
                         names differ"
                    )),
                ));
            }
            if let Some(id) = g.id {
                if let Some(other) = group_ids.insert(id, &g.name) {
                    return Err((
                        Site::GroupDefine(g.name.clone()),
                        conflict(format!("user-group {} and user-group {gq} both have id {id}", q(other))),
                    ));
                }
            }
            for m in &g.members {
                let site = || Site::GroupMember(g.name.clone(), m.clone());
                let referrer = format!("user-group {gq} user");
                match self.users.get(m) {
                    None => {
                        return Err((
                            site(),
                            ErrorKind::UnknownReference {
                                referrer,
                                kind: "user",
                                name: m.clone(),
                                hint: ": define it with set user NAME ike-id ... and set user NAME type ike"
                                    .into(),
                            },
                        ))
                    }
                    Some(u) if !u.is_ike_user() => {
                        return Err((
                            site(),
                            ErrorKind::WrongReference { referrer, name: m.clone(), reason: not_ike(u) },
                        ))
                    }
                    Some(_) => {}
                }
                if let Some(other) = group_of.insert(m, &g.name) {
                    return Err((
                        site(),
                        conflict(format!(
                            "user {} is already a member of user-group {}: a user belongs to one group, so that its \
                             identity leads to one dialup gateway",
                            q(m),
                            q(other)
                        )),
                    ));
                }
            }
        }
        for ((interface, next_hop), vpn) in &self.nhtb {
            let site = || Site::Nhtb(interface.clone(), *next_hop);
            let referrer = format!("interface {} nhtb {next_hop} vpn", q(interface.as_str()));
            self.require_interface(format!("interface {} nhtb {next_hop}", q(interface.as_str())), interface)
                .map_err(|e| (site(), e))?;
            let wrong = |reason: String| {
                (site(), ErrorKind::WrongReference { referrer: referrer.clone(), name: vpn.clone(), reason })
            };
            match self.vpns.get(vpn) {
                None => {
                    return Err((
                        site(),
                        ErrorKind::UnknownReference { referrer: referrer.clone(), kind: "vpn", name: vpn.clone(), hint: String::new() },
                    ))
                }
                Some(v) if v.is_manual() => {
                    return Err(wrong(
                        "it is a manual-key VPN: manual-key VPNs sharing a tunnel interface are told apart by their \
                         proxy-ids"
                            .into(),
                    ))
                }
                Some(v) => match &v.bind {
                    Some(b) if b != interface => {
                        return Err(wrong(format!("it is bound to interface {b}, not {interface}")))
                    }
                    _ => {}
                },
            }
        }
        Ok(())
    }

    /// A dialup gateway names an IKE user or a user group, and no user is
    /// reached by two gateways.
    pub(super) fn check_dialup<'a>(
        &'a self,
        g: &'a IkeGateway,
        name: &'a str,
        reach: &mut BTreeMap<&'a str, &'a str>,
    ) -> Result<(), ErrorKind> {
        let referrer = format!("ike gateway {} dialup", q(&g.name));
        let users: Vec<&str> = if let Some(u) = self.users.get(name) {
            if !u.is_ike_user() {
                return Err(ErrorKind::WrongReference { referrer, name: name.into(), reason: not_ike(u) });
            }
            vec![u.name.as_str()]
        } else if let Some(group) = self.user_groups.get(name) {
            group.members.iter().map(String::as_str).collect()
        } else {
            return Err(ErrorKind::UnknownReference {
                referrer,
                kind: "user or user-group",
                name: name.into(),
                hint: ": define a user (set user NAME ike-id ..., set user NAME type ike) or a group \
                       (set user-group NAME location local)"
                    .into(),
            });
        };
        for u in users {
            if let Some(other) = reach.insert(u, &g.name) {
                return Err(conflict(format!(
                    "user {} is already admitted by ike gateway {}: a client's identity leads to one dialup gateway",
                    q(u),
                    q(other)
                )));
            }
        }
        Ok(())
    }

    /// What the configuration as a whole is worth a warning for, with the
    /// site that made it so: a dialup gateway whose group has no users, a
    /// next-hop tunnel binding whose VPN is not bound to its tunnel
    /// interface (yet: `to_lines` prints a VPN's bindings before its own
    /// `bind`).
    pub(super) fn standing_warnings(&self) -> Vec<(Site, String)> {
        let mut out = Vec::new();
        for g in self.gateways.values() {
            if let GatewayPeer::Dialup(d) = &g.peer {
                if self.user_groups.get(d).is_some_and(|grp| grp.members.is_empty()) {
                    out.push((
                        Site::GatewayPeer(g.name.clone()),
                        format!(
                            "ike gateway {}: user-group {} has no users: no client can connect through it yet \
                             (set user-group {} user NAME)",
                            q(&g.name),
                            q(d),
                            q(d)
                        ),
                    ));
                }
            }
        }
        for ((interface, next_hop), vpn) in &self.nhtb {
            if self.vpns.get(vpn).is_some_and(|v| v.bind.is_none()) {
                out.push((
                    Site::Nhtb(interface.clone(), *next_hop),
                    format!(
                        "interface {} nhtb {next_hop}: vpn {} is not bound to {interface}: the binding applies once it is \
                         (set vpn {} bind interface {interface})",
                        q(interface.as_str()),
                        q(vpn),
                        q(vpn)
                    ),
                ));
            }
        }
        out
    }
}

/// Why a user cannot be admitted by a dialup gateway.
fn not_ike(u: &User) -> String {
    match (u.ike, u.ike_id.is_some()) {
        (false, _) => format!("it is not an IKE user: set user {} type ike", q(&u.name)),
        _ => format!("it has no IKE identity: set user {} ike-id u-fqdn|fqdn|ip VALUE", q(&u.name)),
    }
}

/// The `ike-id` word of an identity.
pub(crate) fn identity_kind(id: &Identity) -> &'static str {
    match id {
        Identity::Address(_) => "ip",
        Identity::UserFqdn(_) => "u-fqdn",
        Identity::Fqdn(_) => "fqdn",
        // IKE's kind; no configuration line types one.
        Identity::KeyId(_) => "key-id",
    }
}

/// Two identities are the same when of one kind and equal, names compared
/// without case (DNS names are case-insensitive, RFC 4343).
fn identity_key(id: &Identity) -> (u8, String) {
    match id {
        Identity::Address(a) => (0, a.to_string()),
        Identity::UserFqdn(s) => (1, s.to_ascii_lowercase()),
        Identity::Fqdn(s) => (2, s.to_ascii_lowercase()),
        Identity::KeyId(_) => (3, id.to_string()),
    }
}
