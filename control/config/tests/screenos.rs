//! A configuration as ScreenOS saves it (`tests/data/screenos-saved.conf`:
//! zones, an address book, policies with their sub-contexts, virtual
//! routers, and the seed's VPN with four proxy-IDs): loaded whole, pasted
//! line by line, printed back in the same words.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use esprit_config::{Config, ErrorKind};

fn saved() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/screenos-saved.conf")).unwrap()
}

/// The line with ScreenOS's runs of blanks made one.
fn words(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn a_screenos_saved_configuration_loads_and_keeps_its_zones_addresses_and_policies() {
    let (config, warnings) = Config::load(&saved()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.proxy_ids("test").len(), 4);
    // One warning per kind of line kept or dropped, at its first line.
    let said: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    for (line, kind) in [
        (1, "set clock lines are kept"),
        (2, "set vrouter (and its auto-route-export, add-default-route) is ignored"),
        (8, "set zone lines are kept and saved back, but esprit does not enforce them"),
        (27, "set interface NAME route/nat is ignored"),
        (35, "set hostname lines are kept"),
        (36, "set address lines are kept"),
        (40, "set group lines are kept"),
        (54, "set policy lines are kept"),
    ] {
        let prefix = format!("line {line}: warning: {kind}");
        assert_eq!(said.iter().filter(|w| w.contains(kind)).count(), 1, "{kind}: {said:#?}");
        assert!(said.iter().any(|w| w.starts_with(&prefix)), "{prefix}: {said:#?}");
    }
    // Printed back: every kept line in its words and order; the vrouter
    // and route-mode lines, which esprit drops, are not.
    let printed = config.to_lines();
    let kept: Vec<String> = saved()
        .lines()
        .map(words)
        .filter(|l| {
            ["set zone", "unset zone", "set clock", "set hostname", "set address", "set group", "set policy"]
                .iter()
                .any(|p| l.starts_with(p))
                || l.starts_with("set src-address")
                || l.starts_with("set dst-address")
        })
        .collect();
    let mine: Vec<String> = printed.iter().filter(|l| kept.contains(l)).cloned().collect();
    assert_eq!(mine, kept);
    assert_eq!(printed.iter().filter(|l| *l == "exit").count(), 3, "one exit per policy context");
    assert!(
        !printed
            .iter()
            .any(|l| l.starts_with("set vrouter") || l.contains("route-") || l.ends_with(" route")),
        "{printed:#?}"
    );
    // A policy's lines stay together, its context closed by exit.
    let at = |l: &str| printed.iter().position(|x| x == l).unwrap();
    let head =
        at(r#"set policy id 1 from "Trust" to "Untrust" "lan-10.1.1.0" "remote-nets" "ANY" permit log"#);
    assert_eq!(
        printed[head..head + 4],
        [
            r#"set policy id 1 from "Trust" to "Untrust" "lan-10.1.1.0" "remote-nets" "ANY" permit log"#,
            "set policy id 1",
            r#"set src-address "lan-10.1.2.0""#,
            "exit"
        ]
    );
    // ScreenOS's places: zones before the interfaces, policies after the VPNs.
    assert!(at(r#"set zone "Untrust" block"#) < at(r#"set interface "ethernet0/1" zone "Trust""#));
    assert!(at(r#"set vpn "test" proxy-id check"#) < head);
    // The printed lines load back into the same configuration.
    let (again, _) = Config::load(&printed.join("\n")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.to_lines(), printed);
}

#[test]
fn pasted_line_by_line_only_forward_references_wait() {
    // Config::apply checks each line against what is there: the seed's
    // order binds the VPN before tunnel.1 exists. Lines that name what a
    // later line defines wait and are applied again after each line that
    // succeeds (what the esprit shell does with a paste).
    let mut config = Config::new();
    let mut waiting: Vec<String> = Vec::new();
    let mut waited = Vec::new();
    for line in saved().lines() {
        match config.apply(line) {
            Ok(_) => {}
            Err(e) => {
                assert!(
                    matches!(*e.kind, ErrorKind::UnknownReference { .. } | ErrorKind::WrongReference { .. }),
                    "{line}: {e}"
                );
                waiting.push(line.to_owned());
                waited.push(line.to_owned());
                continue;
            }
        }
        while let Some(i) = waiting.iter().position(|l| config.apply(l).is_ok()) {
            waiting.remove(i);
        }
    }
    assert!(waiting.is_empty(), "{waiting:?}");
    assert_eq!(waited, [r#"set vpn "test" id 0x1 bind interface tunnel.1"#]);
    let (whole, _) = Config::load(&saved()).unwrap();
    assert_eq!(config.to_lines(), whole.to_lines());
}

#[test]
fn unset_removes_the_kept_lines_it_names() {
    let (mut config, _) = Config::load(&saved()).unwrap();
    config.apply("unset policy id 1").unwrap();
    let printed = config.to_lines();
    assert!(!printed.iter().any(|l| l.starts_with("set policy id 1") || l.contains("lan-10.1.2.0\"\"")));
    assert!(printed.iter().any(|l| l.starts_with("set policy id 2 ")));
    assert_eq!(printed.iter().filter(|l| *l == "exit").count(), 2);
    config.apply(r#"unset address "Untrust" "remote-10.2.2.0""#).unwrap();
    assert!(!config.to_lines().iter().any(|l| l.contains("\"remote-10.2.2.0\" 10.2.2.0")));
    // An unset names the kept lines its words begin.
    config.apply(r#"unset zone "DMZ" tcp-rst"#).unwrap();
    assert!(!config.to_lines().iter().any(|l| l.contains(r#"zone "DMZ" tcp-rst"#)));
    assert!(config.to_lines().iter().any(|l| l == r#"set zone "DMZ" vrouter "trust-vr""#));
    // One that names nothing kept is kept itself (ScreenOS saves some).
    config.apply(r#"unset zone "Trust" syn-cookie"#).unwrap();
    assert!(config.to_lines().iter().any(|l| l == r#"unset zone "Trust" syn-cookie"#));
}
