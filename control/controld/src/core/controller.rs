//! controld's core: the running configuration, what fastpathd should hold,
//! the SA manager, and the operator commands. No sockets, no clock:
//! fastpathd is reached through requests it emits and replies it is given
//! ([`crate::core::port`]), so every behaviour here is tested in memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::core::monitor::Monitor;

use esprit_config::Config;
use esprit_fastpath_api::{FastPathEvent, Request, Stats};

use crate::core::events::{EventKind, EventLog, EventRecord, Severity};
use crate::core::port::{Answer, Previous, Then, Token};
use crate::ike::IkeView;

use crate::core::ids::{assign_ids, TunnelIds};
use crate::core::sa::SaManager;
use crate::core::state::State;
use crate::core::translate::{translate_with_serials, Desired, DesiredSa, ManualSerials, TranslateError};

#[cfg(test)]
pub(crate) use crate::status::withdraw::RETRY as WITHDRAWN_RETRY;

/// Why a request to fastpathd failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FastPathError {
    /// fastpathd answered with an error.
    #[error("fastpathd refused {what}: {reason}")]
    Refused { what: String, reason: String },
    /// The connection is gone (fastpathd stopped or restarted).
    #[error("fastpathd connection lost: {0}")]
    Lost(String),
}

/// A request in a few words, for logs and errors (never keys).
pub fn describe(r: &Request) -> String {
    match r {
        Request::AddSa(s) => format!("add-sa {:#x} spi {:08x} ({:?})", s.id, s.spi, s.direction),
        Request::RemoveSa { id } => format!("remove-sa {id:#x}"),
        Request::SetVpn { vpn, proxy_ids, check } => {
            format!("set-vpn {vpn} ({} proxy-ids, check {check})", proxy_ids.len())
        }
        Request::SetTunnel { tunnel, mtu, vpn } => {
            format!("set-tunnel tunnel.{tunnel} mtu {mtu} vpn {vpn:?}")
        }
        Request::SetRoutes { routes } => format!("set-routes ({} routes)", routes.len()),
        Request::RemoveTunnel { tunnel } => format!("remove-tunnel tunnel.{tunnel}"),
        Request::RemoveVpn { vpn } => format!("remove-vpn {vpn}"),
        Request::SetFlow { tcp_mss: Some(mss) } => format!("set-flow tcp-mss {mss}"),
        Request::SetFlow { tcp_mss: None } => "set-flow (no tcp-mss)".to_owned(),
        other => format!("{other:?}"),
    }
}

/// What one synchronisation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// SAs fastpathd already held (adopted, not re-installed).
    pub kept: usize,
    /// SAs installed.
    pub added: usize,
    /// SAs removed.
    pub removed: usize,
    /// Requests sent in all.
    pub requests: usize,
    /// IKE SAs re-installed over keys that already carried traffic (a
    /// fastpathd restart): their windows resume, and IKE rekeys them at
    /// once ([`crate::ike::IkeManager::rekey_now`]).
    pub resumed_ike: Vec<u64>,
}

/// The answer to an operator command: output lines, then success or the
/// error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// What to print.
    pub output: Vec<String>,
    /// `Err(message)` when the command failed.
    pub result: Result<(), String>,
}

impl Response {
    pub(crate) fn ok(output: Vec<String>) -> Response {
        Response { output, result: Ok(()) }
    }
    pub(crate) fn err(message: impl Into<String>) -> Response {
        Response { output: Vec::new(), result: Err(message.into()) }
    }
}

/// The running controld.
#[derive(Debug)]
pub struct Controller {
    pub(crate) config: Config,
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) port_map: BTreeMap<String, String>,
    pub(crate) hex_ids: BTreeMap<String, u32>,
    /// The proxy-IDs' tunnel IDs (`get sa`; persisted).
    pub(crate) tunnel_ids: TunnelIds,
    /// The serials of the manual-key SAs (persisted).
    pub(crate) serials: ManualSerials,
    pub(crate) desired: Desired,
    /// fastpathd holds what was last programmed, and nothing the core
    /// wants has changed since but through [`Controller::ike_update`]:
    /// an IKE update then programs only the SAs it touches. Cleared by
    /// anything else that may change what is wanted or held (operator
    /// commands, fastpathd events and reconnections, route withdrawals,
    /// failed requests); set by a whole synchronisation.
    pub(crate) in_sync: bool,
    /// SAs negotiated by IKE (installed in addition to `desired.sas`).
    pub(crate) ike_sas: crate::core::negotiated::NegotiatedSas,
    /// Seconds of lifetime left per IKE SA, as last told (`get sa`).
    pub(crate) ike_life: BTreeMap<u64, u64>,
    pub(crate) sa: SaManager,
    pub(crate) log: Vec<String>,
    /// The fastpathd port: requests out, replies in.
    pub(crate) port: crate::core::port::Port,
    /// IKE as last seen (`get ike cookies`, `get sa id`, `get vpn`).
    pub(crate) ike_view: IkeView,
    /// IKE datagrams dropped on the way in, as last read (`get counter`).
    pub(crate) ike_ingest: crate::core::ingest::IngestCounters,
    /// fastpathd's counters at the last reading (`get sa stat`, `get counter`).
    pub(crate) stats: Stats,
    /// `get event`.
    pub(crate) events: EventLog,
    /// The wall clock of events (injected: tests fix it).
    pub(crate) clock: fn() -> SystemTime,
    /// What `clear sa` asked IKE to delete: the pair of one proxy-ID
    /// ((VPN HEX ID, proxy-ID)), or every pair (`None`).
    pub(crate) clears: Vec<Option<(u32, String)>>,
    /// The VPN monitors.
    pub(crate) monitor: Monitor,
    /// Last status of each proxy-ID and tunnel interface, and what changed
    /// since the last refresh.
    pub(crate) status: crate::status::book::StatusBook,
    /// The configuration's look-ups of the status rules.
    pub(crate) index: crate::status::book::ConfigIndex,
    /// DOWN proxy-IDs ((VPN, proxy-ID)) whose routes are withdrawn
    /// (`withdraw-routes`).
    pub(crate) withdrawn: BTreeMap<(String, String), crate::status::withdraw::Withdrawal>,
    /// The withdrawals changed since fastpathd's routes were programmed.
    pub(crate) routes_pending: bool,
    /// Proxy-IDs ((VPN, proxy-ID)) whose pair `idletime` deleted: READY,
    /// not DOWN, until negotiated again.
    pub(crate) idled: std::collections::HashSet<crate::core::negotiated::PairKey>,
    /// The traffic of each IKE pair and since when it has not moved
    /// (`idletime`).
    pub(crate) idle: crate::core::idle::IdleTracker,
    /// The generation of the state loaded (its files).
    state_generation: u64,
}

impl Controller {
    /// Starts from a loaded configuration and the persisted state. Fails if
    /// fastpathd could not be programmed from the configuration.
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        port_map: BTreeMap<String, String>,
        state: State,
    ) -> Result<Controller, TranslateError> {
        let (hex_ids, tunnel_ids) = assign_ids(&config, &state.hex_ids, &state.tunnel_ids);
        let t = translate_with_serials(&config, &port_map, &hex_ids, &state.manual_serials)?;
        let mut c = Controller {
            config,
            config_path,
            port_map,
            hex_ids,
            tunnel_ids,
            serials: t.serials,
            desired: t.desired,
            in_sync: false,
            ike_sas: Default::default(),
            ike_life: BTreeMap::new(),
            sa: SaManager::with_seqs(state.sas, state.seqs, digest_secret(&state.digest_key)),
            log: Vec::new(),
            port: Default::default(),
            ike_view: IkeView::default(),
            ike_ingest: Default::default(),
            stats: Stats::default(),
            events: EventLog::default(),
            clock: SystemTime::now,
            clears: Vec::new(),
            monitor: Monitor::default(),
            status: Default::default(),
            index: Default::default(),
            withdrawn: BTreeMap::new(),
            routes_pending: false,
            idled: Default::default(),
            idle: Default::default(),
            state_generation: state.generation,
        };
        c.log.extend(state.notes);
        c.reconfigure_monitor();
        c.reindex();
        c.log.extend(t.warnings.into_iter().map(|w| format!("warning: {w}")));
        c.sa.hold_back(state.unconfirmed);
        if state.lost {
            c.sa.state_lost(&c.desired);
        }
        if !c.sa.unconfirmed().is_empty() {
            for d in c.desired.sas.values().filter(|d| c.sa.is_unconfirmed(&d.spec)) {
                c.log.push(format!(
                    "error: vpn \"{}\": SA {:#x} (SPI {:08x}) is not installed: the state directory lost controld.json, so the sequence numbers these manual keys already used are unknown (the peer would drop our packets, and its old packets could be replayed to us); give the VPN new SPIs and keys on both gateways, or confirm with exec confirm manual-keys",
                    d.vpn_name, d.spec.id, d.spec.spi
                ));
            }
        }
        Ok(c)
    }

    /// Log lines produced since the last call.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// The running configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What fastpathd should hold.
    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// VPN name -> HEX ID.
    pub fn hex_ids(&self) -> &BTreeMap<String, u32> {
        &self.hex_ids
    }

    /// What fastpathd should hold: the configuration's state plus the SAs
    /// IKE negotiated (their proxy-IDs are no longer pending).
    pub fn wanted(&self) -> Desired {
        let mut d = self.desired.clone();
        if !self.withdrawn.is_empty() {
            d.routes = self.routes_in_effect();
        }
        if self.ike_sas.is_empty() {
            return d;
        }
        d.pending = self.wanted_pending().into_iter().cloned().collect();
        d.sas.extend(self.ike_sas.iter().map(|(id, s)| (*id, s.clone())));
        d
    }

    /// The SAs of [`Controller::wanted`], borrowed (no copy of every SA
    /// and its keys): configured SAs, then negotiated ones, each by id.
    pub(crate) fn wanted_sas(&self) -> impl Iterator<Item = (&u64, &DesiredSa)> {
        let configured = self.desired.sas.iter().filter(|(id, _)| !self.ike_sas.contains_key(id));
        configured.chain(self.ike_sas.iter())
    }

    /// The pending proxy-IDs of [`Controller::wanted`], borrowed.
    pub(crate) fn wanted_pending(&self) -> Vec<&crate::core::translate::PendingProxyId> {
        // One pass over the negotiated SAs, then one look-up per pending
        // proxy-ID (a VPN may carry thousands of both).
        let negotiated: std::collections::HashSet<(u32, &str)> = self
            .ike_sas
            .values()
            .map(|s| (crate::core::translate::hex_id_of(s.spec.id), s.spec.proxy_id.as_str()))
            .collect();
        self.desired
            .pending
            .iter()
            .filter(|p| !negotiated.contains(&(p.hex_id, p.proxy_id.as_str())))
            .collect()
    }

    /// The SAs IKE negotiated, as fastpathd should hold them.
    pub fn ike_sas(&self) -> &BTreeMap<u64, DesiredSa> {
        self.ike_sas.by_id()
    }

    /// IKE SAs resumed from the IKE state file at start, before the first
    /// synchronisation: wanted again, so fastpathd's copies are adopted.
    /// An SA whose record did not reach `controld.json` before the crash
    /// (it is written just after the install) gets one now, at sequence
    /// number 0: if fastpathd holds it, it is adopted as the same SA; if
    /// fastpathd restarted too, it resumes [`crate::core::sa::SEQ_MARGIN`] past
    /// 0, never at 0 under keys that may have carried traffic.
    pub fn resume_ike_sas(&mut self, sas: Vec<DesiredSa>) {
        self.desync();
        for s in sas {
            if !self.sa.records().contains_key(&s.spec.id) {
                self.sa.note_added(&s.spec, &crate::core::plan::fingerprint(&s.spec));
                self.sa.note_removed(s.spec.id);
            }
            self.status.touch(crate::core::negotiated::key_of(&s));
            self.ike_sas.insert(s);
        }
    }

    /// IKE's ingest drop counters (`get counter`).
    pub fn set_ike_ingest(&mut self, c: crate::core::ingest::IngestCounters) {
        self.ike_ingest = c;
    }

    /// The seconds of lifetime left of IKE SAs (shown by `get sa`).
    pub fn set_ike_life(&mut self, life: BTreeMap<u64, u64>) {
        self.ike_life = life;
    }

    /// IKE as it is now (`get` commands): also the lifetimes of `get sa`.
    pub fn set_ike_view(&mut self, view: IkeView) {
        self.ike_life = view
            .children
            .iter()
            .filter_map(|c| c.remaining_secs.map(|s| (c.ids, s)))
            .flat_map(|(ids, s)| ids.map(|id| (id, s)))
            .collect();
        self.ike_view = view;
    }

    /// Sets the wall clock of events (tests fix it).
    pub fn set_clock(&mut self, clock: fn() -> SystemTime) {
        self.clock = clock;
    }

    /// The event log.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The event log, to attach the system log to it.
    pub fn events_mut(&mut self) -> &mut EventLog {
        &mut self.events
    }

    /// Records an event now.
    pub fn note_event(&mut self, severity: Severity, kind: EventKind, message: impl Into<String>) {
        self.events.push((self.clock)(), EventRecord::new(severity, kind, message));
    }

    /// Records a line IKE logged (see [`EventLog::record_ike`]): the peer
    /// address comes from the configuration's gateway.
    pub fn record_ike_log(&mut self, line: &str) {
        let config = &self.config;
        let peer_of = |name: &str| match config.gateway(name).map(|g| &g.peer) {
            Some(esprit_config::model::GatewayPeer::Address(a)) => Some(a.to_string()),
            _ => None,
        };
        self.events.record_ike((self.clock)(), line, peer_of);
    }

    /// Records a fastpathd event (expiry, idle; acquires are recorded from
    /// IKE's answer to them) with the SA's VPN, proxy-ID and peer.
    pub fn record_fastpath_event(&mut self, e: &FastPathEvent) {
        if matches!(
            e,
            FastPathEvent::SoftExpire { .. } | FastPathEvent::HardExpire { .. } | FastPathEvent::Idle { .. }
        ) {
            // fastpathd may have dropped the SA itself: the next IKE
            // update compares everything with fastpathd's dump.
            self.desync();
        }
        let (sa, severity, what) = match e {
            FastPathEvent::SoftExpire { sa, reason } => {
                (*sa, Severity::Info, format!("soft expire ({reason})"))
            }
            FastPathEvent::HardExpire { sa, reason } => {
                (*sa, Severity::Notice, format!("hard expire ({reason})"))
            }
            FastPathEvent::Idle { sa } => (*sa, Severity::Info, "idle".to_owned()),
            FastPathEvent::Acquire { .. } => return,
            FastPathEvent::ProbeReply { sa, src, seq, .. } => {
                self.monitor_reply(*sa, *src, *seq);
                return;
            }
        };
        let mut r = EventRecord::new(severity, EventKind::SaExpire, format!("SA {sa:#x}: {what}"));
        // One look-up, not the whole desired set.
        if let Some(d) = self.ike_sas.get(&sa).or_else(|| self.desired.sas.get(&sa)) {
            r.vpn = Some(d.vpn_name.clone());
            r.proxy_id = Some(d.spec.proxy_id.clone());
            r.peer = Some(d.spec.peer.to_string());
            r.message = format!("vpn {} proxy-id {}: SA {sa:#x}: {what}", d.vpn_name, d.spec.proxy_id);
        }
        self.events.push((self.clock)(), r);
    }

    /// What `clear sa` asked of IKE since the last call: the proxy-IDs
    /// ((VPN HEX ID, proxy-ID)) whose child SA pairs to delete (`None`:
    /// all of them).
    pub fn take_clears(&mut self) -> Vec<Option<(u32, String)>> {
        std::mem::take(&mut self.clears)
    }

    /// The SA manager.
    pub fn sas(&self) -> &SaManager {
        &self.sa
    }

    /// What to persist.
    pub fn state(&self) -> State {
        State {
            version: crate::core::state::STATE_VERSION,
            generation: self.state_generation,
            hex_ids: self.hex_ids.clone(),
            tunnel_ids: self.tunnel_ids.clone(),
            sas: self.sa.records().clone(),
            manual_serials: self.serials.clone(),
            seqs: self.sa.seqs().clone(),
            digest_key: hex::encode(self.sa.secret()),
            unconfirmed: self.sa.unconfirmed().clone(),
            lost: false,
            notes: Vec::new(),
        }
    }

    /// What of the persisted state changed since the last call.
    pub fn take_state_changes(&mut self) -> crate::core::state::StateChanges {
        self.sa.take_changes()
    }

    /// True when the persisted state changed since the last
    /// [`Controller::take_state_changes`].
    pub fn state_changed(&self) -> bool {
        self.sa.changed()
    }

    /// The generation of the state files it was loaded from.
    pub fn state_generation(&self) -> u64 {
        self.state_generation
    }

    /// The connection to fastpathd dropped.
    pub fn fastpath_lost(&mut self) {
        self.desync();
        self.sa.fastpath_lost();
        self.status.touch_all();
        self.stats = Stats::default();
        self.note_event(Severity::Warning, EventKind::FastPath, "fastpathd connection lost: reconnecting");
    }

    /// Takes in a reading, whole or partial (see [`SaManager::observe`]
    /// and [`Stats::merge`]).
    pub fn observe(&mut self, reading: Stats) {
        if reading.changed_by_others {
            // The next turn compares everything with fastpathd's dump.
            self.desync();
        }
        self.sa.observe(&reading);
        self.stats.merge(reading);
        self.refresh_status();
    }

    /// fastpathd's counters as last read, every SA.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Runs one operator command (one line). `token` is `None` while
    /// fastpathd is not connected: changes are kept and programmed on
    /// reconnection, and the answer is given now. With a token, a command
    /// that programs fastpathd answers later ([`Done::Command`] with that
    /// token); any other answers now.
    ///
    /// [`Done::Command`]: crate::core::port::Done::Command
    pub fn command(&mut self, line: &str, token: Option<Token>) -> Answer {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"get") {
            // It may change what is wanted or held: the next IKE update
            // synchronises everything.
            self.desync();
        }
        let now = |r: Response| Answer::Now(r);
        let resp = match words.as_slice() {
            [] => Response::ok(Vec::new()),
            ["get", rest @ ..] => self.get(rest),
            ["clear", rest @ ..] => self.clear(rest),
            // `exit` closes a ScreenOS policy context (a pasted configuration).
            ["set", ..] | ["unset", ..] | ["exit"] => {
                let mut candidate = self.config.clone();
                match candidate.apply(line) {
                    Ok(warnings) => {
                        let output = warnings.iter().map(|w| w.to_string()).collect();
                        match self.change(candidate, output, line, token) {
                            Some(r) => r,
                            None => return token.map_or_else(|| now(Response::ok(Vec::new())), Answer::Later),
                        }
                    }
                    Err(e) => Response::err(e.to_string()),
                }
            }
            ["exec", "reload"] => {
                let Some(path) = self.config_path.clone() else {
                    return now(Response::err("exec reload: controld has no configuration file"));
                };
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => return now(Response::err(format!("exec reload: {}: {e}", path.display()))),
                };
                match Config::load(&text) {
                    Ok((candidate, warnings)) => {
                        let output = warnings.iter().map(|w| format!("{}: {w}", path.display())).collect();
                        match self.change(candidate, output, line, token) {
                            Some(r) => r,
                            None => return token.map_or_else(|| now(Response::ok(Vec::new())), Answer::Later),
                        }
                    }
                    Err(e) => Response::err(format!("exec reload: {}: {e}", path.display())),
                }
            }
            ["exec", "confirm", "manual-keys"] => {
                let n = self.sa.confirm(&self.desired);
                if n == 0 {
                    return now(Response::ok(vec!["no manual-key SA waits for confirmation".into()]));
                }
                self.note_event(
                    Severity::Warning,
                    EventKind::Config,
                    format!("operator confirmed {n} manual-key SA(s) without sequence-number records"),
                );
                let output = vec![format!("{n} manual-key SA(s) confirmed: installed from sequence number 0")];
                return match token {
                    Some(token) => {
                        self.start_sync(Then::Confirm { token, line: line.to_owned(), output });
                        Answer::Later(token)
                    }
                    None => now(Response::ok(output)),
                };
            }
            ["save"] => match &self.config_path {
                None => Response::err("save: controld has no configuration file"),
                Some(path) => match save_config(path, &self.config) {
                    Ok(()) => Response::ok(vec![format!("configuration saved to {}", path.display())]),
                    Err(e) => Response::err(format!("save: {}: {e}", path.display())),
                },
            },
            _ => Response::err(format!(
                "unknown command {line:?}: expected get ..., clear sa, set ..., unset ..., exec reload, exec confirm manual-keys, save"
            )),
        };
        self.note_command(line, &resp);
        now(resp)
    }

    /// Makes `candidate` the running configuration and programs only the
    /// difference: the response now (`None` with a `token`: it comes with
    /// the synchronisation's end). If fastpathd refuses part of it, the
    /// previous configuration is restored (and re-programmed) before the
    /// answer.
    pub(crate) fn change(
        &mut self,
        candidate: Config,
        mut output: Vec<String>,
        line: &str,
        token: Option<Token>,
    ) -> Option<Response> {
        self.desync();
        let (hex_ids, tunnel_ids) = assign_ids(&candidate, &self.hex_ids, &self.tunnel_ids);
        let t = match translate_with_serials(&candidate, &self.port_map, &hex_ids, &self.serials) {
            Ok(t) => t,
            Err(e) => return Some(Response::err(e.to_string())),
        };
        output.extend(t.warnings.iter().map(|w| format!("warning: {w}")));
        let previous = Previous {
            config: std::mem::replace(&mut self.config, candidate),
            hex_ids: std::mem::replace(&mut self.hex_ids, hex_ids),
            tunnel_ids: std::mem::replace(&mut self.tunnel_ids, tunnel_ids),
            desired: std::mem::replace(&mut self.desired, t.desired),
            serials: std::mem::replace(&mut self.serials, t.serials),
        };
        self.sa_dirty_for_ids();
        self.reconfigure_monitor();
        self.reindex();
        // Withdrawals follow the new configuration before it is programmed.
        self.refresh_status();
        self.routes_pending = false;
        // IKE SAs of VPNs that are gone (or no longer AutoKey) go with them.
        let config = &self.config;
        let gone = self.ike_sas.retain(|s| {
            config.vpn(&s.vpn_name).is_some_and(|v| matches!(v.kind, esprit_config::VpnKind::AutoKey(_)))
        });
        for key in gone {
            self.status.touch(key);
        }
        let Some(token) = token else {
            output.push("fastpathd is not connected: the change is programmed when it is".into());
            return Some(Response::ok(output));
        };
        let line = line.to_owned();
        self.start_sync(Then::Change { token, line, output, previous: Box::new(previous) });
        None
    }

    /// The configuration's look-ups changed with it: every status is
    /// looked at again at the next refresh.
    pub(crate) fn reindex(&mut self) {
        self.index = crate::status::book::ConfigIndex::new(&self.config, &self.desired);
        self.status.touch_all();
    }

    /// The installed state of this SA changes: its proxy-ID's status is
    /// looked at again at the next refresh.
    pub(crate) fn touch_sa(&mut self, id: u64) {
        if let Some(d) = self.ike_sas.get(&id).or_else(|| self.desired.sas.get(&id)) {
            let key = crate::core::negotiated::key_of(d);
            self.status.touch(key);
        }
    }

    pub(crate) fn sa_dirty_for_ids(&mut self) {
        // HEX IDs may have been assigned: persist them with the next save.
        self.sa.note_ids_changed();
    }
}

/// A write of the state reads only what changed (see
/// [`crate::core::state::StateWriter::turn`]).
impl crate::core::state::StateSource for Controller {
    fn sa(&self, id: u64) -> Option<crate::core::state::SaRecord> {
        self.sa.records().get(&id).cloned()
    }

    fn seq(&self, keys: &str) -> Option<crate::core::state::SeqMark> {
        self.sa.seqs().get(keys).copied()
    }

    fn ids_record(&self) -> crate::core::state::StateRecord {
        crate::core::state::StateRecord::Ids {
            hex_ids: self.hex_ids.clone(),
            tunnel_ids: self.tunnel_ids.clone(),
            manual_serials: self.serials.clone(),
            digest_key: hex::encode(self.sa.secret()),
            unconfirmed: self.sa.unconfirmed().clone(),
        }
    }

    fn whole(&self) -> State {
        self.state()
    }
}

/// The secret of the key digests: the state's, or 32 fresh random bytes
/// for a new state (then saved with it).
fn digest_secret(hex_key: &str) -> Vec<u8> {
    match hex::decode(hex_key) {
        Ok(k) if k.len() == 32 => k,
        _ => {
            let mut k = vec![0u8; 32];
            // The system's randomness fails only on a broken system; a
            // digest under a zero key is still a digest (no secret leaks).
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k);
            k
        }
    }
}

/// Writes the configuration file atomically, mode 0600 (it holds keys).
fn save_config(path: &Path, config: &Config) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut text = config.to_lines().join("\n");
    text.push('\n');
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
