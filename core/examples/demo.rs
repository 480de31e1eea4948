//! Trips and recovers a breaker on simulated time, printing each transition.
//!
//! `cargo run -p circuit-core --example demo`

use std::sync::Arc;
use std::time::Duration;

use circuit_core::{Breaker, Config, ManualClock, Outcome, Transition};

fn main() {
    let clock = Arc::new(ManualClock::new(0));
    let config = Config::builder()
        .consecutive_failures(Some(3))
        .open_duration(Duration::from_secs(15))
        .jitter(0.0)
        .build()
        .expect("valid config");
    let start = std::time::Instant::now();
    let listener = Arc::new(|t: &Transition| {
        println!(
            "  t={:>5.1}s  {:<10} -> {:<10} gen {:<3} ({})",
            t.at as f64 / 1e9,
            t.from.as_str(),
            t.to.as_str(),
            t.generation,
            t.reason.as_str()
        );
    });
    let breaker = Breaker::build(config, clock.clone(), Some(listener));

    // (seconds, partner healthy?) phases of a partner service.
    let phases = [(0..5, true), (5..20, false), (20..40, true)];
    let (mut calls, mut fallbacks) = (0u32, 0u32);
    println!("a partner fails from t=5s to t=20s; the breaker opens after 3 failures");
    for (range, healthy) in phases {
        for second in range {
            clock.set(second * 1_000_000_000);
            for _ in 0..2 {
                calls += 1;
                match breaker.acquire() {
                    Ok(permit) => {
                        let outcome = if healthy {
                            Outcome::Success
                        } else {
                            Outcome::Failure
                        };
                        breaker.record(permit, outcome, Duration::from_millis(20));
                    }
                    Err(_) => fallbacks += 1,
                }
            }
        }
    }
    let m = breaker.metrics();
    println!(
        "{calls} calls, {fallbacks} answered by the fallback, {} failures reached the partner, final state {}",
        m.outcome(Outcome::Failure),
        breaker.state().as_str()
    );
    println!("(simulated 40 s in {:?})", start.elapsed());
}
