//! Group guard (invariant 15): breakers of a registry in one group may have
//! at most so many members OPEN (or HALF_OPEN) at once; a trip past that is
//! refused, told to listeners as a shadow trip and counted, so the group
//! keeps serving. Behaviour on a manual clock, then a real-thread stress
//! test that checks the limit at every transition.

// The test's own tallies, outside the library: the loom shim rule of
// core/clippy.toml is for the core's own atomics.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use circuit_core::{
    Breaker, Config, GroupLimit, Listener, ManualClock, MonotonicClock, Outcome, Override, Reason,
    Recorded, Registry, RegistryError, RegistryOptions, State, Transition,
};
use common::{ms, quiet, MS};

fn registry(clock: Arc<ManualClock>) -> Registry {
    let defaults = quiet()
        .consecutive_failures(Some(1))
        .open_duration(ms(100))
        .half_open_probes(1)
        .half_open_successes(1)
        .build()
        .unwrap();
    Registry::with_clock(
        RegistryOptions {
            defaults,
            ..RegistryOptions::default()
        },
        clock,
    )
}

fn fail(b: &Breaker) -> Recorded {
    let p = b.acquire().expect("admitted");
    b.record(p, Outcome::Failure, Duration::ZERO)
}

#[test]
fn a_trip_past_the_limit_is_refused_told_and_counted() {
    let clock = Arc::new(ManualClock::new(1_000 * MS));
    let r = registry(clock.clone());
    r.set_group("pool", GroupLimit::Count(1)).unwrap();
    for n in ["a", "b", "c"] {
        r.join_group(n, "pool").unwrap();
    }
    let (a, b) = (r.get_or_create("a").unwrap(), r.get_or_create("b").unwrap());
    let _c = r.get_or_create("c").unwrap();
    let q = r.event_queue(16).unwrap();

    assert_eq!(fail(&a), Recorded::Transitioned(State::Open));
    let gen = b.generation();
    // The pool's one place is taken: b's trip is refused and b serves on.
    assert_eq!(fail(&b), Recorded::Transitioned(State::Closed));
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.generation(), gen.wrapping_add(1));
    assert!(b.acquire().is_ok());
    let events: Vec<_> = std::iter::from_fn(|| q.poll()).collect();
    assert_eq!(events.len(), 2);
    let shadow = &events[1];
    assert_eq!(&*shadow.breaker, "b");
    assert_eq!(shadow.transition.reason, Reason::ShadowTrip);
    assert_eq!(
        (shadow.transition.from, shadow.transition.to),
        (State::Closed, State::Closed)
    );
    let g = r.group("pool").unwrap().stats();
    assert_eq!(
        (g.members, g.open, g.max_open, g.refused_trips),
        (3, 1, 1, 1)
    );
    assert!(std::ptr::eq(
        &**b.group().unwrap(),
        &*r.group("pool").unwrap()
    ));

    // a's episode lasts through HALF_OPEN; its place comes back when it
    // closes, and then b may trip.
    clock.advance(ms(100));
    let p = a.acquire().unwrap();
    assert_eq!(a.state(), State::HalfOpen);
    assert_eq!(fail(&b), Recorded::Transitioned(State::Closed));
    assert_eq!(r.group("pool").unwrap().stats().refused_trips, 2);
    a.record(p, Outcome::Success, Duration::ZERO);
    assert_eq!(a.state(), State::Closed);
    assert_eq!(r.group("pool").unwrap().stats().open, 0);
    assert_eq!(fail(&b), Recorded::Transitioned(State::Open));
    assert_eq!(r.group("pool").unwrap().stats().open, 1);
}

#[test]
fn resets_and_overrides_give_places_back() {
    let clock = Arc::new(ManualClock::new(1_000 * MS));
    let r = registry(clock);
    let g = r.set_group("pool", GroupLimit::Count(1)).unwrap();
    for n in ["a", "b"] {
        r.join_group(n, "pool").unwrap();
    }
    let a = r.get_or_create("a").unwrap();
    let b = r.get_or_create("b").unwrap();
    fail(&a);
    assert_eq!(g.stats().open, 1);
    a.reset();
    assert_eq!(g.stats().open, 0);
    fail(&a);
    // An operator override is not a trip: never refused, and it ends the
    // episode.
    b.force(Override::ForcedOpen, None);
    assert_eq!(b.state(), State::ForcedOpen);
    a.force(Override::ForcedClosed, None);
    assert_eq!(g.stats().open, 0);
    a.clear_override();
    fail(&a);
    assert_eq!(g.stats().open, 1);
    b.clear_override();
    assert_eq!(fail(&b), Recorded::Transitioned(State::Closed));
    assert_eq!(g.stats().refused_trips, 1);
}

#[test]
fn a_fraction_counts_current_members_and_a_remote_open_is_guarded() {
    let clock = Arc::new(ManualClock::new(1_000 * MS));
    let r = registry(clock);
    let g = r.set_group("pool", GroupLimit::Fraction(0.5)).unwrap();
    let names = ["h0", "h1", "h2", "h3"];
    for n in names {
        r.join_group(n, "pool").unwrap();
    }
    let pool: Vec<_> = names.iter().map(|n| r.get_or_create(n).unwrap()).collect();
    assert_eq!(g.max_open(), 2);
    assert!(pool[0].apply_remote(State::Open, Some(ms(50))));
    fail(&pool[1]);
    // Fleet sync cannot push a third member open either.
    assert!(!pool[2].apply_remote(State::Open, Some(ms(50))));
    assert_eq!(pool[2].state(), State::Closed);
    assert_eq!(fail(&pool[3]), Recorded::Transitioned(State::Closed));
    assert_eq!(g.stats().refused_trips, 2);
    // Not in the group: never guarded.
    let loner = r.get_or_create("loner").unwrap();
    assert!(loner.group().is_none());
    assert_eq!(fail(&loner), Recorded::Transitioned(State::Open));
}

#[test]
fn bad_groups_are_errors_that_change_nothing() {
    let r = registry(Arc::new(ManualClock::new(0)));
    assert_eq!(r.join_group("a", "nope"), Err(RegistryError::UnknownGroup));
    assert!(matches!(
        r.set_group("pool", GroupLimit::Fraction(f64::NAN)),
        Err(RegistryError::InvalidGroupLimit(_))
    ));
    assert!(matches!(
        r.set_group("pool", GroupLimit::Fraction(1.01)),
        Err(RegistryError::InvalidGroupLimit(_))
    ));
    assert_eq!(
        r.set_group("", GroupLimit::Count(1)).unwrap_err(),
        RegistryError::EmptyName
    );
    assert!(r.group("pool").is_none());
    assert!(r.groups().is_empty());
    assert!(r.get_or_create("a").unwrap().group().is_none());
}

// ----- stress ---------------------------------------------------------------

const POOL: usize = 10;
const THREADS: usize = 6;

/// Members holding a place (OPEN or HALF_OPEN) at one instant: a double
/// collect. Each breaker is read as (generation, state, generation) until
/// both generations agree, then the whole pool is read twice; if no
/// generation moved between the two passes (generations only grow, so
/// nothing came back to the same word), every breaker was in its first-pass
/// state at the instant between the passes. `None` if the pool never held
/// still for 1000 tries.
fn holding_now(pool: &[Arc<Breaker>]) -> Option<usize> {
    let read = |b: &Breaker| loop {
        let g = b.generation();
        let s = b.state();
        if b.generation() == g {
            return (g, s);
        }
    };
    for _ in 0..1000 {
        let first: Vec<_> = pool.iter().map(|b| read(b)).collect();
        let second: Vec<_> = pool.iter().map(|b| read(b)).collect();
        if first.iter().zip(&second).all(|(x, y)| x.0 == y.0) {
            let held = first
                .iter()
                .filter(|(_, s)| matches!(s, State::Open | State::HalfOpen))
                .count();
            return Some(held);
        }
    }
    None
}

/// Checks the pool at every transition, from the transitioning thread right
/// after its CAS.
#[derive(Default)]
struct Checker {
    pool: Mutex<Vec<Arc<Breaker>>>,
    most: AtomicUsize,
    checks: AtomicU64,
    refused: AtomicU64,
    armed: AtomicBool,
}

impl Listener for Checker {
    fn on_transition(&self, _: &Arc<str>, t: &Transition) {
        if t.reason == Reason::ShadowTrip {
            self.refused.fetch_add(1, SeqCst);
        }
        if !self.armed.load(SeqCst) {
            return;
        }
        let pool = self.pool.lock().unwrap().clone();
        if let Some(n) = holding_now(&pool) {
            self.checks.fetch_add(1, SeqCst);
            self.most.fetch_max(n, SeqCst);
        }
    }
}

/// Many threads, random failures, a real clock with short open durations,
/// so members trip, probe and close again thousands of times. Returns (most
/// members seen holding a place at once, checks made, trips refused).
fn hammer(guard: Option<GroupLimit>) -> (usize, u64, u64) {
    let defaults = Config::builder()
        .consecutive_failures(Some(2))
        .open_duration(Duration::from_millis(1))
        .max_open_duration(Duration::from_millis(2))
        .backoff_multiplier(1.0)
        .jitter(0.5)
        .half_open_probes(1)
        .half_open_successes(1)
        .build()
        .unwrap();
    let r = Registry::with_clock(
        RegistryOptions {
            defaults,
            ..RegistryOptions::default()
        },
        Arc::new(MonotonicClock::new()),
    );
    let names: Vec<String> = (0..POOL).map(|i| format!("host-{i}")).collect();
    if let Some(limit) = guard {
        r.set_group("pool", limit).unwrap();
        for n in &names {
            r.join_group(n, "pool").unwrap();
        }
    }
    let pool: Vec<_> = names.iter().map(|n| r.get_or_create(n).unwrap()).collect();
    let checker = Arc::new(Checker::default());
    *checker.pool.lock().unwrap() = pool.clone();
    checker.armed.store(true, SeqCst);
    r.add_listener(checker.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (pool, stop) = (pool.clone(), stop.clone());
            thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                while !stop.load(SeqCst) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let b = &pool[(x % POOL as u64) as usize];
                    if let Ok(p) = b.acquire() {
                        let outcome = if (x >> 32) % 100 < 45 {
                            Outcome::Failure
                        } else {
                            Outcome::Success
                        };
                        b.record(p, outcome, Duration::ZERO);
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(400));
    stop.store(true, SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    checker.armed.store(false, SeqCst);
    if let Some(g) = r.group("pool") {
        let s = g.stats();
        assert_eq!(s.open, holding_now(&pool).unwrap(), "place count drifted");
        assert_eq!(s.refused_trips, checker.refused.load(SeqCst));
    }
    (
        checker.most.load(SeqCst),
        checker.checks.load(SeqCst),
        checker.refused.load(SeqCst),
    )
}

#[test]
fn a_pool_of_ten_with_a_30_percent_guard_never_has_more_than_three_open() {
    // The same load without a guard opens more than three at once, so the
    // check below can fail.
    let (most, checks, _) = hammer(None);
    assert!(checks > 100, "only {checks} checks");
    assert!(most > 3, "the load never opened more than {most} at once");

    let (most, checks, refused) = hammer(Some(GroupLimit::Fraction(0.3)));
    eprintln!("guarded: {checks} checks, at most {most} open, {refused} trips refused");
    assert!(checks > 100, "only {checks} checks");
    assert!(most <= 3, "{most} members open at once");
    assert_eq!(most, 3, "the guard was never reached");
    assert!(refused > 0);
}
