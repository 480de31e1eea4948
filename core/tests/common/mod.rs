//! Helpers shared by the integration tests (each test binary compiles its own
//! copy and uses a subset, hence the `dead_code` allowance).
#![allow(dead_code)]
// Test-side counters, outside the library: the loom shim rule of
// core/clippy.toml is for the core's own atomics.
#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use circuit_core::{Breaker, Clock, Config, ConfigBuilder, Listener, ManualClock, Transition};

pub(crate) const MS: u64 = 1_000_000;

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A listener that keeps every transition it is given, in order.
#[derive(Debug, Default)]
pub(crate) struct EventLog(Mutex<Vec<Transition>>);

impl EventLog {
    /// Removes and returns the transitions seen so far.
    pub(crate) fn take(&self) -> Vec<Transition> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Listener for EventLog {
    fn on_transition(&self, _breaker: &Arc<str>, transition: &Transition) {
        self.0.lock().unwrap().push(*transition);
    }
}

/// A listener that only counts transitions.
#[derive(Debug, Default)]
pub(crate) struct Counter(pub AtomicU64);

impl Counter {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Listener for Counter {
    fn on_transition(&self, _breaker: &Arc<str>, _: &Transition) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A breaker on a manual clock starting at `start`, with an event log.
pub(crate) fn manual(config: Config, start: u64) -> (Breaker, Arc<ManualClock>, Arc<EventLog>) {
    let clock = Arc::new(ManualClock::new(start));
    let log = Arc::new(EventLog::default());
    let listener: Arc<dyn Listener> = log.clone();
    let breaker = Breaker::build(config, clock.clone() as Arc<dyn Clock>, Some(listener));
    (breaker, clock, log)
}

/// A deterministic builder: no jitter, fixed seed, only the policies a test
/// turns on (the defaults enable consecutive failures).
pub(crate) fn quiet() -> ConfigBuilder {
    Config::builder()
        .consecutive_failures(None)
        .jitter(0.0)
        .seed(7)
}

/// A fresh directory for one test's files (segments, snapshots), removed
/// when dropped.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `$TMPDIR/circuit-<name>-<pid>`, emptied and created.
pub(crate) fn temp_dir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("circuit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}
