//! IKEv1 cryptography: the negotiated hash and its HMAC as PRF, phase-1
//! AES-CBC with RFC 2409 Appendix B IV chaining, SKEYID derivation for
//! pre-shared keys (RFC 2409 §5), HASH_I/HASH_R, the phase-2 hashes and
//! KEYMAT expansion (§5.5), and Diffie-Hellman ([`dh`]).
//!
//! Secrets are held in [`Zeroizing`] buffers and wiped when dropped.

pub mod dh;
pub mod keys;

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Hash algorithm (phase-1 attribute 2, RFC 2409 App. A); the PRF is its
/// HMAC (RFC 2409 §4: no PRF attribute negotiated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-1 (value 2).
    Sha1,
    /// SHA2-256 (value 4, RFC 4868 §... as used by IKEv1 peers).
    Sha256,
}

impl HashAlg {
    /// Phase-1 attribute value.
    pub fn value(self) -> u16 {
        match self {
            HashAlg::Sha1 => 2,
            HashAlg::Sha256 => 4,
        }
    }

    /// From the attribute value; MD5 (1) and others are refused (RFC 8221).
    pub fn from_value(v: u64) -> Option<HashAlg> {
        match v {
            2 => Some(HashAlg::Sha1),
            4 => Some(HashAlg::Sha256),
            _ => None,
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
        }
    }

    /// Hash of the concatenation of `parts`.
    pub fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => {
                let mut h = Sha1::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().to_vec()
            }
            HashAlg::Sha256 => {
                let mut h = Sha256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().to_vec()
            }
        }
    }

    /// prf(key, parts...) = HMAC(key, concatenation of parts).
    pub fn prf(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        // HMAC takes keys of any length: new_from_slice cannot fail.
        match self {
            HashAlg::Sha1 => {
                let Ok(mut m) = Hmac::<Sha1>::new_from_slice(key) else {
                    return Zeroizing::new(Vec::new());
                };
                for p in parts {
                    m.update(p);
                }
                Zeroizing::new(m.finalize().into_bytes().to_vec())
            }
            HashAlg::Sha256 => {
                let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
                    return Zeroizing::new(Vec::new());
                };
                for p in parts {
                    m.update(p);
                }
                Zeroizing::new(m.finalize().into_bytes().to_vec())
            }
        }
    }
}

/// Phase-1 cipher: AES-CBC (attribute 1 value 7, RFC 3602 §5.3) with a
/// key length attribute of 128 or 256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionAlg {
    /// AES-128-CBC.
    Aes128Cbc,
    /// AES-256-CBC.
    Aes256Cbc,
}

/// AES block length; also the IV length (RFC 3602).
pub const BLOCK: usize = 16;

/// Why a decryption failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ciphertext of {0} bytes is not a positive multiple of the block")]
pub struct BadCiphertext(pub usize);

impl EncryptionAlg {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            EncryptionAlg::Aes128Cbc => 16,
            EncryptionAlg::Aes256Cbc => 32,
        }
    }

    /// Key length attribute value in bits.
    pub fn key_bits(self) -> u16 {
        (self.key_len() * 8) as u16
    }

    /// From the key length attribute (bits).
    pub fn from_key_bits(bits: u64) -> Option<EncryptionAlg> {
        match bits {
            128 => Some(EncryptionAlg::Aes128Cbc),
            256 => Some(EncryptionAlg::Aes256Cbc),
            _ => None,
        }
    }

    /// Encrypts `plain` (padded here with zeros to the block, RFC 2409
    /// §5.3) with `iv`; returns the ciphertext. The caller chains the IV.
    pub fn encrypt(self, key: &[u8], iv: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        let pad = (BLOCK - buf.len() % BLOCK) % BLOCK;
        buf.resize(buf.len() + pad, 0);
        let n = buf.len();
        let ok = match self {
            EncryptionAlg::Aes128Cbc => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
                .ok()
                .and_then(|c| c.encrypt_padded_mut::<NoPadding>(&mut buf, n).ok().map(|_| ())),
            EncryptionAlg::Aes256Cbc => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
                .ok()
                .and_then(|c| c.encrypt_padded_mut::<NoPadding>(&mut buf, n).ok().map(|_| ())),
        };
        if ok.is_none() {
            buf.clear();
        }
        buf
    }

    /// Decrypts; the result keeps the sender's padding.
    pub fn decrypt(self, key: &[u8], iv: &[u8], ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, BadCiphertext> {
        if ct.is_empty() || !ct.len().is_multiple_of(BLOCK) {
            return Err(BadCiphertext(ct.len()));
        }
        let mut buf = Zeroizing::new(ct.to_vec());
        let ok = match self {
            EncryptionAlg::Aes128Cbc => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
                .ok()
                .and_then(|c| c.decrypt_padded_mut::<NoPadding>(&mut buf).ok().map(|_| ())),
            EncryptionAlg::Aes256Cbc => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
                .ok()
                .and_then(|c| c.decrypt_padded_mut::<NoPadding>(&mut buf).ok().map(|_| ())),
        };
        ok.map(|_| buf).ok_or(BadCiphertext(ct.len()))
    }
}

/// Compares two MACs without an early exit.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    // `subtle` compares in time independent of where the bytes differ
    // (lengths are public: a hash's length is its algorithm's).
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_rfc2202_and_rfc4231() {
        // RFC 2202 test case 2, RFC 4231 test case 2.
        let t = HashAlg::Sha1.prf(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(&*t), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        let t = HashAlg::Sha256.prf(b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(hex::encode(&*t), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn aes_cbc_rfc3602_case2_and_roundtrip() {
        // RFC 3602 §4 case #2.
        let key = hex::decode("c286696d887c9aa0611bbb3e2025a45a").unwrap();
        let iv = hex::decode("562e17996d093d28ddb3ba695a2e6f58").unwrap();
        let pt = hex::decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f").unwrap();
        let ct = EncryptionAlg::Aes128Cbc.encrypt(&key, &iv, &pt);
        assert_eq!(hex::encode(&ct), "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1");
        assert_eq!(&*EncryptionAlg::Aes128Cbc.decrypt(&key, &iv, &ct).unwrap(), &pt[..]);
        assert!(EncryptionAlg::Aes128Cbc.decrypt(&key, &iv, &ct[..31]).is_err());
        assert!(EncryptionAlg::Aes128Cbc.decrypt(&key, &iv, &[]).is_err());
    }
}
