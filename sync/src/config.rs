//! The settings of a sync worker ([`SyncConfig`]): defaults, validation,
//! the instance's origin id.

use std::time::Duration;

use crate::store::Quorum;
use crate::{keys, redact_url, SyncError};

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
    /// This instance's id in records and quorum votes (default
    /// `<host>:<pid>`, and `<host>:<pid>:<n>` for the n-th further worker of
    /// the process); sanitized to
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
    /// How a trip spreads to the fleet, for every breaker without its own
    /// policy ([`SyncHandle::set_fleet_policy`](crate::SyncHandle::set_fleet_policy)).
    /// Default [`FleetPolicy::First`].
    pub fleet_policy: FleetPolicy,
    /// With a quorum policy: how long an instance counts as live after its
    /// last heartbeat or vote (default 10 s; heartbeats every third of it).
    /// An instance that dies drops out of the votes after this.
    pub live_for: Duration,
}

/// How a breaker's trip spreads to the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FleetPolicy {
    /// The first instance to trip opens the breaker on every instance.
    #[default]
    First,
    /// The breaker opens fleet-wide only once a quorum of live instances
    /// tripped within the window (one server-side script counts the votes);
    /// until then an instance that tripped is open locally only.
    Quorum(Quorum),
}

/// The fleet policy of each breaker: per-name policies over the default,
/// read by the worker when it writes (never on the call path).
#[derive(Debug)]
pub(crate) struct Policies {
    default: FleetPolicy,
    by_name: std::sync::RwLock<std::collections::HashMap<std::sync::Arc<str>, FleetPolicy>>,
    any_quorum: std::sync::atomic::AtomicBool,
}

impl Policies {
    pub(crate) fn new(default: FleetPolicy) -> Policies {
        Policies {
            default,
            by_name: Default::default(),
            any_quorum: std::sync::atomic::AtomicBool::new(default != FleetPolicy::First),
        }
    }

    pub(crate) fn set(&self, name: &str, policy: FleetPolicy) {
        let mut map = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        map.insert(std::sync::Arc::from(name), policy);
        if policy != FleetPolicy::First {
            // Relaxed: a hint that heartbeats are needed; the worker reads
            // it on its next turn.
            self.any_quorum
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The quorum of `name`, if its policy is one.
    pub(crate) fn quorum(&self, name: &str) -> Option<Quorum> {
        let map = self.by_name.read().unwrap_or_else(|e| e.into_inner());
        match map.get(name).copied().unwrap_or(self.default) {
            FleetPolicy::First => None,
            FleetPolicy::Quorum(q) => Some(q),
        }
    }

    pub(crate) fn of(&self, name: &str) -> FleetPolicy {
        let map = self.by_name.read().unwrap_or_else(|e| e.into_inner());
        map.get(name).copied().unwrap_or(self.default)
    }

    /// True once any breaker may vote: the instance must then keep itself
    /// live in Redis.
    pub(crate) fn any_quorum(&self) -> bool {
        self.any_quorum.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl FleetPolicy {
    /// Checks a quorum's numbers.
    pub fn validate(&self) -> Result<(), SyncError> {
        match self {
            FleetPolicy::First => Ok(()),
            FleetPolicy::Quorum(q) => q.validate().map_err(SyncError::Config),
        }
    }
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
            fleet_policy: FleetPolicy::First,
            live_for: Duration::from_secs(10),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SyncError> {
        let nonzero = [
            ("reconcile_every", self.reconcile_every),
            ("connect_timeout", self.connect_timeout),
            ("io_timeout", self.io_timeout),
            ("subscribe_timeout", self.subscribe_timeout),
            ("ping_after", self.ping_after),
            ("max_open", self.max_open),
            ("backoff_min", self.backoff_min),
            ("live_for", self.live_for),
        ];
        self.fleet_policy.validate()?;
        for (field, d) in nonzero {
            if d.is_zero() {
                return Err(SyncError::Config(format!("{field} must be positive")));
            }
        }
        if self.backoff_max < self.backoff_min {
            return Err(SyncError::Config("backoff_max < backoff_min".into()));
        }
        // The delays are the core's retry policy: what its builder refuses
        // (a cap past MAX_DURATION) is refused here, by name.
        if let Err(e) = crate::backoff::policy(self.backoff_min, self.backoff_max) {
            return Err(SyncError::Config(format!("backoff_min/backoff_max: {e}")));
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

    /// The origin of the `seq`-th worker started in this process (0 for
    /// the first).
    pub(crate) fn origin(&self, seq: u64) -> String {
        match &self.origin {
            Some(o) => keys::sanitize_origin(o),
            None => default_origin(seq),
        }
    }
}

fn default_origin(seq: u64) -> String {
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
    // Each worker is an instance of its own (quorum votes count instances):
    // the second and later workers of a process get their sequence number.
    let pid = std::process::id();
    if seq == 0 {
        keys::sanitize_origin(&format!("{host}:{pid}"))
    } else {
        keys::sanitize_origin(&format!("{host}:{pid}:{seq}"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use circuit_core::Registry;

    use crate::{FleetSync, SyncConfig, SyncError};

    #[test]
    fn config_is_validated_and_never_shows_passwords() {
        let mut c = SyncConfig::new("redis://u:hunter2@127.0.0.1:1", "ns");
        assert!(!format!("{c:?}").contains("hunter2"));
        c.io_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
        let registry = Arc::new(Registry::default());
        let e =
            FleetSync::start(registry.clone(), SyncConfig::new("redis://x", "bad ns")).unwrap_err();
        assert!(matches!(e, SyncError::Config(_)));
        let e =
            FleetSync::start(registry, SyncConfig::new("nope://u:hunter2@x", "ns")).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
