//! Per-breaker counters (B8). Every counter is a `Relaxed` RMW on its own
//! word: counters never synchronise anything, and readers accept a snapshot
//! in which counters were read at slightly different moments (invariant 8).
//! Call counters are 64-bit: at a billion increments a second one wraps
//! after 584 years, so a plain `fetch_add` is the saturating counter in
//! practice. Transition counters are 32-bit and saturate explicitly.
//!
//! Layout: the per-call counters ([`CallCounters`]) share one cache line
//! with the consecutive-failure counter, because the same recording thread
//! writes them together; they are apart from the state word, which every
//! acquire reads. That inline cell is written by one thread at a time; a
//! contended breaker adds per-thread cells (`striped.rs`, invariant 12) and
//! a snapshot sums them all. Transition statistics ([`TransitionStats`])
//! are written only by transition winners and need no line of their own.

use crate::call::{Outcome, RejectReason};
use crate::clock::Nanos;
use crate::loom_shim::{AtomicU32, AtomicU64, Ordering::Relaxed};
use crate::state::State;
use crate::striped::Owner;

const STATES: usize = State::ALL.len();
const REJECT_REASONS: usize = RejectReason::ALL.len();

fn zeros<const N: usize>() -> [AtomicU64; N] {
    core::array::from_fn(|_| AtomicU64::new(0))
}

/// Counters written on the call path. `repr(C)`: a host-shared slot's
/// process stripes hold them in this order (`crate::shared::layout`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct CallCounters {
    by_outcome: [AtomicU64; 4],
    slow: AtomicU64,
    stale: AtomicU64,
    /// Rejections but `RampLimited` (counted in the breaker's side box:
    /// only breakers whose ramp refused a call pay for it).
    rejected: [AtomicU64; 3],
}

impl CallCounters {
    pub(crate) fn new() -> Self {
        CallCounters {
            by_outcome: zeros(),
            slow: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            rejected: zeros(),
        }
    }

    #[inline]
    pub(crate) fn outcome(&self, o: Outcome, slow: bool) {
        self.by_outcome[o as usize].fetch_add(1, Relaxed);
        if slow {
            self.slow.fetch_add(1, Relaxed);
        }
    }

    #[inline]
    pub(crate) fn stale(&self) {
        self.stale.fetch_add(1, Relaxed);
    }

    #[inline]
    pub(crate) fn rejected(&self, r: RejectReason) {
        self.rejected[r as usize].fetch_add(1, Relaxed);
    }

    /// The counter of rejections for `r`, for a host that counts its own
    /// (`Breaker::open_rejection_cell`). `RampLimited` is not counted here.
    #[cfg(not(circuit_loom))]
    pub(crate) fn rejected_cell(&self, r: RejectReason) -> &AtomicU64 {
        &self.rejected[r as usize]
    }

    /// Adds restored counts (`core/src/snapshot.rs`): outcomes, slow,
    /// stale, then the rejections this cell keeps.
    pub(crate) fn add_restored(
        &self,
        outcomes: &[u64; 4],
        slow: u64,
        stale: u64,
        rejected: &[u64],
    ) {
        for (c, n) in self.by_outcome.iter().zip(outcomes) {
            c.fetch_add(*n, Relaxed);
        }
        self.slow.fetch_add(slow, Relaxed);
        self.stale.fetch_add(stale, Relaxed);
        for (c, n) in self.rejected.iter().zip(rejected) {
            c.fetch_add(*n, Relaxed);
        }
    }

    /// Adds this cell's counts to `m` (a breaker's counts are the sum of
    /// its cells, invariant 12).
    fn add_to(&self, m: &mut MetricsSnapshot) {
        let add = |sum: &mut u64, c: &AtomicU64| *sum = sum.saturating_add(c.load(Relaxed));
        for (sum, c) in m.outcomes.iter_mut().zip(&self.by_outcome) {
            add(sum, c);
        }
        add(&mut m.slow, &self.slow);
        add(&mut m.stale, &self.stale);
        for (sum, c) in m.rejected.iter_mut().zip(&self.rejected) {
            add(sum, c);
        }
    }
}

/// Transition counts (from x to) and time spent in each state.
#[derive(Debug)]
pub(crate) struct TransitionStats {
    counts: [[AtomicU32; STATES]; STATES],
    /// Which thread writes the breaker's inline counter cell (invariant
    /// 12). Not a transition statistic: it sits here, in the padding after
    /// the 32-bit counts, because it is read on every record and written
    /// rarely, like the rest of these words, so it costs no memory.
    pub(crate) owner: Owner,
    nanos_in_state: [AtomicU64; STATES],
    entered_at: AtomicU64,
}

impl TransitionStats {
    pub(crate) fn new(now: Nanos) -> Self {
        TransitionStats {
            counts: core::array::from_fn(|_| core::array::from_fn(|_| AtomicU32::new(0))),
            nanos_in_state: zeros(),
            entered_at: AtomicU64::new(now),
            owner: Owner::new(),
        }
    }

    /// Called by a transition winner only. Winners follow one another
    /// through the state CAS (invariant 3), but the previous winner may still
    /// be here; `swap` makes each stretch of time counted exactly once.
    pub(crate) fn record(&self, from: State, to: State, now: Nanos) {
        let _ = self.counts[from.index()][to.index()]
            .fetch_update(Relaxed, Relaxed, |c| c.checked_add(1));
        let since = self.entered_at.swap(now, Relaxed);
        // B12: saturate, even when a manual clock jumps by centuries.
        let spent = now.saturating_sub(since);
        let _ = self.nanos_in_state[from.index()]
            .fetch_update(Relaxed, Relaxed, |t| Some(t.saturating_add(spent)));
    }

    fn fill(&self, m: &mut MetricsSnapshot, current: State, now: Nanos) {
        for (i, row) in self.counts.iter().enumerate() {
            for (j, c) in row.iter().enumerate() {
                m.transitions[i][j] = u64::from(c.load(Relaxed));
            }
        }
        m.nanos_in_state = core::array::from_fn(|i| self.nanos_in_state[i].load(Relaxed));
        let since = self.entered_at.load(Relaxed);
        let cur = &mut m.nanos_in_state[current.index()];
        *cur = cur.saturating_add(now.saturating_sub(since));
    }
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
    pub rejected: [u64; REJECT_REASONS],
    /// Transitions into each state, indexed by `State::index`.
    pub transitions_to: [u64; STATES],
    /// Transitions by `[from][to]`, indexed by `State::index`.
    pub transitions: [[u64; STATES]; STATES],
    /// Nanoseconds spent in each state, including the current one up to
    /// the snapshot, indexed by `State::index`.
    pub nanos_in_state: [u64; STATES],
    /// The state when the snapshot was taken.
    pub state: Option<State>,
    /// Failure rate of the window (or EWMA) now; 0 without a rate policy.
    pub failure_rate: f64,
    /// Slow-call rate of the window now; 0 without a window policy.
    pub slow_call_rate: f64,
    /// Calls in the window (or seen by the EWMA) now.
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

    /// Transitions of every kind.
    pub fn transitions_total(&self) -> u64 {
        self.transitions_to.iter().sum()
    }
}

pub(crate) fn snapshot<'a>(
    cells: impl IntoIterator<Item = &'a CallCounters>,
    transitions: &TransitionStats,
    current: State,
    now: Nanos,
) -> MetricsSnapshot {
    let mut m = MetricsSnapshot {
        state: Some(current),
        ..MetricsSnapshot::default()
    };
    for cell in cells {
        cell.add_to(&mut m);
    }
    transitions.fill(&mut m, current, now);
    for row in &m.transitions {
        for (j, c) in row.iter().enumerate() {
            m.transitions_to[j] += c;
        }
    }
    m
}
