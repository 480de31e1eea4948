//! The loom shim: the one place that chooses between ordinary and `loom`
//! atomics, and the only door through which the core reaches an atomic.
//!
//! Everything in the core that is shared between threads goes through these
//! re-exports, so `RUSTFLAGS="--cfg circuit_loom"` swaps every atomic for
//! loom's model-checked version (tokio's `loom` shim, sharded-slab's
//! `sync.rs`). The cfg is namespaced because RUSTFLAGS reach every crate in
//! the build.
//!
//! Naming `std::sync::atomic::Atomic*` anywhere in the core is refused by
//! clippy (`disallowed-types` in `core/clippy.toml`), so an atomic cannot
//! slip past the models by accident. Process-wide statics that no model
//! covers use [`process_wide`], which says so at the use site.

#[cfg(not(circuit_loom))]
pub(crate) use portable_atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(circuit_loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Atomics for process-wide `static`s (listener ids, seed counters): loom's
/// atomics cannot live in a `static` (their constructor is not `const`), and
/// these counters only hand out distinct numbers, which no model checks. They
/// are ordinary atomics in both builds.
pub(crate) mod process_wide {
    pub(crate) use portable_atomic::AtomicU64;
}

/// Spin-loop hint for CAS retry loops; loom needs to be told to yield.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(circuit_loom)]
    loom::thread::yield_now();
    #[cfg(not(circuit_loom))]
    core::hint::spin_loop();
}
