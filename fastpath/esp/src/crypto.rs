//! Per-SA cipher contexts: the key schedule is built once (off the packet
//! path), then each packet is sealed or opened in place without allocation.
//!
//! * AES-GCM (RFC 4106) uses ring's `LessSafeKey`; the nonce is the 4-byte
//!   salt followed by the 8-byte explicit IV (RFC 4106 §4).
//! * AES-CBC (RFC 3602) uses RustCrypto `aes` + `cbc`; HMAC-SHA1-96
//!   (RFC 2404) and HMAC-SHA-256-128 (RFC 4868) use RustCrypto `hmac` over
//!   `sha1`/`sha2` (SHA-NI; ring's SHA-1 is 3.6x slower here, FACTS.md).
//!   The keyed HMAC state (inner and outer pads already absorbed) is built
//!   once per SA and cloned per packet, never re-keyed.
//! * Tags are compared in constant time by the libraries (ring's AEAD open,
//!   `hmac`'s `verify_truncated_left`).
//!
//! Zeroization: AES key schedules of the CBC contexts zeroize themselves on
//! drop (`aes` built with its `zeroize` feature) and so does the GCM salt.
//! Two pieces live inside libraries that expose no way to wipe them and are
//! freed without it: ring's AES-GCM key schedule and `hmac`'s keyed SHA
//! states (they are key-equivalent). The raw keys are only borrowed here.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit};
use aes::{Aes128Dec, Aes128Enc, Aes256Dec, Aes256Enc};
use hmac::{Hmac, Mac};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use sha1::Sha1;
use sha2::Sha256;
use zeroize::Zeroize;

use esprit_suite::{Suite, ESP_HEADER_LEN};

/// Opening: the ICV did not verify (for GCM, the AEAD open failed), the
/// packet is not authentic and its bytes must not be used. Sealing: the
/// cipher refused its input (lengths this crate never produces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CryptoFailure;

/// A key of the wrong length for the suite (the only way building a
/// context can fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadKeyLen;

/// GCM IV length (RFC 4106 §3.1) and ICV length (RFC 4106 §3.3, 16 only).
const GCM_IV_LEN: usize = 8;
const GCM_ICV_LEN: usize = 16;
const CBC_IV_LEN: usize = 16;

/// AES-GCM context: ring key schedule plus the salt.
pub(crate) struct Gcm {
    key: LessSafeKey,
    salt: [u8; 4],
}

impl Gcm {
    /// `material` is the AES key followed by the 4-byte salt, as IKE
    /// derives it (RFC 4106 §8.1).
    fn new(suite: Suite, material: &[u8]) -> Result<Gcm, BadKeyLen> {
        if material.len() != suite.encr_key_len() {
            return Err(BadKeyLen);
        }
        let (key, salt) = material.split_at(suite.aes_key_len());
        let alg = match suite {
            Suite::Aes128Gcm16 => &aead::AES_128_GCM,
            Suite::Aes256Gcm16 => &aead::AES_256_GCM,
            _ => return Err(BadKeyLen),
        };
        let key = UnboundKey::new(alg, key).map_err(|_| BadKeyLen)?;
        let mut s = [0u8; 4];
        s.copy_from_slice(salt);
        Ok(Gcm { key: LessSafeKey::new(key), salt: s })
    }

    /// RFC 4106 §4: nonce = salt || explicit IV.
    #[inline]
    fn nonce(&self, iv: &[u8; GCM_IV_LEN]) -> Nonce {
        let mut n = [0u8; aead::NONCE_LEN];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(iv);
        Nonce::assume_unique_for_key(n)
    }

    /// RFC 4106 §5: AAD = SPI || seq (8 bytes), or SPI || seq_hi || seq_lo
    /// (12 bytes) with ESN. Returns the buffer and its used length.
    #[inline]
    fn aad(esp_header: &[u8], seq_hi: Option<u32>) -> ([u8; 12], usize) {
        let mut aad = [0u8; 12];
        aad[..4].copy_from_slice(&esp_header[..4]);
        match seq_hi {
            Some(hi) => {
                aad[4..8].copy_from_slice(&hi.to_be_bytes());
                aad[8..12].copy_from_slice(&esp_header[4..8]);
                (aad, 12)
            }
            None => {
                aad[4..8].copy_from_slice(&esp_header[4..8]);
                (aad, 8)
            }
        }
    }

    /// Seals `esp` = header | IV | plaintext+trailer | ICV in place. The
    /// explicit IV is the 64-bit sequence number: unique per key, which is
    /// all RFC 4106 §3.1 asks (it need not be unpredictable).
    fn seal(&self, esp: &mut [u8], seq: u64, seq_hi: Option<u32>) -> Result<(), CryptoFailure> {
        let iv = seq.to_be_bytes();
        let (head, rest) = esp.split_at_mut(ESP_HEADER_LEN + GCM_IV_LEN);
        head[ESP_HEADER_LEN..].copy_from_slice(&iv);
        let (aad, aad_len) = Gcm::aad(head, seq_hi);
        let split = rest.len().checked_sub(GCM_ICV_LEN).ok_or(CryptoFailure)?;
        let (data, icv) = rest.split_at_mut(split);
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(&iv), Aad::from(&aad[..aad_len]), data)
            .map_err(|_| CryptoFailure)?;
        icv.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens `esp` in place; on success the plaintext is at
    /// `esp[16..len - 16]`. On failure the ciphertext may have been
    /// overwritten (ring leaves it unspecified).
    fn open(&self, esp: &mut [u8], seq_hi: Option<u32>) -> Result<(), CryptoFailure> {
        let (head, rest) = esp.split_at_mut(ESP_HEADER_LEN + GCM_IV_LEN);
        let mut iv = [0u8; GCM_IV_LEN];
        iv.copy_from_slice(&head[ESP_HEADER_LEN..]);
        let (aad, aad_len) = Gcm::aad(head, seq_hi);
        self.key
            .open_in_place(self.nonce(&iv), Aad::from(&aad[..aad_len]), rest)
            .map(|_| ())
            .map_err(|_| CryptoFailure)
    }
}

impl Drop for Gcm {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

/// AES encryption key schedule (CBC encrypt, IV derivation).
// Lives boxed inside `CbcSealer`; the variant sizes differ by 256 bytes.
#[allow(clippy::large_enum_variant)]
enum AesEnc {
    Aes128(Aes128Enc),
    Aes256(Aes256Enc),
}

impl AesEnc {
    fn new(key: &[u8]) -> Result<AesEnc, BadKeyLen> {
        match key.len() {
            16 => Ok(AesEnc::Aes128(Aes128Enc::new_from_slice(key).map_err(|_| BadKeyLen)?)),
            32 => Ok(AesEnc::Aes256(Aes256Enc::new_from_slice(key).map_err(|_| BadKeyLen)?)),
            _ => Err(BadKeyLen),
        }
    }

    /// CBC-encrypts `data` (a whole number of blocks) in place.
    fn cbc_encrypt(&self, iv: &[u8; CBC_IV_LEN], data: &mut [u8]) -> Result<(), CryptoFailure> {
        let len = data.len();
        let iv = GenericArray::from_slice(iv);
        // `&Aes128Enc` is itself a block cipher: no key-schedule copy.
        let r = match self {
            AesEnc::Aes128(k) => cbc::Encryptor::<&Aes128Enc>::inner_iv_init(k, iv)
                .encrypt_padded_mut::<NoPadding>(data, len)
                .map(|_| ()),
            AesEnc::Aes256(k) => cbc::Encryptor::<&Aes256Enc>::inner_iv_init(k, iv)
                .encrypt_padded_mut::<NoPadding>(data, len)
                .map(|_| ()),
        };
        r.map_err(|_| CryptoFailure)
    }
}

/// AES decryption key schedule (CBC decrypt).
// Lives boxed inside `CbcOpener`; the variant sizes differ by 256 bytes.
#[allow(clippy::large_enum_variant)]
enum AesDec {
    Aes128(Aes128Dec),
    Aes256(Aes256Dec),
}

impl AesDec {
    fn new(key: &[u8]) -> Result<AesDec, BadKeyLen> {
        match key.len() {
            16 => Ok(AesDec::Aes128(Aes128Dec::new_from_slice(key).map_err(|_| BadKeyLen)?)),
            32 => Ok(AesDec::Aes256(Aes256Dec::new_from_slice(key).map_err(|_| BadKeyLen)?)),
            _ => Err(BadKeyLen),
        }
    }

    /// CBC-decrypts `data` (a whole number of blocks) in place.
    fn cbc_decrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<(), CryptoFailure> {
        if iv.len() != CBC_IV_LEN {
            return Err(CryptoFailure);
        }
        let iv = GenericArray::from_slice(iv);
        let r = match self {
            AesDec::Aes128(k) => cbc::Decryptor::<&Aes128Dec>::inner_iv_init(k, iv)
                .decrypt_padded_mut::<NoPadding>(data)
                .map(|_| ()),
            AesDec::Aes256(k) => cbc::Decryptor::<&Aes256Dec>::inner_iv_init(k, iv)
                .decrypt_padded_mut::<NoPadding>(data)
                .map(|_| ()),
        };
        r.map_err(|_| CryptoFailure)
    }
}

/// Keyed HMAC state, truncated on output to the suite's ICV length.
#[derive(Clone)]
enum Integ {
    /// HMAC-SHA1-96, RFC 2404.
    Sha1(Hmac<Sha1>),
    /// HMAC-SHA-256-128, RFC 4868.
    Sha256(Hmac<Sha256>),
}

impl Integ {
    fn new(suite: Suite, key: &[u8]) -> Result<Integ, BadKeyLen> {
        // RFC 2404 §3 / RFC 4868 §2.1.1: the key is exactly the hash output
        // length; IKE always derives that much.
        if key.len() != suite.integ_key_len() {
            return Err(BadKeyLen);
        }
        match suite {
            Suite::Aes128CbcSha1 | Suite::Aes256CbcSha1 => {
                Ok(Integ::Sha1(<Hmac<Sha1> as Mac>::new_from_slice(key).map_err(|_| BadKeyLen)?))
            }
            Suite::Aes128CbcSha256 | Suite::Aes256CbcSha256 => {
                Ok(Integ::Sha256(<Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| BadKeyLen)?))
            }
            _ => Err(BadKeyLen),
        }
    }

    /// ICV over `data` then, with ESN, the 4 high-order sequence bytes
    /// (RFC 4303 §2.2.1: included in the ICV, never transmitted), left-
    /// truncated into `icv` (RFC 2404 §2, RFC 4868 §2.1.1).
    fn sign(&self, data: &[u8], seq_hi: Option<u32>, icv: &mut [u8]) {
        match self {
            Integ::Sha1(m) => {
                let mut m = m.clone();
                m.update(data);
                if let Some(hi) = seq_hi {
                    m.update(&hi.to_be_bytes());
                }
                let out = m.finalize().into_bytes();
                let n = icv.len().min(out.len());
                icv[..n].copy_from_slice(&out[..n]);
            }
            Integ::Sha256(m) => {
                let mut m = m.clone();
                m.update(data);
                if let Some(hi) = seq_hi {
                    m.update(&hi.to_be_bytes());
                }
                let out = m.finalize().into_bytes();
                let n = icv.len().min(out.len());
                icv[..n].copy_from_slice(&out[..n]);
            }
        }
    }

    /// Constant-time check of a truncated ICV.
    fn verify(&self, data: &[u8], seq_hi: Option<u32>, icv: &[u8]) -> Result<(), CryptoFailure> {
        let r = match self {
            Integ::Sha1(m) => {
                let mut m = m.clone();
                m.update(data);
                if let Some(hi) = seq_hi {
                    m.update(&hi.to_be_bytes());
                }
                m.verify_truncated_left(icv)
            }
            Integ::Sha256(m) => {
                let mut m = m.clone();
                m.update(data);
                if let Some(hi) = seq_hi {
                    m.update(&hi.to_be_bytes());
                }
                m.verify_truncated_left(icv)
            }
        };
        r.map_err(|_| CryptoFailure)
    }
}

/// Outbound AES-CBC + HMAC context.
pub(crate) struct CbcSealer {
    aes: AesEnc,
    /// RFC 3602 §2.1 wants an unpredictable IV; a worker may not make a
    /// system call per packet, so IV = AES-128_Kiv(0^64 || seq) with a
    /// per-SA random key Kiv the control plane supplies. AES is a
    /// permutation, so distinct sequence numbers give distinct IVs, and
    /// without Kiv they cannot be predicted (NIST SP 800-38A App. C
    /// describes the same construction with the data key).
    iv_key: Aes128Enc,
    integ: Integ,
    icv_len: usize,
}

impl CbcSealer {
    fn iv(&self, seq: u64) -> [u8; CBC_IV_LEN] {
        let mut block = GenericArray::from([0u8; CBC_IV_LEN]);
        block[8..].copy_from_slice(&seq.to_be_bytes());
        self.iv_key.encrypt_block(&mut block);
        block.into()
    }

    fn seal(&self, esp: &mut [u8], seq: u64, seq_hi: Option<u32>) -> Result<(), CryptoFailure> {
        let iv = self.iv(seq);
        let len = esp.len();
        let icv_at = len.checked_sub(self.icv_len).ok_or(CryptoFailure)?;
        let data_at = ESP_HEADER_LEN + CBC_IV_LEN;
        if icv_at < data_at {
            return Err(CryptoFailure);
        }
        esp[ESP_HEADER_LEN..data_at].copy_from_slice(&iv);
        self.aes.cbc_encrypt(&iv, &mut esp[data_at..icv_at])?;
        // RFC 4303 §3.3.4: encrypt, then compute the ICV over the ESP
        // header, IV and ciphertext.
        let (authed, icv) = esp.split_at_mut(icv_at);
        self.integ.sign(authed, seq_hi, icv);
        Ok(())
    }
}

/// Inbound AES-CBC + HMAC context.
pub(crate) struct CbcOpener {
    aes: AesDec,
    integ: Integ,
    icv_len: usize,
}

impl CbcOpener {
    /// RFC 4303 §3.4.4.1: the ICV is verified before anything is
    /// decrypted; a forged packet leaves the buffer untouched.
    fn open(&self, esp: &mut [u8], seq_hi: Option<u32>) -> Result<(), CryptoFailure> {
        let icv_at = esp.len().checked_sub(self.icv_len).ok_or(CryptoFailure)?;
        let data_at = ESP_HEADER_LEN + CBC_IV_LEN;
        if icv_at < data_at {
            return Err(CryptoFailure);
        }
        let (authed, icv) = esp.split_at_mut(icv_at);
        self.integ.verify(authed, seq_hi, icv)?;
        let (head, data) = authed.split_at_mut(data_at);
        self.aes.cbc_decrypt(&head[ESP_HEADER_LEN..], data)
    }
}

/// The outbound half of a suite: encrypts and signs.
// GCM (the fast suite) inline on purpose: the SA's hot fields and ring's
// key schedule are contiguous, one less pointer to chase per packet.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Sealer {
    Gcm(Gcm),
    /// Boxed: the `aes` crate keeps both the AES-NI and the bitsliced
    /// fallback key schedules, so a CBC context is ~2 KB; GCM stays inline.
    Cbc(Box<CbcSealer>),
}

impl Sealer {
    pub(crate) fn new(
        suite: Suite,
        encr: &[u8],
        integ: &[u8],
        iv_key: &[u8; 16],
    ) -> Result<Sealer, BadKeyLen> {
        if suite.is_aead() {
            if !integ.is_empty() {
                return Err(BadKeyLen);
            }
            return Ok(Sealer::Gcm(Gcm::new(suite, encr)?));
        }
        if encr.len() != suite.encr_key_len() {
            return Err(BadKeyLen);
        }
        Ok(Sealer::Cbc(Box::new(CbcSealer {
            aes: AesEnc::new(encr)?,
            iv_key: Aes128Enc::new_from_slice(iv_key).map_err(|_| BadKeyLen)?,
            integ: Integ::new(suite, integ)?,
            icv_len: suite.icv_len(),
        })))
    }

    /// Writes the IV, encrypts the payload and writes the ICV of `esp`
    /// (ESP header already written, trailer already appended).
    #[inline]
    pub(crate) fn seal(&self, esp: &mut [u8], seq: u64, seq_hi: Option<u32>) -> Result<(), CryptoFailure> {
        match self {
            Sealer::Gcm(g) => g.seal(esp, seq, seq_hi),
            Sealer::Cbc(c) => c.seal(esp, seq, seq_hi),
        }
    }
}

/// The inbound half of a suite: verifies and decrypts.
// GCM inline on purpose, as in `Sealer`.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Opener {
    Gcm(Gcm),
    /// Boxed for the same reason as [`Sealer::Cbc`].
    Cbc(Box<CbcOpener>),
}

impl Opener {
    pub(crate) fn new(suite: Suite, encr: &[u8], integ: &[u8]) -> Result<Opener, BadKeyLen> {
        if suite.is_aead() {
            if !integ.is_empty() {
                return Err(BadKeyLen);
            }
            return Ok(Opener::Gcm(Gcm::new(suite, encr)?));
        }
        if encr.len() != suite.encr_key_len() {
            return Err(BadKeyLen);
        }
        Ok(Opener::Cbc(Box::new(CbcOpener {
            aes: AesDec::new(encr)?,
            integ: Integ::new(suite, integ)?,
            icv_len: suite.icv_len(),
        })))
    }

    /// Verifies and decrypts `esp` in place; on success the plaintext is
    /// between the IV and the ICV.
    #[inline]
    pub(crate) fn open(&self, esp: &mut [u8], seq_hi: Option<u32>) -> Result<(), CryptoFailure> {
        match self {
            Opener::Gcm(g) => g.open(esp, seq_hi),
            Opener::Cbc(c) => c.open(esp, seq_hi),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 2202 §3 test case 2 and RFC 4231 §4.3 test case 2 ("Jefe"): the
    // keyed-state clone gives the standard HMAC.
    #[test]
    fn hmac_known_answers() {
        let data = b"what do ya want for nothing?";
        let mut key = [0u8; 20];
        key[..4].copy_from_slice(b"Jefe");
        // Our Integ insists on full-length keys; HMAC zero-pads short keys
        // to the block size anyway (RFC 2104 §2), so "Jefe" || 0^16 is the
        // same key.
        let i = Integ::new(Suite::Aes128CbcSha1, &key).unwrap();
        let mut icv = [0u8; 20];
        i.sign(data, None, &mut icv);
        assert_eq!(hex::encode(icv), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        assert!(i.verify(data, None, &icv[..12]).is_ok());
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let i = Integ::new(Suite::Aes128CbcSha256, &key).unwrap();
        let mut icv = [0u8; 32];
        i.sign(data, None, &mut icv);
        assert_eq!(hex::encode(icv), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Cloning the keyed state per packet does not disturb it.
        let mut again = [0u8; 32];
        i.sign(data, None, &mut again);
        assert_eq!(icv, again);
    }

    #[test]
    fn wrong_key_lengths_refused() {
        for s in Suite::ALL {
            let e = vec![7u8; s.encr_key_len()];
            let a = vec![9u8; s.integ_key_len()];
            assert!(Sealer::new(s, &e, &a, &[1; 16]).is_ok());
            assert!(Opener::new(s, &e, &a).is_ok());
            assert!(Sealer::new(s, &e[1..], &a, &[1; 16]).is_err());
            assert!(Opener::new(s, &[e.clone(), vec![0]].concat(), &a).is_err());
            assert!(Opener::new(s, &e, &[a.clone(), vec![0]].concat()).is_err());
        }
    }

    #[test]
    fn cbc_ivs_are_distinct_and_keyed() {
        let Sealer::Cbc(a) = Sealer::new(Suite::Aes128CbcSha1, &[1; 16], &[2; 20], &[3; 16]).unwrap() else {
            panic!("cbc")
        };
        let Sealer::Cbc(b) = Sealer::new(Suite::Aes128CbcSha1, &[1; 16], &[2; 20], &[4; 16]).unwrap() else {
            panic!("cbc")
        };
        let ivs: std::collections::HashSet<[u8; 16]> = (0..1000).map(|s| a.iv(s)).collect();
        assert_eq!(ivs.len(), 1000);
        assert_ne!(a.iv(1), b.iv(1));
    }
}
