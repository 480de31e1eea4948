//! The only code that talks to the records: one write through
//! [`WRITE_LUA`](crate::script::WRITE_LUA), reads through
//! [`READ_LUA`](crate::script::READ_LUA). The worker and the operator CLI
//! both use it, so there is one script and one key encoding.

use std::time::Duration;

use redis::{ConnectionLike, Script, Value};

use crate::keys::{encode_name, Namespace};
use crate::script::{
    parse_any, parse_read_reply, parse_write_reply, split_read_reply, AutoState, ForceMode, Read,
    Record, Version, WriteReply, MAX_MILLIS, MAX_WINDOW_MS, READ_LUA, WRITE_LUA,
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

/// Both scripts, hashed once.
pub(crate) struct Scripts {
    write: Script,
    read: Script,
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
        }
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
        };
        let v: Value = self
            .write
            .key(ns.record_key(&enc))
            .key(ns.index_key())
            .arg(opname)
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
            .arg(limits.grace_ms.min(MAX_WINDOW_MS))
            .invoke(con)?;
        parse_write_reply(&v)
            .map_err(|e| redis::RedisError::from((redis::ErrorKind::Parse, "write script", e)))
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
