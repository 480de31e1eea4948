//! Live reconfiguration (invariant 18): a config swap that resizes the
//! window races a record whose failure trips (and so clears the
//! statistics). Whatever the interleaving, the record uses one config
//! whole, the trip happens, the new config is in force afterwards, and the
//! window of the new shape holds nothing from before the trip: a seed
//! copied before the trip's clear is cleared by the settle CAS or by the
//! trip's winner, whichever comes second in the state word's order.

use std::time::Duration;

use circuit_core::{ConfigBuilder, Outcome, Reason, Recorded, State};
use loom::thread;

use crate::common::{config, model, rig};

const MS: Duration = Duration::from_millis(1);

/// Two consecutive failures trip (checked before the window's rate, so the
/// reason is always theirs); the window is read by a 100 % rate policy.
fn windowed(size: u32) -> ConfigBuilder {
    config()
        .consecutive_failures(Some(2))
        .failure_rate(Some(1.0))
        .minimum_calls(2)
        .count_window(size)
}

#[test]
fn a_window_resize_racing_a_trip_keeps_nothing_from_before_it() {
    model(|| {
        let rig = rig(windowed(2));
        let b = &rig.breaker;
        for o in [Outcome::Success, Outcome::Failure] {
            let p = b.acquire().expect("closed");
            assert_eq!(b.record(p, o, MS), Recorded::Counted);
        }
        assert_eq!(b.metrics().window_calls, 2);
        let tripper = {
            let rig = rig.clone();
            thread::spawn(move || {
                let p = rig.breaker.acquire().expect("closed");
                rig.breaker.record(p, Outcome::Failure, MS)
            })
        };
        let new = windowed(4).build().unwrap();
        b.reconfigure(new.clone()).expect("same histogram");
        // The consecutive count is kept across the swap: the trip happens
        // under either config.
        assert_eq!(tripper.join().unwrap(), Recorded::Transitioned(State::Open));
        assert_eq!(*b.config(), new);
        assert_eq!(b.state(), State::Open);
        assert_eq!(
            b.metrics().window_calls,
            0,
            "the new window kept statistics from before the trip"
        );
        let ts = rig.assert_chain(State::Closed, 0);
        assert_eq!(ts.len(), 1, "{ts:?}");
        assert_eq!(ts[0].reason, Reason::ConsecutiveFailures);
    });
}
