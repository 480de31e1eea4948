//! Active health probes: a breaker that is OPEN asks for a probe of its
//! dependency at its open deadline, without waiting for user traffic.
//!
//! A [`Prober`] knows which breakers have a probe registered. Given the
//! breakers' clocks it decides which are due (one rule,
//! `Breaker::probe_due_at`): a breaker is due when it is OPEN and its open
//! deadline has passed, or HALF_OPEN with a probe slot free (more probes
//! are needed to close), or HALF_OPEN with every slot held past its lease.
//! A breaker under an override is never due. A due probe takes its permit
//! through the ordinary `acquire`, so the probe *is* the half-open probe:
//! OPEN -> HALF_OPEN, the probe counts, backoff after a failure and a ramp
//! after the close all apply unchanged. A failed probe re-opens with
//! backoff, and the next probe is due at the new deadline.
//!
//! Two ways to run the probes, over that one decision:
//!
//! - **Tickets** (hosts with their own threads: Python, Go, C):
//!   [`Prober::next_due`] waits until a probe registered without a
//!   function is due and hands out a [`Due`] holding the probe's ticket;
//!   the host runs its check and calls [`Prober::complete`] with the
//!   outcome. A ticket never completed is reclaimed after the breaker's
//!   probe lease (recorded as `Ignored`), so a probe never holds the
//!   half-open slot forever.
//! - **Callbacks** (Rust and C callbacks): a probe registered with a
//!   function is run on a thread the prober starts when the first such
//!   probe is registered; it sleeps until the earliest deadline and is woken
//!   by the breakers' transitions (a listener per probed breaker). A
//!   function that panics counts as a failure; the panic never leaves the
//!   thread. The thread stops and is joined when the prober is closed or
//!   dropped.
//!
//! The prober holds its breakers weakly: once the last reference to a
//! breaker is gone (removed from its registry and released by every host),
//! it is no longer probed. A registry's map frees a removed breaker lazily
//! (epoch-based reclamation), so unregister a probe together with its
//! breaker to stop it at once. Its lock guards only its own table and is never
//! held across a call into a breaker or a probe function (a transition that
//! a probe causes calls the prober's listener, which takes the lock).
//!
//! ```
//! use circuit_core::probe::{ProbeOptions, Prober};
//! use circuit_core::{Breaker, Config, Outcome, State};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let config = Config::builder()
//!     .consecutive_failures(Some(1))
//!     .open_duration(Duration::from_millis(20))
//!     .build()
//!     .unwrap();
//! let breaker = Arc::new(Breaker::new(config));
//! let prober = Prober::new();
//! prober.register(&breaker, ProbeOptions::default()).unwrap();
//! let p = breaker.acquire().unwrap();
//! breaker.record(p, Outcome::Failure, Duration::ZERO); // OPEN
//! // No user traffic: the prober hands out a probe at the open deadline.
//! let due = prober.next_due(Duration::from_secs(5)).expect("a probe is due");
//! prober.complete(due.ticket, Outcome::Success).unwrap();
//! assert_eq!(breaker.state(), State::Closed);
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::breaker::Breaker;
use crate::call::{Outcome, Recorded};
use crate::clock::{duration_to_nanos, Nanos};
use crate::events::{Listener, ListenerId};
use crate::guard::Guard;
use crate::transition::Transition;

/// A probe function: asks the dependency whether it is healthy.
pub type ProbeFn = Arc<dyn Fn() -> Outcome + Send + Sync>;

/// Identifies a registered probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeId(pub u64);

/// Identifies one probe handed out by [`Prober::next_due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketId(pub u64);

/// How a probe is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOptions {
    /// The least time from the end of one probe of this breaker to the
    /// start of the next (so that probes whose outcome is `Ignored`, or
    /// the successive probes of a HALF_OPEN that needs several, do not run
    /// back to back). Default 10 ms; at most
    /// [`crate::config::MAX_DURATION`].
    pub min_interval: Duration,
}

/// The least wait (1 ms) before trying a probe again after the breaker
/// refused its acquire or gave an ordinary permit (it raced with user
/// traffic), so a refusal without a retry-after never spins.
const RETRY_FLOOR: Nanos = 1_000_000;

/// Default [`ProbeOptions::min_interval`].
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_millis(10);

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            min_interval: DEFAULT_MIN_INTERVAL,
        }
    }
}

/// Why a prober refused a request. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// This breaker already has a probe in this prober.
    AlreadyRegistered(ProbeId),
    /// No such probe (never registered, or removed).
    UnknownProbe(ProbeId),
    /// No such ticket outstanding (never handed out, already completed, or
    /// reclaimed after its lease).
    UnknownTicket(TicketId),
    /// The prober is closed.
    Closed,
    /// An option was out of range.
    InvalidOptions(&'static str),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::AlreadyRegistered(id) => {
                write!(f, "the breaker already has probe {} here", id.0)
            }
            ProbeError::UnknownProbe(id) => write!(f, "no probe {}", id.0),
            ProbeError::UnknownTicket(t) => write!(
                f,
                "no outstanding probe ticket {} (already completed or reclaimed)",
                t.0
            ),
            ProbeError::Closed => f.write_str("the prober is closed"),
            ProbeError::InvalidOptions(why) => write!(f, "invalid probe options: {why}"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// A probe handed out by [`Prober::next_due`]: run the check, then
/// [`Prober::complete`] its ticket.
#[derive(Debug, Clone)]
pub struct Due {
    /// The probe (as returned by [`Prober::register`]).
    pub probe: ProbeId,
    /// This run of it.
    pub ticket: TicketId,
    /// The breaker probed.
    pub breaker: Arc<Breaker>,
}

/// A probe run in flight: its ticket, the half-open permit (a guard: dropped
/// unrecorded, it records `Ignored`), and when it is reclaimed.
struct InFlight {
    ticket: TicketId,
    guard: Guard<Arc<Breaker>>,
    reclaim_at: Nanos,
}

struct Entry {
    id: ProbeId,
    breaker: Weak<Breaker>,
    listener: ListenerId,
    callback: Option<ProbeFn>,
    min_interval: Nanos,
    /// Not before this (breaker clock): after a probe ended, or an acquire
    /// was refused.
    not_before: Nanos,
    in_flight: Option<InFlight>,
}

#[derive(Default)]
struct Table {
    entries: Vec<Entry>,
    next_id: u64,
    closed: bool,
    /// Counts changes (transitions of probed breakers, registrations,
    /// completions, reclaims), under the lock: a waiter notes it before it
    /// looks and waits only if it has not moved since, so no wake-up is
    /// lost, whichever of several waiters runs first.
    epoch: u64,
}

struct Shared {
    table: Mutex<Table>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table is consistent after any panic (each change is a single
        // assignment or push/remove), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn poke(&self) {
        self.lock().epoch += 1;
        self.wake.notify_all();
    }
}

/// Wakes the prober on every transition of a probed breaker.
struct Wake(Weak<Shared>);

impl Listener for Wake {
    fn on_transition(&self, _: &Arc<str>, _: &Transition) {
        if let Some(s) = self.0.upgrade() {
            s.poke();
        }
    }
}

/// Which probes a call hands out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ticket,
    Callback,
}

/// Decides when breakers want an active probe and hands the probes out.
/// See the module docs.
pub struct Prober {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("probes", &self.shared.lock().entries.len())
            .finish_non_exhaustive()
    }
}

impl Default for Prober {
    fn default() -> Self {
        Prober::new()
    }
}

fn due(probe: ProbeId, ticket: TicketId, breaker: Arc<Breaker>) -> Due {
    Due {
        probe,
        ticket,
        breaker,
    }
}

impl Prober {
    /// A prober with no probes and no thread.
    pub fn new() -> Prober {
        Prober {
            shared: Arc::new(Shared {
                table: Mutex::new(Table {
                    next_id: 1,
                    ..Table::default()
                }),
                wake: Condvar::new(),
            }),
            worker: Mutex::new(None),
        }
    }

    /// Registers a probe for `breaker`, run by the host through
    /// [`Prober::next_due`] and [`Prober::complete`].
    pub fn register(
        &self,
        breaker: &Arc<Breaker>,
        options: ProbeOptions,
    ) -> Result<ProbeId, ProbeError> {
        self.shared.add(breaker, options, None)
    }

    /// Registers `probe` for `breaker`, run on the prober's own thread
    /// (started now if it is not running). A probe function that keeps a
    /// reference to this prober keeps it alive: hold it weakly.
    pub fn register_fn(
        &self,
        breaker: &Arc<Breaker>,
        options: ProbeOptions,
        probe: impl Fn() -> Outcome + Send + Sync + 'static,
    ) -> Result<ProbeId, ProbeError> {
        let id = self.shared.add(breaker, options, Some(Arc::new(probe)))?;
        self.start_worker();
        Ok(id)
    }

    /// Removes a probe. A run in flight is released as `Ignored` (its
    /// ticket becomes unknown).
    pub fn unregister(&self, id: ProbeId) -> Result<(), ProbeError> {
        self.shared.remove(id)
    }

    /// Probes registered (including those of breakers since dropped and not
    /// yet noticed).
    pub fn len(&self) -> usize {
        self.shared.lock().entries.len()
    }

    /// True when no probe is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A probe (registered without a function) due now, if any, without
    /// waiting: for hosts that drive time themselves (a manual clock).
    pub fn poll(&self) -> Option<Due> {
        // A look that reclaimed runs or started nothing (a user call took
        // the slot) looks again; each such look moves a probe's time on,
        // so a few suffice.
        for _ in 0..4 {
            match self.shared.look(Kind::Ticket) {
                Look::Start(probe, breaker) => {
                    if let Some((p, t, b)) = self.shared.start(probe, breaker) {
                        return Some(due(p, t, b));
                    }
                }
                Look::Wait(Some(Duration::ZERO)) => {}
                Look::Wait(_) => return None,
            }
        }
        None
    }

    /// Waits up to `timeout` (real time) for a probe registered without a
    /// function to be due, and hands it out. `None` on timeout or once the
    /// prober is closed.
    pub fn next_due(&self, timeout: Duration) -> Option<Due> {
        let until = Instant::now().checked_add(timeout);
        self.shared
            .run_until(Kind::Ticket, until)
            .map(|(p, t, b)| due(p, t, b))
    }

    /// Completes a probe handed out by [`Prober::next_due`] (or
    /// [`Prober::poll`]) with its outcome: the breaker records it as the
    /// half-open probe it is (a success counts towards closing, a failure
    /// re-opens with backoff).
    pub fn complete(&self, ticket: TicketId, outcome: Outcome) -> Result<Recorded, ProbeError> {
        self.shared.complete(ticket, outcome)
    }

    /// How long until a probe (of either kind) is due, on the probed
    /// breakers' clocks; `None` when no breaker wants one. Zero: now.
    pub fn next_in(&self) -> Option<Duration> {
        let a = self.shared.scan(Kind::Ticket).wait();
        let b = self.shared.scan(Kind::Callback).wait();
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Closes the prober: waiters return `None`, registrations are
    /// refused, the thread stops and is joined, and runs in flight are
    /// released as `Ignored`. Idempotent.
    pub fn close(&self) {
        let entries = {
            let mut t = self.shared.lock();
            t.closed = true;
            t.epoch += 1;
            std::mem::take(&mut t.entries)
        };
        self.shared.wake.notify_all();
        let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = worker {
            // A probe function that drops the last reference to its own
            // prober runs this on the worker: it ends on its own.
            if w.thread().id() != std::thread::current().id() {
                let _ = w.join();
            }
        }
        for e in entries {
            retire(e);
        }
    }

    /// True once [`Prober::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    fn start_worker(&self) {
        let mut worker = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if worker.is_some() {
            return;
        }
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("circuit-probe".into())
            .spawn(move || shared.run_callbacks());
        // Without a thread (the system refused one), callbacks are not run
        // until a later registration starts it.
        *worker = spawned.ok();
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.close();
    }
}

/// A look at the table: a probe to start, or how long until one is due.
enum Look {
    Start(ProbeId, Arc<Breaker>),
    Wait(Option<Duration>),
}

impl Look {
    fn wait(&self) -> Option<Duration> {
        match self {
            Look::Start(..) => Some(Duration::ZERO),
            Look::Wait(w) => *w,
        }
    }
}

/// What a look needs of one entry, copied out under the lock.
struct Candidate {
    id: ProbeId,
    breaker: Option<Arc<Breaker>>,
    not_before: Nanos,
    flight: Option<(TicketId, Nanos)>,
}

/// What a look found besides its answer.
#[derive(Default)]
struct Findings {
    /// Probes whose breaker is gone.
    gone: Vec<ProbeId>,
    /// Runs past their lease.
    expired: Vec<TicketId>,
}

impl Shared {
    fn add(
        self: &Arc<Self>,
        breaker: &Arc<Breaker>,
        options: ProbeOptions,
        callback: Option<ProbeFn>,
    ) -> Result<ProbeId, ProbeError> {
        if options.min_interval > crate::config::MAX_DURATION {
            return Err(ProbeError::InvalidOptions("min_interval is too long"));
        }
        let registered = |t: &Table| {
            t.entries
                .iter()
                .find(|e| e.breaker.as_ptr() == Arc::as_ptr(breaker))
                .map(|e| e.id)
        };
        {
            let t = self.lock();
            if t.closed {
                return Err(ProbeError::Closed);
            }
            if let Some(id) = registered(&t) {
                return Err(ProbeError::AlreadyRegistered(id));
            }
        }
        // No breaker call under the lock: the listener is added outside it.
        let listener = breaker.add_listener(Arc::new(Wake(Arc::downgrade(self))));
        let mut t = self.lock();
        let duplicate = registered(&t);
        if t.closed || duplicate.is_some() {
            drop(t);
            breaker.remove_listener(listener);
            return Err(duplicate.map_or(ProbeError::Closed, ProbeError::AlreadyRegistered));
        }
        let id = ProbeId(t.next_id);
        t.next_id += 1;
        t.entries.push(Entry {
            id,
            breaker: Arc::downgrade(breaker),
            listener,
            callback,
            min_interval: duration_to_nanos(options.min_interval),
            not_before: 0,
            in_flight: None,
        });
        t.epoch += 1;
        drop(t);
        self.wake.notify_all();
        Ok(id)
    }

    fn remove(&self, id: ProbeId) -> Result<(), ProbeError> {
        let entry = {
            let mut t = self.lock();
            let Some(i) = t.entries.iter().position(|e| e.id == id) else {
                return Err(ProbeError::UnknownProbe(id));
            };
            t.epoch += 1;
            t.entries.swap_remove(i)
        };
        self.wake.notify_all();
        retire(entry);
        Ok(())
    }

    fn complete(&self, ticket: TicketId, outcome: Outcome) -> Result<Recorded, ProbeError> {
        let guard = {
            let mut t = self.lock();
            let Some(e) = t
                .entries
                .iter_mut()
                .find(|e| e.in_flight.as_ref().is_some_and(|f| f.ticket == ticket))
            else {
                return Err(ProbeError::UnknownTicket(ticket));
            };
            let Some(flight) = e.in_flight.take() else {
                return Err(ProbeError::UnknownTicket(ticket));
            };
            let now = flight.guard.breaker().clock().now();
            e.not_before = now.saturating_add(e.min_interval);
            t.epoch += 1;
            flight.guard
        };
        self.wake.notify_all();
        // Outside the lock: recording may make a transition, whose listener
        // takes the lock.
        Ok(guard.record(outcome))
    }

    /// The worker's loop: runs each due probe function, until closed.
    fn run_callbacks(&self) {
        while let Some((_, ticket, _)) = self.run_until(Kind::Callback, None) {
            let callback = {
                let t = self.lock();
                t.entries
                    .iter()
                    .find(|e| e.in_flight.as_ref().is_some_and(|f| f.ticket == ticket))
                    .and_then(|e| e.callback.clone())
            };
            let outcome = match callback {
                // A probe that panics says the dependency is not healthy;
                // the panic stays on this thread.
                Some(f) => catch_unwind(AssertUnwindSafe(|| f())).unwrap_or(Outcome::Failure),
                None => Outcome::Ignored,
            };
            // An unknown ticket: the probe was removed meanwhile.
            let _ = self.complete(ticket, outcome);
        }
    }

    /// Waits (until `until`, or for ever) for a probe of `kind` to be due,
    /// and starts it; `None` on timeout or once closed.
    fn run_until(
        &self,
        kind: Kind,
        until: Option<Instant>,
    ) -> Option<(ProbeId, TicketId, Arc<Breaker>)> {
        loop {
            let seen = self.lock().epoch;
            let wait = match self.look(kind) {
                Look::Start(probe, breaker) => match self.start(probe, breaker) {
                    Some(started) => return Some(started),
                    None => continue,
                },
                Look::Wait(w) => w,
            };
            let t = self.lock();
            if t.closed {
                return None;
            }
            if t.epoch != seen {
                // Something changed since the look: look again.
                continue;
            }
            let now = Instant::now();
            let left = match until {
                Some(u) if u <= now => return None,
                Some(u) => Some(u - now),
                None => None,
            };
            let sleep = match (wait, left) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // A poisoned wait still returns: the loop looks again.
            match sleep {
                Some(d) => drop(self.wake.wait_timeout(t, d)),
                None => drop(self.wake.wait(t)),
            }
        }
    }

    /// Looks for a due probe of `kind`, first releasing runs past their
    /// lease (as `Ignored`) and forgetting probes of breakers that are gone.
    fn look(&self, kind: Kind) -> Look {
        let (look, found) = self.scan_with(kind);
        if found.gone.is_empty() && found.expired.is_empty() {
            return look;
        }
        let mut released = Vec::new();
        let mut retired = Vec::new();
        {
            let mut t = self.lock();
            for e in t.entries.iter_mut() {
                if e.in_flight
                    .as_ref()
                    .is_some_and(|f| found.expired.contains(&f.ticket))
                {
                    released.extend(e.in_flight.take());
                }
            }
            let mut i = 0;
            while i < t.entries.len() {
                if found.gone.contains(&t.entries[i].id) {
                    retired.push(t.entries.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            t.epoch += 1;
        }
        // Outside the lock: dropping a guard records `Ignored`.
        drop(released);
        retired.into_iter().for_each(retire);
        Look::Wait(Some(Duration::ZERO))
    }

    fn scan(&self, kind: Kind) -> Look {
        self.scan_with(kind).0
    }

    /// The decision, changing nothing: the first probe of `kind` due now,
    /// or how long until the earliest is (a run in flight counts at its
    /// reclaim time).
    fn scan_with(&self, kind: Kind) -> (Look, Findings) {
        // Copied under the lock, decided outside it.
        let candidates: Vec<Candidate> = {
            let t = self.lock();
            t.entries
                .iter()
                .filter(|e| e.callback.is_some() == (kind == Kind::Callback))
                .map(|e| Candidate {
                    id: e.id,
                    breaker: e.breaker.upgrade(),
                    not_before: e.not_before,
                    flight: e.in_flight.as_ref().map(|f| (f.ticket, f.reclaim_at)),
                })
                .collect()
        };
        let mut found = Findings::default();
        let mut earliest: Option<Duration> = None;
        let mut start = None;
        for c in candidates {
            let Some(b) = c.breaker else {
                found.gone.push(c.id);
                continue;
            };
            let now = b.clock().now();
            let at = match c.flight {
                Some((ticket, reclaim_at)) => {
                    if now >= reclaim_at {
                        found.expired.push(ticket);
                    }
                    reclaim_at
                }
                None => match b.probe_due_at() {
                    Some(d) => d.max(c.not_before),
                    None => continue,
                },
            };
            if c.flight.is_none() && at <= now && start.is_none() {
                start = Some((c.id, b));
            }
            let w = Duration::from_nanos(at.saturating_sub(now));
            earliest = Some(earliest.map_or(w, |x| x.min(w)));
        }
        let look = match start {
            Some((id, b)) => Look::Start(id, b),
            None => Look::Wait(earliest),
        };
        (look, found)
    }

    /// Takes the half-open permit for probe `id` through the ordinary
    /// acquire and records the run; `None` when there is nothing to run
    /// after all (a user call took the slot first, the breaker closed, the
    /// probe went away).
    fn start(
        &self,
        id: ProbeId,
        breaker: Arc<Breaker>,
    ) -> Option<(ProbeId, TicketId, Arc<Breaker>)> {
        let now = breaker.clock().now();
        // Outside the lock: the acquire may move OPEN -> HALF_OPEN, whose
        // listener takes it.
        let acquired = Guard::acquire(breaker.clone());
        let lease = duration_to_nanos(breaker.config().probe_lease);
        let mut released = None;
        let started = {
            let mut t = self.lock();
            let t = &mut *t;
            let entry = t.entries.iter_mut().find(|e| e.id == id);
            match (entry, acquired) {
                (Some(e), Ok(g))
                    if e.in_flight.is_none() && g.permit().is_some_and(|p| p.is_probe()) =>
                {
                    let ticket = TicketId(t.next_id);
                    t.next_id += 1;
                    e.in_flight = Some(InFlight {
                        ticket,
                        guard: g,
                        reclaim_at: now.saturating_add(lease),
                    });
                    Some((id, ticket, breaker))
                }
                (Some(e), Err(rejected)) => {
                    // A user call holds the slot, or the deadline moved:
                    // not before the breaker says, nor the interval.
                    let after = rejected.retry_after.map_or(0, duration_to_nanos);
                    e.not_before = now.saturating_add(after.max(e.min_interval).max(RETRY_FLOOR));
                    None
                }
                (Some(e), Ok(g)) => {
                    // Not a probe (the breaker closed or took an override
                    // meanwhile) or another look started this probe first:
                    // release the permit as `Ignored`.
                    e.not_before = e
                        .not_before
                        .max(now.saturating_add(e.min_interval.max(RETRY_FLOOR)));
                    released = Some(g);
                    None
                }
                (None, g) => {
                    released = g.ok();
                    None
                }
            }
        };
        // Outside the lock: dropping a guard records `Ignored`.
        drop(released);
        started
    }
}

/// Releases what an entry holds, outside the prober's lock: its run in
/// flight (recorded `Ignored`) and its listener.
fn retire(mut e: Entry) {
    drop(e.in_flight.take());
    if let Some(b) = e.breaker.upgrade() {
        b.remove_listener(e.listener);
    }
}
