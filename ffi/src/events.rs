//! Transition events: callbacks and pollable queues, on breakers and on
//! registries.

use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use circuit_core::events::DEFAULT_EVENT_QUEUE;
use circuit_core::registry::MAX_NAME_LEN;
use circuit_core::{Breaker, Event, EventQueue, Listener, ListenerId, Reason, Transition};

use crate::boundary::{
    arg_out, arg_ref, copy_text, fail, ffi_boundary, fill_sized, null_argument, struct_size,
    SizeTagged,
};
use crate::breaker::{circuit_breaker, state_code};
use crate::handle::{clone_shared, free_boxed, handle_of, new_boxed};
use crate::registry::{circuit_registry, FfiRegistry};
use crate::result::circuit_result;

/// Longest breaker name in bytes (registry names; events carry them).
pub const CIRCUIT_NAME_MAX_LEN: usize = 1024;
const _: () = assert!(CIRCUIT_NAME_MAX_LEN == MAX_NAME_LEN);

/// Capacity the wrappers give an event queue when their user gives none.
pub const CIRCUIT_EVENT_QUEUE_DEFAULT_CAPACITY: usize = 1024;
const _: () = assert!(CIRCUIT_EVENT_QUEUE_DEFAULT_CAPACITY == DEFAULT_EVENT_QUEUE);

/// Why a transition happened (`circuit_event.reason`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum circuit_reason {
    /// Consecutive failures reached the threshold.
    ConsecutiveFailures = 0,
    /// The window's failure rate reached the threshold.
    FailureRate = 1,
    /// The window's slow-call rate reached the threshold.
    SlowCallRate = 2,
    /// The EWMA failure rate reached the threshold.
    EwmaFailureRate = 3,
    /// A half-open probe failed (or was slow under the slow-call policy).
    ProbeFailed = 4,
    /// Enough half-open probes succeeded.
    ProbesSucceeded = 5,
    /// The open deadline passed and a call arrived.
    OpenDeadlinePassed = 6,
    /// Every probe slot was held past its lease; the slots were freed.
    ProbeLeaseExpired = 7,
    /// An operator set an override.
    OverrideSet = 8,
    /// An operator cleared the override.
    OverrideCleared = 9,
    /// The override's expiry passed.
    OverrideExpired = 10,
    /// An operator reset the breaker.
    Reset = 11,
    /// METRICS_ONLY: a policy would have tripped (dry run).
    ShadowTrip = 12,
    /// Applied from another instance (fleet sync).
    Remote = 13,
    /// Restored from a snapshot (`circuit_breaker_restore`).
    Restored = 14,
}

fn reason_code(r: Reason) -> u32 {
    r as u32
}

/// One transition of a breaker (B7).
///
/// Delivered to callbacks as `const circuit_event *` (valid only during the
/// call; `struct_size` tells which fields this library fills) and by
/// `circuit_event_queue_poll` into the caller's struct (set `struct_size`
/// first).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct circuit_event {
    /// Size of the struct in bytes (see `circuit_metrics` for the rule).
    pub struct_size: u32,
    /// `circuit_state` code before.
    pub from: u32,
    /// `circuit_state` code after.
    pub to: u32,
    /// `circuit_reason` code.
    pub reason: u32,
    /// Generation after the transition.
    pub generation: u32,
    /// Zero.
    pub reserved: u32,
    /// Clock reading (nanoseconds) of the thread that made the transition.
    pub at_ns: u64,
    /// For a transition to OPEN, the open duration chosen; otherwise 0.
    pub open_for_ns: u64,
    /// The breaker's name, NUL-terminated ("" for an unnamed breaker). In a
    /// callback it is valid during the call only; after a poll it points
    /// into the caller's name buffer.
    pub name: *const c_char,
    /// Length of `name` in bytes, without the NUL.
    pub name_len: usize,
}

impl SizeTagged for circuit_event {
    fn set_struct_size(&mut self, size: u32) {
        self.struct_size = size;
    }
}

impl circuit_event {
    fn new(t: &Transition, name: *const c_char, name_len: usize) -> Self {
        circuit_event {
            struct_size: std::mem::size_of::<circuit_event>() as u32,
            from: state_code(t.from),
            to: state_code(t.to),
            reason: reason_code(t.reason),
            generation: t.generation,
            reserved: 0,
            at_ns: t.at,
            open_for_ns: t.open_for,
            name,
            name_len,
        }
    }
}

/// Called on every transition of the breaker (or registry) it is added to,
/// on the thread that won the transition, after the new state is published
/// and with no lock held. `userdata` is the pointer given when adding it;
/// `event` is valid during the call only.
pub type circuit_event_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const circuit_event)>;

/// Called exactly once with the `userdata` of a removed (or destroyed)
/// listener, when no call of its callback can still be running or start.
pub type circuit_userdata_free = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Live C listeners: the id handed to C -> the core's id. An entry lives
/// exactly as long as its listener (removed by its `Drop`). Only adding and
/// removing listeners take this lock; transitions never do.
static LISTENERS: LazyLock<Mutex<HashMap<u64, ListenerId>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn listeners() -> std::sync::MutexGuard<'static, HashMap<u64, ListenerId>> {
    // The lock guards a plain map and is never held across foreign code, so
    // a poisoned lock still holds a consistent map.
    LISTENERS.lock().unwrap_or_else(|e| e.into_inner())
}

struct CListener {
    id: u64,
    callback: unsafe extern "C" fn(*mut c_void, *const circuit_event),
    userdata: *mut c_void,
    finalizer: circuit_userdata_free,
}

// SAFETY: `userdata` is only handed back to the caller's functions; the
// contract of `circuit_breaker_add_listener` requires the callback and the
// finalizer to accept it from any thread (the header says so).
unsafe impl Send for CListener {}
// SAFETY: as above; `CListener` itself is never mutated after creation.
unsafe impl Sync for CListener {}

impl Listener for CListener {
    fn on_transition(&self, breaker: &Arc<str>, transition: &Transition) {
        // A NUL-terminated copy of the name on the stack (names are at most
        // CIRCUIT_NAME_MAX_LEN bytes; transitions are rare).
        let mut name = [0u8; MAX_NAME_LEN + 1];
        let bytes = breaker.as_bytes();
        let n = bytes.len().min(MAX_NAME_LEN);
        name[..n].copy_from_slice(&bytes[..n]);
        let event = circuit_event::new(transition, name.as_ptr().cast(), n);
        // SAFETY: the callback and `userdata` come from the caller, whose
        // contract makes them callable from any thread until the finalizer
        // runs; `event` outlives the call.
        crate::boundary::call_foreign(|| unsafe { (self.callback)(self.userdata, &event) })
    }
}

impl Drop for CListener {
    fn drop(&mut self) {
        // Not under the map's lock: `remove` takes the entry out and lets
        // go of the lock before the core drops the listener.
        listeners().remove(&self.id);
        if let Some(finalize) = self.finalizer {
            // SAFETY: the caller's finalizer, called once with its own
            // `userdata`, after the last use of the callback (the core drops
            // a listener only when no emission holds it).
            crate::boundary::call_foreign(|| unsafe { finalize(self.userdata) })
        }
    }
}

/// Where listeners are added: a breaker or a registry.
enum Target<'a> {
    Breaker(&'a Breaker),
    Registry(&'a FfiRegistry),
}

impl Target<'_> {
    fn add(&self, l: Arc<dyn Listener>) -> ListenerId {
        match self {
            Target::Breaker(b) => b.add_listener(l),
            Target::Registry(r) => r.registry.add_listener(l),
        }
    }
    fn remove(&self, id: ListenerId) -> bool {
        match self {
            Target::Breaker(b) => b.remove_listener(id),
            Target::Registry(r) => r.registry.remove_listener(id),
        }
    }
}

fn add_listener(
    target: Target<'_>,
    callback: circuit_event_callback,
    userdata: *mut c_void,
    finalizer: circuit_userdata_free,
    out_id: crate::boundary::Out<'_, u64>,
) -> circuit_result {
    let Some(callback) = callback else {
        return null_argument("callback");
    };
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let listener = Arc::new(CListener {
        id,
        callback,
        userdata,
        finalizer,
    });
    let core_id = target.add(listener);
    listeners().insert(id, core_id);
    out_id.write(id);
    circuit_result::Ok
}

fn remove_listener(target: Target<'_>, id: u64) -> circuit_result {
    let Some(core_id) = listeners().remove(&id) else {
        return fail(circuit_result::NotFound, format_args!("no listener {id}"));
    };
    // The map's lock is released: dropping the listener (which may happen
    // inside `remove`) takes it again and runs the finalizer.
    if target.remove(core_id) {
        circuit_result::Ok
    } else {
        // Another breaker's (or registry's) listener: put it back.
        listeners().insert(id, core_id);
        fail(
            circuit_result::NotFound,
            format_args!("listener {id} is not registered here"),
        )
    }
}

/// Calls `callback(userdata, event)` on every transition of `breaker`, and
/// `finalizer(userdata)` (if not NULL) once the listener is removed or the
/// breaker destroyed. `*out_listener_id` receives an id for
/// `circuit_breaker_remove_listener`.
///
/// The callback runs on the thread that won the transition (a thread inside
/// `acquire`, `record`, `force`, `reset`, ...), after the new state is
/// published, holding no lock. It is reentrant: it may call any function of
/// this library, this breaker's included (acquire, state, metrics, force,
/// adding or removing listeners, releasing a reference to it: a release
/// inside a callback takes effect when the call that ran the callback
/// returns, see `circuit_breaker_free`). A transition it causes invokes the
/// callbacks again, nested, on the same thread. It must not unwind (no C++
/// exception or longjmp out of it) and should return quickly: it delays the
/// caller of the call that made the transition. Listeners (callbacks and
/// event queues alike) are called in the order they were added; a
/// breaker's own listeners run before those of its registry.
///
/// Ownership: the library keeps `userdata` until it calls the finalizer;
/// the finalizer runs on the thread that drops the listener (the remover,
/// the thread finishing the last running callback, or the one releasing the
/// breaker), after the last call of the callback. It may run while the
/// breaker is being destroyed, so it must not use the breaker.
///
/// # Safety
/// `breaker` must be a live breaker and `out_listener_id` a valid pointer;
/// `callback` and `finalizer` must be safe to call with `userdata` from any
/// thread until the finalizer has run.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_add_listener(
    breaker: *const circuit_breaker,
    callback: circuit_event_callback,
    userdata: *mut c_void,
    finalizer: circuit_userdata_free,
    out_listener_id: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out = arg_out!(out_listener_id);
        add_listener(Target::Breaker(b), callback, userdata, finalizer, out)
    }
}

/// Removes a listener added with `circuit_breaker_add_listener`; its
/// finalizer runs once no call of its callback is running (possibly before
/// this returns). `CIRCUIT_RESULT_NOT_FOUND` for an unknown id or a listener
/// of another breaker.
///
/// # Safety
/// `breaker` must be a live breaker.
///
/// Thread safety: safe from any thread, including from inside a callback.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_remove_listener(
    breaker: *const circuit_breaker,
    listener_id: u64,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        remove_listener(Target::Breaker(b), listener_id)
    }
}

/// As `circuit_breaker_add_listener`, for the transitions of every breaker
/// of `registry` (present and future). The event's `name` tells which.
///
/// # Safety
/// As `circuit_breaker_add_listener`, with `registry` a live registry.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_add_listener(
    registry: *const circuit_registry,
    callback: circuit_event_callback,
    userdata: *mut c_void,
    finalizer: circuit_userdata_free,
    out_listener_id: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let out = arg_out!(out_listener_id);
        add_listener(Target::Registry(r), callback, userdata, finalizer, out)
    }
}

/// Removes a listener added with `circuit_registry_add_listener`.
///
/// # Safety
/// `registry` must be a live registry.
///
/// Thread safety: safe from any thread, including from inside a callback.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_remove_listener(
    registry: *const circuit_registry,
    listener_id: u64,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        remove_listener(Target::Registry(r), listener_id)
    }
}

// ----- queues ------------------------------------------------------------------

/// A bounded queue of transition events that the host polls
/// (`circuit_event_queue_poll`), fed by one breaker or by every breaker of a
/// registry. When it is full new events are dropped and counted
/// (`circuit_event_queue_dropped`); feeding it never blocks a call.
///
/// Thread safety: every function taking a `const circuit_event_queue *` is
/// safe from any thread; several threads may poll one queue.
#[derive(Debug)]
pub struct circuit_event_queue {
    _opaque: [u8; 0],
}

handle_of!(circuit_event_queue => Boxed FfiQueue);

enum Source {
    Breaker(Weak<Breaker>),
    Registry(Weak<FfiRegistry>),
}

/// The queue behind a `circuit_event_queue` handle.
pub struct FfiQueue {
    queue: Arc<EventQueue>,
    source: Source,
    id: ListenerId,
    /// An event whose name did not fit the caller's buffer, returned first
    /// by the next poll.
    pending: Mutex<Option<Event>>,
}

impl std::fmt::Debug for FfiQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfiQueue").finish_non_exhaustive()
    }
}

impl Drop for FfiQueue {
    fn drop(&mut self) {
        // Detach from the source if it still exists.
        match &self.source {
            Source::Breaker(w) => {
                if let Some(b) = w.upgrade() {
                    b.remove_listener(self.id);
                }
            }
            Source::Registry(w) => {
                if let Some(r) = w.upgrade() {
                    r.registry.remove_listener(self.id);
                }
            }
        }
    }
}

/// A weak reference from a strong one taken for the purpose (dropped here).
fn downgrade<T>(strong: Option<Arc<T>>) -> Weak<T> {
    strong.as_ref().map_or_else(Weak::new, Arc::downgrade)
}

fn new_queue(capacity: usize) -> Result<Arc<EventQueue>, circuit_result> {
    EventQueue::new(capacity)
        .map(Arc::new)
        .map_err(|e| fail(circuit_result::InvalidArgument, e))
}

/// Creates a queue of up to `capacity` events (1 to 1,048,576) fed by
/// `breaker`. On success `*out_queue` receives it, owned by the caller
/// (`circuit_event_queue_free`). The queue does not keep the breaker alive.
///
/// # Safety
/// `breaker` must be a live breaker, `out_queue` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_event_queue_new(
    breaker: *const circuit_breaker,
    capacity: usize,
    out_queue: *mut *mut circuit_event_queue,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out = arg_out!(out_queue);
        let queue = match new_queue(capacity) {
            Ok(q) => q,
            Err(code) => return code,
        };
        // SAFETY: `breaker` is a live handle on which the caller holds a
        // reference (contract; non-NULL checked above).
        let weak = downgrade(unsafe { clone_shared(breaker) });
        let id = b.add_listener(queue.clone());
        out.write(new_boxed(FfiQueue {
            queue,
            source: Source::Breaker(weak),
            id,
            pending: Mutex::new(None),
        }));
        circuit_result::Ok
    }
}

/// As `circuit_breaker_event_queue_new`, fed by every breaker of `registry`
/// (present and future).
///
/// # Safety
/// `registry` must be a live registry, `out_queue` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_event_queue_new(
    registry: *const circuit_registry,
    capacity: usize,
    out_queue: *mut *mut circuit_event_queue,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let out = arg_out!(out_queue);
        let queue = match new_queue(capacity) {
            Ok(q) => q,
            Err(code) => return code,
        };
        // SAFETY: as in `circuit_breaker_event_queue_new`.
        let weak = downgrade(unsafe { clone_shared(registry) });
        let id = r.registry.add_listener(queue.clone());
        out.write(new_boxed(FfiQueue {
            queue,
            source: Source::Registry(weak),
            id,
            pending: Mutex::new(None),
        }));
        circuit_result::Ok
    }
}

/// Detaches the queue from its breaker or registry and frees it, with any
/// events still in it. `circuit_event_queue_free(NULL)` does nothing.
///
/// # Safety
/// `queue` must be NULL or a queue from this library not yet freed.
///
/// Thread safety: no other thread may be using this queue.
#[no_mangle]
pub unsafe extern "C" fn circuit_event_queue_free(queue: *mut circuit_event_queue) {
    ffi_boundary! {
        // SAFETY: by contract NULL or a queue from one of the constructors
        // above, freed once.
        unsafe { free_boxed(queue) };
    }
}

/// Takes the oldest event. Returns `CIRCUIT_RESULT_OK` with the event in
/// `*out_event` (set `out_event->struct_size` first) and its breaker's name
/// copied, NUL-terminated, into `name_buf` (`out_event->name` points
/// there, `*out_name_len` receives its length); `CIRCUIT_RESULT_EMPTY`
/// when no event waits; or `CIRCUIT_RESULT_BUFFER_TOO_SMALL` when the name
/// and its NUL do not fit in `name_buf_len` bytes: then nothing is written
/// but `*out_name_len`, and the event stays first in line for the next poll.
/// A buffer of `CIRCUIT_NAME_MAX_LEN + 1` bytes always fits.
///
/// # Safety
/// `queue` must be a live queue; `out_event` must point to at least
/// `out_event->struct_size` writable bytes; `name_buf` must be NULL (with
/// `name_buf_len` 0) or writable for `name_buf_len` bytes; `out_name_len`
/// must be a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_event_queue_poll(
    queue: *const circuit_event_queue,
    out_event: *mut circuit_event,
    name_buf: *mut c_char,
    name_buf_len: usize,
    out_name_len: *mut usize,
) -> circuit_result {
    ffi_boundary! {
        let q = arg_ref!(queue);
        let out_event = arg_out!(out_event);
        let out_name_len = arg_out!(out_name_len);
        if name_buf.is_null() && name_buf_len != 0 {
            return null_argument("name_buf");
        }
        let n = match struct_size(&out_event, "out_event") {
            Ok(n) => n,
            Err(code) => return code,
        };
        // The lock orders pollers of this queue; the queue itself is
        // lock-free for the breakers feeding it.
        let mut pending = q.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(event) = pending.take().or_else(|| q.queue.poll()) else {
            return circuit_result::Empty;
        };
        let name = event.breaker.as_bytes();
        if name_buf.is_null() || name_buf_len <= name.len() {
            out_name_len.write(name.len());
            *pending = Some(event);
            return circuit_result::BufferTooSmall;
        }
        drop(pending);
        // SAFETY: `name_buf` is non-NULL and writable for
        // `name_buf_len > name.len()` bytes (contract, checked above).
        unsafe { copy_text(name, name_buf) };
        let e = circuit_event::new(&event.transition, name_buf, name.len());
        fill_sized(out_event, e, n);
        out_name_len.write(name.len());
        circuit_result::Ok
    }
}

/// Writes to `*out_len` the number of events waiting.
///
/// # Safety
/// `queue` must be a live queue, `out_len` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_event_queue_len(
    queue: *const circuit_event_queue,
    out_len: *mut usize,
) -> circuit_result {
    ffi_boundary! {
        let q = arg_ref!(queue);
        let out = arg_out!(out_len);
        let pending = usize::from(q.pending.lock().unwrap_or_else(|e| e.into_inner()).is_some());
        out.write(q.queue.len() + pending);
        circuit_result::Ok
    }
}

/// Writes to `*out_dropped` how many events were dropped because the queue
/// was full.
///
/// # Safety
/// `queue` must be a live queue, `out_dropped` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_event_queue_dropped(
    queue: *const circuit_event_queue,
    out_dropped: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let q = arg_ref!(queue);
        let out = arg_out!(out_dropped);
        out.write(q.queue.dropped());
        circuit_result::Ok
    }
}

/// The lower-case name of a `circuit_reason` code (for example
/// `"consecutive_failures"`), as a static NUL-terminated string; `"unknown"`
/// for any other value. Never NULL; do not free it.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn circuit_reason_str(reason: u32) -> *const c_char {
    ffi_boundary! {
        match Reason::ALL.get(reason as usize) {
            Some(r) => reason_cstr(*r).as_ptr(),
            None => c"unknown".as_ptr(),
        }
    }
}

fn reason_cstr(r: Reason) -> &'static std::ffi::CStr {
    match r {
        Reason::ConsecutiveFailures => c"consecutive_failures",
        Reason::FailureRate => c"failure_rate",
        Reason::SlowCallRate => c"slow_call_rate",
        Reason::EwmaFailureRate => c"ewma_failure_rate",
        Reason::ProbeFailed => c"probe_failed",
        Reason::ProbesSucceeded => c"probes_succeeded",
        Reason::OpenDeadlinePassed => c"open_deadline_passed",
        Reason::ProbeLeaseExpired => c"probe_lease_expired",
        Reason::OverrideSet => c"override_set",
        Reason::OverrideCleared => c"override_cleared",
        Reason::OverrideExpired => c"override_expired",
        Reason::Reset => c"reset",
        Reason::ShadowTrip => c"shadow_trip",
        Reason::Remote => c"remote",
        Reason::Restored => c"restored",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_match_the_core() {
        let c = [
            circuit_reason::ConsecutiveFailures,
            circuit_reason::FailureRate,
            circuit_reason::SlowCallRate,
            circuit_reason::EwmaFailureRate,
            circuit_reason::ProbeFailed,
            circuit_reason::ProbesSucceeded,
            circuit_reason::OpenDeadlinePassed,
            circuit_reason::ProbeLeaseExpired,
            circuit_reason::OverrideSet,
            circuit_reason::OverrideCleared,
            circuit_reason::OverrideExpired,
            circuit_reason::Reset,
            circuit_reason::ShadowTrip,
            circuit_reason::Remote,
            circuit_reason::Restored,
        ];
        assert_eq!(c.len(), Reason::ALL.len());
        for (c, r) in c.iter().zip(Reason::ALL) {
            assert_eq!(*c as u32, reason_code(r));
            assert_eq!(reason_cstr(r).to_str().unwrap(), r.as_str());
        }
    }
}
