//! The VPN monitor (ScreenOS `set vpn NAME monitor ...`, `set vpnmonitor
//! interval N threshold N`), sans-IO: time and facts in, probes out,
//! replies in, status out. The controller resolves each VPN's
//! [`Target`] from the configuration, tells the monitor what the fast path
//! holds ([`Facts`]) at every [`Monitor::tick`], sends the probes it asks
//! for to fastpathd, and hands back the replies fastpathd reports.
//!
//! The rules (ScreenOS 6.3, and KB16008's "VPN Monitor" section):
//!
//! * every `interval` seconds a VPN with `monitor` sends one ICMP echo
//!   request from `source-interface`'s address to `destination-ip`
//!   *through the tunnel* (the fast path routes it, classifies it on the
//!   VPN's proxy-IDs and seals it on the SA of the proxy-ID it matches);
//! * a probe still unanswered when the next one is due is lost; after
//!   `threshold` lost probes in a row the VPN's monitor status is DOWN,
//!   one answer makes it UP (it starts undecided, shown `-`);
//! * `rekey`: probes go out even while the proxy-ID has no SA — the fast
//!   path holds the probe and asks for an SA, so IKE negotiates one
//!   without waiting for user traffic; and when the status goes DOWN while
//!   an SA pair is installed, that pair is renegotiated (it carries
//!   nothing the peer answers). Without `rekey` the monitor is idle while
//!   the proxy-ID has no SA;
//! * `optimized`: a probe is skipped when the monitored SA pair received
//!   traffic since the last one — that traffic is the proof of life
//!   (counted as an answer);
//! * with a destination behind a non-ScreenOS peer only the proxy-ID that
//!   matches the destination carries the probe, so only that proxy-ID's
//!   status counts for the tunnel interface (KB16008's second rule set).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use esprit_config::model::VpnMonitorTiming;

/// The ICMP identifier of every probe controld sends (`es`): fastpathd
/// recognises the replies by it.
pub const MONITOR_IDENT: u16 = 0x6573;

/// Bytes of echo data in a probe (as ping's default).
pub const PROBE_SIZE: u16 = 56;

/// A VPN's monitor status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorStatus {
    /// No probe answered or lost enough yet.
    Undecided,
    /// The last probe (or, `optimized`, the last traffic) was answered.
    Up,
    /// `threshold` probes in a row were lost.
    Down,
}

impl MonitorStatus {
    /// The word of `get vpn` (`-` while undecided).
    pub fn word(self) -> &'static str {
        match self {
            MonitorStatus::Undecided => "-",
            MonitorStatus::Up => "UP",
            MonitorStatus::Down => "DOWN",
        }
    }

    /// The JSON value (`null` while undecided).
    pub fn json(self) -> Option<&'static str> {
        match self {
            MonitorStatus::Undecided => None,
            MonitorStatus::Up => Some("up"),
            MonitorStatus::Down => Some("down"),
        }
    }
}

/// What one VPN's monitor watches, resolved from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The VPN.
    pub vpn: String,
    /// Its HEX ID (the high half of its SA ids: replies are matched by it).
    pub hex_id: u32,
    /// Source of the probes: `source-interface`'s address, or the outgoing
    /// interface's.
    pub src: Option<Ipv4Addr>,
    /// The interface whose address `src` is.
    pub source_interface: Option<String>,
    /// `destination-ip`, or the peer gateway's address.
    pub dst: Option<Ipv4Addr>,
    /// True when `destination-ip` was given (KB16008's second rule set:
    /// only the matching proxy-ID decides the tunnel interface's status).
    pub explicit_destination: bool,
    /// The proxy-ID the probes match (most specific first, as the fast
    /// path classifies), in ScreenOS words; `None` if none matches.
    pub proxy_id: Option<String>,
    /// `optimized`.
    pub optimized: bool,
    /// `rekey`.
    pub rekey: bool,
    /// Why no probe can be sent (no IPv4 source or destination).
    pub problem: Option<String>,
}

/// What the fast path holds for a monitored VPN, at a tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// The monitored proxy-ID's SA pair is installed.
    pub sa_up: bool,
    /// Packets received so far on the monitored SA pair's inbound SA.
    pub inbound_packets: u64,
    /// The monitored pair's outbound SA id, when installed.
    pub outbound_sa: Option<u64>,
}

/// What the monitor asks of the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorAction {
    /// Send an echo request through the fast path.
    Probe { vpn: String, src: Ipv4Addr, dst: Ipv4Addr, seq: u16 },
    /// `rekey`: the status went DOWN with this SA pair installed: delete
    /// it with the peer, so that the next probe negotiates a new one.
    Renegotiate { vpn: String, sa: u64 },
    /// The status changed (for the event log).
    Changed { vpn: String, from: MonitorStatus, to: MonitorStatus, why: String },
}

/// One VPN's monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnMonitor {
    /// What it watches.
    pub target: Target,
    /// Its status.
    pub status: MonitorStatus,
    /// When the status last changed (wall clock), if it did.
    pub changed_at: Option<SystemTime>,
    /// Probes sent.
    pub sent: u64,
    /// Probes answered.
    pub answered: u64,
    /// Probes skipped because traffic came in (`optimized`).
    pub skipped: u64,
    /// Probes lost in a row.
    pub lost_in_row: u32,
    seq: u16,
    awaiting: bool,
    next_at: Option<Instant>,
    last_inbound: Option<u64>,
}

impl VpnMonitor {
    fn new(target: Target) -> VpnMonitor {
        VpnMonitor {
            target,
            status: MonitorStatus::Undecided,
            changed_at: None,
            sent: 0,
            answered: 0,
            skipped: 0,
            lost_in_row: 0,
            seq: 0,
            awaiting: false,
            next_at: None,
            last_inbound: None,
        }
    }

    fn set(&mut self, to: MonitorStatus, wall: SystemTime, why: String, out: &mut Vec<MonitorAction>) {
        if self.status == to {
            return;
        }
        out.push(MonitorAction::Changed { vpn: self.target.vpn.clone(), from: self.status, to, why });
        self.status = to;
        self.changed_at = Some(wall);
    }
}

/// Every VPN's monitor.
#[derive(Debug, Clone, Default)]
pub struct Monitor {
    timing: VpnMonitorTiming,
    vpns: BTreeMap<String, VpnMonitor>,
}

impl Monitor {
    /// Takes the configuration's monitors. A VPN whose target and timing
    /// did not change keeps its status and counters; the others start
    /// afresh.
    pub fn configure(&mut self, timing: VpnMonitorTiming, targets: Vec<Target>) {
        let timing_changed = timing != self.timing;
        self.timing = timing;
        let mut old = std::mem::take(&mut self.vpns);
        for t in targets {
            let m = match old.remove(&t.vpn) {
                Some(m) if m.target == t && !timing_changed => m,
                _ => VpnMonitor::new(t),
            };
            self.vpns.insert(m.target.vpn.clone(), m);
        }
    }

    /// The interval and threshold in force.
    pub fn timing(&self) -> VpnMonitorTiming {
        self.timing
    }

    /// One VPN's monitor, if it has one.
    pub fn get(&self, vpn: &str) -> Option<&VpnMonitor> {
        self.vpns.get(vpn)
    }

    /// Every monitor, by VPN name.
    pub fn iter(&self) -> impl Iterator<Item = &VpnMonitor> {
        self.vpns.values()
    }

    /// True when a monitor has something to do at `now` (the caller skips
    /// gathering facts otherwise).
    pub fn is_due(&self, now: Instant) -> bool {
        self.vpns.values().any(|m| m.next_at.is_none_or(|t| now >= t))
    }

    /// True when no VPN is monitored.
    pub fn is_empty(&self) -> bool {
        self.vpns.is_empty()
    }

    /// Runs the monitors that are due at `now`: counts the probe still
    /// unanswered as lost, then sends the next one (or not: see the module
    /// documentation). `facts` tells what the fast path holds for a VPN.
    pub fn tick(
        &mut self,
        now: Instant,
        wall: SystemTime,
        mut facts: impl FnMut(&Target) -> Facts,
    ) -> Vec<MonitorAction> {
        let mut out = Vec::new();
        let interval = Duration::from_secs(u64::from(self.timing.interval_secs.max(1)));
        let threshold = self.timing.threshold.max(1);
        for m in self.vpns.values_mut() {
            if m.next_at.is_some_and(|t| now < t) {
                continue;
            }
            m.next_at = Some(now + interval);
            let f = facts(&m.target);
            if std::mem::take(&mut m.awaiting) {
                m.lost_in_row = m.lost_in_row.saturating_add(1);
                if m.lost_in_row >= threshold && m.status != MonitorStatus::Down {
                    let why = format!("{} probe(s) in a row unanswered", m.lost_in_row);
                    m.set(MonitorStatus::Down, wall, why, &mut out);
                    if m.target.rekey {
                        if let Some(sa) = f.outbound_sa {
                            out.push(MonitorAction::Renegotiate { vpn: m.target.vpn.clone(), sa });
                        }
                    }
                }
            }
            let (Some(src), Some(dst), None) = (m.target.src, m.target.dst, &m.target.problem) else {
                continue;
            };
            // Traffic received since the last interval proves the path
            // (`optimized`): no probe needed.
            let fresh_traffic = f.sa_up && m.last_inbound.is_some_and(|n| f.inbound_packets > n);
            m.last_inbound = f.sa_up.then_some(f.inbound_packets);
            if m.target.optimized && fresh_traffic {
                m.skipped += 1;
                m.lost_in_row = 0;
                m.set(MonitorStatus::Up, wall, "traffic received (optimized)".into(), &mut out);
                continue;
            }
            if !f.sa_up && !m.target.rekey {
                continue;
            }
            m.seq = m.seq.wrapping_add(1);
            m.sent += 1;
            m.awaiting = true;
            out.push(MonitorAction::Probe { vpn: m.target.vpn.clone(), src, dst, seq: m.seq });
        }
        out
    }

    /// A reply came back through the SA pair of HEX ID `hex_id`, from
    /// `src`, with sequence number `seq`. Only the answer to the last probe
    /// counts (a later one is late: that probe was already lost). Returns
    /// what changed.
    pub fn reply(&mut self, wall: SystemTime, hex_id: u32, src: Ipv4Addr, seq: u16) -> Vec<MonitorAction> {
        let mut out = Vec::new();
        let Some(m) = self.vpns.values_mut().find(|m| m.target.hex_id == hex_id && m.target.dst == Some(src))
        else {
            return out;
        };
        if !m.awaiting || m.seq != seq {
            return out;
        }
        m.awaiting = false;
        m.answered += 1;
        m.lost_in_row = 0;
        m.set(MonitorStatus::Up, wall, format!("echo reply from {src}"), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(rekey: bool, optimized: bool) -> Target {
        Target {
            vpn: "test".into(),
            hex_id: 1,
            src: Some(Ipv4Addr::new(10, 1, 1, 1)),
            source_interface: Some("ethernet0/1".into()),
            dst: Some(Ipv4Addr::new(10, 2, 1, 10)),
            explicit_destination: true,
            proxy_id: Some("local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY".into()),
            optimized,
            rekey,
            problem: None,
        }
    }

    fn monitor(t: Target) -> Monitor {
        let mut m = Monitor::default();
        m.configure(VpnMonitorTiming { interval_secs: 2, threshold: 3 }, vec![t]);
        m
    }

    fn up() -> Facts {
        Facts { sa_up: true, inbound_packets: 0, outbound_sa: Some(0x1_8000_0001) }
    }

    fn probes(a: &[MonitorAction]) -> Vec<u16> {
        a.iter()
            .filter_map(|a| if let MonitorAction::Probe { seq, .. } = a { Some(*seq) } else { None })
            .collect()
    }

    fn changes(a: &[MonitorAction]) -> Vec<MonitorStatus> {
        a.iter()
            .filter_map(|a| if let MonitorAction::Changed { to, .. } = a { Some(*to) } else { None })
            .collect()
    }

    const WALL: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn one_probe_per_interval_and_an_answer_makes_it_up() {
        let mut m = monitor(target(false, false));
        let t0 = Instant::now();
        let a = m.tick(t0, WALL, |_| up());
        assert_eq!(probes(&a), [1]);
        assert_eq!(m.get("test").unwrap().status, MonitorStatus::Undecided);
        // Not due again before the interval.
        assert!(!m.is_due(t0 + Duration::from_secs(1)));
        assert!(m.tick(t0 + Duration::from_secs(1), WALL, |_| up()).is_empty());
        assert!(m.is_due(t0 + Duration::from_secs(2)));
        // A reply from elsewhere or to another probe does not count.
        assert!(m.reply(WALL, 1, Ipv4Addr::new(10, 2, 1, 11), 1).is_empty());
        assert!(m.reply(WALL, 2, Ipv4Addr::new(10, 2, 1, 10), 1).is_empty());
        assert!(m.reply(WALL, 1, Ipv4Addr::new(10, 2, 1, 10), 7).is_empty());
        let a = m.reply(WALL, 1, Ipv4Addr::new(10, 2, 1, 10), 1);
        assert_eq!(changes(&a), [MonitorStatus::Up]);
        // A second copy changes nothing.
        assert!(m.reply(WALL, 1, Ipv4Addr::new(10, 2, 1, 10), 1).is_empty());
        let v = m.get("test").unwrap();
        assert_eq!((v.sent, v.answered, v.lost_in_row, v.changed_at), (1, 1, 0, Some(WALL)));
        assert_eq!(probes(&m.tick(t0 + Duration::from_secs(2), WALL, |_| up())), [2]);
    }

    #[test]
    fn threshold_lost_probes_make_it_down_and_rekey_renegotiates() {
        let mut m = monitor(target(true, false));
        let t0 = Instant::now();
        m.tick(t0, WALL, |_| up());
        m.reply(WALL, 1, Ipv4Addr::new(10, 2, 1, 10), 1);
        let mut all = Vec::new();
        for k in 1..=3 {
            all.push(m.tick(t0 + Duration::from_secs(2 * k), WALL, |_| up()));
        }
        // Probe 2 lost at the third tick (1 in a row), probe 3 at the
        // fourth (2)...: the third loss is at t0 + 8 s.
        assert!(all.iter().all(|a| changes(a).is_empty()));
        let a = m.tick(t0 + Duration::from_secs(8), WALL, |_| up());
        assert_eq!(changes(&a), [MonitorStatus::Down]);
        assert!(a.contains(&MonitorAction::Renegotiate { vpn: "test".into(), sa: 0x1_8000_0001 }));
        assert_eq!(probes(&a), [5], "rekey keeps probing");
        // Without an SA, rekey still probes (the fast path asks IKE for one).
        let a = m.tick(t0 + Duration::from_secs(10), WALL, |_| Facts::default());
        assert_eq!(probes(&a), [6]);
        assert!(!a.iter().any(|a| matches!(a, MonitorAction::Renegotiate { .. })), "only on the change");
        let a = m.reply(WALL, 1, Ipv4Addr::new(10, 2, 1, 10), 6);
        assert_eq!(changes(&a), [MonitorStatus::Up]);
    }

    #[test]
    fn without_rekey_no_probe_while_the_sa_is_down() {
        let mut m = monitor(target(false, false));
        let t0 = Instant::now();
        assert!(probes(&m.tick(t0, WALL, |_| Facts::default())).is_empty());
        assert_eq!(m.get("test").unwrap().sent, 0);
        assert_eq!(probes(&m.tick(t0 + Duration::from_secs(2), WALL, |_| up())), [1]);
    }

    #[test]
    fn optimized_skips_the_probe_when_traffic_came_in() {
        let mut m = monitor(target(false, true));
        let t0 = Instant::now();
        let f = |n| Facts { sa_up: true, inbound_packets: n, outbound_sa: Some(9) };
        assert_eq!(probes(&m.tick(t0, WALL, |_| f(10))), [1]);
        // Ten packets came in: no probe, and that is an answer.
        let a = m.tick(t0 + Duration::from_secs(2), WALL, |_| f(20));
        assert!(probes(&a).is_empty());
        assert_eq!(changes(&a), [MonitorStatus::Up]);
        // Nothing came in: probe again.
        assert_eq!(probes(&m.tick(t0 + Duration::from_secs(4), WALL, |_| f(20))), [2]);
        assert_eq!(m.get("test").unwrap().skipped, 1);
    }

    #[test]
    fn reconfiguring_keeps_unchanged_monitors() {
        let mut m = monitor(target(true, false));
        let t0 = Instant::now();
        m.tick(t0, WALL, |_| up());
        m.reply(WALL, 1, Ipv4Addr::new(10, 2, 1, 10), 1);
        m.configure(VpnMonitorTiming { interval_secs: 2, threshold: 3 }, vec![target(true, false)]);
        assert_eq!(m.get("test").unwrap().status, MonitorStatus::Up);
        m.configure(VpnMonitorTiming { interval_secs: 2, threshold: 3 }, vec![target(false, false)]);
        assert_eq!(m.get("test").unwrap().status, MonitorStatus::Undecided);
        m.configure(VpnMonitorTiming::default(), vec![]);
        assert!(m.is_empty());
    }

    #[test]
    fn no_source_no_probe() {
        let mut t = target(true, false);
        t.src = None;
        t.problem = Some("no IPv4 address".into());
        let mut m = monitor(t);
        assert!(m.tick(Instant::now(), WALL, |_| up()).is_empty());
    }
}
