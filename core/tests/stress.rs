//! Real-thread stress tests (DESIGN.md section 5, STYLE.md "loom's blind
//! spots"): four threads hammer one shared breaker, then the test checks that
//! the counters conserve exactly:
//!
//! - admitted + rejected = attempts, as counted by the threads;
//! - `metrics().rejected_total()` = the threads' rejections;
//! - `metrics().recorded()` (outcomes + stale) = admitted permits (each is
//!   recorded exactly once), less those a DISABLED breaker did not record;
//! - transitions seen by a listener = the sum of `metrics().transitions_to`;
//! - at most `half_open_probes` probes of one half-open generation are ever
//!   in flight at once (B5, invariant 9);
//!
//! and that the count window's counts equal its slots' contents after
//! contended writes (invariant 6).
//!
//! Time is a `ManualClock` that the threads advance as they go, so OPEN
//! deadlines and probe leases pass many times during a run.

// The test's own tallies, outside the library: the loom shim rule of
// core/clippy.toml is for the core's own atomics.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use circuit_core::{
    Breaker, Clock, Config, Listener, ManualClock, Outcome, Override, Permit, Recorded, State,
};
use common::{ms, Counter, MS};

const THREADS: usize = 4;
const START: u64 = 1_000 * MS;

/// Operations per thread: a few million in all in release builds;
/// `CIRCUIT_STRESS_OPS` overrides (the ThreadSanitizer run uses fewer).
fn ops() -> u64 {
    if let Some(n) = std::env::var("CIRCUIT_STRESS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if cfg!(debug_assertions) {
        100_000
    } else {
        2_000_000
    }
}

/// xorshift64*: a fast, seedable generator for the threads' choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A random outcome: mostly successes, failures often enough to trip.
fn outcome(rng: &mut Rng, fail_percent: u64) -> Outcome {
    match rng.next() % 100 {
        n if n < fail_percent => Outcome::Failure,
        n if n < fail_percent + 4 => Outcome::Timeout,
        n if n < fail_percent + 8 => Outcome::Ignored,
        _ => Outcome::Success,
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    attempts: u64,
    admitted: u64,
    rejected: u64,
    not_recorded: u64,
    probes: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.attempts += o.attempts;
        self.admitted += o.admitted;
        self.rejected += o.rejected;
        self.not_recorded += o.not_recorded;
        self.probes += o.probes;
    }
}

/// Probes in flight per half-open generation (indexed by its low 16 bits),
/// counted by the test threads: up after `acquire`, down just before
/// `record`, so the count never exceeds the breaker's own.
struct ProbeGauge {
    per_generation: Vec<AtomicI64>,
    max: AtomicI64,
}

impl ProbeGauge {
    fn new() -> ProbeGauge {
        ProbeGauge {
            per_generation: (0..1 << 16).map(|_| AtomicI64::new(0)).collect(),
            max: AtomicI64::new(0),
        }
    }

    fn slot(&self, p: Permit) -> &AtomicI64 {
        &self.per_generation[(p.generation() & 0xFFFF) as usize]
    }

    fn take(&self, p: Permit) {
        let n = self.slot(p).fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(n, SeqCst);
    }

    fn release(&self, p: Permit) {
        self.slot(p).fetch_sub(1, SeqCst);
    }
}

/// One worker: `n` acquire/record pairs. A probe is now and then held
/// back for a while (a slow or lost call) and reported late, so leases
/// expire. Every worker moves the shared clock on as it goes.
fn worker(
    b: &Breaker,
    clock: &ManualClock,
    gauge: &ProbeGauge,
    fail_percent: u64,
    n: u64,
    rng: &mut Rng,
) -> Tally {
    let mut tally = Tally::default();
    let mut held: Option<(Permit, u64)> = None;
    for i in 0..n {
        if i % 4 == 0 {
            clock.advance(Duration::from_micros(5));
        }
        if let Some((p, until)) = held {
            if i >= until {
                gauge.release(p);
                if b.record(p, Outcome::Success, ms(1)) == Recorded::NotRecorded {
                    tally.not_recorded += 1;
                }
                held = None;
            }
        }
        tally.attempts += 1;
        let p = match b.acquire() {
            Ok(p) => p,
            Err(_) => {
                tally.rejected += 1;
                continue;
            }
        };
        tally.admitted += 1;
        if p.is_probe() {
            tally.probes += 1;
            gauge.take(p);
            if held.is_none() && rng.chance(5) {
                held = Some((p, i + 200));
                continue;
            }
            if rng.chance(20) {
                thread::yield_now();
            }
            gauge.release(p);
        }
        let o = outcome(rng, fail_percent);
        let d = if rng.chance(3) { ms(200) } else { ms(1) };
        if b.record(p, o, d) == Recorded::NotRecorded {
            tally.not_recorded += 1;
        }
    }
    if let Some((p, _)) = held {
        gauge.release(p);
        if b.record(p, Outcome::Success, ms(1)) == Recorded::NotRecorded {
            tally.not_recorded += 1;
        }
    }
    tally
}

struct Rig {
    breaker: Arc<Breaker>,
    clock: Arc<ManualClock>,
    transitions: Arc<Counter>,
    gauge: Arc<ProbeGauge>,
    probes: u32,
}

fn rig(config: Config) -> Rig {
    let clock = Arc::new(ManualClock::new(START));
    let transitions = Arc::new(Counter::default());
    let listener: Arc<dyn Listener> = transitions.clone();
    let probes = config.half_open_probes();
    let breaker = Arc::new(Breaker::build(
        config,
        clock.clone() as Arc<dyn Clock>,
        Some(listener),
    ));
    Rig {
        breaker,
        clock,
        transitions,
        gauge: Arc::new(ProbeGauge::new()),
        probes,
    }
}

/// Runs `THREADS` workers, the last one interleaving `operator` commands
/// with its calls if given, and checks conservation. Returns the summed
/// tally.
fn run(rig: &Rig, fail_percent: u64, operator: Option<fn(&Breaker, &mut Rng)>) -> Tally {
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (b, clock, gauge, barrier) = (
                rig.breaker.clone(),
                rig.clock.clone(),
                rig.gauge.clone(),
                barrier.clone(),
            );
            thread::spawn(move || {
                barrier.wait();
                let mut rng = Rng::new(t as u64 + 1);
                match operator {
                    Some(op) if t == THREADS - 1 => {
                        // Commands between batches of calls, so overrides
                        // race the other threads' traffic.
                        let mut tally = Tally::default();
                        for _ in 0..ops() / 256 {
                            op(&b, &mut rng);
                            tally += worker(&b, &clock, &gauge, fail_percent, 256, &mut rng);
                        }
                        tally
                    }
                    _ => worker(&b, &clock, &gauge, fail_percent, ops(), &mut rng),
                }
            })
        })
        .collect();
    let mut total = Tally::default();
    for h in handles {
        total += h.join().expect("worker panicked");
    }

    let b = &rig.breaker;
    let m = b.metrics();
    assert_eq!(total.admitted + total.rejected, total.attempts, "{total:?}");
    assert_eq!(m.rejected_total(), total.rejected, "rejections: {m:?}");
    assert_eq!(
        m.recorded() + total.not_recorded,
        total.admitted,
        "every admitted call recorded exactly once: {total:?} {m:?}"
    );
    assert_eq!(
        rig.transitions.get(),
        m.transitions_to.iter().sum::<u64>(),
        "listener calls vs transition counters: {m:?}"
    );
    let max = rig.gauge.max.load(SeqCst);
    assert!(
        max <= i64::from(rig.probes),
        "{max} probes of one generation in flight, limit {}",
        rig.probes
    );
    assert!(
        rig.gauge.per_generation.iter().all(|g| g.load(SeqCst) == 0),
        "gauge balanced"
    );
    total
}

#[test]
fn counters_conserve_through_many_trips_and_recoveries() {
    let config = Config::builder()
        .consecutive_failures(Some(4))
        .failure_rate(Some(0.5))
        .slow_call(Some((0.9, ms(100))))
        .count_window(32)
        .minimum_calls(16)
        .open_duration(ms(1))
        .max_open_duration(ms(4))
        .backoff_multiplier(2.0)
        .jitter(0.1)
        .half_open_probes(3)
        .half_open_successes(2)
        .probe_lease(ms(2))
        .seed(5)
        .build()
        .unwrap();
    let rig = rig(config);
    let total = run(&rig, 10, None);
    assert_eq!(total.attempts, THREADS as u64 * ops());
    let m = rig.breaker.metrics();
    let to = |s: State| m.transitions_to[s.index()];
    // The run really tripped and recovered, many times (100 times at the
    // default size; proportionally fewer when CIRCUIT_STRESS_OPS shrinks it).
    let many = (ops() / 7_500).max(2);
    assert!(to(State::Open) >= many, "{m:?}");
    assert!(to(State::HalfOpen) >= many, "{m:?}");
    assert!(to(State::Closed) >= many / 2, "{m:?}");
    assert!(total.probes >= many && total.rejected > 0, "{total:?}");
    assert_eq!(total.not_recorded, 0);
}

#[test]
fn counters_conserve_with_overrides_racing_automatic_transitions() {
    let config = Config::builder()
        .consecutive_failures(Some(3))
        .ewma(Some((0.3, 0.6)))
        .minimum_calls(5)
        .open_duration(ms(1))
        .max_open_duration(ms(2))
        .half_open_probes(2)
        .probe_lease(ms(1))
        .build()
        .unwrap();
    let rig = rig(config);
    fn operator(b: &Breaker, rng: &mut Rng) {
        let expiry = rng
            .chance(50)
            .then(|| Duration::from_micros(rng.next() % 500));
        match rng.next() % 8 {
            0 => drop(b.force(Override::ForcedOpen, expiry)),
            1 => drop(b.force(Override::ForcedClosed, expiry)),
            2 => drop(b.force(Override::Disabled, expiry)),
            3 => drop(b.force(Override::MetricsOnly, expiry)),
            4 | 5 => drop(b.clear_override()),
            6 => b.reset(),
            _ => drop(b.state()),
        }
    }
    let total = run(&rig, 25, Some(operator));
    let m = rig.breaker.metrics();
    for s in State::ALL {
        assert!(
            m.transitions_to[s.index()] > 0,
            "never entered {s:?}: {m:?}"
        );
    }
    assert!(total.not_recorded > 0 && total.rejected > 0, "{total:?}");
}

/// Invariants 6 and 16 under contention: the count window (through lanes
/// once the breaker is contended) keeps its failure and slow counts by
/// deltas against what each slot held, so once the writers are done the
/// counts must equal the slots' contents exactly. The slots are
/// not public, so each round ends in a state whose contents are known:
/// either every write of the round had the same bits, or `size` sequential
/// writes overwrite every slot after the threads have joined.
#[test]
fn count_window_counts_equal_its_slots_after_contended_writes() {
    count_window_rounds(true);
}

/// As above with metrics off: the window's own records claim the owner
/// word, so it still switches to lanes (invariant 16: its memory grows by
/// them) and its counts stay exact.
#[test]
fn count_window_without_metrics_switches_to_lanes_and_stays_exact() {
    count_window_rounds(false);
}

fn count_window_rounds(metrics: bool) {
    const SIZE: u32 = 64;
    let slow = ms(5);
    // The window is read by the slow-call policy only; failures never trip,
    // and an all-slow window is out of reach of the random rounds.
    let config = Config::builder()
        .consecutive_failures(None)
        .slow_call(Some((1.0, slow)))
        .count_window(SIZE)
        .minimum_calls(SIZE)
        .metrics(metrics)
        .build()
        .unwrap();
    let b = Arc::new(Breaker::with_clock(
        config,
        Arc::new(ManualClock::new(START)) as Arc<dyn Clock>,
    ));
    let bare = b.memory_bytes();
    let recorded = Arc::new(AtomicU64::new(0));
    // (failure percent, slow percent) per round; 100/0 and 0/0 rounds end
    // with known contents by themselves.
    let rounds: [(u64, u64); 6] = [(40, 30), (100, 0), (50, 50), (0, 0), (70, 10), (100, 0)];
    let per_round = ops() / rounds.len() as u64;
    for (round, &(fail, slowp)) in rounds.iter().enumerate() {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (b, recorded) = (b.clone(), recorded.clone());
                thread::spawn(move || {
                    let mut rng = Rng::new((round * THREADS + t) as u64 + 7);
                    for _ in 0..per_round {
                        let p = b.acquire().expect("never trips");
                        let o = if rng.chance(fail) {
                            Outcome::Failure
                        } else {
                            Outcome::Success
                        };
                        let d = if rng.chance(slowp) { slow } else { ms(1) };
                        assert_eq!(b.record(p, o, d), Recorded::Counted);
                        recorded.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("writer panicked");
        }
        let m = b.metrics();
        assert_eq!(m.state, Some(State::Closed));
        assert_eq!(m.window_calls, u64::from(SIZE));
        match (fail, slowp) {
            (100, 0) => assert_eq!((m.failure_rate, m.slow_call_rate), (1.0, 0.0), "{m:?}"),
            (0, 0) => assert_eq!((m.failure_rate, m.slow_call_rate), (0.0, 0.0), "{m:?}"),
            _ => {
                // The counts are whole numbers of slots.
                let f = m.failure_rate * f64::from(SIZE);
                assert_eq!(f, f.round(), "{m:?}");
                // Overwrite every slot sequentially with a known pattern.
                let failures = (round as u32 * 11) % SIZE;
                let slows = (round as u32 * 7 + 3) % SIZE;
                for i in 0..SIZE {
                    let p = b.acquire().unwrap();
                    let o = if i < failures {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    };
                    let d = if i < slows { slow } else { ms(1) };
                    b.record(p, o, d);
                    recorded.fetch_add(1, SeqCst);
                }
                let m = b.metrics();
                assert_eq!(
                    (m.failure_rate, m.slow_call_rate),
                    (
                        f64::from(failures) / f64::from(SIZE),
                        f64::from(slows) / f64::from(SIZE)
                    ),
                    "round {round}: {m:?}"
                );
            }
        }
    }
    if metrics {
        assert_eq!(b.metrics().recorded(), recorded.load(SeqCst));
    }
    assert!(
        b.memory_bytes() > bare,
        "contention allocated the window's lanes: {bare} -> {} bytes",
        b.memory_bytes()
    );
}

/// Idle eviction racing lookups (registry invariant 5, core invariant 10).
/// Host threads look breakers up by name (a few names, shared), hold them
/// for a microsecond to a few milliseconds, and while holding check that
/// every lookup of the name returns that very breaker and that the trips
/// they record on it are in the registry's view of it; a sweeper sweeps
/// with the shortest idle limit the whole time. A held breaker must never be
/// evicted, and one name must never mean two breakers while either is held.
#[test]
fn sweep_never_evicts_a_held_breaker() {
    use circuit_core::{Registry, RegistryOptions};
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::time::Instant;

    const HOSTS: usize = 4;
    const NAMES: u64 = 4;
    let registry = Arc::new(Registry::with_clock(
        RegistryOptions {
            defaults: Config::builder()
                .consecutive_failures(Some(1))
                .build()
                .unwrap(),
            max_breakers: 64,
            evict_after_idle_sweeps: Some(1),
        },
        Arc::new(ManualClock::new(START)),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let evicted = Arc::new(AtomicUsize::new(0));
    let sweeper = {
        let (registry, stop, evicted) = (registry.clone(), stop.clone(), evicted.clone());
        thread::spawn(move || {
            while !stop.load(SeqCst) {
                evicted.fetch_add(registry.sweep_idle(), SeqCst);
            }
        })
    };
    let run_for = Duration::from_millis(if cfg!(debug_assertions) { 800 } else { 1_500 });
    let hosts: Vec<_> = (0..HOSTS as u64)
        .map(|t| {
            let registry = registry.clone();
            thread::spawn(move || {
                let mut rng = Rng::new(t + 1);
                let started = Instant::now();
                let (mut holds, mut checks) = (0u64, 0u64);
                while started.elapsed() < run_for {
                    let name = format!("n{}", rng.next() % NAMES);
                    let held = registry.get_or_create(&name).unwrap();
                    holds += 1;
                    // Now and then a trip while held: it must show in the
                    // registry's view of the breaker.
                    let trips = held.metrics().transitions_total();
                    let tripped = rng.chance(20)
                        && held.acquire().is_ok_and(|p| {
                            held.record(p, Outcome::Failure, Duration::ZERO)
                                == Recorded::Transitioned(State::Open)
                        });
                    let hold = match rng.next() % 100 {
                        0..=1 => Duration::from_millis(1 + rng.next() % 2),
                        2..=31 => Duration::from_micros(1 + rng.next() % 50),
                        _ => Duration::ZERO,
                    };
                    let until = Instant::now() + hold;
                    loop {
                        let again = registry.get(&name);
                        checks += 1;
                        assert!(
                            again.as_ref().is_some_and(|b| Arc::ptr_eq(b, &held)),
                            "`{name}`: a lookup while the breaker is held returned {}",
                            if again.is_some() { "another breaker" } else { "nothing (evicted)" }
                        );
                        if tripped {
                            assert!(
                                again.unwrap().metrics().transitions_total() > trips,
                                "`{name}`: the trip recorded on the held breaker is not in the registry's"
                            );
                        }
                        if Instant::now() >= until {
                            break;
                        }
                        thread::yield_now();
                    }
                    let listed = registry
                        .sorted()
                        .into_iter()
                        .filter(|(n, _)| **n == *name)
                        .map(|(_, b)| b)
                        .collect::<Vec<_>>();
                    assert!(
                        listed.len() == 1 && Arc::ptr_eq(&listed[0], &held),
                        "`{name}`: the registry does not list the held breaker"
                    );
                    drop(listed);
                    if tripped {
                        // Back to CLOSED, so that it can go idle again.
                        held.reset();
                    }
                    drop(held);
                }
                (holds, checks)
            })
        })
        .collect();
    let mut holds = 0;
    for h in hosts {
        let (n, _) = h.join().expect("a host thread failed");
        holds += n;
    }
    stop.store(true, SeqCst);
    sweeper.join().unwrap();
    let evicted = evicted.load(SeqCst);
    assert!(holds > 1_000, "too few lookups to mean anything: {holds}");
    assert!(
        evicted > 100,
        "too few evictions to mean anything: {evicted}"
    );
    eprintln!("sweep_never_evicts_a_held_breaker: {holds} holds, {evicted} evictions");
}

/// Invariant 12: with many threads on one breaker the counters move to
/// per-thread stripes (the breaker's memory grows by them), and every
/// outcome, slow call and rejection is still counted exactly once, whichever
/// cell each thread happened to add to while ownership moved.
#[test]
fn striped_counters_count_exactly_under_many_threads() {
    const MANY: usize = 16;
    let per_thread = ops() / 8;
    let config = Config::builder()
        .consecutive_failures(None)
        .slow_call(Some((1.0, ms(100))))
        .build()
        .unwrap();
    let b = Arc::new(Breaker::with_clock(
        config,
        Arc::new(ManualClock::new(START)),
    ));
    let unstriped = b.memory_bytes();
    let barrier = Arc::new(Barrier::new(MANY));
    let workers: Vec<_> = (0..MANY)
        .map(|t| {
            let (b, barrier) = (Arc::clone(&b), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut rng = Rng::new(t as u64 + 1);
                let mut outcomes = [0u64; 4];
                let mut slow = 0;
                barrier.wait();
                for _ in 0..per_thread {
                    let o = match rng.next() % 4 {
                        0 => Outcome::Success,
                        1 => Outcome::Failure,
                        2 => Outcome::Timeout,
                        _ => Outcome::Ignored,
                    };
                    let is_slow = rng.chance(10);
                    let d = if is_slow { ms(150) } else { ms(1) };
                    let p = b.acquire().expect("no trip condition can open it");
                    assert_eq!(b.record(p, o, d), Recorded::Counted);
                    outcomes[o as usize] += 1;
                    slow += u64::from(is_slow && o != Outcome::Ignored);
                }
                // Rejections: the main thread forces the breaker open once
                // every outcome has landed.
                while b.state() != State::ForcedOpen {
                    thread::yield_now();
                }
                for _ in 0..per_thread {
                    assert!(b.acquire().is_err());
                }
                (outcomes, slow)
            })
        })
        .collect();
    let mut want_outcomes = [0u64; 4];
    let mut want_slow = 0;
    // Exact counts mean the snapshot reaches every record, never more.
    let expected_recorded = MANY as u64 * per_thread;
    loop {
        let m = b.metrics();
        if m.recorded() == expected_recorded {
            break;
        }
        assert!(m.recorded() < expected_recorded, "{m:?}");
        thread::sleep(Duration::from_millis(1));
    }
    b.force(Override::ForcedOpen, None);
    for w in workers {
        let (o, s) = w.join().unwrap();
        for (sum, n) in want_outcomes.iter_mut().zip(o) {
            *sum += n;
        }
        want_slow += s;
    }
    let m = b.metrics();
    assert_eq!(m.outcomes, want_outcomes);
    assert_eq!(m.slow, want_slow);
    assert_eq!(m.stale, 0);
    assert_eq!(
        m.rejected[circuit_core::RejectReason::ForcedOpen as usize],
        expected_recorded
    );
    assert_eq!(m.rejected_total(), expected_recorded);
    assert!(
        b.memory_bytes() > unstriped,
        "contention allocated stripes: {} -> {} bytes",
        unstriped,
        b.memory_bytes()
    );
}
