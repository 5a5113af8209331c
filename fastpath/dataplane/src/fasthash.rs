//! A small multiply-shift hasher for the fast path's maps (SPIs, addresses):
//! their keys are fixed-size integers, and SipHash's DoS resistance buys
//! nothing for keys the control plane chose (SPIs) or bounded tables.

use core::hash::{BuildHasherDefault, Hasher};
use std::collections::HashMap;

/// Hashes integers with one multiplication per word.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its bucket index from
        // the low bits and its tag from the top seven.
        self.0 ^ (self.0 >> 29)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(K);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A map from small integer ids (tunnel and VPN numbers) to values: a
/// plain vector for ids below 4096 (one bounds check per lookup), a hash
/// map above.
#[derive(Debug, Clone)]
pub struct IdMap<T> {
    dense: Vec<Option<T>>,
    sparse: FastMap<u32, T>,
    len: usize,
}

impl<T> Default for IdMap<T> {
    fn default() -> Self {
        IdMap { dense: Vec::new(), sparse: FastMap::default(), len: 0 }
    }
}

const DENSE_IDS: u32 = 4096;

impl<T> IdMap<T> {
    #[inline]
    pub fn get(&self, id: &u32) -> Option<&T> {
        match self.dense.get(*id as usize) {
            Some(v) => v.as_ref(),
            None if *id >= DENSE_IDS => self.sparse.get(id),
            None => None,
        }
    }

    #[inline]
    pub fn get_mut(&mut self, id: &u32) -> Option<&mut T> {
        match self.dense.get_mut(*id as usize) {
            Some(v) => v.as_mut(),
            None if *id >= DENSE_IDS => self.sparse.get_mut(id),
            None => None,
        }
    }

    pub fn insert(&mut self, id: u32, value: T) -> Option<T> {
        let old = if id < DENSE_IDS {
            if self.dense.len() <= id as usize {
                self.dense.resize_with(id as usize + 1, || None);
            }
            self.dense[id as usize].replace(value)
        } else {
            self.sparse.insert(id, value)
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, id: &u32) -> Option<T> {
        let old = if *id < DENSE_IDS {
            self.dense.get_mut(*id as usize).and_then(Option::take)
        } else {
            self.sparse.remove(id)
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.dense.iter().flatten().chain(self.sparse.values())
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.dense.iter_mut().flatten().chain(self.sparse.values_mut())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_map_dense_and_sparse() {
        let mut m = IdMap::default();
        assert!(m.insert(1, "a").is_none());
        assert!(m.insert(100_000, "b").is_none());
        assert_eq!(m.insert(1, "c"), Some("a"));
        assert_eq!(
            (m.get(&1), m.get(&100_000), m.get(&2), m.get(&99_999)),
            (Some(&"c"), Some(&"b"), None, None)
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m.remove(&1), Some("c"));
        assert_eq!(m.remove(&1), None);
        assert_eq!(m.values().count(), 1);
    }
}
