//! The SAs' counters as the last stats request read them, so that a
//! client can ask for what changed since its previous reading
//! ([`Request::StatsSince`]) instead of every SA every time.
//!
//! Why: controld reads the counters once a second (anti-replay
//! high-water marks, idle time, `get sa`). With 10,000 pairs up, a whole
//! reading is some 20,000 SAs, 3.4 MB of JSON a second, built here and
//! parsed there, while most SAs carried nothing since the last one. A
//! reading since an epoch carries the SAs whose counters moved, plus the
//! ones removed, so its size follows the traffic, not the table.
//!
//! Epochs start at a random number per fastpathd instance: a client still
//! holding another instance's epoch (fastpathd restarted) gets a whole
//! reading, never a difference against counters it does not have.
//!
//! [`Request::StatsSince`]: esprit_fastpath_api::Request::StatsSince

use std::collections::{HashMap, VecDeque};

use esprit_fastpath_api::SaStatsView;

/// Removals are remembered for this many readings: a client that reads
/// less often than that gets a whole reading.
pub(crate) const REMOVALS_KEPT_FOR: u64 = 16;

/// One SA on one worker, as last read.
#[derive(Debug)]
struct Reading {
    view: SaStatsView,
    /// The epoch whose reading first showed these counters.
    changed: u64,
    /// The last epoch whose reading showed this SA.
    seen: u64,
}

/// What a stats request answers with, from [`Readings::since`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Sorted by (SA, worker).
    pub(crate) sas: Vec<SaStatsView>,
    /// (SA, worker) removed since the epoch asked for.
    pub(crate) removed: Vec<(u64, u16)>,
    /// `sas` is what changed, not everything.
    pub(crate) partial: bool,
}

/// The counters of every (SA, worker) at the last reading.
#[derive(Debug)]
pub(crate) struct Readings {
    /// The first epoch of this instance: nothing before it is ours.
    first: u64,
    /// The last reading's epoch.
    epoch: u64,
    last: HashMap<(u64, u16), Reading>,
    /// (epoch, SA, worker) of removals, oldest first.
    removed: VecDeque<(u64, u64, u16)>,
    /// Every removal after this epoch is in `removed`.
    horizon: u64,
}

impl Readings {
    /// No reading yet; epochs count up from `first` (random per
    /// instance; kept below 2^62 so that counting up never wraps).
    pub(crate) fn new(first: u64) -> Readings {
        let first = first & (u64::MAX >> 2);
        Readings { first, epoch: first, last: HashMap::new(), removed: VecDeque::new(), horizon: first }
    }

    /// Takes in a reading of the workers in `answered` (a worker that did
    /// not answer in time keeps its SAs as last read: not answering is not
    /// removing). Returns its epoch.
    pub(crate) fn record(&mut self, sas: &[SaStatsView], answered: &[u16]) -> u64 {
        self.epoch += 1;
        let epoch = self.epoch;
        for s in sas {
            match self.last.get_mut(&(s.id, s.worker)) {
                Some(r) => {
                    r.seen = epoch;
                    if r.view != *s {
                        r.view = s.clone();
                        r.changed = epoch;
                    }
                }
                None => {
                    self.last
                        .insert((s.id, s.worker), Reading { view: s.clone(), changed: epoch, seen: epoch });
                }
            }
        }
        let removed = &mut self.removed;
        self.last.retain(|&(id, worker), r| {
            let gone = r.seen != epoch && answered.contains(&worker);
            if gone {
                removed.push_back((epoch, id, worker));
            }
            !gone
        });
        while let Some(&(e, ..)) = self.removed.front() {
            if e + REMOVALS_KEPT_FOR > epoch {
                break;
            }
            self.removed.pop_front();
            self.horizon = self.horizon.max(e);
        }
        epoch
    }

    /// Whether a difference since `epoch` can be given: the epoch is this
    /// instance's, not in the future, and no removal since it has been
    /// forgotten.
    fn knows(&self, epoch: u64) -> bool {
        epoch >= self.first && epoch >= self.horizon && epoch <= self.epoch
    }

    /// The SAs changed since `since` and the ones removed since, or every
    /// SA (`partial` false) for `None` or an epoch it cannot answer from.
    pub(crate) fn since(&self, since: Option<u64>) -> Answer {
        let partial = since.filter(|&e| self.knows(e));
        let mut sas: Vec<SaStatsView> = match partial {
            Some(e) => self.last.values().filter(|r| r.changed > e).map(|r| r.view.clone()).collect(),
            None => self.last.values().map(|r| r.view.clone()).collect(),
        };
        sas.sort_by_key(|s| (s.id, s.worker));
        let removed = match partial {
            Some(e) => self.removed.iter().filter(|r| r.0 > e).map(|&(_, id, w)| (id, w)).collect(),
            None => Vec::new(),
        };
        Answer { sas, removed, partial: partial.is_some() }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sa(id: u64, worker: u16, packets: u64) -> SaStatsView {
        SaStatsView { id, worker, spi: id as u32, packets, seq: packets, ..SaStatsView::default() }
    }

    fn ids(a: &Answer) -> Vec<(u64, u16, u64)> {
        a.sas.iter().map(|s| (s.id, s.worker, s.packets)).collect()
    }

    /// A reading since the previous one carries only the SAs whose
    /// counters moved; the whole reading carries all of them.
    #[test]
    fn a_reading_since_an_epoch_carries_what_moved() {
        let mut r = Readings::new(1000);
        let e1 = r.record(&[sa(1, 0, 5), sa(2, 0, 0), sa(3, 1, 7)], &[0, 1]);
        let e2 = r.record(&[sa(1, 0, 6), sa(2, 0, 0), sa(3, 1, 7)], &[0, 1]);
        assert_eq!(e2, e1 + 1);
        let a = r.since(Some(e1));
        assert!(a.partial);
        assert_eq!(ids(&a), vec![(1, 0, 6)]);
        assert!(a.removed.is_empty());
        // Since an epoch before all of them: everything is new.
        assert_eq!(ids(&r.since(Some(e1 - 1))), vec![(1, 0, 6), (2, 0, 0), (3, 1, 7)]);
        let all = r.since(None);
        assert!(!all.partial);
        assert_eq!(ids(&all), vec![(1, 0, 6), (2, 0, 0), (3, 1, 7)]);
        // Nothing moved: an empty difference, not a whole reading.
        let e3 = r.record(&[sa(1, 0, 6), sa(2, 0, 0), sa(3, 1, 7)], &[0, 1]);
        let a = r.since(Some(e2));
        assert!(a.partial && a.sas.is_empty() && a.removed.is_empty());
        assert_eq!(ids(&r.since(Some(e3))), vec![]);
    }

    /// An SA gone from a worker that answered is a removal, of that
    /// (SA, worker) only; a worker that did not answer keeps its SAs.
    #[test]
    fn removals_are_named_and_silence_is_not_one() {
        let mut r = Readings::new(0);
        let e1 = r.record(&[sa(1, 0, 1), sa(1, 1, 1), sa(2, 1, 1)], &[0, 1]);
        // Worker 1 did not answer: its SAs stay.
        let e2 = r.record(&[sa(1, 0, 1)], &[0]);
        assert!(r.since(Some(e1)).removed.is_empty());
        // Worker 1 answers without SA 1.
        let e3 = r.record(&[sa(1, 0, 1), sa(2, 1, 2)], &[0, 1]);
        let a = r.since(Some(e2));
        assert_eq!((ids(&a), a.removed), (vec![(2, 1, 2)], vec![(1, 1)]));
        assert_eq!(r.since(Some(e3)).removed, vec![]);
        assert_eq!(ids(&r.since(None)), vec![(1, 0, 1), (2, 1, 2)]);
    }

    /// Epochs this instance cannot answer from get a whole reading:
    /// another instance's, one in the future, and one older than the
    /// removals it remembers.
    #[test]
    fn an_epoch_it_cannot_answer_from_gets_everything() {
        let mut r = Readings::new(1 << 40);
        let e1 = r.record(&[sa(1, 0, 1), sa(2, 0, 1)], &[0]);
        r.record(&[sa(1, 0, 1), sa(2, 0, 1)], &[0]);
        for other in [0, 5, (1 << 40) - 1, e1 + 100] {
            let a = r.since(Some(other));
            assert!(!a.partial, "{other}");
            assert_eq!(a.sas.len(), 2);
        }
        // SA 2 removed, then REMOVALS_KEPT_FOR quiet readings: a client at
        // e1 would miss the removal, so it gets everything.
        r.record(&[sa(1, 0, 1)], &[0]);
        assert!(r.since(Some(e1)).partial);
        for _ in 0..REMOVALS_KEPT_FOR {
            r.record(&[sa(1, 0, 1)], &[0]);
        }
        let a = r.since(Some(e1));
        assert!(!a.partial);
        assert_eq!(ids(&a), vec![(1, 0, 1)]);
        // The random start keeps clear of the top: counting never wraps.
        let r = Readings::new(u64::MAX);
        assert!(r.first <= u64::MAX >> 2);
    }
}
