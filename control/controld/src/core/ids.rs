//! HEX IDs: the numbers `get sa` shows.
//!
//! **VPN HEX IDs** (the high half of every SA id). A VPN with `set vpn
//! NAME id N` has N. The others get one assigned: the one they had before
//! if it is still free (controld keeps the assignment in its state
//! directory, so a restart or a reload does not renumber a VPN and its SAs
//! are found again), else the smallest free number from 1 that no VPN and
//! no proxy-ID holds.
//!
//! **Tunnel IDs, one per proxy-ID.** ScreenOS allocates a tunnel (one HEX
//! ID, one SA pair) per proxy-ID of a VPN with several (KB16008: "ScreenOS
//! negotiates different P2 SAs and sets up separate tunnels"; its `get
//! sa` shows 00000001 and 00000002 for two proxy-IDs of one VPN). So does
//! esprit: the first proxy-ID of a VPN takes the VPN's own HEX ID, each
//! further one a number of its own, the smallest that no VPN and no other
//! proxy-ID holds. `get sa`, `get sa id N` and `clear sa N` speak of these
//! numbers. They are **persisted** with the VPN HEX IDs (controld's state
//! directory): a proxy-ID keeps its number across restarts and across
//! reloads that do not remove it, whatever is added or removed around it
//! (a VPN given an explicit `id` that a proxy-ID held takes it, and the
//! proxy-ID moves). Without a state directory the numbers are derived from
//! the configuration order, so the same configuration numbers the same.

use std::collections::{BTreeMap, BTreeSet};

use esprit_config::Config;

/// Assigns a HEX ID to every VPN of `config`; `previous` is the last
/// assignment.
pub fn assign_hex_ids(config: &Config, previous: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
    assign_hex_ids_around(config, previous, &BTreeSet::new())
}

/// [`assign_hex_ids`], a VPN given a new number avoiding `reserved` (the
/// proxy-IDs' tunnel IDs, which keep theirs).
pub fn assign_hex_ids_around(
    config: &Config,
    previous: &BTreeMap<String, u32>,
    reserved: &BTreeSet<u32>,
) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let mut used = BTreeSet::new();
    for v in config.vpns() {
        if let Some(id) = v.id {
            out.insert(v.name.clone(), id);
            used.insert(id);
        }
    }
    let unnumbered: Vec<&str> = config.vpns().filter(|v| v.id.is_none()).map(|v| v.name.as_str()).collect();
    let mut fresh = Vec::new();
    for name in unnumbered {
        match previous.get(name) {
            Some(&id) if id != 0 && used.insert(id) => {
                out.insert(name.to_owned(), id);
            }
            _ => fresh.push(name),
        }
    }
    let mut next = 1u32;
    for name in fresh {
        while used.contains(&next) || reserved.contains(&next) {
            next += 1;
        }
        used.insert(next);
        out.insert(name.to_owned(), next);
    }
    out
}

/// VPN -> proxy-ID (ScreenOS words) -> tunnel ID.
pub type TunnelIds = BTreeMap<String, BTreeMap<String, u32>>;

/// Every VPN's HEX ID and every proxy-ID's tunnel ID (module
/// documentation), from the previous assignment of both.
pub fn assign_ids(
    config: &Config,
    previous_vpns: &BTreeMap<String, u32>,
    previous_tunnels: &TunnelIds,
) -> (BTreeMap<String, u32>, TunnelIds) {
    // The numbers proxy-IDs held apart from their VPN's keep them.
    let reserved: BTreeSet<u32> = previous_tunnels
        .iter()
        .flat_map(|(vpn, ids)| {
            let own = previous_vpns.get(vpn).copied();
            ids.values().copied().filter(move |id| Some(*id) != own)
        })
        .collect();
    let vpns = assign_hex_ids_around(config, previous_vpns, &reserved);
    let used: BTreeSet<u32> = vpns.values().copied().collect();
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    let mut out: TunnelIds = BTreeMap::new();
    let mut fresh: Vec<(String, String)> = Vec::new();
    // The VPNs whose own number a proxy-ID holds.
    let mut own_taken: BTreeSet<String> = BTreeSet::new();
    for v in config.vpns() {
        let Some(&own) = vpns.get(&v.name) else { continue };
        let before = previous_tunnels.get(&v.name);
        let own_before = previous_vpns.get(&v.name).copied();
        for p in config.proxy_ids(&v.name) {
            let pid = p.to_string();
            let kept = match before.and_then(|m| m.get(&pid)).copied() {
                // It held its VPN's number: it follows the VPN's.
                Some(id) if Some(id) == own_before && !own_taken.contains(&v.name) => {
                    own_taken.insert(v.name.clone());
                    Some(own)
                }
                Some(id) if id != 0 && !used.contains(&id) && taken.insert(id) => Some(id),
                _ => None,
            };
            match kept {
                Some(id) => {
                    out.entry(v.name.clone()).or_default().insert(pid, id);
                }
                None => fresh.push((v.name.clone(), pid)),
            }
        }
    }
    let mut next = 1u32;
    for (vpn, pid) in fresh {
        let own = vpns.get(&vpn).copied().unwrap_or(0);
        let id = if own_taken.insert(vpn.clone()) {
            own
        } else {
            while used.contains(&next) || taken.contains(&next) {
                next += 1;
            }
            next
        };
        taken.insert(id);
        out.entry(vpn).or_default().insert(pid, id);
    }
    (vpns, out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KEY: &str =
        "000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213";

    fn config(extra: &[&str]) -> Config {
        let mut text = String::from("set interface ethernet0/2 ip 198.51.100.1/24\n");
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            text.push_str(&format!(
                "set vpn {name} manual {:x} {:x} gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key {KEY}\n",
                0x1000 + i,
                0x2000 + i
            ));
        }
        for l in extra {
            text.push_str(l);
            text.push('\n');
        }
        Config::load(&text).unwrap().0
    }

    #[test]
    fn explicit_ids_win_and_the_rest_fill_the_gaps() {
        let ids = assign_hex_ids(&config(&["set vpn b id 1"]), &BTreeMap::new());
        assert_eq!(ids, BTreeMap::from([("a".into(), 2), ("b".into(), 1), ("c".into(), 3)]));
    }

    const AUTOKEY: &str = r#"set interface ethernet0/2 ip 198.51.100.1/24
set interface tunnel.1 ip unnumbered interface ethernet0/2
set interface tunnel.2 ip unnumbered interface ethernet0/2
set ike gateway "g" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "a-pre-shared-key-long-enough" sec-level standard
set vpn "t" gateway "g" no-replay tunnel idletime 0 sec-level standard
set vpn "t" id 0x1 bind interface tunnel.1
"#;

    fn autokey(extra: &[&str]) -> Config {
        let mut text = AUTOKEY.to_owned();
        for l in extra {
            text.push_str(l);
            text.push('\n');
        }
        Config::load(&text).unwrap().0
    }

    fn pid(l: u8, r: u8) -> String {
        format!("set vpn \"t\" proxy-id local-ip 10.1.{l}.0/24 remote-ip 10.2.{r}.0/24 any")
    }

    fn words(l: u8, r: u8) -> String {
        format!("local-ip 10.1.{l}.0/24 remote-ip 10.2.{r}.0/24 ANY")
    }

    #[test]
    fn each_proxy_id_has_its_own_tunnel_id_the_first_the_vpns() {
        let (p1, p2, p3) = (pid(1, 1), pid(1, 2), pid(2, 1));
        let config = autokey(&[&p1, &p2, &p3]);
        let (vpns, tunnels) = assign_ids(&config, &BTreeMap::new(), &TunnelIds::new());
        assert_eq!(vpns, BTreeMap::from([("t".into(), 1)]));
        let t = &tunnels["t"];
        assert_eq!((t[&words(1, 1)], t[&words(1, 2)], t[&words(2, 1)]), (1, 2, 3));
        // Stable across a restart: the same from the persisted numbers.
        assert_eq!(assign_ids(&config, &vpns, &tunnels), (vpns.clone(), tunnels.clone()));
    }

    #[test]
    fn a_reload_keeps_the_ids_of_the_proxy_ids_it_does_not_touch() {
        let (p1, p2, p3) = (pid(1, 1), pid(1, 2), pid(2, 1));
        let (vpns, tunnels) = assign_ids(&autokey(&[&p1, &p2, &p3]), &BTreeMap::new(), &TunnelIds::new());
        // The first proxy-ID goes, a new one comes first in the file, a
        // manual-key VPN without an id arrives: the others keep theirs.
        let p4 = pid(3, 3);
        let manual = "set vpn \"m\" manual 3001 4001 gateway 203.0.113.3 outgoing-interface ethernet0/2 esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213";
        let config = autokey(&[&p4, &p2, &p3, manual]);
        let (vpns2, tunnels2) = assign_ids(&config, &vpns, &tunnels);
        let t = &tunnels2["t"];
        assert_eq!((t[&words(1, 2)], t[&words(2, 1)]), (2, 3), "{tunnels2:?}");
        // The VPN's own number was freed by the first proxy-ID: the new one
        // takes it; the new VPN takes a number no proxy-ID holds.
        assert_eq!(t[&words(3, 3)], 1);
        assert_eq!(vpns2["m"], 4);
        // An explicit VPN id wins over a proxy-ID's number, which moves.
        let config = autokey(&[&p4, &p2, &p3, manual, "set vpn \"m\" id 0x2"]);
        let (vpns3, tunnels3) = assign_ids(&config, &vpns2, &tunnels2);
        assert_eq!(vpns3["m"], 2);
        let t = &tunnels3["t"];
        assert_eq!((t[&words(3, 3)], t[&words(2, 1)], t[&words(1, 2)]), (1, 3, 4), "{tunnels3:?}");
    }

    #[test]
    fn a_previous_assignment_is_kept_when_free() {
        let previous = BTreeMap::from([("c".to_string(), 7), ("a".to_string(), 1)]);
        // b takes 1 explicitly: a loses it and gets the smallest free.
        let ids = assign_hex_ids(&config(&["set vpn b id 1"]), &previous);
        assert_eq!(ids, BTreeMap::from([("a".into(), 2), ("b".into(), 1), ("c".into(), 7)]));
        // Stable: assigning again from the result gives the same.
        assert_eq!(assign_hex_ids(&config(&["set vpn b id 1"]), &ids), ids);
    }
}
