//! The Encrypted payload (SK, RFC 7296 §3.14): sealing a chain of inner
//! payloads into a message, and opening one.
//!
//! ```text
//! IKE header | SK generic header (next payload = first inner type)
//!            | IV | E(inner payloads | padding | pad length) | ICV
//! ```
//!
//! * AES-CBC with HMAC (RFC 3602, RFC 2404, RFC 4868): a fresh IV from
//!   the caller's randomness for every message (§3.14: unpredictable);
//!   the ICV is the truncated HMAC with SK_a over the message from the
//!   first byte of the IKE header to the last byte of ciphertext.
//! * AES-GCM-16 (RFC 5282): nonce = 4-byte salt (the last bytes of SK_e)
//!   | 8-byte explicit IV; the IV is a counter, never repeated under one
//!   key (RFC 5282 §3.1, DESIGN §7), and sealing refuses once it would
//!   wrap. AAD = the message from the IKE header through the SK generic
//!   header (RFC 5282 §5.1).
//!
//! Opening checks the ICV first, in constant time (`subtle` for the HMAC;
//! the GCM tag inside `aes-gcm`), and decrypts only then. A short payload,
//! a ciphertext off the block, a wrong ICV and a pad length longer than
//! the plaintext are distinct [`SkError`]s; none panics.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::alg::{EncrAlg, SkSuite, GCM_SALT_LEN};
use super::keys::IkeSaKeys;
use super::wire::{
    self, EncryptedFragment, Header, PayloadChain, PayloadIter, PayloadType, ENCRYPTED_FRAGMENT_FIXED,
    GENERIC_HEADER_LEN, HEADER_LEN,
};
use crate::Random;

/// Why an Encrypted payload could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SkError {
    /// The message around it is malformed.
    #[error("{0}")]
    Wire(#[from] wire::Error),
    /// The message has no Encrypted payload.
    #[error("no Encrypted payload in the message")]
    Missing,
    /// The Encrypted payload is shorter than its IV, one block and its ICV.
    #[error("Encrypted payload of {len} bytes, needs at least {need}")]
    Truncated {
        /// Its body length.
        len: usize,
        /// The least it needs.
        need: usize,
    },
    /// The CBC ciphertext is not a whole number of blocks.
    #[error("ciphertext of {len} bytes is not a multiple of the {block}-byte block")]
    Misaligned {
        /// Ciphertext length.
        len: usize,
        /// Block length.
        block: usize,
    },
    /// The ICV does not match: altered, or not from the peer's keys.
    #[error("integrity check failed")]
    BadIcv,
    /// The pad length runs past the start of the plaintext.
    #[error("pad length {pad} with {len} bytes of plaintext")]
    BadPadLength {
        /// The pad length field.
        pad: usize,
        /// Plaintext bytes before it.
        len: usize,
    },
    /// The GCM IV counter is spent: the IKE SA must be rekeyed.
    #[error("AES-GCM IVs of this IKE SA are spent")]
    IvExhausted,
    /// A message reassembled from fragments whose fragments do not
    /// belong together: headers, numbers or totals differ (RFC 7383 §2.6).
    #[error("fragments that do not make one message")]
    BadFragments,
    /// A key of the wrong length for the suite.
    #[error("key of {len} bytes for a cipher that takes {want}")]
    BadKey {
        /// Key length given.
        len: usize,
        /// Key length wanted.
        want: usize,
    },
}

/// The keys of one direction.
struct Direction {
    encr: Zeroizing<Vec<u8>>,
    integ: Zeroizing<Vec<u8>>,
}

/// Seals this side's messages and opens the peer's, for one IKE SA.
pub struct SkCipher {
    suite: SkSuite,
    out: Direction,
    inb: Direction,
    /// The next GCM explicit IV (unused for CBC).
    next_iv: u64,
}

impl core::fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SkCipher")
            .field("suite", &self.suite)
            .field("next_iv", &self.next_iv)
            .finish_non_exhaustive()
    }
}

/// An opened message: its header and the decrypted inner payload chain.
#[derive(Debug)]
pub struct Opened {
    /// The message's header.
    pub header: Header,
    /// Type of the first inner payload (the SK header's next payload).
    pub first: u8,
    /// The inner payloads, padding removed.
    pub plaintext: Zeroizing<Vec<u8>>,
}

/// One opened Encrypted Fragment (RFC 7383 §2.5): its header, numbers and
/// slice of the inner payloads.
#[derive(Debug)]
pub struct OpenedFragment {
    /// The fragment message's header.
    pub header: Header,
    /// Fragment Number, from 1.
    pub number: u16,
    /// Total Fragments.
    pub total: u16,
    /// The first inner payload's type (fragment 1), else zero.
    pub first: u8,
    /// This fragment's bytes of the inner payloads, padding removed.
    pub plaintext: Zeroizing<Vec<u8>>,
}

/// A message put together from its fragments: a header like each
/// fragment's (next payload SKF, length the whole), then the fragment
/// messages (whole, in number order, 1 to Total Fragments). It is never
/// trusted as it stands: [`SkCipher::open`] checks each fragment again,
/// so the exchanges read it as they read any message.
pub fn reassembled(first: &Header, fragments: &[&[u8]]) -> Vec<u8> {
    let len = HEADER_LEN + fragments.iter().map(|f| f.len()).sum::<usize>();
    let mut out = vec![0u8; HEADER_LEN];
    let h = Header {
        next_payload: PayloadType::EncryptedFragment.value(),
        length: u32::try_from(len).unwrap_or(u32::MAX),
        ..*first
    };
    h.emit(&mut out);
    for f in fragments {
        out.extend_from_slice(f);
    }
    out
}

impl Opened {
    /// The inner payloads; offsets count from the plaintext's first byte.
    pub fn payloads(&self) -> PayloadIter<'_> {
        PayloadIter::new(&self.plaintext, self.first, 0)
    }
}

impl SkCipher {
    /// The cipher of an IKE SA for the side that is its original
    /// initiator (`initiator`) or responder: the initiator seals with
    /// SK_ei/SK_ai and opens with SK_er/SK_ar (§2.14).
    pub fn new(keys: &IkeSaKeys, initiator: bool) -> Result<SkCipher, SkError> {
        let (i, r) =
            ((keys.sk_ei.as_slice(), keys.sk_ai.as_slice()), (keys.sk_er.as_slice(), keys.sk_ar.as_slice()));
        let (out, inb) = if initiator { (i, r) } else { (r, i) };
        SkCipher::from_keys(keys.suite, out, inb)
    }

    /// The cipher from explicit `(encryption, integrity)` keys of each
    /// direction.
    pub fn from_keys(suite: SkSuite, out: (&[u8], &[u8]), inb: (&[u8], &[u8])) -> Result<SkCipher, SkError> {
        for (e, a) in [out, inb] {
            if e.len() != suite.encr().key_len() {
                return Err(SkError::BadKey { len: e.len(), want: suite.encr().key_len() });
            }
            if a.len() != suite.integ_key_len() {
                return Err(SkError::BadKey { len: a.len(), want: suite.integ_key_len() });
            }
        }
        let dir = |(e, a): (&[u8], &[u8])| Direction {
            encr: Zeroizing::new(e.to_vec()),
            integ: Zeroizing::new(a.to_vec()),
        };
        Ok(SkCipher { suite, out: dir(out), inb: dir(inb), next_iv: 0 })
    }

    /// Continues a GCM IV counter (an SA restored from saved state must
    /// never reuse an IV it already sent).
    pub fn with_next_iv(mut self, next_iv: u64) -> SkCipher {
        self.next_iv = next_iv;
        self
    }

    /// The next GCM IV this cipher would use (to save with the SA).
    pub fn next_iv(&self) -> u64 {
        self.next_iv
    }

    /// The suite.
    pub fn suite(&self) -> SkSuite {
        self.suite
    }

    /// Builds the whole message: `header` (its next-payload and length
    /// fields are set here) and an Encrypted payload around `inner`. CBC
    /// IVs come from `rng`.
    pub fn seal(
        &mut self,
        header: &Header,
        inner: &PayloadChain,
        rng: &mut dyn Random,
    ) -> Result<Vec<u8>, SkError> {
        self.seal_raw(header, PayloadType::Encrypted, inner.first(), &[], inner.bytes()?, rng)
    }

    /// Builds one Encrypted Fragment message (RFC 7383 §2.5): `header`
    /// with an SKF payload numbered `number` of `total` around `chunk`, a
    /// slice of the inner payloads' bytes; `first` is the first inner
    /// payload's type, carried by fragment 1 only. Each fragment is
    /// padded, encrypted and integrity-protected on its own (§2.5.3).
    pub fn seal_fragment(
        &mut self,
        header: &Header,
        first: u8,
        (number, total): (u16, u16),
        chunk: &[u8],
        rng: &mut dyn Random,
    ) -> Result<Vec<u8>, SkError> {
        let next = if number == 1 { first } else { 0 };
        let (n, t) = (number.to_be_bytes(), total.to_be_bytes());
        self.seal_raw(header, PayloadType::EncryptedFragment, next, &[n[0], n[1], t[0], t[1]], chunk, rng)
    }

    /// The most inner-payload bytes one fragment carries in a message of
    /// at most `max` bytes (RFC 7383 §2.5.1): what is left after the IKE
    /// header, SKF header and fields, IV and ICV, cut to whole blocks
    /// less the pad length byte. Zero if nothing fits.
    pub fn fragment_room(&self, max: usize) -> usize {
        let encr = self.suite.encr();
        let fixed = HEADER_LEN + GENERIC_HEADER_LEN + ENCRYPTED_FRAGMENT_FIXED;
        let room = max.saturating_sub(fixed + encr.iv_len() + self.suite.icv_len());
        let block = encr.block_len();
        (room / block * block).saturating_sub(1)
    }

    /// Seals `plain` as a payload of `kind` (SK or SKF) whose generic
    /// header's next-payload is `next`, `fixed` (SKF's numbers) between
    /// that header and the IV.
    fn seal_raw(
        &mut self,
        header: &Header,
        kind: PayloadType,
        next: u8,
        fixed: &[u8],
        plain: &[u8],
        rng: &mut dyn Random,
    ) -> Result<Vec<u8>, SkError> {
        let encr = self.suite.encr();
        let block = encr.block_len();
        // §3.14: the fewest pad bytes that align payloads | padding | pad
        // length; zeros, which the RFC allows.
        let pad = (block - (plain.len() + 1) % block) % block;
        let mut buf = Zeroizing::new(Vec::with_capacity(plain.len() + pad + 1 + block));
        buf.extend_from_slice(plain);
        buf.resize(plain.len() + pad, 0);
        buf.push(pad as u8);

        let (iv_len, icv_len) = (encr.iv_len(), self.suite.icv_len());
        let sk_len = GENERIC_HEADER_LEN + fixed.len() + iv_len + buf.len() + icv_len;
        let total = HEADER_LEN + sk_len;
        let sk_len16 = u16::try_from(sk_len).map_err(|_| wire::Error::BadLength {
            what: "Encrypted payload to build",
            at: HEADER_LEN,
            len: sk_len,
            room: usize::from(u16::MAX),
        })?;
        let mut msg = vec![0u8; HEADER_LEN];
        let h = Header { next_payload: kind.value(), length: total as u32, ..*header };
        h.emit(&mut msg);
        msg.extend_from_slice(&[next, 0]);
        msg.extend_from_slice(&sk_len16.to_be_bytes());
        msg.extend_from_slice(fixed);
        let aad_end = msg.len();

        if encr.is_aead() {
            if self.next_iv == u64::MAX {
                return Err(SkError::IvExhausted);
            }
            let iv = self.next_iv.to_be_bytes();
            self.next_iv += 1;
            msg.extend_from_slice(&iv);
            let tag = gcm_seal(encr, &self.out.encr, &iv, &msg[..aad_end], &mut buf)?;
            msg.extend_from_slice(&buf);
            msg.extend_from_slice(&tag);
        } else {
            let mut iv = [0u8; 16];
            rng.fill(&mut iv);
            msg.extend_from_slice(&iv);
            cbc_encrypt(encr, &self.out.encr, &iv, &mut buf)?;
            msg.extend_from_slice(&buf);
            let integ = self.suite.integ().ok_or(SkError::BadIcv)?;
            let icv = integ.mac(&self.out.integ, &[&msg]);
            msg.extend_from_slice(&icv);
        }
        Ok(msg)
    }

    /// Opens a whole message from the peer: checks the header and the
    /// payloads before SK, the ICV, then decrypts and removes the padding.
    /// A message reassembled from fragments ([`reassembled`]) is opened
    /// fragment by fragment, each checked again, and read as one.
    pub fn open(&self, msg: &[u8]) -> Result<Opened, SkError> {
        let header = Header::parse(msg)?;
        if header.next_payload == PayloadType::EncryptedFragment.value() {
            return self.open_reassembled(msg, header);
        }
        let mut sk = None;
        for raw in PayloadIter::of_message(msg, &header) {
            let raw = raw?;
            if raw.kind == PayloadType::Encrypted {
                sk = Some(raw);
            }
        }
        let sk = sk.ok_or(SkError::Missing)?;
        let plaintext = self.open_raw(&self.inb, msg, sk.body_at(), sk.body)?;
        Ok(Opened { header, first: sk.next, plaintext })
    }

    /// Opens a message this side sealed (its first payload SK), to cut
    /// it into fragments (RFC 7383 §2.5).
    pub(crate) fn open_own(&self, msg: &[u8]) -> Result<Opened, SkError> {
        let header = Header::parse(msg)?;
        let sk = match PayloadIter::of_message(msg, &header).next() {
            Some(raw) => raw?,
            None => return Err(SkError::Missing),
        };
        if sk.kind != PayloadType::Encrypted {
            return Err(SkError::Missing);
        }
        let plaintext = self.open_raw(&self.out, msg, sk.body_at(), sk.body)?;
        Ok(Opened { header, first: sk.next, plaintext })
    }

    /// Opens one Encrypted Fragment message from the peer (RFC 7383
    /// §2.6): its ICV checked, then its slice of the inner payloads
    /// decrypted. The SKF must be the message's only payload.
    pub fn open_fragment(&self, msg: &[u8]) -> Result<OpenedFragment, SkError> {
        let header = Header::parse(msg)?;
        let mut payloads = PayloadIter::of_message(msg, &header);
        let raw = match payloads.next() {
            Some(raw) => raw?,
            None => return Err(SkError::Missing),
        };
        if raw.kind != PayloadType::EncryptedFragment {
            return Err(SkError::Missing);
        }
        let f = EncryptedFragment::parse(raw.body, raw.body_at(), raw.next)?;
        let plaintext = self.open_raw(&self.inb, msg, raw.body_at() + ENCRYPTED_FRAGMENT_FIXED, f.sealed)?;
        Ok(OpenedFragment { header, number: f.number, total: f.total, first: f.next, plaintext })
    }

    /// A [`Reassembled`] message: every fragment in order, each opened.
    fn open_reassembled(&self, msg: &[u8], header: Header) -> Result<Opened, SkError> {
        let mut plaintext = Zeroizing::new(Vec::new());
        let (mut at, mut number, mut first) = (HEADER_LEN, 0u16, 0u8);
        let mut total = None;
        while at < msg.len() {
            let rest = &msg[at..];
            let len = rest.get(24..28).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let frag = rest.get(..len).ok_or(wire::Error::BadLength {
                what: "reassembled fragment",
                at,
                len,
                room: rest.len(),
            })?;
            let f = self.open_fragment(frag)?;
            number = number.wrapping_add(1);
            let same = Header { length: header.length, next_payload: header.next_payload, ..f.header };
            if same != header || f.number != number || *total.get_or_insert(f.total) != f.total {
                return Err(SkError::BadFragments);
            }
            if number == 1 {
                first = f.first;
            }
            plaintext.extend_from_slice(&f.plaintext);
            at += len;
        }
        if number == 0 || total != Some(number) {
            return Err(SkError::BadFragments);
        }
        Ok(Opened { header, first, plaintext })
    }

    /// Checks the ICV of the payload whose body (IV, ciphertext, ICV) is
    /// `sealed`, starting at `iv_at` of `msg`, and decrypts it; the
    /// padding removed.
    fn open_raw(
        &self,
        dir: &Direction,
        msg: &[u8],
        iv_at: usize,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SkError> {
        let encr = self.suite.encr();
        let (iv_len, icv_len, block) = (encr.iv_len(), self.suite.icv_len(), encr.block_len());
        let need = iv_len + block + icv_len;
        if sealed.len() < need {
            return Err(SkError::Truncated { len: sealed.len(), need });
        }
        let iv = &sealed[..iv_len];
        let ct = &sealed[iv_len..sealed.len() - icv_len];
        let icv = &sealed[sealed.len() - icv_len..];
        let mut buf = Zeroizing::new(ct.to_vec());
        if encr.is_aead() {
            let aad = &msg[..iv_at];
            gcm_open(encr, &dir.encr, iv, aad, &mut buf, icv)?;
        } else {
            if !ct.len().is_multiple_of(block) {
                return Err(SkError::Misaligned { len: ct.len(), block });
            }
            let integ = self.suite.integ().ok_or(SkError::BadIcv)?;
            // The ICV covers the message up to its own start: the payload
            // is the last one (§3.14, RFC 7383 §2.5).
            let end = iv_at + sealed.len() - icv_len;
            let want = integ.mac(&dir.integ, &[&msg[..end]]);
            if !bool::from(want.as_slice().ct_eq(icv)) {
                return Err(SkError::BadIcv);
            }
            cbc_decrypt(encr, &dir.encr, iv, &mut buf)?;
        }
        let pad = usize::from(buf.last().copied().unwrap_or(0));
        let len = buf.len().saturating_sub(1);
        if pad > len {
            return Err(SkError::BadPadLength { pad, len });
        }
        buf.truncate(len - pad);
        Ok(buf)
    }
}

fn cbc_encrypt(encr: EncrAlg, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), SkError> {
    let n = buf.len();
    let bad = SkError::BadKey { len: key.len(), want: encr.key_len() };
    match encr {
        EncrAlg::AesCbc128 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| bad)?
            .encrypt_padded_mut::<NoPadding>(buf, n)
            .map(|_| ())
            .map_err(|_| SkError::Misaligned { len: n, block: 16 }),
        EncrAlg::AesCbc256 => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| bad)?
            .encrypt_padded_mut::<NoPadding>(buf, n)
            .map(|_| ())
            .map_err(|_| SkError::Misaligned { len: n, block: 16 }),
        EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 => Err(bad),
    }
}

fn cbc_decrypt(encr: EncrAlg, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), SkError> {
    let n = buf.len();
    let bad = SkError::BadKey { len: key.len(), want: encr.key_len() };
    match encr {
        EncrAlg::AesCbc128 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| bad)?
            .decrypt_padded_mut::<NoPadding>(buf)
            .map(|_| ())
            .map_err(|_| SkError::Misaligned { len: n, block: 16 }),
        EncrAlg::AesCbc256 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| bad)?
            .decrypt_padded_mut::<NoPadding>(buf)
            .map(|_| ())
            .map_err(|_| SkError::Misaligned { len: n, block: 16 }),
        EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 => Err(bad),
    }
}

/// Splits SK_e into the AES key and the salt; the GCM nonce is salt | IV.
fn gcm_nonce(encr: EncrAlg, key: &[u8], iv: &[u8]) -> Result<(usize, [u8; 12]), SkError> {
    let k = encr.aes_key_len();
    if key.len() != k + GCM_SALT_LEN || iv.len() != 8 {
        return Err(SkError::BadKey { len: key.len(), want: encr.key_len() });
    }
    let mut nonce = [0u8; 12];
    nonce[..GCM_SALT_LEN].copy_from_slice(&key[k..]);
    nonce[GCM_SALT_LEN..].copy_from_slice(iv);
    Ok((k, nonce))
}

fn gcm_seal(encr: EncrAlg, key: &[u8], iv: &[u8], aad: &[u8], buf: &mut [u8]) -> Result<Vec<u8>, SkError> {
    let (k, nonce) = gcm_nonce(encr, key, iv)?;
    let bad = SkError::BadKey { len: key.len(), want: encr.key_len() };
    let nonce = aes_gcm::Nonce::from_slice(&nonce);
    let tag = match encr {
        EncrAlg::AesGcm16_128 => {
            Aes128Gcm::new_from_slice(&key[..k]).map_err(|_| bad)?.encrypt_in_place_detached(nonce, aad, buf)
        }
        EncrAlg::AesGcm16_256 => {
            Aes256Gcm::new_from_slice(&key[..k]).map_err(|_| bad)?.encrypt_in_place_detached(nonce, aad, buf)
        }
        EncrAlg::AesCbc128 | EncrAlg::AesCbc256 => return Err(bad),
    };
    // aes-gcm refuses only plaintexts over 2^36 bytes, far past a message.
    tag.map(|t| t.to_vec()).map_err(|_| {
        SkError::Wire(wire::Error::BadLength { what: "plaintext to seal", at: 0, len: buf.len(), room: 0 })
    })
}

fn gcm_open(
    encr: EncrAlg,
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    icv: &[u8],
) -> Result<(), SkError> {
    let (k, nonce) = gcm_nonce(encr, key, iv)?;
    let bad = SkError::BadKey { len: key.len(), want: encr.key_len() };
    let nonce = aes_gcm::Nonce::from_slice(&nonce);
    if icv.len() != super::alg::GCM_ICV_LEN {
        return Err(SkError::BadIcv);
    }
    let tag = aes_gcm::Tag::from_slice(icv);
    // The tag is compared in constant time inside aes-gcm, and nothing is
    // decrypted into `buf` unless it matches.
    let r = match encr {
        EncrAlg::AesGcm16_128 => Aes128Gcm::new_from_slice(&key[..k])
            .map_err(|_| bad)?
            .decrypt_in_place_detached(nonce, aad, buf, tag),
        EncrAlg::AesGcm16_256 => Aes256Gcm::new_from_slice(&key[..k])
            .map_err(|_| bad)?
            .decrypt_in_place_detached(nonce, aad, buf, tag),
        EncrAlg::AesCbc128 | EncrAlg::AesCbc256 => return Err(bad),
    };
    r.map_err(|_| SkError::BadIcv)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::alg::IntegAlg;
    use super::super::wire::{ExchangeType, NoncePayload, Payload, FLAG_INITIATOR};
    use super::*;

    /// Randomness that counts up.
    pub(crate) struct Counting(pub(crate) u8);

    impl Random for Counting {
        fn fill(&mut self, dest: &mut [u8]) {
            for b in dest {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    /// Every suite.
    pub(crate) fn suites() -> Vec<SkSuite> {
        let cbc = [EncrAlg::AesCbc128, EncrAlg::AesCbc256];
        let integ = [
            IntegAlg::HmacSha1_96,
            IntegAlg::HmacSha256_128,
            IntegAlg::HmacSha384_192,
            IntegAlg::HmacSha512_256,
        ];
        let mut v: Vec<SkSuite> =
            cbc.iter().flat_map(|&e| integ.iter().filter_map(move |&a| SkSuite::new(e, Some(a)))).collect();
        v.extend(
            [EncrAlg::AesGcm16_128, EncrAlg::AesGcm16_256].iter().filter_map(|&e| SkSuite::new(e, None)),
        );
        v
    }

    /// The two ends of one IKE SA: (initiator, responder).
    pub(crate) fn pair(suite: SkSuite) -> (SkCipher, SkCipher) {
        let ke = |b: u8| vec![b; suite.encr().key_len()];
        let ka = |b: u8| vec![b; suite.integ_key_len()];
        let (ei, ai, er, ar) = (ke(1), ka(2), ke(3), ka(4));
        let i = SkCipher::from_keys(suite, (&ei, &ai), (&er, &ar)).unwrap();
        let r = SkCipher::from_keys(suite, (&er, &ar), (&ei, &ai)).unwrap();
        (i, r)
    }

    /// An IKE_AUTH request's header.
    pub(crate) fn header() -> Header {
        Header {
            spi_i: 0x1111,
            spi_r: 0x2222,
            next_payload: 0,
            exchange: ExchangeType::IkeAuth,
            flags: FLAG_INITIATOR,
            message_id: 1,
            length: 0,
        }
    }

    fn chain(n: usize) -> PayloadChain {
        let mut c = PayloadChain::new();
        c.push(PayloadType::Nonce, &vec![0x5a; 16 + n]);
        c.push(PayloadType::VendorId, b"v");
        c
    }

    #[test]
    fn every_suite_round_trips_every_padding() {
        let mut rng = Counting(0);
        for suite in suites() {
            let (mut i, r) = pair(suite);
            for n in 0..40 {
                let inner = chain(n);
                let msg = i.seal(&header(), &inner, &mut rng).unwrap();
                let h = Header::parse(&msg).unwrap();
                assert_eq!((h.next_payload, h.length as usize), (46, msg.len()));
                let opened = r.open(&msg).unwrap();
                assert_eq!(&opened.plaintext[..], inner.bytes().unwrap(), "{suite:?} {n}");
                let first = opened.payloads().next().unwrap().unwrap();
                assert!(matches!(Payload::parse(&first).unwrap(), Payload::Nonce(NoncePayload { .. })));
                // Each side opens only the other's messages.
                assert_eq!(i.open(&msg).unwrap_err(), SkError::BadIcv, "{suite:?}");
            }
        }
    }

    #[test]
    fn gcm_ivs_count_and_never_wrap() {
        let suite = SkSuite::new(EncrAlg::AesGcm16_128, None).unwrap();
        let (i, _) = pair(suite);
        let mut i = i.with_next_iv(7);
        let msg = i.seal(&header(), &chain(0), &mut Counting(0)).unwrap();
        assert_eq!(&msg[32..40], &7u64.to_be_bytes());
        assert_eq!(i.next_iv(), 8);
        let mut i = i.with_next_iv(u64::MAX);
        assert_eq!(i.seal(&header(), &chain(0), &mut Counting(0)).unwrap_err(), SkError::IvExhausted);
    }

    #[test]
    fn tampering_and_truncation_are_distinct_errors() {
        for suite in suites() {
            let (mut i, r) = pair(suite);
            let msg = i.seal(&header(), &chain(3), &mut Counting(9)).unwrap();
            // Any flipped bit, header and AAD included, fails the ICV.
            for at in [0, 17, 19, 27, 29, 33, msg.len() / 2, msg.len() - 1] {
                let mut m = msg.clone();
                m[at] ^= 0x01;
                let e = r.open(&m).unwrap_err();
                assert!(matches!(e, SkError::BadIcv | SkError::Wire(_)), "{suite:?} byte {at}: {e:?}");
            }
            // A payload too short for IV, one block and ICV.
            let need = suite.encr().iv_len() + suite.encr().block_len() + suite.icv_len();
            let mut m = msg[..HEADER_LEN + GENERIC_HEADER_LEN + need - 1].to_vec();
            let len = m.len();
            m[24..28].copy_from_slice(&(len as u32).to_be_bytes());
            m[30..32].copy_from_slice(&((len - HEADER_LEN) as u16).to_be_bytes());
            assert_eq!(r.open(&m).unwrap_err(), SkError::Truncated { len: need - 1, need });
            // Truncated datagrams are refused by the header.
            assert!(matches!(r.open(&msg[..msg.len() - 1]), Err(SkError::Wire(_))));
        }
    }

    #[test]
    fn misaligned_and_bad_pad_length() {
        let suite = SkSuite::new(EncrAlg::AesCbc128, Some(IntegAlg::HmacSha256_128)).unwrap();
        let (_, r) = pair(suite);
        // Build by hand: header | SK header | IV | CBC(plain) | ICV.
        let build = |plain: &[u8], encrypt: bool| {
            let iv = [0x42u8; 16];
            let mut ct = plain.to_vec();
            if encrypt {
                cbc_encrypt(EncrAlg::AesCbc128, &[1; 16], &iv, &mut ct).unwrap();
            }
            let sk_len = 4 + 16 + ct.len() + 16;
            let mut m = vec![0u8; 28];
            Header { next_payload: 46, length: (28 + sk_len) as u32, ..header() }.emit(&mut m);
            m.extend_from_slice(&[40, 0]);
            m.extend_from_slice(&(sk_len as u16).to_be_bytes());
            m.extend_from_slice(&iv);
            m.extend_from_slice(&ct);
            let icv = IntegAlg::HmacSha256_128.mac(&[2; 32], &[&m]);
            m.extend_from_slice(&icv);
            m
        };
        let mut plain = [0u8; 32];
        plain[31] = 32;
        assert_eq!(r.open(&build(&plain, true)).unwrap_err(), SkError::BadPadLength { pad: 32, len: 31 });
        plain[31] = 31;
        assert_eq!(&r.open(&build(&plain, true)).unwrap().plaintext[..], &[] as &[u8]);
        assert_eq!(r.open(&build(&[0; 17], false)).unwrap_err(), SkError::Misaligned { len: 17, block: 16 });
        // No SK at all.
        let mut m = wire::MessageBuilder::new(header());
        m.chain.push(PayloadType::Nonce, &[1; 16]);
        assert_eq!(r.open(&m.finish().unwrap()).unwrap_err(), SkError::Missing);
    }
}
