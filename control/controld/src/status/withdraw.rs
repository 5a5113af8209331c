//! Route withdrawal per proxy-ID (`set vpn NAME withdraw-routes`, esprit's
//! extension): the routes into a VPN's tunnel interface that lie inside the
//! remote prefix of one of its DOWN proxy-IDs leave fastpathd's table, so a
//! less preferred route to the same prefix (a backup VPN, or `interface
//! null` so that nothing leaves in clear) or a wider route takes that
//! traffic; they come back when the proxy-ID is UP again.
//!
//! ScreenOS and Junos withdraw routes per tunnel interface, when the VPN
//! monitor declares the whole tunnel down; a tunnel carrying many
//! proxy-IDs (the seed's point) then loses every subnet for one bad
//! selector. Here each proxy-ID answers for its own remote subnets.
//!
//! * Only DOWN withdraws (status/mod.rs: the proxy-ID was UP and lost its SA
//!   pair, or the VPN monitor probing through it is DOWN). A proxy-ID that
//!   was never negotiated is READY and keeps its routes: its first packet
//!   is what negotiates it on demand.
//! * A route is withdrawn when its prefix lies inside the remote prefix;
//!   a wider route (10.2.0.0/16 over the proxy-IDs' 10.2.1.0/24 and
//!   10.2.2.0/24) also carries the UP proxy-IDs and stays.
//! * Traffic no longer reaches a withdrawn proxy-ID to renegotiate it, so
//!   controld does: at once, then every [`RETRY`] while it is DOWN
//!   without an SA pair.
//! * The VPN monitor's destination keeps a host route into the tunnel
//!   while its route is withdrawn: its probes are what brings a monitored
//!   proxy-ID back.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use esprit_fastpath_api::{NextHopSpec, RouteSpec};
use esprit_policy::Prefix;

use super::Pair;
use crate::core::controller::Controller;
use crate::core::events::{EventKind, EventRecord, Severity};
use crate::core::translate::select_routes;

/// How often controld renegotiates a withdrawn proxy-ID that has no SA.
pub(crate) const RETRY: Duration = Duration::from_secs(10);

/// A DOWN proxy-ID whose routes are withdrawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Withdrawal {
    /// N of the VPN's `tunnel.N`.
    pub(crate) tunnel: u32,
    /// The proxy-ID's remote prefix.
    pub(crate) remote: Prefix,
    /// When controld next asks IKE for it (`None`: now).
    pub(crate) next_try: Option<Instant>,
}

/// Withdrawn proxy-IDs ((VPN, proxy-ID)) by (tunnel, remote prefix).
pub(crate) type WithdrawalIndex<'a> = BTreeMap<(u32, Prefix), &'a (String, String)>;

/// The (VPN, proxy-ID) whose withdrawal takes `spec` out of the table: one
/// whose remote prefix, on the route's tunnel, holds the route's prefix.
/// One look per prefix length, whatever the number of withdrawals.
pub(crate) fn withdrawn_by<'a>(
    index: &WithdrawalIndex<'a>,
    spec: &RouteSpec,
) -> Option<&'a (String, String)> {
    let NextHopSpec::Tunnel { tunnel } = spec.next_hop else { return None };
    if index.is_empty() {
        return None;
    }
    let prefix: Prefix = spec.prefix.parse().ok()?;
    (0..=prefix.len()).rev().find_map(|len| {
        let outer = Prefix::new_masked(prefix.addr(), len).ok()?;
        index.get(&(tunnel, outer)).copied()
    })
}

impl Controller {
    /// Follows the status of the proxy-IDs `keys` (after
    /// [`Controller::refresh_status`] noted it): the DOWN proxy-IDs of
    /// VPNs with `withdraw-routes` are withdrawn, the others restored;
    /// each change is an event naming the routes, and marks the route
    /// table for programming.
    pub(crate) fn update_withdrawals(&mut self, keys: &[(String, String)]) {
        let mut down: BTreeMap<(String, String), (u32, Prefix)> = BTreeMap::new();
        let mut gone: Vec<(String, String)> = Vec::new();
        for key in keys {
            let tunnel = self.index.withdraw_tunnel.get(&key.0).copied();
            let remote = self.index.remote.get(key).copied();
            match (tunnel, remote) {
                (Some(t), Some(r)) if self.status_word(&key.0, &key.1) == Some(super::Status::Down) => {
                    down.insert(key.clone(), (t, r));
                }
                _ if self.withdrawn.contains_key(key) => gone.push(key.clone()),
                _ => {}
            }
        }
        gone.sort();
        let mut changed = false;
        for key in gone {
            if let Some(w) = self.withdrawn.remove(&key) {
                let routes = self.routes_of(w.tunnel, &w.remote);
                self.note_withdrawal(&key, false, &routes);
                changed = true;
            }
        }
        for (key, (tunnel, remote)) in down {
            if self.withdrawn.get(&key).is_some_and(|w| w.tunnel == tunnel && w.remote == remote) {
                continue;
            }
            let routes = self.routes_of(tunnel, &remote);
            self.note_withdrawal(&key, true, &routes);
            self.withdrawn.insert(key, Withdrawal { tunnel, remote, next_try: None });
            changed = true;
        }
        if changed {
            self.routes_pending = true;
            self.desync();
        }
    }

    /// The configured routes into `tunnel.N` inside `remote`, in words.
    fn routes_of(&self, tunnel: u32, remote: &Prefix) -> Vec<String> {
        self.config
            .routes()
            .iter()
            .filter(|r| r.interface.tunnel_number() == Some(tunnel) && remote.covers(&r.prefix))
            .map(|r| format!("{} interface {}", r.prefix, r.interface))
            .collect()
    }

    fn note_withdrawal(&mut self, (vpn, proxy_id): &(String, String), withdrawn: bool, routes: &[String]) {
        let what = if routes.is_empty() {
            "no route lies inside its remote prefix".to_owned()
        } else if withdrawn {
            format!("route(s) withdrawn: {}", routes.join(", "))
        } else {
            format!("route(s) restored: {}", routes.join(", "))
        };
        let state = if withdrawn { "DOWN" } else { "no longer DOWN" };
        let mut r = EventRecord::new(
            if withdrawn { Severity::Warning } else { Severity::Notice },
            EventKind::Route,
            format!("vpn {vpn} proxy-id {proxy_id} {state}: {what}"),
        );
        r.vpn = Some(vpn.clone());
        r.proxy_id = Some(proxy_id.clone());
        r.peer = Some(self.vpn_gateway(vpn).1).filter(|p| p != "-");
        self.events.push((self.clock)(), r);
        self.log.push(format!("vpn {vpn} proxy-id {proxy_id} {state}: {what}"));
    }

    /// True when the proxy-ID of `p` has its routes withdrawn.
    pub(crate) fn is_withdrawn(&self, p: &Pair) -> bool {
        self.withdrawn.contains_key(&(p.vpn.clone(), p.proxy_id.clone()))
    }

    /// The withdrawals by (tunnel, remote prefix), for [`withdrawn_by`]: a
    /// dead peer may take thousands of proxy-IDs, each with its route.
    pub(crate) fn withdrawal_index(&self) -> WithdrawalIndex<'_> {
        let mut index = BTreeMap::new();
        for (key, w) in &self.withdrawn {
            index.entry((w.tunnel, w.remote)).or_insert(key);
        }
        index
    }

    /// The route table fastpathd gets: the configuration's, less the
    /// withdrawn routes (a less preferred candidate of the same prefix
    /// takes over), plus a host route into the tunnel for each VPN
    /// monitor destination whose route is withdrawn.
    pub(crate) fn routes_in_effect(&self) -> Vec<RouteSpec> {
        let candidates = &self.desired.route_candidates;
        if self.withdrawn.is_empty() {
            return self.desired.routes.clone();
        }
        let index = self.withdrawal_index();
        let mut routes = select_routes(candidates, |s| withdrawn_by(&index, s).is_some());
        for m in self.monitor.iter().map(|m| &m.target) {
            let (Some(dst), Some(pid)) = (m.dst, m.proxy_id.as_ref()) else { continue };
            let Some(w) = self.withdrawn.get(&(m.vpn.clone(), pid.clone())) else { continue };
            let host = Prefix::host(IpAddr::V4(dst)).to_string();
            if w.remote.contains(IpAddr::V4(dst)) && !candidates.iter().any(|(_, c)| c.prefix == host) {
                routes.push(RouteSpec { prefix: host, next_hop: NextHopSpec::Tunnel { tunnel: w.tunnel } });
            }
        }
        routes
    }

    /// True once after a withdrawal or restoration: the daemon then
    /// programs fastpathd ([`Controller::sync`]).
    pub fn take_routes_pending(&mut self) -> bool {
        std::mem::take(&mut self.routes_pending)
    }

    /// The withdrawn proxy-IDs IKE should negotiate now, as (tunnel number,
    /// proxy-ID in ScreenOS words, first try since the withdrawal): those
    /// without an SA pair whose retry is due. The next retry is [`RETRY`]
    /// later.
    pub fn withdrawn_to_negotiate(&mut self, now: Instant) -> Vec<(u32, String, bool)> {
        // The daemon asks every loop; the pairs (thousands, maybe) are
        // gathered only when a retry is due.
        if !self.withdrawn.values().any(|w| w.next_try.is_none_or(|t| now >= t)) {
            return Vec::new();
        }
        let due: Vec<(String, String)> = self
            .withdrawn
            .iter()
            .filter(|(_, w)| w.next_try.is_none_or(|t| now >= t))
            .map(|(k, _)| k.clone())
            .collect();
        let up: std::collections::HashSet<(String, String)> =
            due.into_iter().filter(|k| self.pair_up(k) == Some(true)).collect();
        let mut out = Vec::new();
        for (key, w) in &mut self.withdrawn {
            if w.next_try.is_some_and(|t| now < t) {
                continue;
            }
            let pid = &key.1;
            if !up.contains(key) {
                out.push((w.tunnel, pid.clone(), w.next_try.is_none()));
            }
            w.next_try = Some(now + RETRY);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_withdrawn_when_it_lies_inside_a_withdrawn_remote_prefix_on_its_tunnel() {
        let key = ("test".to_owned(), "local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 ANY".to_owned());
        let mut index: WithdrawalIndex<'_> = BTreeMap::new();
        index.insert((1, "10.2.2.0/24".parse().unwrap()), &key);
        let route = |prefix: &str, next_hop: NextHopSpec| RouteSpec { prefix: prefix.into(), next_hop };
        let t = |tunnel| NextHopSpec::Tunnel { tunnel };
        assert_eq!(withdrawn_by(&index, &route("10.2.2.0/24", t(1))), Some(&key));
        assert_eq!(withdrawn_by(&index, &route("10.2.2.128/25", t(1))), Some(&key), "narrower");
        assert_eq!(withdrawn_by(&index, &route("10.2.2.7/32", t(1))), Some(&key), "a host");
        assert_eq!(withdrawn_by(&index, &route("10.2.0.0/16", t(1))), None, "wider: other proxy-IDs use it");
        assert_eq!(withdrawn_by(&index, &route("10.2.3.0/24", t(1))), None, "beside");
        assert_eq!(withdrawn_by(&index, &route("10.2.2.0/24", t(2))), None, "another tunnel");
        assert_eq!(
            withdrawn_by(&index, &route("10.2.2.0/24", NextHopSpec::Null)),
            None,
            "the backstop stays"
        );
        assert_eq!(withdrawn_by(&index, &route("not a prefix", t(1))), None);
    }
}
