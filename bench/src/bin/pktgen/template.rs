//! The generator's frame and the sink's check of it. Sans-IO: bytes in,
//! bytes out, no clock, no socket (unit tests at the bottom).
//!
//! ```text
//! | Ethernet 14 | IPv4 20 (DF, TTL 64, no options) | UDP 8 (checksum 0) |
//! | magic "eSPg" 4 | sequence number 8 (BE) | send time ns 8 (BE) | zeros ... |
//! ```
//!
//! `size` is the Ethernet frame as handed to the NIC, without FCS (so a
//! "64 B" frame carries a 50-byte IP packet). The UDP checksum is 0
//! (allowed over IPv4, RFC 768), so per packet only the UDP source port
//! (the flow), the sequence number and the send time change, and the IPv4
//! header checksum stays the template's.

use std::net::Ipv4Addr;
use std::ops::Range;

/// The generator's IMIX: the simple 7:4:1 mix of 64, 570 and 1400-byte
/// frames (without FCS), interleaved so every 12 packets carry the whole
/// mix (mean 344 B). The classic simple IMIX's large frame is 1518 B with
/// FCS (a 1500-byte IP packet); tunnel-mode ESP adds some 60 bytes to it,
/// so with DF set it could not cross a 1500-byte WAN without a "needs
/// fragmentation" drop: the large frame here is the bench's largest fixed
/// size instead, so every path carries the same mix.
pub(crate) const IMIX: [usize; 12] = [64, 570, 64, 64, 570, 64, 1400, 64, 570, 64, 64, 570];

/// Smallest frame that holds the payload header.
pub(crate) const MIN_FRAME: usize = field::TIME.end;
/// What the generator compares before reusing a frame as is: Ethernet and
/// IPv4 headers (rebuilt if anything else wrote into the chunk).
pub(crate) const FIXED: Range<usize> = 0..field::UDP_SPORT.start;

mod field {
    use std::ops::Range;
    pub(super) const ETH_DST: Range<usize> = 0..6;
    pub(super) const ETH_SRC: Range<usize> = 6..12;
    pub(super) const ETHERTYPE: Range<usize> = 12..14;
    pub(super) const IP: Range<usize> = 14..34;
    pub(super) const IP_VER_IHL: usize = 14;
    pub(super) const IP_TOTAL_LEN: Range<usize> = 16..18;
    pub(super) const IP_PROTO: usize = 23;
    pub(super) const IP_CSUM: Range<usize> = 24..26;
    pub(super) const IP_SRC: Range<usize> = 26..30;
    pub(super) const IP_DST: Range<usize> = 30..34;
    pub(super) const UDP_SPORT: Range<usize> = 34..36;
    pub(super) const UDP_DPORT: Range<usize> = 36..38;
    pub(super) const UDP_LEN: Range<usize> = 38..40;
    pub(super) const UDP_CSUM: Range<usize> = 40..42;
    pub(super) const MAGIC: Range<usize> = 42..46;
    pub(super) const SEQ: Range<usize> = 46..54;
    pub(super) const TIME: Range<usize> = 54..62;
}

const MAGIC: [u8; 4] = *b"eSPg";
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const PROTO_UDP: u8 = 17;
const PROTO_ESP: u8 = 50;
const NATT_PORT: [u8; 2] = 4500u16.to_be_bytes();

/// What every generated frame of one run has in common.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) src_mac: [u8; 6],
    pub(crate) dst_mac: [u8; 6],
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
    /// First UDP source port; flow `k` uses `sport + k`.
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    /// Frame length without FCS.
    pub(crate) size: usize,
}

impl Spec {
    /// Checks the size against what a frame needs and can hold.
    pub(crate) fn check(&self, max: usize) -> Result<(), String> {
        if self.size < MIN_FRAME || self.size > max {
            return Err(format!("--size {} must be within {MIN_FRAME}..={max}", self.size));
        }
        Ok(())
    }

    /// Writes the whole frame (sequence 0, time 0, flow 0) into `buf`,
    /// which must be `self.size` bytes long.
    pub(crate) fn emit(&self, buf: &mut [u8]) {
        debug_assert_eq!(buf.len(), self.size);
        buf.fill(0);
        buf[field::ETH_DST].copy_from_slice(&self.dst_mac);
        buf[field::ETH_SRC].copy_from_slice(&self.src_mac);
        buf[field::ETHERTYPE].copy_from_slice(&ETHERTYPE_IPV4);
        let ip_len = (self.size - 14) as u16;
        let ip = &mut buf[field::IP];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64; // TTL
        ip[9] = PROTO_UDP;
        ip[12..16].copy_from_slice(&self.src.octets());
        ip[16..20].copy_from_slice(&self.dst.octets());
        let sum = ipv4_checksum(ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        buf[field::UDP_SPORT].copy_from_slice(&self.sport.to_be_bytes());
        buf[field::UDP_DPORT].copy_from_slice(&self.dport.to_be_bytes());
        buf[field::UDP_LEN].copy_from_slice(&(ip_len - 20).to_be_bytes());
        buf[field::UDP_CSUM].copy_from_slice(&[0, 0]);
        buf[field::MAGIC].copy_from_slice(&MAGIC);
    }

    /// The bytes [`FIXED`] of every frame of this run.
    pub(crate) fn fixed(&self) -> Vec<u8> {
        let mut f = vec![0u8; self.size];
        self.emit(&mut f);
        f.truncate(FIXED.end);
        f
    }
}

/// `--size`: a frame length, or `imix` for [`IMIX`]; the frame lengths of
/// the run, sent round-robin.
pub(crate) fn parse_sizes(s: &str) -> Result<Vec<usize>, String> {
    if s.eq_ignore_ascii_case("imix") {
        return Ok(IMIX.to_vec());
    }
    s.parse::<usize>().map(|n| vec![n]).map_err(|_| format!("--size {s:?}: a frame length in bytes, or imix"))
}

/// Per packet: the flow (UDP source port), sequence number and send time.
#[inline]
pub(crate) fn stamp(buf: &mut [u8], sport: u16, seq: u64, time_ns: u64) {
    buf[field::UDP_SPORT].copy_from_slice(&sport.to_be_bytes());
    buf[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    buf[field::TIME].copy_from_slice(&time_ns.to_be_bytes());
}

/// With several destinations (`--dst-count`): writes the IPv4 destination
/// and the header checksum that goes with it.
#[inline]
pub(crate) fn set_dst(buf: &mut [u8], dst: Ipv4Addr) {
    buf[field::IP_DST].copy_from_slice(&dst.octets());
    buf[field::IP_CSUM].copy_from_slice(&[0, 0]);
    let sum = ipv4_checksum(&buf[field::IP]);
    buf[field::IP_CSUM].copy_from_slice(&sum.to_be_bytes());
}

/// With several destinations: the frame's Ethernet and IPv4 headers are
/// the template's `fixed` bytes, destination and checksum aside.
#[inline]
pub(crate) fn same_but_dst(buf: &[u8], fixed: &[u8]) -> bool {
    let head = 0..field::IP_CSUM.start;
    buf[head.clone()] == fixed[head] && buf[field::IP_SRC] == fixed[field::IP_SRC]
}

/// What the sink makes of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Ours, of the expected size (and destination, if one was given).
    Good { seq: u64, time_ns: u64 },
    /// Ours (magic present) but of another size or destination: mangled.
    Mangled,
    /// Not IPv4/UDP from the generator (ESP that was not decrypted, ARP...).
    Foreign,
}

/// Classifies a received frame. Never panics on short or odd input.
#[inline]
pub(crate) fn inspect(frame: &[u8], size: Option<usize>, dst: Option<Ipv4Addr>) -> Seen {
    if frame.len() < MIN_FRAME
        || frame[field::ETHERTYPE] != ETHERTYPE_IPV4
        || frame[field::IP_VER_IHL] != 0x45
        || frame[field::IP_PROTO] != PROTO_UDP
        || frame[field::MAGIC] != MAGIC
    {
        return Seen::Foreign;
    }
    let ip_len = u16::from_be_bytes([frame[field::IP_TOTAL_LEN.start], frame[field::IP_TOTAL_LEN.start + 1]]);
    let size_ok = usize::from(ip_len) + 14 == frame.len() && size.is_none_or(|s| s == frame.len());
    let dst_ok = dst.is_none_or(|d| frame[field::IP_DST] == d.octets());
    if !size_ok || !dst_ok {
        return Seen::Mangled;
    }
    let be64 = |r: Range<usize>| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&frame[r]);
        u64::from_be_bytes(b)
    };
    Seen::Good { seq: be64(field::SEQ), time_ns: be64(field::TIME) }
}

/// Classifies a received frame as ESP the generator's traffic became
/// (the encrypt-only bench puts the sink on the WAN): IPv4 protocol 50, or
/// UDP to port 4500 with a non-zero SPI (RFC 3948 §2.2). `seq` is the ESP
/// sequence number (RFC 4303 §2.2), so loss shows as gaps as for clear
/// traffic. Never panics.
#[inline]
pub(crate) fn inspect_esp(frame: &[u8], size: Option<usize>) -> Seen {
    if frame.len() < field::IP.end
        || frame[field::ETHERTYPE] != ETHERTYPE_IPV4
        || frame[field::IP_VER_IHL] != 0x45
    {
        return Seen::Foreign;
    }
    let esp = match frame[field::IP_PROTO] {
        PROTO_ESP => field::IP.end,
        PROTO_UDP if frame.get(field::UDP_DPORT) == Some(&NATT_PORT[..]) => field::UDP_CSUM.end,
        _ => return Seen::Foreign,
    };
    let Some(hdr) = frame.get(esp..esp + 8) else { return Seen::Foreign };
    if hdr[..4] == [0, 0, 0, 0] {
        return Seen::Foreign; // IKE on 4500 (non-ESP marker)
    }
    if size.is_some_and(|s| s != frame.len()) {
        return Seen::Mangled;
    }
    Seen::Good { seq: u64::from(u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]])), time_ns: 0 }
}

/// RFC 791 header checksum (RFC 1071 one's-complement sum) of a header
/// whose checksum field is zero.
fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 =
        hdr.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub(crate) fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(size: usize) -> Spec {
        Spec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: Ipv4Addr::new(10, 1, 1, 10),
            dst: Ipv4Addr::new(10, 2, 1, 10),
            sport: 10000,
            dport: 9,
            size,
        }
    }

    #[test]
    fn emit_64_byte_frame() {
        let mut f = vec![0xaa; 64];
        spec(64).emit(&mut f);
        stamp(&mut f, 10003, 0x0102_0304_0506_0708, 42);
        let want = "020000000002 020000000001 0800\
                    4500 0032 0000 4000 4011 24a5 0a01010a 0a02010a\
                    2713 0009 001e 0000\
                    65535067 0102030405060708 000000000000002a 0000";
        let got: String = f.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want.replace(' ', ""));
        // The header checksum verifies: the sum over the header is 0xffff.
        assert_eq!(ipv4_checksum(&f[14..34]), 0);
    }

    #[test]
    fn inspect_round_trip_and_rejects() {
        let s = spec(1400);
        let mut f = vec![0; 1400];
        s.emit(&mut f);
        stamp(&mut f, 10000, 7, 99);
        assert_eq!(inspect(&f, Some(1400), Some(s.dst)), Seen::Good { seq: 7, time_ns: 99 });
        assert_eq!(inspect(&f, Some(64), None), Seen::Mangled);
        assert_eq!(inspect(&f, None, Some(s.src)), Seen::Mangled);
        assert_eq!(inspect(&f[..1399], None, None), Seen::Mangled, "IP length disagrees");
        assert_eq!(inspect(&f[..20], None, None), Seen::Foreign);
        f[23] = 50; // ESP
        assert_eq!(inspect(&f, None, None), Seen::Foreign);
        assert_eq!(s.fixed(), {
            let mut g = vec![0; 1400];
            s.emit(&mut g);
            g[..34].to_vec()
        });
    }

    #[test]
    fn set_dst_keeps_the_header_checksum_right() {
        let s = spec(64);
        let mut f = vec![0; 64];
        s.emit(&mut f);
        let fixed = s.fixed();
        set_dst(&mut f, Ipv4Addr::new(10, 2, 100, 255));
        assert_eq!(&f[30..34], &[10, 2, 100, 255]);
        assert_eq!(ipv4_checksum(&f[14..34]), 0, "the header sums to 0xffff");
        assert!(same_but_dst(&f, &fixed));
        assert_eq!(
            inspect(&f, Some(64), Some(Ipv4Addr::new(10, 2, 100, 255))),
            Seen::Good { seq: 0, time_ns: 0 }
        );
        f[8] ^= 1; // the source MAC
        assert!(!same_but_dst(&f, &fixed));
        f[8] ^= 1;
        f[29] ^= 1; // the source address
        assert!(!same_but_dst(&f, &fixed));
    }

    #[test]
    fn inspect_esp_finds_the_sequence_number() {
        let mut f = vec![0; 120];
        spec(120).emit(&mut f);
        assert_eq!(inspect_esp(&f, None), Seen::Foreign, "clear UDP is not ESP");
        f[23] = PROTO_ESP;
        f[34..42].copy_from_slice(&[0, 0, 0x10, 0x11, 0, 0, 1, 2]);
        assert_eq!(inspect_esp(&f, None), Seen::Good { seq: 258, time_ns: 0 });
        assert_eq!(inspect_esp(&f, Some(64)), Seen::Mangled);
        f[23] = PROTO_UDP;
        f[36..38].copy_from_slice(&4500u16.to_be_bytes());
        f[42..50].copy_from_slice(&[0, 0, 0x10, 0x11, 0, 0, 0, 9]);
        assert_eq!(inspect_esp(&f, Some(120)), Seen::Good { seq: 9, time_ns: 0 });
        f[42..46].copy_from_slice(&[0; 4]);
        assert_eq!(inspect_esp(&f, None), Seen::Foreign, "IKE on 4500");
        assert_eq!(inspect_esp(&f[..30], None), Seen::Foreign);
    }

    #[test]
    fn size_and_mac_checks() {
        assert!(spec(61).check(1664).is_err());
        assert!(spec(62).check(1664).is_ok());
        assert!(spec(1665).check(1664).is_err());
        assert_eq!(parse_mac("02:0a:FF:00:01:9c").unwrap(), [2, 10, 255, 0, 1, 0x9c]);
        assert!(parse_mac("02:0a:ff:00:01").is_err());
        assert!(parse_mac("02:0a:ff:00:01:zz").is_err());
    }

    #[test]
    fn imix_sizes() {
        assert_eq!(parse_sizes("1400"), Ok(vec![1400]));
        let imix = parse_sizes("IMIX").unwrap();
        assert_eq!(imix.len(), 12);
        for (size, count) in [(64, 7), (570, 4), (1400, 1)] {
            assert_eq!(imix.iter().filter(|&&s| s == size).count(), count);
        }
        assert_eq!(imix.iter().sum::<usize>(), 12 * 344);
        assert!(parse_sizes("jumbo").unwrap_err().contains("imix"));
        assert!(parse_sizes("-1").is_err());
    }
}
