//! The status of proxy-IDs and tunnel interfaces, and the VPN monitor's
//! side of the controller: its targets from the configuration, its probes
//! to fastpathd, the replies fastpathd reports, and the status changes it
//! records in the event log.
//!
//! Status rules (KB16008, "VPN Monitor", whose SA states are active,
//! inactive and down). One word means one thing in `get interface`, `get
//! vpn`, `get sa id`, the event log and the metrics ([`LEGEND`]):
//!
//! * a proxy-ID is **UP** (active) when its SA pair is installed — and, if
//!   it is the proxy-ID the VPN monitor probes through, the monitor is not
//!   DOWN;
//! * **READY** (inactive) when it has no SA pair and none was lost: never
//!   negotiated (waiting for traffic or IKE), or deleted for want of
//!   traffic (`idletime`, [`crate::core::idle`]); traffic negotiates it
//!   again;
//! * **DOWN** (lost) when that monitor is DOWN, or when it lost its SA pair
//!   otherwise (it was UP and has none now: the peer deleted it, DPD
//!   declared the peer dead, it expired, `clear sa`). ScreenOS shows a
//!   lost SA as inactive again, but an operator (and `withdraw-routes`,
//!   status/withdraw.rs) needs to tell "not needed now" from "broken";
//! * a tunnel interface is UP if one of its proxy-IDs is UP, READY if one
//!   is READY, DOWN if all are DOWN or it has none (the first rule set);
//! * with a VPN monitor whose `destination-ip` matches one of the VPN's
//!   proxy-IDs (a host behind a non-ScreenOS peer), only that proxy-ID
//!   decides: DOWN if the monitor is DOWN, otherwise that proxy-ID's
//!   status (the second rule set: the other proxy-IDs' tunnels would drop
//!   the probe, so their state says nothing).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Instant, SystemTime};

use esprit_config::model::GatewayPeer;
use esprit_config::{InterfaceIp, VpnKind};
use esprit_fastpath_api::{Direction, Request};
use esprit_policy::FlowKey;

pub(crate) mod book;
pub mod pair;
pub(crate) mod withdraw;

pub(crate) use pair::{Pair, Side};

use crate::core::controller::Controller;
use crate::core::events::{EventKind, EventRecord, Severity};
use crate::core::monitor::{Facts, MonitorAction, MonitorStatus, Target, MONITOR_IDENT, PROBE_SIZE};

/// The status of a proxy-ID or a tunnel interface (KB16008: active,
/// inactive, down), by the rules above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Active: the SA pair is installed (and the monitor, if it decides,
    /// is not DOWN).
    Up,
    /// Inactive: never negotiated, or gone idle; waiting for traffic or
    /// IKE.
    Ready,
    /// Lost its SA pair, or its VPN monitor is DOWN.
    Down,
}

/// What the status words mean, as `get interface` and `get vpn` print it.
pub const LEGEND: &str = "UP - an SA pair is active; READY - inactive: never negotiated, or gone idle; DOWN - lost: deleted, expired, peer dead, or the VPN monitor is DOWN";

impl Status {
    /// The word the operator sees (`get vpn`, `get interface`, the event
    /// log, the Prometheus label).
    pub fn word(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Ready => "READY",
            Status::Down => "DOWN",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so the tables' column widths apply.
        f.pad(self.word())
    }
}

/// ICMP protocol number.
const ICMP: u8 = 1;

impl Controller {
    /// The IPv4 address of an interface (a tunnel interface's is the one of
    /// the port it borrows from).
    fn interface_v4(&self, name: &str) -> Option<Ipv4Addr> {
        match &self.config.interface(name)?.ip {
            Some(InterfaceIp::Address(a)) => match a.addr {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            },
            Some(InterfaceIp::Unnumbered(port)) => self.interface_v4(port.as_str()),
            None => None,
        }
    }

    /// What each VPN with `monitor` watches. Defaults as ScreenOS: the
    /// destination is the peer gateway, the source the outgoing
    /// interface's address.
    pub(crate) fn monitor_targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        for v in self.config.vpns() {
            let Some(m) = &v.monitor else { continue };
            let (peer, outgoing) = match &v.kind {
                VpnKind::AutoKey(a) => {
                    let g = self.config.gateway(&a.gateway);
                    let peer = match g.map(|g| &g.peer) {
                        Some(GatewayPeer::Address(x)) => Some(*x),
                        _ => None,
                    };
                    (peer, g.map(|g| g.outgoing_interface.to_string()))
                }
                VpnKind::Manual(k) => (Some(k.gateway), Some(k.outgoing_interface.to_string())),
            };
            let source_interface = m.source_interface.as_ref().map(|i| i.to_string()).or(outgoing);
            let src = source_interface.as_deref().and_then(|i| self.interface_v4(i));
            let dst = match m.destination.or(peer) {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            };
            let mut problem = match (src, dst) {
                (None, _) => Some(format!(
                    "source interface {} has no IPv4 address",
                    source_interface.as_deref().unwrap_or("-")
                )),
                (_, None) => Some(
                    "no IPv4 destination: give destination-ip (the peer has no static IPv4 address)".into(),
                ),
                _ => None,
            };
            // The proxy-ID an echo request from src to dst matches, chosen
            // as the fast path's classifier does: most specific wins.
            let mut proxy_id = match (src, dst) {
                (Some(s), Some(d)) => {
                    let key = FlowKey::v4(s, d, ICMP, 0, FlowKey::icmp_type_code(8, 0));
                    self.config
                        .proxy_ids(&v.name)
                        .into_iter()
                        .enumerate()
                        .filter(|(_, p)| p.matches_outbound(&key))
                        .max_by_key(|(i, p)| (p.remote.len(), p.local.len(), std::cmp::Reverse(*i)))
                        .map(|(_, p)| p.to_string())
                }
                _ => None,
            };
            // The probe follows the route table (it is a packet from the
            // LAN to the fast path): a destination not routed into the
            // VPN's tunnel, or matching none of its proxy-IDs, would leave
            // in clear or be dropped. ScreenOS's default destination, the
            // peer gateway, is such an address: esprit does not probe it.
            if let (None, Some(d)) = (&problem, dst) {
                let tunnel = v.bind.as_ref().map(|b| b.to_string());
                if self.route_interface(d) != tunnel || tunnel.is_none() {
                    problem = Some(format!(
                        "destination {d} is not routed into {}: give destination-ip, a host behind the peer",
                        tunnel.as_deref().unwrap_or("a tunnel interface (the vpn is not bound)")
                    ));
                } else if proxy_id.is_none() {
                    problem = Some(format!(
                        "an echo request from {} to {d} matches none of the vpn's proxy-IDs",
                        src.map_or("-".to_owned(), |s| s.to_string())
                    ));
                }
            }
            if problem.is_some() {
                proxy_id = None;
            }
            out.push(Target {
                vpn: v.name.clone(),
                hex_id: self.hex_ids.get(&v.name).copied().unwrap_or(0),
                src,
                source_interface,
                dst,
                explicit_destination: m.destination.is_some(),
                proxy_id,
                optimized: m.optimized,
                rekey: m.rekey,
                problem,
            });
        }
        out
    }

    /// The interface the configuration routes `dst` through: the longest
    /// prefix among the static routes and the ports' subnets.
    fn route_interface(&self, dst: Ipv4Addr) -> Option<String> {
        let dst = IpAddr::V4(dst);
        let connected =
            self.config.interfaces().filter(|i| !i.name.is_tunnel()).filter_map(|i| match &i.ip {
                Some(InterfaceIp::Address(a)) => a.subnet().map(|s| (s, i.name.to_string(), 0)),
                _ => None,
            });
        let routes = self.config.routes().iter().map(|r| (r.prefix, r.interface.to_string(), r.metric));
        connected
            .chain(routes)
            .filter(|(p, _, _)| p.contains(dst))
            .max_by_key(|(p, _, metric)| (p.len(), std::cmp::Reverse(*metric)))
            .map(|(_, i, _)| i)
    }

    /// Follows the configuration (at start and after every change).
    pub(crate) fn reconfigure_monitor(&mut self) {
        let targets = self.monitor_targets();
        self.monitor.configure(self.config.vpnmonitor(), targets);
    }

    /// The VPN monitor's turn (the daemon calls it often; monitors act at
    /// their interval): sends the probes that are due to fastpathd (a
    /// refusal is logged when its reply comes). Returns the SA ids whose
    /// pairs IKE must renegotiate (`rekey`, the monitor went DOWN).
    pub fn monitor_tick(&mut self, now: Instant) -> Vec<u64> {
        // The daemon calls often; the pairs are gathered only when a
        // monitor is due (a tunnel may carry thousands of proxy-IDs).
        if !self.monitor.is_due(now) {
            return Vec::new();
        }
        let pairs = self.pairs();
        let facts = |t: &Target| {
            let mine: Vec<&Pair> = pairs
                .iter()
                .filter(|p| p.vpn == t.vpn && t.proxy_id.as_ref().is_none_or(|id| *id == p.proxy_id))
                .collect();
            let up = mine.iter().find(|p| p.up());
            Facts {
                sa_up: up.is_some(),
                inbound_packets: mine.iter().map(|p| p.packets().0).sum(),
                outbound_sa: if t.proxy_id.is_some() {
                    up.and_then(|p| p.outbound.as_ref().map(|s| s.id))
                } else {
                    None
                },
            }
        };
        let actions = self.monitor.tick(now, (self.clock)(), facts);
        let mut renegotiate = Vec::new();
        for a in actions {
            match a {
                MonitorAction::Probe { vpn, src, dst, seq } => {
                    let r = Request::Probe { src, dst, ident: MONITOR_IDENT, seq, size: PROBE_SIZE };
                    self.send_probe(vpn, seq, r);
                }
                MonitorAction::Renegotiate { vpn, sa } => {
                    self.log.push(format!(
                        "vpn monitor {vpn}: DOWN with SA {sa:#x} installed: renegotiating (rekey)"
                    ));
                    renegotiate.push(sa);
                }
                change @ MonitorAction::Changed { .. } => self.note_monitor_change(change),
            }
        }
        self.refresh_status();
        renegotiate
    }

    /// fastpathd reported an echo reply of ours.
    pub(crate) fn monitor_reply(&mut self, sa: u64, src: Ipv4Addr, seq: u16) {
        let hex_id = crate::core::translate::hex_id_of(sa);
        for change in self.monitor.reply((self.clock)(), hex_id, src, seq) {
            self.note_monitor_change(change);
        }
        self.refresh_status();
    }

    fn note_monitor_change(&mut self, change: MonitorAction) {
        let MonitorAction::Changed { vpn, from, to, why } = change else { return };
        let target = self.monitor.get(&vpn).map(|m| m.target.clone());
        // The proxy-ID it probes through (its status follows the monitor's).
        if let Some(pid) = target.as_ref().and_then(|t| t.proxy_id.clone()) {
            self.status.touch((vpn.clone(), pid));
        }
        let severity = if to == MonitorStatus::Down { Severity::Warning } else { Severity::Notice };
        let dst = target.as_ref().and_then(|t| t.dst).map_or("-".to_owned(), |d| d.to_string());
        let mut r = EventRecord::new(
            severity,
            EventKind::VpnMonitor,
            format!("vpn {vpn}: vpn monitor {} (was {}): {why}, destination {dst}", to.word(), from.word()),
        );
        r.vpn = Some(vpn.clone());
        r.proxy_id = target.and_then(|t| t.proxy_id);
        r.peer = Some(self.vpn_gateway(&vpn).1).filter(|p| p != "-");
        self.events.push((self.clock)(), r);
    }

    /// The monitor's state for the proxy-ID of `p`, when the VPN monitor
    /// probes through it.
    pub(crate) fn monitored(&self, p: &Pair) -> Option<MonitorStatus> {
        let m = self.monitor.get(&p.vpn)?;
        (m.target.proxy_id.as_deref() == Some(p.proxy_id.as_str())).then_some(m.status)
    }

    /// UP: the SA pair is installed, and the VPN monitor (if it probes
    /// through this proxy-ID) is not DOWN. DOWN: that monitor is DOWN, or
    /// the proxy-ID was UP (or DOWN) at the last look and has no SA pair
    /// now — it lost its SAs (peer's Delete, dead peer, expiry, `clear
    /// sa`). READY: inactive, never negotiated since controld started (or
    /// since the proxy-ID was configured), or its pair was deleted for
    /// want of traffic (`idletime`): waiting for traffic or IKE.
    pub(crate) fn pair_status(&self, p: &Pair) -> Status {
        self.status_rule(&p.vpn, &p.proxy_id, p.up())
    }

    /// [`Controller::pair_status`] of the proxy-ID `proxy_id` of `vpn`,
    /// whose SA pair is installed (`up`) or not.
    fn status_rule(&self, vpn: &str, proxy_id: &str, up: bool) -> Status {
        let monitor_down = self
            .monitor
            .get(vpn)
            .filter(|m| m.target.proxy_id.as_deref() == Some(proxy_id))
            .is_some_and(|m| m.status == MonitorStatus::Down);
        if up && !monitor_down {
            Status::Up
        } else if monitor_down {
            Status::Down
        } else if self.idled.contains(&(vpn.to_owned(), proxy_id.to_owned())) {
            // Deleted for want of traffic: inactive, not lost.
            Status::Ready
        } else if matches!(self.status_word(vpn, proxy_id), Some(Status::Up | Status::Down)) {
            Status::Down
        } else {
            Status::Ready
        }
    }

    /// The status of a proxy-ID at the last [`Controller::refresh_status`].
    pub(crate) fn status_word(&self, vpn: &str, proxy_id: &str) -> Option<Status> {
        self.status.get(&(vpn.to_owned(), proxy_id.to_owned())).map(|(w, _)| *w)
    }

    /// Whether the proxy-ID `key` has its SA pair installed, as
    /// [`Controller::pairs`] sees it (the newest SA of each direction,
    /// negotiated before configured), from the indexes: `None` when it
    /// has no pair at all (neither SAs nor a pending proxy-ID).
    pub(crate) fn pair_up(&self, key: &crate::core::negotiated::PairKey) -> Option<bool> {
        let negotiated = self.ike_sas.ids_of(key);
        let configured = self.index.configured.get(key);
        let newest = |direction: Direction| {
            let of = |id: &&u64| {
                self.ike_sas
                    .get(id)
                    .or_else(|| self.desired.sas.get(id))
                    .is_some_and(|d| d.spec.direction == direction)
            };
            negotiated.and_then(|ids| ids.iter().rev().find(of)).or_else(|| {
                configured
                    .and_then(|ids| ids.iter().rev().filter(|id| !self.ike_sas.contains_key(id)).find(of))
            })
        };
        let (inbound, outbound) = (newest(Direction::Inbound), newest(Direction::Outbound));
        let has_configured =
            configured.is_some_and(|ids| ids.iter().any(|id| !self.ike_sas.contains_key(id)));
        if negotiated.is_none() && !has_configured && !self.index.pending.contains(key) {
            return None;
        }
        let installed = |id: Option<&u64>| id.is_some_and(|id| self.sa.is_installed(*id));
        Some(installed(inbound) && installed(outbound))
    }

    /// The tunnel interface's status by the rules above, from the
    /// proxy-IDs' last statuses (a count per VPN, not a pass over every
    /// pair).
    fn tunnel_status_now(&self, tunnel: &str) -> Status {
        let vpns = self.index.vpns_of.get(tunnel).map_or(&[][..], Vec::as_slice);
        let decider = vpns
            .iter()
            .filter_map(|v| self.monitor.get(v))
            .find(|m| m.target.explicit_destination && m.target.proxy_id.is_some());
        if let Some(m) = decider {
            if m.status == MonitorStatus::Down {
                return Status::Down;
            }
            let pid = m.target.proxy_id.clone().unwrap_or_default();
            return self.status_word(&m.target.vpn, &pid).unwrap_or(Status::Down);
        }
        let mut counts = [0usize; 3];
        for v in vpns {
            for (sum, n) in counts.iter_mut().zip(self.status.counts(v)) {
                *sum += n;
            }
        }
        if counts[0] > 0 {
            Status::Up
        } else if counts[1] > 0 {
            Status::Ready
        } else {
            Status::Down
        }
    }

    /// The tunnel interface's status and the rule that decided it: `None`
    /// for the first rule set (any SA), the VPN for the second (its
    /// monitor's proxy-ID alone).
    pub(crate) fn tunnel_status_of(&self, vpns: &[&str], pairs: &[Pair]) -> (Status, Option<String>) {
        let decider = vpns
            .iter()
            .filter_map(|v| self.monitor.get(v))
            .find(|m| m.target.explicit_destination && m.target.proxy_id.is_some());
        if let Some(m) = decider {
            let pair = pairs
                .iter()
                .find(|p| p.vpn == m.target.vpn && Some(&p.proxy_id) == m.target.proxy_id.as_ref());
            let status = match pair {
                _ if m.status == MonitorStatus::Down => Status::Down,
                Some(p) => self.pair_status(p),
                None => Status::Down,
            };
            return (status, Some(m.target.vpn.clone()));
        }
        let mine: Vec<Status> =
            pairs.iter().filter(|p| vpns.contains(&p.vpn.as_str())).map(|p| self.pair_status(p)).collect();
        let status = if mine.contains(&Status::Up) {
            Status::Up
        } else if mine.contains(&Status::Ready) {
            Status::Ready
        } else {
            Status::Down
        };
        (status, None)
    }

    /// Notes the status of the proxy-IDs touched since the last call (an
    /// install, expiry or delete touches its own; a configuration change
    /// or a lost fastpathd touches all) and of their tunnel interfaces; a
    /// change is recorded in the event log with its time (shown by `get
    /// vpn`). The first sight of a proxy-ID is not a change. The work is
    /// proportional to what was touched, not to the number of proxy-IDs.
    pub fn refresh_status(&mut self) {
        use crate::core::negotiated::PairKey;
        let touched = self.status.take_touched();
        let everything = touched.is_none();
        let mut keys: Vec<PairKey> = match touched {
            Some(t) if t.is_empty() => return,
            Some(t) => t.into_iter().collect(),
            None => {
                let mut all: std::collections::BTreeSet<PairKey> = self.status.pair_keys().cloned().collect();
                all.extend(self.index.configured.keys().cloned());
                all.extend(self.index.pending.iter().cloned());
                all.extend(self.ike_sas.keys().cloned());
                all.extend(self.withdrawn.keys().cloned());
                all.into_iter().collect()
            }
        };
        // The order of `pairs()` (HEX ID, then configuration order), so
        // the events read the same whatever touched them.
        keys.sort_by_cached_key(|k| {
            let hex = self.hex_ids.get(&k.0).copied().unwrap_or(u32::MAX);
            (hex, self.index.position.get(k).copied().unwrap_or(usize::MAX), k.1.clone())
        });
        let now = (self.clock)();
        let mut changes = Vec::new();
        for key in &keys {
            let Some(up) = self.pair_up(key) else {
                self.status.remove(key);
                self.idled.remove(key);
                continue;
            };
            let word = self.status_rule(&key.0, &key.1, up);
            match self.status.get(key).copied() {
                Some((w, _)) if w == word => {}
                Some((w, _)) => {
                    changes.push((key.0.clone(), Some(key.1.clone()), w, word));
                    self.status.set(key.clone(), word, Some(now));
                }
                None => self.status.set(key.clone(), word, None),
            }
        }
        let affected: std::collections::HashSet<&str> =
            keys.iter().filter_map(|k| self.index.tunnel_of.get(&k.0)).map(String::as_str).collect();
        let tunnels: Vec<String> = self
            .config
            .interfaces()
            .filter(|i| i.name.is_tunnel())
            .map(|i| i.name.to_string())
            .filter(|t| everything || affected.contains(t.as_str()))
            .collect();
        if everything {
            let gone: Vec<PairKey> =
                self.status.tunnel_keys().filter(|k| !tunnels.contains(&k.1)).cloned().collect();
            for k in gone {
                self.status.remove(&k);
            }
        }
        for t in tunnels {
            let word = self.tunnel_status_now(&t);
            let key = (String::new(), t.clone());
            match self.status.get(&key).copied() {
                Some((w, _)) if w == word => {}
                Some((w, _)) => {
                    changes.push((t, None, w, word));
                    self.status.set(key, word, Some(now));
                }
                None => self.status.set(key, word, None),
            }
        }
        self.update_withdrawals(&keys);
        for (who, proxy_id, from, to) in changes {
            let severity = if to == Status::Up { Severity::Notice } else { Severity::Warning };
            let mut r = match &proxy_id {
                Some(pid) => {
                    let mut r = EventRecord::new(
                        severity,
                        EventKind::Status,
                        format!("vpn {who} proxy-id {pid}: {to} (was {from})"),
                    );
                    r.vpn = Some(who.clone());
                    r.proxy_id = Some(pid.clone());
                    r
                }
                None => EventRecord::new(
                    severity,
                    EventKind::Status,
                    format!("interface {who}: {to} (was {from})"),
                ),
            };
            if let Some(v) = &r.vpn {
                r.peer = Some(self.vpn_gateway(v).1).filter(|p| p != "-");
            }
            self.events.push(now, r);
        }
    }

    /// Every proxy-ID's status (`UP`, `READY`, `DOWN`) and whether its
    /// routes are withdrawn, as (VPN, proxy-ID, status, withdrawn): the
    /// Prometheus endpoint's gauges.
    pub fn proxy_id_statuses(&self) -> Vec<ProxyIdStatus> {
        self.pairs()
            .iter()
            .map(|p| ProxyIdStatus {
                vpn: p.vpn.clone(),
                proxy_id: p.proxy_id.clone(),
                status: self.pair_status(p).word(),
                routes_withdrawn: self.is_withdrawn(p),
            })
            .collect()
    }

    /// When the status of a proxy-ID (or, with `vpn` empty, of a tunnel
    /// interface) last changed, if it did since controld started.
    pub(crate) fn status_since(&self, vpn: &str, what: &str) -> Option<SystemTime> {
        self.status.get(&(vpn.to_owned(), what.to_owned())).and_then(|(_, t)| *t)
    }
}

/// A proxy-ID's status for the gauges (see `get vpn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyIdStatus {
    pub vpn: String,
    /// In ScreenOS words.
    pub proxy_id: String,
    /// `UP`, `READY` or `DOWN`.
    pub status: &'static str,
    /// Its routes are withdrawn (`withdraw-routes`).
    pub routes_withdrawn: bool,
}
