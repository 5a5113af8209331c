//! The spoofed-source check: a clear packet from a source that only
//! a tunnel may deliver is dropped on every port and counted, whatever the
//! state of the tunnel's routes; decrypted packets from the same sources
//! pass.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use esprit_dataplane::lab::{self, LabOptions, Side, LAN, WAN};
use esprit_dataplane::{
    Action, DropReason, NextHop, PortId, Route, RouteTable, Update, VecFrame, VecOutput, Worker,
};

fn run(w: &mut Worker, port: PortId, frames: &[Vec<u8>]) -> Vec<Action> {
    let mut fs: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(2048, 256, f)).collect();
    let mut actions = vec![Action::Held; fs.len()];
    w.process_burst(Instant::now(), port, &mut fs, &mut actions, &mut VecOutput::default());
    actions
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A frame as it arrives on A from `src` to A's LAN host 10.1.1.10.
fn towards_lan(src: &str) -> Vec<u8> {
    lab::lan_frame(Side::A, ip(src), Side::A.host(1), 40)
}

fn set_routes(w: &mut Worker, routes: Vec<Route>) {
    w.apply(Update::Routes(Arc::new(RouteTable::new(routes).unwrap())), &mut VecOutput::default());
}

fn route(p: &str, len: u8, next_hop: NextHop) -> Route {
    Route { prefix: ip(p), len, next_hop }
}

#[test]
fn clear_packets_from_the_tunnels_prefixes_are_dropped_on_every_port() {
    let mut a = lab::gateway(Side::A, &LabOptions::default());
    // B's subnets (proxy-IDs and tunnel routes), and 10.2.3.0/24, routed
    // into the tunnel without a proxy-ID.
    let spoofs: Vec<Vec<u8>> =
        ["10.2.1.10", "10.2.2.77", "10.2.3.1"].iter().flat_map(|s| vec![towards_lan(s); 5]).collect();
    for port in [WAN, LAN] {
        let actions = run(&mut a, port, &spoofs);
        assert_eq!(actions, vec![Action::Drop(DropReason::SpoofedSource); 15], "port {port:?}");
    }
    assert_eq!(a.drops().get(DropReason::SpoofedSource), 30);
    assert_eq!(a.counters().tx_packets, 0);
    // A source from nowhere in particular is routed as before.
    let actions = run(&mut a, WAN, &[towards_lan("203.0.113.9")]);
    assert_eq!(actions, vec![Action::Tx(LAN)]);
    assert_eq!(a.drops().total(), 30);
}

#[test]
fn a_run_of_mixed_sources_is_judged_per_packet() {
    let mut a = lab::gateway(Side::A, &LabOptions::default());
    let srcs = ["203.0.113.9", "203.0.113.9", "10.2.1.10", "10.2.1.10", "203.0.113.9", "10.2.2.1"];
    let frames: Vec<Vec<u8>> = srcs.iter().map(|s| towards_lan(s)).collect();
    let spoof = Action::Drop(DropReason::SpoofedSource);
    let tx = Action::Tx(LAN);
    assert_eq!(run(&mut a, WAN, &frames), vec![tx, tx, spoof, spoof, tx, spoof]);
}

#[test]
fn withdrawn_and_null_routed_prefixes_stay_closed() {
    let mut a = lab::gateway(Side::A, &LabOptions::default());
    let lan = NextHop::Connected { port: LAN };
    let wan = NextHop::Connected { port: WAN };
    let default = NextHop::Gateway { port: WAN, gateway: Side::B.wan_addr() };
    // The tunnel's routes withdrawn, nothing in their place: the default
    // route through the WAN covers B's subnets now.
    set_routes(
        &mut a,
        vec![route("0.0.0.0", 0, default), route("10.1.0.0", 16, lan), route("192.0.2.0", 24, wan)],
    );
    let frames = [towards_lan("10.2.1.10"), towards_lan("10.2.2.10"), towards_lan("10.2.3.1")];
    let spoof = Action::Drop(DropReason::SpoofedSource);
    // 10.2.3.0/24 is no proxy-ID's: with its tunnel route gone it is an
    // ordinary source again.
    assert_eq!(run(&mut a, WAN, &frames), vec![spoof, spoof, Action::Tx(LAN)]);
    // withdraw-routes' null route in their place.
    set_routes(
        &mut a,
        vec![
            route("0.0.0.0", 0, default),
            route("10.1.0.0", 16, lan),
            route("192.0.2.0", 24, wan),
            route("10.2.0.0", 16, NextHop::Null),
        ],
    );
    assert_eq!(run(&mut a, WAN, &frames), vec![spoof; 3]);
    assert_eq!(a.drops().get(DropReason::SpoofedSource), 5);
}

#[test]
fn decrypted_packets_from_the_same_prefixes_pass() {
    let opts = LabOptions::default();
    let mut a = lab::gateway(Side::A, &opts);
    let mut b = lab::gateway(Side::B, &opts);
    // B's host 10.2.1.10 -> A's host 10.1.1.10 through the tunnel.
    let clear = lab::lan_frame(Side::B, Side::B.host(1), Side::A.host(1), 40);
    let mut fs = vec![VecFrame::new(2048, 256, &clear)];
    let mut actions = vec![Action::Held];
    b.process_burst(Instant::now(), LAN, &mut fs, &mut actions, &mut VecOutput::default());
    assert_eq!(actions, vec![Action::Tx(WAN)]);
    let esp = fs[0].packet().to_vec();
    assert_eq!(run(&mut a, WAN, &[esp]), vec![Action::Tx(LAN)]);
    // The same inner packet sent in clear is a spoof.
    let mut inner = clear.clone();
    inner[..6].copy_from_slice(&Side::A.wan_mac().0);
    assert_eq!(run(&mut a, WAN, &[inner]), vec![Action::Drop(DropReason::SpoofedSource)]);
    assert_eq!(a.drops().total(), 1);
}
