//! The words of the operator commands as one table: what Tab completes,
//! what `?` lists and what `help` prints all come from [`COMMANDS`], so
//! the three never disagree.
//!
//! The `set`/`unset` part follows the configuration language's parser
//! (`control/config/src/parse.rs`); a test feeds every keyword position of
//! the table to that parser and checks that it expects exactly the words
//! the table offers, so a keyword added to the language and not here fails
//! the build's tests.
//!
//! Pure: no I/O. Completion never panics on any line or cursor position.

use std::collections::BTreeSet;

use esprit_config::Config;

/// One position of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A keyword, completed as written here (matched case-insensitively).
    Word(&'static str),
    /// The name of a configured object, completed from the running
    /// configuration.
    Name(NameKind),
    /// A value typed by the operator (an address, a number, a key): never
    /// completed; the text says what is expected.
    Value(&'static str),
}

/// The kinds of configured objects whose names can be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NameKind {
    /// `set vpn NAME`.
    Vpn,
    /// `set ike gateway NAME`.
    Gateway,
    /// `set interface NAME` (ports and `tunnel.N`).
    Interface,
    /// `set ike p1-proposal NAME`.
    P1Proposal,
    /// `set ike p2-proposal NAME`.
    P2Proposal,
    /// A custom service (`set service NAME`), and `ANY`.
    Service,
    /// `set user NAME`.
    User,
    /// `set user-group NAME`.
    UserGroup,
    /// What `dialup` names: a user or a user group.
    Dialup,
}

impl NameKind {
    fn label(self) -> &'static str {
        match self {
            NameKind::Vpn => "<vpn>",
            NameKind::Gateway => "<gateway>",
            NameKind::Interface => "<interface>",
            NameKind::P1Proposal => "<p1-proposal>",
            NameKind::P2Proposal => "<p2-proposal>",
            NameKind::Service => "<service>",
            NameKind::User => "<user>",
            NameKind::UserGroup => "<user-group>",
            NameKind::Dialup => "<user or user-group>",
        }
    }
}

/// A node of the command tree.
#[derive(Debug)]
pub struct Node {
    /// What this position holds.
    pub slot: Slot,
    /// The words up to here already make a whole command (`get sa`); the
    /// ones below are optional.
    pub complete: bool,
    /// An option of a list that may follow in any order (`set route P
    /// interface I gateway G metric M`): once its own words are given, the
    /// list is offered again.
    pub again: bool,
    /// What may follow.
    pub next: &'static [Node],
}

const fn kw(word: &'static str, next: &'static [Node]) -> Node {
    Node { slot: Slot::Word(word), complete: false, again: false, next }
}
/// A keyword that ends a whole command (more words optional).
const fn end(word: &'static str, next: &'static [Node]) -> Node {
    Node { slot: Slot::Word(word), complete: true, again: false, next }
}
/// A keyword of an option list (see [`Node::again`]).
const fn opt(word: &'static str, next: &'static [Node]) -> Node {
    Node { slot: Slot::Word(word), complete: true, again: true, next }
}
const fn name(kind: NameKind, complete: bool, next: &'static [Node]) -> Node {
    Node { slot: Slot::Name(kind), complete, again: false, next }
}
const fn val(what: &'static str, complete: bool, next: &'static [Node]) -> Node {
    Node { slot: Slot::Value(what), complete, again: false, next }
}

const ONE_VALUE_END: &[Node] = &[val("<value>", true, &[])];
/// The DH group of a proposal: the numbers of `esprit_suite::DhGroup`
/// (a test checks they are all named here).
const P1_GROUP: &[Node] = &[val("<group2|5|14|15|19|20|31> esp ...", true, &[])];
const P2_GROUP: &[Node] = &[val("<no-pfs|group2|5|14|15|19|20|31> esp ...", true, &[])];
const INTERFACE_END: &[Node] = &[name(NameKind::Interface, true, &[])];
const PREFIX: &str = "<A.B.C.D/L>";

/// `local-ip P remote-ip P SERVICE` of a proxy-ID.
const PROXY_ID_REST: &[Node] =
    &[val(PREFIX, false, &[kw("remote-ip", &[val(PREFIX, false, &[name(NameKind::Service, true, &[])])])])];

const SEC_LEVELS: &[Node] = &[opt("standard", &[]), opt("compatible", &[]), opt("basic", &[])];

/// After `set ike gateway NAME` (parse.rs `GATEWAY_WORDS`).
const GATEWAY_SETTINGS: &[Node] = &[
    opt("address", &[val("<A.B.C.D>", true, &[])]),
    opt("dialup", &[name(NameKind::Dialup, true, &[])]),
    opt("dynamic", &[val("<peer identity>", true, &[])]),
    opt("Main", &[]),
    opt("Aggr", &[]),
    opt("outgoing-interface", INTERFACE_END),
    opt("preshare", &[val("<key>", true, &[])]),
    opt("sec-level", SEC_LEVELS),
    opt("proposal", &[name(NameKind::P1Proposal, true, &[])]),
    opt("nat-traversal", &[]),
    opt("dpd-liveness", &[]),
    opt("local-id", &[val("<identity>", true, &[])]),
    opt("peer-id", &[val("<identity>", true, &[])]),
    opt(
        "cert",
        &[kw("my-cert", &[val("<local-cert>", true, &[])]), kw("peer-ca", &[val("<ca-cert>", true, &[])])],
    ),
    opt("fragmentation", &[kw("size", &[val("<576-16000>", true, &[])]), kw("disable", &[])]),
];

/// `set pki ...`.
const PKI: &[Node] = &[
    kw(
        "local-cert",
        &[val(
            "<name>",
            false,
            &[kw(
                "certificate",
                &[val("<PEM file>", false, &[kw("key", &[val("<PKCS#8 PEM file>", true, &[])])])],
            )],
        )],
    ),
    kw("ca-cert", &[val("<name>", false, &[kw("file", &[val("<PEM file>", true, &[])])])]),
];

/// After `set vpn NAME gateway GATEWAY`.
const AUTOKEY_OPTIONS: &[Node] = &[
    opt("replay", &[]),
    opt("no-replay", &[]),
    opt("tunnel", &[]),
    opt("esn", &[]),
    opt("idletime", &[val("<minutes>", true, &[])]),
    opt("sec-level", SEC_LEVELS),
    opt("proposal", &[name(NameKind::P2Proposal, true, &[])]),
];

const MONITOR_OPTIONS: &[Node] = &[
    opt("source-interface", INTERFACE_END),
    opt("destination-ip", &[val("<A.B.C.D>", true, &[])]),
    opt("optimized", &[]),
    opt("rekey", &[]),
];

/// After `set vpn NAME` (parse.rs `VPN_WORDS`).
const VPN_SETTINGS: &[Node] = &[
    kw("gateway", &[name(NameKind::Gateway, true, AUTOKEY_OPTIONS)]),
    kw("proxy-id", &[end("check", &[]), kw("local-ip", PROXY_ID_REST)]),
    end("monitor", MONITOR_OPTIONS),
    kw("id", &[val("<HEX ID 0x1 ...>", true, &[kw("bind", &[kw("interface", INTERFACE_END)])])]),
    kw("bind", &[kw("interface", INTERFACE_END)]),
    kw(
        "manual",
        &[val(
            "<local SPI>",
            false,
            &[val(
                "<remote SPI>",
                false,
                &[kw(
                    "gateway",
                    &[val(
                        "<A.B.C.D>",
                        false,
                        &[kw(
                            "outgoing-interface",
                            &[name(
                                NameKind::Interface,
                                false,
                                &[kw("esp", &[val("<cipher> key <hex> ...", true, &[])])],
                            )],
                        )],
                    )],
                )],
            )],
        )],
    ),
    end("withdraw-routes", &[]),
];

/// `vpn NAME` after the next hop of an `nhtb` entry.
const NHTB_VPN: &[Node] = &[kw("vpn", &[name(NameKind::Vpn, true, &[])])];

const INTERFACE_SETTINGS: &[Node] = &[
    kw("zone", &[val("<zone>", true, &[])]),
    kw("ip", &[kw("unnumbered", &[kw("interface", INTERFACE_END)]), val("<A.B.C.D/L>", true, &[])]),
    kw("mtu", &[val("<576-9216>", true, &[])]),
    kw("port", &[val("<Linux device>", true, &[])]),
    kw("manage", &[val("<service>", true, &[])]),
    kw("nhtb", &[val("<peer's tunnel A.B.C.D>", false, NHTB_VPN)]),
];

/// `[share-limit N]` after a user's identity.
const SHARE_LIMIT: &[Node] = &[kw("share-limit", &[val("<1-10000>", true, &[])])];

/// After `set user NAME` (parse.rs `USER_WORDS`).
const USER_SETTINGS: &[Node] = &[
    kw("uid", &[val("<1-65535>", true, &[])]),
    kw(
        "ike-id",
        &[
            kw("u-fqdn", &[val("<user@domain>", true, SHARE_LIMIT)]),
            kw("fqdn", &[val("<domain>", true, SHARE_LIMIT)]),
            kw("ip", &[val("<A.B.C.D>", true, SHARE_LIMIT)]),
        ],
    ),
    kw("type", &[end("ike", &[])]),
    end("enable", &[]),
    end("disable", &[]),
];

/// After `set user-group NAME`.
const USER_GROUP_SETTINGS: &[Node] = &[
    // Each takes a word after it: the line is not whole without it.
    Node { slot: Slot::Word("location"), complete: false, again: true, next: &[end("local", &[])] },
    Node { slot: Slot::Word("id"), complete: false, again: true, next: &[val("<1-65535>", true, &[])] },
    kw("user", &[name(NameKind::User, true, &[])]),
];

const SET: &[Node] = &[
    kw("interface", &[name(NameKind::Interface, false, INTERFACE_SETTINGS)]),
    kw(
        "route",
        &[val(
            PREFIX,
            false,
            &[
                opt("interface", INTERFACE_END),
                opt("gateway", &[val("<A.B.C.D>", true, &[])]),
                opt("metric", &[val("<1-65535>", true, &[])]),
            ],
        )],
    ),
    kw(
        "ike",
        &[
            kw(
                "gateway",
                &[
                    kw("ikev2", &[name(NameKind::Gateway, false, GATEWAY_SETTINGS)]),
                    name(NameKind::Gateway, false, GATEWAY_SETTINGS),
                ],
            ),
            kw(
                "p1-proposal",
                &[val(
                    "<name>",
                    false,
                    &[kw("preshare", P1_GROUP), kw("rsa-sig", P1_GROUP), kw("ecdsa-sig", P1_GROUP)],
                )],
            ),
            kw("p2-proposal", &[val("<name>", false, P2_GROUP)]),
        ],
    ),
    kw("vpn", &[name(NameKind::Vpn, false, VPN_SETTINGS)]),
    kw("service", &[val("<name>", false, &[kw("protocol", ONE_VALUE_END), kw("+", ONE_VALUE_END)])]),
    kw(
        "vpnmonitor",
        &[
            opt("interval", &[val("<seconds>", true, &[])]),
            opt("threshold", &[val("<lost probes>", true, &[])]),
        ],
    ),
    kw("flow", &[end("tcp-mss", &[val("<64-65535>", true, &[])])]),
    kw("user", &[name(NameKind::User, false, USER_SETTINGS)]),
    kw("user-group", &[name(NameKind::UserGroup, false, USER_GROUP_SETTINGS)]),
    kw("pki", PKI),
];

const UNSET: &[Node] = &[
    kw(
        "interface",
        &[name(
            NameKind::Interface,
            true,
            &[
                end("zone", &[]),
                end("ip", &[]),
                end("mtu", &[]),
                end("port", &[]),
                end("manage", &[]),
                kw("nhtb", &[val("<A.B.C.D>", true, NHTB_VPN)]),
            ],
        )],
    ),
    kw(
        "route",
        &[val(
            PREFIX,
            true,
            &[end(
                "interface",
                &[name(NameKind::Interface, true, &[end("gateway", &[val("<A.B.C.D>", true, &[])])])],
            )],
        )],
    ),
    kw(
        "ike",
        &[
            kw(
                "gateway",
                &[name(
                    NameKind::Gateway,
                    true,
                    &[
                        end("nat-traversal", &[]),
                        end("dpd-liveness", &[]),
                        end("local-id", &[]),
                        end("peer-id", &[]),
                        end("cert", &[]),
                        end("fragmentation", &[]),
                    ],
                )],
            ),
            kw("p1-proposal", &[name(NameKind::P1Proposal, true, &[])]),
            kw("p2-proposal", &[name(NameKind::P2Proposal, true, &[])]),
        ],
    ),
    kw(
        "vpn",
        &[name(
            NameKind::Vpn,
            true,
            &[
                end("monitor", &[]),
                kw("bind", &[end("interface", &[])]),
                end("proxy-id", &[end("check", &[]), kw("local-ip", PROXY_ID_REST)]),
                end("withdraw-routes", &[]),
            ],
        )],
    ),
    kw("service", &[name(NameKind::Service, true, &[kw("+", ONE_VALUE_END)])]),
    end("vpnmonitor", &[end("interval", &[]), end("threshold", &[])]),
    kw("flow", &[end("tcp-mss", &[])]),
    kw("user", &[name(NameKind::User, true, &[end("ike-id", &[]), end("type", &[]), end("uid", &[])])]),
    kw("user-group", &[name(NameKind::UserGroup, true, &[kw("user", &[name(NameKind::User, true, &[])])])]),
    kw("pki", &[kw("local-cert", &[val("<name>", true, &[])]), kw("ca-cert", &[val("<name>", true, &[])])]),
];

/// `--json` after a whole `get` command: one JSON document instead of the
/// table.
const JSON: &[Node] = &[end("--json", &[])];

/// Every command the shell knows, as a tree of words.
pub static COMMANDS: &[Node] = &[
    kw(
        "get",
        &[
            end(
                "sa",
                &[
                    end("active", JSON),
                    end("stat", JSON),
                    kw("id", &[val("<HEX ID>", true, JSON)]),
                    end("--json", &[]),
                ],
            ),
            kw("ike", &[end("cookies", JSON)]),
            end("vpn", &[name(NameKind::Vpn, true, JSON), end("--json", &[])]),
            end("interface", &[name(NameKind::Interface, true, JSON), end("--json", &[])]),
            end("route", JSON),
            end("counter", JSON),
            end("event", JSON),
            end("config", &[end("secrets", &[end("--json", &[])]), end("--json", &[])]),
        ],
    ),
    kw("set", SET),
    kw("unset", UNSET),
    kw("clear", &[end("sa", &[val("<HEX ID>", true, &[])])]),
    end("save", &[]),
    kw("exec", &[end("reload", &[]), kw("confirm", &[end("manual-keys", &[])])]),
    end("exit", &[]),
    end("quit", &[]),
    end("help", &[]),
];

/// Names of the configured objects, for completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    names: BTreeSet<(NameKind, String)>,
}

impl Names {
    /// The names in a configuration (as `get config` prints it).
    pub fn from_config(config: &Config) -> Names {
        let mut names = BTreeSet::new();
        names.extend(config.vpns().map(|v| (NameKind::Vpn, v.name.clone())));
        names.extend(config.gateways().map(|g| (NameKind::Gateway, g.name.clone())));
        names.extend(config.interfaces().map(|i| (NameKind::Interface, i.name.to_string())));
        names.extend(config.p1_proposals().map(|p| (NameKind::P1Proposal, p.name.clone())));
        names.extend(config.p2_proposals().map(|p| (NameKind::P2Proposal, p.name.clone())));
        names.extend(config.services().map(|s| (NameKind::Service, s.name.clone())));
        names.extend(config.users().map(|u| (NameKind::User, u.name.clone())));
        names.extend(config.user_groups().map(|g| (NameKind::UserGroup, g.name.clone())));
        names.insert((NameKind::Service, "ANY".to_owned()));
        Names { names }
    }

    /// The names in `get config` output lines, read from the words that
    /// name an object (`set vpn NAME ...`): the output has its keys masked
    /// so it does not load as a configuration, and the shell never
    /// asks for them. A line that does not lex is skipped.
    pub fn from_config_lines(lines: &[String]) -> Names {
        let mut names = BTreeSet::new();
        names.insert((NameKind::Service, "ANY".to_owned()));
        for line in lines {
            let Ok(tokens) = esprit_config::lexer::lex(line) else { continue };
            let words: Vec<String> = tokens.iter().map(|t| t.text.to_owned()).collect();
            let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
            let (kind, at) = match lower.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["set", "vpn", _, ..] => (NameKind::Vpn, 2),
                ["set", "interface", _, ..] => (NameKind::Interface, 2),
                ["set", "service", _, ..] => (NameKind::Service, 2),
                ["set", "user", _, ..] => (NameKind::User, 2),
                ["set", "user-group", _, ..] => (NameKind::UserGroup, 2),
                ["set", "ike", "gateway", _, ..] => (NameKind::Gateway, 3),
                ["set", "ike", "p1-proposal", _, ..] => (NameKind::P1Proposal, 3),
                ["set", "ike", "p2-proposal", _, ..] => (NameKind::P2Proposal, 3),
                _ => continue,
            };
            if let Some(name) = words.get(at) {
                names.insert((kind, name.clone()));
            }
        }
        Names { names }
    }

    fn of(&self, kind: NameKind) -> impl Iterator<Item = &str> {
        let wanted = move |k: NameKind| match kind {
            NameKind::Dialup => matches!(k, NameKind::User | NameKind::UserGroup),
            _ => k == kind,
        };
        self.names.iter().filter(move |(k, _)| wanted(*k)).map(|(_, n)| n.as_str())
    }
}

/// A line split at the cursor: the whole words before it, and the word
/// being typed (from `start`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    words: Vec<String>,
    start: usize,
    partial: String,
    quoted: bool,
}

/// Splits `line` as the configuration lexer reads words: whitespace
/// between words, `"..."` around a word with spaces.
fn split(line: &str) -> Split {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut in_quote = false;
    let mut quoted = false;
    let mut start = 0;
    for (i, ch) in line.char_indices() {
        if in_quote {
            if ch == '"' {
                in_quote = false;
            } else {
                current.push(ch);
            }
        } else if ch.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut current));
                in_word = false;
                quoted = false;
            }
        } else {
            if !in_word {
                in_word = true;
                start = i;
            }
            if ch == '"' {
                in_quote = true;
                quoted = true;
            } else {
                current.push(ch);
            }
        }
    }
    if !in_word {
        start = line.len();
    }
    Split { words, start, partial: current, quoted }
}

fn matches(slot: Slot, word: &str) -> bool {
    match slot {
        Slot::Word(w) => w.eq_ignore_ascii_case(word),
        Slot::Name(_) | Slot::Value(_) => true,
    }
}

/// The nodes that may come after `words`, or `None` when the words leave
/// the table (an unknown command).
pub fn next_nodes<S: AsRef<str>>(words: &[S]) -> Option<&'static [Node]> {
    let mut list: &'static [Node] = COMMANDS;
    let mut options: Option<&'static [Node]> = None;
    for word in words {
        let word = word.as_ref();
        if list.is_empty() {
            list = options?;
        }
        // A keyword beats a name or value at the same position.
        let node = list
            .iter()
            .find(|n| matches!(n.slot, Slot::Word(_)) && matches(n.slot, word))
            .or_else(|| list.iter().find(|n| !matches!(n.slot, Slot::Word(_))))?;
        if node.again {
            options = Some(list);
        }
        list = node.next;
    }
    if list.is_empty() {
        if let Some(o) = options {
            return Some(o);
        }
    }
    Some(list)
}

/// Quotes a name as the lexer needs it.
fn quote_if_needed(name: &str, force: bool) -> String {
    if force || name.is_empty() || name.contains(char::is_whitespace) || name.starts_with('#') {
        format!("\"{name}\"")
    } else {
        name.to_owned()
    }
}

/// Completes the word under the cursor: where the replaced text starts,
/// and the candidates (a single one ends with a space, ready for the next
/// word).
pub fn complete(line: &str, pos: usize, names: &Names) -> (usize, Vec<String>) {
    let before = line.get(..pos).unwrap_or(line);
    let s = split(before);
    let Some(nodes) = next_nodes(&s.words) else { return (s.start, Vec::new()) };
    let prefix = s.partial.to_ascii_lowercase();
    let mut out: Vec<String> = Vec::new();
    for n in nodes {
        match n.slot {
            Slot::Word(w) => {
                if w.to_ascii_lowercase().starts_with(&prefix) && !s.quoted {
                    out.push(w.to_owned());
                }
            }
            Slot::Name(kind) => {
                for name in names.of(kind) {
                    if name.to_ascii_lowercase().starts_with(&prefix) {
                        out.push(quote_if_needed(name, s.quoted));
                    }
                }
            }
            Slot::Value(_) => {}
        }
    }
    out.dedup();
    if let [one] = out.as_mut_slice() {
        one.push(' ');
    }
    (s.start, out)
}

fn label(slot: Slot) -> String {
    match slot {
        Slot::Word(w) => w.to_owned(),
        Slot::Name(k) => k.label().to_owned(),
        Slot::Value(v) => v.to_owned(),
    }
}

/// What `?` shows after `line`: the possible next words (or the words
/// that start as the last one typed), and `<cr>` when the line is already
/// a whole command.
pub fn possible(line: &str) -> Result<Vec<String>, String> {
    let s = split(line);
    let words = s.words;
    let prefix = s.partial.to_ascii_lowercase();
    let nodes = next_nodes(&words).ok_or_else(|| format!("{:?}: unknown command; type help", line.trim()))?;
    let mut out: Vec<String> = nodes
        .iter()
        .filter(|n| match n.slot {
            Slot::Word(w) => w.to_ascii_lowercase().starts_with(&prefix),
            _ => prefix.is_empty(),
        })
        .map(|n| label(n.slot))
        .collect();
    if prefix.is_empty() && ends_command(&words) {
        out.push("<cr>".to_owned());
    }
    Ok(out)
}

/// True when `words` make a whole command.
fn ends_command<S: AsRef<str>>(words: &[S]) -> bool {
    let mut list: &'static [Node] = COMMANDS;
    let mut options: Option<&'static [Node]> = None;
    let mut complete = false;
    for word in words {
        let word = word.as_ref();
        if list.is_empty() {
            match options {
                Some(o) => list = o,
                None => return false,
            }
        }
        let node = list
            .iter()
            .find(|n| matches!(n.slot, Slot::Word(_)) && matches(n.slot, word))
            .or_else(|| list.iter().find(|n| !matches!(n.slot, Slot::Word(_))));
        let Some(node) = node else { return false };
        if node.again {
            options = Some(list);
        }
        complete = node.complete;
        list = node.next;
    }
    complete
}

/// A one-line synopsis of a node and what follows it, down to `depth`
/// more keywords (`...` past that; names and values do not count).
fn synopsis(node: &Node, depth: usize) -> String {
    let mut s = label(node.slot);
    if node.next.is_empty() {
        return s;
    }
    let word = matches!(node.slot, Slot::Word(_));
    if word && depth == 0 {
        s.push_str(" ...");
        return s;
    }
    let depth = if word { depth - 1 } else { depth };
    let alternatives: Vec<String> = node.next.iter().map(|n| synopsis(n, depth)).collect();
    let inner = alternatives.join(" | ");
    if node.complete {
        s.push_str(&format!(" [{inner}]"));
    } else if alternatives.len() == 1 {
        s.push_str(&format!(" {inner}"));
    } else {
        s.push_str(&format!(" {{{inner}}}"));
    }
    s
}

/// What `help` prints: one line per command, from the table.
pub fn help() -> Vec<String> {
    let mut out = Vec::new();
    for top in COMMANDS {
        if top.next.is_empty() {
            out.push(label(top.slot));
            continue;
        }
        for second in top.next {
            let depth = if matches!(top.slot, Slot::Word("set" | "unset")) { 1 } else { 3 };
            out.push(format!("{} {}", label(top.slot), synopsis(second, depth)));
        }
    }
    out.push("? (alone, or after words: what may come next)".to_owned());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn names() -> Names {
        let (config, _) = Config::load(
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set interface tunnel.1 zone Untrust\n\
             set ike gateway \"to gw2\" address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"k\" sec-level standard\n\
             set vpn p11 gateway \"to gw2\" sec-level standard\n\
             set vpn p12 gateway \"to gw2\" sec-level standard\n\
             set vpn west gateway \"to gw2\" sec-level standard\n\
             set user alice ike-id u-fqdn alice@example.net\n\
             set user alice type ike\n\
             set user \"al bundy\" ike-id fqdn bundy.example.net\n\
             set user-group road location local\n",
        )
        .unwrap();
        Names::from_config(&config)
    }

    fn c(line: &str) -> Vec<String> {
        complete(line, line.len(), &names()).1
    }

    /// The shell learns the names from `get config`, whose keys are
    /// masked: every name is found all the same.
    #[test]
    fn names_come_from_masked_config_lines() {
        let (config, _) = Config::load(
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set interface tunnel.1 zone Untrust\n\
             set ike gateway \"to gw2\" address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"k\" sec-level standard\n\
             set ike p2-proposal \"my p2\" no-pfs esp aes128gcm second 3600\n\
             set service web protocol tcp src-port 0-65535 dst-port 80-80\n\
             set vpn west gateway \"to gw2\" proposal \"my p2\"\n\
             set vpn lab manual 3001 4001 gateway 203.0.113.3 outgoing-interface ethernet0/2 esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213\n",
        )
        .unwrap();
        let masked = crate::show::masked_lines(&config);
        assert!(masked.iter().any(|l| l.contains("key \"********\"")), "{masked:?}");
        assert_eq!(Names::from_config_lines(&masked), Names::from_config(&config));
        assert_eq!(Names::from_config_lines(&["set vpn \"unclosed".to_owned()]).of(NameKind::Vpn).count(), 0);
    }

    #[test]
    fn command_words_complete() {
        assert_eq!(complete("get s", 5, &Names::default()), (4, vec!["sa ".to_owned()]));
        assert_eq!(c("g"), ["get "]);
        assert_eq!(c("s"), ["set", "save"]);
        assert_eq!(c("get sa "), ["active", "stat", "id", "--json"]);
        assert_eq!(c("get vpn "), ["p11", "p12", "west", "--json"]);
        assert_eq!(c("get vpn west -"), ["--json "]);
        assert_eq!(c("get route --"), ["--json "]);
        assert_eq!(c("get ike c"), ["cookies "]);
        assert_eq!(c("GET SA ST"), ["stat "]);
        assert_eq!(c("exec r"), ["reload "]);
        assert_eq!(c("set ike "), ["gateway", "p1-proposal", "p2-proposal"]);
        assert!(c("nonsense ").is_empty());
        assert!(c("get sa id ").is_empty());
    }

    #[test]
    fn names_complete_from_the_configuration() {
        assert_eq!(c("set vpn p1"), ["p11", "p12"]);
        assert_eq!(c("unset vpn w"), ["west "]);
        assert_eq!(c("set vpn p11 gateway "), ["\"to gw2\" "]);
        assert_eq!(c("set vpn x gateway \"to"), ["\"to gw2\" "]);
        assert_eq!(c("set interface t"), ["tunnel.1 "]);
        assert_eq!(c("set vpn p11 bind interface e"), ["ethernet0/2 "]);
        // Options come back after each one.
        assert_eq!(c("set vpn p11 gateway \"to gw2\" no-replay s"), ["sec-level "]);
        assert_eq!(c("set ike gateway g address 1.2.3.4 M"), ["Main "]);
        assert_eq!(c("set route 0.0.0.0/0 interface ethernet0/2 m"), ["metric "]);
    }

    #[test]
    fn users_groups_and_nhtb_complete() {
        assert_eq!(c("set u"), ["user", "user-group"]);
        assert_eq!(c("set user a"), ["\"al bundy\"", "alice"]);
        assert_eq!(c("set user alice "), ["uid", "ike-id", "type", "enable", "disable"]);
        assert_eq!(c("set user alice ike-id "), ["u-fqdn", "fqdn", "ip"]);
        assert_eq!(c("set user alice ike-id u-fqdn alice@example.net s"), ["share-limit "]);
        assert_eq!(c("set user alice type "), ["ike "]);
        assert_eq!(c("set user-group r"), ["road "]);
        assert_eq!(c("set user-group road "), ["location", "id", "user"]);
        assert_eq!(c("set user-group road location "), ["local "]);
        assert_eq!(c("set user-group road user al"), ["\"al bundy\"", "alice"]);
        // dialup names a user or a group.
        assert_eq!(c("set ike gateway d dialup "), ["\"al bundy\"", "alice", "road"]);
        assert_eq!(c("set ike gateway d dialup r"), ["road "]);
        assert_eq!(c("set interface tunnel.1 n"), ["nhtb "]);
        assert_eq!(c("set interface tunnel.1 nhtb 169.254.1.2 "), ["vpn "]);
        assert_eq!(c("set interface tunnel.1 nhtb 169.254.1.2 vpn w"), ["west "]);
        assert_eq!(c("unset interface tunnel.1 nhtb 169.254.1.2 "), ["vpn "]);
        assert_eq!(c("unset user alice "), ["ike-id", "type", "uid"]);
        assert_eq!(c("unset user-group road "), ["user "]);
        assert_eq!(possible("set ike gateway d dialup ").unwrap(), ["<user or user-group>", "<cr>"]);
        assert_eq!(possible("set user ").unwrap(), ["<user>"]);
        assert_eq!(possible("unset user-group road ").unwrap(), ["user", "<cr>"]);
        let lines =
            ["set user \"al bundy\" enable".to_owned(), "set user-group \"road\" location local".to_owned()];
        let names = Names::from_config_lines(&lines);
        assert_eq!(names.of(NameKind::Dialup).collect::<Vec<_>>(), ["al bundy", "road"]);
    }

    #[test]
    fn completion_survives_any_line_and_cursor() {
        for line in ["", " ", "\"", "get \"sa", "set vpn \"a b", "é get", "?", "set ike gateway \"\" "] {
            for pos in 0..=line.len() + 2 {
                let _ = complete(line, pos, &names());
                let _ = possible(line.get(..pos).unwrap_or(line));
            }
        }
    }

    #[test]
    fn question_mark_lists_what_comes_next() {
        assert_eq!(possible("get sa ").unwrap(), ["active", "stat", "id", "--json", "<cr>"]);
        assert_eq!(possible("get vpn ").unwrap(), ["<vpn>", "--json", "<cr>"]);
        assert_eq!(possible("get i").unwrap(), ["ike", "interface"]);
        assert_eq!(possible("set vpn ").unwrap(), ["<vpn>"]);
        assert!(possible("frobnicate ").is_err());
    }

    /// `?` after a proposal's method names every DH group esprit
    /// implements, and only those.
    #[test]
    fn proposal_groups_listed_are_the_implemented_ones() {
        let p1 = possible("set ike p1-proposal p preshare ").unwrap();
        let p2 = possible("set ike p2-proposal p ").unwrap();
        assert_eq!(p1, ["<group2|5|14|15|19|20|31> esp ..."]);
        assert_eq!(p2, ["<no-pfs|group2|5|14|15|19|20|31> esp ..."]);
        let numbers: Vec<String> =
            esprit_config::proposal::DhGroup::ALL.iter().map(|g| g.number().to_string()).collect();
        assert_eq!(format!("<group{}> esp ...", numbers.join("|")), p1[0]);
    }

    #[test]
    fn help_lists_every_command() {
        let h = help();
        for want in [
            "get sa [active [--json] | stat [--json] | id <HEX ID> [--json] | --json]",
            "get ike cookies [--json]",
            "get vpn [<vpn> [--json] | --json]",
            "clear sa [<HEX ID>]",
            "exec reload",
            "save",
            "exit",
        ] {
            assert!(h.iter().any(|l| l == want), "{want:?} missing from {h:#?}");
        }
        assert!(h.iter().any(|l| l.starts_with("set vpn <vpn> {gateway ")), "{h:#?}");
    }

    /// The words the configuration parser expects after `prefix`, read
    /// from its error message, and whether the end of line is allowed.
    fn parser_expects(prefix: &str) -> (BTreeSet<String>, bool) {
        let line = format!("{prefix} zzzz-not-a-keyword");
        let e = Config::new().apply(&line).unwrap_err().to_string();
        let list = e.rsplit_once(": expected ").map(|(_, l)| l).unwrap_or_else(|| panic!("{line}: {e}"));
        let end_ok = list.ends_with(", or end of line");
        let list = list.trim_end_matches(", or end of line");
        let list = list.strip_prefix("one of ").unwrap_or(list);
        (list.split(", ").map(str::to_owned).collect(), end_ok)
    }

    /// Every keyword position of the `set`/`unset` table against the parser.
    #[test]
    fn set_and_unset_keywords_are_the_parsers() {
        for prefix in [
            "set",
            "unset",
            "set ike",
            "unset ike",
            "set interface ethernet0/1",
            "set ike gateway g",
            "set vpn v",
            "set vpn v proxy-id",
            "set vpn v gateway g",
            "set vpn v monitor",
            "unset interface ethernet0/1",
            "unset ike gateway g",
            "unset vpn v",
            "unset vpn v proxy-id",
            "set route 10.0.0.0/8 interface ethernet0/1",
            "set ike gateway g address 192.0.2.1",
            "set flow",
            "unset flow",
            "set user u",
            "set user u ike-id",
            "set user u type",
            "set user-group g",
            "set user-group g location",
            "unset user u",
            "unset user-group g",
            "set interface tunnel.1",
            "unset interface tunnel.1",
        ] {
            let words: Vec<&str> = prefix.split(' ').collect();
            let nodes = next_nodes(&words).unwrap();
            let table: BTreeSet<String> = nodes
                .iter()
                .filter_map(|n| match n.slot {
                    Slot::Word(w) => Some(w.to_owned()),
                    _ => None,
                })
                .collect();
            let (mut parser, end_ok) = parser_expects(prefix);
            // Refused by the parser with an error of its own: not offered.
            parser.remove("transport");
            assert_eq!(parser, table, "{prefix:?}");
            assert_eq!(end_ok, ends_command(&words), "{prefix:?}: end of line allowed?");
        }
    }
}
