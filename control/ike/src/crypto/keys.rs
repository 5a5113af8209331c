//! Key derivation of RFC 2409 for pre-shared-key authentication.
//!
//! ```text
//! SKEYID   = prf(pre-shared-key, Ni_b | Nr_b)                       §5
//! SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
//! SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
//! SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
//! Ka       = K1 | K2 ..., K1 = prf(SKEYID_e, 0), Kn = prf(SKEYID_e, Kn-1)
//!            when SKEYID_e is shorter than the cipher key         App. B
//! HASH_I   = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)
//! HASH_R   = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)
//! IV       = hash(g^xi | g^xr) (phase 1), hash(last phase-1 block | M-ID)
//!            for each Quick Mode / Informational exchange        App. B
//! KEYMAT   = K1 | K2 ..., K1 = prf(SKEYID_d, [g(qm)^xy |] proto | SPI | Ni_b | Nr_b)
//!            Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] proto | SPI | Ni_b | Nr_b)  §5.5
//! ```

use zeroize::Zeroizing;

use super::{EncryptionAlg, HashAlg, BLOCK};

/// The keys of an ISAKMP SA.
pub struct Phase1Keys {
    /// Negotiated hash (and HMAC PRF).
    pub hash: HashAlg,
    /// Negotiated cipher.
    pub cipher: EncryptionAlg,
    pub(crate) skeyid: Zeroizing<Vec<u8>>,
    /// SKEYID_d: keys phase 2.
    pub skeyid_d: Zeroizing<Vec<u8>>,
    /// SKEYID_a: authenticates phase-2 and informational messages.
    pub skeyid_a: Zeroizing<Vec<u8>>,
    /// The encryption key derived from SKEYID_e.
    pub enc_key: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for Phase1Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Phase1Keys")
            .field("hash", &self.hash)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl Phase1Keys {
    /// Derives the SKEYID chain for pre-shared-key authentication.
    #[allow(clippy::too_many_arguments)]
    pub fn derive_psk(
        hash: HashAlg,
        cipher: EncryptionAlg,
        psk: &[u8],
        ni_b: &[u8],
        nr_b: &[u8],
        gxy: &[u8],
        cky_i: &[u8; 8],
        cky_r: &[u8; 8],
    ) -> Phase1Keys {
        let skeyid = hash.prf(psk, &[ni_b, nr_b]);
        let skeyid_d = hash.prf(&skeyid, &[gxy, cky_i, cky_r, &[0]]);
        let skeyid_a = hash.prf(&skeyid, &[&skeyid_d, gxy, cky_i, cky_r, &[1]]);
        let skeyid_e = hash.prf(&skeyid, &[&skeyid_a, gxy, cky_i, cky_r, &[2]]);
        let mut enc_key = Zeroizing::new(Vec::new());
        if skeyid_e.len() >= cipher.key_len() {
            enc_key.extend_from_slice(&skeyid_e[..cipher.key_len()]);
        } else {
            // RFC 2409 Appendix B: expand when SKEYID_e is too short.
            let mut k = hash.prf(&skeyid_e, &[&[0]]);
            enc_key.extend_from_slice(&k);
            while enc_key.len() < cipher.key_len() {
                k = hash.prf(&skeyid_e, &[&k]);
                enc_key.extend_from_slice(&k);
            }
            enc_key.truncate(cipher.key_len());
        }
        Phase1Keys { hash, cipher, skeyid, skeyid_d, skeyid_a, enc_key }
    }

    /// HASH_I (RFC 2409 §5).
    pub fn hash_i(
        &self,
        gxi: &[u8],
        gxr: &[u8],
        cky_i: &[u8; 8],
        cky_r: &[u8; 8],
        sai_b: &[u8],
        idii_b: &[u8],
    ) -> Zeroizing<Vec<u8>> {
        self.hash.prf(&self.skeyid, &[gxi, gxr, cky_i, cky_r, sai_b, idii_b])
    }

    /// HASH_R (RFC 2409 §5).
    pub fn hash_r(
        &self,
        gxi: &[u8],
        gxr: &[u8],
        cky_i: &[u8; 8],
        cky_r: &[u8; 8],
        sai_b: &[u8],
        idir_b: &[u8],
    ) -> Zeroizing<Vec<u8>> {
        self.hash.prf(&self.skeyid, &[gxr, gxi, cky_r, cky_i, sai_b, idir_b])
    }

    /// The first phase-1 IV: hash(g^xi | g^xr) cut to the block.
    pub fn initial_iv(&self, gxi: &[u8], gxr: &[u8]) -> Vec<u8> {
        let mut iv = self.hash.hash(&[gxi, gxr]);
        iv.truncate(BLOCK);
        iv
    }

    /// The IV of a phase-2 or informational exchange.
    pub fn exchange_iv(&self, last_phase1_block: &[u8], message_id: u32) -> Vec<u8> {
        let mut iv = self.hash.hash(&[last_phase1_block, &message_id.to_be_bytes()]);
        iv.truncate(BLOCK);
        iv
    }

    /// Quick Mode HASH(1) = prf(SKEYID_a, M-ID | payloads after HASH).
    pub fn qm_hash1(&self, message_id: u32, rest: &[u8]) -> Zeroizing<Vec<u8>> {
        self.hash.prf(&self.skeyid_a, &[&message_id.to_be_bytes(), rest])
    }

    /// Quick Mode HASH(2) = prf(SKEYID_a, M-ID | Ni_b | payloads after HASH).
    pub fn qm_hash2(&self, message_id: u32, ni_b: &[u8], rest: &[u8]) -> Zeroizing<Vec<u8>> {
        self.hash.prf(&self.skeyid_a, &[&message_id.to_be_bytes(), ni_b, rest])
    }

    /// Quick Mode HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
    pub fn qm_hash3(&self, message_id: u32, ni_b: &[u8], nr_b: &[u8]) -> Zeroizing<Vec<u8>> {
        self.hash.prf(&self.skeyid_a, &[&[0], &message_id.to_be_bytes(), ni_b, nr_b])
    }

    /// KEYMAT for one direction (RFC 2409 §5.5): `spi` is the SPI the
    /// receiving side chose, `len` the bytes needed.
    pub fn keymat(
        &self,
        gqm: Option<&[u8]>,
        protocol: u8,
        spi: u32,
        ni_b: &[u8],
        nr_b: &[u8],
        len: usize,
    ) -> Zeroizing<Vec<u8>> {
        let g = gqm.unwrap_or(&[]);
        let spi = spi.to_be_bytes();
        let mut out = Zeroizing::new(Vec::new());
        let mut k = self.hash.prf(&self.skeyid_d, &[g, &[protocol], &spi, ni_b, nr_b]);
        out.extend_from_slice(&k);
        while out.len() < len {
            k = self.hash.prf(&self.skeyid_d, &[&k, g, &[protocol], &spi, ni_b, nr_b]);
            out.extend_from_slice(&k);
        }
        out.truncate(len);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed independently with python `cryptography`
    /// (tests/kat_keys.py prints them).
    #[test]
    fn skeyid_chain_known_answer() {
        let ci = [0x11; 8];
        let cr = [0x22; 8];
        let ni = [0xa1; 16];
        let nr = [0xb2; 16];
        let gxy = [0x5c; 128];
        let k = Phase1Keys::derive_psk(
            HashAlg::Sha1,
            EncryptionAlg::Aes256Cbc,
            b"secret",
            &ni,
            &nr,
            &gxy,
            &ci,
            &cr,
        );
        let want = include_str!("../../tests/kat_keys.txt");
        let mut lines = want.lines().map(|l| l.split_once('=').map(|(_, v)| v.trim()).unwrap_or(""));
        assert_eq!(hex::encode(&*k.skeyid), lines.next().unwrap());
        assert_eq!(hex::encode(&*k.skeyid_d), lines.next().unwrap());
        assert_eq!(hex::encode(&*k.skeyid_a), lines.next().unwrap());
        assert_eq!(hex::encode(&*k.enc_key), lines.next().unwrap());
        let gxi = [0x01; 128];
        let gxr = [0x02; 128];
        assert_eq!(hex::encode(&*k.hash_i(&gxi, &gxr, &ci, &cr, b"SAi_b", b"IDii_b")), lines.next().unwrap());
        assert_eq!(hex::encode(k.initial_iv(&gxi, &gxr)), lines.next().unwrap());
        assert_eq!(hex::encode(k.exchange_iv(&[0x33; 16], 0x01020304)), lines.next().unwrap());
        let km = k.keymat(Some(&[0x44; 32]), 3, 0xc1000001, &ni, &nr, 36);
        assert_eq!(hex::encode(&*km), lines.next().unwrap());
        assert_eq!(hex::encode(&*k.qm_hash3(7, &ni, &nr)), lines.next().unwrap());
    }
}
