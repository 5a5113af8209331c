//! The kernel's IPv4 neighbour table, mirrored by rtnetlink.
//!
//! The kernel owns ARP (the XDP program passes ARP to it); fastpathd keeps a
//! copy for the workers. A socket joined to `RTNLGRP_NEIGH` hears every
//! `RTM_NEWNEIGH`/`RTM_DELNEIGH` as it happens, and one `RTM_GETNEIGH` dump
//! fills the table at start. If the kernel drops notifications because the
//! socket's buffer overran (`ENOBUFS`, or a dump interrupted by a change,
//! `NLM_F_DUMP_INTR`), the table may be stale: it is dumped again, counted,
//! and the dump replaces the table as a whole when it completes.
//!
//! [`Mirror`] is the sans-IO part (datagrams in, table changes out, no
//! panic on any input); [`spawn`] is the thread around a blocking socket
//! (no async runtime: the workers see only `Arc<NeighborTable>` copies).

#[cfg(test)]
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::Sender;
use esprit_dataplane::{NeighborTable, PortId};
use esprit_wire::ethernet::MacAddr;
use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// `RTNLGRP_NEIGH` (linux/rtnetlink.h): neighbour notifications.
const RTNLGRP_NEIGH: u32 = 3;
/// Receive buffer asked of the kernel: a burst of ARP changes (a subnet
/// scanned) fits before the socket overruns.
const RCVBUF: usize = 1 << 20;
/// At most one log line per interval about bad messages.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Counters of the mirror, shown by `get counter`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MirrorCounters {
    /// Neighbour notifications applied (new, changed or deleted entries).
    pub(crate) events: u64,
    /// Dumps asked for again after an overrun or an interrupted dump.
    pub(crate) redumps: u64,
    /// Messages that did not parse, or errors the kernel answered.
    pub(crate) bad_messages: u64,
}

/// What one datagram did to the mirror.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The table the workers should see changed.
    pub(crate) changed: bool,
    /// The table may be stale: send a new dump request.
    pub(crate) redump: bool,
    /// Messages in this datagram that were refused.
    pub(crate) bad: u64,
}

/// The mirror of the kernel's table over fastpathd's ports.
#[derive(Debug)]
pub(crate) struct Mirror {
    /// (kernel ifindex, port) of each port; other interfaces are ignored.
    ports: Vec<(u32, PortId)>,
    table: NeighborTable,
    /// The table being rebuilt by a dump in progress.
    dumping: Option<NeighborTable>,
    pub(crate) counters: MirrorCounters,
}

impl Mirror {
    pub(crate) fn new(ports: Vec<(u32, PortId)>) -> Mirror {
        Mirror { ports, table: NeighborTable::default(), dumping: None, counters: MirrorCounters::default() }
    }

    pub(crate) fn table(&self) -> &NeighborTable {
        &self.table
    }

    /// A dump was requested: its answers build a new table.
    pub(crate) fn dump_started(&mut self) {
        self.dumping = Some(NeighborTable::default());
    }

    /// The socket overran (`ENOBUFS`): notifications were lost.
    pub(crate) fn overrun(&mut self) -> Applied {
        self.counters.redumps += 1;
        Applied { redump: true, ..Applied::default() }
    }

    /// Applies one datagram of netlink messages (RFC 3549 §2.3.2: each
    /// message is a 16-byte header then a payload, aligned to 4 bytes).
    pub(crate) fn on_datagram(&mut self, mut bytes: &[u8]) -> Applied {
        let before = self.table.clone();
        let mut out = Applied::default();
        while !bytes.is_empty() {
            let len = match NetlinkBuffer::new_checked(bytes) {
                Ok(b) => b.length() as usize,
                Err(_) => {
                    // A broken length: the rest of the datagram cannot be framed.
                    out.bad += 1;
                    break;
                }
            };
            let Some(one) = bytes.get(..len) else {
                out.bad += 1;
                break;
            };
            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(one) {
                Ok(m) => self.on_message(m, &mut out),
                Err(_) => out.bad += 1,
            }
            bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
        }
        self.counters.bad_messages += out.bad;
        out.changed = self.table != before;
        out
    }

    fn on_message(&mut self, m: NetlinkMessage<RouteNetlinkMessage>, out: &mut Applied) {
        if m.header.flags & NLM_F_DUMP_INTR != 0 && self.dumping.is_some() {
            // The table changed during the dump: its answers may be
            // inconsistent, so the dump is taken again.
            self.dumping = None;
            self.counters.redumps += 1;
            out.redump = true;
        }
        match m.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) => {
                let dump = m.header.flags & netlink_packet_core::NLM_F_MULTIPART != 0;
                self.on_neighbour(&n, false, dump);
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(n)) => {
                self.on_neighbour(&n, true, false);
            }
            NetlinkPayload::Done(_) => {
                if let Some(t) = self.dumping.take() {
                    self.table = t;
                }
            }
            NetlinkPayload::Overrun(_) => {
                self.counters.redumps += 1;
                out.redump = true;
            }
            NetlinkPayload::Error(_) => {
                // The only request is the dump: it failed, so ask again.
                out.bad += 1;
                if self.dumping.take().is_some() {
                    self.counters.redumps += 1;
                    out.redump = true;
                }
            }
            _ => {}
        }
    }

    /// One neighbour entry: a valid state with a MAC sets it, anything
    /// else (FAILED, INCOMPLETE, a deletion) removes it, so no frame goes to
    /// a MAC the kernel no longer vouches for.
    fn on_neighbour(&mut self, n: &NeighbourMessage, deleted: bool, dump: bool) {
        if n.header.family != AddressFamily::Inet {
            return;
        }
        let Some(&(_, port)) = self.ports.iter().find(|(i, _)| *i == n.header.ifindex) else { return };
        let Some(addr) = n.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(*a),
            _ => None,
        }) else {
            return;
        };
        let mac = n.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(m) => <[u8; 6]>::try_from(m.as_slice()).ok(),
            _ => None,
        });
        // NUD_VALID (include/net/neighbour.h): the states /proc/net/arp
        // shows as complete.
        let valid = matches!(
            n.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
                | NeighbourState::Noarp
        );
        let entry = match mac {
            Some(m) if valid && !deleted => Some(MacAddr(m)),
            _ => None,
        };
        if !dump {
            self.counters.events += 1;
        }
        // A dump answer goes to the table being rebuilt; a notification is
        // newer than what a dump in progress has said so far, so it goes to
        // both.
        let tables: Vec<&mut NeighborTable> = if dump {
            self.dumping.as_mut().into_iter().collect()
        } else {
            std::iter::once(&mut self.table).chain(self.dumping.as_mut()).collect()
        };
        for t in tables {
            match entry {
                Some(m) => t.insert(port, addr, m),
                None => t.remove(port, addr),
            }
        }
    }
}

/// The `RTM_GETNEIGH` dump request for IPv4 neighbours.
pub(crate) fn dump_request(seq: u32) -> Vec<u8> {
    let mut n = NeighbourMessage::default();
    n.header.family = AddressFamily::Inet;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut m =
        NetlinkMessage::new(header, NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetNeighbour(n)));
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

/// What the mirror thread tells the management thread.
#[derive(Debug, Clone)]
pub(crate) struct MirrorReport {
    /// The new table, when it changed.
    pub(crate) table: Option<Arc<NeighborTable>>,
    pub(crate) counters: MirrorCounters,
}

/// Opens the netlink socket (joined, then dumped, so no change falls
/// between the two) and runs the mirror on its own thread; it ends when
/// the management thread stops listening.
pub(crate) fn spawn(ports: Vec<(u32, PortId)>, to_mgmt: Sender<MirrorReport>) -> Result<(), String> {
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
    let err = |what: &str, e: std::io::Error| format!("neighbour netlink socket: {what}: {e}");
    let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| err("open", e))?;
    sock.bind_auto().map_err(|e| err("bind", e))?;
    sock.add_membership(RTNLGRP_NEIGH).map_err(|e| err("join RTNLGRP_NEIGH", e))?;
    // Best effort: a smaller buffer only overruns sooner, which is handled.
    let _ = sock.set_rx_buf_sz(RCVBUF);
    let kernel = SocketAddr::new(0, 0);
    let mut seq = 1u32;
    sock.send_to(&dump_request(seq), &kernel, 0).map_err(|e| err("dump request", e))?;
    let mut mirror = Mirror::new(ports);
    mirror.dump_started();
    std::thread::Builder::new()
        .name("neighbours".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut log = RateLimitedLog::default();
            loop {
                let applied = match sock.recv(&mut &mut buf[..], 0) {
                    Ok(n) => mirror.on_datagram(buf.get(..n).unwrap_or_default()),
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => mirror.overrun(),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        eprintln!("fastpathd: neighbour netlink socket: receive: {e}; neighbours no longer follow the kernel");
                        return;
                    }
                };
                if applied.bad > 0 {
                    log.bad(applied.bad, Instant::now());
                }
                if applied.redump {
                    seq = seq.wrapping_add(1);
                    if let Err(e) = sock.send_to(&dump_request(seq), &kernel, 0) {
                        eprintln!("fastpathd: neighbour netlink socket: dump request: {e}");
                    } else {
                        mirror.dump_started();
                    }
                }
                let report = MirrorReport {
                    table: applied.changed.then(|| Arc::new(mirror.table().clone())),
                    counters: mirror.counters,
                };
                if to_mgmt.send(report).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| format!("neighbour thread: {e}"))?;
    Ok(())
}

/// One line per [`LOG_INTERVAL`] about refused netlink messages, with the
/// number refused since the last line.
#[derive(Debug, Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    pending: u64,
}

impl RateLimitedLog {
    fn bad(&mut self, n: u64, now: Instant) {
        self.pending += n;
        if self.last.is_some_and(|l| now.duration_since(l) < LOG_INTERVAL) {
            return;
        }
        eprintln!("fastpathd: {} malformed neighbour netlink message(s) refused", self.pending);
        self.pending = 0;
        self.last = Some(now);
    }
}

/// The kernel's index of interface `name` (`/sys/class/net/NAME/ifindex`).
pub(crate) fn ifindex(name: &str) -> Result<u32, String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .map_err(|e| format!("interface {name}: cannot read ifindex: {e}"))?
        .trim()
        .parse()
        .map_err(|_| format!("interface {name}: bad ifindex"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DoneMessage, NLM_F_MULTIPART};

    const WAN: PortId = PortId(1);
    const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

    fn mirror() -> Mirror {
        Mirror::new(vec![(7, PortId(0)), (9, WAN)])
    }

    /// RTM_NEWNEIGH (28) for 198.51.100.2 on ifindex 9, NUD_REACHABLE,
    /// lladdr 02:00:00:00:02:01, as the kernel sends it.
    const NEW_REACHABLE: &str = "30000000 1c00 0000 00000000 00000000\
                                 02 00 0000 09000000 0200 00 01\
                                 0800 0100 c6336402\
                                 0a00 0200 020000000201 0000";

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn neighbour(
        kind: u16,
        flags: u16,
        ifindex: u32,
        state: NeighbourState,
        mac: Option<[u8; 6]>,
    ) -> Vec<u8> {
        let mut n = NeighbourMessage::default();
        n.header.family = AddressFamily::Inet;
        n.header.ifindex = ifindex;
        n.header.state = state;
        n.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(PEER)));
        if let Some(m) = mac {
            n.attributes.push(NeighbourAttribute::LinkLayerAddress(m.to_vec()));
        }
        let inner = match kind {
            28 => RouteNetlinkMessage::NewNeighbour(n),
            _ => RouteNetlinkMessage::DelNeighbour(n),
        };
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        serialize(NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner)))
    }

    fn serialize(mut m: NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    fn done() -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_MULTIPART;
        serialize(NetlinkMessage::new(header, NetlinkPayload::Done(DoneMessage::default())))
    }

    const MAC1: [u8; 6] = [2, 0, 0, 0, 2, 1];
    const MAC2: [u8; 6] = [2, 0, 0, 0, 2, 2];

    #[test]
    fn a_kernel_notification_sets_the_entry() {
        let mut m = mirror();
        let a = m.on_datagram(&hex(NEW_REACHABLE));
        assert_eq!(a, Applied { changed: true, redump: false, bad: 0 });
        assert_eq!(m.table().lookup(WAN, PEER), Some(MacAddr(MAC1)));
        assert_eq!(m.table().len(), 1);
        assert_eq!(m.counters, MirrorCounters { events: 1, redumps: 0, bad_messages: 0 });
        // The same again changes nothing the workers need to see.
        assert!(!m.on_datagram(&hex(NEW_REACHABLE)).changed);
    }

    #[test]
    fn a_mac_change_failure_and_deletion_are_followed() {
        let mut m = mirror();
        m.on_datagram(&neighbour(28, 0, 9, NeighbourState::Reachable, Some(MAC1)));
        assert!(m.on_datagram(&neighbour(28, 0, 9, NeighbourState::Stale, Some(MAC2))).changed);
        assert_eq!(m.table().lookup(WAN, PEER), Some(MacAddr(MAC2)));
        // NUD_FAILED keeps the old MAC in the message; the entry still goes.
        assert!(m.on_datagram(&neighbour(28, 0, 9, NeighbourState::Failed, Some(MAC2))).changed);
        assert_eq!(m.table().lookup(WAN, PEER), None);
        m.on_datagram(&neighbour(28, 0, 9, NeighbourState::Permanent, Some(MAC1)));
        assert!(m.on_datagram(&neighbour(29, 0, 9, NeighbourState::Permanent, Some(MAC1))).changed);
        assert!(m.table().is_empty());
        m.on_datagram(&neighbour(28, 0, 9, NeighbourState::Incomplete, None));
        assert!(m.table().is_empty());
        assert_eq!(m.counters.events, 6);
    }

    #[test]
    fn other_interfaces_are_ignored() {
        let mut m = mirror();
        assert!(!m.on_datagram(&neighbour(28, 0, 3, NeighbourState::Reachable, Some(MAC1))).changed);
        assert!(m.table().is_empty());
    }

    #[test]
    fn a_dump_replaces_the_table_when_done() {
        let mut m = mirror();
        m.on_datagram(&neighbour(28, 0, 7, NeighbourState::Reachable, Some(MAC1)));
        m.dump_started();
        // Answers of the dump (multipart): the old table stays until Done.
        let mut d = neighbour(28, NLM_F_MULTIPART, 9, NeighbourState::Reachable, Some(MAC2));
        assert!(!m.on_datagram(&d).changed);
        assert_eq!(m.table().lookup(PortId(0), PEER), Some(MacAddr(MAC1)));
        d.extend(done());
        let a = m.on_datagram(&d);
        assert!(a.changed);
        // The stale entry on port 0 is gone; the dumped one is there.
        assert_eq!(m.table().lookup(PortId(0), PEER), None);
        assert_eq!(m.table().lookup(WAN, PEER), Some(MacAddr(MAC2)));
        assert_eq!(m.counters.events, 1);
    }

    #[test]
    fn an_overrun_or_interrupted_dump_asks_for_a_new_dump() {
        let mut m = mirror();
        assert_eq!(m.overrun(), Applied { changed: false, redump: true, bad: 0 });
        m.dump_started();
        let d = neighbour(28, NLM_F_MULTIPART | NLM_F_DUMP_INTR, 9, NeighbourState::Reachable, Some(MAC1));
        assert!(m.on_datagram(&d).redump);
        assert_eq!(m.counters.redumps, 2);
    }

    #[test]
    fn bad_messages_are_counted_and_good_state_kept() {
        let mut m = mirror();
        m.on_datagram(&hex(NEW_REACHABLE));
        let good = hex(NEW_REACHABLE);
        // A length past the datagram, a length under the header, a
        // truncated neighbour payload, an address of the wrong size.
        let mut long = good.clone();
        long[0] = 0x40;
        let mut short = good.clone();
        short[0] = 0x08;
        let mut cut = good[..20].to_vec();
        cut[0] = 20;
        let mut dst = good.clone();
        dst[28] = 6;
        for bytes in [long, short, cut, dst, vec![], vec![0xff; 3]] {
            let a = m.on_datagram(&bytes);
            assert!(!a.changed);
        }
        assert_eq!(m.counters.bad_messages, 5);
        assert_eq!(m.table().lookup(WAN, PEER), Some(MacAddr(MAC1)));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut m = mirror();
        let good = hex(NEW_REACHABLE);
        for i in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = m.on_datagram(&b);
                let _ = m.on_datagram(&b[..i]);
            }
        }
    }

    #[test]
    fn the_dump_request_is_rtm_getneigh_for_ipv4() {
        let r = dump_request(5);
        assert_eq!(r.len(), 28);
        assert_eq!(&r[..16], &hex("1c000000 1e00 0103 05000000 00000000")[..]);
        assert_eq!(r[16], 2);
    }
}
