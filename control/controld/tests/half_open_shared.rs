//! The half-open bound across controld's gateways (1,024 in all): a
//! spoofed flood of Main Mode first messages from a peer's own address
//! uses all the room nobody else needs, the real peer's exchange completes
//! with hundreds of spoofs between each of its messages, and another
//! gateway's peer still gets in while the table is full.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Instant;

use esprit_controld::ike::{IkeAction, IkeManager, HALF_OPEN_GLOBAL};
use esprit_controld::ike_fuzz;
use esprit_ike::Discard;

/// `first` (a Main Mode first message) with initiator cookie `n`.
fn spoof(first: &[u8], n: u64) -> Vec<u8> {
    let mut m = first.to_vec();
    m[..8].copy_from_slice(&(n | 1 << 63).to_be_bytes());
    m
}

/// Moves datagrams between `hq` and `peer` (whose datagrams come from
/// `from`) until both are quiet; before each of the peer's datagrams,
/// `spoofs` first messages from the peer's address reach `hq`. Returns
/// how many datagrams the peer sent.
fn exchange(
    now: Instant,
    hq: &mut IkeManager,
    peer: &mut IkeManager,
    from: SocketAddr,
    first: &[u8],
    spoofs: u64,
    next: &mut u64,
) -> usize {
    let mut sent = 0;
    loop {
        let mut moved = false;
        for a in peer.poll(now) {
            if let IkeAction::Send(t) = a {
                for _ in 0..spoofs {
                    *next += 1;
                    let _ = hq.handle_datagram(
                        now,
                        t.remote,
                        SocketAddr::new(from.ip(), 500),
                        &spoof(first, *next),
                    );
                }
                let _ =
                    hq.handle_datagram(now, t.remote, SocketAddr::new(from.ip(), t.local.port()), &t.bytes);
                sent += 1;
                moved = true;
            }
        }
        for a in hq.poll(now) {
            // The answers to the spoofs reach the real peer too, which
            // knows none of their cookies.
            if let IkeAction::Send(t) = a {
                let _ = peer.handle_datagram(now, t.remote, t.local, &t.bytes);
                moved = true;
            }
        }
        if !moved {
            return sent;
        }
    }
}

#[test]
fn a_flood_from_a_peers_address_uses_the_room_nobody_else_needs() {
    let now = Instant::now();
    let mut hq = ike_fuzz::hq();
    let mut stat = ike_fuzz::manager(ike_fuzz::STATIC_PEER, 2);
    let static_addr = ike_fuzz::source(0, 500);
    stat.acquire(now, 1, "local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY");
    let first = stat
        .poll(now)
        .into_iter()
        .find_map(|a| match a {
            IkeAction::Send(t) => Some(t.bytes),
            _ => None,
        })
        .unwrap();

    // 3,000 spoofs: the table fills to the bound in all and cycles.
    let mut n = 0;
    for _ in 0..3000 {
        n += 1;
        let _ = hq.handle_datagram(now, "198.51.100.1:500".parse().unwrap(), static_addr, &spoof(&first, n));
    }
    assert_eq!(hq.half_open(), HALF_OPEN_GLOBAL);
    assert_eq!(hq.discards().get(Discard::HalfOpenLimitSource), 3000 - HALF_OPEN_GLOBAL as u64);
    assert_eq!(hq.discards().get(Discard::HalfOpenLimitGlobal), 0);
    let answered = hq.poll(now).iter().filter(|a| matches!(a, IkeAction::Send(_))).count();
    assert_eq!(
        answered, 3000,
        "every spoof is answered (the answer goes to the real peer, which ignores it)"
    );

    // The real peer's exchange, its first message again (a retransmission
    // of the one taken above) and then the rest, with 500 spoofs before
    // each of its datagrams (a share of 32 lost it to the first 32).
    let mut stat = ike_fuzz::manager(ike_fuzz::STATIC_PEER, 2);
    stat.acquire(now, 1, "local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY");
    let sent = exchange(now, &mut hq, &mut stat, static_addr, &first, 500, &mut n);
    assert!(sent >= 4, "Main Mode messages 1, 3, 5 and Quick Mode: {sent}");
    let view = hq.view(now);
    let g = view.gateways.iter().find(|g| g.gateway == "gw-static").unwrap();
    assert_eq!(g.children, 1, "Main Mode and Quick Mode completed among the spoofs: {view:?}");
    assert!(hq.half_open() <= HALF_OPEN_GLOBAL);

    // The table is full of the static peer's spoofs: the dynamic peer's
    // Aggressive Mode (another gateway) displaces one of them and
    // completes.
    assert_eq!(hq.half_open(), HALF_OPEN_GLOBAL);
    let global = hq.discards().get(Discard::HalfOpenLimitGlobal);
    let mut dynamic = ike_fuzz::manager(ike_fuzz::DYNAMIC_PEER, 3);
    dynamic.acquire(now, 1, "local-ip 10.3.1.0/24 remote-ip 10.1.2.0/24 ANY");
    exchange(now, &mut hq, &mut dynamic, ike_fuzz::source(1, 500), &first, 0, &mut n);
    let view = hq.view(now);
    let g = view.gateways.iter().find(|g| g.gateway == "gw-dyn").unwrap();
    assert_eq!(g.children, 1, "the other gateway's peer got in: {view:?}");
    assert_eq!(hq.discards().get(Discard::HalfOpenLimitGlobal), global, "nothing refused");
}
