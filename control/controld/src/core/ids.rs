//! VPN HEX IDs: the number `get sa` shows, and the high half of every SA id.
//!
//! A VPN with `set vpn NAME id N` has N. The others get one assigned: the
//! one they had before if it is still free (controld keeps the assignment
//! in its state directory, so a restart or a reload does not renumber a
//! VPN and its SAs are found again), else the smallest free number from 1.

use std::collections::{BTreeMap, BTreeSet};

use esprit_config::Config;

/// Assigns a HEX ID to every VPN of `config`; `previous` is the last
/// assignment.
pub fn assign_hex_ids(config: &Config, previous: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
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
        while used.contains(&next) {
            next += 1;
        }
        used.insert(next);
        out.insert(name.to_owned(), next);
    }
    out
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
