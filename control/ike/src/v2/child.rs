//! What a child SA is negotiated from and what it yields, shared by
//! IKE_AUTH (§1.2) and CREATE_CHILD_SA (§1.3.1): ESP proposals (§3.3),
//! traffic selectors from proxy-IDs (§3.13), the responder's narrowing
//! (§2.9) and the child's keys as a [`crate::ChildSa`] (§2.17).
//!
//! Narrowing, as the responder: a TSi/TSr pair that covers exactly one
//! configured proxy-ID (equal to it, or a superset of it) is narrowed to
//! that proxy-ID; a pair that covers none, or more than one, is refused
//! with TS_UNACCEPTABLE and a reason in words that names what was asked
//! and what is configured. A child is never wider than a configured
//! proxy-ID. As initiator, the answer may be the proxy-ID proposed or a
//! narrowing of it (§2.9): one selector on each side, each within what
//! was asked, and expressible as a proxy-ID (prefixes, one protocol, port
//! ranges); the child then carries that narrower proxy-ID, so the fast
//! path sends on it only what the peer agreed to take. An answer wider
//! than asked, or of another shape, is refused.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use esprit_policy::{PortRange, Prefix, ProxyId, Service};

use crate::config::Lifetime;
use crate::{ChildSa, DhGroup, Suite, UdpEncap};

use super::init::InitExchange;
use super::keys::{ChildKeys, KeyError};
use super::wire::transform_id as tid;
use super::wire::{
    NotifyPayload, NotifyType, Payload, PayloadChain, PayloadType, ProposalRepr, ProtocolId, SaPayload,
    TrafficSelector, TransformRepr, TransformType, TsAddresses,
};

/// How this gateway negotiates child SAs with one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildConfig {
    /// ESP suites, most preferred first.
    pub suites: Vec<Suite>,
    /// Extended Sequence Numbers (§3.3.2 transform type 5): offered and
    /// accepted only as configured.
    pub esn: bool,
    /// PFS group for CREATE_CHILD_SA (§1.3.1); IKE_AUTH's child always
    /// takes its keys from the IKE SA (§1.2).
    pub pfs: Option<DhGroup>,
    /// Further PFS groups an initiator offers after `pfs` and moves to
    /// when the responder answers INVALID_KE_PAYLOAD naming one (§1.3).
    pub pfs_also: Vec<DhGroup>,
    /// Configured proxy-IDs, from this gateway's side.
    pub proxy_ids: Vec<ProxyId>,
    /// Child lifetime.
    pub lifetime: Lifetime,
}

/// A child this side asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildRequest {
    /// The configured proxy-ID to negotiate.
    pub proxy_id: ProxyId,
    /// The triggering packet's (source, destination) addresses, sent as
    /// the first selector of TSi and TSr (§2.9).
    pub packet: Option<(IpAddr, IpAddr)>,
    /// Our inbound SPI for the child.
    pub spi_in: u32,
}

/// A negotiated child: the SA pair controld installs, and whether it uses
/// extended sequence numbers.
#[derive(Debug, Clone)]
pub struct NewChild {
    /// The SA pair.
    pub sa: ChildSa,
    /// ESN agreed (§3.3.2).
    pub esn: bool,
    /// The lower of the two nonces of the exchange that made it: a
    /// simultaneous rekey keeps the child whose exchange did not hold the
    /// lowest nonce of all four (§2.8.1).
    pub lowest_nonce: Vec<u8>,
}

/// Why a child was not made (the IKE SA is unaffected, §1.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChildError {
    /// No ESP proposal in common (NO_PROPOSAL_CHOSEN).
    #[error("no ESP proposal in common: {0}")]
    NoProposalChosen(String),
    /// The traffic selectors name no single configured proxy-ID
    /// (TS_UNACCEPTABLE).
    #[error("traffic selectors refused: {0}")]
    TsUnacceptable(String),
    /// The KE payload is not of the PFS group (INVALID_KE_PAYLOAD, §1.3).
    #[error("KE of group {got}, PFS group is {want}")]
    InvalidKe {
        /// The group the KE payload is of.
        got: u16,
        /// The group configured.
        want: u16,
    },
    /// The peer refused with a Notify.
    #[error("peer refused the child SA: Notify {0:?}")]
    Refused(NotifyType),
    /// A payload the exchange needs is missing or malformed.
    #[error("child SA exchange lacks {0}")]
    Missing(&'static str),
    /// The answer is not what was offered.
    #[error("answer not offered: {0}")]
    NotOffered(String),
    /// The Diffie-Hellman exchange failed.
    #[error("Diffie-Hellman: {0}")]
    Dh(String),
    /// The keys could not be derived.
    #[error("{0}")]
    Keys(#[from] KeyError),
}

impl ChildError {
    /// The Notify a responder answers with.
    pub fn notify(&self) -> NotifyType {
        match self {
            ChildError::NoProposalChosen(_) | ChildError::NotOffered(_) => NotifyType::NoProposalChosen,
            ChildError::TsUnacceptable(_) => NotifyType::TsUnacceptable,
            ChildError::InvalidKe { .. } => NotifyType::InvalidKePayload,
            ChildError::Refused(n) => *n,
            ChildError::Missing(_) | ChildError::Dh(_) | ChildError::Keys(_) => NotifyType::InvalidSyntax,
        }
    }
}

/// ENCR transform (ID, key length in bits) and INTEG transform ID of an
/// ESP suite (RFC 4106 with AUTH_NONE per RFC 5282 §8, RFC 3602, RFC 2404,
/// RFC 4868).
fn suite_transforms(s: Suite) -> ((u16, u16), Option<u16>) {
    match s {
        Suite::Aes128Gcm16 => ((tid::ENCR_AES_GCM_16, 128), None),
        Suite::Aes256Gcm16 => ((tid::ENCR_AES_GCM_16, 256), None),
        Suite::Aes128CbcSha1 => ((tid::ENCR_AES_CBC, 128), Some(tid::AUTH_HMAC_SHA1_96)),
        Suite::Aes256CbcSha1 => ((tid::ENCR_AES_CBC, 256), Some(tid::AUTH_HMAC_SHA1_96)),
        Suite::Aes128CbcSha256 => ((tid::ENCR_AES_CBC, 128), Some(tid::AUTH_HMAC_SHA2_256_128)),
        Suite::Aes256CbcSha256 => ((tid::ENCR_AES_CBC, 256), Some(tid::AUTH_HMAC_SHA2_256_128)),
    }
}

fn esn_id(esn: bool) -> u16 {
    if esn {
        tid::ESN_ON
    } else {
        tid::ESN_NONE
    }
}

/// The transforms of one suite's proposal.
fn transforms(suite: Suite, esn: bool, dh: Option<DhGroup>) -> Vec<TransformRepr> {
    transforms_groups(suite, esn, dh.as_slice())
}

/// The transforms of one suite's proposal with these D-H groups, in order.
fn transforms_groups(suite: Suite, esn: bool, groups: &[DhGroup]) -> Vec<TransformRepr> {
    let ((encr, bits), integ) = suite_transforms(suite);
    let mut t = vec![TransformRepr { kind: TransformType::Encr, id: encr, key_length: Some(bits) }];
    if let Some(i) = integ {
        t.push(TransformRepr { kind: TransformType::Integ, id: i, key_length: None });
    }
    for g in groups {
        t.push(TransformRepr { kind: TransformType::Dh, id: g.number(), key_length: None });
    }
    t.push(TransformRepr { kind: TransformType::Esn, id: esn_id(esn), key_length: None });
    t
}

/// SAi2 / the SA of CREATE_CHILD_SA: one ESP proposal per configured
/// suite (§3.3.1), each with our SPI, the ESN as configured, and the PFS
/// group when `dh` is given.
pub fn esp_proposals(config: &ChildConfig, dh: Option<DhGroup>, spi_in: u32) -> Vec<ProposalRepr> {
    esp_proposals_groups(config, dh.as_slice(), spi_in)
}

/// The groups a CREATE_CHILD_SA request offers when its KE is of
/// `first`: that one, then the configured ones (§1.3: the KE is of the
/// first group; the others are what INVALID_KE_PAYLOAD may ask for).
pub fn offered_groups(config: &ChildConfig, first: DhGroup) -> Vec<DhGroup> {
    let mut groups = vec![first];
    for g in config.pfs.iter().chain(&config.pfs_also) {
        if !groups.contains(g) {
            groups.push(*g);
        }
    }
    groups
}

/// ESP proposals as [`esp_proposals`], offering every group in `groups`.
pub fn esp_proposals_groups(config: &ChildConfig, groups: &[DhGroup], spi_in: u32) -> Vec<ProposalRepr> {
    (1u8..)
        .zip(&config.suites)
        .map(|(num, &suite)| ProposalRepr {
            num,
            protocol: ProtocolId::Esp,
            spi: spi_in.to_be_bytes().to_vec(),
            transforms: transforms_groups(suite, config.esn, groups),
        })
        .collect()
}

/// An ESP proposal chosen (or read back from an answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChosenEsp {
    /// Proposal number.
    pub num: u8,
    /// ESP suite.
    pub suite: Suite,
    /// ESN on.
    pub esn: bool,
    /// The peer's SPI (our outbound SA).
    pub spi_peer: u32,
    /// The D-H group of the proposal, if it has one.
    pub dh: Option<DhGroup>,
}

impl ChosenEsp {
    /// The answer's SA body: the chosen proposal, under its number, with
    /// our SPI (§3.3.1).
    pub fn emit_answer(&self, spi_in: u32, out: &mut Vec<u8>) {
        let repr = ProposalRepr {
            num: self.num,
            protocol: ProtocolId::Esp,
            spi: spi_in.to_be_bytes().to_vec(),
            transforms: transforms(self.suite, self.esn, self.dh),
        };
        ProposalRepr::emit_sa(&[repr], out);
    }
}

fn describe_suites(config: &ChildConfig) -> String {
    let names: Vec<_> = config.suites.iter().map(|s| s.name()).collect();
    format!("configured {} with ESN {}", names.join(", "), if config.esn { "on" } else { "off" })
}

/// What a child proposal must say about Diffie-Hellman.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhRule {
    /// IKE_AUTH: D-H transforms are ignored (§1.2).
    Ignore,
    /// No PFS: no D-H transform, or only NONE (§3.3.2).
    NoPfs,
    /// PFS with this group (§1.3.1).
    Group(DhGroup),
}

impl DhRule {
    /// The group, when PFS.
    pub fn group(self) -> Option<DhGroup> {
        match self {
            DhRule::Group(g) => Some(g),
            DhRule::Ignore | DhRule::NoPfs => None,
        }
    }
}

/// Picks an ESP proposal (§2.7): the first offered one that holds one of
/// our suites, our ESN choice and what `dh` asks for.
pub fn choose_esp(sa: &SaPayload<'_>, config: &ChildConfig, dh: DhRule) -> Result<ChosenEsp, ChildError> {
    for p in sa.proposals() {
        if p.protocol != ProtocolId::Esp || p.spi.len() != 4 {
            continue;
        }
        let spi_peer = u32::from_be_bytes([p.spi[0], p.spi[1], p.spi[2], p.spi[3]]);
        let t: Vec<TransformRepr> = p.transforms().map(|t| TransformRepr::from(&t)).collect();
        if spi_peer == 0 || p.transforms().any(|t| t.has_unknown_attribute()) {
            continue;
        }
        let has = |kind: TransformType, id: u16, len: Option<u16>| {
            t.iter().any(|x| x.kind == kind && x.id == id && x.key_length == len)
        };
        let none_of = |kind: TransformType| !t.iter().any(|x| x.kind == kind);
        let esn_ok =
            has(TransformType::Esn, esn_id(config.esn), None) || (!config.esn && none_of(TransformType::Esn));
        let dh_ok = match dh {
            DhRule::Ignore => true,
            DhRule::NoPfs => t.iter().all(|x| x.kind != TransformType::Dh || x.id == 0),
            DhRule::Group(g) => has(TransformType::Dh, g.number(), None),
        };
        if !esn_ok || !dh_ok {
            continue;
        }
        let suite = config.suites.iter().copied().find(|&s| {
            let ((encr, bits), integ) = suite_transforms(s);
            has(TransformType::Encr, encr, Some(bits))
                && match integ {
                    Some(i) => has(TransformType::Integ, i, None),
                    None => none_of(TransformType::Integ) || has(TransformType::Integ, tid::AUTH_NONE, None),
                }
        });
        if let Some(suite) = suite {
            return Ok(ChosenEsp { num: p.num, suite, esn: config.esn, spi_peer, dh: dh.group() });
        }
    }
    let mut offered = String::new();
    for p in sa.proposals() {
        let t: Vec<String> =
            p.transforms().map(|t| format!("{:?}:{}{}", t.kind, t.id, kl(t.key_length()))).collect();
        let _ = write!(offered, "{}#{} [{}] ", protocol_name(p.protocol), p.num, t.join(" "));
    }
    let pfs = match dh {
        DhRule::Group(g) => format!(", PFS group {}", g.number()),
        DhRule::NoPfs => ", no PFS".to_string(),
        DhRule::Ignore => String::new(),
    };
    Err(ChildError::NoProposalChosen(format!(
        "offered {}; {}{pfs}",
        offered.trim_end(),
        describe_suites(config)
    )))
}

fn kl(len: Option<u16>) -> String {
    len.map(|l| format!("/{l}")).unwrap_or_default()
}

fn protocol_name(p: ProtocolId) -> &'static str {
    match p {
        ProtocolId::Esp => "ESP",
        ProtocolId::Ah => "AH",
        ProtocolId::Ike => "IKE",
        _ => "other",
    }
}

/// Checks the responder's SA answer against what we offered (§3.3.6:
/// exactly one proposal, one of ours, unchanged).
pub fn check_answer(sa: &SaPayload<'_>, config: &ChildConfig, dh: DhRule) -> Result<ChosenEsp, ChildError> {
    let mut props = sa.proposals();
    let (Some(p), None) = (props.next(), props.next()) else {
        return Err(ChildError::NotOffered("the answer must hold exactly one proposal".into()));
    };
    let got: Vec<TransformRepr> = p.transforms().map(|t| TransformRepr::from(&t)).collect();
    let chosen = choose_esp(sa, config, dh).map_err(|e| ChildError::NotOffered(e.to_string()))?;
    let want = transforms(chosen.suite, chosen.esn, dh.group());
    let same_set = got.len() == want.len() && want.iter().all(|w| got.contains(w));
    if !same_set || usize::from(chosen.num) == 0 || usize::from(chosen.num) > config.suites.len() {
        return Err(ChildError::NotOffered(format!("proposal #{} is not one we offered", p.num)));
    }
    if config.suites[usize::from(chosen.num) - 1] != chosen.suite {
        return Err(ChildError::NotOffered(format!(
            "proposal #{} carries {} but we offered {} under that number",
            p.num,
            chosen.suite,
            config.suites[usize::from(chosen.num) - 1]
        )));
    }
    Ok(chosen)
}

/// The address range of a prefix (§3.13.1).
fn prefix_range(p: &Prefix) -> TsAddresses {
    match p.addr() {
        IpAddr::V4(a) => {
            let host = u32::MAX.checked_shr(u32::from(p.len())).unwrap_or(0);
            TsAddresses::V4 { start: a, end: Ipv4Addr::from_bits(a.to_bits() | host) }
        }
        IpAddr::V6(a) => {
            let host = u128::MAX.checked_shr(u32::from(p.len())).unwrap_or(0);
            TsAddresses::V6 { start: a, end: Ipv6Addr::from_bits(a.to_bits() | host) }
        }
    }
}

fn host_range(a: IpAddr) -> TsAddresses {
    match a {
        IpAddr::V4(a) => TsAddresses::V4 { start: a, end: a },
        IpAddr::V6(a) => TsAddresses::V6 { start: a, end: a },
    }
}

/// A proxy-ID's (local, remote) selectors: the local side carries the
/// service's source ports, the remote side its destination ports (or
/// ICMP type and code, §3.13.1), both the one protocol (0: any).
pub fn proxy_selectors(p: &ProxyId) -> (TrafficSelector, TrafficSelector) {
    let protocol = p.service.ip_protocol().unwrap_or(0);
    let (src, dst) = (p.service.src_ports(), p.service.dst_ports());
    let ts =
        |addresses, first, last| TrafficSelector { protocol, start_port: first, end_port: last, addresses };
    (
        ts(prefix_range(&p.local), src.first(), src.last()),
        ts(prefix_range(&p.remote), dst.first(), dst.last()),
    )
}

/// TSi and TSr of a request for `req.proxy_id` (§2.9): the packet's own
/// addresses first when given, then the proxy-ID's ranges.
pub fn request_selectors(req: &ChildRequest) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
    let (l, r) = proxy_selectors(&req.proxy_id);
    match req.packet {
        Some((src, dst)) if req.proxy_id.local.contains(src) && req.proxy_id.remote.contains(dst) => (
            vec![TrafficSelector { addresses: host_range(src), ..l }, l],
            vec![TrafficSelector { addresses: host_range(dst), ..r }, r],
        ),
        _ => (vec![l], vec![r]),
    }
}

/// True if `outer` contains all of `inner`: protocol, ports and
/// addresses (§2.9's subset relation).
pub fn covers(outer: &TrafficSelector, inner: &TrafficSelector) -> bool {
    let proto = outer.protocol == 0 || outer.protocol == inner.protocol;
    let ports = outer.start_port <= inner.start_port && inner.end_port <= outer.end_port;
    let addrs = match (outer.addresses, inner.addresses) {
        (TsAddresses::V4 { start: a, end: b }, TsAddresses::V4 { start: c, end: d }) => a <= c && d <= b,
        (TsAddresses::V6 { start: a, end: b }, TsAddresses::V6 { start: c, end: d }) => a <= c && d <= b,
        _ => false,
    };
    proto && ports && addrs
}

/// A selector in words: `10.1.1.0-10.1.1.255 proto 6 ports 80-80`.
pub fn describe(ts: &[TrafficSelector]) -> String {
    let one = |t: &TrafficSelector| {
        let (a, b) = match t.addresses {
            TsAddresses::V4 { start, end } => (IpAddr::V4(start), IpAddr::V4(end)),
            TsAddresses::V6 { start, end } => (IpAddr::V6(start), IpAddr::V6(end)),
        };
        format!("{a}-{b} proto {} ports {}-{}", t.protocol, t.start_port, t.end_port)
    };
    let all: Vec<String> = ts.iter().map(one).collect();
    format!("[{}]", all.join(", "))
}

/// The responder's narrowing (§2.9): the one configured proxy-ID that the
/// initiator's TSi/TSr cover, or TS_UNACCEPTABLE in words.
pub fn narrow(
    tsi: &[TrafficSelector],
    tsr: &[TrafficSelector],
    configured: &[ProxyId],
) -> Result<ProxyId, ChildError> {
    let fits: Vec<&ProxyId> = configured
        .iter()
        .filter(|p| {
            // Our local side is the responder's side (TSr), our remote side
            // the initiator's (TSi).
            let (local, remote) = proxy_selectors(p);
            tsi.iter().any(|t| covers(t, &remote)) && tsr.iter().any(|t| covers(t, &local))
        })
        .collect();
    if let [one] = fits.as_slice() {
        return Ok(**one);
    }
    let list =
        |ps: &mut dyn Iterator<Item = &ProxyId>| ps.map(|p| format!("({p})")).collect::<Vec<_>>().join(", ");
    let asked = format!("TSi {} TSr {}", describe(tsi), describe(tsr));
    let why = if fits.is_empty() {
        format!("{asked} covers none of the configured proxy-IDs: {}", list(&mut configured.iter()))
    } else {
        format!(
            "{asked} covers {} configured proxy-IDs ({}); a child must carry exactly one",
            fits.len(),
            list(&mut fits.iter().copied())
        )
    };
    Err(ChildError::TsUnacceptable(why))
}

/// The initiator's check of the answer's TSi/TSr (§2.9): the proxy-ID
/// proposed, or one selector on each side within it that a proxy-ID can
/// express; gives the proxy-ID the child carries (see the module doc).
pub fn check_answer_selectors(
    tsi: &[TrafficSelector],
    tsr: &[TrafficSelector],
    proxy_id: &ProxyId,
) -> Result<ProxyId, ChildError> {
    let (l, r) = proxy_selectors(proxy_id);
    if tsi == [l] && tsr == [r] {
        return Ok(*proxy_id);
    }
    let refuse = |why: &str| {
        ChildError::NotOffered(format!(
            "answer TSi {} TSr {} {why} the proxy-ID proposed ({proxy_id})",
            describe(tsi),
            describe(tsr)
        ))
    };
    let ([i], [o]) = (tsi, tsr) else { return Err(refuse("is more than one selector a side for")) };
    if !covers(&l, i) || !covers(&r, o) {
        return Err(refuse("is not within"));
    }
    selectors_proxy_id(i, o).ok_or_else(|| refuse("is within, but no proxy-ID can express it, for"))
}

/// The proxy-ID of a (local, remote) selector pair, if one can express
/// it: each range a prefix, one protocol, ports a service allows.
pub fn selectors_proxy_id(local: &TrafficSelector, remote: &TrafficSelector) -> Option<ProxyId> {
    if local.protocol != remote.protocol {
        return None;
    }
    let src = PortRange::new(local.start_port, local.end_port).ok()?;
    let dst = PortRange::new(remote.start_port, remote.end_port).ok()?;
    let service = if local.protocol == 0 && src.is_any() && dst.is_any() {
        Service::ANY
    } else {
        Service::with_ports(local.protocol, src, dst).ok()?
    };
    ProxyId::new(range_prefix(&local.addresses)?, range_prefix(&remote.addresses)?, service).ok()
}

/// The prefix whose range is exactly `a`, if there is one.
fn range_prefix(a: &TsAddresses) -> Option<Prefix> {
    let (start, len) = match *a {
        TsAddresses::V4 { start, end } => {
            let host = start.to_bits() ^ end.to_bits();
            let len = host.leading_zeros();
            let ok = host == u32::MAX.checked_shr(len).unwrap_or(0) && start.to_bits() & host == 0;
            (ok.then_some(IpAddr::V4(start))?, len)
        }
        TsAddresses::V6 { start, end } => {
            let host = start.to_bits() ^ end.to_bits();
            let len = host.leading_zeros();
            let ok = host == u128::MAX.checked_shr(len).unwrap_or(0) && start.to_bits() & host == 0;
            (ok.then_some(IpAddr::V6(start))?, len)
        }
    };
    Prefix::new(start, u8::try_from(len).ok()?).ok()
}

/// The child SA payloads of an IKE_AUTH or CREATE_CHILD_SA message,
/// copied out of the opened message.
#[derive(Debug, Default)]
pub(crate) struct ChildPayloads {
    pub(crate) sa: Option<(Vec<u8>, usize)>,
    pub(crate) ke: Option<(u16, Vec<u8>)>,
    pub(crate) nonce: Option<Vec<u8>>,
    pub(crate) tsi: Option<Vec<TrafficSelector>>,
    pub(crate) tsr: Option<Vec<TrafficSelector>>,
    /// The first error Notify about the child (§3.10.1).
    pub(crate) error: Option<NotifyType>,
    /// That Notify's data (INVALID_KE_PAYLOAD: the group wanted, §1.3).
    pub(crate) error_data: Vec<u8>,
    /// N(REKEY_SA): the ESP SPI of the child being rekeyed (§1.3.3), as
    /// its sender receives on it.
    pub(crate) rekey: Option<u32>,
    /// A REKEY_SA that does not name one ESP SPI.
    pub(crate) rekey_malformed: bool,
}

/// Error Notifies that refuse a child (or a rekey) and leave the IKE SA
/// standing (§1.2, §1.3, §2.25).
pub(crate) fn is_child_error(n: NotifyType) -> bool {
    matches!(
        n,
        NotifyType::NoProposalChosen
            | NotifyType::TsUnacceptable
            | NotifyType::SinglePairRequired
            | NotifyType::InternalAddressFailure
            | NotifyType::FailedCpRequired
            | NotifyType::InvalidKePayload
            | NotifyType::NoAdditionalSas
            | NotifyType::InvalidSelectors
            | NotifyType::TemporaryFailure
            | NotifyType::ChildSaNotFound
    )
}

impl ChildPayloads {
    /// Keeps `p` if it is about the child; false otherwise.
    pub(crate) fn absorb(&mut self, p: &Payload<'_>, at: usize) -> bool {
        match p {
            Payload::Sa(sa) => self.sa = Some((sa.body().to_vec(), at)),
            Payload::Ke(ke) => self.ke = Some((ke.group, ke.data.to_vec())),
            Payload::Nonce(n) => self.nonce = Some(n.nonce.to_vec()),
            Payload::TsI(ts) => self.tsi = Some(ts.selectors().collect()),
            Payload::TsR(ts) => self.tsr = Some(ts.selectors().collect()),
            Payload::Notify(n) if is_child_error(n.kind) => {
                if self.error.is_none() {
                    self.error = Some(n.kind);
                    self.error_data = n.data.to_vec();
                }
            }
            Payload::Notify(n) if n.kind == NotifyType::RekeySa => match <[u8; 4]>::try_from(n.spi) {
                Ok(spi) if n.protocol == ProtocolId::Esp && self.rekey.is_none() => {
                    self.rekey = Some(u32::from_be_bytes(spi));
                }
                _ => self.rekey_malformed = true,
            },
            _ => return false,
        }
        true
    }

    /// True if the message carries a child request or answer.
    pub(crate) fn present(&self) -> bool {
        self.sa.is_some() || self.tsi.is_some() || self.tsr.is_some()
    }

    pub(crate) fn sa(&self) -> Result<SaPayload<'_>, ChildError> {
        let (body, at) = self.sa.as_ref().ok_or(ChildError::Missing("SA"))?;
        SaPayload::parse(body, *at).map_err(|_| ChildError::Missing("a well-formed SA"))
    }

    pub(crate) fn selectors(&self) -> Result<(&[TrafficSelector], &[TrafficSelector]), ChildError> {
        match (&self.tsi, &self.tsr) {
            (Some(i), Some(r)) if !i.is_empty() && !r.is_empty() => Ok((i, r)),
            _ => Err(ChildError::Missing("TSi and TSr")),
        }
    }

    /// The responder's choice: an ESP proposal (with `dh` when PFS) and
    /// the one configured proxy-ID the selectors cover.
    pub(crate) fn choose(
        &self,
        config: &ChildConfig,
        dh: DhRule,
    ) -> Result<(ChosenEsp, ProxyId), ChildError> {
        let (tsi, tsr) = self.selectors()?;
        let chosen = choose_esp(&self.sa()?, config, dh)?;
        Ok((chosen, narrow(tsi, tsr, &config.proxy_ids)?))
    }
}

/// Appends TSi and TSr.
pub(crate) fn push_selectors(chain: &mut PayloadChain, tsi: &[TrafficSelector], tsr: &[TrafficSelector]) {
    chain.push_with(PayloadType::TsI, false, |out| TrafficSelector::emit_payload(tsi, out));
    chain.push_with(PayloadType::TsR, false, |out| TrafficSelector::emit_payload(tsr, out));
}

/// Appends the responder's SA, TSi and TSr for `proxy_id` (configured
/// from the responder's side: its remote is the initiator's TSi).
pub(crate) fn push_answer(chain: &mut PayloadChain, chosen: &ChosenEsp, spi_in: u32, proxy_id: &ProxyId) {
    chain.push_with(PayloadType::Sa, false, |out| chosen.emit_answer(spi_in, out));
    let (local, remote) = proxy_selectors(proxy_id);
    push_selectors(chain, &[remote], &[local]);
}

/// Appends an error Notify about an ESP child (§3.10.1); `data` as the
/// type wants (INVALID_KE_PAYLOAD: the group, §1.3).
pub(crate) fn push_error(chain: &mut PayloadChain, kind: NotifyType, data: &[u8]) {
    chain.push_payload(&Payload::Notify(NotifyPayload { protocol: ProtocolId::None, kind, spi: &[], data }));
}

/// What the child's keys and SA record are made from.
pub(crate) struct ChildParts<'a> {
    pub(crate) x: &'a InitExchange,
    pub(crate) chosen: ChosenEsp,
    pub(crate) proxy_id: ProxyId,
    pub(crate) spi_in: u32,
    /// True if this side initiated the exchange that made the child.
    pub(crate) initiator: bool,
    pub(crate) g_ir: Option<&'a [u8]>,
    pub(crate) ni: &'a [u8],
    pub(crate) nr: &'a [u8],
    pub(crate) message_id: u32,
    pub(crate) lifetime: Lifetime,
}

/// KEYMAT (§2.17) into a [`NewChild`]: the initiator-to-responder keys
/// come first, so they are the exchange initiator's outbound keys.
pub(crate) fn make_child(c: ChildParts<'_>) -> Result<NewChild, ChildError> {
    let ChildKeys { initiator_to_responder, responder_to_initiator } =
        c.x.keys.child_keys(c.chosen.suite, c.g_ir, c.ni, c.nr)?;
    let (keys_out, keys_in) = if c.initiator {
        (initiator_to_responder, responder_to_initiator)
    } else {
        (responder_to_initiator, initiator_to_responder)
    };
    let nat = c.x.nat.local_behind_nat || c.x.nat.remote_behind_nat;
    let encap = nat.then(|| UdpEncap { local_port: c.x.local.port(), remote_port: c.x.remote.port() });
    let (local, remote): (SocketAddr, SocketAddr) = (c.x.local, c.x.remote);
    Ok(NewChild {
        sa: ChildSa {
            proxy_id: c.proxy_id,
            suite: c.chosen.suite,
            spi_in: c.spi_in,
            spi_out: c.chosen.spi_peer,
            keys_in,
            keys_out,
            lifetime: c.lifetime,
            encap,
            local,
            remote,
            initiator: c.initiator,
            message_id: c.message_id,
            pfs: c.g_ir.is_some(),
            esn: c.chosen.esn,
        },
        esn: c.chosen.esn,
        lowest_nonce: c.ni.min(c.nr).to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> ProxyId {
        s.parse().unwrap()
    }

    #[test]
    fn prefix_to_range_and_cover() {
        let (l, r) = proxy_selectors(&pid("local-ip 10.1.0.0/16 remote-ip 10.2.1.128/25 HTTP"));
        assert_eq!(
            l.addresses,
            TsAddresses::V4 { start: Ipv4Addr::new(10, 1, 0, 0), end: Ipv4Addr::new(10, 1, 255, 255) }
        );
        assert_eq!(
            r.addresses,
            TsAddresses::V4 { start: Ipv4Addr::new(10, 2, 1, 128), end: Ipv4Addr::new(10, 2, 1, 255) }
        );
        assert_eq!((l.protocol, l.start_port, l.end_port, r.start_port, r.end_port), (6, 0, 65535, 80, 80));
        let (any, _) = proxy_selectors(&pid("local-ip 0.0.0.0/0 remote-ip 10.2.1.128/25 ANY"));
        assert!(covers(&any, &l) && !covers(&l, &any) && covers(&l, &l));
        assert!(!covers(&r, &TrafficSelector { start_port: 79, ..r }));
        assert!(!covers(&TrafficSelector { protocol: 17, ..any }, &l));
    }

    #[test]
    fn ipv6_ranges_and_packet_selectors() {
        let p = pid("local-ip 2001:db8:1::/48 remote-ip 2001:db8:2::/64 ANY");
        let (l, _) = proxy_selectors(&p);
        let want = TsAddresses::V6 {
            start: "2001:db8:1::".parse().unwrap(),
            end: "2001:db8:1:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
        };
        assert_eq!(l.addresses, want);
        let src: IpAddr = "2001:db8:1::5".parse().unwrap();
        let dst: IpAddr = "2001:db8:2::6".parse().unwrap();
        let (tsi, tsr) =
            request_selectors(&ChildRequest { proxy_id: p, packet: Some((src, dst)), spi_in: 1 });
        assert_eq!((tsi.len(), tsr.len()), (2, 2));
        assert_eq!(tsi[0].addresses, host_range(src));
        assert!(covers(&tsi[1], &tsi[0]) && covers(&tsr[1], &tsr[0]));
        // A packet outside the proxy-ID is not sent as a selector.
        let (tsi, _) = request_selectors(&ChildRequest { proxy_id: p, packet: Some((dst, src)), spi_in: 1 });
        assert_eq!(tsi, [l]);
        // The proxy-ID's own sides, not swapped, are not what a peer asks for.
        assert_eq!(
            narrow(&[l], &[proxy_selectors(&p).1], &[p]).unwrap_err().notify(),
            NotifyType::TsUnacceptable
        );
    }

    /// §2.9 from the initiator's side: the answer may narrow what was
    /// asked, never widen it, and must be a proxy-ID.
    #[test]
    fn initiator_takes_a_narrower_answer_only() {
        let asked = pid("local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 ANY");
        let (l, r) = proxy_selectors(&asked);
        let v4 = |a: &str, b: &str| TsAddresses::V4 { start: a.parse().unwrap(), end: b.parse().unwrap() };
        assert_eq!(check_answer_selectors(&[l], &[r], &asked).unwrap(), asked);
        // Narrower on both sides, and to TCP port 80 (HTTP).
        let nl = TrafficSelector { addresses: v4("10.1.1.0", "10.1.1.255"), protocol: 6, ..l };
        let nr = TrafficSelector {
            addresses: v4("10.2.3.4", "10.2.3.4"),
            protocol: 6,
            start_port: 80,
            end_port: 80,
        };
        assert_eq!(
            check_answer_selectors(&[nl], &[nr], &asked).unwrap(),
            pid("local-ip 10.1.1.0/24 remote-ip 10.2.3.4/32 HTTP")
        );
        // Wider on one side.
        let wide = TrafficSelector { addresses: v4("10.2.0.0", "10.3.255.255"), ..r };
        let e = check_answer_selectors(&[l], &[wide], &asked).unwrap_err();
        assert_eq!(
            e.to_string(),
            "answer not offered: answer TSi [10.1.0.0-10.1.255.255 proto 0 ports 0-65535] TSr \
             [10.2.0.0-10.3.255.255 proto 0 ports 0-65535] is not within the proxy-ID proposed \
             (local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 ANY)"
        );
        // Within, but not a prefix; two selectors a side; protocols that
        // differ between the sides.
        let odd = TrafficSelector { addresses: v4("10.2.0.1", "10.2.0.6"), ..r };
        assert!(check_answer_selectors(&[l], &[odd], &asked).is_err());
        assert!(check_answer_selectors(&[l, nl], &[r], &asked).is_err());
        assert!(check_answer_selectors(&[nl], &[TrafficSelector { protocol: 17, ..nr }], &asked).is_err());
        // Ports on "any protocol" are no proxy-ID.
        let ports = TrafficSelector { start_port: 80, end_port: 80, ..r };
        assert!(check_answer_selectors(&[l], &[ports], &asked).is_err());
    }

    /// §3.3.6: the answer is one of our proposals unchanged; a transform
    /// added (here a D-H group in IKE_AUTH's answer) is refused.
    #[test]
    fn answer_must_be_a_proposal_offered() {
        let config = ChildConfig {
            suites: vec![Suite::Aes128CbcSha1, Suite::Aes256Gcm16],
            esn: false,
            pfs: None,
            pfs_also: vec![],
            proxy_ids: vec![],
            lifetime: Lifetime { seconds: 0, kilobytes: 0 },
        };
        let answer = |num, t: Vec<TransformRepr>| {
            let mut out = Vec::new();
            ProposalRepr::emit_sa(
                &[ProposalRepr { num, protocol: ProtocolId::Esp, spi: vec![1, 2, 3, 4], transforms: t }],
                &mut out,
            );
            out
        };
        let good = answer(2, transforms(Suite::Aes256Gcm16, false, None));
        let got = check_answer(&SaPayload::parse(&good, 0).unwrap(), &config, DhRule::Ignore).unwrap();
        assert_eq!((got.num, got.suite, got.spi_peer, got.esn), (2, Suite::Aes256Gcm16, 0x0102_0304, false));
        let extra = answer(2, transforms(Suite::Aes256Gcm16, false, Some(DhGroup::Ecp256)));
        assert!(check_answer(&SaPayload::parse(&extra, 0).unwrap(), &config, DhRule::Ignore).is_err());
        let renumbered = answer(1, transforms(Suite::Aes256Gcm16, false, None));
        assert!(check_answer(&SaPayload::parse(&renumbered, 0).unwrap(), &config, DhRule::Ignore).is_err());
    }
}
