//! fastpathd as a port of data: the controller emits control requests
//! ([`Controller::take_requests`]) and takes their replies back
//! ([`Controller::handle_reply`]), one at a time, in the order it sent
//! them; what a step of work led to comes out as a [`Done`]
//! ([`Controller::take_done`]). No socket and no waiting here: the shell
//! (or a test) carries the requests and the replies.
//!
//! fastpathd answers in order on its one connection, so each request sent
//! has an entry in a FIFO saying what it was for (`Pending`): the dump of
//! a synchronisation, one step of a plan (an `AddSa` to note as installed
//! when accepted, a `RemoveSa`, ...), a reading of the counters, a VPN
//! monitor probe. The continuation of a synchronisation is data too
//! (`Then`): report to the core, finish an IKE update, answer an operator
//! command (or restore the previous configuration first).
//!
//! **One synchronisation at a time.** A plan is carried out as today's
//! synchronous code did: a run of `AddSa` in one batch, any other request
//! alone, and the first refusal ends the plan; the next batch leaves only
//! when every reply of the previous one is in. A synchronisation asked for
//! while another runs waits its turn (queued as its continuation; its
//! dump and plan are made when it starts).
//!
//! **Sent is not installed.** An SA counts as installed
//! ([`crate::core::sa::SaManager::is_installed`]) from its accepted reply
//! only; an `AddSa` in flight, or refused, is never installed, so no status
//! or IKE report rests on it (DESIGN §7). Anything that may change what is
//! wanted or held while a synchronisation runs (an operator command, a
//! fastpathd event, a reading that says others changed fastpathd) leaves
//! the controller out of sync when it ends (`Controller::desync`), so the
//! next IKE update compares everything with a fresh dump.
//!
//! **A lost connection** ([`FastPathError::Lost`] as a reply, an answer of
//! the wrong kind, or a reply nothing was sent for) fails every entry
//! outstanding: the synchronisation ends with the error (its command is
//! answered, its IKE update finished), the requests not sent yet are
//! dropped, and [`Done::Lost`] tells the core to drop the connection and
//! forget what fastpathd held; the next connection re-synchronises from a
//! dump, as after any loss.

use std::collections::{BTreeMap, VecDeque};

use esprit_config::Config;
use esprit_fastpath_api::{Dump, Reply, Request, SaSpec};

use crate::core::controller::{describe, Controller, FastPathError, Response, SyncReport};
use crate::core::events::{EventKind, Severity};
use crate::core::ids::TunnelIds;
use crate::core::plan::Plan;
use crate::core::translate::{Desired, DesiredSa, ManualSerials};

/// Names an operator command answered later, by a [`Done::Command`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// The answer to an operator command: now, or later under a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The command needed nothing from fastpathd (or fastpathd is not
    /// connected): here is its response.
    Now(Response),
    /// The response comes with [`Done::Command`] (the core's
    /// `Output::Reply`) carrying this token.
    Later(Token),
}

/// Why a synchronisation runs: what the core reports when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncWhy {
    /// fastpathd connected (again): adopt what it holds.
    Connected,
    /// IKE installed or removed SAs (what, in words, for the log).
    Ike(String),
    /// Withdrawn or restored routes.
    Routes,
    /// The periodic comparison with fastpathd.
    Resync,
}

/// A step of fastpathd work that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// A synchronisation ended.
    Synced { why: SyncWhy, result: Result<SyncReport, FastPathError> },
    /// A reading of the counters ended (taken in when it succeeded).
    Stats(Result<(), FastPathError>),
    /// An operator command answered late.
    Command { token: Token, line: String, response: Response },
    /// The connection is lost: every request outstanding failed.
    /// `reported`: a [`Done`] before this one carried the error already.
    Lost { error: FastPathError, reported: bool },
}

/// What one request sent was for.
#[derive(Debug)]
enum Pending {
    /// The dump that starts the running synchronisation.
    Dump,
    /// One request of the running synchronisation's plan; `last` ends its
    /// batch.
    Step { what: String, kind: Step, last: bool },
    /// A reading of the counters.
    Stats,
    /// A VPN monitor probe.
    Probe { vpn: String, seq: u16 },
}

#[derive(Debug)]
enum Step {
    Add(Box<SaSpec>),
    Remove(u64),
    Other,
}

/// The configuration a change replaced, restored if fastpathd refuses the
/// new one.
#[derive(Debug)]
pub(crate) struct Previous {
    pub(crate) config: Config,
    pub(crate) hex_ids: BTreeMap<String, u32>,
    pub(crate) tunnel_ids: TunnelIds,
    pub(crate) desired: Desired,
    pub(crate) serials: ManualSerials,
}

/// What the end of a synchronisation leads to.
#[derive(Debug)]
pub(crate) enum Then {
    /// Reported to the core as [`Done::Synced`].
    Report(SyncWhy),
    /// An IKE update: the records of removed SAs are forgotten, then
    /// reported.
    Ike { what: String, removed: Vec<u64> },
    /// A configuration change: answered, or the previous one restored.
    Change { token: Token, line: String, output: Vec<String>, previous: Box<Previous> },
    /// The previous configuration re-programmed after `error`: answered.
    Restore { token: Token, line: String, error: FastPathError },
    /// `exec confirm manual-keys`: answered.
    Confirm { token: Token, line: String, output: Vec<String> },
}

/// A plan being carried out.
#[derive(Debug, Default)]
struct Exec {
    requests: VecDeque<Request>,
    fingerprints: BTreeMap<u64, String>,
    report: SyncReport,
    refused: Option<FastPathError>,
}

/// The running synchronisation: waiting for its dump (`exec` none), or
/// carrying out its plan.
#[derive(Debug)]
struct Job {
    then: Then,
    exec: Option<Exec>,
}

/// The controller's side of the fastpathd connection.
#[derive(Debug, Default)]
pub(crate) struct Port {
    /// One entry per request sent and not answered, oldest first.
    fifo: VecDeque<Pending>,
    /// Requests made and not handed to the shell yet.
    out: Vec<Request>,
    job: Option<Job>,
    /// Synchronisations waiting for the running one.
    queue: VecDeque<Then>,
    done: VecDeque<Done>,
    /// Something desynchronised the controller since the running
    /// synchronisation started.
    desynced: bool,
}

impl Controller {
    /// The requests to send to fastpathd, in order (then their replies go
    /// to [`Controller::handle_reply`], in the same order).
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.port.out)
    }

    /// True while a request is unanswered or a synchronisation is running
    /// or waiting.
    pub fn busy(&self) -> bool {
        !self.port.fifo.is_empty() || self.port.job.is_some() || !self.port.queue.is_empty()
    }

    /// Requests sent and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.port.fifo.len()
    }

    /// The next step of work that ended.
    pub fn take_done(&mut self) -> Option<Done> {
        self.port.done.pop_front()
    }

    /// What fastpathd may hold changed outside the running work: the next
    /// IKE update compares everything with fastpathd's dump.
    pub(crate) fn desync(&mut self) {
        self.in_sync = false;
        self.port.desynced = true;
    }

    /// fastpathd's reply to the oldest request outstanding.
    /// A [`FastPathError::Lost`] fails everything outstanding, whatever
    /// the request it answers.
    pub fn handle_reply(&mut self, reply: Result<Reply, FastPathError>) {
        if let Err(e @ FastPathError::Lost(_)) = reply {
            return self.fail_all(e);
        }
        let Some(pending) = self.port.fifo.pop_front() else {
            return self
                .fail_all(FastPathError::Lost("fastpathd answered a request controld did not send".into()));
        };
        match pending {
            Pending::Dump => match reply {
                Ok(Reply::Dump(d)) => self.dumped(*d),
                Ok(other) => {
                    self.fail_all(FastPathError::Lost(format!("unexpected answer to dump: {other:?}")));
                }
                Err(e) => self.end_job(Err(e)),
            },
            Pending::Step { what, kind, last } => self.step_reply(what, kind, last, reply),
            Pending::Stats => match reply {
                Ok(Reply::Stats(s)) => {
                    self.observe(*s);
                    self.port.done.push_back(Done::Stats(Ok(())));
                }
                Ok(other) => {
                    self.port.fifo.push_front(Pending::Stats);
                    self.fail_all(FastPathError::Lost(format!("unexpected answer to stats: {other:?}")));
                }
                Err(e) => self.port.done.push_back(Done::Stats(Err(e))),
            },
            Pending::Probe { vpn, seq } => {
                if let Err(FastPathError::Refused { reason, .. }) = reply {
                    self.log.push(format!("vpn monitor {vpn}: probe {seq} not sent: {reason}"));
                }
            }
        }
    }

    /// The connection is gone: every entry outstanding fails with `error`.
    fn fail_all(&mut self, error: FastPathError) {
        let entries = std::mem::take(&mut self.port.fifo);
        self.port.out.clear();
        // What waited for the connection ends with it too (a queued
        // synchronisation would find fastpathd gone).
        let queued = std::mem::take(&mut self.port.queue);
        let mut reported = false;
        if entries.iter().any(|p| matches!(p, Pending::Stats)) {
            self.port.done.push_back(Done::Stats(Err(error.clone())));
            reported = true;
        }
        if self.port.job.is_some() {
            self.end_job(Err(error.clone()));
            reported = true;
        }
        for then in queued {
            self.finish(then, Err(error.clone()));
            reported = true;
        }
        self.in_sync = false;
        self.port.done.push_back(Done::Lost { error, reported });
    }

    /// Reads fastpathd's counters ([`Done::Stats`] when answered): after
    /// the first reading on a connection, only the SAs whose counters
    /// changed since the previous one travel ([`Request::StatsSince`]), so
    /// a second's reading costs what moved, not the number of SAs.
    pub fn poll_stats(&mut self) {
        let request = match self.stats.epoch {
            0 => Request::Stats,
            epoch => Request::StatsSince { epoch },
        };
        self.port.fifo.push_back(Pending::Stats);
        self.port.out.push(request);
    }

    /// Sends a VPN monitor probe; a refusal is logged.
    pub(crate) fn send_probe(&mut self, vpn: String, seq: u16, request: Request) {
        self.port.fifo.push_back(Pending::Probe { vpn, seq });
        self.port.out.push(request);
    }

    /// Brings fastpathd to the desired state: `Dump`, plan the difference,
    /// send it; [`Done::Synced`] with `why` when it ends. Adopts what
    /// fastpathd already holds (a restart of controld re-installs
    /// nothing); re-installs everything into an empty fastpathd.
    pub fn sync(&mut self, why: SyncWhy) {
        self.start_sync(Then::Report(why));
    }

    /// Starts a synchronisation (after the running one, if any).
    pub(crate) fn start_sync(&mut self, then: Then) {
        if self.port.job.is_some() {
            self.port.queue.push_back(then);
            return;
        }
        self.port.desynced = false;
        self.port.job = Some(Job { then, exec: None });
        self.port.fifo.push_back(Pending::Dump);
        self.port.out.push(Request::Dump);
    }

    /// Carries out `plan` now (the caller made sure nothing runs).
    pub(crate) fn start_plan(&mut self, then: Then, plan: Plan, wanted: &Desired) {
        self.port.desynced = false;
        self.port.job = Some(Job { then, exec: None });
        self.begin_exec(plan, wanted);
    }

    fn dumped(&mut self, dump: Dump) {
        if self.port.job.is_none() {
            return self
                .fail_all(FastPathError::Lost("fastpathd sent a dump controld did not ask for".into()));
        }
        let wanted = self.wanted();
        let plan = self.sa.plan(&dump, &wanted);
        self.begin_exec(plan, &wanted);
    }

    fn begin_exec(&mut self, plan: Plan, wanted: &Desired) {
        let report =
            SyncReport { kept: plan.kept.len(), requests: plan.requests.len(), ..SyncReport::default() };
        for id in &plan.kept {
            if let Some(d) = wanted.sas.get(id) {
                if !self.sa.is_installed(*id) {
                    self.status.touch(crate::core::negotiated::key_of(d));
                }
                self.sa.note_kept(&d.spec);
            }
        }
        let exec = Exec {
            fingerprints: plan.added.into_iter().collect(),
            requests: plan.requests.into(),
            report,
            refused: None,
        };
        if let Some(job) = self.port.job.as_mut() {
            job.exec = Some(exec);
        }
        self.send_batch();
    }

    /// Sends the next batch of the running plan: a run of installs (one
    /// round trip for a turn's Quick Modes) or one other request; ends the
    /// synchronisation when nothing is left.
    fn send_batch(&mut self) {
        let Some(exec) = self.port.job.as_mut().and_then(|j| j.exec.as_mut()) else { return };
        let Some(first) = exec.requests.pop_front() else {
            let report = std::mem::take(&mut exec.report);
            return self.end_job(Ok(report));
        };
        let mut batch = vec![first];
        if matches!(batch[0], Request::AddSa(_)) {
            while matches!(exec.requests.front(), Some(Request::AddSa(_))) {
                batch.extend(exec.requests.pop_front());
            }
        }
        let n = batch.len();
        for (i, r) in batch.iter().enumerate() {
            let kind = match r {
                Request::AddSa(s) => Step::Add(s.clone()),
                Request::RemoveSa { id } => Step::Remove(*id),
                _ => Step::Other,
            };
            self.port.fifo.push_back(Pending::Step { what: describe(r), kind, last: i + 1 == n });
        }
        self.port.out.extend(batch);
    }

    fn step_reply(&mut self, what: String, kind: Step, last: bool, reply: Result<Reply, FastPathError>) {
        let Some(mut job) = self.port.job.take() else { return };
        let Some(exec) = job.exec.as_mut() else {
            self.port.job = Some(job);
            return self.fail_all(FastPathError::Lost("fastpathd answered a plan not started".into()));
        };
        match (kind, reply) {
            (Step::Add(spec), Ok(_)) => {
                if spec.last_seq > 0 && self.ike_sas.contains_key(&spec.id) {
                    exec.report.resumed_ike.push(spec.id);
                }
                if let Some(f) = exec.fingerprints.get(&spec.id) {
                    self.sa.note_added(&spec, f);
                }
                self.touch_sa(spec.id);
                exec.report.added += 1;
                self.log.push(format!("fastpathd: {what}"));
            }
            (Step::Add(_), Err(e)) => {
                exec.refused.get_or_insert(e);
            }
            (Step::Remove(id), reply) => {
                // Gone already (removed with its VPN): what we wanted.
                let gone = match &reply {
                    Ok(_) => true,
                    Err(FastPathError::Refused { reason, .. }) => reason.starts_with("no SA"),
                    Err(FastPathError::Lost(_)) => false,
                };
                if gone {
                    self.touch_sa(id);
                    self.sa.note_removed(id);
                    if !exec.fingerprints.contains_key(&id) {
                        exec.report.removed += 1;
                    }
                    self.log.push(format!("fastpathd: {what}"));
                } else if let Err(e) = reply {
                    exec.refused.get_or_insert(e);
                }
            }
            (Step::Other, Ok(_)) => self.log.push(format!("fastpathd: {what}")),
            (Step::Other, Err(e)) => {
                exec.refused.get_or_insert(e);
            }
        }
        if !last {
            self.port.job = Some(job);
            return;
        }
        match exec.refused.take() {
            Some(e) => {
                self.port.job = Some(job);
                self.end_job(Err(e));
            }
            None => {
                self.port.job = Some(job);
                self.send_batch();
            }
        }
    }

    /// The running synchronisation ended; the next one waiting starts.
    fn end_job(&mut self, result: Result<SyncReport, FastPathError>) {
        let Some(job) = self.port.job.take() else { return };
        self.in_sync = result.is_ok() && !self.port.desynced;
        self.finish(job.then, result);
        if self.port.job.is_none() {
            if let Some(next) = self.port.queue.pop_front() {
                self.start_sync(next);
            }
        }
    }

    fn finish(&mut self, then: Then, result: Result<SyncReport, FastPathError>) {
        match then {
            Then::Report(why) => self.port.done.push_back(Done::Synced { why, result }),
            Then::Ike { what, removed } => {
                for id in removed {
                    // Negotiated keys never come back: forget their records.
                    if !self.sa.is_installed(id) {
                        self.sa.forget(id);
                    }
                }
                self.refresh_status();
                self.port.done.push_back(Done::Synced { why: SyncWhy::Ike(what), result });
            }
            Then::Change { token, line, mut output, previous } => match result {
                Ok(r) => {
                    if r.requests > 0 {
                        output.push(format!(
                            "fastpathd: {} request(s): {} SA(s) added, {} removed, {} unchanged",
                            r.requests, r.added, r.removed, r.kept
                        ));
                    }
                    self.answer(token, line, Response::ok(output));
                }
                Err(error @ FastPathError::Refused { .. }) => {
                    let p = *previous;
                    (self.config, self.hex_ids, self.tunnel_ids, self.desired, self.serials) =
                        (p.config, p.hex_ids, p.tunnel_ids, p.desired, p.serials);
                    self.reconfigure_monitor();
                    self.reindex();
                    self.refresh_status();
                    // Before anything waiting: the restore answers the command.
                    self.port.queue.push_front(Then::Restore { token, line, error });
                }
                Err(e) => {
                    output.push(format!("{e}: the change is programmed when fastpathd is back"));
                    self.answer(token, line, Response::ok(output));
                }
            },
            Then::Restore { token, line, error } => {
                let back = match result {
                    Ok(_) => "the previous configuration is restored".to_owned(),
                    Err(e2) => format!("restoring the previous configuration failed too: {e2}"),
                };
                self.answer(token, line, Response::err(format!("{error}; {back}")));
            }
            Then::Confirm { token, line, mut output } => {
                if let Err(e) = result {
                    output.push(format!("{e}: programmed when fastpathd is back"));
                }
                // No "configuration changed" event: the confirmation has its own.
                let response = Response::ok(output);
                self.port.done.push_back(Done::Command { token, line, response });
            }
        }
    }

    /// A command answered late.
    fn answer(&mut self, token: Token, line: String, response: Response) {
        self.note_command(&line, &response);
        self.port.done.push_back(Done::Command { token, line, response });
    }

    /// A successful change of the configuration goes to the event log.
    pub(crate) fn note_command(&mut self, line: &str, response: &Response) {
        let first = line.split_whitespace().next();
        if response.result.is_ok() && matches!(first, Some("set" | "unset" | "exec")) {
            // Redacted: keys and pre-shared keys never reach the log.
            let what = esprit_config::lexer::redact(line);
            self.note_event(Severity::Info, EventKind::Config, format!("configuration changed: {what}"));
        }
    }

    /// IKE negotiated or lost SAs: records the change and, when fastpathd
    /// is `connected`, programs it (inbound SAs before outbound ones):
    /// while the controller is in sync and nothing else runs, only the SAs
    /// it touches (the same requests the whole plan would send, at a cost
    /// that does not grow with the number of SAs), else a whole
    /// synchronisation. Without fastpathd the change is programmed at the
    /// next synchronisation. Ends with a [`Done::Synced`] of
    /// [`SyncWhy::Ike`].
    pub fn ike_update(&mut self, add: Vec<DesiredSa>, remove: &[u64], connected: bool) {
        let what = if add.is_empty() {
            format!("remove SAs {remove:x?}")
        } else {
            let ids: Vec<String> = add.iter().map(|s| format!("{:#x}", s.spec.id)).collect();
            format!("install SAs {}", ids.join(", "))
        };
        let touched_only = self.in_sync && connected && !self.busy();
        // What fastpathd holds of the SAs this update touches, as last
        // programmed (read before the update changes it).
        let mut held = Dump::default();
        if touched_only {
            for id in remove.iter().chain(add.iter().map(|s| &s.spec.id)) {
                let was = self.ike_sas.get(id).or_else(|| self.desired.sas.get(id));
                if let Some(d) = was.filter(|_| self.sa.is_installed(*id)) {
                    let s = &d.spec;
                    held.sas.push((s.id, s.direction, s.spi, s.vpn, s.proxy_id.clone()));
                }
            }
        }
        let touched: Vec<u64> = add.iter().map(|s| s.spec.id).collect();
        for id in remove {
            if let Some(s) = self.ike_sas.remove(id) {
                self.status.touch(crate::core::negotiated::key_of(&s));
            }
            self.ike_life.remove(id);
        }
        for s in add {
            let key = crate::core::negotiated::key_of(&s);
            // Negotiated again: a later loss is a loss (`idletime`).
            self.idled.remove(&key);
            self.status.touch(key);
            self.ike_sas.insert(s);
        }
        if !connected {
            self.desync();
            let done = Done::Synced { why: SyncWhy::Ike(what), result: Ok(SyncReport::default()) };
            self.port.done.push_back(done);
            return;
        }
        let then = Then::Ike { what, removed: remove.to_vec() };
        if !touched_only {
            return self.start_sync(then);
        }
        let mut wanted = Desired::default();
        for id in &touched {
            if let Some(d) = self.ike_sas.get(id) {
                wanted.sas.insert(*id, d.clone());
            }
        }
        let plan = self.sa.plan(&held, &wanted);
        self.start_plan(then, plan, &wanted);
    }
}
