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
//!   optional breaker, on an injected [`Clock`](crate::Clock) and [`Sleeper`], so tests run
//!   on a [`ManualClock`](crate::ManualClock) without real sleeps.
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
//! Concurrency: the buckets are a bucketed ring (`ring.rs`, shared with
//! the breaker's time window): each bucket is one `AtomicU64` (`epoch:24 |
//! calls:20 | retries:20`), bucket index `now / w` in slot `index mod n`,
//! with a rolled-at word holding the full index of its last roll; a writer
//! that finds another epoch in its slot, or a rolled-at index `n` or more
//! away, replaces it with a fresh bucket (the roll), and a sum counts
//! buckets whose epoch and rolled-at index are within `n` of its own. A call
//! is one CAS loop on its bucket; a retry is one CAS on its bucket that
//! re-checks R1 with the other buckets read just before. Retries landing in the same bucket are
//! serialised by the CAS, so R1 is exact for them; threads whose clock
//! readings fall in different buckets can each miss the other's in-flight
//! retry, so the bound can be exceeded by at most one retry per such
//! concurrently deciding thread. Counters are statistics guarding no other
//! memory: `Relaxed` throughout (core invariant 6). A bucket counts up to
//! 2^20 - 1 calls and as many retries; a full calls field stops counting
//! (fewer retries allowed, never more), a full retries field refuses retries.
//! Epochs are 24 bits and repeat every 2^24 bucket widths; the rolled-at
//! index keeps a bucket idle that long (or any multiple) from being read as
//! live. A writer that finds a bucket rolled by another in the instant
//! before its rolled-at index is written rolls it again: that bucket's
//! first count can be lost (a lost call allows fewer retries; a lost retry
//! is one more of the per-thread excess above).

mod budget;
mod decide;
mod error;
mod policy;
mod run;
#[cfg(all(test, not(circuit_loom)))]
mod tests;

pub use crate::rng::SplitMix64;
pub use budget::{BudgetCounts, RetryBudget, RetryBudgetBuilder};
pub use decide::{AttemptOutcome, Next, Stop};
pub use error::{is_rejected, RetryError, StopReason};
pub use policy::{Backoff, Delays, Jitter, RetryPolicy, RetryPolicyBuilder};
pub use run::{Retrier, RetryDecision, Sleeper, ThreadSleeper};

use crate::config::ConfigError;

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
