//! IKE state that survives a restart of controld: a snapshot, `ike.json`,
//! and an append-only journal, `ike.journal`, in the state directory,
//! beside `controld.json` ([`crate::core::state`]).
//!
//! **What.** Per gateway, the peer's state ([`esprit_ike::PeerState`]: the
//! ISAKMP SA with its cookies and SKEYID chain, the phase-1 IV, the
//! message IDs it used, the child SPIs it knows, the addresses in use, the
//! DPD sequence number) and, per child SA pair, what controld made of it:
//! its VPN and proxy-ID, its fastpathd SA ids, who initiated it, when it
//! expires, when it is rekeyed; the SAs themselves with their keys (so
//! that an empty fastpathd can be programmed again); the SA serials of
//! each VPN and the outbound SAs waiting for
//! [`super::INITIATOR_OUTBOUND_DELAY`]. Monotonic times are wall-clock
//! milliseconds on disk.
//!
//! **Snapshot and journal.** `ike.json` is the whole state at one moment
//! ([`IkeStateFile`], JSON). `ike.journal` holds what changed since, as
//! keyed upserts and removals of the smallest units that change
//! ([`Record`]): one peer without its children and message IDs, the
//! message IDs used since the last record, one child as the peer knows it,
//! one child pair as controld knows it, one SA, one delayed outbound SA,
//! one VPN serial. A completed exchange appends the few records it changed,
//! never the whole state: all the records of one turn of the core in ONE
//! write followed by ONE `fdatasync`. Loading is the snapshot with the
//! journal replayed over it, which gives the same [`IkeStateFile`] as a
//! snapshot taken at the last append.
//!
//! **Framing.** As every journal of the state directory
//! ([`crate::journal`]): length, kind and checksum per record, only whole
//! appends count, a torn last append is dropped and cut off on load with
//! a log line; damage with valid frames after it is corruption of data
//! that was on disk: both files are moved aside (`.bad`) and controld
//! starts without IKE state, as below.
//!
//! **Compaction.** When the journal is over [`COMPACT_OVER`] bytes and
//! larger than the snapshot, the whole state is written as a new snapshot
//! and the journal starts again empty, in two atomic steps: the snapshot
//! (generation n + 1) replaces the old one, then an empty journal of
//! generation n + 1 replaces the old journal. A crash between the two
//! leaves a journal of generation n beside a snapshot of n + 1: it is
//! ignored, the snapshot holds all of it. Cost: a compaction writes the
//! snapshot, O(state), but only after at least as many journal bytes
//! (and at least 4 MiB) were appended, each paid for by one change; so
//! the amortised cost of an event is O(what it changed): at most one
//! snapshot byte serialised and written per journal byte appended, twice
//! the append's own cost. controld also writes a snapshot when it starts
//! (after loading) and when it stops.
//!
//! **Protection.** Both files hold keys: they are created with mode 0600
//! (never wider, not even for an instant: the temporary files are opened
//! with that mode), in the state directory (mode 0700). Nothing of them is
//! ever logged.
//!
//! **Atomicity.** A snapshot or a new journal is written to a temporary
//! file, fsynced, renamed over the old one, and the directory fsynced (so
//! the rename itself survives a power cut): a crash leaves the old file or
//! the new one, never half. An append is durable when its `fdatasync`
//! returns.
//!
//! **When.** The core writes before it carries out what an IKE change asks
//! for (see `core/engine.rs`): an exchange that completed (ISAKMP SA up or
//! down, a child SA up, down, rekeyed or deleted) is on disk before its SAs
//! go to fastpathd and before the message that tells the peer leaves. What
//! changes without an exchange completing (the DPD sequence number, a
//! rekey time) is written at most once a second;
//! [`esprit_ike::persist::DPD_SEQ_MARGIN`] covers what a crash in between
//! loses.
//!
//! **Reading it back.** A snapshot that cannot be read or parsed, or a
//! journal corrupt before its tail, is moved aside (`ike.json.bad`,
//! `ike.journal.bad`) and controld starts without IKE state, saying so:
//! the peers renegotiate, as they would have before these files existed,
//! and nothing else is lost. Snapshots of format version 1 (written before
//! the journal existed) are read as generation 0. A gateway that is no
//! longer configured, or whose saved state does not fit its configuration,
//! starts afresh; a child SA whose proxy-ID is no longer configured is
//! deleted with the peer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use esprit_fastpath_api::SaSpec;
use esprit_ike::persist::MESSAGE_IDS_KEPT;
use esprit_ike::{ChildState, PeerState, WallClock};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{ChildRecord, GatewayState, IkeAction, IkeManager};
use crate::core::translate::DesiredSa;
use crate::journal::{self, JournalRecord};

/// Name of the IKE snapshot in the state directory.
pub const IKE_STATE_FILE: &str = "ike.json";
/// Name of the IKE journal in the state directory.
pub const IKE_JOURNAL_FILE: &str = "ike.journal";
/// The format version written (1: a snapshot alone, no generation).
pub const IKE_STATE_VERSION: u32 = 2;
/// The journal is compacted once it is over this size and larger than the
/// snapshot.
pub const COMPACT_OVER: u64 = 4 << 20;

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
    /// `delayed`). Empty in a journal record: the SAs have their own.
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

/// The whole state: the snapshot's content, and what loading gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeStateFile {
    /// [`IKE_STATE_VERSION`].
    pub version: u32,
    /// The journal that goes with it is of the same generation (version
    /// 1 files: 0).
    #[serde(default)]
    pub generation: u64,
    /// When it was written (Unix milliseconds).
    pub written_unix_ms: u64,
    /// Every gateway with an ISAKMP SA or child SAs.
    pub gateways: Vec<SavedGateway>,
    /// The last SA serial of each VPN (HEX ID).
    pub serials: BTreeMap<u32, u32>,
    /// Outbound SAs waiting for their delay.
    pub delayed: Vec<SavedDelayed>,
}

/// One change, as the journal holds it: a keyed upsert or removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// The first record of every journal.
    Begin { version: u32, generation: u64 },
    /// A peer, without its children and message IDs (both empty).
    Peer(PeerState),
    /// Message IDs used under the gateway's ISAKMP SA (its initiator
    /// cookie), oldest first, since the last such record.
    MessageIds { gateway: String, icookie: u64, ids: Vec<u32> },
    /// A child SA the peer knows of.
    PeerChild { gateway: String, child: ChildState },
    /// The peer no longer knows this child SA.
    PeerChildGone { gateway: String, spi_in: u32 },
    /// A child SA pair (its `sas` empty: each SA is a record).
    Child { gateway: String, child: SavedChild },
    /// The child SA pair is gone.
    ChildGone { gateway: String, spi_in: u32 },
    /// An SA IKE installed (keyed by its fastpathd id).
    Sa(SavedSa),
    /// The SA is removed.
    SaGone { id: u64 },
    /// An outbound SA waiting for its delay (keyed by its id).
    Delayed(SavedDelayed),
    /// It is installed or dropped.
    DelayedGone { id: u64 },
    /// A VPN's last SA serial.
    Serial { hex_id: u32, serial: u32 },
    /// The gateway is gone (reconfigured): everything of it.
    GatewayGone { gateway: String },
}

/// Why the IKE state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IkeStateError {
    #[error("IKE state file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("IKE state file {path}: not IKE state ({detail})")]
    Format { path: PathBuf, detail: String },
    #[error(
        "IKE state file {path}: format version {version}, this controld reads 1 and {IKE_STATE_VERSION}"
    )]
    Version { path: PathBuf, version: u32 },
}

/// What [`load`] found.
#[derive(Debug)]
pub enum Loaded {
    /// No file: nothing to resume.
    Absent,
    /// The saved state.
    State(Box<IkeStateFile>),
    /// The files were unusable: moved aside to `.bad`; controld starts
    /// without IKE state (the peers renegotiate).
    Discarded(IkeStateError),
}

impl JournalRecord for Record {
    fn begin(&self) -> Option<(u32, u64)> {
        match self {
            Record::Begin { version, generation } => Some((*version, *generation)),
            _ => None,
        }
    }
}

/// The framing of the state directory's journals (a peer's 8,192
/// message IDs take about 90 KB of a record, under the bound).
pub fn encode(records: &[Record]) -> Zeroizing<Vec<u8>> {
    journal::encode(records)
}

fn read_journal(bytes: &[u8]) -> Result<journal::JournalRead<Record>, String> {
    journal::read(bytes, IKE_STATE_VERSION)
}

/// The state as keyed maps: a snapshot is taken apart into it, journal
/// records are applied to it, and it is put together again.
#[derive(Debug, Default)]
struct Model {
    generation: u64,
    written_unix_ms: u64,
    gateways: BTreeMap<String, ModelGateway>,
    sas: BTreeMap<u64, SavedSa>,
    serials: BTreeMap<u32, u32>,
    delayed: BTreeMap<u64, SavedDelayed>,
}

#[derive(Debug, Default)]
struct ModelGateway {
    /// Without children and message IDs.
    peer: Option<PeerState>,
    /// The ISAKMP SA's initiator cookie and its message IDs.
    message_ids: Option<(u64, VecDeque<u32>)>,
    peer_children: BTreeMap<u32, ChildState>,
    /// Their `sas` empty.
    children: BTreeMap<u32, SavedChild>,
}

fn icookie_of(p: &PeerState) -> Option<u64> {
    p.isakmp.as_ref().map(|i| u64::from_be_bytes(i.icookie))
}

impl Model {
    fn of(file: IkeStateFile) -> Model {
        let mut m = Model {
            generation: file.generation,
            written_unix_ms: file.written_unix_ms,
            serials: file.serials,
            ..Model::default()
        };
        m.delayed = file.delayed.into_iter().map(|d| (d.sa.spec.id, d)).collect();
        for g in file.gateways {
            let mut peer = g.peer;
            let ids = peer.isakmp.as_mut().map(|i| std::mem::take(&mut i.message_ids));
            let mg = ModelGateway {
                message_ids: icookie_of(&peer).zip(ids).map(|(c, ids)| (c, ids.into())),
                peer_children: std::mem::take(&mut peer.children)
                    .into_iter()
                    .map(|c| (c.spi_in, c))
                    .collect(),
                children: g
                    .children
                    .into_iter()
                    .map(|mut c| {
                        m.sas.extend(std::mem::take(&mut c.sas).into_iter().map(|s| (s.spec.id, s)));
                        (c.spi_in, c)
                    })
                    .collect(),
                peer: Some(peer),
            };
            m.gateways.insert(mg.peer.as_ref().map(|p| p.name.clone()).unwrap_or_default(), mg);
        }
        m
    }

    fn apply(&mut self, r: Record) {
        match r {
            Record::Begin { .. } => {}
            Record::Peer(p) => {
                let g = self.gateways.entry(p.name.clone()).or_default();
                if g.message_ids.as_ref().map(|(c, _)| *c) != icookie_of(&p) {
                    g.message_ids = None;
                }
                g.peer = Some(p);
            }
            Record::MessageIds { gateway, icookie, ids } => {
                let g = self.gateways.entry(gateway).or_default();
                match &mut g.message_ids {
                    Some((c, old)) if *c == icookie => old.extend(ids),
                    other => *other = Some((icookie, ids.into())),
                }
                if let Some((_, ids)) = &mut g.message_ids {
                    let over = ids.len().saturating_sub(MESSAGE_IDS_KEPT);
                    ids.drain(..over);
                }
            }
            Record::PeerChild { gateway, child } => {
                self.gateways.entry(gateway).or_default().peer_children.insert(child.spi_in, child);
            }
            Record::PeerChildGone { gateway, spi_in } => {
                if let Some(g) = self.gateways.get_mut(&gateway) {
                    g.peer_children.remove(&spi_in);
                }
            }
            Record::Child { gateway, child } => {
                self.gateways.entry(gateway).or_default().children.insert(child.spi_in, child);
            }
            Record::ChildGone { gateway, spi_in } => {
                if let Some(g) = self.gateways.get_mut(&gateway) {
                    g.children.remove(&spi_in);
                }
            }
            Record::Sa(s) => {
                self.sas.insert(s.spec.id, s);
            }
            Record::SaGone { id } => {
                self.sas.remove(&id);
            }
            Record::Delayed(d) => {
                self.delayed.insert(d.sa.spec.id, d);
            }
            Record::DelayedGone { id } => {
                self.delayed.remove(&id);
            }
            Record::Serial { hex_id, serial } => {
                self.serials.insert(hex_id, serial);
            }
            Record::GatewayGone { gateway } => {
                self.gateways.remove(&gateway);
            }
        }
    }

    /// The state as a snapshot holds it: gateways by name, children by
    /// SPI, delayed SAs by id (what [`IkeManager::restore`] needs; a
    /// snapshot written by the manager may list them in another order).
    fn into_file(self) -> IkeStateFile {
        let sas = self.sas;
        let mut gateways = Vec::new();
        for (_, g) in self.gateways {
            let Some(mut peer) = g.peer else { continue };
            let children: Vec<SavedChild> = g
                .children
                .into_values()
                .map(|mut c| {
                    c.sas = c.ids.iter().filter_map(|id| sas.get(id).cloned()).collect();
                    c
                })
                .collect();
            if peer.isakmp.is_none() && children.is_empty() {
                continue;
            }
            if let (Some(i), Some((c, ids))) = (peer.isakmp.as_mut(), g.message_ids) {
                if u64::from_be_bytes(i.icookie) == c {
                    i.message_ids = ids.into();
                }
            }
            peer.children = g.peer_children.into_values().collect();
            gateways.push(SavedGateway { peer, children });
        }
        IkeStateFile {
            version: IKE_STATE_VERSION,
            generation: self.generation,
            written_unix_ms: self.written_unix_ms,
            gateways,
            serials: self.serials,
            delayed: self.delayed.into_values().collect(),
        }
    }
}

/// `file` as [`load`] gives it back (gateways by name, children by SPI,
/// delayed SAs by id): two states are the same when these are equal.
pub fn normalised(file: IkeStateFile) -> IkeStateFile {
    Model::of(file).into_file()
}

/// Which of the two files a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Snapshot,
    Journal,
}

/// Why the bytes of the two files do not make a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Not IKE state (what is wrong, where).
    Format(Which, String),
    /// A snapshot of a format version this controld does not read.
    Version(u32),
}

/// What [`load_bytes`] makes of the two files.
#[derive(Debug)]
pub struct FromBytes {
    /// The state (`None`: neither file holds any).
    pub state: Option<IkeStateFile>,
    /// The journal's length once a torn last append is cut off (`None`:
    /// keep it as it is).
    pub truncate_journal: Option<usize>,
    /// Lines for the log.
    pub notes: Vec<String>,
}

/// The state held by a snapshot and a journal (either may be missing):
/// the snapshot with the journal's whole appends replayed over it. Pure:
/// [`load`] reads the files and acts on the verdict.
pub fn load_bytes(snapshot: Option<&[u8]>, journal: Option<&[u8]>) -> Result<FromBytes, Unusable> {
    let mut out = FromBytes { state: None, truncate_journal: None, notes: Vec::new() };
    let base = match snapshot {
        None => None,
        Some(b) => {
            let f = serde_json::from_slice::<IkeStateFile>(b)
                .map_err(|e| Unusable::Format(Which::Snapshot, e.to_string()))?;
            if f.version != 1 && f.version != IKE_STATE_VERSION {
                return Err(Unusable::Version(f.version));
            }
            Some(f)
        }
    };
    let base_generation = base.as_ref().map_or(0, |f| f.generation);
    let mut model = base.map(Model::of);
    if let Some(bytes) = journal {
        let read = read_journal(bytes).map_err(|e| Unusable::Format(Which::Journal, e))?;
        if read.whole < bytes.len() {
            out.truncate_journal = Some(read.whole);
            out.notes.push(format!(
                "IKE state: the journal's last {} byte(s) are a torn append (controld stopped while writing it; nothing had acted on it): dropped",
                bytes.len() - read.whole
            ));
        }
        match read.generation {
            None => {}
            Some(g) if g < base_generation => out.notes.push(format!(
                "IKE state: journal of generation {g}, older than the snapshot's {base_generation} (a compaction was interrupted): ignored"
            )),
            Some(g) if g > base_generation => {
                let what = if snapshot.is_some() { "newer than the snapshot's" } else { "and no snapshot, of" };
                return Err(Unusable::Format(
                    Which::Journal,
                    format!("journal of generation {g}, {what} generation {base_generation}"),
                ));
            }
            Some(_) if read.records.is_empty() => {}
            Some(_) => {
                let m = model.get_or_insert_with(Model::default);
                for r in read.records {
                    m.apply(r);
                }
            }
        }
    }
    out.state = model.map(Model::into_file);
    Ok(out)
}

fn read_optional(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, IkeStateError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(Zeroizing::new(b))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IkeStateError::Io { path: path.to_owned(), source }),
    }
}

/// Reads the IKE state of `dir` (snapshot and journal), with lines for
/// the log. Never fails: files that cannot be used are moved aside and
/// reported ([`Loaded::Discarded`]); a torn last append is cut off the
/// journal.
pub fn load(dir: &Path) -> (Loaded, Vec<String>) {
    let snapshot_path = dir.join(IKE_STATE_FILE);
    let journal_path = dir.join(IKE_JOURNAL_FILE);
    let set_aside = || {
        // Kept for a post-mortem, out of the way of the next write.
        for name in [IKE_STATE_FILE, IKE_JOURNAL_FILE] {
            let _ = fs::rename(dir.join(name), dir.join(format!("{name}.bad")));
        }
    };
    let read = read_optional(&snapshot_path).and_then(|s| Ok((s, read_optional(&journal_path)?)));
    let (snapshot, journal) = match read {
        Ok(r) => r,
        Err(e) => {
            set_aside();
            return (Loaded::Discarded(e), Vec::new());
        }
    };
    match load_bytes(snapshot.as_deref().map(|b| &b[..]), journal.as_deref().map(|b| &b[..])) {
        Ok(mut r) => {
            if let Some(len) = r.truncate_journal {
                r.notes.extend(journal::cut(&journal_path, len));
            }
            let loaded = r.state.map_or(Loaded::Absent, |f| Loaded::State(Box::new(f)));
            (loaded, r.notes)
        }
        Err(u) => {
            set_aside();
            let e = match u {
                Unusable::Version(version) => IkeStateError::Version { path: snapshot_path, version },
                Unusable::Format(Which::Snapshot, detail) => {
                    IkeStateError::Format { path: snapshot_path, detail }
                }
                Unusable::Format(Which::Journal, detail) => {
                    IkeStateError::Format { path: journal_path, detail }
                }
            };
            (Loaded::Discarded(e), Vec::new())
        }
    }
}

/// Writes `bytes` to `dir`/`name` atomically (see [`journal::write_atomically`]).
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<fs::File, IkeStateError> {
    journal::write_atomically(dir, name, bytes).map_err(|(path, source)| IkeStateError::Io { path, source })
}

/// The snapshot's bytes (compact JSON).
fn snapshot_bytes(file: &IkeStateFile) -> Zeroizing<Vec<u8>> {
    // Plain data: serialising it cannot fail.
    Zeroizing::new(serde_json::to_vec(file).unwrap_or_default())
}

/// Writes `file` as the snapshot of `dir` and starts an empty journal of
/// its generation (both atomically, in that order).
pub fn save(dir: &Path, file: &IkeStateFile) -> Result<(), IkeStateError> {
    DirStore::new(dir).replace(file.generation, &snapshot_bytes(file))
}

/// Where the IKE state goes: the state directory ([`DirStore`]), or
/// memory in tests.
pub trait IkeStore {
    /// Appends one append's frames to the journal and makes them durable
    /// (one write, one `fdatasync`).
    fn append(&mut self, frames: &[u8]) -> Result<(), IkeStateError>;
    /// Replaces the snapshot with `snapshot` (of `generation`), then
    /// starts an empty journal of that generation.
    fn replace(&mut self, generation: u64, snapshot: &[u8]) -> Result<(), IkeStateError>;
}

/// The IKE state in the state directory.
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
    /// The journal, open for appends (after a failed write: none until
    /// the next snapshot starts a new one).
    journal: Option<fs::File>,
}

impl DirStore {
    /// The store of `dir`; the first write must be a snapshot.
    pub fn new(dir: &Path) -> DirStore {
        DirStore { dir: dir.to_owned(), journal: None }
    }
}

impl IkeStore for DirStore {
    fn append(&mut self, frames: &[u8]) -> Result<(), IkeStateError> {
        let path = self.dir.join(IKE_JOURNAL_FILE);
        let Some(f) = self.journal.as_mut() else {
            let source = std::io::Error::other("no journal open since a failed write");
            return Err(IkeStateError::Io { path, source });
        };
        let r = f.write_all(frames).and_then(|()| f.sync_data());
        r.map_err(|source| {
            // What reached the file is unknown: nothing more is appended
            // to it; the next snapshot starts another.
            self.journal = None;
            IkeStateError::Io { path, source }
        })
    }

    fn replace(&mut self, generation: u64, snapshot: &[u8]) -> Result<(), IkeStateError> {
        self.journal = None;
        write_atomically(&self.dir, IKE_STATE_FILE, snapshot)?;
        let begin = encode(&[Record::Begin { version: IKE_STATE_VERSION, generation }]);
        self.journal = Some(write_atomically(&self.dir, IKE_JOURNAL_FILE, &begin)?);
        Ok(())
    }
}

/// The IKE SAs fastpathd holds once `pending` is carried out: `current`
/// (the controller's) with `pending`'s installs and removals over it. Costs
/// O(pending) to make, then a lookup per SA.
#[derive(Debug)]
pub struct SasAfter<'a> {
    current: &'a BTreeMap<u64, DesiredSa>,
    changes: BTreeMap<u64, Option<&'a DesiredSa>>,
}

impl<'a> SasAfter<'a> {
    /// `current` with `pending` applied in order.
    pub fn new(current: &'a BTreeMap<u64, DesiredSa>, pending: &'a [IkeAction]) -> SasAfter<'a> {
        let mut changes = BTreeMap::new();
        for a in pending {
            match a {
                IkeAction::Install(add) => changes.extend(add.iter().map(|s| (s.spec.id, Some(s)))),
                IkeAction::Remove(ids) => changes.extend(ids.iter().map(|id| (*id, None))),
                IkeAction::Send(_) | IkeAction::Log(_) => {}
            }
        }
        SasAfter { current, changes }
    }

    /// The SA `id`, if fastpathd holds it then.
    pub fn get(&self, id: u64) -> Option<&'a DesiredSa> {
        match self.changes.get(&id) {
            Some(change) => *change,
            None => self.current.get(&id),
        }
    }
}

/// What of a gateway changed since the last write.
#[derive(Debug, Default)]
pub(super) struct GatewayDirty {
    /// Child SA pairs (by inbound SPI) inserted, changed or removed.
    pub(super) children: BTreeSet<u32>,
    /// Children the peer learnt (`Some`) or forgot (`None`).
    pub(super) peer_children: BTreeMap<u32, Option<ChildState>>,
}

/// What of the manager changed since the last write, and what the last
/// writes hold of each peer.
#[derive(Debug, Default)]
pub(super) struct Dirty {
    /// Gateways dropped by a reconfiguration.
    pub(super) gone: Vec<String>,
    /// Delayed outbound SAs (by id) added or removed.
    pub(super) delayed: BTreeSet<u64>,
    /// VPNs (HEX ID) whose serial moved.
    pub(super) serials: BTreeSet<u32>,
    /// Each peer as last written (without children and message IDs).
    written: BTreeMap<String, PeerState>,
    /// Each peer's last message ID written, with its ISAKMP SA's cookie.
    message_ids: BTreeMap<String, ([u8; 8], u32)>,
}

impl GatewayState {
    /// The child SA pair `spi` changed: written at the next turn.
    pub(super) fn touch(&mut self, spi: u32) {
        self.dirty.children.insert(spi);
        self.due.set(None);
    }
}

/// Writes the IKE state: appends what changed at each turn, and a new
/// snapshot when the journal has grown enough (see the module doc).
pub struct IkeWriter {
    store: Box<dyn IkeStore>,
    generation: u64,
    journal_len: u64,
    snapshot_len: u64,
    compact_over: u64,
    /// A write failed: the next one is a snapshot.
    broken: bool,
    /// SAs installed or removed by turns that wrote nothing.
    sas: BTreeSet<u64>,
}

impl core::fmt::Debug for IkeWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IkeWriter")
            .field("generation", &self.generation)
            .field("journal_len", &self.journal_len)
            .field("snapshot_len", &self.snapshot_len)
            .finish_non_exhaustive()
    }
}

impl IkeWriter {
    /// A writer to `store`, whose state (as loaded) is of `generation`.
    pub fn new(store: Box<dyn IkeStore>, generation: u64) -> IkeWriter {
        IkeWriter {
            store,
            generation,
            journal_len: 0,
            snapshot_len: 0,
            compact_over: COMPACT_OVER,
            broken: true,
            sas: BTreeSet::new(),
        }
    }

    /// Compacts once the journal is over `bytes` (tests: small).
    pub fn set_compact_over(&mut self, bytes: u64) {
        self.compact_over = bytes;
    }

    /// The journal's size and the snapshot's, in bytes.
    pub fn sizes(&self) -> (u64, u64) {
        (self.journal_len, self.snapshot_len)
    }

    /// The last write failed: the next write is a snapshot.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Writes the whole state as a new snapshot and starts an empty
    /// journal. Returns a line for the log if it failed.
    pub fn snapshot(
        &mut self,
        ike: &mut IkeManager,
        clock: &WallClock,
        now: Instant,
        sas: &SasAfter<'_>,
    ) -> Option<String> {
        let mut file = ike.snapshot(clock, sas);
        file.generation = self.generation + 1;
        file.written_unix_ms = clock.to_unix_ms(now);
        let bytes = snapshot_bytes(&file);
        match self.store.replace(file.generation, &bytes) {
            Ok(()) => {
                self.generation = file.generation;
                self.snapshot_len = bytes.len() as u64;
                let begin = Record::Begin { version: IKE_STATE_VERSION, generation: file.generation };
                self.journal_len = encode(&[begin]).len() as u64;
                self.broken = false;
                self.sas.clear();
                ike.written_whole(clock, &file);
                None
            }
            Err(e) => {
                self.broken = true;
                Some(format!("error: {e} (tried again at the next write)"))
            }
        }
    }

    /// One turn of the core: `pending` are the IKE actions about to be
    /// carried out, `current` the IKE SAs before them. With `write`, what
    /// changed since the last write is appended (or a snapshot is written,
    /// when due); without, the SAs `pending` touches are remembered for
    /// the next write. Returns a line for the log if a write failed.
    pub fn turn(
        &mut self,
        ike: &mut IkeManager,
        clock: &WallClock,
        now: Instant,
        current: &BTreeMap<u64, DesiredSa>,
        pending: &[IkeAction],
        write: bool,
    ) -> Option<String> {
        if !write {
            for a in pending {
                match a {
                    IkeAction::Install(add) => self.sas.extend(add.iter().map(|s| s.spec.id)),
                    IkeAction::Remove(ids) => self.sas.extend(ids.iter().copied()),
                    IkeAction::Send(_) | IkeAction::Log(_) => {}
                }
            }
            return None;
        }
        if self.broken || (self.journal_len > self.compact_over && self.journal_len > self.snapshot_len) {
            return self.snapshot(ike, clock, now, &SasAfter::new(current, pending));
        }
        let mut records = ike.journal_records(clock);
        // Earlier turns' SAs are in `current` already; this turn's follow
        // in the order they are carried out (a later record wins).
        for id in std::mem::take(&mut self.sas) {
            records.push(current.get(&id).map_or(Record::SaGone { id }, |d| Record::Sa(SavedSa::of(d))));
        }
        for a in pending {
            match a {
                IkeAction::Install(add) => records.extend(add.iter().map(|d| Record::Sa(SavedSa::of(d)))),
                IkeAction::Remove(ids) => records.extend(ids.iter().map(|id| Record::SaGone { id: *id })),
                IkeAction::Send(_) | IkeAction::Log(_) => {}
            }
        }
        if records.is_empty() {
            return None;
        }
        let frames = encode(&records);
        match self.store.append(&frames) {
            Ok(()) => {
                self.journal_len += frames.len() as u64;
                None
            }
            Err(e) => {
                self.broken = true;
                Some(format!("error: {e} (the next write is a snapshot)"))
            }
        }
    }
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

fn saved_child(
    g: &GatewayState,
    spi: u32,
    c: &ChildRecord,
    clock: &WallClock,
    sas: Vec<SavedSa>,
) -> SavedChild {
    let ms = |t: Option<Instant>| t.map(|t| clock.to_unix_ms(t));
    SavedChild {
        spi_in: spi,
        vpn: g.vpns.get(c.vpn).map(|v| v.name.clone()).unwrap_or_default(),
        proxy_id: c.proxy_id.to_string(),
        ids: c.ids,
        initiator: c.initiator,
        expires_unix_ms: ms(c.expires),
        rekey_at_unix_ms: ms(c.rekey_at),
        rekeying: c.rekeying,
        superseded_unix_ms: ms(c.superseded),
        sas,
    }
}

impl IkeManager {
    /// Everything to save: `sas` is what fastpathd holds or is about to
    /// hold of IKE's SAs. Child SAs half negotiated (a responder between
    /// QM2 and QM3) are left out: their Quick Mode does not survive a
    /// restart. O(state): for compaction and the writes at start and stop.
    pub fn snapshot(&self, clock: &WallClock, sas: &SasAfter<'_>) -> IkeStateFile {
        let mut gateways = Vec::new();
        for g in &self.gateways {
            // IKEv2 state is not saved (yet): after a restart its gateway
            // negotiates afresh, with INITIAL_CONTACT (RFC 7296 §2.4).
            let Some(peer) = g.peer.as_v1() else { continue };
            let peer = peer.export_state(clock);
            let children: Vec<SavedChild> = g
                .children
                .iter()
                .filter(|(_, c)| c.pending_outbound.is_none())
                .map(|(spi, c)| {
                    let installed = c.ids.iter().filter_map(|id| sas.get(*id)).map(SavedSa::of).collect();
                    saved_child(g, *spi, c, clock, installed)
                })
                .collect();
            if peer.isakmp.is_none() && children.is_empty() {
                continue;
            }
            gateways.push(SavedGateway { peer, children });
        }
        IkeStateFile {
            version: IKE_STATE_VERSION,
            generation: 0,
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

    /// The records of what changed since the last write (see
    /// [`Record`]), and they count as written. O(what changed) and a
    /// comparison per gateway.
    pub fn journal_records(&mut self, clock: &WallClock) -> Vec<Record> {
        let mut out = Vec::new();
        let d = &mut self.dirty;
        for gateway in d.gone.drain(..) {
            d.written.remove(&gateway);
            d.message_ids.remove(&gateway);
            out.push(Record::GatewayGone { gateway });
        }
        for g in &mut self.gateways {
            let Some(peer) = g.peer.as_v1() else {
                // Not saved (see `snapshot`).
                g.dirty = GatewayDirty::default();
                continue;
            };
            let header = peer.export_header(clock);
            let name = header.name.clone();
            if d.written.get(&name) != Some(&header) {
                d.written.insert(name.clone(), header.clone());
                out.push(Record::Peer(header));
            }
            let after = d.message_ids.get(&name).copied();
            if let Some((icookie, ids)) = peer.message_ids_after(after) {
                if let Some(&last) = ids.last() {
                    d.message_ids.insert(name.clone(), (icookie, last));
                    let icookie = u64::from_be_bytes(icookie);
                    out.push(Record::MessageIds { gateway: name.clone(), icookie, ids });
                }
            }
            for (spi_in, child) in std::mem::take(&mut g.dirty.peer_children) {
                let gateway = name.clone();
                out.push(match child {
                    Some(child) => Record::PeerChild { gateway, child },
                    None => Record::PeerChildGone { gateway, spi_in },
                });
            }
            for spi_in in std::mem::take(&mut g.dirty.children) {
                let gateway = name.clone();
                match g.children.get(&spi_in) {
                    // Half negotiated: not written (see `snapshot`).
                    Some(c) if c.pending_outbound.is_some() => {}
                    Some(c) => {
                        let child = saved_child(g, spi_in, c, clock, Vec::new());
                        out.push(Record::Child { gateway, child });
                    }
                    None => out.push(Record::ChildGone { gateway, spi_in }),
                }
            }
        }
        for id in std::mem::take(&mut d.delayed) {
            out.push(match self.delayed.iter().find(|(_, s, _)| s.spec.id == id) {
                Some((t, s, r)) => Record::Delayed(SavedDelayed {
                    due_unix_ms: clock.to_unix_ms(*t),
                    sa: SavedSa::of(s),
                    replaces: r.clone(),
                }),
                None => Record::DelayedGone { id },
            });
        }
        for hex_id in std::mem::take(&mut d.serials) {
            let serial = self.serials.get(&hex_id).copied().unwrap_or(0);
            out.push(Record::Serial { hex_id, serial });
        }
        out
    }

    /// `file`, a snapshot of the manager, is written: nothing is dirty,
    /// and the peers it holds are written as they are.
    fn written_whole(&mut self, clock: &WallClock, file: &IkeStateFile) {
        let kept: BTreeSet<&str> = file.gateways.iter().map(|g| g.peer.name.as_str()).collect();
        let d = &mut self.dirty;
        d.gone.clear();
        d.delayed.clear();
        d.serials.clear();
        d.written.clear();
        d.message_ids.clear();
        for g in &mut self.gateways {
            g.dirty = GatewayDirty::default();
            let Some(peer) = g.peer.as_v1() else { continue };
            let header = peer.export_header(clock);
            if !kept.contains(header.name.as_str()) {
                // Not in the snapshot: written whole at the next turn.
                continue;
            }
            if let Some((icookie, ids)) = peer.message_ids_after(None) {
                if let Some(&last) = ids.last() {
                    d.message_ids.insert(header.name.clone(), (icookie, last));
                }
            }
            d.written.insert(header.name.clone(), header);
        }
    }

    /// Drops the delayed outbound SAs among `ids`.
    pub(super) fn drop_delayed(&mut self, ids: &[u64]) {
        let dirty = &mut self.dirty.delayed;
        self.delayed.retain(|(_, s, _)| {
            let keep = !ids.contains(&s.spec.id);
            if !keep {
                dirty.insert(s.spec.id);
            }
            keep
        });
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
            let Some(peer) = g.peer.as_v1_mut() else {
                out.log.push(format!("IKE state: gateway {name} speaks IKEv2 now: it starts afresh"));
                continue;
            };
            if let Err(e) = peer.import_state(&saved.peer, clock) {
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
                // A pair a rekey superseded has only its inbound SA left
                // (its outbound one was replaced): that is all it needs
                // until it retires.
                let whole = c.sas.iter().any(|s| s.spec.id == c.ids[0])
                    && (c.superseded_unix_ms.is_some()
                        || c.sas.iter().any(|s| s.spec.id == c.ids[1])
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

/// The IKE state in memory, for tests: a snapshot and a journal as the
/// files would hold them, shared between a core and the test.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub(crate) struct MemStore(pub(crate) std::rc::Rc<std::cell::RefCell<MemFiles>>);

#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct MemFiles {
    pub(crate) snapshot: Option<Vec<u8>>,
    pub(crate) journal: Option<Vec<u8>>,
    /// Appends and snapshots written.
    pub(crate) appends: usize,
    pub(crate) snapshots: usize,
    /// The next writes fail.
    pub(crate) fail: bool,
}

#[cfg(test)]
impl MemStore {
    /// What a restart would load.
    pub(crate) fn load(&self) -> Loaded {
        let f = self.0.borrow();
        match load_bytes(f.snapshot.as_deref(), f.journal.as_deref()) {
            Ok(r) => r.state.map_or(Loaded::Absent, |s| Loaded::State(Box::new(s))),
            Err(u) => Loaded::Discarded(IkeStateError::Format {
                path: PathBuf::from("memory"),
                detail: format!("{u:?}"),
            }),
        }
    }
}

#[cfg(test)]
impl IkeStore for MemStore {
    fn append(&mut self, frames: &[u8]) -> Result<(), IkeStateError> {
        let mut f = self.0.borrow_mut();
        if f.fail {
            let source = std::io::Error::other("disk full");
            return Err(IkeStateError::Io { path: PathBuf::from("memory"), source });
        }
        f.appends += 1;
        f.journal.get_or_insert_with(Vec::new).extend_from_slice(frames);
        Ok(())
    }

    fn replace(&mut self, generation: u64, snapshot: &[u8]) -> Result<(), IkeStateError> {
        let mut f = self.0.borrow_mut();
        if f.fail {
            let source = std::io::Error::other("disk full");
            return Err(IkeStateError::Io { path: PathBuf::from("memory"), source });
        }
        f.snapshots += 1;
        f.snapshot = Some(snapshot.to_vec());
        f.journal = Some(encode(&[Record::Begin { version: IKE_STATE_VERSION, generation }]).to_vec());
        Ok(())
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
    use crate::journal::{checksum, FRAME_HEADER, KIND_LAST};
    use std::os::unix::fs::PermissionsExt;

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
        manager_with(conf, seed, true)
    }

    fn manager_with(conf: &str, seed: u64, announce_esprit: bool) -> IkeManager {
        let (config, _) = Config::load(conf).unwrap();
        let ids = BTreeMap::from([("v".to_string(), 5)]);
        let (mut g, warnings) = ike_gateways(&config, &ids);
        assert!(warnings.is_empty(), "{warnings:?}");
        g[0].config.child_lifetime = esprit_ike::Lifetime { seconds: 100, kilobytes: 0 };
        g[0].config.ike_lifetime = 300;
        g[0].config.dpd_delay = Some(Duration::from_secs(10));
        g[0].config.dpd_retries = 3;
        g[0].config.announce_esprit = announce_esprit;
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
    /// it asked of fastpathd and logged, and what it sent; and its IKE
    /// state as the core writes it (a journal after every turn), checked
    /// after every turn against a snapshot of the manager.
    struct Side {
        m: IkeManager,
        sas: BTreeMap<u64, DesiredSa>,
        fp: Vec<String>,
        logs: Vec<String>,
        sent: usize,
        clock: WallClock,
        store: MemStore,
        writer: IkeWriter,
        /// Turns whose journal was checked against a snapshot.
        checked: usize,
    }

    impl Side {
        fn new(mut m: IkeManager) -> Side {
            let clock = WallClock { now: Instant::now(), wall: SystemTime::now() };
            let store = MemStore::default();
            let mut writer = IkeWriter::new(Box::new(store.clone()), 0);
            let empty = BTreeMap::new();
            assert_eq!(writer.snapshot(&mut m, &clock, clock.now, &SasAfter::new(&empty, &[])), None);
            let sas = BTreeMap::new();
            Side { m, sas, fp: Vec::new(), logs: Vec::new(), sent: 0, clock, store, writer, checked: 0 }
        }

        /// What the journal and snapshot hold equals a snapshot of the
        /// manager once `acts` are carried out.
        fn check_written(&mut self, now: Instant, acts: &[IkeAction]) {
            assert_eq!(self.writer.turn(&mut self.m, &self.clock, now, &self.sas, acts, true), None);
            let Loaded::State(written) = self.store.load() else { panic!("nothing written") };
            let mut want = normalised(self.m.snapshot(&self.clock, &SasAfter::new(&self.sas, acts)));
            want.generation = written.generation;
            want.written_unix_ms = written.written_unix_ms;
            assert_eq!(*written, want, "turn {}: the journal replayed is not the state", self.checked);
            self.checked += 1;
        }

        fn take(&mut self, acts: Vec<IkeAction>, to: &mut Side, now: Instant) -> bool {
            self.check_written(now, &acts);
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

    /// A (CONF_A, seeded `seed_a`) and B, with A's two proxy-IDs acquired
    /// and negotiated for `settle`; returns the sides and the start.
    fn both_up(seed_a: u64, seed_b: u64, settle: Duration) -> (Side, Side, Instant) {
        let mut a = Side::new(manager(CONF_A, seed_a));
        // b does not announce esprit: a's outbound SAs wait for
        // INITIATOR_OUTBOUND_DELAY, and the journal must carry them.
        let mut b = Side::new(manager_with(&conf_b(), seed_b, false));
        let t0 = Instant::now();
        let mut now = t0;
        for pid in a.m.gateways[0].vpns[0].proxy_ids.clone() {
            a.m.acquire(now, 1, &pid.to_string());
            pump(now, &mut a, &mut b);
        }
        run_until(&mut now, t0 + settle, &mut a, &mut b);
        (a, b, t0)
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
        // Files are created 0600 whatever the umask (see `write_atomically`).
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
        let (mut a, mut b, t0) = both_up(1, 2, Duration::from_secs(2));
        let mut now = t0 + Duration::from_secs(2);
        assert_eq!((a.sas.len(), b.sas.len()), (4, 4), "{:?} {:?}", a.fp, b.logs);

        // Snapshot, through the file.
        let dir = temp_dir("resume");
        let clock = WallClock { now, wall: SystemTime::now() };
        let file = a.m.snapshot(&clock, &SasAfter::new(&a.sas, &[]));
        assert_eq!(file.gateways.len(), 1);
        assert_eq!(file.gateways[0].children.len(), 2);
        save(&dir, &file).unwrap();
        for name in [IKE_STATE_FILE, IKE_JOURNAL_FILE] {
            let mode = fs::metadata(dir.join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
            assert!(!dir.join(format!("{name}.tmp")).exists());
        }
        let (Loaded::State(loaded), notes) = load(&dir) else { panic!("not loaded") };
        assert_eq!(notes, Vec::<String>::new());
        assert_eq!(*loaded, normalised(file.clone()));
        // The journal written all along (a's own, turn after turn) gives
        // the same state.
        let Loaded::State(journaled) = a.store.load() else { panic!("no journal") };
        assert!(a.checked >= 8, "{} turns checked", a.checked);
        // (Times differ only by the two clocks used.)
        let keys = |f: &IkeStateFile| {
            let g = &f.gateways[0];
            let children: Vec<_> = g.children.iter().map(|c| (c.spi_in, c.ids, c.sas.clone())).collect();
            (g.peer.children.clone(), g.peer.isakmp.as_ref().map(|i| i.message_ids.clone()), children)
        };
        assert_eq!(keys(&journaled), keys(&loaded));

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
        // The snapshot a core writes at start, with the SAs resumed.
        let clock_a = a.clock;
        assert_eq!(a.writer.snapshot(&mut a.m, &clock_a, now, &SasAfter::new(&a.sas, &[])), None);
        assert_eq!(a.sas, before_sas, "the same SAs, keys included, for fastpathd to adopt");
        assert_eq!(cookies(&a.m, now), before_cookies, "get ike cookies as before");
        let after_children: Vec<_> =
            a.m.view(now).children.iter().map(|c| (c.proxy_id.clone(), c.ids)).collect();
        assert_eq!(after_children, before_children);
        assert!(a.m.acquire(now, 1, &before_children[0].0).line.contains("already up"), "no renegotiation");
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
        assert!(a.checked > 20 && b.checked > 20, "{} {}", a.checked, b.checked);
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
        assert!(matches!(load(&dir).0, Loaded::Absent));
        let m = manager(CONF_A, 3);
        let clock = WallClock::read();
        let none = BTreeMap::new();
        let good = serde_json::to_vec(&m.snapshot(&clock, &SasAfter::new(&none, &[]))).unwrap();
        let mut other_version: serde_json::Value = serde_json::from_slice(&good).unwrap();
        other_version["version"] = 7.into();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() / 2].to_vec(), "not IKE state (EOF while parsing"),
            (b"\x00\xff garbage".to_vec(), "not IKE state (expected value"),
            (b"{\"version\":1}".to_vec(), "not IKE state (missing field"),
            (serde_json::to_vec(&other_version).unwrap(), "format version 7, this controld reads 1 and 2"),
        ];
        for (bytes, want) in cases {
            fs::write(dir.join(IKE_STATE_FILE), &bytes).unwrap();
            let Loaded::Discarded(e) = load(&dir).0 else { panic!("{want}: not discarded") };
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("IKE state file {}", dir.join(IKE_STATE_FILE).display())),
                "{text}"
            );
            assert!(text.contains(want), "{text} does not say {want}");
            assert!(!dir.join(IKE_STATE_FILE).exists());
            assert_eq!(fs::read(dir.join(format!("{IKE_STATE_FILE}.bad"))).unwrap(), bytes);
            assert!(matches!(load(&dir).0, Loaded::Absent));
        }
        save(&dir, &m.snapshot(&clock, &SasAfter::new(&none, &[]))).unwrap();
        assert!(matches!(load(&dir).0, Loaded::State(_)));
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
        let file = a.m.snapshot(&clock, &SasAfter::new(&a.sas, &[]));
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

    /// Two managers with one child pair up (a initiated it), a's state
    /// as a snapshot, and the peer's name.
    fn one_pair() -> (Side, Side, Instant, IkeStateFile) {
        let mut a = Side::new(manager(CONF_A, 11));
        let mut b = Side::new(manager(&conf_b(), 12));
        let t0 = Instant::now();
        let mut now = t0;
        let pid = a.m.gateways[0].vpns[0].proxy_ids[0].to_string();
        a.m.acquire(now, 1, &pid);
        pump(now, &mut a, &mut b);
        run_until(&mut now, t0 + Duration::from_secs(1), &mut a, &mut b);
        assert_eq!(a.sas.len(), 2);
        let file = normalised(a.m.snapshot(&a.clock, &SasAfter::new(&a.sas, &[])));
        (a, b, now, file)
    }

    fn journal(generation: u64, appends: &[Vec<Record>]) -> Vec<u8> {
        let mut j = encode(&[Record::Begin { version: IKE_STATE_VERSION, generation }]).to_vec();
        for a in appends {
            j.extend_from_slice(&encode(a));
        }
        j
    }

    fn state(snapshot: &IkeStateFile, journal: &[u8]) -> IkeStateFile {
        let s = serde_json::to_vec(snapshot).unwrap();
        load_bytes(Some(&s), Some(journal)).unwrap().state.unwrap()
    }

    /// Keyed upserts and removals replay in order: an upsert then a
    /// removal (in one append or two) leaves nothing; a removal then an
    /// upsert leaves the upsert; a gateway gone takes everything of it.
    #[test]
    fn upserts_and_removals_replay_in_order() {
        let (a, _b, _now, file) = one_pair();
        let gw = "gw2".to_string();
        let child = file.gateways[0].children[0].clone();
        let spi = child.spi_in;
        let [in_id, out_id] = child.ids;
        assert_eq!(state(&file, &journal(0, &[])), file, "an empty journal changes nothing");

        let gone = vec![
            Record::ChildGone { gateway: gw.clone(), spi_in: spi },
            Record::PeerChildGone { gateway: gw.clone(), spi_in: spi },
            Record::SaGone { id: in_id },
            Record::SaGone { id: out_id },
        ];
        let s = state(&file, &journal(0, std::slice::from_ref(&gone)));
        assert!(s.gateways[0].children.is_empty() && s.gateways[0].peer.children.is_empty());
        assert!(s.gateways[0].peer.isakmp.is_some(), "the ISAKMP SA stays");

        // Changed, then gone; and gone, then back (changed).
        let mut changed = child.clone();
        changed.rekeying = true;
        changed.sas.clear();
        let up = Record::Child { gateway: gw.clone(), child: changed.clone() };
        let s = state(&file, &journal(0, &[vec![up.clone()]]));
        assert!(s.gateways[0].children[0].rekeying);
        assert_eq!(s.gateways[0].children[0].sas, child.sas, "its SAs are their own records");
        let mut both = vec![up.clone()];
        both.extend(gone.clone());
        assert!(state(&file, &journal(0, &[both])).gateways[0].children.is_empty());
        assert!(state(&file, &journal(0, &[vec![up.clone()], gone.clone()])).gateways[0].children.is_empty());
        let mut back = gone.clone();
        back.push(up.clone());
        back.push(Record::Sa(child.sas[0].clone()));
        let s = state(&file, &journal(0, &[back]));
        assert_eq!(s.gateways[0].children.len(), 1);
        assert_eq!(s.gateways[0].children[0].sas, vec![child.sas[0].clone()], "only the SA put back");

        // Delayed SAs and serials.
        let delayed = SavedDelayed { due_unix_ms: 5, sa: child.sas[1].clone(), replaces: vec![7] };
        let s = state(
            &file,
            &journal(0, &[vec![Record::Delayed(delayed.clone()), Record::Serial { hex_id: 5, serial: 9 }]]),
        );
        assert_eq!((s.delayed.clone(), s.serials[&5]), (vec![delayed.clone()], 9));
        let s = state(
            &file,
            &journal(0, &[vec![Record::Delayed(delayed)], vec![Record::DelayedGone { id: out_id }]]),
        );
        assert!(s.delayed.is_empty());

        // Message IDs: appended to the ISAKMP SA's; a new ISAKMP SA
        // starts its own; at most MESSAGE_IDS_KEPT, the newest.
        let isakmp = file.gateways[0].peer.isakmp.clone().unwrap();
        let icookie = u64::from_be_bytes(isakmp.icookie);
        let more = Record::MessageIds { gateway: gw.clone(), icookie, ids: vec![0xdead, 0xbeef] };
        let s = state(&file, &journal(0, &[vec![more]]));
        let mut want = isakmp.message_ids.clone();
        want.extend([0xdead, 0xbeef]);
        assert_eq!(s.gateways[0].peer.isakmp.as_ref().unwrap().message_ids, want);
        let many: Vec<u32> = (1..=(MESSAGE_IDS_KEPT as u32 + 10)).collect();
        let s = state(
            &file,
            &journal(0, &[vec![Record::MessageIds { gateway: gw.clone(), icookie, ids: many }]]),
        );
        let kept = &s.gateways[0].peer.isakmp.as_ref().unwrap().message_ids;
        assert_eq!(
            (kept.len(), kept[0], *kept.last().unwrap()),
            (MESSAGE_IDS_KEPT, 11, MESSAGE_IDS_KEPT as u32 + 10)
        );
        let mut rekeyed = file.gateways[0].peer.clone();
        rekeyed.children.clear();
        let i = rekeyed.isakmp.as_mut().unwrap();
        i.icookie = [9; 8];
        i.message_ids.clear();
        let s = state(&file, &journal(0, &[vec![Record::Peer(rekeyed)]]));
        let p = &s.gateways[0].peer;
        assert_eq!(
            (p.isakmp.as_ref().unwrap().icookie, p.isakmp.as_ref().unwrap().message_ids.len()),
            ([9; 8], 0)
        );
        assert_eq!(p.children.len(), 1, "the peer's children are their own records");

        // A gateway gone takes its children; SAs nobody refers to are
        // not restored.
        let s = state(&file, &journal(0, &[vec![Record::GatewayGone { gateway: gw }]]));
        assert!(s.gateways.is_empty());
        drop(a);
    }

    /// The last append cut at every byte (a crash in the middle of its
    /// write), or followed by zeros (blocks allocated, never written): the
    /// state is the one before it, the torn bytes are cut off the file
    /// with a line for the log, and the next append follows the whole ones.
    #[test]
    fn a_torn_last_append_is_dropped_at_every_byte() {
        let (_a, _b, _now, file) = one_pair();
        let child = file.gateways[0].children[0].clone();
        let first = vec![Record::Serial { hex_id: 5, serial: 40 }];
        let last = vec![
            Record::ChildGone { gateway: "gw2".into(), spi_in: child.spi_in },
            Record::SaGone { id: child.ids[0] },
            Record::Serial { hex_id: 5, serial: 41 },
        ];
        let whole = journal(0, std::slice::from_ref(&first));
        let full = journal(0, &[first, last]);
        let before = state(&file, &whole);
        let after = state(&file, &full);
        assert_eq!(before.serials[&5], 40);
        assert_eq!((after.serials[&5], after.gateways[0].children.len()), (41, 0));
        let snap = serde_json::to_vec(&file).unwrap();
        let dir = temp_dir("torn");
        for cut in whole.len()..full.len() {
            let r = load_bytes(Some(&snap), Some(&full[..cut])).unwrap();
            assert_eq!(r.state.as_ref(), Some(&before), "cut at {cut}");
            let torn = cut - whole.len();
            assert_eq!(r.truncate_journal, (torn > 0).then_some(whole.len()), "cut at {cut}");
            if torn > 0 {
                assert!(
                    r.notes[0].contains(&format!("last {torn} byte(s) are a torn append")),
                    "{:?}",
                    r.notes
                );
            }
        }
        for zeros in [1, 21, 4096] {
            let mut j = whole.clone();
            j.resize(whole.len() + zeros, 0);
            let r = load_bytes(Some(&snap), Some(&j)).unwrap();
            assert_eq!((r.state.as_ref(), r.truncate_journal), (Some(&before), Some(whole.len())));
        }
        // Through the files: cut off, and appending goes on after it.
        for cut in [whole.len() + 1, whole.len() + FRAME_HEADER + 3, full.len() - 1] {
            fs::write(dir.join(IKE_STATE_FILE), &snap).unwrap();
            fs::write(dir.join(IKE_JOURNAL_FILE), &full[..cut]).unwrap();
            let (Loaded::State(s), notes) = load(&dir) else { panic!("cut at {cut}: not loaded") };
            assert_eq!(*s, before);
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert_eq!(fs::metadata(dir.join(IKE_JOURNAL_FILE)).unwrap().len(), whole.len() as u64);
            let mut j = fs::OpenOptions::new().append(true).open(dir.join(IKE_JOURNAL_FILE)).unwrap();
            j.write_all(&full[whole.len()..]).unwrap();
            let (Loaded::State(s), notes) = load(&dir) else { panic!("not loaded") };
            assert_eq!((*s, notes), (after.clone(), vec![]));
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Damage before the last append (whole records follow it), a
    /// record that does not parse, or a journal newer than its snapshot:
    /// both files are set aside and controld starts without IKE state.
    #[test]
    fn a_corrupt_journal_is_set_aside_with_its_snapshot() {
        let (_a, _b, _now, file) = one_pair();
        let snap = serde_json::to_vec(&file).unwrap();
        let appends = vec![
            vec![Record::Serial { hex_id: 5, serial: 40 }],
            vec![Record::Serial { hex_id: 5, serial: 41 }],
        ];
        let good = journal(0, &appends);
        let begin = journal(0, &[]).len();
        let mut flipped = good.clone();
        flipped[begin + FRAME_HEADER + 2] ^= 0x20;
        let mut bad_len = good.clone();
        bad_len[begin] = 0xff;
        let not_a_record = {
            let payload = b"{\"no_such_record\":1}";
            let mut head = [0u8; 5];
            head[..4].copy_from_slice(&(payload.len() as u32).to_be_bytes());
            head[4] = KIND_LAST;
            let mut j = journal(0, &[]);
            j.extend_from_slice(&head);
            j.extend_from_slice(&checksum(&head, payload));
            j.extend_from_slice(payload);
            j.extend_from_slice(&encode(&appends[1]));
            j
        };
        let dir = temp_dir("corrupt-journal");
        let cases: Vec<(Vec<u8>, String)> = vec![
            (flipped, format!("journal damaged at byte {begin}, with whole records after it")),
            (bad_len, format!("journal damaged at byte {begin}, with whole records after it")),
            (not_a_record, format!("journal record at byte {begin} does not parse")),
            (journal(1, &appends), "journal of generation 1, newer than the snapshot's generation 0".into()),
            (
                appends.iter().flat_map(|a| encode(a).to_vec()).collect(),
                "journal does not start with its generation".into(),
            ),
        ];
        for (j, want) in cases {
            fs::write(dir.join(IKE_STATE_FILE), &snap).unwrap();
            fs::write(dir.join(IKE_JOURNAL_FILE), &j).unwrap();
            let (Loaded::Discarded(e), _) = load(&dir) else { panic!("{want}: not discarded") };
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("IKE state file {}", dir.join(IKE_JOURNAL_FILE).display())),
                "{text}"
            );
            assert!(text.contains(&want), "{text} does not say {want}");
            assert_eq!(fs::read(dir.join(format!("{IKE_JOURNAL_FILE}.bad"))).unwrap(), j);
            assert_eq!(fs::read(dir.join(format!("{IKE_STATE_FILE}.bad"))).unwrap(), snap);
            assert!(matches!(load(&dir).0, Loaded::Absent), "{want}: both set aside");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The journal grows past the bound: the writer writes a snapshot of
    /// the next generation and starts an empty journal. A crash between
    /// the two steps leaves the new snapshot beside the old journal: the
    /// journal is ignored, nothing is lost or applied twice.
    #[test]
    fn compaction_survives_a_crash_between_its_two_steps() {
        let mut a = Side::new(manager(CONF_A, 21));
        let mut b = Side::new(manager(&conf_b(), 22));
        a.writer.set_compact_over(2000);
        let t0 = Instant::now();
        let mut now = t0;
        for pid in a.m.gateways[0].vpns[0].proxy_ids.clone() {
            a.m.acquire(now, 1, &pid.to_string());
            pump(now, &mut a, &mut b);
        }
        run_until(&mut now, t0 + Duration::from_secs(30), &mut a, &mut b);
        let files = a.store.0.borrow();
        assert!(files.snapshots >= 2, "compacted: {} snapshot(s)", files.snapshots);
        let (journal_len, snapshot_len) = a.writer.sizes();
        assert!(journal_len <= 2000 || journal_len <= snapshot_len || files.appends > 0);
        let Loaded::State(now_state) = a.store.load() else { panic!() };
        assert_eq!(now_state.generation, files.snapshots as u64, "one generation per snapshot");

        // Crash between the steps: the next snapshot is in, the journal
        // is still the old generation's (with records).
        let dir = temp_dir("compaction");
        let old_snapshot = files.snapshot.clone().unwrap();
        let old_journal = files.journal.clone().unwrap();
        drop(files);
        let mut next = now_state.as_ref().clone();
        next.generation += 1;
        next.serials.insert(5, 999);
        fs::write(dir.join(IKE_STATE_FILE), &old_snapshot).unwrap();
        let extra = encode(&[Record::Serial { hex_id: 5, serial: 1 }]);
        fs::write(dir.join(IKE_JOURNAL_FILE), [&old_journal[..], &extra[..]].concat()).unwrap();
        let (Loaded::State(s), _) = load(&dir) else { panic!() };
        assert_eq!(s.serials[&5], 1, "before the crash: the journal applies");
        write_atomically(&dir, IKE_STATE_FILE, &snapshot_bytes(&next)).unwrap();
        let (Loaded::State(s), notes) = load(&dir) else { panic!() };
        assert_eq!(*s, normalised(next.clone()), "the old journal is not applied");
        assert!(notes[0].contains("older than the snapshot's"), "{notes:?}");
        // The second step done: a fresh journal of the new generation.
        save(&dir, &next).unwrap();
        let (Loaded::State(s), notes) = load(&dir) else { panic!() };
        assert_eq!((*s, notes), (normalised(next), vec![]));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Both files are 0600 from their creation, even over a leftover
    /// temporary file of another mode, and stay so as the journal grows.
    #[test]
    fn both_files_are_created_0600() {
        let dir = temp_dir("modes");
        for name in [IKE_STATE_FILE, IKE_JOURNAL_FILE] {
            let tmp = dir.join(format!("{name}.tmp"));
            fs::write(&tmp, b"old").unwrap();
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o666)).unwrap();
        }
        let mut store = DirStore::new(&dir);
        assert!(store.append(b"x").is_err(), "no journal before the first snapshot");
        store.replace(3, b"{}").unwrap();
        store.append(&encode(&[Record::Serial { hex_id: 1, serial: 2 }])).unwrap();
        for name in [IKE_STATE_FILE, IKE_JOURNAL_FILE] {
            let mode = fs::metadata(dir.join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
            assert!(!dir.join(format!("{name}.tmp")).exists());
        }
        let read = read_journal(&fs::read(dir.join(IKE_JOURNAL_FILE)).unwrap()).unwrap();
        assert_eq!((read.generation, read.records), (Some(3), vec![Record::Serial { hex_id: 1, serial: 2 }]));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A snapshot written before the journal existed (format version 1,
    /// no generation, pretty JSON) loads as generation 0.
    #[test]
    fn a_version_1_file_still_loads() {
        let (_a, _b, _now, file) = one_pair();
        let mut v1 = serde_json::to_value(&file).unwrap();
        v1["version"] = 1.into();
        v1.as_object_mut().unwrap().remove("generation");
        let dir = temp_dir("v1");
        fs::write(dir.join(IKE_STATE_FILE), serde_json::to_vec_pretty(&v1).unwrap()).unwrap();
        let (Loaded::State(s), notes) = load(&dir) else { panic!("not loaded") };
        assert!(notes.is_empty());
        let mut want = file.clone();
        want.version = IKE_STATE_VERSION;
        want.generation = 0;
        assert_eq!(*s, want);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A failed write is reported once and the next turn writes the whole
    /// state (a snapshot), whatever the journal held.
    #[test]
    fn after_a_failed_write_the_next_turn_writes_a_snapshot() {
        let (mut a, _b, now, _file) = one_pair();
        let snapshots = a.store.0.borrow().snapshots;
        a.store.0.borrow_mut().fail = true;
        a.m.dirty.serials.insert(5);
        let line = a.writer.turn(&mut a.m, &a.clock, now, &a.sas, &[], true).unwrap();
        assert!(line.contains("disk full") && line.contains("the next write is a snapshot"), "{line}");
        assert!(a.writer.broken());
        a.store.0.borrow_mut().fail = false;
        assert_eq!(a.writer.turn(&mut a.m, &a.clock, now, &a.sas, &[], true), None);
        assert_eq!(a.store.0.borrow().snapshots, snapshots + 1);
        assert!(!a.writer.broken());
        let Loaded::State(s) = a.store.load() else { panic!() };
        let want = normalised(a.m.snapshot(&a.clock, &SasAfter::new(&a.sas, &[])));
        assert_eq!(s.gateways, want.gateways);
    }

    /// The journal follows reconfigurations: a proxy-ID removed (its pair
    /// deleted with the peer), `clear sa`, and the gateway replaced (its
    /// configuration changed: everything of the old one goes, the new
    /// one starts afresh); checked against a snapshot after every turn.
    #[test]
    fn the_journal_follows_reconfigurations_and_clears() {
        let (mut a, mut b, t0) = both_up(31, 32, Duration::from_secs(1));
        let now = t0 + Duration::from_secs(1);
        assert_eq!(a.sas.len(), 4);
        let gateways = |psk: &str, keep: usize| {
            let (config, _) = Config::load(&CONF_A.replace("s3cret-psk", psk)).unwrap();
            let mut g = ike_gateways(&config, &BTreeMap::from([("v".to_string(), 5)])).0;
            g[0].config.child_lifetime = esprit_ike::Lifetime { seconds: 100, kilobytes: 0 };
            g[0].config.ike_lifetime = 300;
            g[0].config.dpd_delay = Some(Duration::from_secs(10));
            g[0].config.dpd_retries = 3;
            g[0].config.proxy_ids.truncate(keep);
            g[0].vpns[0].proxy_ids.truncate(keep);
            g
        };
        // One proxy-ID removed. (The core writes after the peers' events
        // are polled: a deletion is written with its ChildSaDown.)
        let mut acts = a.m.reconfigure(now, gateways("s3cret-psk", 1));
        acts.extend(a.m.poll(now));
        a.take(acts, &mut b, now);
        pump(now, &mut a, &mut b);
        assert_eq!(a.sas.len(), 2);
        // `clear sa` of the other: deleted with the peer.
        let pid = a.m.gateways[0].vpns[0].proxy_ids[0].to_string();
        assert_eq!(a.m.clear(now, Some((5, &pid))).len(), 1);
        pump(now, &mut a, &mut b);
        assert!(a.sas.is_empty());
        let Loaded::State(s) = a.store.load() else { panic!() };
        assert!(s.gateways[0].children.is_empty() && s.gateways[0].peer.isakmp.is_some());
        // Negotiated again, then the gateway replaced: nothing of it stays.
        a.m.acquire(now, 1, &pid);
        pump(now, &mut a, &mut b);
        assert_eq!(a.sas.len(), 1, "the inbound SA; the outbound one is delayed");
        let checked = a.checked;
        let mut acts = a.m.reconfigure(now, gateways("another-psk", 1));
        acts.extend(a.m.poll(now));
        a.take(acts, &mut b, now);
        pump(now, &mut a, &mut b);
        assert!(a.checked > checked);
        let Loaded::State(s) = a.store.load() else { panic!() };
        assert!(s.gateways.is_empty() && s.delayed.is_empty(), "{s:?}");
        let journal = a.store.0.borrow().journal.clone().unwrap();
        let read = read_journal(&journal).unwrap();
        assert!(read
            .records
            .iter()
            .any(|r| matches!(r, Record::GatewayGone { gateway } if gateway == "gw2")));
    }

    /// A restart inside a rekey's grace keeps the superseded pair's
    /// inbound SA (its outbound one is already replaced): what the peer
    /// still sends on it is received until it retires as planned.
    #[test]
    fn a_superseded_pair_survives_a_restart_in_its_grace() {
        let (mut a, mut b, t0) = both_up(1, 2, Duration::from_secs(2));
        let mut now = t0 + Duration::from_secs(2);
        // a initiated both pairs and rekeys them at 85-90 s.
        while a.logs.iter().filter(|l| l.contains("rekeyed: child SA")).count() < 2 {
            assert!(now < t0 + Duration::from_secs(95), "no rekeys: {:?}", a.logs);
            let next = now + Duration::from_secs(1);
            run_until(&mut now, next, &mut a, &mut b);
        }
        let superseded: Vec<u64> =
            a.m.gateways[0].children.values().filter(|c| c.superseded.is_some()).map(|c| c.ids[0]).collect();
        assert_eq!(superseded.len(), 2);
        assert!(superseded.iter().all(|id| a.sas.contains_key(id)), "old inbound SAs still installed");
        let clock = WallClock { now, wall: SystemTime::now() };
        let file = a.m.snapshot(&clock, &SasAfter::new(&a.sas, &[]));
        let before_sas = a.sas.clone();
        drop(a);
        b.fp.clear();
        now += Duration::from_secs(1);
        let mut fresh = manager(CONF_A, 99);
        let restored = fresh.restore(&file, &WallClock { now, wall: clock.wall + Duration::from_secs(1) });
        assert_eq!((restored.isakmp_sas, restored.children), (1, 4), "{:?}", restored.log);
        assert!(!restored.log.iter().any(|l| l.contains("deleted")), "{:?}", restored.log);
        let mut a = Side::new(fresh);
        a.sas = restored.sas.into_iter().map(|d| (d.spec.id, d)).collect();
        // The snapshot a core writes at start, with the SAs resumed.
        let clock_a = a.clock;
        assert_eq!(a.writer.snapshot(&mut a.m, &clock_a, now, &SasAfter::new(&a.sas, &[])), None);
        assert_eq!(a.sas, before_sas, "the superseded inbound SAs are resumed too");
        pump(now, &mut a, &mut b);
        assert!(b.fp.is_empty(), "no Delete reached b: {:?}", b.fp);
        // They retire as planned, on both sides.
        run_until(&mut now, t0 + Duration::from_secs(115), &mut a, &mut b);
        assert!(superseded.iter().all(|id| !a.sas.contains_key(id)), "{:?}", a.sas.keys());
        assert_eq!(a.sas.len(), 4);
        assert_eq!(a.sas.keys().collect::<Vec<_>>(), b.sas.keys().collect::<Vec<_>>());
    }
}
