//! Transition events (B7): listeners and a bounded, pollable queue.
//!
//! A transition's winner calls every listener after the new state is
//! published (invariant 3), on its own thread, holding no lock: the listener
//! list is an `ArcSwapOption`, so reading it is a lock-free load and a
//! listener that reads or even changes the breaker cannot deadlock. Adding or
//! removing a listener copies the (short) list.
//!
//! Listeners are called in the order they were added; a breaker's own
//! listeners run before its registry's. Wrappers rely on this (a queue added
//! before a wake-up callback is filled before the callback runs).
//!
//! [`EventQueue`] is itself a listener: a fixed-capacity lock-free queue
//! (`crossbeam_queue::ArrayQueue`) that hosts poll. When it is full the event
//! is dropped and counted; pushing never blocks and never allocates.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::loom_shim::{process_wide, AtomicU64, Ordering::Relaxed};
use crossbeam_queue::ArrayQueue;

use crate::transition::Transition;

/// Receives every transition, on the thread that won it, after the new state
/// is published (B7). It runs on a caller's thread: keep it short.
pub trait Listener: Send + Sync {
    /// Called once per transition of the breaker named `breaker` (empty for
    /// an unnamed breaker). The name is shared: cloning it does not allocate.
    fn on_transition(&self, breaker: &Arc<str>, transition: &Transition);
}

impl<F: Fn(&Transition) + Send + Sync> Listener for F {
    fn on_transition(&self, _breaker: &Arc<str>, transition: &Transition) {
        self(transition)
    }
}

/// Identifies a registered listener, for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

type Entries = Vec<(ListenerId, Arc<dyn Listener>)>;

/// A copy-on-write list of listeners with lock-free reads.
#[derive(Default)]
pub(crate) struct ListenerSet {
    entries: ArcSwapOption<Entries>,
}

impl std::fmt::Debug for ListenerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.load().as_ref().map_or(0, |e| e.len());
        f.debug_struct("ListenerSet").field("len", &n).finish()
    }
}

static NEXT_ID: process_wide::AtomicU64 = process_wide::AtomicU64::new(1);

impl ListenerSet {
    pub(crate) fn add(&self, listener: Arc<dyn Listener>) -> ListenerId {
        let id = ListenerId(NEXT_ID.fetch_add(1, Relaxed));
        self.entries.rcu(|cur| {
            let mut v: Entries = cur.as_ref().map_or_else(Vec::new, |e| e.as_ref().clone());
            v.push((id, listener.clone()));
            Some(Arc::new(v))
        });
        id
    }

    pub(crate) fn remove(&self, id: ListenerId) -> bool {
        let mut found = false;
        self.entries.rcu(|cur| {
            let mut v: Entries = cur.as_ref().map_or_else(Vec::new, |e| e.as_ref().clone());
            let before = v.len();
            v.retain(|(i, _)| *i != id);
            found = v.len() != before;
            (!v.is_empty()).then(|| Arc::new(v))
        });
        found
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.load().is_none()
    }

    pub(crate) fn emit(&self, breaker: &Arc<str>, t: &Transition) {
        let guard = self.entries.load();
        if let Some(entries) = guard.as_ref() {
            for (_, l) in entries.iter() {
                l.on_transition(breaker, t);
            }
        }
    }
}

/// One transition of a named breaker, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The breaker's name (shared, not copied).
    pub breaker: Arc<str>,
    /// What happened.
    pub transition: Transition,
}

/// A bounded queue of events that hosts poll; attach it to a breaker or a
/// registry as a listener. Overflow drops the new event and counts it.
#[derive(Debug)]
pub struct EventQueue {
    queue: ArrayQueue<Event>,
    dropped: AtomicU64,
}

/// Largest queue a host may ask for.
pub const MAX_EVENT_QUEUE: usize = 1 << 20;

/// Capacity of an event queue whose host's user gives none (the wrappers'
/// default, published in the header as `CIRCUIT_EVENT_QUEUE_DEFAULT_CAPACITY`).
pub const DEFAULT_EVENT_QUEUE: usize = 1024;

impl EventQueue {
    /// A queue holding up to `capacity` events (1..=[`MAX_EVENT_QUEUE`]).
    pub fn new(capacity: usize) -> Result<EventQueue, crate::ConfigError> {
        if capacity == 0 || capacity > MAX_EVENT_QUEUE {
            return Err(crate::ConfigError {
                field: "event_queue_capacity",
                reason: format!("{capacity} must be in 1..={MAX_EVENT_QUEUE}"),
            });
        }
        Ok(EventQueue {
            queue: ArrayQueue::new(capacity),
            dropped: AtomicU64::new(0),
        })
    }

    /// The oldest event, if any.
    pub fn poll(&self) -> Option<Event> {
        self.queue.pop()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when no event waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

impl Listener for EventQueue {
    fn on_transition(&self, breaker: &Arc<str>, transition: &Transition) {
        let event = Event {
            breaker: breaker.clone(),
            transition: *transition,
        };
        if self.queue.push(event).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use crate::{Reason, State};

    fn t(generation: u32) -> Transition {
        Transition {
            from: State::Closed,
            to: State::Open,
            generation,
            reason: Reason::ConsecutiveFailures,
            at: 0,
            open_for: 0,
        }
    }

    #[test]
    fn queue_is_bounded_and_counts_overflow() {
        let q = EventQueue::new(2).unwrap();
        let name: Arc<str> = Arc::from("db");
        for g in 1..=5 {
            q.on_transition(&name, &t(g));
        }
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.poll().unwrap().transition.generation, 1);
        assert_eq!(&*q.poll().unwrap().breaker, "db");
        assert!(q.poll().is_none());
        assert!(EventQueue::new(0).is_err());
        assert!(EventQueue::new(MAX_EVENT_QUEUE + 1).is_err());
    }

    #[test]
    fn listeners_add_emit_remove() {
        let set = ListenerSet::default();
        assert!(set.is_empty());
        let seen = Arc::new(AtomicU64::new(0));
        let s2 = seen.clone();
        let id = set.add(Arc::new(move |_: &Transition| {
            s2.fetch_add(1, Relaxed);
        }));
        let name: Arc<str> = Arc::from("");
        set.emit(&name, &t(1));
        assert!(set.remove(id));
        assert!(!set.remove(id));
        set.emit(&name, &t(2));
        assert_eq!(seen.load(Relaxed), 1);
        assert!(set.is_empty());
    }
}
