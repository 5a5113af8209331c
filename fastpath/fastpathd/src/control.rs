//! The control socket: a Unix stream socket (mode 0600) speaking the
//! line-delimited JSON of `esprit-fastpath-api`. One thread per connection
//! reads requests and hands them to the management thread, which answers;
//! subscribed connections also receive events. Nothing here touches the
//! packet path.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam::channel::{bounded, Sender};
use esprit_fastpath_api::{to_line, Envelope, ServerMessage};

/// A connection's writer, shared by its reader thread (replies) and the
/// management thread (events), so that lines never interleave.
pub(crate) type Writer = Arc<Mutex<UnixStream>>;

/// A request on its way to the management thread.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) envelope: Envelope,
    pub(crate) reply: Sender<ServerMessage>,
    pub(crate) writer: Writer,
}

/// Writes one message; false when the peer is gone.
pub(crate) fn send(writer: &Writer, msg: &ServerMessage) -> bool {
    let Ok(line) = to_line(msg) else { return false };
    match writer.lock() {
        Ok(mut w) => w.write_all(line.as_bytes()).is_ok(),
        Err(_) => false,
    }
}

/// Binds the socket (replacing a stale one), mode 0600, and serves it on a
/// thread. Requests go to `to_mgmt`.
pub(crate) fn serve(path: &Path, to_mgmt: Sender<Incoming>) -> Result<PathBuf, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("control socket directory {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!("control socket {} is in use by another fastpathd", path.display()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("control socket {}: chmod 0600: {e}", path.display()))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let to_mgmt = to_mgmt.clone();
                let _ = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || connection(conn, to_mgmt));
            }
        })
        .map_err(|e| format!("control thread: {e}"))?;
    Ok(path.to_owned())
}

fn connection(conn: UnixStream, to_mgmt: Sender<Incoming>) {
    let Ok(w) = conn.try_clone() else { return };
    let _ = w.set_write_timeout(Some(Duration::from_secs(5)));
    let writer: Writer = Arc::new(Mutex::new(w));
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let envelope: Envelope = match serde_json::from_str(&line) {
            Ok(e) => e,
            Err(e) => {
                // Say what was wrong; never echo the line (it may hold keys).
                let msg = ServerMessage::Reply { id: 0, result: Err(format!("malformed request: {e}")) };
                if !send(&writer, &msg) {
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
