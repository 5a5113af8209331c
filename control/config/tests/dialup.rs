//! Dialup users and groups, and next-hop tunnel binding (NHTB): how they
//! load, print and round-trip, and every refusal with its exact message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use esprit_config::model::Identity;
use esprit_config::{Config, ErrorKind};

const EXAMPLE: &str = include_str!("data/dialup-nhtb.conf");

fn example() -> Config {
    Config::load(EXAMPLE).unwrap().0
}

/// What `to_lines` prints for the example: users and groups before the
/// gateways, each VPN's NHTB entries before its `bind`, routes last.
const PRINTED: &[&str] = &[
    r#"set interface "ethernet0/1" zone "Trust""#,
    r#"set interface "ethernet0/1" ip 10.1.1.1/24"#,
    r#"set interface "ethernet0/2" zone "Untrust""#,
    r#"set interface "ethernet0/2" ip 198.51.100.1/24"#,
    r#"set interface "tunnel.1" zone "Untrust""#,
    r#"set interface "tunnel.1" ip unnumbered interface ethernet0/2"#,
    r#"set interface "tunnel.2" zone "Untrust""#,
    r#"set interface "tunnel.2" ip unnumbered interface ethernet0/2"#,
    r#"set user "alice" uid 1"#,
    r#"set user "alice" ike-id u-fqdn "alice@example.net" share-limit 1"#,
    r#"set user "alice" type ike"#,
    r#"set user "alice" enable"#,
    r#"set user "bob" uid 2"#,
    r#"set user "bob" ike-id fqdn "bob.example.net" share-limit 2"#,
    r#"set user "bob" type ike"#,
    r#"set user "bob" enable"#,
    r#"set user "carol" ike-id ip 192.0.2.77 share-limit 1"#,
    r#"set user "carol" type ike"#,
    r#"set user "carol" enable"#,
    r#"set user-group "road" id 1 location local"#,
    r#"set user-group "road" user "alice""#,
    r#"set user-group "road" user "bob""#,
    r#"set ike gateway "carol-gw" dialup "carol" Main outgoing-interface "ethernet0/2" preshare "carol's own key, twenty+" proposal "pre-g14-aes128-sha""#,
    r#"set ike gateway "dial" dialup "road" Aggr outgoing-interface "ethernet0/2" preshare "one key for the road group" proposal "pre-g14-aes128-sha""#,
    r#"set ike gateway "east" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "east key, twenty chars+" proposal "pre-g14-aes128-sha""#,
    r#"set ike gateway "west" address 203.0.113.3 Main outgoing-interface "ethernet0/2" preshare "west key, twenty chars+" proposal "pre-g14-aes128-sha""#,
    r#"set vpn "dialvpn" gateway "dial" replay tunnel idletime 0 proposal "g14-esp-aes128-sha""#,
    r#"set vpn "dialvpn" bind interface tunnel.2"#,
    r#"set vpn "dialvpn" proxy-id local-ip 10.1.1.0/24 remote-ip 0.0.0.0/0 "ANY""#,
    r#"set vpn "e" gateway "east" replay tunnel idletime 0 proposal "g14-esp-aes128-sha""#,
    r#"set interface tunnel.1 nhtb 169.254.1.2 vpn "e""#,
    r#"set vpn "e" id 0x10 bind interface tunnel.1"#,
    r#"set vpn "w" gateway "west" replay tunnel idletime 0 proposal "g14-esp-aes128-sha""#,
    r#"set interface tunnel.1 nhtb 169.254.1.3 vpn "w""#,
    r#"set vpn "w" id 0x11 bind interface tunnel.1"#,
    "set route 10.2.0.0/16 interface tunnel.1 gateway 169.254.1.2",
    "set route 10.3.0.0/16 interface tunnel.1 gateway 169.254.1.3",
];

#[test]
fn the_example_loads_prints_and_round_trips() {
    let (c, warnings) = Config::load(EXAMPLE).unwrap();
    let warnings: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [
            r#"line 19: warning: user "bob": share-limit 2: up to 2 clients may present this one identity and key at once, and esprit tells them apart only by their addresses (ScreenOS pairs a shared IKE ID with XAuth, which esprit does not have): give each client its own user where you can"#
        ]
    );
    assert_eq!(c.to_lines(), PRINTED);

    // Loaded whole, and applied line by line as the shell does: equal.
    let (again, _) = Config::load(&PRINTED.join("\n")).unwrap();
    assert_eq!(again, c);
    let mut by_line = Config::new();
    for line in PRINTED {
        by_line.apply(line).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(by_line, c);

    let alice = c.user("alice").unwrap();
    assert_eq!(alice.ike_id, Some(Identity::UserFqdn("alice@example.net".into())));
    assert_eq!((alice.uid, alice.share_limit, alice.ike, alice.enabled), (Some(1), 1, true, true));
    assert_eq!(c.user("carol").unwrap().ike_id, Some(Identity::Address("192.0.2.77".parse().unwrap())));
    let names = |g: &str| c.dialup_users(g).iter().map(|u| u.name.clone()).collect::<Vec<_>>();
    assert_eq!(names("dial"), ["alice", "bob"]);
    assert_eq!(names("carol-gw"), ["carol"]);
    assert!(names("east").is_empty());
    assert_eq!(c.nhtb_vpn("tunnel.1", "169.254.1.3".parse().unwrap()), Some("w"));
    assert_eq!(c.nhtb_vpn("TUNNEL.1", "169.254.1.9".parse().unwrap()), None);
    assert_eq!(c.nhtb().count(), 2);
    let bound: Vec<&str> = c.vpns_bound_to("tunnel.1").iter().map(|v| v.name.as_str()).collect();
    assert_eq!(bound, ["e", "w"]);
    let shared: Vec<(String, Vec<String>)> =
        c.shared_tunnels().into_iter().map(|(t, v)| (t.to_string(), v)).collect();
    assert_eq!(shared, [("tunnel.1".to_owned(), vec!["e".to_owned(), "w".to_owned()])]);
}

/// A refused `unset` of something in use is typed as such.
#[test]
fn unset_in_use_is_typed() {
    let mut c = example();
    let e = c.apply(r#"unset user "alice""#).unwrap_err();
    assert!(
        matches!(&*e.kind, ErrorKind::InUse(inner) if matches!(**inner, ErrorKind::UnknownReference { kind: "user", .. }))
    );
}

/// Taken apart in the order that frees each object first: every step is
/// accepted, and what is left round-trips.
#[test]
fn unset_in_order() {
    let mut c = example();
    for line in [
        r#"unset user-group "road" user "bob""#,
        r#"unset user "bob""#,
        "unset route 10.3.0.0/16",
        // The binding goes before the entry that made it legal.
        "unset vpn w bind interface",
        "unset interface tunnel.1 nhtb 169.254.1.3 vpn w",
        r#"unset vpn "w""#,
        "unset user alice uid",
        r#"set user "alice" disable"#,
        r#"unset vpn "dialvpn""#,
        r#"unset ike gateway "carol-gw""#,
        r#"unset user "carol""#,
    ] {
        c.apply(line).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(c.user_group("road").unwrap().members, ["alice"]);
    assert!(c.user("bob").is_none() && c.user("carol").is_none() && c.vpn("w").is_none());
    assert_eq!(c.nhtb().count(), 1);
    let printed: Vec<String> = c.to_lines().into_iter().filter(|l| l.starts_with("set user")).collect();
    assert_eq!(
        printed,
        [
            r#"set user "alice" ike-id u-fqdn "alice@example.net" share-limit 1"#,
            r#"set user "alice" type ike"#,
            r#"set user "alice" disable"#,
            r#"set user-group "road" id 1 location local"#,
            r#"set user-group "road" user "alice""#,
        ]
    );
    let (again, _) = Config::load(&c.to_lines().join("\n")).unwrap();
    assert_eq!(again, c);
}

/// Accepted, but worth a word: said once, by the line that makes it so,
/// and at load with that line's number.
#[test]
fn warnings_for_an_empty_group_and_an_idle_binding() {
    let mut c = example();
    let w = c.apply(r#"set user-group "nobody-yet" location local"#).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let w = c
        .apply(r#"set ike gateway "g9" dialup "nobody-yet" Aggr outgoing-interface "ethernet0/2" preshare "a key of twenty chars+" proposal "pre-g14-aes128-sha""#)
        .unwrap();
    let w: Vec<String> = w.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            r#"warning: ike gateway "g9": user-group "nobody-yet" has no users: no client can connect through it yet (set user-group "nobody-yet" user NAME)"#
        ]
    );
    // The same state again says nothing new.
    assert!(c.apply("set user alice enable").unwrap().is_empty());
    let w = c.apply(r#"unset vpn "e" bind interface"#).unwrap();
    let w: Vec<String> = w.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            r#"warning: interface "tunnel.1" nhtb 169.254.1.2: vpn "e" is not bound to tunnel.1: the binding applies once it is (set vpn "e" bind interface tunnel.1)"#
        ]
    );

    let text = format!("{EXAMPLE}\nset user-group \"nobody-yet\" location local\nset ike gateway \"g9\" dialup \"nobody-yet\" Aggr outgoing-interface \"ethernet0/2\" preshare \"a key of twenty chars+\" proposal \"pre-g14-aes128-sha\"\n");
    let (_, w) = Config::load(&text).unwrap();
    let last = w.last().unwrap().to_string();
    assert_eq!(
        last,
        r#"line 46: warning: ike gateway "g9": user-group "nobody-yet" has no users: no client can connect through it yet (set user-group "nobody-yet" user NAME)"#
    );
}

/// Whole files: cross references checked at the end, reported on the line
/// that made them.
#[test]
fn load_reports_the_line() {
    let head = "set interface ethernet0/2 ip 198.51.100.1/24\n\
                set interface tunnel.1 ip unnumbered interface ethernet0/2\n";
    let cases: &[(&str, &str)] = &[
        (
            "set user-group g location local\n\
             set user-group g user u\n\
             set user u ike-id u-fqdn u@example.net\n",
            r#"line 4: "set user-group g user u": user-group "g" user names "u" but it is not an IKE user: set user "u" type ike"#,
        ),
        (
            "set user a ike-id ip 192.0.2.1\n\
             set user b ike-id ip 192.0.2.1\n",
            r#"line 4: "set user b ike-id ip 192.0.2.1": user "a" (ike-id ip "192.0.2.1") and user "b" (ike-id ip "192.0.2.1") have one identity: a client's identity names one user (share-limit N lets N clients share one user)"#,
        ),
        (
            "set ike gateway g dialup nobody Aggr outgoing-interface ethernet0/2 preshare \"k\" proposal pre-g14-aes128-sha\n\
             set ike gateway g nat-traversal\n",
            r#"line 3: "set ike gateway g dialup nobody Aggr outgoing-interface ethernet0/2 preshare <secret> proposal pre-g14-aes128-sha": ike gateway "g" dialup names unknown user or user-group "nobody": define a user (set user NAME ike-id ..., set user NAME type ike) or a group (set user-group NAME location local)"#,
        ),
        (
            "set ike gateway g address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"k\" proposal pre-g14-aes128-sha\n\
             set vpn v gateway g sec-level standard\n\
             set vpn v bind interface tunnel.1\n\
             set interface tunnel.1 nhtb 169.254.0.3 vpn v\n\
             set route 10.2.0.0/16 interface tunnel.1 gateway 169.254.0.2\n",
            r#"line 7: "set route 10.2.0.0/16 interface tunnel.1 gateway 169.254.0.2": route 10.2.0.0/16 interface tunnel.1 gateway names "169.254.0.2" but tunnel.1 has no nhtb entry for it: on a tunnel interface the gateway selects the VPN by next-hop tunnel binding (set interface tunnel.1 nhtb 169.254.0.2 vpn NAME), or leave the gateway out"#,
        ),
        (
            "set interface tunnel.1 nhtb 169.254.0.2 vpn v\n\
             set ike gateway g address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"k\" proposal pre-g14-aes128-sha\n\
             set vpn v gateway g sec-level standard\n\
             set vpn v bind interface tunnel.2\n\
             set interface tunnel.2 ip unnumbered interface ethernet0/2\n",
            r#"line 3: "set interface tunnel.1 nhtb 169.254.0.2 vpn v": interface "tunnel.1" nhtb 169.254.0.2 vpn names "v" but it is bound to interface tunnel.2, not tunnel.1"#,
        ),
    ];
    for (body, expected) in cases {
        let e = Config::load(&format!("{head}{body}")).unwrap_err();
        assert_eq!(e.to_string(), *expected);
    }
    // Without any binding on the tunnel interface, a route's gateway is
    // what it always was: the one VPN bound there carries the route.
    let (c, _) =
        Config::load(&format!("{head}set route 10.2.0.0/16 interface tunnel.1 gateway 169.254.0.2\n"))
            .unwrap();
    assert_eq!(c.routes().len(), 1);
}

/// The words that introduce secrets in these lines are redacted in every
/// echo of the line, even when the line is refused.
#[test]
fn refused_secrets_are_never_echoed() {
    for line in [
        r#"set ike gateway "dial" seed-preshare "seedsecret" proposal x"#,
        r#"set ike gateway "dial" seed-preshare "seedsecret"#,
        "set user dave password seedsecret extra",
        "set user dave hash-password seedsecret",
    ] {
        let e = example().apply(line).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("seedsecret"), "{text}");
        assert!(text.contains("<secret>"), "{text}");
    }
}
