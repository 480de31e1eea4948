//! Exponentially weighted failure rate (B2), one `AtomicU64`:
//! `calls << 32 | rate`, `rate` a Q0.32 fraction, `calls` saturating at
//! `u32::MAX`. Each record is one CAS loop. Relaxed throughout: the word is a
//! statistic, and the trip it may cause is decided by the state CAS
//! (invariant 6).

use crate::loom_shim::{AtomicU64, Ordering::Relaxed};

const ONE: u64 = 1 << 32;

/// `alpha` in `(0, 1]` as the Q0.32 weight [`Ewma::record`] takes (computed
/// once per config; the breaker does not store it).
pub(crate) fn alpha_q32(alpha: f64) -> u64 {
    ((alpha * ONE as f64) as u64).clamp(1, ONE)
}

#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct Ewma {
    word: AtomicU64,
}

impl Ewma {
    pub(crate) fn new() -> Self {
        Ewma {
            word: AtomicU64::new(0),
        }
    }

    /// Folds in one outcome with weight `alpha` (Q0.32, from [`alpha_q32`]);
    /// returns (calls, rate in [0, 1]) after it.
    #[inline]
    pub(crate) fn record(&self, failed: bool, alpha: u64) -> (u32, f64) {
        let x = if failed { ONE - 1 } else { 0 };
        let step = |w: u64| {
            let calls = (w >> 32).saturating_add(1).min(u64::from(u32::MAX));
            let rate = w & (ONE - 1);
            let diff = x as i128 - rate as i128;
            let rate = (rate as i128 + ((diff * alpha as i128) >> 32)) as u64;
            (calls << 32) | rate.min(ONE - 1)
        };
        let prev = match self.word.fetch_update(Relaxed, Relaxed, |w| Some(step(w))) {
            Ok(w) | Err(w) => w,
        };
        decode(step(prev))
    }

    pub(crate) fn read(&self) -> (u32, f64) {
        decode(self.word.load(Relaxed))
    }

    pub(crate) fn clear(&self) {
        self.word.store(0, Relaxed);
    }

    /// The raw word (`calls << 32 | rate`), for a snapshot.
    pub(crate) fn word(&self) -> u64 {
        self.word.load(Relaxed)
    }

    /// Sets the raw word, restoring a snapshot. Any `u64` is a valid word.
    pub(crate) fn set_word(&self, w: u64) {
        self.word.store(w, Relaxed);
    }
}

fn decode(w: u64) -> (u32, f64) {
    ((w >> 32) as u32, (w & (ONE - 1)) as f64 / (ONE - 1) as f64)
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn tracks_the_float_formula() {
        let e = Ewma::new();
        let a = alpha_q32(0.2);
        let mut model = 0.0f64;
        for i in 0..200 {
            let failed = i % 3 == 0 || (50..80).contains(&i);
            let (calls, rate) = e.record(failed, a);
            model += 0.2 * (f64::from(u8::from(failed)) - model);
            assert_eq!(calls, i + 1);
            assert!((rate - model).abs() < 1e-6, "{i}: {rate} vs {model}");
        }
        e.clear();
        assert_eq!(e.read(), (0, 0.0));
    }

    #[test]
    fn alpha_one_follows_the_last_outcome() {
        let e = Ewma::new();
        let a = alpha_q32(1.0);
        assert!(e.record(true, a).1 > 0.999_999);
        assert_eq!(e.record(false, a).1, 0.0);
    }
}
