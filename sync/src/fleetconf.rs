//! Fleet configuration: one persistent config record per breaker name,
//! written by the operator (`circuit configure`), applied by every
//! instance through [`Registry::reconfigure`](circuit_core::Registry::reconfigure).
//!
//! ## The record
//!
//! Key `cb:{<ns>}:c:<enc(name)>`, a hash without TTL (the state record's
//! TTL would expire a config), with exactly these fields:
//!
//! | field | meaning |
//! |---|---|
//! | `fv` | format version, must be [`CONFIG_FORMAT`] |
//! | `ep` | incarnation: server microseconds when the key was created |
//! | `ver` | config version, incremented by every write (`1..=`[`MAX_VERSION`]) |
//! | `name` | the raw breaker name (checked against the key on read) |
//! | `cfg` | the config as text (below), at most [`MAX_CONFIG_TEXT`] bytes |
//! | `origin` | who wrote it |
//! | `ts` | server time of the write, Unix ms |
//!
//! ## The text
//!
//! Options separated by white space, each `key=value`, named as the
//! core's [`ConfigBuilder`] methods: `consecutive_failures=N|off`,
//! `failure_rate=F|off`, `slow_call=F/DURATION|off`,
//! `ewma=ALPHA/THRESHOLD|off`, `minimum_calls=N`, `count_window=N`,
//! `time_window=DURATION/BUCKETS`, `open_duration=D`,
//! `max_open_duration=D`, `backoff_multiplier=F`, `jitter=F`,
//! `half_open_probes=N`, `half_open_successes=N`, `probe_lease=D`,
//! `metrics=true|false`, `latency_histogram=D|off`, `seed=N`,
//! `ramp=START/DURATION[/STEPS]|off`. Durations as
//! `250ms`, `30s`, `5m`, `2h`, `1d`. The record is the **whole** config:
//! options not given take the core's defaults, so every instance ends with
//! the same config whatever it was created with. Unknown or repeated
//! options are refused; every value goes through [`ConfigBuilder::build`]
//! (one set of rules). The same parser checks the text before the CLI
//! writes it and after a worker reads it.
//!
//! ## Applying
//!
//! A write ([`CONFIG_LUA`]) publishes `{"v":1,"ns":..,"c":<enc>,"e":..,"n":..}`
//! on the namespace channel: a hint, like a state notice, that makes the
//! workers read the record. Workers also read the config records of their
//! breakers at every reconciliation and when they first see a breaker
//! (so a lost notice, a restart or a breaker created after the write all
//! end with the published config). A worker applies a record whose
//! version (`ep`, `ver`) differs from the last one it saw for that breaker;
//! a record that fails validation (or that the breaker refuses) changes
//! nothing and is counted in `configs_refused` (an invalid record once per
//! content, by a digest of the bytes read; a valid one the breaker refuses
//! once per version).
//!
//! ## Withdrawing
//!
//! [`UNCONFIG_LUA`] (`circuit unconfigure`) deletes the record and
//! publishes a notice of the same shape. A worker that finds the record
//! of a breaker missing puts back the config that breaker was running
//! before the first fleet config the worker applied to it (its local one)
//! through `Registry::reconfigure`; a breaker no fleet config was applied
//! to is untouched. The missing record is the truth: a lost notice heals
//! at the next reconciliation.

use std::fmt;
use std::time::Duration;

use circuit_core::{Config, ConfigBuilder, RampPolicy};
use redis::{ConnectionLike, Script, Value};

use crate::keys::{encode_name, valid_origin, Namespace};
use crate::ops::parse_duration;
use crate::script::{parse_u64, Version, MAX_VERSION};

/// Format version of the config record.
pub const CONFIG_FORMAT: u32 = 1;

/// Longest config text, in bytes.
pub const MAX_CONFIG_TEXT: usize = 1024;

/// Largest valid config notice (a hashed name, the longest epoch and version).
pub const MAX_CONFIG_NOTICE_BYTES: usize = 256;

/// Why a config text or record was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigTextError(pub String);

impl fmt::Display for ConfigTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigTextError {}

fn bad(msg: impl Into<String>) -> ConfigTextError {
    ConfigTextError(msg.into())
}

fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigTextError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!(
            "{key}: expected an unsigned integer, got {v:?}"
        )));
    }
    v.parse()
        .map_err(|_| bad(format!("{key}: {v:?} is out of range")))
}

fn float(key: &str, v: &str) -> Result<f64, ConfigTextError> {
    // Digits, one dot, no sign/exponent/inf/nan: the ranges are the builder's.
    let ok = !v.is_empty()
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|&b| b == b'.').count() <= 1
        && v.bytes().any(|b| b.is_ascii_digit());
    if !ok {
        return Err(bad(format!("{key}: expected a decimal number, got {v:?}")));
    }
    v.parse()
        .map_err(|_| bad(format!("{key}: expected a decimal number, got {v:?}")))
}

fn dur(key: &str, v: &str) -> Result<Duration, ConfigTextError> {
    parse_duration(v).map_err(|e| bad(format!("{key}: {e}")))
}

fn pair<'a>(key: &str, v: &'a str, shape: &str) -> Result<(&'a str, &'a str), ConfigTextError> {
    v.split_once('/')
        .ok_or_else(|| bad(format!("{key}: expected {shape}, got {v:?}")))
}

fn off(v: &str) -> bool {
    v == "off"
}

fn apply(b: ConfigBuilder, key: &str, v: &str) -> Result<ConfigBuilder, ConfigTextError> {
    Ok(match key {
        "consecutive_failures" => {
            b.consecutive_failures(if off(v) { None } else { Some(num(key, v)?) })
        }
        "failure_rate" => b.failure_rate(if off(v) { None } else { Some(float(key, v)?) }),
        "slow_call" => b.slow_call(if off(v) {
            None
        } else {
            let (r, d) = pair(key, v, "RATE/DURATION")?;
            Some((float(key, r)?, dur(key, d)?))
        }),
        "ewma" => b.ewma(if off(v) {
            None
        } else {
            let (a, t) = pair(key, v, "ALPHA/THRESHOLD")?;
            Some((float(key, a)?, float(key, t)?))
        }),
        "minimum_calls" => b.minimum_calls(num(key, v)?),
        "count_window" => b.count_window(num(key, v)?),
        "time_window" => {
            let (d, n) = pair(key, v, "DURATION/BUCKETS")?;
            b.time_window(dur(key, d)?, num(key, n)?)
        }
        "open_duration" => b.open_duration(dur(key, v)?),
        "max_open_duration" => b.max_open_duration(dur(key, v)?),
        "backoff_multiplier" => b.backoff_multiplier(float(key, v)?),
        "jitter" => b.jitter(float(key, v)?),
        "half_open_probes" => b.half_open_probes(num(key, v)?),
        "half_open_successes" => b.half_open_successes(num(key, v)?),
        "probe_lease" => b.probe_lease(dur(key, v)?),
        "metrics" => b.metrics(match v {
            "true" => true,
            "false" => false,
            _ => return Err(bad(format!("metrics: expected true or false, got {v:?}"))),
        }),
        "latency_histogram" => b.latency_histogram(if off(v) { None } else { Some(dur(key, v)?) }),
        "seed" => b.seed(num(key, v)?),
        "ramp" => b.ramp(if off(v) {
            None
        } else {
            let parts: Vec<&str> = v.split('/').collect();
            let (start, d, steps) = match parts.as_slice() {
                [a, d] => (a, d, "0"),
                [a, d, n] => (a, d, *n),
                _ => {
                    return Err(bad(format!(
                        "ramp: expected START/DURATION[/STEPS], got {v:?}"
                    )))
                }
            };
            Some(RampPolicy {
                start: float(key, start)?,
                duration: dur(key, d)?,
                steps: num(key, steps)?,
            })
        }),
        _ => return Err(bad(format!("unknown option {key:?}"))),
    })
}

/// Parses a config text (module docs) into a [`Config`] checked by the
/// core's builder.
pub fn parse_config_text(text: &str) -> Result<Config, ConfigTextError> {
    if text.len() > MAX_CONFIG_TEXT {
        return Err(bad(format!(
            "config text is {} bytes, at most {MAX_CONFIG_TEXT} allowed",
            text.len()
        )));
    }
    let mut b = Config::builder();
    let mut seen: Vec<&str> = Vec::new();
    for opt in text.split_ascii_whitespace() {
        let (k, v) = opt
            .split_once('=')
            .ok_or_else(|| bad(format!("expected key=value, got {opt:?}")))?;
        if seen.contains(&k) {
            return Err(bad(format!("option {k:?} given twice")));
        }
        seen.push(k);
        b = apply(b, k, v)?;
    }
    if seen.is_empty() {
        return Err(bad("empty config text"));
    }
    b.build().map_err(|e| bad(e.to_string()))
}

/// A validated config record.
#[derive(Debug, Clone)]
pub struct ConfigRecord {
    /// Incarnation and version.
    pub version: Version,
    /// The text as stored.
    pub text: String,
    /// The config it describes.
    pub config: Config,
    /// Who wrote it.
    pub origin: String,
    /// Server time of the write, Unix ms.
    pub ts_ms: u64,
}

/// What a read of one config record found.
#[derive(Debug, Clone)]
pub enum ConfigRead {
    /// No record: the breaker keeps the config it has.
    Missing,
    /// A valid record.
    Found(Box<ConfigRecord>),
    /// A record that failed validation (why).
    Bad(String),
}

/// The checks both config scripts make of their arguments (`ns`, `name`,
/// `enc`, `key`, and `MAXNAME` defined): a namespace and a name as the key
/// scheme allows, `enc` the name's encoding, `key` the config key they
/// name.
macro_rules! config_key_checks {
    () => {
        r#"if type(ns) ~= 'string' or #ns < 1 or #ns > 64 or not string.find(ns, '^[%w%._%-]+$') then
  return {'bad', 'namespace'}
end
if type(name) ~= 'string' or #name < 1 or #name > MAXNAME or encode(name) ~= enc then
  return {'bad', 'name'}
end
if key ~= 'cb:{' .. ns .. '}:c:' .. enc then return {'bad', 'key'} end
"#
    };
}

/// Writes a config record and publishes its notice. `KEYS[1]` the config
/// key; `ARGV`: namespace, raw name, encoded name, text, origin. Checks
/// its arguments as the write script does (the key must be the name's in
/// the namespace); a stored record that is not a well-formed record of
/// this name is replaced by a new incarnation. Replies
/// `{'ok', epoch, ver}` or `{'bad', why}`.
pub const CONFIG_LUA: &str = concat!(
    r#"
local key = KEYS[1]
local ns, name, enc, text, origin = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local MAXVER, MAXNAME, MAXTEXT = 999999999999999, 1024, 1024
"#,
    lua_prelude!(),
    config_key_checks!(),
    r#"if type(text) ~= 'string' or #text < 1 or #text > MAXTEXT then return {'bad', 'text'} end
if type(origin) ~= 'string' or #origin < 1 or #origin > 64
    or not string.find(origin, '^[%w%._:%-]+$') then
  return {'bad', 'origin'}
end
local t = redis.call('TIME')
local nowus = t[1] .. string.format('%06d', tonumber(t[2]))
local nowms = fmt(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local epoch, ver = nil, 0
-- A key of another type fails HMGET: caught, and replaced below (only the
-- commands of the least-privilege ACL list are used).
local ok, f = pcall(redis.call, 'HMGET', key, 'fv', 'ep', 'ver', 'name')
if ok then
  local v = uint(f[3])
  if f[1] == '1' and epochok(f[2]) and v and v >= 1 and v < MAXVER and f[4] == name then
    epoch, ver = f[2], v
  end
end
if not epoch then epoch, ver = nowus, 0 end
ver = ver + 1
redis.call('DEL', key)
redis.call('HSET', key, 'fv', '1', 'ep', epoch, 'ver', fmt(ver), 'name', name, 'cfg', text,
  'origin', origin, 'ts', nowms)
redis.call('PUBLISH', 'cb:{' .. ns .. '}:ev', '{"v":1,"ns":"' .. ns .. '","c":"' .. enc ..
  '","e":"' .. epoch .. '","n":' .. fmt(ver) .. '}')
return {'ok', epoch, fmt(ver)}
"#
);

/// Withdraws a config record and publishes its notice. `KEYS[1]` the
/// config key; `ARGV`: namespace, raw name, encoded name. Checks its
/// arguments as [`CONFIG_LUA`] does; a key of another type is refused and
/// left in place (only the commands of the least-privilege ACL list are
/// used: `HMGET` to check the type, `DEL`, `PUBLISH`). The notice has the
/// write's shape (a hint: workers read the record and find it gone), with
/// the withdrawn record's incarnation and the version after it. Replies
/// `{'ok', epoch, ver}` (the version withdrawn; `0 0` for a hash that was
/// not a well-formed record), `{'none'}` when there was no record (nothing
/// published) or `{'bad', why}`.
pub const UNCONFIG_LUA: &str = concat!(
    r#"
local key = KEYS[1]
local ns, name, enc = ARGV[1], ARGV[2], ARGV[3]
local MAXVER, MAXNAME = 999999999999999, 1024
"#,
    lua_prelude!(),
    config_key_checks!(),
    r#"local ok, f = pcall(redis.call, 'HMGET', key, 'fv', 'ep', 'ver')
if not ok then return {'bad', 'the key holds another type'} end
if redis.call('DEL', key) == 0 then return {'none'} end
local epoch, ver = nil, 0
local v = uint(f[3])
if f[1] == '1' and epochok(f[2]) and v and v >= 1 and v < MAXVER then epoch, ver = f[2], v end
local t = redis.call('TIME')
local hint = epoch or (t[1] .. string.format('%06d', tonumber(t[2])))
redis.call('PUBLISH', 'cb:{' .. ns .. '}:ev', '{"v":1,"ns":"' .. ns .. '","c":"' .. enc ..
  '","e":"' .. hint .. '","n":' .. fmt(ver + 1) .. '}')
return {'ok', epoch or '0', fmt(ver)}
"#
);

/// What [`ConfigScripts::withdraw`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawn {
    /// The record was deleted and the notice published: the version it had
    /// (`None` for a hash that was not a well-formed record).
    Deleted(Option<Version>),
    /// There was no record: nothing changed, nothing published.
    NoRecord,
}

/// Reads config records: `KEYS` the config keys; replies one array per key,
/// the fields `fv ep ver name cfg origin ts` (nil when missing), or
/// `{'WRONGTYPE'}` for a key that is not a hash (a planted key never fails
/// the whole read).
pub const CONFIG_READ_LUA: &str = r#"
local out = {}
for i, k in ipairs(KEYS) do
  local ok, v = pcall(redis.call, 'HMGET', k, 'fv', 'ep', 'ver', 'name', 'cfg', 'origin', 'ts')
  if ok then out[i] = v else out[i] = {'WRONGTYPE'} end
end
return out
"#;

/// Keys per read call.
const READ_BATCH: usize = 200;

/// The config scripts, hashed once.
pub(crate) struct ConfigScripts {
    write: Script,
    withdraw: Script,
    read: Script,
}

impl fmt::Debug for ConfigScripts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigScripts").finish_non_exhaustive()
    }
}

fn parse_err(what: &str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Parse, "config script", what.to_owned()))
}

fn text_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

impl ConfigScripts {
    pub(crate) fn new() -> ConfigScripts {
        ConfigScripts {
            write: Script::new(CONFIG_LUA),
            withdraw: Script::new(UNCONFIG_LUA),
            read: Script::new(CONFIG_READ_LUA),
        }
    }

    /// Writes `text` (already checked by [`parse_config_text`]) as the
    /// config of `name`; returns the version written.
    pub(crate) fn write(
        &self,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        name: &str,
        text: &str,
        origin: &str,
    ) -> redis::RedisResult<Result<Version, String>> {
        let v = Self::run(&self.write, con, ns, name, &[text, origin])?;
        match reply_fields(&v)?.as_slice() {
            [b"ok", e, n] => Ok(Ok(version_of(e, n)?)),
            [b"bad", why] => Ok(Err(String::from_utf8_lossy(why).into_owned())),
            _ => Err(parse_err("unexpected reply")),
        }
    }

    /// Deletes the config record of `name` and publishes a notice.
    pub(crate) fn withdraw(
        &self,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        name: &str,
    ) -> redis::RedisResult<Result<Withdrawn, String>> {
        let v = Self::run(&self.withdraw, con, ns, name, &[])?;
        match reply_fields(&v)?.as_slice() {
            [b"ok", e, n] => {
                let v = version_of(e, n)?;
                Ok(Ok(Withdrawn::Deleted(
                    (v.epoch > 0 && v.ver > 0).then_some(v),
                )))
            }
            [b"none"] => Ok(Ok(Withdrawn::NoRecord)),
            [b"bad", why] => Ok(Err(String::from_utf8_lossy(why).into_owned())),
            _ => Err(parse_err("unexpected reply")),
        }
    }

    /// Runs a script of one config key with the arguments every such
    /// script takes (namespace, raw name, encoded name) and `extra`.
    fn run(
        script: &Script,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        name: &str,
        extra: &[&str],
    ) -> redis::RedisResult<Value> {
        let enc = encode_name(name);
        let mut inv = script.key(ns.config_key(&enc));
        inv.arg(ns.as_str()).arg(name).arg(&enc);
        for a in extra {
            inv.arg(*a);
        }
        inv.invoke(con)
    }

    /// Reads and validates the config records of `names`.
    pub(crate) fn read(
        &self,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        names: &[&str],
    ) -> redis::RedisResult<Vec<ConfigRead>> {
        Ok(self
            .read_digests(con, ns, names)?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    /// As [`ConfigScripts::read`], each read with a digest of the bytes
    /// read (the worker counts a refused record once per content).
    pub(crate) fn read_digests(
        &self,
        con: &mut dyn ConnectionLike,
        ns: &Namespace,
        names: &[&str],
    ) -> redis::RedisResult<Vec<(ConfigRead, u64)>> {
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(READ_BATCH) {
            let mut inv = self.read.prepare_invoke();
            for n in chunk {
                inv.key(ns.config_key(&encode_name(n)));
            }
            let v: Value = inv.invoke(con)?;
            let Value::Array(items) = v else {
                return Err(parse_err("unexpected read reply"));
            };
            if items.len() != chunk.len() {
                return Err(parse_err("unexpected read reply"));
            }
            out.extend(
                chunk
                    .iter()
                    .zip(&items)
                    .map(|(n, v)| (validate(n, v), digest(v))),
            );
        }
        Ok(out)
    }
}

/// The fields of a script's array reply.
fn reply_fields(v: &Value) -> redis::RedisResult<Vec<&[u8]>> {
    let Value::Array(items) = v else {
        return Err(parse_err("unexpected reply"));
    };
    Ok(items.iter().filter_map(text_of).collect())
}

/// A version from a reply's epoch and version fields.
fn version_of(e: &[u8], n: &[u8]) -> redis::RedisResult<Version> {
    let epoch = parse_u64(e).ok_or_else(|| parse_err("epoch"))?;
    let ver = parse_u64(n).ok_or_else(|| parse_err("version"))?;
    Ok(Version { epoch, ver })
}

/// A digest of the bytes of one read (its fields, missing ones apart
/// from empty ones): equal for the same record content.
pub(crate) fn digest(v: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match v {
        Value::Array(f) => {
            f.len().hash(&mut h);
            for x in f {
                text_of(x).hash(&mut h);
            }
        }
        other => format!("{other:?}").hash(&mut h),
    }
    h.finish()
}

/// Checks one record read for `name` (untrusted input).
pub(crate) fn validate(name: &str, v: &Value) -> ConfigRead {
    let Value::Array(f) = v else {
        return ConfigRead::Bad("not a record".into());
    };
    if f.len() != 7 {
        return ConfigRead::Bad("not a hash".into());
    }
    if f.iter().all(|x| matches!(x, Value::Nil)) {
        return ConfigRead::Missing;
    }
    let s: Vec<Option<&[u8]>> = f.iter().map(text_of).collect();
    if s[0] != Some(b"1".as_slice()) {
        return ConfigRead::Bad("unknown format version".into());
    }
    let Some(epoch) = s[1].and_then(parse_u64).filter(|&e| e > 0) else {
        return ConfigRead::Bad("bad epoch".into());
    };
    let Some(ver) = s[2]
        .and_then(parse_u64)
        .filter(|&v| (1..=MAX_VERSION).contains(&v))
    else {
        return ConfigRead::Bad("bad version".into());
    };
    if s[3] != Some(name.as_bytes()) {
        return ConfigRead::Bad("record of another name".into());
    }
    let Some(raw) = s[4] else {
        return ConfigRead::Bad("no config text".into());
    };
    if raw.len() > MAX_CONFIG_TEXT {
        return ConfigRead::Bad(format!("config text of {} bytes", raw.len()));
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return ConfigRead::Bad("config text is not UTF-8".into());
    };
    let origin = match s[5].map(std::str::from_utf8) {
        Some(Ok(o)) if valid_origin(o) => o.to_owned(),
        _ => return ConfigRead::Bad("bad origin".into()),
    };
    let Some(ts_ms) = s[6].and_then(parse_u64) else {
        return ConfigRead::Bad("bad timestamp".into());
    };
    match parse_config_text(text) {
        Ok(config) => ConfigRead::Found(Box::new(ConfigRecord {
            version: Version { epoch, ver },
            text: text.to_owned(),
            config,
            origin,
            ts_ms,
        })),
        Err(e) => ConfigRead::Bad(e.0),
    }
}

/// A config notice's hint: which breaker's config record to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigHint {
    /// Encoded breaker name.
    pub enc: String,
    /// The claimed version (display only: the record is always read).
    pub version: Version,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    v: u32,
    #[serde(borrow)]
    ns: &'a str,
    c: &'a str,
    e: &'a str,
    n: u64,
}

/// Parses a config notice strictly (size cap first, exact fields, this
/// namespace, a well-formed encoded name and version).
pub fn parse_config_notice(payload: &[u8], ns: &Namespace) -> Option<ConfigHint> {
    if payload.len() > MAX_CONFIG_NOTICE_BYTES {
        return None;
    }
    let w: Wire<'_> = serde_json::from_slice(payload).ok()?;
    if w.v != 1 || w.ns != ns.as_str() || !crate::keys::is_encoded(w.c) {
        return None;
    }
    let epoch = parse_u64(w.e.as_bytes()).filter(|&e| e > 0)?;
    if !(1..=MAX_VERSION).contains(&w.n) {
        return None;
    }
    Some(ConfigHint {
        enc: w.c.to_owned(),
        version: Version { epoch, ver: w.n },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_go_through_the_builder() {
        let c = parse_config_text(
            "consecutive_failures=3 open_duration=250ms count_window=50 failure_rate=0.5 \
             slow_call=0.5/200ms time_window=10s/10",
        );
        // count_window and time_window together: the builder refuses.
        assert!(c.unwrap_err().0.contains("count_window"));
        let c = parse_config_text("consecutive_failures=3 open_duration=250ms failure_rate=0.5")
            .unwrap();
        assert_eq!(c.consecutive_failures(), Some(3));
        assert_eq!(c.open_duration(), Duration::from_millis(250));
        assert_eq!(c.minimum_calls(), Config::default().minimum_calls());
        let c = parse_config_text("consecutive_failures=off failure_rate=0.25").unwrap();
        assert_eq!(c.consecutive_failures(), None);
        let c = parse_config_text("ramp=0.1/30s/3").unwrap();
        assert_eq!(
            c.ramp(),
            Some(RampPolicy {
                start: 0.1,
                duration: Duration::from_secs(30),
                steps: 3
            })
        );
        assert_eq!(
            parse_config_text("ramp=0.2/1m")
                .unwrap()
                .ramp()
                .unwrap()
                .steps,
            0
        );
        assert!(parse_config_text("ramp=1.5/30s").is_err());
        assert!(parse_config_text("ramp=0.1").is_err());
        for bad in [
            "",
            "  ",
            "nope=1",
            "consecutive_failures",
            "consecutive_failures=0",
            "consecutive_failures=-1",
            "consecutive_failures=3 consecutive_failures=4",
            "failure_rate=nan",
            "failure_rate=inf",
            "failure_rate=1.5",
            "jitter=1e-3",
            "open_duration=5parsecs",
            "slow_call=0.5",
            "metrics=yes",
        ] {
            assert!(parse_config_text(bad).is_err(), "{bad:?}");
        }
        assert!(parse_config_text(&"seed=1 ".repeat(200)).is_err());
    }

    #[test]
    fn digests_follow_the_bytes_read() {
        let rec = |cfg: Value| {
            let b = |t: &str| Value::BulkString(t.as_bytes().to_vec());
            Value::Array(vec![
                b("1"),
                b("17"),
                b("1"),
                b("db"),
                cfg,
                b("cli"),
                b("1"),
            ])
        };
        let bulk = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        let a = digest(&rec(bulk("nope=1")));
        assert_eq!(a, digest(&rec(bulk("nope=1"))));
        assert_ne!(a, digest(&rec(bulk("nope=2"))));
        // A missing field is not an empty one.
        assert_ne!(digest(&rec(Value::Nil)), digest(&rec(bulk(""))));
        let wrong = Value::Array(vec![bulk("WRONGTYPE")]);
        assert_eq!(digest(&wrong), digest(&wrong.clone()));
        assert_ne!(digest(&wrong), a);
    }

    #[test]
    fn config_notices_are_strict() {
        let ns = Namespace::new("t").unwrap();
        let good = r#"{"v":1,"ns":"t","c":"db","e":"1700000000000123","n":3}"#;
        let h = parse_config_notice(good.as_bytes(), &ns).unwrap();
        assert_eq!((h.enc.as_str(), h.version.ver), ("db", 3));
        for bad in [
            good.replace(r#""v":1"#, r#""v":2"#),
            good.replace(r#""ns":"t""#, r#""ns":"u""#),
            good.replace(r#""c":"db""#, r#""c":"a:b""#),
            good.replace(r#""n":3"#, r#""n":0"#),
            good.replace('}', r#","x":1}"#),
            "x".repeat(MAX_CONFIG_NOTICE_BYTES + 1),
        ] {
            assert!(parse_config_notice(bad.as_bytes(), &ns).is_none(), "{bad}");
        }
    }
}
