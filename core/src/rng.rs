//! Randomness for jitter without state: [`unit_f64`] hashes (seed, n) with
//! the splitmix64 finaliser, so a breaker keeps no RNG word, draws are
//! reproducible under a fixed seed, and each open episode (a new generation)
//! draws anew.

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
    let x = mix(seed.wrapping_add(GAMMA.wrapping_mul(u64::from(n).wrapping_add(1))));
    (x >> 11) as f64 / (1u64 << 53) as f64
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
}
