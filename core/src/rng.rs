//! The one random generator of the crate: splitmix64, for jitter (never for
//! cryptography). Two views of the same stream:
//!
//! - [`unit_f64`]`(seed, n)` is draw `n` (0-based) of the stream `seed`,
//!   computed without state, so a breaker keeps no RNG word, its
//!   open-duration jitter is reproducible under a fixed seed, and each open
//!   episode (a new generation) draws anew;
//! - [`SplitMix64`] walks the same stream one draw at a time, for a retrying
//!   caller (retry backoff jitter) and the fleet sync's reconnect backoff.

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A seed distinct per call in this process, for breakers without one.
pub(crate) fn fresh_seed() -> u64 {
    use crate::loom_shim::{process_wide::AtomicU64, Ordering::Relaxed};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(GAMMA, Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    mix(n ^ t ^ u64::from(std::process::id()).rotate_left(32))
}

/// A uniform float in `[0, 1)` from `seed` and `n`.
pub(crate) fn unit_f64(seed: u64, n: u32) -> f64 {
    unit(mix(seed.wrapping_add(
        GAMMA.wrapping_mul(u64::from(n).wrapping_add(1)),
    )))
}

/// 64 random bits to a uniform float in `[0, 1)` (the top 53 bits).
#[inline]
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A small, fast, seeded generator (splitmix64) for jitter. Not for
/// cryptography. One per retrying caller: it is `&mut`, not shared.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator that always yields the same stream for the same seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// A generator seeded differently in every process and on every call
    /// (from the standard library's per-process random hash keys), so that
    /// clients do not jitter in step.
    pub fn from_entropy() -> SplitMix64 {
        use crate::loom_shim::{process_wide, Ordering::Relaxed};
        use std::hash::{BuildHasher, Hasher};
        // A process-wide static outside any loom model (as in `fresh_seed`).
        // Relaxed: only uniqueness matters.
        static CALLS: process_wide::AtomicU64 = process_wide::AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(CALLS.fetch_add(1, Relaxed));
        SplitMix64::new(h.finish())
    }

    /// The generator for draw `n` of the sequence `seed`, without walking
    /// the sequence: a host that keeps only the seed and the attempt number
    /// between retries draws the same jitter as every other host.
    pub fn keyed(seed: u64, n: u32) -> SplitMix64 {
        let mut mix = SplitMix64::new(seed ^ u64::from(n).rotate_left(32));
        SplitMix64::new(mix.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// A uniform float in `[0, 1)` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        unit(self.next_u64())
    }
}

/// A nonzero 16-bit tag of `bytes` under `seed` (a breaker's probe tag: its name
/// under its environment's salt).
pub(crate) fn tag16(seed: u64, bytes: &[u8]) -> u16 {
    let h = bytes.iter().fold(seed ^ 0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    });
    // Never 0: a permit whose tag bits are clear (forged, or a CLOSED
    // permit with the probe bit set) is never this breaker's probe.
    ((mix(h) >> 48) as u16).max(1)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    #[test]
    fn unit_draws_are_in_range_and_spread() {
        let draws: Vec<f64> = (0..1000).map(|n| super::unit_f64(42, n)).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.05, "mean {mean}");
        assert_eq!(super::unit_f64(42, 7), super::unit_f64(42, 7));
        assert_ne!(super::unit_f64(42, 7), super::unit_f64(43, 7));
    }

    #[test]
    fn the_stateless_draws_are_the_generators_stream() {
        for seed in [0, 42, u64::MAX] {
            let mut g = super::SplitMix64::new(seed);
            for n in 0..100 {
                assert_eq!(g.next_f64().to_bits(), super::unit_f64(seed, n).to_bits());
            }
        }
    }
}
