//! The SA manager: controld's single source of truth about SAs.
//!
//! It knows, for every SA id, the fingerprint of the SA last installed
//! under it, and for every set of keys (a [`key_digest`] of direction, SPI
//! and keys) the highest sequence number used with them (persisted,
//! [`crate::core::state`]), and which SAs the connected fastpathd holds right now
//! (learnt from `Dump` at every synchronisation, forgotten when the
//! connection drops — a restarted fastpathd holds nothing).
//!
//! **A (key, sequence number) pair is used once** (DESIGN §7). The record
//! is found by the keys, not by the SA id: an SA removed by `unset` and
//! restored by `set`, moved to another proxy-ID or address, or a manual
//! VPN put back to keys it had before, all find the numbers already used.
//!
//! * **Outbound.** A manual-key SA cannot be renegotiated, and the peer's
//!   inbound SA keeps its anti-replay window (RFC 4303 §3.4.3): an SA
//!   installed before resumes at the last sequence number seen in
//!   fastpathd's `Stats` plus [`SEQ_MARGIN`]. Stats are read every second
//!   ([`STATS_INTERVAL_SECS`]), so the margin must exceed what one SA can
//!   send between two readings (and between two writes of the state file,
//!   for a restart of both daemons): 2^22 packets covers 4 Mpps for one
//!   second, more than a gateway core does, and costs 1/1024 of the 32-bit
//!   sequence space per restart.
//! * **Inbound** (no replay after a fastpathd restart). A re-installed
//!   inbound SA does not start with an empty window, or ESP captured
//!   before the restart would be accepted again: its window resumes
//!   ([`esprit_fastpath_api::SaSpec::last_seq`]) above the highest number
//!   accepted at the last reading plus [`inbound_margin`], every number up
//!   to there counted as received. The margin is what the SA could have
//!   accepted since that reading: four times the most it accepted between
//!   two readings, at least [`INBOUND_MARGIN_MIN`], at most [`SEQ_MARGIN`].
//!   Packets the peer sent while fastpathd was down are lost anyway, so a
//!   margin of a few seconds' traffic costs the peer only the packets of
//!   those seconds; a margin of [`SEQ_MARGIN`] would black-hole a quiet
//!   manual-key SA for hours. What it does not cover: a burst of more than
//!   four times an SA's busiest second in the second before a crash.
//!   AutoKey SAs re-installed this way are also rekeyed at once
//!   ([`crate::core::controller::SyncReport::resumed_ike`]), so their old keys
//!   only live until the new pair is up.
//! * **Sequence space.** Without ESN a resume point is capped at 2^32 - 1:
//!   the SA is then exhausted (sends nothing, accepts nothing) rather than
//!   wrapping; IKE rekeys it at its soft limit.
//! * **A lost state file.** If the state directory shows that it had a
//!   state file ([`crate::core::state::STARTED_MARK`]) that is gone, the keys of
//!   the manual-key VPNs configured at start have no record: they may have
//!   carried traffic, so installing them would restart both directions at
//!   0 (our packets dropped by the peer's window, the peer's old packets
//!   accepted again by ours). Those SAs are refused (`get sa` shows them
//!   `I/-`, the log says why) until the operator changes their SPIs and
//!   keys, or confirms with `exec confirm manual-keys`. New keys given
//!   after the start (a `set` or a reload) are installed as usual. AutoKey
//!   SAs are not concerned: IKE negotiates fresh keys.

use std::collections::{BTreeMap, BTreeSet};

use esprit_fastpath_api::{Direction, Dump, SaSpec, Stats};
use ring::hmac;

use crate::core::plan::{plan, Plan};
use crate::core::state::{SaRecord, SeqMark, StateChanges};
use crate::core::translate::Desired;

/// Packets added to the last sequence number seen when an outbound SA is
/// re-installed (see the module documentation).
pub const SEQ_MARGIN: u64 = 1 << 22;

/// The least an inbound window resumes above the last number seen: four
/// default replay windows (RFC 4303 §3.4.3).
pub const INBOUND_MARGIN_MIN: u64 = 256;

/// How often controld reads fastpathd's counters.
pub const STATS_INTERVAL_SECS: u64 = 1;

/// What an inbound window adds above the last number seen, given the most
/// packets the SA accepted between two readings (module documentation).
pub fn inbound_margin(peak: u64) -> u64 {
    peak.saturating_mul(4).clamp(INBOUND_MARGIN_MIN, SEQ_MARGIN)
}

/// The highest sequence number an SA can carry (RFC 4303 §2.2: 32 bits
/// without ESN).
fn seq_max(spec: &SaSpec) -> u64 {
    if spec.esn {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    }
}

/// A keyed one-way digest of what makes a (key, sequence number) pair:
/// direction, SPI, suite and keys (HMAC-SHA-256 under the state's secret,
/// so a weak manual key cannot be tried offline against a copy of the
/// state file). Nothing else: a proxy-ID, an address, an SA id do not
/// change the keys.
pub fn key_digest(secret: &[u8], spec: &SaSpec) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"esprit-controld key digest v1\0");
    ctx.update(&[u8::from(spec.direction == Direction::Outbound)]);
    ctx.update(&spec.spi.to_be_bytes());
    for part in [spec.suite.name().as_bytes(), spec.encr_key.as_bytes(), spec.integ_key.as_bytes()] {
        ctx.update(&(part.len() as u32).to_be_bytes());
        ctx.update(part);
    }
    hex::encode(ctx.sign().as_ref())
}

/// What controld knows about SAs.
#[derive(Debug, Clone, Default)]
pub struct SaManager {
    records: BTreeMap<u64, SaRecord>,
    seqs: BTreeMap<String, SeqMark>,
    secret: Vec<u8>,
    installed: BTreeSet<u64>,
    packets: BTreeMap<u64, (u64, u64)>,
    /// The sequence number and packets counted (delivered plus errors) of
    /// each SA at the last reading (for the peak).
    last_reading: BTreeMap<u64, (u64, u64)>,
    /// Key digests refused until confirmed (a lost state file).
    unconfirmed: BTreeSet<String>,
    /// What changed since the state was last written.
    changes: StateChanges,
}

impl SaManager {
    /// A manager that remembers `records` (from the state directory).
    pub fn new(records: BTreeMap<u64, SaRecord>) -> SaManager {
        SaManager::with_seqs(records, BTreeMap::new(), Vec::new())
    }

    /// A manager that remembers `records` and the sequence numbers of
    /// `seqs`, with the secret of the key digests.
    pub fn with_seqs(
        records: BTreeMap<u64, SaRecord>,
        seqs: BTreeMap<String, SeqMark>,
        secret: Vec<u8>,
    ) -> SaManager {
        SaManager { records, seqs, secret, ..SaManager::default() }
    }

    /// Key digests held back (see [`SaManager::state_lost`]): persisted.
    pub fn unconfirmed(&self) -> &BTreeSet<String> {
        &self.unconfirmed
    }

    /// Holds back these key digests again (from the state directory).
    pub fn hold_back(&mut self, digests: BTreeSet<String>) {
        self.unconfirmed.extend(digests);
        self.changes.ids = true;
    }

    /// The secret of the key digests (persisted with the state).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The sequence numbers by key digest (persisted).
    pub fn seqs(&self) -> &BTreeMap<String, SeqMark> {
        &self.seqs
    }

    /// The key digest of an SA under this manager's secret.
    pub fn digest(&self, spec: &SaSpec) -> String {
        key_digest(&self.secret, spec)
    }

    /// The state file was lost: refuse the manual-key SAs of `desired`
    /// whose keys have no record until [`SaManager::confirm`].
    pub fn state_lost(&mut self, desired: &Desired) {
        for d in desired.sas.values().filter(|d| d.manual) {
            let digest = self.digest(&d.spec);
            if !self.seqs.contains_key(&digest) {
                self.unconfirmed.insert(digest);
                self.changes.ids = true;
            }
        }
    }

    /// True when this SA waits for the operator (see [`SaManager::state_lost`]).
    pub fn is_unconfirmed(&self, spec: &SaSpec) -> bool {
        !self.unconfirmed.is_empty() && self.unconfirmed.contains(&self.digest(spec))
    }

    /// The operator confirms the keys: install them from sequence number 0.
    /// Returns how many SAs of `desired` were waiting.
    pub fn confirm(&mut self, desired: &Desired) -> usize {
        let n = desired.sas.values().filter(|d| self.is_unconfirmed(&d.spec)).count();
        if !self.unconfirmed.is_empty() {
            self.unconfirmed.clear();
            self.changes.ids = true;
        }
        n
    }

    /// The persistent records.
    pub fn records(&self) -> &BTreeMap<u64, SaRecord> {
        &self.records
    }

    /// What changed since the last call (see [`StateChanges`]).
    pub fn take_changes(&mut self) -> StateChanges {
        std::mem::take(&mut self.changes)
    }

    /// True when something changed since [`SaManager::take_changes`].
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Something outside the records (the HEX IDs) changed: save soon.
    pub fn note_ids_changed(&mut self) {
        self.changes.ids = true;
    }

    /// True when the connected fastpathd holds this SA.
    pub fn is_installed(&self, id: u64) -> bool {
        self.installed.contains(&id)
    }

    /// The sequence number an SA resumes from (its `last_seq`): 0 for keys
    /// never installed; outbound, the last one used plus [`SEQ_MARGIN`];
    /// inbound, the last one accepted plus [`inbound_margin`]; never above
    /// what the SA can carry.
    pub fn resume_seq(&self, spec: &SaSpec) -> u64 {
        let legacy;
        let m = match self.seqs.get(&self.digest(spec)) {
            Some(m) => m,
            // A state file of an earlier esprit: records by SA id only.
            None => match self.records.get(&spec.id) {
                Some(r) if r.keys.is_empty() && r.fingerprint == crate::core::plan::fingerprint(spec) => {
                    legacy = SeqMark { seq: r.seq, peak: 0 };
                    &legacy
                }
                _ => return 0,
            },
        };
        let margin = match spec.direction {
            Direction::Outbound => SEQ_MARGIN,
            Direction::Inbound => inbound_margin(m.peak),
        };
        m.seq.saturating_add(margin).min(seq_max(spec))
    }

    /// Plans the synchronisation of fastpathd (its `dump`) with `desired`.
    /// Manual-key SAs waiting for confirmation are left out.
    pub fn plan(&self, dump: &Dump, desired: &Desired) -> Plan {
        // The plan consults the fingerprints of the SAs fastpathd holds
        // only.
        let known: BTreeMap<u64, String> = dump
            .sas
            .iter()
            .filter_map(|(id, ..)| self.records.get(id).map(|r| (*id, r.fingerprint.clone())))
            .collect();
        if self.unconfirmed.is_empty() {
            return plan(dump, desired, &known, |s| self.resume_seq(s));
        }
        let mut d = desired.clone();
        d.sas.retain(|_, s| !self.is_unconfirmed(&s.spec));
        plan(dump, &d, &known, |s| self.resume_seq(s))
    }

    /// fastpathd holds this SA as planned (adopted, nothing sent). A record
    /// from an earlier esprit's state file gets its key digest here.
    pub fn note_kept(&mut self, spec: &SaSpec) {
        self.installed.insert(spec.id);
        let digest = self.digest(spec);
        if let Some(r) = self.records.get_mut(&spec.id).filter(|r| r.keys.is_empty()) {
            r.keys = digest.clone();
            let mark = self.seqs.entry(digest.clone()).or_default();
            mark.seq = mark.seq.max(r.seq);
            self.changes.sas.insert(spec.id);
            self.changes.seqs.insert(digest);
        }
    }

    /// fastpathd accepted this SA.
    pub fn note_added(&mut self, spec: &SaSpec, fingerprint: &str) {
        self.installed.insert(spec.id);
        self.last_reading.remove(&spec.id);
        let keys = self.digest(spec);
        let mark = self.seqs.entry(keys.clone()).or_default();
        mark.seq = mark.seq.max(spec.last_seq);
        self.changes.seqs.insert(keys.clone());
        self.records
            .insert(spec.id, SaRecord { fingerprint: fingerprint.to_owned(), seq: spec.last_seq, keys });
        self.changes.sas.insert(spec.id);
    }

    /// Forgets the record of an SA whose keys can never come back (IKE).
    pub fn forget(&mut self, id: u64) {
        if let Some(r) = self.records.remove(&id) {
            self.seqs.remove(&r.keys);
            self.changes.sas.insert(id);
            self.changes.seqs.insert(r.keys);
        }
    }

    /// fastpathd removed this SA. Its record stays: the same keys may come
    /// back, and must not reuse sequence numbers.
    pub fn note_removed(&mut self, id: u64) {
        self.installed.remove(&id);
        self.packets.remove(&id);
    }

    /// The connection to fastpathd is gone: it may have restarted.
    pub fn fastpath_lost(&mut self) {
        self.installed.clear();
        self.packets.clear();
        self.last_reading.clear();
    }

    /// Takes in fastpathd's counters: the sequence numbers of both
    /// directions move forward (never back), with the most packets seen
    /// between two readings; packet counts are kept for display.
    pub fn observe(&mut self, stats: &Stats) {
        for s in &stats.sas {
            self.packets.insert(s.id, (s.packets, s.bytes));
            if s.direction.is_none() || !self.installed.contains(&s.id) {
                continue;
            }
            let Some(r) = self.records.get_mut(&s.id).filter(|r| !r.keys.is_empty()) else { continue };
            // Packets that moved the window: delivered, or dropped after
            // decryption (the inner-selector check counts an error).
            let counted = s.packets.saturating_add(s.errors);
            let previous = self.last_reading.insert(s.id, (s.seq, counted));
            if s.seq > r.seq {
                r.seq = s.seq;
                self.changes.sas.insert(s.id);
            }
            let mark = self.seqs.entry(r.keys.clone()).or_default();
            let mut moved = false;
            if let Some((seq, packets)) = previous {
                // What the SA accepted between the readings: the window's
                // move, but never more than the packets counted. A peer's
                // re-installed manual-key SA jumps its numbers by
                // SEQ_MARGIN with one packet; that jump is not traffic,
                // and taken as a peak it would resume this window 2^22
                // above and black-hole the peer after our next restart.
                let step = s.seq.saturating_sub(seq).min(counted.saturating_sub(packets));
                if step > mark.peak {
                    mark.peak = step;
                    moved = true;
                }
            }
            if s.seq > mark.seq {
                mark.seq = s.seq;
                moved = true;
            }
            if moved {
                self.changes.seqs.insert(r.keys.clone());
            }
        }
    }

    /// The rows of `get sa`, in its order (HEX ID, inbound before
    /// outbound): one per SA, two per AutoKey proxy-ID not negotiated.
    /// `tunnel_id` gives the HEX ID of a (VPN, proxy-ID): its tunnel ID
    /// ([`crate::core::ids`]).
    pub fn rows(
        &self,
        desired: &Desired,
        life: &BTreeMap<u64, u64>,
        tunnel_id: impl Fn(&str, &str) -> u32,
    ) -> Vec<SaRow> {
        let mut rows: Vec<(u32, u8, SaRow)> = Vec::new();
        for (id, d) in &desired.sas {
            let s = &d.spec;
            let order = match s.direction {
                Direction::Inbound => 0,
                Direction::Outbound => 1,
            };
            let negotiated = !d.manual;
            let sta = match (self.installed.contains(id), negotiated) {
                (true, true) => "A/U",
                (true, false) => "A/-",
                (false, _) => "I/-",
            };
            let secs = life.get(id).map(|s| s.to_string());
            let life_word = secs.unwrap_or_else(|| if negotiated { "-" } else { "expir" }.to_owned());
            let hex_id = tunnel_id(&d.vpn_name, &s.proxy_id);
            rows.push((
                hex_id,
                order,
                SaRow {
                    hex_id,
                    id: Some(*id),
                    direction: s.direction,
                    gateway: s.peer.to_string(),
                    // NAT-T: the peer's port of ESP in UDP (4500).
                    port: s.udp_encap.map_or(500, |(_, port)| port),
                    algorithm: d.algorithm.clone(),
                    spi: s.spi,
                    life: life_word,
                    sta,
                    vpn: d.vpn_name.clone(),
                    proxy_id: s.proxy_id.clone(),
                    manual: d.manual,
                },
            ));
        }
        for p in &desired.pending {
            let peer = p.peer.map(|a| a.to_string()).unwrap_or_else(|| "0.0.0.0".into());
            let hex_id = tunnel_id(&p.vpn_name, &p.proxy_id);
            for (order, direction) in [(0, Direction::Inbound), (1, Direction::Outbound)] {
                rows.push((
                    hex_id,
                    order,
                    SaRow {
                        hex_id,
                        id: None,
                        direction,
                        gateway: peer.clone(),
                        port: 500,
                        algorithm: p.algorithm.clone(),
                        spi: 0,
                        life: "0".into(),
                        sta: "I/-",
                        vpn: p.vpn_name.clone(),
                        proxy_id: p.proxy_id.clone(),
                        manual: false,
                    },
                ));
            }
        }
        // Stable: rows of one HEX ID keep the order above.
        rows.sort_by_key(|r| (r.0, r.1));
        rows.into_iter().map(|(_, _, r)| r).collect()
    }

    /// Packets and bytes of an SA at the last reading of the counters.
    pub fn counters(&self, id: u64) -> Option<(u64, u64)> {
        self.packets.get(&id).copied()
    }
}

/// The header of `get sa`: ScreenOS's columns, each label over its
/// column ([`SaRow::line`]'s widths; the Algorithm column holds the
/// longest name, `esp:aes256/sha256`).
pub const SA_HEADER: &str =
    "HEX ID    Gateway          Port Algorithm         SPI      Life:sec    kb Sta   PID vsys";

/// One row of `get sa`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaRow {
    /// Its proxy-ID's tunnel ID ([`crate::core::ids`]).
    pub hex_id: u32,
    /// The SA id (`None`: an AutoKey proxy-ID not negotiated yet).
    pub id: Option<u64>,
    /// Inbound (`<`) or outbound (`>`).
    pub direction: Direction,
    /// The peer's address.
    pub gateway: String,
    /// The peer's port (4500 with NAT-T).
    pub port: u16,
    /// `esp:aes128/sha1`.
    pub algorithm: String,
    /// The SPI (0 when not negotiated).
    pub spi: u32,
    /// Seconds of lifetime left, `expir` (manual keys) or `-`.
    pub life: String,
    /// `A/U` (negotiated, installed), `A/-` (manual, installed), `I/-`.
    pub sta: &'static str,
    /// The VPN.
    pub vpn: String,
    /// The proxy-ID in ScreenOS words.
    pub proxy_id: String,
    /// A manual-key SA.
    pub manual: bool,
}

impl SaRow {
    /// True when fastpathd holds the SA.
    pub fn is_active(&self) -> bool {
        self.sta.starts_with('A')
    }

    /// The line of `get sa`, in columns under [`SA_HEADER`]. Scripts
    /// split it on blanks (HEX ID and direction, gateway, port, algorithm,
    /// SPI, lifetime, kB, state, PID, vsys): the order of the fields stays.
    pub fn line(&self) -> String {
        let mark = match self.direction {
            Direction::Inbound => '<',
            Direction::Outbound => '>',
        };
        format!(
            "{:08x}{mark} {:<15} {:>5} {:<17} {:08x} {:>8} unlim {:<3} {:>5} 0",
            self.hex_id, self.gateway, self.port, self.algorithm, self.spi, self.life, self.sta, -1
        )
    }
}
