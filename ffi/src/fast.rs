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
            let builder = circuit_config_builder_new();
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
            circuit_breaker_free(b);
        }
    }
}
