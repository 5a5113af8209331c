//! The fixed fields of the Encrypted Fragment payload (SKF, RFC 7383
//! §2.5). The Encrypted payload (SK, RFC 7296 §3.14) has no fixed fields
//! beyond the generic header: its body is IV, ciphertext and ICV, which
//! [`crate::v2::sk`] reads.
//!
//! ```text
//! SKF  0..2 fragment number  2..4 total fragments  4.. IV, ciphertext, ICV
//! ```

use super::{be16, need, Error, Result};

/// Bytes of SKF fields before the IV.
pub const ENCRYPTED_FRAGMENT_FIXED: usize = 4;

/// An Encrypted Fragment payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedFragment<'a> {
    /// This fragment's number, from 1 (RFC 7383 §2.5).
    pub number: u16,
    /// How many fragments the message was cut into.
    pub total: u16,
    /// The next-payload field: the first inner payload's type in fragment
    /// 1, zero in the others (RFC 7383 §2.5).
    pub next: u8,
    /// IV, ciphertext and ICV.
    pub sealed: &'a [u8],
}

impl<'a> EncryptedFragment<'a> {
    /// Reads an SKF body starting at offset `at` of the message; `next` is
    /// its generic header's next-payload field.
    pub fn parse(body: &'a [u8], at: usize, next: u8) -> Result<EncryptedFragment<'a>> {
        need("Encrypted Fragment payload", at, body, ENCRYPTED_FRAGMENT_FIXED)?;
        let (number, total) = (be16(body, 0), be16(body, 2));
        if number == 0 || number > total {
            return Err(Error::BadValue { what: "Encrypted Fragment number", at, value: u32::from(number) });
        }
        if number != 1 && next != 0 {
            return Err(Error::BadValue {
                what: "Encrypted Fragment next payload after the first",
                at,
                value: u32::from(next),
            });
        }
        Ok(EncryptedFragment { number, total, next, sealed: &body[ENCRYPTED_FRAGMENT_FIXED..] })
    }

    /// The fixed fields as they precede the IV (what the AAD and ICV of
    /// the fragment cover after the generic header, RFC 7383 §2.5.3).
    pub fn fixed(&self) -> [u8; ENCRYPTED_FRAGMENT_FIXED] {
        let (n, t) = (self.number.to_be_bytes(), self.total.to_be_bytes());
        [n[0], n[1], t[0], t[1]]
    }

    /// Appends the body to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.fixed());
        out.extend_from_slice(self.sealed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_fields_checked() {
        let body = [0, 1, 0, 3, 0xee];
        let f = EncryptedFragment::parse(&body, 28, 35).unwrap();
        assert_eq!((f.number, f.total, f.next, f.sealed), (1, 3, 35, &[0xee][..]));
        let mut out = Vec::new();
        f.emit(&mut out);
        assert_eq!(out, body);
        assert_eq!(
            EncryptedFragment::parse(&[0, 0, 0, 3], 28, 0),
            Err(Error::BadValue { what: "Encrypted Fragment number", at: 28, value: 0 })
        );
        assert!(EncryptedFragment::parse(&[0, 4, 0, 3], 28, 0).is_err());
        assert!(EncryptedFragment::parse(&[0, 2, 0, 3], 28, 35).is_err());
        assert!(EncryptedFragment::parse(&[0, 2, 0, 3], 28, 0).is_ok());
        assert!(matches!(EncryptedFragment::parse(&[0, 2, 0], 28, 0), Err(Error::Truncated { .. })));
    }
}
