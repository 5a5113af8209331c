//! The classifier against a brute-force model of the overlap rule, on
//! random tables with overlapping prefixes of mixed lengths, overlapping
//! services, both families, and random keys.

// Test helpers outside `#[test]` functions: a panic is a test failure.
#![allow(clippy::unwrap_used)]

use std::cmp::Reverse;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use esprit_policy::{
    FlowKey, InboundSelector, PolicyError, PortRange, Prefix, ProxyId, ProxyIdIndex, ProxyIdTable, Service,
    Verdict,
};
use proptest::prelude::*;

// ---- the model -----------------------------------------------------------

fn in_prefix(p: &Prefix, a: IpAddr) -> bool {
    // Written without the crate's mask helpers: compare the first `len`
    // bits one by one.
    let (pa, aa): (Vec<u8>, Vec<u8>) = match (p.addr(), a) {
        (IpAddr::V4(x), IpAddr::V4(y)) => (x.octets().to_vec(), y.octets().to_vec()),
        (IpAddr::V6(x), IpAddr::V6(y)) => (x.octets().to_vec(), y.octets().to_vec()),
        _ => return false,
    };
    (0..usize::from(p.len())).all(|bit| {
        let m = 0x80u8 >> (bit % 8);
        (pa[bit / 8] & m) == (aa[bit / 8] & m)
    })
}

fn carries_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 132)
}

fn service_covers(s: &Service, protocol: u8, sport: u16, dport: u16) -> bool {
    match s.ip_protocol() {
        None => true,
        Some(p) => p == protocol && s.src_ports().contains(sport) && s.dst_ports().contains(dport),
    }
}

fn covers_outbound(p: &ProxyId, k: &FlowKey) -> bool {
    in_prefix(&p.local, k.src())
        && in_prefix(&p.remote, k.dst())
        && service_covers(&p.service, k.protocol(), k.src_port(), k.dst_port())
}

fn covers_inbound(p: &ProxyId, k: &FlowKey) -> bool {
    let reversed = p.service.ip_protocol().is_some_and(carries_ports);
    let (sport, dport) = if reversed { (k.dst_port(), k.src_port()) } else { (k.src_port(), k.dst_port()) };
    in_prefix(&p.remote, k.src())
        && in_prefix(&p.local, k.dst())
        && service_covers(&p.service, k.protocol(), sport, dport)
}

fn model(ids: &[ProxyId], check: bool, k: &FlowKey) -> Verdict {
    if ids.is_empty() {
        return Verdict::NoMatch;
    }
    if ids.len() == 1 && !check {
        return Verdict::Match(ProxyIdIndex::new(0));
    }
    ids.iter()
        .enumerate()
        .filter(|(_, p)| covers_outbound(p, k))
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

// ---- generators ----------------------------------------------------------

/// A small address space so that random prefixes overlap a lot:
/// `10.a.b.c` with a, b in 0..4 and c a multiple of 64, or its IPv6 image
/// `2001:db8:a:b:c00::`.
fn base() -> impl Strategy<Value = (u8, u8, u8)> {
    (0u8..4, 0u8..4, 0u8..4)
}

fn v4_of((a, b, c): (u8, u8, u8), low: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, a, b, c * 64 + low % 64)
}

fn v6_of((a, b, c): (u8, u8, u8), low: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, u16::from(a), u16::from(b), u16::from(c) << 8 | (low & 0xff), 0, 0, low)
}

fn prefix(v6: bool) -> impl Strategy<Value = Prefix> {
    let lens4 = prop::sample::select(vec![0u8, 1, 8, 14, 15, 16, 17, 22, 23, 24, 25, 26, 30, 32]);
    let lens6 = prop::sample::select(vec![0u8, 16, 32, 46, 47, 48, 63, 64, 72, 80, 127, 128]);
    (base(), any::<u16>(), lens4, lens6).prop_map(move |(b, low, l4, l6)| {
        let (addr, len) =
            if v6 { (IpAddr::V6(v6_of(b, low)), l6) } else { (IpAddr::V4(v4_of(b, low as u8)), l4) };
        Prefix::new_masked(addr, len).unwrap()
    })
}

fn port_range() -> impl Strategy<Value = PortRange> {
    prop_oneof![
        Just(PortRange::ANY),
        prop::sample::select(vec![22u16, 53, 80, 443, 1023]).prop_map(PortRange::single),
        Just(PortRange::new(0, 1023).unwrap()),
        Just(PortRange::new(1024, 65535).unwrap()),
        // Equal widths, overlapping: ties decided by order.
        Just(PortRange::new(100, 199).unwrap()),
        Just(PortRange::new(150, 249).unwrap()),
        (0u16..600, 0u16..600).prop_map(|(a, w)| PortRange::new(a, a.saturating_add(w)).unwrap()),
    ]
}

fn service() -> impl Strategy<Value = Service> {
    prop_oneof![
        3 => Just(Service::ANY),
        4 => prop::sample::select(
            Service::named_services().iter().map(|&(_, s)| s).collect::<Vec<_>>()
        ),
        4 => (prop::sample::select(vec![6u8, 17, 132]), port_range(), port_range())
            .prop_map(|(p, s, d)| Service::with_ports(p, s, d).unwrap()),
        1 => prop::sample::select(vec![1u8, 58]).prop_flat_map(|p| {
            prop_oneof![
                Just(Service::protocol(p)),
                prop::sample::select(vec![0u8, 3, 8, 128, 129]).prop_map(move |t| if p == 1 {
                    Service::icmp_type(t)
                } else {
                    Service::icmpv6_type(t)
                }),
            ]
        }),
        1 => prop::sample::select(vec![47u8, 50, 89]).prop_map(Service::protocol),
    ]
}

fn proxy_id() -> impl Strategy<Value = ProxyId> {
    // Mostly IPv4, some IPv6, so mixed tables occur.
    prop::bool::weighted(0.25)
        .prop_flat_map(|v6| (prefix(v6), prefix(v6), service()))
        .prop_map(|(local, remote, service)| ProxyId { local, remote, service })
}

/// Proxy-IDs without duplicates (first occurrence kept).
fn proxy_ids(max: usize) -> impl Strategy<Value = Vec<ProxyId>> {
    prop::collection::vec(proxy_id(), 0..max).prop_map(|mut v| {
        let mut seen = std::collections::HashSet::new();
        v.retain(|p| seen.insert(*p));
        v
    })
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        prop::sample::select(vec![
            0u16, 1, 22, 53, 80, 100, 150, 199, 200, 249, 443, 1023, 1024, 0x0800, 0x8000, 65535
        ]),
        any::<u16>(),
    ]
}

fn key() -> impl Strategy<Value = FlowKey> {
    let protocol = prop::sample::select(vec![0u8, 1, 6, 6, 6, 17, 17, 47, 50, 58, 132]);
    (prop::bool::weighted(0.25), base(), base(), any::<u16>(), any::<u16>(), protocol, port(), port())
        .prop_map(|(v6, b1, b2, l1, l2, proto, sp, dp)| {
            if v6 {
                FlowKey::v6(v6_of(b1, l1), v6_of(b2, l2), proto, sp, dp)
            } else {
                FlowKey::v4(v4_of(b1, l1 as u8), v4_of(b2, l2 as u8), proto, sp, dp)
            }
        })
}

// ---- properties ----------------------------------------------------------

fn check_against_model(ids: &[ProxyId], check: bool, keys: &[FlowKey]) -> Result<(), TestCaseError> {
    let table = ProxyIdTable::new(ids.to_vec(), check).unwrap();
    let mut out = vec![Verdict::NoMatch; keys.len()];
    for chunk in (0..keys.len()).step_by(64) {
        let end = (chunk + 64).min(keys.len());
        table.classify(&keys[chunk..end], &mut out[chunk..end]);
    }
    for (k, got) in keys.iter().zip(&out) {
        let want = model(ids, check, k);
        prop_assert_eq!(*got, want, "key {:?}", k);
        prop_assert_eq!(table.classify_one(k), want);
    }
    // Inbound: each SA's check against the reversed selectors; the strict
    // selector always, the table's check only when it enforces.
    for (i, p) in ids.iter().enumerate() {
        let index = ProxyIdIndex::new(i as u32);
        let sel = InboundSelector::new(p);
        for k in keys {
            let want = covers_inbound(p, k);
            prop_assert_eq!(sel.admits(k), want);
            prop_assert_eq!(table.admits_inbound(index, k), want || !table.enforces());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn small_tables_match_the_model(
        ids in proxy_ids(12),
        check in any::<bool>(),
        keys in prop::collection::vec(key(), 1..100),
    ) {
        check_against_model(&ids, check, &keys)?;
    }

    #[test]
    fn large_tables_match_the_model(
        ids in proxy_ids(200),
        keys in prop::collection::vec(key(), 64),
    ) {
        check_against_model(&ids, true, &keys)?;
    }

    /// Keys drawn from the configured proxy-IDs themselves, so most keys
    /// hit something and the overlap rule is exercised on real matches.
    #[test]
    fn keys_inside_proxy_ids_match_the_model(
        ids in proxy_ids(40),
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<u32>(), port(), port()), 64),
    ) {
        prop_assume!(!ids.is_empty());
        let keys: Vec<FlowKey> = picks
            .iter()
            .map(|(ix, r, sp, dp)| {
                let p = ix.get(&ids);
                let host = |pre: &Prefix| match pre.addr() {
                    IpAddr::V4(a) => {
                        let m = u32::MAX.checked_shl(32 - u32::from(pre.len())).unwrap_or(0);
                        IpAddr::V4(Ipv4Addr::from_bits(a.to_bits() | (r & !m)))
                    }
                    IpAddr::V6(a) => {
                        let m = u128::MAX.checked_shl(128 - u32::from(pre.len())).unwrap_or(0);
                        IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() | ((u128::from(*r) * 0x1_0001) & !m)))
                    }
                };
                let proto = p.service.ip_protocol().unwrap_or(6);
                let sp = if p.service.src_ports().contains(*sp) { *sp } else { p.service.src_ports().first() };
                let dp = if p.service.dst_ports().contains(*dp) { *dp } else { p.service.dst_ports().last() };
                FlowKey::new(host(&p.local), host(&p.remote), proto, sp, dp).unwrap()
            })
            .collect();
        check_against_model(&ids, true, &keys)?;
    }

    #[test]
    fn duplicates_are_refused_with_both_positions(
        ids in proxy_ids(20),
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
    ) {
        prop_assume!(!ids.is_empty());
        let first = pick.index(ids.len());
        let mut with_dup = ids.clone();
        let second = first + 1 + at.index(ids.len() - first);
        with_dup.insert(second, ids[first]);
        let err = ProxyIdTable::new(with_dup, false).unwrap_err();
        prop_assert_eq!(
            err,
            PolicyError::DuplicateProxyId { first, second, proxy_id: ids[first].to_string() }
        );
    }

    #[test]
    fn display_round_trips(p in proxy_id()) {
        prop_assert_eq!(p.to_string().parse::<ProxyId>().unwrap(), p);
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}") {
        let _ = s.parse::<Prefix>();
        let _ = s.parse::<Service>();
        let _ = s.parse::<ProxyId>();
        let _ = s.parse::<PortRange>();
    }
}

proptest! {
    // Big tables: fewer cases (each checks ~2,000 proxy-IDs by brute force).
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Thousands of proxy-IDs in few shapes: full hash buckets, keys in
    /// their second bucket, entries with several services.
    #[test]
    fn large_single_shape_tables_match_the_model(
        pairs in prop::collection::vec((0u32..48, 0u32..48, prop::sample::select(vec![24u8, 24, 24, 23]), service()), 500..2500),
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), port(), any::<bool>()), 64),
    ) {
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<ProxyId> = pairs
            .iter()
            .map(|&(a, b, len, service)| ProxyId {
                local: Prefix::new_masked(IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 | a << 8)), len).unwrap(),
                remote: Prefix::new_masked(IpAddr::V4(Ipv4Addr::from_bits(0xac10_0000 | b << 8)), 24).unwrap(),
                service,
            })
            .filter(|p| seen.insert(*p))
            .collect();
        let keys: Vec<FlowKey> = picks
            .iter()
            .map(|(ix, host, dp, wild)| {
                let p = ix.get(&ids);
                let bits = |pre: &Prefix| match pre.addr() {
                    IpAddr::V4(a) => a.to_bits(),
                    IpAddr::V6(_) => 0,
                };
                // A host inside the proxy-ID, or (wild) one whose remote
                // may be in no proxy-ID at all.
                let remote = bits(&p.remote) | u32::from(*host) | if *wild { u32::from(*host) << 14 } else { 0 };
                let proto = p.service.ip_protocol().unwrap_or(17);
                FlowKey::v4(Ipv4Addr::from_bits(bits(&p.local) | 9), Ipv4Addr::from_bits(remote), proto, 40000, *dp)
            })
            .collect();
        check_against_model(&ids, true, &keys)?;
    }
}
