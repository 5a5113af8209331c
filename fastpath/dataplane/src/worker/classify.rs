//! Pass 2: the flow keys of a burst's tunnel-bound packets classified
//! against their VPN's proxy-IDs, one batch call per run of packets into
//! one VPN (DPDK's `sp4` classifies a whole burst in one call too).
//!
//! Pass 1 pushes a key per run of one flow (`Worker::keys`) and a
//! [`TunnelBound`] per packet (`Worker::pending`); this pass fills
//! `Worker::verdicts`, one per key; pass 3 (`encrypt.rs`) reads a
//! packet's verdict through its key's position.

use esprit_policy::Verdict;

use super::Worker;
use crate::{TunnelId, VpnId};

/// What the first pass decided for a packet.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stage {
    Done,
    /// Into a tunnel: classify (batch) then encrypt. `l3` is the IPv4
    /// header offset, `len` the IP total length; its selectors are at
    /// `key` in `Worker::keys`.
    Tunnel {
        l3: usize,
        len: usize,
        tunnel: TunnelId,
        vpn: VpnId,
        key: usize,
    },
}

/// A packet pass 1 sent towards a tunnel, as passes 2 and 3 need it (16
/// bytes), in `Worker::pending`; the later passes walk that short array
/// instead of a per-frame stage array.
#[derive(Debug, Clone, Copy)]
pub(super) struct TunnelBound {
    /// Position of the frame in the burst (< `MAX_BURST`).
    pub(super) frame: u8,
    /// Its flow key's position in `Worker::keys`. A packet of the same
    /// flow as the tunnel-bound packet before it shares that one's key,
    /// so a run of one flow is classified once (as VPP looks an SA up
    /// once per run of packets on it). Keys are pushed in `pending`
    /// order, so the keys of a run of one VPN are contiguous.
    pub(super) key: u8,
    /// IPv4 header offset in the packet (the Ethernet header's length).
    pub(super) l3: u16,
    /// IP total length (a 16-bit field).
    pub(super) len: u16,
    pub(super) tunnel: TunnelId,
    pub(super) vpn: VpnId,
}

/// A tunnel-bound packet after classification: what the encrypt stage
/// needs besides the packet itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct Classified {
    pub(super) tunnel: TunnelId,
    pub(super) vpn: VpnId,
    pub(super) verdict: Verdict,
    /// Its flow key's position in `Worker::keys` (the acquire's flow).
    pub(super) key: usize,
}

impl Worker {
    /// Classifies the keys of `self.pending` in runs of one VPN into
    /// `self.verdicts` (one verdict per key; `NoMatch` where the VPN went
    /// away).
    pub(super) fn classify_pending(&mut self) {
        self.verdicts.resize(self.keys.len(), Verdict::NoMatch);
        let mut k = 0;
        while k < self.pending.len() {
            let vpn = self.pending[k].vpn;
            let end = k + self.pending[k..].iter().take_while(|p| p.vpn == vpn).count();
            let keys = usize::from(self.pending[k].key)..=usize::from(self.pending[end - 1].key);
            if let (Some(v), Some(keys), Some(verdicts)) =
                (self.vpns.get(&vpn.0), self.keys.get(keys.clone()), self.verdicts.get_mut(keys))
            {
                v.conf.table.classify(keys, verdicts);
            }
            k = end;
        }
    }
}
