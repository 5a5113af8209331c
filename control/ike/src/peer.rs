//! [`Peer`]: the sans-IO IKEv1 endpoint for one configured gateway.
//!
//! Bytes and time go in ([`Peer::handle_datagram`], [`Peer::handle_timeout`],
//! [`Peer::initiate_child`]); datagrams, events and the next deadline come
//! out ([`Peer::poll_transmit`], [`Peer::poll_event`], [`Peer::poll_timeout`]).
//! No sockets, no clock, no randomness of its own ([`Random`]).
//!
//! Retransmission: whoever waits for an answer resends its last message
//! after `retransmit.initial`, doubling the delay, `retransmit.tries`
//! times, then gives up with an event. A message identical to one already
//! answered is answered again with the same bytes, never reprocessed
//! (RFC 2408 §5: a retransmitted message must not change state).

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use esprit_policy::ProxyId;

use crate::config::PeerConfig;
use crate::discard::{Discard, Discards};
use crate::error::{Error, ErrorKind};
use crate::event::{Event, Exchange, Reason};
use crate::exchange::phase1::{Mode, Phase1};
use crate::exchange::quick_mode::{FinishedQuickModes, QuickMode};
use crate::guard::{CookieSecret, TokenBucket};
use crate::ike_sa::IkeSa;
use crate::wire::{ExchangeType, Header};
use crate::Random;

/// UDP port of IKE.
pub const IKE_PORT: u16 = 500;
/// UDP port of NAT-T (RFC 3947 §4): IKE with a 4-byte zero non-ESP marker,
/// and ESP in UDP. The I/O shell adds and strips the marker.
pub const NATT_PORT: u16 = 4500;

/// The NAT-keepalive payload (RFC 3948 §2.3): one octet, 0xFF.
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Source address (port 4500: prepend the non-ESP marker, except to a
    /// NAT-keepalive).
    pub local: SocketAddr,
    /// Destination.
    pub remote: SocketAddr,
    /// The ISAKMP message, or [`NAT_KEEPALIVE`].
    pub bytes: Vec<u8>,
}

/// Proxy-IDs waiting for a Quick Mode, first come first served; each at
/// most once (fastpathd repeats its acquire while a proxy-ID waits, and
/// with thousands waiting the check must not be a scan).
#[derive(Debug, Default)]
pub(crate) struct ProxyIdQueue {
    order: VecDeque<ProxyId>,
    set: BTreeSet<ProxyId>,
}

impl ProxyIdQueue {
    /// Queues `p` unless it already waits.
    pub(crate) fn push_back(&mut self, p: ProxyId) {
        if self.set.insert(p) {
            self.order.push_back(p);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<ProxyId> {
        let p = self.order.pop_front()?;
        self.set.remove(&p);
        Some(p)
    }

    pub(crate) fn contains(&self, p: &ProxyId) -> bool {
        self.set.contains(p)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&ProxyId) -> bool) {
        self.order.retain(|p| keep(p));
        self.set.retain(|p| keep(p));
    }

    /// Everything waiting, in order; the queue is left empty.
    pub(crate) fn drain(&mut self) -> Vec<ProxyId> {
        self.set.clear();
        self.order.drain(..).collect()
    }

    pub(crate) fn clear(&mut self) {
        self.set.clear();
        self.order.clear();
    }
}

impl Transmit {
    /// Whether this is a NAT-keepalive, sent as it is (no non-ESP marker,
    /// RFC 3948 §2.3). An ISAKMP message is never one octet long: its
    /// header alone is 28 (RFC 2408 §3.1).
    pub fn is_nat_keepalive(&self) -> bool {
        self.bytes == NAT_KEEPALIVE
    }
}

/// A message waiting for its answer, with its retransmission schedule.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub bytes: Vec<u8>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub next: Instant,
    pub interval: Duration,
    pub tries_left: u32,
}

/// A message already answered: its bytes and our answer (None: it
/// needed none).
#[derive(Debug, Clone)]
pub(crate) struct Replay {
    pub received: Vec<u8>,
    pub answer: Option<Vec<u8>>,
}

/// A child SA pair we know of (to match Deletes).
#[derive(Debug, Clone)]
pub(crate) struct ChildRecord {
    pub proxy_id: ProxyId,
    pub spi_in: u32,
    pub spi_out: u32,
}

#[derive(Debug)]
pub(crate) struct Dpd {
    pub seq: u32,
    /// The first sequence number of the outstanding probe (each
    /// retransmission takes the next number, RFC 3706 §7): an ACK must
    /// carry one from here to `seq`.
    pub first: u32,
    pub pending: Option<Pending>,
}

const REPLAY_MEMORY: usize = 64;

/// Length of the nonces we send: 32 bytes, as strongSwan's.
const NONCE_LEN: usize = 32;
/// Nonce lengths a peer may use (RFC 2409 §5, RFC 2408 §3.13).
pub(crate) const NONCE_RANGE: std::ops::RangeInclusive<usize> = 8..=256;

/// The IKEv1 endpoint for one configured gateway; see the module doc.
#[derive(Debug)]
pub struct Peer<R: Random> {
    pub(crate) cfg: PeerConfig,
    pub(crate) rng: R,
    /// Addresses in use (port 4500 once NAT-T floated).
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    /// The phase 1 we initiated.
    pub(crate) phase1: Option<Phase1>,
    /// Phase 1s the peer initiated (or strangers claiming to be it),
    /// keyed by the initiator cookie and our responder cookie; bounded
    /// and timed out by `cfg.half_open` until one authenticates.
    pub(crate) responders: Vec<Phase1>,
    pub(crate) cookie_secret: CookieSecret,
    pub(crate) aggressive_bucket: TokenBucket,
    pub(crate) discards: Discards,
    pub(crate) ike: Option<IkeSa>,
    pub(crate) quick: Vec<QuickMode>,
    /// Our finished Quick Modes whose QM2 may come again.
    pub(crate) quick_done: FinishedQuickModes,
    pub(crate) children: Vec<ChildRecord>,
    pub(crate) queued: ProxyIdQueue,
    pub(crate) replays: VecDeque<Replay>,
    pub(crate) dpd: Dpd,
    pub(crate) last_heard: Option<Instant>,
    /// The ISAKMP SA (its initiator cookie) whose rekey we started: one
    /// attempt per SA; if it fails, the SA lives out its lifetime.
    pub(crate) rekey_started_for: Option<[u8; 8]>,
    /// Our address is translated by a NAT (RFC 3947 §3.2: the peer's
    /// NAT-D of our address did not match), as of the last phase 1: the
    /// NAT's mapping needs keepalives while SAs with the peer exist.
    pub(crate) behind_nat: bool,
    /// When the next NAT-keepalive is due (see [`Peer::keepalive_every`]).
    pub(crate) next_keepalive: Option<Instant>,
    /// Addresses of the datagram being handled (NAT-D checks them).
    pub(crate) rx_local: SocketAddr,
    pub(crate) rx_remote: SocketAddr,
    /// Length of the nonces we send (NONCE_LEN; only the in-memory tests
    /// change it, to show that a peer's out-of-range nonce is refused).
    pub(crate) nonce_len: usize,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
}

impl<R: Random> Peer<R> {
    /// An endpoint for `cfg`; nothing is sent until asked or spoken to.
    pub fn new(cfg: PeerConfig, mut rng: R) -> Peer<R> {
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        Peer {
            responders: Vec::new(),
            cookie_secret: CookieSecret::new(secret),
            aggressive_bucket: TokenBucket::new(),
            discards: Discards::default(),
            rx_local: cfg.local,
            rx_remote: cfg.remote,
            local: cfg.local,
            remote: cfg.remote,
            cfg,
            rng,
            phase1: None,
            ike: None,
            quick: Vec::new(),
            quick_done: FinishedQuickModes::default(),
            children: Vec::new(),
            queued: ProxyIdQueue::default(),
            replays: VecDeque::new(),
            dpd: Dpd { seq: 0, first: 0, pending: None },
            last_heard: None,
            rekey_started_for: None,
            behind_nat: false,
            next_keepalive: None,
            nonce_len: NONCE_LEN,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Sends nonces of `len` bytes from now on, in or out of the range a
    /// peer accepts (RFC 2409 §5): the tests' way to play a peer that
    /// gets it wrong.
    #[cfg(feature = "fuzzing")]
    pub fn set_nonce_len(&mut self, len: usize) {
        self.nonce_len = len;
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.cfg
    }

    /// The operator changed the proxy-IDs only: from now on the responder
    /// accepts these, and queued Quick Modes for the others are dropped.
    /// The ISAKMP SA and the child SAs stay; deleting the children of
    /// proxy-IDs that are gone is the owner's call ([`Peer::delete_child`]).
    pub fn set_proxy_ids(&mut self, proxy_ids: Vec<ProxyId>) {
        self.queued.retain(|p| proxy_ids.contains(p));
        self.cfg.proxy_ids = proxy_ids;
    }

    /// The operator changed the NAT-keepalive interval only: the next
    /// keepalive, if one is due at all, goes one new interval from now.
    pub fn set_nat_keepalive(&mut self, now: Instant, every: Option<Duration>) {
        self.cfg.nat_keepalive = every;
        self.next_keepalive = self.keepalive_every().map(|d| now + d);
    }

    /// True when the ISAKMP SA is established.
    pub fn is_established(&self) -> bool {
        self.ike.is_some()
    }

    /// True when the established ISAKMP SA's peer sent esprit's vendor ID
    /// in phase 1: as a Quick Mode responder it installs its inbound SA
    /// before it sends QM2 ([`crate::Event::ChildSaInbound`]), so our
    /// outbound SA may carry traffic as soon as we have QM2.
    pub fn peer_is_esprit(&self) -> bool {
        self.ike.as_ref().is_some_and(|ike| ike.peer_esprit)
    }

    /// Whether a Quick Mode of ours for `proxy_id` waits or runs (so a
    /// repeated acquire must not start another).
    pub fn is_negotiating(&self, proxy_id: &ProxyId) -> bool {
        self.queued.contains(proxy_id) || self.quick.iter().any(|q| q.initiator && q.proxy_id == *proxy_id)
    }

    /// Addresses in use (local, remote); port 4500 after NAT-T floated.
    pub fn addresses(&self) -> (SocketAddr, SocketAddr) {
        (self.local, self.remote)
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(crate) fn err(&self, exchange: Exchange, kind: ErrorKind) -> Error {
        Error { peer: self.cfg.name.clone(), exchange, kind }
    }

    /// Datagrams discarded (and half-open exchanges forgotten), by reason.
    pub fn discards(&self) -> &Discards {
        &self.discards
    }

    /// Responder exchanges not yet authenticated.
    pub fn half_open(&self) -> usize {
        self.responders.len()
    }

    /// The most half-open responder exchanges any one source address has.
    pub fn half_open_per_source_max(&self) -> usize {
        let mut most = 0;
        for p in &self.responders {
            most = most.max(self.responders.iter().filter(|q| q.remote.ip() == p.remote.ip()).count());
        }
        most
    }

    /// Counts a discarded datagram (the owner's own reasons, e.g. the
    /// half-open limit across peers).
    pub fn count_discard(&mut self, d: Discard) {
        self.discards.add(d);
    }

    /// Whether `bytes` would open a new responder exchange (a first
    /// Main or Aggressive Mode message that is not a retransmission):
    /// the owner's global half-open limit applies to these.
    pub fn opens_exchange(&self, bytes: &[u8]) -> bool {
        let Ok(h) = Header::parse(bytes) else { return false };
        matches!(h.exchange, ExchangeType::MainMode | ExchangeType::Aggressive)
            && h.rcookie == [0; 8]
            && !self.responders.iter().any(|p| p.icookie == h.icookie)
    }

    /// Sends a phase-1 answer to where the message came from.
    pub(crate) fn answer_to(&mut self, p1: &Phase1, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit { local: p1.local, remote: p1.remote, bytes });
    }

    /// Sends `bytes` now; with `wait`, keeps them for retransmission.
    pub(crate) fn send(&mut self, now: Instant, bytes: Vec<u8>, wait: bool) -> Option<Pending> {
        self.transmits.push_back(Transmit { local: self.local, remote: self.remote, bytes: bytes.clone() });
        wait.then(|| Pending {
            bytes,
            local: self.local,
            remote: self.remote,
            next: now + self.cfg.retransmit.initial,
            interval: self.cfg.retransmit.initial,
            tries_left: self.cfg.retransmit.tries,
        })
    }

    /// Remembers that `received` was answered with `answer`.
    pub(crate) fn remember(&mut self, received: &[u8], answer: Option<Vec<u8>>) {
        if self.replays.len() == REPLAY_MEMORY {
            self.replays.pop_front();
        }
        self.replays.push_back(Replay { received: received.to_vec(), answer });
    }

    /// Moves to port 4500 (RFC 3947 §4).
    pub(crate) fn float(&mut self) {
        self.local.set_port(NATT_PORT);
        if self.remote.port() == IKE_PORT {
            self.remote.set_port(NATT_PORT);
        }
    }

    /// Fresh bytes from the random source.
    pub(crate) fn random(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill(&mut v);
        v
    }

    pub(crate) fn cookie(&mut self) -> [u8; 8] {
        let mut c = [0u8; 8];
        while c == [0; 8] {
            self.rng.fill(&mut c);
        }
        c
    }

    /// Processes one received datagram (the non-ESP marker already
    /// stripped). `local` is the address it arrived on, `remote` its
    /// source. Errors say why it was dropped; outcomes are events.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let header = Header::parse(bytes).map_err(|e| self.err(Exchange::Informational, e.into()))?;
        // A dynamic peer may speak from a new address, but nothing of the
        // peer changes until a message from there authenticates.
        if remote.ip() != self.cfg.remote.ip() && !self.expects_from(remote, bytes) {
            return Err(self.err(Exchange::Informational, ErrorKind::WrongPeer(remote)));
        }
        self.rx_local = local;
        self.rx_remote = remote;
        // Retransmission by the peer: answer again, do not reprocess.
        if let Some(r) = self.replays.iter().rev().find(|r| r.received == bytes) {
            match r.answer.clone() {
                Some(answer) => self.transmits.push_back(Transmit {
                    local: self.local,
                    remote: self.remote,
                    bytes: answer,
                }),
                None => self.discards.add(Discard::ReplayedMessage),
            }
            return Ok(());
        }
        let result = match header.exchange {
            ExchangeType::MainMode => self.on_main_mode(now, &header, bytes),
            ExchangeType::Aggressive => self.on_aggressive_mode(now, &header, bytes),
            ExchangeType::QuickMode => self.on_quick_mode(now, &header, bytes),
            ExchangeType::Informational => self.on_informational(now, &header, bytes),
            ExchangeType::Other(v) => Err(self.err(
                Exchange::Informational,
                ErrorKind::Unexpected(if v == 34 { "IKEv2 message" } else { "unknown exchange type" }),
            )),
        };
        if result.is_ok() && remote.ip() == self.cfg.remote.ip() {
            self.last_heard = Some(now);
        }
        self.next_quick_modes(now);
        result
    }

    /// The datagram being handled authenticated under the ISAKMP SA (it
    /// decrypted and its HASH verified): the peer's NAT-T port (RFC 3947
    /// §4: the peer's port as last seen on 4500), and a dynamic peer's
    /// address, follow it. Nothing else moves the peer.
    pub(crate) fn authenticated_from_rx(&mut self) {
        let (local, remote) = (self.rx_local, self.rx_remote);
        if (local, remote) == (self.local, self.remote) || local.port() != NATT_PORT {
            return;
        }
        self.local = local;
        self.remote = remote;
        if self.cfg.dynamic {
            self.cfg.remote = remote;
        }
    }

    /// For a dynamic peer: whether `bytes` from `remote` (not the peer's
    /// address) is for us: an Aggressive Mode that presents the peer's
    /// identity, or a later message of one running from there.
    pub fn expects_from(&self, remote: SocketAddr, bytes: &[u8]) -> bool {
        if self.accepts_new_address(bytes) {
            return true;
        }
        let Ok(h) = Header::parse(bytes) else { return false };
        self.cfg.dynamic
            && self
                .responders
                .iter()
                .any(|p| p.remote.ip() == remote.ip() && p.icookie == h.icookie && p.rcookie == h.rcookie)
    }

    /// For a dynamic peer: whether `bytes` (from an address that is not
    /// the peer's) opens an Aggressive Mode with the identity the peer must
    /// present. Its HASH_I still has to authenticate it (AM3).
    pub fn accepts_new_address(&self, bytes: &[u8]) -> bool {
        if !self.cfg.dynamic || self.cfg.remote_id.is_none() {
            return false;
        }
        let Ok(h) = Header::parse(bytes) else { return false };
        if h.exchange != ExchangeType::Aggressive || h.rcookie != [0; 8] || h.encrypted() {
            return false;
        }
        let Some(body) = bytes.get(crate::wire::HEADER_LEN..) else { return false };
        let Ok(list) = crate::exchange::phase1::payloads(body, h.next_payload, false) else { return false };
        crate::exchange::phase1::find(&list, crate::wire::PayloadType::Id)
            .is_some_and(|id| crate::exchange::phase1::identity_matches(self.cfg.remote_id.as_ref(), id))
    }

    /// A phase 1 authenticated from `(local, remote)`: the peer is there
    /// now. A dynamic peer that authenticated from a new address has
    /// restarted or moved: the child SAs at its old address are gone. A
    /// dynamic peer's Aggressive Mode from a new address runs beside
    /// whatever the peer has at the old one (the identity it presents is
    /// no secret): only here, authenticated, does the address change.
    fn settle_address(&mut self, local: SocketAddr, remote: SocketAddr) {
        let moved =
            self.cfg.dynamic && remote.ip() != self.cfg.remote.ip() && !self.cfg.remote.ip().is_unspecified();
        self.local = local;
        self.remote = remote;
        if self.cfg.dynamic {
            self.cfg.remote = remote;
        }
        if !moved {
            return;
        }
        for c in std::mem::take(&mut self.children) {
            self.events.push_back(Event::ChildSaDown {
                proxy_id: c.proxy_id,
                spi_in: c.spi_in,
                spi_out: c.spi_out,
                reason: Reason::PeerRestarted,
            });
        }
    }

    /// Asks for a child SA pair for `proxy_id` (one Quick Mode per
    /// proxy-ID). Without an ISAKMP SA, starts phase 1 first and runs the
    /// Quick Mode when it is up.
    pub fn initiate_child(&mut self, now: Instant, proxy_id: ProxyId) -> Result<(), Error> {
        crate::proxy::selectors(&proxy_id).map_err(|why| {
            self.err(Exchange::QuickMode(0), ErrorKind::ProxyIdNotExpressible(proxy_id.to_string(), why))
        })?;
        if self.cfg.remote.ip().is_unspecified() {
            return Err(self.err(
                Exchange::QuickMode(0),
                ErrorKind::Refused(
                    "the peer's address is dynamic and not known yet: it must connect first".to_owned(),
                ),
            ));
        }
        if self.ike.is_some() {
            self.queued.push_back(proxy_id);
            self.next_quick_modes(now);
            Ok(())
        } else {
            self.queued.push_back(proxy_id);
            if self.phase1.is_none() {
                if self.cfg.aggressive {
                    self.start_aggressive_mode(now);
                } else {
                    self.start_main_mode(now);
                }
            }
            Ok(())
        }
    }

    /// Rekey hook: make-before-break is "negotiate a new pair for the same
    /// proxy-ID, install it, then [`Peer::delete_child`] the old one" (the
    /// SA manager decides when, from the lifetimes in [`crate::ChildSa`]).
    pub fn rekey_child(&mut self, now: Instant, proxy_id: ProxyId) -> Result<(), Error> {
        self.initiate_child(now, proxy_id)
    }

    /// Deletes the child SA pair whose inbound SPI is `spi_in`: sends a
    /// Delete for it (RFC 2408 §3.15) and reports ChildSaDown.
    pub fn delete_child(&mut self, now: Instant, spi_in: u32) -> Result<(), Error> {
        let Some(pos) = self.children.iter().position(|c| c.spi_in == spi_in) else {
            return Err(self.err(
                Exchange::Informational,
                ErrorKind::Refused(format!("no child SA with inbound SPI {spi_in:08x}")),
            ));
        };
        let c = self.children.remove(pos);
        self.send_delete_esp(now, &[c.spi_in])?;
        self.events.push_back(Event::ChildSaDown {
            proxy_id: c.proxy_id,
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            reason: Reason::DeletedLocally,
        });
        Ok(())
    }

    /// Deletes the ISAKMP SA (children stay installed until deleted or
    /// expired, as in IKEv1).
    pub fn delete_ike(&mut self, now: Instant) -> Result<(), Error> {
        self.send_delete_isakmp(now)?;
        self.ike = None;
        self.abandon_quick_modes(Reason::DeletedLocally);
        self.events.push_back(Event::IkeSaDown { reason: Reason::DeletedLocally });
        Ok(())
    }

    /// Tells DPD that the peer is alive (e.g. ESP arrived from it).
    pub fn note_peer_alive(&mut self, now: Instant) {
        self.last_heard = Some(now);
    }

    /// The earliest time [`Peer::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut take = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        if let Some(p) = self.phase1.as_ref().and_then(|p| p.pending.as_ref()) {
            take(p.next);
        }
        if let Some(oldest) = self.responders.iter().map(|p| p.created).min() {
            take(oldest + self.cfg.half_open.timeout);
        }
        for q in &self.quick {
            if let Some(p) = &q.pending {
                take(p.next);
            }
        }
        if let Some(p) = &self.dpd.pending {
            take(p.next);
        } else if let Some(next) = self.dpd_due() {
            take(next);
        }
        if let Some(next) = self.next_keepalive.filter(|_| self.keepalive_every().is_some()) {
            take(next);
        }
        if let Some(ike) = &self.ike {
            if let Some(x) = ike.expires() {
                take(x);
            }
            if let Some(x) = self.phase1_rekey_due(ike) {
                take(x);
            }
        }
        t
    }

    /// When a new phase 1 should start for `ike`: only while there are
    /// child SAs to negotiate or rekey under it, and not while one runs.
    fn phase1_rekey_due(&self, ike: &IkeSa) -> Option<Instant> {
        if self.phase1.is_some()
            || (self.children.is_empty() && self.queued.is_empty())
            || self.rekey_started_for == Some(ike.icookie)
        {
            return None;
        }
        ike.rekey_at()
    }

    /// The ISAKMP SA's lifetime: a new phase 1 before it runs out
    /// (make-before-break: the old SA carries exchanges until the new one
    /// is up, then is deleted), and deletion when it ran out anyway.
    /// Child SAs are not affected (IKEv1: they live their own lifetimes).
    fn phase1_lifetime(&mut self, now: Instant) {
        let Some(ike) = &self.ike else { return };
        if ike.expires().is_some_and(|t| t <= now) {
            let _ = self.send_delete_isakmp(now);
            self.ike = None;
            self.abandon_quick_modes(Reason::Expired);
            self.dpd.pending = None;
            self.events.push_back(Event::IkeSaDown { reason: Reason::Expired });
            return;
        }
        if self.phase1_rekey_due(ike).is_some_and(|t| t <= now) {
            self.rekey_started_for = Some(ike.icookie);
            if self.cfg.aggressive {
                self.start_aggressive_mode(now);
            } else {
                self.start_main_mode(now);
            }
        }
    }

    /// The NAT-keepalive interval, while keepalives are due: we are
    /// behind a NAT and floated to port 4500 (RFC 3948 §2.3: the peer
    /// behind the NAT keeps its mapping alive), and an ISAKMP SA or a child
    /// SA (ESP in UDP) with the peer exists. None: no keepalive (none
    /// configured, no NAT in front of us, or nothing to keep alive).
    pub fn keepalive_every(&self) -> Option<Duration> {
        let every = self.cfg.nat_keepalive.filter(|d| !d.is_zero())?;
        let alive = self.ike.is_some() || !self.children.is_empty();
        (self.behind_nat && self.local.port() == NATT_PORT && alive).then_some(every)
    }

    /// Sends the NAT-keepalive if it is due and schedules the next one,
    /// `every` after the one due (a late turn does not make a burst: the
    /// next is then `every` from now). No SA left: the schedule stops.
    fn keepalive(&mut self, now: Instant) {
        let Some(every) = self.keepalive_every() else {
            self.next_keepalive = None;
            return;
        };
        let Some(due) = self.next_keepalive else {
            self.next_keepalive = Some(now + every);
            return;
        };
        if due > now {
            return;
        }
        self.transmits.push_back(Transmit {
            local: self.local,
            remote: self.remote,
            bytes: NAT_KEEPALIVE.to_vec(),
        });
        let next = due + every;
        self.next_keepalive = Some(if next > now { next } else { now + every });
    }

    fn dpd_due(&self) -> Option<Instant> {
        let ike = self.ike.as_ref()?;
        let delay = self.cfg.dpd_delay?;
        if !ike.peer_dpd {
            return None;
        }
        Some(self.last_heard? + delay)
    }

    /// Retransmits what is due, gives up what has run out of tries, and
    /// sends DPD probes.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Phase 1.
        let mut p1_failed = false;
        if let Some(p) = self.phase1.as_mut().and_then(|p| p.pending.as_mut()) {
            if p.next <= now {
                if p.tries_left == 0 {
                    p1_failed = true;
                } else {
                    p.tries_left -= 1;
                    p.interval *= 2;
                    p.next = now + p.interval;
                    self.transmits.push_back(Transmit {
                        local: p.local,
                        remote: p.remote,
                        bytes: p.bytes.clone(),
                    });
                }
            }
        }
        if p1_failed {
            // An unauthenticated refusal seen meanwhile says why, now
            // that no authenticated answer came (RFC 2408 §5).
            let notify = self.phase1.as_ref().and_then(|p| p.peer_notify);
            match notify {
                Some(kind) => {
                    self.events.push_back(Event::AuthFailed {
                        exchange: Exchange::MainMode,
                        detail: format!("no answer; the peer said {kind:?} (unauthenticated)"),
                    });
                    self.fail_phase1(Reason::PeerNotify(kind));
                }
                None => self.fail_phase1(Reason::Timeout),
            }
        }
        // Half-open responder exchanges that did not authenticate in time.
        let timeout = self.cfg.half_open.timeout;
        let before = self.responders.len();
        self.responders.retain(|p| p.created + timeout > now);
        for _ in self.responders.len()..before {
            self.discards.add(Discard::HalfOpenTimedOut);
        }
        // Quick Modes.
        let mut failed = Vec::new();
        for (i, q) in self.quick.iter_mut().enumerate() {
            if let Some(p) = q.pending.as_mut() {
                if p.next <= now {
                    if p.tries_left == 0 {
                        failed.push(i);
                    } else {
                        p.tries_left -= 1;
                        p.interval *= 2;
                        p.next = now + p.interval;
                        self.transmits.push_back(Transmit {
                            local: p.local,
                            remote: p.remote,
                            bytes: p.bytes.clone(),
                        });
                    }
                }
            }
        }
        for i in failed.into_iter().rev() {
            let q = self.quick.remove(i);
            if q.initiator {
                self.events.push_back(Event::ChildSaFailed { proxy_id: q.proxy_id, reason: Reason::Timeout });
            } else {
                // Its inbound SA was announced at QM2; QM3 never came.
                self.responder_quick_mode_lost(q, Reason::Timeout);
            }
        }
        self.dpd_timeout(now);
        self.phase1_lifetime(now);
        self.keepalive(now);
        self.next_quick_modes(now);
    }

    /// The ISAKMP SA is gone, and every Quick Mode under it with it: ours
    /// are reported failed (the owner may ask again), the peer's that
    /// announced an inbound SA at QM2 report it down; and unless a phase 1
    /// runs to carry them, so do the proxy-IDs waiting for their turn.
    /// Nothing is left waiting for an event that cannot come.
    pub(crate) fn abandon_quick_modes(&mut self, reason: Reason) {
        for q in std::mem::take(&mut self.quick) {
            if q.initiator {
                self.events.push_back(Event::ChildSaFailed { proxy_id: q.proxy_id, reason: reason.clone() });
            } else {
                self.responder_quick_mode_lost(q, reason.clone());
            }
        }
        self.quick_done.clear();
        if self.phase1.is_none() {
            for p in self.queued.drain() {
                self.events.push_back(Event::ChildSaFailed { proxy_id: p, reason: reason.clone() });
            }
        }
    }

    /// A Quick Mode the peer started ends without QM3: the inbound SA
    /// announced at QM2 (if it got that far) is down.
    pub(crate) fn responder_quick_mode_lost(&mut self, q: QuickMode, reason: Reason) {
        if let Some(c) = q.child {
            self.events.push_back(Event::ChildSaDown {
                proxy_id: c.proxy_id,
                spi_in: c.spi_in,
                spi_out: c.spi_out,
                reason,
            });
        }
    }

    /// Abandons phase 1 and the Quick Modes waiting for it.
    pub(crate) fn fail_phase1(&mut self, reason: Reason) {
        self.phase1 = None;
        if self.ike.is_some() {
            // A failed rekey: the current ISAKMP SA goes on until its
            // lifetime ends, and so do the Quick Modes waiting on it.
            self.events.push_back(Event::Phase1RekeyFailed { reason });
            return;
        }
        for p in self.queued.drain() {
            self.events.push_back(Event::ChildSaFailed { proxy_id: p, reason: reason.clone() });
        }
        self.events.push_back(Event::IkeSaDown { reason });
    }

    /// A responder exchange ended without authenticating: what we have
    /// (the ISAKMP SA, our own phase 1) goes on; with nothing else, the
    /// Quick Modes waiting for a phase 1 fail.
    pub(crate) fn fail_responder(&mut self, reason: Reason) {
        if self.ike.is_some() {
            // Not our rekey: anyone can start a phase 1 from the peer's
            // address, and this one never proved it was the peer.
            self.events.push_back(Event::PeerPhase1Failed { reason });
            return;
        }
        if self.phase1.is_some() {
            return;
        }
        for p in self.queued.drain() {
            self.events.push_back(Event::ChildSaFailed { proxy_id: p, reason: reason.clone() });
        }
        self.events.push_back(Event::IkeSaDown { reason });
    }

    /// Phase 1 is done: the ISAKMP SA exists; run queued Quick Modes.
    /// The message that authenticated it came from the peer's addresses
    /// (an initiator that floated to 4500 itself keeps its own).
    pub(crate) fn established(&mut self, now: Instant, ike: IkeSa) {
        if !ike.initiator || self.rx_local.port() == NATT_PORT {
            self.settle_address(self.rx_local, self.rx_remote);
        }
        // A phase-1 rekey (ours or the peer's): the old ISAKMP SA is
        // deleted with the peer now that the new one carries exchanges.
        // Quick Modes still running under the old keys cannot finish.
        // After INITIAL-CONTACT the peer has forgotten the old one: no
        // Delete for it.
        if self.ike.as_ref().is_some_and(|old| old.icookie != ike.icookie || old.rcookie != ike.rcookie) {
            if !ike.peer_initial_contact {
                let _ = self.send_delete_isakmp(now);
            }
            for q in std::mem::take(&mut self.quick) {
                if q.initiator {
                    self.queued.push_back(q.proxy_id);
                } else {
                    self.responder_quick_mode_lost(q, Reason::Rekeyed);
                }
            }
            self.quick_done.clear();
            self.dpd.pending = None;
            let reason = if ike.peer_initial_contact { Reason::PeerRestarted } else { Reason::Rekeyed };
            self.events.push_back(Event::IkeSaDown { reason });
        }
        if ike.peer_initial_contact {
            // RFC 2407 §4.6.3.3: the peer has no SA with us but this one
            // (it restarted): every older SA with it is gone, whatever
            // their lifetimes say.
            self.events.push_back(Event::Notify {
                kind: crate::wire::NotifyType::InitialContact,
                exchange: Exchange::MainMode,
            });
            for c in std::mem::take(&mut self.children) {
                self.events.push_back(Event::ChildSaDown {
                    proxy_id: c.proxy_id,
                    spi_in: c.spi_in,
                    spi_out: c.spi_out,
                    reason: Reason::PeerRestarted,
                });
            }
        }
        self.events.push_back(Event::IkeSaUp {
            icookie: ike.icookie,
            rcookie: ike.rcookie,
            initiator: ike.initiator,
            proposal: ike.proposal.name(),
            nat: ike.nat,
            behind_nat: ike.behind_nat,
            local: self.local,
            remote: self.remote,
        });
        // The first keepalive one interval after phase 1 (which just went
        // through the NAT); a running schedule (phase-1 rekey) goes on.
        self.behind_nat = ike.behind_nat;
        self.ike = Some(ike);
        match self.keepalive_every() {
            Some(every) if self.next_keepalive.is_none_or(|t| t < now) => {
                self.next_keepalive = Some(now + every);
            }
            Some(_) => {}
            None => self.next_keepalive = None,
        }
        self.phase1 = None;
        self.last_heard = Some(now);
        self.next_quick_modes(now);
    }

    /// Starts queued Quick Modes while fewer than `max_quick_modes` of
    /// ours are in flight ([`crate::exchange::phase1::PARALLEL_QUICK_MODES`]
    /// towards a peer that sent esprit's vendor ID).
    pub(crate) fn next_quick_modes(&mut self, now: Instant) {
        let Some(ike) = self.ike.as_ref() else { return };
        let window = if ike.peer_esprit {
            crate::exchange::phase1::PARALLEL_QUICK_MODES
        } else {
            self.cfg.max_quick_modes.max(1)
        };
        let mut in_flight = self.quick.iter().filter(|q| q.initiator).count();
        while self.ike.is_some() && !self.queued.is_empty() {
            if in_flight >= window {
                return;
            }
            let Some(p) = self.queued.pop_front() else { return };
            if self.start_quick_mode(now, p).is_ok() {
                in_flight += 1;
            } else {
                self.events.push_back(Event::ChildSaFailed {
                    proxy_id: p,
                    reason: Reason::Refused(crate::wire::NotifyType::InvalidIdInformation),
                });
            }
        }
    }

    /// Whether phase 1 of this mode is in progress with these cookies.
    pub(crate) fn phase1_matches(&self, mode: Mode, h: &Header) -> bool {
        self.phase1.as_ref().is_some_and(|p| {
            p.mode == mode && p.icookie == h.icookie && (p.rcookie == h.rcookie || p.rcookie == [0; 8])
        })
    }
}

/// Read-only views for the operator (`get ike cookies`): what phase 1
/// is, never keys.
impl<R: Random> Peer<R> {
    /// The cookies (initiator, responder) of the ISAKMP SA, or of the
    /// phase 1 in progress (the responder cookie is zero until known).
    pub fn ike_cookies(&self) -> Option<([u8; 8], [u8; 8])> {
        match (&self.ike, &self.phase1) {
            (Some(s), _) => Some((s.icookie, s.rcookie)),
            (None, Some(p)) => Some((p.icookie, p.rcookie)),
            (None, None) => self.responders.iter().find(|p| p.proven).map(|p| (p.icookie, p.rcookie)),
        }
    }

    /// The established ISAKMP SA, as the operator sees it.
    pub fn isakmp_sa_summary(&self) -> Option<IsakmpSaSummary> {
        self.ike.as_ref().map(|s| IsakmpSaSummary {
            initiator: s.initiator,
            proposal: s.proposal,
            nat_t: s.nat,
            established: s.established,
            lifetime_secs: s.lifetime,
        })
    }
}

/// What [`Peer::isakmp_sa_summary`] tells of an ISAKMP SA (never keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsakmpSaSummary {
    /// We initiated it.
    pub initiator: bool,
    /// The proposal agreed.
    pub proposal: crate::config::IkeProposal,
    /// NAT-T in use.
    pub nat_t: bool,
    /// When it was established.
    pub established: Instant,
    /// Its negotiated lifetime in seconds (0: none): the shorter of ours
    /// and the peer's (RFC 2409 §4.5 as esprit applies it), which may
    /// differ from the configured one.
    pub lifetime_secs: u32,
}
