//! IKE fragmentation (RFC 7383): cutting a sealed message into Encrypted
//! Fragments that each fit a datagram, and putting the peer's fragments
//! back together, sans-IO like the rest of the session.
//!
//! ```text
//! HDR(id), SK{IDi, CERT, CERT, AUTH, SA, TSi, TSr}         (too big)
//!   -> HDR(id), SKF(1/3){IDi, CERT..}   each fragment padded, encrypted
//!      HDR(id), SKF(2/3){..CERT, AU..}  and integrity-protected on its
//!      HDR(id), SKF(3/3){..TH, SA, TS}  own (§2.5.3)
//! ```
//!
//! Guarantees:
//! * Only a message whose first payload is SK, outside IKE_SA_INIT, is
//!   cut (§2.5); each fragment, IKE header to ICV, fits the size given.
//! * A fragment is kept only after its integrity check (§2.6), so a
//!   forged one cannot take the place of a real one.
//! * At most one message is reassembled per direction (the peer's
//!   requests, the peer's responses), of at most [`MAX_FRAGMENTS`]
//!   fragments and [`MAX_REASSEMBLY_BYTES`] bytes; it is discarded when a
//!   newer message starts, when it completes, or after
//!   [`REASSEMBLY_TIMEOUT`]. Duplicates are ignored; a fragment with more
//!   Total Fragments than the message held starts it over (the peer cut
//!   it again smaller, §2.6.1), one with fewer is dropped.
//! * Every fragment not kept is a counted [`Dropped`] reason.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dropped::Dropped;
use super::sk::{reassembled, OpenedFragment, SkCipher, SkError};
use super::wire::{ExchangeType, Header, Payload, PayloadIter, PayloadType};
use crate::Random;

/// The IP datagram size a fragment fills by default: 1280 bytes, IPv6's
/// minimum link MTU (RFC 8200 §5), which every IPv6 path carries and
/// practically every IPv4 path too. RFC 7383 §2.5.1 suggests 576 for
/// IPv4, but strongSwan's `charon.fragment_size` (and Junos's
/// `fragmentation size`) default to 1280 for both families: the same
/// number keeps the two ends' fragments alike and half as many.
pub const FRAGMENT_SIZE_DEFAULT: u16 = 1280;

/// The smallest fragment size taken: below it the fixed fields leave
/// too little room (RFC 7383 §2.5.1's IPv4 floor).
pub const FRAGMENT_SIZE_MIN: u16 = 576;

/// The most fragments of one message this side reassembles: a chain of
/// four 4096-bit RSA certificates needs about 8 at 1280 bytes.
pub const MAX_FRAGMENTS: u16 = 32;

/// The most bytes of fragment messages held for one message.
pub const MAX_REASSEMBLY_BYTES: usize = 64 * 1024;

/// A message whose fragments have not all arrived this long after its
/// first is discarded (the peer's retransmission sends them all again).
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of an IPv4 header without options, of an IPv6 header, of UDP,
/// of the non-ESP marker before IKE on port 4500 (RFC 3948 §2.2).
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
const NON_ESP_MARKER: usize = 4;

/// The largest IKE message that fits an IP datagram of `ip_size` bytes
/// sent from `local` to `remote`: less the IP and UDP headers, and the
/// non-ESP marker when it goes from port 4500.
pub fn max_message(ip_size: u16, local: SocketAddr, remote: SocketAddr) -> usize {
    let ip = if local.is_ipv6() || remote.is_ipv6() { IPV6_HEADER } else { IPV4_HEADER };
    let marker = if local.port() == crate::NATT_PORT { NON_ESP_MARKER } else { 0 };
    usize::from(ip_size).saturating_sub(ip + UDP_HEADER + marker)
}

/// True if the IKE_SA_INIT message `msg` carries
/// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
pub fn announced(msg: &[u8]) -> bool {
    let Ok(h) = Header::parse(msg) else { return false };
    PayloadIter::of_message(msg, &h).map_while(Result::ok).any(|raw| {
        matches!(Payload::parse(&raw), Ok(Payload::Notify(n))
            if n.kind == super::wire::NotifyType::FragmentationSupported)
    })
}

/// Cuts our sealed message `msg` into Encrypted Fragments of at most
/// `max` bytes each (RFC 7383 §2.5), when it is longer and may be cut:
/// its first payload SK, not IKE_SA_INIT. `None`: send it whole.
pub fn fragment(
    cipher: &mut SkCipher,
    msg: &[u8],
    max: usize,
    rng: &mut dyn Random,
) -> Result<Option<Vec<Vec<u8>>>, SkError> {
    if msg.len() <= max {
        return Ok(None);
    }
    let h = Header::parse(msg)?;
    if h.exchange == ExchangeType::IkeSaInit || h.next_payload != PayloadType::Encrypted.value() {
        return Ok(None);
    }
    let opened = cipher.open_own(msg)?;
    let room = cipher.fragment_room(max);
    if room == 0 {
        return Ok(None);
    }
    let chunks: Vec<&[u8]> = opened.plaintext.chunks(room).collect();
    let Ok(total) = u16::try_from(chunks.len()) else { return Ok(None) };
    let mut out = Vec::with_capacity(chunks.len());
    for (chunk, number) in chunks.iter().zip(1u16..) {
        out.push(cipher.seal_fragment(&h, opened.first, (number, total), chunk, rng)?);
    }
    Ok(Some(out))
}

/// The fields of an Encrypted Fragment read before its integrity check,
/// to refuse the impossible cheaply.
pub fn check_numbers(msg: &[u8]) -> Result<(Header, u16, u16), Dropped> {
    let h = Header::parse(msg).map_err(|_| Dropped::Unreadable)?;
    let mut payloads = PayloadIter::of_message(msg, &h);
    let raw = match payloads.next() {
        Some(Ok(raw)) if raw.kind == PayloadType::EncryptedFragment => raw,
        _ => return Err(Dropped::FragmentInvalid),
    };
    let f = super::wire::EncryptedFragment::parse(raw.body, raw.body_at(), raw.next)
        .map_err(|_| Dropped::FragmentInvalid)?;
    if f.total > MAX_FRAGMENTS {
        return Err(Dropped::FragmentInvalid);
    }
    Ok((h, f.number, f.total))
}

/// What became of a fragment handed to [`Reassembly::accept`].
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Kept; the message is not whole yet.
    Kept,
    /// The last fragment: the message, as [`reassembled`] writes it.
    Complete(Vec<u8>),
    /// Not kept, and why.
    Dropped(Dropped),
}

/// One message being put together.
#[derive(Debug)]
struct Partial {
    first: Header,
    total: u16,
    parts: Vec<Option<Vec<u8>>>,
    bytes: usize,
    started: Instant,
}

impl Partial {
    fn new(now: Instant, h: &Header, total: u16) -> Partial {
        Partial { first: *h, total, parts: vec![None; usize::from(total)], bytes: 0, started: now }
    }

    fn same_message(&self, h: &Header) -> bool {
        (self.first.spi_i, self.first.spi_r, self.first.message_id) == (h.spi_i, h.spi_r, h.message_id)
    }
}

/// The peer's fragmented messages being put together: one per
/// direction. See the module doc.
#[derive(Debug, Default)]
pub struct Reassembly {
    /// \[the peer's requests, the peer's responses\].
    slots: [Option<Partial>; 2],
}

impl Reassembly {
    /// Takes `frag`, opened (and so authenticated) from the fragment
    /// message `msg`.
    pub fn accept(&mut self, now: Instant, frag: &OpenedFragment, msg: &[u8]) -> Accepted {
        let h = &frag.header;
        let (number, total) = (frag.number, frag.total);
        if number == 0 || number > total || total > MAX_FRAGMENTS {
            return Accepted::Dropped(Dropped::FragmentInvalid);
        }
        let slot = &mut self.slots[usize::from(h.is_response())];
        let restart = match slot {
            Some(p) if p.same_message(h) && total > p.total => true,
            Some(p) if p.same_message(h) && total < p.total => {
                return Accepted::Dropped(Dropped::FragmentTotalChanged)
            }
            Some(p) if p.same_message(h) => false,
            // An older message of the same IKE SA: message IDs only grow
            // (§2.2).
            Some(p)
                if (p.first.spi_i, p.first.spi_r) == (h.spi_i, h.spi_r)
                    && h.message_id < p.first.message_id =>
            {
                return Accepted::Dropped(Dropped::FragmentStale)
            }
            _ => true,
        };
        if restart {
            *slot = Some(Partial::new(now, h, total));
        }
        let Some(p) = slot.as_mut() else { return Accepted::Dropped(Dropped::FragmentInvalid) };
        let at = usize::from(number) - 1;
        if p.parts[at].is_some() {
            return Accepted::Dropped(Dropped::FragmentDuplicate);
        }
        if p.bytes + msg.len() > MAX_REASSEMBLY_BYTES {
            *slot = None;
            return Accepted::Dropped(Dropped::FragmentTooLarge);
        }
        p.bytes += msg.len();
        p.parts[at] = Some(msg.to_vec());
        if p.parts.iter().any(Option::is_none) {
            return Accepted::Kept;
        }
        let whole: Vec<&[u8]> = p.parts.iter().flatten().map(Vec::as_slice).collect();
        let message = reassembled(&p.first, &whole);
        *slot = None;
        Accepted::Complete(message)
    }

    /// An unfragmented message with header `h` was taken: fragments of
    /// the same message held are not needed any more (§2.6.1).
    pub fn taken_whole(&mut self, h: &Header) {
        let slot = &mut self.slots[usize::from(h.is_response())];
        if slot.as_ref().is_some_and(|p| p.same_message(h)) {
            *slot = None;
        }
    }

    /// Discards what has waited [`REASSEMBLY_TIMEOUT`]; returns how many
    /// messages.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|p| now >= p.started + REASSEMBLY_TIMEOUT) {
                *slot = None;
                n += 1;
            }
        }
        n
    }

    /// When [`Reassembly::expire`] next has work.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|p| p.started + REASSEMBLY_TIMEOUT).min()
    }

    /// How many messages are being put together (0 to 2).
    pub fn held(&self) -> usize {
        self.slots.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    use super::super::sk::tests::{pair, suites, Counting};
    use super::super::wire::PayloadChain;
    use super::*;
    use zeroize::Zeroizing;

    fn header(id: u32) -> Header {
        Header { message_id: id, ..super::super::sk::tests::header() }
    }

    /// A message of `n` bytes of inner payloads: a Nonce and a Vendor ID.
    fn big(i: &mut SkCipher, id: u32, n: usize) -> Vec<u8> {
        let mut c = PayloadChain::new();
        c.push(PayloadType::Nonce, &(0..n - 9).map(|b| b as u8).collect::<Vec<_>>());
        c.push(PayloadType::VendorId, b"v");
        assert_eq!(c.bytes().unwrap().len(), n);
        i.seal(&header(id), &c, &mut Counting(7)).unwrap()
    }

    #[test]
    fn max_message_takes_off_ip_udp_and_the_marker() {
        let v4: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let v4n: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:500".parse().unwrap();
        assert_eq!(max_message(1280, v4, v4), 1252);
        assert_eq!(max_message(1280, v4n, v4n), 1248);
        assert_eq!(max_message(1280, v6, v6), 1232);
        assert_eq!(max_message(20, v6, v6), 0);
    }

    #[test]
    fn fragments_fit_and_open_to_the_message_in_every_suite() {
        for suite in suites() {
            let (mut i, r) = pair(suite);
            let msg = big(&mut i, 1, 5000);
            let whole = r.open(&msg).unwrap();
            assert_eq!(fragment(&mut i, &msg, msg.len(), &mut Counting(1)).unwrap(), None);
            let frags = fragment(&mut i, &msg, 1252, &mut Counting(1)).unwrap().unwrap();
            assert_eq!(frags.len(), 5000usize.div_ceil(i.fragment_room(1252)), "{suite:?}");
            let mut r_asm = Reassembly::default();
            let now = Instant::now();
            for (k, f) in frags.iter().enumerate() {
                assert!(f.len() <= 1252, "{suite:?}: {}", f.len());
                let h = Header::parse(f).unwrap();
                assert_eq!((h.next_payload, h.message_id), (53, 1));
                let o = r.open_fragment(f).unwrap();
                assert_eq!((usize::from(o.number), usize::from(o.total)), (k + 1, frags.len()));
                assert_eq!(o.first, if k == 0 { whole.first } else { 0 });
                // The other side's keys do not open it.
                assert_eq!(i.open_fragment(f).unwrap_err(), SkError::BadIcv);
                match r_asm.accept(now, &o, f) {
                    Accepted::Complete(m) => {
                        assert_eq!(k + 1, frags.len());
                        let back = r.open(&m).unwrap();
                        assert_eq!((&back.plaintext[..], back.first), (&whole.plaintext[..], whole.first));
                        assert_eq!(back.header.message_id, 1);
                    }
                    other => assert_eq!(other, Accepted::Kept),
                }
            }
            assert_eq!(r_asm.held(), 0);
        }
    }

    #[test]
    fn every_bit_of_a_fragment_is_covered() {
        for suite in suites() {
            let (mut i, r) = pair(suite);
            let msg = big(&mut i, 3, 3000);
            let f = &fragment(&mut i, &msg, 1252, &mut Counting(1)).unwrap().unwrap()[1];
            for at in [0, 8, 19, 27, 28, 31, 32, 34, 40, f.len() / 2, f.len() - 1] {
                let mut m = f.clone();
                m[at] ^= 0x01;
                assert!(r.open_fragment(&m).is_err(), "{suite:?} byte {at}");
            }
        }
    }

    #[test]
    fn a_reassembled_message_with_a_wrong_fragment_does_not_open() {
        let (mut i, r) = pair(suites()[0]);
        let (m1, m2) = (big(&mut i, 1, 3000), big(&mut i, 2, 3000));
        let a = fragment(&mut i, &m1, 1252, &mut Counting(1)).unwrap().unwrap();
        let b = fragment(&mut i, &m2, 1252, &mut Counting(1)).unwrap().unwrap();
        assert_eq!(a.len(), 3);
        let h = Header::parse(&a[0]).unwrap();
        let parts = |v: Vec<&Vec<u8>>| reassembled(&h, &v.iter().map(|x| x.as_slice()).collect::<Vec<_>>());
        assert!(r.open(&parts(a.iter().collect())).is_ok());
        // Out of order, one missing, one of another message, one twice.
        for bad in [
            vec![&a[1], &a[0], &a[2]],
            vec![&a[0], &a[1]],
            vec![&a[0], &b[1], &a[2]],
            vec![&a[0], &a[1], &a[2], &a[2]],
        ] {
            assert_eq!(r.open(&parts(bad)).unwrap_err(), SkError::BadFragments);
        }
    }

    /// An opened fragment as [`Reassembly::accept`] sees it, with a
    /// stand-in message of `len` bytes.
    fn opened(id: u32, number: u16, total: u16, response: bool, len: usize) -> (OpenedFragment, Vec<u8>) {
        let mut header = header(id);
        if response {
            header.flags = super::super::wire::FLAG_RESPONSE;
        }
        let o =
            OpenedFragment { header, number, total, first: 0, plaintext: Zeroizing::new(vec![number as u8]) };
        (o, vec![number as u8; len])
    }

    fn accept(r: &mut Reassembly, now: Instant, id: u32, number: u16, total: u16) -> Accepted {
        let (o, m) = opened(id, number, total, false, 100);
        r.accept(now, &o, &m)
    }

    #[test]
    fn reassembly_is_bounded_and_ignores_what_does_not_fit() {
        let now = Instant::now();
        let mut r = Reassembly::default();
        // Out of order, with a duplicate.
        assert_eq!(accept(&mut r, now, 5, 3, 3), Accepted::Kept);
        assert_eq!(accept(&mut r, now, 5, 3, 3), Accepted::Dropped(Dropped::FragmentDuplicate));
        assert_eq!(accept(&mut r, now, 5, 1, 3), Accepted::Kept);
        // Fewer total fragments than held: dropped (RFC 7383 §2.6.1).
        assert_eq!(accept(&mut r, now, 5, 1, 2), Accepted::Dropped(Dropped::FragmentTotalChanged));
        // An older message of the same IKE SA.
        assert_eq!(accept(&mut r, now, 4, 1, 3), Accepted::Dropped(Dropped::FragmentStale));
        // Impossible numbers.
        for (n, t) in [(0, 3), (4, 3), (1, 0), (1, MAX_FRAGMENTS + 1)] {
            assert_eq!(accept(&mut r, now, 5, n, t), Accepted::Dropped(Dropped::FragmentInvalid), "{n}/{t}");
        }
        let Accepted::Complete(m) = accept(&mut r, now, 5, 2, 3) else { panic!("not complete") };
        assert_eq!(m.len(), HEADER_LEN_FOR_TEST + 300);
        assert_eq!(&m[HEADER_LEN_FOR_TEST..][..1], &[1]);
        assert_eq!(&m[HEADER_LEN_FOR_TEST + 100..][..1], &[2]);
        assert_eq!(&m[HEADER_LEN_FOR_TEST + 200..][..1], &[3]);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn more_total_fragments_start_over_and_a_newer_message_replaces() {
        let now = Instant::now();
        let mut r = Reassembly::default();
        assert_eq!(accept(&mut r, now, 7, 1, 2), Accepted::Kept);
        // The peer cut it again smaller: 1 of 2 is forgotten.
        assert_eq!(accept(&mut r, now, 7, 2, 3), Accepted::Kept);
        assert_eq!(accept(&mut r, now, 7, 3, 3), Accepted::Kept);
        assert_eq!(accept(&mut r, now, 8, 1, 2), Accepted::Kept);
        assert_eq!(accept(&mut r, now, 7, 1, 3), Accepted::Dropped(Dropped::FragmentStale));
        assert!(matches!(accept(&mut r, now, 8, 2, 2), Accepted::Complete(_)));
    }

    #[test]
    fn requests_and_responses_are_held_apart_and_expire() {
        let now = Instant::now();
        let mut r = Reassembly::default();
        assert_eq!(accept(&mut r, now, 2, 1, 2), Accepted::Kept);
        let (o, m) = opened(2, 1, 2, true, 10);
        assert_eq!(r.accept(now + Duration::from_secs(5), &o, &m), Accepted::Kept);
        assert_eq!(r.held(), 2);
        assert_eq!(r.next_expiry(), Some(now + REASSEMBLY_TIMEOUT));
        assert_eq!(r.expire(now + REASSEMBLY_TIMEOUT - Duration::from_millis(1)), 0);
        assert_eq!(r.expire(now + REASSEMBLY_TIMEOUT), 1);
        assert_eq!(r.held(), 1);
        // The response came whole: its fragments are not needed.
        r.taken_whole(&o.header);
        assert_eq!((r.held(), r.next_expiry()), (0, None));
    }

    #[test]
    fn too_many_bytes_discard_the_message() {
        let now = Instant::now();
        let mut r = Reassembly::default();
        let (o, m) = opened(1, 1, 3, false, MAX_REASSEMBLY_BYTES / 2);
        assert_eq!(r.accept(now, &o, &m), Accepted::Kept);
        let (o, m) = opened(1, 2, 3, false, MAX_REASSEMBLY_BYTES / 2 + 1);
        assert_eq!(r.accept(now, &o, &m), Accepted::Dropped(Dropped::FragmentTooLarge));
        assert_eq!(r.held(), 0);
    }

    const HEADER_LEN_FOR_TEST: usize = super::super::wire::HEADER_LEN;
}
