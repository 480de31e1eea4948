//! Retry helpers (B10): backoff delays with jitter, and a retry budget. The
//! host runs its own retry loop (no callback crosses the boundary per
//! call); these functions answer "may I retry, and after how long?".
//!
//! ```text
//! for (attempt = 1;; attempt++) {
//!     if (circuit_breaker_acquire(b, &permit, &retry_after) != OK)  // never retry a rejection
//!         return fallback();
//!     circuit_retry_budget_record_call(budget);
//!     ok = call(); circuit_breaker_record(b, permit, ok ? SUCCESS : FAILURE, elapsed);
//!     if (ok) return result;
//!     if (circuit_retry_next(policy, budget, attempt, prev, seed, &delay) != OK)
//!         return failure;                                            // exhausted
//!     sleep(delay); prev = delay;
//! }
//! ```

use std::time::Duration;

use circuit_core::clock::duration_to_nanos;
use circuit_core::retry::{
    AttemptOutcome, Backoff, Jitter, Next, RetryBudget, RetryPolicy, SplitMix64, Stop,
};
use circuit_core::Clock;
use std::sync::Arc;

use crate::boundary::{arg_enum, arg_out, arg_out_opt, arg_ref, arg_ref_opt, fail, ffi_boundary};
use crate::clock::{circuit_clock, time_source};
use crate::handle::{free_boxed, handle_of, new_boxed};
use crate::result::circuit_result;

/// How the nominal retry delay grows (`circuit_retry_policy_new`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum circuit_backoff {
    /// Retry at once.
    None = 0,
    /// `base_ns` before every retry.
    Constant = 1,
    /// `base_ns * multiplier^(n-1)` before retry `n`.
    Exponential = 2,
}

/// How the nominal delay `d` is randomised (`circuit_retry_policy_new`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum circuit_jitter {
    /// `d` exactly.
    None = 0,
    /// Uniform in `[0, d]`.
    Full = 1,
    /// Uniform in `[d/2, d]`.
    Equal = 2,
    /// Uniform in `[base, 3 x previous delay]` (AWS "decorrelated").
    Decorrelated = 3,
    /// Uniform in `[d (1 - x), d (1 + x)]`, `x` = `jitter_fraction` in [0, 1].
    PlusMinus = 4,
}

/// A retry policy: backoff, jitter, a cap and an attempt count. Immutable.
///
/// Thread safety: functions taking a `const circuit_retry_policy *` are safe
/// from any thread.
#[derive(Debug)]
pub struct circuit_retry_policy {
    _opaque: [u8; 0],
}

handle_of!(circuit_retry_policy => Boxed RetryPolicy);

/// A retry budget (retries allowed as a fraction of recent calls, plus a
/// minimum rate), so retries cannot multiply an outage. Lock-free.
///
/// Thread safety: functions taking a `const circuit_retry_budget *` are safe
/// to call concurrently from any thread; share one budget per dependency.
#[derive(Debug)]
pub struct circuit_retry_budget {
    _opaque: [u8; 0],
}

handle_of!(circuit_retry_budget => Boxed FfiRetryBudget);

/// The budget behind a `circuit_retry_budget` handle, with its time source.
#[derive(Debug)]
pub struct FfiRetryBudget {
    budget: RetryBudget,
    clock: Arc<dyn Clock>,
}

/// The value of `code` in a dense enum listed in code order.
fn decode<T: Copy>(all: &[T], code: u32) -> Option<T> {
    all.get(usize::try_from(code).ok()?).copied()
}

fn backoff_from(kind: u32) -> Option<circuit_backoff> {
    use circuit_backoff::*;
    decode(&[None, Constant, Exponential], kind)
}

fn jitter_from(kind: u32) -> Option<circuit_jitter> {
    use circuit_jitter::*;
    decode(&[None, Full, Equal, Decorrelated, PlusMinus], kind)
}

/// Creates a retry policy. `backoff` is a `circuit_backoff` code: NONE
/// ignores `base_ns` and `multiplier`; CONSTANT waits `base_ns`;
/// EXPONENTIAL waits `base_ns * multiplier^(n-1)` (`multiplier` >= 1).
/// `jitter` is a `circuit_jitter` code (`jitter_fraction` is read by
/// PLUS_MINUS only). Every delay is capped at `max_delay_ns` (1 ns to one
/// week); `max_attempts` counts the first attempt (1 to 1000; 1 = never
/// retry). The library's defaults, for reference: EXPONENTIAL from 100 ms
/// doubling, PLUS_MINUS 0.25, a 10 s cap, 3 attempts.
///
/// On success `*out_policy` receives the policy, owned by the caller
/// (`circuit_retry_policy_free`). Unknown codes are
/// `CIRCUIT_RESULT_INVALID_ARGUMENT`; refused values
/// `CIRCUIT_RESULT_INVALID_CONFIG`, naming the value.
///
/// # Safety
/// `out_policy` must be a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_retry_policy_new(
    backoff: u32,
    base_ns: u64,
    multiplier: f64,
    jitter: u32,
    jitter_fraction: f64,
    max_delay_ns: u64,
    max_attempts: u32,
    out_policy: *mut *mut circuit_retry_policy,
) -> circuit_result {
    ffi_boundary! {
        let backoff = arg_enum!(backoff_from, backoff);
        let jitter = arg_enum!(jitter_from, jitter);
        let out = arg_out!(out_policy);
        let base = Duration::from_nanos(base_ns);
        let backoff = match backoff {
            circuit_backoff::None => Backoff::None,
            circuit_backoff::Constant => Backoff::Constant(base),
            circuit_backoff::Exponential => Backoff::Exponential { base, multiplier },
        };
        let jitter = match jitter {
            circuit_jitter::None => Jitter::None,
            circuit_jitter::Full => Jitter::Full,
            circuit_jitter::Equal => Jitter::Equal,
            circuit_jitter::Decorrelated => Jitter::Decorrelated,
            circuit_jitter::PlusMinus => Jitter::PlusMinus(jitter_fraction),
        };
        let built = RetryPolicy::builder()
            .backoff(backoff)
            .jitter(jitter)
            .max_delay(Duration::from_nanos(max_delay_ns))
            .max_attempts(max_attempts)
            .build();
        match built {
            Ok(policy) => {
                out.write(new_boxed(policy));
                circuit_result::Ok
            }
            Err(e) => fail(circuit_result::InvalidConfig, e),
        }
    }
}

/// Frees a policy. `circuit_retry_policy_free(NULL)` does nothing.
///
/// # Safety
/// `policy` must be NULL or a policy from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn circuit_retry_policy_free(policy: *mut circuit_retry_policy) {
    ffi_boundary! {
        // SAFETY: by contract NULL or a pointer from `circuit_retry_policy_new`, freed
        // once.
        unsafe { free_boxed(policy) };
    }
}

/// The delay for retry `attempt` of the sequence `seed`: the jitter draw is
/// stateless (`SplitMix64::keyed`), so the same (seed, attempt) always
/// gives the same delay and the policy needs no lock.
fn delay(policy: &RetryPolicy, attempt: u32, prev_delay_ns: u64, seed: u64) -> Option<u64> {
    policy
        .delay(
            attempt,
            Duration::from_nanos(prev_delay_ns),
            &mut SplitMix64::keyed(seed, attempt),
        )
        .map(duration_to_nanos)
}

/// The core's retry decision (`RetryPolicy::decide_seeded`) for a host
/// that keeps `(attempt, prev, seed)` between attempts.
fn decide(
    policy: &RetryPolicy,
    budget: Option<&FfiRetryBudget>,
    attempt: u32,
    outcome: AttemptOutcome,
    prev_delay_ns: u64,
    seed: u64,
) -> Next {
    policy.decide_seeded(
        attempt,
        outcome,
        Duration::from_nanos(prev_delay_ns),
        seed,
        budget.map(|b| (&b.budget, &*b.clock)),
    )
}

/// The pause before the next attempt after `attempt` failed attempts (1
/// after the first): `CIRCUIT_RESULT_OK` with the delay in
/// `*out_delay_ns`, or `CIRCUIT_RESULT_RETRY_EXHAUSTED` once `attempt`
/// reaches the policy's `max_attempts` (an answer: the last error is
/// untouched). `prev_delay_ns` is the previous pause (0 before the first
/// retry; only DECORRELATED jitter reads it). `seed` picks the jitter
/// draws: use one seed per call sequence, for example from
/// `circuit_random_seed()`, so that clients do not retry in step.
///
/// # Safety
/// `policy` must be a live policy, `out_delay_ns` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_retry_policy_delay(
    policy: *const circuit_retry_policy,
    attempt: u32,
    prev_delay_ns: u64,
    seed: u64,
    out_delay_ns: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let p = arg_ref!(policy);
        let out = arg_out!(out_delay_ns);
        match delay(p, attempt, prev_delay_ns, seed) {
            Some(ns) => {
                out.write(ns);
                circuit_result::Ok
            }
            None => circuit_result::RetryExhausted,
        }
    }
}

/// 64 random bits, different in every process and on every call (not for
/// cryptography): a jitter seed for one call sequence.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn circuit_random_seed() -> u64 {
    ffi_boundary! { SplitMix64::from_entropy().next_u64() }
}

/// Creates a retry budget on `clock` (NULL: the monotonic clock): a retry
/// is granted while the retries of the last `window_ns` (divided into
/// `buckets` buckets, 1 to 64, each at least 1 ms) stay within
/// `ratio` (0 to 100) x the calls recorded in it plus
/// `min_retries_per_sec` (0 to 1,000,000) x the window in seconds. The
/// library's defaults, for reference: 0.2, 10 per second, 10 s in 10
/// buckets. On success `*out_budget` receives the budget, owned by the
/// caller (`circuit_retry_budget_free`); `CIRCUIT_RESULT_INVALID_CONFIG`
/// names the first value at fault.
///
/// # Safety
/// `clock` must be NULL or a live clock; `out_budget` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_retry_budget_new(
    ratio: f64,
    min_retries_per_sec: f64,
    window_ns: u64,
    buckets: u32,
    clock: *const circuit_clock,
    out_budget: *mut *mut circuit_retry_budget,
) -> circuit_result {
    ffi_boundary! {
        let out = arg_out!(out_budget);
        let clock = time_source(arg_ref_opt!(clock));
        let built = RetryBudget::builder()
            .ratio(ratio)
            .min_retries_per_sec(min_retries_per_sec)
            .window(Duration::from_nanos(window_ns))
            .buckets(buckets)
            .build();
        match built {
            Ok(budget) => {
                out.write(new_boxed(FfiRetryBudget { budget, clock }));
                circuit_result::Ok
            }
            Err(e) => fail(circuit_result::InvalidConfig, e),
        }
    }
}

/// Frees a budget. `circuit_retry_budget_free(NULL)` does nothing.
///
/// # Safety
/// `budget` must be NULL or a budget from this library not yet freed.
///
/// Thread safety: no other thread may be using this budget.
#[no_mangle]
pub unsafe extern "C" fn circuit_retry_budget_free(budget: *mut circuit_retry_budget) {
    ffi_boundary! {
        // SAFETY: by contract NULL or a pointer from `circuit_retry_budget_new`, freed
        // once.
        unsafe { free_boxed(budget) };
    }
}

/// Deposits one call (every first attempt, retried or not). Lock-free.
///
/// # Safety
/// `budget` must be a live budget.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_retry_budget_record_call(
    budget: *const circuit_retry_budget,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(budget);
        b.budget.record_call(b.clock.now());
        circuit_result::Ok
    }
}

/// Withdraws one retry: `CIRCUIT_RESULT_OK` if the budget grants it,
/// `CIRCUIT_RESULT_BUDGET_EXHAUSTED` (an answer, not an error) if not.
/// Lock-free.
///
/// # Safety
/// `budget` must be a live budget.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_retry_budget_try_retry(
    budget: *const circuit_retry_budget,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(budget);
        if b.budget.try_retry(b.clock.now()) {
            circuit_result::Ok
        } else {
            circuit_result::BudgetExhausted
        }
    }
}

/// Writes the whole retries the budget would grant now to
/// `*out_balance`, and the calls and retries in its window to `*out_calls`
/// and `*out_retries` (each output optional, may be NULL).
///
/// # Safety
/// `budget` must be a live budget; each output NULL or a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_retry_budget_balance(
    budget: *const circuit_retry_budget,
    out_balance: *mut u64,
    out_calls: *mut u64,
    out_retries: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(budget);
        let now = b.clock.now();
        let counts = b.budget.counts(now);
        if let Some(out) = arg_out_opt!(out_balance) {
            out.write(b.budget.balance(now));
        }
        if let Some(out) = arg_out_opt!(out_calls) {
            out.write(counts.calls);
        }
        if let Some(out) = arg_out_opt!(out_retries) {
            out.write(counts.retries);
        }
        circuit_result::Ok
    }
}

/// After `attempt` failed attempts, may the host retry, and after how
/// long? Checks the policy's attempts first (`CIRCUIT_RESULT_RETRY_EXHAUSTED`),
/// then withdraws a retry from `budget` when not NULL
/// (`CIRCUIT_RESULT_BUDGET_EXHAUSTED`), then writes the pause to
/// `*out_delay_ns` and returns `CIRCUIT_RESULT_OK`. See
/// `circuit_retry_policy_delay` for `prev_delay_ns` and `seed`. Never retry
/// an attempt the breaker rejected (`CIRCUIT_RESULT_REJECTED_*`).
///
/// # Safety
/// `policy` must be a live policy, `budget` NULL or a live budget,
/// `out_delay_ns` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_retry_next(
    policy: *const circuit_retry_policy,
    budget: *const circuit_retry_budget,
    attempt: u32,
    prev_delay_ns: u64,
    seed: u64,
    out_delay_ns: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let p = arg_ref!(policy);
        let out = arg_out!(out_delay_ns);
        let b = arg_ref_opt!(budget);
        match decide(p, b, attempt, AttemptOutcome::Retryable, prev_delay_ns, seed) {
            Next::Retry(d) => {
                out.write(duration_to_nanos(d));
                circuit_result::Ok
            }
            Next::Stop(Stop::BudgetExhausted) => circuit_result::BudgetExhausted,
            Next::Stop(_) => circuit_result::RetryExhausted,
        }
    }
}

/// What became of an attempt (`circuit_retry_decide`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum circuit_retry_outcome {
    /// It succeeded.
    Success = 0,
    /// It failed with an error the host classifies as transient.
    Retryable = 1,
    /// It failed with an error the host classifies as permanent.
    NotRetryable = 2,
    /// The breaker refused it (`CIRCUIT_RESULT_REJECTED_*`): never retried.
    Rejected = 3,
}

/// What follows an attempt (`circuit_retry_decide`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum circuit_retry_stop {
    /// Do not stop: retry after `*out_delay_ns`.
    Retry = 0,
    /// The attempt succeeded.
    Success = 1,
    /// The breaker refused the attempt.
    Rejected = 2,
    /// The error is not retryable.
    NotRetryable = 3,
    /// The policy's `max_attempts` attempts were made.
    AttemptsExhausted = 4,
    /// The retry budget refused the retry.
    BudgetExhausted = 5,
}

/// A `circuit_retry_outcome` code as the core's outcome.
fn retry_outcome_from(code: u32) -> Option<AttemptOutcome> {
    use AttemptOutcome::*;
    decode(&[Success, Retryable, NotRetryable, Rejected], code)
}

/// The retry decision after attempt number `attempt` (1 after the first)
/// ended with `outcome` (a `circuit_retry_outcome` code), made by the
/// library so that every host decides alike: SUCCESS, REJECTED and
/// NOT_RETRYABLE stop at once, touching neither the budget nor the jitter;
/// RETRYABLE stops once `attempt` reaches the policy's `max_attempts`, else
/// withdraws a retry from `budget` when not NULL (which may refuse it),
/// else retries after the policy's delay (see `circuit_retry_policy_delay`
/// for `prev_delay_ns` and `seed`).
///
/// Writes a `circuit_retry_stop` code to `*out_stop`: RETRY (0) with the
/// pause in `*out_delay_ns`, or why no retry follows (`*out_delay_ns` is
/// then 0). Returns `CIRCUIT_RESULT_OK` for every answer; an unknown
/// `outcome` is `CIRCUIT_RESULT_INVALID_ARGUMENT` and changes nothing.
///
/// # Safety
/// `policy` must be a live policy, `budget` NULL or a live budget,
/// `out_delay_ns` and `out_stop` valid pointers.
///
/// Thread safety: safe from any thread.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn circuit_retry_decide(
    policy: *const circuit_retry_policy,
    budget: *const circuit_retry_budget,
    attempt: u32,
    outcome: u32,
    prev_delay_ns: u64,
    seed: u64,
    out_delay_ns: *mut u64,
    out_stop: *mut u32,
) -> circuit_result {
    ffi_boundary! {
        let p = arg_ref!(policy);
        let outcome = arg_enum!(retry_outcome_from, outcome);
        let out_delay = arg_out!(out_delay_ns);
        let out_stop = arg_out!(out_stop);
        let b = arg_ref_opt!(budget);
        let (delay, stop) = match decide(p, b, attempt, outcome, prev_delay_ns, seed) {
            Next::Retry(d) => (duration_to_nanos(d), circuit_retry_stop::Retry),
            Next::Stop(s) => (
                0,
                match s {
                    Stop::Success => circuit_retry_stop::Success,
                    Stop::Rejected => circuit_retry_stop::Rejected,
                    Stop::NotRetryable => circuit_retry_stop::NotRetryable,
                    Stop::AttemptsExhausted => circuit_retry_stop::AttemptsExhausted,
                    Stop::BudgetExhausted => circuit_retry_stop::BudgetExhausted,
                },
            ),
        };
        out_delay.write(delay);
        out_stop.write(stop as u32);
        circuit_result::Ok
    }
}
