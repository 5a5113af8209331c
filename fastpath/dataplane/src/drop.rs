//! Why the fast path drops a packet: a closed list, counted per worker in a
//! fixed array and shown by `get counter`. Adding a reason means adding a
//! variant, its name and its description here, nothing else.

use core::fmt;

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $desc:literal; )+) => {
        /// A reason to drop a packet. `#[repr(u8)]`: the value indexes the
        /// per-worker counter array.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$doc])* $variant, )+
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$variant, )+ ];

            /// The operator's name for the reason (`get counter`, metrics).
            pub const fn name(self) -> &'static str {
                match self { $( DropReason::$variant => $name, )+ }
            }

            /// One line saying what happened.
            pub const fn description(self) -> &'static str {
                match self { $( DropReason::$variant => $desc, )+ }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header, or an Ethernet type we do not route.
    NotIp = "not-ip", "frame is not IPv4/IPv6 over Ethernet II";
    /// IPv4 header fails its length or version checks.
    Ipv4Malformed = "ipv4-malformed", "IPv4 header truncated or inconsistent with its length fields";
    /// IPv4 header checksum wrong.
    Ipv4BadChecksum = "ipv4-bad-checksum", "IPv4 header checksum does not verify";
    /// IPv6 header fails its checks.
    Ipv6Malformed = "ipv6-malformed", "IPv6 header truncated or inconsistent with its payload length";
    /// IPv6 transit is not routed by this release.
    Ipv6NotRouted = "ipv6-not-routed", "IPv6 transit traffic (not routed yet)";
    /// TTL would reach zero.
    TtlExceeded = "ttl-exceeded", "TTL expired in transit";
    /// No route to the destination.
    NoRoute = "no-route", "no route to the destination";
    /// The next hop's MAC address is not known (yet).
    NoNeighbor = "no-neighbor", "next hop MAC address unresolved";
    /// Addressed to the gateway but not ESP (the kernel should have had it).
    LocalNotEsp = "local-not-esp", "addressed to the gateway and not ESP";
    /// Routed to a tunnel interface that has no VPN bound.
    TunnelUnbound = "tunnel-unbound", "tunnel interface has no VPN bound";
    /// Routed into a tunnel, matched none of the VPN's proxy-IDs.
    ProxyIdMismatch = "proxy-id-mismatch", "outbound packet matches no proxy-ID of the VPN";
    /// The proxy-ID has no SA yet and its hold queue is full.
    HoldQueueFull = "hold-queue-full", "no SA yet and the proxy-ID's hold queue is full";
    /// The proxy-ID has no SA yet and holding is off.
    NoSa = "no-sa", "no SA yet for the proxy-ID (acquire sent)";
    /// The outbound SA used up its sequence numbers (RFC 4303 §3.3.3).
    SeqExhausted = "seq-exhausted", "outbound SA sequence numbers exhausted; rekey needed";
    /// The outbound SA passed its hard byte lifetime.
    SaExpired = "sa-expired", "SA past its hard lifetime";
    /// No room in the frame for the ESP headers and trailer.
    EncapNoRoom = "encap-no-room", "frame has no headroom/tailroom for ESP";
    /// Too big for the tunnel with DF set: an ICMP error went back.
    TooBigDf = "too-big-df", "exceeds the tunnel MTU with DF set (ICMP fragmentation-needed sent)";
    /// Too big for the tunnel, DF clear, and it cannot be fragmented: more
    /// fragments than a datagram may make (`mtu::MAX_FRAGMENTS`),
    /// malformed options, or a tunnel MTU below 28 bytes.
    TooBig = "too-big", "exceeds the tunnel MTU and cannot be fragmented (too many fragments or malformed options)";
    /// ESP header unreadable.
    EspMalformed = "esp-malformed", "ESP packet truncated or SPI 0";
    /// SPI not installed.
    EspUnknownSpi = "esp-unknown-spi", "no inbound SA with this SPI";
    /// ESP too short for its suite.
    EspTruncated = "esp-truncated", "ESP packet shorter than its suite's IV and ICV";
    /// Anti-replay: below the window.
    ReplayTooOld = "replay-too-old", "sequence number below the anti-replay window (RFC 4303 §3.4.3)";
    /// Anti-replay: seen before.
    ReplayDuplicate = "replay-duplicate", "sequence number already received (RFC 4303 §3.4.3)";
    /// Integrity check failed.
    IcvMismatch = "icv-mismatch", "integrity check value does not verify";
    /// Padding bytes wrong after decryption.
    BadPadding = "bad-padding", "ESP padding malformed after decryption (RFC 4303 §2.4)";
    /// Next header neither IPv4 nor IPv6.
    BadNextHeader = "bad-next-header", "ESP next header is not IPv4/IPv6 (tunnel mode only)";
    /// An ESP dummy packet (next header 59), dropped as RFC 4303 §2.6 says.
    DummyPacket = "dummy-packet", "ESP dummy packet (next header 59)";
    /// The decrypted packet is not a valid IP packet.
    InnerMalformed = "inner-malformed", "decrypted inner packet malformed";
    /// The decrypted packet is outside its SA's proxy-ID (RFC 4301 §5.2).
    InboundPolicy = "inbound-policy", "decrypted packet outside its SA's proxy-ID (RFC 4301 §5.2)";
    /// A NAT-keepalive on UDP 4500 (RFC 3948 §2.3): consumed, not an error.
    NatKeepalive = "nat-keepalive", "NAT-keepalive consumed (RFC 3948 §2.3)";
    /// A VPN monitor echo reply (ours, decrypted, addressed to the
    /// gateway): consumed and reported to the control plane, not an error.
    MonitorReply = "monitor-reply", "VPN monitor echo reply consumed (reported to the control plane)";
    /// Decrypted, addressed to the gateway, and not a VPN monitor reply:
    /// the fast path has nowhere to deliver it (the kernel never sees
    /// tunnel traffic).
    TunnelToSelf = "tunnel-to-self", "decrypted packet addressed to the gateway that is not a VPN monitor reply";
    /// More VPN monitor probes arrived than a worker keeps between loops.
    ProbeQueueFull = "probe-queue-full", "VPN monitor probe not sent: the worker's probe queue was full";
    /// Hand-off to the SA's owning worker failed: its inbox was full.
    HandoffFull = "handoff-full", "the SA's worker inbox was full";
    /// No free frame to copy a held or handed-off packet into.
    NoFrame = "no-frame", "no free UMEM frame for a held or handed-off packet";
    /// The port's transmit ring was full.
    TxRingFull = "tx-ring-full", "transmit ring full (port saturated)";
    /// Counted by the XDP program, not a worker: transit or ESP on an rx
    /// queue with no AF_XDP socket, dropped there (it fails closed).
    XdpNoSocket = "xdp-no-socket", "arrived on an rx queue with no AF_XDP socket (dropped by the XDP program)";
    /// The destination's route is a null route (`interface null`: the
    /// backstop of a withdrawn VPN route).
    NullRoute = "null-route", "destination routed to the null interface";
    /// A clear packet whose source only a tunnel may deliver: its most
    /// specific route is a tunnel interface or a null route, or it lies in
    /// a proxy-ID's remote prefix (`source.rs`).
    SpoofedSource = "spoofed-source", "clear packet from a source behind a tunnel (routed into a tunnel or null, or a proxy-ID's remote prefix)";
    /// Outer fragments (`reassembly.rs`): a datagram of more fragments
    /// than the worker keeps per datagram.
    FragTooMany = "frag-too-many", "fragmented datagram of more fragments than allowed (discarded)";
    /// Every reassembly slot was busy with another datagram.
    FragNoSlot = "frag-no-slot", "fragment of a new datagram while every reassembly slot was busy";
    /// A datagram not complete within the reassembly timeout (counted per
    /// datagram).
    FragTimeout = "frag-timeout", "fragmented datagram not complete in time (discarded)";
    /// Overlapping fragments or offsets that cannot belong to one datagram.
    FragOverlap = "frag-overlap", "overlapping fragments or inconsistent offsets (datagram discarded, RFC 791 §3.2)";
    /// A reassembled datagram would exceed the largest one kept.
    FragTooLarge = "frag-too-large", "fragmented datagram larger than reassembly allows (discarded)";
    /// Too big for the tunnel, DF clear, and the buffers for its later
    /// fragments are all waiting to be sent.
    FragNoBuffer = "frag-no-buffer", "fragmenting before encryption found no free fragment buffer";
}

/// How many reasons there are (the length of a counter array).
pub const DROP_REASON_COUNT: usize = DropReason::ALL.len();

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for DropReason {
    type Err = UnknownDropReason;
    fn from_str(s: &str) -> Result<DropReason, UnknownDropReason> {
        DropReason::ALL.iter().copied().find(|r| r.name() == s).ok_or_else(|| UnknownDropReason(s.to_owned()))
    }
}

/// A name that is not a drop reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDropReason(pub String);

impl fmt::Display for UnknownDropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown drop reason {:?}", self.0)
    }
}

impl std::error::Error for UnknownDropReason {}

/// One worker's drop counters: a plain array with one writer (the worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropCounters([u64; DROP_REASON_COUNT]);

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters([0; DROP_REASON_COUNT])
    }
}

impl DropCounters {
    #[inline]
    pub fn count(&mut self, reason: DropReason) {
        self.0[reason as usize] += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize]
    }

    /// Sum over every reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Non-zero counters, in reason order.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.get(r))).filter(|&(_, n)| n != 0)
    }

    /// Adds another worker's counters (for totals).
    pub fn add(&mut self, other: &DropCounters) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unique_and_round_trip() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "ALL is in discriminant order");
            assert_eq!(r.name().parse::<DropReason>().unwrap(), *r);
            assert!(!r.description().is_empty());
            for s in &DropReason::ALL[i + 1..] {
                assert_ne!(r.name(), s.name());
            }
        }
        assert!("no-such-reason".parse::<DropReason>().is_err());
    }

    #[test]
    fn counting() {
        let mut c = DropCounters::default();
        c.count(DropReason::ProxyIdMismatch);
        c.count(DropReason::ProxyIdMismatch);
        c.count(DropReason::IcvMismatch);
        assert_eq!(c.get(DropReason::ProxyIdMismatch), 2);
        assert_eq!(c.total(), 3);
        assert_eq!(c.nonzero().count(), 2);
    }
}
