//! The I/O shell of controld: the fastpathd connections (one for requests,
//! one for events), the operator socket, the clock, signals and the state
//! directory. Everything it decides is the [`Controller`]'s.
//!
//! Threads: the main loop owns the controller and the request connection;
//! an events thread keeps a subscribed connection and forwards events; the
//! operator socket has an accept thread and one thread per client, which
//! hand each command line to the main loop and wait for its answer; each
//! IKE socket has a receiving thread. They reach the main loop through
//! three bounded queues ([`crate::core::ingest`]): operator commands and
//! fastpathd events are served first at every turn, then at most
//! [`IKE_BUDGET`] IKE datagrams, so no IKE flood starves them.
//!
//! **The IKE state file** (`ike.json`, [`crate::ike::persist`]) is written
//! before the actions of an IKE change are carried out: when an exchange
//! completed or failed (an ISAKMP SA up or down, a child SA up, rekeyed or
//! deleted), the file holds the new state before its SAs go to fastpathd
//! and before the message that tells the peer leaves, so a controld killed
//! at any instant restarts with every SA the peer may use (the one window
//! IKEv1 leaves: a Quick Mode responder killed after QM3 arrived and before
//! the file was written; QM3 has no answer to hold back). Changes that
//! complete no exchange (the DPD sequence number) are written at most once
//! a [`SAVE_INTERVAL`], and only if something changed.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_config::Config;
use esprit_fastpath_api::{Client, Direction, Event, Request};
use esprit_ike::WallClock;

use crate::core::controller::{Controller, FastPath, FastPathError, Response};
use crate::core::events::{EventKind, Severity, Syslog, SYSLOG_PATH};
use crate::core::ingest::{IkeDrop, IkeLogLimiter, Inbox, WaitingSender, Work, IKE_BUDGET};
use crate::core::sa::STATS_INTERVAL_SECS;
use crate::core::spi::SpiAllocator;
use crate::core::state::State;
use crate::ike::io::{system_random, IkeSockets};
use crate::ike::persist::{self as ike_state, IkeStateFile, Loaded};
use crate::ike::{ike_gateways, IkeAction, IkeManager};
use crate::io::operator::write_response;

/// First wait before reconnecting to fastpathd; it doubles up to
/// [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between two connection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// How often fastpathd is compared with the desired state even when
/// nothing changed (it may have been reset behind controld's back).
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(2);
/// Longest wait of the main loop for a message (timers are checked after).
const MAX_WAIT: Duration = Duration::from_millis(100);
/// Shortest interval between two writes of the state file.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// controld's command line, resolved.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file.
    pub config: PathBuf,
    /// fastpathd's control socket.
    pub fastpath: PathBuf,
    /// The operator socket to create.
    pub socket: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Where to serve the Prometheus endpoint (`--metrics`), if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// ScreenOS port name -> Linux device.
    pub port_map: BTreeMap<String, String>,
    /// Write events to the system log (`/dev/log`) too.
    pub syslog: bool,
    /// `--socket-group`: this group's members may use the operator socket
    /// (mode 0660) besides root.
    pub socket_group: Option<u32>,
}

/// An operator command line and where its answer goes.
type Command = (String, Sender<Response>);

struct Log {
    start: Instant,
}

impl Log {
    fn line(&self, text: &str) {
        eprintln!("controld [{:9.3}] {text}", self.start.elapsed().as_secs_f64());
    }
}

/// Runs controld until SIGINT/SIGTERM. fastpathd is left programmed when
/// controld stops: its SAs keep forwarding, and the next controld adopts
/// them.
pub fn run(opts: Options) -> Result<(), String> {
    let log = Log { start: Instant::now() };
    let text =
        std::fs::read_to_string(&opts.config).map_err(|e| format!("{}: {e}", opts.config.display()))?;
    let (config, warnings) = Config::load(&text).map_err(|e| format!("{}: {e}", opts.config.display()))?;
    for w in warnings {
        log.line(&format!("{}: {w}", opts.config.display()));
    }
    let state = State::load(&opts.state_dir).map_err(|e| e.to_string())?;
    let mut ctl = Controller::new(config, Some(opts.config.clone()), opts.port_map.clone(), state)
        .map_err(|e| format!("{}: {e}", opts.config.display()))?;
    ctl.state().save(&opts.state_dir).map_err(|e| e.to_string())?;
    if opts.syslog {
        ctl.events_mut().set_syslog(Syslog::open(Path::new(SYSLOG_PATH)));
    }
    for l in ctl.take_log() {
        log.line(&l);
    }

    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone()).map_err(|e| format!("signal handler: {e}"))?;
    }
    let (mut inbox, senders) = Inbox::<Command, Event>::new();
    serve_operator(&opts.socket, opts.socket_group, senders.commands.clone())?;
    let metrics = opts.metrics.map(crate::metrics::serve).transpose()?;
    if let Some(m) = &metrics {
        log.line(&format!("metrics: http://{}/metrics", m.local_addr()));
    }

    // IKE: one peer per AutoKey gateway, sockets on its local address.
    let (gateways, warnings) = ike_gateways(ctl.config(), ctl.hex_ids());
    for w in warnings {
        log.line(&format!("warning: {w}"));
    }
    let mut spis = SpiAllocator::new();
    for s in ctl.desired().sas.values() {
        if s.spec.direction == Direction::Inbound {
            let _ = spis.reserve(s.spec.spi);
        }
    }
    let mut ike = IkeManager::new(gateways, spis, system_random());
    // What IKE negotiated before a restart: resumed, and its SAs wanted
    // again, so the first synchronisation adopts fastpathd's copies.
    match ike_state::load(&opts.state_dir) {
        Loaded::Absent => {}
        Loaded::Discarded(e) => {
            let l = format!(
                "error: {e}: moved to {}.bad; starting without IKE state (the peers renegotiate)",
                ike_state::IKE_STATE_FILE
            );
            log.line(&l);
            ctl.note_event(Severity::Warning, EventKind::Ike, l);
        }
        Loaded::State(f) => {
            let r = ike.restore(&f, &WallClock::read());
            for l in &r.log {
                log.line(l);
            }
            ctl.resume_ike_sas(r.sas);
        }
    }
    // Monotonic times are written relative to one reading of both clocks,
    // so an unchanged state gives the same file.
    let clock = WallClock::read();
    let mut ike_saved: Option<IkeStateFile> = None;
    let mut last_ike_save = Instant::now();
    let ike_tx = senders.ike.clone();
    let mut limiter = IkeLogLimiter::new(Instant::now());
    let (mut sockets, errors) = IkeSockets::bind(&ike.local_addresses(), &senders.ike);
    for e in errors {
        log.line(&format!("error: {e}"));
    }
    if !ike.is_empty() {
        let addrs: Vec<String> = ike.local_addresses().iter().map(|a| a.to_string()).collect();
        log.line(&format!("IKE: listening on {} (UDP 500 and 4500)", addrs.join(", ")));
    }
    spawn_events(opts.fastpath.clone(), senders.events, term.clone())?;
    log.line(&format!(
        "running: configuration {}, fastpathd {}, operator socket {}, state {}",
        opts.config.display(),
        opts.fastpath.display(),
        opts.socket.display(),
        opts.state_dir.display()
    ));

    let mut fp: Option<Client> = None;
    let mut backoff = BACKOFF_MIN;
    let mut next_connect = Instant::now();
    let mut announced_down = false;
    let mut last_stats = Instant::now();
    let mut last_sync = Instant::now();
    let mut last_save = Instant::now();
    let mut pending_ike: Vec<IkeAction> = Vec::new();
    while !term.load(Ordering::Relaxed) {
        let now = Instant::now();
        if fp.is_none() && now >= next_connect {
            match Client::connect(&opts.fastpath, "controld") {
                Ok(mut c) => {
                    log.line("fastpathd connected: synchronising");
                    ctl.note_event(Severity::Info, EventKind::FastPath, "fastpathd connected");
                    backoff = BACKOFF_MIN;
                    announced_down = false;
                    match ctl.sync(&mut c) {
                        Ok(r) => {
                            log.line(&format!(
                                "fastpathd synchronised: {} request(s), {} SA(s) adopted, {} installed, {} removed",
                                r.requests, r.kept, r.added, r.removed
                            ));
                            for id in &r.resumed_ike {
                                if let Some(l) = ike.rekey_now(Instant::now(), *id) {
                                    log.line(&l);
                                }
                            }
                            fp = Some(c);
                        }
                        Err(e @ FastPathError::Refused { .. }) => {
                            log.line(&format!("error: {e} (retrying in {}s)", RESYNC_INTERVAL.as_secs()));
                            fp = Some(c);
                        }
                        Err(e) => {
                            log.line(&format!("{e}"));
                            ctl.fastpath_lost();
                        }
                    }
                    last_sync = Instant::now();
                }
                Err(e) => {
                    if !announced_down {
                        log.line(&format!("waiting for fastpathd: {e}"));
                        announced_down = true;
                    }
                    next_connect = now + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        for l in ctl.take_log() {
            log.line(&l);
        }

        let wait = ike
            .poll_timeout()
            .map_or(MAX_WAIT, |t| t.saturating_duration_since(Instant::now()).min(MAX_WAIT));
        inbox.wait(wait);
        for work in inbox.next_batch(IKE_BUDGET) {
            match work {
                Work::Command((line, reply)) => {
                    if line.trim_start().starts_with("get") || line.trim_start().starts_with("clear") {
                        ctl.set_ike_view(ike.view(Instant::now()));
                        ctl.set_ike_ingest(inbox.counters());
                    }
                    let mut resp = ctl.command(&line, fp.as_mut().map(|c| c as &mut dyn FastPath));
                    for hex_id in ctl.take_clears() {
                        resp.output.extend(ike.clear(Instant::now(), hex_id));
                    }
                    let changes = ["set", "unset", "exec"].iter().any(|w| line.trim_start().starts_with(w));
                    if changes && resp.result.is_ok() {
                        // IKE follows the running configuration.
                        let (gateways, warnings) = ike_gateways(ctl.config(), ctl.hex_ids());
                        for w in warnings {
                            log.line(&format!("warning: {w}"));
                        }
                        pending_ike.extend(ike.reconfigure(Instant::now(), gateways));
                        for e in sockets.add(&ike.local_addresses(), &ike_tx) {
                            log.line(&format!("error: {e}"));
                        }
                    }
                    match &resp.result {
                        Ok(()) => log.line(&format!("operator: {}: ok", esprit_config::lexer::redact(&line))),
                        Err(e) => {
                            log.line(&format!("operator: {}: {e}", esprit_config::lexer::redact(&line)))
                        }
                    }
                    let _ = reply.send(resp);
                    if ctl.take_lost() {
                        fp = None;
                        next_connect = Instant::now();
                    }
                }
                Work::Event(e) => {
                    if !matches!(e, Event::ProbeReply { .. }) {
                        log.line(&describe_event(&e));
                    }
                    match &e {
                        Event::Acquire { tunnel, proxy_id, .. } => {
                            let l = ike.acquire(Instant::now(), *tunnel, proxy_id);
                            log.line(&l);
                            ctl.record_ike_log(&l);
                        }
                        Event::SoftExpire { sa, .. } => {
                            if let Some(l) = ike.sa_soft_expired(Instant::now(), *sa) {
                                log.line(&l);
                            }
                        }
                        Event::HardExpire { sa, .. } => {
                            if let Some(l) = ike.sa_expired(Instant::now(), *sa) {
                                log.line(&l);
                            }
                        }
                        _ => {}
                    }
                    ctl.record_fastpath_event(&e);
                }
                Work::Ike(d) => {
                    if let Err(e) = ike.handle_datagram(Instant::now(), d.local, d.remote, &d.bytes) {
                        // Never a line per datagram: counted, and the
                        // latest reason goes in the summary line.
                        inbox.count(IkeDrop::Rejected);
                        let remote = d.remote.to_string();
                        limiter.rejected(if e.contains(&remote) { e } else { format!("from {remote}: {e}") });
                    }
                }
            }
        }
        if let Some(l) = limiter.summary(Instant::now(), inbox.counters()) {
            log.line(&l);
        }

        // `withdraw-routes`: traffic no longer reaches a withdrawn
        // proxy-ID, so controld renegotiates it itself.
        // The event log has the first try; the log has every one.
        for (tunnel, proxy_id, first) in ctl.withdrawn_to_negotiate(Instant::now()) {
            let l = ike.acquire(Instant::now(), tunnel, &proxy_id);
            log.line(&format!("withdrawn proxy-id: {l}"));
            if first {
                ctl.record_ike_log(&l);
            }
        }

        // IKE: timers, then what the peers produced.
        ike.handle_timeout(Instant::now());
        pending_ike.extend(ike.poll(Instant::now()));
        // The state file first (see the module doc): an exchange that
        // completed is on disk before its SAs and messages go out.
        let urgent = ike.take_changed();
        if urgent || last_ike_save.elapsed() >= SAVE_INTERVAL {
            let mut file = ike.snapshot(&clock, &ike_state::after_actions(ctl.ike_sas(), &pending_ike));
            if ike_saved.as_ref() != Some(&file) {
                let unchanged = file.clone();
                file.written_unix_ms = WallClock::read().to_unix_ms(Instant::now());
                match ike_state::save(&opts.state_dir, &file) {
                    Ok(()) => ike_saved = Some(unchanged),
                    Err(e) => log.line(&format!("error: {e}")),
                }
            }
            last_ike_save = Instant::now();
        }
        let mut sas_changed = false;
        for action in std::mem::take(&mut pending_ike) {
            let (add, remove) = match action {
                IkeAction::Send(t) => {
                    // An answer to a stranger can fail per datagram too.
                    if let Err(e) = sockets.send(&t) {
                        if limiter.allow(Instant::now()) {
                            log.line(&e);
                        }
                    }
                    continue;
                }
                IkeAction::Log(l) => {
                    // The one rate limiter of IKE's lines (a stranger's
                    // datagrams can make the peers log).
                    if limiter.allow(Instant::now()) {
                        log.line(&l);
                        ctl.record_ike_log(&l);
                    }
                    continue;
                }
                IkeAction::Install(sas) => (sas, Vec::new()),
                IkeAction::Remove(ids) => (Vec::new(), ids),
            };
            sas_changed = true;
            let what = if add.is_empty() {
                format!("remove SAs {remove:x?}")
            } else {
                let ids: Vec<String> = add.iter().map(|s| format!("{:#x}", s.spec.id)).collect();
                format!("install SAs {}", ids.join(", "))
            };
            match ctl.ike_update(add, &remove, fp.as_mut().map(|c| c as &mut dyn FastPath)) {
                Ok(r) => log.line(&format!(
                    "IKE: {what}: {} request(s), {} SA(s) installed, {} removed",
                    r.requests, r.added, r.removed
                )),
                Err(e @ FastPathError::Refused { .. }) => log.line(&format!("IKE: {what}: error: {e}")),
                Err(e) => {
                    log.line(&format!("IKE: {what}: {e}: reconnecting"));
                    fp = None;
                    ctl.fastpath_lost();
                    next_connect = Instant::now();
                }
            }
        }
        for l in ctl.take_log() {
            log.line(&l);
        }

        if let Some(c) = fp.as_mut() {
            let mut result = Ok(());
            if last_stats.elapsed() >= Duration::from_secs(STATS_INTERVAL_SECS) {
                result = crate::metrics::poll_stats(&mut ctl, c, metrics.as_ref());
                last_stats = Instant::now();
            }
            if result.is_ok() {
                // VPN monitor probes; `rekey` renegotiates a pair it found DOWN.
                result = ctl.monitor_tick(Instant::now(), c).map(|renegotiate| {
                    for sa in renegotiate {
                        if let Some(l) = ike.sa_expired(Instant::now(), sa) {
                            log.line(&l);
                        }
                    }
                });
            }
            if result.is_ok() && ctl.take_routes_pending() {
                // A proxy-ID's routes were withdrawn or restored.
                result =
                    ctl.sync(c).map(|r| log.line(&format!("routes reprogrammed: {} request(s)", r.requests)));
            }
            if result.is_ok() && last_sync.elapsed() >= RESYNC_INTERVAL {
                result = ctl.sync(c).map(|r| {
                    if r.requests > 0 {
                        log.line(&format!(
                            "fastpathd differed from the configuration: {} request(s), {} SA(s) installed, {} removed",
                            r.requests, r.added, r.removed
                        ));
                    }
                });
                last_sync = Instant::now();
            }
            match result {
                Ok(()) => {}
                Err(e @ FastPathError::Refused { .. }) => log.line(&format!("error: {e}")),
                Err(e) => {
                    log.line(&format!("{e}: reconnecting"));
                    fp = None;
                    ctl.fastpath_lost();
                    next_connect = Instant::now();
                }
            }
        }
        if let Some(m) = &metrics {
            m.publish_ike(ike.events());
            m.publish_ike_ingest(inbox.counters());
        }
        // After IKE installed SAs their sequence-number records are saved
        // at once (a restart of both daemons must not reuse them).
        if (sas_changed || last_save.elapsed() >= SAVE_INTERVAL) && ctl.take_dirty() {
            if let Err(e) = ctl.state().save(&opts.state_dir) {
                log.line(&format!("error: {e}"));
            }
            last_save = Instant::now();
        }
    }
    log.line("stopping: fastpathd keeps its SAs");
    ctl.state().save(&opts.state_dir).map_err(|e| e.to_string())?;
    let file = ike.snapshot(&clock, ctl.ike_sas());
    ike_state::save(&opts.state_dir, &file).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&opts.socket);
    Ok(())
}

fn describe_event(e: &Event) -> String {
    match e {
        Event::Acquire { vpn, tunnel, proxy_id, src, dst, protocol } => format!(
            "acquire: tunnel.{tunnel} (fastpathd vpn {vpn}) proxy-id {proxy_id}: {src} -> {dst} protocol {protocol} \
             (no SA yet)"
        ),
        Event::SoftExpire { sa, reason } => format!("soft expire of SA {sa:#x} ({reason})"),
        Event::HardExpire { sa, reason } => format!("hard expire of SA {sa:#x} ({reason})"),
        Event::Idle { sa } => format!("SA {sa:#x} idle"),
        Event::ProbeReply { sa, src, seq, .. } => format!("vpn monitor reply {seq} from {src} (SA {sa:#x})"),
    }
}

/// Binds the operator socket (mode 0600, replacing a stale one) and serves
/// it on threads.
fn serve_operator(path: &Path, group: Option<u32>, tx: WaitingSender<Command>) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("operator socket directory {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!("operator socket {} is in use by another controld", path.display()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = crate::io::operator::bind_operator_socket(path, group)?;
    let own_uid = nix::unistd::geteuid().as_raw();
    std::thread::Builder::new()
        .name("operator".into())
        .spawn(move || {
            for mut conn in listener.incoming().flatten() {
                // #12: root, controld's user or the socket group only.
                match crate::io::operator::peer_of(&conn) {
                    Ok(p) if crate::io::operator::peer_allowed(&p, own_uid, group) => {}
                    refused => {
                        crate::io::operator::COUNTERS.peers_refused.fetch_add(1, Ordering::Relaxed);
                        if let Ok(p) = refused {
                            let _ = write_response(&mut conn, &crate::io::operator::refused_response(&p));
                        }
                        continue;
                    }
                }
                let tx = tx.clone();
                let _ =
                    std::thread::Builder::new().name("operator-conn".into()).spawn(move || client(conn, tx));
            }
        })
        .map_err(|e| format!("operator thread: {e}"))?;
    Ok(())
}

fn client(conn: UnixStream, tx: WaitingSender<Command>) {
    let Ok(mut w) = conn.try_clone() else { return };
    let mut reader = BufReader::new(conn);
    loop {
        use crate::io::operator::{read_request_line, RequestLine, COUNTERS, MAX_REQUEST_LINE};
        let line = match read_request_line(&mut reader, MAX_REQUEST_LINE) {
            Ok(RequestLine::Line(l)) => l,
            Ok(RequestLine::TooLong) => {
                COUNTERS.lines_too_long.fetch_add(1, Ordering::Relaxed);
                let _ = write_response(&mut w, &crate::io::operator::too_long_response());
                return;
            }
            Ok(RequestLine::NotUtf8) => {
                COUNTERS.lines_not_utf8.fetch_add(1, Ordering::Relaxed);
                if write_response(&mut w, &crate::io::operator::not_utf8_response()).is_err() {
                    return;
                }
                continue;
            }
            Ok(RequestLine::End) | Err(_) => return,
        };
        let (rtx, rrx) = channel();
        if !tx.send((line.trim_end().to_owned(), rtx)) {
            return;
        }
        let Ok(resp) = rrx.recv() else { return };
        if write_response(&mut w, &resp).is_err() {
            return;
        }
    }
}

/// Keeps a subscribed connection to fastpathd and forwards its events.
fn spawn_events(path: PathBuf, tx: WaitingSender<Event>, term: Arc<AtomicBool>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("fastpath-events".into())
        .spawn(move || {
            while !term.load(Ordering::Relaxed) {
                let Ok(mut c) = Client::connect(&path, "controld-events") else {
                    std::thread::sleep(BACKOFF_MAX);
                    continue;
                };
                if c.request(Request::Subscribe).is_err() {
                    continue;
                }
                loop {
                    match c.next_event(Duration::from_millis(500)) {
                        Ok(Some(e)) => {
                            if !tx.send(e) {
                                return;
                            }
                        }
                        Ok(None) if term.load(Ordering::Relaxed) => return,
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("events thread: {e}"))
}
