//! [`Session`]: the sans-IO IKEv2 endpoint of one configured peer, as
//! initiator and as responder, shaped like IKEv1's [`crate::Peer`] so that
//! one owner drives both: datagrams and time in
//! ([`Session::handle_datagram`], [`Session::handle_timeout`],
//! [`Session::initiate_child`]), datagrams, [`crate::Event`]s and the next
//! deadline out ([`Session::poll_transmit`], [`Session::poll_event`],
//! [`Session::poll_timeout`]). No socket, no clock; randomness from the
//! caller's [`Random`].
//!
//! ```text
//! initiate_child(P1) --> IKE_SA_INIT --> IKE_AUTH{P1's child, INITIAL_CONTACT}
//! initiate_child(P2..) -> CREATE_CHILD_SA, one request at a time (§2.3)
//! rekey_child(c)  -----> CREATE_CHILD_SA{N(REKEY_SA)}, new child up,
//!                        then INFORMATIONAL{D(old)}            (§2.8)
//! delete_child(c) -----> INFORMATIONAL{D(ESP c)} <-- {D(ESP c')} (§1.4.1)
//! idle for `dpd`  -----> INFORMATIONAL{} (liveness, §2.4)
//! delete_ike()    -----> INFORMATIONAL{D(IKE)}                  (§1.4.1)
//! ```
//!
//! Guarantees:
//! * Only the initiator of an exchange retransmits, the same bytes, after
//!   `retransmit.initial`, doubling, `retransmit.tries` times (§2.1);
//!   then the IKE SA is dead and everything on it is reported down (§2.4).
//!   A retransmitted request is answered with the stored response, never
//!   processed twice; a request or response outside the window is dropped
//!   and counted ([`Dropped`]), as is everything that does not open under
//!   the IKE SA's keys. Nothing unauthenticated changes an established
//!   IKE SA or its children, nor delays the liveness check.
//! * Each proxy-ID is asked for once while it waits or runs; the first in
//!   IKE_AUTH, the others by CREATE_CHILD_SA, each on its own SPI pair.
//! * A rekey is make-before-break: [`crate::Event::ChildSaUp`] of the new
//!   pair comes before [`crate::Event::ChildSaDown`] of the old one.
//! * One pair per proxy-ID when both ends make one at once (a rekey of
//!   the same child, §2.8.1, or crossing requests for a new one): the
//!   exchange holding the lowest of the four nonces made the redundant
//!   child, its initiator deletes it, and the owner never sees it up after
//!   the survivor (see `collide`).
//! * An IKE SA rekey (§2.18) moves every child to the new SA; the old one
//!   is deleted on itself. When both ends rekey it at once, the new SA
//!   whose exchange holds the lowest nonce is deleted by its initiator and
//!   the children move once, to the other (§2.8.1, see `ike_crossing`); a
//!   rekey request that meets any other request of ours is refused with
//!   TEMPORARY_FAILURE (§2.25), and the owner asks again.
//!
//! Certificates ([`super::auth::Authenticator::Cert`]) are checked at
//! wall-clock time, which the owner gives with
//! [`Session::set_wall_clock`]: the session counts it on from the
//! `Instant`s it is handed, and reads no clock itself.
//!
//! IKE fragmentation (RFC 7383, [`super::frag`]): announced when
//! [`SessionConfig::fragment_size`] is set; with a peer that announced it
//! too, every encrypted message longer than a datagram of that size goes
//! as Encrypted Fragments, and the peer's are reassembled, each checked
//! before it is kept.
//!
//! Not here: revocation checks; the ESN agreed for a child is not in its
//! [`crate::Event::ChildSaUp`] (a [`crate::ChildSa`] has no field for it);
//! children and the IKE SA are rekeyed when the owner asks
//! ([`Session::rekey_child`], [`Session::rekey_ike`]), not by lifetime.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use esprit_policy::ProxyId;

use crate::config::Retransmit;
use crate::event::{Event, Exchange, Reason};
use crate::peer::Transmit;
use crate::{DhGroup, Error, ErrorKind, Random};

use super::auth::{Authenticator, InitiatorAuthStep, InitiatorSentAuth, ResponderAuthStep};
use super::child::{offered_groups, push_error, ChildConfig, ChildError, ChildRequest, NewChild};
use super::config::IkeSaProposal;
use super::create_child::{
    read_child, ChildOptions, ChildResponse, ExchangeError, IkeSa, IncomingRequest, PendingChild,
};
use super::dropped::{Dropped, DroppedCounts};
use super::ike_rekey::{is_ike_rekey, IkeRekeyResponse, PendingIkeRekey};
use super::initiator::{InitError, InitiatorConfig, InitiatorSentInit, InitiatorStart, InitiatorStep};
use super::responder::{InitResponder, Reply, ResponderConfig};
use super::sk::Opened;
use super::wire::{DeletePayload, ExchangeType, Header, NotifyType, Payload, PayloadChain, ProtocolId};

mod collide;
mod fragments;
mod ike_auth;
mod ike_crossing;
mod requests;
mod responses;

/// How this gateway speaks IKEv2 with one peer.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Gateway name (in errors).
    pub name: String,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// IKE SA proposals, offered and accepted.
    pub proposals: Vec<IkeSaProposal>,
    /// Identities and the pre-shared key or certificates (a
    /// [`super::auth::PskAuth`] or [`super::cert::CertAuth`], `.into()`).
    pub auth: Authenticator,
    /// Child SAs: suites, PFS, proxy-IDs, lifetime.
    pub child: ChildConfig,
    /// The schedule of our requests (§2.1); its end declares the IKE SA
    /// dead (§2.4).
    pub retransmit: Retransmit,
    /// Liveness check after this long without an authenticated message
    /// from the peer (§2.4); `None`: none.
    pub dpd: Option<Duration>,
    /// A liveness check is sent this many times in all, `dpd` apart,
    /// before the peer is declared dead (ScreenOS's `dpd-liveness ...
    /// retry N`, as IKEv1's R-U-THERE); `None`: retransmitted on the
    /// `retransmit` schedule like any request.
    pub dpd_retries: Option<u32>,
    /// IKE fragmentation (RFC 7383): announced in IKE_SA_INIT, and when
    /// the peer announces it too, an encrypted message whose datagram
    /// would be longer than this many bytes of IP goes as fragments that
    /// each fit (default [`super::frag::FRAGMENT_SIZE_DEFAULT`]); `None`:
    /// not announced, and the peer's fragments are dropped.
    pub fragment_size: Option<u16>,
}

/// The addresses a datagram arrived at and came from.
type Addrs = (SocketAddr, SocketAddr);

/// A retransmission schedule.
#[derive(Debug, Clone, Copy)]
struct Retx {
    next: Instant,
    interval: Duration,
    tries_left: u32,
    /// The interval doubles after each retransmission.
    backoff: bool,
}

impl Retx {
    fn new(now: Instant, r: Retransmit) -> Retx {
        Retx { next: now + r.initial, interval: r.initial, tries_left: r.tries, backoff: true }
    }

    /// `tries` retransmissions `every` apart.
    fn every(now: Instant, every: Duration, tries: u32) -> Retx {
        Retx { next: now + every, interval: every, tries_left: tries, backoff: false }
    }

    /// Due now: `Some(true)` resend, `Some(false)` give up.
    fn due(&mut self, now: Instant) -> Option<bool> {
        if self.next > now {
            return None;
        }
        if self.tries_left == 0 {
            return Some(false);
        }
        self.tries_left -= 1;
        if self.backoff {
            self.interval *= 2;
        }
        self.next = now + self.interval;
        Some(true)
    }
}

/// Work waiting for its turn in the window (§2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Work {
    /// A child for this proxy-ID.
    Child(ProxyId),
    /// CREATE_CHILD_SA again with a KE of this group (§1.3).
    ChildRetry { proxy_id: ProxyId, group: DhGroup, rekey_of: Option<u32> },
    /// Rekey the child with this inbound SPI.
    Rekey(u32),
    /// Delete the child with this inbound SPI (or a child the peer made
    /// that we refused, with no record here).
    Delete(u32),
    /// Delete the IKE SA.
    DeleteIke,
    /// Rekey the IKE SA (§2.18).
    RekeyIke,
    /// Liveness check.
    Dpd,
}

/// Our request in flight.
#[derive(Debug)]
enum OutKind {
    Child { pending: Box<PendingChild>, rekey_of: Option<u32>, retried: bool },
    Delete { spi_in: u32 },
    DeleteIke,
    Dpd,
    IkeRekey(Box<PendingIkeRekey>),
}

#[derive(Debug)]
struct Outstanding {
    message_id: u32,
    bytes: Vec<u8>,
    retx: Retx,
    kind: OutKind,
}

/// A child SA pair of the current IKE SA.
#[derive(Debug, Clone)]
struct Child {
    proxy_id: ProxyId,
    spi_in: u32,
    spi_out: u32,
    /// We sent a Delete for it.
    deleting: bool,
    /// Replaced by a rekey: goes down as [`Reason::Rekeyed`].
    rekeyed: bool,
    /// We made it (we sent the request).
    ours: bool,
    /// The inbound SPI of the child it rekeys (§1.3.3).
    replaces: Option<u32>,
    /// The lower nonce of the exchange that made it (§2.8.1).
    lowest_nonce: Vec<u8>,
    /// When it was made.
    made: Instant,
    /// It lost a tie-break to a child made at the same time (see
    /// `collide`): reported by its inbound SA only, and deleted by
    /// whoever made it.
    redundant: bool,
    /// The peer made it redundant and has not deleted it yet: we do at
    /// this time.
    delete_at: Option<Instant>,
}

impl Child {
    /// Up and carrying traffic: not going, not replaced, not redundant.
    fn live(&self) -> bool {
        !self.deleting && !self.rekeyed && !self.redundant
    }
}

/// An IKE SA replaced by a rekey (§2.18), kept until its Delete is
/// answered (ours) or arrives (the peer's); its children have moved.
#[derive(Debug)]
struct OldIke {
    sa: IkeSa,
    /// Our Delete of it: message ID, bytes, schedule.
    delete: Option<(u32, Vec<u8>, Retx)>,
}

/// The initiator's IKE SA in the making.
#[derive(Debug)]
enum Making {
    Init(Box<InitiatorSentInit>, Retx),
    Auth(Box<InitiatorSentAuth>, Option<ChildRequest>, Retx),
}

/// The IKEv2 endpoint of one configured peer; see the module doc.
#[derive(Debug)]
pub struct Session<R: Random> {
    cfg: SessionConfig,
    rng: R,
    responder: InitResponder,
    making: Option<Making>,
    ike: Option<IkeSa>,
    /// IKE SAs a rekey replaced, or a simultaneous rekey made redundant
    /// (§2.8.1), until deleted; at most [`OLD_IKE_KEPT`].
    old_ike: Vec<OldIke>,
    /// The IKE SA we made answering the peer's rekey while ours was in
    /// flight (§2.8.1): settled when ours is answered.
    crossed_ike: Option<Box<IkeSa>>,
    out: Option<Outstanding>,
    work: VecDeque<Work>,
    children: Vec<Child>,
    last_heard: Option<Instant>,
    /// The wall-clock time at an instant, from the owner.
    wall_clock: Option<(Instant, SystemTime)>,
    dropped: DroppedCounts,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// The IKE SA's (local, remote) addresses once they are not the
    /// configured port-500 ones: ports 4500 after NAT-T floated, the
    /// peer's new mapping from its last authenticated request (§2.23).
    path: Option<(SocketAddr, SocketAddr)>,
    /// Where the datagram being handled arrived and came from.
    arrived: (SocketAddr, SocketAddr),
    /// NAT-T is in use: NAT detection in the IKE_SA_INIT that made the
    /// first IKE SA saw a NAT; kept through IKE SA rekeys (which carry no
    /// NAT detection).
    nat_t: bool,
    /// We are the one behind the NAT: we keep its mapping open with a
    /// NAT-keepalive at this time (RFC 3948 §2.3), while an IKE SA lives.
    keepalive_at: Option<Instant>,
    /// The peer announced IKE fragmentation in the IKE_SA_INIT of the
    /// IKE SA (RFC 7383 §2.3); kept through IKE SA rekeys.
    peer_fragments: bool,
    /// The peer's fragmented messages being put together.
    reassembly: super::frag::Reassembly,
    /// Our messages sent as fragments, with their fragments.
    sent_fragments: VecDeque<(Vec<u8>, Vec<Vec<u8>>)>,
}

/// The v1 name of a v2 Notify type, for [`Reason`]s (the owner's events
/// are version-neutral; the numbers of the two registries differ).
fn v1_notify(n: NotifyType) -> crate::wire::NotifyType {
    use crate::wire::NotifyType as V1;
    match n {
        NotifyType::NoProposalChosen => V1::NoProposalChosen,
        NotifyType::AuthenticationFailed => V1::AuthenticationFailed,
        NotifyType::TsUnacceptable => V1::InvalidIdInformation,
        NotifyType::InitialContact => V1::InitialContact,
        other => V1::Other(other.value()),
    }
}

/// The IKE SA's algorithms in strongSwan's notation, as IKEv1's
/// proposal names are: `aes256-sha256-prfsha256-ecp256`,
/// `aes128gcm16-prfsha384-modp2048`.
fn proposal_name(sa: &IkeSa) -> String {
    use super::alg::{EncrAlg, IntegAlg, PrfAlg};
    let c = &sa.established().exchange.chosen;
    let encr = match c.suite.encr() {
        EncrAlg::AesCbc128 => "aes128",
        EncrAlg::AesCbc256 => "aes256",
        EncrAlg::AesGcm16_128 => "aes128gcm16",
        EncrAlg::AesGcm16_256 => "aes256gcm16",
    };
    let integ = c.suite.integ().map(|i| match i {
        IntegAlg::HmacSha1_96 => "-sha1",
        IntegAlg::HmacSha256_128 => "-sha256",
        IntegAlg::HmacSha384_192 => "-sha384",
        IntegAlg::HmacSha512_256 => "-sha512",
    });
    let prf = match c.prf {
        PrfAlg::HmacSha1 => "prfsha1",
        PrfAlg::HmacSha256 => "prfsha256",
        PrfAlg::HmacSha384 => "prfsha384",
        PrfAlg::HmacSha512 => "prfsha512",
    };
    format!("{encr}{}-{prf}-{}", integ.unwrap_or_default(), c.dh.name())
}

/// Why a child we asked for is not up, in the owner's words.
fn failure_reason(e: &ChildError) -> Reason {
    match e {
        ChildError::Refused(n) => Reason::PeerNotify(v1_notify(*n)),
        ChildError::InvalidKe { .. } => Reason::PeerNotify(v1_notify(NotifyType::InvalidKePayload)),
        other => Reason::Refused(v1_notify(other.notify())),
    }
}

/// True if the responder made a child we then refused (its answer was
/// not a Notify): it must be told with a Delete (§1.4.1).
fn peer_made_it(e: &ChildError) -> bool {
    !matches!(e, ChildError::Refused(_) | ChildError::InvalidKe { .. })
}

impl<R: Random> Session<R> {
    /// An endpoint for `cfg`; nothing is sent until asked or spoken to.
    pub fn new(cfg: SessionConfig, mut rng: R) -> Result<Session<R>, super::config::ProposalError> {
        let (cfg_local, cfg_remote) = (cfg.local, cfg.remote);
        let responder_config = ResponderConfig {
            signature_hash_algorithms: cfg.auth.signature_hashes().to_vec(),
            cert_request: cfg.auth.cert_request().map(<[u8]>::to_vec),
            fragmentation: cfg.fragment_size.is_some(),
            ..ResponderConfig::new(cfg.proposals.clone())
        };
        let responder = InitResponder::new(responder_config, &mut rng)?;
        Ok(Session {
            cfg,
            rng,
            responder,
            making: None,
            ike: None,
            old_ike: Vec::new(),
            crossed_ike: None,
            out: None,
            work: VecDeque::new(),
            children: Vec::new(),
            last_heard: None,
            wall_clock: None,
            dropped: DroppedCounts::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            path: None,
            arrived: (cfg_local, cfg_remote),
            nat_t: false,
            keepalive_at: None,
            peer_fragments: false,
            reassembly: super::frag::Reassembly::default(),
            sent_fragments: VecDeque::new(),
        })
    }

    /// Tells the session that the wall clock reads `wall` at `now`; it
    /// counts on from there with the `Instant`s it is given, to check
    /// certificates' validity. Set it before the first exchange with
    /// certificates, and again whenever the system clock is stepped.
    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.wall_clock = Some((now, wall));
    }

    /// The wall-clock time at `now`, if the owner gave one.
    fn wall_at(&self, now: Instant) -> Option<SystemTime> {
        let (at, wall) = self.wall_clock?;
        match now.checked_duration_since(at) {
            Some(ahead) => wall.checked_add(ahead),
            None => wall.checked_sub(at.saturating_duration_since(now)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// True when the IKE SA is established.
    pub fn is_established(&self) -> bool {
        self.ike.is_some()
    }

    /// The IKE SA's SPIs (SPIi, SPIr), when established.
    pub fn ike_spis(&self) -> Option<(u64, u64)> {
        self.ike.as_ref().map(|s| s.spis())
    }

    /// The child SA pairs up, as (proxy-ID, inbound SPI, outbound SPI).
    pub fn children(&self) -> Vec<(ProxyId, u32, u32)> {
        self.children.iter().map(|c| (c.proxy_id, c.spi_in, c.spi_out)).collect()
    }

    /// Datagrams dropped (or answered from memory), by reason.
    pub fn dropped(&self) -> &DroppedCounts {
        &self.dropped
    }

    /// The IKE_SA_INIT responder's counters.
    pub fn init_responder(&self) -> &InitResponder {
        &self.responder
    }

    /// The configured proxy-IDs changed: the peer's requests are held to
    /// the new ones, and ours still waiting for a removed one are dropped
    /// (children up stay until the owner deletes them).
    pub fn set_proxy_ids(&mut self, proxy_ids: Vec<ProxyId>) {
        let keep: std::collections::HashSet<ProxyId> = proxy_ids.iter().copied().collect();
        self.work.retain(|w| match w {
            Work::Child(p) | Work::ChildRetry { proxy_id: p, .. } => keep.contains(p),
            _ => true,
        });
        self.cfg.child.proxy_ids = proxy_ids;
    }

    /// Whether a child for `proxy_id` waits, runs or is up.
    pub fn is_negotiating(&self, proxy_id: &ProxyId) -> bool {
        let waiting = self.work.iter().any(|w| match w {
            Work::Child(p) | Work::ChildRetry { proxy_id: p, .. } => p == proxy_id,
            _ => false,
        });
        let running = match &self.out {
            Some(Outstanding { kind: OutKind::Child { pending, rekey_of: None, .. }, .. }) => {
                pending.child_request().proxy_id == *proxy_id
            }
            _ => false,
        };
        let first = matches!(&self.making, Some(Making::Auth(_, Some(r), _)) if r.proxy_id == *proxy_id);
        waiting || running || first
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.next_transmit()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn err(&self, exchange: Exchange, kind: ErrorKind) -> Error {
        Error { peer: self.cfg.name.clone(), exchange, kind }
    }

    /// Sends on the IKE SA's path: port 500, or 4500 once NAT-T floated
    /// (§2.23).
    fn send(&mut self, bytes: Vec<u8>) {
        let (local, remote) = self.path.unwrap_or((self.cfg.local, self.cfg.remote));
        self.transmits.push_back(Transmit { local, remote, bytes });
    }

    /// Answers the datagram being handled, to where it came from and from
    /// where it arrived (§2.11: a response goes back to the request's
    /// addresses and ports).
    fn answer(&mut self, bytes: Vec<u8>) {
        let (local, remote) = self.arrived;
        self.transmits.push_back(Transmit { local, remote, bytes });
    }

    /// Asks for a child SA pair for `proxy_id`: in IKE_AUTH if no IKE SA
    /// is up (IKE_SA_INIT starts now), else by CREATE_CHILD_SA when the
    /// window is free. A proxy-ID that waits, runs or is up is not asked
    /// for again.
    pub fn initiate_child(&mut self, now: Instant, proxy_id: ProxyId) -> Result<(), Error> {
        if self.is_negotiating(&proxy_id)
            || self.children.iter().any(|c| c.proxy_id == proxy_id && !c.deleting)
        {
            return Ok(());
        }
        self.work.push_back(Work::Child(proxy_id));
        if self.ike.is_none() && self.making.is_none() {
            self.start_init(now);
        }
        self.pump(now);
        Ok(())
    }

    /// Rekeys the child whose inbound SPI is `spi_in` (§2.8):
    /// make-before-break.
    pub fn rekey_child(&mut self, now: Instant, spi_in: u32) -> Result<(), Error> {
        self.queue_for_child(now, spi_in, Work::Rekey(spi_in))
    }

    /// Deletes the child whose inbound SPI is `spi_in` (§1.4.1); it is
    /// reported down when the peer answers (or the IKE SA dies).
    pub fn delete_child(&mut self, now: Instant, spi_in: u32) -> Result<(), Error> {
        self.queue_for_child(now, spi_in, Work::Delete(spi_in))
    }

    /// Queues `w` about the child `spi_in` (once).
    fn queue_for_child(&mut self, now: Instant, spi_in: u32, w: Work) -> Result<(), Error> {
        self.known_child(spi_in)?;
        if !self.work.contains(&w) {
            self.work.push_back(w);
        }
        self.pump(now);
        Ok(())
    }

    /// Deletes the IKE SA and with it every child (§1.4.1).
    pub fn delete_ike(&mut self, now: Instant) -> Result<(), Error> {
        if self.ike.is_none() {
            return Err(self.err(Exchange::Informational, ErrorKind::NoIkeSa));
        }
        // Nothing else is asked for on an IKE SA that is going.
        self.work.retain(|w| !matches!(w, Work::Rekey(_) | Work::RekeyIke | Work::Dpd));
        self.work.push_front(Work::DeleteIke);
        self.pump(now);
        Ok(())
    }

    /// Rekeys the IKE SA (§2.18): the children move to the new one, the
    /// old one is deleted.
    pub fn rekey_ike(&mut self, now: Instant) -> Result<(), Error> {
        if self.ike.is_none() {
            return Err(self.err(Exchange::Informational, ErrorKind::NoIkeSa));
        }
        if !self.work.contains(&Work::RekeyIke) {
            self.work.push_back(Work::RekeyIke);
        }
        self.pump(now);
        Ok(())
    }

    fn known_child(&self, spi_in: u32) -> Result<(), Error> {
        if self.ike.is_some()
            && self.children.iter().any(|c| c.spi_in == spi_in && !c.deleting && !c.redundant)
        {
            return Ok(());
        }
        Err(self.err(
            Exchange::Informational,
            ErrorKind::Refused(format!("no child SA with inbound SPI {spi_in:08x}")),
        ))
    }

    /// The earliest time [`Session::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let making = self.making.as_ref().map(|m| match m {
            Making::Init(_, r) | Making::Auth(_, _, r) => r.next,
        });
        let out = self.out.as_ref().map(|o| o.retx.next);
        let old = self.old_ike.iter().filter_map(|o| o.delete.as_ref()).map(|d| d.2.next).min();
        let half_open = self.responder.next_expiry();
        let fragments = self.reassembly.next_expiry();
        let redundant = self.children.iter().filter_map(|c| c.delete_at).min();
        [making, out, old, half_open, self.dpd_due(), self.keepalive_at, fragments, redundant]
            .into_iter()
            .flatten()
            .min()
    }

    fn dpd_due(&self) -> Option<Instant> {
        let every = self.cfg.dpd?;
        if self.ike.is_none() || self.out.is_some() || self.work.contains(&Work::Dpd) {
            return None;
        }
        Some(self.last_heard? + every)
    }

    /// Retransmits what is due, gives up what has run out of tries (the
    /// IKE SA with it), and starts the liveness check when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.responder.expire(now);
        self.expire_fragments(now);
        let making = self.making.as_mut().map(|m| match m {
            Making::Init(s, r) => (r.due(now), s.request()),
            Making::Auth(s, _, r) => (r.due(now), s.request()),
        });
        match making {
            Some((Some(true), request)) => {
                let bytes = request.to_vec();
                self.send(bytes);
            }
            Some((Some(false), _)) => self.fail_making(Reason::Timeout),
            Some((None, _)) | None => {}
        }
        if let Some(o) = self.out.as_mut() {
            match o.retx.due(now) {
                Some(true) => {
                    let bytes = o.bytes.clone();
                    self.send(bytes);
                }
                Some(false) => {
                    let dpd = matches!(o.kind, OutKind::Dpd);
                    if dpd {
                        self.events.push_back(Event::DpdTimeout);
                    }
                    self.ike_gone(if dpd { Reason::DpdTimeout } else { Reason::Timeout });
                }
                None => {}
            }
        }
        let mut resend = Vec::new();
        // The old SAs' children have moved: one whose Delete goes
        // unanswered is only forgotten.
        self.old_ike.retain_mut(|o| match o.delete.as_mut().map(|d| (d.2.due(now), &d.1)) {
            Some((Some(true), bytes)) => {
                resend.push(bytes.clone());
                true
            }
            Some((Some(false), _)) => false,
            _ => true,
        });
        for bytes in resend {
            self.send(bytes);
        }
        self.delete_redundant(now);
        if self.dpd_due().is_some_and(|t| t <= now) {
            self.work.push_back(Work::Dpd);
        }
        if self.keepalive_at.is_some_and(|t| t <= now) {
            self.keepalive_at = Some(now + NAT_KEEPALIVE_EVERY);
            self.send(crate::NAT_KEEPALIVE.to_vec());
        }
        self.pump(now);
    }

    /// How often we send NAT-keepalives: while we are behind a NAT and an
    /// IKE SA lives.
    pub fn keepalive_every(&self) -> Option<Duration> {
        self.keepalive_at.map(|_| NAT_KEEPALIVE_EVERY)
    }

    fn start_init(&mut self, now: Instant) {
        let config = InitiatorConfig {
            signature_hash_algorithms: self.cfg.auth.signature_hashes().to_vec(),
            fragmentation: self.cfg.fragment_size.is_some(),
            ..InitiatorConfig::new(self.cfg.proposals.clone())
        };
        // A new IKE SA starts on port 500 (§2.23).
        self.path = None;
        let start = InitiatorStart::new(config, self.cfg.local, self.cfg.remote)
            .map_err(InitError::from)
            .and_then(|s| s.start(&mut self.rng));
        match start {
            Ok(s) => {
                self.send(s.request().to_vec());
                self.making = Some(Making::Init(Box::new(s), Retx::new(now, self.cfg.retransmit)));
            }
            Err(_) => self.fail_making(Reason::Refused(v1_notify(NotifyType::NoProposalChosen))),
        }
    }

    /// The IKE SA we were making failed: so does every child waiting for
    /// it.
    fn fail_making(&mut self, reason: Reason) {
        if let Some(Making::Auth(_, Some(r), _)) = self.making.take() {
            self.events.push_back(Event::ChildSaFailed { proxy_id: r.proxy_id, reason: reason.clone() });
        }
        if self.ike.is_some() {
            return;
        }
        self.fail_waiting(&reason);
        self.events.push_back(Event::IkeSaDown { reason });
    }

    /// Every child waiting in the queue fails; the rest of the queue goes.
    fn fail_waiting(&mut self, reason: &Reason) {
        for w in std::mem::take(&mut self.work) {
            if let Work::Child(p) | Work::ChildRetry { proxy_id: p, .. } = w {
                self.events.push_back(Event::ChildSaFailed { proxy_id: p, reason: reason.clone() });
            }
        }
    }

    /// The IKE SA is gone (deleted, dead, replaced after the peer
    /// restarted): its children are down, our request on it failed, and
    /// the children waiting for it fail.
    fn ike_gone(&mut self, reason: Reason) {
        self.old_ike.clear();
        self.crossed_ike = None;
        if self.ike.take().is_none() {
            return;
        }
        if let Some(Outstanding { kind: OutKind::Child { pending, rekey_of: None, .. }, .. }) =
            self.out.take()
        {
            let p = pending.child_request().proxy_id;
            self.events.push_back(Event::ChildSaFailed { proxy_id: p, reason: reason.clone() });
        }
        for c in std::mem::take(&mut self.children) {
            self.events.push_back(Event::ChildSaDown {
                proxy_id: c.proxy_id,
                spi_in: c.spi_in,
                spi_out: c.spi_out,
                reason: reason.clone(),
            });
        }
        self.fail_waiting(&reason);
        self.last_heard = None;
        self.nat_t = false;
        self.keepalive_at = None;
        self.events.push_back(Event::IkeSaDown { reason });
    }

    /// A new IKE SA is up (either role): the one before it, if any, is
    /// gone; queued work goes on over the new one.
    fn ike_up(&mut self, now: Instant, sa: IkeSa, initial_contact: bool) {
        if self.ike.is_some() {
            // The peer authenticated a new IKE SA: with INITIAL_CONTACT it
            // has forgotten the old one (§2.4); without, it replaces it
            // all the same, and the old one's children with it.
            let work = std::mem::take(&mut self.work);
            self.ike_gone(if initial_contact { Reason::PeerRestarted } else { Reason::Rekeyed });
            self.work = work;
            if initial_contact {
                self.events.push_back(Event::Notify {
                    kind: crate::wire::NotifyType::InitialContact,
                    exchange: Exchange::IkeAuth,
                });
            }
        }
        self.nat_t = ike_nat(&sa);
        let x = &sa.established().exchange;
        let peers_init = if sa.original_initiator() { &x.response } else { &x.request };
        if !peers_init.is_empty() {
            self.peer_fragments = super::frag::announced(peers_init);
        }
        let behind = sa.established().exchange.nat.local_behind_nat;
        self.keepalive_at = behind.then(|| now + NAT_KEEPALIVE_EVERY);
        self.report_up(&sa);
        self.ike = Some(sa);
        self.last_heard = Some(now);
    }

    /// The IKE SA's child pairs, as the owner installs them: on the IKE
    /// SA's path, with ESP in UDP on its ports when NAT-T is in use
    /// (§2.23, RFC 3948).
    fn on_path(&self, mut sa: crate::ChildSa) -> crate::ChildSa {
        let (local, remote) = self.path.unwrap_or((self.cfg.local, self.cfg.remote));
        sa.local = local;
        sa.remote = remote;
        sa.encap =
            self.nat_t.then(|| crate::UdpEncap { local_port: local.port(), remote_port: remote.port() });
        sa
    }

    fn report_up(&mut self, sa: &IkeSa) {
        let (spi_i, spi_r) = sa.spis();
        let nat = self.nat_t;
        self.events.push_back(Event::IkeSaUp {
            icookie: spi_i.to_be_bytes(),
            rcookie: spi_r.to_be_bytes(),
            initiator: sa.original_initiator(),
            proposal: proposal_name(sa),
            nat,
            behind_nat: self.keepalive_at.is_some(),
            local: self.path.map_or(self.cfg.local, |p| p.0),
            remote: self.path.map_or(self.cfg.remote, |p| p.1),
        });
    }

    /// The IKE SA is rekeyed (§2.18): `new` carries on with every child;
    /// the old one waits for its Delete, which we send if we made `new`
    /// (`ours`).
    fn ike_rekeyed(&mut self, now: Instant, new: IkeSa, ours: bool) {
        let Some(old) = self.ike.take() else { return };
        self.keep_old_ike(now, old, ours);
        self.events.push_back(Event::IkeSaDown { reason: Reason::Rekeyed });
        self.report_up(&new);
        self.ike = Some(new);
        self.last_heard = Some(now);
    }

    /// A child made in IKE_AUTH: the first of its IKE SA, it meets no
    /// other.
    fn child_up(&mut self, now: Instant, c: &NewChild) {
        self.record_child(now, c, None);
        let sa = self.on_path(c.sa.clone());
        self.events.push_back(Event::ChildSaUp(Box::new(sa)));
    }

    /// Keeps a child made (either role), not yet reported.
    fn record_child(&mut self, now: Instant, c: &NewChild, replaces: Option<u32>) {
        self.children.push(Child {
            proxy_id: c.sa.proxy_id,
            spi_in: c.sa.spi_in,
            spi_out: c.sa.spi_out,
            deleting: false,
            rekeyed: false,
            ours: c.sa.initiator,
            replaces,
            lowest_nonce: c.lowest_nonce.clone(),
            made: now,
            redundant: false,
            delete_at: None,
        });
    }

    fn child_down(&mut self, spi_in: u32, reason: Reason) {
        let Some(pos) = self.children.iter().position(|c| c.spi_in == spi_in) else { return };
        let c = self.children.remove(pos);
        // Replaced: marked so, or the peer's rekey of it is up while ours
        // crossed it (§2.8.1).
        let replaced = c.rekeyed || self.children.iter().any(|o| o.replaces == Some(spi_in) && o.live());
        let reason = if replaced { Reason::Rekeyed } else { reason };
        self.events.push_back(Event::ChildSaDown {
            proxy_id: c.proxy_id,
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            reason,
        });
    }

    /// A child we asked for was refused or could not be taken: reported,
    /// and a child the peer made all the same is deleted with it (§1.4.1).
    fn child_failed(&mut self, exchange: Exchange, req: &ChildRequest, e: &ChildError) {
        let reason = failure_reason(e);
        if let ChildError::NoProposalChosen(why) | ChildError::NotOffered(why) = e {
            self.events.push_back(Event::ProposalMismatch {
                exchange,
                proposed: vec![why.clone()],
                configured: self.cfg.child.suites.iter().map(|s| s.name().to_string()).collect(),
                peer_refused: false,
            });
        }
        self.events.push_back(Event::ChildSaFailed { proxy_id: req.proxy_id, reason });
        if peer_made_it(e) {
            self.work.push_front(Work::Delete(req.spi_in));
        }
    }

    /// The peer's child request refused by us: said in words.
    fn refused_peer_child(&mut self, message_id: u32, e: &ChildError) {
        match e {
            ChildError::TsUnacceptable(why) => self.events.push_back(Event::ProxyIdMismatch {
                message_id,
                proposed: why.clone(),
                configured: self.cfg.child.proxy_ids.clone(),
            }),
            other => self.events.push_back(Event::ProposalMismatch {
                exchange: Exchange::CreateChildSa(message_id),
                proposed: vec![other.to_string()],
                configured: self.cfg.child.suites.iter().map(|s| s.name().to_string()).collect(),
                peer_refused: false,
            }),
        }
    }

    /// Starts queued work while the window is free (§2.3: one request
    /// outstanding).
    fn pump(&mut self, now: Instant) {
        while self.ike.is_some() && self.out.is_none() {
            let Some(w) = self.work.pop_front() else { return };
            self.start(now, w);
        }
    }

    fn start(&mut self, now: Instant, w: Work) {
        let Some(ike) = self.ike.as_mut() else { return };
        let (kind, sent) = match w {
            Work::Child(proxy_id) => {
                let req = ChildRequest { proxy_id, packet: None, spi_in: self.rng.spi() };
                let sent =
                    ike.create_child_with(req, &self.cfg.child, ChildOptions::default(), &mut self.rng);
                match sent {
                    Ok(p) => {
                        let id = p.message_id();
                        let bytes = p.request().to_vec();
                        (
                            OutKind::Child { pending: Box::new(p), rekey_of: None, retried: false },
                            Ok((id, bytes)),
                        )
                    }
                    Err(e) => (OutKind::Dpd, Err((Some(proxy_id), e))),
                }
            }
            Work::ChildRetry { proxy_id, group, rekey_of } => {
                let req = ChildRequest { proxy_id, packet: None, spi_in: self.rng.spi() };
                let opts = ChildOptions { rekey: rekey_of, group: Some(group) };
                match ike.create_child_with(req, &self.cfg.child, opts, &mut self.rng) {
                    Ok(p) => {
                        let id = p.message_id();
                        let bytes = p.request().to_vec();
                        (OutKind::Child { pending: Box::new(p), rekey_of, retried: true }, Ok((id, bytes)))
                    }
                    Err(e) => (OutKind::Dpd, Err((Some(proxy_id), e))),
                }
            }
            Work::Rekey(old) => {
                let Some(c) = self.children.iter().find(|c| c.spi_in == old && c.live()) else {
                    return;
                };
                let req = ChildRequest { proxy_id: c.proxy_id, packet: None, spi_in: self.rng.spi() };
                let opts = ChildOptions { rekey: Some(old), group: None };
                match ike.create_child_with(req, &self.cfg.child, opts, &mut self.rng) {
                    Ok(p) => {
                        let id = p.message_id();
                        let bytes = p.request().to_vec();
                        (
                            OutKind::Child { pending: Box::new(p), rekey_of: Some(old), retried: false },
                            Ok((id, bytes)),
                        )
                    }
                    Err(e) => (OutKind::Dpd, Err((None, e))),
                }
            }
            Work::Delete(spi_in) => {
                if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == spi_in) {
                    if c.deleting {
                        return;
                    }
                    c.deleting = true;
                }
                let spi = spi_in.to_be_bytes();
                let mut chain = PayloadChain::new();
                chain.push_payload(&Payload::Delete(DeletePayload::new(ProtocolId::Esp, 4, &spi)));
                let sent = ike.send_request(ExchangeType::Informational, &chain, &mut self.rng);
                (OutKind::Delete { spi_in }, sent.map_err(|e| (None, e)))
            }
            Work::DeleteIke => {
                let mut chain = PayloadChain::new();
                chain.push_payload(&Payload::Delete(DeletePayload::new(ProtocolId::Ike, 0, &[])));
                let sent = ike.send_request(ExchangeType::Informational, &chain, &mut self.rng);
                (OutKind::DeleteIke, sent.map_err(|e| (None, e)))
            }
            Work::Dpd => {
                let sent = ike.send_request(ExchangeType::Informational, &PayloadChain::new(), &mut self.rng);
                (OutKind::Dpd, sent.map_err(|e| (None, e)))
            }
            Work::RekeyIke => match ike.rekey_ike(&self.cfg.proposals, &mut self.rng) {
                Ok(p) => {
                    let sent = (p.message_id, p.request.clone());
                    (OutKind::IkeRekey(Box::new(p)), Ok(sent))
                }
                Err(e) => (OutKind::Dpd, Err((None, e))),
            },
        };
        match sent {
            Ok((message_id, bytes)) => {
                self.send(bytes.clone());
                let retx = match (&kind, self.cfg.dpd, self.cfg.dpd_retries) {
                    (OutKind::Dpd, Some(every), Some(n)) => Retx::every(now, every, n.max(1) - 1),
                    _ => Retx::new(now, self.cfg.retransmit),
                };
                self.out = Some(Outstanding { message_id, bytes, retx, kind });
            }
            // Sealing failed: the GCM IVs of this IKE SA are spent. It can
            // carry nothing more.
            Err((proxy_id, _)) => {
                if let Some(p) = proxy_id {
                    self.work.push_front(Work::Child(p));
                }
                self.ike_gone(Reason::Expired);
            }
        }
    }

    /// Processes one received datagram (the non-ESP marker already
    /// stripped). `local` is the address it arrived on, `remote` its
    /// source. An error says why it was dropped (and it is counted in
    /// [`Session::dropped`]); outcomes are events.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let result = self.dispatch(now, local, remote, bytes);
        self.pump(now);
        match result {
            Ok(()) => Ok(()),
            Err((d, exchange)) => {
                self.dropped.add(d);
                if d == Dropped::RetransmitAnswered {
                    return Ok(());
                }
                let kind = match d {
                    Dropped::WrongPeer => ErrorKind::WrongPeer(remote),
                    Dropped::UnknownSpi => ErrorKind::NoExchange,
                    Dropped::Integrity => ErrorKind::Integrity(d.description()),
                    _ => ErrorKind::Unexpected(d.description()),
                };
                Err(self.err(exchange, kind))
            }
        }
    }

    fn dispatch(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, bytes: &[u8]) -> Handled {
        if remote.ip() != self.cfg.remote.ip() {
            return Err((Dropped::WrongPeer, Exchange::Informational));
        }
        self.arrived = (local, remote);
        let Ok(h) = Header::parse(bytes) else {
            // Another major version gets its answer from the responder
            // (§1.5); anything else unreadable, silence.
            if let Some(a) = self.responder.respond(bytes, local, remote, 0, now, &mut self.rng).answer() {
                let a = a.to_vec();
                self.answer(a);
            }
            return Err((Dropped::Unreadable, Exchange::Informational));
        };
        if h.next_payload == super::wire::PayloadType::EncryptedFragment.value() {
            return self.fragment_in(now, (local, remote), &h, bytes);
        }
        let handled = self.route(now, (local, remote), &h, bytes);
        if handled.is_ok() {
            // RFC 7383 §2.6.1: the message came whole after all.
            self.reassembly.taken_whole(&h);
        }
        handled
    }

    /// A whole message (or one reassembled from fragments) to the
    /// exchange it belongs to.
    fn route(&mut self, now: Instant, (local, remote): Addrs, h: &Header, bytes: &[u8]) -> Handled {
        let h = *h;
        if let Some(i) = self.old_ike.iter().position(|o| o.sa.spis() == (h.spi_i, h.spi_r)) {
            return self.old_ike_message(now, i, &h, bytes);
        }
        match (h.exchange, h.is_response()) {
            (ExchangeType::IkeSaInit, false) => self.init_request(now, (local, remote), bytes),
            (ExchangeType::IkeSaInit, true) => self.init_response(now, bytes),
            (ExchangeType::IkeAuth, true) => self.auth_response(now, bytes),
            (ExchangeType::IkeAuth, false)
                if self.ike.as_ref().is_none_or(|s| s.spis() != (h.spi_i, h.spi_r)) =>
            {
                self.auth_request(now, remote, &h, bytes)
            }
            (_, false) => self.request(now, &h, bytes),
            (_, true) => self.response(now, &h, bytes),
        }
    }
}

/// NAT-T is in use on this IKE SA: either end is behind a NAT (or says
/// so, as strongSwan's kernel-libipsec does to get ESP in UDP).
fn ike_nat(sa: &IkeSa) -> bool {
    let n = &sa.established().exchange.nat;
    n.local_behind_nat || n.remote_behind_nat
}

/// IKE SAs kept for their Delete at most: the one a rekey replaced and
/// the one a simultaneous rekey made redundant; an older one is
/// forgotten.
const OLD_IKE_KEPT: usize = 2;

/// The port IKE floats to when a NAT is seen (RFC 7296 §2.23).
const NATT_PORT: u16 = crate::NATT_PORT;

/// NAT-keepalive interval (RFC 3948 §4: 20 seconds by default).
const NAT_KEEPALIVE_EVERY: Duration = Duration::from_secs(20);

/// What a datagram handler made of it: done, or dropped (counted) and why.
type Handled = Result<(), (Dropped, Exchange)>;

/// The exchange a message under an IKE SA belongs to, for errors.
fn exchange_of(h: &Header) -> Exchange {
    match h.exchange {
        ExchangeType::CreateChildSa => Exchange::CreateChildSa(h.message_id),
        ExchangeType::IkeAuth => Exchange::IkeAuth,
        _ => Exchange::Informational,
    }
}

/// The counter of an exchange error.
fn exchange_dropped(e: &ExchangeError) -> Dropped {
    match e {
        ExchangeError::NotOurs => Dropped::UnknownSpi,
        ExchangeError::OutOfWindow { got, expected } if got < expected => Dropped::ReplayedRequest,
        ExchangeError::OutOfWindow { .. } => Dropped::RequestAhead,
        ExchangeError::Busy => Dropped::UnexpectedResponse,
        ExchangeError::OtherExchange(_) => Dropped::UnsupportedExchange,
        ExchangeError::Sk(super::sk::SkError::BadIcv) => Dropped::Integrity,
        ExchangeError::Sk(_) => Dropped::Malformed,
    }
}
