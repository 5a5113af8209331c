//! IKEv2 child SAs in memory (RFC 7296): the first in IKE_AUTH (§1.2),
//! further ones by CREATE_CHILD_SA (§1.3.1), with and without PFS; the
//! responder's narrowing (§2.9); refusals that leave the IKE SA standing;
//! message IDs and retransmissions (§2.1, §2.2).
//!
//! ```text
//! A (10.1.x)                                   B (10.2.x)
//! HDR(IKE_AUTH, 1), SK{IDi, IDr, AUTH, SAi2, TSi, TSr}  -->
//!                      <--  HDR(1), SK{IDr, AUTH, SAr2, TSi, TSr}
//! HDR(CREATE_CHILD_SA, 2), SK{SA, Ni, [KEi], TSi, TSr}  -->
//!                      <--  HDR(2), SK{SA, Nr, [KEr], TSi, TSr}
//! ... 3, 4
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use esprit_ike::v2::alg::{EncrAlg, IntegAlg, PrfAlg};
use esprit_ike::v2::auth::{Established, InitiatorAuthStep, PskAuth, ResponderAuthStep, WireIdentity};
use esprit_ike::v2::child::{
    describe, narrow, proxy_selectors, ChildConfig, ChildError, ChildRequest, NewChild,
};
use esprit_ike::v2::config::IkeSaProposal;
use esprit_ike::v2::create_child::{ChildResponse, ExchangeError, IkeSa, RequestOutcome};
use esprit_ike::v2::initiator::{InitiatorConfig, InitiatorStart, InitiatorStep};
use esprit_ike::v2::responder::{InitResponder, ResponderConfig};
use esprit_ike::v2::sk::SkCipher;
use esprit_ike::v2::wire::{Header, IdType, NotifyType, Payload, TrafficSelector, TsAddresses};
use esprit_ike::{DhGroup, Lifetime, Random, Suite};
use esprit_policy::ProxyId;
use esprit_testrng::TestRng;
use zeroize::Zeroizing;

struct Rng(TestRng);

impl Random for Rng {
    fn fill(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }
}

const I: &str = "198.51.100.1:500";
const R: &str = "203.0.113.1:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn pid(s: &str) -> ProxyId {
    s.parse().unwrap()
}

/// The seed's four proxy-IDs from A's side.
fn seed_proxy_ids() -> Vec<ProxyId> {
    let mut v = Vec::new();
    for l in ["10.1.1.0/24", "10.1.2.0/24"] {
        for r in ["10.2.1.0/24", "10.2.2.0/24"] {
            v.push(pid(&format!("local-ip {l} remote-ip {r} ANY")));
        }
    }
    v
}

/// The same proxy-ID from the peer's side (prefixes swapped; the
/// services used here have any source port, so they swap too).
fn mirror(p: &ProxyId) -> ProxyId {
    let s = p.to_string();
    let (l, rest) = s.strip_prefix("local-ip ").unwrap().split_once(" remote-ip ").unwrap();
    let (r, svc) = rest.split_once(' ').unwrap();
    assert!(p.service.src_ports().is_any());
    pid(&format!("local-ip {r} remote-ip {l} {svc}"))
}

fn child_config(proxy_ids: Vec<ProxyId>, pfs: Option<DhGroup>) -> ChildConfig {
    ChildConfig {
        suites: vec![Suite::Aes256Gcm16, Suite::Aes128CbcSha256],
        esn: true,
        pfs,
        pfs_also: vec![],
        proxy_ids,
        lifetime: Lifetime { seconds: 3600, kilobytes: 0 },
    }
}

fn psk(local: &str, remote: &str) -> PskAuth {
    let id = |s: &str| WireIdentity { kind: IdType::Fqdn, data: s.as_bytes().to_vec() };
    PskAuth { psk: Zeroizing::new(b"s3cret".to_vec()), local: id(local), remote: Some(id(remote)) }
}

/// IKE_SA_INIT and IKE_AUTH with `first` as the IKE_AUTH child; the
/// responder runs `rconf` with inbound SPI 0xb0000001.
fn establish(
    first: Option<ChildRequest>,
    iconf: &ChildConfig,
    rconf: &ChildConfig,
) -> (Box<Established>, Box<Established>, Rng, Rng) {
    let p = vec![IkeSaProposal {
        encr: vec![EncrAlg::AesCbc256],
        prf: vec![PrfAlg::HmacSha256],
        integ: vec![IntegAlg::HmacSha256_128],
        dh: vec![DhGroup::Ecp256],
    }];
    let mut ir = Rng(TestRng::new(31));
    let mut rr = Rng(TestRng::new(0x7777));
    let ini = InitiatorStart::new(InitiatorConfig::new(p.clone()), addr(I), addr(R))
        .unwrap()
        .start(&mut ir)
        .unwrap();
    let mut resp = InitResponder::new(ResponderConfig::new(p), &mut rr).unwrap();
    let reply = resp.respond(ini.request(), addr(R), addr(I), 0, Instant::now(), &mut rr);
    let InitiatorStep::Done(d) = ini.handle_response(reply.answer().unwrap(), &mut ir) else { panic!() };
    let r = resp.take(addr(I), d.0.spi_i).unwrap();
    let sent =
        d.send_auth_with_child(psk("a.example", "b.example"), first.map(|f| (f, iconf.clone())), &mut ir);
    let sent = sent.unwrap();
    let step = r.handle_auth_with_child(
        sent.request(),
        &psk("b.example", "a.example"),
        Some((rconf, 0xb000_0001)),
        &mut rr,
    );
    let ResponderAuthStep::Established(re) = step else { panic!("{step:?}") };
    let InitiatorAuthStep::Established(ie) = sent.handle_response(&re.last_response) else { panic!() };
    (ie, re, ir, rr)
}

/// Inbound of one is outbound of the other, byte for byte; SPIs crossed.
fn assert_pair(a: &NewChild, b: &NewChild) {
    let (a, b) = (&a.sa, &b.sa);
    assert_eq!((a.spi_in, a.spi_out), (b.spi_out, b.spi_in));
    assert_eq!(*a.keys_out.encryption, *b.keys_in.encryption);
    assert_eq!(*a.keys_out.integrity, *b.keys_in.integrity);
    assert_eq!(*a.keys_in.encryption, *b.keys_out.encryption);
    assert_ne!(*a.keys_in.encryption, *a.keys_out.encryption);
    assert_eq!((a.suite, a.pfs, a.message_id), (b.suite, b.pfs, b.message_id));
    assert_eq!(b.proxy_id, mirror(&a.proxy_id));
    assert!(a.initiator != b.initiator);
}

/// The payload types inside a protected message, opened as `initiator`.
fn inner(x: &Established, as_initiator: bool, msg: &[u8]) -> Vec<String> {
    let opened = SkCipher::new(&x.exchange.keys, as_initiator).unwrap().open(msg).unwrap();
    opened
        .payloads()
        .map(|r| match Payload::parse(&r.unwrap()).unwrap() {
            Payload::Notify(n) => format!("N({:?}, {})", n.kind, hex::encode(n.data)),
            p => format!("{:?}", p.kind()),
        })
        .collect()
}

/// TSi and TSr inside a protected message, in words.
fn selectors(x: &Established, as_initiator: bool, msg: &[u8]) -> Vec<String> {
    let opened = SkCipher::new(&x.exchange.keys, as_initiator).unwrap().open(msg).unwrap();
    let mut out = Vec::new();
    for r in opened.payloads() {
        match Payload::parse(&r.unwrap()).unwrap() {
            Payload::TsI(t) => out.push(format!("TSi {}", describe(&t.selectors().collect::<Vec<_>>()))),
            Payload::TsR(t) => out.push(format!("TSr {}", describe(&t.selectors().collect::<Vec<_>>()))),
            _ => {}
        }
    }
    out
}

/// One CREATE_CHILD_SA from `a` to `b`.
fn create(
    a: &mut IkeSa,
    b: &mut IkeSa,
    req: ChildRequest,
    aconf: &ChildConfig,
    bconf: &ChildConfig,
    b_spi: u32,
    (ar, br): (&mut Rng, &mut Rng),
) -> (ChildResponse, Result<Box<NewChild>, ChildError>, Vec<u8>, Vec<u8>) {
    let pending = a.create_child(req, aconf, ar).unwrap();
    let request = pending.request().to_vec();
    let RequestOutcome::Answered { response, child } = b.handle_request(&request, bconf, b_spi, br) else {
        panic!()
    };
    (a.handle_child_response(pending, &response), child, request, response)
}

#[test]
fn seed_four_proxy_ids_each_on_its_own_child() {
    let ids = seed_proxy_ids();
    let iconf = child_config(ids.clone(), None);
    let rconf = child_config(ids.iter().map(mirror).collect(), None);
    let packet: (IpAddr, IpAddr) = ("10.1.1.7".parse().unwrap(), "10.2.1.9".parse().unwrap());
    let first = ChildRequest { proxy_id: ids[0], packet: Some(packet), spi_in: 0xa000_0001 };
    let (ie, re, mut ir, mut rr) = establish(Some(first), &iconf, &rconf);
    assert_eq!(
        inner(&re, false, &re.last_request),
        ["IdI", "IdR", "Auth", "Sa", "TsI", "TsR"].map(String::from)
    );
    // §2.9: the packet's own addresses first, then the proxy-ID's ranges.
    assert_eq!(
        selectors(&re, false, &re.last_request),
        [
            "TSi [10.1.1.7-10.1.1.7 proto 0 ports 0-65535, 10.1.1.0-10.1.1.255 proto 0 ports 0-65535]",
            "TSr [10.2.1.9-10.2.1.9 proto 0 ports 0-65535, 10.2.1.0-10.2.1.255 proto 0 ports 0-65535]",
        ]
    );
    assert_eq!(
        selectors(&ie, true, &re.last_response),
        [
            "TSi [10.1.1.0-10.1.1.255 proto 0 ports 0-65535]",
            "TSr [10.2.1.0-10.2.1.255 proto 0 ports 0-65535]"
        ]
    );
    let (ic, rc) = (ie.child.clone().unwrap(), re.child.clone().unwrap());
    assert_eq!((ic.sa.spi_in, ic.sa.spi_out, ic.esn), (0xa000_0001, 0xb000_0001, true));
    assert_eq!(
        (ic.sa.proxy_id, ic.sa.suite, ic.sa.message_id, ic.sa.pfs),
        (ids[0], Suite::Aes256Gcm16, 1, false)
    );
    assert_pair(&ic, &rc);
    // §2.17: KEYMAT = prf+(SK_d, Ni | Nr), initiator-to-responder first.
    let x = &ie.exchange;
    let km = x.keys.child_keys(Suite::Aes256Gcm16, None, &x.ni, &x.nr).unwrap();
    assert_eq!(*ic.sa.keys_out.encryption, *km.initiator_to_responder.encryption);
    assert_eq!(*rc.sa.keys_out.encryption, *km.responder_to_initiator.encryption);
    assert_eq!(ic.sa.keys_out.encryption.len(), 36);

    let (mut a, mut b) = (IkeSa::new(*ie, true), IkeSa::new(*re, false));
    for (n, p) in ids.iter().enumerate().skip(1) {
        let n = n as u32;
        let req = ChildRequest { proxy_id: *p, packet: None, spi_in: 0xa000_0001 + n };
        let (resp, child, request, response) =
            create(&mut a, &mut b, req, &iconf, &rconf, 0xb000_0001 + n, (&mut ir, &mut rr));
        assert_eq!(Header::parse(&request).unwrap().message_id, n + 1);
        assert_eq!(inner(b.established(), false, &request), ["Sa", "Nonce", "TsI", "TsR"].map(String::from));
        assert_eq!(inner(a.established(), true, &response), ["Sa", "Nonce", "TsI", "TsR"].map(String::from));
        let ChildResponse::Created(ic) = resp else { panic!("{resp:?}") };
        let rc = child.unwrap();
        assert_eq!(
            (ic.sa.spi_in, ic.sa.spi_out, ic.sa.message_id),
            (0xa000_0001 + n, 0xb000_0001 + n, n + 1)
        );
        assert_eq!(ic.sa.proxy_id, *p);
        assert_pair(&ic, &rc);
    }
}

#[test]
fn pfs_on_and_off() {
    let ids = seed_proxy_ids();
    for pfs in [None, Some(DhGroup::Ecp256), Some(DhGroup::Modp2048), Some(DhGroup::Curve25519)] {
        let iconf = child_config(ids.clone(), pfs);
        let rconf = child_config(ids.iter().map(mirror).collect(), pfs);
        let (ie, re, mut ir, mut rr) = establish(None, &iconf, &rconf);
        assert!(ie.child.is_none() && re.child.is_none() && ie.child_error.is_none());
        let (mut a, mut b) = (IkeSa::new(*ie, true), IkeSa::new(*re, false));
        // The responder of the IKE SA initiates this one (§2.2: its IDs
        // start at 0; the I flag stays the original initiator's, §3.1).
        let req = ChildRequest { proxy_id: mirror(&ids[3]), packet: None, spi_in: 0xb000_0007 };
        let (resp, child, request, response) =
            create(&mut b, &mut a, req, &rconf, &iconf, 0xa000_0007, (&mut rr, &mut ir));
        let h = Header::parse(&request).unwrap();
        assert_eq!((h.message_id, h.from_initiator(), h.is_response()), (0, false, false));
        let with_ke: &[&str] =
            if pfs.is_some() { &["Sa", "Nonce", "Ke", "TsI", "TsR"] } else { &["Sa", "Nonce", "TsI", "TsR"] };
        assert_eq!(inner(a.established(), true, &request), with_ke);
        assert_eq!(inner(b.established(), false, &response), with_ke);
        let ChildResponse::Created(bc) = resp else { panic!("{resp:?}") };
        let ac = child.unwrap();
        assert_pair(&bc, &ac);
        assert_eq!((bc.sa.pfs, bc.sa.message_id, bc.sa.initiator), (pfs.is_some(), 0, true));
        assert_eq!(bc.sa.keys_out.encryption.len(), 36);
    }
}

#[test]
fn retransmitted_request_is_answered_from_memory_without_a_second_child() {
    let ids = seed_proxy_ids();
    let iconf = child_config(ids.clone(), Some(DhGroup::Ecp256));
    let rconf = child_config(ids.iter().map(mirror).collect(), Some(DhGroup::Ecp256));
    let (ie, re, mut ir, mut rr) = establish(None, &iconf, &rconf);
    // §2.1: the IKE_AUTH request, resent, is answered from memory too.
    let auth = (re.last_request.clone(), re.last_response.clone());
    let (mut a, mut b) = (IkeSa::new(*ie, true), IkeSa::new(*re, false));
    let RequestOutcome::Retransmit(again) = b.handle_request(&auth.0, &rconf, 1, &mut rr) else { panic!() };
    assert_eq!(again, auth.1);

    let req = ChildRequest { proxy_id: ids[1], packet: None, spi_in: 0xa000_0002 };
    let pending = a.create_child(req, &iconf, &mut ir).unwrap();
    assert_eq!(a.create_child(req, &iconf, &mut ir).unwrap_err(), ExchangeError::Busy);
    let RequestOutcome::Answered { response, child } =
        b.handle_request(pending.request(), &rconf, 0xb2, &mut rr)
    else {
        panic!()
    };
    child.unwrap();
    for _ in 0..2 {
        let out = b.handle_request(pending.request(), &rconf, 0xb3, &mut rr);
        let RequestOutcome::Retransmit(again) = out else { panic!("{out:?}") };
        assert_eq!(again, response);
    }
    // The same ID with other bytes, and IDs out of the window, are dropped.
    let mut forged = pending.request().to_vec();
    *forged.last_mut().unwrap() ^= 1;
    let out = b.handle_request(&forged, &rconf, 0xb4, &mut rr);
    assert!(
        matches!(out, RequestOutcome::Dropped(ExchangeError::OutOfWindow { got: 2, expected: 3 })),
        "{out:?}"
    );
    let mut ahead = pending.request().to_vec();
    ahead[20..24].copy_from_slice(&7u32.to_be_bytes());
    let out = b.handle_request(&ahead, &rconf, 0xb4, &mut rr);
    assert!(
        matches!(out, RequestOutcome::Dropped(ExchangeError::OutOfWindow { got: 7, expected: 3 })),
        "{out:?}"
    );
    // A response under another ID, or that does not open, is ignored; the
    // real one makes the child.
    let mut other_id = response.clone();
    other_id[20..24].copy_from_slice(&9u32.to_be_bytes());
    let step = a.handle_child_response(pending, &other_id);
    let ChildResponse::Ignored(pending, ExchangeError::OutOfWindow { got: 9, expected: 2 }) = step else {
        panic!("{step:?}")
    };
    let mut bad = response.clone();
    *bad.last_mut().unwrap() ^= 1;
    let ChildResponse::Ignored(pending, ExchangeError::Sk(_)) = a.handle_child_response(*pending, &bad)
    else {
        panic!()
    };
    let ChildResponse::Created(c) = a.handle_child_response(*pending, &response) else { panic!() };
    assert_eq!((c.sa.spi_in, c.sa.spi_out, c.sa.message_id), (0xa000_0002, 0xb2, 2));
    // The next request goes on under ID 3.
    let req = ChildRequest { proxy_id: ids[2], packet: None, spi_in: 0xa000_0003 };
    let (resp, child, request, _) = create(&mut a, &mut b, req, &iconf, &rconf, 0xb5, (&mut ir, &mut rr));
    assert_eq!(Header::parse(&request).unwrap().message_id, 3);
    assert!(matches!(resp, ChildResponse::Created(_)) && child.is_ok());
}

#[test]
fn refusals_leave_the_ike_sa_standing() {
    let ids = seed_proxy_ids();
    let iconf = child_config(ids.clone(), Some(DhGroup::Ecp256));
    let mut rconf = child_config(ids.iter().map(mirror).collect(), Some(DhGroup::Modp2048));
    // IKE_AUTH: a proxy-ID the responder does not have is TS_UNACCEPTABLE,
    // and the IKE SA comes up all the same (§1.2).
    let stranger = pid("local-ip 10.1.9.0/24 remote-ip 10.2.1.0/24 ANY");
    let first = ChildRequest { proxy_id: stranger, packet: None, spi_in: 0xa1 };
    let (ie, re, mut ir, mut rr) = establish(Some(first), &iconf, &rconf);
    assert_eq!(inner(&ie, true, &re.last_response), ["IdR", "Auth", "N(TsUnacceptable, )"].map(String::from));
    assert_eq!(ie.child_error, Some(ChildError::Refused(NotifyType::TsUnacceptable)));
    assert_eq!(
        re.child_error.as_ref().unwrap().to_string(),
        "traffic selectors refused: TSi [10.1.9.0-10.1.9.255 proto 0 ports 0-65535] TSr \
         [10.2.1.0-10.2.1.255 proto 0 ports 0-65535] covers none of the configured proxy-IDs: \
         (local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY), (local-ip 10.2.2.0/24 remote-ip 10.1.1.0/24 ANY), \
         (local-ip 10.2.1.0/24 remote-ip 10.1.2.0/24 ANY), (local-ip 10.2.2.0/24 remote-ip 10.1.2.0/24 ANY)"
    );
    let (mut a, mut b) = (IkeSa::new(*ie, true), IkeSa::new(*re, false));
    let req = |i: usize, spi| ChildRequest { proxy_id: ids[i], packet: None, spi_in: spi };

    // PFS groups that differ: no proposal in common (only 19 offered).
    let (resp, child, _, response) =
        create(&mut a, &mut b, req(0, 0xa2), &iconf, &rconf, 0xb2, (&mut ir, &mut rr));
    let e = child.unwrap_err();
    assert!(e.to_string().ends_with("with ESN on, PFS group 14"), "{e}");
    assert_eq!(inner(a.established(), true, &response), ["N(NoProposalChosen, )"]);
    assert!(matches!(resp, ChildResponse::Failed(ChildError::Refused(NotifyType::NoProposalChosen))));

    // No suite in common: NO_PROPOSAL_CHOSEN.
    rconf.pfs = Some(DhGroup::Ecp256);
    rconf.suites = vec![Suite::Aes128CbcSha1];
    let (resp, child, _, _) = create(&mut a, &mut b, req(0, 0xa3), &iconf, &rconf, 0xb3, (&mut ir, &mut rr));
    assert!(matches!(child.unwrap_err(), ChildError::NoProposalChosen(_)));
    assert!(matches!(resp, ChildResponse::Failed(ChildError::Refused(NotifyType::NoProposalChosen))));

    // PFS asked for, not configured: the responder does not drop the D-H
    // transform from a proposal, it refuses (§3.3.6).
    rconf.suites = iconf.suites.clone();
    rconf.pfs = None;
    let (_, child, _, _) = create(&mut a, &mut b, req(0, 0xa6), &iconf, &rconf, 0xb6, (&mut ir, &mut rr));
    assert!(child.unwrap_err().to_string().ends_with("with ESN on, no PFS"));
    rconf.pfs = Some(DhGroup::Ecp256);

    // ESN asked for, not configured: NO_PROPOSAL_CHOSEN.
    rconf.esn = false;
    let (_, child, _, _) = create(&mut a, &mut b, req(0, 0xa4), &iconf, &rconf, 0xb4, (&mut ir, &mut rr));
    assert!(matches!(child.unwrap_err(), ChildError::NoProposalChosen(_)));

    // The IKE SA still makes children, under the next message ID.
    rconf.esn = true;
    let (resp, child, request, _) =
        create(&mut a, &mut b, req(0, 0xa5), &iconf, &rconf, 0xb5, (&mut ir, &mut rr));
    assert_eq!(Header::parse(&request).unwrap().message_id, 6);
    let ChildResponse::Created(c) = resp else { panic!("{resp:?}") };
    assert_pair(&c, &child.unwrap());
    assert!(c.sa.pfs);
}

/// A CREATE_CHILD_SA request made by hand: ESP with D-H 14 and 19
/// offered, KEi of 19.
fn offer_two_groups_ke_of_19(x: &Established, message_id: u32, rng: &mut Rng) -> Vec<u8> {
    let secret = esprit_ike::crypto::dh::DhSecret::generate(DhGroup::Ecp256, rng);
    offer_ke(x, message_id, &[19, 14], 19, secret.public(), rng)
}

/// A CREATE_CHILD_SA request made by hand for the seed's first proxy-ID:
/// ESP with the D-H groups `groups` offered, a KEi of `group` holding
/// `value`.
fn offer_ke(
    x: &Established,
    message_id: u32,
    groups: &[u16],
    group: u16,
    value: &[u8],
    rng: &mut Rng,
) -> Vec<u8> {
    use esprit_ike::v2::wire::{
        transform_id, ExchangeType, KePayload, PayloadChain, PayloadType, ProposalRepr, ProtocolId,
        TransformRepr, TransformType, FLAG_INITIATOR,
    };
    let t = |kind, id, key_length| TransformRepr { kind, id, key_length };
    let proposal = ProposalRepr {
        num: 1,
        protocol: ProtocolId::Esp,
        spi: vec![0xa0, 0, 0, 9],
        transforms: [t(TransformType::Encr, transform_id::ENCR_AES_GCM_16, Some(256))]
            .into_iter()
            .chain(groups.iter().map(|g| t(TransformType::Dh, *g, None)))
            .chain([t(TransformType::Esn, transform_id::ESN_ON, None)])
            .collect(),
    };
    let mut chain = PayloadChain::new();
    chain.push_with(PayloadType::Sa, false, |out| ProposalRepr::emit_sa(&[proposal], out));
    chain.push(PayloadType::Nonce, &[7; 32]);
    chain.push_payload(&Payload::Ke(KePayload { group, data: value }));
    let (l, r) = proxy_selectors(&seed_proxy_ids()[0]);
    chain.push_with(PayloadType::TsI, false, |out| TrafficSelector::emit_payload(&[l], out));
    chain.push_with(PayloadType::TsR, false, |out| TrafficSelector::emit_payload(&[r], out));
    let header = Header {
        spi_i: x.exchange.spi_i,
        spi_r: x.exchange.spi_r,
        next_payload: 0,
        exchange: ExchangeType::CreateChildSa,
        flags: FLAG_INITIATOR,
        message_id,
        length: 0,
    };
    let mut cipher = SkCipher::new(&x.exchange.keys, true).unwrap();
    cipher.seal(&header, &chain, rng).unwrap()
}

/// An IKE SA between A (PFS `a_pfs`) and B (PFS `b_pfs`), the seed's
/// proxy-IDs on both: A's end, B's IKE SA and child configuration, and
/// the two random sources.
fn pfs_responder(a_pfs: DhGroup, b_pfs: DhGroup) -> (Box<Established>, IkeSa, ChildConfig, Rng, Rng) {
    let ids = seed_proxy_ids();
    let iconf = child_config(ids.clone(), Some(a_pfs));
    let rconf = child_config(ids.iter().map(mirror).collect(), Some(b_pfs));
    let (ie, re, ir, rr) = establish(None, &iconf, &rconf);
    (ie, IkeSa::new(*re, false), rconf, ir, rr)
}

#[test]
fn invalid_ke_payload_names_the_group_wanted() {
    let ids = seed_proxy_ids();
    let iconf = child_config(ids.clone(), Some(DhGroup::Ecp256));
    let (ie, mut b, rconf, mut ir, mut rr) = pfs_responder(DhGroup::Ecp256, DhGroup::Modp2048);
    let request = offer_two_groups_ke_of_19(&ie, 2, &mut ir);
    let RequestOutcome::Answered { response, child } = b.handle_request(&request, &rconf, 0xb3, &mut rr)
    else {
        panic!()
    };
    assert_eq!(child.unwrap_err(), ChildError::InvalidKe { got: 19, want: 14 });
    assert_eq!(inner(&ie, true, &response), ["N(InvalidKePayload, 000e)"]);
    // A's own request under ID 2 is not the one B answered under it:
    // dropped, not answered from memory (§2.2).
    let mut a = IkeSa::new(*ie, true);
    let req = ChildRequest { proxy_id: ids[0], packet: None, spi_in: 0xa3 };
    let pending = a.create_child(req, &iconf, &mut ir).unwrap();
    let out = b.handle_request(pending.request(), &rconf, 0xb4, &mut rr);
    assert!(
        matches!(out, RequestOutcome::Dropped(ExchangeError::OutOfWindow { got: 2, expected: 3 })),
        "{out:?}"
    );
}

/// CREATE_CHILD_SA with Curve25519 PFS (RFC 8031): KEi values that are
/// not 32 bytes, or of small order (an all-zero shared secret, §2), are
/// refused with INVALID_SYNTAX and make no child; the IKE SA goes on and
/// makes the child with a good value under the next message ID.
#[test]
fn curve25519_pfs_refuses_hostile_ke_values() {
    let (ie, mut b, rconf, mut ir, mut rr) = pfs_responder(DhGroup::Curve25519, DhGroup::Curve25519);
    let order8 = hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800").unwrap();
    let hostile: [(&[u8], &str); 4] = [
        (&[9; 31], "DH group 31: public value of 31 bytes, expected 32"),
        (&[9; 64], "DH group 31: public value of 64 bytes, expected 32"),
        (&[0; 32], "DH group 31: public value of small order (all-zero shared secret)"),
        (&order8, "DH group 31: public value of small order (all-zero shared secret)"),
    ];
    for (id, (value, why)) in (2..).zip(hostile) {
        let request = offer_ke(&ie, id, &[31], 31, value, &mut ir);
        let RequestOutcome::Answered { response, child } = b.handle_request(&request, &rconf, 0xb3, &mut rr)
        else {
            panic!()
        };
        assert_eq!(child.unwrap_err(), ChildError::Dh(why.to_string()));
        assert_eq!(inner(&ie, true, &response), ["N(InvalidSyntax, )"]);
    }
    let secret = esprit_ike::crypto::dh::DhSecret::generate(DhGroup::Curve25519, &mut ir);
    let request = offer_ke(&ie, 6, &[31], 31, secret.public(), &mut ir);
    let RequestOutcome::Answered { response, child } = b.handle_request(&request, &rconf, 0xb7, &mut rr)
    else {
        panic!()
    };
    let c = child.unwrap();
    assert_eq!((c.sa.spi_in, c.sa.message_id, c.sa.pfs), (0xb7, 6, true));
    assert_eq!(inner(&ie, true, &response), ["Sa", "Nonce", "Ke", "TsI", "TsR"]);
}

fn ts(s: &str, protocol: u8, ports: (u16, u16)) -> TrafficSelector {
    let (a, b) = s.split_once('-').unwrap();
    TrafficSelector {
        protocol,
        start_port: ports.0,
        end_port: ports.1,
        addresses: TsAddresses::V4 { start: a.parse().unwrap(), end: b.parse().unwrap() },
    }
}

const ALL: (u16, u16) = (0, 65535);

/// §2.9 from the responder's side: B has 10.2.1.0/24 <-> 10.1.1.0/24 ANY,
/// 10.2.2.0/24 <-> 10.1.1.0/24 ANY, and 10.2.3.0/24 <-> 10.1.1.0/24 HTTP.
#[test]
fn narrowing() {
    let conf: Vec<ProxyId> = [
        "local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY",
        "local-ip 10.2.2.0/24 remote-ip 10.1.1.0/24 ANY",
        "local-ip 10.2.3.0/24 remote-ip 10.1.1.0/24 HTTP",
    ]
    .map(pid)
    .to_vec();
    let a_side = ts("10.1.1.0-10.1.1.255", 0, ALL);
    // Equal.
    let got = narrow(&[a_side], &[ts("10.2.1.0-10.2.1.255", 0, ALL)], &conf).unwrap();
    assert_eq!(got, conf[0]);
    // A superset holding one: TSr 10.2.0.0-10.2.1.255 holds only the first.
    let wide_i = ts("10.1.0.0-10.1.255.255", 0, ALL);
    assert_eq!(narrow(&[wide_i], &[ts("10.2.0.0-10.2.1.255", 0, ALL)], &conf).unwrap(), conf[0]);
    // With the packet's addresses first (§2.9), still the one covered.
    let pkt = (ts("10.1.1.5-10.1.1.5", 0, ALL), ts("10.2.1.6-10.2.1.6", 0, ALL));
    assert_eq!(
        narrow(&[pkt.0, wide_i], &[pkt.1, ts("10.2.1.0-10.2.1.255", 0, ALL)], &conf).unwrap(),
        conf[0]
    );
    // A superset holding two is refused, in words naming both.
    let e = narrow(&[a_side], &[ts("10.2.0.0-10.2.2.255", 0, ALL)], &conf).unwrap_err();
    assert_eq!(
        e.to_string(),
        "traffic selectors refused: TSi [10.1.1.0-10.1.1.255 proto 0 ports 0-65535] TSr \
         [10.2.0.0-10.2.2.255 proto 0 ports 0-65535] covers 2 configured proxy-IDs \
         ((local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY), (local-ip 10.2.2.0/24 remote-ip 10.1.1.0/24 ANY)); \
         a child must carry exactly one"
    );
    assert_eq!(e.notify(), NotifyType::TsUnacceptable);
    // Disjoint, and narrower than configured (never narrowed up).
    assert!(narrow(&[a_side], &[ts("10.2.9.0-10.2.9.255", 0, ALL)], &conf).is_err());
    assert!(narrow(&[a_side], &[ts("10.2.1.0-10.2.1.127", 0, ALL)], &conf).is_err());
    // Protocol and ports: B's HTTP is TCP to port 80 on B's remote side,
    // A (TSi), from any port on B's side (TSr).
    let http_i = ts("10.1.1.0-10.1.1.255", 6, (80, 80));
    let b3 = |protocol, ports| ts("10.2.3.0-10.2.3.255", protocol, ports);
    assert_eq!(narrow(&[http_i], &[b3(6, ALL)], &conf).unwrap(), conf[2]);
    assert_eq!(narrow(&[a_side], &[b3(0, ALL)], &conf).unwrap(), conf[2]);
    assert_eq!(narrow(&[ts("10.1.1.0-10.1.1.255", 6, ALL)], &[b3(6, ALL)], &conf).unwrap(), conf[2]);
    assert!(narrow(&[ts("10.1.1.0-10.1.1.255", 17, ALL)], &[b3(0, ALL)], &conf).is_err());
    assert!(narrow(&[ts("10.1.1.0-10.1.1.255", 6, (1024, 65535))], &[b3(6, ALL)], &conf).is_err());
    assert!(narrow(&[http_i], &[b3(6, (81, 65535))], &conf).is_err());
    // The selectors of a proxy-ID with a service, for reference.
    let (l, r) = proxy_selectors(&conf[2]);
    assert_eq!((l.protocol, l.start_port, l.end_port, r.start_port, r.end_port), (6, 0, 65535, 80, 80));
}

/// End to end: A asks for 10.1.1.0/24 <-> 10.2.0.0/16 with the packet
/// first; B has one proxy-ID inside and narrows to it; A takes the
/// narrower child, which carries B's proxy-ID from A's side.
#[test]
fn superset_narrowed_by_the_responder_and_checked_by_the_initiator() {
    let wide = pid("local-ip 10.1.1.0/24 remote-ip 10.2.0.0/16 ANY");
    let b_has = pid("local-ip 10.2.1.0/24 remote-ip 10.1.1.0/24 ANY");
    let iconf = child_config(vec![wide], None);
    let rconf = child_config(vec![b_has], None);
    let packet = Some(("10.1.1.7".parse().unwrap(), "10.2.1.9".parse().unwrap()));
    let first = ChildRequest { proxy_id: wide, packet, spi_in: 0xa1 };
    let (ie, re, _, _) = establish(Some(first), &iconf, &rconf);
    assert_eq!(re.child.as_ref().unwrap().sa.proxy_id, b_has);
    assert!(ie.child_error.is_none(), "{:?}", ie.child_error);
    assert_eq!(ie.child.as_ref().unwrap().sa.proxy_id, mirror(&b_has));
    assert_pair(ie.child.as_ref().unwrap(), re.child.as_ref().unwrap());
}
