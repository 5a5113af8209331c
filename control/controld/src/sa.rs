//! The SA manager: controld's single source of truth about SAs.
//!
//! It knows, for every SA id, the fingerprint of the SA last installed
//! under it and the highest outbound sequence number used with those keys
//! (persisted, [`crate::state`]), and which SAs the connected fastpathd
//! holds right now (learnt from `Dump` at every synchronisation, forgotten
//! when the connection drops — a restarted fastpathd holds nothing).
//!
//! **Sequence numbers across a fastpathd restart.** A manual-key SA cannot
//! be renegotiated, and the peer's inbound SA keeps its anti-replay window
//! (RFC 4303 §3.4.3): if our re-installed outbound SA started again at 1,
//! the peer would drop everything as replayed until we passed the highest
//! number it saw. So an outbound SA that was installed before resumes at
//! the last sequence number seen in fastpathd's `Stats` plus
//! [`SEQ_MARGIN`]. Stats are read every second ([`STATS_INTERVAL_SECS`]),
//! so the margin must exceed what one SA can send between two readings
//! (and between two writes of the state file, for a restart of both
//! daemons): 2^22 packets covers 4 Mpps for one second, more than a
//! gateway core does, and costs 1/1024 of the 32-bit sequence space per
//! restart. The same record makes an SA removed by `unset` and restored by
//! `set` resume past its old numbers, since the peer kept its SA.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use esprit_fastpath_api::{Direction, Dump, SaSpec, Stats};

use crate::plan::{plan, Plan};
use crate::state::SaRecord;
use crate::translate::{hex_id_of, Desired};

/// Packets added to the last sequence number seen when an outbound SA is
/// re-installed (see the module documentation).
pub const SEQ_MARGIN: u64 = 1 << 22;

/// How often controld reads fastpathd's counters.
pub const STATS_INTERVAL_SECS: u64 = 1;

/// What controld knows about SAs.
#[derive(Debug, Clone, Default)]
pub struct SaManager {
    records: BTreeMap<u64, SaRecord>,
    installed: BTreeSet<u64>,
    packets: BTreeMap<u64, (u64, u64)>,
    dirty: bool,
}

impl SaManager {
    /// A manager that remembers `records` (from the state directory).
    pub fn new(records: BTreeMap<u64, SaRecord>) -> SaManager {
        SaManager { records, ..SaManager::default() }
    }

    /// The persistent records.
    pub fn records(&self) -> &BTreeMap<u64, SaRecord> {
        &self.records
    }

    /// True (once) when the records changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Something outside the records (the HEX IDs) changed: save soon.
    pub fn note_ids_changed(&mut self) {
        self.dirty = true;
    }

    /// True when the connected fastpathd holds this SA.
    pub fn is_installed(&self, id: u64) -> bool {
        self.installed.contains(&id)
    }

    /// The sequence number a re-installed outbound SA resumes from: 0 for
    /// keys never installed under this id, else the last one seen plus
    /// [`SEQ_MARGIN`].
    pub fn resume_seq(&self, id: u64, fingerprint: &str) -> u64 {
        match self.records.get(&id) {
            Some(r) if r.fingerprint == fingerprint => r.seq.saturating_add(SEQ_MARGIN),
            _ => 0,
        }
    }

    /// Plans the synchronisation of fastpathd (its `dump`) with `desired`.
    pub fn plan(&self, dump: &Dump, desired: &Desired) -> Plan {
        let known: BTreeMap<u64, String> =
            self.records.iter().map(|(id, r)| (*id, r.fingerprint.clone())).collect();
        plan(dump, desired, &known, |id, f| self.resume_seq(id, f))
    }

    /// fastpathd holds this SA as planned (adopted, nothing sent).
    pub fn note_kept(&mut self, id: u64) {
        self.installed.insert(id);
    }

    /// fastpathd accepted this SA.
    pub fn note_added(&mut self, spec: &SaSpec, fingerprint: &str) {
        self.installed.insert(spec.id);
        self.records.insert(spec.id, SaRecord { fingerprint: fingerprint.to_owned(), seq: spec.last_seq });
        self.dirty = true;
    }

    /// Forgets the record of an SA whose keys can never come back (IKE).
    pub fn forget(&mut self, id: u64) {
        if self.records.remove(&id).is_some() {
            self.dirty = true;
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
    }

    /// Takes in fastpathd's counters: outbound sequence numbers move
    /// forward (never back), packet counts are kept for display.
    pub fn observe(&mut self, stats: &Stats) {
        for s in &stats.sas {
            self.packets.insert(s.id, (s.packets, s.bytes));
            if s.direction != Some(Direction::Outbound) || !self.installed.contains(&s.id) {
                continue;
            }
            if let Some(r) = self.records.get_mut(&s.id) {
                if s.seq > r.seq {
                    r.seq = s.seq;
                    self.dirty = true;
                }
            }
        }
    }

    /// `get sa`, in ScreenOS's format (KB16008): manual-key SAs with their
    /// SPIs (`A/-` when fastpathd holds them, `I/-` when not), AutoKey
    /// proxy-IDs as inactive entries until IKE negotiates them.
    pub fn render(&self, desired: &Desired) -> String {
        self.render_with_life(desired, &BTreeMap::new())
    }

    /// `get sa` with the seconds of lifetime left of negotiated SAs
    /// (serial not 0): they show `A/U` when fastpathd holds them.
    pub fn render_with_life(&self, desired: &Desired, life: &BTreeMap<u64, u64>) -> String {
        let mut out = String::new();
        let pairs = desired.sas.len() / 2;
        let _ = writeln!(out, "total configured sa: {}", pairs + desired.pending.len());
        out.push_str(SA_HEADER);
        out.push('\n');
        for r in self.rows(desired, life) {
            out.push_str(&r.line());
            out.push('\n');
        }
        out
    }

    /// The rows of `get sa`, in its order (HEX ID, inbound before
    /// outbound): one per SA, two per AutoKey proxy-ID not negotiated.
    pub fn rows(&self, desired: &Desired, life: &BTreeMap<u64, u64>) -> Vec<SaRow> {
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
            rows.push((
                hex_id_of(*id),
                order,
                SaRow {
                    hex_id: hex_id_of(*id),
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
            for (order, direction) in [(0, Direction::Inbound), (1, Direction::Outbound)] {
                rows.push((
                    p.hex_id,
                    order,
                    SaRow {
                        hex_id: p.hex_id,
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

/// The header of `get sa`.
pub const SA_HEADER: &str =
    "HEX ID    Gateway         Port Algorithm     SPI      Life:sec kb Sta   PID vsys";

/// One row of `get sa`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaRow {
    /// The VPN's HEX ID.
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

    /// The line of `get sa` (the format scripts parse: do not change it).
    pub fn line(&self) -> String {
        let mark = match self.direction {
            Direction::Inbound => '<',
            Direction::Outbound => '>',
        };
        format!(
            "{:08x}{mark}{:>16}{:>5} {} {:08x} {:>6} unlim {} {:>5} 0",
            self.hex_id, self.gateway, self.port, self.algorithm, self.spi, self.life, self.sta, -1
        )
    }
}
