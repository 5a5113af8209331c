//! The interactive shell of `esprit`: ScreenOS-style `esprit-> ` prompt,
//! line editing, history (`~/.esprit_history`, bounded, mode 0600, lines
//! that carry a key are never written), Tab completion of the command
//! words and of configured names ([`grammar`]), `?` and `help` answered
//! locally. Every other line goes to controld over the operator protocol
//! ([`crate::io::operator`]) on one kept connection; if controld goes away the
//! shell says so and connects again for the next line.
//!
//! Without a terminal on standard input, the same lines are read from it
//! without prompt or editing (`esprit < commands`).
//!
//! A saved ScreenOS configuration pasted (or piped) line by line works in
//! its own order: a line that names what a later line defines waits for
//! it, and `exit` closes ScreenOS's policy and vrouter contexts
//! ([`paste`]).

pub mod grammar;
pub mod paste;

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use rustyline::completion::Completer;
use rustyline::config::Config as EditorConfig;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Context, Editor};

use crate::core::controller::Response;
use crate::io::operator::read_response;
use grammar::Names;

/// Entries kept in the history (in memory and in the file).
pub const HISTORY_SIZE: usize = 1000;
/// The history file, in the operator's home directory.
pub const HISTORY_FILE: &str = ".esprit_history";

/// How the shell runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// controld's operator socket.
    pub socket: PathBuf,
    /// The prompt is `NAME-> ` (ScreenOS shows the hostname there).
    pub prompt_name: String,
    /// The history file; `None` keeps history in memory only.
    pub history: Option<PathBuf>,
}

impl Options {
    /// The default history file: `$HOME/.esprit_history`, if `HOME` is set.
    pub fn default_history() -> Option<PathBuf> {
        std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| Path::new(&h).join(HISTORY_FILE))
    }
}

/// Why a line got no answer.
#[derive(Debug)]
pub enum LinkError {
    /// No connection could be made: nothing was sent.
    Unreachable(io::Error),
    /// The connection broke after the line was sent: it may have run.
    Lost(io::Error),
}

/// The connection to controld, made when needed and kept between lines.
#[derive(Debug)]
pub struct Link {
    path: PathBuf,
    conn: Option<(UnixStream, BufReader<UnixStream>)>,
    /// A connection was lost (or never made): the next one is announced.
    lost: bool,
}

impl Link {
    /// A link to controld's operator socket at `path` (not yet connected).
    pub fn new(path: PathBuf) -> Link {
        Link { path, conn: None, lost: false }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connects if not connected. True when this made a new connection
    /// after one was lost (the caller may say so).
    pub fn connect(&mut self) -> Result<bool, io::Error> {
        if self.conn.is_some() {
            return Ok(false);
        }
        let s = UnixStream::connect(&self.path)?;
        let r = s.try_clone()?;
        self.conn = Some((s, BufReader::new(r)));
        Ok(std::mem::take(&mut self.lost))
    }

    fn drop_connection(&mut self) {
        self.conn = None;
        self.lost = true;
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        let Some((w, _)) = self.conn.as_mut() else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "not connected"));
        };
        w.write_all(format!("{line}\n").as_bytes())?;
        w.flush()
    }

    /// Sends one command line and reads its answer.
    pub fn request(&mut self, line: &str) -> Result<Response, LinkError> {
        let had = self.conn.is_some();
        self.connect().map_err(|e| {
            self.lost = true;
            LinkError::Unreachable(e)
        })?;
        if let Err(e) = self.send(line) {
            self.drop_connection();
            if !had {
                return Err(LinkError::Unreachable(e));
            }
            // The connection kept from an earlier line died in between
            // (controld restarted): nothing went out on it, so one new
            // connection may carry the line.
            self.connect().map_err(LinkError::Unreachable)?;
            if let Err(e) = self.send(line) {
                self.drop_connection();
                return Err(LinkError::Unreachable(e));
            }
        }
        let Some((_, r)) = self.conn.as_mut() else {
            return Err(LinkError::Lost(io::Error::new(io::ErrorKind::NotConnected, "not connected")));
        };
        read_response(r).map_err(|e| {
            self.drop_connection();
            LinkError::Lost(e)
        })
    }
}

/// What the shell does with a line before (or instead of) sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// Nothing to do (blank line).
    Nothing,
    /// Leave the shell.
    Exit,
    /// Print these lines.
    Print(Vec<String>),
    /// Print this error.
    Error(String),
    /// Send the line to controld.
    Send(String),
}

/// True when `?` at the end of `line` is outside quotes.
fn ends_with_question_mark(line: &str) -> bool {
    line.ends_with('?') && line.matches('"').count().is_multiple_of(2)
}

/// Decides what a typed line is.
pub fn interpret(line: &str) -> Local {
    let line = line.trim();
    if line.is_empty() {
        return Local::Nothing;
    }
    let lower = line.to_ascii_lowercase();
    if lower == "exit" || lower == "quit" {
        return Local::Exit;
    }
    if lower == "help" || line == "?" {
        return Local::Print(grammar::help());
    }
    if ends_with_question_mark(line) {
        let before = line.get(..line.len() - 1).unwrap_or("");
        return match grammar::possible(before) {
            Ok(words) if words.is_empty() => Local::Print(vec!["(a value: nothing to list)".to_owned()]),
            Ok(words) => Local::Print(words),
            Err(e) => Local::Error(e),
        };
    }
    Local::Send(line.to_owned())
}

/// True after a command that may change the configured names.
fn changes_names(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    matches!(first.as_str(), "set" | "unset" | "exec")
}

/// The line editor's hooks: completion from the command table.
#[derive(Debug, Default)]
struct EditorHooks {
    names: Names,
}

impl Completer for EditorHooks {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(grammar::complete(line, pos, &self.names))
    }
}

impl Hinter for EditorHooks {
    type Hint = String;
}

impl Highlighter for EditorHooks {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _default: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for EditorHooks {}

impl rustyline::Helper for EditorHooks {}

/// The shell's side of controld: the link, whether the names known for
/// completion may be out of date, and the paste in progress.
struct Client {
    link: Link,
    names_stale: bool,
    paste: paste::Paste,
}

impl Client {
    fn new(socket: &Path, names_stale: bool) -> Client {
        Client { link: Link::new(socket.to_owned()), names_stale, paste: paste::Paste::default() }
    }

    /// Runs one line against controld and prints the answer. Returns false
    /// when the line failed (error, or controld unreachable). A `set` line
    /// that names what is not defined yet waits ([`paste`]); a line that
    /// succeeds lets the waiting ones run again.
    fn run_line(&mut self, line: &str) -> Result<bool, ()> {
        let r = self.ask(line)?;
        match r {
            Ok(()) => {
                self.paste.succeeded(line);
                self.run_waiting()?;
                Ok(true)
            }
            Err(e) if paste::waits_for_definition(line, &e) => {
                eprintln!("esprit: {e}");
                eprintln!("esprit: the line waits: it runs again when what it names is defined");
                self.paste.waiting.push((line.to_owned(), e));
                Ok(true)
            }
            Err(e) => {
                eprintln!("esprit: {e}");
                Ok(false)
            }
        }
    }

    /// Sends the waiting lines again, in order, as long as one succeeds.
    fn run_waiting(&mut self) -> Result<(), ()> {
        while !self.paste.waiting.is_empty() {
            let mut progress = false;
            let mut i = 0;
            while i < self.paste.waiting.len() {
                let line = self.paste.waiting[i].0.clone();
                match self.ask(&line)? {
                    Ok(()) => {
                        eprintln!(
                            "esprit: applied the line that waited: {}",
                            esprit_config::lexer::redact(&line)
                        );
                        self.paste.waiting.remove(i);
                        self.paste.succeeded(&line);
                        progress = true;
                    }
                    Err(e) => {
                        self.paste.waiting[i].1 = e;
                        i += 1;
                    }
                }
            }
            if !progress {
                break;
            }
        }
        Ok(())
    }

    /// Reports the lines still waiting when the paste ends: true if there
    /// were some (they failed).
    fn finish(&mut self) -> bool {
        let waiting = std::mem::take(&mut self.paste.waiting);
        for (_, e) in &waiting {
            eprintln!("esprit: never applied (what it names was never defined): {e}");
        }
        !waiting.is_empty()
    }

    /// One line to controld, its output printed: its result, or `Err` when
    /// controld could not be reached.
    fn ask(&mut self, line: &str) -> Result<Result<(), String>, ()> {
        let path = self.link.path().display().to_string();
        match self.link.request(line) {
            Ok(r) => {
                let mut out = io::stdout().lock();
                for l in &r.output {
                    let _ = writeln!(out, "{l}");
                }
                let _ = out.flush();
                if r.result.is_ok() && changes_names(line) {
                    self.names_stale = true;
                }
                Ok(r.result)
            }
            Err(LinkError::Unreachable(e)) => {
                eprintln!("esprit: controld at {path} is not reachable: {e}");
                self.names_stale = true;
                Err(())
            }
            Err(LinkError::Lost(e)) => {
                eprintln!(
                    "esprit: controld at {path} went away ({e}): the command may or may not have run; \
                     the next command connects again"
                );
                self.names_stale = true;
                Err(())
            }
        }
    }

    /// Fetches the configured names (`get config`) when they may have
    /// changed. Quiet: completion just knows fewer names on failure.
    fn refresh_names(&mut self) -> Option<Names> {
        if !self.names_stale {
            return None;
        }
        let r = self.link.request("get config").ok()?;
        r.result.ok()?;
        self.names_stale = false;
        Some(Names::from_config_lines(&r.output))
    }
}

/// Runs the shell until `exit`, `quit` or Ctrl-D. The status: 0, or 1 when
/// the terminal failed. Without a terminal, see [`run_batch`].
pub fn run(opts: &Options) -> u8 {
    if !io::stdin().is_terminal() {
        return run_batch(opts);
    }
    let config = match EditorConfig::builder()
        .max_history_size(HISTORY_SIZE)
        .and_then(|b| b.history_ignore_dups(true))
    {
        // List, as bash and ScreenOS: Tab completes as far as the words
        // agree, a second Tab lists them.
        Ok(b) => {
            b.history_ignore_space(true).auto_add_history(false).completion_type(CompletionType::List).build()
        }
        Err(e) => {
            eprintln!("esprit: line editor: {e}");
            return 1;
        }
    };
    let mut editor: Editor<EditorHooks, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("esprit: line editor: {e}");
            return 1;
        }
    };
    editor.set_helper(Some(EditorHooks::default()));
    if let Some(h) = &opts.history {
        match editor.load_history(h) {
            Ok(()) => {}
            Err(ReadlineError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("esprit: history {}: {e} (starting without)", h.display()),
        }
    }

    let mut s = Client::new(&opts.socket, true);
    println!(
        "esprit shell, controld at {}. Tab completes, ? lists what may follow, help lists the commands; \
         exit or Ctrl-D leaves.",
        opts.socket.display()
    );
    if let Err(e) = s.link.connect() {
        s.link.lost = true;
        eprintln!(
            "esprit: controld at {} is not reachable ({e}): each command tries again",
            opts.socket.display()
        );
    }
    let prompt = format!("{}-> ", opts.prompt_name);
    'lines: loop {
        if let Some(names) = s.refresh_names() {
            if let Some(h) = editor.helper_mut() {
                h.names = names;
            }
        }
        let line = match editor.readline(&prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("esprit: terminal: {e}");
                save_history(&mut editor, opts.history.as_deref());
                return 1;
            }
        };
        // A terminal's bracketed paste arrives as one edited line holding
        // the pasted lines: each runs on its own, in order.
        for line in line.split('\n') {
            // A line that carries a key (`preshare`, `key`) never goes
            // into the history: the file would keep the secret.
            let trimmed = line.trim();
            if !trimmed.is_empty() && esprit_config::lexer::redact(trimmed) == trimmed {
                let _ = editor.add_history_entry(trimmed);
                save_history(&mut editor, opts.history.as_deref());
            }
            match interpret(line) {
                Local::Nothing => {}
                Local::Exit if is_exit(line) && s.paste.exit_closes_context() => {
                    let _ = s.run_line("exit");
                }
                Local::Exit => break 'lines,
                Local::Print(lines) => lines.iter().for_each(|l| println!("{l}")),
                Local::Error(e) => eprintln!("esprit: {e}"),
                Local::Send(cmd) => {
                    let _ = s.run_line(&cmd);
                }
            }
        }
    }
    s.finish();
    save_history(&mut editor, opts.history.as_deref());
    0
}

/// `exit` (not `quit`): it may close a ScreenOS sub-context.
fn is_exit(line: &str) -> bool {
    line.trim().eq_ignore_ascii_case("exit")
}

fn save_history(editor: &mut Editor<EditorHooks, DefaultHistory>, path: Option<&Path>) {
    if let Some(p) = path {
        // Appends what is new, and trims the file to HISTORY_SIZE entries.
        if let Err(e) = editor.append_history(p) {
            eprintln!("esprit: history {}: {e}", p.display());
        }
    }
}

/// Reads command lines from standard input (no terminal): each is run as
/// in the shell, output on stdout, errors on stderr. The status: 0 when
/// every command succeeded, 1 when one failed, 2 when controld could not
/// be reached.
pub fn run_batch(opts: &Options) -> u8 {
    let mut s = Client::new(&opts.socket, false);
    let mut status = 0;
    for line in io::stdin().lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("esprit: standard input: {e}");
                return 1;
            }
        };
        let cmd = match interpret(&line) {
            Local::Nothing => continue,
            Local::Exit if is_exit(&line) && s.paste.exit_closes_context() => "exit".to_owned(),
            Local::Exit => break,
            Local::Print(lines) => {
                lines.iter().for_each(|l| println!("{l}"));
                continue;
            }
            Local::Error(e) => {
                eprintln!("esprit: {e}");
                status = status.max(1);
                continue;
            }
            Local::Send(cmd) => cmd,
        };
        match s.run_line(&cmd) {
            Ok(true) => {}
            Ok(false) => status = status.max(1),
            Err(()) => return 2,
        }
    }
    if s.finish() {
        status = status.max(1);
    }
    status
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::io::operator::write_response;
    use std::os::unix::net::UnixListener;

    #[test]
    fn local_lines() {
        assert_eq!(interpret("  "), Local::Nothing);
        assert_eq!(interpret("EXIT"), Local::Exit);
        assert_eq!(interpret("quit "), Local::Exit);
        assert!(matches!(interpret("?"), Local::Print(_)));
        assert!(matches!(interpret("help"), Local::Print(_)));
        assert_eq!(
            interpret("get sa ?"),
            Local::Print(vec!["active".into(), "stat".into(), "id".into(), "--json".into(), "<cr>".into()])
        );
        assert!(matches!(interpret("bogus ?"), Local::Error(_)));
        assert_eq!(interpret(" get sa "), Local::Send("get sa".into()));
        // A `?` inside quotes is part of a word.
        assert_eq!(
            interpret("set ike gateway g preshare \"why?"),
            Local::Send("set ike gateway g preshare \"why?".into())
        );
    }

    /// A one-connection fake controld: answers each line with `ok: LINE`.
    fn fake_controld(path: &Path) -> std::thread::JoinHandle<()> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut w = conn.try_clone().unwrap();
            for line in BufReader::new(conn).lines() {
                let line = line.unwrap();
                let r = if line == "bad" {
                    Response { output: vec![], result: Err("bad command".into()) }
                } else {
                    Response { output: vec![format!("ok: {line}")], result: Ok(()) }
                };
                write_response(&mut w, &r).unwrap();
            }
        })
    }

    #[test]
    fn link_reconnects_after_controld_restarts() {
        let dir = std::env::temp_dir().join(format!("esprit-shell-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cd.sock");
        let _ = std::fs::remove_file(&path);
        let mut link = Link::new(path.clone());
        assert!(matches!(link.request("get sa"), Err(LinkError::Unreachable(_))));

        let t = fake_controld(&path);
        let r = link.request("get sa").unwrap();
        assert_eq!(r.output, ["ok: get sa"]);
        assert_eq!(link.request("bad").unwrap().result, Err("bad command".into()));
        // controld stops: its end of the kept connection closes.
        link.conn.as_ref().unwrap().0.shutdown(std::net::Shutdown::Write).unwrap();
        t.join().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(link.request("get sa").is_err());
        // ... and comes back: the next line connects again.
        let t = fake_controld(&path);
        assert_eq!(link.request("get config").unwrap().output, ["ok: get config"]);
        drop(link);
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
