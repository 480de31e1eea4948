//! Resident memory of a registry holding many breakers (DESIGN.md section 6:
//! 100,000 breakers under 64 MB).
//!
//! `cargo run --release -p circuit-core --example registry_memory [COUNT]`

use circuit_core::{Config, Registry, RegistryOptions};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let registry = Registry::new(RegistryOptions {
        defaults: Config::builder()
            .failure_rate(Some(0.5))
            .count_window(100)
            .build()
            .expect("valid config"),
        max_breakers: count,
        ..RegistryOptions::default()
    });
    let before = rss_bytes();
    for i in 0..count {
        registry
            .get_or_create(&format!("tenant-{i:06}/GET /v1/offers"))
            .expect("under the cap");
    }
    let after = rss_bytes();
    let b = registry
        .get("tenant-000000/GET /v1/offers")
        .expect("exists");
    println!(
        "breakers={count} rss_delta_mb={:.1} bytes_per_breaker={} breaker_struct_bytes={}",
        (after - before) as f64 / (1024.0 * 1024.0),
        (after - before) / count as u64,
        b.memory_bytes()
    );
}
