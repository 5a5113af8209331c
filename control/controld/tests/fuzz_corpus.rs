//! Replays the kept `prometheus_http` and `cli_grammar` fuzz corpora
//! through the entry points the fuzzer uses, so every build on stable
//! re-checks the inputs that once mattered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use esprit_controld::fuzz;

fn replay(target: &str, run: fn(&[u8]), prefixes: bool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        run(&data);
        if prefixes {
            // Every prefix too: truncation is where parsers break.
            for cut in 0..data.len() {
                run(&data[..cut]);
            }
        }
        n += 1;
    }
    assert!(n >= 5, "corpus at {} has only {n} inputs", dir.display());
}

#[test]
fn replay_prometheus_http_corpus() {
    replay("prometheus_http", fuzz::prometheus_http, true);
}

#[test]
fn replay_cli_grammar_corpus() {
    replay("cli_grammar", fuzz::cli_grammar, false);
}
