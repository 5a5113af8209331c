//! fpctl: talks to fastpathd's control socket (tests, debugging, scripts).
//!
//! ```text
//! fpctl --socket S request '{"type":"stats"}'      one request, JSON reply on stdout
//! fpctl --socket S batch < requests.jsonl          one request per line, stops at the first error
//! fpctl --socket S wait-event acquire --timeout 5  subscribes, prints the first such event
//! ```
//! Exit status: 0 on success, 1 on a refused request or a timeout, 2 on
//! usage or connection errors.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use esprit_fastpath_api::{Client, ClientError, FastPathEvent, Request};

#[derive(Debug, Parser)]
#[command(name = "fpctl", version, about = "Talk to fastpathd's control socket")]
struct Args {
    #[arg(long, default_value = "/run/esprit/fastpathd.sock")]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Send one request (JSON) and print the reply.
    Request { json: String },
    /// Send requests read from stdin, one JSON object per line.
    Batch,
    /// Wait for an event of this kind (acquire, soft-expire, hard-expire, idle).
    WaitEvent {
        kind: String,
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut c = match Client::connect(&args.socket, "fpctl") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fpctl: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match args.cmd {
        Cmd::Request { json } => one(&mut c, &json),
        Cmd::Batch => {
            let mut r = Ok(());
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                r = one(&mut c, &line);
                if r.is_err() {
                    break;
                }
            }
            r
        }
        Cmd::WaitEvent { kind, timeout } => wait(&mut c, &kind, Duration::from_secs_f64(timeout)),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fpctl: {e}");
            ExitCode::from(1)
        }
    }
}

fn one(c: &mut Client, json: &str) -> Result<(), String> {
    let req: Request = serde_json::from_str(json).map_err(|e| format!("bad request JSON: {e}"))?;
    let reply = c.request(req).map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(&reply).map_err(|e| e.to_string())?);
    Ok(())
}

fn wait(c: &mut Client, kind: &str, timeout: Duration) -> Result<(), String> {
    c.request(Request::Subscribe).map_err(|e| e.to_string())?;
    // Scripts wait for this line before causing the event.
    eprintln!("fpctl: subscribed");
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no {kind} event within {timeout:?}"));
        }
        match c.next_event(left) {
            Ok(Some(e)) => {
                let k = match &e {
                    FastPathEvent::Acquire { .. } => "acquire",
                    FastPathEvent::SoftExpire { .. } => "soft-expire",
                    FastPathEvent::HardExpire { .. } => "hard-expire",
                    FastPathEvent::Idle { .. } => "idle",
                    FastPathEvent::ProbeReply { .. } => "probe-reply",
                };
                if k == kind {
                    println!("{}", serde_json::to_string(&e).map_err(|e| e.to_string())?);
                    return Ok(());
                }
            }
            Ok(None) => {}
            Err(ClientError::Closed) => return Err("fastpathd closed the connection".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
}
