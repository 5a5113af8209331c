//! controld's state directory: what must survive a restart of controld.
//!
//! One file, `controld.json` (mode 0600, written to a temporary file and
//! renamed, so a crash leaves the old or the new version, never half):
//!
//! * the VPN HEX IDs and the proxy-IDs' tunnel IDs that were assigned (so
//!   VPNs and proxy-IDs keep their numbers);
//! * per SA id, the fingerprint of the SA last installed under it and the
//!   key digest of its keys;
//! * per key digest, the highest sequence number seen in fastpathd's
//!   `Stats` with those keys in that direction (outbound: sent; inbound:
//!   accepted), whatever SA id, proxy-ID or address carried them.
//!
//! Next to it, `controld.started` is created at the first save and never
//! removed: a directory with it and without `controld.json` lost its state
//! (see [`crate::core::sa`] for what controld then refuses).
//!
//! The sequence numbers are the reason the file is written periodically:
//! see [`crate::core::sa::SEQ_MARGIN`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the state file in the state directory.
pub const STATE_FILE: &str = "controld.json";

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
}

impl State {
    /// Reads the state of `dir` (creating the directory, mode 0700); an
    /// absent file is an empty state.
    pub fn load(dir: &Path) -> Result<State, StateError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        let path = dir.join(STATE_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Format { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(State { version: 1, lost: dir.join(STARTED_MARK).exists(), ..State::default() })
            }
            Err(e) => Err(StateError::Io { path, source: e }),
        }
    }

    /// Writes the state atomically (temporary file, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| StateError::Io { path: p, source }
        };
        let mut state = self.clone();
        state.version = 1;
        let bytes = serde_json::to_vec_pretty(&state)
            .map_err(|source| StateError::Format { path: path.clone(), source })?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        let mark = dir.join(STARTED_MARK);
        if !mark.exists() {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&mark)
                .map_err(io(&mark))?;
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
}
