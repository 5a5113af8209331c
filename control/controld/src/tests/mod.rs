//! controld in memory: the configuration programs a fake fastpathd that
//! keeps state the way fastpathd's management thread does
//! (`fastpath/fastpathd/src/mgmt.rs`), and every test reads the requests
//! that crossed the control socket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use esprit_config::Config;
use esprit_fastpath_api::{Direction, Dump, NextHopSpec, Reply, Request, RouteSpec, SaStatsView, Stats};

use crate::core::controller::{Controller, FastPathError, Response, SyncReport};
use crate::core::port::{Answer, Done, SyncWhy, Token};
use crate::core::sa::{inbound_margin, INBOUND_MARGIN_MIN, SEQ_MARGIN};
use crate::core::state::State;
use crate::core::translate::{hex_id_of, sa_id, translate, TranslateError};

mod glue;
mod golden;
mod pipelined;
mod scale;

/// Answers control requests like fastpathd: the in-memory models.
pub(crate) trait Model {
    /// One request's reply.
    fn answer(&mut self, r: Request) -> Result<Reply, FastPathError>;

    /// `n` requests are handed over at once (one round trip on the socket).
    fn batch(&mut self, _n: usize) {}
}

/// The shell's part, in memory: hands the controller's requests to `fp`,
/// feeds the replies back in order (nothing more after a lost
/// connection), until nothing is outstanding; returns what ended.
pub(crate) fn pump(c: &mut Controller, fp: &mut dyn Model) -> Vec<Done> {
    let mut done = Vec::new();
    loop {
        done.extend(std::iter::from_fn(|| c.take_done()));
        let requests = c.take_requests();
        if requests.is_empty() {
            return done;
        }
        fp.batch(requests.len());
        for r in requests {
            let reply = fp.answer(r);
            let lost = matches!(reply, Err(FastPathError::Lost(_)));
            c.handle_reply(reply);
            if lost {
                break;
            }
        }
    }
}

/// The first synchronisation that ended among `done`.
fn synced(done: Vec<Done>) -> Result<SyncReport, FastPathError> {
    for d in done {
        match d {
            Done::Synced { result, .. } => return result,
            Done::Lost { error, .. } => return Err(error),
            _ => {}
        }
    }
    panic!("no synchronisation ended")
}

/// A whole synchronisation with `fp`.
pub(crate) fn sync(c: &mut Controller, fp: &mut dyn Model) -> Result<SyncReport, FastPathError> {
    c.sync(SyncWhy::Resync);
    synced(pump(c, fp))
}

/// An IKE update, programmed into `fp` when connected.
pub(crate) fn ike_update(
    c: &mut Controller,
    add: Vec<crate::core::translate::DesiredSa>,
    remove: &[u64],
    fp: Option<&mut dyn Model>,
) -> Result<SyncReport, FastPathError> {
    c.ike_update(add, remove, fp.is_some());
    match fp {
        Some(fp) => synced(pump(c, fp)),
        None => synced(std::iter::from_fn(|| c.take_done()).collect()),
    }
}

/// An operator command with fastpathd connected, its late answer waited for.
pub(crate) fn command(c: &mut Controller, line: &str, fp: &mut dyn Model) -> Response {
    let token = Token(7);
    match c.command(line, Some(token)) {
        Answer::Now(r) => {
            assert!(pump(c, fp).is_empty(), "{line}: answered now, yet fastpathd work ended");
            r
        }
        Answer::Later(t) => {
            assert_eq!(t, token);
            let done = pump(c, fp);
            let answers: Vec<Response> = done
                .into_iter()
                .filter_map(|d| match d {
                    Done::Command { token: t, response, .. } if t == token => Some(response),
                    _ => None,
                })
                .collect();
            assert_eq!(answers.len(), 1, "{line}: one answer");
            answers.into_iter().next().unwrap()
        }
    }
}

/// An operator command without fastpathd: answered at once.
pub(crate) fn offline(c: &mut Controller, line: &str) -> Response {
    match c.command(line, None) {
        Answer::Now(r) => r,
        Answer::Later(t) => panic!("{line}: answered later ({t:?}) without fastpathd"),
    }
}

/// A reading of fastpathd's counters.
pub(crate) fn poll_stats(c: &mut Controller, fp: &mut dyn Model) -> Result<(), FastPathError> {
    c.poll_stats();
    for d in pump(c, fp) {
        match d {
            Done::Stats(r) => return r,
            Done::Lost { error, .. } => return Err(error),
            _ => {}
        }
    }
    panic!("no reading ended")
}

/// The VPN monitor's turn, its probes answered.
pub(crate) fn monitor_tick(
    c: &mut Controller,
    now: std::time::Instant,
    fp: &mut dyn Model,
) -> Result<Vec<u64>, FastPathError> {
    let renegotiate = c.monitor_tick(now);
    match pump(c, fp).into_iter().find_map(|d| match d {
        Done::Lost { error, .. } => Some(error),
        _ => None,
    }) {
        Some(e) => Err(e),
        None => Ok(renegotiate),
    }
}

/// A fastpathd in memory.
#[derive(Debug, Default)]
struct FakeFastPath {
    ports: Vec<String>,
    dump: Dump,
    /// Every request but `Dump` and `Stats`, in order.
    log: Vec<Request>,
    /// Sequence numbers reported by `Stats`.
    seqs: BTreeMap<u64, u64>,
    /// Packet counts reported by `Stats` (by default, the sequence number).
    packets: BTreeMap<u64, u64>,
}

impl FakeFastPath {
    fn new() -> FakeFastPath {
        FakeFastPath { ports: vec!["lan1".into(), "lan2".into(), "wan0".into()], ..Default::default() }
    }

    fn take_log(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.log)
    }
}

fn refused(reason: impl Into<String>) -> FastPathError {
    FastPathError::Refused { what: "test".into(), reason: reason.into() }
}

impl Model for FakeFastPath {
    fn answer(&mut self, r: Request) -> Result<Reply, FastPathError> {
        if !matches!(r, Request::Dump | Request::Stats | Request::StatsSince { .. }) {
            self.log.push(r.clone());
        }
        let d = &mut self.dump;
        match r {
            Request::Dump => return Ok(Reply::Dump(Box::new(d.clone()))),
            Request::Stats | Request::StatsSince { .. } => {
                let sas = d
                    .sas
                    .iter()
                    .map(|(id, dir, spi, _, _)| SaStatsView {
                        id: *id,
                        spi: *spi,
                        direction: Some(*dir),
                        seq: self.seqs.get(id).copied().unwrap_or(0),
                        packets: self.packets.get(id).or(self.seqs.get(id)).copied().unwrap_or(0),
                        ..SaStatsView::default()
                    })
                    .collect();
                return Ok(Reply::Stats(Box::new(Stats { workers: Vec::new(), sas, ..Stats::default() })));
            }
            Request::SetRoutes { routes } => {
                for r in &routes {
                    if let NextHopSpec::Port { port, .. } = &r.next_hop {
                        if !self.ports.contains(port) {
                            return Err(refused(format!("no port {port:?}")));
                        }
                    }
                }
                d.routes = routes;
            }
            Request::SetTunnel { tunnel, mtu, vpn } => {
                d.tunnels.retain(|t| t.0 != tunnel);
                d.tunnels.push((tunnel, mtu, vpn));
                d.tunnels.sort();
            }
            Request::RemoveTunnel { tunnel } => d.tunnels.retain(|t| t.0 != tunnel),
            Request::SetVpn { vpn, check, proxy_ids } => {
                d.vpns.retain(|v| v.0 != vpn);
                d.vpns.push((vpn, check, proxy_ids));
                d.vpns.sort();
            }
            Request::RemoveVpn { vpn } => {
                d.vpns.retain(|v| v.0 != vpn);
                d.sas.retain(|s| s.3 != vpn);
            }
            Request::AddSa(s) => {
                let Some(v) = d.vpns.iter().find(|v| v.0 == s.vpn) else {
                    return Err(refused(format!("SA {}: no VPN {}", s.id, s.vpn)));
                };
                if !v.2.contains(&s.proxy_id) {
                    return Err(refused(format!(
                        "SA {}: proxy-ID {} not in VPN {}",
                        s.id, s.proxy_id, s.vpn
                    )));
                }
                d.sas.retain(|x| x.0 != s.id);
                d.sas.push((s.id, s.direction, s.spi, s.vpn, s.proxy_id.clone()));
                d.sas.sort_by_key(|x| x.0);
            }
            Request::RemoveSa { id } => {
                let before = d.sas.len();
                d.sas.retain(|x| x.0 != id);
                if d.sas.len() == before {
                    return Err(refused(format!("no SA {id}")));
                }
            }
            Request::Reset => *d = Dump::default(),
            _ => {}
        }
        Ok(Reply::Ok)
    }
}

const AES256_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const SHA256_KEY: &str = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
const AES_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const SHA1_KEY: &str = "101112131415161718191a1b1c1d1e1f20212223";

/// The manual-key VPN line of subnet pair `lr` on gateway 1 (p11 and p22
/// AES-256-CBC/HMAC-SHA-256, p12 and p21 AES-128-CBC/HMAC-SHA1; manual keys
/// never use GCM, RFC 4106 §8.1).
fn manual_line(l: u8, r: u8) -> String {
    let (inbound, outbound) =
        (0x2000 + 16 * u32::from(l) + u32::from(r), 0x1000 + 16 * u32::from(l) + u32::from(r));
    let esp = if l == r {
        format!("esp aes256 key {AES256_KEY} auth sha2-256 key {SHA256_KEY}")
    } else {
        format!("esp aes128 key {AES_KEY} auth sha-1 key {SHA1_KEY}")
    };
    format!("set vpn p{l}{r} manual {inbound:x} {outbound:x} gateway 203.0.113.2 outgoing-interface ethernet0/2 {esp}")
}

/// Gateway 1 of the seed topology with four manual-key VPNs on tunnel.1.
fn gateway1() -> String {
    let mut lines = vec![
        "set interface ethernet0/1 zone Trust".to_string(),
        "set interface ethernet0/1 ip 10.1.1.1/24".into(),
        "set interface ethernet0/1 port lan1".into(),
        "set interface ethernet0/3 zone Trust".into(),
        "set interface ethernet0/3 ip 10.1.2.1/24".into(),
        "set interface ethernet0/3 port lan2".into(),
        "set interface ethernet0/2 zone Untrust".into(),
        "set interface ethernet0/2 ip 198.51.100.1/24".into(),
        "set interface ethernet0/2 port wan0".into(),
        "set interface tunnel.1 zone Untrust".into(),
        "set interface tunnel.1 ip unnumbered interface ethernet0/2".into(),
        "set route 0.0.0.0/0 interface ethernet0/2 gateway 198.51.100.254".into(),
    ];
    for (i, (l, r)) in [(1, 1), (1, 2), (2, 1), (2, 2)].into_iter().enumerate() {
        lines.push(manual_line(l, r));
        lines.push(format!("set vpn p{l}{r} proxy-id local-ip 10.1.{l}.0/24 remote-ip 10.2.{r}.0/24 any"));
        lines.push(format!("set vpn p{l}{r} id {:#x} bind interface tunnel.1", i + 1));
    }
    lines.push("set route 10.2.1.0/24 interface tunnel.1".into());
    lines.push("set route 10.2.2.0/24 interface tunnel.1".into());
    lines.join("\n")
}

fn controller(text: &str, state: State) -> Controller {
    let (config, _) = Config::load(text).unwrap_or_else(|e| panic!("{e}"));
    Controller::new(config, None, BTreeMap::new(), state).unwrap()
}

/// The first column of `get sa`'s rows: HEX ID and direction.
pub(super) fn hex_id_column(get_sa: &[String]) -> Vec<String> {
    get_sa[2..].iter().map(|l| l.chars().take(9).collect()).collect()
}

/// The rows of these HEX IDs in `get sa`'s first column, inbound first.
pub(super) fn hex_id_rows(ids: &[u32]) -> Vec<String> {
    ids.iter().flat_map(|i| [format!("{i:08x}<"), format!("{i:08x}>")]).collect()
}

fn names(log: &[Request]) -> Vec<String> {
    log.iter().map(crate::core::controller::describe).collect()
}

fn pid(l: u8, r: u8) -> String {
    format!("local-ip 10.1.{l}.0/24 remote-ip 10.2.{r}.0/24 ANY")
}

#[test]
fn manual_vpns_program_routes_tunnel_table_and_sas() {
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    let r = sync(&mut c, &mut fp).unwrap();
    assert_eq!((r.added, r.kept, r.removed), (8, 0, 0));
    let log = fp.take_log();
    assert_eq!(
        names(&log),
        [
            "set-vpn 1 (4 proxy-ids, check true)",
            "set-tunnel tunnel.1 mtu 1400 vpn Some(1)",
            "add-sa 0x100000000 spi 00002011 (Inbound)",
            "add-sa 0x200000000 spi 00002012 (Inbound)",
            "add-sa 0x300000000 spi 00002021 (Inbound)",
            "add-sa 0x400000000 spi 00002022 (Inbound)",
            "add-sa 0x180000000 spi 00001011 (Outbound)",
            "add-sa 0x280000000 spi 00001012 (Outbound)",
            "add-sa 0x380000000 spi 00001021 (Outbound)",
            "add-sa 0x480000000 spi 00001022 (Outbound)",
            "set-routes (6 routes)",
        ]
    );
    let Request::SetVpn { proxy_ids, .. } = &log[0] else { panic!() };
    assert_eq!(proxy_ids, &[pid(1, 1), pid(1, 2), pid(2, 1), pid(2, 2)]);
    let port = |p: &str, gateway: Option<&str>| NextHopSpec::Port {
        port: p.into(),
        gateway: gateway.map(|g| g.parse().unwrap()),
    };
    let route = |prefix: &str, next_hop| RouteSpec { prefix: prefix.into(), next_hop };
    let Request::SetRoutes { routes } = &log[10] else { panic!() };
    assert_eq!(
        routes,
        &[
            route("10.1.1.0/24", port("lan1", None)),
            route("198.51.100.0/24", port("wan0", None)),
            route("10.1.2.0/24", port("lan2", None)),
            route("0.0.0.0/0", port("wan0", Some("198.51.100.254"))),
            route("10.2.1.0/24", NextHopSpec::Tunnel { tunnel: 1 }),
            route("10.2.2.0/24", NextHopSpec::Tunnel { tunnel: 1 }),
        ]
    );
    // The SA of pair 12: CBC with HMAC-SHA1, our WAN address to the peer's,
    // its own proxy-ID.
    let Request::AddSa(s) = &log[7] else { panic!() };
    assert_eq!(s.suite.name(), "aes128-sha1");
    assert_eq!((s.local.to_string(), s.peer.to_string()), ("198.51.100.1".into(), "203.0.113.2".into()));
    assert_eq!(s.proxy_id, pid(1, 2));
    assert_eq!(s.encr_key.as_bytes().len(), 16);
    assert_eq!(s.integ_key.as_bytes().len(), 20);
    assert_eq!((s.vpn, s.tunnel, s.last_seq), (1, 1, 0));
    let Request::AddSa(s) = &log[2] else { panic!() };
    assert_eq!((s.suite.name(), s.encr_key.as_bytes().len(), s.replay_window), ("aes256-sha256", 32, 64));
    // Nothing changed: nothing sent.
    assert_eq!(sync(&mut c, &mut fp).unwrap().requests, 0);
}

/// `replay window N`, `no-replay` and `esn` of a manual-key VPN reach
/// fastpathd's SA specs; the others keep the default window of 64.
#[test]
fn manual_replay_window_and_esn_reach_the_sa_specs() {
    let text = gateway1()
        .lines()
        .map(|l| match l {
            _ if l.starts_with("set vpn p11 manual") => format!("{l} replay window 1024 esn"),
            _ if l.starts_with("set vpn p12 manual") => format!("{l} no-replay"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut fp = FakeFastPath::new();
    let mut c = controller(&text, State::default());
    sync(&mut c, &mut fp).unwrap();
    let mut got: Vec<(u32, Direction, u32, bool)> = fp
        .take_log()
        .iter()
        .filter_map(|r| match r {
            Request::AddSa(s) => Some((hex_id_of(s.id), s.direction, s.replay_window, s.esn)),
            _ => None,
        })
        .collect();
    got.sort_by_key(|g| (g.0, g.1 == Direction::Outbound));
    let inbound: Vec<_> = got.iter().filter(|g| g.1 == Direction::Inbound).map(|g| (g.0, g.2, g.3)).collect();
    assert_eq!(inbound, [(1, 1024, true), (2, 0, false), (3, 64, false), (4, 64, false)]);
    let esn_out: Vec<_> = got.iter().filter(|g| g.1 == Direction::Outbound).map(|g| (g.0, g.3)).collect();
    assert_eq!(esn_out, [(1, true), (2, false), (3, false), (4, false)]);
    let shown = offline(&mut c, "get sa id 1").output;
    assert!(shown.iter().any(|l| l.contains("anti-replay window 1024 packets, ESN,")), "{shown:?}");
}

#[test]
fn a_restarted_controld_adopts_what_fastpathd_holds() {
    let mut fp = FakeFastPath::new();
    let mut first = controller(&gateway1(), State::default());
    sync(&mut first, &mut fp).unwrap();
    fp.take_log();
    let state = first.state();
    drop(first);
    let mut second = controller(&gateway1(), state.clone());
    let r = sync(&mut second, &mut fp).unwrap();
    assert_eq!((r.kept, r.added, r.requests), (8, 0, 0), "{:?}", names(&fp.log));
    assert!(second.sas().is_installed(sa_id(1, Direction::Outbound, 0)));

    // Without the state directory controld cannot know the keys behind the
    // SAs it finds: it replaces them (outbound SAs resume past the
    // sequence numbers fastpathd reports, see below).
    let mut blind = controller(&gateway1(), State::default());
    let r = sync(&mut blind, &mut fp).unwrap();
    assert_eq!((r.kept, r.added), (0, 8));

    // New keys for one VPN: only its two SAs are replaced.
    let mut c = controller(&gateway1(), state);
    sync(&mut c, &mut fp).unwrap();
    fp.take_log();
    let r =
        command(&mut c, &manual_line(1, 1).replace(AES256_KEY, &format!("ff{}", &AES256_KEY[2..])), &mut fp);
    assert_eq!(r.result, Ok(()));
    assert_eq!(
        names(&fp.take_log()),
        [
            "remove-sa 0x100000000",
            "remove-sa 0x180000000",
            "add-sa 0x100000000 spi 00002011 (Inbound)",
            "add-sa 0x180000000 spi 00001011 (Outbound)",
        ]
    );
}

#[test]
fn unset_and_set_touch_only_their_vpn() {
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    sync(&mut c, &mut fp).unwrap();
    fp.take_log();
    // Pair 22 has sent 1000 packets.
    fp.seqs.insert(sa_id(4, Direction::Outbound, 0), 1000);
    poll_stats(&mut c, &mut fp).unwrap();

    let r = command(&mut c, "unset vpn p22", &mut fp);
    assert_eq!(r.result, Ok(()));
    let log = fp.take_log();
    assert_eq!(
        names(&log),
        ["remove-sa 0x400000000", "remove-sa 0x480000000", "set-vpn 1 (3 proxy-ids, check true)"]
    );
    assert!(offline(&mut c, "get sa").output[0].ends_with(": 3"));

    for line in
        [manual_line(2, 2), "set vpn p22 proxy-id local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 any".to_string()]
    {
        assert_eq!(command(&mut c, &line, &mut fp).result, Ok(()));
    }
    // Not bound yet: nothing to program.
    assert!(fp.take_log().is_empty());
    assert_eq!(command(&mut c, "set vpn p22 id 4 bind interface tunnel.1", &mut fp).result, Ok(()));
    let log = fp.take_log();
    assert_eq!(
        names(&log),
        [
            "set-vpn 1 (4 proxy-ids, check true)",
            "add-sa 0x400000000 spi 00002022 (Inbound)",
            "add-sa 0x480000000 spi 00001022 (Outbound)",
        ]
    );
    // The peer kept its inbound SA and its replay window: the same keys
    // resume past the numbers already used.
    let Request::AddSa(s) = &log[2] else { panic!() };
    assert_eq!(s.last_seq, 1000 + SEQ_MARGIN);
}

#[test]
fn unset_of_one_proxy_id_keeps_the_others_sas() {
    // An AutoKey-style table is changed by unset vpn X proxy-id: with
    // manual-key VPNs the proxy-ID goes with its VPN; here p11 loses its
    // proxy-ID and becomes the route-based default (its SAs re-keyed to
    // the new selectors), the other three stay untouched.
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    sync(&mut c, &mut fp).unwrap();
    fp.take_log();
    let r = command(&mut c, "unset vpn p11 proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any", &mut fp);
    assert_eq!(r.result, Ok(()));
    let log = names(&fp.take_log());
    assert_eq!(
        log,
        [
            "remove-sa 0x100000000",
            "remove-sa 0x180000000",
            "set-vpn 1 (4 proxy-ids, check true)",
            "add-sa 0x100000000 spi 00002011 (Inbound)",
            "add-sa 0x180000000 spi 00001011 (Outbound)",
        ]
    );
}

#[test]
fn a_restarted_fastpathd_is_reprogrammed_with_sequence_numbers_ahead() {
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    sync(&mut c, &mut fp).unwrap();
    assert_eq!(c.take_state_changes().sas.len(), 8, "the installs are persisted");
    fp.seqs.insert(sa_id(2, Direction::Outbound, 0), 5000);
    fp.seqs.insert(sa_id(2, Direction::Inbound, 0), 9000);
    poll_stats(&mut c, &mut fp).unwrap();
    let changes = c.take_state_changes();
    assert_eq!(changes.seqs.len(), 2, "new sequence numbers are persisted: {changes:?}");
    assert_eq!(changes.sas.len(), 2, "and the records of their SAs: {changes:?}");
    assert!(!changes.ids);

    // fastpathd restarts: the connection drops, the new one holds nothing.
    c.fastpath_lost();
    assert!(offline(&mut c, "get sa").output.iter().skip(2).all(|l| l.contains(" I/- ")));
    let mut fresh = FakeFastPath::new();
    let r = sync(&mut c, &mut fresh).unwrap();
    assert_eq!((r.added, r.kept), (8, 0));
    let seqs: BTreeMap<u64, u64> = fresh
        .take_log()
        .iter()
        .filter_map(|r| match r {
            Request::AddSa(s) if s.direction == Direction::Outbound => Some((s.id, s.last_seq)),
            _ => None,
        })
        .collect();
    assert_eq!(seqs[&sa_id(2, Direction::Outbound, 0)], 5000 + SEQ_MARGIN);
    // Never sampled, but installed before: the margin alone.
    assert_eq!(seqs[&sa_id(1, Direction::Outbound, 0)], SEQ_MARGIN);
    assert!(offline(&mut c, "get sa").output.iter().skip(2).all(|l| l.contains(" A/- ")));

    // The same after a restart of both daemons, from the state directory.
    let mut again = controller(&gateway1(), c.state());
    let mut third = FakeFastPath::new();
    sync(&mut again, &mut third).unwrap();
    let resumed = third.take_log().iter().find_map(|r| match r {
        Request::AddSa(s) if s.id == sa_id(2, Direction::Outbound, 0) => Some(s.last_seq),
        _ => None,
    });
    assert_eq!(resumed, Some(5000 + 2 * SEQ_MARGIN));
}

/// The `last_seq` of every SA added, by id.
fn added_seqs(log: &[Request]) -> BTreeMap<u64, u64> {
    log.iter()
        .filter_map(|r| match r {
            Request::AddSa(s) => Some((s.id, s.last_seq)),
            _ => None,
        })
        .collect()
}

/// ESP captured before a fastpathd restart is not accepted after it.
/// Re-installed inbound SAs resume above the highest number accepted at
/// the last reading plus a margin of four times their busiest interval.
#[test]
fn a_restarted_fastpathd_resumes_inbound_windows_above_what_was_accepted() {
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    sync(&mut c, &mut fp).unwrap();
    let busy = sa_id(2, Direction::Inbound, 0);
    let quiet = sa_id(3, Direction::Inbound, 0);
    for (b, q) in [(1000, 5), (1500, 6), (10_000, 7), (10_100, 7)] {
        fp.seqs.insert(busy, b);
        fp.seqs.insert(quiet, q);
        poll_stats(&mut c, &mut fp).unwrap();
    }
    c.fastpath_lost();
    let mut fresh = FakeFastPath::new();
    sync(&mut c, &mut fresh).unwrap();
    let seqs = added_seqs(&fresh.take_log());
    // Busiest interval 8,500 packets: the window starts 34,000 above.
    assert_eq!(seqs[&busy], 10_100 + 4 * 8_500);
    assert_eq!(inbound_margin(8_500), 34_000);
    assert_eq!(seqs[&quiet], 7 + INBOUND_MARGIN_MIN);
    // Installed before, nothing received yet: still not an empty window
    // (packets may have arrived after the last reading).
    assert_eq!(seqs[&sa_id(1, Direction::Inbound, 0)], INBOUND_MARGIN_MIN);

    // A second restart resumes above the first resume point.
    c.fastpath_lost();
    let mut third = FakeFastPath::new();
    sync(&mut c, &mut third).unwrap();
    assert_eq!(added_seqs(&third.take_log())[&busy], 10_100 + 4 * 8_500 + 4 * 8_500);

    // Without ESN the resume point never passes 2^32 - 1 (the SA is then
    // exhausted, fail closed, instead of refused by fastpathd).
    fp.seqs.insert(sa_id(2, Direction::Outbound, 0), u64::from(u32::MAX) - 5);
    let mut d = controller(&gateway1(), State::default());
    let mut fourth = FakeFastPath::new();
    sync(&mut d, &mut fourth).unwrap();
    fourth.seqs.insert(sa_id(2, Direction::Outbound, 0), u64::from(u32::MAX) - 5);
    poll_stats(&mut d, &mut fourth).unwrap();
    d.fastpath_lost();
    let mut fifth = FakeFastPath::new();
    sync(&mut d, &mut fifth).unwrap();
    assert_eq!(added_seqs(&fifth.take_log())[&sa_id(2, Direction::Outbound, 0)], u64::from(u32::MAX));
}

/// A peer's manual-key SA re-installed after an `unset`/`set` resumes
/// SEQ_MARGIN above its last number: our inbound window jumps with one
/// packet. The jump is not traffic; taken as the SA's busiest interval it
/// would resume the window 2^22 above after our next restart and
/// black-hole the peer for millions of packets.
#[test]
fn a_peers_sequence_jump_is_not_counted_as_traffic() {
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    sync(&mut c, &mut fp).unwrap();
    let inbound = sa_id(4, Direction::Inbound, 0);
    for (seq, packets) in [(1000, 1000), (1500, 1500), (1500 + SEQ_MARGIN + 10, 1510)] {
        fp.seqs.insert(inbound, seq);
        fp.packets.insert(inbound, packets);
        poll_stats(&mut c, &mut fp).unwrap();
    }
    c.fastpath_lost();
    let mut fresh = FakeFastPath::new();
    sync(&mut c, &mut fresh).unwrap();
    // The busiest interval is 500 packets, not the jump.
    assert_eq!(added_seqs(&fresh.take_log())[&inbound], 1500 + SEQ_MARGIN + 10 + 4 * 500);
}

/// The sequence numbers of a set of keys are found by the keys, not
/// by the SA id: a VPN renamed (new HEX ID, new SA ids), moved to another
/// proxy-ID, or put back to keys it had before resumes past them.
#[test]
fn the_same_keys_never_restart_their_sequence_numbers() {
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    sync(&mut c, &mut fp).unwrap();
    fp.seqs.insert(sa_id(4, Direction::Outbound, 0), 7000);
    fp.seqs.insert(sa_id(4, Direction::Inbound, 0), 3000);
    poll_stats(&mut c, &mut fp).unwrap();
    fp.take_log();

    // p22 is unset and comes back as "q22" (another HEX ID, so other SA
    // ids) with another proxy-ID, with the same SPIs and keys.
    assert_eq!(command(&mut c, "unset vpn p22", &mut fp).result, Ok(()));
    let line = manual_line(2, 2).replace("vpn p22", "vpn q22");
    for l in [
        line.clone(),
        "set vpn q22 proxy-id local-ip 10.1.2.0/25 remote-ip 10.2.2.0/24 any".to_string(),
        "set vpn q22 id 9 bind interface tunnel.1".to_string(),
    ] {
        assert_eq!(command(&mut c, &l, &mut fp).result, Ok(()), "{l}");
    }
    let seqs = added_seqs(&fp.take_log());
    assert_eq!(seqs[&sa_id(9, Direction::Outbound, 0)], 7000 + SEQ_MARGIN);
    assert_eq!(seqs[&sa_id(9, Direction::Inbound, 0)], 3000 + INBOUND_MARGIN_MIN);

    // New keys (same SPIs), then back to the earlier keys: the earlier
    // keys' numbers are still known although the record of the id moved on.
    let other = line.replace(AES256_KEY, &"cd".repeat(32));
    assert_eq!(command(&mut c, &other, &mut fp).result, Ok(()));
    assert_eq!(added_seqs(&fp.take_log())[&sa_id(9, Direction::Outbound, 0)], 0, "new keys start afresh");
    assert_eq!(command(&mut c, &line, &mut fp).result, Ok(()));
    let seqs = added_seqs(&fp.take_log());
    assert_eq!(seqs[&sa_id(9, Direction::Outbound, 0)], 7000 + 2 * SEQ_MARGIN);
    assert_eq!(seqs[&sa_id(9, Direction::Inbound, 0)], 3000 + 2 * INBOUND_MARGIN_MIN);

    // Another peer address (same SPIs and keys): still the same numbers.
    let moved = line.replace("203.0.113.2", "203.0.113.9");
    assert_eq!(command(&mut c, &moved, &mut fp).result, Ok(()));
    let seqs = added_seqs(&fp.take_log());
    assert_eq!(seqs[&sa_id(9, Direction::Outbound, 0)], 7000 + 3 * SEQ_MARGIN);

    // The state file keeps digests, never keys.
    let text = serde_json::to_string(&c.state()).unwrap();
    assert!(!text.contains(&AES256_KEY[..16]) && !text.contains(&SHA256_KEY[..16]), "{text}");
}

/// A state file of an earlier esprit (records by SA id, no key digests):
/// adopted SAs get their digests, and a re-installed outbound SA still
/// resumes past its recorded number.
#[test]
fn a_state_file_without_key_digests_still_resumes() {
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    sync(&mut c, &mut fp).unwrap();
    let mut old = c.state();
    old.seqs.clear();
    for r in old.sas.values_mut() {
        r.keys.clear();
        r.seq = 500;
    }
    // fastpathd restarted too: nothing to adopt.
    let mut again = controller(&gateway1(), old.clone());
    let mut fresh = FakeFastPath::new();
    sync(&mut again, &mut fresh).unwrap();
    assert_eq!(added_seqs(&fresh.take_log())[&sa_id(2, Direction::Outbound, 0)], 500 + SEQ_MARGIN);
    // controld alone restarted: the adopted SAs get digests and marks.
    let mut adopt = controller(&gateway1(), old);
    assert_eq!(sync(&mut adopt, &mut fp).unwrap().kept, 8);
    let state = adopt.state();
    assert!(state.sas.values().all(|r| !r.keys.is_empty() && state.seqs[&r.keys].seq == 500));
}

/// A state directory that lost its state file: the manual-key SAs of the
/// configuration are refused until new keys are given or the operator
/// confirms; AutoKey is not concerned.
#[test]
fn a_lost_state_file_holds_back_manual_keys_until_confirmed() {
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State { lost: true, ..State::default() });
    let log = c.take_log();
    assert_eq!(log.iter().filter(|l| l.contains("lost controld.json")).count(), 8, "{log:?}");
    assert!(log[0].contains("exec confirm manual-keys") && !log[0].contains(&AES256_KEY[..16]), "{log:?}");
    let r = sync(&mut c, &mut fp).unwrap();
    assert_eq!(r.added, 0);
    fp.take_log();
    assert!(offline(&mut c, "get sa").output.iter().skip(2).all(|l| l.contains(" I/- ")));

    // A restart of controld before the confirmation holds them back too
    // (the new state file has no record of them either).
    let mut again = controller(&gateway1(), c.state());
    assert_eq!(again.take_log().iter().filter(|l| l.contains("lost controld.json")).count(), 8);
    assert_eq!(sync(&mut again, &mut FakeFastPath::new()).unwrap().added, 0);

    // New SPIs and keys for p11: installed at once.
    let line = manual_line(1, 1).replace("2011 1011", "3011 4011").replace(AES256_KEY, &"ab".repeat(32));
    assert_eq!(command(&mut c, &line, &mut fp).result, Ok(()));
    assert_eq!(
        names(&fp.take_log()),
        ["add-sa 0x100000001 spi 00003011 (Inbound)", "add-sa 0x180000001 spi 00004011 (Outbound)"]
    );

    // The operator confirms the others.
    let r = command(&mut c, "exec confirm manual-keys", &mut fp);
    assert_eq!(r.output, ["6 manual-key SA(s) confirmed: installed from sequence number 0"]);
    assert_eq!(added_seqs(&fp.take_log()).len(), 6);
    assert_eq!(
        command(&mut c, "exec confirm manual-keys", &mut fp).output,
        ["no manual-key SA waits for confirmation"]
    );
}

#[test]
fn get_sa_prints_the_seed_table() {
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    sync(&mut c, &mut fp).unwrap();
    let r = command(&mut c, "get sa", &mut fp);
    assert_eq!(
        r.output.join("\n"),
        "\
total configured sa: 4
HEX ID    Gateway          Port Algorithm         SPI      Life:sec    kb Sta   PID vsys
00000001< 203.0.113.2       500 esp:aes256/sha256 00002011    expir unlim A/-    -1 0
00000001> 203.0.113.2       500 esp:aes256/sha256 00001011    expir unlim A/-    -1 0
00000002< 203.0.113.2       500 esp:aes128/sha1   00002012    expir unlim A/-    -1 0
00000002> 203.0.113.2       500 esp:aes128/sha1   00001012    expir unlim A/-    -1 0
00000003< 203.0.113.2       500 esp:aes128/sha1   00002021    expir unlim A/-    -1 0
00000003> 203.0.113.2       500 esp:aes128/sha1   00001021    expir unlim A/-    -1 0
00000004< 203.0.113.2       500 esp:aes256/sha256 00002022    expir unlim A/-    -1 0
00000004> 203.0.113.2       500 esp:aes256/sha256 00001022    expir unlim A/-    -1 0"
    );
}

#[test]
fn the_seed_autokey_vpn_gets_its_table_and_no_sa() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/tests/data/seed-gateway1.conf"
    ))
    .unwrap()
    .replace("port lan0", "port lan1");
    let mut fp = FakeFastPath::new();
    let mut c = controller(&text, State::default());
    sync(&mut c, &mut fp).unwrap();
    let log = fp.take_log();
    assert_eq!(
        names(&log)[..2],
        ["set-vpn 1 (4 proxy-ids, check true)", "set-tunnel tunnel.1 mtu 1400 vpn Some(1)"]
    );
    assert!(!log.iter().any(|r| matches!(r, Request::AddSa(_))));
    let out = offline(&mut c, "get sa").output;
    assert_eq!(out[0], "total configured sa: 4");
    assert_eq!(
        out[2],
        "00000001< 203.0.113.2       500 esp:aes128/sha1   00000000        0 unlim I/-    -1 0"
    );
    // One HEX ID per proxy-ID (KB16008), the VPN's (0x1) for the first.
    assert_eq!(hex_id_column(&out), hex_id_rows(&[1, 2, 3, 4]));
}

#[test]
fn errors_are_the_configuration_crates_and_change_nothing() {
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    sync(&mut c, &mut fp).unwrap();
    fp.take_log();
    let before = c.config().clone();
    let r = command(&mut c, "unset vpn nothere", &mut fp);
    assert_eq!(r.result, Err(r#""unset vpn nothere": vpn "nothere" does not exist"#.into()));
    let r = command(&mut c, "set vpn p11 proxy-id local-ip 10.1.9.0/24 remote-ip 10.2.9.0/24 any", &mut fp);
    assert!(r.result.unwrap_err().contains("already has proxy-id"));
    // Valid for the language, refused by fastpathd (no such device): the
    // previous configuration is restored.
    let r = command(&mut c, "set interface ethernet0/3 port lan9", &mut fp);
    assert!(r.result.as_ref().unwrap_err().contains("no port \"lan9\""), "{r:?}");
    assert_eq!(c.config(), &before);
    assert_eq!(fp.dump.routes.iter().filter(|r| r.prefix == "10.1.2.0/24").count(), 1);
    assert_eq!(
        offline(&mut c, "frobnicate").result.unwrap_err().split(':').next(),
        Some("unknown command \"frobnicate\"")
    );
}

#[test]
fn translation_errors_name_what_and_where() {
    let text = gateway1().replace("set interface ethernet0/2 port wan0", "");
    let (config, _) = Config::load(&text).unwrap();
    let ids4: BTreeMap<String, u32> =
        ["p11", "p12", "p21", "p22"].iter().enumerate().map(|(i, n)| (n.to_string(), i as u32 + 1)).collect();
    let e = translate(&config, &BTreeMap::new(), &ids4).unwrap_err();
    assert_eq!(
        e.to_string(),
        "route 0.0.0.0/0 interface ethernet0/2: interface \"ethernet0/2\" has no Linux device: add set interface ethernet0/2 port NETDEV, or controld --port-map ethernet0/2=NETDEV"
    );
    // --port-map supplies it.
    let map = BTreeMap::from([("ethernet0/2".to_string(), "wan0".to_string())]);
    assert!(translate(&config, &map, &ids4).is_ok());
    // Two manual-key VPNs with one inbound SPI.
    let text = gateway1().replace("manual 2012 1012", "manual 2011 1012");
    let (config, _) = Config::load(&text).unwrap();
    assert_eq!(
        translate(&config, &BTreeMap::new(), &ids4).unwrap_err(),
        TranslateError::SpiCollision { vpn: "p12".into(), spi: 0x2011, other: "p11".into() }
    );
}

#[test]
fn one_manual_vpn_on_a_tunnel_keeps_its_check_setting() {
    let mut text = gateway1();
    for (p, id) in [("p12", 2), ("p21", 3), ("p22", 4)] {
        text = text.replace(
            &format!("set vpn {p} id {id:#x} bind interface tunnel.1"),
            &format!("set vpn {p} id {id:#x}"),
        );
    }
    let (config, _) = Config::load(&text).unwrap();
    let ids: BTreeMap<String, u32> =
        ["p11", "p12", "p21", "p22"].iter().enumerate().map(|(i, n)| (n.to_string(), i as u32 + 1)).collect();
    let t = translate(&config, &BTreeMap::new(), &ids).unwrap();
    // Only p11 is bound: its own check setting (off), its one proxy-ID.
    assert_eq!(t.desired.vpns[&1], (false, vec![pid(1, 1)]));
    assert_eq!(t.desired.sas.len(), 2);
    assert_eq!(t.warnings.len(), 3, "{:?}", t.warnings);
}

#[test]
fn a_new_spi_is_made_before_the_old_sa_is_broken() {
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    sync(&mut c, &mut fp).unwrap();
    fp.take_log();
    fp.seqs.insert(sa_id(1, Direction::Outbound, 0), 1000);
    poll_stats(&mut c, &mut fp).unwrap();

    // Pair 11 gets new SPIs (and keys): new ids, inbound first, the new
    // outbound replaces the old one in fastpathd, then the old SAs go. The
    // old outbound's remove-sa comes after the new outbound: fastpathd's
    // workers already dropped that id, it only clears the record.
    let line = manual_line(1, 1).replace("2011 1011", "3011 4011").replace(AES256_KEY, &"ab".repeat(32));
    assert_eq!(command(&mut c, &line, &mut fp).result, Ok(()));
    let log = fp.take_log();
    assert_eq!(
        names(&log),
        [
            "add-sa 0x100000001 spi 00003011 (Inbound)",
            "add-sa 0x180000001 spi 00004011 (Outbound)",
            "remove-sa 0x100000000",
            "remove-sa 0x180000000",
        ]
    );
    // New keys under a new id: the new outbound starts afresh.
    let Request::AddSa(s) = &log[1] else { panic!() };
    assert_eq!(s.last_seq, 0);
    let sa = offline(&mut c, "get sa").output;
    assert!(
        sa.iter().any(|l| l.starts_with("00000001<") && l.contains("00003011") && l.contains("A/-")),
        "{sa:?}"
    );
    assert_eq!(sync(&mut c, &mut fp).unwrap().requests, 0);

    // A restarted controld computes the same ids and adopts everything.
    let state = c.state();
    let mut second = controller(&gateway1().replace(&manual_line(1, 1), &line), state.clone());
    let r = sync(&mut second, &mut fp).unwrap();
    assert_eq!((r.kept, r.added, r.requests), (8, 0, 0), "{:?}", names(&fp.log));
    assert!(second.sas().is_installed(sa_id(1, Direction::Inbound, 1)));

    // Only the remote SPI changes: only the outbound SA moves on.
    let line2 = line.replace("3011 4011", "3011 5011");
    assert_eq!(command(&mut second, &line2, &mut fp).result, Ok(()));
    assert_eq!(
        names(&fp.take_log()),
        ["add-sa 0x180000002 spi 00005011 (Outbound)", "remove-sa 0x180000001"]
    );

    // Back to the first SPIs and keys: another new id pair (the SPIs of an
    // id never change), still make-before-break.
    assert_eq!(command(&mut second, &manual_line(1, 1), &mut fp).result, Ok(()));
    assert_eq!(
        names(&fp.take_log()),
        [
            "add-sa 0x100000002 spi 00002011 (Inbound)",
            "add-sa 0x180000003 spi 00001011 (Outbound)",
            "remove-sa 0x100000001",
            "remove-sa 0x180000002",
        ]
    );
}

#[test]
fn a_removed_inbound_sa_with_the_spi_of_a_new_one_goes_first() {
    // fastpathd removes inbound SAs by SPI: an old SA under another id with
    // the SPI of a new one (here: state lost, serial moved) must go before
    // the new one comes, or its removal would take the new one.
    let mut fp = FakeFastPath::new();
    let mut c = controller(&gateway1(), State::default());
    sync(&mut c, &mut fp).unwrap();
    fp.take_log();
    let mut state = c.state();
    for (_, serial) in state.manual_serials.values_mut() {
        *serial = 6;
    }
    for (spi, _) in state.manual_serials.values_mut() {
        *spi ^= 0x10_0000;
    }
    let mut c = controller(&gateway1(), state);
    sync(&mut c, &mut fp).unwrap();
    let log = names(&fp.take_log());
    let pos = |s: &str| log.iter().position(|l| l == s).unwrap_or_else(|| panic!("{s} not in {log:?}"));
    assert!(pos("remove-sa 0x100000000") < pos("add-sa 0x100000007 spi 00002011 (Inbound)"));
    assert!(pos("add-sa 0x180000007 spi 00001011 (Outbound)") < pos("remove-sa 0x180000000"));
}

/// The VPN monitor of the golden state (vpn test, destination 10.2.1.10
/// behind pair 1-1, interval 2 s, threshold 3, rekey) loses its probes:
/// the monitored proxy-ID and tunnel.1 go DOWN (KB16008's second rule set:
/// pair 2-2 being up does not count), IKE is asked to renegotiate the pair,
/// and one answer brings both back.
#[test]
fn monitor_down_takes_the_tunnel_interface_down_and_back() {
    use std::time::{Duration, Instant};

    let mut c = golden::golden_controller();
    let mut fp = FakeFastPath::new();
    sync(&mut c, &mut fp).unwrap();
    fp.take_log();
    let line = |c: &mut Controller, cmd: &str, start: &str| {
        let out = offline(c, cmd).output;
        out.iter().find(|l| l.trim_start().starts_with(start)).cloned().unwrap_or_else(|| panic!("{out:?}"))
    };
    assert!(line(&mut c, "get interface tunnel.1", "status")
        .starts_with("  status UP: decided by vpn test's monitor"));

    // Probe 1 was answered (golden state); probes 2, 3, 4 are not.
    let t0 = Instant::now();
    let mut renegotiate = Vec::new();
    for k in 1..=4 {
        renegotiate.extend(monitor_tick(&mut c, t0 + Duration::from_secs(2 * k), &mut fp).unwrap());
    }
    let probes: Vec<u16> = fp
        .take_log()
        .into_iter()
        .filter_map(|r| if let Request::Probe { seq, .. } = r { Some(seq) } else { None })
        .collect();
    assert_eq!(probes, [2, 3, 4, 5]);
    assert_eq!(renegotiate, [sa_id(1, Direction::Outbound, 1)]);
    assert_eq!(
        line(&mut c, "get interface tunnel.1", "status"),
        "  status DOWN: decided by vpn test's monitor (monitor DOWN, destination 10.2.1.10, proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY) (changed 2026-11-27T15:43:38Z)"
    );
    assert!(line(&mut c, "get vpn test", "00000001  local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY")
        .contains(" ANY DOWN "));
    assert!(line(&mut c, "get vpn test", "vpn monitor")
        .starts_with("  vpn monitor DOWN since 2026-11-27T15:43:38Z"));
    assert!(line(&mut c, "get vpn test", "probes").contains("probes sent 5, answered 1"));
    let events = offline(&mut c, "get event").output.join("\n");
    for e in [
        "vpn test: vpn monitor DOWN (was UP): 3 probe(s) in a row unanswered",
        "vpn test proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY: DOWN (was UP)",
        "interface tunnel.1: DOWN (was UP)",
    ] {
        assert!(events.contains(e), "{e}\n{events}");
    }

    // The answer to probe 5 (a late one for probe 4 does not count).
    let reply = |seq| esprit_fastpath_api::FastPathEvent::ProbeReply {
        vpn: 1,
        tunnel: 1,
        sa: sa_id(1, Direction::Inbound, 1),
        src: "10.2.1.10".parse().unwrap(),
        dst: "10.1.1.1".parse().unwrap(),
        ident: crate::core::monitor::MONITOR_IDENT,
        seq,
    };
    c.record_fastpath_event(&reply(4));
    assert!(line(&mut c, "get interface tunnel.1", "status").starts_with("  status DOWN"));
    c.record_fastpath_event(&reply(5));
    assert!(line(&mut c, "get interface tunnel.1", "status").starts_with("  status UP"));
    assert!(offline(&mut c, "get event").output.join("\n").contains("interface tunnel.1: UP (was DOWN)"));

    // Without destination-ip the peer gateway is the destination: it is not
    // behind the tunnel, so esprit does not probe it, and says why.
    assert!(offline(&mut c, "set vpn test monitor rekey").result.is_ok());
    assert_eq!(
        line(&mut c, "get vpn test", "no probes"),
        "    no probes: destination 203.0.113.2 is not routed into tunnel.1: give destination-ip, a host behind the peer"
    );
    assert!(
        line(&mut c, "get interface tunnel.1", "status").starts_with("  status UP: 2 of 4 SA pair(s) active")
    );
}

/// What the monitor probes from and to, and through which proxy-ID, from
/// `set vpn NAME monitor ...`: the defaults, and what it refuses to probe.
#[test]
fn monitor_targets_from_the_configuration() {
    let mut c = golden::golden_controller();
    let line = |c: &mut Controller, start: &str| {
        let out = offline(c, "get vpn test").output;
        out.iter().find(|l| l.trim_start().starts_with(start)).cloned().unwrap_or_else(|| panic!("{out:?}"))
    };
    // No source-interface: the outgoing interface's address, which no
    // proxy-ID covers.
    assert!(offline(&mut c, "set vpn test monitor destination-ip 10.2.2.10").result.is_ok());
    assert_eq!(line(&mut c, "vpn monitor"), "  vpn monitor -: 198.51.100.1 (ethernet0/2) -> 10.2.2.10");
    assert_eq!(
        line(&mut c, "no probes"),
        "    no probes: an echo request from 198.51.100.1 to 10.2.2.10 matches none of the vpn's proxy-IDs"
    );
    // From the second LAN to a host behind the peer's second LAN: pair 2-2.
    let set = "set vpn test monitor source-interface ethernet0/3 destination-ip 10.2.2.10 optimized";
    assert!(offline(&mut c, set).result.is_ok());
    assert_eq!(line(&mut c, "vpn monitor"), "  vpn monitor -: 10.1.2.1 (ethernet0/3) -> 10.2.2.10");
    assert_eq!(line(&mut c, "proxy-id"), "    proxy-id local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 ANY");
    assert_eq!(line(&mut c, "interval"), "    interval 2 s, threshold 3, rekey off, optimized on");
    assert!(line(&mut c, "00000004  local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24").ends_with("(monitored)"));
    // A destination routed out of a port, not into tunnel.1.
    assert!(offline(&mut c, "set vpn test monitor destination-ip 192.0.2.7").result.is_ok());
    assert_eq!(
        line(&mut c, "no probes"),
        "    no probes: destination 192.0.2.7 is not routed into tunnel.1: give destination-ip, a host behind the peer"
    );
    // Gone with `unset`.
    assert!(offline(&mut c, "unset vpn test monitor").result.is_ok());
    assert!(!offline(&mut c, "get vpn test").output.iter().any(|l| l.contains("vpn monitor")));
    let json = offline(&mut c, "get vpn test --json").output.join("\n");
    assert!(json.contains("\"monitor\": null"), "{json}");
}

/// `withdraw-routes` on the golden state: pair 2-2 loses its SAs, so its
/// route (10.2.2.0/24 into tunnel.1) leaves fastpathd's table and the null
/// route behind it takes over; controld asks IKE for the pair at once and
/// every RETRY; the SAs come back and so does the route. READY proxy-IDs
/// (never negotiated) keep their routes. A withdrawn monitored proxy-ID
/// keeps a host route for the monitor's destination.
#[test]
fn withdraw_routes_follows_the_proxy_id_status() {
    use std::time::{Duration, Instant};

    const P11: &str = "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY";
    const P22: &str = "local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 ANY";
    let mut c = golden::golden_controller();
    let mut fp = FakeFastPath::new();
    sync(&mut c, &mut fp).unwrap();
    fp.take_log();
    let routes_sent = |fp: &mut FakeFastPath| -> Option<Vec<String>> {
        fp.take_log().into_iter().rev().find_map(|r| match r {
            Request::SetRoutes { routes } => {
                Some(routes.iter().map(|r| format!("{} {:?}", r.prefix, r.next_hop)).collect())
            }
            _ => None,
        })
    };
    let tunnel1 = |p: &str| format!("{p} Tunnel {{ tunnel: 1 }}");
    let null = |p: &str| format!("{p} Null");
    let route_line = |c: &mut Controller, start: &str| {
        let out = offline(c, "get route").output;
        out.into_iter().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no {start}"))
    };

    assert_eq!(command(&mut c, "set route 10.2.2.0/24 interface null metric 250", &mut fp).result, Ok(()));
    let r = command(&mut c, "set vpn test withdraw-routes", &mut fp);
    assert_eq!(r.result, Ok(()));
    // 10.2.1.0/24 has nothing behind it: while withdrawn, the default
    // route would carry its traffic in clear. 10.2.2.0/24 has the null route.
    let warnings: Vec<&String> = r.output.iter().filter(|l| l.contains("withdraw-routes")).collect();
    assert_eq!(
        warnings,
        ["warning: vpn \"test\" withdraw-routes: route 10.2.1.0/24 interface tunnel.1 has no other route to fall back on: while it is withdrawn its traffic follows a wider route, in clear if that leaves by a port (add set route 10.2.1.0/24 interface null metric 250)"],
        "{:?}",
        r.output
    );
    // Nothing is DOWN (READY pairs keep their routes): the tunnel route
    // wins, the null route waits behind it and fastpathd's table is as it was.
    assert_eq!(routes_sent(&mut fp), None);
    assert!(route_line(&mut c, "  10.2.2.0/24").contains(" null "), "the null route is not installed");
    assert!(!c.take_routes_pending());
    assert!(offline(&mut c, "get vpn test").output[0].ends_with("proxy-id check on, withdraw-routes on"));

    // Pair 2-2 loses its SAs (say the peer deleted them).
    let ids22: Vec<u64> =
        c.wanted().sas.iter().filter(|(_, s)| s.spec.proxy_id == P22).map(|(id, _)| *id).collect();
    let sas22: Vec<_> = ids22.iter().map(|id| c.wanted().sas[id].clone()).collect();
    assert_eq!(ids22.len(), 2);
    ike_update(&mut c, Vec::new(), &ids22, Some(&mut fp)).unwrap();
    assert!(c.take_routes_pending(), "the withdrawal asks for programming");
    sync(&mut c, &mut fp).unwrap();
    let sent = routes_sent(&mut fp).expect("routes reprogrammed");
    assert!(sent.contains(&null("10.2.2.0/24")) && !sent.contains(&tunnel1("10.2.2.0/24")), "{sent:?}");
    assert!(sent.contains(&tunnel1("10.2.1.0/24")), "pair 1-1's route stays: {sent:?}");
    assert_eq!(
        route_line(&mut c, "  10.2.2.0/24"),
        format!(
            "  10.2.2.0/24         tunnel.1      -                static          1 tunnel.1  withdrawn: vpn test proxy-id {P22} DOWN"
        )
    );
    assert!(route_line(&mut c, "* 10.2.2.0/24").contains(" null "), "the null route is installed");
    let vpn = offline(&mut c, "get vpn test").output.join("\n");
    assert!(vpn.contains(&format!("{P22} DOWN ")) && vpn.contains("(routes withdrawn)"), "{vpn}");
    let events = offline(&mut c, "get event").output.join("\n");
    assert!(
        events.contains(&format!(
            "vpn test proxy-id {P22} DOWN: route(s) withdrawn: 10.2.2.0/24 interface tunnel.1"
        )),
        "{events}"
    );
    let json = offline(&mut c, "get route --json").output.join("\n");
    assert!(json.contains(&format!("\"proxy_id\": \"{P22}\"")), "{json}");

    // controld renegotiates it: at once, then every RETRY.
    let t0 = Instant::now();
    assert_eq!(c.withdrawn_to_negotiate(t0), [(1, P22.to_owned(), true)]);
    assert!(c.withdrawn_to_negotiate(t0 + Duration::from_secs(1)).is_empty());
    assert_eq!(
        c.withdrawn_to_negotiate(t0 + crate::core::controller::WITHDRAWN_RETRY),
        [(1, P22.to_owned(), false)]
    );

    // Back up: the route comes back.
    ike_update(&mut c, sas22, &[], Some(&mut fp)).unwrap();
    assert!(c.take_routes_pending());
    sync(&mut c, &mut fp).unwrap();
    let sent = routes_sent(&mut fp).expect("routes reprogrammed");
    assert!(sent.contains(&tunnel1("10.2.2.0/24")), "{sent:?}");
    assert!(c.withdrawn_to_negotiate(t0 + Duration::from_secs(60)).is_empty());
    let events = offline(&mut c, "get event").output.join("\n");
    assert!(
        events.contains(&format!("vpn test proxy-id {P22} no longer DOWN: route(s) restored")),
        "{events}"
    );

    // The monitored pair 1-1 goes: its route goes, without a null route
    // behind it, but the monitor's destination keeps a host route.
    let ids11: Vec<u64> =
        c.wanted().sas.iter().filter(|(_, s)| s.spec.proxy_id == P11).map(|(id, _)| *id).collect();
    ike_update(&mut c, Vec::new(), &ids11, Some(&mut fp)).unwrap();
    sync(&mut c, &mut fp).unwrap();
    let sent = routes_sent(&mut fp).expect("routes reprogrammed");
    assert!(!sent.iter().any(|r| r.starts_with("10.2.1.0/24")), "{sent:?}");
    assert!(sent.contains(&tunnel1("10.2.1.10/32")), "{sent:?}");
    assert!(route_line(&mut c, "* 10.2.1.10/32").contains(" monitor "));

    // `unset vpn test withdraw-routes` puts every route back.
    assert_eq!(command(&mut c, "unset vpn test withdraw-routes", &mut fp).result, Ok(()));
    let sent = routes_sent(&mut fp).expect("routes reprogrammed");
    assert!(sent.contains(&tunnel1("10.2.1.0/24")) && !sent.iter().any(|r| r.contains("/32")), "{sent:?}");
}

/// A controld killed after IKE installed a pair and before `controld.json`
/// recorded it: resumed from the IKE state at start, the pair fastpathd
/// still holds is adopted (no request); if fastpathd restarted too, the
/// outbound SA goes back past sequence number 0, never at 0 under keys
/// that may have carried traffic (DESIGN.md §7).
#[test]
fn resumed_ike_sas_are_adopted_even_without_their_records() {
    let mut fp = FakeFastPath::new();
    let first = golden::golden_controller();
    let ike: Vec<_> = first.ike_sas().values().cloned().collect();
    assert_eq!(ike.len(), 4);
    // fastpathd holds them as the first controld installed them.
    let config = first.config().clone();
    let mut c = Controller::new(config.clone(), None, BTreeMap::new(), State::default()).unwrap();
    sync(&mut c, &mut fp).unwrap();
    for s in &ike {
        fp.answer(Request::AddSa(Box::new(s.spec.clone()))).unwrap();
    }
    fp.take_log();
    // The crash: controld.json without the IKE SAs' records.
    let state = c.state();
    assert!(ike.iter().all(|s| !state.sas.contains_key(&s.spec.id)));
    let mut second = Controller::new(config.clone(), None, BTreeMap::new(), state.clone()).unwrap();
    second.resume_ike_sas(ike.clone());
    let r = sync(&mut second, &mut fp).unwrap();
    assert_eq!((r.added, r.removed), (0, 0), "{:?}", names(&fp.log));
    assert!(names(&fp.take_log()).is_empty(), "nothing re-installed");
    assert!(ike.iter().all(|s| second.sas().is_installed(s.spec.id)));

    // Both daemons restarted: the outbound SAs resume past 0.
    let mut third = Controller::new(config, None, BTreeMap::new(), state).unwrap();
    third.resume_ike_sas(ike.clone());
    let mut empty = FakeFastPath::new();
    sync(&mut third, &mut empty).unwrap();
    let outbound: Vec<u64> = empty
        .take_log()
        .iter()
        .filter_map(|r| match r {
            Request::AddSa(s)
                if s.direction == Direction::Outbound && ike.iter().any(|i| i.spec.id == s.id) =>
            {
                Some(s.last_seq)
            }
            _ => None,
        })
        .collect();
    assert_eq!(outbound, vec![SEQ_MARGIN, SEQ_MARGIN]);
}

/// After the first reading on a connection, controld asks fastpathd only
/// for the SAs whose counters changed since it (`stats-since`), and keeps
/// every SA's counters by merging; a lost connection starts over with a
/// whole reading.
#[test]
fn counters_after_the_first_reading_travel_as_changes() {
    struct Readings {
        asked: Vec<Request>,
        replies: std::collections::VecDeque<Stats>,
    }
    impl Model for Readings {
        fn answer(&mut self, r: Request) -> Result<Reply, FastPathError> {
            self.asked.push(r);
            let s = self.replies.pop_front().ok_or_else(|| refused("no reading left"))?;
            Ok(Reply::Stats(Box::new(s)))
        }
    }
    let sa = |id: u64, worker: u16, packets: u64| SaStatsView {
        id,
        worker,
        packets,
        seq: packets,
        direction: Some(Direction::Inbound),
        ..SaStatsView::default()
    };
    let whole = Stats { sas: vec![sa(1, 0, 5), sa(2, 0, 7), sa(2, 1, 1)], epoch: 41, ..Stats::default() };
    let change = Stats {
        sas: vec![sa(2, 0, 9), sa(3, 1, 1)],
        removed: vec![(1, 0)],
        partial: true,
        epoch: 42,
        ..Stats::default()
    };
    let mut fp = Readings { asked: Vec::new(), replies: [whole.clone(), change, whole].into() };
    let mut c = controller(&gateway1(), State::default());
    poll_stats(&mut c, &mut fp).unwrap();
    poll_stats(&mut c, &mut fp).unwrap();
    assert!(matches!(fp.asked[..], [Request::Stats, Request::StatsSince { epoch: 41 }]), "{:?}", fp.asked);
    let got: Vec<(u64, u16, u64)> = c.stats().sas.iter().map(|s| (s.id, s.worker, s.packets)).collect();
    assert_eq!(got, vec![(2, 0, 9), (2, 1, 1), (3, 1, 1)]);
    assert_eq!((c.stats().epoch, c.stats().partial), (42, false));
    // The connection drops: the next reading is a whole one.
    c.fastpath_lost();
    poll_stats(&mut c, &mut fp).unwrap();
    assert!(matches!(fp.asked[2], Request::Stats), "{:?}", fp.asked);
    assert_eq!(c.stats().sas.len(), 3);
}
