//! Named breakers (B9): per-name configs over defaults, get-or-create by
//! name, iteration, removal, a hard cap, optional idle eviction, and
//! registry-wide listeners.
//!
//! The map is `papaya::HashMap`: reads (the hot lookup by name) are
//! lock-free and never wait for a writer or a resize (resizing is
//! incremental), and memory is reclaimed by epochs. A sharded `RwLock` map
//! such as `dashmap` would put a lock on every lookup; that is the thing this
//! library exists to avoid.
//!
//! Invariants:
//! 1. `len <= max_breakers` at all times: a creator reserves a place with a
//!    `fetch_add` before inserting and gives it back if it loses the insert
//!    race or the cap is reached.
//! 2. At most one breaker exists per name: creation is `try_insert`; the
//!    loser drops its candidate (which no one has seen) and returns the
//!    winner's.
//! 3. Every breaker created here forwards its transitions to the registry's
//!    listener set, after its own listeners.
//! 4. Idle eviction removes only breakers that are CLOSED, referenced by
//!    nothing but the registry, and recorded no call for the configured
//!    number of consecutive sweeps after the first that saw them. Sweeps are
//!    called by the host; the call path pays nothing for eviction.
//! 5. One name, one breaker, while anyone holds it: idle eviction never
//!    removes a breaker that a lookup (`get`, `get_or_create`, `for_each`,
//!    `sorted`) has handed out and whose reference is still alive, and a
//!    lookup never hands out a breaker that eviction removed. This is the
//!    crate's invariant 10 (the eviction handshake on `Slot`).

use crate::loom_shim::{AtomicUsize, Ordering};
use std::mem::ManuallyDrop;
use std::sync::Arc;

use crate::breaker::{host_shared_refusal, Env};
use crate::clock::{Clock, MonotonicClock};
use crate::config::{Config, ConfigError};
use crate::events::{EventQueue, Listener, ListenerId, ListenerSet};
use crate::group::{Group, GroupLimit, GroupLimitError, GroupStats};
use crate::{Breaker, State};

/// Longest breaker name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Default hard cap on breakers in one registry.
pub const DEFAULT_MAX_BREAKERS: usize = 1_000_000;

/// Why a registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// Names must not be empty.
    EmptyName,
    /// Name longer than [`MAX_NAME_LEN`] bytes.
    NameTooLong {
        /// Its length.
        len: usize,
    },
    /// The registry holds `max` breakers already.
    LimitReached {
        /// The cap.
        max: usize,
    },
    /// A config was refused.
    InvalidConfig(ConfigError),
    /// No group of that name was set with [`Registry::set_group`].
    UnknownGroup,
    /// A group limit was refused.
    InvalidGroupLimit(GroupLimitError),
    /// A registry on a segment ([`Registry::on_segment`]): every slot of
    /// the segment is held by another name.
    SegmentFull {
        /// The segment's slots.
        capacity: u32,
    },
    /// A registry on a segment: another live process is claiming the
    /// name's slot and did not finish within the segment's claim wait.
    SegmentBusy,
    /// A registry on a segment: the segment refused the name's slot (a
    /// name it cannot hold, or a corrupt slot); the segment's reason.
    SegmentRefused(String),
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::EmptyName => write!(f, "breaker name is empty"),
            RegistryError::NameTooLong { len } => {
                write!(
                    f,
                    "breaker name is {len} bytes; the limit is {MAX_NAME_LEN}"
                )
            }
            RegistryError::LimitReached { max } => {
                write!(f, "registry is full: it already holds {max} breakers")
            }
            RegistryError::InvalidConfig(e) => e.fmt(f),
            RegistryError::UnknownGroup => write!(f, "no group of that name was set"),
            RegistryError::InvalidGroupLimit(e) => e.fmt(f),
            RegistryError::SegmentFull { capacity } => {
                write!(f, "segment is full: its {capacity} slots hold other names")
            }
            RegistryError::SegmentBusy => {
                f.write_str("segment slot is being claimed by a live process")
            }
            RegistryError::SegmentRefused(why) => write!(f, "segment refused the name: {why}"),
        }
    }
}

impl std::error::Error for RegistryError {}

/// Registry settings.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Config for names without their own.
    pub defaults: Config,
    /// Hard cap on breakers (1..).
    pub max_breakers: usize,
    /// Evict a breaker after this many idle sweeps (`None`: never).
    pub evict_after_idle_sweeps: Option<u32>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            defaults: Config::default(),
            max_breakers: DEFAULT_MAX_BREAKERS,
            evict_after_idle_sweeps: None,
        }
    }
}

/// What idle eviction remembers of a breaker between sweeps: calls recorded
/// at the last sweep and how many sweeps in a row found it idle. Kept apart
/// from the map (and only when eviction is on) so a breaker costs no memory
/// for a feature it may not use.
type IdleLog = std::collections::HashMap<Arc<str>, (u64, u32)>;

/// Low bit of a [`Slot`] word: a lookup handed the breaker out since the
/// last sweep cleared the bit.
const HANDED_OUT: usize = 1;
/// Second bit of a [`Slot`] word: an idle sweep evicted the breaker. Final:
/// never cleared, the breaker is never handed out again, and whoever sees it
/// unlinks the entry.
const EVICTED: usize = 2;
const FLAGS: usize = HANDED_OUT | EVICTED;
const _: () = assert!(std::mem::align_of::<Breaker>() > FLAGS);

/// A map entry's value: one strong reference to a breaker, kept as the
/// address `Arc::into_raw` gave (at least 8-aligned) with two flag bits in
/// its low bits, so that the eviction handshake costs no memory per breaker
/// (the entry stays the size of an `Arc`).
///
/// The eviction handshake (invariant 10): every lookup that hands the
/// breaker out first clones it (`hand_out`), then sets `HANDED_OUT` with an
/// AcqRel RMW on the word, and drops the clone if that RMW saw `EVICTED`. A
/// sweep (sweeps are serialised) clears `HANDED_OUT` with an AcqRel RMW,
/// then reads the strong count, and evicts only with a CAS from exactly the
/// bare address (no flag) to `EVICTED`, and only if the count showed the
/// map's own reference alone. The three RMWs act on one word, so they are
/// totally ordered, and for any hand-out:
/// - after the sweep's clear (and before its CAS): the CAS fails;
/// - before the clear: it synchronises with the clear, so the clone happens
///   before the count read, which includes it while it lives (or a later
///   clone made from it: increments and decrements of one count are
///   coherent, so a holder's clone of a clone keeps the count above 1);
/// - after the CAS: it sees `EVICTED` and hands nothing out.
///
/// A lookup never waits for a sweep: one that sees `EVICTED` unlinks the
/// entry itself (by address) and looks again.
struct Slot {
    word: AtomicUsize,
}

impl Slot {
    fn new(breaker: Arc<Breaker>) -> Slot {
        let address = Arc::into_raw(breaker) as usize;
        debug_assert_eq!(address & FLAGS, 0);
        Slot {
            word: AtomicUsize::new(address),
        }
    }

    /// The breaker's address. Those bits never change after the slot is
    /// created (only the flags do), and the slot reached this thread through
    /// the map's publication, so a relaxed load reads them.
    fn address(&self) -> usize {
        self.word.load(Ordering::Relaxed) & !FLAGS
    }

    /// The slot's own reference, borrowed.
    fn breaker(&self) -> &Breaker {
        // SAFETY: the slot owns one strong reference from `Arc::into_raw`
        // until it is dropped, and `&self` keeps it from being dropped.
        unsafe { &*(self.address() as *const Breaker) }
    }

    /// Calls `f` with the slot's own reference, lent as an `Arc` (`f` may
    /// clone it).
    fn lend<R>(&self, f: impl FnOnce(&Arc<Breaker>) -> R) -> R {
        // SAFETY: as in `breaker`; `ManuallyDrop` leaves the slot's
        // reference where it is, and it lives only during this call, while
        // `&self` keeps the slot alive.
        let arc = ManuallyDrop::new(unsafe { Arc::from_raw(self.address() as *const Breaker) });
        f(&arc)
    }

    /// Strong references: the slot's own, plus those of holders.
    fn strong_count(&self) -> usize {
        self.lend(Arc::strong_count)
    }

    /// A new reference, without the handshake (eviction off).
    fn clone_breaker(&self) -> Arc<Breaker> {
        let ptr = self.address() as *const Breaker;
        // Under loom, a point where the model may switch threads: a lookup
        // stalled between finding the entry and taking its reference.
        #[cfg(circuit_loom)]
        let _ = self.word.load(Ordering::Relaxed);
        // SAFETY: as in `breaker`: the slot's reference keeps the count at
        // least 1 while `&self` lives, so adding one and taking it is sound.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }

    /// A new reference for a lookup (invariant 10), or the breaker's
    /// address when it was evicted.
    fn hand_out(&self) -> Result<Arc<Breaker>, usize> {
        let breaker = self.clone_breaker();
        // Invariant 10: the clone above, then this RMW.
        let was = self.word.fetch_or(HANDED_OUT, Ordering::AcqRel);
        if was & EVICTED == 0 {
            Ok(breaker)
        } else {
            Err(was & !FLAGS)
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: the slot's own reference, given back once.
        drop(unsafe { Arc::from_raw(self.address() as *const Breaker) });
    }
}

/// A set of named breakers sharing a clock and listeners. All methods take
/// `&self` and are safe from any thread.
pub struct Registry {
    breakers: papaya::HashMap<Arc<str>, Slot>,
    configs: papaya::HashMap<Arc<str>, Arc<Config>>,
    /// Group guards by group name.
    groups: papaya::HashMap<Arc<str>, Arc<Group>>,
    /// The group each breaker name joins when next created.
    memberships: papaya::HashMap<Arc<str>, Arc<Group>>,
    defaults: Arc<Config>,
    env: Arc<Env>,
    len: AtomicUsize,
    max: usize,
    evict_after: Option<u32>,
    idle: std::sync::Mutex<IdleLog>,
    listeners: Arc<ListenerSet>,
    /// Serialises `reconfigure` (and a creator catching up with one), so
    /// that the last config set for a name is the one its breaker has.
    reconfiguring: std::sync::Mutex<()>,
    /// The segment whose slots hold the breakers ([`Registry::on_segment`]).
    segment: Option<OnSegment>,
}

/// The segment of a registry on one (`crate::shared`); a type with no
/// value where shared segments are not built.
#[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
type OnSegment = Arc<crate::shared::Segment>;
#[cfg(not(all(unix, target_has_atomic = "64", not(circuit_loom))))]
type OnSegment = std::convert::Infallible;

/// The refusal of a per-name config on a registry on a segment.
fn segment_config_refusal() -> RegistryError {
    RegistryError::InvalidConfig(crate::config::ConfigError {
        field: "config",
        reason: "a registry on a segment runs the segment's config for every name (hashed \
                 into the segment's header): open another segment for another config"
            .into(),
    })
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("len", &self.len())
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<(), RegistryError> {
    if name.is_empty() {
        Err(RegistryError::EmptyName)
    } else if name.len() > MAX_NAME_LEN {
        Err(RegistryError::NameTooLong { len: name.len() })
    } else {
        Ok(())
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(RegistryOptions::default())
    }
}

impl Registry {
    /// A registry on the monotonic clock.
    pub fn new(options: RegistryOptions) -> Registry {
        Registry::with_clock(options, Arc::new(MonotonicClock::new()))
    }

    /// A registry whose breakers read `clock`.
    pub fn with_clock(options: RegistryOptions, clock: Arc<dyn Clock>) -> Registry {
        let listeners = Arc::new(ListenerSet::default());
        let env = Env::new(clock, Some(listeners.clone()));
        Registry::assemble(options, env, listeners, None)
    }

    /// A registry whose breakers live on `segment`: each name's breaker is
    /// [`Segment::breaker`](crate::shared::Segment::breaker) of that name,
    /// sharing its state with every process of the host that opens the
    /// segment, and forwarding its events (its own transitions, and those
    /// won by other processes, with reason `Remote`) to this registry's
    /// listeners. The breakers run the segment's config on
    /// [`HostClock`](crate::shared::HostClock): `options.defaults` must be
    /// that config, per-name configs other than it are refused
    /// ([`Registry::set_config`]), and so is [`Registry::reconfigure`], as
    /// [`Breaker::reconfigure`] refuses on a host-shared breaker.
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub fn on_segment(
        segment: Arc<crate::shared::Segment>,
        options: RegistryOptions,
    ) -> Result<Registry, RegistryError> {
        if options.defaults != **segment.config() {
            return Err(segment_config_refusal());
        }
        let listeners = Arc::new(ListenerSet::default());
        let env = segment.env(Some(listeners.clone()));
        let mut options = options;
        options.defaults = (**segment.config()).clone();
        Ok(Registry::assemble(options, env, listeners, Some(segment)))
    }

    fn assemble(
        options: RegistryOptions,
        env: Arc<Env>,
        listeners: Arc<ListenerSet>,
        segment: Option<OnSegment>,
    ) -> Registry {
        Registry {
            breakers: papaya::HashMap::new(),
            configs: papaya::HashMap::new(),
            groups: papaya::HashMap::new(),
            memberships: papaya::HashMap::new(),
            defaults: Arc::new(options.defaults),
            env,
            len: AtomicUsize::new(0),
            max: options.max_breakers.max(1),
            evict_after: options.evict_after_idle_sweeps.map(|n| n.max(1)),
            idle: std::sync::Mutex::new(IdleLog::new()),
            listeners,
            reconfiguring: std::sync::Mutex::new(()),
            segment,
        }
    }

    /// Whether this registry's breakers live on a segment
    /// ([`Registry::on_segment`]).
    pub fn is_on_segment(&self) -> bool {
        self.segment.is_some()
    }

    /// A new breaker for `name` (not yet published): on the segment's slot
    /// for a registry on a segment, else on the heap.
    fn candidate(&self, key: &Arc<str>, config: &Arc<Config>) -> Result<Breaker, RegistryError> {
        match &self.segment {
            None => Ok(Breaker::shared(
                key.clone(),
                config.clone(),
                self.env.clone(),
            )),
            #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
            Some(segment) => {
                use crate::shared::SegmentError;
                segment
                    .breaker_in(key.clone(), self.env.clone())
                    .map_err(|e| match e {
                        SegmentError::Full { capacity } => RegistryError::SegmentFull { capacity },
                        SegmentError::Busy => RegistryError::SegmentBusy,
                        other => RegistryError::SegmentRefused(other.to_string()),
                    })
            }
            #[cfg(not(all(unix, target_has_atomic = "64", not(circuit_loom))))]
            Some(never) => match *never {},
        }
    }

    /// The clock the breakers read.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.env.clock
    }

    /// Sets the config used when `name` is next created. A breaker that
    /// already exists keeps its config until removed; to change it too,
    /// use [`Registry::reconfigure`].
    pub fn set_config(&self, name: &str, config: Config) -> Result<(), RegistryError> {
        check_name(name)?;
        if self.segment.is_some() && config != *self.defaults {
            return Err(segment_config_refusal());
        }
        self.configs.pin().insert(Arc::from(name), Arc::new(config));
        Ok(())
    }

    /// Sets the config of `name` and puts it in force on the breaker of
    /// that name, if one exists, without losing its state
    /// ([`Breaker::reconfigure`]). A config the breaker refuses (a change
    /// of its latency histogram) is an error that changes nothing. A
    /// breaker created while this runs gets the new config too.
    pub fn reconfigure(&self, name: &str, config: Config) -> Result<(), RegistryError> {
        check_name(name)?;
        if self.segment.is_some() {
            // As the breakers themselves refuse (`Breaker::check_reconfigure`).
            return Err(RegistryError::InvalidConfig(host_shared_refusal()));
        }
        let config = Arc::new(config);
        let _serial = self
            .reconfiguring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = self.get(name) {
            // Checked first, so that a refused config changes nothing.
            b.check_reconfigure(&config)
                .map_err(RegistryError::InvalidConfig)?;
        }
        self.configs.pin().insert(Arc::from(name), config.clone());
        // SeqCst: a creator publishes its breaker, fences, then reads the
        // config; this writes the config, fences, then looks the breaker
        // up: one of the two sees the other (see `catch_up`).
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if let Some(b) = self.get(name) {
            b.reconfigure_shared(config)
                .map_err(RegistryError::InvalidConfig)?;
        }
        Ok(())
    }

    /// A breaker just published under `name` from config `used`: if a
    /// `reconfigure` set another config meanwhile (and may have missed the
    /// breaker), puts the current one in force.
    fn catch_up(&self, name: &str, breaker: &Breaker, used: &Arc<Config>) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let current = self.configs.pin().get(name).cloned();
        if current.as_ref().map_or(true, |c| Arc::ptr_eq(c, used)) {
            return;
        }
        let _serial = self
            .reconfiguring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = self.configs.pin().get(name).cloned() {
            // A refusal (a histogram change) leaves the breaker as created.
            let _ = breaker.reconfigure_shared(c);
        }
    }

    /// Creates the group `group` with `limit`, or changes the limit of the
    /// existing one (members keep their places; later trips use the new
    /// limit). Returns the group. See [`crate::group`].
    pub fn set_group(&self, group: &str, limit: GroupLimit) -> Result<Arc<Group>, RegistryError> {
        check_name(group)?;
        let limit = limit.validate().map_err(RegistryError::InvalidGroupLimit)?;
        let map = self.groups.pin();
        let g = map.get_or_insert_with(Arc::from(group), || {
            Arc::new(Group::new(Arc::from(group), limit))
        });
        g.set_limit(limit);
        Ok(g.clone())
    }

    /// Puts the breaker `name` in the group `group` (set before with
    /// [`Registry::set_group`]) when `name` is next created; a breaker that
    /// already exists stays where it is until removed, as with configs.
    pub fn join_group(&self, name: &str, group: &str) -> Result<(), RegistryError> {
        check_name(name)?;
        check_name(group)?;
        let g = self
            .groups
            .pin()
            .get(group)
            .cloned()
            .ok_or(RegistryError::UnknownGroup)?;
        self.memberships.pin().insert(Arc::from(name), g);
        Ok(())
    }

    /// The group named `group`, if set.
    pub fn group(&self, group: &str) -> Option<Arc<Group>> {
        self.groups.pin().get(group).cloned()
    }

    /// Every group's numbers, sorted by group name.
    pub fn groups(&self) -> Vec<GroupStats> {
        let mut v: Vec<GroupStats> = self.groups.pin().values().map(|g| g.stats()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The breaker named `name`, if it exists. Lock-free.
    pub fn get(&self, name: &str) -> Option<Arc<Breaker>> {
        let map = self.breakers.pin();
        loop {
            match self.hand_out(map.get(name)?) {
                Ok(b) => return Some(b),
                Err(evicted) => self.unlink(name, evicted),
            }
        }
    }

    /// A reference to the slot's breaker for a lookup; with eviction on,
    /// through the handshake of invariant 10.
    #[inline]
    fn hand_out(&self, slot: &Slot) -> Result<Arc<Breaker>, usize> {
        if self.evict_after.is_none() {
            // No sweep ever evicts: nothing to shake hands with.
            Ok(slot.clone_breaker())
        } else {
            slot.hand_out()
        }
    }

    /// Removes the entry `name` if it still holds the evicted breaker at
    /// `address` (a lookup that met an eviction finishes it; invariant 10).
    #[cold]
    fn unlink(&self, name: &str, address: usize) {
        let map = self.breakers.pin();
        if let Ok(Some(_)) = map.remove_if(name, |_, slot| slot.address() == address) {
            // Invariant 1 (of this module).
            self.len.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The breaker named `name`, created from its config (or the defaults)
    /// if missing. Lock-free when it exists.
    pub fn get_or_create(&self, name: &str) -> Result<Arc<Breaker>, RegistryError> {
        if let Some(b) = self.get(name) {
            return Ok(b);
        }
        check_name(name)?;
        let key: Arc<str> = Arc::from(name);
        loop {
            // Invariant 1: reserve a place first.
            if self.len.fetch_add(1, Ordering::AcqRel) >= self.max {
                self.len.fetch_sub(1, Ordering::AcqRel);
                return Err(RegistryError::LimitReached { max: self.max });
            }
            let config = self
                .configs
                .pin()
                .get(name)
                .cloned()
                .unwrap_or_else(|| self.defaults.clone());
            let mut breaker = match self.candidate(&key, &config) {
                Ok(b) => b,
                Err(e) => {
                    self.len.fetch_sub(1, Ordering::AcqRel);
                    return Err(e);
                }
            };
            if let Some(g) = self.memberships.pin().get(name) {
                breaker.set_group(g.clone());
            }
            let breaker = Arc::new(breaker);
            let map = self.breakers.pin();
            // The reference returned is taken before the slot is published,
            // so any sweep that finds the slot counts it (invariant 10).
            match map.try_insert(key.clone(), Slot::new(breaker.clone())) {
                Ok(_) => {
                    // Only the breaker published under the name counts as
                    // a member (a losing candidate never does).
                    breaker.join_group();
                    self.catch_up(name, &breaker, &config);
                    return Ok(breaker);
                }
                Err(lost) => {
                    // Invariant 2: someone else created it first.
                    self.len.fetch_sub(1, Ordering::AcqRel);
                    match self.hand_out(lost.current) {
                        Ok(b) => return Ok(b),
                        // Evicted meanwhile: finish that and try again.
                        Err(evicted) => self.unlink(name, evicted),
                    }
                }
            }
        }
    }

    /// Removes `name`; false when absent. Holders of the breaker keep a
    /// working breaker that the registry no longer lists.
    pub fn remove(&self, name: &str) -> bool {
        match self.breakers.pin().remove(name) {
            Some(slot) => {
                self.len.fetch_sub(1, Ordering::AcqRel);
                // An evicted entry that no one had unlinked yet was absent.
                slot.word.load(Ordering::Relaxed) & EVICTED == 0
            }
            None => false,
        }
    }

    /// Breakers registered now.
    pub fn len(&self) -> usize {
        self.breakers.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hard cap.
    pub fn max_breakers(&self) -> usize {
        self.max
    }

    /// Calls `f` for every breaker, in no particular order. Breakers added or
    /// removed meanwhile may or may not be visited. Each breaker is handed
    /// out as by [`Registry::get`] (invariant 10), so `f` may keep a clone.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<str>, &Arc<Breaker>)) {
        for (name, slot) in self.breakers.pin().iter() {
            if self.evict_after.is_none() {
                // Nothing is evicted: lend the slot's own reference rather
                // than touch the breaker's count (its cache line is the
                // state word's).
                slot.lend(|breaker| f(name, breaker));
            } else if let Ok(breaker) = slot.hand_out() {
                f(name, &breaker);
            }
        }
    }

    /// Every breaker, sorted by name (for stable output).
    pub fn sorted(&self) -> Vec<(Arc<str>, Arc<Breaker>)> {
        let mut v = Vec::with_capacity(self.len());
        self.for_each(|n, b| v.push((n.clone(), b.clone())));
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Registers a listener for transitions of every breaker here.
    pub fn add_listener(&self, listener: Arc<dyn Listener>) -> ListenerId {
        self.listeners.add(listener)
    }

    /// Removes a registry listener.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.listeners.remove(id)
    }

    /// Creates a bounded event queue fed by every breaker here.
    pub fn event_queue(&self, capacity: usize) -> Result<Arc<EventQueue>, RegistryError> {
        let q = Arc::new(EventQueue::new(capacity).map_err(RegistryError::InvalidConfig)?);
        self.add_listener(q.clone());
        Ok(q)
    }

    /// One idle-eviction sweep (invariants 4 and 5); returns how many
    /// breakers it evicted. Does nothing unless `evict_after_idle_sweeps` is
    /// set. Sweeps are serialised by a mutex that only sweeps take: the call
    /// path and lookups never touch it.
    pub fn sweep_idle(&self) -> usize {
        let Some(limit) = self.evict_after else {
            return 0;
        };
        let mut log = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let map = self.breakers.pin();
        let mut seen = IdleLog::with_capacity(log.len());
        let mut doomed = Vec::new();
        for (name, slot) in map.iter() {
            // Invariant 10: clear the mark before reading the count; every
            // hand-out before this RMW is in the counts read below.
            let was = slot.word.fetch_and(!HANDED_OUT, Ordering::AcqRel);
            if was & EVICTED != 0 {
                continue;
            }
            let b = slot.breaker();
            let recorded = b.metrics().recorded();
            let (before, sweeps) = log.get(name).copied().unwrap_or((u64::MAX, 0));
            let idle = recorded == before && b.state() == State::Closed && slot.strong_count() == 1;
            let sweeps = if idle { sweeps + 1 } else { 0 };
            if sweeps >= limit {
                doomed.push((name, slot));
            } else {
                seen.insert(name.clone(), (recorded, sweeps));
            }
        }
        *log = seen;
        let mut evicted = 0;
        for (name, slot) in doomed {
            // Invariant 10: the count again (a holder may have cloned from a
            // holder since the scan), then the eviction itself, which fails
            // if any lookup handed the breaker out since this sweep cleared
            // the mark.
            let address = slot.address();
            if slot.strong_count() == 1
                && slot
                    .word
                    .compare_exchange(
                        address,
                        address | EVICTED,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                evicted += 1;
                self.unlink(name, address);
            }
        }
        evicted
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use crate::{ManualClock, Outcome};
    use std::time::Duration;

    fn registry(max: usize) -> Registry {
        Registry::with_clock(
            RegistryOptions {
                max_breakers: max,
                evict_after_idle_sweeps: Some(2),
                ..RegistryOptions::default()
            },
            Arc::new(ManualClock::new(0)),
        )
    }

    #[test]
    fn one_breaker_per_name_and_per_name_configs() {
        let r = registry(10);
        let strict = Config::builder()
            .consecutive_failures(Some(1))
            .build()
            .unwrap();
        r.set_config("db", strict).unwrap();
        let a = r.get_or_create("db").unwrap();
        let b = r.get_or_create("db").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.config().consecutive_failures(), Some(1));
        assert_eq!(
            r.get_or_create("cache")
                .unwrap()
                .config()
                .consecutive_failures(),
            Some(5)
        );
        assert_eq!(&**a.name(), "db");
        assert_eq!(r.len(), 2);
        let names: Vec<_> = r.sorted().into_iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names, ["cache", "db"]);
    }

    #[test]
    fn bad_names_and_the_cap_are_errors_that_change_nothing() {
        let r = registry(2);
        assert_eq!(r.get_or_create("").unwrap_err(), RegistryError::EmptyName);
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            r.get_or_create(&long),
            Err(RegistryError::NameTooLong { .. })
        ));
        r.get_or_create("a").unwrap();
        r.get_or_create("b").unwrap();
        let e = r.get_or_create("c").unwrap_err();
        assert_eq!(e, RegistryError::LimitReached { max: 2 });
        assert!(e.to_string().contains("2 breakers"));
        assert_eq!(r.len(), 2);
        assert!(r.remove("a"));
        assert!(!r.remove("a"));
        r.get_or_create("c").unwrap();
        assert!(r.get("a").is_none());
    }

    #[test]
    fn concurrent_creation_respects_cap_and_uniqueness() {
        let r = Arc::new(registry(50));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut made = 0;
                    for i in 0..100 {
                        // Threads overlap on half the names.
                        let name = format!("n{}", (i + t * 50) % 200);
                        if r.get_or_create(&name).is_ok() {
                            made += 1;
                        }
                    }
                    made
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(r.len(), 50);
        assert_eq!(r.len.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn registry_listeners_and_queue_see_every_breaker() {
        let r = registry(10);
        let q = r.event_queue(16).unwrap();
        let cfg = Config::builder()
            .consecutive_failures(Some(1))
            .build()
            .unwrap();
        r.set_config("x", cfg).unwrap();
        let b = r.get_or_create("x").unwrap();
        let p = b.acquire().unwrap();
        b.record(p, Outcome::Failure, Duration::ZERO);
        let e = q.poll().expect("an event");
        assert_eq!(&*e.breaker, "x");
        assert_eq!(e.transition.to, State::Open);
        assert!(q.poll().is_none());
    }

    #[test]
    fn idle_breakers_are_evicted_only_when_unreferenced_and_quiet() {
        let r = registry(10);
        let held = r.get_or_create("held").unwrap();
        r.get_or_create("quiet").unwrap();
        {
            let busy = r.get_or_create("busy").unwrap();
            let p = busy.acquire().unwrap();
            busy.record(p, Outcome::Success, Duration::ZERO);
        }
        assert_eq!(r.sweep_idle(), 0); // first sweep: everyone's baseline
        assert_eq!(r.sweep_idle(), 0); // "quiet" and "busy": 1 idle sweep
        let busy = r.get("busy").unwrap();
        let p = busy.acquire().unwrap();
        busy.record(p, Outcome::Success, Duration::ZERO);
        drop(busy);
        assert_eq!(r.sweep_idle(), 1); // "quiet" reached 2 idle sweeps
        assert!(r.get("quiet").is_none());
        assert!(r.get("held").is_some());
        assert!(r.get("busy").is_some());
        drop(held);
        assert_eq!(r.len(), 2);
    }
}
