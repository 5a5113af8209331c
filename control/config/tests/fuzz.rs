//! No input makes the lexer, the parser or `Config::apply` panic, and
//! `apply` is atomic on every failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use esprit_config::{parse_line, Config};
use proptest::prelude::*;

const WORDS: &[&str] = &[
    "set",
    "unset",
    "interface",
    "route",
    "ike",
    "vpn",
    "service",
    "gateway",
    "p1-proposal",
    "p2-proposal",
    "proxy-id",
    "local-ip",
    "remote-ip",
    "check",
    "monitor",
    "rekey",
    "vpnmonitor",
    "interval",
    "threshold",
    "optimized",
    "id",
    "bind",
    "manual",
    "tunnel.1",
    "ethernet0/2",
    "zone",
    "ip",
    "unnumbered",
    "10.1.1.0/24",
    "10.2.1.0/24",
    "0x1",
    "any",
    "HTTP",
    "sec-level",
    "standard",
    "basic",
    "proposal",
    "pre-g2-3des-sha",
    "g14-esp-aes128-sha",
    "preshare",
    "\"k\"",
    "address",
    "203.0.113.2",
    "Main",
    "outgoing-interface",
    "esp",
    "aes128",
    "aes128gcm",
    "key",
    "auth",
    "sha-1",
    "3000",
    "\"",
    "#",
    "+",
    "protocol",
    "tcp",
    "dst-port",
    "80-80",
    "group14",
    "no-pfs",
    "second",
    "kbyte",
    "1",
    "",
    "mtu",
    "port",
    "wan0",
    "metric",
    "tunnel",
    "no-replay",
    "window",
    "esn",
    "idletime",
    "0",
    "test",
    "user",
    "user-group",
    "alice",
    "road",
    "ike-id",
    "u-fqdn",
    "fqdn",
    "alice@example.net",
    "share-limit",
    "type",
    "enable",
    "disable",
    "uid",
    "location",
    "local",
    "dialup",
    "Aggr",
    "nhtb",
    "169.254.1.2",
    "seed-preshare",
];

const SEED: &str = include_str!("data/seed-gateway1.conf");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(line in "\\PC{0,120}") {
        let _ = parse_line(&line);
        let mut c = Config::new();
        let _ = c.apply(&line);
    }

    #[test]
    fn word_salad_never_panics_and_failures_change_nothing(
        words in proptest::collection::vec(proptest::sample::select(WORDS), 0..14)
    ) {
        let line = words.join(" ");
        let _ = parse_line(&line);
        let (base, _) = Config::load(SEED).unwrap();
        let mut c = base.clone();
        match c.apply(&line) {
            Err(_) => prop_assert_eq!(&c, &base),
            Ok(_) => {
                // Whatever was accepted prints and loads back the same.
                let (again, _) = Config::load(&c.to_lines().join("\n")).unwrap();
                prop_assert_eq!(&again, &c);
            }
        }
    }
}
