//! The retry budget: [`RetryBudget`] (module docs, "Budget rule").

use super::{err, MAX_BUDGET_BUCKETS, MAX_BUDGET_RATIO, MAX_MIN_RETRIES_PER_SEC};
use crate::clock::{duration_to_nanos, Nanos};
use crate::config::{ConfigError, MAX_DURATION, MIN_BUCKET_WIDTH};
use crate::loom_shim::{spin_hint, Ordering::Relaxed};
use crate::ring::{At, Ring};
use crate::state::Field;
use core::fmt;
use std::time::Duration;

const RETRIES: Field = Field::first(20);
const CALLS: Field = Field::after(RETRIES, 20);
const EPOCH: Field = Field::after(CALLS, 24);
const _: () = assert!(EPOCH.shift + EPOCH.width == 64);
const MICRO: u128 = 1_000_000;

/// Calls and retries in a budget's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetCounts {
    /// Calls recorded (deposits).
    pub calls: u64,
    /// Retries granted (withdrawals).
    pub retries: u64,
}

/// A Finagle-style retry budget over a sliding time window; see the module
/// docs ("Budget rule") for the exact guarantee. Lock-free: one CAS per
/// call or retry. Thread safety: share it by reference among any number of
/// threads.
pub struct RetryBudget {
    /// The buckets, their rolled-at indexes and the index arithmetic, as
    /// the time window's (`ring.rs`).
    ring: Ring,
    ratio_ppm: u64,
    reserve_micro: u64,
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("buckets", &self.ring.count())
            .field("bucket_width_nanos", &self.ring.width())
            .field("ratio", &self.ratio())
            .field("reserve", &self.reserve())
            .finish()
    }
}

impl RetryBudget {
    /// A builder holding Finagle's defaults: 20 % of calls, at least 10
    /// retries a second, over 10 s in 10 buckets.
    pub fn builder() -> RetryBudgetBuilder {
        RetryBudgetBuilder {
            ratio: 0.2,
            min_per_sec: 10.0,
            window: Duration::from_secs(10),
            buckets: 10,
        }
    }

    /// Retries allowed per call (as stored: rounded to a millionth).
    pub fn ratio(&self) -> f64 {
        self.ratio_ppm as f64 / 1e6
    }

    /// Retries always allowed per window, whatever the calls
    /// (`min_retries_per_sec * window`, rounded to a millionth).
    pub fn reserve(&self) -> f64 {
        self.reserve_micro as f64 / 1e6
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.ring.width() * u64::from(self.ring.count()))
    }

    /// The word as it stands at `at`, and whether that is a roll: itself if
    /// it holds this index, else an empty bucket of this index. A bucket
    /// whose epoch matches but that was rolled a whole epoch cycle (2^24
    /// bucket widths) or more ago is rolled too, so old counts never come
    /// back.
    #[inline]
    fn current(&self, at: At, w: u64) -> (u64, bool) {
        if Ring::age(EPOCH, at.index, w) == 0 && self.ring.rolled_near(at.index, at.slot) {
            (w, false)
        } else {
            (Ring::epoch_bits(EPOCH, at.index), true)
        }
    }

    /// Sums the live buckets other than `skip`.
    fn others(&self, index: u64, skip: usize) -> BudgetCounts {
        let mut c = BudgetCounts::default();
        for (_, w) in self
            .ring
            .live_words(EPOCH, index)
            .filter(|&(i, _)| i != skip)
        {
            c.calls += CALLS.get(w);
            c.retries += RETRIES.get(w);
        }
        c
    }

    /// R1 with integers: would `retries` (this one included) fit?
    #[inline]
    fn allows(&self, calls: u64, retries: u64) -> bool {
        u128::from(retries) * MICRO
            <= u128::from(self.ratio_ppm) * u128::from(calls) + u128::from(self.reserve_micro)
    }

    /// Deposits one call at `now`.
    pub fn record_call(&self, now: Nanos) {
        let at = self.ring.at(now);
        let mut rolled = false;
        // Relaxed: a statistic (module docs, "Concurrency").
        let done = self
            .ring
            .bucket(at.slot)
            .fetch_update(Relaxed, Relaxed, |w| {
                let cur;
                (cur, rolled) = self.current(at, w);
                // A full field stops counting: fewer retries allowed, never more.
                (CALLS.get(cur) < CALLS.max()).then_some(cur + (1 << CALLS.shift))
            });
        if rolled && done.is_ok() {
            self.ring.mark_rolled(at);
        }
    }

    /// Withdraws one retry at `now` if rule R1 allows it; true if granted.
    pub fn try_retry(&self, now: Nanos) -> bool {
        let at = self.ring.at(now);
        let bucket = self.ring.bucket(at.slot);
        let mut w = bucket.load(Relaxed);
        loop {
            let (cur, rolls) = self.current(at, w);
            let others = self.others(at.index, at.slot);
            let calls = others.calls + CALLS.get(cur);
            let retries = others.retries + RETRIES.get(cur) + 1;
            if RETRIES.get(cur) == RETRIES.max() || !self.allows(calls, retries) {
                return false;
            }
            // The CAS serialises retries in this bucket: each re-checks R1
            // against the count the previous winner left.
            match bucket.compare_exchange_weak(w, cur + (1 << RETRIES.shift), Relaxed, Relaxed) {
                Ok(_) => {
                    if rolls {
                        self.ring.mark_rolled(at);
                    }
                    return true;
                }
                Err(actual) => {
                    w = actual;
                    spin_hint();
                }
            }
        }
    }

    /// Calls and retries in the window at `now`.
    pub fn counts(&self, now: Nanos) -> BudgetCounts {
        self.others(self.ring.index(now), usize::MAX)
    }

    /// Whole retries R1 would grant at `now` if nothing else happened
    /// (never negative: zero when aged-out calls leave retries unpaid).
    pub fn balance(&self, now: Nanos) -> u64 {
        let c = self.counts(now);
        let allowance =
            u128::from(self.ratio_ppm) * u128::from(c.calls) + u128::from(self.reserve_micro);
        let spent = u128::from(c.retries) * MICRO;
        u64::try_from(allowance.saturating_sub(spent) / MICRO).unwrap_or(u64::MAX)
    }

    /// Bytes used, heap included.
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of::<Self>() + self.ring.heap_bytes()
    }
}

/// Builds a [`RetryBudget`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct RetryBudgetBuilder {
    ratio: f64,
    min_per_sec: f64,
    window: Duration,
    buckets: u32,
}

impl RetryBudgetBuilder {
    /// Retries allowed per recent call (0.2 = one retry per five calls).
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }
    /// Retries a second always allowed, whatever the call rate (so that a
    /// quiet client can still retry).
    pub fn min_retries_per_sec(mut self, n: f64) -> Self {
        self.min_per_sec = n;
        self
    }
    /// How long calls and retries count.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }
    /// Buckets the window is divided into (the window slides by one
    /// bucket at a time).
    pub fn buckets(mut self, n: u32) -> Self {
        self.buckets = n;
        self
    }

    /// Checks every setting; the error names the first one at fault. Both
    /// `ratio` and `min_retries_per_sec` zero is valid: no retries.
    pub fn build(self) -> Result<RetryBudget, ConfigError> {
        if !(0.0..=MAX_BUDGET_RATIO).contains(&self.ratio) {
            return Err(err(
                "ratio",
                format!("{} is not in [0, {MAX_BUDGET_RATIO}]", self.ratio),
            ));
        }
        if !(0.0..=MAX_MIN_RETRIES_PER_SEC).contains(&self.min_per_sec) {
            return Err(err(
                "min_retries_per_sec",
                format!(
                    "{} is not in [0, {MAX_MIN_RETRIES_PER_SEC}]",
                    self.min_per_sec
                ),
            ));
        }
        if self.buckets == 0 || self.buckets > MAX_BUDGET_BUCKETS {
            return Err(err(
                "buckets",
                format!("{} is not in 1..={MAX_BUDGET_BUCKETS}", self.buckets),
            ));
        }
        if self.window > MAX_DURATION {
            return Err(err(
                "window",
                format!("{:?} exceeds {MAX_DURATION:?}", self.window),
            ));
        }
        let width = duration_to_nanos(self.window) / u64::from(self.buckets);
        if width < duration_to_nanos(MIN_BUCKET_WIDTH) {
            return Err(err(
                "window",
                format!(
                    "{:?} in {} buckets makes buckets shorter than {MIN_BUCKET_WIDTH:?}",
                    self.window, self.buckets
                ),
            ));
        }
        let window_secs = (width * u64::from(self.buckets)) as f64 / 1e9;
        Ok(RetryBudget {
            ring: Ring::new(width, self.buckets),
            ratio_ppm: (self.ratio * 1e6).round() as u64,
            reserve_micro: (self.min_per_sec * window_secs * 1e6).round() as u64,
        })
    }
}
