//! Errors and warnings.
//!
//! Every error says **where** (the line number when loading a file, and the
//! line itself with its secrets redacted), **which word**, and **what was
//! expected**:
//!
//! ```text
//! line 7: "set vpn test proxy-id local-ip 10.1.1.0/33 remote-ip 10.2.1.0/24 any": bad prefix "10.1.1.0/33": prefix length 33 exceeds 32
//! line 3: "set vpn test tunel": unknown word "tunel" after "set vpn test": expected one of gateway, manual, monitor, id, bind, proxy-id
//! ```
//!
//! Guarantee: no error or warning ever contains a secret (the word after
//! `preshare`, `key` or `password` is shown as `<secret>`), and words are
//! printed with control characters escaped.

use core::fmt;

/// A word or line as it appears in a message: in double quotes, control
/// characters escaped.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("\"")
    }
}

pub(crate) fn q(s: &str) -> Quoted<'_> {
    Quoted(s)
}

/// ` after "WORDS"`, or nothing for the first word of a line.
struct AfterClause<'a>(&'a str);

impl fmt::Display for AfterClause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " after {}", q(self.0))
        }
    }
}

/// What is wrong with one line taken alone: its words, their order, their
/// values. Produced by [`crate::parse_line`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A `"` opened a word and the line ended before the closing `"`.
    #[error("quote not closed (opened at column {column})")]
    UnclosedQuote {
        /// 1-based column of the opening quote.
        column: usize,
    },
    /// A closing quote is followed by more text (`"abc"def`).
    #[error("text right after a closing quote at column {column}: put a space after the quote")]
    TextAfterQuote {
        /// 1-based column of the text.
        column: usize,
    },
    /// A bare word contains `"` (`ab"c`).
    #[error("quote inside a word at column {column}: quotes may only surround a whole word")]
    QuoteInWord {
        /// 1-based column of the quote.
        column: usize,
    },
    /// A word that is not valid where it stands.
    #[error("unknown word {}{}: expected {expected}", q(.word), AfterClause(.after))]
    UnknownWord {
        /// The word as given.
        word: String,
        /// The words before it (secrets redacted).
        after: String,
        /// What could stand there.
        expected: String,
    },
    /// The line ended where a word was needed.
    #[error("missing argument after {}: expected {expected}", q(.after))]
    MissingArgument {
        /// The words before the end (secrets redacted).
        after: String,
        /// What was needed.
        expected: String,
    },
    /// A word in the right place with a value that is not valid.
    #[error("bad {what} {}: {reason}", q(.word))]
    BadValue {
        /// What kind of value (`prefix`, `port`, `SPI`, ...).
        what: &'static str,
        /// The word as given (never a secret: keys are reported as
        /// `<secret>`).
        word: String,
        /// Why it is not valid.
        reason: String,
    },
    /// The same setting twice in one line.
    #[error("{} given twice in one line", q(.word))]
    Repeated {
        /// The keyword.
        word: String,
    },
    /// Algorithms that esprit never uses (RFC 8221, RFC 8247).
    #[error("{subject} uses {algorithm}, which esprit refuses ({rfc}){hint}")]
    Insecure {
        /// What uses it (`proposal "pre-g2-3des-sha"`, `sec-level basic`,
        /// `p1-proposal "x"`).
        subject: String,
        /// The algorithm (`3DES`, `DES`, `MD5`, `DH group 1`).
        algorithm: &'static str,
        /// The RFC that forbids it (`RFC 8221`, `RFC 8247`).
        rfc: &'static str,
        /// A suggestion, starting with `: ` (or empty).
        hint: String,
    },
    /// Something ScreenOS has that esprit does not do.
    #[error("{what} is not supported by esprit: {reason}")]
    Unsupported {
        /// The feature (quoted word or description).
        what: String,
        /// Why, or what to use instead.
        reason: String,
    },
}

/// What is wrong with a line in the context of the configuration: a
/// [`ParseError`], or a conflict with what is already configured, or a
/// cross reference that does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The line itself is malformed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// An attribute line or an `unset` names an object that does not exist.
    #[error("{kind} {} does not exist{hint}", q(.name))]
    NoSuchObject {
        /// `vpn`, `ike gateway`, `interface`, `service`, ...
        kind: &'static str,
        /// Its name.
        name: String,
        /// A suggestion, starting with `: ` (or empty).
        hint: String,
    },
    /// An `unset` of an item that is not configured.
    #[error("{object} has no {item}")]
    NoSuchItem {
        /// The object (`vpn "test"`, `the route table`).
        object: String,
        /// The item (`proxy-id local-ip ...`, `route 10.0.0.0/8 ...`).
        item: String,
    },
    /// A new object needs settings the line does not give.
    #[error("{kind} {} does not exist and the line does not create it: missing {missing}", q(.name))]
    Incomplete {
        /// The kind of object.
        kind: &'static str,
        /// Its name.
        name: String,
        /// What a creating line must also give.
        missing: String,
    },
    /// The line conflicts with what is configured.
    #[error("{0}")]
    Conflict(String),
    /// A manual-key VPN was given a second proxy-ID (esprit lets a
    /// manual-key VPN carry exactly one: its SA's selectors).
    #[error("vpn {} is a manual-key VPN and already has proxy-id {existing}: a manual-key VPN carries exactly one proxy-id, its SA's selectors (esprit; ScreenOS takes none); unset it first, or use an AutoKey IKE VPN (set vpn NAME gateway ...) for several", q(.vpn))]
    ProxyIdOnManualVpn {
        /// The VPN.
        vpn: String,
        /// The proxy-ID it has, in ScreenOS words.
        existing: String,
    },
    /// A VPN already has this proxy-ID.
    #[error("vpn {} already has proxy-id {proxy_id}", q(.vpn))]
    DuplicateProxyId {
        /// The VPN.
        vpn: String,
        /// The proxy-ID in ScreenOS words.
        proxy_id: String,
    },
    /// A reference to an object that is not configured.
    #[error("{referrer} names unknown {kind} {}{hint}", q(.name))]
    UnknownReference {
        /// Who refers (`vpn "test" bind interface`, `route 10.2.1.0/24`).
        referrer: String,
        /// The kind of the missing object.
        kind: &'static str,
        /// Its name.
        name: String,
        /// A suggestion, starting with `: ` (or empty).
        hint: String,
    },
    /// An `unset` would leave a reference dangling.
    #[error("still in use: {0}")]
    InUse(Box<ErrorKind>),
    /// A reference to an object of the wrong kind.
    #[error("{referrer} names {} but {reason}", q(.name))]
    WrongReference {
        /// Who refers.
        referrer: String,
        /// The object referred to.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// An error with its place: the line number (when loading a file) and the
/// line (secrets redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number in the loaded text; `None` for [`crate::Config::apply`].
    pub line: Option<usize>,
    /// The line, trimmed, secrets redacted.
    pub text: String,
    /// What is wrong (boxed: keeps `Result<_, ConfigError>` small).
    pub kind: Box<ErrorKind>,
}

impl ConfigError {
    pub(crate) fn new(line: Option<usize>, raw: &str, kind: impl Into<ErrorKind>) -> ConfigError {
        ConfigError { line, text: crate::lexer::redact(raw), kind: Box::new(kind.into()) }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.line {
            write!(f, "line {n}: ")?;
        }
        if self.text.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", q(&self.text), self.kind)
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.kind)
    }
}

/// Something accepted but worth the operator's attention: a ScreenOS word
/// mapped to a different esprit behaviour, or a setting ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line number in the loaded text; `None` for [`crate::Config::apply`].
    pub line: Option<usize>,
    /// What happened and what to do instead. Never holds a secret.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.line {
            write!(f, "line {n}: ")?;
        }
        write!(f, "warning: {}", self.message)
    }
}
