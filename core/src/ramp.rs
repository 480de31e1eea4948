//! Ramp-up after recovery (invariant 14 in the crate docs).
//!
//! A breaker whose config has a [`RampPolicy`] does not go from HALF_OPEN
//! straight to full traffic: the transition that closes it stores phase
//! RAMPING (CLOSED to every host, `state::Phase` code 3), and for the
//! policy's duration `acquire` admits only a fraction of calls, rising from
//! `start` to 1, linearly or in steps. The ramp's end is the deadline stamp
//! of its generation (invariant 4), so the fraction needs one coarse clock
//! read and no other state.
//!
//! Which calls are admitted: each acquire during the ramp draws the next
//! ticket of the ramp (numbered from 0 in each ramp, so the first call after
//! a recovery is always admitted; no random-number state) and is admitted
//! when the ticket's point of the golden-ratio sequence `frac(n / phi)`
//! lies below the current fraction. The tickets are counted in the probe
//! ledger's word (`state::ProbeLedger::ramp_ticket`), which no CLOSED
//! generation otherwise uses, so a breaker is no larger for having a ramp. That sequence
//! has the lowest discrepancy of any one-dimensional sequence: any run of
//! `N` consecutive tickets admits `N * f` calls within `O(log N)` (the
//! tests check within 8 for `N` up to 10,000, from any starting ticket), so
//! admitted calls are spread evenly in arrival order rather than in bursts.
//! Fairness is among calls, not callers: the next ticket goes to whoever
//! asks next, so no caller, thread or retry is singled out, and a caller
//! that retries draws a fresh point (consecutive points are `0.38` apart
//! on the unit circle), so a refused call is not refused again for the same
//! reason.
//!
//! While no ramp runs nothing here is touched: the closed fast path stays
//! one load of the state word (invariant 2). The first acquire after the
//! ramp's end clears RAMPING in the same generation (no transition, no
//! event, outstanding permits stay valid), and from then on acquires take
//! the fast path again.

use crate::clock::{duration_to_nanos, Nanos};
use crate::config::RampPolicy;

/// A fraction of 1 in Q0.32.
pub(crate) const ONE: u64 = 1 << 32;

/// 2^64 / phi: multiplying by it walks the golden-ratio sequence in Q0.64.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The admitted fraction in Q0.32 at `elapsed` nanoseconds into the ramp:
/// `start` at 0, rising to 1 at the policy's duration; with `steps = n`,
/// `start + (1 - start) * k / n` during the `k`-th of `n` equal steps.
/// Never 0 (the configured start is above 0).
pub(crate) fn fraction_q32(policy: &RampPolicy, elapsed: Nanos) -> u64 {
    let total = duration_to_nanos(policy.duration).max(1);
    if elapsed >= total {
        return ONE;
    }
    let progress = if policy.steps == 0 {
        elapsed as f64 / total as f64
    } else {
        let steps = u128::from(policy.steps);
        let step = u128::from(elapsed) * steps / u128::from(total);
        step as f64 / steps as f64
    };
    let f = policy.start + (1.0 - policy.start) * progress;
    ((f * ONE as f64) as u64).clamp(1, ONE)
}

/// Whether the ramp admits its `ticket`-th call at `fraction` (Q0.32).
#[inline]
pub(crate) fn admits(ticket: u64, fraction: u64) -> bool {
    point(ticket) < fraction
}

/// The `n`-th point of the golden-ratio sequence in Q0.32.
#[inline]
fn point(n: u64) -> u64 {
    n.wrapping_mul(GOLDEN) >> 32
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn policy(start: f64, steps: u32) -> RampPolicy {
        RampPolicy {
            start,
            duration: Duration::from_secs(10),
            steps,
        }
    }

    #[test]
    fn linear_and_stepped_fractions() {
        let s = 1_000_000_000;
        let lin = policy(0.2, 0);
        assert_eq!(fraction_q32(&lin, 0), (0.2 * ONE as f64) as u64);
        assert_eq!(fraction_q32(&lin, 5 * s), (0.6 * ONE as f64) as u64);
        assert_eq!(fraction_q32(&lin, 10 * s), ONE);
        let stepped = policy(0.2, 4);
        // Steps of 2.5 s: 0.2, 0.4, 0.6, 0.8, then 1 at the end.
        for (at, f) in [
            (0, 0.2),
            (2_499_999_999, 0.2),
            (2_500_000_000, 0.4),
            (9 * s, 0.8),
        ] {
            assert_eq!(fraction_q32(&stepped, at), (f * ONE as f64) as u64, "{at}");
        }
        assert_eq!(fraction_q32(&stepped, u64::MAX), ONE);
    }

    proptest! {
        #[test]
        fn fraction_rises_from_start_to_one(
            start in 0.001f64..0.999, steps in 0u32..=100, a in any::<u64>(), b in any::<u64>(),
        ) {
            let p = policy(start, steps);
            let (lo, hi) = (a.min(b), a.max(b));
            let (fl, fh) = (fraction_q32(&p, lo), fraction_q32(&p, hi));
            prop_assert!(fl <= fh);
            prop_assert!(fl >= (start * ONE as f64) as u64 - 1 && fh <= ONE && fl > 0);
        }

        /// Any run of consecutive tickets, from any ticket, admits its share
        /// of calls within 8.
        #[test]
        fn consecutive_tickets_admit_their_share(
            first in 0u64..u64::MAX / 2, len in 1u64..10_000, f in 0.001f64..1.0,
        ) {
            let fraction = (f * ONE as f64) as u64;
            let admitted = (first..first + len).filter(|&n| admits(n, fraction)).count() as f64;
            let expect = len as f64 * fraction as f64 / ONE as f64;
            prop_assert!((admitted - expect).abs() <= 8.0, "{} vs {}", admitted, expect);
        }
    }
}
