//! The status rules' memory, kept so that an event costs what it changes:
//! the last status of every proxy-ID and tunnel interface, a count of the
//! proxy-ID statuses per VPN (a tunnel interface's status is read from
//! its VPNs' counts, not from every pair), the proxy-IDs an event touched
//! since the last refresh, and the configuration's look-ups (built once
//! per configuration change).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::SystemTime;

use esprit_config::Config;
use esprit_policy::Prefix;

use super::Status;
use crate::core::negotiated::PairKey;
use crate::core::translate::Desired;

/// What the configuration says about each proxy-ID and tunnel interface,
/// indexed (rebuilt with the configuration).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConfigIndex {
    /// Position of each proxy-ID in its VPN's configuration.
    pub(crate) position: HashMap<PairKey, usize>,
    /// The remote prefix of each configured proxy-ID.
    pub(crate) remote: HashMap<PairKey, Prefix>,
    /// The configured (manual-key) SAs of each proxy-ID, lowest id first.
    pub(crate) configured: HashMap<PairKey, Vec<u64>>,
    /// AutoKey proxy-IDs waiting for IKE.
    pub(crate) pending: HashSet<PairKey>,
    /// VPN -> the tunnel interface it is bound to.
    pub(crate) tunnel_of: HashMap<String, String>,
    /// Tunnel interface -> its VPNs, in configuration order.
    pub(crate) vpns_of: HashMap<String, Vec<String>>,
    /// VPNs with `withdraw-routes` bound to `tunnel.N` -> N.
    pub(crate) withdraw_tunnel: HashMap<String, u32>,
}

impl ConfigIndex {
    pub(crate) fn new(config: &Config, desired: &Desired) -> ConfigIndex {
        let mut x = ConfigIndex::default();
        for v in config.vpns() {
            for (i, p) in config.proxy_ids(&v.name).iter().enumerate() {
                let key = (v.name.clone(), p.to_string());
                x.remote.entry(key.clone()).or_insert(p.remote);
                x.position.entry(key).or_insert(i);
            }
            if let Some(b) = &v.bind {
                x.tunnel_of.insert(v.name.clone(), b.to_string());
                x.vpns_of.entry(b.to_string()).or_default().push(v.name.clone());
                if let (true, Some(n)) = (v.withdraw_routes, b.tunnel_number()) {
                    x.withdraw_tunnel.insert(v.name.clone(), n);
                }
            }
        }
        for (id, d) in &desired.sas {
            x.configured.entry((d.vpn_name.clone(), d.spec.proxy_id.clone())).or_default().push(*id);
        }
        x.pending = desired.pending.iter().map(|p| (p.vpn_name.clone(), p.proxy_id.clone())).collect();
        x
    }
}

/// The last status of each proxy-ID ((VPN, proxy-ID)) and tunnel interface
/// (("", tunnel.N)), when it last changed, and what to look at next.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatusBook {
    seen: BTreeMap<PairKey, (Status, Option<SystemTime>)>,
    /// VPN -> how many of its proxy-IDs are UP, READY, DOWN.
    counts: HashMap<String, [usize; 3]>,
    /// Proxy-IDs touched since the last refresh.
    dirty: BTreeSet<PairKey>,
    /// Everything may have changed (configuration, fastpathd lost).
    all: bool,
}

fn slot(s: Status) -> usize {
    match s {
        Status::Up => 0,
        Status::Ready => 1,
        Status::Down => 2,
    }
}

impl StatusBook {
    pub(crate) fn get(&self, key: &PairKey) -> Option<&(Status, Option<SystemTime>)> {
        self.seen.get(key)
    }

    /// Notes a status; a proxy-ID's (VPN not empty) is counted for its VPN.
    pub(crate) fn set(&mut self, key: PairKey, status: Status, since: Option<SystemTime>) {
        let vpn = (!key.0.is_empty()).then(|| key.0.clone());
        if let Some((old, _)) = self.seen.insert(key, (status, since)) {
            if let Some(v) = &vpn {
                self.count(v, old, false);
            }
        }
        if let Some(v) = &vpn {
            self.count(v, status, true);
        }
    }

    /// Forgets a proxy-ID or tunnel interface that is gone.
    pub(crate) fn remove(&mut self, key: &PairKey) {
        if let Some((old, _)) = self.seen.remove(key) {
            if !key.0.is_empty() {
                self.count(&key.0, old, false);
            }
        }
    }

    fn count(&mut self, vpn: &str, s: Status, add: bool) {
        let c = self.counts.entry(vpn.to_owned()).or_default();
        if add {
            c[slot(s)] += 1;
        } else {
            c[slot(s)] = c[slot(s)].saturating_sub(1);
            if c.iter().all(|n| *n == 0) {
                self.counts.remove(vpn);
            }
        }
    }

    /// How many proxy-IDs of `vpn` are UP, READY, DOWN.
    pub(crate) fn counts(&self, vpn: &str) -> [usize; 3] {
        self.counts.get(vpn).copied().unwrap_or_default()
    }

    /// The proxy-IDs (VPN not empty) the book holds.
    pub(crate) fn pair_keys(&self) -> impl Iterator<Item = &PairKey> {
        self.seen.keys().filter(|k| !k.0.is_empty())
    }

    /// The tunnel interfaces the book holds.
    pub(crate) fn tunnel_keys(&self) -> impl Iterator<Item = &PairKey> {
        self.seen.keys().filter(|k| k.0.is_empty())
    }

    /// This proxy-ID may have changed.
    pub(crate) fn touch(&mut self, key: PairKey) {
        if !self.all {
            self.dirty.insert(key);
        }
    }

    /// Everything may have changed.
    pub(crate) fn touch_all(&mut self) {
        self.all = true;
        self.dirty.clear();
    }

    /// What to look at: `None` for everything, else the touched proxy-IDs.
    pub(crate) fn take_touched(&mut self) -> Option<BTreeSet<PairKey>> {
        if std::mem::take(&mut self.all) {
            self.dirty.clear();
            None
        } else {
            Some(std::mem::take(&mut self.dirty))
        }
    }
}
