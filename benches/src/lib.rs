//! Support code for the benchmarks in `benches/` (DESIGN.md section 6).
//!
//! Every budget is a ratio measured inside one run of one bench binary, so the
//! floor (an atomic load and an uncontended `fetch_add`), circuit and every
//! peer library are measured by `benches/breakers.rs` together. This crate
//! holds the parts that are not criterion glue:
//!
//! - [`per_thread`]: the multi-thread harness used with criterion's
//!   `iter_custom`, which reports time per operation per thread;
//! - [`budget`]: the budgets and the rows of the table that `bench-table`
//!   prints from criterion's `estimates.json` files.

pub mod budget;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Runs `op` `iters` times on each of `threads` threads and returns the
/// longest per-thread elapsed time.
///
/// Criterion divides the returned time by `iters`, so the figure it reports
/// is the time per operation per thread: with two threads hammering one
/// breaker, the wall time for each to complete its share (DESIGN.md
/// section 6, "per op per thread").
///
/// Each thread builds its own handle with `make` (an `Arc` clone of the
/// shared object, or a clone of a tower service that shares its state),
/// then waits on a spinning start barrier so that all threads begin together;
/// thread start-up is outside the timed region. Timing is taken inside each
/// thread from the barrier's release to its last operation.
pub fn per_thread<S, M, F>(threads: usize, iters: u64, make: M, op: F) -> Duration
where
    M: Fn() -> S + Sync,
    F: Fn(&mut S) + Sync,
{
    assert!(threads > 0, "at least one thread");
    let ready = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (make, op, ready) = (&make, &op, &ready);
                scope.spawn(move || {
                    let mut handle = make();
                    ready.fetch_add(1, Ordering::AcqRel);
                    while ready.load(Ordering::Acquire) < threads {
                        std::hint::spin_loop();
                    }
                    let start = Instant::now();
                    for _ in 0..iters {
                        op(&mut handle);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_thread_runs_every_iteration() {
        let counter = AtomicU64::new(0);
        let made = AtomicU64::new(0);
        let took = per_thread(
            2,
            1000,
            || {
                made.fetch_add(1, Ordering::Relaxed);
                &counter
            },
            |c| {
                c.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert_eq!(counter.load(Ordering::Relaxed), 2000);
        assert_eq!(made.load(Ordering::Relaxed), 2);
        assert!(took > Duration::ZERO);
    }
}
