//! The attempt loop: [`Retrier`] runs an operation under a policy, a
//! budget and a breaker, sleeping through a [`Sleeper`].

use super::{
    is_rejected, AttemptOutcome, Next, RetryBudget, RetryError, RetryPolicy, SplitMix64, Stop,
    StopReason,
};
use crate::call::Outcome;
use crate::clock::{Clock, ManualClock};
use crate::Breaker;
use core::fmt;
use std::time::Duration;

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
            let (decision, outcome) = if is_rejected(&error) {
                (
                    RetryDecision::Stop(Outcome::Ignored),
                    AttemptOutcome::Rejected,
                )
            } else {
                let d = classify(&error);
                let o = if d.is_retry() {
                    AttemptOutcome::Retryable
                } else {
                    AttemptOutcome::NotRetryable
                };
                (d, o)
            };
            if let (Some(b), Some(p)) = (self.breaker, permit) {
                b.record(p, decision.outcome(), elapsed);
            }
            let budget = self.budget.map(|b| (b, self.clock));
            let reason = match self
                .policy
                .decide(attempt, outcome, prev, &mut self.rng, budget)
            {
                Next::Retry(delay) => Ok(delay),
                Next::Stop(Stop::AttemptsExhausted) => Err(StopReason::AttemptsExhausted),
                Next::Stop(Stop::BudgetExhausted) => Err(StopReason::BudgetExhausted),
                Next::Stop(Stop::Success | Stop::Rejected | Stop::NotRetryable) => {
                    Err(StopReason::NotRetryable)
                }
            };
            let delay = match reason {
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
