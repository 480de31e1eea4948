//! Host-shared breakers (`Segment::breaker`) with real files and real
//! processes: this test binary re-runs itself as worker processes (each
//! `*_child` test does nothing unless its environment variable is set).

#![cfg(all(unix, target_has_atomic = "64"))]
// The partner's call tally, outside the library: the loom shim rule of
// core/clippy.toml is for the core's own atomics.
#![allow(clippy::disallowed_types)]

mod common;

use common::TempDir;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use circuit_core::shared::{Segment, SegmentOptions};
use circuit_core::{Breaker, Config, EventQueue, Outcome, Reason, Recorded, RejectReason, State};

fn opts() -> SegmentOptions {
    SegmentOptions {
        capacity: 8,
        stripes: 8,
        ..SegmentOptions::default()
    }
}

fn dir(test: &str) -> TempDir {
    common::temp_dir(&format!("shb-{test}"))
}

fn open(path: &Path, config: &Config) -> Arc<Segment> {
    Arc::new(Segment::open(path, config, &opts()).unwrap())
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

/// Reads the child's stdout until a line containing `prefix`; returns the
/// rest of that line (once per child: the reader's buffer is dropped).
fn wait_line(child: &mut Child, prefix: &str) -> String {
    let out = child.stdout.as_mut().unwrap();
    let mut reader = BufReader::new(out);
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "child exited before printing {prefix:?}"
        );
        if let Some(rest) = line.trim_end().split(prefix).nth(1) {
            return rest.trim().to_string();
        }
    }
}

fn say(line: &str) {
    println!("\n{line}");
    std::io::stdout().flush().unwrap();
}

fn consecutive(threshold: u32) -> Config {
    Config::builder()
        .consecutive_failures(Some(threshold))
        .open_duration(Duration::from_secs(60))
        .max_open_duration(Duration::from_secs(120))
        .jitter(0.0)
        .build()
        .unwrap()
}

// ----- one process, two mappings ---------------------------------------------

/// Two mappings of one segment (as two processes have) give two ordinary
/// `Breaker`s on one state: a trip through one is the other's, its counts
/// are summed over both, and the other's listener hears of the transition
/// (reason `Remote`) on its next call.
#[test]
fn two_mappings_drive_one_breaker() {
    let d = dir("two");
    let path = d.0.join("seg");
    let config = consecutive(3);
    let a = Arc::new(open(&path, &config).breaker("payments").unwrap());
    let b = open(&path, &config).breaker("payments").unwrap();
    let other = open(&path, &config).breaker("search").unwrap();
    let events = Arc::new(EventQueue::new(16).unwrap());
    b.add_listener(events.clone());

    for _ in 0..2 {
        let p = a.acquire().unwrap();
        assert_eq!(
            a.record(p, Outcome::Failure, Duration::ZERO),
            Recorded::Counted
        );
    }
    let p = b.acquire().unwrap();
    assert_eq!(
        b.record(p, Outcome::Failure, Duration::ZERO),
        Recorded::Transitioned(State::Open),
        "the third failure, from the other mapping, trips the shared counter"
    );
    assert_eq!(a.state(), State::Open);
    assert_eq!(a.generation(), b.generation());
    let r = a.acquire().unwrap_err();
    assert_eq!(r.reason, RejectReason::Open);
    let left = r.retry_after.unwrap();
    // (Read on the coarse clock, up to a tick behind the precise one.)
    assert!(left > Duration::from_secs(59) && left <= Duration::from_millis(60_020));
    // The winner's own event, once; not again as `Remote`.
    let e = events.poll().unwrap();
    assert_eq!(e.transition.reason, Reason::ConsecutiveFailures);
    assert!(events.poll().is_none());
    assert_eq!(other.state(), State::Closed, "another name, another slot");

    // Counts: both mappings' stripes (one process: one stripe), summed.
    let m = b.metrics();
    assert_eq!(m.outcome(Outcome::Failure), 3);
    assert_eq!(m.rejected[RejectReason::Open as usize], 1);
    assert_eq!(a.metrics().outcome(Outcome::Failure), 3);

    // A transition won through `a` is news to `b`: its next call tells
    // its listener once.
    a.reset();
    assert!(events.poll().is_none(), "not before b looks");
    assert!(b.acquire().is_ok());
    let e = events.poll().unwrap();
    assert_eq!(e.transition.reason, Reason::Remote);
    assert_eq!(
        (e.transition.from, e.transition.to),
        (State::Open, State::Closed)
    );
    assert!(b.acquire().is_ok());
    assert!(events.poll().is_none(), "once");
    // The state word a host's inlined fast path reads is the slot's: a
    // transition through `a` shows in the word `b` hands out.
    a.force(circuit_core::Override::ForcedOpen, None);
    // SAFETY: the pointer is valid while `b` lives; an aligned u64 read.
    let word = unsafe { std::ptr::read_volatile(b.state_word_ptr()) };
    assert_ne!(word & circuit_core::fast_path::MASK, 0);
    assert_eq!(
        (word >> circuit_core::fast_path::GENERATION_SHIFT) as u32,
        a.generation()
    );
}

/// A count window and an EWMA live in the slot too: failures recorded
/// through two mappings fill one window.
#[test]
fn a_count_window_is_shared() {
    let d = dir("window");
    let path = d.0.join("seg");
    let config = Config::builder()
        .consecutive_failures(None)
        .failure_rate(Some(0.5))
        .count_window(10)
        .minimum_calls(10)
        .build()
        .unwrap();
    let a = open(&path, &config).breaker("w").unwrap();
    let b = open(&path, &config).breaker("w").unwrap();
    for i in 0..9 {
        let br = if i % 2 == 0 { &a } else { &b };
        let p = br.acquire().unwrap();
        let o = if i < 5 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        assert_eq!(br.record(p, o, Duration::ZERO), Recorded::Counted);
    }
    assert_eq!(a.metrics().window_calls, 9);
    assert_eq!(b.metrics().window_calls, 9);
    let p = b.acquire().unwrap();
    assert_eq!(
        b.record(p, Outcome::Success, Duration::ZERO),
        Recorded::Counted
    );
    let p = a.acquire().unwrap();
    assert_eq!(
        a.record(p, Outcome::Failure, Duration::ZERO),
        Recorded::Transitioned(State::Open),
        "6 of the last 10, from both mappings"
    );
    assert_eq!(b.state(), State::Open);
    // The winner cleared the shared window.
    assert_eq!(b.metrics().window_calls, 0);
}

// ----- crashes ---------------------------------------------------------------

fn crash_config() -> Config {
    Config::builder()
        .consecutive_failures(Some(1))
        .open_duration(Duration::from_millis(50))
        .max_open_duration(Duration::from_millis(400))
        .probe_lease(Duration::from_millis(300))
        .build()
        .unwrap()
}

/// Child: records one failure on the shared breaker with the hook armed,
/// so it is SIGKILLed between the trip's CAS and its deadline.
#[test]
fn die_after_cas_child() {
    let Ok(path) = std::env::var("CIRCUIT_SHB_DIE") else {
        return;
    };
    let b = open(Path::new(&path), &crash_config())
        .breaker("x")
        .unwrap();
    circuit_core::test_hooks::die_after_next_transition_cas();
    let p = b.acquire().unwrap();
    b.record(p, Outcome::Failure, Duration::ZERO);
    unreachable!("the hook kills this process");
}

/// A process killed right after winning CLOSED -> OPEN, before writing
/// the open deadline, leaves an OPEN generation with no deadline. The
/// first process to look stands in for it: the breaker half-opens at most
/// `max_open_duration` after that look, not never.
#[test]
fn a_winner_killed_before_its_deadline_does_not_wedge_the_breaker() {
    let d = dir("die");
    let path = d.0.join("seg");
    let mut c = child(
        "die_after_cas_child",
        &[("CIRCUIT_SHB_DIE", path.display().to_string())],
    );
    let status = c.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let b = open(&path, &crash_config()).breaker("x").unwrap();
    assert_eq!(b.state(), State::Open, "the dead process won the trip");
    assert_eq!(b.open_deadline(), None, "and wrote no deadline");
    let first_look = Instant::now();
    let r = b.acquire().unwrap_err();
    assert_eq!(r.reason, RejectReason::Open);
    assert!(r.retry_after.unwrap() <= Duration::from_millis(420));
    assert!(b.open_deadline().is_some(), "the reader stamped a stand-in");
    let p = loop {
        match b.acquire() {
            Ok(p) => break p,
            Err(_) => {
                assert!(
                    first_look.elapsed() < Duration::from_secs(5),
                    "still open long after max_open_duration"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    assert!(first_look.elapsed() >= Duration::from_millis(390));
    assert!(p.is_probe());
    assert_eq!(
        b.record(p, Outcome::Success, Duration::ZERO),
        Recorded::Transitioned(State::Closed)
    );
}

/// Child: takes the half-open probe permit, says so, and waits to be
/// killed.
#[test]
fn probe_holder_child() {
    let Ok(path) = std::env::var("CIRCUIT_SHB_PROBE") else {
        return;
    };
    let b = open(Path::new(&path), &crash_config())
        .breaker("x")
        .unwrap();
    let p = loop {
        match b.acquire() {
            Ok(p) => break p,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    assert!(p.is_probe());
    say("probe-held");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// A probe permit held by a process that is SIGKILLed is reclaimed when
/// its lease runs out: another process then gets the probe.
#[test]
fn a_probe_held_by_a_killed_process_is_reclaimed_by_the_lease() {
    let d = dir("probe");
    let path = d.0.join("seg");
    let b = open(&path, &crash_config()).breaker("x").unwrap();
    let p = b.acquire().unwrap();
    b.record(p, Outcome::Failure, Duration::ZERO);
    assert_eq!(b.state(), State::Open);
    let mut c = child(
        "probe_holder_child",
        &[("CIRCUIT_SHB_PROBE", path.display().to_string())],
    );
    wait_line(&mut c, "probe-held");
    let held = Instant::now();
    c.kill().unwrap();
    c.wait().unwrap();
    assert_eq!(b.state(), State::HalfOpen);
    let r = b.acquire().unwrap_err();
    assert_eq!(r.reason, RejectReason::HalfOpenFull);
    let p = loop {
        match b.acquire() {
            Ok(p) => break p,
            Err(_) => {
                assert!(held.elapsed() < Duration::from_secs(5), "never reclaimed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    assert!(held.elapsed() >= Duration::from_millis(250));
    assert!(p.is_probe());
    assert_eq!(
        b.record(p, Outcome::Success, Duration::ZERO),
        Recorded::Transitioned(State::Closed)
    );
}

// ----- stress: exact conservation --------------------------------------------

const STRESS_WORKERS: usize = 4;
const STRESS_CALLS: u64 = 500_000;

fn stress_config() -> Config {
    Config::builder()
        .consecutive_failures(Some(20))
        .failure_rate(Some(0.6))
        .count_window(64)
        .minimum_calls(32)
        .open_duration(Duration::from_millis(1))
        .max_open_duration(Duration::from_millis(4))
        .half_open_probes(2)
        .half_open_successes(2)
        .build()
        .unwrap()
}

/// Child: at least `STRESS_CALLS` calls on the shared breaker over at
/// least 300 ms, failing for 5 ms of every 50 (host time, so every process
/// fails at once and the breaker trips and recovers again and again);
/// waits out rejections as a client would; prints what it saw, by kind.
#[test]
fn stress_child() {
    let Ok(path) = std::env::var("CIRCUIT_SHB_STRESS") else {
        return;
    };
    let b = open(Path::new(&path), &stress_config())
        .breaker("s")
        .unwrap();
    let (mut admitted, mut rejected, mut stale) = (0u64, 0u64, 0u64);
    let mut counted = [0u64; 4];
    let start = Instant::now();
    let mut i = 0u64;
    while i < STRESS_CALLS || start.elapsed() < Duration::from_millis(300) {
        i += 1;
        match b.acquire() {
            Ok(p) => {
                admitted += 1;
                let ms = circuit_core::Clock::now(&circuit_core::shared::HostClock) / 1_000_000;
                let o = if ms % 50 < 5 || i % 11 == 0 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                match b.record(p, o, Duration::ZERO) {
                    Recorded::Stale => stale += 1,
                    Recorded::Counted | Recorded::Transitioned(_) => counted[o as usize] += 1,
                    Recorded::NotRecorded => panic!("no override is set"),
                }
            }
            Err(r) => {
                rejected += 1;
                let wait = r.retry_after.unwrap_or(Duration::from_micros(50));
                std::thread::sleep(wait.min(Duration::from_micros(500)));
            }
        }
    }
    say(&format!(
        "stress-counts {i} {admitted} {rejected} {stale} {} {}",
        counted[Outcome::Success as usize],
        counted[Outcome::Failure as usize]
    ));
}

/// Several processes, millions of calls on one shared breaker that trips
/// and recovers all along: every call each process made is in the shared
/// counters exactly once (calls = admitted + rejected; admitted = counted
/// outcomes + stale reports), summed over the processes' stripes.
#[test]
fn processes_on_one_breaker_conserve_every_count() {
    let d = dir("stress");
    let path = d.0.join("seg");
    let mut kids: Vec<Child> = (0..STRESS_WORKERS)
        .map(|_| {
            child(
                "stress_child",
                &[("CIRCUIT_SHB_STRESS", path.display().to_string())],
            )
        })
        .collect();
    let mut total = [0u64; 5];
    let mut all_calls = 0;
    for c in &mut kids {
        let line = wait_line(c, "stress-counts");
        let mut v: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
        let calls = v.remove(0);
        assert_eq!(v[0] + v[1], calls);
        all_calls += calls;
        for (t, x) in total.iter_mut().zip(v) {
            *t += x;
        }
    }
    for mut c in kids {
        assert!(c.wait().unwrap().success());
    }
    let [admitted, rejected, stale, successes, failures] = total;
    let b = open(&path, &stress_config()).breaker("s").unwrap();
    let m = b.metrics();
    println!(
        "{all_calls} calls in {STRESS_WORKERS} processes: {admitted} admitted, \
         {rejected} rejected, {stale} stale"
    );
    assert_eq!(m.outcome(Outcome::Success), successes);
    assert_eq!(m.outcome(Outcome::Failure), failures);
    assert_eq!(m.stale, stale);
    assert_eq!(m.rejected_total(), rejected);
    assert_eq!(m.recorded(), admitted);
    assert_eq!(m.recorded() + m.rejected_total(), all_calls);
    assert!(all_calls >= STRESS_WORKERS as u64 * STRESS_CALLS);
    assert!(rejected > 0 && failures > 0, "the breaker tripped");
    // Transitions are counted by the process that won them: this one won
    // none, yet it sees where the others left the breaker.
    assert_eq!(m.transitions_total(), 0);
}

// ----- scenario: a failing partner and eight workers ---------------------------

const SCENARIO_WORKERS: usize = 8;
const THRESHOLD: u32 = 5;

/// Child: a worker calling a failing partner (a TCP server on loopback that
/// answers every call with a failure) through its breaker, shared or its
/// own, until the breaker stops it.
#[test]
fn partner_worker_child() {
    let Ok(port) = std::env::var("CIRCUIT_SHB_PARTNER") else {
        return;
    };
    let config = consecutive(THRESHOLD);
    let b = match std::env::var("CIRCUIT_SHB_SEGMENT") {
        Ok(path) => open(Path::new(&path), &config).breaker("partner").unwrap(),
        Err(_) => Breaker::new(config),
    };
    say("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    while let Ok(p) = b.acquire() {
        let mut s = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
        let mut answer = [0u8; 1];
        s.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"F");
        b.record(p, Outcome::Failure, Duration::ZERO);
    }
    say("stopped");
}

/// Runs the scenario; returns the calls that reached the partner.
fn partner_calls(shared: Option<&Path>) -> u64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(AtomicU64::new(0));
    let server = {
        let calls = calls.clone();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let quiet = Instant::now();
            let mut last = Instant::now();
            while last.duration_since(quiet) < Duration::from_secs(30) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let _ = s.write_all(b"F");
                    }
                    Err(_) => {
                        if calls.load(Ordering::SeqCst) == u64::MAX {
                            return;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                last = Instant::now();
            }
        })
    };
    let mut env = vec![("CIRCUIT_SHB_PARTNER", port.to_string())];
    if let Some(p) = shared {
        env.push(("CIRCUIT_SHB_SEGMENT", p.display().to_string()));
    }
    let mut kids: Vec<Child> = (0..SCENARIO_WORKERS)
        .map(|_| child("partner_worker_child", &env))
        .collect();
    for c in &mut kids {
        wait_line(c, "ready");
    }
    for c in &mut kids {
        writeln!(c.stdin.as_mut().unwrap(), "go").unwrap();
    }
    for c in &mut kids {
        wait_line(c, "stopped");
    }
    for mut c in kids {
        assert!(c.wait().unwrap().success());
    }
    let n = calls.swap(u64::MAX, Ordering::SeqCst);
    server.join().unwrap();
    n
}

/// Eight worker processes call a partner that fails every call. With one
/// host-shared breaker the partner takes `threshold` calls (plus at most
/// one in flight per other worker) before every worker stops; with a
/// breaker per process it takes `threshold` from each of them.
#[test]
fn a_shared_breaker_spares_the_failing_partner() {
    let d = dir("partner");
    let path = d.0.join("seg");
    let shared = partner_calls(Some(&path));
    let separate = partner_calls(None);
    println!(
        "calls reaching the failing partner before {SCENARIO_WORKERS} workers stop \
         (threshold {THRESHOLD}): shared breaker {shared}, per-process breakers {separate}"
    );
    assert_eq!(separate, SCENARIO_WORKERS as u64 * u64::from(THRESHOLD));
    assert!(
        shared >= u64::from(THRESHOLD) && shared < u64::from(THRESHOLD) + SCENARIO_WORKERS as u64,
        "shared: {shared}"
    );
}

// ----- random kills during a stress run --------------------------------------

fn chaos_config() -> Config {
    Config::builder()
        .consecutive_failures(Some(10))
        .open_duration(Duration::from_millis(1))
        .max_open_duration(Duration::from_millis(4))
        .half_open_probes(2)
        .half_open_successes(2)
        .probe_lease(Duration::from_millis(50))
        .build()
        .unwrap()
}

/// Child: calls the shared breaker (failing 5 ms of every 20, host time)
/// until its stdin closes or it is killed, then prints its tallies.
#[test]
fn chaos_child() {
    let Ok(path) = std::env::var("CIRCUIT_SHB_CHAOS") else {
        return;
    };
    let b = open(Path::new(&path), &chaos_config())
        .breaker("c")
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            stop.store(true, Ordering::SeqCst);
        });
    }
    say("chaos-ready");
    let (mut calls, mut recorded) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        calls += 1;
        match b.acquire() {
            Ok(p) => {
                let ms = circuit_core::Clock::now(&circuit_core::shared::HostClock) / 1_000_000;
                let o = if ms % 20 < 5 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                b.record(p, o, Duration::ZERO);
                recorded += 1;
            }
            Err(_) => std::thread::yield_now(),
        }
    }
    say(&format!("chaos-counts {calls} {recorded}"));
}

/// Six processes drive one breaker through trips and recoveries; three are
/// SIGKILLed at random moments (mid-call, holding probes, between a
/// transition and its deadline: wherever they are). The survivors' calls
/// are all in the shared counters, and the breaker is never wedged: a new
/// process brings it back to CLOSED within the lease and the max open
/// duration.
#[test]
fn killing_random_workers_never_wedges_the_breaker() {
    let d = dir("chaos");
    let path = d.0.join("seg");
    let env = [("CIRCUIT_SHB_CHAOS", path.display().to_string())];
    let mut kids: Vec<Child> = (0..6).map(|_| child("chaos_child", &env)).collect();
    let mut readers: Vec<_> = kids
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()))
        .collect();
    for r in &mut readers {
        let mut line = String::new();
        while !line.contains("chaos-ready") {
            line.clear();
            assert!(r.read_line(&mut line).unwrap() > 0, "worker exited");
        }
    }
    let seed = u64::from(std::process::id());
    for (k, c) in kids.iter_mut().take(3).enumerate() {
        // 20-80 ms apart, differently on every run.
        let wait = 20 + (seed.wrapping_mul(2_654_435_761).rotate_left(k as u32 * 7) % 60);
        std::thread::sleep(Duration::from_millis(wait));
        c.kill().unwrap();
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut survivors_recorded = 0;
    for (c, r) in kids.iter_mut().zip(&mut readers).skip(3) {
        drop(c.stdin.take());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(r.read_line(&mut line).unwrap() > 0, "survivor exited");
            if let Some(rest) = line.trim().strip_prefix("chaos-counts ") {
                let v: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
                survivors_recorded += v[1];
                break;
            }
        }
        assert!(c.wait().unwrap().success());
    }
    let b = open(&path, &chaos_config()).breaker("c").unwrap();
    let m = b.metrics();
    assert!(
        m.recorded() >= survivors_recorded,
        "{} < {survivors_recorded}",
        m.recorded()
    );
    let start = Instant::now();
    while b.state() != State::Closed {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "wedged in {:?}",
            b.state()
        );
        match b.acquire() {
            Ok(p) => {
                b.record(p, Outcome::Success, Duration::ZERO);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    println!(
        "3 of 6 workers killed; {} calls recorded in all, back to CLOSED in {:?}",
        m.recorded(),
        start.elapsed()
    );
}

// ----- features that meet a host-shared breaker ------------------------------

/// A host-shared breaker runs on the config hashed into its segment's
/// header: reconfiguring one process's view is refused and changes
/// nothing (every process keeps reading the same words the same way).
#[test]
fn a_shared_breaker_refuses_reconfiguration() {
    let d = dir("reconf");
    let path = d.0.join("seg");
    let config = consecutive(3);
    let b = open(&path, &config).breaker("payments").unwrap();
    let err = b.reconfigure(consecutive(1)).unwrap_err();
    assert_eq!(err.field, "config", "{err}");
    let p = b.acquire().unwrap();
    assert_eq!(
        b.record(p, Outcome::Failure, Duration::ZERO),
        Recorded::Counted,
        "the segment's threshold of 3 still holds"
    );
    assert_eq!(b.state(), State::Closed);
}

/// The prober reads a shared breaker's slot words: a breaker tripped
/// through another mapping is due for a probe at its open deadline, and
/// the probe's success closes it for every mapping.
#[test]
fn a_shared_breaker_is_probed_at_its_open_deadline() {
    use circuit_core::probe::Prober;
    let d = dir("probed-at-deadline");
    let path = d.0.join("seg");
    let config = Config::builder()
        .consecutive_failures(Some(1))
        .open_duration(Duration::from_millis(20))
        .jitter(0.0)
        .build()
        .unwrap();
    let a = Arc::new(open(&path, &config).breaker("payments").unwrap());
    let b = Arc::new(open(&path, &config).breaker("payments").unwrap());
    let prober = Prober::new();
    prober.register(&a, Default::default()).unwrap();
    let p = b.acquire().unwrap();
    assert_eq!(
        b.record(p, Outcome::Failure, Duration::ZERO),
        Recorded::Transitioned(State::Open)
    );
    let due = prober
        .next_due(Duration::from_secs(5))
        .expect("a probe is due at the open deadline");
    prober.complete(due.ticket, Outcome::Success).unwrap();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(a.state(), State::Closed);
}

/// A snapshot of a host-shared breaker records the slot's state (not the
/// inline word that keeps it off the fast path), and restores into an
/// in-process breaker or into another segment's breaker.
#[test]
fn a_shared_breaker_snapshots_and_restores_its_slot_state() {
    let d = dir("snap");
    let config = consecutive(2);
    let a = open(&d.0.join("seg"), &config).breaker("payments").unwrap();
    for _ in 0..2 {
        let p = a.acquire().unwrap();
        a.record(p, Outcome::Failure, Duration::ZERO);
    }
    assert_eq!(a.state(), State::Open);
    let record = a.snapshot();

    let local = Breaker::new(config.clone());
    local.restore(&record).unwrap();
    assert_eq!(local.state(), State::Open, "an OPEN slot, not an override");
    assert_eq!(local.acquire().unwrap_err().reason, RejectReason::Open);

    let other = open(&d.0.join("seg2"), &config)
        .breaker("payments")
        .unwrap();
    other.restore(&record).unwrap();
    assert_eq!(other.state(), State::Open);
    let again = open(&d.0.join("seg2"), &config)
        .breaker("payments")
        .unwrap();
    assert_eq!(again.state(), State::Open, "restored into the slot itself");
}
