//! The `ike_dispatch` fuzz target's body: controld's whole IKE dispatch
//! ([`IkeManager`]) with three gateways, a static peer in Main Mode, a
//! dynamic one in Aggressive Mode and an IKEv2 one, fed datagrams from arbitrary source
//! addresses and ports on 500 and 4500, with time advancing and acquires.
//! Never panics; the half-open bounds hold after every step; everything
//! sent parses as ISAKMP. Not an API for anything else.
//!
//! Input: records, each `[op]` then its fields:
//! * op % 4 in {0, 1}: a datagram: `[source][port hi][port lo][local]
//!   [len hi][len lo][bytes...]`: source 0 is the static peer
//!   (203.0.113.2), 1 the dynamic peer (192.0.2.77), 3 the IKEv2 peer
//!   (203.0.113.3), n the stranger 192.0.2.n or, odd, 203.0.113.n;
//!   `local` even is port 500, odd 4500;
//! * op % 4 == 2: `[t]`: time advances t x 250 ms, timers run;
//! * op % 4 == 3: `[n]`: an acquire on tunnel.3 (IKEv2) when n % 4 == 3,
//!   else on tunnel.(1 + n % 2).

// A fuzz body asserts its invariants: a failed one is a finding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use esprit_config::Config;
use esprit_ike::wire::Header;

use crate::core::spi::SpiAllocator;
use crate::ike::{ike_gateways, IkeAction, IkeGateway, IkeManager, RandomFill, HALF_OPEN_GLOBAL};

/// The fuzzed gateway (198.51.100.1): gw-static to 203.0.113.2 in Main
/// Mode on tunnel.1, gw-dyn for "road.example.net" from anywhere in
/// Aggressive Mode on tunnel.2.
pub const HQ: &str = r#"set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 198.51.100.1/24
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set interface tunnel.2 zone Untrust
set interface tunnel.2 ip unnumbered interface ethernet0/2
set ike gateway "gw-static" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "fuzz-psk-0123456789-static" proposal "pre-g19-aes128-sha"
set ike gateway "gw-dyn" dynamic road.example.net Aggr outgoing-interface "ethernet0/2" preshare "fuzz-psk-0123456789-dynamic" proposal "pre-g19-aes128-sha"
set ike gateway "gw-dyn" local-id hq.example.net
set vpn "v1" gateway "gw-static" no-replay tunnel idletime 0 proposal "g19-esp-aes128gcm"
set vpn "v1" id 0x5 bind interface tunnel.1
set vpn "v1" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any
set vpn "v2" gateway "gw-dyn" no-replay tunnel idletime 0 proposal "nopfs-esp-aes128gcm"
set vpn "v2" id 0x6 bind interface tunnel.2
set vpn "v2" proxy-id local-ip 10.1.2.0/24 remote-ip 10.3.1.0/24 any
set interface tunnel.3 zone Untrust
set interface tunnel.3 ip unnumbered interface ethernet0/2
set ike gateway ikev2 "gw-v2" address 203.0.113.3 outgoing-interface "ethernet0/2" preshare "fuzz-psk-0123456789-ikev2" proposal "pre-g19-aes128-sha"
set ike gateway "gw-v2" dpd-liveness interval 10
set vpn "v3" gateway "gw-v2" no-replay tunnel idletime 0 proposal "nopfs-esp-aes128gcm"
set vpn "v3" id 0x7 bind interface tunnel.3
set vpn "v3" proxy-id local-ip 10.1.3.0/24 remote-ip 10.4.1.0/24 any
set vpn "v3" proxy-id local-ip 10.1.3.0/24 remote-ip 10.4.2.0/24 any
"#;

/// The IKEv2 peer (203.0.113.3), for recording seeds.
pub const IKEV2_PEER: &str = r#"set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 203.0.113.3/24
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set ike gateway ikev2 "hq" address 198.51.100.1 outgoing-interface "ethernet0/2" preshare "fuzz-psk-0123456789-ikev2" proposal "pre-g19-aes128-sha"
set vpn "v3" gateway "hq" no-replay tunnel idletime 0 proposal "nopfs-esp-aes128gcm"
set vpn "v3" id 0x7 bind interface tunnel.1
set vpn "v3" proxy-id local-ip 10.4.1.0/24 remote-ip 10.1.3.0/24 any
set vpn "v3" proxy-id local-ip 10.4.2.0/24 remote-ip 10.1.3.0/24 any
"#;

/// The static peer (203.0.113.2), for recording seeds.
pub const STATIC_PEER: &str = r#"set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 203.0.113.2/24
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set ike gateway "hq" address 198.51.100.1 Main outgoing-interface "ethernet0/2" preshare "fuzz-psk-0123456789-static" proposal "pre-g19-aes128-sha"
set ike gateway "hq" dpd-liveness interval 10
set vpn "v1" gateway "hq" no-replay tunnel idletime 0 proposal "g19-esp-aes128gcm"
set vpn "v1" id 0x5 bind interface tunnel.1
set vpn "v1" proxy-id local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 any
"#;

/// The dynamic peer (192.0.2.77), for recording seeds.
pub const DYNAMIC_PEER: &str = r#"set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 192.0.2.77/24
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set ike gateway "hq" address 198.51.100.1 Aggr outgoing-interface "ethernet0/2" preshare "fuzz-psk-0123456789-dynamic" proposal "pre-g19-aes128-sha"
set ike gateway "hq" local-id road.example.net
set ike gateway "hq" nat-traversal
set vpn "v2" gateway "hq" no-replay tunnel idletime 0 proposal "nopfs-esp-aes128gcm"
set vpn "v2" id 0x6 bind interface tunnel.1
set vpn "v2" proxy-id local-ip 10.3.1.0/24 remote-ip 10.1.2.0/24 any
"#;

/// The fuzzed gateway's address.
pub const HQ_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

/// The IKE gateways of `conf` (VPN ids from their `id`).
pub fn gateways(conf: &str) -> Vec<IkeGateway> {
    let (config, _) = Config::load(conf).unwrap();
    let ids: BTreeMap<String, u32> = config.vpns().map(|v| (v.name.clone(), v.id.unwrap_or(1))).collect();
    ike_gateways(&config, &ids).0
}

/// A manager for `conf` (VPN ids from their `id`), with deterministic
/// randomness from `seed`.
pub fn manager(conf: &str, seed: u64) -> IkeManager {
    manager_of(gateways(conf), seed)
}

/// A manager of `g`, with deterministic randomness from `seed`.
fn manager_of(g: Vec<IkeGateway>, seed: u64) -> IkeManager {
    let state = Rc::new(RefCell::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1));
    let fill: RandomFill = Rc::new(move |b: &mut [u8]| {
        let mut x = state.borrow_mut();
        for v in b {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *v = (*x >> 24) as u8;
        }
    });
    IkeManager::new(g, SpiAllocator::new(), fill)
}

/// The fuzzed manager. [`HQ`] is parsed once per process (that was a
/// sixth of every run); each run gets fresh peers from a clone of its
/// gateways, so no state carries over between inputs.
pub fn hq() -> IkeManager {
    static HQ_GATEWAYS: OnceLock<Vec<IkeGateway>> = OnceLock::new();
    manager_of(HQ_GATEWAYS.get_or_init(|| gateways(HQ)).clone(), 1)
}

/// The source address of a datagram record.
pub fn source(selector: u8, port: u16) -> SocketAddr {
    let ip = match selector {
        0 => Ipv4Addr::new(203, 0, 113, 2),
        1 => Ipv4Addr::new(192, 0, 2, 77),
        n if n % 2 == 0 => Ipv4Addr::new(192, 0, 2, n),
        n => Ipv4Addr::new(203, 0, 113, n),
    };
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// One datagram record (see the module doc).
pub fn record(selector: u8, port: u16, natt: bool, bytes: &[u8]) -> Vec<u8> {
    let mut r = vec![0, selector];
    r.extend_from_slice(&port.to_be_bytes());
    r.push(u8::from(natt));
    r.extend_from_slice(&(bytes.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    r.extend_from_slice(bytes);
    r
}

/// Runs the manager's output; returns how many SAs it installed.
fn drain(m: &mut IkeManager, now: Instant) -> usize {
    let mut installed = 0;
    for a in m.poll(now) {
        match a {
            IkeAction::Send(t) => {
                // A NAT-keepalive (RFC 3948 §2.3) is one octet, not ISAKMP.
                assert!(
                    t.is_nat_keepalive()
                        || Header::parse(&t.bytes).is_ok()
                        || esprit_ike::v2::wire::Header::parse(&t.bytes).is_ok(),
                    "sent an unparsable message"
                );
                assert!(t.bytes.len() < 65_000);
            }
            IkeAction::Install(v) => installed += v.len(),
            _ => {}
        }
    }
    installed
}

fn check_bounds(m: &IkeManager) {
    assert!(m.half_open() <= HALF_OPEN_GLOBAL, "half-open {} in all", m.half_open());
    for (half_open, per_source) in m.half_open_by_gateway() {
        let lim = esprit_ike::HalfOpenLimits::default();
        // One source may fill a peer's table (the sources share it fairly).
        assert!(half_open <= lim.global && per_source <= half_open, "{half_open} / {per_source}");
    }
}

/// The fuzz body.
pub fn ike_dispatch(data: &[u8]) {
    run(data);
}

/// [`ike_dispatch`], returning how many SAs the manager installed (a
/// recorded exchange replays validly: its seeds reach the end).
pub fn run(data: &[u8]) -> usize {
    let mut installed = 0;
    let mut m = hq();
    let mut now = Instant::now();
    let mut rest = data;
    let local_ip = IpAddr::V4(HQ_ADDR);
    while let Some((&op, r)) = rest.split_first() {
        rest = r;
        match op % 4 {
            0 | 1 => {
                let Some((head, r)) = rest.split_at_checked(6) else { return installed };
                let port = u16::from_be_bytes([head[1], head[2]]);
                let local = SocketAddr::new(local_ip, if head[3] % 2 == 1 { 4500 } else { 500 });
                let len = usize::from(u16::from_be_bytes([head[4], head[5]])).min(r.len());
                let (bytes, r) = r.split_at(len);
                rest = r;
                let _ = m.handle_datagram(now, local, source(head[0], port), bytes);
            }
            2 => {
                let Some((&t, r)) = rest.split_first() else { return installed };
                rest = r;
                now += Duration::from_millis(u64::from(t) * 250);
                m.handle_timeout(now);
            }
            _ => {
                let Some((&n, r)) = rest.split_first() else { return installed };
                rest = r;
                let (tunnel, pid) = if n % 4 == 3 {
                    (3, "local-ip 10.1.3.0/24 remote-ip 10.4.1.0/24 ANY")
                } else if n % 2 == 0 {
                    (1, "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY")
                } else {
                    (2, "local-ip 10.1.2.0/24 remote-ip 10.3.1.0/24 ANY")
                };
                let _ = m.acquire(now, tunnel, pid);
            }
        }
        installed += drain(&mut m, now);
        check_bounds(&m);
    }
    installed
}
