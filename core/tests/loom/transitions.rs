//! CLOSED -> OPEN and OPEN -> HALF_OPEN races (DESIGN.md section 5,
//! invariant 3): exactly one thread wins each transition and only the winner
//! notifies.

use std::time::Duration;

use circuit_core::{Outcome, Reason, Recorded, RejectReason, State};
use loom::thread;

use crate::common::{config, model, rig};

const MS: Duration = Duration::from_millis(1);

/// Two threads each record a failure that meets the trip condition on its
/// own: one transition, one listener call, generation + 1, one
/// `Recorded::Transitioned`; the other record is counted (its CAS lost) or
/// stale (it loaded the new generation).
#[test]
fn closed_to_open_one_winner() {
    model(|| {
        let rig = rig(config().consecutive_failures(Some(1)));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let rig = rig.clone();
                thread::spawn(move || match rig.breaker.acquire() {
                    Ok(p) => Some(rig.breaker.record(p, Outcome::Failure, MS)),
                    Err(r) => {
                        assert_eq!(r.reason, RejectReason::Open);
                        None
                    }
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let won = results
            .iter()
            .filter(|r| **r == Some(Recorded::Transitioned(State::Open)))
            .count();
        assert_eq!(won, 1, "{results:?}");
        for r in results.iter().flatten() {
            assert!(
                matches!(
                    r,
                    Recorded::Transitioned(State::Open) | Recorded::Counted | Recorded::Stale
                ),
                "{results:?}"
            );
        }
        let ts = rig.assert_chain(State::Closed, 0);
        assert_eq!(ts.len(), 1, "{ts:?}");
        assert_eq!(ts[0].reason, Reason::ConsecutiveFailures);
        assert_eq!(rig.breaker.generation(), 1);
        assert!(rig.breaker.open_deadline().is_some());
    });
}

/// The consecutive-failure counter is one RMW: two failures against a
/// threshold of two trip exactly once whatever the interleaving (a lost
/// increment would trip never; a double count twice).
#[test]
fn closed_to_open_threshold_two() {
    model(|| {
        let rig = rig(config().consecutive_failures(Some(2)));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let rig = rig.clone();
                thread::spawn(move || {
                    let p = rig
                        .breaker
                        .acquire()
                        .expect("nothing can open before both record");
                    rig.breaker.record(p, Outcome::Failure, MS)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let won = results
            .iter()
            .filter(|r| **r == Recorded::Transitioned(State::Open))
            .count();
        assert_eq!(won, 1, "{results:?}");
        assert!(results.contains(&Recorded::Counted), "{results:?}");
        let ts = rig.assert_chain(State::Closed, 0);
        assert_eq!(ts.len(), 1);
    });
}

/// Past the open deadline, three threads acquire at once: one wins
/// OPEN -> HALF_OPEN (one listener call) and, with P probes, exactly
/// `min(3, P)` permits are granted, all probes of the new generation; the
/// rest are refused as HALF_OPEN_FULL.
fn open_to_half_open(probes: u32) {
    model(move || {
        let rig = rig(config()
            .consecutive_failures(Some(1))
            .half_open_probes(probes)
            .probe_lease(Duration::from_secs(10)));
        rig.trip();
        rig.pass_deadlines();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let rig = rig.clone();
                thread::spawn(move || rig.breaker.acquire())
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let mut granted = 0;
        for r in &results {
            match r {
                Ok(p) => {
                    granted += 1;
                    assert!(p.is_probe(), "{results:?}");
                    assert_eq!(p.generation(), 2, "{results:?}");
                }
                Err(e) => assert_eq!(e.reason, RejectReason::HalfOpenFull, "{results:?}"),
            }
        }
        assert_eq!(granted, probes.min(3), "{results:?}");
        let ts = rig.assert_chain(State::Closed, 0);
        assert_eq!(ts.len(), 2, "{ts:?}");
        assert_eq!(ts[1].reason, Reason::OpenDeadlinePassed);
        assert_eq!(rig.breaker.state(), State::HalfOpen);
    });
}

#[test]
fn open_to_half_open_one_probe() {
    open_to_half_open(1);
}

#[test]
fn open_to_half_open_two_probes() {
    open_to_half_open(2);
}
