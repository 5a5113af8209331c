//! A blocking client of the control API (controld, fpctl, tests).
//!
//! Every read and write is bounded by [`Client::timeout`] (default
//! [`REQUEST_TIMEOUT`]): a fastpathd that accepts and never answers, or
//! stops answering mid-reply, makes a request fail with
//! [`ClientError::Timeout`] instead of hanging its caller (controld's main
//! loop). After a timeout the connection is out of step (a late reply
//! could be taken for the next request's), so every later request on it
//! fails with [`ClientError::Broken`]: reconnect.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::{Envelope, FastPathEvent, Reply, Request, ServerMessage, PROTOCOL_VERSION};

/// Longest wait for fastpathd to take a request or to answer it. fastpathd
/// answers between bursts, in microseconds; a `Dump` of 100,000 SAs takes
/// well under a second. Five seconds is "it is not answering".
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("fastpathd control socket {path}: {source}")]
    Connect { path: String, source: std::io::Error },
    #[error("fastpathd control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("fastpathd sent something that is not a control message: {0}")]
    Protocol(String),
    #[error("fastpathd refused the request: {0}")]
    Refused(String),
    #[error("fastpathd closed the connection")]
    Closed,
    #[error("fastpathd did not answer {what} within {} ms", timeout.as_millis())]
    Timeout { what: &'static str, timeout: Duration },
    #[error("fastpathd control connection unusable after an earlier timeout: reconnect")]
    Broken,
}

/// One connection to fastpathd. Events that arrive while waiting for a
/// reply are queued and returned by [`Client::next_event`].
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    pending_events: std::collections::VecDeque<FastPathEvent>,
    timeout: Duration,
    broken: bool,
}

impl Client {
    /// Connects and says hello, with [`REQUEST_TIMEOUT`].
    pub fn connect(path: &Path, name: &str) -> Result<Client, ClientError> {
        Client::connect_with_timeout(path, name, REQUEST_TIMEOUT)
    }

    /// Connects and says hello; every later read and write waits at most
    /// `timeout` (a zero `timeout` is taken as one millisecond).
    pub fn connect_with_timeout(path: &Path, name: &str, timeout: Duration) -> Result<Client, ClientError> {
        let timeout = timeout.max(Duration::from_millis(1));
        let s = UnixStream::connect(path)
            .map_err(|source| ClientError::Connect { path: path.display().to_string(), source })?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let writer = s.try_clone()?;
        let mut c = Client {
            reader: BufReader::new(s),
            writer,
            next_id: 1,
            pending_events: Default::default(),
            timeout,
            broken: false,
        };
        match c.request(Request::Hello { version: PROTOCOL_VERSION, client: name.to_owned() })? {
            Reply::Hello { .. } => Ok(c),
            other => Err(ClientError::Protocol(format!("unexpected answer to hello: {other:?}"))),
        }
    }

    /// The bound of every read and write.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends a request and waits for its reply (at most [`Client::timeout`]
    /// for each read and write).
    pub fn request(&mut self, request: Request) -> Result<Reply, ClientError> {
        if self.broken {
            return Err(ClientError::Broken);
        }
        let id = self.next_id;
        self.next_id += 1;
        let line =
            crate::to_line(&Envelope { id, request }).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if let Err(e) = self.writer.write_all(line.as_bytes()) {
            return Err(self.timed_out(e, "the request"));
        }
        loop {
            let message = match self.read_message() {
                Err(ClientError::Io(e)) => return Err(self.timed_out(e, "the request")),
                other => other?,
            };
            match message {
                ServerMessage::Reply { id: rid, result } if rid == id => {
                    return result.map_err(ClientError::Refused);
                }
                ServerMessage::Reply { id: rid, .. } => {
                    return Err(ClientError::Protocol(format!("reply to request {rid}, expected {id}")))
                }
                ServerMessage::Event { event } => self.pending_events.push_back(event),
            }
        }
    }

    /// The next event (after [`Request::Subscribe`]), waiting at most
    /// `timeout`; `Ok(None)` when none came in time.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<FastPathEvent>, ClientError> {
        if let Some(e) = self.pending_events.pop_front() {
            return Ok(Some(e));
        }
        if self.broken {
            return Err(ClientError::Broken);
        }
        self.reader.get_ref().set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let r = self.read_message();
        self.reader.get_ref().set_read_timeout(Some(self.timeout))?;
        match r {
            Ok(ServerMessage::Event { event }) => Ok(Some(event)),
            Ok(ServerMessage::Reply { id, .. }) => {
                Err(ClientError::Protocol(format!("unsolicited reply {id}")))
            }
            Err(ClientError::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// An I/O error of a request: a timeout breaks the connection.
    fn timed_out(&mut self, e: std::io::Error, what: &'static str) -> ClientError {
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            self.broken = true;
            ClientError::Timeout { what, timeout: self.timeout }
        } else {
            ClientError::Io(e)
        }
    }

    fn read_message(&mut self) -> Result<ServerMessage, ClientError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(ClientError::Closed);
        }
        serde_json::from_str(&line).map_err(|e| ClientError::Protocol(format!("{e}: {}", line.trim_end())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;
    use std::time::Instant;

    fn socket_path(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("esprit-client-{tag}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    /// A fastpathd that accepts and never says a word: `connect` gives up
    /// after its timeout with an error that says so, instead of hanging.
    #[test]
    fn silent_server_times_out_on_hello() {
        let path = socket_path("silent");
        let listener = UnixListener::bind(&path).unwrap();
        let keep = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(2));
            drop(conn);
        });
        let t0 = Instant::now();
        let err = Client::connect_with_timeout(&path, "test", Duration::from_millis(200)).unwrap_err();
        let took = t0.elapsed();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
        assert_eq!(err.to_string(), "fastpathd did not answer the request within 200 ms");
        assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1500), "{took:?}");
        keep.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }

    /// A fastpathd that answers hello, then stops answering: the request
    /// times out, and the connection refuses further requests (a late
    /// reply must not be taken for the next request's).
    #[test]
    fn server_that_stops_answering_times_out_then_is_broken() {
        let path = socket_path("stops");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut w = conn.try_clone().unwrap();
            let mut r = std::io::BufReader::new(conn);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let hello = ServerMessage::Reply {
                id: 1,
                result: Ok(Reply::Hello { version: PROTOCOL_VERSION, server: "test".into() }),
            };
            w.write_all(crate::to_line(&hello).unwrap().as_bytes()).unwrap();
            // Reads the next request and never answers it.
            line.clear();
            r.read_line(&mut line).unwrap();
            std::thread::sleep(Duration::from_secs(1));
        });
        let mut c = Client::connect_with_timeout(&path, "test", Duration::from_millis(200)).unwrap();
        assert_eq!(c.timeout(), Duration::from_millis(200));
        let t0 = Instant::now();
        let err = c.request(Request::Dump).unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
        assert!(t0.elapsed() < Duration::from_millis(1000));
        assert!(matches!(c.request(Request::Dump).unwrap_err(), ClientError::Broken));
        server.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }
}
