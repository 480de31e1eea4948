//! Breaker configuration: a builder that validates every field and returns a
//! typed error naming the field and the reason (B12). A [`Config`] that exists
//! is valid; the breaker never re-checks it.

use crate::reconfig::WindowAt;
use std::fmt;
use std::time::Duration;

/// Longest duration any setting accepts (one week). Larger values are refused,
/// and durations computed at run time (backoff, `Retry-After`) are clamped to
/// the breaker's `max_open_duration`, which is at most this.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Largest count window (slots); at 2 bits a slot that is 256 KiB.
pub const MAX_COUNT_WINDOW: u32 = 1 << 20;

/// Largest number of buckets in a time window.
pub const MAX_BUCKETS: u32 = 1024;

/// Shortest bucket of a time window: finer buckets than the coarse clock's
/// tick would only measure the tick.
pub const MIN_BUCKET_WIDTH: Duration = Duration::from_millis(1);

/// Largest half-open probe count (fits the 8-bit `inflight` field).
pub const MAX_PROBES: u32 = 255;

/// Buckets of a time window when the host gives none (0 through the C ABI).
pub const DEFAULT_TIME_WINDOW_BUCKETS: u32 = 10;

/// Most steps a ramp-up may take (see [`RampPolicy`]).
pub const MAX_RAMP_STEPS: u32 = 128;

/// Shortest ramp-up: anything shorter is no ramp at all.
pub const MIN_RAMP_DURATION: Duration = Duration::from_millis(1);

/// Ramp-up after recovery: for `duration` after HALF_OPEN closes, only a
/// fraction of calls is admitted, rising from `start` to 1 (see
/// `core/src/ramp.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RampPolicy {
    /// Fraction admitted when the ramp begins, in `(0, 1)`.
    pub start: f64,
    /// How long the ramp lasts.
    pub duration: Duration,
    /// 0: the fraction rises linearly; `n` in `1..=MAX_RAMP_STEPS`: it rises
    /// in `n` equal steps, each lasting `duration / n`.
    pub steps: u32,
}

/// Which window the rate policies read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// The last `size` outcomes.
    Count {
        /// Number of slots.
        size: u32,
    },
    /// `buckets` buckets covering `duration`.
    Time {
        /// Total span of the window.
        duration: Duration,
        /// Number of buckets the span is divided into.
        buckets: u32,
    },
}

/// A rate threshold in `(0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePolicy {
    /// Trip when the rate is at least this.
    pub threshold: f64,
}

/// The slow-call policy: calls at least `duration` long are slow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowCallPolicy {
    /// Trip when the slow-call rate is at least this.
    pub threshold: f64,
    /// A call is slow when its duration is at least this.
    pub duration: Duration,
}

/// Exponentially weighted failure rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EwmaPolicy {
    /// Weight of the newest outcome, in `(0, 1]`.
    pub alpha: f64,
    /// Trip when the weighted failure rate is at least this.
    pub threshold: f64,
}

/// A validated breaker configuration. Build one with [`Config::builder`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) failure_rate: Option<RatePolicy>,
    pub(crate) slow_call: Option<SlowCallPolicy>,
    pub(crate) ewma: Option<EwmaPolicy>,
    pub(crate) minimum_calls: u32,
    pub(crate) window: WindowKind,
    pub(crate) open_duration: Duration,
    pub(crate) max_open_duration: Duration,
    pub(crate) backoff_multiplier: f64,
    pub(crate) jitter: f64,
    pub(crate) half_open_probes: u32,
    pub(crate) half_open_successes: u32,
    pub(crate) probe_lease: Duration,
    pub(crate) metrics: bool,
    pub(crate) latency_histogram: Option<Duration>,
    pub(crate) seed: u64,
    pub(crate) ramp: Option<RampPolicy>,
    /// The EWMA weight in Q0.32, derived by `build`.
    pub(crate) ewma_alpha_q32: u64,
    /// Slow-call threshold in nanoseconds, `u64::MAX` when the policy is
    /// off, derived by `build` (read on every record; kept here, shared by
    /// every breaker of a config, rather than in each breaker).
    pub(crate) slow_nanos: u64,
    /// Where a breaker with this config finds its window (invariant 18):
    /// inline for every config `build` makes; a reconfiguration publishes
    /// a breaker's own copy that says "the side box's". Not part of the
    /// config's value (equality ignores it).
    pub(crate) window_at: WindowAt,
    /// True when a record in CLOSED does more than count the outcome and
    /// follow the consecutive-failure policy: a window, the EWMA or the
    /// latency histogram is in use. Derived by `build`, so that the closed
    /// path's common case tests one byte.
    pub(crate) records_more: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config::builder().build().expect("defaults are valid")
    }
}

impl Config {
    /// A builder holding the defaults: 5 consecutive failures trip, a
    /// 100-slot count window with a floor of 10 calls, 5 s open doubling to
    /// 60 s with 10 % jitter, one half-open probe with a 10 s lease, metrics
    /// on.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                consecutive_failures: Some(5),
                failure_rate: None,
                slow_call: None,
                ewma: None,
                minimum_calls: 10,
                window: WindowKind::Count { size: 100 },
                open_duration: Duration::from_secs(5),
                max_open_duration: Duration::from_secs(60),
                backoff_multiplier: 2.0,
                jitter: 0.1,
                half_open_probes: 1,
                half_open_successes: 0, // 0 = same as probes, resolved in build
                probe_lease: Duration::from_secs(10),
                metrics: true,
                latency_histogram: None,
                seed: 0,
                ramp: None,
                ewma_alpha_q32: 0,
                slow_nanos: u64::MAX,
                window_at: WindowAt::INLINE,
                records_more: true,
            },
            count_window_set: false,
            time_window_set: false,
        }
    }

    /// Consecutive failures that trip, if that policy is on.
    pub fn consecutive_failures(&self) -> Option<u32> {
        self.consecutive_failures
    }
    /// The failure-rate policy, if on.
    pub fn failure_rate(&self) -> Option<RatePolicy> {
        self.failure_rate
    }
    /// The slow-call policy, if on.
    pub fn slow_call(&self) -> Option<SlowCallPolicy> {
        self.slow_call
    }
    /// The EWMA policy, if on.
    pub fn ewma(&self) -> Option<EwmaPolicy> {
        self.ewma
    }
    /// Calls the window must hold before a rate can trip.
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }
    /// The window the rate policies read.
    pub fn window(&self) -> WindowKind {
        self.window
    }
    /// Base open duration.
    pub fn open_duration(&self) -> Duration {
        self.open_duration
    }
    /// Cap on the open duration after backoff and on `Retry-After`.
    pub fn max_open_duration(&self) -> Duration {
        self.max_open_duration
    }
    /// Growth factor per re-open from HALF_OPEN.
    pub fn backoff_multiplier(&self) -> f64 {
        self.backoff_multiplier
    }
    /// Jitter fraction: the open duration is scaled by a factor in `[1 - j, 1 + j]`.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
    /// Probes admitted per half-open episode.
    pub fn half_open_probes(&self) -> u32 {
        self.half_open_probes
    }
    /// Successful probes that close the breaker.
    pub fn half_open_successes(&self) -> u32 {
        self.half_open_successes
    }
    /// Time after which unreported probes free their slots.
    pub fn probe_lease(&self) -> Duration {
        self.probe_lease
    }
    /// Whether per-call metrics are recorded.
    pub fn metrics_enabled(&self) -> bool {
        self.metrics
    }
    /// Window period of the latency histogram, when one is kept.
    pub fn latency_histogram(&self) -> Option<Duration> {
        self.latency_histogram
    }
    /// Seed of the jitter generator (0 = derived from the breaker's address).
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// The ramp-up after recovery, if on.
    pub fn ramp(&self) -> Option<RampPolicy> {
        self.ramp
    }
    /// True when any policy reads the window.
    pub(crate) fn uses_window(&self) -> bool {
        self.failure_rate.is_some() || self.slow_call.is_some()
    }
    /// True when a breaker of this config reads call durations (the slow-call
    /// policy or the latency histogram): a host that measures durations only
    /// for the library asks this instead of deciding by option names.
    pub fn needs_durations(&self) -> bool {
        self.slow_call.is_some() || self.latency_histogram.is_some()
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting at fault, as named by the builder method.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config: {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

fn err(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

/// Builds a [`Config`]. Setters record values; [`ConfigBuilder::build`]
/// checks all of them and the relations between them.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    config: Config,
    /// Whether `count_window` was called: with `time_window` also called,
    /// `build` refuses the pair rather than letting the last setter win.
    count_window_set: bool,
    /// Whether `time_window` was called.
    time_window_set: bool,
}

impl ConfigBuilder {
    /// Trip after `n` consecutive failures (`None` turns the policy off).
    pub fn consecutive_failures(mut self, n: Option<u32>) -> Self {
        self.config.consecutive_failures = n;
        self
    }
    /// Trip when the window's failure rate reaches `threshold` (`None`: off).
    pub fn failure_rate(mut self, threshold: Option<f64>) -> Self {
        self.config.failure_rate = threshold.map(|threshold| RatePolicy { threshold });
        self
    }
    /// Trip when the share of calls lasting at least `duration` reaches
    /// `threshold` (`None`: off).
    pub fn slow_call(mut self, policy: Option<(f64, Duration)>) -> Self {
        self.config.slow_call = policy.map(|(threshold, duration)| SlowCallPolicy {
            threshold,
            duration,
        });
        self
    }
    /// Trip when the EWMA failure rate reaches `threshold` (`None`: off).
    pub fn ewma(mut self, policy: Option<(f64, f64)>) -> Self {
        self.config.ewma = policy.map(|(alpha, threshold)| EwmaPolicy { alpha, threshold });
        self
    }
    /// Calls the window (or EWMA) must hold before a rate can trip.
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.config.minimum_calls = n;
        self
    }
    /// Use a count window of the last `size` outcomes. A breaker has one
    /// window: `build` refuses a builder on which `time_window` was also
    /// called.
    pub fn count_window(mut self, size: u32) -> Self {
        self.config.window = WindowKind::Count { size };
        self.count_window_set = true;
        self
    }
    /// Use a time window of `buckets` buckets covering `duration`. `build`
    /// refuses a builder on which `count_window` was also called.
    pub fn time_window(mut self, duration: Duration, buckets: u32) -> Self {
        self.config.window = WindowKind::Time { duration, buckets };
        self.time_window_set = true;
        self
    }
    /// Base open duration.
    pub fn open_duration(mut self, d: Duration) -> Self {
        self.config.open_duration = d;
        self
    }
    /// Cap on backoff and `Retry-After`.
    pub fn max_open_duration(mut self, d: Duration) -> Self {
        self.config.max_open_duration = d;
        self
    }
    /// Growth factor per re-open (1 = no backoff).
    pub fn backoff_multiplier(mut self, m: f64) -> Self {
        self.config.backoff_multiplier = m;
        self
    }
    /// Jitter fraction in `[0, 1)`.
    pub fn jitter(mut self, j: f64) -> Self {
        self.config.jitter = j;
        self
    }
    /// Probes per half-open episode.
    pub fn half_open_probes(mut self, p: u32) -> Self {
        self.config.half_open_probes = p;
        self
    }
    /// Successes that close (0 = as many as probes).
    pub fn half_open_successes(mut self, k: u32) -> Self {
        self.config.half_open_successes = k;
        self
    }
    /// Lease after which unreported probes free their slots.
    pub fn probe_lease(mut self, d: Duration) -> Self {
        self.config.probe_lease = d;
        self
    }
    /// Record per-call metrics (on by default).
    pub fn metrics(mut self, on: bool) -> Self {
        self.config.metrics = on;
        self
    }
    /// Keep a latency histogram whose samples age out after one to two
    /// `period`s (`None`, the default: no histogram). It costs 2 KiB per
    /// breaker and about 5 ns per call; it feeds percentiles, the Prometheus
    /// `circuit_call_duration_seconds` histogram and adaptive timeouts.
    pub fn latency_histogram(mut self, period: Option<Duration>) -> Self {
        self.config.latency_histogram = period;
        self
    }
    /// Seed for the jitter generator, for reproducible tests (0 = per breaker).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Ramp up after recovery (`None`, the default: a breaker that closes
    /// from HALF_OPEN admits every call at once). See [`RampPolicy`].
    pub fn ramp(mut self, policy: Option<RampPolicy>) -> Self {
        self.config.ramp = policy;
        self
    }

    /// Checks every field and returns the config, or the first error found.
    pub fn build(self) -> Result<Config, ConfigError> {
        if self.count_window_set && self.time_window_set {
            return Err(err(
                "count_window",
                "count_window and time_window are exclusive: a breaker has one window",
            ));
        }
        let mut c = self.config;
        if c.consecutive_failures == Some(0) {
            return Err(err("consecutive_failures", "must be at least 1"));
        }
        if let Some(p) = c.failure_rate {
            check_rate("failure_rate", p.threshold)?;
        }
        if let Some(p) = c.slow_call {
            check_rate("slow_call", p.threshold)?;
            check_duration("slow_call", p.duration, Duration::from_nanos(1))?;
        }
        if let Some(p) = c.ewma {
            check_rate("ewma", p.threshold)?;
            if !(p.alpha.is_finite() && p.alpha > 0.0 && p.alpha <= 1.0) {
                return Err(err("ewma", format!("alpha {} must be in (0, 1]", p.alpha)));
            }
        }
        if c.minimum_calls == 0 {
            return Err(err("minimum_calls", "must be at least 1"));
        }
        match c.window {
            WindowKind::Count { size } => {
                if size == 0 || size > MAX_COUNT_WINDOW {
                    return Err(err(
                        "count_window",
                        format!("size {size} must be in 1..={MAX_COUNT_WINDOW}"),
                    ));
                }
                if c.uses_window() && c.minimum_calls > size {
                    return Err(err(
                        "minimum_calls",
                        format!("{} exceeds the count window size {size}", c.minimum_calls),
                    ));
                }
            }
            WindowKind::Time { duration, buckets } => {
                if buckets == 0 || buckets > MAX_BUCKETS {
                    return Err(err(
                        "time_window",
                        format!("buckets {buckets} must be in 1..={MAX_BUCKETS}"),
                    ));
                }
                check_duration("time_window", duration, MIN_BUCKET_WIDTH)?;
                if duration / buckets < MIN_BUCKET_WIDTH {
                    return Err(err(
                        "time_window",
                        format!("each bucket must span at least {MIN_BUCKET_WIDTH:?}"),
                    ));
                }
            }
        }
        check_duration(
            "max_open_duration",
            c.max_open_duration,
            Duration::from_millis(1),
        )?;
        check_duration("open_duration", c.open_duration, Duration::from_millis(1))?;
        if c.open_duration > c.max_open_duration {
            return Err(err("open_duration", "exceeds max_open_duration"));
        }
        let m = c.backoff_multiplier;
        if !(m.is_finite() && (1.0..=1000.0).contains(&m)) {
            return Err(err(
                "backoff_multiplier",
                format!("{m} must be in [1, 1000]"),
            ));
        }
        let j = c.jitter;
        if !(j.is_finite() && (0.0..1.0).contains(&j)) {
            return Err(err("jitter", format!("{j} must be in [0, 1)")));
        }
        if c.half_open_probes == 0 || c.half_open_probes > MAX_PROBES {
            return Err(err(
                "half_open_probes",
                format!("{} must be in 1..={MAX_PROBES}", c.half_open_probes),
            ));
        }
        if c.half_open_successes == 0 {
            c.half_open_successes = c.half_open_probes;
        }
        if c.half_open_successes > c.half_open_probes {
            return Err(err(
                "half_open_successes",
                format!(
                    "{} exceeds half_open_probes {}",
                    c.half_open_successes, c.half_open_probes
                ),
            ));
        }
        check_duration("probe_lease", c.probe_lease, Duration::from_millis(1))?;
        if let Some(p) = c.latency_histogram {
            if !(crate::histogram::MIN_PERIOD..=crate::histogram::MAX_PERIOD).contains(&p) {
                return Err(err(
                    "latency_histogram",
                    format!(
                        "period {p:?} must be between {:?} and {:?}",
                        crate::histogram::MIN_PERIOD,
                        crate::histogram::MAX_PERIOD
                    ),
                ));
            }
        }
        if let Some(r) = c.ramp {
            if !(r.start.is_finite() && r.start > 0.0 && r.start < 1.0) {
                return Err(err("ramp", format!("start {} must be in (0, 1)", r.start)));
            }
            check_duration("ramp", r.duration, MIN_RAMP_DURATION)?;
            if r.steps > MAX_RAMP_STEPS {
                return Err(err(
                    "ramp",
                    format!("steps {} must be in 0..={MAX_RAMP_STEPS}", r.steps),
                ));
            }
        }
        c.ewma_alpha_q32 = c.ewma.map_or(0, |e| crate::ewma::alpha_q32(e.alpha));
        c.slow_nanos = c
            .slow_call
            .map_or(u64::MAX, |p| crate::clock::duration_to_nanos(p.duration));
        c.window_at = WindowAt::INLINE;
        c.records_more = c.uses_window() || c.ewma.is_some() || c.latency_histogram.is_some();
        Ok(c)
    }
}

fn check_rate(field: &'static str, r: f64) -> Result<(), ConfigError> {
    if r.is_finite() && r > 0.0 && r <= 1.0 {
        Ok(())
    } else {
        Err(err(field, format!("threshold {r} must be in (0, 1]")))
    }
}

fn check_duration(field: &'static str, d: Duration, min: Duration) -> Result<(), ConfigError> {
    if d < min || d > MAX_DURATION {
        Err(err(
            field,
            format!("{d:?} must be between {min:?} and {MAX_DURATION:?}"),
        ))
    } else {
        Ok(())
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn defaults_build_and_successes_default_to_probes() {
        let c = Config::builder().half_open_probes(3).build().unwrap();
        assert_eq!(c.half_open_successes(), 3);
        assert_eq!(Config::default().consecutive_failures(), Some(5));
    }

    #[test]
    fn both_windows_are_refused_naming_both_fields_in_either_order() {
        let one = Config::builder()
            .count_window(50)
            .time_window(Duration::from_secs(10), 10);
        let other = Config::builder()
            .time_window(Duration::from_secs(10), 10)
            .count_window(50);
        for b in [one, other] {
            let e = b.build().expect_err("both windows");
            assert_eq!(e.field, "count_window");
            let text = e.to_string();
            assert!(
                text.contains("count_window") && text.contains("time_window"),
                "{text}"
            );
        }
    }

    #[test]
    fn needs_durations_follows_the_policies_that_read_them() {
        let d = Duration::from_millis(100);
        assert!(!Config::default().needs_durations());
        assert!(!Config::builder()
            .failure_rate(Some(0.5))
            .ewma(Some((0.5, 0.5)))
            .build()
            .unwrap()
            .needs_durations());
        assert!(Config::builder()
            .slow_call(Some((0.5, d)))
            .build()
            .unwrap()
            .needs_durations());
        assert!(Config::builder()
            .latency_histogram(Some(Duration::from_secs(1)))
            .build()
            .unwrap()
            .needs_durations());
    }

    fn ramp(start: f64, duration: Duration, steps: u32) -> ConfigBuilder {
        Config::builder().ramp(Some(RampPolicy {
            start,
            duration,
            steps,
        }))
    }

    #[test]
    fn ramp_limits_are_inclusive() {
        let d = Duration::from_secs(30);
        assert!(ramp(0.01, d, MAX_RAMP_STEPS).build().is_ok());
        assert!(ramp(0.99, MIN_RAMP_DURATION, 0).build().is_ok());
        assert_eq!(Config::default().ramp(), None);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(ConfigBuilder, &str)> = vec![
            (
                Config::builder().consecutive_failures(Some(0)),
                "consecutive_failures",
            ),
            (
                Config::builder().failure_rate(Some(f64::NAN)),
                "failure_rate",
            ),
            (Config::builder().failure_rate(Some(1.5)), "failure_rate"),
            (Config::builder().failure_rate(Some(0.0)), "failure_rate"),
            (
                Config::builder().slow_call(Some((0.5, Duration::ZERO))),
                "slow_call",
            ),
            (Config::builder().ewma(Some((0.0, 0.5))), "ewma"),
            (Config::builder().ewma(Some((0.5, f64::INFINITY))), "ewma"),
            (Config::builder().minimum_calls(0), "minimum_calls"),
            (Config::builder().count_window(0), "count_window"),
            (
                Config::builder().count_window(MAX_COUNT_WINDOW + 1),
                "count_window",
            ),
            (
                Config::builder()
                    .failure_rate(Some(0.5))
                    .count_window(5)
                    .minimum_calls(6),
                "minimum_calls",
            ),
            (
                Config::builder().time_window(Duration::from_secs(1), 0),
                "time_window",
            ),
            (
                Config::builder().time_window(Duration::from_millis(5), 10),
                "time_window",
            ),
            (
                Config::builder().open_duration(Duration::ZERO),
                "open_duration",
            ),
            (
                Config::builder().open_duration(Duration::from_secs(61)),
                "open_duration",
            ),
            (
                Config::builder().max_open_duration(Duration::MAX),
                "max_open_duration",
            ),
            (
                Config::builder().backoff_multiplier(0.5),
                "backoff_multiplier",
            ),
            (
                Config::builder().backoff_multiplier(f64::NAN),
                "backoff_multiplier",
            ),
            (Config::builder().jitter(1.0), "jitter"),
            (Config::builder().jitter(-0.1), "jitter"),
            (Config::builder().half_open_probes(0), "half_open_probes"),
            (Config::builder().half_open_probes(256), "half_open_probes"),
            (
                Config::builder().half_open_probes(2).half_open_successes(3),
                "half_open_successes",
            ),
            (Config::builder().probe_lease(Duration::ZERO), "probe_lease"),
            (
                Config::builder().latency_histogram(Some(Duration::from_secs(7200))),
                "latency_histogram",
            ),
            (
                Config::builder()
                    .time_window(Duration::from_secs(10), 10)
                    .count_window(50),
                "count_window",
            ),
            (ramp(0.0, Duration::from_secs(1), 0), "ramp"),
            (ramp(1.0, Duration::from_secs(1), 0), "ramp"),
            (ramp(f64::NAN, Duration::from_secs(1), 0), "ramp"),
            (ramp(0.1, Duration::ZERO, 0), "ramp"),
            (ramp(0.1, MAX_DURATION + Duration::from_secs(1), 0), "ramp"),
            (
                ramp(0.1, Duration::from_secs(1), MAX_RAMP_STEPS + 1),
                "ramp",
            ),
        ];
        for (builder, field) in cases {
            let e = builder.build().expect_err(field);
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().starts_with("invalid config: "));
        }
    }
}
