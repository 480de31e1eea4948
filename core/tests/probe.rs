//! Scenario tests of active health probes (`circuit_core::probe`) on a
//! manual clock: no user traffic, the prober alone moves the breaker on.

// Test-side counters, outside the library (the loom shim rule is for the
// core's own atomics).
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use circuit_core::probe::{ProbeError, ProbeOptions, Prober, TicketId};
use circuit_core::{
    Breaker, Config, ManualClock, Outcome, Override, RampPolicy, Reason, Recorded, State,
};
use common::{manual, ms, quiet, MS};
use Outcome::{Failure, Ignored, Success};

const START: u64 = 1_000 * MS;

/// One failure trips; open 100 ms doubling up to 10 s; `k` probe successes
/// close; lease 1 s.
fn config(k: u32, ramp: Option<RampPolicy>) -> Config {
    quiet()
        .consecutive_failures(Some(1))
        .open_duration(ms(100))
        .max_open_duration(ms(10_000))
        .backoff_multiplier(2.0)
        .half_open_probes(k)
        .half_open_successes(k)
        .probe_lease(ms(1_000))
        .ramp(ramp)
        .build()
        .unwrap()
}

fn no_interval() -> ProbeOptions {
    ProbeOptions {
        min_interval: Duration::ZERO,
    }
}

fn setup(k: u32) -> (Arc<Breaker>, Arc<ManualClock>, Prober) {
    let (b, clock, _log) = manual(config(k, None), START);
    let b = Arc::new(b);
    let prober = Prober::new();
    prober.register(&b, no_interval()).unwrap();
    (b, clock, prober)
}

fn trip(b: &Breaker) {
    let p = b.acquire().expect("closed");
    assert_eq!(
        b.record(p, Failure, ms(1)),
        Recorded::Transitioned(State::Open)
    );
}

#[test]
fn closed_breakers_want_no_probe() {
    let (_b, _clock, prober) = setup(1);
    assert!(prober.poll().is_none());
    assert_eq!(prober.next_in(), None);
}

#[test]
fn a_probe_is_due_exactly_at_the_open_deadline_and_its_success_closes() {
    let (b, clock, prober) = setup(1);
    trip(&b);
    let deadline = b.open_deadline().unwrap();
    assert_eq!(deadline, START + 100 * MS);
    assert_eq!(prober.next_in(), Some(ms(100)));
    clock.advance(Duration::from_nanos(100 * MS - 1));
    assert!(prober.poll().is_none(), "one nanosecond early");
    assert_eq!(prober.next_in(), Some(Duration::from_nanos(1)));
    clock.advance(Duration::from_nanos(1));
    let due = prober.poll().expect("due at the deadline");
    assert!(Arc::ptr_eq(&due.breaker, &b));
    // The probe is the half-open probe: the breaker moved on by itself.
    assert_eq!(b.state(), State::HalfOpen);
    assert!(prober.poll().is_none(), "one run at a time");
    assert_eq!(
        prober.complete(due.ticket, Success).unwrap(),
        Recorded::Transitioned(State::Closed)
    );
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics().outcome(Success), 1);
    assert_eq!(prober.next_in(), None);
}

#[test]
fn a_failed_probe_reopens_with_backoff_and_the_next_is_due_at_the_new_deadline() {
    let (b, clock, prober) = setup(1);
    trip(&b);
    clock.advance(ms(100));
    let due = prober.poll().unwrap();
    clock.advance(ms(5));
    assert_eq!(
        prober.complete(due.ticket, Failure).unwrap(),
        Recorded::Transitioned(State::Open)
    );
    // Backoff: 100 ms x 2 from the failure.
    let now = START + 105 * MS;
    assert_eq!(b.open_deadline(), Some(now + 200 * MS));
    assert_eq!(prober.next_in(), Some(ms(200)));
    clock.advance(ms(199));
    assert!(prober.poll().is_none());
    clock.advance(ms(1));
    let due = prober.poll().expect("due at the backed-off deadline");
    assert_eq!(
        prober.complete(due.ticket, Failure).unwrap(),
        Recorded::Transitioned(State::Open)
    );
    assert_eq!(prober.next_in(), Some(ms(400)));
    clock.advance(ms(400));
    let due = prober.poll().unwrap();
    prober.complete(due.ticket, Success).unwrap();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn several_successes_needed_are_probed_one_after_another() {
    let (b, clock, prober) = setup(3);
    trip(&b);
    clock.advance(ms(100));
    for i in 0..3 {
        let due = prober.poll().expect("a probe per success needed");
        let r = prober.complete(due.ticket, Success).unwrap();
        if i < 2 {
            assert_eq!(r, Recorded::Counted);
            assert_eq!(b.state(), State::HalfOpen);
        } else {
            assert_eq!(r, Recorded::Transitioned(State::Closed));
        }
    }
    assert!(prober.poll().is_none());
}

#[test]
fn the_min_interval_spaces_probes() {
    let (b, clock, _log) = manual(config(2, None), START);
    let b = Arc::new(b);
    let prober = Prober::new();
    prober
        .register(
            &b,
            ProbeOptions {
                min_interval: ms(50),
            },
        )
        .unwrap();
    trip(&b);
    clock.advance(ms(100));
    let due = prober.poll().unwrap();
    prober.complete(due.ticket, Success).unwrap();
    assert!(prober.poll().is_none());
    assert_eq!(prober.next_in(), Some(ms(50)));
    clock.advance(ms(50));
    let due = prober.poll().unwrap();
    assert_eq!(
        prober.complete(due.ticket, Success).unwrap(),
        Recorded::Transitioned(State::Closed)
    );
}

#[test]
fn a_probe_success_ramps_up_when_the_config_ramps() {
    let ramp = RampPolicy {
        start: 0.25,
        duration: ms(1_000),
        steps: 0,
    };
    let (b, clock, log) = manual(config(1, Some(ramp)), START);
    let b = Arc::new(b);
    let prober = Prober::new();
    prober.register(&b, no_interval()).unwrap();
    trip(&b);
    clock.advance(ms(100));
    let due = prober.poll().unwrap();
    prober.complete(due.ticket, Success).unwrap();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.ramp_fraction(), Some(0.25));
    let reasons: Vec<Reason> = log.take().iter().map(|t| t.reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::ConsecutiveFailures,
            Reason::OpenDeadlinePassed,
            Reason::ProbesSucceeded
        ]
    );
    assert!(prober.poll().is_none(), "no probe while ramping");
}

#[test]
fn a_user_call_holding_the_slot_delays_the_probe_until_its_lease() {
    let (b, clock, prober) = setup(1);
    trip(&b);
    clock.advance(ms(100));
    let user = b.acquire().expect("the user call is the probe");
    assert!(prober.poll().is_none(), "the slot is taken");
    assert_eq!(prober.next_in(), Some(ms(1_000)));
    clock.advance(ms(1_000));
    let due = prober.poll().expect("the lease passed");
    // The late user call is stale now.
    assert_eq!(b.record(user, Success, ms(1)), Recorded::Stale);
    prober.complete(due.ticket, Success).unwrap();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn a_ticket_never_completed_is_reclaimed_after_the_lease() {
    let (b, clock, prober) = setup(1);
    trip(&b);
    clock.advance(ms(100));
    let lost = prober.poll().unwrap();
    assert_eq!(prober.next_in(), Some(ms(1_000)));
    clock.advance(ms(999));
    assert!(prober.poll().is_none());
    clock.advance(ms(1));
    // Reclaimed (released as Ignored, the slot freed), then a new run.
    let due = prober.poll().expect("reclaimed");
    assert_ne!(due.ticket, lost.ticket);
    assert_eq!(
        prober.complete(lost.ticket, Success),
        Err(ProbeError::UnknownTicket(lost.ticket))
    );
    assert_eq!(b.state(), State::HalfOpen);
    prober.complete(due.ticket, Success).unwrap();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn an_ignored_probe_frees_the_slot_and_changes_nothing_else() {
    let (b, clock, prober) = setup(1);
    trip(&b);
    clock.advance(ms(100));
    let due = prober.poll().unwrap();
    let generation = b.generation();
    assert_eq!(prober.complete(due.ticket, Ignored), Ok(Recorded::Counted));
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.generation(), generation);
    let again = prober.poll().expect("the slot is free again");
    prober.complete(again.ticket, Success).unwrap();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn overrides_suppress_probes() {
    let (b, clock, prober) = setup(1);
    trip(&b);
    b.force(Override::ForcedOpen, None);
    clock.advance(ms(10_000));
    assert!(prober.poll().is_none());
    assert_eq!(prober.next_in(), None);
    b.force(Override::ForcedClosed, None);
    assert!(prober.poll().is_none());
    b.clear_override();
    assert!(prober.poll().is_none(), "cleared into CLOSED");
}

#[test]
fn hostile_requests_are_refused_and_change_nothing() {
    let (b, clock, prober) = setup(1);
    let first = match prober.register(&b, no_interval()) {
        Err(ProbeError::AlreadyRegistered(id)) => id,
        other => panic!("registered twice: {other:?}"),
    };
    assert_eq!(
        prober.complete(TicketId(12345), Success),
        Err(ProbeError::UnknownTicket(TicketId(12345)))
    );
    let too_long = ProbeOptions {
        min_interval: Duration::MAX,
    };
    let (other, _, _) = manual(config(1, None), START);
    let other = Arc::new(other);
    assert!(matches!(
        prober.register(&other, too_long),
        Err(ProbeError::InvalidOptions(_))
    ));
    trip(&b);
    clock.advance(ms(100));
    let due = prober.poll().unwrap();
    prober.complete(due.ticket, Failure).unwrap();
    let generation = b.generation();
    assert_eq!(
        prober.complete(due.ticket, Success),
        Err(ProbeError::UnknownTicket(due.ticket)),
        "completed twice"
    );
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.generation(), generation);
    prober.unregister(first).unwrap();
    assert_eq!(
        prober.unregister(first),
        Err(ProbeError::UnknownProbe(first))
    );
    clock.advance(ms(10_000));
    assert!(prober.poll().is_none(), "unregistered");
    prober.close();
    assert_eq!(prober.register(&b, no_interval()), Err(ProbeError::Closed));
    assert!(prober.next_due(ms(1)).is_none());
}

#[test]
fn a_dropped_breaker_is_no_longer_probed() {
    let (b, clock, prober) = setup(1);
    trip(&b);
    clock.advance(ms(100));
    assert_eq!(prober.len(), 1);
    drop(b);
    assert!(prober.poll().is_none());
    assert_eq!(prober.len(), 0);
}

#[test]
fn probe_functions_run_on_the_prober_thread_and_a_panic_counts_as_failure() {
    // Real time, short: the thread sleeps until the open deadline.
    let config = quiet()
        .consecutive_failures(Some(1))
        .open_duration(ms(20))
        .backoff_multiplier(1.0)
        .build()
        .unwrap();
    let b = Arc::new(Breaker::new(config));
    let prober = Prober::new();
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    prober
        .register_fn(&b, ProbeOptions::default(), move || {
            // The first run panics, the second fails, the third succeeds.
            match r.fetch_add(1, Ordering::SeqCst) {
                0 => panic!("probe panicked"),
                1 => Failure,
                _ => Success,
            }
        })
        .unwrap();
    trip(&b);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b.state() != State::Closed {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        std::thread::sleep(ms(5));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(b.metrics().outcome(Failure), 3, "the trip and two probes");
    // Stopped and joined; the breaker is no longer watched.
    drop(prober);
    trip(&b);
    std::thread::sleep(ms(60));
    assert_eq!(b.state(), State::Open);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

/// Real threads: user calls, a probe thread running a function for one
/// breaker and a host thread polling tickets for another race while the
/// dependency flips between healthy and down. Once it stays healthy and the
/// users stop, the probes alone close both breakers: no half-open slot is
/// lost to the races. Also run under ThreadSanitizer (ci/tsan.sh).
#[test]
fn probes_and_user_traffic_race_and_the_probes_still_close_the_breakers() {
    use std::sync::atomic::AtomicBool;
    use std::thread;

    let config = quiet()
        .consecutive_failures(Some(3))
        .open_duration(ms(2))
        .max_open_duration(ms(8))
        .half_open_probes(2)
        .half_open_successes(2)
        .probe_lease(ms(50))
        .build()
        .unwrap();
    let called = Arc::new(Breaker::new(config.clone()));
    let polled = Arc::new(Breaker::new(config));
    let healthy = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let prober = Arc::new(Prober::new());
    let options = ProbeOptions {
        min_interval: ms(1),
    };
    let h = healthy.clone();
    prober
        .register_fn(&called, options, move || {
            if h.load(Ordering::SeqCst) {
                Success
            } else {
                Failure
            }
        })
        .unwrap();
    prober.register(&polled, options).unwrap();

    let mut threads = Vec::new();
    for _ in 0..3 {
        let (bs, h, stop) = (
            [called.clone(), polled.clone()],
            healthy.clone(),
            stop.clone(),
        );
        threads.push(thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for b in &bs {
                    if let Ok(p) = b.acquire() {
                        let o = if h.load(Ordering::SeqCst) {
                            Success
                        } else {
                            Failure
                        };
                        b.record(p, o, Duration::ZERO);
                    }
                }
                thread::yield_now();
            }
        }));
    }
    let poller = {
        let (p, h, stop) = (prober.clone(), healthy.clone(), stop.clone());
        thread::spawn(move || {
            let mut n = 0u32;
            while !(stop.load(Ordering::SeqCst) && h.load(Ordering::SeqCst) && p.is_closed()) {
                let Some(due) = p.next_due(ms(5)) else {
                    if p.is_closed() {
                        return;
                    }
                    continue;
                };
                n += 1;
                // Now and then a ticket is left to its lease.
                if n % 7 == 0 {
                    continue;
                }
                let o = if h.load(Ordering::SeqCst) {
                    Success
                } else {
                    Failure
                };
                let _ = p.complete(due.ticket, o);
            }
        })
    };
    for i in 0..20 {
        healthy.store(i % 2 == 0, Ordering::SeqCst);
        thread::sleep(ms(10));
    }
    healthy.store(false, Ordering::SeqCst);
    thread::sleep(ms(20));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    // Make sure both are out of CLOSED with no user traffic left.
    for b in [&called, &polled] {
        if b.state() == State::Closed {
            trip_with(b, 3);
        }
    }
    healthy.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while called.state() != State::Closed || polled.state() != State::Closed {
        assert!(
            std::time::Instant::now() < deadline,
            "not recovered: {:?} {:?}",
            called.state(),
            polled.state()
        );
        thread::sleep(ms(2));
    }
    prober.close();
    poller.join().unwrap();
}

fn trip_with(b: &Breaker, failures: u32) {
    for _ in 0..failures {
        if let Ok(p) = b.acquire() {
            b.record(p, Failure, Duration::ZERO);
        }
    }
}
