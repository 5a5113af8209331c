//! The seed's sample configuration (KB16008), with its addresses filled in,
//! loads unchanged, means what the seed says, and prints back canonically.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use esprit_config::{Config, VpnKind};
use esprit_policy::{ProxyId, Service};

const GATEWAY1: &str = include_str!("data/seed-gateway1.conf");
const GATEWAY2: &str = include_str!("data/seed-gateway2.conf");

fn pid(local: &str, remote: &str) -> ProxyId {
    ProxyId { local: local.parse().unwrap(), remote: remote.parse().unwrap(), service: Service::ANY }
}

#[test]
fn the_seed_lines_are_in_the_file_verbatim() {
    // The sample block of the seed, with addresses inserted where the web
    // page dropped them: every line must appear as is.
    for line in [
        r##"set ike gateway "test" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "#ABC123" sec-level standard"##,
        r#"set vpn "test" gateway "test" no-replay tunnel idletime 0 sec-level standard"#,
        r#"set vpn "test" monitor rekey"#,
        r#"set vpn "test" id 0x1 bind interface tunnel.1"#,
        r#"set vpn "test" proxy-id check"#,
        "set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any",
        r#"set interface "tunnel.1" zone "Untrust""#,
        "set interface tunnel.1 ip unnumbered interface ethernet0/2",
        "set route 10.2.1.0/24 interface tunnel.1",
        "set route 10.2.2.0/24 interface tunnel.1",
    ] {
        assert!(GATEWAY1.lines().any(|l| l == line), "missing: {line}");
    }
}

#[test]
fn gateway1_loads_with_sec_level_group2_and_short_key_warnings() {
    let (c, warnings) = Config::load(GATEWAY1).unwrap();
    let text: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        text,
        [
            "line 21: warning: ike gateway \"test\": preshare is 7 characters, under 20: whoever records one exchange \
             (any Aggressive Mode answer carries HASH_R in clear; Main Mode to an active attacker) can search a short \
             key offline: use 20 or more random characters",
            "line 21: warning: ike gateway \"test\": sec-level standard is pre-g2-3des-sha and pre-g2-aes128-sha in ScreenOS; \
             esprit refuses 3DES (RFC 8221) and proposes only pre-g2-aes128-sha: consider proposal \"pre-g14-aes128-sha\"",
            "line 21: warning: ike gateway \"test\": pre-g2-aes128-sha: DH group 2 (MODP 1024) is accepted for ScreenOS \
             compatibility, but RFC 8247 §2.4 says it SHOULD NOT be used (under 80 bits of strength, within reach of \
             precomputation): use group 14 or 19",
            "line 23: warning: vpn \"test\": sec-level standard is g2-esp-3des-sha and g2-esp-aes128-sha in ScreenOS; \
             esprit refuses 3DES (RFC 8221) and proposes only g2-esp-aes128-sha: consider proposal \"g14-esp-aes128-sha\"",
            "line 23: warning: vpn \"test\": g2-esp-aes128-sha: DH group 2 (MODP 1024) is accepted for ScreenOS \
             compatibility, but RFC 8247 §2.4 says it SHOULD NOT be used (under 80 bits of strength, within reach of \
             precomputation): use group 14 or 19",
        ]
    );

    let g = c.gateway("test").unwrap();
    assert_eq!(g.peer, esprit_config::model::GatewayPeer::Address("203.0.113.2".parse().unwrap()));
    assert_eq!(g.outgoing_interface.as_str(), "ethernet0/2");
    assert_eq!(g.preshare.expose(), "#ABC123");
    assert_eq!(c.p1_suites("test").iter().map(|s| s.to_string()).collect::<Vec<_>>(), ["pre-g2-aes128-sha"]);
    assert_eq!(c.p2_suites("test").iter().map(|s| s.to_string()).collect::<Vec<_>>(), ["g2-esp-aes128-sha"]);

    let v = c.vpn("test").unwrap();
    let VpnKind::AutoKey(a) = &v.kind else { panic!("not autokey") };
    assert_eq!(a.gateway, "test");
    assert!(!a.replay);
    assert_eq!(a.idletime_mins, 0);
    assert_eq!(v.id, Some(1));
    assert_eq!(v.bind.as_ref().unwrap().as_str(), "tunnel.1");
    assert!(v.monitor.as_ref().unwrap().rekey);
    assert!(v.proxy_id_check && v.enforces_proxy_ids());
    assert_eq!(
        c.proxy_ids("test"),
        [
            pid("10.1.1.0/24", "10.2.1.0/24"),
            pid("10.1.1.0/24", "10.2.2.0/24"),
            pid("10.1.2.0/24", "10.2.1.0/24"),
            pid("10.1.2.0/24", "10.2.2.0/24"),
        ]
    );
    assert_eq!(c.vpn_bound_to("tunnel.1").unwrap().name, "test");

    let routes: Vec<String> = c.routes().iter().map(|r| format!("{} {}", r.prefix, r.interface)).collect();
    assert_eq!(routes, ["0.0.0.0/0 ethernet0/2", "10.2.1.0/24 tunnel.1", "10.2.2.0/24 tunnel.1"]);
    let t = c.interface("TUNNEL.1").unwrap();
    assert_eq!(t.zone.as_deref(), Some("Untrust"));
    assert_eq!(c.interface("ethernet0/2").unwrap().port.as_deref(), Some("wan0"));
}

#[test]
fn gateway2_is_the_mirror_image() {
    let (c1, _) = Config::load(GATEWAY1).unwrap();
    let (c2, w) = Config::load(GATEWAY2).unwrap();
    assert_eq!(w.len(), 5);
    let mirrored: Vec<ProxyId> = c1
        .proxy_ids("test")
        .iter()
        .map(|p| ProxyId { local: p.remote, remote: p.local, service: p.service })
        .collect();
    let mut theirs = c2.proxy_ids("test");
    let mut ours = mirrored;
    theirs.sort();
    ours.sort();
    assert_eq!(theirs, ours);
    assert_eq!(c2.gateway("test").unwrap().preshare, c1.gateway("test").unwrap().preshare);
}

#[test]
fn seed_round_trips_through_to_lines() {
    for text in [GATEWAY1, GATEWAY2] {
        let (c, _) = Config::load(text).unwrap();
        let printed = c.to_lines().join("\n");
        let (again, _) = Config::load(&printed).unwrap();
        assert_eq!(again, c);
        assert_eq!(again.to_lines().join("\n"), printed);
        // The printed order also works line by line, interactively.
        let mut step = Config::new();
        for line in c.to_lines() {
            step.apply(&line).unwrap();
        }
        assert_eq!(step, c);
    }
}

#[test]
fn gateway1_canonical_form() {
    let (c, _) = Config::load(GATEWAY1).unwrap();
    let expected = r##"set interface "ethernet0/1" zone "Trust"
set interface "ethernet0/1" ip 10.1.1.1/24
set interface "ethernet0/1" port "lan0"
set interface "ethernet0/2" zone "Untrust"
set interface "ethernet0/2" ip 198.51.100.1/24
set interface "ethernet0/2" port "wan0"
set interface "tunnel.1" zone "Untrust"
set interface "tunnel.1" ip unnumbered interface ethernet0/2
set ike gateway "test" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "#ABC123" sec-level standard
set vpn "test" gateway "test" no-replay tunnel idletime 0 sec-level standard
set vpn "test" monitor rekey
set vpn "test" id 0x1 bind interface tunnel.1
set vpn "test" proxy-id check
set vpn "test" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 "ANY"
set vpn "test" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.2.0/24 "ANY"
set vpn "test" proxy-id local-ip 10.1.2.0/24 remote-ip 10.2.1.0/24 "ANY"
set vpn "test" proxy-id local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 "ANY"
set route 0.0.0.0/0 interface ethernet0/2 gateway 198.51.100.254
set route 10.2.1.0/24 interface tunnel.1
set route 10.2.2.0/24 interface tunnel.1"##;
    assert_eq!(c.to_lines().join("\n"), expected);
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let (c, _) = Config::load(GATEWAY1).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("ABC123"), "{debug}");
    assert!(debug.contains("<secret>"));
}
