//! Reconnect and per-breaker write delays: the core's retry policy
//! (exponential from `backoff_min`, doubling, capped at `backoff_max`, full
//! jitter) drawn from the core's generator, so the core and the sync share
//! one jittered backoff and one random-number generator.

use std::time::Duration;

use circuit_core::config::ConfigError;
use circuit_core::retry::{Jitter, RetryPolicy, SplitMix64, MAX_ATTEMPTS};

/// The policy of `backoff_min` and `backoff_max`; `SyncConfig::validate`
/// refuses a pair it refuses, naming the field.
pub(crate) fn policy(min: Duration, max: Duration) -> Result<RetryPolicy, ConfigError> {
    RetryPolicy::builder()
        .exponential(min, 2.0)
        .jitter(Jitter::Full)
        .max_delay(max)
        .max_attempts(MAX_ATTEMPTS)
        .build()
}

/// The pause after `failures` failures in a row (0 after the first):
/// uniform in `[0, min(max, min * 2^failures)]`. Sync retries for as long as
/// it runs, so past the policy's last attempt the ceiling stays where the
/// cap put it long before.
pub(crate) fn delay_after(policy: &RetryPolicy, failures: u32, rng: &mut SplitMix64) -> Duration {
    let attempt = failures.saturating_add(1).min(MAX_ATTEMPTS - 1);
    policy
        .delay(attempt, Duration::ZERO, rng)
        .unwrap_or(policy.max_delay())
}

/// A reconnect loop's backoff: [`delay_after`] over its own failure count.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    failures: u32,
    rng: SplitMix64,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            // A validated config never takes the default (see `policy`).
            policy: policy(min, max).unwrap_or_default(),
            failures: 0,
            rng: SplitMix64::from_entropy(),
        }
    }

    /// The policy the delays follow (per-breaker back-off uses it too).
    pub(crate) fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The next delay: uniform in `[0, min(max, min * 2^failures)]`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = delay_after(&self.policy, self.failures, &mut self.rng);
        self.failures = self.failures.saturating_add(1);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{delay_after, policy, Backoff};
    use circuit_core::retry::SplitMix64;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut longest = Duration::ZERO;
        for i in 0..2000u32 {
            let d = b.next_delay();
            let ceiling =
                Duration::from_millis(100 * (1u64 << i.min(16))).min(Duration::from_secs(5));
            assert!(d <= ceiling, "{d:?} > {ceiling:?} after {i} failures");
            longest = longest.max(d);
        }
        // Full jitter under a 5 s cap reached after 6 failures: some draw
        // lands in the top half.
        assert!(longest > Duration::from_millis(2500), "{longest:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn delays_are_the_core_policys_draws() {
        let p = policy(Duration::from_millis(10), Duration::from_secs(1)).unwrap();
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        for failures in 0..12 {
            let ours = delay_after(&p, failures, &mut a);
            let core = p.delay(failures + 1, Duration::ZERO, &mut b).unwrap();
            assert_eq!(ours, core, "after {failures} failures");
        }
    }

    #[test]
    fn a_bad_pair_is_refused_by_the_policy_builder() {
        assert!(policy(Duration::ZERO, Duration::from_secs(1)).is_err());
        assert!(policy(Duration::from_secs(2), Duration::from_secs(1)).is_err());
        assert!(policy(Duration::from_secs(1), Duration::from_secs(30 * 24 * 3600)).is_err());
    }
}
