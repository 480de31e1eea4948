//! Propagation benchmark (DESIGN.md section 6, "Redis sync"): two instances
//! (separate registries, sync workers and connections) in one process, so
//! one monotonic clock times both ends.
//!
//! 1. Propagation: `--transitions` local transitions on instance A
//!    (alternately a trip to OPEN and a reset to CLOSED over 50 breakers);
//!    for each, the time until instance B applied it (B's listener sees the
//!    `Remote` transition). Prints p50/p90/p99/max; budget p99 < 50 ms.
//! 2. The call path: `INFO commandstats` before and after a burst of
//!    acquire + record(SUCCESS) in CLOSED on A with sync on (must be zero
//!    Redis calls), and the same burst on a registry without sync.
//!
//! ```text
//! cargo run --release -p circuit-sync --bin circuit-sync-bench -- [--transitions N] [--redis URL]
//! ```
//! Without `--redis` it starts its own `redis-server` on a free loopback
//! port.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use circuit_core::{
    Config, Listener, Outcome, Reason, Registry, RegistryOptions, State, Transition,
};
use circuit_sync::{FleetSync, SyncConfig, SyncHandle, SyncStatus};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = Server(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed"),
    );
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    for _ in 0..500 {
        if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(100)) {
            if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                return (server, url);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("redis-server did not start");
}

struct Applied(Mutex<Sender<(Arc<str>, State, Instant)>>);

impl Listener for Applied {
    fn on_transition(&self, breaker: &Arc<str>, t: &Transition) {
        if t.reason == Reason::Remote {
            let at = Instant::now();
            let _ = self.0.lock().unwrap().send((breaker.clone(), t.to, at));
        }
    }
}

fn registry() -> Arc<Registry> {
    let defaults = Config::builder()
        .consecutive_failures(Some(1))
        .open_duration(Duration::from_secs(600))
        .max_open_duration(Duration::from_secs(3600))
        .jitter(0.0)
        .build()
        .unwrap();
    Arc::new(Registry::new(RegistryOptions {
        defaults,
        ..RegistryOptions::default()
    }))
}

fn start(reg: &Arc<Registry>, url: &str, ns: &str) -> SyncHandle {
    let mut cfg = SyncConfig::new(url, ns);
    // Quiet background during the call-path measurement.
    cfg.reconcile_every = Duration::from_secs(120);
    cfg.ping_after = Duration::from_secs(120);
    cfg.writes_per_sec = 100_000;
    let h = FleetSync::start(reg.clone(), cfg).unwrap();
    let t = Instant::now();
    while h.status().status != SyncStatus::Connected {
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", h.status());
        std::thread::sleep(Duration::from_millis(5));
    }
    h
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn commandstats(url: &str) -> Vec<(String, u64)> {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .next()?
                .strip_prefix("calls=")?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

fn burst(reg: &Registry, name: &str, n: u64) -> f64 {
    let b = reg.get_or_create(name).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        match b.acquire() {
            Ok(p) => {
                b.record(p, Outcome::Success, Duration::ZERO);
            }
            Err(_) => unreachable!("CLOSED"),
        }
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let transitions: usize = get("--transitions").map_or(2000, |v| v.parse().unwrap());
    let (_server, url) = match get("--redis") {
        Some(u) => (None, u),
        None => {
            let (s, u) = start_redis();
            (Some(s), u)
        }
    };
    let ns = format!("bench{}", std::process::id());
    let (a, b) = (registry(), registry());
    let names: Vec<String> = (0..50).map(|i| format!("dep-{i}")).collect();
    for n in &names {
        a.get_or_create(n).unwrap();
        b.get_or_create(n).unwrap();
    }
    let (tx, rx) = channel();
    b.add_listener(Arc::new(Applied(Mutex::new(tx))));
    let ha = start(&a, &url, &ns);
    let hb = start(&b, &url, &ns);

    // 1. Propagation.
    let mut lat = Vec::with_capacity(transitions);
    let mut lost = 0;
    for i in 0..transitions {
        let name = &names[i % names.len()];
        let br = a.get(name).unwrap();
        let t0 = Instant::now();
        let want = if br.state() == State::Closed {
            let p = br.acquire().unwrap();
            br.record(p, Outcome::Failure, Duration::ZERO);
            State::Open
        } else {
            br.reset();
            State::Closed
        };
        let deadline = t0 + Duration::from_secs(2);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((n, to, at)) if &*n == name.as_str() && to == want => {
                    lat.push(at.duration_since(t0));
                    break;
                }
                Ok(_) => continue,
                Err(_) => {
                    lost += 1;
                    break;
                }
            }
        }
    }
    lat.sort();
    let mean = lat.iter().sum::<Duration>() / lat.len().max(1) as u32;
    let p99 = pct(&lat, 0.99);
    println!(
        "propagation: {} transitions A -> B on loopback: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}  mean {:?}  not applied within 2 s: {lost}",
        lat.len(),
        pct(&lat, 0.50),
        pct(&lat, 0.90),
        p99,
        lat.last().copied().unwrap_or_default(),
        mean
    );
    let sa = ha.status();
    println!(
        "instance A: published {}  refused {}; instance B: applied {}  stale_ignored {}",
        sa.published,
        sa.refused,
        hb.status().applied,
        hb.status().stale_ignored
    );

    // 2. The call path with sync on: no Redis call, unchanged cost.
    let n = 20_000_000;
    let plain = registry();
    burst(&plain, "hot", n / 10); // warm up
    burst(&a, "hot", n / 10);
    // The worker reconciles a newly registered breaker within one tick
    // (250 ms); let it, so only the burst is counted.
    std::thread::sleep(Duration::from_millis(1000));
    let before = commandstats(&url);
    let with_sync = burst(&a, "hot", n);
    let after = commandstats(&url);
    let without = burst(&plain, "hot", n);
    let mut delta = 0;
    let mut detail = Vec::new();
    for (cmd, calls) in &after {
        let was = before.iter().find(|(c, _)| c == cmd).map_or(0, |(_, v)| *v);
        // The INFO that took the "before" snapshot is counted in "after".
        let d = calls - was - u64::from(cmd == "info");
        if d > 0 {
            detail.push(format!("{cmd}+{d}"));
        }
        delta += d;
    }
    println!(
        "call path: {n} acquire+record(SUCCESS) in CLOSED: {with_sync:.2} ns/call with sync on, {without:.2} ns/call without; Redis commands during the burst: {delta} {detail:?}"
    );
    let ok = p99 < Duration::from_millis(50) && lost == 0 && delta == 0;
    println!(
        "budget (p99 < 50 ms, zero Redis calls on the call path): {}",
        if ok { "PASS" } else { "FAIL" }
    );
    drop(ha);
    drop(hb);
    if !ok {
        std::process::exit(1);
    }
}
