//! Every metric the Grafana dashboard queries is one the library emits: the
//! test renders a real registry (every kind of state, a latency histogram)
//! and looks for each metric name of each query among the rendered samples.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use circuit_core::prometheus::render_registry;
use circuit_core::{Config, ManualClock, Outcome, Override, Registry, RegistryOptions};

fn dashboard_metric_names() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards/circuit.json");
    let text = std::fs::read_to_string(path).expect("dashboards/circuit.json");
    let mut names = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| l.contains("\"expr\"") || l.contains("\"query\""))
    {
        let mut rest = line;
        while let Some(i) = rest.find("circuit_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names
}

#[test]
fn every_dashboard_metric_is_emitted() {
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let registry = Registry::with_clock(
        RegistryOptions {
            defaults: Config::builder()
                .consecutive_failures(Some(2))
                .failure_rate(Some(0.5))
                .slow_call(Some((0.5, Duration::from_millis(100))))
                .minimum_calls(2)
                .latency_histogram(Some(Duration::from_secs(60)))
                .build()
                .unwrap(),
            ..RegistryOptions::default()
        },
        clock.clone(),
    );
    // A group guard, so the group families are emitted too.
    registry
        .set_group("pool", circuit_core::GroupLimit::Count(1))
        .unwrap();
    registry.join_group("partner", "pool").unwrap();
    let b = registry.get_or_create("partner").unwrap();
    for d in [5, 200] {
        let p = b.acquire().unwrap();
        b.record(p, Outcome::Failure, Duration::from_millis(d));
    }
    assert!(b.acquire().is_err());
    registry
        .get_or_create("forced")
        .unwrap()
        .force(Override::ForcedOpen, None);
    let text = render_registry(&registry);
    let samples: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('{').next())
        .collect();

    let wanted = dashboard_metric_names();
    assert!(
        wanted.len() >= 8,
        "the dashboard should query the main families: {wanted:?}"
    );
    // The sync worker's families (`circuit_sync_*`) come from
    // `circuit_sync::SyncStats::prometheus`; sync/src/stats.rs checks them.
    for name in wanted.iter().filter(|n| !n.starts_with("circuit_sync_")) {
        assert!(
            samples.contains(name.as_str()),
            "dashboard queries {name}, which the library never emits"
        );
    }
}
