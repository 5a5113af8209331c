//! IKE_AUTH with certificates (RFC 7296 §2.15, §3.6, §3.7; RFC 7427):
//! two [`Session`]s in memory authenticating each other with RSA and with
//! ECDSA certificates made here by rcgen, and each check of the peer's
//! CERT and AUTH failing alone, with AUTHENTICATION_FAILED and its word.
//!
//! ```text
//! west (198.51.100.1)                             east (203.0.113.1)
//! HDR(0), SAi1, KEi, Ni, N(NAT_D*), N(SIGNATURE_HASH_ALGORITHMS)  -->
//!          <--  HDR(0), SAr1, KEr, Nr, CERTREQ, N(NAT_D*), N(SIGNATURE_HASH_ALGORITHMS)
//! HDR(1), SK{IDi, N(INITIAL_CONTACT), CERT, CERTREQ, IDr, AUTH(14), SAi2, TSi, TSr}  -->
//!          <--  HDR(1), SK{IDr, CERT, AUTH(14), SAr2, TSi, TSr}
//!          <--  HDR(1), SK{N(AUTHENTICATION_FAILED)}           (a check failed)
//! ```
//!
//! The failure cases build the initiator's IKE_AUTH request here, from
//! §2.15's pieces and RFC 7427's encoding, signed with ring directly, so
//! that each is wrong in one way only; the first test shows such a
//! request, built right, is accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use esprit_ike::v2::alg::{EncrAlg, IntegAlg, PrfAlg};
use esprit_ike::v2::auth::{AuthError, Authenticator, ResponderAuthStep, WireIdentity};
use esprit_ike::v2::cert::{subject_identity, CertAuth, CertAuthError, CertConfigError};
use esprit_ike::v2::child::ChildConfig;
use esprit_ike::v2::config::IkeSaProposal;
use esprit_ike::v2::init::InitExchange;
use esprit_ike::v2::initiator::{InitDone, InitiatorConfig, InitiatorStart, InitiatorStep};
use esprit_ike::v2::responder::{InitResponder, ResponderConfig, ResponderInitDone};
use esprit_ike::v2::session::{Session, SessionConfig};
use esprit_ike::v2::sk::SkCipher;
use esprit_ike::v2::wire::{
    AuthMethod, AuthPayload, CertEncoding, CertPayload, ExchangeType, Header, IdPayload, IdType, NotifyType,
    Payload, PayloadChain, PayloadIter, FLAG_INITIATOR,
};
use esprit_ike::{DhGroup, Event, Lifetime, Retransmit, Suite};
use esprit_policy::ProxyId;
use esprit_testrng::TestRng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

mod common;
use common::FixedRng;

const WEST: &str = "198.51.100.1:500";
const EAST: &str = "203.0.113.1:500";
/// 2026-05-28: inside the good certificates' 2025-2028 validity.
const NOW_UNIX: u64 = 1_780_000_000;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
}

fn rng(seed: u64) -> FixedRng {
    FixedRng { bytes: TestRng::new(seed), spi_base: (seed as u32) << 16, spis: 0 }
}

fn fqdn(s: &str) -> WireIdentity {
    WireIdentity { kind: IdType::Fqdn, data: s.as_bytes().to_vec() }
}

// Certificates, made with rcgen.

/// The RSA keys, PKCS#8 (tests/certs/make_rsa_keys.py).
const RSA_CA: &[u8] = include_bytes!("certs/rsa-ca.pk8");
const RSA_WEST: &[u8] = include_bytes!("certs/rsa-west.pk8");
const RSA_EAST: &[u8] = include_bytes!("certs/rsa-east.pk8");

fn rsa_key(pkcs8: &[u8]) -> KeyPair {
    KeyPair::try_from(pkcs8).unwrap()
}

fn ec_key(p384: bool) -> KeyPair {
    KeyPair::generate_for(if p384 { &PKCS_ECDSA_P384_SHA384 } else { &PKCS_ECDSA_P256_SHA256 }).unwrap()
}

/// A certification authority.
struct Ca {
    der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.remove(DnType::CommonName);
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2030, 1, 1);
    p
}

fn ca(name: &str, key: KeyPair) -> Ca {
    let p = ca_params(name);
    let der = p.self_signed(&key).unwrap().der().to_vec();
    Ca { der, issuer: Issuer::new(p, key) }
}

/// What an end-entity certificate holds.
struct Leaf {
    cn: &'static str,
    sans: Vec<SanType>,
    key_usage: Vec<KeyUsagePurpose>,
    years: (i32, i32),
}

fn leaf(cn: &'static str) -> Leaf {
    Leaf {
        cn,
        sans: vec![SanType::DnsName(cn.try_into().unwrap())],
        key_usage: vec![KeyUsagePurpose::DigitalSignature],
        years: (2025, 2028),
    }
}

impl Ca {
    /// A CA below this one.
    fn intermediate(&self, name: &str) -> Ca {
        let (p, key) = (ca_params(name), ec_key(false));
        let der = p.signed_by(&key, &self.issuer).unwrap().der().to_vec();
        Ca { der, issuer: Issuer::new(p, key) }
    }

    fn issue(&self, key: &KeyPair, l: Leaf) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name.remove(DnType::CommonName);
        p.distinguished_name.push(DnType::OrganizationName, "esprit test");
        p.distinguished_name.push(DnType::CommonName, l.cn);
        p.subject_alt_names = l.sans;
        p.key_usages = l.key_usage;
        p.not_before = rcgen::date_time_ymd(l.years.0, 1, 1);
        p.not_after = rcgen::date_time_ymd(l.years.1, 1, 1);
        p.signed_by(key, &self.issuer).unwrap().der().to_vec()
    }
}

/// A side's certificate configuration.
fn cert_auth(
    ca: &Ca,
    key: &KeyPair,
    cert: Vec<u8>,
    local: WireIdentity,
    remote: Option<WireIdentity>,
) -> CertAuth {
    CertAuth::new(vec![cert], Zeroizing::new(key.serialize_der()), vec![ca.der.clone()], local, remote)
        .unwrap()
}

// Two sessions.

fn proxy_id() -> ProxyId {
    "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY".parse().unwrap()
}

fn session_config(west: bool, auth: CertAuth) -> SessionConfig {
    let (local, remote) = if west { (WEST, EAST) } else { (EAST, WEST) };
    let p = proxy_id();
    let p = if west { p } else { ProxyId { local: p.remote, remote: p.local, service: p.service } };
    SessionConfig {
        name: if west { "west" } else { "east" }.into(),
        local: addr(local),
        remote: addr(remote),
        proposals: vec![IkeSaProposal {
            encr: vec![EncrAlg::AesCbc256],
            prf: vec![PrfAlg::HmacSha256],
            integ: vec![IntegAlg::HmacSha256_128],
            dh: vec![DhGroup::Ecp256],
        }],
        auth: auth.into(),
        child: ChildConfig {
            proxy_ids: vec![p],
            pfs: None,
            pfs_also: vec![],
            lifetime: Lifetime { seconds: 1800, kilobytes: 0 },
            suites: vec![Suite::Aes128Gcm16],
            esn: false,
        },
        retransmit: Retransmit { initial: Duration::from_secs(1), tries: 3 },
        dpd: None,
        dpd_retries: None,
        fragment_size: Some(esprit_ike::v2::frag::FRAGMENT_SIZE_DEFAULT),
    }
}

/// What two sessions said and sent.
struct Outcome {
    west: Vec<Event>,
    east: Vec<Event>,
    /// Every datagram, as (from west, bytes).
    wire: Vec<(bool, Vec<u8>)>,
    east_up: bool,
}

/// West asks for the child; datagrams go back and forth until none is
/// left. The sessions know the wall clock unless `clock` is false.
fn run(west: CertAuth, east: CertAuth, clock: bool) -> Outcome {
    let now = Instant::now();
    let mut w = Session::new(session_config(true, west), rng(1)).unwrap();
    let mut e = Session::new(session_config(false, east), rng(2)).unwrap();
    if clock {
        // An anchor an hour back: the session counts on from it.
        w.set_wall_clock(now, wall());
        e.set_wall_clock(now - Duration::from_secs(3600), wall() - Duration::from_secs(3600));
    }
    w.initiate_child(now, proxy_id()).unwrap();
    let mut wire = Vec::new();
    for _ in 0..10 {
        let mut moved = false;
        while let Some(t) = w.poll_transmit() {
            moved = true;
            wire.push((true, t.bytes.clone()));
            let _ = e.handle_datagram(now, t.remote, t.local, &t.bytes);
        }
        while let Some(t) = e.poll_transmit() {
            moved = true;
            wire.push((false, t.bytes.clone()));
            let _ = w.handle_datagram(now, t.remote, t.local, &t.bytes);
        }
        if !moved {
            break;
        }
    }
    let drain = |s: &mut Session<FixedRng>| core::iter::from_fn(|| s.poll_event()).collect::<Vec<_>>();
    let east_up = e.is_established();
    Outcome { west: drain(&mut w), east: drain(&mut e), wire, east_up }
}

fn up(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::IkeSaUp { .. }))
        && events.iter().any(|e| matches!(e, Event::ChildSaUp(_)))
}

/// The detail of the AuthFailed event, if any.
fn auth_failed(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::AuthFailed { detail, .. } => Some(detail.clone()),
        _ => None,
    })
}

/// The Notify types and the CERTREQ data of an unencrypted message.
fn init_payloads(msg: &[u8]) -> (Vec<NotifyType>, Option<Vec<u8>>, Option<Vec<u8>>) {
    let h = Header::parse(msg).unwrap();
    let (mut notifies, mut hashes, mut certreq) = (Vec::new(), None, None);
    for raw in PayloadIter::of_message(msg, &h) {
        match Payload::parse(&raw.unwrap()).unwrap() {
            Payload::Notify(n) => {
                notifies.push(n.kind);
                if n.kind == NotifyType::SignatureHashAlgorithms {
                    hashes = Some(n.data.to_vec());
                }
            }
            Payload::CertReq(c) => {
                assert_eq!(c.encoding, CertEncoding::X509Signature);
                certreq = Some(c.data.to_vec());
            }
            _ => {}
        }
    }
    (notifies, hashes, certreq)
}

/// SHA-1 of a certificate's SubjectPublicKeyInfo (§3.7), found here with
/// webpki's reading of the certificate.
fn spki_sha1(der: &[u8]) -> Vec<u8> {
    let der = rustls_pki_types::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).unwrap();
    Sha1::digest(cert.subject_public_key_info().as_ref()).to_vec()
}

/// RSA certificates from one RSA CA: west shows its FQDN, east its
/// subject DN (ID_DER_ASN1_DN); both ends up, the child with them, and
/// IKE_SA_INIT carrying RFC 7427's Notify both ways and the responder's
/// CERTREQ naming the CA.
#[test]
fn rsa_certificates_authenticate_both_ends() {
    let ca = ca("esprit RSA CA", rsa_key(RSA_CA));
    let (wk, ek) = (rsa_key(RSA_WEST), rsa_key(RSA_EAST));
    let (wc, ec) = (ca.issue(&wk, leaf("west.example")), ca.issue(&ek, leaf("east.example")));
    let east_dn = subject_identity(&ec).unwrap();
    assert_eq!(east_dn.kind, IdType::DerAsn1Dn);
    let west = cert_auth(&ca, &wk, wc, fqdn("west.example"), Some(east_dn.clone()));
    let east = cert_auth(&ca, &ek, ec, east_dn, Some(fqdn("west.example")));
    let o = run(west, east, true);
    assert!(up(&o.west), "{:?}", o.west);
    assert!(up(&o.east), "{:?}", o.east);
    let (sent, hashes, certreq) = init_payloads(&o.wire[0].1);
    assert!(sent.contains(&NotifyType::SignatureHashAlgorithms));
    assert_eq!(hashes.unwrap(), [0, 2, 0, 3, 0, 4]);
    assert_eq!(certreq, None);
    let (_, hashes, certreq) = init_payloads(&o.wire[1].1);
    assert_eq!(hashes.unwrap(), [0, 2, 0, 3, 0, 4]);
    assert_eq!(certreq.unwrap(), spki_sha1(&ca.der));
}

/// ECDSA: west P-256 (ID_RFC822_ADDR), east P-384 (ID_IPV4_ADDR), under a
/// P-256 CA; AUTH signed with SHA-256 and SHA-384.
#[test]
fn ecdsa_certificates_authenticate_both_ends() {
    let ca = ca("esprit ECDSA CA", ec_key(false));
    let (wk, ek) = (ec_key(false), ec_key(true));
    let mut wl = leaf("west.example");
    wl.sans = vec![SanType::Rfc822Name("gw@west.example".try_into().unwrap())];
    let mut el = leaf("east.example");
    el.sans.push(SanType::IpAddress(IpAddr::from([203, 0, 113, 1])));
    let west_id = WireIdentity { kind: IdType::Rfc822Addr, data: b"gw@west.example".to_vec() };
    let east_id = WireIdentity { kind: IdType::Ipv4Addr, data: vec![203, 0, 113, 1] };
    let west = cert_auth(&ca, &wk, ca.issue(&wk, wl), west_id.clone(), None);
    let east = cert_auth(&ca, &ek, ca.issue(&ek, el), east_id, Some(west_id));
    let o = run(west, east, true);
    assert!(up(&o.west), "{:?}", o.west);
    assert!(up(&o.east), "{:?}", o.east);
}

/// West with a P-256 key certified by `west_ca`, east with one certified
/// by `east_ca` as `east`, each trusting its own CA, run to the end.
fn ecdsa_run(west_ca: &Ca, east_ca: &Ca, east: Leaf, clock: bool) -> Outcome {
    let (wk, ek) = (ec_key(false), ec_key(false));
    let west_cert = west_ca.issue(&wk, leaf("west.example"));
    let west = cert_auth(west_ca, &wk, west_cert, fqdn("west.example"), None);
    let east = cert_auth(east_ca, &ek, east_ca.issue(&ek, east), fqdn("east.example"), None);
    run(west, east, clock)
}

/// The responder's certificate fails the initiator's check: the
/// initiator fails as for a wrong PSK, with the reason.
#[test]
fn an_expired_responder_certificate_fails_the_initiator() {
    let ca = ca("esprit ECDSA CA", ec_key(false));
    let mut old = leaf("east.example");
    old.years = (2020, 2021);
    let o = ecdsa_run(&ca, &ca, old, true);
    assert_eq!(auth_failed(&o.west).as_deref(), Some("authentication failed: certificate expired"));
    assert!(o.west.iter().any(|e| matches!(e, Event::IkeSaDown { .. })), "{:?}", o.west);
    assert!(!up(&o.west));
}

/// The initiator's certificate fails the responder's check:
/// N(AUTHENTICATION_FAILED) back, both ends report it, nothing comes up.
#[test]
fn a_certificate_from_another_ca_fails_at_the_responder() {
    let ours = ca("esprit ECDSA CA", ec_key(false));
    let theirs = ca("someone else's CA", ec_key(false));
    let o = ecdsa_run(&theirs, &ours, leaf("east.example"), true);
    assert_eq!(
        auth_failed(&o.east).as_deref(),
        Some("authentication failed: certificate not issued by a trusted CA")
    );
    assert!(auth_failed(&o.west).is_some(), "{:?}", o.west);
    assert!(!o.east_up && !up(&o.west));
}

/// A session never told the wall-clock time refuses certificates rather
/// than guess.
#[test]
fn without_a_wall_clock_certificates_fail() {
    let ca = ca("esprit ECDSA CA", ec_key(false));
    let o = ecdsa_run(&ca, &ca, leaf("east.example"), false);
    assert_eq!(
        auth_failed(&o.east).as_deref(),
        Some("authentication failed: no wall-clock time to check the certificate against")
    );
}

// Each check alone, at the responder, on requests built here.

/// One CA, west's and east's keys and certificates, IKE_SA_INIT done.
struct Bench {
    ca: Ca,
    west_key: KeyPair,
    east: Authenticator,
    done: InitDone,
    responder: ResponderInitDone,
    rng: FixedRng,
}

fn bench(seed: u64) -> Bench {
    let ca = ca("esprit ECDSA CA", ec_key(false));
    let (west_key, ek) = (ec_key(false), ec_key(false));
    let east = cert_auth(&ca, &ek, ca.issue(&ek, leaf("east.example")), fqdn("east.example"), None).into();
    let p = vec![IkeSaProposal {
        encr: vec![EncrAlg::AesCbc128],
        prf: vec![PrfAlg::HmacSha256],
        integ: vec![IntegAlg::HmacSha256_128],
        dh: vec![DhGroup::Ecp256],
    }];
    let mut ir = rng(seed);
    let mut rr = rng(seed + 1);
    let ini = InitiatorStart::new(InitiatorConfig::new(p.clone()), addr(WEST), addr(EAST))
        .unwrap()
        .start(&mut ir)
        .unwrap();
    let mut resp = InitResponder::new(ResponderConfig::new(p), &mut rr).unwrap();
    let reply = resp.respond(ini.request(), addr(EAST), addr(WEST), 0, Instant::now(), &mut rr);
    let InitiatorStep::Done(done) = ini.handle_response(reply.answer().unwrap(), &mut ir) else { panic!() };
    let responder = resp.take(addr(WEST), done.spi_i).unwrap();
    Bench { ca, west_key, east, done, responder, rng: rr }
}

/// §2.15 from its pieces: RealMessage1 | `nonce` | prf(SK_pi, IDi body).
fn initiator_octets(x: &InitExchange, nonce: &[u8], id: &WireIdentity) -> Vec<u8> {
    let body = [&[id.kind.value(), 0, 0, 0][..], &id.data].concat();
    let maced = x.chosen.prf.prf(&x.keys.sk_pi, &[&body]);
    [&x.request[..], nonce, &maced].concat()
}

/// RFC 7427 §3 AUTH data with ring: length, ecdsa-with-SHA256 (Appendix
/// A), the DER signature.
fn ecdsa_auth(key: &KeyPair, octets: &[u8]) -> Vec<u8> {
    const ECDSA_SHA256: [u8; 12] = [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let rng = ring::rand::SystemRandom::new();
    let k = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &key.serialize_der(), &rng).unwrap();
    [&[12u8][..], &ECDSA_SHA256, k.sign(&rng, octets).unwrap().as_ref()].concat()
}

/// HDR(1), SK{IDi, CERT*, AUTH} under the initiator's keys.
fn request(x: &InitExchange, id: &WireIdentity, certs: &[&[u8]], method: AuthMethod, auth: &[u8]) -> Vec<u8> {
    let mut chain = PayloadChain::new();
    chain.push_payload(&Payload::IdI(IdPayload { kind: id.kind, data: &id.data }));
    for c in certs {
        chain.push_payload(&Payload::Cert(CertPayload { encoding: CertEncoding::X509Signature, data: c }));
    }
    chain.push_payload(&Payload::Auth(AuthPayload { method, data: auth }));
    let h = Header {
        spi_i: x.spi_i,
        spi_r: x.spi_r,
        next_payload: 0,
        exchange: ExchangeType::IkeAuth,
        flags: FLAG_INITIATOR,
        message_id: 1,
        length: 0,
    };
    SkCipher::new(&x.keys, true).unwrap().seal(&h, &chain, &mut rng(99)).unwrap()
}

/// Makes AUTH data from the initiator's key and the octets to sign.
type Signer = Box<dyn Fn(&KeyPair, &[u8]) -> Vec<u8>>;

/// How one forged request is wrong.
struct Case {
    id: WireIdentity,
    certs: Vec<Vec<u8>>,
    method: AuthMethod,
    /// Signs the octets given (or anything else).
    auth: Signer,
    /// The nonce signed (`None`: Nr, the right one).
    nonce: Option<Vec<u8>>,
}

fn good_case(b: &Bench) -> Case {
    Case {
        id: fqdn("west.example"),
        certs: vec![b.ca.issue(&b.west_key, leaf("west.example"))],
        method: AuthMethod::DigitalSignature,
        auth: Box::new(ecdsa_auth),
        nonce: None,
    }
}

/// The responder's verdict on `case`: `Ok` if up; else the error, after
/// checking the answer is SK{N(AUTHENTICATION_FAILED)}.
fn verdict(b: Bench, edit: impl FnOnce(&Bench, &mut Case)) -> Result<WireIdentity, AuthError> {
    let mut case = good_case(&b);
    edit(&b, &mut case);
    let x = &b.done;
    let nonce = case.nonce.clone().unwrap_or_else(|| x.nr.clone());
    let octets = initiator_octets(x, &nonce, &case.id);
    let auth = (case.auth)(&b.west_key, &octets);
    let certs: Vec<&[u8]> = case.certs.iter().map(Vec::as_slice).collect();
    let msg = request(x, &case.id, &certs, case.method, &auth);
    let Bench { east, done, responder, mut rng, .. } = b;
    match responder.handle_auth_at(&msg, &east, None, Some(wall()), &mut rng) {
        ResponderAuthStep::Established(est) => Ok(est.peer),
        ResponderAuthStep::Failed { response, error } => {
            let answer = SkCipher::new(&done.keys, true).unwrap().open(&response.unwrap()).unwrap();
            let kinds: Vec<_> = answer
                .payloads()
                .map(|r| match Payload::parse(&r.unwrap()).unwrap() {
                    Payload::Notify(n) => n.kind,
                    other => panic!("{:?} in a refusal", other.kind()),
                })
                .collect();
            assert_eq!(kinds, [NotifyType::AuthenticationFailed]);
            Err(error)
        }
        ResponderAuthStep::Ignored(_, e) => panic!("ignored: {e}"),
    }
}

fn refused(why: CertAuthError) -> Result<WireIdentity, AuthError> {
    Err(AuthError::Certificate(why))
}

#[test]
fn a_request_built_from_the_rfc_is_accepted() {
    assert_eq!(verdict(bench(10), |_, _| {}), Ok(fqdn("west.example")));
}

/// RSASSA-PSS with SHA-256 is taken too (RFC 7427 Appendix A.4), its
/// AlgorithmIdentifier as webpki spells it.
#[test]
fn an_rsa_pss_signature_is_accepted() {
    let r = verdict(bench(30), |b, c| {
        c.certs = vec![b.ca.issue(&rsa_key(RSA_WEST), leaf("west.example"))];
        c.auth = Box::new(|_, octets| {
            let rng = ring::rand::SystemRandom::new();
            let k = ring::signature::RsaKeyPair::from_pkcs8(RSA_WEST).unwrap();
            let mut sig = vec![0; k.public().modulus_len()];
            k.sign(&ring::signature::RSA_PSS_SHA256, &rng, octets, &mut sig).unwrap();
            let id = webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY.signature_alg_id();
            let alg = [&[0x30, id.as_ref().len() as u8][..], id.as_ref()].concat();
            [&[alg.len() as u8][..], &alg, &sig].concat()
        });
    });
    assert_eq!(r, Ok(fqdn("west.example")));
}

/// The initiator's request: §1.2's order, our chain, a CERTREQ naming
/// our CA, AUTH by Digital Signature.
#[test]
fn the_request_carries_cert_certreq_and_a_digital_signature() {
    let b = bench(31);
    let west = cert_auth(
        &b.ca,
        &b.west_key,
        b.ca.issue(&b.west_key, leaf("west.example")),
        fqdn("west.example"),
        Some(fqdn("east.example")),
    );
    let keys = SkCipher::new(&b.responder.keys, false).unwrap();
    let mut ir = rng(32);
    let sent = b.done.send_auth_first(west.clone(), None, true, &mut ir).unwrap();
    let opened = keys.open(sent.request()).unwrap();
    let mut seen = Vec::new();
    for raw in opened.payloads() {
        seen.push(match Payload::parse(&raw.unwrap()).unwrap() {
            Payload::Notify(n) => format!("N({:?})", n.kind),
            Payload::Cert(c) => {
                assert_eq!(c.data, west.chain()[0]);
                "CERT".into()
            }
            Payload::CertReq(c) => {
                assert_eq!(c.data, spki_sha1(&b.ca.der));
                "CERTREQ".into()
            }
            Payload::Auth(a) => format!("AUTH({:?})", a.method),
            p => format!("{:?}", p.kind()),
        });
    }
    assert_eq!(seen, ["IdI", "N(InitialContact)", "CERT", "CERTREQ", "IdR", "AUTH(DigitalSignature)"]);
}

#[test]
fn a_flipped_byte_of_the_signature_fails() {
    let r = verdict(bench(11), |_, c| {
        c.auth = Box::new(|k, o| {
            let mut a = ecdsa_auth(k, o);
            let last = a.len() - 1;
            a[last] ^= 1;
            a
        })
    });
    assert_eq!(r, refused(CertAuthError::BadSignature));
}

#[test]
fn a_signature_over_the_wrong_octets_fails() {
    // Signed with Ni, the initiator's own nonce, instead of Nr.
    let r = verdict(bench(12), |b, c| c.nonce = Some(b.done.ni.clone()));
    assert_eq!(r, refused(CertAuthError::BadSignature));
}

/// A chain through an intermediate CA: taken when the intermediate is
/// sent after the end entity (§3.6), not without it.
#[test]
fn an_intermediate_ca_sent_along_is_followed() {
    let r = verdict(bench(33), |b, c| {
        let sub = b.ca.intermediate("esprit sub-CA");
        c.certs = vec![sub.issue(&b.west_key, leaf("west.example")), sub.der.clone()];
    });
    assert_eq!(r, Ok(fqdn("west.example")));
    let r = verdict(bench(34), |b, c| {
        let sub = b.ca.intermediate("esprit sub-CA");
        c.certs = vec![sub.issue(&b.west_key, leaf("west.example"))];
    });
    assert_eq!(r, refused(CertAuthError::UntrustedIssuer));
}

#[test]
fn a_certificate_from_another_ca_fails() {
    let r = verdict(bench(13), |b, c| {
        let other = ca("esprit ECDSA CA", ec_key(false));
        c.certs = vec![other.issue(&b.west_key, leaf("west.example"))];
    });
    assert_eq!(r, refused(CertAuthError::UntrustedIssuer));
}

#[test]
fn an_expired_certificate_fails() {
    let r = verdict(bench(14), |b, c| {
        let mut l = leaf("west.example");
        l.years = (2020, 2021);
        c.certs = vec![b.ca.issue(&b.west_key, l)];
    });
    assert_eq!(r, refused(CertAuthError::Expired));
    let r = verdict(bench(15), |b, c| {
        let mut l = leaf("west.example");
        l.years = (2027, 2029);
        c.certs = vec![b.ca.issue(&b.west_key, l)];
    });
    assert_eq!(r, refused(CertAuthError::NotYetValid));
}

#[test]
fn a_certificate_without_digital_signature_usage_fails() {
    let r = verdict(bench(16), |b, c| {
        let mut l = leaf("west.example");
        l.key_usage = vec![KeyUsagePurpose::KeyEncipherment];
        c.certs = vec![b.ca.issue(&b.west_key, l)];
    });
    assert_eq!(r, refused(CertAuthError::KeyUsage));
}

#[test]
fn an_identity_the_certificate_does_not_hold_fails() {
    let r = verdict(bench(17), |_, c| c.id = fqdn("mallory.example"));
    assert_eq!(r, refused(CertAuthError::IdentityMismatch));
    // Another certificate's subject DN, and an address not in the SANs.
    let r = verdict(bench(18), |b, c| {
        let k = ec_key(false);
        c.id = subject_identity(&b.ca.issue(&k, leaf("east.example"))).unwrap();
    });
    assert_eq!(r, refused(CertAuthError::IdentityMismatch));
    let r = verdict(bench(19), |_, c| {
        c.id = WireIdentity { kind: IdType::Ipv4Addr, data: vec![198, 51, 100, 1] }
    });
    assert_eq!(r, refused(CertAuthError::IdentityMismatch));
    // ...while the subject DN of its own certificate is held.
    let r = verdict(bench(20), |_, c| c.id = subject_identity(&c.certs[0]).unwrap());
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn an_identity_other_than_the_configured_one_fails() {
    let mut b = bench(21);
    let ek = ec_key(false);
    b.east = cert_auth(
        &b.ca,
        &ek,
        b.ca.issue(&ek, leaf("east.example")),
        fqdn("east.example"),
        Some(fqdn("someone.example")),
    )
    .into();
    assert_eq!(verdict(b, |_, _| {}), refused(CertAuthError::UnexpectedIdentity));
}

#[test]
fn other_auth_methods_are_refused() {
    for method in [AuthMethod::RsaSignature, AuthMethod::SharedKey, AuthMethod::EcdsaP256] {
        let r = verdict(bench(22), |_, c| c.method = method);
        assert_eq!(r, refused(CertAuthError::Method(method)));
    }
    // An AlgorithmIdentifier nobody knows (a sha1WithRSAEncryption).
    let r = verdict(bench(23), |_, c| {
        c.auth = Box::new(|k, o| {
            let mut a = ecdsa_auth(k, o);
            a[11] = 0x05;
            a
        })
    });
    assert_eq!(r, refused(CertAuthError::SignatureAlgorithm));
}

/// A stranger's CERT payloads: none, garbage, too many, too large; each
/// refused with its word, none panics.
#[test]
fn hostile_certificate_payloads_are_refused() {
    let r = verdict(bench(24), |_, c| c.certs.clear());
    assert_eq!(r, refused(CertAuthError::NoCertificate));
    let r = verdict(bench(25), |_, c| c.certs = vec![vec![0x30, 0x82, 0xff, 0xff, 0]]);
    assert_eq!(r, refused(CertAuthError::Malformed));
    let r = verdict(bench(26), |_, c| {
        let one = c.certs[0].clone();
        c.certs = vec![one; 5];
    });
    assert_eq!(r, refused(CertAuthError::TooMany));
    let r = verdict(bench(27), |_, c| c.certs.push(vec![0x30; 17 * 1024]));
    assert_eq!(r, refused(CertAuthError::TooMany));
    // Every truncation of a good certificate: refused, never a panic.
    let b = bench(28);
    let cert = good_case(&b).certs.remove(0);
    for n in (0..cert.len()).step_by(7) {
        let r = verdict(bench(29), |_, c| c.certs = vec![cert[..n].to_vec()]);
        assert!(r.is_err(), "{n}");
    }
}

/// The configuration is checked once, when made.
#[test]
fn certificate_configuration_errors() {
    let ca = ca("esprit ECDSA CA", ec_key(false));
    let (k, other) = (ec_key(false), ec_key(false));
    let cert = ca.issue(&k, leaf("west.example"));
    let make = |chain: Vec<Vec<u8>>, key: &KeyPair, cas: Vec<Vec<u8>>, local: WireIdentity| {
        CertAuth::new(chain, Zeroizing::new(key.serialize_der()), cas, local, None).map(|_| ())
    };
    let id = fqdn("west.example");
    assert_eq!(make(vec![cert.clone()], &k, vec![ca.der.clone()], id.clone()), Ok(()));
    assert_eq!(make(vec![], &k, vec![ca.der.clone()], id.clone()), Err(CertConfigError::NoCertificate));
    assert_eq!(
        make(vec![cert.clone()], &other, vec![ca.der.clone()], id.clone()),
        Err(CertConfigError::KeyMismatch)
    );
    assert_eq!(make(vec![cert.clone()], &k, vec![], id.clone()), Err(CertConfigError::NoTrustAnchor));
    let no_key = CertAuth::new(
        vec![cert.clone()],
        Zeroizing::new(vec![0x30, 0]),
        vec![ca.der.clone()],
        id.clone(),
        None,
    );
    assert_eq!(no_key.map(|_| ()), Err(CertConfigError::BadKey));
    assert_eq!(
        make(vec![cert.clone()], &k, vec![vec![1, 2, 3]], id),
        Err(CertConfigError::BadTrustAnchor { index: 0 })
    );
    assert_eq!(
        make(vec![cert], &k, vec![ca.der.clone()], fqdn("east.example")),
        Err(CertConfigError::LocalIdentity)
    );
    // The private key never shows.
    let auth = cert_auth(&ca, &k, ca.issue(&k, leaf("west.example")), fqdn("west.example"), None);
    let shown = format!("{auth:?}");
    assert!(shown.contains("EcdsaP256") && !shown.contains("pkcs8"), "{shown}");
}
