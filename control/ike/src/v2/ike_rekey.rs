//! Rekeying the IKE SA (RFC 7296 §1.3.2, §2.18) by CREATE_CHILD_SA on
//! the SA being replaced:
//!
//! ```text
//! Initiator                                        Responder
//! HDR(old), SK{SA(IKE, SPIi'), Ni, KEi}  -->
//!                          <--  HDR(old), SK{SA(IKE, SPIr'), Nr, KEr}
//!                          <--  HDR(old), SK{N(NO_PROPOSAL_CHOSEN |
//!                                                 INVALID_KE_PAYLOAD)}
//! HDR(old), SK{D(IKE)}  -->    (once the new SA is up, §2.18)
//!                          <--  HDR(old), SK{}
//! ```
//!
//! The new SA's SKEYSEED = prf_old(SK_d old, g^ir new | Ni | Nr); its
//! keys expand with its own PRF, the new nonces and SPIs; the initiator
//! of the rekey is the new SA's original initiator, and both sides number
//! its messages from 0 (§2.18). Children move to it unchanged. The IKE
//! proposals carry the sender's new 8-byte SPI (§3.3.1); otherwise they
//! are read and chosen as in IKE_SA_INIT.

use crate::crypto::dh::DhSecret;
use crate::Random;

use super::auth::Established;
use super::child::{push_error, ChildPayloads};
use super::config::{select, ChosenIke, IkeSaProposal, Selection};
use super::create_child::{ExchangeError, IkeSa};
use super::init::{ike_spi, InitExchange, NONCE_LEN};
use super::sk::SkCipher;
use super::wire::{
    ExchangeType, Header, KePayload, NotifyType, Payload, PayloadChain, PayloadType, ProposalRepr,
    ProtocolId, SaPayload,
};

/// Our IKE SA rekey in flight.
pub struct PendingIkeRekey {
    /// Its message ID (on the old SA).
    pub(crate) message_id: u32,
    spi: u64,
    ni: Vec<u8>,
    dh: DhSecret,
    proposals: Vec<IkeSaProposal>,
    /// The request to send and resend.
    pub(crate) request: Vec<u8>,
}

impl core::fmt::Debug for PendingIkeRekey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingIkeRekey")
            .field("message_id", &self.message_id)
            .field("spi", &format_args!("{:016x}", self.spi))
            .finish_non_exhaustive()
    }
}

/// The new IKE SA a responder made, or the Notify it refused with.
pub type IkeSaMade = Result<Box<IkeSa>, NotifyType>;

/// What the responder made of our IKE SA rekey.
#[derive(Debug)]
pub enum IkeRekeyResponse {
    /// Not the response: still waiting.
    Ignored(Box<PendingIkeRekey>, ExchangeError),
    /// The new IKE SA.
    Rekeyed(Box<IkeSa>),
    /// Refused (the Notify), or an answer we cannot take.
    Failed(NotifyType),
}

/// An SA payload with the SPIs of its proposals taken out, and the SPI of
/// each (by proposal number): IKE_SA_INIT's reading then applies.
fn split_spis(sa: &SaPayload<'_>) -> (Vec<u8>, Vec<(u8, Vec<u8>)>) {
    let mut spis = Vec::new();
    let reprs: Vec<ProposalRepr> = sa
        .proposals()
        .map(|p| {
            let mut r = ProposalRepr::from(&p);
            spis.push((r.num, std::mem::take(&mut r.spi)));
            r
        })
        .collect();
    let mut out = Vec::new();
    ProposalRepr::emit_sa(&reprs, &mut out);
    (out, spis)
}

fn spi_of(spis: &[(u8, Vec<u8>)], num: u8) -> Option<u64> {
    let (_, spi) = spis.iter().find(|(n, _)| *n == num)?;
    let spi = u64::from_be_bytes(<[u8; 8]>::try_from(spi.as_slice()).ok()?);
    (spi != 0).then_some(spi)
}

/// The new SA from the rekey's nonces, shared secret and SPIs (§2.18).
fn new_sa(old: &IkeSa, parts: NewSaParts) -> Result<IkeSa, NotifyType> {
    let o = old.established();
    let keys = o
        .exchange
        .keys
        .derive_rekey(
            parts.chosen.prf,
            parts.chosen.suite,
            &parts.ni,
            &parts.nr,
            &parts.g_ir,
            parts.spi_i,
            parts.spi_r,
        )
        .map_err(|_| NotifyType::NoProposalChosen)?;
    let cipher = SkCipher::new(&keys, parts.initiator).map_err(|_| NotifyType::NoProposalChosen)?;
    let exchange = InitExchange {
        chosen: parts.chosen,
        spi_i: parts.spi_i,
        spi_r: parts.spi_r,
        ni: parts.ni,
        nr: parts.nr,
        g_ir: parts.g_ir,
        keys,
        request: Vec::new(),
        response: Vec::new(),
        nat: o.exchange.nat,
        local: o.exchange.local,
        remote: o.exchange.remote,
    };
    let est = Established {
        exchange,
        cipher,
        peer: o.peer.clone(),
        last_request: Vec::new(),
        last_response: Vec::new(),
        child: None,
        child_error: None,
        peer_initial_contact: false,
    };
    Ok(IkeSa::rekeyed(est, parts.initiator))
}

struct NewSaParts {
    chosen: ChosenIke,
    ni: Vec<u8>,
    nr: Vec<u8>,
    g_ir: zeroize::Zeroizing<Vec<u8>>,
    spi_i: u64,
    spi_r: u64,
    initiator: bool,
}

impl IkeSa {
    /// Sends the rekey of this IKE SA: SK{SA, Ni, KEi} with our new SPI
    /// and a KE of the first proposal's first group; all from `rng`.
    pub fn rekey_ike(
        &mut self,
        proposals: &[IkeSaProposal],
        rng: &mut dyn Random,
    ) -> Result<PendingIkeRekey, ExchangeError> {
        let group = proposals.first().and_then(|p| p.dh.first()).copied().ok_or(ExchangeError::NotOurs)?;
        let spi = ike_spi(rng);
        let mut ni = vec![0u8; NONCE_LEN];
        rng.fill(&mut ni);
        let dh = DhSecret::generate(group, rng);
        let reprs: Vec<ProposalRepr> = proposals
            .iter()
            .zip(1u8..)
            .map(|(p, num)| ProposalRepr { spi: spi.to_be_bytes().to_vec(), ..p.to_repr(num) })
            .collect();
        let mut chain = PayloadChain::new();
        chain.push_with(PayloadType::Sa, false, |out| ProposalRepr::emit_sa(&reprs, out));
        chain.push(PayloadType::Nonce, &ni);
        chain.push_payload(&Payload::Ke(KePayload { group: group.number(), data: dh.public() }));
        let (message_id, request) = self.send_request(ExchangeType::CreateChildSa, &chain, rng)?;
        Ok(PendingIkeRekey { message_id, spi, ni, dh, proposals: proposals.to_vec(), request })
    }

    /// Takes the response to our rekey.
    pub fn handle_ike_rekey_response(&mut self, pending: PendingIkeRekey, msg: &[u8]) -> IkeRekeyResponse {
        let opened = match self.receive_response(msg, pending.message_id, ExchangeType::CreateChildSa) {
            Ok(o) => o,
            Err(e) => return IkeRekeyResponse::Ignored(Box::new(pending), e),
        };
        let p = match super::create_child::read_child(&opened) {
            Ok(p) => p,
            Err(_) => return IkeRekeyResponse::Failed(NotifyType::InvalidSyntax),
        };
        match self.initiator_new_sa(&pending, &p) {
            Ok(sa) => IkeRekeyResponse::Rekeyed(Box::new(sa)),
            Err(n) => IkeRekeyResponse::Failed(n),
        }
    }

    fn initiator_new_sa(&self, pending: &PendingIkeRekey, p: &ChildPayloads) -> Result<IkeSa, NotifyType> {
        if let Some(n) = p.error {
            return Err(n);
        }
        let bad = NotifyType::NoProposalChosen;
        let (body, at) = p.sa.as_ref().ok_or(bad)?;
        let sa = SaPayload::parse(body, *at).map_err(|_| bad)?;
        let (plain, spis) = split_spis(&sa);
        let chosen =
            ChosenIke::from_answer(&SaPayload::parse(&plain, 0).map_err(|_| bad)?, &pending.proposals)
                .filter(|c| c.dh == pending.dh.group())
                .ok_or(bad)?;
        let spi_r = spi_of(&spis, chosen.num).ok_or(bad)?;
        let nr = p.nonce.clone().filter(|n| n.len() >= chosen.prf.output_len() / 2).ok_or(bad)?;
        let (group, data) = p.ke.as_ref().ok_or(bad)?;
        if *group != chosen.dh.number() {
            return Err(bad);
        }
        let g_ir = pending.dh.agree(data).map_err(|_| bad)?;
        new_sa(
            self,
            NewSaParts {
                chosen,
                ni: pending.ni.clone(),
                nr,
                g_ir,
                spi_i: pending.spi,
                spi_r,
                initiator: true,
            },
        )
    }

    /// Answers the peer's rekey of this IKE SA (opened by
    /// [`IkeSa::receive_request`]): the response, and the new SA or the
    /// refusal sent.
    pub(crate) fn answer_ike_rekey(
        &mut self,
        header: &Header,
        msg: &[u8],
        p: &ChildPayloads,
        proposals: &[IkeSaProposal],
        rng: &mut dyn Random,
    ) -> Result<(Vec<u8>, IkeSaMade), ExchangeError> {
        let mut chain = PayloadChain::new();
        let made = self.responder_new_sa(p, proposals, &mut chain, rng);
        if let Err(n) = &made {
            let data = match &made {
                Err(NotifyType::InvalidKePayload) => self.preferred(proposals),
                _ => Vec::new(),
            };
            chain = PayloadChain::new();
            push_error(&mut chain, *n, &data);
        }
        let response = self.respond(header, msg, &chain, rng)?;
        Ok((response, made.map(Box::new)))
    }

    fn preferred(&self, proposals: &[IkeSaProposal]) -> Vec<u8> {
        proposals
            .first()
            .and_then(|p| p.dh.first())
            .map(|g| g.number().to_be_bytes().to_vec())
            .unwrap_or_default()
    }

    fn responder_new_sa(
        &self,
        p: &ChildPayloads,
        proposals: &[IkeSaProposal],
        chain: &mut PayloadChain,
        rng: &mut dyn Random,
    ) -> Result<IkeSa, NotifyType> {
        let bad = NotifyType::InvalidSyntax;
        let (body, at) = p.sa.as_ref().ok_or(bad)?;
        let sa = SaPayload::parse(body, *at).map_err(|_| bad)?;
        let ni = p.nonce.clone().ok_or(bad)?;
        let (group, data) = p.ke.as_ref().ok_or(bad)?;
        let (plain, spis) = split_spis(&sa);
        let chosen = match select(&SaPayload::parse(&plain, 0).map_err(|_| bad)?, proposals, *group) {
            Selection::Chosen(c) => c,
            Selection::WrongKe { .. } => return Err(NotifyType::InvalidKePayload),
            Selection::NoProposal => return Err(NotifyType::NoProposalChosen),
        };
        let spi_i = spi_of(&spis, chosen.num).ok_or(bad)?;
        if ni.len() < chosen.prf.output_len() / 2 {
            return Err(bad);
        }
        let dh = DhSecret::generate(chosen.dh, rng);
        let g_ir = dh.agree(data).map_err(|_| bad)?;
        let spi_r = ike_spi(rng);
        let mut nr = vec![0u8; NONCE_LEN];
        rng.fill(&mut nr);
        let mut answer = Vec::new();
        chosen.emit_sa(&mut answer);
        let parsed = SaPayload::parse(&answer, 0).map_err(|_| bad)?;
        let reprs: Vec<ProposalRepr> = parsed
            .proposals()
            .map(|q| ProposalRepr { spi: spi_r.to_be_bytes().to_vec(), ..ProposalRepr::from(&q) })
            .collect();
        chain.push_with(PayloadType::Sa, false, |out| ProposalRepr::emit_sa(&reprs, out));
        chain.push(PayloadType::Nonce, &nr);
        chain.push_payload(&Payload::Ke(KePayload { group: chosen.dh.number(), data: dh.public() }));
        new_sa(self, NewSaParts { chosen, ni, nr, g_ir, spi_i, spi_r, initiator: false })
    }
}

/// True if an opened CREATE_CHILD_SA request rekeys the IKE SA: an SA
/// payload with an IKE proposal, and no traffic selectors (§1.3.2).
pub(crate) fn is_ike_rekey(p: &ChildPayloads) -> bool {
    let Some((body, at)) = p.sa.as_ref() else { return false };
    let ike =
        SaPayload::parse(body, *at).is_ok_and(|sa| sa.proposals().any(|q| q.protocol == ProtocolId::Ike));
    ike && p.tsi.is_none() && p.tsr.is_none()
}
