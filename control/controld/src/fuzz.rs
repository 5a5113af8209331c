//! Fuzz entry points: what the `fuzz/` targets `prometheus_http`
//! and `cli_grammar` call, and what this crate's tests replay from the kept
//! corpora (`tests/fuzz_corpus.rs`). Not an API for anything else.
//!
//! * [`prometheus_http`]: whatever a client sends, the metrics endpoint's
//!   answer ([`crate::metrics::answer`]) is one of its statuses, serves
//!   the counters only to `GET /metrics`, and never panics; the operator
//!   socket's line reader over the same bytes never returns a line longer
//!   than its limit.
//! * [`cli_grammar`]: every line of the input goes through the shell (what
//!   it does locally, completion at several cursor positions, `?`) and
//!   then to controld's command interpreter, on the seed's gateway 1 with
//!   a manual-key VPN: nothing panics; a refused command leaves the
//!   configuration as it was; no output or error shows a key unless the
//!   line asked for `get config secrets` (or a line of the input carried
//!   the key's text itself).

// A fuzz body asserts its invariants: a failed one is a finding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use esprit_config::Config;

use crate::core::controller::Controller;
use crate::core::state::State;
use crate::io::operator::{read_request_line, RequestLine};
use crate::metrics::answer;
use crate::shell::grammar::{complete, possible, Names};
use crate::shell::interpret;

/// What the fuzzed endpoint renders for `GET /metrics`.
const BODY: &str = "esprit_fastpath_up 0\n";

/// The target `prometheus_http`.
pub fn prometheus_http(data: &[u8]) {
    let mut rendered = false;
    let (status, body) = answer(data, || {
        rendered = true;
        BODY.to_owned()
    });
    assert!(matches!(status, 200 | 400 | 403 | 404 | 431), "status {status}");
    assert_eq!(rendered, status == 200, "counters rendered for status {status}");
    if status == 200 {
        assert_eq!(body, BODY);
        // Empty lines before the request line are skipped (RFC 9112 §2.2).
        let start = data.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(data.len());
        let line = data.get(start..).unwrap_or_default().split(|b| *b == b'\n').next().unwrap_or_default();
        assert!(line.starts_with(b"GET /metrics"), "200 for {:?}", String::from_utf8_lossy(line));
    }
    let mut r = data;
    for _ in 0..=data.len() {
        match read_request_line(&mut r, 64).unwrap() {
            RequestLine::Line(l) => assert!(l.len() < 64, "line of {} bytes", l.len()),
            RequestLine::NotUtf8 => {}
            RequestLine::TooLong | RequestLine::End => return,
        }
    }
}

/// The seed's gateway 1 with a manual-key VPN: its keys are the secrets.
pub const SEED_PSK: &str = "#ABC123";
/// The manual VPN's encryption key.
pub const SEED_KEY: &str = "5e5e5e5e000102030405060708090a0b";
/// The manual VPN's integrity key.
pub const SEED_AUTH: &str = "a7a7a7a7a8a8a8a8a9a9a9a9aaaaaaaaabababab";

fn seed() -> &'static Config {
    static SEED: OnceLock<Config> = OnceLock::new();
    SEED.get_or_init(|| {
        let text = format!(
            "{}\nset interface tunnel.2 zone Untrust\nset interface tunnel.2 ip unnumbered interface ethernet0/2\n\
             set vpn lab manual 3001 4001 gateway 203.0.113.3 outgoing-interface ethernet0/2 esp aes128 key {SEED_KEY} auth sha-1 key {SEED_AUTH}\n\
             set vpn lab id 0x10 bind interface tunnel.2\n",
            esprit_config::fuzz::SEED
        );
        Config::load(&text).expect("the fuzz seed loads").0
    })
}

/// The target `cli_grammar`.
pub fn cli_grammar(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut c =
        Controller::new(seed().clone(), None, BTreeMap::new(), State::default()).expect("seed translates");
    let mut names = Names::from_config(c.config());
    let mut typed_a_secret = false;
    for line in text.lines() {
        let _ = interpret(line);
        let _ = possible(line);
        for pos in [0, line.len() / 2, line.len(), line.len() + 1] {
            let (start, _) = complete(line, pos, &names);
            assert!(start <= line.len(), "completion starts past the line");
        }
        typed_a_secret |= [SEED_PSK, SEED_KEY, SEED_AUTH].iter().any(|s| line.contains(s));
        let before = c.config().clone();
        // Without fastpathd every command answers at once.
        let r = match c.command(line, None) {
            crate::core::port::Answer::Now(r) => r,
            crate::core::port::Answer::Later(t) => {
                panic!("{line:?} answered later ({t:?}) without fastpathd")
            }
        };
        if r.result.is_err() {
            assert_eq!(c.config(), &before, "refused {line:?} changed the configuration");
        } else if c.config() != &before {
            names = Names::from_config(c.config());
        }
        let asked = line.to_ascii_lowercase().contains("secrets");
        if !asked && !typed_a_secret {
            let shown = format!("{} {:?}", r.output.join("\n"), r.result);
            for s in [SEED_PSK, SEED_KEY, SEED_AUTH] {
                assert!(!shown.contains(s), "{line:?} shows a secret");
            }
        }
    }
}
