//! Two esprit-ike endpoints exchanging messages through an in-memory
//! queue (quinn-proto / strongSwan unit-test style). Each message is drawn
//! where the test depends on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use esprit_ike::wire::{ExchangeType, Header, NotifyType};
use esprit_ike::{
    ChildSa, DhGroup, EncryptionAlg, Event, HashAlg, IkeProposal, Peer, PeerConfig, Reason, Suite, Transmit,
};
use esprit_policy::ProxyId;
use esprit_testrng::TestRng;

mod common;
use common::FixedRng;

const A: &str = "198.51.100.1:500";
const B: &str = "203.0.113.1:500";

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

/// The same proxy-ID seen from the peer: prefixes and ports swapped.
fn mirror(p: &ProxyId) -> ProxyId {
    let s = match p.service.ip_protocol() {
        None => p.service,
        Some(proto) => {
            esprit_policy::Service::with_ports(proto, p.service.dst_ports(), p.service.src_ports()).unwrap()
        }
    };
    ProxyId::new(p.remote, p.local, s).unwrap()
}

fn configs() -> (PeerConfig, PeerConfig) {
    let a: SocketAddr = A.parse().unwrap();
    let b: SocketAddr = B.parse().unwrap();
    let mut ca = PeerConfig::new("gw-b", a, b, b"seed-psk-0123456789");
    let mut cb = PeerConfig::new("gw-a", b, a, b"seed-psk-0123456789");
    ca.proxy_ids = seed_proxy_ids();
    cb.proxy_ids = seed_proxy_ids().iter().map(mirror).collect();
    (ca, cb)
}

fn peers(ca: PeerConfig, cb: PeerConfig) -> (Peer<FixedRng>, Peer<FixedRng>) {
    (
        Peer::new(
            ca,
            FixedRng { bytes: TestRng::new(0x1234_5678_9abc_def1), spi_base: 0xa100_0000, spis: 0 },
        ),
        Peer::new(
            cb,
            FixedRng { bytes: TestRng::new(0x0fed_cba9_8765_4321), spi_base: 0xb200_0000, spis: 0 },
        ),
    )
}

/// A message on the wire: who sent it, its exchange, and its bytes.
#[derive(Debug, Clone)]
struct Wire {
    from_a: bool,
    exchange: ExchangeType,
    t: Transmit,
}

fn deliver(now: Instant, to: &mut Peer<FixedRng>, t: &Transmit) {
    let _ = to.handle_datagram(now, t.remote, t.local, &t.bytes);
}

/// Moves messages both ways until both are quiet; returns the log.
fn pump(now: Instant, a: &mut Peer<FixedRng>, b: &mut Peer<FixedRng>) -> Vec<Wire> {
    let mut log = Vec::new();
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            log.push(Wire {
                from_a: true,
                exchange: Header::parse(&t.bytes).unwrap().exchange,
                t: t.clone(),
            });
            deliver(now, b, &t);
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            log.push(Wire {
                from_a: false,
                exchange: Header::parse(&t.bytes).unwrap().exchange,
                t: t.clone(),
            });
            deliver(now, a, &t);
            moved = true;
        }
        if !moved {
            return log;
        }
    }
}

/// Runs A's retransmissions (delivered to B) until A has given up or ten
/// minutes have passed; returns A's events.
fn give_up(mut now: Instant, a: &mut Peer<FixedRng>, b: &mut Peer<FixedRng>) -> Vec<Event> {
    let end = now + Duration::from_secs(600);
    let mut ev = Vec::new();
    while let Some(t) = a.poll_timeout().filter(|t| *t <= end) {
        now = now.max(t);
        a.handle_timeout(now);
        pump(now, a, b);
        ev.extend(events(a));
        if ev.iter().any(|e| matches!(e, Event::IkeSaDown { .. })) {
            break;
        }
    }
    ev
}

fn events(p: &mut Peer<FixedRng>) -> Vec<Event> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

fn children(ev: Vec<Event>) -> Vec<ChildSa> {
    split(ev).0
}

/// Child SAs, and the other events.
fn split(ev: Vec<Event>) -> (Vec<ChildSa>, Vec<Event>) {
    let mut c = Vec::new();
    let mut rest = Vec::new();
    for e in ev {
        match e {
            Event::ChildSaUp(x) => c.push(*x),
            other => rest.push(other),
        }
    }
    (c, rest)
}

/// Every child of A has a twin in B with mirrored SPIs, keys, proxy-ID.
fn assert_mirrored(ca: &[ChildSa], cb: &[ChildSa]) {
    assert_eq!(ca.len(), cb.len());
    for x in ca {
        let y = cb.iter().find(|y| y.spi_in == x.spi_out).expect("twin child");
        assert_eq!(y.spi_out, x.spi_in);
        assert_eq!(x.suite, y.suite);
        assert_eq!(*x.keys_in.encryption, *y.keys_out.encryption);
        assert_eq!(*x.keys_in.integrity, *y.keys_out.integrity);
        assert_eq!(*x.keys_out.encryption, *y.keys_in.encryption);
        assert_eq!(*x.keys_out.integrity, *y.keys_in.integrity);
        assert_ne!(*x.keys_in.encryption, *x.keys_out.encryption);
        assert_eq!(x.keys_in.encryption.len(), x.suite.encr_key_len());
        assert_eq!(x.keys_in.integrity.len(), x.suite.integ_key_len());
        assert_eq!(mirror(&x.proxy_id), y.proxy_id);
        assert_eq!(x.lifetime, y.lifetime);
        assert_eq!(x.pfs, y.pfs);
        assert!(x.initiator && !y.initiator);
    }
}

struct Outcome {
    xa: Vec<ChildSa>,
    xb: Vec<ChildSa>,
    log: Vec<Wire>,
    /// Other events of A and B.
    ea: Vec<Event>,
    eb: Vec<Event>,
}

fn run(a: &mut Peer<FixedRng>, b: &mut Peer<FixedRng>, proxy_ids: &[ProxyId]) -> Outcome {
    let now = Instant::now();
    for p in proxy_ids {
        a.initiate_child(now, *p).unwrap();
    }
    let log = pump(now, a, b);
    let (xa, ea) = split(events(a));
    let (xb, eb) = split(events(b));
    Outcome { xa, xb, log, ea, eb }
}

fn up(
    a: &mut Peer<FixedRng>,
    b: &mut Peer<FixedRng>,
    proxy_ids: &[ProxyId],
) -> (Vec<ChildSa>, Vec<ChildSa>, Vec<Wire>) {
    let o = run(a, b, proxy_ids);
    (o.xa, o.xb, o.log)
}

/// ```text
///   A (initiator)                          B (responder)
///   MM1 SA, VID, VID               -->
///                                  <--     MM2 SA, VID, VID
///   MM3 KE, Ni, NAT-D, NAT-D       -->
///                                  <--     MM4 KE, Nr, NAT-D, NAT-D
///   MM5* IDii, HASH_I, N(IC)       -->
///                                  <--     MM6* IDir, HASH_R
///   QM1* x4 (one per proxy-ID)     -->
///                                  <--     QM2* x4
///   QM3* x4                        -->
/// ```
#[test]
fn main_mode_and_four_quick_modes_for_the_seed_proxy_ids() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    let (xa, xb, log) = up(&mut a, &mut b, &seed_proxy_ids());
    let kinds: Vec<(bool, ExchangeType)> = log.iter().map(|w| (w.from_a, w.exchange)).collect();
    let mm = ExchangeType::MainMode;
    let qm = ExchangeType::QuickMode;
    assert_eq!(&kinds[..6], &[(true, mm), (false, mm), (true, mm), (false, mm), (true, mm), (false, mm)]);
    assert_eq!(kinds.iter().filter(|k| **k == (true, qm)).count(), 8);
    assert_eq!(kinds.iter().filter(|k| **k == (false, qm)).count(), 4);
    assert_eq!(xa.len(), 4);
    assert_mirrored(&xa, &xb);
    let mut got: Vec<ProxyId> = xa.iter().map(|c| c.proxy_id).collect();
    got.sort();
    let mut want = seed_proxy_ids();
    want.sort();
    assert_eq!(got, want);
    for c in &xa {
        assert_eq!(c.suite, Suite::Aes128Gcm16);
        assert_eq!(c.keys_in.encryption.len(), 20, "GCM key || salt");
        assert!(c.encap.is_none(), "no NAT: plain ESP");
        assert!(!format!("{c:?}").contains(&format!("{:?}", &c.keys_in.encryption[..4])));
    }
    assert!(a.is_established() && b.is_established());
}

/// esprit's vendor ID, MD5("esprit: parallel Quick Modes").
const VID_ESPRIT: [u8; 16] =
    [0xc4, 0xf5, 0x8d, 0xdc, 0xd1, 0xe0, 0x5c, 0xc7, 0xc5, 0x82, 0xbb, 0x49, 0xe4, 0x42, 0x4e, 0x94];

/// Both ends sent esprit's vendor ID in phase 1, so A runs its four Quick
/// Modes at once: all four QM1s leave before B's first QM2 (one at a time,
/// as towards other peers, would alternate them).
#[test]
fn esprit_peers_run_their_quick_modes_at_once() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    let (xa, xb, log) = up(&mut a, &mut b, &seed_proxy_ids());
    assert_eq!(xa.len(), 4);
    assert_mirrored(&xa, &xb);
    for (i, w) in log[..2].iter().enumerate() {
        assert!(w.t.bytes.windows(16).any(|v| v == VID_ESPRIT), "MM{} carries esprit's vendor ID", i + 1);
    }
    let qm: Vec<bool> =
        log.iter().filter(|w| w.exchange == ExchangeType::QuickMode).map(|w| w.from_a).collect();
    assert_eq!(&qm[..8], &[true, true, true, true, false, false, false, false], "QM1 x4, then QM2 x4");
}

#[test]
fn every_ike_group_and_every_pfs_group() {
    for g in DhGroup::ALL {
        let (mut ca, mut cb) = configs();
        let prop = IkeProposal { cipher: EncryptionAlg::Aes256Cbc, hash: HashAlg::Sha256, group: g };
        ca.ike_proposals = vec![prop];
        cb.ike_proposals = vec![prop];
        ca.pfs = Some(g);
        cb.pfs = Some(g);
        ca.esp_suites = vec![Suite::Aes256CbcSha256];
        cb.esp_suites = Suite::ALL.to_vec();
        let (mut a, mut b) = peers(ca, cb);
        let (xa, xb, _) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
        assert_eq!(xa.len(), 1, "group {g:?}");
        assert!(xa[0].pfs);
        assert_eq!(xa[0].suite, Suite::Aes256CbcSha256);
        assert_eq!(xa[0].keys_in.integrity.len(), 32);
        assert_mirrored(&xa, &xb);
    }
}

#[test]
fn every_esp_suite() {
    for s in Suite::ALL {
        let (mut ca, mut cb) = configs();
        ca.esp_suites = vec![s];
        cb.esp_suites = Suite::ALL.to_vec();
        let (mut a, mut b) = peers(ca, cb);
        let (xa, xb, _) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
        assert_eq!(xa[0].suite, s);
        assert_mirrored(&xa, &xb);
    }
}

/// ```text
///   AM1 SA, KE, Ni, IDii, VID, VID      -->
///                   <--  AM2 SA, KE, Nr, IDir, HASH_R, VID, VID, NAT-D, NAT-D
///   AM3 HASH_I, NAT-D, NAT-D            -->
///   QM1* / QM2* / QM3*
/// ```
#[test]
fn aggressive_mode() {
    let (mut ca, mut cb) = configs();
    ca.aggressive = true;
    ca.local_id = esprit_ike::Identity::Fqdn("dialup.example".into());
    cb.remote_id = Some(esprit_ike::Identity::Fqdn("dialup.example".into()));
    cb.aggressive = true;
    let (mut a, mut b) = peers(ca, cb);
    let (xa, xb, log) = up(&mut a, &mut b, &seed_proxy_ids()[..2]);
    assert_eq!(log.iter().filter(|w| w.exchange == ExchangeType::Aggressive).count(), 3);
    assert_eq!(xa.len(), 2);
    assert_mirrored(&xa, &xb);
}

#[test]
fn aggressive_mode_wrong_identity_refused() {
    let (mut ca, mut cb) = configs();
    ca.aggressive = true;
    ca.local_id = esprit_ike::Identity::Fqdn("intruder.example".into());
    cb.remote_id = Some(esprit_ike::Identity::Fqdn("dialup.example".into()));
    cb.aggressive = true;
    let (mut a, mut b) = peers(ca, cb);
    let (xa, _, _) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    assert!(xa.is_empty());
    assert!(!b.is_established());
}

#[test]
fn wrong_psk_is_authentication_failed() {
    let (ca, mut cb) = configs();
    cb.psk = zeroize::Zeroizing::new(b"another-key".to_vec());
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    pump(now, &mut a, &mut b);
    let eb = events(&mut b);
    assert!(eb.iter().any(|e| matches!(e, Event::AuthFailed { .. })), "{eb:?}");
    // B's AUTHENTICATION-FAILED is unauthenticated: A notes it and goes on
    // waiting for an authenticated MM6 (RFC 2408 §5), then gives up with it
    // as the reason.
    let ea = events(&mut a);
    assert!(!ea.iter().any(|e| matches!(e, Event::IkeSaDown { .. })), "{ea:?}");
    let ea = give_up(now, &mut a, &mut b);
    assert!(ea.iter().any(|e| matches!(e, Event::AuthFailed { .. })), "{ea:?}");
    assert!(ea.iter().any(|e| matches!(e, Event::ChildSaFailed { .. })));
    assert!(ea.iter().any(|e| matches!(
        e,
        Event::IkeSaDown { reason: Reason::PeerNotify(NotifyType::AuthenticationFailed) }
    )));
    assert!(!a.is_established() && !b.is_established());
}

#[test]
fn phase1_no_proposal_chosen() {
    let (mut ca, mut cb) = configs();
    ca.ike_proposals =
        vec![IkeProposal { cipher: EncryptionAlg::Aes256Cbc, hash: HashAlg::Sha256, group: DhGroup::Ecp384 }];
    cb.ike_proposals =
        vec![IkeProposal { cipher: EncryptionAlg::Aes128Cbc, hash: HashAlg::Sha1, group: DhGroup::Modp2048 }];
    let (mut a, mut b) = peers(ca, cb);
    let Outcome { xa, ea, eb, .. } = run(&mut a, &mut b, &seed_proxy_ids()[..1]);
    assert!(xa.is_empty());
    match &eb[..] {
        [Event::ProposalMismatch { proposed, configured, .. }] => {
            assert_eq!(proposed, &["aes256-sha256-ecp384".to_owned()]);
            assert_eq!(configured, &["aes128-sha1-modp2048".to_owned()]);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        ea.iter().any(|e| matches!(
            e,
            Event::IkeSaDown { reason: Reason::PeerNotify(NotifyType::NoProposalChosen) }
        )),
        "{ea:?}"
    );
}

/// 3DES / MD5 offers (RFC 8221) are never chosen.
#[test]
fn legacy_phase1_proposal_refused() {
    use esprit_ike::wire::{emit_sa, MessageBuilder, PayloadType, ProposalRepr, TransformRepr};
    let (_, cb) = configs();
    let (_, mut b) = peers(configs().0, cb);
    let sa = emit_sa(&[ProposalRepr {
        number: 1,
        protocol: 1,
        spi: vec![],
        transforms: vec![
            TransformRepr { number: 1, id: 1, attributes: vec![(1, 5), (2, 2), (3, 1), (4, 14)] },
            TransformRepr { number: 2, id: 1, attributes: vec![(1, 7), (14, 128), (2, 1), (3, 1), (4, 14)] },
        ],
    }]);
    let mut m = MessageBuilder::new([9; 8], [0; 8], ExchangeType::MainMode, 0);
    m.push(PayloadType::Sa, &sa);
    let now = Instant::now();
    b.handle_datagram(now, B.parse().unwrap(), A.parse().unwrap(), &m.finish()).unwrap();
    let t = b.poll_transmit().unwrap();
    assert_eq!(Header::parse(&t.bytes).unwrap().exchange, ExchangeType::Informational);
    match events(&mut b).as_slice() {
        [Event::ProposalMismatch { proposed, .. }] => {
            assert_eq!(proposed, &["3des-sha1-group14-auth1", "aes128-md5-group14-auth1"])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn phase2_no_proposal_chosen() {
    let (mut ca, mut cb) = configs();
    ca.esp_suites = vec![Suite::Aes256Gcm16];
    cb.esp_suites = vec![Suite::Aes128CbcSha1];
    let (mut a, mut b) = peers(ca, cb);
    let Outcome { xa, ea, eb, .. } = run(&mut a, &mut b, &seed_proxy_ids()[..1]);
    assert!(xa.is_empty());
    assert!(eb.iter().any(|e| matches!(e, Event::ProposalMismatch { proposed, .. } if proposed == &["aes256gcm16".to_owned()])), "{eb:?}");
    assert!(
        ea.iter().any(|e| matches!(
            e,
            Event::ChildSaFailed { reason: Reason::PeerNotify(NotifyType::NoProposalChosen), .. }
        )),
        "{ea:?}"
    );
}

#[test]
fn unknown_proxy_id_is_invalid_id_information_and_lists_configured() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    let wrong = pid("local-ip 10.1.1.0/24 remote-ip 10.9.9.0/24 ANY");
    let wider = pid("local-ip 10.1.0.0/16 remote-ip 10.2.1.0/24 ANY");
    let Outcome { xa, ea, eb, .. } = run(&mut a, &mut b, &[wrong, wider]);
    assert!(xa.is_empty());
    let mism: Vec<_> = eb
        .iter()
        .filter_map(|e| match e {
            Event::ProxyIdMismatch { proposed, configured, .. } => {
                Some((proposed.clone(), configured.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(mism.len(), 2);
    assert_eq!(mism[0].0, "local-ip 10.9.9.0/24 remote-ip 10.1.1.0/24 ANY");
    assert_eq!(mism[0].1.len(), 4);
    assert_eq!(mism[1].0, "local-ip 10.2.1.0/24 remote-ip 10.1.0.0/16 ANY");
    assert_eq!(
        ea.iter()
            .filter(|e| matches!(
                e,
                Event::ChildSaFailed { reason: Reason::PeerNotify(NotifyType::InvalidIdInformation), .. }
            ))
            .count(),
        2,
        "{ea:?}"
    );
}

#[test]
fn narrower_proxy_id_refused_like_any_unconfigured_one() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    let narrow = pid("local-ip 10.1.1.128/25 remote-ip 10.2.1.5/32 HTTP");
    let o = run(&mut a, &mut b, &[narrow]);
    assert!(o.xa.is_empty() && o.xb.is_empty());
    assert!(o
        .eb
        .iter()
        .any(|e| matches!(e, Event::ProxyIdMismatch { configured, .. } if configured.len() == 4)));
    assert!(o.ea.iter().any(|e| matches!(
        e,
        Event::ChildSaFailed { reason: Reason::PeerNotify(NotifyType::InvalidIdInformation), .. }
    )));
}

#[test]
fn port_ranges_cannot_be_ikev1_ids() {
    let (ca, cb) = configs();
    let (mut a, _) = peers(ca, cb);
    let r = pid("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 protocol tcp dst-port 1000-2000");
    assert!(a.initiate_child(Instant::now(), r).is_err());
}

/// A repeated MM3 is answered with the same MM4 and not reprocessed; a
/// repeated QM1 gets the same QM2 and makes no second child.
#[test]
fn retransmitted_messages_answered_not_reprocessed() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    let mm1 = a.poll_transmit().unwrap();
    deliver(now, &mut b, &mm1);
    let mm2 = b.poll_transmit().unwrap();
    deliver(now, &mut b, &mm1);
    assert_eq!(b.poll_transmit().unwrap().bytes, mm2.bytes, "MM1 repeat -> same MM2");
    deliver(now, &mut a, &mm2);
    let mm3 = a.poll_transmit().unwrap();
    deliver(now, &mut b, &mm3);
    let mm4 = b.poll_transmit().unwrap();
    deliver(now, &mut b, &mm3);
    assert_eq!(b.poll_transmit().unwrap().bytes, mm4.bytes, "MM3 repeat -> same MM4");
    deliver(now, &mut a, &mm4);
    let mm5 = a.poll_transmit().unwrap();
    deliver(now, &mut b, &mm5);
    let mm6 = b.poll_transmit().unwrap();
    deliver(now, &mut b, &mm5);
    assert_eq!(b.poll_transmit().unwrap().bytes, mm6.bytes, "MM5 repeat -> same MM6");
    deliver(now, &mut a, &mm6);
    let qm1 = a.poll_transmit().unwrap();
    deliver(now, &mut b, &qm1);
    let qm2 = b.poll_transmit().unwrap();
    deliver(now, &mut b, &qm1);
    assert_eq!(b.poll_transmit().unwrap().bytes, qm2.bytes, "QM1 repeat -> same QM2");
    deliver(now, &mut a, &qm2);
    let qm3 = a.poll_transmit().unwrap();
    // QM3 lost: B retransmits QM2, A answers with the same QM3.
    deliver(now, &mut a, &qm2);
    assert_eq!(a.poll_transmit().unwrap().bytes, qm3.bytes, "QM2 repeat -> same QM3");
    deliver(now, &mut b, &qm3);
    deliver(now, &mut b, &qm3);
    assert!(b.poll_transmit().is_none());
    assert_eq!(children(events(&mut a)).len(), 1);
    let eb = events(&mut b);
    assert_eq!(eb.iter().filter(|e| matches!(e, Event::IkeSaUp { .. })).count(), 1);
    assert_eq!(children(eb).len(), 1);
}

/// Everything A sends is lost: MM1 is retransmitted after 2, 4, 8, 16,
/// 32 s (doubling), then A gives up.
#[test]
fn lost_messages_back_off_then_give_up() {
    let (ca, cb) = configs();
    let (mut a, _) = peers(ca, cb);
    let t0 = Instant::now();
    a.initiate_child(t0, seed_proxy_ids()[0]).unwrap();
    let first = a.poll_transmit().unwrap();
    let mut at = Vec::new();
    while let Some(t) = a.poll_timeout() {
        a.handle_timeout(t);
        if let Some(x) = a.poll_transmit() {
            assert_eq!(x.bytes, first.bytes);
            at.push(t.duration_since(t0));
        }
    }
    let secs: Vec<u64> = at.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [2, 6, 14, 30, 62]);
    let ea = events(&mut a);
    assert!(ea.iter().any(|e| matches!(e, Event::ChildSaFailed { reason: Reason::Timeout, .. })));
    assert!(ea.iter().any(|e| matches!(e, Event::IkeSaDown { reason: Reason::Timeout })));
}

/// Quick Mode responses lost: QM1 retransmitted, then the child fails.
#[test]
fn lost_quick_mode_gives_up() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    a.initiate_child(now, seed_proxy_ids()[1]).unwrap();
    let mut sent = 0;
    while a.poll_transmit().is_some() {
        sent += 1;
    }
    // (Until long before the ISAKMP SA's own rekey time.)
    while let Some(t) = a.poll_timeout().filter(|t| *t < now + Duration::from_secs(3600)) {
        a.handle_timeout(t);
        while a.poll_transmit().is_some() {
            sent += 1;
        }
    }
    assert_eq!(sent, 6);
    assert!(events(&mut a).iter().any(|e| matches!(e, Event::ChildSaFailed { reason: Reason::Timeout, .. })));
}

/// The ISAKMP SA deleted while 64 Quick Modes run and 35 wait for their
/// turn: each is reported failed, none is left waiting for an answer that
/// cannot come (nothing is due any more); B's 64 Quick Modes, whose inbound
/// SAs were announced at QM2 (lost here), report those SAs down when the
/// Delete reaches B.
#[test]
fn quick_modes_under_a_deleted_isakmp_sa_are_reported() {
    let (mut ca, mut cb) = configs();
    let many: Vec<ProxyId> =
        (1..=100).map(|k| pid(&format!("local-ip 10.1.1.10/32 remote-ip 10.2.64.{k}/32 ANY"))).collect();
    ca.proxy_ids = many.clone();
    cb.proxy_ids = many.iter().map(mirror).collect();
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    let (xa, _, _) = up(&mut a, &mut b, &many[..1]);
    assert_eq!(xa.len(), 1);
    for p in &many[1..] {
        a.initiate_child(now, *p).unwrap();
    }
    let qm1: Vec<Transmit> = std::iter::from_fn(|| a.poll_transmit()).collect();
    assert_eq!(qm1.len(), 64, "the window towards an esprit peer");
    for t in &qm1 {
        deliver(now, &mut b, t);
    }
    assert_eq!(std::iter::from_fn(|| b.poll_transmit()).count(), 64, "QM2s, lost");
    let inbound = events(&mut b).iter().filter(|e| matches!(e, Event::ChildSaInbound(_))).count();
    assert_eq!(inbound, 64);

    a.delete_ike(now).unwrap();
    let ea = events(&mut a);
    let failed: Vec<ProxyId> = ea
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaFailed { proxy_id, reason: Reason::DeletedLocally } => Some(*proxy_id),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 99);
    let mut sorted = failed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 99, "each once");
    assert!(matches!(ea.last(), Some(Event::IkeSaDown { reason: Reason::DeletedLocally })));
    assert_eq!(a.poll_timeout(), None, "no retransmission left");

    let delete = a.poll_transmit().unwrap();
    deliver(now, &mut b, &delete);
    let eb = events(&mut b);
    let down =
        eb.iter().filter(|e| matches!(e, Event::ChildSaDown { reason: Reason::DeletedByPeer, .. })).count();
    assert_eq!(down, 64);
    assert!(matches!(eb.last(), Some(Event::IkeSaDown { reason: Reason::DeletedByPeer })));
}

/// Every truncation and an extension of every message of a full exchange
/// is refused without a panic, an answer or an event.
#[test]
fn truncated_and_oversized_datagrams_at_every_length() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    let (_, _, log) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    events(&mut a);
    events(&mut b);
    let now = Instant::now();
    for w in &log {
        let to = if w.from_a { &mut b } else { &mut a };
        for n in 0..w.t.bytes.len() {
            assert!(to.handle_datagram(now, w.t.remote, w.t.local, &w.t.bytes[..n]).is_err());
        }
        let mut long = w.t.bytes.clone();
        long.push(0);
        assert!(to.handle_datagram(now, w.t.remote, w.t.local, &long).is_err());
        // Length field and datagram agree but the payload chain overruns.
        let mut bad = w.t.bytes.clone();
        if bad.len() > 31 && bad[19] & 1 == 0 {
            bad[30] = 0xff;
            bad[31] = 0xff;
            assert!(to.handle_datagram(now, w.t.remote, w.t.local, &bad).is_err());
        }
        assert!(to.poll_transmit().is_none());
        assert!(to.poll_event().is_none());
    }
}

#[test]
fn dpd_probe_answered_then_timeout() {
    let (mut ca, mut cb) = configs();
    ca.dpd_delay = Some(Duration::from_secs(30));
    cb.dpd_delay = Some(Duration::from_secs(30));
    let (mut a, mut b) = peers(ca, cb);
    up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    let t = a.poll_timeout().unwrap();
    a.handle_timeout(t);
    let probe = a.poll_transmit().unwrap();
    assert_eq!(Header::parse(&probe.bytes).unwrap().exchange, ExchangeType::Informational);
    deliver(t, &mut b, &probe);
    let ack = b.poll_transmit().unwrap();
    deliver(t, &mut a, &ack);
    assert!(a.poll_timeout().unwrap() >= t + Duration::from_secs(30));
    // Now B is gone: `dpd_retries` probes, `dpd_delay` apart, each with a
    // new sequence number, then the peer is dead with its child SAs.
    let mut probes = Vec::new();
    while let Some(t) = a.poll_timeout() {
        a.handle_timeout(t);
        while let Some(p) = a.poll_transmit() {
            probes.push((t, p.bytes));
        }
        if !a.is_established() {
            break;
        }
    }
    assert_eq!(probes.len(), 5, "dpd_retries (default 5) probes");
    for w in probes.windows(2) {
        assert_eq!(w[1].0 - w[0].0, Duration::from_secs(30), "one every dpd_delay");
        assert_ne!(w[0].1, w[1].1, "a new sequence number each");
    }
    let ea = events(&mut a);
    assert!(ea.iter().any(|e| matches!(e, Event::DpdTimeout)));
    assert!(
        ea.iter().any(|e| matches!(e, Event::ChildSaDown { reason: Reason::DpdTimeout, .. })),
        "the dead peer's child SAs are gone: {ea:?}"
    );
    assert!(ea.iter().any(|e| matches!(e, Event::IkeSaDown { reason: Reason::DpdTimeout })));
    assert!(!a.is_established());
}

#[test]
fn delete_child_and_ike() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    let (xa, _, _) = up(&mut a, &mut b, &seed_proxy_ids()[..2]);
    let now = Instant::now();
    events(&mut b);
    a.delete_child(now, xa[0].spi_in).unwrap();
    pump(now, &mut a, &mut b);
    let eb = events(&mut b);
    assert!(
        matches!(&eb[..], [Event::ChildSaDown { spi_out, reason: Reason::DeletedByPeer, .. }] if *spi_out == xa[0].spi_in),
        "{eb:?}"
    );
    a.delete_ike(now).unwrap();
    pump(now, &mut a, &mut b);
    assert!(events(&mut b).iter().any(|e| matches!(e, Event::IkeSaDown { reason: Reason::DeletedByPeer })));
    assert!(!b.is_established());
}

/// NAT-T forced (as strongSwan's libipsec does): both float to 4500 after
/// MM4, Quick Mode negotiates UDP-Encapsulated-Tunnel, children carry the
/// encapsulation ports.
#[test]
fn nat_t_floats_to_4500_and_encapsulates() {
    let (mut ca, cb) = configs();
    ca.force_encap = true;
    let (mut a, mut b) = peers(ca, cb);
    let (xa, xb, log) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    assert_eq!(log[4].t.local.port(), 4500, "MM5 from 4500");
    assert_eq!(log[5].t.local.port(), 4500, "MM6 from 4500");
    assert!(log[6..].iter().all(|w| w.t.local.port() == 4500 && w.t.remote.port() == 4500));
    for c in xa.iter().chain(&xb) {
        let e = c.encap.unwrap();
        assert_eq!((e.local_port, e.remote_port), (4500, 4500));
    }
    assert_mirrored(&xa, &xb);
}

/// Phase-1 rekey, make-before-break: at 90% of its lifetime the ISAKMP
/// SA's initiator runs a new Main Mode (no INITIAL-CONTACT: the children
/// stay), both sides delete the old ISAKMP SA, the children live on, and
/// a further Quick Mode runs under the new SA.
#[test]
fn phase1_rekey_before_expiry_keeps_children() {
    let (mut ca, mut cb) = configs();
    ca.ike_lifetime = 100;
    cb.ike_lifetime = 100;
    let (mut a, mut b) = peers(ca, cb);
    let t0 = Instant::now();
    let (xa, _, _) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    // Nothing before 90 s (A initiated: 90%; B would wait for 95%).
    let due = a.poll_timeout().unwrap();
    assert!(due >= t0 + Duration::from_secs(90) && due <= t0 + Duration::from_secs(91), "{:?}", due - t0);
    assert!(b.poll_timeout().unwrap() >= t0 + Duration::from_secs(95));
    let t = t0 + Duration::from_secs(91);
    a.handle_timeout(t);
    let log = pump(t, &mut a, &mut b);
    let mm: Vec<&Wire> = log.iter().filter(|w| w.exchange == ExchangeType::MainMode).collect();
    assert_eq!(mm.len(), 6, "a whole new Main Mode");
    let ea = events(&mut a);
    let eb = events(&mut b);
    for e in [&ea, &eb] {
        assert!(e.iter().any(|e| matches!(e, Event::IkeSaDown { reason: Reason::Rekeyed })), "{e:?}");
        assert!(e.iter().any(|e| matches!(e, Event::IkeSaUp { .. })), "{e:?}");
        assert!(!e.iter().any(|e| matches!(e, Event::ChildSaDown { .. })), "children stay: {e:?}");
        assert!(
            !e.iter().any(|e| matches!(e, Event::Notify { kind: NotifyType::InitialContact, .. })),
            "no INITIAL-CONTACT on a rekey: {e:?}"
        );
    }
    // The old SA's Deletes were sent (one each) and harmed nothing.
    assert!(a.is_established() && b.is_established());
    // Quick Mode and Delete work under the new ISAKMP SA.
    let (x2, y2, _) = up(&mut a, &mut b, &seed_proxy_ids()[1..2]);
    assert_mirrored(&x2, &y2);
    a.delete_child(t, xa[0].spi_in).unwrap();
    pump(t, &mut a, &mut b);
    let eb = events(&mut b);
    assert!(
        eb.iter().any(|e| matches!(e, Event::ChildSaDown { reason: Reason::DeletedByPeer, .. })),
        "{eb:?}"
    );
    // The new SA is not rekeyed again before ITS 90%.
    assert!(a.poll_timeout().unwrap() >= t + Duration::from_secs(89));
}

/// An ISAKMP SA with no children is not rekeyed: it expires, is deleted
/// with the peer, and the next child negotiates a new one.
#[test]
fn phase1_without_children_expires() {
    let (mut ca, mut cb) = configs();
    ca.ike_lifetime = 100;
    cb.ike_lifetime = 100;
    let (mut a, mut b) = peers(ca, cb);
    let t0 = Instant::now();
    let (xa, _, _) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    a.delete_child(t0, xa[0].spi_in).unwrap();
    pump(t0, &mut a, &mut b);
    events(&mut a);
    events(&mut b);
    let due = a.poll_timeout().unwrap();
    assert!(due >= t0 + Duration::from_secs(100), "{:?}", due - t0);
    let t = t0 + Duration::from_secs(101);
    a.handle_timeout(t);
    pump(t, &mut a, &mut b);
    assert!(events(&mut a).iter().any(|e| matches!(e, Event::IkeSaDown { reason: Reason::Expired })));
    assert!(events(&mut b).iter().any(|e| matches!(e, Event::IkeSaDown { reason: Reason::DeletedByPeer })));
    assert!(!a.is_established() && !b.is_established());
    let (x2, y2, _) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    assert_mirrored(&x2, &y2);
}

/// A phase-1 rekey that gets no answer leaves the current ISAKMP SA in
/// place (children keep negotiating) and is not retried in a loop.
#[test]
fn failed_phase1_rekey_keeps_the_current_sa() {
    let (mut ca, mut cb) = configs();
    ca.ike_lifetime = 10_000;
    cb.ike_lifetime = 10_000;
    let (mut a, mut b) = peers(ca, cb);
    let t0 = Instant::now();
    up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    let mut t = t0 + Duration::from_secs(9001);
    a.handle_timeout(t);
    assert!(a.poll_transmit().is_some(), "MM1 of the rekey");
    // Every MM1 (and its retransmissions) is lost.
    for _ in 0..20 {
        while a.poll_transmit().is_some() {}
        match a.poll_timeout() {
            Some(x) if x < t0 + Duration::from_secs(10_000) => {
                t = x;
                a.handle_timeout(t);
            }
            _ => break,
        }
    }
    let ea = events(&mut a);
    assert!(ea.iter().any(|e| matches!(e, Event::Phase1RekeyFailed { reason: Reason::Timeout })), "{ea:?}");
    assert!(!ea.iter().any(|e| matches!(e, Event::IkeSaDown { .. })), "{ea:?}");
    assert!(a.is_established());
    // Still usable until it expires.
    let (x2, y2, _) = up(&mut a, &mut b, &seed_proxy_ids()[1..2]);
    assert_mirrored(&x2, &y2);
}

/// INITIAL-CONTACT (RFC 2407 §4.6.3.3): B restarts and negotiates again;
/// A forgets every SA it had with B (children and ISAKMP SA) once B has
/// authenticated, and sends no Delete for them.
#[test]
fn initial_contact_from_a_restarted_peer_clears_its_old_sas() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb.clone());
    let (xa, _, _) = up(&mut a, &mut b, &seed_proxy_ids()[..2]);
    assert_eq!(xa.len(), 2);
    // B restarts: a fresh endpoint, other randomness.
    let mut b2 = Peer::new(
        cb,
        FixedRng { bytes: TestRng::new(0x5555_aaaa_1234_9876), spi_base: 0xb300_0000, spis: 0 },
    );
    let now = Instant::now();
    b2.initiate_child(now, mirror(&seed_proxy_ids()[0])).unwrap();
    let log = pump(now, &mut b2, &mut a);
    let ea = events(&mut a);
    let gone: Vec<u32> = ea
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaDown { spi_in, reason: Reason::PeerRestarted, .. } => Some(*spi_in),
            _ => None,
        })
        .collect();
    let mut want: Vec<u32> = xa.iter().map(|c| c.spi_in).collect();
    want.sort_unstable();
    let mut got = gone.clone();
    got.sort_unstable();
    assert_eq!(got, want, "{ea:?}");
    assert!(ea.iter().any(|e| matches!(e, Event::IkeSaDown { reason: Reason::PeerRestarted })));
    assert_eq!(children(ea).len(), 1, "the new child is up");
    // No Delete went to the restarted peer for what it forgot.
    assert!(!log.iter().any(|w| !w.from_a && w.exchange == ExchangeType::Informational), "{}", log.len());
}

/// A responder configured for a dynamic peer (ScreenOS `dynamic ID`):
/// the address is learnt from an authenticated Aggressive Mode with the
/// right identity; before that it cannot initiate, and a wrong identity
/// is not answered from the new address. A later Aggressive Mode from
/// another address replaces the old address only once authenticated.
#[test]
fn dynamic_peer_learns_its_address_from_aggressive_mode() {
    let (mut ca, mut cb) = configs();
    // A: waits for "road.example.net" from anywhere.
    ca.remote = "0.0.0.0:500".parse().unwrap();
    ca.dynamic = true;
    ca.aggressive = true;
    ca.remote_id = Some(esprit_ike::Identity::Fqdn("road.example.net".into()));
    cb.aggressive = true;
    cb.local_id = esprit_ike::Identity::Fqdn("road.example.net".into());
    let (mut a, mut b) = peers(ca, cb.clone());
    let now = Instant::now();
    assert!(a.initiate_child(now, seed_proxy_ids()[0]).is_err(), "no address yet");
    let (xb, xa, _) = {
        let o = run(&mut b, &mut a, &[mirror(&seed_proxy_ids()[0])]);
        (o.xa, o.xb, o.log)
    };
    assert_eq!((xa.len(), xb.len()), (1, 1));
    assert_eq!(a.addresses().1, B.parse().unwrap(), "learnt");
    // Now A can initiate to it.
    let (x2, y2, _) = up(&mut a, &mut b, &seed_proxy_ids()[1..2]);
    assert_mirrored(&x2, &y2);

    // Somebody else claims the identity from 192.0.2.66 without the key:
    // the tunnel stays where it is.
    let mut cm = cb.clone();
    cm.local = "192.0.2.66:500".parse().unwrap();
    cm.psk = zeroize::Zeroizing::new(b"not-the-key".to_vec());
    let mut m = Peer::new(cm, FixedRng { bytes: TestRng::new(77), spi_base: 0xd000_0000, spis: 0 });
    m.initiate_child(now, mirror(&seed_proxy_ids()[0])).unwrap();
    pump(now, &mut m, &mut a);
    let ea = events(&mut a);
    assert!(!ea.iter().any(|e| matches!(e, Event::ChildSaDown { .. })), "{ea:?}");
    assert_eq!(a.addresses().1, B.parse().unwrap(), "back to the address that works");
    assert!(a.is_established());

    // The real peer comes back from 192.0.2.77 (a new lease): once it has
    // authenticated, the children at the old address are gone.
    let mut cn = cb;
    cn.local = "192.0.2.77:500".parse().unwrap();
    let mut n = Peer::new(cn, FixedRng { bytes: TestRng::new(99), spi_base: 0xe000_0000, spis: 0 });
    n.initiate_child(now, mirror(&seed_proxy_ids()[0])).unwrap();
    pump(now, &mut n, &mut a);
    let ea = events(&mut a);
    let down =
        ea.iter().filter(|e| matches!(e, Event::ChildSaDown { reason: Reason::PeerRestarted, .. })).count();
    assert_eq!(down, 2, "{ea:?}");
    assert_eq!(children(ea).len(), 1);
    assert_eq!(a.addresses().1, "192.0.2.77:500".parse().unwrap());
}

/// NAT-T in Aggressive Mode (RFC 3947 §3.2): the responder learns of the
/// NAT from the NAT-D payloads of AM3, so its own Quick Modes encapsulate
/// too (strongSwan's libipsec always fakes a NAT).
#[test]
fn aggressive_mode_responder_detects_nat_from_am3() {
    let (mut ca, mut cb) = configs();
    ca.aggressive = true;
    ca.force_encap = true;
    cb.aggressive = true;
    let (mut a, mut b) = peers(ca, cb);
    let (xa, xb, _) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    assert!(xa[0].encap.is_some() && xb[0].encap.is_some());
    // Now B (the responder of phase 1) runs a Quick Mode of its own.
    let (yb, ya, _) = up(&mut b, &mut a, &[mirror(&seed_proxy_ids()[1])]);
    assert_mirrored(&yb, &ya);
    assert!(yb[0].encap.is_some(), "B saw the NAT in AM3: {:?}", yb[0].encap);
}

/// The responder announces the inbound half of a child when it sends QM2
/// (the initiator may use the SA from then on), the whole child at QM3;
/// when QM3 never comes, the announced child goes down after the
/// retransmissions of QM2.
#[test]
fn responder_announces_the_inbound_sa_at_qm2() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[1]).unwrap();
    let qm1 = a.poll_transmit().unwrap();
    deliver(now, &mut b, &qm1);
    let eb = events(&mut b);
    let announced = match &eb[..] {
        [Event::ChildSaInbound(c)] => c.clone(),
        other => panic!("{other:?}"),
    };
    assert!(!announced.initiator);
    // QM2 reaches A; A's QM3 is lost. B retransmits QM2, then gives up.
    let qm2 = b.poll_transmit().unwrap();
    deliver(now, &mut a, &qm2);
    let xa = children(events(&mut a));
    assert_eq!(xa[0].spi_out, announced.spi_in, "A sends on the SA B announced");
    assert_eq!(*xa[0].keys_out.encryption, *announced.keys_in.encryption);
    while a.poll_transmit().is_some() {}
    while let Some(t) = b.poll_timeout().filter(|t| *t < now + Duration::from_secs(3600)) {
        b.handle_timeout(t);
        while b.poll_transmit().is_some() {}
    }
    let eb = events(&mut b);
    assert!(
        matches!(&eb[..], [Event::ChildSaDown { spi_in, reason: Reason::Timeout, .. }] if *spi_in == announced.spi_in),
        "{eb:?}"
    );

    // With QM3: ChildSaUp with the very same SPIs and keys.
    a.initiate_child(now, seed_proxy_ids()[2]).unwrap();
    let log = pump(now, &mut a, &mut b);
    assert_eq!(log.iter().filter(|w| w.exchange == ExchangeType::QuickMode).count(), 3);
    let eb = events(&mut b);
    match &eb[..] {
        [Event::ChildSaInbound(i), Event::ChildSaUp(u)] => {
            assert_eq!((i.spi_in, i.spi_out), (u.spi_in, u.spi_out));
            assert_eq!(*i.keys_in.encryption, *u.keys_in.encryption);
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------
// Strangers on the internet: half-open state, Aggressive Mode
// policy, addresses that only authenticated messages move, replays.
// ---------------------------------------------------------------------

/// A man in the middle: (from A, exchange type, n-th of its kind, bytes).
type Tamper<'a> = dyn FnMut(bool, ExchangeType, usize, &mut Vec<u8>) + 'a;

/// Moves messages both ways until both are quiet, letting `tamper` see
/// (and change) each one first: `tamper(from_a, n, bytes)` where `n`
/// counts the messages of that exchange type from that side (1 = first).
fn pump_tampered(
    now: Instant,
    a: &mut Peer<FixedRng>,
    b: &mut Peer<FixedRng>,
    tamper: &mut Tamper<'_>,
) -> Vec<Wire> {
    let mut log = Vec::new();
    let mut seen: Vec<(bool, ExchangeType)> = Vec::new();
    loop {
        let mut moved = false;
        for from_a in [true, false] {
            let (src, dst) = if from_a { (&mut *a, &mut *b) } else { (&mut *b, &mut *a) };
            while let Some(mut t) = src.poll_transmit() {
                let exchange = Header::parse(&t.bytes).unwrap().exchange;
                seen.push((from_a, exchange));
                let n = seen.iter().filter(|s| **s == (from_a, exchange)).count();
                tamper(from_a, exchange, n, &mut t.bytes);
                log.push(Wire { from_a, exchange, t: t.clone() });
                deliver(now, dst, &t);
                moved = true;
            }
        }
        if !moved {
            return log;
        }
    }
}

/// Flips one bit of the first byte of the second ciphertext block: with
/// CBC, the second plaintext block becomes garbage and the third gets
/// the bit flipped. With SHA-256 as PRF, both blocks lie inside the HASH
/// payload of every message below (HASH first, or after a 12-byte IPv4
/// ID): the message still decrypts and parses, the keys are right, only
/// the HASH is wrong.
fn flip_hash(bytes: &mut [u8]) {
    bytes[esprit_ike::wire::HEADER_LEN + 16] ^= 0x01;
}

fn sha256_configs() -> (PeerConfig, PeerConfig) {
    let (mut ca, mut cb) = configs();
    let p = IkeProposal { cipher: EncryptionAlg::Aes128Cbc, hash: HashAlg::Sha256, group: DhGroup::Ecp256 };
    ca.ike_proposals = vec![p];
    cb.ike_proposals = vec![p];
    (ca, cb)
}

fn ike_up(ev: &[Event]) -> bool {
    ev.iter().any(|e| matches!(e, Event::IkeSaUp { .. }))
}

fn child_up(ev: &[Event]) -> bool {
    ev.iter().any(|e| matches!(e, Event::ChildSaUp(_) | Event::ChildSaInbound(_)))
}

/// HASH_I wrong, keys right: B must refuse MM5 (AUTHENTICATION-FAILED).
#[test]
fn main_mode_hash_i_wrong_is_refused() {
    let (ca, cb) = sha256_configs();
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    pump_tampered(now, &mut a, &mut b, &mut |from_a, x, n, m| {
        if from_a && x == ExchangeType::MainMode && n == 3 {
            flip_hash(m);
        }
    });
    let eb = events(&mut b);
    assert!(!ike_up(&eb) && !b.is_established(), "{eb:?}");
    assert!(eb.iter().any(|e| matches!(e, Event::AuthFailed { .. })), "{eb:?}");
}

/// The SA body B saw is not the one A offered (a man in the middle
/// changed MM1's lifetime, which B's choice does not depend on): same
/// PSK, same keys, but HASH_I covers SAi_b (RFC 2409 §5), so B refuses.
#[test]
fn main_mode_tampered_sa_body_is_refused_by_hash_i() {
    let (mut ca, mut cb) = sha256_configs();
    ca.ike_lifetime = 0x1000;
    cb.ike_lifetime = 0x0800;
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    let mut changed = false;
    pump_tampered(now, &mut a, &mut b, &mut |from_a, x, n, m| {
        if from_a && x == ExchangeType::MainMode && n == 1 {
            // LIFE_DURATION in TV form: 0x800c 0x1000 -> 0x800c 0x2000.
            let at = m.windows(4).position(|w| w == [0x80, 0x0c, 0x10, 0x00]).unwrap();
            m[at + 2] = 0x20;
            changed = true;
        }
    });
    assert!(changed);
    let eb = events(&mut b);
    assert!(!ike_up(&eb) && !b.is_established(), "{eb:?}");
    assert!(eb.iter().any(|e| matches!(e, Event::AuthFailed { .. })), "{eb:?}");
    assert!(!a.is_established());
}

/// HASH_R wrong, keys right: A must refuse MM6.
#[test]
fn main_mode_hash_r_wrong_is_refused() {
    let (ca, cb) = sha256_configs();
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    pump_tampered(now, &mut a, &mut b, &mut |from_a, x, n, m| {
        if !from_a && x == ExchangeType::MainMode && n == 3 {
            flip_hash(m);
        }
    });
    let ea = events(&mut a);
    assert!(!ike_up(&ea) && !a.is_established(), "{ea:?}");
    assert!(ea.iter().any(|e| matches!(e, Event::AuthFailed { .. })), "{ea:?}");
}

fn aggressive_configs() -> (PeerConfig, PeerConfig) {
    let (mut ca, mut cb) = sha256_configs();
    ca.aggressive = true;
    cb.aggressive = true;
    ca.local_id = esprit_ike::Identity::Fqdn("dialup.example".into());
    cb.local_id = esprit_ike::Identity::Fqdn("hub.example".into());
    (ca, cb)
}

/// Replaces the identity `from` by `to` (same length) in a clear message.
fn swap_identity(m: &mut [u8], from: &[u8], to: &[u8]) {
    let at = m.windows(from.len()).position(|w| w == from).unwrap();
    m[at..at + to.len()].copy_from_slice(to);
}

/// Aggressive Mode identities travel in clear: a man in the middle that
/// changes IDii (B checks no identity here) is caught by HASH_I in AM3.
#[test]
fn aggressive_mode_tampered_identity_is_refused_by_hash_i() {
    let (ca, cb) = aggressive_configs();
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    pump_tampered(now, &mut a, &mut b, &mut |from_a, x, n, m| {
        if from_a && x == ExchangeType::Aggressive && n == 1 {
            swap_identity(m, b"dialup.example", b"dialup.exampl3");
        }
    });
    let eb = events(&mut b);
    assert!(!ike_up(&eb) && !b.is_established(), "{eb:?}");
    assert!(eb.iter().any(|e| matches!(e, Event::AuthFailed { .. })), "{eb:?}");
}

/// ... and one that changes IDir (A checks no identity here) by HASH_R.
#[test]
fn aggressive_mode_tampered_identity_is_refused_by_hash_r() {
    let (ca, cb) = aggressive_configs();
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    pump_tampered(now, &mut a, &mut b, &mut |from_a, x, n, m| {
        if !from_a && x == ExchangeType::Aggressive && n == 1 {
            swap_identity(m, b"hub.example", b"hub.exampl3");
        }
    });
    let ea = events(&mut a);
    assert!(!ike_up(&ea) && !a.is_established(), "{ea:?}");
    assert!(ea.iter().any(|e| matches!(e, Event::AuthFailed { .. })), "{ea:?}");
}

/// Brings phase 1 up (SHA-256 PRF), then runs one Quick Mode with the
/// message `(from_a, n)` of it tampered; returns A's and B's events.
fn quick_mode_tampered(from: bool, nth: usize) -> (Vec<Event>, Vec<Event>) {
    let (ca, cb) = sha256_configs();
    let (mut a, mut b) = peers(ca, cb);
    up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[1]).unwrap();
    pump_tampered(now, &mut a, &mut b, &mut |from_a, x, n, m| {
        if from_a == from && x == ExchangeType::QuickMode && n == nth {
            flip_hash(m);
        }
    });
    (events(&mut a), events(&mut b))
}

#[test]
fn quick_mode_hash1_wrong_is_refused() {
    let (_, eb) = quick_mode_tampered(true, 1);
    assert!(!child_up(&eb), "{eb:?}");
}

#[test]
fn quick_mode_hash2_wrong_is_refused() {
    let (ea, _) = quick_mode_tampered(false, 1);
    assert!(!child_up(&ea), "{ea:?}");
}

#[test]
fn quick_mode_hash3_wrong_is_refused() {
    let (_, eb) = quick_mode_tampered(true, 2);
    assert!(eb.iter().any(|e| matches!(e, Event::ChildSaInbound(_))), "QM1 was fine: {eb:?}");
    assert!(!eb.iter().any(|e| matches!(e, Event::ChildSaUp(_))), "{eb:?}");
}

/// An Informational (a Delete) with a wrong HASH(1) deletes nothing.
#[test]
fn informational_hash_wrong_is_ignored() {
    let (ca, cb) = sha256_configs();
    let (mut a, mut b) = peers(ca, cb);
    let (xa, _, _) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    let now = Instant::now();
    a.delete_child(now, xa[0].spi_in).unwrap();
    pump_tampered(now, &mut a, &mut b, &mut |from_a, x, _, m| {
        if from_a && x == ExchangeType::Informational {
            flip_hash(m);
        }
    });
    let eb = events(&mut b);
    assert!(!eb.iter().any(|e| matches!(e, Event::ChildSaDown { .. })), "{eb:?}");
}

/// An MM1 with another initiator cookie (anyone can send one from the
/// peer's address).
fn spoofed_mm1(mm1: &[u8], n: u32) -> Vec<u8> {
    let mut m = mm1.to_vec();
    m[..4].copy_from_slice(&n.to_be_bytes());
    m[4..8].copy_from_slice(&[0x5a; 4]);
    m
}

/// Spoofed first messages from the initiator's own address, between every
/// message of a real Main Mode (fewer per round trip than a source's
/// share), and a flood once it has shown its address: the real exchange
/// completes; B holds no more than its bounds.
#[test]
fn spoofed_first_messages_never_displace_the_exchange_in_progress() {
    let (ca, mut cb) = configs();
    cb.half_open.global = 8;
    cb.half_open.per_source = 8;
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    let src: SocketAddr = A.parse().unwrap();
    let dst: SocketAddr = B.parse().unwrap();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    let mm1 = a.poll_transmit().unwrap();
    let mut n = 0u32;
    let mut spoof = |b: &mut Peer<FixedRng>, count: u32| {
        for _ in 0..count {
            n += 1;
            let _ = b.handle_datagram(now, dst, src, &spoofed_mm1(&mm1.bytes, n));
        }
        while b.poll_transmit().is_some() {}
    };
    spoof(&mut b, 1000);
    deliver(now, &mut b, &mm1);
    let mm2 = b.poll_transmit().unwrap();
    spoof(&mut b, 5);
    // The same initiator cookie with other bytes changes nothing.
    let mut other = mm1.bytes.clone();
    *other.last_mut().unwrap() ^= 1;
    assert!(b.handle_datagram(now, dst, src, &other).is_err());
    deliver(now, &mut a, &mm2);
    let mm3 = a.poll_transmit().unwrap();
    deliver(now, &mut b, &mm3);
    // A has shown its address: never displaced, whatever comes.
    spoof(&mut b, 1000);
    assert!(b.half_open() <= 8);
    let mm4 = b.poll_transmit();
    assert!(mm4.is_none(), "spoof() drained it");
    // MM4 went out before the flood (spoof() drained it): MM3 again is
    // answered from the exchange's memory with the same MM4.
    deliver(now, &mut b, &mm3);
    let mm4 = b.poll_transmit().unwrap();
    deliver(now, &mut a, &mm4);
    pump(now, &mut a, &mut b);
    assert!(a.is_established() && b.is_established());
    assert_eq!(children(events(&mut a)).len(), 1);
    let d = b.discards();
    assert_eq!(d.get(esprit_ike::Discard::HalfOpenLimitSource), 2005 - 8 + 1);
    // Half-open exchanges time out.
    let later = now + Duration::from_secs(31);
    b.handle_timeout(later);
    assert_eq!(b.half_open(), 0);
    assert_eq!(b.discards().get(esprit_ike::Discard::HalfOpenTimedOut), 7);
}

/// A gateway configured for Main Mode never answers an Aggressive Mode
/// request (any AM2 carries HASH_R: an offline dictionary attack on the
/// PSK for anyone who sees it).
#[test]
fn aggressive_mode_to_a_main_mode_gateway_gets_no_answer() {
    let (mut ca, cb) = configs();
    ca.aggressive = true;
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    let am1 = a.poll_transmit().unwrap();
    assert_eq!(Header::parse(&am1.bytes).unwrap().exchange, ExchangeType::Aggressive);
    assert!(b.handle_datagram(now, am1.remote, am1.local, &am1.bytes).is_err());
    assert_eq!(b.poll_transmit(), None, "not a byte back");
    assert!(b.poll_event().is_none());
    assert_eq!(b.discards().get(esprit_ike::Discard::AggressiveNotConfigured), 1);
}

/// Where configured, new Aggressive Modes are rate-limited (each costs a
/// DH before any proof of address): a burst of 20, then 10 a second.
#[test]
fn aggressive_mode_requests_are_rate_limited() {
    let (mut ca, mut cb) = configs();
    ca.aggressive = true;
    cb.aggressive = true;
    cb.half_open.per_source = 100;
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    let am1 = a.poll_transmit().unwrap();
    let mut answered = 0;
    for n in 0..50u32 {
        let _ = b.handle_datagram(now, am1.remote, am1.local, &spoofed_mm1(&am1.bytes, n));
        while b.poll_transmit().is_some() {
            answered += 1;
        }
    }
    assert_eq!(answered, 20);
    assert_eq!(b.discards().get(esprit_ike::Discard::AggressiveRateLimited), 30);
    let later = now + Duration::from_millis(1000);
    let _ = b.handle_datagram(later, am1.remote, am1.local, &spoofed_mm1(&am1.bytes, 99));
    assert!(b.poll_transmit().is_some(), "refilled");
}

/// NAT-T (RFC 3947 §4/§5): the peer's port on 4500 follows only messages
/// that authenticate. A datagram from the peer's address to 4500 from
/// another port moves nothing; the peer's own DPD from there does.
#[test]
fn nat_t_port_moves_only_with_an_authenticated_message() {
    let (mut ca, mut cb) = configs();
    ca.force_encap = true;
    ca.dpd_delay = Some(Duration::from_secs(10));
    cb.dpd_delay = Some(Duration::from_secs(10));
    let (mut a, mut b) = peers(ca, cb);
    up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    let (b_local, a_addr) = b.addresses();
    assert_eq!((b_local.port(), a_addr.port()), (4500, 4500));
    let hijack: SocketAddr = "198.51.100.1:40000".parse().unwrap();
    let now = Instant::now();
    // Garbage with the ISAKMP SA's cookies, a replay of an old message,
    // and an MM1: none of them authenticates.
    let (icookie, rcookie) = b.ike_cookies().unwrap();
    let mut junk = icookie.to_vec();
    junk.extend_from_slice(&rcookie);
    junk.extend_from_slice(&[0x08, 0x10, 0x05, 0x01, 0, 0, 0, 7, 0, 0, 0, 60]);
    junk.resize(60, 0xaa);
    let _ = b.handle_datagram(now, b_local, hijack, &junk);
    assert_eq!(b.addresses(), (b_local, a_addr), "unauthenticated: nothing moved");
    // A's R-U-THERE, really from A, arriving through a NAT that moved.
    let t = a.poll_timeout().unwrap();
    a.handle_timeout(t);
    let probe = a.poll_transmit().unwrap();
    b.handle_datagram(t, b_local, hijack, &probe.bytes).unwrap();
    assert_eq!(b.addresses(), (b_local, hijack), "authenticated: the port follows");
    let ack = b.poll_transmit().unwrap();
    assert_eq!(ack.remote, hijack);
}

/// A dynamic peer's address changes only once a phase 1 from the new
/// address authenticates: an Aggressive Mode from there with the right
/// identity (no secret) but not the key moves nothing, even while it runs.
#[test]
fn dynamic_peer_does_not_move_before_the_new_address_authenticates() {
    let (mut ca, mut cb) = configs();
    ca.remote = "0.0.0.0:500".parse().unwrap();
    ca.dynamic = true;
    ca.aggressive = true;
    ca.remote_id = Some(esprit_ike::Identity::Fqdn("road.example.net".into()));
    cb.aggressive = true;
    cb.local_id = esprit_ike::Identity::Fqdn("road.example.net".into());
    let (mut a, mut b) = peers(ca, cb.clone());
    run(&mut b, &mut a, &[mirror(&seed_proxy_ids()[0])]);
    let before = a.addresses();
    assert_eq!(before.1, B.parse().unwrap());
    let mut cm = cb;
    cm.local = "192.0.2.66:500".parse().unwrap();
    cm.psk = zeroize::Zeroizing::new(b"not-the-key".to_vec());
    let mut m = Peer::new(cm, FixedRng { bytes: TestRng::new(77), spi_base: 0xd000_0000, spis: 0 });
    let now = Instant::now();
    m.initiate_child(now, mirror(&seed_proxy_ids()[0])).unwrap();
    let am1 = m.poll_transmit().unwrap();
    deliver(now, &mut a, &am1);
    assert_eq!(a.addresses(), before, "AM1 from a new address moved nothing");
    let am2 = a.poll_transmit().unwrap();
    assert_eq!(am2.remote, am1.local, "answered where it came from");
    assert!(a.is_established());
    // A's own traffic to B still goes to B.
    a.initiate_child(now, seed_proxy_ids()[1]).unwrap();
    let qm1 = a.poll_transmit().unwrap();
    assert_eq!(qm1.remote, before.1);
}

/// A Quick Mode's QM1 replayed after the exchange completed is dropped
/// and counted: no second child SA from it.
#[test]
fn replayed_quick_mode_is_dropped_and_counted() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    let (xa, xb, log) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    assert_eq!((xa.len(), xb.len()), (1, 1));
    let qm1 = log.iter().find(|w| w.from_a && w.exchange == ExchangeType::QuickMode).unwrap();
    let qm3 = log.iter().filter(|w| w.from_a && w.exchange == ExchangeType::QuickMode).nth(1).unwrap();
    let now = Instant::now();
    assert!(b.handle_datagram(now, qm1.t.remote, qm1.t.local, &qm1.t.bytes).is_err());
    assert_eq!(b.poll_transmit(), None);
    assert!(!child_up(&events(&mut b)));
    assert_eq!(b.discards().get(esprit_ike::Discard::ReplayedMessageId), 1);
    // QM3 again: a copy of a message that needed no answer.
    let _ = b.handle_datagram(now, qm3.t.remote, qm3.t.local, &qm3.t.bytes);
    assert_eq!(b.poll_transmit(), None);
    assert_eq!(b.discards().get(esprit_ike::Discard::ReplayedMessage), 1);
}

/// RFC 3706 §5: an R-U-THERE-ACK clears the probe only with the
/// outstanding sequence number. An ACK that arrives after its probe
/// series was answered proves nothing about the next one.
#[test]
fn dpd_ack_must_carry_the_outstanding_sequence_number() {
    let (mut ca, mut cb) = configs();
    ca.dpd_delay = Some(Duration::from_secs(30));
    cb.dpd_delay = Some(Duration::from_secs(3600));
    let (mut a, mut b) = peers(ca, cb);
    up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    // Probe 1: B's ACK held back; A retransmits (probe 2), whose ACK
    // arrives.
    let t1 = a.poll_timeout().unwrap();
    a.handle_timeout(t1);
    let p1 = a.poll_transmit().unwrap();
    deliver(t1, &mut b, &p1);
    let ack1 = b.poll_transmit().unwrap();
    let t2 = a.poll_timeout().unwrap();
    a.handle_timeout(t2);
    let p2 = a.poll_transmit().unwrap();
    deliver(t2, &mut b, &p2);
    let ack2 = b.poll_transmit().unwrap();
    deliver(t2, &mut a, &ack2);
    // Probe 3, a new series: the held-back ACK of probe 1 comes now.
    let t3 = a.poll_timeout().unwrap();
    a.handle_timeout(t3);
    let _p3 = a.poll_transmit().unwrap();
    deliver(t3, &mut a, &ack1);
    assert_eq!(a.discards().get(esprit_ike::Discard::DpdAckStale), 1);
    // Still outstanding: A retransmits at the next deadline.
    let t4 = a.poll_timeout().unwrap();
    assert_eq!(t4, t3 + Duration::from_secs(30));
    a.handle_timeout(t4);
    assert!(a.poll_transmit().is_some(), "the probe is still outstanding");
}

/// An unauthenticated AUTHENTICATION-FAILED with the exchange's cookies
/// (anyone on the path sees them) does not end a Main Mode past its first
/// message (RFC 2408 §5): the exchange completes.
#[test]
fn unauthenticated_notify_does_not_abort_main_mode() {
    use esprit_ike::wire::{MessageBuilder, NotifyPayload, PayloadType};
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    let step = |from: &mut Peer<FixedRng>, to: &mut Peer<FixedRng>| {
        let t = from.poll_transmit().unwrap();
        deliver(now, to, &t);
        t
    };
    step(&mut a, &mut b); // MM1
    step(&mut b, &mut a); // MM2
    step(&mut a, &mut b); // MM3
    let mm4 = step(&mut b, &mut a);
    let h = Header::parse(&mm4.bytes).unwrap();
    let n =
        NotifyPayload { doi: 1, protocol: 1, spi: &[], kind: NotifyType::AuthenticationFailed, data: &[] };
    let mut f = MessageBuilder::new(h.icookie, h.rcookie, ExchangeType::Informational, 0);
    f.push(PayloadType::Notify, &n.emit());
    let forged = f.finish();
    a.handle_datagram(now, mm4.remote, mm4.local, &forged).unwrap();
    let ea = events(&mut a);
    assert!(!ea.iter().any(|e| matches!(e, Event::IkeSaDown { .. })), "{ea:?}");
    assert_eq!(a.discards().get(esprit_ike::Discard::UnauthenticatedNotify), 1);
    step(&mut a, &mut b); // MM5
    step(&mut b, &mut a); // MM6
    assert!(a.is_established() && b.is_established());
}

/// As initiator, a responder's lifetime longer than ours is never
/// adopted (RFC 2407 §4.6.3.1): a man in the middle that raises it in MM2
/// (the responder's SA is not covered by HASH_R) gains nothing.
#[test]
fn longer_responder_lifetime_is_not_adopted() {
    let (mut ca, mut cb) = configs();
    ca.ike_lifetime = 3600;
    cb.ike_lifetime = 3600;
    let (mut a, mut b) = peers(ca, cb);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    pump_tampered(now, &mut a, &mut b, &mut |from_a, x, n, m| {
        if !from_a && x == ExchangeType::MainMode && n == 1 {
            let at = m.windows(4).position(|w| w == [0x80, 0x0c, 0x0e, 0x10]).unwrap();
            m[at + 2..at + 4].copy_from_slice(&[0xff, 0xff]);
        }
    });
    assert!(a.is_established());
    let next = a.poll_timeout().unwrap();
    assert!(next <= now + Duration::from_secs(3600), "{:?}", next - now);
}

/// The half-open bound in all: one source may fill it, then cycles
/// through it (its oldest gives way, counted), every first message
/// answered; Aggressive Modes (their DH done at once, never displaced)
/// fill it for good, and then a first message opens nothing.
#[test]
fn half_open_exchanges_are_bounded_in_all() {
    let (mut ca, mut cb) = configs();
    cb.half_open.global = 8;
    cb.half_open.per_source = 2;
    let (mut a, mut b) = peers(ca.clone(), cb.clone());
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    let mm1 = a.poll_transmit().unwrap();
    for n in 0..20 {
        let _ = b.handle_datagram(now, mm1.remote, mm1.local, &spoofed_mm1(&mm1.bytes, n));
    }
    assert_eq!(b.half_open(), 8);
    assert_eq!(b.discards().get(esprit_ike::Discard::HalfOpenLimitSource), 12);
    assert_eq!(b.discards().get(esprit_ike::Discard::HalfOpenLimitGlobal), 0);
    let answers = std::iter::from_fn(|| b.poll_transmit()).count();
    assert_eq!(answers, 20, "each first message is answered while its entry lives");

    ca.aggressive = true;
    cb.aggressive = true;
    cb.half_open.aggressive_burst = 100;
    let (mut a, mut b) = peers(ca, cb);
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    let am1 = a.poll_transmit().unwrap();
    for n in 0..20 {
        let _ = b.handle_datagram(now, am1.remote, am1.local, &spoofed_mm1(&am1.bytes, n));
    }
    assert_eq!(b.half_open(), 8);
    assert_eq!(b.discards().get(esprit_ike::Discard::HalfOpenLimitSource), 0);
    assert_eq!(b.discards().get(esprit_ike::Discard::HalfOpenLimitGlobal), 12);
    let answers = std::iter::from_fn(|| b.poll_transmit()).count();
    assert_eq!(answers, 8, "only the exchanges opened are answered");
}

/// A NAT in front of A (RFC 3947 §3.2 sees it; RFC 3948 §2.3 keeps it):
/// A's datagrams leave from `public` with a port per inside address (500
/// and 4500 of A each get one, as a masquerading router does), B's answers
/// to those come back in. `flush` forgets the mappings; the next ones get
/// new ports. Keepalives are counted, never delivered as IKE (the I/O
/// shells drop what has no non-ESP marker on 4500).
struct Nat {
    public: std::net::IpAddr,
    next_port: u16,
    map: Vec<(SocketAddr, SocketAddr)>,
    /// NAT-keepalives that went through: (when, from outside address).
    keepalives: Vec<(Instant, SocketAddr)>,
}

impl Nat {
    fn new() -> Nat {
        Nat {
            public: "192.0.2.7".parse().unwrap(),
            next_port: 20000,
            map: Vec::new(),
            keepalives: Vec::new(),
        }
    }

    /// A's and B's configurations, B's peer being the NAT's address.
    fn configs(&self) -> (PeerConfig, PeerConfig) {
        let (ca, mut cb) = configs();
        cb.remote = SocketAddr::new(self.public, 500);
        (ca, cb)
    }

    fn outside(&mut self, inside: SocketAddr) -> SocketAddr {
        if let Some((_, o)) = self.map.iter().find(|(i, _)| *i == inside) {
            return *o;
        }
        let o = SocketAddr::new(self.public, self.next_port);
        self.next_port += 1;
        self.map.push((inside, o));
        o
    }

    fn inside(&self, outside: SocketAddr) -> Option<SocketAddr> {
        self.map.iter().find(|(_, o)| *o == outside).map(|(i, _)| *i)
    }

    /// Moves datagrams both ways through the NAT until both are quiet.
    fn pump(&mut self, now: Instant, a: &mut Peer<FixedRng>, b: &mut Peer<FixedRng>) {
        loop {
            let mut moved = false;
            while let Some(t) = a.poll_transmit() {
                moved = true;
                let from = self.outside(t.local);
                if t.is_nat_keepalive() {
                    self.keepalives.push((now, from));
                    continue;
                }
                let _ = b.handle_datagram(now, t.remote, from, &t.bytes);
            }
            while let Some(t) = b.poll_transmit() {
                moved = true;
                assert!(!t.is_nat_keepalive(), "B is not behind a NAT: no keepalive from it");
                // Nothing mapped there: the NAT drops it.
                if let Some(to) = self.inside(t.remote) {
                    let _ = a.handle_datagram(now, to, t.local, &t.bytes);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs both peers' timers up to `until`, pumping after each.
    fn run_until(
        &mut self,
        now: &mut Instant,
        until: Instant,
        a: &mut Peer<FixedRng>,
        b: &mut Peer<FixedRng>,
    ) {
        while let Some(t) =
            [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min().filter(|t| *t <= until)
        {
            *now = t.max(*now);
            a.handle_timeout(*now);
            b.handle_timeout(*now);
            self.pump(*now, a, b);
        }
        *now = until;
    }
}

/// NAT-T through a NAT in front of A, with NAT-keepalives every 2 s:
///
/// ```text
///   A 198.51.100.1 --- NAT 192.0.2.7 (ports 20000...) --- B 203.0.113.1
///   MM1..MM4 from A:500 (outside :20000)          NAT-D: A is translated
///   MM5.. and QM from A:4500 (outside :20001)     both float to 4500
///   0xFF from A:4500 every 2 s                    B sends none
/// ```
///
/// A sees itself behind the NAT, B sees a NAT on A's side only; B's
/// children encapsulate to the NAT's port. A's keepalives come from its
/// 4500 mapping at exactly 2, 4, 6, 8 and 10 s; once every SA with B is
/// gone, they stop.
#[test]
fn behind_a_nat_keepalives_keep_the_mapping_at_the_configured_interval() {
    let mut nat = Nat::new();
    let (mut ca, cb) = nat.configs();
    ca.nat_keepalive = Some(Duration::from_secs(2));
    let (mut a, mut b) = peers(ca, cb);
    let t0 = Instant::now();
    let mut now = t0;
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    nat.pump(now, &mut a, &mut b);
    let (xa, ea) = split(events(&mut a));
    let (xb, eb) = split(events(&mut b));
    assert!(
        ea.iter().any(|e| matches!(e, Event::IkeSaUp { nat: true, behind_nat: true, .. })),
        "A: NAT seen, and it is A's: {ea:?}"
    );
    assert!(
        eb.iter().any(|e| matches!(e, Event::IkeSaUp { nat: true, behind_nat: false, .. })),
        "B: NAT seen on A's side: {eb:?}"
    );
    let e = xb[0].encap.unwrap();
    assert_eq!((e.local_port, e.remote_port), (4500, 20001), "B encapsulates to the NAT's 4500 mapping");
    let e = xa[0].encap.unwrap();
    assert_eq!((e.local_port, e.remote_port), (4500, 4500));
    assert!(nat.keepalives.is_empty(), "none before the first interval");
    assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(2)));

    nat.run_until(&mut now, t0 + Duration::from_secs(10), &mut a, &mut b);
    let at: Vec<Duration> = nat.keepalives.iter().map(|(t, _)| *t - t0).collect();
    assert_eq!(at, (1..=5).map(|n| Duration::from_secs(2 * n)).collect::<Vec<_>>());
    let public_4500 = nat.outside(
        A.parse::<SocketAddr>()
            .map(|mut s| {
                s.set_port(4500);
                s
            })
            .unwrap(),
    );
    assert!(nat.keepalives.iter().all(|(_, from)| *from == public_4500), "{:?}", nat.keepalives);

    // A late turn sends one keepalive, not a burst, and keeps the rhythm
    // from there.
    nat.keepalives.clear();
    now = t0 + Duration::from_secs(17);
    a.handle_timeout(now);
    nat.pump(now, &mut a, &mut b);
    assert_eq!(nat.keepalives.len(), 1);
    assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(19)));

    // The operator changes the frequency: the next one is a new interval
    // from then, and the rhythm is the new one.
    a.set_nat_keepalive(now, Some(Duration::from_secs(5)));
    assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(22)));
    nat.keepalives.clear();
    nat.run_until(&mut now, t0 + Duration::from_secs(32), &mut a, &mut b);
    let at: Vec<Duration> = nat.keepalives.iter().map(|(t, _)| *t - t0).collect();
    assert_eq!(at, vec![Duration::from_secs(22), Duration::from_secs(27), Duration::from_secs(32)]);

    // Every SA with B gone: no more keepalives.
    a.delete_child(now, xa[0].spi_in).unwrap();
    a.delete_ike(now).unwrap();
    nat.pump(now, &mut a, &mut b);
    nat.keepalives.clear();
    nat.run_until(&mut now, t0 + Duration::from_secs(60), &mut a, &mut b);
    assert!(nat.keepalives.is_empty(), "{:?}", nat.keepalives);
    assert_eq!(a.poll_timeout(), None);
}

/// Keepalive frequency 0 (ScreenOS `keepalive-frequency 0`): NAT-T works
/// through the NAT, but no keepalive is ever sent. And a peer that is not
/// behind a NAT sends none either, whatever its frequency.
#[test]
fn no_keepalive_at_frequency_zero_or_without_a_nat_in_front() {
    let mut nat = Nat::new();
    let (mut ca, cb) = nat.configs();
    ca.nat_keepalive = Some(Duration::ZERO);
    let (mut a, mut b) = peers(ca, cb);
    let t0 = Instant::now();
    let mut now = t0;
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    nat.pump(now, &mut a, &mut b);
    assert_eq!(children(events(&mut a)).len(), 1);
    assert_eq!(a.keepalive_every(), None);
    nat.run_until(&mut now, t0 + Duration::from_secs(60), &mut a, &mut b);
    assert!(nat.keepalives.is_empty());

    // No NAT, both floated all the same (forced): no keepalive.
    let (mut ca, mut cb) = configs();
    ca.force_encap = true;
    ca.nat_keepalive = Some(Duration::from_secs(1));
    cb.nat_keepalive = Some(Duration::from_secs(1));
    let (mut a, mut b) = peers(ca, cb);
    let (xa, _, _) = up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    assert!(xa[0].encap.is_some());
    assert_eq!((a.keepalive_every(), b.keepalive_every()), (None, None));
    let later = Instant::now() + Duration::from_secs(30);
    a.handle_timeout(later);
    b.handle_timeout(later);
    assert!(a.poll_transmit().is_none() && b.poll_transmit().is_none());
}

/// NAT traversal not configured (ScreenOS without `nat-traversal`): no
/// NAT-T vendor ID in MM1, none answered to a peer that sends it, no
/// NAT-D, no float: through a NAT the children are plain ESP, and no
/// keepalive goes out.
#[test]
fn without_nat_traversal_configured_nat_t_is_not_negotiated() {
    let vid_natt: [u8; 16] =
        [0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f];
    let has_vid = |bytes: &[u8]| bytes.windows(16).any(|w| w == vid_natt);
    for (off_a, off_b) in [(true, false), (false, true)] {
        let mut nat = Nat::new();
        let (mut ca, mut cb) = nat.configs();
        ca.nat_traversal = !off_a;
        cb.nat_traversal = !off_b;
        ca.nat_keepalive = Some(Duration::from_secs(1));
        let (mut a, mut b) = peers(ca, cb);
        let t0 = Instant::now();
        let mut now = t0;
        a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
        let mm1 = a.poll_transmit().unwrap();
        assert_eq!(has_vid(&mm1.bytes), !off_a, "MM1 offers NAT-T only if configured");
        let from = nat.outside(mm1.local);
        b.handle_datagram(now, mm1.remote, from, &mm1.bytes).unwrap();
        let mm2 = b.poll_transmit().unwrap();
        assert!(!has_vid(&mm2.bytes), "MM2 answers NAT-T only when both speak it");
        a.handle_datagram(now, mm1.local, mm2.local, &mm2.bytes).unwrap();
        nat.pump(now, &mut a, &mut b);
        let (xa, ea) = split(events(&mut a));
        let xb = children(events(&mut b));
        assert!(
            ea.iter().any(|e| matches!(e, Event::IkeSaUp { nat: false, behind_nat: false, .. })),
            "{ea:?}"
        );
        assert_eq!((xa.len(), xb.len()), (1, 1));
        assert!(xa[0].encap.is_none() && xb[0].encap.is_none(), "plain ESP");
        assert_eq!(a.addresses().0.port(), 500, "no float");
        nat.run_until(&mut now, t0 + Duration::from_secs(10), &mut a, &mut b);
        assert!(nat.keepalives.is_empty());
    }
}

// ---------------------------------------------------------------------
// Nonce lengths (RFC 2409 §5: 8 to 256 bytes), checked in all four
// places a peer's nonce arrives: MM3 and MM4 (Ni, Nr), QM1 and QM2.
// ---------------------------------------------------------------------

/// [`pump`], keeping what each delivery was refused with.
fn pump_errors(now: Instant, a: &mut Peer<FixedRng>, b: &mut Peer<FixedRng>) -> Vec<String> {
    let mut errors = Vec::new();
    loop {
        let mut moved = false;
        for from_a in [true, false] {
            let (src, dst) = if from_a { (&mut *a, &mut *b) } else { (&mut *b, &mut *a) };
            while let Some(t) = src.poll_transmit() {
                if let Err(e) = dst.handle_datagram(now, t.remote, t.local, &t.bytes) {
                    errors.push(e.to_string());
                }
                moved = true;
            }
        }
        if !moved {
            return errors;
        }
    }
}

/// Phase 1 with A (`initiator_sends`) or B sending nonces of `len` bytes:
/// whether both ends came up, and what was refused.
fn main_mode_with_nonce(initiator_sends: bool, len: usize) -> (bool, Vec<String>) {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    if initiator_sends { &mut a } else { &mut b }.set_nonce_len(len);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[0]).unwrap();
    let errors = pump_errors(now, &mut a, &mut b);
    (a.is_established() && b.is_established(), errors)
}

/// One Quick Mode after a normal phase 1, with A (`initiator_sends`) or
/// B sending a nonce of `len` bytes: whether both ends have the child.
fn quick_mode_with_nonce(initiator_sends: bool, len: usize) -> (bool, Vec<String>) {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca, cb);
    up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    if initiator_sends { &mut a } else { &mut b }.set_nonce_len(len);
    let now = Instant::now();
    a.initiate_child(now, seed_proxy_ids()[1]).unwrap();
    let errors = pump_errors(now, &mut a, &mut b);
    let (ea, eb) = (events(&mut a), events(&mut b));
    let a_up = ea.iter().any(|e| matches!(e, Event::ChildSaUp(_)));
    let b_up = eb.iter().any(|e| matches!(e, Event::ChildSaUp(_)));
    (a_up && b_up, errors)
}

/// Refused for its nonce: by name where the nonce is read on its own
/// (MM3, MM4, QM1); QM2's checks all answer PAYLOAD-MALFORMED, and the
/// nonce length is the only thing these tests change.
fn refused_for_nonce(errors: &[String]) -> bool {
    errors
        .iter()
        .any(|e| e.contains("nonce length outside 8..256") || e.ends_with("QM2 refused: PayloadMalformed"))
}

#[test]
fn main_mode_nonce_lengths_8_to_256_are_accepted() {
    for from_a in [true, false] {
        for len in [8, 256] {
            let (up, errors) = main_mode_with_nonce(from_a, len);
            assert!(up && errors.is_empty(), "from A {from_a}, {len} bytes: {errors:?}");
        }
    }
}

#[test]
fn main_mode_nonce_lengths_outside_8_to_256_are_refused() {
    for from_a in [true, false] {
        for len in [0, 7, 257] {
            let (up, errors) = main_mode_with_nonce(from_a, len);
            assert!(!up, "from A {from_a}, {len} bytes: phase 1 came up");
            assert!(refused_for_nonce(&errors), "from A {from_a}, {len} bytes: {errors:?}");
        }
    }
}

#[test]
fn quick_mode_nonce_lengths_8_to_256_are_accepted() {
    for from_a in [true, false] {
        for len in [8, 256] {
            let (up, errors) = quick_mode_with_nonce(from_a, len);
            assert!(up && errors.is_empty(), "from A {from_a}, {len} bytes: {errors:?}");
        }
    }
}

#[test]
fn quick_mode_nonce_lengths_outside_8_to_256_are_refused() {
    for from_a in [true, false] {
        for len in [7, 257] {
            let (up, errors) = quick_mode_with_nonce(from_a, len);
            assert!(!up, "from A {from_a}, {len} bytes: the child came up");
            assert!(refused_for_nonce(&errors), "from A {from_a}, {len} bytes: {errors:?}");
        }
        // An empty NONCE payload is malformed before its length is read.
        assert!(!quick_mode_with_nonce(from_a, 0).0, "from A {from_a}, 0 bytes: the child came up");
    }
}

/// A phase 1 from the peer's address that fails to authenticate beside an
/// established ISAKMP SA (here: someone there without the PSK) is reported
/// as the peer's phase 1 failing, not as our rekey failing; the SA stays.
#[test]
fn a_failed_phase1_from_the_peers_address_is_not_our_rekey() {
    let (ca, cb) = configs();
    let (mut a, mut b) = peers(ca.clone(), cb);
    up(&mut a, &mut b, &seed_proxy_ids()[..1]);
    let mut wrong = ca;
    wrong.psk = zeroize::Zeroizing::new(b"not-the-psk-0123456789".to_vec());
    let (mut stranger, _) = peers(wrong, configs().1);
    let now = Instant::now();
    stranger.initiate_child(now, seed_proxy_ids()[1]).unwrap();
    pump_errors(now, &mut stranger, &mut b);
    let eb = events(&mut b);
    assert!(eb.iter().any(|e| matches!(e, Event::PeerPhase1Failed { .. })), "{eb:?}");
    assert!(!eb.iter().any(|e| matches!(e, Event::Phase1RekeyFailed { .. })), "{eb:?}");
    assert!(b.is_established(), "the ISAKMP SA carries on");
}
