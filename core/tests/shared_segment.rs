//! Host-shared segments (`circuit_core::shared`) with real files and real
//! processes: this test binary re-runs itself as worker processes (the
//! `worker` test, which does nothing unless `CIRCUIT_SHM_WORKER` is set).

#![cfg(all(unix, target_has_atomic = "64"))]

mod common;

use common::TempDir;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use circuit_core::shared::layout::LayoutError;
use circuit_core::shared::{Segment, SegmentError, SegmentOptions};
use circuit_core::{Config, Outcome, State};

fn config() -> Config {
    Config::builder()
        .consecutive_failures(Some(5))
        .failure_rate(Some(0.5))
        .count_window(100)
        .build()
        .unwrap()
}

fn opts() -> SegmentOptions {
    SegmentOptions {
        capacity: 16,
        stripes: 4,
        ..SegmentOptions::default()
    }
}

fn dir(test: &str) -> TempDir {
    common::temp_dir(&format!("shm-{test}"))
}

fn layout_err(r: Result<Segment, SegmentError>) -> LayoutError {
    match r {
        Err(SegmentError::Layout(e)) => e,
        other => panic!("expected a layout error, got {other:?}"),
    }
}

#[test]
fn a_new_segment_is_private_and_reopens() {
    let d = dir("new");
    let path = d.join("seg");
    let seg = Segment::open(&path, &config(), &opts()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        seg.header().total_size
    );
    let a = seg.slot("payments").unwrap();
    assert_eq!(a.state(), State::Closed);
    assert_eq!(a.generation(), 0);
    a.stripe().outcome(Outcome::Failure);
    // A second mapping (as another process would) sees the same slot.
    let again = Segment::open(&path, &config(), &opts()).unwrap();
    assert_eq!(again.header(), seg.header());
    assert_eq!(
        again.slot("payments").unwrap().counts().outcomes[Outcome::Failure as usize],
        1
    );
    assert_eq!(again.slot("search").unwrap().counts().outcomes, [0; 4]);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("seg")]);
}

#[test]
fn another_config_or_geometry_is_refused() {
    let d = dir("mismatch");
    let path = d.join("seg");
    drop(Segment::open(&path, &config(), &opts()).unwrap());
    let other = Config::builder()
        .consecutive_failures(Some(6))
        .failure_rate(Some(0.5))
        .count_window(100)
        .build()
        .unwrap();
    assert!(matches!(
        layout_err(Segment::open(&path, &other, &opts())),
        LayoutError::ConfigMismatch { .. }
    ));
    let more = SegmentOptions {
        capacity: 17,
        ..opts()
    };
    assert_eq!(
        layout_err(Segment::open(&path, &config(), &more)),
        LayoutError::GeometryMismatch("capacity")
    );
    let e = Segment::open(&path, &other, &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("another config"), "{e}");
}

#[test]
fn truncated_corrupted_and_foreign_files_are_refused() {
    let d = dir("hostile");
    let path = d.join("seg");
    drop(Segment::open(&path, &config(), &opts()).unwrap());
    let good = std::fs::read(&path).unwrap();

    let write = |p: &Path, bytes: &[u8]| {
        let _ = std::fs::remove_file(p);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_0600()
            .open(p)
            .unwrap();
        f.write_all(bytes).unwrap();
    };

    let t = d.join("truncated");
    write(&t, &good[..good.len() - 1]);
    assert!(matches!(
        layout_err(Segment::open(&t, &config(), &opts())),
        LayoutError::Truncated { .. }
    ));
    write(&t, &good[..100]);
    assert!(matches!(
        layout_err(Segment::open(&t, &config(), &opts())),
        LayoutError::Truncated { .. }
    ));
    // An empty file (a creator that died before writing, by another
    // library) is refused too, not initialised over.
    write(&t, &[]);
    assert!(matches!(
        layout_err(Segment::open(&t, &config(), &opts())),
        LayoutError::Truncated { .. }
    ));

    let c = d.join("corrupt");
    let mut bad = good.clone();
    bad[40] ^= 0x10;
    write(&c, &bad);
    assert_eq!(
        layout_err(Segment::open(&c, &config(), &opts())),
        LayoutError::Corrupt("checksum")
    );

    let f = d.join("foreign");
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    write(&f, &exe[..good.len().min(exe.len())]);
    assert_eq!(
        layout_err(Segment::open(&f, &config(), &opts())),
        LayoutError::BadMagic
    );

    // A symlink to a valid segment is not followed.
    let l = d.join("link");
    std::os::unix::fs::symlink(&path, &l).unwrap();
    assert!(matches!(
        Segment::open(&l, &config(), &opts()),
        Err(SegmentError::NotRegular)
    ));

    // A valid segment that others may write is refused.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(matches!(
        Segment::open(&path, &config(), &opts()),
        Err(SegmentError::Permissions { mode: 0o666 })
    ));
    // Unless the caller asked for that mode.
    let shared = SegmentOptions {
        mode: 0o666,
        ..opts()
    };
    assert!(Segment::open(&path, &config(), &shared).is_ok());
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

#[test]
fn bad_names_and_a_full_segment_are_errors() {
    let d = dir("names");
    let small = SegmentOptions {
        capacity: 2,
        ..opts()
    };
    let seg = Segment::open(&d.join("seg"), &config(), &small).unwrap();
    assert!(matches!(seg.slot(""), Err(SegmentError::BreakerName)));
    assert!(matches!(
        seg.slot(&"x".repeat(120)),
        Err(SegmentError::BreakerName)
    ));
    seg.slot(&"y".repeat(119)).unwrap();
    seg.slot("a").unwrap();
    seg.slot("a").unwrap();
    assert!(matches!(
        seg.slot("b"),
        Err(SegmentError::Full { capacity: 2 })
    ));
    assert!(circuit_core::shared::shm_path("../etc").is_err());
    assert!(circuit_core::shared::shm_path("").is_err());
    assert_eq!(
        circuit_core::shared::shm_path("app-1").unwrap(),
        PathBuf::from("/dev/shm/circuit.app-1")
    );
    let bad_mode = SegmentOptions {
        mode: 0o400,
        ..opts()
    };
    assert!(matches!(
        Segment::open(&d.join("other"), &config(), &bad_mode),
        Err(SegmentError::Options(_))
    ));
}

// ----- multi-process --------------------------------------------------------

const PER_WORKER: u64 = 200_000;
const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];

/// The worker process: opens the segment (creating it if it is first),
/// records `PER_WORKER` outcomes spread over the names, says "done" and
/// waits to be killed or for its stdin to close.
#[test]
fn worker() {
    let Ok(path) = std::env::var("CIRCUIT_SHM_WORKER") else {
        return;
    };
    let seg = Segment::open(Path::new(&path), &config(), &opts()).unwrap();
    let slots: Vec<_> = NAMES.iter().map(|n| seg.slot(n).unwrap()).collect();
    let stripes: Vec<_> = slots.iter().map(|s| s.stripe()).collect();
    for i in 0..PER_WORKER {
        let k = (i % 3) as usize;
        let outcome = if i % 7 == 0 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        stripes[k].outcome(outcome);
    }
    println!("\nshm-worker-done");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn spawn_worker(path: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "worker", "--nocapture", "--test-threads=1"])
        .env("CIRCUIT_SHM_WORKER", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn wait_done(child: &mut Child) {
    let out = child.stdout.as_mut().unwrap();
    let mut reader = BufReader::new(out);
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "worker exited early"
        );
        if line.trim_end().ends_with("shm-worker-done") {
            return;
        }
    }
}

fn expected(workers: u64) -> [u64; 4] {
    let failures = workers * PER_WORKER.div_ceil(7);
    let mut o = [0; 4];
    o[Outcome::Failure as usize] = failures;
    o[Outcome::Success as usize] = workers * PER_WORKER - failures;
    o
}

/// Eight processes start at once on a segment that does not exist: one
/// creates it, every one opens the same one, one name is one slot in all of
/// them, and every count is kept exactly. Then half of them are SIGKILLed
/// and eight more run: they take over the dead workers' stripes (more
/// workers than stripes, so some share) and no count is lost.
#[test]
fn processes_create_race_free_and_conserve_every_count_through_kills() {
    let d = dir("race");
    let path = d.join("seg");
    let mut first: Vec<Child> = (0..8).map(|_| spawn_worker(&path)).collect();
    for c in &mut first {
        wait_done(c);
    }
    let seg = Segment::open(&path, &config(), &opts()).unwrap();
    let sum = |seg: &Segment| {
        let mut o = [0u64; 4];
        for n in NAMES {
            let c = seg.slot(n).unwrap().counts();
            for (a, b) in o.iter_mut().zip(c.outcomes) {
                *a += b;
            }
        }
        o
    };
    assert_eq!(sum(&seg), expected(8));
    // Kill every other worker (SIGKILL: no destructor runs), finish the rest.
    for (i, mut c) in first.into_iter().enumerate() {
        if i % 2 == 0 {
            c.kill().unwrap();
        } else {
            drop(c.stdin.take());
        }
        c.wait().unwrap();
    }
    let mut second: Vec<Child> = (0..8).map(|_| spawn_worker(&path)).collect();
    for c in &mut second {
        wait_done(c);
    }
    assert_eq!(sum(&seg), expected(16));
    for mut c in second {
        drop(c.stdin.take());
        c.wait().unwrap();
    }
    // Three names, three slots, and nothing else claimed.
    assert_eq!(
        std::fs::read_dir(&d).unwrap().count(),
        1,
        "a temporary file was left behind"
    );
}

/// The clock of shared breakers is one clock for the host: a reading taken
/// in another process falls between two readings taken here around it
/// (the per-process `MonotonicClock`, relative to each process's start,
/// would not).
#[test]
fn host_clock_readings_compare_across_processes() {
    use circuit_core::shared::HostClock;
    use circuit_core::Clock;
    if std::env::var("CIRCUIT_SHM_CLOCK").is_ok() {
        println!("\nshm-clock {}", HostClock.now());
        return;
    }
    let before = HostClock.now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "host_clock_readings_compare_across_processes",
            "--nocapture",
        ])
        .env("CIRCUIT_SHM_CLOCK", "1")
        .output()
        .unwrap();
    let after = HostClock.now();
    let text = String::from_utf8(out.stdout).unwrap();
    let theirs: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("shm-clock "))
        .unwrap_or_else(|| panic!("no reading in {text:?}"))
        .parse()
        .unwrap();
    assert!(
        before <= theirs && theirs <= after,
        "{before} <= {theirs} <= {after}"
    );
}
