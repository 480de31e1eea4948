//! Scenario tests of live reconfiguration (invariant 18), on a manual clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use circuit_core::{
    Breaker, Clock, Config, ConfigBuilder, ManualClock, Outcome, RampPolicy, Recorded, Registry,
    RegistryError, RegistryOptions, RejectReason, State,
};
use common::{manual, ms, quiet, MS};
use Outcome::{Failure, Success};

const START: u64 = 1_000 * MS;

fn call(b: &Breaker, outcome: Outcome) -> Recorded {
    let p = b.acquire().expect("admitted");
    b.record(p, outcome, ms(1))
}

fn counted(b: &Breaker, outcomes: &[Outcome]) {
    for &o in outcomes {
        assert_eq!(call(b, o), Recorded::Counted);
    }
}

fn count_window(size: u32, rate: f64) -> ConfigBuilder {
    quiet()
        .failure_rate(Some(rate))
        .minimum_calls(1)
        .count_window(size)
        .open_duration(ms(100))
}

#[test]
fn thresholds_change_and_the_consecutive_count_is_kept() {
    let (b, _clock, log) = manual(
        quiet().consecutive_failures(Some(5)).build().unwrap(),
        START,
    );
    counted(&b, &[Success, Failure, Failure, Failure]);
    let generation = b.generation();
    b.reconfigure(quiet().consecutive_failures(Some(4)).build().unwrap())
        .unwrap();
    assert_eq!(b.config().consecutive_failures(), Some(4));
    assert_eq!(b.generation(), generation, "no transition");
    assert!(log.take().is_empty());
    let m = b.metrics();
    assert_eq!((m.outcome(Success), m.outcome(Failure)), (1, 3));
    // The three failures still count: the fourth trips at the new threshold.
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
}

#[test]
fn a_smaller_count_window_keeps_the_most_recent_outcomes() {
    let (b, _clock, _) = manual(count_window(10, 0.9).build().unwrap(), START);
    // Oldest first: a success, 5 failures, 4 successes.
    counted(&b, &[Success]);
    counted(&b, &[Failure; 5]);
    counted(&b, &[Success; 4]);
    assert_eq!(b.metrics().window_calls, 10);
    b.reconfigure(count_window(5, 0.9).build().unwrap())
        .unwrap();
    // The last 5: one failure, four successes.
    let m = b.metrics();
    assert_eq!(m.window_calls, 5);
    assert!((m.failure_rate - 0.2).abs() < 1e-9, "{}", m.failure_rate);
    // Growing again keeps what the window holds (5), then fills up.
    b.reconfigure(count_window(8, 0.9).build().unwrap())
        .unwrap();
    assert_eq!(b.metrics().window_calls, 5);
    counted(&b, &[Success; 3]);
    let m = b.metrics();
    assert_eq!(m.window_calls, 8);
    assert!((m.failure_rate - 0.125).abs() < 1e-9, "{}", m.failure_rate);
    // And the new threshold trips on the resized window's rate (the
    // failure slides out, this one comes in: 1 of 8).
    b.reconfigure(count_window(8, 0.125).build().unwrap())
        .unwrap();
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
}

#[test]
fn a_time_window_of_another_shape_keeps_the_buckets_it_covers() {
    let config = |d, n| {
        quiet()
            .failure_rate(Some(0.99))
            .minimum_calls(1)
            .time_window(ms(d), n)
            .build()
            .unwrap()
    };
    let (b, clock, _) = manual(config(1_000, 10), START);
    // One outcome per 100 ms bucket for 1 s, failures in the last 300 ms.
    for k in 0..10 {
        counted(&b, &[if k >= 7 { Failure } else { Success }]);
        clock.advance(ms(100));
    }
    clock.set(clock.now() - 50 * MS);
    assert_eq!(b.metrics().window_calls, 10);
    // 400 ms in 2 buckets of 200 ms: the old buckets that start within the
    // last two 200 ms buckets (4 outcomes, 3 failures).
    b.reconfigure(config(400, 2)).unwrap();
    let m = b.metrics();
    assert_eq!(m.window_calls, 4);
    assert!((m.failure_rate - 0.75).abs() < 1e-9, "{}", m.failure_rate);
    // Count to time and back: nothing carries across kinds.
    b.reconfigure(count_window(10, 0.99).build().unwrap())
        .unwrap();
    assert_eq!(b.metrics().window_calls, 0);
}

#[test]
fn an_open_breaker_stays_open_and_a_new_open_duration_applies_next_time() {
    let (b, clock, log) = manual(
        quiet()
            .consecutive_failures(Some(1))
            .open_duration(ms(100))
            .build()
            .unwrap(),
        START,
    );
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
    let deadline = b.open_deadline().unwrap();
    let generation = b.generation();
    log.take();
    b.reconfigure(
        quiet()
            .consecutive_failures(Some(1))
            .open_duration(ms(1_000))
            .half_open_probes(2)
            .half_open_successes(2)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.generation(), generation);
    assert_eq!(b.open_deadline(), Some(deadline), "the deadline stands");
    assert!(log.take().is_empty());
    clock.advance(ms(100));
    // Two probes now, and two successes to close.
    let p1 = b.acquire().unwrap();
    let p2 = b.acquire().unwrap();
    assert!(p1.is_probe() && p2.is_probe());
    assert_eq!(b.acquire().unwrap_err().reason, RejectReason::HalfOpenFull);
    assert_eq!(b.record(p1, Success, ms(1)), Recorded::Counted);
    assert_eq!(
        b.record(p2, Success, ms(1)),
        Recorded::Transitioned(State::Closed)
    );
    // The next opening lasts the new open duration.
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
    assert_eq!(b.open_deadline(), Some(clock.now() + 1_000 * MS));
}

#[test]
fn a_ramp_under_way_follows_the_new_policy_and_keeps_its_end() {
    let ramp = |start| {
        quiet()
            .consecutive_failures(Some(1))
            .open_duration(ms(100))
            .ramp(Some(RampPolicy {
                start,
                duration: ms(1_000),
                steps: 0,
            }))
            .build()
            .unwrap()
    };
    let (b, clock, _) = manual(ramp(0.1), START);
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
    clock.advance(ms(100));
    let probe = b.acquire().unwrap();
    assert_eq!(
        b.record(probe, Success, ms(1)),
        Recorded::Transitioned(State::Closed)
    );
    clock.advance(ms(500));
    let before = b.ramp_fraction().unwrap();
    assert!((before - 0.55).abs() < 0.01, "{before}");
    b.reconfigure(ramp(0.5)).unwrap();
    let after = b.ramp_fraction().unwrap();
    assert!((after - 0.75).abs() < 0.01, "{after}");
    // Without a ramp, the next acquire ends it.
    b.reconfigure(quiet().consecutive_failures(Some(1)).build().unwrap())
        .unwrap();
    assert_eq!(b.ramp_fraction(), None);
    assert!(b.acquire().is_ok());
}

#[test]
fn a_refused_config_changes_nothing() {
    let (b, _clock, _) = manual(count_window(10, 0.9).build().unwrap(), START);
    counted(&b, &[Success, Failure]);
    let before = b.config().clone();
    let e = b
        .reconfigure(
            count_window(4, 0.9)
                .latency_histogram(Some(Duration::from_secs(10)))
                .build()
                .unwrap(),
        )
        .unwrap_err();
    assert_eq!(e.field, "latency_histogram");
    assert_eq!(*b.config(), before);
    assert_eq!(b.metrics().window_calls, 2);
    // The builder's own rules refuse a bad config before any breaker sees
    // it (the one source of truth).
    assert!(count_window(0, 0.5).build().is_err());
}

#[test]
fn flipping_between_two_configs_keeps_two_of_each() {
    let (b, _clock, _) = manual(count_window(64, 0.9).build().unwrap(), START);
    let small = count_window(16, 0.9).build().unwrap();
    let large = count_window(512, 0.9).build().unwrap();
    b.reconfigure(small.clone()).unwrap();
    b.reconfigure(large.clone()).unwrap();
    b.reconfigure(small.clone()).unwrap();
    let settled = b.memory_bytes();
    for _ in 0..1_000 {
        b.reconfigure(large.clone()).unwrap();
        counted(&b, &[Success]);
        b.reconfigure(small.clone()).unwrap();
    }
    assert_eq!(b.memory_bytes(), settled, "bounded by distinct shapes");
    // Back to the first shape: the inline window again, seeded with the
    // 16 outcomes the small window held.
    b.reconfigure(count_window(64, 0.9).build().unwrap())
        .unwrap();
    assert_eq!(b.metrics().window_calls, 16);
}

#[test]
fn a_window_dropped_and_restored_starts_from_what_is_left() {
    let (b, _clock, _) = manual(count_window(10, 0.9).build().unwrap(), START);
    counted(&b, &[Success, Failure, Success]);
    b.reconfigure(quiet().consecutive_failures(Some(3)).build().unwrap())
        .unwrap();
    assert_eq!(b.metrics().window_calls, 0);
    counted(&b, &[Failure, Failure]);
    b.reconfigure(count_window(10, 0.5).build().unwrap())
        .unwrap();
    // No window in between: it starts empty.
    assert_eq!(b.metrics().window_calls, 0);
    counted(&b, &[Success]);
    assert_eq!(call(&b, Failure), Recorded::Transitioned(State::Open));
}

#[test]
fn the_registry_reconfigures_the_breaker_of_a_name() {
    let clock = Arc::new(ManualClock::new(START));
    let r = Registry::with_clock(
        RegistryOptions {
            defaults: quiet().consecutive_failures(Some(5)).build().unwrap(),
            ..RegistryOptions::default()
        },
        clock.clone() as Arc<dyn Clock>,
    );
    let db = r.get_or_create("db").unwrap();
    counted(&db, &[Failure, Failure]);
    r.reconfigure("db", quiet().consecutive_failures(Some(3)).build().unwrap())
        .unwrap();
    assert_eq!(db.config().consecutive_failures(), Some(3));
    assert_eq!(call(&db, Failure), Recorded::Transitioned(State::Open));
    // A name with no breaker yet: its breaker is created with it.
    r.reconfigure(
        "cache",
        quiet().consecutive_failures(Some(2)).build().unwrap(),
    )
    .unwrap();
    let cache = r.get_or_create("cache").unwrap();
    assert_eq!(cache.config().consecutive_failures(), Some(2));
    // Others keep the defaults.
    assert_eq!(
        r.get_or_create("other")
            .unwrap()
            .config()
            .consecutive_failures(),
        Some(5)
    );
    // Bad input changes nothing.
    assert_eq!(
        r.reconfigure("", Config::default()),
        Err(RegistryError::EmptyName)
    );
    let refused = quiet()
        .latency_histogram(Some(Duration::from_secs(5)))
        .build()
        .unwrap();
    assert!(matches!(
        r.reconfigure("db", refused),
        Err(RegistryError::InvalidConfig(e)) if e.field == "latency_histogram"
    ));
    assert_eq!(db.config().consecutive_failures(), Some(3));
    r.remove("db");
    assert_eq!(
        r.get_or_create("db")
            .unwrap()
            .config()
            .consecutive_failures(),
        Some(3),
        "the name keeps its config"
    );
}

/// Threads record while the config flips between window sizes and
/// thresholds: every outcome is counted once, nothing trips that should
/// not (successes only), and the window never holds more than its size.
#[test]
fn concurrent_records_during_reconfigurations_stay_exact() {
    let b = Arc::new(Breaker::with_clock(
        count_window(64, 0.5).build().unwrap(),
        Arc::new(ManualClock::new(START)),
    ));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    let p = b.acquire().expect("only successes: closed");
                    assert_eq!(b.record(p, Success, ms(1)), Recorded::Counted);
                }
            })
        })
        .collect();
    for i in 0..2_000u32 {
        let size = [64, 8, 300][i as usize % 3];
        b.reconfigure(count_window(size, 0.5).build().unwrap())
            .unwrap();
        assert!(b.metrics().window_calls <= 300);
    }
    for t in threads {
        t.join().unwrap();
    }
    let m = b.metrics();
    assert_eq!(m.outcome(Success), 60_000);
    assert_eq!(b.state(), State::Closed);
}

/// A config read back from a reconfigured breaker (whose window moved) is
/// an ordinary config: a breaker built from it, or a breaker reconfigured
/// with it, has a working window of its own.
#[test]
fn a_config_read_back_after_a_resize_builds_ordinary_breakers() {
    let (b, _clock, _) = manual(count_window(10, 0.9).build().unwrap(), START);
    b.reconfigure(count_window(4, 0.5).build().unwrap())
        .unwrap();
    let copy = b.config().clone();
    assert_eq!(copy, count_window(4, 0.5).build().unwrap());
    for c in [manual(copy.clone(), START).0, {
        let (c, _, _) = manual(count_window(4, 0.5).build().unwrap(), START);
        c.reconfigure(count_window(8, 0.5).build().unwrap())
            .unwrap();
        c.reconfigure(copy.clone()).unwrap();
        c
    }] {
        counted(&c, &[Success]);
        assert_eq!(c.metrics().window_calls, 1);
        assert_eq!(call(&c, Failure), Recorded::Transitioned(State::Open));
    }
}

/// A breaker created while its name is reconfigured ends with the last
/// config set for the name, whichever wins the race (`Registry::catch_up`).
#[test]
fn a_breaker_created_during_a_registry_reconfigure_gets_the_new_config() {
    for round in 0..200 {
        let r = Arc::new(Registry::new(RegistryOptions {
            defaults: quiet().consecutive_failures(Some(5)).build().unwrap(),
            ..RegistryOptions::default()
        }));
        let name = format!("db-{round}");
        let creator = {
            let (r, name) = (r.clone(), name.clone());
            std::thread::spawn(move || r.get_or_create(&name).unwrap())
        };
        r.reconfigure(
            &name,
            quiet().consecutive_failures(Some(2)).build().unwrap(),
        )
        .unwrap();
        let b = creator.join().unwrap();
        assert_eq!(b.config().consecutive_failures(), Some(2), "round {round}");
    }
}
