//! Scenario tests of recovery after an outage (ramp-up, invariant 14), on a
//! manual clock.

mod common;

use std::time::Duration;

use circuit_core::{
    Breaker, Config, ManualClock, Outcome, Override, RampPolicy, Reason, Recorded, RejectReason,
    State,
};
use common::{manual, ms, quiet, MS};
use Outcome::{Failure, Success};

const START: u64 = 1_000 * MS;

/// One failure trips; open 100 ms doubling; one probe closes; ramp as given.
fn ramped(start: f64, duration: Duration, steps: u32) -> Config {
    quiet()
        .consecutive_failures(Some(1))
        .open_duration(ms(100))
        .max_open_duration(ms(10_000))
        .backoff_multiplier(2.0)
        .ramp(Some(RampPolicy {
            start,
            duration,
            steps,
        }))
        .build()
        .unwrap()
}

/// Trips, waits out the open duration and closes with one probe.
fn recover(b: &Breaker, clock: &ManualClock) {
    let p = b.acquire().expect("closed");
    assert_eq!(
        b.record(p, Failure, ms(1)),
        Recorded::Transitioned(State::Open)
    );
    clock.advance(ms(10_000));
    let probe = b.acquire().expect("probe");
    assert!(probe.is_probe());
    assert_eq!(
        b.record(probe, Success, ms(1)),
        Recorded::Transitioned(State::Closed)
    );
}

/// `n` acquires; admitted ones are recorded as successes. Returns how many
/// were admitted, checking every refusal's reason.
fn attempts(b: &Breaker, n: u32) -> u32 {
    let mut admitted = 0;
    for _ in 0..n {
        match b.acquire() {
            Ok(p) => {
                assert_eq!(b.record(p, Success, ms(1)), Recorded::Counted);
                admitted += 1;
            }
            Err(r) => {
                assert_eq!(r.reason, RejectReason::RampLimited);
                assert_eq!(r.retry_after, None);
            }
        }
    }
    admitted
}

fn assert_near(admitted: u32, expect: f64) {
    assert!(
        (f64::from(admitted) - expect).abs() <= 8.0,
        "admitted {admitted}, expected {expect}"
    );
}

#[test]
fn ramp_admits_the_start_fraction_and_rises_linearly_to_every_call() {
    let (b, clock, log) = manual(ramped(0.25, ms(1000), 0), START);
    recover(&b, &clock);
    let closed_gen = b.generation();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.ramp_fraction(), Some(0.25));
    assert_near(attempts(&b, 1000), 250.0);
    clock.advance(ms(500));
    assert_eq!(b.ramp_fraction(), Some(0.625));
    assert_near(attempts(&b, 1000), 625.0);
    let m = b.metrics();
    assert_eq!(
        m.rejected[RejectReason::RampLimited as usize],
        2000 - m.outcome(Success) + 1, // the probe was a success too
    );
    clock.advance(ms(500));
    assert_eq!(b.ramp_fraction(), None);
    assert_eq!(attempts(&b, 1000), 1000);
    // The ramp's end is no transition: same generation, no event.
    assert_eq!(b.generation(), closed_gen);
    let reasons: Vec<Reason> = log.take().iter().map(|t| t.reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::ConsecutiveFailures,
            Reason::OpenDeadlinePassed,
            Reason::ProbesSucceeded
        ]
    );
}

#[test]
fn ramp_in_steps_holds_each_level_for_its_step() {
    let (b, clock, _) = manual(ramped(0.2, ms(400), 4), START);
    recover(&b, &clock);
    for (advance, fraction) in [(0, 0.2), (99, 0.2), (1, 0.4), (100, 0.6), (199, 0.8)] {
        clock.advance(ms(advance));
        let f = b.ramp_fraction().expect("ramping");
        assert!((f - fraction).abs() < 1e-9, "{f} vs {fraction}");
        assert_near(attempts(&b, 500), 500.0 * fraction);
    }
    clock.advance(ms(1));
    assert_eq!(b.ramp_fraction(), None);
    assert_eq!(attempts(&b, 100), 100);
}

#[test]
fn a_trip_during_the_ramp_reopens_as_from_half_open_with_backoff() {
    let (b, clock, log) = manual(ramped(0.5, ms(1000), 0), START);
    recover(&b, &clock);
    log.take();
    clock.advance(ms(10));
    let p = loop {
        if let Ok(p) = b.acquire() {
            break p;
        }
    };
    assert_eq!(
        b.record(p, Failure, ms(1)),
        Recorded::Transitioned(State::Open)
    );
    let t = log.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].reason, Reason::ConsecutiveFailures);
    // The first open lasted 100 ms; this one is the first re-open: doubled.
    assert_eq!(Duration::from_nanos(t[0].open_for), ms(200));
    // Recover again: the ramp starts over, and a second trip doubles again.
    clock.advance(ms(200));
    let probe = b.acquire().unwrap();
    assert_eq!(
        b.record(probe, Success, ms(1)),
        Recorded::Transitioned(State::Closed)
    );
    assert_eq!(b.ramp_fraction(), Some(0.5));
    log.take();
    let p = loop {
        if let Ok(p) = b.acquire() {
            break p;
        }
    };
    b.record(p, Failure, ms(1));
    assert_eq!(Duration::from_nanos(log.take()[0].open_for), ms(400));
}

#[test]
fn after_the_ramp_a_trip_opens_with_the_base_duration() {
    let (b, clock, log) = manual(ramped(0.5, ms(1000), 0), START);
    recover(&b, &clock);
    clock.advance(ms(1000));
    log.take();
    // No acquire has cleared the ramp yet: the trip still sees it is over.
    let p = b.acquire().unwrap();
    assert_eq!(
        b.record(p, Failure, ms(1)),
        Recorded::Transitioned(State::Open)
    );
    assert_eq!(Duration::from_nanos(log.take()[0].open_for), ms(100));
}

#[test]
fn a_permit_of_the_ramp_recorded_after_it_ends_still_counts() {
    let (b, clock, _) = manual(ramped(0.9, ms(100), 0), START);
    recover(&b, &clock);
    let p = loop {
        if let Ok(p) = b.acquire() {
            break p;
        }
    };
    clock.advance(ms(100));
    assert!(b.acquire().is_ok()); // ends the ramp
    assert_eq!(b.ramp_fraction(), None);
    assert_eq!(
        b.record(p, Failure, ms(1)),
        Recorded::Transitioned(State::Open)
    );
}

#[test]
fn overrides_end_a_ramp_and_leave_to_a_plain_closed() {
    let (b, clock, _) = manual(ramped(0.1, ms(1000), 0), START);
    recover(&b, &clock);
    b.force(Override::ForcedClosed, None);
    assert_eq!(b.ramp_fraction(), None);
    assert_eq!(attempts(&b, 100), 100);
    assert!(b.clear_override());
    assert_eq!(b.ramp_fraction(), None);
    assert_eq!(attempts(&b, 100), 100);
    // A reset does not ramp either: only recovery from HALF_OPEN does.
    recover(&b, &clock);
    assert!(b.ramp_fraction().is_some());
    b.reset();
    assert_eq!(attempts(&b, 100), 100);
}

#[test]
fn without_a_ramp_recovery_admits_every_call_at_once() {
    let config = quiet()
        .consecutive_failures(Some(1))
        .open_duration(ms(100))
        .build()
        .unwrap();
    let (b, clock, _) = manual(config, START);
    recover(&b, &clock);
    assert_eq!(b.ramp_fraction(), None);
    assert_eq!(attempts(&b, 100), 100);
}

/// Real threads call through a ramp while another moves the clock past its
/// end: every attempt is admitted or refused as RAMP_LIMITED exactly once,
/// every admitted call's outcome counts (none is stale: the ramp's end keeps
/// the generation), and the counters conserve exactly.
#[test]
#[allow(clippy::disallowed_types)] // a test-side counter, not the core's
fn threads_through_a_ramp_and_its_end_conserve_every_call() {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    const THREADS: u64 = 4;
    const ATTEMPTS: u64 = 20_000;
    let (b, clock, _) = manual(ramped(0.3, ms(50), 0), START);
    recover(&b, &clock);
    let generation = b.generation();
    let progress = AtomicU64::new(0);
    let (admitted, refused) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let (mut admitted, mut refused) = (0u64, 0u64);
                    for _ in 0..ATTEMPTS {
                        progress.fetch_add(1, Relaxed);
                        match b.acquire() {
                            Ok(p) => {
                                assert_eq!(b.record(p, Success, ms(1)), Recorded::Counted);
                                admitted += 1;
                            }
                            Err(r) => {
                                assert_eq!(r.reason, RejectReason::RampLimited);
                                refused += 1;
                            }
                        }
                    }
                    (admitted, refused)
                })
            })
            .collect();
        s.spawn(|| {
            // The first quarter of the attempts meets the ramp for sure.
            while progress.load(Relaxed) < THREADS * ATTEMPTS / 4 {
                std::thread::yield_now();
            }
            for _ in 0..60 {
                clock.advance(ms(1));
                std::thread::yield_now();
            }
        });
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0), |(a, r), (a2, r2)| (a + a2, r + r2))
    });
    assert_eq!(admitted + refused, THREADS * ATTEMPTS);
    assert!(
        refused > 0 && admitted > refused / 4,
        "{admitted} admitted, {refused} refused"
    );
    let m = b.metrics();
    assert_eq!(m.outcome(Success), admitted + 1); // and the probe
    assert_eq!(m.stale, 0);
    assert_eq!(m.rejected[RejectReason::RampLimited as usize], refused);
    assert_eq!(m.rejected_total(), refused);
    assert_eq!(b.generation(), generation);
    assert!(b.acquire().is_ok());
    assert_eq!(b.ramp_fraction(), None);
}
