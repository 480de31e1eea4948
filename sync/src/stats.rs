//! Status and counters: [`SyncStatus`], the [`SyncStats`] snapshot and its
//! Prometheus text, and the counters the threads share (`Shared`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::Namespace;

/// Whether the instance is in step with the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncStatus {
    /// Subscribed, reconciled, writes accepted.
    Connected = 0,
    /// Deciding alone: Redis unreachable, refusing writes, or the
    /// subscription failed; catching up when it returns.
    Degraded = 1,
    /// Stopped by [`SyncHandle::stop`](crate::SyncHandle::stop).
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
    /// Quorum votes written that did not reach the quorum (the breaker
    /// stayed open on this instance only).
    pub votes: u64,
    /// Fleet config records applied to local breakers.
    pub configs_applied: u64,
    /// Fleet config records that failed validation or that the breaker
    /// refused (nothing changed).
    pub configs_refused: u64,
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
            (
                "votes",
                self.votes,
                "Quorum votes below the quorum (open on this instance only).",
            ),
            (
                "configs_applied",
                self.configs_applied,
                "Fleet config records applied to local breakers.",
            ),
            (
                "configs_refused",
                self.configs_refused,
                "Fleet config records refused (invalid, or refused by the breaker).",
            ),
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
    pub(crate) votes: AtomicU64,
    pub(crate) configs_applied: AtomicU64,
    pub(crate) configs_refused: AtomicU64,
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

    pub(crate) fn stats(&self) -> SyncStats {
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
            votes: r(&self.votes),
            configs_applied: r(&self.configs_applied),
            configs_refused: r(&self.configs_refused),
            last_error: self.last_error.load_full().map(|s| (*s).clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `circuit_sync_*` metric the Grafana dashboard queries is one
    /// the sync worker emits (the core's families are checked by
    /// core/tests/dashboard.rs).
    #[test]
    fn every_dashboard_sync_metric_is_emitted() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards/circuit.json");
        let text = std::fs::read_to_string(path).expect("dashboards/circuit.json");
        let shared = Shared::default();
        Shared::bump(&shared.votes);
        let rendered = shared.stats().prometheus(&Namespace::new("shop").unwrap());
        let mut wanted = 0;
        for line in text.lines().filter(|l| l.contains("\"expr\"")) {
            let mut rest = line;
            while let Some(i) = rest.find("circuit_sync_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                assert!(
                    rendered.contains(&format!("\n{name}{{namespace=\"shop\"}}")),
                    "the dashboard queries {name}, which the sync worker never emits"
                );
                wanted += 1;
                rest = &tail[end..];
            }
        }
        assert!(wanted >= 1, "the dashboard has no sync panel");
        assert!(rendered.contains("circuit_sync_votes_total{namespace=\"shop\"} 1\n"));
    }
}
