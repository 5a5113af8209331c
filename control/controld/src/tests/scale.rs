//! What one SA pair install costs the core as the number of proxy-IDs
//! grows: a VPN of n proxy-IDs, n - K of them already negotiated (one
//! batch), then K more negotiated one at a time, each timed, as IKE hands
//! them over one Quick Mode at a time. Work per install must not grow
//! with n (the core updates what an install changes, not every pair).
//!
//! ```text
//! cargo test --release -p esprit-controld per_install_cost -- --ignored --nocapture
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use esprit_config::Config;
use esprit_fastpath_api::{Direction, Dump, Reply, Request, Stats};
use esprit_ike::{ChildSa, DirectionKeys, Lifetime, Suite};
use esprit_policy::ProxyId;
use zeroize::Zeroizing;

use super::{ike_update, offline, sync, Model};
use crate::core::controller::{Controller, FastPathError};
use crate::core::state::State;
use crate::core::translate::DesiredSa;
use crate::ike::{child_sa_pair, IkeVpn};

/// Installs timed at each size.
const TIMED: u32 = 100;

/// A fastpathd that keeps its tables in maps, so the fast path model
/// costs O(log n) per request and the timings are the core's.
#[derive(Default)]
struct IndexedFastPath {
    dump: Dump,
    sas: BTreeMap<u64, (Direction, u32, u32, String)>,
    /// The size of every batch given to `requests` (one round trip each
    /// on the socket).
    batches: Vec<usize>,
    /// An SA id whose `AddSa` is refused.
    refuse: Option<u64>,
}

impl Model for IndexedFastPath {
    fn answer(&mut self, r: Request) -> Result<Reply, FastPathError> {
        match r {
            Request::Dump => {
                let mut d = self.dump.clone();
                d.sas = self
                    .sas
                    .iter()
                    .map(|(id, (dir, spi, vpn, p))| (*id, *dir, *spi, *vpn, p.clone()))
                    .collect();
                return Ok(Reply::Dump(Box::new(d)));
            }
            Request::Stats | Request::StatsSince { .. } => return Ok(Reply::Stats(Box::default())),
            Request::SetRoutes { routes } => self.dump.routes = routes,
            Request::SetTunnel { tunnel, mtu, vpn } => {
                self.dump.tunnels.retain(|t| t.0 != tunnel);
                self.dump.tunnels.push((tunnel, mtu, vpn));
            }
            Request::SetVpn { vpn, check, proxy_ids } => {
                self.dump.vpns.retain(|v| v.0 != vpn);
                self.dump.vpns.push((vpn, check, proxy_ids));
            }
            Request::AddSa(s) if self.refuse == Some(s.id) => {
                return Err(FastPathError::Refused { what: "add-sa".into(), reason: "no room".into() });
            }
            Request::AddSa(s) => {
                self.sas.insert(s.id, (s.direction, s.spi, s.vpn, s.proxy_id.clone()));
            }
            Request::RemoveSa { id } => {
                self.sas.remove(&id);
            }
            _ => {}
        }
        Ok(Reply::Ok)
    }

    fn batch(&mut self, n: usize) {
        self.batches.push(n);
    }
}

fn proxy_id(i: u32) -> ProxyId {
    let (hi, lo) = (i >> 8, i & 0xff);
    format!("local-ip 10.1.{hi}.{lo}/32 remote-ip 10.2.{hi}.{lo}/32 ANY").parse().unwrap()
}

fn config(n: u32) -> Config {
    let mut text = String::from(
        "set interface ethernet0/1 zone Trust
set interface ethernet0/1 ip 10.1.0.1/16
set interface ethernet0/1 port lan1
set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 198.51.100.1/24
set interface ethernet0/2 port wan0
set route 0.0.0.0/0 interface ethernet0/2 gateway 198.51.100.254
set ike gateway \"peer\" address 203.0.113.2 Main outgoing-interface \"ethernet0/2\" preshare \"scale-test\" sec-level standard
set vpn \"many\" gateway \"peer\" no-replay tunnel idletime 0 sec-level standard
set vpn \"many\" id 0x1 bind interface tunnel.1
set vpn \"many\" proxy-id check
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set route 10.2.0.0/16 interface tunnel.1
",
    );
    for i in 0..n {
        text.push_str(&format!(
            "set vpn many proxy-id {}\n",
            proxy_id(i).to_string().replace(" ANY", " any")
        ));
    }
    Config::load(&text).unwrap_or_else(|e| panic!("{e}")).0
}

/// The SA pair IKE hands over for proxy-ID `i`.
fn pair(vpn: &IkeVpn, i: u32) -> [DesiredSa; 2] {
    let keys = |b: u8| DirectionKeys {
        encryption: Zeroizing::new(vec![b; 16]),
        integrity: Zeroizing::new(vec![b; 20]),
    };
    let child = ChildSa {
        proxy_id: proxy_id(i),
        suite: Suite::Aes128CbcSha1,
        spi_in: 0xc000_0000 + i,
        spi_out: 0xd000_0000 + i,
        keys_in: keys(0xa1),
        keys_out: keys(0xb2),
        lifetime: Lifetime { seconds: 3600, kilobytes: 0 },
        encap: None,
        local: "198.51.100.1:500".parse().unwrap(),
        remote: "203.0.113.2:500".parse().unwrap(),
        initiator: true,
        message_id: i,
        pfs: false,
        esn: false,
    };
    child_sa_pair(vpn, &child, i + 1).unwrap()
}

/// A controller of one VPN of `n` proxy-IDs, synchronised with an empty
/// fast path, and the VPN as IKE sees it.
fn synced(n: u32) -> (Controller, IndexedFastPath, IkeVpn) {
    let mut c = Controller::new(config(n), None, BTreeMap::new(), State::default()).unwrap();
    let mut fp = IndexedFastPath::default();
    sync(&mut c, &mut fp).unwrap();
    let vpn = IkeVpn {
        name: "many".into(),
        hex_id: 1,
        tunnel: 1,
        proxy_ids: (0..n).map(proxy_id).collect(),
        replay_window: 0,
        idle_secs: 0,
    };
    (c, fp, vpn)
}

/// Microseconds per install with `n` proxy-IDs, the last [`TIMED`] of them
/// installed one at a time.
fn per_install_micros(n: u32) -> f64 {
    let (mut c, mut fp, vpn) = synced(n);
    let first = n - TIMED;
    ike_update(&mut c, (0..first).flat_map(|i| pair(&vpn, i)).collect(), &[], Some(&mut fp)).unwrap();
    let pairs: Vec<_> = (first..n).map(|i| pair(&vpn, i)).collect();
    let start = Instant::now();
    for p in pairs {
        ike_update(&mut c, p.into(), &[], Some(&mut fp)).unwrap();
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(TIMED);
    assert_eq!(fp.sas.len(), 2 * n as usize, "every pair installed");
    c.observe(Stats::default());
    let up = offline(&mut c, "get vpn many").output.iter().filter(|l| l.contains(" UP ")).count();
    assert_eq!(up, n as usize, "every proxy-ID UP");
    micros
}

#[test]
#[ignore = "timing: run in release with --ignored --nocapture"]
fn per_install_cost() {
    for n in [100, 1_000, 10_000] {
        let us = per_install_micros(n);
        println!("n = {n:>6}: {us:>10.1} us per SA pair install ({:.0} installs/s)", 1e6 / us);
    }
}

/// The SAs of one IKE update (a turn's Quick Modes: up to 64 pairs) go to
/// fastpathd in one batch, one round trip on the socket, not one each.
#[test]
fn a_turns_installs_go_in_one_batch() {
    let n = 64;
    let (mut c, mut fp, vpn) = synced(n);
    fp.batches.clear();
    let r = ike_update(&mut c, (0..n).flat_map(|i| pair(&vpn, i)).collect(), &[], Some(&mut fp)).unwrap();
    assert_eq!((r.added, fp.batches.clone()), (128, vec![128]));
    assert_eq!(fp.sas.len(), 128);
}

/// fastpathd refuses one install of a pipelined batch: every reply of the
/// batch is taken in, the accepted SAs are installed, the refused one is
/// not (its proxy-ID is not UP, DESIGN §7), the update reports the
/// refusal, and the next IKE update compares everything with a dump,
/// which sends the refused SA alone.
#[test]
fn a_refused_install_in_a_pipelined_batch_is_never_reported_up() {
    let n = 3;
    let (mut c, mut fp, vpn) = synced(n);
    let sas: Vec<DesiredSa> = (0..n).flat_map(|i| pair(&vpn, i)).collect();
    let refused = sas[3].spec.id;
    fp.refuse = Some(refused);
    fp.batches.clear();
    let r = ike_update(&mut c, sas.clone(), &[], Some(&mut fp));
    assert!(matches!(&r, Err(FastPathError::Refused { reason, .. }) if reason == "no room"), "{r:?}");
    assert_eq!(fp.batches, [6], "one batch, every reply taken in");
    let installed: Vec<bool> = sas.iter().map(|s| c.sas().is_installed(s.spec.id)).collect();
    assert_eq!(installed, [true, true, true, false, true, true]);
    c.observe(Stats::default());
    let vpn_lines = offline(&mut c, "get vpn many").output;
    let up = vpn_lines.iter().filter(|l| l.contains(" UP ")).count();
    assert_eq!(up, 2, "{vpn_lines:?}");
    assert!(!c.in_sync);
    // fastpathd takes it now: a whole comparison sends only that SA.
    fp.refuse = None;
    fp.batches.clear();
    let r = sync(&mut c, &mut fp).unwrap();
    assert_eq!((r.added, r.kept, fp.batches.clone()), (1, 5, vec![1, 1]));
    assert!(c.sas().is_installed(refused));
    c.observe(Stats::default());
    let up = offline(&mut c, "get vpn many").output.iter().filter(|l| l.contains(" UP ")).count();
    assert_eq!(up, 3);
}

/// An IKE update programmed from the SAs it touches sends exactly what a
/// whole synchronisation (dump, plan everything) sends: installs, a rekey
/// (new pair in, old pair superseded), deletes.
#[test]
fn touched_sync_sends_what_a_whole_sync_sends() {
    let n = 4;
    let vpn = IkeVpn {
        name: "many".into(),
        hex_id: 1,
        tunnel: 1,
        proxy_ids: (0..n).map(proxy_id).collect(),
        replay_window: 0,
        idle_secs: 0,
    };
    // Serial s of proxy-ID i: a rekey gives the same proxy-ID a new serial.
    let pair_serial = |i: u32, serial: u32| {
        let mut p = pair(&vpn, i);
        for (d, dir) in p.iter_mut().zip([Direction::Inbound, Direction::Outbound]) {
            d.spec.id = crate::core::translate::sa_id(1, dir, serial);
            d.spec.spi ^= serial << 16;
        }
        p
    };
    let ids = |serial: u32| {
        [Direction::Inbound, Direction::Outbound].map(|d| crate::core::translate::sa_id(1, d, serial))
    };
    let steps: Vec<(Vec<DesiredSa>, Vec<u64>)> = vec![
        (pair_serial(0, 1).into(), vec![]),
        (pair_serial(1, 2).into(), vec![]),
        (pair_serial(2, 3).into(), vec![]),
        // Rekey of proxy-ID 1: the new pair, the old one superseded.
        (pair_serial(1, 4).into(), ids(2).into()),
        // The peer deletes proxy-ID 0's pair.
        (vec![], ids(1).into()),
        (pair_serial(3, 5).into(), vec![]),
    ];
    let run = |whole: bool| {
        let mut c = Controller::new(config(n), None, BTreeMap::new(), State::default()).unwrap();
        let mut fp = super::FakeFastPath::new();
        sync(&mut c, &mut fp).unwrap();
        fp.take_log();
        let mut logs = Vec::new();
        for (add, remove) in &steps {
            if whole {
                c.in_sync = false;
            }
            ike_update(&mut c, add.clone(), remove, Some(&mut fp)).unwrap();
            logs.push(fp.take_log().iter().map(crate::core::controller::describe).collect::<Vec<_>>());
        }
        // The key digests use each controller's own random secret: compare
        // the rest of the records.
        let records: Vec<(u64, String, u64)> =
            c.state().sas.into_iter().map(|(id, r)| (id, r.fingerprint, r.seq)).collect();
        (logs, offline(&mut c, "get vpn many").output, records)
    };
    let (touched, whole) = (run(false), run(true));
    assert_eq!(touched.0, whole.0, "requests per update");
    assert_eq!(touched.1, whole.1, "get vpn");
    assert_eq!(touched.2, whole.2, "persisted SA records");
    // The rekey installed the new pair before removing the old one.
    let heads: Vec<String> =
        touched.0[3].iter().map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(
        heads,
        [
            format!("add-sa {:#x}", ids(4)[0]),
            format!("add-sa {:#x}", ids(4)[1]),
            format!("remove-sa {:#x}", ids(2)[0]),
            format!("remove-sa {:#x}", ids(2)[1]),
        ]
    );
}
