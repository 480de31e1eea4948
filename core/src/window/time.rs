//! Time window: `b` buckets of equal width covering the window's duration.
//!
//! Each bucket is one `AtomicU64` (invariant 6):
//!
//! ```text
//!  63      48 47      32 31      16 15       0
//! +----------+----------+----------+----------+
//! |  epoch   |  calls   | failures |   slow   |
//! +----------+----------+----------+----------+
//! ```
//!
//! `epoch` is the low 16 bits of the bucket index `now / width`; the bucket
//! for index `i` lives in slot `i mod b`. A writer whose bucket holds another
//! epoch replaces it with a fresh one (the roll). Epochs in one slot differ
//! by multiples of `b`, so "another" is normally older; it is newer only for
//! a writer whose clock reading is more than a window old when it writes (a
//! thread stalled between reading the clock and its CAS, or a manual clock
//! set back). That writer rolls the newer bucket back and its counts are
//! lost: the window follows the latest writer rather than refusing samples,
//! so a clock set back keeps working at once.
//! A bucket counts at most 65,535 calls; past that it stops sampling, so its
//! rates stay those of the first 65,535 calls in it rather than drifting.
//! The sum covers buckets whose epoch is within the last `b` indexes and
//! whose full rolled-at index (a second word per bucket, written once per
//! roll) is too, so an idle gap of 2^16 bucket widths, where epochs repeat,
//! never brings old samples back.
//!
//! The slots, the index arithmetic and the rolled-at words are the bucketed
//! ring of `ring.rs`, which the retry budget shares.

use super::{Sample, WindowCounts};
use crate::clock::{duration_to_nanos, Nanos};
use crate::loom_shim::Ordering::Relaxed;
use crate::ring::Ring;
use crate::state::Field;
use std::time::Duration;

const SLOW: Field = Field::first(16);
const FAILURES: Field = Field::after(SLOW, 16);
const CALLS: Field = Field::after(FAILURES, 16);
const EPOCH: Field = Field::after(CALLS, 16);
const _: () = assert!(EPOCH.shift + EPOCH.width == 64);
#[cfg(test)]
const FIELD: u64 = CALLS.max();

/// One live bucket of a time window as a snapshot holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BucketRecord {
    /// Bucket widths before the current bucket (0: the current one).
    pub(crate) age: u32,
    pub(crate) calls: u16,
    pub(crate) failures: u16,
    pub(crate) slow: u16,
}

#[derive(Debug)]
pub(crate) struct TimeWindow {
    /// The buckets, their rolled-at indexes, and the index arithmetic
    /// (`ring.rs`).
    ring: Ring,
}

impl TimeWindow {
    pub(crate) fn new(duration: Duration, buckets: u32) -> Self {
        TimeWindow {
            ring: Ring::new(duration_to_nanos(duration) / u64::from(buckets), buckets),
        }
    }

    /// A window on `words` (`2 * buckets` of them: buckets, rolled-at).
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) fn on(duration: Duration, buckets: u32, words: crate::words::WordBox) -> Self {
        TimeWindow {
            ring: Ring::on(duration_to_nanos(duration) / u64::from(buckets), words),
        }
    }

    #[inline]
    fn count_i64(&self) -> i64 {
        i64::from(self.ring.count())
    }

    #[inline]
    pub(crate) fn record(&self, sample: Sample, now: Nanos) {
        let at = self.ring.at(now);
        let bucket = self.ring.bucket(at.slot);
        let add = (1 << CALLS.shift)
            | (u64::from(sample.failed) << FAILURES.shift)
            | (u64::from(sample.slow) << SLOW.shift);
        let mut rolled = false;
        let done = bucket.fetch_update(Relaxed, Relaxed, |w| {
            let calls = CALLS.get(w);
            let age = Ring::age(EPOCH, at.index, w);
            // age > 0: an older bucket; age <= -b: left by a clock that has
            // since been set back; a rolled-at index a window or more away:
            // the same epoch, 2^16 bucket widths (or more) ago. Roll.
            rolled = calls == 0
                || age > 0
                || age <= -self.count_i64()
                || !self.ring.rolled_near(at.index, at.slot);
            if rolled {
                Some(Ring::epoch_bits(EPOCH, at.index) | add)
            } else if calls == CALLS.max() {
                None // full: stop sampling this bucket
            } else {
                Some(w + add) // same epoch, or a newer one: take the sample
            }
        });
        if rolled && done.is_ok() {
            self.ring.mark_rolled(at);
        }
    }

    pub(crate) fn counts(&self, now: Nanos) -> WindowCounts {
        let index = self.ring.index(now);
        let mut c = WindowCounts::default();
        for slot in 0..self.ring.count() as usize {
            let w = self.ring.bucket(slot).load(Relaxed);
            let calls = CALLS.get(w);
            // Live includes a word written by a clock slightly ahead of ours.
            if calls > 0 && self.ring.live(EPOCH, index, slot, w) {
                c.calls += calls;
                c.failures += FAILURES.get(w);
                c.slow += SLOW.get(w);
            }
        }
        c
    }

    pub(crate) fn clear(&self) {
        self.ring.clear();
    }

    /// The live buckets at `now` with their age in bucket widths (0: the
    /// current one), for a snapshot.
    pub(crate) fn export(&self, now: Nanos) -> Vec<BucketRecord> {
        let index = self.ring.index(now);
        self.ring
            .live_words(EPOCH, index)
            .filter(|&(_, w)| CALLS.get(w) > 0)
            .map(|(_, w)| BucketRecord {
                age: Ring::age(EPOCH, index, w).max(0) as u32,
                calls: CALLS.get(w) as u16,
                failures: FAILURES.get(w) as u16,
                slow: SLOW.get(w) as u16,
            })
            .collect()
    }

    /// Loads buckets (from [`TimeWindow::export`]) into a window just
    /// cleared: a bucket `age` widths old at export, `elapsed` nanoseconds
    /// ago, goes to the bucket holding `now - elapsed - age * width`, and
    /// is dropped if that has left the window. Buckets landing in one are
    /// added (each field saturating at its maximum).
    pub(crate) fn import(&self, now: Nanos, elapsed: Nanos, buckets: &[BucketRecord]) {
        let width = self.ring.width();
        let current = self.ring.index(now);
        let count = u64::from(self.ring.count());
        let mut merged: Vec<Option<(u64, u64)>> = vec![None; self.ring.count() as usize];
        for b in buckets {
            let at =
                now.saturating_sub(elapsed.saturating_add(u64::from(b.age).saturating_mul(width)));
            let index = self.ring.index(at);
            if current - index >= count || b.calls == 0 {
                continue;
            }
            let slot = self.ring.slot(index);
            let add = |w: u64, f: Field, v: u16| {
                f.get(w).saturating_add(u64::from(v)).min(f.max()) << f.shift
            };
            let base = match merged[slot] {
                Some((i, w)) if i == index => w,
                _ => 0,
            };
            let w = add(base, CALLS, b.calls)
                | add(base, FAILURES, b.failures)
                | add(base, SLOW, b.slow);
            merged[slot] = Some((index, w));
        }
        for (slot, m) in merged.into_iter().enumerate() {
            if let Some((index, w)) = m {
                self.ring
                    .bucket(slot)
                    .store(Ring::epoch_bits(EPOCH, index) | w, Relaxed);
                self.ring.mark_rolled(crate::ring::At { index, slot });
            }
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.ring.heap_bytes()
    }

    /// Whether `TimeWindow::new(duration, buckets)` would have this shape.
    pub(crate) fn fits(&self, duration: Duration, buckets: u32) -> bool {
        self.ring.count() == buckets
            && self.ring.width() == (duration_to_nanos(duration) / u64::from(buckets)).max(1)
    }

    /// Adds each live bucket of `old`, whole, to the bucket of this window
    /// that covers the old bucket's start, when that bucket is live at
    /// `now` (live reconfiguration); older buckets are dropped. Counts that
    /// would pass a field's limit stop at it.
    pub(crate) fn seed_from(&self, old: &TimeWindow, now: Nanos) {
        let old_index = old.ring.index(now);
        let index = self.ring.index(now);
        let span = u64::from(self.ring.count());
        let first = old_index.saturating_sub(u64::from(old.ring.count()) - 1);
        for i in first..=old_index {
            let slot = old.ring.slot(i);
            let w = old.ring.bucket(slot).load(Relaxed);
            if CALLS.get(w) == 0 || Ring::age(EPOCH, i, w) != 0 || !old.ring.rolled_near(i, slot) {
                continue;
            }
            let start = i.saturating_mul(old.ring.width());
            let j = self.ring.index(start);
            if index - j.min(index) >= span {
                continue;
            }
            let at = self.ring.at(start);
            let add = |field: Field, mine: u64| (field.get(mine) + field.get(w)).min(field.max());
            let bucket = self.ring.bucket(at.slot);
            let _ = bucket.fetch_update(Relaxed, Relaxed, |mine| {
                let mine = if CALLS.get(mine) != 0 && Ring::age(EPOCH, j, mine) == 0 {
                    mine
                } else {
                    0
                };
                Some(
                    Ring::epoch_bits(EPOCH, j)
                        | (add(CALLS, mine) << CALLS.shift)
                        | (add(FAILURES, mine) << FAILURES.shift)
                        | (add(SLOW, mine) << SLOW.shift),
                )
            });
            self.ring.mark_rolled(at);
        }
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    proptest! {
        /// Window invariant: counts equal the samples recorded within the
        /// last `b` bucket widths (clock only moves forward here).
        #[test]
        fn counts_equal_samples_in_the_live_buckets(
            buckets in 1u32..12,
            steps in proptest::collection::vec((0u64..40, any::<bool>(), any::<bool>()), 0..200),
        ) {
            let width = 10 * MS;
            let w = TimeWindow::new(Duration::from_nanos(width * u64::from(buckets)), buckets);
            let mut now = 5 * MS;
            let mut log: Vec<(u64, bool, bool)> = Vec::new();
            for (dt, f, s) in steps {
                now += dt * MS / 4;
                w.record(Sample { failed: f, slow: s }, now);
                log.push((w.ring.index(now), f, s));
                let cur = w.ring.index(now);
                let live: Vec<_> = log.iter().filter(|e| cur - e.0 < u64::from(buckets)).collect();
                let want = WindowCounts {
                    calls: live.len() as u64,
                    failures: live.iter().filter(|e| e.1).count() as u64,
                    slow: live.iter().filter(|e| e.2).count() as u64,
                };
                prop_assert_eq!(w.counts(now), want);
            }
        }
    }

    #[test]
    fn a_seeded_window_keeps_the_buckets_its_span_covers() {
        let sample = |failed| Sample {
            failed,
            slow: false,
        };
        // Old: 10 buckets of 10 ms. One sample in each of the last 10 ms
        // buckets, failures in the newest three.
        let old = TimeWindow::new(Duration::from_millis(100), 10);
        for k in 0..10u64 {
            old.record(sample(k >= 7), (100 + k * 10) * MS + MS);
        }
        let now = 195 * MS;
        assert_eq!(old.counts(now).calls, 10);
        // New: 4 buckets of 20 ms, live at 195 ms: indexes 6..=9, i.e.
        // 120 ms onwards. Old buckets starting at 120..=190 ms are kept.
        let new = TimeWindow::new(Duration::from_millis(80), 4);
        new.seed_from(&old, now);
        let c = new.counts(now);
        assert_eq!((c.calls, c.failures), (8, 3));
        // They age out with the new window's buckets: at 220 ms, buckets
        // 8..=11 (160 ms onwards) are live.
        let c = new.counts(220 * MS);
        assert_eq!((c.calls, c.failures), (4, 3));
        // Across kinds or from nothing: the window is left empty.
        let fresh = TimeWindow::new(Duration::from_millis(80), 4);
        assert_eq!(fresh.counts(now), WindowCounts::default());
        assert!(new.fits(Duration::from_millis(80), 4));
        assert!(!new.fits(Duration::from_millis(80), 8));
    }

    #[test]
    fn index_is_floor_division() {
        for width in [1, 7, MS, 100 * MS, 3_000_000_007] {
            let w = TimeWindow::new(Duration::from_nanos(width * 10), 10);
            for now in [
                0u64,
                1,
                99 * MS,
                100 * MS,
                12_345_678_901,
                u64::MAX / 3,
                1_764_990_000_123_456_789,
                u64::MAX - 1_000_000_000_000,
                u64::MAX - 1,
                u64::MAX,
            ] {
                for now in [
                    now,
                    now / width * width,
                    (now / width * width).saturating_sub(1),
                ] {
                    assert_eq!(w.ring.index(now), now / width, "{now} / {width}");
                }
            }
        }
    }

    #[test]
    fn bucket_slots_stay_distinct_where_the_index_passes_2_pow_32() {
        let width = MS;
        let w = TimeWindow::new(Duration::from_nanos(width * 10), 10);
        let first = (1u64 << 32) - 7;
        for (k, index) in (first..first + 14).enumerate() {
            w.record(
                Sample {
                    failed: true,
                    slow: false,
                },
                index * width + width / 2,
            );
            let live = (k as u64 + 1).min(10);
            assert_eq!(
                w.counts(index * width + width / 2).calls,
                live,
                "index {index}"
            );
        }
    }

    #[test]
    fn a_full_bucket_stops_sampling() {
        let w = TimeWindow::new(Duration::from_secs(1), 1);
        for _ in 0..70_000 {
            w.record(
                Sample {
                    failed: true,
                    slow: false,
                },
                0,
            );
        }
        let c = w.counts(0);
        assert_eq!((c.calls, c.failures), (FIELD, FIELD));
    }

    #[test]
    fn old_buckets_age_out_and_clear_empties() {
        let w = TimeWindow::new(Duration::from_millis(100), 10);
        w.record(
            Sample {
                failed: true,
                slow: true,
            },
            0,
        );
        assert_eq!(w.counts(50 * MS).calls, 1);
        assert_eq!(w.counts(101 * MS).calls, 0);
        w.record(
            Sample {
                failed: false,
                slow: false,
            },
            200 * MS,
        );
        w.clear();
        assert_eq!(w.counts(200 * MS), WindowCounts::default());
    }
}
