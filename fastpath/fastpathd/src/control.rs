//! The control socket: a Unix stream socket speaking the line-delimited
//! JSON of `esprit-fastpath-api`. One thread per connection reads requests
//! and hands them to the management thread, which answers; subscribed
//! connections also receive events. Nothing here touches the packet path.
//!
//! Guarantees (DESIGN.md §7; the socket carries SA keys):
//! * the socket is bound inside a fresh 0700 directory, given its mode
//!   (0600, or 0660 and its group with `--socket-group`) there, and only
//!   then renamed into place: it is never reachable with a wider mode;
//! * every connection's peer is checked with SO_PEERCRED: root (or
//!   fastpathd's own user), or a member of the `--socket-group`; others get
//!   one error line and are closed;
//! * a request line is at most [`MAX_REQUEST_LINE`] bytes: a longer one
//!   gets an error reply and the connection is closed, never buffered;
//! * at most [`MAX_CONNECTIONS`] connections are served at once.
//!
//! Every refusal is counted ([`ControlCounters`], in `fpctl stats` under
//! `daemon`).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam::channel::{bounded, Sender};
use esprit_fastpath_api::{to_line, Envelope, ServerMessage};

/// Longest request line (an `add-sa` is under 1 KiB; a `set-routes` of
/// 10,000 routes about 700 KiB).
pub(crate) const MAX_REQUEST_LINE: usize = 1 << 20;

/// Connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 64;

/// Where a connection's replies and events go, shared by its reader thread
/// (replies) and the management thread (events), so that lines never
/// interleave. A socket in fastpathd; a buffer in tests and the fuzz target.
pub(crate) type Writer = Arc<Mutex<dyn Sink>>;

/// Anything a connection's lines can be written to.
pub(crate) trait Sink: Write + Send {}

impl<T: Write + Send> Sink for T {}

/// A connection's socket as its [`Writer`]: a write that fails (the peer
/// gone, or not reading for the write timeout) shuts the connection down,
/// so that its reader thread and the peer both see it end. A subscriber
/// that stops reading for longer than the timeout is dropped from the
/// events (`notify`); without the shutdown its connection stayed open and
/// it waited for events that never came (controld re-subscribes when its
/// connection ends).
struct ClosingOnError(UnixStream);

impl Write for ClosingOnError {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b).inspect_err(|_| {
            let _ = self.0.shutdown(std::net::Shutdown::Both);
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().inspect_err(|_| {
            let _ = self.0.shutdown(std::net::Shutdown::Both);
        })
    }
}

/// A request on its way to the management thread.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) envelope: Envelope,
    pub(crate) reply: Sender<ServerMessage>,
    pub(crate) writer: Writer,
}

impl std::fmt::Debug for dyn Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<writer>")
    }
}

/// Writes one message; false when the peer is gone.
pub(crate) fn send(writer: &Writer, msg: &ServerMessage) -> bool {
    let Ok(line) = to_line(msg) else { return false };
    match writer.lock() {
        Ok(mut w) => w.write_all(line.as_bytes()).is_ok(),
        Err(_) => false,
    }
}

macro_rules! control_counters {
    ($( $field:ident = $name:literal, $desc:literal; )+) => {
        /// What the control socket refused, by reason.
        #[derive(Debug, Default)]
        pub(crate) struct ControlCounters {
            $( #[doc = $desc] pub(crate) $field: AtomicU64, )+
        }

        impl ControlCounters {
            /// Non-zero counters by name.
            pub(crate) fn nonzero(&self) -> Vec<(String, u64)> {
                let mut v = Vec::new();
                $( let n = self.$field.load(Ordering::Relaxed);
                   if n != 0 { v.push(($name.to_owned(), n)); } )+
                v
            }
        }
    };
}

control_counters! {
    refused_peers = "control-refused-peer", "connections from a peer neither root nor in --socket-group";
    oversized_lines = "control-line-too-long", "request lines longer than MAX_REQUEST_LINE (connection closed)";
    malformed = "control-malformed", "request lines that are not a JSON request";
    too_many_connections = "control-too-many-connections", "connections refused past MAX_CONNECTIONS";
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Who may talk to fastpathd: root, fastpathd's own user, and the members
/// of one group.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    own_uid: u32,
    group: Option<(String, u32)>,
}

impl Access {
    /// Root and fastpathd's own user, plus `group` (looked up by name).
    pub(crate) fn new(group: Option<&str>) -> Result<Access, String> {
        let own_uid = nix::unistd::geteuid().as_raw();
        let group = match group {
            None => None,
            Some(name) => match nix::unistd::Group::from_name(name) {
                Ok(Some(g)) => Some((name.to_owned(), g.gid.as_raw())),
                Ok(None) => return Err(format!("--socket-group {name}: no such group")),
                Err(e) => return Err(format!("--socket-group {name}: {e}")),
            },
        };
        Ok(Access { own_uid, group })
    }

    /// The group allowed besides root, if any.
    pub(crate) fn gid(&self) -> Option<u32> {
        self.group.as_ref().map(|g| g.1)
    }

    /// Whether a peer with these credentials may use the socket.
    pub(crate) fn admits(&self, uid: u32, gid: u32) -> bool {
        if uid == 0 || uid == self.own_uid {
            return true;
        }
        let Some((name, allowed)) = &self.group else { return false };
        if gid == *allowed {
            return true;
        }
        // SO_PEERCRED carries the primary group only: supplementary
        // members are listed in the group entry.
        let user = nix::unistd::User::from_uid(uid.into()).ok().flatten();
        let group = nix::unistd::Group::from_name(name).ok().flatten();
        matches!((user, group), (Some(u), Some(g)) if g.mem.contains(&u.name))
    }
}

/// Binds the control socket at `path` with its final mode from the start:
/// inside a fresh 0700 directory beside `path`, chmod (and chgrp), then
/// renamed into place. Replaces a stale socket; refuses a live one.
pub(crate) fn bind_private(path: &Path, gid: Option<u32>) -> Result<UnixListener, String> {
    let err = |what: &str, e: std::io::Error| format!("control socket {}: {what}: {e}", path.display());
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("control socket directory {}: {e}", dir.display()))?;
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!("control socket {} is in use by another fastpathd", path.display()));
        }
        let _ = std::fs::remove_file(path);
    }
    let name = path.file_name().ok_or_else(|| format!("control socket {}: no file name", path.display()))?;
    let private = dir.join(format!(".{}.{}", name.to_string_lossy(), std::process::id()));
    // A leftover of an earlier run with our PID (reboots reuse PIDs).
    let _ = std::fs::remove_file(private.join(name));
    let _ = std::fs::remove_dir(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private).map_err(|e| err("private directory", e))?;
    let inner = private.join(name);
    let result = (|| {
        let listener = UnixListener::bind(&inner).map_err(|e| err("bind", e))?;
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(mode))
            .map_err(|e| err("chmod", e))?;
        if let Some(g) = gid {
            std::os::unix::fs::chown(&inner, None, Some(g)).map_err(|e| err("chgrp", e))?;
        }
        std::fs::rename(&inner, path).map_err(|e| err("rename into place", e))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&private);
    result
}

/// Binds the socket (see [`bind_private`]) and serves it on a thread.
/// Requests go to `to_mgmt`.
pub(crate) fn serve(
    path: &Path,
    access: Access,
    counters: Arc<ControlCounters>,
    to_mgmt: Sender<Incoming>,
) -> Result<PathBuf, String> {
    let listener = bind_private(path, access.gid())?;
    let live = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let (to_mgmt, counters, live) = (to_mgmt.clone(), counters.clone(), live.clone());
                if !peer_admitted(&conn, &access) {
                    bump(&counters.refused_peers);
                    refuse(conn, "peer is neither root nor a member of fastpathd's --socket-group");
                    continue;
                }
                if live.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    live.fetch_sub(1, Ordering::AcqRel);
                    bump(&counters.too_many_connections);
                    refuse(conn, &format!("more than {MAX_CONNECTIONS} connections"));
                    continue;
                }
                let spawned = std::thread::Builder::new().name("control-conn".into()).spawn({
                    let live = live.clone();
                    move || {
                        connection(conn, to_mgmt, &counters);
                        live.fetch_sub(1, Ordering::AcqRel);
                    }
                });
                if spawned.is_err() {
                    live.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })
        .map_err(|e| format!("control thread: {e}"))?;
    Ok(path.to_owned())
}

fn peer_admitted(conn: &UnixStream, access: &Access) -> bool {
    match nix::sys::socket::getsockopt(conn, nix::sys::socket::sockopt::PeerCredentials) {
        Ok(c) => access.admits(c.uid(), c.gid()),
        Err(_) => false,
    }
}

fn refuse(mut conn: UnixStream, why: &str) {
    let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
    let msg = ServerMessage::Reply { id: 0, result: Err(format!("refused: {why}")) };
    if let Ok(line) = to_line(&msg) {
        let _ = conn.write_all(line.as_bytes());
    }
}

/// One request line read with a bound.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// A line (without its newline) is in the buffer.
    Line,
    /// The peer closed (a partial last line is dropped).
    Eof,
    /// More than `max` bytes came without a newline; what was read is
    /// discarded.
    TooLong,
}

/// Reads one line into `buf` (cleared first), never buffering more than
/// `max` bytes of it.
pub(crate) fn read_line_bounded(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    buf.clear();
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(LineRead::Eof);
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > max {
            buf.clear();
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(&chunk[..take]);
        r.consume(take + usize::from(done));
        if done {
            return Ok(LineRead::Line);
        }
    }
}

/// Parses one request line. The error says what was wrong and never echoes
/// the line (it may hold keys).
pub(crate) fn parse_request(line: &[u8]) -> Result<Envelope, String> {
    serde_json::from_slice(line)
        .map_err(|e| format!("malformed request: {} at column {}", category(&e), e.column()))
}

fn category(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "not JSON",
        Category::Data => "not a request of this protocol (unknown type, missing or mistyped field)",
        Category::Eof => "truncated JSON",
    }
}

fn connection(conn: UnixStream, to_mgmt: Sender<Incoming>, counters: &ControlCounters) {
    let Ok(w) = conn.try_clone() else { return };
    let _ = w.set_write_timeout(Some(Duration::from_secs(5)));
    let writer: Writer = Arc::new(Mutex::new(ClosingOnError(w)));
    let mut reader = BufReader::new(conn);
    let mut line = Vec::new();
    loop {
        match read_line_bounded(&mut reader, &mut line, MAX_REQUEST_LINE) {
            Ok(LineRead::Line) => {}
            Ok(LineRead::Eof) | Err(_) => return,
            Ok(LineRead::TooLong) => {
                bump(&counters.oversized_lines);
                let msg = ServerMessage::Reply {
                    id: 0,
                    result: Err(format!(
                        "request line longer than {MAX_REQUEST_LINE} bytes: connection closed"
                    )),
                };
                send(&writer, &msg);
                return;
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let envelope = match parse_request(&line) {
            Ok(e) => e,
            Err(e) => {
                bump(&counters.malformed);
                if !send(&writer, &ServerMessage::Reply { id: 0, result: Err(e) }) {
                    return;
                }
                continue;
            }
        };
        let (tx, rx) = bounded(1);
        if to_mgmt.send(Incoming { envelope, reply: tx, writer: writer.clone() }).is_err() {
            return;
        }
        match rx.recv() {
            Ok(msg) => {
                if !send(&writer, &msg) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection whose peer stops reading: the write that times out
    /// shuts it down, and the peer, once it reads again, sees the end
    /// rather than waiting for more (it then subscribes again).
    #[test]
    fn a_failed_write_closes_the_connection() {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_write_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut w = ClosingOnError(a);
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0usize;
        let failed = loop {
            match w.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) => break e,
            }
            assert!(sent < 1 << 30, "the socket buffer never filled");
        };
        assert!(
            matches!(failed.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "{failed}"
        );
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match std::io::Read::read(&mut b, &mut buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => panic!("no end of the connection after {got} bytes: {e}"),
            }
        }
        assert_eq!(got, sent);
    }
    use std::io::Cursor;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn lines_are_bounded() {
        let mut r =
            BufReader::with_capacity(7, Cursor::new(b"{\"a\":1}\nshort\n0123456789abcdef\nok".to_vec()));
        let mut buf = Vec::new();
        assert_eq!(read_line_bounded(&mut r, &mut buf, 10).unwrap(), LineRead::Line);
        assert_eq!(buf, b"{\"a\":1}");
        assert_eq!(read_line_bounded(&mut r, &mut buf, 10).unwrap(), LineRead::Line);
        assert_eq!(buf, b"short");
        // 16 bytes without a newline within the bound of 10: refused, and
        // never more than the bound held.
        assert_eq!(read_line_bounded(&mut r, &mut buf, 10).unwrap(), LineRead::TooLong);
        assert!(buf.is_empty());
        // A partial last line is not a request.
        let mut r = Cursor::new(b"ok".to_vec());
        assert_eq!(read_line_bounded(&mut r, &mut buf, 10).unwrap(), LineRead::Eof);
    }

    #[test]
    fn a_line_of_exactly_the_bound_passes() {
        let mut text = vec![b'x'; 10];
        text.push(b'\n');
        let mut r = Cursor::new(text);
        let mut buf = Vec::new();
        assert_eq!(read_line_bounded(&mut r, &mut buf, 10).unwrap(), LineRead::Line);
        assert_eq!(buf.len(), 10);
    }

    #[test]
    fn malformed_requests_never_echo_the_line() {
        let line = br#"{"id":1,"request":{"type":"add-sa","encr_key":"00112233445566778899aabbccddeeff"}}"#;
        let e = parse_request(line).unwrap_err();
        assert!(!e.contains("00112233"), "{e}");
        assert!(e.starts_with("malformed request: not a request of this protocol"), "{e}");
        assert_eq!(
            parse_request(b"{\"id\":1,").unwrap_err(),
            "malformed request: truncated JSON at column 8"
        );
    }

    #[test]
    fn root_and_own_user_are_admitted_strangers_are_not() {
        let a = Access { own_uid: 4242, group: None };
        assert!(a.admits(0, 0));
        assert!(a.admits(4242, 4242));
        assert!(!a.admits(1000, 1000));
        let a = Access { own_uid: 0, group: Some(("esprit-test-group".into(), 3333)) };
        assert!(a.admits(1000, 3333));
        assert!(!a.admits(1000, 1000));
    }

    #[test]
    fn the_socket_is_born_with_its_mode() {
        let dir = std::env::temp_dir().join(format!("fastpathd-ctl-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("fp.sock");
        let l = bind_private(&path, None).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.mode() & 0o777, 0o600);
        // Nothing left beside it (the private directory is gone).
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("fp.sock")]);
        // A live socket is not replaced; a stale one is.
        let _c = UnixStream::connect(&path).unwrap();
        assert!(bind_private(&path, None).unwrap_err().contains("in use"));
        drop(l);
        drop(_c);
        let _l = bind_private(&path, None).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
