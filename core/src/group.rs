//! Group guard: breakers of one registry put in a named group may have at
//! most so many members OPEN at once (for example one breaker per host of a
//! pool, of which at most 30 % may be cut off). A trip that would pass the
//! limit is refused: the breaker stays CLOSED, starts its statistics afresh
//! (a new generation, as a METRICS_ONLY shadow trip does), its listeners
//! get a transition with reason [`Reason::ShadowTrip`](crate::Reason), and
//! the group counts it, so the pool keeps serving.
//!
//! A member *holds a place* while its phase is OPEN or HALF_OPEN with no
//! override (an episode: from the trip until it closes again). The group
//! keeps one atomic count of places (invariant 15): a transition that would
//! make a member hold a place first reserves one with a CAS that succeeds
//! only below the limit, then makes its state CAS, and gives the place back
//! if that CAS loses; the winner of a transition that ends an episode gives
//! its place back after its CAS. So the count is never below the number of
//! members holding a place, and two trips can never both take the last free
//! place. Operator overrides (FORCED_OPEN included) are not trips and are
//! never refused.
//!
//! Breakers in no group pay nothing on the call path: the acquire fast path
//! never looks at groups, and a transition of an ungrouped breaker tests one
//! `Option`.

use crate::loom_shim::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::state::{Phase, Snapshot};
use std::sync::Arc;

/// How many members of a group may be OPEN at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GroupLimit {
    /// At most this many members.
    Count(u32),
    /// At most this fraction (0.0 to 1.0) of the group's current members,
    /// rounded down (30 % of 10 members: 3; of 2 members: 0).
    Fraction(f64),
}

impl GroupLimit {
    /// Checks the limit: a fraction must be finite and within 0.0..=1.0.
    pub fn validate(self) -> Result<GroupLimit, GroupLimitError> {
        match self {
            GroupLimit::Fraction(f) if !(0.0..=1.0).contains(&f) => {
                Err(GroupLimitError(f.to_bits()))
            }
            l => Ok(l),
        }
    }

    /// The packed form kept in [`Group`]: bit 63 set for a fraction, whose
    /// low bits are parts per million.
    fn pack(self) -> u64 {
        match self {
            GroupLimit::Count(n) => u64::from(n),
            GroupLimit::Fraction(f) => FRACTION | (f * PPM as f64).round() as u64,
        }
    }

    fn unpack(word: u64) -> GroupLimit {
        if word & FRACTION == 0 {
            GroupLimit::Count(word as u32)
        } else {
            GroupLimit::Fraction((word & !FRACTION) as f64 / PPM as f64)
        }
    }
}

/// A fraction outside 0.0..=1.0 (or NaN); holds the fraction's bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimitError(u64);

impl std::fmt::Display for GroupLimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "group limit fraction must be within 0.0..=1.0, got {}",
            f64::from_bits(self.0)
        )
    }
}

impl std::error::Error for GroupLimitError {}

const FRACTION: u64 = 1 << 63;
const PPM: u64 = 1_000_000;

/// A group of breakers under one guard. Created by
/// [`Registry::set_group`](crate::Registry::set_group).
#[derive(Debug)]
pub struct Group {
    name: Arc<str>,
    /// [`GroupLimit::pack`]; may be changed while members trip (a reservation
    /// reads it once).
    limit: AtomicU64,
    /// Breakers that joined (created by the registry into this group) and
    /// are alive.
    members: AtomicUsize,
    /// Places held or being reserved (invariant 15).
    open: AtomicUsize,
    /// Trips refused by the guard.
    refused: AtomicU64,
}

/// A copy of a group's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    /// The group's name.
    pub name: Arc<str>,
    /// Its limit.
    pub limit: GroupLimit,
    /// Members alive now.
    pub members: usize,
    /// Members holding a place (OPEN or HALF_OPEN) now, plus trips that
    /// have reserved one and are about to open.
    pub open: usize,
    /// Most members that may hold a place at once, for the current members.
    pub max_open: usize,
    /// Trips refused since the group was created.
    pub refused_trips: u64,
}

impl Group {
    pub(crate) fn new(name: Arc<str>, limit: GroupLimit) -> Group {
        Group {
            name,
            limit: AtomicU64::new(limit.pack()),
            members: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// The group's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub(crate) fn set_limit(&self, limit: GroupLimit) {
        // Relaxed: a configuration value; a reservation uses whichever
        // value it reads, and the place count stays exact either way.
        self.limit.store(limit.pack(), Ordering::Relaxed);
    }

    /// Most members that may hold a place at once, now.
    pub fn max_open(&self) -> usize {
        let word = self.limit.load(Ordering::Relaxed);
        if word & FRACTION == 0 {
            word as usize
        } else {
            let members = self.members.load(Ordering::Relaxed) as u128;
            (members * u128::from(word & !FRACTION) / u128::from(PPM)) as usize
        }
    }

    /// A copy of the group's numbers.
    pub fn stats(&self) -> GroupStats {
        GroupStats {
            name: self.name.clone(),
            limit: GroupLimit::unpack(self.limit.load(Ordering::Relaxed)),
            members: self.members.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            max_open: self.max_open(),
            refused_trips: self.refused.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn join(&self) {
        // Relaxed: the member count only sizes a fractional limit.
        self.members.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn leave(&self) {
        self.members.fetch_sub(1, Ordering::Relaxed);
    }

    /// Takes a place if one is free (invariant 15): one RMW chain on the
    /// count, so of two trips racing for the last place exactly one wins.
    pub(crate) fn reserve(&self) -> bool {
        let max = self.max_open();
        // AcqRel (invariant 15): a reservation that takes a place given back
        // by `release` synchronises with it, so the state CAS that ended
        // that member's episode happens before the CAS that starts this one.
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a place back (invariant 15).
    pub(crate) fn release(&self) {
        // AcqRel: pairs with the Acquire of `reserve` (invariant 15).
        let was = self.open.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(was > 0, "group {:?}: place released twice", self.name);
    }

    pub(crate) fn refused(&self) {
        // Relaxed: a counter (invariant 8).
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// True when a breaker whose word is `s` holds a place in its group: OPEN or
/// HALF_OPEN, no override.
#[inline]
pub(crate) fn holds_place(s: Snapshot) -> bool {
    s.override_mode().is_none() && s.phase() != Phase::Closed
}

/// A breaker's membership: its group, and whether the registry counted it
/// as a member (a candidate that lost a creation race never joins).
#[derive(Debug)]
pub(crate) struct Membership {
    pub(crate) group: Arc<Group>,
    /// 1 once joined.
    pub(crate) joined: AtomicU32,
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn limits_pack_and_round_down() {
        let g = Group::new(Arc::from("pool"), GroupLimit::Fraction(0.3));
        for _ in 0..10 {
            g.join();
        }
        assert_eq!(g.max_open(), 3);
        g.leave();
        assert_eq!(g.max_open(), 2);
        g.set_limit(GroupLimit::Count(5));
        assert_eq!(g.max_open(), 5);
        assert_eq!(g.stats().limit, GroupLimit::Count(5));
        assert!(GroupLimit::Fraction(1.5).validate().is_err());
        assert!(GroupLimit::Fraction(f64::NAN).validate().is_err());
        assert!(GroupLimit::Fraction(-0.1).validate().is_err());
        assert!(GroupLimit::Fraction(1.0).validate().is_ok());
    }

    #[test]
    fn reservations_stop_at_the_limit_and_come_back() {
        let g = Group::new(Arc::from("pool"), GroupLimit::Count(2));
        assert!(g.reserve());
        assert!(g.reserve());
        assert!(!g.reserve());
        g.release();
        assert!(g.reserve());
        assert_eq!(g.stats().open, 2);
    }
}
