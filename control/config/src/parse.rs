//! The parser: one line of words into a [`Command`].
//!
//! Guarantee: [`parse_line`] never panics, on any input; it either returns a
//! command whose values are all valid on their own, or a [`ParseError`]
//! naming the offending word, the words before it and what was expected.
//! Keywords are case-insensitive and may be quoted; names keep their case.

use std::net::IpAddr;

use esprit_policy::{PolicyError, PortRange, Prefix, Service};

use crate::error::{q, ParseError};
use crate::lexer::{lex, Token};
use crate::model::*;
use crate::proposal::{
    is_p1_predefined_shape, is_p2_predefined_shape, Cipher, DhGroup, Hash, P1Auth, P1Proposal, P1Suite,
    P2Proposal, P2Suite, ProposalChoice, SecLevel,
};
use crate::secret::Secret;

/// Longest object name (VPN, gateway, service, proposal, zone, dialup).
pub const MAX_NAME: usize = 63;
/// Most proposals in one `proposal` list (as in ScreenOS).
pub const MAX_PROPOSALS: usize = 4;

/// Parses one line. Blank lines and comments give `Ok(None)`.
pub fn parse_line(line: &str) -> Result<Option<Command>, ParseError> {
    let tokens = lex(line)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    if let Some(k) = crate::kept::parse_kept(&tokens) {
        return Ok(Some(Command::Kept(k)));
    }
    let mut c = Cursor::new(&tokens);
    let command = match c.keyword(&["set", "unset"])? {
        "set" => Command::Set(parse_set(&mut c)?),
        _ => Command::Unset(parse_unset(&mut c)?),
    };
    c.end()?;
    Ok(Some(command))
}

fn one_of(options: &[&str]) -> String {
    match options {
        [one] => (*one).to_string(),
        _ => format!("one of {}", options.join(", ")),
    }
}

fn one_of_or_end(options: &[&str]) -> String {
    format!("one of {}, or end of line", options.join(", "))
}

struct Cursor<'t, 'a> {
    tokens: &'t [Token<'a>],
    pos: usize,
    secret: Vec<bool>,
}

impl<'t, 'a> Cursor<'t, 'a> {
    fn new(tokens: &'t [Token<'a>]) -> Self {
        Cursor { tokens, pos: 0, secret: vec![false; tokens.len()] }
    }

    /// The words consumed so far, secrets redacted.
    fn after(&self) -> String {
        let mut out = String::new();
        for (i, t) in self.tokens.iter().take(self.pos).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            if self.secret.get(i).copied().unwrap_or(true) {
                out.push_str("<secret>");
            } else {
                out.push_str(t.text);
            }
        }
        out
    }

    fn peek(&self) -> Option<&'t Token<'a>> {
        self.tokens.get(self.pos)
    }

    fn missing(&self, expected: impl Into<String>) -> ParseError {
        ParseError::MissingArgument { after: self.after(), expected: expected.into() }
    }

    fn unknown(&self, word: &str, expected: impl Into<String>) -> ParseError {
        ParseError::UnknownWord { word: word.into(), after: self.after(), expected: expected.into() }
    }

    /// The next word, whatever it is.
    fn word(&mut self, expected: &str) -> Result<&'a str, ParseError> {
        let t = self.peek().ok_or_else(|| self.missing(expected))?;
        self.pos += 1;
        Ok(t.text)
    }

    /// The next word, which must be one of `options`.
    fn keyword(&mut self, options: &[&'static str]) -> Result<&'static str, ParseError> {
        let t = self.peek().ok_or_else(|| self.missing(one_of(options)))?;
        match options.iter().find(|o| o.eq_ignore_ascii_case(t.text)) {
            Some(k) => {
                self.pos += 1;
                Ok(k)
            }
            None => Err(self.unknown(t.text, one_of(options))),
        }
    }

    /// The next word if it is one of `options`.
    fn try_keyword(&mut self, options: &[&'static str]) -> Option<&'static str> {
        let t = self.peek()?;
        let k = options.iter().find(|o| o.eq_ignore_ascii_case(t.text))?;
        self.pos += 1;
        Some(k)
    }

    /// The next word of an options loop: one of `options`, or `None` at the
    /// end of the line.
    fn option(&mut self, options: &[&'static str]) -> Result<Option<&'static str>, ParseError> {
        match self.peek() {
            None => Ok(None),
            Some(t) => match self.try_keyword(options) {
                Some(k) => Ok(Some(k)),
                None => Err(self.unknown(t.text, one_of_or_end(options))),
            },
        }
    }

    fn end(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(self.unknown(t.text, "end of line")),
        }
    }

    /// The next word, checked by `f`.
    fn value<T>(
        &mut self,
        expected: &str,
        f: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        let w = self.word(expected)?;
        f(w)
    }

    /// The next word, a secret: never echoed in errors.
    fn secret(&mut self, expected: &str) -> Result<&'a str, ParseError> {
        let t = self.peek().ok_or_else(|| self.missing(expected))?;
        if let Some(s) = self.secret.get_mut(self.pos) {
            *s = true;
        }
        self.pos += 1;
        Ok(t.text)
    }

    fn name(&mut self, what: &'static str) -> Result<String, ParseError> {
        self.value(what, |w| check_name(what, w))
    }

    fn interface(&mut self) -> Result<InterfaceName, ParseError> {
        self.value("an interface name", InterfaceName::new)
    }

    fn number(&mut self, what: &'static str, min: u32, max: u32) -> Result<u32, ParseError> {
        let expected = format!("{} {what} from {min} to {max}", article(what));
        self.value(&expected, |w| decimal(what, w, min, max))
    }

    fn address(&mut self, what: &'static str) -> Result<IpAddr, ParseError> {
        self.value("an IPv4 or IPv6 address", |w| address(what, w))
    }

    /// Records a setting keyword of an options loop; refuses it twice.
    fn once(&self, seen: &mut Vec<&'static str>, group: &'static str) -> Result<(), ParseError> {
        if seen.contains(&group) {
            let word = self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)).map_or(group, |t| t.text);
            return Err(ParseError::Repeated { word: word.into() });
        }
        seen.push(group);
        Ok(())
    }
}

fn article(word: &str) -> &'static str {
    match word.bytes().next() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u' | b'M') => "an",
        _ => "a",
    }
}

fn check_name(what: &'static str, w: &str) -> Result<String, ParseError> {
    if w.is_empty() || w.chars().count() > MAX_NAME || w.chars().any(char::is_control) {
        return Err(ParseError::BadValue {
            what,
            word: w.into(),
            reason: format!("expected 1 to {MAX_NAME} printable characters"),
        });
    }
    Ok(w.into())
}

fn decimal(what: &'static str, w: &str, min: u32, max: u32) -> Result<u32, ParseError> {
    let bad = |reason: String| ParseError::BadValue { what, word: w.into(), reason };
    if w.is_empty() || w.len() > 10 || !w.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("not a decimal number".into()));
    }
    match w.parse::<u64>() {
        Ok(n) if n >= u64::from(min) && n <= u64::from(max) => {
            u32::try_from(n).map_err(|_| bad("too large".into()))
        }
        _ => Err(bad(format!("expected a number from {min} to {max}"))),
    }
}

fn hex_u32(what: &'static str, w: &str, min: u32) -> Result<u32, ParseError> {
    let digits = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")).unwrap_or(w);
    let bad = |reason: String| ParseError::BadValue { what, word: w.into(), reason };
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("expected a hexadecimal number of at most 8 digits".into()));
    }
    let n = u32::from_str_radix(digits, 16).map_err(|_| bad("not hexadecimal".into()))?;
    if n < min {
        return Err(bad(format!("expected at least {min:#x}")));
    }
    Ok(n)
}

fn address(what: &'static str, w: &str) -> Result<IpAddr, ParseError> {
    w.parse().map_err(|_| ParseError::BadValue {
        what,
        word: w.into(),
        reason: "expected an IPv4 or IPv6 address (esprit does not resolve names)".into(),
    })
}

/// Reads a prefix (`10.1.1.0/24`; a bare address is a host prefix).
pub(crate) fn prefix(w: &str) -> Result<Prefix, ParseError> {
    let bad = |reason: String| ParseError::BadValue { what: "prefix", word: w.into(), reason };
    if let Some((a, l)) = w.split_once('/') {
        if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) {
            let n: u32 = l.parse().unwrap_or(0);
            let max = match a.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => 32,
                Ok(IpAddr::V6(_)) => 128,
                Err(_) => u32::MAX,
            };
            if n > max {
                return Err(bad(format!("prefix length {n} exceeds {max}")));
            }
        }
    }
    w.parse::<Prefix>().map_err(|e| match e {
        PolicyError::InvalidPrefix { reason, .. } => bad(reason.into()),
        PolicyError::HostBitsSet { canonical, .. } => {
            bad(format!("host bits set: did you mean {canonical}?"))
        }
        other => bad(other.to_string()),
    })
}

fn interface_address(w: &str) -> Result<InterfaceAddress, ParseError> {
    let bad = |reason: String| ParseError::BadValue { what: "interface address", word: w.into(), reason };
    let (a, l) =
        w.split_once('/').ok_or_else(|| bad("expected ADDRESS/LENGTH, e.g. 198.51.100.1/24".into()))?;
    let addr: IpAddr = a.parse().map_err(|_| bad("not an IPv4 or IPv6 address".into()))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the length is not a number".into()));
    }
    let len: u32 = l.parse().unwrap_or(u32::MAX);
    if len > max {
        return Err(bad(format!("prefix length {len} exceeds {max}")));
    }
    Ok(InterfaceAddress { addr, len: u8::try_from(len).unwrap_or(0) })
}

fn netdev(w: &str) -> Result<String, ParseError> {
    // Linux dev_valid_name(): at most 15 bytes (IFNAMSIZ - 1), not "." or
    // "..", no '/', ':' or whitespace.
    if w.is_empty()
        || w.len() > 15
        || w == "."
        || w == ".."
        || w.bytes().any(|b| b == b'/' || b == b':' || b <= b' ' || b == 0x7f)
    {
        return Err(ParseError::BadValue {
            what: "Linux network device",
            word: w.into(),
            reason: "expected 1 to 15 characters without '/', ':' or spaces".into(),
        });
    }
    Ok(w.into())
}

/// The words after `set` and `unset`.
const TOP_WORDS: [&str; 10] =
    ["interface", "route", "ike", "vpn", "vpnmonitor", "service", "flow", "user", "user-group", "pki"];

/// The words after `set interface NAME` (and `unset interface NAME`).
const INTERFACE_WORDS: [&str; 6] = ["zone", "ip", "mtu", "port", "manage", "nhtb"];

/// The words after `set user NAME`, in ScreenOS's saved order.
const USER_WORDS: [&str; 5] = ["uid", "ike-id", "type", "enable", "disable"];

fn parse_set(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    match c.keyword(&TOP_WORDS)? {
        "interface" => set_interface(c),
        "route" => Ok(SetCommand::Route(set_route(c)?)),
        "ike" => match c.keyword(&["gateway", "p1-proposal", "p2-proposal"])? {
            "gateway" => set_gateway(c),
            "p1-proposal" => set_p1_proposal(c),
            _ => set_p2_proposal(c),
        },
        "vpn" => set_vpn(c),
        "vpnmonitor" => set_vpnmonitor(c),
        "flow" => set_flow(c),
        "user" => set_user(c),
        "user-group" => set_user_group(c),
        "pki" => set_pki(c),
        _ => set_service(c),
    }
}

/// A file name (`set pki ...`): any non-empty word.
fn file_name(c: &mut Cursor<'_, '_>, what: &'static str) -> Result<String, ParseError> {
    c.value(what, |w| {
        if w.is_empty() {
            return Err(ParseError::BadValue { what, word: String::new(), reason: "empty".into() });
        }
        Ok(w.to_string())
    })
}

/// `set pki local-cert NAME certificate FILE key FILE`,
/// `set pki ca-cert NAME file FILE`.
fn set_pki(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    Ok(SetCommand::Pki(match c.keyword(&["local-cert", "ca-cert"])? {
        "local-cert" => {
            let name = c.name("certificate name")?;
            c.keyword(&["certificate"])?;
            let certificate = file_name(c, "certificate file")?;
            c.keyword(&["key"])?;
            let key = file_name(c, "key file")?;
            PkiSetting::LocalCert { name, certificate, key }
        }
        _ => {
            let name = c.name("CA certificate name")?;
            c.keyword(&["file"])?;
            PkiSetting::CaCert { name, file: file_name(c, "CA certificate file")? }
        }
    }))
}

/// A user name (`set user NAME`, `user-group G user NAME`, `dialup NAME`).
fn user_name(c: &mut Cursor<'_, '_>) -> Result<String, ParseError> {
    c.name("user name")
}

/// `set user NAME uid N | ike-id ... | type ike | enable | disable`.
fn set_user(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    let name = user_name(c)?;
    // Authentication users (ScreenOS's `auth` type) have passwords; esprit
    // has IKE users only. The word after is a secret, never echoed.
    if let Some(t) = c.peek() {
        if ["password", "hash-password"].iter().any(|w| w.eq_ignore_ascii_case(t.text)) {
            let what = t.text.to_ascii_lowercase();
            c.pos += 1;
            let _ = c.secret("a password");
            return Err(ParseError::Unsupported {
                what: q(&what).to_string(),
                reason: "esprit has IKE users only (set user NAME ike-id ... and set user NAME type ike), \
                         authenticated by the pre-shared key of their dialup gateway"
                    .into(),
            });
        }
    }
    let setting = match c.keyword(&USER_WORDS)? {
        "uid" => UserSetting::Uid(c.number("uid", 1, 65535)?),
        "ike-id" => {
            let id = user_ike_id(c)?;
            let share_limit = match c.option(&["share-limit"])? {
                Some(_) => c.number("share-limit", 1, MAX_SHARE_LIMIT)?,
                None => DEFAULT_SHARE_LIMIT,
            };
            UserSetting::IkeId { id, share_limit }
        }
        "type" => {
            if let Some(t) = c.peek() {
                let w = t.text.to_ascii_lowercase();
                if matches!(w.as_str(), "auth" | "l2tp" | "xauth" | "wan") {
                    return Err(ParseError::Unsupported {
                        what: format!("user type {}", q(&w)),
                        reason: "esprit has IKE users only: type ike".into(),
                    });
                }
            }
            c.keyword(&["ike"])?;
            UserSetting::TypeIke
        }
        "enable" => UserSetting::Enabled(true),
        _ => UserSetting::Enabled(false),
    };
    Ok(SetCommand::User { name, setting })
}

/// `u-fqdn|fqdn|ip VALUE` after `ike-id`.
fn user_ike_id(c: &mut Cursor<'_, '_>) -> Result<Identity, ParseError> {
    if c.peek().is_some_and(|t| t.text.eq_ignore_ascii_case("asn1-dn")) {
        return Err(ParseError::Unsupported {
            what: "ike-id asn1-dn".into(),
            reason: "a distinguished name identifies a certificate holder, and esprit authenticates IKE \
                     with pre-shared keys only: use u-fqdn, fqdn or ip"
                .into(),
        });
    }
    let kind = c.keyword(&["u-fqdn", "fqdn", "ip"])?;
    let expected = match kind {
        "u-fqdn" => "an identity user@domain",
        "fqdn" => "a domain name",
        _ => "an IPv4 or IPv6 address",
    };
    c.value(expected, |w| ike_id_value(kind, w))
}

fn ike_id_value(kind: &str, w: &str) -> Result<Identity, ParseError> {
    let bad =
        |reason: &str| ParseError::BadValue { what: "IKE identity", word: w.into(), reason: reason.into() };
    if kind == "ip" {
        return w
            .parse()
            .map(Identity::Address)
            .map_err(|_| bad("expected an IPv4 or IPv6 address after ip"));
    }
    if w.is_empty() || w.chars().count() > MAX_IKE_ID {
        return Err(bad("expected 1 to 255 characters"));
    }
    if w.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
        return Err(bad("an identity has no spaces or control characters"));
    }
    if kind == "fqdn" {
        if w.contains('@') {
            return Err(bad("a domain name has no @: use u-fqdn for user@domain"));
        }
        return Ok(Identity::Fqdn(w.into()));
    }
    match w.split_once('@') {
        Some((user, domain)) if !user.is_empty() && !domain.is_empty() && !domain.contains('@') => {
            Ok(Identity::UserFqdn(w.into()))
        }
        _ => Err(bad(
            "expected user@domain, whole (ScreenOS's partial Group IKE IDs are not supported: name each identity)",
        )),
    }
}

/// `set user-group NAME [id N] [location local]` (creates the group) or
/// `set user-group NAME user USER` (adds a member).
fn set_user_group(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    let name = c.name("user group name")?;
    let words = ["location", "id", "user"];
    let first = c.keyword(&words)?;
    if first == "user" {
        let member = user_name(c)?;
        return Ok(SetCommand::UserGroup { name, setting: UserGroupSetting::Member(member) });
    }
    let mut id = None;
    let mut seen = Vec::new();
    let mut next = Some(first);
    while let Some(k) = next {
        c.once(&mut seen, k)?;
        if k == "id" {
            id = Some(c.number("user group id", 1, 65535)?);
        } else {
            if let Some(t) = c.peek() {
                let w = t.text.to_ascii_lowercase();
                if matches!(w.as_str(), "external" | "both") {
                    return Err(ParseError::Unsupported {
                        what: format!("user-group location {}", q(&w)),
                        reason: "esprit has no authentication servers: its users are in its configuration \
                                 (location local)"
                            .into(),
                    });
                }
            }
            c.keyword(&["local"])?;
        }
        next = c.option(&["location", "id"])?;
    }
    Ok(SetCommand::UserGroup { name, setting: UserGroupSetting::Define { id } })
}

/// The next hop of an `nhtb` entry: an address a route's `gateway` can
/// name (not unspecified, multicast or broadcast).
fn next_hop(w: &str) -> Result<IpAddr, ParseError> {
    let a = address("next hop", w)?;
    let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    if a.is_unspecified() || a.is_multicast() || broadcast {
        return Err(ParseError::BadValue {
            what: "next hop",
            word: w.into(),
            reason: "expected the peer's unicast tunnel address (the gateway its routes name)".into(),
        });
    }
    Ok(a)
}

/// `set flow tcp-mss [N]`: N defaults to 1380, as in ScreenOS.
fn set_flow(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    c.keyword(&["tcp-mss"])?;
    let mss = match c.peek() {
        None => DEFAULT_TCP_MSS,
        Some(_) => c.number("MSS", u32::from(MIN_TCP_MSS), u32::from(u16::MAX))? as u16,
    };
    Ok(SetCommand::FlowTcpMss(mss))
}

/// `set vpnmonitor [interval N] [threshold N]`, in any order, each once.
fn set_vpnmonitor(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    let (mut interval_secs, mut threshold) = (None, None);
    let mut seen = Vec::new();
    let words = ["interval", "threshold"];
    if c.peek().is_none() {
        return Err(c.missing(one_of(&words)));
    }
    while let Some(k) = c.option(&words)? {
        c.once(&mut seen, k)?;
        match k {
            "interval" => interval_secs = Some(c.number("interval", 1, MAX_VPNMONITOR_INTERVAL)?),
            _ => threshold = Some(c.number("threshold", 1, MAX_VPNMONITOR_THRESHOLD)?),
        }
    }
    Ok(SetCommand::VpnMonitor { interval_secs, threshold })
}

fn set_interface(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    let name = c.interface()?;
    if name.is_null() {
        return Err(ParseError::BadValue {
            what: "interface name",
            word: name.to_string(),
            reason:
                "null is the blackhole routes may point at (set route P interface null); it has no settings"
                    .into(),
        });
    }
    let setting = match c.keyword(&INTERFACE_WORDS)? {
        "zone" => InterfaceSetting::Zone(c.name("zone name")?),
        "nhtb" => {
            let next_hop = c.value("the peer's tunnel address A.B.C.D", next_hop)?;
            c.keyword(&["vpn"])?;
            InterfaceSetting::Nhtb { next_hop, vpn: c.name("vpn name")? }
        }
        "ip" => {
            if c.try_keyword(&["unnumbered"]).is_some() {
                c.keyword(&["interface"])?;
                InterfaceSetting::Unnumbered(c.interface()?)
            } else {
                InterfaceSetting::Ip(c.value("an address A.B.C.D/L or unnumbered", interface_address)?)
            }
        }
        "mtu" => InterfaceSetting::Mtu(u16::try_from(c.number("MTU", 576, 9216)?).unwrap_or(1500)),
        "port" => InterfaceSetting::Port(c.value("a Linux network device name", netdev)?),
        _ => {
            let mut words = Vec::new();
            while let Some(t) = c.peek() {
                words.push(t.text.to_string());
                c.pos += 1;
            }
            InterfaceSetting::Manage(words)
        }
    };
    Ok(SetCommand::Interface { name, setting })
}

fn set_route(c: &mut Cursor<'_, '_>) -> Result<Route, ParseError> {
    let prefix = c.value("a prefix A.B.C.D/L", prefix)?;
    let (mut interface, mut gateway, mut metric) = (None, None, None);
    let mut seen = Vec::new();
    while let Some(k) = c.option(&["interface", "gateway", "metric"])? {
        c.once(&mut seen, k)?;
        match k {
            "interface" => interface = Some(c.interface()?),
            "gateway" => gateway = Some(c.address("gateway")?),
            _ => metric = Some(c.number("metric", 1, 65535)?),
        }
    }
    let interface = interface.ok_or_else(|| c.missing("interface"))?;
    if interface.is_null() && gateway.is_some() {
        return Err(ParseError::BadValue {
            what: "gateway",
            word: gateway.map(|g| g.to_string()).unwrap_or_default(),
            reason: "a route to interface null drops its packets: it has no gateway".into(),
        });
    }
    Ok(Route { prefix, interface, gateway, metric: metric.unwrap_or(DEFAULT_METRIC) })
}

/// Where the gateway's optional settings, the ones `unset ike gateway
/// NAME ...` removes one by one, begin in [`GATEWAY_WORDS`].
const GATEWAY_ITEMS_FROM: usize = 9;

const GATEWAY_WORDS: [&str; 15] = [
    "address",
    "dialup",
    "dynamic",
    "Main",
    "Aggr",
    "outgoing-interface",
    "preshare",
    "sec-level",
    "proposal",
    "nat-traversal",
    "dpd-liveness",
    "local-id",
    "peer-id",
    "cert",
    "fragmentation",
];

fn sec_level(c: &mut Cursor<'_, '_>) -> Result<SecLevel, ParseError> {
    Ok(match c.keyword(&["standard", "compatible", "basic"])? {
        "standard" => SecLevel::Standard,
        "compatible" => SecLevel::Compatible,
        _ => SecLevel::Basic,
    })
}

/// `proposal "A" ["B" ...]`: names up to the end or the next keyword of
/// `stop`.
fn proposal_list(c: &mut Cursor<'_, '_>, stop: &[&str]) -> Result<Vec<String>, ParseError> {
    let mut names = Vec::new();
    while let Some(t) = c.peek() {
        if !t.quoted && stop.iter().any(|s| s.eq_ignore_ascii_case(t.text)) {
            break;
        }
        if names.len() == MAX_PROPOSALS {
            return Err(c.unknown(t.text, format!("at most {MAX_PROPOSALS} proposals")));
        }
        names.push(c.name("proposal name")?);
    }
    if names.is_empty() {
        return Err(c.missing("a proposal name"));
    }
    Ok(names)
}

/// `ikev2` before a gateway's name (`set ike gateway ikev2 NAME ...`,
/// `unset ike gateway ikev2 NAME`), told from a gateway named `ikev2` by
/// what follows: a name, not a setting's word nor the end of the line.
fn ikev2_marker(c: &mut Cursor<'_, '_>) -> bool {
    let is_marker = c.peek().is_some_and(|t| !t.quoted && t.text.eq_ignore_ascii_case("ikev2"))
        && c.tokens
            .get(c.pos + 1)
            .is_some_and(|t| t.quoted || !GATEWAY_WORDS.iter().any(|w| w.eq_ignore_ascii_case(t.text)));
    if is_marker {
        c.pos += 1;
    }
    is_marker
}

fn set_gateway(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    let ikev2 = ikev2_marker(c);
    let name = c.name("gateway name")?;
    let mut settings = Vec::new();
    if ikev2 {
        settings.push(GatewaySetting::Version(IkeVersion::V2));
    }
    let first = settings.len();
    let mut seen = Vec::new();
    let words = &GATEWAY_WORDS;
    loop {
        if c.peek().is_some_and(|t| t.text.eq_ignore_ascii_case("seed-preshare")) {
            c.pos += 1;
            let _ = c.secret("a pre-shared key seed");
            return Err(ParseError::Unsupported {
                what: "seed-preshare".into(),
                reason: "ScreenOS derives each user's key from the seed and the user's full IKE identity \
                         (exec ike preshare-gen) by a function it does not publish, so esprit cannot compute \
                         the keys its clients hold: give the gateway one preshare key for its users"
                    .into(),
            });
        }
        let k = if settings.len() == first {
            c.keyword(words)?
        } else {
            match c.option(words)? {
                Some(k) => k,
                None => break,
            }
        };
        let setting = match k {
            "address" | "dialup" | "dynamic" => {
                c.once(&mut seen, "peer")?;
                GatewaySetting::Peer(match k {
                    "address" => GatewayPeer::Address(c.address("peer address")?),
                    "dialup" => GatewayPeer::Dialup(c.name("dialup user or group")?),
                    _ => GatewayPeer::Dynamic(Identity::from_text(&c.name("peer identity")?)),
                })
            }
            "Main" | "Aggr" => {
                c.once(&mut seen, "mode")?;
                GatewaySetting::Mode(if k == "Main" { IkeMode::Main } else { IkeMode::Aggressive })
            }
            "outgoing-interface" => {
                c.once(&mut seen, k)?;
                GatewaySetting::OutgoingInterface(c.interface()?)
            }
            "preshare" => {
                c.once(&mut seen, k)?;
                let key = c.secret("a pre-shared key")?;
                if key.is_empty() {
                    return Err(ParseError::BadValue {
                        what: "pre-shared key",
                        word: String::new(),
                        reason: "empty".into(),
                    });
                }
                GatewaySetting::Preshare(Secret::new(key))
            }
            "sec-level" | "proposal" => {
                c.once(&mut seen, "proposals")?;
                GatewaySetting::Proposals(if k == "sec-level" {
                    ProposalChoice::SecLevel(sec_level(c)?)
                } else {
                    ProposalChoice::Named(proposal_list(c, words)?)
                })
            }
            "nat-traversal" => {
                c.once(&mut seen, k)?;
                let (mut udp_checksum, mut keepalive_secs) = (false, None);
                loop {
                    match c.try_keyword(&["udp-checksum", "keepalive-frequency"]) {
                        Some("udp-checksum") => udp_checksum = true,
                        Some(_) => {
                            keepalive_secs =
                                Some(u16::try_from(c.number("keepalive interval", 0, 300)?).unwrap_or(0))
                        }
                        None => break,
                    }
                }
                GatewaySetting::NatTraversal { udp_checksum, keepalive_secs }
            }
            "dpd-liveness" => {
                c.once(&mut seen, k)?;
                let (mut interval_secs, mut retry) = (None, None);
                loop {
                    match c.try_keyword(&["interval", "retry"]) {
                        Some("interval") => {
                            interval_secs = Some(u16::try_from(c.number("interval", 0, 3600)?).unwrap_or(0))
                        }
                        Some(_) => retry = Some(u16::try_from(c.number("retry count", 1, 128)?).unwrap_or(1)),
                        None => break,
                    }
                }
                if interval_secs.is_none() && retry.is_none() {
                    return Err(match c.peek() {
                        Some(t) => c.unknown(t.text, "interval or retry"),
                        None => c.missing("interval or retry"),
                    });
                }
                GatewaySetting::Dpd { interval_secs, retry }
            }
            "local-id" => {
                c.once(&mut seen, k)?;
                GatewaySetting::LocalId(Identity::from_text(&c.name("local identity")?))
            }
            "fragmentation" => {
                c.once(&mut seen, k)?;
                GatewaySetting::Fragmentation(match c.keyword(&["size", "disable"])? {
                    "size" => {
                        let (lo, hi) = FRAGMENT_SIZE_RANGE;
                        Fragmentation::Size(u16::try_from(c.number("fragment size", lo, hi)?).unwrap_or(0))
                    }
                    _ => Fragmentation::Disabled,
                })
            }
            "cert" => match c.keyword(&["my-cert", "peer-ca"])? {
                "my-cert" => {
                    c.once(&mut seen, "my-cert")?;
                    GatewaySetting::MyCert(c.name("certificate name")?)
                }
                _ => {
                    c.once(&mut seen, "peer-ca")?;
                    GatewaySetting::PeerCa(c.name("CA certificate name")?)
                }
            },
            _ => {
                c.once(&mut seen, k)?;
                GatewaySetting::PeerId(Identity::from_text(&c.name("peer identity")?))
            }
        };
        settings.push(setting);
    }
    Ok(SetCommand::IkeGateway { name, settings })
}

fn group_word(c: &mut Cursor<'_, '_>, no_pfs: bool) -> Result<Option<DhGroup>, ParseError> {
    let expected = if no_pfs { "no-pfs or groupN" } else { "groupN (group14, ...)" };
    let t = c.peek().ok_or_else(|| c.missing(expected))?;
    if no_pfs && t.text.eq_ignore_ascii_case("no-pfs") {
        c.pos += 1;
        return Ok(None);
    }
    let lower = t.text.to_ascii_lowercase();
    let Some(digits) = lower.strip_prefix("group") else {
        return Err(c.unknown(t.text, expected));
    };
    c.pos += 1;
    let n = decimal("DH group", t.text, 0, 999).map_err(|_| ParseError::BadValue {
        what: "DH group",
        word: t.text.into(),
        reason: "expected groupN".into(),
    });
    let n = match digits.parse::<u16>() {
        Ok(n) if !digits.starts_with('+') => n,
        _ => {
            return Err(n.err().unwrap_or(ParseError::BadValue {
                what: "DH group",
                word: t.text.into(),
                reason: "expected groupN".into(),
            }))
        }
    };
    crate::proposal::dh_group(n, t.text).map(Some)
}

fn lifetime_secs(c: &mut Cursor<'_, '_>, unit: &str) -> Result<u32, ParseError> {
    let (per, max) = match unit {
        "second" => (1, 2_592_000),
        "minute" => (60, 43_200),
        "hour" => (3600, 720),
        _ => (86_400, 30),
    };
    Ok(c.number("lifetime", 1, max)? * per)
}

fn set_p1_proposal(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    let name = c.name("proposal name")?;
    if is_p1_predefined_shape(&name) {
        return Err(ParseError::BadValue {
            what: "proposal name",
            word: name,
            reason: "names of the form pre-gN-... are predefined proposals; choose another name".into(),
        });
    }
    let subject = format!("p1-proposal {}", q(&name));
    let auth = match c.keyword(&["preshare", "rsa-sig", "ecdsa-sig", "dsa-sig"])? {
        "preshare" => P1Auth::Preshare,
        "rsa-sig" => P1Auth::RsaSig,
        "ecdsa-sig" => P1Auth::EcdsaSig,
        _ => {
            return Err(ParseError::Unsupported {
                what: "dsa-sig".into(),
                reason: "DSA signatures are not implemented (RFC 8247 §3.2: DSA is not to be used): use rsa-sig or ecdsa-sig".into(),
            })
        }
    };
    let group = group_word(c, false).map_err(|e| retitle(e, &subject))?.unwrap_or(DhGroup::Modp2048);
    c.keyword(&["esp"])?;
    let cipher = c
        .value("a cipher (aes128, aes256)", |w| Cipher::parse(w, false))
        .map_err(|e| retitle(e, &subject))?;
    let hash = c.value("a hash (sha-1, sha2-256)", Hash::parse).map_err(|e| retitle(e, &subject))?;
    let mut lifetime = crate::proposal::DEFAULT_P1_LIFETIME_SECS;
    if let Some(unit) = c.option(&["second", "minute", "hour", "day"])? {
        lifetime = lifetime_secs(c, unit)?;
    }
    Ok(SetCommand::P1Proposal(P1Proposal {
        name,
        suite: P1Suite { auth, group, cipher, hash, lifetime_secs: lifetime },
    }))
}

/// Names the proposal in an `Insecure` error about one of its words.
fn retitle(e: ParseError, subject: &str) -> ParseError {
    match e {
        ParseError::Insecure { algorithm, rfc, hint, .. } => {
            ParseError::Insecure { subject: subject.into(), algorithm, rfc, hint }
        }
        other => other,
    }
}

fn set_p2_proposal(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    let name = c.name("proposal name")?;
    if is_p2_predefined_shape(&name) {
        return Err(ParseError::BadValue {
            what: "proposal name",
            word: name,
            reason:
                "names of the form gN-esp-... or nopfs-esp-... are predefined proposals; choose another name"
                    .into(),
        });
    }
    let subject = format!("p2-proposal {}", q(&name));
    let pfs = group_word(c, true).map_err(|e| retitle(e, &subject))?;
    c.keyword(&["esp"])?;
    let cipher = c
        .value("a cipher (aes128, aes256, aes128gcm, aes256gcm)", |w| Cipher::parse(w, true))
        .map_err(|e| retitle(e, &subject))?;
    let integrity = if cipher.is_aead() {
        c.try_keyword(&["null"]);
        None
    } else {
        let t = c.peek().ok_or_else(|| c.missing("a hash (sha-1, sha2-256)"))?;
        if t.text.eq_ignore_ascii_case("null") {
            return Err(ParseError::Insecure {
                subject,
                algorithm: "a CBC cipher without integrity",
                rfc: "RFC 8221",
                hint: ": use sha-1 or sha2-256, or aes128gcm".into(),
            });
        }
        Some(c.value("a hash (sha-1, sha2-256)", Hash::parse).map_err(|e| retitle(e, &subject))?)
    };
    let mut lifetime = crate::proposal::DEFAULT_P2_LIFETIME_SECS;
    let mut kbytes = None;
    let mut seen = Vec::new();
    while let Some(k) = c.option(&["second", "minute", "hour", "day", "kbyte"])? {
        if k == "kbyte" {
            c.once(&mut seen, k)?;
            kbytes = Some(c.number("lifetime in kilobytes", 1, u32::MAX)?);
        } else {
            c.once(&mut seen, "lifetime")?;
            lifetime = lifetime_secs(c, k)?;
        }
    }
    Ok(SetCommand::P2Proposal(P2Proposal {
        name,
        suite: P2Suite {
            pfs,
            esp: crate::proposal::esp_suite(cipher, integrity),
            lifetime_secs: lifetime,
            lifetime_kbytes: kbytes,
        },
    }))
}

/// The keywords after `set vpn NAME`, in the order of the reference page.
const VPN_WORDS: [&str; 7] = ["gateway", "proxy-id", "monitor", "id", "bind", "manual", "withdraw-routes"];

fn set_vpn(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    let name = c.name("vpn name")?;
    let setting = match c.keyword(&VPN_WORDS)? {
        "gateway" => VpnSetting::AutoKey(vpn_autokey(c)?),
        "manual" => VpnSetting::Manual(vpn_manual(c)?),
        "monitor" => {
            let mut m = Monitor::default();
            let mut seen = Vec::new();
            while let Some(k) = c.option(&["source-interface", "destination-ip", "optimized", "rekey"])? {
                c.once(&mut seen, k)?;
                match k {
                    "source-interface" => m.source_interface = Some(c.interface()?),
                    "destination-ip" => m.destination = Some(c.address("destination-ip")?),
                    "optimized" => m.optimized = true,
                    _ => m.rekey = true,
                }
            }
            VpnSetting::Monitor(m)
        }
        "id" => {
            let id = c.value("a VPN id (0x1 ...)", vpn_id)?;
            let interface = match c.option(&["bind"])? {
                Some(_) => {
                    c.keyword(&["interface"])?;
                    Some(c.interface()?)
                }
                None => None,
            };
            VpnSetting::Bind { id: Some(id), interface }
        }
        "bind" => {
            c.keyword(&["interface"])?;
            VpnSetting::Bind { id: None, interface: Some(c.interface()?) }
        }
        "withdraw-routes" => VpnSetting::WithdrawRoutes,
        _ => match c.keyword(&["check", "local-ip"])? {
            "check" => VpnSetting::ProxyIdCheck,
            _ => VpnSetting::ProxyId(proxy_id_rest(c)?),
        },
    };
    Ok(SetCommand::Vpn { name, setting })
}

fn vpn_id(w: &str) -> Result<u32, ParseError> {
    let id = if w.starts_with("0x") || w.starts_with("0X") {
        hex_u32("VPN id", w, 1)?
    } else {
        decimal("VPN id", w, 1, u32::MAX)?
    };
    Ok(id)
}

/// `P remote-ip P SERVICE`, after `local-ip`.
fn proxy_id_rest(c: &mut Cursor<'_, '_>) -> Result<ProxyIdSpec, ParseError> {
    let local = c.value("a prefix A.B.C.D/L", prefix)?;
    c.keyword(&["remote-ip"])?;
    let remote = c.value("a prefix A.B.C.D/L", prefix)?;
    let service = c.name("a service name (ANY, HTTP, ... or a custom service)")?;
    if local.is_ipv4() != remote.is_ipv4() {
        return Err(ParseError::BadValue {
            what: "proxy-id",
            word: format!("local-ip {local} remote-ip {remote}"),
            reason: "local-ip and remote-ip are of different address families".into(),
        });
    }
    let service = match Service::named(&service).and_then(|s| s.name()) {
        Some(canonical) => canonical.to_string(),
        None => service,
    };
    Ok(ProxyIdSpec { local, remote, service })
}

fn vpn_autokey(c: &mut Cursor<'_, '_>) -> Result<AutoKey, ParseError> {
    let gateway = c.name("gateway name")?;
    let (mut replay, mut idletime, mut proposals) = (true, 0, None);
    let mut replay_window = DEFAULT_AUTOKEY_REPLAY_WINDOW;
    let mut seen = Vec::new();
    let mut esn = false;
    let words = ["replay", "no-replay", "tunnel", "transport", "esn", "idletime", "sec-level", "proposal"];
    while let Some(k) = c.option(&words)? {
        match k {
            "esn" => {
                c.once(&mut seen, k)?;
                esn = true;
            }
            "replay" | "no-replay" => {
                c.once(&mut seen, "replay")?;
                replay = k == "replay";
                if replay {
                    replay_window = replay_window_option(c)?.unwrap_or(replay_window);
                }
            }
            "tunnel" => c.once(&mut seen, k)?,
            "transport" => {
                return Err(ParseError::Unsupported {
                    what: "transport mode".into(),
                    reason: "esprit VPNs are tunnel mode (route-based)".into(),
                })
            }
            "idletime" => {
                c.once(&mut seen, k)?;
                idletime = c.number("idle time in minutes", 0, 65535)?;
            }
            _ => {
                c.once(&mut seen, "proposals")?;
                proposals = Some(if k == "sec-level" {
                    ProposalChoice::SecLevel(sec_level(c)?)
                } else {
                    ProposalChoice::Named(proposal_list(c, &words)?)
                });
            }
        }
    }
    let proposals = proposals.ok_or_else(|| c.missing("sec-level or proposal"))?;
    Ok(AutoKey { gateway, replay, replay_window, esn, idletime_mins: idletime, proposals })
}

/// `window N` after `replay`: the anti-replay window in packets (RFC 4303
/// §3.4.3: at least 32; the fast path keeps up to 4096).
fn replay_window_option(c: &mut Cursor<'_, '_>) -> Result<Option<u32>, ParseError> {
    if c.try_keyword(&["window"]).is_none() {
        return Ok(None);
    }
    c.number("replay window in packets", MIN_REPLAY_WINDOW, MAX_REPLAY_WINDOW).map(Some)
}

fn hex_key(c: &mut Cursor<'_, '_>, cipher_or_hash: &str, len: usize) -> Result<Secret, ParseError> {
    let t = c.peek().ok_or_else(|| c.missing("key"))?;
    if t.text.eq_ignore_ascii_case("password") {
        return Err(ParseError::Unsupported {
            what: "password".into(),
            reason: "give manual keys in hexadecimal with key HEX".into(),
        });
    }
    c.keyword(&["key"])?;
    let k = c.secret("a key in hexadecimal")?;
    let digits = k.strip_prefix("0x").unwrap_or(k);
    let bad = |reason: String| ParseError::BadValue { what: "key", word: "<secret>".into(), reason };
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) || digits.len() % 2 != 0 {
        return Err(bad("expected an even number of hexadecimal digits".into()));
    }
    if digits.len() != 2 * len {
        return Err(bad(format!(
            "{cipher_or_hash} needs {len} bytes ({} hexadecimal digits), got {}",
            2 * len,
            digits.len() / 2
        )));
    }
    Ok(Secret::new(digits.to_ascii_lowercase()))
}

/// The cipher of a manual-key SA: CBC only. A counter mode (AES-GCM here;
/// CTR and GMAC likewise) must never run under a statically configured key
/// (RFC 4106 §8.1, RFC 3686 §2.1, RFC 4543 §6): one key and salt serve both
/// directions and both gateways count from sequence number 1, so packet n
/// of each direction shares (key, nonce) with the other, which gives away
/// the XOR of the plaintexts and the GHASH key. Only IKE gives fresh keys.
fn manual_cipher(word: &str) -> Result<Cipher, ParseError> {
    let cipher = Cipher::parse(word, true)?;
    if cipher.is_aead() {
        return Err(ParseError::Insecure {
            subject: format!("manual-key cipher {}", q(word)),
            algorithm: "AES-GCM, a counter mode, with a static key",
            rfc: "RFC 4106 §8.1",
            hint: ": both directions would repeat (key, nonce) from sequence number 1; use esp aes128 or aes256 with auth sha2-256, or an AutoKey IKE VPN (set vpn NAME gateway ...)".into(),
        });
    }
    Ok(cipher)
}

fn vpn_manual(c: &mut Cursor<'_, '_>) -> Result<ManualKey, ParseError> {
    // RFC 4303 §2.1: SPIs 1-255 are reserved by IANA, 0 is never sent.
    let local_spi = c.value("the local SPI in hexadecimal", |w| hex_u32("SPI", w, 0x100))?;
    let remote_spi = c.value("the remote SPI in hexadecimal", |w| hex_u32("SPI", w, 0x100))?;
    c.keyword(&["gateway"])?;
    let gateway = c.address("gateway")?;
    c.keyword(&["outgoing-interface"])?;
    let outgoing_interface = c.interface()?;
    c.keyword(&["esp"])?;
    let cipher = c.value("a cipher (aes128, aes256)", manual_cipher)?;
    let encryption_key = hex_key(c, cipher.word(), cipher.key_len())?;
    c.keyword(&["auth"])?;
    let hash = c.value("a hash (sha-1, sha2-256)", Hash::parse)?;
    let key = hex_key(c, hash.word(), hash.key_len())?;
    let auth = Some((hash, key));
    let (mut replay, mut replay_window, mut esn) = (true, DEFAULT_MANUAL_REPLAY_WINDOW, false);
    let mut seen = Vec::new();
    while let Some(k) = c.option(&["replay", "no-replay", "esn"])? {
        match k {
            "esn" => {
                c.once(&mut seen, k)?;
                esn = true;
            }
            _ => {
                c.once(&mut seen, "replay")?;
                replay = k == "replay";
                if replay {
                    replay_window = replay_window_option(c)?.unwrap_or(replay_window);
                }
            }
        }
    }
    Ok(ManualKey {
        local_spi,
        remote_spi,
        gateway,
        outgoing_interface,
        cipher,
        encryption_key,
        auth,
        replay,
        replay_window,
        esn,
    })
}

/// `PROTO [selectors]` after `protocol` or `+`.
fn service_member(c: &mut Cursor<'_, '_>) -> Result<Service, ParseError> {
    let pw = c.word("a protocol (tcp, udp, icmp, icmp6, sctp or a number)")?;
    let proto: u8 = match pw.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmp6" | "ipv6-icmp" => 58,
        "sctp" => 132,
        other => u8::try_from(decimal("protocol", other, 0, 255).map_err(|_| ParseError::BadValue {
            what: "protocol",
            word: pw.into(),
            reason: "expected tcp, udp, icmp, icmp6, sctp or a number from 0 to 255".into(),
        })?)
        .unwrap_or(0),
    };
    let ports = matches!(proto, 6 | 17 | 132);
    let icmp = matches!(proto, 1 | 58);
    let words: &[&'static str] = if ports {
        &["src-port", "dst-port"]
    } else if icmp {
        &["type", "code"]
    } else {
        &[]
    };
    let (mut src, mut dst, mut itype, mut icode) = (PortRange::ANY, PortRange::ANY, None, None);
    let mut seen = Vec::new();
    while let Some(k) = c.option(words).map_err(|e| match e {
        ParseError::UnknownWord { word, after, .. } if words.is_empty() => ParseError::UnknownWord {
            word,
            after,
            expected: "end of line (this protocol has no ports)".into(),
        },
        e => e,
    })? {
        c.once(&mut seen, k)?;
        match k {
            "src-port" | "dst-port" => {
                let r = c.value("a port range A-B", |w| {
                    w.parse::<PortRange>().map_err(|e| ParseError::BadValue {
                        what: "port range",
                        word: w.into(),
                        reason: match e {
                            PolicyError::InvalidPortRange { reason, .. } => reason.into(),
                            other => other.to_string(),
                        },
                    })
                })?;
                if k == "src-port" {
                    src = r;
                } else {
                    dst = r;
                }
            }
            "type" => itype = Some(c.number("ICMP type", 0, 255)?),
            _ => icode = Some(c.number("ICMP code", 0, 255)?),
        }
    }
    if icmp {
        match (itype, icode) {
            (Some(t), Some(code)) => dst = PortRange::single(u16::try_from(t << 8 | code).unwrap_or(0)),
            (Some(t), None) => {
                let first = u16::try_from(t << 8).unwrap_or(0);
                dst = PortRange::new(first, first | 0xff).unwrap_or(PortRange::ANY);
            }
            (None, Some(_)) => return Err(c.missing("type (code needs a type)")),
            (None, None) => {}
        }
    }
    Service::with_ports(proto, src, dst).map_err(|e| ParseError::BadValue {
        what: "service",
        word: pw.into(),
        reason: e.to_string(),
    })
}

fn service_name(c: &mut Cursor<'_, '_>) -> Result<String, ParseError> {
    let name = c.name("service name")?;
    if let Some(canonical) = Service::named(&name).and_then(|s| s.name()) {
        return Err(ParseError::BadValue {
            what: "service name",
            word: name,
            reason: format!("{canonical} is a predefined service"),
        });
    }
    Ok(name)
}

fn set_service(c: &mut Cursor<'_, '_>) -> Result<SetCommand, ParseError> {
    let name = service_name(c)?;
    let add = c.keyword(&["protocol", "+"])? == "+";
    let member = service_member(c)?;
    Ok(SetCommand::Service { name, member, add })
}

fn parse_unset(c: &mut Cursor<'_, '_>) -> Result<UnsetCommand, ParseError> {
    Ok(match c.keyword(&TOP_WORDS)? {
        "flow" => {
            c.keyword(&["tcp-mss"])?;
            UnsetCommand::FlowTcpMss
        }
        "pki" => {
            let ca = c.keyword(&["local-cert", "ca-cert"])? == "ca-cert";
            UnsetCommand::Pki { ca, name: c.name("certificate name")? }
        }
        "vpnmonitor" => match c.option(&["interval", "threshold"])? {
            None => UnsetCommand::VpnMonitor { interval: true, threshold: true },
            Some("interval") => UnsetCommand::VpnMonitor { interval: true, threshold: false },
            Some(_) => UnsetCommand::VpnMonitor { interval: false, threshold: true },
        },
        "interface" => {
            let name = c.interface()?;
            let item = match c.option(&INTERFACE_WORDS)? {
                Some("nhtb") => {
                    let next_hop = c.value("the peer's tunnel address A.B.C.D", next_hop)?;
                    let vpn = match c.option(&["vpn"])? {
                        Some(_) => Some(c.name("vpn name")?),
                        None => None,
                    };
                    return Ok(UnsetCommand::Nhtb { interface: name, next_hop, vpn });
                }
                None => None,
                Some("zone") => Some(InterfaceItem::Zone),
                Some("ip") => Some(InterfaceItem::Ip),
                Some("mtu") => Some(InterfaceItem::Mtu),
                Some("port") => Some(InterfaceItem::Port),
                Some(_) => {
                    c.pos = c.tokens.len();
                    Some(InterfaceItem::Manage)
                }
            };
            UnsetCommand::Interface { name, item }
        }
        "route" => {
            let prefix = c.value("a prefix A.B.C.D/L", prefix)?;
            let mut interface = None;
            let mut gateway = None;
            if c.option(&["interface"])?.is_some() {
                interface = Some(c.interface()?);
                if c.option(&["gateway"])?.is_some() {
                    gateway = Some(c.address("gateway")?);
                }
            }
            UnsetCommand::Route { prefix, interface, gateway }
        }
        "ike" => match c.keyword(&["gateway", "p1-proposal", "p2-proposal"])? {
            "gateway" => {
                // The marker is the gateway's own word; unset needs only the name.
                let _ = ikev2_marker(c);
                let name = c.name("gateway name")?;
                let item = match c.option(&GATEWAY_WORDS[GATEWAY_ITEMS_FROM..])? {
                    None => None,
                    Some("cert") => Some(GatewayItem::Cert),
                    Some("fragmentation") => Some(GatewayItem::Fragmentation),
                    Some("nat-traversal") => Some(GatewayItem::NatTraversal),
                    Some("dpd-liveness") => Some(GatewayItem::Dpd),
                    Some("local-id") => Some(GatewayItem::LocalId),
                    Some(_) => Some(GatewayItem::PeerId),
                };
                UnsetCommand::IkeGateway { name, item }
            }
            "p1-proposal" => UnsetCommand::P1Proposal(c.name("proposal name")?),
            _ => UnsetCommand::P2Proposal(c.name("proposal name")?),
        },
        "vpn" => {
            let name = c.name("vpn name")?;
            let item = match c.option(&["monitor", "bind", "proxy-id", "withdraw-routes"])? {
                None => None,
                Some("monitor") => Some(VpnItem::Monitor),
                Some("withdraw-routes") => Some(VpnItem::WithdrawRoutes),
                Some("bind") => {
                    c.keyword(&["interface"])?;
                    Some(VpnItem::Bind)
                }
                Some(_) => match c.option(&["check", "local-ip"])? {
                    None => Some(VpnItem::AllProxyIds),
                    Some("check") => Some(VpnItem::ProxyIdCheck),
                    Some(_) => Some(VpnItem::ProxyId(proxy_id_rest(c)?)),
                },
            };
            UnsetCommand::Vpn { name, item }
        }
        "user" => {
            let name = user_name(c)?;
            let item = match c.option(&["ike-id", "type", "uid"])? {
                None => None,
                Some("ike-id") => Some(UserItem::IkeId),
                Some("type") => Some(UserItem::Type),
                Some(_) => Some(UserItem::Uid),
            };
            UnsetCommand::User { name, item }
        }
        "user-group" => {
            let name = c.name("user group name")?;
            let member = match c.option(&["user"])? {
                Some(_) => Some(user_name(c)?),
                None => None,
            };
            UnsetCommand::UserGroup { name, member }
        }
        _ => {
            let name = c.name("service name")?;
            let member = match c.option(&["+"])? {
                Some(_) => Some(service_member(c)?),
                None => None,
            };
            UnsetCommand::Service { name, member }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(line: &str) -> SetCommand {
        match parse_line(line) {
            Ok(Some(Command::Set(s))) => s,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn unset(line: &str) -> UnsetCommand {
        match parse_line(line) {
            Ok(Some(Command::Unset(u))) => u,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn ifname(s: &str) -> InterfaceName {
        InterfaceName::new(s).unwrap()
    }

    #[test]
    fn typed_set_commands() {
        assert_eq!(
            set("set interface tunnel.1 ip unnumbered interface ethernet0/2"),
            SetCommand::Interface {
                name: ifname("tunnel.1"),
                setting: InterfaceSetting::Unnumbered(ifname("ethernet0/2")),
            }
        );
        assert_eq!(
            set("set route 10.2.1.0/24 interface tunnel.1 gateway 10.0.0.2 metric 3"),
            SetCommand::Route(Route {
                prefix: "10.2.1.0/24".parse().unwrap(),
                interface: ifname("tunnel.1"),
                gateway: Some("10.0.0.2".parse().unwrap()),
                metric: 3,
            })
        );
        let SetCommand::IkeGateway { name, settings } = set(
            r##"set ike gateway "test" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "#ABC123" sec-level standard"##,
        ) else {
            panic!()
        };
        assert_eq!(name, "test");
        assert_eq!(settings.len(), 5);
        assert_eq!(settings[4], GatewaySetting::Proposals(ProposalChoice::SecLevel(SecLevel::Standard)));
        assert!(matches!(&settings[3], GatewaySetting::Preshare(k) if k.expose() == "#ABC123"));
        assert_eq!(
            set(r#"set vpn "test" gateway "test" no-replay tunnel idletime 0 sec-level standard"#),
            SetCommand::Vpn {
                name: "test".into(),
                setting: VpnSetting::AutoKey(AutoKey {
                    gateway: "test".into(),
                    replay: false,
                    replay_window: DEFAULT_AUTOKEY_REPLAY_WINDOW,
                    esn: false,
                    idletime_mins: 0,
                    proposals: ProposalChoice::SecLevel(SecLevel::Standard),
                }),
            }
        );
        assert_eq!(
            set(r#"set vpn "test" id 0x1 bind interface tunnel.1"#),
            SetCommand::Vpn {
                name: "test".into(),
                setting: VpnSetting::Bind { id: Some(1), interface: Some(ifname("tunnel.1")) },
            }
        );
        assert_eq!(
            set("set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any"),
            SetCommand::Vpn {
                name: "test".into(),
                setting: VpnSetting::ProxyId(ProxyIdSpec {
                    local: "10.1.1.0/24".parse().unwrap(),
                    remote: "10.2.1.0/24".parse().unwrap(),
                    service: "ANY".into(),
                }),
            }
        );
        assert_eq!(
            set("set service web + tcp dst-port 80"),
            SetCommand::Service {
                name: "web".into(),
                member: Service::tcp(PortRange::single(80)),
                add: true,
            }
        );
        assert!(matches!(
            set("set ike p2-proposal x no-pfs esp aes128gcm kbyte 10"),
            SetCommand::P2Proposal(P2Proposal {
                suite: P2Suite { pfs: None, lifetime_kbytes: Some(10), .. },
                ..
            })
        ));
    }

    #[test]
    fn typed_unset_commands() {
        assert_eq!(
            unset("unset route 10.2.1.0/24 interface tunnel.1"),
            UnsetCommand::Route {
                prefix: "10.2.1.0/24".parse().unwrap(),
                interface: Some(ifname("tunnel.1")),
                gateway: None,
            }
        );
        assert_eq!(unset("unset vpn test"), UnsetCommand::Vpn { name: "test".into(), item: None });
        assert_eq!(
            unset("unset vpn test proxy-id check"),
            UnsetCommand::Vpn { name: "test".into(), item: Some(VpnItem::ProxyIdCheck) }
        );
        assert_eq!(
            unset("unset interface ethernet0/2 port"),
            UnsetCommand::Interface { name: ifname("ethernet0/2"), item: Some(InterfaceItem::Port) }
        );
        assert_eq!(
            unset("unset ike gateway gw dpd-liveness"),
            UnsetCommand::IkeGateway { name: "gw".into(), item: Some(GatewayItem::Dpd) }
        );
        assert_eq!(unset("unset ike p2-proposal x"), UnsetCommand::P2Proposal("x".into()));
        assert_eq!(unset("unset service web"), UnsetCommand::Service { name: "web".into(), member: None });
    }

    #[test]
    fn typed_user_and_nhtb_commands() {
        assert_eq!(
            set(r#"set user "alice" ike-id u-fqdn "alice@example.net" share-limit 3"#),
            SetCommand::User {
                name: "alice".into(),
                setting: UserSetting::IkeId {
                    id: Identity::UserFqdn("alice@example.net".into()),
                    share_limit: 3
                },
            }
        );
        assert_eq!(
            set("set user bob ike-id ip 2001:db8::7"),
            SetCommand::User {
                name: "bob".into(),
                setting: UserSetting::IkeId {
                    id: Identity::Address("2001:db8::7".parse().unwrap()),
                    share_limit: DEFAULT_SHARE_LIMIT
                },
            }
        );
        assert_eq!(
            set(r#"set user "bob" "enable""#),
            SetCommand::User { name: "bob".into(), setting: UserSetting::Enabled(true) }
        );
        assert_eq!(
            set(r#"set user-group "road" location Local id 7"#),
            SetCommand::UserGroup { name: "road".into(), setting: UserGroupSetting::Define { id: Some(7) } }
        );
        assert_eq!(
            set("set interface TUNNEL.1 nhtb 169.254.1.2 vpn e"),
            SetCommand::Interface {
                name: ifname("tunnel.1"),
                setting: InterfaceSetting::Nhtb { next_hop: "169.254.1.2".parse().unwrap(), vpn: "e".into() },
            }
        );
        assert_eq!(
            unset("unset interface tunnel.1 nhtb 169.254.1.2"),
            UnsetCommand::Nhtb {
                interface: ifname("tunnel.1"),
                next_hop: "169.254.1.2".parse().unwrap(),
                vpn: None
            }
        );
        assert_eq!(
            unset("unset user alice ike-id"),
            UnsetCommand::User { name: "alice".into(), item: Some(UserItem::IkeId) }
        );
        assert_eq!(
            unset(r#"unset user-group road user "alice""#),
            UnsetCommand::UserGroup { name: "road".into(), member: Some("alice".into()) }
        );
        assert_eq!(
            parse_line("set user-group road location local location local").unwrap_err().to_string(),
            r#""location" given twice in one line"#
        );
    }

    #[test]
    fn blank_and_comment_lines_are_nothing() {
        assert_eq!(parse_line(""), Ok(None));
        assert_eq!(parse_line("  # set vpn x"), Ok(None));
    }

    #[test]
    fn the_error_after_a_secret_does_not_show_it() {
        let e = parse_line(r#"set ike gateway g preshare "hush" bogus"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unknown word "bogus" after "set ike gateway g preshare <secret>": expected one of address, dialup, dynamic, Main, Aggr, outgoing-interface, preshare, sec-level, proposal, nat-traversal, dpd-liveness, local-id, peer-id, cert, fragmentation, or end of line"#
        );
    }
}
