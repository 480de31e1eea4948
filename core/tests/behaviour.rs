//! Scenario tests, one or more per numbered behaviour of DESIGN.md section 4
//! (B1-B6, B12), on a manual clock. Test names start with the behaviour
//! they check.

mod common;

use std::sync::Arc;
use std::time::Duration;

use circuit_core::config::{MAX_BUCKETS, MAX_COUNT_WINDOW, MAX_DURATION, MAX_PROBES};
use circuit_core::{
    Breaker, Clock, Config, ConfigBuilder, Listener, ManualClock, Outcome, Override, Permit,
    Reason, Recorded, RejectReason, State,
};
use common::{manual, ms, quiet, EventLog, MS};
use Outcome::{Failure, Ignored, Success, Timeout};

/// Clock start: one second, so deadlines are far from zero.
const START: u64 = 1_000 * MS;

/// Acquires (which must succeed) and records `outcome` lasting 1 ms.
fn call(b: &Breaker, outcome: Outcome) -> Recorded {
    call_for(b, outcome, ms(1))
}

fn call_for(b: &Breaker, outcome: Outcome, d: Duration) -> Recorded {
    let p = b.acquire().expect("admitted");
    b.record(p, outcome, d)
}

fn reasons(log: &EventLog) -> Vec<Reason> {
    log.take().iter().map(|t| t.reason).collect()
}

fn open_for(log: &EventLog) -> Vec<Duration> {
    log.take()
        .iter()
        .filter(|t| t.to == State::Open)
        .map(|t| Duration::from_nanos(t.open_for))
        .collect()
}

/// Trips a breaker whose policy is one consecutive failure.
fn trip(b: &Breaker) {
    assert_eq!(call(b, Failure), Recorded::Transitioned(State::Open));
}

// ----- B1: states and overrides ------------------------------------------------

#[test]
fn b1_a_new_breaker_is_closed_and_admits_without_probing() {
    let (b, _, log) = manual(Config::default(), START);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.generation(), 0);
    let p = b.acquire().unwrap();
    assert!(!p.is_probe());
    assert_eq!(p.generation(), 0);
    assert_eq!(b.record(p, Success, ms(1)), Recorded::Counted);
    assert!(log.take().is_empty());
}

#[test]
fn b1_forced_open_with_expiry_rejects_then_returns_to_a_fresh_closed() {
    let (b, clock, log) = manual(
        quiet().consecutive_failures(Some(3)).build().unwrap(),
        START,
    );
    call(&b, Failure);
    call(&b, Failure);
    assert_eq!(b.force(Override::ForcedOpen, Some(ms(10))), State::Closed);
    assert_eq!(b.state(), State::ForcedOpen);
    let r = b.acquire().unwrap_err();
    assert_eq!(r.reason, RejectReason::ForcedOpen);
    assert_eq!(r.retry_after, Some(ms(10)));
    clock.advance(ms(9));
    assert_eq!(b.acquire().unwrap_err().retry_after, Some(ms(1)));
    clock.advance(ms(1));
    assert_eq!(b.state(), State::Closed);
    // A fresh CLOSED: the two failures before the override are forgotten.
    assert_eq!(call(&b, Failure), Recorded::Counted);
    assert_eq!(call(&b, Failure), Recorded::Counted);
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
    assert_eq!(
        reasons(&log),
        [
            Reason::OverrideSet,
            Reason::OverrideExpired,
            Reason::ConsecutiveFailures
        ]
    );
    assert_eq!(b.metrics().rejected[RejectReason::ForcedOpen as usize], 2);
}

#[test]
fn b1_forced_open_without_expiry_holds_until_cleared() {
    let (b, clock, log) = manual(quiet().build().unwrap(), START);
    b.force(Override::ForcedOpen, None);
    assert_eq!(b.acquire().unwrap_err().retry_after, None);
    clock.advance(MAX_DURATION * 2);
    assert_eq!(b.state(), State::ForcedOpen);
    assert!(b.clear_override());
    assert_eq!(b.state(), State::Closed);
    assert!(!b.clear_override(), "no override left to clear");
    assert!(b.acquire().is_ok());
    assert_eq!(
        reasons(&log),
        [Reason::OverrideSet, Reason::OverrideCleared]
    );
}

#[test]
fn b1_forced_closed_admits_and_counts_but_never_trips() {
    let (b, clock, _) = manual(
        quiet().consecutive_failures(Some(1)).build().unwrap(),
        START,
    );
    b.force(Override::ForcedClosed, Some(ms(50)));
    for _ in 0..20 {
        assert_eq!(call(&b, Failure), Recorded::Counted);
    }
    assert_eq!(b.state(), State::ForcedClosed);
    assert_eq!(b.metrics().outcome(Failure), 20);
    let held = b.acquire().unwrap();
    clock.advance(ms(50));
    assert_eq!(b.state(), State::Closed);
    // A permit of the override's generation is stale once it has expired.
    assert_eq!(b.record(held, Failure, ms(1)), Recorded::Stale);
    trip(&b);
}

#[test]
fn b1_disabled_admits_and_records_nothing() {
    let (b, clock, _) = manual(
        quiet().consecutive_failures(Some(1)).build().unwrap(),
        START,
    );
    b.force(Override::Disabled, Some(ms(5)));
    for o in [Success, Failure, Timeout, Ignored] {
        assert_eq!(call(&b, o), Recorded::NotRecorded);
    }
    let m = b.metrics();
    assert_eq!(m.outcomes, [0; 4]);
    assert_eq!(m.stale, 0);
    clock.advance(ms(4));
    assert_eq!(b.state(), State::Disabled);
    clock.advance(ms(1));
    assert_eq!(b.state(), State::Closed);
    // Recording again, and the policies are back.
    trip(&b);
    assert_eq!(b.metrics().outcome(Failure), 1);
}

#[test]
fn b1_metrics_only_shadow_trips_keep_admitting_and_keep_the_expiry() {
    let (b, clock, log) = manual(
        quiet().consecutive_failures(Some(2)).build().unwrap(),
        START,
    );
    b.force(Override::MetricsOnly, Some(ms(30)));
    assert_eq!(call(&b, Failure), Recorded::Counted);
    let p = b.acquire().unwrap();
    assert_eq!(
        b.record_with_retry_after(p, Failure, ms(1), ms(1)),
        Recorded::Transitioned(State::MetricsOnly)
    );
    // The dry run starts afresh: one more failure does not shadow-trip.
    assert_eq!(call(&b, Failure), Recorded::Counted);
    assert!(b.acquire().is_ok());
    clock.advance(ms(29));
    assert_eq!(b.state(), State::MetricsOnly, "Retry-After is no expiry");
    clock.advance(ms(1));
    assert_eq!(b.state(), State::Closed, "the override's own expiry holds");
    assert_eq!(
        reasons(&log),
        [
            Reason::OverrideSet,
            Reason::ShadowTrip,
            Reason::OverrideExpired
        ]
    );
}

#[test]
fn b1_reset_returns_to_closed_with_an_empty_window_from_any_state() {
    let config = quiet()
        .consecutive_failures(Some(1))
        .failure_rate(Some(0.9))
        .count_window(10)
        .minimum_calls(10)
        .build()
        .unwrap();
    let (b, _, _) = manual(config, START);
    trip(&b);
    b.reset();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics().window_calls, 0);
    call(&b, Success);
    b.force(Override::ForcedOpen, None);
    b.reset();
    assert_eq!(b.state(), State::Closed);
    assert!(!b.clear_override());
    // Closed to closed is still a transition.
    let g = b.generation();
    call(&b, Success);
    assert_eq!(b.metrics().window_calls, 1);
    b.reset();
    assert_eq!(b.generation(), g + 1);
    assert_eq!(b.metrics().window_calls, 0);
}

// ----- B2: trip conditions -----------------------------------------------------

#[test]
fn b2_consecutive_failures_trip_at_exactly_n_and_a_success_restarts_the_count() {
    let (b, _, log) = manual(
        quiet().consecutive_failures(Some(3)).build().unwrap(),
        START,
    );
    call(&b, Failure);
    call(&b, Failure);
    call(&b, Success);
    call(&b, Failure);
    assert_eq!(call(&b, Failure), Recorded::Counted);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
    assert_eq!(reasons(&log), [Reason::ConsecutiveFailures]);
}

#[test]
fn b2_timeouts_count_as_failures() {
    let (b, _, _) = manual(
        quiet().consecutive_failures(Some(2)).build().unwrap(),
        START,
    );
    call(&b, Timeout);
    assert_eq!(call(&b, Timeout), Recorded::Transitioned(State::Open));
    assert_eq!(b.metrics().outcome(Timeout), 2);
}

#[test]
fn b2_ignored_counts_only_in_its_own_metric() {
    let config = quiet()
        .consecutive_failures(Some(2))
        .failure_rate(Some(1.0))
        .count_window(4)
        .minimum_calls(4)
        .build()
        .unwrap();
    let (b, _, _) = manual(config, START);
    call(&b, Failure);
    // Neither resets the streak nor enters the window.
    assert_eq!(call(&b, Ignored), Recorded::Counted);
    let m = b.metrics();
    assert_eq!((m.window_calls, m.outcome(Ignored)), (1, 1));
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
}

#[test]
fn b2_failure_rate_waits_for_the_minimum_calls_and_trips_at_equality() {
    let config = quiet()
        .failure_rate(Some(0.5))
        .count_window(10)
        .minimum_calls(4)
        .build()
        .unwrap();
    let (b, _, log) = manual(config, START);
    for _ in 0..3 {
        assert_eq!(call(&b, Failure), Recorded::Counted, "below the floor");
    }
    // calls = 4, rate 3/4, but a success cannot trip (invariant 6).
    assert_eq!(call(&b, Success), Recorded::Counted);
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
    assert_eq!(reasons(&log), [Reason::FailureRate]);

    // Equality: 2 of 4 at a 0.5 threshold.
    let config = quiet()
        .failure_rate(Some(0.5))
        .count_window(4)
        .minimum_calls(4)
        .build()
        .unwrap();
    let (b, _, _) = manual(config, START);
    call(&b, Success);
    call(&b, Success);
    assert_eq!(call(&b, Failure), Recorded::Counted);
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
}

#[test]
fn b2_slow_call_rate_trips_on_slow_successes_at_the_threshold_duration() {
    let config = quiet()
        .slow_call(Some((0.5, ms(100))))
        .count_window(4)
        .minimum_calls(2)
        .build()
        .unwrap();
    let (b, _, log) = manual(config, START);
    let just_fast = ms(100) - Duration::from_nanos(1);
    assert_eq!(call_for(&b, Success, just_fast), Recorded::Counted);
    assert_eq!(call_for(&b, Success, just_fast), Recorded::Counted);
    assert_eq!(b.metrics().slow, 0);
    // Exactly the threshold is slow: 1 of 3 < 0.5, then 2 of 4 = 0.5.
    assert_eq!(call_for(&b, Success, ms(100)), Recorded::Counted);
    assert_eq!(
        call_for(&b, Success, ms(100)),
        Recorded::Transitioned(State::Open)
    );
    assert_eq!(reasons(&log), [Reason::SlowCallRate]);
    assert_eq!(b.metrics().slow, 2);
}

#[test]
fn b2_ewma_trips_at_the_threshold_after_the_minimum_calls() {
    // alpha 0.5: failures give 0.5, 0.75, 0.875, ...
    for (threshold, trips_at) in [(0.5, 1), (0.75, 2), (0.875, 3), (0.8, 3)] {
        let config = quiet()
            .ewma(Some((0.5, threshold)))
            .minimum_calls(1)
            .build()
            .unwrap();
        let (b, _, log) = manual(config, START);
        for i in 1..trips_at {
            assert_eq!(call(&b, Failure), Recorded::Counted, "{threshold}: {i}");
        }
        assert_eq!(
            call(&b, Failure),
            Recorded::Transitioned(State::Open),
            "{threshold}: failure {trips_at} trips"
        );
        assert_eq!(reasons(&log), [Reason::EwmaFailureRate]);
    }
    // The minimum-calls floor: three failures (0.875) but only at call 3.
    let config = quiet()
        .ewma(Some((0.5, 0.5)))
        .minimum_calls(3)
        .build()
        .unwrap();
    let (b, _, _) = manual(config, START);
    assert_eq!(call(&b, Failure), Recorded::Counted);
    assert_eq!(call(&b, Failure), Recorded::Counted);
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
    // Successes pull the rate down: S S S F is 0.5 < 0.6, one more F 0.75.
    let config = quiet()
        .ewma(Some((0.5, 0.6)))
        .minimum_calls(1)
        .build()
        .unwrap();
    let (b, _, _) = manual(config, START);
    for o in [Success, Success, Success, Failure] {
        assert_eq!(call(&b, o), Recorded::Counted);
    }
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
}

#[test]
fn b2_a_success_cannot_trip() {
    // F F S: the window reaches its floor on a success with rate 2/3.
    let config = quiet()
        .failure_rate(Some(0.5))
        .count_window(10)
        .minimum_calls(3)
        .build()
        .unwrap();
    let (b, _, _) = manual(config, START);
    call(&b, Failure);
    call(&b, Failure);
    assert_eq!(call(&b, Success), Recorded::Counted);
    // Not even a success lasting `Duration::MAX` with no slow policy.
    assert_eq!(call_for(&b, Success, Duration::MAX), Recorded::Counted);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
}

// ----- B3: windows -------------------------------------------------------------

#[test]
fn b3_count_window_holds_the_last_n_outcomes() {
    let config = quiet()
        .failure_rate(Some(1.0))
        .count_window(4)
        .minimum_calls(4)
        .build()
        .unwrap();
    let (b, _, _) = manual(config, START);
    for o in [Failure, Success, Success, Success, Failure, Failure] {
        assert_eq!(call(&b, o), Recorded::Counted);
    }
    let m = b.metrics();
    assert_eq!((m.window_calls, m.failure_rate), (4, 0.5));
    assert_eq!(call(&b, Failure), Recorded::Counted); // S F F F
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open)); // F F F F
}

#[test]
fn b3_time_window_ages_old_outcomes_out() {
    // Ten 10 ms buckets; the clock starts mid-bucket.
    let config = quiet()
        .failure_rate(Some(0.6))
        .time_window(ms(100), 10)
        .minimum_calls(2)
        .build()
        .unwrap();
    let (b, clock, _) = manual(config, START + 5 * MS);
    call(&b, Failure);
    clock.advance(ms(90));
    let m = b.metrics();
    assert_eq!((m.window_calls, m.failure_rate), (1, 1.0), "still inside");
    clock.advance(ms(10));
    assert_eq!(b.metrics().window_calls, 0, "aged out");
    call(&b, Success);
    // With the first failure this would be 2/3 >= 0.6; without it 1/2.
    assert_eq!(call(&b, Failure), Recorded::Counted);
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
}

#[test]
fn b3_a_time_window_forgets_outcomes_however_long_it_idles() {
    // Ten 1 ms buckets. Bucket epochs are kept in 16 bits: an idle stretch
    // of exactly 2^16 bucket widths must not bring old outcomes back.
    let config = quiet()
        .failure_rate(Some(0.5))
        .time_window(ms(10), 10)
        .minimum_calls(2)
        .build()
        .unwrap();
    let (b, clock, _) = manual(config, START + MS / 2);
    call(&b, Failure);
    clock.advance(ms(1 << 16));
    assert_eq!(b.metrics().window_calls, 0, "{:?}", b.metrics());
    assert_eq!(call(&b, Failure), Recorded::Counted, "one live call");
}

#[test]
fn b3_entering_closed_starts_a_fresh_window() {
    let config = quiet()
        .failure_rate(Some(0.5))
        .count_window(10)
        .minimum_calls(2)
        .open_duration(ms(10))
        .build()
        .unwrap();
    let (b, clock, _) = manual(config, START);
    call(&b, Success);
    call(&b, Failure);
    assert_eq!(b.state(), State::Open);
    clock.advance(ms(10));
    assert_eq!(call(&b, Success), Recorded::Transitioned(State::Closed));
    let m = b.metrics();
    assert_eq!((m.window_calls, m.failure_rate), (0, 0.0));
}

// ----- B4: open duration ---------------------------------------------------------

fn backoff_config() -> ConfigBuilder {
    quiet()
        .consecutive_failures(Some(1))
        .open_duration(ms(10))
        .max_open_duration(ms(50))
        .backoff_multiplier(2.0)
}

/// Waits out the open deadline and fails the probe.
fn reopen(b: &Breaker, clock: &ManualClock) {
    let deadline = b.open_deadline().expect("open");
    clock.set(deadline);
    let p = b.acquire().expect("probe");
    assert!(p.is_probe());
    assert_eq!(
        b.record(p, Failure, ms(1)),
        Recorded::Transitioned(State::Open)
    );
}

#[test]
fn b4_each_reopen_multiplies_the_open_duration_up_to_the_cap() {
    let (b, clock, log) = manual(backoff_config().build().unwrap(), START);
    trip(&b);
    assert_eq!(b.open_deadline(), Some(START + 10 * MS));
    let mut left = Vec::new();
    for _ in 0..4 {
        reopen(&b, &clock);
        left.push(b.open_deadline().unwrap() - clock.now());
    }
    assert_eq!(left, [20 * MS, 40 * MS, 50 * MS, 50 * MS]);
    assert_eq!(
        open_for(&log),
        [ms(10), ms(20), ms(40), ms(50), ms(50)],
        "x2 per re-open, capped at 50 ms"
    );
    // Closing ends the streak: the next trip opens for the base again.
    clock.set(b.open_deadline().unwrap());
    assert_eq!(call(&b, Success), Recorded::Transitioned(State::Closed));
    trip(&b);
    assert_eq!(open_for(&log), [ms(10)]);

    let (b, clock, log) = manual(
        backoff_config().backoff_multiplier(1.0).build().unwrap(),
        START,
    );
    trip(&b);
    reopen(&b, &clock);
    assert_eq!(open_for(&log), [ms(10), ms(10)], "multiplier 1: no growth");
}

#[test]
fn b4_jitter_stays_within_its_fraction_of_the_backoff_and_spreads_instances() {
    let j = 0.25;
    let mut seen = Vec::new();
    for seed in 1..=64 {
        let config = backoff_config()
            .open_duration(ms(100))
            .max_open_duration(ms(1000))
            .jitter(j)
            .seed(seed)
            .build()
            .unwrap();
        let (b, clock, log) = manual(config, START);
        trip(&b);
        for _ in 0..5 {
            reopen(&b, &clock);
        }
        // Backoff 100, 200, 400, 800, 1000 (capped), 1000 ms.
        let backoff = [100.0, 200.0, 400.0, 800.0, 1000.0, 1000.0];
        for (got, base) in open_for(&log).into_iter().zip(backoff) {
            let got = got.as_secs_f64() * 1e3;
            assert!(
                got >= base * (1.0 - j) - 1e-6 && got <= base * (1.0 + j) + 1e-6,
                "seed {seed}: {got} ms outside {base} ms +-{j}"
            );
            assert!(got <= 1000.0, "capped after jitter: {got}");
            if base == 100.0 {
                seen.push(got);
            }
        }
    }
    let lo = seen.iter().cloned().fold(f64::MAX, f64::min);
    let hi = seen.iter().cloned().fold(0.0, f64::max);
    assert!(
        lo < 90.0 && hi > 110.0,
        "jitter spreads instances: {lo}..{hi}"
    );
}

#[test]
fn b4_retry_after_sets_the_open_duration_clamped_to_the_cap() {
    let (b, clock, log) = manual(backoff_config().build().unwrap(), START);
    let p = b.acquire().unwrap();
    b.record_with_retry_after(p, Failure, ms(1), ms(30));
    assert_eq!(b.open_deadline(), Some(START + 30 * MS));
    // On a probe too, instead of the backoff; and clamped to the cap.
    clock.set(START + 30 * MS);
    let p = b.acquire().unwrap();
    b.record_with_retry_after(p, Failure, ms(1), Duration::MAX);
    assert_eq!(open_for(&log), [ms(30), ms(50)]);
    // A Retry-After on an outcome that does not trip changes nothing.
    let config = quiet().consecutive_failures(Some(2)).build().unwrap();
    let (b, _, log) = manual(config, START);
    let p = b.acquire().unwrap();
    assert_eq!(
        b.record_with_retry_after(p, Failure, ms(1), ms(999)),
        Recorded::Counted
    );
    assert_eq!(b.state(), State::Closed);
    assert!(log.take().is_empty());
}

#[test]
fn b4_later_failures_never_extend_the_open_deadline() {
    let (b, clock, _) = manual(backoff_config().build().unwrap(), START);
    let late: Vec<Permit> = (0..3).map(|_| b.acquire().unwrap()).collect();
    trip(&b);
    let deadline = b.open_deadline().unwrap();
    clock.advance(ms(5));
    for p in late {
        assert_eq!(
            b.record_with_retry_after(p, Failure, ms(1), ms(40)),
            Recorded::Stale
        );
    }
    assert_eq!(b.open_deadline(), Some(deadline));
    assert_eq!(b.acquire().unwrap_err().retry_after, Some(ms(5)));
    clock.set(deadline);
    assert!(b.acquire().unwrap().is_probe());
}

// ----- B5: half-open -------------------------------------------------------------

fn half_open_config(probes: u32, successes: u32) -> ConfigBuilder {
    quiet()
        .consecutive_failures(Some(1))
        .open_duration(ms(10))
        .max_open_duration(ms(100))
        .half_open_probes(probes)
        .half_open_successes(successes)
        .probe_lease(ms(20))
}

#[test]
fn b5_open_moves_to_half_open_on_the_first_acquire_after_the_deadline() {
    let (b, clock, log) = manual(half_open_config(1, 1).build().unwrap(), START);
    trip(&b);
    clock.advance(ms(10) - Duration::from_micros(1));
    let r = b.acquire().unwrap_err();
    assert_eq!(
        (r.reason, r.retry_after),
        (RejectReason::Open, Some(Duration::from_micros(1)))
    );
    assert_eq!(b.state(), State::Open, "time alone does not transition");
    clock.advance(Duration::from_micros(1));
    let g = b.generation();
    let p = b.acquire().unwrap();
    assert!(p.is_probe());
    assert_eq!(p.generation(), g + 1);
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(
        reasons(&log),
        [Reason::ConsecutiveFailures, Reason::OpenDeadlinePassed]
    );
}

#[test]
fn b5_half_open_admits_at_most_p_probes_and_k_successes_close() {
    let (b, clock, log) = manual(half_open_config(3, 2).build().unwrap(), START);
    trip(&b);
    clock.advance(ms(10));
    let probes: Vec<Permit> = (0..3).map(|_| b.acquire().unwrap()).collect();
    assert!(probes.iter().all(|p| p.is_probe()));
    let r = b.acquire().unwrap_err();
    assert_eq!(
        (r.reason, r.retry_after),
        (RejectReason::HalfOpenFull, Some(ms(20)))
    );
    // An ignored probe frees its slot; a success keeps it (it counts toward P).
    assert_eq!(b.record(probes[0], Ignored, ms(1)), Recorded::Counted);
    let fourth = b.acquire().unwrap();
    assert_eq!(b.record(probes[1], Success, ms(1)), Recorded::Counted);
    assert_eq!(b.acquire().unwrap_err().reason, RejectReason::HalfOpenFull);
    assert_eq!(
        b.record(fourth, Success, ms(1)),
        Recorded::Transitioned(State::Closed)
    );
    // The last probe reports after the episode: stale.
    assert_eq!(b.record(probes[2], Success, ms(1)), Recorded::Stale);
    assert_eq!(
        reasons(&log),
        [
            Reason::ConsecutiveFailures,
            Reason::OpenDeadlinePassed,
            Reason::ProbesSucceeded
        ]
    );
    assert_eq!(b.metrics().rejected[RejectReason::HalfOpenFull as usize], 2);
}

#[test]
fn b5_any_probe_failure_reopens_with_a_longer_open_duration() {
    let (b, clock, log) = manual(
        half_open_config(3, 3)
            .backoff_multiplier(3.0)
            .build()
            .unwrap(),
        START,
    );
    trip(&b);
    clock.advance(ms(10));
    let a = b.acquire().unwrap();
    let c = b.acquire().unwrap();
    assert_eq!(b.record(a, Success, ms(1)), Recorded::Counted);
    assert_eq!(
        b.record(c, Timeout, ms(1)),
        Recorded::Transitioned(State::Open)
    );
    assert_eq!(open_for(&log), [ms(10), ms(30)]);
}

#[test]
fn b5_a_slow_probe_reopens_only_under_the_slow_call_policy() {
    let slow = ms(50);
    let config = half_open_config(1, 1)
        .slow_call(Some((1.0, slow)))
        .minimum_calls(1)
        .count_window(1)
        .build()
        .unwrap();
    let (b, clock, _) = manual(config, START);
    trip(&b);
    clock.advance(ms(10));
    assert_eq!(
        call_for(&b, Success, slow),
        Recorded::Transitioned(State::Open)
    );
    let (b, clock, _) = manual(half_open_config(1, 1).build().unwrap(), START);
    trip(&b);
    clock.advance(ms(10));
    assert_eq!(
        call_for(&b, Success, ms(60_000)),
        Recorded::Transitioned(State::Closed)
    );
}

#[test]
fn b5_the_lease_frees_a_stuck_probe_and_keeps_the_successes() {
    let (b, clock, log) = manual(half_open_config(2, 2).build().unwrap(), START);
    trip(&b);
    clock.advance(ms(10));
    let first = b.acquire().unwrap();
    clock.advance(ms(5));
    let stuck = b.acquire().unwrap();
    assert_eq!(b.record(first, Success, ms(1)), Recorded::Counted);
    // The youngest grant's lease (5 + 20 ms) has 20 ms left.
    let r = b.acquire().unwrap_err();
    assert_eq!(
        (r.reason, r.retry_after),
        (RejectReason::HalfOpenFull, Some(ms(20)))
    );
    clock.advance(ms(20));
    let fresh = b.acquire().unwrap();
    assert!(fresh.is_probe());
    assert_eq!(fresh.generation(), stuck.generation() + 1);
    assert_eq!(
        b.record(stuck, Failure, ms(1)),
        Recorded::Stale,
        "late probe"
    );
    assert_eq!(b.state(), State::HalfOpen);
    // One success was kept: this second one closes.
    assert_eq!(
        b.record(fresh, Success, ms(1)),
        Recorded::Transitioned(State::Closed)
    );
    assert_eq!(
        reasons(&log),
        [
            Reason::ConsecutiveFailures,
            Reason::OpenDeadlinePassed,
            Reason::ProbeLeaseExpired,
            Reason::ProbesSucceeded
        ]
    );
}

// ----- B6: generations -------------------------------------------------------------

#[test]
fn b6_every_transition_increments_the_generation() {
    let (b, clock, log) = manual(half_open_config(1, 1).build().unwrap(), START);
    trip(&b);
    clock.advance(ms(10));
    call(&b, Success);
    b.force(Override::ForcedOpen, None);
    b.force(Override::ForcedOpen, None);
    b.clear_override();
    b.reset();
    let events = log.take();
    assert_eq!(events.len(), 7);
    for (i, t) in events.iter().enumerate() {
        assert_eq!(t.generation, i as u32 + 1, "{t:?}");
    }
    assert_eq!(b.generation(), 7);
    let m = b.metrics();
    assert_eq!(m.transitions_to.iter().sum::<u64>(), 7);
}

#[test]
fn b6_stale_permits_are_counted_and_change_nothing() {
    let config = quiet()
        .consecutive_failures(Some(2))
        .failure_rate(Some(0.5))
        .count_window(10)
        .minimum_calls(4)
        .build()
        .unwrap();
    let (b, _, _) = manual(config, START);
    let old: Vec<Permit> = (0..5).map(|_| b.acquire().unwrap()).collect();
    b.reset();
    for (i, p) in old.into_iter().enumerate() {
        assert_eq!(b.record(p, Failure, ms(1)), Recorded::Stale, "{i}");
    }
    let m = b.metrics();
    assert_eq!((m.stale, m.outcome(Failure), m.window_calls), (5, 0, 0));
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.generation(), 1);
    // The consecutive count was untouched: one failure does not trip.
    assert_eq!(call(&b, Failure), Recorded::Counted);
}

// ----- B12: bad input ---------------------------------------------------------------

#[test]
fn b12_every_invalid_config_field_is_refused_by_name() {
    let d = Duration::from_millis;
    let cases: Vec<(ConfigBuilder, &str)> = vec![
        (
            Config::builder().consecutive_failures(Some(0)),
            "consecutive_failures",
        ),
        (Config::builder().failure_rate(Some(0.0)), "failure_rate"),
        (Config::builder().failure_rate(Some(-0.5)), "failure_rate"),
        (Config::builder().failure_rate(Some(1.0001)), "failure_rate"),
        (
            Config::builder().failure_rate(Some(f64::NAN)),
            "failure_rate",
        ),
        (
            Config::builder().slow_call(Some((f64::NAN, d(1)))),
            "slow_call",
        ),
        (Config::builder().slow_call(Some((2.0, d(1)))), "slow_call"),
        (
            Config::builder().slow_call(Some((0.5, Duration::ZERO))),
            "slow_call",
        ),
        (
            Config::builder().slow_call(Some((0.5, Duration::MAX))),
            "slow_call",
        ),
        (Config::builder().ewma(Some((0.0, 0.5))), "ewma"),
        (Config::builder().ewma(Some((1.5, 0.5))), "ewma"),
        (Config::builder().ewma(Some((f64::NAN, 0.5))), "ewma"),
        (Config::builder().ewma(Some((0.5, 0.0))), "ewma"),
        (Config::builder().ewma(Some((0.5, f64::INFINITY))), "ewma"),
        (Config::builder().minimum_calls(0), "minimum_calls"),
        (
            Config::builder()
                .slow_call(Some((0.5, d(1))))
                .count_window(8)
                .minimum_calls(9),
            "minimum_calls",
        ),
        (Config::builder().count_window(0), "count_window"),
        (
            Config::builder().count_window(MAX_COUNT_WINDOW + 1),
            "count_window",
        ),
        (Config::builder().time_window(d(1000), 0), "time_window"),
        (
            Config::builder().time_window(d(100_000), MAX_BUCKETS + 1),
            "time_window",
        ),
        (
            Config::builder().time_window(Duration::ZERO, 1),
            "time_window",
        ),
        (Config::builder().time_window(d(9), 10), "time_window"),
        (
            Config::builder().time_window(MAX_DURATION * 2, 10),
            "time_window",
        ),
        (
            Config::builder().open_duration(Duration::ZERO),
            "open_duration",
        ),
        (
            Config::builder()
                .open_duration(d(2000))
                .max_open_duration(d(1000)),
            "open_duration",
        ),
        (
            Config::builder().max_open_duration(Duration::ZERO),
            "max_open_duration",
        ),
        (
            Config::builder().max_open_duration(Duration::MAX),
            "max_open_duration",
        ),
        (
            Config::builder().backoff_multiplier(0.99),
            "backoff_multiplier",
        ),
        (
            Config::builder().backoff_multiplier(1000.5),
            "backoff_multiplier",
        ),
        (
            Config::builder().backoff_multiplier(f64::INFINITY),
            "backoff_multiplier",
        ),
        (Config::builder().jitter(-0.01), "jitter"),
        (Config::builder().jitter(1.0), "jitter"),
        (Config::builder().jitter(f64::NAN), "jitter"),
        (Config::builder().half_open_probes(0), "half_open_probes"),
        (
            Config::builder().half_open_probes(MAX_PROBES + 1),
            "half_open_probes",
        ),
        (
            Config::builder().half_open_probes(2).half_open_successes(3),
            "half_open_successes",
        ),
        (Config::builder().probe_lease(Duration::ZERO), "probe_lease"),
        (Config::builder().probe_lease(Duration::MAX), "probe_lease"),
    ];
    for (builder, field) in cases {
        let e = builder.clone().build().expect_err(field);
        assert_eq!(e.field, field, "{e}");
        assert!(e.to_string().contains(field), "{e}");
        assert!(!e.reason.is_empty());
    }
    // And the edges of every range are accepted.
    let ok = Config::builder()
        .consecutive_failures(Some(1))
        .failure_rate(Some(1.0))
        .slow_call(Some((1.0, Duration::from_nanos(1))))
        .ewma(Some((1.0, 1.0)))
        .minimum_calls(1)
        .count_window(MAX_COUNT_WINDOW)
        .open_duration(MAX_DURATION)
        .max_open_duration(MAX_DURATION)
        .backoff_multiplier(1000.0)
        .jitter(0.999)
        .half_open_probes(MAX_PROBES)
        .probe_lease(MAX_DURATION)
        .build();
    assert!(ok.is_ok(), "{ok:?}");
    assert!(Config::builder()
        .time_window(d(1024), MAX_BUCKETS)
        .build()
        .is_ok());
}

#[test]
fn b12_a_permit_recorded_twice_leaves_the_breaker_consistent() {
    let (b, clock, _) = manual(half_open_config(2, 2).build().unwrap(), START);
    let p = b.acquire().unwrap();
    assert_eq!(b.record(p, Success, ms(1)), Recorded::Counted);
    assert_eq!(b.record(p, Success, ms(1)), Recorded::Counted);
    trip(&b);
    assert_eq!(b.record(p, Failure, ms(1)), Recorded::Stale);
    // A probe reported twice after its episode ended is stale the second time.
    clock.advance(ms(10));
    let probe = b.acquire().unwrap();
    assert_eq!(
        b.record(probe, Failure, ms(1)),
        Recorded::Transitioned(State::Open)
    );
    assert_eq!(b.record(probe, Failure, ms(1)), Recorded::Stale);
    let m = b.metrics();
    assert_eq!(m.recorded(), 6);
    assert_eq!(m.stale, 2);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn b12_permits_from_another_breaker_or_forged_are_stale() {
    let (a, _, _) = manual(quiet().build().unwrap(), START);
    let (b, _, _) = manual(
        quiet().consecutive_failures(Some(1)).build().unwrap(),
        START,
    );
    let foreign = a.acquire().unwrap();
    b.reset();
    b.reset();
    assert_eq!(b.record(foreign, Failure, ms(1)), Recorded::Stale);
    // A probe flag the breaker never issued in CLOSED.
    let forged = Permit::from_raw(b.generation(), 1);
    assert!(forged.is_probe());
    assert_eq!(b.record(forged, Failure, ms(1)), Recorded::Stale);
    // Unknown flag bits are dropped.
    assert!(!Permit::from_raw(0, 0xFFFF_FFFE).is_probe());
    assert_eq!(Permit::from_raw(7, 3).into_raw(), (7, 1));
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics().stale, 2);
}

#[test]
fn b12_zero_and_huge_durations_are_clamped_not_trusted() {
    // No slow policy: nothing is slow, however long.
    let (b, _, _) = manual(quiet().build().unwrap(), START);
    for d in [
        Duration::ZERO,
        Duration::from_nanos(u64::MAX),
        Duration::MAX,
    ] {
        assert_eq!(call_for(&b, Success, d), Recorded::Counted);
    }
    assert_eq!(b.metrics().slow, 0);
    // With one, the huge ones are slow and zero is not.
    let config = quiet()
        .slow_call(Some((1.0, ms(1))))
        .count_window(10)
        .minimum_calls(10)
        .build()
        .unwrap();
    let (b, clock, _) = manual(config, START);
    for d in [
        Duration::ZERO,
        Duration::from_nanos(u64::MAX),
        Duration::MAX,
    ] {
        assert_eq!(call_for(&b, Success, d), Recorded::Counted);
    }
    assert_eq!(b.metrics().slow, 2);
    // Huge override and Retry-After durations are clamped to the limits.
    b.force(Override::ForcedOpen, Some(Duration::MAX));
    assert_eq!(b.acquire().unwrap_err().retry_after, Some(MAX_DURATION));
    clock.advance(MAX_DURATION);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn b12_a_clock_set_backwards_only_delays_deadlines() {
    let config = half_open_config(1, 1)
        .failure_rate(Some(1.0))
        .time_window(ms(100), 10)
        .minimum_calls(100)
        .build()
        .unwrap();
    let (b, clock, _) = manual(config, START + 5 * MS);
    trip(&b);
    clock.set(5 * MS);
    let r = b.acquire().unwrap_err();
    assert_eq!(r.reason, RejectReason::Open);
    assert_eq!(r.retry_after, Some(Duration::from_nanos(START + 10 * MS)));
    let m = b.metrics();
    assert!(m.nanos_in_state.iter().all(|&n| n < 2 * START), "{m:?}");
    clock.set(START + 15 * MS);
    assert_eq!(call(&b, Success), Recorded::Transitioned(State::Closed));

    // A time window on a clock that jumps around: no panic, rates in [0, 1].
    let config = quiet()
        .failure_rate(Some(1.0))
        .time_window(ms(100), 10)
        .minimum_calls(1_000)
        .build()
        .unwrap();
    let (b, clock, _) = manual(config, START);
    for (i, t) in [0, u64::MAX / 2, 3 * MS, u64::MAX, 0, 5]
        .into_iter()
        .enumerate()
    {
        clock.set(t);
        call(&b, if i % 2 == 0 { Failure } else { Success });
        let m = b.metrics();
        assert!((0.0..=1.0).contains(&m.failure_rate), "{m:?}");
        assert!(m.window_calls >= 1, "the sample just taken is live: {m:?}");
    }
    b.reset();
    call(&b, Failure);
    assert_eq!(
        b.metrics().window_calls,
        1,
        "a fresh window after the jumps"
    );

    // The end of time: deadlines saturate, the breaker still recovers, and
    // time in state saturates instead of wrapping.
    let (b, clock, _) = manual(half_open_config(1, 1).build().unwrap(), START);
    clock.set(u64::MAX);
    trip(&b);
    clock.advance(ms(10));
    assert_eq!(call(&b, Success), Recorded::Transitioned(State::Closed));
    let closed = State::Closed.index();
    assert_eq!(b.metrics().nanos_in_state[closed], u64::MAX - START);
    clock.set(0);
    b.reset();
    clock.set(u64::MAX);
    b.reset();
    assert_eq!(
        b.metrics().nanos_in_state[closed],
        u64::MAX,
        "saturated, not wrapped"
    );
}

#[test]
fn b12_listeners_may_call_back_into_the_breaker() {
    struct Reader(std::sync::Mutex<Vec<State>>, std::sync::Weak<Breaker>);
    impl Listener for Reader {
        fn on_transition(&self, _: &Arc<str>, _: &circuit_core::Transition) {
            if let Some(b) = self.1.upgrade() {
                self.0.lock().unwrap().push(b.state());
                let _ = b.metrics();
            }
        }
    }
    let clock = Arc::new(ManualClock::new(START));
    let config = quiet().consecutive_failures(Some(1)).build().unwrap();
    let mut handle = None;
    let b = Arc::new_cyclic(|weak| {
        let reader = Arc::new(Reader(Default::default(), weak.clone()));
        handle = Some(reader.clone());
        Breaker::build(config, clock.clone() as Arc<dyn Clock>, Some(reader))
    });
    trip(&b);
    b.reset();
    // Each listener call saw the state it was told about (B7).
    let seen = handle.unwrap().0.lock().unwrap().clone();
    assert_eq!(seen, [State::Open, State::Closed]);
    assert_eq!(b.metrics().transitions_to.iter().sum::<u64>(), 2);
}

// ----- B12: any clock origin ------------------------------------------------

/// What a scenario observed, with every clock value taken relative to the
/// clock's start, so runs from different origins compare.
#[derive(Debug, PartialEq)]
enum Seen {
    Admitted { probe: bool },
    Rejected(RejectReason, Option<Duration>),
    Recorded(Recorded),
    State(State),
    OpenDeadline(Option<u64>),
    OverrideDeadline(Option<u64>),
    Event(State, State, Reason, u64, u64),
}

/// Trip, open, half-open (a failed probe, a re-open with backoff, a probe
/// lease that expires, probes that close), then a force-open with an expiry
/// and a forced-closed with one, on a manual clock starting at `origin`.
fn origin_scenario(origin: u64) -> Vec<Seen> {
    let config = quiet()
        .consecutive_failures(Some(3))
        .open_duration(Duration::from_secs(1))
        .max_open_duration(Duration::from_secs(4))
        .backoff_multiplier(2.0)
        .half_open_probes(2)
        .half_open_successes(2)
        .probe_lease(ms(300))
        .build()
        .unwrap();
    let (b, clock, log) = manual(config, origin);
    let mut seen = Vec::new();
    let rel = |t: u64| t - origin;
    let acquire = |seen: &mut Vec<Seen>| -> Option<Permit> {
        match b.acquire() {
            Ok(p) => {
                seen.push(Seen::Admitted {
                    probe: p.is_probe(),
                });
                Some(p)
            }
            Err(r) => {
                seen.push(Seen::Rejected(r.reason, r.retry_after));
                None
            }
        }
    };
    let record = |seen: &mut Vec<Seen>, p: Option<Permit>, o: Outcome| {
        if let Some(p) = p {
            seen.push(Seen::Recorded(b.record(p, o, ms(1))));
        }
    };
    let look = |seen: &mut Vec<Seen>| {
        seen.push(Seen::State(b.state()));
        seen.push(Seen::OpenDeadline(b.open_deadline().map(rel)));
        seen.push(Seen::OverrideDeadline(b.override_deadline().map(rel)));
        for t in log.take() {
            seen.push(Seen::Event(t.from, t.to, t.reason, rel(t.at), t.open_for));
        }
    };
    for _ in 0..3 {
        let p = acquire(&mut seen);
        record(&mut seen, p, Failure);
    }
    look(&mut seen);
    // OPEN: the next call is refused, to the nanosecond.
    acquire(&mut seen);
    clock.advance(Duration::from_nanos(999_999_999));
    acquire(&mut seen);
    clock.advance(Duration::from_nanos(1));
    let probe = acquire(&mut seen);
    look(&mut seen);
    record(&mut seen, probe, Failure);
    look(&mut seen);
    // Re-opened for 2 s.
    clock.advance(Duration::from_millis(1999));
    acquire(&mut seen);
    clock.advance(ms(1));
    let first = acquire(&mut seen);
    let _held = acquire(&mut seen);
    acquire(&mut seen);
    clock.advance(ms(300));
    // Both leases expired: a new half-open generation.
    let second = acquire(&mut seen);
    record(&mut seen, first, Success);
    look(&mut seen);
    let third = acquire(&mut seen);
    record(&mut seen, second, Success);
    record(&mut seen, third, Success);
    look(&mut seen);
    // A 1 s force-open: refused for a second, CLOSED after it and a minute on.
    b.force(Override::ForcedOpen, Some(Duration::from_secs(1)));
    look(&mut seen);
    acquire(&mut seen);
    clock.advance(Duration::from_nanos(999_999_999));
    acquire(&mut seen);
    clock.advance(Duration::from_nanos(1));
    look(&mut seen);
    clock.advance(Duration::from_secs(60));
    let p = acquire(&mut seen);
    record(&mut seen, p, Success);
    look(&mut seen);
    b.force(Override::ForcedClosed, Some(ms(10)));
    clock.advance(ms(10));
    look(&mut seen);
    seen
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..Default::default()
    })]

    /// B12: deadlines, leases and expiries behave the same whatever the
    /// manual clock's origin: zero, past 2^40 ns, past 2^48 us (the old
    /// stamp's end), wall-clock nanoseconds (`time.time_ns()`), near the end
    /// of time, anywhere.
    #[test]
    fn b12_any_clock_origin_behaves_as_origin_zero(
        origin in proptest::prop_oneof![
            proptest::strategy::Just(1u64 << 40),
            proptest::strategy::Just((1u64 << 48) * 1000),
            proptest::strategy::Just((1u64 << 48) * 1000 - 500 * MS),
            proptest::strategy::Just(1_764_990_000_123_456_789u64),
            proptest::strategy::Just(u64::MAX - 1_000_000_000_000),
            0u64..u64::MAX - 1_000_000_000_000,
        ]
    ) {
        let want = origin_scenario(0);
        // The scenario itself is what the behaviours say it is.
        proptest::prop_assert!(want.contains(&Seen::Recorded(Recorded::Transitioned(State::Closed))));
        proptest::prop_assert_eq!(origin_scenario(origin), want);
    }
}

#[test]
fn b12_a_clock_at_the_end_of_time_still_trips_and_expires() {
    // The last second of a u64 clock: deadlines saturate at u64::MAX, which
    // the clock reaches; nothing overflows and nothing becomes "never".
    let (b, clock, _) = manual(
        half_open_config(1, 1).build().unwrap(),
        u64::MAX - 1_000_000_000,
    );
    trip(&b);
    assert_eq!(b.acquire().unwrap_err().reason, RejectReason::Open);
    clock.set(u64::MAX);
    assert_eq!(call(&b, Success), Recorded::Transitioned(State::Closed));
    b.force(Override::ForcedOpen, Some(Duration::from_secs(5)));
    assert_eq!(b.override_deadline(), Some(u64::MAX));
    assert_eq!(b.state(), State::Closed, "expired at the end of time");
}

// ----- B5: a probe counts once ------------------------------------------------

/// Trips a breaker of `half_open_config` and lets its open deadline pass.
fn to_half_open(b: &Breaker, clock: &ManualClock) {
    trip(b);
    clock.advance(ms(10));
}

#[test]
fn half_open_probe_recorded_twice_counts_once() {
    let (b, clock, _) = manual(half_open_config(3, 3).build().unwrap(), START);
    to_half_open(&b, &clock);
    let probe = b.acquire().unwrap();
    assert!(probe.is_probe());
    assert_eq!(b.record(probe, Success, ms(1)), Recorded::Counted);
    assert_eq!(b.record(probe, Success, ms(1)), Recorded::Stale);
    assert_eq!(b.record(probe, Success, ms(1)), Recorded::Stale);
    assert_eq!(
        b.state(),
        State::HalfOpen,
        "one probe is not three successes"
    );
    // A duplicate failure changes nothing either.
    assert_eq!(b.record(probe, Failure, ms(1)), Recorded::Stale);
    assert_eq!(b.state(), State::HalfOpen);
    // Two more distinct probes close it (B5), each counted once.
    let (p2, p3) = (b.acquire().unwrap(), b.acquire().unwrap());
    assert_eq!(b.record(p2, Success, ms(1)), Recorded::Counted);
    assert_eq!(b.record(p2, Success, ms(1)), Recorded::Stale);
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(
        b.record(p3, Success, ms(1)),
        Recorded::Transitioned(State::Closed)
    );
    let m = b.metrics();
    assert_eq!(m.stale, 4);
    assert_eq!(m.outcomes[Success as usize], 3);
}

#[test]
fn half_open_probe_released_as_neutral_then_recorded_again_changes_nothing() {
    let (b, clock, _) = manual(half_open_config(1, 1).build().unwrap(), START);
    to_half_open(&b, &clock);
    let first = b.acquire().unwrap();
    assert_eq!(b.record(first, Ignored, ms(1)), Recorded::Counted);
    let second = b.acquire().unwrap();
    // The first probe's permit again: its slot is someone else's now.
    assert_eq!(b.record(first, Success, ms(1)), Recorded::Stale);
    assert_eq!(b.record(first, Ignored, ms(1)), Recorded::Stale);
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(
        b.acquire().unwrap_err().reason,
        RejectReason::HalfOpenFull,
        "the second probe still holds the only slot"
    );
    assert_eq!(
        b.record(second, Success, ms(1)),
        Recorded::Transitioned(State::Closed)
    );
}

#[test]
fn half_open_neutral_probe_recorded_twice_frees_one_slot() {
    let (b, clock, _) = manual(half_open_config(2, 2).build().unwrap(), START);
    to_half_open(&b, &clock);
    let (a, _held) = (b.acquire().unwrap(), b.acquire().unwrap());
    assert_eq!(b.record(a, Ignored, ms(1)), Recorded::Counted);
    assert_eq!(b.record(a, Ignored, ms(1)), Recorded::Stale);
    b.acquire().expect("the freed slot");
    assert_eq!(
        b.acquire().unwrap_err().reason,
        RejectReason::HalfOpenFull,
        "never more than P probes admitted (B5)"
    );
}

#[test]
fn half_open_probe_of_another_breaker_is_stale() {
    let (a, clock_a, _) = manual(half_open_config(2, 1).build().unwrap(), START);
    let (b, clock_b, _) = manual(half_open_config(2, 2).build().unwrap(), START);
    to_half_open(&a, &clock_a);
    to_half_open(&b, &clock_b);
    assert_eq!(a.generation(), b.generation());
    let foreign = a.acquire().unwrap();
    let own = b.acquire().unwrap();
    assert_eq!(b.record(foreign, Success, ms(1)), Recorded::Stale);
    assert_eq!(b.record(foreign, Failure, ms(1)), Recorded::Stale);
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.record(own, Success, ms(1)), Recorded::Counted);
    assert_eq!(
        a.record(foreign, Success, ms(1)),
        Recorded::Transitioned(State::Closed)
    );
}

#[test]
fn half_open_tickets_past_the_tracked_ones_still_work() {
    // 41 neutral probes in one half-open generation use up the tracked
    // tickets; later probes are admitted and counted as before.
    let (b, clock, _) = manual(half_open_config(1, 1).build().unwrap(), START);
    to_half_open(&b, &clock);
    for _ in 0..45 {
        let p = b.acquire().unwrap();
        assert_eq!(b.record(p, Ignored, ms(1)), Recorded::Counted);
    }
    let p = b.acquire().unwrap();
    assert_eq!(
        b.record(p, Success, ms(1)),
        Recorded::Transitioned(State::Closed)
    );
}
