//! Per-breaker counters (B8). Every counter is a `Relaxed` `fetch_add` on its
//! own word: counters never synchronise anything, and readers accept a
//! snapshot in which counters were read at slightly different moments
//! (invariant 8). Counters are 64-bit: at a billion increments a second one
//! wraps after 584 years, so a plain `fetch_add` is the saturating counter in
//! practice; narrower fields elsewhere saturate explicitly.
//!
//! Outcome counters sit on one cache line, written by recording threads;
//! rejections on another, written only while refusing calls; transitions and
//! time in state on a third, written only by transition winners.

use crate::call::{Outcome, RejectReason};
use crate::clock::Nanos;
use crate::state::State;
use crate::sync::{AtomicU64, CachePadded, Ordering::Relaxed};

#[derive(Debug)]
struct OutcomeCounters {
    by_outcome: [AtomicU64; 4],
    slow: AtomicU64,
    stale: AtomicU64,
}

#[derive(Debug)]
struct TransitionCounters {
    to_state: [AtomicU64; 7],
    nanos_in_state: [AtomicU64; 7],
    entered_at: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    outcomes: CachePadded<OutcomeCounters>,
    rejected: CachePadded<[AtomicU64; 3]>,
    transitions: CachePadded<TransitionCounters>,
}

fn zeros<const N: usize>() -> [AtomicU64; N] {
    core::array::from_fn(|_| AtomicU64::new(0))
}

/// A copy of a breaker's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Outcomes recorded, indexed by `Outcome as usize`.
    pub outcomes: [u64; 4],
    /// Recorded calls at least as long as the slow-call threshold.
    pub slow: u64,
    /// Outcomes whose permit was of an older generation (B6).
    pub stale: u64,
    /// Rejections, indexed by `RejectReason as usize`.
    pub rejected: [u64; 3],
    /// Transitions into each state, indexed by `State::index`.
    pub transitions_to: [u64; 7],
    /// Nanoseconds spent in each state, including the current one up to
    /// the snapshot, indexed by `State::index`.
    pub nanos_in_state: [u64; 7],
    /// Failure rate of the window now (0 without a window policy).
    pub failure_rate: f64,
    /// Slow-call rate of the window now (0 without a window policy).
    pub slow_call_rate: f64,
    /// Calls in the window now.
    pub window_calls: u64,
}

impl MetricsSnapshot {
    /// Calls admitted and recorded (every outcome, plus stale ones).
    pub fn recorded(&self) -> u64 {
        self.outcomes.iter().sum::<u64>() + self.stale
    }

    /// Calls refused, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Count for one outcome.
    pub fn outcome(&self, o: Outcome) -> u64 {
        self.outcomes[o as usize]
    }
}

impl Metrics {
    pub(crate) fn new(now: Nanos) -> Self {
        Metrics {
            outcomes: CachePadded::new(OutcomeCounters {
                by_outcome: zeros(),
                slow: AtomicU64::new(0),
                stale: AtomicU64::new(0),
            }),
            rejected: CachePadded::new(zeros()),
            transitions: CachePadded::new(TransitionCounters {
                to_state: zeros(),
                nanos_in_state: zeros(),
                entered_at: AtomicU64::new(now),
            }),
        }
    }

    #[inline]
    pub(crate) fn outcome(&self, o: Outcome, slow: bool) {
        self.outcomes.by_outcome[o as usize].fetch_add(1, Relaxed);
        if slow {
            self.outcomes.slow.fetch_add(1, Relaxed);
        }
    }

    #[inline]
    pub(crate) fn stale(&self) {
        self.outcomes.stale.fetch_add(1, Relaxed);
    }

    #[inline]
    pub(crate) fn rejected(&self, r: RejectReason) {
        self.rejected[r as usize].fetch_add(1, Relaxed);
    }

    /// Called by a transition winner only (invariant 3 serialises winners,
    /// so `entered_at` has one writer at a time).
    pub(crate) fn transition(&self, from: State, to: State, now: Nanos) {
        let t = &self.transitions;
        t.to_state[to.index()].fetch_add(1, Relaxed);
        let since = t.entered_at.swap(now, Relaxed);
        t.nanos_in_state[from.index()].fetch_add(now.saturating_sub(since), Relaxed);
    }

    pub(crate) fn snapshot(&self, current: State, now: Nanos) -> MetricsSnapshot {
        let load = |a: &AtomicU64| a.load(Relaxed);
        let t = &self.transitions;
        let mut nanos_in_state: [u64; 7] = core::array::from_fn(|i| load(&t.nanos_in_state[i]));
        let since = load(&t.entered_at);
        nanos_in_state[current.index()] =
            nanos_in_state[current.index()].saturating_add(now.saturating_sub(since));
        MetricsSnapshot {
            outcomes: core::array::from_fn(|i| load(&self.outcomes.by_outcome[i])),
            slow: load(&self.outcomes.slow),
            stale: load(&self.outcomes.stale),
            rejected: core::array::from_fn(|i| load(&self.rejected[i])),
            transitions_to: core::array::from_fn(|i| load(&t.to_state[i])),
            nanos_in_state,
            failure_rate: 0.0,
            slow_call_rate: 0.0,
            window_calls: 0,
        }
    }
}
