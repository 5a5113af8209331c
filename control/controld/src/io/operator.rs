//! The operator socket's line protocol, shared by controld and `esprit`.
//!
//! A Unix stream socket (mode 0600). The client sends one command per line
//! (`get sa`, `set vpn ...`, `exec reload`, `save`), words as in the
//! configuration language (quote a word with spaces in `"..."`). controld
//! answers each line with the command's output, one line each, then one
//! status line: `%ok`, or `%error MESSAGE` (MESSAGE is the configuration
//! crate's exact error for `set`/`unset`). An output line that starts with
//! `%` is sent with one more `%` in front, so the status line is never
//! ambiguous. Several commands may follow on one connection.
//!
//! **JSON**: a `get` command with the word `--json` among its words
//! (`get sa --json`, `get vpn test --json`) answers with one JSON document
//! instead of the table, pretty-printed over several output lines, then
//! `%ok` as always; errors stay `%error MESSAGE`. `esprit --json get sa`
//! and `esprit get sa --json` both send `get sa --json`. The documents and
//! their field names are listed in the module doc of
//! `control/controld/src/show/` (the `get` commands of the controller).

//!
//! **Who may talk to it**. The socket exists with its final mode from
//! the moment its name appears ([`bind_operator_socket`]: bound inside a
//! private directory, mode set, then renamed into place, so there is no
//! window in which another user could connect). Every connection's peer
//! credentials (`SO_PEERCRED`) are checked ([`caller_allowed`]): root,
//! controld's own user, or a member of the group given with
//! `controld --socket-group NAME` (the socket is then mode 0660, that
//! group's). A request line is at most [`MAX_REQUEST_LINE`] bytes: a longer
//! one is answered `%error` and the connection closed. Both refusals are
//! counted ([`OperatorCounters`], in `get counter` and Prometheus).

use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::controller::Response;
use crate::core::port::Token;

/// The longest request line controld reads, in bytes (the newline
/// included): the longest configuration line is far shorter.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Refusals of the operator socket, counted from any client thread.
#[derive(Debug, Default)]
pub struct OperatorCounters {
    /// Connections refused: the peer is not root, controld's user or a
    /// member of the socket group.
    pub peers_refused: AtomicU64,
    /// Request lines longer than [`MAX_REQUEST_LINE`].
    pub lines_too_long: AtomicU64,
    /// Request lines that are not UTF-8.
    pub lines_not_utf8: AtomicU64,
}

impl OperatorCounters {
    /// The counters by name (as `get counter` and Prometheus show them).
    pub fn iter(&self) -> [(&'static str, u64); 3] {
        [
            ("peer-refused", self.peers_refused.load(Ordering::Relaxed)),
            ("line-too-long", self.lines_too_long.load(Ordering::Relaxed)),
            ("line-not-utf8", self.lines_not_utf8.load(Ordering::Relaxed)),
        ]
    }
}

/// controld's operator socket counters.
pub static COUNTERS: OperatorCounters = OperatorCounters {
    peers_refused: AtomicU64::new(0),
    lines_too_long: AtomicU64::new(0),
    lines_not_utf8: AtomicU64::new(0),
};

/// One request line read from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestLine {
    /// A line, without its newline.
    Line(String),
    /// The client closed the connection.
    End,
    /// More than the limit without a newline: answer and close.
    TooLong,
    /// Not UTF-8: answered, the connection goes on.
    NotUtf8,
}

/// Reads one request line of at most `max` bytes (the newline included):
/// never buffers more than `max`, whatever the client sends.
pub fn read_request_line(r: &mut impl BufRead, max: usize) -> io::Result<RequestLine> {
    let mut buf = Vec::new();
    let n = r.take(max as u64).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(RequestLine::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() >= max {
        return Ok(RequestLine::TooLong);
    }
    match String::from_utf8(buf) {
        Ok(line) => Ok(RequestLine::Line(line)),
        Err(_) => Ok(RequestLine::NotUtf8),
    }
}

/// The answer to a line longer than [`MAX_REQUEST_LINE`].
pub fn too_long_response() -> Response {
    Response {
        output: Vec::new(),
        result: Err(format!("request line longer than {MAX_REQUEST_LINE} bytes: refused, connection closed")),
    }
}

/// The answer to a line that is not UTF-8.
pub fn not_utf8_response() -> Response {
    Response { output: Vec::new(), result: Err("request line is not UTF-8: refused".into()) }
}

/// Who is on the other end of a connection (`SO_PEERCRED`), with the
/// supplementary groups of its process when `/proc` tells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    pub groups: Vec<u32>,
}

/// The credentials of the process on the other end of `conn`.
pub fn caller_of(conn: &UnixStream) -> io::Result<Caller> {
    let c = nix::sys::socket::getsockopt(conn, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(io::Error::from)?;
    let groups = std::fs::read_to_string(format!("/proc/{}/status", c.pid()))
        .map(|s| supplementary_groups(&s))
        .unwrap_or_default();
    Ok(Caller { uid: c.uid(), gid: c.gid(), pid: c.pid(), groups })
}

/// The `Groups:` line of a `/proc/PID/status`.
fn supplementary_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().filter_map(|w| w.parse().ok()).collect())
        .unwrap_or_default()
}

/// May this caller use the operator socket: root, controld's own user
/// (`own_uid`), or a member of `group` (primary or supplementary).
pub fn caller_allowed(caller: &Caller, own_uid: u32, group: Option<u32>) -> bool {
    caller.uid == 0
        || caller.uid == own_uid
        || group.is_some_and(|g| caller.gid == g || caller.groups.contains(&g))
}

/// The refusal a caller gets before the connection is closed.
pub fn refused_response(caller: &Caller) -> Response {
    Response {
        output: Vec::new(),
        result: Err(format!(
            "uid {} (pid {}) may not use the operator socket: root, or a member of controld's --socket-group",
            caller.uid, caller.pid
        )),
    }
}

/// Binds the operator socket at `path` with mode 0600 (0660 and group
/// `group` with `--socket-group`) from the moment the name exists: the
/// socket is bound in a private directory (mode 0700) next to `path`, its
/// mode and group set there, then renamed over `path` (replacing a stale
/// socket atomically). The caller checks first that no controld serves
/// `path`.
pub fn bind_operator_socket(path: &Path, group: Option<u32>) -> Result<UnixListener, String> {
    let err = |what: &str, p: &Path, e: io::Error| {
        format!("operator socket {}: {what} {}: {e}", path.display(), p.display())
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let private: PathBuf = dir.join(format!(".{name}.bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| err("private directory", &private, e))?;
    let result = (|| {
        let tmp = private.join("sock");
        let listener = UnixListener::bind(&tmp).map_err(|e| err("bind", &tmp, e))?;
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(|e| err("chmod", &tmp, e))?;
        if let Some(g) = group {
            std::os::unix::fs::chown(&tmp, None, Some(g)).map_err(|e| err("chown", &tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| err("rename", &tmp, e))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// Operator clients waiting for the late answer of a command (one that
/// programs fastpathd: the core answers it with a token, then with the
/// response under that token).
#[derive(Debug, Default)]
pub struct Waiting {
    clients: std::collections::HashMap<Token, std::sync::mpsc::Sender<Response>>,
}

impl Waiting {
    /// The client behind `tx` waits for the answer under `token`.
    pub fn hold(&mut self, token: Token, tx: std::sync::mpsc::Sender<Response>) {
        self.clients.insert(token, tx);
    }

    /// Hands the answer under `token` to its client (its thread writes
    /// it). An unknown token, or a client gone meanwhile, is ignored.
    pub fn answer(&mut self, token: Token, response: Response) {
        if let Some(tx) = self.clients.remove(&token) {
            let _ = tx.send(response);
        }
    }

    /// Clients waiting.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True when no client waits.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// Status line of a successful command.
pub const OK: &str = "%ok";
/// Prefix of the status line of a failed command.
pub const ERROR: &str = "%error ";

/// Writes a response.
pub fn write_response(w: &mut impl Write, r: &Response) -> io::Result<()> {
    let mut text = String::new();
    for line in &r.output {
        if line.starts_with('%') {
            text.push('%');
        }
        text.push_str(line);
        text.push('\n');
    }
    match &r.result {
        Ok(()) => text.push_str(OK),
        Err(e) => {
            text.push_str(ERROR);
            // One line: a message never spans lines on the wire.
            text.push_str(&e.replace('\n', " "));
        }
    }
    text.push('\n');
    w.write_all(text.as_bytes())?;
    w.flush()
}

/// Reads one response.
pub fn read_response(r: &mut impl BufRead) -> io::Result<Response> {
    let mut output = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "controld closed the connection mid-answer",
            ));
        }
        let line = line.trim_end_matches('\n');
        if line == OK {
            return Ok(Response { output, result: Ok(()) });
        }
        if let Some(e) = line.strip_prefix(ERROR) {
            return Ok(Response { output, result: Err(e.to_owned()) });
        }
        output.push(line.strip_prefix('%').unwrap_or(line).to_owned());
    }
}

/// Joins command-line arguments into one command line, quoting the words
/// that need it (spaces, `#` at the start, empty), as the lexer reads them.
pub fn join_words<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| {
            let w = w.as_ref();
            if w.is_empty() || w.contains(char::is_whitespace) || w.starts_with('#') {
                format!("\"{w}\"")
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn responses_round_trip_even_with_percent_lines() {
        for r in [
            Response {
                output: vec!["total configured sa: 0".into(), "%odd".into(), "%ok".into()],
                result: Ok(()),
            },
            Response { output: vec![], result: Err("\"unset vpn x\": vpn \"x\" does not exist".into()) },
        ] {
            let mut buf = Vec::new();
            write_response(&mut buf, &r).unwrap();
            assert_eq!(read_response(&mut &buf[..]).unwrap(), r);
        }
    }

    #[test]
    fn request_lines_are_bounded() {
        let mut r = &b"get sa\nget vpn\n"[..];
        assert_eq!(read_request_line(&mut r, 64).unwrap(), RequestLine::Line("get sa".into()));
        assert_eq!(read_request_line(&mut r, 64).unwrap(), RequestLine::Line("get vpn".into()));
        assert_eq!(read_request_line(&mut r, 64).unwrap(), RequestLine::End);
        // Exactly at the limit with its newline: taken.
        let line = format!("{}\n", "a".repeat(63));
        assert_eq!(read_request_line(&mut line.as_bytes(), 64).unwrap(), RequestLine::Line("a".repeat(63)));
        // One more byte: refused, and no more than the limit was read.
        let long = "a".repeat(1 << 20);
        let mut r = io::BufReader::with_capacity(16, long.as_bytes());
        assert_eq!(read_request_line(&mut r, 64).unwrap(), RequestLine::TooLong);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest.len(), (1 << 20) - 64);
        assert_eq!(read_request_line(&mut &b"\xff\xfe\n"[..], 64).unwrap(), RequestLine::NotUtf8);
        // A last line without a newline is still a line.
        assert_eq!(read_request_line(&mut &b"save"[..], 64).unwrap(), RequestLine::Line("save".into()));
    }

    #[test]
    fn only_root_own_user_or_the_socket_group_may_connect() {
        let caller = |uid, gid, groups: &[u32]| Caller { uid, gid, pid: 1, groups: groups.to_vec() };
        assert!(caller_allowed(&caller(0, 0, &[]), 1000, None));
        assert!(caller_allowed(&caller(1000, 1000, &[]), 1000, None));
        assert!(!caller_allowed(&caller(1001, 1001, &[]), 1000, None));
        assert!(!caller_allowed(&caller(1001, 50, &[]), 0, None));
        assert!(caller_allowed(&caller(1001, 50, &[]), 0, Some(50)));
        assert!(caller_allowed(&caller(1001, 1001, &[7, 50]), 0, Some(50)));
        assert!(!caller_allowed(&caller(1001, 1001, &[7]), 0, Some(50)));
        assert_eq!(supplementary_groups("Name:\tx\nGroups:\t4 24 27 \nNSpid: 1\n"), [4, 24, 27]);
        assert_eq!(supplementary_groups("Groups:\n"), Vec::<u32>::new());
    }

    #[test]
    fn the_socket_has_its_mode_from_the_moment_it_exists() {
        // With a permissive umask a bind-then-chmod socket would be 0777
        // for a moment: a watcher polling the name must never see that.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let dir = std::env::temp_dir().join(format!("controld-sock-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("controld.sock");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(m) = std::fs::symlink_metadata(&path) {
                        seen.insert(m.permissions().mode() & 0o777);
                    }
                }
                seen
            })
        };
        for _ in 0..300 {
            let l = bind_operator_socket(&path, None).unwrap();
            drop(l);
        }
        stop.store(true, Ordering::Relaxed);
        let seen = watcher.join().unwrap();
        nix::sys::stat::umask(old);
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [0o600]);
        // It works, it is ours, and the private directory is gone.
        let l = bind_operator_socket(&path, None).unwrap();
        let c = UnixStream::connect(&path).unwrap();
        let (s, _) = l.accept().unwrap();
        let me = caller_of(&s).unwrap();
        assert_eq!(me.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(caller_allowed(&me, nix::unistd::geteuid().as_raw(), None));
        drop(c);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from("controld.sock")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A late answer reaches the client that waits under its token, and
    /// no other; an unknown or repeated token reaches nobody.
    #[test]
    fn late_answers_go_to_their_client() {
        let mut w = Waiting::default();
        let (tx1, rx1) = std::sync::mpsc::channel();
        let (tx2, rx2) = std::sync::mpsc::channel();
        w.hold(Token(1), tx1);
        w.hold(Token(2), tx2);
        let two = Response { output: vec!["two".into()], result: Ok(()) };
        w.answer(Token(2), two.clone());
        w.answer(Token(9), Response { output: vec![], result: Err("nobody".into()) });
        assert_eq!(rx2.try_recv().unwrap(), two);
        assert!(rx1.try_recv().is_err());
        assert_eq!(w.len(), 1);
        w.answer(Token(2), two.clone());
        assert!(rx2.try_recv().is_err());
        let one = Response { output: vec![], result: Err("refused".into()) };
        w.answer(Token(1), one.clone());
        assert_eq!(rx1.try_recv().unwrap(), one);
        assert!(w.is_empty());
    }

    #[test]
    fn words_are_quoted_when_needed() {
        assert_eq!(
            join_words(&["set", "ike", "gateway", "g", "preshare", "a b", "#x"]),
            "set ike gateway g preshare \"a b\" \"#x\""
        );
    }
}
