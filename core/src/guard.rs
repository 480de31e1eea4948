//! The call protocol for code that can be cancelled (async Rust): a
//! [`Guard`] holds an admitted call's permit and records it exactly once;
//! dropped unrecorded (a future cancelled mid-call), it records
//! [`Outcome::Ignored`], so a half-open probe slot is freed at once instead
//! of when its lease expires. [`Breaker::call`] and [`Breaker::call_with`]
//! run a future under a guard. No runtime is needed: a guard is a value,
//! and the futures are plain `async` blocks.
//!
//! ```
//! use circuit_core::{Breaker, CallError, Config};
//!
//! # struct Noop;
//! # impl std::task::Wake for Noop { fn wake(self: std::sync::Arc<Self>) {} }
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
//! #     let mut cx = std::task::Context::from_waker(&waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! // Any executor runs these futures; this example polls by hand.
//! let breaker = Breaker::new(Config::default());
//! let answer = block_on(breaker.call(async { Ok::<_, std::io::Error>(42) }));
//! assert_eq!(answer.unwrap(), 42);
//! // A rejection never polls the future.
//! breaker.force(circuit_core::Override::ForcedOpen, None);
//! let refused = block_on(breaker.call(async { Ok::<_, std::io::Error>(42) }));
//! assert!(matches!(refused, Err(CallError::Rejected(_))));
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::breaker::Breaker;
use crate::call::{Outcome, Permit, Recorded, Rejected};
use crate::clock::Nanos;

/// An admitted call: its breaker, its permit, when it started. Record it
/// with [`Guard::record`] (or [`Guard::record_with_retry_after`]); a guard
/// dropped unrecorded records [`Outcome::Ignored`].
///
/// `B` is how the guard holds its breaker: `&Breaker`, or an
/// `Arc<Breaker>` (a registry's) for a guard that outlives the borrow, as
/// a `'static` future needs.
pub struct Guard<B: Borrow<Breaker>> {
    breaker: B,
    permit: Option<Permit>,
    /// Clock reading at admission; 0 when the breaker's config reads no
    /// durations (`Config::needs_durations`), so no clock is read.
    started: Nanos,
}

impl<B: Borrow<Breaker>> Guard<B> {
    /// Asks `breaker` to admit a call (`Breaker::acquire`).
    pub fn acquire(breaker: B) -> Result<Guard<B>, Rejected> {
        let b = breaker.borrow();
        let permit = b.acquire()?;
        let started = if b.config().needs_durations() {
            b.clock().now()
        } else {
            0
        };
        Ok(Guard {
            breaker,
            permit: Some(permit),
            started,
        })
    }

    /// The breaker this call belongs to.
    pub fn breaker(&self) -> &Breaker {
        self.breaker.borrow()
    }

    /// The permit (for hosts that record through another path).
    pub fn permit(&self) -> Option<Permit> {
        self.permit
    }

    /// Records how the call ended, with its duration measured on the
    /// breaker's clock since admission (zero when the config reads no
    /// durations).
    pub fn record(mut self, outcome: Outcome) -> Recorded {
        self.finish(outcome, None)
    }

    /// As [`Guard::record`], with the dependency's own open duration (a
    /// `Retry-After`, see [`crate::http::parse_retry_after`]) when there
    /// is one: `Breaker::record_with_retry_after`.
    pub fn record_with_retry_after(
        mut self,
        outcome: Outcome,
        retry_after: Option<Duration>,
    ) -> Recorded {
        self.finish(outcome, retry_after)
    }

    fn finish(&mut self, outcome: Outcome, retry_after: Option<Duration>) -> Recorded {
        let Some(permit) = self.permit.take() else {
            return Recorded::NotRecorded;
        };
        let b = self.breaker.borrow();
        let elapsed = if b.config().needs_durations() {
            Duration::from_nanos(b.clock().now().saturating_sub(self.started))
        } else {
            Duration::ZERO
        };
        match retry_after {
            Some(d) => b.record_with_retry_after(permit, outcome, elapsed, d),
            None => b.record(permit, outcome, elapsed),
        }
    }
}

impl<B: Borrow<Breaker>> Drop for Guard<B> {
    /// Unrecorded: the call was abandoned (cancelled); that says nothing of
    /// the dependency, and frees a half-open probe slot at once.
    fn drop(&mut self) {
        self.finish(Outcome::Ignored, None);
    }
}

impl<B: Borrow<Breaker>> fmt::Debug for Guard<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("breaker", &self.breaker().name())
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

/// How a guarded call failed: refused by the breaker (the future was never
/// polled), or the future's own error.
#[derive(Debug)]
pub enum CallError<E> {
    /// The breaker refused the call.
    Rejected(Rejected),
    /// The call ran and failed.
    Inner(E),
}

impl<E> CallError<E> {
    /// The rejection, when the breaker refused the call.
    pub fn rejected(&self) -> Option<&Rejected> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(_) => None,
        }
    }

    /// The future's error, when the call ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Inner(e) => Some(e),
            CallError::Rejected(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(e) => Some(e),
        }
    }
}

/// The default classification of a call's result: `Ok` is a success, `Err`
/// a failure.
pub fn outcome_of_result<T, E>(result: &Result<T, E>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

impl Breaker {
    /// A [`Guard`] for one call, borrowing this breaker.
    pub fn guard(&self) -> Result<Guard<&Breaker>, Rejected> {
        Guard::acquire(self)
    }

    /// Runs `fut` if the breaker admits it and records its result (`Ok`
    /// success, `Err` failure). A rejection returns at once without polling
    /// `fut`; dropping the returned future before it completes records
    /// `Ignored` (cancellation).
    pub async fn call<T, E, F>(&self, fut: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.call_with(outcome_of_result, fut).await
    }

    /// As [`Breaker::call`], with `classify` deciding the outcome of the
    /// result (for example an HTTP response's status through
    /// [`crate::http::outcome_for_status`]).
    pub async fn call_with<T, E, F, C>(&self, classify: C, fut: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
        C: FnOnce(&Result<T, E>) -> Outcome,
    {
        let guard = self.guard().map_err(CallError::Rejected)?;
        let result = fut.await;
        guard.record(classify(&result));
        result.map_err(CallError::Inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, ManualClock, State};
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    fn breaker(clock: &Arc<ManualClock>) -> Breaker {
        let config = Config::builder()
            .consecutive_failures(Some(1))
            .open_duration(Duration::from_secs(5))
            .jitter(0.0)
            .half_open_probes(1)
            .build()
            .unwrap();
        Breaker::with_clock(config, clock.clone())
    }

    fn half_open(b: &Breaker, clock: &ManualClock) {
        let p = b.acquire().unwrap();
        b.record(p, Outcome::Failure, Duration::ZERO);
        assert_eq!(b.state(), State::Open);
        clock.advance(Duration::from_secs(5));
    }

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    /// Polls once with a waker that does nothing.
    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(&Waker::from(Arc::new(Noop))))
    }

    fn ready<F: Future>(f: F) -> F::Output {
        match poll_once(pin!(f)) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the future was expected to be ready"),
        }
    }

    #[test]
    fn a_dropped_guard_records_ignored_and_frees_the_probe() {
        let clock = Arc::new(ManualClock::new(0));
        let b = breaker(&clock);
        half_open(&b, &clock);
        let g = b.guard().expect("the probe");
        assert!(g.permit().unwrap().is_probe());
        assert_eq!(b.state(), State::HalfOpen);
        assert!(b.acquire().is_err(), "the one probe slot is taken");
        drop(g);
        assert_eq!(b.metrics().outcome(Outcome::Ignored), 1);
        let again = b.guard().expect("the slot was freed at once");
        assert!(again.permit().unwrap().is_probe());
        assert_eq!(
            again.record(Outcome::Success),
            Recorded::Transitioned(State::Closed)
        );
        assert_eq!(
            b.metrics().outcome(Outcome::Ignored),
            1,
            "a recorded guard records once"
        );
    }

    #[test]
    fn a_cancelled_call_frees_the_probe() {
        let clock = Arc::new(ManualClock::new(0));
        let b = breaker(&clock);
        half_open(&b, &clock);
        {
            // A call whose future never completes: polled once, then dropped.
            let mut call = pin!(b.call(std::future::pending::<Result<(), ()>>()));
            assert!(poll_once(call.as_mut()).is_pending());
            assert!(b.acquire().is_err(), "the probe is in flight");
        }
        assert_eq!(b.metrics().outcome(Outcome::Ignored), 1);
        assert!(b.acquire().unwrap().is_probe(), "free again at once");
    }

    #[test]
    fn call_records_the_result_and_a_rejection_never_polls() {
        let clock = Arc::new(ManualClock::new(0));
        let b = breaker(&clock);
        assert_eq!(ready(b.call(async { Ok::<_, ()>(7) })).unwrap(), 7);
        assert_eq!(b.metrics().outcome(Outcome::Success), 1);
        let polled = std::cell::Cell::new(false);
        let err = ready(b.call(async {
            polled.set(true);
            Err::<(), _>("boom")
        }));
        assert!(matches!(err, Err(CallError::Inner("boom"))));
        assert_eq!(b.metrics().outcome(Outcome::Failure), 1);
        assert_eq!(b.state(), State::Open);
        polled.set(false);
        let refused = ready(b.call(async {
            polled.set(true);
            Ok::<_, ()>(1)
        }));
        let rejected = *refused.unwrap_err().rejected().unwrap();
        assert_eq!(rejected.retry_after, Some(Duration::from_secs(5)));
        assert!(!polled.get(), "a rejected call is never polled");
    }

    #[test]
    fn call_with_classifies_and_retry_after_sets_the_open_duration() {
        let clock = Arc::new(ManualClock::new(0));
        let b = breaker(&clock);
        let r = ready(b.call_with(|_| Outcome::Ignored, async { Err::<(), _>(404) }));
        assert!(matches!(r, Err(CallError::Inner(404))));
        assert_eq!(
            (b.metrics().outcome(Outcome::Ignored), b.state()),
            (1, State::Closed)
        );
        let g = Guard::acquire(Arc::new(breaker(&clock))).unwrap();
        let owned = Arc::clone(&g.breaker);
        g.record_with_retry_after(Outcome::Failure, Some(Duration::from_secs(7)));
        assert_eq!(
            owned.acquire().unwrap_err().retry_after,
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn durations_are_measured_when_the_config_reads_them() {
        let clock = Arc::new(ManualClock::new(1_000));
        let config = Config::builder()
            .slow_call(Some((0.5, Duration::from_millis(100))))
            .latency_histogram(Some(Duration::from_secs(60)))
            .build()
            .unwrap();
        let b = Breaker::with_clock(config, clock.clone());
        let g = b.guard().unwrap();
        clock.advance(Duration::from_millis(250));
        g.record(Outcome::Success);
        assert_eq!(b.metrics().slow, 1, "250 ms is slow against 100 ms");
        let h = b.latency().unwrap();
        assert_eq!(h.count(), 1);
        assert_eq!(h.sum_nanos() / 1_000_000, 250);
    }
}
