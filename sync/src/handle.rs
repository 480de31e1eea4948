//! Starting and stopping: [`FleetSync::start`], the running worker's
//! [`SyncHandle`], the registry listener that feeds the worker, and the
//! restart of the threads in a forked child.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arc_swap::ArcSwapOption;
use circuit_core::{Listener, ListenerId, Reason, Registry, Transition};

use crate::config::Policies;
use crate::stats::NOT_CONNECTED_YET;
use crate::{conn, notice, subscriber, worker};
use crate::{FleetPolicy, Namespace, Shared, SyncConfig, SyncError, SyncStats, SyncStatus};

/// What the listener and the subscriber hand to the worker.
pub(crate) enum Event {
    /// A local transition (never a remote one).
    Local(Arc<str>, Transition),
    /// What a validated notice names: a record to read (never a state).
    Hint(notice::Hint),
    /// What a validated config notice names: a config record to read.
    ConfigHint(String),
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
    policies: Arc<Policies>,
    /// Which worker of the process this is (its default origin).
    seq: u64,
}

/// Workers started in this process (numbers their default origins).
static WORKERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
pub(crate) struct Reg(pub(crate) Arc<dyn RegistryOwner>);

impl std::ops::Deref for Reg {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        self.0.registry()
    }
}

/// Starts sync workers.
#[derive(Debug)]
pub struct FleetSync;

impl FleetSync {
    /// Validates `cfg`, registers a listener on `registry` and starts the
    /// worker and subscriber threads. Returns at once: the first connection
    /// is made by the worker (the status is `Degraded` until it is up), so
    /// an unreachable Redis is not an error here, a bad URL or namespace is.
    pub fn start(registry: Arc<Registry>, cfg: SyncConfig) -> Result<SyncHandle, SyncError> {
        FleetSync::start_owned(registry, cfg)
    }

    /// As [`FleetSync::start`], for a registry held by another owner; the handle
    /// keeps `owner` alive until it is stopped and dropped.
    pub fn start_owned(
        owner: Arc<dyn RegistryOwner>,
        cfg: SyncConfig,
    ) -> Result<SyncHandle, SyncError> {
        let registry = Reg(owner);
        cfg.validate()?;
        let ns = Namespace::new(&cfg.namespace)?;
        let endpoint = conn::Endpoint::parse(&cfg.url, cfg.cluster, cfg.tls_ca.clone())?;
        let policies = Arc::new(Policies::new(cfg.fleet_policy));
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
            policies,
            seq: WORKERS.fetch_add(1, Ordering::Relaxed),
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
        let origin = self.cfg.origin(self.seq);
        let w = worker::Worker::new(
            self.registry.clone(),
            self.cfg.clone(),
            self.ns.clone(),
            self.endpoint.clone(),
            shared.clone(),
            rx,
            self.port.overflow.clone(),
            origin,
            self.policies.clone(),
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
        // Relaxed load, AcqRel CAS: crate rules 1 and 2.
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

    /// Sets the fleet policy of the breaker `name` (it need not exist
    /// yet): [`FleetPolicy::First`] or a quorum. Used by the worker from
    /// its next write of that breaker; the call path is unaffected.
    pub fn set_fleet_policy(&self, name: &str, policy: FleetPolicy) -> Result<(), SyncError> {
        policy.validate()?;
        if name.is_empty() || name.len() > circuit_core::registry::MAX_NAME_LEN {
            return Err(SyncError::Config(format!(
                "breaker name must be 1 to {} bytes",
                circuit_core::registry::MAX_NAME_LEN
            )));
        }
        self.inner.policies.set(name, policy);
        Ok(())
    }

    /// The fleet policy of the breaker `name`.
    pub fn fleet_policy(&self, name: &str) -> FleetPolicy {
        self.inner.policies.of(name)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use circuit_core::Registry;

    use crate::{FleetSync, SyncConfig, SyncStatus};

    #[test]
    fn unreachable_redis_is_degraded_not_an_error_and_stop_is_bounded() {
        let registry = Arc::new(Registry::default());
        // Port 1 on loopback refuses connections.
        let mut cfg = SyncConfig::new("redis://127.0.0.1:1", "ns");
        cfg.connect_timeout = Duration::from_millis(100);
        let h = FleetSync::start(registry.clone(), cfg).unwrap();
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
