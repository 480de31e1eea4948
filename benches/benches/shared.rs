//! Host-shared breakers (issue 17) against the in-process breaker, in one
//! run so that every ratio compares figures from one CPU and one moment.
//!
//! - `shared/closed/{in_process,host_shared}`: one protected call
//!   (`acquire` + `record(Success)`) on a CLOSED breaker with the
//!   consecutive policy, single thread, no other user of the breaker.
//! - `shared/contended/{in_process_2_threads,host_shared_2_processes}`: the
//!   same call while a second caller makes the same calls in a loop on the
//!   same breaker: another thread for the in-process breaker, another
//!   process (this binary, re-run with `CIRCUIT_BENCH_SHARED_CHILD` set) on
//!   the same slot for the host-shared one. The figure is this thread's
//!   time per call.
//!
//!   cargo bench -p circuit-benches --bench shared

use std::hint::black_box;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use circuit_core::shared::{Segment, SegmentOptions};
use circuit_core::Breaker;
use criterion::{criterion_group, Criterion};

#[path = "../shared/subjects.rs"]
mod subjects;
use subjects::*;

const CHILD_ENV: &str = "CIRCUIT_BENCH_SHARED_CHILD";
const NAME: &str = "bench";

fn segment_path() -> PathBuf {
    std::env::temp_dir().join(format!("circuit-bench-shared-{}", std::process::id()))
}

fn open(path: &std::path::Path) -> Breaker {
    let seg = Segment::open(path, &consecutive(true), &SegmentOptions::default())
        .expect("open the bench segment");
    Arc::new(seg).breaker(NAME).expect("a slot")
}

/// The second process of the contended benchmark: calls until killed.
fn child(path: &str) {
    let b = open(std::path::Path::new(path));
    loop {
        black_box(circuit_call(black_box(&b)));
    }
}

struct Hammer(Child);

impl Drop for Hammer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shared(c: &mut Criterion) {
    let path = segment_path();
    let _ = std::fs::remove_file(&path);
    let local = Arc::new(Breaker::new(consecutive(true)));
    let host = open(&path);

    let mut g = c.benchmark_group("shared/closed");
    g.bench_function("in_process", |bench| {
        bench.iter(|| circuit_call(black_box(&local)))
    });
    g.bench_function("host_shared", |bench| {
        bench.iter(|| circuit_call(black_box(&host)))
    });
    g.finish();

    let mut g = c.benchmark_group("shared/contended");
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (b, stop) = (local.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                black_box(circuit_call(black_box(&b)));
            }
        })
    };
    g.bench_function("in_process_2_threads", |bench| {
        bench.iter(|| circuit_call(black_box(&local)))
    });
    stop.store(true, Ordering::Relaxed);
    other.join().expect("the second thread");

    let hammer = Hammer(
        Command::new(std::env::current_exe().expect("this binary"))
            .env(CHILD_ENV, &path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("the second process"),
    );
    // Let it map the segment and start calling.
    std::thread::sleep(Duration::from_millis(200));
    g.bench_function("host_shared_2_processes", |bench| {
        bench.iter(|| circuit_call(black_box(&host)))
    });
    drop(hammer);
    g.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, shared);

fn main() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&path);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
