//! The breaker: `acquire`, `record`, overrides (B1-B6). See the crate docs for
//! the invariants cited here as "invariant N".

use std::sync::Arc;
use std::time::Duration;

use crate::call::{Outcome, Permit, Recorded, RejectReason, Rejected};
use crate::clock::{duration_to_nanos, Clock, MonotonicClock, Nanos};
use crate::config::{Config, ConfigError};
use crate::events::{Listener, ListenerId, ListenerSet};
use crate::ewma::Ewma;
use crate::group::{holds_place, Group, Membership};
use crate::histogram::{HistogramSnapshot, LatencyHistogram};
use crate::loom_shim::{spin_hint, AtomicU32, AtomicU64, Ordering::Relaxed};
use crate::metrics::{self, CallCounters, MetricsSnapshot, TransitionStats};
use crate::place::{Inline, Mapped, Place, Words};
use crate::ramp;
use crate::reconfig::{ConfigCell, WindowAt};
use crate::rng;
use crate::snapshot::{self, PhaseCode, Record, SnapshotError, WindowRecord};
use crate::state::{Override, Phase, ProbeLedger, Snapshot, Stamp, StampCell, State, StateCell};
use crate::striped::{self, Claim, Side};
use crate::transition::{Reason, Transition};
use crate::window::{Recorder, Sample, Window, WindowCounts};

/// Read-mostly words: written only by transition winners (and lease grants),
/// read by every acquire. `repr(C)` keeps the state word first; it is the
/// one word the closed fast path
/// loads (invariant 2).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Control {
    pub(crate) word: StateCell,
    /// The deadline of the current generation (invariant 4): the open
    /// deadline in OPEN, the probe lease in HALF_OPEN, the expiry under an
    /// override, unused in CLOSED. Each generation has exactly one of these,
    /// so one stamped word serves all three.
    pub(crate) deadline: StampCell,
}

/// What breakers of one registry share: the clock and the registry's
/// listeners.
#[derive(Debug)]
pub(crate) struct Env {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) parent: Option<Arc<ListenerSet>>,
    /// Mixed into jitter so breakers and processes draw apart.
    pub(crate) salt: u64,
    /// What deadline stamps are relative to (`state::Stamp`): the clock's
    /// reading when this environment was created, less a whole number of
    /// microseconds (at most [`STAMP_SLACK`]), so that a clock set back a
    /// little before it still gets exact deadlines and a breaker behaves as
    /// one whose clock started at zero.
    pub(crate) stamp_base: Nanos,
}

/// Why a host-shared breaker (or a registry on a segment) refuses a config
/// other than its segment's.
pub(crate) fn host_shared_refusal() -> ConfigError {
    ConfigError {
        field: "config",
        reason: "a host-shared breaker runs on its segment's config (hashed into the \
                 segment's header): open a segment with the new config instead"
            .into(),
    }
}

/// How far before the first reading a stamp base starts (2^45 us, 1.1
/// years): a clock set back further than that before a breaker's creation
/// has its deadlines delayed to the base (invariant 7); one that runs
/// longer than 2^47 us - this (3.3 years) past it gets deadlines rounded up
/// to the millisecond. Either way, any `u64` reading works.
pub(crate) const STAMP_SLACK: Nanos = (1 << 45) * 1000;

impl Env {
    /// The environment of a host-shared breaker: stamps relative to the
    /// segment's base, which every process of the host shares.
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) fn on_base(
        clock: Arc<dyn Clock>,
        stamp_base: Nanos,
        parent: Option<Arc<ListenerSet>>,
    ) -> Arc<Env> {
        Arc::new(Env {
            clock,
            parent,
            salt: rng::fresh_seed(),
            stamp_base,
        })
    }

    pub(crate) fn new(clock: Arc<dyn Clock>, parent: Option<Arc<ListenerSet>>) -> Arc<Env> {
        let origin = clock.now();
        let stamp_base = origin - origin.min(STAMP_SLACK) / 1000 * 1000;
        Arc::new(Env {
            clock,
            parent,
            salt: rng::fresh_seed(),
            stamp_base,
        })
    }
}

/// Written on the call path by recording threads: the consecutive-failure
/// counter, the EWMA word and the call counters, together (the same thread
/// writes them in one record) and apart from `Control`.
#[derive(Debug)]
struct Hot {
    stats: Stats,
    counters: CallCounters,
}

/// The decision words a record writes besides the window: the
/// consecutive-failure counter and the EWMA word. `repr(C)` because a
/// host-shared slot holds them in this order (`crate::shared::layout`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Stats {
    pub(crate) consecutive_failures: AtomicU64,
    pub(crate) ewma: Ewma,
}

/// A lock-free circuit breaker. Share it by reference or `Arc`; every method
/// takes `&self` and is safe to call from any number of threads.
///
/// Layout (`repr(C)`, checked at compile time below): the state word first,
/// then the statistics only transition winners write, then the words
/// recording threads write (`hot`), then read-mostly fields. The transition
/// statistics keep `hot` more than 128 bytes past the state word, and the
/// read-mostly tail (plus the allocator's and `Arc`'s headers) keeps it as
/// far from the state word of whatever is allocated next, so the word every
/// acquire reads never shares a cache line or an adjacent-line prefetch pair
/// with words written per call. Field order does this without 128-byte
/// alignment, which would cost a third more memory per breaker (DESIGN.md
/// section 6: 100,000 breakers in under 64 MB).
#[repr(C)]
pub struct Breaker {
    control: Control,
    transitions: TransitionStats,
    hot: Hot,
    /// The config, swapped whole by a reconfiguration (invariant 18).
    config: ConfigCell,
    env: Arc<Env>,
    name: Arc<str>,
    listeners: ListenerSet,
    window: Option<Window>,
    /// The latency histogram, if kept, and the counter stripes, once
    /// contended (invariant 12), behind one pointer.
    side: Side,
    /// Probe tickets of the current half-open generation (invariant 11),
    /// or the tickets of a ramp-up (invariant 14). Written only by probes
    /// and during a ramp, so it sits in the read-mostly tail.
    probes: ProbeLedger,
}

const _: () = {
    use std::mem::{offset_of, size_of};
    // The state word is the first field of `Control`. Before `hot`: more
    // than 128 bytes. After it: the tail, plus at least 16 bytes of `Arc`
    // header and 8 of allocator header before the next object.
    assert!(offset_of!(Breaker, hot) >= offset_of!(Breaker, control) + 8 + 128);
    assert!(size_of::<Breaker>() - offset_of!(Breaker, hot) - size_of::<Hot>() + 24 >= 128);
};

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("state", &self.words().control.word.load())
            .field("host_shared", &self.side.mapped().is_some())
            .field("config", self.config())
            .finish_non_exhaustive()
    }
}

impl Recorder for Breaker {
    #[inline]
    fn coarse_now(&self) -> Nanos {
        self.env.clock.coarse_now()
    }

    /// Whether this thread finds the breaker contended: the owner word
    /// (invariant 12) names another thread and, claimed for this one, says
    /// contended. A count window then records through its lanes
    /// (invariant 16).
    #[inline]
    fn contended(&self) -> bool {
        let tag = striped::tag();
        !self.transitions.owner.is(tag) && self.claim_contended(tag)
    }
}

impl Breaker {
    /// A breaker on the process's monotonic clock.
    pub fn new(config: Config) -> Breaker {
        Breaker::with_clock(config, Arc::new(MonotonicClock::new()))
    }

    /// A breaker reading time from `clock` (a `ManualClock` in tests).
    pub fn with_clock(config: Config, clock: Arc<dyn Clock>) -> Breaker {
        Breaker::build(config, clock, None)
    }

    /// An unnamed breaker that calls `listener` on every transition (B7).
    pub fn build(
        config: Config,
        clock: Arc<dyn Clock>,
        listener: Option<Arc<dyn Listener>>,
    ) -> Breaker {
        let b = Breaker::named(Arc::from(""), config, clock);
        if let Some(l) = listener {
            b.add_listener(l);
        }
        b
    }

    /// A breaker with a name (used in events and metrics) and no listener.
    pub fn named(name: Arc<str>, config: Config, clock: Arc<dyn Clock>) -> Breaker {
        Breaker::shared(name, Arc::new(config), Env::new(clock, None))
    }

    /// As [`Breaker::named`], sharing one config among many breakers and
    /// forwarding events to a parent listener set (a registry's).
    pub(crate) fn shared(name: Arc<str>, config: Arc<Config>, env: Arc<Env>) -> Breaker {
        let now = env.clock.now();
        // A copy of a reconfigured breaker's config may say its window is
        // in a side box; a new breaker's is inline (invariant 18).
        let config = if config.window_at.is_side() {
            Arc::new(Config {
                window_at: WindowAt::INLINE,
                ..(*config).clone()
            })
        } else {
            config
        };
        Breaker {
            control: Control {
                word: StateCell::new(),
                deadline: StampCell::new(),
            },
            hot: Hot {
                stats: Stats {
                    consecutive_failures: AtomicU64::new(0),
                    ewma: Ewma::new(),
                },
                counters: CallCounters::new(),
            },
            transitions: TransitionStats::new(now),
            window: config.uses_window().then(|| Window::new(config.window)),
            side: Side::new(
                config
                    .latency_histogram
                    .map(|period| LatencyHistogram::new(period, now)),
            ),
            config: ConfigCell::new(config),
            env,
            name,
            listeners: ListenerSet::default(),
            probes: ProbeLedger::new(),
        }
    }

    /// The decision words of this breaker: its own fields, or a host-shared
    /// slot's. Off the fast paths only (they read the inline word, which
    /// sends a host-shared breaker here).
    #[inline]
    fn words(&self) -> Words<'_> {
        match self.side.mapped() {
            Some(m) => m.words(),
            None => self.inline_words(),
        }
    }

    /// The slot of a host-shared breaker whose inline word is `s`; `None`
    /// (after one test of `s`) for an in-process breaker.
    #[inline(always)]
    fn host_shared(&self, s: Snapshot) -> Option<&Mapped> {
        if s.is_host_shared() {
            self.side.mapped()
        } else {
            None
        }
    }

    /// The words in the breaker itself.
    #[inline(always)]
    fn inline_words(&self) -> Words<'_> {
        Words {
            control: &self.control,
            probes: &self.probes,
            stats: &self.hot.stats,
        }
    }

    /// Moves this breaker's decision words to a host-shared slot
    /// (`crate::shared`): the inline state word becomes one that is never
    /// on the fast path, so every call goes to the slow paths, which read
    /// the slot; the call counters go to the process's stripe (the owner
    /// word is set striped, invariant 12). `&mut self`: not shared yet.
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) fn set_mapped(&mut self, mapped: Mapped) {
        self.control.word.set_host_shared();
        self.transitions.owner.set_striped();
        let config = self.config();
        self.window = config
            .uses_window()
            .then(|| Window::on(config.window, mapped.window_words()));
        self.side.set_mapped(mapped);
    }

    /// Host-shared: when the slot's word `s` carries a generation this
    /// process has not seen, a transition won by another process: tell the
    /// listeners once, with reason `Remote` (`crate::place`).
    #[inline]
    fn notice_remote(&self, m: &Mapped, s: Snapshot) {
        if let Some(before) = m.newer(s) {
            self.emit_remote(before, s);
        }
    }

    #[cold]
    #[inline(never)]
    fn emit_remote(&self, before: Snapshot, s: Snapshot) {
        let parent = self.env.parent.as_deref().filter(|p| !p.is_empty());
        if self.listeners.is_empty() && parent.is_none() {
            return;
        }
        let t = Transition {
            from: before.state(),
            to: s.state(),
            generation: s.generation(),
            reason: Reason::Remote,
            at: self.env.clock.now(),
            open_for: 0,
        };
        self.listeners.emit(&self.name, &t);
        if let Some(p) = parent {
            p.emit(&self.name, &t);
        }
    }

    /// Puts a breaker no one has seen yet under `group`'s guard; it counts
    /// as a member once [`Breaker::join_group`] is called.
    pub(crate) fn set_group(&mut self, group: Arc<Group>) {
        self.side.set_group(Membership {
            group,
            joined: AtomicU32::new(0),
        });
    }

    /// Counts this breaker as a member of its group (the registry calls it
    /// once the breaker is published under its name).
    pub(crate) fn join_group(&self) {
        if let Some(m) = self.side.group() {
            // Relaxed: read back only by `drop`, which `&mut self` orders.
            if m.joined.swap(1, Relaxed) == 0 {
                m.group.join();
            }
        }
    }

    /// The group whose guard this breaker is under, if any.
    pub fn group(&self) -> Option<&Arc<Group>> {
        self.side.group().map(|m| &m.group)
    }

    /// The breaker's name (empty when unnamed).
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Registers a listener for every later transition (B7). Lock-free for
    /// transitions in flight: they see the list before or after the change.
    pub fn add_listener(&self, listener: Arc<dyn Listener>) -> ListenerId {
        self.listeners.add(listener)
    }

    /// Removes a listener; false when it was not registered here.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.listeners.remove(id)
    }

    /// The configuration in force: the one the breaker was built with, or
    /// the last one [`Breaker::reconfigure`] published.
    pub fn config(&self) -> &Config {
        self.config.load()
    }

    /// The clock this breaker reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.env.clock
    }

    /// Asks to make a call. In CLOSED (no override) this is one atomic load
    /// and a branch, with no clock read (invariant 2).
    #[inline]
    pub fn acquire(&self) -> Result<Permit, Rejected> {
        // The inline word: a host-shared breaker keeps one that is never on
        // the fast path, so it takes `acquire_slow`, which reads its slot.
        let s = self.control.word.load();
        if s.on_fast_path() {
            return Ok(Permit::new(s.generation()));
        }
        self.acquire_slow(s)
    }

    /// Reports the outcome of an admitted call and how long it took.
    #[inline]
    pub fn record(&self, permit: Permit, outcome: Outcome, duration: Duration) -> Recorded {
        self.record_inner(permit, outcome, duration_to_nanos(duration), None)
    }

    /// [`Breaker::record`] of a success, of any duration, when it takes the
    /// closed path's short form (CLOSED in `permit`'s generation, no
    /// override, not a probe; the consecutive-failure policy alone, with no
    /// window, EWMA or latency histogram; this thread owns the inline
    /// counter cell). Then it is recorded, exactly as `record` would, and
    /// the answer is true (`record` would answer [`Recorded::Counted`]).
    /// Otherwise nothing is done and the answer is false: call `record`.
    ///
    /// For hosts that call across an FFI boundary (the C ABI): all of it
    /// inline, no call and nothing that can panic, so their entry point can
    /// be a leaf that hands every other case to `record`.
    #[inline(always)]
    pub fn record_success_short(&self, permit: Permit) -> bool {
        let s = self.control.word.load();
        Self::on_closed_path(s, permit)
            && self.record_closed_short(
                self.config.load(),
                &self.hot.stats,
                Outcome::Success,
                striped::leaf_tag,
            )
    }

    /// [`Breaker::record`] with the duration in nanoseconds, for hosts that
    /// measure in integers (the C ABI): the same as
    /// `record(permit, outcome, Duration::from_nanos(nanos))`, without the
    /// round trip through `Duration`.
    #[inline]
    pub fn record_nanos(&self, permit: Permit, outcome: Outcome, nanos: u64) -> Recorded {
        self.record_inner(permit, outcome, nanos, None)
    }

    /// As [`Breaker::record`], with the dependency's own open duration (a
    /// `Retry-After`): if this outcome opens the breaker, it stays open for
    /// `retry_after` (clamped to `max_open_duration`) instead of the computed
    /// backoff. It never extends an open deadline already set (B4).
    pub fn record_with_retry_after(
        &self,
        permit: Permit,
        outcome: Outcome,
        duration: Duration,
        retry_after: Duration,
    ) -> Recorded {
        self.record_inner(
            permit,
            outcome,
            duration_to_nanos(duration),
            Some(retry_after),
        )
    }

    /// The current state. Applies an expired override first, so a breaker
    /// forced "for 10 minutes" reads CLOSED after them even without traffic.
    pub fn state(&self) -> State {
        let w = self.words();
        self.expire_override(w, w.control(self).word.load()).state()
    }

    /// Address of the state word, for hosts that inline the closed fast path
    /// on their side of an FFI boundary (see [`crate::fast_path`]). Valid
    /// as long as the breaker lives; read it only with atomic loads.
    #[cfg(not(circuit_loom))]
    #[inline]
    pub fn state_word_ptr(&self) -> *const u64 {
        self.words().control.word.as_ptr()
    }

    /// Address of the word holding the current generation's deadline (the
    /// open deadline in OPEN), for hosts that repeat a rejection on their
    /// side while neither this word nor the state word has changed (see
    /// [`crate::fast_path`]). Its value is opaque: compare it, never decode
    /// it. Valid as long as the breaker lives; read it only with atomic
    /// loads.
    #[cfg(not(circuit_loom))]
    pub fn deadline_word_ptr(&self) -> *const u64 {
        self.control.deadline.as_ptr()
    }

    /// Whether the breaker reads the system's monotonic clock
    /// ([`Clock::is_system_monotonic`]): only then may a host compare its
    /// deadlines with its own clock.
    pub fn on_system_clock(&self) -> bool {
        self.env.clock.is_system_monotonic()
    }

    /// Address of the counter that [`Breaker::metrics`] and the Prometheus
    /// text read rejections in OPEN from (the breaker's inline cell), for a
    /// host that rejects a call on its side instead of calling
    /// [`Breaker::acquire`]: it adds 1 atomically (`Relaxed`) per call so
    /// rejected, and every reader counts it at once. Any thread may add to
    /// any cell (invariant 12). `None` when the config in force keeps no
    /// metrics; a host that took the address before a reconfiguration
    /// turned metrics off keeps counting into the cell (harmless: the
    /// library stops adding to it), and one that got `None` before they
    /// were turned on counts nothing until it asks again.
    /// Valid as long as the breaker lives; never write it otherwise.
    #[cfg(not(circuit_loom))]
    pub fn open_rejection_cell_ptr(&self) -> Option<*mut u64> {
        self.config()
            .metrics
            .then(|| self.hot.counters.rejected_cell(RejectReason::Open).as_ptr())
    }

    /// The current generation (B6).
    pub fn generation(&self) -> u32 {
        self.words().control.word.load().generation()
    }

    /// Sets an operator override, optionally expiring after `duration`.
    /// Outstanding permits become stale. Returns the state before.
    pub fn force(&self, mode: Override, duration: Option<Duration>) -> State {
        let requested = duration.map(|d| d.min(crate::config::MAX_DURATION));
        let w = self.words();
        let mut s = w.control(self).word.load();
        loop {
            match self.transition(w, s, s.to_override(mode), Reason::OverrideSet, requested) {
                Ok(_) => return s.state(),
                Err(cur) => s = cur,
            }
        }
    }

    /// Clears an override, returning to a fresh CLOSED (invariant 5). Returns
    /// false when no override was set.
    pub fn clear_override(&self) -> bool {
        let w = self.words();
        let mut s = w.control(self).word.load();
        while s.override_mode().is_some() {
            match self.transition(w, s, s.to_closed(0), Reason::OverrideCleared, None) {
                Ok(_) => return true,
                Err(cur) => s = cur,
            }
        }
        false
    }

    /// Returns to CLOSED with an empty window, clearing any override (B1).
    pub fn reset(&self) {
        let w = self.words();
        let mut s = w.control(self).word.load();
        loop {
            match self.transition(w, s, s.to_closed(0), Reason::Reset, None) {
                Ok(_) => return,
                Err(cur) => s = cur,
            }
        }
    }

    /// Applies a state decided elsewhere (fleet sync): OPEN for `open_for`,
    /// HALF_OPEN, or CLOSED, or an override. Returns false when the breaker
    /// is already there. Never shortens the local view of an outage into
    /// CLOSED while an override is set locally.
    pub fn apply_remote(&self, to: State, open_for: Option<Duration>) -> bool {
        let w = self.words();
        let mut s = w.control(self).word.load();
        loop {
            if s.state() == to {
                return false;
            }
            let next = match to {
                State::Closed => s.to_closed(0),
                State::Open => s.to_open(s.streak()),
                State::HalfOpen => s.to_half_open(0, 0),
                State::ForcedOpen => s.to_override(Override::ForcedOpen),
                State::ForcedClosed => s.to_override(Override::ForcedClosed),
                State::Disabled => s.to_override(Override::Disabled),
                State::MetricsOnly => s.to_override(Override::MetricsOnly),
            };
            match self.transition(w, s, next, Reason::Remote, open_for) {
                // A group guard may refuse the trip (invariant 15).
                Ok(n) => return n.state() == to,
                Err(cur) => s = cur,
            }
        }
    }

    /// The open deadline (clock nanoseconds) of the current OPEN episode, or
    /// `None` when not OPEN or not yet written.
    pub fn open_deadline(&self) -> Option<Nanos> {
        let w = self.words();
        let s = w.control(self).word.load();
        let stamp = w.control(self).deadline.load();
        (s.state() == State::Open && stamp.belongs_to(s.generation()))
            .then(|| self.deadline_of(stamp))
    }

    /// The expiry (clock nanoseconds) of the current override, or `None`
    /// when no override is set, it has no expiry, or its stamp is not yet
    /// written. Fleet sync reads it to publish a local override with its
    /// remaining duration.
    pub fn override_deadline(&self) -> Option<Nanos> {
        let w = self.words();
        let s = w.control(self).word.load();
        let stamp = w.control(self).deadline.load();
        (s.override_mode().is_some() && stamp.belongs_to(s.generation()) && !stamp.is_never())
            .then(|| self.deadline_of(stamp))
    }

    /// Fleet sync: while OPEN, brings the open deadline forward to
    /// `now + remaining` (clamped to `max_open_duration`) when that is
    /// earlier than the current one, so every instance follows the fleet's
    /// first failure (B4); never moves it later. The new deadline is set by
    /// an OPEN -> OPEN transition with reason `Remote` (a new generation, so
    /// it is stamped like any other, invariant 4). Returns true when the
    /// deadline moved.
    pub fn shorten_open(&self, remaining: Duration) -> bool {
        let w = self.words();
        let s = w.control(self).word.load();
        let stamp = w.control(self).deadline.load();
        if s.state() != State::Open || !stamp.belongs_to(s.generation()) {
            return false;
        }
        let remaining = remaining.min(self.config().max_open_duration);
        let target = self
            .env
            .clock
            .now()
            .saturating_add(duration_to_nanos(remaining));
        if target >= self.deadline_of(stamp) {
            return false;
        }
        self.transition(w, s, s.to_open(s.streak()), Reason::Remote, Some(remaining))
            .is_ok()
    }

    /// A copy of the counters, with the window's current rates.
    pub fn metrics(&self) -> MetricsSnapshot {
        let state = self.state();
        let now = self.env.clock.now();
        let mut m = match self.side.mapped() {
            // Host-shared: every process's stripe of the slot.
            Some(mapped) => metrics::snapshot(mapped.stripes(), &self.transitions, state, now),
            None => {
                let stripes = self.side.stripes().unwrap_or_default();
                let cells = std::iter::once(&self.hot.counters).chain(stripes.iter().map(|c| &**c));
                metrics::snapshot(cells, &self.transitions, state, now)
            }
        };
        m.rejected[RejectReason::RampLimited as usize] = self.side.ramp_limited_count();
        if let Some(w) = self.window_of(self.config.load()) {
            let c = w.counts(self.env.clock.coarse_now());
            m.failure_rate = c.failure_rate();
            m.slow_call_rate = c.slow_rate();
            m.window_calls = c.calls;
        } else if self.config().ewma.is_some() {
            let (calls, rate) = self.words().stats.ewma.read();
            m.failure_rate = rate;
            m.window_calls = u64::from(calls);
        }
        m
    }

    /// Latencies of the last one to two histogram periods, when the config
    /// keeps a histogram. Ages out old generations first.
    pub fn latency(&self) -> Option<HistogramSnapshot> {
        let h = self.side.latency()?;
        h.rotate_if_due(self.env.clock.now());
        Some(h.snapshot())
    }

    /// The timeout `policy` recommends from this breaker's latencies (B11);
    /// its base value when the breaker keeps no histogram.
    pub fn recommended_timeout(&self, policy: &crate::adaptive::AdaptiveTimeout) -> Duration {
        match self.latency() {
            Some(snapshot) => policy.recommend(&snapshot),
            None => policy.base(),
        }
    }

    /// Heap and inline bytes this breaker occupies (for the memory budget).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Breaker>()
            + self.window.as_ref().map_or(0, Window::heap_bytes)
            + self.side.reconfig().map_or(0, |r| r.lock().window_bytes())
            + self
                .side
                .latency()
                .map_or(0, |_| LatencyHistogram::memory_bytes())
            + self.side.stripe_bytes()
    }

    // ----- acquire ---------------------------------------------------------

    #[inline(never)]
    fn acquire_slow(&self, s: Snapshot) -> Result<Permit, Rejected> {
        match self.host_shared(s) {
            None => self.acquire_in(Inline, s),
            // Host-shared: `s` is the inline word, which only sends calls
            // here; the slot's word decides, fast path included.
            Some(m) => {
                let s = m.words().control.word.load();
                self.notice_remote(m, s);
                if s.on_fast_path() {
                    return Ok(Permit::new(s.generation()));
                }
                self.acquire_in(m, s)
            }
        }
    }

    #[inline]
    fn acquire_in<'a>(&'a self, w: impl Place<'a>, mut s: Snapshot) -> Result<Permit, Rejected> {
        loop {
            if let Some(mode) = s.override_mode() {
                let e = self.expire_override(w, s);
                if e != s {
                    s = e;
                    continue;
                }
                if mode != Override::ForcedOpen {
                    return Ok(Permit::new(s.generation()));
                }
                let stamp = w.control(self).deadline.load();
                let retry_after = (stamp.belongs_to(s.generation()) && !stamp.is_never())
                    .then(|| remaining(self.deadline_of(stamp), self.env.clock.coarse_now()));
                return Err(self.reject(RejectReason::ForcedOpen, retry_after));
            }
            match s.phase() {
                Phase::Closed if s.ramping() => match self.acquire_ramping(w, s) {
                    Ok(r) => return r,
                    Err(cur) => s = cur,
                },
                Phase::Closed => return Ok(Permit::new(s.generation())),
                Phase::Open => {
                    let stamp = w.control(self).deadline.load();
                    if !stamp.belongs_to(s.generation()) {
                        // The stamp is a later generation's (the word has
                        // moved on: look again) or the winner has not
                        // written its deadline yet (invariant 4).
                        let cur = w.control(self).word.load();
                        if cur != s {
                            s = cur;
                            continue;
                        }
                        self.fill_missing_stamp(w, s, self.config().max_open_duration);
                        continue;
                    }
                    let now = self.env.clock.coarse_now();
                    let deadline = self.deadline_of(stamp);
                    if now < deadline {
                        let left = remaining(deadline, now);
                        return Err(self.reject(RejectReason::Open, Some(left)));
                    }
                    // B5: exactly one thread moves OPEN -> HALF_OPEN and it
                    // takes the first probe slot in the same CAS.
                    let next = s.to_half_open(1, 0);
                    match self.transition(w, s, next, Reason::OpenDeadlinePassed, None) {
                        // Ticket 0: the probe the transition admits itself
                        // (invariant 11).
                        Ok(n) => return Ok(Permit::probe(n.generation(), 0, self.probe_tag())),
                        Err(cur) => s = cur,
                    }
                }
                Phase::HalfOpen => {
                    if s.inflight() + s.success() < self.config().half_open_probes {
                        match w
                            .control(self)
                            .word
                            .compare_exchange(s, s.with_probe_admitted())
                        {
                            Ok(_) => {
                                let generation = s.generation();
                                self.extend_lease(w, generation);
                                let ticket =
                                    w.probes(self).issue(&w.control(self).word, generation);
                                return Ok(Permit::probe(generation, ticket, self.probe_tag()));
                            }
                            Err(cur) => {
                                s = cur;
                                spin_hint();
                                continue;
                            }
                        }
                    }
                    let stamp = w.control(self).deadline.load();
                    if !stamp.belongs_to(s.generation()) {
                        // A later generation's stamp: the word has moved on.
                        let cur = w.control(self).word.load();
                        if cur != s {
                            s = cur;
                            continue;
                        }
                        // Or no lease yet (invariant 4).
                        self.fill_missing_stamp(w, s, self.config().probe_lease);
                        continue;
                    }
                    let now = self.env.clock.coarse_now();
                    if stamp.belongs_to(s.generation()) && now >= self.deadline_of(stamp) {
                        // Every slot is held past its lease: free them all by
                        // moving to a new half-open generation (late probes
                        // become stale), keeping the successes, and take the
                        // first slot ourselves.
                        let next = s.to_half_open(1, s.success());
                        match self.transition(w, s, next, Reason::ProbeLeaseExpired, None) {
                            Ok(n) => return Ok(Permit::probe(n.generation(), 0, self.probe_tag())),
                            Err(cur) => {
                                s = cur;
                                continue;
                            }
                        }
                    }
                    let retry_after = stamp
                        .belongs_to(s.generation())
                        .then(|| remaining(self.deadline_of(stamp), now));
                    return Err(self.reject(RejectReason::HalfOpenFull, retry_after));
                }
            }
        }
    }

    /// The current generation (OPEN or HALF_OPEN) has no stamp: its winner
    /// has not written it yet, or never will (it panicked in a clock read,
    /// or, for a breaker in a shared segment, its process was killed). The
    /// reader stamps `now + bound` itself (`StampCell::fill`: only while
    /// still unstamped), so the episode ends at most `bound` (the max open
    /// duration, or the probe lease) after a reader first saw it, instead
    /// of never; a winner that does stamp replaces this (invariant 4).
    #[cold]
    #[inline(never)]
    fn fill_missing_stamp<'a>(&'a self, w: impl Place<'a>, s: Snapshot, bound: Duration) {
        let generation = s.generation();
        let deadline = self
            .env
            .clock
            .now()
            .saturating_add(duration_to_nanos(bound));
        w.control(self).deadline.fill(
            &w.control(self).word,
            generation,
            self.stamp(generation, deadline),
        );
    }

    /// The tag this breaker's probes carry: a probe reported to another
    /// breaker (whose generation happens to match) is stale.
    fn probe_tag(&self) -> u16 {
        rng::tag16(self.env.salt, self.name.as_bytes())
    }

    fn reject(&self, reason: RejectReason, retry_after: Option<Duration>) -> Rejected {
        if self.config().metrics {
            self.cell().rejected(reason);
        }
        Rejected {
            reason,
            retry_after,
        }
    }

    /// Raises this half-open generation's lease to cover the grant just made.
    fn extend_lease<'a>(&'a self, w: impl Place<'a>, generation: u32) {
        let deadline = self
            .env
            .clock
            .coarse_now()
            .saturating_add(duration_to_nanos(self.config().probe_lease));
        let word = &w.control(self).word;
        w.control(self).deadline.raise(
            word,
            generation,
            self.stamp(generation, deadline),
            self.env.stamp_base,
        );
    }

    /// If `s` has an override whose expiry has passed, transitions to CLOSED
    /// and returns the fresh word; otherwise returns `s`.
    fn expire_override<'a>(&'a self, w: impl Place<'a>, s: Snapshot) -> Snapshot {
        if s.override_mode().is_none() {
            return s;
        }
        let stamp = w.control(self).deadline.load();
        if !stamp.belongs_to(s.generation()) || stamp.is_never() {
            return s;
        }
        if self.env.clock.coarse_now() < self.deadline_of(stamp) {
            return s;
        }
        match self.transition(w, s, s.to_closed(0), Reason::OverrideExpired, None) {
            Ok(n) | Err(n) => n,
        }
    }

    // ----- record ----------------------------------------------------------

    // `record_inner` and `record_closed` are always inlined: every caller
    // gets its own copy with its constants folded (a `record(p,
    // Outcome::Success, Duration::ZERO)` loses the outcome dispatch and the
    // slow check). With a hint only, LLVM outlines them once a crate has
    // several callers (the C ABI's record, its success copy and
    // `circuit_breaker_record_success`), and every caller pays the general
    // path (ci/bench-c.sh counts the instructions).
    #[inline(always)]
    fn record_inner(
        &self,
        permit: Permit,
        outcome: Outcome,
        nanos: u64,
        retry_after: Option<Duration>,
    ) -> Recorded {
        // B12: clamp, so a saturated duration (`Duration::MAX`) stays below
        // `Config::slow_nanos`'s "policy off" value and is never counted as slow.
        let nanos = nanos.min(u64::MAX - 1);
        // The inline word, as in `acquire`: a host-shared breaker's never
        // matches, so it takes `record_slow`, which reads its slot.
        let s = self.control.word.load();
        if Self::on_closed_path(s, permit) {
            return self.record_closed(&self.hot.stats, s, outcome, nanos, retry_after);
        }
        self.record_slow(s, permit, outcome, nanos, retry_after)
    }

    /// Whether a record of `permit` under state word `s` takes the CLOSED
    /// path: the permit's generation, no override, not a probe.
    #[inline(always)]
    fn on_closed_path(s: Snapshot, permit: Permit) -> bool {
        s.generation() == permit.generation && s.on_fast_path() && !permit.is_probe()
    }

    /// `record` off the CLOSED fast path: a stale permit, an override, a
    /// probe. Out of line, so the fast path saves no registers for it.
    #[inline(never)]
    fn record_slow(
        &self,
        s: Snapshot,
        permit: Permit,
        outcome: Outcome,
        nanos: u64,
        retry_after: Option<Duration>,
    ) -> Recorded {
        match self.host_shared(s) {
            None => self.record_in(Inline, s, permit, outcome, nanos, retry_after),
            // Host-shared: as in `acquire_slow`, the slot's word decides.
            Some(m) => {
                let s = m.words().control.word.load();
                self.notice_remote(m, s);
                if Self::on_closed_path(s, permit) {
                    return self.record_closed(m.words().stats, s, outcome, nanos, retry_after);
                }
                self.record_in(m, s, permit, outcome, nanos, retry_after)
            }
        }
    }

    #[inline]
    fn record_in<'a>(
        &'a self,
        w: impl Place<'a>,
        s: Snapshot,
        permit: Permit,
        outcome: Outcome,
        nanos: u64,
        retry_after: Option<Duration>,
    ) -> Recorded {
        if s.generation() != permit.generation {
            return self.stale();
        }
        match s.override_mode() {
            Some(Override::Disabled) => Recorded::NotRecorded,
            Some(Override::ForcedClosed) => {
                self.count_outcome(self.config(), outcome, nanos);
                Recorded::Counted
            }
            Some(Override::MetricsOnly) => {
                self.record_closed(w.stats(self), s, outcome, nanos, retry_after)
            }
            // A permit of a forced-open generation cannot have been issued.
            Some(Override::ForcedOpen) => self.stale(),
            None => match s.phase() {
                Phase::HalfOpen if permit.is_probe() => {
                    self.record_probe(w, s, permit, outcome, nanos, retry_after)
                }
                Phase::Closed if s.ramping() && !permit.is_probe() => {
                    self.record_ramping(w, s, outcome, nanos, retry_after)
                }
                // OPEN issues no permits; a non-probe in HALF_OPEN or a probe
                // in CLOSED names a generation it was not issued under.
                _ => self.stale(),
            },
        }
    }

    /// The counter cell this thread adds to: the inline one while this
    /// thread owns it, else the one `Owner::claim` picks (invariant 12).
    #[inline]
    fn cell(&self) -> &CallCounters {
        let tag = striped::tag();
        if self.transitions.owner.is(tag) {
            &self.hot.counters
        } else {
            self.claim_cell(tag)
        }
    }

    #[cold]
    #[inline(never)]
    fn claim_contended(&self, tag: u32) -> bool {
        self.transitions.owner.claim(tag) == Claim::Striped
    }

    #[cold]
    #[inline(never)]
    fn claim_cell(&self, tag: u32) -> &CallCounters {
        match self.transitions.owner.claim(tag) {
            Claim::Inline => &self.hot.counters,
            Claim::Striped => self.side.stripe(),
        }
    }

    fn stale(&self) -> Recorded {
        if self.config().metrics {
            self.cell().stale();
        }
        Recorded::Stale
    }

    #[inline]
    fn count_outcome(&self, config: &Config, outcome: Outcome, nanos: u64) {
        if config.metrics {
            let slow = outcome != Outcome::Ignored && nanos >= config.slow_nanos;
            self.cell().outcome(outcome, slow);
            // Neutral outcomes (cancellations) say nothing of the
            // dependency's latency.
            if let (Some(h), false) = (self.side.latency(), outcome == Outcome::Ignored) {
                h.record(nanos);
            }
        }
    }

    /// CLOSED (or METRICS_ONLY): count, update the policies, maybe trip.
    /// The common case, a success under the consecutive-failure policy
    /// alone (no window, EWMA or latency histogram) recorded by the thread
    /// that owns the inline counter cell, is done here without a call, so
    /// the closed call saves no registers; everything else hands over to
    /// `record_closed_more` before it has done anything.
    #[inline(always)]
    fn record_closed(
        &self,
        stats: &Stats,
        s: Snapshot,
        outcome: Outcome,
        nanos: u64,
        retry_after: Option<Duration>,
    ) -> Recorded {
        // One load of the config for the whole record (invariant 18).
        let config = self.config.load();
        if self.record_closed_short(config, stats, outcome, striped::tag) {
            return Recorded::Counted;
        }
        self.record_closed_more(config, stats, s, outcome, nanos, retry_after)
    }

    /// The short form of a CLOSED record: a success under the
    /// consecutive-failure policy alone, by the thread owning the inline
    /// counter cell. Does it and returns true (the record is
    /// `Recorded::Counted`), or returns false having done nothing. `tag` is
    /// the calling thread's owner tag: `striped::tag` or, in a caller
    /// that must stay frameless, `striped::leaf_tag`.
    #[inline(always)]
    fn record_closed_short(
        &self,
        config: &Config,
        stats: &Stats,
        outcome: Outcome,
        tag: impl FnOnce() -> u32,
    ) -> bool {
        if config.records_more
            || outcome != Outcome::Success
            || (config.metrics && !self.transitions.owner.is(tag()))
        {
            return false;
        }
        if config.metrics {
            // No slow-call policy without `records_more`: never slow, at
            // any duration.
            self.hot.counters.outcome(Outcome::Success, false);
        }
        let trip = Self::consecutive_trip(config, stats, false);
        debug_assert!(trip.is_none(), "a success never trips");
        true
    }

    /// The consecutive-failure policy: a failure adds one, a success ends
    /// the run; `Some` when this failure reaches the threshold.
    #[inline(always)]
    fn consecutive_trip(config: &Config, stats: &Stats, failed: bool) -> Option<Reason> {
        let threshold = config.consecutive_failures?;
        let c = &stats.consecutive_failures;
        if failed {
            // Relaxed: a statistic; the trip it causes is decided by the
            // state CAS (invariant 6).
            if c.fetch_add(1, Relaxed) + 1 >= u64::from(threshold) {
                return Some(Reason::ConsecutiveFailures);
            }
        } else if c.load(Relaxed) != 0 {
            c.store(0, Relaxed);
        }
        None
    }

    /// `record_closed` for every case: any outcome, any policies, any
    /// counter cell.
    #[inline(never)]
    fn record_closed_more(
        &self,
        config: &Config,
        stats: &Stats,
        s: Snapshot,
        outcome: Outcome,
        nanos: u64,
        retry_after: Option<Duration>,
    ) -> Recorded {
        self.count_outcome(config, outcome, nanos);
        if outcome == Outcome::Ignored {
            return Recorded::Counted;
        }
        let failed = outcome.is_failure();
        let slow = nanos >= config.slow_nanos;
        let mut trip = Self::consecutive_trip(config, stats, failed);

        if let Some(window) = self.window_of(config) {
            // Rates are evaluated only when this outcome could raise one
            // (invariant 6): a success only lowers them.
            let evaluate = failed || slow;
            let counts = window.record(Sample { failed, slow }, self, evaluate);
            if evaluate && trip.is_none() {
                trip = Self::window_trip(config, &counts);
            }
        }

        if let Some(policy) = config.ewma {
            let (calls, rate) = stats.ewma.record(failed, config.ewma_alpha_q32);
            // B2 says rate >= R, equality included; the Q0.32 EWMA sits a
            // few 2^-32 steps below the exact rate, so allow for that.
            if failed
                && trip.is_none()
                && calls >= config.minimum_calls
                && rate + 1e-6 >= policy.threshold
            {
                trip = Some(Reason::EwmaFailureRate);
            }
        }

        match trip {
            None => Recorded::Counted,
            Some(reason) => self.trip(s, reason, retry_after),
        }
    }

    /// A trip condition held: open (or shadow-trip under METRICS_ONLY).
    /// Out of line, so the closed path saves no registers for it.
    #[cold]
    #[inline(never)]
    fn trip(&self, s: Snapshot, reason: Reason, retry_after: Option<Duration>) -> Recorded {
        let w = self.words();
        let (next, reason) = if s.override_mode() == Some(Override::MetricsOnly) {
            (s.to_override(Override::MetricsOnly), Reason::ShadowTrip)
        } else {
            (s.to_open(0), reason)
        };
        // One CAS, no retry: if the word moved, another thread already made
        // a transition and this outcome's generation is over (invariant 3).
        match self.transition(w, s, next, reason, retry_after) {
            Ok(n) => Recorded::Transitioned(n.state()),
            Err(_) => Recorded::Counted,
        }
    }

    fn window_trip(config: &Config, c: &WindowCounts) -> Option<Reason> {
        if c.calls < u64::from(config.minimum_calls) {
            return None;
        }
        if let Some(p) = config.failure_rate {
            if c.failure_rate() >= p.threshold {
                return Some(Reason::FailureRate);
            }
        }
        if let Some(p) = config.slow_call {
            if c.slow_rate() >= p.threshold {
                return Some(Reason::SlowCallRate);
            }
        }
        None
    }

    /// The window `config` says is in use (invariant 18): none, the inline
    /// one, or the one a reconfiguration published in the side box.
    #[inline]
    fn window_of(&self, config: &Config) -> Option<&Window> {
        if config.window_at.is_side() {
            self.moved_window()
        } else {
            self.window.as_ref()
        }
    }

    #[cold]
    #[inline(never)]
    fn moved_window(&self) -> Option<&Window> {
        self.side.reconfig().and_then(|r| r.window())
    }

    /// HALF_OPEN: a probe reports (B5).
    fn record_probe<'a>(
        &'a self,
        w: impl Place<'a>,
        mut s: Snapshot,
        permit: Permit,
        outcome: Outcome,
        nanos: u64,
        retry_after: Option<Duration>,
    ) -> Recorded {
        // Invariant 11: only the first report of a ticket, of this
        // breaker's probe, goes on; a second record of the same permit
        // changes nothing (B5).
        if permit.tag() != self.probe_tag()
            || !w
                .probes(self)
                .claim(&w.control(self).word, permit.generation, permit.ticket())
        {
            return self.stale();
        }
        let config = self.config();
        let slow_counts_as_failure = config.slow_call.is_some() && nanos >= config.slow_nanos;
        loop {
            let attempt = match outcome {
                Outcome::Ignored => w
                    .control(self)
                    .word
                    .compare_exchange(s, s.with_probe_reported(false))
                    .map(|_| Recorded::Counted),
                _ if outcome.is_failure() || slow_counts_as_failure => {
                    let next = s.to_open(s.streak().saturating_add(1));
                    self.transition(w, s, next, Reason::ProbeFailed, retry_after)
                        .map(|n| Recorded::Transitioned(n.state()))
                }
                _ => {
                    let next = s.with_probe_reported(true);
                    if next.success() >= self.config().half_open_successes {
                        self.transition(w, s, self.recovered(s), Reason::ProbesSucceeded, None)
                            .map(|n| Recorded::Transitioned(n.state()))
                    } else {
                        w.control(self)
                            .word
                            .compare_exchange(s, next)
                            .map(|_| Recorded::Counted)
                    }
                }
            };
            match attempt {
                Ok(r) => {
                    // Counted once it has landed, so that a report that
                    // turns out stale is counted as stale only.
                    self.count_outcome(config, outcome, nanos);
                    return r;
                }
                Err(cur) if cur.generation() != permit.generation => {
                    // Another report ended this episode first: this outcome
                    // belongs to a finished generation (B6).
                    return self.stale();
                }
                Err(cur) => {
                    s = cur;
                    spin_hint();
                }
            }
        }
    }

    // ----- transitions -----------------------------------------------------

    /// The one way the state changes (invariant 3): CAS `from -> to`; the
    /// winner then writes the deadline that belongs to the new generation,
    /// resets the statistics the new state must start without, counts the
    /// transition and notifies the listener, in that order, after the new
    /// state is visible and outside any lock (B7).
    fn transition<'a>(
        &'a self,
        w: impl Place<'a>,
        from: Snapshot,
        to: Snapshot,
        reason: Reason,
        requested: Option<Duration>,
    ) -> Result<Snapshot, Snapshot> {
        // Invariant 15: a trip into an episode first reserves a place in the
        // group; the winner of an episode's end gives its place back.
        let membership = self.side.group();
        let mut reserved = None;
        if let Some(m) = membership {
            if holds_place(to) && !holds_place(from) {
                if !m.group.reserve() {
                    return self.refuse(w, m, from);
                }
                reserved = Some(&m.group);
            }
        }
        // A restore sets its word as recorded (`Breaker::restore`): no
        // trip streak to derive.
        let won = if from.ramping() && reason != Reason::Restored {
            self.leave_ramp(w, from, to)
        } else {
            w.control(self)
                .word
                .compare_exchange(from, to)
                .map(|_| (from, to))
        };
        let (from, to) = match won {
            Ok(pair) => pair,
            Err(cur) => {
                if let Some(g) = reserved {
                    g.release();
                }
                return Err(cur);
            }
        };
        if let Some(m) = self.side.mapped() {
            // Host-shared: this process's own transition is not news to it.
            let _ = m.newer(to);
            #[cfg(feature = "test-hooks")]
            crate::place::hooks::after_transition_cas();
        }
        if let Some(m) = membership {
            if holds_place(from) && !holds_place(to) {
                m.group.release();
            }
        }
        let now = self.env.clock.now();
        let generation = to.generation();
        let mut open_for = 0;
        match (to.override_mode(), to.phase()) {
            (Some(_), _) => {
                let stamp = match requested {
                    // B1: a shadow trip keeps the override's expiry (never,
                    // if its stamp is not written yet: invariant 4).
                    _ if reason == Reason::ShadowTrip => {
                        let old = w.control(self).deadline.load();
                        if old.belongs_to(from.generation()) && !old.is_never() {
                            self.stamp(generation, self.deadline_of(old))
                        } else {
                            Stamp::never(generation)
                        }
                    }
                    Some(d) => self.stamp(generation, now.saturating_add(duration_to_nanos(d))),
                    None => Stamp::never(generation),
                };
                w.control(self)
                    .deadline
                    .store(&w.control(self).word, generation, stamp);
            }
            (None, Phase::Open) => {
                open_for = self.open_duration(w, to.streak(), requested);
                let deadline = now.saturating_add(open_for);
                let stamp = self.stamp(generation, deadline);
                w.control(self)
                    .deadline
                    .store(&w.control(self).word, generation, stamp);
            }
            (None, Phase::HalfOpen) => {
                let lease = duration_to_nanos(self.config().probe_lease);
                let deadline = now.saturating_add(lease);
                let stamp = self.stamp(generation, deadline);
                w.control(self)
                    .deadline
                    .store(&w.control(self).word, generation, stamp);
            }
            (None, Phase::Closed) if to.ramping() => {
                // Invariant 14: the ramp's end is this generation's deadline
                // (a restore asks for what was left of a ramp).
                let end = match (self.ramp_nanos(), requested) {
                    (Some(full), Some(left)) => {
                        now.saturating_add(duration_to_nanos(left).min(full))
                    }
                    (Some(full), None) => now.saturating_add(full),
                    (None, _) => now,
                };
                let stamp = self.stamp(generation, end);
                w.control(self)
                    .deadline
                    .store(&w.control(self).word, generation, stamp);
            }
            (None, Phase::Closed) => {}
        }
        let (was, is) = (from.state(), to.state());
        // Invariant 6: the statistics describe one CLOSED (or METRICS_ONLY)
        // stretch; the winner of a transition out of or into one starts
        // them afresh.
        if was.admits_all() || is.admits_all() {
            self.clear_statistics(w);
        }
        if self.config().metrics {
            self.transitions.record(was, is, now);
        }
        let parent = self.env.parent.as_deref().filter(|p| !p.is_empty());
        if !self.listeners.is_empty() || parent.is_some() {
            let t = Transition {
                from: was,
                to: is,
                generation,
                reason,
                at: now,
                open_for,
            };
            self.listeners.emit(&self.name, &t);
            if let Some(p) = parent {
                p.emit(&self.name, &t);
            }
        }
        Ok(to)
    }

    /// The group guard refused a trip from `from` (invariant 15): instead,
    /// a shadow trip to the same state in a new generation, which starts
    /// the statistics afresh and tells the listeners; counted by the group
    /// when it wins.
    #[cold]
    fn refuse<'a>(
        &'a self,
        w: impl Place<'a>,
        m: &Membership,
        from: Snapshot,
    ) -> Result<Snapshot, Snapshot> {
        let shadow = match from.override_mode() {
            Some(mode) => from.to_override(mode),
            None => from.to_closed(0),
        };
        let result = self.transition(w, from, shadow, Reason::ShadowTrip, None);
        if result.is_ok() {
            m.group.refused();
        }
        result
    }

    /// The stamp of `deadline` for `generation` (relative to the stamp base).
    #[inline]
    fn stamp(&self, generation: u32, deadline: Nanos) -> Stamp {
        Stamp::new(generation, deadline, self.env.stamp_base)
    }

    /// A stamp's deadline in clock nanoseconds.
    #[inline]
    fn deadline_of(&self, stamp: Stamp) -> Nanos {
        stamp.deadline(self.env.stamp_base)
    }

    fn clear_statistics<'a>(&'a self, w: impl Place<'a>) {
        w.stats(self).consecutive_failures.store(0, Relaxed);
        let live = self.config.load();
        if let Some(win) = self.window_of(live) {
            win.clear();
        }
        // A reconfiguration published meanwhile may have seeded its window
        // from the one just cleared: clear that one too (invariant 18).
        let now = self.config.load();
        if !std::ptr::eq(now, live) {
            if let Some(win) = self.window_of(now) {
                win.clear();
            }
        }
        w.stats(self).ewma.clear();
    }

    /// B4: base x multiplier^streak, capped, jittered, capped again; or the
    /// dependency's own `Retry-After`, clamped.
    fn open_duration<'a>(
        &'a self,
        w: impl Place<'a>,
        streak: u32,
        retry_after: Option<Duration>,
    ) -> u64 {
        let config = self.config();
        let max = duration_to_nanos(config.max_open_duration);
        if let Some(d) = retry_after {
            return duration_to_nanos(d).min(max);
        }
        let base = duration_to_nanos(config.open_duration) as f64;
        let grown = (base * config.backoff_multiplier.powi(streak as i32)).min(max as f64);
        let j = config.jitter;
        let factor = if j > 0.0 {
            // Deterministic per (seed, generation): no RNG state to keep,
            // and every episode of every breaker draws differently.
            let seed = match config.seed {
                0 => self.env.salt ^ (self as *const Breaker as u64),
                s => s,
            };
            let u = rng::unit_f64(seed, w.control(self).word.load().generation());
            1.0 + j * (2.0 * u - 1.0)
        } else {
            1.0
        };
        ((grown * factor) as u64).min(max)
    }
}

impl Drop for Breaker {
    fn drop(&mut self) {
        if let Some(m) = self.side.group() {
            // Invariant 15: a member that goes away mid-episode gives its
            // place back; `&mut self` means no transition is in flight.
            if holds_place(self.words().control.word.load()) {
                m.group.release();
            }
            if m.joined.load(Relaxed) != 0 {
                m.group.leave();
            }
        }
    }
}

fn remaining(deadline: Nanos, now: Nanos) -> Duration {
    Duration::from_nanos(deadline.saturating_sub(now))
}

impl<'a> Place<'a> for Inline {
    #[inline(always)]
    fn control(self, b: &'a Breaker) -> &'a Control {
        &b.control
    }

    #[inline(always)]
    fn probes(self, b: &'a Breaker) -> &'a ProbeLedger {
        &b.probes
    }

    #[inline(always)]
    fn stats(self, b: &'a Breaker) -> &'a Stats {
        &b.hot.stats
    }
}

/// Ramp-up after recovery (invariant 14, `core/src/ramp.rs`).
impl Breaker {
    /// The fraction of calls admitted now while the breaker ramps up after
    /// recovery, in `(0, 1)`; `None` when no ramp runs (the breaker admits
    /// every call, or is not CLOSED).
    pub fn ramp_fraction(&self) -> Option<f64> {
        let w = self.words();
        let s = w.control(self).word.load();
        if !s.ramping() || s.override_mode().is_some() {
            return None;
        }
        let f = self.ramp_fraction_q32(w, s)?;
        (f < ramp::ONE).then(|| f as f64 / ramp::ONE as f64)
    }

    fn ramp_nanos(&self) -> Option<Nanos> {
        self.config().ramp.map(|r| duration_to_nanos(r.duration))
    }

    /// The admitted fraction (Q0.32) of the ramp of `s`'s generation, or
    /// `None` when the word moved on while its deadline was read. A ramp
    /// whose deadline its winner has not written yet has just begun
    /// (invariant 4: the conservative reading).
    fn ramp_fraction_q32<'a>(&'a self, w: impl Place<'a>, s: Snapshot) -> Option<u64> {
        let Some(policy) = self.config().ramp else {
            return Some(ramp::ONE);
        };
        let stamp = w.control(self).deadline.load();
        if !stamp.belongs_to(s.generation()) {
            return (w.control(self).word.load() == s).then(|| ramp::fraction_q32(&policy, 0));
        }
        let now = self.env.clock.coarse_now();
        let end = self.deadline_of(stamp);
        let total = duration_to_nanos(policy.duration);
        let elapsed = total.saturating_sub(end.saturating_sub(now));
        Some(ramp::fraction_q32(&policy, elapsed))
    }

    /// Acquire while RAMPING: `Ok(result)`, or `Err(word)` to look again.
    fn acquire_ramping<'a>(
        &'a self,
        w: impl Place<'a>,
        s: Snapshot,
    ) -> Result<Result<Permit, Rejected>, Snapshot> {
        let fraction = self
            .ramp_fraction_q32(w, s)
            .ok_or_else(|| w.control(self).word.load())?;
        if fraction >= ramp::ONE {
            // The ramp is over: back to the fast path, same generation, so
            // permits of the ramp stay valid (invariant 14). Whoever loses
            // this CAS looks again.
            return match w.control(self).word.compare_exchange(s, s.without_ramp()) {
                Ok(_) => Ok(Ok(Permit::new(s.generation()))),
                Err(cur) => Err(cur),
            };
        }
        // The ramp's tickets live in the probe ledger, which a CLOSED
        // generation does not use (invariant 14); no ticket: the word moved.
        let Some(ticket) = w
            .probes(self)
            .ramp_ticket(&w.control(self).word, s.generation())
        else {
            return Err(w.control(self).word.load());
        };
        Ok(if ramp::admits(ticket, fraction) {
            Ok(Permit::new(s.generation()))
        } else {
            if self.config().metrics {
                self.side.ramp_limited();
            }
            Err(Rejected {
                reason: RejectReason::RampLimited,
                retry_after: None,
            })
        })
    }

    /// The CAS of a transition out of RAMPING (invariant 14), for
    /// `Breaker::transition`. Into OPEN, the streak is the HALF_OPEN streak
    /// plus one while the ramp runs (backoff applies) and 0 once it is
    /// over, and a CAS lost only to the ramp's end (the one change a CLOSED
    /// word makes without a transition) is tried once more from the word
    /// after it, so the end of a ramp never swallows a trip (a trip's
    /// record does not retry: invariant 3). Any other lost CAS is returned
    /// to the caller as usual. Returns the `(from, to)` that won.
    #[cold]
    #[inline(never)]
    fn leave_ramp<'a>(
        &'a self,
        w: impl Place<'a>,
        from: Snapshot,
        to: Snapshot,
    ) -> Result<(Snapshot, Snapshot), Snapshot> {
        let opens = to.phase() == Phase::Open && to.override_mode().is_none();
        let to = if opens {
            from.to_open(self.trip_streak(w, from))
        } else {
            to
        };
        match w.control(self).word.compare_exchange(from, to) {
            Ok(_) => Ok((from, to)),
            Err(cur) if opens && cur == from.without_ramp() => {
                let to = cur.to_open(0);
                w.control(self).word.compare_exchange(cur, to)?;
                Ok((cur, to))
            }
            Err(cur) => Err(cur),
        }
    }

    /// A call admitted while RAMPING reports: as in CLOSED. Out of line so
    /// that the closed record path compiles as it did before ramps.
    #[cold]
    #[inline(never)]
    fn record_ramping<'a>(
        &'a self,
        w: impl Place<'a>,
        s: Snapshot,
        outcome: Outcome,
        nanos: u64,
        retry_after: Option<Duration>,
    ) -> Recorded {
        self.record_closed(w.stats(self), s, outcome, nanos, retry_after)
    }

    /// The word HALF_OPEN closes to: RAMPING keeping the streak when the
    /// config ramps up, otherwise a fresh CLOSED.
    fn recovered(&self, s: Snapshot) -> Snapshot {
        if self.config().ramp.is_some() {
            s.to_ramping(s.streak())
        } else {
            s.to_closed(0)
        }
    }

    /// The streak a trip from `s` opens with: as from HALF_OPEN during a
    /// ramp (backoff applies), 0 otherwise.
    fn trip_streak<'a>(&'a self, w: impl Place<'a>, s: Snapshot) -> u32 {
        if !s.ramping() {
            return 0;
        }
        match self.ramp_fraction_q32(w, s) {
            Some(f) if f < ramp::ONE => s.streak().saturating_add(1),
            _ => 0,
        }
    }
}

/// Active health probes (`core/src/probe.rs`).
impl Breaker {
    /// When this breaker next wants an active probe (clock nanoseconds; 0
    /// means now), reading the word and its deadline only (no transition):
    /// in OPEN, the open deadline; in HALF_OPEN, now while a probe slot is
    /// free, else the probe lease; never under an override, in CLOSED or
    /// while ramping. An unstamped generation is due now: the acquire that
    /// follows stands in for its winner (invariant 4).
    pub(crate) fn probe_due_at(&self) -> Option<Nanos> {
        // The slot's words for a host-shared breaker (its inline word is
        // never a state a probe could act on).
        let control = self.words().control;
        let s = control.word.load();
        if s.override_mode().is_some() {
            return None;
        }
        let stamp = control.deadline.load();
        let deadline = || {
            if stamp.belongs_to(s.generation()) {
                self.deadline_of(stamp)
            } else {
                0
            }
        };
        match s.phase() {
            Phase::Open => Some(deadline()),
            Phase::HalfOpen if s.inflight() + s.success() < self.config().half_open_probes => {
                Some(0)
            }
            Phase::HalfOpen => Some(deadline()),
            Phase::Closed => None,
        }
    }
}

/// Live reconfiguration (invariant 18, `core/src/reconfig.rs`).
impl Breaker {
    /// Puts `config` in force now, keeping the breaker's state: its state
    /// and generation, the current deadline, the counters, the
    /// consecutive-failure count, the EWMA, the backoff streak, and the
    /// window's contents (resized as `core/src/reconfig.rs` says when the
    /// new config's window has another shape). Thresholds, rates, probe
    /// counts, ramp and metrics apply from the next call; a new open
    /// duration from the next opening (the current deadline stands); a
    /// ramp under way keeps its end. Calls in flight stay correct: each
    /// call uses one config, the old or the new.
    ///
    /// The config was validated when it was built (the one set of rules,
    /// `ConfigBuilder::build`). The latency histogram is allocated with
    /// the breaker: a config that turns it on or off or changes its period
    /// is refused with an error naming `latency_histogram`, and a refused
    /// config changes nothing.
    pub fn reconfigure(&self, config: Config) -> Result<(), ConfigError> {
        self.reconfigure_shared(Arc::new(config))
    }

    /// As [`Breaker::reconfigure`], sharing the config (a registry's).
    pub(crate) fn reconfigure_shared(&self, config: Arc<Config>) -> Result<(), ConfigError> {
        self.check_reconfigure(&config)?;
        if *self.config() == *config {
            return Ok(());
        }
        let rc = self.side.reconfig_or_new();
        let mut pool = rc.lock();
        // Under the pool lock no one else publishes: `live` stays current.
        let live = self.config.load();
        let old_window = self.window_of(live);
        let kind = config.window;
        let before = self.control.word.load();
        let (window, at, seeded) = match old_window {
            // No window read: the inline one stands for "none" only if
            // there is none.
            _ if !config.uses_window() => match self.window {
                None => (None, WindowAt::INLINE, false),
                Some(_) => (None, WindowAt::SIDE, false),
            },
            Some(w) if w.fits(kind) => (Some(w), live.window_at, false),
            _ => {
                let (w, at) = match &self.window {
                    Some(inline) if inline.fits(kind) => {
                        inline.clear();
                        (inline, WindowAt::INLINE)
                    }
                    _ => (rc.window_for(&mut pool, kind), WindowAt::SIDE),
                };
                // Outside an admitting state the window is not recorded
                // into and is cleared on the way back (invariant 6): the new
                // one starts empty. Seeding from OPEN could copy what the
                // trip's winner has yet to clear.
                if let (Some(old), true) = (old_window, before.state().admits_all()) {
                    w.seed_from(old, self.env.clock.coarse_now());
                }
                (Some(w), at, true)
            }
        };
        if at.is_side() {
            rc.set_window(window);
        }
        // The config says where the window is: a config whose derived
        // place is not this breaker's is published as a copy of its own.
        let config = if config.window_at.0 == at.0 {
            config
        } else {
            Arc::new(Config {
                window_at: at,
                ..(*config).clone()
            })
        };
        let config = pool.take_config(config);
        let replaced = self.config.publish(config);
        pool.keep_config(replaced);
        if let (Some(w), true) = (window, seeded) {
            self.settle_window(w, before);
        }
        Ok(())
    }

    /// Whether `config` can be put in force on this breaker: everything but
    /// a change of the latency histogram, which is allocated with it.
    pub(crate) fn check_reconfigure(&self, config: &Config) -> Result<(), ConfigError> {
        if self.side.mapped().is_some() {
            return Err(host_shared_refusal());
        }
        if self.config().latency_histogram != config.latency_histogram {
            return Err(ConfigError {
                field: "latency_histogram",
                reason: "the latency histogram is fixed when the breaker is created".into(),
            });
        }
        Ok(())
    }

    /// Whether this breaker is host-shared (its decision words live in a
    /// segment slot, `crate::shared`).
    pub fn is_host_shared(&self) -> bool {
        self.side.mapped().is_some()
    }

    /// A window seeded from the statistics of generation `before`, now
    /// published: if a transition cleared the statistics meanwhile
    /// (invariant 6), the seed is stale and the window is emptied. A CAS of
    /// the word onto itself, after the config's publication, puts this check
    /// in the word's order (invariant 18): a transition whose CAS comes
    /// after it acquires the new config and clears the new window itself;
    /// one whose CAS comes before it fails it, and the window is cleared
    /// here.
    fn settle_window(&self, window: &Window, mut before: Snapshot) {
        loop {
            match self.control.word.compare_exchange(before, before) {
                Ok(_) => return,
                Err(now) => {
                    if now.generation() != before.generation() {
                        window.clear();
                    }
                    before = now;
                }
            }
        }
    }
}

/// Snapshot and restore (the record format is `core/src/snapshot.rs`).
impl Breaker {
    /// The breaker's state, counters and window as a small versioned
    /// record (see [`crate::snapshot`]) that [`Breaker::restore`] takes
    /// back, in this process or another one. The deadline of the current
    /// state is kept as the time left on this breaker's clock plus the wall
    /// time of export (`Clock::wall_now`), since monotonic readings mean
    /// nothing after a restart. Reads each word once, without stopping
    /// callers: a record taken under traffic is as consistent as a metrics
    /// snapshot (invariants 6 and 8).
    pub fn snapshot(&self) -> Vec<u8> {
        // The slot's words for a host-shared breaker.
        let w = self.words();
        let config = self.config();
        let s = w.control.word.load();
        let stamp = w.control.deadline.load();
        let now = self.env.clock.now();
        let wall = self.env.clock.wall_now();
        // The generation's deadline; one not yet stamped by its winner is
        // read as the stand-in a reader would write (invariant 4).
        let left = |bound: Duration| {
            if stamp.belongs_to(s.generation()) {
                self.deadline_of(stamp).saturating_sub(now)
            } else {
                duration_to_nanos(bound)
            }
        };
        let (phase, remaining) = match (s.override_mode(), s.phase()) {
            (Some(_), _) if !stamp.belongs_to(s.generation()) || stamp.is_never() => {
                (PhaseCode::Closed, snapshot::NONE)
            }
            (Some(_), _) => (PhaseCode::Closed, left(Duration::ZERO)),
            (None, Phase::Open) => (PhaseCode::Open, left(config.max_open_duration)),
            (None, Phase::HalfOpen) => (PhaseCode::HalfOpen, left(config.probe_lease)),
            (None, Phase::Closed) if s.ramping() => (
                PhaseCode::Ramping,
                left(config.ramp.map_or(Duration::ZERO, |r| r.duration)),
            ),
            (None, Phase::Closed) => (PhaseCode::Closed, snapshot::NONE),
        };
        let m = self.metrics_counts();
        let window = match self.window_of(self.config.load()) {
            None => WindowRecord::None,
            Some(Window::Count(c)) => WindowRecord::Count(c.export()),
            Some(Window::SharedCount(c)) => WindowRecord::Count(c.export()),
            Some(Window::Time(t)) => WindowRecord::Time(t.export(self.env.clock.coarse_now())),
        };
        Record {
            config_hash: snapshot::config_hash(config),
            wall,
            phase,
            mode: s.override_mode(),
            streak: s.streak() as u8,
            success: s.success() as u8,
            remaining,
            consecutive_failures: w.stats.consecutive_failures.load(Relaxed),
            ewma: w.stats.ewma.word(),
            counters: m,
            window,
        }
        .encode()
    }

    /// Restores a record from [`Breaker::snapshot`] of a breaker with the
    /// same config (per-process fields aside: metrics, histogram, seed).
    ///
    /// - **State**: the recorded state, in a new generation, by one
    ///   transition with reason `Restored` (invariant 3: one CAS on the
    ///   state word, so callers in flight see the old state or the new one,
    ///   and their permits become stale; a group guard may refuse an OPEN,
    ///   invariant 15). The deadline is the time that was left less the
    ///   wall time since export, never less than zero and never more than
    ///   was left (a wall clock set back counts as no time passed), and
    ///   never more than the config allows: an OPEN breaker stays open for
    ///   the rest of its window and at most `max_open_duration`. HALF_OPEN
    ///   comes back HALF_OPEN with its successes and no probe held (the
    ///   probes in flight belonged to the old process and will never
    ///   report), and a fresh lease. A ramp resumes with what was left.
    /// - **Statistics** (window, consecutive failures, EWMA) replace the
    ///   breaker's when the restored state admits calls; a time window's
    ///   buckets age by the wall time since export. Records landing during
    ///   the restore may be overwritten (invariant 6).
    /// - **Call counters add** to the breaker's own (metrics on), so a
    ///   counter never goes backwards in one process; restore a record
    ///   once per breaker.
    ///
    /// Bad input (truncated, foreign, another version, corrupt, another
    /// config) is refused with a [`SnapshotError`] and changes nothing.
    pub fn restore(&self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let config = self.config();
        let r = Record::decode(bytes, config)?;
        let elapsed = self.env.clock.wall_now().saturating_sub(r.wall);
        let left = (r.remaining != snapshot::NONE)
            .then(|| Duration::from_nanos(r.remaining.saturating_sub(elapsed)));
        let streak = u32::from(r.streak);
        let success = u32::from(r.success).min(config.half_open_successes.saturating_sub(1));
        let build = |s: Snapshot| match (r.mode, r.phase) {
            (Some(mode), _) => s.to_override(mode),
            (None, PhaseCode::Closed) => s.to_closed(0),
            (None, PhaseCode::Open) => s.to_open(streak),
            (None, PhaseCode::HalfOpen) => s.to_half_open(0, success).with_streak(streak),
            (None, PhaseCode::Ramping) => s.to_ramping(streak),
        };
        let requested = match (r.mode, r.phase) {
            (Some(_), _) => left.map(|d| d.min(crate::config::MAX_DURATION)),
            // No deadline recorded for OPEN (a hand-made record): the
            // longest the config allows, as for an unstamped generation.
            (None, PhaseCode::Open) => Some(
                left.unwrap_or(config.max_open_duration)
                    .min(config.max_open_duration),
            ),
            (None, PhaseCode::Ramping) => left,
            _ => None,
        };
        // The slot's words for a host-shared breaker.
        let w = self.words();
        let mut s = w.control.word.load();
        let to = loop {
            match self.transition(w, s, build(s), Reason::Restored, requested) {
                Ok(n) => break n,
                Err(cur) => s = cur,
            }
        };
        // The winner's statistics (invariant 6): only while the word is
        // still in the restored generation, and only for a state that
        // keeps them.
        if w.control.word.load().generation() == to.generation() && to.state().admits_all() {
            self.clear_statistics(w);
            w.stats
                .consecutive_failures
                .store(r.consecutive_failures, Relaxed);
            w.stats.ewma.set_word(r.ewma);
            match (self.window_of(self.config.load()), &r.window) {
                (Some(Window::Count(c)), WindowRecord::Count(samples)) => c.import(samples),
                (Some(Window::SharedCount(c)), WindowRecord::Count(samples)) => c.import(samples),
                (Some(Window::Time(t)), WindowRecord::Time(buckets)) => {
                    t.import(self.env.clock.coarse_now(), elapsed, buckets)
                }
                _ => {}
            }
        }
        if config.metrics {
            let c = &r.counters;
            let outcomes = [c[0], c[1], c[2], c[3]];
            self.cell().add_restored(
                &outcomes,
                c[4],
                c[5],
                &c[6..6 + RejectReason::RampLimited as usize],
            );
            self.side
                .add_ramp_limited(c[6 + RejectReason::RampLimited as usize]);
        }
        Ok(())
    }

    /// The call counters a snapshot carries: outcomes, slow, stale,
    /// rejections by reason.
    fn metrics_counts(&self) -> [u64; 10] {
        let m = self.metrics();
        let mut out = [0u64; 10];
        out[..4].copy_from_slice(&m.outcomes);
        out[4] = m.slow;
        out[5] = m.stale;
        out[6..].copy_from_slice(&m.rejected);
        out
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// A transition winner that dies between its CAS and its stamp (here:
    /// the CAS alone, as a killed process or a panicking clock leaves it).
    fn win_without_stamping(b: &Breaker, to: Snapshot) {
        let from = b.control.word.load();
        b.control.word.compare_exchange(from, to).unwrap();
    }

    fn breaker(clock: &Arc<ManualClock>) -> Breaker {
        let config = Config::builder()
            .consecutive_failures(Some(1))
            .open_duration(Duration::from_secs(1))
            .max_open_duration(Duration::from_secs(30))
            .probe_lease(Duration::from_secs(5))
            .build()
            .unwrap();
        Breaker::with_clock(config, clock.clone())
    }

    #[test]
    fn an_open_generation_never_stamped_ends_after_the_max_open_duration() {
        let clock = Arc::new(ManualClock::new(1_000_000_000));
        let b = breaker(&clock);
        let s = b.control.word.load();
        win_without_stamping(&b, s.to_open(0));
        // The first reader stands in for the dead winner: open for at most
        // the max open duration from now.
        let r = b.acquire().unwrap_err();
        assert_eq!(r.reason, RejectReason::Open);
        assert_eq!(r.retry_after, Some(Duration::from_secs(30)));
        clock.advance(Duration::from_secs(29));
        assert!(b.acquire().is_err());
        clock.advance(Duration::from_secs(1));
        let p = b.acquire().expect("the stand-in deadline has passed");
        assert!(p.is_probe());
        assert_eq!(b.state(), State::HalfOpen);
    }

    #[test]
    fn a_winner_that_stamps_late_replaces_the_stand_in() {
        let clock = Arc::new(ManualClock::new(0));
        let b = breaker(&clock);
        let s = b.control.word.load();
        let open = s.to_open(0);
        win_without_stamping(&b, open);
        assert!(b.acquire().is_err()); // stand-in: 30 s
        let g = open.generation();
        b.control
            .deadline
            .store(&b.control.word, g, b.stamp(g, 2_000_000_000));
        assert_eq!(b.open_deadline(), Some(2_000_000_000));
        // And a stand-in never replaces a stamp the winner wrote.
        b.control
            .deadline
            .fill(&b.control.word, g, b.stamp(g, 9_000_000_000));
        assert_eq!(b.open_deadline(), Some(2_000_000_000));
        clock.advance(Duration::from_secs(2));
        assert!(b.acquire().unwrap().is_probe());
    }

    #[test]
    fn a_half_open_generation_never_stamped_frees_its_probe_after_the_lease() {
        let clock = Arc::new(ManualClock::new(0));
        let b = breaker(&clock);
        let s = b.control.word.load();
        // The winner of OPEN -> HALF_OPEN took the only probe slot in its
        // CAS and died before stamping the lease.
        win_without_stamping(&b, s.to_half_open(1, 0));
        assert_eq!(b.acquire().unwrap_err().reason, RejectReason::HalfOpenFull);
        clock.advance(Duration::from_secs(5));
        assert!(b.acquire().expect("lease expired").is_probe());
    }
}
