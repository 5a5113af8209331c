//! IKEv2 IKE_SA_INIT (RFC 7296 §1.2) between an initiator and a
//! responder in memory: keys agreed on both ends, COOKIE (§2.6),
//! INVALID_KE_PAYLOAD (§1.3), NO_PROPOSAL_CHOSEN (§2.7), tampered
//! messages answered with the Notify the RFC names or with silence
//! (§2.21.1), retransmitted requests answered with the same bytes (§2.1);
//! then IKE_AUTH with a pre-shared key (§2.15): a wrong PSK, a tampered
//! or unexpected identity and a wrong responder AUTH each fail.
//! Each exchange is drawn where a test depends on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use esprit_ike::v2::alg::{EncrAlg, IntegAlg, PrfAlg};
use esprit_ike::v2::auth::{AuthError, InitiatorAuthStep, PskAuth, ResponderAuthStep, WireIdentity};
use esprit_ike::v2::config::IkeSaProposal;
use esprit_ike::v2::init::{nat_hash, InitExchange, InitReason};
use esprit_ike::v2::initiator::{
    InitDone, InitError, InitiatorConfig, InitiatorSentInit, InitiatorStart, InitiatorStep,
};
use esprit_ike::v2::responder::{InitResponder, Reply, ResponderConfig, ResponderInitDone};
use esprit_ike::v2::sk::{SkCipher, SkError};
use esprit_ike::v2::wire::{
    AuthMethod, AuthPayload, ExchangeType, Header, IdPayload, IdType, NotifyPayload, NotifyType, Payload,
    PayloadChain, PayloadIter, PayloadType, FLAG_RESPONSE, HEADER_LEN,
};
use esprit_ike::{DhGroup, Random};
use esprit_testrng::TestRng;
use zeroize::Zeroizing;

struct Rng(TestRng);

impl Random for Rng {
    fn fill(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }
}

fn rng(seed: u64) -> Rng {
    Rng(TestRng::new(seed))
}

const I: &str = "198.51.100.1:500";
const R: &str = "203.0.113.1:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// AES-GCM-256, HMAC-SHA-384, ECP 256.
fn gcm(dh: &[DhGroup]) -> IkeSaProposal {
    IkeSaProposal {
        encr: vec![EncrAlg::AesGcm16_256],
        prf: vec![PrfAlg::HmacSha384],
        integ: vec![],
        dh: dh.to_vec(),
    }
}

/// AES-CBC-256, HMAC-SHA-256 (PRF and integrity).
fn cbc(dh: &[DhGroup]) -> IkeSaProposal {
    IkeSaProposal {
        encr: vec![EncrAlg::AesCbc256],
        prf: vec![PrfAlg::HmacSha256],
        integ: vec![IntegAlg::HmacSha256_128],
        dh: dh.to_vec(),
    }
}

fn initiator(proposals: Vec<IkeSaProposal>, seed: u64) -> (InitiatorSentInit, Rng) {
    let mut r = rng(seed);
    let start = InitiatorStart::new(InitiatorConfig::new(proposals), addr(I), addr(R)).unwrap();
    (start.start(&mut r).unwrap(), r)
}

fn responder(proposals: Vec<IkeSaProposal>) -> (InitResponder, Rng) {
    let mut r = rng(0x7777);
    (InitResponder::new(ResponderConfig::new(proposals), &mut r).unwrap(), r)
}

fn now() -> Instant {
    Instant::now()
}

/// The same keys, SPIs, nonces, g^ir, algorithms and messages on both
/// ends.
fn assert_agree(i: &InitExchange, r: &InitExchange) {
    assert_eq!((i.spi_i, i.spi_r), (r.spi_i, r.spi_r));
    assert_eq!((&i.ni, &i.nr), (&r.ni, &r.nr));
    assert_eq!(*i.g_ir, *r.g_ir);
    assert_eq!(i.chosen, r.chosen);
    let ki = [
        &i.keys.sk_d,
        &i.keys.sk_ai,
        &i.keys.sk_ar,
        &i.keys.sk_ei,
        &i.keys.sk_er,
        &i.keys.sk_pi,
        &i.keys.sk_pr,
    ];
    let kr = [
        &r.keys.sk_d,
        &r.keys.sk_ai,
        &r.keys.sk_ar,
        &r.keys.sk_ei,
        &r.keys.sk_er,
        &r.keys.sk_pi,
        &r.keys.sk_pr,
    ];
    for (n, (a, b)) in ki.iter().zip(kr).enumerate() {
        assert_eq!(***a, **b, "key {n}");
    }
    assert!(!i.keys.sk_d.is_empty() && i.keys.sk_d != i.keys.sk_pi);
    assert_eq!(i.request, r.request);
    assert_eq!(i.response, r.response);
}

fn done(step: InitiatorStep) -> InitDone {
    match step {
        InitiatorStep::Done(d) => d,
        other => panic!("not done: {other:?}"),
    }
}

fn resend(step: InitiatorStep, why: InitReason) -> InitiatorSentInit {
    match step {
        InitiatorStep::Resend(s, r) if r == why => s,
        other => panic!("not a resend for {why:?}: {other:?}"),
    }
}

fn ignored(step: InitiatorStep, why: InitReason) -> InitiatorSentInit {
    match step {
        InitiatorStep::Ignored(s, r) if r == why => s,
        other => panic!("not ignored for {why:?}: {other:?}"),
    }
}

/// The payload types of a message, Notifies by their type.
fn shape(msg: &[u8]) -> Vec<String> {
    let h = Header::parse(msg).unwrap();
    PayloadIter::of_message(msg, &h)
        .map(|raw| match Payload::parse(&raw.unwrap()).unwrap() {
            Payload::Notify(n) => format!("N({:?})", n.kind),
            p => format!("{:?}", p.kind()),
        })
        .collect()
}

/// The one Notify of an error answer, after checking its header: our
/// SPIi, SPIr 0, a response, IKE_SA_INIT, message ID 0 (§2.6, §2.21.1).
fn error_notify(answer: &[u8], spi_i: u64) -> (NotifyType, Vec<u8>) {
    let h = Header::parse(answer).unwrap();
    assert_eq!((h.spi_i, h.spi_r, h.flags, h.message_id), (spi_i, 0, FLAG_RESPONSE, 0));
    let payloads: Vec<_> =
        PayloadIter::of_message(answer, &h).map(|r| Payload::parse(&r.unwrap()).unwrap()).collect();
    match payloads.as_slice() {
        [Payload::Notify(n)] => (n.kind, n.data.to_vec()),
        other => panic!("not one Notify: {other:?}"),
    }
}

fn refused(reply: &Reply, why: InitReason, spi_i: u64) -> (NotifyType, Vec<u8>) {
    match reply {
        Reply::Refused(m, r) if *r == why => error_notify(m, spi_i),
        other => panic!("not refused for {why:?}: {other:?}"),
    }
}

/// ```text
/// HDR(A,0), SAi1, KEi, Ni, N(NAT_D_SRC), N(NAT_D_DST)  -->
///                      <--  HDR(A,B), SAr1, KEr, Nr, N(NAT_D_SRC), N(NAT_D_DST)
/// ```
#[test]
fn both_ends_agree_on_keys() {
    for (proposals, dh, icv) in
        [(gcm(&[DhGroup::Ecp256]), DhGroup::Ecp256, 16), (cbc(&[DhGroup::Modp2048]), DhGroup::Modp2048, 16)]
    {
        let (ini, mut ir) = initiator(vec![proposals.clone()], 1);
        assert_eq!(
            shape(ini.request()),
            ["Sa", "Ke", "Nonce", "N(NatDetectionSourceIp)", "N(NatDetectionDestinationIp)"]
        );
        let (mut resp, mut rr) = responder(vec![proposals]);
        let reply = resp.respond(ini.request(), addr(R), addr(I), 0, now(), &mut rr);
        let Reply::Opened(answer, spi_r) = &reply else { panic!("{reply:?}") };
        assert_eq!(
            shape(answer),
            ["Sa", "Ke", "Nonce", "N(NatDetectionSourceIp)", "N(NatDetectionDestinationIp)"]
        );
        // One proposal, one transform per type (§3.3.1): 3 for GCM, 4 for CBC.
        let h = Header::parse(answer).unwrap();
        let sa = PayloadIter::of_message(answer, &h)
            .find_map(|r| match Payload::parse(&r.unwrap()).unwrap() {
                Payload::Sa(sa) => Some(sa),
                _ => None,
            })
            .unwrap();
        let props: Vec<_> = sa.proposals().collect();
        assert_eq!(props.len(), 1);
        assert_eq!(props[0].transforms().count(), if dh == DhGroup::Ecp256 { 3 } else { 4 });
        let d = done(ini.handle_response(answer, &mut ir));
        let r = resp.take(addr(I), d.spi_i).unwrap();
        assert_eq!(d.spi_r, *spi_r);
        assert_eq!(d.chosen.dh, dh);
        assert_eq!(d.keys.suite.icv_len(), icv);
        assert_agree(&d, &r);
        // No NAT between them: each side's hashes match (§2.23).
        for nat in [d.nat, r.nat] {
            assert!(nat.supported && !nat.local_behind_nat && !nat.remote_behind_nat);
        }
        assert_eq!(resp.half_open_len(), 0);
    }
}

/// The initiator at 192.0.2.10:500 behind a NAT that shows it as
/// 203.0.113.9:4501: the responder finds its peer behind a NAT, the
/// initiator finds itself behind one (§2.23).
#[test]
fn nat_detected_each_way() {
    let inside = addr("192.0.2.10:500");
    let outside = addr("203.0.113.9:4501");
    let mut ir = rng(3);
    let ini = InitiatorStart::new(InitiatorConfig::new(vec![gcm(&[DhGroup::Ecp256])]), inside, addr(R))
        .unwrap()
        .start(&mut ir)
        .unwrap();
    let (mut resp, mut rr) = responder(vec![gcm(&[DhGroup::Ecp256])]);
    let reply = resp.respond(ini.request(), addr(R), outside, 0, now(), &mut rr);
    let d = done(ini.handle_response(reply.answer().unwrap(), &mut ir));
    let r = resp.take(outside, d.spi_i).unwrap();
    assert_agree(&d, &r);
    assert!(r.nat.supported && r.nat.remote_behind_nat && !r.nat.local_behind_nat);
    assert!(d.nat.supported && d.nat.local_behind_nat && !d.nat.remote_behind_nat);
    // The response's destination hash is over the address the responder
    // saw, with both SPIs.
    let h = Header::parse(&d.response).unwrap();
    let dst = PayloadIter::of_message(&d.response, &h)
        .find_map(|r| match Payload::parse(&r.unwrap()).unwrap() {
            Payload::Notify(NotifyPayload { kind: NotifyType::NatDetectionDestinationIp, data, .. }) => {
                Some(data.to_vec())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(dst, nat_hash(d.spi_i, d.spi_r, outside));
}

/// ```text
/// HDR(A,0), SAi1, KEi, Ni            -->
///                                    <--  HDR(A,0), N(COOKIE)
/// HDR(A,0), N(COOKIE), SAi1, KEi, Ni -->
///                                    <--  HDR(A,B), SAr1, KEr, Nr
/// ```
#[test]
fn cookie_round_trip_under_load() {
    let p = vec![gcm(&[DhGroup::Ecp256])];
    let (ini, mut ir) = initiator(p.clone(), 5);
    let first = ini.request().to_vec();
    let (mut resp, mut rr) = responder(p);
    // 30 half-open elsewhere: at the threshold.
    let reply = resp.respond(&first, addr(R), addr(I), 30, now(), &mut rr);
    let (kind, cookie) = refused(&reply, InitReason::CookieRequired, ini.spi_i());
    assert_eq!(kind, NotifyType::Cookie);
    assert_eq!(cookie.len(), 36);
    assert_eq!(resp.half_open_len(), 0, "a COOKIE answer keeps no state");
    let ini = resend(ini.handle_response(reply.answer().unwrap(), &mut ir), InitReason::CookieRequired);
    // The retry: the COOKIE first, then every payload unchanged (§2.6).
    let second = ini.request().to_vec();
    let cookie_payload = 4 + 4 + cookie.len();
    assert_eq!(shape(&second)[0], "N(Cookie)");
    assert_eq!(&second[HEADER_LEN + cookie_payload..], &first[HEADER_LEN..]);
    assert_eq!(&second[..16], &first[..16], "same SPIs");
    assert_eq!(ini.retries(), 1);
    // Still under load: the cookie is checked, and is good.
    let reply = resp.respond(&second, addr(R), addr(I), 31, now(), &mut rr);
    assert!(matches!(reply, Reply::Opened(..)), "{reply:?}");
    let d = done(ini.handle_response(reply.answer().unwrap(), &mut ir));
    assert_agree(&d, &resp.take(addr(I), d.spi_i).unwrap());
    assert_eq!(d.request, second);
    assert_eq!(resp.count(InitReason::CookieRequired), 1);
}

/// A COOKIE from another address, for another nonce, or made by a
/// secret two rotations old is refused with a fresh COOKIE; one made
/// before a single rotation is still good.
#[test]
fn cookie_checks() {
    let p = vec![gcm(&[DhGroup::Ecp256])];
    let (ini, mut ir) = initiator(p.clone(), 6);
    let (mut resp, mut rr) = responder(p);
    let reply = resp.respond(ini.request(), addr(R), addr(I), 99, now(), &mut rr);
    let ini = resend(ini.handle_response(reply.answer().unwrap(), &mut ir), InitReason::CookieRequired);
    let with_cookie = ini.request().to_vec();
    // From another address: the cookie names 198.51.100.1.
    let reply = resp.respond(&with_cookie, addr(R), addr("198.51.100.2:500"), 99, now(), &mut rr);
    let (kind, fresh) = refused(&reply, InitReason::CookieMismatch, ini.spi_i());
    assert_eq!(kind, NotifyType::Cookie);
    // A flipped bit.
    let mut bad = with_cookie.clone();
    bad[HEADER_LEN + 8 + 10] ^= 1;
    let reply = resp.respond(&bad, addr(R), addr(I), 99, now(), &mut rr);
    refused(&reply, InitReason::CookieMismatch, ini.spi_i());
    assert_ne!(fresh, with_cookie[HEADER_LEN + 8..HEADER_LEN + 8 + 36].to_vec());
    // Two rotations: the cookie's secret is gone.
    resp.rotate_cookie_secret(&mut rr);
    resp.rotate_cookie_secret(&mut rr);
    let reply = resp.respond(&with_cookie, addr(R), addr(I), 99, now(), &mut rr);
    refused(&reply, InitReason::CookieMismatch, ini.spi_i());
    // One rotation after it was made: still good.
    let ini = resend(ini.handle_response(reply.answer().unwrap(), &mut ir), InitReason::CookieRequired);
    resp.rotate_cookie_secret(&mut rr);
    let reply = resp.respond(ini.request(), addr(R), addr(I), 99, now(), &mut rr);
    assert!(matches!(reply, Reply::Opened(..)), "{reply:?}");
    assert_eq!(resp.count(InitReason::CookieMismatch), 3);
}

/// The initiator offers ECP 256 first (its KE) and MODP 2048; the
/// responder takes only MODP 2048:
///
/// ```text
/// HDR(A,0), SAi1, KEi(19), Ni   -->
///                               <--  HDR(A,0), N(INVALID_KE_PAYLOAD, 14)
/// HDR(A,0), SAi1, KEi'(14), Ni' -->
///                               <--  HDR(A,B), SAr1, KEr(14), Nr
/// ```
#[test]
fn invalid_ke_round_trip() {
    let (ini, mut ir) = initiator(vec![cbc(&[DhGroup::Ecp256, DhGroup::Modp2048])], 7);
    let first = ini.request().to_vec();
    assert_eq!(ini.group(), DhGroup::Ecp256);
    let (mut resp, mut rr) = responder(vec![cbc(&[DhGroup::Modp2048])]);
    let reply = resp.respond(&first, addr(R), addr(I), 0, now(), &mut rr);
    let (kind, data) = refused(&reply, InitReason::WrongKeGroup, ini.spi_i());
    assert_eq!((kind, data), (NotifyType::InvalidKePayload, vec![0, 14]));
    assert_eq!(resp.half_open_len(), 0);
    let ini = resend(ini.handle_response(reply.answer().unwrap(), &mut ir), InitReason::WrongKeGroup);
    assert_eq!(ini.group(), DhGroup::Modp2048);
    let second = ini.request().to_vec();
    let (h1, h2) = (Header::parse(&first).unwrap(), Header::parse(&second).unwrap());
    // Same SPIi, message ID 0, the full offer again (§1.2), new KE and Ni.
    assert_eq!((h2.spi_i, h2.spi_r, h2.message_id), (h1.spi_i, 0, 0));
    let payload = |m: &[u8], t: PayloadType| {
        let h = Header::parse(m).unwrap();
        PayloadIter::of_message(m, &h).map(|r| r.unwrap()).find(|r| r.kind == t).unwrap().body.to_vec()
    };
    assert_eq!(payload(&first, PayloadType::Sa), payload(&second, PayloadType::Sa));
    assert_ne!(payload(&first, PayloadType::Nonce), payload(&second, PayloadType::Nonce));
    assert_eq!(&payload(&second, PayloadType::Ke)[..2], &[0, 14]);
    let reply = resp.respond(&second, addr(R), addr(I), 0, now(), &mut rr);
    let d = done(ini.handle_response(reply.answer().unwrap(), &mut ir));
    assert_eq!(d.chosen.dh, DhGroup::Modp2048);
    assert_agree(&d, &resp.take(addr(I), d.spi_i).unwrap());
}

/// A responder that accepts the KE's group takes it, even when it
/// prefers another: no INVALID_KE_PAYLOAD round trip.
#[test]
fn acceptable_ke_group_is_taken_as_sent() {
    let (ini, mut ir) = initiator(vec![cbc(&[DhGroup::Ecp256, DhGroup::Modp2048])], 8);
    let (mut resp, mut rr) = responder(vec![cbc(&[DhGroup::Modp2048, DhGroup::Ecp256])]);
    let reply = resp.respond(ini.request(), addr(R), addr(I), 0, now(), &mut rr);
    let d = done(ini.handle_response(reply.answer().unwrap(), &mut ir));
    assert_eq!(d.chosen.dh, DhGroup::Ecp256);
}

/// The responder accepts the initiator's second proposal: its answer
/// carries that proposal's number (§3.3.1), which the initiator reads
/// against what it offered under that number.
#[test]
fn second_proposal_accepted_under_its_number() {
    let (ini, mut ir) = initiator(vec![gcm(&[DhGroup::Ecp256]), cbc(&[DhGroup::Ecp256])], 17);
    let (mut resp, mut rr) = responder(vec![cbc(&[DhGroup::Ecp256])]);
    let reply = resp.respond(ini.request(), addr(R), addr(I), 0, now(), &mut rr);
    let answer = reply.answer().unwrap();
    // SA generic header, then the proposal: last, reserved, length, number.
    assert_eq!(answer[HEADER_LEN + 4 + 4], 2);
    let d = done(ini.handle_response(answer, &mut ir));
    assert_eq!((d.chosen.num, d.chosen.suite.encr()), (2, EncrAlg::AesCbc256));
    assert_agree(&d, &resp.take(addr(I), d.spi_i).unwrap());
}

/// The §2.6 figure: under load, COOKIE, then INVALID_KE_PAYLOAD, then a
/// new COOKIE for the new nonce, then the SA.
///
/// ```text
/// HDR(A,0), SAi1, KEi, Ni                -->
///                                        <--  HDR(A,0), N(COOKIE)
/// HDR(A,0), N(COOKIE), SAi1, KEi, Ni     -->
///                                        <--  HDR(A,0), N(INVALID_KE_PAYLOAD)
/// HDR(A,0), SAi1, KEi', Ni'              -->
///                                        <--  HDR(A,0), N(COOKIE')
/// HDR(A,0), N(COOKIE'), SAi1, KEi', Ni'  -->
///                                        <--  HDR(A,B), SAr1, KEr, Nr
/// ```
#[test]
fn cookie_then_invalid_ke_then_cookie_again() {
    let (mut ini, mut ir) = initiator(vec![gcm(&[DhGroup::Ecp256, DhGroup::Ecp384])], 9);
    let (mut resp, mut rr) = responder(vec![gcm(&[DhGroup::Ecp384])]);
    for why in [InitReason::CookieRequired, InitReason::WrongKeGroup, InitReason::CookieRequired] {
        let reply = resp.respond(ini.request(), addr(R), addr(I), 1000, now(), &mut rr);
        assert_eq!(reply.reason(), Some(why));
        ini = resend(ini.handle_response(reply.answer().unwrap(), &mut ir), why);
    }
    assert_eq!(ini.retries(), 3);
    let reply = resp.respond(ini.request(), addr(R), addr(I), 1000, now(), &mut rr);
    let d = done(ini.handle_response(reply.answer().unwrap(), &mut ir));
    assert_eq!(d.chosen.dh, DhGroup::Ecp384);
    assert_agree(&d, &resp.take(addr(I), d.spi_i).unwrap());
}

/// No common proposal: NO_PROPOSAL_CHOSEN, and the initiator gives up.
#[test]
fn no_common_proposal() {
    let (ini, mut ir) = initiator(vec![gcm(&[DhGroup::Ecp256])], 10);
    let spi_i = ini.spi_i();
    let (mut resp, mut rr) = responder(vec![cbc(&[DhGroup::Ecp256])]);
    let reply = resp.respond(ini.request(), addr(R), addr(I), 0, now(), &mut rr);
    assert_eq!(refused(&reply, InitReason::NoProposal, spi_i), (NotifyType::NoProposalChosen, vec![]));
    match ini.handle_response(reply.answer().unwrap(), &mut ir) {
        InitiatorStep::Failed(e) => {
            assert_eq!(e, InitError::Refused(NotifyType::NoProposalChosen));
            assert_eq!(e.reason(), InitReason::Refused);
        }
        other => panic!("{other:?}"),
    }
    // A group both know in name but the responder refuses is no better.
    let (ini, _) = initiator(vec![gcm(&[DhGroup::Modp1024])], 11);
    let reply = resp.respond(ini.request(), addr(R), addr(I), 0, now(), &mut rr);
    refused(&reply, InitReason::NoProposal, ini.spi_i());
    assert_eq!(resp.count(InitReason::NoProposal), 2);
    assert_eq!(resp.half_open_len(), 0);
}

/// A payload as (type, critical, body), to tamper with.
type Part = (PayloadType, bool, Vec<u8>);

/// A request's payloads as parts.
fn payloads(msg: &[u8]) -> Vec<Part> {
    let h = Header::parse(msg).unwrap();
    PayloadIter::of_message(msg, &h)
        .map(|r| r.unwrap())
        .map(|r| (r.kind, r.critical, r.body.to_vec()))
        .collect()
}

/// Rebuilds a request from `msg`'s header and `parts`.
fn rebuild(msg: &[u8], parts: &[Part]) -> Vec<u8> {
    let h = Header::parse(msg).unwrap();
    let mut m = esprit_ike::v2::wire::MessageBuilder::new(h);
    for (kind, critical, body) in parts {
        m.chain.push_with(*kind, *critical, |o| o.extend_from_slice(body));
    }
    m.finish().unwrap()
}

/// Each malformed request gets the Notify RFC 7296 names for it (§2.5,
/// §2.21.1, §3.10.1), or silence where there is nothing to answer; none
/// leaves state behind.
#[test]
fn tampered_requests_get_the_notify_the_rfc_names() {
    let (ini, _) = initiator(vec![cbc(&[DhGroup::Modp2048])], 12);
    let good = ini.request().to_vec();
    let spi_i = ini.spi_i();
    let parts = payloads(&good);
    let kind_at = |t: PayloadType| parts.iter().position(|p| p.0 == t).unwrap();
    let edit = |f: &dyn Fn(&mut Vec<Part>)| {
        let mut p = parts.clone();
        f(&mut p);
        rebuild(&good, &p)
    };
    let bytes = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut m = good.clone();
        f(&mut m);
        m
    };
    use InitReason as W;
    use NotifyType as N;
    type Answered<'a> = (&'a str, Vec<u8>, W, N, Vec<u8>);
    let answered: Vec<Answered<'_>> = vec![
        ("major version 1", bytes(&|m| m[17] = 0x10), W::UnsupportedVersion, N::InvalidMajorVersion, vec![]),
        (
            "KE missing",
            edit(&|p| drop(p.remove(kind_at(PayloadType::Ke)))),
            W::Malformed,
            N::InvalidSyntax,
            vec![],
        ),
        (
            "Nonce twice",
            edit(&|p| p.push(p[kind_at(PayloadType::Nonce)].clone())),
            W::Malformed,
            N::InvalidSyntax,
            vec![],
        ),
        (
            "Nonce of 15 bytes",
            edit(&|p| p[kind_at(PayloadType::Nonce)].2.truncate(15)),
            W::Malformed,
            N::InvalidSyntax,
            vec![],
        ),
        ("transform count off", edit(&|p| p[0].2[7] += 1), W::Malformed, N::InvalidSyntax, vec![]),
        (
            "payload length past the end",
            bytes(&|m| m[HEADER_LEN + 2] = 0xff),
            W::Malformed,
            N::InvalidSyntax,
            vec![],
        ),
        (
            "KE of the wrong length",
            edit(&|p| p[kind_at(PayloadType::Ke)].2.truncate(100)),
            W::BadKePublic,
            N::InvalidSyntax,
            vec![],
        ),
        (
            "KE value above p",
            edit(&|p| {
                let ke = &mut p[kind_at(PayloadType::Ke)].2;
                ke[4..].fill(0xff);
            }),
            W::BadKePublic,
            N::InvalidSyntax,
            vec![],
        ),
        (
            "critical payload 200",
            edit(&|p| p.push((PayloadType::Other(200), true, vec![1, 2]))),
            W::UnsupportedCritical,
            N::UnsupportedCriticalPayload,
            vec![200],
        ),
        (
            "COOKIE not first",
            edit(&|p| p.push((PayloadType::Notify, false, vec![0, 0, 0x40, 0x06, 9, 9]))),
            W::Malformed,
            N::InvalidSyntax,
            vec![],
        ),
    ];
    let (mut resp, mut rr) = responder(vec![cbc(&[DhGroup::Modp2048])]);
    for (what, msg, why, kind, data) in answered {
        let reply = resp.respond(&msg, addr(R), addr(I), 0, now(), &mut rr);
        assert_eq!(refused(&reply, why, spi_i), (kind, data), "{what}");
    }
    // A critical payload not understood but not critical is skipped.
    let skipped = edit(&|p| p.push((PayloadType::Other(200), false, vec![1, 2])));
    assert!(matches!(resp.respond(&skipped, addr(R), addr(I), 0, now(), &mut rr), Reply::Opened(..)));
    let silent: Vec<(&str, Vec<u8>, W)> = vec![
        ("shorter than a header", good[..27].to_vec(), W::Unreadable),
        ("a byte cut", good[..good.len() - 1].to_vec(), W::Unreadable),
        ("SPIi zero", bytes(&|m| m[..8].fill(0)), W::Unreadable),
        ("a response", bytes(&|m| m[19] = FLAG_RESPONSE), W::NotInitRequest),
        ("I flag clear", bytes(&|m| m[19] = 0), W::NotInitRequest),
        ("SPIr set", bytes(&|m| m[15] = 1), W::NotInitRequest),
        ("message ID 1", bytes(&|m| m[23] = 1), W::NotInitRequest),
        ("IKE_AUTH", bytes(&|m| m[18] = 35), W::NotInitRequest),
        (
            "major version 1, a response",
            bytes(&|m| {
                m[17] = 0x10;
                m[19] = FLAG_RESPONSE
            }),
            W::Unreadable,
        ),
    ];
    for (what, msg, why) in silent {
        assert_eq!(resp.respond(&msg, addr(R), addr(I), 0, now(), &mut rr), Reply::Silent(why), "{what}");
    }
    assert_eq!(resp.count(W::Malformed), 6);
    assert_eq!(resp.count(W::BadKePublic), 2);
    assert_eq!(resp.count(W::NotInitRequest), 5);
    assert_eq!(resp.half_open_len(), 1, "only the request with a skipped payload opened an SA");
}

/// Curve25519 (group 31, RFC 8031) for the IKE SA: 32-byte KE values
/// both ways, the same g^ir; then KEi values that are not 32 bytes or are
/// of small order (their shared secret all zero, RFC 8031 §2) are each
/// refused with INVALID_SYNTAX, counted, and leave no half-open SA.
#[test]
fn curve25519_ike_sa_and_hostile_ke_values() {
    let (ini, mut ir) = initiator(vec![gcm(&[DhGroup::Curve25519])], 31);
    let good = ini.request().to_vec();
    let spi_i = ini.spi_i();
    let parts = payloads(&good);
    let ke_at = parts.iter().position(|p| p.0 == PayloadType::Ke).unwrap();
    // KE body: group (2), reserved (2), the value (§3.4).
    assert_eq!(parts[ke_at].2.len(), 4 + 32);
    assert_eq!(parts[ke_at].2[..4], [0, 31, 0, 0]);
    let (mut resp, mut rr) = responder(vec![gcm(&[DhGroup::Curve25519])]);
    let reply = resp.respond(&good, addr(R), addr(I), 0, now(), &mut rr);
    let Reply::Opened(answer, _) = &reply else { panic!("{reply:?}") };
    let ker = payloads(answer).into_iter().find(|p| p.0 == PayloadType::Ke).unwrap();
    assert_eq!((ker.2.len(), &ker.2[..4]), (4 + 32, &[0u8, 31, 0, 0][..]));
    let d = done(ini.handle_response(answer, &mut ir));
    let r = resp.take(addr(I), d.spi_i).unwrap();
    assert_eq!(d.chosen.dh, DhGroup::Curve25519);
    assert_eq!(d.g_ir.len(), 32);
    assert_agree(&d, &r);

    let with_value = |value: &[u8]| {
        let mut p = parts.clone();
        p[ke_at].2.truncate(4);
        p[ke_at].2.extend_from_slice(value);
        rebuild(&good, &p)
    };
    let order8 = hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800").unwrap();
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("31 bytes", vec![9; 31]),
        ("33 bytes", vec![9; 33]),
        ("u = 0", vec![0; 32]),
        ("a point of order 8", order8),
    ];
    let (mut resp, mut rr) = responder(vec![gcm(&[DhGroup::Curve25519])]);
    for (what, value) in &hostile {
        let reply = resp.respond(&with_value(value), addr(R), addr(I), 0, now(), &mut rr);
        assert_eq!(
            refused(&reply, InitReason::BadKePublic, spi_i),
            (NotifyType::InvalidSyntax, vec![]),
            "{what}"
        );
    }
    // A KE with no value at all does not parse (§3.4).
    let reply = resp.respond(&with_value(&[]), addr(R), addr(I), 0, now(), &mut rr);
    assert_eq!(refused(&reply, InitReason::Malformed, spi_i), (NotifyType::InvalidSyntax, vec![]));
    assert_eq!(resp.count(InitReason::BadKePublic), 4);
    assert_eq!(resp.half_open_len(), 0);
    // The same request with a good value still opens an SA.
    let reply = resp.respond(&good, addr(R), addr(I), 0, now(), &mut rr);
    assert!(matches!(reply, Reply::Opened(..)), "{reply:?}");
    assert_eq!(resp.half_open_len(), 1);
}

/// §2.1: a retransmitted request gets the same bytes back and no second
/// SA; another request under the same SPIi from the same address is
/// dropped.
#[test]
fn replayed_request_gets_the_same_response() {
    let p = vec![gcm(&[DhGroup::Ecp256])];
    let (ini, mut ir) = initiator(p.clone(), 13);
    let (mut resp, mut rr) = responder(p.clone());
    let first = resp.respond(ini.request(), addr(R), addr(I), 0, now(), &mut rr);
    let again = resp.respond(ini.request(), addr(R), addr(I), 0, now(), &mut rr);
    assert_eq!(again, Reply::Retransmitted(first.answer().unwrap().to_vec()));
    assert_eq!(resp.half_open_len(), 1);
    assert_eq!(resp.count(InitReason::Retransmission), 1);
    // Same SPIi, other contents (a new nonce): not a retransmission.
    let other = {
        let mut m = ini.request().to_vec();
        let n = m.len() - 60;
        m[n] ^= 0xff;
        m
    };
    assert_eq!(
        resp.respond(&other, addr(R), addr(I), 0, now(), &mut rr),
        Reply::Silent(InitReason::SpiInUse)
    );
    // The initiator takes either copy of the response.
    let d = done(ini.handle_response(again.answer().unwrap(), &mut ir));
    assert_agree(&d, &resp.take(addr(I), d.spi_i).unwrap());
}

/// The half-open table is bounded and its entries time out.
#[test]
fn half_open_bounded_and_timed_out() {
    let p = vec![gcm(&[DhGroup::Ecp256])];
    let mut r = rng(0x99);
    let mut config = ResponderConfig::new(p.clone());
    config.max_half_open = 2;
    config.cookie_threshold = usize::MAX;
    let mut resp = InitResponder::new(config, &mut r).unwrap();
    let t0 = now();
    let replies: Vec<Reply> = (0..3)
        .map(|seed| {
            let (ini, _) = initiator(p.clone(), 100 + seed);
            resp.respond(ini.request(), addr(R), addr(I), 0, t0, &mut r)
        })
        .collect();
    assert!(matches!(replies[0], Reply::Opened(..)) && matches!(replies[1], Reply::Opened(..)));
    assert_eq!(replies[2], Reply::Silent(InitReason::HalfOpenFull));
    // A share per source: 198.51.100.1 and 198.51.100.2 one each.
    let mut config = ResponderConfig::new(p.clone());
    config.max_half_open_per_source = 1;
    let mut per = InitResponder::new(config, &mut r).unwrap();
    let mut from = |per: &mut InitResponder, src: &str, seed| {
        let (ini, _) = initiator(p.clone(), seed);
        (per.respond(ini.request(), addr(R), addr(src), 0, t0, &mut r).reason(), ini.spi_i())
    };
    let (first, spi) = from(&mut per, I, 110);
    assert_eq!(first, None);
    assert_eq!(from(&mut per, "198.51.100.1:4500", 111).0, Some(InitReason::HalfOpenSourceFull));
    assert_eq!(from(&mut per, "198.51.100.2:500", 112).0, None);
    assert!(per.take(addr(I), spi).is_some());
    assert_eq!(from(&mut per, "198.51.100.1:4500", 113).0, None, "taking an SA frees its share");
    assert_eq!(per.count(InitReason::HalfOpenSourceFull), 1);

    assert_eq!(resp.expire(t0 + Duration::from_secs(29)), 0);
    assert_eq!(resp.expire(t0 + Duration::from_secs(30)), 2);
    assert_eq!(resp.count(InitReason::HalfOpenTimedOut), 2);
    assert_eq!(resp.half_open_len(), 0);
}

/// Unauthenticated answers that are not the responder's leave the
/// initiator waiting; the genuine response still completes the exchange.
#[test]
fn forged_or_broken_responses_are_ignored() {
    let p = vec![cbc(&[DhGroup::Ecp256, DhGroup::Modp2048])];
    let (mut ini, mut ir) = initiator(p.clone(), 14);
    let (mut resp, mut rr) = responder(p);
    let reply = resp.respond(ini.request(), addr(R), addr(I), 0, now(), &mut rr);
    let good = reply.answer().unwrap().to_vec();
    let sent = ini.request().to_vec();
    let forged_ke = |group: u16| {
        let mut m =
            esprit_ike::v2::wire::MessageBuilder::new(Header { spi_r: 0, ..Header::parse(&good).unwrap() });
        m.chain.push_payload(&Payload::Notify(NotifyPayload {
            protocol: esprit_ike::v2::wire::ProtocolId::None,
            kind: NotifyType::InvalidKePayload,
            spi: &[],
            data: &group.to_be_bytes(),
        }));
        m.finish().unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, InitReason)> = vec![
        ("truncated", good[..good.len() - 1].to_vec(), InitReason::ResponseIgnored),
        (
            "another SPIi",
            {
                let mut m = good.clone();
                m[0] ^= 1;
                m
            },
            InitReason::ResponseIgnored,
        ),
        ("our own request echoed", sent.clone(), InitReason::ResponseIgnored),
        (
            "SA length wrong",
            {
                let mut m = good.clone();
                m[HEADER_LEN + 3] = 0xff;
                m
            },
            InitReason::ResponseIgnored,
        ),
        (
            "a KE value that is no point of the curve",
            {
                let mut parts = payloads(&good);
                let k = parts.iter().position(|p| p.0 == PayloadType::Ke).unwrap();
                parts[k].2.truncate(4);
                parts[k].2.extend_from_slice(&[0xff; 64]);
                rebuild(&good, &parts)
            },
            InitReason::ResponseIgnored,
        ),
        ("INVALID_KE for the group sent", forged_ke(19), InitReason::InvalidKeIgnored),
        ("INVALID_KE for a group not offered", forged_ke(15), InitReason::InvalidKeIgnored),
    ];
    for (what, msg, why) in cases {
        ini = ignored(ini.handle_response(&msg, &mut ir), why);
        assert_eq!(ini.request(), &sent[..], "{what}: the request is unchanged");
    }
    let d = done(ini.handle_response(&good, &mut ir));
    assert_agree(&d, &resp.take(addr(I), d.spi_i).unwrap());
}

/// A response choosing what was not offered ends the exchange (§2.7);
/// COOKIE answers beyond the bound end it too.
#[test]
fn unoffered_choice_and_endless_cookies_fail() {
    let (ini, mut ir) = initiator(vec![cbc(&[DhGroup::Ecp256])], 15);
    // The responder accepts AES-CBC-256 with SHA-256 and group 19 too,
    // but answers as proposal 1 with a different PRF.
    let (mut resp, mut rr) = responder(vec![cbc(&[DhGroup::Ecp256])]);
    let reply = resp.respond(ini.request(), addr(R), addr(I), 0, now(), &mut rr);
    let mut bad = reply.answer().unwrap().to_vec();
    // The PRF transform (second, after the 12-byte ENCR): ID 5 -> 7.
    let prf_id = HEADER_LEN + 4 + 8 + 12 + 7;
    assert_eq!(bad[prf_id], 5);
    bad[prf_id] = 7;
    match ini.handle_response(&bad, &mut ir) {
        InitiatorStep::Failed(e) => assert_eq!(e, InitError::AnswerNotOffered),
        other => panic!("{other:?}"),
    }

    let (mut ini, mut ir) = initiator(vec![cbc(&[DhGroup::Ecp256])], 16);
    for n in 0..4 {
        let reply = resp.respond(ini.request(), addr(R), addr(I), 1000 + n, now(), &mut rr);
        resp.rotate_cookie_secret(&mut rr);
        resp.rotate_cookie_secret(&mut rr);
        ini = resend(ini.handle_response(reply.answer().unwrap(), &mut ir), InitReason::CookieRequired);
    }
    let reply = resp.respond(ini.request(), addr(R), addr(I), 1000, now(), &mut rr);
    match ini.handle_response(reply.answer().unwrap(), &mut ir) {
        InitiatorStep::Failed(e) => assert_eq!(e, InitError::TooManyRetries(4)),
        other => panic!("{other:?}"),
    }
}

/// Every prefix of a real request and every byte of it set to 0, 0xff or
/// flipped: never a panic, at most one answer, and an answer is always an
/// IKE_SA_INIT response to the SPIi the bytes carry, either an SA or one
/// Notify (§2.21.1). The same for the response on the initiator's side.
#[test]
fn mutated_messages_never_panic_and_get_one_well_formed_answer() {
    let p = vec![gcm(&[DhGroup::Ecp256])];
    let (ini, _) = initiator(p.clone(), 30);
    let request = ini.request().to_vec();
    let (mut resp, mut rr) = responder(p.clone());
    let response = resp.respond(&request, addr(R), addr(I), 0, now(), &mut rr).answer().unwrap().to_vec();
    let variants = |m: &[u8]| {
        let mut v: Vec<Vec<u8>> = (0..m.len()).map(|n| m[..n].to_vec()).collect();
        for i in 0..m.len() {
            for f in [|_: u8| 0u8, |_: u8| 0xff, |b: u8| b ^ 0x80] {
                let mut c = m.to_vec();
                c[i] = f(c[i]);
                v.push(c);
            }
        }
        v
    };
    let (mut opened, mut refused, mut silent) = (0, 0, 0);
    for m in variants(&request) {
        let (mut resp, mut rr) = responder(p.clone());
        match resp.respond(&m, addr(R), addr(I), 0, now(), &mut rr) {
            Reply::Silent(_) => silent += 1,
            Reply::Refused(a, _) => {
                error_notify(&a, u64::from_be_bytes(m[..8].try_into().unwrap()));
                refused += 1;
            }
            Reply::Opened(a, _) => {
                let h = Header::parse(&a).unwrap();
                assert_eq!((h.spi_i.to_be_bytes(), h.flags), (m[..8].try_into().unwrap(), FLAG_RESPONSE));
                assert_eq!(resp.half_open_len(), 1);
                opened += 1;
            }
            Reply::Retransmitted(_) => panic!("nothing to retransmit"),
        }
    }
    // Most single-byte changes land in the KE, nonce or NAT hashes, which
    // are not checked before the SA is made; the header and structure
    // ones are refused or dropped.
    assert!(opened > 0 && refused > 0 && silent > 0, "{opened} {refused} {silent}");
    let mut outcomes = [0usize; 4];
    for m in variants(&response) {
        let (ini, mut ir) = initiator(p.clone(), 30);
        let k = match ini.handle_response(&m, &mut ir) {
            InitiatorStep::Ignored(..) => 0,
            InitiatorStep::Resend(..) => 1,
            InitiatorStep::Done(_) => 2,
            InitiatorStep::Failed(_) => 3,
        };
        outcomes[k] += 1;
    }
    assert!(outcomes[0] > 0 && outcomes[2] > 0 && outcomes[3] > 0, "{outcomes:?}");
}

// IKE_AUTH with a pre-shared key (§1.2, §2.15), no child SA yet.

fn id(fqdn: &str) -> WireIdentity {
    WireIdentity { kind: IdType::Fqdn, data: fqdn.as_bytes().to_vec() }
}

fn psk(key: &[u8], local: &str, remote: Option<&str>) -> PskAuth {
    PskAuth { psk: Zeroizing::new(key.to_vec()), local: id(local), remote: remote.map(id) }
}

/// IKE_SA_INIT run to the end on both sides.
fn init_pair(seed: u64) -> (InitDone, ResponderInitDone, Rng, Rng) {
    let p = vec![cbc(&[DhGroup::Ecp256])];
    let (ini, mut ir) = initiator(p.clone(), seed);
    let (mut resp, mut rr) = responder(p);
    let reply = resp.respond(ini.request(), addr(R), addr(I), 0, now(), &mut rr);
    let d = done(ini.handle_response(reply.answer().unwrap(), &mut ir));
    let r = resp.take(addr(I), d.spi_i).unwrap();
    (d, r, ir, rr)
}

/// The inner payloads of an IKE_AUTH message, opened with `keys` as the
/// receiving side.
fn open_inner(keys: &InitExchange, as_initiator: bool, msg: &[u8]) -> Vec<String> {
    let opened = SkCipher::new(&keys.keys, as_initiator).unwrap().open(msg).unwrap();
    opened
        .payloads()
        .map(|r| match Payload::parse(&r.unwrap()).unwrap() {
            Payload::Notify(n) => format!("N({:?})", n.kind),
            Payload::IdI(i) | Payload::IdR(i) => format!("ID({})", String::from_utf8_lossy(i.data)),
            Payload::Auth(a) => format!("AUTH({:?}, {})", a.method, hex::encode(a.data)),
            p => format!("{:?}", p.kind()),
        })
        .collect()
}

/// §2.15 computed here from the pieces: prf(prf(psk, "Key Pad for
/// IKEv2"), message | nonce | prf(SK_p, ID body)).
fn expected_auth(x: &InitExchange, key: &[u8], initiator: bool, who: &str) -> String {
    let prf = x.chosen.prf;
    let id_body = [&[2u8, 0, 0, 0][..], who.as_bytes()].concat();
    let (msg, nonce, sk_p) =
        if initiator { (&x.request, &x.nr, &x.keys.sk_pi) } else { (&x.response, &x.ni, &x.keys.sk_pr) };
    let maced = prf.prf(sk_p, &[&id_body]);
    let pad = prf.prf(key, &[b"Key Pad for IKEv2"]);
    hex::encode(&*prf.prf(&pad, &[msg, nonce, &maced]))
}

/// ```text
/// HDR(A,B, IKE_AUTH, 1), SK{IDi, IDr, AUTH}  -->
///                              <--  HDR(A,B), SK{IDr, AUTH}
/// ```
#[test]
fn psk_auth_establishes_both_ends() {
    let (d, r, mut ir, mut rr) = init_pair(20);
    let want_i = expected_auth(&d, b"s3cret", true, "west.example");
    let want_r = expected_auth(&d, b"s3cret", false, "east.example");
    let sent = d.send_auth(psk(b"s3cret", "west.example", Some("east.example")), &mut ir).unwrap();
    let h = Header::parse(sent.request()).unwrap();
    assert_eq!((h.exchange, h.message_id, h.spi_r != 0), (ExchangeType::IkeAuth, 1, true));
    assert_eq!(shape(sent.request()), ["Encrypted"]);
    assert_eq!(
        open_inner(&r, false, sent.request()),
        ["ID(west.example)".to_string(), "ID(east.example)".into(), format!("AUTH(SharedKey, {want_i})")]
    );
    let step = r.handle_auth(sent.request(), &psk(b"s3cret", "east.example", Some("west.example")), &mut rr);
    let ResponderAuthStep::Established(re) = step else { panic!("{step:?}") };
    assert_eq!(re.peer, id("west.example"));
    // §2.1: the retransmitted request gets the same response.
    assert_eq!(re.retransmission(sent.request()), Some(&re.last_response[..]));
    assert_eq!(re.retransmission(&sent.request()[1..]), None);
    assert_eq!(
        open_inner(&re.exchange, true, &re.last_response),
        ["ID(east.example)".to_string(), format!("AUTH(SharedKey, {want_r})")]
    );
    let InitiatorAuthStep::Established(ie) = sent.handle_response(&re.last_response) else { panic!() };
    assert_eq!(ie.peer, id("east.example"));
    assert_agree(&ie.exchange, &re.exchange);
}

/// A wrong PSK: the responder answers SK{N(AUTHENTICATION_FAILED)}
/// (§2.21.2) and the initiator fails with it.
#[test]
fn wrong_psk_is_authentication_failed() {
    let (d, r, mut ir, mut rr) = init_pair(21);
    let sent = d.send_auth(psk(b"guess", "west.example", None), &mut ir).unwrap();
    let step = r.handle_auth(sent.request(), &psk(b"s3cret", "east.example", None), &mut rr);
    let ResponderAuthStep::Failed { response: Some(answer), error } = step else { panic!("{step:?}") };
    assert_eq!(error, AuthError::AuthenticationFailed);
    match sent.handle_response(&answer) {
        InitiatorAuthStep::Failed(e) => assert_eq!(e, AuthError::AuthenticationFailed),
        other => panic!("{other:?}"),
    }
}

/// AUTH covers the identity: an IDi changed after AUTH was computed
/// fails, as does a correct AUTH for an identity not configured.
#[test]
fn tampered_or_unexpected_identity_is_authentication_failed() {
    for (claimed, responder_expects) in [("mallory.example", None), ("mallory.example", Some("west.example"))]
    {
        let (d, r, mut ir, mut rr) = init_pair(22);
        // The initiator's keys sealing IDi = claimed, with the AUTH of
        // west.example (tampered) or of claimed itself (not configured).
        let auth_for = if responder_expects.is_none() { "west.example" } else { claimed };
        let mac = hex::decode(expected_auth(&d, b"s3cret", true, auth_for)).unwrap();
        let mut chain = PayloadChain::new();
        chain.push_payload(&Payload::IdI(IdPayload { kind: IdType::Fqdn, data: claimed.as_bytes() }));
        chain.push_payload(&Payload::Auth(AuthPayload { method: AuthMethod::SharedKey, data: &mac }));
        let header =
            Header { exchange: ExchangeType::IkeAuth, message_id: 1, ..Header::parse(&d.request).unwrap() };
        let header = Header { spi_r: d.spi_r, ..header };
        let msg = SkCipher::new(&d.keys, true).unwrap().seal(&header, &chain, &mut ir).unwrap();
        let step = r.handle_auth(&msg, &psk(b"s3cret", "east.example", responder_expects), &mut rr);
        let ResponderAuthStep::Failed { response: Some(answer), error } = step else { panic!("{step:?}") };
        assert_eq!(error, AuthError::AuthenticationFailed, "{claimed} / {responder_expects:?}");
        assert_eq!(open_inner(&d, true, &answer), ["N(AuthenticationFailed)"]);
    }
}

/// The responder's AUTH is checked too: a response with a wrong one
/// fails the initiator.
#[test]
fn responder_auth_is_checked() {
    let (d, r, mut ir, mut rr) = init_pair(23);
    let x_r: &InitExchange = &r;
    let mut chain = PayloadChain::new();
    chain.push_payload(&Payload::IdR(IdPayload { kind: IdType::Fqdn, data: b"east.example" }));
    chain.push_payload(&Payload::Auth(AuthPayload { method: AuthMethod::SharedKey, data: &[0x55; 32] }));
    let header = Header {
        flags: FLAG_RESPONSE,
        exchange: ExchangeType::IkeAuth,
        message_id: 1,
        ..Header::parse(&x_r.response).unwrap()
    };
    let forged = SkCipher::new(&x_r.keys, false).unwrap().seal(&header, &chain, &mut rr).unwrap();
    let sent = d.send_auth(psk(b"s3cret", "west.example", None), &mut ir).unwrap();
    match sent.handle_response(&forged) {
        InitiatorAuthStep::Failed(e) => assert_eq!(e, AuthError::AuthenticationFailed),
        other => panic!("{other:?}"),
    }
}

/// A request altered in flight does not open: dropped, no answer, the
/// half-open SA waits for the genuine one (§2.21.2).
#[test]
fn altered_auth_request_is_dropped() {
    let (d, r, mut ir, mut rr) = init_pair(24);
    let sent = d.send_auth(psk(b"s3cret", "west.example", None), &mut ir).unwrap();
    let mut bad = sent.request().to_vec();
    let n = bad.len() - 20;
    bad[n] ^= 1;
    let conf = psk(b"s3cret", "east.example", None);
    let step = r.handle_auth(&bad, &conf, &mut rr);
    let ResponderAuthStep::Ignored(r, e) = step else { panic!("{step:?}") };
    assert_eq!(e, AuthError::Sk(SkError::BadIcv));
    let ResponderAuthStep::Established(_) = r.handle_auth(sent.request(), &conf, &mut rr) else { panic!() };
}
