//! The IKEv2 key schedule (RFC 7296 §2.13, §2.14, §2.17, §2.18):
//!
//! ```text
//! prf+(K, S)  = T1 | T2 | ...,  T1 = prf(K, S | 0x01),
//!               Tn = prf(K, Tn-1 | S | n), n up to 255               §2.13
//! SKEYSEED    = prf(Ni | Nr, g^ir)                                    §2.14
//! {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
//!             = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
//! rekeyed     SKEYSEED = prf_old(SK_d old, g^ir new | Ni | Nr), then
//!             the same expansion with the new SA's PRF, nonces, SPIs  §2.18
//! KEYMAT      = prf+(SK_d, [g^ir new |] Ni | Nr): initiator-to-
//!             responder encryption and integrity keys first, then the
//!             responder-to-initiator ones                              §2.17
//! ```
//!
//! SK_d, SK_pi and SK_pr take the PRF's preferred key length (its output
//! for HMAC, RFC 4868 §2.1.2); SK_a the integrity key length; SK_e the
//! cipher key, and for AES-GCM the 4-byte salt after it (RFC 5282 §7.1).
//! Every secret is held in [`Zeroizing`] and no `Debug` shows one.

use zeroize::Zeroizing;

use super::alg::{PrfAlg, SkSuite};
use crate::{DirectionKeys, Suite};

/// prf+ yields at most 255 blocks (§2.13).
const PRF_PLUS_MAX_BLOCKS: usize = 255;

/// Why keys could not be derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// More keying material asked of prf+ than its 255 blocks (§2.13).
    #[error("prf+ asked for {wanted} bytes, at most {max} with this PRF")]
    TooLong {
        /// Bytes asked for.
        wanted: usize,
        /// The most prf+ gives with this PRF.
        max: usize,
    },
}

/// prf+(key, seed) cut to `len` bytes (§2.13); `seed` is the
/// concatenation of its parts.
pub fn prf_plus(prf: PrfAlg, key: &[u8], seed: &[&[u8]], len: usize) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let max = PRF_PLUS_MAX_BLOCKS * prf.output_len();
    if len > max {
        return Err(KeyError::TooLong { wanted: len, max });
    }
    let mut out = Zeroizing::new(Vec::with_capacity(len + prf.output_len()));
    let mut t = Zeroizing::new(Vec::new());
    let mut n: u8 = 1;
    while out.len() < len {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
        parts.push(&t);
        parts.extend_from_slice(seed);
        let counter = [n];
        parts.push(&counter);
        let next = prf.prf(key, &parts);
        out.extend_from_slice(&next);
        t = next;
        n = n.wrapping_add(1);
    }
    out.truncate(len);
    Ok(out)
}

/// SKEYSEED of a new IKE SA (§2.14): the key is Ni | Nr whole, as for
/// every HMAC PRF.
pub fn skeyseed(prf: PrfAlg, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = Zeroizing::new([ni, nr].concat());
    prf.prf(&key, &[g_ir])
}

/// The seven keys of an IKE SA.
pub struct IkeSaKeys {
    /// The negotiated PRF.
    pub prf: PrfAlg,
    /// The Encrypted payload's protection.
    pub suite: SkSuite,
    /// SK_d: keys children and the next IKE SA.
    pub sk_d: Zeroizing<Vec<u8>>,
    /// SK_ai: integrity of the initiator's messages (empty for GCM).
    pub sk_ai: Zeroizing<Vec<u8>>,
    /// SK_ar: integrity of the responder's messages (empty for GCM).
    pub sk_ar: Zeroizing<Vec<u8>>,
    /// SK_ei: encryption of the initiator's messages (GCM: key | salt).
    pub sk_ei: Zeroizing<Vec<u8>>,
    /// SK_er: encryption of the responder's messages (GCM: key | salt).
    pub sk_er: Zeroizing<Vec<u8>>,
    /// SK_pi: the initiator's AUTH payload (§2.15).
    pub sk_pi: Zeroizing<Vec<u8>>,
    /// SK_pr: the responder's AUTH payload (§2.15).
    pub sk_pr: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for IkeSaKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IkeSaKeys")
            .field("prf", &self.prf)
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// The keys of one child SA pair (§2.17).
#[derive(Debug, Clone)]
pub struct ChildKeys {
    /// The SA carrying data from the initiator of the exchange to the
    /// responder.
    pub initiator_to_responder: DirectionKeys,
    /// The SA carrying data from the responder to the initiator.
    pub responder_to_initiator: DirectionKeys,
}

impl IkeSaKeys {
    /// The keys of a new IKE SA from IKE_SA_INIT's nonces, shared secret
    /// and SPIs (§2.14).
    pub fn derive(
        prf: PrfAlg,
        suite: SkSuite,
        ni: &[u8],
        nr: &[u8],
        g_ir: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeSaKeys, KeyError> {
        let seed = skeyseed(prf, ni, nr, g_ir);
        IkeSaKeys::expand(prf, suite, &seed, ni, nr, spi_i, spi_r)
    }

    /// The keys of the IKE SA that replaces this one (§2.18): SKEYSEED
    /// from this SA's SK_d and PRF, the rest from the new SA's PRF, suite,
    /// nonces and SPIs.
    #[allow(clippy::too_many_arguments)]
    pub fn derive_rekey(
        &self,
        prf: PrfAlg,
        suite: SkSuite,
        ni: &[u8],
        nr: &[u8],
        g_ir_new: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeSaKeys, KeyError> {
        let seed = self.prf.prf(&self.sk_d, &[g_ir_new, ni, nr]);
        IkeSaKeys::expand(prf, suite, &seed, ni, nr, spi_i, spi_r)
    }

    fn expand(
        prf: PrfAlg,
        suite: SkSuite,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeSaKeys, KeyError> {
        let (p, a, e) = (prf.output_len(), suite.integ_key_len(), suite.encr().key_len());
        let km = prf_plus(
            prf,
            skeyseed,
            &[ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()],
            3 * p + 2 * a + 2 * e,
        )?;
        let mut rest: &[u8] = &km;
        let mut take = |n: usize| {
            let (k, r) = rest.split_at(n);
            rest = r;
            Zeroizing::new(k.to_vec())
        };
        Ok(IkeSaKeys {
            prf,
            suite,
            sk_d: take(p),
            sk_ai: take(a),
            sk_ar: take(a),
            sk_ei: take(e),
            sk_er: take(e),
            sk_pi: take(p),
            sk_pr: take(p),
        })
    }

    /// KEYMAT of an ESP child SA pair (§2.17) with `suite`: `g_ir_new` is
    /// the CREATE_CHILD_SA's shared secret when it used PFS; `ni` and
    /// `nr` the nonces of the exchange that created the child.
    pub fn child_keys(
        &self,
        suite: Suite,
        g_ir_new: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
    ) -> Result<ChildKeys, KeyError> {
        let (e, a) = (suite.encr_key_len(), suite.integ_key_len());
        let g = g_ir_new.unwrap_or(&[]);
        let km = prf_plus(self.prf, &self.sk_d, &[g, ni, nr], 2 * (e + a))?;
        let dir = |k: &[u8]| DirectionKeys {
            encryption: Zeroizing::new(k[..e].to_vec()),
            integrity: Zeroizing::new(k[e..].to_vec()),
        };
        Ok(ChildKeys { initiator_to_responder: dir(&km[..e + a]), responder_to_initiator: dir(&km[e + a..]) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::alg::{EncrAlg, IntegAlg};
    use super::*;

    #[test]
    fn prf_plus_bounds() {
        assert_eq!(prf_plus(PrfAlg::HmacSha1, b"k", &[b"s"], 255 * 20).unwrap().len(), 255 * 20);
        assert_eq!(
            prf_plus(PrfAlg::HmacSha1, b"k", &[b"s"], 255 * 20 + 1).unwrap_err(),
            KeyError::TooLong { wanted: 5101, max: 5100 }
        );
        // T1 = prf(K, S | 0x01) when one block is enough.
        let t1 = PrfAlg::HmacSha256.prf(b"key", &[b"seed", &[1]]);
        assert_eq!(&*prf_plus(PrfAlg::HmacSha256, b"key", &[b"se", b"ed"], 32).unwrap(), &*t1);
    }

    #[test]
    fn key_lengths_per_suite() {
        let suite = SkSuite::new(EncrAlg::AesGcm16_256, None).unwrap();
        let k = IkeSaKeys::derive(PrfAlg::HmacSha384, suite, &[1; 32], &[2; 32], &[3; 256], 1, 2).unwrap();
        let lens = [&k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr].map(|k| k.len());
        assert_eq!(lens, [48, 0, 0, 36, 36, 48, 48]);
        let suite = SkSuite::new(EncrAlg::AesCbc128, Some(IntegAlg::HmacSha1_96)).unwrap();
        let k = IkeSaKeys::derive(PrfAlg::HmacSha1, suite, &[1; 32], &[2; 32], &[3; 256], 1, 2).unwrap();
        let lens = [&k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr].map(|k| k.len());
        assert_eq!(lens, [20, 20, 20, 16, 16, 20, 20]);
        assert!(!format!("{k:?}").contains("sk_d"));
        let c = k.child_keys(Suite::Aes128Gcm16, None, &[4; 32], &[5; 32]).unwrap();
        assert_eq!(
            (c.initiator_to_responder.encryption.len(), c.initiator_to_responder.integrity.len()),
            (20, 0)
        );
    }
}
