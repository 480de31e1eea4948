//! How the breaker works inside (documentation only).
//!
//! ## The call path
//!
//! `acquire` in CLOSED loads the state word and returns a permit carrying its
//! generation. `record` loads the word again: a different generation means the
//! permit is stale (counted, nothing else). In CLOSED it then updates, in this
//! order and only for the policies configured:
//!
//! | policy | work per record |
//! |---|---|
//! | metrics | one `fetch_add` on the outcome counter (and one for slow calls) |
//! | consecutive failures | failure: one `fetch_add`; success: a load, and a store only when a streak was running |
//! | count window | `fetch_add` on the cursor, a CAS on the slot word, a `fetch_add` on the packed counts when the slot's bits change |
//! | time window | a coarse clock read, a CAS on the bucket word, and on a failure or slow call a sum over the buckets |
//! | EWMA | one CAS loop on the packed word |
//!
//! A trip is decided from the values those RMWs returned, then made real by a
//! single CAS on the state word; the loser of that CAS does nothing more.
//!
//! ## Why deltas and a bias in the count window
//!
//! Keeping `failures` and `slow` in one word lets one `fetch_add` update both.
//! A record replaces a slot and adds `new - old` to the counts. Two records
//! that overwrite the same slot in quick succession can apply their deltas in
//! the opposite order to their slot writes, so a count can be one below its
//! true value for an instant; biasing each 32-bit field by 2^31 keeps that dip
//! from borrowing into the neighbouring field, and the final value is exact.
//!
//! ## Half-open probing and leases
//!
//! The word holds `inflight` and `success` for the current half-open
//! generation, and `inflight + success <= half_open_probes` always. A probe
//! takes a slot with a CAS; a success moves it from `inflight` to `success`;
//! an ignored outcome frees it; a failure re-opens. When every slot is held
//! and the lease of the youngest grant has passed, the next acquire moves to a
//! new half-open generation with `inflight = 1` (itself), keeping `success`:
//! the late probes become stale, so a lost probe can never wedge the breaker,
//! and slots are never double-counted because reclaiming and granting are the
//! same CAS.
//!
//! ## Backoff and the first-failure rule
//!
//! The open deadline is computed once, by the winner of the transition to
//! OPEN, from `open_duration x multiplier^streak` (streak = re-opens since the
//! last CLOSED, stored in the word so it travels with the transition), capped
//! at `max_open_duration`, scaled by a jitter factor in `[1 - j, 1 + j]`, and
//! capped again; or from the outcome's `Retry-After`, clamped. Later failures
//! are stale (their generation ended with the trip), so nothing can extend the
//! deadline.
//!
//! ## Clock use
//!
//! The closed count-window path reads no clock. The time window reads the
//! coarse clock once per record; OPEN and HALF_OPEN acquires read it to
//! compare against a deadline; transition winners read the precise clock.
//!
//! ## Snapshot and restore
//!
//! A snapshot (`core/src/snapshot.rs`) is read word by word without stopping
//! callers, like a metrics snapshot. Monotonic readings mean nothing in
//! another process, so the current generation's deadline is stored as the
//! time left plus the wall clock at export (`Clock::wall_now`); a restore
//! subtracts the wall time since, never below zero and never adding time (a
//! wall clock set back counts as none passed), and clamps to the config.
//! The restored state enters through the one transition function with
//! reason `Restored`: one CAS from whatever word the breaker holds to the
//! recorded phase, override, streak and half-open successes in the next
//! generation, so concurrent callers see one state or the other and their
//! permits go stale, and the deadline is stamped as for any transition. The
//! winner then replaces the statistics (invariant 6): a count window's words
//! are swapped in and the counts adjusted by the difference, the rule every
//! record follows, so counts and slots agree even with records landing
//! meanwhile. Call counters are added, never stored, so they never go back.
