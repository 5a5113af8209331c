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
//! `control/controld/src/show.rs` (the `get` commands of the controller).

use std::io::{self, BufRead, Write};

use crate::controller::Response;

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
    fn words_are_quoted_when_needed() {
        assert_eq!(
            join_words(&["set", "ike", "gateway", "g", "preshare", "a b", "#x"]),
            "set ike gateway g preshare \"a b\" \"#x\""
        );
    }
}
