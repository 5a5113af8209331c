//! IKE SA proposals (RFC 7296 §3.3): what a side offers as initiator or
//! accepts as responder, and the choice a responder makes among an
//! initiator's offer.
//!
//! A proposal here is a set of acceptable transforms per type (ENCR, PRF,
//! INTEG, D-H; §3.3.2), every combination of which is acceptable (§3.3).
//! An AEAD cipher (AES-GCM) takes no integrity transform (RFC 5282 §8), so
//! a proposal is either all AEAD with no INTEG list or all CBC with one.
//!
//! Selection (§2.7, §3.3.6): the responder walks the initiator's proposals
//! in the initiator's order and answers with the first it accepts, one
//! transform per type, each the first in the initiator's order that the
//! responder accepts. A proposal with a transform type the responder does
//! not understand is unacceptable as a whole (§3.3.6); a transform with an
//! attribute it does not understand is skipped (§3.3.6).

use crate::DhGroup;

use super::alg::{EncrAlg, IntegAlg, PrfAlg, SkSuite};
use super::wire::{
    transform_id, Proposal, ProposalRepr, ProtocolId, SaPayload, Transform, TransformRepr, TransformType,
};

/// One IKE SA proposal: the acceptable transforms of each type, most
/// preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaProposal {
    /// Ciphers of the Encrypted payload.
    pub encr: Vec<EncrAlg>,
    /// Pseudorandom functions.
    pub prf: Vec<PrfAlg>,
    /// Integrity algorithms (empty when the ciphers are AEAD).
    pub integ: Vec<IntegAlg>,
    /// Diffie-Hellman groups; an initiator sends its KE in the first.
    pub dh: Vec<DhGroup>,
}

/// Why a proposal cannot be offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalError {
    /// No proposal at all.
    #[error("no IKE proposal configured")]
    Empty,
    /// A proposal without a transform of a mandatory type (§3.3.3).
    #[error("IKE proposal {index} has no {kind}")]
    Missing {
        /// Its position, from 1.
        index: usize,
        /// The type missing.
        kind: &'static str,
    },
    /// AEAD and CBC ciphers mixed, or an AEAD cipher with an integrity
    /// algorithm (RFC 5282 §8).
    #[error("IKE proposal {index} mixes AEAD and non-AEAD protection")]
    MixedAead {
        /// Its position, from 1.
        index: usize,
    },
    /// More proposals than a proposal number can count (§3.3.1).
    #[error("{count} IKE proposals, at most 255")]
    TooMany {
        /// How many.
        count: usize,
    },
}

impl IkeSaProposal {
    /// Checks a list of proposals for use on either side.
    pub fn check_all(proposals: &[IkeSaProposal]) -> Result<(), ProposalError> {
        if proposals.is_empty() {
            return Err(ProposalError::Empty);
        }
        if proposals.len() > 255 {
            return Err(ProposalError::TooMany { count: proposals.len() });
        }
        for (i, p) in proposals.iter().enumerate() {
            let index = i + 1;
            for (empty, kind) in [
                (p.encr.is_empty(), "encryption algorithm"),
                (p.prf.is_empty(), "pseudorandom function"),
                (p.dh.is_empty(), "Diffie-Hellman group"),
            ] {
                if empty {
                    return Err(ProposalError::Missing { index, kind });
                }
            }
            let aead = p.encr.iter().filter(|e| e.is_aead()).count();
            if aead != 0 && (aead != p.encr.len() || !p.integ.is_empty()) {
                return Err(ProposalError::MixedAead { index });
            }
            if aead == 0 && p.integ.is_empty() {
                return Err(ProposalError::Missing { index, kind: "integrity algorithm" });
            }
        }
        Ok(())
    }

    /// The proposal as sent, numbered `num` (§3.3.1: no SPI in
    /// IKE_SA_INIT), transforms in the order ENCR, PRF, INTEG, D-H.
    pub fn to_repr(&self, num: u8) -> ProposalRepr {
        let mut transforms = Vec::new();
        for e in &self.encr {
            let (id, bits) = e.transform();
            transforms.push(TransformRepr { kind: TransformType::Encr, id, key_length: Some(bits) });
        }
        let plain = |kind, id| TransformRepr { kind, id, key_length: None };
        transforms.extend(self.prf.iter().map(|p| plain(TransformType::Prf, p.transform_id())));
        transforms.extend(self.integ.iter().map(|a| plain(TransformType::Integ, a.transform_id())));
        transforms.extend(self.dh.iter().map(|g| plain(TransformType::Dh, g.number())));
        ProposalRepr { num, protocol: ProtocolId::Ike, spi: Vec::new(), transforms }
    }
}

/// The algorithms of an IKE SA, one per type, as a responder chose them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChosenIke {
    /// The number of the initiator's proposal they came from (§3.3.1).
    pub num: u8,
    /// The Encrypted payload's cipher and integrity.
    pub suite: SkSuite,
    /// The PRF.
    pub prf: PrfAlg,
    /// The Diffie-Hellman group.
    pub dh: DhGroup,
}

impl ChosenIke {
    /// The SA payload body of the answer: one proposal, one transform
    /// per type (§3.3.1, §2.7).
    pub fn emit_sa(&self, out: &mut Vec<u8>) {
        let (id, bits) = self.suite.encr().transform();
        let mut transforms = vec![
            TransformRepr { kind: TransformType::Encr, id, key_length: Some(bits) },
            TransformRepr { kind: TransformType::Prf, id: self.prf.transform_id(), key_length: None },
        ];
        if let Some(integ) = self.suite.integ() {
            transforms.push(TransformRepr {
                kind: TransformType::Integ,
                id: integ.transform_id(),
                key_length: None,
            });
        }
        transforms.push(TransformRepr { kind: TransformType::Dh, id: self.dh.number(), key_length: None });
        let repr = ProposalRepr { num: self.num, protocol: ProtocolId::Ike, spi: Vec::new(), transforms };
        ProposalRepr::emit_sa(&[repr], out);
    }

    /// Reads a responder's answer (§3.3.1, §2.7): exactly one IKE
    /// proposal without SPI and exactly one transform of each type, each
    /// among those we offered under the same proposal number. `None` if
    /// the answer is not one we could have asked for.
    pub fn from_answer(sa: &SaPayload<'_>, offered: &[IkeSaProposal]) -> Option<ChosenIke> {
        let mut proposals = sa.proposals();
        let p = proposals.next()?;
        if proposals.next().is_some() || p.protocol != ProtocolId::Ike || !p.spi.is_empty() {
            return None;
        }
        let ours = offered.get(usize::from(p.num).checked_sub(1)?)?;
        let (mut encr, mut prf, mut integ, mut dh) = (None, None, None, None);
        for t in p.transforms() {
            let fresh = match t.kind {
                TransformType::Encr => {
                    let e =
                        EncrAlg::from_transform(t.id, t.key_length()).filter(|e| ours.encr.contains(e))?;
                    encr.replace(e).is_none()
                }
                TransformType::Prf => {
                    let f = PrfAlg::from_transform_id(t.id).filter(|f| ours.prf.contains(f))?;
                    prf.replace(f).is_none()
                }
                TransformType::Integ => {
                    let a = IntegAlg::from_transform_id(t.id).filter(|a| ours.integ.contains(a))?;
                    integ.replace(a).is_none()
                }
                TransformType::Dh => {
                    let g = DhGroup::from_number(t.id.into()).filter(|g| ours.dh.contains(g))?;
                    dh.replace(g).is_none()
                }
                TransformType::Esn | TransformType::Other(_) => false,
            };
            if !fresh || t.has_unknown_attribute() {
                return None;
            }
        }
        let suite = SkSuite::new(encr?, integ)?;
        Some(ChosenIke { num: p.num, suite, prf: prf?, dh: dh? })
    }
}

/// What a responder found in an initiator's SA payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// A proposal accepted, with the KE's group.
    Chosen(ChosenIke),
    /// A proposal accepted, but the KE is of another group than the
    /// one chosen: INVALID_KE_PAYLOAD naming `wanted` (§1.2, §1.3).
    WrongKe {
        /// The group the responder wants.
        wanted: DhGroup,
    },
    /// No proposal acceptable: NO_PROPOSAL_CHOSEN (§2.7).
    NoProposal,
}

/// The transforms of one type in `p`, in the initiator's order, that
/// carry no attribute we do not understand (§3.3.6).
fn of_kind<'a>(p: &Proposal<'a>, kind: TransformType) -> impl Iterator<Item = Transform<'a>> + 'a {
    p.transforms().filter(move |t| t.kind == kind && !t.has_unknown_attribute())
}

/// Chooses from `offered` with `ours`, given the group of the KE payload
/// the initiator sent (§2.7, §3.3.6; module doc).
pub fn select(offered: &SaPayload<'_>, ours: &[IkeSaProposal], ke_group: u16) -> Selection {
    let mut wrong_ke = None;
    for p in offered.proposals() {
        // §3.3.1: an IKE proposal in IKE_SA_INIT carries no SPI; §3.3.6:
        // a type not understood makes the whole proposal unacceptable.
        let understood = p.transforms().all(|t| {
            matches!(
                t.kind,
                TransformType::Encr | TransformType::Prf | TransformType::Integ | TransformType::Dh
            )
        });
        if p.protocol != ProtocolId::Ike || !p.spi.is_empty() || !understood {
            continue;
        }
        for q in ours {
            let Some((suite, prf)) = choose_protection(&p, q) else { continue };
            let groups: Vec<DhGroup> = of_kind(&p, TransformType::Dh)
                .filter_map(|t| DhGroup::from_number(t.id.into()))
                .filter(|g| q.dh.contains(g))
                .collect();
            if groups.is_empty() {
                continue;
            }
            if let Some(g) = groups.iter().find(|g| g.number() == ke_group) {
                return Selection::Chosen(ChosenIke { num: p.num, suite, prf, dh: *g });
            }
            // Our preferred group among those offered; keep looking for a
            // proposal that takes the KE as sent (saves a round trip).
            if wrong_ke.is_none() {
                wrong_ke = q.dh.iter().find(|g| groups.contains(g)).copied();
            }
        }
    }
    match wrong_ke {
        Some(wanted) => Selection::WrongKe { wanted },
        None => Selection::NoProposal,
    }
}

/// The cipher, integrity and PRF of `p` that `q` accepts, each the first
/// in the initiator's order.
fn choose_protection(p: &Proposal<'_>, q: &IkeSaProposal) -> Option<(SkSuite, PrfAlg)> {
    let prf = of_kind(p, TransformType::Prf)
        .filter_map(|t| PrfAlg::from_transform_id(t.id))
        .find(|f| q.prf.contains(f))?;
    // RFC 5282 §8: with an AEAD cipher the INTEG transform is absent or
    // NONE; a proposal naming a real one cannot pair it with AEAD.
    let real_integ = of_kind(p, TransformType::Integ).any(|t| t.id != transform_id::AUTH_NONE);
    let integ = of_kind(p, TransformType::Integ)
        .filter_map(|t| IntegAlg::from_transform_id(t.id))
        .find(|a| q.integ.contains(a));
    let suite = of_kind(p, TransformType::Encr)
        .filter_map(|t| EncrAlg::from_transform(t.id, t.key_length()))
        .filter(|e| q.encr.contains(e))
        .find_map(|e| {
            if e.is_aead() { (!real_integ).then_some(None) } else { integ.map(Some) }
                .and_then(|i| SkSuite::new(e, i))
        })?;
    Some((suite, prf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcm() -> IkeSaProposal {
        IkeSaProposal {
            encr: vec![EncrAlg::AesGcm16_128],
            prf: vec![PrfAlg::HmacSha256],
            integ: vec![],
            dh: vec![DhGroup::Ecp256],
        }
    }

    fn cbc() -> IkeSaProposal {
        IkeSaProposal { encr: vec![EncrAlg::AesCbc128], integ: vec![IntegAlg::HmacSha1_96], ..gcm() }
    }

    fn offer(proposals: &[ProposalRepr]) -> Vec<u8> {
        let mut out = Vec::new();
        ProposalRepr::emit_sa(proposals, &mut out);
        out
    }

    #[test]
    fn configuration_checked() {
        assert_eq!(IkeSaProposal::check_all(&[]), Err(ProposalError::Empty));
        assert_eq!(IkeSaProposal::check_all(&[gcm(), cbc()]), Ok(()));
        let mixed = IkeSaProposal { encr: vec![EncrAlg::AesGcm16_128, EncrAlg::AesCbc128], ..cbc() };
        assert_eq!(IkeSaProposal::check_all(&[gcm(), mixed]), Err(ProposalError::MixedAead { index: 2 }));
        let no_integ = IkeSaProposal { integ: vec![], ..cbc() };
        assert_eq!(
            IkeSaProposal::check_all(&[no_integ]),
            Err(ProposalError::Missing { index: 1, kind: "integrity algorithm" })
        );
        let no_dh = IkeSaProposal { dh: vec![], ..gcm() };
        assert_eq!(
            IkeSaProposal::check_all(&[no_dh]).unwrap_err().to_string(),
            "IKE proposal 1 has no Diffie-Hellman group"
        );
    }

    #[test]
    fn selection_follows_the_initiators_order_and_skips_what_it_cannot_read() {
        // Proposal 1 carries an ESN transform (not an IKE type, §3.3.6),
        // proposal 2 an SPI (§3.3.1): both unacceptable; proposal 3 is
        // taken, with its first acceptable transform of each type.
        let mut p1 = gcm().to_repr(1);
        p1.transforms.push(TransformRepr { kind: TransformType::Esn, id: 0, key_length: None });
        let mut p2 = cbc().to_repr(2);
        p2.spi = vec![1; 8];
        let p3 = IkeSaProposal {
            encr: vec![EncrAlg::AesCbc256, EncrAlg::AesCbc128],
            prf: vec![PrfAlg::HmacSha512, PrfAlg::HmacSha256],
            integ: vec![IntegAlg::HmacSha1_96],
            dh: vec![DhGroup::Ecp384, DhGroup::Ecp256],
        }
        .to_repr(3);
        let bytes = offer(&[p1, p2, p3]);
        let sa = SaPayload::parse(&bytes, 0).unwrap();
        let ours = [cbc()];
        let chosen = ChosenIke {
            num: 3,
            suite: SkSuite::new(EncrAlg::AesCbc128, Some(IntegAlg::HmacSha1_96)).unwrap(),
            prf: PrfAlg::HmacSha256,
            dh: DhGroup::Ecp256,
        };
        assert_eq!(select(&sa, &ours, 19), Selection::Chosen(chosen));
        assert_eq!(select(&sa, &ours, 20), Selection::WrongKe { wanted: DhGroup::Ecp256 });
        assert_eq!(select(&sa, &[gcm()], 19), Selection::NoProposal);
        // The answer reads back as the same choice against what was offered.
        let mut answer = Vec::new();
        chosen.emit_sa(&mut answer);
        let offered = [gcm(), cbc(), IkeSaProposal { encr: vec![EncrAlg::AesCbc128], ..cbc() }];
        let back = SaPayload::parse(&answer, 0).unwrap();
        assert_eq!(ChosenIke::from_answer(&back, &offered), Some(chosen));
        // Not under the proposal number it names.
        assert_eq!(ChosenIke::from_answer(&back, &offered[..2]), None);
    }

    #[test]
    fn aead_never_paired_with_a_real_integrity_transform() {
        // GCM offered beside HMAC-SHA1: GCM cannot be taken (RFC 5282 §8);
        // the CBC cipher after it is.
        let mixed = ProposalRepr {
            num: 1,
            protocol: ProtocolId::Ike,
            spi: vec![],
            transforms: [gcm().to_repr(1).transforms, cbc().to_repr(1).transforms].concat(),
        };
        let bytes = offer(&[mixed]);
        let sa = SaPayload::parse(&bytes, 0).unwrap();
        let both = IkeSaProposal { encr: vec![EncrAlg::AesGcm16_128], integ: vec![], ..gcm() };
        assert_eq!(select(&sa, &[both], 19), Selection::NoProposal);
        match select(&sa, &[gcm(), cbc()], 19) {
            Selection::Chosen(c) => assert_eq!(c.suite.encr(), EncrAlg::AesCbc128),
            other => panic!("{other:?}"),
        }
    }
}
