//! Where a breaker's decision words live: in the breaker itself, or in a
//! slot of a host-shared segment (`crate::shared`, issue 17).
//!
//! # One `Breaker` type, two places
//!
//! The breaker's logic (`breaker.rs`) reads and writes its decision words
//! through a [`Words`] view: the state word and deadline stamp
//! (`Control`), the probe ledger, and the consecutive-failure counter and
//! EWMA word (`Stats`). The window's words are reached through the window
//! itself (`WordBox`: its own heap words, or the slot's), and the call
//! counters through the counter-cell rule of invariant 12 (a host-shared
//! breaker's owner word is striped from the start and its stripe is the
//! process's stripe of the slot). Nothing is written twice: every method
//! takes the view, and only where the view comes from differs.
//!
//! The design first proposed a type parameter (`Breaker<P: Place =
//! Inline>`). It is not used: a shared breaker would then be another type,
//! and the registry, the C ABI handle (`circuit_breaker*`), Python and Go,
//! which all hold `Breaker`, would each need a second path. Instead a
//! host-shared breaker is an ordinary `Breaker` whose [`Mapped`] place sits
//! in its lazily allocated side box (`striped.rs`: a breaker that is not
//! shared pays no byte for it, so the memory budget holds), and whose
//! inline state word is set, once, to a word that is never on the fast
//! path. The in-process fast paths (`acquire`, the closed `record`) keep
//! reading the inline words at fixed offsets, exactly as before (same
//! instruction count); a host-shared breaker fails their one test and goes
//! to the slow paths, which take the view from the side box and run the
//! same code on the slot's words. The price of that is paid by the shared
//! breaker alone: a call into the out-of-line path and a load of the side
//! box per call (measured by the `shared` benchmark group).
//!
//! # Transitions won by another process
//!
//! [`Mapped`] keeps the last word (generation and state) this process has
//! seen on the slot. A slow path that loads a newer generation advances it
//! by CAS, once per process, and tells the local listeners with reason
//! `Remote` (`Breaker::notice_remote`); the winner of a local transition
//! advances it after its own CAS, so its own event is not repeated. A
//! thread of the winning process that loads the word between the winner's
//! CAS and that advance may report the transition once more as `Remote`.

use core::ptr::NonNull;
use std::sync::Arc;

use crate::breaker::{Breaker, Control, Stats};
use crate::loom_shim::{AtomicU64, Ordering::Relaxed};
use crate::metrics::CallCounters;
use crate::state::{ProbeLedger, Snapshot};

/// The decision words a breaker's logic runs on.
#[derive(Clone, Copy)]
pub(crate) struct Words<'a> {
    pub(crate) control: &'a Control,
    pub(crate) probes: &'a ProbeLedger,
    pub(crate) stats: &'a Stats,
}

/// Where the breaker's logic finds its decision words. Each method takes
/// the breaker, so that [`Inline`] (a zero-sized place: the breaker's own
/// fields, at fixed offsets) costs the in-process slow paths nothing over
/// reading the fields directly; `&Mapped` reads the slot's, and [`Words`]
/// (references, for the paths that are not hot) either. The slow paths are
/// generic over it: one source, monomorphised for each place.
pub(crate) trait Place<'a>: Copy {
    fn control(self, b: &'a Breaker) -> &'a Control;
    fn probes(self, b: &'a Breaker) -> &'a ProbeLedger;
    fn stats(self, b: &'a Breaker) -> &'a Stats;
}

/// The breaker's own words (its `Place` impl is in `breaker.rs`, beside
/// the fields).
#[derive(Clone, Copy)]
pub(crate) struct Inline;

impl<'a> Place<'a> for Words<'a> {
    #[inline(always)]
    fn control(self, _: &'a Breaker) -> &'a Control {
        self.control
    }

    #[inline(always)]
    fn probes(self, _: &'a Breaker) -> &'a ProbeLedger {
        self.probes
    }

    #[inline(always)]
    fn stats(self, _: &'a Breaker) -> &'a Stats {
        self.stats
    }
}

impl<'a> Place<'a> for &'a Mapped {
    #[inline(always)]
    fn control(self, _: &'a Breaker) -> &'a Control {
        self.words().control
    }

    #[inline(always)]
    fn probes(self, _: &'a Breaker) -> &'a ProbeLedger {
        self.words().probes
    }

    #[inline(always)]
    fn stats(self, _: &'a Breaker) -> &'a Stats {
        self.words().stats
    }
}

/// A breaker's words in a mapped segment slot, and the mapping they are in.
pub(crate) struct Mapped {
    control: NonNull<Control>,
    probes: NonNull<ProbeLedger>,
    stats: NonNull<Stats>,
    #[cfg_attr(circuit_loom, allow(dead_code))]
    window: NonNull<AtomicU64>,
    #[cfg_attr(circuit_loom, allow(dead_code))]
    window_len: u32,
    /// This process's stripe's counters.
    stripe: NonNull<CallCounters>,
    /// The first stripe's counters; the others follow every
    /// `stripe_stride` bytes.
    stripes: NonNull<u8>,
    stripe_count: u32,
    stripe_stride: u32,
    /// The last slot word (generation and state) this process has seen.
    seen: AtomicU64,
    /// Keeps the mapping alive while any pointer above is in use.
    _mapping: Arc<dyn std::any::Any + Send + Sync>,
}

// SAFETY: the pointers are into a shared mapping kept alive by `_mapping`
// and are used only for atomic accesses.
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapped")
            .field("control", &self.control)
            .field("stripes", &self.stripe_count)
            .finish_non_exhaustive()
    }
}

/// Where the words of one slot are (`crate::shared::Segment::breaker`).
#[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
pub(crate) struct SlotWords {
    pub(crate) control: NonNull<u8>,
    pub(crate) probes: NonNull<u8>,
    pub(crate) stats: NonNull<u8>,
    pub(crate) window: NonNull<u8>,
    pub(crate) window_len: u32,
    pub(crate) stripe: NonNull<u8>,
    pub(crate) stripes: NonNull<u8>,
    pub(crate) stripe_count: u32,
    pub(crate) stripe_stride: u32,
}

impl Mapped {
    /// The place of one slot's words.
    ///
    /// # Safety
    /// Every pointer of `at` must be 8-aligned and point into `mapping`'s
    /// memory, at words laid out as `Control`, `ProbeLedger`, `Stats`,
    /// `window_len` window words, and `stripe_count` stripes of
    /// `CallCounters` `stripe_stride` bytes apart (`stripe` among them),
    /// all initialised, shared only through atomics, and mapped for as long
    /// as `mapping` lives.
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) unsafe fn new(
        at: SlotWords,
        mapping: Arc<dyn std::any::Any + Send + Sync>,
    ) -> Mapped {
        let m = Mapped {
            control: at.control.cast(),
            probes: at.probes.cast(),
            stats: at.stats.cast(),
            window: at.window.cast(),
            window_len: at.window_len,
            stripe: at.stripe.cast(),
            stripes: at.stripes,
            stripe_count: at.stripe_count,
            stripe_stride: at.stripe_stride,
            seen: AtomicU64::new(0),
            _mapping: mapping,
        };
        // Transitions before this process opened the slot are not news.
        m.seen.store(m.words().control.word.load().0, Relaxed);
        m
    }

    /// The slot's decision words.
    #[inline]
    pub(crate) fn words(&self) -> Words<'_> {
        // SAFETY: the contract of `new`: live, aligned, initialised words
        // of these types (each `repr(transparent)`/`repr(C)` over atomics)
        // for as long as `self` holds the mapping.
        unsafe {
            Words {
                control: self.control.as_ref(),
                probes: self.probes.as_ref(),
                stats: self.stats.as_ref(),
            }
        }
    }

    /// The window's words, borrowed from the slot.
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) fn window_words(&self) -> crate::words::WordBox {
        // SAFETY: the contract of `new`; the window that holds the box is a
        // field of the breaker whose side box holds `self` (and the
        // mapping), dropped no later than it.
        unsafe { crate::words::WordBox::borrowed(self.window, self.window_len) }
    }

    /// This process's counter stripe.
    #[inline]
    pub(crate) fn stripe(&self) -> &CallCounters {
        // SAFETY: the contract of `new`.
        unsafe { self.stripe.as_ref() }
    }

    /// Every process's counter stripe.
    pub(crate) fn stripes(&self) -> impl Iterator<Item = &CallCounters> + '_ {
        (0..self.stripe_count as usize).map(move |i| {
            // SAFETY: the contract of `new`: stripe `i` is in the mapping.
            unsafe {
                &*self
                    .stripes
                    .as_ptr()
                    .add(i * self.stripe_stride as usize)
                    .cast::<CallCounters>()
            }
        })
    }

    /// If `s` is of a newer generation than the last word this process
    /// saw, records it (once per process: a CAS) and returns the word seen
    /// before it.
    #[inline]
    pub(crate) fn newer(&self, s: Snapshot) -> Option<Snapshot> {
        let mut cur = self.seen.load(Relaxed);
        loop {
            let gap = s.generation().wrapping_sub(Snapshot(cur).generation()) as i32;
            if gap <= 0 {
                return None;
            }
            // Relaxed: the word only decides which thread reports the news;
            // it guards no memory.
            match self.seen.compare_exchange_weak(cur, s.0, Relaxed, Relaxed) {
                Ok(_) => return Some(Snapshot(cur)),
                Err(now) => cur = now,
            }
        }
    }
}

/// Test hooks (feature `test-hooks`, for the crash tests of host-shared
/// breakers; never in a release build of the library).
#[cfg(feature = "test-hooks")]
pub mod hooks {
    use crate::loom_shim::process_wide::AtomicU64;
    use crate::loom_shim::Ordering::Relaxed;

    static DIE_AFTER_CAS: AtomicU64 = AtomicU64::new(0);

    /// The next transition this process wins on a host-shared breaker
    /// kills the process (SIGKILL) right after its CAS, before it writes
    /// the generation's deadline: as a process killed at that instruction.
    pub fn die_after_next_transition_cas() {
        DIE_AFTER_CAS.store(1, Relaxed);
    }

    pub(crate) fn after_transition_cas() {
        if DIE_AFTER_CAS.load(Relaxed) != 0 {
            // SAFETY: signalling this process; SIGKILL does not return.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }
}
