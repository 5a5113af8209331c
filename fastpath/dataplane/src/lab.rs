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
    let pids = seed_proxy_ids(side);
    let table = ProxyIdTable::new(pids.clone(), opts.check).expect("lab proxy-IDs");
    w.apply(Update::Vpn(VpnConf { id: VPN, table: Arc::new(table) }), &mut out);
    for &i in &opts.installed {
        let (out_sa, in_sa) = sa_pair(side, i, opts);
        let j = mirror(side, i);
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
    let (e, a) = key_material(opts.suite, side, i);
    let out_sa = OutboundSa::new(&oc, &e, &a, &[0x42; 16]).expect("lab outbound SA");
    let mut ic = InboundConfig::new(spi(peer, i), opts.suite);
    ic.replay_window = opts.replay_window;
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
        .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
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
