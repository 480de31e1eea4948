//! The benchmarks behind DESIGN.md section 6, in one binary so that every
//! ratio compares figures from one run on one CPU.
//!
//! Groups (criterion ids, read by `bench-table`):
//!
//! - `floor/*`: an atomic load, an uncontended `fetch_add`, a successful CAS,
//!   `Instant::now()`, `MonotonicClock::now()` and `::coarse_now()`.
//! - `closed/*`: one protected call on a CLOSED breaker, single thread:
//!   circuit's `acquire` + `record(Success)` under each policy, `acquire`
//!   alone, the consecutive policy after a recovery and a ramp-up
//!   (`circuit_consecutive_recovered`), and each peer's cheapest closed call.
//! - `rejected/*`: one refused call on an OPEN breaker (opened by recording
//!   failures, with an open duration far longer than the run).
//! - `closed_threads/*/{1,2}` and `rejected_threads/*/{1,2}`: the same calls
//!   from 1 and 2 threads on one shared breaker, through
//!   [`circuit_benches::per_thread`]; the figure is time per operation per
//!   thread.
//!
//! Peers and the API measured for each:
//!
//! - failsafe 1.3 (`StateMachine`): `CircuitBreaker::call(|| Ok(()))`, which
//!   is `is_call_permitted` + `on_success` under its mutex; consecutive
//!   failures (5) and success rate over a time window (EMA) policies.
//! - recloser 1.4: `Recloser::call(|| Ok(()))`, 100-slot ring buffer,
//!   failure rate 0.5.
//! - tower-resilience-circuitbreaker 0.13: it offers only a tower `Service`,
//!   so a call is `poll_ready` + `call` on a `CircuitBreaker` around a
//!   `service_fn` that returns a ready future, driven by
//!   `futures::executor::block_on`; 100-call count window, failure rate 0.5.
//!   Its 2-thread rejection is not measured: under contention its
//!   `poll_ready` arms a 1 ms tokio timer, which needs a tokio runtime and
//!   measures the timer, not the breaker.

use std::hint::black_box;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use circuit_benches::{
    per_thread, take_concurrency_report, take_sample_scores, CONCURRENCY_FILE_ENV, MAX_ATTEMPTS,
    MIN_CONCURRENCY,
};
use circuit_core::{Breaker, Clock, MonotonicClock, State};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
};

#[path = "../shared/subjects.rs"]
mod subjects;
use subjects::*;

// ----- groups ----------------------------------------------------------------

fn floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("floor");
    let word = Padded(AtomicU64::new(0));
    g.bench_function("atomic_load", |b| {
        b.iter(|| black_box(&word.0).load(Ordering::Acquire))
    });
    g.bench_function("fetch_add", |b| {
        b.iter(|| black_box(&word.0).fetch_add(1, Ordering::Relaxed))
    });
    g.bench_function("cas", |b| {
        let mut current = word.0.load(Ordering::Relaxed);
        b.iter(|| {
            let next = current.wrapping_add(1);
            current = match black_box(&word.0).compare_exchange(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => next,
                Err(seen) => seen,
            };
        })
    });
    g.bench_function("instant_now", |b| b.iter(Instant::now));
    let clock = MonotonicClock::new();
    g.bench_function("monotonic_now", |b| b.iter(|| black_box(&clock).now()));
    g.bench_function("monotonic_coarse_now", |b| {
        b.iter(|| black_box(&clock).coarse_now())
    });
    g.finish();
}

fn closed(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed");

    let b = Breaker::new(consecutive(true));
    g.bench_function("circuit_acquire_only", |bench| {
        bench.iter(|| black_box(&b).acquire())
    });
    assert_closed(&b);

    for (name, config) in [
        ("circuit_consecutive", consecutive(true)),
        ("circuit_consecutive_no_metrics", consecutive(false)),
        ("circuit_count_window", count_window(true)),
        ("circuit_count_window_no_metrics", count_window(false)),
        ("circuit_time_window", time_window()),
    ] {
        let b = Breaker::new(config);
        g.bench_function(name, |bench| bench.iter(|| circuit_call(black_box(&b))));
        assert_closed(&b);
    }

    let b = recovered_after_ramp();
    g.bench_function("circuit_consecutive_recovered", |bench| {
        bench.iter(|| circuit_call(black_box(&b)))
    });
    assert_closed(&b);
    assert_eq!(b.ramp_fraction(), None);

    let fs = failsafe_consecutive();
    g.bench_function("failsafe_consecutive", |b| b.iter(|| failsafe_call(&fs)));
    assert!(fs.is_call_permitted());

    let fs = failsafe_rate(Duration::from_secs(10));
    g.bench_function("failsafe_rate", |b| b.iter(|| failsafe_call(&fs)));
    assert!(fs.is_call_permitted());

    let r = recloser();
    g.bench_function("recloser", |b| b.iter(|| recloser_call(&r)));
    assert!(recloser_call(&r).is_ok());

    let mut svc = tower_breaker();
    g.bench_function("tower_resilience", |b| {
        b.iter(|| tower_call(&mut svc, false))
    });
    assert!(tower_call(&mut svc, false).is_ok());
    g.finish();
}

fn rejected(c: &mut Criterion) {
    let mut g = c.benchmark_group("rejected");

    for (name, metrics) in [("circuit", true), ("circuit_no_metrics", false)] {
        let b = circuit_open(metrics);
        g.bench_function(name, |bench| bench.iter(|| black_box(&b).acquire()));
        assert_eq!(b.state(), State::Open);
    }

    let fs = failsafe_open(failsafe_consecutive(), Duration::ZERO);
    g.bench_function("failsafe_consecutive", |b| b.iter(|| failsafe_call(&fs)));
    assert!(!fs.is_call_permitted());

    // failsafe's rate policy trips only once its window (whole seconds) has
    // passed since it was created.
    let fs = failsafe_open(
        failsafe_rate(Duration::from_secs(1)),
        Duration::from_millis(10),
    );
    g.bench_function("failsafe_rate", |b| b.iter(|| failsafe_call(&fs)));
    assert!(!fs.is_call_permitted());

    let r = recloser_open();
    g.bench_function("recloser", |b| b.iter(|| recloser_call(&r)));
    assert!(recloser_call(&r).is_err());

    let mut svc = tower_open();
    g.bench_function("tower_resilience", |b| {
        b.iter(|| tower_call(&mut svc, false))
    });
    assert!(svc.is_open());
    g.finish();
}

/// Benchmarks `op` on handles made by `make` from 1 and 2 threads, and
/// reports how often the threads failed to run together (see
/// [`per_thread`]) on stderr and in the file named by
/// `CIRCUIT_BENCH_CONCURRENCY`, which `bench-table` reads.
fn threads<S, M, F>(group: &mut Group<'_>, name: &str, make: M, op: F)
where
    M: Fn() -> S + Sync,
    F: Fn(&mut S) + Sync,
{
    for n in THREADS {
        group
            .group
            .bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter_custom(|iters| per_thread(n, iters, &make, &op))
            });
        let report = take_concurrency_report();
        let id = format!("{}/{name}/{n}", group.name);
        if report.low_concurrency > 0 {
            eprintln!(
                "{id}: {} of {} samples ran below {MIN_CONCURRENCY} concurrency after \
                 {MAX_ATTEMPTS} attempts ({} attempts retried)",
                report.low_concurrency, report.samples, report.retries
            );
        }
        let scores = take_sample_scores();
        if let Some(path) = std::env::var_os(CONCURRENCY_FILE_ENV) {
            let lines: String = scores.iter().map(|s| s.to_line(&id)).collect();
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(lines.as_bytes()));
            if let Err(e) = written {
                eprintln!("cannot write {}: {e}", path.to_string_lossy());
            }
        }
    }
}

/// A criterion group of multi-thread benchmarks and its name.
struct Group<'a> {
    name: &'static str,
    group: BenchmarkGroup<'a, WallTime>,
}

impl<'a> Group<'a> {
    /// Flat sampling: every sample runs the same number of iterations, so
    /// none is much longer than the average; short samples are less likely
    /// to be split by the scheduler.
    fn new(c: &'a mut Criterion, name: &'static str) -> Group<'a> {
        let mut group = c.benchmark_group(name);
        group.sampling_mode(SamplingMode::Flat);
        Group { name, group }
    }
}

fn closed_threads(c: &mut Criterion) {
    let mut g = Group::new(c, "closed_threads");

    let word = Padded(AtomicU64::new(0));
    threads(
        &mut g,
        "fetch_add_shared",
        || &word.0,
        |w| {
            black_box(w.fetch_add(1, Ordering::Relaxed));
        },
    );

    for (name, config) in [
        ("circuit_consecutive", consecutive(true)),
        ("circuit_consecutive_no_metrics", consecutive(false)),
        ("circuit_count_window", count_window(true)),
    ] {
        let shared = Arc::new(Breaker::new(config));
        threads(
            &mut g,
            name,
            || Arc::clone(&shared),
            |b| {
                black_box(circuit_call(b));
            },
        );
        assert_closed(&shared);
    }

    let fs = failsafe_consecutive();
    threads(
        &mut g,
        "failsafe_consecutive",
        || fs.clone(),
        |cb| {
            let _ = black_box(failsafe_call(cb));
        },
    );
    let fs = failsafe_rate(Duration::from_secs(10));
    threads(
        &mut g,
        "failsafe_rate",
        || fs.clone(),
        |cb| {
            let _ = black_box(failsafe_call(cb));
        },
    );

    let r = Arc::new(recloser());
    threads(
        &mut g,
        "recloser",
        || Arc::clone(&r),
        |r| {
            let _ = black_box(recloser_call(r));
        },
    );

    // Clones of a tower-resilience service share one circuit.
    let svc = std::sync::Mutex::new(tower_breaker());
    threads(
        &mut g,
        "tower_resilience",
        || svc.lock().expect("not poisoned").clone(),
        |s| {
            let _ = black_box(tower_call(s, false));
        },
    );
    g.group.finish();
}

fn rejected_threads(c: &mut Criterion) {
    let mut g = Group::new(c, "rejected_threads");

    for (name, metrics) in [("circuit", true), ("circuit_no_metrics", false)] {
        let shared = Arc::new(circuit_open(metrics));
        threads(
            &mut g,
            name,
            || Arc::clone(&shared),
            |b| {
                let _ = black_box(b.acquire());
            },
        );
        assert_eq!(shared.state(), State::Open);
    }

    let fs = failsafe_open(failsafe_consecutive(), Duration::ZERO);
    threads(
        &mut g,
        "failsafe_consecutive",
        || fs.clone(),
        |cb| {
            let _ = black_box(failsafe_call(cb));
        },
    );

    let r = Arc::new(recloser_open());
    threads(
        &mut g,
        "recloser",
        || Arc::clone(&r),
        |r| {
            let _ = black_box(recloser_call(r));
        },
    );
    g.group.finish();
}

/// Registry lookups in a registry of 100,000 breakers (B9): an existing
/// name (the lock-free read every protected call by name makes), and the
/// same through `get_or_create`.
fn registry(c: &mut Criterion) {
    let mut g = c.benchmark_group("registry");
    let r = circuit_core::Registry::new(circuit_core::RegistryOptions::default());
    let names: Vec<String> = (0..100_000)
        .map(|i| format!("tenant-{i:06}/GET /v1/offers"))
        .collect();
    for n in &names {
        r.get_or_create(n).expect("under the cap");
    }
    let mut i = 0usize;
    g.bench_function("get_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % names.len();
            black_box(r.get(black_box(&names[i])))
        })
    });
    g.bench_function("get_or_create_existing_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % names.len();
            black_box(r.get_or_create(black_box(&names[i])).ok())
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    floor,
    closed,
    rejected,
    closed_threads,
    rejected_threads,
    registry
);
criterion_main!(benches);
