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

use super::{FastMod, Sample, WindowCounts};
use crate::loom_shim::{AtomicU64, Ordering::Relaxed};
use crate::words::WordBox;

const SLOTS_PER_WORD: u32 = 32;
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

#[derive(Debug)]
pub(crate) struct CountWindow<H: Head = InlineHead> {
    head: H,
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
            slots: WordBox::heap(words, |_| 0),
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
    #[inline]
    pub(crate) fn record(&self, sample: Sample, want_counts: bool) -> WindowCounts {
        let ticket = self.head.cursor().fetch_add(1, Relaxed);
        let slot = self.modulo.rem(ticket as u32, self.size);
        let word = &self.slots[(slot / SLOTS_PER_WORD) as usize];
        let shift = (slot % SLOTS_PER_WORD) * 2;
        let new = bits(sample);
        // Replace the slot's two bits; the closure never returns None, so the
        // result is always Ok and carries the previous word.
        let prev = match word.fetch_update(Relaxed, Relaxed, |w| {
            Some((w & !(0b11 << shift)) | (new << shift))
        }) {
            Ok(w) | Err(w) => w,
        };
        let old = (prev >> shift) & 0b11;
        let calls = (ticket + 1).min(u64::from(self.size));
        let delta_fail = (new & 1) as i64 - (old & 1) as i64;
        let delta_slow = (new >> 1) as i64 - (old >> 1) as i64;
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
        decode(counts, calls)
    }

    pub(crate) fn counts(&self) -> WindowCounts {
        let calls = self.head.cursor().load(Relaxed).min(u64::from(self.size));
        decode(self.head.counts().load(Relaxed), calls)
    }

    /// Empties every slot with one RMW and takes back from `counts` exactly
    /// what the slots held, the same delta rule a record follows. Storing
    /// zeros and `COUNTS_EMPTY` instead loses a record in flight whose slot
    /// RMW and `counts` delta fall on either side of the clear: the counts
    /// then disagree with the slots until the next clear (a phantom failure,
    /// or one the window can never count, so a 100 % threshold never trips).
    pub(crate) fn clear(&self) {
        let (mut failed, mut slow) = (0u64, 0u64);
        for w in self.slots.iter() {
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
    /// landing meanwhile may or may not be in it (invariant 6).
    pub(crate) fn export(&self) -> Vec<u8> {
        let cursor = self.head.cursor().load(Relaxed);
        let held = cursor.min(u64::from(self.size));
        (cursor - held..cursor)
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
        for (i, word) in self.slots.iter().enumerate() {
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
        self.slots.heap_bytes()
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
        let t = old.head.cursor().load(Relaxed);
        let held = t.min(u64::from(old.size));
        let k = held.min(u64::from(self.size));
        for ticket in t - k..t {
            self.record(old.sample_of(ticket), false);
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
                let got = w.record(sample(f, s), true);
                model.push_back((f, s));
                if model.len() > size as usize { model.pop_front(); }
                let want = WindowCounts {
                    calls: model.len() as u64,
                    failures: model.iter().filter(|o| o.0).count() as u64,
                    slow: model.iter().filter(|o| o.1).count() as u64,
                };
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
                old.record(sample(f, s), false);
                model.push_back((f, s));
                if model.len() > old_size as usize { model.pop_front(); }
            }
            let new = CountWindow::new(new_size);
            new.seed_from(&old);
            while model.len() > new_size as usize { model.pop_front(); }
            for (f, s) in after {
                new.record(sample(f, s), false);
                model.push_back((f, s));
                if model.len() > new_size as usize { model.pop_front(); }
            }
            let want = WindowCounts {
                calls: model.len() as u64,
                failures: model.iter().filter(|o| o.0).count() as u64,
                slow: model.iter().filter(|o| o.1).count() as u64,
            };
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
                        w.record(sample((i + t) % 3 == 0, i % 5 == 0), i % 2 == 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // After all records land, the counts equal the bits in the slots.
        let mut fails = 0;
        let mut slow = 0;
        for (i, word) in w.slots.iter().enumerate() {
            let v = word.load(Relaxed);
            for s in 0..32 {
                if (i * 32 + s) < 64 {
                    fails += (v >> (2 * s)) & 1;
                    slow += (v >> (2 * s + 1)) & 1;
                }
            }
        }
        let c = w.counts();
        assert_eq!(c.calls, 64);
        assert_eq!((c.failures, c.slow), (fails, slow));
    }
}
