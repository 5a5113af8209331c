//! IKE_SA_INIT (RFC 7296 §1.2), what both ends share: the exchange's
//! payloads read once, NAT detection (§2.23), the reasons a message is
//! refused, and [`InitExchange`], what a finished exchange leaves.
//!
//! ```text
//! Initiator                                Responder
//! HDR(A,0), [N(COOKIE),] SAi1, KEi, Ni,
//!   N(NAT_DETECTION_SOURCE_IP),
//!   N(NAT_DETECTION_DESTINATION_IP),
//!   [N(SIGNATURE_HASH_ALGORITHMS)]  -->
//!                                    <--  HDR(A,0), N(COOKIE)             §2.6
//!                                    <--  HDR(A,0), N(INVALID_KE_PAYLOAD) §1.3
//!                                    <--  HDR(A,0), N(NO_PROPOSAL_CHOSEN) §2.7
//!                                    <--  HDR(A,B), SAr1, KEr, Nr,
//!                                           N(NAT_DETECTION_*)
//! ```
//!
//! The initiator's states are in [`super::initiator`], the responder in
//! [`super::responder`]. Neither reads a clock or draws randomness other
//! than through its arguments.

use std::net::{IpAddr, SocketAddr};

use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::config::ChosenIke;
use super::keys::IkeSaKeys;
use super::wire::{
    self, ExchangeType, Header, KePayload, MessageBuilder, NoncePayload, NotifyPayload, NotifyType, Payload,
    PayloadIter, PayloadType, ProtocolId, SaPayload, FLAG_INITIATOR, FLAG_RESPONSE,
};

/// Bytes of the nonces this implementation sends: §2.10 asks for at
/// least half the PRF's key size and at least 128 bits; 32 covers every
/// PRF here (HMAC-SHA-512's 64-byte key included).
pub const NONCE_LEN: usize = 32;
/// The longest COOKIE a responder may send (§3.10.1: 1 to 64 bytes).
pub const COOKIE_MAX: usize = 64;

/// Why an IKE_SA_INIT message was refused or ignored, as data: one
/// counter per reason (the pattern of `crate::Discard`). Each says what
/// the refusing side did: answered with a Notify, or stayed silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum InitReason {
    /// Shorter than an IKE header, its length field not the datagram's,
    /// or a zero SPIi: silence (nothing to answer to, §2.21.1).
    Unreadable,
    /// A major version other than 2: INVALID_MAJOR_VERSION (§1.5).
    UnsupportedVersion,
    /// Not an IKE_SA_INIT request for a new SA (a response, the I flag
    /// clear, a responder SPI or a message ID other than 0): silence.
    NotInitRequest,
    /// A payload malformed, repeated or missing: INVALID_SYNTAX (§2.21.1).
    Malformed,
    /// A critical payload not understood: UNSUPPORTED_CRITICAL_PAYLOAD
    /// (§2.5).
    UnsupportedCritical,
    /// A nonce shorter than half the chosen PRF's key (§2.10):
    /// INVALID_SYNTAX.
    ShortNonce,
    /// A KE public value invalid for its group: INVALID_SYNTAX.
    BadKePublic,
    /// Under load and no COOKIE: COOKIE demanded (§2.6).
    CookieRequired,
    /// A COOKIE that is not ours for this request: a fresh COOKIE
    /// demanded (§2.6).
    CookieMismatch,
    /// No acceptable proposal: NO_PROPOSAL_CHOSEN (§2.7).
    NoProposal,
    /// A KE of another group than the one chosen: INVALID_KE_PAYLOAD
    /// (§1.2, §1.3).
    WrongKeGroup,
    /// The half-open table is full: silence.
    HalfOpenFull,
    /// The source address's share of the half-open table is full:
    /// silence.
    HalfOpenSourceFull,
    /// A different request for an SPIi whose exchange is already half
    /// open from the same address: silence (§2.1 retransmissions are
    /// byte-identical).
    SpiInUse,
    /// A retransmitted request: the same response again (§2.1).
    Retransmission,
    /// A half-open exchange timed out.
    HalfOpenTimedOut,
    /// Initiator: a response that is unreadable, not for this exchange
    /// or incomplete: ignored, the exchange waits on (§2.21.1: an
    /// unauthenticated answer must not end it).
    ResponseIgnored,
    /// Initiator: an INVALID_KE_PAYLOAD naming a group not offered, or
    /// the one already sent: ignored.
    InvalidKeIgnored,
    /// Initiator: COOKIE and INVALID_KE_PAYLOAD answers beyond the bound.
    TooManyRetries,
    /// Initiator: the responder refused with an error Notify.
    Refused,
    /// Initiator: the responder chose what was never offered (§2.7).
    AnswerNotOffered,
}

impl InitReason {
    /// Every reason, in counter order.
    pub const ALL: [InitReason; 21] = [
        InitReason::Unreadable,
        InitReason::UnsupportedVersion,
        InitReason::NotInitRequest,
        InitReason::Malformed,
        InitReason::UnsupportedCritical,
        InitReason::ShortNonce,
        InitReason::BadKePublic,
        InitReason::CookieRequired,
        InitReason::CookieMismatch,
        InitReason::NoProposal,
        InitReason::WrongKeGroup,
        InitReason::HalfOpenFull,
        InitReason::HalfOpenSourceFull,
        InitReason::SpiInUse,
        InitReason::Retransmission,
        InitReason::HalfOpenTimedOut,
        InitReason::ResponseIgnored,
        InitReason::InvalidKeIgnored,
        InitReason::TooManyRetries,
        InitReason::Refused,
        InitReason::AnswerNotOffered,
    ];

    /// The counter's name.
    pub fn name(self) -> &'static str {
        match self {
            InitReason::Unreadable => "init-unreadable",
            InitReason::UnsupportedVersion => "init-unsupported-version",
            InitReason::NotInitRequest => "init-not-a-request",
            InitReason::Malformed => "init-malformed",
            InitReason::UnsupportedCritical => "init-unsupported-critical",
            InitReason::ShortNonce => "init-short-nonce",
            InitReason::BadKePublic => "init-bad-ke-public",
            InitReason::CookieRequired => "init-cookie-required",
            InitReason::CookieMismatch => "init-cookie-mismatch",
            InitReason::NoProposal => "init-no-proposal",
            InitReason::WrongKeGroup => "init-wrong-ke-group",
            InitReason::HalfOpenFull => "init-half-open-full",
            InitReason::HalfOpenSourceFull => "init-half-open-source-full",
            InitReason::SpiInUse => "init-spi-in-use",
            InitReason::Retransmission => "init-retransmission",
            InitReason::HalfOpenTimedOut => "init-half-open-timed-out",
            InitReason::ResponseIgnored => "init-response-ignored",
            InitReason::InvalidKeIgnored => "init-invalid-ke-ignored",
            InitReason::TooManyRetries => "init-too-many-retries",
            InitReason::Refused => "init-refused",
            InitReason::AnswerNotOffered => "init-answer-not-offered",
        }
    }

    /// Its index among [`InitReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// §2.23: SHA-1(SPIi | SPIr | IP address | port), the data of a
/// NAT_DETECTION_SOURCE_IP or _DESTINATION_IP Notify.
pub fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(spi_i.to_be_bytes());
    h.update(spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(addr.port().to_be_bytes());
    h.finalize().into()
}

/// What NAT detection found (§2.23), from the peer's point of view of
/// the addresses each side saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatDetection {
    /// The peer sent both NAT_DETECTION Notifies.
    pub supported: bool,
    /// None of the peer's source hashes matches the address we received
    /// from: the peer is behind a NAT.
    pub remote_behind_nat: bool,
    /// The peer's destination hash does not match our address: we are
    /// behind a NAT (we then send keepalives, §2.23).
    pub local_behind_nat: bool,
}

/// The payloads of an IKE_SA_INIT message, read once.
#[derive(Debug, Clone, Default)]
pub(crate) struct InitPayloads<'a> {
    pub(crate) sa: Option<SaPayload<'a>>,
    pub(crate) ke: Option<KePayload<'a>>,
    pub(crate) nonce: Option<&'a [u8]>,
    /// The COOKIE, when it is the first payload (§2.6).
    pub(crate) cookie: Option<&'a [u8]>,
    /// A COOKIE anywhere else.
    pub(crate) cookie_misplaced: bool,
    pub(crate) nat_source: Vec<&'a [u8]>,
    pub(crate) nat_destination: Option<&'a [u8]>,
    /// The first error Notify.
    pub(crate) error: Option<NotifyPayload<'a>>,
    pub(crate) signature_hash_algorithms: Option<&'a [u8]>,
    /// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
    pub(crate) fragmentation_supported: bool,
}

/// A second payload of a type that occurs once (§1.2): INVALID_SYNTAX.
fn once<T>(slot: &mut Option<T>, v: T, what: &'static str, at: usize) -> wire::Result<()> {
    if slot.replace(v).is_some() {
        return Err(wire::Error::BadCount { what, at, count: 1, found: 2 });
    }
    Ok(())
}

impl<'a> InitPayloads<'a> {
    /// Reads the payloads of a message whose header is `header`.
    pub(crate) fn parse(msg: &'a [u8], header: &Header) -> wire::Result<InitPayloads<'a>> {
        let mut p = InitPayloads::default();
        for (i, raw) in PayloadIter::of_message(msg, header).enumerate() {
            let raw = raw?;
            let at = raw.at;
            match Payload::parse(&raw)? {
                Payload::Sa(sa) => once(&mut p.sa, sa, "SA payloads", at)?,
                Payload::Ke(ke) => once(&mut p.ke, ke, "KE payloads", at)?,
                Payload::Nonce(NoncePayload { nonce }) => once(&mut p.nonce, nonce, "Nonce payloads", at)?,
                Payload::Notify(n) => match n.kind {
                    NotifyType::Cookie if i == 0 => p.cookie = Some(n.data),
                    NotifyType::Cookie => p.cookie_misplaced = true,
                    NotifyType::NatDetectionSourceIp => p.nat_source.push(n.data),
                    NotifyType::NatDetectionDestinationIp => {
                        once(&mut p.nat_destination, n.data, "NAT_DETECTION_DESTINATION_IP", at)?
                    }
                    NotifyType::SignatureHashAlgorithms => p.signature_hash_algorithms = Some(n.data),
                    NotifyType::FragmentationSupported => p.fragmentation_supported = true,
                    k if k.is_error() && p.error.is_none() => p.error = Some(n),
                    _ => {}
                },
                // Vendor IDs, CERTREQ and the rest are not used here.
                _ => {}
            }
        }
        Ok(p)
    }

    /// NAT detection from the peer's Notifies: `spis` as in the header of
    /// the message that carried them, `local` and `remote` as this side
    /// saw the datagram (§2.23).
    pub(crate) fn nat(&self, spi_i: u64, spi_r: u64, local: SocketAddr, remote: SocketAddr) -> NatDetection {
        let Some(dst) = self.nat_destination.filter(|_| !self.nat_source.is_empty()) else {
            return NatDetection::default();
        };
        let src_ok = nat_hash(spi_i, spi_r, remote);
        NatDetection {
            supported: true,
            remote_behind_nat: !self.nat_source.iter().any(|s| *s == src_ok),
            local_behind_nat: dst != nat_hash(spi_i, spi_r, local),
        }
    }
}

/// The header of an IKE_SA_INIT message: from the initiator with
/// `FLAG_INITIATOR`, a response with `FLAG_RESPONSE`, message ID 0 (§2.2).
pub(crate) fn init_header(spi_i: u64, spi_r: u64, response: bool) -> Header {
    Header {
        spi_i,
        spi_r,
        next_payload: 0,
        exchange: ExchangeType::IkeSaInit,
        flags: if response { FLAG_RESPONSE } else { FLAG_INITIATOR },
        message_id: 0,
        length: 0,
    }
}

/// Appends a Notify about no SA (§3.10: protocol 0, no SPI).
pub(crate) fn push_notify(m: &mut MessageBuilder, kind: NotifyType, data: &[u8]) {
    m.chain.push_payload(&Payload::Notify(NotifyPayload {
        protocol: ProtocolId::None,
        kind,
        spi: &[],
        data,
    }));
}

/// Appends the two NAT_DETECTION Notifies of a message with these SPIs,
/// sent from `local` to `remote` (§2.23).
pub(crate) fn push_nat_detection(
    m: &mut MessageBuilder,
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
) {
    push_notify(m, NotifyType::NatDetectionSourceIp, &nat_hash(spi_i, spi_r, local));
    push_notify(m, NotifyType::NatDetectionDestinationIp, &nat_hash(spi_i, spi_r, remote));
}

/// Appends SA, KE and Nonce.
pub(crate) fn push_sa_ke_nonce(m: &mut MessageBuilder, sa: &[u8], group: u16, public: &[u8], nonce: &[u8]) {
    m.chain.push(PayloadType::Sa, sa);
    m.chain.push_payload(&Payload::Ke(KePayload { group, data: public }));
    m.chain.push(PayloadType::Nonce, nonce);
}

/// What a finished IKE_SA_INIT leaves to IKE_AUTH, on either side.
pub struct InitExchange {
    /// The algorithms chosen.
    pub chosen: ChosenIke,
    /// The initiator's SPI.
    pub spi_i: u64,
    /// The responder's SPI.
    pub spi_r: u64,
    /// The initiator's nonce.
    pub ni: Vec<u8>,
    /// The responder's nonce.
    pub nr: Vec<u8>,
    /// The Diffie-Hellman shared secret g^ir.
    pub g_ir: Zeroizing<Vec<u8>>,
    /// SK_d, SK_a*, SK_e*, SK_p* (§2.14).
    pub keys: IkeSaKeys,
    /// The request as sent (the last one, with a COOKIE if any): the
    /// initiator's signed octets begin with it (§2.15).
    pub request: Vec<u8>,
    /// The response as sent: the responder's signed octets begin with it.
    pub response: Vec<u8>,
    /// What NAT detection found, from this side.
    pub nat: NatDetection,
    /// This side's address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
}

impl core::fmt::Debug for InitExchange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InitExchange")
            .field("chosen", &self.chosen)
            .field("spi_i", &format_args!("{:016x}", self.spi_i))
            .field("spi_r", &format_args!("{:016x}", self.spi_r))
            .field("nat", &self.nat)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// A nonzero SPI from `rng` (§3.1: an SPI of zero means "none").
pub(crate) fn ike_spi(rng: &mut dyn crate::Random) -> u64 {
    loop {
        let mut b = [0u8; 8];
        rng.fill(&mut b);
        let v = u64::from_be_bytes(b);
        if v != 0 {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_hash_covers_spis_address_and_port() {
        let a: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        let h = nat_hash(1, 0, a);
        // SHA-1 over 0000000000000001 0000000000000000 c0000201 01f4,
        // computed apart with python hashlib.
        assert_eq!(hex::encode(h), "0934223bb4f4d438722fa2188be64e95136198be");
        assert_ne!(h, nat_hash(1, 0, b));
        assert_ne!(h, nat_hash(1, 2, a));
    }

    #[test]
    fn reasons_are_counted_in_order() {
        for (i, r) in InitReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
