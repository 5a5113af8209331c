//! An established ISAKMP SA: its keys, the phase-1 IV that seeds every
//! later exchange's IV (RFC 2409 Appendix B), and what was negotiated.

use std::time::Instant;

use zeroize::Zeroizing;

use crate::config::IkeProposal;
use crate::crypto::keys::Phase1Keys;
use crate::crypto::BLOCK;
use crate::error::ErrorKind;
use crate::wire::{MessageBuilder, HEADER_LEN};

/// An established ISAKMP SA.
#[derive(Debug)]
pub(crate) struct IkeSa {
    pub icookie: [u8; 8],
    pub rcookie: [u8; 8],
    pub initiator: bool,
    pub keys: Phase1Keys,
    /// Last CBC block of phase 1 (the IV seed of Quick Mode and
    /// Informational exchanges).
    pub p1_iv: Vec<u8>,
    pub proposal: IkeProposal,
    pub nat: bool,
    /// Our address is translated by a NAT (RFC 3947 §3.2).
    pub behind_nat: bool,
    pub peer_dpd: bool,
    /// The peer sent esprit's vendor ID: it takes many Quick Modes at once.
    pub peer_esprit: bool,
    pub established: Instant,
    /// Negotiated lifetime in seconds (0: none).
    pub lifetime: u32,
    /// The peer sent INITIAL-CONTACT in phase 1.
    pub peer_initial_contact: bool,
    /// Message IDs used under this SA (Quick Mode, Informational): a
    /// message with one of them and no exchange in progress is a replay.
    pub msgids: crate::guard::MessageIds,
}

/// Encrypts the payloads of `b` with `iv` and chains `iv` to the last
/// ciphertext block (RFC 2409 Appendix B).
pub(crate) fn seal(keys: &Phase1Keys, iv: &mut Vec<u8>, b: MessageBuilder) -> Vec<u8> {
    let ct = keys.cipher.encrypt(&keys.enc_key, iv, b.payloads());
    if ct.len() >= BLOCK {
        *iv = ct[ct.len() - BLOCK..].to_vec();
    }
    b.finish_encrypted(&ct)
}

/// Decrypts an encrypted message with `iv`; returns the plaintext (with
/// the sender's padding) and the IV that follows it. The caller adopts
/// that IV only once the message has been authenticated.
pub(crate) fn open(
    keys: &Phase1Keys,
    iv: &[u8],
    msg: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), ErrorKind> {
    let ct = msg.get(HEADER_LEN..).unwrap_or(&[]);
    let plain = keys
        .cipher
        .decrypt(&keys.enc_key, iv, ct)
        .map_err(|_| ErrorKind::Integrity("ciphertext not a multiple of the block"))?;
    let next = ct[ct.len() - BLOCK..].to_vec();
    Ok((plain, next))
}

impl IkeSa {
    /// When the lifetime runs out (None: no lifetime).
    pub(crate) fn expires(&self) -> Option<Instant> {
        (self.lifetime > 0)
            .then(|| self.established + std::time::Duration::from_secs(u64::from(self.lifetime)))
    }

    /// When to start a new phase 1 (make-before-break, RFC 2409 §4 leaves
    /// the policy to the implementation): the ISAKMP SA's initiator at 90%
    /// of the lifetime, its responder at 95% (so the two sides do not
    /// usually both start one; the responder steps in if the initiator
    /// did not).
    pub(crate) fn rekey_at(&self) -> Option<Instant> {
        let per_mille: u64 = if self.initiator { 900 } else { 950 };
        let ms = u64::from(self.lifetime) * per_mille;
        (self.lifetime > 0).then(|| self.established + std::time::Duration::from_millis(ms))
    }

    /// The cookies as the 16-byte ISAKMP SPI.
    pub(crate) fn spi(&self) -> [u8; 16] {
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&self.icookie);
        s[8..].copy_from_slice(&self.rcookie);
        s
    }
}
