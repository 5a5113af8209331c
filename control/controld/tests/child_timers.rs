//! The manager's child timers are found without a scan of every child at
//! every turn (the earliest deadline is kept until a child changes): a
//! timer moved earlier, with the number of children unchanged, is still
//! what the next wake-up and the next timeout run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use esprit_controld::ike::{IkeAction, IkeManager};
use esprit_controld::ike_fuzz;

/// Moves datagrams between the two managers until both are quiet.
fn pump(now: Instant, hq: &mut IkeManager, peer: &mut IkeManager) -> Vec<Vec<u8>> {
    let mut from_hq = Vec::new();
    loop {
        let mut moved = false;
        for a in peer.poll(now) {
            if let IkeAction::Send(t) = a {
                let _ = hq.handle_datagram(now, t.remote, ike_fuzz::source(0, t.local.port()), &t.bytes);
                moved = true;
            }
        }
        for a in hq.poll(now) {
            if let IkeAction::Send(t) = a {
                from_hq.push(t.bytes.clone());
                let _ = peer.handle_datagram(now, t.remote, t.local, &t.bytes);
                moved = true;
            }
        }
        if !moved {
            return from_hq;
        }
    }
}

#[test]
fn a_timer_moved_earlier_is_the_next_wake_up() {
    let now = Instant::now();
    let mut hq = ike_fuzz::hq();
    let mut stat = ike_fuzz::manager(ike_fuzz::STATIC_PEER, 2);
    stat.acquire(now, 1, "local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY");
    pump(now, &mut hq, &mut stat);
    let view = hq.view(now);
    assert_eq!(view.children.len(), 1, "{view:?}");
    let outbound = view.children[0].ids[1];

    // Nothing due soon (the lifetime-based rekey is far): the deadline
    // found now is remembered.
    let before = hq.poll_timeout().unwrap();
    assert!(before > now + Duration::from_secs(10), "{:?}", before - now);
    hq.handle_timeout(now + Duration::from_secs(1));
    assert!(pump(now + Duration::from_secs(1), &mut hq, &mut stat).is_empty(), "nothing due yet");

    // fastpathd reports the outbound SA's soft limit: as the child's
    // responder, hq rekeys it in 2 s unless the peer does first.
    let line = hq.sa_soft_expired(now, outbound).unwrap();
    assert!(line.contains("unless the peer does first"), "{line}");
    let due = hq.poll_timeout().unwrap();
    assert!(due <= now + Duration::from_secs(2), "the moved timer is the next wake-up: {:?}", due - now);
    let at = now + Duration::from_secs(2);
    hq.handle_timeout(at);
    let sent = pump(at, &mut hq, &mut stat);
    assert!(!sent.is_empty(), "the rekey's Quick Mode went out");
    assert_eq!(hq.view(at).children.len(), 2, "the successor is up beside the old pair");
}
