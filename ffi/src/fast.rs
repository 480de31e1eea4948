//! Entry points for wrappers whose every foreign call is expensive (ctypes,
//! cgo): the closed fast path performed on the wrapper's side, and a record
//! call that takes only integers.
//!
//! The contract (also `circuit_core::fast_path`): load the 64-bit word at
//! `circuit_breaker_state_word` atomically (acquire); if
//! `word & CIRCUIT_WORD_FAST_MASK == 0` the call is admitted with the permit
//! `{ .generation = (uint32_t)(word >> CIRCUIT_WORD_GENERATION_SHIFT),
//! .flags = 0 }`; otherwise call `circuit_breaker_acquire`. That check is
//! the whole closed fast path of `circuit_breaker_acquire`, so a wrapper
//! doing it makes no decision of its own, and saves one foreign call per
//! protected call.

use crate::boundary::{arg_out, arg_ref, ffi_boundary};

use crate::breaker::{circuit_breaker, circuit_breaker_record, circuit_permit};
use crate::result::circuit_result;

/// Bits of the state word that must all be zero for the closed fast path.
pub const CIRCUIT_WORD_FAST_MASK: u64 = 0x1F;
/// Shift of the 32-bit generation within the state word.
pub const CIRCUIT_WORD_GENERATION_SHIFT: u32 = 32;

// cbindgen needs literals; the build fails if they drift from the core.
const _: () = {
    assert!(CIRCUIT_WORD_FAST_MASK == circuit_core::fast_path::MASK);
    assert!(CIRCUIT_WORD_GENERATION_SHIFT == circuit_core::fast_path::GENERATION_SHIFT);
};

/// Writes to `*out_word` the address of the breaker's 64-bit state word,
/// for wrappers that perform the closed fast path themselves: load the word
/// atomically (acquire); if `(word & CIRCUIT_WORD_FAST_MASK) == 0` the call
/// is admitted with the permit `{ .generation = (uint32_t)(word >>
/// CIRCUIT_WORD_GENERATION_SHIFT), .flags = 0 }`, exactly as
/// `circuit_breaker_acquire` would admit it; otherwise call
/// `circuit_breaker_acquire`. The address stays valid while the caller holds
/// a reference to the breaker. Never write through it.
///
/// # Safety
/// `breaker` must be a live breaker, `out_word` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_state_word(
    breaker: *const circuit_breaker,
    out_word: *mut *const u64,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out_word = arg_out!(out_word);
        out_word.write(b.state_word_ptr());
        circuit_result::Ok
    }
}

/// For wrappers that repeat a rejection in OPEN on their side without a
/// library call. Writes to `*out_deadline_word` the address of the
/// breaker's 64-bit deadline word, and to `*out_open_rejections` the
/// address of the 64-bit counter its metrics read rejections in OPEN from
/// (NULL when the breaker keeps no metrics). Writes NULL to both when the
/// breaker is not on the system's monotonic clock (made with a
/// `circuit_clock`, or not on Linux): then no rejection may be repeated.
///
/// The contract: load the state word (`circuit_breaker_state_word`) and
/// the deadline word atomically, read the monotonic clock (`t0`), call
/// `circuit_breaker_acquire`; if it returned
/// `CIRCUIT_RESULT_REJECTED_OPEN` with a known retry-after `r` and both
/// words still read the same, later calls may be refused by the wrapper
/// (as `CIRCUIT_RESULT_REJECTED_OPEN`, retry-after `t0 + r - now`) while
/// both words read those same values and `now < t0 + r`; each call so
/// refused adds 1 to `*out_open_rejections` with an atomic add (relaxed),
/// so every metrics reader, the Prometheus text included, counts it. The
/// values of both words are opaque: compare them for equality, never
/// decode them. The wrapper's clock must be `CLOCK_MONOTONIC`, the
/// breaker's. Every change that could admit
/// a call (a transition, an override, a reset, a fleet update, a deadline
/// written) changes one of the words. The addresses stay valid while the
/// caller holds a reference to the breaker. Never write through the
/// deadline word's; write the counter only by that atomic add.
///
/// # Safety
/// `breaker` must be a live breaker, the out pointers valid.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_open_rejection_words(
    breaker: *const circuit_breaker,
    out_deadline_word: *mut *const u64,
    out_open_rejections: *mut *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out_deadline_word = arg_out!(out_deadline_word);
        let out_open_rejections = arg_out!(out_open_rejections);
        if b.on_system_clock() {
            out_deadline_word.write(b.deadline_word_ptr());
            out_open_rejections.write(b.open_rejection_cell_ptr().unwrap_or(std::ptr::null_mut()));
        } else {
            out_deadline_word.write(std::ptr::null());
            out_open_rejections.write(std::ptr::null_mut());
        }
        circuit_result::Ok
    }
}

/// `circuit_breaker_record` with the permit passed as its two fields, for
/// wrappers where passing a struct by value is slow (ctypes).
///
/// # Safety
/// `breaker` must be a live breaker.
///
/// Thread safety: safe from any thread; lock-free.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_record_parts(
    breaker: *const circuit_breaker,
    generation: u32,
    flags: u32,
    outcome: u32,
    duration_ns: u64,
) -> circuit_result {
    let permit = circuit_permit { generation, flags };
    // SAFETY: the same contract as ours: `breaker` is live or NULL (checked
    // there), and that function has its own panic boundary.
    unsafe { circuit_breaker_record(breaker, permit, outcome, duration_ns) }
}

/// `circuit_breaker_record_parts(breaker, generation, 0,
/// CIRCUIT_OUTCOME_SUCCESS, 0)`: the success, without a duration, of a call
/// admitted with flags 0 (as the closed fast path admits), in two
/// arguments, for wrappers where every argument of a foreign call costs
/// (ctypes: about 25 ns each).
///
/// # Safety
/// `breaker` must be a live breaker.
///
/// Thread safety: safe from any thread; lock-free.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_record_success(
    breaker: *const circuit_breaker,
    generation: u32,
) -> circuit_result {
    let permit = circuit_permit {
        generation,
        flags: 0,
    };
    // The short form in this leaf, as in `circuit_breaker_record`; the rest
    // is its out-of-line body.
    // SAFETY: the function's contract: `breaker` is NULL or live.
    if unsafe { crate::breaker::record_short(breaker, permit) } {
        return circuit_result::Ok;
    }
    // SAFETY: the same contract, passed on.
    unsafe {
        crate::breaker::record_slow(
            breaker,
            permit,
            crate::breaker::circuit_outcome::Success as u32,
            0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::{circuit_breaker_acquire, circuit_breaker_free, circuit_breaker_new};
    use crate::config::{circuit_config_builder_build, circuit_config_builder_new};
    use std::ptr;

    #[test]
    fn the_word_admits_exactly_when_acquire_takes_the_fast_path() {
        // SAFETY: every pointer passed is a live handle or a valid local.
        unsafe {
            let b = breaker_from(circuit_config_builder_new());
            let mut word = ptr::null();
            assert_eq!(circuit_breaker_state_word(b, &mut word), circuit_result::Ok);
            assert_eq!(
                circuit_breaker_state_word(b, ptr::null_mut()),
                circuit_result::NullArgument
            );
            // Acquire: crate rule 1, as a wrapper reads the word.
            let w = std::sync::atomic::AtomicU64::from_ptr(word.cast_mut())
                .load(std::sync::atomic::Ordering::Acquire);
            assert_eq!(w & CIRCUIT_WORD_FAST_MASK, 0);
            let mut permit = circuit_permit {
                generation: 9,
                flags: 9,
            };
            assert_eq!(
                circuit_breaker_acquire(b, &mut permit, ptr::null_mut()),
                circuit_result::Ok
            );
            assert_eq!(
                u64::from(permit.generation),
                w >> CIRCUIT_WORD_GENERATION_SHIFT
            );
            assert_eq!(
                circuit_breaker_record_parts(b, permit.generation, 0, 0, 5),
                circuit_result::Ok
            );
            assert_eq!(
                circuit_breaker_record_parts(b, permit.generation, 0, 99, 5),
                circuit_result::InvalidArgument
            );
            assert_eq!(
                circuit_breaker_record_parts(ptr::null(), 0, 0, 0, 5),
                circuit_result::NullArgument
            );
            let core = crate::handle::as_ref(b).unwrap();
            let before = core.metrics().outcome(circuit_core::Outcome::Success);
            assert_eq!(
                circuit_breaker_record_success(b, permit.generation),
                circuit_result::Ok
            );
            assert_eq!(
                core.metrics().outcome(circuit_core::Outcome::Success),
                before + 1
            );
            assert_eq!(
                circuit_breaker_record_success(b, permit.generation.wrapping_add(1)),
                circuit_result::Stale
            );
            assert_eq!(
                circuit_breaker_record_success(ptr::null(), 0),
                circuit_result::NullArgument
            );
            circuit_breaker_free(b);
        }
    }

    /// A breaker of the config `builder` builds (the builder is freed).
    ///
    /// # Safety
    /// `builder` must be a live builder.
    unsafe fn breaker_from(
        builder: *mut crate::config::circuit_config_builder,
    ) -> *const crate::breaker::circuit_breaker {
        // SAFETY: `builder` is live (the contract); the other pointers are
        // handles made here or valid locals.
        unsafe {
            let mut config = ptr::null_mut();
            assert_eq!(
                circuit_config_builder_build(builder, &mut config),
                circuit_result::Ok
            );
            crate::config::circuit_config_builder_free(builder);
            let mut b = ptr::null();
            assert_eq!(
                circuit_breaker_new(config, ptr::null(), &mut b),
                circuit_result::Ok
            );
            crate::config::circuit_config_free(config);
            b
        }
    }

    /// A breaker from the ABI with one consecutive failure to trip and
    /// metrics on or off.
    unsafe fn tripping_breaker(metrics: u32) -> *const crate::breaker::circuit_breaker {
        // SAFETY: every pointer passed is a live handle or a valid local.
        unsafe {
            let builder = circuit_config_builder_new();
            assert_eq!(
                crate::config::circuit_config_builder_set_consecutive_failures(builder, 1),
                circuit_result::Ok
            );
            assert_eq!(
                crate::config::circuit_config_builder_set_metrics(builder, metrics),
                circuit_result::Ok
            );
            breaker_from(builder)
        }
    }

    #[test]
    fn the_open_rejection_words_follow_the_breaker_and_its_metrics_count_the_cell() {
        use circuit_core::RejectReason;
        use std::sync::atomic::{AtomicU64, Ordering};
        // SAFETY: every pointer passed is a live handle or a valid local;
        // the words are read atomically and the cell only added to.
        unsafe {
            let b = tripping_breaker(1);
            let (mut deadline, mut cell) = (ptr::null(), ptr::null_mut());
            assert_eq!(
                circuit_breaker_open_rejection_words(b, &mut deadline, &mut cell),
                circuit_result::Ok
            );
            assert!(!deadline.is_null() && !cell.is_null());
            for (d, c) in [
                (ptr::null_mut(), &mut cell as *mut _),
                (&mut deadline as *mut _, ptr::null_mut()),
            ] {
                assert_eq!(
                    circuit_breaker_open_rejection_words(b, d, c),
                    circuit_result::NullArgument
                );
            }
            assert_eq!(
                circuit_breaker_open_rejection_words(ptr::null(), &mut deadline, &mut cell),
                circuit_result::NullArgument
            );
            let core = crate::handle::as_ref(b).unwrap();
            let mut word = ptr::null();
            assert_eq!(circuit_breaker_state_word(b, &mut word), circuit_result::Ok);
            let load = |p: *const u64| AtomicU64::from_ptr(p.cast_mut()).load(Ordering::Acquire);

            // Trip it: the state word and the deadline word both change.
            let (w0, d0) = (load(word), load(deadline));
            let mut permit = circuit_permit {
                generation: 0,
                flags: 0,
            };
            assert_eq!(
                crate::breaker::circuit_breaker_acquire(b, &mut permit, ptr::null_mut()),
                circuit_result::Ok
            );
            assert_eq!(
                circuit_breaker_record_parts(b, permit.generation, 0, 1, 0),
                circuit_result::Ok
            );
            let (w1, d1) = (load(word), load(deadline));
            assert_ne!(w1, w0);
            assert_ne!(d1, d0);
            let mut retry = 0u64;
            assert_eq!(
                crate::breaker::circuit_breaker_acquire(b, &mut permit, &mut retry),
                circuit_result::RejectedOpen
            );
            assert_eq!((load(word), load(deadline)), (w1, d1));
            assert_eq!(core.metrics().rejected[RejectReason::Open as usize], 1);

            // A host's rejections, added to the cell, are the core's count.
            AtomicU64::from_ptr(cell).fetch_add(2, Ordering::Relaxed);
            assert_eq!(core.metrics().rejected[RejectReason::Open as usize], 3);
            let shared = crate::handle::clone_shared(b).unwrap();
            let text = circuit_core::prometheus::render(&[(std::sync::Arc::from("t"), shared)]);
            assert!(
                text.contains("circuit_rejected_total{name=\"t\",reason=\"open\"} 3"),
                "{text}"
            );

            // An override changes the state word.
            assert_eq!(
                crate::breaker::circuit_breaker_force(b, 2, 0),
                circuit_result::Ok
            );
            assert_ne!(load(word), w1);
            circuit_breaker_free(b);

            // No metrics: no cell.
            let b = tripping_breaker(0);
            assert_eq!(
                circuit_breaker_open_rejection_words(b, &mut deadline, &mut cell),
                circuit_result::Ok
            );
            assert!(!deadline.is_null() && cell.is_null());
            circuit_breaker_free(b);

            // A breaker on a manual clock: nothing to repeat rejections by.
            let clock = crate::clock::circuit_clock_manual_new(0);
            let builder = circuit_config_builder_new();
            let mut config = ptr::null_mut();
            assert_eq!(
                circuit_config_builder_build(builder, &mut config),
                circuit_result::Ok
            );
            crate::config::circuit_config_builder_free(builder);
            let mut b = ptr::null();
            assert_eq!(
                circuit_breaker_new(config, clock, &mut b),
                circuit_result::Ok
            );
            crate::config::circuit_config_free(config);
            assert_eq!(
                circuit_breaker_open_rejection_words(b, &mut deadline, &mut cell),
                circuit_result::Ok
            );
            assert!(deadline.is_null() && cell.is_null());
            circuit_breaker_free(b);
            crate::clock::circuit_clock_free(clock);
        }
    }
}
