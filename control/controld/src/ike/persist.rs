//! IKE state that survives a restart of controld: `ike.json` in the state
//! directory, beside `controld.json` ([`crate::core::state`]).
//!
//! It holds, per gateway, the peer's state ([`esprit_ike::PeerState`]: the
//! ISAKMP SA with its cookies and SKEYID chain, the phase-1 IV, the child
//! SPIs it knows, the addresses in use, the DPD sequence number) and, per
//! child SA pair, what controld made of it: its VPN and proxy-ID, its
//! fastpathd SA ids, who initiated it, when it expires, when it is rekeyed
//! and the two SAs with their keys (so that an empty fastpathd can be
//! programmed again); and the SA serials of each VPN and the outbound SAs
//! waiting for [`super::INITIATOR_OUTBOUND_DELAY`]. Monotonic times are
//! wall-clock milliseconds on disk.
//!
//! **Protection.** The file holds keys: it is created with mode 0600 (never
//! wider, not even for an instant: the temporary file is opened with that
//! mode), in the state directory (mode 0700). Nothing of it is ever logged.
//!
//! **Atomicity.** Written to `ike.json.tmp`, fsynced, renamed over
//! `ike.json`, and the directory fsynced (so the rename itself survives a
//! power cut): a crash leaves the old file or the new one, never half.
//!
//! **When.** The daemon writes it before it carries out what an IKE change
//! asks for (see `io/daemon.rs`): an exchange that completed (ISAKMP SA up or
//! down, a child SA up, down, rekeyed or deleted) is on disk before its SAs
//! go to fastpathd and before the message that tells the peer leaves. What
//! changes without an exchange completing (the DPD sequence number) is
//! written at most once a second; [`esprit_ike::persist::DPD_SEQ_MARGIN`]
//! covers what a crash in between loses.
//!
//! **Reading it back.** A file that cannot be read or parsed is moved
//! aside (`ike.json.bad`) and controld starts without IKE state, saying
//! so: the peers renegotiate, as they would have before this file existed,
//! and nothing else is lost. A gateway that is no longer configured, or
//! whose saved state does not fit its configuration, starts afresh; a
//! child SA whose proxy-ID is no longer configured is deleted with the
//! peer.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use esprit_fastpath_api::SaSpec;
use esprit_ike::{PeerState, WallClock};
use serde::{Deserialize, Serialize};

use super::{ChildRecord, IkeAction, IkeManager};
use crate::core::translate::DesiredSa;

/// Name of the IKE state file in the state directory.
pub const IKE_STATE_FILE: &str = "ike.json";
/// The format version written.
pub const IKE_STATE_VERSION: u32 = 1;

/// One SA of a child pair, as fastpathd gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSa {
    /// The SA (keys in hex).
    pub spec: SaSpec,
    /// Its VPN's name.
    pub vpn_name: String,
    /// `esp:aes128/sha1` (what `get sa` shows).
    pub algorithm: String,
}

impl SavedSa {
    fn of(d: &DesiredSa) -> SavedSa {
        SavedSa { spec: d.spec.clone(), vpn_name: d.vpn_name.clone(), algorithm: d.algorithm.clone() }
    }

    fn desired(&self) -> DesiredSa {
        DesiredSa {
            spec: self.spec.clone(),
            vpn_name: self.vpn_name.clone(),
            algorithm: self.algorithm.clone(),
            manual: false,
        }
    }
}

/// One child SA pair of a gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedChild {
    /// Our SPI (the key of the pair).
    pub spi_in: u32,
    /// Its VPN's name.
    pub vpn: String,
    /// Its proxy-ID in ScreenOS words.
    pub proxy_id: String,
    /// fastpathd SA ids (inbound, outbound).
    pub ids: [u64; 2],
    /// We ran the Quick Mode that made it.
    pub initiator: bool,
    /// End of its lifetime in seconds (Unix milliseconds).
    pub expires_unix_ms: Option<u64>,
    /// When its successor is negotiated.
    pub rekey_at_unix_ms: Option<u64>,
    /// Its successor's Quick Mode was running.
    pub rekeying: bool,
    /// Superseded by a rekey: its inbound SA goes at this time.
    pub superseded_unix_ms: Option<u64>,
    /// Its SAs as installed (the outbound one may still be waiting in
    /// `delayed`).
    pub sas: Vec<SavedSa>,
}

/// One gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedGateway {
    /// The IKE peer.
    pub peer: PeerState,
    /// Its child SA pairs.
    pub children: Vec<SavedChild>,
}

/// An outbound SA waiting to be installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedDelayed {
    /// When it is due (Unix milliseconds).
    pub due_unix_ms: u64,
    /// The SA.
    pub sa: SavedSa,
    /// The outbound SAs it replaces.
    pub replaces: Vec<u64>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeStateFile {
    /// [`IKE_STATE_VERSION`].
    pub version: u32,
    /// When it was written (Unix milliseconds).
    pub written_unix_ms: u64,
    /// Every gateway with an ISAKMP SA or child SAs.
    pub gateways: Vec<SavedGateway>,
    /// The last SA serial of each VPN (HEX ID).
    pub serials: BTreeMap<u32, u32>,
    /// Outbound SAs waiting for their delay.
    pub delayed: Vec<SavedDelayed>,
}

/// Why the IKE state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IkeStateError {
    #[error("IKE state file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("IKE state file {path}: not IKE state ({detail})")]
    Format { path: PathBuf, detail: String },
    #[error("IKE state file {path}: format version {version}, this controld reads {IKE_STATE_VERSION}")]
    Version { path: PathBuf, version: u32 },
}

/// What [`load`] found.
#[derive(Debug)]
pub enum Loaded {
    /// No file: nothing to resume.
    Absent,
    /// The saved state.
    State(Box<IkeStateFile>),
    /// The file was unusable: moved aside to `ike.json.bad`; controld
    /// starts without IKE state (the peers renegotiate).
    Discarded(IkeStateError),
}

/// Reads the IKE state of `dir`. Never fails: a file that cannot be used
/// is moved aside and reported ([`Loaded::Discarded`]).
pub fn load(dir: &Path) -> Loaded {
    let path = dir.join(IKE_STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => zeroize::Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Absent,
        Err(source) => return Loaded::Discarded(IkeStateError::Io { path, source }),
    };
    let parsed = serde_json::from_slice::<IkeStateFile>(&bytes)
        .map_err(|e| IkeStateError::Format { path: path.clone(), detail: e.to_string() })
        .and_then(|f| {
            if f.version == IKE_STATE_VERSION {
                Ok(f)
            } else {
                Err(IkeStateError::Version { path: path.clone(), version: f.version })
            }
        });
    match parsed {
        Ok(f) => Loaded::State(Box::new(f)),
        Err(e) => {
            // Kept for a post-mortem, out of the way of the next save.
            let _ = fs::rename(&path, dir.join(format!("{IKE_STATE_FILE}.bad")));
            Loaded::Discarded(e)
        }
    }
}

/// Writes `file` atomically (see the module doc), mode 0600.
pub fn save(dir: &Path, file: &IkeStateFile) -> Result<(), IkeStateError> {
    let path = dir.join(IKE_STATE_FILE);
    let tmp = dir.join(format!("{IKE_STATE_FILE}.tmp"));
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| IkeStateError::Io { path: p, source }
    };
    let bytes = zeroize::Zeroizing::new(
        serde_json::to_vec_pretty(file)
            .map_err(|e| IkeStateError::Format { path: path.clone(), detail: e.to_string() })?,
    );
    // A leftover temporary file may have another mode: start from none.
    let _ = fs::remove_file(&tmp);
    let mut f =
        fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    // The umask can only narrow the mode; make sure it is exactly 0600.
    f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io(&tmp))?;
    f.write_all(&bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// The IKE SAs fastpathd should hold once `pending` is carried out:
/// `current` (the controller's) with `pending`'s installs and removals
/// applied in order.
pub fn after_actions(current: &BTreeMap<u64, DesiredSa>, pending: &[IkeAction]) -> BTreeMap<u64, DesiredSa> {
    let mut sas = current.clone();
    for a in pending {
        match a {
            IkeAction::Install(add) => sas.extend(add.iter().map(|s| (s.spec.id, s.clone()))),
            IkeAction::Remove(ids) => ids.iter().for_each(|id| {
                sas.remove(id);
            }),
            IkeAction::Send(_) | IkeAction::Log(_) => {}
        }
    }
    sas
}

/// What [`IkeManager::restore`] gives back.
#[derive(Debug, Default)]
pub struct Restored {
    /// The IKE SAs fastpathd should hold (for the controller, before its
    /// first synchronisation: fastpathd's copies are adopted).
    pub sas: Vec<DesiredSa>,
    /// Lines for the log (never keys).
    pub log: Vec<String>,
    /// ISAKMP SAs resumed.
    pub isakmp_sas: usize,
    /// Child SA pairs resumed.
    pub children: usize,
}

impl IkeManager {
    /// Everything to save: `installed` is what fastpathd holds or is about
    /// to hold of IKE's SAs ([`after_actions`]). Child SAs half negotiated
    /// (a responder between QM2 and QM3) are left out: their Quick Mode
    /// does not survive a restart.
    pub fn snapshot(&self, clock: &WallClock, installed: &BTreeMap<u64, DesiredSa>) -> IkeStateFile {
        let ms = |t: Option<Instant>| t.map(|t| clock.to_unix_ms(t));
        let mut gateways = Vec::new();
        for g in &self.gateways {
            let peer = g.peer.export_state(clock);
            let children: Vec<SavedChild> = g
                .children
                .iter()
                .filter(|(_, c)| c.pending_outbound.is_none())
                .map(|(spi, c)| SavedChild {
                    spi_in: *spi,
                    vpn: g.vpns.get(c.vpn).map(|v| v.name.clone()).unwrap_or_default(),
                    proxy_id: c.proxy_id.to_string(),
                    ids: c.ids,
                    initiator: c.initiator,
                    expires_unix_ms: ms(c.expires),
                    rekey_at_unix_ms: ms(c.rekey_at),
                    rekeying: c.rekeying,
                    superseded_unix_ms: ms(c.superseded),
                    sas: c.ids.iter().filter_map(|id| installed.get(id)).map(SavedSa::of).collect(),
                })
                .collect();
            if peer.isakmp.is_none() && children.is_empty() {
                continue;
            }
            gateways.push(SavedGateway { peer, children });
        }
        IkeStateFile {
            version: IKE_STATE_VERSION,
            written_unix_ms: clock.to_unix_ms(clock.now),
            gateways,
            serials: self.serials.clone(),
            delayed: self
                .delayed
                .iter()
                .map(|(t, s, r)| SavedDelayed {
                    due_unix_ms: clock.to_unix_ms(*t),
                    sa: SavedSa::of(s),
                    replaces: r.clone(),
                })
                .collect(),
        }
    }

    /// Resumes a saved state (right after [`IkeManager::new`], before
    /// anything else): the ISAKMP SAs and child SAs carry on as if
    /// controld had never stopped. Returns the SAs for the controller.
    pub fn restore(&mut self, file: &IkeStateFile, clock: &WallClock) -> Restored {
        let now = clock.now;
        let at = |ms: Option<u64>| ms.map(|m| clock.from_unix_ms(m));
        let mut out = Restored::default();
        for (hex_id, serial) in &file.serials {
            let s = self.serials.entry(*hex_id).or_insert(0);
            *s = (*s).max(*serial);
        }
        for saved in &file.gateways {
            let name = &saved.peer.name;
            let Some(g) = self.gateways.iter_mut().find(|g| &g.peer.config().name == name) else {
                out.log.push(format!(
                    "IKE state: gateway {name} is no longer configured: its {} child SA(s) are not resumed",
                    saved.children.len()
                ));
                continue;
            };
            if let Err(e) = g.peer.import_state(&saved.peer, clock) {
                out.log.push(format!("IKE state: {e}: gateway {name} starts afresh"));
                continue;
            }
            if saved.peer.isakmp.is_some() {
                out.isakmp_sas += 1;
            }
            for c in &saved.children {
                let vpn = g.vpns.iter().position(|v| v.name == c.vpn);
                let pid = c.proxy_id.parse::<esprit_policy::ProxyId>().ok();
                let fits = match (vpn, pid) {
                    (Some(vi), Some(p)) => g.vpns[vi].proxy_ids.contains(&p),
                    _ => false,
                };
                let whole = c.sas.iter().any(|s| s.spec.id == c.ids[0])
                    && (c.sas.iter().any(|s| s.spec.id == c.ids[1])
                        || file.delayed.iter().any(|d| d.sa.spec.id == c.ids[1]));
                let (Some(vi), Some(proxy_id), true, true) = (vpn, pid, fits, whole) else {
                    // No longer configured (or not whole): deleted with
                    // the peer, not installed.
                    let _ = g.peer.delete_child(now, c.spi_in);
                    out.log.push(format!(
                        "IKE state: gateway {name} vpn {} proxy-id {}: no longer configured: child SA {:08x} deleted",
                        c.vpn, c.proxy_id, c.spi_in
                    ));
                    continue;
                };
                let _ = self.spis.borrow_mut().reserve(c.spi_in);
                // Its successor's Quick Mode did not survive: start
                // another one now.
                let rekey_at = if c.rekeying { Some(now) } else { at(c.rekey_at_unix_ms) };
                g.children.insert(
                    c.spi_in,
                    ChildRecord {
                        vpn: vi,
                        proxy_id,
                        ids: c.ids,
                        initiator: c.initiator,
                        expires: at(c.expires_unix_ms),
                        rekey_at,
                        rekeying: false,
                        superseded: at(c.superseded_unix_ms),
                        pending_outbound: None,
                    },
                );
                out.sas.extend(c.sas.iter().map(SavedSa::desired));
                out.children += 1;
            }
        }
        let known: std::collections::BTreeSet<u64> =
            self.gateways.iter().flat_map(|g| g.children.values().flat_map(|c| c.ids)).collect();
        for d in &file.delayed {
            if known.contains(&d.sa.spec.id) {
                self.delayed.push((clock.from_unix_ms(d.due_unix_ms), d.sa.desired(), d.replaces.clone()));
            }
        }
        out.log.push(format!(
            "IKE state: resumed {} ISAKMP SA(s) and {} child SA pair(s)",
            out.isakmp_sas, out.children
        ));
        out
    }

    /// True (once) when an exchange completed or failed since the last
    /// call: the state must be saved before the resulting actions are
    /// carried out.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::{Duration, SystemTime};

    use esprit_config::Config;
    use esprit_fastpath_api::Direction;

    use super::super::{ike_gateways, IkeAction, IkeManager, RandomFill};
    use super::*;
    use crate::core::spi::SpiAllocator;
    use crate::core::translate::sa_id;

    const CONF_A: &str = r#"set interface ethernet0/2 zone Untrust
set interface ethernet0/2 ip 198.51.100.1/24
set interface tunnel.1 zone Untrust
set interface tunnel.1 ip unnumbered interface ethernet0/2
set ike gateway "gw2" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "s3cret-psk" proposal "pre-g14-aes128-sha"
set vpn "v" gateway "gw2" no-replay tunnel idletime 0 proposal "nopfs-esp-aes128gcm" "nopfs-esp-aes128-sha"
set vpn "v" id 0x5 bind interface tunnel.1
set vpn "v" proxy-id check
set vpn "v" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any
set vpn "v" proxy-id local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24 any
"#;

    fn conf_b() -> String {
        CONF_A
            .replace("198.51.100.1/24", "203.0.113.2/24")
            .replace("\"gw2\" address 203.0.113.2", "\"gw1\" address 198.51.100.1")
            .replace("gateway \"gw2\" no-replay", "gateway \"gw1\" no-replay")
            .replace(
                "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24",
                "local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24",
            )
            .replace(
                "local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24",
                "local-ip 10.2.2.0/24 remote-ip 10.1.2.0/24",
            )
    }

    /// Child SAs of 100 s, an ISAKMP SA of 300 s, DPD every 10 s.
    fn manager(conf: &str, seed: u64) -> IkeManager {
        let (config, _) = Config::load(conf).unwrap();
        let ids = BTreeMap::from([("v".to_string(), 5)]);
        let (mut g, warnings) = ike_gateways(&config, &ids);
        assert!(warnings.is_empty(), "{warnings:?}");
        g[0].config.child_lifetime = esprit_ike::Lifetime { seconds: 100, kilobytes: 0 };
        g[0].config.ike_lifetime = 300;
        g[0].config.dpd_delay = Some(Duration::from_secs(10));
        g[0].config.dpd_retries = 3;
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

    /// One controld: its manager, the IKE SAs its fastpathd holds, what
    /// it asked of fastpathd and logged, and what it sent.
    struct Side {
        m: IkeManager,
        sas: BTreeMap<u64, DesiredSa>,
        fp: Vec<String>,
        logs: Vec<String>,
        sent: usize,
    }

    impl Side {
        fn new(m: IkeManager) -> Side {
            Side { m, sas: BTreeMap::new(), fp: Vec::new(), logs: Vec::new(), sent: 0 }
        }
        fn take(&mut self, acts: Vec<IkeAction>, to: &mut Side, now: Instant) -> bool {
            let mut moved = false;
            for a in acts {
                match a {
                    IkeAction::Send(t) => {
                        moved = true;
                        self.sent += 1;
                        let _ = to.m.handle_datagram(now, t.remote, t.local, &t.bytes);
                    }
                    IkeAction::Install(s) => {
                        self.fp
                            .push(format!("install {:?}", s.iter().map(|d| d.spec.id).collect::<Vec<_>>()));
                        self.sas.extend(s.into_iter().map(|d| (d.spec.id, d)));
                    }
                    IkeAction::Remove(ids) => {
                        self.fp.push(format!("remove {ids:?}"));
                        ids.iter().for_each(|id| {
                            self.sas.remove(id);
                        });
                    }
                    IkeAction::Log(l) => self.logs.push(l),
                }
            }
            moved
        }
    }

    fn pump(now: Instant, a: &mut Side, b: &mut Side) {
        loop {
            let acts = a.m.poll(now);
            let ma = a.take(acts, b, now);
            let acts = b.m.poll(now);
            let mb = b.take(acts, a, now);
            if !ma && !mb {
                return;
            }
        }
    }

    fn run_until(now: &mut Instant, until: Instant, a: &mut Side, b: &mut Side) {
        loop {
            let next = [a.m.poll_timeout(), b.m.poll_timeout()].into_iter().flatten().min();
            let Some(t) = next.filter(|t| *t <= until) else { break };
            *now = t.max(*now);
            a.m.handle_timeout(*now);
            b.m.handle_timeout(*now);
            pump(*now, a, b);
        }
        *now = until;
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("controld-ike-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn cookies(m: &IkeManager, now: Instant) -> Vec<(Option<String>, Option<String>)> {
        m.view(now)
            .gateways
            .iter()
            .map(|g| (g.initiator_cookie.clone(), g.responder_cookie.clone()))
            .collect()
    }

    /// Two controlds up with two child pairs; one is snapshotted through
    /// the file, dropped and built again from it (another random seed:
    /// nothing may depend on the old process). The other side is never
    /// touched: DPD is answered, a child rekey, a phase-1 rekey and a
    /// Delete all work, with no renegotiation.
    #[test]
    fn a_restored_manager_carries_on_with_an_unchanged_peer() {
        let mut a = Side::new(manager(CONF_A, 1));
        let mut b = Side::new(manager(&conf_b(), 2));
        let t0 = Instant::now();
        let mut now = t0;
        for pid in a.m.gateways[0].vpns[0].proxy_ids.clone() {
            a.m.acquire(now, 1, &pid.to_string());
            pump(now, &mut a, &mut b);
        }
        run_until(&mut now, t0 + Duration::from_secs(2), &mut a, &mut b);
        assert_eq!((a.sas.len(), b.sas.len()), (4, 4), "{:?} {:?}", a.fp, b.logs);

        // Snapshot, through the file.
        let dir = temp_dir("resume");
        let clock = WallClock { now, wall: SystemTime::now() };
        let file = a.m.snapshot(&clock, &a.sas);
        assert_eq!(file.gateways.len(), 1);
        assert_eq!(file.gateways[0].children.len(), 2);
        save(&dir, &file).unwrap();
        let mode = fs::metadata(dir.join(IKE_STATE_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.join(format!("{IKE_STATE_FILE}.tmp")).exists());
        let Loaded::State(loaded) = load(&dir) else { panic!("not loaded") };
        assert_eq!(*loaded, file);

        // A new process: later, another random source.
        let before_cookies = cookies(&a.m, now);
        let before_children: Vec<_> =
            a.m.view(now).children.iter().map(|c| (c.proxy_id.clone(), c.ids)).collect();
        let before_sas = a.sas.clone();
        let logs_before = std::mem::take(&mut a.logs);
        drop(a);
        b.fp.clear();
        b.logs.clear();
        now += Duration::from_secs(1);
        let mut fresh = manager(CONF_A, 99);
        let restored = fresh.restore(&loaded, &WallClock { now, wall: clock.wall + Duration::from_secs(1) });
        assert_eq!((restored.isakmp_sas, restored.children), (1, 2), "{:?}", restored.log);
        let mut a = Side::new(fresh);
        a.sas = restored.sas.into_iter().map(|d| (d.spec.id, d)).collect();
        assert_eq!(a.sas, before_sas, "the same SAs, keys included, for fastpathd to adopt");
        assert_eq!(cookies(&a.m, now), before_cookies, "get ike cookies as before");
        let after_children: Vec<_> =
            a.m.view(now).children.iter().map(|c| (c.proxy_id.clone(), c.ids)).collect();
        assert_eq!(after_children, before_children);
        assert!(a.m.acquire(now, 1, &before_children[0].0).contains("already up"), "no renegotiation");
        pump(now, &mut a, &mut b);
        assert!(a.fp.is_empty() && b.fp.is_empty(), "nothing renegotiated: {:?} {:?}", a.fp, b.fp);

        // DPD both ways: the restored side answers the peer's R-U-THERE
        // (under the restored keys and IV) and its own are answered.
        let (sent_a, sent_b) = (a.sent, b.sent);
        run_until(&mut now, t0 + Duration::from_secs(45), &mut a, &mut b);
        assert!(
            a.sent - sent_a >= 3 && b.sent - sent_b >= 3,
            "DPD: a sent {}, b sent {}",
            a.sent - sent_a,
            b.sent - sent_b
        );
        for l in a.logs.iter().chain(&b.logs) {
            assert!(!l.contains("dead") && !l.contains("phase 1 down") && !l.contains("failed"), "{l}");
        }
        assert!(a.fp.is_empty() && b.fp.is_empty(), "{:?} {:?}", a.fp, b.fp);

        // Child rekey by time (a initiated both pairs: 85-90 s).
        run_until(&mut now, t0 + Duration::from_secs(100), &mut a, &mut b);
        let (in3, in4) = (sa_id(5, Direction::Inbound, 3), sa_id(5, Direction::Inbound, 4));
        for s in [&a, &b] {
            assert!(s.fp.iter().any(|f| f.contains(&format!("install [{in3}]"))), "{:?}", s.fp);
            assert!(s.fp.iter().any(|f| f.contains(&format!("install [{in4}]"))), "{:?}", s.fp);
            assert_eq!(s.logs.iter().filter(|l| l.contains("rekeyed: child SA")).count(), 2, "{:?}", s.logs);
        }
        run_until(&mut now, t0 + Duration::from_secs(115), &mut a, &mut b);
        assert_eq!(a.sas.keys().collect::<Vec<_>>(), b.sas.keys().collect::<Vec<_>>());
        assert_eq!(a.sas.len(), 4, "the superseded pairs are deleted on both sides");

        // Phase-1 rekey (a initiated it: at 90% of 300 s).
        let p1 = cookies(&a.m, now);
        run_until(&mut now, t0 + Duration::from_secs(285), &mut a, &mut b);
        assert!(a.logs.iter().any(|l| l.contains("phase 1 rekeyed")), "{:?}", a.logs);
        assert!(b.logs.iter().any(|l| l.contains("phase 1 rekeyed")), "{:?}", b.logs);
        assert_ne!(cookies(&a.m, now), p1);
        assert_eq!(cookies(&a.m, now), cookies(&b.m, now));

        // A Delete from the restored side removes the pair on both.
        let id = *a.sas.keys().next().unwrap();
        assert!(a.m.sa_expired(now, id).unwrap().contains("deleted"));
        let (na, nb) = (a.fp.len(), b.fp.len());
        pump(now, &mut a, &mut b);
        assert!(a.fp[na..].iter().any(|f| f.starts_with("remove")), "{:?}", a.fp);
        assert!(b.fp[nb..].iter().any(|f| f.starts_with("remove")), "{:?}", b.fp);
        assert_eq!(a.sas.keys().collect::<Vec<_>>(), b.sas.keys().collect::<Vec<_>>());
        assert_eq!(a.sas.len(), 2);
        // Nothing was renegotiated before the rekeys, and no key reached
        // a log line.
        assert!(logs_before.iter().chain(&a.logs).all(|l| !l.contains("psk") && !l.contains("s3cret")));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A corrupt or truncated file (or one of another version) is moved
    /// aside with an error that names it; controld starts without IKE
    /// state, and the next save works.
    #[test]
    fn corrupt_or_truncated_file_is_set_aside() {
        let dir = temp_dir("corrupt");
        assert!(matches!(load(&dir), Loaded::Absent));
        let m = manager(CONF_A, 3);
        let clock = WallClock::read();
        let good = serde_json::to_vec(&m.snapshot(&clock, &BTreeMap::new())).unwrap();
        let mut other_version: serde_json::Value = serde_json::from_slice(&good).unwrap();
        other_version["version"] = 7.into();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() / 2].to_vec(), "not IKE state (EOF while parsing"),
            (b"\x00\xff garbage".to_vec(), "not IKE state (expected value"),
            (b"{\"version\":1}".to_vec(), "not IKE state (missing field"),
            (serde_json::to_vec(&other_version).unwrap(), "format version 7, this controld reads 1"),
        ];
        for (bytes, want) in cases {
            fs::write(dir.join(IKE_STATE_FILE), &bytes).unwrap();
            let Loaded::Discarded(e) = load(&dir) else { panic!("{want}: not discarded") };
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("IKE state file {}", dir.join(IKE_STATE_FILE).display())),
                "{text}"
            );
            assert!(text.contains(want), "{text} does not say {want}");
            assert!(!dir.join(IKE_STATE_FILE).exists());
            assert_eq!(fs::read(dir.join(format!("{IKE_STATE_FILE}.bad"))).unwrap(), bytes);
            assert!(matches!(load(&dir), Loaded::Absent));
        }
        save(&dir, &m.snapshot(&clock, &BTreeMap::new())).unwrap();
        assert!(matches!(load(&dir), Loaded::State(_)));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A saved ISAKMP SA with a damaged key, or a gateway that is gone,
    /// starts that gateway afresh (logged, no panic); keys never appear
    /// in what is logged.
    #[test]
    fn a_state_that_does_not_fit_starts_the_gateway_afresh() {
        let mut a = Side::new(manager(CONF_A, 4));
        let mut b = Side::new(manager(&conf_b(), 5));
        let now = Instant::now();
        let pid = a.m.gateways[0].vpns[0].proxy_ids[0].to_string();
        a.m.acquire(now, 1, &pid);
        pump(now, &mut a, &mut b);
        let clock = WallClock { now, wall: SystemTime::now() };
        let file = a.m.snapshot(&clock, &a.sas);
        let mut broken = file.clone();
        broken.gateways[0].peer.isakmp.as_mut().unwrap().skeyid_a.0.truncate(5);
        let mut fresh = manager(CONF_A, 6);
        let r = fresh.restore(&broken, &clock);
        assert_eq!((r.isakmp_sas, r.children, r.sas.len()), (0, 0, 0));
        assert!(r.log[0].contains("peer gw2: saved state: ISAKMP SA: SKEYID_a is 5 bytes"), "{:?}", r.log);
        assert!(!fresh.gateways[0].peer.is_established());
        let mut renamed = file.clone();
        renamed.gateways[0].peer.name = "gone".into();
        let r = manager(CONF_A, 7).restore(&renamed, &clock);
        assert!(r.log[0].contains("gateway gone is no longer configured"), "{:?}", r.log);
        let text = serde_json::to_string(&file).unwrap();
        let key = hex::encode(a.sas.values().next().unwrap().spec.encr_key.as_bytes());
        assert!(text.contains(&key), "the file holds the keys");
        assert!(r.log.iter().all(|l| !l.contains(&key)));
    }
}
