//! The difference between what fastpathd holds and what it should hold, as
//! the shortest list of control requests: a pure function.
//!
//! [`plan`] compares fastpathd's [`Dump`] with the [`Desired`] state and
//! issues only what changed, so that **SAs unaffected by a change keep
//! forwarding**: an SA is kept (adopted) when fastpathd holds an SA with the
//! same id, direction, SPI, VPN and proxy-ID *and* the SA manager's record
//! says the SA installed under that id had the same keys (a
//! [`fingerprint`]: the Dump carries no keys). Everything else is installed,
//! replaced or removed.
//!
//! Order of the requests (each step needs the previous ones):
//!
//! 1. `RemoveSa` of SAs no longer wanted, or wanted under the same id with
//!    other keys/SPI — except the superseded ones (step 5);
//! 2. `SetVpn` of new or changed proxy-ID tables (an SA's proxy-ID must be
//!    in its VPN's table when it is added; SAs of proxy-IDs that stay are
//!    kept by fastpathd across the change);
//! 3. `SetTunnel` of new or changed tunnel interfaces;
//! 4. `AddSa`: every inbound SA first, then the outbound ones, so that the
//!    peer's traffic is accepted before ours is sent (make-before-break);
//! 5. `RemoveSa` of the superseded SAs: an SA no longer wanted whose VPN
//!    (HEX ID) gets an SA in the same direction under a new id in step 4 —
//!    a manual SA whose SPI changed ([`crate::core::translate::ManualSerials`]),
//!    an IKE rekey. This is make-before-break: the new inbound SA accepts
//!    the peer's new SPI next to the old one, the new outbound SA replaces
//!    the old one of its proxy-ID atomically in fastpathd (whose workers
//!    then forget the old id: its `RemoveSa` only drops fastpathd's record
//!    and cannot touch the new SA), and only then the old inbound SA goes.
//!    fastpathd removes an inbound SA by SPI, so an old inbound SA with the
//!    SPI of an SA added in step 4 is removed in step 1 instead (a
//!    key-only change of a manual SA keeps its id anyway: remove, then add;
//!    true make-before-break needs a new SPI);
//! 6. `SetRoutes` if the table changed, `SetFlow` if `set flow` changed;
//! 7. `RemoveTunnel`, then `RemoveVpn`, of what is gone (after the routes
//!    stopped pointing at them).

use std::collections::{BTreeMap, BTreeSet};

use esprit_fastpath_api::{Direction, Dump, Request, SaSpec};
use sha2::{Digest, Sha256};

use crate::core::translate::{hex_id_of, Desired};

/// A one-way digest of everything that defines an SA (keys included), to
/// tell after a restart whether the SA fastpathd holds under an id is the
/// one the configuration wants. SHA-256 of full-entropy keys: it reveals
/// nothing usable about them, and the state directory is root's anyway.
pub fn fingerprint(spec: &SaSpec) -> String {
    let mut s = spec.clone();
    s.last_seq = 0;
    s.iv_key = None;
    let mut h = Sha256::new();
    h.update(b"esprit-controld SA fingerprint v1\0");
    // Serializing a SaSpec cannot fail (plain fields, keys as hex).
    h.update(serde_json::to_vec(&s).unwrap_or_default());
    hex::encode(h.finalize())
}

/// The requests that bring fastpathd from its dump to the desired state,
/// and what they do to the SAs.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The requests, in order.
    pub requests: Vec<Request>,
    /// SAs kept as they are (no request).
    pub kept: Vec<u64>,
    /// SAs installed (new or replaced), with their fingerprints.
    pub added: Vec<(u64, String)>,
    /// SAs removed and not re-added.
    pub removed: Vec<u64>,
}

impl Plan {
    /// True when fastpathd already holds the desired state.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

/// Plans the change from `current` (fastpathd's dump) to `desired`.
/// `known` gives, per SA id, the fingerprint of the SA last installed under
/// that id; `last_seq` the sequence number an SA resumes from (outbound:
/// the next one sent follows it; inbound: its replay window starts above
/// it; 0 for keys never used, see [`crate::core::sa`]).
pub fn plan(
    current: &Dump,
    desired: &Desired,
    known: &BTreeMap<u64, String>,
    last_seq: impl Fn(&SaSpec) -> u64,
) -> Plan {
    let mut p = Plan::default();
    let held: BTreeMap<u64, (Direction, u32, u32, &str)> =
        current.sas.iter().map(|(id, dir, spi, vpn, pid)| (*id, (*dir, *spi, *vpn, pid.as_str()))).collect();

    // SAs that step 4 adds under an id fastpathd does not hold: (HEX ID,
    // direction) and the inbound SPIs.
    let mut fresh: BTreeSet<(u32, bool)> = BTreeSet::new();
    let mut fresh_inbound_spis: BTreeSet<u32> = BTreeSet::new();
    for (id, d) in &desired.sas {
        if !held.contains_key(id) {
            fresh.insert((hex_id_of(*id), d.spec.direction == Direction::Outbound));
            if d.spec.direction == Direction::Inbound {
                fresh_inbound_spis.insert(d.spec.spi);
            }
        }
    }

    // 1. Removals.
    let mut replace = BTreeSet::new();
    let mut superseded = Vec::new();
    for (id, (dir, spi, vpn, pid)) in &held {
        match desired.sas.get(id) {
            None => {
                let outbound = *dir == Direction::Outbound;
                if fresh.contains(&(hex_id_of(*id), outbound))
                    && (outbound || !fresh_inbound_spis.contains(spi))
                {
                    superseded.push((*id, outbound));
                } else {
                    p.requests.push(Request::RemoveSa { id: *id });
                }
                p.removed.push(*id);
            }
            Some(d) => {
                let s = &d.spec;
                let same = s.direction == *dir
                    && s.spi == *spi
                    && s.vpn == *vpn
                    && s.proxy_id == *pid
                    && known.get(id).is_some_and(|f| *f == fingerprint(s));
                if same {
                    p.kept.push(*id);
                } else {
                    p.requests.push(Request::RemoveSa { id: *id });
                    replace.insert(*id);
                }
            }
        }
    }

    // 2. Proxy-ID tables.
    let vpns_now: BTreeMap<u32, (bool, &Vec<String>)> =
        current.vpns.iter().map(|(v, c, ids)| (*v, (*c, ids))).collect();
    for (vpn, (check, ids)) in &desired.vpns {
        if vpns_now.get(vpn) != Some(&(*check, ids)) {
            p.requests.push(Request::SetVpn { vpn: *vpn, check: *check, proxy_ids: ids.clone() });
        }
    }

    // 3. Tunnel interfaces.
    let tunnels_now: BTreeMap<u32, (u16, Option<u32>)> =
        current.tunnels.iter().map(|(t, m, v)| (*t, (*m, *v))).collect();
    for (tunnel, (mtu, vpn)) in &desired.tunnels {
        if tunnels_now.get(tunnel) != Some(&(*mtu, *vpn)) {
            p.requests.push(Request::SetTunnel { tunnel: *tunnel, mtu: *mtu, vpn: *vpn });
        }
    }

    // 4. SAs: inbound, then outbound.
    for direction in [Direction::Inbound, Direction::Outbound] {
        for (id, d) in &desired.sas {
            if d.spec.direction != direction || (held.contains_key(id) && !replace.contains(id)) {
                continue;
            }
            let f = fingerprint(&d.spec);
            let mut spec = d.spec.clone();
            spec.last_seq = last_seq(&spec);
            p.requests.push(Request::AddSa(Box::new(spec)));
            p.added.push((*id, f));
        }
    }

    // 5. Superseded SAs: the old inbound ones, then the records of the
    // old outbound ones (already replaced in the workers).
    for outbound in [false, true] {
        for (id, _) in superseded.iter().filter(|(_, o)| *o == outbound) {
            p.requests.push(Request::RemoveSa { id: *id });
        }
    }

    // 6. Routes.
    if current.routes != desired.routes {
        p.requests.push(Request::SetRoutes { routes: desired.routes.clone() });
    }
    if current.tcp_mss != desired.tcp_mss {
        p.requests.push(Request::SetFlow { tcp_mss: desired.tcp_mss });
    }

    // 7. What is gone.
    for tunnel in tunnels_now.keys() {
        if !desired.tunnels.contains_key(tunnel) {
            p.requests.push(Request::RemoveTunnel { tunnel: *tunnel });
        }
    }
    for vpn in vpns_now.keys() {
        if !desired.vpns.contains_key(vpn) {
            p.requests.push(Request::RemoveVpn { vpn: *vpn });
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow_requests(current: Option<u16>, desired: Option<u16>) -> Vec<Option<u16>> {
        let dump = Dump { tcp_mss: current, ..Dump::default() };
        let want = Desired { tcp_mss: desired, ..Desired::default() };
        plan(&dump, &want, &BTreeMap::new(), |_| 0)
            .requests
            .into_iter()
            .map(|r| match r {
                Request::SetFlow { tcp_mss } => tcp_mss,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    /// `set flow tcp-mss` reaches fastpathd when it differs from what
    /// fastpathd holds, and only then (a restarted fastpathd holds none).
    #[test]
    fn set_flow_is_sent_when_it_changed() {
        assert_eq!(flow_requests(None, Some(1380)), [Some(1380)]);
        assert_eq!(flow_requests(Some(1380), Some(1200)), [Some(1200)]);
        assert_eq!(flow_requests(Some(1380), None), [None]);
        assert!(flow_requests(Some(1380), Some(1380)).is_empty());
        assert!(flow_requests(None, None).is_empty());
    }
}
