//! The HTTP side of the metrics endpoint: `GET /metrics` and nothing else,
//! to untrusted clients, each bounded in bytes, time and number.
//!
//! The request head is parsed by `httparse` (hyper's HTTP/1.x parser:
//! zero-copy, no allocation, fuzzed upstream); the server around it is ours
//! and small, because the small synchronous server crates do not bound what
//! a hostile client may hold (`tiny_http` 0.12 reads a header line of any
//! length into memory, sets no socket timeout and starts a thread for every
//! connection). Here:
//!
//! * at most [`MAX_CLIENTS`] connections are served at once, each on its own
//!   thread, so one slow client no longer makes the next scrape wait; a
//!   client beyond that gets `503` at once and is closed;
//! * the head is at most [`MAX_REQUEST`] bytes and [`MAX_HEADERS`] fields
//!   (`431` beyond), and must arrive within [`IO_TIMEOUT`] in all (a client
//!   that trickles bytes is dropped: no slow loris), the answer must be
//!   taken within [`IO_TIMEOUT`] per write;
//! * one request per connection (`Connection: close`); a malformed request
//!   gets `400`, any other method or path `404`, a path that names the
//!   configuration or its secrets `403`. Nothing a client sends can make it
//!   panic ([`answer`] is a function of the bytes, fuzzed as
//!   `prometheus_http`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{render, Metrics, Snapshot, CONTENT_TYPE};

/// Longest request head read (request line and headers).
pub const MAX_REQUEST: usize = 8192;
/// Most header fields in a request head.
pub const MAX_HEADERS: usize = 32;
/// A client must send its whole head within this, and take each write of
/// the answer within this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Most clients served at once (a scrape takes milliseconds).
pub const MAX_CLIENTS: usize = 8;

/// How long, and how much, a closing connection is drained.
const LINGER: Duration = Duration::from_millis(500);
const MAX_LINGER_BYTES: usize = 64 * 1024;

/// Binds `addr` and serves the endpoint on a thread.
pub fn serve(addr: SocketAddr) -> Result<Metrics, String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("metrics endpoint {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("metrics endpoint {addr}: {e}"))?;
    let metrics = Metrics { shared: Arc::new(Mutex::new(Snapshot::default())), addr };
    let m = metrics.clone();
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || accept_loop(&listener, &m))
        .map_err(|e| format!("metrics thread: {e}"))?;
    Ok(metrics)
}

/// A client being served; counted in `active` while it lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(listener: &TcpListener, m: &Metrics) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let mut conn = match listener.accept() {
            Ok((c, _)) => c,
            // Out of descriptors and the like: pause, do not spin.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // Only this thread adds, so the check and the add cannot race.
        if active.load(Ordering::Acquire) >= MAX_CLIENTS {
            busy(&mut conn);
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(&active));
        let m = m.clone();
        // If the thread cannot start, the closure (and the slot) is dropped.
        let _ = std::thread::Builder::new().name("metrics-client".into()).spawn(move || {
            let _slot = slot;
            let _ = handle(&mut conn, &m);
        });
    }
}

/// Too many clients: a short `503` without waiting for the client, then
/// close.
fn busy(conn: &mut TcpStream) {
    if conn.set_nonblocking(true).is_ok() {
        let _ = respond(conn, 503, "busy: too many clients at once\n");
    }
}

fn handle(conn: &mut TcpStream, m: &Metrics) -> io::Result<()> {
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let Some(request) = read_head(conn, Instant::now() + IO_TIMEOUT)? else { return Ok(()) };
    let (status, body) =
        answer(&request, || render(&m.snapshot(), Instant::now(), &crate::io::operator::COUNTERS.iter()));
    respond(conn, status, &body)?;
    // Lingering close: what the client still sends (the rest of an
    // oversized request) is read and dropped, so that closing does not
    // reset the connection before the client has read the answer.
    conn.shutdown(Shutdown::Write)?;
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

/// Reads until the head is complete, malformed or [`MAX_REQUEST`] bytes
/// long; `None` if the client closed first. Fails when `deadline` passes.
fn read_head(conn: &mut TcpStream, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while buf.len() < MAX_REQUEST && !head_done(&buf) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        conn.set_read_timeout(Some(left))?;
        let room = chunk.len().min(MAX_REQUEST - buf.len());
        let n = match conn.read(chunk.get_mut(..room).unwrap_or_default()) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    Ok(Some(buf))
}

/// Whether `buf` holds a whole head or is already known to be malformed.
fn head_done(buf: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    !matches!(httparse::Request::new(&mut headers).parse(buf), Ok(httparse::Status::Partial))
}

/// The whole answer to what a client sent (at most [`MAX_REQUEST`] bytes
/// read): status and body, a pure function over bytes (the fuzz target
/// `prometheus_http` runs it). `metrics` renders the text.
pub fn answer(request: &[u8], metrics: impl FnOnce() -> String) -> (u16, String) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(request) {
        Ok(httparse::Status::Complete(_)) => route(req.method.unwrap_or(""), req.path.unwrap_or(""), metrics),
        Ok(httparse::Status::Partial) if request.len() >= MAX_REQUEST => {
            (431, "request too large\n".to_owned())
        }
        Ok(httparse::Status::Partial) => (400, "incomplete request head\n".to_owned()),
        Err(httparse::Error::TooManyHeaders) => (431, "too many header fields\n".to_owned()),
        Err(e) => (400, format!("bad request: {e}: expected METHOD TARGET HTTP/1.x\n")),
    }
}

/// The status and body for a request; `metrics` renders the text.
/// Nothing but counters is served: a path that asks for the configuration
/// or its secrets gets 403 (they are for `esprit get config secrets` on
/// the operator socket only).
fn route(method: &str, target: &str, metrics: impl FnOnce() -> String) -> (u16, String) {
    // RFC 9112 §3.2.1: the origin form; `*` and absolute URIs are not ours.
    if !target.starts_with('/') {
        return (400, "bad request target: expected /metrics\n".to_owned());
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
        200 => ("OK", CONTENT_TYPE),
        400 => ("Bad Request", "text/plain; charset=utf-8"),
        403 => ("Forbidden", "text/plain; charset=utf-8"),
        431 => ("Request Header Fields Too Large", "text/plain; charset=utf-8"),
        503 => ("Service Unavailable", "text/plain; charset=utf-8"),
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
