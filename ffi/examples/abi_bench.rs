//! The Rust side of the ABI overhead benchmark (ci/bench-c.sh): one
//! protected call (acquire + record SUCCESS on a CLOSED breaker with the
//! default consecutive-failure policy) in a timed loop,
//!
//! - `rust_core`: through `circuit_core::Breaker` directly (what a Rust host
//!   pays), the outcome and the duration written as constants
//!   (`Outcome::Success`, `Duration::ZERO`), which the compiler folds into
//!   the inlined record;
//! - `rust_core_rt`: the same with the outcome and the duration known only
//!   at run time (each passed through `black_box`, as a Rust host's outcome
//!   comes from the call's result and its duration from a clock): the Rust
//!   counterpart of a C call to `circuit_breaker_record`, which takes both
//!   as arguments;
//! - `rust_via_abi`: through the exported `circuit_*` functions linked as an
//!   rlib (the boundary's own cost: NULL checks, panic guard, conversions,
//!   without a dynamic-library call);
//! - `floor`: an atomic load plus an uncontended `fetch_add`, the unit the
//!   design's budgets are written in.
//!
//! Prints `name ns_per_call` lines, the median of several timed loops each
//! (robust on a shared, busy machine); the C
//! program bindings/c/bench/abi_bench.c prints the same for calls through
//! libcircuit.so and libcircuit.a.
//!
//! `cargo run --release -p circuit-ffi --example abi_bench [iterations] [path]`
//! (a path name runs that path alone: ci/bench-c.sh counts its
//! instructions under cachegrind).

use std::hint::black_box;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use circuit::breaker::{
    circuit_breaker_acquire, circuit_breaker_free, circuit_breaker_new, circuit_breaker_record,
};
use circuit::config::{circuit_config_builder_build, circuit_config_builder_new};
use circuit::{circuit_outcome, circuit_permit, circuit_result};
use circuit_core::{Breaker, Config, Outcome};

const RUNS: usize = 7;

fn median_ns_per_call(iterations: u64, mut run: impl FnMut(u64)) -> f64 {
    run(iterations / 10); // warm up
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            run(iterations);
            start.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

fn main() {
    let iterations: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000_000);
    let only = std::env::args().nth(2);
    let runs = |path: &str| only.as_deref().is_none_or(|o| o == path);

    let breaker = Breaker::new(Config::default());
    let core = runs("rust_core").then(|| {
        median_ns_per_call(iterations, |n| {
            let b = black_box(&breaker);
            for _ in 0..n {
                if let Ok(p) = b.acquire() {
                    black_box(b.record(p, Outcome::Success, Duration::ZERO));
                }
            }
        })
    });
    assert!(core.is_none() || breaker.metrics().outcome(Outcome::Success) >= iterations);

    let breaker_rt = Breaker::new(Config::default());
    let core_rt = runs("rust_core_rt").then(|| {
        median_ns_per_call(iterations, |n| {
            let b = black_box(&breaker_rt);
            for _ in 0..n {
                if let Ok(p) = b.acquire() {
                    black_box(b.record(p, black_box(Outcome::Success), black_box(Duration::ZERO)));
                }
            }
        })
    });
    assert!(core_rt.is_none() || breaker_rt.metrics().outcome(Outcome::Success) >= iterations);

    // SAFETY: every pointer passed is a live handle or a valid local, and
    // the breaker is released once at the end.
    let via_abi = runs("rust_via_abi").then(|| unsafe {
        let builder = circuit_config_builder_new();
        let mut config = ptr::null_mut();
        assert_eq!(
            circuit_config_builder_build(builder, &mut config),
            circuit_result::Ok
        );
        circuit::config::circuit_config_builder_free(builder);
        let mut b = ptr::null();
        assert_eq!(
            circuit_breaker_new(config, ptr::null(), &mut b),
            circuit_result::Ok
        );
        circuit::config::circuit_config_free(config);
        let ns = median_ns_per_call(iterations, |n| {
            let b = black_box(b);
            let mut permit = circuit_permit {
                generation: 0,
                flags: 0,
            };
            for _ in 0..n {
                if circuit_breaker_acquire(b, &mut permit, ptr::null_mut()) == circuit_result::Ok {
                    black_box(circuit_breaker_record(
                        b,
                        permit,
                        circuit_outcome::Success as u32,
                        0,
                    ));
                }
            }
        });
        circuit_breaker_free(b);
        ns
    });

    let word = AtomicU64::new(0);
    let counter = AtomicU64::new(0);
    let floor = runs("floor").then(|| {
        median_ns_per_call(iterations, |n| {
            let (w, c) = (black_box(&word), black_box(&counter));
            for _ in 0..n {
                if w.load(Ordering::Acquire) == 0 {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    });

    for (name, ns) in [
        ("rust_core", core),
        ("rust_core_rt", core_rt),
        ("rust_via_abi", via_abi),
        ("floor", floor),
    ] {
        if let Some(ns) = ns {
            println!("{name} {ns:.2}");
        }
    }
}
