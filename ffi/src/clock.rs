//! Clocks: the process's monotonic clock (the default) and manual clocks for
//! simulated time in tests and demos.

use std::sync::Arc;
use std::time::Duration;

use circuit_core::{Clock, ManualClock, MonotonicClock};

use crate::boundary::{arg_out, arg_ref, fail, ffi_boundary};
use crate::handle::{free_boxed, handle_of, new_boxed};
use crate::result::circuit_result;

/// A time source for breakers: a manual clock (`circuit_clock_manual_new`)
/// or the monotonic clock (`circuit_clock_monotonic_new`).
///
/// A breaker created with a clock keeps its own reference to the time
/// source, so the handle may be freed while breakers still use it. All
/// functions taking a `const circuit_clock *` are safe to call concurrently
/// from any thread.
#[derive(Debug)]
pub struct circuit_clock {
    _opaque: [u8; 0],
}

handle_of!(circuit_clock => Boxed FfiClock);

/// The clock behind a `circuit_clock` handle.
#[derive(Debug)]
pub enum FfiClock {
    /// Moved by the host.
    Manual(Arc<ManualClock>),
    /// The process's monotonic clock.
    Monotonic,
}

/// The time source for an optional clock argument: the clock's, or the
/// process's monotonic clock when none was given.
pub(crate) fn time_source(clock: Option<&FfiClock>) -> Arc<dyn Clock> {
    match clock {
        Some(c) => c.source(),
        None => Arc::new(MonotonicClock::new()),
    }
}

impl FfiClock {
    /// The time source a breaker should hold.
    pub(crate) fn source(&self) -> Arc<dyn Clock> {
        match self {
            FfiClock::Manual(c) => c.clone(),
            FfiClock::Monotonic => Arc::new(MonotonicClock::new()),
        }
    }

    fn now(&self) -> u64 {
        match self {
            FfiClock::Manual(c) => c.now(),
            FfiClock::Monotonic => MonotonicClock::new().now(),
        }
    }

    fn manual(&self) -> Option<&ManualClock> {
        match self {
            FfiClock::Manual(c) => Some(c),
            FfiClock::Monotonic => None,
        }
    }
}

/// Creates a manual clock reading `start_ns` nanoseconds. It moves only
/// through `circuit_clock_advance` and `circuit_clock_set`.
///
/// Ownership: the caller owns the returned clock and frees it with
/// `circuit_clock_free`. Never returns NULL (except after an internal
/// panic).
#[no_mangle]
pub extern "C" fn circuit_clock_manual_new(start_ns: u64) -> *mut circuit_clock {
    ffi_boundary! {
        new_boxed(FfiClock::Manual(Arc::new(ManualClock::new(start_ns))))
    }
}

/// Creates a handle to the process's monotonic clock (`CLOCK_MONOTONIC`),
/// the clock breakers use when none is given. Useful with
/// `circuit_clock_now` to measure calls on the breaker's time base.
///
/// Ownership: the caller owns the returned clock and frees it with
/// `circuit_clock_free`. Never returns NULL (except after an internal
/// panic).
#[no_mangle]
pub extern "C" fn circuit_clock_monotonic_new() -> *mut circuit_clock {
    ffi_boundary! {
        new_boxed(FfiClock::Monotonic)
    }
}

/// Frees a clock handle. Breakers created with it keep working (they hold
/// their own reference to the time source). `circuit_clock_free(NULL)` does
/// nothing.
///
/// # Safety
/// `clock` must be NULL or a clock from this library not yet freed; it must
/// not be used afterwards. Freeing a handle twice or a foreign pointer is
/// undefined behaviour.
///
/// Thread safety: no other thread may be using this handle.
#[no_mangle]
pub unsafe extern "C" fn circuit_clock_free(clock: *mut circuit_clock) {
    ffi_boundary! {
        // SAFETY: by contract NULL or a clock from one of the constructors
        // above, freed once.
        unsafe { free_boxed(clock) };
    }
}

/// Reads the clock: `*out_ns` receives its current time in nanoseconds.
///
/// # Safety
/// `clock` must be a live clock handle; `out_ns` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_clock_now(
    clock: *const circuit_clock,
    out_ns: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let clock = arg_ref!(clock);
        let out_ns = arg_out!(out_ns);
        out_ns.write(clock.now());
        circuit_result::Ok
    }
}

/// Moves a manual clock forward by `ns` nanoseconds (saturating at
/// `UINT64_MAX`). Returns `CIRCUIT_RESULT_INVALID_ARGUMENT` for the
/// monotonic clock.
///
/// # Safety
/// `clock` must be a live clock handle.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_clock_advance(
    clock: *const circuit_clock,
    ns: u64,
) -> circuit_result {
    ffi_boundary! {
        let clock = arg_ref!(clock);
        match clock.manual() {
            Some(m) => {
                m.advance(Duration::from_nanos(ns));
                circuit_result::Ok
            }
            None => fail(circuit_result::InvalidArgument, "the monotonic clock cannot be moved"),
        }
    }
}

/// Sets a manual clock to `ns` nanoseconds, forwards or backwards (a clock
/// set backwards only delays deadlines). Returns
/// `CIRCUIT_RESULT_INVALID_ARGUMENT` for the monotonic clock.
///
/// # Safety
/// `clock` must be a live clock handle.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_clock_set(clock: *const circuit_clock, ns: u64) -> circuit_result {
    ffi_boundary! {
        let clock = arg_ref!(clock);
        match clock.manual() {
            Some(m) => {
                m.set(ns);
                circuit_result::Ok
            }
            None => fail(circuit_result::InvalidArgument, "the monotonic clock cannot be set"),
        }
    }
}
