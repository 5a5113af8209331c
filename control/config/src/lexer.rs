//! The lexer: one configuration line into words.
//!
//! Rules (see `REFERENCE.md`, "Lines and words"):
//!
//! * words are separated by whitespace (spaces, tabs; a trailing `\r` is
//!   whitespace too, so CRLF files load);
//! * a word that starts with `"` runs to the next `"`; the quotes are
//!   removed, and the text between them may hold spaces and `#`. There are
//!   no escapes, so a quoted word cannot contain `"`;
//! * a closing quote must be followed by whitespace or the end of the line,
//!   and a bare word cannot contain `"`;
//! * a line whose first non-blank character is `#` is a comment; blank lines
//!   and comments give no words. `#` elsewhere is an ordinary character
//!   (`preshare "#ABC123"`, or even unquoted `preshare #ABC123`).
//!
//! Guarantee: [`lex`] never panics, whatever the input (it is fuzzed through
//! [`crate::parse_line`]); every error names the column (1-based, in
//! characters) where the problem starts.

use crate::error::ParseError;

/// One word of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// The word, without its quotes.
    pub text: &'a str,
    /// True when it was written in double quotes.
    pub quoted: bool,
    /// Byte offset of the word (of its opening quote, if quoted) in the line.
    pub start: usize,
    /// Byte offset just past the word (past its closing quote, if quoted).
    pub end: usize,
}

/// True for a line that is blank or a comment.
pub fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

fn column(line: &str, byte: usize) -> usize {
    line.get(..byte).map_or(byte, |s| s.chars().count()) + 1
}

/// Splits a line into words. Blank lines and comments give no words.
pub fn lex(line: &str) -> Result<Vec<Token<'_>>, ParseError> {
    lex_inner(line, false)
}

/// Like [`lex`] but never fails: an unclosed quote runs to the end of the
/// line, and stray quotes are kept in words. Used to redact secrets from
/// lines that are echoed in error messages.
pub(crate) fn lex_lenient(line: &str) -> Vec<Token<'_>> {
    lex_inner(line, true).unwrap_or_default()
}

fn lex_inner(line: &str, lenient: bool) -> Result<Vec<Token<'_>>, ParseError> {
    let mut tokens = Vec::new();
    if is_blank_or_comment(line) {
        return Ok(tokens);
    }
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let body_start = start + 1;
            let mut close = None;
            for (i, c) in chars.by_ref() {
                if c == '"' {
                    close = Some(i);
                    break;
                }
            }
            let Some(close) = close else {
                if lenient {
                    tokens.push(Token {
                        text: line.get(body_start..).unwrap_or(""),
                        quoted: true,
                        start,
                        end: line.len(),
                    });
                    break;
                }
                return Err(ParseError::UnclosedQuote { column: column(line, start) });
            };
            let end = close + 1;
            if let Some(&(next, c)) = chars.peek() {
                if !c.is_whitespace() && !lenient {
                    return Err(ParseError::TextAfterQuote { column: column(line, next) });
                }
            }
            tokens.push(Token { text: line.get(body_start..close).unwrap_or(""), quoted: true, start, end });
            continue;
        }
        let mut end = line.len();
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() {
                end = i;
                break;
            }
            if c == '"' && !lenient {
                return Err(ParseError::QuoteInWord { column: column(line, i) });
            }
            chars.next();
        }
        tokens.push(Token { text: line.get(start..end).unwrap_or(""), quoted: false, start, end });
    }
    Ok(tokens)
}

/// Words after which the next word is a secret (`seed-preshare` and
/// `hash-password` are refused, but their words are still never shown). In a `p1-proposal` line
/// `preshare` is the authentication method, not a key.
fn introduces_secret(word: &str, p1_proposal: bool) -> bool {
    let secret_words: &[&str] = if p1_proposal {
        &["key", "password"]
    } else {
        &["preshare", "seed-preshare", "key", "password", "hash-password"]
    };
    secret_words.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// The line with every secret (the word after `preshare`, `seed-preshare`,
/// `key`, `password` or `hash-password`) replaced by `<secret>`, trimmed;
/// safe to print in errors and logs.
pub fn redact(line: &str) -> String {
    let line = line.trim();
    let tokens = lex_lenient(line);
    let p1_proposal = tokens.iter().any(|t| t.text.eq_ignore_ascii_case("p1-proposal"));
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    for pair in tokens.windows(2) {
        if let [before, secret] = pair {
            if !before.quoted && introduces_secret(before.text, p1_proposal) {
                out.push_str(line.get(copied..secret.start).unwrap_or(""));
                out.push_str("<secret>");
                copied = secret.end;
            }
        }
    }
    out.push_str(line.get(copied..).unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<(&str, bool)> {
        lex(line).unwrap().iter().map(|t| (t.text, t.quoted)).collect()
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            words(r#"set interface "tunnel.1" zone "Untrust""#),
            [("set", false), ("interface", false), ("tunnel.1", true), ("zone", false), ("Untrust", true)]
        );
        assert_eq!(words("  set\tvpn  test \r"), [("set", false), ("vpn", false), ("test", false)]);
        assert_eq!(words(r##"preshare "#A B" x"##), [("preshare", false), ("#A B", true), ("x", false)]);
        assert_eq!(words(r#"name """#), [("name", false), ("", true)]);
        assert_eq!(words("preshare #ABC123"), [("preshare", false), ("#ABC123", false)]);
    }

    #[test]
    fn comments_and_blanks() {
        for line in ["", "   ", "# a comment", "   #set vpn x", "\t\r"] {
            assert!(lex(line).unwrap().is_empty(), "{line:?}");
            assert!(is_blank_or_comment(line));
        }
    }

    #[test]
    fn errors_name_the_column() {
        assert_eq!(lex(r#"set vpn "test"#), Err(ParseError::UnclosedQuote { column: 9 }));
        assert_eq!(lex(r#"set vpn "te"st"#), Err(ParseError::TextAfterQuote { column: 13 }));
        assert_eq!(lex(r#"set vpn te"st""#), Err(ParseError::QuoteInWord { column: 11 }));
        assert_eq!(lex("é \"x"), Err(ParseError::UnclosedQuote { column: 3 }));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact(r##" set ike gateway "g" preshare "#ABC 123" sec-level standard "##),
            r#"set ike gateway "g" preshare <secret> sec-level standard"#
        );
        assert_eq!(redact(r#"x preshare "open"#), "x preshare <secret>");
        assert_eq!(
            redact("esp aes128 key 00ff auth sha-1 KEY 11"),
            "esp aes128 key <secret> auth sha-1 KEY <secret>"
        );
        assert_eq!(redact("# preshare x"), "# preshare x");
        assert_eq!(
            redact(r#"set ike gateway g seed-preshare "s e" x"#),
            "set ike gateway g seed-preshare <secret> x"
        );
        assert_eq!(redact("set user u hash-password 02ab"), "set user u hash-password <secret>");
        assert_eq!(
            redact("set ike p1-proposal p preshare group14 esp aes128 sha-1"),
            "set ike p1-proposal p preshare group14 esp aes128 sha-1"
        );
    }
}
