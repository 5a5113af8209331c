//! Identification payload (RFC 2407 §4.6.2):
//!
//! ```text
//!  0 ID type   1 protocol ID   2..4 port   4.. identification data
//! ```
//!
//! Phase 1 carries the peer's identity; Quick Mode carries the proxy-ID
//! as IDci/IDcr (ID_IPV4_ADDR_SUBNET = address and mask, RFC 2407 §4.6.2.5).

use super::{be16, need, Result};

/// ID types (RFC 2407 §4.6.2.1).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdType {
    Ipv4Addr,
    Fqdn,
    UserFqdn,
    Ipv4AddrSubnet,
    Ipv6Addr,
    Ipv6AddrSubnet,
    Ipv4AddrRange,
    Ipv6AddrRange,
    KeyId,
    Other(u8),
}

impl IdType {
    /// Wire value.
    pub fn value(self) -> u8 {
        match self {
            IdType::Ipv4Addr => 1,
            IdType::Fqdn => 2,
            IdType::UserFqdn => 3,
            IdType::Ipv4AddrSubnet => 4,
            IdType::Ipv6Addr => 5,
            IdType::Ipv6AddrSubnet => 6,
            IdType::Ipv4AddrRange => 7,
            IdType::Ipv6AddrRange => 8,
            IdType::KeyId => 11,
            IdType::Other(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_value(v: u8) -> IdType {
        match v {
            1 => IdType::Ipv4Addr,
            2 => IdType::Fqdn,
            3 => IdType::UserFqdn,
            4 => IdType::Ipv4AddrSubnet,
            5 => IdType::Ipv6Addr,
            6 => IdType::Ipv6AddrSubnet,
            7 => IdType::Ipv4AddrRange,
            8 => IdType::Ipv6AddrRange,
            11 => IdType::KeyId,
            o => IdType::Other(o),
        }
    }
}

/// An ID payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdPayload<'a> {
    /// ID type.
    pub id_type: IdType,
    /// IP protocol (0 = any).
    pub protocol: u8,
    /// Port (0 = any).
    pub port: u16,
    /// Identification data.
    pub data: &'a [u8],
}

impl<'a> IdPayload<'a> {
    /// Parses an ID body.
    pub fn parse(body: &'a [u8]) -> Result<IdPayload<'a>> {
        need("ID payload", body, 4)?;
        Ok(IdPayload {
            id_type: IdType::from_value(body[0]),
            protocol: body[1],
            port: be16(body, 2),
            data: &body[4..],
        })
    }

    /// Writes the body.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = vec![self.id_type.value(), self.protocol];
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(self.data);
        out
    }
}
