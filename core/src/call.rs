//! The call protocol's values (DESIGN.md section 3): a [`Permit`] from
//! `acquire`, an [`Outcome`] for `record`, a [`Rejected`] when refused.

use std::time::Duration;

/// Proof that a call was admitted. Small and `Copy`: it crosses the C ABI by
/// value. It carries the generation it was issued under (B6) and flags:
///
/// | bits  | meaning                                                        |
/// |-------|----------------------------------------------------------------|
/// | 0     | half-open probe                                                |
/// | 8-15  | a probe's ticket in its generation (invariant 11)              |
/// | 16-31 | a probe's breaker tag: a probe reported to another breaker is stale |
///
/// A permit must be recorded exactly once. A probe recorded again counts as
/// stale and changes nothing (its ticket is already claimed); a CLOSED
/// permit carries nothing to tell a second record from a new call, so the
/// bindings make a second record impossible and the C header states the
/// contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permit {
    pub(crate) generation: u32,
    pub(crate) flags: u32,
}

impl Permit {
    pub(crate) const PROBE: u32 = 1;
    const TICKET_SHIFT: u32 = 8;
    const TAG_SHIFT: u32 = 16;
    /// Every flag bit that means something; the rest are dropped.
    const KNOWN: u32 = Permit::PROBE | 0xFFFF_FF00;

    /// A CLOSED (or override) permit: flags 0, as the closed fast path of a
    /// binding builds it.
    #[inline]
    pub(crate) fn new(generation: u32) -> Permit {
        Permit {
            generation,
            flags: 0,
        }
    }

    /// A half-open probe with its ticket and its breaker's tag.
    pub(crate) fn probe(generation: u32, ticket: u32, tag: u16) -> Permit {
        Permit {
            generation,
            flags: Permit::PROBE
                | ((ticket & 0xFF) << Permit::TICKET_SHIFT)
                | (u32::from(tag) << Permit::TAG_SHIFT),
        }
    }

    /// The generation the permit was issued under.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// True for a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.flags & Permit::PROBE != 0
    }

    /// A probe's ticket (meaningless for other permits).
    pub(crate) fn ticket(&self) -> u32 {
        (self.flags >> Permit::TICKET_SHIFT) & 0xFF
    }

    /// A probe's breaker tag (meaningless for other permits).
    pub(crate) fn tag(&self) -> u16 {
        (self.flags >> Permit::TAG_SHIFT) as u16
    }

    /// Raw parts, for the C ABI.
    pub fn into_raw(self) -> (u32, u32) {
        (self.generation, self.flags)
    }

    /// Rebuilds a permit from raw parts handed back by a host. Flag bits
    /// that mean nothing are dropped; a forged permit can at worst be
    /// recorded as stale or as an ordinary call of the generation it names
    /// (a forged probe also needs an issued, unreported ticket and the
    /// breaker's tag).
    pub fn from_raw(generation: u32, flags: u32) -> Permit {
        Permit {
            generation,
            flags: flags & Permit::KNOWN,
        }
    }
}

/// How an admitted call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The dependency answered well.
    Success = 0,
    /// The dependency failed.
    Failure = 1,
    /// The call timed out; counts as a failure (B2).
    Timeout = 2,
    /// Neutral (cancellation, client error): frees a half-open probe slot and
    /// counts only in its own metric (B2).
    Ignored = 3,
}

impl Outcome {
    /// All outcomes, indexed by their discriminant.
    pub const ALL: [Outcome; 4] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Timeout,
        Outcome::Ignored,
    ];

    /// Converts a host's integer, refusing unknown values (never trust an
    /// enum from C).
    pub fn from_u32(v: u32) -> Option<Outcome> {
        Outcome::ALL.get(v as usize).copied()
    }

    /// True for outcomes that count as failed.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure | Outcome::Timeout)
    }

    /// Lower-case name used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Timeout => "timeout",
            Outcome::Ignored => "ignored",
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The breaker is OPEN.
    Open = 0,
    /// An operator forced it open.
    ForcedOpen = 1,
    /// HALF_OPEN and every probe slot is taken.
    HalfOpenFull = 2,
    /// CLOSED and ramping up after recovery: this call is outside the
    /// fraction admitted now.
    RampLimited = 3,
}

impl RejectReason {
    /// All reasons, indexed by their discriminant.
    pub const ALL: [RejectReason; 4] = [
        RejectReason::Open,
        RejectReason::ForcedOpen,
        RejectReason::HalfOpenFull,
        RejectReason::RampLimited,
    ];

    /// Lower-case name used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Open => "open",
            RejectReason::ForcedOpen => "forced_open",
            RejectReason::HalfOpenFull => "half_open_full",
            RejectReason::RampLimited => "ramp_limited",
        }
    }
}

/// A refused call: the reason and, when known, how long until the breaker
/// may admit again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Why.
    pub reason: RejectReason,
    /// Time until the open deadline, override expiry or probe lease expiry;
    /// `None` when no deadline is known (forced open without expiry).
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "circuit breaker rejected the call: {}",
            self.reason.as_str()
        )?;
        if let Some(d) = self.retry_after {
            write!(f, " (retry after {d:?})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

/// What `record` did with an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Counted; no transition.
    Counted,
    /// Counted, and this record won a transition to the given state.
    Transitioned(crate::State),
    /// The permit's generation is not the breaker's: counted as stale only (B6).
    Stale,
    /// The breaker is DISABLED: nothing recorded.
    NotRecorded,
}
