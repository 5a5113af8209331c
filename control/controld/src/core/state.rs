//! controld's state directory: what must survive a restart of controld.
//!
//! Two files, `controld.json` and `controld.journal` (mode 0600), the
//! snapshot and journal of [`crate::journal`]:
//!
//! * the VPN HEX IDs and the proxy-IDs' tunnel IDs that were assigned (so
//!   VPNs and proxy-IDs keep their numbers);
//! * per SA id, the fingerprint of the SA last installed under it and the
//!   key digest of its keys;
//! * per key digest, the highest sequence number seen in fastpathd's
//!   `Stats` with those keys in that direction (outbound: sent; inbound:
//!   accepted), whatever SA id, proxy-ID or address carried them.
//!
//! `controld.json` is the whole [`State`] at one moment (compact JSON,
//! written atomically: a crash leaves the old or the new version, never
//! half). `controld.journal` holds what changed since, as keyed upserts
//! and removals ([`StateRecord`]): one SA id's record, one key digest's
//! sequence numbers, and the small part (HEX IDs, tunnel IDs, serials,
//! the digest secret, keys held back) whole when it changes. A turn that
//! installs SAs or reads new sequence numbers appends the records it
//! changed in one write and one `fdatasync`, never the whole state (at
//! 10,000 SA pairs the whole state is megabytes). The journal is
//! compacted into a new snapshot once it is over [`COMPACT_OVER`] bytes
//! and larger than the snapshot; controld writes a snapshot when it
//! starts and when it stops. A torn last append is dropped and cut off
//! with a log line; a journal damaged before its tail, or one newer than
//! its snapshot, is an error that stops controld, as a damaged
//! `controld.json` does: these sequence numbers are what keeps keys from
//! being used twice with one nonce, so controld does not guess.
//!
//! Next to them, `controld.started` is created at the first save and never
//! removed: a directory with it and without `controld.json` lost its state
//! (see [`crate::core::sa`] for what controld then refuses).
//!
//! The sequence numbers are the reason the state is written periodically:
//! see [`crate::core::sa::SEQ_MARGIN`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::journal::{self, JournalRecord};

/// Name of the state file (the snapshot) in the state directory.
pub const STATE_FILE: &str = "controld.json";
/// Name of its journal.
pub const STATE_JOURNAL: &str = "controld.journal";
/// The format version written (1: a snapshot alone, no generation).
pub const STATE_VERSION: u32 = 2;
/// The journal is compacted once it is over this size and larger than the
/// snapshot.
pub const COMPACT_OVER: u64 = 4 << 20;

/// What controld remembers of one SA id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaRecord {
    /// Fingerprint of the SA last installed under this id.
    pub fingerprint: String,
    /// Outbound: the highest sequence number known to be used with these
    /// keys (from `Stats`, or the resume point of the last install).
    #[serde(default)]
    pub seq: u64,
    /// The key digest of the SA installed under this id (see
    /// [`crate::core::sa::key_digest`]): where its sequence numbers are kept.
    #[serde(default)]
    pub keys: String,
}

/// The sequence numbers used with one set of keys in one direction, found
/// by its key digest whatever SA id, proxy-ID or address carried it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqMark {
    /// Outbound: the highest sequence number sent (or resumed from);
    /// inbound: the highest one accepted.
    pub seq: u64,
    /// The most packets seen between two readings of the counters: what
    /// an inbound window adds above `seq` when it resumes (see
    /// [`crate::core::sa::inbound_margin`]).
    #[serde(default)]
    pub peak: u64,
}

/// The persisted state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    #[serde(default)]
    pub version: u32,
    /// The journal that goes with it is of the same generation (version 1
    /// files: 0).
    #[serde(default)]
    pub generation: u64,
    /// VPN name -> HEX ID.
    #[serde(default)]
    pub hex_ids: BTreeMap<String, u32>,
    /// VPN name -> proxy-ID -> tunnel ID (see [`crate::core::ids`]).
    #[serde(default)]
    pub tunnel_ids: crate::core::ids::TunnelIds,
    /// SA id -> record.
    #[serde(default)]
    pub sas: BTreeMap<u64, SaRecord>,
    /// Manual-key SAs: serial-0 id -> (SPI, serial) (see
    /// [`crate::core::translate::ManualSerials`]).
    #[serde(default)]
    pub manual_serials: BTreeMap<u64, (u32, u32)>,
    /// Key digest -> sequence numbers used with those keys.
    #[serde(default)]
    pub seqs: BTreeMap<String, SeqMark>,
    /// The secret of the key digests (hex, 32 random bytes drawn when the
    /// state is created): a digest of a weak manual key cannot be tested
    /// offline without it.
    #[serde(default)]
    pub digest_key: String,
    /// Key digests of manual-key SAs held back after a lost state file,
    /// until new keys or `exec confirm manual-keys` (a restart of controld
    /// in between must not install them).
    #[serde(default)]
    pub unconfirmed: std::collections::BTreeSet<String>,
    /// Not persisted: the state directory shows that it held a state file
    /// that is now gone ([`STARTED_MARK`] without [`STATE_FILE`]).
    #[serde(skip)]
    pub lost: bool,
    /// Not persisted: lines for the log from loading (a torn append cut
    /// off, an interrupted compaction).
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// One change, as the journal holds it: a keyed upsert or removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateRecord {
    /// The first record of every journal.
    Begin { version: u32, generation: u64 },
    /// An SA id's record (`None`: forgotten).
    Sa { id: u64, record: Option<SaRecord> },
    /// A key digest's sequence numbers (`None`: forgotten).
    Seq { keys: String, mark: Option<SeqMark> },
    /// The small part, whole.
    Ids {
        hex_ids: BTreeMap<String, u32>,
        tunnel_ids: crate::core::ids::TunnelIds,
        manual_serials: BTreeMap<u64, (u32, u32)>,
        digest_key: String,
        unconfirmed: BTreeSet<String>,
    },
}

impl JournalRecord for StateRecord {
    fn begin(&self) -> Option<(u32, u64)> {
        match self {
            StateRecord::Begin { version, generation } => Some((*version, *generation)),
            _ => None,
        }
    }
}

/// What of the state changed since it was last written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateChanges {
    /// SA ids whose record changed or went.
    pub sas: BTreeSet<u64>,
    /// Key digests whose sequence numbers changed or went.
    pub seqs: BTreeSet<String>,
    /// The small part changed.
    pub ids: bool,
}

impl StateChanges {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.sas.is_empty() && self.seqs.is_empty() && !self.ids
    }

    /// The records that write these changes of `state`.
    pub fn records(&self, state: &impl StateSource) -> Vec<StateRecord> {
        let mut out = Vec::with_capacity(self.sas.len() + self.seqs.len() + 1);
        if self.ids {
            out.push(state.ids_record());
        }
        out.extend(self.sas.iter().map(|id| StateRecord::Sa { id: *id, record: state.sa(*id) }));
        out.extend(self.seqs.iter().map(|k| StateRecord::Seq { keys: k.clone(), mark: state.seq(k) }));
        out
    }
}

/// Where the state is read from for a write: a [`State`], or the
/// controller, which holds its parts (an append reads only what changed).
pub trait StateSource {
    /// SA id `id`'s record.
    fn sa(&self, id: u64) -> Option<SaRecord>;
    /// Key digest `keys`' sequence numbers.
    fn seq(&self, keys: &str) -> Option<SeqMark>;
    /// The small part, as a record.
    fn ids_record(&self) -> StateRecord;
    /// The whole state (for a snapshot).
    fn whole(&self) -> State;
}

impl StateSource for State {
    fn sa(&self, id: u64) -> Option<SaRecord> {
        self.sas.get(&id).cloned()
    }

    fn seq(&self, keys: &str) -> Option<SeqMark> {
        self.seqs.get(keys).copied()
    }

    fn ids_record(&self) -> StateRecord {
        StateRecord::Ids {
            hex_ids: self.hex_ids.clone(),
            tunnel_ids: self.tunnel_ids.clone(),
            manual_serials: self.manual_serials.clone(),
            digest_key: self.digest_key.clone(),
            unconfirmed: self.unconfirmed.clone(),
        }
    }

    fn whole(&self) -> State {
        self.clone()
    }
}

/// What the core asks the daemon to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateWrite {
    /// A new snapshot (of its generation), then an empty journal of it.
    Snapshot(Box<State>),
    /// One append's frames.
    Append(Zeroizing<Vec<u8>>),
}

/// Decides, turn by turn, what of the state to write: an append of what
/// changed, or a snapshot when the journal has grown enough or a write
/// failed. Sans-IO: the daemon writes ([`StateFiles`]).
#[derive(Debug)]
pub struct StateWriter {
    generation: u64,
    journal_len: u64,
    snapshot_len: u64,
    compact_over: u64,
    /// The last write failed (or none was made): the next is a snapshot.
    broken: bool,
}

impl StateWriter {
    /// A writer after the snapshot of `generation` was written.
    pub fn new(generation: u64) -> StateWriter {
        StateWriter { generation, journal_len: 0, snapshot_len: 0, compact_over: COMPACT_OVER, broken: false }
    }

    /// Compacts once the journal is over `bytes` (tests: small).
    pub fn set_compact_over(&mut self, bytes: u64) {
        self.compact_over = bytes;
    }

    /// The journal's size and the snapshot's, in bytes.
    pub fn sizes(&self) -> (u64, u64) {
        (self.journal_len, self.snapshot_len)
    }

    /// A write failed: the next one is a snapshot.
    pub fn failed(&mut self) {
        self.broken = true;
    }

    /// `state` as the next snapshot (its generation set).
    pub fn snapshot(&mut self, mut state: State) -> State {
        self.generation += 1;
        state.version = STATE_VERSION;
        state.generation = self.generation;
        self.snapshot_len = snapshot_bytes(&state).len() as u64;
        self.journal_len = begin(self.generation).len() as u64;
        self.broken = false;
        state
    }

    /// What to write for `changes` of `state`: an append of the records
    /// that changed (O(changes)), or a snapshot when one is due.
    pub fn turn(&mut self, changes: &StateChanges, state: &impl StateSource) -> Option<StateWrite> {
        if self.broken || (self.journal_len > self.compact_over && self.journal_len > self.snapshot_len) {
            return Some(StateWrite::Snapshot(Box::new(self.snapshot(state.whole()))));
        }
        if changes.is_empty() {
            return None;
        }
        let frames = journal::encode(&changes.records(state));
        self.journal_len += frames.len() as u64;
        Some(StateWrite::Append(frames))
    }
}

/// A journal's first frame.
fn begin(generation: u64) -> Zeroizing<Vec<u8>> {
    journal::encode(&[StateRecord::Begin { version: STATE_VERSION, generation }])
}

/// The snapshot's bytes (compact JSON).
fn snapshot_bytes(state: &State) -> Vec<u8> {
    // Plain data: serialising it cannot fail.
    serde_json::to_vec(state).unwrap_or_default()
}

/// The state files of a directory, as the daemon writes them.
#[derive(Debug)]
pub struct StateFiles {
    dir: PathBuf,
    /// The journal, open for appends (none after a failed write, until
    /// the next snapshot starts another).
    journal: Option<fs::File>,
}

impl StateFiles {
    /// The files of `dir`; the first write must be a snapshot.
    pub fn new(dir: &Path) -> StateFiles {
        StateFiles { dir: dir.to_owned(), journal: None }
    }

    /// Carries out one write of the core.
    pub fn write(&mut self, w: &StateWrite) -> Result<(), StateError> {
        match w {
            StateWrite::Snapshot(state) => {
                self.journal = None;
                state.save(&self.dir)?;
                let path = self.dir.join(STATE_JOURNAL);
                let f = fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|source| StateError::Io { path, source })?;
                self.journal = Some(f);
                Ok(())
            }
            StateWrite::Append(frames) => {
                let path = self.dir.join(STATE_JOURNAL);
                let Some(f) = self.journal.as_mut() else {
                    let source = std::io::Error::other("no journal open since a failed write");
                    return Err(StateError::Io { path, source });
                };
                f.write_all(frames).and_then(|()| f.sync_data()).map_err(|source| {
                    // What reached the file is unknown: nothing more is
                    // appended to it; the next snapshot starts another.
                    self.journal = None;
                    StateError::Io { path, source }
                })
            }
        }
    }
}

/// Written next to the state file at its first save: a directory that has
/// it and no state file lost its state.
pub const STARTED_MARK: &str = "controld.started";

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("state file {path}: not controld state ({source}); move it away to start afresh")]
    Format { path: PathBuf, source: serde_json::Error },
    #[error("state file {path}: {detail}; move it and {STATE_FILE} away to start afresh (manual-key SAs are then held back until confirmed)")]
    Journal { path: PathBuf, detail: String },
}

impl State {
    /// Applies one journal record.
    pub fn apply(&mut self, r: StateRecord) {
        match r {
            StateRecord::Begin { .. } => {}
            StateRecord::Sa { id, record: Some(r) } => {
                self.sas.insert(id, r);
            }
            StateRecord::Sa { id, record: None } => {
                self.sas.remove(&id);
            }
            StateRecord::Seq { keys, mark: Some(m) } => {
                self.seqs.insert(keys, m);
            }
            StateRecord::Seq { keys, mark: None } => {
                self.seqs.remove(&keys);
            }
            StateRecord::Ids { hex_ids, tunnel_ids, manual_serials, digest_key, unconfirmed } => {
                self.hex_ids = hex_ids;
                self.tunnel_ids = tunnel_ids;
                self.manual_serials = manual_serials;
                self.digest_key = digest_key;
                self.unconfirmed = unconfirmed;
            }
        }
    }

    /// The state held by a snapshot and a journal (either may be missing):
    /// the snapshot with the journal's whole appends replayed over it.
    /// Pure: [`State::load`] reads the files. Returns the state (`None`:
    /// no snapshot) and the length to cut the journal to, if its last
    /// append is torn; the state's `notes` say what was found.
    pub fn from_bytes(
        snapshot: Option<&[u8]>,
        journal: Option<&[u8]>,
    ) -> Result<(Option<State>, Option<usize>), String> {
        let mut state = match snapshot {
            None => None,
            Some(b) => {
                let s: State = serde_json::from_slice(b).map_err(|e| format!("{STATE_FILE}: {e}"))?;
                if s.version > STATE_VERSION {
                    return Err(format!(
                        "{STATE_FILE}: format version {}, this controld reads up to {STATE_VERSION}",
                        s.version
                    ));
                }
                Some(s)
            }
        };
        let mut cut = None;
        // A journal without its snapshot holds too little to go on: the
        // state is lost (the caller sees the mark it left).
        let (Some(bytes), Some(_)) = (journal, state.as_ref()) else { return Ok((state, cut)) };
        let read = journal::read::<StateRecord>(bytes, STATE_VERSION)
            .map_err(|e| format!("{STATE_JOURNAL}: {e}"))?;
        let mut notes = Vec::new();
        if read.whole < bytes.len() {
            cut = Some(read.whole);
            notes.push(format!(
                "state: the journal's last {} byte(s) are a torn append (controld stopped while writing it): dropped",
                bytes.len() - read.whole
            ));
        }
        let base = state.as_ref().map_or(0, |s| s.generation);
        match read.generation {
            None => {}
            Some(g) if g < base => notes.push(format!(
                "state: journal of generation {g}, older than the snapshot's {base} (a compaction was interrupted): ignored"
            )),
            Some(g) if g > base => {
                return Err(format!("{STATE_JOURNAL}: generation {g}, newer than the snapshot's {base}"))
            }
            Some(_) => {
                if let Some(s) = state.as_mut() {
                    for r in read.records {
                        s.apply(r);
                    }
                }
            }
        }
        if let Some(s) = state.as_mut() {
            s.notes = notes;
        }
        Ok((state, cut))
    }

    /// Reads the state of `dir` (creating the directory, mode 0700): the
    /// snapshot and its journal; no snapshot is an empty state. A torn
    /// last append is cut off the journal.
    pub fn load(dir: &Path) -> Result<State, StateError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        let path = dir.join(STATE_FILE);
        let jpath = dir.join(STATE_JOURNAL);
        let read = |p: &Path| match fs::read(p) {
            Ok(b) => Ok(Some(Zeroizing::new(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError::Io { path: p.to_owned(), source: e }),
        };
        let snapshot = read(&path)?;
        let journal = read(&jpath)?;
        if let Some(b) = snapshot.as_deref() {
            // The snapshot's own parse error, as before the journal.
            serde_json::from_slice::<serde::de::IgnoredAny>(b)
                .map_err(|source| StateError::Format { path: path.clone(), source })?;
        }
        let (state, cut) =
            State::from_bytes(snapshot.as_deref().map(|b| &b[..]), journal.as_deref().map(|b| &b[..]))
                .map_err(|detail| StateError::Journal { path: jpath.clone(), detail })?;
        let mut state = match state {
            Some(s) => s,
            None => {
                State { version: STATE_VERSION, lost: dir.join(STARTED_MARK).exists(), ..State::default() }
            }
        };
        if let Some(len) = cut {
            state.notes.extend(journal::cut(&jpath, len));
        }
        Ok(state)
    }

    /// Writes the state as the snapshot of `dir`, then an empty journal of
    /// its generation (each atomically, in that order).
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let io = |(path, source)| StateError::Io { path, source };
        let mut state = self.clone();
        state.version = STATE_VERSION;
        journal::write_atomically(dir, STATE_FILE, &Zeroizing::new(snapshot_bytes(&state))).map_err(io)?;
        journal::write_atomically(dir, STATE_JOURNAL, &begin(state.generation)).map_err(io)?;
        let mark = dir.join(STARTED_MARK);
        if !mark.exists() {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&mark)
                .map_err(|source| StateError::Io { path: mark.clone(), source })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_through_the_directory() {
        let dir = std::env::temp_dir().join(format!("controld-state-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(State::load(&dir).unwrap().sas.len(), 0);
        let mut s = State::load(&dir).unwrap();
        s.hex_ids.insert("p11".into(), 1);
        s.sas.insert(7, SaRecord { fingerprint: "ab".into(), seq: 42, keys: "cd".into() });
        s.seqs.insert("cd".into(), SeqMark { seq: 42, peak: 7 });
        s.save(&dir).unwrap();
        assert_eq!(State::load(&dir).unwrap(), s);
        assert!(!State::load(&dir).unwrap().lost);
        let mode = fs::metadata(dir.join(STATE_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The state file goes, the mark stays: the directory lost its state.
        fs::remove_file(dir.join(STATE_FILE)).unwrap();
        assert!(State::load(&dir).unwrap().lost);
        fs::remove_dir_all(&dir).unwrap();
        // A directory never used has lost nothing.
        assert!(!State::load(&dir).unwrap().lost);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("controld-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A state of `n` SA pairs, as the SA manager would hold it.
    fn state_of(n: u64) -> State {
        let mut s = State { version: STATE_VERSION, digest_key: "00".repeat(32), ..State::default() };
        for i in 0..2 * n {
            let keys = format!("{i:064x}");
            s.sas.insert(
                i << 32,
                SaRecord { fingerprint: format!("{:064x}", i + 1), seq: i, keys: keys.clone() },
            );
            s.seqs.insert(keys, SeqMark { seq: i, peak: 1 });
        }
        s.hex_ids.insert("vpn1".into(), 1);
        s
    }

    /// Changes `state` as a turn would: SA `id` gets a new record and its
    /// sequence numbers move.
    fn touch(state: &mut State, changes: &mut StateChanges, id: u64, seq: u64) {
        let keys = format!("{:064x}", id >> 32);
        state.sas.insert(id, SaRecord { fingerprint: format!("{seq:064x}"), seq, keys: keys.clone() });
        state.seqs.insert(keys.clone(), SeqMark { seq, peak: 9 });
        changes.sas.insert(id);
        changes.seqs.insert(keys);
    }

    /// Turn after turn, the files hold exactly the state: every append
    /// and every compaction loads back equal, and an append carries what
    /// changed, not the state (10,000 pairs: a snapshot of megabytes, an
    /// append of one pair a few hundred bytes).
    #[test]
    fn appends_and_compactions_load_back_the_state() {
        let dir = temp_dir("journal");
        let mut state = state_of(10_000);
        let mut w = StateWriter::new(0);
        let mut files = StateFiles::new(&dir);
        files.write(&StateWrite::Snapshot(Box::new(w.snapshot(state.clone())))).unwrap();
        let (journal_len, snapshot_len) = w.sizes();
        assert!(snapshot_len > 1_000_000, "{snapshot_len}");
        let mut changes = StateChanges::default();
        touch(&mut state, &mut changes, 5 << 32, 77);
        touch(&mut state, &mut changes, 6 << 32, 78);
        let Some(StateWrite::Append(frames)) = w.turn(&changes, &state) else { panic!("an append") };
        assert!(frames.len() < 1_000, "{} bytes for one pair", frames.len());
        files.write(&StateWrite::Append(frames.clone())).unwrap();
        assert_eq!(w.sizes().0, journal_len + frames.len() as u64);
        let loaded = State::load(&dir).unwrap();
        assert_eq!(loaded.sas, state.sas);
        assert_eq!(loaded.seqs, state.seqs);
        assert_eq!(w.turn(&StateChanges::default(), &state), None, "nothing changed, nothing written");

        // Forgotten SAs and the small part.
        let mut changes = StateChanges { ids: true, ..StateChanges::default() };
        let gone = state.sas.remove(&(7 << 32)).unwrap();
        state.seqs.remove(&gone.keys);
        changes.sas.insert(7 << 32);
        changes.seqs.insert(gone.keys);
        state.hex_ids.insert("vpn2".into(), 2);
        state.unconfirmed.insert("ab".into());
        let Some(write) = w.turn(&changes, &state) else { panic!("a write") };
        files.write(&write).unwrap();
        let loaded = State::load(&dir).unwrap();
        assert_eq!((loaded.sas.len(), loaded.seqs.len()), (state.sas.len(), state.seqs.len()));
        assert_eq!((&loaded.hex_ids, &loaded.unconfirmed), (&state.hex_ids, &state.unconfirmed));

        // After a failed write, the next is a snapshot of the next
        // generation, and the journal starts again.
        w.failed();
        let mut changes = StateChanges::default();
        touch(&mut state, &mut changes, 8 << 32, 99);
        let Some(StateWrite::Snapshot(snap)) = w.turn(&changes, &state) else { panic!("a snapshot") };
        assert_eq!(snap.generation, 2);
        files.write(&StateWrite::Snapshot(snap)).unwrap();
        let loaded = State::load(&dir).unwrap();
        assert_eq!((loaded.generation, &loaded.sas), (2, &state.sas));
        for name in [STATE_FILE, STATE_JOURNAL] {
            let mode = fs::metadata(dir.join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Once the journal is over the bound and larger than the snapshot,
    /// the next write is a snapshot; not before.
    #[test]
    fn the_journal_is_compacted_once_it_outgrows_the_snapshot() {
        let mut state = state_of(1);
        let mut w = StateWriter::new(0);
        let _ = w.snapshot(state.clone());
        w.set_compact_over(0);
        let mut turns = 0;
        loop {
            let (journal, snapshot) = w.sizes();
            let mut changes = StateChanges::default();
            touch(&mut state, &mut changes, 1 << 32, turns);
            match w.turn(&changes, &state) {
                Some(StateWrite::Append(_)) => assert!(journal <= snapshot, "{journal} > {snapshot}"),
                Some(StateWrite::Snapshot(s)) => {
                    assert!(journal > snapshot, "{journal} <= {snapshot}");
                    assert_eq!(s.generation, 2);
                    break;
                }
                None => panic!("a change, no write"),
            }
            turns += 1;
            assert!(turns < 100);
        }
        assert!(turns > 0);
    }

    /// A journal cut at every byte of its last append loads as the state
    /// before that append (and is cut back to it); damage before the
    /// last append, or a journal newer than its snapshot, is an error; a
    /// journal older than its snapshot (an interrupted compaction) is
    /// ignored.
    #[test]
    fn a_torn_append_is_dropped_and_damage_is_an_error() {
        let mut state = state_of(3);
        let mut w = StateWriter::new(4);
        let snap = w.snapshot(state.clone());
        let snapshot = serde_json::to_vec(&snap).unwrap();
        let mut journal = begin(5).to_vec();
        let before = state.clone();
        let mut changes = StateChanges::default();
        touch(&mut state, &mut changes, 1 << 32, 1000);
        let Some(StateWrite::Append(first)) = w.turn(&changes, &state) else { panic!() };
        journal.extend_from_slice(&first);
        let after_first = state.clone();
        let mut changes = StateChanges::default();
        touch(&mut state, &mut changes, 2 << 32, 2000);
        touch(&mut state, &mut changes, 3 << 32, 3000);
        let Some(StateWrite::Append(second)) = w.turn(&changes, &state) else { panic!() };
        let whole = journal.len();
        journal.extend_from_slice(&second);
        let (loaded, cut) = State::from_bytes(Some(&snapshot), Some(&journal)).unwrap();
        assert_eq!((loaded.unwrap().seqs, cut), (state.seqs.clone(), None));
        for len in whole..journal.len() {
            let (loaded, cut) = State::from_bytes(Some(&snapshot), Some(&journal[..len])).unwrap();
            let loaded = loaded.unwrap();
            assert_eq!(loaded.seqs, after_first.seqs, "cut at {len}");
            assert_eq!(cut, (len > whole).then_some(whole));
            assert_eq!(loaded.notes.len(), usize::from(len > whole));
        }
        let mut damaged = journal.clone();
        damaged[begin(5).len() + 30] ^= 1;
        let e = State::from_bytes(Some(&snapshot), Some(&damaged)).unwrap_err();
        assert!(e.contains("damaged at byte"), "{e}");
        let newer = begin(6).to_vec();
        assert!(State::from_bytes(Some(&snapshot), Some(&newer)).unwrap_err().contains("newer"));
        let mut older = begin(4).to_vec();
        older.extend_from_slice(&first);
        let (loaded, _) = State::from_bytes(Some(&snapshot), Some(&older)).unwrap();
        let loaded = loaded.unwrap();
        assert_eq!(loaded.seqs, before.seqs, "the older journal's records are not replayed");
        assert!(loaded.notes[0].contains("older than the snapshot"), "{:?}", loaded.notes);
    }
}
