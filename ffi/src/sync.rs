//! Fleet sync through Redis (`circuit-sync`): start a worker for a
//! registry, read its status, stop it. The worker runs on threads of its
//! own; nothing here is on the call path.
//!
//! Without the `sync` feature (the slim library) the same functions are
//! exported with the same signatures: they check their arguments as usual,
//! then return `CIRCUIT_RESULT_NOT_BUILT`. The header is the same for both
//! builds.

use std::ffi::c_char;

#[cfg(feature = "sync")]
use ::circuit_sync::{
    FleetPolicy, FleetSync, Quorum, RegistryOwner, SyncConfig, SyncError, SyncHandle, SyncStatus,
};
#[cfg(feature = "sync")]
use circuit_core::Registry;

use crate::boundary::{arg_out, arg_ref, arg_str, fail, ffi_boundary, SizeTagged};
#[cfg(feature = "sync")]
use crate::boundary::{fill_sized, null_argument, struct_size, write_text};
#[cfg(feature = "sync")]
use crate::handle::{clone_shared, new_boxed};
use crate::handle::{free_boxed, Boxed, Handle};
use crate::registry::circuit_registry;
#[cfg(feature = "sync")]
use crate::registry::FfiRegistry;
use crate::result::circuit_result;

#[cfg(feature = "sync")]
impl RegistryOwner for FfiRegistry {
    fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// The answer of every sync function in a library built without `sync`.
#[cfg(not(feature = "sync"))]
fn not_built(function: &str) -> circuit_result {
    fail(
        circuit_result::NotBuilt,
        format_args!(
            "{function}: this libcircuit was built without fleet sync (the slim \
             library; circuit_features() lacks CIRCUIT_FEATURE_SYNC)"
        ),
    )
}

/// A fleet sync worker attached to one registry: it publishes the
/// registry's transitions to Redis and applies the other instances' (see
/// `circuit_sync_start`).
///
/// Thread safety: every function taking a `const circuit_sync *` is safe to
/// call concurrently from any number of threads.
#[derive(Debug)]
pub struct circuit_sync {
    _opaque: [u8; 0],
}

impl Handle for circuit_sync {
    #[cfg(feature = "sync")]
    type Rust = SyncHandle;
    /// The slim library never creates a worker.
    #[cfg(not(feature = "sync"))]
    type Rust = NotBuilt;
    type Ownership = Boxed;
}

/// What a `circuit_sync` handle points to in the slim library, which never
/// creates one: a zero-sized value, so that a reference made from any
/// non-NULL pointer the host passes is still a valid Rust reference (the
/// call then answers `CIRCUIT_RESULT_NOT_BUILT` without reading it).
#[cfg(not(feature = "sync"))]
#[derive(Debug)]
pub struct NotBuilt(());

/// `circuit_sync_stats.state`: subscribed, reconciled, writes accepted.
pub const CIRCUIT_SYNC_CONNECTED: u32 = 0;
/// `circuit_sync_stats.state`: deciding alone (Redis unreachable, refusing
/// writes, or the subscription failed); catches up when Redis is back.
pub const CIRCUIT_SYNC_DEGRADED: u32 = 1;
/// `circuit_sync_stats.state`: stopped by `circuit_sync_stop`.
pub const CIRCUIT_SYNC_STOPPED: u32 = 2;

/// A snapshot of a sync worker's status and counters, filled by
/// `circuit_sync_status`.
///
/// Forward compatible like `circuit_metrics`: set `struct_size` to
/// `sizeof(circuit_sync_stats)` before the call; the library fills at most
/// that many bytes and writes back how many it filled.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct circuit_sync_stats {
    /// In: size of the caller's struct in bytes. Out: bytes filled.
    pub struct_size: u32,
    /// `CIRCUIT_SYNC_CONNECTED`, `CIRCUIT_SYNC_DEGRADED` or
    /// `CIRCUIT_SYNC_STOPPED`.
    pub state: u32,
    /// Local transitions and operator actions written to Redis.
    pub published: u64,
    /// Remote states applied to local breakers.
    pub applied: u64,
    /// Notices not newer than what was already applied.
    pub stale_ignored: u64,
    /// Notices and records that failed validation.
    pub malformed_ignored: u64,
    /// Notices about breakers not registered here (never created from a
    /// message).
    pub unknown_ignored: u64,
    /// Writes the server refused (stale version, running open window,
    /// operator override) whose record was adopted instead.
    pub refused: u64,
    /// Reconnects after a lost connection.
    pub reconnects: u64,
    /// Local transitions waiting to be written.
    pub pending: u64,
    /// Malformed records in Redis that the write script replaced (planted
    /// or damaged content; each one is a new record). Filled only when
    /// `struct_size` covers it.
    pub repaired: u64,
    /// Quorum votes this instance wrote that did not reach the quorum (the
    /// breaker stayed open here only; see `circuit_sync_set_fleet_policy`).
    /// Filled only when `struct_size` covers it.
    pub votes: u64,
    /// Fleet config records (written by `circuit configure`) applied to
    /// local breakers. Filled only when `struct_size` covers it.
    pub configs_applied: u64,
    /// Fleet config records that failed validation or that the breaker
    /// refused (nothing changed). Filled only when `struct_size` covers it.
    pub configs_refused: u64,
}

impl SizeTagged for circuit_sync_stats {
    fn set_struct_size(&mut self, size: u32) {
        self.struct_size = size;
    }
}

#[cfg(feature = "sync")]
fn sync_error(e: SyncError) -> circuit_result {
    match e {
        SyncError::Config(_) => fail(circuit_result::InvalidConfig, e),
        SyncError::Redis(_) => fail(circuit_result::InvalidArgument, e),
    }
}

/// Starts fleet sync for `registry`: a worker thread and a subscriber
/// thread that share the registry's transitions through Redis at `url`
/// (UTF-8, `url_len` bytes: `redis://[user[:password]@]host[:port][/db]`,
/// or several such URLs separated by commas for a Redis Cluster) in the
/// fleet namespace `namespace` (`[A-Za-z0-9._-]{1,64}`), with the library's
/// defaults (reconcile every 30 s, 250 ms subscriber read timeout, 1 s
/// command timeout, reconnects backing off from 100 ms to 5 s).
///
/// In a library built without fleet sync (the slim library, see
/// `circuit_features`) this returns `CIRCUIT_RESULT_NOT_BUILT` once the
/// arguments are checked, and writes nothing.
///
/// Returns at once: an unreachable Redis is not an error (the status is
/// DEGRADED until it answers, and breakers decide alone meanwhile); a bad
/// URL or namespace is `CIRCUIT_RESULT_INVALID_CONFIG` (the last error
/// never contains the password). The call path of the registry's breakers
/// is unchanged. On success `*out_sync` receives the worker, owned by the
/// caller (`circuit_sync_free`); it keeps the registry alive.
///
/// After `fork()`, the child's first transition (or
/// `circuit_sync_status` call) starts a fresh worker with its own
/// connections; the parent's are never used by the child.
///
/// # Safety
/// `registry` must be a live registry; `url` and `namespace` must point to
/// `url_len` and `namespace_len` readable bytes; `out_sync` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_sync_start(
    registry: *const circuit_registry,
    url: *const c_char,
    url_len: usize,
    namespace: *const c_char,
    namespace_len: usize,
    out_sync: *mut *mut circuit_sync,
) -> circuit_result {
    ffi_boundary! {
        let _checked = arg_ref!(registry);
        let url = arg_str!(url, url_len);
        let namespace = arg_str!(namespace, namespace_len);
        let out = arg_out!(out_sync);
        #[cfg(not(feature = "sync"))]
        {
            let _ = (url, namespace, out);
            not_built("circuit_sync_start")
        }
        #[cfg(feature = "sync")]
        {
        // SAFETY: `registry` is a live handle on which the caller holds a
        // reference (contract; non-NULL checked above). Taking one more
        // strong reference for the worker leaves the caller's untouched.
        let Some(owner) = (unsafe { clone_shared(registry) }) else {
            return null_argument("registry");
        };
        match FleetSync::start_owned(owner, SyncConfig::new(url, namespace)) {
            Ok(handle) => {
                out.write(new_boxed(handle));
                circuit_result::Ok
            }
            Err(e) => sync_error(e),
        }
        }
    }
}

/// Sets the fleet policy of the breaker `name` (UTF-8, `name_len` bytes;
/// it need not exist yet). `window_ns` 0: `first`, the default (the first
/// instance to trip opens the breaker on every instance). Otherwise a
/// quorum: the breaker opens fleet-wide only once at least
/// `min_instances` instances, and at least `min_fraction` (0.0 to 1.0,
/// rounded up) of the live instances, tripped within `window_ns`; until
/// then an instance that tripped is open locally only. The votes are
/// counted by one server-side script written by the worker (never on the
/// call path); an instance counts as live for 10 s after its last
/// heartbeat, so one that dies drops out. With Redis unreachable every
/// instance decides alone. `CIRCUIT_RESULT_INVALID_CONFIG` for a fraction
/// outside 0.0..=1.0 (or NaN), more than 1,000,000 instances, or a name
/// that is empty or longer than `CIRCUIT_NAME_MAX_LEN`; nothing changes
/// then.
///
/// # Safety
/// `sync` must be a live sync handle; `name` must point to `name_len`
/// readable bytes.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_sync_set_fleet_policy(
    sync: *const circuit_sync,
    name: *const c_char,
    name_len: usize,
    min_instances: u32,
    min_fraction: f64,
    window_ns: u64,
) -> circuit_result {
    ffi_boundary! {
        let handle = arg_ref!(sync);
        let name = arg_str!(name, name_len);
        #[cfg(not(feature = "sync"))]
        {
            let _ = (handle, name, min_instances, min_fraction, window_ns);
            not_built("circuit_sync_set_fleet_policy")
        }
        #[cfg(feature = "sync")]
        {
            let policy = if window_ns == 0 {
                FleetPolicy::First
            } else {
                FleetPolicy::Quorum(Quorum {
                    min_instances,
                    min_fraction,
                    window: std::time::Duration::from_nanos(window_ns),
                })
            };
            match handle.set_fleet_policy(name, policy) {
                Ok(()) => circuit_result::Ok,
                Err(e) => sync_error(e),
            }
        }
    }
}

/// Stops the worker: unregisters it from the registry and joins its
/// threads (bounded by about one command timeout plus the subscriber read
/// timeout). Local breakers keep their states. The handle stays valid (its
/// status reads STOPPED) until `circuit_sync_free`. Idempotent.
///
/// # Safety
/// `sync` must be a live sync handle.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_sync_stop(sync: *const circuit_sync) -> circuit_result {
    ffi_boundary! {
        let handle = arg_ref!(sync);
        #[cfg(not(feature = "sync"))]
        {
            let _ = handle;
            not_built("circuit_sync_stop")
        }
        #[cfg(feature = "sync")]
        {
            handle.stop();
            circuit_result::Ok
        }
    }
}

/// Stops the worker (as `circuit_sync_stop`) and frees the handle.
/// `circuit_sync_free(NULL)` does nothing.
///
/// # Safety
/// `sync` must be NULL or a live sync handle, not used afterwards.
///
/// Thread safety: no other thread may be using this handle.
#[no_mangle]
pub unsafe extern "C" fn circuit_sync_free(sync: *mut circuit_sync) {
    ffi_boundary! {
        // The slim library never creates a worker: only NULL can come back.
        // SAFETY: by contract NULL or a handle from `circuit_sync_start`,
        // freed once; dropping the handle stops it.
        unsafe { free_boxed(sync) };
    }
}

/// Fills `*status` with the worker's state and counters. Set
/// `status->struct_size = sizeof(circuit_sync_stats)` first (see
/// `circuit_sync_stats`); a `struct_size` below `CIRCUIT_STRUCT_MIN_SIZE`
/// or not a multiple of 8 is `CIRCUIT_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `sync` must be a live sync handle; `status` must point to at least
/// `status->struct_size` writable bytes, aligned for `circuit_sync_stats`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_sync_status(
    sync: *const circuit_sync,
    status: *mut circuit_sync_stats,
) -> circuit_result {
    ffi_boundary! {
        let handle = arg_ref!(sync);
        let out = arg_out!(status);
        #[cfg(not(feature = "sync"))]
        {
            let _ = (handle, out);
            not_built("circuit_sync_status")
        }
        #[cfg(feature = "sync")]
        {
        let n = match struct_size(&out, "status") {
            Ok(n) => n,
            Err(code) => return code,
        };
        let s = handle.status();
        let full = circuit_sync_stats {
            struct_size: 0,
            state: match s.status {
                SyncStatus::Connected => CIRCUIT_SYNC_CONNECTED,
                SyncStatus::Degraded => CIRCUIT_SYNC_DEGRADED,
                SyncStatus::Stopped => CIRCUIT_SYNC_STOPPED,
            },
            published: s.published,
            applied: s.applied,
            stale_ignored: s.stale_ignored,
            malformed_ignored: s.malformed_ignored,
            unknown_ignored: s.unknown_ignored,
            refused: s.refused,
            reconnects: s.reconnects,
            pending: s.pending,
            repaired: s.repaired,
            votes: s.votes,
            configs_applied: s.configs_applied,
            configs_refused: s.configs_refused,
        };
        fill_sized(out, full, n);
        circuit_result::Ok
        }
    }
}

/// Copies the worker's last error (for example why it is DEGRADED; never
/// a password) into `buf` under the required-length protocol; the empty
/// string when there was none. This is the worker's own error, not the
/// calling thread's last error, which this function leaves untouched
/// unless its arguments are wrong.
///
/// # Safety
/// `sync` must be a live sync handle; `buf` NULL (with `len` 0) or valid
/// for `len` bytes; `out_len` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_sync_last_error(
    sync: *const circuit_sync,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> circuit_result {
    ffi_boundary! {
        let handle = arg_ref!(sync);
        let out_len = arg_out!(out_len);
        #[cfg(not(feature = "sync"))]
        {
            let _ = (handle, buf, len, out_len);
            not_built("circuit_sync_last_error")
        }
        #[cfg(feature = "sync")]
        {
            let text = handle.status().last_error.unwrap_or_default();
            // SAFETY: `buf` is NULL or valid for `len` bytes (contract).
            unsafe { write_text(&text, buf, len, out_len) }
        }
    }
}

/// `circuit_sync_start` from Rust strings, for the tests of both builds.
#[cfg(test)]
fn test_start(
    reg: *const circuit_registry,
    url: &str,
    ns: &str,
) -> (circuit_result, *mut circuit_sync) {
    let mut s = std::ptr::null_mut();
    // SAFETY: a live registry (or NULL, refused), valid strings with their
    // lengths, a valid out pointer.
    let rc = unsafe {
        circuit_sync_start(
            reg,
            url.as_ptr().cast(),
            url.len(),
            ns.as_ptr().cast(),
            ns.len(),
            &mut s,
        )
    };
    (rc, s)
}

#[cfg(all(test, feature = "sync"))]
mod tests {
    use super::*;
    use crate::registry::{circuit_registry_free, circuit_registry_new};
    use std::time::{Duration, Instant};

    fn registry() -> *const circuit_registry {
        let mut r = std::ptr::null();
        // SAFETY: NULL config and clock select the defaults; `r` is valid.
        let rc = unsafe { circuit_registry_new(std::ptr::null(), 0, 0, std::ptr::null(), &mut r) };
        assert_eq!(rc, circuit_result::Ok);
        r
    }

    use super::test_start as start;

    fn status(s: *const circuit_sync) -> circuit_sync_stats {
        let mut st = circuit_sync_stats {
            struct_size: std::mem::size_of::<circuit_sync_stats>() as u32,
            ..Default::default()
        };
        // SAFETY: live handle, a full-size struct.
        let rc = unsafe { circuit_sync_status(s, &mut st) };
        assert_eq!(rc, circuit_result::Ok);
        st
    }

    #[test]
    fn unreachable_redis_degrades_and_stop_is_bounded() {
        let reg = registry();
        let (rc, s) = start(reg, "redis://127.0.0.1:1", "ffi");
        assert_eq!(rc, circuit_result::Ok);
        // The caller may free its registry reference: the worker holds one.
        // SAFETY: the caller's reference, released once.
        unsafe { circuit_registry_free(reg) };
        let t = Instant::now();
        while status(s).state != CIRCUIT_SYNC_DEGRADED {
            assert!(t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut len = 0usize;
        // SAFETY: asks for the length only.
        let rc = unsafe { circuit_sync_last_error(s, std::ptr::null_mut(), 0, &mut len) };
        assert_eq!(rc, circuit_result::BufferTooSmall);
        assert!(len > 0);
        let mut buf = vec![0u8; len + 1];
        // SAFETY: a buffer of `len + 1` bytes.
        let rc =
            unsafe { circuit_sync_last_error(s, buf.as_mut_ptr().cast(), buf.len(), &mut len) };
        assert_eq!(rc, circuit_result::Ok);
        let t = Instant::now();
        // SAFETY: live handle.
        assert_eq!(unsafe { circuit_sync_stop(s) }, circuit_result::Ok);
        assert!(t.elapsed() < Duration::from_secs(3));
        assert_eq!(status(s).state, CIRCUIT_SYNC_STOPPED);
        // SAFETY: stopping twice is allowed; then freed once.
        unsafe {
            assert_eq!(circuit_sync_stop(s), circuit_result::Ok);
            circuit_sync_free(s);
            circuit_sync_free(std::ptr::null_mut());
        }
    }

    #[test]
    fn bad_arguments_are_errors_without_secrets() {
        let reg = registry();
        let (rc, s) = start(reg, "nope://u:hunter2@h", "ffi");
        assert_eq!(rc, circuit_result::InvalidConfig);
        assert!(s.is_null());
        let msg = crate::boundary::last_error();
        assert!(
            !msg.contains("hunter2") && msg.contains("INVALID_CONFIG"),
            "{msg}"
        );
        let (rc, _) = start(reg, "redis://127.0.0.1:1", "bad namespace");
        assert_eq!(rc, circuit_result::InvalidConfig);
        let (rc, _) = start(std::ptr::null(), "redis://127.0.0.1:1", "ffi");
        assert_eq!(rc, circuit_result::NullArgument);
        let bad = [0xffu8, 0xfe];
        let mut out = std::ptr::null_mut();
        // SAFETY: live registry; `bad` is 2 readable bytes.
        let rc =
            unsafe { circuit_sync_start(reg, bad.as_ptr().cast(), 2, c"ns".as_ptr(), 2, &mut out) };
        assert_eq!(rc, circuit_result::InvalidUtf8);
        // SAFETY: NULL handles and outputs are refused, not dereferenced.
        unsafe {
            assert_eq!(
                circuit_sync_stop(std::ptr::null()),
                circuit_result::NullArgument
            );
            assert_eq!(
                circuit_sync_status(std::ptr::null(), std::ptr::null_mut()),
                circuit_result::NullArgument
            );
            circuit_registry_free(reg);
        }
    }

    #[test]
    fn a_short_struct_size_is_honoured() {
        let reg = registry();
        let (_, s) = start(reg, "redis://127.0.0.1:1", "ffi");
        let mut st = circuit_sync_stats {
            struct_size: 8,
            state: 99,
            published: 77,
            ..Default::default()
        };
        // SAFETY: live handle; only 8 bytes are filled.
        let rc = unsafe { circuit_sync_status(s, &mut st) };
        assert_eq!(rc, circuit_result::Ok);
        assert_eq!(st.struct_size, 8);
        assert_ne!(st.state, 99);
        assert_eq!(st.published, 77, "bytes past struct_size were written");
        st.struct_size = 12;
        // SAFETY: as above; 12 is refused (not a multiple of 8).
        let rc = unsafe { circuit_sync_status(s, &mut st) };
        assert_eq!(rc, circuit_result::InvalidArgument);
        // A caller built before the fleet-config counters were appended
        // passes the size that ends at `votes`: they stay untouched.
        let before = std::mem::offset_of!(circuit_sync_stats, configs_applied);
        st.struct_size = before as u32;
        st.configs_applied = 55;
        st.configs_refused = 66;
        // SAFETY: as above; `before` bytes are filled.
        let rc = unsafe { circuit_sync_status(s, &mut st) };
        assert_eq!(rc, circuit_result::Ok);
        assert_eq!(st.struct_size as usize, before);
        assert_eq!((st.configs_applied, st.configs_refused), (55, 66));
        st.struct_size = std::mem::size_of::<circuit_sync_stats>() as u32;
        // SAFETY: as above; the whole struct is filled.
        let rc = unsafe { circuit_sync_status(s, &mut st) };
        assert_eq!(rc, circuit_result::Ok);
        assert_eq!((st.configs_applied, st.configs_refused), (0, 0));
        // SAFETY: freed once, after the caller's registry reference.
        unsafe {
            circuit_registry_free(reg);
            circuit_sync_free(s);
        }
    }
}

#[cfg(all(test, not(feature = "sync")))]
mod slim_tests {
    use super::*;
    use crate::registry::{circuit_registry_free, circuit_registry_new};

    #[test]
    fn the_slim_library_answers_not_built_and_writes_nothing() {
        assert_eq!(crate::circuit_features() & crate::CIRCUIT_FEATURE_SYNC, 0);
        let mut reg = std::ptr::null();
        // SAFETY: NULL config and clock select the defaults; `reg` is valid.
        let rc =
            unsafe { circuit_registry_new(std::ptr::null(), 0, 0, std::ptr::null(), &mut reg) };
        assert_eq!(rc, circuit_result::Ok);
        let url = "redis://127.0.0.1:1";
        let (rc, s) = super::test_start(reg, url, "ns");
        assert_eq!(rc, circuit_result::NotBuilt);
        assert!(s.is_null(), "an output was written");
        let msg = crate::boundary::last_error();
        assert!(
            msg.starts_with("CIRCUIT_RESULT_NOT_BUILT") && msg.contains("without fleet sync"),
            "{msg}"
        );
        // Arguments are still checked first; NULL handles are refused.
        // SAFETY: NULL pointers are refused, not dereferenced.
        unsafe {
            let mut out = std::ptr::null_mut();
            assert_eq!(
                circuit_sync_start(
                    std::ptr::null(),
                    url.as_ptr().cast(),
                    url.len(),
                    c"ns".as_ptr(),
                    2,
                    &mut out
                ),
                circuit_result::NullArgument
            );
            assert_eq!(
                circuit_sync_stop(std::ptr::null()),
                circuit_result::NullArgument
            );
            let mut st = circuit_sync_stats::default();
            assert_eq!(
                circuit_sync_status(std::ptr::null(), &mut st),
                circuit_result::NullArgument
            );
            circuit_sync_free(std::ptr::null_mut());
            circuit_registry_free(reg);
        }
    }
}
