//! The Prometheus endpoint of controld (`--metrics ADDR:PORT`, off by
//! default): fastpathd's counters, as controld reads them every second,
//! with controld's own, in the OpenMetrics text format at `GET /metrics`.
//!
//! * The main loop publishes each reading into a [`Snapshot`] behind a
//!   mutex ([`poll_stats`]); the lock is held only to swap an `Arc` or copy
//!   a small array, so a scrape never holds up the main loop, and rendering
//!   happens outside it.
//! * [`render`] turns a snapshot into text with the `prometheus-client`
//!   crate's encoder (names, labels, escaping, `# EOF`); [`http`] serves it
//!   to a bounded number of clients at once, each bounded in bytes and time.
//! * No keys are ever in the output: fastpathd's `Stats` carry none.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use esprit_fastpath_api::Stats;

use crate::core::controller::Controller;
pub use crate::ike::counters::{IkeCounters, IKE_EVENTS};
pub use crate::status::ProxyIdStatus;

pub mod http;
mod render;

pub use http::{answer, serve, IO_TIMEOUT, MAX_CLIENTS, MAX_REQUEST};
pub use render::{render, CONTENT_TYPE};

/// Counters older than this are reported as not up (controld reads them
/// every second while fastpathd is connected).
pub const STALE_AFTER: Duration = Duration::from_secs(3);

/// The last reading of fastpathd's counters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The counters, if any were read yet.
    pub stats: Option<Arc<Stats>>,
    /// When they were read.
    pub read_at: Option<Instant>,
    /// Whether the last attempt to read them succeeded.
    pub last_ok: bool,
    /// VPN HEX ID -> VPN name, for the `vpn` label of SAs.
    pub vpn_names: BTreeMap<u32, String>,
    /// IKE events so far.
    pub ike: IkeCounters,
    /// IKE datagrams dropped before a peer took them, by reason.
    pub ike_ingest: crate::core::ingest::IngestCounters,
    /// Each proxy-ID's status.
    pub proxy_ids: Arc<Vec<ProxyIdStatus>>,
}

/// The endpoint: the shared snapshot and the address it serves on.
#[derive(Debug, Clone)]
pub struct Metrics {
    shared: Arc<Mutex<Snapshot>>,
    addr: SocketAddr,
}

fn lock(m: &Mutex<Snapshot>) -> MutexGuard<'_, Snapshot> {
    // A panic elsewhere while holding the lock leaves a snapshot that is
    // still whole (fields are swapped, never half-written).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes a reading.
    pub fn publish(&self, stats: Stats, vpn_names: BTreeMap<u32, String>, now: Instant) {
        let stats = Arc::new(stats);
        let mut s = lock(&self.shared);
        s.stats = Some(stats);
        s.read_at = Some(now);
        s.last_ok = true;
        s.vpn_names = vpn_names;
    }

    /// Publishes the controller's counters after a reading (`ok`), or
    /// that the reading failed.
    pub fn publish_reading(&self, ctl: &Controller, ok: bool) {
        if !ok {
            self.publish_failure();
            return;
        }
        let names = ctl.hex_ids().iter().map(|(name, id)| (*id, name.clone())).collect();
        self.publish(ctl.stats().clone(), names, Instant::now());
        self.publish_status(ctl.proxy_id_statuses());
    }

    /// Publishes the proxy-IDs' status (built outside the lock).
    pub fn publish_status(&self, proxy_ids: Vec<ProxyIdStatus>) {
        let proxy_ids = Arc::new(proxy_ids);
        lock(&self.shared).proxy_ids = proxy_ids;
    }

    /// Publishes the IKE event counts (cheap: a copy of a small array).
    pub fn publish_ike(&self, ike: &IkeCounters) {
        lock(&self.shared).ike = *ike;
    }

    /// Publishes the IKE ingest drop counts (a copy of a small array).
    pub fn publish_ike_ingest(&self, c: crate::core::ingest::IngestCounters) {
        lock(&self.shared).ike_ingest = c;
    }

    /// Records a failed reading.
    pub fn publish_failure(&self) {
        lock(&self.shared).last_ok = false;
    }

    fn snapshot(&self) -> Snapshot {
        lock(&self.shared).clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::core::controller::FastPathError;
    use crate::tests::Model;
    use esprit_fastpath_api::{Direction, Reply, Request, SaStatsView, WorkerCounters, WorkerStatsView};
    use std::io::{self, Read, Write};
    use std::net::TcpStream;

    fn stats() -> Stats {
        Stats {
            workers: vec![WorkerStatsView {
                worker: 0,
                core: Some(1),
                counters: WorkerCounters {
                    rx_packets: 10,
                    rx_bytes: 1000,
                    tx_packets: 9,
                    tx_bytes: 1200,
                    forwarded: 1,
                    encrypted: 5,
                    decrypted: 3,
                    held: 2,
                    handed_off: 0,
                    acquires: 1,
                    ..WorkerCounters::default()
                },
                drops: vec![("no-route".into(), 1), ("odd\"name".into(), 2)],
                ..WorkerStatsView::default()
            }],
            sas: vec![
                SaStatsView {
                    id: 0x11_8000_0000,
                    spi: 0x1011,
                    direction: Some(Direction::Outbound),
                    worker: 0,
                    packets: 5,
                    bytes: 700,
                    errors: 0,
                    seq: 5,
                    ..SaStatsView::default()
                },
                SaStatsView {
                    id: 0x11_0000_0000,
                    spi: 0x2011,
                    direction: Some(Direction::Inbound),
                    worker: 0,
                    packets: 3,
                    bytes: 420,
                    errors: 1,
                    seq: 3,
                    ..SaStatsView::default()
                },
            ],
            ..Stats::default()
        }
    }

    fn snapshot(t0: Instant) -> Snapshot {
        Snapshot {
            stats: Some(Arc::new(stats())),
            read_at: Some(t0),
            last_ok: true,
            vpn_names: [(0x11, "lab vpn".to_owned())].into(),
            ike: {
                let mut d = esprit_ike::Discards::default();
                d.add(esprit_ike::Discard::ReplayedMessageId);
                let mut v2 = esprit_ike::v2::dropped::DroppedCounts::default();
                v2.add(esprit_ike::v2::dropped::Dropped::Integrity);
                IkeCounters { counts: [1, 0, 2, 0, 0, 0, 0, 0, 1, 0, 0], discards: d, v2_dropped: v2 }
            },
            ike_ingest: {
                let c = crate::core::ingest::SharedCounters::default();
                for _ in 0..3 {
                    c.count(crate::core::ingest::IkeDrop::QueueFull);
                }
                c.count(crate::core::ingest::IkeDrop::Rejected);
                c.read()
            },
            proxy_ids: Arc::new(vec![ProxyIdStatus {
                vpn: "lab vpn".into(),
                proxy_id: "local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16 ANY".into(),
                status: "DOWN",
                routes_withdrawn: true,
            }]),
        }
    }

    #[test]
    fn renders_the_text_format_exactly() {
        let t0 = Instant::now();
        let operator = [("peer-refused", 2), ("line-too-long", 1)];
        let text = render(&snapshot(t0), t0 + Duration::from_millis(500), &operator);
        let want = r#"# HELP esprit_fastpath_up 1 when fastpathd's counters were read in the last 3 s.
# TYPE esprit_fastpath_up gauge
esprit_fastpath_up 1
# HELP esprit_ike_events IKE exchanges completed, failed or ended, by kind.
# TYPE esprit_ike_events counter
esprit_ike_events_total{event="phase1-up"} 1
esprit_ike_events_total{event="phase1-down"} 0
esprit_ike_events_total{event="phase2-up"} 2
esprit_ike_events_total{event="phase2-down"} 0
esprit_ike_events_total{event="phase2-failed"} 0
esprit_ike_events_total{event="no-proposal-chosen"} 0
esprit_ike_events_total{event="proxy-id-mismatch"} 0
esprit_ike_events_total{event="auth-failed"} 0
esprit_ike_events_total{event="dpd-timeout"} 1
esprit_ike_events_total{event="notify"} 0
esprit_ike_events_total{event="other"} 0
# HELP esprit_ike_ingest_dropped IKE datagrams dropped before an IKE peer took them, by reason.
# TYPE esprit_ike_ingest_dropped counter
esprit_ike_ingest_dropped_total{reason="queue-full"} 3
esprit_ike_ingest_dropped_total{reason="too-large"} 0
esprit_ike_ingest_dropped_total{reason="too-short"} 0
esprit_ike_ingest_dropped_total{reason="not-ike"} 0
esprit_ike_ingest_dropped_total{reason="rejected"} 1
# HELP esprit_ike_discards IKE datagrams discarded unanswered and half-open exchanges forgotten, by reason.
# TYPE esprit_ike_discards counter
esprit_ike_discards_total{reason="half-open-limit-global"} 0
esprit_ike_discards_total{reason="half-open-limit-source"} 0
esprit_ike_discards_total{reason="half-open-timed-out"} 0
esprit_ike_discards_total{reason="cookie-mismatch"} 0
esprit_ike_discards_total{reason="aggressive-not-configured"} 0
esprit_ike_discards_total{reason="aggressive-rate-limited"} 0
esprit_ike_discards_total{reason="replayed-message-id"} 1
esprit_ike_discards_total{reason="replayed-message"} 0
esprit_ike_discards_total{reason="dpd-ack-stale"} 0
esprit_ike_discards_total{reason="unauthenticated-notify"} 0
esprit_ike_discards_total{reason="oversized-sa"} 0
esprit_ike_discards_total{reason="responder-lifetime-longer"} 0
esprit_ike_discards_total{reason="responder-lifetime-malformed"} 0
esprit_ike_discards_total{reason="no-gateway"} 0
esprit_ike_discards_total{reason="ikev2-unreadable"} 0
esprit_ike_discards_total{reason="ikev2-wrong-peer"} 0
esprit_ike_discards_total{reason="ikev2-unknown-spi"} 0
esprit_ike_discards_total{reason="ikev2-replayed-request"} 0
esprit_ike_discards_total{reason="ikev2-request-ahead"} 0
esprit_ike_discards_total{reason="ikev2-unexpected-response"} 0
esprit_ike_discards_total{reason="ikev2-integrity"} 1
esprit_ike_discards_total{reason="ikev2-malformed"} 0
esprit_ike_discards_total{reason="ikev2-unsupported-exchange"} 0
esprit_ike_discards_total{reason="ikev2-ike-sa-init-ignored"} 0
esprit_ike_discards_total{reason="ikev2-ike-auth-ignored"} 0
esprit_ike_discards_total{reason="ikev2-retransmit-answered"} 0
esprit_ike_discards_total{reason="ikev2-fragment-unwanted"} 0
esprit_ike_discards_total{reason="ikev2-fragment-invalid"} 0
esprit_ike_discards_total{reason="ikev2-fragment-integrity"} 0
esprit_ike_discards_total{reason="ikev2-fragment-duplicate"} 0
esprit_ike_discards_total{reason="ikev2-fragment-stale"} 0
esprit_ike_discards_total{reason="ikev2-fragment-total-changed"} 0
esprit_ike_discards_total{reason="ikev2-fragment-too-large"} 0
esprit_ike_discards_total{reason="ikev2-fragment-expired"} 0
# HELP esprit_proxy_id_status 1 for the proxy-ID's status: up (SA pair installed), ready (never negotiated), down (lost, or VPN monitor DOWN).
# TYPE esprit_proxy_id_status gauge
esprit_proxy_id_status{vpn="lab vpn",proxy_id="local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16 ANY",status="up"} 0
esprit_proxy_id_status{vpn="lab vpn",proxy_id="local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16 ANY",status="ready"} 0
esprit_proxy_id_status{vpn="lab vpn",proxy_id="local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16 ANY",status="down"} 1
# HELP esprit_proxy_id_routes_withdrawn 1 while the proxy-ID's routes are withdrawn (withdraw-routes).
# TYPE esprit_proxy_id_routes_withdrawn gauge
esprit_proxy_id_routes_withdrawn{vpn="lab vpn",proxy_id="local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16 ANY"} 1
# HELP esprit_stats_age_seconds Seconds since fastpathd's counters were read.
# TYPE esprit_stats_age_seconds gauge
esprit_stats_age_seconds 0.5
# HELP esprit_worker_rx_packets Packets received by the worker.
# TYPE esprit_worker_rx_packets counter
esprit_worker_rx_packets_total{worker="0"} 10
# HELP esprit_worker_rx_bytes Bytes received by the worker.
# TYPE esprit_worker_rx_bytes counter
esprit_worker_rx_bytes_total{worker="0"} 1000
# HELP esprit_worker_tx_packets Packets sent by the worker.
# TYPE esprit_worker_tx_packets counter
esprit_worker_tx_packets_total{worker="0"} 9
# HELP esprit_worker_tx_bytes Bytes sent by the worker.
# TYPE esprit_worker_tx_bytes counter
esprit_worker_tx_bytes_total{worker="0"} 1200
# HELP esprit_worker_forwarded_packets Clear packets forwarded without IPsec.
# TYPE esprit_worker_forwarded_packets counter
esprit_worker_forwarded_packets_total{worker="0"} 1
# HELP esprit_worker_encrypted_packets Packets encrypted into an SA.
# TYPE esprit_worker_encrypted_packets counter
esprit_worker_encrypted_packets_total{worker="0"} 5
# HELP esprit_worker_decrypted_packets Packets decrypted from an SA.
# TYPE esprit_worker_decrypted_packets counter
esprit_worker_decrypted_packets_total{worker="0"} 3
# HELP esprit_worker_held_packets Packets held while their proxy-ID waited for an SA.
# TYPE esprit_worker_held_packets counter
esprit_worker_held_packets_total{worker="0"} 2
# HELP esprit_worker_released_packets Held packets sent once their SA came.
# TYPE esprit_worker_released_packets counter
esprit_worker_released_packets_total{worker="0"} 0
# HELP esprit_worker_handed_off_packets Packets handed to the worker that owns their SA.
# TYPE esprit_worker_handed_off_packets counter
esprit_worker_handed_off_packets_total{worker="0"} 0
# HELP esprit_worker_acquires Acquire events sent to controld (no SA for a proxy-ID).
# TYPE esprit_worker_acquires counter
esprit_worker_acquires_total{worker="0"} 1
# HELP esprit_worker_icmp_errors ICMP errors sent back (fragmentation needed, TTL exceeded).
# TYPE esprit_worker_icmp_errors counter
esprit_worker_icmp_errors_total{worker="0"} 0
# HELP esprit_worker_hold_expired_packets Held packets dropped because their SA did not come in time.
# TYPE esprit_worker_hold_expired_packets counter
esprit_worker_hold_expired_packets_total{worker="0"} 0
# HELP esprit_worker_monitor_probes VPN monitor probes sent.
# TYPE esprit_worker_monitor_probes counter
esprit_worker_monitor_probes_total{worker="0"} 0
# HELP esprit_worker_monitor_replies VPN monitor replies received.
# TYPE esprit_worker_monitor_replies counter
esprit_worker_monitor_replies_total{worker="0"} 0
# HELP esprit_worker_outer_fragments Outer fragments taken into reassembly.
# TYPE esprit_worker_outer_fragments counter
esprit_worker_outer_fragments_total{worker="0"} 0
# HELP esprit_worker_reassembled_datagrams Outer datagrams reassembled from fragments (RFC 4303 §3.4.1).
# TYPE esprit_worker_reassembled_datagrams counter
esprit_worker_reassembled_datagrams_total{worker="0"} 0
# HELP esprit_worker_mss_clamped TCP SYNs entering a tunnel whose MSS was clamped (set flow tcp-mss).
# TYPE esprit_worker_mss_clamped counter
esprit_worker_mss_clamped_total{worker="0"} 0
# HELP esprit_worker_fragmented_datagrams Datagrams over the tunnel MTU fragmented before encryption.
# TYPE esprit_worker_fragmented_datagrams counter
esprit_worker_fragmented_datagrams_total{worker="0"} 0
# HELP esprit_worker_fragments_made Fragments made before encryption, each its own ESP packet.
# TYPE esprit_worker_fragments_made counter
esprit_worker_fragments_made_total{worker="0"} 0
# HELP esprit_worker_drops Packets dropped by the worker, by reason.
# TYPE esprit_worker_drops counter
esprit_worker_drops_total{worker="0",reason="no-route"} 1
esprit_worker_drops_total{worker="0",reason="odd\"name"} 2
# HELP esprit_sa_packets Packets carried by the SA.
# TYPE esprit_sa_packets counter
esprit_sa_packets_total{sa="0x0000001180000000",spi="0x00001011",direction="outbound",vpn="lab vpn"} 5
esprit_sa_packets_total{sa="0x0000001100000000",spi="0x00002011",direction="inbound",vpn="lab vpn"} 3
# HELP esprit_sa_bytes Bytes carried by the SA.
# TYPE esprit_sa_bytes counter
esprit_sa_bytes_total{sa="0x0000001180000000",spi="0x00001011",direction="outbound",vpn="lab vpn"} 700
esprit_sa_bytes_total{sa="0x0000001100000000",spi="0x00002011",direction="inbound",vpn="lab vpn"} 420
# HELP esprit_sa_errors Packets of the SA that failed (integrity, replay, ...).
# TYPE esprit_sa_errors counter
esprit_sa_errors_total{sa="0x0000001180000000",spi="0x00001011",direction="outbound",vpn="lab vpn"} 0
esprit_sa_errors_total{sa="0x0000001100000000",spi="0x00002011",direction="inbound",vpn="lab vpn"} 1
# HELP esprit_operator_refused Operator socket requests refused: peer not allowed, line too long, line not UTF-8.
# TYPE esprit_operator_refused counter
esprit_operator_refused_total{reason="peer-refused"} 2
esprit_operator_refused_total{reason="line-too-long"} 1
# EOF
"#;
        assert_eq!(text, want);
    }

    #[test]
    fn stale_or_missing_counters_are_not_up() {
        let t0 = Instant::now();
        let empty = render(&Snapshot::default(), t0, &[]);
        assert!(empty.contains("esprit_fastpath_up 0\n"), "{empty}");
        assert!(empty.contains("esprit_ike_events_total{event=\"other\"} 0\n"), "{empty}");
        assert!(empty.contains("esprit_ike_ingest_dropped_total{reason=\"rejected\"} 0\n"), "{empty}");
        assert!(empty.contains("esprit_ike_discards_total{reason=\"no-gateway\"} 0\n"), "{empty}");
        assert!(!empty.contains("esprit_stats_age_seconds"), "{empty}");
        assert!(empty.ends_with("# TYPE esprit_operator_refused counter\n# EOF\n"), "{empty}");
        let stale = render(&snapshot(t0), t0 + Duration::from_secs(4), &[]);
        assert!(stale.contains("esprit_fastpath_up 0\n") && stale.contains("esprit_stats_age_seconds 4.0\n"));
        let failed = Snapshot { last_ok: false, ..snapshot(t0) };
        assert!(render(&failed, t0, &[]).contains("esprit_fastpath_up 0\n"));
    }

    #[test]
    fn ike_events_are_counted_by_kind() {
        let mut c = IkeCounters::default();
        c.record(&esprit_ike::Event::DpdTimeout);
        c.record(&esprit_ike::Event::DpdTimeout);
        assert_eq!(c.iter().find(|(k, _)| *k == "dpd-timeout"), Some(("dpd-timeout", 2)));
        assert_eq!(c.iter().map(|(_, n)| n).sum::<u64>(), 2);
    }

    /// Answers `Stats` with fixed counters, or fails as a lost connection.
    struct FakeFastPath(Option<Stats>);

    impl Model for FakeFastPath {
        fn answer(&mut self, request: Request) -> Result<Reply, FastPathError> {
            match (&request, &self.0) {
                (Request::Stats | Request::StatsSince { .. }, Some(s)) => {
                    Ok(Reply::Stats(Box::new(s.clone())))
                }
                _ => Err(FastPathError::Lost("gone".into())),
            }
        }
    }

    /// The daemon's reading: [`Controller::poll_stats`], then the
    /// controller's counters published to the endpoint, if on.
    fn poll_stats(
        ctl: &mut Controller,
        fp: &mut dyn Model,
        metrics: Option<&Metrics>,
    ) -> Result<(), FastPathError> {
        let result = crate::tests::poll_stats(ctl, fp);
        if let Some(m) = metrics {
            m.publish_reading(ctl, result.is_ok());
        }
        result
    }

    #[test]
    fn polling_feeds_the_controller_and_the_endpoint_one_reading() {
        let config = esprit_config::Config::new();
        let mut ctl =
            Controller::new(config, None, BTreeMap::new(), crate::core::state::State::default()).unwrap();
        let m = Metrics {
            shared: Arc::new(Mutex::new(Snapshot::default())),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        poll_stats(&mut ctl, &mut FakeFastPath(Some(stats())), Some(&m)).unwrap();
        let snap = m.snapshot();
        assert_eq!(snap.stats.as_deref(), Some(&stats()));
        assert!(snap.last_ok);
        // The fastpathd connection drops: not up, the last counters kept.
        assert!(poll_stats(&mut ctl, &mut FakeFastPath(None), Some(&m)).is_err());
        assert!(!m.snapshot().last_ok);
        assert!(render(&m.snapshot(), Instant::now(), &[]).contains("esprit_fastpath_up 0\n"));
        // Without the endpoint, the controller's own polling.
        poll_stats(&mut ctl, &mut FakeFastPath(Some(stats())), None).unwrap();
    }

    #[test]
    fn the_answer_is_a_function_of_the_bytes() {
        let m = || "text".to_owned();
        assert_eq!(answer(b"GET /metrics HTTP/1.1\r\n\r\n", m), (200, "text".into()));
        assert_eq!(answer(b"GET /metrics HTTP/1.1\r\n", m).0, 400);
        assert_eq!(answer(&vec![b'a'; MAX_REQUEST], m).0, 431);
        assert_eq!(answer(b"GET /config HTTP/1.1\n\n", m).0, 403);
        assert_eq!(answer(b"GET * HTTP/1.1\r\n\r\n", m).0, 400);
        // RFC 9112 §2.2: empty lines before the request line are ignored.
        assert_eq!(answer(b"\r\nGET /metrics HTTP/1.1\r\n\r\n", m).0, 200);
        let many = format!("GET /metrics HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(http::MAX_HEADERS + 1));
        assert_eq!(answer(many.as_bytes(), m).0, 431);
        let (status, body) = answer(b"GET /metrics HTP/1.1\r\n\r\n", m);
        assert_eq!(
            (status, body.as_str()),
            (400, "bad request: invalid HTTP version: expected METHOD TARGET HTTP/1.x\n")
        );
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The server may answer (and close) before reading all of an
        // oversized request: a failed write is part of that case.
        let _ = c.write_all(request);
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    }

    #[test]
    fn serves_get_metrics_on_loopback_and_nothing_else() {
        let m = serve("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = m.local_addr();
        assert_ne!(addr.port(), 0);

        let r = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")), "{r}");
        assert!(r.contains("\r\n\r\n# HELP esprit_fastpath_up 1 when fastpathd's counters were read in the last 3 s.\n# TYPE esprit_fastpath_up gauge\nesprit_fastpath_up 0\n"), "{r}");
        assert!(!r.contains("esprit_worker"), "{r}");

        m.publish(stats(), [(0x11, "lab vpn".to_owned())].into(), Instant::now());
        let r = exchange(addr, b"GET /metrics?x=1 HTTP/1.0\n\n");
        assert!(r.contains("esprit_fastpath_up 1\n"), "{r}");
        assert!(r.contains("esprit_sa_packets_total{sa=\"0x0000001180000000\",spi=\"0x00001011\",direction=\"outbound\",vpn=\"lab vpn\"} 5\n"), "{r}");
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())), "{head}");

        for (request, want) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], "HTTP/1.1 404 Not Found\r\n"),
            (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"),
            (b"hello\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
            (b"GET /metrics SPDY/3\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
            (b"GET metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
            (b"\xff\xfe /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
            (b"GET /config HTTP/1.1\r\n\r\n", "HTTP/1.1 403 Forbidden\r\n"),
            (b"GET /get/config/secrets HTTP/1.1\r\n\r\n", "HTTP/1.1 403 Forbidden\r\n"),
            (b"GET /metrics?get=config%20secrets HTTP/1.1\r\n\r\n", "HTTP/1.1 403 Forbidden\r\n"),
        ] {
            let r = exchange(addr, request);
            assert!(r.starts_with(want), "{:?}: {r}", String::from_utf8_lossy(request));
        }
        let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_REQUEST * 2));
        let r = exchange(addr, &big);
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        // A client that connects and closes without a word changes nothing.
        drop(TcpStream::connect(addr).unwrap());
        assert!(exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
    }

    /// Waits (bounded) until `f` holds, polling: the server's threads
    /// finish on their own schedule.
    fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "not within 10 s: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_stalled_client_does_not_hold_up_a_scrape() {
        let m = serve("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = m.local_addr();
        // Half a request, then silence: it used to make every scrape wait.
        let mut stalled = TcpStream::connect(addr).unwrap();
        stalled.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        let t = Instant::now();
        assert!(exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(t.elapsed() < IO_TIMEOUT, "{:?}", t.elapsed());
        // The stalled client is dropped once its time is up, unanswered.
        stalled.set_read_timeout(Some(IO_TIMEOUT * 3)).unwrap();
        let mut rest = Vec::new();
        let _ = stalled.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        assert!(t.elapsed() < IO_TIMEOUT * 2, "{:?}", t.elapsed());
    }

    #[test]
    fn a_trickling_client_is_cut_off_at_the_deadline() {
        let m = serve("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut c = TcpStream::connect(m.local_addr()).unwrap();
        let t = Instant::now();
        // A never-ending header, a byte every 100 ms (the read timeout):
        // each read of the server is prompt, the head never completes.
        c.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nX: ").unwrap();
        let mut b = [0u8; 64];
        loop {
            assert!(t.elapsed() < IO_TIMEOUT * 3, "still reading after {:?}", t.elapsed());
            match c.read(&mut b) {
                Ok(0) => break,
                Ok(n) => panic!("answered a head never finished: {:?}", String::from_utf8_lossy(&b[..n])),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if c.write_all(b"a").is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        assert!(t.elapsed() >= IO_TIMEOUT && t.elapsed() < IO_TIMEOUT * 3, "{:?}", t.elapsed());
    }

    #[test]
    fn clients_beyond_the_limit_get_503_until_a_place_frees() {
        let m = serve("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = m.local_addr();
        let silent: Vec<TcpStream> = (0..MAX_CLIENTS).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let r = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nbusy: too many clients at once\n"), "{r}");
        // The silent clients leave: their places free.
        drop(silent);
        eventually("a scrape is served again", || {
            exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n")
        });
    }
}
