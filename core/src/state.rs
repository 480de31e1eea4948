//! The packed state word (invariants 1-4 in the crate docs).
//!
//! One `AtomicU64` holds everything a transition must change at once, so every
//! transition is a single compare-and-swap and exactly one thread wins it:
//!
//! ```text
//!  63                              32 31 29 28     21 20     13 12      5 4    2 1  0
//! +----------------------------------+-----+---------+---------+---------+------+----+
//! |            generation            | rsv |  streak | success | inflight| ovr  | ph |
//! +----------------------------------+-----+---------+---------+---------+------+----+
//! ```
//!
//! | field      | bits | meaning                                                   |
//! |------------|------|-----------------------------------------------------------|
//! | `phase`    | 2    | CLOSED = 0, OPEN = 1, HALF_OPEN = 2, RAMPING = 3 (a       |
//! |            |      | CLOSED that ramps up after recovery: `core/src/ramp.rs`)  |
//! | `override` | 3    | none, forced open, forced closed, disabled, metrics only  |
//! | `inflight` | 8    | half-open probes admitted and not yet reported            |
//! | `success`  | 8    | half-open probes that succeeded in this episode           |
//! | `streak`   | 8    | re-opens from HALF_OPEN since the last CLOSED (saturates) |
//! | reserved   | 3    | always zero                                               |
//! | `gen`      | 32   | incremented (wrapping) by every transition                |
//!
//! Each field is declared by its width and the field below it; shifts and
//! masks are computed, never written by hand (sharded-slab's `Pack`).
//!
//! Beside the word live [`Stamp`]s: deadlines that a transition winner writes
//! right after its CAS. A stamp carries the low 16 bits of the generation it
//! belongs to, so a reader that sees a new generation before its deadline has
//! been written can tell (invariant 4).

use crate::clock::Nanos;
use crate::loom_shim::{AtomicU64, Ordering};

/// One bit field of the state word.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) shift: u32,
    pub(crate) width: u32,
}

impl Field {
    pub(crate) const fn first(width: u32) -> Field {
        Field { shift: 0, width }
    }

    pub(crate) const fn after(prev: Field, width: u32) -> Field {
        Field {
            shift: prev.shift + prev.width,
            width,
        }
    }

    pub(crate) const fn max(self) -> u64 {
        (1u64 << self.width) - 1
    }

    pub(crate) const fn mask(self) -> u64 {
        self.max() << self.shift
    }

    #[inline]
    pub(crate) const fn get(self, word: u64) -> u64 {
        (word >> self.shift) & self.max()
    }

    #[inline]
    fn set(self, word: u64, value: u64) -> u64 {
        debug_assert!(value <= self.max(), "field value {value} out of range");
        (word & !self.mask()) | ((value & self.max()) << self.shift)
    }
}

pub(crate) const PHASE: Field = Field::first(2);
pub(crate) const OVERRIDE: Field = Field::after(PHASE, 3);
pub(crate) const INFLIGHT: Field = Field::after(OVERRIDE, 8);
pub(crate) const SUCCESS: Field = Field::after(INFLIGHT, 8);
pub(crate) const STREAK: Field = Field::after(SUCCESS, 8);
pub(crate) const RESERVED: Field = Field::after(STREAK, 3);
pub(crate) const GENERATION: Field = Field::after(RESERVED, 32);
const _: () = assert!(GENERATION.shift + GENERATION.width == 64);

/// Phase code of a CLOSED breaker ramping up after recovery (invariant 14).
const RAMPING: u64 = 3;

/// Bits that must be zero for the closed fast path to admit: phase CLOSED and
/// no override (invariant 2).
pub(crate) const FAST_PATH_MASK: u64 = PHASE.mask() | OVERRIDE.mask();

/// The automatic phase of the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Calls pass; outcomes are counted.
    Closed = 0,
    /// Calls are refused until the open deadline.
    Open = 1,
    /// A bounded number of probes test recovery.
    HalfOpen = 2,
}

/// An operator override that takes precedence over the automatic phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Override {
    /// Reject every call.
    ForcedOpen = 1,
    /// Admit every call, record metrics, never trip.
    ForcedClosed = 2,
    /// Admit every call, record nothing.
    Disabled = 3,
    /// Admit every call, evaluate the trip policies, and on a trip emit a
    /// `ShadowTrip` transition instead of opening (dry-run of a config).
    MetricsOnly = 4,
}

impl Override {
    pub(crate) fn from_bits(bits: u64) -> Option<Override> {
        match bits {
            1 => Some(Override::ForcedOpen),
            2 => Some(Override::ForcedClosed),
            3 => Some(Override::Disabled),
            4 => Some(Override::MetricsOnly),
            _ => None,
        }
    }
}

/// What a host sees: the override if one is set, otherwise the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Automatic, calls pass.
    Closed,
    /// Automatic, calls refused.
    Open,
    /// Automatic, probing.
    HalfOpen,
    /// Operator: refuse all.
    ForcedOpen,
    /// Operator: admit all, never trip.
    ForcedClosed,
    /// Operator: admit all, record nothing.
    Disabled,
    /// Operator: admit all, shadow-evaluate trips.
    MetricsOnly,
}

impl State {
    /// Every state, in a stable order used by metric arrays and the C ABI.
    pub const ALL: [State; 7] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::ForcedClosed,
        State::Disabled,
        State::MetricsOnly,
    ];

    /// Stable index into [`State::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name used in metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::ForcedClosed => "forced_closed",
            State::Disabled => "disabled",
            State::MetricsOnly => "metrics_only",
        }
    }

    /// True when calls are admitted without probing limits.
    pub fn admits_all(self) -> bool {
        matches!(
            self,
            State::Closed | State::ForcedClosed | State::Disabled | State::MetricsOnly
        )
    }
}

/// A copy of the state word: pure `Snapshot -> Snapshot` functions, testable
/// without atomics.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(pub(crate) u64);

impl core::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Snapshot")
            .field("phase", &self.phase())
            .field("override", &self.override_mode())
            .field("inflight", &self.inflight())
            .field("success", &self.success())
            .field("streak", &self.streak())
            .field("gen", &self.generation())
            .finish()
    }
}

impl Snapshot {
    /// The word of a new breaker: CLOSED, generation 0.
    pub(crate) const INITIAL: Snapshot = Snapshot(0);

    /// The inline word of a host-shared breaker (`crate::place`): a forced
    /// open override (never on the fast path, rejects if ever read by
    /// mistake) with the reserved bits set, which no transition sets, so
    /// that the slow paths tell it apart with one test.
    #[cfg_attr(circuit_loom, allow(dead_code))]
    pub(crate) const HOST_SHARED: Snapshot =
        Snapshot(RESERVED.mask() | ((Override::ForcedOpen as u64) << OVERRIDE.shift));

    /// Whether this is [`Snapshot::HOST_SHARED`]'s word.
    #[inline]
    pub(crate) fn is_host_shared(self) -> bool {
        self.0 & RESERVED.mask() != 0
    }

    #[inline]
    pub(crate) fn on_fast_path(self) -> bool {
        self.0 & FAST_PATH_MASK == 0
    }

    #[inline]
    pub(crate) fn phase(self) -> Phase {
        match PHASE.get(self.0) {
            0 | RAMPING => Phase::Closed,
            1 => Phase::Open,
            _ => Phase::HalfOpen,
        }
    }

    /// CLOSED and ramping up after recovery (invariant 14): phase code 3,
    /// off the fast path, CLOSED to hosts.
    #[inline]
    pub(crate) fn ramping(self) -> bool {
        PHASE.get(self.0) == RAMPING
    }

    /// CLOSED ramping up, no override, no probes, streak kept as given (a
    /// trip during the ramp re-opens as from HALF_OPEN, with backoff).
    pub(crate) fn to_ramping(self, streak: u32) -> Snapshot {
        Snapshot(PHASE.set(self.to_closed(streak).0, RAMPING))
    }

    /// Same generation, the ramp over: plain CLOSED with streak 0, back on
    /// the fast path (no transition, invariant 14).
    pub(crate) fn without_ramp(self) -> Snapshot {
        Snapshot(STREAK.set(PHASE.set(self.0, 0), 0))
    }

    #[inline]
    pub(crate) fn override_mode(self) -> Option<Override> {
        Override::from_bits(OVERRIDE.get(self.0))
    }

    #[inline]
    pub(crate) fn inflight(self) -> u32 {
        INFLIGHT.get(self.0) as u32
    }

    #[inline]
    pub(crate) fn success(self) -> u32 {
        SUCCESS.get(self.0) as u32
    }

    #[inline]
    pub(crate) fn streak(self) -> u32 {
        STREAK.get(self.0) as u32
    }

    #[inline]
    pub(crate) fn generation(self) -> u32 {
        GENERATION.get(self.0) as u32
    }

    pub(crate) fn state(self) -> State {
        match self.override_mode() {
            Some(Override::ForcedOpen) => State::ForcedOpen,
            Some(Override::ForcedClosed) => State::ForcedClosed,
            Some(Override::Disabled) => State::Disabled,
            Some(Override::MetricsOnly) => State::MetricsOnly,
            None => match self.phase() {
                Phase::Closed => State::Closed,
                Phase::Open => State::Open,
                Phase::HalfOpen => State::HalfOpen,
            },
        }
    }

    /// The same word with the generation incremented (wrapping): the first
    /// step of every transition (invariant 3).
    #[inline]
    fn next_generation(self) -> Snapshot {
        Snapshot(self.0.wrapping_add(1 << GENERATION.shift))
    }

    /// CLOSED, no override, no probes, streak kept as given.
    pub(crate) fn to_closed(self, streak: u32) -> Snapshot {
        let gen = self.next_generation().0 & GENERATION.mask();
        Snapshot(STREAK.set(gen, u64::from(streak).min(STREAK.max())))
    }

    /// OPEN with the given streak; probes cleared.
    pub(crate) fn to_open(self, streak: u32) -> Snapshot {
        let w = self.to_closed(streak).0;
        Snapshot(PHASE.set(w, Phase::Open as u64))
    }

    /// HALF_OPEN with `inflight` probes admitted and `success` kept.
    pub(crate) fn to_half_open(self, inflight: u32, success: u32) -> Snapshot {
        let w = self.to_closed(self.streak()).0;
        let w = PHASE.set(w, Phase::HalfOpen as u64);
        let w = INFLIGHT.set(w, u64::from(inflight));
        Snapshot(SUCCESS.set(w, u64::from(success)))
    }

    /// An override over a CLOSED phase (leaving the override returns to a
    /// fresh CLOSED, invariant 5).
    pub(crate) fn to_override(self, mode: Override) -> Snapshot {
        let w = self.to_closed(0).0;
        Snapshot(OVERRIDE.set(w, mode as u64))
    }

    /// Same word with the streak set (saturating): builds a restored word
    /// (`core/src/snapshot.rs`) after one of the `to_*` builders above.
    pub(crate) fn with_streak(self, streak: u32) -> Snapshot {
        Snapshot(STREAK.set(self.0, u64::from(streak).min(STREAK.max())))
    }

    /// Same generation, one more probe in flight (no transition).
    pub(crate) fn with_probe_admitted(self) -> Snapshot {
        Snapshot(INFLIGHT.set(self.0, u64::from(self.inflight() + 1)))
    }

    /// Same generation, one probe fewer in flight; `succeeded` moves it to the
    /// success count (no transition).
    pub(crate) fn with_probe_reported(self, succeeded: bool) -> Snapshot {
        let w = INFLIGHT.set(self.0, u64::from(self.inflight().saturating_sub(1)));
        if succeeded {
            Snapshot(SUCCESS.set(w, u64::from(self.success() + 1).min(SUCCESS.max())))
        } else {
            Snapshot(w)
        }
    }
}

/// The atomic state word.
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct StateCell(AtomicU64);

impl StateCell {
    pub(crate) fn new() -> Self {
        StateCell(AtomicU64::new(Snapshot::INITIAL.0))
    }

    /// Address of the word (for `Breaker::state_word_ptr`).
    #[cfg(not(circuit_loom))]
    pub(crate) fn as_ptr(&self) -> *const u64 {
        self.0.as_ptr()
    }

    /// Acquire: a reader that sees a generation also sees everything its
    /// transition winner wrote before the CAS (invariant 3).
    #[inline]
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::Acquire))
    }

    /// Sets the word of a breaker no other thread has seen to
    /// [`Snapshot::HOST_SHARED`] (`&mut`: nothing races it).
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) fn set_host_shared(&mut self) {
        self.0.store(Snapshot::HOST_SHARED.0, Ordering::Relaxed);
    }

    /// The only way the word changes. AcqRel on success publishes the
    /// winner's prior writes and orders it after the previous winner; Acquire
    /// on failure so the returned snapshot is as fresh as a load.
    #[inline]
    pub(crate) fn compare_exchange(
        &self,
        current: Snapshot,
        new: Snapshot,
    ) -> Result<Snapshot, Snapshot> {
        debug_assert_eq!(new.0 & RESERVED.mask(), 0, "reserved bits must stay zero");
        self.0
            .compare_exchange(current.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .map(Snapshot)
            .map_err(Snapshot)
    }
}

/// A deadline tied to the generation whose winner wrote it (invariant 4):
/// `gen16 << 48 | time48`, where `time48` is the deadline relative to the
/// breaker's stamp base (`Env::stamp_base`, a clock reading taken when the
/// breaker's environment was created, see there), in one of two units:
///
/// - bit 47 clear: microseconds past the base (exact for the first 2^47 us,
///   4.46 years);
/// - bit 47 set: the low 47 bits are milliseconds past the base (2^47 ms
///   is more than any `u64` of nanoseconds, so every deadline a clock can
///   express fits, rounded up to the millisecond);
/// - all 48 bits set: [`Stamp::NEVER`] (no deadline), which the millisecond
///   form never reaches (its largest value is `u64::MAX / 10^6` ms).
///
/// Why relative to a base and not the clock's zero: a clock may start
/// anywhere in `u64` (a manual clock at wall-clock nanoseconds, 2^60 and
/// beyond), and 48 bits of absolute microseconds end at 2^48 us (8.9 years
/// after the clock's zero): past that, every deadline used to saturate to
/// "never", so a tripped breaker admitted at once and overrides never
/// expired. Relative to a base near the breaker's first clock reading, the
/// stamp keeps microsecond precision for years of uptime whatever the
/// clock's origin, and the breaker behaves exactly as one on a clock
/// starting at zero (the base keeps the breaker's offset a whole number of
/// microseconds). Widening the stamp instead would mean two words (a
/// generation tag and a full `u64`), which a reader cannot load together
/// without a 128-bit atomic or a second protocol. Readers compare absolute
/// nanoseconds (`base + offset`, saturating at `u64::MAX`, which a clock can
/// reach: a deadline past the end of time is reached at its end, it does
/// not become "never").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(pub(crate) u64);

const STAMP_TIME_BITS: u32 = 48;
const STAMP_TIME_MAX: u64 = (1 << STAMP_TIME_BITS) - 1;
/// Bit of the time part that selects the millisecond form.
const STAMP_COARSE: u64 = 1 << (STAMP_TIME_BITS - 1);

impl Stamp {
    /// The stamp of `deadline` (clock nanoseconds) for `generation`, relative
    /// to `base`. A deadline before the base (a clock set back past it)
    /// reads back as the base: later, never earlier (invariant 7).
    pub(crate) fn new(generation: u32, deadline: Nanos, base: Nanos) -> Stamp {
        let offset = deadline.saturating_sub(base);
        let micros = offset.div_ceil(1000);
        let time = if micros < STAMP_COARSE {
            micros
        } else {
            STAMP_COARSE | offset.div_ceil(1_000_000)
        };
        debug_assert!(time < STAMP_TIME_MAX);
        Stamp((u64::from(generation as u16) << STAMP_TIME_BITS) | time)
    }

    pub(crate) fn never(generation: u32) -> Stamp {
        Stamp((u64::from(generation as u16) << STAMP_TIME_BITS) | STAMP_TIME_MAX)
    }

    /// True when this stamp was written for `generation`.
    #[inline]
    pub(crate) fn belongs_to(self, generation: u32) -> bool {
        (self.0 >> STAMP_TIME_BITS) as u16 == generation as u16
    }

    #[inline]
    pub(crate) fn is_never(self) -> bool {
        self.0 & STAMP_TIME_MAX == STAMP_TIME_MAX
    }

    /// The deadline in clock nanoseconds, for the `base` it was written
    /// with (saturating at `u64::MAX`; `u64::MAX` for [`Stamp::never`]).
    #[inline]
    pub(crate) fn deadline(self, base: Nanos) -> Nanos {
        let time = self.0 & STAMP_TIME_MAX;
        if self.is_never() {
            return Nanos::MAX;
        }
        let offset = if time & STAMP_COARSE == 0 {
            time * 1000
        } else {
            (time & !STAMP_COARSE).saturating_mul(1_000_000)
        };
        base.saturating_add(offset)
    }
}

/// An atomic [`Stamp`].
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct StampCell(AtomicU64);

impl StampCell {
    /// Address of the word (for `Breaker::deadline_word_ptr`).
    #[cfg(not(circuit_loom))]
    pub(crate) fn as_ptr(&self) -> *const u64 {
        self.0.as_ptr()
    }

    pub(crate) fn new() -> Self {
        // A stamp for no generation the breaker is in yet (low 16 bits all
        // ones); should one ever match, "never" is the safe reading: an open
        // breaker stays open, an override does not expire.
        StampCell(AtomicU64::new(Stamp::never(0xFFFF).0))
    }

    /// Acquire pairs with the Release in `store`; the value itself is all a
    /// reader needs, the ordering keeps a stamp from being seen before the
    /// transition it belongs to is visible (invariant 4).
    #[inline]
    pub(crate) fn load(&self) -> Stamp {
        Stamp(self.0.load(Ordering::Acquire))
    }

    /// Writes the deadline of `generation` unless the word has already moved
    /// past it. One cell serves every generation, so a winner that stamps
    /// late must not overwrite its successor's deadline: the successor would
    /// read a stamp of another generation as "not written yet" forever (an
    /// OPEN that never reaches its deadline, an override that never
    /// expires). A successor writes only after its CAS on the word, with
    /// Release; the Acquire read of its stamp here makes that CAS visible to
    /// the word load, and a stamp written after our read fails our CAS.
    pub(crate) fn store(&self, word: &StateCell, generation: u32, stamp: Stamp) {
        let _ = self
            .0
            .fetch_update(Ordering::Release, Ordering::Acquire, |_| {
                (word.load().generation() == generation).then_some(stamp.0)
            });
    }

    /// Writes `stamp` for `generation` only while the cell holds no stamp of
    /// that generation and the word is still in it: a reader's stand-in
    /// for a winner that has not stamped (invariant 4). The winner's own
    /// [`StampCell::store`] overwrites it whenever it comes, and a stamp the
    /// winner has written is never replaced, since both are RMWs on this
    /// one cell (AcqRel/Acquire as `store`).
    pub(crate) fn fill(&self, word: &StateCell, generation: u32, stamp: Stamp) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (!Stamp(cur).belongs_to(generation) && word.load().generation() == generation)
                    .then_some(stamp.0)
            });
    }

    /// As [`StampCell::store`], unless the cell already holds a later
    /// deadline for the same generation (half-open leases: the youngest grant
    /// wins).
    pub(crate) fn raise(&self, word: &StateCell, generation: u32, stamp: Stamp, base: Nanos) {
        let _ = self
            .0
            .fetch_update(Ordering::Release, Ordering::Acquire, |cur| {
                let cur = Stamp(cur);
                if cur.belongs_to(generation) && cur.deadline(base) >= stamp.deadline(base) {
                    None
                } else {
                    (word.load().generation() == generation).then_some(stamp.0)
                }
            });
    }
}

/// Probe tickets of the current half-open generation (invariant 11): which
/// tickets were issued and which have reported, so that each probe counts
/// once (B5: K successes come from K distinct probes).
///
/// ```text
///  63          48 47      40 39                                        0
/// +--------------+----------+-------------------------------------------+
/// |    gen16     |  issued  |        reported (one bit per ticket)      |
/// +--------------+----------+-------------------------------------------+
/// ```
///
/// A ledger whose tag is not the generation's is the empty ledger of that
/// generation with ticket 0 issued: ticket 0 is the probe admitted by the
/// transition into HALF_OPEN itself (in its CAS), so its winner never has
/// to write here before others may. Whoever touches the ledger first in a
/// generation writes that empty ledger, only while the state word is still
/// in the generation (checked inside the CAS loop, as for stamps), so a late
/// thread never resets a newer generation's ledger.
///
/// [`PROBE_TICKETS`] tickets are tracked per generation; a probe admitted
/// after them (more than 40 probes, or more than 40 - P neutral reports, in
/// one half-open generation) gets [`UNTRACKED`] and its reports are not
/// checked for duplicates.
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct ProbeLedger(AtomicU64);

/// Tickets tracked per half-open generation.
pub(crate) const PROBE_TICKETS: u32 = 40;
/// The ticket of a probe admitted after the tracked ones.
pub(crate) const UNTRACKED: u32 = 0xFF;
const LEDGER_TAG_SHIFT: u32 = 48;
const LEDGER_ISSUED_SHIFT: u32 = 40;
const LEDGER_REPORTED: u64 = (1 << PROBE_TICKETS) - 1;

impl ProbeLedger {
    pub(crate) fn new() -> Self {
        // Tagged for no generation a new breaker is in (see `StampCell::new`).
        ProbeLedger(AtomicU64::new(0xFFFF << LEDGER_TAG_SHIFT))
    }

    fn empty(generation: u32) -> u64 {
        (u64::from(generation as u16) << LEDGER_TAG_SHIFT) | (1 << LEDGER_ISSUED_SHIFT)
    }

    /// The ledger as it stands for `generation`, or `None` when the state
    /// word has left that generation.
    #[inline]
    fn current(word: &StateCell, generation: u32, cur: u64) -> Option<u64> {
        if (cur >> LEDGER_TAG_SHIFT) as u16 == generation as u16 {
            Some(cur)
        } else if word.load().generation() == generation {
            Some(Self::empty(generation))
        } else {
            None
        }
    }

    /// Issues the next ticket of `generation` to a probe whose slot the
    /// caller has just taken in the word. `UNTRACKED` once the tracked
    /// tickets are used up, or when the word has moved on (the permit is
    /// stale anyway).
    pub(crate) fn issue(&self, word: &StateCell, generation: u32) -> u32 {
        let mut ticket = UNTRACKED;
        // AcqRel/Acquire as `StampCell::store`: the word load inside sees
        // the transition of any later generation whose ledger we read
        // (invariant 11).
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                ticket = UNTRACKED;
                let cur = Self::current(word, generation, cur)?;
                let issued = ((cur >> LEDGER_ISSUED_SHIFT) & 0xFF) as u32;
                if issued >= PROBE_TICKETS {
                    return None;
                }
                ticket = issued;
                Some(cur + (1 << LEDGER_ISSUED_SHIFT))
            });
        ticket
    }

    /// Marks `ticket` of `generation` as reported. True for the first report
    /// of an issued ticket (and for every report of an untracked one);
    /// false for a second report, a ticket never issued, or a generation
    /// the word has left: that report must change nothing.
    pub(crate) fn claim(&self, word: &StateCell, generation: u32, ticket: u32) -> bool {
        if ticket == UNTRACKED {
            return true;
        }
        if ticket >= PROBE_TICKETS {
            return false;
        }
        let bit = 1u64 << ticket;
        // Invariant 11: this RMW is the one place where two reports of one
        // ticket meet; exactly one of them sets the bit.
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                let cur = Self::current(word, generation, cur)?;
                let issued = ((cur >> LEDGER_ISSUED_SHIFT) & 0xFF) as u32;
                (ticket < issued && cur & LEDGER_REPORTED & bit == 0).then_some(cur | bit)
            })
            .is_ok()
    }
}

/// Ramp tickets (invariant 14): while the word is RAMPING in a generation,
/// the ledger word is `gen16 << 48 | tickets drawn`. No probe is issued or
/// claimed in a CLOSED generation, and a ledger of another generation's tag
/// reads as empty to a half-open generation, so the two uses never meet.
const RAMP_TICKETS: u64 = (1 << LEDGER_TAG_SHIFT) - 1;

impl ProbeLedger {
    /// Draws the next ticket of the ramp of `generation` (0 for its first
    /// call), or `None` when the word has left that generation. Written, as
    /// probe tickets are, only while the word is still in the generation
    /// (checked inside the CAS loop), so a late caller never touches a newer
    /// generation's ledger.
    pub(crate) fn ramp_ticket(&self, word: &StateCell, generation: u32) -> Option<u64> {
        let tag = u64::from(generation as u16) << LEDGER_TAG_SHIFT;
        let mut ticket = None;
        // AcqRel/Acquire as `issue` (invariant 11): the word load inside
        // sees the transition of any later generation whose ledger we read.
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                ticket = None;
                let drawn = if cur & !RAMP_TICKETS == tag {
                    cur & RAMP_TICKETS
                } else if word.load().generation() == generation {
                    0
                } else {
                    return None;
                };
                ticket = Some(drawn);
                Some(tag | (drawn + 1).min(RAMP_TICKETS))
            });
        ticket
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_tile_the_word_without_overlap() {
        let fields = [
            PHASE, OVERRIDE, INFLIGHT, SUCCESS, STREAK, RESERVED, GENERATION,
        ];
        let mut seen = 0u64;
        for f in fields {
            assert_eq!(seen & f.mask(), 0, "{f:?} overlaps");
            seen |= f.mask();
        }
        assert_eq!(seen, u64::MAX);
    }

    #[test]
    fn initial_word_is_closed_on_the_fast_path() {
        let s = Snapshot::INITIAL;
        assert!(s.on_fast_path());
        assert_eq!(s.state(), State::Closed);
        assert_eq!(s.generation(), 0);
    }

    #[test]
    fn generation_wraps() {
        let s = Snapshot(GENERATION.mask()); // generation u32::MAX
        assert_eq!(s.to_open(0).generation(), 0);
    }

    proptest! {
        #[test]
        fn transitions_bump_generation_and_keep_reserved_zero(
            gen in any::<u32>(), inflight in 0u32..=255, success in 0u32..=255, streak in 0u32..1000,
        ) {
            let base = Snapshot(u64::from(gen) << GENERATION.shift);
            let next = [
                base.to_open(streak),
                base.to_closed(streak),
                base.to_half_open(inflight, success),
                base.to_override(Override::MetricsOnly),
            ];
            for n in next {
                prop_assert_eq!(n.generation(), gen.wrapping_add(1));
                prop_assert_eq!(n.0 & RESERVED.mask(), 0);
            }
            let h = base.to_half_open(inflight, success);
            prop_assert_eq!(h.inflight(), inflight);
            prop_assert_eq!(h.success(), success);
            prop_assert_eq!(h.phase(), Phase::HalfOpen);
            prop_assert_eq!(base.to_open(streak).streak(), streak.min(255));
            let r = base.to_ramping(streak);
            prop_assert!(r.ramping() && !r.on_fast_path());
            prop_assert_eq!(r.state(), State::Closed);
            prop_assert_eq!(r.generation(), gen.wrapping_add(1));
            prop_assert_eq!(r.streak(), streak.min(255));
            let done = r.without_ramp();
            prop_assert!(done.on_fast_path() && !done.ramping());
            prop_assert_eq!(done.generation(), r.generation());
            prop_assert_eq!(done, base.to_closed(0));
        }

        #[test]
        fn stamps_round_trip(gen in any::<u32>(), deadline in 0u64..(1u64 << 58)) {
            let s = Stamp::new(gen, deadline, 0);
            prop_assert!(s.belongs_to(gen));
            prop_assert!(!s.belongs_to(gen.wrapping_add(1)));
            prop_assert!(!s.is_never());
            let expect = if deadline.div_ceil(1000) < STAMP_COARSE {
                deadline.div_ceil(1000) * 1000
            } else {
                deadline.div_ceil(1_000_000) * 1_000_000
            };
            prop_assert_eq!(s.deadline(0), expect);
            prop_assert!(s.deadline(0) >= deadline);
        }

        /// Any base and any deadline: never "never", never early, at most a
        /// millisecond late, and exact to the microsecond for offsets below
        /// 2^47 us.
        #[test]
        fn stamps_hold_every_clock_value(
            gen in any::<u32>(), base in any::<u64>(), offset in any::<u64>(), small in any::<bool>(),
        ) {
            let offset = if small { offset % (1u64 << 56) } else { offset };
            let deadline = base.saturating_add(offset);
            let s = Stamp::new(gen, deadline, base);
            prop_assert!(!s.is_never());
            let back = s.deadline(base);
            prop_assert!(back >= deadline, "{} < {}", back, deadline);
            prop_assert!(back - deadline < 1_000_000 || back == u64::MAX);
            if (deadline - base).div_ceil(1000) < STAMP_COARSE && back != u64::MAX {
                prop_assert_eq!(back - base, (deadline - base).div_ceil(1000) * 1000);
            }
            // Re-stamping what was read (a shadow trip keeps its expiry)
            // changes nothing, or, where reading saturated at the end of
            // time, never makes it earlier than the deadline.
            let again = Stamp::new(gen, back, base).deadline(base);
            if back == u64::MAX {
                prop_assert!(again >= deadline);
            } else {
                prop_assert_eq!(again, back);
            }
        }
    }

    #[test]
    fn a_deadline_before_the_base_reads_as_the_base() {
        let s = Stamp::new(1, 5, 1_000_000);
        assert_eq!(s.deadline(1_000_000), 1_000_000);
        assert_eq!(Stamp::never(1).deadline(7), u64::MAX);
        let end = Stamp::new(1, u64::MAX, u64::MAX - 10);
        assert_eq!(end.deadline(u64::MAX - 10), u64::MAX);
        assert!(!end.is_never());
    }
}
