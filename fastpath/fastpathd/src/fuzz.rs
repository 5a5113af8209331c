//! Fuzz entry point of the control API (see `fuzz/`): request
//! lines in, replies and worker updates out, through the same functions
//! the control socket and the management thread use (bounded line reader,
//! request parser, request handler), with no socket and no AF_XDP. The
//! updates are applied to real pipelines, so what a request makes the
//! workers do is exercised too.

use std::io::{BufReader, Cursor};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, Receiver};
use esprit_dataplane::{PortInfo, Update, VecOutput, Worker, WorkerConfig, WorkerId};
use esprit_fastpath_api::{to_line, PortView, ServerMessage};

use crate::control::{parse_request, read_line_bounded, LineRead, Writer, MAX_REQUEST_LINE};
use crate::mgmt::State;
use crate::worker::FromWorker;

/// Workers of the harness (SAs spread over both, as in fastpathd).
const WORKERS: usize = 2;

/// A management thread with two workers and two ports, in memory.
#[derive(Debug)]
pub struct ControlHarness {
    state: State,
    updates: Vec<Receiver<Update>>,
    pipelines: Vec<Worker>,
    from_workers: Receiver<FromWorker>,
    /// The connection's lines (events of a subscription), dropped after
    /// each input.
    lines: Arc<Mutex<Vec<u8>>>,
    writer: Writer,
    /// Replies given so far (one per request line that parsed).
    pub replies: u64,
    /// Lines refused before the handler (malformed or too long).
    pub refused: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("State")
    }
}

impl Default for ControlHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl ControlHarness {
    pub fn new() -> ControlHarness {
        let ports = vec![
            PortInfo {
                name: "lan0".into(),
                mac: esprit_wire::ethernet::MacAddr([2, 0, 0, 0, 1, 0]),
                mtu: 1500,
                addrs: vec![[10, 1, 1, 1].into()],
            },
            PortInfo {
                name: "wan0".into(),
                mac: esprit_wire::ethernet::MacAddr([2, 0, 0, 0, 1, 1]),
                mtu: 1500,
                addrs: vec![[192, 0, 2, 1].into()],
            },
        ];
        let views = ports
            .iter()
            .map(|p| PortView {
                name: p.name.clone(),
                mac: p.mac.to_string(),
                mtu: p.mtu,
                addrs: p.addrs.clone(),
                queues: 1,
                xdp_mode: "skb".into(),
            })
            .collect();
        let mut txs = Vec::new();
        let mut updates = Vec::new();
        let mut pipelines = Vec::new();
        for w in 0..WORKERS {
            let (tx, rx) = bounded(65_536);
            txs.push(tx);
            updates.push(rx);
            let mut p = Worker::new(WorkerConfig::new(WorkerId(w as u16)));
            p.apply(Update::Ports(ports.clone()), &mut VecOutput::default());
            pipelines.push(p);
        }
        let mut state = State::new(ports, views, txs, vec![None; WORKERS]);
        state.set_stats_wait(Duration::ZERO);
        let (_to_mgmt, from_workers) = bounded(16);
        let lines = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer: Writer = lines.clone();
        ControlHarness { state, updates, pipelines, from_workers, lines, writer, replies: 0, refused: 0 }
    }

    /// Feeds `data` as the bytes of one connection. Must never panic;
    /// every request that parses gets a reply that serializes.
    pub fn run(&mut self, data: &[u8]) {
        let mut r = BufReader::new(Cursor::new(data));
        let mut line = Vec::new();
        loop {
            match read_line_bounded(&mut r, &mut line, MAX_REQUEST_LINE) {
                Ok(LineRead::Line) => {}
                Ok(LineRead::TooLong) => {
                    self.refused += 1;
                    return;
                }
                Ok(LineRead::Eof) | Err(_) => return,
            }
            let envelope = match parse_request(&line) {
                Ok(e) => e,
                Err(e) => {
                    assert!(e.starts_with("malformed request: "));
                    self.refused += 1;
                    continue;
                }
            };
            let result = self.state.handle_request(envelope.request, &self.writer, &self.from_workers);
            let reply = ServerMessage::Reply { id: envelope.id, result };
            assert!(to_line(&reply).is_ok(), "a reply that does not serialize");
            self.replies += 1;
            // The workers apply what the request made of it; hard
            // lifetimes are enforced as the management loop would.
            let mut out = VecOutput::default();
            for (rx, p) in self.updates.iter().zip(self.pipelines.iter_mut()) {
                while let Ok(u) = rx.try_recv() {
                    p.apply(u, &mut out);
                }
                p.tick(Instant::now(), &mut out);
            }
            self.state.expire_sas(Instant::now());
            // Events written to a subscribed "connection" are lines of JSON.
            if let Ok(mut l) = self.lines.lock() {
                assert!(l.is_empty() || l.ends_with(b"\n"));
                l.clear();
            }
        }
    }
}

/// One fresh harness per input (the fuzz target keeps one per process).
pub fn control_lines(data: &[u8]) {
    ControlHarness::new().run(data);
}
