//! The SA pair of each proxy-ID, as the status rules and every `get`
//! rendering see it: what is wanted, what fastpathd holds, its counters.

use std::collections::BTreeMap;

use esprit_config::model::GatewayPeer;
use esprit_config::VpnKind;
use esprit_fastpath_api::Direction;

use crate::core::controller::Controller;

/// One direction of an SA pair, with its last counters.
#[derive(Debug, Clone)]
pub(crate) struct Side {
    pub(crate) id: u64,
    pub(crate) spi: u32,
    pub(crate) installed: bool,
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: u64,
    pub(crate) seq: u64,
    pub(crate) replay_window: u32,
    /// 64-bit extended sequence numbers (RFC 4303 §2.2.1).
    pub(crate) esn: bool,
    pub(crate) hard_bytes: u64,
}

/// The SA pair of one proxy-ID (AutoKey: none until negotiated).
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    /// Its tunnel ID (`get sa`'s HEX ID, [`crate::core::ids`]).
    pub(crate) hex_id: u32,
    pub(crate) vpn: String,
    pub(crate) proxy_id: String,
    pub(crate) peer: String,
    pub(crate) port: u16,
    pub(crate) algorithm: String,
    pub(crate) manual: bool,
    pub(crate) life_secs: Option<u64>,
    pub(crate) inbound: Option<Side>,
    pub(crate) outbound: Option<Side>,
}

impl Pair {
    /// Both SAs held by fastpathd.
    pub(crate) fn up(&self) -> bool {
        self.inbound.as_ref().is_some_and(|s| s.installed)
            && self.outbound.as_ref().is_some_and(|s| s.installed)
    }

    pub(crate) fn packets(&self) -> (u64, u64, u64) {
        let p = |s: &Option<Side>| s.as_ref().map_or(0, |s| s.packets);
        let e = |s: &Option<Side>| s.as_ref().map_or(0, |s| s.errors);
        (p(&self.inbound), p(&self.outbound), e(&self.inbound) + e(&self.outbound))
    }
}

impl Controller {
    /// The tunnel ID of a proxy-ID (`get sa`'s HEX ID): its own, or its
    /// VPN's for a VPN without proxy-IDs (a manual-key VPN may have none).
    pub(crate) fn tunnel_id(&self, vpn: &str, proxy_id: &str) -> u32 {
        self.tunnel_ids
            .get(vpn)
            .and_then(|m| m.get(proxy_id))
            .or_else(|| self.hex_ids.get(vpn))
            .copied()
            .unwrap_or(0)
    }

    /// Every proxy-ID's SA pair, by tunnel ID, then configuration order.
    pub(crate) fn pairs(&self) -> Vec<Pair> {
        let mut by_key: BTreeMap<(u32, usize, String), Pair> = BTreeMap::new();
        // Configuration order of each VPN's proxy-IDs, computed once (a
        // tunnel may carry thousands).
        let positions: BTreeMap<(&str, String), usize> = self
            .config
            .vpns()
            .flat_map(|v| {
                self.config
                    .proxy_ids(&v.name)
                    .iter()
                    .enumerate()
                    .map(|(i, p)| ((v.name.as_str(), p.to_string()), i))
                    .collect::<Vec<_>>()
            })
            .collect();
        let order =
            |vpn: &str, pid: &str| positions.get(&(vpn, pid.to_owned())).copied().unwrap_or(usize::MAX);
        // Counters summed per SA over workers in one pass (not one pass
        // per SA).
        let mut counters: std::collections::HashMap<u64, (u64, u64, u64, u64)> =
            std::collections::HashMap::with_capacity(self.stats.sas.len());
        for s in &self.stats.sas {
            let a = counters.entry(s.id).or_default();
            *a = (a.0 + s.packets, a.1 + s.bytes, a.2 + s.errors, a.3.max(s.seq));
        }
        for (id, d) in self.wanted_sas() {
            let s = &d.spec;
            let (packets, bytes, errors, seq) = counters.get(id).copied().unwrap_or_default();
            let side = Side {
                id: *id,
                spi: s.spi,
                installed: self.sa.is_installed(*id),
                packets,
                bytes,
                errors,
                seq,
                replay_window: s.replay_window,
                esn: s.esn,
                hard_bytes: s.hard_bytes,
            };
            let tid = self.tunnel_id(&d.vpn_name, &s.proxy_id);
            let key = (tid, order(&d.vpn_name, &s.proxy_id), s.proxy_id.clone());
            let pair = by_key.entry(key).or_insert_with(|| Pair {
                hex_id: tid,
                vpn: d.vpn_name.clone(),
                proxy_id: s.proxy_id.clone(),
                peer: s.peer.to_string(),
                port: s.udp_encap.map_or(500, |(_, p)| p),
                algorithm: d.algorithm.clone(),
                manual: d.manual,
                life_secs: None,
                inbound: None,
                outbound: None,
            });
            if let Some(l) = self.ike_life.get(id) {
                pair.life_secs = Some(*l);
            }
            match s.direction {
                Direction::Inbound => pair.inbound = Some(side),
                Direction::Outbound => pair.outbound = Some(side),
            }
        }
        for p in self.wanted_pending() {
            let tid = self.tunnel_id(&p.vpn_name, &p.proxy_id);
            let key = (tid, order(&p.vpn_name, &p.proxy_id), p.proxy_id.clone());
            by_key.entry(key).or_insert_with(|| Pair {
                hex_id: tid,
                vpn: p.vpn_name.clone(),
                proxy_id: p.proxy_id.clone(),
                peer: p.peer.map_or("0.0.0.0".to_owned(), |a| a.to_string()),
                port: 500,
                algorithm: p.algorithm.clone(),
                manual: false,
                life_secs: None,
                inbound: None,
                outbound: None,
            });
        }
        by_key.into_values().collect()
    }

    /// The gateway name and peer of a VPN, and its mode word.
    pub(crate) fn vpn_gateway(&self, vpn: &str) -> (String, String, &'static str) {
        match self.config.vpn(vpn).map(|v| &v.kind) {
            Some(VpnKind::AutoKey(a)) => {
                let peer = match self.config.gateway(&a.gateway).map(|g| &g.peer) {
                    Some(GatewayPeer::Address(x)) => x.to_string(),
                    Some(GatewayPeer::Dialup(n)) => format!("dialup {n}"),
                    Some(GatewayPeer::Dynamic(id)) => format!("dynamic {id}"),
                    None => "-".into(),
                };
                (a.gateway.clone(), peer, "AutoKey")
            }
            Some(VpnKind::Manual(m)) => (m.gateway.to_string(), m.gateway.to_string(), "Manual"),
            None => ("-".into(), "-".into(), "-"),
        }
    }
}
