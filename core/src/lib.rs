//! # circuit-core
//!
//! A lock-free circuit breaker. Calls follow a two-step protocol
//! (DESIGN.md section 3):
//!
//! ```
//! use circuit_core::{Breaker, Config, Outcome};
//! use std::time::Duration;
//!
//! let breaker = Breaker::new(Config::default());
//! match breaker.acquire() {
//!     Ok(permit) => {
//!         // ... call the dependency, measure it ...
//!         breaker.record(permit, Outcome::Success, Duration::from_millis(3));
//!     }
//!     Err(rejected) => { /* answer from a fallback */ let _ = rejected.retry_after; }
//! }
//! ```
//!
//! The core is pure: no `extern "C"`, no I/O, time from an injected
//! [`Clock`]. The C ABI (`circuit-ffi`), fleet sync (`circuit-sync`) and the
//! bindings are built on it. How the algorithms work is in
//! [`implementation`].
//!
//! ## Invariants
//!
//! Code comments cite these by number.
//!
//! 1. **One state word.** Phase, override, half-open probe counts, re-open
//!    streak and generation live in one `AtomicU64` (`state::StateCell`);
//!    reserved bits are zero. Nothing else decides admission.
//!    *Implemented by* `StateCell` and `Snapshot` in `core/src/state.rs`
//!    (the `Field` layout and the `to_*` / `with_probe_*` word builders).
//! 2. **Closed fast path.** `acquire` loads the word once; if phase is CLOSED
//!    and no override is set, it admits with no further memory access and
//!    no clock read.
//!    *Implemented by* `Breaker::acquire` (`core/src/breaker.rs`) with
//!    `Snapshot::on_fast_path`; everything else is `Breaker::acquire_slow`.
//! 3. **Transitions are single CAS operations** on the word that also
//!    increment the generation; exactly one thread wins each. Only the
//!    winner performs a transition's side effects (deadline stamp, clearing
//!    statistics, counters, listener), after the CAS, so the new state is
//!    published first. The CAS is AcqRel, state loads are Acquire: a thread
//!    that sees generation `g` sees every write the winner of `g` made before
//!    its CAS.
//!    *Implemented by* `Breaker::transition` (`core/src/breaker.rs`), the
//!    only caller of `StateCell::compare_exchange` that changes the phase
//!    or override; its callers are `acquire_slow`, `record_closed`,
//!    `record_probe`, `expire_override`, `force`, `clear_override`, `reset`,
//!    `apply_remote`, `shorten_open` and `restore` (a snapshot's state
//!    enters as one transition, `core/src/snapshot.rs`).
//! 4. **Stamped deadline.** Each generation has at most one deadline: the
//!    open deadline in OPEN, the probe lease in HALF_OPEN, the expiry under
//!    an override. One word holds it, tagged with the low 16 bits of its
//!    generation, written by the transition winner right after its CAS (a
//!    half-open lease is also raised by later grants). A writer stores only
//!    while the state word is still in its generation (checked inside the
//!    stamp's CAS loop), so a late writer never overwrites a newer
//!    generation's deadline. A reader that finds a stamp of another
//!    generation re-reads the state word: if it moved on, it starts over;
//!    if not, the winner has not written yet (or never will: it panicked,
//!    or its process was killed) and the reader stands in for it
//!    (`StampCell::fill`): in OPEN it stamps `now + max_open_duration`, in
//!    HALF_OPEN `now + probe_lease`, only while the generation is still
//!    unstamped, so a winner's own stamp always replaces the stand-in and
//!    is never replaced by it, and an episode whose winner died ends. An
//!    override without a stamp reads as "no expiry".
//!    *Implemented by* `Stamp` and `StampCell::store` / `StampCell::raise` /
//!    `StampCell::fill` (`core/src/state.rs`), written from
//!    `Breaker::transition`, `Breaker::extend_lease` and
//!    `Breaker::fill_missing_stamp`, read in `Breaker::acquire_slow`,
//!    `open_deadline` and `override_deadline`.
//! 5. **Overrides** sit above the phase. Setting one bumps the generation;
//!    leaving one (clear, expiry, reset) always lands in a fresh CLOSED.
//!    *Implemented by* `Breaker::force`, `Breaker::clear_override`,
//!    `Breaker::reset` and `Breaker::expire_override` (`core/src/breaker.rs`)
//!    with `Snapshot::to_override` / `Snapshot::to_closed`.
//! 6. **Statistics are statistics.** Window slots and counts, the
//!    consecutive-failure counter and the EWMA word are `Relaxed` and each is
//!    updated by a single RMW; they never guard other memory. The winner of
//!    any transition out of or into an admitting state clears them. Trip
//!    conditions are evaluated on the recording thread from its own RMW
//!    result, and only when the outcome is a failure or slow (a success
//!    can only lower a rate), and take effect only through invariant 3.
//!    A record that checked its generation just before a transition may
//!    still land its sample after the winner cleared the statistics: at
//!    most one sample per thread caught mid-record, never a transition.
//!    *Implemented by* `Window::record` (`core/src/window/`), `Ewma::record`
//!    (`core/src/ewma.rs`), `Breaker::record_closed` and
//!    `Breaker::window_trip` (evaluation), `Breaker::clear_statistics`
//!    (called by `Breaker::transition`).
//! 7. **Time** is the clock's `u64` nanoseconds, from any origin; all
//!    arithmetic saturates, so a clock set backwards only delays deadlines,
//!    a deadline past the end of time is reached at `u64::MAX` (it is
//!    "never" only for an override without expiry), and nothing panics.
//!    Stamps hold deadlines relative to a base taken when the breaker's
//!    environment is created (`state::Stamp`), and time windows index
//!    buckets by exact `u64` division, so no clock value is narrowed.
//!    *Implemented by* `Stamp::new` / `Stamp::deadline` (`core/src/state.rs`),
//!    `Env::new` (the stamp base, `core/src/breaker.rs`), `TimeWindow::index`
//!    (`core/src/window/time.rs`) and `clock::duration_to_nanos`.
//! 8. **Counters** are `Relaxed` 64-bit `fetch_add`s on cache lines apart from
//!    the state word; a snapshot reads each counter once.
//!    *Implemented by* `CallCounters` and `TransitionStats`
//!    (`core/src/metrics.rs`), read by `metrics::snapshot`; the layout is
//!    `Breaker`'s `Hot`/`Control` split (`core/src/breaker.rs`).
//! 9. **Generations and permits.** A permit carries the generation it was
//!    issued under; `record` with any other generation counts as stale and
//!    changes nothing else (B6). Half-open probes hold a slot in the word
//!    until they report or their lease expires; at most
//!    `half_open_probes` are admitted per half-open generation.
//!    *Implemented by* `Breaker::record_inner` (the generation check, then
//!    `Breaker::stale`) and the HALF_OPEN branch of `Breaker::acquire_slow`
//!    (`Snapshot::with_probe_admitted`), in `core/src/breaker.rs`.
//! 10. **Eviction handshake** (registry, idle eviction). A registry entry
//!     is one word: the breaker's `Arc` address and two flags, HANDED_OUT
//!     and EVICTED. A lookup clones the breaker, then sets HANDED_OUT with an
//!     AcqRel RMW and gives the clone back if it saw EVICTED. A sweep clears
//!     HANDED_OUT with an AcqRel RMW, then reads the strong count, then
//!     evicts with an AcqRel CAS from the bare address to EVICTED, only if
//!     the count showed no holder. One word totally orders the three RMWs:
//!     a hand-out after the clear fails the CAS; one before it synchronises
//!     with it, so its clone is in the count; one after the CAS hands out
//!     nothing. So a held breaker is never evicted and an evicted one never
//!     handed out: one name, one breaker, while anyone holds it.
//!     *Implemented by* `Slot::hand_out` (via `Registry::hand_out`, used by
//!     `Registry::get` and `get_or_create`, and by `Registry::for_each`) and
//!     `Registry::sweep_idle`, in `core/src/registry.rs`.
//! 11. **Probe tickets.** Each probe of a half-open generation carries a
//!     ticket, distinct within the generation (`state::ProbeLedger`); a
//!     probe's report first claims its ticket in the ledger, and only the
//!     first claim of a ticket goes on to change the word, so a permit
//!     reported twice counts once (B5: K successes are K distinct probes).
//!     The ledger belongs to one generation at a time and is reset, as stamps
//!     are written, only while the word is still in that generation; its
//!     RMWs are AcqRel so that the word load inside them sees any later
//!     transition whose ledger they read.
//!     *Implemented by* `ProbeLedger::issue` / `ProbeLedger::claim`
//!     (`core/src/state.rs`), called from `Breaker::acquire_slow` and
//!     `Breaker::record_probe` (`core/src/breaker.rs`).
//! 12. **Counter cells.** A breaker's call counters (invariant 8) are the
//!     sum of an inline cell and, once the breaker is contended, per-thread
//!     stripes on cache lines of their own. Any thread may add to any cell,
//!     a read sums every cell, and cells are never cleared or freed while
//!     the breaker lives, so counts are exact whichever cell a record
//!     chose. The choice is a hint: the owner word (`Relaxed`) names the
//!     thread that writes the inline cell, and after a number of ownership
//!     hand-offs says the breaker is contended. The stripes, and the side
//!     box that holds them with the latency histogram, are published once
//!     each by a CAS from null (AcqRel) and read with Acquire loads, so a
//!     thread that finds a pointer sees initialised cells.
//!     The same owner word tells a count window to take lanes
//!     (invariant 16).
//!     *Implemented by* `Owner`, `Side` and `tag` (`core/src/striped.rs`),
//!     `Breaker::cell` / `Breaker::claim_cell` (`core/src/breaker.rs`), and
//!     `metrics::snapshot`, which sums the cells.
//! 13. **Segment slots** (host-shared breakers, `shared`). A slot word of
//!     a mapped segment goes FREE -> CLAIMING(pid) -> READY, and READY is
//!     final. The claimer wins by an AcqRel CAS, writes the name and the
//!     slot's initial words, then stores READY with Release; a process
//!     reads a slot's name and words only after an Acquire load of READY,
//!     so it never sees a half-written slot. A CLAIMING slot whose pid no
//!     longer exists is taken over by the same CAS and written again.
//!     Processes asking for one name probe the slots in one order (from the
//!     name's hash) and stop at the first slot that holds the name or that
//!     they claim, so one name gets one slot.
//!     *Implemented by* `Slot::settle` / `Slot::initialise`
//!     (`core/src/shared/segment.rs`). A READY slot's words are then
//!     driven by an ordinary `Breaker` (`Segment::breaker`, through
//!     `place::Mapped`) under invariants 1-12, unchanged: the same atomic
//!     operations with the same orderings, on shared memory, which is
//!     coherent across processes as across threads.
//! 14. **Ramp-up.** A config with a ramp closes HALF_OPEN into phase
//!     RAMPING (code 3: CLOSED to hosts, off the fast path because the
//!     phase bits are not zero). The transition's winner stamps the ramp's
//!     end as the generation's deadline (invariant 4); acquires read it with
//!     the coarse clock and admit the fraction due by drawing a `Relaxed`
//!     ticket. The first acquire at or after the end clears RAMPING with a
//!     CAS that keeps the generation (not a transition: no event, ramp
//!     permits stay valid, the statistics go on); a trip during the ramp is
//!     an ordinary CLOSED -> OPEN transition whose streak is the HALF_OPEN
//!     streak plus one, so backoff applies.
//!     A transition out of RAMPING whose CAS lost only to the ramp's end
//!     is tried once more from the word after it, so a trip is never lost
//!     to that CAS.
//!     *Implemented by* `Snapshot::to_ramping` / `without_ramp`
//!     (`core/src/state.rs`), the ramp `impl Breaker` block at the end of
//!     `core/src/breaker.rs` (`acquire_ramping`, `recovered`,
//!     `leave_ramp`, called by `Breaker::transition`) and
//!     `core/src/ramp.rs`.
//! 15. **Group places.** A breaker in a group holds a place while its word
//!     is OPEN or HALF_OPEN with no override. The group's place count is
//!     one atomic: a transition that would start holding a place reserves
//!     one by an AcqRel RMW that succeeds only below the limit, before its
//!     state CAS, and gives it back if the CAS loses; the winner of a
//!     transition that stops holding one gives it back after its CAS (a
//!     dropped breaker holding one gives it back in `drop`). So the count
//!     is never below the number of members holding a place, and of two
//!     trips racing for the last place one is refused. A refused trip is a
//!     shadow trip (same state, new generation, reason `ShadowTrip`). The
//!     AcqRel pairs a reservation with the release it took the place from,
//!     so the episode that ended happens before the one that starts.
//!     *Implemented by* `Group::reserve` / `Group::release`
//!     (`core/src/group.rs`) and `Breaker::transition` / `Breaker::refuse`
//!     (`core/src/breaker.rs`).
//! 16. **Window lanes.** An in-process count window is recorded through
//!     one cursor until the breaker counts as contended (the owner word of
//!     invariant 12, claimed on the record path whether or not metrics
//!     are on); from then on each thread takes its tickets through its
//!     lane: a run of tickets taken from the cursor several at a time, on a
//!     cache line of its own, used only by the thread that took it and
//!     only while it is less than a lap behind the cursor. Slots and the
//!     counts word keep the delta rule of invariant 6, so once the records
//!     in flight land the counts equal the slots' bits; calls are the
//!     tickets taken less those unused or given up in the lanes, at most
//!     the window's size. All of it is statistics (`Relaxed`) except the
//!     lanes' publication: once, by a CAS from zero (AcqRel) on a word
//!     after the slot words, read with Acquire loads, freed with the
//!     window. A host-shared window never takes lanes.
//!     *Implemented by* `CountWindow::record` / `record_in_lane` / `take` /
//!     `new_run` / `lanes_or_new` / `counts_with` / `clear`
//!     (`core/src/window/count.rs`) and `Breaker::contended`
//!     (`core/src/breaker.rs`).
//! 18. **Config swap** (live reconfiguration). A breaker's config is one
//!     pointer, loaded once per call with Acquire and used for the whole
//!     call; a reconfiguration publishes a new config with a Release swap,
//!     after writing and publishing (Release) any window it replaces, so a
//!     call that loads the new pointer sees the new config and the seeded
//!     window it names (the config's `window_at`: inline, or the one
//!     published in the side box). A config or window once published is
//!     never freed while
//!     the breaker lives (a call may still hold the old one); replaced ones
//!     are kept, one per distinct config and one per window shape, and
//!     freed with the breaker. Reconfigurations of a breaker are serialised
//!     by a lock that no call takes. A reconfiguration that seeded a window
//!     then CASes the state word onto itself (AcqRel): a transition after
//!     that CAS acquires the new config and clears the new window; one
//!     before it fails the CAS and the reconfiguration clears the window
//!     itself, so no window keeps statistics of an earlier stretch
//!     (invariant 6).
//!     *Implemented by* `ConfigCell`, `WindowAt`, `Reconfig` and `Pool`
//!     (`core/src/reconfig.rs`), `Breaker::reconfigure_shared` /
//!     `settle_window` / `window_of` (`core/src/breaker.rs`), and
//!     `Registry::reconfigure` (`core/src/registry.rs`).
//!
//! ## Behaviours
//!
//! The numbered behaviours of the design (B1-B12, the README's Behaviour
//! table), and where each is implemented:
//!
//! - **B1** states and overrides: `Breaker::force`, `clear_override`,
//!   `reset`, `expire_override` and the override branch of
//!   `Breaker::acquire_slow` (`core/src/breaker.rs`); `Snapshot::state`
//!   (`core/src/state.rs`) names the state.
//! - **B2** trip conditions: `Breaker::record_closed` and
//!   `Breaker::window_trip`, with `Ewma::record` (`core/src/ewma.rs`) and
//!   `Outcome::is_failure` (`core/src/call.rs`).
//! - **B3** windows: `Window` (`core/src/window/mod.rs`) over `CountWindow`
//!   (`window/count.rs`) or `TimeWindow` (`window/time.rs`); emptied on
//!   entering CLOSED by `Breaker::clear_statistics`.
//! - **B4** open duration: `Breaker::open_duration`, stamped once per
//!   generation by `Breaker::transition`.
//! - **B5** half-open: `Breaker::acquire_slow` (OPEN -> HALF_OPEN, probe
//!   admission, lease expiry), `Breaker::extend_lease`,
//!   `Breaker::record_probe`, `ProbeLedger`.
//! - **B6** generations: the `Snapshot::to_*` builders bump the generation;
//!   `Breaker::record_inner` sends an older permit to `Breaker::stale`.
//! - **B7** events: `Breaker::transition` (after its CAS) calls
//!   `ListenerSet::emit` (`core/src/events.rs`); `EventQueue` is the
//!   pollable, counted-overflow listener.
//! - **B8** metrics: `CallCounters`, `TransitionStats`, `metrics::snapshot`
//!   (`core/src/metrics.rs`), `Breaker::metrics`, `LatencyHistogram`
//!   (`core/src/histogram.rs`), `prometheus::render_registry`.
//! - **B9** registry: `Registry::get_or_create`, `set_config`, `get`,
//!   `for_each` / `sorted`, `sweep_idle` (`core/src/registry.rs`).
//! - **B10** retry: `RetryPolicy::delay`, `RetryBudget::try_retry`,
//!   `Retrier::run` and `is_rejected` (the `retry` module).
//! - **B11** adaptive timeout: `AdaptiveTimeout::recommend`
//!   (`core/src/adaptive.rs`), `Breaker::recommended_timeout`.
//! - Active health probes (issue 18): `probe::Prober`
//!   (`core/src/probe.rs`) over `Breaker::probe_due_at`, a read of the word
//!   and its stamp; the probe's permit comes from `Breaker::acquire` and its
//!   outcome goes through `Breaker::record`, so B4, B5 and invariant 14 apply
//!   unchanged. The prober's table is behind a `Mutex`: no atomic, hence no
//!   invariant of its own.
//! - **B12** bad input: `ConfigBuilder::build` (`core/src/config.rs`) and
//!   the other builders' `build`; saturating time in
//!   `clock::duration_to_nanos` and `Stamp`; across the C ABI, the
//!   argument checks of `ffi/src/boundary.rs` and the typed handles of
//!   `ffi/src/handle.rs`.

#![cfg_attr(not(test), warn(missing_docs))]

/// The closed fast path as a contract for hosts across an FFI boundary.
///
/// `acquire` in CLOSED is one atomic load and a branch (invariant 2). A
/// wrapper whose every foreign call is expensive (ctypes, cgo) may perform
/// exactly that check itself on the word at `Breaker::state_word_ptr`:
///
/// ```text
/// word = atomic_load_acquire(state_word)
/// if word & MASK == 0:  admitted, permit = { generation: word >> GENERATION_SHIFT, flags: 0 }
/// else:                 call acquire() as usual
/// ```
///
/// This is the whole of the closed fast path, so the wrapper duplicates no
/// decision: any other word goes through the core. The constants are part
/// of the C ABI and change only with its version.
///
/// **Repeating a rejection in OPEN.** A host that read the state word `w`
/// and the deadline word `d` (`Breaker::deadline_word_ptr`), then its
/// monotonic clock `t0`, then got `RejectReason::Open` with a retry-after
/// `r` from `acquire`, and reads `w` and `d` again afterwards, may refuse
/// later calls itself (reason OPEN, retry-after `t0 + r - now`) while both
/// words still read `w` and `d` and `now < t0 + r`, adding 1 to
/// `Breaker::open_rejection_cell_ptr` per call so refused. That is the
/// core's own answer for those words: in OPEN with a deadline set, acquire
/// refuses until the deadline, and every change that could admit a call
/// (a transition, an override, a reset, a fleet update, a deadline written)
/// changes one of the words. Only a breaker on the system clock qualifies
/// (the host's clock must be the breaker's); no other rejection does
/// (forced open, half-open full, ramp-limited go through `acquire`).
pub mod fast_path {
    /// Bits that must all be zero for the fast path to admit.
    pub const MASK: u64 = crate::state::FAST_PATH_MASK;
    /// Shift of the 32-bit generation in the word.
    pub const GENERATION_SHIFT: u32 = crate::state::GENERATION.shift;
}

pub mod adaptive;
mod breaker;
mod call;
pub mod clock;
pub mod config;
pub mod events;
mod ewma;
pub mod group;
mod guard;
pub mod hash;
pub mod histogram;
pub mod http;
pub mod implementation;
mod loom_shim;
mod metrics;
mod place;
pub mod probe;
pub mod prometheus;
mod ramp;
mod reconfig;
pub mod registry;
pub mod retry;
mod ring;
mod rng;
#[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
pub mod shared;
pub mod snapshot;
mod state;
mod striped;
mod transition;
pub mod window;
mod words;

pub use breaker::Breaker;
pub use call::{Outcome, Permit, Recorded, RejectReason, Rejected};
pub use clock::{Clock, ManualClock, MonotonicClock, Nanos};
pub use config::{Config, ConfigBuilder, ConfigError, RampPolicy, WindowKind};
pub use events::{Event, EventQueue, Listener, ListenerId};
pub use group::{Group, GroupLimit, GroupStats};
pub use guard::{outcome_of_result, CallError, Guard};
pub use metrics::MetricsSnapshot;
/// Test hooks for the crash tests of host-shared breakers.
#[cfg(feature = "test-hooks")]
pub use place::hooks as test_hooks;
pub use registry::{Registry, RegistryError, RegistryOptions};
pub use snapshot::SnapshotError;
pub use state::{Override, Phase, State};
pub use transition::{Reason, Transition};
