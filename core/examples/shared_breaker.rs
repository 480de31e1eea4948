//! A breaker shared by every worker process of a host (README "Host-shared
//! breakers"). Run by ci/rust.sh:
//!
//!   cargo run --release -p circuit-core --example shared_breaker
//!
//! It opens a segment under /dev/shm, protects a call, then opens the
//! segment a second time (as another worker process would) and shows that
//! failures recorded there open the first mapping's breaker; then a
//! registry on the segment, whose named breakers are the segment's.

use std::sync::Arc;
use std::time::Duration;

use circuit_core::shared::{shm_path, Segment, SegmentOptions};
use circuit_core::{Config, Outcome, Registry, RegistryOptions, State};

fn call_partner() -> Outcome {
    Outcome::Success
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("example-{}", std::process::id());
    // readme:begin shared
    // Every worker opens the same segment (the first one creates it) with
    // the same config; a segment made for another config is refused.
    let config = Config::builder().consecutive_failures(Some(5)).build()?;
    let path = shm_path(&name)?; // /dev/shm/circuit.<name>, mode 0600
    let segment = Arc::new(Segment::open(&path, &config, &SegmentOptions::default())?);
    // An ordinary `Breaker`: its state, deadline, window and counters are
    // the segment's, shared by every process that opens this name.
    let payments = segment.breaker("payments")?;
    match payments.acquire() {
        Ok(permit) => {
            let outcome = call_partner();
            payments.record(permit, outcome, Duration::from_millis(3));
        }
        Err(rejected) => eprintln!("payments unavailable: {rejected}"),
    }
    // readme:end shared

    // Another worker's mapping of the same segment.
    let other = Arc::new(Segment::open(&path, &config, &SegmentOptions::default())?);
    let theirs = other.breaker("payments")?;
    for _ in 0..5 {
        let permit = theirs.acquire().expect("closed");
        theirs.record(permit, Outcome::Failure, Duration::from_millis(3));
    }
    assert_eq!(payments.state(), State::Open);
    let m = payments.metrics();
    println!(
        "payments: {:?} after {} successes and {} failures from two mappings",
        payments.state(),
        m.outcome(Outcome::Success),
        m.outcome(Outcome::Failure)
    );

    // readme:begin registry
    // A registry whose breakers live on the segment: `get_or_create(name)`
    // is the segment's breaker of that name, shared with every process of
    // the host; its listeners, metrics and Prometheus export work as on any
    // registry. Its defaults must be the segment's config (per-name
    // configs other than it, and `reconfigure`, are refused).
    let registry = Registry::on_segment(
        segment.clone(),
        RegistryOptions {
            defaults: config.clone(),
            ..RegistryOptions::default()
        },
    )?;
    let events = registry.event_queue(64)?;
    // The same breaker as `payments` and `theirs`.
    let shared = registry.get_or_create("payments")?;
    // readme:end registry
    assert_eq!(shared.state(), State::Open);
    // A transition won through another mapping (another process) reaches
    // this registry's listeners with reason `Remote` on the next call.
    let _ = theirs.acquire(); // OPEN: rejected
    theirs.reset();
    let _ = shared.acquire();
    let event = events.poll().expect("the reset, won elsewhere");
    println!(
        "registry on the segment: payments {:?} after a reset through another mapping ({:?})",
        shared.state(),
        event.transition.reason
    );
    Segment::remove(&path)?;
    Ok(())
}
