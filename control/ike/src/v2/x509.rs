//! The few fields of an X.509 certificate (RFC 5280 §4.1) that IKEv2
//! certificate authentication reads beside path validation: the subject
//! DN (ID_DER_ASN1_DN, RFC 7296 §3.5), the SubjectPublicKeyInfo (CERTREQ
//! hashes, §3.7; our key's match with our certificate), the keyUsage bits
//! (RFC 5280 §4.2.1.3) and the subjectAltName entries (§4.2.1.6).
//!
//! rustls-webpki validates the chain but does not expose keyUsage, nor
//! rfc822Name and iPAddress SANs outside its own name matching, so this
//! walks the DER itself: a reader of tag-length-value triples over a
//! borrowed slice, single-byte tags, definite lengths up to 4 bytes. It
//! never allocates, never recurses and never panics on hostile input: a
//! certificate it cannot read is refused ([`X509Error`]).

/// ASN.1 universal tags and the context tags of GeneralName (RFC 5280
/// §4.2.1.6) used here.
mod tag {
    pub(super) const BOOLEAN: u8 = 0x01;
    pub(super) const INTEGER: u8 = 0x02;
    pub(super) const BIT_STRING: u8 = 0x03;
    pub(super) const OCTET_STRING: u8 = 0x04;
    pub(super) const OID: u8 = 0x06;
    pub(super) const SEQUENCE: u8 = 0x30;
    /// `[0] EXPLICIT Version`.
    pub(super) const VERSION: u8 = 0xa0;
    /// `[1] IMPLICIT issuerUniqueID`.
    pub(super) const ISSUER_UID: u8 = 0x81;
    /// `[2] IMPLICIT subjectUniqueID`.
    pub(super) const SUBJECT_UID: u8 = 0x82;
    /// `[3] EXPLICIT Extensions`.
    pub(super) const EXTENSIONS: u8 = 0xa3;
}

/// GeneralName choices (RFC 5280 §4.2.1.6), as their context tags.
pub(crate) mod general_name {
    /// `rfc822Name [1] IA5String`.
    pub(crate) const RFC822: u8 = 0x81;
    /// `dNSName [2] IA5String`.
    pub(crate) const DNS: u8 = 0x82;
    /// `iPAddress [7] OCTET STRING`.
    pub(crate) const IP: u8 = 0x87;
}

/// id-ce-keyUsage, 2.5.29.15.
const OID_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
/// id-ce-subjectAltName, 2.5.29.17.
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// A certificate this reader could not take apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("certificate DER unreadable at {0}")]
pub(crate) struct X509Error(pub(crate) &'static str);

type Result<T> = core::result::Result<T, X509Error>;

/// One DER value: its tag, its contents and the whole encoding.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    contents: &'a [u8],
    whole: &'a [u8],
}

/// Reads DER values one after another from a slice.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next value, whatever its tag.
    fn any(&mut self, what: &'static str) -> Result<Tlv<'a>> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or(X509Error(what))?;
        // High-tag-number form (X.690 §8.1.2.4): never in the fields read here.
        if tag & 0x1f == 0x1f {
            return Err(X509Error(what));
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or(X509Error(what))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            // Long form; 0x80 (indefinite) is not DER (X.690 §10.1).
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(X509Error(what));
            }
            let (octets, rest) = after_len.split_at_checked(n).ok_or(X509Error(what))?;
            after_len = rest;
            octets.iter().fold(0usize, |a, b| a << 8 | usize::from(*b))
        };
        let header = input.len() - after_len.len();
        let contents = after_len.get(..len).ok_or(X509Error(what))?;
        let whole = input.get(..header + len).ok_or(X509Error(what))?;
        self.rest = after_len.get(len..).ok_or(X509Error(what))?;
        Ok(Tlv { tag, contents, whole })
    }

    /// The next value, which must have tag `tag`.
    fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>> {
        let v = self.any(what)?;
        if v.tag != tag {
            return Err(X509Error(what));
        }
        Ok(v)
    }

    /// The next value if it has tag `tag`.
    fn optional(&mut self, tag: u8, what: &'static str) -> Result<Option<Tlv<'a>>> {
        match self.rest.first() {
            Some(t) if *t == tag => self.any(what).map(Some),
            _ => Ok(None),
        }
    }
}

/// The fields of a certificate read for IKE.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CertFields<'a> {
    /// The subject Name, tag and length included: what ID_DER_ASN1_DN
    /// carries (RFC 7296 §3.5).
    pub(crate) subject: &'a [u8],
    /// The SubjectPublicKeyInfo, tag and length included: what a CERTREQ
    /// hashes (§3.7).
    pub(crate) spki: &'a [u8],
    /// The keyUsage BIT STRING's contents (unused-bits octet first), if
    /// the extension is present.
    key_usage: Option<&'a [u8]>,
    /// The GeneralNames' contents, if subjectAltName is present.
    alt_names: Option<&'a [u8]>,
}

impl<'a> CertFields<'a> {
    /// Reads `der`, a Certificate (RFC 5280 §4.1).
    pub(crate) fn parse(der: &'a [u8]) -> Result<CertFields<'a>> {
        let mut outer = Reader::new(der);
        let cert = outer.expect(tag::SEQUENCE, "Certificate")?;
        if !outer.at_end() {
            return Err(X509Error("bytes after the Certificate"));
        }
        let mut c = Reader::new(cert.contents);
        let tbs = c.expect(tag::SEQUENCE, "tbsCertificate")?;
        let mut t = Reader::new(tbs.contents);
        t.optional(tag::VERSION, "version")?;
        t.expect(tag::INTEGER, "serialNumber")?;
        t.expect(tag::SEQUENCE, "signature")?;
        t.expect(tag::SEQUENCE, "issuer")?;
        t.expect(tag::SEQUENCE, "validity")?;
        let subject = t.expect(tag::SEQUENCE, "subject")?.whole;
        let spki = t.expect(tag::SEQUENCE, "subjectPublicKeyInfo")?.whole;
        t.optional(tag::ISSUER_UID, "issuerUniqueID")?;
        t.optional(tag::SUBJECT_UID, "subjectUniqueID")?;
        let mut fields = CertFields { subject, spki, key_usage: None, alt_names: None };
        let Some(ext) = t.optional(tag::EXTENSIONS, "extensions")? else { return Ok(fields) };
        let list = Reader::new(ext.contents).expect(tag::SEQUENCE, "Extensions")?;
        let mut exts = Reader::new(list.contents);
        while !exts.at_end() {
            let e = exts.expect(tag::SEQUENCE, "Extension")?;
            let mut e = Reader::new(e.contents);
            let oid = e.expect(tag::OID, "extnID")?.contents;
            e.optional(tag::BOOLEAN, "critical")?;
            let value = e.expect(tag::OCTET_STRING, "extnValue")?.contents;
            // The first of a repeated extension; path validation refuses
            // such a certificate anyway (RFC 5280 §4.2).
            if oid == OID_KEY_USAGE && fields.key_usage.is_none() {
                let bits = Reader::new(value).expect(tag::BIT_STRING, "keyUsage")?.contents;
                if bits.is_empty() {
                    return Err(X509Error("keyUsage"));
                }
                fields.key_usage = Some(bits);
            } else if oid == OID_SUBJECT_ALT_NAME && fields.alt_names.is_none() {
                fields.alt_names = Some(Reader::new(value).expect(tag::SEQUENCE, "subjectAltName")?.contents);
            }
        }
        Ok(fields)
    }

    /// The subjectPublicKey BIT STRING's bits (the unused-bits octet
    /// dropped): for RSA the RSAPublicKey, for EC the point (RFC 3279).
    pub(crate) fn public_key(&self) -> Result<&'a [u8]> {
        let mut r = Reader::new(self.spki);
        let spki = r.expect(tag::SEQUENCE, "subjectPublicKeyInfo")?;
        let mut s = Reader::new(spki.contents);
        s.expect(tag::SEQUENCE, "algorithm")?;
        let bits = s.expect(tag::BIT_STRING, "subjectPublicKey")?.contents;
        match bits.split_first() {
            Some((0, key)) => Ok(key),
            _ => Err(X509Error("subjectPublicKey")),
        }
    }

    /// RFC 5280 §4.2.1.3: a key whose keyUsage is present but lacks
    /// digitalSignature (bit 0) must not verify signatures other than on
    /// certificates and CRLs, and AUTH is such a signature. No extension:
    /// any use.
    pub(crate) fn allows_digital_signature(&self) -> bool {
        match self.key_usage {
            None => true,
            Some(bits) => bits.get(1).is_some_and(|b| b & 0x80 != 0),
        }
    }

    /// The subjectAltName entries as (GeneralName tag, contents); an entry
    /// that cannot be read ends the list.
    pub(crate) fn alt_names(&self) -> impl Iterator<Item = (u8, &'a [u8])> {
        let mut r = Reader::new(self.alt_names.unwrap_or_default());
        core::iter::from_fn(move || r.any("GeneralName").ok().map(|v| (v.tag, v.contents)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made minimal certificate: version 3, serial 1, subject
    /// "CN=a", an EC key, keyUsage keyEncipherment (bit 2), SANs
    /// dNSName "a.example" and iPAddress 192.0.2.1. Not signed: only the
    /// reader looks at it.
    fn fixture() -> Vec<u8> {
        fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            if contents.len() < 0x80 {
                v.push(contents.len() as u8);
            } else {
                v.extend([0x82, (contents.len() >> 8) as u8, contents.len() as u8]);
            }
            v.extend_from_slice(contents);
            v
        }
        let name = tlv(0x30, &tlv(0x31, &tlv(0x30, &[tlv(0x06, &[0x55, 4, 3]), tlv(0x0c, b"a")].concat())));
        let alg = tlv(0x30, &tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2]));
        let spki = tlv(0x30, &[tlv(0x30, &tlv(0x06, &[1, 2])), tlv(0x03, &[0, 4, 9, 9])].concat());
        let ku = tlv(
            0x30,
            &[tlv(0x06, OID_KEY_USAGE), tlv(0x01, &[0xff]), tlv(0x04, &tlv(0x03, &[5, 0x20]))].concat(),
        );
        let sans = tlv(0x30, &[tlv(0x82, b"a.example"), tlv(0x87, &[192, 0, 2, 1])].concat());
        let san = tlv(0x30, &[tlv(0x06, OID_SUBJECT_ALT_NAME), tlv(0x04, &sans)].concat());
        let tbs = tlv(
            0x30,
            &[
                tlv(0xa0, &tlv(0x02, &[2])),
                tlv(0x02, &[1]),
                alg.clone(),
                name.clone(),
                tlv(0x30, &[]),
                name,
                spki,
                tlv(0xa3, &tlv(0x30, &[ku, san].concat())),
            ]
            .concat(),
        );
        tlv(0x30, &[tbs, alg, tlv(0x03, &[0, 1])].concat())
    }

    #[test]
    fn reads_subject_key_usage_and_alt_names() {
        let der = fixture();
        let f = CertFields::parse(&der).unwrap();
        assert_eq!(f.subject[0], 0x30);
        assert!(f.subject.ends_with(b"a"));
        assert_eq!(f.public_key().unwrap(), &[4, 9, 9]);
        assert!(!f.allows_digital_signature());
        let names: Vec<_> = f.alt_names().collect();
        assert_eq!(names, [(general_name::DNS, &b"a.example"[..]), (general_name::IP, &[192, 0, 2, 1][..])]);
    }

    /// Every truncation and every one-byte change either reads or is
    /// refused; none panics.
    #[test]
    fn hostile_bytes_never_panic() {
        let der = fixture();
        for n in 0..der.len() {
            assert!(CertFields::parse(&der[..n]).is_err());
        }
        for i in 0..der.len() {
            for v in [0x00, 0x1f, 0x7f, 0x80, 0x84, 0x85, 0xff] {
                let mut d = der.clone();
                d[i] = v;
                if let Ok(f) = CertFields::parse(&d) {
                    let _ = (f.public_key(), f.allows_digital_signature(), f.alt_names().count());
                }
            }
        }
    }
}
