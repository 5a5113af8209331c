//! IKEv2 (RFC 7296): the wire, the keys, IKE_SA_INIT, IKE_AUTH with a
//! pre-shared key or certificates (RFC 7427) and its child SA, further
//! children by CREATE_CHILD_SA, INFORMATIONAL, and the session that
//! drives them for one peer, beside IKEv1 and sharing only its
//! Diffie-Hellman groups and the [`crate::Random`], [`crate::DirectionKeys`]
//! and [`crate::ChildSa`] types (controld installs the children of both
//! versions alike).
//!
//! The layers stack from bytes up; each takes only what the one below gives
//! and none does I/O or reads a clock:
//!
//! ```text
//!  session            Session: one peer's IKEv2 endpoint, sans-IO like
//!                     crate::Peer: on-demand children, retransmissions
//!                     and the window (§2.1-§2.3), INFORMATIONAL DELETE
//!                     and liveness (§1.4, §2.4), child rekeys (§2.8);
//!                     dropped: what it drops, counted by reason
//!          |
//!  create_child       IkeSa: CREATE_CHILD_SA (§1.3.1) with or without
//!                     PFS, message IDs and retransmissions (§2.1, §2.2);
//!                     a refused child leaves the IKE SA standing
//!  auth               IKE_AUTH with a pre-shared key or certificates
//!                     (§2.15) and the first child: InitDone ->
//!                     InitiatorSentAuth -> Established (with its child
//!                     or why not); ResponderInitDone -> Established or
//!                     AUTHENTICATION_FAILED
//!  cert               CertAuth: our chain and key, the CAs we trust;
//!                     RFC 7427 signatures, the peer's chain, key usage
//!                     and identity checked (x509: the DER fields read)
//!  child              ESP proposals, traffic selectors from proxy-IDs,
//!                     the responder's narrowing (§2.9), KEYMAT into a
//!                     ChildSa (§2.17)
//!  initiator          IKE_SA_INIT as states that consume themselves:
//!                     InitiatorStart -> InitiatorSentInit (again after a
//!                     COOKIE or INVALID_KE_PAYLOAD) -> InitDone
//!  responder          InitResponder: one answer or silence per request
//!                     (COOKIE under load, INVALID_KE_PAYLOAD,
//!                     NO_PROPOSAL_CHOSEN, INVALID_SYNTAX, ...), the same
//!                     response to a retransmission, ResponderInitDone
//!                     held until IKE_AUTH takes it
//!  init               what both ends share: the payloads read once, NAT
//!                     detection, InitReason counters, InitExchange (keys,
//!                     nonces, SPIs, the two messages AUTH signs)
//!  config             IkeSaProposal, the responder's choice (§2.7) and
//!                     the initiator's check of it (§3.3.6)
//!          |
//!  frag               fragments (RFC 7383): our sealed messages cut to
//!                     fit a datagram, the peer's put back together
//!  sk                 SkCipher: seal an inner PayloadChain into a message,
//!                     open a message into its inner chain (§3.14, RFC 5282)
//!  keys               prf+, SKEYSEED, SK_* (IkeSaKeys), rekeyed SKEYSEED,
//!                     child KEYMAT (§2.13, §2.14, §2.17, §2.18)
//!  alg                PrfAlg, IntegAlg, EncrAlg, SkSuite: sizes and IDs
//!          |
//!  wire               Header, PayloadIter / PayloadChain / MessageBuilder,
//!                     one view per payload (§3.1-§3.14, RFC 7383 §2.5)
//! ```
//!
//! An exchange state holds what it needs by value (an [`keys::IkeSaKeys`],
//! an [`sk::SkCipher`], the messages it must sign), reads a message with
//! [`sk::SkCipher::open`] and [`wire::PayloadIter`], and answers with
//! [`sk::SkCipher::seal`] over a [`wire::PayloadChain`]; a wire or SK error
//! names what it refused ([`wire::Error::notify`] says which Notify answers
//! it). Randomness (IVs, nonces, SPIs, DH secrets) and time are the caller's.

pub mod alg;
pub mod auth;
pub mod cert;
pub mod child;
pub mod config;
pub mod create_child;
pub mod dropped;
pub mod frag;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz_session;
pub mod ike_rekey;
pub mod init;
pub mod initiator;
pub mod keys;
pub mod responder;
pub mod session;
pub mod sk;
pub mod wire;
mod x509;
