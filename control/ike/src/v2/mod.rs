//! IKEv2 (RFC 7296): the first layer, beside IKEv1 and sharing only its
//! Diffie-Hellman groups and the [`crate::Random`] and [`crate::DirectionKeys`]
//! types.
//!
//! The layers stack from bytes up; each takes only what the one below gives
//! and none does I/O or reads a clock:
//!
//! ```text
//!  exchanges (next)   IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL
//!                     as state types that consume themselves on each message
//!                     (InitiatorSentInit -> InitiatorSentAuth -> Established,
//!                     rustls-style), built from the pieces below
//!          |
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
//! it). Randomness (IVs, and later nonces and SPIs) is the caller's.

pub mod alg;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod keys;
pub mod sk;
pub mod wire;
