//! Where a recording thread adds its call counts (invariant 12): one inline
//! cell while one thread at a time records, per-thread stripes on lines of
//! their own once several threads take turns on the breaker.
//!
//! A counter line written by two cores moves between them on every write
//! (about 40-80 ns each on the machines measured), which is most of a
//! contended call. Stripes for every breaker would cost
//! `stripes x 128` bytes each; a registry of 100,000 breakers must stay under
//! 64 MB, so a breaker allocates them only once it sees contention.
//!
//! **Detection.** Each call has a tag naming its thread (the stack region
//! it runs on, see [`tag`]). The owner word holds the tag of the thread
//! that writes the inline cell. A record whose tag matches writes the
//! inline cell: the cost is an address computation, a load of the owner
//! word (on a read-mostly line, written only by transitions and hand-offs)
//! and a compare. A
//! record from another thread takes ownership with a CAS and counts the
//! hand-off in the word; after [`HANDOFFS`] hand-offs the breaker is
//! contended: it allocates its stripes and the owner word says so, and every
//! later record adds to the stripe of its thread's tag. A breaker recorded
//! from one thread, or from a few threads taking turns rarely, never pays
//! for stripes; a breaker recorded from a thread pool gets them after its
//! 32nd change of thread.
//!
//! Counts stay exact: the owner word only chooses a cell. Any thread may add
//! to any cell (each add is one `Relaxed` RMW, invariant 8), a read sums
//! every cell, and no cell is ever cleared or freed while the breaker lives.

use std::cell::Cell;

use crossbeam_utils::CachePadded;

use crate::group::Membership;
use crate::histogram::LatencyHistogram;
use crate::loom_shim::process_wide;
use crate::loom_shim::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use crate::metrics::CallCounters;
use crate::place::Mapped;
use crate::reconfig::Reconfig;

/// Ownership changes after which a breaker counts as contended. Small under
/// loom, so that a model reaches the striped state in a few records.
#[cfg(not(circuit_loom))]
const HANDOFFS: u32 = 31;
#[cfg(circuit_loom)]
const HANDOFFS: u32 = 1;

/// Owner word: bit 0 set = owned, bits 1-5 the hand-off count, bits 6-31
/// the owner's tag index. [`FRESH`] = no record yet; [`STRIPED`] =
/// contended. Neither has bit 0 set, so no tag matches them.
const OWNED: u32 = 1;
const HANDOFF_SHIFT: u32 = 1;
const HANDOFF_MASK: u32 = 0b11_1110;
const INDEX_SHIFT: u32 = 6;
const FRESH: u32 = 1 << INDEX_SHIFT;
const STRIPED: u32 = 2 << INDEX_SHIFT;

/// The calling thread's owner tag, `region << INDEX_SHIFT | OWNED`: the
/// region is the 128 KiB stretch of address space the call's stack frame
/// is in. Live threads' stacks are disjoint and at least that large on
/// every platform's defaults, so two threads never show the same region;
/// one thread calling at stack depths far apart may show two, which costs
/// a hand-off, never a count; threads that run one after another on a
/// reused stack show one, and they do not contend. Threads on custom
/// stacks under 128 KiB may share a region: they then share the inline
/// cell, which costs time, never a count. It is not a thread-local read on purpose: in
/// a shared library (the C ABI's `libcircuit.so`, which the Python and Go
/// hosts load) every thread-local read is a call to `__tls_get_addr`,
/// while this is one address computation.
#[cfg(not(circuit_loom))]
#[inline(always)]
pub(crate) fn tag() -> u32 {
    let marker = 0u8;
    tag_of(core::ptr::addr_of!(marker) as usize)
}

/// [`tag`] from the stack pointer register (x86-64, AArch64), for a
/// function that otherwise needs no stack frame: taking a local's address
/// gives it one, so its hand-over to a slow path stops being a tail jump
/// (the C ABI's record leaf). Elsewhere it is [`tag`]. The two may name
/// neighbouring regions for one frame that straddles a boundary: a
/// hand-off, never a count (see [`tag`]). Inlined loops keep [`tag`]: the
/// local's address is computed once for the whole frame.
#[cfg(not(circuit_loom))]
#[inline(always)]
pub(crate) fn leaf_tag() -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        let sp: usize;
        // SAFETY: copies the stack pointer into a register; reads and
        // writes no memory, leaves the stack and the flags alone.
        unsafe {
            core::arch::asm!("mov {}, rsp", out(reg) sp, options(pure, nomem, nostack, preserves_flags));
        }
        tag_of(sp)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let sp: usize;
        // SAFETY: as on x86-64: a register copy of the stack pointer.
        unsafe {
            core::arch::asm!("mov {}, sp", out(reg) sp, options(pure, nomem, nostack, preserves_flags));
        }
        tag_of(sp)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        tag()
    }
}

/// The owner tag of a thread whose stack holds `address`.
#[cfg(not(circuit_loom))]
#[inline(always)]
fn tag_of(address: usize) -> u32 {
    let region = (address >> 17) as u32;
    (region << INDEX_SHIFT) | OWNED
}

/// Under loom, modelled threads may share one stack region: the tag is the
/// thread's index instead.
#[cfg(circuit_loom)]
pub(crate) fn tag() -> u32 {
    (thread_index() << INDEX_SHIFT) | OWNED
}

/// Under loom, [`tag`].
#[cfg(circuit_loom)]
pub(crate) fn leaf_tag() -> u32 {
    tag()
}

/// The next thread's index.
#[cfg(not(circuit_loom))]
static NEXT_INDEX: process_wide::AtomicU64 = process_wide::AtomicU64::new(1);

#[cfg(not(circuit_loom))]
std::thread_local! {
    static INDEX: Cell<u32> = const { Cell::new(0) };
}
#[cfg(circuit_loom)]
loom::thread_local! {
    static INDEX: Cell<u32> = Cell::new(0);
}

/// A number distinct for each thread (26 bits used; numbers repeat after
/// 2^26 threads, which only makes two threads share a stripe). Numbers are
/// handed out in order, so threads started together get consecutive ones
/// and land on distinct stripes. Read only on the contended path (here
/// and by a contended count window's lanes, `crate::window`).
pub(crate) fn thread_index() -> u32 {
    let i = INDEX.with(Cell::get);
    if i != 0 {
        return i;
    }
    let i = ((index_number() as u32) & ((1 << (32 - INDEX_SHIFT)) - 1)).max(1);
    INDEX.with(|c| c.set(i));
    i
}

#[cfg(not(circuit_loom))]
fn index_number() -> u64 {
    // Relaxed: the counter only hands out distinct numbers.
    NEXT_INDEX.fetch_add(1, Ordering::Relaxed)
}

/// Under loom: the modelled thread's index (`ThreadId(n)`), the same in
/// every execution of a model, so that each replay picks the same stripes.
#[cfg(circuit_loom)]
fn index_number() -> u64 {
    let id = format!("{:?}", loom::thread::current().id());
    let digits: String = id.chars().filter(char::is_ascii_digit).collect();
    digits.parse::<u64>().map_or(1, |n| n + 1)
}

/// Which cell a record with a given tag writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The inline cell.
    Inline,
    /// The thread's stripe.
    Striped,
}

/// The owner word. A hint only: every access is `Relaxed` (invariant 12).
#[derive(Debug)]
pub(crate) struct Owner(AtomicU32);

impl Owner {
    pub(crate) fn new() -> Owner {
        Owner(AtomicU32::new(FRESH))
    }

    /// Whether `tag` owns the inline cell: the fast-path test.
    #[inline]
    pub(crate) fn is(&self, tag: u32) -> bool {
        self.0.load(Ordering::Relaxed) & !HANDOFF_MASK == tag
    }

    /// Marks the breaker contended from the start (a host-shared breaker:
    /// its counts go to its process's stripe of the slot).
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) fn set_striped(&self) {
        self.0.store(STRIPED, Ordering::Relaxed);
    }

    /// Takes the inline cell for `tag`, or reports that the breaker is
    /// (now) contended. A thread that gets `Inline` may find ownership gone
    /// by the time it adds: two threads then share the inline cell for a
    /// moment, which costs time, never a count.
    pub(crate) fn claim(&self, tag: u32) -> Claim {
        let mut w = self.0.load(Ordering::Relaxed);
        loop {
            if w == STRIPED {
                return Claim::Striped;
            }
            if w & !HANDOFF_MASK == tag {
                return Claim::Inline;
            }
            let handoffs = (w & HANDOFF_MASK) >> HANDOFF_SHIFT;
            let next = match w {
                FRESH => tag,
                _ if handoffs >= HANDOFFS => STRIPED,
                _ => tag | ((handoffs + 1) << HANDOFF_SHIFT),
            };
            // Relaxed: the word guards no memory (the stripes are published
            // by their own pointer, invariant 12).
            match self
                .0
                .compare_exchange(w, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) if next == STRIPED => return Claim::Striped,
                Ok(_) => return Claim::Inline,
                Err(cur) => w = cur,
            }
        }
    }
}

/// Per-thread cells of a contended breaker, each on a line of its own.
type Stripes = Box<[CachePadded<CallCounters>]>;

/// What a breaker allocates only when it needs it: its latency histogram
/// (when the config keeps one), its counter stripes (once contended) and
/// its count of calls a ramp-up refused (once one is refused). One pointer
/// in the breaker, null while it needs none of them.
#[derive(Debug)]
pub(crate) struct Side(AtomicPtr<SideBox>);

#[derive(Debug)]
struct SideBox {
    latency: Option<LatencyHistogram>,
    /// Null until contended; then a `Box<Stripes>` leaked until drop.
    stripes: AtomicPtr<Stripes>,
    /// Calls a ramp-up refused (`RejectReason::RampLimited`). Here rather
    /// than among the call counters because only a breaker with a ramp
    /// ever counts one: the others do not pay 8 bytes for it (the memory
    /// budget of 100,000 breakers has under 1 MB to spare).
    ramp_limited: AtomicU64,
    /// The group guard the breaker is under (invariant 15), set before
    /// any other thread sees the breaker. Here because most breakers are in
    /// no group and should not pay a word for it.
    group: Option<Membership>,
    /// Null until the breaker is first reconfigured (invariant 18); then a
    /// `Box<Reconfig>` leaked until drop.
    reconfig: AtomicPtr<Reconfig>,
    /// The slot whose words a host-shared breaker runs on
    /// (`crate::place`), set before any other thread sees the breaker.
    mapped: Option<Mapped>,
}

impl Drop for SideBox {
    fn drop(&mut self) {
        let p = self.stripes.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: a non-null `stripes` came from `Box::into_raw` in
            // `Side::stripes` and is freed only here, once.
            drop(unsafe { Box::from_raw(p) });
        }
        let r = self.reconfig.load(Ordering::Acquire);
        if !r.is_null() {
            // SAFETY: a non-null `reconfig` came from `Box::into_raw` in
            // `Side::reconfig_or_new` and is freed only here, once.
            drop(unsafe { Box::from_raw(r) });
        }
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let p = self.0.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: a non-null pointer came from `Box::into_raw` in
            // `Side::new` or `Side::stripes` and is freed only here, once.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// Stripes per contended breaker: twice the CPUs, rounded up to a power of
/// two, 4 to 64 (threads' tag indexes are consecutive numbers, so threads
/// started together land on distinct stripes).
pub(crate) fn stripe_count() -> usize {
    static COUNT: process_wide::AtomicU64 = process_wide::AtomicU64::new(0);
    // Relaxed: every thread computes the same value.
    match COUNT.load(Ordering::Relaxed) {
        0 => {
            let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
            let n = (2 * cpus).next_power_of_two().clamp(4, 64);
            COUNT.store(n as u64, Ordering::Relaxed);
            n
        }
        n => n as usize,
    }
}

impl Side {
    pub(crate) fn new(latency: Option<LatencyHistogram>) -> Side {
        Side(AtomicPtr::new(match latency {
            Some(h) => Box::into_raw(Box::new(SideBox {
                latency: Some(h),
                stripes: AtomicPtr::new(core::ptr::null_mut()),
                ramp_limited: AtomicU64::new(0),
                group: None,
                reconfig: AtomicPtr::new(core::ptr::null_mut()),
                mapped: None,
            })),
            None => core::ptr::null_mut(),
        }))
    }

    #[inline]
    fn boxed(&self) -> Option<&SideBox> {
        // Acquire: pairs with the AcqRel CAS that published the box, so its
        // contents are initialised here (invariant 12).
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: non-null pointers are live `SideBox`es owned by `self`,
        // freed only by `Drop` (which needs `&mut self`).
        unsafe { p.as_ref() }
    }

    /// The latency histogram, when the config keeps one.
    #[inline]
    pub(crate) fn latency(&self) -> Option<&LatencyHistogram> {
        self.boxed()?.latency.as_ref()
    }

    /// The stripes, if allocated.
    pub(crate) fn stripes(&self) -> Option<&[CachePadded<CallCounters>]> {
        let b = self.boxed()?;
        // Acquire: as in `boxed` (invariant 12).
        let p = b.stripes.load(Ordering::Acquire);
        // SAFETY: non-null means a live `Stripes` owned by the box, freed
        // only when the box is dropped.
        unsafe { p.as_ref() }.map(|s| &**s)
    }

    /// The calling thread's stripe, allocating the stripes (and the box)
    /// first if this is the first striped record.
    pub(crate) fn stripe(&self) -> &CallCounters {
        if let Some(m) = self.mapped() {
            return m.stripe();
        }
        let stripes = match self.stripes() {
            Some(s) => s,
            None => self.allocate(),
        };
        &stripes[thread_index() as usize & (stripes.len() - 1)]
    }

    /// The side box, allocating and publishing it first if there is none.
    #[cold]
    fn boxed_or_new(&self) -> &SideBox {
        if let Some(b) = self.boxed() {
            return b;
        }
        let fresh = Box::into_raw(Box::new(SideBox {
            latency: None,
            stripes: AtomicPtr::new(core::ptr::null_mut()),
            ramp_limited: AtomicU64::new(0),
            group: None,
            reconfig: AtomicPtr::new(core::ptr::null_mut()),
            mapped: None,
        }));
        // AcqRel: Release publishes the box; Acquire (on failure) reads
        // the box another thread published (invariant 12).
        match self.0.compare_exchange(
            core::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: `fresh` is now owned by `self`, live until drop.
            Ok(_) => unsafe { &*fresh },
            Err(cur) => {
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: `cur` is a live box owned by `self`.
                unsafe { &*cur }
            }
        }
    }

    /// Puts the breaker under a group guard. `&mut self`: the breaker is
    /// not shared yet.
    pub(crate) fn set_group(&mut self, membership: Membership) {
        self.boxed_or_new();
        let p = self.0.load(Ordering::Relaxed);
        // SAFETY: `p` is the live box `boxed_or_new` just ensured, owned by
        // `self`; `&mut self` means no reference into it exists elsewhere.
        unsafe { (*p).group = Some(membership) };
    }

    /// Puts the breaker on a host-shared slot's words. `&mut self`: the
    /// breaker is not shared yet.
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) fn set_mapped(&mut self, mapped: Mapped) {
        self.boxed_or_new();
        let p = self.0.load(Ordering::Relaxed);
        // SAFETY: as in `set_group`.
        unsafe { (*p).mapped = Some(mapped) };
    }

    /// The host-shared slot the breaker runs on, if any.
    #[inline]
    pub(crate) fn mapped(&self) -> Option<&Mapped> {
        self.boxed()?.mapped.as_ref()
    }

    /// The group guard the breaker is under, if any.
    #[inline]
    pub(crate) fn group(&self) -> Option<&Membership> {
        self.boxed()?.group.as_ref()
    }

    /// What reconfigurations keep, once the breaker has been reconfigured.
    #[inline]
    pub(crate) fn reconfig(&self) -> Option<&Reconfig> {
        let b = self.boxed()?;
        // Acquire: pairs with the AcqRel CAS in `reconfig_or_new`
        // (invariant 12).
        let p = b.reconfig.load(Ordering::Acquire);
        // SAFETY: non-null means a live `Reconfig` owned by the box, freed
        // only when the box is dropped.
        unsafe { p.as_ref() }
    }

    /// What reconfigurations keep, allocating it (and the box) first.
    #[cold]
    pub(crate) fn reconfig_or_new(&self) -> &Reconfig {
        if let Some(r) = self.reconfig() {
            return r;
        }
        let b = self.boxed_or_new();
        let fresh = Box::into_raw(Box::new(Reconfig::new()));
        // AcqRel: published once by a CAS from null, as the stripes are
        // (invariant 12).
        let p = match b.reconfig.compare_exchange(
            core::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(cur) => {
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                cur
            }
        };
        // SAFETY: `p` is a live `Reconfig` owned by the box until drop.
        unsafe { &*p }
    }

    /// Counts a call a ramp-up refused (a `Relaxed` add, invariant 8).
    #[cold]
    pub(crate) fn ramp_limited(&self) {
        self.boxed_or_new()
            .ramp_limited
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` restored ramp refusals (`core/src/snapshot.rs`).
    pub(crate) fn add_ramp_limited(&self, n: u64) {
        if n != 0 {
            self.boxed_or_new()
                .ramp_limited
                .fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Calls a ramp-up refused so far.
    pub(crate) fn ramp_limited_count(&self) -> u64 {
        self.boxed()
            .map_or(0, |b| b.ramp_limited.load(Ordering::Relaxed))
    }

    #[cold]
    fn allocate(&self) -> &[CachePadded<CallCounters>] {
        let b = self.boxed_or_new();
        let stripes: Stripes = (0..stripe_count())
            .map(|_| CachePadded::new(CallCounters::new()))
            .collect();
        let fresh = Box::into_raw(Box::new(stripes));
        // AcqRel: as above (invariant 12).
        let p = match b.stripes.compare_exchange(
            core::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(cur) => {
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                cur
            }
        };
        // SAFETY: `p` is a live `Stripes` owned by the box until drop.
        unsafe { &*p }
    }

    /// Heap bytes of the stripes (the histogram is counted by its owner).
    pub(crate) fn stripe_bytes(&self) -> usize {
        self.stripes().map_or(0, |s| {
            core::mem::size_of_val(s) + core::mem::size_of::<SideBox>()
        })
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use crate::{Breaker, Config, Outcome};
    use std::time::Duration;

    fn tag_of(index: u32) -> u32 {
        (index << INDEX_SHIFT) | OWNED
    }

    #[test]
    fn ownership_moves_then_stripes_after_the_handoff_limit() {
        let owner = Owner::new();
        let (a, b) = (tag_of(7), tag_of(8));
        assert!(!owner.is(a), "a fresh word matches no tag");
        assert_eq!(owner.claim(a), Claim::Inline);
        assert!(owner.is(a) && !owner.is(b));
        for i in 0..HANDOFFS {
            let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
            assert_eq!(owner.claim(to), Claim::Inline, "hand-off {i}");
            assert!(owner.is(to) && !owner.is(from), "hand-off {i}");
        }
        // The next hand-off finds the breaker contended, for good.
        let next = if HANDOFFS % 2 == 0 { b } else { a };
        assert_eq!(owner.claim(next), Claim::Striped);
        assert!(!owner.is(a) && !owner.is(b));
        assert_eq!(owner.claim(a), Claim::Striped);
        assert_eq!(owner.claim(tag_of(9)), Claim::Striped);
    }

    #[test]
    fn the_owner_claims_again_without_a_handoff() {
        let owner = Owner::new();
        let a = tag_of(3);
        for _ in 0..10 * HANDOFFS {
            assert_eq!(owner.claim(a), Claim::Inline);
        }
        assert!(owner.is(a));
    }

    fn record(b: &Breaker, n: usize) {
        for _ in 0..n {
            let p = b.acquire().expect("closed");
            b.record(p, Outcome::Success, Duration::from_millis(1));
        }
    }

    /// The memory budget rests on this: a breaker recorded from one thread,
    /// or from threads taking turns fewer than `HANDOFFS` times, allocates
    /// no stripes; one that changes thread more often does.
    #[test]
    fn stripes_are_allocated_only_after_repeated_handoffs() {
        let b = std::sync::Arc::new(Breaker::new(Config::default()));
        let bare = b.memory_bytes();
        record(&b, 10_000);
        assert_eq!(b.memory_bytes(), bare, "one thread");
        let turn = |n| {
            let b = b.clone();
            std::thread::spawn(move || record(&b, n)).join().unwrap();
        };
        for _ in 0..HANDOFFS / 2 - 1 {
            turn(100);
            record(&b, 100);
        }
        assert_eq!(b.memory_bytes(), bare, "fewer hand-offs than the limit");
        // (Threads spawned one after another may run on one reused stack,
        // which is one thread as far as contention goes: alternate with
        // this one.)
        for _ in 0..HANDOFFS {
            turn(10);
            record(&b, 10);
        }
        assert!(b.memory_bytes() > bare, "contended: stripes allocated");
        let m = b.metrics();
        let turns = u64::from(HANDOFFS / 2 - 1);
        let want = 10_000 + turns * 200 + u64::from(HANDOFFS) * 20;
        assert_eq!(m.outcome(Outcome::Success), want);
    }
}
