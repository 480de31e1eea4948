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
//! The index is `now / width`, computed as `now * recip >> 64` with
//! `recip = floor(2^64 / width)` and one correction (exact floor division
//! for every `u64` clock value, without a division instruction).

use super::{FastMod, Sample, WindowCounts};
use crate::clock::{duration_to_nanos, Nanos};
use crate::loom_shim::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const FIELD: u64 = 0xFFFF;
const EPOCH_SHIFT: u32 = 48;
const CALLS_SHIFT: u32 = 32;
const FAIL_SHIFT: u32 = 16;

#[derive(Debug)]
pub(crate) struct TimeWindow {
    /// `b` bucket words, then `b` rolled-at words: the full bucket index at
    /// which each bucket was last rolled. The 16-bit epoch in a bucket word
    /// repeats every 2^16 bucket widths; its rolled-at word tells a bucket
    /// written one such cycle ago (or more) from a live one. A rolled-at
    /// word is written only by the writer whose CAS rolled the bucket, after
    /// that CAS: a reader that sees the new bucket before its index skips it
    /// for that instant (it never counts a stale one). One allocation for
    /// both keeps the window enum, which every breaker holds inline, small.
    words: Box<[AtomicU64]>,
    recip: u64,
    /// Bucket width in nanoseconds, to correct the reciprocal's quotient.
    width: u64,
    modulo: FastMod,
}

impl TimeWindow {
    pub(crate) fn new(duration: Duration, buckets: u32) -> Self {
        let width = (duration_to_nanos(duration) / u64::from(buckets)).max(1);
        TimeWindow {
            words: (0..2 * buckets).map(|_| AtomicU64::new(0)).collect(),
            recip: u64::MAX / width,
            width,
            modulo: FastMod::new(buckets),
        }
    }

    /// The bucket count `b` (half the words; not stored, so the window
    /// stays 40 bytes).
    #[inline]
    fn count(&self) -> u32 {
        (self.words.len() / 2) as u32
    }

    #[inline]
    fn buckets(&self) -> &[AtomicU64] {
        &self.words[..self.count() as usize]
    }

    #[inline]
    fn rolled_at(&self) -> &[AtomicU64] {
        &self.words[self.count() as usize..]
    }

    #[inline]
    fn count_i32(&self) -> i32 {
        self.count() as i32
    }

    /// `now / width`, exactly. The reciprocal's quotient is at most one
    /// below it, and below only within `now / 2^64` of a width past a
    /// boundary: rare for small clock values, nearly always near the end of
    /// time (a manual clock at `u64::MAX - 10^12`), so it is corrected.
    #[inline]
    fn index(&self, now: Nanos) -> u64 {
        let q = ((u128::from(now) * u128::from(self.recip)) >> 64) as u64;
        if now - q * self.width >= self.width {
            q + 1
        } else {
            q
        }
    }

    /// `index mod b`. The index is a `u64` (a 1 ms bucket passes 2^32 after
    /// 50 days); reducing its low 32 bits instead would break the `i mod b`
    /// layout each time they wrap, putting two live buckets in one slot.
    #[inline]
    fn slot(&self, index: u64) -> usize {
        match u32::try_from(index) {
            Ok(i) => self.modulo.rem(i, self.count()) as usize,
            Err(_) => (index % u64::from(self.count())) as usize,
        }
    }

    #[inline]
    pub(crate) fn record(&self, sample: Sample, now: Nanos) {
        let index = self.index(now);
        let epoch = index & FIELD;
        let slot = self.slot(index);
        let bucket = &self.buckets()[slot];
        let rolled_at = &self.rolled_at()[slot];
        let add =
            (1 << CALLS_SHIFT) | (u64::from(sample.failed) << FAIL_SHIFT) | u64::from(sample.slow);
        let mut rolled = false;
        let done = bucket.fetch_update(Relaxed, Relaxed, |w| {
            let calls = (w >> CALLS_SHIFT) & FIELD;
            let age = (epoch.wrapping_sub(w >> EPOCH_SHIFT) & FIELD) as u16 as i16;
            // age > 0: an older bucket; age <= -b: left by a clock that has
            // since been set back; a rolled-at index a window or more away:
            // the same epoch, 2^16 bucket widths (or more) ago. Roll.
            rolled = calls == 0
                || age > 0
                || i32::from(age) <= -self.count_i32()
                || index.abs_diff(rolled_at.load(Relaxed)) >= u64::from(self.count());
            if rolled {
                Some((epoch << EPOCH_SHIFT) | add)
            } else if calls == FIELD {
                None // full: stop sampling this bucket
            } else {
                Some(w + add) // same epoch, or a newer one: take the sample
            }
        });
        if rolled && done.is_ok() {
            rolled_at.store(index, Relaxed);
        }
    }

    pub(crate) fn counts(&self, now: Nanos) -> WindowCounts {
        let index = self.index(now);
        let epoch = index & FIELD;
        let mut c = WindowCounts::default();
        for (b, rolled_at) in self.buckets().iter().zip(self.rolled_at()) {
            let w = b.load(Relaxed);
            let calls = (w >> CALLS_SHIFT) & FIELD;
            let age = (epoch.wrapping_sub(w >> EPOCH_SHIFT) & FIELD) as u16 as i16;
            // age < 0: written by a clock slightly ahead of ours; still live.
            if calls > 0
                && i32::from(age).abs() < self.count_i32()
                && index.abs_diff(rolled_at.load(Relaxed)) < u64::from(self.count())
            {
                c.calls += calls;
                c.failures += (w >> FAIL_SHIFT) & FIELD;
                c.slow += w & FIELD;
            }
        }
        c
    }

    pub(crate) fn clear(&self) {
        for w in self.words.iter() {
            w.store(0, Relaxed);
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.len() * core::mem::size_of::<AtomicU64>()
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
                log.push((w.index(now), f, s));
                let cur = w.index(now);
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
                    assert_eq!(w.index(now), now / width, "{now} / {width}");
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
