//! Group guards of a registry: at most a count or fraction of a group's
//! breakers OPEN at once; a trip past it is refused (a shadow trip).

use std::ffi::c_char;

use circuit_core::GroupLimit;

use crate::boundary::{
    arg_out, arg_ref, arg_str, fail, ffi_boundary, fill_sized, struct_size, SizeTagged,
};
use crate::registry::{circuit_registry, registry_error};
use crate::result::circuit_result;

/// `circuit_group_stats.limit_kind`: the limit is a count of members.
pub const CIRCUIT_GROUP_LIMIT_COUNT: u32 = 0;
/// `circuit_group_stats.limit_kind`: the limit is a fraction of members.
pub const CIRCUIT_GROUP_LIMIT_FRACTION: u32 = 1;

/// A group's numbers, filled by `circuit_registry_group_stats`.
///
/// Forward compatible like `circuit_metrics`: set `struct_size` to
/// `sizeof(circuit_group_stats)` before the call; the library fills at most
/// that many bytes and writes back how many it filled.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct circuit_group_stats {
    /// In: size of the caller's struct in bytes. Out: bytes filled.
    pub struct_size: u32,
    /// `CIRCUIT_GROUP_LIMIT_COUNT` or `CIRCUIT_GROUP_LIMIT_FRACTION`.
    pub limit_kind: u32,
    /// The limit: a count, or a fraction from 0.0 to 1.0.
    pub limit: f64,
    /// Breakers in the group now.
    pub members: u64,
    /// Members OPEN or HALF_OPEN now (holding a place), plus trips about to
    /// open.
    pub open: u64,
    /// Most members that may be OPEN or HALF_OPEN at once, for the current
    /// members (a fraction rounds down).
    pub max_open: u64,
    /// Trips the guard refused (each was a shadow trip event).
    pub refused_trips: u64,
}

impl SizeTagged for circuit_group_stats {
    fn set_struct_size(&mut self, size: u32) {
        self.struct_size = size;
    }
}

fn set_group(
    registry: &crate::registry::FfiRegistry,
    group: &str,
    limit: GroupLimit,
) -> circuit_result {
    match registry.registry.set_group(group, limit) {
        Ok(_) => circuit_result::Ok,
        Err(e) => registry_error(e),
    }
}

/// Creates the group `group` (UTF-8, `group_len` bytes, 1 to
/// `CIRCUIT_NAME_MAX_LEN`) allowing at most `max_open` members OPEN (or
/// HALF_OPEN) at once, or sets that limit on the existing group. Breakers
/// join with `circuit_registry_join_group`.
///
/// # Safety
/// `registry` must be a live registry; `group` must point to `group_len`
/// readable bytes.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_set_group_count(
    registry: *const circuit_registry,
    group: *const c_char,
    group_len: usize,
    max_open: u32,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let group = arg_str!(group, group_len);
        set_group(r, group, GroupLimit::Count(max_open))
    }
}

/// As `circuit_registry_set_group_count`, with the limit a fraction of the
/// group's current members (0.0 to 1.0, rounded down: 0.3 of 10 members
/// is 3). `CIRCUIT_RESULT_INVALID_ARGUMENT` for a fraction outside that
/// range or NaN; nothing changes then.
///
/// # Safety
/// As `circuit_registry_set_group_count`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_set_group_fraction(
    registry: *const circuit_registry,
    group: *const c_char,
    group_len: usize,
    fraction: f64,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let group = arg_str!(group, group_len);
        set_group(r, group, GroupLimit::Fraction(fraction))
    }
}

/// Puts the breaker `name` in the group `group` when `name` is next created
/// (a breaker that already exists stays as it is until removed, as with
/// `circuit_registry_set_config`). `CIRCUIT_RESULT_NOT_FOUND` when no group
/// of that name was set.
///
/// # Safety
/// `registry` must be a live registry; `name` and `group` must point to
/// `name_len` and `group_len` readable bytes.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_join_group(
    registry: *const circuit_registry,
    name: *const c_char,
    name_len: usize,
    group: *const c_char,
    group_len: usize,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let name = arg_str!(name, name_len);
        let group = arg_str!(group, group_len);
        match r.registry.join_group(name, group) {
            Ok(()) => circuit_result::Ok,
            Err(e) => registry_error(e),
        }
    }
}

/// Fills `*stats` with the numbers of the group `group`
/// (`CIRCUIT_RESULT_NOT_FOUND` if there is none). Set
/// `stats->struct_size = sizeof(circuit_group_stats)` first; a
/// `struct_size` below `CIRCUIT_STRUCT_MIN_SIZE` or not a multiple of 8 is
/// `CIRCUIT_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `registry` must be a live registry; `group` must point to `group_len`
/// readable bytes; `stats` must point to at least `stats->struct_size`
/// writable bytes, aligned for `circuit_group_stats`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_registry_group_stats(
    registry: *const circuit_registry,
    group: *const c_char,
    group_len: usize,
    stats: *mut circuit_group_stats,
) -> circuit_result {
    ffi_boundary! {
        let r = arg_ref!(registry);
        let name = arg_str!(group, group_len);
        let out = arg_out!(stats);
        let n = match struct_size(&out, "stats") {
            Ok(n) => n,
            Err(code) => return code,
        };
        let Some(g) = r.registry.group(name) else {
            return fail(circuit_result::NotFound, format_args!("no group named {name:?}"));
        };
        let s = g.stats();
        let (limit_kind, limit) = match s.limit {
            GroupLimit::Count(n) => (CIRCUIT_GROUP_LIMIT_COUNT, f64::from(n)),
            GroupLimit::Fraction(f) => (CIRCUIT_GROUP_LIMIT_FRACTION, f),
        };
        let full = circuit_group_stats {
            struct_size: 0,
            limit_kind,
            limit,
            members: s.members as u64,
            open: s.open as u64,
            max_open: s.max_open as u64,
            refused_trips: s.refused_trips,
        };
        fill_sized(out, full, n);
        circuit_result::Ok
    }
}
