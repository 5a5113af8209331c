//! [`Endpoint`]: one gateway's IKE, IKEv1 ([`Peer`]) or IKEv2
//! ([`Session`]), behind the one set of calls the [`super::IkeManager`]
//! drives. Both are sans-IO and report the same [`Event`]s, so the
//! manager installs, rekeys and deletes their child SAs alike; what only
//! one version has is answered here for the other:
//!
//! * **IKEv1 only**: Aggressive Mode and dynamic peers, NAT-T and its
//!   keepalives, esprit's vendor ID, the saved state a restarted controld
//!   resumes (`persist`), and phase-1 rekeys run by the peer itself.
//! * **IKEv2**: the IKE SA is rekeyed here by time (RFC 7296 §2.18 leaves
//!   it to the owner): its original initiator at 85-90 % of the lifetime,
//!   the responder at 95 % unless the initiator came first (both ends at
//!   once are settled by the session, RFC 7296 §2.8.1); a rekey that fails
//!   (refused with TEMPORARY_FAILURE while a child exchange runs, §2.25)
//!   is asked again [`IKE_REKEY_RETRY`] later. Its datagram drops are
//!   counted by reason ([`DroppedCounts`]), its half-open exchanges bounded
//!   by its own responder (COOKIEs, §2.6).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use esprit_ike::v2::alg::{EncrAlg, IntegAlg, PrfAlg};
use esprit_ike::v2::auth::{Authenticator, PskAuth, WireIdentity};
use esprit_ike::v2::child::ChildConfig;
use esprit_ike::v2::config::IkeSaProposal;
use esprit_ike::v2::dropped::DroppedCounts;
use esprit_ike::v2::session::{Session, SessionConfig};
use esprit_ike::v2::wire::{ExchangeType, Header};
use esprit_ike::{Discards, EncryptionAlg, Error, Event, HashAlg, Peer, PeerConfig, Transmit};
use esprit_policy::ProxyId;

use super::pki::CertFiles;
use super::IkeRandom;

/// A failed IKE SA rekey is asked again after this long.
pub const IKE_REKEY_RETRY: Duration = Duration::from_secs(10);

/// When the two ends of an IKEv2 IKE SA rekey it (per mille of its
/// lifetime): the original initiator somewhere in the first range (spread
/// at random, like the children's), the responder at the second.
const IKE_REKEY_INITIATOR_PER_MILLE: (u64, u64) = (850, 900);
const IKE_REKEY_RESPONDER_PER_MILLE: u64 = 950;

/// The IKEv2 IKE SA as the operator sees it (the v1 one is
/// [`esprit_ike::IsakmpSaSummary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaSummary {
    /// We initiated it (the original initiator, through rekeys).
    pub initiator: bool,
    /// Its algorithms, strongSwan notation (`aes256-sha256-prfsha256-ecp256`).
    pub proposal: String,
    /// NAT seen.
    pub nat_t: bool,
    /// When it (or its latest rekey) was established.
    pub established: Instant,
    /// Its lifetime in seconds (the configured one: IKEv2 does not
    /// negotiate it, §2.8).
    pub lifetime_secs: u32,
}

/// One gateway's IKE endpoint; see the module doc.
#[derive(Debug)]
pub enum Endpoint {
    /// IKEv1.
    V1(Box<Peer<IkeRandom>>),
    /// IKEv2.
    V2(Box<V2>),
}

/// An IKEv2 session and what the manager keeps beside it.
#[derive(Debug)]
pub struct V2 {
    session: Session<IkeRandom>,
    /// The gateway's configuration, as for IKEv1 (names, addresses,
    /// lifetimes, proxy-IDs, for the manager and the operator).
    config: PeerConfig,
    /// Its certificates, when it authenticates by signature.
    cert: Option<CertFiles>,
    /// The IKE SA up, once reported.
    up: Option<IkeSaSummary>,
    /// When to rekey the IKE SA.
    rekey_at: Option<Instant>,
    /// Random source for the rekey spread.
    spread: u16,
}

/// The IKEv2 IKE SA proposals of an IKEv1-style proposal list: each
/// (cipher, hash, group) becomes one proposal with the hash as both PRF
/// and integrity (HMAC-SHA1-96 / HMAC-SHA-256-128, RFC 7296 §3.3.2,
/// RFC 4868), in the configured order.
fn proposals(cfg: &PeerConfig) -> Vec<IkeSaProposal> {
    cfg.ike_proposals
        .iter()
        .map(|p| {
            let encr = match p.cipher {
                EncryptionAlg::Aes128Cbc => EncrAlg::AesCbc128,
                EncryptionAlg::Aes256Cbc => EncrAlg::AesCbc256,
            };
            let (prf, integ) = match p.hash {
                HashAlg::Sha1 => (PrfAlg::HmacSha1, IntegAlg::HmacSha1_96),
                HashAlg::Sha256 => (PrfAlg::HmacSha256, IntegAlg::HmacSha256_128),
            };
            IkeSaProposal { encr: vec![encr], prf: vec![prf], integ: vec![integ], dh: vec![p.group] }
        })
        .collect()
}

/// The IKEv2 session configuration of a gateway: the same proposals,
/// key, identities, suites, PFS group, lifetimes, proxy-IDs and DPD
/// interval as its IKEv1 form, its fragment size; certificates instead
/// of the key when it has them. Errors say what cannot be offered.
pub fn session_config(cfg: &PeerConfig, cert: Option<&CertFiles>) -> Result<SessionConfig, String> {
    let proposals = proposals(cfg);
    IkeSaProposal::check_all(&proposals).map_err(|e| e.to_string())?;
    let local = WireIdentity::from(&cfg.local_id);
    let remote = cfg.remote_id.as_ref().map(WireIdentity::from);
    let auth: Authenticator = match cert {
        Some(c) => Authenticator::Cert(c.auth(&local, remote)?),
        None => PskAuth { psk: cfg.psk.clone(), local, remote }.into(),
    };
    Ok(SessionConfig {
        name: cfg.name.clone(),
        local: cfg.local,
        remote: cfg.remote,
        proposals,
        auth,
        child: ChildConfig {
            suites: cfg.esp_suites.clone(),
            esn: cfg.esn,
            pfs: cfg.pfs,
            pfs_also: Vec::new(),
            proxy_ids: cfg.proxy_ids.clone(),
            lifetime: cfg.child_lifetime,
        },
        retransmit: cfg.retransmit,
        dpd: cfg.dpd_delay,
        dpd_retries: Some(cfg.dpd_retries),
        fragment_size: cfg.fragment_size,
    })
}

impl Endpoint {
    /// An IKEv1 peer for `cfg`.
    pub fn v1(cfg: PeerConfig, rng: IkeRandom) -> Endpoint {
        Endpoint::V1(Box::new(Peer::new(cfg, rng)))
    }

    /// An IKEv2 session for `cfg`, with `cert` when it authenticates by
    /// certificate, and the wall clock at one moment when known.
    pub fn v2(
        cfg: PeerConfig,
        cert: Option<CertFiles>,
        mut rng: IkeRandom,
        wall: Option<esprit_ike::WallClock>,
    ) -> Result<Endpoint, String> {
        let mut b = [0u8; 2];
        esprit_ike::Random::fill(&mut rng, &mut b);
        let mut session =
            Session::new(session_config(&cfg, cert.as_ref())?, rng).map_err(|e| e.to_string())?;
        if let Some(w) = wall {
            session.set_wall_clock(w.now, w.wall);
        }
        Ok(Endpoint::V2(Box::new(V2 {
            session,
            config: cfg,
            cert,
            up: None,
            rekey_at: None,
            spread: u16::from_be_bytes(b),
        })))
    }

    /// The certificates it authenticates with (IKEv2).
    pub fn cert(&self) -> Option<&CertFiles> {
        match self {
            Endpoint::V1(_) => None,
            Endpoint::V2(s) => s.cert.as_ref(),
        }
    }

    /// The wall clock at one moment (IKEv2 checks certificates against
    /// it).
    pub fn set_wall_clock(&mut self, clock: esprit_ike::WallClock) {
        if let Endpoint::V2(s) = self {
            s.session.set_wall_clock(clock.now, clock.wall);
        }
    }

    /// "IKEv1" or "IKEv2".
    pub fn version(&self) -> &'static str {
        match self {
            Endpoint::V1(_) => "IKEv1",
            Endpoint::V2(_) => "IKEv2",
        }
    }

    /// The IKEv1 peer, for what only it has (saved state).
    pub fn as_v1(&self) -> Option<&Peer<IkeRandom>> {
        match self {
            Endpoint::V1(p) => Some(p),
            Endpoint::V2(_) => None,
        }
    }

    /// The IKEv1 peer, mutably.
    pub fn as_v1_mut(&mut self) -> Option<&mut Peer<IkeRandom>> {
        match self {
            Endpoint::V1(p) => Some(p),
            Endpoint::V2(_) => None,
        }
    }

    /// The gateway's configuration.
    pub fn config(&self) -> &PeerConfig {
        match self {
            Endpoint::V1(p) => p.config(),
            Endpoint::V2(s) => &s.config,
        }
    }

    /// The proxy-IDs changed (the VPNs' own settings did not).
    pub fn set_proxy_ids(&mut self, proxy_ids: Vec<ProxyId>) {
        match self {
            Endpoint::V1(p) => p.set_proxy_ids(proxy_ids),
            Endpoint::V2(s) => {
                s.config.proxy_ids = proxy_ids.clone();
                s.session.set_proxy_ids(proxy_ids);
            }
        }
    }

    /// A new NAT-keepalive interval (IKEv1; IKEv2 does no NAT-T yet).
    pub fn set_nat_keepalive(&mut self, now: Instant, every: Option<Duration>) {
        match self {
            Endpoint::V1(p) => p.set_nat_keepalive(now, every),
            Endpoint::V2(s) => s.config.nat_keepalive = every,
        }
    }

    /// NAT-keepalives are being sent this often.
    pub fn keepalive_every(&self) -> Option<Duration> {
        match self {
            Endpoint::V1(p) => p.keepalive_every(),
            Endpoint::V2(s) => s.session.keepalive_every(),
        }
    }

    /// The IKE SA is up.
    pub fn is_established(&self) -> bool {
        match self {
            Endpoint::V1(p) => p.is_established(),
            Endpoint::V2(s) => s.session.is_established(),
        }
    }

    /// The peer is esprit (its vendor ID): it installs its inbound SAs
    /// before the message that lets us use them leaves. IKEv2 needs no
    /// such word: the responder of an exchange installs both directions
    /// before its response leaves, and the initiator once it has it.
    pub fn installs_before_answering(&self) -> bool {
        match self {
            Endpoint::V1(p) => p.peer_is_esprit(),
            Endpoint::V2(_) => true,
        }
    }

    /// A child for `proxy_id` is asked for, or runs.
    pub fn is_negotiating(&self, proxy_id: &ProxyId) -> bool {
        match self {
            Endpoint::V1(p) => p.is_negotiating(proxy_id),
            Endpoint::V2(s) => s.session.is_negotiating(proxy_id),
        }
    }

    /// (local, remote) addresses in use.
    pub fn addresses(&self) -> (SocketAddr, SocketAddr) {
        match self {
            Endpoint::V1(p) => p.addresses(),
            Endpoint::V2(s) => (s.config.local, s.config.remote),
        }
    }

    /// Asks for a child SA pair for `proxy_id`.
    pub fn initiate_child(&mut self, now: Instant, proxy_id: ProxyId) -> Result<(), Error> {
        match self {
            Endpoint::V1(p) => p.initiate_child(now, proxy_id),
            Endpoint::V2(s) => s.session.initiate_child(now, proxy_id),
        }
    }

    /// Rekeys the child `spi_in` of `proxy_id` (IKEv1 negotiates a new
    /// pair for the proxy-ID, IKEv2 rekeys that child, REKEY_SA).
    pub fn rekey_child(&mut self, now: Instant, proxy_id: ProxyId, spi_in: u32) -> Result<(), Error> {
        match self {
            Endpoint::V1(p) => p.rekey_child(now, proxy_id),
            Endpoint::V2(s) => s.session.rekey_child(now, spi_in),
        }
    }

    /// Deletes the child `spi_in` with the peer.
    pub fn delete_child(&mut self, now: Instant, spi_in: u32) -> Result<(), Error> {
        match self {
            Endpoint::V1(p) => p.delete_child(now, spi_in),
            Endpoint::V2(s) => s.session.delete_child(now, spi_in),
        }
    }

    /// Deletes the IKE SA with the peer.
    pub fn delete_ike(&mut self, now: Instant) -> Result<(), Error> {
        match self {
            Endpoint::V1(p) => p.delete_ike(now),
            Endpoint::V2(s) => s.session.delete_ike(now),
        }
    }

    /// A datagram from `remote` to `local`. A drop is counted (in
    /// [`Endpoint::discard_total`]) and said in the error.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Error> {
        match self {
            Endpoint::V1(p) => p.handle_datagram(now, local, remote, bytes),
            Endpoint::V2(s) => s.session.handle_datagram(now, local, remote, bytes),
        }
    }

    /// Datagrams dropped so far, all reasons together: a datagram that
    /// raised it was a drop the counters tell, not a line for the log.
    pub fn discard_total(&self) -> u64 {
        match self {
            Endpoint::V1(p) => p.discards().iter().map(|(_, n)| n).sum(),
            Endpoint::V2(s) => s.session.dropped().total(),
        }
    }

    /// IKEv1's discards by reason (none for IKEv2: see
    /// [`Endpoint::v2_dropped`]).
    pub fn discards(&self) -> Discards {
        match self {
            Endpoint::V1(p) => *p.discards(),
            Endpoint::V2(_) => Discards::default(),
        }
    }

    /// IKEv2's drops by reason.
    pub fn v2_dropped(&self) -> Option<&DroppedCounts> {
        match self {
            Endpoint::V1(_) => None,
            Endpoint::V2(s) => Some(s.session.dropped()),
        }
    }

    /// Half-open responder exchanges held.
    pub fn half_open(&self) -> usize {
        match self {
            Endpoint::V1(p) => p.half_open(),
            Endpoint::V2(s) => s.session.init_responder().half_open_len(),
        }
    }

    /// The most half-open exchanges held for one source (IKEv2: its
    /// responder bounds them itself; 0 here).
    pub fn half_open_per_source_max(&self) -> usize {
        match self {
            Endpoint::V1(p) => p.half_open_per_source_max(),
            Endpoint::V2(_) => 0,
        }
    }

    /// The datagram would open a new responder exchange.
    pub fn opens_exchange(&self, bytes: &[u8]) -> bool {
        match self {
            Endpoint::V1(p) => p.opens_exchange(bytes),
            Endpoint::V2(_) => Header::parse(bytes)
                .is_ok_and(|h| h.exchange == ExchangeType::IkeSaInit && !h.is_response() && h.spi_r == 0),
        }
    }

    /// Forgets one half-open exchange to make room (IKEv1). IKEv2's
    /// responder answers with a COOKIE instead (§2.6): nothing to give.
    pub fn displace_half_open(&mut self) -> bool {
        match self {
            Endpoint::V1(p) => p.displace_half_open(),
            Endpoint::V2(_) => false,
        }
    }

    /// A dynamic peer from an address not yet its own (IKEv1 Aggressive
    /// Mode only).
    pub fn expects_from(&self, remote: SocketAddr, bytes: &[u8]) -> bool {
        match self {
            Endpoint::V1(p) => p.expects_from(remote, bytes),
            Endpoint::V2(_) => false,
        }
    }

    /// The IKE version a datagram speaks, if it has a header at all
    /// (RFC 7296 §3.1: the major version in the high nibble of octet 17,
    /// where IKEv1 has 1).
    pub fn speaks(bytes: &[u8]) -> Option<u8> {
        bytes.get(17).map(|v| v >> 4)
    }

    /// This endpoint's major version.
    pub fn major(&self) -> u8 {
        match self {
            Endpoint::V1(_) => 1,
            Endpoint::V2(_) => 2,
        }
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Endpoint::V1(p) => p.poll_transmit(),
            Endpoint::V2(s) => s.session.poll_transmit(),
        }
    }

    /// Next event. For IKEv2, the IKE SA's coming and going also sets
    /// (or clears) when it is rekeyed.
    pub fn poll_event(&mut self, now: Instant) -> Option<Event> {
        match self {
            Endpoint::V1(p) => p.poll_event(),
            Endpoint::V2(s) => {
                let e = s.session.poll_event()?;
                match &e {
                    Event::IkeSaUp { initiator, proposal, nat, .. } => {
                        let lifetime_secs = s.config.ike_lifetime;
                        s.up = Some(IkeSaSummary {
                            initiator: *initiator,
                            proposal: proposal.clone(),
                            nat_t: *nat,
                            established: now,
                            lifetime_secs,
                        });
                        s.rekey_at = (lifetime_secs > 0).then(|| {
                            let per_mille = if *initiator {
                                let (lo, hi) = IKE_REKEY_INITIATOR_PER_MILLE;
                                lo + u64::from(s.spread) % (hi - lo + 1)
                            } else {
                                IKE_REKEY_RESPONDER_PER_MILLE
                            };
                            now + Duration::from_millis(u64::from(lifetime_secs) * per_mille)
                        });
                    }
                    // The SA that replaced it reports IkeSaUp next.
                    Event::IkeSaDown { reason: esprit_ike::Reason::Rekeyed } => {}
                    Event::IkeSaDown { .. } => {
                        s.up = None;
                        s.rekey_at = None;
                    }
                    _ => {}
                }
                Some(e)
            }
        }
    }

    /// The earliest time [`Endpoint::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Endpoint::V1(p) => p.poll_timeout(),
            Endpoint::V2(s) => [s.session.poll_timeout(), s.rekey_at].into_iter().flatten().min(),
        }
    }

    /// Runs what is due: retransmissions, liveness checks, and for IKEv2
    /// the IKE SA's rekey.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Endpoint::V1(p) => p.handle_timeout(now),
            Endpoint::V2(s) => {
                if s.session.poll_timeout().is_some_and(|t| t <= now) {
                    s.session.handle_timeout(now);
                }
                if s.rekey_at.is_some_and(|t| t <= now) {
                    // Asked again later unless the new SA's IkeSaUp
                    // sets a new time first.
                    s.rekey_at = Some(now + IKE_REKEY_RETRY);
                    let _ = s.session.rekey_ike(now);
                }
            }
        }
    }

    /// Rekeys the IKEv2 IKE SA now, as its time would (tests: both ends
    /// at once).
    #[cfg(test)]
    pub fn rekey_ike_now(&mut self, now: Instant) {
        if let Endpoint::V2(s) = self {
            s.rekey_at = Some(now);
            self.handle_timeout(now);
        }
    }

    /// The IKE SA's SPIs / ISAKMP cookies (initiator's, responder's).
    pub fn ike_cookies(&self) -> Option<([u8; 8], [u8; 8])> {
        match self {
            Endpoint::V1(p) => p.ike_cookies(),
            Endpoint::V2(s) => s.session.ike_spis().map(|(i, r)| (i.to_be_bytes(), r.to_be_bytes())),
        }
    }

    /// The established IKE SA for the operator: (initiator, proposal
    /// name, NAT-T, established, lifetime).
    pub fn summary(&self) -> Option<IkeSaSummary> {
        match self {
            Endpoint::V1(p) => p.isakmp_sa_summary().map(|s| IkeSaSummary {
                initiator: s.initiator,
                proposal: s.proposal.name(),
                nat_t: s.nat_t,
                established: s.established,
                lifetime_secs: s.lifetime_secs,
            }),
            Endpoint::V2(s) => s.up.clone().filter(|_| s.session.is_established()),
        }
    }
}
