//! Count window: the last `n` outcomes in a ring of 2-bit slots.
//!
//! Layout (invariant 6):
//! - `cursor: AtomicU64` - tickets; ticket `t` writes slot `t mod n` (the low
//!   32 bits of `t` are reduced, so every 2^32 records one slot is reused out
//!   of turn; the window still holds `n` real outcomes and the counts stay
//!   exact, because they are maintained by deltas against what each slot held).
//!   Calls in the window = `min(t + 1, n)`, no field needed.
//! - `slots: [AtomicU64]` - 32 slots per word, 2 bits each: bit 0 failed,
//!   bit 1 slow. A slot is replaced with one CAS loop, which yields exactly
//!   the value it replaced.
//! - `counts: AtomicU64` - `failures << 32 | slow`, each field biased by 2^31.
//!   Each record adds `new - old` for both fields in one `fetch_add`. Deltas of
//!   concurrent records may apply out of order, so a field can dip below its
//!   true value for a moment; the bias keeps such a dip from borrowing into
//!   the other field, and readers clamp to `[0, calls]`. Once the in-flight
//!   records land, each field equals the number of its bits set in `slots`;
//!   `clear` follows the same rule (it swaps each word to zero and subtracts
//!   what it held), so that stays true across clears.
//!
//! A record leaves a slot that already holds its bits unwritten: the same
//! result as writing them, without a store to the slot's line (a run of
//! successes, the common case, then only reads the slot words).
//!
//! **Under contention** (invariant 16). With one cursor every record of
//! every thread writes the cursor's word, and its cache line (which also
//! holds the breaker's config pointer, read by every call) moves between
//! cores on each record. Once the breaker counts as contended (its owner
//! word, invariant 12), an in-process window records through *lanes*,
//! allocated then and kept for the window's life: one per stripe, each on
//! a cache line of its own, holding a run of tickets taken from the cursor
//! `run` at a time (`n / lanes`, 1 to 31: 25 for 100 slots and 4
//! lanes), so the cursor is written once per run, not once per record.
//! - A record takes the next ticket of its lane's run when its own thread
//!   took the run, the run is not used up, and it is not a lap (`n`
//!   tickets) behind the cursor. When another thread of the lane (more
//!   threads than lanes) holds such a run, the record takes one ticket
//!   from the cursor and leaves the run alone. Otherwise it takes a new
//!   run, which replaces the lane's; the tickets left in a run a lap behind
//!   are *given up*: no record will use them, and their slots already
//!   belong to later tickets.
//! - Slots and `counts` are written as without lanes, by the same delta
//!   rule, so once the records in flight land `counts` equals the bits in
//!   the slots.
//! - Calls = tickets taken from the cursor less those unused in the runs
//!   and those given up, at most `n`: the records made since the window was
//!   last emptied.
//! - What the window holds: each slot holds the outcome of the most recent
//!   record of a ticket that maps to it. A window recorded from one thread
//!   holds exactly its last `n` outcomes, as without lanes (its runs are
//!   consecutive tickets), and so does one recorded from one thread after
//!   others stopped (runs of other threads are not used by it, and its own
//!   old run is a lap behind). With several threads recording, the unused
//!   tickets of each thread's run (at most `run - 1` per lane) leave their
//!   slots holding the outcome recorded there a lap earlier, or nothing if
//!   none was since the window was emptied (such slots are not among the
//!   calls counted). So the window is the union of each thread's most
//!   recent outcomes, `n` slots in total, older by at most a lap for the
//!   slots of runs in use.
//! - `clear` empties every lane's run (and its given-up count), then the
//!   slots, then the cursor; a record caught in the middle may install a
//!   run numbered from before the clear, used until it is used up or a lap
//!   behind: it costs the calls' accuracy for up to a lap, never a count.
//!
//! A host-shared window (`MappedHead`) never takes lanes: its words are a
//! segment slot's, whose format has no room for them.

use crossbeam_utils::CachePadded;

use super::{FastMod, Sample, WindowCounts};
use crate::loom_shim::{AtomicU64, Ordering, Ordering::Relaxed};
use crate::striped;
use crate::words::WordBox;

const SLOTS_PER_WORD: u32 = 32;
/// The longest run of tickets a lane takes at a time.
const MAX_RUN: u32 = 31;
/// An empty run (no tickets left).
const EMPTY_RUN: u64 = 0;
const BIAS: u64 = 1 << 31;
pub(crate) const COUNTS_EMPTY: u64 = (BIAS << 32) | BIAS;
/// Bit 0 (failed) and bit 1 (slow) of every slot in a word.
const FAILED_BITS: u64 = 0x5555_5555_5555_5555;
const SLOW_BITS: u64 = FAILED_BITS << 1;

/// Where a count window's cursor and counts words are: in the window
/// ([`InlineHead`]), or in a host-shared slot before its slot words
/// ([`MappedHead`], `crate::shared`). Everything else about the window is
/// one code path, monomorphised for each.
pub(crate) trait Head {
    /// Whether the window may record through lanes under contention: its
    /// slot words are then followed by one more word, the lanes pointer.
    const LANES: bool;
    fn cursor(&self) -> &AtomicU64;
    fn counts(&self) -> &AtomicU64;
}

/// The cursor and counts of an in-process window, in the window itself.
#[derive(Debug)]
pub(crate) struct InlineHead {
    cursor: AtomicU64,
    counts: AtomicU64,
}

impl Head for InlineHead {
    const LANES: bool = true;

    #[inline(always)]
    fn cursor(&self) -> &AtomicU64 {
        &self.cursor
    }

    #[inline(always)]
    fn counts(&self) -> &AtomicU64 {
        &self.counts
    }
}

/// The cursor and counts of a host-shared window: two words of the slot,
/// behind one thin pointer (so a shared window is no larger than an
/// in-process one, see `Window`).
#[derive(Debug)]
pub(crate) struct MappedHead(core::ptr::NonNull<AtomicU64>);

// SAFETY: a pointer to two atomics that outlive the window (the contract
// of `WordBox::borrowed`, which handed it out).
unsafe impl Send for MappedHead {}
// SAFETY: as above; only atomic accesses.
unsafe impl Sync for MappedHead {}

impl Head for MappedHead {
    const LANES: bool = false;

    #[inline(always)]
    fn cursor(&self) -> &AtomicU64 {
        // SAFETY: see `Send`: word 0 of two live atomics.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn counts(&self) -> &AtomicU64 {
        // SAFETY: see `Send`: word 1 of two live atomics.
        unsafe { &*self.0.as_ptr().add(1) }
    }
}

/// One thread's way into a contended window (invariant 16), on a cache
/// line of its own.
#[derive(Debug)]
struct Lane {
    /// The lane's run of tickets ([`Run`]).
    run: AtomicU64,
    /// Tickets of this lane's runs that no record will use (a run given up
    /// before it was used up), since the window was last emptied.
    given_up: AtomicU64,
}

/// The lanes of a contended window, published once through its lanes word.
#[derive(Debug)]
struct Lanes {
    lanes: Box<[CachePadded<Lane>]>,
    /// Tickets a lane takes from the cursor at a time.
    run: u32,
}

impl Lanes {
    fn new(size: u32) -> Lanes {
        let n = striped::stripe_count();
        Lanes {
            lanes: (0..n)
                .map(|_| {
                    CachePadded::new(Lane {
                        run: AtomicU64::new(EMPTY_RUN),
                        given_up: AtomicU64::new(0),
                    })
                })
                .collect(),
            run: (size / n as u32).clamp(1, MAX_RUN),
        }
    }

    /// The lane of the thread with index `index`.
    #[inline]
    fn lane(&self, index: usize) -> &Lane {
        &self.lanes[index & (self.lanes.len() - 1)]
    }

    /// Tickets taken from the cursor that no record has used: unused in a
    /// run, or given up, over every lane.
    fn unrecorded(&self) -> u64 {
        self.lanes
            .iter()
            .map(|l| {
                u64::from(Run(l.run.load(Relaxed)).left()).wrapping_add(l.given_up.load(Relaxed))
            })
            .fold(0, u64::wrapping_add)
    }

    fn bytes(&self) -> usize {
        core::mem::size_of_val(&*self.lanes) + core::mem::size_of::<Lanes>()
    }
}

/// A lane's run word: the next ticket (low 32 bits of it) in bits 0-31,
/// the tickets left in bits 32-36 (at most [`MAX_RUN`]), and the index of
/// the thread that took the run in bits 37-63 (`striped::thread_index`, 26
/// bits). Zero is an empty run.
#[derive(Debug, Clone, Copy)]
struct Run(u64);

const LEFT_SHIFT: u32 = 32;
const LEFT_MASK: u64 = 0b1_1111;
const TAKER_SHIFT: u32 = 37;

impl Run {
    fn new(next: u32, left: u32, taker: u32) -> Run {
        Run(u64::from(next) | (u64::from(left) << LEFT_SHIFT) | (u64::from(taker) << TAKER_SHIFT))
    }

    #[inline]
    fn next(self) -> u32 {
        self.0 as u32
    }

    #[inline]
    fn left(self) -> u32 {
        ((self.0 >> LEFT_SHIFT) & LEFT_MASK) as u32
    }

    #[inline]
    fn taker(self) -> u32 {
        (self.0 >> TAKER_SHIFT) as u32
    }

    /// The run after its next ticket is used.
    #[inline]
    fn advanced(self) -> Run {
        Run::new(self.next().wrapping_add(1), self.left() - 1, self.taker())
    }
}

#[derive(Debug)]
pub(crate) struct CountWindow<H: Head = InlineHead> {
    head: H,
    /// The slot words; for an in-process window (`H::LANES`), then one
    /// more word: the lanes pointer, 0 until the window is contended.
    slots: WordBox,
    size: u32,
    modulo: FastMod,
    _niche: super::Niche,
}

#[inline]
fn bits(s: Sample) -> u64 {
    u64::from(s.failed) | (u64::from(s.slow) << 1)
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        let words = size.div_ceil(SLOTS_PER_WORD) as usize;
        CountWindow {
            head: InlineHead {
                cursor: AtomicU64::new(0),
                counts: AtomicU64::new(COUNTS_EMPTY),
            },
            // The lanes word after the slots costs no memory for a
            // 100-slot window: 40 bytes take the allocator's 48-byte chunk,
            // as 32 do.
            slots: WordBox::heap(words + 1, |_| 0),
            size,
            modulo: FastMod::new(size),
            _niche: super::Niche::Only,
        }
    }
}

impl CountWindow<MappedHead> {
    /// A window on borrowed words: `head` (cursor, then counts, starting
    /// as `new` starts them) and `slots` (zero, or left by a window of the
    /// same size).
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) fn on(size: u32, head: WordBox, slots: WordBox) -> Self {
        assert_eq!(head.len(), 2);
        assert_eq!(slots.len(), size.div_ceil(SLOTS_PER_WORD) as usize);
        CountWindow {
            head: MappedHead(head.first()),
            slots,
            size,
            modulo: FastMod::new(size),
            _niche: super::Niche::Only,
        }
    }
}

impl<H: Head> CountWindow<H> {
    /// Adds a sample; returns the counts including it when `want_counts`
    /// (else zeros: a success is never evaluated, invariant 6).
    /// `contended` says the breaker is contended (invariant 12): an
    /// in-process window then records through its lanes (invariant 16).
    #[inline]
    pub(crate) fn record(
        &self,
        sample: Sample,
        want_counts: bool,
        contended: bool,
    ) -> WindowCounts {
        if H::LANES && contended {
            return self.record_in_lane(sample, want_counts, striped::thread_index() as usize);
        }
        let ticket = self.head.cursor().fetch_add(1, Relaxed);
        let (delta_fail, delta_slow) = self.write(ticket as u32, sample);
        let counts = if delta_fail == 0 && delta_slow == 0 {
            if !want_counts {
                return WindowCounts::default();
            }
            self.head.counts().load(Relaxed)
        } else {
            let delta = (delta_fail << 32).wrapping_add(delta_slow) as u64;
            self.head
                .counts()
                .fetch_add(delta, Relaxed)
                .wrapping_add(delta)
        };
        if !want_counts {
            return WindowCounts::default();
        }
        if let Some(lanes) = self.lanes() {
            return self.counts_with(lanes);
        }
        decode(counts, (ticket + 1).min(u64::from(self.size)))
    }

    /// A record through the lane of the thread with index `index`
    /// (invariant 16), allocating the lanes first if this is the window's
    /// first contended record.
    #[inline(never)]
    fn record_in_lane(&self, sample: Sample, want_counts: bool, index: usize) -> WindowCounts {
        let lanes = match self.lanes() {
            Some(l) => l,
            None => self.lanes_or_new(),
        };
        let lane = lanes.lane(index);
        let ticket = self.take(lanes, lane, index);
        let (delta_fail, delta_slow) = self.write(ticket, sample);
        if delta_fail != 0 || delta_slow != 0 {
            let delta = (delta_fail << 32).wrapping_add(delta_slow) as u64;
            self.head.counts().fetch_add(delta, Relaxed);
        }
        if !want_counts {
            return WindowCounts::default();
        }
        self.counts_with(lanes)
    }

    /// A ticket for the thread with index `index`, whose lane is `lane`:
    /// - the next of the lane's run, if this thread took the run, it is not
    ///   used up, and it is not a lap (`size` tickets) behind the cursor
    ///   (then its tickets' slots already belong to later tickets);
    /// - one ticket from the cursor, if another thread of the lane holds
    ///   such a run (more threads than lanes: the run stays theirs);
    /// - else the first of a new run of `run` tickets from the cursor,
    ///   which replaces the lane's run; the tickets left in a replaced run
    ///   (one a lap behind) are given up: no record will use them.
    #[inline]
    fn take(&self, lanes: &Lanes, lane: &Lane, index: usize) -> u32 {
        let taker = (index as u32) & ((1 << (64 - TAKER_SHIFT)) - 1);
        let cursor = self.head.cursor().load(Relaxed) as u32;
        let mut w = lane.run.load(Relaxed);
        loop {
            let run = Run(w);
            if run.left() == 0 || cursor.wrapping_sub(run.next()) > self.size {
                break;
            }
            if run.taker() != taker {
                return self.head.cursor().fetch_add(1, Relaxed) as u32;
            }
            match lane
                .run
                .compare_exchange_weak(w, run.advanced().0, Relaxed, Relaxed)
            {
                Ok(_) => return run.next(),
                Err(seen) => w = seen,
            }
        }
        self.new_run(lanes, lane, taker, w)
    }

    /// The first ticket of a new run for `lane`, whose run word was `seen`.
    #[inline(never)]
    fn new_run(&self, lanes: &Lanes, lane: &Lane, taker: u32, seen: u64) -> u32 {
        let first = self.head.cursor().fetch_add(u64::from(lanes.run), Relaxed) as u32;
        let next = Run::new(first.wrapping_add(1), lanes.run - 1, taker);
        // If the lane moved since it was read (another thread of the lane
        // replaced its run too, or a clear emptied it), the new run's rest
        // is given up instead of the old run's.
        let given_up = match lane.run.compare_exchange(seen, next.0, Relaxed, Relaxed) {
            Ok(_) => Run(seen).left(),
            Err(_) => next.left(),
        };
        if given_up != 0 {
            lane.given_up.fetch_add(u64::from(given_up), Relaxed);
        }
        first
    }

    /// Writes `sample` into the slot of `ticket` and returns how the
    /// failure and slow counts change. A slot already holding the bits is
    /// left as it is: the same result, no store to the slot's line. A
    /// change is one CAS, which yields exactly the bits it replaced.
    #[inline]
    fn write(&self, ticket: u32, sample: Sample) -> (i64, i64) {
        let slot = self.modulo.rem(ticket, self.size);
        let word = &self.slots[(slot / SLOTS_PER_WORD) as usize];
        let shift = (slot % SLOTS_PER_WORD) * 2;
        let new = bits(sample);
        let mut current = word.load(Relaxed);
        let old = loop {
            let old = (current >> shift) & 0b11;
            if old == new {
                break old;
            }
            match word.compare_exchange_weak(
                current,
                (current & !(0b11 << shift)) | (new << shift),
                Relaxed,
                Relaxed,
            ) {
                Ok(_) => break old,
                Err(seen) => current = seen,
            }
        };
        (
            (new & 1) as i64 - (old & 1) as i64,
            (new >> 1) as i64 - (old >> 1) as i64,
        )
    }

    /// The slot words (without the lanes word).
    fn slot_words(&self) -> &[AtomicU64] {
        &self.slots[..self.size.div_ceil(SLOTS_PER_WORD) as usize]
    }

    /// The lanes word of an in-process window.
    #[inline]
    fn lanes_word(&self) -> Option<&AtomicU64> {
        if H::LANES {
            self.slots.last()
        } else {
            None
        }
    }

    /// The lanes, once the window has been contended.
    #[inline]
    fn lanes(&self) -> Option<&Lanes> {
        // Acquire: pairs with the AcqRel CAS in `lanes_or_new`, so the
        // lanes are initialised here (invariant 16).
        let p = self.lanes_word()?.load(Ordering::Acquire) as usize as *const Lanes;
        // SAFETY: a non-zero lanes word holds a pointer from
        // `Box::into_raw` in `lanes_or_new`, freed only by `Drop`.
        unsafe { p.as_ref() }
    }

    /// The lanes, allocating and publishing them first if there are none.
    #[cold]
    fn lanes_or_new(&self) -> &Lanes {
        let word = self.lanes_word().expect("an in-process window");
        let fresh = Box::into_raw(Box::new(Lanes::new(self.size)));
        // AcqRel: Release publishes the lanes; Acquire (on failure) reads
        // the lanes another thread published (invariant 16).
        match word.compare_exchange(
            0,
            fresh as usize as u64,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: `fresh` is now owned by the window, live until drop.
            Ok(_) => unsafe { &*fresh },
            Err(cur) => {
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: `cur` is the live lanes another thread published.
                unsafe { &*(cur as usize as *const Lanes) }
            }
        }
    }

    /// Tickets recorded since the window was last emptied: those taken
    /// from the cursor (`cursor`) less those unused in the lanes' runs.
    /// Under one lane (or none) the last recorded ticket is the one before
    /// it.
    fn recorded(&self, cursor: u64) -> u64 {
        cursor.saturating_sub(self.lanes().map_or(0, Lanes::unrecorded))
    }

    pub(crate) fn counts(&self) -> WindowCounts {
        match self.lanes() {
            Some(lanes) => self.counts_with(lanes),
            None => {
                let calls = self.head.cursor().load(Relaxed).min(u64::from(self.size));
                decode(self.head.counts().load(Relaxed), calls)
            }
        }
    }

    /// The counts of a window with lanes: calls from the lanes (read
    /// before the cursor, so that tickets taken meanwhile err towards more
    /// calls, never fewer than recorded less those the runs held), failures
    /// and slow calls from the counts word (invariant 16).
    fn counts_with(&self, lanes: &Lanes) -> WindowCounts {
        let unrecorded = lanes.unrecorded();
        let cursor = self.head.cursor().load(Relaxed);
        let calls = cursor.saturating_sub(unrecorded).min(u64::from(self.size));
        decode(self.head.counts().load(Relaxed), calls)
    }

    /// Empties every slot with one RMW and takes back from `counts` exactly
    /// what the slots held, the same delta rule a record follows. Storing
    /// zeros and `COUNTS_EMPTY` instead loses a record in flight whose
    /// slot RMW and `counts` delta fall on either side of the clear:
    /// the counts then disagree with the slots until the next clear (a
    /// phantom failure, or one the window can never count, so a 100 %
    /// threshold never trips). The lanes' runs are emptied first
    /// (invariant 16).
    pub(crate) fn clear(&self) {
        if let Some(lanes) = self.lanes() {
            for lane in lanes.lanes.iter() {
                lane.run.swap(EMPTY_RUN, Relaxed);
                lane.given_up.swap(0, Relaxed);
            }
        }
        let (mut failed, mut slow) = (0u64, 0u64);
        for w in self.slot_words() {
            let prev = w.swap(0, Relaxed);
            failed += u64::from((prev & FAILED_BITS).count_ones());
            slow += u64::from((prev & SLOW_BITS).count_ones());
        }
        if failed != 0 || slow != 0 {
            self.head.counts().fetch_sub((failed << 32) | slow, Relaxed);
        }
        self.head.cursor().store(0, Relaxed);
    }

    /// The outcomes the window holds, oldest first, as slot bits (bit 0
    /// failed, bit 1 slow), for a snapshot. Read slot by slot: a record
    /// landing meanwhile may or may not be in it (invariant 6). Under
    /// contention (invariant 16) the last recorded ticket is taken to be
    /// the one before the unused tickets of the lanes' runs: exact for one
    /// lane; with several, slots of unused tickets are read as they are.
    pub(crate) fn export(&self) -> Vec<u8> {
        let end = self.recorded(self.head.cursor().load(Relaxed));
        let held = end.min(u64::from(self.size));
        (end - held..end)
            .map(|ticket| {
                let slot = self.modulo.rem(ticket as u32, self.size);
                let word = self.slots[(slot / SLOTS_PER_WORD) as usize].load(Relaxed);
                ((word >> ((slot % SLOTS_PER_WORD) * 2)) & 0b11) as u8
            })
            .collect()
    }

    /// Loads `samples` (oldest first, at most `size`, from [`export`]) into
    /// a window just cleared, so that the next record overwrites the oldest.
    /// Each word is swapped in and `counts` takes the difference, the rule
    /// every record and `clear` follow, so counts and slots agree even with
    /// records landing meanwhile.
    ///
    /// [`export`]: CountWindow::export
    pub(crate) fn import(&self, samples: &[u8]) {
        let held = samples.len().min(self.size as usize);
        for (i, word) in self.slot_words().iter().enumerate() {
            let first = i * SLOTS_PER_WORD as usize;
            let mut new = 0u64;
            for (j, s) in samples[first.min(held)..held]
                .iter()
                .take(SLOTS_PER_WORD as usize)
                .enumerate()
            {
                new |= u64::from(s & 0b11) << (2 * j);
            }
            let prev = word.swap(new, Relaxed);
            let fails = |w: u64| i64::from((w & FAILED_BITS).count_ones());
            let slows = |w: u64| i64::from((w & SLOW_BITS).count_ones());
            let delta = ((fails(new) - fails(prev)) << 32).wrapping_add(slows(new) - slows(prev));
            if delta != 0 {
                self.head.counts().fetch_add(delta as u64, Relaxed);
            }
        }
        self.head.cursor().store(held as u64, Relaxed);
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.heap_bytes() + self.lanes().map_or(0, Lanes::bytes)
    }

    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// The outcome of ticket `ticket` (its slot's two bits).
    fn sample_of(&self, ticket: u64) -> Sample {
        let slot = self.modulo.rem(ticket as u32, self.size);
        let word = self.slots[(slot / SLOTS_PER_WORD) as usize].load(Relaxed);
        let b = (word >> ((slot % SLOTS_PER_WORD) * 2)) & 0b11;
        Sample {
            failed: b & 1 != 0,
            slow: b & 2 != 0,
        }
    }

    /// Records, oldest first, the most recent `min(calls in old, size)`
    /// outcomes of `old` (live reconfiguration). A record of `old` in
    /// flight may be read before its slot is written: it then shows the
    /// outcome it replaces (invariant 6: statistics).
    pub(crate) fn seed_from<O: Head>(&self, old: &CountWindow<O>) {
        let t = old.recorded(old.head.cursor().load(Relaxed));
        let k = t.min(u64::from(old.size)).min(u64::from(self.size));
        for ticket in t - k..t {
            self.record(old.sample_of(ticket), false, false);
        }
    }
}

impl<H: Head> Drop for CountWindow<H> {
    fn drop(&mut self) {
        if let Some(word) = self.lanes_word() {
            // Acquire: as in `lanes` (invariant 16).
            let p = word.load(Ordering::Acquire) as usize as *mut Lanes;
            if !p.is_null() {
                // SAFETY: a non-zero lanes word came from `Box::into_raw` in
                // `lanes_or_new` and is freed only here, once.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

#[inline]
fn decode(counts: u64, calls: u64) -> WindowCounts {
    let field = |v: u64| (v as i64 - BIAS as i64).clamp(0, calls as i64) as u64;
    WindowCounts {
        calls,
        failures: field(counts >> 32),
        slow: field(counts & 0xFFFF_FFFF),
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn sample(failed: bool, slow: bool) -> Sample {
        Sample { failed, slow }
    }

    /// The model of a window of `size`: the last `size` outcomes.
    fn push(model: &mut VecDeque<(bool, bool)>, size: u32, outcome: (bool, bool)) {
        model.push_back(outcome);
        if model.len() > size as usize {
            model.pop_front();
        }
    }

    /// The counts a window holding exactly `model` reports.
    fn counts_of(model: &VecDeque<(bool, bool)>) -> WindowCounts {
        WindowCounts {
            calls: model.len() as u64,
            failures: model.iter().filter(|o| o.0).count() as u64,
            slow: model.iter().filter(|o| o.1).count() as u64,
        }
    }

    proptest! {
        /// Window invariant: counts equal those of the last `n` outcomes.
        #[test]
        fn counts_equal_the_last_n_outcomes(
            size in 1u32..70,
            outcomes in proptest::collection::vec((any::<bool>(), any::<bool>()), 0..300),
        ) {
            let w = CountWindow::new(size);
            let mut model: VecDeque<(bool, bool)> = VecDeque::new();
            for (f, s) in outcomes {
                let got = w.record(sample(f, s), true, false);
                push(&mut model, size, (f, s));
                let want = counts_of(&model);
                prop_assert_eq!(got, want);
                prop_assert_eq!(w.counts(), want);
            }
            w.clear();
            prop_assert_eq!(w.counts(), WindowCounts::default());
        }

        /// A resized window holds the last `min(held, new size)` outcomes,
        /// and goes on as a window of its own size.
        #[test]
        fn a_seeded_window_holds_the_most_recent_outcomes(
            old_size in 1u32..70,
            new_size in 1u32..70,
            before in proptest::collection::vec((any::<bool>(), any::<bool>()), 0..200),
            after in proptest::collection::vec((any::<bool>(), any::<bool>()), 0..100),
        ) {
            let old = CountWindow::new(old_size);
            let mut model: VecDeque<(bool, bool)> = VecDeque::new();
            for (f, s) in before {
                old.record(sample(f, s), false, false);
                push(&mut model, old_size, (f, s));
            }
            let new = CountWindow::new(new_size);
            new.seed_from(&old);
            while model.len() > new_size as usize { model.pop_front(); }
            for (f, s) in after {
                new.record(sample(f, s), false, false);
                push(&mut model, new_size, (f, s));
            }
            let want = counts_of(&model);
            prop_assert_eq!(new.counts(), want);
        }
    }

    #[test]
    fn concurrent_records_conserve_counts() {
        let w = std::sync::Arc::new(CountWindow::new(64));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..50_000u32 {
                        w.record(sample((i + t) % 3 == 0, i % 5 == 0), i % 2 == 0, false);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // After all records land, the counts equal the bits in the slots.
        let c = w.counts();
        assert_eq!(c.calls, 64);
        assert_eq!((c.failures, c.slow), slot_bits(&w));
    }

    /// Failures and slow calls in the slot words.
    fn slot_bits<H: Head>(w: &CountWindow<H>) -> (u64, u64) {
        w.slot_words().iter().fold((0, 0), |(f, s), word| {
            let v = word.load(Relaxed);
            (
                f + u64::from((v & FAILED_BITS).count_ones()),
                s + u64::from((v & SLOW_BITS).count_ones()),
            )
        })
    }

    /// The counts before clamping.
    fn raw_counts(w: &CountWindow) -> (i64, i64) {
        let c = w.head.counts().load(Relaxed);
        (
            (c >> 32) as i64 - BIAS as i64,
            (c & 0xFFFF_FFFF) as i64 - BIAS as i64,
        )
    }

    /// What a window with lanes holds, written plainly (invariant 16, the
    /// module doc): per lane a run of tickets `next..end` and the thread
    /// that took it. A run is live while not used up and not more than `n`
    /// tickets behind the cursor. A record takes its lane's next ticket if
    /// the live run is its thread's, one ticket of the cursor if it is
    /// another's, else the next `run` tickets of the cursor as the lane's
    /// new run; a record without lanes takes one ticket. Each ticket's
    /// outcome goes to slot `ticket mod n`; calls are the records since the
    /// last clear, at most `n`.
    struct LaneModel {
        size: u64,
        run: u64,
        cursor: u64,
        /// Per lane: next ticket, end (exclusive), the thread that took it.
        runs: Vec<(u64, u64, usize)>,
        slots: Vec<(bool, bool)>,
        records: u64,
    }

    impl LaneModel {
        fn new(size: u32, lanes: usize, run: u32) -> LaneModel {
            LaneModel {
                size: u64::from(size),
                run: u64::from(run),
                cursor: 0,
                runs: vec![(0, 0, 0); lanes],
                slots: vec![(false, false); size as usize],
                records: 0,
            }
        }

        fn record(&mut self, lane: Option<usize>, outcome: (bool, bool)) {
            let ticket = match lane {
                None => {
                    self.cursor += 1;
                    self.cursor - 1
                }
                Some(i) => {
                    let lanes = self.runs.len();
                    let (next, end, taker) = &mut self.runs[i % lanes];
                    let live = *next < *end && self.cursor - *next <= self.size;
                    if live && *taker == i {
                        *next += 1;
                        *next - 1
                    } else if live {
                        self.cursor += 1;
                        self.cursor - 1
                    } else {
                        let first = self.cursor;
                        self.cursor += self.run;
                        (*next, *end, *taker) = (first + 1, first + self.run, i);
                        first
                    }
                }
            };
            self.slots[(ticket % self.size) as usize] = outcome;
            self.records += 1;
        }

        fn clear(&mut self) {
            self.cursor = 0;
            self.runs.iter_mut().for_each(|r| *r = (0, 0, 0));
            self.slots.iter_mut().for_each(|s| *s = (false, false));
            self.records = 0;
        }

        fn counts(&self) -> WindowCounts {
            WindowCounts {
                calls: self.records.min(self.size),
                failures: self.slots.iter().filter(|o| o.0).count() as u64,
                slow: self.slots.iter().filter(|o| o.1).count() as u64,
            }
        }
    }

    /// One step of a lane property test: a record from no lane (before the
    /// switch) or from lane `i`, or a clear.
    #[derive(Debug, Clone)]
    enum Step {
        Inline(bool, bool),
        Lane(usize, bool, bool),
        Clear,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => (any::<bool>(), any::<bool>()).prop_map(|(f, s)| Step::Inline(f, s)),
            12 => (0usize..9, any::<bool>(), any::<bool>()).prop_map(|(i, f, s)| Step::Lane(i, f, s)),
            1 => Just(Step::Clear),
        ]
    }

    proptest! {
        /// A window recorded through one lane holds exactly its last `n`
        /// outcomes, as one recorded without lanes does.
        #[test]
        fn one_lane_holds_the_last_n_outcomes(
            size in 1u32..200,
            lane in 0usize..64,
            outcomes in proptest::collection::vec((any::<bool>(), any::<bool>()), 0..500),
        ) {
            let w = CountWindow::new(size);
            let mut model: VecDeque<(bool, bool)> = VecDeque::new();
            for (f, s) in outcomes {
                let got = w.record_in_lane(sample(f, s), true, lane);
                push(&mut model, size, (f, s));
                let want = counts_of(&model);
                prop_assert_eq!(got, want);
                prop_assert_eq!(w.counts(), want);
            }
            let held: Vec<u8> = model.iter().map(|&(f, s)| u8::from(f) | (u8::from(s) << 1)).collect();
            prop_assert_eq!(w.export(), held);
        }

        /// Records through several lanes (after some without), with clears
        /// between: the window's slots, counts and calls follow the lane
        /// model, and its counts are its slots' bits.
        #[test]
        fn lanes_follow_their_model(
            size in 1u32..200,
            steps in proptest::collection::vec(step(), 0..600),
        ) {
            let w = CountWindow::new(size);
            let lanes = Lanes::new(size);
            let mut model = LaneModel::new(size, lanes.lanes.len(), lanes.run);
            let mut switched = false;
            for step in steps {
                match step {
                    // Once a breaker is contended every record takes a lane.
                    Step::Inline(f, s) if !switched => {
                        let got = w.record(sample(f, s), true, false);
                        model.record(None, (f, s));
                        prop_assert_eq!(got, model.counts());
                    }
                    Step::Inline(f, s) | Step::Lane(_, f, s) => {
                        let lane = match step { Step::Lane(i, ..) => i, _ => 0 };
                        switched = true;
                        let got = w.record_in_lane(sample(f, s), true, lane);
                        model.record(Some(lane), (f, s));
                        prop_assert_eq!(got, model.counts());
                    }
                    Step::Clear => {
                        w.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(w.counts(), model.counts());
                let want_slots: Vec<(bool, bool)> = (0..size).map(|t| {
                    let s = w.sample_of(u64::from(t));
                    (s.failed, s.slow)
                }).collect();
                prop_assert_eq!(&want_slots, &model.slots);
                let (f, s) = slot_bits(&w);
                prop_assert_eq!(raw_counts(&w), (f as i64, s as i64));
            }
        }
    }

    /// Threads switch to lanes at different points (as they notice the
    /// breaker is contended) while another clears the window now and then.
    /// Once every record has landed, the counts (before clamping) equal the
    /// bits in the slots, and calls never exceed `n`.
    #[test]
    fn records_crossing_the_switch_to_lanes_conserve_counts() {
        const SIZE: u32 = 100;
        let w = std::sync::Arc::new(CountWindow::new(SIZE));
        let done = std::sync::Arc::new(AtomicU64::new(0));
        let clearer = {
            let (w, done) = (w.clone(), done.clone());
            std::thread::spawn(move || {
                let mut clears = 0u32;
                while done.load(Relaxed) == 0 {
                    assert!(w.counts().calls <= u64::from(SIZE));
                    if clears < 200 {
                        w.clear();
                        clears += 1;
                    }
                    std::thread::yield_now();
                }
            })
        };
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    let switch = 5_000 * t;
                    for i in 0..40_000u32 {
                        let s = sample((i + t) % 3 == 0, i % 7 == 0);
                        let c = w.record(s, i % 2 == 0, i >= switch);
                        assert!(c.calls <= u64::from(SIZE) && c.failures <= c.calls);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        done.store(1, Relaxed);
        clearer.join().unwrap();
        assert!(w.lanes().is_some(), "the threads switched to lanes");
        let (f, s) = slot_bits(&w);
        assert_eq!(raw_counts(&w), (f as i64, s as i64));
        let c = w.counts();
        assert!(c.calls <= u64::from(SIZE));
        assert_eq!((c.failures, c.slow), (f.min(c.calls), s.min(c.calls)));
    }
}
