//! Runs one benchmark scenario `N` times on one thread, for counting the
//! instructions a call costs (ci/bench.sh runs it under valgrind's
//! cachegrind with two values of `N`: the difference divided by the
//! difference of `N` is the cost of one call, setup excluded). Instruction
//! counts do not depend on what else the machine is running, unlike time.
//!
//! ```text
//! cargo run --release -p circuit-benches --example instructions -- list
//! cargo run --release -p circuit-benches --example instructions -- closed/recloser 100000
//! ```

use std::hint::black_box;
use std::time::Duration;

#[path = "../shared/subjects.rs"]
mod subjects;
use subjects::*;

/// Scenario ids, named as the criterion ids they mirror.
const SCENARIOS: &[&str] = &[
    "closed/circuit_consecutive",
    "closed/circuit_consecutive_no_metrics",
    "closed/circuit_count_window",
    "closed/circuit_count_window_no_metrics",
    "closed/circuit_time_window",
    "closed/circuit_consecutive_recovered",
    "closed/failsafe_consecutive",
    "closed/failsafe_rate",
    "closed/recloser",
    "closed/tower_resilience",
    "rejected/circuit",
    "rejected/circuit_no_metrics",
    "rejected/failsafe_consecutive",
    "rejected/recloser",
    "rejected/tower_resilience",
];

fn repeat(n: u64, mut op: impl FnMut()) {
    for _ in 0..n {
        op();
    }
}

fn run(scenario: &str, n: u64) -> Result<(), String> {
    match scenario {
        "closed/circuit_consecutive" => circuit_closed(consecutive(true), n),
        "closed/circuit_consecutive_no_metrics" => circuit_closed(consecutive(false), n),
        "closed/circuit_count_window" => circuit_closed(count_window(true), n),
        "closed/circuit_count_window_no_metrics" => circuit_closed(count_window(false), n),
        "closed/circuit_time_window" => circuit_closed(time_window(), n),
        "closed/circuit_consecutive_recovered" => {
            let b = recovered_after_ramp();
            repeat(n, || {
                let _ = black_box(circuit_call(black_box(&b)));
            });
            assert_closed(&b);
        }
        "closed/failsafe_consecutive" => {
            let fs = failsafe_consecutive();
            repeat(n, || {
                let _ = black_box(failsafe_call(black_box(&fs)));
            });
        }
        "closed/failsafe_rate" => {
            let fs = failsafe_rate(Duration::from_secs(10));
            repeat(n, || {
                let _ = black_box(failsafe_call(black_box(&fs)));
            });
        }
        "closed/recloser" => {
            let r = recloser();
            repeat(n, || {
                let _ = black_box(recloser_call(black_box(&r)));
            });
        }
        "closed/tower_resilience" => {
            let mut svc = tower_breaker();
            repeat(n, || {
                let _ = black_box(tower_call(&mut svc, false));
            });
        }
        "rejected/circuit" | "rejected/circuit_no_metrics" => {
            let b = circuit_open(scenario == "rejected/circuit");
            repeat(n, || {
                let _ = black_box(black_box(&b).acquire());
            });
        }
        "rejected/failsafe_consecutive" => {
            let fs = failsafe_open(failsafe_consecutive(), Duration::ZERO);
            repeat(n, || {
                let _ = black_box(failsafe_call(black_box(&fs)));
            });
        }
        "rejected/recloser" => {
            let r = recloser_open();
            repeat(n, || {
                let _ = black_box(recloser_call(black_box(&r)));
            });
        }
        "rejected/tower_resilience" => {
            let mut svc = tower_open();
            repeat(n, || {
                let _ = black_box(tower_call(&mut svc, false));
            });
        }
        other => return Err(format!("unknown scenario {other:?} (try `list`)")),
    }
    Ok(())
}

fn circuit_closed(config: circuit_core::Config, n: u64) {
    let b = circuit_core::Breaker::new(config);
    repeat(n, || {
        let _ = black_box(circuit_call(black_box(&b)));
    });
    assert_closed(&b);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [list] if list == "list" => SCENARIOS.iter().for_each(|s| println!("{s}")),
        [scenario, n] => {
            let n = match n.parse() {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("instructions: bad count {n:?}: {e}");
                    std::process::exit(2);
                }
            };
            if let Err(e) = run(scenario, n) {
                eprintln!("instructions: {e}");
                std::process::exit(2);
            }
        }
        _ => {
            eprintln!("usage: instructions list | instructions SCENARIO COUNT");
            std::process::exit(2);
        }
    }
}
