//! The certificates of a gateway that authenticates by signature
//! (`rsa-sig` / `ecdsa-sig` proposals, IKEv2): the files its `cert
//! my-cert` and `cert peer-ca` name (`set pki local-cert`, `set pki
//! ca-cert`), read when the configuration is applied and checked there,
//! so that a bad file is said at once (and by `controld --check`), never
//! at the first negotiation.
//!
//! Files are PEM: the certificate file holds our certificate and then any
//! intermediates to send (RFC 7296 §3.6: the end entity first), the key
//! file one PKCS#8 private key ("BEGIN PRIVATE KEY"; RSA of 2048 bits or
//! more, ECDSA P-256 or P-384), a CA file one or more CA certificates.

use std::io::Read;

use esprit_config::Config;
use esprit_ike::v2::auth::WireIdentity;
use esprit_ike::v2::cert::{subject_identity, CertAuth};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

/// No certificate, key or CA file is read beyond this size (a chain of a
/// few certificates is a few KiB).
pub const MAX_PKI_FILE: u64 = 256 * 1024;

/// What a gateway authenticates with by certificate, as read.
#[derive(Clone, PartialEq, Eq)]
pub struct CertFiles {
    chain: Vec<Vec<u8>>,
    key: Zeroizing<Vec<u8>>,
    trusted: Vec<Vec<u8>>,
    /// `local-id` is configured (else our identity is the certificate's
    /// subject DN).
    local_id_configured: bool,
}

impl core::fmt::Debug for CertFiles {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CertFiles")
            .field("chain", &self.chain.len())
            .field("trusted", &self.trusted.len())
            .finish_non_exhaustive()
    }
}

fn read(what: &str, path: &str) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{what} {path}: {e}"))?;
    let mut bytes = Vec::new();
    f.take(MAX_PKI_FILE + 1).read_to_end(&mut bytes).map_err(|e| format!("{what} {path}: {e}"))?;
    if bytes.len() as u64 > MAX_PKI_FILE {
        return Err(format!("{what} {path}: larger than {MAX_PKI_FILE} bytes"));
    }
    Ok(bytes)
}

fn certificates(what: &str, path: &str) -> Result<Vec<Vec<u8>>, String> {
    let pem = read(what, path)?;
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(&pem) {
        let c = c.map_err(|e| format!("{what} {path}: not PEM certificates: {e}"))?;
        out.push(c.as_ref().to_vec());
    }
    if out.is_empty() {
        return Err(format!("{what} {path}: no certificate (BEGIN CERTIFICATE) in it"));
    }
    Ok(out)
}

/// The files of gateway `name`, if its proposals authenticate by
/// signature; an error says which file and why, or what is missing.
pub fn load(config: &Config, name: &str) -> Result<Option<CertFiles>, String> {
    let Some(g) = config.gateway(name) else { return Ok(None) };
    if !config.p1_suites(name).first().is_some_and(|s| s.auth.uses_certificates()) {
        return Ok(None);
    }
    let (Some(mine), Some(ca)) = (&g.my_cert, &g.peer_ca) else {
        return Err(
            "its proposals authenticate by certificate: it needs cert my-cert and cert peer-ca".into()
        );
    };
    let local = config.local_cert(mine).ok_or_else(|| format!("pki local-cert \"{mine}\" is not defined"))?;
    let ca_file = config.ca_cert(ca).ok_or_else(|| format!("pki ca-cert \"{ca}\" is not defined"))?;
    let chain = certificates("certificate file", &local.certificate)?;
    let key_pem = Zeroizing::new(read("key file", &local.key)?);
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(PrivateKeyDer::Pkcs8(k)) => Zeroizing::new(k.secret_pkcs8_der().to_vec()),
        Ok(_) => {
            return Err(format!(
                "key file {}: not PKCS#8 (BEGIN PRIVATE KEY): convert it with openssl pkcs8 -topk8 -nocrypt",
                local.key
            ))
        }
        Err(e) => return Err(format!("key file {}: no PEM private key: {e}", local.key)),
    };
    let trusted = certificates("CA file", ca_file)?;
    let files = CertFiles { chain, key, trusted, local_id_configured: g.local_id.is_some() };
    // Checked now: key and certificate agree, our identity is in it.
    // (Without local-id the identity is the certificate's own subject.)
    let local = g
        .local_id
        .as_ref()
        .map(WireIdentity::from)
        .unwrap_or(WireIdentity { kind: esprit_ike::v2::wire::IdType::Fqdn, data: Vec::new() });
    files.auth(&local, None).map(|_| ())?;
    Ok(Some(files))
}

impl CertFiles {
    /// The authenticator: `local` is our configured identity (used when
    /// `local-id` is set; else the certificate's subject DN), `remote`
    /// the one the peer must show.
    pub fn auth(&self, local: &WireIdentity, remote: Option<WireIdentity>) -> Result<CertAuth, String> {
        let local = if self.local_id_configured {
            local.clone()
        } else {
            self.chain
                .first()
                .and_then(|c| subject_identity(c))
                .ok_or("our certificate has no readable subject")?
        };
        CertAuth::new(self.chain.clone(), self.key.clone(), self.trusted.clone(), local, remote)
            .map_err(|e| e.to_string())
    }
}
