//! The corpus of malformed lines: each is refused with its exact message,
//! and a refused line leaves the configuration exactly as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use esprit_config::{Config, ErrorKind, ParseError};

const GATEWAY1: &str = include_str!("data/seed-gateway1.conf");
const DIALUP: &str = include_str!("data/dialup-nhtb.conf");

fn seed() -> Config {
    Config::load(GATEWAY1).unwrap().0
}

/// Each line is applied to the seed's gateway-1 configuration.
const CORPUS: &[(&str, &str)] = &[
    // --- lexing ---
    (r#"set vpn "test"#, r#""set vpn "test": quote not closed (opened at column 9)"#),
    (r#"set vpn te"st"#, r#""set vpn te"st": quote inside a word at column 11: quotes may only surround a whole word"#),
    (r#"set vpn "te"st"#, r#""set vpn "te"st": text right after a closing quote at column 13: put a space after the quote"#),
    (
        r##"set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/2" preshare "#ABC"##,
        r#""set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/2" preshare <secret>": quote not closed (opened at column 87)"#,
    ),
    // --- unknown words ---
    ("frob vpn test", r#""frob vpn test": unknown word "frob": expected one of set, unset"#),
    ("set vpm test", r#""set vpm test": unknown word "vpm" after "set": expected one of interface, route, ike, vpn, vpnmonitor, service, flow, user, user-group, pki"#),
    (
        "set vpn test tunel",
        r#""set vpn test tunel": unknown word "tunel" after "set vpn test": expected one of gateway, proxy-id, monitor, id, bind, manual, withdraw-routes"#,
    ),
    (
        "set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any extra",
        r#""set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any extra": unknown word "extra" after "set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any": expected end of line"#,
    ),
    (
        r#"set ike gateway "g2" address 192.0.2.9 outgoing-interface "ethernet0/2" preshare "secretkey" sec-levl standard"#,
        r#""set ike gateway "g2" address 192.0.2.9 outgoing-interface "ethernet0/2" preshare <secret> sec-levl standard": unknown word "sec-levl" after "set ike gateway g2 address 192.0.2.9 outgoing-interface ethernet0/2 preshare <secret>": expected one of address, dialup, dynamic, Main, Aggr, outgoing-interface, preshare, sec-level, proposal, nat-traversal, dpd-liveness, local-id, peer-id, cert, fragmentation, or end of line"#,
    ),
    (
        "set service web protocol 47 dst-port 80",
        r#""set service web protocol 47 dst-port 80": unknown word "dst-port" after "set service web protocol 47": expected end of line (this protocol has no ports)"#,
    ),
    (
        "set ike gateway test address 192.0.2.1 address 192.0.2.2",
        r#""set ike gateway test address 192.0.2.1 address 192.0.2.2": "address" given twice in one line"#,
    ),
    // --- missing arguments ---
    ("set", r#""set": missing argument after "set": expected one of interface, route, ike, vpn, vpnmonitor, service, flow, user, user-group, pki"#),
    ("set vpn", r#""set vpn": missing argument after "set vpn": expected vpn name"#),
    (
        "set vpn test",
        r#""set vpn test": missing argument after "set vpn test": expected one of gateway, proxy-id, monitor, id, bind, manual, withdraw-routes"#,
    ),
    (
        "set vpn test proxy-id local-ip",
        r#""set vpn test proxy-id local-ip": missing argument after "set vpn test proxy-id local-ip": expected a prefix A.B.C.D/L"#,
    ),
    (
        "set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.9.0/24",
        r#""set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.9.0/24": missing argument after "set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.9.0/24": expected a service name (ANY, HTTP, ... or a custom service)"#,
    ),
    (
        r#"set vpn "m2" gateway test tunnel"#,
        r#""set vpn "m2" gateway test tunnel": missing argument after "set vpn m2 gateway test tunnel": expected sec-level or proposal"#,
    ),
    (
        "set route 10.9.0.0/16 gateway 198.51.100.9",
        r#""set route 10.9.0.0/16 gateway 198.51.100.9": missing argument after "set route 10.9.0.0/16 gateway 198.51.100.9": expected interface"#,
    ),
    (
        "set ike gateway test dpd-liveness",
        r#""set ike gateway test dpd-liveness": missing argument after "set ike gateway test dpd-liveness": expected interval or retry"#,
    ),
    (
        r#"set ike gateway "g2" address 192.0.2.9"#,
        r#""set ike gateway "g2" address 192.0.2.9": ike gateway "g2" does not exist and the line does not create it: missing outgoing-interface; preshare; sec-level or proposal"#,
    ),
    // --- bad values ---
    (
        "set vpnmonitor interval 0",
        r#""set vpnmonitor interval 0": bad interval "0": expected a number from 1 to 3600"#,
    ),
    (
        "set vpnmonitor threshold 70000",
        r#""set vpnmonitor threshold 70000": bad threshold "70000": expected a number from 1 to 65535"#,
    ),
    ("set vpnmonitor", r#""set vpnmonitor": missing argument after "set vpnmonitor": expected one of interval, threshold"#),
    (
        "set vpnmonitor interval 5 interval 6",
        r#""set vpnmonitor interval 5 interval 6": "interval" given twice in one line"#,
    ),
    (
        "set vpnmonitor rekey",
        r#""set vpnmonitor rekey": unknown word "rekey" after "set vpnmonitor": expected one of interval, threshold, or end of line"#,
    ),
    (
        "set vpn test proxy-id local-ip 10.1.1.0/33 remote-ip 10.2.1.0/24 any",
        r#""set vpn test proxy-id local-ip 10.1.1.0/33 remote-ip 10.2.1.0/24 any": bad prefix "10.1.1.0/33": prefix length 33 exceeds 32"#,
    ),
    (
        "set vpn test proxy-id local-ip 10.1.1.5/24 remote-ip 10.2.1.0/24 any",
        r#""set vpn test proxy-id local-ip 10.1.1.5/24 remote-ip 10.2.1.0/24 any": bad prefix "10.1.1.5/24": host bits set: did you mean 10.1.1.0/24?"#,
    ),
    (
        "set vpn test proxy-id local-ip host remote-ip 10.2.1.0/24 any",
        r#""set vpn test proxy-id local-ip host remote-ip 10.2.1.0/24 any": bad prefix "host": not an IPv4 or IPv6 address"#,
    ),
    (
        "set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 2001:db8::/129 any",
        r#""set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 2001:db8::/129 any": bad prefix "2001:db8::/129": prefix length 129 exceeds 128"#,
    ),
    (
        "set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 2001:db8::/32 any",
        r#""set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 2001:db8::/32 any": bad proxy-id "local-ip 10.1.1.0/24 remote-ip 2001:db8::/32": local-ip and remote-ip are of different address families"#,
    ),
    (
        "set route 10.9.0.0/16 interface tunnel.x",
        r#""set route 10.9.0.0/16 interface tunnel.x": bad interface name "tunnel.x": a tunnel interface is tunnel.N with N from 1 to 9999"#,
    ),
    (
        "set route 10.9.0.0/16 interface null gateway 198.51.100.9",
        r#""set route 10.9.0.0/16 interface null gateway 198.51.100.9": bad gateway "198.51.100.9": a route to interface null drops its packets: it has no gateway"#,
    ),
    (
        "set interface null zone Untrust",
        r#""set interface null zone Untrust": bad interface name "null": null is the blackhole routes may point at (set route P interface null); it has no settings"#,
    ),
    (
        "set route 10.9.0.0/16 interface ethernet0/2 metric 0",
        r#""set route 10.9.0.0/16 interface ethernet0/2 metric 0": bad metric "0": expected a number from 1 to 65535"#,
    ),
    (
        "set interface ethernet0/2 mtu 100",
        r#""set interface ethernet0/2 mtu 100": bad MTU "100": expected a number from 576 to 9216"#,
    ),
    (
        "set interface ethernet0/3 ip 10.0.0.1",
        r#""set interface ethernet0/3 ip 10.0.0.1": bad interface address "10.0.0.1": expected ADDRESS/LENGTH, e.g. 198.51.100.1/24"#,
    ),
    (
        "set interface ethernet0/3 port a/b",
        r#""set interface ethernet0/3 port a/b": bad Linux network device "a/b": expected 1 to 15 characters without '/', ':' or spaces"#,
    ),
    (
        r#"set ike gateway "g2" address gw.example.com Main outgoing-interface "ethernet0/2" preshare "k" sec-level standard"#,
        r#""set ike gateway "g2" address gw.example.com Main outgoing-interface "ethernet0/2" preshare <secret> sec-level standard": bad peer address "gw.example.com": expected an IPv4 or IPv6 address (esprit does not resolve names)"#,
    ),
    ("set vpn test id 0x0", r#""set vpn test id 0x0": bad VPN id "0x0": expected at least 0x1"#),
    (
        "set service HTTP protocol tcp dst-port 80-80",
        r#""set service HTTP protocol tcp dst-port 80-80": bad service name "HTTP": HTTP is a predefined service"#,
    ),
    (
        "set service web protocol udp dst-port 90-80",
        r#""set service web protocol udp dst-port 90-80": bad port range "90-80": first port after last port"#,
    ),
    (
        "set service web protocol gre",
        r#""set service web protocol gre": bad protocol "gre": expected tcp, udp, icmp, icmp6, sctp or a number from 0 to 255"#,
    ),
    (
        r#"set ike p1-proposal "pre-g2-x" preshare group14 esp aes128 sha-1"#,
        r#""set ike p1-proposal "pre-g2-x" preshare group14 esp aes128 sha-1": bad proposal name "pre-g2-x": names of the form pre-gN-... are predefined proposals; choose another name"#,
    ),
    (
        r#"set ike p2-proposal "p2" group7 esp aes128 sha-1 second 3600"#,
        r#""set ike p2-proposal "p2" group7 esp aes128 sha-1 second 3600": bad DH group "group7": esprit implements groups 2, 5, 14, 15, 19, 20 and 31"#,
    ),
    // --- algorithms esprit refuses (RFC 8221, RFC 8247) ---
    (
        r#"set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/2" preshare "k" proposal "pre-g2-3des-sha""#,
        r#""set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/2" preshare <secret> proposal "pre-g2-3des-sha"": proposal "pre-g2-3des-sha" uses 3DES, which esprit refuses (RFC 8221): use an AES proposal such as "pre-g14-aes128-sha""#,
    ),
    (
        r#"set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/2" preshare "k" proposal "pre-g2-3des-md5" "pre-g1-des-sha""#,
        r#""set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/2" preshare <secret> proposal "pre-g2-3des-md5" "pre-g1-des-sha"": proposal "pre-g2-3des-md5" uses 3DES, which esprit refuses (RFC 8221): use an AES proposal such as "pre-g14-aes128-sha""#,
    ),
    (
        r#"set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/2" preshare "k" sec-level basic"#,
        r#""set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/2" preshare <secret> sec-level basic": sec-level basic uses DES, which esprit refuses (RFC 8221): use an AES proposal such as "pre-g14-aes128-sha""#,
    ),
    (
        r#"set vpn "m2" gateway test proposal "nopfs-esp-3des-md5""#,
        r#""set vpn "m2" gateway test proposal "nopfs-esp-3des-md5"": proposal "nopfs-esp-3des-md5" uses 3DES, which esprit refuses (RFC 8221): use an AES proposal such as "g14-esp-aes128-sha""#,
    ),
    (
        r#"set vpn "m2" gateway test proposal "g2-esp-aes128-md5""#,
        r#""set vpn "m2" gateway test proposal "g2-esp-aes128-md5"": proposal "g2-esp-aes128-md5" uses MD5, which esprit refuses (RFC 8221): use an AES proposal such as "g14-esp-aes128-sha""#,
    ),
    (
        r#"set ike p1-proposal "p1" preshare group14 esp 3des sha-1 second 28800"#,
        r#""set ike p1-proposal "p1" preshare group14 esp 3des sha-1 second 28800": p1-proposal "p1" uses 3DES, which esprit refuses (RFC 8221): use aes128 or aes256"#,
    ),
    (
        r#"set ike p1-proposal "p1" preshare group14 esp aes128 md5 second 28800"#,
        r#""set ike p1-proposal "p1" preshare group14 esp aes128 md5 second 28800": p1-proposal "p1" uses MD5, which esprit refuses (RFC 8221): use sha-1 or sha2-256"#,
    ),
    (
        r#"set ike p1-proposal "p1" preshare group1 esp aes128 sha-1 second 28800"#,
        r#""set ike p1-proposal "p1" preshare group1 esp aes128 sha-1 second 28800": p1-proposal "p1" uses DH group 1 (768-bit MODP), which esprit refuses (RFC 8247): use group14"#,
    ),
    (
        r#"set ike p2-proposal "p2" group14 esp aes128 null second 3600"#,
        r#""set ike p2-proposal "p2" group14 esp aes128 null second 3600": p2-proposal "p2" uses a CBC cipher without integrity, which esprit refuses (RFC 8221): use sha-1 or sha2-256, or aes128gcm"#,
    ),
    (
        r#"set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp 3des key 00"#,
        r#""set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp 3des key <secret>": cipher "3des" uses 3DES, which esprit refuses (RFC 8221): use aes128 or aes256"#,
    ),
    // --- unsupported ScreenOS features ---
    (
        r#"set ike p1-proposal "p1" dsa-sig group14 esp aes128 sha-1 second 28800"#,
        r#""set ike p1-proposal "p1" dsa-sig group14 esp aes128 sha-1 second 28800": dsa-sig is not supported by esprit: DSA signatures are not implemented (RFC 8247 §3.2: DSA is not to be used): use rsa-sig or ecdsa-sig"#,
    ),
    (
        r#"set vpn "m2" gateway test transport sec-level standard"#,
        r#""set vpn "m2" gateway test transport sec-level standard": transport mode is not supported by esprit: esprit VPNs are tunnel mode (route-based)"#,
    ),
    // --- manual-key VPNs ---
    (
        r#"set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key 0001 auth sha-1 key 00"#,
        r#""set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key <secret> auth sha-1 key <secret>": bad key "<secret>": aes128 needs 16 bytes (32 hexadecimal digits), got 2"#,
    ),
    (
        r#"set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 password abc auth sha-1 key 00"#,
        r#""set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 password <secret> auth sha-1 key <secret>": password is not supported by esprit: give manual keys in hexadecimal with key HEX"#,
    ),
    (
        r#"set vpn "m" manual ff 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128gcm key 000102030405060708090a0b0c0d0e0f10111213"#,
        r#""set vpn "m" manual ff 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128gcm key <secret>": bad SPI "ff": expected at least 0x100"#,
    ),
    (
        r#"set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128gcm key 000102030405060708090a0b0c0d0e0f10111213 auth sha-1 key 00"#,
        r#""set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128gcm key <secret> auth sha-1 key <secret>": manual-key cipher "aes128gcm" uses AES-GCM, a counter mode, with a static key, which esprit refuses (RFC 4106 §8.1): both directions would repeat (key, nonce) from sequence number 1; use esp aes128 or aes256 with auth sha2-256, or an AutoKey IKE VPN (set vpn NAME gateway ...)"#,
    ),
    // --- anti-replay window: 32 (RFC 4303 §3.4.3) to 4096 (the fast path) ---
    (
        r#"set vpn "test" gateway "test" replay window 16 tunnel idletime 0 sec-level standard"#,
        r#""set vpn "test" gateway "test" replay window 16 tunnel idletime 0 sec-level standard": bad replay window in packets "16": expected a number from 32 to 4096"#,
    ),
    (
        r#"set vpn "test" gateway "test" replay window 8192 tunnel sec-level standard"#,
        r#""set vpn "test" gateway "test" replay window 8192 tunnel sec-level standard": bad replay window in packets "8192": expected a number from 32 to 4096"#,
    ),
    (
        r#"set vpn "test" gateway "test" no-replay window 256 sec-level standard"#,
        r#""set vpn "test" gateway "test" no-replay window 256 sec-level standard": unknown word "window" after "set vpn test gateway test no-replay": expected one of replay, no-replay, tunnel, transport, esn, idletime, sec-level, proposal, or end of line"#,
    ),
    (
        r#"set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213 replay window 4097"#,
        r#""set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key <secret> auth sha-1 key <secret> replay window 4097": bad replay window in packets "4097": expected a number from 32 to 4096"#,
    ),
    (
        r#"set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213 esn esn"#,
        r#""set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key <secret> auth sha-1 key <secret> esn esn": "esn" given twice in one line"#,
    ),
    // A counter mode under a static key repeats nonces (RFC 4106 §8.1):
    // refused whatever follows the cipher, the key never echoed.
    (
        r#"set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128gcm key 000102030405060708090a0b0c0d0e0f10111213"#,
        r#""set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128gcm key <secret>": manual-key cipher "aes128gcm" uses AES-GCM, a counter mode, with a static key, which esprit refuses (RFC 4106 §8.1): both directions would repeat (key, nonce) from sequence number 1; use esp aes128 or aes256 with auth sha2-256, or an AutoKey IKE VPN (set vpn NAME gateway ...)"#,
    ),
    (
        r#"set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp AES256GCM key 000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f01020304"#,
        r#""set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp AES256GCM key <secret>": manual-key cipher "AES256GCM" uses AES-GCM, a counter mode, with a static key, which esprit refuses (RFC 4106 §8.1): both directions would repeat (key, nonce) from sequence number 1; use esp aes128 or aes256 with auth sha2-256, or an AutoKey IKE VPN (set vpn NAME gateway ...)"#,
    ),
    (
        r#"set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key 000102030405060708090a0b0c0d0e0f"#,
        r#""set vpn "m" manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key <secret>": missing argument after "set vpn m manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key <secret>": expected auth"#,
    ),
    // --- conflicts with what is configured ---
    (
        "set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY",
        r#""set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY": vpn "test" already has proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 "ANY""#,
    ),
    (
        "set vpn nothere monitor rekey",
        r#""set vpn nothere monitor rekey": vpn "nothere" does not exist: create it first with set vpn NAME gateway GW ... or set vpn NAME manual ..."#,
    ),
    (
        "set vpn test manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213",
        r#""set vpn test manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key <secret> auth sha-1 key <secret>": vpn "test" is an AutoKey IKE VPN: unset it before making it a manual-key VPN"#,
    ),
    (
        "set interface ethernet0/3 ip unnumbered interface ethernet0/2",
        r#""set interface ethernet0/3 ip unnumbered interface ethernet0/2": interface "ethernet0/3" is not a tunnel interface: only tunnel.N can be unnumbered"#,
    ),
    (
        "set interface tunnel.2 ip unnumbered interface tunnel.1",
        r#""set interface tunnel.2 ip unnumbered interface tunnel.1": interface "tunnel.2" ip unnumbered names "tunnel.1" but it is a tunnel interface: borrow the address of a port"#,
    ),
    (
        "set interface tunnel.2 port wan1",
        r#""set interface tunnel.2 port wan1": interface "tunnel.2" is a tunnel interface: only ports are bound to a Linux network device"#,
    ),
    (
        "set interface ethernet0/3 port wan0",
        r#""set interface ethernet0/3 port wan0": port "wan0" is already bound to interface "ethernet0/2""#,
    ),
    (
        "set vpn test bind interface ethernet0/2",
        r#""set vpn test bind interface ethernet0/2": vpn "test" bind interface names "ethernet0/2" but it is not a tunnel interface (tunnel.N)"#,
    ),
    (
        "set service web + udp src-port 0-65535 dst-port 53-53",
        r#""set service web + udp src-port 0-65535 dst-port 53-53": service "web" does not exist: define it first with set service NAME protocol ..."#,
    ),
    // --- cross references ---
    (
        "set route 10.9.0.0/16 interface tunnel.9",
        r#""set route 10.9.0.0/16 interface tunnel.9": route 10.9.0.0/16 names unknown interface "tunnel.9""#,
    ),
    (
        "set vpn test bind interface tunnel.9",
        r#""set vpn test bind interface tunnel.9": vpn "test" bind interface names unknown interface "tunnel.9""#,
    ),
    (
        r#"set vpn "m2" gateway nogw tunnel sec-level standard"#,
        r#""set vpn "m2" gateway nogw tunnel sec-level standard": vpn "m2" gateway names unknown ike gateway "nogw""#,
    ),
    (
        r#"set vpn "m2" gateway test proposal "mine""#,
        r#""set vpn "m2" gateway test proposal "mine"": vpn "m2" proposal names unknown p2-proposal "mine": define it with set ike p2-proposal, or use a predefined name such as g14-esp-aes128-sha"#,
    ),
    (
        r#"set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/9" preshare "k" sec-level standard"#,
        r#""set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/9" preshare <secret> sec-level standard": ike gateway "g2" outgoing-interface names unknown interface "ethernet0/9""#,
    ),
    (
        r#"set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "tunnel.1" preshare "k" sec-level standard"#,
        r#""set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "tunnel.1" preshare <secret> sec-level standard": ike gateway "g2" outgoing-interface names "tunnel.1" but it is a tunnel interface: name the port whose address is our end"#,
    ),
    (
        r#"set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/2" preshare "k" proposal "mine""#,
        r#""set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/2" preshare <secret> proposal "mine"": ike gateway "g2" proposal names unknown p1-proposal "mine": define it with set ike p1-proposal, or use a predefined name such as pre-g14-aes128-sha"#,
    ),
    (
        "set interface tunnel.2 ip unnumbered interface ethernet0/7",
        r#""set interface tunnel.2 ip unnumbered interface ethernet0/7": interface "tunnel.2" ip unnumbered names unknown interface "ethernet0/7""#,
    ),
    (
        "set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 GOPHER",
        r#""set vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 GOPHER": vpn "test" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 names unknown service "GOPHER": define it with set service NAME protocol ..., or use a predefined service such as ANY"#,
    ),
    (
        "set vpn test monitor source-interface ethernet0/9 rekey",
        r#""set vpn test monitor source-interface ethernet0/9 rekey": vpn "test" monitor source-interface names unknown interface "ethernet0/9""#,
    ),
    // --- unset ---
    (
        "unset vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.9.1.0/24 any",
        r#""unset vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.9.1.0/24 any": vpn "test" has no proxy-id local-ip 10.1.1.0/24 remote-ip 10.9.1.0/24 "ANY""#,
    ),
    (
        "unset route 10.9.0.0/16 interface tunnel.1",
        r#""unset route 10.9.0.0/16 interface tunnel.1": the route table has no route 10.9.0.0/16 interface tunnel.1"#,
    ),
    (
        "unset interface tunnel.1",
        r#""unset interface tunnel.1": still in use: route 10.2.1.0/24 names unknown interface "tunnel.1""#,
    ),
    (
        "unset interface ethernet0/2 ip",
        r#""unset interface ethernet0/2 ip": still in use: interface "tunnel.1" ip unnumbered names "ethernet0/2" but it has no IP address"#,
    ),
    (
        "unset ike gateway test",
        r#""unset ike gateway test": still in use: vpn "test" gateway names unknown ike gateway "test""#,
    ),
    ("unset vpn nope", r#""unset vpn nope": vpn "nope" does not exist"#),
    ("unset service nope", r#""unset service nope": service "nope" does not exist"#),
    ("unset ike p1-proposal nope", r#""unset ike p1-proposal nope": p1-proposal "nope" does not exist"#),
    (
        "unset vpn test tunel",
        r#""unset vpn test tunel": unknown word "tunel" after "unset vpn test": expected one of monitor, bind, proxy-id, withdraw-routes, or end of line"#,
    ),
];

/// Dialup users and groups, and next-hop tunnel binding: each line is
/// applied to `data/dialup-nhtb.conf`.
const DIALUP_CORPUS: &[(&str, &str)] = &[
    // --- users ---
    (
        r#"set user "dave" ike-id u-fqdn "ALICE@example.net""#,
        r#""set user "dave" ike-id u-fqdn "ALICE@example.net"": user "alice" (ike-id u-fqdn "alice@example.net") and user "dave" (ike-id u-fqdn "ALICE@example.net") have one identity: a client's identity names one user (share-limit N lets N clients share one user)"#,
    ),
    (
        r#"set user "dave" ike-id u-fqdn "dave@example.net" share-limit 0"#,
        r#""set user "dave" ike-id u-fqdn "dave@example.net" share-limit 0": bad share-limit "0": expected a number from 1 to 10000"#,
    ),
    (
        r#"set user "dave" ike-id u-fqdn "dave@example.net" share-limit 10001"#,
        r#""set user "dave" ike-id u-fqdn "dave@example.net" share-limit 10001": bad share-limit "10001": expected a number from 1 to 10000"#,
    ),
    (
        r#"set user "dave" ike-id u-fqdn "dave@example.net" share-limit 99999999999"#,
        r#""set user "dave" ike-id u-fqdn "dave@example.net" share-limit 99999999999": bad share-limit "99999999999": not a decimal number"#,
    ),
    (
        r#"set user "dave" ike-id u-fqdn "dave@example.net" share-limit"#,
        r#""set user "dave" ike-id u-fqdn "dave@example.net" share-limit": missing argument after "set user dave ike-id u-fqdn dave@example.net share-limit": expected a share-limit from 1 to 10000"#,
    ),
    (
        r#"set user "dave" ike-id u-fqdn "example.net""#,
        r#""set user "dave" ike-id u-fqdn "example.net"": bad IKE identity "example.net": expected user@domain, whole (ScreenOS's partial Group IKE IDs are not supported: name each identity)"#,
    ),
    (
        r#"set user "dave" ike-id fqdn "d@example.net""#,
        r#""set user "dave" ike-id fqdn "d@example.net"": bad IKE identity "d@example.net": a domain name has no @: use u-fqdn for user@domain"#,
    ),
    (
        r#"set user "dave" ike-id fqdn "a b""#,
        r#""set user "dave" ike-id fqdn "a b"": bad IKE identity "a b": an identity has no spaces or control characters"#,
    ),
    (
        "set user dave ike-id ip 300.1.1.1",
        r#""set user dave ike-id ip 300.1.1.1": bad IKE identity "300.1.1.1": expected an IPv4 or IPv6 address after ip"#,
    ),
    (
        r#"set user "dave" ike-id asn1-dn "CN=x""#,
        r#""set user "dave" ike-id asn1-dn "CN=x"": ike-id asn1-dn is not supported by esprit: a distinguished name identifies a certificate holder, and esprit authenticates IKE with pre-shared keys only: use u-fqdn, fqdn or ip"#,
    ),
    (
        "set user dave ike-id email dave@example.net",
        r#""set user dave ike-id email dave@example.net": unknown word "email" after "set user dave ike-id": expected one of u-fqdn, fqdn, ip"#,
    ),
    (
        "set user dave type auth",
        r#""set user dave type auth": user type "auth" is not supported by esprit: esprit has IKE users only: type ike"#,
    ),
    (
        r#"set user "dave" password "hunter2hunter2""#,
        r#""set user "dave" password <secret>": "password" is not supported by esprit: esprit has IKE users only (set user NAME ike-id ... and set user NAME type ike), authenticated by the pre-shared key of their dialup gateway"#,
    ),
    (
        r#"set user "dave" hash-password "02hunter2hash""#,
        r#""set user "dave" hash-password <secret>": "hash-password" is not supported by esprit: esprit has IKE users only (set user NAME ike-id ... and set user NAME type ike), authenticated by the pre-shared key of their dialup gateway"#,
    ),
    (
        "set user dave",
        r#""set user dave": missing argument after "set user dave": expected one of uid, ike-id, type, enable, disable"#,
    ),
    ("set user dave uid 1", r#""set user dave uid 1": user "alice" and user "dave" both have uid 1"#),
    (
        r#"set user "road" type ike"#,
        r#""set user "road" type ike": user-group "road" has the name of a user: a dialup gateway names one or the other, so their names differ"#,
    ),
    // --- user groups ---
    (
        r#"set user-group "ext" location external"#,
        r#""set user-group "ext" location external": user-group location "external" is not supported by esprit: esprit has no authentication servers: its users are in its configuration (location local)"#,
    ),
    (
        r#"set user-group "x" user "alice""#,
        r#""set user-group "x" user "alice"": user-group "x" does not exist: create it first with set user-group NAME location local"#,
    ),
    (
        r#"set user-group "road" user "dave""#,
        r#""set user-group "road" user "dave"": user-group "road" user names unknown user "dave": define it with set user NAME ike-id ... and set user NAME type ike"#,
    ),
    (
        r#"set user-group "road" user "alice""#,
        r#""set user-group "road" user "alice"": user "alice" is already a member of user-group "road""#,
    ),
    (
        r#"set user-group "road" user "carol""#,
        r#""set user-group "road" user "carol"": user "carol" is already admitted by ike gateway "carol-gw": a client's identity leads to one dialup gateway"#,
    ),
    (
        r#"set user-group "g2" id 1 location local"#,
        r#""set user-group "g2" id 1 location local": user-group "g2" and user-group "road" both have id 1"#,
    ),
    (
        r#"set user-group "alice" location local"#,
        r#""set user-group "alice" location local": user-group "alice" has the name of a user: a dialup gateway names one or the other, so their names differ"#,
    ),
    // --- dialup gateways ---
    (
        r#"set ike gateway "g9" dialup "nobody" Aggr outgoing-interface "ethernet0/2" preshare "k" proposal "pre-g14-aes128-sha""#,
        r#""set ike gateway "g9" dialup "nobody" Aggr outgoing-interface "ethernet0/2" preshare <secret> proposal "pre-g14-aes128-sha"": ike gateway "g9" dialup names unknown user or user-group "nobody": define a user (set user NAME ike-id ..., set user NAME type ike) or a group (set user-group NAME location local)"#,
    ),
    (
        r#"set ike gateway "g9" dialup "road" Aggr outgoing-interface "ethernet0/2" preshare "k" proposal "pre-g14-aes128-sha""#,
        r#""set ike gateway "g9" dialup "road" Aggr outgoing-interface "ethernet0/2" preshare <secret> proposal "pre-g14-aes128-sha"": user "alice" is already admitted by ike gateway "dial": a client's identity leads to one dialup gateway"#,
    ),
    (
        r#"set ike gateway "dial" seed-preshare "seedsecret""#,
        r#""set ike gateway "dial" seed-preshare <secret>": seed-preshare is not supported by esprit: ScreenOS derives each user's key from the seed and the user's full IKE identity (exec ike preshare-gen) by a function it does not publish, so esprit cannot compute the keys its clients hold: give the gateway one preshare key for its users"#,
    ),
    // --- next-hop tunnel binding ---
    (
        r#"set interface tunnel.1 nhtb 169.254.1.2 vpn "w""#,
        r#""set interface tunnel.1 nhtb 169.254.1.2 vpn "w"": next hop 169.254.1.2 on interface "tunnel.1" is already bound to vpn "e": one next hop leads to one VPN (unset interface tunnel.1 nhtb 169.254.1.2 first)"#,
    ),
    (
        r#"set interface tunnel.1 nhtb 169.254.1.9 vpn "dialvpn""#,
        r#""set interface tunnel.1 nhtb 169.254.1.9 vpn "dialvpn"": interface "tunnel.1" nhtb 169.254.1.9 vpn names "dialvpn" but it is bound to interface tunnel.2, not tunnel.1"#,
    ),
    (
        r#"set interface tunnel.1 nhtb 169.254.1.9 vpn "nosuch""#,
        r#""set interface tunnel.1 nhtb 169.254.1.9 vpn "nosuch"": interface "tunnel.1" nhtb 169.254.1.9 vpn names unknown vpn "nosuch""#,
    ),
    (
        r#"set interface tunnel.3 nhtb 169.254.1.9 vpn "e""#,
        r#""set interface tunnel.3 nhtb 169.254.1.9 vpn "e"": interface "tunnel.3" nhtb 169.254.1.9 names unknown interface "tunnel.3""#,
    ),
    (
        r#"set interface tunnel.1 nhtb 0.0.0.0 vpn "e""#,
        r#""set interface tunnel.1 nhtb 0.0.0.0 vpn "e"": bad next hop "0.0.0.0": expected the peer's unicast tunnel address (the gateway its routes name)"#,
    ),
    (
        r#"set interface tunnel.1 nhtb 224.0.0.1 vpn "e""#,
        r#""set interface tunnel.1 nhtb 224.0.0.1 vpn "e"": bad next hop "224.0.0.1": expected the peer's unicast tunnel address (the gateway its routes name)"#,
    ),
    (
        "set interface tunnel.1 nhtb 169.254.1.9",
        r#""set interface tunnel.1 nhtb 169.254.1.9": missing argument after "set interface tunnel.1 nhtb 169.254.1.9": expected vpn"#,
    ),
    (
        r#"set interface ethernet0/2 nhtb 169.254.1.9 vpn "e""#,
        r#""set interface ethernet0/2 nhtb 169.254.1.9 vpn "e"": interface "ethernet0/2" is not a tunnel interface: next-hop tunnel binding (nhtb) is for tunnel.N"#,
    ),
    (
        "set route 10.9.0.0/16 interface tunnel.1 gateway 169.254.1.9",
        r#""set route 10.9.0.0/16 interface tunnel.1 gateway 169.254.1.9": route 10.9.0.0/16 interface tunnel.1 gateway names "169.254.1.9" but tunnel.1 has no nhtb entry for it: on a tunnel interface the gateway selects the VPN by next-hop tunnel binding (set interface tunnel.1 nhtb 169.254.1.9 vpn NAME), or leave the gateway out"#,
    ),
    (
        "set route 10.9.0.0/16 interface tunnel.1",
        r#""set route 10.9.0.0/16 interface tunnel.1": route 10.9.0.0/16 interface tunnel.1 names no gateway, and tunnel.1 carries vpn "e" and vpn "w": give the route the next hop of its VPN's nhtb entry (gateway A)"#,
    ),
    (
        "set vpn dialvpn bind interface tunnel.1",
        r#""set vpn dialvpn bind interface tunnel.1": interface "tunnel.1" carries vpn "dialvpn" and vpn "e": several VPNs share a tunnel interface only by next-hop tunnel binding, and vpn "dialvpn" has no nhtb entry on it: add set interface tunnel.1 nhtb PEER-ADDRESS vpn "dialvpn" first, put the proxy-ids on one VPN, or bind one of them to another tunnel interface"#,
    ),
    // --- unset of what is still used, or not there ---
    (
        r#"unset user "alice""#,
        r#""unset user "alice"": still in use: user-group "road" user names unknown user "alice": define it with set user NAME ike-id ... and set user NAME type ike"#,
    ),
    (
        r#"unset user "carol""#,
        r#""unset user "carol"": still in use: ike gateway "carol-gw" dialup names unknown user or user-group "carol": define a user (set user NAME ike-id ..., set user NAME type ike) or a group (set user-group NAME location local)"#,
    ),
    (
        r#"unset user "alice" type"#,
        r#""unset user "alice" type": still in use: user-group "road" user names "alice" but it is not an IKE user: set user "alice" type ike"#,
    ),
    (
        r#"unset user "carol" ike-id"#,
        r#""unset user "carol" ike-id": still in use: ike gateway "carol-gw" dialup names "carol" but it has no IKE identity: set user "carol" ike-id u-fqdn|fqdn|ip VALUE"#,
    ),
    (
        r#"unset user-group "road""#,
        r#""unset user-group "road"": still in use: ike gateway "dial" dialup names unknown user or user-group "road": define a user (set user NAME ike-id ..., set user NAME type ike) or a group (set user-group NAME location local)"#,
    ),
    (
        r#"unset user-group "road" user "zed""#,
        r#""unset user-group "road" user "zed"": user-group "road" has no user "zed""#,
    ),
    (r#"unset user "zed""#, r#""unset user "zed"": user "zed" does not exist"#),
    (
        "unset interface tunnel.1 nhtb 169.254.1.2",
        r#""unset interface tunnel.1 nhtb 169.254.1.2": still in use: route 10.2.0.0/16 interface tunnel.1 gateway names "169.254.1.2" but tunnel.1 has no nhtb entry for it: on a tunnel interface the gateway selects the VPN by next-hop tunnel binding (set interface tunnel.1 nhtb 169.254.1.2 vpn NAME), or leave the gateway out"#,
    ),
    (
        r#"unset interface tunnel.1 nhtb 169.254.1.2 vpn "w""#,
        r#""unset interface tunnel.1 nhtb 169.254.1.2 vpn "w"": interface "tunnel.1" has no nhtb 169.254.1.2 vpn "w""#,
    ),
    (
        r#"unset vpn "e""#,
        r#""unset vpn "e"": still in use: interface "tunnel.1" nhtb 169.254.1.2 vpn names unknown vpn "e""#,
    ),
    (
        "unset interface tunnel.1",
        r#""unset interface tunnel.1": still in use: interface "tunnel.1" nhtb 169.254.1.2 names unknown interface "tunnel.1""#,
    ),
];

/// Applies each line of `corpus` to `base`: each is refused with exactly
/// its message, and changes nothing.
fn refused_exactly(base: &Config, corpus: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (line, expected) in corpus {
        let mut c = base.clone();
        match c.apply(line) {
            Ok(w) => failures.push(format!("accepted: {line} (warnings {w:?})")),
            Err(e) => {
                if e.to_string() != *expected {
                    failures.push(format!("{line}\n   got:      {e}\n   expected: {expected}"));
                }
                assert_eq!(e.line, None);
            }
        }
        // Atomicity: a refused line changes nothing.
        assert_eq!(&c, base, "{line} changed the configuration");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_malformed_line_is_refused_with_its_exact_message() {
    refused_exactly(&seed(), CORPUS);
}

#[test]
fn every_refused_dialup_or_nhtb_line_says_what() {
    let (base, _) = Config::load(DIALUP).unwrap();
    refused_exactly(&base, DIALUP_CORPUS);
}

#[test]
fn the_parse_errors_are_the_same_through_parse_line() {
    for (line, expected) in CORPUS.iter().chain(DIALUP_CORPUS) {
        if let Err(e) = esprit_config::parse_line(line) {
            // parse_line reports the error without the line; apply adds it.
            assert!(expected.ends_with(&e.to_string()), "{line}: {e}");
        }
    }
}

#[test]
fn errors_never_show_secrets() {
    let (dialup, _) = Config::load(DIALUP).unwrap();
    let lines =
        CORPUS.iter().map(|(l, _)| (seed(), l)).chain(DIALUP_CORPUS.iter().map(|(l, _)| (dialup.clone(), l)));
    for (mut c, line) in lines {
        if let Err(e) = c.apply(line) {
            let text = format!("{e} {e:?}");
            for secret in
                ["#ABC", "secretkey", "000102030405", "hunter2", "seedsecret", "one key for the road"]
            {
                assert!(!text.contains(secret), "{text}");
            }
        }
    }
}

/// Whole files: the first error with its line number. Cross references
/// are checked once every line is in, and reported on the line that made
/// them.
#[test]
fn load_reports_the_line() {
    let cases: &[(&str, &str)] = &[
        (
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set vpn m manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128gcm key 000102030405060708090a0b0c0d0e0f10111213\n",
            r#"line 2: "set vpn m manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128gcm key <secret>": manual-key cipher "aes128gcm" uses AES-GCM, a counter mode, with a static key, which esprit refuses (RFC 4106 §8.1): both directions would repeat (key, nonce) from sequence number 1; use esp aes128 or aes256 with auth sha2-256, or an AutoKey IKE VPN (set vpn NAME gateway ...)"#,
        ),
        (
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set ike gateway g address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"k\" proposal pre-g14-aes128-sha\n\
             # the window is too small for RFC 4303 §3.4.3\n\
             set vpn a gateway g replay window 31 tunnel idletime 0 sec-level standard\n",
            r#"line 4: "set vpn a gateway g replay window 31 tunnel idletime 0 sec-level standard": bad replay window in packets "31": expected a number from 32 to 4096"#,
        ),
        (
            "set interface ethernet0/2 zone Untrust\n\n# comment\nset vpn test tunel\n",
            r#"line 4: "set vpn test tunel": unknown word "tunel" after "set vpn test": expected one of gateway, proxy-id, monitor, id, bind, manual, withdraw-routes"#,
        ),
        (
            "set interface ethernet0/2 ip 198.51.100.1/24\nset route 10.2.0.0/16 interface tunnel.1\nset interface tunnel.2 zone Untrust\n",
            r#"line 2: "set route 10.2.0.0/16 interface tunnel.1": route 10.2.0.0/16 names unknown interface "tunnel.1""#,
        ),
        (
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set ike gateway g address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"k\" proposal pre-g14-aes128-sha\n\
             set vpn a gateway g sec-level standard\n\
             set vpn b gateway g sec-level standard\n\
             set vpn a bind interface tunnel.1\n\
             set vpn b bind interface tunnel.1\n\
             set interface tunnel.1 ip unnumbered interface ethernet0/2\n",
            r#"line 6: "set vpn b bind interface tunnel.1": interface "tunnel.1" carries vpn "a" and vpn "b": several VPNs share a tunnel interface only by next-hop tunnel binding, and vpn "a" has no nhtb entry on it: add set interface tunnel.1 nhtb PEER-ADDRESS vpn "a" first, put the proxy-ids on one VPN, or bind one of them to another tunnel interface"#,
        ),
        (
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set ike gateway g address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"k\" proposal pre-g14-aes128-sha\n\
             set vpn a gateway g proposal g14-esp-aes128-sha\n\
             set vpn a proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 web\n\
             set vpn a proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 HTTP\n\
             set service web protocol tcp src-port 0-65535 dst-port 80-80\n",
            r#"line 5: "set vpn a proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 HTTP": vpn "a" already has proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 "web" (as local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 "HTTP")"#,
        ),
        (
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set ike gateway g address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"k\" proposal pre-g14-aes128-sha\n\
             set vpn a gateway g proposal g14-esp-aes128-sha\n\
             set service mydns protocol udp dst-port 53-53\n\
             set service mydns + tcp dst-port 53-53\n\
             set vpn a proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 mydns\n",
            r#"line 6: "set vpn a proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 mydns": vpn "a" proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 names "mydns" but it has 2 members and a proxy-id carries one protocol and port range: give each member its own service and proxy-id"#,
        ),
        (
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set ike gateway g address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"k\" proposal pre-g14-aes128-sha\n\
             set vpn a gateway g proposal g14-esp-aes128-sha\n\
             set vpn b gateway g proposal g14-esp-aes128-sha\n\
             set vpn a id 0x5\n\
             set vpn b id 5\n",
            r#"line 6: "set vpn b id 5": vpn id 0x5 is already used by vpn "a""#,
        ),
        (
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set vpn m manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213\n\
             set vpn m proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 any\n\
             set vpn m proxy-id local-ip 10.1.0.0/16 remote-ip 10.3.0.0/16 any\n",
            r#"line 4: "set vpn m proxy-id local-ip 10.1.0.0/16 remote-ip 10.3.0.0/16 any": vpn "m" is a manual-key VPN and already has proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 "ANY": a manual-key VPN carries exactly one proxy-id, its SA's selectors (esprit; ScreenOS takes none); unset it first, or use an AutoKey IKE VPN (set vpn NAME gateway ...) for several"#,
        ),
        (
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set interface tunnel.1 ip unnumbered interface ethernet0/2\n\
             set vpn a manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213\n\
             set vpn a proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 any\n\
             set vpn a bind interface tunnel.1\n\
             set vpn b manual 3001 4001 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213\n\
             set vpn b proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 any\n\
             set vpn b bind interface tunnel.1\n",
            r#"line 8: "set vpn b bind interface tunnel.1": interface "tunnel.1" already carries proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 ANY of vpn "a": manual-key VPNs sharing a tunnel interface need distinct proxy-ids (give vpn "b" its proxy-id before binding it)"#,
        ),
        (
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set interface tunnel.1 ip unnumbered interface ethernet0/2\n\
             set ike gateway g address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"k\" proposal pre-g14-aes128-sha\n\
             set vpn a gateway g proposal g14-esp-aes128-sha\n\
             set vpn a bind interface tunnel.1\n\
             set vpn m manual 3000 4000 gateway 203.0.113.2 outgoing-interface ethernet0/2 esp aes128 key 000102030405060708090a0b0c0d0e0f auth sha-1 key 000102030405060708090a0b0c0d0e0f10111213\n\
             set vpn m proxy-id local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 any\n\
             set vpn m bind interface tunnel.1\n",
            r#"line 8: "set vpn m bind interface tunnel.1": interface "tunnel.1" carries AutoKey IKE vpn "a" and manual-key vpn "m": the two kinds never share a tunnel interface; bind one of them to another tunnel interface"#,
        ),
        (
            "set interface ethernet0/2 ip 198.51.100.1/24\n\
             set ike gateway g address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"k\" proposal pre-g14-aes128-sha\n\
             set vpn a gateway g proposal g14-esp-aes128-sha\n\
             set vpn a gateway g proposal my-p2\n",
            r#"line 4: "set vpn a gateway g proposal my-p2": vpn "a" proposal names unknown p2-proposal "my-p2": define it with set ike p2-proposal, or use a predefined name such as g14-esp-aes128-sha"#,
        ),
    ];
    for (text, expected) in cases {
        let e = Config::load(text).unwrap_err();
        assert_eq!(e.to_string(), *expected);
        assert!(e.line.is_some());
    }
}

#[test]
fn error_kinds_are_typed() {
    let mut c = seed();
    let e = c.apply("set vpn test tunel").unwrap_err();
    assert!(matches!(
        &*e.kind,
        ErrorKind::Parse(ParseError::UnknownWord { word, after, .. }) if word == "tunel" && after == "set vpn test"
    ));
    let e = c
        .apply(r#"set ike gateway "g2" address 192.0.2.9 Main outgoing-interface "ethernet0/2" preshare "k" sec-level basic"#)
        .unwrap_err();
    assert!(matches!(
        &*e.kind,
        ErrorKind::Parse(ParseError::Insecure { algorithm: "DES", rfc: "RFC 8221", .. })
    ));
    assert!(std::error::Error::source(&e).is_some());
}
