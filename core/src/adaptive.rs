//! Adaptive timeout (B11): a recommended call timeout derived from the
//! latency histogram.
//!
//! ```text
//! recommended = clamp(percentile(p) * multiplier, floor, ceiling)   once count >= min_samples
//!             = base                                                 before
//! ```
//!
//! Defaults: p95 x 1.2, clamped to [1 ms, 30 s], 1 s until 100 samples. The
//! percentile carries the histogram's error (at most 1/16 above 1 us, see
//! [`crate::histogram`]); the result is computed in whole nanoseconds,
//! saturating. Pure: no clock, no state; call it as often as wanted (it reads
//! one snapshot's 233 buckets).
//!
//! ```
//! use circuit_core::adaptive::AdaptiveTimeout;
//! use circuit_core::histogram::HistogramSnapshot;
//! use std::time::Duration;
//!
//! let t = AdaptiveTimeout::builder().min_samples(10).build().unwrap();
//! let mut s = HistogramSnapshot::new();
//! assert_eq!(t.recommend(&s), Duration::from_secs(1)); // the base until warm
//! for _ in 0..100 {
//!     s.record(50_000_000); // 50 ms
//! }
//! let r = t.recommend(&s); // about 60 ms (50 ms x 1.2, within 1/16)
//! assert!(r > Duration::from_millis(56) && r < Duration::from_millis(64));
//! ```

use crate::clock::duration_to_nanos;
use crate::config::{ConfigError, MAX_DURATION};
use crate::histogram::{HistogramSnapshot, LatencyHistogram};
use std::time::Duration;

/// Largest multiplier accepted.
pub const MAX_MULTIPLIER: f64 = 1000.0;

/// A validated adaptive-timeout rule. Build with [`AdaptiveTimeout::builder`].
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveTimeout {
    percentile: f64,
    multiplier: f64,
    floor: Duration,
    ceiling: Duration,
    base: Duration,
    min_samples: u64,
}

impl Default for AdaptiveTimeout {
    fn default() -> Self {
        AdaptiveTimeout::builder()
            .build()
            .expect("defaults are valid")
    }
}

/// Default percentile read (p95).
pub const DEFAULT_PERCENTILE: f64 = 95.0;
/// Default factor applied to the percentile.
pub const DEFAULT_MULTIPLIER: f64 = 1.2;
/// Default smallest recommendation.
pub const DEFAULT_FLOOR: Duration = Duration::from_millis(1);
/// Default largest recommendation.
pub const DEFAULT_CEILING: Duration = Duration::from_secs(30);
/// Default recommendation before `min_samples` samples.
pub const DEFAULT_BASE: Duration = Duration::from_secs(1);
/// Default number of samples before the histogram is trusted.
pub const DEFAULT_MIN_SAMPLES: u64 = 100;

impl AdaptiveTimeout {
    /// A builder holding the defaults: p95 x 1.2 in [1 ms, 30 s], base 1 s
    /// until 100 samples.
    pub fn builder() -> AdaptiveTimeoutBuilder {
        AdaptiveTimeoutBuilder {
            rule: AdaptiveTimeout {
                percentile: DEFAULT_PERCENTILE,
                multiplier: DEFAULT_MULTIPLIER,
                floor: DEFAULT_FLOOR,
                ceiling: DEFAULT_CEILING,
                base: DEFAULT_BASE,
                min_samples: DEFAULT_MIN_SAMPLES,
            },
        }
    }

    /// The percentile read, in `0..=100`.
    pub fn percentile(&self) -> f64 {
        self.percentile
    }
    /// The factor applied to it.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }
    /// The smallest recommendation.
    pub fn floor(&self) -> Duration {
        self.floor
    }
    /// The largest recommendation.
    pub fn ceiling(&self) -> Duration {
        self.ceiling
    }
    /// The recommendation before `min_samples` samples.
    pub fn base(&self) -> Duration {
        self.base
    }
    /// Samples needed before the histogram is trusted.
    pub fn min_samples(&self) -> u64 {
        self.min_samples
    }

    /// The recommended timeout for the latencies in `snapshot`.
    pub fn recommend(&self, snapshot: &HistogramSnapshot) -> Duration {
        if snapshot.count() < self.min_samples {
            return self.base;
        }
        // Only `Empty` is possible (the percentile was validated): min_samples 0
        // on an empty histogram.
        let Ok(p) = snapshot.percentile(self.percentile) else {
            return self.base;
        };
        // f64 -> u64 saturates; the clamp then bounds it.
        let nanos = (p as f64 * self.multiplier) as u64;
        Duration::from_nanos(nanos).clamp(self.floor, self.ceiling)
    }

    /// The recommended timeout for `histogram`'s current window.
    pub fn recommend_for(&self, histogram: &LatencyHistogram) -> Duration {
        self.recommend(&histogram.snapshot())
    }
}

fn err(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

/// Builds an [`AdaptiveTimeout`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct AdaptiveTimeoutBuilder {
    rule: AdaptiveTimeout,
}

impl AdaptiveTimeoutBuilder {
    /// The percentile to read, in `0..=100` (95 = p95).
    pub fn percentile(mut self, p: f64) -> Self {
        self.rule.percentile = p;
        self
    }
    /// The factor applied to the percentile, finite, in `(0, 1000]`.
    pub fn multiplier(mut self, m: f64) -> Self {
        self.rule.multiplier = m;
        self
    }
    /// The smallest recommendation.
    pub fn floor(mut self, d: Duration) -> Self {
        self.rule.floor = d;
        self
    }
    /// The largest recommendation.
    pub fn ceiling(mut self, d: Duration) -> Self {
        self.rule.ceiling = d;
        self
    }
    /// The recommendation until `min_samples` samples; within
    /// `[floor, ceiling]`.
    pub fn base(mut self, d: Duration) -> Self {
        self.rule.base = d;
        self
    }
    /// Samples needed before the histogram is trusted (0: at once).
    pub fn min_samples(mut self, n: u64) -> Self {
        self.rule.min_samples = n;
        self
    }

    /// Checks every setting; the error names the first one at fault.
    pub fn build(self) -> Result<AdaptiveTimeout, ConfigError> {
        let r = self.rule;
        if !(0.0..=100.0).contains(&r.percentile) {
            return Err(err(
                "percentile",
                format!("{} is not in [0, 100]", r.percentile),
            ));
        }
        if !(r.multiplier > 0.0 && r.multiplier <= MAX_MULTIPLIER) {
            return Err(err(
                "multiplier",
                format!(
                    "{} is not a finite number in (0, {MAX_MULTIPLIER}]",
                    r.multiplier
                ),
            ));
        }
        for (field, d) in [("floor", r.floor), ("ceiling", r.ceiling), ("base", r.base)] {
            if d.is_zero() || d > MAX_DURATION {
                return Err(err(field, format!("{d:?} is not in (0, {MAX_DURATION:?}]")));
            }
        }
        if r.floor > r.ceiling {
            return Err(err(
                "floor",
                format!("{:?} exceeds ceiling {:?}", r.floor, r.ceiling),
            ));
        }
        if r.base < r.floor || r.base > r.ceiling {
            return Err(err(
                "base",
                format!(
                    "{:?} is not in [floor, ceiling] = [{:?}, {:?}]",
                    r.base, r.floor, r.ceiling
                ),
            ));
        }
        debug_assert!(duration_to_nanos(r.ceiling) < u64::MAX);
        Ok(r)
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn builder_names_the_field_at_fault() {
        let b = AdaptiveTimeout::builder;
        let cases = [
            (b().percentile(-1.0), "percentile"),
            (b().percentile(100.5), "percentile"),
            (b().percentile(f64::NAN), "percentile"),
            (b().multiplier(f64::NAN), "multiplier"),
            (b().multiplier(f64::INFINITY), "multiplier"),
            (b().multiplier(0.0), "multiplier"),
            (b().multiplier(-1.2), "multiplier"),
            (b().floor(Duration::ZERO), "floor"),
            (b().ceiling(Duration::ZERO), "ceiling"),
            (b().base(Duration::ZERO), "base"),
            (b().ceiling(MAX_DURATION + ms(1)), "ceiling"),
            (b().floor(ms(10)).ceiling(ms(5)).base(ms(7)), "floor"),
            (b().floor(ms(10)).ceiling(ms(50)).base(ms(5)), "base"),
            (b().floor(ms(10)).ceiling(ms(50)).base(ms(51)), "base"),
        ];
        for (builder, field) in cases {
            let e = builder.clone().build().expect_err(field);
            assert_eq!(e.field, field, "{builder:?}: {e}");
        }
        assert!(b().percentile(0.0).build().is_ok());
        assert!(b().percentile(100.0).build().is_ok());
    }

    #[test]
    fn base_until_enough_samples_then_percentile_times_multiplier() {
        let t = AdaptiveTimeout::default();
        let mut s = HistogramSnapshot::new();
        for i in 0..99u64 {
            s.record((i + 1) * MS);
        }
        assert_eq!(t.recommend(&s), Duration::from_secs(1));
        s.record(100 * MS);
        // p95 of 1..=100 ms is 95 ms; x 1.2 = 114 ms, within 1/16.
        let r = duration_to_nanos(t.recommend(&s));
        assert!(r.abs_diff(114 * MS) * 16 <= 114 * MS, "{r}");
        assert_ne!(r, 1_000 * MS);
    }

    #[test]
    fn clamps_to_floor_and_ceiling() {
        let t = AdaptiveTimeout::builder()
            .floor(ms(20))
            .ceiling(ms(200))
            .base(ms(100))
            .min_samples(1)
            .build()
            .unwrap();
        let fast = {
            let mut s = HistogramSnapshot::new();
            s.record(MS);
            s
        };
        let slow = {
            let mut s = HistogramSnapshot::new();
            s.record(5_000 * MS);
            s
        };
        assert_eq!(t.recommend(&fast), ms(20));
        assert_eq!(t.recommend(&slow), ms(200));
        let empty = AdaptiveTimeout::builder().min_samples(0).build().unwrap();
        assert_eq!(
            empty.recommend(&HistogramSnapshot::new()),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn reads_a_live_histogram() {
        let h = LatencyHistogram::new(Duration::from_secs(60), 0);
        let t = AdaptiveTimeout::builder()
            .min_samples(3)
            .percentile(100.0)
            .multiplier(2.0)
            .build()
            .unwrap();
        for v in [10, 20, 30] {
            h.record(v * MS);
        }
        assert_eq!(t.recommend_for(&h), ms(60));
    }

    proptest! {
        /// The recommendation is always within [floor, ceiling], is the base
        /// below min_samples, and otherwise tracks p x multiplier within the
        /// histogram's 1/16 (plus 32 ns) before clamping.
        #[test]
        fn recommendation_is_clamped_and_tracks_the_percentile(
            values in proptest::collection::vec(1u64..20_000 * MS, 0..200),
            p in 0.0f64..=100.0,
            m in 0.1f64..10.0,
            floor_ms in 1u64..100,
            span_ms in 0u64..10_000,
            min_samples in 0u64..50,
        ) {
            let floor = ms(floor_ms);
            let ceiling = ms(floor_ms + span_ms);
            let t = AdaptiveTimeout::builder()
                .percentile(p).multiplier(m).floor(floor).ceiling(ceiling).base(floor)
                .min_samples(min_samples).build().unwrap();
            let mut s = HistogramSnapshot::new();
            for &v in &values {
                s.record(v);
            }
            let r = t.recommend(&s);
            prop_assert!(floor <= r && r <= ceiling);
            if (values.len() as u64) < min_samples || values.is_empty() {
                prop_assert_eq!(r, floor);
            } else {
                let mut sorted = values.clone();
                sorted.sort_unstable();
                let n = sorted.len() as u64;
                let rank = ((p * n as f64 / 100.0).ceil() as u64).clamp(1, n);
                let exact = sorted[(rank - 1) as usize] as f64 * m;
                let err = exact / 16.0 + 32.0 * m + 1.0;
                let lo = Duration::from_nanos((exact - err).max(0.0) as u64).clamp(floor, ceiling);
                let hi = Duration::from_nanos((exact + err) as u64).clamp(floor, ceiling);
                prop_assert!(lo <= r && r <= hi, "{:?} not in [{:?}, {:?}]", r, lo, hi);
            }
        }
    }
}
