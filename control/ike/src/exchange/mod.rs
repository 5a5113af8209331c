//! One file per exchange (strongSwan libcharon style): each adds the
//! handlers of its messages to [`crate::Peer`].

pub(crate) mod aggressive_mode;
pub(crate) mod informational;
pub(crate) mod main_mode;
pub(crate) mod phase1;
pub(crate) mod quick_mode;
pub(crate) mod responder_lifetime;
