//! esprit: the operator's one-shot client of controld.
//!
//! ```text
//! esprit --socket /run/esprit/controld.sock get sa
//! esprit get config
//! esprit set vpn p22 proxy-id local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 any
//! esprit unset vpn p22
//! esprit exec reload
//! esprit save
//! esprit get vpn test --json      # or: esprit --json get vpn test
//! ```
//!
//! Prints the output on stdout; on failure prints the error on stderr and
//! exits with status 1 (2 when controld cannot be reached).

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use esprit_controld::operator::{join_words, read_response};

/// The operator CLI of esprit.
#[derive(Debug, Parser)]
#[command(name = "esprit", version)]
struct Args {
    /// controld's operator socket.
    #[arg(long, default_value = "/run/esprit/controld.sock")]
    socket: PathBuf,
    /// Answer a `get` with one JSON document (sent as the word `--json`).
    #[arg(long)]
    json: bool,
    /// The command: get sa|ike cookies|vpn|interface|route|counter|event|config, clear sa, set ..., unset ..., exec reload, save
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut line = join_words(&args.command);
    if args.json && args.command.first().is_some_and(|w| w != "get") {
        eprintln!("esprit: --json applies to get commands only");
        return ExitCode::from(1);
    }
    if args.json && !args.command.iter().any(|w| w == "--json") {
        line.push_str(" --json");
    }
    let result = (|| -> std::io::Result<_> {
        let mut s = UnixStream::connect(&args.socket)?;
        s.write_all(format!("{line}\n").as_bytes())?;
        read_response(&mut BufReader::new(s))
    })();
    match result {
        Ok(r) => {
            for l in &r.output {
                println!("{l}");
            }
            match r.result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("esprit: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("esprit: controld at {}: {e}", args.socket.display());
            ExitCode::from(2)
        }
    }
}
