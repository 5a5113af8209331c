//! esprit-ike: IKEv1 (RFC 2407, 2408, 2409) with pre-shared keys, as a
//! sans-IO library in the quinn-proto / rustls style.
//!
//! A [`Peer`] is one configured gateway. It takes datagrams and time
//! ([`Peer::handle_datagram`], [`Peer::handle_timeout`]) and requests
//! ([`Peer::initiate_child`], [`Peer::delete_child`]); it gives datagrams
//! ([`Peer::poll_transmit`]), events ([`Peer::poll_event`]: IKE SA up,
//! child SAs with their keys, proposal and proxy-ID mismatches, ...) and
//! its next deadline ([`Peer::poll_timeout`]). It opens no socket, reads no
//! clock and draws randomness only from the caller's [`Random`].
//!
//! Layout: [`wire`] (ISAKMP views), [`crypto`] (PRF, AES-CBC, SKEYID,
//! KEYMAT, DH), `exchange/` (one file per exchange: Main Mode, Aggressive
//! Mode, Quick Mode, Informational), [`proxy`] (proxy-IDs as Quick Mode
//! IDs and the responder's check).
//! [`v2`]: IKEv2 (RFC 7296) wire format, key schedule, Encrypted payload,
//! IKE_SA_INIT and IKE_AUTH with a pre-shared key, CREATE_CHILD_SA,
//! INFORMATIONAL, and [`v2::session::Session`], the IKEv2 counterpart of
//! [`Peer`] (same calls, same [`Event`]s).
#![forbid(unsafe_code)]

mod child;
mod config;
pub mod crypto;
mod discard;
mod error;
mod event;
mod exchange;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod guard;
mod ike_sa;
mod peer;
pub mod persist;
pub mod proxy;
pub mod v2;
pub mod wire;

pub use child::{ChildSa, DirectionKeys, UdpEncap};
pub use config::{
    group_name, Identity, IkeProposal, Lifetime, PeerConfig, Retransmit, DEFAULT_NAT_KEEPALIVE_SECS,
};
pub use crypto::dh::DhGroup;
pub use crypto::{EncryptionAlg, HashAlg};
pub use discard::{Discard, Discards};
pub use error::{Error, ErrorKind};
/// The ESP suite a Quick Mode negotiates (one type with the ESP core's).
pub use esprit_suite::Suite;
pub use event::{Event, Exchange, Reason};
pub use guard::HalfOpenLimits;
pub use peer::{IsakmpSaSummary, Peer, Transmit, IKE_PORT, NATT_PORT, NAT_KEEPALIVE};
pub use persist::{ChildState, IsakmpState, PeerState, PersistError, Secret, WallClock};

/// Source of randomness, implemented by the caller (the OS generator in
/// production, fixed bytes in tests): cookies, nonces, DH secrets, SPIs
/// and message IDs all come from here.
pub trait Random {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);

    /// An inbound SPI for a new child SA (RFC 4303 §2.1: 1-255 are
    /// reserved). Override to hand out SPIs from the fast path's allocator.
    fn spi(&mut self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.fill(&mut b);
            let v = u32::from_be_bytes(b);
            if v > 255 {
                return v;
            }
        }
    }
}
