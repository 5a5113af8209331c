//! The event log: what happened to IKE, SAs and the configuration, for
//! `get event` and the system log.
//!
//! A bounded ring in memory ([`EventLog`], the last [`EVENT_CAPACITY`]
//! events, oldest dropped first), each event with its wall-clock time
//! (RFC 3339, UTC), severity, kind, and where known the gateway, the peer's
//! address, the VPN and the proxy-ID. A proxy-ID mismatch carries what the
//! peer proposed and the configured list as fields of their own, so it is
//! found with `get event` (kind `proxy-id-mismatch`) or in the JSON
//! without reading sentences.
//!
//! Every event also goes to the system log through `/dev/log` (a Unix
//! datagram, BSD format `<PRI>controld[PID]: ...`, facility daemon), best
//! effort: the socket is non-blocking, a full or absent `/dev/log` loses
//! the line and nothing else. The time is the caller's (the clock is
//! injected, so tests are exact). Nothing here sees keys: IKE lines never
//! carry them and configuration lines are redacted before they get here.

use std::collections::VecDeque;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

/// How many events `get event` remembers.
pub const EVENT_CAPACITY: usize = 1000;

/// Where the system log listens.
pub const SYSLOG_PATH: &str = "/dev/log";

/// Severity, with syslog's numbers (RFC 5424 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Something is broken (authentication failed).
    Error = 3,
    /// Something an operator should look at (mismatches, failures).
    Warning = 4,
    /// Normal but significant (SAs up and down).
    Notice = 5,
    /// Routine.
    Info = 6,
}

impl Severity {
    /// The word shown by `get event`.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
        }
    }
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The peer asked for a proxy-ID that is not configured.
    ProxyIdMismatch,
    /// No phase-1 or phase-2 proposal in common.
    ProposalMismatch,
    /// Authentication failed (pre-shared key or identity).
    AuthFailed,
    /// ISAKMP SA established.
    Phase1Up,
    /// ISAKMP SA gone or failed.
    Phase1Down,
    /// A child SA pair is up.
    SaUp,
    /// A child SA pair is down.
    SaDown,
    /// A Quick Mode we started failed.
    QuickModeFailed,
    /// Dead peer detection declared the peer dead.
    DeadPeer,
    /// Traffic for a proxy-ID without SA started a negotiation.
    Acquire,
    /// fastpathd: an SA reached its soft or hard limit, or idled.
    SaExpire,
    /// The operator changed the configuration (or cleared SAs).
    Config,
    /// fastpathd connected or lost.
    #[serde(rename = "fastpath")]
    FastPath,
    /// Anything else IKE said.
    Ike,
    /// A VPN monitor's status changed (UP/DOWN).
    VpnMonitor,
    /// A proxy-ID's or tunnel interface's status changed (UP/READY/DOWN).
    Status,
    /// Routes withdrawn or restored with a proxy-ID (`withdraw-routes`).
    Route,
}

impl EventKind {
    /// The word shown by `get event` (as in the JSON).
    pub fn word(self) -> &'static str {
        match self {
            EventKind::ProxyIdMismatch => "proxy-id-mismatch",
            EventKind::ProposalMismatch => "proposal-mismatch",
            EventKind::AuthFailed => "auth-failed",
            EventKind::Phase1Up => "phase1-up",
            EventKind::Phase1Down => "phase1-down",
            EventKind::SaUp => "sa-up",
            EventKind::SaDown => "sa-down",
            EventKind::QuickModeFailed => "quick-mode-failed",
            EventKind::DeadPeer => "dead-peer",
            EventKind::Acquire => "acquire",
            EventKind::SaExpire => "sa-expire",
            EventKind::Config => "config",
            EventKind::FastPath => "fastpath",
            EventKind::Ike => "ike",
            EventKind::VpnMonitor => "vpn-monitor",
            EventKind::Status => "status",
            EventKind::Route => "route",
        }
    }
}

/// One event. The JSON of `get event --json` is a list of these, newest
/// first, with exactly these field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    /// Serial number since controld started (1, 2, ...).
    pub seq: u64,
    /// Wall-clock time, RFC 3339 UTC (`2026-11-27T15:43:38Z`).
    pub time: String,
    /// Severity.
    pub severity: Severity,
    /// What it is about.
    pub kind: EventKind,
    /// The IKE gateway's name, if any.
    pub gateway: Option<String>,
    /// The peer's address, if known.
    pub peer: Option<String>,
    /// The VPN, if any.
    pub vpn: Option<String>,
    /// The proxy-ID, if any (ScreenOS words).
    pub proxy_id: Option<String>,
    /// Proxy-ID mismatch: what the peer proposed (from our side).
    pub proposed: Option<String>,
    /// Proxy-ID mismatch: the proxy-IDs configured for the peer.
    pub configured: Vec<String>,
    /// The event in words.
    pub message: String,
}

impl EventRecord {
    /// An event of `kind` with only a message (fill in the rest).
    pub fn new(severity: Severity, kind: EventKind, message: impl Into<String>) -> EventRecord {
        EventRecord {
            seq: 0,
            time: String::new(),
            severity,
            kind,
            gateway: None,
            peer: None,
            vpn: None,
            proxy_id: None,
            proposed: None,
            configured: Vec::new(),
            message: message.into(),
        }
    }

    /// One line: time, severity, kind, peer, message (`get event`, syslog).
    pub fn line(&self) -> String {
        format!(
            "{} {:<7} {:<17} {:<15} {}",
            self.time,
            self.severity.word(),
            self.kind.word(),
            self.peer.as_deref().unwrap_or("-"),
            self.message
        )
    }
}

/// The system log socket (`/dev/log`), best effort.
#[derive(Debug)]
pub struct Syslog {
    sock: UnixDatagram,
    path: PathBuf,
    pid: u32,
}

impl Syslog {
    /// A non-blocking socket that sends to `path`. `None` only if the
    /// system cannot make a Unix datagram socket at all; a missing `path`
    /// is fine (every line is then lost, silently).
    pub fn open(path: &Path) -> Option<Syslog> {
        let sock = UnixDatagram::unbound().ok()?;
        sock.set_nonblocking(true).ok()?;
        Some(Syslog { sock, path: path.to_owned(), pid: std::process::id() })
    }

    /// Sends one line, facility daemon (3), never blocking, never failing.
    pub fn send(&self, severity: Severity, text: &str) {
        let pri = 3 * 8 + severity as u8;
        let msg = format!("<{pri}>controld[{}]: {}", self.pid, text.replace('\n', " "));
        let _ = self.sock.send_to(msg.as_bytes(), &self.path);
    }
}

/// The ring of events.
#[derive(Debug)]
pub struct EventLog {
    ring: VecDeque<EventRecord>,
    capacity: usize,
    next_seq: u64,
    syslog: Option<Syslog>,
}

impl Default for EventLog {
    fn default() -> EventLog {
        EventLog::new(EVENT_CAPACITY)
    }
}

impl EventLog {
    /// An empty log that keeps the last `capacity` events (at least 1).
    pub fn new(capacity: usize) -> EventLog {
        EventLog { ring: VecDeque::new(), capacity: capacity.max(1), next_seq: 1, syslog: None }
    }

    /// Also writes every event to the system log.
    pub fn set_syslog(&mut self, syslog: Option<Syslog>) {
        self.syslog = syslog;
    }

    /// Records an event at `time`.
    pub fn push(&mut self, time: SystemTime, mut e: EventRecord) {
        e.seq = self.next_seq;
        self.next_seq += 1;
        e.time = rfc3339(time);
        if let Some(s) = &self.syslog {
            s.send(e.severity, &format!("{} {}", e.kind.word(), e.message));
        }
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(e);
    }

    /// The events, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &EventRecord> {
        self.ring.iter()
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when nothing happened yet.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Records a line IKE logged (`IkeAction::Log`, acquire and expiry
    /// answers), with what can be read from it: the gateway, VPN and
    /// proxy-ID of its prefix (`gateway G [vpn V] [proxy-id P]: ...`), the
    /// kind, and for a proxy-ID mismatch the proposed and configured
    /// proxy-IDs. `peer_of` gives a gateway's peer address. Lines that
    /// only repeat a state (an acquire for a negotiation under way) are
    /// not recorded: they would push real events out of the ring.
    pub fn record_ike(&mut self, time: SystemTime, line: &str, peer_of: impl Fn(&str) -> Option<String>) {
        if line.contains(": already negotiating") || line.contains(": SA already up") {
            return;
        }
        let (kind, severity) = classify(line);
        let mut e = EventRecord::new(severity, kind, line);
        let body = line.strip_prefix("acquire: ").unwrap_or(line);
        if let Some(rest) = body.strip_prefix("gateway ") {
            let head = rest.split(": ").next().unwrap_or(rest);
            let (gateway, after) = head.split_once(' ').unwrap_or((head, ""));
            e.gateway = Some(gateway.to_owned());
            e.peer = peer_of(gateway);
            let (vpn_part, pid) = match after.split_once("proxy-id ") {
                Some((v, p)) => (v, Some(p.trim().to_owned())),
                None => (after, None),
            };
            e.vpn = vpn_part.trim().strip_prefix("vpn ").map(|v| v.trim().to_owned());
            e.proxy_id = pid;
        }
        if kind == EventKind::ProxyIdMismatch {
            e.proposed = between(line, "asked for proxy-id ", ", which is not configured").map(str::to_owned);
            e.configured = between(line, "(configured: ", "): refused")
                .map(|c| c.split("; ").filter(|s| !s.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default();
        }
        self.push(time, e);
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

/// The kind and severity of an IKE log line (the phrases of `ike.rs`).
fn classify(line: &str) -> (EventKind, Severity) {
    let has = |p: &str| line.contains(p);
    if has("which is not configured") {
        (EventKind::ProxyIdMismatch, Severity::Warning)
    } else if has("no proposal in common") {
        (EventKind::ProposalMismatch, Severity::Warning)
    } else if has("authentication failed") {
        (EventKind::AuthFailed, Severity::Error)
    } else if has("phase 1 up") {
        (EventKind::Phase1Up, Severity::Notice)
    } else if has("phase 1 down") {
        (EventKind::Phase1Down, Severity::Warning)
    } else if has("child SA up") {
        (EventKind::SaUp, Severity::Notice)
    } else if has("child SA down") {
        (EventKind::SaDown, Severity::Notice)
    } else if has("Quick Mode failed") {
        (EventKind::QuickModeFailed, Severity::Warning)
    } else if has("dead peer detection") {
        (EventKind::DeadPeer, Severity::Warning)
    } else if line.ends_with(": configured") || has("its configuration changed or is gone") {
        (EventKind::Config, Severity::Info)
    } else if line.starts_with("acquire: ") {
        (EventKind::Acquire, Severity::Info)
    } else if has("expired") {
        (EventKind::SaExpire, Severity::Notice)
    } else if has("not installed") || has("error") {
        (EventKind::Ike, Severity::Warning)
    } else {
        (EventKind::Ike, Severity::Info)
    }
}

/// `2026-11-27T15:43:38Z` (RFC 3339, UTC, whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_795_794_218)), "2026-11-27T15:43:38Z");
    }

    #[test]
    fn the_ring_is_bounded_and_keeps_the_newest_in_order() {
        let mut log = EventLog::new(3);
        for i in 0..5u64 {
            log.push(at(i), EventRecord::new(Severity::Info, EventKind::Config, format!("change {i}")));
        }
        assert_eq!(log.len(), 3);
        let seen: Vec<(u64, &str)> = log.iter().map(|e| (e.seq, e.message.as_str())).collect();
        assert_eq!(seen, [(3, "change 2"), (4, "change 3"), (5, "change 4")]);
        assert_eq!(log.iter().next().unwrap().time, "1970-01-01T00:00:02Z");
    }

    #[test]
    fn ike_lines_give_gateway_vpn_proxy_id_and_kind() {
        let mut log = EventLog::new(10);
        let peer = |g: &str| (g == "test").then(|| "203.0.113.2".to_string());
        log.record_ike(
            at(0),
            "gateway test vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY: child SA up (we initiated, Quick Mode 00000007): SPI in c1000001 out c2000002, aes128-sha1, ESP, lifetime 3600 s",
            peer,
        );
        log.record_ike(at(1), "acquire: gateway test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY: already negotiating", peer);
        log.record_ike(at(2), "gateway other: Main Mode: authentication failed: wrong key", peer);
        let v: Vec<&EventRecord> = log.iter().collect();
        assert_eq!(v.len(), 2, "a repeated acquire is not an event");
        assert_eq!(v[0].kind, EventKind::SaUp);
        assert_eq!(v[0].gateway.as_deref(), Some("test"));
        assert_eq!(v[0].peer.as_deref(), Some("203.0.113.2"));
        assert_eq!(v[0].vpn.as_deref(), Some("test"));
        assert_eq!(v[0].proxy_id.as_deref(), Some("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY"));
        assert_eq!((v[1].kind, v[1].severity), (EventKind::AuthFailed, Severity::Error));
        assert_eq!((v[1].gateway.as_deref(), v[1].peer.as_deref()), (Some("other"), None));
    }

    #[test]
    fn syslog_without_dev_log_loses_the_line_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("esprit-syslog-{}", std::process::id()));
        let mut log = EventLog::new(2);
        log.set_syslog(Syslog::open(&dir.join("no-such-log")));
        log.push(at(0), EventRecord::new(Severity::Warning, EventKind::Config, "x"));
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn syslog_lines_are_bsd_format_with_priority() {
        let dir = std::env::temp_dir().join(format!("esprit-syslog-ok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let mut log = EventLog::new(2);
        log.set_syslog(Syslog::open(&path));
        log.push(
            at(0),
            EventRecord::new(Severity::Warning, EventKind::ProxyIdMismatch, "gateway g: refused"),
        );
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            text,
            format!("<28>controld[{}]: proxy-id-mismatch gateway g: refused", std::process::id())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
