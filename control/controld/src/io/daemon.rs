//! The I/O shell of controld: the fastpathd connections (one for requests,
//! one for events), the operator socket, the IKE sockets, the clock,
//! signals and the state directory. It only moves bytes between them and
//! the [`Core`], which decides everything (see [`crate::core::engine`]).
//!
//! Threads: the main loop owns the core and the request connection; an
//! events thread keeps a subscribed connection and forwards events; the
//! operator socket has an accept thread and one thread per client, which
//! hand each command line to the main loop and wait for its answer; each
//! IKE socket has a receiving thread. They reach the main loop through
//! three bounded queues ([`crate::core::ingest`]): operator commands and
//! fastpathd events are served first at every turn, then at most
//! [`IKE_BUDGET`] IKE datagrams, so no IKE flood starves them.
//!
//! The core's outputs are carried out in the order it gives them. Its
//! fastpathd requests go out in one pipelined round trip per batch
//! ([`Client::requests`]) and each reply goes straight back to the core
//! ([`Core::handle_fastpath_reply`]), which may answer with the next batch:
//! the loop carries them out until the core asks for nothing more, so a
//! turn's work is done within the turn. A command the core answers later
//! (it programs fastpathd) keeps its client waiting under its token
//! ([`Waiting`]) until the core's answer. The IKE
//! state is written by the core itself, through the state directory's
//! store ([`crate::ike::persist::DirStore`]), before the SAs and messages
//! of the exchange that changed it (the core's module documentation says
//! why).

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_config::Config;
use esprit_fastpath_api::{Client, FastPathEvent, Request};
use esprit_ike::WallClock;

use crate::core::controller::{describe, Controller, FastPathError, Response};
use crate::core::engine::{Core, Output};
use crate::core::events::{Syslog, SYSLOG_PATH};
use crate::core::ingest::{IkeDrop, IkeSender, Inbox, WaitingSender, Work, IKE_BUDGET};
use crate::core::port::Answer;
use crate::core::state::{State, StateFiles};
use crate::ike::io::{system_random, IkeSockets};
use crate::ike::persist as ike_state;
use crate::io::operator::{write_response, Waiting};
use crate::metrics::Metrics;

pub use crate::core::engine::{RESYNC_INTERVAL, SAVE_INTERVAL};

/// First wait before reconnecting to fastpathd; it doubles up to
/// [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between two connection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_millis(500);

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
    /// One line to stderr in one `write` (stderr is unbuffered: a
    /// formatted `eprintln!` costs a system call per piece, about ten per
    /// line, which showed at thousands of lines a second).
    fn line(&self, text: &str) {
        let line = format!("controld [{:9.3}] {text}\n", self.start.elapsed().as_secs_f64());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// The fastpathd request connection and when to try it again.
struct Link {
    client: Option<Client>,
    backoff: Duration,
    next_connect: Instant,
    announced_down: bool,
}

impl Link {
    /// Connects if it is time; the core synchronises a new connection.
    fn connect(&mut self, path: &Path, core: &mut Core, log: &Log) {
        let now = Instant::now();
        if self.client.is_some() || now < self.next_connect {
            return;
        }
        match Client::connect(path, "controld") {
            Ok(c) => {
                self.backoff = BACKOFF_MIN;
                self.announced_down = false;
                self.client = Some(c);
                core.handle_connected(Instant::now());
            }
            Err(e) => {
                if !self.announced_down {
                    log.line(&format!("waiting for fastpathd: {e}"));
                    self.announced_down = true;
                }
                self.next_connect = now + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
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
    let (mut inbox, senders) = Inbox::<Command, FastPathEvent>::new();
    serve_operator(&opts.socket, opts.socket_group, senders.commands.clone())?;
    let metrics = opts.metrics.map(crate::metrics::serve).transpose()?;
    if let Some(m) = &metrics {
        log.line(&format!("metrics: http://{}/metrics", m.local_addr()));
    }

    let (ike_file, notes) = ike_state::load(&opts.state_dir);
    for n in notes {
        log.line(&n);
    }
    let store = Box::new(ike_state::DirStore::new(&opts.state_dir));
    let mut core = Core::new(ctl, ike_file, system_random(), WallClock::read(), store);
    let (mut sockets, errors) = IkeSockets::bind(&core.local_addresses(), &senders.ike);
    let mut shell = Shell {
        log: &log,
        metrics: metrics.as_ref(),
        sockets: &mut sockets,
        state_files: StateFiles::new(&opts.state_dir),
        waiting: Waiting::default(),
    };
    shell.carry_out(&mut core, None, &senders.ike);
    for e in errors {
        log.line(&format!("error: {e}"));
    }
    if !core.ike().is_empty() {
        let addrs: Vec<String> = core.local_addresses().iter().map(|a| a.to_string()).collect();
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

    inbox.set_peers(core.ike().peer_addresses());
    let mut link =
        Link { client: None, backoff: BACKOFF_MIN, next_connect: Instant::now(), announced_down: false };
    while !term.load(Ordering::Relaxed) {
        link.connect(&opts.fastpath, &mut core, &log);
        shell.carry_out(&mut core, Some(&mut link), &senders.ike);

        inbox.wait(core.poll_timeout().saturating_duration_since(Instant::now()));
        for work in inbox.next_batch(IKE_BUDGET) {
            match work {
                Work::Command((line, reply)) => {
                    core.set_ingest(inbox.counters());
                    match core.handle_command(Instant::now(), &line) {
                        Answer::Now(resp) => {
                            let _ = reply.send(resp);
                        }
                        Answer::Later(token) => shell.waiting.hold(token, reply),
                    }
                }
                Work::Event(e) => core.handle_event(Instant::now(), &e),
                Work::Ike(d) => {
                    if core.handle_datagram(Instant::now(), d.local, d.remote, &d.bytes) {
                        inbox.count(IkeDrop::Rejected);
                    }
                }
            }
            shell.carry_out(&mut core, Some(&mut link), &senders.ike);
        }
        core.set_ingest(inbox.counters());
        core.handle_timeout(Instant::now());
        shell.carry_out(&mut core, Some(&mut link), &senders.ike);
        inbox.set_peers(core.ike().peer_addresses());
        if let Some(m) = &metrics {
            m.publish_ike(core.ike().events());
            m.publish_ike_ingest(inbox.counters());
        }
    }
    let state = core.shutdown(Instant::now());
    shell.carry_out(&mut core, Some(&mut link), &senders.ike);
    state.save(&opts.state_dir).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&opts.socket);
    Ok(())
}

/// Where the core's outputs go.
struct Shell<'a> {
    log: &'a Log,
    metrics: Option<&'a Metrics>,
    sockets: &'a mut IkeSockets,
    /// `controld.json` and its journal.
    state_files: StateFiles,
    /// Operator clients waiting for a late answer.
    waiting: Waiting,
}

impl Shell<'_> {
    /// Carries out the core's outputs, in order. fastpathd's requests go
    /// out in one pipelined round trip per batch, and their replies go
    /// back to the core at once (which may answer with more).
    fn carry_out(&mut self, core: &mut Core, mut link: Option<&mut Link>, ike_tx: &IkeSender) {
        while let Some(o) = core.poll_output() {
            match o {
                Output::FastPath(requests) => {
                    let what: Vec<String> = requests.iter().map(describe).collect();
                    let replies = match link.as_deref_mut().and_then(|l| l.client.as_mut()) {
                        Some(c) => c.requests(requests).map_err(|e| FastPathError::Lost(e.to_string())),
                        None => Err(FastPathError::Lost("fastpathd is not connected".into())),
                    };
                    match replies {
                        Ok(replies) => {
                            for (r, what) in replies.into_iter().zip(what) {
                                // A reply the core found broken dropped the
                                // connection: the rest of the batch is moot.
                                if !core.is_connected() {
                                    break;
                                }
                                let r = r.map_err(|reason| FastPathError::Refused { what, reason });
                                core.handle_fastpath_reply(Instant::now(), r);
                            }
                        }
                        Err(e) => core.handle_fastpath_reply(Instant::now(), Err(e)),
                    }
                }
                Output::Reply { token, response } => self.waiting.answer(token, response),
                Output::Transmit(t) => {
                    // An answer to a stranger can fail per datagram too.
                    if let Err(e) = self.sockets.send(&t) {
                        core.transmit_failed(Instant::now(), e);
                    }
                }
                Output::Log(l) => self.log.line(&l),
                Output::SaveState(w) => {
                    if let Err(e) = self.state_files.write(&w) {
                        core.state_write_failed();
                        self.log.line(&format!("error: {e} (the next write is a snapshot)"));
                    }
                }
                Output::FastPathLost => {
                    if let Some(l) = link.as_deref_mut() {
                        l.client = None;
                        l.next_connect = Instant::now();
                    }
                }
                Output::Listen(addrs) => {
                    for e in self.sockets.add(&addrs, ike_tx) {
                        self.log.line(&format!("error: {e}"));
                    }
                }
                Output::Stats(ok) => {
                    if let Some(m) = self.metrics {
                        m.publish_reading(core.controller(), ok);
                    }
                }
            }
        }
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
                // Root, controld's user or the socket group only.
                match crate::io::operator::caller_of(&conn) {
                    Ok(p) if crate::io::operator::caller_allowed(&p, own_uid, group) => {}
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
fn spawn_events(
    path: PathBuf,
    tx: WaitingSender<FastPathEvent>,
    term: Arc<AtomicBool>,
) -> Result<(), String> {
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
                        // A repeated acquire is dropped rather than waited
                        // for (see `core::ingest`): fastpathd repeats it.
                        Ok(Some(e @ FastPathEvent::Acquire { .. })) => {
                            if tx.offer(e) == crate::core::ingest::Offered::Gone {
                                return;
                            }
                        }
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
