//! Count window of two slots under concurrent records (invariant 6): slots
//! are reused while their previous writer may still be in flight, and the
//! window is cleared while records are in flight. Whatever the interleaving,
//! once every record has landed the window's counts must equal what its
//! slots hold. The slots are not public, so each model checks that by
//! driving the window afterwards from one thread: two records overwrite
//! both slots, after which the counts are known exactly; a count that
//! drifted from the slots stays wrong (the window keeps counts by deltas
//! against what each slot held and never recounts).
//!
//! loom 0.7 does not keep a plain `store` from slipping between the read
//! and the write of another thread's concurrent RMW in the modification
//! order (tokio-rs/loom#254), so a word written by both can later read a
//! value no real execution produces. The checks here therefore rest on the
//! slots and counts (RMW only since `clear` swaps), not on where the cursor
//! stands after a clear (`clear` still resets it with a store): two records
//! in a row fill a two-slot window wherever it starts.

use std::time::Duration;

use circuit_core::{Breaker, ConfigBuilder, Outcome, Reason, Recorded, State};
use loom::thread;

use crate::common::{config, long_model, model, rig, Rig};

const MS: Duration = Duration::from_millis(1);

/// Trips only when both slots hold a failure.
fn window_config() -> ConfigBuilder {
    config()
        .consecutive_failures(None)
        .failure_rate(Some(1.0))
        .minimum_calls(2)
        .count_window(2)
}

fn record(b: &Breaker, outcome: Outcome) -> Recorded {
    let p = b.acquire().expect("closed admits");
    b.record(p, outcome, MS)
}

/// (failure rate, calls in the window) as the metrics report them.
fn window(b: &Breaker) -> (f64, u64) {
    let m = b.metrics();
    (m.failure_rate, m.window_calls)
}

/// From one thread, on a CLOSED breaker whose in-flight records have all
/// landed: two successes make the window exactly {S, S}, then a failure
/// {S, F} (no trip), then another failure {F, F}, which must trip. Positive
/// drift shows in the first step, negative drift in the last.
fn flush_and_check(rig: &Rig) {
    let b = &rig.breaker;
    let before = rig.log.sorted().len();
    assert_eq!(record(b, Outcome::Success), Recorded::Counted);
    assert_eq!(record(b, Outcome::Success), Recorded::Counted);
    assert_eq!(window(b), (0.0, 2), "window holds two successes");
    assert_eq!(record(b, Outcome::Failure), Recorded::Counted);
    assert_eq!(window(b), (0.5, 2), "window holds one failure");
    assert_eq!(
        record(b, Outcome::Failure),
        Recorded::Transitioned(State::Open),
        "window holds two failures: {:?}",
        window(b)
    );
    let ts = rig.log.sorted();
    assert_eq!(ts.len(), before + 1);
    assert_eq!(ts[before].reason, Reason::FailureRate);
}

/// Three records (one failure, two successes) into two slots, so one slot
/// is written twice, possibly by two records in flight at once. With one
/// failure among them the window can never hold two, so nothing trips; once
/// they land the counts match the slots.
#[test]
fn slot_reuse_conserves_counts() {
    model(|| {
        let rig = rig(window_config());
        let threads: Vec<_> = [Outcome::Success, Outcome::Success]
            .into_iter()
            .map(|o| {
                let rig = rig.clone();
                thread::spawn(move || record(&rig.breaker, o))
            })
            .collect();
        let mine = record(&rig.breaker, Outcome::Failure);
        let mut results = vec![mine];
        results.extend(threads.into_iter().map(|t| t.join().unwrap()));
        assert!(
            results.iter().all(|r| *r == Recorded::Counted),
            "{results:?}"
        );
        assert_eq!(rig.log.sorted().len(), 0, "nothing can trip");
        let (rate, calls) = window(&rig.breaker);
        assert_eq!(calls, 2);
        assert!(rate == 0.0 || rate == 0.5, "at most one failure: {rate}");
        flush_and_check(&rig);
    });
}

/// Two failures into an empty two-slot window: at most one trip; if the
/// interleaving left neither record seeing both (each judges from its own
/// RMW), the window still holds two failures and the next failure trips.
#[test]
fn full_window_trips_now_or_next() {
    model(|| {
        let rig = rig(window_config());
        let other = {
            let rig = rig.clone();
            thread::spawn(move || record(&rig.breaker, Outcome::Failure))
        };
        let mine = record(&rig.breaker, Outcome::Failure);
        let results = [mine, other.join().unwrap()];
        let ts = rig.assert_chain(State::Closed, 0);
        match ts.len() {
            1 => assert!(results.contains(&Recorded::Transitioned(State::Open))),
            0 => {
                assert_eq!(window(&rig.breaker), (1.0, 2));
                assert_eq!(
                    record(&rig.breaker, Outcome::Failure),
                    Recorded::Transitioned(State::Open)
                );
            }
            _ => panic!("{ts:?}"),
        }
    });
}

/// `reset` clears the window while a record of the old generation is in
/// flight. The record may land before the clear, after it (one stray
/// sample, invariant 6) or be stale, but it must land whole: the counts
/// still match the slots afterwards.
fn reset_vs_record(prefill: &'static [Outcome], outcome: Outcome) {
    model(move || {
        let rig = rig(window_config());
        for &o in prefill {
            assert_eq!(record(&rig.breaker, o), Recorded::Counted);
        }
        let p = rig.breaker.acquire().unwrap();
        let recorder = {
            let rig = rig.clone();
            thread::spawn(move || rig.breaker.record(p, outcome, MS))
        };
        rig.breaker.reset();
        let r = recorder.join().unwrap();
        assert!(matches!(r, Recorded::Counted | Recorded::Stale), "{r:?}");
        let ts = rig.assert_chain(State::Closed, 0);
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0].reason, Reason::Reset);
        flush_and_check(&rig);
    });
}

/// The in-flight record writes a failure over an empty slot (+1).
#[test]
fn reset_vs_record_failure() {
    reset_vs_record(&[Outcome::Success], Outcome::Failure);
}

/// The in-flight record writes a success over a failure (-1).
#[test]
fn reset_vs_record_success() {
    reset_vs_record(&[Outcome::Failure, Outcome::Success], Outcome::Success);
}

/// A sixteen-slot window: under loom a contended window has four lanes
/// (`2 x` the CPUs, at least 4) and runs of `16 / 4 = 4` tickets, so
/// a lane takes and uses up runs within a few records.
fn lanes_config() -> ConfigBuilder {
    config()
        .consecutive_failures(None)
        .failure_rate(Some(1.0))
        .minimum_calls(16)
        .count_window(16)
}

/// As `flush_and_check`, for the sixteen-slot window: from one thread,
/// twenty successes leave sixteen successes in the window (the last
/// sixteen of one thread's records are consecutive tickets, whatever runs
/// other lanes hold), fifteen failures leave it one short of tripping, and
/// the sixteenth trips. Counts that drifted from the slots show at one
/// step or the other.
fn flush_sixteen_and_check(rig: &Rig) {
    let b = &rig.breaker;
    let before = rig.log.sorted().len();
    for _ in 0..20 {
        assert_eq!(record(b, Outcome::Success), Recorded::Counted);
    }
    assert_eq!(window(b), (0.0, 16), "window holds sixteen successes");
    for _ in 0..15 {
        assert_eq!(record(b, Outcome::Failure), Recorded::Counted);
    }
    assert_eq!(window(b), (15.0 / 16.0, 16), "fifteen failures");
    assert_eq!(
        record(b, Outcome::Failure),
        Recorded::Transitioned(State::Open),
        "window holds sixteen failures: {:?}",
        window(b)
    );
    let ts = rig.log.sorted();
    assert_eq!(ts.len(), before + 1);
    assert_eq!(ts[before].reason, Reason::FailureRate);
}

/// Invariant 16: two threads take turns on the breaker until its owner
/// word says contended (one hand-off under loom), so the window switches
/// to lanes (allocated by whichever record sees it first, possibly both at
/// once) while the other thread records and while `reset` clears the
/// window. Whatever the interleaving, nothing trips, and once every record
/// has landed the counts match the slots.
#[test]
fn switch_to_lanes_races_records_and_a_clear() {
    long_model(|| {
        let rig = rig(lanes_config());
        assert_eq!(record(&rig.breaker, Outcome::Success), Recorded::Counted);
        let other = {
            let rig = rig.clone();
            thread::spawn(move || {
                [Outcome::Failure, Outcome::Success].map(|o| record(&rig.breaker, o))
            })
        };
        let mine = record(&rig.breaker, Outcome::Failure);
        rig.breaker.reset();
        let theirs = other.join().unwrap();
        assert_eq!(mine, Recorded::Counted);
        for r in theirs {
            assert!(matches!(r, Recorded::Counted | Recorded::Stale), "{r:?}");
        }
        let ts = rig.assert_chain(State::Closed, 0);
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0].reason, Reason::Reset);
        flush_sixteen_and_check(&rig);
    });
}
