//! What the operator sees of IKE (`get ike cookies`, the lifetimes of
//! `get sa`), and `clear sa`: plain data taken from the [`IkeManager`] at
//! one instant, so the controller renders it without holding the peers,
//! and tests build it by hand.
//!
//! No keys and no pre-shared key ever enter these structures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::IkeManager;
use crate::core::translate::hex_id_of;

/// The state of a gateway's ISAKMP SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsakmpState {
    /// Established: Quick Modes run under it.
    Established,
    /// Main or Aggressive Mode in progress.
    Negotiating,
    /// None (never asked for, failed, deleted).
    Down,
}

impl IsakmpState {
    /// The operator's word.
    pub fn word(self) -> &'static str {
        match self {
            IsakmpState::Established => "established",
            IsakmpState::Negotiating => "negotiating",
            IsakmpState::Down => "down",
        }
    }
}

/// One AutoKey gateway's phase 1, as `get ike cookies` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsakmpSaView {
    /// The gateway's name.
    pub gateway: String,
    /// Our address in use (port 4500 once NAT-T floated).
    pub local: SocketAddr,
    /// The peer's address in use.
    pub remote: SocketAddr,
    /// "IKEv1" or "IKEv2".
    pub version: &'static str,
    /// Established, negotiating or down.
    pub state: IsakmpState,
    /// Initiator cookie, 16 hex digits (`None` without phase 1).
    pub initiator_cookie: Option<String>,
    /// Responder cookie, 16 hex digits (zeros while not yet known).
    pub responder_cookie: Option<String>,
    /// True if we initiated the ISAKMP SA (established only).
    pub initiator: Option<bool>,
    /// The proposal agreed (`aes128-sha1-modp2048`), established only.
    pub proposal: Option<String>,
    /// NAT-T in use (ESP in UDP 4500), established only.
    pub nat_t: Option<bool>,
    /// The ISAKMP SA's lifetime in seconds: as negotiated once it is
    /// established, as configured before.
    pub lifetime_secs: u32,
    /// Seconds left of it (established only).
    pub remaining_secs: Option<u64>,
    /// Child SA pairs up under this gateway.
    pub children: usize,
}

/// One negotiated child SA pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildSaView {
    /// The gateway.
    pub gateway: String,
    /// The VPN.
    pub vpn: String,
    /// The proxy-ID in ScreenOS words.
    pub proxy_id: String,
    /// The fastpathd SA ids (inbound, outbound).
    pub ids: [u64; 2],
    /// Seconds of lifetime left (None: no limit in seconds).
    pub remaining_secs: Option<u64>,
}

/// IKE at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IkeView {
    /// One entry per AutoKey gateway run by controld.
    pub gateways: Vec<IsakmpSaView>,
    /// Every child SA pair up.
    pub children: Vec<ChildSaView>,
    /// Proxy-IDs being negotiated: (gateway, proxy-ID).
    pub negotiating: Vec<(String, String)>,
    /// IKE datagrams discarded unanswered, by reason (`get counter`).
    #[serde(skip)]
    pub discards: esprit_ike::Discards,
    /// IKEv2 datagrams dropped, by reason (`get counter`).
    #[serde(skip)]
    pub v2_dropped: esprit_ike::v2::dropped::DroppedCounts,
}

fn hex8(b: [u8; 8]) -> String {
    hex::encode(b)
}

impl IkeManager {
    /// What the operator sees of IKE at `now`.
    pub fn view(&self, now: Instant) -> IkeView {
        let mut v =
            IkeView { discards: self.discards(), v2_dropped: self.v2_dropped(), ..IkeView::default() };
        for g in &self.gateways {
            let cfg = g.peer.config();
            let (local, remote) = g.peer.addresses();
            let cookies = g.peer.ike_cookies();
            let summary = g.peer.summary();
            let state = match (&summary, &cookies) {
                (Some(_), _) => IsakmpState::Established,
                (None, Some(_)) => IsakmpState::Negotiating,
                (None, None) => IsakmpState::Down,
            };
            // The negotiated lifetime (it may be shorter than ours), else
            // the configured one for an SA still to come.
            let lifetime_secs = summary.as_ref().map_or(cfg.ike_lifetime, |s| s.lifetime_secs);
            let remaining = summary.as_ref().and_then(|s| {
                let end = s.established + Duration::from_secs(u64::from(s.lifetime_secs));
                (s.lifetime_secs > 0).then(|| end.saturating_duration_since(now).as_secs())
            });
            v.gateways.push(IsakmpSaView {
                gateway: cfg.name.clone(),
                local,
                remote,
                state,
                initiator_cookie: cookies.map(|c| hex8(c.0)),
                responder_cookie: cookies.map(|c| hex8(c.1)),
                version: g.peer.version(),
                initiator: summary.as_ref().map(|s| s.initiator),
                nat_t: summary.as_ref().map(|s| s.nat_t),
                proposal: summary.map(|s| s.proposal),
                lifetime_secs,
                remaining_secs: remaining,
                children: g.children.len(),
            });
            for c in g.children.values() {
                v.children.push(ChildSaView {
                    gateway: cfg.name.clone(),
                    vpn: g.vpns.get(c.vpn).map(|x| x.name.clone()).unwrap_or_default(),
                    proxy_id: c.proxy_id.to_string(),
                    ids: c.ids,
                    remaining_secs: c.expires.map(|t| t.saturating_duration_since(now).as_secs()),
                });
            }
            for p in g.negotiating.keys() {
                v.negotiating.push((cfg.name.clone(), p.to_string()));
            }
        }
        v
    }

    /// `clear sa [ID]`: deletes the child SA pairs of one proxy-ID
    /// (`target`: the VPN's HEX ID and the proxy-ID; every pair with
    /// `None`): a Delete goes to the peer, and the pairs come out of
    /// fastpathd through the usual ChildSaDown (next [`IkeManager::poll`]).
    /// Returns one line per pair, for the operator.
    pub fn clear(&mut self, now: Instant, target: Option<(u32, &str)>) -> Vec<String> {
        let mut out = Vec::new();
        for g in &mut self.gateways {
            let name = g.peer.config().name.clone();
            let spis: Vec<u32> = g
                .children
                .iter()
                .filter(|(_, c)| {
                    target.is_none_or(|(h, pid)| {
                        c.ids.iter().any(|id| hex_id_of(*id) == h) && c.proxy_id.to_string() == pid
                    })
                })
                .map(|(spi, _)| *spi)
                .collect();
            for spi in spis {
                let Some(c) = g.children.get(&spi) else { continue };
                let what = format!("proxy-id {} (SA ids {:#x}/{:#x})", c.proxy_id, c.ids[0], c.ids[1]);
                match g.peer.delete_child(now, spi) {
                    Ok(()) => out.push(format!("{what}: cleared, Delete sent to gateway {name}")),
                    Err(e) => {
                        // The peer no longer knows it: remove it ourselves.
                        if let Some(c) = g.children.remove(&spi) {
                            g.touch(spi);
                            self.orphans.extend(c.ids);
                        }
                        out.push(format!("{what}: cleared locally ({e})"));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use esprit_config::Config;
    use esprit_ike::Event;
    use esprit_policy::ProxyId;

    use super::super::{ike_gateways, IkeAction, RandomFill};
    use super::*;
    use crate::core::events::{EventKind, EventLog};
    use crate::core::spi::SpiAllocator;

    const CONF: &str = r#"set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 198.51.100.1/24
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set ike gateway "gw2" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "s3cret-psk" proposal "pre-g14-aes128-sha"
set vpn "v" gateway "gw2" no-replay tunnel idletime 0 proposal "nopfs-esp-aes128gcm"
set vpn "v" id 0x5 bind interface tunnel.1
set vpn "v" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any
"#;

    fn manager() -> IkeManager {
        let (config, _) = Config::load(CONF).unwrap();
        let (g, _) = ike_gateways(&config, &BTreeMap::from([("v".to_string(), 5)]));
        let fill: RandomFill = Rc::new(|b: &mut [u8]| b.iter_mut().for_each(|x| *x = 0x42));
        IkeManager::new(g, SpiAllocator::new(), fill)
    }

    #[test]
    fn a_gateway_in_main_mode_shows_its_initiator_cookie_and_no_secret() {
        let mut m = manager();
        let now = Instant::now();
        assert_eq!(m.view(now).gateways[0].state, IsakmpState::Down);
        let pid = "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY";
        m.acquire(now, 1, pid);
        let v = m.view(now);
        let g = &v.gateways[0];
        assert_eq!(g.state, IsakmpState::Negotiating);
        assert_eq!(g.initiator_cookie.as_deref(), Some("4242424242424242"));
        assert_eq!(g.responder_cookie.as_deref(), Some("0000000000000000"));
        assert_eq!(v.negotiating, vec![("gw2".to_string(), pid.to_string())]);
        assert!(!format!("{v:?}").contains("s3cret"));
        // Nothing is up: nothing to clear.
        assert!(m.clear(now, None).is_empty());
    }

    #[test]
    fn clear_deletes_the_pair_of_its_proxy_id_only() {
        use esprit_fastpath_api::Direction;

        use super::super::ChildRecord;
        use crate::core::translate::sa_id;

        let mut m = manager();
        let now = Instant::now();
        let pid: ProxyId = "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY".parse().unwrap();
        let ids = [sa_id(5, Direction::Inbound, 1), sa_id(5, Direction::Outbound, 1)];
        m.gateways[0].children.insert(
            0xc100_0001,
            ChildRecord {
                vpn: 0,
                proxy_id: pid,
                ids,
                initiator: true,
                expires: Some(now + Duration::from_secs(100)),
                rekey_at: None,
                rekeying: false,
                superseded: None,
                pending_outbound: None,
            },
        );
        let v = m.view(now);
        assert_eq!(v.gateways[0].children, 1);
        assert_eq!(v.children[0].remaining_secs, Some(100));
        assert_eq!((v.children[0].vpn.as_str(), v.children[0].ids), ("v", ids));
        let other = "local-ip 10.1.1.0/24 remote-ip 10.2.2.0/24 ANY";
        assert!(m.clear(now, Some((6, &pid.to_string()))).is_empty(), "another VPN");
        assert!(m.clear(now, Some((5, other))).is_empty(), "another proxy-ID of the VPN");
        // The peer never negotiated it (test): removed locally, and the
        // next poll takes both SAs out of fastpathd.
        let lines = m.clear(now, Some((5, &pid.to_string())));
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0]
                .starts_with(&format!("proxy-id {pid} (SA ids 0x500000001/0x580000001): cleared locally")),
            "{lines:?}"
        );
        assert!(m.gateways[0].children.is_empty());
        let removed: Vec<u64> = m
            .poll(now)
            .into_iter()
            .filter_map(|a| match a {
                IkeAction::Remove(ids) => Some(ids),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(removed, ids);
    }

    #[test]
    fn the_proxy_id_mismatch_line_becomes_an_event_with_fields() {
        // The exact line ike.rs logs, parsed by the event log: if one
        // changes, this test says so.
        let mut m = manager();
        let now = Instant::now();
        let configured: ProxyId = "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY".parse().unwrap();
        let mut out = Vec::new();
        m.on_event(
            0,
            now,
            Event::ProxyIdMismatch {
                message_id: 0xabcd,
                proposed: "local-ip 10.1.9.0/24 remote-ip 10.2.9.0/24 ANY".into(),
                configured: vec![configured],
            },
            &mut out,
        );
        let [IkeAction::Log(line)] = &out[..] else { panic!("{out:?}") };
        let mut log = EventLog::new(10);
        log.record_ike(std::time::UNIX_EPOCH, line, |g| (g == "gw2").then(|| "203.0.113.2".to_string()));
        let e = log.iter().next().unwrap();
        assert_eq!(e.kind, EventKind::ProxyIdMismatch);
        assert_eq!(e.gateway.as_deref(), Some("gw2"));
        assert_eq!(e.peer.as_deref(), Some("203.0.113.2"));
        assert_eq!(e.proposed.as_deref(), Some("local-ip 10.1.9.0/24 remote-ip 10.2.9.0/24 ANY"));
        assert_eq!(e.configured, vec![configured.to_string()]);
    }
}
