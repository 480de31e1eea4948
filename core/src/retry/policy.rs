//! Backoff and jitter: [`RetryPolicy`], the delay before each retry.

use super::{err, SplitMix64, MAX_ATTEMPTS};
use crate::clock::duration_to_nanos;
use crate::config::{ConfigError, MAX_DURATION};
use std::time::Duration;

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
    pub(super) fn jittered(&self, retry: u32, prev_delay: Duration, u: f64) -> u64 {
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
