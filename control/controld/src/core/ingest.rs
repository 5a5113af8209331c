//! controld's inbox: what the main loop is given to do, in three bounded
//! queues, so that IKE traffic from the internet can never starve the
//! operator or fastpathd, nor grow memory without bound.
//!
//! * **IKE datagrams**, in two lanes: from the addresses of configured
//!   peers ([`PEER_QUEUE`] deep) and from everyone else ([`IKE_QUEUE`]
//!   deep). The socket threads never wait; a datagram that finds its lane
//!   full is dropped (the newest: what is queued is older and already
//!   paid for) and counted. Datagrams too large ([`MAX_IKE_DATAGRAM`]) or
//!   too short to be ISAKMP, or of another IKE version, are counted and
//!   dropped before they are queued. A flood from strangers fills only
//!   their lane: a configured peer's messages neither wait behind it nor
//!   are dropped for it (a spoofer may of course claim a peer's address;
//!   the half-open bounds deal with that).
//! * **Operator commands** ([`OPERATOR_QUEUE`] deep): a client's thread
//!   waits for room (each client waits for its answer anyway).
//! * **fastpathd events** ([`EVENT_QUEUE`] deep): the events thread waits
//!   for room, so fastpathd's events are never lost here, except an
//!   acquire that finds the queue full: it is dropped
//!   ([`WaitingSender::offer`]), since fastpathd repeats it every 500 ms
//!   while its proxy-ID has no SA. Waiting for room there could deadlock:
//!   the main loop waits for a fastpathd reply while fastpathd waits to
//!   write the next event to a thread that waits for the main loop (seen
//!   at 10,000 proxy-IDs, each time until fastpathd's 5 s write timeout).
//!
//! The main loop takes, each turn ([`Inbox::next_batch`]), every waiting
//! operator command and fastpathd event first, then at most [`IKE_BUDGET`]
//! datagrams, the peers' lane first; the rest wait for the next turn,
//! after the timers ran.
//!
//! Drops are counted by reason ([`IkeDrop`]: `get counter`, its `--json`
//! and Prometheus' `esprit_ike_ingest_dropped_total`) and logged at most
//! once a second with the counts ([`IkeLogLimiter`]), never one line per
//! datagram.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::ike::io::Datagram;

/// IKE datagrams waiting for the main loop. A Main Mode exchange has six
/// messages and a Quick Mode three: 1,024 holds a burst of a hundred peers
/// negotiating at once; past that, a flood is what fills it.
pub const IKE_QUEUE: usize = 1024;
/// IKE datagrams from configured peers' addresses waiting for the main
/// loop: room for a burst of Quick Modes from every peer at once.
pub const PEER_QUEUE: usize = 1024;
/// Operator commands waiting (clients then wait for room).
pub const OPERATOR_QUEUE: usize = 64;
/// fastpathd events waiting (its events thread then waits for room).
pub const EVENT_QUEUE: usize = 4096;
/// IKE datagrams handled per turn of the main loop, after every operator
/// command and fastpathd event that was waiting.
pub const IKE_BUDGET: usize = 64;
/// Largest IKE datagram taken in. strongSwan's `charon.max_packet` is
/// 10,000 bytes by default; IKEv1 with pre-shared keys needs far less
/// (a Main Mode message with a 8,192-bit DH value is about 1.2 kB).
pub const MAX_IKE_DATAGRAM: usize = 10_000;
/// The ISAKMP header (RFC 2408 §3.1).
const ISAKMP_HEADER: usize = 28;
/// At most this many IKE log lines a second pass the limiter; the rest
/// are counted and summed up once a second.
pub const IKE_LOG_LINES_PER_SEC: u32 = 50;
/// Shortest interval between two summary lines.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);

macro_rules! ike_drops {
    ($($variant:ident = $name:literal: $desc:literal,)*) => {
        /// Why an IKE datagram was dropped before an IKE peer took it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum IkeDrop { $($variant,)* }

        impl IkeDrop {
            /// Every reason, in counter order.
            pub const ALL: &'static [IkeDrop] = &[$(IkeDrop::$variant,)*];
            /// The name `get counter` and Prometheus show.
            pub fn name(self) -> &'static str {
                match self { $(IkeDrop::$variant => $name,)* }
            }
            /// One line for the operator.
            pub fn description(self) -> &'static str {
                match self { $(IkeDrop::$variant => $desc,)* }
            }
        }
    };
}

ike_drops! {
    QueueFull = "queue-full": "the IKE queue was full (a flood): the newest datagram was dropped",
    TooLarge = "too-large": "larger than MAX_IKE_DATAGRAM bytes",
    TooShort = "too-short": "shorter than an ISAKMP header (28 bytes)",
    NotIke = "not-ike": "not an IKE message (neither IKEv1's ISAKMP version nor IKEv2's, or its length field disagrees with the datagram)",
    Rejected = "rejected": "refused by IKE (no gateway for the source, malformed, unexpected, failed to decrypt or authenticate)",
}

const N: usize = IkeDrop::ALL.len();

/// Counts of dropped IKE datagrams by [`IkeDrop`], as last read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestCounters {
    counts: [u64; N],
}

impl IngestCounters {
    /// (reason, count) for every reason, in [`IkeDrop::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        IkeDrop::ALL.iter().map(|r| r.name()).zip(self.counts.iter().copied())
    }

    /// The count of one reason.
    pub fn get(&self, r: IkeDrop) -> u64 {
        self.counts[r as usize]
    }

    /// Every drop.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The counters, shared by the socket threads and the main loop (an atomic
/// add per dropped datagram, on the control plane: never the packet path).
#[derive(Debug, Default)]
pub struct SharedCounters([AtomicU64; N]);

impl SharedCounters {
    /// Counts one drop.
    pub fn count(&self, r: IkeDrop) {
        self.0[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn read(&self) -> IngestCounters {
        let mut c = IngestCounters::default();
        for (i, a) in self.0.iter().enumerate() {
            c.counts[i] = a.load(Ordering::Relaxed);
        }
        c
    }
}

/// Whether `bytes` can be an IKEv1 message at all (RFC 2408 §3.1: major
/// version 1, the header's length equal to the datagram's), checked before
/// it takes a place in the queue.
pub fn classify(bytes: &[u8]) -> Result<(), IkeDrop> {
    if bytes.len() > MAX_IKE_DATAGRAM {
        return Err(IkeDrop::TooLarge);
    }
    if bytes.len() < ISAKMP_HEADER {
        return Err(IkeDrop::TooShort);
    }
    let major = bytes[17] >> 4;
    let length = u32::from_be_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
    // IKEv1 (RFC 2408 §3.1) and IKEv2 (RFC 7296 §3.1) share the header's
    // layout: the major version in the high nibble of octet 17.
    if !matches!(major, 1 | 2) || usize::try_from(length).ok() != Some(bytes.len()) {
        return Err(IkeDrop::NotIke);
    }
    Ok(())
}

/// The addresses whose datagrams take the peers' lane: every configured
/// peer's (a dynamic peer's once known), set by the main loop.
pub type PeerAddresses = RwLock<HashSet<IpAddr>>;

/// The socket threads' end of the IKE queues.
#[derive(Debug, Clone)]
pub struct IkeSender {
    tx: SyncSender<Datagram>,
    peers_tx: SyncSender<Datagram>,
    peers: Arc<PeerAddresses>,
    wake: SyncSender<()>,
    counters: Arc<SharedCounters>,
}

impl IkeSender {
    /// Queues a datagram without waiting, in its lane: dropped and counted
    /// if it cannot be IKEv1 or the lane is full. False once the inbox is
    /// gone.
    pub fn deliver(&self, d: Datagram) -> bool {
        if let Err(r) = classify(&d.bytes) {
            self.counters.count(r);
            return true;
        }
        // A poisoned lock (a panicked writer) counts as "not a peer".
        let from_peer = self.peers.read().map(|p| p.contains(&d.remote.ip())).unwrap_or(false);
        let lane = if from_peer { &self.peers_tx } else { &self.tx };
        match lane.try_send(d) {
            Ok(()) => {
                let _ = self.wake.try_send(());
                true
            }
            Err(TrySendError::Full(_)) => {
                self.counters.count(IkeDrop::QueueFull);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// A producer's end of a queue that waits for room (operator, fastpathd).
#[derive(Debug)]
pub struct WaitingSender<T> {
    tx: SyncSender<T>,
    wake: SyncSender<()>,
}

impl<T> Clone for WaitingSender<T> {
    fn clone(&self) -> Self {
        WaitingSender { tx: self.tx.clone(), wake: self.wake.clone() }
    }
}

impl<T> WaitingSender<T> {
    /// Queues `item`, waiting for room. False once the inbox is gone.
    pub fn send(&self, item: T) -> bool {
        if self.tx.send(item).is_err() {
            return false;
        }
        let _ = self.wake.try_send(());
        true
    }

    /// Queues `item` if there is room, else drops it; never waits.
    pub fn offer(&self, item: T) -> Offered {
        match self.tx.try_send(item) {
            Ok(()) => {
                let _ = self.wake.try_send(());
                Offered::Queued
            }
            Err(TrySendError::Full(_)) => Offered::Dropped,
            Err(TrySendError::Disconnected(_)) => Offered::Gone,
        }
    }
}

/// What became of an item offered to a queue ([`WaitingSender::offer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// It is queued.
    Queued,
    /// The queue was full: it was dropped.
    Dropped,
    /// The inbox is gone.
    Gone,
}

/// One thing for the main loop to do.
#[derive(Debug)]
pub enum Work<C, E> {
    /// An operator command.
    Command(C),
    /// A fastpathd event.
    Event(E),
    /// An IKE datagram.
    Ike(Datagram),
}

/// The main loop's end of the three queues. `C` is an operator command
/// (with its reply channel), `E` a fastpathd event.
#[derive(Debug)]
pub struct Inbox<C, E> {
    ike: Receiver<Datagram>,
    from_peers: Receiver<Datagram>,
    peers: Arc<PeerAddresses>,
    commands: Receiver<C>,
    events: Receiver<E>,
    wake: Receiver<()>,
    counters: Arc<SharedCounters>,
    /// A datagram taken beyond the budget (to learn that more wait).
    carry: Option<Datagram>,
}

/// The producers' ends of an [`Inbox`].
#[derive(Debug)]
pub struct Senders<C, E> {
    /// For the IKE socket threads.
    pub ike: IkeSender,
    /// For the operator clients' threads.
    pub commands: WaitingSender<C>,
    /// For the fastpathd events thread.
    pub events: WaitingSender<E>,
}

impl<C, E> Inbox<C, E> {
    /// An inbox with the queue bounds of this module.
    pub fn new() -> (Inbox<C, E>, Senders<C, E>) {
        Inbox::with_bounds(IKE_QUEUE, OPERATOR_QUEUE, EVENT_QUEUE)
    }

    /// The addresses whose datagrams take the peers' lane from now on
    /// (written only when they changed).
    pub fn set_peers(&self, addrs: HashSet<IpAddr>) {
        let same = self.peers.read().map(|p| *p == addrs).unwrap_or(false);
        if !same {
            if let Ok(mut p) = self.peers.write() {
                *p = addrs;
            }
        }
    }

    /// An inbox with other bounds (tests).
    pub fn with_bounds(ike: usize, commands: usize, events: usize) -> (Inbox<C, E>, Senders<C, E>) {
        let (wake_tx, wake) = sync_channel(1);
        let (peers_tx, from_peers) = sync_channel(PEER_QUEUE.min(ike.max(1)));
        let (ike_tx, ike) = sync_channel(ike);
        let peers = Arc::new(PeerAddresses::default());
        let (cmd_tx, commands) = sync_channel(commands);
        let (ev_tx, events) = sync_channel(events);
        let counters = Arc::new(SharedCounters::default());
        let senders = Senders {
            ike: IkeSender {
                tx: ike_tx,
                peers_tx,
                peers: peers.clone(),
                wake: wake_tx.clone(),
                counters: counters.clone(),
            },
            commands: WaitingSender { tx: cmd_tx, wake: wake_tx.clone() },
            events: WaitingSender { tx: ev_tx, wake: wake_tx },
        };
        (Inbox { ike, from_peers, peers, commands, events, wake, counters, carry: None }, senders)
    }

    /// The drop counters.
    pub fn counters(&self) -> IngestCounters {
        self.counters.read()
    }

    /// Counts a datagram IKE refused (the main loop's own drops).
    pub fn count(&self, r: IkeDrop) {
        self.counters.count(r);
    }

    /// Waits at most `timeout` for something to do (at once if datagrams
    /// were left over from the last turn).
    pub fn wait(&self, timeout: Duration) {
        if self.carry.is_some() {
            return;
        }
        match self.wake.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
        }
    }

    /// This turn's work: every operator command and fastpathd event
    /// waiting (bounded by their queues), then at most `ike_budget` IKE
    /// datagrams, the peers' lane first, in that order.
    pub fn next_batch(&mut self, ike_budget: usize) -> Vec<Work<C, E>> {
        let mut out = Vec::new();
        while let Ok(c) = self.commands.try_recv() {
            out.push(Work::Command(c));
        }
        while let Ok(e) = self.events.try_recv() {
            out.push(Work::Event(e));
        }
        let mut taken = 0;
        if let Some(d) = self.carry.take() {
            out.push(Work::Ike(d));
            taken += 1;
        }
        while taken < ike_budget {
            match self.from_peers.try_recv().or_else(|_| self.ike.try_recv()) {
                Ok(d) => {
                    out.push(Work::Ike(d));
                    taken += 1;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return out,
            }
        }
        self.carry = self.from_peers.try_recv().or_else(|_| self.ike.try_recv()).ok();
        out
    }
}

/// The one rate limiter of IKE's log lines: at most
/// [`IKE_LOG_LINES_PER_SEC`] lines a second pass (a token bucket, so an
/// exchange's few lines always do), dropped datagrams are never logged one
/// by one, and at most once a [`LOG_INTERVAL`] one line sums up what was
/// dropped and held back since the last one, with the latest reason IKE
/// gave.
#[derive(Debug)]
pub struct IkeLogLimiter {
    tokens: u32,
    refilled: Instant,
    suppressed: u64,
    last_line: Option<Instant>,
    reported: IngestCounters,
    last_rejection: Option<String>,
    repeated_acquires: u64,
}

impl IkeLogLimiter {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> IkeLogLimiter {
        IkeLogLimiter {
            tokens: IKE_LOG_LINES_PER_SEC,
            refilled: now,
            suppressed: 0,
            last_line: None,
            reported: IngestCounters::default(),
            last_rejection: None,
            repeated_acquires: 0,
        }
    }

    /// Whether an IKE log line may be written now (else it is counted).
    pub fn allow(&mut self, now: Instant) -> bool {
        let secs = now.saturating_duration_since(self.refilled).as_secs();
        if secs > 0 {
            let add = u32::try_from(secs).unwrap_or(u32::MAX).saturating_mul(IKE_LOG_LINES_PER_SEC);
            self.tokens = self.tokens.saturating_add(add).min(IKE_LOG_LINES_PER_SEC);
            self.refilled += Duration::from_secs(secs);
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// IKE refused a datagram: remembers why (the next summary shows the
    /// latest reason; the caller counts it).
    pub fn rejected(&mut self, why: String) {
        self.last_rejection = Some(why);
    }

    /// fastpathd repeated an acquire for a proxy-ID already negotiating:
    /// counted for the next summary, not logged.
    pub fn repeated_acquire(&mut self) {
        self.repeated_acquires += 1;
    }

    /// The summary line, if something was dropped, held back or repeated
    /// and the last one is at least [`LOG_INTERVAL`] old.
    pub fn summary(&mut self, now: Instant, counters: IngestCounters) -> Option<String> {
        if counters == self.reported && self.suppressed == 0 && self.repeated_acquires == 0 {
            return None;
        }
        if self.last_line.is_some_and(|t| now.saturating_duration_since(t) < LOG_INTERVAL) {
            return None;
        }
        let span = self.last_line.map(|t| now.saturating_duration_since(t));
        let mut parts = Vec::new();
        let mut total = 0;
        for ((name, n), (_, before)) in counters.iter().zip(self.reported.iter()) {
            if n > before {
                parts.push(format!("{name} {}", n - before));
                total += n - before;
            }
        }
        let mut clauses = Vec::new();
        let why = self.last_rejection.take();
        if total > 0 || why.is_some() {
            let mut c = match span {
                Some(s) => format!("{total} datagram(s) dropped in the last {:.1} s", s.as_secs_f64()),
                None => format!("{total} datagram(s) dropped"),
            };
            if !parts.is_empty() {
                c.push_str(&format!(" ({})", parts.join(", ")));
            }
            clauses.push(c);
        }
        if let Some(why) = why {
            clauses.push(format!("last refused: {why}"));
        }
        if self.suppressed > 0 {
            clauses.push(format!("{} IKE log line(s) held back", self.suppressed));
        }
        if self.repeated_acquires > 0 {
            clauses.push(format!(
                "{} repeated acquire(s) for proxy-IDs already negotiating",
                self.repeated_acquires
            ));
        }
        let line = format!("IKE: {}", clauses.join("; "));
        self.suppressed = 0;
        self.repeated_acquires = 0;
        self.reported = counters;
        self.last_line = Some(now);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::net::SocketAddr;

    fn mm1(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len.max(ISAKMP_HEADER)];
        b[0..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        b[16] = 1; // SA payload
        b[17] = 0x10; // version 1.0
        b[18] = 2; // Main Mode
        let n = u32::try_from(b.len()).unwrap();
        b[24..28].copy_from_slice(&n.to_be_bytes());
        b
    }

    fn datagram(bytes: Vec<u8>) -> Datagram {
        Datagram {
            local: "198.51.100.1:500".parse().unwrap(),
            remote: "192.0.2.9:500".parse().unwrap(),
            bytes,
        }
    }

    #[test]
    fn classify_refuses_what_cannot_be_ikev1() {
        assert_eq!(classify(&mm1(100)), Ok(()));
        assert_eq!(classify(&mm1(MAX_IKE_DATAGRAM + 1)), Err(IkeDrop::TooLarge));
        assert_eq!(classify(&[0; 27]), Err(IkeDrop::TooShort));
        let mut v2 = mm1(100);
        v2[17] = 0x20;
        assert_eq!(classify(&v2), Ok(()), "IKEv2");
        let mut v3 = mm1(100);
        v3[17] = 0x30;
        assert_eq!(classify(&v3), Err(IkeDrop::NotIke));
        let mut short = mm1(100);
        short.truncate(90);
        assert_eq!(classify(&short), Err(IkeDrop::NotIke), "length field says 100");
    }

    /// A flood of 100,000 datagrams into the queue while an operator
    /// command and a fastpathd event wait: memory stays at the bound,
    /// every drop is counted by reason, and the next turn serves the
    /// operator and the event first, then at most the budget of IKE.
    #[test]
    fn a_flood_is_bounded_counted_and_never_starves_the_operator() {
        let (mut inbox, tx) = Inbox::<&str, u32>::with_bounds(IKE_QUEUE, 4, 4);
        let flood = 100_000;
        for i in 0..flood {
            let bytes = match i % 10 {
                0 => vec![0; 3],
                1 => mm1(MAX_IKE_DATAGRAM + 1),
                _ => mm1(60),
            };
            assert!(tx.ike.deliver(datagram(bytes)));
        }
        assert!(tx.commands.send("get sa"));
        assert!(tx.events.send(7));
        let c = inbox.counters();
        assert_eq!(c.get(IkeDrop::TooShort), flood / 10);
        assert_eq!(c.get(IkeDrop::TooLarge), flood / 10);
        assert_eq!(c.get(IkeDrop::QueueFull), flood * 8 / 10 - IKE_QUEUE as u64);
        assert_eq!(c.total(), flood - IKE_QUEUE as u64);

        inbox.wait(Duration::from_secs(5));
        let batch = inbox.next_batch(IKE_BUDGET);
        assert!(matches!(batch[0], Work::Command("get sa")), "the operator first");
        assert!(matches!(batch[1], Work::Event(7)), "then fastpathd");
        assert_eq!(batch.len(), 2 + IKE_BUDGET, "then the IKE budget, no more");
        // The rest are served turn by turn; an operator command sent in
        // the middle of the backlog is served at the next turn.
        let mut served = IKE_BUDGET;
        let mut turns = 1;
        loop {
            if turns == 3 {
                assert!(tx.commands.send("get counter"));
            }
            let t0 = Instant::now();
            inbox.wait(Duration::from_secs(5));
            assert!(t0.elapsed() < Duration::from_secs(1), "no waiting while datagrams are queued");
            let b = inbox.next_batch(IKE_BUDGET);
            if turns == 3 {
                assert!(matches!(b[0], Work::Command("get counter")));
            }
            let n = b.iter().filter(|w| matches!(w, Work::Ike(_))).count();
            assert!(n <= IKE_BUDGET);
            served += n;
            turns += 1;
            if n == 0 {
                break;
            }
        }
        assert_eq!(served, IKE_QUEUE);
        // Once drained, the queue takes datagrams again.
        assert!(tx.ike.deliver(datagram(mm1(60))));
        assert_eq!(inbox.next_batch(IKE_BUDGET).len(), 1);
    }

    /// Strangers fill their lane; a configured peer's datagram, sent after
    /// all of them, is neither dropped nor queued behind them: it is the
    /// first IKE work of the next turn.
    #[test]
    fn a_peer_is_served_ahead_of_a_flood_from_strangers() {
        let (mut inbox, tx) = Inbox::<&str, u32>::with_bounds(IKE_QUEUE, 4, 4);
        let peer: SocketAddr = "203.0.113.2:500".parse().unwrap();
        inbox.set_peers([peer.ip()].into_iter().collect());
        for _ in 0..10 * IKE_QUEUE {
            assert!(tx.ike.deliver(datagram(mm1(60))));
        }
        assert_eq!(inbox.counters().get(IkeDrop::QueueFull), 9 * IKE_QUEUE as u64);
        let mut from_peer = datagram(mm1(61));
        from_peer.remote = peer;
        assert!(tx.ike.deliver(from_peer));
        assert_eq!(inbox.counters().get(IkeDrop::QueueFull), 9 * IKE_QUEUE as u64, "not dropped");
        let batch = inbox.next_batch(IKE_BUDGET);
        assert_eq!(batch.len(), IKE_BUDGET);
        match &batch[0] {
            Work::Ike(d) => assert_eq!((d.remote, d.bytes.len()), (peer, 61)),
            _ => panic!("an IKE datagram first"),
        }
        assert!(batch[1..].iter().all(|w| matches!(w, Work::Ike(d) if d.remote != peer)));
        // Once the peer is no longer configured, its address is a stranger's.
        inbox.set_peers(HashSet::new());
        let mut again = datagram(mm1(61));
        again.remote = peer;
        assert!(tx.ike.deliver(again));
        let mut rest = Vec::new();
        loop {
            let b = inbox.next_batch(IKE_BUDGET);
            if b.is_empty() {
                break;
            }
            rest.extend(b);
        }
        assert_eq!(rest.len(), IKE_QUEUE - (IKE_BUDGET - 1) + 1);
        assert!(matches!(rest.last(), Some(Work::Ike(d)) if d.remote == peer), "behind the strangers");
    }

    /// `offer` never waits: with the queue full it drops the item.
    #[test]
    fn an_offer_to_a_full_queue_is_dropped_without_waiting() {
        let (mut inbox, tx) = Inbox::<&str, u32>::with_bounds(IKE_QUEUE, 4, 2);
        assert_eq!(tx.events.offer(1), Offered::Queued);
        assert_eq!(tx.events.offer(2), Offered::Queued);
        assert_eq!(tx.events.offer(3), Offered::Dropped, "full: dropped");
        let batch = inbox.next_batch(IKE_BUDGET);
        assert!(matches!(batch[..], [Work::Event(1), Work::Event(2)]));
        assert_eq!(tx.events.offer(4), Offered::Queued, "room again");
        drop(inbox);
        assert_eq!(tx.events.offer(5), Offered::Gone);
    }

    /// 4,000 refused datagrams in a second and 4,000 log lines: one
    /// summary line a second with the counts, the first 50 lines pass.
    #[test]
    fn logging_is_limited_to_one_summary_a_second() {
        let t0 = Instant::now();
        let mut lim = IkeLogLimiter::new(t0);
        let shared = SharedCounters::default();
        let mut lines = Vec::new();
        let mut passed = 0;
        for i in 0..4000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 250);
            shared.count(IkeDrop::Rejected);
            lim.rejected(format!("IKE datagram from 192.0.2.{}:500: no gateway for this peer", i % 250));
            if lim.allow(now) {
                passed += 1;
            }
            lines.extend(lim.summary(now, shared.read()));
        }
        assert_eq!(passed, IKE_LOG_LINES_PER_SEC);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0], "IKE: 1 datagram(s) dropped (rejected 1); last refused: IKE datagram from 192.0.2.0:500: no gateway for this peer");
        let now = t0 + Duration::from_millis(1100);
        let line = lim.summary(now, shared.read()).unwrap();
        assert_eq!(
            line,
            "IKE: 3999 datagram(s) dropped in the last 1.1 s (rejected 3999); last refused: IKE datagram from 192.0.2.249:500: no gateway for this peer; 3950 IKE log line(s) held back"
        );
        assert_eq!(lim.summary(now + Duration::from_secs(5), shared.read()), None, "nothing new, no line");
        assert!(lim.allow(now + Duration::from_secs(5)), "the bucket refilled");
    }

    /// fastpathd repeats an acquire every 500 ms while its proxy-ID
    /// waits: 10,000 waiting make 20,000 a second. They are summed up in
    /// one line a second, alone when nothing was dropped.
    #[test]
    fn repeated_acquires_are_summed_up_not_logged() {
        let t0 = Instant::now();
        let mut lim = IkeLogLimiter::new(t0);
        let counters = IngestCounters::default();
        assert_eq!(lim.summary(t0, counters), None);
        for _ in 0..20_000 {
            lim.repeated_acquire();
        }
        assert_eq!(
            lim.summary(t0, counters).as_deref(),
            Some("IKE: 20000 repeated acquire(s) for proxy-IDs already negotiating")
        );
        lim.repeated_acquire();
        assert_eq!(lim.summary(t0 + Duration::from_millis(500), counters), None, "at most one line a second");
        assert_eq!(
            lim.summary(t0 + Duration::from_secs(1), counters).as_deref(),
            Some("IKE: 1 repeated acquire(s) for proxy-IDs already negotiating")
        );
        assert_eq!(lim.summary(t0 + Duration::from_secs(5), counters), None, "nothing new, no line");
    }

    /// A real UDP socket on loopback with its receiving thread
    /// (`ike::io::receive`) and nobody draining the queue: 20,000 datagrams
    /// leave at most the bound queued, the rest are counted (or dropped by
    /// the kernel's socket buffer), and an operator command is still
    /// served first.
    #[test]
    fn a_socket_flood_is_bounded_and_counted() {
        use std::net::UdpSocket;
        let bound = 256;
        let (mut inbox, tx) = Inbox::<&str, u32>::with_bounds(bound, 4, 4);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = sock.local_addr().unwrap();
        let ike = tx.ike.clone();
        let rx = std::thread::spawn(move || crate::ike::io::receive(sock, local, ike));
        let from = UdpSocket::bind("127.0.0.1:0").unwrap();
        let msg = mm1(120);
        let sent = 20_000u64;
        for _ in 0..sent {
            from.send_to(&msg, local).unwrap();
        }
        // The receiving thread has taken all it will when the counters
        // stop moving (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = inbox.counters();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = inbox.counters();
            if (now == last && now.get(IkeDrop::QueueFull) > 0) || Instant::now() > deadline {
                break;
            }
            last = now;
        }
        let full = inbox.counters().get(IkeDrop::QueueFull);
        assert!(tx.commands.send("get counter"));
        let batch = inbox.next_batch(usize::MAX);
        assert!(matches!(batch[0], Work::Command("get counter")));
        let queued = batch.iter().filter(|w| matches!(w, Work::Ike(_))).count() as u64;
        assert_eq!(queued, bound as u64, "the queue held exactly its bound");
        assert!(full > 0 && queued + full <= sent, "queue-full {full}, queued {queued} of {sent}");
        // The thread ends once the inbox is gone and a datagram comes.
        drop(inbox);
        from.send_to(&msg, local).unwrap();
        rx.join().unwrap();
    }
}
