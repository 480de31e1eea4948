//! A lock-free splitmix64 stream for jitter: each draw is one `fetch_add` of
//! the golden gamma followed by a mix, so concurrent draws never repeat and
//! never block. Seeded for reproducible tests.

use crate::sync::{AtomicU64, Ordering::Relaxed};

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Debug)]
pub(crate) struct Rng(AtomicU64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(AtomicU64::new(seed))
    }

    /// A seed distinct per call in this process, for breakers without one.
    pub(crate) fn fresh_seed() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(GAMMA, std::sync::atomic::Ordering::Relaxed);
        mix(n ^ u64::from(std::process::id()).rotate_left(32))
    }

    /// A uniform float in `[0, 1)`.
    pub(crate) fn next_f64(&self) -> f64 {
        // Relaxed: only the uniqueness of each fetch_add result matters.
        let x = mix(self.0.fetch_add(GAMMA, Relaxed).wrapping_add(GAMMA));
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
