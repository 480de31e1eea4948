//! Prints the budget table of DESIGN.md section 6 from one criterion run.
//!
//! Usage: `bench-table [CRITERION_DIR] [--strict]`
//!
//! Reads every `<bench>/new/benchmark.json` (for the benchmark's full id)
//! and `<bench>/new/sample.json` (criterion's raw samples) under
//! `CRITERION_DIR` (default `target/criterion`), and `concurrency.tsv`
//! there when the bench run wrote one. Prints one Markdown table: ns/op, the
//! ratio to the floor, the ratio to the relevant or fastest peer, and each
//! budget's verdict. With `--strict` it exits 1 when a budget is missed.
//!
//! ns/op is the 10th percentile of the per-sample means (sample time divided
//! by its iterations). On a shared machine other processes only ever add
//! time, and they add it unevenly across a run, so a low percentile compares
//! two benchmarks more fairly than the median or the mean; the median is
//! printed beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use circuit_benches::budget::{self, Measurement};
use circuit_benches::ConcurrencyReport;
use serde_json::Value;

/// Percentile of the per-sample means used for ns/op.
const PERCENTILE: f64 = 0.10;

fn collect(dir: &Path, out: &mut BTreeMap<String, Measurement>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            match read_one(&path) {
                Some((id, m)) => {
                    out.insert(id, m);
                }
                None => eprintln!("bench-table: skipping unreadable {}", path.display()),
            }
        } else {
            collect(&path, out)?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn numbers(v: &Value) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(Value::as_f64).collect()
}

/// The value at quantile `q` of sorted `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn read_one(new: &Path) -> Option<(String, Measurement)> {
    let bench = read_json(&new.join("benchmark.json"))?;
    let sample = read_json(&new.join("sample.json"))?;
    let id = bench.get("full_id")?.as_str()?.to_string();
    let iters = numbers(sample.get("iters")?)?;
    let times = numbers(sample.get("times")?)?;
    let mut means: Vec<f64> = iters
        .iter()
        .zip(&times)
        .filter(|(n, _)| **n > 0.0)
        .map(|(n, t)| t / n)
        .collect();
    if means.is_empty() {
        return None;
    }
    means.sort_by(f64::total_cmp);
    let m = Measurement {
        ns: quantile(&means, PERCENTILE),
        median: quantile(&means, 0.5),
        together: None,
    };
    Some((id, m))
}

fn read_concurrency(dir: &Path, run: &mut BTreeMap<String, Measurement>) {
    let Ok(text) = std::fs::read_to_string(dir.join("concurrency.tsv")) else {
        return;
    };
    for (id, report) in text.lines().filter_map(ConcurrencyReport::parse_line) {
        if let Some(m) = run.get_mut(&id) {
            m.together = Some(report.together());
        }
    }
}

fn main() -> ExitCode {
    let mut dir = PathBuf::from("target/criterion");
    let mut strict = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--strict" => strict = true,
            "-h" | "--help" => {
                println!("usage: bench-table [CRITERION_DIR] [--strict]");
                return ExitCode::SUCCESS;
            }
            _ => dir = PathBuf::from(arg),
        }
    }
    let mut run = BTreeMap::new();
    if let Err(e) = collect(&dir, &mut run) {
        eprintln!("bench-table: cannot read {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    if run.is_empty() {
        eprintln!("bench-table: no criterion results under {}", dir.display());
        return ExitCode::from(2);
    }
    read_concurrency(&dir, &mut run);
    let (table, summary) = budget::render(&run);
    print!("{table}");
    println!(
        "ns/op = p{:.0} of per-sample means, median beside it; *_threads rows: per op per \
         thread, 'ran together' = share of samples whose threads both ran >= {:.0}% of the time",
        PERCENTILE * 100.0,
        circuit_benches::MIN_CONCURRENCY * 100.0
    );
    println!(
        "budgets: {} checked, {} missed",
        summary.checked, summary.missed
    );
    if strict && summary.missed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
