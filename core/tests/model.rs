//! Model-based property tests (DESIGN.md section 9).
//!
//! The lock-free [`Breaker`] on a [`ManualClock`] and a plain sequential
//! reference model are driven by the same weighted random operations and
//! compared after every step. The model is written from DESIGN.md B1-B6 and
//! the crate's numbered invariants, not from `breaker.rs`: an enum for the
//! state, a `VecDeque` for the count window, a `Vec` of
//! `(bucket_index, failed, slow)` for the time window, plain counters.
//!
//! Properties checked after every step:
//!
//! 1. `state()` and `generation()` equal the model's (B1, B5, B6).
//! 2. Every `acquire` returns what the model returns: a permit with the same
//!    generation and probe flag, or the same rejection reason and
//!    `retry_after` (B4, B5).
//! 3. Every `record` returns the same [`Recorded`] (B2, B5, B6).
//! 4. The listener receives exactly the model's transitions: from, to,
//!    generation, reason, time and open duration (B4, B7).
//! 5. `metrics()` counters (outcomes, slow, stale, rejections, transitions
//!    per state, time in state) and the window's calls and rates equal the
//!    model's (B8).
//! 6. `ramp_fraction()` equals the model's ramp-up fraction (invariant 14):
//!    after HALF_OPEN closes under a ramp, the model admits the `n`-th call
//!    of the ramp (from 0) when `frac(n / phi)` is below
//!    `start + (1 - start) * progress`, ends the ramp on the first acquire
//!    at its end, and re-opens a trip during it with the HALF_OPEN streak
//!    plus one.
//!
//! 7. Live reconfiguration (invariant 18): a step may put a new random
//!    config in force (same window kind, same time-bucket width, same
//!    metrics switch and clock origin, so the clock grid stays valid).
//!    The model keeps its state, generation, deadlines, counters,
//!    consecutive count, EWMA and streak, and reads every threshold from
//!    the new config from then on; its window keeps the most recent
//!    `min(held, new size)` outcomes of a count window, the entries of a
//!    time window within both spans (not ahead of now), nothing when the
//!    old or new config reads no window or the state does not admit every
//!    call, and everything when the shape is unchanged.
//!
//! A separate property checks the time window alone, through the public
//! API, with a clock that also moves backwards (the core's unit tests cover
//! only a forward clock).
//!
//! Time: the model clock stays on a grid of `width / 4` offset by
//! `width / 8` for a time window, so `now` is never within a nanosecond of a
//! bucket boundary (the window's index is floor division except there); the
//! grid is a whole number of microseconds, as are all configured durations,
//! so deadlines (stored at microsecond resolution, rounded up) are exact.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use circuit_core::config::MAX_DURATION;
use circuit_core::{
    Breaker, Clock, Config, Listener, ManualClock, Outcome, Override, Permit, RampPolicy, Reason,
    Recorded, RejectReason, Rejected, State, Transition,
};
use common::{EventLog, MS};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// ----- configuration ---------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum WindowSpec {
    Count(u32),
    /// Bucket width (nanoseconds) and bucket count.
    Time(u64, u32),
}

/// A random valid configuration, in plain numbers the model reads.
#[derive(Debug, Clone)]
struct Spec {
    consecutive: Option<u32>,
    failure_rate: Option<f64>,
    /// Threshold and slow duration in nanoseconds.
    slow: Option<(f64, u64)>,
    /// Alpha and threshold.
    ewma: Option<(f64, f64)>,
    minimum_calls: u32,
    window: WindowSpec,
    open: u64,
    max_open: u64,
    multiplier: u32,
    probes: u32,
    /// As given to the builder (0 = as many as probes).
    successes: u32,
    lease: u64,
    metrics: bool,
    /// Where the clock starts, before the grid offset: anywhere in `u64`
    /// (a manual clock at wall-clock nanoseconds, or near the end of time);
    /// a whole number of buckets for a time window, so the grid stays off
    /// bucket boundaries.
    origin: u64,
    /// Ramp-up: start in percent, duration in nanoseconds, steps.
    ramp: Option<(u32, u64, u32)>,
}

impl Spec {
    fn config(&self) -> Config {
        let mut b = Config::builder()
            .consecutive_failures(self.consecutive)
            .failure_rate(self.failure_rate)
            .slow_call(self.slow.map(|(t, d)| (t, Duration::from_nanos(d))))
            .ewma(self.ewma)
            .minimum_calls(self.minimum_calls)
            .open_duration(Duration::from_nanos(self.open))
            .max_open_duration(Duration::from_nanos(self.max_open))
            .backoff_multiplier(f64::from(self.multiplier))
            .jitter(0.0)
            .half_open_probes(self.probes)
            .half_open_successes(self.successes)
            .probe_lease(Duration::from_nanos(self.lease))
            .metrics(self.metrics)
            .ramp(self.ramp.map(|(start, duration, steps)| RampPolicy {
                start: f64::from(start) / 100.0,
                duration: Duration::from_nanos(duration),
                steps,
            }))
            .seed(1);
        b = match self.window {
            WindowSpec::Count(n) => b.count_window(n),
            WindowSpec::Time(w, n) => b.time_window(Duration::from_nanos(w * u64::from(n)), n),
        };
        b.build().expect("generated configs are valid")
    }

    fn uses_window(&self) -> bool {
        self.failure_rate.is_some() || self.slow.is_some()
    }

    fn successes_to_close(&self) -> u32 {
        if self.successes == 0 {
            self.probes
        } else {
            self.successes
        }
    }

    /// Clock grid step.
    fn tick(&self) -> u64 {
        match self.window {
            WindowSpec::Time(w, _) => w / 4,
            WindowSpec::Count(_) => MS / 4,
        }
    }

    /// First clock reading.
    fn start(&self) -> u64 {
        match self.window {
            WindowSpec::Time(w, _) => self.origin / w * w + w / 8,
            WindowSpec::Count(_) => self.origin + MS / 8,
        }
    }

    /// What the breaker's deadline stamps are relative to: its first clock
    /// reading less whole microseconds, at most 2^45 us (`Env::stamp_base`).
    fn stamp_base(&self) -> u64 {
        let start = self.start();
        start - start.min((1 << 45) * 1000) / 1000 * 1000
    }

    fn time_window(&self) -> bool {
        matches!(self.window, WindowSpec::Time(..))
    }
}

fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.5),
        Just(1.0),
        Just(0.25),
        Just(0.3),
        Just(0.6),
        (1u32..=100).prop_map(|p| f64::from(p) / 100.0),
    ]
}

fn alpha() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1.0),
        Just(0.5),
        Just(0.25),
        Just(0.125),
        Just(0.3),
        (1u32..=100).prop_map(|p| f64::from(p) / 100.0),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let policies = (
        prop::option::weighted(0.6, 1u32..=5),
        prop::option::weighted(0.5, rate()),
        prop::option::weighted(0.4, (rate(), 1u64..=10)),
        prop::option::weighted(0.35, (alpha(), rate())),
        1u32..=20,
    );
    let window = prop_oneof![
        (1u32..=20).prop_map(WindowSpec::Count),
        (1u64..=20, 1u32..=8).prop_map(|(w, n)| WindowSpec::Time(w * MS, n)),
    ];
    let timing = (
        1u64..=20,
        1u64..=8,
        prop_oneof![Just(1u32), Just(2), Just(3)],
        1u64..=20,
    );
    let probes = (1u32..=4, 0u32..=4, prop::bool::weighted(0.9));
    // Clock origins: zero, the edges of the old 48-bit microsecond stamp,
    // wall-clock nanoseconds, the end of time, and anywhere else.
    let origin = prop_oneof![
        3 => Just(0u64),
        1 => Just(1u64 << 40),
        1 => Just((1u64 << 48) * 1000),
        1 => Just((1u64 << 48) * 1000 - 3 * MS),
        1 => Just(1_764_990_000_123_456_789u64),
        1 => Just(u64::MAX - 1_000_000_000_000),
        1 => Just(u64::MAX - 20 * MS),
        2 => 0u64..u64::MAX - (1 << 48),
    ];
    let ramp = prop::option::weighted(0.4, (1u32..=99, 1u64..=40, 0u32..=5));
    (policies, window, timing, probes, origin, ramp).prop_map(
        |(
            (consecutive, failure_rate, slow, ewma, min_calls),
            window,
            (open, factor, multiplier, lease),
            (probes, successes, metrics),
            origin,
            ramp,
        )| {
            let mut spec = Spec {
                consecutive,
                failure_rate,
                slow: slow.map(|(t, d)| (t, d * MS)),
                ewma,
                minimum_calls: min_calls,
                window,
                open: open * MS,
                max_open: open * factor * MS,
                multiplier,
                probes,
                successes: successes % (probes + 1),
                lease: lease * MS,
                metrics,
                origin,
                ramp: ramp.map(|(start, duration, steps)| (start, duration * MS, steps)),
            };
            if let WindowSpec::Count(n) = spec.window {
                if spec.uses_window() {
                    spec.minimum_calls = spec.minimum_calls.min(n);
                }
            }
            spec
        },
    )
}

// ----- the reference model ----------------------------------------------------

/// Deadlines are kept relative to the stamp base, in whole microseconds
/// rounded up below 2^47 us past it, in whole milliseconds beyond; read
/// back they saturate at `u64::MAX`, which the clock can reach
/// (`state::Stamp`, invariant 4).
fn stamp(base: u64, t: u64) -> u64 {
    let offset = t.saturating_sub(base);
    let back = if offset.div_ceil(1000) < 1 << 47 {
        offset.div_ceil(1000) * 1000
    } else {
        offset.div_ceil(1_000_000).saturating_mul(1_000_000)
    };
    base.saturating_add(back)
}

fn state_index(s: State) -> usize {
    s.index()
}

fn is_closed_or_override(s: State) -> bool {
    !matches!(s, State::Open | State::HalfOpen)
}

#[derive(Debug)]
struct Model {
    spec: Spec,
    now: u64,
    state: State,
    generation: u32,
    /// Re-opens from HALF_OPEN since the last CLOSED (B4), capped at 255.
    streak: u32,
    open_deadline: u64,
    inflight: u32,
    successes: u32,
    lease_deadline: u64,
    /// `None`: the override never expires.
    override_deadline: Option<u64>,
    // statistics of the current CLOSED stretch
    consecutive: u64,
    count_window: VecDeque<(bool, bool)>,
    time_window: Vec<(u64, bool, bool)>,
    ewma_calls: u64,
    ewma_rate: f64,
    /// Set when an EWMA comparison was too close to call in floating point.
    ambiguous: bool,
    // metrics
    outcomes: [u64; 4],
    slow: u64,
    stale: u64,
    rejected: [u64; 4],
    transitions: [[u64; 7]; 7],
    nanos_in_state: [u64; 7],
    entered_at: u64,
    events: Vec<Transition>,
    /// Flags of the probes issued in this generation, and of those that
    /// have reported.
    issued_probes: Vec<u32>,
    reported_probes: Vec<u32>,
    /// The end of the ramp-up under way (a stamped deadline), if one runs.
    ramp_end: Option<u64>,
    /// Tickets drawn in the current ramp.
    ramp_tickets: u64,
}

impl Model {
    fn new(spec: Spec) -> Model {
        let now = spec.start();
        Model {
            spec,
            now,
            state: State::Closed,
            generation: 0,
            streak: 0,
            open_deadline: 0,
            inflight: 0,
            successes: 0,
            lease_deadline: 0,
            override_deadline: None,
            consecutive: 0,
            count_window: VecDeque::new(),
            time_window: Vec::new(),
            ewma_calls: 0,
            ewma_rate: 0.0,
            ambiguous: false,
            outcomes: [0; 4],
            slow: 0,
            stale: 0,
            rejected: [0; 4],
            transitions: [[0; 7]; 7],
            nanos_in_state: [0; 7],
            entered_at: now,
            events: Vec::new(),
            issued_probes: Vec::new(),
            reported_probes: Vec::new(),
            ramp_end: None,
            ramp_tickets: 0,
        }
    }

    /// The ramp's admitted fraction in Q0.32 now, `None` when no ramp runs
    /// or it is over.
    fn ramp_q32(&self) -> Option<u64> {
        let end = self.ramp_end?;
        let (start, total, steps) = self.spec.ramp?;
        let elapsed = total.saturating_sub(end.saturating_sub(self.now));
        if elapsed >= total {
            return None;
        }
        let progress = if steps == 0 {
            elapsed as f64 / total as f64
        } else {
            (u128::from(elapsed) * u128::from(steps) / u128::from(total)) as f64 / f64::from(steps)
        };
        let start = f64::from(start) / 100.0;
        let f = start + (1.0 - start) * progress;
        let q = ((f * (1u64 << 32) as f64) as u64).clamp(1, 1 << 32);
        (q < 1 << 32).then_some(q)
    }

    // --- transitions

    /// Every transition bumps the generation (B6); leaving or entering CLOSED
    /// or an override starts the statistics afresh (B3, invariant 6).
    fn transition(&mut self, to: State, reason: Reason, open_for: u64) {
        let from = self.state;
        self.state = to;
        self.generation = self.generation.wrapping_add(1);
        self.issued_probes.clear();
        self.reported_probes.clear();
        self.ramp_end = None;
        if is_closed_or_override(from) || is_closed_or_override(to) {
            self.consecutive = 0;
            self.count_window.clear();
            self.time_window.clear();
            self.ewma_calls = 0;
            self.ewma_rate = 0.0;
        }
        if self.spec.metrics {
            self.transitions[state_index(from)][state_index(to)] += 1;
            let spent = self.now.saturating_sub(self.entered_at);
            let total = &mut self.nanos_in_state[state_index(from)];
            *total = total.saturating_add(spent);
            self.entered_at = self.now;
        }
        self.events.push(Transition {
            from,
            to,
            generation: self.generation,
            reason,
            at: self.now,
            open_for,
        });
    }

    /// B4: base x multiplier^streak, capped; or the dependency's
    /// `Retry-After`, clamped to the cap. No jitter in these configs.
    fn open_for(&self, streak: u32, retry_after: Option<u64>) -> u64 {
        let max = self.spec.max_open;
        if let Some(r) = retry_after {
            return r.min(max);
        }
        let mut d = u128::from(self.spec.open);
        for _ in 0..streak {
            d *= u128::from(self.spec.multiplier);
            if d >= u128::from(max) {
                break;
            }
        }
        d.min(u128::from(max)) as u64
    }

    fn enter_open(&mut self, streak: u32, reason: Reason, retry_after: Option<u64>) {
        let open_for = self.open_for(streak, retry_after);
        self.streak = streak.min(255);
        self.inflight = 0;
        self.successes = 0;
        self.open_deadline = stamp(self.spec.stamp_base(), self.now.saturating_add(open_for));
        self.transition(State::Open, reason, open_for);
    }

    fn enter_half_open(&mut self, inflight: u32, successes: u32, reason: Reason) {
        self.inflight = inflight;
        self.successes = successes;
        self.lease_deadline = stamp(
            self.spec.stamp_base(),
            self.now.saturating_add(self.spec.lease),
        );
        self.transition(State::HalfOpen, reason, 0);
    }

    fn enter_closed(&mut self, reason: Reason) {
        self.streak = 0;
        self.inflight = 0;
        self.successes = 0;
        self.override_deadline = None;
        self.transition(State::Closed, reason, 0);
    }

    fn enter_override(&mut self, to: State, expiry: Option<u64>) {
        self.streak = 0;
        self.inflight = 0;
        self.successes = 0;
        self.override_deadline =
            expiry.map(|d| stamp(self.spec.stamp_base(), self.now.saturating_add(d)));
        self.transition(to, Reason::OverrideSet, 0);
    }

    /// An override whose expiry has passed returns to a fresh CLOSED when
    /// the state is next read or a call arrives (B1, invariant 5).
    fn expire(&mut self) {
        if let Some(d) = self.override_deadline {
            if is_override(self.state) && self.now >= d {
                self.enter_closed(Reason::OverrideExpired);
            }
        }
    }

    // --- the API

    fn state(&mut self) -> State {
        self.expire();
        self.state
    }

    fn reject(&mut self, reason: RejectReason, retry_after: Option<u64>) -> Rejected {
        if self.spec.metrics {
            self.rejected[reason as usize] += 1;
        }
        Rejected {
            reason,
            retry_after: retry_after.map(Duration::from_nanos),
        }
    }

    fn acquire(&mut self) -> Result<(u32, bool), Rejected> {
        self.expire();
        match self.state {
            State::Closed if self.ramp_end.is_some() => match self.ramp_q32() {
                None => {
                    // The ramp is over: full traffic, same generation.
                    self.ramp_end = None;
                    self.streak = 0;
                    Ok((self.generation, false))
                }
                Some(f) => {
                    let n = self.ramp_tickets;
                    self.ramp_tickets += 1;
                    if n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32 < f {
                        Ok((self.generation, false))
                    } else {
                        Err(self.reject(RejectReason::RampLimited, None))
                    }
                }
            },
            State::Closed | State::ForcedClosed | State::Disabled | State::MetricsOnly => {
                Ok((self.generation, false))
            }
            State::ForcedOpen => {
                let left = self.override_deadline.map(|d| d.saturating_sub(self.now));
                Err(self.reject(RejectReason::ForcedOpen, left))
            }
            State::Open => {
                if self.now < self.open_deadline {
                    let left = self.open_deadline - self.now;
                    Err(self.reject(RejectReason::Open, Some(left)))
                } else {
                    // B5: the first acquire after the deadline moves to
                    // HALF_OPEN and is the first probe.
                    self.enter_half_open(1, 0, Reason::OpenDeadlinePassed);
                    Ok((self.generation, true))
                }
            }
            State::HalfOpen => {
                if self.inflight + self.successes < self.spec.probes {
                    self.inflight += 1;
                    let lease = stamp(
                        self.spec.stamp_base(),
                        self.now.saturating_add(self.spec.lease),
                    );
                    self.lease_deadline = self.lease_deadline.max(lease);
                    Ok((self.generation, true))
                } else if self.now >= self.lease_deadline {
                    // Every slot held past the youngest grant's lease: a new
                    // half-open generation, successes kept, this call the
                    // first probe of it.
                    let successes = self.successes;
                    self.enter_half_open(1, successes, Reason::ProbeLeaseExpired);
                    Ok((self.generation, true))
                } else {
                    let left = self.lease_deadline - self.now;
                    Err(self.reject(RejectReason::HalfOpenFull, Some(left)))
                }
            }
        }
    }

    fn is_slow(&self, outcome: Outcome, nanos: u64) -> bool {
        outcome != Outcome::Ignored && self.spec.slow.is_some_and(|(_, d)| nanos >= d)
    }

    fn count(&mut self, outcome: Outcome, nanos: u64) {
        if self.spec.metrics {
            self.outcomes[outcome as usize] += 1;
            if self.is_slow(outcome, nanos) {
                self.slow += 1;
            }
        }
    }

    fn stale(&mut self) -> Recorded {
        if self.spec.metrics {
            self.stale += 1;
        }
        Recorded::Stale
    }

    fn record(
        &mut self,
        permit: Permit,
        outcome: Outcome,
        nanos: u64,
        retry_after: Option<u64>,
    ) -> Recorded {
        if permit.generation() != self.generation {
            return self.stale();
        }
        match self.state {
            State::Closed if !permit.is_probe() => self.record_closed(outcome, nanos, retry_after),
            State::MetricsOnly => self.record_closed(outcome, nanos, retry_after),
            State::ForcedClosed => {
                self.count(outcome, nanos);
                Recorded::Counted
            }
            State::Disabled => Recorded::NotRecorded,
            State::HalfOpen if permit.is_probe() => {
                // B5, invariant 11: a probe counts once, and only a probe
                // this breaker issued in this generation counts at all (an
                // untracked ticket, past the 40th of a generation, is not
                // checked for repeats).
                let flags = permit.into_raw().1;
                let untracked = (flags >> 8) & 0xFF == 0xFF;
                if !self.issued_probes.contains(&flags)
                    || (!untracked && self.reported_probes.contains(&flags))
                {
                    return self.stale();
                }
                self.reported_probes.push(flags);
                self.record_probe(outcome, nanos, retry_after)
            }
            // No permit of this generation could have been issued.
            _ => self.stale(),
        }
    }

    fn window_counts(&self) -> (u64, u64, u64) {
        match self.spec.window {
            WindowSpec::Count(_) => {
                let w = &self.count_window;
                let f = w.iter().filter(|s| s.0).count() as u64;
                let s = w.iter().filter(|s| s.1).count() as u64;
                (w.len() as u64, f, s)
            }
            WindowSpec::Time(width, buckets) => {
                let cur = self.now / width;
                let live = self
                    .time_window
                    .iter()
                    .filter(|e| cur.abs_diff(e.0) < u64::from(buckets));
                let mut c = (0, 0, 0);
                for e in live {
                    c.0 += 1;
                    c.1 += u64::from(e.1);
                    c.2 += u64::from(e.2);
                }
                c
            }
        }
    }

    fn window_push(&mut self, failed: bool, slow: bool) {
        match self.spec.window {
            WindowSpec::Count(n) => {
                self.count_window.push_back((failed, slow));
                if self.count_window.len() > n as usize {
                    self.count_window.pop_front();
                }
            }
            WindowSpec::Time(width, buckets) => {
                // Bucket `i` lives in slot `i mod b`; writing it evicts the
                // bucket of another index held in that slot.
                let i = self.now / width;
                let b = u64::from(buckets);
                self.time_window.retain(|e| e.0 == i || e.0 % b != i % b);
                self.time_window.push((i, failed, slow));
            }
        }
    }

    fn record_closed(
        &mut self,
        outcome: Outcome,
        nanos: u64,
        retry_after: Option<u64>,
    ) -> Recorded {
        self.count(outcome, nanos);
        if outcome == Outcome::Ignored {
            return Recorded::Counted;
        }
        let failed = is_failure(outcome);
        let slow = self.is_slow(outcome, nanos);
        let mut trip = None;
        if let Some(n) = self.spec.consecutive {
            if failed {
                self.consecutive += 1;
                if self.consecutive >= u64::from(n) {
                    trip = Some(Reason::ConsecutiveFailures);
                }
            } else {
                self.consecutive = 0;
            }
        }
        if self.spec.uses_window() {
            self.window_push(failed, slow);
            // Only an outcome that can raise a rate evaluates the rates.
            let (calls, failures, slows) = self.window_counts();
            if (failed || slow) && trip.is_none() && calls >= u64::from(self.spec.minimum_calls) {
                let calls = calls as f64;
                if self
                    .spec
                    .failure_rate
                    .is_some_and(|r| failures as f64 / calls >= r)
                {
                    trip = Some(Reason::FailureRate);
                } else if self
                    .spec
                    .slow
                    .is_some_and(|(r, _)| slows as f64 / calls >= r)
                {
                    trip = Some(Reason::SlowCallRate);
                }
            }
        }
        if let Some((alpha, threshold)) = self.spec.ewma {
            let x = if failed { 1.0 } else { 0.0 };
            self.ewma_rate += alpha * (x - self.ewma_rate);
            self.ewma_calls += 1;
            if failed && trip.is_none() && self.ewma_calls >= u64::from(self.spec.minimum_calls) {
                // The breaker keeps the EWMA in fixed point and lets a rate
                // within 1e-6 below the threshold count as reaching it; a
                // rate that close is not compared.
                let r = self.ewma_rate;
                if r < threshold && r > threshold - 2e-6 {
                    self.ambiguous = true;
                }
                if r >= threshold {
                    trip = Some(Reason::EwmaFailureRate);
                }
            }
        }
        match trip {
            None => Recorded::Counted,
            Some(_) if self.state == State::MetricsOnly => {
                // A dry run: a fresh METRICS_ONLY generation, same expiry.
                self.streak = 0;
                self.transition(State::MetricsOnly, Reason::ShadowTrip, 0);
                Recorded::Transitioned(State::MetricsOnly)
            }
            Some(reason) => {
                // A trip during a ramp-up re-opens as a failed probe would.
                let streak = if self.ramp_q32().is_some() {
                    self.streak.saturating_add(1).min(255)
                } else {
                    0
                };
                self.enter_open(streak, reason, retry_after);
                Recorded::Transitioned(State::Open)
            }
        }
    }

    fn record_probe(&mut self, outcome: Outcome, nanos: u64, retry_after: Option<u64>) -> Recorded {
        self.count(outcome, nanos);
        let failed = is_failure(outcome) || self.is_slow(outcome, nanos);
        if outcome == Outcome::Ignored {
            self.inflight = self.inflight.saturating_sub(1);
            Recorded::Counted
        } else if failed {
            let streak = self.streak.saturating_add(1).min(255);
            self.enter_open(streak, Reason::ProbeFailed, retry_after);
            Recorded::Transitioned(State::Open)
        } else {
            self.inflight = self.inflight.saturating_sub(1);
            self.successes = (self.successes + 1).min(255);
            if self.successes >= self.spec.successes_to_close() {
                let streak = self.streak;
                self.enter_closed(Reason::ProbesSucceeded);
                if let Some((_, duration, _)) = self.spec.ramp {
                    // Ramp up, keeping the streak for a trip during it;
                    // each ramp numbers its tickets from 0.
                    self.streak = streak;
                    self.ramp_tickets = 0;
                    self.ramp_end = Some(stamp(
                        self.spec.stamp_base(),
                        self.now.saturating_add(duration),
                    ));
                }
                Recorded::Transitioned(State::Closed)
            } else {
                Recorded::Counted
            }
        }
    }

    fn force(&mut self, mode: Override, expiry: Option<u64>) -> State {
        let before = self.state;
        let to = match mode {
            Override::ForcedOpen => State::ForcedOpen,
            Override::ForcedClosed => State::ForcedClosed,
            Override::Disabled => State::Disabled,
            Override::MetricsOnly => State::MetricsOnly,
        };
        self.enter_override(to, expiry);
        before
    }

    fn clear_override(&mut self) -> bool {
        if is_override(self.state) {
            self.enter_closed(Reason::OverrideCleared);
            true
        } else {
            false
        }
    }

    fn reset(&mut self) {
        self.enter_closed(Reason::Reset);
    }

    /// Property 7: a new config, the state kept.
    fn reconfigure(&mut self, new: Spec) {
        let old = std::mem::replace(&mut self.spec, new);
        let new = &self.spec;
        let same_shape = match (old.window, new.window) {
            (WindowSpec::Count(a), WindowSpec::Count(b)) => a == b,
            (WindowSpec::Time(w1, b1), WindowSpec::Time(w2, b2)) => w1 == w2 && b1 == b2,
            _ => false,
        };
        if !new.uses_window() || !old.uses_window() || (!same_shape && !self.state.admits_all()) {
            self.count_window.clear();
            self.time_window.clear();
            return;
        }
        if same_shape {
            return;
        }
        match (old.window, new.window) {
            (WindowSpec::Count(_), WindowSpec::Count(n)) => {
                while self.count_window.len() > n as usize {
                    self.count_window.pop_front();
                }
            }
            (WindowSpec::Time(width, b_old), WindowSpec::Time(_, b_new)) => {
                let cur = self.now / width;
                let span = u64::from(b_old.min(b_new));
                self.time_window.retain(|e| e.0 <= cur && cur - e.0 < span);
            }
            _ => unreachable!("the harness keeps the window kind"),
        }
    }
}

/// B2: a timeout counts as a failure.
fn is_failure(o: Outcome) -> bool {
    matches!(o, Outcome::Failure | Outcome::Timeout)
}

fn is_override(s: State) -> bool {
    matches!(
        s,
        State::ForcedOpen | State::ForcedClosed | State::Disabled | State::MetricsOnly
    )
}

// ----- operations -------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Dur {
    Zero,
    Micros(u64),
    /// The slow threshold (5 ms without a slow policy) plus -1, 0 or +1 ns.
    SlowEdge(i8),
    /// `Duration::MAX` (saturates to `u64::MAX` nanoseconds).
    Huge,
}

impl Dur {
    fn get(self, spec: &Spec) -> Duration {
        match self {
            Dur::Zero => Duration::ZERO,
            Dur::Micros(u) => Duration::from_micros(u),
            Dur::SlowEdge(o) => {
                let t = spec.slow.map_or(5 * MS, |s| s.1);
                Duration::from_nanos(t.saturating_add_signed(i64::from(o)))
            }
            Dur::Huge => Duration::MAX,
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Open,
    Lease,
    Override,
    Ramp,
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    /// Record an outstanding permit (picked by index), optionally with a
    /// `Retry-After` in milliseconds (`u64::MAX`: `Duration::MAX`).
    Record {
        pick: usize,
        outcome: Outcome,
        dur: Dur,
        retry_after: Option<u64>,
    },
    /// Record any permit ever issued: stale ones, and ones already recorded.
    RecordIssued {
        pick: usize,
        outcome: Outcome,
        dur: Dur,
    },
    /// A permit rebuilt from raw parts naming a nearby generation.
    RecordForged {
        gen_delta: i8,
        probe: bool,
        outcome: Outcome,
    },
    /// Clock forward by this many grid ticks.
    Advance(u64),
    /// Clock to the grid point `offset` ticks from a model deadline.
    AdvanceTo(Target, i8),
    /// `advance(Duration::MAX)`: the clock saturates (count windows only).
    AdvanceHuge,
    /// Clock set back to an earlier grid point.
    SetBack(u64),
    Force(Override, Option<u64>),
    ClearOverride,
    Reset,
    /// A new config (patched by the harness to keep the window kind, the
    /// bucket width, the metrics switch and the clock origin).
    Reconfigure(Box<Spec>),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Success),
        3 => Just(Outcome::Failure),
        1 => Just(Outcome::Timeout),
        1 => Just(Outcome::Ignored),
    ]
}

fn dur() -> impl Strategy<Value = Dur> {
    prop_oneof![
        3 => Just(Dur::Zero),
        6 => (0u64..12_000).prop_map(Dur::Micros),
        2 => (-1i8..=1).prop_map(Dur::SlowEdge),
        1 => Just(Dur::Huge),
    ]
}

fn mode() -> impl Strategy<Value = Override> {
    prop_oneof![
        Just(Override::ForcedOpen),
        Just(Override::ForcedClosed),
        Just(Override::Disabled),
        Just(Override::MetricsOnly),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        25 => Just(Op::Acquire),
        25 => (any::<usize>(), outcome(), dur(), prop::option::weighted(0.15, prop_oneof![
            Just(0u64), 1u64..300, Just(u64::MAX)
        ]))
            .prop_map(|(pick, outcome, dur, retry_after)| Op::Record { pick, outcome, dur, retry_after }),
        4 => (any::<usize>(), outcome(), dur())
            .prop_map(|(pick, outcome, dur)| Op::RecordIssued { pick, outcome, dur }),
        2 => (-2i8..=1, any::<bool>(), outcome())
            .prop_map(|(gen_delta, probe, outcome)| Op::RecordForged { gen_delta, probe, outcome }),
        8 => (1u64..=4).prop_map(Op::Advance),
        3 => (5u64..=400).prop_map(Op::Advance),
        8 => (prop_oneof![Just(Target::Open), Just(Target::Lease), Just(Target::Override), Just(Target::Ramp)], -1i8..=2)
            .prop_map(|(t, o)| Op::AdvanceTo(t, o)),
        1 => Just(Op::AdvanceHuge),
        2 => any::<u64>().prop_map(Op::SetBack),
        2 => (mode(), prop::option::weighted(0.6, prop_oneof![
            Just(0u64), 1u64..200, Just(u64::MAX)
        ]))
            .prop_map(|(m, e)| Op::Force(m, e)),
        1 => Just(Op::ClearOverride),
        1 => Just(Op::Reset),
        2 => spec().prop_map(|s| Op::Reconfigure(Box::new(s))),
    ]
}

/// A step: one operation, or now and then two with no comparison between
/// them (so a record can follow a clock move before anything reads the
/// state, which applies expired overrides).
fn steps() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(
        prop_oneof![
            6 => op().prop_map(|o| vec![o]),
            1 => prop::collection::vec(op(), 2),
        ],
        1..160,
    )
}

// ----- the harness ------------------------------------------------------------

struct Harness {
    spec: Spec,
    breaker: Breaker,
    clock: Arc<ManualClock>,
    log: Arc<EventLog>,
    model: Model,
    issued: Vec<Permit>,
    outstanding: Vec<Permit>,
}

impl Harness {
    fn new(spec: Spec) -> Harness {
        let clock = Arc::new(ManualClock::new(spec.start()));
        let log = Arc::new(EventLog::default());
        let listener: Arc<dyn Listener> = log.clone();
        let breaker = Breaker::build(
            spec.config(),
            clock.clone() as Arc<dyn Clock>,
            Some(listener),
        );
        Harness {
            model: Model::new(spec.clone()),
            spec,
            breaker,
            clock,
            log,
            issued: Vec::new(),
            outstanding: Vec::new(),
        }
    }

    fn set_clock(&mut self, t: u64) {
        self.clock.set(t);
        self.model.now = t;
    }

    fn advance(&mut self, by: u64) {
        self.clock.advance(Duration::from_nanos(by));
        self.model.now = self.model.now.saturating_add(by);
    }

    /// Grid point `offset` ticks from the first grid point at or after `t`.
    fn grid_at(&self, t: u64, offset: i8) -> u64 {
        let (start, tick) = (self.spec.start(), self.spec.tick());
        let k = t.saturating_sub(start).div_ceil(tick);
        let k = k.saturating_add_signed(i64::from(offset));
        start.saturating_add(k.saturating_mul(tick))
    }

    fn record(
        &mut self,
        permit: Permit,
        outcome: Outcome,
        dur: Duration,
        retry_after: Option<Duration>,
    ) -> Result<(), TestCaseError> {
        let got = match retry_after {
            Some(r) => self
                .breaker
                .record_with_retry_after(permit, outcome, dur, r),
            None => self.breaker.record(permit, outcome, dur),
        };
        let want = self
            .model
            .record(permit, outcome, nanos(dur), retry_after.map(nanos));
        // An EWMA within the breaker's fixed-point tolerance of its threshold
        // may go either way: discard the case before comparing.
        prop_assume!(!self.model.ambiguous);
        prop_assert_eq!(got, want, "record({:?}, {:?}, {:?})", permit, outcome, dur);
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let tick = self.spec.tick();
        match *op {
            Op::Acquire => {
                let got = self.breaker.acquire();
                let want = self.model.acquire();
                match (got, want) {
                    (Ok(p), Ok((generation, probe))) => {
                        prop_assert_eq!((p.generation(), p.is_probe()), (generation, probe));
                        if probe {
                            self.model.issued_probes.push(p.into_raw().1);
                        }
                        self.issued.push(p);
                        self.outstanding.push(p);
                    }
                    (got, want) => prop_assert_eq!(got.map(|_| ()), want.map(|_| ())),
                }
            }
            Op::Record {
                pick,
                outcome,
                dur,
                retry_after,
            } => {
                if self.outstanding.is_empty() {
                    return Ok(());
                }
                // Mostly one of the latest permits: older ones are mostly
                // stale, and `RecordIssued` covers those.
                let n = self.outstanding.len();
                let permit = self.outstanding.remove(n - 1 - pick % n.min(3));
                let retry_after = retry_after.map(|r| {
                    if r == u64::MAX {
                        Duration::MAX
                    } else {
                        Duration::from_millis(r)
                    }
                });
                self.record(permit, outcome, dur.get(&self.spec), retry_after)?;
            }
            Op::RecordIssued { pick, outcome, dur } => {
                if self.issued.is_empty() {
                    return Ok(());
                }
                let permit = self.issued[pick % self.issued.len()];
                if let Some(i) = self.outstanding.iter().position(|p| *p == permit) {
                    self.outstanding.remove(i);
                }
                self.record(permit, outcome, dur.get(&self.spec), None)?;
            }
            Op::RecordForged {
                gen_delta,
                probe,
                outcome,
            } => {
                let generation = self
                    .model
                    .generation
                    .wrapping_add_signed(i32::from(gen_delta));
                let permit = Permit::from_raw(generation, u32::from(probe) | 0xF0);
                self.record(permit, outcome, Duration::from_millis(1), None)?;
            }
            Op::Advance(ticks) => self.advance(ticks * tick),
            Op::AdvanceTo(target, offset) => {
                let deadline = match target {
                    Target::Open => self.model.open_deadline,
                    Target::Lease => self.model.lease_deadline,
                    Target::Override => self.model.override_deadline.unwrap_or(0),
                    Target::Ramp => self.model.ramp_end.unwrap_or(0),
                };
                let t = self.grid_at(deadline, offset);
                // Forward only; and keep a time window's clock within
                // 2^15 buckets of its start (bucket epochs are 16 bits).
                let limit = self.spec.start().saturating_add(16_000 * 4 * tick);
                if t > self.model.now && (t < limit || !self.spec.time_window()) {
                    self.set_clock(t);
                }
            }
            Op::AdvanceHuge => {
                if !self.spec.time_window() {
                    self.clock.advance(Duration::MAX);
                    self.model.now = u64::MAX;
                }
            }
            Op::SetBack(k) => {
                let (start, now) = (self.spec.start(), self.model.now);
                let ticks = now.saturating_sub(start) / tick;
                self.set_clock(start + (k % (ticks + 1)) * tick);
            }
            Op::Force(mode, expiry) => {
                let expiry = expiry.map(|t| {
                    if t == u64::MAX {
                        Duration::MAX
                    } else {
                        Duration::from_nanos(t * tick)
                    }
                });
                let got = self.breaker.force(mode, expiry);
                let want = self
                    .model
                    .force(mode, expiry.map(|d| nanos(d.min(MAX_DURATION))));
                prop_assert_eq!(got, want, "force({:?}, {:?})", mode, expiry);
            }
            Op::ClearOverride => {
                prop_assert_eq!(self.breaker.clear_override(), self.model.clear_override());
            }
            Op::Reset => {
                self.breaker.reset();
                self.model.reset();
            }
            Op::Reconfigure(ref new) => {
                let mut new = (**new).clone();
                let cur = &self.spec;
                new.origin = cur.origin;
                new.metrics = cur.metrics;
                new.window = match (cur.window, new.window) {
                    (WindowSpec::Count(_), WindowSpec::Count(n) | WindowSpec::Time(_, n)) => {
                        WindowSpec::Count(n)
                    }
                    (WindowSpec::Time(w, _), WindowSpec::Time(_, n) | WindowSpec::Count(n)) => {
                        WindowSpec::Time(w, (n - 1) % 8 + 1)
                    }
                };
                if let WindowSpec::Count(n) = new.window {
                    if new.uses_window() {
                        new.minimum_calls = new.minimum_calls.min(n);
                    }
                }
                self.breaker
                    .reconfigure(new.config())
                    .expect("no latency histogram on either side");
                self.model.reconfigure(new.clone());
                self.spec = new;
            }
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let b = &self.breaker;
        let m = &mut self.model;
        prop_assert_eq!(b.state(), m.state(), "state");
        prop_assert_eq!(b.generation(), m.generation, "generation");
        let ramp = m.ramp_q32().map(|f| f as f64 / (1u64 << 32) as f64);
        prop_assert_eq!(b.ramp_fraction(), ramp, "ramp fraction");
        let events = self.log.take();
        let want = std::mem::take(&mut m.events);
        prop_assert_eq!(events, want, "transitions");

        let got = b.metrics();
        prop_assert_eq!(got.outcomes, m.outcomes, "outcome counters");
        prop_assert_eq!(got.slow, m.slow, "slow counter");
        prop_assert_eq!(got.stale, m.stale, "stale counter");
        prop_assert_eq!(got.rejected, m.rejected, "rejections");
        prop_assert_eq!(got.transitions, m.transitions, "transitions from x to");
        let to: [u64; 7] = std::array::from_fn(|j| m.transitions.iter().map(|r| r[j]).sum());
        prop_assert_eq!(got.transitions_to, to, "transitions_to");
        prop_assert_eq!(got.state, Some(m.state), "snapshot state");
        if self.spec.metrics {
            let mut nanos_in_state = m.nanos_in_state;
            let current = &mut nanos_in_state[state_index(m.state)];
            *current = current.saturating_add(m.now.saturating_sub(m.entered_at));
            prop_assert_eq!(got.nanos_in_state, nanos_in_state, "nanos_in_state");
        }
        if self.spec.uses_window() {
            let (calls, failures, slow) = m.window_counts();
            let ratio = |p: u64| {
                if calls == 0 {
                    0.0
                } else {
                    p as f64 / calls as f64
                }
            };
            prop_assert_eq!(got.window_calls, calls, "window calls");
            prop_assert_eq!(got.failure_rate, ratio(failures), "failure rate");
            prop_assert_eq!(got.slow_call_rate, ratio(slow), "slow-call rate");
        } else if self.spec.ewma.is_some() {
            prop_assert_eq!(got.window_calls, m.ewma_calls, "EWMA calls");
            prop_assert!(
                (got.failure_rate - m.ewma_rate).abs() < 1e-6,
                "EWMA rate {} vs model {}",
                got.failure_rate,
                m.ewma_rate
            );
        }
        Ok(())
    }
}

fn run(spec: Spec, steps: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    let mut h = Harness::new(spec);
    for batch in &steps {
        for op in batch {
            h.apply(op)?;
        }
        // An EWMA rate within float noise of its threshold cannot be
        // compared exactly; such cases are discarded.
        prop_assume!(!h.model.ambiguous);
        h.check()?;
    }
    Ok(())
}

/// `PROPTEST_CASES` if set; otherwise enough to run in a few seconds.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 512 } else { 8192 })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Properties 1-5 of the module docs.
    #[test]
    fn breaker_matches_the_sequential_model(spec in spec(), steps in steps()) {
        run(spec, steps)?;
    }

    /// The time window through the public API: with trips out of reach
    /// (minimum calls above anything the test records), `metrics()` reports
    /// the calls, failure rate and slow-call rate of the samples in the
    /// buckets within `b` indexes of now, the clock moving forwards and
    /// backwards. A write evicts the older bucket sharing its slot.
    #[test]
    fn time_window_counts_match_live_buckets(
        width_ms in 1u64..=30,
        buckets in 1u32..=12,
        steps in prop::collection::vec((any::<bool>(), any::<bool>(), -3i64..=12), 1..300),
    ) {
        let width = width_ms * MS;
        let config = Config::builder()
            .consecutive_failures(None)
            .failure_rate(Some(0.5))
            .slow_call(Some((0.5, Duration::from_millis(2))))
            .minimum_calls(u32::MAX)
            .time_window(Duration::from_nanos(width * u64::from(buckets)), buckets)
            .build()
            .unwrap();
        let start = 64 * width + width / 4;
        let clock = Arc::new(ManualClock::new(start));
        let breaker = Breaker::with_clock(config, clock.clone());
        let b = u64::from(buckets);
        let mut log: Vec<(u64, bool, bool)> = Vec::new();
        let mut now = start;
        for (failed, slow, dt) in steps {
            // Moves by whole half-buckets from a quarter point, so `now`
            // stays on the quarter points, never on a bucket boundary.
            let next = now.saturating_add_signed(dt * width as i64 / 2);
            now = if next < width / 4 { width / 4 } else { next };
            clock.set(now);
            let p = breaker.acquire().unwrap();
            let outcome = if failed { Outcome::Failure } else { Outcome::Success };
            let d = if slow { Duration::from_millis(2) } else { Duration::from_millis(1) };
            prop_assert_eq!(breaker.record(p, outcome, d), Recorded::Counted);
            let i = now / width;
            log.retain(|e| e.0 == i || e.0 % b != i % b);
            log.push((i, failed, slow));
            let live: Vec<_> = log.iter().filter(|e| e.0.abs_diff(i) < b).collect();
            let calls = live.len() as u64;
            let f = live.iter().filter(|e| e.1).count() as u64;
            let s = live.iter().filter(|e| e.2).count() as u64;
            let m = breaker.metrics();
            prop_assert_eq!(m.window_calls, calls);
            prop_assert_eq!(m.failure_rate, f as f64 / calls as f64);
            prop_assert_eq!(m.slow_call_rate, s as f64 / calls as f64);
        }
    }
}
