//! UDP encapsulation of ESP for NAT traversal (RFC 3948 §2): what a UDP
//! payload on port 4500 is.
//!
//! * ESP: the first four bytes are the (non-zero) SPI;
//! * IKE: the first four bytes are the zero "non-ESP marker" (§2.2), the IKE
//!   message follows;
//! * NAT-keepalive: exactly one byte, 0xFF (§2.3).
//!
//! The XDP program makes the same decision in C to send IKE to the kernel
//! and ESP to the fast path; this is the Rust side of that rule.

/// The UDP port for IKE and ESP once NAT-T has floated (RFC 3947 §4).
pub const NAT_T_PORT: u16 = 4500;
/// The IKE port (RFC 2408 / RFC 7296).
pub const IKE_PORT: u16 = 500;
/// Length of the non-ESP marker.
pub const NON_ESP_MARKER_LEN: usize = 4;

/// What a UDP-4500 payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encapsulated {
    /// ESP starting at payload offset 0.
    Esp,
    /// IKE starting at payload offset 4 (after the non-ESP marker).
    Ike,
    /// A one-byte NAT-keepalive.
    Keepalive,
    /// Too short to be any of them (1-3 bytes other than a keepalive,
    /// or an empty payload).
    Invalid,
}

/// Classifies the payload of a UDP datagram to or from port 4500.
pub fn classify(payload: &[u8]) -> Encapsulated {
    match payload {
        [0xff] => Encapsulated::Keepalive,
        [0, 0, 0, 0, ..] => Encapsulated::Ike,
        [_, _, _, _, ..] => Encapsulated::Esp,
        _ => Encapsulated::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(&[0xff]), Encapsulated::Keepalive);
        assert_eq!(classify(&[0, 0, 0, 0, 0x12]), Encapsulated::Ike);
        assert_eq!(classify(&[0, 0, 0, 1, 0, 0, 0, 1]), Encapsulated::Esp);
        assert_eq!(classify(&[]), Encapsulated::Invalid);
        assert_eq!(classify(&[0, 0, 0]), Encapsulated::Invalid);
        assert_eq!(classify(&[0xfe]), Encapsulated::Invalid);
    }
}
