//! Breakers: create, share (reference counting), the call protocol
//! (`acquire` / `record`), state, metrics snapshot, overrides.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use circuit_core::clock::duration_to_nanos;
use circuit_core::{Breaker, Outcome, Override, Permit, RejectReason, State};
use circuit_core::{MetricsSnapshot, Recorded};

use crate::boundary::{
    arg_enum, arg_out, arg_out_opt, arg_ref, arg_ref_opt, arg_str, fail, ffi_boundary, fill_sized,
    static_cstr, struct_size, write_text, SizeTagged,
};
use crate::clock::{circuit_clock, time_source};
use crate::config::circuit_config;
use crate::handle::{free_shared, handle_of, new_shared, retain};
use crate::result::circuit_result;

/// Number of states; the length of the per-state arrays in
/// `circuit_metrics`.
pub const CIRCUIT_STATE_COUNT: usize = 7;

/// `circuit_permit.flags` bit: the permit is a half-open probe.
pub const CIRCUIT_PERMIT_PROBE: u32 = 1;

/// `retry_after` value meaning "no deadline known" (forced open without
/// expiry).
pub const CIRCUIT_RETRY_AFTER_UNKNOWN: u64 = u64::MAX;

/// Smallest `struct_size` any size-tagged struct (`circuit_metrics`,
/// `circuit_latency`, `circuit_event`) accepts; it must also be a multiple
/// of 8.
pub const CIRCUIT_STRUCT_MIN_SIZE: u32 = 8;

const _: () = assert!(CIRCUIT_STRUCT_MIN_SIZE == <circuit_metrics as SizeTagged>::MIN_SIZE);

/// What a breaker reports as its state (`circuit_breaker_state`): the
/// override if one is set, otherwise the automatic phase. Passed as a
/// `uint32_t`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum circuit_state {
    /// Calls pass; outcomes are counted.
    Closed = 0,
    /// Calls are refused until the open deadline.
    Open = 1,
    /// A bounded number of probe calls test recovery.
    HalfOpen = 2,
    /// Operator override: every call is refused.
    ForcedOpen = 3,
    /// Operator override: every call is admitted and counted; never trips.
    ForcedClosed = 4,
    /// Operator override: every call is admitted; nothing is recorded.
    Disabled = 5,
    /// Operator override: every call is admitted; trip conditions are
    /// evaluated and reported as events but never open the breaker.
    MetricsOnly = 6,
}

/// How an admitted call ended (`circuit_breaker_record`). Passed as a
/// `uint32_t`; other values are refused with
/// `CIRCUIT_RESULT_INVALID_ARGUMENT`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum circuit_outcome {
    /// The dependency answered well.
    Success = 0,
    /// The dependency failed.
    Failure = 1,
    /// The call timed out; counts as a failure.
    Timeout = 2,
    /// Neutral (cancellation, client error): frees a half-open probe slot
    /// and counts only in its own metric.
    Ignored = 3,
}

/// Operator overrides (`circuit_breaker_force`). Passed as a `uint32_t`;
/// other values are refused with `CIRCUIT_RESULT_INVALID_ARGUMENT`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum circuit_override {
    /// Refuse every call.
    ForcedOpen = 1,
    /// Admit every call, record metrics, never trip.
    ForcedClosed = 2,
    /// Admit every call, record nothing.
    Disabled = 3,
    /// Admit every call, evaluate trips as a dry run (events only).
    MetricsOnly = 4,
}

fn override_from_u32(v: u32) -> Option<Override> {
    match v {
        1 => Some(Override::ForcedOpen),
        2 => Some(Override::ForcedClosed),
        3 => Some(Override::Disabled),
        4 => Some(Override::MetricsOnly),
        _ => None,
    }
}

/// The `circuit_state` code of a core state.
pub(crate) fn state_code(s: State) -> u32 {
    s.index() as u32
}

/// Proof that a call was admitted, returned by `circuit_breaker_acquire`
/// and handed back, by value, to `circuit_breaker_record`. A plain value:
/// copy it freely, never free it. It names the breaker generation it was
/// issued under; recording it after the breaker moved on counts it as
/// stale.
///
/// Contract: record each permit exactly once, to the breaker that issued
/// it, with `flags` passed back unchanged. A half-open probe recorded a
/// second time, or recorded to another breaker, is detected: the record
/// returns `CIRCUIT_RESULT_STALE` and changes nothing. A CLOSED permit
/// carries nothing that tells a second record from a new call: recording
/// it twice counts two outcomes (two failures toward a trip), and a CLOSED
/// permit of another breaker counts there if the generations match. Both
/// are caller errors the library cannot detect.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct circuit_permit {
    /// Generation the permit was issued under.
    pub generation: u32,
    /// `CIRCUIT_PERMIT_PROBE` (bit 0) for a half-open probe; a probe also
    /// carries its ticket (bits 8-15) and its breaker's tag (bits 16-31).
    /// Opaque: pass it back unchanged. A permit from the closed fast path
    /// (`circuit_breaker_state_word`) has flags 0.
    pub flags: u32,
}

impl From<Permit> for circuit_permit {
    #[inline]
    fn from(p: Permit) -> Self {
        let (generation, flags) = p.into_raw();
        circuit_permit { generation, flags }
    }
}

/// A snapshot of a breaker's counters (`circuit_breaker_metrics`).
///
/// Forward compatible: set `struct_size` to `sizeof(circuit_metrics)` before
/// the call. The library fills only the first `struct_size` bytes (fields
/// are only ever appended), so a program built against an older header
/// keeps working with a newer library, and writes back into `struct_size`
/// how many bytes it filled (less than you passed when the library is older
/// than your header). Counters are read one by one while calls continue, so
/// they are individually exact but not a single atomic picture.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct circuit_metrics {
    /// In: size of the caller's struct in bytes. Out: bytes filled.
    pub struct_size: u32,
    /// Current `circuit_state` code.
    pub state: u32,
    /// Current generation.
    pub generation: u32,
    /// Zero.
    pub reserved: u32,
    /// Outcomes recorded as `CIRCUIT_OUTCOME_SUCCESS`.
    pub successes: u64,
    /// Outcomes recorded as `CIRCUIT_OUTCOME_FAILURE`.
    pub failures: u64,
    /// Outcomes recorded as `CIRCUIT_OUTCOME_TIMEOUT`.
    pub timeouts: u64,
    /// Outcomes recorded as `CIRCUIT_OUTCOME_IGNORED`.
    pub ignored: u64,
    /// Recorded calls at least as long as the slow-call threshold.
    pub slow: u64,
    /// Outcomes whose permit was of an older generation.
    pub stale: u64,
    /// Calls refused because the breaker was OPEN.
    pub rejected_open: u64,
    /// Calls refused because the breaker was forced open.
    pub rejected_forced_open: u64,
    /// Calls refused because every half-open probe slot was taken.
    pub rejected_half_open_full: u64,
    /// Transitions into each state, indexed by `circuit_state` code.
    pub transitions_to: [u64; CIRCUIT_STATE_COUNT],
    /// Nanoseconds spent in each state (the current one up to now),
    /// indexed by `circuit_state` code.
    pub nanos_in_state: [u64; CIRCUIT_STATE_COUNT],
    /// Failure rate of the window now (0 without a window policy).
    pub failure_rate: f64,
    /// Slow-call rate of the window now (0 without a window policy).
    pub slow_call_rate: f64,
    /// Calls in the window now.
    pub window_calls: u64,
    /// Calls refused because the breaker was ramping up after recovery.
    pub rejected_ramp_limited: u64,
    /// The fraction of calls a ramp-up admits now, in (0, 1); 0 when no
    /// ramp-up runs.
    pub ramp_fraction: f64,
}

impl SizeTagged for circuit_metrics {
    fn set_struct_size(&mut self, size: u32) {
        self.struct_size = size;
    }
}

impl circuit_metrics {
    fn from_core(m: &MetricsSnapshot, state: State, generation: u32, ramp_fraction: f64) -> Self {
        circuit_metrics {
            struct_size: std::mem::size_of::<circuit_metrics>() as u32,
            state: state_code(state),
            generation,
            reserved: 0,
            successes: m.outcome(Outcome::Success),
            failures: m.outcome(Outcome::Failure),
            timeouts: m.outcome(Outcome::Timeout),
            ignored: m.outcome(Outcome::Ignored),
            slow: m.slow,
            stale: m.stale,
            rejected_open: m.rejected[RejectReason::Open as usize],
            rejected_forced_open: m.rejected[RejectReason::ForcedOpen as usize],
            rejected_half_open_full: m.rejected[RejectReason::HalfOpenFull as usize],
            transitions_to: m.transitions_to,
            nanos_in_state: m.nanos_in_state,
            failure_rate: m.failure_rate,
            slow_call_rate: m.slow_call_rate,
            window_calls: m.window_calls,
            rejected_ramp_limited: m.rejected[RejectReason::RampLimited as usize],
            ramp_fraction,
        }
    }
}

/// A circuit breaker, shared by reference counting.
///
/// Thread safety: every function taking a `const circuit_breaker *` is safe
/// to call concurrently from any number of threads; the call path
/// (`acquire`, `record`) is lock-free and allocation-free.
///
/// Lifetime: `circuit_breaker_new` returns one reference;
/// `circuit_breaker_retain` adds one and `circuit_breaker_free` releases
/// one; the breaker is destroyed with its last reference. Using a handle
/// after releasing one's last reference to it, or a pointer this library did
/// not create, is outside the contract (undefined behaviour; nothing can
/// detect it reliably).
// On the Rust side a handle is an `Arc<Breaker>`: breakers from
// `circuit_breaker_new` and from a registry are the same kind of handle,
// and a call reaches the breaker with one pointer.
#[derive(Debug)]
pub struct circuit_breaker {
    _opaque: [u8; 0],
}

handle_of!(circuit_breaker => Shared Breaker);

/// Creates a breaker from `config`, reading time from `clock`, or from the
/// process's monotonic clock when `clock` is NULL. On success `*out_breaker`
/// receives a new breaker holding one reference, owned by the caller
/// (release it with `circuit_breaker_free`). The breaker copies the config
/// and holds its own reference to the clock's time source: both handles may
/// be freed right after.
///
/// # Safety
/// `config` must be a live config, `clock` NULL or a live clock,
/// `out_breaker` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_new(
    config: *const circuit_config,
    clock: *const circuit_clock,
    out_breaker: *mut *const circuit_breaker,
) -> circuit_result {
    ffi_boundary! {
        let config = arg_ref!(config);
        let out_breaker = arg_out!(out_breaker);
        let source = time_source(arg_ref_opt!(clock));
        let breaker = Breaker::with_clock(config.config.clone(), source);
        out_breaker.write(new_shared(breaker));
        circuit_result::Ok
    }
}

/// As `circuit_breaker_new`, with a name (UTF-8, `name_len` bytes, at most
/// `CIRCUIT_NAME_MAX_LEN`; may be empty) that its events carry.
///
/// # Safety
/// As `circuit_breaker_new`; `name` must point to `name_len` readable bytes.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_new_named(
    config: *const circuit_config,
    clock: *const circuit_clock,
    name: *const c_char,
    name_len: usize,
    out_breaker: *mut *const circuit_breaker,
) -> circuit_result {
    ffi_boundary! {
        let config = arg_ref!(config);
        let name = arg_str!(name, name_len);
        let out_breaker = arg_out!(out_breaker);
        if name.len() > circuit_core::registry::MAX_NAME_LEN {
            return fail(
                circuit_result::InvalidArgument,
                format_args!(
                    "`name` is {} bytes; the limit is {}",
                    name.len(),
                    circuit_core::registry::MAX_NAME_LEN
                ),
            );
        }
        let source = time_source(arg_ref_opt!(clock));
        let breaker = Breaker::named(Arc::from(name), config.config.clone(), source);
        out_breaker.write(new_shared(breaker));
        circuit_result::Ok
    }
}

/// Copies the breaker's name (empty for an unnamed breaker), NUL-terminated,
/// into `buf` under the required-length protocol (see `circuit_last_error`).
///
/// # Safety
/// `breaker` must be a live breaker; `buf` NULL (with `len` 0) or writable
/// for `len` bytes; `out_len` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_name(
    breaker: *const circuit_breaker,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out_len = arg_out!(out_len);
        // SAFETY: `buf`/`len` are passed on under this function's contract.
        unsafe { write_text(b.name(), buf, len, out_len) }
    }
}

/// Adds a reference to `breaker` and returns it (NULL for NULL), for
/// handing the breaker to another owner; each reference is released with
/// `circuit_breaker_free`.
///
/// # Safety
/// `breaker` must be NULL or a live breaker.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_retain(
    breaker: *const circuit_breaker,
) -> *const circuit_breaker {
    ffi_boundary! {
        // SAFETY: by contract `breaker` is NULL or a live breaker on which
        // the caller holds a reference.
        unsafe { retain(breaker) };
        breaker
    }
}

/// Releases one reference to `breaker`, destroying it with the last one.
/// `circuit_breaker_free(NULL)` does nothing. Other holders of references
/// are unaffected.
///
/// Inside a callback (a listener or finalizer running on this thread) the
/// release is deferred: the breaker stays alive until the outermost call of
/// this library on this thread returns (the `record`, `force`... that ran
/// the callback), which then releases the reference. So a listener may
/// release the breaker it is told about, even its last reference: the
/// transition, the other listeners and the call finish on a live breaker.
/// On a thread the library runs itself (the fleet-sync worker) the deferred
/// reference is released when that thread ends.
///
/// # Safety
/// `breaker` must be NULL or a live breaker on which the caller holds a
/// reference; the caller must not use that reference afterwards.
///
/// Thread safety: safe from any thread, concurrently with other holders'
/// calls.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_free(breaker: *const circuit_breaker) {
    ffi_boundary! {
        // SAFETY: by contract `breaker` is NULL or a live breaker whose
        // reference the caller gives up; inside a callback the release is
        // deferred (see `handle::free_shared`).
        unsafe { free_shared(breaker) };
    }
}

/// Asks to make a call. In CLOSED this is one atomic load and a branch.
///
/// Returns `CIRCUIT_RESULT_OK` and writes `*out_permit`: make the call,
/// then report it with `circuit_breaker_record`. Or returns
/// `CIRCUIT_RESULT_REJECTED_OPEN`, `_REJECTED_FORCED_OPEN`,
/// `_REJECTED_HALF_OPEN_FULL` or `_REJECTED_RAMP_LIMITED`: do not make the
/// call (answer from a fallback); `*out_retry_after_ns` then receives the
/// time until the breaker may admit again, or `CIRCUIT_RETRY_AFTER_UNKNOWN`
/// (`UINT64_MAX`; always so for a ramp-up refusal). Rejections do not set the last error.
///
/// # Safety
/// `breaker` must be a live breaker, `out_permit` a valid pointer;
/// `out_retry_after_ns` may be NULL (not wanted) or a valid pointer.
///
/// Thread safety: safe from any thread; lock-free.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_acquire(
    breaker: *const circuit_breaker,
    out_permit: *mut circuit_permit,
    out_retry_after_ns: *mut u64,
) -> circuit_result {
    // The closed fast path through the core's published contract
    // (`circuit_core::fast_path`): the very check `Breaker::acquire` makes
    // first (core invariant 2), done here so that the permit goes out of a
    // register in one store (see `write_permit`). It is a leaf: NULL
    // checks, one load, one store, nothing that can panic and no callback
    // (so no reference can have been parked for this call to give back:
    // `boundary::after_call` has nothing to do). Everything else, the NULL
    // errors included, is `acquire_slow`, out of line so that this path
    // saves no registers for it.
    if !breaker.is_null() && !out_permit.is_null() {
        // SAFETY: the function's contract: a non-NULL `breaker` is a live
        // breaker for the duration of the call.
        if let Some(b) = unsafe { crate::handle::as_ref(breaker) } {
            // SAFETY: `state_word_ptr` is the address of the breaker's live
            // `AtomicU64` state word, valid while `b` is borrowed; it is
            // only read, atomically.
            // Acquire: crate rule 1 (core invariants 2 and 3).
            let word =
                unsafe { std::sync::atomic::AtomicU64::from_ptr(b.state_word_ptr().cast_mut()) }
                    .load(std::sync::atomic::Ordering::Acquire);
            if word & circuit_core::fast_path::MASK == 0 {
                let generation = (word >> circuit_core::fast_path::GENERATION_SHIFT) as u32;
                // SAFETY: the contract: a non-NULL `out_permit` is valid for
                // a write of a `circuit_permit`.
                let out = unsafe {
                    crate::boundary::Out::new(std::ptr::NonNull::new_unchecked(out_permit))
                };
                write_permit(out, Permit::from_raw(generation, 0));
                return circuit_result::Ok;
            }
        }
    }
    // SAFETY: the same contract, passed on.
    unsafe { acquire_slow(breaker, out_permit, out_retry_after_ns) }
}

/// `circuit_breaker_acquire` off the closed fast path (and its NULL
/// errors), under the panic boundary. `extern "C"` (not exported): a
/// function of that ABI cannot unwind, so the compiler knows the call
/// cannot either and makes it a tail jump, with no frame and no landing
/// pad in the fast path.
///
/// # Safety
/// As `circuit_breaker_acquire`.
#[inline(never)]
unsafe extern "C" fn acquire_slow(
    breaker: *const circuit_breaker,
    out_permit: *mut circuit_permit,
    out_retry_after_ns: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out_permit = arg_out!(out_permit);
        match b.acquire() {
            Ok(permit) => {
                write_permit(out_permit, permit);
                circuit_result::Ok
            }
            Err(rejected) => {
                if let Some(out) = arg_out_opt!(out_retry_after_ns) {
                    out.write(
                        rejected
                            .retry_after
                            .map_or(CIRCUIT_RETRY_AFTER_UNKNOWN, duration_to_nanos),
                    );
                }
                match rejected.reason {
                    RejectReason::Open => circuit_result::RejectedOpen,
                    RejectReason::ForcedOpen => circuit_result::RejectedForcedOpen,
                    RejectReason::HalfOpenFull => circuit_result::RejectedHalfOpenFull,
                    RejectReason::RampLimited => circuit_result::RejectedRampLimited,
                }
            }
        }
    }
}

/// Writes a permit with one 8-byte store. The caller reads it back at once
/// as one 8-byte value (it is passed by value to `record` in a register);
/// two 4-byte stores there defeat store-to-load forwarding and cost a stall
/// of a dozen cycles per call, a measurable share of the whole protocol.
#[inline(always)]
fn write_permit(out: crate::boundary::Out<'_, circuit_permit>, permit: Permit) {
    let (generation, flags) = permit.into_raw();
    // `generation` at offset 0, `flags` at offset 4, in native byte order.
    let word = if cfg!(target_endian = "little") {
        u64::from(generation) | (u64::from(flags) << 32)
    } else {
        (u64::from(generation) << 32) | u64::from(flags)
    };
    // SAFETY: `out` is valid for a write of a `circuit_permit` (8 bytes,
    // `#[repr(C)]` of two `u32`, laid out as `word`); `write_unaligned`
    // because the struct is only 4-aligned.
    unsafe { out.as_ptr().cast::<u64>().write_unaligned(word) }
}

const _: () = assert!(std::mem::size_of::<circuit_permit>() == 8);

pub(crate) fn recorded(r: Recorded) -> circuit_result {
    match r {
        Recorded::Counted | Recorded::Transitioned(_) | Recorded::NotRecorded => circuit_result::Ok,
        Recorded::Stale => circuit_result::Stale,
    }
}

/// Reports the outcome (a `circuit_outcome` code) of a call admitted with
/// `permit`, and how long it took in nanoseconds as measured by the caller.
///
/// Returns `CIRCUIT_RESULT_OK` (counted; possibly a transition),
/// `CIRCUIT_RESULT_STALE` (the permit is of an earlier generation, or is a
/// half-open probe already recorded or issued by another breaker: counted
/// as stale only; not an error, the last error is untouched), or
/// `CIRCUIT_RESULT_INVALID_ARGUMENT` for an unknown outcome, in which case
/// nothing is recorded and the permit is still outstanding.
///
/// # Safety
/// `breaker` must be a live breaker.
///
/// Thread safety: safe from any thread; lock-free.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_record(
    breaker: *const circuit_breaker,
    permit: circuit_permit,
    outcome: u32,
    duration_ns: u64,
) -> circuit_result {
    // A success in the closed path's short form is recorded here, in a
    // leaf (see `record_short`); everything else is `record_slow`.
    if outcome == circuit_outcome::Success as u32
        // SAFETY: the function's contract: `breaker` is NULL or live.
        && unsafe { record_short(breaker, permit) }
    {
        return circuit_result::Ok;
    }
    // SAFETY: the same contract, passed on.
    unsafe { record_slow(breaker, permit, outcome, duration_ns) }
}

/// Records a success of `permit` when it takes the core's short form
/// (`Breaker::record_success_short`: any duration; the record would answer
/// `CIRCUIT_RESULT_OK`) and returns true; otherwise does nothing and returns
/// false. All inline: NULL check, loads, one counter add, nothing that can
/// panic and no callback (so no reference can have been parked for the call
/// to give back: `boundary::after_call` has nothing to do). So the exported
/// record functions that use it are leaves on that path, saving no
/// registers, and hand every other case to `record_slow`.
///
/// # Safety
/// `breaker` must be NULL or a live breaker for the duration of the call.
#[inline(always)]
pub(crate) unsafe fn record_short(breaker: *const circuit_breaker, permit: circuit_permit) -> bool {
    // SAFETY: the caller's contract.
    match unsafe { crate::handle::as_ref(breaker) } {
        Some(b) => b.record_success_short(Permit::from_raw(permit.generation, permit.flags)),
        None => false,
    }
}

/// `circuit_breaker_record` off the short form (and its NULL and outcome
/// errors), under the panic boundary. `extern "C"` (not exported), as
/// `acquire_slow`: the call cannot unwind, so it is a tail jump.
///
/// # Safety
/// As `circuit_breaker_record`.
#[inline(never)]
pub(crate) unsafe extern "C" fn record_slow(
    breaker: *const circuit_breaker,
    permit: circuit_permit,
    outcome: u32,
    duration_ns: u64,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let permit = Permit::from_raw(permit.generation, permit.flags);
        // The common outcome gets its own copy of the core's record, with
        // the outcome a constant in it (as in a Rust caller that writes
        // `Outcome::Success`): no outcome table, no failure or ignored
        // branches on the success path.
        if outcome == circuit_outcome::Success as u32 {
            return recorded(b.record_nanos(permit, Outcome::Success, duration_ns));
        }
        let outcome = arg_enum!(Outcome::from_u32, outcome);
        recorded(b.record_nanos(permit, outcome, duration_ns))
    }
}

/// As `circuit_breaker_record`, with the dependency's own open duration (a
/// `Retry-After`, in nanoseconds): if this outcome opens the breaker, it
/// stays open that long (clamped to the configured maximum) instead of the
/// computed backoff. It never extends an open deadline already set.
///
/// # Safety
/// `breaker` must be a live breaker.
///
/// Thread safety: safe from any thread; lock-free.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_record_retry_after(
    breaker: *const circuit_breaker,
    permit: circuit_permit,
    outcome: u32,
    duration_ns: u64,
    retry_after_ns: u64,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let outcome = arg_enum!(Outcome::from_u32, outcome);
        let permit = Permit::from_raw(permit.generation, permit.flags);
        recorded(b.record_with_retry_after(
            permit,
            outcome,
            Duration::from_nanos(duration_ns),
            Duration::from_nanos(retry_after_ns),
        ))
    }
}

/// Writes the current `circuit_state` code to `*out_state`. An override
/// whose expiry has passed is cleared first, so this is accurate without
/// traffic.
///
/// # Safety
/// `breaker` must be a live breaker, `out_state` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_state(
    breaker: *const circuit_breaker,
    out_state: *mut u32,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out_state = arg_out!(out_state);
        out_state.write(state_code(b.state()));
        circuit_result::Ok
    }
}

/// Writes the current generation to `*out_generation`. Every transition
/// increments it; permits carry the generation they were issued under.
///
/// # Safety
/// `breaker` must be a live breaker, `out_generation` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_generation(
    breaker: *const circuit_breaker,
    out_generation: *mut u32,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out_generation = arg_out!(out_generation);
        out_generation.write(b.generation());
        circuit_result::Ok
    }
}

/// Writes 1 to `*out_needs` when the breaker reads call durations (its
/// config has the slow-call policy or the latency histogram), else 0: a
/// host that measures durations only for the library skips the clock reads
/// when this is 0 and records a duration of 0.
///
/// # Safety
/// `breaker` must be a live breaker, `out_needs` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_needs_durations(
    breaker: *const circuit_breaker,
    out_needs: *mut u32,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out_needs = arg_out!(out_needs);
        out_needs.write(u32::from(b.config().needs_durations()));
        circuit_result::Ok
    }
}

/// Fills `*metrics` with a snapshot of the breaker's counters. Set
/// `metrics->struct_size = sizeof(circuit_metrics)` first: the library
/// fills at most that many bytes and writes back how many it filled (see
/// `circuit_metrics`). A `struct_size` below `CIRCUIT_STRUCT_MIN_SIZE` or
/// not a multiple of 8 is `CIRCUIT_RESULT_INVALID_ARGUMENT` and nothing is
/// written.
///
/// # Safety
/// `breaker` must be a live breaker; `metrics` must point to at least
/// `metrics->struct_size` writable bytes, aligned for `circuit_metrics`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_metrics(
    breaker: *const circuit_breaker,
    metrics: *mut circuit_metrics,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out = arg_out!(metrics);
        let n = match struct_size(&out, "metrics") {
            Ok(n) => n,
            Err(code) => return code,
        };
        let ramp = b.ramp_fraction().unwrap_or(0.0);
        let full = circuit_metrics::from_core(&b.metrics(), b.state(), b.generation(), ramp);
        fill_sized(out, full, n);
        circuit_result::Ok
    }
}

/// Sets an operator override (a `circuit_override` code), expiring after
/// `duration_ns` nanoseconds (clamped to one week), or never when
/// `duration_ns` is 0. Outstanding permits become stale. Unknown modes are
/// `CIRCUIT_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `breaker` must be a live breaker.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_force(
    breaker: *const circuit_breaker,
    mode: u32,
    duration_ns: u64,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let mode = arg_enum!(override_from_u32, mode);
        let expiry = (duration_ns != 0).then(|| Duration::from_nanos(duration_ns));
        b.force(mode, expiry);
        circuit_result::Ok
    }
}

/// Clears an override, returning to a fresh CLOSED. Returns
/// `CIRCUIT_RESULT_NOT_FOUND` when no override was set (nothing changes).
///
/// # Safety
/// `breaker` must be a live breaker.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_clear_override(
    breaker: *const circuit_breaker,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        if b.clear_override() {
            circuit_result::Ok
        } else {
            fail(circuit_result::NotFound, "no override is set")
        }
    }
}

/// Returns to CLOSED with an empty window, clearing any override.
/// Outstanding permits become stale.
///
/// # Safety
/// `breaker` must be a live breaker.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_reset(breaker: *const circuit_breaker) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        b.reset();
        circuit_result::Ok
    }
}

/// The lower-case name of a `circuit_state` code (`"closed"`, `"open"`,
/// `"half_open"`, `"forced_open"`, `"forced_closed"`, `"disabled"`,
/// `"metrics_only"`), as a static NUL-terminated string; `"unknown"` for any
/// other value. Never NULL; do not free it.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn circuit_state_str(state: u32) -> *const c_char {
    ffi_boundary! {
        static_cstr(match State::ALL.get(state as usize) {
            Some(State::Closed) => c"closed",
            Some(State::Open) => c"open",
            Some(State::HalfOpen) => c"half_open",
            Some(State::ForcedOpen) => c"forced_open",
            Some(State::ForcedClosed) => c"forced_closed",
            Some(State::Disabled) => c"disabled",
            Some(State::MetricsOnly) => c"metrics_only",
            None => c"unknown",
        })
    }
}

/// Parses a state name as printed by `circuit_state_str` (`name` is
/// `name_len` bytes of UTF-8, no NUL needed) and writes its code to
/// `*out_state`. Unknown names are `CIRCUIT_RESULT_NOT_FOUND`; bytes that
/// are not UTF-8 are `CIRCUIT_RESULT_INVALID_UTF8`.
///
/// # Safety
/// `name` must point to `name_len` readable bytes (it may be NULL when
/// `name_len` is 0); `out_state` must be a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_state_parse(
    name: *const c_char,
    name_len: usize,
    out_state: *mut u32,
) -> circuit_result {
    ffi_boundary! {
        let name = arg_str!(name, name_len);
        let out_state = arg_out!(out_state);
        match State::ALL.iter().find(|s| s.as_str() == name) {
            Some(s) => {
                out_state.write(state_code(*s));
                circuit_result::Ok
            }
            None => fail(circuit_result::NotFound, format_args!("no state is named {name:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_enums_match_the_core() {
        let c_states = [
            circuit_state::Closed,
            circuit_state::Open,
            circuit_state::HalfOpen,
            circuit_state::ForcedOpen,
            circuit_state::ForcedClosed,
            circuit_state::Disabled,
            circuit_state::MetricsOnly,
        ];
        assert_eq!(c_states.len(), CIRCUIT_STATE_COUNT);
        assert_eq!(State::ALL.len(), CIRCUIT_STATE_COUNT);
        for (c, s) in c_states.iter().zip(State::ALL) {
            assert_eq!(*c as u32, state_code(s));
            // SAFETY: `circuit_state_str` returns a static C string.
            let name = unsafe { std::ffi::CStr::from_ptr(circuit_state_str(*c as u32)) };
            assert_eq!(name.to_str().unwrap(), s.as_str());
        }
        for (c, o) in [
            circuit_outcome::Success,
            circuit_outcome::Failure,
            circuit_outcome::Timeout,
            circuit_outcome::Ignored,
        ]
        .iter()
        .zip(Outcome::ALL)
        {
            assert_eq!(Outcome::from_u32(*c as u32), Some(o));
        }
        for (c, o) in [
            (circuit_override::ForcedOpen, Override::ForcedOpen),
            (circuit_override::ForcedClosed, Override::ForcedClosed),
            (circuit_override::Disabled, Override::Disabled),
            (circuit_override::MetricsOnly, Override::MetricsOnly),
        ] {
            assert_eq!(override_from_u32(c as u32), Some(o));
        }
        assert_eq!(override_from_u32(0), None);
        assert_eq!(override_from_u32(5), None);
        assert_eq!(
            CIRCUIT_PERMIT_PROBE,
            Permit::from_raw(0, u32::MAX).into_raw().1 & CIRCUIT_PERMIT_PROBE
        );
    }
}
