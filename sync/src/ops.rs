//! The operator's view of a namespace (the `circuit` CLI): list and read
//! records, force, unforce, watch the channel. Writes go through the same
//! write script and key encoding as the workers.

use std::time::{Duration, Instant};

use redis::Value;

use crate::conn::{describe, CommandConn, Endpoint};
use crate::fleetconf::{parse_config_text, ConfigRead, ConfigScripts, Withdrawn};
use crate::keys::{encode_name, sanitize_origin, Namespace};
use crate::notice::{self, Notice};
use crate::script::{parse_u64, ForceMode, Read, Record, Version, Vote, WriteReply};
use crate::store::{Limits, Scripts, WriteOp};
use crate::SyncError;

/// Settings of an operator connection.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Treat a single URL as a cluster seed.
    pub cluster: bool,
    /// For `rediss://`: PEM CA certificate(s) to trust instead of the
    /// system's roots.
    pub tls_ca: Option<Vec<u8>>,
    /// Connect and reply timeout.
    pub timeout: Duration,
    /// Longest override duration written (must match the fleet's
    /// `SyncConfig::max_open` to keep TTLs consistent; default 1 h).
    pub max_open: Duration,
    /// The fleet's reconcile period (for the record TTL; default 30 s).
    pub reconcile_every: Duration,
    /// Written as the record's origin (default `cli`).
    pub origin: String,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            cluster: false,
            tls_ca: None,
            timeout: Duration::from_secs(2),
            max_open: Duration::from_secs(3600),
            reconcile_every: Duration::from_secs(30),
            origin: "cli".into(),
        }
    }
}

/// One record of the namespace, with the raw breaker name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The breaker's name, as stored in the record.
    pub name: String,
    /// Its record.
    pub record: Record,
}

/// What [`Fleet::watch`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A valid notice.
    Notice(Notice),
    /// A valid fleet config notice.
    Config(crate::fleetconf::ConfigHint),
    /// A message that failed validation (its size in bytes).
    Malformed(usize),
    /// Nothing arrived for one read timeout.
    Idle,
}

/// A connection to one namespace for operator commands.
pub struct Fleet {
    conn: CommandConn,
    endpoint: Endpoint,
    ns: Namespace,
    scripts: Scripts,
    config_scripts: ConfigScripts,
    limits: Limits,
    origin: String,
    timeout: Duration,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("url", &self.endpoint)
            .field("namespace", &self.ns)
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn redis_err(what: &str, e: &redis::RedisError) -> SyncError {
    SyncError::Redis(format!("{what}: {}", describe(e)))
}

impl Fleet {
    /// Connects with default options.
    pub fn connect(url: &str, namespace: &str) -> Result<Fleet, SyncError> {
        Fleet::connect_with(url, namespace, FleetOptions::default())
    }

    /// Connects to `url` (one URL, or cluster seeds separated by commas).
    pub fn connect_with(url: &str, namespace: &str, o: FleetOptions) -> Result<Fleet, SyncError> {
        let ns = Namespace::new(namespace)?;
        let endpoint = Endpoint::parse(url, o.cluster, o.tls_ca.clone())?;
        let conn = endpoint.command(o.timeout, o.timeout).map_err(|e| {
            SyncError::Redis(format!("cannot connect to {}: {e}", endpoint.redacted()))
        })?;
        let max_ms = ms(o.max_open).max(1);
        Ok(Fleet {
            conn,
            ns,
            scripts: Scripts::new(),
            config_scripts: ConfigScripts::new(),
            limits: Limits {
                max_ms,
                ttl_ms: max_ms
                    .saturating_add(ms(o.reconcile_every).saturating_mul(2))
                    .saturating_add(60_000),
                grace_ms: 0,
            },
            origin: sanitize_origin(&o.origin),
            timeout: o.timeout,
            endpoint,
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// The record of `name` (`None`: no record, which means CLOSED), with
    /// the server time of the read (Unix ms).
    pub fn get(&mut self, name: &str) -> Result<(u64, Option<Record>), SyncError> {
        let (now, mut reads) = self
            .scripts
            .read(&mut *self.conn, &self.ns, &[name])
            .map_err(|e| redis_err("read", &e))?;
        match reads.pop() {
            Some(Read::Found(r)) => Ok((now, Some(r))),
            Some(Read::Missing) | None => Ok((now, None)),
            Some(Read::Corrupt) => Err(SyncError::Redis(format!(
                "the record of {name:?} is corrupt (key {})",
                self.ns.record_key(&encode_name(name))
            ))),
        }
    }

    /// Every live record of the namespace, sorted by name, with the server
    /// time (Unix ms). Read from the namespace index that the write script
    /// keeps (no `SCAN`, so it works the same on a cluster).
    pub fn list(&mut self) -> Result<(u64, Vec<Entry>), SyncError> {
        let encs: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.ns.index_key())
            .arg(0)
            .arg(-1)
            .query(&mut *self.conn)
            .map_err(|e| redis_err("index", &e))?;
        let (now, recs) = self
            .scripts
            .read_encoded(&mut *self.conn, &self.ns, &encs)
            .map_err(|e| redis_err("read", &e))?;
        let mut out: Vec<Entry> = recs
            .into_iter()
            .flatten()
            .map(|(name, record)| Entry { name, record })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((now, out))
    }

    /// The quorum votes of `name` (newest first; only those of live
    /// instances count), how many instances are live, and the server time
    /// (Unix ms).
    pub fn votes(&mut self, name: &str) -> Result<(u64, Vec<Vote>, u64), SyncError> {
        self.scripts
            .votes(&mut *self.conn, &self.ns, name)
            .map_err(|e| redis_err("votes", &e))
    }

    /// Runs one write through the shared script.
    pub fn write(&mut self, name: &str, op: WriteOp) -> Result<WriteReply, SyncError> {
        if name.is_empty() || name.len() > circuit_core::registry::MAX_NAME_LEN {
            return Err(SyncError::Config(format!(
                "breaker names are 1..={} bytes",
                circuit_core::registry::MAX_NAME_LEN
            )));
        }
        self.scripts
            .write(
                &mut *self.conn,
                &self.ns,
                name,
                op,
                &self.origin,
                self.limits,
            )
            .map_err(|e| redis_err("write", &e))
    }

    /// Forces `name` into `mode` on every instance, for `duration` or until
    /// cleared.
    pub fn force(
        &mut self,
        name: &str,
        mode: ForceMode,
        duration: Option<Duration>,
    ) -> Result<WriteReply, SyncError> {
        self.write(name, WriteOp::Force { mode, duration })
    }

    /// Clears any override of `name` and lands it in CLOSED everywhere.
    pub fn clear(&mut self, name: &str) -> Result<WriteReply, SyncError> {
        self.write(name, WriteOp::Clear)
    }

    /// Publishes `options` (`key=value` texts, [`crate::fleetconf`]) as the
    /// config of `name` on every instance: checked by the core's builder
    /// first (a refused config writes nothing), then written to the
    /// persistent config record with a new version and announced on the
    /// channel. Returns the version written and the text stored.
    pub fn configure(
        &mut self,
        name: &str,
        options: &[impl AsRef<str>],
    ) -> Result<(Version, String), SyncError> {
        if name.is_empty() || name.len() > circuit_core::registry::MAX_NAME_LEN {
            return Err(SyncError::Config(format!(
                "breaker names are 1..={} bytes",
                circuit_core::registry::MAX_NAME_LEN
            )));
        }
        let parts: Vec<&str> = options.iter().map(AsRef::as_ref).collect();
        if let Some(p) = parts.iter().find(|p| p.chars().any(char::is_whitespace)) {
            return Err(SyncError::Config(format!(
                "an option may not contain white space: {p:?}"
            )));
        }
        let text = parts.join(" ");
        parse_config_text(&text).map_err(|e| SyncError::Config(e.0))?;
        match self
            .config_scripts
            .write(&mut *self.conn, &self.ns, name, &text, &self.origin)
            .map_err(|e| redis_err("configure", &e))?
        {
            Ok(v) => Ok((v, text)),
            Err(why) => Err(SyncError::Redis(format!("config script refused: {why}"))),
        }
    }

    /// Withdraws the fleet config of `name`: deletes its record and
    /// announces it on the channel; every instance then puts back the
    /// config the breaker had before the first fleet config it applied
    /// (its local one). [`Withdrawn::NoRecord`] when there was none
    /// (nothing changed); a key of another type is an error and stays.
    pub fn unconfigure(&mut self, name: &str) -> Result<Withdrawn, SyncError> {
        if name.is_empty() || name.len() > circuit_core::registry::MAX_NAME_LEN {
            return Err(SyncError::Config(format!(
                "breaker names are 1..={} bytes",
                circuit_core::registry::MAX_NAME_LEN
            )));
        }
        match self
            .config_scripts
            .withdraw(&mut *self.conn, &self.ns, name)
            .map_err(|e| redis_err("unconfigure", &e))?
        {
            Ok(w) => Ok(w),
            Err(why) => Err(SyncError::Redis(format!("config script refused: {why}"))),
        }
    }

    /// The fleet config record of `name` (`ConfigRead::Missing` when none
    /// was published).
    pub fn config(&mut self, name: &str) -> Result<ConfigRead, SyncError> {
        let mut reads = self
            .config_scripts
            .read(&mut *self.conn, &self.ns, &[name])
            .map_err(|e| redis_err("config read", &e))?;
        Ok(reads.pop().unwrap_or(ConfigRead::Missing))
    }

    /// Server time, Unix milliseconds.
    pub fn server_time_ms(&mut self) -> Result<u64, SyncError> {
        let (now, _) = self
            .scripts
            .read(&mut *self.conn, &self.ns, &[])
            .map_err(|e| redis_err("time", &e))?;
        Ok(now)
    }

    /// Subscribes to the namespace's channel on a connection of its own and
    /// calls `f` for every message and every idle `tick`, until `f`
    /// returns false or `deadline` passes. `f` gets this `Fleet` to read
    /// records meanwhile.
    pub fn watch(
        &mut self,
        tick: Duration,
        deadline: Option<Instant>,
        mut f: impl FnMut(&mut Fleet, WatchEvent) -> bool,
    ) -> Result<(), SyncError> {
        let mut con = self
            .endpoint
            .single(0, self.timeout)
            .map_err(|e| SyncError::Redis(format!("subscribe: {e}")))?;
        con.set_read_timeout(Some(tick.max(Duration::from_millis(10))))
            .map_err(|e| redis_err("subscribe", &e))?;
        crate::subscriber::subscribe(&mut con, self.ns.channel()).map_err(SyncError::Redis)?;
        let mut ps = con.as_pubsub();
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(());
            }
            let ev = match ps.get_message() {
                Ok(msg) => match notice::parse(msg.get_payload_bytes(), &self.ns) {
                    Ok(n) => WatchEvent::Notice(n),
                    Err(_) => match crate::fleetconf::parse_config_notice(
                        msg.get_payload_bytes(),
                        &self.ns,
                    ) {
                        Some(h) => WatchEvent::Config(h),
                        None => WatchEvent::Malformed(msg.get_payload_bytes().len()),
                    },
                },
                Err(e) if e.is_timeout() => WatchEvent::Idle,
                Err(e) => return Err(redis_err("subscription", &e)),
            };
            if !f(self, ev) {
                return Ok(());
            }
        }
    }

    /// Sends one raw message on the namespace's channel (tests and
    /// diagnostics: the workers must count and ignore anything invalid).
    pub fn publish_raw(&mut self, payload: &[u8]) -> Result<u64, SyncError> {
        let v: Value = redis::cmd("PUBLISH")
            .arg(self.ns.channel())
            .arg(payload)
            .query(&mut *self.conn)
            .map_err(|e| redis_err("publish", &e))?;
        match v {
            Value::Int(n) => Ok(n.max(0) as u64),
            other => Err(SyncError::Redis(format!(
                "unexpected PUBLISH reply {other:?}"
            ))),
        }
    }
}

/// Parses durations such as `250ms`, `30s`, `5m`, `2h`, `1d` or a bare
/// number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n = parse_u64(num.as_bytes()).ok_or_else(|| format!("bad duration {s:?}"))?;
    let per = match unit {
        "" | "s" => 1000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h, d)")),
    };
    n.checked_mul(per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }
}
