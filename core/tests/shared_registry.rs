//! A registry on a host-shared segment (`Registry::on_segment`) with real
//! files and real processes: this test binary re-runs itself as worker
//! processes (each `*_child` test does nothing unless its environment
//! variable is set).

#![cfg(all(unix, target_has_atomic = "64"))]

mod common;

use common::TempDir;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use circuit_core::shared::{Segment, SegmentOptions};
use circuit_core::{
    Config, Outcome, Reason, Registry, RegistryError, RegistryOptions, RejectReason, State,
};

fn opts(capacity: u32) -> SegmentOptions {
    SegmentOptions {
        capacity,
        stripes: 4,
        ..SegmentOptions::default()
    }
}

fn dir(test: &str) -> TempDir {
    common::temp_dir(&format!("shr-{test}"))
}

fn config() -> Config {
    Config::builder()
        .consecutive_failures(Some(3))
        .open_duration(Duration::from_secs(60))
        .max_open_duration(Duration::from_secs(120))
        .jitter(0.0)
        .build()
        .unwrap()
}

fn registry(path: &Path, capacity: u32) -> Registry {
    let config = config();
    let segment = Arc::new(Segment::open(path, &config, &opts(capacity)).unwrap());
    Registry::on_segment(
        segment,
        RegistryOptions {
            defaults: config,
            ..RegistryOptions::default()
        },
    )
    .unwrap()
}

fn fail(r: &Registry, name: &str, n: u32) {
    let b = r.get_or_create(name).unwrap();
    for _ in 0..n {
        let p = b.acquire().unwrap();
        b.record(p, Outcome::Failure, Duration::ZERO);
    }
}

/// Runs this test binary's test `test` as a child process with `env` set.
fn child(test: &str, env: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

fn say(line: &str) {
    println!("\n{line}");
    std::io::stdout().flush().unwrap();
}

/// Child: a registry on the segment; follows commands read from stdin,
/// one a line, and answers each with one line on stdout:
/// `fail NAME N` records N failures on NAME; `state NAME` prints its state
/// and the transitions its registry listener heard (`to/reason` list).
#[test]
fn registry_child() {
    let Ok(path) = std::env::var("CIRCUIT_SHR_SEGMENT") else {
        return;
    };
    let r = registry(Path::new(&path), 8);
    let events = r.event_queue(64).unwrap();
    let mut heard: Vec<String> = Vec::new();
    say("ready:");
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["fail", name, n] => {
                fail(&r, name, n.parse().unwrap());
                say("done:");
            }
            ["state", name] => {
                let b = r.get_or_create(name).unwrap();
                // A call is what makes a process notice a transition won
                // elsewhere (events with reason `Remote`).
                let _ = b.acquire();
                while let Some(e) = events.poll() {
                    heard.push(format!(
                        "{}:{:?}/{:?}",
                        e.breaker, e.transition.to, e.transition.reason
                    ));
                }
                say(&format!(
                    "state: {:?} {} [{}]",
                    b.state(),
                    r.len(),
                    heard.join(",")
                ));
            }
            _ => panic!("unknown command {line:?}"),
        }
    }
}

struct Worker {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Worker {
    fn start(path: &Path) -> Worker {
        let mut child = child(
            "registry_child",
            &[("CIRCUIT_SHR_SEGMENT", path.display().to_string())],
        );
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut w = Worker { child, out };
        w.answer("ready:");
        w
    }

    fn answer(&mut self, prefix: &str) -> String {
        loop {
            let mut line = String::new();
            assert!(
                self.out.read_line(&mut line).unwrap() > 0,
                "child exited before printing {prefix:?}"
            );
            if let Some(rest) = line.trim_end().split(prefix).nth(1) {
                return rest.trim().to_string();
            }
        }
    }

    fn ask(&mut self, command: &str, prefix: &str) -> String {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        self.answer(prefix)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Two processes, each with a registry on one segment, see one breaker per
/// name: failures split across them trip it once, both see it OPEN, a name
/// neither has tripped stays CLOSED, and each registry's listener hears of
/// the trip: the process that won it with its own reason, the other with
/// `Remote`.
#[test]
fn two_processes_with_a_registry_each_share_one_breaker_per_name() {
    let d = dir("procs");
    let path = d.0.join("seg");
    let mut a = Worker::start(&path);
    let mut b = Worker::start(&path);
    a.ask("fail payments 2", "done:");
    assert_eq!(a.ask("state payments", "state:"), "Closed 1 []");
    b.ask("fail payments 1", "done:");
    assert_eq!(
        b.ask("state payments", "state:"),
        "Open 1 [payments:Open/ConsecutiveFailures]"
    );
    assert_eq!(
        a.ask("state payments", "state:"),
        "Open 1 [payments:Open/Remote]"
    );
    assert_eq!(
        a.ask("state search", "state:"),
        "Closed 2 [payments:Open/Remote]"
    );
    assert_eq!(
        b.ask("state search", "state:"),
        "Closed 2 [payments:Open/ConsecutiveFailures]"
    );

    // And this process, a third with a registry of its own, sees them too.
    let r = registry(&path, 8);
    assert_eq!(r.get_or_create("payments").unwrap().state(), State::Open);
    assert_eq!(
        r.get_or_create("payments")
            .unwrap()
            .acquire()
            .unwrap_err()
            .reason,
        RejectReason::Open
    );
    assert_eq!(r.get_or_create("search").unwrap().state(), State::Closed);
    let counts = Segment::open(&path, &config(), &opts(8))
        .unwrap()
        .slot("payments")
        .unwrap()
        .counts();
    assert_eq!(counts.outcomes[Outcome::Failure as usize], 3);
}

/// In one process: the registry's breakers are host-shared, run the
/// segment's config, forward events to the registry's listeners, show in
/// its metrics and Prometheus export; a per-name config other than the
/// segment's and `reconfigure` are refused and change nothing; a full
/// segment is a clear error that leaves the registry as it was.
#[test]
fn a_registry_on_a_segment_refuses_other_configs_and_reports_a_full_segment() {
    let d = dir("one");
    let path = d.0.join("seg");
    let other = Config::builder()
        .consecutive_failures(Some(9))
        .build()
        .unwrap();
    let segment = Arc::new(Segment::open(&path, &config(), &opts(2)).unwrap());
    let e = Registry::on_segment(segment.clone(), RegistryOptions::default()).unwrap_err();
    assert!(matches!(e, RegistryError::InvalidConfig(_)), "{e}");
    assert!(e.to_string().contains("segment"), "{e}");

    let r = Registry::on_segment(
        segment,
        RegistryOptions {
            defaults: config(),
            ..RegistryOptions::default()
        },
    )
    .unwrap();
    assert!(r.is_on_segment());
    let q = r.event_queue(8).unwrap();
    let e = r.set_config("db", other.clone()).unwrap_err();
    assert!(e.to_string().contains("segment's config"), "{e}");
    r.set_config("db", config()).unwrap();
    fail(&r, "db", 3);
    let db = r.get("db").unwrap();
    assert!(db.is_host_shared());
    assert_eq!(db.config().consecutive_failures(), Some(3));
    assert_eq!(db.state(), State::Open);
    let ev = q.poll().expect("the registry's listener heard the trip");
    assert_eq!((&*ev.breaker, ev.transition.to), ("db", State::Open));
    assert_eq!(ev.transition.reason, Reason::ConsecutiveFailures);
    assert_eq!(db.metrics().outcomes[Outcome::Failure as usize], 3);
    let text = circuit_core::prometheus::render_registry(&r);
    assert!(text.contains("db"), "{text}");

    let e = r.reconfigure("db", other).unwrap_err();
    assert!(matches!(e, RegistryError::InvalidConfig(_)));
    assert!(e.to_string().contains("host-shared"), "{e}");
    assert_eq!(db.config().consecutive_failures(), Some(3));
    assert!(r.reconfigure("db", config()).is_err());

    r.get_or_create("cache").unwrap();
    let e = r.get_or_create("third").unwrap_err();
    assert_eq!(e, RegistryError::SegmentFull { capacity: 2 });
    assert!(e.to_string().contains("2 slots"), "{e}");
    assert_eq!(r.len(), 2);
    assert!(r.get("third").is_none());
}
