//! esprit: the operator's client of controld: one command per run, or the
//! interactive shell when no command is given (`esprit`, `esprit shell`).
//!
//! ```text
//! esprit                       # the shell: esprit-> get s<Tab> ...
//! esprit --socket /run/esprit/controld.sock get sa
//! esprit get config
//! esprit set vpn p22 proxy-id local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 any
//! esprit unset vpn p22
//! esprit exec reload
//! esprit save
//! esprit get vpn test --json      # or: esprit --json get vpn test
//! ```
//!
//! One command: prints the output on stdout; on failure prints the error on
//! stderr and exits with status 1 (2 when controld cannot be reached).
//! The shell exits with status 0 on `exit`, `quit` or Ctrl-D; without a
//! terminal it reads the commands from standard input instead.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use esprit_controld::io::operator::{join_words, read_response};
use esprit_controld::shell;

/// The operator CLI of esprit.
#[derive(Debug, Parser)]
#[command(name = "esprit", version)]
struct Args {
    /// controld's operator socket.
    #[arg(long, default_value = "/run/esprit/controld.sock")]
    socket: PathBuf,
    /// The shell's prompt is NAME-> (as a ScreenOS hostname).
    #[arg(long, value_name = "NAME", default_value = "esprit")]
    prompt: String,
    /// Answer a `get` with one JSON document (sent as the word `--json`).
    #[arg(long)]
    json: bool,
    /// The command: get sa|ike cookies|vpn|interface|route|counter|event|config [secrets], clear sa, set ..., unset ..., exec reload, exec confirm manual-keys, save;
    /// none (or `shell`) opens the interactive shell.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.json && (args.command.is_empty() || args.command == ["shell"]) {
        eprintln!("esprit: --json applies to get commands only, not to the shell");
        return ExitCode::from(1);
    }
    if args.command.is_empty() || args.command == ["shell"] {
        return ExitCode::from(shell::run(&shell::Options {
            socket: args.socket,
            prompt_name: args.prompt,
            history: shell::Options::default_history(),
        }));
    }
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
            // `esprit get sa | head` closes the pipe early: stop writing,
            // as a Unix tool does, instead of panicking in println!.
            let mut out = std::io::stdout().lock();
            for l in &r.output {
                if writeln!(out, "{l}").is_err() {
                    break;
                }
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
