//! The ESP transform suites esprit implements, their names, and the frame
//! space they cost.
//!
//! | suite | RFC | key material | IV | ICV | payload aligned to |
//! |---|---|---|---|---|---|
//! | `aes128gcm16` | RFC 4106 | 16 + 4-byte salt | 8 | 16 | 4 |
//! | `aes256gcm16` | RFC 4106 | 32 + 4-byte salt | 8 | 16 | 4 |
//! | `aes128-sha1` | RFC 3602 + RFC 2404 | 16, integrity 20 | 16 | 12 | 16 |
//! | `aes256-sha1` | RFC 3602 + RFC 2404 | 32, integrity 20 | 16 | 12 | 16 |
//! | `aes128-sha256` | RFC 3602 + RFC 4868 | 16, integrity 32 | 16 | 16 | 16 |
//! | `aes256-sha256` | RFC 3602 + RFC 4868 | 32, integrity 32 | 16 | 16 | 16 |
//!
//! Names are the ones operators and IKE configurations use (strongSwan's
//! proposal keywords, ScreenOS's `sha` for SHA-1). DES, 3DES, MD5 and a
//! CBC cipher without integrity are refused with an error that cites
//! RFC 8221, which forbids or deprecates them.
//!
//! [`Suite`] is the one ESP suite type of the workspace: the ESP core sizes
//! frames and builds contexts from it, IKE proposes and accepts it (its
//! IPsec DOI numbers, [`Suite::ikev1_transform_id`]), the configuration
//! resolves proposals to it and the control API carries it (as its name).
//! Adding a suite starts with a variant here; every match on it then names
//! the places that must learn it.
//!
//! [`DhGroup`] is, likewise, the one Diffie-Hellman group type of IKE and
//! the configuration, and [`Identity`] the one IKE identity type of the
//! configuration and both IKE versions.
//!
//! This crate has no dependencies beyond `thiserror`, so the control
//! crates share the type without the fast path's cryptography.

use core::fmt;
use core::str::FromStr;

use thiserror::Error;

mod dh;
mod identity;

pub use dh::DhGroup;
pub use identity::Identity;

/// Outer IPv4 header (RFC 791), no options.
pub const IPV4_HEADER_LEN: usize = 20;
/// UDP header of ESP-in-UDP (RFC 3948 §2.1).
pub const UDP_HEADER_LEN: usize = 8;
/// SPI + sequence number (RFC 4303 §2).
pub const ESP_HEADER_LEN: usize = 8;
/// Pad Length + Next Header (RFC 4303 §2.4, §2.6).
pub const ESP_TRAILER_LEN: usize = 2;

/// Largest headroom any suite needs before the inner packet: outer IPv4 (20)
/// + UDP (8) + ESP header (8) + CBC IV (16) = 52 bytes.
pub const MAX_HEADROOM: usize = IPV4_HEADER_LEN + UDP_HEADER_LEN + ESP_HEADER_LEN + 16;
/// Largest tailroom any suite needs after the inner packet: CBC padding
/// (up to 15) + pad length + next header (2) + 16-byte ICV = 33 bytes.
pub const MAX_TAILROOM: usize = 15 + ESP_TRAILER_LEN + 16;

/// An ESP transform: cipher, integrity and their sizes.
///
/// Not `#[non_exhaustive]` on purpose: a new suite must break every
/// exhaustive match on it (the ESP contexts, the configuration words), so
/// that none of them forgets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suite {
    /// AES-128-GCM, 16-byte ICV (RFC 4106).
    Aes128Gcm16,
    /// AES-256-GCM, 16-byte ICV (RFC 4106).
    Aes256Gcm16,
    /// AES-128-CBC (RFC 3602) with HMAC-SHA1-96 (RFC 2404).
    Aes128CbcSha1,
    /// AES-256-CBC (RFC 3602) with HMAC-SHA1-96 (RFC 2404).
    Aes256CbcSha1,
    /// AES-128-CBC (RFC 3602) with HMAC-SHA-256-128 (RFC 4868).
    Aes128CbcSha256,
    /// AES-256-CBC (RFC 3602) with HMAC-SHA-256-128 (RFC 4868).
    Aes256CbcSha256,
}

impl Suite {
    /// Every suite, in the order of the table above.
    pub const ALL: [Suite; 6] = [
        Suite::Aes128Gcm16,
        Suite::Aes256Gcm16,
        Suite::Aes128CbcSha1,
        Suite::Aes256CbcSha1,
        Suite::Aes128CbcSha256,
        Suite::Aes256CbcSha256,
    ];

    /// The canonical name (what `Display` prints and `FromStr` reads back).
    pub const fn name(self) -> &'static str {
        match self {
            Suite::Aes128Gcm16 => "aes128gcm16",
            Suite::Aes256Gcm16 => "aes256gcm16",
            Suite::Aes128CbcSha1 => "aes128-sha1",
            Suite::Aes256CbcSha1 => "aes256-sha1",
            Suite::Aes128CbcSha256 => "aes128-sha256",
            Suite::Aes256CbcSha256 => "aes256-sha256",
        }
    }

    /// True for the combined-mode (AEAD) suites.
    pub const fn is_aead(self) -> bool {
        matches!(self, Suite::Aes128Gcm16 | Suite::Aes256Gcm16)
    }

    /// AES key length in bytes (without the GCM salt).
    pub const fn aes_key_len(self) -> usize {
        match self {
            Suite::Aes128Gcm16 | Suite::Aes128CbcSha1 | Suite::Aes128CbcSha256 => 16,
            Suite::Aes256Gcm16 | Suite::Aes256CbcSha1 | Suite::Aes256CbcSha256 => 32,
        }
    }

    /// Length of the encryption key material IKE hands over: for GCM the
    /// AES key followed by the 4-byte salt (RFC 4106 §8.1), for CBC the
    /// AES key.
    pub const fn encr_key_len(self) -> usize {
        if self.is_aead() {
            self.aes_key_len() + 4
        } else {
            self.aes_key_len()
        }
    }

    /// Length of the integrity key: 0 for GCM, 20 for HMAC-SHA1-96
    /// (RFC 2404 §3), 32 for HMAC-SHA-256-128 (RFC 4868 §2.1.1).
    pub const fn integ_key_len(self) -> usize {
        match self {
            Suite::Aes128Gcm16 | Suite::Aes256Gcm16 => 0,
            Suite::Aes128CbcSha1 | Suite::Aes256CbcSha1 => 20,
            Suite::Aes128CbcSha256 | Suite::Aes256CbcSha256 => 32,
        }
    }

    /// Bytes of IV carried in each packet: 8 for GCM (RFC 4106 §3.1),
    /// 16 for CBC (RFC 3602 §3).
    pub const fn iv_len(self) -> usize {
        if self.is_aead() {
            8
        } else {
            16
        }
    }

    /// Bytes of ICV at the end of each packet.
    pub const fn icv_len(self) -> usize {
        match self {
            Suite::Aes128CbcSha1 | Suite::Aes256CbcSha1 => 12,
            Suite::Aes128Gcm16 | Suite::Aes256Gcm16 | Suite::Aes128CbcSha256 | Suite::Aes256CbcSha256 => 16,
        }
    }

    /// What the encrypted part (payload + padding + trailer) is padded to:
    /// the AES block for CBC (RFC 3602 §2.4), 4 bytes for GCM, which is a
    /// stream mode but ESP still wants the trailer 32-bit aligned
    /// (RFC 4303 §2.4, RFC 4106 §3.2).
    pub const fn align(self) -> usize {
        if self.is_aead() {
            4
        } else {
            16
        }
    }

    /// Bytes written before the inner packet: outer IPv4 (20), the UDP
    /// header when `udp_encap` (RFC 3948), the ESP header (8) and the IV.
    pub const fn headroom(self, udp_encap: bool) -> usize {
        IPV4_HEADER_LEN + if udp_encap { UDP_HEADER_LEN } else { 0 } + ESP_HEADER_LEN + self.iv_len()
    }

    /// Padding (RFC 4303 §2.4) for an inner packet of `inner_len` bytes:
    /// the fewest bytes that make `inner_len + pad + 2` a multiple of
    /// [`Suite::align`].
    pub const fn pad_len(self, inner_len: usize) -> usize {
        let a = self.align();
        (a - (inner_len + ESP_TRAILER_LEN) % a) % a
    }

    /// Bytes written after an inner packet of `inner_len` bytes: padding,
    /// pad length, next header and ICV.
    pub const fn tailroom(self, inner_len: usize) -> usize {
        self.pad_len(inner_len) + ESP_TRAILER_LEN + self.icv_len()
    }

    /// The most any inner packet needs after it: 21 bytes for GCM, 29 for
    /// CBC + SHA-1, 33 for CBC + SHA-256.
    pub const fn max_tailroom(self) -> usize {
        self.align() - 1 + ESP_TRAILER_LEN + self.icv_len()
    }

    /// Length of the outer IPv4 packet that carries an inner packet of
    /// `inner_len` bytes.
    pub const fn outer_len(self, inner_len: usize, udp_encap: bool) -> usize {
        self.headroom(udp_encap) + inner_len + self.tailroom(inner_len)
    }

    /// The largest inner packet whose outer packet fits in `outer_mtu`
    /// bytes: the tunnel interface MTU to advertise (0 when nothing fits).
    pub const fn max_inner_len(self, outer_mtu: usize, udp_encap: bool) -> usize {
        let fixed = self.headroom(udp_encap) + ESP_TRAILER_LEN + self.icv_len();
        if outer_mtu < fixed {
            return 0;
        }
        // The encrypted part (inner + pad + trailer) must be a multiple of
        // the alignment, so round the room it has down to one.
        let room = outer_mtu - self.headroom(udp_encap) - self.icv_len();
        let aligned = room - room % self.align();
        aligned.saturating_sub(ESP_TRAILER_LEN)
    }

    /// IPsec DOI ESP transform ID (RFC 2407 §4.4.4): ESP_AES = 12
    /// (RFC 3602 §5.1), ESP_AES_GCM_16 = 20 (RFC 4106 §9).
    pub const fn ikev1_transform_id(self) -> u8 {
        if self.is_aead() {
            20
        } else {
            12
        }
    }

    /// Key Length attribute (RFC 2407 §4.5), in bits, salt excluded.
    pub const fn key_bits(self) -> u16 {
        (self.aes_key_len() * 8) as u16
    }

    /// IPsec DOI Authentication Algorithm attribute (RFC 2407 §4.5):
    /// HMAC-SHA = 2, HMAC-SHA2-256 = 5 (IANA IPsec DOI registry, for RFC 4868); none for GCM, which
    /// carries its own integrity (RFC 4106 §9).
    pub const fn ikev1_auth_alg(self) -> Option<u16> {
        match self {
            Suite::Aes128CbcSha1 | Suite::Aes256CbcSha1 => Some(2),
            Suite::Aes128CbcSha256 | Suite::Aes256CbcSha256 => Some(5),
            Suite::Aes128Gcm16 | Suite::Aes256Gcm16 => None,
        }
    }

    /// The suite of an IPsec DOI transform: its ID, Key Length and
    /// Authentication Algorithm attributes (None when absent).
    pub fn from_ikev1_transform(id: u8, key_bits: Option<u64>, auth: Option<u64>) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| {
            s.ikev1_transform_id() == id
                && Some(u64::from(s.key_bits())) == key_bits
                && s.ikev1_auth_alg().map(u64::from) == auth
        })
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a suite name was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SuiteError {
    /// A known algorithm that RFC 8221 forbids or deprecates for ESP.
    #[error("ESP suite `{name}`: {algorithm} is refused ({rule})")]
    Refused {
        /// The name as given.
        name: String,
        /// The offending algorithm.
        algorithm: &'static str,
        /// The RFC 8221 rule that applies.
        rule: &'static str,
    },
    /// A name esprit does not know.
    #[error(
        "unknown ESP suite `{0}` (known: aes128gcm16, aes256gcm16, aes128-sha1, aes256-sha1, \
         aes128-sha256, aes256-sha256)"
    )]
    Unknown(String),
}

impl SuiteError {
    /// The name that was not accepted, as given.
    pub fn name(&self) -> &str {
        match self {
            SuiteError::Refused { name, .. } | SuiteError::Unknown(name) => name,
        }
    }
}

impl FromStr for Suite {
    type Err = SuiteError;

    /// Reads a suite name, case-insensitively. Accepted spellings:
    /// `aes128gcm16` (also `aes128gcm128`, `aes128-gcm16`, `aes128gcm`),
    /// `aes256gcm16` (likewise), `aes128-sha1` (also `aes128-sha`,
    /// `aes128-sha1_96`), `aes128-sha256` (also `aes128-sha2_256`,
    /// `aes128-sha256_128`), and the same for `aes256`. An optional `esp-`
    /// prefix (ScreenOS proposal style) is ignored.
    fn from_str(s: &str) -> Result<Suite, SuiteError> {
        let lower = s.trim().to_ascii_lowercase();
        let name = lower.strip_prefix("esp-").unwrap_or(&lower);
        let refused = |algorithm, rule| SuiteError::Refused { name: s.to_string(), algorithm, rule };
        let tokens: Vec<&str> = name.split(['-', '_', '/']).collect();
        // RFC 8221 §5: ENCR_DES MUST NOT, ENCR_3DES SHOULD NOT (being phased
        // out); esprit implements neither.
        if tokens.iter().any(|t| t.starts_with("3des") || t.starts_with("tripledes")) {
            return Err(refused("3DES", "RFC 8221 §5: ENCR_3DES SHOULD NOT be used and is being phased out"));
        }
        if tokens.iter().any(|t| t.starts_with("des")) {
            return Err(refused("DES", "RFC 8221 §5: ENCR_DES MUST NOT be used"));
        }
        // RFC 8221 §6: AUTH_HMAC_MD5_96 MUST NOT.
        if tokens.iter().any(|t| t.starts_with("md5")) {
            return Err(refused("HMAC-MD5-96", "RFC 8221 §6: AUTH_HMAC_MD5_96 MUST NOT be used"));
        }
        let suite = match name {
            "aes128gcm16" | "aes128gcm128" | "aes128-gcm16" | "aes128-gcm128" | "aes128gcm"
            | "aes128-gcm" => Suite::Aes128Gcm16,
            "aes256gcm16" | "aes256gcm128" | "aes256-gcm16" | "aes256-gcm128" | "aes256gcm"
            | "aes256-gcm" => Suite::Aes256Gcm16,
            "aes128-sha1" | "aes128-sha" | "aes128-sha1_96" => Suite::Aes128CbcSha1,
            "aes256-sha1" | "aes256-sha" | "aes256-sha1_96" => Suite::Aes256CbcSha1,
            "aes128-sha256" | "aes128-sha2_256" | "aes128-sha256_128" => Suite::Aes128CbcSha256,
            "aes256-sha256" | "aes256-sha2_256" | "aes256-sha256_128" => Suite::Aes256CbcSha256,
            // RFC 8221 §6: AUTH_NONE only with a combined-mode cipher; a CBC
            // cipher alone gives no integrity (RFC 8221 §4 on ESP without
            // authentication).
            "aes128" | "aes256" | "aes128-null" | "aes256-null" | "aes128-none" | "aes256-none"
            | "aes128cbc" | "aes256cbc" | "aes128-cbc" | "aes256-cbc" => {
                return Err(refused(
                    "AES-CBC without integrity",
                    "RFC 8221 §6: AUTH_NONE MUST NOT be used with a non-AEAD cipher",
                ))
            }
            _ => return Err(SuiteError::Unknown(s.to_string())),
        };
        Ok(suite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Suite::ALL {
            assert_eq!(s.name().parse::<Suite>().unwrap(), s);
            assert_eq!(s.to_string().to_uppercase().parse::<Suite>().unwrap(), s);
        }
        assert_eq!("esp-aes128-sha".parse::<Suite>().unwrap(), Suite::Aes128CbcSha1);
        assert_eq!("aes256gcm128".parse::<Suite>().unwrap(), Suite::Aes256Gcm16);
        assert_eq!(" aes256-sha2_256 ".parse::<Suite>().unwrap(), Suite::Aes256CbcSha256);
    }

    #[test]
    fn weak_algorithms_refused_citing_rfc8221() {
        for name in
            ["3des-sha1", "esp-3des-md5", "des-sha1", "aes128-md5", "aes128-null", "aes256", "aes128-cbc"]
        {
            let e = name.parse::<Suite>().unwrap_err();
            assert!(matches!(e, SuiteError::Refused { .. }), "{name}: {e:?}");
            assert!(e.to_string().contains("RFC 8221"), "{e}");
            assert!(e.to_string().contains(name), "{e}");
        }
        for name in ["", "aes192gcm16", "chacha20poly1305", "aes128gcm8", "aes128-sha384"] {
            assert!(matches!(name.parse::<Suite>(), Err(SuiteError::Unknown(_))), "{name}");
        }
    }

    #[test]
    fn sizes() {
        use Suite::*;
        assert_eq!(Aes128Gcm16.headroom(false), 36);
        assert_eq!(Aes128Gcm16.headroom(true), 44);
        assert_eq!(Aes256CbcSha1.headroom(false), 44);
        assert_eq!(Aes256CbcSha256.headroom(true), MAX_HEADROOM);
        assert_eq!(Aes128Gcm16.max_tailroom(), 21);
        assert_eq!(Aes128CbcSha1.max_tailroom(), 29);
        assert_eq!(Aes128CbcSha256.max_tailroom(), MAX_TAILROOM);
        for s in Suite::ALL {
            assert!(s.headroom(true) <= MAX_HEADROOM && s.max_tailroom() <= MAX_TAILROOM);
            for len in 0..200 {
                let pad = s.pad_len(len);
                assert!(pad < s.align());
                assert_eq!((len + pad + 2) % s.align(), 0);
                assert!(s.tailroom(len) <= s.max_tailroom());
                // The whole ESP packet stays 32-bit aligned (RFC 4303 §2.4).
                assert_eq!((s.outer_len(len, false) - IPV4_HEADER_LEN) % 4, 0);
            }
        }
    }

    #[test]
    fn tunnel_mtu() {
        for s in Suite::ALL {
            for udp in [false, true] {
                for mtu in 0..1600 {
                    let inner = s.max_inner_len(mtu, udp);
                    if inner > 0 {
                        assert!(s.outer_len(inner, udp) <= mtu, "{s} {mtu}");
                    }
                    // One byte more no longer fits.
                    if s.headroom(udp) + s.icv_len() + 2 <= mtu {
                        assert!(s.outer_len(inner + 1, udp) > mtu, "{s} {mtu} {inner}");
                    }
                }
            }
        }
        // 1500-byte path, the numbers an operator sees.
        assert_eq!(Suite::Aes128Gcm16.max_inner_len(1500, false), 1446);
        assert_eq!(Suite::Aes128CbcSha1.max_inner_len(1500, false), 1438);
    }

    #[test]
    fn ikev1_numbers() {
        let table: Vec<_> =
            Suite::ALL.iter().map(|s| (s.ikev1_transform_id(), s.key_bits(), s.ikev1_auth_alg())).collect();
        assert_eq!(
            table,
            [
                (20, 128, None),
                (20, 256, None),
                (12, 128, Some(2)),
                (12, 256, Some(2)),
                (12, 128, Some(5)),
                (12, 256, Some(5)),
            ]
        );
        for s in Suite::ALL {
            let auth = s.ikev1_auth_alg().map(u64::from);
            assert_eq!(
                Suite::from_ikev1_transform(s.ikev1_transform_id(), Some(s.key_bits().into()), auth),
                Some(s)
            );
        }
        // ESP_AES without a Key Length, or GCM with an HMAC: no suite.
        assert_eq!(Suite::from_ikev1_transform(12, None, Some(2)), None);
        assert_eq!(Suite::from_ikev1_transform(20, Some(128), Some(2)), None);
        assert_eq!(Suite::from_ikev1_transform(3, Some(128), Some(2)), None);
    }
}
