//! IKE fragmentation (RFC 7383) between two [`Session`]s in memory: a
//! certificate chain (RSA leaf, ECDSA intermediate, RSA root) too big for
//! a 1280-byte path goes as Encrypted Fragments both ways, and what a
//! stranger or a bad path does to fragments is counted and changes
//! nothing.
//!
//! ```text
//! west (198.51.100.1)                               east (203.0.113.1)
//! HDR(0), SAi1, KEi, Ni, N(NAT_D*), N(SHA), N(FRAGMENTATION_SUPPORTED)  -->
//!     <--  HDR(0), SAr1, KEr, Nr, CERTREQ, N(NAT_D*), N(SHA), N(FRAGMENTATION_SUPPORTED)
//! HDR(1), SKF(1/n){IDi, N(INITIAL_CONTACT), CERT, CERT, ..}  -->
//! HDR(1), SKF(n/n){.. AUTH, SAi2, TSi, TSr}                   -->
//!     <--  HDR(1), SKF(1/m){IDr, CERT, CERT, ..} .. SKF(m/m){.. TSr}
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, UNIX_EPOCH};

use esprit_ike::v2::auth::WireIdentity;
use esprit_ike::v2::cert::CertAuth;
use esprit_ike::v2::dropped::Dropped;
use esprit_ike::v2::frag::{FRAGMENT_SIZE_DEFAULT, REASSEMBLY_TIMEOUT};
use esprit_ike::v2::session::{Session, SessionConfig};
use esprit_ike::v2::wire::{Header, IdType, NotifyType, Payload, PayloadIter};
use esprit_ike::{Event, Retransmit};
use esprit_testrng::TestRng;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use zeroize::Zeroizing;

mod common;
use common::FixedRng;

/// The largest IKE message in a 1280-byte IPv4 datagram on port 500.
const MAX_IKE: usize = 1280 - 20 - 8;
/// 2026-05-28, inside the certificates' validity.
const NOW_UNIX: u64 = 1_780_000_000;

const RSA_CA: &[u8] = include_bytes!("certs/rsa-ca.pk8");
const RSA_WEST: &[u8] = include_bytes!("certs/rsa-west.pk8");
const RSA_EAST: &[u8] = include_bytes!("certs/rsa-east.pk8");

/// A certificate, its subject's name, the issuer's key and parameters.
fn params(cn: &str, ca: bool, sans: usize) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.remove(DnType::CommonName);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2030, 1, 1);
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    } else {
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Names enough to make the chain need three fragments or so.
        p.subject_alt_names = (0..sans)
            .map(|i| SanType::DnsName(format!("{cn}-{i:02}.gateways.example").try_into().unwrap()))
            .chain([SanType::DnsName(cn.try_into().unwrap())])
            .collect();
    }
    p
}

/// The two ends' certificate configurations: each leaf (RSA 2048)
/// under one ECDSA intermediate under the RSA root both trust; each
/// end sends leaf and intermediate.
fn chain_auths(sans: usize) -> (CertAuth, CertAuth) {
    let root_key = KeyPair::try_from(RSA_CA).unwrap();
    let root_p = params("esprit fragment root", true, 0);
    let root = root_p.self_signed(&root_key).unwrap().der().to_vec();
    let root_issuer = Issuer::new(root_p, root_key);
    let mid_key = KeyPair::generate().unwrap();
    let mid_p = params("esprit fragment intermediate", true, 0);
    let mid = mid_p.signed_by(&mid_key, &root_issuer).unwrap().der().to_vec();
    let mid_issuer = Issuer::new(mid_p, mid_key);
    let end = |pk8: &[u8], me: &str, peer: &str| {
        let key = KeyPair::try_from(pk8).unwrap();
        let leaf = params(me, false, sans).signed_by(&key, &mid_issuer).unwrap().der().to_vec();
        let id = |s: &str| WireIdentity { kind: IdType::Fqdn, data: s.as_bytes().to_vec() };
        let chain = vec![leaf, mid.clone()];
        CertAuth::new(chain, Zeroizing::new(key.serialize_der()), vec![root.clone()], id(me), Some(id(peer)))
            .unwrap()
    };
    (end(RSA_WEST, "west.example", "east.example"), end(RSA_EAST, "east.example", "west.example"))
}

fn config(west: bool, auth: CertAuth, fragment_size: Option<u16>) -> SessionConfig {
    // The seed's first proxy-ID and suites, as the fuzz target has them.
    let mut c = esprit_ike::v2::fuzz_session::config(west);
    c.auth = auth.into();
    c.retransmit = Retransmit { initial: Duration::from_secs(1), tries: 3 };
    c.fragment_size = fragment_size;
    c
}

/// West and east, their clock, and every datagram they sent.
struct Pair {
    w: Session<FixedRng>,
    e: Session<FixedRng>,
    now: Instant,
    /// Each batch one side sent at once, as (from west, datagrams).
    wire: Vec<(bool, Vec<Vec<u8>>)>,
}

fn pair(sans: usize, west_size: Option<u16>, east_size: Option<u16>) -> Pair {
    let (wa, ea) = chain_auths(sans);
    let rng = |seed: u64| FixedRng { bytes: TestRng::new(seed), spi_base: (seed as u32) << 16, spis: 0 };
    let mut w = Session::new(config(true, wa, west_size), rng(1)).unwrap();
    let mut e = Session::new(config(false, ea, east_size), rng(2)).unwrap();
    let now = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_secs(NOW_UNIX);
    w.set_wall_clock(now, wall);
    e.set_wall_clock(now, wall);
    w.initiate_child(now, esprit_ike::v2::fuzz_session::proxy_id()).unwrap();
    Pair { w, e, now, wire: Vec::new() }
}

impl Pair {
    /// Moves datagrams both ways until none is left; `path` decides
    /// what of each batch arrives (its number in the run, from west).
    fn run(&mut self, mut path: impl FnMut(usize, bool, Vec<Vec<u8>>) -> Vec<Vec<u8>>) {
        let mut idle = 0;
        for turn in 0..40 {
            let west = turn % 2 == 0;
            let (from, to) = if west { (&mut self.w, &mut self.e) } else { (&mut self.e, &mut self.w) };
            let sent: Vec<Vec<u8>> = core::iter::from_fn(|| from.poll_transmit()).map(|t| t.bytes).collect();
            if sent.is_empty() {
                idle += 1;
                if idle == 2 {
                    return;
                }
                continue;
            }
            idle = 0;
            let (local, remote) = (from.config().local, from.config().remote);
            self.wire.push((west, sent.clone()));
            for d in path(self.wire.len() - 1, west, sent) {
                let _ = to.handle_datagram(self.now, remote, local, &d);
            }
        }
    }

    fn events(&mut self) -> (Vec<Event>, Vec<Event>) {
        let w = core::iter::from_fn(|| self.w.poll_event()).collect();
        let e = core::iter::from_fn(|| self.e.poll_event()).collect();
        (w, e)
    }

    /// The batch west sent with IKE_AUTH (the second it sent).
    fn auth_request(&self) -> &Vec<Vec<u8>> {
        &self.wire.iter().filter(|(w, _)| *w).nth(1).unwrap().1
    }

    fn auth_response(&self) -> &Vec<Vec<u8>> {
        &self.wire.iter().filter(|(w, _)| !*w).nth(1).unwrap().1
    }
}

fn up(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::IkeSaUp { .. }))
        && events.iter().any(|e| matches!(e, Event::ChildSaUp(_)))
}

/// (next payload, exchange, message ID, fragment number, total) of a
/// fragment message.
fn numbers(msg: &[u8]) -> (u8, u8, u32, u16, u16) {
    let h = Header::parse(msg).unwrap();
    let n = u16::from_be_bytes([msg[32], msg[33]]);
    let t = u16::from_be_bytes([msg[34], msg[35]]);
    (h.next_payload, h.exchange.value(), h.message_id, n, t)
}

fn announces(msg: &[u8]) -> bool {
    let h = Header::parse(msg).unwrap();
    PayloadIter::of_message(msg, &h).any(|r| {
        matches!(Payload::parse(&r.unwrap()), Ok(Payload::Notify(n)) if n.kind == NotifyType::FragmentationSupported)
    })
}

fn all(_: usize, _: bool, b: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    b
}

/// Fragments of IKE_AUTH numbered 1..n of n, each within a 1280-byte
/// datagram, carrying more than one datagram could.
fn assert_fragments(batch: &[Vec<u8>]) {
    let n = batch.len();
    assert!(n >= 3, "{n} fragments");
    for (k, f) in batch.iter().enumerate() {
        assert!(f.len() <= MAX_IKE, "fragment {k} of {} bytes", f.len());
        assert_eq!(numbers(f), (53, 35, 1, k as u16 + 1, n as u16));
    }
    assert!(batch.iter().map(Vec::len).sum::<usize>() > MAX_IKE);
}

#[test]
fn a_certificate_chain_goes_in_fragments_both_ways() {
    let mut p = pair(24, Some(FRAGMENT_SIZE_DEFAULT), Some(FRAGMENT_SIZE_DEFAULT));
    p.run(all);
    let (w, e) = p.events();
    assert!(up(&w), "{w:?}");
    assert!(up(&e), "{e:?}");
    assert!(announces(&p.wire[0].1[0]) && announces(&p.wire[1].1[0]));
    assert_fragments(p.auth_request());
    assert_fragments(p.auth_response());
    // Every datagram of the run fits.
    assert!(p.wire.iter().flat_map(|(_, b)| b).all(|d| d.len() <= MAX_IKE));
    assert_eq!((p.w.dropped().total(), p.e.dropped().total()), (0, 0));
}

#[test]
fn with_one_end_not_announcing_messages_go_whole() {
    let mut p = pair(24, Some(FRAGMENT_SIZE_DEFAULT), None);
    p.run(all);
    let (w, e) = p.events();
    assert!(up(&w) && up(&e));
    assert!(announces(&p.wire[0].1[0]));
    assert!(!announces(&p.wire[1].1[0]));
    let req = p.auth_request();
    assert_eq!(req.len(), 1);
    assert!(req[0].len() > MAX_IKE);
    assert_eq!(Header::parse(&req[0]).unwrap().next_payload, 46);
}

#[test]
fn forged_reordered_and_duplicated_fragments_still_make_the_message() {
    let mut p = pair(24, Some(FRAGMENT_SIZE_DEFAULT), Some(FRAGMENT_SIZE_DEFAULT));
    p.run(|i, west, mut b| {
        if i != 2 || !west {
            return b;
        }
        // A forgery of fragment 2 first: ciphertext altered.
        let mut forged = b[1].clone();
        let at = forged.len() - 40;
        forged[at] ^= 0x80;
        b.reverse();
        let dup = b[1].clone();
        b.insert(2, dup);
        b.insert(0, forged);
        b
    });
    let (w, e) = p.events();
    assert!(up(&w) && up(&e), "{e:?}");
    let d = p.e.dropped();
    assert_eq!(d.get(Dropped::FragmentIntegrity), 1);
    assert_eq!(d.get(Dropped::FragmentDuplicate), 1);
    assert_eq!(d.total(), 2);
}

/// A copy of `f` with bytes `at..` replaced by `with`.
fn patched(f: &[u8], at: usize, with: &[u8]) -> Vec<u8> {
    let mut m = f.to_vec();
    m[at..at + with.len()].copy_from_slice(with);
    m
}

#[test]
fn impossible_numbers_are_refused_before_the_keys() {
    let mut p = pair(24, Some(FRAGMENT_SIZE_DEFAULT), Some(FRAGMENT_SIZE_DEFAULT));
    p.run(|i, west, b| {
        if i != 2 || !west {
            return b;
        }
        let n = b.len() as u16;
        let mut out = vec![
            patched(&b[0], 32, &[0, 0]),                   // number 0
            patched(&b[0], 32, &(n + 1).to_be_bytes()),    // past the total
            patched(&b[0], 34, &[0, 0]),                   // total 0
            patched(&b[0], 32, &[0xff, 0xff, 0xff, 0xff]), // total 65535
            patched(&b[1], 28, &[33]),                     // a next payload in fragment 2
        ];
        out.extend(b);
        out
    });
    let (_, e) = p.events();
    assert!(up(&e));
    assert_eq!(p.e.dropped().get(Dropped::FragmentInvalid), 5);
    assert_eq!(p.e.dropped().total(), 5);
}

#[test]
fn fragments_of_the_answered_request_resend_the_response_on_the_first_only() {
    let mut p = pair(24, Some(FRAGMENT_SIZE_DEFAULT), Some(FRAGMENT_SIZE_DEFAULT));
    p.run(all);
    assert!(p.e.is_established());
    let (req, resp) = (p.auth_request().clone(), p.auth_response().clone());
    let (from, to) = (p.w.config().local, p.w.config().remote);
    for f in req.iter().skip(1) {
        let _ = p.e.handle_datagram(p.now, to, from, f);
    }
    assert_eq!(p.e.dropped().get(Dropped::FragmentStale), req.len() as u64 - 1);
    assert!(p.e.poll_transmit().is_none());
    let _ = p.e.handle_datagram(p.now, to, from, &req[0]);
    assert_eq!(p.e.dropped().get(Dropped::RetransmitAnswered), 1);
    let again: Vec<_> = core::iter::from_fn(|| p.e.poll_transmit()).map(|t| t.bytes).collect();
    assert_eq!(again, resp, "the same fragments again");
}

#[test]
fn a_lost_fragment_comes_with_the_retransmission_and_a_stale_half_expires() {
    let mut p = pair(24, Some(FRAGMENT_SIZE_DEFAULT), Some(FRAGMENT_SIZE_DEFAULT));
    // Fragment 2 of IKE_AUTH lost: east holds the rest and says nothing.
    p.run(|i, west, mut b| {
        if i == 2 && west {
            b.remove(1);
        }
        b
    });
    assert!(!p.e.is_established());
    let first = p.auth_request().clone();
    let (from, to) = (p.w.config().local, p.w.config().remote);
    // West retransmits: all fragments, the same bytes.
    p.now += Duration::from_secs(1);
    p.w.handle_timeout(p.now);
    let again: Vec<_> = core::iter::from_fn(|| p.w.poll_transmit()).map(|t| t.bytes).collect();
    assert_eq!(again, first);
    for f in &again {
        let _ = p.e.handle_datagram(p.now, to, from, f);
    }
    assert!(p.e.is_established());
    // Fragment 1 was held already; those after 2 come when the message
    // is whole and answered.
    assert_eq!(p.e.dropped().get(Dropped::FragmentDuplicate), 1);
    assert_eq!(p.e.dropped().get(Dropped::FragmentStale), again.len() as u64 - 2);

    // A half message of a request still to come waits no longer than
    // REASSEMBLY_TIMEOUT.
    let mut q = pair(24, Some(FRAGMENT_SIZE_DEFAULT), Some(FRAGMENT_SIZE_DEFAULT));
    q.run(|i, west, b| if i == 2 && west { b[..1].to_vec() } else { b });
    assert_eq!(q.e.poll_timeout().map(|t| t <= q.now + REASSEMBLY_TIMEOUT), Some(true));
    q.e.handle_timeout(q.now + REASSEMBLY_TIMEOUT);
    assert_eq!(q.e.dropped().get(Dropped::FragmentExpired), 1);
}

#[test]
fn fragments_not_negotiated_or_in_ike_sa_init_are_dropped() {
    let mut p = pair(24, Some(FRAGMENT_SIZE_DEFAULT), Some(FRAGMENT_SIZE_DEFAULT));
    p.run(all);
    let f = p.auth_request()[0].clone();
    let (from, to) = (p.w.config().local, p.w.config().remote);
    // An end with fragmentation off.
    let mut off = pair(24, Some(FRAGMENT_SIZE_DEFAULT), None);
    assert!(off.e.handle_datagram(off.now, to, from, &f).is_err());
    assert_eq!(off.e.dropped().get(Dropped::FragmentUnwanted), 1);
    // A fragment claiming IKE_SA_INIT.
    let _ = p.e.handle_datagram(p.now, to, from, &patched(&f, 18, &[34]));
    assert_eq!(p.e.dropped().get(Dropped::FragmentUnwanted), 1);
    // A fragment of SPIs nobody knows.
    let _ = p.e.handle_datagram(p.now, to, from, &patched(&f, 8, &[0x42; 8]));
    assert_eq!(p.e.dropped().get(Dropped::UnknownSpi), 1);
}
