//! The IKE SA's algorithms (RFC 7296 §3.3.2): the PRF, the encryption of
//! the Encrypted payload and its integrity check, with their key, IV and
//! ICV sizes and the transform IDs that name them.
//!
//! Only HMAC PRFs are offered (PRF_HMAC_SHA1, PRF_HMAC_SHA2_256/384/512,
//! RFC 4868), so a PRF's key may be any length and its preferred key
//! length is its output length (RFC 4868 §2.1.2); AES-XCBC/CMAC PRFs,
//! whose fixed keys change SKEYSEED (§2.14), are not.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use super::wire::transform_id as id;

/// HMAC over the concatenation of `parts`; HMAC takes keys of any length,
/// so keying cannot fail (an empty result would only follow a broken
/// `hmac` crate).
fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let Ok(mut m) = <M as Mac>::new_from_slice(key) else {
        return Zeroizing::new(Vec::new());
    };
    for p in parts {
        m.update(p);
    }
    Zeroizing::new(m.finalize().into_bytes().to_vec())
}

/// A pseudorandom function (transform type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrfAlg {
    /// PRF_HMAC_SHA1 (2).
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (5).
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (6).
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (7).
    HmacSha512,
}

impl PrfAlg {
    /// Transform ID.
    pub fn transform_id(self) -> u16 {
        match self {
            PrfAlg::HmacSha1 => id::PRF_HMAC_SHA1,
            PrfAlg::HmacSha256 => id::PRF_HMAC_SHA2_256,
            PrfAlg::HmacSha384 => id::PRF_HMAC_SHA2_384,
            PrfAlg::HmacSha512 => id::PRF_HMAC_SHA2_512,
        }
    }

    /// From the transform ID.
    pub fn from_transform_id(v: u16) -> Option<PrfAlg> {
        [PrfAlg::HmacSha1, PrfAlg::HmacSha256, PrfAlg::HmacSha384, PrfAlg::HmacSha512]
            .into_iter()
            .find(|p| p.transform_id() == v)
    }

    /// Output length in bytes, which is also the preferred key length of
    /// SK_d, SK_pi and SK_pr (§2.14, RFC 4868 §2.1.2).
    pub fn output_len(self) -> usize {
        match self {
            PrfAlg::HmacSha1 => 20,
            PrfAlg::HmacSha256 => 32,
            PrfAlg::HmacSha384 => 48,
            PrfAlg::HmacSha512 => 64,
        }
    }

    /// prf(key, parts...) = HMAC(key, concatenation of parts).
    pub fn prf(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        match self {
            PrfAlg::HmacSha1 => hmac::<Hmac<Sha1>>(key, parts),
            PrfAlg::HmacSha256 => hmac::<Hmac<Sha256>>(key, parts),
            PrfAlg::HmacSha384 => hmac::<Hmac<Sha384>>(key, parts),
            PrfAlg::HmacSha512 => hmac::<Hmac<Sha512>>(key, parts),
        }
    }
}

/// An integrity algorithm of the Encrypted payload (transform type 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegAlg {
    /// AUTH_HMAC_SHA1_96 (2, RFC 2404).
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (12, RFC 4868).
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (13, RFC 4868).
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (14, RFC 4868).
    HmacSha512_256,
}

impl IntegAlg {
    /// Transform ID.
    pub fn transform_id(self) -> u16 {
        match self {
            IntegAlg::HmacSha1_96 => id::AUTH_HMAC_SHA1_96,
            IntegAlg::HmacSha256_128 => id::AUTH_HMAC_SHA2_256_128,
            IntegAlg::HmacSha384_192 => id::AUTH_HMAC_SHA2_384_192,
            IntegAlg::HmacSha512_256 => id::AUTH_HMAC_SHA2_512_256,
        }
    }

    /// From the transform ID.
    pub fn from_transform_id(v: u16) -> Option<IntegAlg> {
        [IntegAlg::HmacSha1_96, IntegAlg::HmacSha256_128, IntegAlg::HmacSha384_192, IntegAlg::HmacSha512_256]
            .into_iter()
            .find(|a| a.transform_id() == v)
    }

    /// The HMAC underneath.
    fn hmac(self) -> PrfAlg {
        match self {
            IntegAlg::HmacSha1_96 => PrfAlg::HmacSha1,
            IntegAlg::HmacSha256_128 => PrfAlg::HmacSha256,
            IntegAlg::HmacSha384_192 => PrfAlg::HmacSha384,
            IntegAlg::HmacSha512_256 => PrfAlg::HmacSha512,
        }
    }

    /// Key length: the hash's output (RFC 2404 §3, RFC 4868 §2.1.1).
    pub fn key_len(self) -> usize {
        self.hmac().output_len()
    }

    /// ICV length: the truncated output (RFC 2404 §2, RFC 4868 §2.1.1).
    pub fn icv_len(self) -> usize {
        match self {
            IntegAlg::HmacSha1_96 => 12,
            IntegAlg::HmacSha256_128 => 16,
            IntegAlg::HmacSha384_192 => 24,
            IntegAlg::HmacSha512_256 => 32,
        }
    }

    /// The truncated MAC over the concatenation of `parts`.
    pub fn mac(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        let mut m = self.hmac().prf(key, parts);
        m.truncate(self.icv_len());
        m
    }
}

/// An encryption algorithm of the Encrypted payload (transform type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    /// ENCR_AES_CBC with a 128-bit key (RFC 3602).
    AesCbc128,
    /// ENCR_AES_CBC with a 256-bit key (RFC 3602).
    AesCbc256,
    /// ENCR_AES_GCM_16 with a 128-bit key (RFC 5282).
    AesGcm16_128,
    /// ENCR_AES_GCM_16 with a 256-bit key (RFC 5282).
    AesGcm16_256,
}

impl EncrAlg {
    /// Transform ID and Key Length attribute (bits).
    pub fn transform(self) -> (u16, u16) {
        match self {
            EncrAlg::AesCbc128 => (id::ENCR_AES_CBC, 128),
            EncrAlg::AesCbc256 => (id::ENCR_AES_CBC, 256),
            EncrAlg::AesGcm16_128 => (id::ENCR_AES_GCM_16, 128),
            EncrAlg::AesGcm16_256 => (id::ENCR_AES_GCM_16, 256),
        }
    }

    /// From the transform ID and Key Length attribute (which both ciphers
    /// require, RFC 3602 §5.3 and RFC 5282 §7.1).
    pub fn from_transform(id: u16, key_bits: Option<u16>) -> Option<EncrAlg> {
        [EncrAlg::AesCbc128, EncrAlg::AesCbc256, EncrAlg::AesGcm16_128, EncrAlg::AesGcm16_256]
            .into_iter()
            .find(|e| Some(e.transform()) == key_bits.map(|k| (id, k)))
    }

    /// True for AES-GCM, which carries its own integrity.
    pub fn is_aead(self) -> bool {
        matches!(self, EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256)
    }

    /// AES key length in bytes.
    pub fn aes_key_len(self) -> usize {
        usize::from(self.transform().1 / 8)
    }

    /// Keying material taken for SK_e: the AES key, and for GCM the 4-byte
    /// salt after it (RFC 5282 §7.1).
    pub fn key_len(self) -> usize {
        self.aes_key_len() + if self.is_aead() { GCM_SALT_LEN } else { 0 }
    }

    /// IV bytes in each Encrypted payload: the AES block for CBC
    /// (RFC 3602 §3), 8 for GCM (RFC 5282 §3.1).
    pub fn iv_len(self) -> usize {
        if self.is_aead() {
            8
        } else {
            16
        }
    }

    /// What payloads, padding and pad length are padded to: the AES block
    /// for CBC; one byte for GCM, a counter mode that needs no alignment
    /// (a receiver accepts any pad length that aligns, RFC 7296 §3.14).
    pub fn block_len(self) -> usize {
        if self.is_aead() {
            1
        } else {
            16
        }
    }
}

/// Bytes of GCM salt after the key (RFC 5282 §7.1).
pub const GCM_SALT_LEN: usize = 4;
/// Bytes of the GCM-16 ICV (RFC 5282 §3).
pub const GCM_ICV_LEN: usize = 16;

/// The protection of the Encrypted payload: AES-CBC with an HMAC, or
/// AES-GCM alone (RFC 5282 §8: no integrity transform with a combined
/// mode). Built only through [`SkSuite::new`], so the two cannot be
/// mismatched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SkSuite {
    encr: EncrAlg,
    integ: Option<IntegAlg>,
}

impl SkSuite {
    /// The suite of `encr` and `integ`, if they go together: an AEAD
    /// cipher without an integrity algorithm, a CBC cipher with one.
    pub fn new(encr: EncrAlg, integ: Option<IntegAlg>) -> Option<SkSuite> {
        (encr.is_aead() == integ.is_none()).then_some(SkSuite { encr, integ })
    }

    /// The cipher.
    pub fn encr(self) -> EncrAlg {
        self.encr
    }

    /// The integrity algorithm (none for GCM).
    pub fn integ(self) -> Option<IntegAlg> {
        self.integ
    }

    /// SK_a length (0 for GCM).
    pub fn integ_key_len(self) -> usize {
        self.integ.map_or(0, IntegAlg::key_len)
    }

    /// ICV length at the end of the Encrypted payload.
    pub fn icv_len(self) -> usize {
        self.integ.map_or(GCM_ICV_LEN, IntegAlg::icv_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_rfcs() {
        let icv: Vec<_> = [
            IntegAlg::HmacSha1_96,
            IntegAlg::HmacSha256_128,
            IntegAlg::HmacSha384_192,
            IntegAlg::HmacSha512_256,
        ]
        .iter()
        .map(|a| (a.key_len(), a.icv_len()))
        .collect();
        assert_eq!(icv, vec![(20, 12), (32, 16), (48, 24), (64, 32)]);
        assert_eq!(EncrAlg::from_transform(20, Some(256)), Some(EncrAlg::AesGcm16_256));
        assert_eq!(EncrAlg::from_transform(12, None), None);
        assert_eq!(EncrAlg::AesGcm16_128.key_len(), 20);
        assert!(SkSuite::new(EncrAlg::AesGcm16_128, Some(IntegAlg::HmacSha1_96)).is_none());
        assert!(SkSuite::new(EncrAlg::AesCbc128, None).is_none());
        assert_eq!(PrfAlg::from_transform_id(7), Some(PrfAlg::HmacSha512));
        // RFC 4231 test case 2, HMAC-SHA-384 and -512.
        let t = PrfAlg::HmacSha384.prf(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(&*t),
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"
        );
        let t = IntegAlg::HmacSha512_256.mac(b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(hex::encode(&*t), "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554");
    }
}
