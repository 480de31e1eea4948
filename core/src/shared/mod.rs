//! Host-shared breakers: one breaker state per host, in a mapped segment
//! that every worker process opens (issue 17).
//!
//! # Status
//!
//! Built and tested: the segment ([`Segment`]: race-free creation,
//! validation, mode, named slots, per-process counter stripes), its byte
//! layout ([`layout`]), the core's `Breaker` running on a slot's words
//! ([`Segment::breaker`], `crate::place`), the missing-stamp rule, and
//! events for transitions won by other processes (tests:
//! `core/tests/shared_segment.rs`, `core/tests/shared_breaker.rs`; bench:
//! `benches/benches/shared.rs`), and the C ABI (`ffi/src/segment.rs`).
//! Python: `circuit.Segment`; Go: `OpenSegment`. A registry on a segment
//! (`Registry::on_segment`; test: `core/tests/shared_registry.rs`) and
//! fleet sync on top of it (`sync/tests/shared_host.rs`).
//!
//! # Design
//!
//! ## The decision words move; the logic does not
//!
//! Every decision a breaker makes reads or writes a handful of atomic
//! words: the state word (`state::StateCell`, invariant 1), the deadline
//! stamp (`StampCell`, invariant 4), the probe ledger (`ProbeLedger`,
//! invariant 11), the consecutive-failure counter and the EWMA word
//! (invariant 6), the window's words (cursor, biased counts and slot words
//! of a count window; buckets and rolled-at words of a time window) and the
//! call counters (invariants 8, 12). A slot of the segment holds exactly
//! those words, at fixed offsets ([`layout`]), initialised by the core's own
//! constructors (each cell type is `repr(transparent)` over one
//! `AtomicU64`). The breaker logic stays in `breaker.rs`: a shared breaker
//! is the same `Breaker` whose words are reached through a place that is
//! either inline (today's heap breaker, unchanged) or a slot. This was first
//! planned as a type parameter (`Breaker<P: Place = Inline>`); it is built
//! instead as one `Breaker` type whose slow paths are generic over the place
//! and whose fast paths read the inline words, which a host-shared breaker
//! sets to a word that is never on the fast path (`crate::place` says why:
//! the registry, the C ABI handle and the wrappers hold one `Breaker` type).
//! Nothing is written twice.
//!
//! What stays per process, by design: listeners, the clock object, the
//! name `Arc`, the config, the latency histogram and the transition
//! statistics (time in state is a process's view; transition counts are
//! counted by the winner, so summing them over processes gives the host's).
//!
//! ## Counters: per-process stripes
//!
//! A slot has `stripes` process stripes of 128 bytes: an owner word (pid)
//! and the call counters in `CallCounters` order. A process claims a stripe
//! by CAS on its owner word (free, or held by a pid that no longer exists)
//! and adds to it with `Relaxed` `fetch_add`s, so recording is contention
//! free across processes, and exact: every count is an RMW on shared
//! memory, a read sums every stripe, and stripes are never cleared, so a
//! dead process's counts stay in the sum. When every stripe is held by a
//! live process, a process shares stripe `pid mod stripes` (still exact).
//!
//! ## Time: host-wide monotonic nanoseconds
//!
//! `CLOCK_MONOTONIC` is one clock for the whole host on Linux, so deadlines
//! written by one process mean the same to every other. A shared breaker
//! reads [`HostClock`] (raw `CLOCK_MONOTONIC`, not the per-process origin of
//! `MonotonicClock`), and stamps are relative to the segment's stamp base
//! (in the header, taken by the creator), not to a per-process base.
//!
//! ## Transitions won elsewhere
//!
//! The generation in the state word is the host's transition epoch: every
//! transition, in any process, increments it. Each process keeps the last
//! word it has seen on the slot (`place::Mapped`); every call of a
//! host-shared breaker takes the slow path, and one that loads a newer
//! generation advances that word by CAS and fires the local listeners once,
//! with reason `Remote`, from the state last seen to the state it now sees
//! (intermediate transitions are folded into one event; their counts are in
//! the transition statistics of the processes that won them). The winner of
//! a transition advances it after its own CAS, so its event is not repeated
//! (a thread of the same process that loads the word between the two may
//! report it once more as `Remote`). In-process breakers do no part of this.
//!
//! ## Crashes
//!
//! - A probe slot held by a dead process: the half-open lease (the stamp
//!   of the HALF_OPEN generation) expires as it does for a lost permit in
//!   one process; no extra rule.
//! - A process killed between winning a transition (its CAS) and writing
//!   the transition's stamp leaves a generation with no stamp: today a
//!   reader takes "not yet written" as "still open" and would wait for
//!   ever. The rule for shared breakers: a reader that finds the current
//!   generation unstamped writes the stamp itself, with a conditional
//!   `fetch_update` that stores only while the stamp still belongs to
//!   another generation and the word is still in this one: deadline
//!   `now + max_open_duration` in OPEN, `now + probe_lease` in HALF_OPEN,
//!   no expiry under an override. The winner's own store, if it comes,
//!   replaces it (a winner's store is unconditional within its
//!   generation), so a live winner's deadline always wins and a dead one's
//!   breaker reopens for at most `max_open_duration` after the first reader
//!   saw it.
//! - A process killed while claiming a slot: the slot word names its pid;
//!   another process takes the claim over once that pid is gone (invariant
//!   13) and writes the whole slot again.
//! - A process killed mid-record: at most the one sample it was writing is
//!   lost or left in the window, as for a thread (invariant 6).
//!
//! ## Requirements
//!
//! Lock-free 64-bit atomics (cross-process atomics on a shared mapping are
//! only correct when they are native instructions): the module is built on
//! Unix targets with 64-bit atomics, outside loom models.

pub mod layout;
mod segment;

pub use segment::{shm_path, Segment, SegmentError, SegmentOptions, Slot, SlotCounts, Stripe};

use crate::clock::{Clock, Nanos};

/// Raw `CLOCK_MONOTONIC`: the same reading in every process of the host,
/// the clock of shared breakers.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostClock;

impl HostClock {
    fn read(id: libc::clockid_t) -> Nanos {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec and the clock ids are
        // supported by every Linux kernel; on failure it stays zero.
        unsafe { libc::clock_gettime(id, &mut ts) };
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64)
    }
}

impl Clock for HostClock {
    fn now(&self) -> Nanos {
        HostClock::read(libc::CLOCK_MONOTONIC)
    }

    fn coarse_now(&self) -> Nanos {
        HostClock::read(libc::CLOCK_MONOTONIC_COARSE)
    }
}
