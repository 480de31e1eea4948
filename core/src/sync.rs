//! The one place that chooses between `std`-backed and `loom` atomics.
//!
//! Everything in the core that is shared between threads goes through these
//! re-exports, so `RUSTFLAGS="--cfg circuit_loom"` swaps every atomic for
//! loom's model-checked version (tokio's `loom` shim, sharded-slab's `sync.rs`).
//! The cfg is namespaced because RUSTFLAGS reach every crate in the build.

#[cfg(not(circuit_loom))]
pub(crate) use portable_atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(circuit_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Spin-loop hint for CAS retry loops; loom needs to be told to yield.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(circuit_loom)]
    loom::thread::yield_now();
    #[cfg(not(circuit_loom))]
    core::hint::spin_loop();
}
