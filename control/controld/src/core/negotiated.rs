//! The SAs IKE negotiated, by id and by proxy-ID, so that what one Quick
//! Mode changes is found without a pass over every SA.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::core::translate::DesiredSa;

/// A proxy-ID as the status rules know it: (VPN, proxy-ID in ScreenOS
/// words).
pub type PairKey = (String, String);

/// The key of an SA.
pub fn key_of(d: &DesiredSa) -> PairKey {
    (d.vpn_name.clone(), d.spec.proxy_id.clone())
}

/// The negotiated SAs, with an index by proxy-ID kept in step.
#[derive(Debug, Clone, Default)]
pub struct NegotiatedSas {
    by_id: BTreeMap<u64, DesiredSa>,
    by_key: HashMap<PairKey, BTreeSet<u64>>,
}

impl NegotiatedSas {
    /// By SA id.
    pub fn by_id(&self) -> &BTreeMap<u64, DesiredSa> {
        &self.by_id
    }

    /// The SA ids of one proxy-ID, lowest first.
    pub fn ids_of(&self, key: &PairKey) -> Option<&BTreeSet<u64>> {
        self.by_key.get(key)
    }

    /// Every proxy-ID that has a negotiated SA.
    pub fn keys(&self) -> impl Iterator<Item = &PairKey> {
        self.by_key.keys()
    }

    pub fn get(&self, id: &u64) -> Option<&DesiredSa> {
        self.by_id.get(id)
    }

    pub fn contains_key(&self, id: &u64) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &DesiredSa)> {
        self.by_id.iter()
    }

    pub fn values(&self) -> impl Iterator<Item = &DesiredSa> {
        self.by_id.values()
    }

    /// Adds (or replaces) an SA; returns the SA it replaced.
    pub fn insert(&mut self, s: DesiredSa) -> Option<DesiredSa> {
        let id = s.spec.id;
        let old = self.remove(&id);
        self.by_key.entry(key_of(&s)).or_default().insert(id);
        self.by_id.insert(id, s);
        old
    }

    /// Removes an SA; returns it.
    pub fn remove(&mut self, id: &u64) -> Option<DesiredSa> {
        let old = self.by_id.remove(id)?;
        let key = key_of(&old);
        if let Some(ids) = self.by_key.get_mut(&key) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_key.remove(&key);
            }
        }
        Some(old)
    }

    /// Keeps the SAs `keep` accepts; returns the keys of those removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&DesiredSa) -> bool) -> Vec<PairKey> {
        let gone: Vec<u64> = self.by_id.iter().filter(|(_, s)| !keep(s)).map(|(id, _)| *id).collect();
        gone.iter().filter_map(|id| self.remove(id)).map(|s| key_of(&s)).collect()
    }
}
