//! The bucketed ring: `b` bucket words counting consecutive intervals of
//! `width` nanoseconds, shared by the time window (`window/time.rs`) and the
//! retry budget (`retry/budget.rs`).
//!
//! The bucket for index `i = now / width` lives in slot `i mod b`. Each
//! bucket word packs its counters and an epoch: the low bits of the index it
//! counts, in a [`Field`] the user declares (16 bits for the time window, 24
//! for the budget). Epochs repeat every `2^width` bucket widths, so each
//! bucket also has a rolled-at word: the full index at which it was last
//! rolled (replaced by a fresh bucket), written once per roll by the writer
//! whose CAS rolled it, after that CAS. A bucket is live at index `i` only if
//! its epoch is within `b` of `i`'s *and* its rolled-at index is too, so an
//! idle gap of a whole number of epoch cycles never brings old counts back.
//! A reader that sees a freshly rolled bucket before its rolled-at index
//! skips it for that instant; it never counts a stale one.
//!
//! The index is `now / width`, computed as `now * recip >> 64` with
//! `recip = floor(2^64 / width)` and one correction (exact floor division
//! for every `u64` clock value, without a division instruction); the slot
//! is reduced from the full `u64` index.
//!
//! Every access is `Relaxed`: bucket counters are statistics guarding no
//! other memory (invariant 6).

use crate::clock::Nanos;
use crate::loom_shim::{AtomicU64, Ordering::Relaxed};
use crate::state::Field;
use crate::window::FastMod;
use crate::words::WordBox;

/// `b` bucket words, then `b` rolled-at words, in one allocation (so that
/// the time window, which every breaker holds inline, stays 40 bytes).
#[derive(Debug)]
pub(crate) struct Ring {
    /// Its own heap words, or a host-shared slot's (`crate::shared`).
    words: WordBox,
    recip: u64,
    /// Bucket width in nanoseconds, to correct the reciprocal's quotient.
    width: u64,
    modulo: FastMod,
}

/// Where a clock reading falls: its full bucket index and its slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    pub(crate) index: u64,
    pub(crate) slot: usize,
}

impl Ring {
    /// `buckets` (at least 1) buckets of `width` nanoseconds (at least 1).
    pub(crate) fn new(width: u64, buckets: u32) -> Ring {
        Ring::on(width, WordBox::heap(2 * buckets as usize, |_| 0))
    }

    /// A ring on `words` (an even number of them, at least 2: the buckets,
    /// then their rolled-at words), zero or left by a ring of the same shape.
    pub(crate) fn on(width: u64, words: WordBox) -> Ring {
        assert!(words.len() >= 2 && words.len() % 2 == 0);
        let buckets = (words.len() / 2) as u32;
        let width = width.max(1);
        Ring {
            words,
            recip: u64::MAX / width,
            width,
            modulo: FastMod::new(buckets),
        }
    }

    /// The bucket count `b` (half the words; not stored).
    #[inline]
    pub(crate) fn count(&self) -> u32 {
        (self.words.len() / 2) as u32
    }

    /// The bucket width in nanoseconds.
    #[inline]
    pub(crate) fn width(&self) -> u64 {
        self.width
    }

    #[inline]
    fn buckets(&self) -> &[AtomicU64] {
        &self.words[..self.count() as usize]
    }

    #[inline]
    fn rolled_at(&self) -> &[AtomicU64] {
        &self.words[self.count() as usize..]
    }

    /// `now / width`, exactly. The reciprocal's quotient is at most one
    /// below it, and below only within `now / 2^64` of a width past a
    /// boundary: rare for small clock values, nearly always near the end of
    /// time (a manual clock at `u64::MAX - 10^12`), so it is corrected.
    #[inline]
    pub(crate) fn index(&self, now: Nanos) -> u64 {
        let q = ((u128::from(now) * u128::from(self.recip)) >> 64) as u64;
        if now - q * self.width >= self.width {
            q + 1
        } else {
            q
        }
    }

    /// `index mod b`. The index is a `u64` (a 1 ms bucket passes 2^32 after
    /// 50 days); reducing its low 32 bits instead would break the `i mod b`
    /// layout each time they wrap, putting two live buckets in one slot.
    #[inline]
    pub(crate) fn slot(&self, index: u64) -> usize {
        match u32::try_from(index) {
            Ok(i) => self.modulo.rem(i, self.count()) as usize,
            Err(_) => (index % u64::from(self.count())) as usize,
        }
    }

    /// Where `now` falls.
    #[inline]
    pub(crate) fn at(&self, now: Nanos) -> At {
        let index = self.index(now);
        At {
            index,
            slot: self.slot(index),
        }
    }

    /// The bucket word of `slot`.
    #[inline]
    pub(crate) fn bucket(&self, slot: usize) -> &AtomicU64 {
        &self.buckets()[slot]
    }

    /// Buckets from the word's epoch to `index`'s, as a signed number of
    /// `epoch.width` bits (negative: the word was written by a clock reading
    /// ahead of ours).
    #[inline]
    pub(crate) fn age(epoch: Field, index: u64, w: u64) -> i64 {
        let d = index.wrapping_sub(epoch.get(w)) & epoch.max();
        let unused = 64 - epoch.width;
        ((d << unused) as i64) >> unused
    }

    /// The epoch field's value for `index`, in place (to build a fresh
    /// bucket word).
    #[inline]
    pub(crate) fn epoch_bits(epoch: Field, index: u64) -> u64 {
        (index & epoch.max()) << epoch.shift
    }

    /// Whether the bucket in `slot` was rolled less than `b` indexes from
    /// `index` (either way). False for a bucket last rolled a whole epoch
    /// cycle (or more) ago, whatever its epoch says.
    #[inline]
    pub(crate) fn rolled_near(&self, index: u64, slot: usize) -> bool {
        index.abs_diff(self.rolled_at()[slot].load(Relaxed)) < u64::from(self.count())
    }

    /// Records that the CAS of the writer at `at` rolled its bucket. Only
    /// that writer calls it, after its CAS.
    #[inline]
    pub(crate) fn mark_rolled(&self, at: At) {
        self.rolled_at()[at.slot].store(at.index, Relaxed);
    }

    /// Whether bucket word `w` in `slot` counts at `index`: its epoch within
    /// `b` of the index's either way (a clock slightly ahead of ours wrote
    /// it), and rolled near `index`.
    #[inline]
    pub(crate) fn live(&self, epoch: Field, index: u64, slot: usize, w: u64) -> bool {
        Self::age(epoch, index, w).unsigned_abs() < u64::from(self.count())
            && self.rolled_near(index, slot)
    }

    /// The live bucket words at `index`, with their slots, loaded once each.
    #[inline]
    pub(crate) fn live_words(
        &self,
        epoch: Field,
        index: u64,
    ) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.buckets()
            .iter()
            .enumerate()
            .map(|(slot, b)| (slot, b.load(Relaxed)))
            .filter(move |&(slot, w)| self.live(epoch, index, slot, w))
    }

    /// Empties every bucket.
    pub(crate) fn clear(&self) {
        for w in self.words.iter() {
            w.store(0, Relaxed);
        }
    }

    /// Heap bytes (both halves).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.heap_bytes()
    }
}
