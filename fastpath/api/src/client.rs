//! A blocking client of the control API (controld, fpctl, tests).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::{Envelope, Event, Reply, Request, ServerMessage, PROTOCOL_VERSION};

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
}

/// One connection to fastpathd. Events that arrive while waiting for a
/// reply are queued and returned by [`Client::next_event`].
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    pending_events: std::collections::VecDeque<Event>,
}

impl Client {
    /// Connects and says hello.
    pub fn connect(path: &Path, name: &str) -> Result<Client, ClientError> {
        let s = UnixStream::connect(path)
            .map_err(|source| ClientError::Connect { path: path.display().to_string(), source })?;
        let writer = s.try_clone()?;
        let mut c =
            Client { reader: BufReader::new(s), writer, next_id: 1, pending_events: Default::default() };
        match c.request(Request::Hello { version: PROTOCOL_VERSION, client: name.to_owned() })? {
            Reply::Hello { .. } => Ok(c),
            other => Err(ClientError::Protocol(format!("unexpected answer to hello: {other:?}"))),
        }
    }

    /// Sends a request and waits for its reply.
    pub fn request(&mut self, request: Request) -> Result<Reply, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line =
            crate::to_line(&Envelope { id, request }).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.writer.write_all(line.as_bytes())?;
        loop {
            match self.read_message()? {
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
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, ClientError> {
        if let Some(e) = self.pending_events.pop_front() {
            return Ok(Some(e));
        }
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        let r = self.read_message();
        self.reader.get_ref().set_read_timeout(None)?;
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

    fn read_message(&mut self) -> Result<ServerMessage, ClientError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(ClientError::Closed);
        }
        serde_json::from_str(&line).map_err(|e| ClientError::Protocol(format!("{e}: {}", line.trim_end())))
    }
}
