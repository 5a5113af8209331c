//! A dead worker takes fastpathd down (DESIGN.md §7: no half-alive
//! process). The management thread watches every worker thread: one that
//! ended (a panic, or a return while fastpathd runs) or whose polling loop
//! made no turn for the stall timeout is reported as a [`Death`], and
//! fastpathd exits non-zero with that one line, so that its service
//! manager restarts it and controld re-programs it.
//!
//! Each worker publishes a heartbeat, the count of its loop turns, with a
//! plain store once per turn (one writer, no read-modify-write); the
//! [`Watchdog`] is the sans-IO judge of those counts over time.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A worker's loop-turn count, written by the worker only.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heartbeat(Arc<AtomicU64>);

impl Heartbeat {
    /// The worker's side: publishes its turn count.
    pub(crate) fn beat(&self, turns: u64) {
        self.0.store(turns, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Where the last worker panic happened (`file:line`), kept by the hook
/// [`quiet_worker_panics`] installs.
static PANIC_AT: Mutex<Option<String>> = Mutex::new(None);

/// Worker panics print nothing themselves: the management thread reports
/// them in its one line ([`Death`]), with where they happened. Other
/// threads keep the default report.
pub(crate) fn quiet_worker_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name().is_some_and(|n| n.starts_with("worker-")) {
            if let (Ok(mut at), Some(l)) = (PANIC_AT.lock(), info.location()) {
                *at = Some(format!("{}:{}", l.file(), l.line()));
            }
        } else {
            default(info);
        }
    }));
}

/// Why fastpathd must go down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Death {
    Panicked { worker: usize, message: String },
    Exited { worker: usize },
    Stalled { worker: usize, silent: Duration },
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = "exiting so that the service manager restarts fastpathd";
        match self {
            Death::Panicked { worker, message } => write!(f, "worker {worker} panicked ({message}): {tail}"),
            Death::Exited { worker } => write!(f, "worker {worker} stopped unexpectedly: {tail}"),
            Death::Stalled { worker, silent } => {
                write!(f, "worker {worker} made no progress for {} ms: {tail}", silent.as_millis())
            }
        }
    }
}

/// Judges heartbeats over time.
#[derive(Debug)]
pub(crate) struct Watchdog {
    limit: Duration,
    /// Per worker: the last count seen and when it last changed.
    seen: Vec<(u64, Instant)>,
    /// When the judge itself last looked.
    last_check: Instant,
}

impl Watchdog {
    pub(crate) fn new(workers: usize, limit: Duration, now: Instant) -> Watchdog {
        Watchdog { limit, seen: vec![(0, now); workers], last_check: now }
    }

    /// The first worker whose count has not moved for the limit.
    pub(crate) fn check(&mut self, now: Instant, beats: &[u64]) -> Option<Death> {
        // The judge was not scheduled for half the limit itself (the whole
        // process stopped, a suspended machine): the workers were not
        // either, so the silence says nothing. Start counting again.
        let gap = now.saturating_duration_since(self.last_check);
        self.last_check = now;
        if gap >= self.limit / 2 {
            for (seen, beat) in self.seen.iter_mut().zip(beats) {
                *seen = (*beat, now);
            }
            return None;
        }
        for (worker, (seen, beat)) in self.seen.iter_mut().zip(beats).enumerate() {
            if seen.0 != *beat {
                *seen = (*beat, now);
                continue;
            }
            let silent = now.saturating_duration_since(seen.1);
            if silent >= self.limit {
                return Some(Death::Stalled { worker, silent });
            }
        }
        None
    }
}

/// The first worker thread that ended, joined (its panic message taken).
pub(crate) fn ended(threads: &mut [Option<JoinHandle<()>>]) -> Option<Death> {
    for (worker, slot) in threads.iter_mut().enumerate() {
        if slot.as_ref().is_some_and(|t| t.is_finished()) {
            let t = slot.take()?;
            return Some(match t.join() {
                Ok(()) => Death::Exited { worker },
                Err(payload) => {
                    let mut message = panic_message(payload.as_ref());
                    if let Some(at) = PANIC_AT.lock().ok().and_then(|mut a| a.take()) {
                        message = format!("{message}, at {at}");
                    }
                    Death::Panicked { worker, message }
                }
            });
        }
    }
    None
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looks every 50 ms from `from` to `to` (ms after `t0`) with fixed beats.
    fn watch(w: &mut Watchdog, t0: Instant, from: u64, to: u64, beats: &[u64]) -> Option<Death> {
        (from..=to).step_by(50).find_map(|ms| w.check(t0 + Duration::from_millis(ms), beats))
    }

    #[test]
    fn a_silent_worker_is_stalled_after_the_limit() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(2, Duration::from_secs(2), t0);
        assert_eq!(watch(&mut w, t0, 50, 1500, &[1, 0]), None);
        // Worker 0 keeps turning; worker 1 never did.
        assert_eq!(
            w.check(t0 + Duration::from_millis(2000), &[2, 0]),
            Some(Death::Stalled { worker: 1, silent: Duration::from_secs(2) })
        );
        let mut w = Watchdog::new(1, Duration::from_secs(2), t0);
        // Count 7 first seen at 50 ms, never again.
        assert_eq!(watch(&mut w, t0, 50, 2000, &[7]), None);
        let d = w.check(t0 + Duration::from_millis(2050), &[7]).unwrap();
        assert_eq!(
            d.to_string(),
            "worker 0 made no progress for 2000 ms: exiting so that the service manager restarts fastpathd"
        );
    }

    #[test]
    fn a_pause_of_the_whole_process_is_not_a_stall() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(1, Duration::from_secs(2), t0);
        assert_eq!(watch(&mut w, t0, 50, 500, &[3]), None);
        // Nothing ran for 5 s (SIGSTOP, a suspended VM): no verdict, and
        // the count starts again from the resume.
        assert_eq!(w.check(t0 + Duration::from_millis(5500), &[3]), None);
        assert_eq!(watch(&mut w, t0, 5550, 7450, &[3]), None);
        assert!(matches!(
            w.check(t0 + Duration::from_millis(7500), &[3]),
            Some(Death::Stalled { worker: 0, .. })
        ));
    }

    #[test]
    fn a_panicked_thread_is_found_with_its_message() {
        let quiet = std::thread::spawn(|| std::thread::sleep(Duration::from_secs(5)));
        let boom = std::thread::Builder::new()
            .name("worker-1".into())
            .spawn(|| {
                let n: u32 = "not a number".parse().unwrap_or(7);
                panic!("injected fault after {n} turns");
            })
            .unwrap();
        let mut threads = vec![Some(quiet), Some(boom)];
        let deadline = Instant::now() + Duration::from_secs(5);
        let death = loop {
            if let Some(d) = ended(&mut threads) {
                break d;
            }
            assert!(Instant::now() < deadline, "the panic was never seen");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(death, Death::Panicked { worker: 1, message: "injected fault after 7 turns".into() });
        assert_eq!(
            death.to_string(),
            "worker 1 panicked (injected fault after 7 turns): exiting so that the service manager \
             restarts fastpathd"
        );
        assert!(threads[0].is_some() && threads[1].is_none());
    }
}
