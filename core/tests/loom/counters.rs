//! Counter cells (invariant 12): threads take turns owning the inline
//! counter cell until the breaker counts as contended (after one hand-off
//! under loom), then allocate its stripes, possibly both at once. Whatever
//! the interleaving, every outcome and rejection is counted exactly once.

use std::time::Duration;

use circuit_core::{Breaker, Outcome, Override, RejectReason};
use loom::thread;

use crate::common::{config, model, rig};

fn record(b: &Breaker, outcome: Outcome) {
    let p = b.acquire().expect("no trip condition");
    b.record(p, outcome, Duration::from_millis(1));
}

/// Two threads record two outcomes each: ownership moves, the second
/// hand-off stripes the breaker, and both threads may race to allocate.
#[test]
fn outcomes_count_exactly_while_ownership_moves() {
    model(|| {
        let rig = rig(config().consecutive_failures(None).metrics(true));
        let other = {
            let rig = rig.clone();
            thread::spawn(move || {
                record(&rig.breaker, Outcome::Failure);
                record(&rig.breaker, Outcome::Failure);
            })
        };
        record(&rig.breaker, Outcome::Success);
        record(&rig.breaker, Outcome::Ignored);
        other.join().unwrap();
        let m = rig.breaker.metrics();
        assert_eq!(m.outcomes, [1, 2, 0, 1], "{m:?}");
    });
}

/// Rejections take the same cells: two threads refused twice each by a
/// forced-open breaker count four rejections.
#[test]
fn rejections_count_exactly_while_ownership_moves() {
    model(|| {
        let rig = rig(config().consecutive_failures(None).metrics(true));
        rig.breaker.force(Override::ForcedOpen, None);
        let other = {
            let rig = rig.clone();
            thread::spawn(move || {
                assert!(rig.breaker.acquire().is_err());
                assert!(rig.breaker.acquire().is_err());
            })
        };
        assert!(rig.breaker.acquire().is_err());
        assert!(rig.breaker.acquire().is_err());
        other.join().unwrap();
        let m = rig.breaker.metrics();
        assert_eq!(m.rejected[RejectReason::ForcedOpen as usize], 4, "{m:?}");
    });
}
