//! Sliding windows read by the rate policies (B3, invariant 6).
//!
//! Both windows are statistics, not synchronisation: every access is
//! `Relaxed`, and consistency comes from each word being updated by a single
//! read-modify-write. A trip decision is made from the value returned by the
//! recording thread's own RMW, then confirmed by the CAS on the state word.

mod count;
mod time;

/// The empty count word, for host-shared slots (`crate::shared`).
#[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
pub(crate) use count::COUNTS_EMPTY;
pub(crate) use count::{CountWindow, MappedHead};
pub(crate) use time::{BucketRecord, TimeWindow};

use crate::clock::Nanos;
use crate::config::WindowKind;

/// What the window holds after a record: calls, failures and slow calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Outcomes in the window (successes, failures and timeouts).
    pub calls: u64,
    /// Failures and timeouts in the window.
    pub failures: u64,
    /// Slow calls in the window.
    pub slow: u64,
}

impl WindowCounts {
    /// Failure share in `[0, 1]` (0 for an empty window).
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }

    /// Slow share in `[0, 1]` (0 for an empty window).
    pub fn slow_rate(&self) -> f64 {
        ratio(self.slow, self.calls)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part.min(whole) as f64 / whole as f64
    }
}

/// What a window asks of the breaker recording into it, only when it
/// needs it: the time (a time window), and whether the breaker is
/// contended (an in-process count window, invariant 16). A trait rather
/// than two closures, so that the record path passes one pointer.
pub(crate) trait Recorder {
    /// The coarse clock's reading.
    fn coarse_now(&self) -> Nanos;
    /// Whether this thread finds the breaker contended (invariant 12).
    fn contended(&self) -> bool;
}

/// One outcome as the window stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) failed: bool,
    pub(crate) slow: bool,
}

/// A byte with one valid value, in the padding of `CountWindow`: its 255
/// invalid values let `Option<Window>` keep its tag there, so a breaker
/// does not pay eight bytes for the `Option` (DESIGN.md section 6, memory).
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub(crate) enum Niche {
    Only = 0,
}

/// The configured window.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
    /// A count window on a host-shared slot's words (`crate::shared`).
    #[cfg_attr(circuit_loom, allow(dead_code))]
    SharedCount(CountWindow<MappedHead>),
}

// The variants fit around the in-process count window's niche byte: an
// `Option<Window>` costs a breaker no more than a count window.
const _: () =
    assert!(core::mem::size_of::<Option<Window>>() == core::mem::size_of::<CountWindow>());

impl Window {
    pub(crate) fn new(kind: WindowKind) -> Window {
        match kind {
            WindowKind::Count { size } => Window::Count(CountWindow::new(size)),
            WindowKind::Time { duration, buckets } => {
                Window::Time(TimeWindow::new(duration, buckets))
            }
        }
    }

    /// A window of `kind` on borrowed words (a host-shared slot's:
    /// `crate::shared`), laid out as `new` lays out its own.
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) fn on(kind: WindowKind, words: crate::words::WordBox) -> Window {
        match kind {
            WindowKind::Count { size } => {
                let (head, slots) = words.split_at(2);
                Window::SharedCount(CountWindow::on(size, head, slots))
            }
            WindowKind::Time { duration, buckets } => {
                Window::Time(TimeWindow::on(duration, buckets, words))
            }
        }
    }

    /// Adds a sample and returns the window's counts including it.
    /// `want_counts` false lets the windows skip reading and summing their
    /// counts (the result is then zeros).
    /// `by` is asked the time only by a time window (a count window reads
    /// no clock), and whether it is contended only by an in-process count
    /// window, which then records through its lanes (invariant 16; a
    /// host-shared window never does).
    #[inline]
    pub(crate) fn record(
        &self,
        sample: Sample,
        by: &impl Recorder,
        want_counts: bool,
    ) -> WindowCounts {
        match self {
            Window::Count(w) => w.record(sample, want_counts, by.contended()),
            Window::SharedCount(w) => w.record(sample, want_counts, false),
            Window::Time(w) => {
                let now = by.coarse_now();
                w.record(sample, now);
                if want_counts {
                    w.counts(now)
                } else {
                    WindowCounts::default()
                }
            }
        }
    }

    /// Counts now, for metrics.
    pub(crate) fn counts(&self, now: Nanos) -> WindowCounts {
        match self {
            Window::Count(w) => w.counts(),
            Window::SharedCount(w) => w.counts(),
            Window::Time(w) => w.counts(now),
        }
    }

    /// Empties the window. Called by a transition winner (invariant 6).
    pub(crate) fn clear(&self) {
        match self {
            Window::Count(w) => w.clear(),
            Window::SharedCount(w) => w.clear(),
            Window::Time(w) => w.clear(),
        }
    }

    /// Whether this window has the shape `kind` asks for (live
    /// reconfiguration, `crate::reconfig`).
    pub(crate) fn fits(&self, kind: WindowKind) -> bool {
        match (self, kind) {
            (Window::Count(w), WindowKind::Count { size }) => w.size() == size,
            (Window::Time(w), WindowKind::Time { duration, buckets }) => w.fits(duration, buckets),
            _ => false,
        }
    }

    /// Fills this (empty) window from `old`, the window it replaces: the
    /// most recent outcomes of a count window, the buckets of a time window
    /// that the new span still covers; nothing across kinds. The rules are
    /// in `crate::reconfig`.
    pub(crate) fn seed_from(&self, old: &Window, now: Nanos) {
        match (self, old) {
            (Window::Count(new), Window::Count(old)) => new.seed_from(old),
            (Window::Time(new), Window::Time(old)) => new.seed_from(old, now),
            _ => {}
        }
    }

    /// Bytes of heap the window owns.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Window::Count(w) => w.heap_bytes(),
            Window::SharedCount(w) => w.heap_bytes(),
            Window::Time(w) => w.heap_bytes(),
        }
    }
}

/// `a % d` for a fixed divisor without a division instruction (Lemire,
/// "Faster remainder by direct computation", 2019): exact for every `u32`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastMod {
    m: u64,
}

impl FastMod {
    pub(crate) fn new(d: u32) -> FastMod {
        assert!(d > 0);
        FastMod {
            m: (u64::MAX / u64::from(d)).wrapping_add(1),
        }
    }

    /// `a % d`; `d` must be the divisor given to `new` (the windows keep it
    /// in a field of their own, so it is not stored twice).
    #[inline]
    pub(crate) fn rem(self, a: u32, d: u32) -> u32 {
        let low = self.m.wrapping_mul(u64::from(a));
        ((u128::from(low) * u128::from(d)) >> 64) as u32
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fastmod_matches_remainder(a in any::<u32>(), d in 1u32..) {
            prop_assert_eq!(FastMod::new(d).rem(a, d), a % d);
        }
    }

    #[test]
    fn fastmod_edges() {
        for d in [1, 2, 3, 7, 100, 1 << 20, u32::MAX] {
            for a in [0, 1, d - 1, d, u32::MAX] {
                assert_eq!(FastMod::new(d).rem(a, d), a % d, "{a} % {d}");
            }
        }
    }
}
