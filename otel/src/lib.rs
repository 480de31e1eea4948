//! # circuit-otel
//!
//! Exports a [`circuit_core::Registry`]'s metrics through OpenTelemetry's
//! metric API: one observable instrument per Prometheus family of
//! [`circuit_core::prometheus`], with the same names, the same attributes
//! (`name` of the breaker, and `outcome`, `reason`, `state`, `from`, `to`
//! as the family has them) and the same values, read from the breakers when
//! the SDK collects. Dashboards and alerts written for the Prometheus text
//! work on either.
//!
//! | instrument | kind | attributes |
//! |---|---|---|
//! | `circuit_calls_total` | u64 observable counter | `name`, `outcome` |
//! | `circuit_slow_calls_total` | u64 observable counter | `name` |
//! | `circuit_stale_outcomes_total` | u64 observable counter | `name` |
//! | `circuit_rejected_total` | u64 observable counter | `name`, `reason` |
//! | `circuit_state` | u64 observable gauge (one-hot) | `name`, `state` |
//! | `circuit_transitions_total` | u64 observable counter | `name`, `from`, `to` |
//! | `circuit_state_seconds_total` | f64 observable counter (unit `s`) | `name`, `state` |
//! | `circuit_failure_rate` | f64 observable gauge (unit `1`) | `name` |
//! | `circuit_slow_call_rate` | f64 observable gauge (unit `1`) | `name` |
//!
//! `circuit_call_duration_seconds` is not exported: the breaker's latency
//! histogram covers a sliding window (its count can fall), which neither
//! OpenTelemetry's cumulative histograms nor its asynchronous instruments
//! (there is no asynchronous histogram) can represent. Record durations
//! with a synchronous OpenTelemetry histogram where the calls are made.
//!
//! ```
//! use circuit_core::Registry;
//! use opentelemetry::metrics::MeterProvider as _;
//! use std::sync::Arc;
//!
//! # let provider = opentelemetry::metrics::noop::NoopMeterProvider::new();
//! let registry = Arc::new(Registry::default());
//! let meter = provider.meter("circuit");
//! let _instruments = circuit_otel::observe_registry(&meter, registry.clone());
//! ```

use std::sync::Arc;

use circuit_core::prometheus::{ALWAYS_LISTED, HELP};
use circuit_core::{Outcome, Registry, RejectReason, State};
use opentelemetry::metrics::{AsyncInstrument, Meter, ObservableCounter, ObservableGauge};
use opentelemetry::KeyValue;

/// The instruments observing one registry. The SDK calls their callbacks
/// at each collection for as long as its meter provider lives.
#[derive(Debug)]
pub struct RegistryInstruments {
    /// `circuit_calls_total`.
    pub calls: ObservableCounter<u64>,
    /// `circuit_slow_calls_total`.
    pub slow_calls: ObservableCounter<u64>,
    /// `circuit_stale_outcomes_total`.
    pub stale_outcomes: ObservableCounter<u64>,
    /// `circuit_rejected_total`.
    pub rejected: ObservableCounter<u64>,
    /// `circuit_state`.
    pub state: ObservableGauge<u64>,
    /// `circuit_transitions_total`.
    pub transitions: ObservableCounter<u64>,
    /// `circuit_state_seconds_total`.
    pub state_seconds: ObservableCounter<f64>,
    /// `circuit_failure_rate`.
    pub failure_rate: ObservableGauge<f64>,
    /// `circuit_slow_call_rate`.
    pub slow_call_rate: ObservableGauge<f64>,
}

/// The description of a family: its Prometheus help text.
fn help(family: &'static str) -> &'static str {
    HELP.iter().find(|h| h.0 == family).map_or("", |h| h.2)
}

/// The `name` attribute of a breaker.
fn name(breaker: &Arc<str>) -> KeyValue {
    KeyValue::new("name", breaker.to_string())
}

/// Calls `observe` for every breaker of `registry` with its attribute
/// `name` and its metrics snapshot.
fn each_breaker<T>(
    registry: &Registry,
    observer: &dyn AsyncInstrument<T>,
    observe: impl Fn(&dyn AsyncInstrument<T>, KeyValue, &circuit_core::MetricsSnapshot),
) {
    registry.for_each(|n, b| observe(observer, name(n), &b.metrics()));
}

/// Registers the instruments of every family on `meter`, reading
/// `registry` at each collection (breakers created later included).
pub fn observe_registry(meter: &Meter, registry: Arc<Registry>) -> RegistryInstruments {
    let r = registry.clone();
    let calls = meter
        .u64_observable_counter("circuit_calls_total")
        .with_description(help("circuit_calls_total"))
        .with_callback(move |o| {
            each_breaker(&r, o, |o, n, m| {
                for outcome in Outcome::ALL {
                    let attrs = [n.clone(), KeyValue::new("outcome", outcome.as_str())];
                    o.observe(m.outcome(outcome), &attrs);
                }
            })
        })
        .build();
    let r = registry.clone();
    let slow_calls = meter
        .u64_observable_counter("circuit_slow_calls_total")
        .with_description(help("circuit_slow_calls_total"))
        .with_callback(move |o| each_breaker(&r, o, |o, n, m| o.observe(m.slow, &[n])))
        .build();
    let r = registry.clone();
    let stale_outcomes = meter
        .u64_observable_counter("circuit_stale_outcomes_total")
        .with_description(help("circuit_stale_outcomes_total"))
        .with_callback(move |o| each_breaker(&r, o, |o, n, m| o.observe(m.stale, &[n])))
        .build();
    let r = registry.clone();
    let rejected = meter
        .u64_observable_counter("circuit_rejected_total")
        .with_description(help("circuit_rejected_total"))
        .with_callback(move |o| {
            each_breaker(&r, o, |o, n, m| {
                for reason in RejectReason::ALL {
                    let attrs = [n.clone(), KeyValue::new("reason", reason.as_str())];
                    o.observe(m.rejected[reason as usize], &attrs);
                }
            })
        })
        .build();
    let r = registry.clone();
    let state = meter
        .u64_observable_gauge("circuit_state")
        .with_description(help("circuit_state"))
        .with_callback(move |o| {
            each_breaker(&r, o, |o, n, m| {
                for s in State::ALL {
                    let attrs = [n.clone(), KeyValue::new("state", s.as_str())];
                    o.observe(u64::from(m.state == Some(s)), &attrs);
                }
            })
        })
        .build();
    let r = registry.clone();
    let transitions = meter
        .u64_observable_counter("circuit_transitions_total")
        .with_description(help("circuit_transitions_total"))
        .with_callback(move |o| {
            each_breaker(&r, o, |o, n, m| {
                for from in State::ALL {
                    for to in State::ALL {
                        let count = m.transitions[from.index()][to.index()];
                        if count > 0 || ALWAYS_LISTED.contains(&(from, to)) {
                            let attrs = [
                                n.clone(),
                                KeyValue::new("from", from.as_str()),
                                KeyValue::new("to", to.as_str()),
                            ];
                            o.observe(count, &attrs);
                        }
                    }
                }
            })
        })
        .build();
    let r = registry.clone();
    let state_seconds = meter
        .f64_observable_counter("circuit_state_seconds_total")
        .with_description(help("circuit_state_seconds_total"))
        .with_unit("s")
        .with_callback(move |o| {
            each_breaker(&r, o, |o, n, m| {
                for s in State::ALL {
                    let attrs = [n.clone(), KeyValue::new("state", s.as_str())];
                    o.observe(m.nanos_in_state[s.index()] as f64 / 1e9, &attrs);
                }
            })
        })
        .build();
    let r = registry.clone();
    let failure_rate = meter
        .f64_observable_gauge("circuit_failure_rate")
        .with_description(help("circuit_failure_rate"))
        .with_unit("1")
        .with_callback(move |o| each_breaker(&r, o, |o, n, m| o.observe(m.failure_rate, &[n])))
        .build();
    let r = registry;
    let slow_call_rate = meter
        .f64_observable_gauge("circuit_slow_call_rate")
        .with_description(help("circuit_slow_call_rate"))
        .with_unit("1")
        .with_callback(move |o| each_breaker(&r, o, |o, n, m| o.observe(m.slow_call_rate, &[n])))
        .build();
    RegistryInstruments {
        calls,
        slow_calls,
        stale_outcomes,
        rejected,
        state,
        transitions,
        state_seconds,
        failure_rate,
        slow_call_rate,
    }
}
