//! The generic payload header (RFC 7296 §3.2) and the payload chain:
//!
//! ```text
//!  0 next payload   1 C (0x80) | reserved   2..4 payload length (header included)
//! ```
//!
//! [`PayloadIter`] walks a chain from the first type. A payload of a type
//! not understood is skipped when its critical bit is clear and refuses the
//! message when it is set (§2.5: UNSUPPORTED_CRITICAL_PAYLOAD). The
//! Encrypted payload (SK, §3.14) and the Encrypted Fragment (SKF, RFC 7383
//! §2.5) must be the last payload: their next-payload field names the
//! first payload inside, so the walk stops there. Bytes after the last
//! payload are refused.
//!
//! [`PayloadChain`] writes a chain, patching each previous payload's
//! next-payload field; [`MessageBuilder`] puts a header in front of one and
//! sets the header's length.

use super::{be16, need, Error, Header, Result, HEADER_LEN};

/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;
/// The critical bit of the generic header's second byte (§3.2).
const CRITICAL: u8 = 0x80;

wire_enum! {
    /// Payload types (RFC 7296 §3.2, RFC 7383 §2.5).
    pub enum PayloadType: u8 {
        /// Security Association (33, §3.3).
        Sa = 33,
        /// Key Exchange (34, §3.4).
        Ke = 34,
        /// Identification - Initiator (35, §3.5).
        IdI = 35,
        /// Identification - Responder (36, §3.5).
        IdR = 36,
        /// Certificate (37, §3.6).
        Cert = 37,
        /// Certificate Request (38, §3.7).
        CertReq = 38,
        /// Authentication (39, §3.8).
        Auth = 39,
        /// Nonce (40, §3.9).
        Nonce = 40,
        /// Notify (41, §3.10).
        Notify = 41,
        /// Delete (42, §3.11).
        Delete = 42,
        /// Vendor ID (43, §3.12).
        VendorId = 43,
        /// Traffic Selector - Initiator (44, §3.13).
        TsI = 44,
        /// Traffic Selector - Responder (45, §3.13).
        TsR = 45,
        /// Encrypted and Authenticated (46, §3.14).
        Encrypted = 46,
        /// Configuration (47, §3.15): named, not understood here.
        Cp = 47,
        /// Extensible Authentication (48, §3.16): named, not understood here.
        Eap = 48,
        /// Encrypted and Authenticated Fragment (53, RFC 7383 §2.5).
        EncryptedFragment = 53,
    }
}

impl PayloadType {
    /// True for the types this implementation reads. CP and EAP are
    /// known to the RFC but not spoken here, so they count as not
    /// understood (§2.5): skipped, or refused when critical.
    pub fn understood(self) -> bool {
        !matches!(self, PayloadType::Cp | PayloadType::Eap | PayloadType::Other(_))
    }

    /// True for SK and SKF, which end a chain (§3.14, RFC 7383 §2.5).
    pub fn is_encrypted(self) -> bool {
        matches!(self, PayloadType::Encrypted | PayloadType::EncryptedFragment)
    }
}

/// One payload of a chain: its generic header decoded, its body borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// Its type (from the previous payload's next-payload field).
    pub kind: PayloadType,
    /// Its own next-payload field (for SK and SKF: the first inner type).
    pub next: u8,
    /// The critical bit.
    pub critical: bool,
    /// The body after the 4-byte generic header.
    pub body: &'a [u8],
    /// Offset of the generic header from the start of the message.
    pub at: usize,
}

impl RawPayload<'_> {
    /// Offset of the body from the start of the message.
    pub fn body_at(&self) -> usize {
        self.at + GENERIC_HEADER_LEN
    }
}

/// Walks a payload chain; see the module doc. Fused after an error.
#[derive(Debug, Clone)]
pub struct PayloadIter<'a> {
    buf: &'a [u8],
    pos: usize,
    next: u8,
    base: usize,
    done: bool,
    skipped: usize,
}

impl<'a> PayloadIter<'a> {
    /// The chain in `buf` (whose first byte sits at offset `base` of the
    /// message) starting with payload type `first`.
    pub fn new(buf: &'a [u8], first: u8, base: usize) -> PayloadIter<'a> {
        PayloadIter { buf, pos: 0, next: first, base, done: false, skipped: 0 }
    }

    /// The payloads of a whole message whose header has been checked with
    /// [`Header::parse`].
    pub fn of_message(msg: &'a [u8], header: &Header) -> PayloadIter<'a> {
        PayloadIter::new(msg.get(HEADER_LEN..).unwrap_or(&[]), header.next_payload, HEADER_LEN)
    }

    /// How many non-critical payloads of types not understood were skipped.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    fn fail(&mut self, e: Error) -> Option<Result<RawPayload<'a>>> {
        self.done = true;
        Some(Err(e))
    }
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = Result<RawPayload<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let at = self.base + self.pos;
            let rest = self.buf.get(self.pos..).unwrap_or(&[]);
            if self.next == 0 {
                self.done = true;
                if !rest.is_empty() {
                    return self.fail(Error::BadLength {
                        what: "bytes after the last payload",
                        at,
                        len: rest.len(),
                        room: 0,
                    });
                }
                return None;
            }
            let kind = PayloadType::from_value(self.next);
            if let Err(e) = need("generic payload header", at, rest, GENERIC_HEADER_LEN) {
                return self.fail(e);
            }
            let len = usize::from(be16(rest, 2));
            if len < GENERIC_HEADER_LEN || len > rest.len() {
                return self.fail(Error::BadLength { what: "payload", at, len, room: rest.len() });
            }
            let raw = RawPayload {
                kind,
                next: rest[0],
                critical: rest[1] & CRITICAL != 0,
                body: &rest[GENERIC_HEADER_LEN..len],
                at,
            };
            self.pos += len;
            self.next = raw.next;
            if kind.is_encrypted() {
                // §3.14: SK is the last payload; its next-payload field
                // belongs to the chain inside.
                self.done = true;
                if len != rest.len() {
                    return self.fail(Error::BadLength {
                        what: "Encrypted payload",
                        at,
                        len,
                        room: rest.len(),
                    });
                }
                return Some(Ok(raw));
            }
            if kind.understood() {
                return Some(Ok(raw));
            }
            if raw.critical {
                return self.fail(Error::UnsupportedCritical { kind: kind.value(), at });
            }
            self.skipped += 1;
        }
    }
}

/// Builds a payload chain: each payload's next-payload field is patched
/// when the following one is pushed.
#[derive(Debug, Clone, Default)]
pub struct PayloadChain {
    buf: Vec<u8>,
    first: u8,
    last: Option<usize>,
    too_long: Option<usize>,
}

impl PayloadChain {
    /// An empty chain.
    pub fn new() -> PayloadChain {
        PayloadChain::default()
    }

    /// Appends a payload of type `kind` whose body `body` writes (after the
    /// generic header, which this writes).
    pub fn push_with(&mut self, kind: PayloadType, critical: bool, body: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        match self.last {
            Some(prev) => self.buf[prev] = kind.value(),
            None => self.first = kind.value(),
        }
        self.buf.extend_from_slice(&[0, if critical { CRITICAL } else { 0 }, 0, 0]);
        body(&mut self.buf);
        let len = self.buf.len() - start;
        match u16::try_from(len) {
            Ok(l) => self.buf[start + 2..start + 4].copy_from_slice(&l.to_be_bytes()),
            Err(_) => self.too_long = Some(len),
        }
        self.last = Some(start);
    }

    /// Appends a payload with the body `body`.
    pub fn push(&mut self, kind: PayloadType, body: &[u8]) {
        self.push_with(kind, false, |out| out.extend_from_slice(body));
    }

    /// Type of the first payload (0 when empty).
    pub fn first(&self) -> u8 {
        self.first
    }

    /// The chain's bytes, or an error if a payload outgrew its 16-bit
    /// length field.
    pub fn bytes(&self) -> Result<&[u8]> {
        match self.too_long {
            Some(len) => {
                Err(Error::BadLength { what: "payload to build", at: 0, len, room: usize::from(u16::MAX) })
            }
            None => Ok(&self.buf),
        }
    }
}

/// Builds a whole message: a header and a chain.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    header: Header,
    /// The payloads.
    pub chain: PayloadChain,
}

impl MessageBuilder {
    /// A message with `header` (its next-payload and length fields are set
    /// by [`MessageBuilder::finish`]).
    pub fn new(header: Header) -> MessageBuilder {
        MessageBuilder { header, chain: PayloadChain::new() }
    }

    /// The message's bytes.
    pub fn finish(self) -> Result<Vec<u8>> {
        let body = self.chain.bytes()?;
        let total = HEADER_LEN + body.len();
        let length = u32::try_from(total).map_err(|_| Error::BadLength {
            what: "message to build",
            at: 0,
            len: total,
            room: u32::MAX as usize,
        })?;
        let header = Header { next_payload: self.chain.first(), length, ..self.header };
        let mut out = vec![0u8; HEADER_LEN];
        header.emit(&mut out);
        out.extend_from_slice(body);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ExchangeType;
    use super::*;

    fn header() -> Header {
        Header {
            spi_i: 1,
            spi_r: 2,
            next_payload: 0,
            exchange: ExchangeType::Informational,
            flags: super::super::FLAG_INITIATOR,
            message_id: 5,
            length: 0,
        }
    }

    #[test]
    fn chain_builds_and_walks() {
        let mut m = MessageBuilder::new(header());
        m.chain.push(PayloadType::Nonce, &[0xaa; 16]);
        m.chain.push_with(PayloadType::Other(200), false, |o| o.push(7));
        m.chain.push(PayloadType::VendorId, b"esprit");
        let msg = m.finish().unwrap();
        let h = Header::parse(&msg).unwrap();
        assert_eq!(h.next_payload, 40);
        assert_eq!(h.length as usize, 28 + 20 + 5 + 10);
        let mut it = PayloadIter::of_message(&msg, &h);
        let n = it.next().unwrap().unwrap();
        assert_eq!((n.kind, n.next, n.at, n.body.len()), (PayloadType::Nonce, 200, 28, 16));
        // The unknown non-critical payload is skipped (§2.5).
        let v = it.next().unwrap().unwrap();
        assert_eq!((v.kind, v.body, v.at), (PayloadType::VendorId, &b"esprit"[..], 53));
        assert!(it.next().is_none());
        assert_eq!(it.skipped(), 1);
    }

    #[test]
    fn critical_unknown_refuses() {
        let mut m = MessageBuilder::new(header());
        m.chain.push_with(PayloadType::Cp, true, |o| o.extend_from_slice(&[1, 0, 0, 0]));
        let msg = m.finish().unwrap();
        let h = Header::parse(&msg).unwrap();
        let err = PayloadIter::of_message(&msg, &h).next().unwrap().unwrap_err();
        assert_eq!(err, Error::UnsupportedCritical { kind: 47, at: 28 });
        assert_eq!(err.notify(), super::super::NotifyType::UnsupportedCriticalPayload);
    }

    #[test]
    fn bad_lengths_refused_where_they_are() {
        let body = [40u8, 0, 0, 3];
        let e = PayloadIter::new(&body, 43, 100).next().unwrap().unwrap_err();
        assert_eq!(e, Error::BadLength { what: "payload", at: 100, len: 3, room: 4 });
        let body = [0u8, 0, 0, 9, 1, 2, 3, 4];
        let e = PayloadIter::new(&body, 43, 28).next().unwrap().unwrap_err();
        assert_eq!(e, Error::BadLength { what: "payload", at: 28, len: 9, room: 8 });
        let body = [0u8, 0, 0, 4, 9];
        let mut it = PayloadIter::new(&body, 43, 28);
        assert!(it.next().unwrap().is_ok());
        assert_eq!(
            it.next().unwrap().unwrap_err(),
            Error::BadLength { what: "bytes after the last payload", at: 32, len: 1, room: 0 }
        );
        assert!(it.next().is_none());
        let e = PayloadIter::new(&[0u8, 0], 43, 28).next().unwrap().unwrap_err();
        assert_eq!(e, Error::Truncated { what: "generic payload header", at: 28, need: 4, have: 2 });
    }

    #[test]
    fn encrypted_ends_the_chain() {
        // SK whose next payload (IDi, 35) is the first inner payload.
        let body = [35u8, 0, 0, 8, 1, 2, 3, 4];
        let mut it = PayloadIter::new(&body, 46, 28);
        let sk = it.next().unwrap().unwrap();
        assert_eq!((sk.kind, sk.next, sk.body), (PayloadType::Encrypted, 35, &[1u8, 2, 3, 4][..]));
        assert!(it.next().is_none());
    }
}
