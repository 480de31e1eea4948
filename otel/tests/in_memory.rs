//! The exported instruments read back through the SDK's in-memory
//! exporter: every Prometheus family but the windowed histogram is there
//! under its own name, and every data point equals the sample the
//! Prometheus text gives for the same attributes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use circuit_core::prometheus::{escape_label_value, render_registry, FAMILIES};
use circuit_core::{Config, ManualClock, Outcome, Registry, RegistryOptions, State};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

/// The Prometheus sample line of a data point: `name` first, then the
/// family's other labels in the order the text format writes them.
fn prometheus_line(family: &str, attrs: &[KeyValue], value: String) -> String {
    let order: &[&str] = match family {
        "circuit_calls_total" => &["outcome"],
        "circuit_rejected_total" => &["reason"],
        "circuit_state" | "circuit_state_seconds_total" => &["state"],
        "circuit_transitions_total" => &["from", "to"],
        _ => &[],
    };
    let get = |k: &str| {
        attrs
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .unwrap_or_else(|| panic!("{family}: no attribute {k}"))
            .value
            .as_str()
            .into_owned()
    };
    assert_eq!(attrs.len(), order.len() + 1, "{family}: {attrs:?}");
    let mut line = format!("{family}{{name=\"");
    escape_label_value(&mut line, &get("name"));
    line.push('"');
    for k in order {
        line.push_str(&format!(",{k}=\""));
        escape_label_value(&mut line, &get(k));
        line.push('"');
    }
    line.push_str(&format!("}} {value}\n"));
    line
}

#[test]
fn every_family_reads_back_as_the_prometheus_text_has_it() {
    let clock = Arc::new(ManualClock::new(0));
    let options = RegistryOptions {
        defaults: Config::builder()
            .consecutive_failures(Some(2))
            .failure_rate(Some(0.9))
            .minimum_calls(100)
            .jitter(0.0)
            .build()
            .unwrap(),
        ..RegistryOptions::default()
    };
    let registry = Arc::new(Registry::with_clock(options, clock.clone()));

    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let _instruments = circuit_otel::observe_registry(&provider.meter("circuit"), registry.clone());

    // Breakers created after registration are observed too.
    let db = registry.get_or_create("db").unwrap();
    let cache = registry.get_or_create("cache \"eu\"").unwrap();
    for outcome in [
        Outcome::Success,
        Outcome::Ignored,
        Outcome::Failure,
        Outcome::Timeout,
    ] {
        let p = db.acquire().unwrap();
        clock.advance(Duration::from_millis(250));
        db.record(p, outcome, Duration::from_millis(5));
    }
    assert_eq!(db.state(), State::Open);
    assert!(db.acquire().is_err());
    let p = cache.acquire().unwrap();
    cache.record(p, Outcome::Success, Duration::from_millis(1));
    clock.advance(Duration::from_secs(3));

    provider.force_flush().unwrap();
    let text = render_registry(&registry);
    let exported = exporter.get_finished_metrics().unwrap();
    let last = exported.last().expect("one collection");
    let mut names = BTreeSet::new();
    let mut points = 0;
    for scope in last.scope_metrics() {
        for metric in scope.metrics() {
            let family = metric.name();
            names.insert(family.to_owned());
            assert!(!metric.description().is_empty(), "{family}");
            let mut check = |attrs: Vec<KeyValue>, value: String| {
                let line = prometheus_line(family, &attrs, value);
                assert!(text.contains(&line), "{line:?} is not in\n{text}");
                points += 1;
            };
            match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(s)) => {
                    assert!(s.is_monotonic(), "{family}");
                    for d in s.data_points() {
                        check(d.attributes().cloned().collect(), d.value().to_string());
                    }
                }
                AggregatedMetrics::F64(MetricData::Sum(s)) => {
                    for d in s.data_points() {
                        check(d.attributes().cloned().collect(), d.value().to_string());
                    }
                }
                AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                    for d in g.data_points() {
                        check(d.attributes().cloned().collect(), d.value().to_string());
                    }
                }
                AggregatedMetrics::F64(MetricData::Gauge(g)) => {
                    for d in g.data_points() {
                        check(d.attributes().cloned().collect(), d.value().to_string());
                    }
                }
                other => panic!("{family}: unexpected data {other:?}"),
            }
        }
    }
    let want: BTreeSet<String> = FAMILIES
        .iter()
        .filter(|f| **f != "circuit_call_duration_seconds")
        .map(|f| f.to_string())
        .collect();
    assert_eq!(names, want);
    // Two breakers: 4 outcomes, 1 slow, 1 stale, 3 reasons, 7 states, 4+
    // transitions, 7 state times, 2 rates each.
    assert!(
        points >= 2 * (4 + 1 + 1 + 3 + 7 + 4 + 7 + 2),
        "{points} points"
    );
    // Values that moved, spelled out.
    assert!(text.contains("circuit_calls_total{name=\"db\",outcome=\"timeout\"} 1\n"));
    assert!(text.contains("circuit_rejected_total{name=\"db\",reason=\"open\"} 1\n"));
    assert!(text.contains("circuit_state{name=\"db\",state=\"open\"} 1\n"));
    assert!(text.contains("circuit_state_seconds_total{name=\"db\",state=\"open\"} 3\n"));
    assert!(text.contains("circuit_state{name=\"cache \\\"eu\\\"\",state=\"closed\"} 1\n"));
    provider.shutdown().unwrap();
}
