//! Scenario tests of snapshot and restore (`Breaker::snapshot`,
//! `Breaker::restore`), on manual clocks. A manual clock is both the
//! monotonic and the wall clock, so "restore 3 s later" is a new breaker on
//! a clock reading 3 s past the exporting one: a new process, whose
//! monotonic readings have nothing to do with the old one's.

mod common;

use std::sync::Arc;
use std::time::Duration;

use circuit_core::{
    Breaker, Clock, Config, ManualClock, Outcome, Override, RampPolicy, Reason, Recorded,
    RejectReason, SnapshotError, State,
};
use common::{manual, ms, quiet, MS};
use Outcome::{Failure, Success};

/// A wall-clock-like start (2026), where a real export would be dated.
const WALL: u64 = 1_780_000_000_000 * MS;
const S: u64 = 1_000 * MS;

/// One failure trips; open 10 s (doubling, capped at 60 s); one probe.
fn tripping() -> Config {
    quiet()
        .consecutive_failures(Some(1))
        .open_duration(Duration::from_secs(10))
        .max_open_duration(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn on_clock(config: Config, at: u64) -> (Breaker, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(at));
    (
        Breaker::with_clock(config, clock.clone() as Arc<dyn Clock>),
        clock,
    )
}

fn trip(b: &Breaker) {
    let p = b.acquire().expect("closed");
    assert_eq!(
        b.record(p, Failure, ms(1)),
        Recorded::Transitioned(State::Open)
    );
}

fn retry_after(b: &Breaker) -> Duration {
    let r = b.acquire().expect_err("should reject");
    r.retry_after.expect("a rejection with a deadline")
}

#[test]
fn an_open_breaker_restored_3_s_later_stays_open_for_the_7_s_left() {
    let (a, _) = on_clock(tripping(), WALL);
    trip(&a);
    assert_eq!(retry_after(&a), Duration::from_secs(10));
    let record = a.snapshot();

    // A new process, 3 s of wall clock later.
    let (b, clock, log) = manual(tripping(), WALL + 3 * S);
    b.restore(&record).expect("restores");
    assert_eq!(b.state(), State::Open);
    assert_eq!(retry_after(&b), Duration::from_secs(7));
    let t = log.take();
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].from, t[0].to, t[0].reason),
        (State::Closed, State::Open, Reason::Restored)
    );
    assert_eq!(t[0].open_for, 7 * S);

    clock.advance(Duration::from_millis(6_999));
    assert_eq!(b.acquire().unwrap_err().reason, RejectReason::Open);
    clock.advance(ms(1));
    let probe = b.acquire().expect("the 7 s are over: half-open");
    assert!(probe.is_probe());
    assert_eq!(b.state(), State::HalfOpen);
}

#[test]
fn a_wall_clock_set_back_never_keeps_it_open_longer_than_it_had_left() {
    let (a, _) = on_clock(tripping(), WALL);
    trip(&a);
    let record = a.snapshot();
    let (b, clock) = on_clock(tripping(), WALL - 3_600 * S);
    b.restore(&record).unwrap();
    assert_eq!(retry_after(&b), Duration::from_secs(10));
    clock.advance(Duration::from_secs(10));
    assert!(b.acquire().unwrap().is_probe());
}

#[test]
fn a_wall_clock_past_the_deadline_restores_an_open_breaker_ready_to_probe() {
    let (a, _) = on_clock(tripping(), WALL);
    trip(&a);
    let record = a.snapshot();
    let (b, _) = on_clock(tripping(), WALL + 3_600 * S);
    b.restore(&record).unwrap();
    assert!(b.acquire().expect("deadline passed").is_probe());
}

#[test]
fn the_backoff_level_survives_a_restart() {
    let (a, clock) = on_clock(tripping(), WALL);
    trip(&a);
    clock.advance(Duration::from_secs(10));
    let p = a.acquire().unwrap();
    assert_eq!(
        a.record(p, Failure, ms(1)),
        Recorded::Transitioned(State::Open)
    );
    assert_eq!(retry_after(&a), Duration::from_secs(20)); // streak 1
    let record = a.snapshot();
    let (b, clock_b) = on_clock(tripping(), clock.now());
    b.restore(&record).unwrap();
    assert_eq!(retry_after(&b), Duration::from_secs(20));
    clock_b.advance(Duration::from_secs(20));
    let p = b.acquire().unwrap();
    b.record(p, Failure, ms(1));
    assert_eq!(retry_after(&b), Duration::from_secs(40)); // streak 2
}

/// Failure rate 50 % over the last 10 calls, at least 10 calls.
fn windowed(window: impl Fn(circuit_core::ConfigBuilder) -> circuit_core::ConfigBuilder) -> Config {
    window(quiet().failure_rate(Some(0.5)).minimum_calls(10))
        .build()
        .unwrap()
}

fn feed(b: &Breaker, outcomes: &[Outcome]) -> Vec<Recorded> {
    outcomes
        .iter()
        .map(|&o| {
            let p = b.acquire().expect("closed");
            b.record(p, o, ms(1))
        })
        .collect()
}

#[test]
fn a_restored_count_window_makes_the_same_trip_decision() {
    let config = || windowed(|c| c.count_window(10));
    // 12 outcomes: the window holds the last 10 (4 failures).
    let history = [
        Failure, Failure, Success, Failure, Success, Success, Failure, Success, Failure, Success,
        Success, Failure,
    ];
    let (a, _) = on_clock(config(), WALL);
    assert!(feed(&a, &history).iter().all(|r| *r == Recorded::Counted));
    let record = a.snapshot();
    let (b, _) = on_clock(config(), WALL + S);
    b.restore(&record).unwrap();
    assert_eq!(b.metrics().window_calls, 10);
    assert_eq!(b.metrics().failure_rate, a.metrics().failure_rate);

    // Each next outcome pushes out the oldest, in both: a success replaces
    // a success (4 of 10), a failure a failure (4 of 10), a failure a
    // success (5 of 10: trip).
    let next = [Success, Failure, Failure];
    let (fresh, _) = on_clock(config(), WALL);
    let from_a = feed(&a, &next);
    let from_b = feed(&b, &next);
    assert_eq!(from_a, from_b);
    assert_eq!(from_a.last(), Some(&Recorded::Transitioned(State::Open)));
    // Without the restored window the same calls trip nothing.
    assert!(feed(&fresh, &next).iter().all(|r| *r == Recorded::Counted));
}

#[test]
fn a_restored_time_window_ages_by_the_wall_time_that_passed() {
    // 10 s in ten 1 s buckets.
    let config = || windowed(|c| c.time_window(Duration::from_secs(10), 10));
    let (a, clock) = on_clock(config(), WALL);
    feed(&a, &[Failure, Failure, Failure, Failure]); // bucket at 0 s
    clock.advance(Duration::from_secs(5));
    feed(&a, &[Success, Success, Success, Success, Success]); // bucket at 5 s
    let record = a.snapshot();
    assert_eq!(a.metrics().window_calls, 9);

    // Restored 1 s later: all nine are still in the window; one failure
    // makes 5 of 10, which trips, in both breakers.
    let (b, _) = on_clock(config(), WALL + 6 * S);
    b.restore(&record).unwrap();
    assert_eq!(b.metrics().window_calls, 9);
    assert_eq!(
        feed(&b, &[Failure]),
        vec![Recorded::Transitioned(State::Open)]
    );

    // Restored 6 s later: the failures' bucket (11 s old) has left the
    // window, the successes' (6 s old) has not.
    let (c, _) = on_clock(config(), WALL + 11 * S);
    c.restore(&record).unwrap();
    let m = c.metrics();
    assert_eq!((m.window_calls, m.failure_rate), (5, 0.0));
}

#[test]
fn half_open_comes_back_with_its_successes_and_no_probe_held() {
    let config = || {
        quiet()
            .consecutive_failures(Some(1))
            .open_duration(Duration::from_secs(1))
            .half_open_probes(3)
            .half_open_successes(3)
            .probe_lease(Duration::from_secs(30))
            .build()
            .unwrap()
    };
    let (a, clock) = on_clock(config(), WALL);
    trip(&a);
    clock.advance(Duration::from_secs(1));
    let p1 = a.acquire().unwrap();
    let _p2 = a.acquire().unwrap();
    let _p3 = a.acquire().unwrap();
    assert_eq!(a.record(p1, Success, ms(1)), Recorded::Counted);
    // Two probes still held, one success.
    assert_eq!(a.acquire().unwrap_err().reason, RejectReason::HalfOpenFull);
    let record = a.snapshot();

    let (b, _) = on_clock(config(), clock.now() + S);
    b.restore(&record).unwrap();
    assert_eq!(b.state(), State::HalfOpen);
    // The old process's probes will never report: their slots are free
    // (two, beside the success kept), and two more successes close.
    let q1 = b.acquire().expect("slot 1");
    let q2 = b.acquire().expect("slot 2");
    assert_eq!(b.acquire().unwrap_err().reason, RejectReason::HalfOpenFull);
    assert_eq!(b.record(q1, Success, ms(1)), Recorded::Counted);
    assert_eq!(
        b.record(q2, Success, ms(1)),
        Recorded::Transitioned(State::Closed)
    );
}

#[test]
fn an_override_keeps_what_was_left_of_its_expiry() {
    let (a, _) = on_clock(tripping(), WALL);
    a.force(Override::ForcedOpen, Some(Duration::from_secs(60)));
    let record = a.snapshot();
    let (b, clock) = on_clock(tripping(), WALL + 20 * S);
    b.restore(&record).unwrap();
    assert_eq!(b.state(), State::ForcedOpen);
    assert_eq!(retry_after(&b), Duration::from_secs(40));
    clock.advance(Duration::from_secs(40));
    assert_eq!(b.state(), State::Closed);

    // No expiry: forced open for good.
    a.force(Override::ForcedOpen, None);
    let (c, clock) = on_clock(tripping(), WALL + 3_600 * S);
    c.restore(&a.snapshot()).unwrap();
    clock.advance(Duration::from_secs(7 * 24 * 3600));
    assert_eq!(c.state(), State::ForcedOpen);
}

#[test]
fn a_ramp_resumes_with_what_was_left() {
    let config = || {
        quiet()
            .consecutive_failures(Some(1))
            .open_duration(ms(100))
            .ramp(Some(RampPolicy {
                start: 0.1,
                duration: Duration::from_secs(10),
                steps: 0,
            }))
            .build()
            .unwrap()
    };
    let (a, clock) = on_clock(config(), WALL);
    trip(&a);
    clock.advance(ms(100));
    let p = a.acquire().unwrap();
    a.record(p, Success, ms(1));
    clock.advance(Duration::from_secs(4));
    let before = a.ramp_fraction().expect("ramping");
    let record = a.snapshot();
    let (b, clock_b) = on_clock(config(), clock.now());
    b.restore(&record).unwrap();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.ramp_fraction(), Some(before));
    clock_b.advance(Duration::from_secs(6));
    assert_eq!(b.ramp_fraction(), None);
}

#[test]
fn restored_counters_add_to_the_breakers_own() {
    let (a, _) = on_clock(tripping(), WALL);
    feed(&a, &[Success, Success]);
    trip(&a);
    a.acquire().unwrap_err();
    let (b, _) = on_clock(tripping(), WALL);
    feed(&b, &[Success]);
    b.restore(&a.snapshot()).unwrap();
    let m = b.metrics();
    assert_eq!(m.outcome(Success), 3);
    assert_eq!(m.outcome(Failure), 1);
    assert_eq!(m.rejected[RejectReason::Open as usize], 1);
}

/// Everything observable about a breaker, to show a refused record changed
/// nothing.
fn observe(b: &Breaker) -> (State, u32, String) {
    let mut m = b.metrics();
    m.nanos_in_state = Default::default();
    (b.state(), b.generation(), format!("{m:?}"))
}

/// Sets a record's checksum for its (edited) bytes.
fn reseal(record: &mut [u8]) {
    let n = record.len() - 8;
    let sum = circuit_core::hash::Fnv::new().bytes(&record[..n]).finish();
    record[n..].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn every_bad_record_is_refused_with_its_own_error_and_changes_nothing() {
    let (a, _) = on_clock(tripping(), WALL);
    trip(&a);
    let good = a.snapshot();
    let (b, _) = on_clock(tripping(), WALL);
    feed(&b, &[Success]);
    let before = observe(&b);

    let e = b.restore(&good[..good.len() - 1]).unwrap_err();
    assert!(matches!(e, SnapshotError::Truncated { .. }), "{e}");
    assert_eq!(
        b.restore(&[]).unwrap_err(),
        SnapshotError::Truncated {
            found: 0,
            needed: 160
        }
    );

    let mut corrupt = good.clone();
    corrupt[50] ^= 0x10;
    assert_eq!(
        b.restore(&corrupt).unwrap_err(),
        SnapshotError::Corrupt("checksum")
    );

    let mut foreign = good.clone();
    foreign[..8].copy_from_slice(b"circshm\0");
    assert_eq!(b.restore(&foreign).unwrap_err(), SnapshotError::Foreign);
    assert_eq!(
        b.restore(b"{\"state\":\"open\"}").unwrap_err(),
        SnapshotError::Foreign
    );

    let mut newer = good.clone();
    newer[8] = 2;
    assert_eq!(b.restore(&newer).unwrap_err(), SnapshotError::Version(2));

    let other = quiet()
        .consecutive_failures(Some(2))
        .open_duration(Duration::from_secs(10))
        .max_open_duration(Duration::from_secs(60))
        .build()
        .unwrap();
    let (c, _) = on_clock(other, WALL);
    let e = c.restore(&good).unwrap_err();
    assert!(matches!(e, SnapshotError::ConfigMismatch { .. }), "{e}");
    assert!(e.to_string().contains("another config"));
    assert_eq!(c.state(), State::Closed);

    // Each error reads differently.
    let messages: std::collections::HashSet<String> = [
        b.restore(&good[..100]).unwrap_err(),
        b.restore(&corrupt).unwrap_err(),
        b.restore(&foreign).unwrap_err(),
        b.restore(&newer).unwrap_err(),
        e,
    ]
    .iter()
    .map(|e| e.to_string().split(':').next().unwrap().to_owned())
    .collect();
    assert_eq!(messages.len(), 5, "{messages:?}");

    // A sealed record with a field out of range.
    let mut bad_phase = good.clone();
    bad_phase[32] = 9;
    reseal(&mut bad_phase);
    assert_eq!(
        b.restore(&bad_phase).unwrap_err(),
        SnapshotError::Corrupt("phase")
    );
    assert_eq!(observe(&b), before);
}

#[test]
fn a_deadline_beyond_the_max_open_duration_is_clamped() {
    let (a, _) = on_clock(tripping(), WALL);
    trip(&a);
    let mut record = a.snapshot();
    record[40..48].copy_from_slice(&(3_600 * S).to_le_bytes()); // 1 h left?
    reseal(&mut record);
    let (b, _) = on_clock(tripping(), WALL);
    b.restore(&record).unwrap();
    assert_eq!(retry_after(&b), Duration::from_secs(60));
}

#[test]
// The stop flag is the test's own, outside the library: the loom shim rule
// of core/clippy.toml is for the core's atomics.
#[allow(clippy::disallowed_types)]
fn restoring_under_traffic_keeps_callers_and_the_window_consistent() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let config = || windowed(|c| c.count_window(64).open_duration(ms(1)));
    let (source, _) = on_clock(config(), WALL);
    feed(
        &source,
        &[
            Failure, Success, Success, Success, Failure, Success, Success,
        ],
    );
    let closed = source.snapshot();
    let closed_counts = source.metrics();
    let (opened, _) = on_clock(config(), WALL);
    opened.force(Override::ForcedOpen, Some(Duration::from_secs(1)));
    let forced = opened.snapshot();

    let b = Arc::new(on_clock(config(), WALL).0);
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let (b, stop, calls) = (b.clone(), stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    if let Ok(p) = b.acquire() {
                        let o = if (i + t) % 3 == 0 { Failure } else { Success };
                        let _ = b.record(p, o, ms(1));
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Restore only once the callers run, and go on until they have made
    // calls during the restores (the machine may be busy).
    while calls.load(Ordering::Relaxed) < 1_000 {
        std::thread::yield_now();
    }
    let before_restore = b.acquire();
    let at_start = calls.load(Ordering::Relaxed);
    let mut restores = 0;
    while restores < 300 || calls.load(Ordering::Relaxed) < at_start + 10_000 {
        let record = if restores % 2 == 0 { &closed } else { &forced };
        b.restore(record).unwrap();
        restores += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    // A permit from before the restores is stale.
    if let Ok(p) = before_restore {
        assert_eq!(b.record(p, Success, ms(1)), Recorded::Stale);
    }
    // Quiet now: one more restore gives exactly the recorded window, so
    // the concurrent ones left the window's counts agreeing with its slots.
    b.restore(&closed).unwrap();
    let m = b.metrics();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(m.window_calls, closed_counts.window_calls);
    assert_eq!(m.failure_rate, closed_counts.failure_rate);
    assert!(m.recorded() >= 300 / 2 * 7);
}
