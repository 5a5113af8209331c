//! The responder's side of IKE_SA_INIT (RFC 7296 §1.2, §2.6, §2.7,
//! §2.21.1).
//!
//! [`InitResponder::respond`] takes one request and gives at most one
//! answer (§2.21.1: errors in an IKE_SA_INIT request are answered
//! unencrypted, never twice for one request). In order, each check
//! before anything that costs more:
//!
//! 1. header: unreadable, silence; another major version,
//!    INVALID_MAJOR_VERSION (§1.5); not a request for a new SA, silence;
//! 2. a retransmission of a request already answered: the same response
//!    (§2.1), no new state; another request for that SPIi: silence;
//! 3. payloads: malformed, repeated or missing, INVALID_SYNTAX; a
//!    critical one not understood, UNSUPPORTED_CRITICAL_PAYLOAD (§2.5);
//! 4. under load (half-open exchanges at the threshold passed in) a
//!    request without our COOKIE first gets a COOKIE (§2.6), stateless;
//! 5. proposals: NO_PROPOSAL_CHOSEN, or INVALID_KE_PAYLOAD naming our
//!    preferred group when the KE is of another (§1.2, §1.3);
//! 6. the half-open table full, in all or for the source address:
//!    silence; then the Diffie-Hellman, the
//!    keys, the response, and a [`ResponderInitDone`] kept under the
//!    initiator's address and SPIi until IKE_AUTH takes it or it times out.
//!
//! Every refusal carries an [`InitReason`]; the responder counts them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::dh::DhSecret;
use crate::Random;

use super::config::{select, IkeSaProposal, ProposalError, Selection};
use super::init::{
    ike_spi, init_header, push_nat_detection, push_notify, push_sa_ke_nonce, InitExchange, InitPayloads,
    InitReason, NONCE_LEN,
};
use super::keys::IkeSaKeys;
use super::wire::{
    self, CertEncoding, CertPayload, ExchangeType, Header, MessageBuilder, NotifyType, Payload, HEADER_LEN,
};

/// What a responder accepts and how much it holds for strangers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderConfig {
    /// Acceptable IKE SA proposals; within each, the D-H groups in our
    /// order of preference (the one INVALID_KE_PAYLOAD names).
    pub proposals: Vec<IkeSaProposal>,
    /// Half-open exchanges from which on a COOKIE is demanded (§2.6).
    pub cookie_threshold: usize,
    /// Half-open exchanges this responder holds at most.
    pub max_half_open: usize,
    /// Half-open exchanges it holds at most per source address: a peer
    /// that receives at its address (and so gets past a COOKIE) still
    /// cannot fill the table alone (DESIGN §7).
    pub max_half_open_per_source: usize,
    /// A half-open exchange is forgotten after this long.
    pub half_open_timeout: Duration,
    /// The hash algorithms of RFC 7427 §4 to announce to an initiator that
    /// announced its own (empty: none; they matter only with
    /// certificates).
    pub signature_hash_algorithms: Vec<u16>,
    /// The data of an X.509 CERTREQ to send in the response (§1.2,
    /// §3.7: the SHA-1 hashes of our CAs' public keys); `None`: none.
    pub cert_request: Option<Vec<u8>>,
    /// Answer an initiator's IKEV2_FRAGMENTATION_SUPPORTED with ours
    /// (RFC 7383 §2.3).
    pub fragmentation: bool,
}

impl ResponderConfig {
    /// Accepts `proposals`; COOKIEs from 30 half-open exchanges (strongSwan's
    /// `cookie_threshold`), at most 1,024 held, 32 per source address,
    /// 30 s each (as [`crate::HalfOpenLimits`]).
    pub fn new(proposals: Vec<IkeSaProposal>) -> ResponderConfig {
        ResponderConfig {
            proposals,
            cookie_threshold: 30,
            max_half_open: 1024,
            max_half_open_per_source: 32,
            half_open_timeout: Duration::from_secs(30),
            signature_hash_algorithms: Vec::new(),
            cert_request: None,
            fragmentation: false,
        }
    }
}

/// Bytes of the secret version at the head of a cookie (§2.6).
const COOKIE_VERSION_LEN: usize = 4;

/// One cookie secret and its version number.
struct CookieKey {
    version: u32,
    key: Zeroizing<[u8; 32]>,
}

impl CookieKey {
    /// §2.6: Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi |
    /// <secret>); the hash is HMAC-SHA-256 keyed with the secret.
    fn cookie(&self, ni: &[u8], ip: IpAddr, spi_i: u64) -> Vec<u8> {
        let mut out = self.version.to_be_bytes().to_vec();
        if let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.key[..]) {
            m.update(ni);
            match ip {
                IpAddr::V4(a) => m.update(&a.octets()),
                IpAddr::V6(a) => m.update(&a.octets()),
            }
            m.update(&spi_i.to_be_bytes());
            out.extend_from_slice(&m.finalize().into_bytes());
        }
        out
    }
}

/// The secrets COOKIEs are made from: the current one and the one
/// before, so that a cookie handed out just before a rotation is still
/// good (§2.6: the version number says which secret made it).
pub struct CookieSecrets {
    current: CookieKey,
    previous: Option<CookieKey>,
}

impl core::fmt::Debug for CookieSecrets {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CookieSecrets").field("version", &self.current.version).finish_non_exhaustive()
    }
}

impl CookieSecrets {
    /// A first secret from `rng`.
    pub fn new(rng: &mut dyn Random) -> CookieSecrets {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill(&mut key[..]);
        CookieSecrets { current: CookieKey { version: 0, key }, previous: None }
    }

    /// A new secret from `rng`; the current one still checks cookies
    /// until the next rotation (§2.6 asks for a regular change).
    pub fn rotate(&mut self, rng: &mut dyn Random) {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill(&mut key[..]);
        let next = CookieKey { version: self.current.version.wrapping_add(1), key };
        self.previous = Some(core::mem::replace(&mut self.current, next));
    }

    /// The cookie for this initiator nonce, address and SPI.
    pub fn cookie(&self, ni: &[u8], ip: IpAddr, spi_i: u64) -> Vec<u8> {
        self.current.cookie(ni, ip, spi_i)
    }

    /// True if `cookie` was made by the current or previous secret for
    /// these values (compared in constant time).
    pub fn check(&self, cookie: &[u8], ni: &[u8], ip: IpAddr, spi_i: u64) -> bool {
        let Some(v) = cookie.get(..COOKIE_VERSION_LEN) else { return false };
        let version = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
        [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.version == version)
            .is_some_and(|k| bool::from(k.cookie(ni, ip, spi_i).as_slice().ct_eq(cookie)))
    }
}

/// The responder's finished IKE_SA_INIT: keys agreed, the response sent,
/// waiting for IKE_AUTH.
#[derive(Debug)]
pub struct ResponderInitDone {
    exchange: InitExchange,
    created: Instant,
}

impl ResponderInitDone {
    /// What the exchange left.
    pub fn into_exchange(self) -> InitExchange {
        self.exchange
    }

    /// What the exchange left, to read.
    pub fn exchange(&self) -> &InitExchange {
        &self.exchange
    }

    /// When the request was answered.
    pub fn created(&self) -> Instant {
        self.created
    }
}

impl core::ops::Deref for ResponderInitDone {
    type Target = InitExchange;

    fn deref(&self) -> &InitExchange {
        &self.exchange
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// No answer.
    Silent(InitReason),
    /// Refused with this unencrypted Notify (or a COOKIE demanded).
    Refused(Vec<u8>, InitReason),
    /// A retransmitted request: the response sent before, again (§2.1).
    Retransmitted(Vec<u8>),
    /// A new half-open IKE SA with responder SPI `spi_r`; send the
    /// response.
    Opened(Vec<u8>, u64),
}

impl Reply {
    /// The datagram to send back, if any.
    pub fn answer(&self) -> Option<&[u8]> {
        match self {
            Reply::Silent(_) => None,
            Reply::Refused(m, _) | Reply::Retransmitted(m) | Reply::Opened(m, _) => Some(m),
        }
    }

    /// The counter it goes to (none for a new SA).
    pub fn reason(&self) -> Option<InitReason> {
        match self {
            Reply::Silent(r) | Reply::Refused(_, r) => Some(*r),
            Reply::Retransmitted(_) => Some(InitReason::Retransmission),
            Reply::Opened(..) => None,
        }
    }
}

/// Answers IKE_SA_INIT requests and holds the half-open SAs they open.
pub struct InitResponder {
    config: ResponderConfig,
    cookies: CookieSecrets,
    half_open: HashMap<(SocketAddr, u64), ResponderInitDone>,
    /// Entries of `half_open` per source address.
    per_source: HashMap<IpAddr, usize>,
    counts: [u64; InitReason::ALL.len()],
}

impl core::fmt::Debug for InitResponder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InitResponder")
            .field("config", &self.config)
            .field("half_open", &self.half_open.len())
            .finish_non_exhaustive()
    }
}

/// One datagram and what the owner knows around it.
struct Received<'m> {
    msg: &'m [u8],
    local: SocketAddr,
    remote: SocketAddr,
    half_open: usize,
    now: Instant,
}

/// An unencrypted error answer: HDR(SPIi, 0), N(kind, data) (§2.6, §2.21.1).
fn notify_answer(spi_i: u64, message_id: u32, kind: NotifyType, data: &[u8]) -> Option<Vec<u8>> {
    let mut m = MessageBuilder::new(Header { message_id, ..init_header(spi_i, 0, true) });
    push_notify(&mut m, kind, data);
    m.finish().ok()
}

impl InitResponder {
    /// A responder accepting `config`, its first cookie secret from `rng`.
    pub fn new(config: ResponderConfig, rng: &mut dyn Random) -> Result<InitResponder, ProposalError> {
        IkeSaProposal::check_all(&config.proposals)?;
        Ok(InitResponder {
            config,
            cookies: CookieSecrets::new(rng),
            half_open: HashMap::new(),
            per_source: HashMap::new(),
            counts: [0; InitReason::ALL.len()],
        })
    }

    /// Half-open exchanges held here.
    pub fn half_open_len(&self) -> usize {
        self.half_open.len()
    }

    /// How often `reason` occurred.
    pub fn count(&self, reason: InitReason) -> u64 {
        self.counts[reason.index()]
    }

    /// Changes the cookie secret (§2.6); call it regularly.
    pub fn rotate_cookie_secret(&mut self, rng: &mut dyn Random) {
        self.cookies.rotate(rng);
    }

    /// Takes the half-open exchange of `remote` and `spi_i` (for
    /// IKE_AUTH).
    pub fn take(&mut self, remote: SocketAddr, spi_i: u64) -> Option<ResponderInitDone> {
        // IKE_AUTH may come from another port than IKE_SA_INIT did: 4500
        // once the initiator floated, or a NAT's new mapping (§2.23).
        let key = match self.half_open.contains_key(&(remote, spi_i)) {
            true => (remote, spi_i),
            false => *self.half_open.keys().find(|(a, s)| a.ip() == remote.ip() && *s == spi_i)?,
        };
        let done = self.half_open.remove(&key)?;
        self.forget_source(remote.ip());
        Some(done)
    }

    /// The half-open exchange [`InitResponder::take`] would take, left
    /// in place.
    pub fn peek(&self, remote: SocketAddr, spi_i: u64) -> Option<&ResponderInitDone> {
        self.half_open.get(&(remote, spi_i)).or_else(|| {
            self.half_open.iter().find(|((a, s), _)| a.ip() == remote.ip() && *s == spi_i).map(|e| e.1)
        })
    }

    /// Puts back a half-open exchange taken with [`InitResponder::take`]
    /// whose IKE_AUTH was ignored (not the peer's, or not opening): it
    /// waits on for the genuine one, under its own timeout.
    pub fn put_back(&mut self, done: ResponderInitDone) {
        let key = (done.exchange.remote, done.exchange.spi_i);
        if self.half_open.insert(key, done).is_none() {
            *self.per_source.entry(key.0.ip()).or_insert(0) += 1;
        }
    }

    fn forget_source(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_source.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&ip);
            }
        }
    }

    /// When the oldest half-open exchange times out (for the owner's
    /// next deadline).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.half_open.values().map(|d| d.created + self.config.half_open_timeout).min()
    }

    /// Forgets half-open exchanges older than the timeout; returns how
    /// many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.config.half_open_timeout;
        let old: Vec<(SocketAddr, u64)> = self
            .half_open
            .iter()
            .filter(|(_, d)| now.saturating_duration_since(d.created) >= timeout)
            .map(|(k, _)| *k)
            .collect();
        let gone = old.len();
        for (remote, spi_i) in old {
            self.take(remote, spi_i);
        }
        self.counts[InitReason::HalfOpenTimedOut.index()] += gone as u64;
        gone
    }

    /// Answers one datagram received at `local` from `remote`.
    /// `half_open` is the number of half-open exchanges the owner holds
    /// in all (this responder's [`InitResponder::half_open_len`] and any
    /// beyond it): from [`ResponderConfig::cookie_threshold`] on, COOKIEs
    /// are demanded.
    pub fn respond(
        &mut self,
        msg: &[u8],
        local: SocketAddr,
        remote: SocketAddr,
        half_open: usize,
        now: Instant,
        rng: &mut dyn Random,
    ) -> Reply {
        let reply = self.reply(Received { msg, local, remote, half_open, now }, rng);
        if let Some(r) = reply.reason() {
            self.counts[r.index()] += 1;
        }
        reply
    }

    fn reply(&mut self, received: Received<'_>, rng: &mut dyn Random) -> Reply {
        let Received { msg, local, remote, half_open, now } = received;
        let header = match Header::parse(msg) {
            Ok(h) => h,
            Err(wire::Error::UnsupportedVersion { .. }) => return version_answer(msg),
            Err(_) => return Reply::Silent(InitReason::Unreadable),
        };
        let request = header.exchange == ExchangeType::IkeSaInit
            && !header.is_response()
            && header.from_initiator()
            && header.spi_r == 0
            && header.message_id == 0;
        if !request {
            return Reply::Silent(InitReason::NotInitRequest);
        }
        let spi_i = header.spi_i;
        if let Some(done) = self.half_open.get(&(remote, spi_i)) {
            // §2.1: a retransmission is answered with the same bytes;
            // anything else for a half-open SPIi from there is not ours
            // to act on.
            return if done.request == msg {
                Reply::Retransmitted(done.response.clone())
            } else {
                Reply::Silent(InitReason::SpiInUse)
            };
        }
        let refuse = |kind, data: &[u8], why| match notify_answer(spi_i, 0, kind, data) {
            Some(m) => Reply::Refused(m, why),
            None => Reply::Silent(why),
        };
        let p = match InitPayloads::parse(msg, &header) {
            Ok(p) => p,
            Err(e @ wire::Error::UnsupportedCritical { kind, .. }) => {
                return refuse(e.notify(), &[kind], InitReason::UnsupportedCritical)
            }
            Err(e) => return refuse(e.notify(), &[], InitReason::Malformed),
        };
        let (Some(sa), Some(ke), Some(ni)) = (p.sa, p.ke, p.nonce) else {
            return refuse(NotifyType::InvalidSyntax, &[], InitReason::Malformed);
        };
        if p.cookie_misplaced {
            return refuse(NotifyType::InvalidSyntax, &[], InitReason::Malformed);
        }
        // §2.6: under load, no state and no Diffie-Hellman for a request
        // that has not shown it receives at its address.
        if half_open >= self.config.cookie_threshold {
            let good = p.cookie.is_some_and(|c| self.cookies.check(c, ni, remote.ip(), spi_i));
            if !good {
                let why =
                    if p.cookie.is_some() { InitReason::CookieMismatch } else { InitReason::CookieRequired };
                let cookie = self.cookies.cookie(ni, remote.ip(), spi_i);
                return refuse(NotifyType::Cookie, &cookie, why);
            }
        }
        let chosen = match select(&sa, &self.config.proposals, ke.group) {
            Selection::Chosen(c) => c,
            Selection::WrongKe { wanted } => {
                return refuse(
                    NotifyType::InvalidKePayload,
                    &wanted.number().to_be_bytes(),
                    InitReason::WrongKeGroup,
                )
            }
            Selection::NoProposal => {
                return refuse(NotifyType::NoProposalChosen, &[], InitReason::NoProposal)
            }
        };
        if ni.len() < chosen.prf.output_len() / 2 {
            return refuse(NotifyType::InvalidSyntax, &[], InitReason::ShortNonce);
        }
        if self.half_open.len() >= self.config.max_half_open {
            return Reply::Silent(InitReason::HalfOpenFull);
        }
        if self.per_source.get(&remote.ip()).is_some_and(|n| *n >= self.config.max_half_open_per_source) {
            return Reply::Silent(InitReason::HalfOpenSourceFull);
        }
        let dh = DhSecret::generate(chosen.dh, rng);
        let Ok(g_ir) = dh.agree(ke.data) else {
            return refuse(NotifyType::InvalidSyntax, &[], InitReason::BadKePublic);
        };
        let spi_r = ike_spi(rng);
        let mut nr = vec![0u8; NONCE_LEN];
        rng.fill(&mut nr);
        let Ok(keys) = IkeSaKeys::derive(chosen.prf, chosen.suite, ni, &nr, &g_ir, spi_i, spi_r) else {
            return Reply::Silent(InitReason::Malformed);
        };
        let mut m = MessageBuilder::new(init_header(spi_i, spi_r, true));
        let mut sa_body = Vec::new();
        chosen.emit_sa(&mut sa_body);
        push_sa_ke_nonce(&mut m, &sa_body, chosen.dh.number(), dh.public(), &nr);
        // §1.2: HDR, SAr1, KEr, Nr, [CERTREQ]; then the Notifies.
        if let Some(cas) = &self.config.cert_request {
            m.chain.push_payload(&Payload::CertReq(CertPayload {
                encoding: CertEncoding::X509Signature,
                data: cas,
            }));
        }
        push_nat_detection(&mut m, spi_i, spi_r, local, remote);
        // RFC 7427 §4: our hashes, to an initiator that sent its own.
        if p.signature_hash_algorithms.is_some() && !self.config.signature_hash_algorithms.is_empty() {
            let data: Vec<u8> =
                self.config.signature_hash_algorithms.iter().flat_map(|h| h.to_be_bytes()).collect();
            push_notify(&mut m, NotifyType::SignatureHashAlgorithms, &data);
        }
        // RFC 7383 §2.3: only to an initiator that announced it.
        if p.fragmentation_supported && self.config.fragmentation {
            push_notify(&mut m, NotifyType::FragmentationSupported, &[]);
        }
        let Ok(response) = m.finish() else {
            return Reply::Silent(InitReason::Malformed);
        };
        // The request's hashes were made with SPIr zero (§2.23).
        let nat = p.nat(spi_i, 0, local, remote);
        let exchange = InitExchange {
            chosen,
            spi_i,
            spi_r,
            ni: ni.to_vec(),
            nr,
            g_ir,
            keys,
            request: msg.to_vec(),
            response: response.clone(),
            nat,
            local,
            remote,
        };
        self.half_open.insert((remote, spi_i), ResponderInitDone { exchange, created: now });
        *self.per_source.entry(remote.ip()).or_insert(0) += 1;
        Reply::Opened(response, spi_r)
    }
}

/// INVALID_MAJOR_VERSION for a request of another major version whose
/// length field is the datagram's (§1.5, §2.5); silence for anything
/// else, a response above all.
fn version_answer(msg: &[u8]) -> Reply {
    let unreadable = Reply::Silent(InitReason::Unreadable);
    let Some(h) = msg.get(..HEADER_LEN) else { return unreadable };
    let be = |r: core::ops::Range<usize>| h[r].iter().fold(0u64, |a, b| a << 8 | u64::from(*b));
    let (spi_i, flags, message_id, length) = (be(0..8), h[19], be(20..24) as u32, be(24..28));
    if spi_i == 0 || flags & wire::FLAG_RESPONSE != 0 || length != msg.len() as u64 {
        return unreadable;
    }
    match notify_answer(spi_i, message_id, NotifyType::InvalidMajorVersion, &[]) {
        Some(m) => Reply::Refused(m, InitReason::UnsupportedVersion),
        None => unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(esprit_testrng::TestRng);
    impl Random for Rng {
        fn fill(&mut self, dest: &mut [u8]) {
            self.0.fill_bytes(dest);
        }
    }

    #[test]
    fn cookies_survive_one_rotation_not_two() {
        let mut rng = Rng(esprit_testrng::TestRng::default());
        let mut s = CookieSecrets::new(&mut rng);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let c = s.cookie(&[1; 32], ip, 9);
        assert_eq!(c.len(), 36);
        assert_eq!(&c[..4], &[0, 0, 0, 0]);
        assert!(s.check(&c, &[1; 32], ip, 9));
        assert!(!s.check(&c, &[2; 32], ip, 9));
        assert!(!s.check(&c, &[1; 32], "198.51.100.8".parse().unwrap(), 9));
        assert!(!s.check(&c, &[1; 32], ip, 10));
        assert!(!s.check(&c[..3], &[1; 32], ip, 9));
        s.rotate(&mut rng);
        assert!(s.check(&c, &[1; 32], ip, 9));
        assert_eq!(&s.cookie(&[1; 32], ip, 9)[..4], &[0, 0, 0, 1]);
        s.rotate(&mut rng);
        assert!(!s.check(&c, &[1; 32], ip, 9));
    }
}
