//! CREATE_CHILD_SA for a further child on an established IKE SA
//! (RFC 7296 §1.3.1), with the message IDs of §2.2:
//!
//! ```text
//! Initiator                                   Responder
//! IkeSa::create_child -->
//! HDR(A,B, CREATE_CHILD_SA, n), SK{SA, Ni, [KEi], TSi, TSr}  -->
//!                                             IkeSa::handle_request
//!                       <--  HDR(A,B, n), SK{SA, Nr, [KEr], TSi, TSr}
//!                       <--  HDR(A,B, n), SK{N(NO_PROPOSAL_CHOSEN |
//!                                   TS_UNACCEPTABLE | INVALID_KE_PAYLOAD)}
//! IkeSa::handle_child_response --> NewChild
//! ```
//!
//! Each side numbers its own requests from 0 (the IKE SA's initiator has
//! used 0 and 1 for IKE_SA_INIT and IKE_AUTH), one request outstanding at
//! a time (window size 1, §2.3). A request under the last ID answered,
//! byte for byte the one answered, is a retransmission: it gets the same
//! response from memory and makes no second child (§2.1, §2.2). Any other
//! ID than the next one is dropped without an answer, as is a request
//! that does not open under the IKE SA's keys (§2.21.2). With PFS the
//! request carries a KE of the configured group; a KE of another group
//! gets INVALID_KE_PAYLOAD naming ours (§1.3), a proposal without PFS
//! NO_PROPOSAL_CHOSEN. Refusing a child never touches the IKE SA.

use crate::crypto::dh::DhSecret;
use crate::{DhGroup, Random};

use super::auth::Established;
use super::child::{
    check_answer, check_answer_selectors, esp_proposals_groups, make_child, offered_groups, proxy_selectors,
    push_error, push_selectors, request_selectors, ChildConfig, ChildError, ChildParts, ChildPayloads,
    ChildRequest, DhRule, NewChild,
};
use super::sk::SkError;
use super::wire::{
    ExchangeType, Header, KePayload, NotifyPayload, NotifyType, Payload, PayloadChain, PayloadType,
    ProposalRepr, ProtocolId, FLAG_INITIATOR, FLAG_RESPONSE, NONCE_MAX, NONCE_MIN,
};

/// Length of the nonces this side sends: 256 bits, at least half the
/// largest PRF key (§2.10).
const NONCE_LEN: usize = 32;

/// Why a CREATE_CHILD_SA message was dropped or could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// Not a message of this IKE SA in the expected direction.
    #[error("not a message of this IKE SA")]
    NotOurs,
    /// A request ID other than the next one, or a response to no
    /// outstanding request (§2.2).
    #[error("message ID {got} outside the window (expected {expected})")]
    OutOfWindow {
        /// The ID received.
        got: u32,
        /// The ID expected.
        expected: u32,
    },
    /// A request is already outstanding (window size 1, §2.3).
    #[error("a request is already outstanding")]
    Busy,
    /// An exchange other than CREATE_CHILD_SA; left to its own handler.
    #[error("exchange {0:?} is not CREATE_CHILD_SA")]
    OtherExchange(ExchangeType),
    /// The Encrypted payload did not open or seal.
    #[error("{0}")]
    Sk(#[from] SkError),
}

/// An established IKE SA that makes further children.
pub struct IkeSa {
    sa: Established,
    /// We are the IKE SA's original initiator (the I flag, §3.1).
    original_initiator: bool,
    /// The ID of our next request.
    next_request: u32,
    /// The ID of our outstanding request.
    outstanding: Option<u32>,
    /// The ID of the peer's next request.
    peer_next: u32,
    /// The last request answered and its response (§2.1).
    last_answered: Option<(u32, Vec<u8>, Vec<u8>)>,
}

impl core::fmt::Debug for IkeSa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IkeSa")
            .field("sa", &self.sa)
            .field("original_initiator", &self.original_initiator)
            .field("next_request", &self.next_request)
            .field("peer_next", &self.peer_next)
            .finish_non_exhaustive()
    }
}

/// How a CREATE_CHILD_SA request differs from a plain new child.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildOptions {
    /// Rekeys the child whose inbound SPI (ours) this is (§1.3.3).
    pub rekey: Option<u32>,
    /// The KE's group, when not the configured PFS group (§1.3).
    pub group: Option<DhGroup>,
}

/// A CREATE_CHILD_SA request sent, waiting for its response.
pub struct PendingChild {
    message_id: u32,
    req: ChildRequest,
    config: ChildConfig,
    ni: Vec<u8>,
    dh: Option<DhSecret>,
    request: Vec<u8>,
}

impl core::fmt::Debug for PendingChild {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingChild")
            .field("message_id", &self.message_id)
            .field("proxy_id", &self.req.proxy_id)
            .finish_non_exhaustive()
    }
}

impl PendingChild {
    /// The child asked for.
    pub fn child_request(&self) -> &ChildRequest {
        &self.req
    }

    /// The group of the KE sent, when PFS.
    pub fn group(&self) -> Option<DhGroup> {
        self.dh.as_ref().map(|d| d.group())
    }

    /// The request to send and resend (§2.1).
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// Its message ID.
    pub fn message_id(&self) -> u32 {
        self.message_id
    }
}

/// What a response made of our CREATE_CHILD_SA request.
#[derive(Debug)]
pub enum ChildResponse {
    /// Not the response: dropped, still waiting.
    Ignored(Box<PendingChild>, ExchangeError),
    /// The child is made.
    Created(Box<NewChild>),
    /// The peer refused, or its answer is not one we can take.
    Failed(ChildError),
}

/// The child a responder made, or the reason it sent instead.
pub type ChildMade = Result<Box<NewChild>, ChildError>;

/// What a request made of the peer's CREATE_CHILD_SA.
#[derive(Debug)]
pub enum RequestOutcome {
    /// Dropped without an answer.
    Dropped(ExchangeError),
    /// A retransmission of the last request: send this again.
    Retransmit(Vec<u8>),
    /// Answered: send `response`; `child` is the child made or why not.
    Answered {
        /// The protected response.
        response: Vec<u8>,
        /// The child, or the reason sent as a Notify.
        child: Result<Box<NewChild>, ChildError>,
    },
}

/// A request from the peer, after the message-ID window (§2.2) and the
/// Encrypted payload: nothing of the IKE SA has changed yet.
#[derive(Debug)]
pub enum IncomingRequest {
    /// A retransmission of the request answered last: send this again
    /// (§2.1), do not process it again.
    Retransmit(Vec<u8>),
    /// Dropped without an answer.
    Dropped(ExchangeError),
    /// The next request, opened: answer it with [`IkeSa::respond`].
    Fresh(Header, super::sk::Opened),
}

/// Reads the child payloads of an opened message.
pub(crate) fn read_child(opened: &super::sk::Opened) -> Result<ChildPayloads, ExchangeError> {
    let mut p = ChildPayloads::default();
    for raw in opened.payloads() {
        let raw = raw.map_err(SkError::from)?;
        let payload = Payload::parse(&raw).map_err(SkError::from)?;
        p.absorb(&payload, raw.body_at());
    }
    Ok(p)
}

fn nonce_ok(n: &[u8]) -> bool {
    (NONCE_MIN..=NONCE_MAX).contains(&n.len())
}

impl IkeSa {
    /// Takes an IKE SA from IKE_AUTH; `original_initiator` if this side
    /// sent IKE_SA_INIT.
    pub fn new(sa: Established, original_initiator: bool) -> IkeSa {
        // §2.2: the initiator has used IDs 0 and 1; the responder has sent
        // no request and answered the initiator's 1 (IKE_AUTH), which it
        // keeps for retransmissions.
        let last_answered =
            (!original_initiator).then(|| (1, sa.last_request.clone(), sa.last_response.clone()));
        IkeSa {
            original_initiator,
            next_request: if original_initiator { 2 } else { 0 },
            outstanding: None,
            peer_next: if original_initiator { 0 } else { 2 },
            last_answered,
            sa,
        }
    }

    /// The IKE SA that replaces another (§2.18): `original_initiator` if
    /// this side initiated the rekey; both sides' message IDs start at 0.
    pub(crate) fn rekeyed(sa: Established, original_initiator: bool) -> IkeSa {
        IkeSa {
            original_initiator,
            next_request: 0,
            outstanding: None,
            peer_next: 0,
            last_answered: None,
            sa,
        }
    }

    /// The IKE SA as IKE_AUTH left it.
    pub fn established(&self) -> &Established {
        &self.sa
    }

    /// The SK cipher, to cut our messages into fragments (RFC 7383).
    pub(crate) fn cipher_mut(&mut self) -> &mut super::sk::SkCipher {
        &mut self.sa.cipher
    }

    /// The peer's last request answered: its ID and our response.
    pub(crate) fn answered(&self) -> Option<(u32, &[u8])> {
        self.last_answered.as_ref().map(|(id, _, r)| (*id, r.as_slice()))
    }

    /// The ID the peer's next request must carry (§2.2).
    pub(crate) fn peer_next(&self) -> u32 {
        self.peer_next
    }

    fn header(&self, message_id: u32, response: bool) -> Header {
        let x = &self.sa.exchange;
        let mut flags = if self.original_initiator { FLAG_INITIATOR } else { 0 };
        if response {
            flags |= FLAG_RESPONSE;
        }
        Header {
            spi_i: x.spi_i,
            spi_r: x.spi_r,
            next_payload: 0,
            exchange: ExchangeType::CreateChildSa,
            flags,
            message_id,
            length: 0,
        }
    }

    /// True if `h` is this IKE SA's and from the peer (§3.1: the I flag
    /// is the peer's role, R whether it is a response).
    fn is_peers(&self, h: &Header, response: bool) -> bool {
        let x = &self.sa.exchange;
        (h.spi_i, h.spi_r) == (x.spi_i, x.spi_r)
            && h.from_initiator() != self.original_initiator
            && h.is_response() == response
    }

    /// Sends CREATE_CHILD_SA for `req` (§1.3.1): SK{SA, Ni, \[KEi\], TSi,
    /// TSr}, with a KE of the PFS group when configured; nonce, D-H
    /// secret and IVs from `rng`.
    pub fn create_child(
        &mut self,
        req: ChildRequest,
        config: &ChildConfig,
        rng: &mut dyn Random,
    ) -> Result<PendingChild, ExchangeError> {
        self.create_child_with(req, config, ChildOptions::default(), rng)
    }

    /// Sends CREATE_CHILD_SA as [`IkeSa::create_child`], rekeying a child
    /// (N(REKEY_SA) first, §1.3.3) and with the KE of another group than
    /// the configured one (after INVALID_KE_PAYLOAD, §1.3) as `opts` say.
    pub fn create_child_with(
        &mut self,
        req: ChildRequest,
        config: &ChildConfig,
        opts: ChildOptions,
        rng: &mut dyn Random,
    ) -> Result<PendingChild, ExchangeError> {
        if self.outstanding.is_some() {
            return Err(ExchangeError::Busy);
        }
        let mut ni = vec![0u8; NONCE_LEN];
        rng.fill(&mut ni);
        let group = opts.group.or(config.pfs);
        let dh = group.map(|g| DhSecret::generate(g, rng));
        let mut chain = PayloadChain::new();
        if let Some(spi) = opts.rekey {
            let spi = spi.to_be_bytes();
            let n =
                NotifyPayload { protocol: ProtocolId::Esp, kind: NotifyType::RekeySa, spi: &spi, data: &[] };
            chain.push_payload(&Payload::Notify(n));
        }
        let groups = group.map(|g| offered_groups(config, g)).unwrap_or_default();
        let proposals = esp_proposals_groups(config, &groups, req.spi_in);
        chain.push_with(PayloadType::Sa, false, |out| ProposalRepr::emit_sa(&proposals, out));
        chain.push(PayloadType::Nonce, &ni);
        if let Some(d) = &dh {
            chain.push_payload(&Payload::Ke(KePayload { group: d.group().number(), data: d.public() }));
        }
        let (tsi, tsr) = request_selectors(&req);
        push_selectors(&mut chain, &tsi, &tsr);
        let message_id = self.next_request;
        let request = self.sa.cipher.seal(&self.header(message_id, false), &chain, rng)?;
        self.next_request = self.next_request.wrapping_add(1);
        self.outstanding = Some(message_id);
        Ok(PendingChild { message_id, req, config: config.clone(), ni, dh, request })
    }

    /// Takes the response to `pending`.
    pub fn handle_child_response(&mut self, pending: PendingChild, msg: &[u8]) -> ChildResponse {
        let header = match Header::parse(msg) {
            Ok(h) if self.is_peers(&h, true) && h.exchange == ExchangeType::CreateChildSa => h,
            _ => return ChildResponse::Ignored(Box::new(pending), ExchangeError::NotOurs),
        };
        if header.message_id != pending.message_id {
            let e = ExchangeError::OutOfWindow { got: header.message_id, expected: pending.message_id };
            return ChildResponse::Ignored(Box::new(pending), e);
        }
        let opened = match self.sa.cipher.open(msg) {
            Ok(o) if o.header == header => o,
            Ok(_) => return ChildResponse::Ignored(Box::new(pending), ExchangeError::NotOurs),
            Err(e) => return ChildResponse::Ignored(Box::new(pending), e.into()),
        };
        let p = match read_child(&opened) {
            Ok(p) => p,
            Err(e) => return ChildResponse::Ignored(Box::new(pending), e),
        };
        self.outstanding = None;
        match self.initiator_child(&pending, &p) {
            Ok(c) => ChildResponse::Created(Box::new(c)),
            Err(e) => ChildResponse::Failed(e),
        }
    }

    fn initiator_child(&self, pending: &PendingChild, p: &ChildPayloads) -> Result<NewChild, ChildError> {
        match (p.error, &pending.dh) {
            // §1.3: the group the responder wants, to try again with.
            (Some(NotifyType::InvalidKePayload), Some(d)) => {
                let want = <[u8; 2]>::try_from(p.error_data.as_slice())
                    .map_err(|_| ChildError::Refused(NotifyType::InvalidKePayload))?;
                return Err(ChildError::InvalidKe {
                    got: d.group().number(),
                    want: u16::from_be_bytes(want),
                });
            }
            (Some(kind), _) => return Err(ChildError::Refused(kind)),
            (None, _) => {}
        }
        let rule = pending.dh.as_ref().map_or(DhRule::NoPfs, |d| DhRule::Group(d.group()));
        let chosen = check_answer(&p.sa()?, &pending.config, rule)?;
        let (tsi, tsr) = p.selectors()?;
        let proxy_id = check_answer_selectors(tsi, tsr, &pending.req.proxy_id)?;
        let nr = p.nonce.as_deref().filter(|n| nonce_ok(n)).ok_or(ChildError::Missing("Nr"))?;
        let g_ir = match &pending.dh {
            None => None,
            Some(d) => {
                let (group, data) = p.ke.as_ref().ok_or(ChildError::Missing("KEr"))?;
                if *group != d.group().number() {
                    return Err(ChildError::NotOffered(format!("KEr of group {group}")));
                }
                Some(d.agree(data).map_err(|e| ChildError::Dh(e.to_string()))?)
            }
        };
        let x = &self.sa.exchange;
        make_child(ChildParts {
            x,
            chosen,
            proxy_id,
            spi_in: pending.req.spi_in,
            initiator: true,
            g_ir: g_ir.as_deref().map(|g| g.as_slice()),
            ni: &pending.ni,
            nr,
            message_id: pending.message_id,
            lifetime: pending.config.lifetime,
        })
    }

    /// Takes a request from the peer: a retransmission is answered from
    /// memory, the next CREATE_CHILD_SA is answered with a child (inbound
    /// SPI `spi_in`, allocated by the caller) or a refusal; nonce, D-H
    /// secret and IVs from `rng`.
    pub fn handle_request(
        &mut self,
        msg: &[u8],
        config: &ChildConfig,
        spi_in: u32,
        rng: &mut dyn Random,
    ) -> RequestOutcome {
        let (header, opened) = match self.receive_request(msg) {
            IncomingRequest::Retransmit(r) => return RequestOutcome::Retransmit(r),
            IncomingRequest::Dropped(e) => return RequestOutcome::Dropped(e),
            IncomingRequest::Fresh(h, o) => (h, o),
        };
        if header.exchange != ExchangeType::CreateChildSa {
            return RequestOutcome::Dropped(ExchangeError::OtherExchange(header.exchange));
        }
        let p = match read_child(&opened) {
            Ok(p) => p,
            Err(e) => return RequestOutcome::Dropped(e),
        };
        match self.answer_child(&header, msg, &p, config, spi_in, rng) {
            Ok((response, child)) => RequestOutcome::Answered { response, child },
            Err(e) => RequestOutcome::Dropped(e),
        }
    }

    /// Checks a request from the peer against the window (§2.2) and opens
    /// it; changes nothing. The exchange type is the caller's to check.
    pub fn receive_request(&self, msg: &[u8]) -> IncomingRequest {
        let header = match Header::parse(msg) {
            Ok(h) if self.is_peers(&h, false) => h,
            _ => return IncomingRequest::Dropped(ExchangeError::NotOurs),
        };
        if let Some((id, request, response)) = &self.last_answered {
            if header.message_id == *id {
                if msg == request.as_slice() {
                    return IncomingRequest::Retransmit(response.clone());
                }
                return IncomingRequest::Dropped(ExchangeError::OutOfWindow {
                    got: header.message_id,
                    expected: self.peer_next,
                });
            }
        }
        if header.message_id != self.peer_next {
            let e = ExchangeError::OutOfWindow { got: header.message_id, expected: self.peer_next };
            return IncomingRequest::Dropped(e);
        }
        if !matches!(header.exchange, ExchangeType::CreateChildSa | ExchangeType::Informational) {
            return IncomingRequest::Dropped(ExchangeError::OtherExchange(header.exchange));
        }
        match self.sa.cipher.open(msg) {
            Ok(o) if o.header == header => IncomingRequest::Fresh(header, o),
            Ok(_) => IncomingRequest::Dropped(ExchangeError::NotOurs),
            Err(e) => IncomingRequest::Dropped(e.into()),
        }
    }

    /// Answers the request `msg` (opened by [`IkeSa::receive_request`])
    /// with `chain`: the response is sealed, the window moves on, and the
    /// pair is kept to answer a retransmission (§2.1).
    pub fn respond(
        &mut self,
        header: &Header,
        msg: &[u8],
        chain: &PayloadChain,
        rng: &mut dyn Random,
    ) -> Result<Vec<u8>, ExchangeError> {
        let mut h = self.header(header.message_id, true);
        h.exchange = header.exchange;
        let response = self.sa.cipher.seal(&h, chain, rng)?;
        self.peer_next = self.peer_next.wrapping_add(1);
        self.last_answered = Some((header.message_id, msg.to_vec(), response.clone()));
        Ok(response)
    }

    /// Sends a request of `exchange` carrying `chain` under the next
    /// message ID; one at a time (§2.3). Returns its ID and bytes.
    pub fn send_request(
        &mut self,
        exchange: ExchangeType,
        chain: &PayloadChain,
        rng: &mut dyn Random,
    ) -> Result<(u32, Vec<u8>), ExchangeError> {
        if self.outstanding.is_some() {
            return Err(ExchangeError::Busy);
        }
        let message_id = self.next_request;
        let mut h = self.header(message_id, false);
        h.exchange = exchange;
        let request = self.sa.cipher.seal(&h, chain, rng)?;
        self.next_request = self.next_request.wrapping_add(1);
        self.outstanding = Some(message_id);
        Ok((message_id, request))
    }

    /// Takes the response to our outstanding request `message_id`: the
    /// peer's, under that ID, of that exchange, opening under our keys.
    /// Anything else leaves the request outstanding.
    pub fn receive_response(
        &mut self,
        msg: &[u8],
        message_id: u32,
        exchange: ExchangeType,
    ) -> Result<super::sk::Opened, ExchangeError> {
        let header = match Header::parse(msg) {
            Ok(h) if self.is_peers(&h, true) && h.exchange == exchange => h,
            _ => return Err(ExchangeError::NotOurs),
        };
        if self.outstanding != Some(message_id) || header.message_id != message_id {
            return Err(ExchangeError::OutOfWindow { got: header.message_id, expected: message_id });
        }
        let opened = self.sa.cipher.open(msg)?;
        if opened.header != header {
            return Err(ExchangeError::NotOurs);
        }
        self.outstanding = None;
        Ok(opened)
    }

    /// True if `h` could be a message of this IKE SA from the peer (SPIs
    /// and the I flag), request or response.
    pub fn is_from_peer(&self, h: &Header) -> bool {
        self.is_peers(h, h.is_response())
    }

    /// The IKE SA's SPIs (SPIi, SPIr).
    pub fn spis(&self) -> (u64, u64) {
        (self.sa.exchange.spi_i, self.sa.exchange.spi_r)
    }

    /// We are the IKE SA's original initiator.
    pub fn original_initiator(&self) -> bool {
        self.original_initiator
    }

    /// Answers an opened CREATE_CHILD_SA request for a child: the
    /// response and the child made, or the refusal sent.
    pub(crate) fn answer_child(
        &mut self,
        header: &Header,
        msg: &[u8],
        p: &ChildPayloads,
        config: &ChildConfig,
        spi_in: u32,
        rng: &mut dyn Random,
    ) -> Result<(Vec<u8>, ChildMade), ExchangeError> {
        let mut chain = PayloadChain::new();
        let child = self.responder_child(p, config, spi_in, header.message_id, &mut chain, rng);
        if let Err(e) = &child {
            let data = match e {
                ChildError::InvalidKe { want, .. } => want.to_be_bytes().to_vec(),
                _ => Vec::new(),
            };
            chain = PayloadChain::new();
            push_error(&mut chain, e.notify(), &data);
        }
        let response = self.respond(header, msg, &chain, rng)?;
        Ok((response, child.map(Box::new)))
    }

    fn responder_child(
        &self,
        p: &ChildPayloads,
        config: &ChildConfig,
        spi_in: u32,
        message_id: u32,
        chain: &mut PayloadChain,
        rng: &mut dyn Random,
    ) -> Result<NewChild, ChildError> {
        let ni = p.nonce.as_deref().filter(|n| nonce_ok(n)).ok_or(ChildError::Missing("Ni"))?;
        let rule = config.pfs.map_or(DhRule::NoPfs, DhRule::Group);
        let (chosen, proxy_id) = p.choose(config, rule)?;
        let dh = match (config.pfs, &p.ke) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(ChildError::NoProposalChosen("PFS is configured but no KEi came".into()))
            }
            (Some(g), Some((got, _))) if *got != g.number() => {
                return Err(ChildError::InvalidKe { got: *got, want: g.number() })
            }
            (Some(g), Some((_, data))) => {
                let d = DhSecret::generate(g, rng);
                let shared = d.agree(data).map_err(|e| ChildError::Dh(e.to_string()))?;
                Some((d, shared))
            }
        };
        let mut nr = vec![0u8; NONCE_LEN];
        rng.fill(&mut nr);
        let x = &self.sa.exchange;
        let made = make_child(ChildParts {
            x,
            chosen,
            proxy_id,
            spi_in,
            initiator: false,
            g_ir: dh.as_ref().map(|(_, s)| s.as_slice()),
            ni,
            nr: &nr,
            message_id,
            lifetime: config.lifetime,
        })?;
        // The order of §1.3.1: SA, Nr, [KEr], TSi, TSr.
        let mut answer = PayloadChain::new();
        answer.push_with(PayloadType::Sa, false, |out| chosen.emit_answer(spi_in, out));
        answer.push(PayloadType::Nonce, &nr);
        if let Some((d, _)) = &dh {
            answer.push_payload(&Payload::Ke(KePayload { group: d.group().number(), data: d.public() }));
        }
        let (local, remote) = proxy_selectors(&proxy_id);
        push_selectors(&mut answer, &[remote], &[local]);
        *chain = answer;
        Ok(made)
    }
}
