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

/// Most requests [`Client::requests`] has in flight at once: 64 `add-sa`
/// lines are about 29 KB, well inside a Unix socket's buffer, so writing
/// them never waits for fastpathd, which may itself wait to write replies.
pub const PIPELINE_MAX: usize = 64;

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

    /// Sends `requests` back to back and then reads their replies, in
    /// order: one round trip for many requests (fastpathd takes a
    /// connection's requests one after another and answers each in turn).
    /// At most [`PIPELINE_MAX`] are in flight at once, so that what is
    /// written never waits for replies nobody reads yet. The outer error
    /// is the connection's (nothing more can be known); a refusal is that
    /// request's own.
    pub fn requests(&mut self, requests: Vec<Request>) -> Result<Vec<Result<Reply, String>>, ClientError> {
        let mut replies = Vec::with_capacity(requests.len());
        let mut requests = requests.into_iter().peekable();
        while requests.peek().is_some() {
            if self.broken {
                return Err(ClientError::Broken);
            }
            let first = self.next_id;
            let mut lines = String::new();
            for request in requests.by_ref().take(PIPELINE_MAX) {
                let id = self.next_id;
                self.next_id += 1;
                lines.push_str(
                    &crate::to_line(&Envelope { id, request })
                        .map_err(|e| ClientError::Protocol(e.to_string()))?,
                );
            }
            if let Err(e) = self.writer.write_all(lines.as_bytes()) {
                return Err(self.timed_out(e, "the request"));
            }
            let mut id = first;
            while id < self.next_id {
                let message = match self.read_message() {
                    Err(ClientError::Io(e)) => return Err(self.timed_out(e, "the request")),
                    other => other?,
                };
                match message {
                    ServerMessage::Reply { id: rid, result } if rid == id => {
                        replies.push(result);
                        id += 1;
                    }
                    ServerMessage::Reply { id: rid, .. } => {
                        // Out of step: what follows cannot be trusted.
                        self.broken = true;
                        return Err(ClientError::Protocol(format!("reply to request {rid}, expected {id}")));
                    }
                    ServerMessage::Event { event } => self.pending_events.push_back(event),
                }
            }
        }
        Ok(replies)
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

    /// A test server's side of a connection: accepted, hello read and
    /// answered.
    fn accept_with_hello(listener: &UnixListener) -> (UnixStream, std::io::BufReader<UnixStream>) {
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
        (w, r)
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
            let (_w, mut r) = accept_with_hello(&listener);
            // Reads the next request and never answers it.
            let mut line = String::new();
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

    /// Pipelined requests: 70 requests go out before any reply is read
    /// (two rounds: 64, then 6), the replies come back in order with an
    /// event between them and one refusal; every reply lands with its
    /// request, the event is kept for `next_event`.
    #[test]
    fn requests_are_pipelined_and_answered_in_order() {
        let path = socket_path("pipeline");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut w, mut r) = accept_with_hello(&listener);
            let mut line = String::new();
            let answer = |w: &mut UnixStream, msg: &ServerMessage| {
                w.write_all(crate::to_line(msg).unwrap().as_bytes()).unwrap();
            };
            let mut ids = Vec::new();
            for round in [64, 6] {
                // The whole round arrives before the first reply goes.
                for _ in 0..round {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    let e: Envelope = serde_json::from_str(&line).unwrap();
                    ids.push(e.id);
                }
                for &id in &ids[ids.len() - round..] {
                    if id == 3 {
                        let event = FastPathEvent::Idle { sa: 7 };
                        answer(&mut w, &ServerMessage::Event { event });
                    }
                    let result = if id == 5 { Err("no SA 0x5".to_string()) } else { Ok(Reply::Ok) };
                    answer(&mut w, &ServerMessage::Reply { id, result });
                }
            }
            ids
        });
        let mut c = Client::connect(&path, "test").unwrap();
        let replies = c.requests((0..70).map(|i| Request::RemoveSa { id: i }).collect()).unwrap();
        assert_eq!(replies.len(), 70);
        assert_eq!(
            replies[3].as_ref().err().map(String::as_str),
            Some("no SA 0x5"),
            "ids start at 2 after hello"
        );
        assert_eq!(replies.iter().filter(|r| r.is_ok()).count(), 69);
        assert_eq!(c.next_event(Duration::from_millis(1)).unwrap(), Some(FastPathEvent::Idle { sa: 7 }));
        assert_eq!(server.join().unwrap(), (2..72).collect::<Vec<u64>>());
        let _ = std::fs::remove_file(&path);
    }
}
