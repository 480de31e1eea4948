//! Namespaces, key and channel names, and the encoding of breaker names
//! (SYNC.md "Record, key and channel").
//!
//! Every key of a namespace carries the hash tag `{<namespace>}`, so all of
//! them live in one Redis Cluster slot (the write script touches two keys
//! and the read script many). The namespace itself is restricted to
//! `[A-Za-z0-9._-]{1,64}`: no braces (which would move the hash tag), no glob
//! characters, nothing that needs escaping anywhere.

use std::fmt;

use crate::SyncError;

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// Longest breaker name stored as itself in a key.
pub const MAX_PLAIN_NAME_LEN: usize = 128;

/// Length of an encoded hashed name: `h:` and 40 hex digits of SHA-1.
pub(crate) const HASHED_LEN: usize = 2 + 40;

/// A validated namespace and the names derived from it.
#[derive(Clone, PartialEq, Eq)]
pub struct Namespace {
    name: String,
    key_prefix: String,
    index: String,
    channel: String,
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Namespace").field(&self.name).finish()
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

fn plain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

impl Namespace {
    /// Validates `name` (`[A-Za-z0-9._-]{1,64}`).
    pub fn new(name: &str) -> Result<Namespace, SyncError> {
        if name.is_empty() || name.len() > MAX_NAMESPACE_LEN || !name.bytes().all(plain_byte) {
            return Err(SyncError::Config(format!(
                "namespace must match [A-Za-z0-9._-]{{1,{MAX_NAMESPACE_LEN}}}, got {:?}",
                name
            )));
        }
        Ok(Namespace {
            name: name.to_owned(),
            key_prefix: format!("cb:{{{name}}}:b:"),
            index: format!("cb:{{{name}}}:idx"),
            channel: format!("cb:{{{name}}}:ev"),
        })
    }

    /// The namespace as given.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// `cb:{<ns>}:ev`, the one channel of the namespace.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// `cb:{<ns>}:idx`, a sorted set of the encoded names written recently
    /// (score: when the record expires), kept by the write script so the
    /// operator CLI can list a namespace without `SCAN` (which a cluster
    /// would need per node).
    pub fn index_key(&self) -> &str {
        &self.index
    }

    /// `cb:{<ns>}:live`, a sorted set of the instances that take part in
    /// quorum votes (member: origin; score: when it stops counting as live,
    /// server Unix ms), refreshed by each worker's heartbeat.
    pub fn live_key(&self) -> String {
        format!("cb:{{{}}}:live", self.name)
    }

    /// `cb:{<ns>}:v:<enc>`, the quorum votes of one breaker (member: origin;
    /// score: when it voted, server Unix ms).
    pub fn votes_key(&self, enc: &str) -> String {
        format!("cb:{{{}}}:v:{enc}", self.name)
    }

    /// `cb:{<ns>}:c:<enc>`, the fleet config record of one breaker name
    /// (persistent; see [`crate::fleetconf`]).
    pub fn config_key(&self, enc: &str) -> String {
        format!("cb:{{{}}}:c:{enc}", self.name)
    }

    /// `cb:{<ns>}:b:<enc>` for an already encoded name.
    pub fn record_key(&self, enc: &str) -> String {
        let mut k = String::with_capacity(self.key_prefix.len() + enc.len());
        k.push_str(&self.key_prefix);
        k.push_str(enc);
        k
    }
}

/// `enc(name)`: the name itself when it matches `[A-Za-z0-9._-]{1,128}`,
/// otherwise `h:` and the hex SHA-1 of its bytes. A plain name never
/// contains `:`, so the two forms cannot collide; two names whose digests
/// collide are told apart by the raw name stored in the record (the write
/// script refuses the second, readers ignore it).
pub fn encode_name(name: &str) -> String {
    if is_plain(name) {
        name.to_owned()
    } else {
        let mut s = String::with_capacity(HASHED_LEN);
        s.push_str("h:");
        s.push_str(&sha1_smol::Sha1::from(name.as_bytes()).digest().to_string());
        s
    }
}

/// True when `name` is stored as itself.
pub(crate) fn is_plain(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_PLAIN_NAME_LEN && name.bytes().all(plain_byte)
}

/// True when `enc` is a well-formed encoded name (either form).
pub(crate) fn is_encoded(enc: &str) -> bool {
    is_plain(enc)
        || (enc.len() == HASHED_LEN
            && enc.starts_with("h:")
            && enc[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Origins (instance ids) are `[A-Za-z0-9._:-]{1,64}`.
pub(crate) fn valid_origin(o: &str) -> bool {
    !o.is_empty() && o.len() <= 64 && o.bytes().all(|b| plain_byte(b) || b == b':')
}

/// Makes any text a valid origin: keeps `[A-Za-z0-9._:-]`, maps the rest
/// to `_`, truncates to 64 bytes.
pub fn sanitize_origin(o: &str) -> String {
    let s: String = o
        .chars()
        .map(|c| {
            if c.is_ascii() && (plain_byte(c as u8) || c == ':') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() {
        "unknown".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_restricted() {
        let ns = Namespace::new("prod-eu.1").unwrap();
        assert_eq!(ns.channel(), "cb:{prod-eu.1}:ev");
        assert_eq!(ns.index_key(), "cb:{prod-eu.1}:idx");
        assert_eq!(ns.record_key("db"), "cb:{prod-eu.1}:b:db");
        for bad in ["", "a}b", "a{b", "a*", "a b", "ü", &"x".repeat(65)] {
            assert!(Namespace::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_encode_without_collision_or_escape() {
        assert_eq!(encode_name("payments.v2_EU-1"), "payments.v2_EU-1");
        let h = encode_name("GET /users/{id}");
        assert!(h.starts_with("h:") && h.len() == HASHED_LEN, "{h}");
        assert!(is_encoded(&h));
        assert_ne!(encode_name("a:b"), encode_name("a_b"));
        assert!(encode_name(&"x".repeat(129)).starts_with("h:"));
        assert_eq!(encode_name(&"x".repeat(128)), "x".repeat(128));
        assert!(encode_name("*").starts_with("h:"));
        assert!(encode_name("\0\n}").starts_with("h:"));
        assert!(!is_encoded("h:XYZ"));
        assert!(!is_encoded("a:b"));
        assert!(!is_encoded(""));
    }

    #[test]
    fn origins() {
        assert!(valid_origin("host-1:1234"));
        assert!(!valid_origin("a b"));
        assert_eq!(sanitize_origin("höst 1"), "h_st_1");
        assert_eq!(sanitize_origin(""), "unknown");
    }
}
