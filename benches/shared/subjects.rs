//! The breakers measured, built the same way for the criterion benchmarks
//! (`benches/breakers.rs`) and the instruction counts
//! (`examples/instructions.rs`): circuit under each policy and each peer,
//! closed or opened, and one protected call on each.

#![allow(dead_code)] // each includer uses its own subset

use std::future::{poll_fn, Ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use std::sync::Arc;

use circuit_core::{Breaker, Config, ManualClock, Outcome, RampPolicy, Recorded, State};
use tower::Service;

/// Duration reported for every call: well under the slow-call threshold.
pub(crate) const CALL: Duration = Duration::from_micros(250);
/// Open duration for the rejection benchmarks: far longer than any run.
pub(crate) const LONG_OPEN: Duration = Duration::from_secs(24 * 3600);
/// Thread counts of the `*_threads` groups.
pub(crate) const THREADS: [usize; 2] = [1, 2];

/// A word on a cache line of its own, as the breaker keeps its hot words.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

// ----- circuit ---------------------------------------------------------------

/// (a) consecutive-failure policy only (5 failures trip).
pub(crate) fn consecutive(metrics: bool) -> Config {
    Config::builder()
        .consecutive_failures(Some(5))
        .metrics(metrics)
        .build()
        .expect("valid config")
}

/// (b) 100-slot count window, failure-rate and slow-call trips.
pub(crate) fn count_window(metrics: bool) -> Config {
    Config::builder()
        .consecutive_failures(None)
        .failure_rate(Some(0.5))
        .slow_call(Some((0.5, Duration::from_secs(1))))
        .count_window(100)
        .minimum_calls(10)
        .metrics(metrics)
        .build()
        .expect("valid config")
}

/// (a) with a ramp-up configured, tripped, recovered through a probe and
/// past the ramp's end (on a manual clock, which the closed path never
/// reads): the fast path a ramp must give back.
pub(crate) fn recovered_after_ramp() -> Breaker {
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let config = Config::builder()
        .consecutive_failures(Some(5))
        .jitter(0.0)
        .open_duration(Duration::from_millis(1))
        .ramp(Some(RampPolicy {
            start: 0.5,
            duration: Duration::from_millis(1),
            steps: 0,
        }))
        .build()
        .expect("valid config");
    let b = Breaker::with_clock(config, clock.clone());
    while b.state() == State::Closed {
        let p = b.acquire().expect("closed");
        b.record(p, Outcome::Failure, CALL);
    }
    clock.advance(Duration::from_millis(2));
    let probe = b.acquire().expect("the open deadline has passed");
    b.record(probe, Outcome::Success, CALL);
    assert!(b.ramp_fraction().is_some());
    clock.advance(Duration::from_millis(2));
    b.acquire().expect("the ramp is over");
    b
}

/// (c) time-bucket window (10 s in 10 buckets), failure-rate trip.
pub(crate) fn time_window() -> Config {
    Config::builder()
        .consecutive_failures(None)
        .failure_rate(Some(0.5))
        .time_window(Duration::from_secs(10), 10)
        .minimum_calls(10)
        .build()
        .expect("valid config")
}

#[inline]
pub(crate) fn circuit_call(b: &Breaker) -> Recorded {
    match b.acquire() {
        Ok(permit) => b.record(permit, Outcome::Success, black_box(CALL)),
        Err(rejected) => panic!("a closed breaker refused a call: {rejected}"),
    }
}

/// A breaker opened by failures, staying open for the whole run.
pub(crate) fn circuit_open(metrics: bool) -> Breaker {
    let config = Config::builder()
        .consecutive_failures(Some(5))
        .open_duration(LONG_OPEN)
        .max_open_duration(LONG_OPEN)
        .jitter(0.0)
        .metrics(metrics)
        .build()
        .expect("valid config");
    let b = Breaker::new(config);
    for _ in 0..5 {
        let permit = b.acquire().expect("closed");
        b.record(permit, Outcome::Failure, CALL);
    }
    assert_eq!(b.state(), State::Open);
    b
}

pub(crate) fn assert_closed(b: &Breaker) {
    assert_eq!(
        b.state(),
        State::Closed,
        "the benchmark tripped its breaker"
    );
}

// ----- failsafe ----------------------------------------------------------------

pub(crate) type FailsafeConsecutive = failsafe::StateMachine<
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
    (),
>;
pub(crate) type FailsafeRate = failsafe::StateMachine<
    failsafe::failure_policy::SuccessRateOverTimeWindow<failsafe::backoff::Constant>,
    (),
>;

pub(crate) fn failsafe_consecutive() -> FailsafeConsecutive {
    let policy =
        failsafe::failure_policy::consecutive_failures(5, failsafe::backoff::constant(LONG_OPEN));
    failsafe::Config::new().failure_policy(policy).build()
}

/// Success rate >= 0.5 required over `window`, at least 10 calls.
pub(crate) fn failsafe_rate(window: Duration) -> FailsafeRate {
    let policy = failsafe::failure_policy::success_rate_over_time_window(
        0.5,
        10,
        window,
        failsafe::backoff::constant(LONG_OPEN),
    );
    failsafe::Config::new().failure_policy(policy).build()
}

#[inline]
pub(crate) fn failsafe_call(cb: &impl failsafe::CircuitBreaker) -> Result<(), failsafe::Error<()>> {
    cb.call(|| Ok::<(), ()>(()))
}

/// Feeds failures until the breaker refuses; `pause` between them lets a
/// time-window policy reach its window length.
pub(crate) fn failsafe_open<B: failsafe::CircuitBreaker>(cb: B, pause: Duration) -> B {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cb.is_call_permitted() {
        let _ = cb.call(|| Err::<(), ()>(()));
        assert!(Instant::now() < deadline, "failsafe breaker never opened");
        std::thread::sleep(pause);
    }
    cb
}

// ----- recloser --------------------------------------------------------------

pub(crate) fn recloser() -> recloser::Recloser {
    recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(100)
        .open_wait(LONG_OPEN)
        .build()
}

#[inline]
pub(crate) fn recloser_call(r: &recloser::Recloser) -> Result<(), recloser::Error<()>> {
    r.call(|| Ok::<(), ()>(()))
}

pub(crate) fn recloser_open() -> recloser::Recloser {
    let r = recloser();
    for _ in 0..1000 {
        if let Err(recloser::Error::Rejected) = r.call(|| Err::<(), ()>(())) {
            return r;
        }
    }
    panic!("recloser never opened");
}

// ----- tower-resilience --------------------------------------------------------

pub(crate) type Inner = tower::util::ServiceFn<fn(bool) -> Ready<Result<(), ()>>>;
pub(crate) type TowerBreaker = tower_resilience_circuitbreaker::CircuitBreaker<
    Inner,
    tower_resilience_circuitbreaker::DefaultClassifier,
>;

/// The dependency: fails when asked to.
pub(crate) fn dependency(fail: bool) -> Ready<Result<(), ()>> {
    std::future::ready(if fail { Err(()) } else { Ok(()) })
}

pub(crate) fn tower_breaker() -> TowerBreaker {
    let layer = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .minimum_number_of_calls(10)
        .wait_duration_in_open(LONG_OPEN)
        .build()
        .expect("valid config");
    let f: fn(bool) -> Ready<Result<(), ()>> = dependency;
    layer.layer_fn(tower::service_fn(f))
}

/// One call through the service: readiness, then the call, on the calling
/// thread.
#[inline]
pub(crate) fn tower_call(
    svc: &mut TowerBreaker,
    fail: bool,
) -> Result<(), tower_resilience_circuitbreaker::CircuitBreakerError<()>> {
    futures::executor::block_on(async {
        poll_fn(|cx| svc.poll_ready(cx)).await?;
        svc.call(fail).await
    })
}

pub(crate) fn tower_open() -> TowerBreaker {
    let mut svc = tower_breaker();
    for _ in 0..1000 {
        let _ = tower_call(&mut svc, true);
        if svc.is_open() {
            return svc;
        }
    }
    panic!("tower-resilience breaker never opened");
}
