//! Shared scaffolding for the loom models: a bounded model builder, a
//! breaker on a manual clock, and a listener that keeps every transition.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use circuit_core::{
    Breaker, Config, ConfigBuilder, ManualClock, Outcome, Permit, Recorded, State, Transition,
};

/// A loom model builder whose preemption bound comes from
/// `LOOM_MAX_PREEMPTIONS` (default 2, STYLE.md "Verification").
pub(crate) fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    model_with(loom::model::Builder::new(), f);
}

/// As [`model`], for a model whose executions take more steps than loom's
/// default bound on branches allows (a long single-threaded tail that
/// checks the outcome).
pub(crate) fn long_model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 20_000;
    model_with(builder, f);
}

fn model_with<F>(mut builder: loom::model::Builder, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    // How many interleavings were explored (shown with `--nocapture`), so a
    // model that has become trivially small is noticed.
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    builder.check(move || {
        counter.fetch_add(1, Relaxed);
        f()
    });
    eprintln!("{} interleavings", runs.load(Relaxed));
}

/// Records every transition, in the order the listener calls arrive. loom
/// runs every modelled thread on one OS thread and never switches inside
/// the listener (it touches no loom object), so a std `Mutex` is never
/// contended and adds no interleavings to the model.
#[derive(Debug, Default)]
pub(crate) struct Log(Mutex<Vec<Transition>>);

impl Log {
    /// Transitions ordered by generation (listener calls of consecutive
    /// winners may arrive out of order).
    pub(crate) fn sorted(&self) -> Vec<Transition> {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_by_key(|t| t.generation);
        v
    }
}

/// A breaker, its clock, and the transitions its listener has seen.
pub(crate) struct Rig {
    pub(crate) breaker: Breaker,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) log: Arc<Log>,
}

/// Defaults for every model: no jitter (the jitter generator is one more
/// atomic for loom to interleave), a fixed seed, no per-call metrics unless a
/// model asks for them, and the shortest durations the builder accepts.
pub(crate) fn config() -> ConfigBuilder {
    Config::builder()
        .jitter(0.0)
        .seed(1)
        .metrics(false)
        .open_duration(Duration::from_millis(1))
        .max_open_duration(Duration::from_millis(1))
        .probe_lease(Duration::from_millis(1))
}

pub(crate) fn rig(config: ConfigBuilder) -> Arc<Rig> {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let log = Arc::new(Log::default());
    let sink = log.clone();
    let listener = move |t: &Transition| sink.0.lock().unwrap().push(*t);
    let breaker = Breaker::build(
        config.build().expect("model config is valid"),
        clock.clone(),
        Some(Arc::new(listener)),
    );
    Arc::new(Rig {
        breaker,
        clock,
        log,
    })
}

impl Rig {
    /// Moves the clock past every deadline the tiny configs can set.
    pub(crate) fn pass_deadlines(&self) {
        self.clock.advance(Duration::from_millis(2));
    }

    /// Trips a fresh breaker whose only policy is `consecutive_failures`
    /// (generation 1, OPEN), single-threaded.
    pub(crate) fn trip(&self) {
        for _ in 0..10 {
            let p = self.breaker.acquire().expect("a closed breaker admits");
            match self
                .breaker
                .record(p, Outcome::Failure, Duration::from_millis(1))
            {
                Recorded::Counted => continue,
                r => {
                    assert_eq!(r, Recorded::Transitioned(State::Open));
                    return;
                }
            }
        }
        panic!("no trip after 10 failures");
    }

    /// Trips, waits out the open deadline and takes the first probe
    /// (generation 2, HALF_OPEN), single-threaded.
    pub(crate) fn first_probe(&self) -> Permit {
        self.trip();
        self.pass_deadlines();
        let p = self
            .breaker
            .acquire()
            .expect("the open deadline has passed");
        assert!(p.is_probe());
        assert_eq!(p.generation(), 2);
        p
    }

    /// Every episode ends: once every deadline a model can set has passed
    /// (open deadline, probe lease, override expiry), a call is admitted.
    /// A deadline lost to a racing writer (a stamp of the wrong generation
    /// reads as "not written yet") keeps the breaker refusing forever.
    pub(crate) fn assert_recovers(&self) {
        self.clock.advance(Duration::from_secs(60));
        let state = self.breaker.state();
        if let Err(r) = self.breaker.acquire() {
            panic!(
                "{state:?} still refuses after every deadline passed: {r:?}, {:?}",
                self.log.sorted()
            );
        }
    }

    /// The history is one chain: generations `from_gen + 1 ..= now`, each
    /// transition starting where the previous one ended, the last one ending
    /// in the current state. Hence also: listener calls equal the
    /// generation delta.
    pub(crate) fn assert_chain(&self, start: State, from_gen: u32) -> Vec<Transition> {
        let ts = self.log.sorted();
        let gen = self.breaker.generation();
        assert_eq!(
            ts.len() as u32,
            gen.wrapping_sub(from_gen),
            "listener calls must equal the generation delta: {ts:?}"
        );
        let mut state = start;
        for (i, t) in ts.iter().enumerate() {
            assert_eq!(t.generation, from_gen + 1 + i as u32, "gap in {ts:?}");
            assert_eq!(
                t.from, state,
                "transition {t:?} does not start at {state:?}"
            );
            state = t.to;
        }
        assert_eq!(self.breaker.state(), state, "final state vs history {ts:?}");
        ts
    }
}
