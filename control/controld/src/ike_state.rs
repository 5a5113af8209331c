//! IKE state that survives a restart of controld: `ike.json` in the state
//! directory, beside `controld.json` ([`crate::state`]).
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
//! asks for (see `daemon.rs`): an exchange that completed (ISAKMP SA up or
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
use crate::translate::DesiredSa;

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
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
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
