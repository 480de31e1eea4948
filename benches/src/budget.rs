//! The performance budgets of DESIGN.md section 6 as data, and the table that
//! checks them against one run's results.
//!
//! Every figure is in nanoseconds per operation (per operation per thread
//! for the `*_threads` groups), keyed by criterion's
//! full benchmark id (`group/function[/parameter]`). Every ratio compares
//! figures of the same run: the floor is `floor/atomic_load` +
//! `floor/fetch_add`, a peer reference is one named benchmark or the fastest
//! of several.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a benchmark is compared with in the "vs peer" column.
#[derive(Debug, Clone, Copy)]
pub enum Reference {
    /// No peer comparison.
    None,
    /// One named benchmark.
    One(&'static str),
    /// The fastest of these benchmarks (those present in the run).
    Fastest(&'static [&'static str]),
}

/// One budget: each limit that is set must hold for a PASS.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The budget as DESIGN.md states it, shortened for the table.
    pub text: &'static str,
    /// Largest allowed ratio to the floor (load + fetch_add).
    pub max_vs_floor: Option<f64>,
    /// Largest allowed ratio to the row's peer reference.
    pub max_vs_peer: Option<f64>,
    /// Largest allowed ratio to another benchmark of the same run, with a
    /// short name for the verdict.
    pub max_vs_other: Option<(&'static str, f64, &'static str)>,
}

/// A row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// Criterion's full id of the benchmark.
    pub id: &'static str,
    /// Peer reference for the "vs peer" column.
    pub peer: Reference,
    /// The budget checked on this row, if any.
    pub budget: Option<Budget>,
}

/// Id of the atomic load floor benchmark.
pub const FLOOR_LOAD: &str = "floor/atomic_load";
/// Id of the uncontended `fetch_add` floor benchmark.
pub const FLOOR_FETCH_ADD: &str = "floor/fetch_add";

const CLOSED_PEERS: &[&str] = &[
    "closed/failsafe_consecutive",
    "closed/failsafe_rate",
    "closed/recloser",
    "closed/tower_resilience",
];
const REJECTED_PEERS: &[&str] = &[
    "rejected/failsafe_consecutive",
    "rejected/failsafe_rate",
    "rejected/recloser",
    "rejected/tower_resilience",
];
const CLOSED_PEERS_1T: &[&str] = &[
    "closed_threads/failsafe_consecutive/1",
    "closed_threads/failsafe_rate/1",
    "closed_threads/recloser/1",
    "closed_threads/tower_resilience/1",
];
const CLOSED_PEERS_2T: &[&str] = &[
    "closed_threads/failsafe_consecutive/2",
    "closed_threads/failsafe_rate/2",
    "closed_threads/recloser/2",
    "closed_threads/tower_resilience/2",
];
const REJECTED_PEERS_1T: &[&str] = &[
    "rejected_threads/failsafe_consecutive/1",
    "rejected_threads/recloser/1",
];
const REJECTED_PEERS_2T: &[&str] = &[
    "rejected_threads/failsafe_consecutive/2",
    "rejected_threads/recloser/2",
];

const CONSECUTIVE: Budget = Budget {
    text: "<=2x floor, <=0.5x fastest peer",
    max_vs_floor: Some(2.0),
    max_vs_peer: Some(0.5),
    max_vs_other: None,
};
const COUNT_WINDOW: Budget = Budget {
    text: "<=3x floor, <=0.25x failsafe rate",
    max_vs_floor: Some(3.0),
    max_vs_peer: Some(0.25),
    max_vs_other: None,
};
const TIME_WINDOW: Budget = Budget {
    text: "<=4x floor",
    max_vs_floor: Some(4.0),
    max_vs_peer: None,
    max_vs_other: None,
};
/// "One atomic load and a branch, no clock read" is a property of the code;
/// its timing proxy: cheaper than the floor, which an RMW (about a
/// `fetch_add`) or a clock read (at least a coarse one) on top of the load
/// would exceed.
const ACQUIRE_ONLY: Budget = Budget {
    text: "load+branch, no clock read: <=1x floor (proxy)",
    max_vs_floor: Some(1.0),
    max_vs_peer: None,
    max_vs_other: None,
};
const REJECTED: Budget = Budget {
    text: "<=0.5x fastest peer",
    max_vs_floor: None,
    max_vs_peer: Some(0.5),
    max_vs_other: None,
};
const THREADS_2: Budget = Budget {
    text: "<=0.33x fastest peer, 2 threads",
    max_vs_floor: None,
    max_vs_peer: Some(0.33),
    max_vs_other: None,
};
const REJECTED_2: Budget = Budget {
    text: "<=0.5x fastest peer; <=2x own 1t (no shared store, proxy)",
    max_vs_floor: None,
    max_vs_peer: Some(0.5),
    max_vs_other: Some(("rejected_threads/circuit/1", 2.0, "1t")),
};
const REJECTED_2_NO_METRICS: Budget = Budget {
    max_vs_other: Some(("rejected_threads/circuit_no_metrics/1", 2.0, "1t")),
    ..REJECTED_2
};

const fn row(id: &'static str, peer: Reference, budget: Option<Budget>) -> Row {
    Row { id, peer, budget }
}

/// The table's rows in print order. Benchmarks found in a run but missing
/// here are printed after them without a budget.
pub const ROWS: &[Row] = &[
    row(FLOOR_LOAD, Reference::None, None),
    row(FLOOR_FETCH_ADD, Reference::None, None),
    row("floor/cas", Reference::None, None),
    row("floor/instant_now", Reference::None, None),
    row("floor/monotonic_now", Reference::None, None),
    row("floor/monotonic_coarse_now", Reference::None, None),
    row(
        "closed/circuit_acquire_only",
        Reference::None,
        Some(ACQUIRE_ONLY),
    ),
    row(
        "closed/circuit_consecutive",
        Reference::Fastest(CLOSED_PEERS),
        Some(CONSECUTIVE),
    ),
    // A ramp-up configured, after a recovery and the ramp's end: the same
    // fast path as a breaker without one.
    row(
        "closed/circuit_consecutive_recovered",
        Reference::Fastest(CLOSED_PEERS),
        Some(CONSECUTIVE),
    ),
    row(
        "closed/circuit_consecutive_no_metrics",
        Reference::Fastest(CLOSED_PEERS),
        Some(CONSECUTIVE),
    ),
    row(
        "closed/circuit_count_window",
        Reference::One("closed/failsafe_rate"),
        Some(COUNT_WINDOW),
    ),
    row(
        "closed/circuit_count_window_no_metrics",
        Reference::One("closed/failsafe_rate"),
        Some(COUNT_WINDOW),
    ),
    row(
        "closed/circuit_time_window",
        Reference::One("closed/failsafe_rate"),
        Some(TIME_WINDOW),
    ),
    row("closed/failsafe_consecutive", Reference::None, None),
    row("closed/failsafe_rate", Reference::None, None),
    row("closed/recloser", Reference::None, None),
    row("closed/tower_resilience", Reference::None, None),
    row(
        "rejected/circuit",
        Reference::Fastest(REJECTED_PEERS),
        Some(REJECTED),
    ),
    row(
        "rejected/circuit_no_metrics",
        Reference::Fastest(REJECTED_PEERS),
        Some(REJECTED),
    ),
    row("rejected/failsafe_consecutive", Reference::None, None),
    row("rejected/failsafe_rate", Reference::None, None),
    row("rejected/recloser", Reference::None, None),
    row("rejected/tower_resilience", Reference::None, None),
    row("closed_threads/fetch_add_shared/1", Reference::None, None),
    row("closed_threads/fetch_add_shared/2", Reference::None, None),
    row(
        "closed_threads/circuit_consecutive/1",
        Reference::Fastest(CLOSED_PEERS_1T),
        None,
    ),
    row(
        "closed_threads/circuit_consecutive/2",
        Reference::Fastest(CLOSED_PEERS_2T),
        Some(THREADS_2),
    ),
    row(
        "closed_threads/circuit_consecutive_no_metrics/1",
        Reference::Fastest(CLOSED_PEERS_1T),
        None,
    ),
    row(
        "closed_threads/circuit_consecutive_no_metrics/2",
        Reference::Fastest(CLOSED_PEERS_2T),
        Some(THREADS_2),
    ),
    row(
        "closed_threads/circuit_count_window/1",
        Reference::Fastest(CLOSED_PEERS_1T),
        None,
    ),
    row(
        "closed_threads/circuit_count_window/2",
        Reference::Fastest(CLOSED_PEERS_2T),
        Some(THREADS_2),
    ),
    row(
        "closed_threads/failsafe_consecutive/1",
        Reference::None,
        None,
    ),
    row(
        "closed_threads/failsafe_consecutive/2",
        Reference::None,
        None,
    ),
    row("closed_threads/failsafe_rate/1", Reference::None, None),
    row("closed_threads/failsafe_rate/2", Reference::None, None),
    row("closed_threads/recloser/1", Reference::None, None),
    row("closed_threads/recloser/2", Reference::None, None),
    row("closed_threads/tower_resilience/1", Reference::None, None),
    row("closed_threads/tower_resilience/2", Reference::None, None),
    row(
        "rejected_threads/circuit/1",
        Reference::Fastest(REJECTED_PEERS_1T),
        None,
    ),
    row(
        "rejected_threads/circuit/2",
        Reference::Fastest(REJECTED_PEERS_2T),
        Some(REJECTED_2),
    ),
    row(
        "rejected_threads/circuit_no_metrics/1",
        Reference::Fastest(REJECTED_PEERS_1T),
        None,
    ),
    row(
        "rejected_threads/circuit_no_metrics/2",
        Reference::Fastest(REJECTED_PEERS_2T),
        Some(REJECTED_2_NO_METRICS),
    ),
    row(
        "rejected_threads/failsafe_consecutive/1",
        Reference::None,
        None,
    ),
    row(
        "rejected_threads/failsafe_consecutive/2",
        Reference::None,
        None,
    ),
    row("rejected_threads/recloser/1", Reference::None, None),
    row("rejected_threads/recloser/2", Reference::None, None),
];

/// Outcome of checking one budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every limit holds.
    Pass,
    /// These limits do not hold (short names: "floor", "peer", ...).
    Miss(Vec<&'static str>),
    /// A figure the budget needs is missing from the run.
    NotMeasured,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Pass => f.write_str("PASS"),
            Verdict::Miss(what) => write!(f, "MISS ({})", what.join(", ")),
            Verdict::NotMeasured => f.write_str("n/a"),
        }
    }
}

/// The peer a row is compared with: its id and figure.
pub fn peer_of(reference: Reference, ns: &BTreeMap<String, f64>) -> Option<(&'static str, f64)> {
    match reference {
        Reference::None => None,
        Reference::One(id) => ns.get(id).map(|&v| (id, v)),
        Reference::Fastest(ids) => ids
            .iter()
            .filter_map(|&id| ns.get(id).map(|&v| (id, v)))
            .min_by(|a, b| a.1.total_cmp(&b.1)),
    }
}

/// True when `reference` names a benchmark whose threads seldom ran
/// together: the peer figure (or which peer is fastest) is uncertain.
fn reference_unreliable(reference: Reference, run: &BTreeMap<String, Measurement>) -> bool {
    let bad = |id: &str| run.get(id).is_some_and(|m| m.unreliable);
    match reference {
        Reference::None => false,
        Reference::One(id) => bad(id),
        Reference::Fastest(ids) => ids.iter().any(|id| bad(id)),
    }
}

/// The floor of this run: atomic load + uncontended `fetch_add`.
pub fn floor(ns: &BTreeMap<String, f64>) -> Option<f64> {
    Some(ns.get(FLOOR_LOAD)? + ns.get(FLOOR_FETCH_ADD)?)
}

/// Checks one budget. `peer` and `other` are the reference figures, `None`
/// when missing or not trustworthy. A limit that misses is a miss even when
/// another limit cannot be judged; PASS needs every limit judged.
pub fn check(
    budget: &Budget,
    value: f64,
    floor: Option<f64>,
    peer: Option<f64>,
    other: Option<f64>,
) -> Verdict {
    let mut missed = Vec::new();
    let mut measured = true;
    let mut limit = |max: Option<f64>, base: Option<f64>, name: &'static str| match (max, base) {
        (None, _) => {}
        (Some(_), None) => measured = false,
        (Some(max), Some(base)) => {
            if value > max * base {
                missed.push(name);
            }
        }
    };
    limit(budget.max_vs_floor, floor, "floor");
    limit(budget.max_vs_peer, peer, "peer");
    if let Some((_, max, name)) = budget.max_vs_other {
        limit(Some(max), other, name);
    }
    if !missed.is_empty() {
        Verdict::Miss(missed)
    } else if measured {
        Verdict::Pass
    } else {
        Verdict::NotMeasured
    }
}

/// Short peer name for the table: the function part of its id.
fn short(id: &str) -> &str {
    id.split('/').nth(1).unwrap_or(id)
}

fn ns_cell(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One benchmark's figures in one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// The figure budgets are checked on: a low percentile of the per-sample
    /// means (see `bench-table`), nanoseconds per operation.
    pub ns: f64,
    /// Median of the per-sample means, for reference.
    pub median: f64,
    /// For multi-thread benchmarks: share of samples whose threads ran
    /// together (see `per_thread`).
    pub together: Option<f64>,
    /// Too few samples ran together for the figure to describe contention:
    /// the budget is not judged.
    pub unreliable: bool,
}

/// Budgets checked and missed in one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows judged PASS or MISS.
    pub checked: usize,
    /// Rows that missed their budget.
    pub missed: usize,
    /// Rows not judged: a figure they need is missing, or comes from
    /// threads that seldom ran together.
    pub unreliable: usize,
}

/// Renders the table (Markdown) for one run.
pub fn render(run: &BTreeMap<String, Measurement>) -> (String, Summary) {
    let ns: BTreeMap<String, f64> = run.iter().map(|(k, m)| (k.clone(), m.ns)).collect();
    let ns = &ns;
    let floor = floor(ns);
    let mut out = String::new();
    let mut summary = Summary::default();
    let _ = writeln!(
        out,
        "| benchmark | ns/op | median | x floor | x peer | ran together | budget | verdict |\n\
         |---|---:|---:|---:|---|---:|---|---|"
    );
    let known: Vec<&str> = ROWS.iter().map(|r| r.id).collect();
    let rows = ROWS.iter().map(|r| (r.id, r.peer, r.budget)).chain(
        run.keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .map(|k| (k, Reference::None, None)),
    );
    for (id, reference, budget) in rows {
        let Some(m) = run.get(id) else {
            continue;
        };
        let value = m.ns;
        let vs_floor = floor.map_or("-".to_string(), |f| format!("{:.2}", value / f));
        let peer = peer_of(reference, ns);
        let vs_peer = peer.map_or("-".to_string(), |(id, p)| {
            format!("{:.2} ({} {})", value / p, short(id), ns_cell(p))
        });
        let together = m
            .together
            .map_or("-".to_string(), |t| format!("{:.0}%", t * 100.0));
        let (budget, verdict) = match &budget {
            None => ("-".to_string(), String::new()),
            Some(b) => {
                // The row's own figure must be trustworthy: a contended
                // figure from threads that did not run together can flatter
                // it. A reference from such threads is still used (parking
                // peers wait for a CPU by design), and the verdict says so.
                let other = b.max_vs_other.and_then(|(id, _, _)| run.get(id));
                let noisy_ref =
                    reference_unreliable(reference, run) || other.is_some_and(|o| o.unreliable);
                let v = if m.unreliable {
                    Verdict::NotMeasured
                } else {
                    check(b, value, floor, peer.map(|p| p.1), other.map(|o| o.ns))
                };
                match v {
                    Verdict::Pass => summary.checked += 1,
                    Verdict::Miss(_) => {
                        summary.checked += 1;
                        summary.missed += 1;
                    }
                    Verdict::NotMeasured => summary.unreliable += 1,
                }
                let note = if noisy_ref && v != Verdict::NotMeasured {
                    " (noisy ref)"
                } else {
                    ""
                };
                (b.text.to_string(), format!("{v}{note}"))
            }
        };
        let _ = writeln!(
            out,
            "| {id} | {} | {} | {vs_floor} | {vs_peer} | {together} | {budget} | {verdict} |",
            ns_cell(value),
            ns_cell(m.median),
        );
    }
    match floor {
        Some(f) => {
            let _ = writeln!(
                out,
                "\nfloor = atomic load + uncontended fetch_add = {} ns (this run)",
                ns_cell(f)
            );
        }
        None => {
            let _ = writeln!(out, "\nfloor not measured in this run: no floor ratios");
        }
    }
    (out, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn every_reference_names_a_row() {
        let ids: Vec<&str> = ROWS.iter().map(|r| r.id).collect();
        for r in ROWS {
            let refs: Vec<&str> = match r.peer {
                Reference::None => vec![],
                Reference::One(id) => vec![id],
                Reference::Fastest(list) => list.to_vec(),
            };
            for id in refs {
                assert!(ids.contains(&id), "{} refers to unknown {id}", r.id);
            }
            if let Some((id, _, _)) = r.budget.and_then(|b| b.max_vs_other) {
                assert!(ids.contains(&id), "{} refers to unknown {id}", r.id);
            }
        }
    }

    #[test]
    fn pass_miss_and_missing_figures() {
        let ns = run(&[
            (FLOOR_LOAD, 1.0),
            (FLOOR_FETCH_ADD, 2.0),
            ("closed/recloser", 10.0),
            ("closed/failsafe_consecutive", 12.0),
        ]);
        let f = floor(&ns);
        assert_eq!(f, Some(3.0));
        let peer = peer_of(Reference::Fastest(CLOSED_PEERS), &ns);
        assert_eq!(peer, Some(("closed/recloser", 10.0)));
        let p = peer.map(|p| p.1);
        assert_eq!(check(&CONSECUTIVE, 5.0, f, p, None), Verdict::Pass);
        assert_eq!(
            check(&CONSECUTIVE, 6.5, f, p, None),
            Verdict::Miss(vec!["floor", "peer"])
        );
        assert_eq!(
            check(&CONSECUTIVE, 5.0, None, p, None),
            Verdict::NotMeasured
        );
        // A judged limit that misses is a miss even when another is unknown.
        assert_eq!(
            check(&CONSECUTIVE, 7.0, None, p, None),
            Verdict::Miss(vec!["peer"])
        );
        assert_eq!(check(&ACQUIRE_ONLY, 2.5, f, None, None), Verdict::Pass);
        assert_eq!(
            check(&ACQUIRE_ONLY, 3.5, f, None, None),
            Verdict::Miss(vec!["floor"])
        );
        assert_eq!(
            check(&REJECTED_2, 1.0, f, Some(10.0), None),
            Verdict::NotMeasured
        );
        assert_eq!(
            check(&REJECTED_2, 3.0, f, None, Some(1.0)),
            Verdict::Miss(vec!["1t"])
        );
    }

    #[test]
    fn render_counts_misses_and_keeps_unknown_rows() {
        let m = |ns| Measurement {
            ns,
            median: ns + 1.0,
            together: None,
            unreliable: false,
        };
        let mut run: BTreeMap<String, Measurement> = [
            (FLOOR_LOAD, m(1.0)),
            (FLOOR_FETCH_ADD, m(2.0)),
            ("closed/recloser", m(10.0)),
            ("closed/circuit_consecutive", m(7.0)),
            ("other/thing", m(3.0)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        run.insert(
            "closed_threads/recloser/2".to_string(),
            Measurement {
                together: Some(0.5),
                ..m(40.0)
            },
        );
        run.insert(
            "closed_threads/circuit_consecutive/2".to_string(),
            Measurement {
                together: Some(0.05),
                unreliable: true,
                ..m(1.0)
            },
        );
        let (table, summary) = render(&run);
        assert_eq!(
            summary,
            Summary {
                checked: 1,
                missed: 1,
                unreliable: 1,
            }
        );
        assert!(table.contains("| 5% | <=0.33x fastest peer, 2 threads | n/a |"));

        // A reliable row whose fastest-peer candidate is unreliable is judged,
        // and says its reference is noisy.
        run.insert(
            "closed_threads/circuit_consecutive/2".to_string(),
            Measurement {
                together: Some(1.0),
                ..m(1.0)
            },
        );
        run.insert(
            "closed_threads/failsafe_consecutive/2".to_string(),
            Measurement {
                together: Some(0.0),
                unreliable: true,
                ..m(30.0)
            },
        );
        let (table, summary) = render(&run);
        assert_eq!(summary.unreliable, 0);
        assert!(table.contains("| 100% | <=0.33x fastest peer, 2 threads | PASS (noisy ref) |"));
        assert!(table.contains(
            "| closed/circuit_consecutive | 7.00 | 8.00 | 2.33 | 0.70 (recloser 10.0) | - |"
        ));
        assert!(table.contains("MISS (floor, peer)"));
        assert!(table.contains("| other/thing | 3.00 |"));
        assert!(table.contains("| closed_threads/recloser/2 | 40.0 | 41.0 | 13.33 | - | 50% |"));
    }
}
