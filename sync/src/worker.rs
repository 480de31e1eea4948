//! The worker thread: coalescing, writing, applying, reconciling.
//!
//! Per local breaker it keeps the version of the record it last applied or
//! wrote (`known`), and at most one pending local change (`pending`, the
//! latest wins). Rules:
//!
//! 1. State comes only from records read from (or returned by) Redis, after
//!    validation, never from a notice: a notice is a hint to read the
//!    record. A notice whose version is `known` or an older one of the same
//!    incarnation is counted as stale and causes nothing; any other notice
//!    (a newer version, another epoch, a forgery) queues a read of the
//!    record, and the hints gathered in one turn are read in one batch
//!    before anything is written. `known` holds only versions of records
//!    read or written, so no notice can hide later ones. A record read
//!    directly is the current one, so any version other than `known` is
//!    applied.
//! 2. While a breaker has a pending local change, remote states for it are
//!    deferred, not applied: the pending write decides. If the write is
//!    refused, the record in the reply (the current one) is applied; if the
//!    write is dropped, the deferred state is applied.
//! 3. A pending change is written only if the breaker's generation is still
//!    the one of the transition (otherwise a later local transition has
//!    replaced it, or a remote one superseded it).
//! 4. An automatic OPEN refused as stale is retried once against the
//!    version in the reply; a stale CLOSED or HALF_OPEN is dropped and the
//!    reply's record applied, so a delayed close never undoes a newer open.
//! 5. After every (re)subscribe: reconcile every local breaker, take the
//!    versions just read as the base of the pending changes, then flush.
//!    A record that disappeared (TTL, `FLUSHALL`, a restart without
//!    persistence) while the local breaker is not CLOSED is re-published
//!    from the local state.
//! 6. Nothing is ever created in the registry: notices for names not
//!    registered here are counted and dropped.
//! 7. One breaker never blocks the others: a write that fails for a reason
//!    of its own (a reply that does not parse, a script error, an argument
//!    refused) backs that breaker off alone (full jitter, doubling from
//!    `backoff_min` to `backoff_max`) and the flush goes on with the rest;
//!    failing breakers are written after the healthy ones. Only a lost
//!    connection, or a server that refuses every write (out of memory,
//!    read-only, no permission, loading), stops the flush.
//! 8. Every instance follows the record's open deadline: a record applied
//!    while the local breaker is OPEN brings the local deadline forward (by
//!    more than [`DEADLINE_TOLERANCE`]: so the processes of one host that
//!    share a breaker, each applying the same record, move it once), and
//!    each reconcile compares the local deadline of an OPEN breaker with its
//!    record's running episode: a local deadline later than the record's
//!    (by more than [`DEADLINE_TOLERANCE`]) is brought forward to it; an
//!    earlier one is the episode's earliest deadline, so it is written (the
//!    script keeps the earlier deadline) and the others follow.
//! 9. A breaker whose fleet policy is a quorum writes its local trip as a
//!    vote (write script rule 9): below the quorum nothing is written and
//!    the instance stays open locally only; its local HALF_OPEN and CLOSED
//!    are written only while the record is not CLOSED (rule 10), so an
//!    instance that tripped alone never closes the others. While any
//!    breaker has a quorum policy, the worker keeps the instance live in
//!    Redis with a heartbeat every third of `live_for`.
//! 10. Fleet configs ([`crate::fleetconf`]): the config records of the
//!     local breakers are read at every reconcile, when a breaker is first
//!     seen, and when a config notice names one (a hint, like rule 1). A
//!     valid record whose version differs from the last one applied or
//!     refused for that breaker is put in force with
//!     `Registry::reconfigure`; an invalid one changes nothing and is
//!     counted in `configs_refused` once per content (the digest of the
//!     last one refused is kept; a change counts again). Before the first
//!     fleet config it applies to a breaker, the worker keeps the config
//!     the breaker had (its local one); when the record is gone (withdrawn,
//!     notice or not), that config is put back through
//!     `Registry::reconfigure` and counted in `configs_applied`; a breaker
//!     that never had a fleet config applied is untouched. Nothing is
//!     created (rule 6).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use circuit_core::{Breaker, Reason, State, Transition};

use crate::config::Policies;
use crate::conn::{describe, CommandConn, Endpoint};
use crate::fleetconf::{ConfigRead, ConfigScripts};
use crate::keys::{encode_name, Namespace};
use crate::notice::Hint;
use crate::script::{AutoState, ForceMode, Read, Record, Version, WriteReply, WriteStatus};
use crate::store::{Limits, Scripts, WriteOp};
use crate::{Backoff, Event, Reg, Shared, SyncConfig, SyncStatus};
use circuit_core::retry::SplitMix64;

/// Longest wait for events in one loop turn (also bounds how late a stop
/// request is seen).
const TICK: Duration = Duration::from_millis(250);

/// Events handled per turn before the worker writes what is pending.
const DRAIN: usize = 4096;

/// A local open deadline this close to the record's counts as the same
/// (the conversion through server time is off by the read's latency).
pub(crate) const DEADLINE_TOLERANCE: Duration = Duration::from_millis(50);

/// Server errors that refuse every write, not just one breaker's.
const GLOBAL_ERRORS: [&str; 10] = [
    "OOM",
    "READONLY",
    "NOPERM",
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "MISCONF",
    "NOREPLICAS",
];

/// A remote state, from a validated record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Remote {
    version: Version,
    state: AutoState,
    open_remaining: Duration,
    force: Option<(ForceMode, Option<Duration>)>,
}

impl From<&Record> for Remote {
    fn from(r: &Record) -> Remote {
        Remote {
            version: r.version,
            state: r.state,
            open_remaining: r.open_remaining,
            force: r.force,
        }
    }
}

/// What a pending local change writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Auto(AutoState),
    Force(ForceMode),
    Clear,
}

impl Kind {
    /// Which transitions are published, and as what (the rest are local
    /// bookkeeping or came from the fleet).
    fn of(t: &Transition) -> Option<Kind> {
        match t.reason {
            // A restored snapshot is this instance's past, not news for
            // the fleet (whose record it reconciles with as usual).
            Reason::Remote
            | Reason::Restored
            | Reason::OverrideExpired
            | Reason::ShadowTrip
            | Reason::ProbeLeaseExpired => None,
            Reason::OverrideSet => match t.to {
                State::ForcedOpen => Some(Kind::Force(ForceMode::Open)),
                State::ForcedClosed => Some(Kind::Force(ForceMode::Closed)),
                State::Disabled => Some(Kind::Force(ForceMode::Disabled)),
                State::MetricsOnly => Some(Kind::Force(ForceMode::MetricsOnly)),
                _ => None,
            },
            Reason::OverrideCleared | Reason::Reset => Some(Kind::Clear),
            _ => match t.to {
                State::Open => Some(Kind::Auto(AutoState::Open)),
                State::HalfOpen => Some(Kind::Auto(AutoState::HalfOpen)),
                State::Closed => Some(Kind::Auto(AutoState::Closed)),
                _ => None,
            },
        }
    }

    /// Written at once (no coalescing linger).
    fn urgent(self) -> bool {
        !matches!(
            self,
            Kind::Auto(AutoState::Closed) | Kind::Auto(AutoState::HalfOpen)
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    kind: Kind,
    generation: u32,
    /// Local clock: when the transition happened and its open window.
    at: u64,
    open_for: u64,
    queued: Instant,
    /// The version the change was decided on.
    base: Option<Version>,
    /// No (further) retry of a stale OPEN: set after the one retry, and for
    /// deadline repairs, which only ever bring a running window forward.
    retried: bool,
}

#[derive(Debug)]
struct Tracked {
    enc: String,
    known: Option<Version>,
    pending: Option<Pending>,
    deferred: Option<Remote>,
    /// Consecutive failed writes of the pending change (rule 7).
    failures: u32,
    /// Not written again before this (rule 7).
    retry_at: Option<Instant>,
    /// The fleet config record last applied or refused (rule 10).
    config: Option<Version>,
    /// Digest of the invalid config record last counted (rule 10).
    config_refused: Option<u64>,
}

/// The token bucket on top of all writes.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub(crate) struct Worker {
    registry: Reg,
    cfg: SyncConfig,
    ns: Namespace,
    endpoint: Endpoint,
    shared: Arc<Shared>,
    rx: Receiver<Event>,
    overflow: Arc<AtomicBool>,
    origin: String,
    scripts: Scripts,
    limits: Limits,
    conn: Option<CommandConn>,
    /// Earliest time of the next connect attempt, or of the next write
    /// after a server error (full, read-only).
    retry_at: Instant,
    backoff: Backoff,
    ever_connected: bool,
    subscribed: bool,
    /// A full reconcile is owed (after (re)subscribe or reconnect).
    resync: bool,
    /// The last read (reconcile) was refused by the server.
    read_trouble: bool,
    /// The server refused a write for a reason that holds for every write
    /// (out of memory, read-only replica, ACL); cleared by a successful
    /// write or when nothing waits.
    write_trouble: bool,
    /// Breakers named by notices since the last read (rule 1).
    hinted: HashSet<Arc<str>>,
    next_reconcile: Instant,
    tracked: HashMap<Arc<str>, Tracked>,
    by_enc: HashMap<String, Arc<str>>,
    dirty: HashSet<Arc<str>>,
    seen_len: usize,
    bucket: Bucket,
    rng: SplitMix64,
    policies: Arc<Policies>,
    /// When the next heartbeat is due (rule 9).
    next_beat: Instant,
    config_scripts: ConfigScripts,
    /// Breakers named by config notices since the last read (rule 10).
    config_hinted: HashSet<Arc<str>>,
    /// Per name, the config its breaker had before the first fleet config
    /// applied to it, until the record is withdrawn (rule 10). Kept by
    /// name, not in `Tracked`: it outlives a breaker removed meanwhile.
    local_configs: HashMap<Arc<str>, circuit_core::Config>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        registry: Reg,
        cfg: SyncConfig,
        ns: Namespace,
        endpoint: Endpoint,
        shared: Arc<Shared>,
        rx: Receiver<Event>,
        overflow: Arc<AtomicBool>,
        origin: String,
        policies: Arc<Policies>,
    ) -> Worker {
        let max_ms = ms(cfg.max_open).max(1);
        let limits = Limits {
            max_ms,
            // Longer than the longest window plus two reconcile periods.
            ttl_ms: max_ms
                .saturating_add(ms(cfg.reconcile_every).saturating_mul(2))
                .saturating_add(60_000),
            grace_ms: ms(cfg.half_open_grace),
        };
        let now = Instant::now();
        Worker {
            bucket: Bucket {
                tokens: f64::from(cfg.writes_per_sec),
                rate: f64::from(cfg.writes_per_sec),
                last: now,
            },
            backoff: Backoff::new(cfg.backoff_min, cfg.backoff_max),
            registry,
            ns,
            endpoint,
            shared,
            rx,
            overflow,
            origin,
            scripts: Scripts::new(),
            limits,
            conn: None,
            retry_at: now,
            ever_connected: false,
            subscribed: false,
            resync: true,
            read_trouble: false,
            write_trouble: false,
            hinted: HashSet::new(),
            next_reconcile: now + cfg.reconcile_every,
            tracked: HashMap::new(),
            by_enc: HashMap::new(),
            dirty: HashSet::new(),
            seen_len: usize::MAX,
            rng: SplitMix64::from_entropy(),
            policies,
            next_beat: now,
            config_scripts: ConfigScripts::new(),
            config_hinted: HashSet::new(),
            local_configs: HashMap::new(),
            cfg,
        }
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn run(mut self) {
        while !self.stopping() {
            let timeout = self.wait_time();
            match self.rx.recv_timeout(timeout) {
                Ok(ev) => self.handle(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            for _ in 0..DRAIN {
                match self.rx.try_recv() {
                    Ok(ev) => self.handle(ev),
                    Err(_) => break,
                }
            }
            if self.stopping() {
                break;
            }
            if self.overflow.swap(false, Ordering::Relaxed) {
                Shared::bump(&self.shared.overflows);
                self.rescan_local();
            }
            self.track_new_breakers();
            self.step();
            self.publish_status();
        }
    }

    fn wait_time(&self) -> Duration {
        let now = Instant::now();
        let mut until = now + TICK;
        let blocked = self.conn.is_none() || self.read_trouble || self.write_trouble;
        if blocked {
            until = until.min(self.retry_at.max(now));
        }
        if self.conn.is_some() && !self.resync {
            until = until.min(self.next_reconcile);
        }
        if !blocked && self.subscribed {
            if !self.hinted.is_empty() {
                return Duration::ZERO;
            }
            for name in &self.dirty {
                if let Some(tr) = self.tracked.get(name) {
                    if let Some(p) = tr.pending {
                        until = until.min(self.due_at(tr, &p));
                    }
                }
            }
        }
        until.saturating_duration_since(now)
    }

    /// When a pending change may be written: at once for OPEN and operator
    /// actions, after the linger for the rest, not before its own retry
    /// time after a failure (rule 7).
    fn due_at(&self, tr: &Tracked, p: &Pending) -> Instant {
        let at = if p.kind.urgent() {
            p.queued
        } else {
            p.queued + self.cfg.coalesce
        };
        tr.retry_at.map_or(at, |r| r.max(at))
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Local(name, t) => self.local(name, &t),
            Event::Hint(h) => self.hint(&h),
            Event::ConfigHint(enc) => self.config_hint(&enc),
            Event::Subscribed => {
                self.subscribed = true;
                self.resync = true;
            }
            Event::SubscriberDown => self.subscribed = false,
            Event::Wake => {}
        }
    }

    fn track(&mut self, name: &Arc<str>) -> &mut Tracked {
        if !self.tracked.contains_key(name) {
            let enc = encode_name(name);
            self.by_enc.insert(enc.clone(), name.clone());
            self.tracked.insert(
                name.clone(),
                Tracked {
                    enc,
                    known: None,
                    pending: None,
                    deferred: None,
                    failures: 0,
                    retry_at: None,
                    config: None,
                    config_refused: None,
                },
            );
        }
        self.tracked.get_mut(name).expect("just inserted")
    }

    fn local(&mut self, name: Arc<str>, t: &Transition) {
        let Some(kind) = Kind::of(t) else {
            return;
        };
        let tr = self.track(&name);
        let had = tr.pending.is_some();
        tr.pending = Some(Pending {
            kind,
            generation: t.generation,
            at: t.at,
            open_for: t.open_for,
            queued: Instant::now(),
            base: tr.known,
            retried: false,
        });
        if !had {
            self.shared.pending.fetch_add(1, Ordering::Relaxed);
        }
        self.dirty.insert(name);
    }

    /// A notice: at most a read of the record (rule 1).
    fn hint(&mut self, h: &Hint) {
        let name = match self.by_enc.get(&h.enc) {
            Some(name) => name.clone(),
            None => match self.registry.get(&h.enc) {
                // A plain name registered since the last scan.
                Some(b) if encode_name(b.name()) == h.enc => b.name().clone(),
                _ => {
                    Shared::bump(&self.shared.unknown_ignored);
                    return;
                }
            },
        };
        let tr = self.track(&name);
        let seen = tr
            .known
            .is_some_and(|k| k.epoch == h.version.epoch && h.version.ver <= k.ver);
        if seen {
            Shared::bump(&self.shared.stale_ignored);
            return;
        }
        self.hinted.insert(name);
    }

    /// A config notice: a read of the breaker's config record (rule 10).
    fn config_hint(&mut self, enc: &str) {
        let name = match self.by_enc.get(enc) {
            Some(name) => name.clone(),
            None => match self.registry.get(enc) {
                Some(b) if encode_name(b.name()) == enc => b.name().clone(),
                _ => {
                    Shared::bump(&self.shared.unknown_ignored);
                    return;
                }
            },
        };
        self.track(&name);
        self.config_hinted.insert(name);
    }

    /// Reads the config records of `names` and applies the new ones
    /// (rule 10).
    fn reconcile_configs(&mut self, names: &[Arc<str>]) -> Result<(), ()> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(());
        };
        let refs: Vec<&str> = names.iter().map(|n| &**n).collect();
        let reads = match self
            .config_scripts
            .read_digests(&mut **conn, &self.ns, &refs)
        {
            Ok(r) => r,
            Err(e) => {
                self.failed("config read", false, &e);
                return Err(());
            }
        };
        for (name, (read, digest)) in names.iter().zip(reads) {
            match read {
                ConfigRead::Missing => {
                    let tr = self.track(name);
                    tr.config = None;
                    tr.config_refused = None;
                    self.withdrawn(name);
                }
                ConfigRead::Bad(why) => {
                    let tr = self.track(name);
                    if tr.config_refused == Some(digest) {
                        continue;
                    }
                    tr.config_refused = Some(digest);
                    Shared::bump(&self.shared.configs_refused);
                    self.shared
                        .error(format!("fleet config of {name:?} refused: {why}"));
                }
                ConfigRead::Found(rec) => {
                    let tr = self.track(name);
                    tr.config_refused = None;
                    if tr.config == Some(rec.version) {
                        continue;
                    }
                    let Some(b) = self.registry.get(name) else {
                        // Removed meanwhile: read again if it comes back.
                        continue;
                    };
                    self.track(name).config = Some(rec.version);
                    let local = b.config().clone();
                    match self.registry.reconfigure(name, rec.config) {
                        Ok(()) => {
                            self.local_configs.entry(name.clone()).or_insert(local);
                            Shared::bump(&self.shared.configs_applied);
                        }
                        Err(e) => {
                            Shared::bump(&self.shared.configs_refused);
                            self.shared
                                .error(format!("fleet config of {name:?} refused: {e}"));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The fleet config record of `name` is gone: puts back the config its
    /// breaker had before the first fleet config applied (rule 10).
    fn withdrawn(&mut self, name: &Arc<str>) {
        let Some(local) = self.local_configs.remove(name) else {
            return;
        };
        match self.registry.reconfigure(name, local) {
            Ok(()) => Shared::bump(&self.shared.configs_applied),
            Err(e) => {
                Shared::bump(&self.shared.configs_refused);
                self.shared.error(format!(
                    "local config of {name:?} not restored after the fleet config was withdrawn: {e}"
                ));
            }
        }
    }

    /// Reads the records the notices of this turn named, in one batch.
    fn read_hinted(&mut self) -> Result<(), ()> {
        let names: Vec<Arc<str>> = std::mem::take(&mut self.hinted).into_iter().collect();
        let r = self.reconcile(&names, false);
        if r.is_err() && self.conn.is_some() {
            // A refused read: try again after the back-off.
            self.hinted.extend(names);
        }
        r
    }

    /// Makes the local breaker follow `r` (with `Reason::Remote`).
    fn apply(&mut self, name: &Arc<str>, r: &Remote) {
        let Some(b) = self.registry.get(name) else {
            return;
        };
        if apply_to(&b, r, self.cfg.max_open) {
            Shared::bump(&self.shared.applied);
        }
    }

    // ----- connection ------------------------------------------------------

    fn step(&mut self) {
        let now = Instant::now();
        if self.conn.is_none() {
            if now < self.retry_at {
                return;
            }
            match self
                .endpoint
                .command(self.cfg.connect_timeout, self.cfg.io_timeout)
            {
                Ok(c) => {
                    self.conn = Some(c);
                    self.resync = true;
                    if self.ever_connected {
                        Shared::bump(&self.shared.reconnects);
                    }
                    self.ever_connected = true;
                }
                Err(e) => {
                    self.shared.error(format!("connect: {e}"));
                    self.retry_at = now + self.backoff.next_delay();
                    return;
                }
            }
        }
        if (self.read_trouble || self.write_trouble) && now < self.retry_at {
            return;
        }
        // SYNC.md reconnect order: subscribed, reconciled, then flushed.
        if !self.subscribed {
            return;
        }
        if self.resync {
            if self.reconcile_all(true).is_err() {
                return;
            }
            self.resync = false;
        } else if now >= self.next_reconcile && self.reconcile_all(false).is_err() {
            return;
        }
        if !self.hinted.is_empty() && self.read_hinted().is_err() {
            return;
        }
        if !self.config_hinted.is_empty() {
            let names: Vec<Arc<str>> = std::mem::take(&mut self.config_hinted)
                .into_iter()
                .collect();
            if self.reconcile_configs(&names).is_err() {
                self.config_hinted.extend(names);
                return;
            }
        }
        self.beat(now);
        self.flush(false);
    }

    /// Rule 9: keeps this instance live for quorum votes.
    fn beat(&mut self, now: Instant) {
        if now < self.next_beat || !self.policies.any_quorum() {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let live_for = self.cfg.live_for;
        match self
            .scripts
            .heartbeat(&mut **conn, &self.ns, &self.origin, live_for)
        {
            Ok(_) => self.next_beat = now + live_for / 3,
            Err(e) if is_connection_error(&e) => self.failed("heartbeat", false, &e),
            Err(e) => {
                self.shared.error(format!("heartbeat: {}", describe(&e)));
                self.next_beat = now + live_for / 3;
            }
        }
    }

    fn publish_status(&self) {
        let failing = self
            .dirty
            .iter()
            .any(|n| self.tracked.get(n).is_some_and(|t| t.failures > 0));
        let ok = self.conn.is_some()
            && self.subscribed
            && !self.resync
            && !self.read_trouble
            && !self.write_trouble
            && !failing;
        self.shared.set_status(if ok {
            SyncStatus::Connected
        } else {
            SyncStatus::Degraded
        });
    }

    /// Handles a failed call: a connection error drops the connection; a
    /// server error (out of memory, read-only replica, ACL) keeps it but
    /// backs off. Both leave the pending changes in place.
    fn failed(&mut self, what: &str, write: bool, e: &redis::RedisError) {
        self.shared.error(format!("{what}: {}", describe(e)));
        if is_connection_error(e) {
            self.conn = None;
            self.resync = true;
        } else if write {
            self.write_trouble = true;
        } else {
            self.read_trouble = true;
        }
        self.retry_at = Instant::now() + self.backoff.next_delay();
    }

    fn succeeded(&mut self, write: bool) {
        if write {
            self.write_trouble = false;
        } else {
            self.read_trouble = false;
        }
        if !self.read_trouble && !self.write_trouble {
            self.backoff.reset();
        }
    }

    // ----- reconciliation --------------------------------------------------

    /// Tracks breakers registered since the last look and reconciles them.
    fn track_new_breakers(&mut self) {
        let len = self.registry.len();
        if len == self.seen_len {
            return;
        }
        self.seen_len = len;
        let mut fresh = Vec::new();
        self.registry.for_each(|name, _| {
            if !self.tracked.contains_key(name) {
                fresh.push(name.clone());
            }
        });
        for n in &fresh {
            self.track(n);
        }
        if !fresh.is_empty() && self.conn.is_some() && self.subscribed && !self.resync {
            let _ = self.reconcile(&fresh, false);
            let _ = self.reconcile_configs(&fresh);
        }
    }

    fn reconcile_all(&mut self, after_subscribe: bool) -> Result<(), ()> {
        let mut names = Vec::with_capacity(self.registry.len());
        self.registry.for_each(|n, _| names.push(n.clone()));
        let live: HashSet<&Arc<str>> = names.iter().collect();
        let gone: Vec<Arc<str>> = self
            .tracked
            .keys()
            .filter(|n| !live.contains(n))
            .cloned()
            .collect();
        for n in gone {
            if let Some(t) = self.tracked.remove(&n) {
                self.by_enc.remove(&t.enc);
                if t.pending.is_some() {
                    self.shared.pending.fetch_sub(1, Ordering::Relaxed);
                }
            }
            self.dirty.remove(&n);
        }
        for n in &names {
            self.track(n);
        }
        let mut r = self.reconcile(&names, after_subscribe);
        if r.is_ok() {
            // Every record was just read: the hints are answered.
            self.hinted.clear();
            r = self.reconcile_configs(&names);
            if r.is_ok() {
                self.config_hinted.clear();
            }
        }
        let jitter = 1.0 + self.cfg.reconcile_jitter * (2.0 * self.rng.next_f64() - 1.0);
        self.next_reconcile = Instant::now() + self.cfg.reconcile_every.mul_f64(jitter);
        r
    }

    fn reconcile(&mut self, names: &[Arc<str>], after_subscribe: bool) -> Result<(), ()> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(());
        };
        let refs: Vec<&str> = names.iter().map(|n| &**n).collect();
        let (_, reads) = match self.scripts.read(&mut **conn, &self.ns, &refs) {
            Ok(r) => r,
            Err(e) => {
                self.failed("reconcile", false, &e);
                return Err(());
            }
        };
        self.succeeded(false);
        for (name, read) in names.iter().zip(reads) {
            let record = match read {
                Read::Found(r) => Some(r),
                Read::Missing => None,
                Read::Corrupt => {
                    Shared::bump(&self.shared.malformed_ignored);
                    None
                }
            };
            self.reconciled(name, record.as_ref(), after_subscribe);
        }
        Ok(())
    }

    fn reconciled(&mut self, name: &Arc<str>, record: Option<&Record>, after_subscribe: bool) {
        let Some(b) = self.registry.get(name) else {
            return;
        };
        let tr = self.track(name);
        let current = record.map(|r| r.version);
        match (&mut tr.pending, record) {
            (Some(p), _) => {
                if after_subscribe {
                    // Rule 5: flush against the version just read.
                    p.base = current;
                    tr.known = current;
                    tr.deferred = None;
                } else if current != tr.known {
                    tr.deferred = record.map(Remote::from);
                }
            }
            (None, Some(r)) => {
                if Some(r.version) != tr.known {
                    tr.known = Some(r.version);
                    let remote = Remote::from(r);
                    self.apply(name, &remote);
                } else {
                    self.align_deadline(name, &b, r);
                }
            }
            (None, None) => {
                let lost = tr.known.is_some();
                tr.known = None;
                if lost {
                    self.republish(name, &b);
                }
            }
        }
    }

    /// Rule 8: the record is the one already applied; if its open episode
    /// and the local OPEN disagree on the deadline, the earlier one wins.
    fn align_deadline(&mut self, name: &Arc<str>, b: &Breaker, r: &Record) {
        if r.force.is_some() || r.state != AutoState::Open || r.open_remaining.is_zero() {
            return;
        }
        let Some(deadline) = b.open_deadline() else {
            return;
        };
        let now = self.registry.clock().now();
        let local = Duration::from_nanos(deadline.saturating_sub(now));
        let fleet = r.open_remaining.min(self.cfg.max_open);
        if local > fleet + DEADLINE_TOLERANCE {
            if b.shorten_open(fleet) {
                Shared::bump(&self.shared.applied);
            }
        } else if fleet > local + DEADLINE_TOLERANCE && !local.is_zero() {
            let known = self.tracked.get(name).and_then(|t| t.known);
            self.republish(name, b);
            if let Some(p) = self.tracked.get_mut(name).and_then(|t| t.pending.as_mut()) {
                p.base = known;
                p.retried = true;
            }
        }
    }

    /// A record this instance had seen is gone: write the local state again
    /// (rule 5).
    fn republish(&mut self, name: &Arc<str>, b: &Breaker) {
        let state = b.state();
        let kind = match state {
            State::Closed => return,
            State::Open => Kind::Auto(AutoState::Open),
            State::HalfOpen => Kind::Auto(AutoState::HalfOpen),
            State::ForcedOpen => Kind::Force(ForceMode::Open),
            State::ForcedClosed => Kind::Force(ForceMode::Closed),
            State::Disabled => Kind::Force(ForceMode::Disabled),
            State::MetricsOnly => Kind::Force(ForceMode::MetricsOnly),
        };
        let now = self.registry.clock().now();
        let open_for = b.open_deadline().map_or(0, |d| d.saturating_sub(now));
        let shared = self.shared.clone();
        let tr = self.track(name);
        if tr.pending.is_none() {
            shared.pending.fetch_add(1, Ordering::Relaxed);
        }
        tr.pending = Some(Pending {
            kind,
            generation: b.generation(),
            at: now,
            open_for,
            queued: Instant::now(),
            base: None,
            retried: false,
        });
        self.dirty.insert(name.clone());
    }

    /// After a channel overflow: every breaker whose state differs from its
    /// last known record is treated as changed locally.
    fn rescan_local(&mut self) {
        let mut all = Vec::new();
        self.registry
            .for_each(|n, b| all.push((n.clone(), b.clone())));
        for (name, b) in all {
            let tr = self.track(&name);
            if tr.pending.is_some() {
                continue;
            }
            // Without the record at hand, publish anything not CLOSED and
            // let the script's rules sort it out.
            if b.state() != State::Closed {
                let known = tr.known;
                self.republish(&name, &b);
                if let Some(p) = self.tracked.get_mut(&name).and_then(|t| t.pending.as_mut()) {
                    p.base = known;
                }
            }
        }
    }

    // ----- writing ---------------------------------------------------------

    /// Writes every due pending change (all of them when `all`).
    fn flush(&mut self, all: bool) {
        if self.dirty.is_empty() {
            // Nothing waits to be written: no write is being refused.
            self.write_trouble = false;
            return;
        }
        let now = Instant::now();
        let mut due: Vec<(bool, bool, Arc<str>)> = self
            .dirty
            .iter()
            .filter_map(|n| {
                let tr = self.tracked.get(n)?;
                let p = tr.pending?;
                let ready = if all {
                    tr.retry_at.is_none_or(|r| now >= r)
                } else {
                    now >= self.due_at(tr, &p)
                };
                ready.then(|| (tr.failures > 0, !p.kind.urgent(), n.clone()))
            })
            .collect();
        // Healthy before failing (rule 7); OPEN and operator actions first.
        due.sort();
        for (_, _, name) in due {
            if self.conn.is_none() || (self.write_trouble && Instant::now() < self.retry_at) {
                return;
            }
            if !self.bucket.take() {
                return;
            }
            self.write_one(&name);
        }
    }

    fn finish(&mut self, name: &Arc<str>) {
        if let Some(tr) = self.tracked.get_mut(name) {
            if tr.pending.take().is_some() {
                self.shared.pending.fetch_sub(1, Ordering::Relaxed);
            }
            tr.failures = 0;
            tr.retry_at = None;
        }
        self.dirty.remove(name);
    }

    fn write_one(&mut self, name: &Arc<str>) {
        let Some(p) = self.tracked.get(name).and_then(|t| t.pending) else {
            self.dirty.remove(name);
            return;
        };
        let breaker = self.registry.get(name);
        let b = match breaker {
            Some(b) if b.generation() == p.generation => b,
            _ => {
                // Rule 3: superseded.
                self.finish(name);
                self.apply_deferred(name);
                return;
            }
        };
        let clock_now = self.registry.clock().now();
        let quorum = self.policies.quorum(name);
        let op = match p.kind {
            Kind::Auto(AutoState::Open) => {
                let deadline = b
                    .open_deadline()
                    .unwrap_or_else(|| p.at.saturating_add(p.open_for));
                let left = deadline.saturating_sub(clock_now);
                if left == 0 {
                    // The window is over locally: nothing left to share.
                    self.finish(name);
                    self.apply_deferred(name);
                    return;
                }
                let open_for = Duration::from_nanos(left).min(self.cfg.max_open);
                let expect = p.base.unwrap_or(Version::MISSING);
                match quorum {
                    // Rule 9: a vote.
                    Some(quorum) => WriteOp::Vote {
                        open_for,
                        expect,
                        quorum,
                        live_for: self.cfg.live_for,
                    },
                    None => WriteOp::Auto {
                        to: AutoState::Open,
                        open_for,
                        expect,
                    },
                }
            }
            Kind::Auto(to) if quorum.is_some() => WriteOp::Follow {
                to,
                expect: p.base.unwrap_or(Version::MISSING),
            },
            Kind::Auto(to) => WriteOp::Auto {
                to,
                open_for: Duration::ZERO,
                expect: p.base.unwrap_or(Version::MISSING),
            },
            Kind::Force(mode) => WriteOp::Force {
                mode,
                duration: override_left(&b, clock_now),
            },
            Kind::Clear => WriteOp::Clear,
        };
        let conn = self.conn.as_mut().expect("checked by flush");
        let reply = self
            .scripts
            .write(&mut **conn, &self.ns, name, op, &self.origin, self.limits);
        let reply = match reply {
            Ok(r) => r,
            Err(e)
                if is_connection_error(&e)
                    || e.code().is_some_and(|c| GLOBAL_ERRORS.contains(&c)) =>
            {
                self.failed("write", true, &e);
                return;
            }
            Err(e) => {
                self.failed_one(name, &e);
                return;
            }
        };
        self.succeeded(true);
        if reply.repaired {
            Shared::bump(&self.shared.repaired);
        }
        if let Some(tr) = self.tracked.get_mut(name) {
            tr.failures = 0;
            tr.retry_at = None;
        }
        self.written(name, p, reply);
    }

    /// Rule 7: a write that failed for a reason of this breaker's own backs
    /// off this breaker only.
    fn failed_one(&mut self, name: &Arc<str>, e: &redis::RedisError) {
        self.shared
            .error(format!("write of breaker {name:?}: {}", describe(e)));
        if let Some(tr) = self.tracked.get_mut(name) {
            let pause =
                crate::backoff::delay_after(self.backoff.policy(), tr.failures, &mut self.rng);
            tr.failures = tr.failures.saturating_add(1);
            // Full jitter, but never sooner than the minimum.
            tr.retry_at = Some(Instant::now() + pause.max(self.cfg.backoff_min));
        }
    }

    fn written(&mut self, name: &Arc<str>, p: Pending, reply: WriteReply) {
        let current = reply.record.as_ref().map(|r| r.version);
        match reply.status {
            WriteStatus::Ok => {
                Shared::bump(&self.shared.published);
                if let Some(tr) = self.tracked.get_mut(name) {
                    tr.known = current;
                    tr.deferred = None;
                }
                self.finish(name);
            }
            WriteStatus::Stale if p.kind == Kind::Auto(AutoState::Open) && !p.retried => {
                // Rule 4: one retry against the current version.
                if let Some(tr) = self.tracked.get_mut(name) {
                    tr.known = current;
                    if let Some(pp) = tr.pending.as_mut() {
                        pp.base = current;
                        pp.retried = true;
                    }
                }
                if self.bucket.take() {
                    self.write_one(name);
                }
            }
            WriteStatus::Votes => {
                // Rule 9: below the quorum; open here only.
                Shared::bump(&self.shared.votes);
                self.finish(name);
            }
            WriteStatus::Idle => self.finish(name),
            WriteStatus::Collision => {
                self.shared.error(format!(
                    "breaker {:?}: its key belongs to another name (digest collision)",
                    name
                ));
                Shared::bump(&self.shared.refused);
                self.finish(name);
            }
            WriteStatus::Stale | WriteStatus::Running | WriteStatus::Override => {
                Shared::bump(&self.shared.refused);
                self.finish(name);
                if let Some(tr) = self.tracked.get_mut(name) {
                    tr.known = current;
                    tr.deferred = None;
                }
                if let Some(r) = &reply.record {
                    let remote = Remote::from(r);
                    self.apply(name, &remote);
                }
            }
        }
    }

    fn apply_deferred(&mut self, name: &Arc<str>) {
        let Some(tr) = self.tracked.get_mut(name) else {
            return;
        };
        if let Some(r) = tr.deferred.take() {
            if tr.known.is_none_or(|k| r.version != k) {
                tr.known = Some(r.version);
                self.apply(name, &r);
            }
        }
    }
}

/// Time left of the breaker's override, `None` when it has no expiry.
fn override_left(b: &Breaker, now: u64) -> Option<Duration> {
    b.override_deadline()
        .map(|d| Duration::from_nanos(d.saturating_sub(now).max(1_000_000)))
}

/// The local effect of a remote state (SYNC.md "Time": a remote deadline
/// becomes `now_local + clamp(remaining, 0, max_open)`). Returns true when
/// the breaker changed.
fn apply_to(b: &Breaker, r: &Remote, max_open: Duration) -> bool {
    let clamp = |d: Duration| d.min(max_open);
    if let Some((mode, left)) = r.force {
        let target = mode.to_state();
        return b.state() != target && b.apply_remote(target, left.map(clamp));
    }
    let mut changed = false;
    let mut cur = b.state();
    if !matches!(cur, State::Closed | State::Open | State::HalfOpen) {
        // The record has no override: an operator cleared it.
        changed |= b.apply_remote(State::Closed, None);
        cur = b.state();
    }
    changed
        | match r.state {
            AutoState::Open => {
                let left = clamp(r.open_remaining);
                if cur == State::Open {
                    // The fleet's first failure defines the expiry: only
                    // ever brought forward, and not for a difference within
                    // the tolerance (rule 8): that is this episode's own
                    // deadline read back, e.g. on a host-shared breaker
                    // whose record another process of the host applied
                    // already, where moving it would be a second transition
                    // of the one shared breaker.
                    let target = b
                        .clock()
                        .now()
                        .saturating_add(u64::try_from(left.as_nanos()).unwrap_or(u64::MAX));
                    let tolerance = u64::try_from(DEADLINE_TOLERANCE.as_nanos()).unwrap_or(0);
                    match b.open_deadline() {
                        Some(d) if d <= target.saturating_add(tolerance) => false,
                        _ => b.shorten_open(left),
                    }
                } else if !left.is_zero() {
                    b.apply_remote(State::Open, Some(left))
                } else {
                    false
                }
            }
            AutoState::HalfOpen => cur == State::Open && b.apply_remote(State::HalfOpen, None),
            AutoState::Closed => {
                matches!(cur, State::Open | State::HalfOpen) && b.apply_remote(State::Closed, None)
            }
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use circuit_core::{Config, ManualClock, Outcome, Override, Registry, RegistryOptions};

    fn registry(clock: Arc<ManualClock>) -> Registry {
        let defaults = Config::builder()
            .consecutive_failures(Some(1))
            .open_duration(Duration::from_secs(10))
            .max_open_duration(Duration::from_secs(60))
            .jitter(0.0)
            .build()
            .unwrap();
        Registry::with_clock(
            RegistryOptions {
                defaults,
                ..RegistryOptions::default()
            },
            clock,
        )
    }

    fn remote(
        state: AutoState,
        open_ms: u64,
        force: Option<(ForceMode, Option<Duration>)>,
    ) -> Remote {
        Remote {
            version: Version { epoch: 1, ver: 1 },
            state,
            open_remaining: Duration::from_millis(open_ms),
            force,
        }
    }

    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn a_remote_open_sets_the_local_deadline_from_the_remaining_time() {
        let clock = Arc::new(ManualClock::new(1_000_000_000));
        let r = registry(clock.clone());
        let b = r.get_or_create("x").unwrap();
        assert!(apply_to(&b, &remote(AutoState::Open, 2_000, None), MAX));
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.open_deadline(), Some(1_000_000_000 + 2_000_000_000));
        // The same record again changes nothing.
        assert!(!apply_to(&b, &remote(AutoState::Open, 2_000, None), MAX));
        // Clamped to the sync maximum (and the breaker's own).
        let c = r.get_or_create("y").unwrap();
        apply_to(
            &c,
            &remote(AutoState::Open, 10_000_000, None),
            Duration::from_secs(5),
        );
        assert_eq!(c.open_deadline(), Some(1_000_000_000 + 5_000_000_000));
    }

    #[test]
    fn a_remote_open_within_the_tolerance_of_the_local_deadline_moves_nothing() {
        // What the second process of a host sees when the first applied
        // the same record to their shared breaker a moment before.
        let clock = Arc::new(ManualClock::new(0));
        let r = registry(clock.clone());
        let b = r.get_or_create("x").unwrap();
        assert!(apply_to(&b, &remote(AutoState::Open, 2_000, None), MAX));
        let deadline = b.open_deadline();
        let events = r.event_queue(8).unwrap();
        clock.advance(Duration::from_millis(5));
        // 40 ms earlier than the local deadline: within the tolerance.
        assert!(!apply_to(&b, &remote(AutoState::Open, 1_955, None), MAX));
        assert_eq!(b.open_deadline(), deadline);
        assert!(events.poll().is_none(), "no transition");
        // 100 ms earlier: brought forward.
        assert!(apply_to(&b, &remote(AutoState::Open, 1_895, None), MAX));
        assert_eq!(b.open_deadline(), Some(1_900_000_000));
    }

    #[test]
    fn a_later_failure_never_extends_the_fleet_window() {
        let clock = Arc::new(ManualClock::new(0));
        let r = registry(clock.clone());
        let b = r.get_or_create("x").unwrap();
        let p = b.acquire().unwrap();
        b.record(p, Outcome::Failure, Duration::ZERO); // local: open 10 s
        assert_eq!(b.open_deadline(), Some(10_000_000_000));
        // The fleet's window ends in 3 s: adopted.
        assert!(apply_to(&b, &remote(AutoState::Open, 3_000, None), MAX));
        assert_eq!(b.open_deadline(), Some(3_000_000_000));
        // A longer remote window does not extend it.
        assert!(!apply_to(&b, &remote(AutoState::Open, 9_000, None), MAX));
        assert_eq!(b.open_deadline(), Some(3_000_000_000));
        // An expired fleet window lets the breaker probe now.
        clock.advance(Duration::from_secs(1));
        assert!(apply_to(&b, &remote(AutoState::Open, 0, None), MAX));
        assert!(b.acquire().is_ok());
        assert_eq!(b.state(), State::HalfOpen);
    }

    #[test]
    fn overrides_apply_with_their_expiry_and_clear_to_closed() {
        let clock = Arc::new(ManualClock::new(0));
        let r = registry(clock.clone());
        let b = r.get_or_create("x").unwrap();
        let f = Some((ForceMode::Open, Some(Duration::from_secs(5))));
        assert!(apply_to(&b, &remote(AutoState::Closed, 0, f), MAX));
        assert_eq!(b.state(), State::ForcedOpen);
        assert_eq!(b.override_deadline(), Some(5_000_000_000));
        // A record without the override (cleared by an operator): CLOSED.
        assert!(apply_to(&b, &remote(AutoState::Closed, 0, None), MAX));
        assert_eq!(b.state(), State::Closed);
        // Cleared, then the fleet opened: both applied.
        b.force(Override::ForcedClosed, None);
        assert!(apply_to(&b, &remote(AutoState::Open, 1_000, None), MAX));
        assert_eq!(b.state(), State::Open);
    }

    #[test]
    fn half_open_and_closed_follow_only_from_matching_states() {
        let clock = Arc::new(ManualClock::new(0));
        let r = registry(clock.clone());
        let b = r.get_or_create("x").unwrap();
        // A CLOSED breaker does not start probing because another did.
        assert!(!apply_to(&b, &remote(AutoState::HalfOpen, 0, None), MAX));
        assert_eq!(b.state(), State::Closed);
        apply_to(&b, &remote(AutoState::Open, 1_000, None), MAX);
        assert!(apply_to(&b, &remote(AutoState::HalfOpen, 0, None), MAX));
        assert_eq!(b.state(), State::HalfOpen);
        assert!(apply_to(&b, &remote(AutoState::Closed, 0, None), MAX));
        assert_eq!(b.state(), State::Closed);
    }

    /// A command connection that answers every write script call with an
    /// `ok` reply, except for keys containing `fail`, which get a reply
    /// that does not parse (as a malformed record once caused).
    struct FakeConn {
        fail: &'static str,
        written: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl redis::ConnectionLike for FakeConn {
        fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
            use redis::Value;
            let text = String::from_utf8_lossy(cmd);
            let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
            if text.contains(self.fail) {
                return Ok(Value::Array(vec![bulk("ok"), bulk("bogus")]));
            }
            let key = text
                .split("\r\n")
                .find(|l| l.starts_with("cb:{t}:b:"))
                .unwrap_or_default();
            self.written.lock().unwrap().push(key.to_owned());
            let n = self.written.lock().unwrap().len().to_string();
            let reply = [
                "ok",
                "1700000000000",
                "0",
                "1700000000000123",
                &n,
                "open",
                "1700000010000",
                "",
                "0",
                "me",
                "1700000000000",
            ];
            Ok(Value::Array(reply.iter().map(|s| bulk(s)).collect()))
        }

        fn req_packed_commands(
            &mut self,
            _cmd: &[u8],
            _offset: usize,
            _count: usize,
        ) -> redis::RedisResult<Vec<redis::Value>> {
            Ok(Vec::new())
        }

        fn get_db(&self) -> i64 {
            0
        }

        fn check_connection(&mut self) -> bool {
            true
        }

        fn is_open(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_breaker_whose_write_keeps_failing_never_blocks_the_others() {
        let clock = Arc::new(ManualClock::new(1_000_000_000));
        let r = Arc::new(registry(clock.clone()));
        let shared = Arc::new(Shared::default());
        let (_tx, rx) = std::sync::mpsc::sync_channel(1);
        let mut w = Worker::new(
            Reg(r.clone()),
            SyncConfig::new("redis://127.0.0.1:1", "t"),
            Namespace::new("t").unwrap(),
            Endpoint::parse("redis://127.0.0.1:1", false, None).unwrap(),
            shared.clone(),
            rx,
            Arc::new(AtomicBool::new(false)),
            "me".into(),
            Arc::new(Policies::new(crate::FleetPolicy::First)),
        );
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        w.conn = Some(Box::new(FakeConn {
            fail: "a-poison",
            written: written.clone(),
        }));
        (w.subscribed, w.resync) = (true, false);
        let trip = |w: &mut Worker, name: &str| {
            let b = r.get_or_create(name).unwrap();
            let p = b.acquire().unwrap();
            b.record(p, Outcome::Failure, Duration::ZERO);
            let t = Transition {
                from: State::Closed,
                to: State::Open,
                generation: b.generation(),
                reason: Reason::ConsecutiveFailures,
                at: r.clock().now(),
                open_for: 10_000_000_000,
            };
            w.local(b.name().clone(), &t);
        };
        // The failing breaker sorts first.
        for n in ["a-poison", "b-other", "c-more"] {
            trip(&mut w, n);
        }
        w.flush(false);
        let keys = |w: &Arc<std::sync::Mutex<Vec<String>>>| w.lock().unwrap().clone();
        assert_eq!(keys(&written), ["cb:{t}:b:b-other", "cb:{t}:b:c-more"]);
        let poisoned = &w.tracked[&Arc::<str>::from("a-poison")];
        assert_eq!(poisoned.failures, 1);
        assert!(poisoned.pending.is_some() && poisoned.retry_at.is_some());
        w.publish_status();
        assert_eq!(shared.stats().status, SyncStatus::Degraded);
        assert_eq!(shared.stats().pending, 1);
        // Backing off: a later trip is written first, the failing one not
        // retried before its time.
        trip(&mut w, "d-late");
        w.flush(false);
        assert_eq!(keys(&written).last().unwrap(), "cb:{t}:b:d-late");
        assert_eq!(w.tracked[&Arc::<str>::from("a-poison")].failures, 1);
        // Once its time has come it is tried again, after the healthy ones.
        w.tracked
            .get_mut(&Arc::<str>::from("a-poison"))
            .unwrap()
            .retry_at = Some(Instant::now());
        trip(&mut w, "e-last");
        w.flush(false);
        assert_eq!(keys(&written).last().unwrap(), "cb:{t}:b:e-last");
        assert_eq!(w.tracked[&Arc::<str>::from("a-poison")].failures, 2);
        assert!(shared.stats().last_error.unwrap().contains("a-poison"));
    }

    #[test]
    fn which_transitions_are_published() {
        let t = |to, reason| Transition {
            from: State::Closed,
            to,
            generation: 1,
            reason,
            at: 0,
            open_for: 0,
        };
        assert_eq!(
            Kind::of(&t(State::Open, Reason::ConsecutiveFailures)),
            Some(Kind::Auto(AutoState::Open))
        );
        assert_eq!(Kind::of(&t(State::Open, Reason::Remote)), None);
        assert_eq!(Kind::of(&t(State::Closed, Reason::OverrideExpired)), None);
        assert_eq!(
            Kind::of(&t(State::HalfOpen, Reason::ProbeLeaseExpired)),
            None
        );
        assert_eq!(
            Kind::of(&t(State::Closed, Reason::Reset)),
            Some(Kind::Clear)
        );
        assert_eq!(
            Kind::of(&t(State::ForcedClosed, Reason::OverrideSet)),
            Some(Kind::Force(ForceMode::Closed))
        );
        assert!(Kind::Auto(AutoState::Open).urgent());
        assert!(!Kind::Auto(AutoState::Closed).urgent());
    }
}
