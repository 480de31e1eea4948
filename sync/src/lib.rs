//! # circuit-sync
//!
//! Fleet-wide breaker state through Redis (SYNC.md; DESIGN.md section 7).
//! A [`Registry`](circuit_core::Registry)'s breakers decide admission locally and never wait for
//! Redis; this crate shares their transitions with the other instances of a
//! service and applies theirs, from threads of its own:
//!
//! ```no_run
//! use std::sync::Arc;
//! use circuit_core::Registry;
//! use circuit_sync::{FleetSync, SyncConfig};
//!
//! let registry = Arc::new(Registry::default());
//! let handle = FleetSync::start(registry.clone(), SyncConfig::new("redis://127.0.0.1:6379", "checkout"))?;
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
//!
//! ## Memory ordering rules
//!
//! Every atomic ordering in this crate cites one of these (the breakers'
//! own are the core's numbered invariants).
//!
//! 1. **Counters, status and flags are Relaxed** (`Shared`'s counters and
//!    status, the listener's overflow flag, the stop flag, the process id
//!    a thread compares with its own): they are statistics and hints. What
//!    a thread acts on travels through the channel to the worker or under a
//!    mutex, which synchronise by themselves; a flag seen late only delays
//!    a rescan or a stop by one loop.
//! 2. **The owning process id changes by one AcqRel CAS**
//!    (`Inner::restart_after_fork`): in a forked child exactly one thread
//!    wins it and restarts the threads; a thread that sees the new id also
//!    sees everything its winner did before the CAS, so no thread acts on
//!    the parent's id once the child's is visible.

#![cfg_attr(not(test), warn(missing_docs))]

#[macro_use]
mod lua;
mod backoff;
mod config;
mod conn;
mod error;
pub mod fleetconf;
mod handle;
pub mod keys;
pub mod notice;
pub mod ops;
pub mod script;
mod stats;
mod store;
mod subscriber;
mod worker;

pub use config::{FleetPolicy, SyncConfig};
pub use error::SyncError;
pub use handle::{FleetSync, RegistryOwner, SyncHandle};
pub use stats::{SyncStats, SyncStatus};

pub(crate) use backoff::Backoff;
pub(crate) use handle::{Event, Reg};
pub(crate) use stats::Shared;

pub use conn::redact_url;
pub use fleetconf::{parse_config_text, ConfigRead, ConfigRecord, ConfigTextError, Withdrawn};
pub use keys::{encode_name, Namespace};
pub use ops::Fleet;
pub use script::{AutoState, ForceMode, Record, Version, Vote, VoteCount, WriteReply, WriteStatus};
pub use store::{Quorum, WriteOp};
