//! The IKEv2 key schedule against known answers computed independently
//! with python `cryptography` (tests/kat_v2_keys.py writes
//! tests/kat_v2_keys.txt): SKEYSEED and SK_* for the four HMAC PRFs, the
//! rekeyed SKEYSEED (§2.18) and child KEYMAT with and without PFS (§2.17).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use esprit_ike::v2::alg::{EncrAlg, IntegAlg, PrfAlg, SkSuite};
use esprit_ike::v2::keys::{skeyseed, IkeSaKeys};
use esprit_ike::Suite;

const NI: [u8; 32] = [0xa1; 32];
const NR: [u8; 32] = [0xb2; 32];
const GIR: [u8; 256] = [0x5c; 256];
const SPII: u64 = 0x0102030405060708;
const SPIR: u64 = 0x1112131415161718;
const NI2: [u8; 32] = [0xc3; 32];
const NR2: [u8; 24] = [0xd4; 24];
const GIR2: [u8; 32] = [0x6d; 32];
const SPII2: u64 = 0x2122232425262728;
const SPIR2: u64 = 0x3132333435363738;
const GIR3: [u8; 32] = [0x7e; 32];

fn known() -> HashMap<String, String> {
    include_str!("kat_v2_keys.txt")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn check(want: &HashMap<String, String>, name: &str, got: &[u8]) {
    let w = want.get(name).unwrap_or_else(|| panic!("{name} missing from kat_v2_keys.txt"));
    assert_eq!(&hex::encode(got), w, "{name}");
}

fn check_keys(want: &HashMap<String, String>, prefix: &str, k: &IkeSaKeys) {
    for (name, key) in [
        ("sk_d", &k.sk_d),
        ("sk_ai", &k.sk_ai),
        ("sk_ar", &k.sk_ar),
        ("sk_ei", &k.sk_ei),
        ("sk_er", &k.sk_er),
        ("sk_pi", &k.sk_pi),
        ("sk_pr", &k.sk_pr),
    ] {
        check(want, &format!("{prefix}.{name}"), key);
    }
}

#[test]
fn key_schedule_matches_python() {
    let want = known();
    let cases = [
        ("sha1", PrfAlg::HmacSha1, SkSuite::new(EncrAlg::AesCbc128, Some(IntegAlg::HmacSha1_96))),
        ("sha256", PrfAlg::HmacSha256, SkSuite::new(EncrAlg::AesCbc256, Some(IntegAlg::HmacSha256_128))),
        ("sha384", PrfAlg::HmacSha384, SkSuite::new(EncrAlg::AesGcm16_256, None)),
        ("sha512", PrfAlg::HmacSha512, SkSuite::new(EncrAlg::AesCbc256, Some(IntegAlg::HmacSha512_256))),
    ];
    let mut checked = 0;
    for (name, prf, suite) in cases {
        let suite = suite.unwrap();
        check(&want, &format!("{name}.skeyseed"), &skeyseed(prf, &NI, &NR, &GIR));
        let k = IkeSaKeys::derive(prf, suite, &NI, &NR, &GIR, SPII, SPIR).unwrap();
        check_keys(&want, name, &k);
        // §2.18: the old SA's SK_d and PRF give the new SKEYSEED.
        check(&want, &format!("{name}.rekey.skeyseed"), &prf.prf(&k.sk_d, &[&GIR2, &NI2, &NR2]));
        let k2 = k.derive_rekey(prf, suite, &NI2, &NR2, &GIR2, SPII2, SPIR2).unwrap();
        check_keys(&want, &format!("{name}.rekey"), &k2);
        // §2.17 without PFS (GCM: key and salt, no integrity key).
        let c = k.child_keys(Suite::Aes128Gcm16, None, &NI2, &NR2).unwrap();
        check(&want, &format!("{name}.child.gcm128.i2r.encr"), &c.initiator_to_responder.encryption);
        check(&want, &format!("{name}.child.gcm128.r2i.encr"), &c.responder_to_initiator.encryption);
        assert!(
            c.initiator_to_responder.integrity.is_empty() && c.responder_to_initiator.integrity.is_empty()
        );
        // §2.17 with PFS.
        let c = k.child_keys(Suite::Aes256CbcSha256, Some(&GIR3), &NI2, &NR2).unwrap();
        let p = format!("{name}.child.cbc256sha256.pfs");
        check(&want, &format!("{p}.i2r.encr"), &c.initiator_to_responder.encryption);
        check(&want, &format!("{p}.i2r.integ"), &c.initiator_to_responder.integrity);
        check(&want, &format!("{p}.r2i.encr"), &c.responder_to_initiator.encryption);
        check(&want, &format!("{p}.r2i.integ"), &c.responder_to_initiator.integrity);
        checked += 1;
    }
    assert_eq!(checked, 4);
    assert_eq!(want.len(), 4 * 22, "every known answer is checked");
}
