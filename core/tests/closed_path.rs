//! The closed path has a short form for the common case (a success under the
//! consecutive-failure policy alone, recorded by the thread owning the
//! inline counter cell) and a general one for everything else. These tests
//! drive every config shape through both, from one thread and from several,
//! and check that each shape still counts, samples and trips as it must: a
//! shape sent down the short form by mistake loses its histogram, window or
//! EWMA samples here.

mod common;

use std::sync::Arc;
use std::time::Duration;

use circuit_core::{Breaker, Config, ConfigBuilder, Outcome, Reason, Recorded, State};
use common::{manual, ms, quiet, MS};
use Outcome::{Failure, Ignored, Success, Timeout};

const START: u64 = 1_000 * MS;

fn call(b: &Breaker, outcome: Outcome, d: Duration) -> Recorded {
    let p = b.acquire().expect("admitted");
    b.record(p, outcome, d)
}

/// The config shapes, each with the policy a trip is expected from.
fn shapes() -> Vec<(&'static str, ConfigBuilder)> {
    vec![
        ("consecutive", quiet().consecutive_failures(Some(3))),
        (
            "consecutive, no metrics",
            quiet().consecutive_failures(Some(3)).metrics(false),
        ),
        (
            "consecutive + latency histogram",
            quiet()
                .consecutive_failures(Some(3))
                .latency_histogram(Some(Duration::from_secs(60))),
        ),
        (
            "consecutive + ewma",
            quiet()
                .consecutive_failures(Some(1000))
                .ewma(Some((0.5, 0.6)))
                .minimum_calls(4),
        ),
        (
            "count window",
            quiet()
                .failure_rate(Some(0.5))
                .count_window(10)
                .minimum_calls(4),
        ),
        (
            "time window",
            quiet()
                .failure_rate(Some(0.5))
                .time_window(Duration::from_secs(10), 10)
                .minimum_calls(4),
        ),
        (
            "slow calls",
            quiet()
                .consecutive_failures(Some(1000))
                .slow_call(Some((0.5, ms(100))))
                .count_window(10)
                .minimum_calls(4),
        ),
    ]
}

#[test]
fn every_shape_counts_each_outcome_and_samples_what_it_keeps() {
    for (name, builder) in shapes() {
        let config = builder.build().expect(name);
        let metrics = config.metrics_enabled();
        let histogram = config.latency_histogram().is_some();
        let (b, _clock, _log) = manual(config, START);
        // Successes (the short form when the shape allows it), then one
        // of each other outcome, none of which can trip any shape here.
        for _ in 0..5 {
            assert_eq!(call(&b, Success, ms(1)), Recorded::Counted, "{name}");
        }
        assert_eq!(call(&b, Ignored, ms(1)), Recorded::Counted, "{name}");
        assert_eq!(call(&b, Failure, ms(1)), Recorded::Counted, "{name}");
        assert_eq!(call(&b, Success, ms(200)), Recorded::Counted, "{name}");
        let m = b.metrics();
        let want: [u64; 4] = if metrics { [6, 1, 0, 1] } else { [0; 4] };
        let mut got = [0; 4];
        for o in [Success, Failure, Timeout, Ignored] {
            got[o as usize] = m.outcome(o);
        }
        let mut expected = [0; 4];
        expected[Success as usize] = want[0];
        expected[Failure as usize] = want[1];
        expected[Timeout as usize] = want[2];
        expected[Ignored as usize] = want[3];
        assert_eq!(got, expected, "{name}: outcomes");
        let slow_policy = b.config().slow_call().is_some();
        assert_eq!(m.slow, u64::from(metrics && slow_policy), "{name}: slow");
        let latency = b.latency();
        assert_eq!(latency.is_some(), histogram, "{name}");
        if let Some(h) = latency {
            // Every outcome but the neutral one is a latency sample.
            assert_eq!(h.count(), 7, "{name}: histogram samples");
        }
        if b.config().ewma().is_some() || b.config().failure_rate().is_some() {
            // 6 successes and 1 failure in the window or the EWMA.
            assert!(
                m.window_calls >= 7,
                "{name}: window calls {}",
                m.window_calls
            );
        }
    }
}

#[test]
fn every_shape_trips_by_its_own_policy() {
    for (name, builder) in shapes() {
        let config = builder.build().expect(name);
        let (b, _clock, log) = manual(config, START);
        for _ in 0..4 {
            call(&b, Success, ms(1));
        }
        let slow = b.config().slow_call().is_some();
        let mut outcome = Recorded::Counted;
        for _ in 0..20 {
            outcome = if slow {
                call(&b, Success, ms(200))
            } else {
                call(&b, Failure, ms(1))
            };
            if outcome != Recorded::Counted {
                break;
            }
        }
        assert_eq!(outcome, Recorded::Transitioned(State::Open), "{name}");
        let reason = log.take().last().expect("a transition").reason;
        let want = if slow {
            Reason::SlowCallRate
        } else if b.config().ewma().is_some() {
            Reason::EwmaFailureRate
        } else if b.config().failure_rate().is_some() {
            Reason::FailureRate
        } else {
            Reason::ConsecutiveFailures
        };
        assert_eq!(reason, want, "{name}");
    }
}

#[test]
fn a_success_ends_the_run_of_failures_on_the_short_form() {
    let config = quiet().consecutive_failures(Some(3)).build().unwrap();
    let (b, _clock, _log) = manual(config, START);
    for _ in 0..10 {
        assert_eq!(call(&b, Failure, ms(1)), Recorded::Counted);
        assert_eq!(call(&b, Failure, ms(1)), Recorded::Counted);
        assert_eq!(call(&b, Success, ms(1)), Recorded::Counted);
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(call(&b, Failure, ms(1)), Recorded::Counted);
    assert_eq!(call(&b, Failure, ms(1)), Recorded::Counted);
    assert_eq!(
        call(&b, Failure, ms(1)),
        Recorded::Transitioned(State::Open)
    );
}

/// Several threads take turns on one breaker, so records leave the short
/// form (another thread owns the inline cell) and the cells stripe; every
/// outcome is still counted once, and every latency sample kept.
#[test]
fn records_from_many_threads_are_counted_exactly_on_every_shape() {
    const THREADS: u64 = 4;
    const CALLS: u64 = 20_000;
    for (name, builder) in shapes() {
        // Successes and neutral outcomes only: nothing trips.
        let config: Config = builder.build().expect(name);
        let metrics = config.metrics_enabled();
        let b = Arc::new(Breaker::new(config));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    for i in 0..CALLS {
                        let o = if (i + t) % 4 == 0 { Ignored } else { Success };
                        call(&b, o, ms(1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = b.metrics();
        let total = THREADS * CALLS;
        let ign = if metrics { total / 4 } else { 0 };
        let ok = if metrics { total - total / 4 } else { 0 };
        assert_eq!(m.outcome(Success), ok, "{name}");
        assert_eq!(m.outcome(Ignored), ign, "{name}");
        if let Some(h) = b.latency() {
            assert_eq!(h.count(), total - total / 4, "{name}: histogram samples");
        }
        assert_eq!(b.state(), State::Closed, "{name}");
    }
}

/// `Breaker::record_success_short` (the C ABI's record leaf) records
/// exactly what `record` would, or nothing at all: true only for the
/// shapes without a window, EWMA or histogram, on a CLOSED permit of the
/// current generation, from the thread owning the inline cell.
#[test]
fn the_short_record_does_what_record_would_or_nothing() {
    use circuit_core::{Override, Permit};
    for (name, builder) in shapes() {
        let config = builder.build().expect(name);
        let metrics = config.metrics_enabled();
        let short = config.latency_histogram().is_none()
            && config.ewma().is_none()
            && config.failure_rate().is_none()
            && config.slow_call().is_none();
        let (b, _clock, _log) = manual(config, START);
        let successes = |b: &Breaker| b.metrics().outcome(Success);
        // Own the inline cell, then two failures of a run of three.
        call(&b, Success, ms(1));
        call(&b, Failure, ms(1));
        call(&b, Failure, ms(1));
        let before = successes(&b);
        let p = b.acquire().expect("admitted");
        assert_eq!(b.record_success_short(p), short, "{name}");
        if short {
            assert_eq!(successes(&b), before + u64::from(metrics), "{name}");
            // The success ended the run: two more failures do not trip.
            call(&b, Failure, ms(1));
            call(&b, Failure, ms(1));
            assert_eq!(b.state(), State::Closed, "{name}");
        } else {
            // Nothing done: the permit is still outstanding.
            assert_eq!(successes(&b), before, "{name}");
            assert_eq!(b.record(p, Success, ms(1)), Recorded::Counted, "{name}");
        }
        // Never a stale permit, a probe's flags, or a permit under an
        // override: those are `record`'s, and stay untouched here.
        let stale = Permit::from_raw(b.generation().wrapping_sub(1), 0);
        let probe = Permit::from_raw(b.generation(), 1);
        let before = b.metrics();
        assert!(!b.record_success_short(stale), "{name}: stale");
        assert!(!b.record_success_short(probe), "{name}: probe");
        b.force(Override::ForcedClosed, None);
        let forced = b.acquire().expect("admitted");
        assert!(!b.record_success_short(forced), "{name}: override");
        assert_eq!(
            b.metrics().outcome(Success),
            before.outcome(Success),
            "{name}"
        );
        assert_eq!(b.metrics().stale, before.stale, "{name}: stale count");
    }
}

/// Another thread than the inline cell's owner never takes the short form
/// while metrics are kept (its counts belong on a stripe); without metrics
/// there is no cell, and it does.
#[test]
fn the_short_record_leaves_other_threads_to_record() {
    for metrics in [true, false] {
        let config = quiet()
            .consecutive_failures(Some(3))
            .metrics(metrics)
            .build()
            .unwrap();
        let b = Arc::new(Breaker::new(config));
        // The first record claims the inline cell: `record`'s work.
        let p = b.acquire().expect("admitted");
        assert_eq!(
            b.record_success_short(p),
            !metrics,
            "unclaimed, metrics {metrics}"
        );
        if metrics {
            assert_eq!(b.record(p, Success, ms(1)), Recorded::Counted);
        }
        let p = b.acquire().expect("admitted");
        assert!(b.record_success_short(p), "owner, metrics {metrics}");
        let other = Arc::clone(&b);
        let took = std::thread::spawn(move || {
            let p = other.acquire().expect("admitted");
            let took = other.record_success_short(p);
            if !took {
                assert_eq!(other.record(p, Success, ms(1)), Recorded::Counted);
            }
            took
        })
        .join()
        .unwrap();
        assert_eq!(took, !metrics, "metrics {metrics}");
        assert_eq!(b.metrics().outcome(Success), if metrics { 3 } else { 0 });
    }
}
