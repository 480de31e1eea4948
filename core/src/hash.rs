//! Stable hashing of configs and records: one FNV-1a, shared by the
//! host-shared segment (`shared::layout`) and snapshots (`snapshot`, whose
//! records it also checksums), so both agree on what "the same config"
//! means.

use crate::config::{Config, WindowKind};

/// 64-bit FNV-1a: a stable hash (the standard library's is not stable
/// across releases, and every process must compute the same value).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    /// An empty hash.
    pub const fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Adds bytes.
    pub fn bytes(mut self, data: &[u8]) -> Fnv {
        for b in data {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Adds a number.
    pub fn u64(self, v: u64) -> Fnv {
        self.bytes(&v.to_le_bytes())
    }

    /// The hash.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

/// Adds every config field that shapes a breaker's words or what they
/// mean to `h`: every field except `metrics`, `latency_histogram` and
/// `seed` (per process), and `ramp` (added by callers that need it, so
/// that segment hashes keep their value).
pub(crate) fn config_fields(mut h: Fnv, c: &Config) -> Fnv {
    let opt = |h: Fnv, v: Option<u64>| match v {
        None => h.u64(0),
        Some(v) => h.u64(1).u64(v),
    };
    let d = |x: std::time::Duration| x.as_nanos().min(u128::from(u64::MAX)) as u64;
    h = opt(h, c.consecutive_failures.map(u64::from));
    h = opt(h, c.failure_rate.map(|p| p.threshold.to_bits()));
    h = opt(h, c.slow_call.map(|p| p.threshold.to_bits()));
    h = opt(h, c.slow_call.map(|p| d(p.duration)));
    h = opt(h, c.ewma.map(|p| p.alpha.to_bits()));
    h = opt(h, c.ewma.map(|p| p.threshold.to_bits()));
    h = h.u64(u64::from(c.minimum_calls));
    h = match c.window {
        WindowKind::Count { size } => h.u64(1).u64(u64::from(size)),
        WindowKind::Time { duration, buckets } => h.u64(2).u64(d(duration)).u64(u64::from(buckets)),
    };
    h.u64(d(c.open_duration))
        .u64(d(c.max_open_duration))
        .u64(c.backoff_multiplier.to_bits())
        .u64(c.jitter.to_bits())
        .u64(u64::from(c.half_open_probes))
        .u64(u64::from(c.half_open_successes))
        .u64(d(c.probe_lease))
}

/// Adds the ramp-up policy (or its absence) to `h`.
pub(crate) fn ramp_fields(h: Fnv, c: &Config) -> Fnv {
    match c.ramp {
        None => h.u64(0),
        Some(r) => h
            .u64(1)
            .u64(r.start.to_bits())
            .u64(r.duration.as_nanos().min(u128::from(u64::MAX)) as u64)
            .u64(u64::from(r.steps)),
    }
}
