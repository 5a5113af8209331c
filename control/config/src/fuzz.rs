//! Fuzz entry points: what `fuzz/` targets call, and what this
//! crate's tests replay from the kept corpora. Not an API for anything else.
//!
//! [`config_line`] applies each line of the input (lossy UTF-8) to the
//! configuration of the seed's GATEWAY-1 (`tests/data/seed-gateway1.conf`)
//! and checks the crate's guarantees: nothing panics; a failed
//! [`Config::apply`] leaves the configuration unchanged (same value, same
//! `to_lines()`); an error does not show the configured pre-shared key;
//! and at the end `Config::load(to_lines())` gives the configuration back.

// A fuzz body asserts its invariants: a failed one is a finding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use crate::{parse_line, Config};

/// The seed sample every input starts from.
pub const SEED: &str = include_str!("../tests/data/seed-gateway1.conf");

/// The seed's pre-shared key (`preshare "#ABC123"`): never in an error
/// about another line, never in `Debug`.
const SEED_PSK: &str = "ABC123";

fn seed() -> &'static Config {
    static SEED_CONFIG: OnceLock<Config> = OnceLock::new();
    SEED_CONFIG.get_or_init(|| Config::load(SEED).expect("the seed sample loads").0)
}

/// The target: every line of `data` applied in turn to the seed's
/// configuration.
pub fn config_line(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut config = seed().clone();
    for line in text.lines() {
        let _ = parse_line(line);
        let before = config.clone();
        if let Err(e) = config.apply(line) {
            assert_eq!(config, before, "failed apply changed the configuration: {line:?}: {e}");
            // `to_lines` depends only on the value: printing `before` now
            // is printing it before the line, without the cost per line.
            assert_eq!(config.to_lines(), before.to_lines(), "failed apply changed the lines: {line:?}");
            if !line.contains(SEED_PSK) {
                assert!(!e.to_string().contains(SEED_PSK), "{line:?}: error shows the PSK: {e}");
            }
        }
    }
    let lines = config.to_lines();
    let (again, _) = match Config::load(&lines.join("\n")) {
        Ok(r) => r,
        Err(e) => panic!("printed configuration does not load: {e}\n{}", lines.join("\n")),
    };
    assert_eq!(again, config, "load(to_lines()) differs:\n{}", lines.join("\n"));
    if !text.contains(SEED_PSK) {
        assert!(!format!("{config:?}").contains(SEED_PSK), "Debug shows the PSK");
    }
}
