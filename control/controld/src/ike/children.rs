//! A gateway's child SA records, by inbound SPI, with the two lookups the
//! events need kept beside them: the children of a proxy-ID (a new pair
//! supersedes the older ones of its proxy-ID, a failed rekey is retried
//! on them) and the child of a fastpathd SA id (soft and hard expiries
//! name SAs). Each is a map lookup, so with 10,000 children an event
//! costs what it touches, not a walk of all of them.
//!
//! A record's proxy-ID and SA ids are set when it is inserted and never
//! changed (they name the pair); everything else may be changed through
//! [`Children::get_mut`] and [`Children::iter_mut`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use esprit_policy::ProxyId;

use super::ChildRecord;

/// The records and their indexes; reads go through `Deref` to the map.
#[derive(Debug, Default)]
pub(super) struct Children {
    map: BTreeMap<u32, ChildRecord>,
    by_proxy: HashMap<ProxyId, BTreeSet<u32>>,
    by_sa: HashMap<u64, u32>,
}

impl core::ops::Deref for Children {
    type Target = BTreeMap<u32, ChildRecord>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl Children {
    /// Adds (or replaces) the child with inbound SPI `spi`.
    pub(super) fn insert(&mut self, spi: u32, c: ChildRecord) {
        self.remove(&spi);
        self.by_proxy.entry(c.proxy_id).or_default().insert(spi);
        for id in c.ids {
            self.by_sa.insert(id, spi);
        }
        self.map.insert(spi, c);
    }

    /// Removes the child with inbound SPI `spi`.
    pub(super) fn remove(&mut self, spi: &u32) -> Option<ChildRecord> {
        let c = self.map.remove(spi)?;
        if let Some(set) = self.by_proxy.get_mut(&c.proxy_id) {
            set.remove(spi);
            if set.is_empty() {
                self.by_proxy.remove(&c.proxy_id);
            }
        }
        for id in c.ids {
            if self.by_sa.get(&id) == Some(spi) {
                self.by_sa.remove(&id);
            }
        }
        Some(c)
    }

    /// The child, to change its timers.
    pub(super) fn get_mut(&mut self, spi: &u32) -> Option<&mut ChildRecord> {
        self.map.get_mut(spi)
    }

    /// Every child, to change their timers.
    pub(super) fn iter_mut(&mut self) -> std::collections::btree_map::IterMut<'_, u32, ChildRecord> {
        self.map.iter_mut()
    }

    /// The inbound SPIs of `proxy_id`'s children.
    pub(super) fn of_proxy(&self, proxy_id: &ProxyId) -> Vec<u32> {
        self.by_proxy.get(proxy_id).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    /// True if `proxy_id` has a child.
    pub(super) fn has_proxy(&self, proxy_id: &ProxyId) -> bool {
        self.by_proxy.contains_key(proxy_id)
    }

    /// The inbound SPI of the child one of whose SAs is `sa`.
    pub(super) fn by_sa(&self, sa: u64) -> Option<u32> {
        self.by_sa.get(&sa).copied()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn child(proxy_id: &str, ids: [u64; 2]) -> ChildRecord {
        ChildRecord {
            vpn: 0,
            proxy_id: proxy_id.parse().unwrap(),
            ids,
            initiator: true,
            expires: None,
            rekey_at: None,
            rekeying: false,
            superseded: None,
            pending_outbound: None,
        }
    }

    /// The indexes follow inserts, replacements and removals.
    #[test]
    fn the_indexes_follow_the_records() {
        let (p, q) = (
            "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY",
            "local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 ANY",
        );
        let (pp, qq): (ProxyId, ProxyId) = (p.parse().unwrap(), q.parse().unwrap());
        let mut c = Children::default();
        c.insert(10, child(p, [1, 2]));
        c.insert(11, child(p, [3, 4]));
        c.insert(12, child(q, [5, 6]));
        assert_eq!((c.of_proxy(&pp), c.of_proxy(&qq)), (vec![10, 11], vec![12]));
        assert_eq!((c.by_sa(4), c.by_sa(5), c.by_sa(7)), (Some(11), Some(12), None));
        // Replaced under the same SPI: the old record's entries go.
        c.insert(11, child(q, [7, 8]));
        assert_eq!((c.of_proxy(&pp), c.of_proxy(&qq)), (vec![10], vec![11, 12]));
        assert_eq!((c.by_sa(3), c.by_sa(8)), (None, Some(11)));
        assert!(c.remove(&10).is_some() && c.remove(&10).is_none());
        assert!(!c.has_proxy(&pp) && c.has_proxy(&qq));
        assert_eq!((c.by_sa(1), c.len()), (None, 2));
    }
}
