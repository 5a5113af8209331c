//! The generic payload header (RFC 2408 §3.2) and the payload chain:
//!
//! ```text
//!  0 next payload   1 reserved   2..4 payload length (header included)
//! ```
//!
//! [`PayloadIter`] walks a chain from a first type; it stops at next
//! payload 0 and then refuses trailing bytes unless told the body is a
//! decrypted one (RFC 2409 §5.3 lets the sender pad to the cipher block).
//! [`MessageBuilder`] writes a chain, patching each previous payload's
//! next-payload field, and the header length at the end.

use super::{be16, need, ExchangeType, Header, Result, WireError, FLAG_ENCRYPTION, HEADER_LEN};

/// Payload types (RFC 2408 §3.1, RFC 3947 §3.2).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadType {
    Sa,
    Proposal,
    Transform,
    KeyExchange,
    Id,
    Cert,
    CertRequest,
    Hash,
    Signature,
    Nonce,
    Notify,
    Delete,
    VendorId,
    /// NAT-D (RFC 3947 §3.2).
    NatD,
    /// NAT-OA (RFC 3947 §5.1).
    NatOa,
    Other(u8),
}

impl PayloadType {
    /// Wire value.
    pub fn value(self) -> u8 {
        match self {
            PayloadType::Sa => 1,
            PayloadType::Proposal => 2,
            PayloadType::Transform => 3,
            PayloadType::KeyExchange => 4,
            PayloadType::Id => 5,
            PayloadType::Cert => 6,
            PayloadType::CertRequest => 7,
            PayloadType::Hash => 8,
            PayloadType::Signature => 9,
            PayloadType::Nonce => 10,
            PayloadType::Notify => 11,
            PayloadType::Delete => 12,
            PayloadType::VendorId => 13,
            PayloadType::NatD => 20,
            PayloadType::NatOa => 21,
            PayloadType::Other(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_value(v: u8) -> PayloadType {
        match v {
            1 => PayloadType::Sa,
            2 => PayloadType::Proposal,
            3 => PayloadType::Transform,
            4 => PayloadType::KeyExchange,
            5 => PayloadType::Id,
            6 => PayloadType::Cert,
            7 => PayloadType::CertRequest,
            8 => PayloadType::Hash,
            9 => PayloadType::Signature,
            10 => PayloadType::Nonce,
            11 => PayloadType::Notify,
            12 => PayloadType::Delete,
            13 => PayloadType::VendorId,
            20 => PayloadType::NatD,
            21 => PayloadType::NatOa,
            other => PayloadType::Other(other),
        }
    }
}

/// One payload of a chain.
#[derive(Debug, Clone, Copy)]
pub struct RawPayload<'a> {
    /// Its type (given by the previous payload or the header).
    pub kind: PayloadType,
    /// The body, after the 4-byte generic header.
    pub body: &'a [u8],
    /// The whole payload, generic header included (what QM hashes cover).
    pub raw: &'a [u8],
}

/// Iterator over a payload chain; yields an error once and then stops.
#[derive(Debug, Clone)]
pub struct PayloadIter<'a> {
    buf: &'a [u8],
    pos: usize,
    next: u8,
    padded: bool,
    done: bool,
}

impl<'a> PayloadIter<'a> {
    /// Walks `buf` starting with a payload of type `first`. `padded`: bytes
    /// after the last payload are padding (a decrypted body), not an error.
    pub fn new(buf: &'a [u8], first: u8, padded: bool) -> PayloadIter<'a> {
        PayloadIter { buf, pos: 0, next: first, padded, done: false }
    }

    /// Collects the whole chain, failing on the first malformed payload.
    pub fn collect_all(self) -> Result<Vec<RawPayload<'a>>> {
        self.collect()
    }

    /// Byte offset just past the last payload read so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = Result<RawPayload<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        if self.next == 0 {
            self.done = true;
            if !rest.is_empty() && !self.padded {
                return Some(Err(WireError::TrailingBytes { extra: rest.len() }));
            }
            return None;
        }
        if let Err(e) = need("generic payload header", rest, 4) {
            self.done = true;
            return Some(Err(e));
        }
        let len = usize::from(be16(rest, 2));
        if len < 4 || len > rest.len() {
            self.done = true;
            return Some(Err(WireError::BadLength { what: "payload", len, room: rest.len() }));
        }
        let kind = PayloadType::from_value(self.next);
        let raw = &rest[..len];
        self.next = rest[0];
        self.pos += len;
        Some(Ok(RawPayload { kind, body: &raw[4..], raw }))
    }
}

/// Writes a message: header, then payloads appended one by one.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    header: Header,
    buf: Vec<u8>,
    /// Offset of the next-payload byte to patch (16 = the header's).
    last_next: usize,
}

impl MessageBuilder {
    /// Starts a message with this header (next payload, length and the
    /// encryption flag are filled in later).
    pub fn new(
        icookie: [u8; 8],
        rcookie: [u8; 8],
        exchange: ExchangeType,
        message_id: u32,
    ) -> MessageBuilder {
        let header = Header { icookie, rcookie, next_payload: 0, exchange, flags: 0, message_id, length: 0 };
        MessageBuilder { header, buf: vec![0u8; HEADER_LEN], last_next: 16 }
    }

    /// Appends a payload with this body.
    pub fn push(&mut self, kind: PayloadType, body: &[u8]) -> &mut MessageBuilder {
        let at = self.buf.len();
        self.buf[self.last_next] = kind.value();
        let len = (body.len() + 4).min(usize::from(u16::MAX)) as u16;
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(&body[..usize::from(len) - 4]);
        self.last_next = at;
        self
    }

    /// The payloads written so far (what follows the header).
    pub fn payloads(&self) -> &[u8] {
        &self.buf[HEADER_LEN..]
    }

    /// Type of the first payload (0 if none).
    pub fn first_payload(&self) -> u8 {
        self.buf[16]
    }

    /// The clear message.
    pub fn finish(mut self) -> Vec<u8> {
        self.header.next_payload = self.buf[16];
        self.header.length = self.buf.len() as u32;
        let mut h = [0u8; HEADER_LEN];
        self.header.emit(&mut h);
        self.buf[..HEADER_LEN].copy_from_slice(&h);
        self.buf
    }

    /// The message with its payloads replaced by `ciphertext` and the
    /// encryption flag set (RFC 2408 §3.1).
    pub fn finish_encrypted(mut self, ciphertext: &[u8]) -> Vec<u8> {
        self.header.next_payload = self.buf[16];
        self.header.flags |= FLAG_ENCRYPTION;
        self.header.length = (HEADER_LEN + ciphertext.len()) as u32;
        let mut out = vec![0u8; HEADER_LEN];
        self.header.emit(&mut out);
        out.extend_from_slice(ciphertext);
        out
    }
}

/// Writes a standalone chain (the payloads after a HASH payload, whose
/// bytes a phase-2 hash covers): returns the bytes and the first type.
pub fn chain(payloads: &[(PayloadType, &[u8])]) -> (Vec<u8>, u8) {
    let mut b = MessageBuilder::new([0; 8], [0; 8], ExchangeType::Other(0), 0);
    for (k, body) in payloads {
        b.push(*k, body);
    }
    (b.payloads().to_vec(), b.first_payload())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_walk() {
        let mut b = MessageBuilder::new([1; 8], [0; 8], ExchangeType::MainMode, 0);
        b.push(PayloadType::VendorId, &[0xaa; 16]).push(PayloadType::Nonce, &[0xbb; 4]);
        let m = b.finish();
        let h = Header::parse(&m).unwrap();
        assert_eq!(h.next_payload, 13);
        let p = PayloadIter::new(&m[HEADER_LEN..], h.next_payload, false).collect_all().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].kind, PayloadType::VendorId);
        assert_eq!(p[1].body, &[0xbb; 4]);
    }

    #[test]
    fn truncated_and_oversized_payloads_at_every_length() {
        let mut b = MessageBuilder::new([1; 8], [0; 8], ExchangeType::MainMode, 0);
        b.push(PayloadType::VendorId, &[0xaa; 16]).push(PayloadType::Nonce, &[0xbb; 8]);
        let m = b.finish();
        let body = &m[HEADER_LEN..];
        for n in 0..body.len() {
            assert!(PayloadIter::new(&body[..n], 13, false).collect_all().is_err(), "cut at {n}");
        }
        // Every wrong value of the first payload's length field.
        for len in 0..=u16::MAX {
            if usize::from(len) == 20 {
                continue;
            }
            let mut bad = body.to_vec();
            bad[2..4].copy_from_slice(&len.to_be_bytes());
            assert!(PayloadIter::new(&bad, 13, false).collect_all().is_err(), "len {len}");
        }
        // Trailing bytes refused unless padded.
        let mut extra = body.to_vec();
        extra.push(0);
        assert!(PayloadIter::new(&extra, 13, false).collect_all().is_err());
        assert_eq!(PayloadIter::new(&extra, 13, true).collect_all().unwrap().len(), 2);
    }
}
