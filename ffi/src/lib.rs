//! # circuit-ffi: the C ABI of circuit
//!
//! Builds `libcircuit.so` (SONAME `libcircuit.so.0`) and `libcircuit.a`;
//! `include/circuit.h` is generated from this crate by cbindgen
//! (`make header`) and is the reference documentation for C users: its
//! preamble (in `ffi/cbindgen.toml`) states the conventions once.
//!
//! This crate translates only: pointers, result codes, panics, strings.
//! Every breaker decision is made by `circuit-core`.
//!
//! Layout:
//! - [`boundary`](crate::boundary): the one place with the boundary's safety
//!   (panic catching, NULL checks, enum and string conversion, last error,
//!   output pointers, the required-length protocol);
//! - [`handle`]: typed handles: each handle type names its
//!   Rust value and its ownership (shared `Arc` or boxed `Box`), and every
//!   cast, retain and free goes through it;
//! - `result`: `circuit_result`, `circuit_result_str`, `circuit_last_error`;
//! - `config`, `clock`, `breaker`: the handles and the call protocol;
//! - `events`: callbacks (with finalizers) and pollable event queues;
//! - `registry`: named breakers, iteration, Prometheus text;
//! - `retry`, `timeout`: retry policies and budgets, latency histograms and
//!   adaptive timeouts;
//! - `snapshot`: snapshot and restore of a breaker;
//! - `http`: the HTTP integrations' shared rules (status classification,
//!   `Retry-After` parsing);
//! - `segment`: host-shared segments, whose breakers are ordinary
//!   `circuit_breaker` handles;
//! - `fast`: the state-word fast path for wrappers whose foreign calls are
//!   expensive (ctypes, cgo).
//!
//! The crate is also an `rlib` so that Rust tests and benchmarks can call
//! the exported functions directly.
//!
//! ## Memory ordering rules
//!
//! Every atomic ordering in this crate cites one of these (the core's own
//! are its numbered invariants, in `circuit_core`'s crate docs).
//!
//! 1. **The state word is read with Acquire**, as the core reads it: a
//!    thread that sees generation `g` sees every write the winner of `g`
//!    made before its CAS (core invariant 3), and a CLOSED word with no
//!    override admits at once (core invariant 2). This crate only reads
//!    the word (`circuit_breaker_acquire`'s fast path, the tests of
//!    `circuit_breaker_state_word`); it never writes it.
//! 2. **Everything else is Relaxed**: counters and ids that only need to
//!    be distinct (registry ids) and hints that guard no other memory (the
//!    count of releases parked by callbacks, see `boundary`).

// C names for C types: the header is the interface.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, CStr};

mod boundary;
pub mod breaker;
pub mod clock;
pub mod config;
pub mod events;
pub mod fast;
pub mod group;
pub mod handle;
pub mod http;
pub mod probe;
pub mod reconfig;
pub mod registry;
pub mod result;
pub mod retry;
pub mod segment;
pub mod snapshot;
pub mod sync;
pub mod timeout;

pub use breaker::{
    circuit_breaker, circuit_metrics, circuit_outcome, circuit_override, circuit_permit,
    circuit_state,
};
pub use clock::circuit_clock;
pub use config::{circuit_config, circuit_config_builder};
pub use result::circuit_result;

use boundary::{ffi_boundary, static_cstr};

/// Major version of the library (semantic versioning).
pub const CIRCUIT_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const CIRCUIT_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const CIRCUIT_VERSION_PATCH: u32 = 0;

/// Version of the binary interface this header describes. It changes only
/// when an existing function, type or code changes incompatibly (functions,
/// result codes and fields appended to size-tagged structs are compatible
/// additions). A program or wrapper should refuse a library whose
/// `circuit_abi_version()` differs from the `CIRCUIT_ABI_VERSION` it was
/// built against.
pub const CIRCUIT_ABI_VERSION: u32 = 1;

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0u32;
    while i < b.len() {
        assert!(b[i].is_ascii_digit());
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

// The header's version macros are literals (cbindgen reads them from the
// source); these checks fail the build if they drift from Cargo.toml.
const _: () = {
    assert!(CIRCUIT_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")));
    assert!(CIRCUIT_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")));
    assert!(CIRCUIT_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")));
};

const VERSION_CSTR: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("the package version contains a NUL"),
    };

/// `circuit_features()` bit: fleet sync through Redis (`circuit_sync_*`)
/// is built in. Without it those functions return
/// `CIRCUIT_RESULT_NOT_BUILT` (the slim library).
pub const CIRCUIT_FEATURE_SYNC: u32 = 1;

/// The optional parts built into the loaded library, as a bitmask of
/// `CIRCUIT_FEATURE_*` (bits not defined here are zero). Every function is
/// exported by every build; a function whose feature is missing returns
/// `CIRCUIT_RESULT_NOT_BUILT`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn circuit_features() -> u32 {
    let mut bits = 0;
    if cfg!(feature = "sync") {
        bits |= CIRCUIT_FEATURE_SYNC;
    }
    bits
}

/// The binary interface version of the loaded library. Compare it with
/// `CIRCUIT_ABI_VERSION` when loading the library and refuse a mismatch.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn circuit_abi_version() -> u32 {
    CIRCUIT_ABI_VERSION
}

/// The version of the loaded library, for example `"0.1.0"`, as a static
/// NUL-terminated string. Never NULL; do not free it.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn circuit_version() -> *const c_char {
    ffi_boundary! { static_cstr(VERSION_CSTR) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string_matches_the_package() {
        // SAFETY: `circuit_version` returns a static C string.
        let v = unsafe { CStr::from_ptr(circuit_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        let numeric =
            format!("{CIRCUIT_VERSION_MAJOR}.{CIRCUIT_VERSION_MINOR}.{CIRCUIT_VERSION_PATCH}");
        assert!(v.to_str().unwrap().starts_with(&numeric));
    }

    #[test]
    fn features_name_what_was_built_in() {
        let bits = circuit_features();
        assert_eq!(
            bits & !CIRCUIT_FEATURE_SYNC,
            0,
            "undefined bits set: {bits:#x}"
        );
        assert_eq!(bits & CIRCUIT_FEATURE_SYNC != 0, cfg!(feature = "sync"));
    }

    #[test]
    fn a_panic_inside_the_boundary_becomes_a_result_and_a_message() {
        fn exported() -> circuit_result {
            ffi_boundary! {
                if std::hint::black_box(true) {
                    panic!("boom");
                }
                circuit_result::Ok
            }
        }
        fn exported_ptr() -> *const c_char {
            ffi_boundary! { panic!("boom 2") }
        }
        assert_eq!(exported(), circuit_result::Panic);
        let msg = boundary::last_error();
        assert!(
            msg.contains("CIRCUIT_RESULT_PANIC") && msg.contains("boom"),
            "{msg}"
        );
        assert!(exported_ptr().is_null());
    }
}
