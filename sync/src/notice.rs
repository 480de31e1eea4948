//! Change notices on `cb:{<ns>}:ev` (SYNC.md "Fan-out"): untrusted input,
//! capped in size before parsing, parsed strictly.
//!
//! The write script publishes, after every write, one JSON object with
//! exactly these fields:
//!
//! | field | meaning |
//! |---|---|
//! | `v`  | protocol version, must be [`PROTOCOL_VERSION`] |
//! | `ns` | namespace, must be the subscriber's |
//! | `k`  | encoded breaker name (`enc(name)`) |
//! | `e`  | epoch (decimal string, server microseconds) |
//! | `n`  | version within the epoch |
//! | `s`  | automatic state: `closed`, `open`, `half_open` |
//! | `r`  | OPEN: milliseconds left in the window, by server time |
//! | `f`  | override: `""`, `open`, `closed`, `disabled`, `metrics_only` |
//! | `fr` | override: milliseconds left, `-1` for no expiry, `0` when none |
//! | `o`  | origin of the write |
//!
//! Anything else (another size, unknown or duplicate fields, another version
//! or namespace, out-of-range integers) is rejected and counted as
//! malformed.
//!
//! **A notice is only a hint.** Anyone who may publish on the channel can
//! forge one, so a worker never takes state from a notice: it keeps only
//! the key and the version ([`Notice::hint`]) and, unless that version is
//! one it has already applied or an older one of the same incarnation,
//! reads the record itself (the hints of one turn in one batched read) and
//! applies what the read returns, validated like any record. Versions in
//! notices never enter the worker's staleness filter, which holds only
//! versions of records it read or wrote.

use std::time::Duration;

use serde::Deserialize;

use crate::keys::{is_encoded, valid_origin, Namespace};
use crate::script::{parse_u64, AutoState, ForceMode, Version, MAX_VERSION, PROTOCOL_VERSION};

/// Notices larger than this are rejected unread (the largest valid one is
/// about 330 bytes).
pub const MAX_NOTICE_BYTES: usize = 512;

/// Longest duration a notice may carry, in milliseconds (one year); larger
/// values are malformed. Receivers clamp further to the breaker's own
/// maximum open duration.
pub const MAX_NOTICE_MILLIS: u64 = 365 * 24 * 3600 * 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    v: u32,
    #[serde(borrow)]
    ns: &'a str,
    k: &'a str,
    e: &'a str,
    n: u64,
    s: &'a str,
    r: u64,
    f: &'a str,
    fr: i64,
    o: &'a str,
}

/// A validated notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Encoded breaker name.
    pub enc: String,
    /// Version of the record it announces.
    pub version: Version,
    /// Automatic state.
    pub state: AutoState,
    /// OPEN: time left in the window at publication.
    pub open_remaining: Duration,
    /// Live override and its time left (`None`: no expiry).
    pub force: Option<(ForceMode, Option<Duration>)>,
    /// Who wrote.
    pub origin: String,
}

/// What a worker keeps of a notice: which record to read, and the version
/// the notice claims (used only to skip a read the worker knows is
/// useless).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// Encoded breaker name.
    pub enc: String,
    /// The claimed version.
    pub version: Version,
}

impl Notice {
    /// The hint in this notice (everything else is display only).
    pub fn hint(&self) -> Hint {
        Hint {
            enc: self.enc.clone(),
            version: self.version,
        }
    }
}

/// Why a notice was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Larger than [`MAX_NOTICE_BYTES`].
    TooLarge,
    /// Not JSON of the expected shape (unknown, missing or duplicate fields).
    Syntax,
    /// Another protocol version.
    Version,
    /// Another namespace.
    Foreign,
    /// A field out of its range or shape.
    Range,
}

/// Parses and validates one notice received on `ns`'s channel.
pub fn parse(payload: &[u8], ns: &Namespace) -> Result<Notice, Rejection> {
    if payload.len() > MAX_NOTICE_BYTES {
        return Err(Rejection::TooLarge);
    }
    let w: Wire<'_> = serde_json::from_slice(payload).map_err(|_| Rejection::Syntax)?;
    if w.v != PROTOCOL_VERSION {
        return Err(Rejection::Version);
    }
    if w.ns != ns.as_str() {
        return Err(Rejection::Foreign);
    }
    if !is_encoded(w.k) || !valid_origin(w.o) {
        return Err(Rejection::Range);
    }
    let epoch = parse_u64(w.e.as_bytes())
        .filter(|&e| e > 0)
        .ok_or(Rejection::Range)?;
    if w.n == 0 || w.n > MAX_VERSION {
        return Err(Rejection::Range);
    }
    let state = AutoState::parse(w.s.as_bytes()).ok_or(Rejection::Range)?;
    if w.r > MAX_NOTICE_MILLIS || (state != AutoState::Open && w.r != 0) {
        return Err(Rejection::Range);
    }
    let force = if w.f.is_empty() {
        if w.fr != 0 {
            return Err(Rejection::Range);
        }
        None
    } else {
        let mode = ForceMode::parse(w.f.as_bytes()).ok_or(Rejection::Range)?;
        let left = match w.fr {
            -1 => None,
            ms if ms > 0 && (ms as u64) <= MAX_NOTICE_MILLIS => {
                Some(Duration::from_millis(ms as u64))
            }
            _ => return Err(Rejection::Range),
        };
        Some((mode, left))
    };
    Ok(Notice {
        enc: w.k.to_owned(),
        version: Version { epoch, ver: w.n },
        state,
        open_remaining: Duration::from_millis(w.r),
        force,
        origin: w.o.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"v":1,"ns":"t","k":"db","e":"1700000000000123","n":7,"s":"open","r":1500,"f":"","fr":0,"o":"node-1:42"}"#;

    #[test]
    fn valid_notice() {
        let ns = Namespace::new("t").unwrap();
        let n = parse(GOOD.as_bytes(), &ns).unwrap();
        assert_eq!(n.enc, "db");
        assert_eq!(n.version.ver, 7);
        assert_eq!(n.open_remaining, Duration::from_millis(1500));
        let forced = GOOD
            .replace(r#""s":"open","r":1500"#, r#""s":"closed","r":0"#)
            .replace(r#""f":"","fr":0"#, r#""f":"open","fr":-1"#);
        assert_eq!(
            parse(forced.as_bytes(), &ns).unwrap().force,
            Some((ForceMode::Open, None))
        );
    }

    #[test]
    fn everything_else_is_rejected() {
        let ns = Namespace::new("t").unwrap();
        let cases: Vec<(String, Rejection)> = vec![
            ("x".repeat(MAX_NOTICE_BYTES + 1), Rejection::TooLarge),
            ("hello".into(), Rejection::Syntax),
            ("".into(), Rejection::Syntax),
            (GOOD.replace("}", r#","extra":1}"#), Rejection::Syntax),
            (
                GOOD.replace(r#""o":"node-1:42""#, r#""o":"a","o":"b""#),
                Rejection::Syntax,
            ),
            (GOOD.replace(r#","o":"node-1:42""#, ""), Rejection::Syntax),
            (GOOD.replace(r#""v":1"#, r#""v":2"#), Rejection::Version),
            (
                GOOD.replace(r#""ns":"t""#, r#""ns":"u""#),
                Rejection::Foreign,
            ),
            (
                GOOD.replace(r#""k":"db""#, r#""k":"a:b""#),
                Rejection::Range,
            ),
            (GOOD.replace(r#""k":"db""#, r#""k":"""#), Rejection::Range),
            (GOOD.replace(r#""n":7"#, r#""n":0"#), Rejection::Range),
            (GOOD.replace(r#""n":7"#, r#""n":-7"#), Rejection::Syntax),
            (GOOD.replace(r#""n":7"#, r#""n":7.5"#), Rejection::Syntax),
            (
                GOOD.replace(r#""e":"1700000000000123""#, r#""e":"x""#),
                Rejection::Range,
            ),
            (
                GOOD.replace(r#""s":"open""#, r#""s":"ajar""#),
                Rejection::Range,
            ),
            (
                GOOD.replace(r#""r":1500"#, r#""r":99999999999999"#),
                Rejection::Range,
            ),
            (GOOD.replace(r#""fr":0"#, r#""fr":5"#), Rejection::Range),
            (
                GOOD.replace(r#""f":"""#, r#""f":"sideways""#),
                Rejection::Range,
            ),
            (
                GOOD.replace(r#""o":"node-1:42""#, r#""o":"a b""#),
                Rejection::Range,
            ),
        ];
        for (payload, want) in cases {
            assert_eq!(parse(payload.as_bytes(), &ns), Err(want), "{payload}");
        }
    }
}
