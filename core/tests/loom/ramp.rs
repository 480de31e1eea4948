//! Ramp-up after recovery (invariant 14): admission by tickets, the ramp's
//! end (a same-generation CAS) racing a trip.

use std::time::Duration;

use circuit_core::{Outcome, RampPolicy, Reason, Recorded, RejectReason, State};
use loom::thread;

use crate::common::{config, model, rig, Rig};

const MS: Duration = Duration::from_millis(1);

/// One failure trips; open 1 ms doubling to 4 ms; a 1 ms ramp from 1/2.
fn ramped() -> std::sync::Arc<Rig> {
    let rig = rig(config()
        .consecutive_failures(Some(1))
        .max_open_duration(4 * MS)
        .backoff_multiplier(2.0)
        .ramp(Some(RampPolicy {
            start: 0.5,
            duration: MS,
            steps: 0,
        })));
    let probe = rig.first_probe();
    assert_eq!(
        rig.breaker.record(probe, Outcome::Success, MS),
        Recorded::Transitioned(State::Closed)
    );
    assert_eq!(rig.breaker.ramp_fraction(), Some(0.5));
    rig
}

/// At fraction 1/2 the first two tickets are 0 (admitted) and 0.618
/// (refused): whatever the interleaving, exactly one of two concurrent
/// calls is admitted, and its failure re-opens with the HALF_OPEN streak
/// plus one (2 ms, not the base 1 ms).
#[test]
fn ramp_admits_by_ticket_and_a_trip_during_it_backs_off() {
    model(|| {
        let rig = ramped();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let rig = rig.clone();
                thread::spawn(move || match rig.breaker.acquire() {
                    Ok(p) => Some(rig.breaker.record(p, Outcome::Failure, MS)),
                    Err(r) => {
                        // Refused by its ticket, or after the other's trip.
                        assert!(
                            matches!(r.reason, RejectReason::RampLimited | RejectReason::Open),
                            "{r:?}"
                        );
                        None
                    }
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let admitted: Vec<_> = results.iter().flatten().collect();
        assert_eq!(
            admitted,
            [&Recorded::Transitioned(State::Open)],
            "{results:?}"
        );
        let ts = rig.assert_chain(State::Closed, 0);
        assert_eq!(ts.len(), 4, "{ts:?}");
        assert_eq!(ts[3].reason, Reason::ConsecutiveFailures);
        assert_eq!(ts[3].open_for, 2_000_000);
    });
}

/// After the ramp's end, one call ends it (a CAS keeping the generation)
/// while a call admitted during the ramp reports a failure that trips: the trip is never lost to that CAS, it
/// opens with the base duration, and a call that loses to the trip is
/// refused as OPEN.
#[test]
fn the_ramps_end_never_swallows_a_trip() {
    model(|| {
        let rig = ramped();
        // Admitted during the ramp (ticket 0), recorded after its end.
        let permit = rig.breaker.acquire().expect("ticket 0 is admitted");
        rig.clock.advance(MS);
        let ender = {
            let rig = rig.clone();
            thread::spawn(move || rig.breaker.acquire().map(|p| p.generation()))
        };
        let tripper = {
            let rig = rig.clone();
            thread::spawn(move || rig.breaker.record(permit, Outcome::Failure, MS))
        };
        let ended = ender.join().unwrap();
        assert_eq!(tripper.join().unwrap(), Recorded::Transitioned(State::Open));
        match ended {
            Ok(generation) => assert_eq!(generation, 3),
            Err(r) => assert_eq!(r.reason, RejectReason::Open),
        }
        let ts = rig.assert_chain(State::Closed, 0);
        assert_eq!(ts.len(), 4, "{ts:?}");
        assert_eq!(ts[3].open_for, 1_000_000);
        assert_eq!(rig.breaker.ramp_fraction(), None);
    });
}
