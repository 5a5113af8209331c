//! The Prometheus endpoint of controld (`--metrics ADDR:PORT`, off by
//! default): fastpathd's counters, as controld reads them every second,
//! in the Prometheus text format 0.0.4 at `GET /metrics`.
//!
//! * The main loop publishes each reading into a [`Snapshot`] behind a
//!   mutex ([`poll_stats`]); the lock is held only to swap an `Arc`, so a
//!   scrape never holds up the main loop, and rendering happens outside it.
//! * The server is a minimal HTTP/1.1 one on its own thread (std only): one
//!   request per connection, the head at most [`MAX_REQUEST`] bytes, read
//!   and write timeouts of [`IO_TIMEOUT`]; `GET /metrics` gets the text,
//!   any other method or path 404, a malformed request 400, an oversized
//!   one 431. Nothing a client sends can make it panic.
//! * No keys are ever in the output: fastpathd's `Stats` carry none.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use esprit_fastpath_api::{Direction, Reply, Request, Stats, WorkerCounters};

use crate::core::controller::{Controller, FastPath, FastPathError};
use crate::core::translate::hex_id_of;
pub use crate::ike::counters::{IkeCounters, IKE_EVENTS};
pub use crate::status::ProxyIdStatus;

/// Longest request head read (request line and headers).
pub const MAX_REQUEST: usize = 8192;
/// A client that sends or reads nothing for this long is dropped.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Counters older than this are reported as not up (controld reads them
/// every second while fastpathd is connected).
pub const STALE_AFTER: Duration = Duration::from_secs(3);

/// The last reading of fastpathd's counters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The counters, if any were read yet.
    pub stats: Option<Arc<Stats>>,
    /// When they were read.
    pub read_at: Option<Instant>,
    /// Whether the last attempt to read them succeeded.
    pub last_ok: bool,
    /// VPN HEX ID -> VPN name, for the `vpn` label of SAs.
    pub vpn_names: BTreeMap<u32, String>,
    /// IKE events so far.
    pub ike: IkeCounters,
    /// IKE datagrams dropped before a peer took them, by reason.
    pub ike_ingest: crate::core::ingest::IngestCounters,
    /// Each proxy-ID's status.
    pub proxy_ids: Arc<Vec<ProxyIdStatus>>,
}

/// The endpoint: the shared snapshot and the address it serves on.
#[derive(Debug, Clone)]
pub struct Metrics {
    shared: Arc<Mutex<Snapshot>>,
    addr: SocketAddr,
}

fn lock(m: &Mutex<Snapshot>) -> MutexGuard<'_, Snapshot> {
    // A panic elsewhere while holding the lock leaves a snapshot that is
    // still whole (fields are swapped, never half-written).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes a reading.
    pub fn publish(&self, stats: Stats, vpn_names: BTreeMap<u32, String>, now: Instant) {
        let stats = Arc::new(stats);
        let mut s = lock(&self.shared);
        s.stats = Some(stats);
        s.read_at = Some(now);
        s.last_ok = true;
        s.vpn_names = vpn_names;
    }

    /// Publishes the proxy-IDs' status (built outside the lock).
    pub fn publish_status(&self, proxy_ids: Vec<ProxyIdStatus>) {
        let proxy_ids = Arc::new(proxy_ids);
        lock(&self.shared).proxy_ids = proxy_ids;
    }

    /// Publishes the IKE event counts (cheap: a copy of a small array).
    pub fn publish_ike(&self, ike: &IkeCounters) {
        lock(&self.shared).ike = *ike;
    }

    /// Publishes the IKE ingest drop counts (a copy of a small array).
    pub fn publish_ike_ingest(&self, c: crate::core::ingest::IngestCounters) {
        lock(&self.shared).ike_ingest = c;
    }

    /// Records a failed reading.
    pub fn publish_failure(&self) {
        lock(&self.shared).last_ok = false;
    }

    fn snapshot(&self) -> Snapshot {
        lock(&self.shared).clone()
    }
}

/// Passes requests through, and keeps a copy of a `Stats` reply.
struct Recording<'a> {
    inner: &'a mut dyn FastPath,
    stats: Option<Stats>,
}

impl FastPath for Recording<'_> {
    fn request(&mut self, request: Request) -> Result<Reply, FastPathError> {
        let reply = self.inner.request(request)?;
        if let Reply::Stats(s) = &reply {
            self.stats = Some((**s).clone());
        }
        Ok(reply)
    }
}

/// [`Controller::poll_stats`], and, when the endpoint is on, the same
/// counters published to it (read through the controller's own polling,
/// so both always see one reading).
pub fn poll_stats(
    ctl: &mut Controller,
    fp: &mut dyn FastPath,
    metrics: Option<&Metrics>,
) -> Result<(), FastPathError> {
    let Some(m) = metrics else { return ctl.poll_stats(fp) };
    let mut rec = Recording { inner: fp, stats: None };
    let result = ctl.poll_stats(&mut rec);
    match (&result, rec.stats) {
        (Ok(()), Some(stats)) => {
            let names = ctl.hex_ids().iter().map(|(name, id)| (*id, name.clone())).collect();
            m.publish(stats, names, Instant::now());
            m.publish_status(ctl.proxy_id_statuses());
        }
        _ => m.publish_failure(),
    }
    result
}

/// A label value, escaped as the text format wants (`\\`, `\"`, `\n`).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn direction_word(d: Option<Direction>) -> &'static str {
    match d {
        Some(Direction::Inbound) => "inbound",
        Some(Direction::Outbound) => "outbound",
        None => "unknown",
    }
}

/// The text format 0.0.4 of a snapshot, at `now`.
pub fn render(s: &Snapshot, now: Instant) -> String {
    let mut out = String::new();
    let age = s.read_at.map(|t| now.saturating_duration_since(t));
    let up = s.last_ok && age.is_some_and(|a| a <= STALE_AFTER);
    header(&mut out, "esprit_fastpath_up", "gauge", "1 when fastpathd's counters were read in the last 3 s.");
    let _ = writeln!(out, "esprit_fastpath_up {}", u8::from(up));
    let name = "esprit_ike_events_total";
    header(&mut out, name, "counter", "IKE exchanges completed, failed or ended, by kind.");
    for (kind, n) in s.ike.iter() {
        let _ = writeln!(out, "{name}{{event=\"{kind}\"}} {n}");
    }
    let name = "esprit_ike_ingest_dropped_total";
    header(&mut out, name, "counter", "IKE datagrams dropped before an IKE peer took them, by reason.");
    for (reason, n) in s.ike_ingest.iter() {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
    }
    let name = "esprit_ike_discards_total";
    header(
        &mut out,
        name,
        "counter",
        "IKE datagrams discarded unanswered and half-open exchanges forgotten, by reason.",
    );
    for (reason, n) in s.ike.discards() {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
    }
    if !s.proxy_ids.is_empty() {
        // One-hot per status, the usual shape of an enum in Prometheus.
        let name = "esprit_proxy_id_status";
        header(
            &mut out,
            name,
            "gauge",
            "1 for the proxy-ID's status: up (SA pair installed), ready (never negotiated), down (lost, or VPN monitor DOWN).",
        );
        for p in s.proxy_ids.iter() {
            for word in ["up", "ready", "down"] {
                let _ = writeln!(
                    out,
                    "{name}{{vpn=\"{}\",proxy_id=\"{}\",status=\"{word}\"}} {}",
                    escape(&p.vpn),
                    escape(&p.proxy_id),
                    u8::from(p.status.eq_ignore_ascii_case(word))
                );
            }
        }
        let name = "esprit_proxy_id_routes_withdrawn";
        header(&mut out, name, "gauge", "1 while the proxy-ID's routes are withdrawn (withdraw-routes).");
        for p in s.proxy_ids.iter() {
            let _ = writeln!(
                out,
                "{name}{{vpn=\"{}\",proxy_id=\"{}\"}} {}",
                escape(&p.vpn),
                escape(&p.proxy_id),
                u8::from(p.routes_withdrawn)
            );
        }
    }
    let (Some(stats), Some(age)) = (&s.stats, age) else { return out };
    header(&mut out, "esprit_stats_age_seconds", "gauge", "Seconds since fastpathd's counters were read.");
    let _ = writeln!(out, "esprit_stats_age_seconds {:.3}", age.as_secs_f64());

    for (i, c) in WorkerCounters::INFO.iter().enumerate() {
        let Some(name) = c.metric else { continue };
        header(&mut out, name, "counter", c.help);
        for w in &stats.workers {
            let n = w.counters.values().get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}{{worker=\"{}\"}} {n}", w.worker);
        }
    }
    let name = "esprit_worker_drops_total";
    header(&mut out, name, "counter", "Packets dropped by the worker, by reason.");
    for w in &stats.workers {
        for (reason, n) in &w.drops {
            let _ = writeln!(out, "{name}{{worker=\"{}\",reason=\"{}\"}} {n}", w.worker, escape(reason));
        }
    }

    type SaCounter = (&'static str, &'static str, fn(&esprit_fastpath_api::SaStatsView) -> u64);
    const SA_COUNTERS: &[SaCounter] = &[
        ("esprit_sa_packets_total", "Packets carried by the SA.", |s| s.packets),
        ("esprit_sa_bytes_total", "Bytes carried by the SA.", |s| s.bytes),
        ("esprit_sa_errors_total", "Packets of the SA that failed (integrity, replay, ...).", |s| s.errors),
    ];
    for (name, help, value) in SA_COUNTERS {
        header(&mut out, name, "counter", help);
        for sa in &stats.sas {
            let vpn = s.vpn_names.get(&hex_id_of(sa.id)).map_or("", String::as_str);
            let _ = writeln!(
                out,
                "{name}{{sa=\"{:#018x}\",spi=\"0x{:08x}\",direction=\"{}\",vpn=\"{}\"}} {}",
                sa.id,
                sa.spi,
                direction_word(sa.direction),
                escape(vpn),
                value(sa)
            );
        }
    }
    out
}

/// Binds `addr` and serves the endpoint on a thread.
pub fn serve(addr: SocketAddr) -> Result<Metrics, String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("metrics endpoint {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("metrics endpoint {addr}: {e}"))?;
    let metrics = Metrics { shared: Arc::new(Mutex::new(Snapshot::default())), addr };
    let m = metrics.clone();
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            // One client at a time, each bounded by IO_TIMEOUT: a scrape is
            // one small request; a client that stalls makes others wait.
            loop {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        let _ = handle(&mut c, &m);
                    }
                    // Out of descriptors and the like: pause, do not spin.
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        })
        .map_err(|e| format!("metrics thread: {e}"))?;
    Ok(metrics)
}

fn handle(conn: &mut TcpStream, m: &Metrics) -> io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let (status, body) = match read_head(conn)? {
        Head::Complete(head) => route(&head, || {
            let mut text = render(&m.snapshot(), Instant::now());
            render_operator(&mut text, &crate::io::operator::COUNTERS.iter());
            text
        }),
        Head::TooLarge => (431, "request too large\n".to_owned()),
        Head::Closed => return Ok(()),
    };
    respond(conn, status, &body)?;
    // Lingering close: what the client still sends (the rest of an
    // oversized request) is read and dropped, so that closing does not
    // reset the connection before the client has read the answer.
    conn.shutdown(std::net::Shutdown::Write)?;
    conn.set_read_timeout(Some(LINGER))?;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < MAX_LINGER_BYTES {
        match conn.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
}

/// How long, and how much, a closing connection is drained.
const LINGER: Duration = Duration::from_millis(500);
const MAX_LINGER_BYTES: usize = 64 * 1024;

enum Head {
    Complete(Vec<u8>),
    TooLarge,
    Closed,
}

/// Reads up to the blank line that ends the head.
fn read_head(r: &mut impl Read) -> io::Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(Head::Complete(buf));
        }
        if buf.len() >= MAX_REQUEST {
            return Ok(Head::TooLarge);
        }
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok(Head::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The operator socket's refusals (#12), by reason.
pub fn render_operator(out: &mut String, counters: &[(&'static str, u64)]) {
    header(
        out,
        "esprit_operator_refused_total",
        "counter",
        "Operator socket requests refused: peer not allowed, line too long, line not UTF-8.",
    );
    for (reason, n) in counters {
        let _ = writeln!(out, "esprit_operator_refused_total{{reason=\"{reason}\"}} {n}");
    }
}

/// The whole answer to what a client sent (at most [`MAX_REQUEST`] bytes
/// read): status and body, a pure function over bytes (the fuzz target
/// `prometheus_http` runs it). `metrics` renders the text.
pub fn answer(request: &[u8], metrics: impl FnOnce() -> String) -> (u16, String) {
    match head_end(request) {
        Some(end) => route(request.get(..end).unwrap_or(request), metrics),
        None if request.len() >= MAX_REQUEST => (431, "request too large\n".to_owned()),
        None => (400, "incomplete request head\n".to_owned()),
    }
}

/// The status and body for a request head; `metrics` renders the text.
/// Nothing but counters is served: a path that asks for the configuration
/// or its secrets gets 403 (they are for `esprit get config secrets` on
/// the operator socket only).
pub fn route(head: &[u8], metrics: impl FnOnce() -> String) -> (u16, String) {
    let Ok(text) = std::str::from_utf8(head) else { return (400, "request is not UTF-8\n".to_owned()) };
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return (400, "bad request line: expected METHOD TARGET HTTP/1.x\n".to_owned());
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return (400, "bad request line: expected METHOD TARGET HTTP/1.x\n".to_owned());
    }
    let path = target.split('?').next().unwrap_or(target);
    let lower = target.to_ascii_lowercase();
    if method == "GET" && path == "/metrics" && !lower.contains("secret") {
        (200, metrics())
    } else if lower.contains("config") || lower.contains("secret") {
        (403, "forbidden: the configuration and its secrets are never served over HTTP (esprit get config secrets, on the operator socket)\n".to_owned())
    } else {
        (404, "not found: only GET /metrics is served\n".to_owned())
    }
}

fn respond(w: &mut impl Write, status: u16, body: &str) -> io::Result<()> {
    let (reason, content_type) = match status {
        200 => ("OK", "text/plain; version=0.0.4; charset=utf-8"),
        400 => ("Bad Request", "text/plain; charset=utf-8"),
        403 => ("Forbidden", "text/plain; charset=utf-8"),
        431 => ("Request Header Fields Too Large", "text/plain; charset=utf-8"),
        _ => ("Not Found", "text/plain; charset=utf-8"),
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    w.write_all(head.as_bytes())?;
    w.write_all(body.as_bytes())?;
    w.flush()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use esprit_fastpath_api::{SaStatsView, WorkerStatsView};

    fn stats() -> Stats {
        Stats {
            workers: vec![WorkerStatsView {
                worker: 0,
                core: Some(1),
                counters: WorkerCounters {
                    rx_packets: 10,
                    rx_bytes: 1000,
                    tx_packets: 9,
                    tx_bytes: 1200,
                    forwarded: 1,
                    encrypted: 5,
                    decrypted: 3,
                    held: 2,
                    handed_off: 0,
                    acquires: 1,
                    ..WorkerCounters::default()
                },
                drops: vec![("no-route".into(), 1), ("odd\"name".into(), 2)],
                ..WorkerStatsView::default()
            }],
            sas: vec![
                SaStatsView {
                    id: 0x11_8000_0000,
                    spi: 0x1011,
                    direction: Some(Direction::Outbound),
                    worker: 0,
                    packets: 5,
                    bytes: 700,
                    errors: 0,
                    seq: 5,
                },
                SaStatsView {
                    id: 0x11_0000_0000,
                    spi: 0x2011,
                    direction: Some(Direction::Inbound),
                    worker: 0,
                    packets: 3,
                    bytes: 420,
                    errors: 1,
                    seq: 3,
                },
            ],
            ..Stats::default()
        }
    }

    fn snapshot(t0: Instant) -> Snapshot {
        Snapshot {
            stats: Some(Arc::new(stats())),
            read_at: Some(t0),
            last_ok: true,
            vpn_names: [(0x11, "lab vpn".to_owned())].into(),
            ike: {
                let mut d = esprit_ike::Discards::default();
                d.add(esprit_ike::Discard::ReplayedMessageId);
                IkeCounters { counts: [1, 0, 2, 0, 0, 0, 0, 0, 1, 0, 0], discards: d }
            },
            ike_ingest: {
                let c = crate::core::ingest::SharedCounters::default();
                for _ in 0..3 {
                    c.count(crate::core::ingest::IkeDrop::QueueFull);
                }
                c.count(crate::core::ingest::IkeDrop::Rejected);
                c.read()
            },
            proxy_ids: Arc::new(vec![ProxyIdStatus {
                vpn: "lab vpn".into(),
                proxy_id: "local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16 ANY".into(),
                status: "DOWN",
                routes_withdrawn: true,
            }]),
        }
    }

    #[test]
    fn renders_the_text_format_exactly() {
        let t0 = Instant::now();
        let text = render(&snapshot(t0), t0 + Duration::from_millis(500));
        let want = r#"# HELP esprit_fastpath_up 1 when fastpathd's counters were read in the last 3 s.
# TYPE esprit_fastpath_up gauge
esprit_fastpath_up 1
# HELP esprit_ike_events_total IKE exchanges completed, failed or ended, by kind.
# TYPE esprit_ike_events_total counter
esprit_ike_events_total{event="phase1-up"} 1
esprit_ike_events_total{event="phase1-down"} 0
esprit_ike_events_total{event="phase2-up"} 2
esprit_ike_events_total{event="phase2-down"} 0
esprit_ike_events_total{event="phase2-failed"} 0
esprit_ike_events_total{event="no-proposal-chosen"} 0
esprit_ike_events_total{event="proxy-id-mismatch"} 0
esprit_ike_events_total{event="auth-failed"} 0
esprit_ike_events_total{event="dpd-timeout"} 1
esprit_ike_events_total{event="notify"} 0
esprit_ike_events_total{event="other"} 0
# HELP esprit_ike_ingest_dropped_total IKE datagrams dropped before an IKE peer took them, by reason.
# TYPE esprit_ike_ingest_dropped_total counter
esprit_ike_ingest_dropped_total{reason="queue-full"} 3
esprit_ike_ingest_dropped_total{reason="too-large"} 0
esprit_ike_ingest_dropped_total{reason="too-short"} 0
esprit_ike_ingest_dropped_total{reason="not-ikev1"} 0
esprit_ike_ingest_dropped_total{reason="rejected"} 1
# HELP esprit_ike_discards_total IKE datagrams discarded unanswered and half-open exchanges forgotten, by reason.
# TYPE esprit_ike_discards_total counter
esprit_ike_discards_total{reason="half-open-limit-global"} 0
esprit_ike_discards_total{reason="half-open-limit-source"} 0
esprit_ike_discards_total{reason="half-open-timed-out"} 0
esprit_ike_discards_total{reason="cookie-mismatch"} 0
esprit_ike_discards_total{reason="aggressive-not-configured"} 0
esprit_ike_discards_total{reason="aggressive-rate-limited"} 0
esprit_ike_discards_total{reason="replayed-message-id"} 1
esprit_ike_discards_total{reason="replayed-message"} 0
esprit_ike_discards_total{reason="dpd-ack-stale"} 0
esprit_ike_discards_total{reason="unauthenticated-notify"} 0
esprit_ike_discards_total{reason="oversized-sa"} 0
esprit_ike_discards_total{reason="no-gateway"} 0
# HELP esprit_proxy_id_status 1 for the proxy-ID's status: up (SA pair installed), ready (never negotiated), down (lost, or VPN monitor DOWN).
# TYPE esprit_proxy_id_status gauge
esprit_proxy_id_status{vpn="lab vpn",proxy_id="local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16 ANY",status="up"} 0
esprit_proxy_id_status{vpn="lab vpn",proxy_id="local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16 ANY",status="ready"} 0
esprit_proxy_id_status{vpn="lab vpn",proxy_id="local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16 ANY",status="down"} 1
# HELP esprit_proxy_id_routes_withdrawn 1 while the proxy-ID's routes are withdrawn (withdraw-routes).
# TYPE esprit_proxy_id_routes_withdrawn gauge
esprit_proxy_id_routes_withdrawn{vpn="lab vpn",proxy_id="local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16 ANY"} 1
# HELP esprit_stats_age_seconds Seconds since fastpathd's counters were read.
# TYPE esprit_stats_age_seconds gauge
esprit_stats_age_seconds 0.500
# HELP esprit_worker_rx_packets_total Packets received by the worker.
# TYPE esprit_worker_rx_packets_total counter
esprit_worker_rx_packets_total{worker="0"} 10
# HELP esprit_worker_rx_bytes_total Bytes received by the worker.
# TYPE esprit_worker_rx_bytes_total counter
esprit_worker_rx_bytes_total{worker="0"} 1000
# HELP esprit_worker_tx_packets_total Packets sent by the worker.
# TYPE esprit_worker_tx_packets_total counter
esprit_worker_tx_packets_total{worker="0"} 9
# HELP esprit_worker_tx_bytes_total Bytes sent by the worker.
# TYPE esprit_worker_tx_bytes_total counter
esprit_worker_tx_bytes_total{worker="0"} 1200
# HELP esprit_worker_forwarded_packets_total Clear packets forwarded without IPsec.
# TYPE esprit_worker_forwarded_packets_total counter
esprit_worker_forwarded_packets_total{worker="0"} 1
# HELP esprit_worker_encrypted_packets_total Packets encrypted into an SA.
# TYPE esprit_worker_encrypted_packets_total counter
esprit_worker_encrypted_packets_total{worker="0"} 5
# HELP esprit_worker_decrypted_packets_total Packets decrypted from an SA.
# TYPE esprit_worker_decrypted_packets_total counter
esprit_worker_decrypted_packets_total{worker="0"} 3
# HELP esprit_worker_held_packets_total Packets held while their proxy-ID waited for an SA.
# TYPE esprit_worker_held_packets_total counter
esprit_worker_held_packets_total{worker="0"} 2
# HELP esprit_worker_handed_off_packets_total Packets handed to the worker that owns their SA.
# TYPE esprit_worker_handed_off_packets_total counter
esprit_worker_handed_off_packets_total{worker="0"} 0
# HELP esprit_worker_acquires_total Acquire events sent to controld (no SA for a proxy-ID).
# TYPE esprit_worker_acquires_total counter
esprit_worker_acquires_total{worker="0"} 1
# HELP esprit_worker_drops_total Packets dropped by the worker, by reason.
# TYPE esprit_worker_drops_total counter
esprit_worker_drops_total{worker="0",reason="no-route"} 1
esprit_worker_drops_total{worker="0",reason="odd\"name"} 2
# HELP esprit_sa_packets_total Packets carried by the SA.
# TYPE esprit_sa_packets_total counter
esprit_sa_packets_total{sa="0x0000001180000000",spi="0x00001011",direction="outbound",vpn="lab vpn"} 5
esprit_sa_packets_total{sa="0x0000001100000000",spi="0x00002011",direction="inbound",vpn="lab vpn"} 3
# HELP esprit_sa_bytes_total Bytes carried by the SA.
# TYPE esprit_sa_bytes_total counter
esprit_sa_bytes_total{sa="0x0000001180000000",spi="0x00001011",direction="outbound",vpn="lab vpn"} 700
esprit_sa_bytes_total{sa="0x0000001100000000",spi="0x00002011",direction="inbound",vpn="lab vpn"} 420
# HELP esprit_sa_errors_total Packets of the SA that failed (integrity, replay, ...).
# TYPE esprit_sa_errors_total counter
esprit_sa_errors_total{sa="0x0000001180000000",spi="0x00001011",direction="outbound",vpn="lab vpn"} 0
esprit_sa_errors_total{sa="0x0000001100000000",spi="0x00002011",direction="inbound",vpn="lab vpn"} 1
"#;
        assert_eq!(text, want);
    }

    #[test]
    fn stale_or_missing_counters_are_not_up() {
        let t0 = Instant::now();
        let empty = render(&Snapshot::default(), t0);
        assert!(empty.contains("esprit_fastpath_up 0\n"), "{empty}");
        assert!(empty.contains("esprit_ike_events_total{event=\"other\"} 0\n"), "{empty}");
        assert!(empty.contains("esprit_ike_ingest_dropped_total{reason=\"rejected\"} 0\n"), "{empty}");
        assert!(empty.ends_with("esprit_ike_discards_total{reason=\"no-gateway\"} 0\n"), "{empty}");
        let stale = render(&snapshot(t0), t0 + Duration::from_secs(4));
        assert!(
            stale.contains("esprit_fastpath_up 0\n") && stale.contains("esprit_stats_age_seconds 4.000\n")
        );
        let failed = Snapshot { last_ok: false, ..snapshot(t0) };
        assert!(render(&failed, t0).contains("esprit_fastpath_up 0\n"));
    }

    #[test]
    fn ike_events_are_counted_by_kind() {
        let mut c = IkeCounters::default();
        c.record(&esprit_ike::Event::DpdTimeout);
        c.record(&esprit_ike::Event::DpdTimeout);
        assert_eq!(c.iter().find(|(k, _)| *k == "dpd-timeout"), Some(("dpd-timeout", 2)));
        assert_eq!(c.iter().map(|(_, n)| n).sum::<u64>(), 2);
    }

    /// Answers `Stats` with fixed counters, or fails as a lost connection.
    struct FakeFastPath(Option<Stats>);

    impl FastPath for FakeFastPath {
        fn request(&mut self, request: Request) -> Result<Reply, FastPathError> {
            match (&request, &self.0) {
                (Request::Stats, Some(s)) => Ok(Reply::Stats(Box::new(s.clone()))),
                _ => Err(FastPathError::Lost("gone".into())),
            }
        }
    }

    #[test]
    fn polling_feeds_the_controller_and_the_endpoint_one_reading() {
        let config = esprit_config::Config::new();
        let mut ctl =
            Controller::new(config, None, BTreeMap::new(), crate::core::state::State::default()).unwrap();
        let m = Metrics {
            shared: Arc::new(Mutex::new(Snapshot::default())),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        poll_stats(&mut ctl, &mut FakeFastPath(Some(stats())), Some(&m)).unwrap();
        let snap = m.snapshot();
        assert_eq!(snap.stats.as_deref(), Some(&stats()));
        assert!(snap.last_ok);
        // The fastpathd connection drops: not up, the last counters kept.
        assert!(poll_stats(&mut ctl, &mut FakeFastPath(None), Some(&m)).is_err());
        assert!(!m.snapshot().last_ok);
        assert!(render(&m.snapshot(), Instant::now()).contains("esprit_fastpath_up 0\n"));
        // Without the endpoint, the controller's own polling.
        poll_stats(&mut ctl, &mut FakeFastPath(Some(stats())), None).unwrap();
    }

    #[test]
    fn the_answer_is_a_function_of_the_bytes() {
        let m = || "text".to_owned();
        assert_eq!(answer(b"GET /metrics HTTP/1.1\r\n\r\n", m), (200, "text".into()));
        assert_eq!(answer(b"GET /metrics HTTP/1.1\r\n", m).0, 400);
        assert_eq!(answer(&vec![b'a'; MAX_REQUEST], m).0, 431);
        assert_eq!(answer(b"GET /config HTTP/1.1\n\n", m).0, 403);
        let mut out = String::new();
        render_operator(&mut out, &[("peer-refused", 2), ("line-too-long", 1)]);
        assert!(out.ends_with("esprit_operator_refused_total{reason=\"peer-refused\"} 2\nesprit_operator_refused_total{reason=\"line-too-long\"} 1\n"), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The server may answer (and close) before reading all of an
        // oversized request: a failed write is part of that case.
        let _ = c.write_all(request);
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    }

    #[test]
    fn serves_get_metrics_on_loopback_and_nothing_else() {
        let m = serve("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = m.local_addr();
        assert_ne!(addr.port(), 0);

        let r = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{r}");
        assert!(r.contains("\r\n\r\n# HELP esprit_fastpath_up 1 when fastpathd's counters were read in the last 3 s.\n# TYPE esprit_fastpath_up gauge\nesprit_fastpath_up 0\n"), "{r}");
        assert!(!r.contains("esprit_worker"), "{r}");

        m.publish(stats(), [(0x11, "lab vpn".to_owned())].into(), Instant::now());
        let r = exchange(addr, b"GET /metrics?x=1 HTTP/1.0\n\n");
        assert!(r.contains("esprit_fastpath_up 1\n"), "{r}");
        assert!(r.contains("esprit_sa_packets_total{sa=\"0x0000001180000000\",spi=\"0x00001011\",direction=\"outbound\",vpn=\"lab vpn\"} 5\n"), "{r}");
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())), "{head}");

        for (request, want) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], "HTTP/1.1 404 Not Found\r\n"),
            (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"),
            (b"hello\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
            (b"GET /metrics SPDY/3\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
            (b"GET metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
            (b"\xff\xfe /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
            (b"GET /config HTTP/1.1\r\n\r\n", "HTTP/1.1 403 Forbidden\r\n"),
            (b"GET /get/config/secrets HTTP/1.1\r\n\r\n", "HTTP/1.1 403 Forbidden\r\n"),
            (b"GET /metrics?get=config%20secrets HTTP/1.1\r\n\r\n", "HTTP/1.1 403 Forbidden\r\n"),
        ] {
            let r = exchange(addr, request);
            assert!(r.starts_with(want), "{:?}: {r}", String::from_utf8_lossy(request));
        }
        let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_REQUEST * 2));
        let r = exchange(addr, &big);
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        // A client that connects and closes without a word changes nothing.
        drop(TcpStream::connect(addr).unwrap());
        assert!(exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
    }
}
