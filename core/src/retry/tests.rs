//! Tests of the retry policy, budget and attempt loop.

use super::*;
use crate::call::{Outcome, Rejected};
use crate::clock::{duration_to_nanos, Clock, ManualClock};
use crate::config::MAX_DURATION;
use crate::Breaker;
use crate::{Config, Override, RejectReason};
use proptest::prelude::*;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

const MS: u64 = 1_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A budget granting `ratio` x calls plus `min_per_sec` a second over
/// `window` in `buckets` buckets.
fn budget(ratio: f64, min_per_sec: f64, window: Duration, buckets: u32) -> RetryBudget {
    RetryBudget::builder()
        .ratio(ratio)
        .min_retries_per_sec(min_per_sec)
        .window(window)
        .buckets(buckets)
        .build()
        .unwrap()
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
    // 10 bucket words and their 10 rolled-at indexes.
    assert_eq!(
        b.memory_bytes(),
        core::mem::size_of::<RetryBudget>() + 2 * 10 * 8
    );
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

/// Bucket epochs are 24 bits: after an idle gap of a whole number of epoch
/// cycles a bucket's epoch matches again. Its rolled-at index tells it is
/// old, so neither its calls nor its retries come back.
#[test]
fn an_idle_budget_never_brings_old_counts_back() {
    let b = budget(0.5, 0.0, Duration::from_millis(10), 10);
    let clock = ManualClock::new(3 * MS + MS / 2);
    for _ in 0..8 {
        b.record_call(clock.now());
    }
    assert!(b.try_retry(clock.now()));
    assert_eq!(
        b.counts(clock.now()),
        BudgetCounts {
            calls: 8,
            retries: 1
        }
    );
    // Idle for 2^16, 2^24 and 3 x 2^24 bucket widths (1 ms each) since
    // then: the slot and, at multiples of 2^24, the epoch of the old bucket
    // come round again.
    let start = clock.now();
    for idle in [1u64 << 16, 1 << 24, 3 << 24] {
        clock.set(start + idle * MS);
        let now = clock.now();
        assert_eq!(b.counts(now), BudgetCounts::default(), "after {idle} ms");
        assert_eq!(b.balance(now), 0);
        assert!(!b.try_retry(now), "no call in the window pays for a retry");
        b.record_call(now);
        assert_eq!(
            b.counts(now),
            BudgetCounts {
                calls: 1,
                retries: 0
            }
        );
    }
}

#[test]
fn budget_ages_out_and_never_goes_negative() {
    let b = budget(0.5, 0.0, Duration::from_secs(1), 10);
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
    let b = budget(0.0, 3.0, Duration::from_secs(2), 4);
    let granted = (0..10).filter(|_| b.try_retry(MS)).count();
    assert_eq!(granted, 6, "3 a second over a 2 s window");
}

/// Real threads on one bucket: retries never exceed ratio x calls +
/// reserve, whatever the interleaving (the CAS serialises them).
#[test]
fn concurrent_budget_is_never_exceeded() {
    let b = Arc::new(budget(0.1, 1.0, Duration::from_secs(10), 10));
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

/// The decision is made once, in `RetryPolicy::decide`: a rejection, a
/// permanent error or a success stops without drawing jitter or touching
/// the budget, even when attempts and budget would allow a retry.
#[test]
fn the_decision_never_retries_a_rejected_attempt() {
    let p = RetryPolicy::builder().max_attempts(5).build().unwrap();
    let b = RetryBudget::builder().build().unwrap();
    let clock = ManualClock::new(0);
    b.record_call(0);
    let before = b.counts(0);
    for (outcome, stop) in [
        (AttemptOutcome::Rejected, Stop::Rejected),
        (AttemptOutcome::NotRetryable, Stop::NotRetryable),
        (AttemptOutcome::Success, Stop::Success),
    ] {
        let mut rng = SplitMix64::new(9);
        let next = p.decide(1, outcome, Duration::ZERO, &mut rng, Some((&b, &clock)));
        assert_eq!(next, Next::Stop(stop));
        assert_eq!(rng.next_u64(), SplitMix64::new(9).next_u64(), "no draw");
        assert_eq!(b.counts(0), before, "no withdrawal");
    }
    let mut rng = SplitMix64::new(9);
    let next = p.decide(
        1,
        AttemptOutcome::Retryable,
        Duration::ZERO,
        &mut rng,
        Some((&b, &clock)),
    );
    assert!(matches!(next, Next::Retry(_)));
    assert_eq!(b.counts(0).retries, 1);
    assert_eq!(
        p.decide(5, AttemptOutcome::Retryable, Duration::ZERO, &mut rng, None),
        Next::Stop(Stop::AttemptsExhausted)
    );
}

/// The seeded decision draws the keyed jitter of (seed, attempt): the same
/// seed gives the same delays in every host, whatever came before.
#[test]
fn seeded_decisions_are_the_keyed_draws() {
    let p = RetryPolicy::builder().max_attempts(8).build().unwrap();
    let mut prev = Duration::ZERO;
    for attempt in 1..8 {
        let want = p
            .delay(attempt, prev, &mut SplitMix64::keyed(42, attempt))
            .unwrap();
        let got = p.decide_seeded(attempt, AttemptOutcome::Retryable, prev, 42, None);
        assert_eq!(got, Next::Retry(want));
        let other = p.decide_seeded(attempt, AttemptOutcome::Retryable, prev, 43, None);
        assert_ne!(other, got, "another seed draws apart");
        prev = want;
    }
}
