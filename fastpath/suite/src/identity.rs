//! The IKE identity: what a gateway's `local-id`, `peer-id`, `dynamic` and
//! a dialup user's `ike-id` name, and what IKEv1's and IKEv2's ID payloads
//! carry. One type for the configuration and both IKE versions; each IKE
//! version encodes it in its own ID payload (RFC 2407 §4.6.2.1, RFC 7296
//! §3.5), whose type numbers for these four kinds happen to agree.

use core::fmt;
use std::net::IpAddr;

/// An IKE identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_IPV4_ADDR / ID_IPV6_ADDR.
    Address(IpAddr),
    /// ID_FQDN.
    Fqdn(String),
    /// ID_USER_FQDN (IKEv1), ID_RFC822_ADDR (IKEv2): `user@fqdn`.
    UserFqdn(String),
    /// ID_KEY_ID: opaque octets.
    KeyId(Vec<u8>),
}

impl Identity {
    /// Types an identity from an operator's text, as ScreenOS does for
    /// `local-id`, `peer-id` and `dynamic`: an IP address, else `user@fqdn`
    /// when it contains `@`, else an FQDN.
    pub fn from_text(text: &str) -> Identity {
        if let Ok(a) = text.parse() {
            Identity::Address(a)
        } else if text.contains('@') {
            Identity::UserFqdn(text.into())
        } else {
            Identity::Fqdn(text.into())
        }
    }

    /// The ID type number, the same in IKEv1 (RFC 2407 §4.6.2.1) and IKEv2
    /// (RFC 7296 §3.5) for these kinds.
    pub fn id_type(&self) -> u8 {
        match self {
            Identity::Address(IpAddr::V4(_)) => 1,
            Identity::Fqdn(_) => 2,
            Identity::UserFqdn(_) => 3,
            Identity::Address(IpAddr::V6(_)) => 5,
            Identity::KeyId(_) => 11,
        }
    }

    /// The identification data, as carried in an ID payload.
    pub fn data(&self) -> Vec<u8> {
        match self {
            Identity::Address(IpAddr::V4(a)) => a.octets().to_vec(),
            Identity::Address(IpAddr::V6(a)) => a.octets().to_vec(),
            Identity::Fqdn(s) | Identity::UserFqdn(s) => s.as_bytes().to_vec(),
            Identity::KeyId(k) => k.clone(),
        }
    }
}

/// The operator's words: the address or name as typed; a key ID in
/// strongSwan's `@#` hex notation.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Address(a) => write!(f, "{a}"),
            Identity::UserFqdn(s) | Identity::Fqdn(s) => f.write_str(s),
            Identity::KeyId(k) => {
                f.write_str("@#")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_typed_as_screenos_does() {
        assert_eq!(Identity::from_text("192.0.2.7"), Identity::Address("192.0.2.7".parse().unwrap()));
        assert_eq!(Identity::from_text("2001:db8::1").id_type(), 5);
        assert_eq!(Identity::from_text("alice@example.net"), Identity::UserFqdn("alice@example.net".into()));
        assert_eq!(Identity::from_text("gw.example.net"), Identity::Fqdn("gw.example.net".into()));
    }

    #[test]
    fn wire_form_and_words() {
        let a = Identity::Address("198.51.100.1".parse().unwrap());
        assert_eq!((a.id_type(), a.data()), (1, vec![198, 51, 100, 1]));
        let k = Identity::KeyId(vec![0xde, 0xad]);
        assert_eq!((k.id_type(), k.data(), k.to_string()), (11, vec![0xde, 0xad], "@#dead".to_string()));
        assert_eq!(Identity::UserFqdn("u@x".into()).id_type(), 3);
    }
}
