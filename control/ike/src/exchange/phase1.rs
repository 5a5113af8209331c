//! What Main and Aggressive Mode share: the ISAKMP SA proposal and its
//! selection, vendor IDs, NAT-D (RFC 3947 §3.2), phase-1 identities, the
//! in-progress phase-1 state and the step that makes it an [`IkeSa`].

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::config::{Identity, IkeProposal, PeerConfig};
use crate::crypto::dh::DhSecret;
use crate::crypto::keys::Phase1Keys;
use crate::crypto::{EncryptionAlg, HashAlg};
use crate::peer::Pending;
use crate::wire::{emit_sa, IdPayload, IdType, ProposalRepr, SaPayload, TransformRepr};
use crate::DhGroup;

/// RFC 3947 NAT-T vendor ID: MD5("RFC 3947").
pub(crate) const VID_NATT_RFC3947: [u8; 16] =
    [0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f];
/// RFC 3706 §4 DPD vendor ID.
pub(crate) const VID_DPD: [u8; 16] =
    [0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00];

/// esprit's own vendor ID (RFC 2408 §3.16), MD5("esprit: parallel Quick
/// Modes"): the sender runs several Quick Modes of one ISAKMP SA at once,
/// each with its own IV (RFC 2409 Appendix B), however many there are. A
/// peer that sent it gets [`PARALLEL_QUICK_MODES`] of ours at once;
/// others get `max_quick_modes` (strongSwan tracks only a few IVs per
/// ISAKMP SA).
pub(crate) const VID_ESPRIT: [u8; 16] =
    [0xc4, 0xf5, 0x8d, 0xdc, 0xd1, 0xe0, 0x5c, 0xc7, 0xc5, 0x82, 0xbb, 0x49, 0xe4, 0x42, 0x4e, 0x94];

/// Quick Modes we run at once towards a peer that sent [`VID_ESPRIT`]:
/// enough that bringing up thousands of proxy-IDs is not bound by one
/// round trip per child.
pub(crate) const PARALLEL_QUICK_MODES: usize = 64;

/// Phase-1 attribute types (RFC 2409 Appendix A).
mod attr {
    pub(crate) const ENCRYPTION: u16 = 1;
    pub(crate) const HASH: u16 = 2;
    pub(crate) const AUTH_METHOD: u16 = 3;
    pub(crate) const GROUP: u16 = 4;
    pub(crate) const LIFE_TYPE: u16 = 11;
    pub(crate) const LIFE_DURATION: u16 = 12;
    pub(crate) const KEY_LENGTH: u16 = 14;
}
const ENC_AES_CBC: u32 = 7;
const AUTH_PSK: u32 = 1;
const LIFE_SECONDS: u32 = 1;
const PROTO_ISAKMP: u8 = 1;
const KEY_IKE: u8 = 1;

/// Which phase-1 exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Main,
    Aggressive,
}

/// A phase-1 exchange in progress.
#[derive(Debug)]
pub(crate) struct Phase1 {
    pub mode: Mode,
    pub initiator: bool,
    /// Last message number handled or sent (1..6).
    pub step: u8,
    pub icookie: [u8; 8],
    pub rcookie: [u8; 8],
    /// Body of the initiator's SA payload (SAi_b, hashed by HASH_I/R).
    pub sai_b: Vec<u8>,
    pub chosen: Option<(IkeProposal, u32)>,
    pub dh: Option<DhSecret>,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub gxi: Vec<u8>,
    pub gxr: Vec<u8>,
    pub keys: Option<Phase1Keys>,
    pub iv: Vec<u8>,
    pub peer_natt: bool,
    pub peer_dpd: bool,
    /// The peer sent [`VID_ESPRIT`].
    pub peer_esprit: bool,
    /// The peer's authentication message carried INITIAL-CONTACT.
    pub initial_contact: bool,
    pub nat: bool,
    /// The peer's NAT-D of our address did not match: a NAT translates us.
    pub behind_nat: bool,
    /// Aggressive Mode initiator: our IDii_b until HASH_I is sent.
    pub id_b: Vec<u8>,
    pub pending: Option<Pending>,
    /// Addresses of the exchange (responder: where its messages come
    /// from; the peer's addresses change only once it authenticates).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// When it started (half-open exchanges time out, the oldest of a
    /// source is displaced first).
    pub created: Instant,
    /// Responder: the initiator has shown it receives at its address
    /// (it echoed our cookie in Main Mode message 3; an Aggressive Mode
    /// responder has done its DH already). Never displaced.
    pub proven: bool,
    /// Responder: the last message handled and our answer to it, for
    /// retransmissions (RFC 2408 §5: answered again, not reprocessed).
    pub last_in: Vec<u8>,
    pub last_out: Option<Vec<u8>>,
    /// Initiator: an unauthenticated error notification naming this
    /// exchange; reported if the exchange then times out.
    pub peer_notify: Option<crate::wire::NotifyType>,
    /// Main Mode initiator: RESPONDER-LIFETIME bodies of MM6, applied
    /// once HASH_R has verified (`responder_lifetime`).
    pub responder_lifetimes: Vec<Vec<u8>>,
}

impl Phase1 {
    pub(crate) fn new(
        mode: Mode,
        initiator: bool,
        icookie: [u8; 8],
        now: Instant,
        (local, remote): (SocketAddr, SocketAddr),
    ) -> Phase1 {
        Phase1 {
            mode,
            initiator,
            step: 0,
            icookie,
            rcookie: [0; 8],
            sai_b: Vec::new(),
            chosen: None,
            dh: None,
            ni: Vec::new(),
            nr: Vec::new(),
            gxi: Vec::new(),
            gxr: Vec::new(),
            keys: None,
            iv: Vec::new(),
            peer_natt: false,
            peer_dpd: false,
            peer_esprit: false,
            initial_contact: false,
            nat: false,
            behind_nat: false,
            id_b: Vec::new(),
            pending: None,
            local,
            remote,
            created: now,
            proven: false,
            last_in: Vec::new(),
            last_out: None,
            peer_notify: None,
            responder_lifetimes: Vec::new(),
        }
    }

    /// Derives the keys once both nonces and KEs are known.
    pub(crate) fn derive(&mut self, psk: &[u8], gxy: &[u8]) {
        if let Some((p, _)) = self.chosen {
            let k = Phase1Keys::derive_psk(
                p.hash,
                p.cipher,
                psk,
                &self.ni,
                &self.nr,
                gxy,
                &self.icookie,
                &self.rcookie,
            );
            self.iv = k.initial_iv(&self.gxi, &self.gxr);
            self.keys = Some(k);
        }
    }
}

/// The initiator's SA payload body: one ISAKMP proposal, one transform
/// per configured proposal (RFC 2409 §5: each transform is a complete
/// alternative). `only_group`: Aggressive Mode can offer one group only.
pub(crate) fn offer(cfg: &PeerConfig, only_group: Option<DhGroup>) -> Vec<u8> {
    let transforms = cfg
        .ike_proposals
        .iter()
        .filter(|p| only_group.is_none_or(|g| g == p.group))
        .enumerate()
        .map(|(i, p)| transform(i as u8 + 1, p, cfg.ike_lifetime))
        .collect();
    emit_sa(&[ProposalRepr { number: 1, protocol: PROTO_ISAKMP, spi: Vec::new(), transforms }])
}

fn transform(number: u8, p: &IkeProposal, lifetime: u32) -> TransformRepr {
    TransformRepr {
        number,
        id: KEY_IKE,
        attributes: vec![
            (attr::ENCRYPTION, ENC_AES_CBC),
            (attr::KEY_LENGTH, u32::from(p.cipher.key_bits())),
            (attr::HASH, u32::from(p.hash.value())),
            (attr::AUTH_METHOD, AUTH_PSK),
            (attr::GROUP, u32::from(p.group.number())),
            (attr::LIFE_TYPE, LIFE_SECONDS),
            (attr::LIFE_DURATION, lifetime),
        ],
    }
}

/// The responder's SA payload: the chosen transform alone.
pub(crate) fn answer(number: u8, p: &IkeProposal, lifetime: u32) -> Vec<u8> {
    emit_sa(&[ProposalRepr {
        number: 1,
        protocol: PROTO_ISAKMP,
        spi: Vec::new(),
        transforms: vec![transform(number, p, lifetime)],
    }])
}

/// Reads one ISAKMP transform; None when it asks for something we refuse
/// (3DES, DES, MD5 per RFC 8221, non-PSK authentication, unknown groups).
fn read_transform(t: &crate::wire::Transform<'_>) -> Result<(IkeProposal, u32), String> {
    let enc = t.attr(attr::ENCRYPTION).unwrap_or(0);
    let hash = t.attr(attr::HASH).unwrap_or(0);
    let group = t.attr(attr::GROUP).unwrap_or(0);
    let auth = t.attr(attr::AUTH_METHOD).unwrap_or(0);
    let bits = t.attr(attr::KEY_LENGTH).unwrap_or(0);
    let enc_name = match enc {
        1 => "des".to_owned(),
        5 => "3des".to_owned(),
        7 => format!("aes{bits}"),
        o => format!("enc{o}"),
    };
    let hash_name = match hash {
        1 => "md5",
        2 => "sha1",
        4 => "sha256",
        5 => "sha384",
        6 => "sha512",
        _ => "hash?",
    };
    let name = format!("{enc_name}-{hash_name}-group{group}-auth{auth}");
    let cipher = if enc == u64::from(ENC_AES_CBC) { EncryptionAlg::from_key_bits(bits) } else { None };
    match (cipher, HashAlg::from_value(hash), DhGroup::from_number(group), auth == u64::from(AUTH_PSK)) {
        (Some(cipher), Some(hash), Some(group), true) => {
            let life = if t.attr(attr::LIFE_TYPE) == Some(u64::from(LIFE_SECONDS)) {
                t.attr(attr::LIFE_DURATION).unwrap_or(0).min(u64::from(u32::MAX)) as u32
            } else {
                0
            };
            Ok((IkeProposal { cipher, hash, group }, life))
        }
        _ => Err(name),
    }
}

/// Responder: the first offered transform we are configured for, with
/// its number. Err lists what was offered (for the mismatch event).
pub(crate) fn select(cfg: &PeerConfig, sa: &SaPayload<'_>) -> Result<(u8, IkeProposal, u32), Vec<String>> {
    let mut offered = Vec::new();
    for p in sa.proposals.iter().filter(|p| p.protocol == PROTO_ISAKMP) {
        for t in p.transforms.iter().filter(|t| t.id == KEY_IKE) {
            match read_transform(t) {
                Ok((prop, life)) if cfg.ike_proposals.contains(&prop) => {
                    let life = match (life, cfg.ike_lifetime) {
                        (0, ours) => ours,
                        (theirs, ours) => theirs.min(ours),
                    };
                    return Ok((t.number, prop, life));
                }
                Ok((prop, _)) => offered.push(prop.name()),
                Err(name) => offered.push(name),
            }
        }
    }
    Err(offered)
}

/// Initiator: the responder's answer must be one transform we offered.
/// Err says what the responder chose instead.
pub(crate) fn accept(cfg: &PeerConfig, sa: &SaPayload<'_>) -> Result<(IkeProposal, u32), String> {
    let shape = || format!("{} proposal(s) instead of one transform", sa.proposals.len());
    let p = sa.proposals.first().ok_or_else(shape)?;
    if sa.proposals.len() != 1 || p.transforms.len() != 1 || p.protocol != PROTO_ISAKMP {
        return Err(shape());
    }
    let (prop, life) = read_transform(&p.transforms[0])?;
    if !cfg.ike_proposals.contains(&prop) {
        return Err(prop.name());
    }
    // Never a longer lifetime than we proposed (RFC 2407 §4.6.3.1: the
    // shorter of the two holds).
    let life = match (life, cfg.ike_lifetime) {
        (0, ours) => ours,
        (theirs, 0) => theirs,
        (theirs, ours) => theirs.min(ours),
    };
    Ok((prop, life))
}

/// NAT-D hash: HASH(CKY-I | CKY-R | IP | port) with the negotiated hash.
pub(crate) fn nat_d(hash: HashAlg, icookie: &[u8; 8], rcookie: &[u8; 8], addr: SocketAddr) -> Vec<u8> {
    let ip = match addr.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    hash.hash(&[icookie, rcookie, &ip, &addr.port().to_be_bytes()])
}

/// Phase-1 ID payload body (protocol and port 0, RFC 2407 §4.6.2).
pub(crate) fn identity_body(id: &Identity) -> Vec<u8> {
    IdPayload { id_type: IdType::from_value(id.id_type()), protocol: 0, port: 0, data: &id.data() }.emit()
}

/// Whether the peer's ID payload body is the identity it must present.
pub(crate) fn identity_matches(expected: Option<&Identity>, body: &[u8]) -> bool {
    let Some(exp) = expected else { return true };
    match IdPayload::parse(body) {
        Ok(id) => {
            let want = identity_body(exp);
            // Compare type and data; protocol/port may be 0/0 or 17/500.
            want.first() == body.first() && want.get(4..) == Some(id.data)
        }
        Err(_) => false,
    }
}

/// What handling a phase-1 message led to.
#[derive(Debug)]
pub(crate) enum Step {
    /// Wait for the next message.
    Continue,
    /// The ISAKMP SA is up.
    Done(Box<crate::ike_sa::IkeSa>),
    /// Abandoned (events already queued).
    Abort(crate::event::Reason),
}

/// Collects a payload chain.
pub(crate) fn payloads(
    body: &[u8],
    first: u8,
    padded: bool,
) -> Result<Vec<crate::wire::RawPayload<'_>>, crate::wire::WireError> {
    crate::wire::PayloadIter::new(body, first, padded).collect_all()
}

/// Body of the first payload of this type.
pub(crate) fn find<'a>(
    list: &[crate::wire::RawPayload<'a>],
    kind: crate::wire::PayloadType,
) -> Option<&'a [u8]> {
    list.iter().find(|p| p.kind == kind).map(|p| p.body)
}

/// Bodies of all payloads of this type.
pub(crate) fn find_all<'a>(
    list: &[crate::wire::RawPayload<'a>],
    kind: crate::wire::PayloadType,
) -> Vec<&'a [u8]> {
    list.iter().filter(|p| p.kind == kind).map(|p| p.body).collect()
}

/// The first payload type this implementation does not know, if any
/// (answered with INVALID-PAYLOAD-TYPE, RFC 2408 §5.1).
pub(crate) fn unknown_payload(list: &[crate::wire::RawPayload<'_>]) -> Option<u8> {
    list.iter().find_map(|p| match p.kind {
        crate::wire::PayloadType::Other(v) => Some(v),
        _ => None,
    })
}

/// What the NAT-D payloads say (RFC 3947 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct NatSeen {
    /// Our address, as the peer sent to it, is not the one we have: a NAT
    /// translates us (we keep its mapping alive, RFC 3948 §2.3).
    pub here: bool,
    /// The peer's address, as it came to us, is none it hashed.
    pub there: bool,
}

impl NatSeen {
    /// A NAT on either side: both float to port 4500.
    pub(crate) fn any(self) -> bool {
        self.here || self.there
    }
}

/// NAT detection from the NAT-D payloads received (RFC 3947 §3.2): the
/// first is the hash of our address as the peer sent to it, the others
/// the peer's own. No payload: nothing seen.
pub(crate) fn detect_nat(
    hash: HashAlg,
    icookie: &[u8; 8],
    rcookie: &[u8; 8],
    natd: &[&[u8]],
    local: SocketAddr,
    remote: SocketAddr,
) -> NatSeen {
    let Some((first, rest)) = natd.split_first() else { return NatSeen::default() };
    let local_ok = *first == nat_d(hash, icookie, rcookie, local).as_slice();
    let theirs = nat_d(hash, icookie, rcookie, remote);
    let remote_ok = rest.contains(&theirs.as_slice());
    NatSeen { here: !local_ok, there: !remote_ok }
}
