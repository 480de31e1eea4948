//! The two server-side scripts and the record they keep (SYNC.md
//! "Versioning", "The write script").
//!
//! Every change to a record goes through [`WRITE_LUA`], run with `EVALSHA`
//! (the `redis` crate's `Script` reloads it on `NOSCRIPT`). Its rules, in
//! the order it applies them:
//!
//! 1. **Arguments are checked**: numbers are canonical decimal integers of
//!    at most 15 digits, the namespace, origin and encoded name have their
//!    shapes, the keys are exactly `cb:{ns}:b:<enc>` and `cb:{ns}:idx`, and
//!    `enc` is the encoding of the raw name (the script recomputes the
//!    SHA-1), so no caller can write outside its namespace or under another
//!    name's key. Names and keys travel only in `KEYS`/`ARGV`. Durations are
//!    clamped to [`MAX_WINDOW_MS`].
//! 2. **The clock is the server's**: `TIME`, in milliseconds. No host clock
//!    crosses the network.
//! 3. **The stored record is untrusted**: every field is checked exactly as
//!    the Rust parser checks it ([`parse_fields`]): `epoch` a decimal of 1 to
//!    19 digits without a leading zero; `ver` an integer in
//!    `1..=`[`MAX_VERSION`] written as such (no sign, fraction, exponent or
//!    leading zero); `until`, `force_until` and `ts` integers in
//!    `0..=`[`MAX_MILLIS`]; `state` and `force` from their lists; `origin`
//!    an origin (`[A-Za-z0-9._:-]{1,64}`); `name` at most 1024 bytes and
//!    encoding to the key's `enc`. A record that fails any check (or a key
//!    of another type) is **malformed**: it is deleted and the write starts a
//!    new incarnation; the reply says so (`repaired`, counted by the
//!    workers). So a planted record can neither stall a writer (every reply
//!    parses) nor be adopted. A valid record whose stored `name` differs but
//!    encodes to the same key (a digest collision) is refused: `collision`.
//!    An index key of the wrong type is replaced the same way.
//! 4. **An expired override** (`force_until <= now`) counts as none.
//! 5. **Automatic transitions** (`auto`): refused with `override` while an
//!    override is live (operators win). An **open episode** is a record
//!    with `state = open` and `until > now` (server time): the running open
//!    window, from the write that opened it until `until` passes or another
//!    state is written. An automatic OPEN during an episode belongs to it
//!    (whatever version it was decided on: instances that tripped during a
//!    partition decided on an older one) and may only bring `until` forward:
//!    a deadline earlier than `until` replaces it (the first failure sets
//!    the expiry, so the fleet converges on the earliest deadline of the
//!    episode whatever order the writes arrive in), a later or equal one is
//!    refused with `running`. A HALF_OPEN is refused with `running` while
//!    more than `grace` milliseconds of the episode are left. Everything
//!    else is compare-and-set: the caller's `(epoch, ver)` must equal the
//!    record's (`0, 0` for a missing record), else `stale`. The open
//!    duration is clamped to `max_ms`.
//! 6. **Operator actions** (`force` with a mode and an optional duration,
//!    `clear`) always apply and land the automatic state in CLOSED (leaving
//!    an override returns to a fresh CLOSED, as in the core).
//! 7. **Every write** increments `ver` (Redis is the single sequencer, so
//!    version order is commit order), sets `epoch` to the server time in
//!    microseconds when it creates the key, writes all fields, sets the TTL
//!    to `ttl + the longest running window` (or removes it for an override
//!    without expiry), records the name in the namespace index, and
//!    publishes a notice on `cb:{ns}:ev`. **At [`MAX_VERSION`]** the next
//!    write starts a new incarnation (a new `epoch`, `ver = 1`), so versions
//!    never leave the range where Lua's doubles are exact.
//! 8. **Every reply** carries the server time, whether a malformed record
//!    was repaired, and the record as it is after the call, so a refused
//!    caller can adopt it at once.
//! 9. **Quorum votes** (`vote`, for breakers whose fleet policy is a
//!    quorum): the caller's trip is recorded as its vote in
//!    `cb:{ns}:v:<enc>` (one member per origin, scored by server time), and
//!    the caller is marked live in `cb:{ns}:live` until `now + live_ms`.
//!    Votes older than the window, and instances whose liveness has lapsed
//!    (a dead instance drops out), are removed first. The votes that count
//!    are those of live instances; `need` is the larger of `min_count` and
//!    `ceil(live * ppm / 10^6)`, at least 1. Below it the reply is
//!    `votes` with the counts and nothing else changes; at it, the call
//!    continues as an automatic OPEN (rule 5), and the votes are cleared
//!    only if that OPEN is written (a stale one keeps them for the retry).
//!    Both sets are untrusted: one of the wrong type, or one larger than
//!    `MAXVOTERS` members, is deleted (`repaired`).
//! 10. **Follow** (`follow`, a quorum breaker's local HALF_OPEN or
//!     CLOSED): written as an automatic change only while the record is not
//!     CLOSED (the instance takes part in a fleet episode); otherwise `idle`
//!     and nothing changes, so an instance that tripped alone never closes
//!     the others.

use std::time::Duration;

/// The values Redis replies with (what the parsers here take).
pub use redis::Value;

use crate::keys::valid_origin;

/// Version of the script protocol and of the notices; notices of any other
/// version are rejected.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest record version (`ver`): 15 decimal digits, far below 2^53, where
/// Lua numbers (doubles) stop being exact. A stored version above it is
/// malformed; a write to a record at it starts a new incarnation.
pub const MAX_VERSION: u64 = 999_999_999_999_999;

/// Largest time in a record (`until`, `force_until`, `ts`, Unix
/// milliseconds): 15 decimal digits (about the year 33658). Anything larger
/// is malformed.
pub const MAX_MILLIS: u64 = 999_999_999_999_999;

/// Longest open window, override or TTL the write script sets, in
/// milliseconds (one year, the longest duration a notice may carry).
pub const MAX_WINDOW_MS: u64 = crate::notice::MAX_NOTICE_MILLIS;

// Lua numbers are doubles: every integer the script computes with (a
// version plus one, a time plus a window) must stay exact.
const _: () = assert!(MAX_VERSION < (1 << 53) && MAX_MILLIS + MAX_WINDOW_MS < (1 << 53));

/// The write script (rules in the module docs). `MAXVER` and `MAXWIN` are
/// [`MAX_VERSION`] and [`MAX_WINDOW_MS`] (a unit test checks); 15 digits is
/// [`MAX_MILLIS`].
pub const WRITE_LUA: &str = concat!(
    r#"
local key, idx = KEYS[1], KEYS[2]
local op, name, enc, arg = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local xe, origin, ns = ARGV[6], ARGV[8], ARGV[11]
local MAXVER, MAXWIN, MAXNAME = 999999999999999, 31536000000, 1024
local MAXVOTERS, MAXLIVE = 1000, 100000
"#,
    lua_prelude!(),
    r#"local function bad(why) return {'bad', why} end
local function originok(s)
  return type(s) == 'string' and #s >= 1 and #s <= 64 and string.find(s, '^[%w%._:%-]+$') ~= nil
end
local states = {closed = true, open = true, half_open = true}
local modes = {open = true, closed = true, disabled = true, metrics_only = true}
local dur, xv, maxms = uint(ARGV[5]), uint(ARGV[7]), uint(ARGV[9])
local ttl, grace = uint(ARGV[10]), uint(ARGV[12])
if not (dur and xv and maxms and ttl and grace) or maxms < 1 or ttl < 1
    or not (xe == '0' or epochok(xe)) then
  return bad('number')
end
local window, needc, needppm, livems = 0, 0, 0, 0
if op == 'vote' then
  window, needc, needppm, livems = uint(ARGV[13]), uint(ARGV[14]), uint(ARGV[15]), uint(ARGV[16])
  if not (window and needc and needppm and livems) or window < 1 or livems < 1
      or needc > 1000000 or needppm > 1000000 then
    return bad('number')
  end
  window, livems = math.min(window, MAXWIN), math.min(livems, MAXWIN)
end
maxms, ttl = math.min(maxms, MAXWIN), math.min(ttl, MAXWIN)
if #ns > 64 or not string.find(ns, '^[%w%._%-]+$') then return bad('namespace') end
if not originok(origin) then return bad('origin') end
local prefix = 'cb:{' .. ns .. '}:'
if key ~= prefix .. 'b:' .. enc or idx ~= prefix .. 'idx' then return bad('keys') end
if op == 'vote' and (KEYS[3] ~= prefix .. 'live' or KEYS[4] ~= prefix .. 'v:' .. enc) then
  return bad('keys')
end
if #name > MAXNAME or encode(name) ~= enc then return bad('encoding') end
if op == 'auto' or op == 'follow' then
  if not states[arg] then return bad('state') end
elseif op == 'vote' then
  if arg ~= 'open' then return bad('state') end
elseif op == 'force' then
  if not modes[arg] then return bad('mode') end
elseif op ~= 'clear' then
  return bad('op')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local repaired = 0
local exists = false
local epoch, ver, state, untl, force, fu, rorigin, rts = '0', 0, 'closed', 0, '', 0, '', '0'
local ok, f = pcall(redis.call, 'HMGET', key, 'epoch', 'ver', 'state', 'until', 'force',
  'force_until', 'origin', 'ts', 'name')
local present = not ok
if ok then
  for i = 1, 9 do if f[i] then present = true end end
end
if present then
  local v, u, fuu
  if ok then v, u, fuu = uint(f[2]), uint(f[4]), uint(f[6]) end
  if ok and epochok(f[1]) and v and v >= 1 and v <= MAXVER and states[f[3]] and u
      and (f[5] == '' or modes[f[5]]) and fuu and originok(f[7]) and uint(f[8])
      and type(f[9]) == 'string' and #f[9] <= MAXNAME and encode(f[9]) == enc then
    if f[9] ~= name then return {'collision', fmt(now), '0'} end
    exists = true
    epoch, ver, state, untl, force, fu, rorigin, rts = f[1], v, f[3], u, f[5], fuu, f[7], f[8]
  else
    redis.call('DEL', key)
    repaired = 1
  end
end
if force ~= '' and fu > 0 and fu <= now then force = ''; fu = 0 end
local function reply(status)
  if not exists then return {status, fmt(now), fmt(repaired)} end
  return {status, fmt(now), fmt(repaired), epoch, fmt(ver), state, fmt(untl), force, fmt(fu),
    rorigin, rts}
end
if op == 'follow' then
  if state == 'closed' then return reply('idle') end
  op = 'auto'
end
if op == 'vote' and force == '' and exists and state == 'open' and untl > now then
  op = 'auto' -- a running episode: the trip belongs to it (rule 5)
end
local spent = nil
if op == 'vote' then
  local live, votes = KEYS[3], KEYS[4]
  local function tidy(k, floor, cap)
    local ok, n = pcall(redis.call, 'ZREMRANGEBYSCORE', k, '-inf', '(' .. fmt(floor))
    if ok then ok, n = pcall(redis.call, 'ZCARD', k) end
    if not ok or n > cap then
      redis.call('DEL', k)
      repaired = 1
    end
  end
  tidy(live, now, MAXLIVE)
  tidy(votes, now - window, MAXVOTERS)
  redis.call('ZADD', live, fmt(now + livems), origin)
  if redis.call('PTTL', live) < livems then redis.call('PEXPIRE', live, fmt(livems)) end
  redis.call('ZADD', votes, fmt(now), origin)
  if redis.call('PTTL', votes) < window then redis.call('PEXPIRE', votes, fmt(window)) end
  local nlive = redis.call('ZCARD', live)
  local n = 0
  for _, o in ipairs(redis.call('ZRANGE', votes, 0, -1)) do
    if redis.call('ZSCORE', live, o) then n = n + 1 end
  end
  local need = math.max(needc, math.floor((nlive * needppm + 999999) / 1000000), 1)
  if n < need then
    return {'votes', fmt(now), fmt(repaired), fmt(n), fmt(nlive), fmt(need)}
  end
  spent = votes
  op = 'auto'
end
if op == 'auto' then
  if force ~= '' then return reply('override') end
  local running = exists and state == 'open' and untl > now
  local want = now + math.min(dur, maxms)
  if running and arg == 'open' then
    if want >= untl then return reply('running') end
  else
    if running and arg == 'half_open' and untl - now > grace then return reply('running') end
    if epoch ~= xe or ver ~= xv then return reply('stale') end
  end
  state = arg
  if arg == 'open' then untl = want else untl = 0 end
elseif op == 'force' then
  force = arg
  if dur > 0 then fu = now + math.min(dur, maxms) else fu = 0 end
  state = 'closed'; untl = 0
else
  force = ''; fu = 0; state = 'closed'; untl = 0
end
if not exists or ver >= MAXVER then
  epoch = t[1] .. string.format('%06d', tonumber(t[2]))
  ver = 0
end
ver = ver + 1
local rem = 0
if state == 'open' then rem = untl - now end
local frem = 0
if force ~= '' then if fu == 0 then frem = -1 else frem = fu - now end end
if spent then redis.call('DEL', spent) end
redis.call('HSET', key, 'epoch', epoch, 'ver', fmt(ver), 'state', state, 'until', fmt(untl),
  'force', force, 'force_until', fmt(fu), 'origin', origin, 'ts', fmt(now), 'name', name)
local expires
if force ~= '' and fu == 0 then
  redis.call('PERSIST', key)
  expires = '+inf'
else
  local life = ttl + math.max(untl, fu, now) - now
  redis.call('PEXPIRE', key, fmt(life))
  expires = fmt(now + life)
end
if not pcall(redis.call, 'ZREMRANGEBYSCORE', idx, '-inf', '(' .. fmt(now)) then
  redis.call('DEL', idx)
  repaired = 1
end
redis.call('ZADD', idx, expires, enc)
redis.call('PUBLISH', prefix .. 'ev', '{"v":1,"ns":"' .. ns .. '","k":"' .. enc ..
  '","e":"' .. epoch .. '","n":' .. fmt(ver) .. ',"s":"' .. state .. '","r":' .. fmt(rem) ..
  ',"f":"' .. force .. '","fr":' .. fmt(frem) .. ',"o":"' .. origin .. '"}')
return {'ok', fmt(now), fmt(repaired), epoch, fmt(ver), state, fmt(untl), force, fmt(fu),
  origin, fmt(now)}
"#
);

/// The heartbeat script: marks the caller (`ARGV[2]`, an origin) live in
/// `cb:{ns}:live` (`KEYS[1]`, namespace `ARGV[1]`) until server time plus
/// `ARGV[3]` ms, after removing the instances whose liveness lapsed.
/// Replies `{now_ms, live}`, or `{'bad', why}`. A set of the wrong type or
/// larger than `MAXLIVE` members is deleted first (untrusted content).
pub const HEARTBEAT_LUA: &str = r#"
local ns, origin, ms = ARGV[1], ARGV[2], ARGV[3]
local MAXWIN, MAXLIVE = 31536000000, 100000
if type(ns) ~= 'string' or #ns > 64 or not string.find(ns, '^[%w%._%-]+$') then
  return {'bad', 'namespace'}
end
if type(origin) ~= 'string' or #origin < 1 or #origin > 64
    or not string.find(origin, '^[%w%._:%-]+$') then
  return {'bad', 'origin'}
end
if type(ms) ~= 'string' or not string.find(ms, '^[1-9]%d*$') or #ms > 15 then
  return {'bad', 'number'}
end
if KEYS[1] ~= 'cb:{' .. ns .. '}:live' then return {'bad', 'keys'} end
ms = math.min(tonumber(ms), MAXWIN)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ok, n = pcall(redis.call, 'ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now))
if ok then ok, n = pcall(redis.call, 'ZCARD', KEYS[1]) end
if not ok or n > MAXLIVE then redis.call('DEL', KEYS[1]) end
redis.call('ZADD', KEYS[1], string.format('%d', now + ms), origin)
if redis.call('PTTL', KEYS[1]) < ms then redis.call('PEXPIRE', KEYS[1], string.format('%d', ms)) end
return {string.format('%d', now), string.format('%d', redis.call('ZCARD', KEYS[1]))}
"#;

/// The votes script (read only, for operators): server `TIME`, then the
/// first 1000 members of `KEYS[1]` (a breaker's votes) and of `KEYS[2]`
/// (the live instances), each with its score; a set of the wrong type
/// reads as `false`.
pub const VOTES_LUA: &str = r#"
local t = redis.call('TIME')
local out = {t[1], t[2]}
for i = 1, 2 do
  local ok, m = pcall(redis.call, 'ZRANGE', KEYS[i], 0, 999, 'WITHSCORES')
  if ok then out[i + 2] = m else out[i + 2] = false end
end
return out
"#;

/// One instance's vote, as read by operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// Who voted.
    pub origin: String,
    /// How long ago, by server time.
    pub age: Duration,
    /// Whether the instance is live now (only live votes count).
    pub live: bool,
}

/// Parses the votes script's reply: server time (Unix ms), the votes
/// (newest first) and how many instances are live. Members that are not
/// origins and scores that are not integers in range are skipped.
pub(crate) fn parse_votes_reply(v: &Value) -> Option<(u64, Vec<Vote>, u64)> {
    let Value::Array(items) = v else {
        return None;
    };
    if items.len() != 4 {
        return None;
    }
    let sec = parse_u64(bytes(&items[0])?)?;
    let usec = parse_u64(bytes(&items[1])?)?;
    let now = sec.checked_mul(1000)?.checked_add(usec / 1000)?;
    let pairs = |v: &Value| -> Vec<(String, u64)> {
        let Value::Array(m) = v else {
            return Vec::new();
        };
        m.chunks(2)
            .filter_map(|c| {
                let origin = std::str::from_utf8(bytes(c.first()?)?).ok()?;
                let score = millis(bytes(c.get(1)?)?)?;
                valid_origin(origin).then(|| (origin.to_owned(), score))
            })
            .collect()
    };
    let live: Vec<(String, u64)> = pairs(&items[3])
        .into_iter()
        .filter(|(_, until)| *until >= now)
        .collect();
    let mut votes: Vec<Vote> = pairs(&items[2])
        .into_iter()
        .map(|(origin, at)| Vote {
            live: live.iter().any(|(o, _)| *o == origin),
            age: Duration::from_millis(now.saturating_sub(at)),
            origin,
        })
        .collect();
    votes.sort_by_key(|v| v.age);
    Some((now, votes, live.len() as u64))
}

/// The read script: server `TIME` and the fields of every key in `KEYS`, in
/// one round trip on the node that owns the namespace's slot (so the time
/// and the records come from the same server, also in a cluster). A key of
/// the wrong type, or a record with a field longer than any valid one (1024
/// bytes, the longest name), reads as `false` (corrupt) instead of failing
/// the batch or filling the reply.
pub const READ_LUA: &str = r#"
local t = redis.call('TIME')
local out = {t[1], t[2]}
for i = 1, #KEYS do
  local ok, f = pcall(redis.call, 'HMGET', KEYS[i], 'epoch', 'ver', 'state', 'until', 'force',
    'force_until', 'origin', 'ts', 'name')
  if ok then
    for j = 1, 9 do
      if f[j] and #f[j] > 1024 then ok = false end
    end
  end
  if ok then out[i + 2] = f else out[i + 2] = false end
end
return out
"#;

/// Fields of a record, in the order both scripts read them.
pub const FIELDS: [&str; 9] = [
    "epoch",
    "ver",
    "state",
    "until",
    "force",
    "force_until",
    "origin",
    "ts",
    "name",
];

/// Largest accepted field value (the raw name may be up to
/// `circuit_core::registry::MAX_NAME_LEN` bytes; everything else is short).
const MAX_FIELD_LEN: usize = circuit_core::registry::MAX_NAME_LEN;

/// The automatic state kept in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AutoState {
    /// Calls pass.
    Closed,
    /// Calls refused until `until`.
    Open,
    /// Probing.
    HalfOpen,
}

impl AutoState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoState::Closed => "closed",
            AutoState::Open => "open",
            AutoState::HalfOpen => "half_open",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &[u8]) -> Option<AutoState> {
        match s {
            b"closed" => Some(AutoState::Closed),
            b"open" => Some(AutoState::Open),
            b"half_open" => Some(AutoState::HalfOpen),
            _ => None,
        }
    }
}

/// An operator override kept in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForceMode {
    /// Reject all calls.
    Open,
    /// Admit all calls, never trip.
    Closed,
    /// Admit all, record nothing.
    Disabled,
    /// Admit all, shadow-evaluate trips.
    MetricsOnly,
}

impl ForceMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ForceMode::Open => "open",
            ForceMode::Closed => "closed",
            ForceMode::Disabled => "disabled",
            ForceMode::MetricsOnly => "metrics_only",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &[u8]) -> Option<ForceMode> {
        match s {
            b"open" => Some(ForceMode::Open),
            b"closed" => Some(ForceMode::Closed),
            b"disabled" => Some(ForceMode::Disabled),
            b"metrics_only" => Some(ForceMode::MetricsOnly),
            _ => None,
        }
    }

    /// The core override this mode stands for.
    pub fn to_override(self) -> circuit_core::Override {
        match self {
            ForceMode::Open => circuit_core::Override::ForcedOpen,
            ForceMode::Closed => circuit_core::Override::ForcedClosed,
            ForceMode::Disabled => circuit_core::Override::Disabled,
            ForceMode::MetricsOnly => circuit_core::Override::MetricsOnly,
        }
    }

    /// The mode of a core override.
    pub fn from_override(o: circuit_core::Override) -> ForceMode {
        match o {
            circuit_core::Override::ForcedOpen => ForceMode::Open,
            circuit_core::Override::ForcedClosed => ForceMode::Closed,
            circuit_core::Override::Disabled => ForceMode::Disabled,
            circuit_core::Override::MetricsOnly => ForceMode::MetricsOnly,
        }
    }

    /// The core state a breaker under this override shows.
    pub fn to_state(self) -> circuit_core::State {
        match self {
            ForceMode::Open => circuit_core::State::ForcedOpen,
            ForceMode::Closed => circuit_core::State::ForcedClosed,
            ForceMode::Disabled => circuit_core::State::Disabled,
            ForceMode::MetricsOnly => circuit_core::State::MetricsOnly,
        }
    }
}

/// `(epoch, ver)`: the record's incarnation and its version within it.
/// Ordered lexicographically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Server time (microseconds) when the key was created.
    pub epoch: u64,
    /// Incremented by every write.
    pub ver: u64,
}

impl Version {
    /// The version of a missing record, which compare-and-set uses.
    pub const MISSING: Version = Version { epoch: 0, ver: 0 };
}

/// A record as read from Redis, validated, with durations relative to the
/// server time of the same read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Incarnation and version.
    pub version: Version,
    /// The automatic state.
    pub state: AutoState,
    /// OPEN: time left in the open window (zero once it has passed).
    pub open_remaining: Duration,
    /// A live override: its mode and the time left (`None`: no expiry).
    pub force: Option<(ForceMode, Option<Duration>)>,
    /// Who wrote last (instance id or `cli`).
    pub origin: String,
    /// Server time of the last write, Unix milliseconds.
    pub ts_ms: u64,
    /// Server time of this read, Unix milliseconds.
    pub now_ms: u64,
    /// Absolute open deadline, Unix milliseconds (0 when not OPEN).
    pub until_ms: u64,
    /// Absolute override expiry, Unix milliseconds (0: none or no expiry).
    pub force_until_ms: u64,
}

impl Record {
    /// What a breaker following this record should show.
    pub fn effective_state(&self) -> circuit_core::State {
        match (self.force, self.state) {
            (Some((m, _)), _) => m.to_state(),
            (None, AutoState::Closed) => circuit_core::State::Closed,
            (None, AutoState::Open) => circuit_core::State::Open,
            (None, AutoState::HalfOpen) => circuit_core::State::HalfOpen,
        }
    }
}

/// What reading one key gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// No key (which means CLOSED).
    Missing,
    /// A valid record of this name.
    Found(Record),
    /// Fields that do not parse, or a record of another name.
    Corrupt,
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) if b.len() <= MAX_FIELD_LEN => Some(b),
        Value::SimpleString(s) if s.len() <= MAX_FIELD_LEN => Some(s.as_bytes()),
        _ => None,
    }
}

fn is_nil(v: &Value) -> bool {
    matches!(v, Value::Nil)
}

/// Parses a decimal `u64` of at most 19 digits, no sign, no leading zero
/// (except "0").
pub(crate) fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

fn millis(b: &[u8]) -> Option<u64> {
    parse_u64(b).filter(|&n| n <= MAX_MILLIS)
}

/// Validates the fields of one record (in [`FIELDS`] order) against the
/// expected raw `name`, with `now_ms` the server time of the read. A record
/// is [`Read::Found`] only when every field is exactly what the write script
/// writes (module docs, rule 3): nothing is rounded, trimmed or defaulted.
pub fn parse_fields(fields: &[Value], name: &str, now_ms: u64) -> Read {
    if fields.len() != FIELDS.len() {
        return Read::Corrupt;
    }
    if fields.iter().all(is_nil) {
        return Read::Missing;
    }
    parse_present(fields, Some(name), now_ms).map_or(Read::Corrupt, Read::Found)
}

/// As [`parse_fields`] without checking the name; returns the stored name.
pub(crate) fn parse_any(fields: &[Value], now_ms: u64) -> Option<(String, Record)> {
    if fields.len() != FIELDS.len() {
        return None;
    }
    let name = std::str::from_utf8(bytes(&fields[8])?).ok()?.to_owned();
    let rec = parse_present(fields, None, now_ms)?;
    Some((name, rec))
}

fn parse_present(fields: &[Value], name: Option<&str>, now_ms: u64) -> Option<Record> {
    let f = |i: usize| bytes(&fields[i]);
    let epoch = parse_u64(f(0)?).filter(|&e| e > 0)?;
    let ver = parse_u64(f(1)?).filter(|&v| (1..=MAX_VERSION).contains(&v))?;
    let state = AutoState::parse(f(2)?)?;
    let until_ms = millis(f(3)?)?;
    let force_raw = f(4)?;
    let force_until_ms = millis(f(5)?)?;
    let origin = std::str::from_utf8(f(6)?)
        .ok()
        .filter(|o| valid_origin(o))?;
    let ts_ms = millis(f(7)?)?;
    let stored_name = f(8)?;
    if let Some(n) = name {
        if stored_name != n.as_bytes() {
            return None;
        }
    }
    let force = if force_raw.is_empty() {
        None
    } else {
        let mode = ForceMode::parse(force_raw)?;
        if force_until_ms == 0 {
            Some((mode, None))
        } else if force_until_ms > now_ms {
            Some((mode, Some(Duration::from_millis(force_until_ms - now_ms))))
        } else {
            None // expired
        }
    };
    let open_remaining = if state == AutoState::Open {
        Duration::from_millis(until_ms.saturating_sub(now_ms))
    } else {
        Duration::ZERO
    };
    Some(Record {
        version: Version { epoch, ver },
        state,
        open_remaining,
        force,
        origin: origin.to_owned(),
        ts_ms,
        now_ms,
        until_ms,
        force_until_ms,
    })
}

/// The outcome of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStatus {
    /// Written and published.
    Ok,
    /// Compare-and-set failed: the record has another version.
    Stale,
    /// An OPEN (or early HALF_OPEN) against a running open window.
    Running,
    /// An automatic change while an operator override is live.
    Override,
    /// Another name owns this key (digest collision).
    Collision,
    /// A quorum vote was recorded; too few live instances have voted yet
    /// ([`WriteReply::votes`]). Nothing else changed.
    Votes,
    /// A `follow` while the record is CLOSED: nothing to follow, nothing
    /// changed.
    Idle,
}

impl WriteStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteStatus::Ok => "ok",
            WriteStatus::Stale => "stale",
            WriteStatus::Running => "running",
            WriteStatus::Override => "override",
            WriteStatus::Collision => "collision",
            WriteStatus::Votes => "votes",
            WriteStatus::Idle => "idle",
        }
    }
}

/// The script's answer: its status and the record after the call (`None`
/// when the key does not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReply {
    /// What happened.
    pub status: WriteStatus,
    /// Server time, Unix milliseconds.
    pub now_ms: u64,
    /// The record now.
    pub record: Option<Record>,
    /// The stored record (or the namespace index) was malformed and the
    /// script replaced it.
    pub repaired: bool,
    /// [`WriteStatus::Votes`]: the votes of live instances, the live
    /// instances, and the votes needed.
    pub votes: Option<VoteCount>,
}

/// Where a quorum vote stands (write script rule 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteCount {
    /// Live instances that voted within the window, this one included.
    pub votes: u64,
    /// Live instances.
    pub live: u64,
    /// Votes needed to open the breaker fleet-wide.
    pub need: u64,
}

/// Parses the write script's reply. `Err` carries a description of a reply
/// that does not have the expected shape (including `bad` argument
/// rejections).
pub fn parse_write_reply(v: &Value) -> Result<WriteReply, String> {
    let Value::Array(items) = v else {
        return Err(format!("unexpected reply {v:?}"));
    };
    let text = |i: usize| items.get(i).and_then(bytes);
    let status = match text(0) {
        Some(b"ok") => WriteStatus::Ok,
        Some(b"stale") => WriteStatus::Stale,
        Some(b"running") => WriteStatus::Running,
        Some(b"override") => WriteStatus::Override,
        Some(b"collision") => WriteStatus::Collision,
        Some(b"idle") => WriteStatus::Idle,
        Some(b"votes") => WriteStatus::Votes,
        Some(b"bad") => {
            let why = text(1).map(String::from_utf8_lossy).unwrap_or_default();
            return Err(format!("the write script refused its arguments: {why}"));
        }
        _ => return Err("unexpected reply status".into()),
    };
    let now_ms = text(1)
        .and_then(millis)
        .ok_or("reply without server time")?;
    let repaired = match text(2) {
        Some(b"0") => false,
        Some(b"1") => true,
        _ => return Err("reply without the repair flag".into()),
    };
    if status == WriteStatus::Votes {
        // Small counts: at most MAXLIVE live instances.
        let count = |i: usize| text(i).and_then(parse_u64).filter(|&n| n <= 1_000_000);
        let (Some(votes), Some(live), Some(need), 6) = (count(3), count(4), count(5), items.len())
        else {
            return Err("a votes reply without its counts".into());
        };
        return Ok(WriteReply {
            status,
            now_ms,
            record: None,
            repaired,
            votes: Some(VoteCount { votes, live, need }),
        });
    }
    let record = if items.len() == 3 {
        None
    } else if items.len() == 11 {
        // Reply fields: epoch ver state until force force_until origin ts;
        // the name is the caller's.
        let mut fields: Vec<Value> = items[3..11].to_vec();
        fields.push(Value::BulkString(Vec::new()));
        Some(parse_present(&fields, None, now_ms).ok_or("reply with a corrupt record")?)
    } else {
        return Err(format!("reply with {} items", items.len()));
    };
    Ok(WriteReply {
        status,
        now_ms,
        record,
        repaired,
        votes: None,
    })
}

/// Parses the read script's reply for the records of `names` (raw names, in
/// `KEYS` order): the server time of the read (Unix ms) and one result per
/// name. `None` when the reply does not have that shape. Each record is
/// validated on its own: a malformed one reads as [`Read::Corrupt`] and
/// changes nothing about the others.
pub fn parse_read_reply(v: Value, names: &[&str]) -> Option<(u64, Vec<Read>)> {
    let (now, recs) = split_read_reply(v, names.len())?;
    let reads = recs
        .iter()
        .zip(names)
        .map(|(f, name)| parse_fields(f, name, now))
        .collect();
    Some((now, reads))
}

/// Splits the read script's reply into the server time (Unix ms) and one
/// field list per key. `None` when the reply does not have that shape.
pub(crate) fn split_read_reply(v: Value, keys: usize) -> Option<(u64, Vec<Vec<Value>>)> {
    let Value::Array(items) = v else {
        return None;
    };
    if items.len() != keys + 2 {
        return None;
    }
    let mut it = items.into_iter();
    let sec = parse_u64(bytes(&it.next()?)?)?;
    let usec = parse_u64(bytes(&it.next()?)?)?;
    let now_ms = sec.checked_mul(1000)?.checked_add(usec / 1000)?;
    let recs = it
        .map(|v| match v {
            Value::Array(f) => f,
            // `false` from a key of the wrong type: corrupt.
            _ => vec![Value::Int(0)],
        })
        .collect();
    Some((now_ms, recs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn rec(fields: [&str; 9]) -> Vec<Value> {
        fields.iter().map(|s| bulk(s)).collect()
    }

    #[test]
    fn records_parse_strictly() {
        let now = 1_700_000_000_000;
        let good = rec([
            "1700000000000123",
            "4",
            "open",
            "1700000002000",
            "",
            "0",
            "node-1",
            "1700000000000",
            "db",
        ]);
        let Read::Found(r) = parse_fields(&good, "db", now) else {
            panic!()
        };
        assert_eq!(r.version.ver, 4);
        assert_eq!(r.open_remaining, Duration::from_secs(2));
        assert_eq!(r.effective_state(), circuit_core::State::Open);
        assert_eq!(parse_fields(&good, "other", now), Read::Corrupt);
        assert_eq!(parse_fields(&vec![Value::Nil; 9], "db", now), Read::Missing);
        for (i, bad) in [
            (0, "0"),
            (0, "-1"),
            (1, "x"),
            (1, "0"),
            (2, "opened"),
            (3, "99999999999999999999"),
            (4, "sideways"),
            (5, "01"),
            (1, "1.5"),
            (1, "1e19"),
            (1, "9007199254740991"),
            (1, "1000000000000000"),
            (3, "9007199254741002"),
            (7, "bogus"),
            (6, "a b"),
            (6, ""),
        ] {
            let mut f = good.clone();
            f[i] = bulk(bad);
            assert_eq!(
                parse_fields(&f, "db", now),
                Read::Corrupt,
                "field {i} = {bad}"
            );
        }
        let mut f = good.clone();
        f[3] = Value::Nil;
        assert_eq!(parse_fields(&f, "db", now), Read::Corrupt);
        assert_eq!(parse_fields(&good[..8], "db", now), Read::Corrupt);
    }

    #[test]
    fn overrides_expire_by_server_time() {
        let now = 1_700_000_000_000u64;
        let mut f = rec([
            "1700000000000123",
            "2",
            "closed",
            "0",
            "open",
            "1700000005000",
            "cli",
            "1700000000000",
            "db",
        ]);
        let Read::Found(r) = parse_fields(&f, "db", now) else {
            panic!()
        };
        assert_eq!(
            r.force,
            Some((ForceMode::Open, Some(Duration::from_secs(5))))
        );
        let Read::Found(r) = parse_fields(&f, "db", now + 5_000) else {
            panic!()
        };
        assert_eq!(r.force, None);
        f[5] = bulk("0");
        let Read::Found(r) = parse_fields(&f, "db", now) else {
            panic!()
        };
        assert_eq!(r.force, Some((ForceMode::Open, None)));
    }

    #[test]
    fn write_replies() {
        let v = Value::Array(vec![
            bulk("running"),
            bulk("1700000000000"),
            bulk("0"),
            bulk("1700000000000123"),
            bulk("3"),
            bulk("open"),
            bulk("1700000001000"),
            bulk(""),
            bulk("0"),
            bulk("a"),
            bulk("1699999999000"),
        ]);
        let r = parse_write_reply(&v).unwrap();
        assert_eq!(r.status, WriteStatus::Running);
        assert!(!r.repaired);
        assert_eq!(
            r.record.unwrap().open_remaining,
            Duration::from_millis(1000)
        );
        let v = Value::Array(vec![bulk("bad"), bulk("origin")]);
        assert!(parse_write_reply(&v).unwrap_err().contains("origin"));
        let v = Value::Array(vec![bulk("stale"), bulk("5"), bulk("1")]);
        let r = parse_write_reply(&v).unwrap();
        assert_eq!(r.record, None);
        assert!(r.repaired);
        assert!(parse_write_reply(&Value::Array(vec![bulk("stale"), bulk("5")])).is_err());
        assert!(parse_write_reply(&Value::Nil).is_err());
        let v = Value::Array(vec![
            bulk("votes"),
            bulk("5"),
            bulk("0"),
            bulk("1"),
            bulk("3"),
            bulk("2"),
        ]);
        let r = parse_write_reply(&v).unwrap();
        assert_eq!(r.status, WriteStatus::Votes);
        assert_eq!(
            r.votes,
            Some(VoteCount {
                votes: 1,
                live: 3,
                need: 2
            })
        );
        for bad in ["-1", "x", "99999999"] {
            let v = Value::Array(vec![
                bulk("votes"),
                bulk("5"),
                bulk("0"),
                bulk(bad),
                bulk("3"),
                bulk("2"),
            ]);
            assert!(parse_write_reply(&v).is_err(), "{bad}");
        }
        let v = Value::Array(vec![bulk("idle"), bulk("5"), bulk("0")]);
        assert_eq!(parse_write_reply(&v).unwrap().status, WriteStatus::Idle);
    }

    #[test]
    fn votes_replies_skip_what_is_not_a_vote() {
        let reply = Value::Array(vec![
            bulk("1700000000"),
            bulk("500000"),
            Value::Array(vec![
                bulk("node-1"),
                bulk("1699999999000"),
                bulk("bad origin!"),
                bulk("1699999999000"),
                bulk("node-2"),
                bulk("1.5"),
                bulk("node-3"),
                bulk("1700000000400"),
            ]),
            Value::Array(vec![
                bulk("node-3"),
                bulk("1700000009000"),
                bulk("node-1"),
                bulk("1699999000000"),
            ]),
        ]);
        let (now, votes, live) = parse_votes_reply(&reply).unwrap();
        assert_eq!(now, 1_700_000_000_500);
        assert_eq!(live, 1);
        let got: Vec<_> = votes
            .iter()
            .map(|v| (v.origin.as_str(), v.age.as_millis(), v.live))
            .collect();
        assert_eq!(got, [("node-3", 100, true), ("node-1", 1500, false)]);
        let wrong_type = Value::Array(vec![
            bulk("1700000000"),
            bulk("0"),
            Value::Boolean(false),
            Value::Nil,
        ]);
        assert_eq!(
            parse_votes_reply(&wrong_type).unwrap(),
            (1_700_000_000_000, vec![], 0)
        );
        assert!(parse_votes_reply(&Value::Array(vec![])).is_none());
    }

    #[test]
    fn versions_and_times_are_bounded_integers() {
        let now = 1_700_000_000_000;
        let mut f = rec([
            "1700000000000123",
            "999999999999999",
            "closed",
            "999999999999999",
            "",
            "0",
            "node-1",
            "999999999999999",
            "db",
        ]);
        let Read::Found(r) = parse_fields(&f, "db", now) else {
            panic!()
        };
        assert_eq!(r.version.ver, MAX_VERSION);
        assert_eq!(r.until_ms, MAX_MILLIS);
        f[1] = bulk("1000000000000000");
        assert_eq!(parse_fields(&f, "db", now), Read::Corrupt);
    }

    #[test]
    fn the_script_uses_the_same_bounds() {
        assert!(WRITE_LUA.contains(&format!(
            "local MAXVER, MAXWIN, MAXNAME = {MAX_VERSION}, {MAX_WINDOW_MS}, {}",
            circuit_core::registry::MAX_NAME_LEN
        )));
        // 15 digits: the largest version and time.
        assert_eq!(MAX_VERSION.to_string().len(), 15);
        assert_eq!(MAX_MILLIS.to_string().len(), 15);
        assert!(WRITE_LUA.contains("#s > 15"));
        assert!(READ_LUA.contains(&format!("#f[j] > {MAX_FIELD_LEN}")));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), None); // 20 digits
        assert_eq!(
            parse_u64(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"007"), None);
    }
}
