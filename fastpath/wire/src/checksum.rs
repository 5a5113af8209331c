//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

use core::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` to a running ones'-complement sum (not yet folded).
///
/// Sums 32-bit big-endian words into a 64-bit accumulator and folds once at
/// the end: the ones'-complement sum is the same in any word size because
/// 2^16 = 1 (mod 2^16 - 1) (RFC 1071 §2(A), "deferred carries").
#[inline]
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    let mut wide = u64::from(acc);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        wide += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    // The tail starts at a multiple of 4, so 16-bit pairs stay aligned.
    match *words.remainder() {
        [a, b, c] => wide += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        [a, b] => wide += u64::from(u16::from_be_bytes([a, b])),
        [a] => wide += u64::from(a) << 8,
        _ => {}
    }
    while wide > 0xffff_ffff {
        wide = (wide & 0xffff_ffff) + (wide >> 32);
    }
    let folded = (wide & 0xffff) + (wide >> 16);
    // At most 0x1fffe: fits, and `finish` folds the last carry.
    folded as u32
}

/// Folds a running sum to 16 bits and complements it.
#[inline]
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Checksum of `data` on its own (e.g. an IPv4 header or an ICMP message).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(0, data))
}

/// Running sum of the IPv4 pseudo-header (RFC 768, RFC 793 §3.1).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc + u32::from(protocol) + u32::from(len)
}

/// Running sum of the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc += (len >> 16) + (len & 0xffff);
    acc + u32::from(next_header)
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered
/// data changed from `old` to `new`, without re-summing the data.
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!check) + u32::from(!old) + u32::from(new);
    finish(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example bytes: 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), checksum(&[0x12, 0x34, 0x56, 0x00]));
    }

    #[test]
    fn wide_sum_matches_a_plain_16_bit_sum() {
        fn reference(data: &[u8]) -> u16 {
            let mut acc: u32 = 0;
            for c in data.chunks(2) {
                acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
                acc = (acc & 0xffff) + (acc >> 16);
            }
            !(acc as u16)
        }
        let mut x: u32 = 0x1234_5678;
        let mut data = Vec::new();
        for len in 0..300usize {
            assert_eq!(checksum(&data), reference(&data), "length {len}");
            assert_eq!(finish(sum(0xffff, &data)), finish(sum(0, &data) + 0xffff), "length {len}");
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            data.push(if len % 7 == 0 { 0xff } else { x as u8 });
        }
    }

    #[test]
    fn incremental_matches_full() {
        let mut data = [0x45u8, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01];
        let before = checksum(&data);
        let old = u16::from_be_bytes([data[8], data[9]]);
        data[8] -= 1; // TTL decrement
        let new = u16::from_be_bytes([data[8], data[9]]);
        assert_eq!(update16(before, old, new), checksum(&data));
    }
}
