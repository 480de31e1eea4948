//! Live reconfiguration: a running breaker, or the breaker of a registry
//! name, takes a new config without losing its state (the core's
//! `Breaker::reconfigure`, invariant 18).

use std::ffi::c_char;

use crate::boundary::{arg_ref, arg_str, fail, ffi_boundary};
use crate::breaker::circuit_breaker;
use crate::config::circuit_config;
use crate::registry::{circuit_registry, registry_error};
use crate::result::circuit_result;

/// Puts `config` in force on a running breaker, keeping its state: state
/// and generation (outstanding permits stay valid), the current deadline,
/// counters, consecutive failures, backoff streak, and the window's
/// outcomes (a window of another size keeps its most recent outcomes; see
/// the README's "Live reconfiguration"). A new open duration applies from
/// the next opening. The config is not consumed (free it as usual).
/// `CIRCUIT_RESULT_INVALID_CONFIG` when the config turns the latency
/// histogram on or off or changes its period (it is fixed when the breaker
/// is created); a refused config changes nothing.
///
/// # Safety
/// `breaker` and `config` must be live handles.
///
/// Thread safety: safe from any thread, concurrently with calls on the
/// breaker (each call uses the old config or the new one, whole).
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_reconfigure(
    breaker: *const circuit_breaker,
    config: *const circuit_config,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let config = arg_ref!(config);
        match b.reconfigure(config.config.clone()) {
            Ok(()) => circuit_result::Ok,
            Err(e) => fail(circuit_result::InvalidConfig, e),
        }
    }
}

/// Sets the config of `name` (UTF-8, `name_len` bytes, 1 to
/// `CIRCUIT_NAME_MAX_LEN`) and puts it in force on the breaker of that
/// name if one exists, as `circuit_breaker_reconfigure` does; a breaker
/// created later gets it too. Errors: `INVALID_UTF8`, `INVALID_ARGUMENT`
/// (bad name), `INVALID_CONFIG` (the breaker refused it); an error changes
/// nothing.
///
/// # Safety
/// `registry` and `config` must be live handles; `name` must point to
/// `name_len` readable bytes.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_reconfigure(
    registry: *const circuit_registry,
    name: *const c_char,
    name_len: usize,
    config: *const circuit_config,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let name = arg_str!(name, name_len);
        let config = arg_ref!(config);
        match r.registry.reconfigure(name, config.config.clone()) {
            Ok(()) => circuit_result::Ok,
            Err(e) => registry_error(e),
        }
    }
}
