//! `idletime N` (ScreenOS, `set vpn NAME gateway ... idletime N`): an
//! AutoKey SA pair that carried no traffic for N minutes is deleted (a
//! Delete to the peer, RFC 2408 §4.8), and its proxy-ID goes READY: the
//! next packet that matches it negotiates a new pair, as the first one
//! did. 0 (the default) never ends a pair.
//!
//! Traffic is read from fastpathd's per-SA counters, which controld polls
//! anyway ([`crate::core::sa::STATS_INTERVAL_SECS`]); time is passed in.
//! A pair has moved when one of its SAs (the rekeyed ones included)
//! counts other than at the last reading (more; or fewer, a fastpathd
//! that restarted: its counters start again, and controld cannot tell, so
//! the pair is given a new idle time), or a new SA of it has counted any: a
//! rekey alone is no traffic, so an idle pair whose lifetime is shorter
//! than its idle time still ends. The precision is the polling interval.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use esprit_config::VpnKind;

use crate::core::controller::Controller;
use crate::core::events::{EventKind, EventRecord, Severity};
use crate::core::negotiated::{key_of, PairKey};

/// The traffic of one pair at the last reading.
#[derive(Debug, Clone)]
struct Seen {
    /// Packets (in or out) per SA id.
    packets: BTreeMap<u64, u64>,
    /// Since when none of them moved.
    since: Instant,
}

/// What the idle rule remembers: per pair, its counters and since when
/// they have not moved.
#[derive(Debug, Clone, Default)]
pub struct IdleTracker {
    pairs: HashMap<PairKey, Seen>,
}

/// One AutoKey pair at a reading of the counters.
#[derive(Debug, Clone)]
pub struct PairTraffic {
    /// (VPN, proxy-ID).
    pub key: PairKey,
    /// Packets per SA id of the pair (every negotiated SA of the proxy-ID).
    pub packets: BTreeMap<u64, u64>,
    /// Its VPN's idle time (zero: never idle).
    pub idle: Duration,
}

impl IdleTracker {
    /// Takes one reading of every AutoKey pair at `now`; returns the pairs
    /// that have carried nothing for their idle time, which it forgets (a
    /// pair negotiated again starts afresh). Pairs absent from the
    /// reading are forgotten too.
    pub fn observe(&mut self, now: Instant, reading: Vec<PairTraffic>) -> Vec<PairKey> {
        let mut next = HashMap::with_capacity(reading.len());
        let mut idle = Vec::new();
        for p in reading {
            if p.idle.is_zero() {
                continue;
            }
            let since = match self.pairs.remove(&p.key) {
                Some(old) if !moved(&old.packets, &p.packets) => old.since,
                _ => now,
            };
            if now.saturating_duration_since(since) >= p.idle {
                idle.push(p.key);
            } else {
                next.insert(p.key, Seen { packets: p.packets, since });
            }
        }
        self.pairs = next;
        idle
    }
}

impl Controller {
    /// After a reading of fastpathd's counters at `now`: the AutoKey pairs
    /// idle for their VPN's `idletime`, as (VPN HEX ID, proxy-ID), for IKE
    /// to delete with the peer. Their proxy-IDs go READY (not DOWN: idle
    /// is not lost), and the event log says why.
    pub fn take_idle_pairs(&mut self, now: Instant) -> Vec<(u32, String)> {
        // No VPN with an idle time (the default): nothing to read. Every
        // SA's counters are read only for a VPN that has one (this ran
        // over every SA each second: a tenth of controld's main loop at
        // 20,000 SAs).
        let idle_vpns: Vec<&str> = self
            .config
            .vpns()
            .filter(|v| matches!(&v.kind, VpnKind::AutoKey(a) if a.idletime_mins > 0))
            .map(|v| v.name.as_str())
            .collect();
        if idle_vpns.is_empty() {
            self.idle = IdleTracker::default();
            return Vec::new();
        }
        let mut per_sa: HashMap<u64, u64> = HashMap::with_capacity(self.stats.sas.len());
        for s in &self.stats.sas {
            *per_sa.entry(s.id).or_default() += s.packets;
        }
        let mut reading: BTreeMap<PairKey, PairTraffic> = BTreeMap::new();
        for (id, d) in self.ike_sas.iter() {
            if !idle_vpns.contains(&d.vpn_name.as_str()) {
                continue;
            }
            let Some(VpnKind::AutoKey(a)) = self.config.vpn(&d.vpn_name).map(|v| &v.kind) else { continue };
            let key = key_of(d);
            let p = reading.entry(key.clone()).or_insert_with(|| PairTraffic {
                key,
                packets: BTreeMap::new(),
                idle: Duration::from_secs(60 * u64::from(a.idletime_mins)),
            });
            p.packets.insert(*id, per_sa.get(id).copied().unwrap_or(0));
        }
        let idle = self.idle.observe(now, reading.into_values().collect());
        let mut out = Vec::with_capacity(idle.len());
        for key in idle {
            let minutes = match self.config.vpn(&key.0).map(|v| &v.kind) {
                Some(VpnKind::AutoKey(a)) => a.idletime_mins,
                _ => 0,
            };
            let mut r = EventRecord::new(
                Severity::Info,
                EventKind::SaDown,
                format!(
                    "vpn {} proxy-id {}: no traffic for {minutes} minute(s) (idletime): SA pair deleted, READY until traffic needs it",
                    key.0, key.1
                ),
            );
            r.vpn = Some(key.0.clone());
            r.proxy_id = Some(key.1.clone());
            r.peer = Some(self.vpn_gateway(&key.0).1).filter(|p| p != "-");
            self.events.push((self.clock)(), r);
            self.idled.insert(key.clone());
            self.status.touch(key.clone());
            out.push((self.hex_ids.get(&key.0).copied().unwrap_or(0), key.1));
        }
        out
    }
}

/// True when one SA counts other than before (a new SA: other than 0).
fn moved(before: &BTreeMap<u64, u64>, now: &BTreeMap<u64, u64>) -> bool {
    now.iter().any(|(id, n)| *n != before.get(id).copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PairKey {
        ("v".into(), "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY".into())
    }

    fn reading(packets: &[(u64, u64)], minutes: u64) -> Vec<PairTraffic> {
        vec![PairTraffic {
            key: key(),
            packets: packets.iter().copied().collect(),
            idle: Duration::from_secs(60 * minutes),
        }]
    }

    #[test]
    fn a_pair_without_traffic_for_its_idle_time_is_reported_once() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut t = IdleTracker::default();
        assert!(t.observe(at(0), reading(&[(1, 5), (2, 5)], 2)).is_empty());
        // Traffic at 60 s: the clock starts again.
        assert!(t.observe(at(60), reading(&[(1, 6), (2, 5)], 2)).is_empty());
        assert!(t.observe(at(179), reading(&[(1, 6), (2, 5)], 2)).is_empty());
        assert_eq!(t.observe(at(180), reading(&[(1, 6), (2, 5)], 2)), vec![key()]);
        // Forgotten: the next reading starts a new count.
        assert!(t.observe(at(181), reading(&[(1, 6), (2, 5)], 2)).is_empty());
    }

    #[test]
    fn a_rekey_is_not_traffic_and_zero_is_never() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut t = IdleTracker::default();
        assert!(t.observe(at(0), reading(&[(1, 5), (2, 5)], 1)).is_empty());
        // Rekeyed: new SAs with nothing on them, the old ones gone.
        assert!(t.observe(at(30), reading(&[(3, 0), (4, 0)], 1)).is_empty());
        assert_eq!(t.observe(at(60), reading(&[(3, 0), (4, 0)], 1)), vec![key()]);
        // A new SA that carried something is traffic.
        let mut t = IdleTracker::default();
        assert!(t.observe(at(0), reading(&[(1, 5)], 1)).is_empty());
        assert!(t.observe(at(59), reading(&[(1, 5), (3, 1)], 1)).is_empty());
        assert!(t.observe(at(100), reading(&[(1, 5), (3, 1)], 1)).is_empty());
        assert_eq!(t.observe(at(119), reading(&[(1, 5), (3, 1)], 1)), vec![key()]);
        // Counters that start again (fastpathd restarted) are not idleness.
        let mut t = IdleTracker::default();
        assert!(t.observe(at(0), reading(&[(1, 500)], 1)).is_empty());
        assert!(t.observe(at(59), reading(&[(1, 3)], 1)).is_empty());
        assert!(t.observe(at(61), reading(&[(1, 3)], 1)).is_empty());
        assert_eq!(t.observe(at(119), reading(&[(1, 3)], 1)), vec![key()]);
        // idletime 0: never.
        let mut t = IdleTracker::default();
        assert!(t.observe(at(0), reading(&[(1, 5)], 0)).is_empty());
        assert!(t.observe(at(1_000_000), reading(&[(1, 5)], 0)).is_empty());
    }
}
