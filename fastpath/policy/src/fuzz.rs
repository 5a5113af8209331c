//! Fuzz entry points: what `fuzz/` targets call, and what this
//! crate's tests replay from the kept corpora. Not an API for anything else.
//!
//! [`policy_parse`] reads the input (lossy UTF-8) line by line as each
//! text form of the crate ([`Prefix`], [`Service`], [`PortRange`],
//! [`ProxyId`]): a parse that succeeds must print back to text that parses
//! to the same value and prints the same again. The proxy-IDs it found (or
//! the seed's four when none) are compiled into a [`ProxyIdTable`], and
//! flow keys taken from the bytes are classified, one by one and as a
//! burst, against a linear scan of the overlap rule written here from the
//! crate doc (the same model as `tests/reference.rs`), and checked inbound
//! against [`ProxyId::matches_inbound`] (strict [`InboundSelector`], and
//! the table's check, which lets everything in when it does not enforce).

// A fuzz body asserts its invariants: a failed one is a finding.
#![allow(clippy::unwrap_used)]

use core::cmp::Reverse;
use core::fmt::Display;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{
    FlowKey, InboundSelector, PortRange, Prefix, ProxyId, ProxyIdIndex, ProxyIdTable, Service, Verdict,
};

/// Proxy-IDs used when the input holds none: the seed's four, an
/// overlapping broader one, a service-specific one, and IPv6.
const FALLBACK: [&str; 7] = [
    "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY",
    "local-ip 10.1.1.0/24 remote-ip 10.2.2.0/24 ANY",
    "local-ip 10.1.2.0/24 remote-ip 10.2.1.0/24 ANY",
    "local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 ANY",
    "local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 ANY",
    "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 protocol tcp src-port 1024-65535 dst-port 443",
    "local-ip 2001:db8:1::/48 remote-ip 2001:db8:2::/48 protocol icmp6 icmp-type 128",
];

/// Most proxy-IDs taken from one input (the table is compiled per input).
const MAX_TABLE: usize = 16;

/// The whole target: parsers, then the classifier.
pub fn policy_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut proxy_ids = Vec::new();
    for line in text.lines() {
        round_trip::<Prefix>(line);
        round_trip::<Service>(line);
        round_trip::<PortRange>(line);
        if let Some(p) = round_trip::<ProxyId>(line) {
            if proxy_ids.len() < MAX_TABLE {
                proxy_ids.push(p);
            }
        }
    }
    if proxy_ids.is_empty() {
        proxy_ids = FALLBACK.iter().map(|s| s.parse().unwrap()).collect();
    }
    classify(&proxy_ids, data);
}

/// Parses `text`; on success checks Display -> parse -> Display.
fn round_trip<T>(text: &str) -> Option<T>
where
    T: FromStr + Display + PartialEq + core::fmt::Debug,
    T::Err: Display,
{
    match text.parse::<T>() {
        Ok(v) => {
            let shown = v.to_string();
            let again = match shown.parse::<T>() {
                Ok(a) => a,
                Err(e) => panic!("{text:?} -> {v:?} prints {shown:?}, which does not parse: {e}"),
            };
            assert_eq!(again, v, "{text:?} prints {shown:?}");
            assert_eq!(again.to_string(), shown);
            Some(v)
        }
        Err(e) => {
            // Errors name what they refused.
            let _ = e.to_string();
            None
        }
    }
}

/// Builds the table (with `check` from the first byte) and classifies keys
/// from the bytes against the linear model.
fn classify(proxy_ids: &[ProxyId], data: &[u8]) {
    let check = data.first().is_some_and(|b| b & 1 == 1);
    // Duplicates and mixed families are refused; dedupe so the input
    // still gets a table.
    let mut ids: Vec<ProxyId> = Vec::with_capacity(proxy_ids.len());
    for p in proxy_ids {
        if !ids.contains(p) && p.local.is_ipv4() == p.remote.is_ipv4() {
            ids.push(*p);
        }
    }
    let table = match ProxyIdTable::new(ids.clone(), check) {
        Ok(t) => t,
        Err(e) => panic!("{ids:?}: refused: {e}"),
    };
    let keys = keys(&ids, data);
    let mut out = vec![Verdict::NoMatch; keys.len()];
    table.classify(&keys, &mut out);
    for (k, v) in keys.iter().zip(&out) {
        let want = model(&ids, check, k);
        assert_eq!(*v, want, "burst: key {k:?} in {ids:?} check={check}");
        assert_eq!(table.classify_one(k), want, "one: key {k:?}");
        // Inbound: the strict selector always; the table's check only when
        // it enforces (check off with one proxy-ID lets replies in).
        for (i, p) in ids.iter().enumerate() {
            let index = ProxyIdIndex::new(i as u32);
            let want = p.matches_inbound(k);
            assert_eq!(InboundSelector::new(p).admits(k), want, "inbound {k:?} on {p}");
            assert_eq!(table.admits_inbound(index, k), want || !table.enforces(), "inbound {k:?} on {p}");
        }
    }
    // Out of range index: never admits.
    if let Some(k) = keys.first() {
        assert!(!table.admits_inbound(ProxyIdIndex::new(ids.len() as u32), k));
    }
}

/// The overlap rule of the crate doc, as a linear scan.
fn model(ids: &[ProxyId], check: bool, k: &FlowKey) -> Verdict {
    if ids.is_empty() {
        return Verdict::NoMatch;
    }
    if ids.len() == 1 && !check {
        return Verdict::Match(ProxyIdIndex::new(0));
    }
    ids.iter()
        .enumerate()
        .filter(|(_, p)| p.matches_outbound(k))
        .min_by_key(|&(i, p)| {
            (
                Reverse(p.remote.len()),
                Reverse(p.local.len()),
                p.service.is_any(),
                p.service.dst_ports().width(),
                p.service.src_ports().width(),
                i,
            )
        })
        .map_or(Verdict::NoMatch, |(i, _)| Verdict::Match(ProxyIdIndex::new(i as u32)))
}

/// Flow keys from the bytes, 16 bytes each: a selector byte, then address
/// bits, protocol and ports. Half are put inside one of the proxy-IDs'
/// prefixes (host bits from the bytes) so that matches are common; the
/// rest are taken as they come. Both families.
fn keys(ids: &[ProxyId], data: &[u8]) -> Vec<FlowKey> {
    let mut out = Vec::new();
    for c in data.chunks(16).take(64) {
        let mut b = [0u8; 16];
        b[..c.len()].copy_from_slice(c);
        let sel = b[0];
        let protocol = [0, 1, 6, 17, 58, 132, b[9]][usize::from(b[9] % 7)];
        let sport = u16::from_be_bytes([b[10], b[11]]);
        let dport = u16::from_be_bytes([b[12], b[13]]);
        let v4 = |x: &[u8]| Ipv4Addr::new(x[0], x[1], x[2], x[3]);
        let v6 = |x: &[u8]| {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&x[..4]);
            o[12..].copy_from_slice(&b[12..16]);
            Ipv6Addr::from(o)
        };
        let (src, dst): (IpAddr, IpAddr) = match (ids.get(usize::from(sel >> 1) % ids.len().max(1)), sel & 1)
        {
            (Some(p), 0) => (inside(&p.local, &b[1..5]), inside(&p.remote, &b[5..9])),
            _ if sel & 2 == 0 => (v4(&b[1..5]).into(), v4(&b[5..9]).into()),
            _ => (v6(&b[1..5]).into(), v6(&b[5..9]).into()),
        };
        if let Some(k) = FlowKey::new(src, dst, protocol, sport, dport) {
            out.push(k);
        }
    }
    out
}

/// An address in `p` with host bits from `bits`.
fn inside(p: &Prefix, bits: &[u8]) -> IpAddr {
    let x = u32::from_be_bytes([bits[0], bits[1], bits[2], bits[3]]);
    match p.addr() {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(p.len())).unwrap_or(0);
            Ipv4Addr::from_bits(a.to_bits() | (x & !mask)).into()
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(p.len())).unwrap_or(0);
            let host = u128::from(x) | (u128::from(x) << 64);
            Ipv6Addr::from_bits(a.to_bits() | (host & !mask)).into()
        }
    }
}
