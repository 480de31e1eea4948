//! Instructions per closed call, counted by valgrind rather than timed: the
//! closed fast path's cost as a number that does not move with the load of
//! a shared machine. `ci/bench-instructions.sh` runs this under cachegrind
//! for two call counts and prints the difference per call.
//!
//! Usage: `closed_instructions CASE CALLS`, CASE one of
//!
//! - `acquire`: `acquire` alone (consecutive-failure config);
//! - `consecutive`: `acquire` + `record(Success)`, consecutive failures;
//! - `count_window`: the same with a 100-slot window and rate trips;
//! - `recovered`: `consecutive` with a ramp-up configured, after a trip,
//!   a recovery through a probe and the ramp's end (the fast path must be
//!   back).
//!
//! Every case is built into one binary with the same call sites, so the
//! compiler's inlining choices are the same for all of them (a second
//! caller of `record` changes them by more than anything measured here).
//! Lines marked `ramp-only` are the only ones that need the ramp API:
//! without them the file builds against a core that has none, for a
//! before/after comparison (see ci/bench-instructions.sh).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use circuit_core::{Breaker, Config, ConfigBuilder, ManualClock, Outcome, State};

const CALL: Duration = Duration::from_micros(250);

fn consecutive() -> ConfigBuilder {
    Config::builder().consecutive_failures(Some(5))
}

#[rustfmt::skip] // ramp-only
fn ramp() -> circuit_core::RampPolicy { circuit_core::RampPolicy { start: 0.5, duration: Duration::from_millis(1), steps: 0 } } // ramp-only

/// Tripped, recovered through a probe, and past the ramp's end.
fn recovered() -> Breaker {
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let config = consecutive()
        .jitter(0.0)
        .open_duration(Duration::from_millis(1));
    let config = config.ramp(Some(ramp())); // ramp-only
    let b = Breaker::with_clock(config.build().expect("valid config"), clock.clone());
    while b.state() == State::Closed {
        let p = b.acquire().expect("closed");
        b.record(p, Outcome::Failure, CALL);
    }
    clock.advance(Duration::from_millis(2));
    let probe = b.acquire().expect("probe");
    b.record(probe, Outcome::Success, CALL);
    assert!(b.ramp_fraction().is_some(), "ramping after recovery"); // ramp-only
    clock.advance(Duration::from_millis(2));
    b.acquire().expect("admitted");
    assert!(b.ramp_fraction().is_none()); // ramp-only
    b
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (case, calls) = match args.as_slice() {
        [_, case, calls] => (case.as_str(), calls.parse::<u64>().expect("CALLS")),
        _ => panic!("usage: closed_instructions CASE CALLS"),
    };
    let b = match case {
        "acquire" | "consecutive" => Breaker::new(consecutive().build().expect("valid")),
        "count_window" => Breaker::new(
            Config::builder()
                .consecutive_failures(None)
                .failure_rate(Some(0.5))
                .slow_call(Some((0.5, Duration::from_secs(1))))
                .count_window(100)
                .minimum_calls(10)
                .build()
                .expect("valid"),
        ),
        "recovered" => recovered(),
        other => panic!("unknown case {other}"),
    };
    let b = black_box(&b);
    if case == "acquire" {
        for _ in 0..calls {
            black_box(b.acquire().expect("closed"));
        }
    } else {
        for _ in 0..calls {
            let p = b.acquire().expect("closed");
            black_box(b.record(p, Outcome::Success, black_box(CALL)));
        }
    }
}
