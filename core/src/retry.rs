//! Retry helper (B10): backoff with jitter, a cap, a maximum attempt count,
//! and a retry budget so that retries cannot multiply an outage. A call the
//! breaker rejected is never retried.
//!
//! Three pieces, usable alone or together:
//!
//! - [`RetryPolicy`]: how long to wait before each retry and how many
//!   attempts to make. A pure function of the attempt number, the previous
//!   delay and a uniform draw from a seeded [`SplitMix64`]:
//!   [`RetryPolicy::delay`], or the [`Delays`] iterator for async callers.
//! - [`RetryBudget`]: Finagle-style, lock-free. Every call deposits
//!   ([`RetryBudget::record_call`]), every retry withdraws
//!   ([`RetryBudget::try_retry`]); retries are allowed up to
//!   `ratio` x recent calls plus `min_retries_per_sec` x the window.
//! - [`Retrier`]: runs an operation with a policy, an optional budget and an
//!   optional breaker, on an injected [`Clock`] and [`Sleeper`], so tests run
//!   on a [`ManualClock`] without real sleeps.
//!
//! ```
//! use circuit_core::retry::{Retrier, RetryBudget, RetryDecision, RetryPolicy};
//! use circuit_core::ManualClock;
//! use std::time::Duration;
//!
//! let policy = RetryPolicy::builder().max_attempts(4).build().unwrap();
//! let budget = RetryBudget::builder().build().unwrap();
//! let clock = ManualClock::new(0);
//! let mut tries = 0;
//! let result: Result<u32, _> = Retrier::new(&policy, &clock, &clock)
//!     .budget(&budget)
//!     .seed(7)
//!     .run(
//!         |_e: &&str| RetryDecision::retry(),
//!         |_attempt| {
//!             tries += 1;
//!             if tries < 3 { Err("flaky") } else { Ok(42) }
//!         },
//!     );
//! assert_eq!(result.unwrap(), 42);
//! assert!(clock.now() > 0, "the sleeper advanced the manual clock");
//! # use circuit_core::Clock;
//! ```
//!
//! # Delays
//!
//! Retry `n` (n = 1 after the first failed attempt) has the nominal delay
//! `none`: 0; `constant(d)`: d; `exponential(base, m)`: `base * m^(n-1)`; each
//! capped at `max_delay`. Jitter then draws `u` uniform in `[0, 1)`:
//!
//! | jitter | delay | bounds |
//! |---|---|---|
//! | none | `d` | `d` |
//! | full | `u * d` | `[0, d]` |
//! | equal | `d/2 + u * d/2` | `[d/2, d]` |
//! | plus-minus `x` | `d * (1 + x * (2u - 1))` | `[d(1-x), d(1+x)]` |
//! | decorrelated | `base + u * (max(base, 3 * prev) - base)` | `[base, max(base, 3 * prev)]` |
//!
//! and every result is clamped to `[0, max_delay]` (bounds hold to within
//! 1 ns of float rounding). Decorrelated jitter (the AWS formula) uses the
//! first nominal delay as `base`, ignores the multiplier, and grows from the
//! previous *jittered* delay `prev`.
//!
//! # Budget rule
//!
//! The budget counts calls and retries in `n` buckets (a time window of `n`
//! buckets of width `w`, `W = n * w`). The window at time `t` is the `n`
//! buckets ending with `t`'s: it covers at least the last `(n-1) * w` and at
//! most the last `W`. Rule **R1**: a retry at `t` is granted only if, counting
//! it, the window's retries are at most
//! `ratio * (window's calls) + min_retries_per_sec * W_seconds`.
//! Consequently, for every granted retry at `t`:
//!
//! ```text
//! retries in (t - (n-1)w, t]  <=  ratio * calls in (t - W, t] + min_retries_per_sec * W_seconds
//! ```
//!
//! exactly (the ratio is kept in parts per million and the reserve in
//! millionths of a retry, integers, so the comparison has no rounding).
//! Withdrawals never exceed deposits plus the reserve, so the budget never
//! goes into debt; its [`balance`](RetryBudget::balance) can fall to zero
//! when old calls age out before the retries they paid for.
//!
//! Concurrency: each bucket is one `AtomicU64` (`epoch:24 | calls:20 |
//! retries:20`), bucket index `now / w` in slot `index mod n`; a writer that
//! finds another epoch in its slot replaces it with a fresh bucket (the roll),
//! and a sum counts buckets whose epoch is within `n` of its own. A call is
//! one CAS loop on its bucket; a retry is one CAS on its bucket that
//! re-checks R1 with the other buckets read just before. Retries landing in the same bucket are
//! serialised by the CAS, so R1 is exact for them; threads whose clock
//! readings fall in different buckets can each miss the other's in-flight
//! retry, so the bound can be exceeded by at most one retry per such
//! concurrently deciding thread. Counters are statistics guarding no other
//! memory: `Relaxed` throughout (core invariant 6). A bucket counts up to
//! 2^20 - 1 calls and as many retries; a full calls field stops counting
//! (fewer retries allowed, never more), a full retries field refuses retries.
//! Epochs are 24 bits: a bucket left untouched for exactly a multiple of
//! 2^24 bucket widths (194 days at 1 s buckets) could be read as live once.

use crate::call::{Outcome, Rejected};
use crate::clock::{duration_to_nanos, Clock, ManualClock, Nanos};
use crate::config::{ConfigError, MAX_DURATION, MIN_BUCKET_WIDTH};
use crate::loom_shim::{spin_hint, AtomicU64, Ordering::Relaxed};
use crate::Breaker;
use core::fmt;
use std::any::Any;
use std::error::Error;
use std::time::Duration;

/// Largest `max_attempts` a policy accepts.
pub const MAX_ATTEMPTS: u32 = 1000;
/// Largest number of buckets in a budget window.
pub const MAX_BUDGET_BUCKETS: u32 = 64;
/// Largest budget ratio (retries per call).
pub const MAX_BUDGET_RATIO: f64 = 100.0;
/// Largest `min_retries_per_sec`.
pub const MAX_MIN_RETRIES_PER_SEC: f64 = 1_000_000.0;

fn err(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------

/// A small, fast, seeded generator (splitmix64) for jitter. Not for
/// cryptography. One per retrying caller: it is `&mut`, not shared.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// A generator that always yields the same stream for the same seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// A generator seeded differently in every process and on every call
    /// (from the standard library's per-process random hash keys), so that
    /// clients do not jitter in step.
    pub fn from_entropy() -> SplitMix64 {
        use crate::loom_shim::{process_wide, Ordering::Relaxed};
        use std::hash::{BuildHasher, Hasher};
        // A process-wide static outside any loom model (as in `rng.rs`).
        // Relaxed: only uniqueness matters.
        static CALLS: process_wide::AtomicU64 = process_wide::AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(CALLS.fetch_add(1, Relaxed));
        SplitMix64::new(h.finish())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------

/// How the nominal delay grows with the retry number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// Retry at once.
    None,
    /// The same delay before every retry.
    Constant(Duration),
    /// `base * multiplier^(n-1)` before retry `n`, capped at the policy's
    /// `max_delay`.
    Exponential {
        /// Delay before the first retry.
        base: Duration,
        /// Growth per retry, at least 1.
        multiplier: f64,
    },
}

/// How the nominal delay is randomised (see the module docs for formulas).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// The nominal delay exactly.
    None,
    /// Uniform in `[0, d]`.
    Full,
    /// Uniform in `[d/2, d]`.
    Equal,
    /// Uniform in `[base, 3 * previous delay]` (AWS "decorrelated jitter").
    Decorrelated,
    /// Uniform in `[d * (1 - x), d * (1 + x)]`, `x` in `[0, 1]`
    /// (the default is 0.25, +-25 %).
    PlusMinus(f64),
}

/// When to retry and how long to wait. Build with [`RetryPolicy::builder`];
/// a policy that exists is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    backoff: Backoff,
    jitter: Jitter,
    max_delay: u64,
    max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::builder().build().expect("defaults are valid")
    }
}

impl RetryPolicy {
    /// A builder holding the defaults: exponential backoff from 100 ms
    /// doubling, capped at 10 s, +-25 % jitter, 3 attempts in all.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            backoff: Backoff::Exponential {
                base: Duration::from_millis(100),
                multiplier: 2.0,
            },
            jitter: Jitter::PlusMinus(0.25),
            max_delay: Duration::from_secs(10),
            max_attempts: 3,
        }
    }

    /// The backoff.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }
    /// The jitter.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }
    /// The cap on every delay.
    pub fn max_delay(&self) -> Duration {
        Duration::from_nanos(self.max_delay)
    }
    /// Attempts in all, the first included (1 = never retry).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before retry `retry` (1-based) before jitter, capped.
    pub fn nominal_delay(&self, retry: u32) -> Duration {
        Duration::from_nanos(self.nominal_nanos(retry))
    }

    fn nominal_nanos(&self, retry: u32) -> u64 {
        match self.backoff {
            Backoff::None => 0,
            Backoff::Constant(d) => duration_to_nanos(d).min(self.max_delay),
            Backoff::Exponential { base, multiplier } => {
                let exp = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
                let d = duration_to_nanos(base) as f64 * multiplier.powi(exp);
                // `as` saturates (inf -> u64::MAX); then the cap.
                (d as u64).min(self.max_delay)
            }
        }
    }

    /// The pause before the next attempt, given that `attempt` attempts
    /// have failed (1 after the first) and the previous pause was
    /// `prev_delay` (zero before the first retry; only decorrelated jitter
    /// reads it). `None` once `attempt` reaches `max_attempts`. Attempt 0
    /// has nothing to wait for: `Some(ZERO)`.
    pub fn delay(
        &self,
        attempt: u32,
        prev_delay: Duration,
        rng: &mut SplitMix64,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if attempt == 0 {
            return Some(Duration::ZERO);
        }
        let u = rng.next_f64();
        Some(Duration::from_nanos(self.jittered(attempt, prev_delay, u)))
    }

    /// The delay for retry `retry` with the uniform draw `u` in `[0, 1)`.
    fn jittered(&self, retry: u32, prev_delay: Duration, u: f64) -> u64 {
        let d = self.nominal_nanos(retry) as f64;
        let out = match self.jitter {
            Jitter::None => d,
            Jitter::Full => d * u,
            Jitter::Equal => d / 2.0 + d / 2.0 * u,
            Jitter::PlusMinus(x) => d * (1.0 + x * (2.0 * u - 1.0)),
            Jitter::Decorrelated => {
                let base = self.nominal_nanos(1) as f64;
                let hi = (duration_to_nanos(prev_delay) as f64 * 3.0).max(base);
                base + u * (hi - base)
            }
        };
        // Float to int saturates and maps NaN to 0; then the cap.
        (out.max(0.0) as u64).min(self.max_delay)
    }

    /// The delays before each retry, in order (`max_attempts - 1` of them),
    /// for callers that sleep themselves (async code).
    pub fn delays(&self, rng: SplitMix64) -> Delays<'_> {
        Delays {
            policy: self,
            rng,
            attempt: 1,
            prev: Duration::ZERO,
        }
    }
}

/// Iterator over a policy's delays; see [`RetryPolicy::delays`].
#[derive(Debug, Clone)]
pub struct Delays<'a> {
    policy: &'a RetryPolicy,
    rng: SplitMix64,
    attempt: u32,
    prev: Duration,
}

impl Iterator for Delays<'_> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.policy.delay(self.attempt, self.prev, &mut self.rng)?;
        self.attempt += 1;
        self.prev = d;
        Some(d)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.policy.max_attempts.saturating_sub(self.attempt) as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Delays<'_> {}

/// Builds a [`RetryPolicy`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct RetryPolicyBuilder {
    backoff: Backoff,
    jitter: Jitter,
    max_delay: Duration,
    max_attempts: u32,
}

impl RetryPolicyBuilder {
    /// Sets the backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
    /// No backoff: retry at once.
    pub fn no_backoff(self) -> Self {
        self.backoff(Backoff::None)
    }
    /// The same delay before every retry.
    pub fn constant(self, delay: Duration) -> Self {
        self.backoff(Backoff::Constant(delay))
    }
    /// `base * multiplier^(n-1)` before retry `n`.
    pub fn exponential(self, base: Duration, multiplier: f64) -> Self {
        self.backoff(Backoff::Exponential { base, multiplier })
    }
    /// Sets the jitter.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }
    /// Caps every delay.
    pub fn max_delay(mut self, cap: Duration) -> Self {
        self.max_delay = cap;
        self
    }
    /// Attempts in all, the first included (1 = never retry).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Checks every setting; the error names the first one at fault.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            return Err(err(
                "max_attempts",
                format!(
                    "{} is not in 1..={MAX_ATTEMPTS} (1 = no retries)",
                    self.max_attempts
                ),
            ));
        }
        if self.max_delay.is_zero() || self.max_delay > MAX_DURATION {
            return Err(err(
                "max_delay",
                format!("{:?} is not in (0, {MAX_DURATION:?}]", self.max_delay),
            ));
        }
        match self.backoff {
            Backoff::None => {}
            Backoff::Constant(d) => {
                if d.is_zero() {
                    return Err(err(
                        "constant",
                        "zero; use no_backoff for immediate retries",
                    ));
                }
                if d > self.max_delay {
                    return Err(err("constant", format!("{d:?} exceeds max_delay")));
                }
            }
            Backoff::Exponential { base, multiplier } => {
                if base.is_zero() {
                    return Err(err("exponential.base", "zero; use no_backoff"));
                }
                if base > self.max_delay {
                    return Err(err(
                        "exponential.base",
                        format!("{base:?} exceeds max_delay"),
                    ));
                }
                if !multiplier.is_finite() || multiplier < 1.0 {
                    return Err(err(
                        "exponential.multiplier",
                        format!("{multiplier} is not a finite number >= 1"),
                    ));
                }
            }
        }
        if let Jitter::PlusMinus(x) = self.jitter {
            if !(0.0..=1.0).contains(&x) {
                return Err(err(
                    "jitter",
                    format!("plus-minus fraction {x} is not in [0, 1]"),
                ));
            }
        }
        Ok(RetryPolicy {
            backoff: self.backoff,
            jitter: self.jitter,
            max_delay: duration_to_nanos(self.max_delay),
            max_attempts: self.max_attempts,
        })
    }
}

// ---------------------------------------------------------------------------
// Budget
// ---------------------------------------------------------------------------

const FIELD: u64 = (1 << 20) - 1;
const CALLS_SHIFT: u32 = 20;
const EPOCH_SHIFT: u32 = 40;
const EPOCH_MASK: u64 = (1 << 24) - 1;
const MICRO: u128 = 1_000_000;

#[inline]
fn calls_of(w: u64) -> u64 {
    (w >> CALLS_SHIFT) & FIELD
}
#[inline]
fn retries_of(w: u64) -> u64 {
    w & FIELD
}
/// Buckets between `epoch` and the word's epoch, as a signed 24-bit number
/// (negative: the word was written by a clock reading ahead of ours).
#[inline]
fn age(epoch: u64, w: u64) -> i64 {
    let d = epoch.wrapping_sub(w >> EPOCH_SHIFT) & EPOCH_MASK;
    ((d << 40) as i64) >> 40
}

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
    buckets: Box<[AtomicU64]>,
    width: u64,
    ratio_ppm: u64,
    reserve_micro: u64,
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("buckets", &self.buckets.len())
            .field("bucket_width_nanos", &self.width)
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
        Duration::from_nanos(self.width * self.buckets.len() as u64)
    }

    #[inline]
    fn locate(&self, now: Nanos) -> (usize, u64) {
        let index = now / self.width;
        (
            (index % self.buckets.len() as u64) as usize,
            index & EPOCH_MASK,
        )
    }

    /// The word as it stands for `epoch`: itself if it holds this epoch,
    /// else an empty bucket of this epoch (the roll).
    #[inline]
    fn current(epoch: u64, w: u64) -> u64 {
        if age(epoch, w) == 0 {
            w
        } else {
            epoch << EPOCH_SHIFT
        }
    }

    fn live(&self, epoch: u64, w: u64) -> bool {
        age(epoch, w).unsigned_abs() < self.buckets.len() as u64
    }

    /// Sums the live buckets other than `skip`.
    fn others(&self, epoch: u64, skip: usize) -> BudgetCounts {
        let mut c = BudgetCounts::default();
        for (i, b) in self.buckets.iter().enumerate() {
            if i == skip {
                continue;
            }
            let w = b.load(Relaxed);
            if self.live(epoch, w) {
                c.calls += calls_of(w);
                c.retries += retries_of(w);
            }
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
        let (slot, epoch) = self.locate(now);
        // Relaxed: a statistic (module docs, "Concurrency").
        let _ = self.buckets[slot].fetch_update(Relaxed, Relaxed, |w| {
            let w = Self::current(epoch, w);
            // A full field stops counting: fewer retries allowed, never more.
            (calls_of(w) < FIELD).then_some(w + (1 << CALLS_SHIFT))
        });
    }

    /// Withdraws one retry at `now` if rule R1 allows it; true if granted.
    pub fn try_retry(&self, now: Nanos) -> bool {
        let (slot, epoch) = self.locate(now);
        let bucket = &self.buckets[slot];
        let mut w = bucket.load(Relaxed);
        loop {
            let cur = Self::current(epoch, w);
            let others = self.others(epoch, slot);
            let calls = others.calls + calls_of(cur);
            let retries = others.retries + retries_of(cur) + 1;
            if retries_of(cur) == FIELD || !self.allows(calls, retries) {
                return false;
            }
            // The CAS serialises retries in this bucket: each re-checks R1
            // against the count the previous winner left.
            match bucket.compare_exchange_weak(w, cur + 1, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(actual) => {
                    w = actual;
                    spin_hint();
                }
            }
        }
    }

    /// Calls and retries in the window at `now`.
    pub fn counts(&self, now: Nanos) -> BudgetCounts {
        let (_, epoch) = self.locate(now);
        self.others(epoch, usize::MAX)
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
        core::mem::size_of::<Self>() + self.buckets.len() * core::mem::size_of::<AtomicU64>()
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
            buckets: (0..self.buckets).map(|_| AtomicU64::new(0)).collect(),
            width,
            ratio_ppm: (self.ratio * 1e6).round() as u64,
            reserve_micro: (self.min_per_sec * window_secs * 1e6).round() as u64,
        })
    }
}

// ---------------------------------------------------------------------------
// The helper
// ---------------------------------------------------------------------------

/// Waits between attempts. Injectable so that tests run on simulated time.
pub trait Sleeper {
    /// Waits `d` (or pretends to).
    fn sleep(&mut self, d: Duration);
}

impl<F: FnMut(Duration)> Sleeper for F {
    fn sleep(&mut self, d: Duration) {
        self(d)
    }
}

/// Sleeps the calling thread (`std::thread::sleep`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// Advances the manual clock instead of sleeping.
impl Sleeper for &ManualClock {
    fn sleep(&mut self, d: Duration) {
        self.advance(d)
    }
}

/// What to do after a failed attempt, and how the breaker should count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Transient: record the outcome, retry if policy and budget allow.
    Retry(Outcome),
    /// Permanent (or neutral, with [`Outcome::Ignored`]): record the
    /// outcome, do not retry.
    Stop(Outcome),
}

impl RetryDecision {
    /// Retry; the breaker counts a failure.
    pub fn retry() -> RetryDecision {
        RetryDecision::Retry(Outcome::Failure)
    }
    /// Stop; the breaker counts a failure.
    pub fn stop() -> RetryDecision {
        RetryDecision::Stop(Outcome::Failure)
    }
    /// Whether to retry.
    pub fn is_retry(self) -> bool {
        matches!(self, RetryDecision::Retry(_))
    }
    /// The outcome recorded at the breaker.
    pub fn outcome(self) -> Outcome {
        match self {
            RetryDecision::Retry(o) | RetryDecision::Stop(o) => o,
        }
    }
}

/// `true` retries (counted as a failure), `false` stops (counted as a
/// failure): lets a classifier be a plain `is_retryable` predicate.
impl From<bool> for RetryDecision {
    fn from(retryable: bool) -> RetryDecision {
        if retryable {
            RetryDecision::retry()
        } else {
            RetryDecision::stop()
        }
    }
}

/// Why retrying stopped after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The classifier said stop, or the error was a breaker rejection.
    NotRetryable,
    /// `max_attempts` attempts were made.
    AttemptsExhausted,
    /// The retry budget refused the retry.
    BudgetExhausted,
}

/// How a [`Retrier::run`] failed.
#[derive(Debug)]
pub enum RetryError<E> {
    /// The breaker refused an attempt. Never retried.
    Rejected {
        /// The breaker's answer.
        rejected: Rejected,
        /// Attempts that reached the operation before the rejection.
        attempts: u32,
        /// The error of the last of them, if any.
        last_error: Option<E>,
    },
    /// The last attempt failed and no retry follows.
    Failed {
        /// Its error.
        error: E,
        /// Attempts made, this one included.
        attempts: u32,
        /// Why no retry follows.
        reason: StopReason,
    },
}

impl<E> RetryError<E> {
    /// Attempts that reached the operation.
    pub fn attempts(&self) -> u32 {
        match self {
            RetryError::Rejected { attempts, .. } | RetryError::Failed { attempts, .. } => {
                *attempts
            }
        }
    }

    /// The operation's last error, if an attempt reached it.
    pub fn into_error(self) -> Option<E> {
        match self {
            RetryError::Rejected { last_error, .. } => last_error,
            RetryError::Failed { error, .. } => Some(error),
        }
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::Rejected {
                rejected, attempts, ..
            } => write!(f, "{rejected} (after {attempts} attempts)"),
            RetryError::Failed {
                error,
                attempts,
                reason,
            } => write!(f, "{error} (after {attempts} attempts, {reason:?})"),
        }
    }
}

impl<E: Error + 'static> Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RetryError::Rejected { rejected, .. } => Some(rejected),
            RetryError::Failed { error, .. } => Some(error),
        }
    }
}

/// True when `e` is a breaker rejection: a [`Rejected`] itself, or a
/// `Box<dyn Error (+ Send + Sync)>` or `std::io::Error` whose source chain
/// holds one. [`Retrier::run`] never retries such an error.
pub fn is_rejected<E: 'static>(e: &E) -> bool {
    fn chain(mut e: &(dyn Error + 'static)) -> bool {
        loop {
            if e.is::<Rejected>() {
                return true;
            }
            match e.source() {
                Some(s) => e = s,
                None => return false,
            }
        }
    }
    let any = e as &dyn Any;
    if any.is::<Rejected>() {
        return true;
    }
    if let Some(b) = any.downcast_ref::<Box<dyn Error + Send + Sync>>() {
        return chain(&**b);
    }
    if let Some(b) = any.downcast_ref::<Box<dyn Error>>() {
        return chain(&**b);
    }
    if let Some(io) = any.downcast_ref::<std::io::Error>() {
        return io.get_ref().is_some_and(|inner| chain(inner));
    }
    false
}

/// Runs an operation with retries. Holds a policy, a clock, a sleeper, and
/// optionally a budget and a breaker; reusable (its generator carries on).
///
/// Per attempt: acquire a permit from the breaker, if any (a rejection ends
/// the run at once, [`RetryError::Rejected`]); run the operation; record the
/// outcome and the measured duration at the breaker. On error: ask the
/// classifier (an error that [`is_rejected`] is never retried and counts as
/// `Ignored`), then the policy (`max_attempts`), then the budget; sleep the
/// policy's delay; go again. The first attempt that reaches the operation
/// deposits one call into the budget; each retry withdraws one.
pub struct Retrier<'a, S> {
    policy: &'a RetryPolicy,
    clock: &'a dyn Clock,
    sleeper: S,
    budget: Option<&'a RetryBudget>,
    breaker: Option<&'a Breaker>,
    rng: SplitMix64,
    attempts: u32,
}

impl<S> fmt::Debug for Retrier<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retrier")
            .field("policy", self.policy)
            .field("budget", &self.budget)
            .field("breaker", &self.breaker.map(|b| b.name()))
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<'a, S: Sleeper> Retrier<'a, S> {
    /// A retrier with no budget and no breaker, its generator seeded from
    /// [`SplitMix64::from_entropy`].
    pub fn new(policy: &'a RetryPolicy, clock: &'a dyn Clock, sleeper: S) -> Self {
        Retrier {
            policy,
            clock,
            sleeper,
            budget: None,
            breaker: None,
            rng: SplitMix64::from_entropy(),
            attempts: 0,
        }
    }

    /// Draws retries from `budget`.
    pub fn budget(mut self, budget: &'a RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Guards every attempt with `breaker`.
    pub fn breaker(mut self, breaker: &'a Breaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Seeds the jitter generator (reproducible delays).
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = SplitMix64::new(seed);
        self
    }

    /// Attempts that reached the operation in the last run.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Runs `op` (given the 1-based attempt number) until it succeeds or a
    /// stop condition holds. `classify` decides per error; a `bool`
    /// predicate works through `.into()`.
    pub fn run<T, E, C, F>(&mut self, mut classify: C, mut op: F) -> Result<T, RetryError<E>>
    where
        E: 'static,
        C: FnMut(&E) -> RetryDecision,
        F: FnMut(u32) -> Result<T, E>,
    {
        self.attempts = 0;
        let mut prev = Duration::ZERO;
        let mut last_error = None;
        loop {
            let permit = match self.breaker.map(Breaker::acquire) {
                Some(Err(rejected)) => {
                    return Err(RetryError::Rejected {
                        rejected,
                        attempts: self.attempts,
                        last_error,
                    })
                }
                Some(Ok(p)) => Some(p),
                None => None,
            };
            self.attempts += 1;
            let attempt = self.attempts;
            // Read the clock only for a breaker's duration or a deposit.
            let deposit = self.budget.filter(|_| attempt == 1);
            let started = if permit.is_some() || deposit.is_some() {
                self.clock.now()
            } else {
                0
            };
            if let Some(b) = deposit {
                b.record_call(started);
            }
            let result = op(attempt);
            let elapsed = match permit {
                Some(_) => Duration::from_nanos(self.clock.now().saturating_sub(started)),
                None => Duration::ZERO,
            };
            let error = match result {
                Ok(v) => {
                    if let (Some(b), Some(p)) = (self.breaker, permit) {
                        b.record(p, Outcome::Success, elapsed);
                    }
                    return Ok(v);
                }
                Err(e) => e,
            };
            let decision = if is_rejected(&error) {
                RetryDecision::Stop(Outcome::Ignored)
            } else {
                classify(&error)
            };
            if let (Some(b), Some(p)) = (self.breaker, permit) {
                b.record(p, decision.outcome(), elapsed);
            }
            let next = if !decision.is_retry() {
                Err(StopReason::NotRetryable)
            } else if let Some(delay) = self.policy.delay(attempt, prev, &mut self.rng) {
                match self.budget {
                    Some(b) if !b.try_retry(self.clock.now()) => Err(StopReason::BudgetExhausted),
                    _ => Ok(delay),
                }
            } else {
                Err(StopReason::AttemptsExhausted)
            };
            let delay = match next {
                Ok(delay) => delay,
                Err(reason) => {
                    return Err(RetryError::Failed {
                        error,
                        attempts: attempt,
                        reason,
                    })
                }
            };
            self.sleeper.sleep(delay);
            prev = delay;
            last_error = Some(error);
        }
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use crate::{Config, Override, RejectReason};
    use proptest::prelude::*;
    use std::sync::Arc;

    const MS: u64 = 1_000_000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn builder_names_the_field_at_fault() {
        let p = RetryPolicy::builder;
        let b = RetryBudget::builder;
        let cases: Vec<(RetryPolicyBuilder, &str)> = vec![
            (p().max_attempts(0), "max_attempts"),
            (p().max_attempts(MAX_ATTEMPTS + 1), "max_attempts"),
            (p().max_delay(Duration::ZERO), "max_delay"),
            (p().max_delay(MAX_DURATION + ms(1)), "max_delay"),
            (p().constant(Duration::ZERO), "constant"),
            (p().constant(ms(20_000)), "constant"),
            (p().exponential(Duration::ZERO, 2.0), "exponential.base"),
            (p().exponential(ms(20_000), 2.0), "exponential.base"),
            (p().exponential(ms(1), 0.5), "exponential.multiplier"),
            (p().exponential(ms(1), f64::NAN), "exponential.multiplier"),
            (
                p().exponential(ms(1), f64::INFINITY),
                "exponential.multiplier",
            ),
            (p().jitter(Jitter::PlusMinus(1.5)), "jitter"),
            (p().jitter(Jitter::PlusMinus(-0.1)), "jitter"),
            (p().jitter(Jitter::PlusMinus(f64::NAN)), "jitter"),
        ];
        for (builder, field) in cases {
            let e = builder.clone().build().expect_err(field);
            assert_eq!(e.field, field, "{builder:?}: {e}");
            assert!(!e.reason.is_empty());
        }
        let budget_cases: Vec<(RetryBudgetBuilder, &str)> = vec![
            (b().ratio(-0.1), "ratio"),
            (b().ratio(f64::NAN), "ratio"),
            (b().ratio(101.0), "ratio"),
            (
                b().min_retries_per_sec(f64::INFINITY),
                "min_retries_per_sec",
            ),
            (b().min_retries_per_sec(-1.0), "min_retries_per_sec"),
            (b().buckets(0), "buckets"),
            (b().buckets(65), "buckets"),
            (b().window(Duration::ZERO), "window"),
            (b().window(ms(5)), "window"),
            (b().window(MAX_DURATION * 2), "window"),
        ];
        for (builder, field) in budget_cases {
            let e = builder.clone().build().expect_err(field);
            assert_eq!(e.field, field, "{builder:?}: {e}");
        }
        assert!(p().no_backoff().build().is_ok());
        assert!(b().ratio(0.0).min_retries_per_sec(0.0).build().is_ok());
    }

    #[test]
    fn exponential_without_jitter_doubles_to_the_cap() {
        let p = RetryPolicy::builder()
            .exponential(ms(100), 2.0)
            .max_delay(ms(1000))
            .jitter(Jitter::None)
            .max_attempts(7)
            .build()
            .unwrap();
        let got: Vec<_> = p.delays(SplitMix64::new(1)).collect();
        assert_eq!(
            got,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        let mut rng = SplitMix64::new(1);
        assert_eq!(p.delay(0, Duration::ZERO, &mut rng), Some(Duration::ZERO));
        assert_eq!(p.delay(7, Duration::ZERO, &mut rng), None);
        assert_eq!(
            p.nominal_delay(u32::MAX),
            ms(1000),
            "huge exponents saturate"
        );
    }

    #[test]
    fn defaults() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 3);
        assert_eq!(p.jitter(), Jitter::PlusMinus(0.25));
        let b = RetryBudget::builder().build().unwrap();
        assert_eq!(
            (b.ratio(), b.reserve(), b.window()),
            (0.2, 100.0, Duration::from_secs(10))
        );
        assert_eq!(b.memory_bytes(), core::mem::size_of::<RetryBudget>() + 80);
    }

    #[test]
    fn seeded_delays_are_reproducible() {
        let p = RetryPolicy::builder().max_attempts(10).build().unwrap();
        let a: Vec<_> = p.delays(SplitMix64::new(42)).collect();
        let b: Vec<_> = p.delays(SplitMix64::new(42)).collect();
        let c: Vec<_> = p.delays(SplitMix64::new(43)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 9);
        assert_ne!(
            SplitMix64::from_entropy().next_u64(),
            SplitMix64::from_entropy().next_u64()
        );
    }

    #[test]
    fn jitter_extremes() {
        let p = |j| {
            RetryPolicy::builder()
                .constant(ms(100))
                .max_delay(ms(110))
                .jitter(j)
                .build()
                .unwrap()
        };
        let z = Duration::ZERO;
        assert_eq!(p(Jitter::Full).jittered(1, z, 0.0), 0);
        assert_eq!(p(Jitter::Equal).jittered(1, z, 0.0), 50 * MS);
        assert_eq!(p(Jitter::PlusMinus(0.25)).jittered(1, z, 0.0), 75 * MS);
        assert_eq!(
            p(Jitter::PlusMinus(0.25)).jittered(1, z, 0.999_999),
            110 * MS,
            "capped"
        );
        assert_eq!(
            p(Jitter::Decorrelated).jittered(1, z, 0.5),
            100 * MS,
            "prev 0: base"
        );
        assert_eq!(
            p(Jitter::Decorrelated).jittered(2, ms(30), 0.999),
            100 * MS,
            "hi < base"
        );
        assert_eq!(
            p(Jitter::Decorrelated).jittered(2, ms(100), 0.5),
            110 * MS,
            "capped"
        );
    }

    /// Any valid policy built from these parts.
    fn policy() -> impl Strategy<Value = RetryPolicy> {
        let backoff = prop_oneof![
            Just(Backoff::None),
            (1u64..5_000).prop_map(|m| Backoff::Constant(ms(m))),
            (1u64..5_000, 1.0f64..4.0).prop_map(|(b, m)| Backoff::Exponential {
                base: ms(b),
                multiplier: m
            }),
        ];
        let jitter = prop_oneof![
            Just(Jitter::None),
            Just(Jitter::Full),
            Just(Jitter::Equal),
            Just(Jitter::Decorrelated),
            (0.0f64..=1.0).prop_map(Jitter::PlusMinus),
        ];
        (backoff, jitter, 5_000u64..60_000, 1u32..20).prop_map(|(b, j, cap, n)| {
            RetryPolicy::builder()
                .backoff(b)
                .jitter(j)
                .max_delay(ms(cap))
                .max_attempts(n)
                .build()
                .unwrap()
        })
    }

    proptest! {
        /// Delays stay in [0, cap] and within the jitter's bounds (module
        /// docs table, 1 ns for float rounding); None exactly past the last
        /// attempt.
        #[test]
        fn delays_within_bounds(
            p in policy(),
            attempt in 1u32..40,
            prev_ms in 0u64..100_000,
            seed in any::<u64>(),
        ) {
            let prev = ms(prev_ms);
            let mut rng = SplitMix64::new(seed);
            let got = p.delay(attempt, prev, &mut rng);
            prop_assert_eq!(got.is_none(), attempt >= p.max_attempts());
            let Some(got) = got else { return Ok(()) };
            let got = duration_to_nanos(got);
            let cap = duration_to_nanos(p.max_delay());
            prop_assert!(got <= cap);
            // The nominal delay, computed independently.
            let d = match p.backoff() {
                Backoff::None => 0.0,
                Backoff::Constant(c) => duration_to_nanos(c) as f64,
                Backoff::Exponential { base, multiplier } =>
                    duration_to_nanos(base) as f64 * multiplier.powf(f64::from(attempt - 1)),
            }.min(cap as f64);
            let (lo, hi) = match p.jitter() {
                Jitter::None => (d, d),
                Jitter::Full => (0.0, d),
                Jitter::Equal => (d / 2.0, d),
                Jitter::PlusMinus(x) => (d * (1.0 - x), d * (1.0 + x)),
                Jitter::Decorrelated => {
                    let base = match p.backoff() {
                        Backoff::None => 0.0,
                        Backoff::Constant(c) | Backoff::Exponential { base: c, .. } =>
                            duration_to_nanos(c) as f64,
                    };
                    (base, (duration_to_nanos(prev) as f64 * 3.0).max(base))
                }
            };
            let (lo, hi) = (lo.min(cap as f64), hi.min(cap as f64));
            // Relative slack for powf vs powi on long exponent chains.
            let slack = 1.0 + hi * 1e-9;
            prop_assert!(got as f64 >= lo - slack && got as f64 <= hi + slack,
                "{:?}: {} not in [{}, {}]", p, got, lo, hi);
        }

        /// The budget agrees step by step with a reference model of rule R1
        /// (a log of (bucket index, kind)), and every granted retry
        /// satisfies the time-interval form of the bound.
        #[test]
        fn budget_matches_model_and_is_never_exceeded(
            ratio_pct in 0u32..=100,
            min_per_sec in 0u32..5,
            buckets in 1u32..12,
            steps in proptest::collection::vec((0u64..400, prop::bool::weighted(0.6)), 0..300),
        ) {
            let width = 100 * MS;
            let ratio = f64::from(ratio_pct) / 100.0;
            let window_secs = f64::from(buckets) * 0.1;
            let b = RetryBudget::builder()
                .ratio(ratio)
                .min_retries_per_sec(f64::from(min_per_sec))
                .window(Duration::from_nanos(width * u64::from(buckets)))
                .buckets(buckets)
                .build()
                .unwrap();
            let n = u64::from(buckets);
            let ratio_ppm = u64::from(ratio_pct) * 10_000;
            let reserve_micro = (f64::from(min_per_sec) * window_secs * 1e6).round() as u64;
            let mut now = 0u64;
            let mut calls: Vec<u64> = Vec::new(); // times
            let mut retries: Vec<u64> = Vec::new();
            for (dt, is_call) in steps {
                now += dt * MS / 4;
                if is_call {
                    b.record_call(now);
                    calls.push(now);
                    continue;
                }
                let k = now / width;
                let live = |t: &&u64| k - **t / width < n;
                let c = calls.iter().filter(live).count() as u64;
                let r = retries.iter().filter(live).count() as u64 + 1;
                let model = u128::from(r) * 1_000_000
                    <= u128::from(ratio_ppm) * u128::from(c) + u128::from(reserve_micro);
                let granted = b.try_retry(now);
                prop_assert_eq!(granted, model, "at {} with {} calls, {} retries", now, c, r);
                if granted {
                    retries.push(now);
                    // Interval form: retries in (t-(n-1)w, t] <= ratio *
                    // calls in (t-W, t] + min_per_sec * W.
                    let recent = |from: u64| move |t: &&u64| **t + from > now;
                    let r_in = retries.iter().filter(recent((n - 1) * width)).count() as f64;
                    let c_in = calls.iter().filter(recent(n * width)).count() as f64;
                    prop_assert!(r_in <= ratio * c_in + f64::from(min_per_sec) * window_secs + 1e-9,
                        "{} retries vs {} calls at {}", r_in, c_in, now);
                }
                let counts = b.counts(now);
                prop_assert_eq!(counts.calls, calls.iter().filter(live).count() as u64);
                prop_assert_eq!(counts.retries, retries.iter().filter(live).count() as u64);
            }
        }
    }

    #[test]
    fn budget_ages_out_and_never_goes_negative() {
        let b = RetryBudget::builder()
            .ratio(0.5)
            .min_retries_per_sec(0.0)
            .window(Duration::from_secs(1))
            .buckets(10)
            .build()
            .unwrap();
        assert!(!b.try_retry(0), "no calls, no reserve");
        for _ in 0..4 {
            b.record_call(0);
        }
        assert_eq!(b.balance(0), 2);
        assert!(b.try_retry(500 * MS));
        assert!(b.try_retry(500 * MS));
        assert!(!b.try_retry(500 * MS), "2 = 0.5 x 4 used up");
        assert_eq!(b.balance(500 * MS), 0);
        // The calls age out at 1 s, the retries are still in the window:
        // balance is zero, not negative, and nothing is granted.
        assert_eq!(
            b.counts(MS * 1_000),
            BudgetCounts {
                calls: 0,
                retries: 2
            }
        );
        assert_eq!(b.balance(MS * 1_000), 0);
        assert!(!b.try_retry(MS * 1_000));
        // Everything ages out.
        assert_eq!(b.counts(MS * 1_600), BudgetCounts::default());
    }

    #[test]
    fn reserve_allows_retries_without_calls() {
        let b = RetryBudget::builder()
            .ratio(0.0)
            .min_retries_per_sec(3.0)
            .window(Duration::from_secs(2))
            .buckets(4)
            .build()
            .unwrap();
        let granted = (0..10).filter(|_| b.try_retry(MS)).count();
        assert_eq!(granted, 6, "3 a second over a 2 s window");
    }

    /// Real threads on one bucket: retries never exceed ratio x calls +
    /// reserve, whatever the interleaving (the CAS serialises them).
    #[test]
    fn concurrent_budget_is_never_exceeded() {
        let b = Arc::new(
            RetryBudget::builder()
                .ratio(0.1)
                .min_retries_per_sec(1.0)
                .window(Duration::from_secs(10))
                .buckets(10)
                .build()
                .unwrap(),
        );
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    let mut granted = 0u64;
                    for i in 0..20_000u64 {
                        if i % 3 == 0 {
                            b.record_call(5 * MS);
                        } else {
                            granted += u64::from(b.try_retry(5 * MS));
                        }
                    }
                    granted
                })
            })
            .collect();
        let granted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let c = b.counts(5 * MS);
        assert_eq!(c.retries, granted);
        assert_eq!(c.calls, 4 * 6_667);
        assert!(
            granted as f64 <= 0.1 * c.calls as f64 + 10.0,
            "{granted} of {c:?}"
        );
        // And the budget was actually used up, not just never touched.
        assert!(
            granted as f64 >= 0.1 * c.calls as f64 + 10.0 - 1.0,
            "{granted} of {c:?}"
        );
    }

    #[derive(Debug, PartialEq)]
    struct Boom(u32);

    #[test]
    fn retries_until_success_sleeping_on_the_manual_clock() {
        let policy = RetryPolicy::builder()
            .exponential(ms(10), 2.0)
            .jitter(Jitter::None)
            .max_attempts(5)
            .build()
            .unwrap();
        let clock = ManualClock::new(0);
        let mut r = Retrier::new(&policy, &clock, &clock).seed(1);
        let out = r.run(
            |_: &Boom| RetryDecision::retry(),
            |a| if a < 4 { Err(Boom(a)) } else { Ok(a) },
        );
        assert_eq!(out.unwrap(), 4);
        assert_eq!(r.attempts(), 4);
        assert_eq!(clock.now(), (10 + 20 + 40) * MS);
    }

    #[test]
    fn stops_after_max_attempts_or_when_not_retryable() {
        let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
        let clock = ManualClock::new(0);
        let mut slept = Vec::new();
        let mut r = Retrier::new(&policy, &clock, |d: Duration| slept.push(d)).seed(9);
        let e = r
            .run(|_: &Boom| true.into(), |a| Err::<(), _>(Boom(a)))
            .unwrap_err();
        assert!(
            matches!(
                e,
                RetryError::Failed {
                    error: Boom(3),
                    attempts: 3,
                    reason: StopReason::AttemptsExhausted
                }
            ),
            "{e:?}"
        );
        let e = r
            .run(|b: &Boom| (b.0 != 1).into(), |a| Err::<(), _>(Boom(a)))
            .unwrap_err();
        assert!(
            matches!(
                e,
                RetryError::Failed {
                    error: Boom(1),
                    attempts: 1,
                    reason: StopReason::NotRetryable
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            slept.len(),
            2,
            "two sleeps in the first run, none in the second"
        );
        let again: Vec<_> = policy.delays(SplitMix64::new(9)).collect();
        assert_eq!(slept, again, "the run used the policy's seeded delays");
    }

    #[test]
    fn the_budget_stops_retries() {
        let policy = RetryPolicy::builder()
            .max_attempts(10)
            .no_backoff()
            .build()
            .unwrap();
        let budget = RetryBudget::builder()
            .ratio(0.0)
            .min_retries_per_sec(0.2)
            .build()
            .unwrap();
        let clock = ManualClock::new(0);
        let mut r = Retrier::new(&policy, &clock, &clock).budget(&budget);
        let e = r
            .run(|_: &Boom| true.into(), |a| Err::<(), _>(Boom(a)))
            .unwrap_err();
        // Reserve: 0.2/s x 10 s = 2 retries.
        assert!(
            matches!(
                e,
                RetryError::Failed {
                    attempts: 3,
                    reason: StopReason::BudgetExhausted,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            budget.counts(0),
            BudgetCounts {
                calls: 1,
                retries: 2
            }
        );
    }

    fn breaker(clock: &Arc<ManualClock>, trip_after: u32) -> Breaker {
        let config = Config::builder()
            .consecutive_failures(Some(trip_after))
            .build()
            .unwrap();
        Breaker::with_clock(config, Arc::clone(clock) as Arc<dyn Clock>)
    }

    #[test]
    fn a_rejected_call_is_never_retried() {
        let clock = Arc::new(ManualClock::new(0));
        let b = breaker(&clock, 5);
        b.force(Override::ForcedOpen, None);
        let policy = RetryPolicy::builder().max_attempts(5).build().unwrap();
        let mut calls = 0;
        let mut r = Retrier::new(&policy, &*clock, &*clock).breaker(&b);
        let e = r
            .run(
                |_: &Boom| RetryDecision::retry(),
                |_| {
                    calls += 1;
                    Err::<(), _>(Boom(0))
                },
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                RetryError::Rejected {
                    attempts: 0,
                    last_error: None,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(calls, 0);
        assert_eq!(clock.now(), 0, "no sleep");
    }

    #[test]
    fn stops_when_the_breaker_opens_mid_run() {
        let clock = Arc::new(ManualClock::new(0));
        let b = breaker(&clock, 2);
        let policy = RetryPolicy::builder().max_attempts(5).build().unwrap();
        let budget = RetryBudget::builder().build().unwrap();
        let mut calls = 0;
        let e = Retrier::new(&policy, &*clock, &*clock)
            .breaker(&b)
            .budget(&budget)
            .run(
                |_: &Boom| RetryDecision::retry(),
                |a| {
                    calls += 1;
                    clock.advance(ms(3));
                    Err::<(), _>(Boom(a))
                },
            )
            .unwrap_err();
        match e {
            RetryError::Rejected {
                rejected,
                attempts,
                last_error,
            } => {
                assert_eq!(rejected.reason, RejectReason::Open);
                assert_eq!((attempts, last_error), (2, Some(Boom(2))));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(calls, 2);
        assert_eq!(b.metrics().outcome(Outcome::Failure), 2);
    }

    #[test]
    fn a_rejection_inside_the_error_is_never_retried() {
        let clock = ManualClock::new(0);
        let policy = RetryPolicy::builder().max_attempts(5).build().unwrap();
        let rejected = Rejected {
            reason: RejectReason::Open,
            retry_after: None,
        };
        let mut r = Retrier::new(&policy, &clock, &clock);
        let e = r
            .run(
                |_: &Rejected| RetryDecision::retry(),
                |_| Err::<(), _>(rejected),
            )
            .unwrap_err();
        assert!(matches!(
            e,
            RetryError::Failed {
                attempts: 1,
                reason: StopReason::NotRetryable,
                ..
            }
        ));
        let boxed = |_| Err::<(), Box<dyn Error + Send + Sync>>(Box::new(rejected));
        let e = r.run(|_| RetryDecision::retry(), boxed).unwrap_err();
        assert_eq!(e.attempts(), 1);
        let io = |_| Err::<(), _>(std::io::Error::other(rejected));
        assert_eq!(
            r.run(|_| RetryDecision::retry(), io)
                .unwrap_err()
                .attempts(),
            1
        );
        assert!(!is_rejected(&Boom(1)));
        assert!(!is_rejected(&std::io::Error::other("plain")));
        assert_eq!(clock.now(), 0);
    }
}
