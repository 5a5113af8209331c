//! Printing a [`Config`] back as canonical `set` lines (what `get config`
//! and `save` show).
//!
//! Guarantee: the lines load back into an equal configuration, in the order
//! printed even with [`Config::apply`] (objects are printed before what
//! refers to them: ports, tunnel interfaces, services, users and user
//! groups, proposals, gateways, VPNs (each with its next-hop tunnel
//! bindings before its `bind`), routes). Names are quoted as ScreenOS
//! prints them; secrets are printed as given, since this is the
//! configuration file — never log it.

use core::fmt::Write;

use crate::config::{identity_kind, member_words, Config, InterfaceIp, VpnKind};
use crate::model::{
    Fragmentation, GatewayPeer, Identity, IkeVersion, VpnMonitorTiming, DEFAULT_AUTOKEY_REPLAY_WINDOW,
    DEFAULT_MANUAL_REPLAY_WINDOW, DEFAULT_METRIC,
};
use crate::proposal::ProposalChoice;

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// `replay`, `replay window N` (a size other than `default`) or `no-replay`.
fn replay_words(replay: bool, window: u32, default: u32) -> String {
    match (replay, window == default) {
        (false, _) => "no-replay".into(),
        (true, true) => "replay".into(),
        (true, false) => format!("replay window {window}"),
    }
}

fn choice(c: &ProposalChoice) -> String {
    match c {
        ProposalChoice::SecLevel(l) => format!("sec-level {}", l.word()),
        ProposalChoice::Named(names) => {
            let names: Vec<String> = names.iter().map(|n| quoted(n)).collect();
            format!("proposal {}", names.join(" "))
        }
    }
}

impl Config {
    /// The configuration as canonical `set` lines.
    pub fn to_lines(&self) -> Vec<String> {
        // Lines kept without being enforced stand where ScreenOS saves
        // them: clock, hostname and zones before the interfaces, the
        // address book after them, policies after the VPNs.
        let mut out: Vec<String> = self.kept.lines(&["clock", "hostname", "zone"]).collect();
        let mut interfaces: Vec<_> = self.interfaces().collect();
        interfaces.sort_by_key(|i| (i.name.is_tunnel(), i.name.tunnel_number(), i.name.clone()));
        for i in interfaces {
            let head = format!("set interface {}", quoted(i.name.as_str()));
            if let Some(z) = &i.zone {
                out.push(format!("{head} zone {}", quoted(z)));
            }
            match &i.ip {
                Some(InterfaceIp::Address(a)) => out.push(format!("{head} ip {a}")),
                Some(InterfaceIp::Unnumbered(t)) => out.push(format!("{head} ip unnumbered interface {t}")),
                None => {}
            }
            if let Some(m) = i.mtu {
                out.push(format!("{head} mtu {m}"));
            }
            if let Some(p) = &i.port {
                out.push(format!("{head} port {}", quoted(p)));
            }
        }
        out.extend(self.kept.lines(&["address", "group"]));
        for s in self.services() {
            for (n, m) in s.members.iter().enumerate() {
                let verb = if n == 0 { "protocol" } else { "+" };
                out.push(format!("set service {} {verb} {}", quoted(&s.name), member_words(m)));
            }
        }
        // Users and their groups, as ScreenOS saves them: before the
        // gateways that name them.
        for u in self.users() {
            let head = format!("set user {}", quoted(&u.name));
            if let Some(uid) = u.uid {
                out.push(format!("{head} uid {uid}"));
            }
            if let Some(id) = &u.ike_id {
                let value = match id {
                    Identity::Address(a) => a.to_string(),
                    other => quoted(&other.to_string()),
                };
                out.push(format!(
                    "{head} ike-id {} {value} share-limit {}",
                    identity_kind(id),
                    u.share_limit
                ));
            }
            if u.ike {
                out.push(format!("{head} type ike"));
            }
            out.push(format!("{head} {}", if u.enabled { "enable" } else { "disable" }));
        }
        for g in self.user_groups() {
            let head = format!("set user-group {}", quoted(&g.name));
            match g.id {
                Some(id) => out.push(format!("{head} id {id} location local")),
                None => out.push(format!("{head} location local")),
            }
            for m in &g.members {
                out.push(format!("{head} user {}", quoted(m)));
            }
        }
        for c in self.local_certs() {
            out.push(format!(
                "set pki local-cert {} certificate {} key {}",
                quoted(&c.name),
                quoted(&c.certificate),
                quoted(&c.key)
            ));
        }
        for (name, file) in self.ca_certs() {
            out.push(format!("set pki ca-cert {} file {}", quoted(name), quoted(file)));
        }
        for p in self.p1_proposals() {
            let s = &p.suite;
            out.push(format!(
                "set ike p1-proposal {} {} {} esp {} {} second {}",
                quoted(&p.name),
                s.auth.word(),
                s.group,
                s.cipher.word(),
                s.hash.word(),
                s.lifetime_secs
            ));
        }
        for p in self.p2_proposals() {
            let s = &p.suite;
            let mut line = format!("set ike p2-proposal {} ", quoted(&p.name));
            match s.pfs {
                Some(g) => line.push_str(&g.to_string()),
                None => line.push_str("no-pfs"),
            }
            let (cipher, integrity) = crate::proposal::esp_words(s.esp);
            let _ = write!(line, " esp {}", cipher.word());
            if let Some(h) = integrity {
                let _ = write!(line, " {}", h.word());
            }
            let _ = write!(line, " second {}", s.lifetime_secs);
            if let Some(k) = s.lifetime_kbytes {
                let _ = write!(line, " kbyte {k}");
            }
            out.push(line);
        }
        for g in self.gateways() {
            let head = match g.version {
                IkeVersion::V1 => format!("set ike gateway {}", quoted(&g.name)),
                IkeVersion::V2 => format!("set ike gateway ikev2 {}", quoted(&g.name)),
            };
            let mode = match g.version {
                IkeVersion::V1 => format!(" {}", g.mode.word()),
                IkeVersion::V2 => String::new(),
            };
            let peer = match &g.peer {
                GatewayPeer::Address(a) => format!("address {a}"),
                GatewayPeer::Dialup(d) => format!("dialup {}", quoted(d)),
                GatewayPeer::Dynamic(id) => format!("dynamic {}", quoted(&id.to_string())),
            };
            let key = match g.preshare.expose() {
                "" => String::new(),
                k => format!(" preshare {}", quoted(k)),
            };
            out.push(format!(
                "{head} {peer}{mode} outgoing-interface {}{key} {}",
                quoted(g.outgoing_interface.as_str()),
                choice(&g.proposals)
            ));
            if let Some(n) = g.nat_traversal {
                let udp = if n.udp_checksum { " udp-checksum" } else { "" };
                out.push(format!("{head} nat-traversal{udp} keepalive-frequency {}", n.keepalive_secs));
            }
            if let Some(d) = g.dpd {
                out.push(format!("{head} dpd-liveness interval {} retry {}", d.interval_secs, d.retry));
            }
            if let Some(id) = &g.local_id {
                out.push(format!("{head} local-id {}", quoted(&id.to_string())));
            }
            if let Some(id) = &g.peer_id {
                out.push(format!("{head} peer-id {}", quoted(&id.to_string())));
            }
            if let Some(n) = &g.my_cert {
                out.push(format!("{head} cert my-cert {}", quoted(n)));
            }
            if let Some(n) = &g.peer_ca {
                out.push(format!("{head} cert peer-ca {}", quoted(n)));
            }
            match g.fragmentation {
                Some(Fragmentation::Size(n)) => out.push(format!("{head} fragmentation size {n}")),
                Some(Fragmentation::Disabled) => out.push(format!("{head} fragmentation disable")),
                None => {}
            }
        }
        for v in self.vpns() {
            let head = format!("set vpn {}", quoted(&v.name));
            match &v.kind {
                VpnKind::AutoKey(a) => out.push(format!(
                    "{head} gateway {} {} tunnel{} idletime {} {}",
                    quoted(&a.gateway),
                    replay_words(a.replay, a.replay_window, DEFAULT_AUTOKEY_REPLAY_WINDOW),
                    if a.esn { " esn" } else { "" },
                    a.idletime_mins,
                    choice(&a.proposals)
                )),
                VpnKind::Manual(m) => {
                    let mut line = format!(
                        "{head} manual {:x} {:x} gateway {} outgoing-interface {} esp {} key {}",
                        m.local_spi,
                        m.remote_spi,
                        m.gateway,
                        quoted(m.outgoing_interface.as_str()),
                        m.cipher.word(),
                        m.encryption_key.expose()
                    );
                    if let Some((h, k)) = &m.auth {
                        let _ = write!(line, " auth {} key {}", h.word(), k.expose());
                    }
                    // The defaults (replay, window 64, no ESN) print as
                    // nothing, as ScreenOS writes a manual-key line.
                    if !m.replay || m.replay_window != DEFAULT_MANUAL_REPLAY_WINDOW {
                        line.push(' ');
                        line.push_str(&replay_words(m.replay, m.replay_window, DEFAULT_MANUAL_REPLAY_WINDOW));
                    }
                    if m.esn {
                        line.push_str(" esn");
                    }
                    out.push(line);
                }
            }
            if let Some(m) = &v.monitor {
                let mut line = format!("{head} monitor");
                if let Some(s) = &m.source_interface {
                    let _ = write!(line, " source-interface {}", quoted(s.as_str()));
                }
                if let Some(d) = m.destination {
                    let _ = write!(line, " destination-ip {d}");
                }
                if m.optimized {
                    line.push_str(" optimized");
                }
                if m.rekey {
                    line.push_str(" rekey");
                }
                out.push(line);
            }
            if v.withdraw_routes {
                out.push(format!("{head} withdraw-routes"));
            }
            let mut proxy_lines = Vec::new();
            if v.proxy_id_check {
                proxy_lines.push(format!("{head} proxy-id check"));
            }
            for p in &v.proxy_ids {
                proxy_lines.push(format!("{head} proxy-id {p}"));
            }
            // A manual-key VPN that shares its tunnel interface must have its
            // proxy-ID before it is bound (the union has no duplicate).
            if v.is_manual() {
                out.append(&mut proxy_lines);
            }
            // Next-hop tunnel bindings before the binding they make legal:
            // a second VPN binds to a tunnel interface only with one.
            for n in self.nhtb().filter(|n| n.vpn == v.name) {
                out.push(format!("set interface {} nhtb {} vpn {}", n.interface, n.next_hop, quoted(&n.vpn)));
            }
            match (v.id, &v.bind) {
                (Some(id), Some(t)) => out.push(format!("{head} id {id:#x} bind interface {t}")),
                (Some(id), None) => out.push(format!("{head} id {id:#x}")),
                (None, Some(t)) => out.push(format!("{head} bind interface {t}")),
                (None, None) => {}
            }
            out.append(&mut proxy_lines);
        }
        out.extend(self.kept.lines(&["policy"]));
        if let Some(mss) = self.tcp_mss() {
            out.push(format!("set flow tcp-mss {mss}"));
        }
        // The VPN monitor's timing, when not ScreenOS's default.
        let m = self.vpnmonitor();
        if m != VpnMonitorTiming::default() {
            out.push(format!("set vpnmonitor interval {} threshold {}", m.interval_secs, m.threshold));
        }
        for r in self.routes() {
            let mut line = format!("set route {} interface {}", r.prefix, r.interface);
            if let Some(g) = r.gateway {
                let _ = write!(line, " gateway {g}");
            }
            if r.metric != DEFAULT_METRIC {
                let _ = write!(line, " metric {}", r.metric);
            }
            out.push(line);
        }
        out
    }
}
