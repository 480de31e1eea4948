//! The retry decision, written once: after an attempt, stop (and why) or
//! retry after a delay. [`Retrier::run`](super::Retrier::run) drives it in
//! Rust; the C ABI (`circuit_retry_decide`, `circuit_retry_next`) drives it
//! for hosts that sleep in their own runtime (Python, Go), so they keep only
//! the sleeping and the calling.

use super::{RetryBudget, RetryPolicy, SplitMix64};
use crate::clock::Clock;
use std::time::Duration;

/// What became of one attempt, as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// It succeeded: nothing to retry.
    Success,
    /// It failed with an error the caller classified as transient.
    Retryable,
    /// It failed with an error the caller classified as permanent.
    NotRetryable,
    /// The breaker refused it. Never retried, whatever the classification.
    Rejected,
}

/// Why no retry follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The attempt succeeded.
    Success,
    /// The breaker refused the attempt.
    Rejected,
    /// The error is not retryable.
    NotRetryable,
    /// `max_attempts` attempts were made.
    AttemptsExhausted,
    /// The retry budget refused the retry.
    BudgetExhausted,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Sleep this long, then make the next attempt.
    Retry(Duration),
    /// Stop.
    Stop(Stop),
}

impl RetryPolicy {
    /// The decision after attempt number `attempt` (1 after the first)
    /// ended with `outcome`: a success, a rejection or a permanent error
    /// stops at once, without touching the budget or the generator; a
    /// retryable error stops once `attempt` reaches `max_attempts`, else
    /// draws the delay ([`delay`](Self::delay), from `prev` and `rng`),
    /// then withdraws a retry from `budget` (at its clock's `now`), which
    /// may refuse it.
    pub fn decide(
        &self,
        attempt: u32,
        outcome: AttemptOutcome,
        prev: Duration,
        rng: &mut SplitMix64,
        budget: Option<(&RetryBudget, &dyn Clock)>,
    ) -> Next {
        match outcome {
            AttemptOutcome::Success => return Next::Stop(Stop::Success),
            AttemptOutcome::Rejected => return Next::Stop(Stop::Rejected),
            AttemptOutcome::NotRetryable => return Next::Stop(Stop::NotRetryable),
            AttemptOutcome::Retryable => {}
        }
        let Some(delay) = self.delay(attempt, prev, rng) else {
            return Next::Stop(Stop::AttemptsExhausted);
        };
        match budget {
            Some((b, clock)) if !b.try_retry(clock.now()) => Next::Stop(Stop::BudgetExhausted),
            _ => Next::Retry(delay),
        }
    }

    /// [`decide`](Self::decide) with the jitter draw of attempt `attempt`
    /// in the sequence `seed` ([`SplitMix64::keyed`]): stateless, so a
    /// host that keeps only `(attempt, prev, seed)` between attempts gets
    /// the same delays as any other host with the same seed.
    pub fn decide_seeded(
        &self,
        attempt: u32,
        outcome: AttemptOutcome,
        prev: Duration,
        seed: u64,
        budget: Option<(&RetryBudget, &dyn Clock)>,
    ) -> Next {
        let mut rng = SplitMix64::keyed(seed, attempt);
        self.decide(attempt, outcome, prev, &mut rng, budget)
    }
}
