//! Packets waiting for their SA: the first packets of a flow whose proxy-ID
//! has no SA yet are kept (a few per proxy-ID, a bounded pool per worker)
//! and sent when the SA is installed, so that the packet that triggered
//! the negotiation is not lost. Packets waiting for a next hop's MAC
//! address are kept the same way (a few per next hop) and sent again when
//! the neighbour table changes, as the kernel's ARP queue does. Storage is
//! allocated once, at start.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::{PortId, VpnId};
use esprit_policy::ProxyId;

/// What a held frame waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldKey {
    /// An SA for this proxy-ID of this VPN.
    Sa(VpnId, ProxyId),
    /// The MAC address of this next hop.
    Neighbor(PortId, Ipv4Addr),
}

/// Bytes of one held frame (a 2 KiB UMEM frame holds at most this much).
pub(crate) const HOLD_FRAME: usize = 2048;

#[derive(Debug)]
pub(crate) struct HoldPool {
    data: Vec<u8>,
    len: Vec<u16>,
    owner: Vec<Option<HoldKey>>,
    since: Vec<Option<Instant>>,
    /// The frame is an inner packet already decrypted (not to be checked
    /// as a clear packet again when released).
    decrypted: Vec<bool>,
    free: Vec<u16>,
    released: Vec<u16>,
    per_proxy_id: usize,
}

impl HoldPool {
    pub(crate) fn new(slots: usize, per_proxy_id: usize) -> HoldPool {
        let slots = slots.min(usize::from(u16::MAX));
        HoldPool {
            data: vec![0; slots * HOLD_FRAME],
            len: vec![0; slots],
            owner: vec![None; slots],
            since: vec![None; slots],
            decrypted: vec![false; slots],
            free: (0..slots as u16).rev().collect(),
            released: Vec::with_capacity(slots),
            per_proxy_id,
        }
    }

    /// Keeps a copy of the frame made of `parts` (consecutive) until `key`
    /// is released; false when the pool or the key's share of it is full
    /// (or the frame is too big).
    pub(crate) fn hold_parts(
        &mut self,
        key: HoldKey,
        parts: &[&[u8]],
        now: Instant,
        decrypted: bool,
    ) -> bool {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > HOLD_FRAME || self.per_proxy_id == 0 {
            return false;
        }
        let held = self.owner.iter().filter(|o| **o == Some(key)).count();
        if held >= self.per_proxy_id {
            return false;
        }
        let Some(slot) = self.free.pop() else { return false };
        let i = usize::from(slot);
        let mut at = i * HOLD_FRAME;
        for p in parts {
            self.data[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.len[i] = total as u16;
        self.owner[i] = Some(key);
        self.since[i] = Some(now);
        self.decrypted[i] = decrypted;
        true
    }

    /// The proxy-ID got its SA: its held frames are ready to go, oldest first.
    pub(crate) fn release(&mut self, vpn: VpnId, proxy_id: &ProxyId) {
        self.release_where(|k| *k == HoldKey::Sa(vpn, *proxy_id));
    }

    /// The neighbour table changed: every frame waiting for a MAC address
    /// goes through the pipeline again (held again, once more, if its next
    /// hop is still unknown; the hold timeout bounds the waiting).
    pub(crate) fn release_neighbors(&mut self) {
        self.release_where(|k| matches!(k, HoldKey::Neighbor(..)));
    }

    fn release_where(&mut self, wanted: impl Fn(&HoldKey) -> bool) {
        let mut mine: Vec<(Instant, u16)> = Vec::new();
        for (i, o) in self.owner.iter_mut().enumerate() {
            if o.as_ref().is_some_and(&wanted) {
                *o = None;
                mine.push((self.since[i].unwrap_or_else(Instant::now), i as u16));
            }
        }
        mine.sort();
        self.released.extend(mine.into_iter().map(|(_, i)| i));
    }

    /// Forgets frames held longer than `max_age`; returns how many.
    pub(crate) fn expire(&mut self, now: Instant, max_age: Duration) -> u64 {
        let mut n = 0;
        for i in 0..self.owner.len() {
            if self.owner[i].is_some() && self.since[i].is_some_and(|t| now.duration_since(t) > max_age) {
                self.owner[i] = None;
                self.since[i] = None;
                self.free.push(i as u16);
                n += 1;
            }
        }
        n
    }

    /// Drops what a removed VPN held; returns how many.
    pub(crate) fn discard_vpn(&mut self, vpn: VpnId) -> u64 {
        let mut n = 0;
        for i in 0..self.owner.len() {
            if matches!(self.owner[i], Some(HoldKey::Sa(v, _)) if v == vpn) {
                self.owner[i] = None;
                self.free.push(i as u16);
                n += 1;
            }
        }
        n
    }

    pub(crate) fn has_released(&self) -> bool {
        !self.released.is_empty()
    }

    /// Hands every released frame and its `decrypted` flag to `f`, then
    /// frees its slot.
    pub(crate) fn drain_released(&mut self, mut f: impl FnMut(&[u8], bool)) {
        for k in 0..self.released.len() {
            let i = usize::from(self.released[k]);
            f(&self.data[i * HOLD_FRAME..i * HOLD_FRAME + usize::from(self.len[i])], self.decrypted[i]);
            self.since[i] = None;
            self.free.push(i as u16);
        }
        self.released.clear();
    }

    pub(crate) fn held(&self) -> usize {
        self.owner.iter().filter(|o| o.is_some()).count()
    }
}
