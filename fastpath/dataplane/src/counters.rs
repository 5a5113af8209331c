//! What a worker counts besides drops: one table, from which follow the
//! counter struct the worker increments, its field in fastpathd's control
//! API (`Stats`), the columns of `esprit get counter`, its `--json` keys
//! and the Prometheus series of controld's `--metrics` endpoint.
//!
//! Adding a counter means adding one entry here (and incrementing it in the
//! pipeline); every reader iterates [`WorkerCounters::INFO`] or
//! [`WorkerCounters::iter`]. Drops are counted apart, by [`crate::DropReason`].
//!
//! Every counter only ever grows (a Prometheus `counter`); the worker is its
//! one writer (a plain `u64`, no atomic, DESIGN.md §2).

/// How one worker counter is named and where it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterInfo {
    /// The field name: its key in fastpathd's `Stats` and in
    /// `esprit get counter --json`.
    pub name: &'static str,
    /// What it counts, one sentence (the Prometheus `HELP` text).
    pub help: &'static str,
    /// The Prometheus series (labelled `worker`), if exported.
    pub metric: Option<&'static str>,
    /// The `esprit get counter` column: heading and width, if shown.
    pub column: Option<(&'static str, usize)>,
    /// Whether `esprit get counter --json` lists it.
    pub json: bool,
}

macro_rules! worker_counters {
    ($(
        $(#[$doc:meta])*
        $field:ident: $help:literal {
            metric: $metric:expr,
            column: $column:expr,
            json: $json:expr $(,)?
        }
    )+) => {
        /// Traffic counters of one worker (drops are in
        /// [`DropCounters`](crate::DropCounters)).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        // A counter a peer does not know yet reads as 0.
        #[cfg_attr(feature = "serde", serde(default))]
        pub struct WorkerCounters {
            $( $(#[$doc])* pub $field: u64, )+
        }

        impl WorkerCounters {
            /// Every counter, in declaration order (the order of every
            /// listing).
            pub const INFO: &'static [CounterInfo] = &[
                $( CounterInfo { name: stringify!($field), help: $help, metric: $metric, column: $column, json: $json }, )+
            ];

            /// Each counter's value, in [`Self::INFO`] order.
            pub fn values(&self) -> [u64; Self::INFO.len()] {
                [ $( self.$field, )+ ]
            }
        }
    };
}

worker_counters! {
    /// Frames taken from the rx rings (and handed-off frames taken in).
    rx_packets: "Packets received by the worker." {
        metric: Some("esprit_worker_rx_packets_total"),
        column: Some(("Rx packets", 11)),
        json: true,
    }
    rx_bytes: "Bytes received by the worker." {
        metric: Some("esprit_worker_rx_bytes_total"),
        column: Some(("Rx bytes", 13)),
        json: true,
    }
    tx_packets: "Packets sent by the worker." {
        metric: Some("esprit_worker_tx_packets_total"),
        column: Some(("Tx packets", 11)),
        json: true,
    }
    tx_bytes: "Bytes sent by the worker." {
        metric: Some("esprit_worker_tx_bytes_total"),
        column: Some(("Tx bytes", 13)),
        json: true,
    }
    /// Clear packets routed port to port.
    forwarded: "Clear packets forwarded without IPsec." {
        metric: Some("esprit_worker_forwarded_packets_total"),
        column: Some(("Forwarded", 10)),
        json: true,
    }
    encrypted: "Packets encrypted into an SA." {
        metric: Some("esprit_worker_encrypted_packets_total"),
        column: Some(("Encrypted", 10)),
        json: true,
    }
    decrypted: "Packets decrypted from an SA." {
        metric: Some("esprit_worker_decrypted_packets_total"),
        column: Some(("Decrypted", 10)),
        json: true,
    }
    held: "Packets held while their proxy-ID waited for an SA." {
        metric: Some("esprit_worker_held_packets_total"),
        column: Some(("Held", 7)),
        json: true,
    }
    released: "Held packets sent once their SA came." {
        metric: Some("esprit_worker_released_packets_total"),
        column: Some(("Released", 8)),
        json: true,
    }
    handed_off: "Packets handed to the worker that owns their SA." {
        metric: Some("esprit_worker_handed_off_packets_total"),
        column: None,
        json: true,
    }
    acquires: "Acquire events sent to controld (no SA for a proxy-ID)." {
        metric: Some("esprit_worker_acquires_total"),
        column: Some(("Acquires", 8)),
        json: true,
    }
    icmp_errors: "ICMP errors sent back (fragmentation needed, TTL exceeded)." {
        metric: Some("esprit_worker_icmp_errors_total"),
        column: None,
        json: true,
    }
    /// Held frames whose SA did not come in time.
    hold_expired: "Held packets dropped because their SA did not come in time." {
        metric: Some("esprit_worker_hold_expired_packets_total"),
        column: None,
        json: true,
    }
    /// VPN monitor echo requests built and sent into the pipeline.
    probes: "VPN monitor probes sent." {
        metric: Some("esprit_worker_monitor_probes_total"),
        column: None,
        json: true,
    }
    /// VPN monitor echo replies taken out of the tunnel and reported.
    probe_replies: "VPN monitor replies received." {
        metric: Some("esprit_worker_monitor_replies_total"),
        column: None,
        json: true,
    }
    /// Outer fragments (ESP, ESP-in-UDP) taken into reassembly.
    fragments: "Outer fragments taken into reassembly." {
        metric: Some("esprit_worker_outer_fragments_total"),
        column: None,
        json: true,
    }
    /// Outer datagrams reassembled from them (RFC 4303 §3.4.1).
    reassembled: "Outer datagrams reassembled from fragments (RFC 4303 §3.4.1)." {
        metric: Some("esprit_worker_reassembled_datagrams_total"),
        column: None,
        json: true,
    }
    /// TCP SYNs entering a tunnel whose MSS option `set flow tcp-mss`
    /// lowered.
    mss_clamped: "TCP SYNs entering a tunnel whose MSS was clamped (set flow tcp-mss)." {
        metric: Some("esprit_worker_mss_clamped_total"),
        column: None,
        json: true,
    }
    /// Inner datagrams over the tunnel MTU without DF, fragmented before
    /// encryption (RFC 791 §3.2; RFC 4459 §3 "pre-fragmentation").
    fragmented: "Datagrams over the tunnel MTU fragmented before encryption." {
        metric: Some("esprit_worker_fragmented_datagrams_total"),
        column: None,
        json: true,
    }
    /// The fragments they made, each sealed as its own ESP packet.
    fragments_made: "Fragments made before encryption, each its own ESP packet." {
        metric: Some("esprit_worker_fragments_made_total"),
        column: None,
        json: true,
    }
}

impl WorkerCounters {
    /// Each counter with its value, in [`Self::INFO`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static CounterInfo, u64)> {
        Self::INFO.iter().zip(self.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consistent() {
        for (i, c) in WorkerCounters::INFO.iter().enumerate() {
            assert!(c.help.ends_with('.'), "{}", c.name);
            // Prometheus counters end in `_total` (OpenMetrics §4.4.1).
            if let Some(m) = c.metric {
                assert!(m.starts_with("esprit_worker_") && m.ends_with("_total"), "{m}");
            }
            for d in &WorkerCounters::INFO[i + 1..] {
                assert_ne!(c.name, d.name);
                assert!(c.metric.is_none() || c.metric != d.metric, "{}", c.name);
            }
        }
    }

    #[test]
    fn values_follow_the_declaration_order() {
        let c = WorkerCounters { rx_packets: 1, tx_bytes: 4, reassembled: 17, ..WorkerCounters::default() };
        let got: Vec<(&str, u64)> = c.iter().filter(|(_, n)| *n != 0).map(|(i, n)| (i.name, n)).collect();
        assert_eq!(got, [("rx_packets", 1), ("tx_bytes", 4), ("reassembled", 17)]);
        assert_eq!(c.values().len(), WorkerCounters::INFO.len());
    }
}
