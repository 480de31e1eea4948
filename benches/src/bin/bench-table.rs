//! Prints the budget table of DESIGN.md section 6 from one criterion run.
//!
//! Usage: `bench-table [CRITERION_DIR] [--strict]`
//!
//! Reads every `<bench>/new/benchmark.json` (for the benchmark's full id)
//! and `<bench>/new/estimates.json` (for its median) under `CRITERION_DIR`
//! (default `target/criterion`), and prints one Markdown table: ns/op, the
//! ratio to the floor, the ratio to the relevant or fastest peer, and each
//! budget's verdict. With `--strict` it exits 1 when a budget is missed.
//!
//! The figure is criterion's median of the per-sample means: on shared
//! machines it resists the odd preempted sample better than the mean.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use circuit_benches::budget;
use serde_json::Value;

fn collect(dir: &Path, out: &mut BTreeMap<String, f64>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            if let Some((id, ns)) = read_one(&path) {
                out.insert(id, ns);
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

fn read_one(new: &Path) -> Option<(String, f64)> {
    let bench = read_json(&new.join("benchmark.json"))?;
    let estimates = read_json(&new.join("estimates.json"))?;
    let id = bench.get("full_id")?.as_str()?.to_string();
    let ns = estimates.get("median")?.get("point_estimate")?.as_f64()?;
    Some((id, ns))
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
    let mut ns = BTreeMap::new();
    if let Err(e) = collect(&dir, &mut ns) {
        eprintln!("bench-table: cannot read {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    if ns.is_empty() {
        eprintln!("bench-table: no criterion results under {}", dir.display());
        return ExitCode::from(2);
    }
    let (table, summary) = budget::render(&ns);
    print!("{table}");
    println!(
        "budgets: {} checked, {} missed (median ns per op; *_threads rows: per op per thread)",
        summary.checked, summary.missed
    );
    if strict && summary.missed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
