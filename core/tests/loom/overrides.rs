//! Operator overrides racing automatic transitions (invariants 3 and 5):
//! every transition is one CAS, so the history stays one chain with one
//! listener call per generation; an override set, cleared or reset always
//! lands (their loops retry) and ends up last unless a later call could
//! legitimately follow it; an override's expiry survives the race.

use std::time::Duration;

use circuit_core::{Outcome, Override, Reason, Recorded, RejectReason, State};
use loom::thread;

use crate::common::{config, model, rig};

const MS: Duration = Duration::from_millis(1);
/// Override expiry, longer than every other deadline of the tiny configs.
const EXPIRY: Duration = Duration::from_millis(5);

/// One thread records the failure that trips while another forces the
/// breaker open for `EXPIRY`. Either order is fine, but the override is
/// set last (its loop retries, the trip does not), the trip is
/// `Transitioned` exactly when it is in the history, and the override
/// still expires on time.
#[test]
fn force_open_vs_trip() {
    model(|| {
        let rig = rig(config().consecutive_failures(Some(1)));
        let recorder = {
            let rig = rig.clone();
            thread::spawn(move || match rig.breaker.acquire() {
                Ok(p) => Some(rig.breaker.record(p, Outcome::Failure, MS)),
                Err(r) => {
                    assert_eq!(r.reason, RejectReason::ForcedOpen);
                    None
                }
            })
        };
        let before = rig.breaker.force(Override::ForcedOpen, Some(EXPIRY));
        let r = recorder.join().unwrap();
        assert!(matches!(before, State::Closed | State::Open), "{before:?}");
        let ts = rig.assert_chain(State::Closed, 0);
        let tripped = ts.iter().any(|t| t.reason == Reason::ConsecutiveFailures);
        assert_eq!(
            tripped,
            r == Some(Recorded::Transitioned(State::Open)),
            "{r:?} {ts:?}"
        );
        assert_eq!(ts.len(), 1 + usize::from(tripped));
        assert_eq!(ts.last().unwrap().reason, Reason::OverrideSet);
        assert_eq!(rig.breaker.state(), State::ForcedOpen);
        rig.clock.advance(EXPIRY);
        assert_eq!(rig.breaker.state(), State::Closed, "the override expired");
        rig.assert_chain(State::Closed, 0);
        rig.assert_recovers();
    });
}

/// A half-open probe reports failure (re-open) while another thread forces
/// the breaker open for `EXPIRY`: same properties as above, from HALF_OPEN.
#[test]
fn force_open_vs_probe_failure() {
    model(|| {
        let rig = rig(config().consecutive_failures(Some(1)));
        let probe = rig.first_probe();
        let recorder = {
            let rig = rig.clone();
            thread::spawn(move || rig.breaker.record(probe, Outcome::Failure, MS))
        };
        let before = rig.breaker.force(Override::ForcedOpen, Some(EXPIRY));
        let r = recorder.join().unwrap();
        assert!(
            matches!(before, State::HalfOpen | State::Open),
            "{before:?}"
        );
        let ts = rig.assert_chain(State::Closed, 0);
        let reopened = ts.iter().any(|t| t.reason == Reason::ProbeFailed);
        let expect = if reopened {
            Recorded::Transitioned(State::Open)
        } else {
            Recorded::Stale
        };
        assert_eq!(r, expect, "{ts:?}");
        assert_eq!(ts.last().unwrap().reason, Reason::OverrideSet);
        rig.clock.advance(EXPIRY);
        assert_eq!(rig.breaker.state(), State::Closed, "the override expired");
        rig.assert_recovers();
    });
}

/// Under METRICS_ONLY a failure shadow-trips (a transition that keeps the
/// override) while another thread clears the override: the clear always
/// lands and nothing brings the override back; the breaker ends CLOSED and
/// trips normally afterwards.
#[test]
fn clear_override_vs_shadow_trip() {
    model(|| {
        let rig = rig(config().consecutive_failures(Some(1)));
        rig.breaker.force(Override::MetricsOnly, None);
        let p = rig.breaker.acquire().unwrap();
        let recorder = {
            let rig = rig.clone();
            thread::spawn(move || rig.breaker.record(p, Outcome::Failure, MS))
        };
        assert!(rig.breaker.clear_override(), "an override was set");
        let r = recorder.join().unwrap();
        let ts = rig.assert_chain(State::Closed, 0);
        let shadow = ts.iter().any(|t| t.reason == Reason::ShadowTrip);
        let expect = if shadow {
            Recorded::Transitioned(State::MetricsOnly)
        } else {
            // The clear won: the record either saw the new generation or
            // lost its CAS.
            assert!(matches!(r, Recorded::Stale | Recorded::Counted), "{r:?}");
            r
        };
        assert_eq!(r, expect, "{ts:?}");
        assert_eq!(ts.last().unwrap().reason, Reason::OverrideCleared);
        assert_eq!(rig.breaker.state(), State::Closed);
        rig.trip();
        rig.assert_recovers();
    });
}

/// `reset` races the failure that trips. The reset always lands; the trip
/// may come after it only with a permit issued after it.
#[test]
fn reset_vs_trip() {
    model(|| {
        let rig = rig(config().consecutive_failures(Some(1)));
        let recorder = {
            let rig = rig.clone();
            thread::spawn(move || {
                let p = rig.breaker.acquire().expect("nothing refuses");
                (p, rig.breaker.record(p, Outcome::Failure, MS))
            })
        };
        rig.breaker.reset();
        let (p, r) = recorder.join().unwrap();
        let ts = rig.assert_chain(State::Closed, 0);
        let reset_at = ts.iter().position(|t| t.reason == Reason::Reset).unwrap();
        match ts
            .iter()
            .position(|t| t.reason == Reason::ConsecutiveFailures)
        {
            Some(trip_at) => {
                assert_eq!(r, Recorded::Transitioned(State::Open));
                assert_eq!(p.generation(), ts[trip_at].generation - 1);
                if trip_at > reset_at {
                    assert_eq!(rig.breaker.state(), State::Open);
                }
            }
            None => {
                assert!(matches!(r, Recorded::Stale | Recorded::Counted), "{r:?}");
                assert_eq!(rig.breaker.state(), State::Closed);
            }
        }
        rig.assert_recovers();
    });
}

/// An override has expired; one thread's acquire applies the expiry (a
/// transition to CLOSED) while another thread sets a new override with no
/// expiry. The expiry CAS is made from the old generation, so it can never
/// remove the new override: the breaker ends FORCED_OPEN whatever the order.
#[test]
fn override_expiry_vs_new_override() {
    model(|| {
        let rig = rig(config().consecutive_failures(Some(1)));
        rig.breaker.force(Override::ForcedClosed, Some(EXPIRY));
        rig.clock.advance(EXPIRY);
        let caller = {
            let rig = rig.clone();
            thread::spawn(move || rig.breaker.acquire())
        };
        rig.breaker.force(Override::ForcedOpen, None);
        let r = caller.join().unwrap();
        let ts = rig.assert_chain(State::Closed, 0);
        let expired = ts.iter().any(|t| t.reason == Reason::OverrideExpired);
        assert_eq!(ts.len(), 2 + usize::from(expired), "{ts:?}");
        assert_eq!(ts.last().unwrap().reason, Reason::OverrideSet);
        assert_eq!(rig.breaker.state(), State::ForcedOpen, "{ts:?}");
        match r {
            // Admitted before the new override: by the expired one's
            // generation, or by the CLOSED the expiry left.
            Ok(p) => assert!(p.generation() == 1 || expired, "{p:?} {ts:?}"),
            Err(e) => assert_eq!(e.reason, RejectReason::ForcedOpen),
        }
        rig.clock.advance(Duration::from_secs(60));
        assert_eq!(rig.breaker.state(), State::ForcedOpen, "no expiry was set");
    });
}
