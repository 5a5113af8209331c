//! IKE_AUTH with a pre-shared key or certificates (RFC 7296 §1.2, §2.15,
//! RFC 7427), the states after IKE_SA_INIT, with the first child SA when
//! one is asked for:
//!
//! ```text
//! Initiator                                Responder
//! InitDone --send_auth[_with_child]-->
//! HDR(A,B, IKE_AUTH, 1), SK{IDi, [CERT+, CERTREQ], [IDr], AUTH, [SAi2, TSi, TSr]}  -->
//!                                          ResponderInitDone --handle_auth[_at]-->
//!                   <--  HDR(A,B), SK{IDr, [CERT+], AUTH, [SAr2, TSi, TSr]}
//!                   <--  HDR(A,B), SK{IDr, AUTH, N(TS_UNACCEPTABLE | NO_PROPOSAL_CHOSEN)}
//!                   <--  HDR(A,B), SK{N(AUTHENTICATION_FAILED)}
//! InitiatorSentAuth --handle_response--> Established
//! ```
//!
//! A child that is refused leaves the IKE SA standing (§1.2): Established
//! then carries the reason instead of the child (see [`super::child`] for
//! the narrowing rules).
//!
//! §2.15: the initiator's `<SignedOctets>` are RealMessage1 | Nr |
//! prf(SK_pi, RestOfInitIDPayload), the responder's RealMessage2 | Ni |
//! prf(SK_pr, RestOfRespIDPayload). With a shared key AUTH =
//! prf(prf(Shared Secret, "Key Pad for IKEv2"), `<SignedOctets>`); with
//! certificates (an [`Authenticator::Cert`]) AUTH is RFC 7427's Digital
//! Signature over them, and the certificates ride in CERT payloads
//! ([`super::cert`] has the checks). A message whose Encrypted payload
//! does not open under the IKE SA's keys is dropped without an answer
//! (§2.21.2: it may be forged); a wrong AUTH, a certificate that fails a
//! check, or an identity other than the one configured, is
//! AUTHENTICATION_FAILED (§2.21.2), and the SA is not made. The AUTH
//! values are compared in constant time and never shown.
//!
//! Certificates are checked at the wall-clock time the caller passes in
//! (`handle_response_at`, `handle_auth_at`); none passed, a certificate
//! fails ([`CertAuthError::NoClock`]). A shared key needs no clock.

use std::time::SystemTime;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::Random;

use super::cert::{CertAuth, CertAuthError, MAX_CERTS, SIGNATURE_HASHES};
use super::child::{
    check_answer, check_answer_selectors, esp_proposals, make_child, push_answer, push_error, push_selectors,
    request_selectors, ChildConfig, ChildError, ChildParts, ChildPayloads, ChildRequest, DhRule, NewChild,
};
use super::init::InitExchange;
use super::initiator::InitDone;
use super::responder::ResponderInitDone;
use super::sk::{SkCipher, SkError};
use super::wire::{
    AuthMethod, AuthPayload, CertEncoding, CertPayload, ExchangeType, Header, IdPayload, IdType,
    NotifyPayload, NotifyType, Payload, PayloadChain, PayloadType, ProposalRepr, ProtocolId, FLAG_INITIATOR,
    FLAG_RESPONSE,
};

/// The pad of the shared-key AUTH (§2.15).
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";
/// IKE_AUTH is the second exchange: message ID 1 (§2.2).
const AUTH_MESSAGE_ID: u32 = 1;

/// An identity as carried in IDi / IDr (§3.5): any ID type a peer may
/// send, as it sent it. A configured [`esprit_suite::Identity`] converts
/// into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireIdentity {
    /// ID type.
    pub kind: IdType,
    /// Identification data.
    pub data: Vec<u8>,
}

impl From<&esprit_suite::Identity> for WireIdentity {
    fn from(id: &esprit_suite::Identity) -> WireIdentity {
        // The four kinds have the same numbers in IKEv1 and IKEv2.
        WireIdentity { kind: IdType::from_value(id.id_type()), data: id.data() }
    }
}

impl WireIdentity {
    /// An ID_DER_ASN1_DN (§3.5): `dn` is a DER Name, tag and length
    /// included, as in a certificate's subject.
    pub fn der_dn(dn: &[u8]) -> WireIdentity {
        WireIdentity { kind: IdType::DerAsn1Dn, data: dn.to_vec() }
    }

    /// The ID payload body, RestOfInitIDPayload / RestOfRespIDPayload of
    /// §2.15.
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        IdPayload { kind: self.kind, data: &self.data }.emit(&mut out);
        out
    }
}

/// What one side authenticates with and expects.
#[derive(Clone)]
pub struct PskAuth {
    /// The pre-shared key.
    pub psk: Zeroizing<Vec<u8>>,
    /// Our identity.
    pub local: WireIdentity,
    /// The identity the peer must show (`None`: any).
    pub remote: Option<WireIdentity>,
}

impl core::fmt::Debug for PskAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PskAuth")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// How one side authenticates: a shared key or certificates.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// Shared Key Message Integrity Code (method 2, §2.15).
    Psk(PskAuth),
    /// Certificates and Digital Signature (method 14, RFC 7427).
    Cert(CertAuth),
}

impl From<PskAuth> for Authenticator {
    fn from(a: PskAuth) -> Authenticator {
        Authenticator::Psk(a)
    }
}

impl From<CertAuth> for Authenticator {
    fn from(a: CertAuth) -> Authenticator {
        Authenticator::Cert(a)
    }
}

impl Authenticator {
    /// Our identity.
    pub fn local(&self) -> &WireIdentity {
        match self {
            Authenticator::Psk(a) => &a.local,
            Authenticator::Cert(a) => a.local(),
        }
    }

    /// The identity the peer must show, if one is configured.
    pub fn remote(&self) -> Option<&WireIdentity> {
        match self {
            Authenticator::Psk(a) => a.remote.as_ref(),
            Authenticator::Cert(a) => a.remote(),
        }
    }

    /// The hashes to announce in SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4):
    /// none with a shared key.
    pub fn signature_hashes(&self) -> &'static [u16] {
        match self {
            Authenticator::Psk(_) => &[],
            Authenticator::Cert(_) => &SIGNATURE_HASHES,
        }
    }

    /// The data of our X.509 CERTREQ (§3.7), with certificates.
    pub fn cert_request(&self) -> Option<&[u8]> {
        match self {
            Authenticator::Psk(_) => None,
            Authenticator::Cert(a) => Some(a.cert_request()),
        }
    }
}

/// Why IKE_AUTH failed or a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The peer's AUTH does not verify, or its identity is not the one
    /// configured, or it refused ours (AUTHENTICATION_FAILED).
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The peer's certificates or signature failed a check
    /// (AUTHENTICATION_FAILED): which one.
    #[error("authentication failed: {0}")]
    Certificate(#[from] CertAuthError),
    /// Our AUTH could not be signed.
    #[error("our AUTH could not be signed")]
    Sign,
    /// The peer refused with another error Notify.
    #[error("peer refused IKE_AUTH: Notify {0:?}")]
    Refused(NotifyType),
    /// A payload the exchange needs is missing or malformed.
    #[error("IKE_AUTH message lacks {0}")]
    Missing(&'static str),
    /// The Encrypted payload did not open (dropped, §2.21.2).
    #[error("{0}")]
    Sk(#[from] SkError),
    /// Not the IKE_AUTH message expected (SPIs, flags, message ID).
    #[error("not the IKE_AUTH message expected")]
    NotExpected,
}

/// The octets AUTH covers (§2.15): the side's IKE_SA_INIT message | the
/// other side's nonce | prf(SK_p, ID body).
fn signed_octets(x: &InitExchange, of_initiator: bool, id: &WireIdentity) -> Vec<u8> {
    let (message, nonce, sk_p) =
        if of_initiator { (&x.request, &x.nr, &x.keys.sk_pi) } else { (&x.response, &x.ni, &x.keys.sk_pr) };
    let maced_id = x.chosen.prf.prf(sk_p, &[&id.body()]);
    [message.as_slice(), nonce, &maced_id].concat()
}

/// AUTH for a shared key (§2.15): prf(prf(psk, "Key Pad for IKEv2"),
/// `<SignedOctets>`).
fn psk_auth(x: &InitExchange, psk: &[u8], of_initiator: bool, id: &WireIdentity) -> Zeroizing<Vec<u8>> {
    let prf = x.chosen.prf;
    let key = prf.prf(psk, &[KEY_PAD]);
    prf.prf(&key, &[&signed_octets(x, of_initiator, id)])
}

/// Our AUTH (§2.15, RFC 7427 §3): method and data.
fn our_auth(
    x: &InitExchange,
    auth: &Authenticator,
    of_initiator: bool,
) -> Result<(AuthMethod, Zeroizing<Vec<u8>>), AuthError> {
    match auth {
        Authenticator::Psk(a) => Ok((AuthMethod::SharedKey, psk_auth(x, &a.psk, of_initiator, &a.local))),
        Authenticator::Cert(a) => {
            let signature = a.sign(&signed_octets(x, of_initiator, a.local())).ok_or(AuthError::Sign)?;
            Ok((AuthMethod::DigitalSignature, Zeroizing::new(signature)))
        }
    }
}

/// Our CERT payloads, if any (§3.6: X.509 Certificate - Signature, the
/// end entity first).
fn push_certs(chain: &mut PayloadChain, auth: &Authenticator) {
    if let Authenticator::Cert(a) = auth {
        for der in a.chain() {
            chain.push_payload(&Payload::Cert(CertPayload {
                encoding: CertEncoding::X509Signature,
                data: der,
            }));
        }
    }
}

/// Our AUTH payload.
fn push_auth(
    chain: &mut PayloadChain,
    x: &InitExchange,
    auth: &Authenticator,
    of_initiator: bool,
) -> Result<(), AuthError> {
    let (method, data) = our_auth(x, auth, of_initiator)?;
    chain.push_payload(&Payload::Auth(AuthPayload { method, data: &data }));
    Ok(())
}

/// The inner payloads of an IKE_AUTH message.
#[derive(Default)]
struct AuthPayloads {
    id_i: Option<WireIdentity>,
    id_r: Option<WireIdentity>,
    auth: Option<(AuthMethod, Vec<u8>)>,
    /// The X.509 CERT payloads, in order; one beyond [`MAX_CERTS`] is
    /// kept to say there were too many.
    certs: Vec<Vec<u8>>,
    error: Option<NotifyType>,
    initial_contact: bool,
    child: ChildPayloads,
}

fn read_inner(cipher: &SkCipher, msg: &[u8], header: &Header) -> Result<AuthPayloads, AuthError> {
    let opened = cipher.open(msg)?;
    if opened.header != *header {
        return Err(AuthError::NotExpected);
    }
    let mut p = AuthPayloads::default();
    for raw in opened.payloads() {
        let raw = raw.map_err(SkError::from)?;
        let payload = Payload::parse(&raw).map_err(SkError::from)?;
        if p.child.absorb(&payload, raw.body_at()) {
            continue;
        }
        match payload {
            Payload::IdI(id) => p.id_i = Some(WireIdentity { kind: id.kind, data: id.data.to_vec() }),
            Payload::IdR(id) => p.id_r = Some(WireIdentity { kind: id.kind, data: id.data.to_vec() }),
            Payload::Auth(a) => p.auth = Some((a.method, a.data.to_vec())),
            Payload::Cert(c) if c.encoding == CertEncoding::X509Signature && p.certs.len() <= MAX_CERTS => {
                p.certs.push(c.data.to_vec())
            }
            Payload::Notify(n) if n.kind.is_error() && p.error.is_none() => p.error = Some(n.kind),
            Payload::Notify(n) if n.kind == NotifyType::InitialContact => p.initial_contact = true,
            _ => {}
        }
    }
    Ok(p)
}

/// Checks the peer's identity, certificates and AUTH (§2.15), the
/// certificates at wall-clock time `now`.
fn verify(
    x: &InitExchange,
    auth: &Authenticator,
    of_initiator: bool,
    p: &AuthPayloads,
    now: Option<SystemTime>,
) -> Result<WireIdentity, AuthError> {
    let id = if of_initiator { &p.id_i } else { &p.id_r };
    let id = id.as_ref().ok_or(AuthError::Missing(if of_initiator { "IDi" } else { "IDr" }))?;
    let (method, data) = p.auth.as_ref().ok_or(AuthError::Missing("AUTH"))?;
    let configured = auth.remote().is_none_or(|want| want == id);
    match auth {
        Authenticator::Psk(a) => {
            if !configured || *method != AuthMethod::SharedKey {
                return Err(AuthError::AuthenticationFailed);
            }
            let want = psk_auth(x, &a.psk, of_initiator, id);
            if !bool::from(want.as_slice().ct_eq(data)) {
                return Err(AuthError::AuthenticationFailed);
            }
        }
        Authenticator::Cert(a) => {
            if !configured {
                return Err(CertAuthError::UnexpectedIdentity.into());
            }
            let now = now.ok_or(CertAuthError::NoClock)?;
            a.verify(&p.certs, id, (*method, data), &signed_octets(x, of_initiator, id), now)?;
        }
    }
    Ok(id.clone())
}

fn auth_header(x: &InitExchange, response: bool) -> Header {
    Header {
        spi_i: x.spi_i,
        spi_r: x.spi_r,
        next_payload: 0,
        exchange: ExchangeType::IkeAuth,
        flags: if response { FLAG_RESPONSE } else { FLAG_INITIATOR },
        message_id: AUTH_MESSAGE_ID,
        length: 0,
    }
}

/// True if `h` is the IKE_AUTH message of this SA from the other side.
fn expected(x: &InitExchange, h: &Header, response: bool) -> bool {
    h.exchange == ExchangeType::IkeAuth
        && (h.spi_i, h.spi_r, h.message_id) == (x.spi_i, x.spi_r, AUTH_MESSAGE_ID)
        && h.is_response() == response
        && h.from_initiator() != response
}

/// An authenticated IKE SA.
pub struct Established {
    /// What IKE_SA_INIT left (keys, nonces, SPIs, NAT detection).
    pub exchange: InitExchange,
    /// Seals this side's messages and opens the peer's.
    pub cipher: SkCipher,
    /// The peer's authenticated identity.
    pub peer: WireIdentity,
    /// The IKE_AUTH request.
    pub last_request: Vec<u8>,
    /// The IKE_AUTH response.
    pub last_response: Vec<u8>,
    /// The child SA made in IKE_AUTH (§1.2), if one was asked for and
    /// agreed.
    pub child: Option<NewChild>,
    /// Why the child asked for in IKE_AUTH was not made; the IKE SA
    /// stands all the same (§1.2).
    pub child_error: Option<ChildError>,
    /// The peer's IKE_AUTH carried INITIAL_CONTACT (§2.4): it holds no
    /// other IKE SA with us, so any older one of ours with it is stale.
    pub peer_initial_contact: bool,
}

impl Established {
    /// The response to send again if `msg` is a retransmission of the
    /// last request (§2.1: byte for byte the same; a responder answers it
    /// from memory, without processing it again).
    pub fn retransmission(&self, msg: &[u8]) -> Option<&[u8]> {
        (msg == self.last_request.as_slice()).then_some(self.last_response.as_slice())
    }
}

impl core::fmt::Debug for Established {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Established")
            .field("exchange", &self.exchange)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl InitDone {
    /// Sends IKE_AUTH: SK{IDi, \[CERT, CERTREQ\], \[IDr\], AUTH} (§1.2),
    /// IVs from `rng`; `auth` is a [`PskAuth`], a [`CertAuth`] or an
    /// [`Authenticator`].
    pub fn send_auth(
        self,
        auth: impl Into<Authenticator>,
        rng: &mut dyn Random,
    ) -> Result<InitiatorSentAuth, AuthError> {
        self.send_auth_with_child(auth, None, rng)
    }

    /// Sends IKE_AUTH with the first child: SK{IDi, \[IDr\], AUTH, SAi2,
    /// TSi, TSr} (§1.2). SAi2 has no D-H transform: this child's keys come
    /// from the IKE SA's (§2.17).
    pub fn send_auth_with_child(
        self,
        auth: impl Into<Authenticator>,
        child: Option<(ChildRequest, ChildConfig)>,
        rng: &mut dyn Random,
    ) -> Result<InitiatorSentAuth, AuthError> {
        self.send_auth_first(auth, child, false, rng)
    }

    /// Sends IKE_AUTH as [`InitDone::send_auth_with_child`], with
    /// N(INITIAL_CONTACT) after IDi when `initial_contact` (§2.4: this
    /// side holds no other IKE SA with the peer, so the peer may drop any
    /// it still has with us).
    pub fn send_auth_first(
        self,
        auth: impl Into<Authenticator>,
        child: Option<(ChildRequest, ChildConfig)>,
        initial_contact: bool,
        rng: &mut dyn Random,
    ) -> Result<InitiatorSentAuth, AuthError> {
        let x = self.0;
        let auth = auth.into();
        let mut cipher = SkCipher::new(&x.keys, true)?;
        let mut chain = PayloadChain::new();
        let local = auth.local();
        chain.push_payload(&Payload::IdI(IdPayload { kind: local.kind, data: &local.data }));
        if initial_contact {
            push_error(&mut chain, NotifyType::InitialContact, &[]);
        }
        // §1.2: SK{IDi, [CERT,] [CERTREQ,] [IDr,] AUTH, ...}; the CERTREQ
        // names the CAs we trust, for the responder's choice of chain.
        push_certs(&mut chain, &auth);
        if let Some(cas) = auth.cert_request() {
            chain.push_payload(&Payload::CertReq(CertPayload {
                encoding: CertEncoding::X509Signature,
                data: cas,
            }));
        }
        if let Some(r) = auth.remote() {
            chain.push_payload(&Payload::IdR(IdPayload { kind: r.kind, data: &r.data }));
        }
        push_auth(&mut chain, &x, &auth, true)?;
        if let Some((req, config)) = &child {
            let proposals = esp_proposals(config, None, req.spi_in);
            chain.push_with(PayloadType::Sa, false, |out| ProposalRepr::emit_sa(&proposals, out));
            let (tsi, tsr) = request_selectors(req);
            push_selectors(&mut chain, &tsi, &tsr);
        }
        let request = cipher.seal(&auth_header(&x, false), &chain, rng)?;
        Ok(InitiatorSentAuth { x, auth, cipher, request, child })
    }
}

/// IKE_AUTH sent; waiting for the response.
pub struct InitiatorSentAuth {
    x: InitExchange,
    auth: Authenticator,
    cipher: SkCipher,
    request: Vec<u8>,
    child: Option<(ChildRequest, ChildConfig)>,
}

impl core::fmt::Debug for InitiatorSentAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InitiatorSentAuth").field("exchange", &self.x).finish_non_exhaustive()
    }
}

/// What a response made of IKE_AUTH, on the initiator's side.
#[derive(Debug)]
pub enum InitiatorAuthStep {
    /// Not a response that opens under our keys: dropped, waiting on.
    Ignored(Box<InitiatorSentAuth>, AuthError),
    /// The IKE SA is up.
    Established(Box<Established>),
    /// Refused, or the responder failed to authenticate.
    Failed(AuthError),
}

impl InitiatorSentAuth {
    /// The request to send and resend (§2.1).
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// The IKE SA's SPIs (SPIi, SPIr).
    pub(crate) fn spis(&self) -> (u64, u64) {
        (self.x.spi_i, self.x.spi_r)
    }

    /// The SK cipher: the response's fragments open under it, and our
    /// request's are sealed with it (RFC 7383).
    pub(crate) fn cipher_mut(&mut self) -> &mut SkCipher {
        &mut self.cipher
    }

    /// The SK cipher, to open the response's fragments.
    pub(crate) fn cipher(&self) -> &SkCipher {
        &self.cipher
    }

    /// Takes the responder's answer, without a clock: enough for a shared
    /// key; a responder's certificate fails ([`CertAuthError::NoClock`]).
    pub fn handle_response(self, msg: &[u8]) -> InitiatorAuthStep {
        self.handle_response_at(msg, None)
    }

    /// Takes the responder's answer; its certificates are checked at
    /// wall-clock time `now`.
    pub fn handle_response_at(self, msg: &[u8], now: Option<SystemTime>) -> InitiatorAuthStep {
        let header = match Header::parse(msg) {
            Ok(h) if expected(&self.x, &h, true) => h,
            _ => return InitiatorAuthStep::Ignored(Box::new(self), AuthError::NotExpected),
        };
        let p = match read_inner(&self.cipher, msg, &header) {
            Ok(p) => p,
            Err(e) => return InitiatorAuthStep::Ignored(Box::new(self), e),
        };
        if let Some(kind) = p.error {
            return InitiatorAuthStep::Failed(match kind {
                NotifyType::AuthenticationFailed => AuthError::AuthenticationFailed,
                other => AuthError::Refused(other),
            });
        }
        match verify(&self.x, &self.auth, false, &p, now) {
            Ok(peer) => {
                let (child, child_error) = match &self.child {
                    None => (None, None),
                    Some((req, config)) => match initiator_child(&self.x, &p.child, req, config) {
                        Ok(c) => (Some(c), None),
                        Err(e) => (None, Some(e)),
                    },
                };
                InitiatorAuthStep::Established(Box::new(Established {
                    exchange: self.x,
                    cipher: self.cipher,
                    peer,
                    last_request: self.request,
                    last_response: msg.to_vec(),
                    child,
                    child_error,
                    peer_initial_contact: p.initial_contact,
                }))
            }
            Err(e) => InitiatorAuthStep::Failed(e),
        }
    }
}

/// What a request made of IKE_AUTH, on the responder's side.
#[derive(Debug)]
pub enum ResponderAuthStep {
    /// Dropped without an answer (not ours, or not opening under the
    /// SA's keys, §2.21.2); the half-open SA waits on.
    Ignored(Box<ResponderInitDone>, AuthError),
    /// Authenticated: send the response.
    Established(Box<Established>),
    /// Refused: send `response` (SK{N(...)}) if there is one; the SA is
    /// not made.
    Failed {
        /// The protected error answer (none if it could not be sealed).
        response: Option<Vec<u8>>,
        /// Why.
        error: AuthError,
    },
}

/// The initiator's reading of the child in the IKE_AUTH response.
fn initiator_child(
    x: &InitExchange,
    p: &ChildPayloads,
    req: &ChildRequest,
    config: &ChildConfig,
) -> Result<NewChild, ChildError> {
    if let Some(kind) = p.error {
        return Err(ChildError::Refused(kind));
    }
    let chosen = check_answer(&p.sa()?, config, DhRule::Ignore)?;
    let (tsi, tsr) = p.selectors()?;
    let proxy_id = check_answer_selectors(tsi, tsr, &req.proxy_id)?;
    make_child(ChildParts {
        x,
        chosen,
        proxy_id,
        spi_in: req.spi_in,
        initiator: true,
        g_ir: None,
        ni: &x.ni,
        nr: &x.nr,
        message_id: AUTH_MESSAGE_ID,
        lifetime: config.lifetime,
    })
}

/// The responder's child in IKE_AUTH: the answer's payloads go into
/// `chain`; a refusal is one Notify (§1.2: the IKE SA is made anyway).
fn responder_child(
    x: &InitExchange,
    p: &ChildPayloads,
    child: Option<(&ChildConfig, u32)>,
    chain: &mut PayloadChain,
) -> Result<Option<NewChild>, ChildError> {
    if !p.present() {
        return Ok(None);
    }
    let Some((config, spi_in)) = child else {
        let e = ChildError::NoProposalChosen("no child SA is configured for this peer".into());
        push_error(chain, e.notify(), &[]);
        return Err(e);
    };
    let made = p.choose(config, DhRule::Ignore).and_then(|(chosen, proxy_id)| {
        let made = make_child(ChildParts {
            x,
            chosen,
            proxy_id,
            spi_in,
            initiator: false,
            g_ir: None,
            ni: &x.ni,
            nr: &x.nr,
            message_id: AUTH_MESSAGE_ID,
            lifetime: config.lifetime,
        })?;
        push_answer(chain, &chosen, spi_in, &proxy_id);
        Ok(made)
    });
    made.map(Some).inspect_err(|e| push_error(chain, e.notify(), &[]))
}

impl ResponderInitDone {
    /// Takes the initiator's IKE_AUTH request; IVs from `rng`. A child
    /// asked for is refused (NO_PROPOSAL_CHOSEN).
    pub fn handle_auth(self, msg: &[u8], auth: &PskAuth, rng: &mut dyn Random) -> ResponderAuthStep {
        self.handle_auth_with_child(msg, auth, None, rng)
    }

    /// Takes the initiator's IKE_AUTH request and the child in it (§1.2),
    /// with our `child` configuration and the inbound SPI allocated for
    /// it; IVs from `rng`.
    pub fn handle_auth_with_child(
        self,
        msg: &[u8],
        auth: &PskAuth,
        child: Option<(&ChildConfig, u32)>,
        rng: &mut dyn Random,
    ) -> ResponderAuthStep {
        self.handle_auth_at(msg, &Authenticator::Psk(auth.clone()), child, None, rng)
    }

    /// Takes the initiator's IKE_AUTH request and the child in it, as
    /// [`ResponderInitDone::handle_auth_with_child`], authenticating with
    /// `auth`; the initiator's certificates are checked at wall-clock
    /// time `now` (none: they fail, [`CertAuthError::NoClock`]).
    pub fn handle_auth_at(
        self,
        msg: &[u8],
        auth: &Authenticator,
        child: Option<(&ChildConfig, u32)>,
        now: Option<SystemTime>,
        rng: &mut dyn Random,
    ) -> ResponderAuthStep {
        let header = match Header::parse(msg) {
            Ok(h) if expected(&self, &h, false) => h,
            _ => return ResponderAuthStep::Ignored(Box::new(self), AuthError::NotExpected),
        };
        let mut cipher = match SkCipher::new(&self.keys, false) {
            Ok(c) => c,
            Err(e) => return ResponderAuthStep::Ignored(Box::new(self), e.into()),
        };
        let p = match read_inner(&cipher, msg, &header) {
            Ok(p) => p,
            Err(e) => return ResponderAuthStep::Ignored(Box::new(self), e),
        };
        let x = self.into_exchange();
        let verified = verify(&x, auth, true, &p, now);
        // Our AUTH, signed only for a peer that authenticated.
        let ours = verified.and_then(|peer| our_auth(&x, auth, false).map(|a| (peer, a)));
        let mut chain = PayloadChain::new();
        let mut made = (None, None);
        let outcome = match ours {
            Ok((peer, (method, data))) => {
                // §1.2: SK{IDr, [CERT,] AUTH, ...}.
                let local = auth.local();
                chain.push_payload(&Payload::IdR(IdPayload { kind: local.kind, data: &local.data }));
                push_certs(&mut chain, auth);
                chain.push_payload(&Payload::Auth(AuthPayload { method, data: &data }));
                made = match responder_child(&x, &p.child, child, &mut chain) {
                    Ok(c) => (c, None),
                    Err(e) => (None, Some(e)),
                };
                Ok(peer)
            }
            Err(e) => {
                let kind = match e {
                    AuthError::Missing(_) => NotifyType::InvalidSyntax,
                    _ => NotifyType::AuthenticationFailed,
                };
                let n = NotifyPayload { protocol: ProtocolId::None, kind, spi: &[], data: &[] };
                chain.push_payload(&Payload::Notify(n));
                Err(e)
            }
        };
        let response = match cipher.seal(&auth_header(&x, true), &chain, rng) {
            Ok(r) => r,
            Err(e) => return ResponderAuthStep::Failed { response: None, error: e.into() },
        };
        match outcome {
            Ok(peer) => ResponderAuthStep::Established(Box::new(Established {
                exchange: x,
                cipher,
                peer,
                last_request: msg.to_vec(),
                last_response: response,
                child: made.0,
                child_error: made.1,
                peer_initial_contact: p.initial_contact,
            })),
            Err(error) => ResponderAuthStep::Failed { response: Some(response), error },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use esprit_suite::Identity;

    /// A configured identity goes on the wire with IKEv2's type numbers.
    #[test]
    fn a_configured_identity_is_carried_with_its_ikev2_type() {
        let cases = [
            (Identity::from_text("198.51.100.1"), IdType::Ipv4Addr, vec![198, 51, 100, 1]),
            (
                Identity::from_text("2001:db8::1"),
                IdType::Ipv6Addr,
                "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets().to_vec(),
            ),
            (Identity::from_text("gw.example.net"), IdType::Fqdn, b"gw.example.net".to_vec()),
            (Identity::from_text("alice@example.net"), IdType::Rfc822Addr, b"alice@example.net".to_vec()),
            (Identity::KeyId(vec![1, 2]), IdType::KeyId, vec![1, 2]),
        ];
        for (id, kind, data) in cases {
            assert_eq!(WireIdentity::from(&id), WireIdentity { kind, data }, "{id}");
        }
    }
}
