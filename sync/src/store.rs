//! The only code that talks to the records: one write through
//! [`WRITE_LUA`](crate::script::WRITE_LUA), reads through
//! [`READ_LUA`](crate::script::READ_LUA). The worker and the operator CLI
//! both use it, so there is one script and one key encoding.

use std::time::Duration;

use redis::{ConnectionLike, Script, Value};

use crate::keys::{encode_name, Namespace};
use crate::script::{
    parse_any, parse_read_reply, parse_votes_reply, parse_write_reply, split_read_reply, AutoState,
    ForceMode, Read, Record, Version, Vote, WriteReply, HEARTBEAT_LUA, MAX_MILLIS, MAX_WINDOW_MS,
    READ_LUA, VOTES_LUA, WRITE_LUA,
};

fn bad_read_reply() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Parse,
        "read script",
        "unexpected reply shape".to_owned(),
    ))
}

/// Keys per read-script call (one short script run per batch).
pub(crate) const READ_BATCH: usize = 200;

/// A record with the raw name stored in it.
pub(crate) type Named = (String, Record);

/// One change to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    /// An automatic transition decided on `expect` (compare-and-set);
    /// `open_for` is the open window for OPEN.
    Auto {
        /// The new automatic state.
        to: AutoState,
        /// OPEN: the window to set (clamped by the script).
        open_for: Duration,
        /// The version the decision was made on.
        expect: Version,
    },
    /// An operator override, optionally expiring.
    Force {
        /// Which override.
        mode: ForceMode,
        /// Its duration (`None`: until cleared).
        duration: Option<Duration>,
    },
    /// Clears any override and lands in CLOSED (unforce, reset).
    Clear,
    /// A quorum breaker's local trip: a vote; OPEN fleet-wide (as `Auto`
    /// to OPEN decided on `expect`) once enough live instances voted within
    /// the window (write script rule 9).
    Vote {
        /// The open window to set when the quorum is reached.
        open_for: Duration,
        /// The version the trip was decided on.
        expect: Version,
        /// The quorum.
        quorum: Quorum,
        /// This instance counts as live this long after the vote.
        live_for: Duration,
    },
    /// A quorum breaker's local HALF_OPEN or CLOSED: written as `Auto` only
    /// while the record is not CLOSED (write script rule 10).
    Follow {
        /// The new automatic state.
        to: AutoState,
        /// The version the decision was made on.
        expect: Version,
    },
}

/// How many live instances must have tripped, within how long, before a
/// breaker opens fleet-wide (the fleet policy `quorum`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quorum {
    /// At least this many instances (0 or 1: no floor).
    pub min_instances: u32,
    /// And at least this fraction (0.0 to 1.0) of the live instances,
    /// rounded up.
    pub min_fraction: f64,
    /// Votes older than this do not count.
    pub window: Duration,
}

impl Eq for Quorum {}

impl Quorum {
    /// Checks the quorum: a fraction within 0.0..=1.0, at most 1,000,000
    /// instances, a window of at least a millisecond.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.min_fraction) {
            return Err(format!(
                "quorum fraction must be within 0.0..=1.0, got {}",
                self.min_fraction
            ));
        }
        if self.min_instances > 1_000_000 {
            return Err("quorum min_instances must be at most 1000000".into());
        }
        if self.window < Duration::from_millis(1) {
            return Err("quorum window must be at least 1 ms".into());
        }
        Ok(())
    }
}

/// Limits passed to the write script.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Every duration is clamped to this.
    pub(crate) max_ms: u64,
    /// Base TTL of a record.
    pub(crate) ttl_ms: u64,
    /// A HALF_OPEN may end a running open window this much early.
    pub(crate) grace_ms: u64,
}

/// The scripts, hashed once.
pub(crate) struct Scripts {
    write: Script,
    read: Script,
    heartbeat: Script,
    votes: Script,
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripts")
            .field("write", &self.write.get_hash())
            .field("read", &self.read.get_hash())
            .finish()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            write: Script::new(WRITE_LUA),
            read: Script::new(READ_LUA),
            heartbeat: Script::new(HEARTBEAT_LUA),
            votes: Script::new(VOTES_LUA),
        }
    }

    /// Marks `origin` live for quorum votes for `live_for` (server time);
    /// returns how many instances are live.
    pub(crate) fn heartbeat(
        &self,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        origin: &str,
        live_for: Duration,
    ) -> redis::RedisResult<u64> {
        let v: Value = self
            .heartbeat
            .key(ns.live_key())
            .arg(ns.as_str())
            .arg(origin)
            .arg(ms(live_for).clamp(1, MAX_WINDOW_MS))
            .invoke(con)?;
        match &v {
            Value::Array(items) if items.len() == 2 => match &items[1] {
                Value::BulkString(b) => crate::script::parse_u64(b),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::Parse,
                "heartbeat script",
                format!("unexpected reply {v:?}"),
            ))
        })
    }

    /// Runs one write. `Err` is the redis error (I/O or server) or a reply
    /// of the wrong shape (as a `redis::RedisError` of kind `Parse`).
    pub(crate) fn write(
        &self,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        name: &str,
        op: WriteOp,
        origin: &str,
        limits: Limits,
    ) -> redis::RedisResult<WriteReply> {
        let enc = encode_name(name);
        let (opname, arg, dur, expect) = match op {
            WriteOp::Auto {
                to,
                open_for,
                expect,
            } => ("auto", to.as_str(), ms(open_for), expect),
            WriteOp::Force { mode, duration } => (
                "force",
                mode.as_str(),
                // A zero duration would mean "no expiry" to the script.
                duration.map_or(0, |d| ms(d).max(1)),
                Version::MISSING,
            ),
            WriteOp::Clear => ("clear", "", 0, Version::MISSING),
            WriteOp::Vote {
                open_for, expect, ..
            } => ("vote", "open", ms(open_for), expect),
            WriteOp::Follow { to, expect } => ("follow", to.as_str(), 0, expect),
        };
        let mut inv = self.write.prepare_invoke();
        inv.key(ns.record_key(&enc)).key(ns.index_key());
        if let WriteOp::Vote { .. } = op {
            inv.key(ns.live_key()).key(ns.votes_key(&enc));
        }
        inv.arg(opname)
            .arg(name)
            .arg(&enc)
            .arg(arg)
            .arg(dur.min(MAX_MILLIS))
            .arg(expect.epoch)
            .arg(expect.ver)
            .arg(origin)
            .arg(limits.max_ms.clamp(1, MAX_WINDOW_MS))
            .arg(limits.ttl_ms.clamp(1, MAX_WINDOW_MS))
            .arg(ns.as_str())
            .arg(limits.grace_ms.min(MAX_WINDOW_MS));
        if let WriteOp::Vote {
            quorum: q,
            live_for,
            ..
        } = op
        {
            inv.arg(ms(q.window).clamp(1, MAX_WINDOW_MS))
                .arg(q.min_instances.min(1_000_000))
                .arg((q.min_fraction.clamp(0.0, 1.0) * 1e6).round() as u64)
                .arg(ms(live_for).clamp(1, MAX_WINDOW_MS));
        }
        let v: Value = inv.invoke(con)?;
        parse_write_reply(&v)
            .map_err(|e| redis::RedisError::from((redis::ErrorKind::Parse, "write script", e)))
    }

    /// The votes of `name` and the live instances (write script rule 9),
    /// with the server time (Unix ms).
    pub(crate) fn votes(
        &self,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        name: &str,
    ) -> redis::RedisResult<(u64, Vec<Vote>, u64)> {
        let v: Value = self
            .votes
            .key(ns.votes_key(&encode_name(name)))
            .key(ns.live_key())
            .invoke(con)?;
        parse_votes_reply(&v).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::Parse,
                "votes script",
                "unexpected reply shape".to_owned(),
            ))
        })
    }

    /// Reads the records of `names` (raw names). Returns the server time
    /// (Unix ms) of the read and one result per name, in order.
    pub(crate) fn read(
        &self,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        names: &[&str],
    ) -> redis::RedisResult<(u64, Vec<Read>)> {
        let mut out = Vec::with_capacity(names.len());
        let mut now = 0;
        for chunk in names.chunks(READ_BATCH) {
            let v = self.invoke_read(con, ns, chunk.iter().map(|n| encode_name(n)))?;
            let (t, reads) = parse_read_reply(v, chunk).ok_or_else(bad_read_reply)?;
            now = t;
            out.extend(reads);
        }
        if names.is_empty() {
            now = self.read_raw(con, ns, std::iter::empty())?.0;
        }
        Ok((now, out))
    }

    /// Reads records by encoded name, whatever their raw name (the CLI's
    /// listing). `None` for missing or corrupt records.
    pub(crate) fn read_encoded(
        &self,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        encs: &[String],
    ) -> redis::RedisResult<(u64, Vec<Option<Named>>)> {
        let mut out = Vec::with_capacity(encs.len());
        let mut now = 0;
        for chunk in encs.chunks(READ_BATCH) {
            let (t, recs) = self.read_raw(con, ns, chunk.iter().cloned())?;
            now = t;
            out.extend(
                recs.iter()
                    .zip(chunk)
                    .map(|(f, enc)| parse_any(f, t).filter(|(name, _)| &encode_name(name) == enc)),
            );
        }
        if encs.is_empty() {
            now = self.read_raw(con, ns, std::iter::empty())?.0;
        }
        Ok((now, out))
    }

    fn invoke_read(
        &self,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        encs: impl Iterator<Item = String>,
    ) -> redis::RedisResult<Value> {
        let mut inv = self.read.prepare_invoke();
        for enc in encs {
            inv.key(ns.record_key(&enc));
        }
        inv.invoke(con)
    }

    fn read_raw(
        &self,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        encs: impl ExactSizeIterator<Item = String>,
    ) -> redis::RedisResult<(u64, Vec<Vec<Value>>)> {
        let n = encs.len();
        let v = self.invoke_read(con, ns, encs)?;
        split_read_reply(v, n).ok_or_else(bad_read_reply)
    }
}
