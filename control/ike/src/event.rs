//! What the state machine tells its owner.

use std::net::SocketAddr;

use esprit_policy::ProxyId;

use crate::child::ChildSa;
use crate::wire::NotifyType;

/// Which exchange an event or error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// Main Mode.
    MainMode,
    /// Aggressive Mode.
    AggressiveMode,
    /// Quick Mode (message ID).
    QuickMode(u32),
    /// Informational.
    Informational,
    /// IKEv2 IKE_SA_INIT (RFC 7296 §1.2).
    IkeSaInit,
    /// IKEv2 IKE_AUTH (RFC 7296 §1.2).
    IkeAuth,
    /// IKEv2 CREATE_CHILD_SA (message ID, RFC 7296 §1.3).
    CreateChildSa(u32),
}

impl core::fmt::Display for Exchange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Exchange::MainMode => write!(f, "Main Mode"),
            Exchange::AggressiveMode => write!(f, "Aggressive Mode"),
            Exchange::QuickMode(id) => write!(f, "Quick Mode {id:08x}"),
            Exchange::Informational => write!(f, "Informational"),
            Exchange::IkeSaInit => write!(f, "IKE_SA_INIT"),
            Exchange::IkeAuth => write!(f, "IKE_AUTH"),
            Exchange::CreateChildSa(id) => write!(f, "CREATE_CHILD_SA {id}"),
        }
    }
}

/// Why an IKE SA or a child went down or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The peer sent a Delete.
    DeletedByPeer,
    /// We deleted it (API call).
    DeletedLocally,
    /// No answer after every retransmission.
    Timeout,
    /// DPD got no answer.
    DpdTimeout,
    /// Its lifetime ran out (and it was not rekeyed).
    Expired,
    /// Replaced by a newer SA (rekey, make-before-break).
    Rekeyed,
    /// The peer said INITIAL-CONTACT: it restarted and has forgotten it.
    PeerRestarted,
    /// The peer refused with this notification.
    PeerNotify(NotifyType),
    /// We refused (proposal, proxy-ID, authentication).
    Refused(NotifyType),
}

/// An event for the owner of a [`crate::Peer`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The ISAKMP SA is established.
    IkeSaUp {
        /// Initiator cookie.
        icookie: [u8; 8],
        /// Responder cookie.
        rcookie: [u8; 8],
        /// We initiated it.
        initiator: bool,
        /// Negotiated proposal (`aes128-sha1-modp2048`).
        proposal: String,
        /// NAT detected (or forced): UDP encapsulation on port 4500.
        nat: bool,
        /// Our own address is translated (RFC 3947 §3.2): we send the
        /// NAT-keepalives (RFC 3948 §2.3).
        behind_nat: bool,
        /// Our address in use (port 4500 after floating).
        local: SocketAddr,
        /// The peer's address in use.
        remote: SocketAddr,
    },
    /// A phase 1 started to replace the ISAKMP SA failed; the current
    /// one stays until its lifetime ends.
    Phase1RekeyFailed {
        /// Why.
        reason: Reason,
    },
    /// A phase 1 started from the peer's address (its own rekey, or a
    /// stranger using that address) ended without authenticating while
    /// an ISAKMP SA exists; that SA carries on.
    PeerPhase1Failed {
        /// Why.
        reason: Reason,
    },
    /// The ISAKMP SA is gone (or never came up).
    IkeSaDown {
        /// Why.
        reason: Reason,
    },
    /// Responder: QM2 is sent, so the keys are known — and the initiator
    /// may send on them as soon as it has QM2 (strongSwan does, before
    /// its QM3 has reached us). Install the inbound SA now; `ChildSaUp`
    /// with the same SPIs follows when QM3 arrives, or `ChildSaDown` if it
    /// never does.
    ChildSaInbound(Box<ChildSa>),
    /// A child SA pair is ready to install.
    ChildSaUp(Box<ChildSa>),
    /// A child SA pair is gone.
    ChildSaDown {
        /// Its proxy-ID.
        proxy_id: ProxyId,
        /// Inbound SPI.
        spi_in: u32,
        /// Outbound SPI.
        spi_out: u32,
        /// Why.
        reason: Reason,
    },
    /// A Quick Mode we initiated failed.
    ChildSaFailed {
        /// The proxy-ID asked for.
        proxy_id: ProxyId,
        /// Why.
        reason: Reason,
    },
    /// No proposal of the peer was acceptable, or the peer accepted none
    /// of ours; says what was offered.
    ProposalMismatch {
        /// Exchange.
        exchange: Exchange,
        /// What the peer proposed or chose; when `peer_refused`, what we
        /// proposed. In strongSwan notation.
        proposed: Vec<String>,
        /// What we are configured with.
        configured: Vec<String>,
        /// The peer answered NO-PROPOSAL-CHOSEN to our proposals.
        peer_refused: bool,
    },
    /// A Quick Mode asked for a proxy-ID we are not configured with
    /// (answered with INVALID-ID-INFORMATION).
    ProxyIdMismatch {
        /// Message ID of the Quick Mode.
        message_id: u32,
        /// What the peer proposed, from our side (local = its IDcr).
        proposed: String,
        /// The proxy-IDs configured for this peer.
        configured: Vec<ProxyId>,
    },
    /// Authentication failed (wrong pre-shared key or identity).
    AuthFailed {
        /// Exchange.
        exchange: Exchange,
        /// Detail.
        detail: String,
    },
    /// DPD got no answer; the IKE SA is considered dead.
    DpdTimeout,
    /// A responder's lifetime not adopted (RFC 2407 §4.6.3.1): longer
    /// than the one proposed, or a RESPONDER-LIFETIME notification that is
    /// malformed or names another SA. The exchange goes on with the
    /// lifetime it had.
    LifetimeIgnored {
        /// Exchange.
        exchange: Exchange,
        /// What was not adopted and why, in words.
        detail: String,
    },
    /// A notification from the peer that is not handled otherwise.
    Notify {
        /// Type.
        kind: NotifyType,
        /// Exchange it came in.
        exchange: Exchange,
    },
}
