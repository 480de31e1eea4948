//! A lock-free, fixed-size, windowed latency histogram (B8, B11).
//!
//! # Buckets
//!
//! Log-linear, HdrHistogram-style, over nanoseconds. Every power of two
//! `[2^k, 2^(k+1))` from 1,024 ns (about 1 us) up to 2^37 ns (about 137 s) is
//! split into [`SUB_BUCKETS`] = 8 equal sub-buckets, each `2^(k-3)` wide.
//! Below 1,024 ns sixteen linear buckets 64 ns wide cover `[0, 1024)`. Values
//! of 2^37 ns and more share one overflow bucket. That is [`BUCKETS`] = 233
//! buckets. The index is computed from `leading_zeros` in a handful of
//! instructions, no loop, no table ([`bucket_index`]):
//!
//! ```text
//! k     = 63 - leading_zeros(v | 1023)          // 9 for every v < 1024
//! index = min(((k - 9) << 3) + (v >> (k - 3)), OVERFLOW)
//! ```
//!
//! # Error bound
//!
//! A percentile is reported as the midpoint of the bucket that holds the
//! sample of that rank (the overflow bucket reports the maximum), then
//! clamped to the exact `[min, max]`. A bucket at `[2^k, 2^(k+1))` is
//! `2^(k-3)` wide, so the midpoint is within half of that, `2^(k-4)`, of any
//! value in it, and every such value is at least `2^k`. Hence, for the
//! nearest-rank percentile `x` of the recorded values:
//!
//! ```text
//! |reported - x| <= max(x / 16, 32 ns)      for x < 2^37 ns (about 137 s)
//! ```
//!
//! that is a relative error of at most 1/16 = 6.25 % above 1,024 ns and an
//! absolute error of at most 32 ns below. Count, sum, minimum and maximum
//! are exact (up to the window, below).
//!
//! # Window
//!
//! Two generations (slots) of counters: *current* and *previous*. Records go
//! to the current one; a snapshot merges both. [`LatencyHistogram::rotate_if_due`]
//! ages data out: once the current generation is `period` old, one thread
//! wins a CAS on the epoch word that sets a `ROTATING` bit, clears the
//! previous slot (the only one nobody records into), then publishes it as the
//! new current slot with a `Release` store. A snapshot covers the samples
//! recorded since the rotation before the last one: between one and two
//! periods when something calls `rotate_if_due` at least once a period (the
//! metrics scrape, or any path that already holds a `now`). Called less
//! often, rotations happen at those calls and the window stretches to the
//! time since the rotation before the last; every sample still ages out at
//! the second rotation after it was recorded. (Dropping the old generation
//! after a long gap instead would empty every snapshot of a histogram
//! scraped less often than every two periods.) `record` reads no clock and
//! never rotates.
//!
//! The epoch word, one `AtomicU64`:
//!
//! ```text
//!  63                                 4  3   2       1       0
//! +------------------------------------+-------+----------+------+
//! | start of current generation (ns,   |   0   | ROTATING | SLOT |
//! | low 4 bits dropped)                |       |          |      |
//! +------------------------------------+-------+----------+------+
//! ```
//!
//! Rules (cited in comments as H1..H4):
//!
//! - **H1** Only the thread whose CAS set `ROTATING` writes the epoch word
//!   until it clears the bit, and only it clears a slot. A rotation is
//!   attempted only while `ROTATING` is clear, so at most one is in flight;
//!   `rotate_if_due` never waits (a caller that finds one in flight returns).
//! - **H2** The slot being cleared is never the current one, so records never
//!   race with the clearing except those of a thread that loaded the epoch
//!   word before the previous rotation and stalled for a whole period: such a
//!   straggler's one sample may land in the cleared slot or be lost.
//! - **H3** The clearing stores happen-before the `Release` store that makes
//!   the slot current; `record` loads the epoch word with `Acquire`, so its
//!   `fetch_add`s come after the zeros in each counter's modification order.
//! - **H4** A snapshot validates: it loads the epoch word, reads the slots
//!   (`Acquire`), and reloads the epoch word; if a rotation began in between
//!   it reads again (a bounded number of times). The clearing stores are
//!   `Release`, so a snapshot that read a cleared counter sees `ROTATING` on
//!   the reload.
//!
//! # Why `Relaxed` is enough for the counters
//!
//! Bucket counters, sum, minimum and maximum are statistics (core invariant
//! 6): nothing is published through them and no decision reads them on
//! another thread's behalf, so each update only needs to be atomic, not
//! ordered with other memory. The one ordering the design needs, "a slot is
//! zeroed before it is reused", comes from the epoch word (H3), not from the
//! counters. A snapshot taken during recording may see a sample's bucket but
//! not yet its sum: it is a statistic read at slightly different moments
//! (invariant 8).
//!
//! # Memory and cost
//!
//! `size_of::<LatencyHistogram>()` is 2,048 bytes, allocated once by the
//! caller (inline, or one `Box`); nothing else is allocated ever. Bucket
//! counters are `AtomicU32` (233 x 4 bytes a generation), so a generation
//! holds up to 2^32 - 1 samples per bucket; `period` is capped at one hour,
//! so wrapping a counter takes over 1.19 million samples a second into a
//! single bucket for a whole hour. The sum is 64-bit: 584 years of latency
//! per generation. At 2 KiB, 100,000 breakers would need 205 MB: the breaker
//! should hold it as an optional, per-config `Option<Box<LatencyHistogram>>`.
//!
//! `record` is one `Acquire` load of the epoch word, two `Relaxed`
//! `fetch_add`s (bucket and sum) and two `Relaxed` loads (min, max), plus a
//! `fetch_min`/`fetch_max` only when the sample is a new extreme.

use crate::clock::{duration_to_nanos, Nanos};
use crate::loom_shim::{AtomicU32, AtomicU64, Ordering};
use core::fmt;
use std::time::Duration;

/// log2 of the number of sub-buckets per power of two.
pub const SUB_BUCKET_BITS: u32 = 3;
/// Sub-buckets per power of two; the relative error bound is `1 / (2 * SUB_BUCKETS)`.
pub const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
/// Values below this (1,024 ns) fall into 16 linear buckets 64 ns wide.
pub const LINEAR_LIMIT_NANOS: u64 = 1 << LINEAR_BITS;
/// Values at or above this (2^37 ns, about 137 s) share the overflow bucket.
pub const OVERFLOW_NANOS: u64 = 1 << TOP_BITS;
/// Number of buckets, the overflow bucket included.
pub const BUCKETS: usize = OVERFLOW + 1;
/// Index of the overflow bucket.
pub const OVERFLOW: usize = ((TOP_BITS - LINEAR_BITS + 2) << SUB_BUCKET_BITS) as usize;
/// The relative error bound of a percentile above [`LINEAR_LIMIT_NANOS`]:
/// 1/16 = 6.25 %.
pub const RELATIVE_ERROR: f64 = 1.0 / (2 * SUB_BUCKETS) as f64;
/// Shortest window period; shorter ones are raised to it.
pub const MIN_PERIOD: Duration = Duration::from_millis(1);
/// Longest window period; longer ones are lowered to it (see the module
/// docs, "Memory and cost").
pub const MAX_PERIOD: Duration = Duration::from_secs(3600);

const LINEAR_BITS: u32 = 10;
const TOP_BITS: u32 = 37;

const SLOT: u64 = 1;
const ROTATING: u64 = 1 << 1;
const START_MASK: u64 = !0xF;

/// How often a snapshot re-reads when rotations keep racing it (H4).
const SNAPSHOT_TRIES: usize = 4;

/// The bucket that counts `nanos`. O(1): one `leading_zeros`, shifts, a min.
#[inline]
pub fn bucket_index(nanos: u64) -> usize {
    let k = 63 - (nanos | (LINEAR_LIMIT_NANOS - 1)).leading_zeros(); // >= 9
    let idx =
        (u64::from(k - (LINEAR_BITS - 1)) << SUB_BUCKET_BITS) + (nanos >> (k - SUB_BUCKET_BITS));
    (idx as usize).min(OVERFLOW)
}

/// The values bucket `index` counts, as an inclusive range `(low, high)`.
/// The overflow bucket is `(2^37, u64::MAX)`; indexes past it are clamped.
pub fn bucket_bounds(index: usize) -> (u64, u64) {
    let index = index.min(OVERFLOW);
    if index == OVERFLOW {
        return (OVERFLOW_NANOS, u64::MAX);
    }
    let i = index as u64;
    if i < 2 * SUB_BUCKETS {
        let w = 1 << (LINEAR_BITS - 1 - SUB_BUCKET_BITS);
        return (i * w, i * w + w - 1);
    }
    let k = (i >> SUB_BUCKET_BITS) as u32 + LINEAR_BITS - 2;
    let shift = k - SUB_BUCKET_BITS;
    let low = ((i & (SUB_BUCKETS - 1)) + SUB_BUCKETS) << shift;
    (low, low + (1 << shift) - 1)
}

/// The value reported for samples in bucket `index`: its midpoint.
#[inline]
fn representative(index: usize) -> u64 {
    let (lo, hi) = bucket_bounds(index);
    lo + (hi - lo).div_ceil(2)
}

/// One generation of counters.
struct Slot {
    counts: [AtomicU32; BUCKETS],
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            counts: core::array::from_fn(|_| AtomicU32::new(0)),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    #[inline]
    fn record(&self, nanos: u64) {
        let i = bucket_index(nanos);
        // Relaxed: statistics (module docs); the slot was zeroed before we
        // could see it as current (H3).
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(nanos, Ordering::Relaxed);
        // Read first: a new extreme is rare, and a load does not take the
        // cache line exclusively.
        if nanos < self.min.load(Ordering::Relaxed) {
            self.min.fetch_min(nanos, Ordering::Relaxed);
        }
        if nanos > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(nanos, Ordering::Relaxed);
        }
    }

    /// Zeroes the slot. Release: a snapshot that reads any of these zeros
    /// also sees the `ROTATING` bit set before them (H4).
    fn clear(&self) {
        for c in &self.counts {
            c.store(0, Ordering::Release);
        }
        self.sum.store(0, Ordering::Release);
        self.min.store(u64::MAX, Ordering::Release);
        self.max.store(0, Ordering::Release);
    }

    /// Adds this slot's counters into `s` (Acquire, for H4).
    fn add_to(&self, s: &mut HistogramSnapshot) {
        for (total, c) in s.counts.iter_mut().zip(self.counts.iter()) {
            let n = u64::from(c.load(Ordering::Acquire));
            *total += n;
            s.count += n;
        }
        s.sum = s.sum.saturating_add(self.sum.load(Ordering::Acquire));
        s.min = s.min.min(self.min.load(Ordering::Acquire));
        s.max = s.max.max(self.max.load(Ordering::Acquire));
    }
}

/// The epoch word and the period, on a cache line of their own (128 bytes:
/// x86-64 prefetches line pairs): read by every `record`, written once a
/// period, so counter writes must not share its line.
#[repr(align(128))]
struct Epoch {
    word: AtomicU64,
    period: u64,
}

/// A lock-free latency histogram over a sliding window of one to two
/// periods. See the [module docs](self) for buckets, error bound, window and
/// memory.
///
/// Thread safety: every method takes `&self` and may be called from any
/// number of threads at once.
pub struct LatencyHistogram {
    epoch: Epoch,
    slots: [Slot; 2],
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.epoch.word.load(Ordering::Relaxed);
        f.debug_struct("LatencyHistogram")
            .field("period_nanos", &self.epoch.period)
            .field("generation_start", &(e & START_MASK))
            .field("slot", &(e & SLOT))
            .field("rotating", &(e & ROTATING != 0))
            .finish_non_exhaustive()
    }
}

impl LatencyHistogram {
    /// An empty histogram whose generations last `period` (clamped to
    /// [`MIN_PERIOD`]..=[`MAX_PERIOD`]), the first starting at `now`.
    pub fn new(period: Duration, now: Nanos) -> LatencyHistogram {
        let period = period.clamp(MIN_PERIOD, MAX_PERIOD);
        LatencyHistogram {
            epoch: Epoch {
                word: AtomicU64::new(now & START_MASK),
                period: duration_to_nanos(period),
            },
            slots: [Slot::new(), Slot::new()],
        }
    }

    /// The generation length.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.epoch.period)
    }

    /// Counts one latency. Allocation-free, O(1), never blocks.
    #[inline]
    pub fn record(&self, nanos: u64) {
        // Acquire: pairs with the Release store that published this slot as
        // current, so the slot's zeroing precedes our increments (H3).
        let e = self.epoch.word.load(Ordering::Acquire);
        self.slots[(e & SLOT) as usize].record(nanos);
    }

    /// Counts one latency given as a `Duration` (saturating at `u64::MAX` ns).
    #[inline]
    pub fn record_duration(&self, d: Duration) {
        self.record(duration_to_nanos(d));
    }

    /// Starts a new generation if the current one is at least a period old
    /// at `now`. Returns true for the one caller that rotated. Never waits:
    /// a caller that finds a rotation in flight returns false (H1).
    pub fn rotate_if_due(&self, now: Nanos) -> bool {
        let word = &self.epoch.word;
        let period = self.epoch.period;
        let e = word.load(Ordering::Acquire);
        let start = e & START_MASK;
        // Subtracting, not adding: a start within a period of `u64::MAX`
        // still rotates.
        if e & ROTATING != 0 || now.saturating_sub(start) < period {
            return false;
        }
        // H1: one winner per generation. Relaxed on failure: the loser does
        // nothing with what it read.
        if word
            .compare_exchange(e, e | ROTATING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let next = (e & SLOT) ^ 1;
        // H2: nobody records into `next` (it is not current), snapshots
        // skip it while ROTATING is set.
        self.slots[next as usize].clear();
        // H3: Release publishes the zeros before the slot becomes current.
        // A plain store is safe: nobody else writes the word while ROTATING
        // is set (H1).
        word.store((now & START_MASK) | next, Ordering::Release);
        true
    }

    /// A copy of the current window's counts (both generations, or only the
    /// current one while a rotation clears the other). Never blocks writers.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let word = &self.epoch.word;
        let mut e = word.load(Ordering::Acquire);
        let mut snap = HistogramSnapshot::default();
        for attempt in 0..SNAPSHOT_TRIES {
            snap = HistogramSnapshot::default();
            self.slots[(e & SLOT) as usize].add_to(&mut snap);
            let with_previous = e & ROTATING == 0 && attempt + 1 < SNAPSHOT_TRIES;
            if !with_previous {
                // The current slot is never cleared while current (H2).
                break;
            }
            self.slots[((e & SLOT) ^ 1) as usize].add_to(&mut snap);
            // H4: a rotation that started after our first load changed the
            // word; the slot we read as "previous" may be half cleared.
            let again = word.load(Ordering::Acquire);
            if again == e {
                break;
            }
            e = again;
        }
        snap
    }

    /// Drops every sample. Records racing with it may survive or be lost.
    pub fn clear(&self) {
        for s in &self.slots {
            s.clear();
        }
    }

    /// Bytes used (all inline; no heap).
    pub const fn memory_bytes() -> usize {
        core::mem::size_of::<LatencyHistogram>()
    }
}

/// Why a percentile could not be computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PercentileError {
    /// The percentile is NaN, infinite, or outside `0..=100`.
    OutOfRange(f64),
    /// The histogram holds no samples.
    Empty,
}

impl fmt::Display for PercentileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PercentileError::OutOfRange(p) => write!(f, "percentile {p} is not in 0..=100"),
            PercentileError::Empty => f.write_str("the histogram is empty"),
        }
    }
}

impl std::error::Error for PercentileError {}

/// The `le` boundaries, in seconds, of the Prometheus `_bucket` series
/// (before the final `+Inf`).
pub const PROMETHEUS_LE: [&str; 13] = [
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10",
];
/// [`PROMETHEUS_LE`] in nanoseconds.
pub const PROMETHEUS_LE_NANOS: [u64; 13] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// One cumulative Prometheus bucket: samples at most `le`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrometheusBucket {
    /// The `le` label as Prometheus expects it (`"0.005"`, `"+Inf"`).
    pub le: &'static str,
    /// The boundary in seconds (`f64::INFINITY` for `+Inf`).
    pub le_seconds: f64,
    /// Samples counted at or below the boundary.
    pub cumulative: u64,
}

/// Counts copied out of a [`LatencyHistogram`], or built directly with
/// [`HistogramSnapshot::record`]. Plain data: about 1.9 KB, `Clone`.
#[derive(Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    counts: [u64; BUCKETS],
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            counts: [0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

impl fmt::Debug for HistogramSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistogramSnapshot")
            .field("count", &self.count)
            .field("sum", &self.sum)
            .field("min", &self.min())
            .field("max", &self.max())
            .field("buckets", &self.buckets().collect::<Vec<_>>())
            .finish()
    }
}

impl HistogramSnapshot {
    /// An empty snapshot.
    pub fn new() -> HistogramSnapshot {
        HistogramSnapshot::default()
    }

    /// Counts one latency (single-threaded; for tests and aggregation).
    pub fn record(&mut self, nanos: u64) {
        self.counts[bucket_index(nanos)] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(nanos);
        self.min = self.min.min(nanos);
        self.max = self.max.max(nanos);
    }

    /// Adds another snapshot's counts into this one (for example to
    /// aggregate breakers).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum = self.sum.saturating_add(other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the samples in nanoseconds (saturating).
    pub fn sum_nanos(&self) -> u64 {
        self.sum
    }

    /// Smallest sample, exact; `None` when empty.
    pub fn min(&self) -> Option<u64> {
        (self.count > 0 && self.min <= self.max).then_some(self.min)
    }

    /// Largest sample, exact; `None` when empty.
    pub fn max(&self) -> Option<u64> {
        (self.count > 0 && self.min <= self.max).then_some(self.max)
    }

    /// Mean in nanoseconds; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The nearest-rank `p`-th percentile in nanoseconds: the value of rank
    /// `max(1, ceil(p * count / 100))` in sorted order, within the bound in
    /// the module docs (`max(x/16, 32 ns)`). `p` must be in `0..=100`.
    pub fn percentile(&self, p: f64) -> Result<u64, PercentileError> {
        if !(0.0..=100.0).contains(&p) {
            return Err(PercentileError::OutOfRange(p));
        }
        if self.count == 0 {
            return Err(PercentileError::Empty);
        }
        let rank = ((p * self.count as f64 / 100.0).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        let mut index = OVERFLOW;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                index = i;
                break;
            }
        }
        let value = if index == OVERFLOW {
            self.max
        } else {
            representative(index)
        };
        // The exact extremes can only tighten the estimate. A racy snapshot
        // may hold min > max for an instant: skip the clamp then.
        Ok(if self.min <= self.max {
            value.clamp(self.min, self.max)
        } else {
            value
        })
    }

    /// Non-empty fine buckets as `(low, high, count)`, bounds inclusive, in
    /// increasing order.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| {
                let (lo, hi) = bucket_bounds(i);
                (lo, hi, n)
            })
    }

    /// Cumulative counts at the fixed [`PROMETHEUS_LE`] boundaries, then
    /// `+Inf` (= [`count`](Self::count)), for `_bucket{le="..."}` lines.
    ///
    /// A fine bucket counts under an `le` when its midpoint is at most
    /// `le`, so each count is exact except for samples in the one fine bucket
    /// straddling the boundary (within 6.25 % of it).
    pub fn prometheus_buckets(&self) -> impl Iterator<Item = PrometheusBucket> + '_ {
        let mut next = 0usize;
        let mut cumulative = 0u64;
        (0..=PROMETHEUS_LE.len()).map(move |j| {
            let Some(&le) = PROMETHEUS_LE_NANOS.get(j) else {
                return PrometheusBucket {
                    le: "+Inf",
                    le_seconds: f64::INFINITY,
                    cumulative: self.count,
                };
            };
            let end = prometheus_cut(le);
            cumulative += self.counts[next..end].iter().sum::<u64>();
            next = end;
            PrometheusBucket {
                le: PROMETHEUS_LE[j],
                le_seconds: le as f64 / 1e9,
                cumulative,
            }
        })
    }
}

/// The number of fine buckets counted under boundary `le`: those whose
/// midpoint is at most `le`.
fn prometheus_cut(le: u64) -> usize {
    let i = bucket_index(le);
    if i < OVERFLOW && representative(i) <= le {
        i + 1
    } else {
        i
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    const MS: u64 = 1_000_000;

    fn exact_percentile(sorted: &[u64], p: f64) -> u64 {
        let n = sorted.len() as u64;
        let rank = ((p * n as f64 / 100.0).ceil() as u64).clamp(1, n);
        sorted[(rank - 1) as usize]
    }

    /// Log-uniform values: every octave below 2^37 is equally likely.
    fn latency() -> impl Strategy<Value = u64> {
        (0u32..TOP_BITS, any::<u64>()).prop_map(|(bits, r)| r >> (63 - bits))
    }

    /// Values within 20 % of a Prometheus `le` boundary.
    fn near_a_boundary() -> impl Strategy<Value = u64> {
        (0..PROMETHEUS_LE_NANOS.len(), -0.2f64..0.2)
            .prop_map(|(i, x)| (PROMETHEUS_LE_NANOS[i] as f64 * (1.0 + x)) as u64)
    }

    #[test]
    fn size_is_two_kib() {
        assert_eq!(LatencyHistogram::memory_bytes(), 2048);
        assert_eq!(BUCKETS, 233);
    }

    #[test]
    fn bucket_edges() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(63), 0);
        assert_eq!(bucket_index(64), 1);
        assert_eq!(bucket_index(1023), 15);
        assert_eq!(bucket_index(1024), 16);
        assert_eq!(bucket_bounds(16), (1024, 1151));
        assert_eq!(bucket_index(OVERFLOW_NANOS - 1), OVERFLOW - 1);
        assert_eq!(bucket_bounds(OVERFLOW - 1).1, OVERFLOW_NANOS - 1);
        assert_eq!(bucket_index(OVERFLOW_NANOS), OVERFLOW);
        assert_eq!(bucket_index(u64::MAX), OVERFLOW);
        // Buckets tile [0, u64::MAX] with no gap and no overlap.
        let mut expect = 0u64;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_bounds(i);
            assert_eq!(lo, expect, "bucket {i}");
            assert!(hi >= lo);
            expect = hi.wrapping_add(1);
        }
        assert_eq!(expect, 0, "the last bucket ends at u64::MAX");
    }

    proptest! {
        /// A value's bucket contains it, and above the linear region the
        /// bucket is at most 1/8 of its low bound wide.
        #[test]
        fn bucket_contains_value(v in any::<u64>(), w in latency()) {
            for v in [v, w] {
                let i = bucket_index(v);
                let (lo, hi) = bucket_bounds(i);
                prop_assert!(lo <= v && v <= hi, "{} not in bucket {} = [{}, {}]", v, i, lo, hi);
                if (2 * SUB_BUCKETS as usize..OVERFLOW).contains(&i) {
                    prop_assert!((hi - lo + 1) * SUB_BUCKETS <= lo);
                }
            }
        }

        /// The stated bound: |reported - exact| <= max(exact / 16, 32 ns)
        /// against the nearest-rank percentile of a sorted Vec; count, sum,
        /// min and max exact.
        #[test]
        fn percentile_within_bound(
            values in proptest::collection::vec(latency(), 1..400),
            ps in proptest::collection::vec(0.0f64..=100.0, 1..8),
        ) {
            let h = LatencyHistogram::new(Duration::from_secs(60), 0);
            for &v in &values {
                h.record(v);
            }
            let s = h.snapshot();
            let mut sorted = values.clone();
            sorted.sort_unstable();
            prop_assert_eq!(s.count(), values.len() as u64);
            prop_assert_eq!(s.sum_nanos(), values.iter().sum::<u64>());
            prop_assert_eq!(s.min(), Some(sorted[0]));
            prop_assert_eq!(s.max(), Some(*sorted.last().unwrap()));
            for p in ps.into_iter().chain([0.0, 50.0, 99.0, 100.0]) {
                let want = exact_percentile(&sorted, p);
                let got = s.percentile(p).unwrap();
                let err = got.abs_diff(want);
                prop_assert!(
                    err * 16 <= want || err <= 32,
                    "p{}: got {} want {} (err {})", p, got, want, err
                );
            }
        }

        /// Prometheus counts are monotone, end at the total, and each counts
        /// exactly the samples at or below `le`, except that the fine bucket
        /// straddling `le` counts whole: under `le` iff its midpoint is at
        /// most `le` (so the error is at most that bucket's samples).
        #[test]
        fn prometheus_buckets_match_exact_counts(
            values in proptest::collection::vec(prop_oneof![latency(), near_a_boundary()], 0..300),
        ) {
            let mut s = HistogramSnapshot::new();
            for &v in &values {
                s.record(v);
            }
            let rows: Vec<_> = s.prometheus_buckets().collect();
            prop_assert_eq!(rows.len(), PROMETHEUS_LE.len() + 1);
            prop_assert_eq!(rows.last().unwrap().cumulative, values.len() as u64);
            prop_assert_eq!(rows.last().unwrap().le, "+Inf");
            for w in rows.windows(2) {
                prop_assert!(w[0].cumulative <= w[1].cumulative);
            }
            for (row, &le) in rows.iter().zip(PROMETHEUS_LE_NANOS.iter()) {
                let (lo, hi) = bucket_bounds(bucket_index(le));
                let include = lo + (hi + 1 - lo) / 2 <= le;
                let want = values
                    .iter()
                    .filter(|&&v| if include { v <= hi } else { v < lo })
                    .count() as u64;
                prop_assert_eq!(row.cumulative, want, "le {}", row.le);
                prop_assert!((row.le_seconds * 1e9 - le as f64).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn prometheus_labels_match_nanos() {
        for (s, n) in PROMETHEUS_LE.iter().zip(PROMETHEUS_LE_NANOS) {
            let secs: f64 = s.parse().unwrap();
            assert_eq!((secs * 1e9).round() as u64, n);
        }
    }

    #[test]
    fn percentile_rejects_bad_input() {
        let mut s = HistogramSnapshot::new();
        assert_eq!(s.percentile(50.0), Err(PercentileError::Empty));
        s.record(5 * MS);
        for p in [-0.1, 100.000001, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(s.percentile(p), Err(PercentileError::OutOfRange(p)));
        }
        assert!(
            matches!(s.percentile(f64::NAN), Err(PercentileError::OutOfRange(p)) if p.is_nan())
        );
        assert_eq!(s.percentile(0.0), Ok(5 * MS));
        assert_eq!(s.percentile(100.0), Ok(5 * MS));
        assert_eq!(s.mean(), Some(5e6));
    }

    #[test]
    fn overflow_reports_the_maximum() {
        let h = LatencyHistogram::new(Duration::from_secs(1), 0);
        h.record(10 * MS);
        h.record(OVERFLOW_NANOS + 5);
        h.record(u64::MAX / 2);
        let s = h.snapshot();
        assert_eq!(s.percentile(100.0), Ok(u64::MAX / 2));
        assert_eq!(s.percentile(60.0), Ok(u64::MAX / 2));
        assert_eq!(s.buckets().last(), Some((OVERFLOW_NANOS, u64::MAX, 2)));
    }

    #[test]
    fn rotation_ages_samples_out() {
        let period = Duration::from_secs(10);
        let p = 10_000 * MS;
        let h = LatencyHistogram::new(period, 0);
        h.record(MS);
        assert!(!h.rotate_if_due(p - 1), "not due yet");
        assert!(h.rotate_if_due(p));
        assert!(!h.rotate_if_due(p), "one rotation per period");
        h.record(2 * MS);
        // Previous generation still visible.
        let s = h.snapshot();
        assert_eq!((s.count(), s.min(), s.max()), (2, Some(MS), Some(2 * MS)));
        assert!(h.rotate_if_due(2 * p + 1));
        let s = h.snapshot();
        assert_eq!((s.count(), s.min()), (1, Some(2 * MS)));
        assert!(h.rotate_if_due(3 * p + 2));
        assert_eq!(h.snapshot().count(), 0);
        assert_eq!(h.snapshot().min(), None);
    }

    #[test]
    fn after_a_long_gap_the_last_generation_stays_one_rotation() {
        let p = 1_000 * MS;
        let h = LatencyHistogram::new(Duration::from_nanos(p), 0);
        h.record(3 * MS);
        // Rotated only every 5 periods (a slow scrape): the samples since
        // the previous rotation stay visible, then age out.
        assert!(h.rotate_if_due(5 * p));
        assert_eq!(h.snapshot().count(), 1);
        h.record(4 * MS);
        assert!(h.rotate_if_due(10 * p));
        let s = h.snapshot();
        assert_eq!((s.count(), s.min()), (1, Some(4 * MS)));
        assert!(h.rotate_if_due(15 * p));
        assert_eq!(h.snapshot().count(), 0);
    }

    #[test]
    fn a_clock_set_back_never_rotates() {
        let h = LatencyHistogram::new(Duration::from_secs(1), 5_000 * MS);
        h.record(1);
        assert!(!h.rotate_if_due(0));
        assert!(!h.rotate_if_due(5_999 * MS));
        assert_eq!(h.snapshot().count(), 1);
        assert!(h.rotate_if_due(6_000 * MS));
        // The end of time: start + period saturates, nothing panics.
        assert!(h.rotate_if_due(u64::MAX));
        h.record(2);
        let _ = h.rotate_if_due(u64::MAX);
    }

    #[test]
    fn period_is_clamped() {
        assert_eq!(
            LatencyHistogram::new(Duration::ZERO, 0).period(),
            MIN_PERIOD
        );
        assert_eq!(LatencyHistogram::new(Duration::MAX, 0).period(), MAX_PERIOD);
    }

    #[test]
    fn clear_empties() {
        let h = LatencyHistogram::new(Duration::from_secs(1), 0);
        h.record(7);
        h.clear();
        assert_eq!(h.snapshot(), HistogramSnapshot::new());
    }

    #[test]
    fn merge_adds() {
        let mut a = HistogramSnapshot::new();
        let mut b = HistogramSnapshot::new();
        a.record(10);
        b.record(2_000);
        b.record(3_000);
        a.merge(&b);
        assert_eq!(
            (a.count(), a.sum_nanos(), a.min(), a.max()),
            (3, 5_010, Some(10), Some(3_000))
        );
    }

    /// Real threads: counts and sums conserve exactly without rotation.
    #[test]
    fn concurrent_records_conserve() {
        let h = Arc::new(LatencyHistogram::new(Duration::from_secs(60), 0));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        h.record(1 + (i * 7919 + t * 104_729) % (10_000 * MS));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let want_sum: u64 = (0..4u64)
            .flat_map(|t| (0..20_000u64).map(move |i| 1 + (i * 7919 + t * 104_729) % (10_000 * MS)))
            .sum();
        let s = h.snapshot();
        assert_eq!(s.count(), 80_000);
        assert_eq!(s.sum_nanos(), want_sum);
    }

    /// Real threads racing to rotate at the same due time: one winner each
    /// period; records during rotations are counted in one of the two
    /// generations (no straggler can stall a full period here).
    #[test]
    fn concurrent_rotation_has_one_winner() {
        let p = MS;
        let h = Arc::new(LatencyHistogram::new(Duration::from_nanos(p), 0));
        let rounds = 200u64;
        let barrier = Arc::new(std::sync::Barrier::new(3));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let h = Arc::clone(&h);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let mut won = 0u64;
                    for r in 1..=rounds {
                        barrier.wait();
                        h.record(r);
                        won += u64::from(h.rotate_if_due(r * p));
                        barrier.wait();
                        // Only a record, the previous generation is intact.
                        assert!(h.snapshot().count() >= 3);
                    }
                    won
                })
            })
            .collect();
        let won: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(won, rounds);
    }
}
