//! The journals of the state directory: each state file is a snapshot
//! (`controld.json`, `ike.json`) and an append-only journal beside it
//! (`controld.journal`, `ike.journal`) of keyed records, so that an event
//! writes what it changed, not the whole state. This module is what they
//! share: the framing, reading a journal back, and atomic replacement.
//!
//! **Framing.** Each record is a frame: its length (4 bytes, big-endian),
//! a kind (1 byte: 0, or 1 for the last record of an append), the first 16
//! bytes of SHA-256 over those 5 bytes and the payload, then the payload
//! (the record as JSON). A journal starts with a record that names its
//! format version and generation ([`JournalRecord::begin`]). Only whole
//! appends count: the records of an append whose last frame is missing
//! are dropped. Only the last append can be torn (each one is on disk
//! before the next starts): a damaged or incomplete frame with no valid
//! frame after it is that torn append, which [`read`] reports so that the
//! caller cuts it off. A damaged frame with valid frames after it is
//! corruption of data that was on disk: an error.
//!
//! **Generations.** A snapshot and the journal that goes with it carry the
//! same generation. Compaction writes the snapshot of generation n + 1,
//! then an empty journal of n + 1, each atomically ([`write_atomically`]):
//! a crash between the two leaves a journal older than its snapshot, which
//! the snapshot holds all of (the reader ignores it).
//!
//! **Protection.** The files may hold keys: they are created with mode
//! 0600 (the temporary files too, never wider for an instant), in the
//! state directory (mode 0700).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The largest record read back; a longer length field is damage.
pub const MAX_RECORD: usize = 1 << 20;
/// Length, kind and checksum before each record's payload.
pub const FRAME_HEADER: usize = 4 + 1 + 16;
/// Frame kinds: a record, or the last record of an append.
pub const KIND_RECORD: u8 = 0;
/// See [`KIND_RECORD`].
pub const KIND_LAST: u8 = 1;

/// A journal's record type.
pub trait JournalRecord: Serialize + DeserializeOwned {
    /// `(format version, generation)` if this is the record that starts a
    /// journal.
    fn begin(&self) -> Option<(u32, u64)>;
}

/// One frame of a journal, as found at an offset.
enum Frame<'a> {
    /// A whole frame whose checksum holds.
    Whole { last: bool, payload: &'a [u8], end: usize },
    /// The frame runs past the end of the bytes.
    Incomplete,
    /// The checksum or the kind is wrong, or the length is absurd.
    Damaged,
}

/// The checksum of a frame: SHA-256 over its head and payload, cut to 16
/// bytes.
pub fn checksum(head: &[u8], payload: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(head);
    h.update(payload);
    let d = h.finalize();
    let mut out = [0; 16];
    out.copy_from_slice(&d[..16]);
    out
}

fn frame_at(bytes: &[u8], at: usize) -> Frame<'_> {
    let Some(head) = bytes.get(at..at + 5) else { return Frame::Incomplete };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_RECORD || head[4] > KIND_LAST {
        return Frame::Damaged;
    }
    let start = at + FRAME_HEADER;
    let Some(payload) = bytes.get(start..start + len) else { return Frame::Incomplete };
    if checksum(head, payload)[..] != bytes[at + 5..start] {
        return Frame::Damaged;
    }
    Frame::Whole { last: head[4] == KIND_LAST, payload, end: start + len }
}

/// True when a whole frame starts anywhere after `at`: the damage at `at`
/// is then not a torn last append.
fn whole_frame_after(bytes: &[u8], at: usize) -> bool {
    (at + 1..bytes.len()).any(|p| matches!(frame_at(bytes, p), Frame::Whole { .. }))
}

/// The frames of one append: `records`, the last one marked.
pub fn encode<R: Serialize>(records: &[R]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    for (i, r) in records.iter().enumerate() {
        // Records are plain data: serialising them cannot fail.
        let payload = Zeroizing::new(serde_json::to_vec(r).unwrap_or_default());
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let kind = if i + 1 == records.len() { KIND_LAST } else { KIND_RECORD };
        let mut head = [0u8; 5];
        head[..4].copy_from_slice(&len.to_be_bytes());
        head[4] = kind;
        out.reserve(FRAME_HEADER + payload.len());
        out.extend_from_slice(&head);
        out.extend_from_slice(&checksum(&head, &payload));
        out.extend_from_slice(&payload);
    }
    out
}

/// A journal read back: its generation and the records of its whole
/// appends (the starting record left out).
#[derive(Debug)]
pub struct JournalRead<R> {
    /// The generation its first record names (`None`: an empty journal).
    pub generation: Option<u64>,
    /// The records of its whole appends, in order.
    pub records: Vec<R>,
    /// Bytes of whole appends; what follows is a torn last append.
    pub whole: usize,
}

/// Reads a journal of format `version` (see the module doc). Errors say
/// what is wrong and at which byte.
pub fn read<R: JournalRecord>(bytes: &[u8], version: u32) -> Result<JournalRead<R>, String> {
    let mut read = JournalRead { generation: None, records: Vec::new(), whole: 0 };
    let mut append = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (last, payload, end) = match frame_at(bytes, at) {
            Frame::Whole { last, payload, end } => (last, payload, end),
            Frame::Incomplete => break,
            Frame::Damaged if !whole_frame_after(bytes, at) => break,
            Frame::Damaged => {
                return Err(format!("journal damaged at byte {at}, with whole records after it"))
            }
        };
        let record: R = serde_json::from_slice(payload)
            .map_err(|e| format!("journal record at byte {at} does not parse: {e}"))?;
        match (record.begin(), read.generation) {
            (Some((v, generation)), None) => {
                if v != version {
                    return Err(format!("journal of format version {v}"));
                }
                read.generation = Some(generation);
            }
            (None, None) => return Err("journal does not start with its generation".into()),
            (Some(_), Some(_)) => return Err(format!("second journal start at byte {at}")),
            (None, Some(_)) => append.push(record),
        }
        at = end;
        if last {
            read.records.append(&mut append);
            read.whole = at;
        }
    }
    Ok(read)
}

/// Writes `bytes` to `dir`/`name` atomically: a temporary file (mode
/// 0600), fsynced, renamed over the old one, and the directory fsynced
/// (so the rename itself survives a power cut). Returns the new file,
/// open, positioned at its end; an error names the file it concerns.
pub fn write_atomically(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<fs::File, (std::path::PathBuf, std::io::Error)> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let at = |p: &Path| {
        let p = p.to_owned();
        move |e| (p, e)
    };
    // A leftover temporary file may have another mode: start from none.
    let _ = fs::remove_file(&tmp);
    let mut f =
        fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(at(&tmp))?;
    // The umask can only narrow the mode; make sure it is exactly 0600.
    f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(at(&tmp))?;
    f.write_all(bytes).map_err(at(&tmp))?;
    f.sync_all().map_err(at(&tmp))?;
    fs::rename(&tmp, &path).map_err(at(&path))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))?;
    Ok(f)
}

/// Cuts a torn last append off the journal at `path` (keeping `len`
/// bytes). Returns a line for the log if that failed.
pub fn cut(path: &Path, len: usize) -> Option<String> {
    let r = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len as u64).and_then(|()| f.sync_all()));
    r.err().map(|e| format!("state file {}: cutting the torn append: {e}", path.display()))
}
