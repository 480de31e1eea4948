//! Reconnect delays: [`Backoff`] (full jitter under a doubling ceiling) and
//! its small generator [`Rng`].

use std::time::Duration;

/// The reconnect delay: full jitter over an exponential ceiling.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            attempt: 0,
            rng: Rng::new(),
        }
    }

    /// The next delay: uniform in `[0, min(max, min * 2^attempt)]`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(self.rng.unit())
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A small xorshift generator for jitter (not for anything secret).
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        let addr = &local as *const u8 as u64;
        Rng((t ^ u64::from(std::process::id()).rotate_left(32) ^ addr) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Backoff;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        for i in 0..20 {
            let d = b.next_delay();
            let ceiling =
                Duration::from_millis(100 * (1u64 << i.min(16))).min(Duration::from_secs(5));
            assert!(d <= ceiling, "{d:?} > {ceiling:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
