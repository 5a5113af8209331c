//! fastpathd: esprit's poll-mode fast path (see the library's documentation).

use std::process::ExitCode;

use clap::Parser;
use esprit_fastpathd::{mgmt, Args, Stop};

fn main() -> ExitCode {
    let args = Args::parse();
    match mgmt::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fastpathd: {e}");
            match e {
                Stop::Refused(_) => ExitCode::from(2),
                Stop::Failed(_) => ExitCode::FAILURE,
            }
        }
    }
}
