//! Export and import of a [`Peer`]'s established state, so that the
//! process that drives it can be killed and started again without
//! renegotiating: the ISAKMP SA (cookies, SKEYID chain, the phase-1 IV
//! that seeds every later exchange's IV, RFC 2409 Appendix B), the child
//! SA pairs it knows of (to match Deletes), the addresses in use (NAT-T
//! floated or not) and the DPD sequence number (RFC 3706 §7).
//!
//! What is *not* carried over: exchanges in flight (a phase 1 or Quick Mode
//! half done, a DPD probe waiting for its ACK) and the answers kept for
//! retransmitted messages. After a restart the peer's retransmission of
//! such an exchange goes unanswered and the exchange fails on its side
//! after its retries; the side that wanted it starts it again. The ISAKMP
//! SA and the child SAs, which carry traffic, are unaffected.
//!
//! The export comes whole ([`Peer::export_state`]) or in parts whose size
//! does not grow with the number of child SAs, for a caller that writes
//! only what changed: the peer without its children and message IDs
//! ([`Peer::export_header`]), the message IDs used since a given one
//! ([`Peer::message_ids_after`]); the children change only with a
//! `ChildSaUp` or `ChildSaDown` event, which carries what the caller
//! needs to follow them.
//!
//! The export is plain data ([`PeerState`]): monotonic [`Instant`]s become
//! wall-clock milliseconds since the Unix epoch ([`WallClock`]) and back,
//! keys are hex strings on disk ([`Secret`]: zeroized when dropped, never
//! shown by `Debug`). The caller stores it (controld: `ike.json` and
//! `ike.journal`, mode 0600) and must keep it as secret as the pre-shared
//! key.
//!
//! Import never panics on what it reads: every length and number is
//! checked, and a state that does not fit this peer's configuration is
//! refused with a [`PersistError`] that says what and where, leaving the
//! peer as it was.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::IkeProposal;
use crate::crypto::dh::DhGroup;
use crate::crypto::keys::Phase1Keys;
use crate::crypto::{EncryptionAlg, HashAlg, BLOCK};
use crate::ike_sa::IkeSa;
use crate::peer::{ChildRecord, Peer};
use crate::Random;

/// How far the DPD sequence number jumps on import. The state is written
/// in batches (controld: at most once a second when only DPD moved), so
/// the last R-U-THERE sent may be a few numbers past the one on disk; the
/// peer may ignore an R-U-THERE whose number is not above the last one
/// it saw (RFC 3706 §7), so the next one must be well past it.
pub const DPD_SEQ_MARGIN: u32 = 1024;

/// How many message IDs of an ISAKMP SA are remembered (the oldest are
/// forgotten first): a saved list longer than this keeps its newest.
pub const MESSAGE_IDS_KEPT: usize = crate::guard::MessageIds::CAPACITY;

/// The two clocks at one moment: converts monotonic times to wall-clock
/// milliseconds (on disk) and back.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    /// The monotonic clock now.
    pub now: Instant,
    /// The wall clock at the same moment.
    pub wall: SystemTime,
}

impl WallClock {
    /// Both clocks read now.
    pub fn read() -> WallClock {
        WallClock { now: Instant::now(), wall: SystemTime::now() }
    }

    fn wall_ms(&self) -> u64 {
        let d = self.wall.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    /// `t` as milliseconds since the Unix epoch.
    pub fn to_unix_ms(&self, t: Instant) -> u64 {
        let wall = self.wall_ms();
        if t >= self.now {
            let ahead = u64::try_from((t - self.now).as_millis()).unwrap_or(u64::MAX);
            wall.saturating_add(ahead)
        } else {
            let ago = u64::try_from((self.now - t).as_millis()).unwrap_or(u64::MAX);
            wall.saturating_sub(ago)
        }
    }

    /// Milliseconds since the Unix epoch as a monotonic time. A time
    /// further back than the monotonic clock reaches (it starts at boot)
    /// is the oldest it can show, which is still in the past.
    pub fn from_unix_ms(&self, ms: u64) -> Instant {
        let wall = self.wall_ms();
        if ms >= wall {
            self.now + Duration::from_millis(ms - wall)
        } else {
            let ago = Duration::from_millis(wall - ms);
            self.now.checked_sub(ago).unwrap_or_else(|| oldest_instant(self.now, ago))
        }
    }
}

/// The earliest instant at most `ago` before `now` (halving the step).
fn oldest_instant(now: Instant, ago: Duration) -> Instant {
    let mut t = now;
    let mut step = ago;
    while step > Duration::from_millis(1) {
        if let Some(x) = t.checked_sub(step) {
            t = x;
        } else {
            step /= 2;
        }
    }
    t
}

/// Key material on disk: hex, zeroized when dropped, never in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Zeroizing<Vec<u8>>);

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "<{} secret bytes>", self.0.len())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(hex::encode(&*self.0));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        hex::decode(&*text)
            .map(|v| Secret(Zeroizing::new(v)))
            .map_err(|e| serde::de::Error::custom(format!("key is not hex: {e}")))
    }
}

/// Bytes as hex (cookies, IVs: not secret).
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v.as_ref()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<Vec<u8>>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        let v = hex::decode(&text).map_err(|e| serde::de::Error::custom(format!("not hex: {e}")))?;
        let n = v.len();
        T::try_from(v).map_err(|_| serde::de::Error::custom(format!("{n} bytes: wrong length")))
    }
}

/// An established ISAKMP SA as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsakmpState {
    /// Initiator cookie (hex).
    #[serde(with = "hex_bytes")]
    pub icookie: [u8; 8],
    /// Responder cookie (hex).
    #[serde(with = "hex_bytes")]
    pub rcookie: [u8; 8],
    /// We ran phase 1 as its initiator.
    pub initiator: bool,
    /// AES key size in bits (RFC 2409 Appendix A, attribute 14).
    pub cipher_bits: u16,
    /// Hash algorithm number (RFC 2409 Appendix A: 2 SHA, 4 SHA2-256).
    pub hash: u16,
    /// Diffie-Hellman group number.
    pub group: u16,
    /// SKEYID (authenticates phase 1 retransmissions' hashes).
    pub skeyid: Secret,
    /// SKEYID_d (keys every Quick Mode).
    pub skeyid_d: Secret,
    /// SKEYID_a (authenticates Quick Mode and Informational messages).
    pub skeyid_a: Secret,
    /// The encryption key derived from SKEYID_e.
    pub enc_key: Secret,
    /// The last CBC block of phase 1 (RFC 2409 Appendix B).
    #[serde(with = "hex_bytes")]
    pub p1_iv: Vec<u8>,
    /// NAT-T in use (IKE and ESP on UDP 4500).
    pub nat: bool,
    /// The peer supports DPD (RFC 3706).
    pub peer_dpd: bool,
    /// The peer sent esprit's vendor ID (absent in older files: false).
    #[serde(default)]
    pub peer_esprit: bool,
    /// When it was established, in milliseconds since the Unix epoch.
    pub established_unix_ms: u64,
    /// Negotiated lifetime in seconds (0: none).
    pub lifetime: u32,
    /// The peer sent INITIAL-CONTACT in phase 1.
    pub peer_initial_contact: bool,
    /// Message IDs already used under this ISAKMP SA, oldest first (a
    /// Quick Mode or Informational message replayed after a restart is
    /// still refused: RFC 2408 §3.1).
    #[serde(default)]
    pub message_ids: Vec<u32>,
}

/// A child SA pair the peer knows of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildState {
    /// The proxy-ID, in ScreenOS words.
    pub proxy_id: String,
    /// Our SPI.
    pub spi_in: u32,
    /// The peer's SPI.
    pub spi_out: u32,
}

/// Everything of a [`Peer`] that survives a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    /// The gateway's name (must match the configuration's).
    pub name: String,
    /// The peer's configured address (a dynamic peer's: the one learnt).
    pub configured_remote: SocketAddr,
    /// Our address in use (port 4500 once NAT-T floated).
    pub local: SocketAddr,
    /// The peer's address in use.
    pub remote: SocketAddr,
    /// The ISAKMP SA, if one is established.
    pub isakmp: Option<IsakmpState>,
    /// Child SA pairs.
    pub children: Vec<ChildState>,
    /// The sequence number of our last R-U-THERE.
    pub dpd_seq: u32,
    /// The rekey of this ISAKMP SA was started already (one try per SA).
    pub rekey_started: bool,
    /// Our address is translated by a NAT (RFC 3947 §3.2): NAT-keepalives
    /// go on after the restart (RFC 3948 §2.3).
    #[serde(default)]
    pub behind_nat: bool,
}

/// Why a saved state cannot be taken in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The state belongs to another gateway.
    #[error("peer {peer}: the saved state is gateway {saved}'s")]
    OtherPeer { peer: String, saved: String },
    /// The peer's address changed in the configuration.
    #[error("peer {peer}: saved for peer address {saved}, configured {configured}")]
    AddressChanged { peer: String, saved: SocketAddr, configured: SocketAddr },
    /// A field does not make sense.
    #[error("peer {peer}: saved state: {what}")]
    Invalid { peer: String, what: String },
}

impl<R: Random> Peer<R> {
    /// The peer's state as plain data (see the module doc for what is
    /// left out). Key material is in it: store it as secret as the PSK.
    pub fn export_state(&self, clock: &WallClock) -> PeerState {
        let mut s = self.export_header(clock);
        if let (Some(i), Some(ike)) = (s.isakmp.as_mut(), self.ike.as_ref()) {
            i.message_ids = ike.msgids.iter().collect();
        }
        s.children = self
            .children
            .iter()
            .map(|c| ChildState { proxy_id: c.proxy_id.to_string(), spi_in: c.spi_in, spi_out: c.spi_out })
            .collect();
        s
    }

    /// [`Peer::export_state`] without the child SAs and the message IDs:
    /// its size does not depend on how many exchanges ran.
    pub fn export_header(&self, clock: &WallClock) -> PeerState {
        let isakmp = self.ike.as_ref().map(|s| IsakmpState {
            icookie: s.icookie,
            rcookie: s.rcookie,
            initiator: s.initiator,
            cipher_bits: s.proposal.cipher.key_bits(),
            hash: s.proposal.hash.value(),
            group: s.proposal.group.number(),
            skeyid: Secret(s.keys.skeyid.clone()),
            skeyid_d: Secret(s.keys.skeyid_d.clone()),
            skeyid_a: Secret(s.keys.skeyid_a.clone()),
            enc_key: Secret(s.keys.enc_key.clone()),
            p1_iv: s.p1_iv.clone(),
            nat: s.nat,
            peer_dpd: s.peer_dpd,
            peer_esprit: s.peer_esprit,
            established_unix_ms: clock.to_unix_ms(s.established),
            lifetime: s.lifetime,
            peer_initial_contact: s.peer_initial_contact,
            message_ids: Vec::new(),
        });
        PeerState {
            name: self.cfg.name.clone(),
            configured_remote: self.cfg.remote,
            local: self.local,
            remote: self.remote,
            rekey_started: isakmp.as_ref().is_some_and(|s| self.rekey_started_for == Some(s.icookie)),
            isakmp,
            children: Vec::new(),
            dpd_seq: self.dpd.seq,
            behind_nat: self.behind_nat,
        }
    }

    /// The message IDs of the ISAKMP SA (none: `None`) used since `after`
    /// (its initiator cookie and the last ID the caller has), oldest
    /// first, with the SA's initiator cookie. Every ID when `after` is
    /// another SA's or was forgotten already. Costs what is returned.
    pub fn message_ids_after(&self, after: Option<([u8; 8], u32)>) -> Option<([u8; 8], Vec<u32>)> {
        let ike = self.ike.as_ref()?;
        let last = after.filter(|(c, _)| *c == ike.icookie).map(|(_, id)| id);
        let mut ids: Vec<u32> = ike.msgids.iter().rev().take_while(|id| Some(*id) != last).collect();
        ids.reverse();
        Some((ike.icookie, ids))
    }

    /// Takes in a state exported by [`Peer::export_state`] (by this or an
    /// earlier process): the peer resumes the ISAKMP SA and knows the
    /// child SAs, as if it had never stopped. Exchanges in progress here
    /// are abandoned. Checked in full before anything changes: on error
    /// the peer is as it was.
    pub fn import_state(&mut self, s: &PeerState, clock: &WallClock) -> Result<(), PersistError> {
        let peer = self.cfg.name.clone();
        let invalid = |what: String| PersistError::Invalid { peer: peer.clone(), what };
        if s.name != self.cfg.name {
            return Err(PersistError::OtherPeer { peer, saved: s.name.clone() });
        }
        if !self.cfg.dynamic && s.configured_remote.ip() != self.cfg.remote.ip() {
            return Err(PersistError::AddressChanged {
                peer,
                saved: s.configured_remote,
                configured: self.cfg.remote,
            });
        }
        if s.local.ip() != self.cfg.local.ip() {
            return Err(invalid(format!(
                "local address {} is not the configured {}",
                s.local, self.cfg.local
            )));
        }
        let mut children = Vec::with_capacity(s.children.len());
        for c in &s.children {
            let proxy_id = c
                .proxy_id
                .parse()
                .map_err(|e| invalid(format!("child SA {:08x}: proxy-id: {e}", c.spi_in)))?;
            if c.spi_in <= 255 || c.spi_out <= 255 {
                // RFC 4303 §2.1: 1-255 are reserved, 0 is never an SPI.
                return Err(invalid(format!("child SA {:08x}/{:08x}: reserved SPI", c.spi_in, c.spi_out)));
            }
            children.push(ChildRecord { proxy_id, spi_in: c.spi_in, spi_out: c.spi_out });
        }
        let ike = match &s.isakmp {
            None => None,
            Some(i) => Some(isakmp_sa(i, clock).map_err(|what| invalid(format!("ISAKMP SA: {what}")))?),
        };
        self.local = s.local;
        self.remote = s.remote;
        if self.cfg.dynamic {
            self.cfg.remote = s.configured_remote;
        }
        self.rx_local = self.local;
        self.rx_remote = self.remote;
        self.rekey_started_for = ike.as_ref().filter(|_| s.rekey_started).map(|i| i.icookie);
        self.ike = ike;
        self.children = children;
        self.phase1 = None;
        self.quick.clear();
        self.quick_done.clear();
        self.queued.clear();
        self.replays.clear();
        self.responders.clear();
        self.behind_nat = s.behind_nat;
        if let Some(ike) = self.ike.as_mut() {
            ike.behind_nat = s.behind_nat;
        }
        // The NAT may have dropped its mapping while we were away: the
        // first keepalive goes at once.
        self.next_keepalive = Some(clock.now);
        self.dpd.seq = s.dpd_seq.wrapping_add(DPD_SEQ_MARGIN);
        self.dpd.pending = None;
        // DPD counts its delay from now: the peer was heard when the state
        // was written, and the restart took less than a DPD delay.
        self.last_heard = Some(clock.now);
        Ok(())
    }
}

fn isakmp_sa(i: &IsakmpState, clock: &WallClock) -> Result<IkeSa, String> {
    let cipher = EncryptionAlg::from_key_bits(u64::from(i.cipher_bits))
        .ok_or_else(|| format!("unknown cipher key size {}", i.cipher_bits))?;
    let hash = HashAlg::from_value(u64::from(i.hash)).ok_or_else(|| format!("unknown hash {}", i.hash))?;
    let group =
        DhGroup::from_number(u64::from(i.group)).ok_or_else(|| format!("unknown DH group {}", i.group))?;
    if i.icookie == [0; 8] || i.rcookie == [0; 8] {
        return Err("zero cookie".into());
    }
    for (name, key) in [("SKEYID", &i.skeyid), ("SKEYID_d", &i.skeyid_d), ("SKEYID_a", &i.skeyid_a)] {
        if key.0.len() != hash.output_len() {
            return Err(format!("{name} is {} bytes, {hash:?} needs {}", key.0.len(), hash.output_len()));
        }
    }
    if i.enc_key.0.len() != cipher.key_len() {
        return Err(format!("encryption key is {} bytes, needs {}", i.enc_key.0.len(), cipher.key_len()));
    }
    if i.p1_iv.len() != BLOCK {
        return Err(format!("phase-1 IV is {} bytes, needs {BLOCK}", i.p1_iv.len()));
    }
    Ok(IkeSa {
        icookie: i.icookie,
        rcookie: i.rcookie,
        initiator: i.initiator,
        keys: Phase1Keys {
            hash,
            cipher,
            skeyid: i.skeyid.0.clone(),
            skeyid_d: i.skeyid_d.0.clone(),
            skeyid_a: i.skeyid_a.0.clone(),
            enc_key: i.enc_key.0.clone(),
        },
        p1_iv: i.p1_iv.clone(),
        proposal: IkeProposal { cipher, hash, group },
        nat: i.nat,
        behind_nat: false,
        peer_dpd: i.peer_dpd,
        peer_esprit: i.peer_esprit,
        established: clock.from_unix_ms(i.established_unix_ms),
        lifetime: i.lifetime,
        peer_initial_contact: i.peer_initial_contact,
        msgids: {
            let mut ids = crate::guard::MessageIds::default();
            for &id in &i.message_ids {
                ids.insert(id);
            }
            ids
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn wall_clock_round_trips_past_and_future() {
        let c = WallClock::read();
        for t in [c.now, c.now + Duration::from_secs(3600), c.now - Duration::from_millis(1500)] {
            let back = c.from_unix_ms(c.to_unix_ms(t));
            let diff = if back > t { back - t } else { t - back };
            assert!(diff < Duration::from_millis(1), "{diff:?}");
        }
        // Before boot: clamped to the oldest instant, still in the past.
        let t = c.from_unix_ms(0);
        assert!(t <= c.now);
    }

    #[test]
    fn secrets_are_hex_on_disk_and_hidden_in_debug() {
        let s = Secret(Zeroizing::new(vec![0xab, 0x01]));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"ab01\"");
        assert_eq!(format!("{s:?}"), "<2 secret bytes>");
        let back: Secret = serde_json::from_str("\"ab01\"").unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<Secret>("\"xyz\"").unwrap_err().to_string().contains("not hex"));
    }

    fn isakmp() -> IsakmpState {
        IsakmpState {
            icookie: [1; 8],
            rcookie: [2; 8],
            initiator: true,
            cipher_bits: 128,
            hash: 2,
            group: 14,
            skeyid: Secret(Zeroizing::new(vec![3; 20])),
            skeyid_d: Secret(Zeroizing::new(vec![4; 20])),
            skeyid_a: Secret(Zeroizing::new(vec![5; 20])),
            enc_key: Secret(Zeroizing::new(vec![6; 16])),
            p1_iv: vec![7; 16],
            nat: false,
            peer_dpd: true,
            peer_esprit: true,
            established_unix_ms: 1_700_000_000_000,
            lifetime: 28800,
            peer_initial_contact: false,
            message_ids: vec![0x1234_5678],
        }
    }

    /// Every malformed field is refused with what is wrong; none panics.
    #[test]
    fn malformed_isakmp_state_is_refused() {
        let c = WallClock::read();
        assert!(isakmp_sa(&isakmp(), &c).is_ok());
        type Breaks = Box<dyn Fn(&mut IsakmpState)>;
        let cases: Vec<(Breaks, &str)> = vec![
            (Box::new(|s| s.cipher_bits = 100), "unknown cipher key size 100"),
            (Box::new(|s| s.hash = 99), "unknown hash 99"),
            (Box::new(|s| s.group = 99), "unknown DH group 99"),
            (Box::new(|s| s.rcookie = [0; 8]), "zero cookie"),
            (Box::new(|s| s.skeyid_a.0.truncate(3)), "SKEYID_a is 3 bytes"),
            (Box::new(|s| s.enc_key.0.push(0)), "encryption key is 17 bytes, needs 16"),
            (Box::new(|s| s.p1_iv.clear()), "phase-1 IV is 0 bytes, needs 16"),
        ];
        for (break_it, want) in cases {
            let mut s = isakmp();
            break_it(&mut s);
            let err = isakmp_sa(&s, &c).err().unwrap();
            assert!(err.contains(want), "{err} does not say {want}");
        }
        // A cookie of the wrong length does not even parse.
        let mut v = serde_json::to_value(isakmp()).unwrap();
        v["icookie"] = serde_json::Value::String("0102".into());
        let err = serde_json::from_value::<IsakmpState>(v).unwrap_err().to_string();
        assert!(err.contains("2 bytes: wrong length"), "{err}");
    }
}
