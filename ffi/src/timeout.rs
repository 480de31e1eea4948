//! Latency histograms and adaptive timeouts (B11).

use std::time::Duration;

use circuit_core::adaptive::AdaptiveTimeout;

use crate::boundary::{
    arg_out, arg_ref, arg_ref_opt, fail, ffi_boundary, fill_sized, struct_size, SizeTagged,
};
use crate::breaker::circuit_breaker;
use crate::handle::{free_boxed, handle_of, new_boxed};
use crate::result::circuit_result;

/// Default percentile of an adaptive-timeout rule (the wrappers' default).
pub const CIRCUIT_ADAPTIVE_DEFAULT_PERCENTILE: f64 = 95.0;
/// Default multiplier of an adaptive-timeout rule.
pub const CIRCUIT_ADAPTIVE_DEFAULT_MULTIPLIER: f64 = 1.2;
/// Default floor of an adaptive-timeout rule, in nanoseconds (1 ms).
pub const CIRCUIT_ADAPTIVE_DEFAULT_FLOOR_NS: u64 = 1_000_000;
/// Default ceiling of an adaptive-timeout rule, in nanoseconds (30 s).
pub const CIRCUIT_ADAPTIVE_DEFAULT_CEILING_NS: u64 = 30_000_000_000;
/// Default base of an adaptive-timeout rule, in nanoseconds (1 s).
pub const CIRCUIT_ADAPTIVE_DEFAULT_BASE_NS: u64 = 1_000_000_000;
/// Default sample count before an adaptive-timeout rule trusts the histogram.
pub const CIRCUIT_ADAPTIVE_DEFAULT_MIN_SAMPLES: u64 = 100;
const _: () = {
    use circuit_core::adaptive as core;
    assert!(CIRCUIT_ADAPTIVE_DEFAULT_FLOOR_NS == core::DEFAULT_FLOOR.as_nanos() as u64);
    assert!(CIRCUIT_ADAPTIVE_DEFAULT_CEILING_NS == core::DEFAULT_CEILING.as_nanos() as u64);
    assert!(CIRCUIT_ADAPTIVE_DEFAULT_BASE_NS == core::DEFAULT_BASE.as_nanos() as u64);
    assert!(CIRCUIT_ADAPTIVE_DEFAULT_MIN_SAMPLES == core::DEFAULT_MIN_SAMPLES);
    assert!(CIRCUIT_ADAPTIVE_DEFAULT_PERCENTILE.to_bits() == core::DEFAULT_PERCENTILE.to_bits());
    assert!(CIRCUIT_ADAPTIVE_DEFAULT_MULTIPLIER.to_bits() == core::DEFAULT_MULTIPLIER.to_bits());
};

/// A breaker's recent call latencies (`circuit_breaker_latency`), from a
/// histogram with at most 1/16 relative error above 1 us. Size-tagged: set
/// `struct_size` first (see `circuit_metrics`). With no samples, every
/// field but `struct_size` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct circuit_latency {
    /// In: size of the caller's struct in bytes. Out: bytes filled.
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// Samples in the histogram's window.
    pub count: u64,
    /// Sum of the samples in nanoseconds (saturating).
    pub sum_ns: u64,
    /// Smallest sample, exact.
    pub min_ns: u64,
    /// Largest sample, exact.
    pub max_ns: u64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 95th percentile.
    pub p95_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
}

impl SizeTagged for circuit_latency {
    fn set_struct_size(&mut self, size: u32) {
        self.struct_size = size;
    }
}

fn no_histogram() -> circuit_result {
    fail(
        circuit_result::NotFound,
        "the breaker keeps no latency histogram (circuit_config_builder_set_latency_histogram)",
    )
}

/// Fills `*latency` with the breaker's recent latencies (the last one to
/// two histogram periods). `CIRCUIT_RESULT_NOT_FOUND` when its config keeps
/// no histogram; `CIRCUIT_RESULT_INVALID_ARGUMENT` for a bad `struct_size`.
///
/// # Safety
/// `breaker` must be a live breaker; `latency` must point to at least
/// `latency->struct_size` writable bytes, aligned for `circuit_latency`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_latency(
    breaker: *const circuit_breaker,
    latency: *mut circuit_latency,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out = arg_out!(latency);
        let n = match struct_size(&out, "latency") {
            Ok(n) => n,
            Err(code) => return code,
        };
        let Some(s) = b.latency() else {
            return no_histogram();
        };
        let p = |q: f64| s.percentile(q).unwrap_or(0);
        let value = circuit_latency {
            struct_size: 0,
            reserved: 0,
            count: s.count(),
            sum_ns: s.sum_nanos(),
            min_ns: s.min().unwrap_or(0),
            max_ns: s.max().unwrap_or(0),
            p50_ns: p(50.0),
            p90_ns: p(90.0),
            p95_ns: p(95.0),
            p99_ns: p(99.0),
            p999_ns: p(99.9),
        };
        fill_sized(out, value, n);
        circuit_result::Ok
    }
}

/// Writes to `*out_ns` the `percentile`-th (0 to 100) latency of the
/// breaker's recent calls. `CIRCUIT_RESULT_NOT_FOUND` when it keeps no
/// histogram, `CIRCUIT_RESULT_EMPTY` when the histogram has no sample,
/// `CIRCUIT_RESULT_INVALID_ARGUMENT` for a percentile outside [0, 100] (or
/// NaN).
///
/// # Safety
/// `breaker` must be a live breaker, `out_ns` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_latency_percentile(
    breaker: *const circuit_breaker,
    percentile: f64,
    out_ns: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out = arg_out!(out_ns);
        if !(0.0..=100.0).contains(&percentile) {
            return fail(
                circuit_result::InvalidArgument,
                format_args!("`percentile` {percentile} is not in [0, 100]"),
            );
        }
        let Some(s) = b.latency() else {
            return no_histogram();
        };
        match s.percentile(percentile) {
            Ok(ns) => {
                out.write(ns);
                circuit_result::Ok
            }
            Err(_) => circuit_result::Empty,
        }
    }
}

/// A rule turning a breaker's latencies into a recommended call timeout:
/// `clamp(percentile x multiplier, floor, ceiling)` once the histogram holds
/// `min_samples` samples, `base` before. Immutable.
///
/// Thread safety: functions taking a `const circuit_adaptive_timeout *` are
/// safe from any thread.
#[derive(Debug)]
pub struct circuit_adaptive_timeout {
    _opaque: [u8; 0],
}

handle_of!(circuit_adaptive_timeout => Boxed AdaptiveTimeout);

/// Creates an adaptive-timeout rule: `percentile` in [0, 100] (95 = p95),
/// `multiplier` in (0, 1000], `floor_ns` <= `base_ns` <= `ceiling_ns`, each
/// between 1 ns and one week, and `min_samples` (0: trust the histogram at
/// once). The library's defaults are p95 x 1.2 within [1 ms, 30 s], 1 s
/// before 100 samples (passing NULL as the rule to
/// `circuit_breaker_recommended_timeout` uses them). On success
/// `*out_rule` receives the rule, owned by the caller
/// (`circuit_adaptive_timeout_free`); `CIRCUIT_RESULT_INVALID_CONFIG` names
/// the first value at fault.
///
/// # Safety
/// `out_rule` must be a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_adaptive_timeout_new(
    percentile: f64,
    multiplier: f64,
    floor_ns: u64,
    ceiling_ns: u64,
    base_ns: u64,
    min_samples: u64,
    out_rule: *mut *mut circuit_adaptive_timeout,
) -> circuit_result {
    ffi_boundary! {
        let out = arg_out!(out_rule);
        let built = AdaptiveTimeout::builder()
            .percentile(percentile)
            .multiplier(multiplier)
            .floor(Duration::from_nanos(floor_ns))
            .ceiling(Duration::from_nanos(ceiling_ns))
            .base(Duration::from_nanos(base_ns))
            .min_samples(min_samples)
            .build();
        match built {
            Ok(rule) => {
                out.write(new_boxed(rule));
                circuit_result::Ok
            }
            Err(e) => fail(circuit_result::InvalidConfig, e),
        }
    }
}

/// Frees a rule. `circuit_adaptive_timeout_free(NULL)` does nothing.
///
/// # Safety
/// `rule` must be NULL or a rule from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn circuit_adaptive_timeout_free(rule: *mut circuit_adaptive_timeout) {
    ffi_boundary! {
        // SAFETY: by contract NULL or a pointer from `circuit_adaptive_timeout_new`, freed
        // once.
        unsafe { free_boxed(rule) };
    }
}

/// Writes to `*out_timeout_ns` the call timeout `rule` recommends from the
/// breaker's recent latencies (NULL `rule`: the defaults); the rule's base
/// when the breaker keeps no histogram or has too few samples.
///
/// # Safety
/// `breaker` must be a live breaker, `rule` NULL or a live rule,
/// `out_timeout_ns` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_recommended_timeout(
    breaker: *const circuit_breaker,
    rule: *const circuit_adaptive_timeout,
    out_timeout_ns: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out = arg_out!(out_timeout_ns);
        let default_rule;
        let rule = match arg_ref_opt!(rule) {
            Some(r) => r,
            None => {
                default_rule = AdaptiveTimeout::default();
                &default_rule
            }
        };
        let d = b.recommended_timeout(rule);
        out.write(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        circuit_result::Ok
    }
}
