//! Algorithms, IKE proposals and ScreenOS security levels, mapped onto what
//! esprit implements.
//!
//! esprit proposes and accepts only AES (CBC with HMAC-SHA-1 or
//! HMAC-SHA-256, or GCM for ESP) and the Diffie-Hellman groups 2, 5, 14, 15,
//! 19, 20 and 31 (Curve25519, RFC 8031). DES, 3DES and MD5 are refused (RFC 8221 §5, RFC 8247 §2.1),
//! and so is DH group 1 (RFC 8247 §2.4).
//!
//! A proposal is named either by a custom `set ike p1-proposal` /
//! `set ike p2-proposal`, or by a ScreenOS predefined-style name that is
//! read structurally:
//!
//! * phase 1: `pre-gN-CIPHER-HASH` (`pre-g14-aes128-sha`), CIPHER one of
//!   `aes128 aes256`, HASH one of `sha` (SHA-1), `sha256`/`sha2-256`;
//! * phase 2: `nopfs-esp-CIPHER-HASH` or `gN-esp-CIPHER-HASH`
//!   (`g2-esp-aes128-sha`), and for GCM (an esprit addition)
//!   `gN-esp-aes128gcm` / `gN-esp-aes256gcm`.
//!
//! `sec-level` words map as follows (ScreenOS's own meaning in brackets):
//!
//! | word | phase 1 | phase 2 | outcome |
//! |---|---|---|---|
//! | `standard` [pre-g2-3des-sha, pre-g2-aes128-sha / g2-esp-3des-sha, g2-esp-aes128-sha] | pre-g2-aes128-sha | g2-esp-aes128-sha | warning |
//! | `compatible` [3DES and DES with SHA-1 or MD5] | pre-g2-aes128-sha | g2-esp-aes128-sha | warning |
//! | `basic` [pre-g1-des-sha / nopfs-esp-des-sha] | — | — | error |
//!
//! Group 2 is kept for `standard` so that a ScreenOS peer configured with
//! `sec-level standard` still agrees with us; the warning suggests group 14.

use core::fmt;
use std::collections::BTreeMap;

pub use esprit_suite::{DhGroup, Suite};

use crate::error::{q, ParseError};

/// Phase-1 lifetime of the predefined proposals (ScreenOS default), seconds.
pub const DEFAULT_P1_LIFETIME_SECS: u32 = 28_800;
/// Phase-2 lifetime of the predefined proposals (ScreenOS default), seconds.
pub const DEFAULT_P2_LIFETIME_SECS: u32 = 3_600;

const RFC_8221: &str = "RFC 8221";
const RFC_8247: &str = "RFC 8247";

/// The group of an IANA number; `word` names the word for errors. Group 1
/// is refused citing RFC 8247.
pub(crate) fn dh_group(n: u16, word: &str) -> Result<DhGroup, ParseError> {
    if let Some(g) = DhGroup::from_number(n.into()) {
        return Ok(g);
    }
    Err(if n == 1 {
        ParseError::Insecure {
            subject: q(word).to_string(),
            algorithm: "DH group 1 (768-bit MODP)",
            rfc: RFC_8247,
            hint: ": use group14".into(),
        }
    } else {
        ParseError::BadValue {
            what: "DH group",
            word: word.into(),
            reason: "esprit implements groups 2, 5, 14, 15, 19, 20 and 31".into(),
        }
    })
}

/// A block cipher mode: AES-CBC for IKE and ESP, AES-GCM (ESP only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Cipher {
    /// AES-128-CBC (RFC 3602).
    Aes128,
    /// AES-256-CBC (RFC 3602).
    Aes256,
    /// AES-128-GCM with a 16-byte ICV (RFC 4106); ESP only.
    Aes128Gcm,
    /// AES-256-GCM with a 16-byte ICV (RFC 4106); ESP only.
    Aes256Gcm,
}

impl Cipher {
    /// ScreenOS word (`aes128`; `aes128gcm` is esprit's).
    pub const fn word(self) -> &'static str {
        match self {
            Cipher::Aes128 => "aes128",
            Cipher::Aes256 => "aes256",
            Cipher::Aes128Gcm => "aes128gcm",
            Cipher::Aes256Gcm => "aes256gcm",
        }
    }

    /// True for GCM.
    pub const fn is_aead(self) -> bool {
        matches!(self, Cipher::Aes128Gcm | Cipher::Aes256Gcm)
    }

    /// Bytes of key material: the AES key, plus the 4-byte salt for GCM
    /// (RFC 4106 §8.1).
    pub const fn key_len(self) -> usize {
        match self {
            Cipher::Aes128 => 16,
            Cipher::Aes256 => 32,
            Cipher::Aes128Gcm => 20,
            Cipher::Aes256Gcm => 36,
        }
    }

    /// Reads a cipher word; `gcm` allows the GCM words.
    pub(crate) fn parse(word: &str, gcm: bool) -> Result<Cipher, ParseError> {
        let w = word.to_ascii_lowercase();
        let c = match w.as_str() {
            "aes128" => Cipher::Aes128,
            "aes256" => Cipher::Aes256,
            "aes128gcm" if gcm => Cipher::Aes128Gcm,
            "aes256gcm" if gcm => Cipher::Aes256Gcm,
            "des" | "3des" => {
                return Err(ParseError::Insecure {
                    subject: format!("cipher {}", q(word)),
                    algorithm: if w == "des" { "DES" } else { "3DES" },
                    rfc: RFC_8221,
                    hint: ": use aes128 or aes256".into(),
                })
            }
            _ => {
                return Err(ParseError::BadValue {
                    what: "cipher",
                    word: word.into(),
                    reason: if gcm {
                        "expected one of aes128, aes256, aes128gcm, aes256gcm".into()
                    } else {
                        "expected one of aes128, aes256".into()
                    },
                })
            }
        };
        Ok(c)
    }
}

/// An integrity algorithm (IKE PRF/hash and ESP HMAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Hash {
    /// SHA-1 (HMAC-SHA1-96 in ESP, RFC 2404).
    Sha1,
    /// SHA-256 (HMAC-SHA-256-128 in ESP, RFC 4868).
    Sha256,
}

impl Hash {
    /// ScreenOS word of a custom proposal: `sha-1`, `sha2-256`.
    pub const fn word(self) -> &'static str {
        match self {
            Hash::Sha1 => "sha-1",
            Hash::Sha256 => "sha2-256",
        }
    }

    /// Word of a predefined-style proposal name: `sha`, `sha256`.
    pub const fn name_word(self) -> &'static str {
        match self {
            Hash::Sha1 => "sha",
            Hash::Sha256 => "sha256",
        }
    }

    /// Bytes of HMAC key in a manual-key VPN.
    pub const fn key_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }

    /// Reads a hash word: `sha-1`/`sha`/`sha1`, `sha2-256`/`sha256`.
    pub(crate) fn parse(word: &str) -> Result<Hash, ParseError> {
        match word.to_ascii_lowercase().as_str() {
            "sha-1" | "sha" | "sha1" => Ok(Hash::Sha1),
            "sha2-256" | "sha256" => Ok(Hash::Sha256),
            "md5" => Err(ParseError::Insecure {
                subject: format!("hash {}", q(word)),
                algorithm: "MD5",
                rfc: RFC_8221,
                hint: ": use sha-1 or sha2-256".into(),
            }),
            _ => Err(ParseError::BadValue {
                what: "hash",
                word: word.into(),
                reason: "expected one of sha-1, sha2-256".into(),
            }),
        }
    }
}

/// The ESP suite of a cipher word and a hash word (`esp aes128 sha-1`,
/// `g2-esp-aes128-sha`). The readers give a hash exactly when the cipher
/// is CBC; a GCM cipher ignores one, a CBC cipher without one is HMAC-SHA1.
pub const fn esp_suite(cipher: Cipher, integrity: Option<Hash>) -> Suite {
    match (cipher, integrity) {
        (Cipher::Aes128Gcm, _) => Suite::Aes128Gcm16,
        (Cipher::Aes256Gcm, _) => Suite::Aes256Gcm16,
        (Cipher::Aes128, Some(Hash::Sha256)) => Suite::Aes128CbcSha256,
        (Cipher::Aes256, Some(Hash::Sha256)) => Suite::Aes256CbcSha256,
        (Cipher::Aes128, Some(Hash::Sha1) | None) => Suite::Aes128CbcSha1,
        (Cipher::Aes256, Some(Hash::Sha1) | None) => Suite::Aes256CbcSha1,
    }
}

/// The cipher and hash words of an ESP suite: the inverse of [`esp_suite`].
pub const fn esp_words(suite: Suite) -> (Cipher, Option<Hash>) {
    match suite {
        Suite::Aes128Gcm16 => (Cipher::Aes128Gcm, None),
        Suite::Aes256Gcm16 => (Cipher::Aes256Gcm, None),
        Suite::Aes128CbcSha1 => (Cipher::Aes128, Some(Hash::Sha1)),
        Suite::Aes256CbcSha1 => (Cipher::Aes256, Some(Hash::Sha1)),
        Suite::Aes128CbcSha256 => (Cipher::Aes128, Some(Hash::Sha256)),
        Suite::Aes256CbcSha256 => (Cipher::Aes256, Some(Hash::Sha256)),
    }
}

/// One phase-1 (IKE SA) proposal, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct P1Suite {
    /// How the peers authenticate.
    pub auth: P1Auth,
    /// Diffie-Hellman group.
    pub group: DhGroup,
    /// Cipher (CBC).
    pub cipher: Cipher,
    /// Hash.
    pub hash: Hash,
    /// IKE SA lifetime in seconds.
    pub lifetime_secs: u32,
}

impl fmt::Display for P1Suite {
    /// Predefined-style name: `pre-g14-aes128-sha`, `rsa-g14-aes128-sha`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.auth.prefix();
        write!(f, "{prefix}-g{}-{}-{}", self.group.number(), self.cipher.word(), self.hash.name_word())
    }
}

/// Phase-1 authentication: ScreenOS's `preshare` and `rsa-sig`, and
/// esprit's `ecdsa-sig` (RFC 7427 digital signatures, IKEv2 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum P1Auth {
    /// Pre-shared key (`preshare`, names `pre-...`).
    #[default]
    Preshare,
    /// RSA signatures with certificates (`rsa-sig`, names `rsa-...`).
    RsaSig,
    /// ECDSA signatures with certificates (`ecdsa-sig`, names `ecdsa-...`).
    EcdsaSig,
}

impl P1Auth {
    /// The word of `set ike p1-proposal`.
    pub const fn word(self) -> &'static str {
        match self {
            P1Auth::Preshare => "preshare",
            P1Auth::RsaSig => "rsa-sig",
            P1Auth::EcdsaSig => "ecdsa-sig",
        }
    }

    /// The prefix of predefined names.
    pub const fn prefix(self) -> &'static str {
        match self {
            P1Auth::Preshare => "pre",
            P1Auth::RsaSig => "rsa",
            P1Auth::EcdsaSig => "ecdsa",
        }
    }

    /// True for the certificate methods.
    pub const fn uses_certificates(self) -> bool {
        !matches!(self, P1Auth::Preshare)
    }
}

/// One phase-2 (ESP SA) proposal, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct P2Suite {
    /// PFS group; `None` for no PFS.
    pub pfs: Option<DhGroup>,
    /// ESP suite.
    pub esp: Suite,
    /// SA lifetime in seconds.
    pub lifetime_secs: u32,
    /// SA lifetime in kilobytes; `None` for unlimited.
    pub lifetime_kbytes: Option<u32>,
}

impl fmt::Display for P2Suite {
    /// Predefined-style name: `g2-esp-aes128-sha`, `g14-esp-aes128gcm`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (cipher, integrity) = esp_words(self.esp);
        match self.pfs {
            Some(g) => write!(f, "g{}-esp-{}", g.number(), cipher.word())?,
            None => write!(f, "nopfs-esp-{}", cipher.word())?,
        }
        match integrity {
            Some(h) => write!(f, "-{}", h.name_word()),
            None => Ok(()),
        }
    }
}

/// `sec-level standard|compatible|basic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecLevel {
    /// ScreenOS `standard`.
    Standard,
    /// ScreenOS `compatible`.
    Compatible,
    /// ScreenOS `basic` (DES only: always refused).
    Basic,
}

impl SecLevel {
    /// The ScreenOS word.
    pub const fn word(self) -> &'static str {
        match self {
            SecLevel::Standard => "standard",
            SecLevel::Compatible => "compatible",
            SecLevel::Basic => "basic",
        }
    }
}

/// How a gateway or VPN chooses its proposals: a security level or a list
/// of proposal names (custom or predefined-style), in preference order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProposalChoice {
    /// `sec-level WORD`.
    SecLevel(SecLevel),
    /// `proposal "A" ["B" ...]`, up to four names as in ScreenOS.
    Named(Vec<String>),
}

/// A custom `set ike p1-proposal`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct P1Proposal {
    /// Its name.
    pub name: String,
    /// Its suite.
    pub suite: P1Suite,
}

/// A custom `set ike p2-proposal`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct P2Proposal {
    /// Its name.
    pub name: String,
    /// Its suite.
    pub suite: P2Suite,
}

fn group_part(part: &str) -> Option<u16> {
    let digits = part.strip_prefix('g')?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// True when `name` has the shape of a predefined phase-1 name
/// (`pre-gN-...`, `rsa-gN-...`, `dsa-gN-...`); such names are read
/// structurally and cannot be custom names.
pub(crate) fn is_p1_predefined_shape(name: &str) -> bool {
    let mut parts = name.split('-');
    matches!(parts.next(), Some("pre" | "rsa" | "dsa" | "ecdsa"))
        && parts.next().and_then(group_part).is_some()
}

/// True when `name` has the shape of a predefined phase-2 name
/// (`nopfs-esp-...`, `gN-esp-...`, `...-ah-...`).
pub(crate) fn is_p2_predefined_shape(name: &str) -> bool {
    let mut parts = name.split('-');
    let first = parts.next().unwrap_or("");
    (first == "nopfs" || group_part(first).is_some()) && matches!(parts.next(), Some("esp" | "ah"))
}

fn bad_name(name: &str, reason: &str) -> ParseError {
    ParseError::BadValue { what: "proposal", word: name.into(), reason: reason.into() }
}

fn proposal_insecure(name: &str, e: ParseError, hint: &str) -> ParseError {
    match e {
        ParseError::Insecure { algorithm, rfc, .. } => ParseError::Insecure {
            subject: format!("proposal {}", q(name)),
            algorithm,
            rfc,
            hint: hint.into(),
        },
        ParseError::BadValue { reason, .. } => bad_name(name, &reason),
        other => other,
    }
}

const P1_HINT: &str = ": use an AES proposal such as \"pre-g14-aes128-sha\"";
const P2_HINT: &str = ": use an AES proposal such as \"g14-esp-aes128-sha\"";

/// Reads a predefined-style phase-1 name. `Ok(None)` when `name` does not
/// have the shape (it may be a custom proposal).
pub(crate) fn parse_p1_name(name: &str) -> Result<Option<P1Suite>, ParseError> {
    if !is_p1_predefined_shape(name) {
        return Ok(None);
    }
    let parts: Vec<&str> = name.splitn(4, '-').collect();
    let [auth, group, cipher, hash] = parts.as_slice() else {
        return Err(bad_name(name, "expected AUTH-gGROUP-CIPHER-HASH, e.g. pre-g14-aes128-sha"));
    };
    let auth = match *auth {
        "pre" => P1Auth::Preshare,
        "rsa" => P1Auth::RsaSig,
        "ecdsa" => P1Auth::EcdsaSig,
        _ => {
            return Err(ParseError::Unsupported {
                what: format!("proposal {}", q(name)),
                reason: "DSA signatures are not implemented (RFC 8247 §3.2: DSA is not to be used): use a pre-, rsa- or ecdsa- proposal".into(),
            })
        }
    };
    let n = group_part(group).unwrap_or(0);
    // Order of the checks: cipher, hash, group, so that the most telling
    // reason is named first (pre-g1-des-md5 is refused for DES).
    let cipher = Cipher::parse(cipher, false).map_err(|e| proposal_insecure(name, e, P1_HINT))?;
    let hash = Hash::parse(hash).map_err(|e| proposal_insecure(name, e, P1_HINT))?;
    let group = dh_group(n, name).map_err(|e| proposal_insecure(name, e, P1_HINT))?;
    Ok(Some(P1Suite { auth, group, cipher, hash, lifetime_secs: DEFAULT_P1_LIFETIME_SECS }))
}

/// Reads a predefined-style phase-2 name. `Ok(None)` when `name` does not
/// have the shape (it may be a custom proposal).
pub(crate) fn parse_p2_name(name: &str) -> Result<Option<P2Suite>, ParseError> {
    if !is_p2_predefined_shape(name) {
        return Ok(None);
    }
    let parts: Vec<&str> = name.splitn(4, '-').collect();
    let (pfs, proto, cipher, hash) = match parts.as_slice() {
        [pfs, proto, cipher] => (*pfs, *proto, *cipher, None),
        [pfs, proto, cipher, hash] => (*pfs, *proto, *cipher, Some(*hash)),
        _ => return Err(bad_name(name, "expected PFS-esp-CIPHER-HASH, e.g. g14-esp-aes128-sha")),
    };
    if proto == "ah" {
        return Err(ParseError::Unsupported {
            what: format!("proposal {}", q(name)),
            reason: "esprit does ESP only, not AH".into(),
        });
    }
    let c = Cipher::parse(cipher, true).map_err(|e| proposal_insecure(name, e, P2_HINT))?;
    let integrity = match (c.is_aead(), hash) {
        (true, None) => None,
        (true, Some(_)) => return Err(bad_name(name, "GCM carries its own integrity: drop the hash")),
        (false, None) => return Err(bad_name(name, "a CBC cipher needs a hash (RFC 8221 §5)")),
        (false, Some(h)) => Some(Hash::parse(h).map_err(|e| proposal_insecure(name, e, P2_HINT))?),
    };
    let pfs = match group_part(pfs) {
        None => None,
        Some(n) => Some(dh_group(n, name).map_err(|e| proposal_insecure(name, e, P2_HINT))?),
    };
    Ok(Some(P2Suite {
        pfs,
        esp: esp_suite(c, integrity),
        lifetime_secs: DEFAULT_P2_LIFETIME_SECS,
        lifetime_kbytes: None,
    }))
}

/// The outcome of resolving a [`ProposalChoice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved<T> {
    /// The usable suites, in preference order.
    pub(crate) suites: Vec<T>,
    /// Warnings for the operator (sec-level mapping, dropped members).
    pub(crate) warnings: Vec<String>,
    /// Names that are neither custom nor predefined-style.
    pub(crate) unknown: Vec<String>,
}

fn sec_level_p1(level: SecLevel) -> Result<(P1Suite, String), ParseError> {
    let suite = P1Suite {
        auth: P1Auth::Preshare,
        group: DhGroup::Modp1024,
        cipher: Cipher::Aes128,
        hash: Hash::Sha1,
        lifetime_secs: DEFAULT_P1_LIFETIME_SECS,
    };
    match level {
        SecLevel::Standard => Ok((
            suite,
            "sec-level standard is pre-g2-3des-sha and pre-g2-aes128-sha in ScreenOS; esprit refuses 3DES (RFC 8221) \
             and proposes only pre-g2-aes128-sha: consider proposal \"pre-g14-aes128-sha\""
                .into(),
        )),
        SecLevel::Compatible => Ok((
            suite,
            "sec-level compatible is 3DES and DES with SHA-1 or MD5 in ScreenOS, all refused by esprit (RFC 8221); \
             esprit proposes pre-g2-aes128-sha instead: consider proposal \"pre-g14-aes128-sha\""
                .into(),
        )),
        SecLevel::Basic => Err(ParseError::Insecure {
            subject: "sec-level basic".into(),
            algorithm: "DES",
            rfc: RFC_8221,
            hint: P1_HINT.into(),
        }),
    }
}

fn sec_level_p2(level: SecLevel) -> Result<(P2Suite, String), ParseError> {
    let suite = P2Suite {
        pfs: Some(DhGroup::Modp1024),
        esp: Suite::Aes128CbcSha1,
        lifetime_secs: DEFAULT_P2_LIFETIME_SECS,
        lifetime_kbytes: None,
    };
    match level {
        SecLevel::Standard => Ok((
            suite,
            "sec-level standard is g2-esp-3des-sha and g2-esp-aes128-sha in ScreenOS; esprit refuses 3DES (RFC 8221) \
             and proposes only g2-esp-aes128-sha: consider proposal \"g14-esp-aes128-sha\""
                .into(),
        )),
        SecLevel::Compatible => Ok((
            suite,
            "sec-level compatible is 3DES and DES with SHA-1 or MD5 in ScreenOS, all refused by esprit (RFC 8221); \
             esprit proposes g2-esp-aes128-sha instead: consider proposal \"g14-esp-aes128-sha\""
                .into(),
        )),
        SecLevel::Basic => Err(ParseError::Insecure {
            subject: "sec-level basic".into(),
            algorithm: "DES",
            rfc: RFC_8221,
            hint: P2_HINT.into(),
        }),
    }
}

/// Resolves a choice against the custom proposals. Errors: `sec-level
/// basic`, a malformed or unsupported predefined-style name, or a list whose
/// every member is refused (the error names the first). Refused members of
/// a list that has usable ones are dropped with a warning.
pub(crate) fn resolve_p1(
    choice: &ProposalChoice,
    custom: &BTreeMap<String, P1Proposal>,
) -> Result<Resolved<P1Suite>, ParseError> {
    resolve(choice, |name| {
        if let Some(p) = custom.get(name) {
            return Ok(Some(p.suite));
        }
        parse_p1_name(name)
    })
}

/// Phase-2 counterpart of [`resolve_p1`].
pub(crate) fn resolve_p2(
    choice: &ProposalChoice,
    custom: &BTreeMap<String, P2Proposal>,
) -> Result<Resolved<P2Suite>, ParseError> {
    resolve(choice, |name| {
        if let Some(p) = custom.get(name) {
            return Ok(Some(p.suite));
        }
        parse_p2_name(name)
    })
}

trait SecLevelSuite: Sized {
    fn for_level(level: SecLevel) -> Result<(Self, String), ParseError>;
}

impl SecLevelSuite for P1Suite {
    fn for_level(level: SecLevel) -> Result<(Self, String), ParseError> {
        sec_level_p1(level)
    }
}

impl SecLevelSuite for P2Suite {
    fn for_level(level: SecLevel) -> Result<(Self, String), ParseError> {
        sec_level_p2(level)
    }
}

fn resolve<T: SecLevelSuite>(
    choice: &ProposalChoice,
    lookup: impl Fn(&str) -> Result<Option<T>, ParseError>,
) -> Result<Resolved<T>, ParseError> {
    let mut out = Resolved { suites: Vec::new(), warnings: Vec::new(), unknown: Vec::new() };
    match choice {
        ProposalChoice::SecLevel(level) => {
            let (suite, warning) = T::for_level(*level)?;
            out.suites.push(suite);
            out.warnings.push(warning);
        }
        ProposalChoice::Named(names) => {
            let mut refused = Vec::new();
            for name in names {
                match lookup(name) {
                    Ok(Some(suite)) => out.suites.push(suite),
                    Ok(None) => out.unknown.push(name.clone()),
                    Err(e @ ParseError::Insecure { .. }) => refused.push(e),
                    Err(e) => return Err(e),
                }
            }
            if out.suites.is_empty() && out.unknown.is_empty() {
                if let Some(first) = refused.into_iter().next() {
                    return Err(first);
                }
            } else {
                for e in refused {
                    if let ParseError::Insecure { subject, algorithm, rfc, .. } = e {
                        out.warnings.push(format!(
                            "{subject} uses {algorithm}, which esprit refuses ({rfc}): it is left out of the negotiation"
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_names() {
        let p = parse_p1_name("pre-g14-aes128-sha").unwrap().unwrap();
        assert_eq!((p.group, p.cipher, p.hash), (DhGroup::Modp2048, Cipher::Aes128, Hash::Sha1));
        assert_eq!(p.to_string(), "pre-g14-aes128-sha");
        assert_eq!(
            parse_p1_name("pre-g19-aes256-sha2-256").unwrap().unwrap().to_string(),
            "pre-g19-aes256-sha256"
        );
        let p = parse_p2_name("g2-esp-aes128-sha").unwrap().unwrap();
        assert_eq!(p.esp.name(), "aes128-sha1");
        assert_eq!(p.pfs, Some(DhGroup::Modp1024));
        let p = parse_p2_name("nopfs-esp-aes256-sha256").unwrap().unwrap();
        assert_eq!((p.pfs, p.esp.name()), (None, "aes256-sha256"));
        let p = parse_p2_name("g14-esp-aes128gcm").unwrap().unwrap();
        assert_eq!(p.esp.name(), "aes128gcm16");
        assert_eq!(p.to_string(), "g14-esp-aes128gcm");
        // Curve25519 (RFC 8031) by its number, as the other groups.
        let p = parse_p2_name("g31-esp-aes128gcm").unwrap().unwrap();
        assert_eq!((p.pfs, p.to_string().as_str()), (Some(DhGroup::Curve25519), "g31-esp-aes128gcm"));
        let p = parse_p1_name("pre-g31-aes128-sha256").unwrap().unwrap();
        assert_eq!((p.group, p.to_string().as_str()), (DhGroup::Curve25519, "pre-g31-aes128-sha256"));
        assert_eq!(parse_p1_name("my-proposal").unwrap(), None);
        assert_eq!(parse_p2_name("g14-custom").unwrap(), None);
    }

    #[test]
    fn refused_names() {
        for (name, msg) in [
            (
                "pre-g2-3des-sha",
                "proposal \"pre-g2-3des-sha\" uses 3DES, which esprit refuses (RFC 8221): use an AES proposal such as \"pre-g14-aes128-sha\"",
            ),
            (
                "pre-g1-des-md5",
                "proposal \"pre-g1-des-md5\" uses DES, which esprit refuses (RFC 8221): use an AES proposal such as \"pre-g14-aes128-sha\"",
            ),
            (
                "pre-g2-aes128-md5",
                "proposal \"pre-g2-aes128-md5\" uses MD5, which esprit refuses (RFC 8221): use an AES proposal such as \"pre-g14-aes128-sha\"",
            ),
            (
                "pre-g1-aes128-sha",
                "proposal \"pre-g1-aes128-sha\" uses DH group 1 (768-bit MODP), which esprit refuses (RFC 8247): use an AES proposal such as \"pre-g14-aes128-sha\"",
            ),
            (
                "dsa-g2-aes128-sha",
                "proposal \"dsa-g2-aes128-sha\" is not supported by esprit: DSA signatures are not implemented (RFC 8247 §3.2: DSA is not to be used): use a pre-, rsa- or ecdsa- proposal",
            ),
            ("pre-g2-aes192-sha", "bad proposal \"pre-g2-aes192-sha\": expected one of aes128, aes256"),
            ("pre-g24-aes128-sha", "bad proposal \"pre-g24-aes128-sha\": esprit implements groups 2, 5, 14, 15, 19, 20 and 31"),
        ] {
            assert_eq!(parse_p1_name(name).unwrap_err().to_string(), msg);
        }
        assert!(matches!(
            parse_p2_name("nopfs-esp-3des-md5"),
            Err(ParseError::Insecure { algorithm: "3DES", .. })
        ));
        assert!(matches!(parse_p2_name("g2-ah-aes128-sha"), Err(ParseError::Unsupported { .. })));
        assert!(matches!(parse_p2_name("g2-esp-aes128"), Err(ParseError::BadValue { .. })));
        assert!(matches!(parse_p2_name("g2-esp-aes128gcm-sha"), Err(ParseError::BadValue { .. })));
    }

    #[test]
    fn sec_levels_and_lists() {
        let none = BTreeMap::new();
        let r = resolve_p1(&ProposalChoice::SecLevel(SecLevel::Standard), &none).unwrap();
        assert_eq!(r.suites.len(), 1);
        assert_eq!(r.suites[0].to_string(), "pre-g2-aes128-sha");
        assert_eq!(r.warnings.len(), 1);
        let r = resolve_p2(&ProposalChoice::SecLevel(SecLevel::Compatible), &BTreeMap::new()).unwrap();
        assert_eq!(r.suites[0].to_string(), "g2-esp-aes128-sha");
        assert!(resolve_p1(&ProposalChoice::SecLevel(SecLevel::Basic), &none).is_err());
        let list = ProposalChoice::Named(vec!["pre-g2-3des-sha".into(), "pre-g14-aes128-sha".into()]);
        let r = resolve_p1(&list, &none).unwrap();
        assert_eq!(r.suites.len(), 1);
        assert_eq!(
            r.warnings,
            ["proposal \"pre-g2-3des-sha\" uses 3DES, which esprit refuses (RFC 8221): it is left out of the negotiation"]
        );
        let only_3des = ProposalChoice::Named(vec!["pre-g2-3des-sha".into(), "pre-g2-3des-md5".into()]);
        assert!(matches!(resolve_p1(&only_3des, &none), Err(ParseError::Insecure { algorithm: "3DES", .. })));
        let custom = ProposalChoice::Named(vec!["pre-g2-3des-sha".into(), "mine".into()]);
        let r = resolve_p1(&custom, &none).unwrap();
        assert_eq!(r.unknown, ["mine"]);
    }
}
