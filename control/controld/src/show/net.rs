//! `get vpn`, `get interface`, `get route`, `get counter`: the VPNs,
//! interfaces and routes of the configuration with what fastpathd holds
//! and counts (the JSON documents are listed in the parent module).

use std::collections::BTreeMap;

use esprit_config::InterfaceIp;
use esprit_fastpath_api::{NextHopSpec, RouteSpec, WorkerCounters};
use serde_json::{json, Value};

use super::{json_response, opt_num};
use crate::core::controller::{Controller, Response};
use crate::core::events::rfc3339;
use crate::core::monitor::VpnMonitor;
use crate::status::{Pair, Status};

impl Controller {
    pub(crate) fn get_vpn(&self, command: &str, name: Option<&str>, json: bool) -> Response {
        let vpns: Vec<&esprit_config::Vpn> = match name {
            Some(n) => match self.config.vpn(n) {
                Some(v) => vec![v],
                None => {
                    let names: Vec<&str> = self.config.vpns().map(|v| v.name.as_str()).collect();
                    return Response::err(format!(
                        "{command}: no vpn {n:?} (configured: {})",
                        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                    ));
                }
            },
            None => self.config.vpns().collect(),
        };
        let pairs = self.pairs();
        let of = |vpn: &str| pairs.iter().filter(|p| p.vpn == vpn).collect::<Vec<_>>();
        if json {
            let list: Vec<Value> = vpns
                .iter()
                .map(|v| {
                    let (gateway, peer, mode) = self.vpn_gateway(&v.name);
                    let pids: Vec<Value> = of(&v.name)
                        .iter()
                        .map(|p| {
                            let (i, o, d) = p.packets();
                            json!({
                                "hex_id": format!("{:08x}", p.hex_id),
                                "proxy_id": p.proxy_id,
                                "state": self.pair_status(p).word(),
                                "changed": self.status_since(&p.vpn, &p.proxy_id).map(rfc3339),
                                "monitored": self.monitored(p).is_some(),
                                "routes_withdrawn": self.is_withdrawn(p),
                                "packets_in": i,
                                "packets_out": o,
                                "drops": d,
                            })
                        })
                        .collect();
                    json!({
                        "name": v.name,
                        "gateway": gateway,
                        "peer": peer,
                        "mode": mode,
                        "interface": self.vpn_interface(&v.name),
                        "proxy_id_check": v.enforces_proxy_ids(),
                        "withdraw_routes": v.withdraw_routes,
                        "proxy_ids": pids,
                        "monitor": self.monitor.get(&v.name).map(|m| self.monitor_json(m)),
                    })
                })
                .collect();
            return json_response(&json!({ "vpns": list }));
        }
        let mut out = Vec::new();
        if name.is_none() {
            out.push(crate::status::LEGEND.to_owned());
            out.push(format!(
                "{:<15} {:<15} {:<8} {:<11} {:<14} {:>9} {:>3}",
                "Name", "Gateway", "Mode", "Interface", "Proxy-ID check", "Proxy-IDs", "Up"
            ));
            for v in &vpns {
                let (gateway, _, mode) = self.vpn_gateway(&v.name);
                let p = of(&v.name);
                out.push(format!(
                    "{:<15} {:<15} {:<8} {:<11} {:<14} {:>9} {:>3}",
                    v.name,
                    gateway,
                    mode,
                    self.vpn_interface(&v.name),
                    if v.enforces_proxy_ids() { "on" } else { "off" },
                    p.len(),
                    p.iter().filter(|p| self.pair_status(p) == Status::Up).count()
                ));
            }
        }
        for v in &vpns {
            if !out.is_empty() {
                out.push(String::new());
            }
            out.push(format!(
                "vpn \"{}\": {}, {}, proxy-id check {}{}",
                v.name,
                self.vpn_words(&v.name),
                self.vpn_interface(&v.name),
                if v.enforces_proxy_ids() { "on" } else { "off" },
                if v.withdraw_routes { ", withdraw-routes on" } else { "" }
            ));
            out.push(format!(
                "  {:<9} {:<46} {:<5} {:>10} {:>11} {:>7}  Changed",
                "HEX ID", "Proxy-ID", "State", "Packets in", "Packets out", "Drops"
            ));
            for p in of(&v.name) {
                let (i, o, d) = p.packets();
                let changed = self.status_since(&p.vpn, &p.proxy_id).map_or("-".to_owned(), rfc3339);
                let mut mark = if self.monitored(p).is_some() { " (monitored)" } else { "" }.to_owned();
                if self.is_withdrawn(p) {
                    mark.push_str(" (routes withdrawn)");
                }
                out.push(format!(
                    "  {:08x}  {:<46} {:<5} {i:>10} {o:>11} {d:>7}  {changed}{mark}",
                    p.hex_id,
                    p.proxy_id,
                    self.pair_status(p)
                ));
            }
            if let Some(m) = self.monitor.get(&v.name) {
                out.extend(self.monitor_lines(m));
            }
        }
        Response::ok(out)
    }

    /// `get vpn NAME`'s lines about the VPN monitor.
    fn monitor_lines(&self, m: &VpnMonitor) -> Vec<String> {
        let t = &m.target;
        let timing = self.monitor.timing();
        let since = m.changed_at.map_or(String::new(), |s| format!(" since {}", rfc3339(s)));
        let src = match (t.src, &t.source_interface) {
            (Some(a), Some(i)) => format!("{a} ({i})"),
            (None, Some(i)) => format!("- ({i})"),
            _ => "-".to_owned(),
        };
        let dst = t.dst.map_or("-".to_owned(), |d| d.to_string());
        let mut out = vec![
            format!("  vpn monitor {}{since}: {src} -> {dst}", m.status.word()),
            format!(
                "    proxy-id {}",
                t.proxy_id
                    .as_deref()
                    .unwrap_or("none matches the destination: the probe follows the route table")
            ),
            format!(
                "    interval {} s, threshold {}, rekey {}, optimized {}",
                timing.interval_secs,
                timing.threshold,
                if t.rekey { "on" } else { "off" },
                if t.optimized { "on" } else { "off" }
            ),
            format!(
                "    probes sent {}, answered {}, skipped {} (traffic), lost in a row {}",
                m.sent, m.answered, m.skipped, m.lost_in_row
            ),
        ];
        if let Some(p) = &t.problem {
            out.push(format!("    no probes: {p}"));
        }
        out
    }

    fn monitor_json(&self, m: &VpnMonitor) -> Value {
        let t = &m.target;
        let timing = self.monitor.timing();
        json!({
            "status": m.status.json(),
            "changed": m.changed_at.map(rfc3339),
            "source": t.src.map(|a| a.to_string()),
            "source_interface": t.source_interface,
            "destination": t.dst.map(|a| a.to_string()),
            "proxy_id": t.proxy_id,
            "interval_secs": timing.interval_secs,
            "threshold": timing.threshold,
            "rekey": t.rekey,
            "optimized": t.optimized,
            "probes_sent": m.sent,
            "probes_answered": m.answered,
            "probes_skipped": m.skipped,
            "lost_in_row": m.lost_in_row,
            "problem": t.problem,
        })
    }

    /// The seed's status of a tunnel interface (see the status module).
    fn tunnel_status(&self, name: &str, pairs: &[Pair]) -> &'static str {
        self.tunnel_status_of(&self.bound_vpns(name), pairs).0.word()
    }

    pub(crate) fn bound_vpns(&self, interface: &str) -> Vec<&str> {
        self.config
            .vpns()
            .filter(|v| v.bind.as_ref().is_some_and(|b| b.as_str() == interface))
            .map(|v| v.name.as_str())
            .collect()
    }

    fn device(&self, interface: &str) -> Option<String> {
        self.port_map.get(interface).cloned().or_else(|| self.config.interface(interface)?.port.clone())
    }

    pub(crate) fn get_interface(&self, command: &str, name: Option<&str>, json: bool) -> Response {
        let list: Vec<&esprit_config::Interface> = match name {
            Some(n) => match self.config.interface(n) {
                Some(i) => vec![i],
                None => {
                    let names: Vec<String> = self.config.interfaces().map(|i| i.name.to_string()).collect();
                    return Response::err(format!(
                        "{command}: no interface {n:?} (configured: {})",
                        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                    ));
                }
            },
            None => self.config.interfaces().collect(),
        };
        let pairs = self.pairs();
        struct Row {
            name: String,
            zone: String,
            ip: String,
            mtu: Option<u16>,
            device: Option<String>,
            status: Option<&'static str>,
            vpns: Vec<String>,
        }
        let rows: Vec<Row> = list
            .iter()
            .map(|i| {
                let tunnel = i.name.is_tunnel();
                let name = i.name.to_string();
                Row {
                    zone: i.zone.clone().unwrap_or_else(|| "-".into()),
                    ip: match &i.ip {
                        Some(InterfaceIp::Address(a)) => a.to_string(),
                        Some(InterfaceIp::Unnumbered(u)) => format!("unnumbered {u}"),
                        None => "-".into(),
                    },
                    mtu: if tunnel {
                        Some(i.mtu.unwrap_or(crate::core::translate::DEFAULT_TUNNEL_MTU))
                    } else {
                        i.mtu
                    },
                    device: if tunnel { None } else { self.device(&name) },
                    status: tunnel.then(|| self.tunnel_status(&name, &pairs)),
                    vpns: self.bound_vpns(&name).into_iter().map(str::to_owned).collect(),
                    name,
                }
            })
            .collect();
        if json {
            let list: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let decided_by = r.status.and_then(|_| {
                        let vpns: Vec<&str> = r.vpns.iter().map(String::as_str).collect();
                        self.tunnel_status_of(&vpns, &pairs).1
                    });
                    let monitor = decided_by.as_ref().and_then(|v| self.monitor.get(v)).map(|m| {
                        json!({
                            "vpn": m.target.vpn, "status": m.status.json(),
                            "proxy_id": m.target.proxy_id,
                            "destination": m.target.dst.map(|a| a.to_string()),
                        })
                    });
                    json!({
                        "name": r.name, "zone": r.zone, "ip": r.ip, "mtu": r.mtu,
                        "device": r.device, "status": r.status, "vpns": r.vpns,
                        "changed": r.status.and_then(|_| self.status_since("", &r.name)).map(rfc3339),
                        "monitor": monitor,
                    })
                })
                .collect();
            return json_response(&json!({ "interfaces": list }));
        }
        let mut out = Vec::new();
        if name.is_none() {
            out.push(crate::status::LEGEND.to_owned());
            out.push(format!(
                "{:<13} {:<24} {:<9} {:>5} {:<8} {:<6} VPNs",
                "Name", "IP Address", "Zone", "MTU", "Device", "State"
            ));
            for r in &rows {
                out.push(format!(
                    "{:<13} {:<24} {:<9} {:>5} {:<8} {:<6} {}",
                    r.name,
                    r.ip,
                    r.zone,
                    opt_num(r.mtu),
                    r.device.as_deref().unwrap_or("-"),
                    r.status.unwrap_or("-"),
                    if r.vpns.is_empty() { "-".to_owned() } else { r.vpns.join(", ") }
                ));
            }
            return Response::ok(out);
        }
        for r in &rows {
            out.push(format!("Interface {}:", r.name));
            out.push(format!("  zone {}, ip {}, mtu {}", r.zone, r.ip, opt_num(r.mtu)));
            if let Some(d) = &r.device {
                out.push(format!("  device {d}"));
            }
            if let Some(status) = r.status {
                let mine: Vec<&Pair> = pairs.iter().filter(|p| r.vpns.contains(&p.vpn)).collect();
                let vpns: Vec<&str> = r.vpns.iter().map(String::as_str).collect();
                let changed = self
                    .status_since("", &r.name)
                    .map_or(String::new(), |t| format!(" (changed {})", rfc3339(t)));
                match self.tunnel_status_of(&vpns, &pairs).1.and_then(|v| self.monitor.get(&v)) {
                    // KB16008's second rule set: the monitored proxy-ID alone.
                    Some(m) => out.push(format!(
                        "  status {status}: decided by vpn {}'s monitor (monitor {}, destination {}, proxy-id {}){changed}",
                        m.target.vpn,
                        m.status.word(),
                        m.target.dst.map_or("-".to_owned(), |d| d.to_string()),
                        m.target.proxy_id.as_deref().unwrap_or("-")
                    )),
                    None => out.push(format!(
                        "  status {status}: {} of {} SA pair(s) active{changed}",
                        mine.iter().filter(|p| self.pair_status(p) == Status::Up).count(),
                        mine.len()
                    )),
                }
            }
            if r.status.is_some() && r.vpns.is_empty() {
                out.push("  no vpn bound".to_owned());
            }
            for v in &r.vpns {
                let (gateway, _, mode) = self.vpn_gateway(v);
                let n = self.config.proxy_ids(v).len();
                out.push(format!("  bound vpn {v} ({mode}, gateway {gateway}, {n} proxy-id(s))"));
            }
        }
        Response::ok(out)
    }

    pub(crate) fn get_route(&self, json: bool) -> Response {
        struct Row {
            prefix: String,
            interface: String,
            gateway: Option<String>,
            kind: &'static str,
            metric: u32,
            device: Option<String>,
            installed: bool,
            /// (VPN, proxy-ID) whose DOWN status withdrew it.
            withdrawn_by: Option<(String, String)>,
        }
        let routes = &self.routes_in_effect();
        let withdrawals = self.withdrawal_index();
        let installed =
            |prefix: &str, hop: &NextHopSpec| routes.iter().any(|r| r.prefix == prefix && &r.next_hop == hop);
        let mut rows = Vec::new();
        for i in self.config.interfaces() {
            if i.name.is_tunnel() {
                continue;
            }
            let Some(InterfaceIp::Address(a)) = &i.ip else { continue };
            let Some(subnet) = a.subnet() else { continue };
            let device = self.device(i.name.as_str());
            let prefix = subnet.to_string();
            let inst = device
                .as_ref()
                .is_some_and(|d| installed(&prefix, &NextHopSpec::Port { port: d.clone(), gateway: None }));
            rows.push(Row {
                prefix,
                interface: i.name.to_string(),
                gateway: None,
                kind: "connected",
                metric: 0,
                device,
                installed: inst,
                withdrawn_by: None,
            });
        }
        for r in self.config.routes() {
            let prefix = r.prefix.to_string();
            let (device, hop) = match r.interface.tunnel_number() {
                Some(tunnel) => (Some(r.interface.to_string()), Some(NextHopSpec::Tunnel { tunnel })),
                None if r.interface.is_null() => (None, Some(NextHopSpec::Null)),
                None => {
                    let d = self.device(r.interface.as_str());
                    let gw = match r.gateway {
                        Some(std::net::IpAddr::V4(g)) => Some(g),
                        _ => None,
                    };
                    let hop = d.clone().map(|port| NextHopSpec::Port { port, gateway: gw });
                    (d, hop)
                }
            };
            let withdrawn_by = hop
                .as_ref()
                .and_then(|h| {
                    super::withdrawn_by(
                        &withdrawals,
                        &RouteSpec { prefix: prefix.clone(), next_hop: h.clone() },
                    )
                })
                .cloned();
            rows.push(Row {
                installed: hop.is_some_and(|h| installed(&prefix, &h)),
                prefix,
                interface: r.interface.to_string(),
                gateway: r.gateway.map(|g| g.to_string()),
                kind: "static",
                metric: r.metric,
                device,
                withdrawn_by,
            });
        }
        // Routes controld adds: a VPN monitor destination's host route
        // while its proxy-ID's routes are withdrawn.
        for r in routes.iter() {
            let NextHopSpec::Tunnel { tunnel } = r.next_hop else { continue };
            let name = format!("tunnel.{tunnel}");
            if rows.iter().any(|x| x.prefix == r.prefix && x.interface == name) {
                continue;
            }
            rows.push(Row {
                prefix: r.prefix.clone(),
                interface: name.clone(),
                gateway: None,
                kind: "monitor",
                metric: 0,
                device: Some(name),
                installed: true,
                withdrawn_by: None,
            });
        }
        if json {
            let list: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let withdrawn_by =
                        r.withdrawn_by.as_ref().map(|(vpn, pid)| json!({ "vpn": vpn, "proxy_id": pid }));
                    json!({
                        "prefix": r.prefix, "interface": r.interface, "gateway": r.gateway,
                        "type": r.kind, "metric": r.metric, "device": r.device, "installed": r.installed,
                        "withdrawn_by": withdrawn_by,
                    })
                })
                .collect();
            return json_response(&json!({ "routes": list }));
        }
        let mut out = vec![
            format!(
                "IPv4 routes: {} ({} installed in fastpathd, marked *)",
                rows.len(),
                rows.iter().filter(|r| r.installed).count()
            ),
            format!(
                "  {:<19} {:<13} {:<16} {:<10} {:>6} {}",
                "IP-Prefix", "Interface", "Gateway", "Type", "Metric", "Device"
            ),
        ];
        for r in &rows {
            let mut line = format!(
                "{} {:<19} {:<13} {:<16} {:<10} {:>6} {}",
                if r.installed { '*' } else { ' ' },
                r.prefix,
                r.interface,
                r.gateway.as_deref().unwrap_or("-"),
                r.kind,
                r.metric,
                r.device.as_deref().unwrap_or("-")
            );
            if let Some((vpn, pid)) = &r.withdrawn_by {
                line.push_str(&format!("  withdrawn: vpn {vpn} proxy-id {pid} DOWN"));
            }
            out.push(line);
        }
        Response::ok(out)
    }

    pub(crate) fn get_counter(&self, json: bool) -> Response {
        let workers = &self.stats.workers;
        let drops = self.drops();
        if json {
            let list: Vec<Value> = workers
                .iter()
                .map(|w| {
                    let d: BTreeMap<&str, u64> = w.drops.iter().map(|(r, n)| (r.as_str(), *n)).collect();
                    let mut m = serde_json::Map::new();
                    m.insert("worker".into(), json!(w.worker));
                    m.insert("core".into(), json!(w.core));
                    for (c, n) in w.counters.iter().filter(|(c, _)| c.json) {
                        m.insert(c.name.into(), json!(n));
                    }
                    m.insert("drops".into(), json!(d));
                    Value::Object(m)
                })
                .collect();
            let ingest: BTreeMap<&str, u64> = self.ike_ingest.iter().collect();
            let v2 = self.ike_view.v2_dropped.iter().map(|(d, n)| (d.counter_name(), n));
            let ike: BTreeMap<&str, u64> =
                self.ike_view.discards.iter().map(|(d, n)| (d.name(), n)).chain(v2).collect();
            return json_response(
                &json!({ "workers": list, "drops": drops, "ike_ingest_dropped": ingest, "ike_discards": ike }),
            );
        }
        // The columns are the worker counters that declare one.
        let mut header = format!("{:<6} {:>4}", "Worker", "Core");
        for c in WorkerCounters::INFO {
            if let Some((heading, width)) = c.column {
                header.push_str(&format!(" {heading:>width$}"));
            }
        }
        let mut out = vec![header];
        if workers.is_empty() {
            out.push("(no counters: fastpathd not read yet)".into());
        }
        for w in workers {
            let mut line = format!("{:<6} {:>4}", w.worker, opt_num(w.core));
            for (c, n) in w.counters.iter() {
                if let Some((_, width)) = c.column {
                    line.push_str(&format!(" {n:>width$}"));
                }
            }
            out.push(line);
        }
        // The counters without a column, summed, with each worker's share.
        out.push(String::new());
        out.push(format!("{:<28} {:>10}  per worker", "Other counters", "Count"));
        for (i, c) in WorkerCounters::INFO.iter().enumerate().filter(|(_, c)| c.column.is_none()) {
            let per: Vec<(String, u64)> =
                workers.iter().map(|w| (w.worker.to_string(), w.counters.values()[i])).collect();
            let total: u64 = per.iter().map(|(_, n)| n).sum();
            let shares: Vec<String> =
                per.iter().filter(|(_, n)| *n > 0).map(|(w, n)| format!("{w}: {n}")).collect();
            let line = format!("{:<28} {total:>10}  {}", c.name.replace('_', "-"), shares.join(", "));
            out.push(line.trim_end().to_string());
        }
        out.push(String::new());
        out.push(format!("{:<28} {:>10}  per worker", "Drops by reason", "Packets"));
        if drops.is_empty() {
            out.push("none".into());
        }
        for (reason, n) in &drops {
            let per: Vec<String> = workers
                .iter()
                .filter_map(|w| {
                    w.drops.iter().find(|(r, _)| r == reason).map(|(_, k)| format!("{}: {k}", w.worker))
                })
                .collect();
            out.push(format!("{reason:<28} {n:>10}  {}", per.join(", ")));
        }
        out.push(String::new());
        out.push(format!("{:<28} {:>10}", "IKE datagrams dropped", "Datagrams"));
        for (reason, n) in self.ike_ingest.iter() {
            out.push(format!("{reason:<28} {n:>10}"));
        }
        // IKE's own: datagrams controld discarded unanswered.
        out.push(String::new());
        out.push(format!("{:<28} {:>10}", "IKE discards by reason", "Datagrams"));
        let ike: Vec<_> = self.ike_view.discards.iter().filter(|(_, n)| *n > 0).collect();
        if ike.is_empty() && self.ike_view.v2_dropped.total() == 0 {
            out.push("none".into());
        }
        for (d, n) in ike {
            out.push(format!("{:<28} {n:>10}  {}", d.name(), d.description()));
        }
        for (d, n) in self.ike_view.v2_dropped.iter().filter(|(_, n)| *n > 0) {
            out.push(format!("{:<28} {n:>10}  IKEv2: {}", d.counter_name(), d.description()));
        }
        Response::ok(out)
    }
}
