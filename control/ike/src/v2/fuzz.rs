//! Fuzz entry point of the IKEv2 layer: what `fuzz/` targets call, and what
//! this crate's tests replay from the kept corpus. Not an API for anything
//! else.
//!
//! [`ikev2_message`] takes one input three ways:
//!
//! 1. as a whole message: the header, the payload chain, every understood
//!    payload through its view; each payload is re-emitted and must parse
//!    back equal, and the message rebuilt from them must parse to the same
//!    payloads;
//! 2. as a bare payload chain (the first byte is the first type), as the
//!    plaintext of an Encrypted payload is read;
//! 3. through [`SkCipher::open`] with fixed keys for two suites (the
//!    corpus holds messages sealed with them, so mutations get past the
//!    ICV only where the fuzzer finds its way, and the inner chain is
//!    checked as in 1); and, for every suite, the input sealed as the body
//!    of a Vendor ID payload must open to itself.
//!
//! Never panics, whatever the bytes; a failed invariant is a finding.

// A fuzz body asserts its invariants: a failed one is a finding.
#![allow(clippy::unwrap_used)]

use super::alg::{EncrAlg, IntegAlg, SkSuite};
use super::sk::SkCipher;
use super::wire::{
    ExchangeType, Header, MessageBuilder, Payload, PayloadChain, PayloadIter, PayloadType, ProposalRepr,
    TrafficSelector, FLAG_INITIATOR,
};
use crate::Random;

/// Every suite of the Encrypted payload.
pub fn suites() -> Vec<SkSuite> {
    let integ =
        [IntegAlg::HmacSha1_96, IntegAlg::HmacSha256_128, IntegAlg::HmacSha384_192, IntegAlg::HmacSha512_256];
    let mut v: Vec<SkSuite> = [EncrAlg::AesCbc128, EncrAlg::AesCbc256]
        .iter()
        .flat_map(|&e| integ.iter().filter_map(move |&a| SkSuite::new(e, Some(a))))
        .collect();
    v.extend([EncrAlg::AesGcm16_128, EncrAlg::AesGcm16_256].iter().filter_map(|&e| SkSuite::new(e, None)));
    v
}

/// The suites whose fixed-key messages are in the corpus.
pub fn corpus_suites() -> [SkSuite; 2] {
    [
        SkSuite::new(EncrAlg::AesCbc256, Some(IntegAlg::HmacSha256_128)).unwrap(),
        SkSuite::new(EncrAlg::AesGcm16_128, None).unwrap(),
    ]
}

/// The fixed-key cipher of the initiator (`initiator`) or the responder.
pub fn cipher(suite: SkSuite, initiator: bool) -> SkCipher {
    let e = |b: u8| vec![b; suite.encr().key_len()];
    let a = |b: u8| vec![b; suite.integ_key_len()];
    let (ei, ai, er, ar) = (e(0x11), a(0x22), e(0x33), a(0x44));
    let (out, inb) = if initiator { ((&ei, &ai), (&er, &ar)) } else { ((&er, &ar), (&ei, &ai)) };
    SkCipher::from_keys(suite, (out.0, out.1), (inb.0, inb.1)).unwrap()
}

/// Deterministic IVs.
#[derive(Debug)]
pub struct FixedRng(pub u8);

impl Random for FixedRng {
    fn fill(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self.0.wrapping_add(0x3d);
            *b = self.0;
        }
    }
}

/// A header for sealing.
pub fn header(exchange: ExchangeType, message_id: u32) -> Header {
    Header {
        spi_i: 0x0123_4567_89ab_cdef,
        spi_r: 0xfedc_ba98_7654_3210,
        next_payload: 0,
        exchange,
        flags: FLAG_INITIATOR,
        message_id,
        length: 0,
    }
}

/// Re-emits `p`, parses it back and checks it is the same.
fn round_trip(p: &Payload<'_>) {
    let mut chain = PayloadChain::new();
    match p {
        // SA and TS re-emit through their owned forms.
        Payload::Sa(sa) => {
            let reprs: Vec<ProposalRepr> = sa.proposals().map(|pr| ProposalRepr::from(&pr)).collect();
            chain.push_with(PayloadType::Sa, false, |o| ProposalRepr::emit_sa(&reprs, o));
        }
        Payload::TsI(ts) | Payload::TsR(ts) => {
            let sel: Vec<TrafficSelector> = ts.selectors().collect();
            chain.push_with(p.kind(), false, |o| TrafficSelector::emit_payload(&sel, o));
        }
        _ => chain.push_payload(p),
    }
    // A body past 64 KiB cannot have parsed from a message.
    let bytes = chain.bytes().unwrap();
    let raw = PayloadIter::new(bytes, chain.first(), 0).next().unwrap().unwrap();
    let back = Payload::parse(&raw).unwrap();
    match (p, &back) {
        (Payload::Sa(a), Payload::Sa(b)) => {
            let ra: Vec<ProposalRepr> = a.proposals().map(|x| ProposalRepr::from(&x)).collect();
            let rb: Vec<ProposalRepr> = b.proposals().map(|x| ProposalRepr::from(&x)).collect();
            assert_eq!(ra, rb);
        }
        (Payload::TsI(a), Payload::TsI(b)) | (Payload::TsR(a), Payload::TsR(b)) => {
            assert!(a.selectors().eq(b.selectors()));
        }
        // The next-payload field is the chain's, not the body's.
        (Payload::EncryptedFragment(a), Payload::EncryptedFragment(b)) => {
            assert_eq!((a.number, a.total, a.sealed), (b.number, b.total, b.sealed));
        }
        _ => assert_eq!(p, &back),
    }
}

/// Walks a chain: every understood payload parsed and round-tripped; the
/// error, if any, must name a Notify. Returns the payloads that parsed.
fn walk<'a>(iter: PayloadIter<'a>) -> Vec<Payload<'a>> {
    let mut ok = Vec::new();
    for raw in iter {
        let Ok(raw) = raw.map_err(|e| e.notify()) else {
            break;
        };
        match Payload::parse(&raw) {
            Ok(p) => {
                round_trip(&p);
                ok.push(p);
            }
            Err(e) => {
                let _ = e.notify();
            }
        }
    }
    ok
}

/// The fuzz body; see the module doc.
pub fn ikev2_message(data: &[u8]) {
    // 1. A whole message.
    if let Ok(h) = Header::parse(data) {
        let mut it = PayloadIter::of_message(data, &h);
        let payloads = walk(it.clone());
        let clean = it.all(|r| r.is_ok());
        if clean
            && payloads.iter().all(|p| !matches!(p, Payload::Encrypted(_) | Payload::EncryptedFragment(_)))
        {
            // Rebuilt from what parsed: the same payloads, in order.
            let mut m = MessageBuilder::new(h);
            for p in &payloads {
                m.chain.push_payload(p);
            }
            let rebuilt = m.finish().unwrap();
            let h2 = Header::parse(&rebuilt).unwrap();
            let again: Vec<Payload<'_>> = PayloadIter::of_message(&rebuilt, &h2)
                .map(|r| Payload::parse(&r.unwrap()).unwrap())
                .collect();
            assert_eq!(again.len(), payloads.len());
            for (a, b) in payloads.iter().zip(&again) {
                assert_eq!(a.kind(), b.kind());
            }
        }
    }
    // 2. A bare chain.
    if let Some((&first, rest)) = data.split_first() {
        walk(PayloadIter::new(rest, first, 1));
    }
    // 3. SK with fixed keys.
    for suite in corpus_suites() {
        if let Ok(opened) = cipher(suite, false).open(data) {
            walk(opened.payloads());
        }
    }
    let body = &data[..data.len().min(1024)];
    for suite in suites() {
        let mut chain = PayloadChain::new();
        chain.push(PayloadType::VendorId, body);
        let mut sealer = cipher(suite, true);
        let msg = sealer
            .seal(&header(ExchangeType::Informational, 2), &chain, &mut FixedRng(body.len() as u8))
            .unwrap();
        let opened = cipher(suite, false).open(&msg).unwrap();
        assert_eq!(&opened.plaintext[..], chain.bytes().unwrap());
    }
}

/// The seed corpus: real messages of each exchange, the encrypted ones
/// sealed with the fixed keys of [`corpus_suites`].
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    use super::wire::{
        transform_id as tid, AuthMethod, AuthPayload, CertEncoding, CertPayload, DeletePayload, IdPayload,
        IdType, KePayload, NotifyPayload, NotifyType, ProtocolId, TransformRepr, TransformType, TsAddresses,
        FLAG_RESPONSE,
    };
    use std::net::Ipv4Addr;

    let t = |kind, id, key_length| TransformRepr { kind, id, key_length };
    let ike = |num, encr: (u16, u16), prf, dh| ProposalRepr {
        num,
        protocol: ProtocolId::Ike,
        spi: vec![],
        transforms: vec![
            t(TransformType::Encr, encr.0, Some(encr.1)),
            t(TransformType::Prf, prf, None),
            t(TransformType::Integ, tid::AUTH_HMAC_SHA2_256_128, None),
            t(TransformType::Dh, dh, None),
        ],
    };
    let esp = ProposalRepr {
        num: 1,
        protocol: ProtocolId::Esp,
        spi: vec![0xc1, 0, 0, 0x2a],
        transforms: vec![
            t(TransformType::Encr, tid::ENCR_AES_GCM_16, Some(128)),
            t(TransformType::Esn, tid::ESN_NONE, None),
        ],
    };
    let ts = |a: [u8; 4], b: [u8; 4]| TrafficSelector {
        protocol: 0,
        start_port: 0,
        end_port: 65535,
        addresses: TsAddresses::V4 { start: Ipv4Addr::from(a), end: Ipv4Addr::from(b) },
    };
    let notify = |kind, spi: &'static [u8], data: &'static [u8]| {
        Payload::Notify(NotifyPayload {
            protocol: if spi.is_empty() { ProtocolId::None } else { ProtocolId::Esp },
            kind,
            spi,
            data,
        })
    };
    let mut out = Vec::new();

    // IKE_SA_INIT request and response.
    let mut h = header(ExchangeType::IkeSaInit, 0);
    h.spi_r = 0;
    let mut m = MessageBuilder::new(h);
    let props = [
        ike(1, (tid::ENCR_AES_CBC, 256), tid::PRF_HMAC_SHA2_256, 19),
        ike(2, (tid::ENCR_AES_CBC, 128), tid::PRF_HMAC_SHA1, 14),
    ];
    m.chain.push_with(PayloadType::Sa, false, |o| ProposalRepr::emit_sa(&props, o));
    m.chain.push_payload(&Payload::Ke(KePayload { group: 19, data: &[0x5a; 64] }));
    m.chain.push(PayloadType::Nonce, &[0x6b; 32]);
    m.chain.push_payload(&notify(NotifyType::NatDetectionSourceIp, &[], &[0x7c; 20]));
    m.chain.push_payload(&notify(NotifyType::NatDetectionDestinationIp, &[], &[0x8d; 20]));
    m.chain.push_payload(&notify(NotifyType::FragmentationSupported, &[], &[]));
    m.chain.push(PayloadType::VendorId, b"esprit");
    out.push(("sa-init-request".to_string(), m.finish().unwrap()));
    let mut m = MessageBuilder::new(Header { flags: FLAG_RESPONSE, ..header(ExchangeType::IkeSaInit, 0) });
    m.chain.push_with(PayloadType::Sa, false, |o| ProposalRepr::emit_sa(&props[..1], o));
    m.chain.push_payload(&Payload::Ke(KePayload { group: 19, data: &[0x9e; 64] }));
    m.chain.push(PayloadType::Nonce, &[0xaf; 32]);
    m.chain.push_payload(&Payload::CertReq(CertPayload {
        encoding: CertEncoding::X509Signature,
        data: &[0xb0; 20],
    }));
    m.chain.push_payload(&notify(NotifyType::SignatureHashAlgorithms, &[], &[0, 2, 0, 3, 0, 4]));
    // A payload type not understood, not critical: skipped (§2.5).
    m.chain.push_with(PayloadType::Other(200), false, |o| o.extend_from_slice(b"skip me"));
    out.push(("sa-init-response".to_string(), m.finish().unwrap()));

    // IKE_AUTH request, sealed with each corpus suite.
    let mut auth = PayloadChain::new();
    auth.push_payload(&Payload::IdI(IdPayload { kind: IdType::Ipv4Addr, data: &[198, 51, 100, 1] }));
    auth.push_payload(&Payload::Cert(CertPayload {
        encoding: CertEncoding::X509Signature,
        data: &[0x30, 0x03, 2, 1, 0],
    }));
    auth.push_payload(&notify(NotifyType::InitialContact, &[], &[]));
    auth.push_payload(&Payload::IdR(IdPayload { kind: IdType::Fqdn, data: b"gw-b.example" }));
    auth.push_payload(&Payload::Auth(AuthPayload { method: AuthMethod::SharedKey, data: &[0xc1; 32] }));
    auth.push_with(PayloadType::Sa, false, |o| ProposalRepr::emit_sa(std::slice::from_ref(&esp), o));
    auth.push_with(PayloadType::TsI, false, |o| {
        TrafficSelector::emit_payload(&[ts([10, 1, 0, 0], [10, 1, 255, 255])], o)
    });
    auth.push_with(PayloadType::TsR, false, |o| {
        TrafficSelector::emit_payload(&[ts([10, 2, 0, 0], [10, 2, 255, 255])], o)
    });
    // CREATE_CHILD_SA rekeying a child (§1.3.3) with PFS.
    let mut child = PayloadChain::new();
    child.push_payload(&notify(NotifyType::RekeySa, &[0xc1, 0, 0, 0x2a], &[]));
    child.push_with(PayloadType::Sa, false, |o| ProposalRepr::emit_sa(std::slice::from_ref(&esp), o));
    child.push(PayloadType::Nonce, &[0xd2; 32]);
    child.push_payload(&Payload::Ke(KePayload { group: 19, data: &[0xe3; 64] }));
    child.push_with(PayloadType::TsI, false, |o| {
        TrafficSelector::emit_payload(&[ts([10, 1, 0, 0], [10, 1, 0, 255])], o)
    });
    child.push_with(PayloadType::TsR, false, |o| {
        TrafficSelector::emit_payload(&[ts([10, 2, 0, 0], [10, 2, 0, 255])], o)
    });
    // INFORMATIONAL deleting two children and the IKE SA.
    let mut info = PayloadChain::new();
    let spis = [0xc1, 0, 0, 0x2a, 0xc1, 0, 0, 0x2b];
    info.push_payload(&Payload::Delete(DeletePayload::new(ProtocolId::Esp, 4, &spis)));
    info.push_payload(&Payload::Delete(DeletePayload::new(ProtocolId::Ike, 0, &[])));
    for (suite, name) in corpus_suites().into_iter().zip(["cbc", "gcm"]) {
        let mut c = cipher(suite, true);
        let mut rng = FixedRng(7);
        for (exchange, id, chain, what) in [
            (ExchangeType::IkeAuth, 1, &auth, "ike-auth"),
            (ExchangeType::CreateChildSa, 2, &child, "create-child-sa"),
            (ExchangeType::Informational, 3, &info, "informational"),
        ] {
            let msg = c.seal(&header(exchange, id), chain, &mut rng).unwrap();
            out.push((format!("{what}-{name}"), msg));
        }
    }

    // The first of two Encrypted Fragments (RFC 7383 §2.5).
    let mut m = MessageBuilder::new(header(ExchangeType::IkeAuth, 1));
    m.chain.push_with(PayloadType::EncryptedFragment, false, |o| {
        o.extend_from_slice(&[0, 1, 0, 2]);
        o.extend_from_slice(&[0xf4; 48]);
    });
    let mut skf = m.finish().unwrap();
    // Its next payload names the first inner payload (IDi).
    skf[28] = PayloadType::IdI.value();
    out.push(("ike-auth-fragment".to_string(), skf));
    out
}

/// One certificate as a stranger's CERT payload carries it (RFC 7296
/// §3.6), through what IKE_AUTH reads of it before any signature is
/// checked: the DER reader's fields, every view inside the input, and
/// the identity taken from its subject. Never panics, whatever the bytes.
pub fn x509_certificate(data: &[u8]) {
    let inside = |v: &[u8]| {
        let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
        let p = v.as_ptr() as usize;
        v.is_empty() || (p >= start && p + v.len() <= end)
    };
    if let Ok(c) = super::x509::CertFields::parse(data) {
        assert!(inside(c.subject) && inside(c.spki));
        if let Ok(k) = c.public_key() {
            assert!(inside(k));
        }
        let _ = c.allows_digital_signature();
        for (_, name) in c.alt_names().take(1024) {
            assert!(inside(name));
        }
    }
    if let Some(id) = super::cert::subject_identity(data) {
        assert!(id.data.len() <= data.len());
    }
}
