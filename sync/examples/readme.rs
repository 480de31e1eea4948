//! The Rust block of `sync/README.md` as a program that compiles in
//! `make test` (ci/readme_snippets.py keeps the block equal to the region
//! between the readme markers). Run it against a server of your own:
//!
//!     cargo run --release -p circuit-sync --example readme -- redis://127.0.0.1:6379/0
//!
//! It starts the sync, prints its status in the Prometheus text format
//! (DEGRADED until the first connection, which happens in the background)
//! and stops.

use std::sync::Arc;
use std::time::Duration;

use circuit_core::Registry;
use circuit_sync::{FleetPolicy, FleetSync, Quorum, SyncConfig, SyncError};

fn main() -> Result<(), SyncError> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_owned());
    run(&url)?;
    run_quorum(&url)
}

fn run(url: &str) -> Result<(), SyncError> {
    // readme:begin start
    let registry = Arc::new(Registry::default());
    let mut cfg = SyncConfig::new(url, "checkout");
    cfg.reconcile_every = Duration::from_secs(30);
    let sync = FleetSync::start(registry.clone(), cfg)?; // returns at once

    // ... the call path is unchanged ...

    let stats = sync.status(); // Connected / Degraded / Stopped + counters
    print!("{}", stats.prometheus(sync.namespace()));
    sync.stop(); // also on drop; bounded

    // readme:end start
    drop(registry);
    Ok(())
}

/// The quorum block of the top-level README.
fn run_quorum(url: &str) -> Result<(), SyncError> {
    let registry = Arc::new(Registry::default());
    // readme:begin quorum
    let mut cfg = SyncConfig::new(url, "checkout");
    // Open a breaker fleet-wide only once 2 live instances tripped within 30 s
    // (min_fraction: or a share of the live ones); until then only locally.
    cfg.fleet_policy = FleetPolicy::Quorum(Quorum {
        min_instances: 2,
        min_fraction: 0.0,
        window: Duration::from_secs(30),
    });
    let sync = FleetSync::start(registry.clone(), cfg)?;
    // Per breaker, for example back to the default for one of them:
    sync.set_fleet_policy("session-cache", FleetPolicy::First)?;
    // Votes that stayed below the quorum (circuit_sync_votes_total):
    let votes_below_quorum = sync.status().votes;
    // readme:end quorum
    println!("votes below the quorum: {votes_below_quorum}");
    sync.stop();
    Ok(())
}
