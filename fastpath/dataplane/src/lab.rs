//! An in-memory copy of the seed's topology (KB16008 §III): two gateways,
//! two subnets behind each, one tunnel interface with four proxy-IDs and
//! their SA pairs keyed by hand. Tests, benches and fuzz targets build on
//! it; nothing here touches a NIC.

// Fixed, known-good inputs: a failure is a bug in this file.
#![allow(clippy::expect_used)]

use core::net::Ipv4Addr;
use std::sync::Arc;

use esprit_esp::{InboundConfig, InboundSa, OutboundConfig, OutboundSa, Suite};
use esprit_policy::{ProxyId, ProxyIdTable};
use esprit_wire::ethernet::{self, ethertype, MacAddr};
use esprit_wire::{ip_proto, ipv4, udp};

use crate::update::VecOutput;
use crate::{
    InboundInstall, Lifetime, NeighborTable, NextHop, OutboundInstall, PortId, PortInfo, Route, RouteTable,
    SaId, TunnelConf, TunnelId, Update, VpnConf, VpnId, Worker, WorkerConfig, WorkerId,
};

pub const LAN: PortId = PortId(0);
pub const WAN: PortId = PortId(1);
pub const TUNNEL: TunnelId = TunnelId(1);
pub const VPN: VpnId = VpnId(1);

/// One side of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn peer(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    fn n(self) -> u8 {
        match self {
            Side::A => 1,
            Side::B => 2,
        }
    }
    /// The gateway's WAN address (192.0.2.1 / 192.0.2.2).
    pub fn wan_addr(self) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, self.n())
    }
    pub fn wan_mac(self) -> MacAddr {
        MacAddr([2, 0, 0, 0, self.n(), 1])
    }
    pub fn lan_mac(self) -> MacAddr {
        MacAddr([2, 0, 0, 0, self.n(), 0])
    }
    /// A host on subnet `s` (1 or 2) behind this side: 10.<side>.<s>.10.
    pub fn host(self, s: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.n(), s, 10)
    }
    pub fn host_mac(self, s: u8) -> MacAddr {
        MacAddr([2, 0, 0, self.n(), s, 10])
    }
}

/// The four proxy-IDs of the seed, seen from `side`: local subnets
/// 10.<side>.1.0/24 and 10.<side>.2.0/24, remote likewise, service ANY.
pub fn seed_proxy_ids(side: Side) -> Vec<ProxyId> {
    let mut v = Vec::new();
    for l in 1..=2u8 {
        for r in 1..=2u8 {
            let text =
                format!("local-ip 10.{}.{l}.0/24 remote-ip 10.{}.{r}.0/24 ANY", side.n(), side.peer().n());
            v.push(text.parse().expect("lab proxy-ID"));
        }
    }
    v
}

/// SPI of the SA carrying proxy-ID `i` (in A's order) from `from`.
pub fn spi(from: Side, i: usize) -> u32 {
    0x1000 * u32::from(from.n()) + i as u32 + 0x100
}

fn key_material(suite: Suite, from: Side, i: usize) -> (Vec<u8>, Vec<u8>) {
    let seed = (from.n() << 4) | i as u8;
    let encr = (0..suite.encr_key_len()).map(|k| seed ^ (k as u8).wrapping_mul(7)).collect();
    let integ = (0..suite.integ_key_len()).map(|k| seed ^ (k as u8).wrapping_mul(13) ^ 0x5a).collect();
    (encr, integ)
}

/// The proxy-ID index on `side` that corresponds to index `i` on A.
fn mirror(side: Side, i: usize) -> usize {
    match side {
        Side::A => i,
        // A's (l, r) is B's (r, l): index l*2+r becomes r*2+l.
        Side::B => (i % 2) * 2 + i / 2,
    }
}

/// Options of a lab gateway.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub suite: Suite,
    pub udp_encap: bool,
    pub check: bool,
    pub replay_window: u32,
    /// Install SAs for these proxy-IDs (A's indices); the rest stay empty.
    pub installed: Vec<usize>,
    pub tunnel_mtu: u16,
    /// The VPN has only this one of the four proxy-IDs (A's index), and
    /// only its SAs are installed.
    pub single: Option<usize>,
    /// Extended sequence numbers on every SA (RFC 4303 §2.2.1).
    pub esn: bool,
    /// The SAs start as if this many packets had crossed each of them:
    /// outbound counters resume after it, inbound windows above it.
    pub last_seq: u64,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            suite: Suite::Aes128Gcm16,
            udp_encap: false,
            check: true,
            replay_window: 64,
            installed: vec![0, 1, 2, 3],
            tunnel_mtu: 1400,
            single: None,
            esn: false,
            last_seq: 0,
        }
    }
}

/// A worker configured as gateway `side` of the lab.
pub fn gateway(side: Side, opts: &LabOptions) -> Worker {
    gateway_with(side, opts, WorkerConfig::new(WorkerId(0)))
}

/// Gateway `side` as a worker of this configuration (it owns every SA).
pub fn gateway_with(side: Side, opts: &LabOptions, cfg: WorkerConfig) -> Worker {
    let me = cfg.id;
    let mut w = Worker::new(cfg);
    let mut out = VecOutput::default();
    w.apply(
        Update::Ports(vec![
            PortInfo {
                name: "lan0".into(),
                mac: side.lan_mac(),
                mtu: 1500,
                addrs: vec![Ipv4Addr::new(10, side.n(), 1, 1), Ipv4Addr::new(10, side.n(), 2, 1)],
            },
            PortInfo { name: "wan0".into(), mac: side.wan_mac(), mtu: 1500, addrs: vec![side.wan_addr()] },
        ]),
        &mut out,
    );
    let peer = side.peer();
    let routes = RouteTable::new([
        Route {
            prefix: Ipv4Addr::new(10, side.n(), 0, 0),
            len: 16,
            next_hop: NextHop::Connected { port: LAN },
        },
        Route { prefix: Ipv4Addr::new(192, 0, 2, 0), len: 24, next_hop: NextHop::Connected { port: WAN } },
        Route { prefix: Ipv4Addr::new(10, peer.n(), 1, 0), len: 24, next_hop: NextHop::Tunnel(TUNNEL) },
        Route { prefix: Ipv4Addr::new(10, peer.n(), 2, 0), len: 24, next_hop: NextHop::Tunnel(TUNNEL) },
        // Routed into the tunnel, covered by no proxy-ID: the seed's
        // "traffic not matching the proxy-ID will be dropped".
        Route { prefix: Ipv4Addr::new(10, peer.n(), 3, 0), len: 24, next_hop: NextHop::Tunnel(TUNNEL) },
    ])
    .expect("lab routes");
    w.apply(Update::Routes(Arc::new(routes)), &mut out);
    let mut n = NeighborTable::default();
    n.insert(WAN, peer.wan_addr(), peer.wan_mac());
    for s in 1..=2 {
        n.insert(LAN, side.host(s), side.host_mac(s));
    }
    w.apply(Update::Neighbors(Arc::new(n)), &mut out);
    w.apply(Update::Tunnel(TunnelConf { id: TUNNEL, mtu: opts.tunnel_mtu, vpn: Some(VPN) }), &mut out);
    let all = seed_proxy_ids(side);
    let (pids, installed) = match opts.single {
        Some(i) => (vec![all[mirror(side, i)]], vec![i]),
        None => (all, opts.installed.clone()),
    };
    let table = ProxyIdTable::new(pids.clone(), opts.check).expect("lab proxy-IDs");
    w.apply(Update::Vpn(VpnConf { id: VPN, table: Arc::new(table) }), &mut out);
    for &i in &installed {
        let (out_sa, in_sa) = sa_pair(side, i, opts);
        let j = if opts.single.is_some() { 0 } else { mirror(side, i) };
        w.apply(
            Update::Outbound(OutboundInstall {
                id: SaId(u64::from(spi(side, i))),
                vpn: VPN,
                proxy_id: pids[j],
                owner: me,
                sa: Some(Box::new(out_sa)),
                life: Lifetime::default(),
            }),
            &mut out,
        );
        w.apply(
            Update::Inbound(InboundInstall {
                id: SaId(u64::from(spi(peer, i))),
                spi: spi(peer, i),
                vpn: VPN,
                tunnel: TUNNEL,
                proxy_id: pids[j],
                owner: me,
                sa: Some(Box::new(in_sa)),
                life: Lifetime::default(),
            }),
            &mut out,
        );
    }
    w
}

/// The SA pair of `side` for proxy-ID `i` (A's index): outbound keyed as
/// `side`'s direction, inbound as the peer's.
pub fn sa_pair(side: Side, i: usize, opts: &LabOptions) -> (OutboundSa, InboundSa) {
    let peer = side.peer();
    let mut oc = OutboundConfig::new(spi(side, i), opts.suite, side.wan_addr(), peer.wan_addr());
    if opts.udp_encap {
        oc = oc.with_udp_encap(4500, 4500);
    }
    if opts.esn {
        oc = oc.with_esn();
    }
    oc.last_seq = opts.last_seq;
    let (e, a) = key_material(opts.suite, side, i);
    let out_sa = OutboundSa::new(&oc, &e, &a, &[0x42; 16]).expect("lab outbound SA");
    let mut ic = InboundConfig::new(spi(peer, i), opts.suite);
    ic.replay_window = opts.replay_window;
    ic.esn = opts.esn;
    ic.last_seq = opts.last_seq;
    let (e, a) = key_material(opts.suite, peer, i);
    let in_sa = InboundSa::new(&ic, &e, &a).expect("lab inbound SA");
    (out_sa, in_sa)
}

/// An Ethernet frame from host `src` to `dst` as it arrives on `side`'s
/// LAN port: IPv4/UDP 40000 -> 5001 with `payload` bytes of payload.
pub fn lan_frame(side: Side, src: Ipv4Addr, dst: Ipv4Addr, payload: usize) -> Vec<u8> {
    let ip_len = ipv4::HEADER_LEN + udp::HEADER_LEN + payload;
    let mut f = vec![0u8; ethernet::HEADER_LEN + ip_len];
    ethernet::Repr { src_addr: side.host_mac(1), dst_addr: side.lan_mac(), ethertype: ethertype::IPV4 }
        .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut f[..]));
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: ip_proto::UDP,
        ttl: 64,
        tos: 0,
        ident: 7,
        dont_frag: true,
        payload_len: (udp::HEADER_LEN + payload) as u16,
    }
    .emit(&mut f[14..34]);
    udp::Repr { src_port: 40000, dst_port: 5001, payload_len: payload as u16 }.emit(&mut f[34..42]);
    for (k, b) in f[42..].iter_mut().enumerate() {
        *b = k as u8;
    }
    let mut u = udp::Packet::new_unchecked(&mut f[34..]);
    u.fill_checksum_v4(src, dst);
    f
}

/// A hub between two spokes, run by two workers (hub and spoke across
/// workers): tunnel.1 to spoke A (lab side A, 10.1.0.0/16), tunnel.2
/// to spoke B (lab side B, 10.2.0.0/16). Worker 0 owns the SAs with A,
/// worker 1 those with B, so a packet from A to B is decrypted on worker
/// 0 and sealed on worker 1.
pub mod hub {
    use super::*;
    use crate::WorkerConfig;

    pub const SUITE: Suite = Suite::Aes128Gcm16;
    /// The hub's WAN address and MAC address.
    pub const ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
    pub const MAC: MacAddr = MacAddr([2, 0, 0, 0, 3, 1]);
    /// SPIs: A -> hub, hub -> B, B -> hub, hub -> A.
    pub const SPI_FROM_A: u32 = 0x1100;
    pub const SPI_TO_B: u32 = 0x3200;
    pub const SPI_FROM_B: u32 = 0x2100;
    pub const SPI_TO_A: u32 = 0x3100;

    /// The key of the SA with this SPI (GCM: key and salt).
    pub fn key(spi: u32) -> Vec<u8> {
        let seed = (spi >> 8) as u8 ^ spi as u8;
        (0..SUITE.encr_key_len()).map(|k| seed ^ (k as u8).wrapping_mul(7)).collect()
    }

    /// The hub's proxy-ID towards spoke A (`a`) or spoke B.
    pub fn proxy_id(a: bool) -> ProxyId {
        let text = if a {
            "local-ip 10.2.0.0/16 remote-ip 10.1.0.0/16 ANY"
        } else {
            "local-ip 10.1.0.0/16 remote-ip 10.2.0.0/16 ANY"
        };
        text.parse().expect("hub proxy-ID")
    }

    /// The hub's worker `me` (0 or 1) of two.
    pub fn worker(me: u16) -> Worker {
        let cfg = WorkerConfig { workers: 2, ..WorkerConfig::new(WorkerId(me)) };
        let mut w = Worker::new(cfg);
        let mut out = VecOutput::default();
        w.apply(
            Update::Ports(vec![
                PortInfo { name: "lan0".into(), mac: MacAddr([2, 0, 0, 0, 3, 0]), mtu: 1500, addrs: vec![] },
                PortInfo { name: "wan0".into(), mac: MAC, mtu: 1500, addrs: vec![ADDR] },
            ]),
            &mut out,
        );
        let routes = RouteTable::new([
            Route {
                prefix: Ipv4Addr::new(192, 0, 2, 0),
                len: 24,
                next_hop: NextHop::Connected { port: WAN },
            },
            Route { prefix: Ipv4Addr::new(10, 1, 0, 0), len: 16, next_hop: NextHop::Tunnel(TunnelId(1)) },
            Route { prefix: Ipv4Addr::new(10, 2, 0, 0), len: 16, next_hop: NextHop::Tunnel(TunnelId(2)) },
        ])
        .expect("hub routes");
        w.apply(Update::Routes(Arc::new(routes)), &mut out);
        let mut n = NeighborTable::default();
        n.insert(WAN, Side::A.wan_addr(), Side::A.wan_mac());
        n.insert(WAN, Side::B.wan_addr(), Side::B.wan_mac());
        w.apply(Update::Neighbors(Arc::new(n)), &mut out);
        for (t, spoke) in [(1u32, Side::A), (2, Side::B)] {
            let a = spoke == Side::A;
            w.apply(Update::Tunnel(TunnelConf { id: TunnelId(t), mtu: 1400, vpn: Some(VpnId(t)) }), &mut out);
            let table = ProxyIdTable::new(vec![proxy_id(a)], true).expect("hub proxy-IDs");
            w.apply(Update::Vpn(VpnConf { id: VpnId(t), table: Arc::new(table) }), &mut out);
            let owner = WorkerId(if a { 0 } else { 1 });
            let mine = owner.0 == me;
            let (spi_in, spi_out) = if a { (SPI_FROM_A, SPI_TO_A) } else { (SPI_FROM_B, SPI_TO_B) };
            let in_sa =
                InboundSa::new(&InboundConfig::new(spi_in, SUITE), &key(spi_in), &[]).expect("hub SA");
            w.apply(
                Update::Inbound(InboundInstall {
                    id: SaId(u64::from(spi_in)),
                    spi: spi_in,
                    vpn: VpnId(t),
                    tunnel: TunnelId(t),
                    proxy_id: proxy_id(a),
                    owner,
                    sa: mine.then(|| Box::new(in_sa)),
                    life: Lifetime::default(),
                }),
                &mut out,
            );
            let oc = OutboundConfig::new(spi_out, SUITE, ADDR, spoke.wan_addr());
            let out_sa = OutboundSa::new(&oc, &key(spi_out), &[], &[0x42; 16]).expect("hub SA");
            w.apply(
                Update::Outbound(OutboundInstall {
                    id: SaId(u64::from(spi_out)),
                    vpn: VpnId(t),
                    proxy_id: proxy_id(a),
                    owner,
                    sa: mine.then(|| Box::new(out_sa)),
                    life: Lifetime::default(),
                }),
                &mut out,
            );
        }
        w
    }

    /// Spoke `from`'s SA towards the hub.
    pub fn spoke_sa(from: Side) -> OutboundSa {
        let spi = if from == Side::A { SPI_FROM_A } else { SPI_FROM_B };
        let oc = OutboundConfig::new(spi, SUITE, from.wan_addr(), ADDR);
        OutboundSa::new(&oc, &key(spi), &[], &[0x42; 16]).expect("spoke SA")
    }

    /// Spoke `to`'s SA from the hub (to open what the hub sent it).
    pub fn spoke_inbound(to: Side) -> InboundSa {
        let spi = if to == Side::A { SPI_TO_A } else { SPI_TO_B };
        InboundSa::new(&InboundConfig::new(spi, SUITE), &key(spi), &[]).expect("spoke SA")
    }

    /// `sa` seals the IPv4 packet `ip`: the Ethernet frame the spoke sends
    /// the hub.
    pub fn seal(sa: &mut OutboundSa, from: Side, ip: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        buf[256..256 + ip.len()].copy_from_slice(ip);
        let enc = sa.encapsulate(&mut buf, 256..256 + ip.len()).expect("spoke seal");
        let at = enc.outer.start - ethernet::HEADER_LEN;
        ethernet::Repr { src_addr: from.wan_mac(), dst_addr: MAC, ethertype: ethertype::IPV4 }
            .emit(&mut ethernet::EthernetFrame::new_unchecked(&mut buf[at..enc.outer.start]));
        buf[at..enc.outer.end].to_vec()
    }
}
