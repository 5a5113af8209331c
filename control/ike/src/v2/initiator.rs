//! The initiator's side of IKE_SA_INIT (RFC 7296 §1.2) as states that
//! consume themselves:
//!
//! ```text
//! InitiatorStart --start--> InitiatorSentInit --response--> InitDone
//!                              |    ^
//!                              +----+ COOKIE (§2.6): same request, the
//!                                     cookie first; INVALID_KE_PAYLOAD
//!                                     (§1.3): same SPIi, message ID 0, a
//!                                     KE of the group asked for, a new
//!                                     nonce (the §2.6 figure's KEi', Ni')
//! ```
//!
//! [`InitiatorSentInit::request`] is the datagram to send and resend
//! (§2.1: a retransmission is the same bytes). A response that cannot be
//! ours, or is malformed, leaves the state as it was
//! ([`InitiatorStep::Ignored`]): it is unauthenticated, and a forged
//! answer must not end an exchange the genuine responder may still
//! answer (§2.21.1). An error Notify ends it; COOKIE and
//! INVALID_KE_PAYLOAD are followed at most [`InitiatorConfig::max_retries`]
//! times in all.

use std::net::SocketAddr;

use crate::crypto::dh::{DhError, DhSecret};
use crate::{DhGroup, Random};

use super::config::{ChosenIke, IkeSaProposal, ProposalError};
use super::init::{
    ike_spi, init_header, push_nat_detection, push_notify, push_sa_ke_nonce, InitExchange, InitPayloads,
    InitReason, COOKIE_MAX, NONCE_LEN,
};
use super::keys::{IkeSaKeys, KeyError};
use super::wire::{self, Header, MessageBuilder, NotifyType, ProposalRepr};

/// What an initiator offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiatorConfig {
    /// The IKE SA proposals, most preferred first; the KE is sent for the
    /// first proposal's first group.
    pub proposals: Vec<IkeSaProposal>,
    /// COOKIE and INVALID_KE_PAYLOAD answers followed, in all, before the
    /// exchange fails.
    pub max_retries: u8,
    /// The hash algorithms of RFC 7427 §4 to announce (empty: the Notify
    /// is not sent; it matters only with certificates).
    pub signature_hash_algorithms: Vec<u16>,
    /// Announce IKE fragmentation (RFC 7383 §2.3).
    pub fragmentation: bool,
}

impl InitiatorConfig {
    /// Offers `proposals`, follows up to 4 COOKIE / INVALID_KE_PAYLOAD
    /// answers, announces no signature hashes and no fragmentation.
    pub fn new(proposals: Vec<IkeSaProposal>) -> InitiatorConfig {
        InitiatorConfig {
            proposals,
            max_retries: 4,
            signature_hash_algorithms: Vec::new(),
            fragmentation: false,
        }
    }
}

/// Why the exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The configuration cannot be offered.
    #[error("{0}")]
    Proposal(#[from] ProposalError),
    /// A message could not be built.
    #[error("{0}")]
    Wire(#[from] wire::Error),
    /// The responder refused with an error Notify.
    #[error("responder refused IKE_SA_INIT: Notify {0:?}")]
    Refused(NotifyType),
    /// More COOKIE / INVALID_KE_PAYLOAD answers than the bound.
    #[error("IKE_SA_INIT retried {0} times (COOKIE, INVALID_KE_PAYLOAD); giving up")]
    TooManyRetries(u8),
    /// The responder chose a proposal or group that was not offered.
    #[error("responder chose an IKE proposal that was not offered")]
    AnswerNotOffered,
    /// The responder's KE could not be used.
    #[error("{0}")]
    Dh(#[from] DhError),
    /// Keys could not be derived.
    #[error("{0}")]
    Key(#[from] KeyError),
}

impl InitError {
    /// The counter this failure goes to.
    pub fn reason(&self) -> InitReason {
        match self {
            InitError::Refused(_) => InitReason::Refused,
            InitError::TooManyRetries(_) => InitReason::TooManyRetries,
            InitError::Dh(_) => InitReason::BadKePublic,
            _ => InitReason::AnswerNotOffered,
        }
    }
}

/// Before the first request.
#[derive(Debug)]
pub struct InitiatorStart {
    config: InitiatorConfig,
    local: SocketAddr,
    remote: SocketAddr,
}

impl InitiatorStart {
    /// An exchange from `local` to `remote` (the addresses NAT detection
    /// hashes, §2.23) offering `config`.
    pub fn new(
        config: InitiatorConfig,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<InitiatorStart, ProposalError> {
        IkeSaProposal::check_all(&config.proposals)?;
        Ok(InitiatorStart { config, local, remote })
    }

    /// Builds the first request: a new SPIi, nonce and DH secret from
    /// `rng`, the KE for the first proposal's first group.
    pub fn start(self, rng: &mut dyn Random) -> Result<InitiatorSentInit, InitError> {
        let group =
            self.config.proposals.first().and_then(|p| p.dh.first()).copied().ok_or(ProposalError::Empty)?;
        let spi_i = ike_spi(rng);
        InitiatorSentInit::build(self.config, self.local, self.remote, spi_i, group, None, 0, rng)
    }
}

/// The request is out; waiting for the response.
pub struct InitiatorSentInit {
    config: InitiatorConfig,
    local: SocketAddr,
    remote: SocketAddr,
    spi_i: u64,
    dh: DhSecret,
    ni: Vec<u8>,
    cookie: Option<Vec<u8>>,
    request: Vec<u8>,
    retries: u8,
}

impl core::fmt::Debug for InitiatorSentInit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InitiatorSentInit")
            .field("spi_i", &format_args!("{:016x}", self.spi_i))
            .field("group", &self.dh.group())
            .field("cookie", &self.cookie.is_some())
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// What a response made of the exchange.
#[derive(Debug)]
pub enum InitiatorStep {
    /// A COOKIE or INVALID_KE_PAYLOAD answer: send the new
    /// [`InitiatorSentInit::request`].
    Resend(InitiatorSentInit, InitReason),
    /// Not a response to take: the exchange waits on.
    Ignored(InitiatorSentInit, InitReason),
    /// The IKE SA's keys are agreed.
    Done(InitDone),
    /// The exchange failed.
    Failed(InitError),
}

impl InitiatorSentInit {
    #[allow(clippy::too_many_arguments)]
    fn build(
        config: InitiatorConfig,
        local: SocketAddr,
        remote: SocketAddr,
        spi_i: u64,
        group: DhGroup,
        cookie: Option<Vec<u8>>,
        retries: u8,
        rng: &mut dyn Random,
    ) -> Result<InitiatorSentInit, InitError> {
        let dh = DhSecret::generate(group, rng);
        let mut ni = vec![0u8; NONCE_LEN];
        rng.fill(&mut ni);
        let mut s =
            InitiatorSentInit { config, local, remote, spi_i, dh, ni, cookie, request: Vec::new(), retries };
        s.request = s.emit_request()?;
        Ok(s)
    }

    /// The request: [N(COOKIE),] SA, KE, Ni, N(NAT_DETECTION_*),
    /// [N(SIGNATURE_HASH_ALGORITHMS)], [N(IKEV2_FRAGMENTATION_SUPPORTED)].
    fn emit_request(&self) -> Result<Vec<u8>, wire::Error> {
        let mut m = MessageBuilder::new(init_header(self.spi_i, 0, false));
        if let Some(c) = &self.cookie {
            // §2.6: the COOKIE first, everything else unchanged.
            push_notify(&mut m, NotifyType::Cookie, c);
        }
        let reprs: Vec<ProposalRepr> =
            self.config.proposals.iter().zip(1u8..).map(|(p, num)| p.to_repr(num)).collect();
        let mut sa = Vec::new();
        ProposalRepr::emit_sa(&reprs, &mut sa);
        push_sa_ke_nonce(&mut m, &sa, self.dh.group().number(), self.dh.public(), &self.ni);
        push_nat_detection(&mut m, self.spi_i, 0, self.local, self.remote);
        if !self.config.signature_hash_algorithms.is_empty() {
            let data: Vec<u8> =
                self.config.signature_hash_algorithms.iter().flat_map(|h| h.to_be_bytes()).collect();
            push_notify(&mut m, NotifyType::SignatureHashAlgorithms, &data);
        }
        if self.config.fragmentation {
            push_notify(&mut m, NotifyType::FragmentationSupported, &[]);
        }
        m.finish()
    }

    /// The request to send (and resend unchanged on timeout, §2.1).
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// This exchange's SPIi.
    pub fn spi_i(&self) -> u64 {
        self.spi_i
    }

    /// The group of the KE sent.
    pub fn group(&self) -> DhGroup {
        self.dh.group()
    }

    /// COOKIE and INVALID_KE_PAYLOAD answers followed so far.
    pub fn retries(&self) -> u8 {
        self.retries
    }

    /// Takes a datagram received from the responder.
    pub fn handle_response(self, msg: &[u8], rng: &mut dyn Random) -> InitiatorStep {
        let Ok(header) = Header::parse(msg) else {
            return InitiatorStep::Ignored(self, InitReason::ResponseIgnored);
        };
        // §2.2, §3.1: our SPIi, a response, the I flag clear (the
        // responder is not the original initiator), message ID 0.
        let ours = header.exchange == wire::ExchangeType::IkeSaInit
            && header.spi_i == self.spi_i
            && header.is_response()
            && !header.from_initiator()
            && header.message_id == 0;
        if !ours {
            return InitiatorStep::Ignored(self, InitReason::ResponseIgnored);
        }
        let Ok(p) = InitPayloads::parse(msg, &header) else {
            return InitiatorStep::Ignored(self, InitReason::ResponseIgnored);
        };
        if let Some(cookie) = p.cookie {
            if cookie.is_empty() || cookie.len() > COOKIE_MAX {
                return InitiatorStep::Ignored(self, InitReason::ResponseIgnored);
            }
            let cookie = cookie.to_vec();
            return self.retry(
                InitReason::CookieRequired,
                |mut s, _| {
                    s.cookie = Some(cookie);
                    s.request = s.emit_request()?;
                    Ok(s)
                },
                rng,
            );
        }
        if let Some(n) = p.error {
            if n.kind != NotifyType::InvalidKePayload {
                return InitiatorStep::Failed(InitError::Refused(n.kind));
            }
            // §1.3: only a group we offered, and not the one we sent.
            let wanted = <[u8; 2]>::try_from(n.data)
                .ok()
                .and_then(|g| DhGroup::from_number(u16::from_be_bytes(g).into()))
                .filter(|g| *g != self.dh.group() && self.config.proposals.iter().any(|p| p.dh.contains(g)));
            let Some(group) = wanted else {
                return InitiatorStep::Ignored(self, InitReason::InvalidKeIgnored);
            };
            return self.retry(
                InitReason::WrongKeGroup,
                |s, rng| {
                    let InitiatorSentInit { config, local, remote, spi_i, retries, .. } = s;
                    // The cookie was for the old nonce: the responder asks
                    // again if it still wants one (§2.6).
                    InitiatorSentInit::build(config, local, remote, spi_i, group, None, retries, rng)
                },
                rng,
            );
        }
        let (Some(sa), Some(ke), Some(nr)) = (p.sa, p.ke, p.nonce) else {
            return InitiatorStep::Ignored(self, InitReason::ResponseIgnored);
        };
        if header.spi_r == 0 {
            return InitiatorStep::Ignored(self, InitReason::ResponseIgnored);
        }
        let Some(chosen) = ChosenIke::from_answer(&sa, &self.config.proposals) else {
            return InitiatorStep::Failed(InitError::AnswerNotOffered);
        };
        // The group must be the one our KE is in (§1.2), and so the KE.
        if chosen.dh != self.dh.group() || ke.group != chosen.dh.number() {
            return InitiatorStep::Failed(InitError::AnswerNotOffered);
        }
        if nr.len() < chosen.prf.output_len() / 2 {
            return InitiatorStep::Ignored(self, InitReason::ResponseIgnored);
        }
        // An unusable public value in an answer nobody has authenticated
        // yet is a stranger's as likely as the responder's: it ends
        // nothing, and the real answer may still come (§2.21.1).
        let Ok(g_ir) = self.dh.agree(ke.data) else {
            return InitiatorStep::Ignored(self, InitReason::ResponseIgnored);
        };
        let keys = match IkeSaKeys::derive(
            chosen.prf,
            chosen.suite,
            &self.ni,
            nr,
            &g_ir,
            self.spi_i,
            header.spi_r,
        ) {
            Ok(k) => k,
            Err(e) => return InitiatorStep::Failed(e.into()),
        };
        let nat = p.nat(self.spi_i, header.spi_r, self.local, self.remote);
        InitiatorStep::Done(InitDone(InitExchange {
            chosen,
            spi_i: self.spi_i,
            spi_r: header.spi_r,
            ni: self.ni,
            nr: nr.to_vec(),
            g_ir,
            keys,
            request: self.request,
            response: msg.to_vec(),
            nat,
            local: self.local,
            remote: self.remote,
        }))
    }

    /// Counts a retry and rebuilds the request with `f`.
    fn retry(
        mut self,
        why: InitReason,
        f: impl FnOnce(InitiatorSentInit, &mut dyn Random) -> Result<InitiatorSentInit, InitError>,
        rng: &mut dyn Random,
    ) -> InitiatorStep {
        if self.retries >= self.config.max_retries {
            return InitiatorStep::Failed(InitError::TooManyRetries(self.retries));
        }
        self.retries += 1;
        match f(self, rng) {
            Ok(s) => InitiatorStep::Resend(s, why),
            Err(e) => InitiatorStep::Failed(e),
        }
    }
}

/// The initiator's finished IKE_SA_INIT: the IKE SA's keys are agreed,
/// not yet authenticated (IKE_AUTH comes next).
#[derive(Debug)]
pub struct InitDone(pub InitExchange);

impl core::ops::Deref for InitDone {
    type Target = InitExchange;

    fn deref(&self) -> &InitExchange {
        &self.0
    }
}
