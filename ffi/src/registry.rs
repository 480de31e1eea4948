//! Registries of named breakers: get-or-create by name, lookup, removal,
//! iteration, idle eviction, Prometheus text.

use std::cell::RefCell;
use std::ffi::c_char;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use circuit_core::registry::DEFAULT_MAX_BREAKERS;
use circuit_core::{Breaker, Config, Registry, RegistryError, RegistryOptions};

use crate::boundary::{
    arg_mut, arg_out, arg_out_opt, arg_ref, arg_ref_opt, arg_str, fail, ffi_boundary, write_text,
};
use crate::breaker::circuit_breaker;
use crate::clock::{circuit_clock, time_source};
use crate::config::circuit_config;
use crate::handle::{free_boxed, free_shared, handle_of, lend, new_boxed, new_shared, share};
use crate::result::circuit_result;

/// A set of named breakers sharing a clock, per-name configs over defaults,
/// a hard cap on their number, and listeners.
///
/// Thread safety: every function taking a `const circuit_registry *` is safe
/// to call concurrently from any number of threads; lookups of existing
/// names are lock-free.
///
/// Breakers handed out by a registry are ordinary breaker references
/// (release each with `circuit_breaker_free`); they keep working after
/// being removed from the registry or after the registry is freed.
#[derive(Debug)]
pub struct circuit_registry {
    _opaque: [u8; 0],
}

handle_of!(circuit_registry => Shared FfiRegistry);

/// The registry behind a `circuit_registry` handle.
pub struct FfiRegistry {
    /// Distinguishes registries for the render cache (addresses are reused).
    id: u64,
    pub(crate) registry: Registry,
}

impl std::fmt::Debug for FfiRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfiRegistry").finish_non_exhaustive()
    }
}

static NEXT_REGISTRY: AtomicU64 = AtomicU64::new(1);

pub(crate) fn registry_error(e: RegistryError) -> circuit_result {
    let code = match e {
        RegistryError::EmptyName | RegistryError::NameTooLong { .. } => {
            circuit_result::InvalidArgument
        }
        RegistryError::LimitReached { .. } => circuit_result::LimitExceeded,
        RegistryError::InvalidConfig(_) => circuit_result::InvalidConfig,
        RegistryError::UnknownGroup => circuit_result::NotFound,
        RegistryError::InvalidGroupLimit(_) => circuit_result::InvalidArgument,
        RegistryError::SegmentFull { .. } => circuit_result::LimitExceeded,
        RegistryError::SegmentBusy => circuit_result::SegmentBusy,
        RegistryError::SegmentRefused(_) => circuit_result::SegmentInvalid,
    };
    fail(code, e)
}

/// Creates a registry. `defaults` is the config of names without their own
/// (NULL: the library's defaults); `max_breakers` the hard cap (0: one
/// million); `evict_after_idle_sweeps` how many consecutive
/// `circuit_registry_sweep_idle` calls must find a breaker idle (CLOSED, no
/// calls, referenced by nothing but the registry) before it is removed (0:
/// never); `clock` the breakers' clock (NULL: the monotonic clock). On
/// success `*out_registry` receives the registry, owned by the caller
/// (`circuit_registry_free`).
///
/// # Safety
/// `defaults` and `clock` must be NULL or live handles; `out_registry` a
/// valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_new(
    defaults: *const circuit_config,
    max_breakers: u64,
    evict_after_idle_sweeps: u32,
    clock: *const circuit_clock,
    out_registry: *mut *const circuit_registry,
) -> circuit_result {
    ffi_boundary! {
        let out = arg_out!(out_registry);
        let defaults = arg_ref_opt!(defaults).map_or_else(Config::default, |c| c.config.clone());
        let source = time_source(arg_ref_opt!(clock));
        let max = match max_breakers {
            0 => DEFAULT_MAX_BREAKERS,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let options = RegistryOptions {
            defaults,
            max_breakers: max,
            evict_after_idle_sweeps: (evict_after_idle_sweeps != 0).then_some(evict_after_idle_sweeps),
        };
        let registry = FfiRegistry {
            id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed),
            registry: Registry::with_clock(options, source),
        };
        out.write(new_shared(registry));
        circuit_result::Ok
    }
}

/// Creates a registry whose breakers live on `segment` (a host-shared
/// segment from `circuit_segment_open`): `circuit_registry_get_or_create`
/// of a name gives the segment's breaker of that name, shared by every
/// process of the host that opens the segment, and the registry's
/// listeners hear its transitions (those won by another process with
/// reason `CIRCUIT_REASON_REMOTE`, on this process's next call). The
/// breakers run the segment's config on the host's `CLOCK_MONOTONIC`;
/// `circuit_registry_set_config` with another config and
/// `circuit_registry_reconfigure` are refused with
/// `CIRCUIT_RESULT_INVALID_CONFIG`. Creating a breaker can also fail with
/// `CIRCUIT_RESULT_LIMIT_EXCEEDED` (every slot of the segment holds another
/// name), `_SEGMENT_BUSY` (a live process is still claiming the slot) or
/// `_SEGMENT_INVALID`. `max_breakers` and `evict_after_idle_sweeps` as in
/// `circuit_registry_new`. The registry keeps the segment mapped; the
/// caller still releases its own segment handle. On success
/// `*out_registry` receives the registry (`circuit_registry_free`).
///
/// # Safety
/// `segment` must be a live segment handle; `out_registry` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_new_on_segment(
    segment: *const crate::segment::circuit_segment,
    max_breakers: u64,
    evict_after_idle_sweeps: u32,
    out_registry: *mut *const circuit_registry,
) -> circuit_result {
    ffi_boundary! {
        let out = arg_out!(out_registry);
        // SAFETY: by contract NULL or a live segment handle.
        let Some(segment) = (unsafe { crate::handle::clone_shared(segment) }) else {
            return crate::boundary::null_argument("segment");
        };
        let max = match max_breakers {
            0 => DEFAULT_MAX_BREAKERS,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let options = RegistryOptions {
            defaults: (**segment.config()).clone(),
            max_breakers: max,
            evict_after_idle_sweeps: (evict_after_idle_sweeps != 0).then_some(evict_after_idle_sweeps),
        };
        match Registry::on_segment(segment, options) {
            Ok(registry) => {
                let registry = FfiRegistry {
                    id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed),
                    registry,
                };
                out.write(new_shared(registry));
                circuit_result::Ok
            }
            Err(e) => registry_error(e),
        }
    }
}

/// Frees a registry: it stops listing its breakers, and its listeners are
/// finalized once no breaker references them. Breakers the caller still
/// holds keep working. `circuit_registry_free(NULL)` does nothing. Inside
/// a callback the release is deferred as `circuit_breaker_free` describes.
///
/// # Safety
/// `registry` must be NULL or a live registry, not used afterwards.
///
/// Thread safety: no other thread may be using this registry.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_free(registry: *const circuit_registry) {
    ffi_boundary! {
        // SAFETY: by contract NULL or a registry from
        // `circuit_registry_new`, released once (event queues only hold weak
        // references); deferred inside a callback, as for breakers.
        unsafe { free_shared(registry) };
    }
}

/// Sets the config used when `name` (UTF-8, `name_len` bytes, 1 to
/// `CIRCUIT_NAME_MAX_LEN`) is next created; a breaker that already exists
/// keeps its config until removed.
///
/// # Safety
/// `registry` and `config` must be live handles; `name` must point to
/// `name_len` readable bytes.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_set_config(
    registry: *const circuit_registry,
    name: *const c_char,
    name_len: usize,
    config: *const circuit_config,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let name = arg_str!(name, name_len);
        let config = arg_ref!(config);
        match r.registry.set_config(name, config.config.clone()) {
            Ok(()) => circuit_result::Ok,
            Err(e) => registry_error(e),
        }
    }
}

/// The breaker named `name`, created from its config (or the defaults) if
/// missing. On success `*out_breaker` receives a new reference owned by the
/// caller (`circuit_breaker_free`). Errors: `INVALID_UTF8`,
/// `INVALID_ARGUMENT` (empty or longer than `CIRCUIT_NAME_MAX_LEN`),
/// `LIMIT_EXCEEDED` (the registry holds `max_breakers` already). Lock-free
/// when the breaker exists; at most one breaker is ever created per name.
///
/// # Safety
/// `registry` must be a live registry; `name` must point to `name_len`
/// readable bytes; `out_breaker` must be a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_get_or_create(
    registry: *const circuit_registry,
    name: *const c_char,
    name_len: usize,
    out_breaker: *mut *const circuit_breaker,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let name = arg_str!(name, name_len);
        let out = arg_out!(out_breaker);
        match r.registry.get_or_create(name) {
            Ok(b) => {
                out.write(share(b));
                circuit_result::Ok
            }
            Err(e) => registry_error(e),
        }
    }
}

/// The breaker named `name` if it exists (`CIRCUIT_RESULT_NOT_FOUND`
/// otherwise); on success `*out_breaker` receives a new reference owned by
/// the caller. Lock-free.
///
/// # Safety
/// As `circuit_registry_get_or_create`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_get(
    registry: *const circuit_registry,
    name: *const c_char,
    name_len: usize,
    out_breaker: *mut *const circuit_breaker,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let name = arg_str!(name, name_len);
        let out = arg_out!(out_breaker);
        match r.registry.get(name) {
            Some(b) => {
                out.write(share(b));
                circuit_result::Ok
            }
            None => fail(circuit_result::NotFound, format_args!("no breaker named {name:?}")),
        }
    }
}

/// Removes `name` from the registry (`CIRCUIT_RESULT_NOT_FOUND` if absent).
/// Holders of the breaker keep a working breaker the registry no longer
/// lists; a later `get_or_create` of the name creates a new one.
///
/// # Safety
/// `registry` must be a live registry; `name` must point to `name_len`
/// readable bytes.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_remove(
    registry: *const circuit_registry,
    name: *const c_char,
    name_len: usize,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let name = arg_str!(name, name_len);
        if r.registry.remove(name) {
            circuit_result::Ok
        } else {
            fail(circuit_result::NotFound, format_args!("no breaker named {name:?}"))
        }
    }
}

/// Writes to `*out_len` the number of breakers in the registry.
///
/// # Safety
/// `registry` must be a live registry, `out_len` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_len(
    registry: *const circuit_registry,
    out_len: *mut usize,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let out = arg_out!(out_len);
        out.write(r.registry.len());
        circuit_result::Ok
    }
}

/// One idle-eviction sweep (see `circuit_registry_new`); `*out_removed`
/// (optional, may be NULL) receives how many breakers it removed.
///
/// # Safety
/// `registry` must be a live registry; `out_removed` NULL or a valid
/// pointer.
///
/// Thread safety: safe from any thread (sweeps are serialised; calls and
/// lookups never wait for them).
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_sweep_idle(
    registry: *const circuit_registry,
    out_removed: *mut usize,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let removed = r.registry.sweep_idle();
        if let Some(out) = arg_out_opt!(out_removed) {
            out.write(removed);
        }
        circuit_result::Ok
    }
}

// ----- iteration --------------------------------------------------------------

/// A snapshot of a registry's breakers, sorted by name, walked with
/// `circuit_registry_iter_next`. Breakers added or removed after its
/// creation are not reflected.
///
/// Thread safety: not thread-safe (its functions take a non-const pointer);
/// use one iterator from one thread at a time.
#[derive(Debug)]
pub struct circuit_registry_iter {
    _opaque: [u8; 0],
}

handle_of!(circuit_registry_iter => Boxed FfiIter);

/// The snapshot behind a `circuit_registry_iter` handle.
pub struct FfiIter {
    /// Names with a trailing NUL, and their breakers.
    items: Vec<(Box<[u8]>, Arc<Breaker>)>,
    next: usize,
}

impl std::fmt::Debug for FfiIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfiIter").finish_non_exhaustive()
    }
}

/// Takes a snapshot of the registry's breakers for iteration. On success
/// `*out_iter` receives it, owned by the caller
/// (`circuit_registry_iter_free`).
///
/// # Safety
/// `registry` must be a live registry, `out_iter` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_iter_new(
    registry: *const circuit_registry,
    out_iter: *mut *mut circuit_registry_iter,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let out = arg_out!(out_iter);
        let items = r
            .registry
            .sorted()
            .into_iter()
            .map(|(name, b)| {
                let mut bytes = Vec::with_capacity(name.len() + 1);
                bytes.extend_from_slice(name.as_bytes());
                bytes.push(0);
                (bytes.into_boxed_slice(), b)
            })
            .collect();
        out.write(new_boxed(FfiIter { items, next: 0 }));
        circuit_result::Ok
    }
}

/// Moves to the next breaker: `CIRCUIT_RESULT_OK` with its NUL-terminated
/// name in `*out_name` (length in `*out_name_len`) and the breaker in
/// `*out_breaker`, or `CIRCUIT_RESULT_EMPTY` after the last one. Each output
/// pointer may be NULL when not wanted. The name and the breaker are
/// borrowed from the iterator: valid until it is freed
/// (`circuit_breaker_retain` the breaker to keep it longer).
///
/// # Safety
/// `iter` must be a live iterator; each output pointer NULL or valid.
///
/// Thread safety: not thread-safe (see `circuit_registry_iter`).
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_iter_next(
    iter: *mut circuit_registry_iter,
    out_name: *mut *const c_char,
    out_name_len: *mut usize,
    out_breaker: *mut *const circuit_breaker,
) -> circuit_result {
    ffi_boundary! {
        let it = arg_mut!(iter);
        let Some((name, breaker)) = it.items.get(it.next) else {
            return circuit_result::Empty;
        };
        it.next += 1;
        if let Some(out) = arg_out_opt!(out_name) {
            out.write(name.as_ptr().cast());
        }
        if let Some(out) = arg_out_opt!(out_name_len) {
            out.write(name.len() - 1);
        }
        if let Some(out) = arg_out_opt!(out_breaker) {
            out.write(lend(breaker));
        }
        circuit_result::Ok
    }
}

/// Frees an iterator (and the references it holds).
/// `circuit_registry_iter_free(NULL)` does nothing.
///
/// # Safety
/// `iter` must be NULL or an iterator from this library not yet freed;
/// names and breakers borrowed from it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_iter_free(iter: *mut circuit_registry_iter) {
    ffi_boundary! {
        // SAFETY: by contract NULL or an iterator from
        // `circuit_registry_iter_new`, freed once.
        unsafe { free_boxed(iter) };
    }
}

// ----- Prometheus -------------------------------------------------------------

thread_local! {
    /// The text of this thread's last render that did not fit, by registry
    /// id: the retry with a buffer of the announced size gets exactly it.
    static RENDERED: RefCell<Option<(u64, String)>> = const { RefCell::new(None) };
}

/// Renders the metrics of every breaker in the registry in the Prometheus
/// text exposition format (0.0.4) into `buf`, NUL-terminated, under the
/// required-length protocol: `CIRCUIT_RESULT_OK` with the text's length in
/// `*out_len`, or `CIRCUIT_RESULT_BUFFER_TOO_SMALL` with the length needed
/// (without the NUL) in `*out_len` and nothing written. `buf` may be NULL
/// when `buf_len` is 0. The text announced by `BUFFER_TOO_SMALL` is kept for
/// the calling thread, so the next call from that thread with a buffer of
/// at least `*out_len + 1` bytes succeeds and returns exactly that text
/// (counters do not move between the two calls).
///
/// # Safety
/// `registry` must be a live registry; `buf` NULL (with `buf_len` 0) or
/// writable for `buf_len` bytes; `out_len` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_render_prometheus(
    registry: *const circuit_registry,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let out_len = arg_out!(out_len);
        let cached = RENDERED
            .try_with(|c| c.borrow_mut().take())
            .ok()
            .flatten()
            .filter(|(id, _)| *id == r.id)
            .map(|(_, text)| text);
        let text = cached.unwrap_or_else(|| circuit_core::prometheus::render_registry(&r.registry));
        // SAFETY: `buf`/`buf_len` are passed on under this function's
        // contract.
        let result = unsafe { write_text(&text, buf, buf_len, out_len) };
        if result == circuit_result::BufferTooSmall {
            let _ = RENDERED.try_with(|c| *c.borrow_mut() = Some((r.id, text)));
        }
        result
    }
}
