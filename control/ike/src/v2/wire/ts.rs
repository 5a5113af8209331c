//! Traffic Selector payloads, TSi and TSr (RFC 7296 §3.13).
//!
//! ```text
//! payload   0 number of TSs  1..4 reserved  4.. traffic selectors
//! selector  0 TS type  1 IP protocol ID  2..4 selector length
//!           4..6 start port  6..8 end port  8.. start address, end address
//! ```
//!
//! TS_IPV4_ADDR_RANGE (7) is 16 bytes, TS_IPV6_ADDR_RANGE (8) is 40
//! (§3.13.1); other types are refused. Port ranges are kept as sent: a
//! start above the end is the OPAQUE range of §3.13.1, not an error.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, need, Error, Result};

/// TS type of an IPv4 address range (§3.13.1).
pub const TS_IPV4_ADDR_RANGE: u8 = 7;
/// TS type of an IPv6 address range (§3.13.1).
pub const TS_IPV6_ADDR_RANGE: u8 = 8;
const TS_PAYLOAD_FIXED: usize = 4;
const TS_V4_LEN: usize = 16;
const TS_V6_LEN: usize = 40;

/// The address range of a selector: both ends of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TsAddresses {
    /// TS_IPV4_ADDR_RANGE.
    V4 {
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
    },
    /// TS_IPV6_ADDR_RANGE.
    V6 {
        /// First address.
        start: Ipv6Addr,
        /// Last address.
        end: Ipv6Addr,
    },
}

/// One traffic selector (§3.13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// IP protocol (0: any).
    pub protocol: u8,
    /// First port (0 with 65535: any).
    pub start_port: u16,
    /// Last port.
    pub end_port: u16,
    /// The address range.
    pub addresses: TsAddresses,
}

impl TrafficSelector {
    fn parse(rest: &[u8], at: usize) -> Result<(TrafficSelector, usize)> {
        need("traffic selector", at, rest, 4)?;
        let len = usize::from(be16(rest, 2));
        let want = match rest[0] {
            TS_IPV4_ADDR_RANGE => TS_V4_LEN,
            TS_IPV6_ADDR_RANGE => TS_V6_LEN,
            other => {
                return Err(Error::BadValue { what: "traffic selector type", at, value: u32::from(other) })
            }
        };
        if len != want || len > rest.len() {
            return Err(Error::BadLength { what: "traffic selector", at, len, room: rest.len().min(want) });
        }
        let addresses = if want == TS_V4_LEN {
            let a = |i: usize| Ipv4Addr::new(rest[i], rest[i + 1], rest[i + 2], rest[i + 3]);
            TsAddresses::V4 { start: a(8), end: a(12) }
        } else {
            let a = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&rest[i..i + 16]);
                Ipv6Addr::from(o)
            };
            TsAddresses::V6 { start: a(8), end: a(24) }
        };
        let ts = TrafficSelector {
            protocol: rest[1],
            start_port: be16(rest, 4),
            end_port: be16(rest, 6),
            addresses,
        };
        Ok((ts, len))
    }

    /// Appends the selector to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let (kind, len) = match self.addresses {
            TsAddresses::V4 { .. } => (TS_IPV4_ADDR_RANGE, TS_V4_LEN as u16),
            TsAddresses::V6 { .. } => (TS_IPV6_ADDR_RANGE, TS_V6_LEN as u16),
        };
        out.extend_from_slice(&[kind, self.protocol]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.start_port.to_be_bytes());
        out.extend_from_slice(&self.end_port.to_be_bytes());
        match self.addresses {
            TsAddresses::V4 { start, end } => {
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            TsAddresses::V6 { start, end } => {
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
        }
    }

    /// Appends a TSi/TSr body holding `selectors` (at most 255: more are
    /// left out, as the count is one byte).
    pub fn emit_payload(selectors: &[TrafficSelector], out: &mut Vec<u8>) {
        let selectors = &selectors[..selectors.len().min(255)];
        out.extend_from_slice(&[selectors.len() as u8, 0, 0, 0]);
        for ts in selectors {
            ts.emit(out);
        }
    }
}

/// A checked TSi or TSr payload body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsPayload<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> TsPayload<'a> {
    /// Checks a TS payload body starting at offset `at` of the message.
    pub fn parse(body: &'a [u8], at: usize) -> Result<TsPayload<'a>> {
        need("Traffic Selector payload", at, body, TS_PAYLOAD_FIXED)?;
        let count = usize::from(body[0]);
        let mut pos = TS_PAYLOAD_FIXED;
        let mut found = 0;
        while pos < body.len() {
            let (_, len) = TrafficSelector::parse(&body[pos..], at + pos)?;
            pos += len;
            found += 1;
        }
        if found != count {
            return Err(Error::BadCount { what: "traffic selectors", at, count, found });
        }
        Ok(TsPayload { body, at })
    }

    /// The selectors, in order.
    pub fn selectors(&self) -> TsIter<'a> {
        TsIter { rest: self.body.get(TS_PAYLOAD_FIXED..).unwrap_or(&[]), at: self.at + TS_PAYLOAD_FIXED }
    }
}

/// Walks the selectors of a checked TS payload.
#[derive(Debug, Clone)]
pub struct TsIter<'a> {
    rest: &'a [u8],
    at: usize,
}

impl Iterator for TsIter<'_> {
    type Item = TrafficSelector;

    fn next(&mut self) -> Option<TrafficSelector> {
        let (ts, len) = TrafficSelector::parse(self.rest, self.at).ok()?;
        self.rest = &self.rest[len..];
        self.at += len;
        Some(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4() -> TrafficSelector {
        TrafficSelector {
            protocol: 6,
            start_port: 443,
            end_port: 443,
            addresses: TsAddresses::V4 {
                start: Ipv4Addr::new(10, 1, 0, 0),
                end: Ipv4Addr::new(10, 1, 255, 255),
            },
        }
    }

    fn v6() -> TrafficSelector {
        TrafficSelector {
            protocol: 0,
            start_port: 0,
            end_port: 65535,
            addresses: TsAddresses::V6 {
                start: "2001:db8::".parse().unwrap(),
                end: "2001:db8::ffff".parse().unwrap(),
            },
        }
    }

    #[test]
    fn ipv4_and_ipv6_ranges_round_trip() {
        let mut out = Vec::new();
        TrafficSelector::emit_payload(&[v4(), v6()], &mut out);
        assert_eq!(out.len(), 4 + 16 + 40);
        assert_eq!(hex::encode(&out[..20]), "020000000706001001bb01bb0a0100000a01ffff");
        let p = TsPayload::parse(&out, 0).unwrap();
        assert_eq!(p.selectors().collect::<Vec<_>>(), vec![v4(), v6()]);
    }

    #[test]
    fn bad_selectors_refused() {
        let mut out = Vec::new();
        TrafficSelector::emit_payload(&[v4()], &mut out);
        let mut b = out.clone();
        b[4] = 9;
        assert_eq!(
            TsPayload::parse(&b, 100),
            Err(Error::BadValue { what: "traffic selector type", at: 104, value: 9 })
        );
        let mut b = out.clone();
        b[7] = 20;
        assert!(matches!(TsPayload::parse(&b, 100), Err(Error::BadLength { at: 104, len: 20, .. })));
        let mut b = out.clone();
        b[0] = 2;
        assert_eq!(
            TsPayload::parse(&b, 100),
            Err(Error::BadCount { what: "traffic selectors", at: 100, count: 2, found: 1 })
        );
        for cut in 0..out.len() {
            assert!(TsPayload::parse(&out[..cut], 0).is_err(), "cut {cut}");
        }
    }
}
