//! The fastpathd port of the controller, request by request: replies that
//! come after other inputs, replies of the wrong kind or for nothing, a
//! connection lost with work outstanding or waiting.

use esprit_fastpath_api::{FastPathEvent, Reply, Request};

use super::{controller, gateway1, names, pump, sync, FakeFastPath, Model};
use crate::core::controller::{FastPathError, Response};
use crate::core::port::{Answer, Done, SyncWhy, Token};
use crate::core::state::State;

/// Answers the requests outstanding one at a time until `stop` says so
/// of the next one (left unanswered, returned).
fn answer_until(
    c: &mut crate::core::controller::Controller,
    fp: &mut FakeFastPath,
    stop: impl Fn(&Request) -> bool,
) -> Vec<Request> {
    let mut queue: std::collections::VecDeque<Request> = Default::default();
    loop {
        queue.extend(c.take_requests());
        let Some(r) = queue.front() else { return Vec::new() };
        if stop(r) {
            return queue.into();
        }
        let r = queue.pop_front().unwrap();
        let reply = fp.answer(r);
        c.handle_reply(reply);
    }
}

/// An SA counts as installed from fastpathd's accepting reply, not from
/// its request: while a batch of installs is outstanding none of it is,
/// and each reply installs its own SA.
#[test]
fn sent_is_not_installed() {
    let mut c = controller(&gateway1(), State::default());
    let mut fp = FakeFastPath::new();
    c.sync(SyncWhy::Resync);
    let batch = answer_until(&mut c, &mut fp, |r| matches!(r, Request::AddSa(_)));
    let ids: Vec<u64> = batch
        .iter()
        .map(|r| match r {
            Request::AddSa(s) => s.id,
            other => panic!("a batch of installs only: {other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 8, "{:?}", names(&batch));
    assert_eq!(c.outstanding(), 8);
    assert!(ids.iter().all(|id| !c.sas().is_installed(*id)));
    let mut batch = batch.into_iter();
    let first = batch.next().unwrap();
    let reply = fp.answer(first);
    c.handle_reply(reply);
    let installed: Vec<bool> = ids.iter().map(|id| c.sas().is_installed(*id)).collect();
    assert_eq!(installed, [true, false, false, false, false, false, false, false]);
    for r in batch {
        let reply = fp.answer(r);
        c.handle_reply(reply);
    }
    let done = pump(&mut c, &mut fp);
    assert!(
        matches!(&done[..], [Done::Synced { why: SyncWhy::Resync, result: Ok(r) }] if r.added == 8),
        "{done:?}"
    );
    assert!(ids.iter().all(|id| c.sas().is_installed(*id)));
    assert!(c.in_sync);
}

/// A fastpathd event between a synchronisation's dump and the end of its
/// plan (fastpathd may have dropped an SA the dump showed): the
/// synchronisation ends, but the controller stays out of sync, so the
/// next IKE update compares everything again.
#[test]
fn an_event_while_a_synchronisation_runs_leaves_it_out_of_sync() {
    for event in [false, true] {
        let mut c = controller(&gateway1(), State::default());
        let mut fp = FakeFastPath::new();
        c.sync(SyncWhy::Resync);
        assert_eq!(names(&c.take_requests()), ["Dump"]);
        if event {
            c.record_fastpath_event(&FastPathEvent::HardExpire {
                sa: 0x1_0000_0001,
                reason: "lifetime".into(),
            });
        }
        let reply = fp.answer(Request::Dump);
        c.handle_reply(reply);
        let done = pump(&mut c, &mut fp);
        assert!(matches!(&done[..], [Done::Synced { result: Ok(_), .. }]), "{done:?}");
        assert_eq!(c.in_sync, !event, "event {event}");
    }
}

/// A reply for nothing sent, or of the wrong kind, is a broken
/// connection: whatever was outstanding fails, nothing panics, and what
/// is wanted is kept for the next connection.
#[test]
fn replies_for_nothing_or_of_the_wrong_kind_lose_the_connection() {
    let mut c = controller(&gateway1(), State::default());
    let lost = |d: &Done| matches!(d, Done::Lost { error: FastPathError::Lost(_), .. });
    c.handle_reply(Ok(Reply::Ok));
    let done: Vec<Done> = std::iter::from_fn(|| c.take_done()).collect();
    assert!(matches!(&done[..], [d @ Done::Lost { reported: false, .. }] if lost(d)), "{done:?}");

    c.sync(SyncWhy::Connected);
    c.poll_stats();
    assert_eq!(names(&c.take_requests()), ["Dump", "Stats"]);
    c.handle_reply(Ok(Reply::Ok));
    let done: Vec<Done> = std::iter::from_fn(|| c.take_done()).collect();
    let expected = FastPathError::Lost("unexpected answer to dump: Ok".into());
    assert_eq!(
        done,
        [
            Done::Stats(Err(expected.clone())),
            Done::Synced { why: SyncWhy::Connected, result: Err(expected.clone()) },
            Done::Lost { error: expected, reported: true },
        ]
    );
    assert!(!c.busy() && c.take_requests().is_empty());
    // The next connection programs everything.
    let mut fp = FakeFastPath::new();
    assert_eq!(sync(&mut c, &mut fp).unwrap().added, 8);
}

/// The connection drops while one change runs and another waits: both
/// are answered (kept, programmed when fastpathd is back), and the next
/// connection programs both.
#[test]
fn a_lost_connection_answers_the_changes_outstanding() {
    let mut c = controller(&gateway1(), State::default());
    let mut fp = FakeFastPath::new();
    sync(&mut c, &mut fp).unwrap();
    let set1 = "set route 10.2.9.0/24 interface tunnel.1";
    let set2 = "set route 10.2.8.0/24 interface tunnel.1";
    assert_eq!(c.command(set1, Some(Token(1))), Answer::Later(Token(1)));
    assert_eq!(c.command(set2, Some(Token(2))), Answer::Later(Token(2)));
    assert_eq!(names(&c.take_requests()), ["Dump"], "the second change waits for the first");
    c.handle_reply(Err(FastPathError::Lost("end of file".into())));
    let done: Vec<Done> = std::iter::from_fn(|| c.take_done()).collect();
    let kept = Response::ok(vec![
        "fastpathd connection lost: end of file: the change is programmed when fastpathd is back".into(),
    ]);
    let answers: Vec<(Token, &Response)> = done
        .iter()
        .filter_map(|d| match d {
            Done::Command { token, response, .. } => Some((*token, response)),
            _ => None,
        })
        .collect();
    assert_eq!(answers, [(Token(1), &kept), (Token(2), &kept)]);
    assert!(matches!(done.last(), Some(Done::Lost { reported: true, .. })), "{done:?}");
    assert!(!c.busy() && c.take_requests().is_empty());
    c.fastpath_lost();
    let routes =
        |fp: &FakeFastPath| -> Vec<String> { fp.dump.routes.iter().map(|r| r.prefix.clone()).collect() };
    assert!(!routes(&fp).iter().any(|p| p == "10.2.9.0/24" || p == "10.2.8.0/24"));
    sync(&mut c, &mut fp).unwrap();
    let routes = routes(&fp);
    assert!(
        routes.iter().any(|p| p == "10.2.9.0/24") && routes.iter().any(|p| p == "10.2.8.0/24"),
        "{routes:?}"
    );
}
