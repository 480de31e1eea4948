//! Transitions and their reasons (B6, B7).

use crate::clock::Nanos;
use crate::State;

/// Why a transition happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Consecutive failures reached the threshold.
    ConsecutiveFailures = 0,
    /// The window's failure rate reached the threshold.
    FailureRate = 1,
    /// The window's slow-call rate reached the threshold.
    SlowCallRate = 2,
    /// The EWMA failure rate reached the threshold.
    EwmaFailureRate = 3,
    /// A half-open probe failed (or was slow under the slow-call policy).
    ProbeFailed = 4,
    /// Enough half-open probes succeeded.
    ProbesSucceeded = 5,
    /// The open deadline passed and a call arrived.
    OpenDeadlinePassed = 6,
    /// Every probe slot was taken past its lease; the slots were freed.
    ProbeLeaseExpired = 7,
    /// An operator set an override.
    OverrideSet = 8,
    /// An operator cleared the override.
    OverrideCleared = 9,
    /// The override's expiry passed.
    OverrideExpired = 10,
    /// An operator reset the breaker.
    Reset = 11,
    /// METRICS_ONLY: a policy would have tripped; the window starts afresh.
    ShadowTrip = 12,
    /// Applied from another instance (fleet sync).
    Remote = 13,
    /// Restored from a snapshot (`Breaker::restore`).
    Restored = 14,
}

impl Reason {
    /// All reasons, indexed by discriminant.
    pub const ALL: [Reason; 15] = [
        Reason::ConsecutiveFailures,
        Reason::FailureRate,
        Reason::SlowCallRate,
        Reason::EwmaFailureRate,
        Reason::ProbeFailed,
        Reason::ProbesSucceeded,
        Reason::OpenDeadlinePassed,
        Reason::ProbeLeaseExpired,
        Reason::OverrideSet,
        Reason::OverrideCleared,
        Reason::OverrideExpired,
        Reason::Reset,
        Reason::ShadowTrip,
        Reason::Remote,
        Reason::Restored,
    ];

    /// Lower-case name for logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ConsecutiveFailures => "consecutive_failures",
            Reason::FailureRate => "failure_rate",
            Reason::SlowCallRate => "slow_call_rate",
            Reason::EwmaFailureRate => "ewma_failure_rate",
            Reason::ProbeFailed => "probe_failed",
            Reason::ProbesSucceeded => "probes_succeeded",
            Reason::OpenDeadlinePassed => "open_deadline_passed",
            Reason::ProbeLeaseExpired => "probe_lease_expired",
            Reason::OverrideSet => "override_set",
            Reason::OverrideCleared => "override_cleared",
            Reason::OverrideExpired => "override_expired",
            Reason::Reset => "reset",
            Reason::ShadowTrip => "shadow_trip",
            Reason::Remote => "remote",
            Reason::Restored => "restored",
        }
    }
}

/// One transition, as delivered to listeners and the event queue (B7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Generation after the transition.
    pub generation: u32,
    /// Why.
    pub reason: Reason,
    /// Clock reading of the winner, just after its CAS.
    pub at: Nanos,
    /// For a transition to OPEN: the open duration chosen (after backoff,
    /// jitter and clamping), in nanoseconds; otherwise 0.
    pub open_for: u64,
}
