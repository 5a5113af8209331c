//! Certificate authentication for IKE_AUTH (RFC 7296 §2.15, §3.6, §3.7)
//! with the Digital Signature method (RFC 7427): what a [`CertAuth`]
//! holds, how our AUTH is signed, and the checks a peer's CERT and AUTH
//! pass, in order:
//!
//! 1. AUTH method 14, Digital Signature (RFC 7427 §3); RSA Digital
//!    Signature (1, PKCS#1 v1.5 with SHA-1) and the fixed-curve ECDSA
//!    methods (9-11) are refused;
//! 2. at most [`MAX_CERTS`] X.509 CERT payloads of [`MAX_CERT_LEN`] bytes,
//!    the first the end entity (§3.6), the rest intermediates;
//! 3. a path from the end entity to a configured CA, each certificate
//!    within its validity at the caller's wall-clock time;
//! 4. keyUsage, when present, with digitalSignature (RFC 5280 §4.2.1.3);
//! 5. the ID payload held by the certificate: ID_DER_ASN1_DN its subject
//!    byte for byte; ID_FQDN, ID_RFC822_ADDR, ID_IPV4_ADDR, ID_IPV6_ADDR
//!    a subjectAltName entry of that kind (RFC 4945 §3.1); any other ID
//!    type is refused;
//! 6. the AUTH signature over the signed octets (§2.15) with the
//!    certificate's key, in the algorithm its AlgorithmIdentifier names.
//!
//! Each failure is a [`CertAuthError`] that says which check failed; the
//! exchange answers all of them with AUTHENTICATION_FAILED (§2.21.2).
//!
//! Library: chains and signatures are checked by rustls-webpki over
//! ring, the verifier rustls uses: maintained, no OpenSSL, no unsafe of
//! our own, RSA PKCS#1 v1.5 / PSS and ECDSA P-256/P-384 with SHA-2, and
//! a check of each signature's AlgorithmIdentifier against the key.
//! Signing is ring's (the same keys, PKCS#8). webpki does not expose
//! keyUsage nor rfc822Name / iPAddress SANs, so [`super::x509`] reads
//! those few fields itself. Extended key usage is not enforced: RFC 4945
//! §5.1.3.12 makes it optional, and IKE certificates in the field often
//! carry serverAuth alone.
//!
//! Revocation (CRLs, OCSP) is not checked; nor is a CERTREQ from the peer
//! read: our whole chain is always sent.

use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::SystemRandom;
use ring::signature::{self as ring_sig, EcdsaKeyPair, KeyPair, RsaKeyPair};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::auth::WireIdentity;
use super::wire::{AuthMethod, IdType};
use super::x509::{general_name, CertFields};

/// CERT payloads taken from a peer (§3.6 sets no bound; this one keeps a
/// stranger's chain small): the end entity and three intermediates.
pub const MAX_CERTS: usize = 4;
/// The largest certificate taken from a peer.
pub const MAX_CERT_LEN: usize = 16 * 1024;

/// RFC 7427 Appendix A: the AlgorithmIdentifiers this side signs with,
/// DER, SEQUENCE included.
mod alg_id {
    /// sha256WithRSAEncryption (1.2.840.113549.1.1.11), NULL parameters.
    pub(super) const RSA_PKCS1_SHA256: &[u8] =
        &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00];
    /// ecdsa-with-SHA256 (1.2.840.10045.4.3.2), no parameters.
    pub(super) const ECDSA_SHA256: &[u8] =
        &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// ecdsa-with-SHA384 (1.2.840.10045.4.3.3), no parameters.
    pub(super) const ECDSA_SHA384: &[u8] =
        &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
}

/// The signature algorithms a peer's AUTH may use (RFC 7427 §3), matched
/// by AlgorithmIdentifier; those that share one (ECDSA on either curve)
/// are told apart by the certificate's key. Their hashes are the ones
/// announced ([`SIGNATURE_HASHES`]); Ed25519 (hash "Identity", RFC 8420)
/// is not among them.
static AUTH_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
];

/// RFC 7427 §4 hash algorithm numbers: SHA2-256, SHA2-384, SHA2-512,
/// the hashes of [`AUTH_ALGS`], announced in SIGNATURE_HASH_ALGORITHMS.
pub const SIGNATURE_HASHES: [u16; 3] = [2, 3, 4];

/// Why a certificate configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertConfigError {
    /// No certificate of our own.
    #[error("no certificate of our own")]
    NoCertificate,
    /// One of our certificates is not X.509 DER that can be used.
    #[error("our certificate {index} is unusable: {why}")]
    BadCertificate {
        /// Its position in the chain (0: the end entity).
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// The private key is not PKCS#8 RSA (2048 bits or more), ECDSA P-256
    /// or ECDSA P-384.
    #[error("private key is not PKCS#8 RSA, ECDSA P-256 or ECDSA P-384")]
    BadKey,
    /// The private key is not the one of our certificate.
    #[error("private key does not belong to our certificate")]
    KeyMismatch,
    /// No trusted CA, or one that is not a certificate.
    #[error("trusted CA {index} is not a usable certificate")]
    BadTrustAnchor {
        /// Its position in the list.
        index: usize,
    },
    /// No trusted CA at all: no peer could ever authenticate.
    #[error("no trusted CA certificate")]
    NoTrustAnchor,
    /// Our identity is not in our certificate: the peer would refuse it.
    #[error("our identity does not match our certificate")]
    LocalIdentity,
}

/// Why a peer's certificate authentication failed: each check its word,
/// for the operator's log. All are AUTHENTICATION_FAILED on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertAuthError {
    /// AUTH by another method than Digital Signature (14).
    #[error("AUTH method {0:?} refused: Digital Signature (RFC 7427) expected")]
    Method(AuthMethod),
    /// No X.509 CERT payload.
    #[error("no certificate sent")]
    NoCertificate,
    /// More CERT payloads than [`MAX_CERTS`], or one longer than
    /// [`MAX_CERT_LEN`].
    #[error("certificates beyond the bound ({MAX_CERTS} of {MAX_CERT_LEN} bytes)")]
    TooMany,
    /// The end-entity certificate could not be read.
    #[error("certificate malformed")]
    Malformed,
    /// No path to a configured CA.
    #[error("certificate not issued by a trusted CA")]
    UntrustedIssuer,
    /// A certificate of the path is past its notAfter.
    #[error("certificate expired")]
    Expired,
    /// A certificate of the path is before its notBefore.
    #[error("certificate not yet valid")]
    NotYetValid,
    /// The path is invalid for another reason.
    #[error("certificate chain invalid: {0}")]
    Chain(&'static str),
    /// keyUsage present without digitalSignature.
    #[error("certificate key usage does not allow digital signatures")]
    KeyUsage,
    /// The ID payload is not held by the certificate.
    #[error("identity does not match the certificate")]
    IdentityMismatch,
    /// The ID payload is not the identity configured for the peer.
    #[error("identity is not the one configured")]
    UnexpectedIdentity,
    /// AUTH names a signature algorithm not supported, or not one for the
    /// certificate's key.
    #[error("signature algorithm not supported")]
    SignatureAlgorithm,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// No wall-clock time to check validity against (the owner never set
    /// one).
    #[error("no wall-clock time to check the certificate against")]
    NoClock,
}

/// The kinds of private key ring signs with here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcdsaP256,
    EcdsaP384,
}

/// Our private key: the PKCS#8 bytes, wiped when dropped, parsed by ring
/// for each signature (one per IKE SA).
#[derive(Clone)]
struct SigningKey {
    pkcs8: Zeroizing<Vec<u8>>,
    kind: KeyKind,
}

impl SigningKey {
    /// Reads a PKCS#8 key; returns it with its public key (as in a
    /// certificate's subjectPublicKey).
    fn parse(pkcs8: Zeroizing<Vec<u8>>) -> Result<(SigningKey, Vec<u8>), CertConfigError> {
        let rng = SystemRandom::new();
        if let Ok(k) = RsaKeyPair::from_pkcs8(&pkcs8) {
            let public = k.public_key().as_ref().to_vec();
            return Ok((SigningKey { pkcs8, kind: KeyKind::Rsa }, public));
        }
        for (kind, alg) in [
            (KeyKind::EcdsaP256, &ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING),
            (KeyKind::EcdsaP384, &ring_sig::ECDSA_P384_SHA384_ASN1_SIGNING),
        ] {
            if let Ok(k) = EcdsaKeyPair::from_pkcs8(alg, &pkcs8, &rng) {
                let public = k.public_key().as_ref().to_vec();
                return Ok((SigningKey { pkcs8, kind }, public));
            }
        }
        Err(CertConfigError::BadKey)
    }

    /// The AUTH data of RFC 7427 §3: the AlgorithmIdentifier's length in
    /// one octet, the AlgorithmIdentifier, the signature over `octets`.
    /// RSA signs PKCS#1 v1.5 with SHA-256, ECDSA with its curve's hash
    /// (RFC 5480 §4), DER Ecdsa-Sig-Value (RFC 7427 §3).
    ///
    /// ring's `SecureRandom` is sealed, so the randomness (RSA blinding,
    /// the ECDSA nonce) is the system's, not the caller's: signatures are
    /// not reproducible, which nothing needs.
    fn sign(&self, octets: &[u8]) -> Option<Vec<u8>> {
        let rng = SystemRandom::new();
        let (alg, sig) = match self.kind {
            KeyKind::Rsa => {
                let k = RsaKeyPair::from_pkcs8(&self.pkcs8).ok()?;
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(&ring_sig::RSA_PKCS1_SHA256, &rng, octets, &mut sig).ok()?;
                (alg_id::RSA_PKCS1_SHA256, sig)
            }
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 => {
                let (alg, id) = if self.kind == KeyKind::EcdsaP256 {
                    (&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING, alg_id::ECDSA_SHA256)
                } else {
                    (&ring_sig::ECDSA_P384_SHA384_ASN1_SIGNING, alg_id::ECDSA_SHA384)
                };
                let k = EcdsaKeyPair::from_pkcs8(alg, &self.pkcs8, &rng).ok()?;
                (id, k.sign(&rng, octets).ok()?.as_ref().to_vec())
            }
        };
        let mut out = Vec::with_capacity(1 + alg.len() + sig.len());
        out.push(u8::try_from(alg.len()).ok()?);
        out.extend_from_slice(alg);
        out.extend_from_slice(&sig);
        Some(out)
    }
}

/// What one side authenticates with by certificate, and whom it trusts.
#[derive(Clone)]
pub struct CertAuth {
    chain: Vec<Vec<u8>>,
    key: SigningKey,
    trusted: Vec<Vec<u8>>,
    cert_request: Vec<u8>,
    local: WireIdentity,
    remote: Option<WireIdentity>,
}

impl core::fmt::Debug for CertAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CertAuth")
            .field("certificates", &self.chain.len())
            .field("key", &self.key.kind)
            .field("trusted", &self.trusted.len())
            .field("local", &self.local)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl CertAuth {
    /// Our `chain` (DER, the end-entity certificate first, then the
    /// intermediates to send), our private key (PKCS#8 DER: RSA of 2048
    /// bits or more, ECDSA P-256 or P-384), the CA certificates a peer's
    /// chain must end at (DER), our identity (held by our certificate)
    /// and the one the peer must show (`None`: any its certificate holds).
    pub fn new(
        chain: Vec<Vec<u8>>,
        pkcs8: Zeroizing<Vec<u8>>,
        trusted: Vec<Vec<u8>>,
        local: WireIdentity,
        remote: Option<WireIdentity>,
    ) -> Result<CertAuth, CertConfigError> {
        let mut ours = None;
        for (index, der) in chain.iter().enumerate() {
            let bad = |why: String| CertConfigError::BadCertificate { index, why };
            webpki::EndEntityCert::try_from(&CertificateDer::from(der.as_slice()))
                .map_err(|e| bad(format!("{e:?}")))?;
            let fields = CertFields::parse(der).map_err(|e| bad(e.to_string()))?;
            ours.get_or_insert(fields);
        }
        let ours = ours.ok_or(CertConfigError::NoCertificate)?;
        let (key, public) = SigningKey::parse(pkcs8)?;
        if ours.public_key().ok() != Some(public.as_slice()) {
            return Err(CertConfigError::KeyMismatch);
        }
        if !holds(&ours, &local) {
            return Err(CertConfigError::LocalIdentity);
        }
        if trusted.is_empty() {
            return Err(CertConfigError::NoTrustAnchor);
        }
        let mut cert_request = Vec::new();
        for (index, der) in trusted.iter().enumerate() {
            let bad = || CertConfigError::BadTrustAnchor { index };
            webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice())).map_err(|_| bad())?;
            // §3.7: a CA is named by the SHA-1 of its SubjectPublicKeyInfo.
            let fields = CertFields::parse(der).map_err(|_| bad())?;
            cert_request.extend_from_slice(&Sha1::digest(fields.spki));
        }
        Ok(CertAuth { chain, key, trusted, cert_request, local, remote })
    }

    /// Our identity.
    pub fn local(&self) -> &WireIdentity {
        &self.local
    }

    /// The identity the peer must show, if one is configured.
    pub fn remote(&self) -> Option<&WireIdentity> {
        self.remote.as_ref()
    }

    /// Our certificates, end entity first, as sent in CERT payloads.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The data of our CERTREQ (§3.7): the SHA-1 hashes of the trusted
    /// CAs' SubjectPublicKeyInfo, concatenated.
    pub fn cert_request(&self) -> &[u8] {
        &self.cert_request
    }

    /// Our AUTH data over `octets` (RFC 7427 §3); `None` if ring refuses
    /// to sign (the key was checked when configured).
    pub(crate) fn sign(&self, octets: &[u8]) -> Option<Vec<u8>> {
        self.key.sign(octets)
    }

    /// The checks of the module doc, on the peer's `certs` (the X.509
    /// CERT payloads in order), its ID payload `id`, its AUTH (`method`,
    /// `data`) over `octets`, at wall-clock time `now`.
    pub(crate) fn verify(
        &self,
        certs: &[Vec<u8>],
        id: &WireIdentity,
        (method, data): (AuthMethod, &[u8]),
        octets: &[u8],
        now: SystemTime,
    ) -> Result<(), CertAuthError> {
        if method != AuthMethod::DigitalSignature {
            return Err(CertAuthError::Method(method));
        }
        let (ee_der, intermediates) = certs.split_first().ok_or(CertAuthError::NoCertificate)?;
        if certs.len() > MAX_CERTS || certs.iter().any(|c| c.len() > MAX_CERT_LEN) {
            return Err(CertAuthError::TooMany);
        }
        let ee_der = CertificateDer::from(ee_der.as_slice());
        let ee = webpki::EndEntityCert::try_from(&ee_der).map_err(|_| CertAuthError::Malformed)?;
        let fields = CertFields::parse(ee_der.as_ref()).map_err(|_| CertAuthError::Malformed)?;
        self.check_path(&ee, intermediates, now)?;
        if !fields.allows_digital_signature() {
            return Err(CertAuthError::KeyUsage);
        }
        if !holds(&fields, id) {
            return Err(CertAuthError::IdentityMismatch);
        }
        check_signature(&ee, data, octets)
    }

    /// Step 3: a path to one of our CAs, valid at `now`.
    fn check_path(
        &self,
        ee: &webpki::EndEntityCert<'_>,
        intermediates: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<(), CertAuthError> {
        let ders: Vec<CertificateDer<'_>> =
            self.trusted.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        let anchors: Vec<TrustAnchor<'_>> =
            ders.iter().filter_map(|c| webpki::anchor_from_trusted_cert(c).ok()).collect();
        let intermediates: Vec<CertificateDer<'_>> =
            intermediates.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let time = UnixTime::since_unix_epoch(secs);
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            time,
            AnyUsage,
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| path_error(&e))
    }
}

/// The ID_DER_ASN1_DN of a certificate's subject (RFC 7296 §3.5), for
/// an identity taken from a certificate; `None` if `der` cannot be read.
pub fn subject_identity(der: &[u8]) -> Option<WireIdentity> {
    CertFields::parse(der).ok().map(|f| WireIdentity::der_dn(f.subject))
}

/// Extended key usage is not enforced (see the module doc).
#[derive(Debug, Clone, Copy)]
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

/// webpki's reason in the operator's words.
fn path_error(e: &webpki::Error) -> CertAuthError {
    use webpki::Error as E;
    match e {
        // No CA of ours by the issuer's name, or one whose key did not
        // make the signature (a CA of the same name).
        E::UnknownIssuer | E::InvalidSignatureForPublicKey => CertAuthError::UntrustedIssuer,
        E::CertExpired { .. } => CertAuthError::Expired,
        E::CertNotValidYet { .. } => CertAuthError::NotYetValid,
        E::CaUsedAsEndEntity => CertAuthError::Chain("a CA certificate used as the end entity"),
        E::EndEntityUsedAsCa => CertAuthError::Chain("an end-entity certificate used as a CA"),
        E::PathLenConstraintViolated => CertAuthError::Chain("path length constraint violated"),
        E::NameConstraintViolation => CertAuthError::Chain("name constraint violated"),
        E::UnsupportedCriticalExtension => CertAuthError::Chain("unsupported critical extension"),
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            CertAuthError::Chain("unsupported signature algorithm in the chain")
        }
        E::MaximumPathBuildCallsExceeded
        | E::MaximumPathDepthExceeded
        | E::MaximumSignatureChecksExceeded
        | E::MaximumNameConstraintComparisonsExceeded => CertAuthError::Chain("path search bound exceeded"),
        E::BadDer | E::BadDerTime | E::TrailingData(_) | E::UnsupportedCertVersion => {
            CertAuthError::Malformed
        }
        _ => CertAuthError::Chain("rejected by path validation"),
    }
}

/// Step 5: the ID payload held by the certificate (RFC 4945 §3.1, RFC
/// 7296 §3.5). Names compare without regard to ASCII case (RFC 5280
/// §7.2, §7.5).
fn holds(cert: &CertFields<'_>, id: &WireIdentity) -> bool {
    let alt = |tag: u8, eq: &dyn Fn(&[u8]) -> bool| cert.alt_names().any(|(t, v)| t == tag && eq(v));
    match id.kind {
        IdType::DerAsn1Dn => cert.subject == id.data.as_slice(),
        IdType::Fqdn => alt(general_name::DNS, &|v| v.eq_ignore_ascii_case(&id.data)),
        IdType::Rfc822Addr => alt(general_name::RFC822, &|v| v.eq_ignore_ascii_case(&id.data)),
        IdType::Ipv4Addr | IdType::Ipv6Addr => {
            let len = if id.kind == IdType::Ipv4Addr { 4 } else { 16 };
            id.data.len() == len && alt(general_name::IP, &|v| v == id.data.as_slice())
        }
        _ => false,
    }
}

/// Step 6: RFC 7427 §3's AUTH data, `len | AlgorithmIdentifier |
/// signature`, checked over `octets` with the certificate's key.
fn check_signature(ee: &webpki::EndEntityCert<'_>, data: &[u8], octets: &[u8]) -> Result<(), CertAuthError> {
    let (&len, rest) = data.split_first().ok_or(CertAuthError::SignatureAlgorithm)?;
    let (alg, signature) =
        rest.split_at_checked(usize::from(len)).ok_or(CertAuthError::SignatureAlgorithm)?;
    // The AlgorithmIdentifier is a SEQUENCE of short form (its length
    // fits the one octet); webpki names each algorithm by its contents.
    let contents = match alg {
        [0x30, l, contents @ ..] if usize::from(*l) == contents.len() => contents,
        _ => return Err(CertAuthError::SignatureAlgorithm),
    };
    for a in AUTH_ALGS.iter().filter(|a| a.signature_alg_id().as_ref() == contents) {
        match ee.verify_signature(*a, octets, signature) {
            Ok(()) => return Ok(()),
            // Another key type under the same name (ECDSA on another curve).
            Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => continue,
            Err(_) => return Err(CertAuthError::BadSignature),
        }
    }
    Err(CertAuthError::SignatureAlgorithm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our AlgorithmIdentifiers are the ones webpki checks against.
    #[test]
    fn our_algorithm_identifiers_are_webpkis() {
        let wrap = |a: &dyn SignatureVerificationAlgorithm| {
            let id = a.signature_alg_id();
            [&[0x30, id.as_ref().len() as u8][..], id.as_ref()].concat()
        };
        assert_eq!(wrap(webpki::ring::RSA_PKCS1_2048_8192_SHA256), alg_id::RSA_PKCS1_SHA256);
        assert_eq!(wrap(webpki::ring::ECDSA_P256_SHA256), alg_id::ECDSA_SHA256);
        assert_eq!(wrap(webpki::ring::ECDSA_P384_SHA384), alg_id::ECDSA_SHA384);
    }
}
