//! The operator's `get` and `clear` commands, in ScreenOS 6.3's words:
//! pure renderings of the controller's state (configuration, SAs,
//! fastpathd's last counters, the last IKE view, the event log). No clock
//! is read here: lifetimes come from the IKE view the daemon hands over,
//! event times from the event log.
//!
//! Commands: `get sa`, `get sa active`, `get sa stat`, `get sa id HEX-ID`,
//! `get ike cookies`, `get vpn [NAME]`, `get interface [NAME]`,
//! `get route`, `get counter`, `get event`, `get config`,
//! `get config secrets`; `clear sa [HEX-ID]`.
//!
//! **Secrets**. No rendering shows a pre-shared key or a manual key
//! (`get config` masks them as `"********"`; the other commands never carry
//! them), except `get config secrets`, which the operator asks for by name
//! on the operator socket (mode 0600, root or `--socket-group`). The
//! Prometheus endpoint serves counters only and refuses any path that asks
//! for configuration or secrets.
//!
//! **JSON.** The word `--json` anywhere after `get` (`get sa --json`;
//! `esprit get sa --json` or `esprit --json get sa`) answers with one JSON
//! document (pretty-printed, so on several lines) instead of the table.
//! Field names are stable (snake_case); HEX IDs and SPIs are strings of 8
//! hex digits as in the tables, SA ids strings `0x...`, counters numbers,
//! absent values `null`:
//!
//! * `get sa` / `get sa active`: `{"total_configured", "sas": [{"hex_id",
//!   "id", "direction" ("in"|"out"), "gateway", "port", "algorithm",
//!   "spi", "life", "life_secs", "state" ("A/U"|"A/-"|"I/-"), "active",
//!   "vpn", "proxy_id", "manual"}]}`;
//! * `get sa stat`: `{"sas": [{"hex_id", "vpn", "proxy_id", "gateway",
//!   "inbound", "outbound"}], "drops": {REASON: packets}}`, each direction
//!   `{"id", "spi", "packets", "bytes", "errors", "seq"}` or `null`;
//! * `get sa id N`: `{"hex_id", "vpn", "mode" ("autokey"|"manual"),
//!   "gateway", "peer", "interface", "pairs": [{"proxy_id",
//!   "state" ("up"|"ready"|"down"), "algorithm", "port", "replay_window", "esn",
//!   "life_secs",
//!   "inbound", "outbound"}]}`, each direction as above plus
//!   `"installed", "kb_left"` (`null`: no volume limit), `"next_seq"`
//!   (outbound);
//! * `get ike cookies`: `{"active", "negotiating", "total", "sas":
//!   [{"gateway", "local", "remote", "state", "initiator_cookie",
//!   "responder_cookie", "initiator", "proposal", "nat_t",
//!   "lifetime_secs", "remaining_secs", "children"}],
//!   "negotiating_proxy_ids": [{"gateway", "proxy_id"}]}`;
//! * `get vpn [NAME]`: `{"vpns": [{"name", "gateway", "peer", "mode",
//!   "interface", "proxy_id_check", "withdraw_routes", "proxy_ids":
//!   [{"hex_id", "proxy_id", "state" ("UP"|"READY"|"DOWN"), "changed"
//!   (time or null), "monitored", "routes_withdrawn", "packets_in",
//!   "packets_out", "drops"}], "monitor": null or {"status"
//!   ("up"|"down"|null), "changed", "source", "source_interface",
//!   "destination", "proxy_id", "interval_secs", "threshold", "rekey",
//!   "optimized", "probes_sent", "probes_answered", "probes_skipped",
//!   "lost_in_row", "problem"}}]}`;
//! * `get interface [NAME]`: `{"interfaces": [{"name", "zone", "ip",
//!   "mtu", "device", "status" ("UP"|"READY"|"DOWN"|null for ports),
//!   "vpns", "changed" (time or null), "monitor" (null, or the VPN monitor
//!   that decided the status: {"vpn", "status", "proxy_id",
//!   "destination"})}]}`;
//! * `get route`: `{"routes": [{"prefix", "interface", "gateway", "type"
//!   ("connected"|"static"|"monitor": a VPN monitor destination's host
//!   route while its proxy-ID's routes are withdrawn), "metric", "device",
//!   "installed", "withdrawn_by" (null, or {"vpn", "proxy_id"})}]}`;
//! * `get counter`: `{"workers": [{"worker", "core", then every worker
//!   counter of the one table (`esprit_dataplane::counters`, by its field
//!   name: "rx_packets", "rx_bytes", "forwarded", "encrypted", ...),
//!   "drops": {REASON: packets}}], "drops": {REASON: packets},
//!   "ike_ingest_dropped": {REASON: datagrams} (IKE datagrams dropped on
//!   the way in, see `crate::core::ingest::IkeDrop`), "ike_discards":
//!   {REASON: datagrams} (IKE messages discarded by a gateway: IKEv1's
//!   reasons, and IKEv2's as `ikev2-REASON`)}`;
//! * `get event`: `{"total", "capacity", "events": [...]}`, newest first,
//!   each as [`crate::core::events::EventRecord`];
//! * `get config`: `{"lines": [...]}`, secrets masked; `get config secrets`
//!   the same with them.

use std::collections::BTreeMap;

use esprit_fastpath_api::Direction;
use serde_json::{json, Value};

use crate::core::controller::{Controller, Response};
use crate::status::{Pair, Side};

mod net;
use crate::core::events::{EventKind, Severity, EVENT_CAPACITY};
use crate::core::sa::SaRow;
use crate::core::translate::hex_id_of;
use crate::ike::{IsakmpSaView, IsakmpState};
use crate::status::withdraw::withdrawn_by;

/// What `get` understands, for error messages.
const GET_WORDS: &str = "sa, ike cookies, vpn, interface, route, counter, event, config";

/// What a masked secret shows (as the demo prints a pre-shared key).
pub(crate) const MASK: &str = "\"********\"";

/// The configuration's lines with every secret (the word after
/// `preshare`, `key`, `password`) masked: `get config` and its JSON.
pub(crate) fn masked_lines(config: &esprit_config::Config) -> Vec<String> {
    config.to_lines().iter().map(|l| esprit_config::lexer::redact(l).replace("<secret>", MASK)).collect()
}

fn lines(text: String) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

fn json_response(v: &Value) -> Response {
    match serde_json::to_string_pretty(v) {
        Ok(t) => Response::ok(lines(t)),
        Err(e) => Response::err(format!("JSON: {e}")),
    }
}

/// `0x1`, `1`, `00000001` -> 1.
fn parse_hex(word: &str) -> Option<u64> {
    let digits = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")).unwrap_or(word);
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

impl Controller {
    /// A HEX ID (`get sa` column), or a full SA id (`0x180000000`, as in
    /// the log): the HEX ID of its proxy-ID's pair.
    fn parse_sa_word(&self, command: &str, word: &str) -> Result<u32, String> {
        match parse_hex(word) {
            Some(v) if v > u64::from(u32::MAX) => Ok(self
                .wanted_sas()
                .find(|(id, _)| **id == v)
                .map_or(hex_id_of(v), |(_, d)| self.tunnel_id(&d.vpn_name, &d.spec.proxy_id))),
            Some(v) => Ok(v as u32),
            None => Err(format!(
                "{command}: {word:?} is not a HEX ID (hexadecimal, as the first column of get sa: 00000001 or 0x1)"
            )),
        }
    }
}

fn side_json(s: &Option<Side>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "id": format!("{:#x}", s.id),
            "spi": format!("{:08x}", s.spi),
            "packets": s.packets,
            "bytes": s.bytes,
            "errors": s.errors,
            "seq": s.seq,
        }),
    }
}

fn opt_num<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".to_owned(), |v| v.to_string())
}

impl Controller {
    /// `get ...` (the words after `get`).
    pub(crate) fn get(&self, words: &[&str]) -> Response {
        let json = words.contains(&"--json");
        let words: Vec<&str> = words.iter().copied().filter(|w| *w != "--json").collect();
        let command = format!("get {}", words.join(" "));
        let command = command.trim_end();
        let unknown = |word: &str, expected: &str| {
            Response::err(format!("{command}: unknown word {word:?}: expected {expected}"))
        };
        match words.as_slice() {
            [] => Response::err(format!("get: what? expected {GET_WORDS}")),
            ["sa"] => self.get_sa(false, json),
            ["sa", "active"] => self.get_sa(true, json),
            ["sa", "stat"] => self.get_sa_stat(json),
            ["sa", "id"] => Response::err(format!("{command}: give a HEX ID (the first column of get sa)")),
            ["sa", "id", n] => match self.parse_sa_word(command, n) {
                Ok(h) => self.get_sa_id(command, h, json),
                Err(e) => Response::err(e),
            },
            ["sa", "id", _, extra, ..] => unknown(extra, "nothing after the HEX ID"),
            ["sa", w, ..] => unknown(w, "active, stat, or id HEX-ID"),
            ["ike", "cookies"] => self.get_ike_cookies(json),
            ["ike"] => Response::err(format!("{command}: expected cookies")),
            ["ike", "cookies", extra, ..] => unknown(extra, "nothing more"),
            ["ike", w, ..] => unknown(w, "cookies"),
            ["vpn"] => self.get_vpn(command, None, json),
            ["vpn", name] => self.get_vpn(command, Some(name), json),
            ["interface"] => self.get_interface(command, None, json),
            ["interface", name] => self.get_interface(command, Some(name), json),
            ["route"] => self.get_route(json),
            ["counter"] => self.get_counter(json),
            ["event"] => self.get_event(json),
            ["config"] if json => json_response(&json!({ "lines": masked_lines(&self.config) })),
            ["config"] => Response::ok(masked_lines(&self.config)),
            // The operator asks for the keys by name: the only
            // rendering that shows them, on the operator socket only.
            ["config", "secrets"] if json => json_response(&json!({ "lines": self.config.to_lines() })),
            ["config", "secrets"] => Response::ok(self.config.to_lines()),
            ["config", "secrets", extra, ..] => unknown(extra, "nothing more"),
            ["config", extra, ..] => unknown(extra, "secrets, or nothing"),
            ["vpn" | "interface", _, extra, ..] | ["route" | "counter" | "event", extra, ..] => {
                unknown(extra, "nothing more")
            }
            [w, ..] => unknown(w, GET_WORDS),
        }
    }

    /// Drops by reason over all workers.
    fn drops(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for w in &self.stats.workers {
            for (reason, n) in &w.drops {
                *out.entry(reason.clone()).or_insert(0) += n;
            }
        }
        out
    }

    fn get_sa(&self, active_only: bool, json: bool) -> Response {
        let wanted = self.wanted();
        let rows: Vec<SaRow> = self
            .sa
            .rows(&wanted, &self.ike_life, |vpn, proxy_id| self.tunnel_id(vpn, proxy_id))
            .into_iter()
            .filter(|r| !active_only || r.is_active())
            .collect();
        let total = wanted.sas.len() / 2 + wanted.pending.len();
        let active_pairs = {
            let mut keys: Vec<(u32, &str)> =
                rows.iter().filter(|r| r.is_active()).map(|r| (r.hex_id, r.proxy_id.as_str())).collect();
            keys.dedup();
            keys.sort();
            keys.dedup();
            keys.len()
        };
        if json {
            let sas: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "hex_id": format!("{:08x}", r.hex_id),
                        "id": r.id.map(|i| format!("{i:#x}")),
                        "direction": if r.direction == Direction::Inbound { "in" } else { "out" },
                        "gateway": r.gateway,
                        "port": r.port,
                        "algorithm": r.algorithm,
                        "spi": format!("{:08x}", r.spi),
                        "life": r.life,
                        "life_secs": r.life.parse::<u64>().ok().filter(|_| r.id.is_some()),
                        "state": r.sta,
                        "active": r.is_active(),
                        "vpn": r.vpn,
                        "proxy_id": r.proxy_id,
                        "manual": r.manual,
                    })
                })
                .collect();
            let mut v = json!({ "total_configured": total, "sas": sas });
            if active_only {
                v["total_active"] = json!(active_pairs);
            }
            return json_response(&v);
        }
        let head = if active_only {
            format!("total active sa: {active_pairs}")
        } else {
            format!("total configured sa: {total}")
        };
        let mut out = vec![head, crate::core::sa::SA_HEADER.to_owned()];
        out.extend(rows.iter().map(SaRow::line));
        Response::ok(out)
    }

    fn get_sa_stat(&self, json: bool) -> Response {
        let pairs = self.pairs();
        let drops = self.drops();
        if json {
            let sas: Vec<Value> = pairs
                .iter()
                .map(|p| {
                    json!({
                        "hex_id": format!("{:08x}", p.hex_id),
                        "vpn": p.vpn,
                        "proxy_id": p.proxy_id,
                        "gateway": p.peer,
                        "inbound": side_json(&p.inbound),
                        "outbound": side_json(&p.outbound),
                    })
                })
                .collect();
            return json_response(&json!({ "sas": sas, "drops": drops }));
        }
        let mut out = vec![
            format!("total configured sa: {}", pairs.len()),
            format!(
                "{:<9} {:<15} {:<46} {:>10} {:>12} {:>10} {:>12} {:>7} {:>7}",
                "HEX ID",
                "Gateway",
                "Proxy-ID",
                "In pkts",
                "In bytes",
                "Out pkts",
                "Out bytes",
                "In err",
                "Out err"
            ),
        ];
        for p in &pairs {
            let f = |s: &Option<Side>, k: fn(&Side) -> u64| {
                s.as_ref().map_or("-".to_owned(), |s| k(s).to_string())
            };
            out.push(format!(
                "{:08x}  {:<15} {:<46} {:>10} {:>12} {:>10} {:>12} {:>7} {:>7}",
                p.hex_id,
                p.peer,
                p.proxy_id,
                f(&p.inbound, |s| s.packets),
                f(&p.inbound, |s| s.bytes),
                f(&p.outbound, |s| s.packets),
                f(&p.outbound, |s| s.bytes),
                f(&p.inbound, |s| s.errors),
                f(&p.outbound, |s| s.errors),
            ));
        }
        out.push(String::new());
        // fastpathd counts drop reasons per worker, not per SA.
        out.push("drops by reason (all workers, see get counter):".into());
        if drops.is_empty() {
            out.push("  none".into());
        }
        out.extend(drops.iter().map(|(r, n)| format!("  {r:<28} {n:>10}")));
        Response::ok(out)
    }

    /// `AutoKey IKE, gateway G (peer P)` or `manual key, peer P`.
    fn vpn_words(&self, vpn: &str) -> String {
        let (gateway, peer, mode) = self.vpn_gateway(vpn);
        match mode {
            "AutoKey" => format!("AutoKey IKE, gateway {gateway} (peer {peer})"),
            _ => format!("manual key, peer {peer}"),
        }
    }

    fn vpn_interface(&self, vpn: &str) -> String {
        self.config.vpn(vpn).and_then(|v| v.bind.as_ref()).map_or("-".to_owned(), |b| b.to_string())
    }

    fn get_sa_id(&self, command: &str, hex_id: u32, json: bool) -> Response {
        let pairs: Vec<Pair> = self.pairs().into_iter().filter(|p| p.hex_id == hex_id).collect();
        let Some(first) = pairs.first() else {
            return Response::err(format!("{command}: no SA with HEX ID {hex_id:08x} (see get sa)"));
        };
        let vpn = first.vpn.clone();
        let (gateway, peer, mode) = self.vpn_gateway(&vpn);
        let interface = self.vpn_interface(&vpn);
        let kb_left = |s: &Side| (s.hard_bytes > 0).then(|| s.hard_bytes.saturating_sub(s.bytes) / 1024);
        if json {
            let dir = |s: &Option<Side>, outbound: bool| match s {
                None => Value::Null,
                Some(s) => {
                    let mut v = side_json(&Some(s.clone()));
                    v["installed"] = json!(s.installed);
                    v["kb_left"] = json!(kb_left(s));
                    if outbound {
                        v["next_seq"] = json!(s.seq + 1);
                    }
                    v
                }
            };
            let list: Vec<Value> = pairs
                .iter()
                .map(|p| {
                    json!({
                        "proxy_id": p.proxy_id,
                        "state": self.pair_status(p).word().to_ascii_lowercase(),
                        "algorithm": p.algorithm,
                        "port": p.port,
                        "replay_window": p.inbound.as_ref().map(|s| s.replay_window),
                        "esn": p.inbound.as_ref().map(|s| s.esn),
                        "life_secs": p.life_secs,
                        "inbound": dir(&p.inbound, false),
                        "outbound": dir(&p.outbound, true),
                    })
                })
                .collect();
            return json_response(&json!({
                "hex_id": format!("{hex_id:08x}"),
                "vpn": vpn,
                "mode": mode.to_ascii_lowercase(),
                "gateway": gateway,
                "peer": peer,
                "interface": interface,
                "pairs": list,
            }));
        }
        let mut out =
            vec![format!("HEX ID {hex_id:08x}: vpn \"{vpn}\", {}, {interface}", self.vpn_words(&vpn))];
        for p in &pairs {
            out.push(format!("  proxy-id {}: {}", p.proxy_id, self.pair_status(p)));
            if p.inbound.is_none() && p.outbound.is_none() {
                out.push("    no SA: negotiated when traffic matches the proxy-id".into());
                continue;
            }
            let esn = if p.inbound.as_ref().is_some_and(|s| s.esn) { ", ESN" } else { "" };
            let replay = match p.inbound.as_ref().map(|s| s.replay_window) {
                Some(0) => format!("anti-replay off{esn}"),
                Some(w) => format!("anti-replay window {w} packets{esn}"),
                None => "anti-replay -".to_owned(),
            };
            let life = match (p.manual, p.life_secs) {
                (true, _) => "lifetime unlimited (manual key)".to_owned(),
                (false, Some(s)) => format!("lifetime left {s} sec"),
                (false, None) => "lifetime left - sec".to_owned(),
            };
            out.push(format!("    algorithm {}, peer port {}, {replay}, {life}", p.algorithm, p.port));
            for (word, s, outbound) in [("inbound ", &p.inbound, false), ("outbound", &p.outbound, true)] {
                let Some(s) = s else {
                    out.push(format!("    {word} none yet"));
                    continue;
                };
                let seq = if outbound {
                    format!("next sequence {}", s.seq + 1)
                } else {
                    format!("highest sequence {}", s.seq)
                };
                out.push(format!(
                    "    {word} SA {:#x} spi {:08x} {}: {} packets, {} bytes, {} errors, {seq}, {} kB left",
                    s.id,
                    s.spi,
                    if s.installed { "installed" } else { "not installed" },
                    s.packets,
                    s.bytes,
                    s.errors,
                    kb_left(s).map_or("unlimited".to_owned(), |k| k.to_string()),
                ));
            }
        }
        Response::ok(out)
    }

    fn get_ike_cookies(&self, json: bool) -> Response {
        let v = &self.ike_view;
        let active = v.gateways.iter().filter(|g| g.state == IsakmpState::Established).count();
        let negotiating = v.gateways.iter().filter(|g| g.state == IsakmpState::Negotiating).count();
        if json {
            return json_response(&json!({
                "active": active,
                "negotiating": negotiating,
                "total": v.gateways.len(),
                "sas": v.gateways,
                "negotiating_proxy_ids": v.negotiating.iter().map(|(g, p)| json!({ "gateway": g, "proxy_id": p })).collect::<Vec<_>>(),
            }));
        }
        // One section per version, as ScreenOS prints them (the IKEv2 one
        // only when an ikev2 gateway is configured): an IKEv2 SA's
        // "cookies" are its SPIs (RFC 7296 §3.1).
        let mut out = Vec::new();
        for version in ["IKEv1", "IKEv2"] {
            let gateways: Vec<_> = v.gateways.iter().filter(|g| g.version == version).collect();
            if version == "IKEv2" && gateways.is_empty() {
                continue;
            }
            self.ike_cookies_section(version, &gateways, &mut out);
        }
        for (g, p) in &v.negotiating {
            out.push(format!("  gateway {g}: negotiating proxy-id {p}"));
        }
        Response::ok(out)
    }

    fn ike_cookies_section(&self, version: &str, gateways: &[&IsakmpSaView], out: &mut Vec<String>) {
        let active = gateways.iter().filter(|g| g.state == IsakmpState::Established).count();
        let negotiating = gateways.iter().filter(|g| g.state == IsakmpState::Negotiating).count();
        if !out.is_empty() {
            out.push(String::new());
        }
        out.extend([
            format!("{version} SA -- Active: {active}, Negotiating: {negotiating}, Total {}", gateways.len()),
            String::new(),
            format!(
                "{:<33} {:<12} {:<21} {:<21} {:<11} {:<9} {:<21} {:<5} {:>8} {:>5}",
                "Cookies (initiator/responder)",
                "Gateway",
                "Local",
                "Peer",
                "State",
                "Role",
                "Proposal",
                "NAT-T",
                "Life:sec",
                "Child"
            ),
        ]);
        for g in gateways {
            let cookies = match (&g.initiator_cookie, &g.responder_cookie) {
                (Some(i), Some(r)) => format!("{i}/{r}"),
                _ => "-".into(),
            };
            let role = match g.initiator {
                Some(true) => "initiator",
                Some(false) => "responder",
                None => "-",
            };
            let nat = match g.nat_t {
                Some(true) => "on",
                Some(false) => "off",
                None => "-",
            };
            out.push(format!(
                "{cookies:<33} {:<12} {:<21} {:<21} {:<11} {role:<9} {:<21} {nat:<5} {:>8} {:>5}",
                g.gateway,
                g.local.to_string(),
                g.remote.to_string(),
                g.state.word(),
                g.proposal.as_deref().unwrap_or("-"),
                opt_num(g.remaining_secs),
                g.children
            ));
        }
    }

    fn get_event(&self, json: bool) -> Response {
        let events: Vec<_> = self.events.iter().rev().collect();
        if json {
            return json_response(&json!({
                "total": events.len(),
                "capacity": EVENT_CAPACITY,
                "events": events,
            }));
        }
        let mut out = vec![
            format!("total events: {} (the last {EVENT_CAPACITY} are kept), newest first", events.len()),
            format!("{:<20} {:<7} {:<17} {:<15} {}", "Time (UTC)", "Level", "Kind", "Peer", "Description"),
        ];
        for e in events {
            out.push(e.line());
            if e.kind == EventKind::ProxyIdMismatch {
                if let Some(p) = &e.proposed {
                    out.push(format!("    proposed:   {p}"));
                }
                for (i, c) in e.configured.iter().enumerate() {
                    out.push(format!("    {}{c}", if i == 0 { "configured: " } else { "            " }));
                }
            }
        }
        Response::ok(out)
    }

    /// `clear sa [HEX-ID]` (the words after `clear`).
    pub(crate) fn clear(&mut self, words: &[&str]) -> Response {
        let command = format!("clear {}", words.join(" "));
        let command = command.trim_end().to_owned();
        let hex_id = match words {
            ["sa"] => None,
            ["sa", id] => match self.parse_sa_word(&command, id) {
                Ok(h) => Some(h),
                Err(e) => return Response::err(e),
            },
            ["sa", _, extra, ..] => {
                return Response::err(format!(
                    "{command}: unknown word {extra:?}: expected nothing after the HEX ID"
                ))
            }
            [] => return Response::err("clear: what? expected sa [HEX-ID]".to_owned()),
            [w, ..] => return Response::err(format!("{command}: unknown word {w:?}: expected sa [HEX-ID]")),
        };
        let pairs = self.pairs();
        let (out, target) = match hex_id {
            None => {
                let n = pairs
                    .iter()
                    .filter(|p| !p.manual && (p.inbound.is_some() || p.outbound.is_some()))
                    .count();
                let manual = pairs.iter().filter(|p| p.manual).count();
                let mut out = vec![format!("clearing {n} IKE SA pair(s)")];
                if manual > 0 {
                    out.push(format!(
                        "{manual} manual-key SA pair(s) left as they are: manual-key SAs cannot be cleared"
                    ));
                }
                (out, None)
            }
            Some(h) => {
                // One tunnel ID, one proxy-ID's pair: the VPN's other
                // pairs stay up.
                let Some(p) = pairs.iter().find(|p| p.hex_id == h) else {
                    return Response::err(format!("{command}: no SA with HEX ID {h:08x} (see get sa)"));
                };
                if p.manual {
                    return Response::err(format!(
                        "{command}: HEX ID {h:08x} is vpn \"{}\"'s manual-key SA pair: manual-key SAs cannot be cleared (change or unset the vpn instead)",
                        p.vpn
                    ));
                }
                let what = format!("HEX ID {h:08x} (vpn \"{}\" proxy-id {})", p.vpn, p.proxy_id);
                let out = if p.inbound.is_some() || p.outbound.is_some() {
                    vec![format!("{what}: clearing its IKE SA pair")]
                } else {
                    vec![format!("{what}: no IKE SA pair is up, nothing to clear")]
                };
                let vpn_hex = self.hex_ids.get(&p.vpn).copied().unwrap_or(0);
                (out, Some((vpn_hex, p.proxy_id.clone())))
            }
        };
        self.clears.push(target);
        self.note_event(Severity::Notice, EventKind::Config, format!("operator: {command}"));
        Response::ok(out)
    }
}
