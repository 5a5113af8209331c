//! The verdicts of the XDP program (`bpf/esprit_xdp.c`), as counted in its
//! per-CPU `verdicts` map. The discriminants are the map indices: this enum
//! and `enum verdict` in the C file must stay in step (a unit test checks
//! the count against the object's map size).

/// Where the XDP program sent a frame, and why.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// ARP: the kernel answers for the gateway's addresses.
    PassArp = 0,
    /// Another non-IP ethertype (including VLAN-tagged frames, for now).
    PassNonIp = 1,
    /// IPv6 neighbour discovery, link-local or multicast.
    PassIpv6Control = 2,
    /// IKE on UDP 500 to a local address.
    PassIke = 3,
    /// UDP 4500 to a local address with the RFC 3948 non-ESP marker, or a
    /// NAT keepalive.
    PassIkeNatt = 4,
    /// Other traffic to a local address (ping, ssh, fragments to us, ...).
    PassLocal = 5,
    /// Truncated or malformed headers: the kernel decides.
    PassMalformed = 6,
    /// IPv4 broadcast or multicast destination.
    PassBroadcastMulticast = 7,
    /// Transit traffic, redirected to the queue's AF_XDP socket.
    RedirectTransit = 8,
    /// ESP (IP protocol 50) to a local address, redirected.
    RedirectEsp = 9,
    /// ESP-in-UDP (UDP 4500, SPI not zero) to a local address, redirected.
    RedirectEspUdp = 10,
    /// Would have been redirected, but no socket sits at this rx queue:
    /// dropped (the program fails closed), counted per queue too.
    NoSocket = 11,
}

impl Verdict {
    /// Number of verdicts (the size of the `verdicts` map).
    pub const COUNT: usize = 12;

    /// All verdicts, in map order.
    pub const ALL: [Verdict; Self::COUNT] = [
        Verdict::PassArp,
        Verdict::PassNonIp,
        Verdict::PassIpv6Control,
        Verdict::PassIke,
        Verdict::PassIkeNatt,
        Verdict::PassLocal,
        Verdict::PassMalformed,
        Verdict::PassBroadcastMulticast,
        Verdict::RedirectTransit,
        Verdict::RedirectEsp,
        Verdict::RedirectEspUdp,
        Verdict::NoSocket,
    ];

    /// One line for operators and test failures.
    pub const fn description(self) -> &'static str {
        match self {
            Verdict::PassArp => "ARP, to the kernel",
            Verdict::PassNonIp => "non-IP ethertype, to the kernel",
            Verdict::PassIpv6Control => "IPv6 ND / link-local / multicast, to the kernel",
            Verdict::PassIke => "IKE (UDP 500) to a local address, to the kernel",
            Verdict::PassIkeNatt => "IKE or keepalive on UDP 4500 to a local address, to the kernel",
            Verdict::PassLocal => "other traffic to a local address, to the kernel",
            Verdict::PassMalformed => "truncated or malformed headers, to the kernel",
            Verdict::PassBroadcastMulticast => "IPv4 broadcast or multicast, to the kernel",
            Verdict::RedirectTransit => "transit traffic, to AF_XDP",
            Verdict::RedirectEsp => "ESP to a local address, to AF_XDP",
            Verdict::RedirectEspUdp => "ESP-in-UDP to a local address, to AF_XDP",
            Verdict::NoSocket => "meant for AF_XDP but no socket on the rx queue, dropped",
        }
    }

    /// The verdict's name in counters (`fpctl stats`).
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::PassArp => "pass-arp",
            Verdict::PassNonIp => "pass-non-ip",
            Verdict::PassIpv6Control => "pass-ipv6-control",
            Verdict::PassIke => "pass-ike",
            Verdict::PassIkeNatt => "pass-ike-natt",
            Verdict::PassLocal => "pass-local",
            Verdict::PassMalformed => "pass-malformed",
            Verdict::PassBroadcastMulticast => "pass-broadcast-multicast",
            Verdict::RedirectTransit => "redirect-transit",
            Verdict::RedirectEsp => "redirect-esp",
            Verdict::RedirectEspUdp => "redirect-esp-udp",
            Verdict::NoSocket => "drop-no-socket",
        }
    }

    /// True for the verdicts that hand the frame to an AF_XDP socket.
    pub const fn is_redirect(self) -> bool {
        matches!(self, Verdict::RedirectTransit | Verdict::RedirectEsp | Verdict::RedirectEspUdp)
    }
}

/// The verdict counters of one port, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerdictCounts(pub [u64; Verdict::COUNT]);

impl VerdictCounts {
    /// The count of one verdict.
    pub fn get(&self, v: Verdict) -> u64 {
        self.0[v as usize]
    }

    /// `self - earlier`, per verdict (saturating).
    pub fn since(&self, earlier: &VerdictCounts) -> VerdictCounts {
        let mut out = [0; Verdict::COUNT];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i].saturating_sub(earlier.0[i]);
        }
        VerdictCounts(out)
    }

    /// Frames handed to AF_XDP.
    pub fn redirected(&self) -> u64 {
        Verdict::ALL.iter().filter(|v| v.is_redirect()).map(|v| self.get(*v)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_map_order() {
        for (i, v) in Verdict::ALL.iter().enumerate() {
            assert_eq!(*v as usize, i);
        }
    }

    #[test]
    fn c_enum_matches() {
        let c = include_str!("../bpf/esprit_xdp.c");
        assert!(c.contains(&format!("V_COUNT = {}", Verdict::COUNT)));
        assert!(c.contains("V_REDIRECT_TRANSIT = 8"));
        assert!(c.contains("V_NO_SOCKET = 11"));
        // Fails closed: no socket on the queue is a drop, never a pass.
        assert!(c.contains("bpf_redirect_map(&xsks, queue, XDP_DROP)"));
        assert!(c.contains("return count(V_NO_SOCKET, XDP_DROP);"));
    }
}
