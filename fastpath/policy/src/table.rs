//! The proxy-ID table of one VPN and its batch classifier.

use std::collections::HashMap;
use std::fmt;

use crate::inbound::InboundSelector;
use crate::tss::{Addr, Entry, Tss};
use crate::{FlowKey, PolicyError, ProxyId, ProxyIdIndex, Verdict};

/// Most proxy-IDs one table holds (indices stay well inside `u32`).
pub const MAX_PROXY_IDS: usize = 1 << 20;

/// What `classify` does, fixed when the table is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// No proxy-ID: nothing matches.
    Empty,
    /// Check off and one proxy-ID: it only builds the SA; every packet
    /// routed into the tunnel uses it.
    All,
    /// Check on, or several proxy-IDs: the most specific match, or none.
    Classify,
}

/// The proxy-IDs of one VPN, compiled for classification. Immutable:
/// rebuild on any change (off the packet path) and swap.
pub struct ProxyIdTable {
    proxy_ids: Box<[ProxyId]>,
    inbound: Box<[InboundSelector]>,
    check: bool,
    mode: Mode,
    v4: Tss<u32>,
    v6: Tss<u128>,
}

impl ProxyIdTable {
    /// Compiles a VPN's proxy-IDs (positions in `proxy_ids` become the
    /// [`ProxyIdIndex`]es) with the VPN's `proxy-id check` setting.
    ///
    /// Refuses a proxy-ID whose local and remote prefixes differ in family
    /// ([`PolicyError::MixedFamily`]), two equal proxy-IDs
    /// ([`PolicyError::DuplicateProxyId`]) and more than [`MAX_PROXY_IDS`].
    /// IPv4 and IPv6 proxy-IDs may share a table.
    pub fn new(proxy_ids: Vec<ProxyId>, check: bool) -> Result<ProxyIdTable, PolicyError> {
        if proxy_ids.len() > MAX_PROXY_IDS {
            return Err(PolicyError::TooManyProxyIds { count: proxy_ids.len(), limit: MAX_PROXY_IDS });
        }
        let mut seen: HashMap<&ProxyId, usize> = HashMap::with_capacity(proxy_ids.len());
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (position, p) in proxy_ids.iter().enumerate() {
            if let Some(&first) = seen.get(p) {
                return Err(PolicyError::DuplicateProxyId {
                    first,
                    second: position,
                    proxy_id: p.to_string(),
                });
            }
            seen.insert(p, position);
            // Fits: position < MAX_PROXY_IDS <= u32::MAX.
            let index = u32::try_from(position).unwrap_or(u32::MAX);
            let mixed = || PolicyError::MixedFamily { position, proxy_id: p.to_string() };
            match (p.remote.v4_bits(), p.local.v4_bits()) {
                (Some((remote, remote_len)), Some((local, local_len))) => {
                    v4.push(Entry { remote, remote_len, local, local_len, service: p.service, index })
                }
                (None, None) => {
                    let (Some((remote, remote_len)), Some((local, local_len))) =
                        (p.remote.v6_bits(), p.local.v6_bits())
                    else {
                        return Err(mixed());
                    };
                    v6.push(Entry { remote, remote_len, local, local_len, service: p.service, index });
                }
                _ => return Err(mixed()),
            }
        }
        let mode = match proxy_ids.len() {
            0 => Mode::Empty,
            1 if !check => Mode::All,
            _ => Mode::Classify,
        };
        let inbound = proxy_ids.iter().map(InboundSelector::new).collect();
        Ok(ProxyIdTable {
            proxy_ids: proxy_ids.into_boxed_slice(),
            inbound,
            check,
            mode,
            v4: Tss::build(&v4),
            v6: Tss::build(&v6),
        })
    }

    /// Classifies a burst: `out[i]` gets the verdict of `keys[i]`, for
    /// `i < min(keys.len(), out.len())`; the rest of `out` is untouched.
    /// Any burst length works; the fast path passes up to 64.
    pub fn classify(&self, keys: &[FlowKey], out: &mut [Verdict]) {
        // The mode is decided once per burst, not per packet.
        match self.mode {
            Mode::Empty => out.iter_mut().zip(keys).for_each(|(o, _)| *o = Verdict::NoMatch),
            Mode::All => {
                out.iter_mut().zip(keys).for_each(|(o, _)| *o = Verdict::Match(ProxyIdIndex::new(0)))
            }
            Mode::Classify => {
                // One key at a time. The loop body is short and the keys
                // independent, so the CPU overlaps several keys' bucket
                // loads by itself: a first pass hashing the whole burst to
                // touch its buckets was measured 1.5 ns per packet slower
                // at every table size, 10,000 proxy-IDs included (and
                // again 0.5 ns slower with the tables evicted between
                // bursts). Runs of one flow are the caller's to fold: the
                // worker classifies such a run once.
                for (o, key) in out.iter_mut().zip(keys) {
                    *o = self.lookup(key);
                }
            }
        }
    }

    /// Classifies one packet (same answer as [`classify`](Self::classify)).
    #[inline]
    pub fn classify_one(&self, key: &FlowKey) -> Verdict {
        match self.mode {
            Mode::Empty => Verdict::NoMatch,
            Mode::All => Verdict::Match(ProxyIdIndex::new(0)),
            Mode::Classify => self.lookup(key),
        }
    }

    #[inline(always)]
    fn lookup(&self, key: &FlowKey) -> Verdict {
        let found = match key {
            FlowKey::V4(_) => u32::probe(key).and_then(|p| self.v4.lookup(&p)),
            FlowKey::V6(_) => u128::probe(key).and_then(|p| self.v6.lookup(&p)),
        };
        match found {
            Some(i) => Verdict::Match(ProxyIdIndex::new(i)),
            None => Verdict::NoMatch,
        }
    }

    /// The inbound check (RFC 4301 §5.2) of a packet decrypted from the SA
    /// of proxy-ID `index`: true when it may be delivered.
    ///
    /// When the table does not enforce proxy-IDs outbound (check off, one
    /// proxy-ID) it does not enforce them inbound either, so replies to the
    /// traffic it let out come back: true for index 0. An index outside the
    /// table is refused. For the strict check regardless of the setting,
    /// hold an [`InboundSelector`] ([`Self::inbound_selector`]).
    #[inline]
    pub fn admits_inbound(&self, index: ProxyIdIndex, key: &FlowKey) -> bool {
        match self.mode {
            Mode::All => index.get() == 0,
            Mode::Empty | Mode::Classify => self.inbound.get(index.get()).is_some_and(|s| s.admits(key)),
        }
    }

    /// The compiled inbound selector of one proxy-ID, for an SA context.
    pub fn inbound_selector(&self, index: ProxyIdIndex) -> Option<InboundSelector> {
        self.inbound.get(index.get()).copied()
    }

    /// The proxy-IDs, in configuration order (indexable by
    /// [`ProxyIdIndex::get`]).
    pub fn proxy_ids(&self) -> &[ProxyId] {
        &self.proxy_ids
    }

    /// The proxy-ID at `index`.
    pub fn get(&self, index: ProxyIdIndex) -> Option<&ProxyId> {
        self.proxy_ids.get(index.get())
    }

    /// Number of proxy-IDs.
    pub fn len(&self) -> usize {
        self.proxy_ids.len()
    }

    /// True when the VPN has no proxy-ID.
    pub fn is_empty(&self) -> bool {
        self.proxy_ids.is_empty()
    }

    /// The configured `proxy-id check` setting.
    pub fn check(&self) -> bool {
        self.check
    }

    /// True when packets are matched against the proxy-IDs (check on, or
    /// more than one proxy-ID, or none); false when the single proxy-ID
    /// takes every packet.
    pub fn enforces(&self) -> bool {
        self.mode != Mode::All
    }

    /// Number of (remote length, local length) shapes, IPv4 and IPv6: the
    /// hash probes a non-matching packet costs at most (diagnostics,
    /// benches).
    pub fn shape_count(&self) -> (usize, usize) {
        (self.v4.shape_count(), self.v6.shape_count())
    }
}

impl fmt::Debug for ProxyIdTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyIdTable")
            .field("len", &self.proxy_ids.len())
            .field("check", &self.check)
            .field("mode", &self.mode)
            .field("shapes", &self.shape_count())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::protocol;
    use crate::{Prefix, Service};

    fn pid(s: &str) -> ProxyId {
        s.parse().unwrap()
    }

    fn key(src: &str, dst: &str, proto: u8, sport: u16, dport: u16) -> FlowKey {
        FlowKey::new(src.parse().unwrap(), dst.parse().unwrap(), proto, sport, dport).unwrap()
    }

    fn m(i: u32) -> Verdict {
        Verdict::Match(ProxyIdIndex::new(i))
    }

    /// The seed's (KB16008) four proxy-IDs: two local and two remote
    /// networks, every pair, service any.
    fn seed(check: bool) -> ProxyIdTable {
        let ids = [
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any",
            "local-ip 10.1.1.0/24 remote-ip 10.2.2.0/24 any",
            "local-ip 10.1.2.0/24 remote-ip 10.2.1.0/24 any",
            "local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 any",
        ];
        ProxyIdTable::new(ids.iter().map(|s| pid(s)).collect(), check).unwrap()
    }

    #[test]
    fn seed_four_proxy_ids() {
        for check in [true, false] {
            // Four proxy-IDs: the check is on whatever the setting.
            let t = seed(check);
            assert!(t.enforces());
            assert_eq!(t.classify_one(&key("10.1.1.5", "10.2.1.9", 6, 1, 80)), m(0));
            assert_eq!(t.classify_one(&key("10.1.1.5", "10.2.2.9", 17, 1, 53)), m(1));
            assert_eq!(t.classify_one(&key("10.1.2.5", "10.2.1.9", 1, 0, 0x0800)), m(2));
            assert_eq!(t.classify_one(&key("10.1.2.5", "10.2.2.9", 47, 0, 0)), m(3));
            // Routed into tunnel.1 but matching no proxy-ID: dropped.
            assert_eq!(t.classify_one(&key("10.1.3.5", "10.2.1.9", 6, 1, 80)), Verdict::NoMatch);
            assert_eq!(t.classify_one(&key("10.1.1.5", "10.2.3.9", 6, 1, 80)), Verdict::NoMatch);
            // Reverse direction is not outbound traffic of these proxy-IDs.
            assert_eq!(t.classify_one(&key("10.2.1.9", "10.1.1.5", 6, 80, 1)), Verdict::NoMatch);
            assert_eq!(t.classify_one(&key("::1", "::2", 6, 80, 1)), Verdict::NoMatch);
            // Replies decrypted from each SA pass that SA's inbound check only.
            let reply = key("10.2.2.9", "10.1.2.5", 47, 0, 0);
            assert!(t.admits_inbound(ProxyIdIndex::new(3), &reply));
            for i in 0..3 {
                assert!(!t.admits_inbound(ProxyIdIndex::new(i), &reply));
            }
            assert!(!t.admits_inbound(ProxyIdIndex::new(4), &reply));
        }
    }

    #[test]
    fn batch_equals_one_by_one() {
        let t = seed(true);
        let keys: Vec<FlowKey> = (0..64u8)
            .map(|i| {
                key(
                    &format!("10.1.{}.{}", i % 4, i),
                    &format!("10.2.{}.{}", (i / 4) % 4, i),
                    6,
                    1000,
                    u16::from(i),
                )
            })
            .collect();
        let mut out = [Verdict::NoMatch; 64];
        t.classify(&keys, &mut out);
        for (k, v) in keys.iter().zip(out) {
            assert_eq!(v, t.classify_one(k));
        }
        assert!(out.iter().any(|v| v.index().is_some()));
        assert!(out.contains(&Verdict::NoMatch));
        // Mismatched lengths: only the common part is written.
        let mut short = [m(99); 3];
        t.classify(&keys[..2], &mut short);
        assert_eq!(short[2], m(99));
        t.classify(&keys, &mut short);
        assert_eq!(short[2], t.classify_one(&keys[2]));
        t.classify(&[], &mut short);
    }

    #[test]
    fn check_off_single_proxy_id_takes_everything() {
        let p = pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 HTTP");
        let t = ProxyIdTable::new(vec![p], false).unwrap();
        assert!(!t.enforces());
        assert!(!t.check());
        let outside = key("192.0.2.1", "198.51.100.1", 17, 5, 5);
        assert_eq!(t.classify_one(&outside), m(0));
        assert_eq!(t.classify_one(&key("::1", "::2", 6, 80, 1)), m(0));
        let mut out = [Verdict::NoMatch; 2];
        t.classify(&[outside, outside], &mut out);
        assert_eq!(out, [m(0), m(0)]);
        // Symmetric inbound: not enforced either, but the selector is strict.
        assert!(t.admits_inbound(ProxyIdIndex::new(0), &outside));
        assert!(!t.admits_inbound(ProxyIdIndex::new(1), &outside));
        assert!(!t.inbound_selector(ProxyIdIndex::new(0)).unwrap().admits(&outside));
    }

    #[test]
    fn check_on_single_proxy_id_enforces() {
        let p = pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 HTTP");
        let t = ProxyIdTable::new(vec![p], true).unwrap();
        assert!(t.enforces());
        assert!(t.check());
        assert_eq!(t.classify_one(&key("10.1.1.1", "10.2.1.1", 6, 5000, 80)), m(0));
        assert_eq!(t.classify_one(&key("10.1.1.1", "10.2.1.1", 6, 5000, 81)), Verdict::NoMatch);
        assert_eq!(t.classify_one(&key("192.0.2.1", "10.2.1.1", 6, 5000, 80)), Verdict::NoMatch);
        assert!(t.admits_inbound(ProxyIdIndex::new(0), &key("10.2.1.1", "10.1.1.1", 6, 80, 5000)));
        assert!(!t.admits_inbound(ProxyIdIndex::new(0), &key("10.2.1.1", "10.1.1.1", 6, 5000, 80)));
    }

    #[test]
    fn zero_proxy_ids_match_nothing() {
        for check in [true, false] {
            let t = ProxyIdTable::new(vec![], check).unwrap();
            assert!(t.is_empty());
            assert!(t.enforces());
            let k = key("10.1.1.1", "10.2.1.1", 6, 5000, 80);
            assert_eq!(t.classify_one(&k), Verdict::NoMatch);
            let mut out = [m(7)];
            t.classify(&[k], &mut out);
            assert_eq!(out, [Verdict::NoMatch]);
            assert!(!t.admits_inbound(ProxyIdIndex::new(0), &k));
        }
    }

    #[test]
    fn overlap_most_specific_wins() {
        // Listed broadest first: configuration order must not matter
        // except for exact ties.
        let ids = [
            "local-ip 0.0.0.0/0 remote-ip 0.0.0.0/0 ANY",         // 0
            "local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 ANY",     // 1
            "local-ip 0.0.0.0/0 remote-ip 10.2.1.0/24 ANY",       // 2
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY",     // 3
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 TCP-ANY", // 4
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 HTTP",    // 5
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 protocol tcp src-port 1024-65535 dst-port 80", // 6
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 protocol tcp dst-port 0-1023", // 7
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 protocol udp dst-port 0-1023", // 8
        ];
        let t = ProxyIdTable::new(ids.iter().map(|s| pid(s)).collect(), true).unwrap();
        // Remote length first: /24 remote with /0 local beats /16-/16.
        assert_eq!(t.classify_one(&key("10.1.9.9", "10.2.1.1", 17, 1, 1)), m(2));
        assert_eq!(t.classify_one(&key("10.1.9.9", "10.2.9.9", 17, 1, 1)), m(1));
        assert_eq!(t.classify_one(&key("192.0.2.1", "10.2.9.9", 17, 1, 1)), m(0));
        // Same remote length: local length decides.
        assert_eq!(t.classify_one(&key("10.1.1.1", "10.2.1.1", 47, 0, 0)), m(3));
        // Same prefixes: specific protocol beats ANY.
        assert_eq!(t.classify_one(&key("10.1.1.1", "10.2.1.1", 6, 1, 9999)), m(4));
        // Narrower destination range beats wider: 80 over 0-1023 over all.
        assert_eq!(t.classify_one(&key("10.1.1.1", "10.2.1.1", 6, 80, 22)), m(7));
        assert_eq!(t.classify_one(&key("10.1.1.1", "10.2.1.1", 6, 80, 80)), m(5));
        // Same destination range: narrower source range wins.
        assert_eq!(t.classify_one(&key("10.1.1.1", "10.2.1.1", 6, 2000, 80)), m(6));
        assert_eq!(t.classify_one(&key("10.1.1.1", "10.2.1.1", 17, 2000, 80)), m(8));
        assert_eq!(t.classify_one(&key("10.1.1.1", "10.2.1.1", 17, 2000, 8080)), m(3));
    }

    #[test]
    fn remaining_ties_go_to_configuration_order() {
        // Same prefixes, same protocol, same widths, different ranges.
        let a = pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 protocol tcp dst-port 100-199");
        let b = pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 protocol tcp dst-port 150-249");
        let k = key("10.1.1.1", "10.2.1.1", 6, 1, 170);
        let t = ProxyIdTable::new(vec![a, b], true).unwrap();
        assert_eq!(t.classify_one(&k), m(0));
        let t = ProxyIdTable::new(vec![b, a], true).unwrap();
        assert_eq!(t.classify_one(&k), m(0));
        assert_eq!(t.classify_one(&key("10.1.1.1", "10.2.1.1", 6, 1, 120)), m(1));
    }

    #[test]
    fn adding_a_broader_proxy_id_never_steals_traffic() {
        let narrow = pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY");
        let broad = pid("local-ip 10.0.0.0/8 remote-ip 10.0.0.0/8 ANY");
        let k = key("10.1.1.1", "10.2.1.1", 6, 1, 2);
        let before = ProxyIdTable::new(vec![narrow], true).unwrap();
        let after = ProxyIdTable::new(vec![narrow, broad], true).unwrap();
        let prepended = ProxyIdTable::new(vec![broad, narrow], true).unwrap();
        assert_eq!(before.classify_one(&k), m(0));
        assert_eq!(after.classify_one(&k), m(0));
        assert_eq!(prepended.classify_one(&k), m(1));
    }

    #[test]
    fn ipv6_and_mixed_tables() {
        let ids = vec![
            pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY"),
            pid("local-ip 2001:db8:1::/48 remote-ip 2001:db8:2::/48 ANY"),
            pid("local-ip 2001:db8:1::/48 remote-ip 2001:db8:2:5::/64 SSH"),
            pid("local-ip ::/0 remote-ip ::/0 protocol icmp6"),
        ];
        let t = ProxyIdTable::new(ids, true).unwrap();
        assert_eq!(t.shape_count(), (1, 3));
        assert_eq!(t.classify_one(&key("10.1.1.1", "10.2.1.1", 6, 1, 22)), m(0));
        assert_eq!(t.classify_one(&key("2001:db8:1::1", "2001:db8:2::1", 6, 1, 22)), m(1));
        assert_eq!(t.classify_one(&key("2001:db8:1::1", "2001:db8:2:5::1", 6, 1, 22)), m(2));
        assert_eq!(t.classify_one(&key("2001:db8:1::1", "2001:db8:2:5::1", 6, 1, 23)), m(1));
        assert_eq!(t.classify_one(&key("2001:db8:9::1", "2001:db8:2::1", protocol::ICMPV6, 0, 0x8000)), m(3));
        assert_eq!(t.classify_one(&key("2001:db8:9::1", "2001:db8:2::1", 6, 1, 22)), Verdict::NoMatch);
        // The IPv4-mapped form of a v4 address is not the v4 address.
        assert_eq!(t.classify_one(&key("::ffff:10.1.1.1", "::ffff:10.2.1.1", 6, 1, 22)), Verdict::NoMatch);
        assert!(
            t.admits_inbound(ProxyIdIndex::new(2), &key("2001:db8:2:5::1", "2001:db8:1::1", 6, 22, 40000))
        );
        assert!(
            !t.admits_inbound(ProxyIdIndex::new(2), &key("2001:db8:2:5::1", "2001:db8:1::1", 6, 40000, 22))
        );
    }

    #[test]
    fn refuses_duplicates_and_mixed_families() {
        let a = pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY");
        let b = pid("local-ip 10.1.2.0/24 remote-ip 10.2.1.0/24 ANY");
        let e = ProxyIdTable::new(vec![a, b, a], true).unwrap_err();
        assert_eq!(e, PolicyError::DuplicateProxyId { first: 0, second: 2, proxy_id: a.to_string() });
        assert_eq!(
            e.to_string(),
            "proxy-id #2 duplicates proxy-id #0: local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY"
        );
        // `protocol tcp` with all ports is the same service as TCP-ANY.
        let c = pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 TCP-ANY");
        let d = pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 protocol tcp");
        assert!(matches!(
            ProxyIdTable::new(vec![c, d], true),
            Err(PolicyError::DuplicateProxyId { first: 0, second: 1, .. })
        ));
        let mixed =
            ProxyId { local: "10.1.1.0/24".parse().unwrap(), remote: Prefix::ANY_V6, service: Service::ANY };
        let e = ProxyIdTable::new(vec![a, mixed], false).unwrap_err();
        assert!(matches!(e, PolicyError::MixedFamily { position: 1, .. }), "{e:?}");
        assert!(e.to_string().contains("local-ip 10.1.1.0/24 remote-ip ::/0 ANY"));
    }

    #[test]
    fn accessors() {
        let t = seed(false);
        assert_eq!(t.len(), 4);
        assert_eq!(t.proxy_ids().len(), 4);
        assert_eq!(t.get(ProxyIdIndex::new(1)).unwrap().remote.to_string(), "10.2.2.0/24");
        assert!(t.get(ProxyIdIndex::new(4)).is_none());
        assert!(t.inbound_selector(ProxyIdIndex::new(4)).is_none());
        assert!(format!("{t:?}").contains("len: 4"));
    }
}
