//! Diffie-Hellman groups 2, 5, 14, 15 (MODP, RFC 2409 §6.2, RFC 3526 §2-4;
//! generator 2) with `crypto-bigint`'s constant-time Montgomery
//! exponentiation, and 19, 20 (ECP P-256/P-384, RFC 5903) with RustCrypto
//! `p256`/`p384`, and 31 (Curve25519, RFC 8031) with `x25519-dalek`, all
//! chosen over `ring` because they accept a given private value, so tests
//! can fix the secret (ring's agreement keys only draw their own).
//!
//! Public values on the wire: MODP as a big-endian integer left-padded to
//! the prime's length; ECP as x | y (RFC 5903 §7, no 0x04 prefix);
//! Curve25519 as the 32-byte little-endian u-coordinate (RFC 8031 §2). The
//! shared secret g^xy: MODP padded to the prime's length; ECP the
//! x-coordinate only (RFC 5903 §9); Curve25519 the 32 bytes of X25519.
//!
//! MODP private exponents are 256 bits (twice the strength of the largest
//! group here, NIST SP 800-56A), so a side costs ~1 ms, not ~8 ms (FACTS).
//! Peer values are checked: 1 < y < p-1 for MODP, on-curve for ECP, 32
//! bytes and a shared secret that is not all zero for Curve25519 (RFC 8031
//! §2, RFC 7748 §6.1: a low-order point would force a known secret).

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Uint, U1024, U1536, U2048, U3072};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use zeroize::Zeroizing;

use crate::Random;

pub use esprit_suite::DhGroup;

/// Why a DH value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhError {
    /// Public value of the wrong length for the group.
    #[error("DH group {group}: public value of {len} bytes, expected {expected}")]
    BadLength {
        /// Group number.
        group: u16,
        /// Length received.
        len: usize,
        /// Length expected.
        expected: usize,
    },
    /// Public value out of range or not on the curve.
    #[error("DH group {group}: invalid public value")]
    InvalidPublic {
        /// Group number.
        group: u16,
    },
    /// Private value out of range.
    #[error("DH group {group}: invalid private value")]
    InvalidSecret {
        /// Group number.
        group: u16,
    },
    /// Curve25519: the peer's value is a point of small order, so the
    /// shared secret came out all zero (RFC 8031 §2, RFC 7748 §6.1).
    #[error("DH group {group}: public value of small order (all-zero shared secret)")]
    ZeroShared {
        /// Group number.
        group: u16,
    },
}

const MODP1024: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF";
const MODP1536: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF";
const MODP2048: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";
const MODP3072: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";
/// Private exponent size for MODP groups.
const MODP_EXPONENT_BITS: usize = 256;

/// Length of a private value drawn from the random source: MODP
/// exponents of [`MODP_EXPONENT_BITS`], ECP scalars of the curve's size,
/// Curve25519 32 random bytes (clamped by X25519 itself, RFC 7748 §5).
fn secret_len(group: DhGroup) -> usize {
    match group {
        DhGroup::Modp1024 | DhGroup::Modp1536 | DhGroup::Modp2048 | DhGroup::Modp3072 => {
            MODP_EXPONENT_BITS / 8
        }
        DhGroup::Ecp256 => 32,
        DhGroup::Ecp384 => 48,
        DhGroup::Curve25519 => 32,
    }
}

/// One side's DH private value and its public value.
pub struct DhSecret {
    group: DhGroup,
    secret: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

impl core::fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DhSecret").field("group", &self.group).finish_non_exhaustive()
    }
}

fn to_be<const L: usize>(v: &Uint<L>) -> Vec<u8> {
    v.as_words().iter().rev().flat_map(|w| w.to_be_bytes()).collect()
}

fn left_pad(bytes: &[u8], len: usize) -> Option<Zeroizing<Vec<u8>>> {
    if bytes.len() > len {
        return None;
    }
    let mut out = Zeroizing::new(vec![0u8; len - bytes.len()]);
    out.extend_from_slice(bytes);
    Some(out)
}

fn modp_pow<const L: usize>(prime: &Uint<L>, base: &Uint<L>, exponent: &[u8]) -> Option<Vec<u8>> {
    let exp = left_pad(exponent, L * 8)?;
    let exp = Uint::<L>::from_be_slice(&exp);
    let params = DynResidueParams::new(prime);
    let r = DynResidue::new(base, params).pow_bounded_exp(&exp, exponent.len() * 8);
    Some(to_be(&r.retrieve()))
}

fn modp_public<const L: usize>(prime: &Uint<L>, secret: &[u8]) -> Option<Vec<u8>> {
    modp_pow(prime, &Uint::<L>::from_u8(2), secret)
}

fn modp_shared<const L: usize>(
    group: DhGroup,
    prime: &Uint<L>,
    secret: &[u8],
    peer: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DhError> {
    let g = group.number();
    if peer.len() != L * 8 {
        return Err(DhError::BadLength { group: g, len: peer.len(), expected: L * 8 });
    }
    let y = Uint::<L>::from_be_slice(peer);
    let p_minus_1 = prime.wrapping_sub(&Uint::ONE);
    if y <= Uint::ONE || y >= p_minus_1 {
        return Err(DhError::InvalidPublic { group: g });
    }
    modp_pow(prime, &y, secret).map(Zeroizing::new).ok_or(DhError::InvalidSecret { group: g })
}

macro_rules! ecp {
    ($krate:ident, $secret:expr, $peer:expr, $group:expr) => {{
        let g = $group.number();
        let sk = $krate::SecretKey::from_slice($secret).map_err(|_| DhError::InvalidSecret { group: g })?;
        match $peer {
            None => Ok(Zeroizing::new(sk.public_key().to_encoded_point(false).as_bytes()[1..].to_vec())),
            Some(peer) => {
                let peer: &[u8] = peer;
                if peer.len() != $group.public_len() {
                    return Err(DhError::BadLength {
                        group: g,
                        len: peer.len(),
                        expected: $group.public_len(),
                    });
                }
                let mut sec1 = vec![4u8];
                sec1.extend_from_slice(peer);
                let pk = $krate::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| DhError::InvalidPublic { group: g })?;
                let shared = $krate::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
            }
        }
    }};
}

/// Curve25519 (RFC 8031 §2): the peer's 32-byte u-coordinate, refused in
/// any other length, and the X25519 result, refused when all zero.
fn x25519_shared(secret: &[u8], peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, DhError> {
    let g = DhGroup::Curve25519.number();
    let peer: [u8; 32] =
        peer.try_into().map_err(|_| DhError::BadLength { group: g, len: peer.len(), expected: 32 })?;
    let secret: [u8; 32] = secret.try_into().map_err(|_| DhError::InvalidSecret { group: g })?;
    let sk = x25519_dalek::StaticSecret::from(secret);
    let shared = sk.diffie_hellman(&x25519_dalek::PublicKey::from(peer));
    // RFC 7748 §6.1: checked in constant time by the library.
    if !shared.was_contributory() {
        return Err(DhError::ZeroShared { group: g });
    }
    Ok(Zeroizing::new(shared.as_bytes().to_vec()))
}

/// The public value g^x (MODP), x*G (ECP, without the 0x04 prefix) or
/// X25519(x, 9) (Curve25519).
fn public_value(group: DhGroup, secret: &[u8]) -> Option<Vec<u8>> {
    match group {
        DhGroup::Modp1024 => modp_public(&U1024::from_be_hex(MODP1024), secret),
        DhGroup::Modp1536 => modp_public(&U1536::from_be_hex(MODP1536), secret),
        DhGroup::Modp2048 => modp_public(&U2048::from_be_hex(MODP2048), secret),
        DhGroup::Modp3072 => modp_public(&U3072::from_be_hex(MODP3072), secret),
        DhGroup::Ecp256 => ecp_public!(p256, secret),
        DhGroup::Ecp384 => ecp_public!(p384, secret),
        DhGroup::Curve25519 => {
            let secret: [u8; 32] = secret.try_into().ok()?;
            let sk = x25519_dalek::StaticSecret::from(secret);
            Some(x25519_dalek::PublicKey::from(&sk).as_bytes().to_vec())
        }
    }
}

/// ECP public value; None for an invalid scalar (zero or >= the order).
macro_rules! ecp_public {
    ($krate:ident, $secret:expr) => {
        $krate::SecretKey::from_slice($secret)
            .ok()
            .map(|sk| sk.public_key().to_encoded_point(false).as_bytes()[1..].to_vec())
    };
}
use ecp_public;

impl DhSecret {
    /// A new private value from `rng` (ECP: redrawn until a valid scalar).
    pub fn generate(group: DhGroup, rng: &mut dyn Random) -> DhSecret {
        loop {
            let mut s = Zeroizing::new(vec![0u8; secret_len(group)]);
            rng.fill(&mut s);
            if let Ok(d) = DhSecret::from_secret(group, &s) {
                return d;
            }
        }
    }

    /// From a given private value (big-endian exponent or scalar).
    pub fn from_secret(group: DhGroup, secret: &[u8]) -> Result<DhSecret, DhError> {
        let bad = DhError::InvalidSecret { group: group.number() };
        if secret.len() != secret_len(group) || secret.iter().all(|b| *b == 0) {
            return Err(bad);
        }
        let public =
            memo::get_or(group, secret, None, || public_value(group, secret).map(Zeroizing::new).ok_or(bad))?
                .to_vec();
        Ok(DhSecret { group, secret: Zeroizing::new(secret.to_vec()), public })
    }

    /// The group.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The public value, as sent in a KE payload.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The shared secret g^xy with the peer's public value.
    pub fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, DhError> {
        let s: &[u8] = &self.secret;
        memo::get_or(self.group, s, Some(peer), || match self.group {
            DhGroup::Modp1024 => modp_shared(self.group, &U1024::from_be_hex(MODP1024), s, peer),
            DhGroup::Modp1536 => modp_shared(self.group, &U1536::from_be_hex(MODP1536), s, peer),
            DhGroup::Modp2048 => modp_shared(self.group, &U2048::from_be_hex(MODP2048), s, peer),
            DhGroup::Modp3072 => modp_shared(self.group, &U3072::from_be_hex(MODP3072), s, peer),
            DhGroup::Ecp256 => ecp!(p256, s, Some(peer), self.group),
            DhGroup::Ecp384 => ecp!(p384, s, Some(peer), self.group),
            DhGroup::Curve25519 => x25519_shared(s, peer),
        })
    }
}

/// DH results, memoised in fuzzing builds only. The fuzz targets replay
/// recorded exchanges, so most runs repeat the same private values and peer
/// publics, and the curve arithmetic under coverage instrumentation was two
/// thirds of each run of the IKE dispatch target. The values are the ones
/// computed the first time: only the cost changes. Bounded: cleared at 4,096.
#[cfg(feature = "fuzzing")]
mod memo {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use zeroize::Zeroizing;

    use super::{DhError, DhGroup};

    /// Group, private value, and the peer's public value (`None`: our
    /// own public value, never confused with an empty peer value).
    type Key = (u16, Vec<u8>, Option<Vec<u8>>);
    thread_local! {
        static MEMO: RefCell<HashMap<Key, Result<Vec<u8>, DhError>>> = RefCell::new(HashMap::new());
    }

    pub(super) fn get_or(
        group: DhGroup,
        secret: &[u8],
        peer: Option<&[u8]>,
        f: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, DhError>,
    ) -> Result<Zeroizing<Vec<u8>>, DhError> {
        let key = (group.number(), secret.to_vec(), peer.map(<[u8]>::to_vec));
        if let Some(r) = MEMO.with(|m| m.borrow().get(&key).cloned()) {
            return r.map(Zeroizing::new);
        }
        let r = f();
        MEMO.with(|m| {
            let mut m = m.borrow_mut();
            if m.len() >= 4096 {
                m.clear();
            }
            m.insert(key, r.as_ref().map(|v| v.to_vec()).map_err(|e| *e));
        });
        r
    }
}

#[cfg(not(feature = "fuzzing"))]
mod memo {
    use zeroize::Zeroizing;

    use super::{DhError, DhGroup};

    #[inline(always)]
    pub(super) fn get_or(
        _group: DhGroup,
        _secret: &[u8],
        _peer: Option<&[u8]>,
        f: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, DhError>,
    ) -> Result<Zeroizing<Vec<u8>>, DhError> {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    /// Both ends of a known-answer vector: private values `i` and `r`,
    /// `i`'s public value (its first `public_i.len()` bytes) and g^ir
    /// computed both ways.
    fn assert_vector(
        group: DhGroup,
        i: &[u8],
        r: &[u8],
        public_i: &[u8],
        gir: &[u8],
    ) -> (DhSecret, DhSecret) {
        let a = DhSecret::from_secret(group, i).unwrap();
        let b = DhSecret::from_secret(group, r).unwrap();
        assert_eq!(&a.public()[..public_i.len()], public_i, "{group:?}");
        assert_eq!(&*a.agree(b.public()).unwrap(), gir, "{group:?}");
        assert_eq!(&*b.agree(a.public()).unwrap(), gir, "{group:?}");
        (a, b)
    }

    /// RFC 5903 §8.1 (P-256) and §8.2 (P-384) test vectors.
    #[test]
    fn ecp_rfc5903_vectors() {
        assert_vector(
            DhGroup::Ecp256,
            &h("C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433"),
            &h("C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53"),
            &h("DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180 \
                5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3"),
            &h("D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE"),
        );
        let (a, b) = assert_vector(
            DhGroup::Ecp384,
            &h("099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655 E35B5380 41E649EE 3FAEF896 783AB194"),
            &h("41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942 E0308312 916B8ED2 960E4BD5 5A7448FC"),
            &h("667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6 DE3AC808 ACB4BDB4 C88732AE E95F41AA"),
            &h("11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4 D6031355 69B9E9D0 9CF5D4A2 70F59746"),
        );
        // Not on the curve.
        let mut bad = b.public().to_vec();
        bad[95] ^= 1;
        assert!(a.agree(&bad).is_err());
        assert!(a.agree(&bad[..95]).is_err());
    }

    /// RFC 7748 §6.1: Alice's and Bob's private values, public values and
    /// shared secret.
    #[test]
    fn curve25519_rfc7748_vectors() {
        let (_, b) = assert_vector(
            DhGroup::Curve25519,
            &h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
            &h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"),
            &h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"),
            &h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"),
        );
        assert_eq!(b.public(), &h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")[..]);
    }

    /// RFC 7748 §5.2: X25519 of a given scalar and u-coordinate (the
    /// first vector, whose u has its top bit set: it must be masked).
    #[test]
    fn curve25519_rfc7748_scalar_multiplication() {
        let k = h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
        let u = h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
        let d = DhSecret::from_secret(DhGroup::Curve25519, &k).unwrap();
        assert_eq!(
            hex::encode(&*d.agree(&u).unwrap()),
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
        );
    }

    /// RFC 8031 §2: a public value that is not 32 bytes, and one of small
    /// order (whose shared secret is all zero), are refused, not used.
    #[test]
    fn curve25519_refuses_wrong_length_and_small_order() {
        let d = DhSecret::from_secret(DhGroup::Curve25519, &[7u8; 32]).unwrap();
        for len in [0, 1, 31, 33, 64] {
            assert_eq!(
                d.agree(&vec![9u8; len]),
                Err(DhError::BadLength { group: 31, len, expected: 32 }),
                "{len} bytes"
            );
        }
        // u = 0, u = 1 and a point of order 8 (RFC 7748 §7's list of
        // small-order points; u = p - 1 and p, p + 1 non-canonical forms).
        let mut p_minus_1 = vec![0xffu8; 32];
        p_minus_1[0] = 0xec;
        p_minus_1[31] = 0x7f;
        let mut p = p_minus_1.clone();
        p[0] = 0xed;
        let mut p_plus_1 = p_minus_1.clone();
        p_plus_1[0] = 0xee;
        let order8 = h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
        let mut one = vec![0u8; 32];
        one[0] = 1;
        for bad in [vec![0u8; 32], one, order8, p_minus_1, p, p_plus_1] {
            assert_eq!(d.agree(&bad), Err(DhError::ZeroShared { group: 31 }), "{}", hex::encode(&bad));
        }
        // An all-zero private value is refused (any other is clamped).
        assert!(DhSecret::from_secret(DhGroup::Curve25519, &[0u8; 32]).is_err());
        assert!(DhSecret::from_secret(DhGroup::Curve25519, &[1u8; 31]).is_err());
    }

    /// MODP against Python integers (tests/kat_dh.py).
    #[test]
    fn modp_known_answers() {
        let x: Vec<u8> = (1..=32).collect();
        let y: Vec<u8> = (33..=64).collect();
        for line in include_str!("../../tests/kat_dh.txt").lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let group = DhGroup::from_number(f[0].parse().unwrap()).unwrap();
            let a = DhSecret::from_secret(group, &x).unwrap();
            let b = DhSecret::from_secret(group, &y).unwrap();
            assert_eq!(hex::encode(a.public()), f[1], "group {}", f[0]);
            assert_eq!(hex::encode(b.public()), f[2]);
            assert_eq!(hex::encode(&*a.agree(b.public()).unwrap()), f[3]);
            assert_eq!(hex::encode(&*b.agree(a.public()).unwrap()), f[3]);
            // 1, p-1 and short values are refused.
            let mut one = vec![0u8; group.public_len()];
            *one.last_mut().unwrap() = 1;
            assert!(a.agree(&one).is_err());
            assert!(a.agree(&[0xff; 8]).is_err());
        }
    }
}
