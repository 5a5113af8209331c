//! A [`Snapshot`] as OpenMetrics text, encoded by the `prometheus-client`
//! crate (the Prometheus project's Rust client).
//!
//! Our counters live elsewhere (fastpathd's workers, the IKE manager, the
//! operator socket) and arrive as a snapshot, so nothing here registers
//! live metric objects: one [`Collector`] walks the snapshot at scrape time
//! and hands each family to the crate's encoder, which writes the
//! `# HELP`/`# TYPE` lines, the `_total` suffix of counters, the escaped
//! label values and the closing `# EOF`.
//!
//! OpenMetrics names a counter's family without `_total` and its samples
//! with it (OpenMetrics 1.0, "Counter"): the series keep the names they
//! always had (`esprit_worker_rx_packets_total{worker="0"}`), only the
//! `# HELP`/`# TYPE` lines name the family (`esprit_worker_rx_packets`).

use std::fmt;
use std::time::Instant;

use esprit_fastpath_api::{Direction, WorkerCounters};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{Snapshot, STALE_AFTER};
use crate::core::translate::hex_id_of;

/// The media type of [`render`]'s text (OpenMetrics 1.0, "Overall
/// structure").
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A sample's labels, in the order they are written.
type Labels = Vec<(&'static str, String)>;

/// The text of a snapshot at `now`, with the operator socket's refusals
/// (`operator`, by reason) last.
pub fn render(s: &Snapshot, now: Instant, operator: &[(&'static str, u64)]) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { snapshot: s.clone(), now, operator: operator.to_vec() }));
    let mut out = String::new();
    // Only the writer can fail, and a String never does.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// One scrape: what the collector encodes.
#[derive(Debug)]
struct Scrape {
    snapshot: Snapshot,
    now: Instant,
    operator: Vec<(&'static str, u64)>,
}

/// A counter family: `name` is the series name, ending in `_total`.
fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> fmt::Result {
    let family = name.strip_suffix("_total").unwrap_or(name);
    let mut m = enc.encode_descriptor(family, help, None, MetricType::Counter)?;
    for (labels, n) in samples {
        ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge family of integer samples.
fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, i64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, n) in samples {
        ConstGauge::new(n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn one(label: &'static str, value: impl ToString) -> Labels {
    vec![(label, value.to_string())]
}

fn direction_word(d: Option<Direction>) -> &'static str {
    match d {
        Some(Direction::Inbound) => "inbound",
        Some(Direction::Outbound) => "outbound",
        None => "unknown",
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let s = &self.snapshot;
        let age = s.read_at.map(|t| self.now.saturating_duration_since(t));
        let up = s.last_ok && age.is_some_and(|a| a <= STALE_AFTER);
        gauge(
            &mut enc,
            "esprit_fastpath_up",
            "1 when fastpathd's counters were read in the last 3 s.",
            [(Labels::new(), i64::from(up))],
        )?;
        counter(
            &mut enc,
            "esprit_ike_events_total",
            "IKE exchanges completed, failed or ended, by kind.",
            s.ike.iter().map(|(kind, n)| (one("event", kind), n)),
        )?;
        counter(
            &mut enc,
            "esprit_ike_ingest_dropped_total",
            "IKE datagrams dropped before an IKE peer took them, by reason.",
            s.ike_ingest.iter().map(|(reason, n)| (one("reason", reason), n)),
        )?;
        counter(
            &mut enc,
            "esprit_ike_discards_total",
            "IKE datagrams discarded unanswered and half-open exchanges forgotten, by reason.",
            s.ike.discards().map(|(reason, n)| (one("reason", reason), n)),
        )?;
        if !s.proxy_ids.is_empty() {
            let pid = |p: &crate::status::ProxyIdStatus| {
                vec![("vpn", p.vpn.clone()), ("proxy_id", p.proxy_id.clone())]
            };
            // One-hot per status, the usual shape of an enum in Prometheus.
            gauge(
                &mut enc,
                "esprit_proxy_id_status",
                "1 for the proxy-ID's status: up (SA pair installed), ready (never negotiated), down (lost, or VPN monitor DOWN).",
                s.proxy_ids.iter().flat_map(|p| {
                    ["up", "ready", "down"].map(|word| {
                        let mut labels = pid(p);
                        labels.push(("status", word.to_owned()));
                        (labels, i64::from(p.status.eq_ignore_ascii_case(word)))
                    })
                }),
            )?;
            gauge(
                &mut enc,
                "esprit_proxy_id_routes_withdrawn",
                "1 while the proxy-ID's routes are withdrawn (withdraw-routes).",
                s.proxy_ids.iter().map(|p| (pid(p), i64::from(p.routes_withdrawn))),
            )?;
        }
        if let (Some(stats), Some(age)) = (&s.stats, age) {
            let mut m = enc.encode_descriptor(
                "esprit_stats_age_seconds",
                "Seconds since fastpathd's counters were read.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(age.as_secs_f64()).encode(m.encode_family(&Labels::new())?)?;

            // The worker counters that declare a series, in their order.
            for (i, c) in WorkerCounters::INFO.iter().enumerate() {
                let Some(name) = c.metric else { continue };
                let samples = stats
                    .workers
                    .iter()
                    .map(|w| (one("worker", w.worker), w.counters.values().get(i).copied().unwrap_or(0)));
                counter(&mut enc, name, c.help, samples)?;
            }
            counter(
                &mut enc,
                "esprit_worker_drops_total",
                "Packets dropped by the worker, by reason.",
                stats.workers.iter().flat_map(|w| {
                    w.drops.iter().map(|(reason, n)| {
                        (vec![("worker", w.worker.to_string()), ("reason", reason.clone())], *n)
                    })
                }),
            )?;
            type SaCounter = (&'static str, &'static str, fn(&esprit_fastpath_api::SaStatsView) -> u64);
            const SA_COUNTERS: &[SaCounter] = &[
                ("esprit_sa_packets_total", "Packets carried by the SA.", |s| s.packets),
                ("esprit_sa_bytes_total", "Bytes carried by the SA.", |s| s.bytes),
                ("esprit_sa_errors_total", "Packets of the SA that failed (integrity, replay, ...).", |s| {
                    s.errors
                }),
            ];
            for (name, help, value) in SA_COUNTERS {
                let samples = stats.sas.iter().map(|sa| {
                    let vpn = s.vpn_names.get(&hex_id_of(sa.id)).cloned().unwrap_or_default();
                    let labels = vec![
                        ("sa", format!("{:#018x}", sa.id)),
                        ("spi", format!("0x{:08x}", sa.spi)),
                        ("direction", direction_word(sa.direction).to_owned()),
                        ("vpn", vpn),
                    ];
                    (labels, value(sa))
                });
                counter(&mut enc, name, help, samples)?;
            }
        }
        counter(
            &mut enc,
            "esprit_operator_refused_total",
            "Operator socket requests refused: peer not allowed, line too long, line not UTF-8.",
            self.operator.iter().map(|(reason, n)| (one("reason", reason), *n)),
        )
    }
}
