//! Active health probes: a prober hands out a breaker's half-open probe at
//! its open deadline, to a C callback on the prober's own thread or to a
//! host thread polling for tickets (`circuit_core::probe`).

use std::ffi::c_void;
use std::time::Duration;

use circuit_core::probe::{ProbeError, ProbeId, ProbeOptions, Prober, TicketId};
use circuit_core::{Outcome, Recorded};

use crate::boundary::{
    arg_enum, arg_out, arg_ref, fail, ffi_boundary, fill_sized, null_argument, struct_size,
    SizeTagged,
};
use crate::breaker::circuit_breaker;
use crate::events::circuit_userdata_free;
use crate::handle::{clone_shared, free_boxed, handle_of, new_boxed};
use crate::result::circuit_result;

/// Runs the active health probes of any number of breakers (see "Active
/// health probes" in the README). Created by `circuit_prober_new`, freed
/// by `circuit_prober_free`.
///
/// A breaker with a probe registered is due for one when it is OPEN and its
/// open deadline has passed (or HALF_OPEN with a probe slot free, or every
/// slot held past its lease), never under an override. The probe takes the
/// half-open permit through the ordinary acquire, so it *is* the half-open
/// probe: a success counts towards closing (and a ramp follows, if
/// configured), a failure re-opens with backoff and the next probe is due
/// at the new deadline.
///
/// Thread safety: every function taking a `const circuit_prober *` is safe
/// to call concurrently from any number of threads.
#[derive(Debug)]
pub struct circuit_prober {
    _opaque: [u8; 0],
}

handle_of!(circuit_prober => Boxed Prober);

/// Runs one probe on the prober's thread: check the dependency and return a
/// `circuit_outcome` code (`CIRCUIT_OUTCOME_SUCCESS` moves the breaker on,
/// `FAILURE` or `TIMEOUT` re-opens it; an unknown code counts as
/// `IGNORED`: the permit is released and nothing else changes).
/// `probe_id` is the id `circuit_prober_add` returned.
pub type circuit_probe_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, probe_id: u64) -> u32>;

/// A probe handed out by `circuit_prober_next`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct circuit_probe_due {
    /// Size of the struct in bytes (see `circuit_metrics` for the rule).
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// The probe (`circuit_prober_add`'s id): which breaker to check.
    pub probe_id: u64,
    /// This run of it: pass it to `circuit_prober_complete`.
    pub ticket: u64,
}

impl SizeTagged for circuit_probe_due {
    fn set_struct_size(&mut self, size: u32) {
        self.struct_size = size;
    }
}

/// The C callback and its userdata; the finalizer runs when the core drops
/// the probe function (removed, or the prober freed) after its last run.
struct CProbe {
    callback: unsafe extern "C" fn(*mut c_void, u64) -> u32,
    userdata: *mut c_void,
    finalizer: circuit_userdata_free,
    id: std::sync::OnceLock<u64>,
}

// SAFETY: `userdata` is only handed back to the caller's functions, whose
// contract (`circuit_prober_add`) makes them callable from any thread.
unsafe impl Send for CProbe {}
// SAFETY: as above; `CProbe` is not mutated after creation but for the
// `OnceLock`, which is itself `Sync`.
unsafe impl Sync for CProbe {}

impl CProbe {
    fn run(&self) -> Outcome {
        // The id is set as soon as `circuit_prober_add` has it; a probe due
        // at once may start a moment before.
        let id = *self.id.wait();
        // SAFETY: the caller's callback with its own `userdata`, callable
        // from any thread until the finalizer runs (contract).
        let code = crate::boundary::call_foreign(|| unsafe { (self.callback)(self.userdata, id) });
        // This thread is not inside an exported call: give back now what
        // the callback released (see `boundary::release`).
        crate::boundary::after_call();
        Outcome::from_u32(code).unwrap_or(Outcome::Ignored)
    }
}

impl Drop for CProbe {
    fn drop(&mut self) {
        if let Some(finalize) = self.finalizer {
            // SAFETY: the caller's finalizer, once, after the last run.
            // What it releases is given back by the exported call that
            // dropped the probe, or, on the prober's thread, after its next
            // run or when the thread ends.
            crate::boundary::call_foreign(|| unsafe { finalize(self.userdata) });
        }
    }
}

fn probe_error(e: ProbeError) -> circuit_result {
    let code = match e {
        ProbeError::UnknownProbe(_) | ProbeError::UnknownTicket(_) => circuit_result::NotFound,
        ProbeError::AlreadyRegistered(_) | ProbeError::Closed | ProbeError::InvalidOptions(_) => {
            circuit_result::InvalidArgument
        }
    };
    fail(code, e)
}

/// Creates a prober with no probes; `*out_prober` receives it, owned by
/// the caller (`circuit_prober_free`). No thread is started until a probe
/// with a callback is added.
///
/// # Safety
/// `out_prober` must be a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_prober_new(
    out_prober: *mut *mut circuit_prober,
) -> circuit_result {
    ffi_boundary! {
        let out = arg_out!(out_prober);
        out.write(new_boxed(Prober::new()));
        circuit_result::Ok
    }
}

/// Closes the prober (as `circuit_prober_close`), waits for its thread to
/// finish a probe in flight and stop, releases outstanding tickets as
/// `IGNORED`, runs the finalizers, and frees it. NULL does nothing.
///
/// # Safety
/// `prober` must be NULL or a prober from `circuit_prober_new` not yet
/// freed. It must not be called from a probe callback of this prober.
///
/// Thread safety: no other thread may be using this prober (close it,
/// then join the threads polling it, then free it).
#[no_mangle]
pub unsafe extern "C" fn circuit_prober_free(prober: *mut circuit_prober) {
    ffi_boundary! {
        // SAFETY: by contract NULL or a live prober, freed once.
        unsafe { free_boxed(prober) };
    }
}

/// Closes the prober: threads waiting in `circuit_prober_next` return
/// `CIRCUIT_RESULT_EMPTY` and later calls do too, `circuit_prober_add` is
/// refused, the callback thread stops, and runs in flight are released as
/// `IGNORED`. Idempotent.
///
/// # Safety
/// `prober` must be a live prober.
///
/// Thread safety: safe from any thread, but not from a probe callback.
#[no_mangle]
pub unsafe extern "C" fn circuit_prober_close(prober: *const circuit_prober) -> circuit_result {
    ffi_boundary! {
        let p = arg_ref!(prober);
        p.close();
        circuit_result::Ok
    }
}

/// Registers an active probe for `breaker`. `*out_probe_id` receives its id.
///
/// With a `callback`, the prober runs it on its own thread (started now if
/// needed) whenever the breaker is due, one probe at a time across the
/// prober; `finalizer(userdata)` (if not NULL) runs once when the probe is
/// removed or the prober freed, after the last run. The callback may call
/// any function of this library except closing or freeing this prober; it
/// must not unwind, and should bound its own time (use the breaker's
/// `probe_lease` as a budget: a probe that outlives it is released).
///
/// With `callback` NULL (then `userdata` and `finalizer` must be NULL), the
/// probe is handed out by `circuit_prober_next` to a thread of the host.
///
/// `min_interval_ns`: the least time from the end of one probe of this
/// breaker to the start of the next (0 allowed; at most 10 years).
///
/// The prober holds the breaker weakly: once every reference to it is
/// released it is no longer probed. (A registry frees a removed breaker
/// lazily, when its map reclaims the entry: remove the probe with the
/// breaker to stop it at once.) Returns `CIRCUIT_RESULT_INVALID_ARGUMENT`
/// when the breaker already has a probe in this prober, the prober is
/// closed, or an argument is out of range; nothing is registered then.
///
/// # Safety
/// `prober` and `breaker` must be live; `out_probe_id` a valid pointer;
/// `callback` and `finalizer` must be safe to call with `userdata` from any
/// thread until the finalizer has run.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_prober_add(
    prober: *const circuit_prober,
    breaker: *const circuit_breaker,
    min_interval_ns: u64,
    callback: circuit_probe_callback,
    userdata: *mut c_void,
    finalizer: circuit_userdata_free,
    out_probe_id: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let p = arg_ref!(prober);
        let _ = arg_ref!(breaker);
        let out = arg_out!(out_probe_id);
        // SAFETY: `breaker` is a live handle on which the caller holds a
        // reference (contract; non-NULL checked above).
        let Some(b) = (unsafe { clone_shared(breaker) }) else {
            return null_argument("breaker");
        };
        let options = ProbeOptions {
            min_interval: Duration::from_nanos(min_interval_ns),
        };
        let added = match callback {
            None if !userdata.is_null() || finalizer.is_some() => {
                return fail(
                    circuit_result::InvalidArgument,
                    "`userdata` and `finalizer` must be NULL without a callback",
                );
            }
            None => p.register(&b, options),
            Some(callback) => {
                let c = std::sync::Arc::new(CProbe {
                    callback,
                    userdata,
                    finalizer,
                    id: std::sync::OnceLock::new(),
                });
                let run = c.clone();
                let added = p.register_fn(&b, options, move || run.run());
                match &added {
                    Ok(id) => {
                        let _ = c.id.set(id.0);
                    }
                    // Refused: the finalizer must not run for userdata the
                    // caller still owns.
                    Err(_) => disarm(c),
                }
                added
            }
        };
        match added {
            Ok(id) => {
                out.write(id.0);
                circuit_result::Ok
            }
            Err(e) => probe_error(e),
        }
    }
}

/// Drops a refused registration's callback without running its finalizer.
fn disarm(c: std::sync::Arc<CProbe>) {
    if let Ok(mut c) = std::sync::Arc::try_unwrap(c) {
        c.finalizer = None;
    }
}

/// Removes a probe: a run in flight is released as `IGNORED` (its ticket is
/// no longer known), and its finalizer runs once no run of its callback is
/// going on. `CIRCUIT_RESULT_NOT_FOUND` for an unknown id.
///
/// # Safety
/// `prober` must be a live prober.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_prober_remove(
    prober: *const circuit_prober,
    probe_id: u64,
) -> circuit_result {
    ffi_boundary! {
        let p = arg_ref!(prober);
        match p.unregister(ProbeId(probe_id)) {
            Ok(()) => circuit_result::Ok,
            Err(e) => probe_error(e),
        }
    }
}

/// Waits up to `timeout_ns` nanoseconds (real time) for a probe added
/// without a callback to be due, takes its half-open permit, and returns
/// `CIRCUIT_RESULT_OK` with it in `*out_due` (set `out_due->struct_size`
/// first); `CIRCUIT_RESULT_EMPTY` on timeout or once the prober is closed.
/// Run the check, then `circuit_prober_complete(prober, due.ticket, ...)`.
/// A ticket not completed within the breaker's probe lease is released as
/// `IGNORED` and forgotten.
///
/// # Safety
/// `prober` must be a live prober; `out_due` must point to at least
/// `out_due->struct_size` writable bytes.
///
/// Thread safety: safe from any thread; any number of threads may wait.
#[no_mangle]
pub unsafe extern "C" fn circuit_prober_next(
    prober: *const circuit_prober,
    timeout_ns: u64,
    out_due: *mut circuit_probe_due,
) -> circuit_result {
    ffi_boundary! {
        let p = arg_ref!(prober);
        let out = arg_out!(out_due);
        let n = match struct_size(&out, "out_due") {
            Ok(n) => n,
            Err(code) => return code,
        };
        let Some(due) = p.next_due(Duration::from_nanos(timeout_ns)) else {
            return circuit_result::Empty;
        };
        let value = circuit_probe_due {
            struct_size: 0,
            reserved: 0,
            probe_id: due.probe.0,
            ticket: due.ticket.0,
        };
        fill_sized(out, value, n);
        circuit_result::Ok
    }
}

/// Completes a ticket from `circuit_prober_next` with the probe's outcome
/// (a `circuit_outcome` code), recorded as the breaker's half-open probe.
/// Returns `CIRCUIT_RESULT_OK`, `CIRCUIT_RESULT_STALE` (the breaker moved
/// on meanwhile: counted as stale only), `CIRCUIT_RESULT_NOT_FOUND` for a
/// ticket not outstanding (completed already, released after its lease,
/// its probe removed) or `CIRCUIT_RESULT_INVALID_ARGUMENT` for an unknown
/// outcome, in which case the ticket is still outstanding.
///
/// # Safety
/// `prober` must be a live prober.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_prober_complete(
    prober: *const circuit_prober,
    ticket: u64,
    outcome: u32,
) -> circuit_result {
    ffi_boundary! {
        let p = arg_ref!(prober);
        let outcome = arg_enum!(Outcome::from_u32, outcome);
        match p.complete(TicketId(ticket), outcome) {
            Ok(Recorded::Stale) => circuit_result::Stale,
            Ok(_) => circuit_result::Ok,
            Err(e) => probe_error(e),
        }
    }
}
