//! Snapshot records: a breaker's state, counters and window as a small
//! versioned byte string that another process can restore
//! (`Breaker::snapshot`, `Breaker::restore`).
//!
//! Every number is little-endian at a fixed offset (format version 1):
//!
//! ```text
//!  off  size
//!  0    8    magic "circsnap"
//!  8    2    format version (FORMAT_VERSION)
//!  10   2    flags, zero
//!  12   4    length of the whole record, checksum included
//!  16   8    config hash (`crate::hash`: the fields that shape the words
//!            and what they mean, ramp included)
//!  24   8    wall clock at export, ns since the Unix epoch
//!  32   1    phase: 0 CLOSED, 1 OPEN, 2 HALF_OPEN, 3 RAMPING
//!  33   1    override: 0 none, 1 forced open, 2 forced closed,
//!            3 disabled, 4 metrics only (phase 0 under an override)
//!  34   1    streak (re-opens from HALF_OPEN: the backoff level)
//!  35   1    half-open successes
//!  36   4    zero
//!  40   8    time left in the current generation's deadline, ns
//!            (u64::MAX: none: CLOSED, or an override with no expiry)
//!  48   8    consecutive failures
//!  56   8    EWMA word (calls << 32 | Q0.32 rate)
//!  64   80   call counters: outcomes[4], slow, stale, rejected[4]
//!  144  1    window: 0 none, 1 count, 2 time
//!  145  3    zero
//!  148  4    entries: count window: outcomes held; time window: buckets
//!  152  ...  count: 2 bits per outcome (bit 0 failed, bit 1 slow), four
//!            a byte, oldest first; time: per live bucket, age in widths
//!            (u32), calls, failures, slow (u16 each)
//!  end-8 8   checksum: FNV-1a of every byte before it
//! ```
//!
//! Why a hand-written fixed layout and not a serialization crate: the
//! record is some twenty fixed fields and one array, the same shape as the
//! shared segment's header (`shared::layout`), whose encoder, checksum and
//! hostile-input rules this reuses; every field needs a range check
//! against the config anyway, which no format crate does for us; and the
//! core stays free of a dependency that every host would carry.
//!
//! Decoding checks, in order: a prefix of the magic that is too short is
//! `Truncated`, other bytes are `Foreign`; then the version, the length,
//! the checksum, the config hash, and every field's range (`Corrupt`). A
//! refused record changes nothing.

use std::fmt;

use crate::config::{Config, WindowKind};
use crate::hash::{self, Fnv};
use crate::state::Override;
use crate::window::BucketRecord;

/// First eight bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"circsnap";
/// The format this library writes and reads. Bumped whenever any offset or
/// encoding changes: a record of another version is refused, never
/// reinterpreted.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the fixed part (before the window entries).
const FIXED: usize = 152;
/// Bytes of the checksum.
const SUM: usize = 8;
/// Bytes of one time-window bucket.
const BUCKET: usize = 10;
/// `remaining` meaning "no deadline".
pub(crate) const NONE: u64 = u64::MAX;

/// Why a snapshot was refused. The breaker is unchanged in every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Fewer bytes than the record needs.
    Truncated {
        /// Bytes given.
        found: usize,
        /// Bytes the record needs.
        needed: usize,
    },
    /// Not a circuit snapshot (bad magic).
    Foreign,
    /// A circuit snapshot of another format version.
    Version(u16),
    /// The checksum does not match, or a field is out of range.
    Corrupt(&'static str),
    /// Taken from a breaker with another config.
    ConfigMismatch {
        /// The record's config hash.
        found: u64,
        /// The hash of this breaker's config.
        expected: u64,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Truncated { found, needed } => {
                write!(f, "snapshot truncated: {found} bytes, {needed} needed")
            }
            SnapshotError::Foreign => f.write_str("not a circuit snapshot (bad magic)"),
            SnapshotError::Version(v) => write!(
                f,
                "snapshot has format version {v}, this library reads {FORMAT_VERSION}"
            ),
            SnapshotError::Corrupt(what) => write!(f, "snapshot corrupt: {what}"),
            SnapshotError::ConfigMismatch { found, expected } => write!(
                f,
                "snapshot was taken with another config (hash {found:#018x}, this breaker {expected:#018x})"
            ),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// The hash a snapshot of a breaker of `config` carries.
pub fn config_hash(config: &Config) -> u64 {
    let h = Fnv::new().bytes(&MAGIC).u64(u64::from(FORMAT_VERSION));
    hash::ramp_fields(hash::config_fields(h, config), config).finish()
}

/// The record's phase byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhaseCode {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
    Ramping = 3,
}

/// The window's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WindowRecord {
    None,
    /// Outcomes oldest first, as slot bits.
    Count(Vec<u8>),
    Time(Vec<BucketRecord>),
}

/// A decoded (or to be encoded) record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) config_hash: u64,
    pub(crate) wall: u64,
    pub(crate) phase: PhaseCode,
    pub(crate) mode: Option<Override>,
    pub(crate) streak: u8,
    pub(crate) success: u8,
    /// Nanoseconds left in the deadline, or [`NONE`].
    pub(crate) remaining: u64,
    pub(crate) consecutive_failures: u64,
    pub(crate) ewma: u64,
    /// Outcomes[4], slow, stale, rejected[4].
    pub(crate) counters: [u64; 10],
    pub(crate) window: WindowRecord,
}

fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn get64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Record {
    /// The record's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (kind, entries, body): (u8, usize, Vec<u8>) = match &self.window {
            WindowRecord::None => (0, 0, Vec::new()),
            WindowRecord::Count(samples) => {
                let mut body = vec![0u8; samples.len().div_ceil(4)];
                for (i, s) in samples.iter().enumerate() {
                    body[i / 4] |= (s & 0b11) << (2 * (i % 4));
                }
                (1, samples.len(), body)
            }
            WindowRecord::Time(buckets) => {
                let mut body = Vec::with_capacity(buckets.len() * BUCKET);
                for b in buckets {
                    body.extend_from_slice(&b.age.to_le_bytes());
                    body.extend_from_slice(&b.calls.to_le_bytes());
                    body.extend_from_slice(&b.failures.to_le_bytes());
                    body.extend_from_slice(&b.slow.to_le_bytes());
                }
                (2, buckets.len(), body)
            }
        };
        let len = FIXED + body.len() + SUM;
        let mut b = Vec::with_capacity(len);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        b.extend_from_slice(&self.config_hash.to_le_bytes());
        b.extend_from_slice(&self.wall.to_le_bytes());
        b.push(self.phase as u8);
        b.push(self.mode.map_or(0, |m| m as u8));
        b.push(self.streak);
        b.push(self.success);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&self.remaining.to_le_bytes());
        b.extend_from_slice(&self.consecutive_failures.to_le_bytes());
        b.extend_from_slice(&self.ewma.to_le_bytes());
        for c in self.counters {
            b.extend_from_slice(&c.to_le_bytes());
        }
        b.push(kind);
        b.extend_from_slice(&[0; 3]);
        b.extend_from_slice(&(entries as u32).to_le_bytes());
        debug_assert_eq!(b.len(), FIXED);
        b.extend_from_slice(&body);
        let sum = Fnv::new().bytes(&b).finish();
        b.extend_from_slice(&sum.to_le_bytes());
        b
    }

    /// Validates any bytes as a record for a breaker of `config`.
    pub(crate) fn decode(bytes: &[u8], config: &Config) -> Result<Record, SnapshotError> {
        let head = bytes.len().min(MAGIC.len());
        if bytes[..head] != MAGIC[..head] {
            return Err(SnapshotError::Foreign);
        }
        let min = FIXED + SUM;
        if bytes.len() < min {
            return Err(SnapshotError::Truncated {
                found: bytes.len(),
                needed: min,
            });
        }
        let version = get16(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(SnapshotError::Version(version));
        }
        let len = get32(bytes, 12) as usize;
        if bytes.len() < len {
            return Err(SnapshotError::Truncated {
                found: bytes.len(),
                needed: len,
            });
        }
        if len < min {
            return Err(SnapshotError::Corrupt("length"));
        }
        if bytes.len() > len {
            return Err(SnapshotError::Corrupt("bytes after the record"));
        }
        let sum = Fnv::new().bytes(&bytes[..len - SUM]).finish();
        if get64(bytes, len - SUM) != sum {
            return Err(SnapshotError::Corrupt("checksum"));
        }
        let expected = config_hash(config);
        let found = get64(bytes, 16);
        if found != expected {
            return Err(SnapshotError::ConfigMismatch { found, expected });
        }
        if get16(bytes, 10) != 0 || get32(bytes, 36) != 0 || bytes[145..148] != [0; 3] {
            return Err(SnapshotError::Corrupt("reserved bytes"));
        }
        let phase = match bytes[32] {
            0 => PhaseCode::Closed,
            1 => PhaseCode::Open,
            2 => PhaseCode::HalfOpen,
            3 => PhaseCode::Ramping,
            _ => return Err(SnapshotError::Corrupt("phase")),
        };
        let mode = match bytes[33] {
            0 => None,
            m => Some(Override::from_bits(u64::from(m)).ok_or(SnapshotError::Corrupt("override"))?),
        };
        if mode.is_some() && phase != PhaseCode::Closed {
            return Err(SnapshotError::Corrupt(
                "override over a phase other than CLOSED",
            ));
        }
        if phase == PhaseCode::Ramping && config.ramp.is_none() {
            return Err(SnapshotError::Corrupt("ramping without a ramp"));
        }
        let mut counters = [0u64; 10];
        for (i, c) in counters.iter_mut().enumerate() {
            *c = get64(bytes, 64 + 8 * i);
        }
        let entries = get32(bytes, 148) as usize;
        let body = &bytes[FIXED..len - SUM];
        let uses_window = config.uses_window();
        let window = match (bytes[144], config.window) {
            (0, _) if !uses_window => {
                if entries != 0 || !body.is_empty() {
                    return Err(SnapshotError::Corrupt("window entries"));
                }
                WindowRecord::None
            }
            (1, WindowKind::Count { size }) if uses_window => {
                if entries > size as usize || body.len() != entries.div_ceil(4) {
                    return Err(SnapshotError::Corrupt("count window entries"));
                }
                let samples = (0..entries)
                    .map(|i| (body[i / 4] >> (2 * (i % 4))) & 0b11)
                    .collect();
                if entries % 4 != 0 && body[entries / 4] >> (2 * (entries % 4)) != 0 {
                    return Err(SnapshotError::Corrupt("count window padding"));
                }
                WindowRecord::Count(samples)
            }
            (2, WindowKind::Time { buckets, .. }) if uses_window => {
                if entries > buckets as usize || body.len() != entries * BUCKET {
                    return Err(SnapshotError::Corrupt("time window entries"));
                }
                let mut out = Vec::with_capacity(entries);
                for e in body.chunks_exact(BUCKET) {
                    let b = BucketRecord {
                        age: get32(e, 0),
                        calls: get16(e, 4),
                        failures: get16(e, 6),
                        slow: get16(e, 8),
                    };
                    if b.age >= buckets || b.failures > b.calls || b.slow > b.calls {
                        return Err(SnapshotError::Corrupt("time window bucket"));
                    }
                    out.push(b);
                }
                WindowRecord::Time(out)
            }
            _ => return Err(SnapshotError::Corrupt("window kind")),
        };
        Ok(Record {
            config_hash: found,
            wall: get64(bytes, 24),
            phase,
            mode,
            streak: bytes[34],
            success: bytes[35],
            remaining: get64(bytes, 40),
            consecutive_failures: get64(bytes, 48),
            ewma: get64(bytes, 56),
            counters,
            window,
        })
    }
}

#[cfg(all(test, not(circuit_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn config() -> Config {
        Config::builder()
            .failure_rate(Some(0.5))
            .count_window(10)
            .build()
            .unwrap()
    }

    fn record() -> Record {
        Record {
            config_hash: config_hash(&config()),
            wall: 1_700_000_000_000_000_000,
            phase: PhaseCode::Open,
            mode: None,
            streak: 2,
            success: 0,
            remaining: 7_000_000_000,
            consecutive_failures: 3,
            ewma: 5 << 32 | 123,
            counters: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            window: WindowRecord::Count(vec![0, 1, 3, 2, 1]),
        }
    }

    #[test]
    fn records_round_trip() {
        let r = record();
        let b = r.encode();
        assert_eq!(b.len(), FIXED + 2 + SUM);
        assert_eq!(Record::decode(&b, &config()), Ok(r));
    }

    #[test]
    fn the_hash_covers_the_ramp_and_leaves_per_process_fields_out() {
        let a = config();
        let b = Config::builder()
            .failure_rate(Some(0.5))
            .count_window(10)
            .seed(9)
            .metrics(false)
            .build()
            .unwrap();
        assert_eq!(config_hash(&a), config_hash(&b));
        let ramped = Config::builder()
            .failure_rate(Some(0.5))
            .count_window(10)
            .ramp(Some(crate::RampPolicy {
                start: 0.1,
                duration: Duration::from_secs(10),
                steps: 0,
            }))
            .build()
            .unwrap();
        assert_ne!(config_hash(&a), config_hash(&ramped));
    }

    proptest! {
        /// Any flipped bit of a valid record is refused.
        #[test]
        fn any_flipped_bit_is_refused(bit in 0usize..(FIXED + 2 + SUM) * 8) {
            let mut b = record().encode();
            b[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Record::decode(&b, &config()).is_err());
        }

        /// Every prefix is refused as truncated (or foreign, never more).
        #[test]
        fn every_prefix_is_truncated(cut in 0usize..FIXED + 2 + SUM) {
            let b = record().encode();
            let e = Record::decode(&b[..cut], &config()).unwrap_err();
            let truncated = matches!(e, SnapshotError::Truncated { .. });
            prop_assert!(truncated, "{:?}", e);
        }
    }
}
