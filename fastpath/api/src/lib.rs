//! The control API of fastpathd, defined once and used by both ends.
//!
//! Transport: a Unix stream socket (mode 0600, path given to fastpathd on
//! its command line) carrying one JSON object per line. The client sends
//! [`Envelope`]s holding a [`Request`]; fastpathd answers each with a
//! [`ServerMessage::Reply`] carrying the same `id`, and, on connections that
//! sent [`Request::Subscribe`], interleaves [`ServerMessage::Event`]s.
//!
//! Versioning: the first request on a connection is [`Request::Hello`]
//! with [`PROTOCOL_VERSION`]; fastpathd refuses other versions with an
//! error naming both. Fields are only ever added with `#[serde(default)]`,
//! so an older peer's messages still parse.
//!
//! Secrets: SA keys travel as [`Key`], hex on the wire, redacted in
//! `Debug`, zeroized on drop. The socket's mode keeps them to root.

use core::fmt;
use core::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

mod client;
pub use client::{Client, ClientError, PIPELINE_MAX, REQUEST_TIMEOUT};
pub use esprit_dataplane::{CounterInfo, WorkerCounters};
pub use esprit_suite::{Suite, SuiteError};

/// Version of this protocol: 2 added [`Request::Probe`] and
/// [`NextHopSpec::Null`] (a version-1 fastpathd would refuse both); 3
/// added [`Request::SetFlow`]; 4 added [`Request::StatsSince`].
pub const PROTOCOL_VERSION: u32 = 4;

/// A request with its correlation number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub id: u64,
    pub request: Request,
}

/// What a client asks fastpathd to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Request {
    /// First message: the protocol version the client speaks.
    Hello {
        version: u32,
        client: String,
    },
    /// The ports fastpathd owns (names, MACs, addresses, MTUs, queues).
    Ports,
    /// Replaces the whole route table.
    SetRoutes {
        routes: Vec<RouteSpec>,
    },
    /// Adds or changes a tunnel interface.
    SetTunnel {
        tunnel: u32,
        mtu: u16,
        vpn: Option<u32>,
    },
    RemoveTunnel {
        tunnel: u32,
    },
    /// Adds or changes a VPN's proxy-ID table. Proxy-IDs in ScreenOS words
    /// (`local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY`); their SAs stay
    /// with them across changes.
    SetVpn {
        vpn: u32,
        check: bool,
        proxy_ids: Vec<String>,
    },
    RemoveVpn {
        vpn: u32,
    },
    /// Installs an SA (outbound: replaces the proxy-ID's current one,
    /// make-before-break; inbound: coexists with older SAs of the same
    /// proxy-ID until they are removed).
    AddSa(Box<SaSpec>),
    RemoveSa {
        id: u64,
    },
    /// Counters of every worker and SA.
    Stats,
    /// Counters of every worker, and of the SAs whose counters changed
    /// after the reading of `epoch` (a [`Stats::epoch`] this fastpathd
    /// gave): what a client that keeps the SAs' counters needs to stay
    /// current, at a cost proportional to the traffic, not to the number
    /// of SAs. An epoch fastpathd cannot answer from (another instance's,
    /// or older than the removals it remembers) gets every SA, with
    /// [`Stats::partial`] false.
    StatsSince {
        epoch: u64,
    },
    /// Everything fastpathd holds (for resynchronisation after a restart).
    Dump,
    /// Removes every route, tunnel, VPN and SA.
    Reset,
    /// Send events on this connection from now on.
    Subscribe,
    /// VPN monitor: send an ICMP echo request from `src` (one of the
    /// gateway's addresses) to `dst` through the fast path, as if it came
    /// from the LAN: routed into its tunnel, sealed on the SA of the
    /// proxy-ID it matches, or held with an acquire when that proxy-ID has
    /// no SA. Echo replies with `ident` that come back decrypted are
    /// reported as [`FastPathEvent::ProbeReply`].
    Probe {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ident: u16,
        seq: u16,
        /// Bytes of echo data (at most 1400).
        #[serde(default = "default_probe_size")]
        size: u16,
    },
    /// How packets entering a tunnel are adjusted (`set flow ...`):
    /// `tcp_mss` is the largest MSS a TCP SYN or SYN-ACK entering a tunnel
    /// may announce (`set flow tcp-mss N`), `None` to leave SYNs alone.
    SetFlow {
        #[serde(default)]
        tcp_mss: Option<u16>,
    },
}

fn default_probe_size() -> u16 {
    56
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// `10.2.1.0/24`.
    pub prefix: String,
    pub next_hop: NextHopSpec,
}

/// Where a route points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NextHopSpec {
    /// Out of a port (a netdev name), to `gateway` or directly connected.
    Port { port: String, gateway: Option<Ipv4Addr> },
    /// Into `tunnel.N`.
    Tunnel { tunnel: u32 },
    /// Nowhere: the packet is dropped and counted (`null-route`). ScreenOS's
    /// `interface null`, the backstop route that keeps traffic of a
    /// withdrawn VPN route from leaving in clear by a wider route.
    Null,
}

/// Direction of an SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Key material: hex on the wire, never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Key(pub Zeroizing<Vec<u8>>);

impl Key {
    pub fn new(bytes: Vec<u8>) -> Key {
        Key(Zeroizing::new(bytes))
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} key bytes>", self.0.len())
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(hex::encode(&*self.0));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        hex::decode(&*text)
            .map(Key::new)
            .map_err(|e| serde::de::Error::custom(format!("key is not hex: {e}")))
    }
}

/// The ESP suite of an [`SaSpec`] as the JSON carries it: the suite's name.
///
/// A name this build refuses (RFC 8221) or does not know still reads, as
/// the error, so that fastpathd answers that one request with the reason
/// instead of discarding the line as malformed; it never becomes an SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireSuite(Result<Suite, SuiteError>);

impl WireSuite {
    /// The suite, or why its name was not accepted.
    pub fn suite(&self) -> Result<Suite, &SuiteError> {
        self.0.as_ref().copied()
    }

    /// The name on the wire: the canonical one, or the refused one as given.
    pub fn name(&self) -> &str {
        match &self.0 {
            Ok(s) => s.name(),
            Err(e) => e.name(),
        }
    }
}

impl From<Suite> for WireSuite {
    fn from(s: Suite) -> WireSuite {
        WireSuite(Ok(s))
    }
}

impl Serialize for WireSuite {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for WireSuite {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<WireSuite, D::Error> {
        let name = String::deserialize(d)?;
        Ok(WireSuite(name.parse()))
    }
}

/// Everything that defines one SA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaSpec {
    /// The control plane's number for this SA (unique per direction).
    pub id: u64,
    pub direction: Direction,
    pub spi: u32,
    /// The ESP suite, carried as its name (`aes128gcm16`, `aes128-sha1`,
    /// ...).
    pub suite: WireSuite,
    /// Encryption key (GCM: key || 4-byte salt).
    pub encr_key: Key,
    /// Integrity key (empty for GCM).
    #[serde(default)]
    pub integ_key: Key,
    /// Outbound CBC SAs: 16 random bytes for IV derivation (fastpathd
    /// draws them itself when absent).
    #[serde(default)]
    pub iv_key: Option<Key>,
    /// This gateway's address (outer source of outbound packets).
    pub local: Ipv4Addr,
    /// The peer's address (outer destination of outbound packets).
    pub peer: Ipv4Addr,
    /// RFC 3948 UDP encapsulation: (local port, peer port).
    #[serde(default)]
    pub udp_encap: Option<(u16, u16)>,
    /// 64-bit extended sequence numbers (RFC 4303 §2.2.1): negotiated by
    /// IKE, or configured alike on both ends of a manual-key VPN.
    #[serde(default)]
    pub esn: bool,
    /// Anti-replay window in packets (0 = off), inbound only: 0 or
    /// [`MIN_REPLAY_WINDOW`] to [`MAX_REPLAY_WINDOW`].
    #[serde(default = "default_replay_window")]
    pub replay_window: u32,
    pub vpn: u32,
    pub tunnel: u32,
    /// The proxy-ID this SA carries, in ScreenOS words.
    pub proxy_id: String,
    /// Soft and hard volume lifetimes in bytes (0 = none).
    #[serde(default)]
    pub soft_bytes: u64,
    #[serde(default)]
    pub hard_bytes: u64,
    /// Seconds without traffic before an `idle` event (0 = never).
    #[serde(default)]
    pub idle_secs: u32,
    /// Hard lifetime in seconds from the install (0 = none): fastpathd
    /// removes the SA itself when it runs out, with or without a control
    /// plane (RFC 4301 §4.4.2.1), and reports a `hard-expire` (`seconds`).
    /// Absent from an older controld's requests: no limit.
    #[serde(default)]
    pub hard_secs: u32,
    /// Outbound: sequence number to resume from (0 for a new SA).
    /// Inbound: the replay window starts above it, every number up to it
    /// counted as received (0: an empty window), so that packets accepted
    /// before a restart are not accepted again (RFC 4303 §3.4.3).
    #[serde(default)]
    pub last_seq: u64,
}

fn default_replay_window() -> u32 {
    64
}

/// The smallest anti-replay window fastpathd installs (RFC 4303 §3.4.3:
/// receivers support 32 at least).
pub const MIN_REPLAY_WINDOW: u32 = 32;
/// The largest anti-replay window fastpathd installs (the ESP core's).
pub const MAX_REPLAY_WINDOW: u32 = 4096;

/// What fastpathd sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    Reply { id: u64, result: Result<Reply, String> },
    Event { event: FastPathEvent },
}

/// A successful answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reply {
    Ok,
    Hello { version: u32, server: String },
    Ports { ports: Vec<PortView> },
    Stats(Box<Stats>),
    Dump(Box<Dump>),
}

/// A port of fastpathd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortView {
    pub name: String,
    pub mac: String,
    pub mtu: u16,
    pub addrs: Vec<Ipv4Addr>,
    pub queues: u32,
    /// `skb` or `driver`.
    pub xdp_mode: String,
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub workers: Vec<WorkerStatsView>,
    pub sas: Vec<SaStatsView>,
    /// What the XDP program of each port did.
    #[serde(default)]
    pub ports: Vec<PortStatsView>,
    /// fastpathd's own counters by name (control socket refusals, SAs
    /// expired by fastpathd, ...), non-zero only.
    #[serde(default)]
    pub daemon: Vec<(String, u64)>,
    /// This reading's number, for the next [`Request::StatsSince`]:
    /// increasing within one fastpathd instance, from a random start (so
    /// that another instance's epochs are not taken for its own).
    #[serde(default)]
    pub epoch: u64,
    /// `sas` holds only the SAs whose counters changed since the epoch
    /// asked for, and `removed` the SAs removed since; false: `sas` holds
    /// every SA.
    #[serde(default)]
    pub partial: bool,
    /// With `partial`: the (SA, worker) pairs removed since the epoch
    /// asked for.
    #[serde(default)]
    pub removed: Vec<(u64, u16)>,
    /// Since this connection's previous stats request, something else
    /// changed what fastpathd holds: another connection's request, or
    /// fastpathd itself (an SA removed at its hard lifetime). Also true
    /// on a connection's first stats request (nothing to vouch from).
    /// A controller that is otherwise sure fastpathd holds what it
    /// programmed compares everything again only then.
    #[serde(default)]
    pub changed_by_others: bool,
}

impl Stats {
    /// Takes in a reading: a whole one replaces `self`; a partial one
    /// (see [`Request::StatsSince`]) updates the SAs it names, drops the
    /// removed ones and replaces everything else. `sas` stays sorted by
    /// (SA, worker), as fastpathd sends it. The result is the whole
    /// reading, `partial` false.
    pub fn merge(&mut self, reading: Stats) {
        if !reading.partial {
            *self = reading;
            return;
        }
        let Stats { workers, sas, ports, daemon, epoch, partial: _, removed, changed_by_others } = reading;
        let mut old = std::mem::take(&mut self.sas);
        if !removed.is_empty() {
            let gone: std::collections::HashSet<(u64, u16)> = removed.into_iter().collect();
            old.retain(|s| !gone.contains(&(s.id, s.worker)));
        }
        // Both sorted: one merge pass, the reading's entry winning.
        let mut merged = Vec::with_capacity(old.len() + sas.len());
        let mut new = sas.into_iter().peekable();
        for s in old {
            while let Some(n) = new.next_if(|n| (n.id, n.worker) < (s.id, s.worker)) {
                merged.push(n);
            }
            if new.peek().is_some_and(|n| (n.id, n.worker) == (s.id, s.worker)) {
                merged.extend(new.next());
            } else {
                merged.push(s);
            }
        }
        merged.extend(new);
        *self = Stats {
            workers,
            sas: merged,
            ports,
            daemon,
            epoch,
            partial: false,
            removed: Vec::new(),
            changed_by_others,
        };
    }
}

/// The XDP program's counters on one port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatsView {
    pub port: String,
    /// Non-zero verdict counters by name (`redirect-transit`, ...).
    pub verdicts: Vec<(String, u64)>,
    /// Frames meant for the fast path that arrived on an rx queue with no
    /// AF_XDP socket, dropped by the XDP program: (queue, frames), non-zero
    /// only.
    pub no_socket_drops: Vec<(u32, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatsView {
    pub worker: u16,
    pub core: Option<usize>,
    /// The traffic counters, one key each, as the worker declares them
    /// ([`WorkerCounters::INFO`]).
    #[serde(flatten)]
    pub counters: WorkerCounters,
    /// Non-zero drop counters by reason name.
    pub drops: Vec<(String, u64)>,
    /// AF_XDP counters of each socket (port, queue): non-zero values by
    /// name, the kernel's own (`XDP_STATISTICS`) prefixed `kernel-`.
    #[serde(default)]
    pub sockets: Vec<SocketStatsView>,
    /// Neighbour misses this worker did not report (its token bucket was
    /// empty or the neighbour-miss channel full).
    #[serde(default)]
    pub neighbor_misses_suppressed: u64,
    /// Events (expiries, acquires, ...) this worker could not hand to the
    /// management thread because its channel was full: should stay 0.
    #[serde(default)]
    pub events_lost: u64,
}

/// One AF_XDP socket's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketStatsView {
    pub port: String,
    pub queue: u32,
    pub counters: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaStatsView {
    pub id: u64,
    pub spi: u32,
    pub direction: Option<Direction>,
    pub worker: u16,
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Outbound: last sequence number sent; inbound: highest received.
    pub seq: u64,
    /// Inbound: the anti-replay window the SA holds, in packets (0 = off).
    #[serde(default)]
    pub replay_window: u32,
    /// The SA uses 64-bit extended sequence numbers (RFC 4303 §2.2.1).
    #[serde(default)]
    pub esn: bool,
    /// Inbound: delivers any decrypted packet, not only its proxy-ID's
    /// (`proxy-id check` off on a VPN with one proxy-ID).
    #[serde(default)]
    pub admits_any: bool,
}

/// Everything installed (keys excluded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dump {
    pub routes: Vec<RouteSpec>,
    pub tunnels: Vec<(u32, u16, Option<u32>)>,
    pub vpns: Vec<(u32, bool, Vec<String>)>,
    /// (id, direction, spi, vpn, proxy-ID)
    pub sas: Vec<(u64, Direction, u32, u32, String)>,
    /// The last [`Request::SetFlow`]'s MSS limit.
    #[serde(default)]
    pub tcp_mss: Option<u16>,
}

/// Something the control plane must hear about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FastPathEvent {
    /// Traffic matched a proxy-ID that has no SA.
    Acquire { vpn: u32, tunnel: u32, proxy_id: String, src: String, dst: String, protocol: u8 },
    /// Rekey this SA (volume or sequence threshold passed).
    SoftExpire { sa: u64, reason: String },
    /// This SA no longer carries traffic.
    HardExpire { sa: u64, reason: String },
    /// This SA carried nothing for its idle time.
    Idle { sa: u64 },
    /// A VPN monitor echo reply came back decrypted by inbound SA `sa` of
    /// `vpn` (on `tunnel`): from `src` (the probed host) to `dst` (ours).
    ProbeReply { vpn: u32, tunnel: u32, sa: u64, src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16 },
}

/// Serializes a message as one line (with the newline).
pub fn to_line<T: Serialize>(msg: &T) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string(msg)?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The worker counters travel as flat keys of the worker's object, in
    /// declaration order, as they did when each was a field of its own.
    #[test]
    fn worker_counters_are_flat_keys_on_the_wire() {
        let w = WorkerStatsView {
            worker: 1,
            core: Some(3),
            counters: WorkerCounters { rx_packets: 7, reassembled: 2, ..WorkerCounters::default() },
            drops: vec![("no-route".into(), 4)],
            ..WorkerStatsView::default()
        };
        let line = serde_json::to_string(&w).unwrap();
        assert_eq!(
            line,
            "{\"worker\":1,\"core\":3,\"rx_packets\":7,\"rx_bytes\":0,\"tx_packets\":0,\"tx_bytes\":0,\
             \"forwarded\":0,\"encrypted\":0,\"decrypted\":0,\"held\":0,\"released\":0,\"handed_off\":0,\
             \"acquires\":0,\"icmp_errors\":0,\"hold_expired\":0,\"probes\":0,\"probe_replies\":0,\
             \"fragments\":0,\"reassembled\":2,\"mss_clamped\":0,\"fragmented\":0,\
             \"fragments_made\":0,\"drops\":[[\"no-route\",4]],\"sockets\":[],\
             \"neighbor_misses_suppressed\":0,\"events_lost\":0}"
        );
        assert_eq!(serde_json::from_str::<WorkerStatsView>(&line).unwrap(), w);
        // An older fastpathd that does not send a counter: it reads as 0.
        let old = "{\"worker\":0,\"core\":null,\"rx_packets\":5,\"drops\":[]}";
        let w = serde_json::from_str::<WorkerStatsView>(old).unwrap();
        assert_eq!((w.counters.rx_packets, w.counters.probes), (5, 0));
    }

    /// The window, ESN and inbound-check fields of an SA's counters: what
    /// an older fastpathd leaves out reads as 0 / false.
    #[test]
    fn sa_stats_carry_window_and_esn() {
        let v = SaStatsView { id: 7, spi: 0x2011, replay_window: 1024, esn: true, ..SaStatsView::default() };
        let line = serde_json::to_string(&v).unwrap();
        assert!(line.ends_with(",\"replay_window\":1024,\"esn\":true,\"admits_any\":false}"), "{line}");
        assert_eq!(serde_json::from_str::<SaStatsView>(&line).unwrap(), v);
        let old = r#"{"id":7,"spi":8209,"direction":"inbound","worker":0,"packets":1,"bytes":2,"errors":0,"seq":1}"#;
        let o = serde_json::from_str::<SaStatsView>(old).unwrap();
        assert_eq!((o.replay_window, o.esn, o.admits_any), (0, false, false));
    }

    /// A partial reading updates the SAs it names, drops the removed
    /// ones, adds new ones in order and replaces the rest.
    #[test]
    fn a_partial_reading_merges_into_the_whole() {
        let sa = |id: u64, worker: u16, packets: u64| SaStatsView {
            id,
            worker,
            packets,
            ..SaStatsView::default()
        };
        let mut whole = Stats {
            sas: vec![sa(1, 0, 1), sa(1, 1, 1), sa(3, 0, 3), sa(5, 0, 5)],
            daemon: vec![("old".into(), 1)],
            epoch: 7,
            ..Stats::default()
        };
        whole.merge(Stats {
            sas: vec![sa(0, 0, 9), sa(1, 1, 2), sa(4, 1, 4), sa(9, 0, 9)],
            removed: vec![(1, 0), (5, 0)],
            partial: true,
            epoch: 8,
            ..Stats::default()
        });
        let got: Vec<(u64, u16, u64)> = whole.sas.iter().map(|s| (s.id, s.worker, s.packets)).collect();
        assert_eq!(got, vec![(0, 0, 9), (1, 1, 2), (3, 0, 3), (4, 1, 4), (9, 0, 9)]);
        assert_eq!((whole.epoch, whole.partial, whole.daemon.len()), (8, false, 0));
        assert!(whole.removed.is_empty());
        // A whole reading replaces everything.
        whole.merge(Stats { sas: vec![sa(2, 0, 2)], epoch: 100, ..Stats::default() });
        assert_eq!((whole.sas.len(), whole.epoch), (1, 100));
        // The request and the new fields on the wire; an older reply
        // without them reads as a whole reading.
        let line = serde_json::to_string(&Request::StatsSince { epoch: 8 }).unwrap();
        assert_eq!(line, r#"{"type":"stats-since","epoch":8}"#);
        let old: Stats = serde_json::from_str(r#"{"workers":[],"sas":[]}"#).unwrap();
        assert_eq!((old.epoch, old.partial, old.removed.len()), (0, false, 0));
    }

    #[test]
    fn a_suite_travels_as_its_name() {
        for s in Suite::ALL {
            let text = serde_json::to_string(&WireSuite::from(s)).unwrap();
            assert_eq!(text, format!("\"{}\"", s.name()));
            assert_eq!(serde_json::from_str::<WireSuite>(&text).unwrap().suite(), Ok(s));
        }
        let w: WireSuite = serde_json::from_str("\"esp-aes128-sha\"").unwrap();
        assert_eq!((w.suite(), w.name()), (Ok(Suite::Aes128CbcSha1), "aes128-sha1"));
    }

    #[test]
    fn a_refused_suite_reads_as_its_reason() {
        let w: WireSuite = serde_json::from_str("\"3des-sha1\"").unwrap();
        let e = w.suite().unwrap_err().to_string();
        assert!(e.contains("RFC 8221") && e.contains("`3des-sha1`"), "{e}");
        // Written back as given.
        assert_eq!(serde_json::to_string(&w).unwrap(), "\"3des-sha1\"");
        assert!(serde_json::from_str::<WireSuite>("17").is_err());
    }
}
