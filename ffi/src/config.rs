//! Configuration through an opaque builder: adding options never changes an
//! existing signature or struct.

use std::time::Duration;

use circuit_core::config::{
    DEFAULT_TIME_WINDOW_BUCKETS, MAX_DURATION, MAX_PROBES, MAX_RAMP_STEPS, MIN_RAMP_DURATION,
};
use circuit_core::{Config, ConfigBuilder, ConfigError, RampPolicy};

use crate::boundary::{arg_mut, arg_out, arg_ref, fail, ffi_boundary};
use crate::handle::{free_boxed, handle_of, new_boxed};
use crate::result::circuit_result;

/// Collects configuration options; `circuit_config_builder_build` checks
/// them together and produces an immutable `circuit_config`.
///
/// Thread safety: a builder is not thread-safe (its functions take a
/// non-const pointer); use one builder from one thread at a time.
#[derive(Debug)]
pub struct circuit_config_builder {
    _opaque: [u8; 0],
}

handle_of!(circuit_config_builder => Boxed FfiConfigBuilder);

/// The builder behind a `circuit_config_builder` handle.
#[derive(Debug)]
pub struct FfiConfigBuilder {
    builder: ConfigBuilder,
}

/// A validated, immutable breaker configuration. Any number of breakers may
/// be created from one config; each copies what it needs, so the config may
/// be freed right after.
///
/// Thread safety: functions taking a `const circuit_config *` are safe from
/// any thread.
#[derive(Debug)]
pub struct circuit_config {
    _opaque: [u8; 0],
}

handle_of!(circuit_config => Boxed FfiConfig);

/// The config behind a `circuit_config` handle.
#[derive(Debug)]
pub struct FfiConfig {
    pub(crate) config: Config,
}

/// A base on which every relation between fields holds for any single
/// in-range value, so that checking one field reports only that field.
fn permissive() -> ConfigBuilder {
    Config::builder()
        .max_open_duration(MAX_DURATION)
        .half_open_probes(MAX_PROBES)
}

/// Applies `set` to the builder after checking the single value with the
/// core's own validation (the core is the only place with the rules):
/// `set` is tried on a permissive base, and an error about `field` refuses
/// the value now. Relations between fields are checked by `_build`.
fn set(
    b: &mut FfiConfigBuilder,
    field: &'static str,
    set: impl Fn(ConfigBuilder) -> ConfigBuilder,
) -> circuit_result {
    if let Err(e) = set(permissive()).build() {
        if e.field == field {
            return config_error(&e);
        }
    }
    b.builder = set(b.builder.clone());
    circuit_result::Ok
}

fn config_error(e: &ConfigError) -> circuit_result {
    fail(circuit_result::InvalidConfig, e)
}

fn nanos(ns: u64) -> Duration {
    Duration::from_nanos(ns)
}

/// Creates a builder holding the defaults: 5 consecutive failures trip, a
/// 100-slot count window with a floor of 10 calls, 5 s open doubling up to
/// 60 s with 10 % jitter, one half-open probe with a 10 s lease, metrics on.
///
/// Ownership: the caller owns the builder and frees it with
/// `circuit_config_builder_free` (building does not consume it). Never
/// returns NULL (except after an internal panic).
#[no_mangle]
pub extern "C" fn circuit_config_builder_new() -> *mut circuit_config_builder {
    ffi_boundary! {
        new_boxed(FfiConfigBuilder {
            builder: Config::builder(),
        })
    }
}

/// Frees a builder. `circuit_config_builder_free(NULL)` does nothing.
///
/// # Safety
/// `builder` must be NULL or a builder from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_free(builder: *mut circuit_config_builder) {
    ffi_boundary! {
        // SAFETY: by contract NULL or a builder from
        // `circuit_config_builder_new`, freed once.
        unsafe { free_boxed(builder) };
    }
}

/// Checks every option and the relations between them. On success
/// `*out_config` receives a new config owned by the caller (free it with
/// `circuit_config_free`). On `CIRCUIT_RESULT_INVALID_CONFIG` the last error
/// names the option and the reason. The builder stays usable either way.
///
/// # Safety
/// `builder` must be a live builder, `out_config` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_build(
    builder: *const circuit_config_builder,
    out_config: *mut *mut circuit_config,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_ref!(builder);
        let out_config = arg_out!(out_config);
        match builder.builder.clone().build() {
            Ok(config) => {
                out_config.write(new_boxed(FfiConfig { config }));
                circuit_result::Ok
            }
            Err(e) => config_error(&e),
        }
    }
}

/// Frees a config. Breakers created from it are unaffected.
/// `circuit_config_free(NULL)` does nothing.
///
/// # Safety
/// `config` must be NULL or a config from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_free(config: *mut circuit_config) {
    ffi_boundary! {
        // SAFETY: by contract NULL or a config from
        // `circuit_config_builder_build`, freed once.
        unsafe { free_boxed(config) };
    }
}

/// Writes 1 to `*out_needs` when breakers of this config read call
/// durations (the slow-call policy or the latency histogram), else 0. A host
/// that measures a call's duration only for the library asks this rather
/// than deciding by option names; 0 means durations may be passed as 0.
///
/// # Safety
/// `config` must be a live config, `out_needs` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_needs_durations(
    config: *const circuit_config,
    out_needs: *mut u32,
) -> circuit_result {
    ffi_boundary! {
        let config = arg_ref!(config);
        let out_needs = arg_out!(out_needs);
        out_needs.write(u32::from(config.config.needs_durations()));
        circuit_result::Ok
    }
}

// One `_set_*` function per option, each taking the builder first, then
// its value(s), and returning `CIRCUIT_RESULT_INVALID_CONFIG` (reason in
// the last error) for a value no configuration could accept. They are
// written out in full, not generated by a macro, because cbindgen reads
// signatures without expanding macros.

/// Trip after `n` consecutive failures (TIMEOUT counts as a failure);
/// `n = 0` turns this policy off. Default 5.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_consecutive_failures(
    builder: *mut circuit_config_builder,
    n: u32,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "consecutive_failures", |b| {
            b.consecutive_failures((n != 0).then_some(n))
        })
    }
}

/// Trip when the window's failure rate reaches `threshold`, in (0, 1], once
/// the window holds `minimum_calls`; `threshold = 0` turns it off
/// (default off). NaN and values outside [0, 1] are refused.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_failure_rate(
    builder: *mut circuit_config_builder,
    threshold: f64,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "failure_rate", |b| {
            b.failure_rate((threshold != 0.0).then_some(threshold))
        })
    }
}

/// Trip when the share of calls lasting at least `duration_ns` reaches
/// `threshold`, in (0, 1]; `threshold = 0` turns it off (default off).
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_slow_call(
    builder: *mut circuit_config_builder,
    threshold: f64,
    duration_ns: u64,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "slow_call", |b| {
            b.slow_call((threshold != 0.0).then_some((threshold, nanos(duration_ns))))
        })
    }
}

/// Trip when the exponentially weighted failure rate (weight `alpha` in
/// (0, 1] for the newest outcome) reaches `threshold` in (0, 1], after
/// `minimum_calls` calls; `threshold = 0` turns it off (default off).
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_ewma(
    builder: *mut circuit_config_builder,
    alpha: f64,
    threshold: f64,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "ewma", |b| b.ewma((threshold != 0.0).then_some((alpha, threshold))))
    }
}

/// Calls the window (or EWMA) must hold before a rate can trip; at least 1
/// and, with a count window, at most its size. Default 10.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_minimum_calls(
    builder: *mut circuit_config_builder,
    n: u32,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "minimum_calls", |b| b.minimum_calls(n))
    }
}

/// Rate policies read the last `size` outcomes (1 to 1,048,576). Default:
/// a count window of 100. A breaker has one window: a builder on which both
/// this and `circuit_config_builder_set_time_window` were called fails to
/// build with `CIRCUIT_RESULT_INVALID_CONFIG`, the last error naming both.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_count_window(
    builder: *mut circuit_config_builder,
    size: u32,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "count_window", |b| b.count_window(size))
    }
}

/// Rate policies read `buckets` buckets (1 to 1024, each at least 1 ms;
/// 0 = the default, 10) covering `duration_ns`. Exclusive with
/// `circuit_config_builder_set_count_window` (checked by `_build`).
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_time_window(
    builder: *mut circuit_config_builder,
    duration_ns: u64,
    buckets: u32,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        let buckets = if buckets == 0 { DEFAULT_TIME_WINDOW_BUCKETS } else { buckets };
        set(builder, "time_window", |b| b.time_window(nanos(duration_ns), buckets))
    }
}

/// Base open duration, 1 ms to one week, at most the maximum open
/// duration. Default 5 s.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_open_duration(
    builder: *mut circuit_config_builder,
    duration_ns: u64,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "open_duration", |b| b.open_duration(nanos(duration_ns)))
    }
}

/// Cap on the open duration after backoff and on a `Retry-After`, 1 ms to
/// one week. Default 60 s.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_max_open_duration(
    builder: *mut circuit_config_builder,
    duration_ns: u64,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "max_open_duration", |b| b.max_open_duration(nanos(duration_ns)))
    }
}

/// Growth factor of the open duration per re-open from HALF_OPEN, in
/// [1, 1000] (1 = no backoff). Default 2.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_backoff_multiplier(
    builder: *mut circuit_config_builder,
    multiplier: f64,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "backoff_multiplier", |b| b.backoff_multiplier(multiplier))
    }
}

/// Jitter fraction in [0, 1): each open duration is scaled by a random
/// factor in [1 - jitter, 1 + jitter]. Default 0.1.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_jitter(
    builder: *mut circuit_config_builder,
    jitter: f64,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "jitter", |b| b.jitter(jitter))
    }
}

/// Probes admitted per half-open episode, 1 to 255. Default 1.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_half_open_probes(
    builder: *mut circuit_config_builder,
    probes: u32,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "half_open_probes", |b| b.half_open_probes(probes))
    }
}

/// Successful probes that close the breaker, at most the probe count;
/// 0 = as many as probes (the default).
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_half_open_successes(
    builder: *mut circuit_config_builder,
    successes: u32,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "half_open_successes", |b| b.half_open_successes(successes))
    }
}

/// Lease after which probes that have not reported free their slots, 1 ms
/// to one week. Default 10 s.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_probe_lease(
    builder: *mut circuit_config_builder,
    duration_ns: u64,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "probe_lease", |b| b.probe_lease(nanos(duration_ns)))
    }
}

/// Whether per-call metrics are recorded: 1 (the default) or 0; any other
/// value is `CIRCUIT_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_metrics(
    builder: *mut circuit_config_builder,
    enabled: u32,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        let on = match enabled {
            0 => false,
            1 => true,
            v => {
                return fail(
                    circuit_result::InvalidArgument,
                    format_args!("`enabled` must be 0 or 1, not {v}"),
                )
            }
        };
        set(builder, "metrics", |b| b.metrics(on))
    }
}

/// Keep a latency histogram whose samples age out after one to two
/// `period_ns` (1 ms to 1 hour); 0 (the default) keeps none. It costs
/// 2 KiB per breaker and feeds `circuit_breaker_latency`,
/// `circuit_breaker_recommended_timeout` and the Prometheus
/// `circuit_call_duration_seconds` histogram.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_latency_histogram(
    builder: *mut circuit_config_builder,
    period_ns: u64,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "latency_histogram", |b| {
            b.latency_histogram((period_ns != 0).then(|| nanos(period_ns)))
        })
    }
}

/// Seed of the jitter generator, for reproducible tests; 0 (the default)
/// seeds each breaker differently.
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_seed(
    builder: *mut circuit_config_builder,
    seed: u64,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "seed", |b| b.seed(seed))
    }
}

/// Most steps of a ramp-up (`circuit_config_builder_set_ramp`).
pub const CIRCUIT_RAMP_MAX_STEPS: u32 = 128;
/// Shortest ramp-up, in nanoseconds (1 ms).
pub const CIRCUIT_RAMP_MIN_DURATION_NS: u64 = 1_000_000;
const _: () = {
    assert!(CIRCUIT_RAMP_MAX_STEPS == MAX_RAMP_STEPS);
    assert!(CIRCUIT_RAMP_MIN_DURATION_NS == MIN_RAMP_DURATION.as_nanos() as u64);
};

/// Ramp up after recovery: for `duration_ns` after HALF_OPEN closes, admit
/// only a fraction of calls, rising from `start` in (0, 1) to all of them,
/// linearly (`steps = 0`) or in `steps` equal steps (at most
/// `CIRCUIT_RAMP_MAX_STEPS`); the duration is at least
/// `CIRCUIT_RAMP_MIN_DURATION_NS` and at most one week. Refused calls get
/// `CIRCUIT_RESULT_REJECTED_RAMP_LIMITED`; a trip during the ramp re-opens
/// as a failed probe would (backoff applies). `start = 0` turns the ramp
/// off (the default).
///
/// # Safety
/// `builder` must be a live builder not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn circuit_config_builder_set_ramp(
    builder: *mut circuit_config_builder,
    start: f64,
    duration_ns: u64,
    steps: u32,
) -> circuit_result {
    ffi_boundary! {
        let builder = arg_mut!(builder);
        set(builder, "ramp", |b| {
            b.ramp((start != 0.0).then_some(RampPolicy {
                start,
                duration: nanos(duration_ns),
                steps,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_builder(f: impl FnOnce(*mut circuit_config_builder)) {
        let b = circuit_config_builder_new();
        f(b);
        // SAFETY: `b` came from `circuit_config_builder_new`.
        unsafe { circuit_config_builder_free(b) };
    }

    #[test]
    fn each_setter_refuses_its_own_bad_value() {
        with_builder(|b| {
            // SAFETY: `b` is a live builder, used by this thread only.
            let results = unsafe {
                [
                    ("rate", circuit_config_builder_set_failure_rate(b, 1.5)),
                    (
                        "rate nan",
                        circuit_config_builder_set_failure_rate(b, f64::NAN),
                    ),
                    ("slow", circuit_config_builder_set_slow_call(b, 0.5, 0)),
                    ("ewma", circuit_config_builder_set_ewma(b, 0.0, 0.5)),
                    ("min", circuit_config_builder_set_minimum_calls(b, 0)),
                    ("count", circuit_config_builder_set_count_window(b, 0)),
                    ("time", circuit_config_builder_set_time_window(b, 1_000, 10)),
                    ("open", circuit_config_builder_set_open_duration(b, 0)),
                    (
                        "max",
                        circuit_config_builder_set_max_open_duration(b, u64::MAX),
                    ),
                    (
                        "backoff",
                        circuit_config_builder_set_backoff_multiplier(b, 0.5),
                    ),
                    ("jitter", circuit_config_builder_set_jitter(b, 1.0)),
                    (
                        "probes",
                        circuit_config_builder_set_half_open_probes(b, 256),
                    ),
                    (
                        "successes",
                        circuit_config_builder_set_half_open_successes(b, 256),
                    ),
                    ("lease", circuit_config_builder_set_probe_lease(b, 0)),
                    ("metrics", circuit_config_builder_set_metrics(b, 2)),
                    (
                        "ramp",
                        circuit_config_builder_set_ramp(b, 1.0, 1_000_000, 0),
                    ),
                    (
                        "ramp steps",
                        circuit_config_builder_set_ramp(
                            b,
                            0.5,
                            1_000_000,
                            CIRCUIT_RAMP_MAX_STEPS + 1,
                        ),
                    ),
                    (
                        "ramp duration",
                        circuit_config_builder_set_ramp(b, 0.5, 0, 0),
                    ),
                    (
                        "histogram",
                        circuit_config_builder_set_latency_histogram(b, 1),
                    ),
                ]
            };
            for (name, r) in results {
                assert!(
                    matches!(
                        r,
                        circuit_result::InvalidConfig | circuit_result::InvalidArgument
                    ),
                    "{name}: {r:?}"
                );
            }
            // A refused value left the builder as it was: the defaults build.
            let mut out = std::ptr::null_mut();
            // SAFETY: `b` is live and `out` a valid pointer.
            unsafe {
                assert_eq!(
                    circuit_config_builder_build(b, &mut out),
                    circuit_result::Ok
                );
                assert_eq!(
                    crate::handle::as_ref(out).unwrap().config,
                    Config::default()
                );
                circuit_config_free(out);
            }
        });
    }

    #[test]
    fn both_windows_fail_to_build_naming_both_fields() {
        with_builder(|b| {
            // SAFETY: `b` is live; `out` is a valid pointer.
            unsafe {
                assert_eq!(
                    circuit_config_builder_set_count_window(b, 50),
                    circuit_result::Ok
                );
                assert_eq!(
                    circuit_config_builder_set_time_window(b, 10_000_000_000, 0),
                    circuit_result::Ok
                );
                let mut out = std::ptr::null_mut();
                assert_eq!(
                    circuit_config_builder_build(b, &mut out),
                    circuit_result::InvalidConfig
                );
                assert!(out.is_null());
            }
            let text = crate::boundary::last_error();
            assert!(
                text.contains("count_window") && text.contains("time_window"),
                "{text}"
            );
        });
    }

    #[test]
    fn relations_are_checked_by_build_not_by_order_of_setters() {
        with_builder(|b| {
            // SAFETY: `b` is live; `out` is a valid pointer.
            unsafe {
                // 120 s exceeds the default cap of 60 s until the cap is raised.
                assert_eq!(
                    circuit_config_builder_set_open_duration(b, 120_000_000_000),
                    circuit_result::Ok
                );
                let mut out = std::ptr::null_mut();
                assert_eq!(
                    circuit_config_builder_build(b, &mut out),
                    circuit_result::InvalidConfig
                );
                assert!(out.is_null());
                assert_eq!(
                    circuit_config_builder_set_max_open_duration(b, 300_000_000_000),
                    circuit_result::Ok
                );
                assert_eq!(
                    circuit_config_builder_build(b, &mut out),
                    circuit_result::Ok
                );
                assert_eq!(
                    crate::handle::as_ref(out).unwrap().config.open_duration(),
                    Duration::from_secs(120)
                );
                circuit_config_free(out);
            }
        });
    }
}
