//! HALF_OPEN: the probe bound, closing on K successes, and permits of a
//! generation that ended while they were out (invariants 3 and 9, B5, B6).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use circuit_core::{Outcome, Permit, Reason, Recorded, RejectReason, State, Transition};
use loom::thread;

use crate::common::{config, model, rig, Rig};

const MS: Duration = Duration::from_millis(1);

/// Probes admitted and probes reported `Ignored` (which free their slot),
/// per half-open generation. loom never switches threads inside it (it
/// touches no loom object), so a std `Mutex` adds no interleavings.
#[derive(Default)]
struct Probes(Mutex<HashMap<u32, (u32, u32)>>);

impl Probes {
    /// A probe was granted: the generation's slots held must stay within P.
    /// Ignored reports are counted before they are recorded, so this count
    /// is never below the breaker's own and the check cannot fail for a
    /// correct breaker.
    fn admitted(&self, p: &Permit, limit: u32) {
        let mut m = self.0.lock().unwrap();
        let e = m.entry(p.generation()).or_default();
        e.0 += 1;
        assert!(
            e.0 - e.1 <= limit,
            "generation {}: {} probes admitted, {} freed, limit {limit}",
            p.generation(),
            e.0,
            e.1
        );
    }

    fn freeing(&self, p: &Permit) {
        self.0.lock().unwrap().entry(p.generation()).or_default().1 += 1;
    }
}

/// Transitions a `record` makes (the others are made by `acquire`).
fn by_record(t: &Transition) -> bool {
    matches!(
        t.reason,
        Reason::ConsecutiveFailures | Reason::ProbeFailed | Reason::ProbesSucceeded
    )
}

/// Threads each acquire once and report `outcome` if admitted; the breaker
/// starts OPEN (generation 1, tripped by the model) with its deadline
/// passed. Checks the probe bound on every
/// grant and, after join, that the history is one chain whose
/// record-driven transitions match the `Recorded::Transitioned` results.
fn probes_race(rig: Arc<Rig>, probes: u32, outcomes: &'static [Outcome]) -> Vec<Transition> {
    let seen = Arc::new(Probes::default());
    let threads: Vec<_> = outcomes
        .iter()
        .map(|&outcome| {
            let (rig, seen) = (rig.clone(), seen.clone());
            thread::spawn(move || {
                let p = match rig.breaker.acquire() {
                    Ok(p) => p,
                    Err(r) => {
                        assert!(
                            matches!(r.reason, RejectReason::HalfOpenFull | RejectReason::Open),
                            "{r:?}"
                        );
                        return None;
                    }
                };
                if p.is_probe() {
                    seen.admitted(&p, probes);
                    if outcome == Outcome::Ignored {
                        seen.freeing(&p);
                    }
                }
                Some(rig.breaker.record(p, outcome, MS))
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ts = rig.assert_chain(State::Closed, 0);
    let transitioned = results
        .iter()
        .filter(|r| matches!(r, Some(Recorded::Transitioned(_))))
        .count();
    assert_eq!(
        transitioned,
        ts.iter()
            .filter(|t| t.generation > 1 && by_record(t))
            .count(),
        "{results:?} {ts:?}"
    );
    rig.assert_recovers();
    ts
}

/// P = K = 2, two probes succeed concurrently: both are admitted and the
/// breaker closes exactly once.
#[test]
fn two_successes_close_once() {
    model(|| {
        let rig = rig(config()
            .consecutive_failures(Some(1))
            .half_open_probes(2)
            .half_open_successes(2));
        rig.trip();
        rig.pass_deadlines();
        let ts = probes_race(rig.clone(), 2, &[Outcome::Success, Outcome::Success]);
        let reasons: Vec<_> = ts.iter().map(|t| t.reason).collect();
        assert_eq!(
            reasons,
            [
                Reason::ConsecutiveFailures,
                Reason::OpenDeadlinePassed,
                Reason::ProbesSucceeded
            ]
        );
        assert_eq!(rig.breaker.state(), State::Closed);
    });
}

/// P = K = 1, three threads report success, ignored and failure: never more
/// than one probe slot held per half-open generation, at most one way out
/// of it, and the history stays one chain.
#[test]
fn one_probe_mixed_outcomes() {
    model(|| {
        let rig = rig(config().consecutive_failures(Some(1)).half_open_probes(1));
        rig.trip();
        rig.pass_deadlines();
        let ts = probes_race(
            rig,
            1,
            &[Outcome::Success, Outcome::Ignored, Outcome::Failure],
        );
        assert_eq!(ts[1].reason, Reason::OpenDeadlinePassed);
    });
}

/// P = 2, K = 2, three contenders (two successes, one failure): at most two
/// slots held at once; a failure re-opens, two successes close, never both.
#[test]
fn two_probes_three_contenders() {
    model(|| {
        let rig = rig(config()
            .consecutive_failures(Some(2))
            .half_open_probes(2)
            .half_open_successes(2));
        rig.trip();
        rig.pass_deadlines();
        let ts = probes_race(
            rig,
            2,
            &[Outcome::Success, Outcome::Failure, Outcome::Success],
        );
        let out = ts.iter().filter(|t| t.from == State::HalfOpen).count();
        assert!(out <= 1, "{ts:?}");
    });
}

/// A probe of generation 2 reports while another thread finds its lease
/// expired and starts half-open generation 3 (P = K = 1). Exactly one of
/// them ends generation 2; if the lease expiry won, the old report is stale
/// and leaves generation 3 alone: its slot stays held (a further acquire is
/// refused) and only its own probe closes it.
fn stale_probe_vs_lease_expiry(outcome: Outcome) {
    model(move || {
        let rig = rig(config().consecutive_failures(Some(1)).half_open_probes(1));
        let old = rig.first_probe();
        rig.pass_deadlines(); // the probe's lease has expired
        let reporter = {
            let rig = rig.clone();
            thread::spawn(move || rig.breaker.record(old, outcome, MS))
        };
        let fresh = rig.breaker.acquire();
        let recorded = reporter.join().unwrap();
        let ts = rig.assert_chain(State::Closed, 0);
        match ts.get(2).map(|t| t.reason) {
            Some(Reason::ProbeLeaseExpired) => {
                assert_eq!(ts.len(), 3, "{ts:?}");
                assert_eq!(recorded, Recorded::Stale);
                let p = fresh.expect("the lease winner takes the first slot");
                assert!(p.is_probe() && p.generation() == 3, "{p:?}");
                let again = rig
                    .breaker
                    .acquire()
                    .expect_err("generation 3's slot is held");
                assert_eq!(again.reason, RejectReason::HalfOpenFull);
                assert_eq!(
                    rig.breaker.record(p, Outcome::Success, MS),
                    Recorded::Transitioned(State::Closed)
                );
            }
            Some(Reason::ProbesSucceeded) => {
                assert_eq!(outcome, Outcome::Success);
                assert_eq!(recorded, Recorded::Transitioned(State::Closed));
                let p = fresh.expect("closed admits");
                assert!(!p.is_probe() && p.generation() == 3, "{p:?}");
            }
            Some(Reason::ProbeFailed) => {
                assert_eq!(outcome, Outcome::Failure);
                assert_eq!(recorded, Recorded::Transitioned(State::Open));
                assert_eq!(fresh.unwrap_err().reason, RejectReason::Open);
            }
            None => {
                // The ignored report freed the slot first; the acquire took
                // it in the same generation.
                assert_eq!(outcome, Outcome::Ignored);
                assert_eq!(recorded, Recorded::Counted);
                let p = fresh.expect("the freed slot");
                assert!(p.is_probe() && p.generation() == 2, "{p:?}");
            }
            other => panic!("unexpected {other:?} in {ts:?}"),
        }
        assert_eq!(rig.log.sorted().len(), rig.breaker.generation() as usize);
    });
}

#[test]
fn stale_success_vs_lease_expiry() {
    stale_probe_vs_lease_expiry(Outcome::Success);
}

#[test]
fn stale_failure_vs_lease_expiry() {
    stale_probe_vs_lease_expiry(Outcome::Failure);
}

#[test]
fn stale_ignored_vs_lease_expiry() {
    stale_probe_vs_lease_expiry(Outcome::Ignored);
}

/// As above with two acquirers racing each other and the late report
/// (P = K = 1). The acquirers keep their permits, so whichever probe holds
/// the current half-open generation's slot at the end must still hold it:
/// a late report of generation 2 can never free or close a later one.
fn stale_probe_vs_two_acquirers(outcome: Outcome) {
    model(move || {
        let rig = rig(config().consecutive_failures(Some(1)).half_open_probes(1));
        let seen = Arc::new(Probes::default());
        let old = rig.first_probe();
        seen.admitted(&old, 1);
        rig.pass_deadlines(); // the probe's lease has expired
        let reporter = {
            let (rig, seen) = (rig.clone(), seen.clone());
            thread::spawn(move || {
                if outcome == Outcome::Ignored {
                    seen.freeing(&old);
                }
                rig.breaker.record(old, outcome, MS)
            })
        };
        let acquire = {
            let seen = seen.clone();
            move |rig: &Rig| {
                let r = rig.breaker.acquire();
                if let Ok(p) = &r {
                    if p.is_probe() {
                        seen.admitted(p, 1);
                    }
                }
                r
            }
        };
        let other = {
            let (rig, acquire) = (rig.clone(), acquire.clone());
            thread::spawn(move || acquire(&rig))
        };
        let mine = acquire(&rig);
        let fresh = [mine, other.join().unwrap()];
        let recorded = reporter.join().unwrap();
        let ts = rig.assert_chain(State::Closed, 0);
        let by_report = ts
            .iter()
            .filter(|t| t.generation > 2 && by_record(t))
            .count();
        assert_eq!(
            by_report,
            usize::from(matches!(recorded, Recorded::Transitioned(_))),
            "{recorded:?} {ts:?}"
        );
        // Generation 2 ends once at most, by the report or by a lease expiry.
        assert!(ts.iter().filter(|t| t.generation == 3).count() <= 1);
        if ts
            .iter()
            .any(|t| t.generation == 3 && t.reason == Reason::ProbeLeaseExpired)
        {
            assert!(
                matches!(recorded, Recorded::Stale | Recorded::Counted),
                "{recorded:?}"
            );
        }
        let gen = rig.breaker.generation();
        if rig.breaker.state() == State::HalfOpen {
            if let Some(p) = fresh.iter().flatten().find(|p| p.generation() == gen) {
                let again = rig.breaker.acquire().expect_err("the slot is held");
                assert_eq!(again.reason, RejectReason::HalfOpenFull, "{fresh:?} {ts:?}");
                assert_eq!(
                    rig.breaker.record(*p, Outcome::Success, MS),
                    Recorded::Transitioned(State::Closed)
                );
            }
        }
        rig.assert_recovers();
    });
}

#[test]
fn stale_success_vs_two_acquirers() {
    stale_probe_vs_two_acquirers(Outcome::Success);
}

#[test]
fn stale_ignored_vs_two_acquirers() {
    stale_probe_vs_two_acquirers(Outcome::Ignored);
}

/// Invariant 11: one probe permit reported twice at once (P = K = 2),
/// while a third thread takes the other slot: exactly one report counts,
/// the other is stale, and one success is not two (the breaker stays
/// HALF_OPEN until the second probe reports).
#[test]
fn one_probe_reported_twice_at_once_counts_once() {
    model(|| {
        let rig = rig(config()
            .consecutive_failures(Some(1))
            .half_open_probes(2)
            .half_open_successes(2));
        let p = rig.first_probe();
        let reporters: Vec<_> = (0..2)
            .map(|_| {
                let rig = rig.clone();
                thread::spawn(move || rig.breaker.record(p, Outcome::Success, MS))
            })
            .collect();
        let second = rig.breaker.acquire().expect("the second slot");
        let mut got: Vec<_> = reporters.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(got, [Recorded::Counted, Recorded::Stale]);
        assert_eq!(rig.breaker.state(), State::HalfOpen);
        assert_eq!(
            rig.breaker.record(second, Outcome::Success, MS),
            Recorded::Transitioned(State::Closed)
        );
    });
}
