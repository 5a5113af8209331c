//! ScreenOS lines esprit keeps without enforcing them.
//!
//! Every saved ScreenOS configuration has zones, an address book and
//! policies; esprit has none of them (traffic enters a VPN by the route
//! table and leaves it by the proxy-IDs, `REFERENCE.md` §8). Pasting such a
//! configuration must not stop at the first `set policy`, and saving it
//! back must not lose the operator's lines. So these lines are accepted,
//! **kept** in their order and printed back by `get config` and `save`
//! in the same words, with a warning (once per kind of line) that esprit
//! does not enforce them:
//!
//! * `set zone ...`, `set address ...`, `set group ...` (the address book
//!   and its groups), `set policy ...`, `set clock ...`, `set hostname ...`
//!   and the `unset` of each (an `unset` removes the kept lines it names,
//!   by their first words; one that names none is kept itself, as ScreenOS
//!   saves some `unset` lines);
//! * a policy's sub-context: after `set policy id N` alone, every `set` or
//!   `unset` line up to `exit` belongs to policy N (`set dst-address ...`,
//!   `set service ...`, `set log ...`), is kept with it and goes with
//!   `unset policy id N`.
//!
//! Accepted and dropped, with a warning: `set vrouter ...`, `unset
//! auto-route-export`, `unset add-default-route` (esprit has one routing
//! table; ScreenOS's `set route` lines inside a vrouter's context are
//! esprit's routes), `set interface NAME route|nat` (esprit routes and
//! never translates addresses), and `exit` outside a policy's context.
//!
//! Guarantee: nothing here panics on any input; at most [`MAX_KEPT_LINES`]
//! lines are kept (a hostile paste cannot grow the configuration without
//! bound); no kept line holds a secret (the kinds above carry none).

use crate::lexer::Token;

/// Most lines kept.
pub const MAX_KEPT_LINES: usize = 10_000;

/// The first words (after `set` / `unset`) of lines kept.
const KEPT_WORDS: [&str; 6] = ["zone", "address", "group", "policy", "clock", "hostname"];

/// The first words of lines accepted and dropped: a virtual router's
/// lines (ScreenOS saves them around its `set route` lines).
const DROPPED_WORDS: [&str; 3] = ["vrouter", "auto-route-export", "add-default-route"];

/// What a kept line does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `set ...`.
    Set,
    /// `unset ...`.
    Unset,
    /// `exit` (closes a policy's context).
    Exit,
}

/// One line kept (or dropped) without being enforced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeptLine {
    /// `set`, `unset` or `exit`.
    pub verb: Verb,
    /// The words after the verb, each with whether it was quoted.
    pub words: Vec<(String, bool)>,
    /// What the warning names: `zone`, `address`, `policy`, ...; `vrouter`
    /// and `interface` for lines dropped; `exit`.
    pub kind: &'static str,
}

impl KeptLine {
    /// The line in its words: quoted words in quotes, one blank between.
    pub fn text(&self) -> String {
        let mut out = String::from(match self.verb {
            Verb::Set => "set",
            Verb::Unset => "unset",
            Verb::Exit => "exit",
        });
        for (w, quoted) in &self.words {
            out.push(' ');
            if *quoted {
                out.push('"');
                out.push_str(w);
                out.push('"');
            } else {
                out.push_str(w);
            }
        }
        out
    }

    /// The words, lowercased without quotes (to find what an `unset` names).
    pub(crate) fn key(&self) -> Vec<String> {
        self.words.iter().map(|(w, _)| w.to_ascii_lowercase()).collect()
    }

    /// True for a line that is accepted and dropped, not kept.
    pub fn is_dropped(&self) -> bool {
        matches!(self.kind, "vrouter" | "interface")
    }

    /// `set policy id N` alone: opens policy N's context.
    pub(crate) fn opens_policy(&self) -> bool {
        self.verb == Verb::Set && self.kind == "policy" && self.words.len() == 3 && self.key()[1] == "id"
    }

    /// The warning said once per kind.
    pub(crate) fn warning(&self) -> Option<String> {
        let kind = self.kind;
        Some(match kind {
            "exit" => return None,
            "vrouter" => "set vrouter (and its auto-route-export, add-default-route) is ignored: esprit has one routing table (the set route lines, wherever they stand)".into(),
            "interface" => "set interface NAME route/nat is ignored: esprit routes and never translates addresses".into(),
            "clock" | "hostname" => format!(
                "set {kind} lines are kept and saved back, but esprit does not apply them (the host's clock and name are the system's)"
            ),
            _ => format!(
                "set {kind} lines are kept and saved back, but esprit does not enforce them: it has no zones, address book or policies (a route into a tunnel interface sends traffic into a VPN, its proxy-IDs decide which SA carries it)"
            ),
        })
    }
}

/// Where the printed configuration puts a kind's lines (see
/// `Config::to_lines`): 0 at the top, 1 after the interfaces, 2 after the
/// VPNs.
fn print_group(kind: &str) -> u8 {
    match kind {
        "clock" | "hostname" | "zone" => 0,
        "address" | "group" => 1,
        _ => 2,
    }
}

fn words(tokens: &[Token<'_>]) -> Vec<(String, bool)> {
    tokens.iter().map(|t| (t.text.to_owned(), t.quoted)).collect()
}

fn verb(t: &Token<'_>) -> Option<Verb> {
    match t.text.to_ascii_lowercase().as_str() {
        "set" => Some(Verb::Set),
        "unset" => Some(Verb::Unset),
        _ => None,
    }
}

/// The line, if it is one of those kept or dropped (module documentation);
/// `None` for every other line (the parser's).
pub(crate) fn parse_kept(tokens: &[Token<'_>]) -> Option<KeptLine> {
    let first = tokens.first()?;
    if tokens.len() == 1 && first.text.eq_ignore_ascii_case("exit") && !first.quoted {
        return Some(KeptLine { verb: Verb::Exit, words: Vec::new(), kind: "exit" });
    }
    let verb = verb(first)?;
    let second = tokens.get(1)?.text.to_ascii_lowercase();
    if let Some(kind) = KEPT_WORDS.iter().find(|w| **w == second) {
        if tokens.len() < 3 {
            return None;
        }
        return Some(KeptLine { verb, words: words(&tokens[1..]), kind });
    }
    if DROPPED_WORDS.contains(&second.as_str()) {
        return Some(KeptLine { verb, words: words(&tokens[1..]), kind: "vrouter" });
    }
    // set interface NAME route|nat
    let mode = tokens.get(3).map(|t| t.text.to_ascii_lowercase());
    if verb == Verb::Set
        && second == "interface"
        && tokens.len() == 4
        && matches!(mode.as_deref(), Some("route" | "nat"))
    {
        return Some(KeptLine { verb, words: words(&tokens[1..]), kind: "interface" });
    }
    None
}

/// A line inside a policy's context: any `set` or `unset` line (`None`
/// for `exit` and every other line).
pub(crate) fn parse_policy_setting(tokens: &[Token<'_>]) -> Option<KeptLine> {
    let verb = verb(tokens.first()?)?;
    (tokens.len() >= 2).then(|| KeptLine { verb, words: words(&tokens[1..]), kind: "policy" })
}

/// One kept line with what an `unset` finds it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeptEntry {
    pub(crate) line: KeptLine,
    /// Its own words, or its policy's (`policy id N`) for a line of a
    /// policy's context.
    pub(crate) key: Vec<String>,
}

/// The kept lines and the open policy context.
#[derive(Debug, Clone, Default)]
pub(crate) struct Kept {
    pub(crate) entries: Vec<KeptEntry>,
    /// The policy whose context is open (`policy id N`), if one is.
    pub(crate) context: Option<Vec<String>>,
    /// The kinds already warned about.
    pub(crate) warned: std::collections::BTreeSet<&'static str>,
}

/// Two configurations are equal when they keep the same lines: which
/// kinds were warned about, and a policy context left open, are the
/// history of a load, not configuration (a saved configuration loads back
/// equal without them).
impl PartialEq for Kept {
    fn eq(&self, other: &Kept) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Kept {}

impl Kept {
    /// Applies a kept line; returns its warnings, or why it is refused.
    pub(crate) fn apply(&mut self, line: &KeptLine) -> Result<Vec<String>, String> {
        let mut warnings = Vec::new();
        if self.warned.insert(line.kind) {
            warnings.extend(line.warning());
        }
        if line.is_dropped() {
            return Ok(warnings);
        }
        if self.entries.len() >= MAX_KEPT_LINES {
            return Err(format!(
                "{MAX_KEPT_LINES} lines of zones, addresses and policies are kept already: esprit keeps no more"
            ));
        }
        match line.verb {
            Verb::Exit => {
                // ScreenOS closes a context; only a policy's is kept.
                if let Some(key) = self.context.take() {
                    self.insert(KeptEntry { line: line.clone(), key });
                }
            }
            Verb::Set => {
                let key = match &self.context {
                    Some(policy) => policy.clone(),
                    None => line.key(),
                };
                if line.opens_policy() && self.context.is_none() {
                    self.context = Some(key.clone());
                }
                if !self.entries.iter().any(|e| e.line == *line && e.key == key) {
                    self.insert(KeptEntry { line: line.clone(), key });
                }
            }
            Verb::Unset => {
                if let Some(policy) = &self.context {
                    let key = policy.clone();
                    self.insert(KeptEntry { line: line.clone(), key });
                    return Ok(warnings);
                }
                let named = line.key();
                let before = self.entries.len();
                self.entries.retain(|e| !e.key.starts_with(&named));
                if self.entries.len() == before {
                    self.insert(KeptEntry { line: line.clone(), key: named });
                }
            }
        }
        Ok(warnings)
    }

    /// Stores `entry` after every entry of its print group and before the
    /// later groups, so that the entries are in the order `to_lines` prints
    /// them (zones, then addresses, then policies): a saved configuration
    /// loads back equal. Within a group, the order is the operator's.
    fn insert(&mut self, entry: KeptEntry) {
        let group = print_group(entry.line.kind);
        let at =
            self.entries.iter().position(|e| print_group(e.line.kind) > group).unwrap_or(self.entries.len());
        self.entries.insert(at, entry);
    }

    /// The kept lines of these kinds, in their order.
    pub(crate) fn lines(&self, kinds: &[&str]) -> impl Iterator<Item = String> + '_ {
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        self.entries
            .iter()
            .filter(move |e| {
                let kind = if e.line.kind == "exit" { "policy" } else { e.line.kind };
                kinds.iter().any(|k| k == kind)
            })
            .map(|e| e.line.text())
    }
}
