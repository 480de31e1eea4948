//! One instance of a service with fleet sync on, driven line by line through
//! stdin (the integration tests in `sync/tests` start several as separate
//! processes). Every command answers with one JSON line on stdout.
//!
//! ```text
//! circuit-sync-node --redis URL --ns NS [--threshold N] [--open-ms N]
//!                   [--reconcile-ms N] [--io-ms N] [--origin ID]
//! commands: create NAME | fail NAME N | succeed NAME N | state NAME
//!           | wait NAME STATE TIMEOUT_MS | burst NAME N | status | quit
//! ```

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use circuit_core::{Config, Outcome, Registry, RegistryOptions};
use circuit_sync::{FleetSync, SyncConfig};
use serde_json::{json, Value};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name).map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--redis").expect("--redis URL");
    let ns = arg(&args, "--ns").expect("--ns NAMESPACE");
    let defaults = Config::builder()
        .consecutive_failures(Some(num(&args, "--threshold", 3) as u32))
        .open_duration(Duration::from_millis(num(&args, "--open-ms", 2000)))
        .max_open_duration(Duration::from_secs(3600))
        .jitter(0.0)
        .build()
        .expect("config");
    let registry = Arc::new(Registry::new(RegistryOptions {
        defaults,
        ..RegistryOptions::default()
    }));
    let mut cfg = SyncConfig::new(url, ns);
    cfg.reconcile_every = Duration::from_millis(num(&args, "--reconcile-ms", 1000));
    cfg.io_timeout = Duration::from_millis(num(&args, "--io-ms", 500));
    cfg.connect_timeout = cfg.io_timeout;
    cfg.ping_after = Duration::from_millis(num(&args, "--ping-ms", 1000));
    cfg.backoff_max = Duration::from_millis(num(&args, "--backoff-max-ms", 1000));
    cfg.origin = arg(&args, "--origin");
    let handle = FleetSync::start(registry.clone(), cfg).expect("sync starts");

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "{}", json!({"ready": true, "pid": std::process::id()}));
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["quit"] => break,
            ["status"] => {
                let s = handle.status();
                json!({
                    "status": s.status.as_str(),
                    "published": s.published,
                    "applied": s.applied,
                    "stale_ignored": s.stale_ignored,
                    "malformed_ignored": s.malformed_ignored,
                    "unknown_ignored": s.unknown_ignored,
                    "refused": s.refused,
                    "reconnects": s.reconnects,
                    "pending": s.pending,
                    "last_error": s.last_error,
                })
            }
            ["create", name] => {
                registry.get_or_create(name).expect("create");
                json!({"ok": true})
            }
            ["fail", name, n] | ["succeed", name, n] => {
                let b = registry.get_or_create(name).expect("create");
                let outcome = if words[0] == "fail" {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                let mut admitted = 0;
                for _ in 0..n.parse::<u32>().expect("count") {
                    if let Ok(p) = b.acquire() {
                        admitted += 1;
                        b.record(p, outcome, Duration::from_millis(1));
                    }
                }
                json!({"admitted": admitted, "state": b.state().as_str()})
            }
            ["state", name] => state(&registry, name),
            ["wait", name, want, timeout_ms] => {
                let start = Instant::now();
                let limit = Duration::from_millis(timeout_ms.parse().expect("ms"));
                loop {
                    let s = registry.get(name).map(|b| b.state());
                    if s.map(|s| s.as_str()) == Some(*want) {
                        let mut v = state(&registry, name);
                        v["ok"] = json!(true);
                        v["waited_us"] = json!(start.elapsed().as_micros() as u64);
                        break v;
                    }
                    if start.elapsed() >= limit {
                        let mut v = state(&registry, name);
                        v["ok"] = json!(false);
                        break v;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            ["burst", name, n] => {
                let b = registry.get_or_create(name).expect("create");
                let n: u64 = n.parse().expect("count");
                let start = Instant::now();
                let mut admitted = 0u64;
                for _ in 0..n {
                    if let Ok(p) = b.acquire() {
                        admitted += 1;
                        b.record(p, Outcome::Success, Duration::ZERO);
                    }
                }
                let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
                json!({"admitted": admitted, "ns_per_call": ns})
            }
            _ => json!({"error": format!("unknown command {line:?}")}),
        };
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
    handle.stop();
}

fn state(registry: &Registry, name: &str) -> Value {
    match registry.get(name) {
        None => json!({"state": null}),
        Some(b) => {
            let now = registry.clock().now();
            let left = b.open_deadline().map(|d| d.saturating_sub(now) / 1_000_000);
            let s = b.state();
            json!({
                "state": s.as_str(),
                "open_left_ms": left,
                "generation": b.generation(),
            })
        }
    }
}
