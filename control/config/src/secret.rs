//! Secrets of the configuration: pre-shared keys and manual ESP keys.
//!
//! Guarantee: a [`Secret`] never shows its value through `Debug` or
//! `Display` (both print `<secret>`), and its memory is zeroed when it is
//! dropped. The only ways to read it are [`Secret::expose`] (for IKE and for
//! writing the configuration file) and [`Secret::to_bytes`] for hex keys.

use core::fmt;

use zeroize::Zeroizing;

/// A secret string: a `preshare` key as given, or a manual ESP key as
/// lowercase hex.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret itself. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret decoded from hex (manual keys), zeroed on drop. `None` if
    /// it is not hex (pre-shared keys).
    pub fn to_bytes(&self) -> Option<Zeroizing<Vec<u8>>> {
        hex::decode(self.0.as_bytes()).ok().map(Zeroizing::new)
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("#ABC123");
        assert_eq!(format!("{s:?}"), "<secret>");
        assert_eq!(format!("{s}"), "<secret>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(<secret>)");
        assert_eq!(s.expose(), "#ABC123");
        assert!(s.to_bytes().is_none());
        assert_eq!(Secret::new("0aff").to_bytes().unwrap().as_slice(), &[0x0a, 0xff]);
    }
}
