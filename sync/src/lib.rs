//! # circuit-sync
//!
//! Fleet-wide breaker state through Redis (SYNC.md; DESIGN.md section 7).
//! A [`Registry`]'s breakers decide admission locally and never wait for
//! Redis; this crate shares their transitions with the other instances of a
//! service and applies theirs, from threads of its own:
//!
//! ```no_run
//! use std::sync::Arc;
//! use circuit_core::Registry;
//! use circuit_sync::{Sync, SyncConfig};
//!
//! let registry = Arc::new(Registry::default());
//! let handle = Sync::start(registry.clone(), SyncConfig::new("redis://127.0.0.1:6379", "checkout"))?;
//! // ... registry.get_or_create("payments")?.acquire() ... as usual ...
//! println!("{:?}", handle.status().status);
//! handle.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Architecture
//!
//! - **Listener** (on the thread that wins a transition): a registry
//!   listener that does one `getpid` and one non-blocking `try_send` into a
//!   bounded channel; when the channel is full it raises a flag that makes
//!   the worker rescan every breaker. Remote transitions are not sent. The
//!   closed call path is untouched: listeners run only on transitions.
//! - **Worker** (one thread per registry): owns the command connection. It
//!   coalesces local transitions per breaker (the latest wins; OPEN and
//!   operator actions are written at once, others after a short linger),
//!   writes them through the one write script (compare-and-set on the
//!   record's version), applies notices and records to local breakers
//!   with `Reason::Remote`, reconciles every local breaker's record
//!   periodically (with jitter), after every (re)subscribe and when
//!   breakers are added, and keeps the status and counters.
//! - **Subscriber** (one thread): owns the pub/sub connection to
//!   `cb:{<ns>}:ev` (read timeout ~250 ms, `PING` after silence), validates
//!   notices (size cap before parsing, strict fields) and hands the worker
//!   only their key and version: a notice is a hint to read the record,
//!   never a state (anyone who may publish can forge one).
//! - **Degraded mode**: when Redis cannot be reached, writes are refused, or
//!   the subscription fails (an ACL without the channel), the status is
//!   [`SyncStatus::Degraded`], local transitions wait in their coalescing
//!   slots, and reconnects back off with full jitter (100 ms doubling to
//!   5 s). After a reconnect: subscribe and wait for the confirmation,
//!   reconcile, then flush the waiting transitions as compare-and-set
//!   against the versions just read. Records lost meanwhile (a restart
//!   without persistence) are re-published from the local states.
//! - **Fork**: the handle remembers its process id. In a child (gunicorn
//!   `--preload`, multiprocessing) the threads do not exist and the
//!   parent's sockets must not be used: the first transition or
//!   [`SyncHandle::status`] call in the child notices the new pid and starts
//!   a fresh worker and subscriber with their own connections.
//!
//! The record, the scripts and their rules are described in [`script`]; the
//! notices in [`notice`].

#![cfg_attr(not(test), warn(missing_docs))]

mod conn;
pub mod keys;
pub mod notice;
pub mod ops;
pub mod script;
mod store;
mod subscriber;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use circuit_core::{Listener, ListenerId, Reason, Registry, Transition};

pub use conn::redact_url;
pub use keys::{encode_name, Namespace};
pub use ops::Fleet;
pub use script::{AutoState, ForceMode, Record, Version, WriteReply, WriteStatus};
pub use store::WriteOp;

/// Settings of one sync worker.
#[derive(Clone)]
pub struct SyncConfig {
    /// `redis://[user[:password]@]host[:port][/db]`, or several separated by
    /// commas (seed nodes of a Redis Cluster).
    pub url: String,
    /// The fleet's namespace: `[A-Za-z0-9._-]{1,64}`.
    pub namespace: String,
    /// Treat a single URL as a cluster seed.
    pub cluster: bool,
    /// For `rediss://`: PEM certificate(s) of the CA to trust instead of the
    /// system's roots.
    pub tls_ca: Option<Vec<u8>>,
    /// Reconcile every local breaker's record this often (default 30 s).
    pub reconcile_every: Duration,
    /// Spread of the reconcile period, as a fraction (default 0.2: ±20%).
    pub reconcile_jitter: f64,
    /// This instance's id in records (default `<host>:<pid>`); sanitized to
    /// `[A-Za-z0-9._:-]{1,64}`.
    pub origin: Option<String>,
    /// Connect (and handshake) timeout (default 1 s).
    pub connect_timeout: Duration,
    /// Timeout of every command reply (default 1 s).
    pub io_timeout: Duration,
    /// Read timeout of the subscriber connection (default 250 ms).
    pub subscribe_timeout: Duration,
    /// Send `PING` on the subscriber after this much silence (default 2 s).
    pub ping_after: Duration,
    /// Longest open window or override written or applied (default 1 h).
    pub max_open: Duration,
    /// First reconnect delay (default 100 ms), doubled up to `backoff_max`
    /// (default 5 s), each drawn with full jitter.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// How long a CLOSED or HALF_OPEN waits for a newer transition of the
    /// same breaker before it is written (default 2 ms). OPEN and operator
    /// actions are written at once.
    pub coalesce: Duration,
    /// Global write budget, writes per second (default 1000, burst of the
    /// same size).
    pub writes_per_sec: u32,
    /// A HALF_OPEN may end the fleet's open window this early (default
    /// 20 ms; covers the originator's own latency).
    pub half_open_grace: Duration,
}

impl std::fmt::Debug for SyncConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncConfig")
            .field("url", &redact_url(&self.url))
            .field("namespace", &self.namespace)
            .field("cluster", &self.cluster)
            .field("reconcile_every", &self.reconcile_every)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl SyncConfig {
    /// Defaults for `url` and `namespace`.
    pub fn new(url: impl Into<String>, namespace: impl Into<String>) -> SyncConfig {
        SyncConfig {
            url: url.into(),
            namespace: namespace.into(),
            cluster: false,
            tls_ca: None,
            reconcile_every: Duration::from_secs(30),
            reconcile_jitter: 0.2,
            origin: None,
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            subscribe_timeout: Duration::from_millis(250),
            ping_after: Duration::from_secs(2),
            max_open: Duration::from_secs(3600),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            coalesce: Duration::from_millis(2),
            writes_per_sec: 1000,
            half_open_grace: Duration::from_millis(20),
        }
    }

    fn validate(&self) -> Result<(), SyncError> {
        let nonzero = [
            ("reconcile_every", self.reconcile_every),
            ("connect_timeout", self.connect_timeout),
            ("io_timeout", self.io_timeout),
            ("subscribe_timeout", self.subscribe_timeout),
            ("ping_after", self.ping_after),
            ("max_open", self.max_open),
            ("backoff_min", self.backoff_min),
        ];
        for (field, d) in nonzero {
            if d.is_zero() {
                return Err(SyncError::Config(format!("{field} must be positive")));
            }
        }
        if self.backoff_max < self.backoff_min {
            return Err(SyncError::Config("backoff_max < backoff_min".into()));
        }
        if !(0.0..1.0).contains(&self.reconcile_jitter) {
            return Err(SyncError::Config(
                "reconcile_jitter must be in [0, 1)".into(),
            ));
        }
        if self.writes_per_sec == 0 {
            return Err(SyncError::Config("writes_per_sec must be positive".into()));
        }
        Ok(())
    }

    fn origin(&self) -> String {
        match &self.origin {
            Some(o) => keys::sanitize_origin(o),
            None => default_origin(),
        }
    }
}

fn default_origin() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; gethostname writes at most
    // that many bytes and we read only up to the first NUL within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "host".to_owned()
    };
    let host: String = host.chars().take(40).collect();
    keys::sanitize_origin(&format!("{host}:{}", std::process::id()))
}

/// Why sync could not start, or an operator command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncError {
    /// A setting is invalid (bad URL, namespace, duration). Never contains a
    /// password.
    Config(String),
    /// Redis could not be reached or answered with an error.
    Redis(String),
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Config(s) => write!(f, "invalid sync configuration: {s}"),
            SyncError::Redis(s) => write!(f, "redis: {s}"),
        }
    }
}

impl std::error::Error for SyncError {}

/// Whether the instance is in step with the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncStatus {
    /// Subscribed, reconciled, writes accepted.
    Connected = 0,
    /// Deciding alone: Redis unreachable, refusing writes, or the
    /// subscription failed; catching up when it returns.
    Degraded = 1,
    /// Stopped by [`SyncHandle::stop`].
    Stopped = 2,
}

impl SyncStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Connected => "connected",
            SyncStatus::Degraded => "degraded",
            SyncStatus::Stopped => "stopped",
        }
    }

    fn from_u8(v: u8) -> SyncStatus {
        match v {
            0 => SyncStatus::Connected,
            2 => SyncStatus::Stopped,
            _ => SyncStatus::Degraded,
        }
    }
}

/// A copy of the status and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStats {
    /// Current status.
    pub status: SyncStatus,
    /// Local transitions and actions written to Redis.
    pub published: u64,
    /// Remote states applied to local breakers.
    pub applied: u64,
    /// Notices not newer than what was already applied.
    pub stale_ignored: u64,
    /// Notices and records that failed validation.
    pub malformed_ignored: u64,
    /// Malformed records (or index keys) the write script found and replaced.
    pub repaired: u64,
    /// Notices about breakers not registered here (never created from a
    /// message).
    pub unknown_ignored: u64,
    /// Writes the script refused (stale, running window, override) whose
    /// record was adopted instead.
    pub refused: u64,
    /// Successful reconnects after a loss.
    pub reconnects: u64,
    /// Local transitions waiting to be written.
    pub pending: u64,
    /// Transitions lost to a full channel (each causes a full rescan).
    pub overflows: u64,
    /// The last error, if any (never contains a password).
    pub last_error: Option<String>,
}

impl SyncStats {
    /// The status and counters in the Prometheus text exposition format,
    /// labelled with `namespace` (append it to the registry's own text).
    pub fn prometheus(&self, namespace: &Namespace) -> String {
        let ns = namespace.as_str();
        let mut out = String::new();
        out.push_str("# HELP circuit_sync_status 1 for the sync worker's current status.\n");
        out.push_str("# TYPE circuit_sync_status gauge\n");
        for s in [
            SyncStatus::Connected,
            SyncStatus::Degraded,
            SyncStatus::Stopped,
        ] {
            out.push_str(&format!(
                "circuit_sync_status{{namespace=\"{ns}\",status=\"{}\"}} {}\n",
                s.as_str(),
                u8::from(s == self.status)
            ));
        }
        let counters = [
            (
                "published",
                self.published,
                "Local transitions written to Redis.",
            ),
            (
                "applied",
                self.applied,
                "Remote states applied to local breakers.",
            ),
            (
                "stale_ignored",
                self.stale_ignored,
                "Notices older than what was applied.",
            ),
            (
                "malformed_ignored",
                self.malformed_ignored,
                "Notices and records that failed validation.",
            ),
            (
                "repaired",
                self.repaired,
                "Malformed records the write script replaced.",
            ),
            (
                "unknown_ignored",
                self.unknown_ignored,
                "Notices about breakers not registered here.",
            ),
            (
                "refused",
                self.refused,
                "Writes refused by the script; its record was adopted.",
            ),
            (
                "reconnects",
                self.reconnects,
                "Reconnects after a lost connection.",
            ),
            ("overflows", self.overflows, "Full-channel rescans."),
        ];
        for (name, v, help) in counters {
            out.push_str(&format!(
                "# HELP circuit_sync_{name}_total {help}\n# TYPE circuit_sync_{name}_total counter\n\
                 circuit_sync_{name}_total{{namespace=\"{ns}\"}} {v}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP circuit_sync_pending Local transitions waiting to be written.\n\
             # TYPE circuit_sync_pending gauge\ncircuit_sync_pending{{namespace=\"{ns}\"}} {}\n",
            self.pending
        ));
        out
    }
}

/// Counters shared by the threads; all `Relaxed` (statistics).
#[derive(Debug, Default)]
pub(crate) struct Shared {
    status: AtomicU8,
    pub(crate) published: AtomicU64,
    pub(crate) applied: AtomicU64,
    pub(crate) stale_ignored: AtomicU64,
    pub(crate) malformed_ignored: AtomicU64,
    pub(crate) repaired: AtomicU64,
    pub(crate) unknown_ignored: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) pending: AtomicU64,
    pub(crate) overflows: AtomicU64,
    last_error: ArcSwapOption<String>,
    pub(crate) stop: AtomicBool,
}

/// The reason a worker is DEGRADED before its first connection; dropped on
/// the first Connected (a real error is kept as the last error).
pub(crate) const NOT_CONNECTED_YET: &str = "not connected to Redis yet";

impl Shared {
    pub(crate) fn set_status(&self, s: SyncStatus) {
        if s == SyncStatus::Connected {
            let placeholder = self
                .last_error
                .load()
                .as_deref()
                .is_some_and(|e| e == NOT_CONNECTED_YET);
            if placeholder {
                // A failed attempt between the load and this store would be
                // overwritten; the status is Connected by then, and the next
                // failure records itself again.
                self.last_error.store(None);
            }
        }
        self.status.store(s as u8, Ordering::Relaxed);
    }

    pub(crate) fn error(&self, e: impl Into<String>) {
        self.last_error.store(Some(Arc::new(e.into())));
    }

    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self) -> SyncStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SyncStats {
            status: SyncStatus::from_u8(self.status.load(Ordering::Relaxed)),
            published: r(&self.published),
            applied: r(&self.applied),
            stale_ignored: r(&self.stale_ignored),
            malformed_ignored: r(&self.malformed_ignored),
            repaired: r(&self.repaired),
            unknown_ignored: r(&self.unknown_ignored),
            refused: r(&self.refused),
            reconnects: r(&self.reconnects),
            pending: r(&self.pending),
            overflows: r(&self.overflows),
            last_error: self.last_error.load_full().map(|s| (*s).clone()),
        }
    }
}

/// What the listener and the subscriber hand to the worker.
pub(crate) enum Event {
    /// A local transition (never a remote one).
    Local(Arc<str>, Transition),
    /// What a validated notice names: a record to read (never a state).
    Hint(notice::Hint),
    /// The subscriber is subscribed (again).
    Subscribed,
    /// The subscriber lost its connection.
    SubscriberDown,
    /// Stop requested.
    Wake,
}

/// Capacity of the channel from the listener and subscriber to the worker.
const CHANNEL: usize = 1 << 16;

/// The registry listener: what a transition costs with sync on.
struct Port {
    tx: ArcSwapOption<SyncSender<Event>>,
    overflow: Arc<AtomicBool>,
    pid: AtomicU32,
    inner: std::sync::Weak<Inner>,
}

impl Listener for Port {
    fn on_transition(&self, breaker: &Arc<str>, t: &Transition) {
        if t.reason == Reason::Remote {
            return; // never re-publish what came from the fleet
        }
        if self.pid.load(Ordering::Relaxed) != std::process::id() {
            if let Some(inner) = self.inner.upgrade() {
                inner.restart_after_fork();
            }
        }
        let guard = self.tx.load();
        if let Some(tx) = guard.as_ref() {
            match tx.try_send(Event::Local(breaker.clone(), *t)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => self.overflow.store(true, Ordering::Relaxed),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

struct Threads {
    worker: JoinHandle<()>,
    subscriber: JoinHandle<()>,
    shared: Arc<Shared>,
    tx: SyncSender<Event>,
}

struct Inner {
    registry: Reg,
    cfg: SyncConfig,
    ns: Namespace,
    endpoint: conn::Endpoint,
    port: Arc<Port>,
    listener: Mutex<Option<ListenerId>>,
    threads: Mutex<Option<Threads>>,
    shared: ArcSwapOption<Shared>,
}

/// What a sync worker needs from its owner: the registry. Implemented for
/// [`Registry`] itself; a type that owns a registry (the C ABI's registry
/// handle) implements it to share that registry without copying it.
pub trait RegistryOwner: Send + std::marker::Sync + 'static {
    /// The registry whose breakers are synced.
    fn registry(&self) -> &Registry;
}

impl RegistryOwner for Registry {
    fn registry(&self) -> &Registry {
        self
    }
}

/// A shared registry, whoever owns it.
#[derive(Clone)]
pub(crate) struct Reg(Arc<dyn RegistryOwner>);

impl std::ops::Deref for Reg {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        self.0.registry()
    }
}

/// Starts sync workers.
#[derive(Debug)]
pub struct Sync;

impl Sync {
    /// Validates `cfg`, registers a listener on `registry` and starts the
    /// worker and subscriber threads. Returns at once: the first connection
    /// is made by the worker (the status is `Degraded` until it is up), so
    /// an unreachable Redis is not an error here, a bad URL or namespace is.
    pub fn start(registry: Arc<Registry>, cfg: SyncConfig) -> Result<SyncHandle, SyncError> {
        Sync::start_owned(registry, cfg)
    }

    /// As [`Sync::start`], for a registry held by another owner; the handle
    /// keeps `owner` alive until it is stopped and dropped.
    pub fn start_owned(
        owner: Arc<dyn RegistryOwner>,
        cfg: SyncConfig,
    ) -> Result<SyncHandle, SyncError> {
        let registry = Reg(owner);
        cfg.validate()?;
        let ns = Namespace::new(&cfg.namespace)?;
        let endpoint = conn::Endpoint::parse(&cfg.url, cfg.cluster, cfg.tls_ca.clone())?;
        let inner = Arc::new_cyclic(|weak| Inner {
            registry,
            cfg,
            ns,
            endpoint,
            port: Arc::new(Port {
                tx: ArcSwapOption::empty(),
                overflow: Arc::new(AtomicBool::new(false)),
                pid: AtomicU32::new(std::process::id()),
                inner: weak.clone(),
            }),
            listener: Mutex::new(None),
            threads: Mutex::new(None),
            shared: ArcSwapOption::empty(),
        });
        inner
            .spawn()
            .map_err(|e| SyncError::Config(format!("cannot start threads: {e}")))?;
        let id = inner.registry.add_listener(inner.port.clone());
        *inner.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
        Ok(SyncHandle { inner })
    }
}

impl Inner {
    fn spawn(&self) -> std::io::Result<()> {
        let shared = Arc::new(Shared::default());
        // DEGRADED always carries a reason: until the first connection the
        // reason is that there is none yet (a failed attempt replaces it).
        shared.error(NOT_CONNECTED_YET);
        shared.set_status(SyncStatus::Degraded);
        let (tx, rx) = sync_channel(CHANNEL);
        let origin = self.cfg.origin();
        let w = worker::Worker::new(
            self.registry.clone(),
            self.cfg.clone(),
            self.ns.clone(),
            self.endpoint.clone(),
            shared.clone(),
            rx,
            self.port.overflow.clone(),
            origin,
        );
        let worker = std::thread::Builder::new()
            .name("circuit-sync".into())
            .spawn(move || w.run())?;
        let s = subscriber::Subscriber {
            cfg: self.cfg.clone(),
            ns: self.ns.clone(),
            endpoint: self.endpoint.clone(),
            shared: shared.clone(),
            tx: tx.clone(),
        };
        let subscriber = std::thread::Builder::new()
            .name("circuit-sync-sub".into())
            .spawn(move || s.run())?;
        self.port.tx.store(Some(Arc::new(tx.clone())));
        self.shared.store(Some(shared.clone()));
        *self.threads.lock().unwrap_or_else(|e| e.into_inner()) = Some(Threads {
            worker,
            subscriber,
            shared,
            tx,
        });
        Ok(())
    }

    /// In a forked child: forget the parent's threads (they do not exist
    /// here; their sockets are the parent's) and start fresh ones.
    fn restart_after_fork(&self) {
        let me = std::process::id();
        let was = self.port.pid.load(Ordering::Relaxed);
        if was == me
            || self
                .port
                .pid
                .compare_exchange(was, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let mut guard = match self.threads.try_lock() {
            Ok(g) => g,
            // Forked while another thread held it: that thread does not
            // exist here, so the lock is ours to take over.
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        if let Some(old) = guard.take() {
            // Never join or signal the parent's threads from the child; do
            // not even close their connections (the parent owns them).
            std::mem::forget(old);
        }
        drop(guard);
        if self.threads.lock().map(|g| g.is_some()).unwrap_or(false) {
            return;
        }
        if let Some(s) = self.shared.load_full() {
            if s.stop.load(Ordering::Relaxed) {
                return;
            }
        }
        let _ = self.spawn();
    }

    fn stop(&self) {
        if let Some(id) = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            self.registry.remove_listener(id);
        }
        self.port.tx.store(None);
        let threads = self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = threads {
            t.shared.stop.store(true, Ordering::Relaxed);
            let _ = t.tx.try_send(Event::Wake);
            drop(t.tx);
            if self.port.pid.load(Ordering::Relaxed) == std::process::id() {
                // Bounded: the worker checks the flag at least every 250 ms
                // and each Redis call is bounded by the I/O timeout; the
                // subscriber's reads by the subscribe timeout.
                let _ = t.worker.join();
                let _ = t.subscriber.join();
            } else {
                std::mem::forget(t.worker);
                std::mem::forget(t.subscriber);
            }
            t.shared.set_status(SyncStatus::Stopped);
        }
    }
}

/// A running sync worker. Dropping it stops it.
pub struct SyncHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHandle")
            .field("url", &self.inner.endpoint)
            .field("namespace", &self.inner.ns)
            .finish_non_exhaustive()
    }
}

impl SyncHandle {
    /// Status and counters. In a forked child, first restarts the worker.
    pub fn status(&self) -> SyncStats {
        if self.inner.port.pid.load(Ordering::Relaxed) != std::process::id() {
            self.inner.restart_after_fork();
        }
        match self.inner.shared.load_full() {
            Some(s) => s.stats(),
            None => Shared::default().stats(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.inner.ns
    }

    /// The Redis URL with any password masked.
    pub fn url(&self) -> &str {
        self.inner.endpoint.redacted()
    }

    /// Stops the threads and unregisters the listener. Waits for the
    /// threads, at most about one I/O timeout plus the subscribe timeout.
    /// Local breakers keep their states. Idempotent.
    pub fn stop(&self) {
        self.inner.stop();
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.inner.stop();
    }
}

/// The reconnect delay: full jitter over an exponential ceiling.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            attempt: 0,
            rng: Rng::new(),
        }
    }

    /// The next delay: uniform in `[0, min(max, min * 2^attempt)]`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(self.rng.unit())
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A small xorshift generator for jitter (not for anything secret).
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        let addr = &local as *const u8 as u64;
        Rng((t ^ u64::from(std::process::id()).rotate_left(32) ^ addr) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        for i in 0..20 {
            let d = b.next_delay();
            let ceiling =
                Duration::from_millis(100 * (1u64 << i.min(16))).min(Duration::from_secs(5));
            assert!(d <= ceiling, "{d:?} > {ceiling:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn config_is_validated_and_never_shows_passwords() {
        let mut c = SyncConfig::new("redis://u:hunter2@127.0.0.1:1", "ns");
        assert!(!format!("{c:?}").contains("hunter2"));
        c.io_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
        let registry = Arc::new(Registry::default());
        let e = Sync::start(registry.clone(), SyncConfig::new("redis://x", "bad ns")).unwrap_err();
        assert!(matches!(e, SyncError::Config(_)));
        let e = Sync::start(registry, SyncConfig::new("nope://u:hunter2@x", "ns")).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn unreachable_redis_is_degraded_not_an_error_and_stop_is_bounded() {
        let registry = Arc::new(Registry::default());
        // Port 1 on loopback refuses connections.
        let mut cfg = SyncConfig::new("redis://127.0.0.1:1", "ns");
        cfg.connect_timeout = Duration::from_millis(100);
        let h = Sync::start(registry.clone(), cfg).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let s = h.status();
        assert_eq!(s.status, SyncStatus::Degraded);
        assert!(s.last_error.is_some());
        let b = registry.get_or_create("x").unwrap();
        assert!(b.acquire().is_ok());
        let t = std::time::Instant::now();
        h.stop();
        assert!(t.elapsed() < Duration::from_secs(3));
        let s = h.status();
        assert_eq!(s.status, SyncStatus::Stopped);
        let text = s.prometheus(h.namespace());
        assert!(text.contains("circuit_sync_status{namespace=\"ns\",status=\"stopped\"} 1"));
        assert!(text.contains("circuit_sync_published_total{namespace=\"ns\"} 0"));
    }
}
