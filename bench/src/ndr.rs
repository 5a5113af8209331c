//! The no-drop-rate search of the throughput bench, sans-IO: the trials
//! so far in, the next offered rate (or the result) out. The shell
//! (`scripts/bench-throughput.sh --report`) runs each trial with the
//! AF_XDP generator and sink and asks again.
//!
//! RFC 2544 §26.1 defines throughput as the fastest rate at which no frame
//! is lost, found by trials at varying rates; FD.io CSIT reports it as NDR
//! (loss 0) beside PDR (partial drop rate, at a small loss ratio; here
//! [`PDR_LOSS`], 0.1 %). Both are found in
//! one run of trials: each trial's loss ratio narrows the NDR interval,
//! the PDR interval, or both, and the next rate bisects whichever interval
//! is still the wider, relative to its upper bound. The first trial is
//! the generator at full blast (the highest rate it can offer); if it
//! loses nothing, that is the result.
//!
//! Offered rates are the ones the generator measured, not the ones it was
//! asked for (at high rates a paced generator falls short). A trial that
//! passes above a failing one (noise, on a shared machine) does not raise
//! the lower bound: a bound is the fastest passing rate *below* the
//! slowest failing one, so the result is never above a failure.
//!
//! The search is bounded in trials ([`SearchLimits::max_trials`]) and
//! stops early once both intervals are within
//! [`SearchLimits::precision`] of their upper bounds.

/// PDR's loss ratio: at most 0.1 %.
pub const PDR_LOSS: f64 = 0.001;

/// Below this many packets per second the search gives up narrowing: a
/// path that loses at a few hundred pps has no meaningful NDR.
pub const FLOOR_PPS: f64 = 1_000.0;

/// One trial: what the generator put on the wire, what the sink counted
/// as good.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    /// The offered rate the generator measured, packets per second.
    pub offered_pps: f64,
    pub sent: u64,
    pub received: u64,
}

impl Trial {
    /// Lost packets over sent (0 when nothing was sent). Duplicates (more
    /// received than sent) count as no loss.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.sent.saturating_sub(self.received) as f64 / self.sent as f64
    }
}

/// How far the search may go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchLimits {
    /// Trials in all, the full-blast one included.
    pub max_trials: usize,
    /// Stop when both intervals are narrower than this share of their
    /// upper bound.
    pub precision: f64,
}

/// What the search found (lower bounds, as CSIT reports them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Fastest offered rate with no loss, packets per second (0: none).
    pub ndr_pps: f64,
    /// Fastest offered rate with loss <= [`PDR_LOSS`].
    pub pdr_pps: f64,
    pub trials: usize,
}

/// The search's answer to "what now?".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Run the first trial as fast as the generator can.
    FullBlast,
    /// Run a trial at this rate, packets per second.
    Rate(u64),
    Done(Rates),
}

/// One loss threshold's interval: `lo` passed, `hi` failed (`None`: no
/// trial failed).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Interval {
    lo: f64,
    hi: Option<f64>,
}

impl Interval {
    fn of(trials: &[Trial], max_loss: f64) -> Interval {
        let hi = trials.iter().filter(|t| t.loss() > max_loss).map(|t| t.offered_pps).reduce(f64::min);
        let lo = trials
            .iter()
            .filter(|t| t.loss() <= max_loss && hi.is_none_or(|h| t.offered_pps < h))
            .map(|t| t.offered_pps)
            .fold(0.0, f64::max);
        Interval { lo, hi }
    }

    /// Relative width still open, 0 once settled.
    fn open(&self, precision: f64) -> f64 {
        match self.hi {
            None => 0.0,
            Some(hi) if hi < FLOOR_PPS => 0.0,
            Some(hi) => {
                let w = (hi - self.lo) / hi;
                if w <= precision {
                    0.0
                } else {
                    w
                }
            }
        }
    }

    fn midpoint(&self) -> f64 {
        (self.lo + self.hi.unwrap_or(self.lo)) / 2.0
    }
}

/// The next step of the search, from the trials so far (the first being
/// the full-blast one).
pub fn next(trials: &[Trial], limits: SearchLimits) -> Next {
    if trials.is_empty() {
        return Next::FullBlast;
    }
    let ndr = Interval::of(trials, 0.0);
    let pdr = Interval::of(trials, PDR_LOSS);
    let (wn, wp) = (ndr.open(limits.precision), pdr.open(limits.precision));
    if trials.len() >= limits.max_trials || (wn == 0.0 && wp == 0.0) {
        return Next::Done(Rates { ndr_pps: ndr.lo, pdr_pps: pdr.lo, trials: trials.len() });
    }
    let rate = if wn >= wp { ndr.midpoint() } else { pdr.midpoint() };
    Next::Rate(rate.round().max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SearchLimits = SearchLimits { max_trials: 12, precision: 0.02 };

    /// A path that drops everything above `capacity` pps and, between
    /// `capacity` and `1.0005 * capacity`, loses under 0.1 %.
    fn trial(rate: f64, capacity: f64) -> Trial {
        let sent = (rate / 10.0) as u64; // 100 ms trials
        let received = if rate <= capacity { sent } else { (capacity / rate * sent as f64 * 0.9995) as u64 };
        Trial { offered_pps: rate, sent, received }
    }

    fn search(blast: f64, capacity: f64, limits: SearchLimits) -> Rates {
        let mut trials = Vec::new();
        loop {
            match next(&trials, limits) {
                Next::FullBlast => trials.push(trial(blast, capacity)),
                Next::Rate(r) => trials.push(trial(r as f64, capacity)),
                Next::Done(rates) => return rates,
            }
        }
    }

    #[test]
    fn loss_ratio() {
        let t = Trial { offered_pps: 1.0, sent: 1000, received: 999 };
        assert_eq!(t.loss(), 0.001);
        assert_eq!(Trial { offered_pps: 1.0, sent: 0, received: 0 }.loss(), 0.0);
        assert_eq!(Trial { offered_pps: 1.0, sent: 10, received: 12 }.loss(), 0.0);
    }

    #[test]
    fn full_blast_first_and_done_if_lossless() {
        assert_eq!(next(&[], LIMITS), Next::FullBlast);
        let r = search(2e6, 3e6, LIMITS);
        assert_eq!(r, Rates { ndr_pps: 2e6, pdr_pps: 2e6, trials: 1 });
    }

    #[test]
    fn bisects_to_the_capacity_within_precision() {
        let r = search(2e6, 1.23e6, LIMITS);
        assert!(r.ndr_pps <= 1.23e6 && r.ndr_pps >= 1.23e6 * (1.0 - 2.0 * LIMITS.precision), "{r:?}");
        assert!(r.pdr_pps >= r.ndr_pps, "{r:?}");
        assert!(r.trials <= LIMITS.max_trials);
    }

    #[test]
    fn first_step_is_half_the_blast_rate() {
        let t = [trial(2e6, 1e6)];
        assert_eq!(next(&t, LIMITS), Next::Rate(1_000_000));
    }

    #[test]
    fn bounded_by_trial_count() {
        let limits = SearchLimits { max_trials: 4, precision: 0.0 };
        let r = search(2e6, 0.3e6, limits);
        assert_eq!(r.trials, 4);
        // 2e6 fails, 1e6 fails, 0.5e6 fails, 0.25e6 passes.
        assert_eq!(r.ndr_pps, 250_000.0);
    }

    #[test]
    fn pdr_above_ndr_when_loss_is_small() {
        // Loses 0.05 % at any rate above 1 Mpps, everything above 1.5 Mpps.
        let path = |rate: f64| {
            let sent = 1_000_000u64;
            let received = if rate <= 1e6 {
                sent
            } else if rate <= 1.5e6 {
                sent - 500
            } else {
                sent / 2
            };
            Trial { offered_pps: rate, sent, received }
        };
        let mut trials = Vec::new();
        let r = loop {
            match next(&trials, LIMITS) {
                Next::FullBlast => trials.push(path(2e6)),
                Next::Rate(x) => trials.push(path(x as f64)),
                Next::Done(r) => break r,
            }
        };
        assert!((0.97e6..=1e6).contains(&r.ndr_pps), "{r:?}");
        assert!((1.45e6..=1.5e6).contains(&r.pdr_pps), "{r:?}");
    }

    #[test]
    fn a_pass_above_a_failure_does_not_raise_the_bound() {
        let t = [
            Trial { offered_pps: 2e6, sent: 100, received: 100 },
            Trial { offered_pps: 1e6, sent: 100, received: 50 },
            Trial { offered_pps: 0.5e6, sent: 100, received: 100 },
        ];
        let i = Interval::of(&t, 0.0);
        assert_eq!(i, Interval { lo: 0.5e6, hi: Some(1e6) });
    }

    #[test]
    fn gives_up_below_the_floor() {
        let r = search(2e6, 0.0, SearchLimits { max_trials: 100, precision: 0.01 });
        assert_eq!(r.ndr_pps, 0.0);
        assert!(r.trials < 20, "{r:?}");
    }
}
