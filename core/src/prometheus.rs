//! Prometheus text exposition (format 0.0.4) of breakers' metrics (B8).
//!
//! Families, each with `# HELP` and `# TYPE`, samples of one family together:
//!
//! | family | type | labels |
//! |---|---|---|
//! | `circuit_calls_total` | counter | `name`, `outcome` |
//! | `circuit_slow_calls_total` | counter | `name` |
//! | `circuit_stale_outcomes_total` | counter | `name` |
//! | `circuit_rejected_total` | counter | `name`, `reason` |
//! | `circuit_state` | gauge (one-hot) | `name`, `state` |
//! | `circuit_transitions_total` | counter | `name`, `from`, `to` |
//! | `circuit_state_seconds_total` | counter | `name`, `state` |
//! | `circuit_failure_rate` | gauge | `name` |
//! | `circuit_slow_call_rate` | gauge | `name` |
//! | `circuit_call_duration_seconds` | histogram | `name` (`le` on `_bucket`) |
//!
//! Registries with group guards (`crate::group`) add, per group (label
//! `group`), listed only when the registry has groups:
//!
//! | family | type |
//! |---|---|
//! | `circuit_group_members` | gauge |
//! | `circuit_group_open` | gauge (members OPEN or HALF_OPEN) |
//! | `circuit_group_max_open` | gauge |
//! | `circuit_group_refused_trips_total` | counter |
//!
//! The duration histogram lists only breakers configured with a latency
//! histogram; its samples cover the histogram's window (one to two periods),
//! so its `_count` can fall when old samples age out, unlike a cumulative
//! Prometheus histogram: use it for `histogram_quantile` over the window, not
//! for `rate()`.
//!
//! `circuit_transitions_total` always lists the four automatic pairs
//! (closed to open, open to half_open, half_open to open, half_open to
//! closed) so `rate()` has a series from the start, plus every other pair
//! that has happened. Label values are escaped as the format requires
//! (backslash, double quote, line feed); any other byte, non-ASCII included,
//! passes through as UTF-8.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::call::{Outcome, RejectReason};
use crate::group::GroupStats;
use crate::histogram::HistogramSnapshot;
use crate::metrics::MetricsSnapshot;
use crate::{Breaker, Registry, State};

/// Names of every metric family this module emits (for dashboards and their
/// tests).
pub const FAMILIES: [&str; 10] = [
    "circuit_calls_total",
    "circuit_slow_calls_total",
    "circuit_stale_outcomes_total",
    "circuit_rejected_total",
    "circuit_state",
    "circuit_transitions_total",
    "circuit_state_seconds_total",
    "circuit_failure_rate",
    "circuit_slow_call_rate",
    "circuit_call_duration_seconds",
];

/// Transitions listed even at zero, so that `rate()` has a series from
/// the start: the four automatic pairs.
pub const ALWAYS_LISTED: [(State, State); 4] = [
    (State::Closed, State::Open),
    (State::Open, State::HalfOpen),
    (State::HalfOpen, State::Open),
    (State::HalfOpen, State::Closed),
];

/// What each family measures: its name, Prometheus type and help text
/// (also the description other exporters give it, e.g. `circuit-otel`).
pub const HELP: [(&str, &str, &str); 10] = [
    (
        "circuit_calls_total",
        "counter",
        "Calls recorded, by outcome.",
    ),
    (
        "circuit_slow_calls_total",
        "counter",
        "Recorded calls at least as long as the slow-call threshold.",
    ),
    (
        "circuit_stale_outcomes_total",
        "counter",
        "Outcomes reported with a permit of an older generation; they changed nothing.",
    ),
    (
        "circuit_rejected_total",
        "counter",
        "Calls refused, by reason.",
    ),
    (
        "circuit_state",
        "gauge",
        "Current state: 1 for the state the breaker is in, 0 otherwise.",
    ),
    (
        "circuit_transitions_total",
        "counter",
        "State transitions, by source and target state.",
    ),
    (
        "circuit_state_seconds_total",
        "counter",
        "Time spent in each state, in seconds.",
    ),
    (
        "circuit_failure_rate",
        "gauge",
        "Failure rate over the current window (0 to 1).",
    ),
    (
        "circuit_slow_call_rate",
        "gauge",
        "Slow-call rate over the current window (0 to 1).",
    ),
    (
        "circuit_call_duration_seconds",
        "histogram",
        "Duration of recorded calls over the histogram window, in seconds.",
    ),
];

/// Appends `value` to `out` escaped as a label value.
pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Group families, listed when a registry has groups.
pub const GROUP_FAMILIES: [&str; 4] = [
    "circuit_group_members",
    "circuit_group_open",
    "circuit_group_max_open",
    "circuit_group_refused_trips_total",
];

/// Renders every breaker of `registry`, sorted by name, then its groups.
pub fn render_registry(registry: &Registry) -> String {
    let mut out = render(&registry.sorted());
    render_groups(&mut out, &registry.groups());
    out
}

/// Appends the group families (nothing when `groups` is empty).
pub fn render_groups(out: &mut String, groups: &[GroupStats]) {
    if groups.is_empty() {
        return;
    }
    let help = [
        "Breakers in the group.",
        "Members OPEN or HALF_OPEN (holding a place under the group guard).",
        "Most members that may be OPEN or HALF_OPEN at once.",
        "Trips the group guard refused (shadow trips).",
    ];
    for (i, f) in GROUP_FAMILIES.iter().enumerate() {
        let kind = if f.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        family_with(out, f, kind, help[i]);
        for g in groups {
            let v = [
                g.members as u64,
                g.open as u64,
                g.max_open as u64,
                g.refused_trips,
            ][i];
            out.push_str(f);
            out.push_str("{group=\"");
            escape_label_value(out, &g.name);
            let _ = writeln!(out, "\"}} {v}");
        }
    }
}

/// Renders the given breakers (their own names label them).
pub fn render(breakers: &[(Arc<str>, Arc<Breaker>)]) -> String {
    let snaps: Vec<(&str, MetricsSnapshot)> =
        breakers.iter().map(|(n, b)| (&**n, b.metrics())).collect();
    let latencies: Vec<(&str, HistogramSnapshot)> = breakers
        .iter()
        .filter_map(|(n, b)| Some((&**n, b.latency()?)))
        .collect();
    let mut out = String::with_capacity(256 + snaps.len() * 2048);
    let w = &mut out;

    family(w, "circuit_calls_total");
    for (name, m) in &snaps {
        for o in Outcome::ALL {
            sample(
                w,
                "circuit_calls_total",
                name,
                &[("outcome", o.as_str())],
                m.outcome(o),
            );
        }
    }
    family(w, "circuit_slow_calls_total");
    for (name, m) in &snaps {
        sample(w, "circuit_slow_calls_total", name, &[], m.slow);
    }
    family(w, "circuit_stale_outcomes_total");
    for (name, m) in &snaps {
        sample(w, "circuit_stale_outcomes_total", name, &[], m.stale);
    }
    family(w, "circuit_rejected_total");
    for (name, m) in &snaps {
        for r in RejectReason::ALL {
            sample(
                w,
                "circuit_rejected_total",
                name,
                &[("reason", r.as_str())],
                m.rejected[r as usize],
            );
        }
    }
    family(w, "circuit_state");
    for (name, m) in &snaps {
        for s in State::ALL {
            let on = u64::from(m.state == Some(s));
            sample(w, "circuit_state", name, &[("state", s.as_str())], on);
        }
    }
    family(w, "circuit_transitions_total");
    for (name, m) in &snaps {
        for from in State::ALL {
            for to in State::ALL {
                let n = m.transitions[from.index()][to.index()];
                if n > 0 || ALWAYS_LISTED.contains(&(from, to)) {
                    let labels = [("from", from.as_str()), ("to", to.as_str())];
                    sample(w, "circuit_transitions_total", name, &labels, n);
                }
            }
        }
    }
    family(w, "circuit_state_seconds_total");
    for (name, m) in &snaps {
        for s in State::ALL {
            let secs = m.nanos_in_state[s.index()] as f64 / 1e9;
            sample_f(
                w,
                "circuit_state_seconds_total",
                name,
                &[("state", s.as_str())],
                secs,
            );
        }
    }
    family(w, "circuit_failure_rate");
    for (name, m) in &snaps {
        sample_f(w, "circuit_failure_rate", name, &[], m.failure_rate);
    }
    family(w, "circuit_slow_call_rate");
    for (name, m) in &snaps {
        sample_f(w, "circuit_slow_call_rate", name, &[], m.slow_call_rate);
    }
    if !latencies.is_empty() {
        family(w, "circuit_call_duration_seconds");
        for (name, h) in &latencies {
            for b in h.prometheus_buckets() {
                sample(
                    w,
                    "circuit_call_duration_seconds_bucket",
                    name,
                    &[("le", b.le)],
                    b.cumulative,
                );
            }
            let sum = h.sum_nanos() as f64 / 1e9;
            sample_f(w, "circuit_call_duration_seconds_sum", name, &[], sum);
            sample(
                w,
                "circuit_call_duration_seconds_count",
                name,
                &[],
                h.count(),
            );
        }
    }
    out
}

/// `# HELP` and `# TYPE` name the samples themselves, `_total` included, as
/// the 0.0.4 text format requires (OpenMetrics would drop the suffix).
fn family(out: &mut String, name: &str) {
    let (_, kind, help) = HELP
        .iter()
        .find(|h| h.0 == name)
        .copied()
        .unwrap_or_default();
    family_with(out, name, kind, help);
}

/// `# HELP` and `# TYPE` of a family whose text is not in [`HELP`].
fn family_with(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn labels(out: &mut String, metric: &str, breaker: &str, extra: &[(&str, &str)]) {
    out.push_str(metric);
    out.push_str("{name=\"");
    escape_label_value(out, breaker);
    out.push('"');
    for (k, v) in extra {
        let _ = write!(out, ",{k}=\"");
        escape_label_value(out, v);
        out.push('"');
    }
    out.push_str("} ");
}

fn sample(out: &mut String, metric: &str, breaker: &str, extra: &[(&str, &str)], v: u64) {
    labels(out, metric, breaker, extra);
    let _ = writeln!(out, "{v}");
}

fn sample_f(out: &mut String, metric: &str, breaker: &str, extra: &[(&str, &str)], v: f64) {
    labels(out, metric, breaker, extra);
    let _ = writeln!(out, "{v}");
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use crate::{Config, ManualClock, RegistryOptions};
    use std::time::Duration;

    #[test]
    fn every_family_has_its_help_and_type() {
        for (f, (name, kind, help)) in FAMILIES.iter().zip(HELP) {
            assert_eq!(*f, name);
            assert!(!kind.is_empty() && !help.is_empty());
        }
    }

    #[test]
    fn escapes_label_values() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\\b\"c\nd é");
        assert_eq!(s, "a\\\\b\\\"c\\nd é");
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let r = Registry::with_clock(
            RegistryOptions {
                defaults: Config::builder()
                    .consecutive_failures(Some(1))
                    .latency_histogram(Some(Duration::from_secs(60)))
                    .build()
                    .unwrap(),
                ..RegistryOptions::default()
            },
            Arc::new(ManualClock::new(0)),
        );
        let b = r.get_or_create("db").unwrap();
        let p = b.acquire().unwrap();
        b.record(p, Outcome::Failure, Duration::from_millis(1));
        assert!(b.acquire().is_err());
        let text = render_registry(&r);
        for f in FAMILIES {
            assert!(text.contains(&format!("# TYPE {f} ")), "{f} missing TYPE");
            let sample = match f {
                "circuit_call_duration_seconds" => "circuit_call_duration_seconds_count",
                f => f,
            };
            assert!(
                text.contains(&format!("\n{sample}{{name=\"db\"")),
                "{f} missing sample"
            );
        }
        let bucket = |le: &str, n: u64| {
            format!("circuit_call_duration_seconds_bucket{{name=\"db\",le=\"{le}\"}} {n}\n")
        };
        assert!(text.contains(&bucket("0.001", 0)), "{text}");
        assert!(text.contains(&bucket("0.0025", 1)));
        assert!(text.contains(&bucket("+Inf", 1)));
        assert!(text.contains("circuit_calls_total{name=\"db\",outcome=\"failure\"} 1\n"));
        assert!(text.contains("circuit_rejected_total{name=\"db\",reason=\"open\"} 1\n"));
        assert!(text.contains("circuit_state{name=\"db\",state=\"open\"} 1\n"));
        assert!(text.contains("circuit_state{name=\"db\",state=\"closed\"} 0\n"));
        assert!(
            text.contains("circuit_transitions_total{name=\"db\",from=\"closed\",to=\"open\"} 1\n")
        );
        assert!(!text.contains("circuit_group_"));
    }

    #[test]
    fn renders_groups_with_their_numbers() {
        let r = Registry::with_clock(
            RegistryOptions {
                defaults: Config::builder()
                    .consecutive_failures(Some(1))
                    .build()
                    .unwrap(),
                ..RegistryOptions::default()
            },
            Arc::new(ManualClock::new(0)),
        );
        r.set_group("po\"ol", crate::GroupLimit::Count(1)).unwrap();
        for n in ["a", "b"] {
            r.join_group(n, "po\"ol").unwrap();
            let b = r.get_or_create(n).unwrap();
            let p = b.acquire().unwrap();
            b.record(p, Outcome::Failure, Duration::from_millis(1));
        }
        let text = render_registry(&r);
        for f in GROUP_FAMILIES {
            assert!(text.contains(&format!("# TYPE {f} ")), "{f} missing TYPE");
        }
        assert!(
            text.contains("circuit_group_members{group=\"po\\\"ol\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("circuit_group_open{group=\"po\\\"ol\"} 1\n"));
        assert!(text.contains("circuit_group_max_open{group=\"po\\\"ol\"} 1\n"));
        assert!(text.contains("circuit_group_refused_trips_total{group=\"po\\\"ol\"} 1\n"));
        assert!(text.contains("# TYPE circuit_group_refused_trips_total counter\n"));
    }
}
