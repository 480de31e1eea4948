//! Prints the budget table of DESIGN.md section 6 from one criterion run.
//!
//! Usage: `bench-table [CRITERION_DIR] [--strict]`
//!
//! Reads every `<bench>/new/benchmark.json` (for the benchmark's full id)
//! and `<bench>/new/sample.json` (criterion's raw samples) under
//! `CRITERION_DIR` (default `target/criterion`), and `concurrency.tsv`
//! there when the bench run wrote one (the concurrency score of every
//! multi-thread sample, matched to criterion's samples by wall time). Prints one Markdown table: ns/op, the
//! ratio to the floor, the ratio to the relevant or fastest peer, and each
//! budget's verdict. With `--strict` it exits 1 when a budget is missed.
//!
//! When `CRITERION_DIR/instructions.tsv` exists (written by
//! `ci/instructions.sh`: `id<TAB>instructions per call`), it also prints
//! those counts. It writes `CRITERION_DIR/chart.svg`: circuit beside the
//! peers per scenario ([`circuit_benches::chart`]).
//!
//! ns/op is the 10th percentile of the per-sample means (sample time divided
//! by its iterations). On a shared machine other processes only ever add
//! time, and they add it unevenly across a run, so a low percentile compares
//! two benchmarks more fairly than the median or the mean; the median is
//! printed beside it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use circuit_benches::budget::{self, Measurement};
use circuit_benches::chart;
use circuit_benches::{SampleScore, MIN_CONCURRENCY};
use serde_json::Value;

/// Percentile of the per-sample means used for ns/op.
const PERCENTILE: f64 = 0.10;

/// Fewest samples that ran together for a multi-thread row to be judged.
const MIN_TOGETHER: usize = 10;

fn collect(dir: &Path, out: &mut Vec<Samples>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            match read_one(&path) {
                Some(s) => out.push(s),
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

/// A benchmark's samples: per-sample means and the wall time criterion
/// recorded for each (to match the harness's concurrency scores).
struct Samples {
    id: String,
    /// (mean ns per iteration, sample wall time ns)
    samples: Vec<(f64, u64)>,
}

fn read_one(new: &Path) -> Option<Samples> {
    let bench = read_json(&new.join("benchmark.json"))?;
    let sample = read_json(&new.join("sample.json"))?;
    let id = bench.get("full_id")?.as_str()?.to_string();
    let iters = numbers(sample.get("iters")?)?;
    let times = numbers(sample.get("times")?)?;
    let samples: Vec<(f64, u64)> = iters
        .iter()
        .zip(&times)
        .filter(|(n, _)| **n > 0.0)
        .map(|(n, t)| (t / n, *t as u64))
        .collect();
    (!samples.is_empty()).then_some(Samples { id, samples })
}

/// Percentile and median of `means` (not empty).
fn summarise(mut means: Vec<f64>) -> (f64, f64) {
    means.sort_by(f64::total_cmp);
    (quantile(&means, PERCENTILE), quantile(&means, 0.5))
}

/// The figures of one benchmark. For a multi-thread benchmark with scores,
/// only the samples whose threads ran together count; with fewer than
/// [`MIN_TOGETHER`] of them, all samples count and the row is unreliable.
fn measure(s: &Samples, scores: Option<&HashMap<u64, f64>>) -> Measurement {
    let all: Vec<f64> = s.samples.iter().map(|&(m, _)| m).collect();
    let Some(scores) = scores else {
        let (ns, median) = summarise(all);
        return Measurement {
            ns,
            median,
            together: None,
            unreliable: false,
        };
    };
    let together: Vec<f64> = s
        .samples
        .iter()
        .filter(|(_, wall)| scores.get(wall).is_some_and(|&sc| sc >= MIN_CONCURRENCY))
        .map(|&(m, _)| m)
        .collect();
    let share = together.len() as f64 / s.samples.len() as f64;
    let unreliable = together.len() < MIN_TOGETHER;
    let (ns, median) = summarise(if unreliable { all } else { together });
    Measurement {
        ns,
        median,
        together: Some(share),
        unreliable,
    }
}

/// Scores per benchmark id, keyed by sample wall time.
fn read_scores(dir: &Path) -> HashMap<String, HashMap<u64, f64>> {
    let mut out: HashMap<String, HashMap<u64, f64>> = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(dir.join("concurrency.tsv")) {
        for (id, s) in text.lines().filter_map(SampleScore::parse_line) {
            out.entry(id).or_default().insert(s.wall_ns, s.score);
        }
    }
    out
}

/// Instructions per call by scenario id, from `instructions.tsv` if present.
fn read_instructions(dir: &Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(dir.join("instructions.tsv")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (id, n) = l.split_once('\t')?;
            Some((id.to_string(), n.trim().parse().ok()?))
        })
        .collect()
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
    let mut found = Vec::new();
    if let Err(e) = collect(&dir, &mut found) {
        eprintln!("bench-table: cannot read {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    if found.is_empty() {
        eprintln!("bench-table: no criterion results under {}", dir.display());
        return ExitCode::from(2);
    }
    let scores = read_scores(&dir);
    let run: BTreeMap<String, Measurement> = found
        .iter()
        .map(|s| (s.id.clone(), measure(s, scores.get(&s.id))))
        .collect();
    let (table, summary) = budget::render(&run);
    print!("{table}");
    println!(
        "ns/op = p{:.0} of per-sample means, median beside it. *_threads rows: per op per \
         thread, from the samples whose threads ran together ('ran together': share of \
         samples in which no thread spent more than {:.0}% of the sample runnable but waiting \
         for a CPU); below {} such samples a row is not judged (n/a), and \
         '(noisy ref)' marks a verdict whose reference row is below that.",
        PERCENTILE * 100.0,
        (1.0 - MIN_CONCURRENCY) * 100.0,
        MIN_TOGETHER,
    );
    println!(
        "budgets: {} judged, {} missed, {} n/a",
        summary.checked, summary.missed, summary.unreliable
    );
    let instructions = read_instructions(&dir);
    if !instructions.is_empty() {
        println!();
        println!("| instructions per call (cachegrind, 1 thread) | instructions |");
        println!("|---|---:|");
        for (id, n) in &instructions {
            println!("| {id} | {n:.1} |");
        }
    }
    let ns: BTreeMap<String, f64> = run.iter().map(|(id, m)| (id.clone(), m.ns)).collect();
    let doc = chart::svg(
        "circuit (blue) beside peer breakers: ns/op, one run, log scale",
        &chart::scenarios(&ns, &instructions),
    );
    let path = dir.join("chart.svg");
    match std::fs::write(&path, doc) {
        Ok(()) => println!("chart: {}", path.display()),
        Err(e) => eprintln!("bench-table: cannot write {}: {e}", path.display()),
    }
    if strict && summary.missed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
