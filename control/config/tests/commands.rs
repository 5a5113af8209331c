//! Every command form, `set` and `unset`: what it does to the
//! configuration, how it prints back, and that it round-trips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use esprit_config::model::{GatewayPeer, Identity, IkeMode, IkeVersion};
use esprit_config::proposal::{Cipher, DhGroup, Hash};
use esprit_config::{Config, InterfaceIp, VpnKind};
use esprit_policy::{PortRange, Service};

/// Ports, a tunnel, a gateway and a VPN to hang things on.
const BASE: &str = r#"
set interface ethernet0/1 zone Trust
set interface ethernet0/1 ip 10.1.1.1/24
set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 198.51.100.1/24
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set ike gateway gw address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare "s3cret key of 20+ chars" proposal pre-g14-aes128-sha
set vpn v gateway gw replay tunnel idletime 0 proposal g14-esp-aes128-sha
set vpn v bind interface tunnel.1
"#;

fn base() -> Config {
    let (c, w) = Config::load(BASE).unwrap();
    assert!(w.is_empty(), "{w:?}");
    c
}

/// Applies lines in order, checks round trips, returns the config.
fn with(lines: &[&str]) -> Config {
    let mut c = base();
    for line in lines {
        c.apply(line).unwrap_or_else(|e| panic!("{e}"));
    }
    round_trip(&c);
    c
}

fn round_trip(c: &Config) {
    let text = c.to_lines().join("\n");
    let (again, _) = Config::load(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&again, c, "{text}");
}

fn printed(c: &Config, prefix: &str) -> Vec<String> {
    c.to_lines().into_iter().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn interfaces() {
    let c = with(&[
        "set interface ethernet0/3 zone DMZ",
        "set interface ethernet0/3 ip 192.0.2.1/24",
        "set interface ethernet0/3 mtu 9000",
        "set interface ethernet0/3 port eth3",
        "set interface ETHERNET0/4 ip 2001:db8::1/64",
        "set interface tunnel.2 zone Untrust",
        "set interface tunnel.2 ip 169.254.0.1/30",
    ]);
    let i = c.interface("ethernet0/3").unwrap();
    assert_eq!(i.zone.as_deref(), Some("DMZ"));
    assert!(matches!(&i.ip, Some(InterfaceIp::Address(a)) if a.to_string() == "192.0.2.1/24"));
    assert_eq!(i.mtu, Some(9000));
    assert_eq!(i.port.as_deref(), Some("eth3"));
    assert!(c.interface("ethernet0/4").is_some());
    assert_eq!(
        printed(&c, "set interface \"ethernet0/3\""),
        [
            r#"set interface "ethernet0/3" zone "DMZ""#,
            r#"set interface "ethernet0/3" ip 192.0.2.1/24"#,
            r#"set interface "ethernet0/3" mtu 9000"#,
            r#"set interface "ethernet0/3" port "eth3""#,
        ]
    );
    assert_eq!(printed(&c, "set interface \"tunnel.2\"")[1], r#"set interface "tunnel.2" ip 169.254.0.1/30"#);

    // unset, item by item; an interface with nothing left is gone.
    let mut c = c;
    for line in [
        "unset interface ethernet0/3 port",
        "unset interface ethernet0/3 mtu",
        "unset interface ethernet0/3 ip",
    ] {
        c.apply(line).unwrap();
    }
    let i = c.interface("ethernet0/3").unwrap();
    assert_eq!((i.ip.as_ref(), i.mtu, i.port.as_ref()), (None, None, None));
    c.apply("unset interface ethernet0/3 zone").unwrap();
    assert!(c.interface("ethernet0/3").is_none());
    c.apply("unset interface ethernet0/4").unwrap();
    assert!(c.interface("ethernet0/4").is_none());
    round_trip(&c);
}

#[test]
fn manage_is_accepted_and_ignored_with_a_warning() {
    let mut c = base();
    let before = c.clone();
    let w = c.apply("set interface ethernet0/2 manage ping ssh").unwrap();
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("manage is ignored"), "{}", w[0]);
    let w = c.apply("unset interface ethernet0/2 manage ssh").unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(c, before);
}

#[test]
fn routes() {
    let c = with(&[
        "set route 10.2.0.0/16 interface tunnel.1",
        "set route 0.0.0.0/0 interface ethernet0/2 gateway 198.51.100.254 metric 10",
        "set route 10.3.0.0/16 interface tunnel.1 metric 1",
        "set route 2001:db8:2::/48 interface tunnel.1",
        "set route 10.2.0.0/16 interface tunnel.1 metric 5",
    ]);
    assert_eq!(
        printed(&c, "set route"),
        [
            "set route 10.2.0.0/16 interface tunnel.1 metric 5",
            "set route 0.0.0.0/0 interface ethernet0/2 gateway 198.51.100.254 metric 10",
            "set route 10.3.0.0/16 interface tunnel.1",
            "set route 2001:db8:2::/48 interface tunnel.1",
        ]
    );
    let mut c = c;
    c.apply("unset route 10.2.0.0/16 interface tunnel.1").unwrap();
    c.apply("unset route 0.0.0.0/0 interface ethernet0/2 gateway 198.51.100.254").unwrap();
    c.apply("unset route 10.3.0.0/16").unwrap();
    assert_eq!(printed(&c, "set route"), ["set route 2001:db8:2::/48 interface tunnel.1"]);
    round_trip(&c);
}

#[test]
fn null_routes_and_withdraw_routes() {
    // The ScreenOS backstop: a null route behind a VPN route, for when the
    // VPN route is withdrawn.
    let c = with(&[
        "set route 10.2.1.0/24 interface tunnel.1",
        "set route 10.2.1.0/24 interface NULL metric 250",
        "set vpn v withdraw-routes",
    ]);
    assert_eq!(
        printed(&c, "set route"),
        ["set route 10.2.1.0/24 interface tunnel.1", "set route 10.2.1.0/24 interface null metric 250"]
    );
    assert!(c.routes()[1].interface.is_null());
    assert!(c.vpn("v").unwrap().withdraw_routes);
    assert_eq!(printed(&c, "set vpn \"v\" withdraw"), [r#"set vpn "v" withdraw-routes"#]);
    let mut c = c;
    c.apply("unset vpn v withdraw-routes").unwrap();
    assert!(!c.vpn("v").unwrap().withdraw_routes);
    c.apply("unset route 10.2.1.0/24 interface null").unwrap();
    assert_eq!(printed(&c, "set route"), ["set route 10.2.1.0/24 interface tunnel.1"]);
    round_trip(&c);
}

#[test]
fn ike_gateways() {
    let c = with(&[
        r#"set user "alice" ike-id u-fqdn "alice@example.net""#,
        r#"set user "alice" type ike"#,
        r#"set user-group "road-warriors" location local"#,
        r#"set user-group "road-warriors" user "alice""#,
        r#"set ike gateway "dial" dialup "road-warriors" Aggr outgoing-interface "ethernet0/2" preshare "k1" sec-level compatible"#,
        r#"set ike gateway "dyn" dynamic "branch.example.net" Main outgoing-interface "ethernet0/2" preshare "k2" proposal "pre-g19-aes256-sha256" "pre-g14-aes128-sha""#,
        "set ike gateway gw nat-traversal",
        "set ike gateway gw nat-traversal udp-checksum",
        "set ike gateway gw nat-traversal keepalive-frequency 20",
        "set ike gateway gw dpd-liveness interval 10",
        "set ike gateway gw dpd-liveness retry 3",
        "set ike gateway gw local-id 198.51.100.1",
        r#"set ike gateway gw peer-id "peer@example.net""#,
        "set ike gateway gw Aggr",
    ]);
    let g = c.gateway("gw").unwrap();
    assert_eq!(g.mode, IkeMode::Aggressive);
    let nat = g.nat_traversal.unwrap();
    assert!(nat.udp_checksum);
    assert_eq!(nat.keepalive_secs, 20);
    let dpd = g.dpd.unwrap();
    assert_eq!((dpd.interval_secs, dpd.retry), (10, 3));
    assert_eq!(g.local_id, Some(Identity::Address("198.51.100.1".parse().unwrap())));
    assert_eq!(g.peer_id, Some(Identity::UserFqdn("peer@example.net".into())));
    assert_eq!(c.gateway("dial").unwrap().peer, GatewayPeer::Dialup("road-warriors".into()));
    assert_eq!(
        c.gateway("dyn").unwrap().peer,
        GatewayPeer::Dynamic(Identity::Fqdn("branch.example.net".into()))
    );
    let suites = c.p1_suites("dyn");
    assert_eq!(suites.len(), 2);
    assert_eq!(
        (suites[0].group, suites[0].cipher, suites[0].hash),
        (DhGroup::Ecp256, Cipher::Aes256, Hash::Sha256)
    );
    assert_eq!(c.p1_suites("dial")[0].to_string(), "pre-g2-aes128-sha");
    assert_eq!(
        printed(&c, "set ike gateway \"gw\""),
        [
            r#"set ike gateway "gw" address 203.0.113.2 Aggr outgoing-interface "ethernet0/2" preshare "s3cret key of 20+ chars" proposal "pre-g14-aes128-sha""#,
            r#"set ike gateway "gw" nat-traversal udp-checksum keepalive-frequency 20"#,
            r#"set ike gateway "gw" dpd-liveness interval 10 retry 3"#,
            r#"set ike gateway "gw" local-id "198.51.100.1""#,
            r#"set ike gateway "gw" peer-id "peer@example.net""#,
        ]
    );

    let mut c = c;
    for line in [
        "unset ike gateway gw nat-traversal",
        "unset ike gateway gw dpd-liveness",
        "unset ike gateway gw local-id",
        "unset ike gateway gw peer-id",
        "unset ike gateway dial",
    ] {
        c.apply(line).unwrap();
    }
    assert_eq!(printed(&c, "set ike gateway \"gw\"").len(), 1);
    assert!(c.gateway("dial").is_none());
    round_trip(&c);
}

#[test]
fn ikev2_gateways() {
    let c = with(&[
        r#"set ike gateway ikev2 "v2" address 203.0.113.3 outgoing-interface "ethernet0/2" preshare "another key of 20+ chars" proposal "pre-g19-aes256-sha256""#,
        "set ike gateway ikev2 v2 dpd-liveness interval 10",
        // A later line may leave the marker out: the name says which.
        r#"set ike gateway v2 peer-id "peer@example.net""#,
        // A gateway named ikev2 is still an IKEv1 one.
        r#"set ike gateway ikev2 address 203.0.113.4 outgoing-interface "ethernet0/2" preshare "a third key of 20+ chars" proposal "pre-g14-aes128-sha""#,
    ]);
    let g = c.gateway("v2").unwrap();
    assert_eq!(g.version, IkeVersion::V2);
    assert_eq!(g.peer, GatewayPeer::Address("203.0.113.3".parse().unwrap()));
    assert_eq!(c.gateway("gw").unwrap().version, IkeVersion::V1);
    assert_eq!(c.gateway("ikev2").unwrap().version, IkeVersion::V1);
    assert_eq!(
        printed(&c, "set ike gateway ikev2 \"v2\""),
        [
            r#"set ike gateway ikev2 "v2" address 203.0.113.3 outgoing-interface "ethernet0/2" preshare "another key of 20+ chars" proposal "pre-g19-aes256-sha256""#,
            r#"set ike gateway ikev2 "v2" dpd-liveness interval 10 retry 5"#,
            r#"set ike gateway ikev2 "v2" peer-id "peer@example.net""#,
        ]
    );
    assert_eq!(
        printed(&c, "set ike gateway \"ikev2\""),
        [
            r#"set ike gateway "ikev2" address 203.0.113.4 Main outgoing-interface "ethernet0/2" preshare "a third key of 20+ chars" proposal "pre-g14-aes128-sha""#
        ]
    );

    // The version is the gateway's for life, and Main/Aggr are IKEv1's.
    let mut c = c;
    for (line, says) in [
        (
            "set ike gateway ikev2 gw dpd-liveness interval 10",
            "is an IKEv1 gateway: unset it first to make it IKEv2",
        ),
        ("set ike gateway v2 Aggr", "Aggr is an IKEv1 phase-1 mode; an ikev2 gateway has none"),
        (
            r#"set ike gateway ikev2 "new" address 203.0.113.5 Main outgoing-interface "ethernet0/2" preshare "k" sec-level standard"#,
            "Main is an IKEv1 phase-1 mode",
        ),
    ] {
        let before = c.clone();
        let e = c.apply(line).unwrap_err().to_string();
        assert!(e.contains(says), "{line}: {e}");
        assert_eq!(c, before, "{line}: a refused line changes nothing");
    }
    c.apply("unset ike gateway ikev2 v2").unwrap();
    assert!(c.gateway("v2").is_none());
    round_trip(&c);
}

#[test]
fn ikev2_gateways_with_certificates() {
    let c = with(&[
        r#"set pki local-cert "west" certificate "/etc/esprit/west-cert.pem" key "/etc/esprit/west-key.pem""#,
        r#"set pki ca-cert "lab-ca" file "/etc/esprit/ca.pem""#,
        r#"set ike p1-proposal "p1-rsa" rsa-sig group14 esp aes128 sha-1 second 3600"#,
        r#"set ike gateway ikev2 "v2" address 203.0.113.3 outgoing-interface "ethernet0/2" proposal "p1-rsa" "rsa-g19-aes256-sha256""#,
        r#"set ike gateway ikev2 "v2" cert my-cert "west""#,
        r#"set ike gateway ikev2 "v2" cert peer-ca "lab-ca""#,
        r#"set ike gateway ikev2 "v2" local-id "west.example""#,
    ]);
    let g = c.gateway("v2").unwrap();
    assert_eq!((g.my_cert.as_deref(), g.peer_ca.as_deref()), (Some("west"), Some("lab-ca")));
    assert_eq!(c.p1_suites("v2")[1].to_string(), "rsa-g19-aes256-sha256");
    assert_eq!(c.local_cert("west").unwrap().key, "/etc/esprit/west-key.pem");
    assert_eq!(c.ca_cert("lab-ca"), Some("/etc/esprit/ca.pem"));
    assert_eq!(
        printed(&c, "set pki"),
        [
            r#"set pki local-cert "west" certificate "/etc/esprit/west-cert.pem" key "/etc/esprit/west-key.pem""#,
            r#"set pki ca-cert "lab-ca" file "/etc/esprit/ca.pem""#,
        ]
    );
    assert_eq!(
        printed(&c, "set ike gateway ikev2 \"v2\"")[0],
        r#"set ike gateway ikev2 "v2" address 203.0.113.3 outgoing-interface "ethernet0/2" proposal "p1-rsa" "rsa-g19-aes256-sha256""#
    );
    assert_eq!(
        printed(&c, "set ike p1-proposal")[0],
        r#"set ike p1-proposal "p1-rsa" rsa-sig group14 esp aes128 sha-1 second 3600"#
    );

    // What each method needs, refused in words; a refused line changes
    // nothing.
    let mut c = c;
    for (line, says) in [
        ("unset pki local-cert west", "is used by ike gateway \"v2\""),
        (r#"set ike gateway v2 cert my-cert "nope""#, "local-cert"),
        (
            r#"set ike gateway v2 proposal "pre-g14-aes128-sha" "rsa-g14-aes128-sha""#,
            "mix authentication methods",
        ),
        (r#"set ike gateway v2 proposal "pre-g14-aes128-sha""#, "preshare"),
        (r#"set ike gateway gw proposal "rsa-g14-aes128-sha""#, "need an ikev2 gateway"),
        (r#"set ike gateway v2 proposal "dsa-g14-aes128-sha""#, "DSA"),
        (r#"set ike p1-proposal "p1-dsa" dsa-sig group14 esp aes128 sha-1"#, "DSA"),
    ] {
        let before = c.clone();
        let e = c.apply(line).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(says), "{line}: {e}");
        assert_eq!(c, before, "{line}");
    }
    c.apply("unset ike gateway v2").unwrap();
    c.apply("unset pki local-cert west").unwrap();
    c.apply("unset pki ca-cert lab-ca").unwrap();
    assert!(c.local_cert("west").is_none() && c.ca_cert("lab-ca").is_none());
    round_trip(&c);
}

#[test]
fn a_gateway_line_may_change_the_key_and_proposals() {
    let c = with(&[r#"set ike gateway gw preshare "new key" sec-level standard"#]);
    let g = c.gateway("gw").unwrap();
    assert_eq!(g.preshare.expose(), "new key");
    assert_eq!(c.p1_suites("gw")[0].to_string(), "pre-g2-aes128-sha");
}

#[test]
fn custom_proposals() {
    let c = with(&[
        "set ike p1-proposal my-p1 preshare group14 esp aes256 sha2-256 hour 8",
        "set ike p1-proposal short preshare group19 esp aes128 sha-1",
        "set ike p2-proposal my-p2 group14 esp aes128 sha-1 second 3600 kbyte 1000000",
        "set ike p2-proposal gcm no-pfs esp aes256gcm minute 30",
        "set ike p2-proposal x25519 group31 esp aes128gcm",
        "set ike gateway gw proposal my-p1 pre-g14-aes128-sha",
        "set vpn v gateway gw no-replay tunnel idletime 5 proposal my-p2 gcm g14-esp-aes128-sha x25519",
    ]);
    let p1 = c.p1_suites("gw");
    assert_eq!(p1[0].lifetime_secs, 8 * 3600);
    assert_eq!((p1[0].cipher, p1[0].hash), (Cipher::Aes256, Hash::Sha256));
    let p2 = c.p2_suites("v");
    assert_eq!(p2.len(), 4);
    assert_eq!((p2[3].pfs, p2[3].esp.name()), (Some(DhGroup::Curve25519), "aes128gcm16"));
    assert_eq!(p2[0].lifetime_kbytes, Some(1_000_000));
    assert_eq!(p2[1].pfs, None);
    assert_eq!(p2[1].esp.name(), "aes256gcm16");
    assert_eq!(p2[1].lifetime_secs, 1800);
    assert_eq!(
        printed(&c, "set ike p"),
        [
            r#"set ike p1-proposal "my-p1" preshare group14 esp aes256 sha2-256 second 28800"#,
            r#"set ike p1-proposal "short" preshare group19 esp aes128 sha-1 second 28800"#,
            r#"set ike p2-proposal "gcm" no-pfs esp aes256gcm second 1800"#,
            r#"set ike p2-proposal "my-p2" group14 esp aes128 sha-1 second 3600 kbyte 1000000"#,
            r#"set ike p2-proposal "x25519" group31 esp aes128gcm second 3600"#,
        ]
    );
    // In use: cannot be removed; once unused, it can.
    let mut c = c;
    assert!(c.apply("unset ike p2-proposal gcm").is_err());
    c.apply("set vpn v gateway gw tunnel proposal g14-esp-aes128-sha").unwrap();
    c.apply("unset ike p2-proposal gcm").unwrap();
    c.apply("unset ike p2-proposal my-p2").unwrap();
    assert!(c.apply("unset ike p1-proposal my-p1").is_err());
    c.apply("unset ike p1-proposal short").unwrap();
    round_trip(&c);
}

#[test]
fn vpns() {
    let c = with(&[
        "set interface tunnel.2 zone Untrust",
        "set interface tunnel.2 ip unnumbered interface ethernet0/2",
        "set vpn w gateway gw sec-level standard",
        "set vpn w id 0x2 bind interface tunnel.2",
        "set vpn w monitor source-interface ethernet0/1 destination-ip 10.2.1.1 optimized rekey",
        "set vpn w proxy-id check",
        "set vpn w proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 HTTP",
        "set vpn w proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ping",
        "set vpn w proxy-id local-ip 2001:db8:1::/48 remote-ip 2001:db8:2::/48 any",
    ]);
    let w = c.vpn("w").unwrap();
    assert_eq!(w.id, Some(2));
    let m = w.monitor.as_ref().unwrap();
    assert!(m.optimized && m.rekey);
    assert_eq!(m.destination, Some("10.2.1.1".parse().unwrap()));
    assert_eq!(c.proxy_ids("w").len(), 3);
    assert_eq!(c.proxy_ids("w")[1].service, Service::named("PING").unwrap());
    // A VPN without proxy-IDs has the route-based default.
    assert_eq!(c.proxy_ids("v")[0].to_string(), "local-ip 0.0.0.0/0 remote-ip 0.0.0.0/0 ANY");
    assert!(!c.vpn("v").unwrap().enforces_proxy_ids());
    assert_eq!(
        printed(&c, "set vpn \"w\""),
        [
            r#"set vpn "w" gateway "gw" replay tunnel idletime 0 sec-level standard"#,
            r#"set vpn "w" monitor source-interface "ethernet0/1" destination-ip 10.2.1.1 optimized rekey"#,
            r#"set vpn "w" id 0x2 bind interface tunnel.2"#,
            r#"set vpn "w" proxy-id check"#,
            r#"set vpn "w" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 "HTTP""#,
            r#"set vpn "w" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 "PING""#,
            r#"set vpn "w" proxy-id local-ip 2001:db8:1::/48 remote-ip 2001:db8:2::/48 "ANY""#,
        ]
    );

    let mut c = c;
    c.apply("unset vpn w proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 http").unwrap();
    assert_eq!(c.vpn("w").unwrap().proxy_ids.len(), 2);
    c.apply("unset vpn w proxy-id check").unwrap();
    assert!(!c.vpn("w").unwrap().proxy_id_check);
    assert!(c.vpn("w").unwrap().enforces_proxy_ids(), "two proxy-IDs always check");
    c.apply("unset vpn w proxy-id").unwrap();
    assert!(c.vpn("w").unwrap().proxy_ids.is_empty());
    c.apply("unset vpn w monitor").unwrap();
    c.apply("unset vpn w bind interface").unwrap();
    let w = c.vpn("w").unwrap();
    assert_eq!((w.monitor.as_ref(), w.bind.as_ref(), w.id), (None, None, None));
    round_trip(&c);
    c.apply("unset vpn w").unwrap();
    assert!(c.vpn("w").is_none());
    // With the VPN gone its tunnel interface can go too.
    c.apply("unset interface tunnel.2").unwrap();
    round_trip(&c);
}

#[test]
fn manual_key_vpns() {
    let c = with(&[
        "set interface tunnel.2 zone Untrust",
        "set interface tunnel.3 zone Untrust",
        "set vpn m manual 3000 0x4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key 000102030405060708090A0B0C0D0E0F auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213",
        "set vpn m bind interface tunnel.2",
        "set vpn g manual 5000 6000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes256 key 000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f auth sha2-256 key 000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f",
        "set vpn g id 7 bind interface tunnel.3",
    ]);
    let m = c.vpn("m").unwrap();
    let VpnKind::Manual(k) = &m.kind else { panic!() };
    assert_eq!((k.local_spi, k.remote_spi), (0x3000, 0x4000));
    assert_eq!(k.cipher, Cipher::Aes128);
    assert_eq!(k.encryption_key.to_bytes().unwrap().len(), 16);
    assert_eq!(k.auth.as_ref().unwrap().0, Hash::Sha1);
    assert_eq!(c.proxy_ids("m")[0].to_string(), "local-ip 0.0.0.0/0 remote-ip 0.0.0.0/0 ANY");
    let VpnKind::Manual(g) = &c.vpn("g").unwrap().kind else { panic!() };
    assert_eq!(g.encryption_key.to_bytes().unwrap().len(), 32);
    assert_eq!(g.auth.as_ref().unwrap().0, Hash::Sha256);
    assert_eq!(
        printed(&c, "set vpn \"m\"")[0],
        r#"set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface "ethernet0/2" esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213"#
    );
    assert_eq!(printed(&c, "set vpn \"g\"")[1], r#"set vpn "g" id 0x7 bind interface tunnel.3"#);
    let debug = format!("{c:?}");
    assert!(!debug.contains("0001020304"), "{debug}");
}

/// The anti-replay window and ESN: `replay window N` on an AutoKey VPN;
/// `replay window N`, `no-replay` and `esn` at the end of a manual-key
/// line. Defaults print as ScreenOS wrote them.
#[test]
fn replay_window_and_esn() {
    const KEYS: &str = "esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213";
    let c = with(&[
        "set vpn v gateway gw replay window 1024 tunnel idletime 0 proposal g14-esp-aes128-sha",
        &format!("set vpn m manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 {KEYS} replay window 4096 esn"),
        &format!("set vpn n manual 3001 4001 gateway 203.0.113.2 outgoing-interface ethernet0/2 {KEYS} esn no-replay"),
        &format!("set vpn d manual 3002 4002 gateway 203.0.113.2 outgoing-interface ethernet0/2 {KEYS} replay window 64"),
    ]);
    let VpnKind::AutoKey(a) = &c.vpn("v").unwrap().kind else { panic!() };
    assert_eq!((a.replay, a.replay_window), (true, 1024));
    let manual = |name: &str| match &c.vpn(name).unwrap().kind {
        VpnKind::Manual(k) => (k.replay, k.replay_window, k.esn),
        VpnKind::AutoKey(_) => panic!("{name}"),
    };
    assert_eq!(manual("m"), (true, 4096, true));
    assert_eq!(manual("n"), (false, 64, true));
    assert_eq!(manual("d"), (true, 64, false));
    assert_eq!(
        printed(&c, "set vpn \"v\" gateway"),
        [r#"set vpn "v" gateway "gw" replay window 1024 tunnel idletime 0 proposal "g14-esp-aes128-sha""#]
    );
    let head = r#"gateway 203.0.113.2 outgoing-interface "ethernet0/2" esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213"#;
    assert_eq!(
        printed(&c, "set vpn \"m\"")[0],
        format!(r#"set vpn "m" manual 3000 4000 {head} replay window 4096 esn"#)
    );
    assert_eq!(
        printed(&c, "set vpn \"n\"")[0],
        format!(r#"set vpn "n" manual 3001 4001 {head} no-replay esn"#)
    );
    assert_eq!(printed(&c, "set vpn \"d\"")[0], format!(r#"set vpn "d" manual 3002 4002 {head}"#));
    // Back to the default: `replay` alone.
    let mut c = c;
    c.apply("set vpn v gateway gw replay tunnel idletime 0 proposal g14-esp-aes128-sha").unwrap();
    let VpnKind::AutoKey(a) = &c.vpn("v").unwrap().kind else { panic!() };
    assert_eq!(a.replay_window, 128);
    round_trip(&c);
}

#[test]
fn services() {
    let c = with(&[
        "set service web protocol tcp src-port 0-65535 dst-port 8080-8081",
        "set service Multi protocol udp dst-port 5000-5010",
        "set service multi + tcp src-port 1024-65535 dst-port 5000-5000",
        "set service echo protocol icmp type 8 code 0",
        "set service unreach protocol icmp type 3",
        "set service gre protocol 47",
        "set vpn v proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 WEB",
        "set vpn v proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 echo",
        "set vpn v proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 gre",
    ]);
    assert_eq!(c.resolve_service("web"), Some(Service::tcp(PortRange::new(8080, 8081).unwrap())));
    assert_eq!(c.resolve_service("multi"), None, "two members: not one selector");
    assert_eq!(c.resolve_service("unreach"), Some(Service::icmp_type(3)));
    assert_eq!(c.resolve_service("gre"), Some(Service::protocol(47)));
    assert_eq!(c.resolve_service("https"), Service::named("HTTPS"));
    assert_eq!(c.proxy_ids("v")[1].service.dst_ports(), PortRange::single(8 << 8));
    assert_eq!(
        printed(&c, "set service"),
        [
            r#"set service "echo" protocol icmp type 8 code 0"#,
            r#"set service "gre" protocol 47"#,
            r#"set service "Multi" protocol udp src-port 0-65535 dst-port 5000-5010"#,
            r#"set service "Multi" + tcp src-port 1024-65535 dst-port 5000-5000"#,
            r#"set service "unreach" protocol icmp type 3"#,
            r#"set service "web" protocol tcp src-port 0-65535 dst-port 8080-8081"#,
        ]
    );
    let mut c = c;
    assert!(c.apply("unset service web").is_err(), "in use by a proxy-id");
    c.apply("unset service multi + tcp src-port 1024-65535 dst-port 5000-5000").unwrap();
    assert_eq!(c.resolve_service("multi"), Some(Service::udp(PortRange::new(5000, 5010).unwrap())));
    assert!(c.apply("unset service multi + udp dst-port 5000-5010").is_err(), "last member");
    c.apply("unset service multi").unwrap();
    assert!(c.services().all(|s| s.name != "Multi"));
    round_trip(&c);
}

#[test]
fn comments_blank_lines_and_quoting() {
    let text = "# a comment\n\n   # indented comment\r\nset interface \"ethernet0/2\" ip 198.51.100.1/24\r\n";
    let (c, w) = Config::load(text).unwrap();
    assert!(w.is_empty());
    assert!(c.interface("ethernet0/2").is_some());
    let mut c2 = Config::new();
    assert!(c2.apply("# nothing").unwrap().is_empty());
    assert!(c2.apply("").unwrap().is_empty());
    assert_eq!(c2, Config::new());
    // Keywords are case-insensitive and may be quoted; names keep their case.
    let mut c3 = base();
    c3.apply(r#"SET VPN "v" "Monitor" REKEY"#).unwrap();
    assert!(c3.vpn("v").unwrap().monitor.as_ref().unwrap().rekey);
    assert!(c3.apply("set vpn V monitor rekey").is_err(), "VPN names are case-sensitive");
}

#[test]
fn many_proxy_ids_on_one_vpn() {
    // The limit is esprit-policy's MAX_PROXY_IDS (2^20), far above what a
    // test can apply line by line; check that a few hundred behave.
    let mut text = String::from(BASE);
    for i in 0..512 {
        text.push_str(&format!(
            "set vpn v proxy-id local-ip 10.1.{}.{}/32 remote-ip 10.2.0.0/16 any\n",
            i / 256,
            i % 256
        ));
    }
    let (mut c, _) = Config::load(&text).unwrap();
    assert_eq!(c.proxy_ids("v").len(), 512);
    assert!(c.vpn("v").unwrap().enforces_proxy_ids());
    c.apply("set vpn v proxy-id local-ip 10.9.9.9/32 remote-ip 10.2.0.0/16 any").unwrap();
    let e = c.apply("set vpn v proxy-id local-ip 10.1.1.255/32 remote-ip 10.2.0.0/16 ANY").unwrap_err();
    assert!(e.to_string().contains("already has proxy-id"), "{e}");
    round_trip(&c);
}

/// esprit's extension: a manual-key VPN carries one proxy-ID, and several
/// manual-key VPNs share a tunnel interface (the union of their proxy-IDs).
#[test]
fn manual_key_vpns_share_a_tunnel_interface() {
    let key = "000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213";
    let mut lines = vec!["set interface tunnel.2 zone Untrust".to_string()];
    for (i, (l, r)) in [(1, 1), (1, 2), (2, 1), (2, 2)].into_iter().enumerate() {
        lines.push(format!(
            "set vpn p{l}{r} manual {:x} {:x} gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key {key}",
            0x2000 + i,
            0x1000 + i
        ));
        lines.push(format!("set vpn p{l}{r} proxy-id local-ip 10.1.{l}.0/24 remote-ip 10.2.{r}.0/24 any"));
        lines.push(format!("set vpn p{l}{r} id {} bind interface tunnel.2", i + 10));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut c = with(&refs);
    assert_eq!(c.proxy_ids("p12")[0].to_string(), "local-ip 10.1.1.0/24 remote-ip 10.2.2.0/24 ANY");
    // The proxy-ID comes before the binding when printed, so that the
    // lines apply one by one.
    let p11 = printed(&c, "set vpn \"p11\"");
    assert!(p11[1].contains("proxy-id local-ip"), "{p11:?}");
    assert!(p11[2].contains("bind interface tunnel.2"), "{p11:?}");
    // A second proxy-ID is refused; proxy-id check is accepted.
    assert!(c.apply("set vpn p11 proxy-id local-ip 10.1.9.0/24 remote-ip 10.2.9.0/24 any").is_err());
    c.apply("set vpn p11 proxy-id check").unwrap();
    // Unsetting a VPN leaves the others bound.
    let mut again = Config::new();
    for line in c.to_lines() {
        again.apply(&line).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(again, c);
    c.apply("unset vpn p21").unwrap();
    assert_eq!(c.vpns().filter(|v| v.bind.as_ref().is_some_and(|b| b.as_str() == "tunnel.2")).count(), 3);
    round_trip(&c);
}

#[test]
fn vpnmonitor_timing() {
    use esprit_config::model::VpnMonitorTiming;
    let mut c = with(&[]);
    // ScreenOS's defaults, not printed.
    assert_eq!(c.vpnmonitor(), VpnMonitorTiming { interval_secs: 10, threshold: 10 });
    assert!(printed(&c, "set vpnmonitor").is_empty());
    c.apply("set vpnmonitor interval 2 threshold 3").unwrap();
    assert_eq!(c.vpnmonitor(), VpnMonitorTiming { interval_secs: 2, threshold: 3 });
    assert_eq!(printed(&c, "set vpnmonitor"), ["set vpnmonitor interval 2 threshold 3"]);
    round_trip(&c);
    // Either alone, in any order, keywords in any case.
    c.apply("SET VPNMONITOR threshold 7").unwrap();
    assert_eq!(c.vpnmonitor(), VpnMonitorTiming { interval_secs: 2, threshold: 7 });
    c.apply("set vpnmonitor threshold 4 interval 5").unwrap();
    assert_eq!(c.vpnmonitor(), VpnMonitorTiming { interval_secs: 5, threshold: 4 });
    c.apply("unset vpnmonitor interval").unwrap();
    assert_eq!(c.vpnmonitor(), VpnMonitorTiming { interval_secs: 10, threshold: 4 });
    c.apply("unset vpnmonitor threshold").unwrap();
    assert_eq!(c.vpnmonitor(), VpnMonitorTiming::default());
    c.apply("set vpnmonitor interval 60").unwrap();
    c.apply("unset vpnmonitor").unwrap();
    assert_eq!(c.vpnmonitor(), VpnMonitorTiming::default());
}

#[test]
fn autokey_esn() {
    let c = with(&[r#"set vpn "v" gateway "gw" replay tunnel esn idletime 0 proposal "g14-esp-aes128-sha""#]);
    let VpnKind::AutoKey(a) = &c.vpn("v").unwrap().kind else { panic!() };
    assert!(a.esn);
    assert_eq!(
        printed(&c, "set vpn \"v\" gateway"),
        [r#"set vpn "v" gateway "gw" replay tunnel esn idletime 0 proposal "g14-esp-aes128-sha""#]
    );
    let c = base();
    let VpnKind::AutoKey(a) = &c.vpn("v").unwrap().kind else { panic!() };
    assert!(!a.esn, "off unless given");
}

#[test]
fn ikev2_fragmentation_in_junos_words() {
    let gw = r#"set ike gateway ikev2 "v2" address 203.0.113.3 outgoing-interface "ethernet0/2" preshare "another key of 20+ chars" proposal "pre-g19-aes256-sha256""#;
    let mut c = with(&[gw, "set ike gateway ikev2 v2 fragmentation size 1400"]);
    assert_eq!(c.gateway("v2").unwrap().fragmentation, Some(esprit_config::Fragmentation::Size(1400)));
    assert_eq!(
        printed(&c, "set ike gateway ikev2 \"v2\" frag"),
        [r#"set ike gateway ikev2 "v2" fragmentation size 1400"#]
    );
    c.apply("set ike gateway v2 fragmentation disable").unwrap();
    assert_eq!(c.gateway("v2").unwrap().fragmentation, Some(esprit_config::Fragmentation::Disabled));
    assert_eq!(
        printed(&c, "set ike gateway ikev2 \"v2\" frag"),
        [r#"set ike gateway ikev2 "v2" fragmentation disable"#]
    );
    round_trip(&c);
    c.apply("unset ike gateway v2 fragmentation").unwrap();
    assert_eq!(c.gateway("v2").unwrap().fragmentation, None);
    assert!(printed(&c, "set ike gateway ikev2 \"v2\" frag").is_empty());
    for (line, why) in [
        ("set ike gateway v2 fragmentation size 575", r#"bad fragment size "575": expected a number from 576 to 16000"#),
        ("set ike gateway v2 fragmentation size 16001", r#"bad fragment size "16001": expected a number from 576 to 16000"#),
        ("set ike gateway v2 fragmentation", "missing argument after \"set ike gateway v2 fragmentation\": expected one of size, disable"),
        ("set ike gateway v2 fragmentation enable", "unknown word \"enable\" after \"set ike gateway v2 fragmentation\": expected one of size, disable"),
    ] {
        let e = c.clone().apply(line).unwrap_err().to_string();
        assert!(e.contains(why), "{line}: {e}");
    }
}
