//! controld as one sans-IO state machine: the [`Controller`] (configuration,
//! SA manager, status, VPN monitor) and the [`IkeManager`] tied together by
//! what used to live in the daemon's loop: acquire -> IKE -> install ->
//! status -> monitor -> withdrawal -> rekey.
//!
//! The [`Core`] owns no socket, thread or clock. The shell hands it
//! operator commands, fastpathd events, fastpathd's replies, IKE datagrams
//! with their source address, and the time (an `Instant` passed in); it
//! answers with [`Output`]s to carry out (fastpathd requests, datagrams to
//! send, operator answers, log lines, files to write, the fastpathd
//! connection to drop) and [`Core::poll_timeout`], the next instant it
//! wants [`Core::handle_timeout`] called.
//!
//! **fastpathd is requests out, replies in** ([`crate::core::port`]): an
//! [`Output::FastPath`] carries requests to send in order; the shell hands
//! each reply to [`Core::handle_fastpath_reply`] in the same order (a lost
//! connection as [`FastPathError::Lost`]), whenever it has it. What the
//! core was doing with each request is kept as data (a FIFO of what each
//! was for, the continuation of each synchronisation), so nothing waits
//! inside the core. While requests are outstanding, work that would start
//! another fastpathd step waits in order: IKE's installs and removals (and
//! the datagrams that follow them, so an inbound SA is in before the
//! message that lets the peer use it), operator commands that program
//! fastpathd, and the rest of the turn (counters, VPN monitor, route
//! withdrawals, resync, the state files). Everything else (datagrams in,
//! events, `get` commands, timers of IKE) is taken at once. An SA counts
//! as installed from fastpathd's accepting reply only. An operator command
//! that programs fastpathd is answered later: [`Core::handle_command`]
//! gives a [`Token`], and its [`Output::Reply`] carries the answer. The
//! IKE state goes to an [`IkeStore`] port the shell gives the core once
//! (the state directory, or memory in tests), written synchronously
//! (`fdatasync`) before the turn's actions are carried out.
//!
//! **The IKE state** (`ike.json` and `ike.journal`,
//! [`crate::ike::persist`]) is written before the actions of an IKE change
//! are carried out: when an exchange completed or failed (an ISAKMP SA up
//! or down, a child SA up, rekeyed or deleted), the records it changed are
//! appended to the journal (one write, one `fdatasync` per turn) before its
//! SAs go to fastpathd and before the message that tells the peer leaves
//! (a datagram is an [`Output`], carried out after the turn), so a
//! controld killed at any instant restarts with every SA the peer may use
//! (the one window IKEv1 leaves: a Quick Mode responder killed after QM3
//! arrived and before the append; QM3 has no answer to hold back). Changes
//! that complete no exchange (the DPD sequence number) are written at most
//! once a [`SAVE_INTERVAL`], and only if something changed. A turn's cost
//! is what changed in it, plus a snapshot of everything when the journal
//! has grown past the snapshot (amortised: see the persist module).

use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use esprit_fastpath_api::{Direction, FastPathEvent, Reply, Request};
use esprit_ike::{Transmit, WallClock};

use crate::core::controller::{Controller, FastPathError, Response};
use crate::core::events::{EventKind, Severity};
use crate::core::ingest::{IkeLogLimiter, IngestCounters};
use crate::core::port::{Answer, Done, SyncWhy, Token};
use crate::core::sa::STATS_INTERVAL_SECS;
use crate::core::spi::SpiAllocator;
use crate::core::state::{State, StateWrite, StateWriter};
use crate::ike::persist::{self as ike_state, IkeStore, IkeWriter, Loaded, SasAfter};
use crate::ike::{ike_gateways, IkeAction, IkeManager, RandomFill};

/// How often fastpathd is compared with the desired state while they may
/// differ: after a failed request, or when fastpathd's counters say that
/// something else changed what it holds ([`Stats::changed_by_others`]:
/// another client, or an SA it removed itself).
///
/// [`Stats::changed_by_others`]: esprit_fastpath_api::Stats::changed_by_others
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(2);
/// How often fastpathd is compared with the desired state when nothing
/// says they differ: a safety net only. A comparison reads fastpathd's
/// whole dump and plans every SA, O(SAs): at 20,000 SAs, every 2 s, it
/// was a quarter of controld's main loop while pairs came up.
pub const COMPARE_INTERVAL: Duration = Duration::from_secs(60);
/// Longest interval between two turns of [`Core::handle_timeout`]
/// (fastpathd's counters, the VPN monitor and the resync are checked at
/// each turn).
pub const MAX_WAIT: Duration = Duration::from_millis(100);
/// Shortest interval between two writes of a state file.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// What the shell must do, in this order.
#[derive(Debug)]
pub enum Output {
    /// Send an IKE datagram (port 4500: with the non-ESP marker).
    Transmit(Transmit),
    /// A line for controld's log.
    Log(String),
    /// Write the state files (`controld.json` and its journal: sequence
    /// numbers, HEX IDs); on failure, tell [`Core::state_write_failed`].
    SaveState(StateWrite),
    /// Send these requests to fastpathd, in order, and hand each reply to
    /// [`Core::handle_fastpath_reply`], in the same order (or the loss of
    /// the connection, once).
    FastPath(Vec<Request>),
    /// The late answer of the operator command given this token by
    /// [`Core::handle_command`].
    Reply { token: Token, response: Response },
    /// fastpathd's connection is broken: drop it and reconnect (the core
    /// already forgot what fastpathd held).
    FastPathLost,
    /// IKE needs sockets on these local addresses (the configuration
    /// changed): bind those not bound yet.
    Listen(BTreeSet<IpAddr>),
    /// fastpathd's counters were read (false: the reading failed), for
    /// the metrics endpoint: they are in the controller
    /// ([`Controller::stats`]), every SA, whatever part of them travelled.
    Stats(bool),
}

/// A turn of [`Core::handle_timeout`] under way: its instant, the next
/// step, and whether a fastpathd step of it failed.
#[derive(Debug, Clone, Copy)]
struct Turn {
    now: Instant,
    step: TurnStep,
    failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TurnStep {
    Stats,
    Monitor,
    Routes,
    Resync,
    Save,
}

/// controld's core. See the module documentation.
pub struct Core {
    ctl: Controller,
    ike: IkeManager,
    /// Monotonic times in the IKE state are written relative to one
    /// reading of both clocks, so an unchanged state gives the same bytes.
    clock: WallClock,
    limiter: IkeLogLimiter,
    /// Writes the IKE state (journal and snapshots).
    ike_writer: IkeWriter,
    /// Decides what of `controld.json`'s state to write.
    state_writer: StateWriter,
    last_ike_save: Instant,
    last_stats: Instant,
    last_sync: Instant,
    last_save: Instant,
    /// When the last turn ran.
    last_turn: Instant,
    /// IKE actions waiting for the state file to be handed out.
    pending_ike: Vec<IkeAction>,
    /// IKE actions written to the state file and waiting for fastpathd's
    /// answers to what went before them.
    ike_waiting: VecDeque<IkeAction>,
    /// Operator commands that program fastpathd, waiting for the work
    /// outstanding.
    commands: VecDeque<(Token, String)>,
    /// The last token given to a command answered later.
    tokens: u64,
    /// fastpathd is connected.
    connected: bool,
    /// The rest of the current turn, while it waits for fastpathd.
    turn: Option<Turn>,
    /// IKE installed or removed SAs since the state was last saved.
    sas_changed: bool,
    /// IKE's ingest counters as the shell last told them.
    ingest: IngestCounters,
    out: VecDeque<Output>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("ike", &self.ike).finish_non_exhaustive()
    }
}

impl Core {
    /// A core for `ctl` (configuration and persisted state loaded), with
    /// IKE resumed from `ike_file` (what the snapshot and journal held),
    /// the random source `fill`, `clock` (both clocks read once by the
    /// shell), and `store` where the IKE state goes. Writes a snapshot of
    /// what it resumed at once (the journal starts afresh).
    pub fn new(
        mut ctl: Controller,
        ike_file: Loaded,
        fill: RandomFill,
        clock: WallClock,
        store: Box<dyn IkeStore>,
    ) -> Core {
        let now = clock.now;
        let mut out = VecDeque::new();
        // IKE: one peer per AutoKey gateway.
        let (gateways, warnings) = ike_gateways(ctl.config(), ctl.hex_ids());
        out.extend(warnings.into_iter().map(|w| Output::Log(format!("warning: {w}"))));
        let mut spis = SpiAllocator::new();
        for s in ctl.desired().sas.values() {
            if s.spec.direction == Direction::Inbound {
                let _ = spis.reserve(s.spec.spi);
            }
        }
        let mut ike = IkeManager::new(gateways, spis, fill);
        ike.set_wall_clock(clock);
        // What IKE negotiated before a restart: resumed, and its SAs wanted
        // again, so the first synchronisation adopts fastpathd's copies.
        let generation = match &ike_file {
            Loaded::State(f) => f.generation,
            Loaded::Absent | Loaded::Discarded(_) => 0,
        };
        match ike_file {
            Loaded::Absent => {}
            Loaded::Discarded(e) => {
                let l = format!(
                    "error: {e}: moved to {}.bad; starting without IKE state (the peers renegotiate)",
                    ike_state::IKE_STATE_FILE
                );
                out.push_back(Output::Log(l.clone()));
                ctl.note_event(Severity::Warning, EventKind::Ike, l);
            }
            Loaded::State(f) => {
                let r = ike.restore(&f, &clock);
                out.extend(r.log.into_iter().map(Output::Log));
                ctl.resume_ike_sas(r.sas);
            }
        }
        let mut state_writer = StateWriter::new(ctl.state_generation());
        out.push_back(Output::SaveState(StateWrite::Snapshot(Box::new(state_writer.snapshot(ctl.state())))));
        let mut ike_writer = IkeWriter::new(store, generation);
        if let Some(l) = ike_writer.snapshot(&mut ike, &clock, now, &SasAfter::new(ctl.ike_sas(), &[])) {
            out.push_back(Output::Log(l));
        }
        Core {
            ctl,
            ike,
            clock,
            limiter: IkeLogLimiter::new(now),
            ike_writer,
            state_writer,
            last_ike_save: now,
            last_stats: now,
            last_sync: now,
            last_save: now,
            last_turn: now,
            pending_ike: Vec::new(),
            ike_waiting: VecDeque::new(),
            commands: VecDeque::new(),
            tokens: 0,
            connected: false,
            turn: None,
            sas_changed: false,
            ingest: IngestCounters::default(),
            out,
        }
    }

    /// The controller (status, SAs, configuration).
    pub fn controller(&self) -> &Controller {
        &self.ctl
    }

    /// The controller, to change (tests, the system log).
    pub fn controller_mut(&mut self) -> &mut Controller {
        &mut self.ctl
    }

    /// The IKE manager.
    pub fn ike(&self) -> &IkeManager {
        &self.ike
    }

    /// The local addresses IKE needs sockets on.
    pub fn local_addresses(&self) -> BTreeSet<IpAddr> {
        self.ike.local_addresses()
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// IKE's ingest counters, as the shell's queues count them (`get
    /// counter`, the drop summary line).
    pub fn set_ingest(&mut self, counters: IngestCounters) {
        self.ingest = counters;
    }

    /// When [`Core::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        let tick = self.last_turn + MAX_WAIT;
        self.ike.poll_timeout().map_or(tick, |t| t.min(tick))
    }

    fn log(&mut self, line: impl Into<String>) {
        self.out.push_back(Output::Log(line.into()));
    }

    fn drain_controller_log(&mut self) {
        for l in self.ctl.take_log() {
            self.out.push_back(Output::Log(l));
        }
    }

    /// fastpathd is connected (again): bring it to the desired state,
    /// adopting what it holds (a dump, then the plan, as requests out).
    pub fn handle_connected(&mut self, now: Instant) {
        self.log("fastpathd connected: synchronising");
        self.ctl.note_event(Severity::Info, EventKind::FastPath, "fastpathd connected");
        self.connected = true;
        self.ctl.sync(SyncWhy::Connected);
        self.last_sync = now;
        self.advance(now);
    }

    /// True while fastpathd is connected (from [`Core::handle_connected`]
    /// to the loss of the connection).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Requests sent to fastpathd and not answered yet.
    pub fn fastpath_outstanding(&self) -> usize {
        self.ctl.outstanding()
    }

    /// fastpathd's reply to the oldest request outstanding (in the order
    /// of the [`Output::FastPath`] requests), or the loss of the
    /// connection ([`FastPathError::Lost`]: every request outstanding
    /// fails, and an [`Output::FastPathLost`] follows).
    pub fn handle_fastpath_reply(&mut self, now: Instant, reply: Result<Reply, FastPathError>) {
        self.ctl.handle_reply(reply);
        self.advance(now);
    }

    fn next_token(&mut self) -> Token {
        self.tokens += 1;
        Token(self.tokens)
    }

    /// True while fastpathd work is outstanding or waiting.
    fn port_busy(&self) -> bool {
        self.ctl.busy() || !self.ike_waiting.is_empty() || !self.commands.is_empty()
    }

    /// One operator command line: answered now, or later (an
    /// [`Output::Reply`] with the token) when it programs fastpathd. A
    /// command that changes the configuration while fastpathd work is
    /// outstanding waits its turn (and is answered later too).
    pub fn handle_command(&mut self, now: Instant, line: &str) -> Answer {
        let first = line.split_whitespace().next().unwrap_or("");
        if matches!(first, "get" | "clear") {
            self.ctl.set_ike_view(self.ike.view(now));
            self.ctl.set_ike_ingest(self.ingest);
        }
        let programs = matches!(first, "set" | "unset" | "exit" | "exec");
        if programs && self.connected && self.port_busy() {
            let token = self.next_token();
            self.commands.push_back((token, line.to_owned()));
            return Answer::Later(token);
        }
        let token = self.connected.then(|| self.next_token());
        let answer = match self.ctl.command(line, token) {
            Answer::Now(r) => Answer::Now(self.finish_command(now, line, r)),
            later => later,
        };
        self.advance(now);
        answer
    }

    /// What follows a command's answer: IKE's part of `clear sa`, IKE
    /// following the configuration, the log line.
    fn finish_command(&mut self, now: Instant, line: &str, mut resp: Response) -> Response {
        let first = line.split_whitespace().next().unwrap_or("");
        for target in self.ctl.take_clears() {
            resp.output.extend(self.ike.clear(now, target.as_ref().map(|(h, p)| (*h, p.as_str()))));
        }
        if matches!(first, "set" | "unset" | "exec") && resp.result.is_ok() {
            // IKE follows the running configuration.
            let (gateways, warnings) = ike_gateways(self.ctl.config(), self.ctl.hex_ids());
            for w in warnings {
                self.log(format!("warning: {w}"));
            }
            let actions = self.ike.reconfigure(now, gateways);
            self.pending_ike.extend(actions);
            self.out.push_back(Output::Listen(self.ike.local_addresses()));
        }
        let redacted = esprit_config::lexer::redact(line);
        match &resp.result {
            Ok(()) => self.log(format!("operator: {redacted}: ok")),
            Err(e) => self.log(format!("operator: {redacted}: {e}")),
        }
        resp
    }

    /// A fastpathd event.
    pub fn handle_event(&mut self, now: Instant, e: &FastPathEvent) {
        if !matches!(e, FastPathEvent::ProbeReply { .. } | FastPathEvent::Acquire { .. }) {
            self.log(describe_event(e));
        }
        match e {
            FastPathEvent::Acquire { tunnel, proxy_id, .. } => {
                let a = self.ike.acquire(now, *tunnel, proxy_id);
                if a.repeat {
                    // Summed up once a second (IkeLogLimiter::summary).
                    self.limiter.repeated_acquire();
                } else {
                    self.log(describe_event(e));
                    self.log(a.line.clone());
                }
                self.ctl.record_ike_log(&a.line);
            }
            FastPathEvent::SoftExpire { sa, .. } => {
                if let Some(l) = self.ike.sa_soft_expired(now, *sa) {
                    self.log(l);
                }
            }
            FastPathEvent::HardExpire { sa, .. } => {
                if let Some(l) = self.ike.sa_expired(now, *sa) {
                    self.log(l);
                }
            }
            _ => {}
        }
        self.ctl.record_fastpath_event(e);
    }

    /// An IKE datagram that arrived on `local` from `remote` (non-ESP
    /// marker stripped). Returns true when IKE rejected it: the shell
    /// counts it with its ingest drops ([`crate::core::ingest::IkeDrop::Rejected`]).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> bool {
        match self.ike.handle_datagram(now, local, remote, bytes) {
            Ok(()) => false,
            Err(e) => {
                // Never a line per datagram: counted, and the latest
                // reason goes in the summary line.
                let r = remote.to_string();
                self.limiter.rejected(if e.contains(&r) { e } else { format!("from {r}: {e}") });
                true
            }
        }
    }

    /// The core's turn: IKE's timers and what the peers produced, the
    /// state files, fastpathd's counters, the VPN monitor, route
    /// withdrawals and the periodic resync. Call it after every batch of
    /// inputs and at [`Core::poll_timeout`]. The parts that need fastpathd
    /// go out as requests; the turn goes on as their replies come in.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_turn = now;
        self.drain_controller_log();
        if let Some(l) = self.limiter.summary(now, self.ingest) {
            self.log(l);
        }

        // `withdraw-routes`: traffic no longer reaches a withdrawn
        // proxy-ID, so controld renegotiates it itself.
        // The event log has the first try; the log has every one.
        for (tunnel, proxy_id, first) in self.ctl.withdrawn_to_negotiate(now) {
            let l = self.ike.acquire(now, tunnel, &proxy_id).line;
            self.log(format!("withdrawn proxy-id: {l}"));
            if first {
                self.ctl.record_ike_log(&l);
            }
        }

        // IKE: timers, then what the peers produced.
        self.ike.handle_timeout(now);
        let produced = self.ike.poll(now);
        self.pending_ike.extend(produced);
        // The IKE state first (see the module doc): an exchange that
        // completed is on disk before its SAs and messages go out.
        // After a failed write, the snapshot that repairs it is tried at
        // the same pace (never at every turn: it costs the whole state).
        // Actions of earlier turns still waiting for fastpathd are not in
        // the controller's SAs yet: they count as pending (written again).
        let urgent = self.ike.take_changed();
        let write = urgent || now.saturating_duration_since(self.last_ike_save) >= SAVE_INTERVAL;
        let mut actions: Vec<IkeAction> = self.ike_waiting.drain(..).collect();
        actions.append(&mut self.pending_ike);
        let (ike, clock, sas) = (&mut self.ike, &self.clock, self.ctl.ike_sas());
        if let Some(l) = self.ike_writer.turn(ike, clock, now, sas, &actions, write) {
            self.log(l);
        }
        if write {
            self.last_ike_save = now;
        }
        self.ike_waiting = actions.into();
        self.turn = Some(Turn { now, step: TurnStep::Stats, failed: false });
        self.advance(now);
    }

    /// Carries out what waits, in order, until a fastpathd request is
    /// outstanding or nothing is left; then hands out the requests.
    fn advance(&mut self, now: Instant) {
        loop {
            while let Some(d) = self.ctl.take_done() {
                self.on_done(now, d);
            }
            self.drain_controller_log();
            if self.ctl.busy() {
                break;
            }
            if let Some(a) = self.ike_waiting.pop_front() {
                self.carry_out_ike(now, a);
                continue;
            }
            if let Some((token, line)) = self.commands.pop_front() {
                let first = line.split_whitespace().next().unwrap_or("");
                if matches!(first, "get" | "clear") {
                    self.ctl.set_ike_view(self.ike.view(now));
                    self.ctl.set_ike_ingest(self.ingest);
                }
                let port = self.connected.then_some(token);
                if let Answer::Now(r) = self.ctl.command(&line, port) {
                    let response = self.finish_command(now, &line, r);
                    self.out.push_back(Output::Reply { token, response });
                }
                continue;
            }
            if self.turn.is_some() {
                self.turn_step();
                continue;
            }
            break;
        }
        let requests = self.ctl.take_requests();
        if !requests.is_empty() {
            self.out.push_back(Output::FastPath(requests));
        }
    }

    /// One of IKE's actions, in order (its installs and removals wait for
    /// fastpathd's answers to what went before).
    fn carry_out_ike(&mut self, now: Instant, action: IkeAction) {
        match action {
            IkeAction::Send(t) => self.out.push_back(Output::Transmit(t)),
            IkeAction::Log(l) => {
                // The one rate limiter of IKE's lines (a stranger's
                // datagrams can make the peers log).
                if self.limiter.allow(now) {
                    self.ctl.record_ike_log(&l);
                    self.log(l);
                }
            }
            IkeAction::Install(mut sas) => {
                // Installs that follow one another go to fastpathd
                // together, in their order (one round trip for a turn's
                // Quick Modes). A removal or a datagram ends the run:
                // make-before-break, and inbound SAs in before the
                // message that lets the peer use them.
                while matches!(self.ike_waiting.front(), Some(IkeAction::Install(_))) {
                    if let Some(IkeAction::Install(more)) = self.ike_waiting.pop_front() {
                        sas.extend(more);
                    }
                }
                self.sas_changed = true;
                self.ctl.ike_update(sas, &[], self.connected);
            }
            IkeAction::Remove(ids) => {
                self.sas_changed = true;
                self.ctl.ike_update(Vec::new(), &ids, self.connected);
            }
        }
    }

    /// A fastpathd step ended: what follows it.
    fn on_done(&mut self, now: Instant, done: Done) {
        match done {
            Done::Synced { why: SyncWhy::Connected, result } => match result {
                Ok(r) => {
                    self.log(format!(
                        "fastpathd synchronised: {} request(s), {} SA(s) adopted, {} installed, {} removed",
                        r.requests, r.kept, r.added, r.removed
                    ));
                    for id in &r.resumed_ike {
                        if let Some(l) = self.ike.rekey_now(now, *id) {
                            self.log(l);
                        }
                    }
                }
                Err(e @ FastPathError::Refused { .. }) => {
                    self.log(format!("error: {e} (retrying in {}s)", RESYNC_INTERVAL.as_secs()));
                }
                Err(e) => self.log(format!("{e}")),
            },
            Done::Synced { why: SyncWhy::Ike(what), result } => match result {
                Ok(r) => self.log(format!(
                    "IKE: {what}: {} request(s), {} SA(s) installed, {} removed",
                    r.requests, r.added, r.removed
                )),
                Err(e @ FastPathError::Refused { .. }) => self.log(format!("IKE: {what}: error: {e}")),
                Err(e) => self.log(format!("IKE: {what}: {e}: reconnecting")),
            },
            Done::Synced { why: SyncWhy::Routes, result } => match result {
                // A proxy-ID's routes were withdrawn or restored.
                Ok(r) => self.log(format!("routes reprogrammed: {} request(s)", r.requests)),
                Err(e) => self.turn_failed(e),
            },
            Done::Synced { why: SyncWhy::Resync, result } => match result {
                Ok(r) if r.requests > 0 => self.log(format!(
                    "fastpathd differed from the configuration: {} request(s), {} SA(s) installed, {} removed",
                    r.requests, r.added, r.removed
                )),
                Ok(_) => {}
                Err(e) => self.turn_failed(e),
            },
            Done::Stats(result) => {
                self.out.push_back(Output::Stats(result.is_ok()));
                match result {
                    Ok(()) => {
                        // `idletime`: pairs that carried nothing are deleted
                        // with the peer, like `clear sa` of their HEX ID.
                        for (hex_id, proxy_id) in self.ctl.take_idle_pairs(now) {
                            for l in self.ike.clear(now, Some((hex_id, &proxy_id))) {
                                self.log(format!("idletime: {l}"));
                            }
                        }
                    }
                    Err(e) => self.turn_failed(e),
                }
            }
            Done::Command { token, line, response } => {
                let response = self.finish_command(now, &line, response);
                self.out.push_back(Output::Reply { token, response });
            }
            Done::Lost { error, reported } => {
                if !reported {
                    self.log(format!("{error}: reconnecting"));
                }
                self.lose_fastpath();
            }
        }
    }

    /// A fastpathd step of the turn failed: the rest of the turn's
    /// fastpathd steps wait for the next turn.
    fn turn_failed(&mut self, e: FastPathError) {
        match e {
            FastPathError::Refused { .. } => self.log(format!("error: {e}")),
            FastPathError::Lost(_) => self.log(format!("{e}: reconnecting")),
        }
        if let Some(t) = self.turn.as_mut() {
            t.failed = true;
        }
    }

    /// The connection to fastpathd broke.
    fn lose_fastpath(&mut self) {
        if !self.connected {
            return;
        }
        self.connected = false;
        self.ctl.fastpath_lost();
        self.out.push_back(Output::FastPathLost);
    }

    /// The next step of the turn: counters, VPN monitor, withdrawn
    /// routes, resync (each when due, while fastpathd is connected and no
    /// step failed), then the state files.
    fn turn_step(&mut self) {
        let Some(turn) = self.turn.as_mut() else { return };
        let (now, step) = (turn.now, turn.step);
        let live = self.connected && !turn.failed;
        match step {
            TurnStep::Stats => {
                turn.step = TurnStep::Monitor;
                let due = Duration::from_secs(STATS_INTERVAL_SECS);
                if live && now.saturating_duration_since(self.last_stats) >= due {
                    self.last_stats = now;
                    self.ctl.poll_stats();
                }
            }
            TurnStep::Monitor => {
                turn.step = TurnStep::Routes;
                if live {
                    // VPN monitor probes; `rekey` renegotiates a pair it found DOWN.
                    for sa in self.ctl.monitor_tick(now) {
                        if let Some(l) = self.ike.sa_expired(now, sa) {
                            self.log(l);
                        }
                    }
                }
            }
            TurnStep::Routes => {
                turn.step = TurnStep::Resync;
                if live && self.ctl.take_routes_pending() {
                    self.ctl.sync(SyncWhy::Routes);
                }
            }
            TurnStep::Resync => {
                turn.step = TurnStep::Save;
                let since = now.saturating_duration_since(self.last_sync);
                if live && (since >= COMPARE_INTERVAL || (since >= RESYNC_INTERVAL && !self.ctl.in_sync)) {
                    self.last_sync = now;
                    self.ctl.sync(SyncWhy::Resync);
                }
            }
            TurnStep::Save => {
                self.turn = None;
                // After IKE installed SAs their sequence-number records are
                // saved at once (a restart of both daemons must not reuse
                // them).
                let sas_changed = std::mem::take(&mut self.sas_changed);
                if (sas_changed || now.saturating_duration_since(self.last_save) >= SAVE_INTERVAL)
                    && self.ctl.state_changed()
                {
                    let changes = self.ctl.take_state_changes();
                    if let Some(w) = self.state_writer.turn(&changes, &self.ctl) {
                        self.out.push_back(Output::SaveState(w));
                    }
                    self.last_save = now;
                }
            }
        }
    }

    /// A datagram could not be sent: logged within IKE's line budget.
    pub fn transmit_failed(&mut self, now: Instant, error: String) {
        if self.limiter.allow(now) {
            self.log(error);
        }
    }

    /// The IKE state's writer (its sizes; tests make it compact sooner).
    pub fn ike_writer(&mut self) -> &mut IkeWriter {
        &mut self.ike_writer
    }

    /// A write of the state files failed: the next one is a snapshot.
    pub fn state_write_failed(&mut self) {
        self.state_writer.failed();
    }

    /// The state files' writer (its sizes; tests make it compact sooner).
    pub fn state_writer(&mut self) -> &mut StateWriter {
        &mut self.state_writer
    }

    /// controld stops: the IKE state is written whole (a snapshot, so the
    /// next start reads no journal); returns `controld.json`'s state, a
    /// snapshot of the next generation to write with [`State::save`].
    pub fn shutdown(&mut self, now: Instant) -> State {
        self.log("stopping: fastpathd keeps its SAs");
        // What still waits for fastpathd is IKE's as much as the rest.
        let mut actions: Vec<IkeAction> = self.ike_waiting.drain(..).collect();
        actions.append(&mut self.pending_ike);
        let sas = SasAfter::new(self.ctl.ike_sas(), &actions);
        let line = self.ike_writer.snapshot(&mut self.ike, &self.clock, now, &sas);
        self.ike_waiting = actions.into();
        if let Some(l) = line {
            self.log(l);
        }
        self.state_writer.snapshot(self.ctl.state())
    }
}

/// A fastpathd event in a few words, for the log.
pub fn describe_event(e: &FastPathEvent) -> String {
    match e {
        FastPathEvent::Acquire { vpn, tunnel, proxy_id, src, dst, protocol } => format!(
            "acquire: tunnel.{tunnel} (fastpathd vpn {vpn}) proxy-id {proxy_id}: {src} -> {dst} protocol {protocol} \
             (no SA yet)"
        ),
        FastPathEvent::SoftExpire { sa, reason } => format!("soft expire of SA {sa:#x} ({reason})"),
        FastPathEvent::HardExpire { sa, reason } => format!("hard expire of SA {sa:#x} ({reason})"),
        FastPathEvent::Idle { sa } => format!("SA {sa:#x} idle"),
        FastPathEvent::ProbeReply { sa, src, seq, .. } => format!("vpn monitor reply {seq} from {src} (SA {sa:#x})"),
    }
}
