//! Group guard (invariant 15): two members of a group with one place. Trips
//! racing for the last place never both win, and a trip that takes the
//! place a closing member gave back sees that member closed.

use std::sync::Arc;
use std::time::Duration;

use circuit_core::{GroupLimit, ManualClock, Outcome, Recorded, Registry, RegistryOptions, State};
use loom::thread;

use crate::common::{config, model};

fn pool() -> Arc<Registry> {
    let r = Registry::with_clock(
        RegistryOptions {
            defaults: config()
                .consecutive_failures(Some(1))
                .build()
                .expect("model config is valid"),
            max_breakers: 4,
            evict_after_idle_sweeps: None,
        },
        Arc::new(ManualClock::new(1_000_000)),
    );
    r.set_group("pool", GroupLimit::Count(1)).unwrap();
    r.join_group("a", "pool").unwrap();
    r.join_group("b", "pool").unwrap();
    Arc::new(r)
}

fn trip(r: &Registry, name: &str) -> Recorded {
    let b = r.get(name).unwrap();
    let p = b.acquire().expect("a closed breaker admits");
    b.record(p, Outcome::Failure, Duration::from_millis(1))
}

/// Both members trip at once: exactly one opens, the other is refused.
#[test]
fn two_trips_never_both_take_the_last_place() {
    model(|| {
        let r = pool();
        r.get_or_create("a").unwrap();
        r.get_or_create("b").unwrap();
        let other = {
            let r = r.clone();
            thread::spawn(move || trip(&r, "b"))
        };
        let mine = trip(&r, "a");
        let theirs = other.join().unwrap();
        let opened = [mine, theirs]
            .iter()
            .filter(|x| **x == Recorded::Transitioned(State::Open))
            .count();
        assert_eq!(opened, 1, "{mine:?} {theirs:?}");
        let g = r.group("pool").unwrap().stats();
        assert_eq!((g.open, g.refused_trips), (1, 1));
    });
}

/// `a` is OPEN and is reset while `b` trips: if `b` opens, it took `a`'s
/// place, so `a`'s reset happened before and `b`'s thread sees `a` CLOSED.
#[test]
fn a_trip_that_takes_a_freed_place_sees_the_member_that_freed_it_closed() {
    model(|| {
        let r = pool();
        let a = r.get_or_create("a").unwrap();
        r.get_or_create("b").unwrap();
        assert_eq!(trip(&r, "a"), Recorded::Transitioned(State::Open));
        let other = {
            let r = r.clone();
            thread::spawn(move || {
                let got = trip(&r, "b");
                if got == Recorded::Transitioned(State::Open) {
                    assert_eq!(r.get("a").unwrap().state(), State::Closed);
                }
                got
            })
        };
        a.reset();
        let got = other.join().unwrap();
        let g = r.group("pool").unwrap().stats();
        let b_open = r.get("b").unwrap().state() == State::Open;
        assert_eq!(g.open, usize::from(b_open));
        assert_eq!(b_open, got == Recorded::Transitioned(State::Open));
    });
}
