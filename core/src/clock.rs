//! Injected time (sans-IO): the core never asks the operating system for the
//! time directly, it asks a [`Clock`].
//!
//! Time is a `u64` count of nanoseconds since the clock's own origin
//! ([`Nanos`]). Only differences between readings of the same clock matter, so
//! hosts on different clocks never have to agree.
//!
//! The core reads the clock only when a decision needs it (DESIGN.md section
//! 2): never on the CLOSED count-window path; on transitions, on acquire while
//! OPEN or HALF_OPEN, when an override has an expiry, and to find the current
//! bucket of a time window. Reads that only need bucket granularity use
//! [`Clock::coarse_now`], which on Linux is `CLOCK_MONOTONIC_COARSE` (a vDSO
//! read of a tick-updated value, a few nanoseconds, resolution one kernel
//! tick, typically 1-4 ms).

use crate::loom_shim::{AtomicU64, Ordering};
use core::fmt;
use std::time::Duration;

/// Nanoseconds since a clock's origin.
pub type Nanos = u64;

/// A monotonic time source. Implementations must be cheap and thread-safe.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time, as precise as the source allows.
    fn now(&self) -> Nanos;

    /// The current time at bucket granularity. Must never run ahead of
    /// [`Clock::now`]; may lag it by up to one kernel tick. Defaults to `now`.
    fn coarse_now(&self) -> Nanos {
        self.now()
    }

    /// True only for a clock whose readings differ exactly as the
    /// operating system's monotonic clock's do (`CLOCK_MONOTONIC` on
    /// Linux), so that a host may compare a deadline the breaker reported
    /// with its own monotonic clock (`crate::fast_path`). Defaults to false.
    fn is_system_monotonic(&self) -> bool {
        false
    }

    /// Wall-clock time in nanoseconds since the Unix epoch. Read only to
    /// date a snapshot and to age it on restore (`Breaker::snapshot`,
    /// `Breaker::restore`), because monotonic readings mean nothing in
    /// another process. Defaults to the system clock (0 before 1970,
    /// saturating in 2554).
    fn wall_now(&self) -> Nanos {
        system_wall_now()
    }
}

/// The system's wall clock, in nanoseconds since the Unix epoch.
pub fn system_wall_now() -> Nanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, duration_to_nanos)
}

/// The production clock: `CLOCK_MONOTONIC` for `now`, `CLOCK_MONOTONIC_COARSE`
/// for `coarse_now` (same epoch, so readings compare), both relative to the
/// first reading in this process so that stamps stay small (see
/// `state::Stamp`).
#[derive(Debug, Default, Clone, Copy)]
pub struct MonotonicClock;

impl MonotonicClock {
    /// A handle to the process-wide monotonic clock.
    pub const fn new() -> Self {
        MonotonicClock
    }
}

#[cfg(target_os = "linux")]
mod os {
    use super::Nanos;
    use std::sync::OnceLock;

    fn read(clock: libc::clockid_t) -> Nanos {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec and both clock ids are
        // supported by every Linux kernel this library runs on; on the
        // impossible failure `ts` stays zero, which only makes time stand still.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64)
    }

    fn origin() -> Nanos {
        static ORIGIN: OnceLock<Nanos> = OnceLock::new();
        // Start one second before the first reading, so a coarse reading that
        // lags the first precise one never underflows.
        *ORIGIN.get_or_init(|| read(libc::CLOCK_MONOTONIC).saturating_sub(1_000_000_000))
    }

    pub(super) fn precise() -> Nanos {
        read(libc::CLOCK_MONOTONIC).saturating_sub(origin())
    }

    pub(super) fn coarse() -> Nanos {
        read(libc::CLOCK_MONOTONIC_COARSE).saturating_sub(origin())
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use super::Nanos;
    use std::sync::OnceLock;
    use std::time::Instant;

    pub(super) fn precise() -> Nanos {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn coarse() -> Nanos {
        precise()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Nanos {
        os::precise()
    }

    #[inline]
    fn coarse_now(&self) -> Nanos {
        os::coarse()
    }

    fn is_system_monotonic(&self) -> bool {
        // Elsewhere `Instant` may not be the clock a host reads.
        cfg!(target_os = "linux")
    }
}

/// A clock that moves only when told to: simulated time for tests, demos and
/// every binding's test suite. Setting it backwards is allowed; the breaker
/// treats a deadline in the "future" as not reached (invariant 7).
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A manual clock reading `start` nanoseconds.
    pub fn new(start: Nanos) -> Self {
        ManualClock {
            nanos: AtomicU64::new(start),
        }
    }

    /// Moves the clock forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        // Relaxed: the clock value protects no other memory; readers only
        // need some value from its modification order.
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets the clock to `nanos`, forwards or backwards.
    pub fn set(&self, nanos: Nanos) {
        self.nanos.store(nanos, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Nanos {
        self.nanos.load(Ordering::Relaxed)
    }

    /// Simulated time is wall time too: a snapshot taken at reading `t`
    /// and restored on a manual clock reading `t + 3 s` has aged 3 s.
    fn wall_now(&self) -> Nanos {
        self.now()
    }
}

/// A `Duration` as nanoseconds, saturating at `u64::MAX` (584 years).
#[inline]
pub fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_moves_forward_and_coarse_never_leads() {
        let c = MonotonicClock::new();
        let a = c.now();
        std::thread::sleep(Duration::from_millis(2));
        let coarse = c.coarse_now();
        let b = c.now();
        assert!(b > a);
        assert!(coarse <= b, "coarse {coarse} ran ahead of precise {b}");
    }

    #[test]
    fn manual_clock_advances_saturates_and_goes_back() {
        let c = ManualClock::new(10);
        c.advance(Duration::from_nanos(5));
        assert_eq!(c.now(), 15);
        c.advance(Duration::MAX);
        assert_eq!(c.now(), u64::MAX);
        c.set(3);
        assert_eq!(c.coarse_now(), 3);
    }
}
