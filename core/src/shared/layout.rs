//! The segment's bytes: header, slot table, and each slot's breaker block.
//!
//! Everything here is pure (no I/O): [`Header::decode`] validates any bytes
//! and is what the `shm_header` fuzz target drives. Every number is stored
//! little-endian at a fixed offset, so a segment means the same to every
//! process of every build with the same [`LAYOUT_VERSION`].
//!
//! ```text
//!  offset 0        header (HEADER_BYTES = 128, checksummed)
//!  offset 128      slot 0 | slot 1 | ... | slot capacity-1   (slot_size each)
//!
//!  one slot (every part starts on a 128-byte boundary of the slot):
//!  +0     slot word        0 free, CLAIMING | pid << 8, READY
//!  +8     name             1 length byte + up to NAME_MAX bytes
//!  +128   control line     state word, deadline stamp, probe ledger
//!  +256   hot line         consecutive failures, EWMA word,
//!                          count window (cursor, counts, slot words)
//!                          or time window (buckets, rolled-at words)
//!  +stripes_at             `stripes` process stripes of STRIPE_BYTES:
//!                          owner pid, then the call counters
//! ```
//!
//! The control line is alone on its pair of lines (adjacent-line prefetch)
//! so the word every acquire loads never shares one with words written per
//! call, as in the in-process `Breaker` (DESIGN.md section 5).

use std::fmt;

use crate::config::{Config, WindowKind};

/// First eight bytes of every segment.
pub const MAGIC: [u8; 8] = *b"circshm\0";
/// Bumped whenever any offset or encoding below changes: a segment of
/// another version is refused, never reinterpreted.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes of the header; slot 0 starts here.
pub const HEADER_BYTES: usize = 128;
/// Longest breaker name a slot holds, in bytes.
pub const NAME_MAX: usize = 119;
/// Bytes of one process stripe: an owner word and the call counters, on a
/// pair of cache lines of its own.
pub const STRIPE_BYTES: usize = 128;
/// Most slots a segment may have.
pub const MAX_CAPACITY: u32 = 1 << 16;
/// Most process stripes a slot may have.
pub const MAX_STRIPES: u32 = 1024;
/// The clock every deadline in the segment is read on.
pub const CLOCK_MONOTONIC_ID: u32 = 1;

/// Offset of the control line in a slot.
pub const CONTROL_AT: usize = 128;
/// Offset of the hot line in a slot.
pub const HOT_AT: usize = 256;
/// Words of the hot line before the window: consecutive failures, EWMA.
const HOT_WORDS: usize = 2;

/// Slot word: free.
pub const SLOT_FREE: u64 = 0;
/// Slot word: a process (pid in the bits above 8) is writing the name and
/// the initial block.
pub const SLOT_CLAIMING: u64 = 1;
/// Slot word: name and block are written; the slot is never freed.
pub const SLOT_READY: u64 = 2;

/// Why a segment was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// Fewer bytes than the header (or than the header says).
    Truncated {
        /// Bytes found.
        found: u64,
        /// Bytes needed.
        needed: u64,
    },
    /// Not a circuit segment.
    BadMagic,
    /// A circuit segment of another layout version.
    Version(u32),
    /// The header's checksum does not match its contents.
    Corrupt(&'static str),
    /// Created for a configuration with different words.
    ConfigMismatch {
        /// The segment's config hash.
        found: u64,
        /// The hash of the config this process opened it with.
        expected: u64,
    },
    /// Created with another capacity or stripe count.
    GeometryMismatch(&'static str),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Truncated { found, needed } => {
                write!(f, "segment truncated: {found} bytes, {needed} needed")
            }
            LayoutError::BadMagic => f.write_str("not a circuit shared segment (bad magic)"),
            LayoutError::Version(v) => write!(
                f,
                "segment has layout version {v}, this library reads {LAYOUT_VERSION}"
            ),
            LayoutError::Corrupt(what) => write!(f, "segment header corrupt: {what}"),
            LayoutError::ConfigMismatch { found, expected } => write!(
                f,
                "segment was created for another config (hash {found:#018x}, this one {expected:#018x})"
            ),
            LayoutError::GeometryMismatch(what) => {
                write!(f, "segment was created with another {what}")
            }
        }
    }
}

impl std::error::Error for LayoutError {}

/// The shape of one slot, derived from the config (never read from a file
/// without checking it against this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Slots in the segment.
    pub capacity: u32,
    /// Process stripes per slot.
    pub stripes: u32,
    /// 64-bit words of the window (0 without a window).
    pub window_words: u32,
    /// Offset of the first stripe in a slot.
    pub stripes_at: usize,
    /// Bytes per slot (a multiple of 128).
    pub slot_size: usize,
}

const fn align128(n: usize) -> usize {
    (n + 127) & !127
}

/// Words a window of `kind` keeps in a slot: a count window's cursor,
/// counts and one word per 32 slots; a time window's buckets and their
/// rolled-at indexes.
pub fn window_words(config: &Config) -> u32 {
    if !config.uses_window() {
        return 0;
    }
    match config.window {
        WindowKind::Count { size } => 2 + size.div_ceil(32),
        WindowKind::Time { buckets, .. } => 2 * buckets,
    }
}

impl Geometry {
    /// The geometry for `config` with `capacity` slots of `stripes`
    /// stripes; `None` when out of range.
    pub fn new(config: &Config, capacity: u32, stripes: u32) -> Option<Geometry> {
        if capacity == 0 || capacity > MAX_CAPACITY || stripes == 0 || stripes > MAX_STRIPES {
            return None;
        }
        let window_words = window_words(config);
        let stripes_at = align128(HOT_AT + 8 * (HOT_WORDS + window_words as usize));
        let slot_size = stripes_at + STRIPE_BYTES * stripes as usize;
        Some(Geometry {
            capacity,
            stripes,
            window_words,
            stripes_at,
            slot_size,
        })
    }

    /// Bytes of the whole segment.
    pub fn total_size(&self) -> u64 {
        HEADER_BYTES as u64 + self.slot_size as u64 * u64::from(self.capacity)
    }

    /// Offset of slot `i`.
    pub fn slot_at(&self, i: u32) -> usize {
        HEADER_BYTES + self.slot_size * i as usize
    }
}

pub use crate::hash::Fnv;

/// The hash of every config field that shapes the slot's words or what
/// they mean: processes that share a breaker must agree on all of them
/// (a threshold read differently by two processes would make their trips
/// disagree), so every field is in, except `metrics`, `latency_histogram`
/// and `seed`, which stay per process (`crate::hash::config_fields`).
pub fn config_hash(c: &Config) -> u64 {
    crate::hash::config_fields(Fnv::new().u64(u64::from(LAYOUT_VERSION)), c).finish()
}

/// The decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Hash of the config ([`config_hash`]).
    pub config_hash: u64,
    /// Slots, stripes and sizes.
    pub geometry: Geometry,
    /// Bytes of the whole segment.
    pub total_size: u64,
    /// Which clock deadlines are on ([`CLOCK_MONOTONIC_ID`]).
    pub clock: u32,
    /// What deadline stamps are relative to: a reading of that clock taken
    /// by the creating process, less some slack (as `Env::stamp_base`).
    pub stamp_base: u64,
}

// Byte offsets inside the header.
const H_MAGIC: usize = 0;
const H_VERSION: usize = 8;
const H_HEADER_BYTES: usize = 12;
const H_TOTAL: usize = 16;
const H_CONFIG: usize = 24;
const H_CAPACITY: usize = 32;
const H_STRIPES: usize = 36;
const H_WINDOW_WORDS: usize = 40;
const H_CLOCK: usize = 44;
const H_SLOT_SIZE: usize = 48;
const H_STAMP_BASE: usize = 56;
const H_CHECKSUM: usize = 64;

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn get64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Header {
    /// The header of a new segment.
    pub fn new(config: &Config, geometry: Geometry, stamp_base: u64) -> Header {
        Header {
            config_hash: config_hash(config),
            geometry,
            total_size: geometry.total_size(),
            clock: CLOCK_MONOTONIC_ID,
            stamp_base,
        }
    }

    /// The header's bytes (the rest of `HEADER_BYTES` is zero).
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        let g = self.geometry;
        b[H_MAGIC..H_MAGIC + 8].copy_from_slice(&MAGIC);
        b[H_VERSION..H_VERSION + 4].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        b[H_HEADER_BYTES..H_HEADER_BYTES + 4].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
        b[H_TOTAL..H_TOTAL + 8].copy_from_slice(&self.total_size.to_le_bytes());
        b[H_CONFIG..H_CONFIG + 8].copy_from_slice(&self.config_hash.to_le_bytes());
        b[H_CAPACITY..H_CAPACITY + 4].copy_from_slice(&g.capacity.to_le_bytes());
        b[H_STRIPES..H_STRIPES + 4].copy_from_slice(&g.stripes.to_le_bytes());
        b[H_WINDOW_WORDS..H_WINDOW_WORDS + 4].copy_from_slice(&g.window_words.to_le_bytes());
        b[H_CLOCK..H_CLOCK + 4].copy_from_slice(&self.clock.to_le_bytes());
        b[H_SLOT_SIZE..H_SLOT_SIZE + 8].copy_from_slice(&(g.slot_size as u64).to_le_bytes());
        b[H_STAMP_BASE..H_STAMP_BASE + 8].copy_from_slice(&self.stamp_base.to_le_bytes());
        let sum = Fnv::new().bytes(&b[..H_CHECKSUM]).finish();
        b[H_CHECKSUM..H_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Validates `bytes` (the start of a file of `file_size` bytes) as a
    /// segment for `config`, `capacity` slots and `stripes` stripes. Any
    /// input: a segment is trusted only when every field is what this
    /// process would have written itself, so no file can make it read or
    /// write outside the mapping.
    pub fn decode(
        bytes: &[u8],
        file_size: u64,
        config: &Config,
        capacity: u32,
        stripes: u32,
    ) -> Result<Header, LayoutError> {
        let needed = HEADER_BYTES as u64;
        if (bytes.len() as u64) < needed || file_size < needed {
            return Err(LayoutError::Truncated {
                found: file_size.min(bytes.len() as u64),
                needed,
            });
        }
        if bytes[H_MAGIC..H_MAGIC + 8] != MAGIC {
            return Err(LayoutError::BadMagic);
        }
        let version = get32(bytes, H_VERSION);
        if version != LAYOUT_VERSION {
            return Err(LayoutError::Version(version));
        }
        let sum = Fnv::new().bytes(&bytes[..H_CHECKSUM]).finish();
        if get64(bytes, H_CHECKSUM) != sum {
            return Err(LayoutError::Corrupt("checksum"));
        }
        if bytes[H_CHECKSUM + 8..HEADER_BYTES].iter().any(|&b| b != 0) {
            return Err(LayoutError::Corrupt("reserved bytes"));
        }
        if get32(bytes, H_HEADER_BYTES) as usize != HEADER_BYTES {
            return Err(LayoutError::Corrupt("header size"));
        }
        let expected = config_hash(config);
        let found = get64(bytes, H_CONFIG);
        if found != expected {
            return Err(LayoutError::ConfigMismatch { found, expected });
        }
        if get32(bytes, H_CAPACITY) != capacity {
            return Err(LayoutError::GeometryMismatch("capacity"));
        }
        if get32(bytes, H_STRIPES) != stripes {
            return Err(LayoutError::GeometryMismatch("stripe count"));
        }
        let geometry = Geometry::new(config, capacity, stripes)
            .ok_or(LayoutError::GeometryMismatch("capacity or stripe count"))?;
        if get32(bytes, H_WINDOW_WORDS) != geometry.window_words
            || get64(bytes, H_SLOT_SIZE) != geometry.slot_size as u64
        {
            return Err(LayoutError::Corrupt("slot size"));
        }
        let total_size = get64(bytes, H_TOTAL);
        if total_size != geometry.total_size() {
            return Err(LayoutError::Corrupt("total size"));
        }
        if file_size < total_size {
            return Err(LayoutError::Truncated {
                found: file_size,
                needed: total_size,
            });
        }
        let clock = get32(bytes, H_CLOCK);
        if clock != CLOCK_MONOTONIC_ID {
            return Err(LayoutError::Corrupt("clock"));
        }
        Ok(Header {
            config_hash: found,
            geometry,
            total_size,
            clock,
            stamp_base: get64(bytes, H_STAMP_BASE),
        })
    }
}

/// A slot's name bytes: a length byte, then the name, zero-padded.
pub fn encode_name(name: &str) -> Option<[u8; NAME_MAX + 1]> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > NAME_MAX {
        return None;
    }
    let mut out = [0u8; NAME_MAX + 1];
    out[0] = b.len() as u8;
    out[1..=b.len()].copy_from_slice(b);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn config() -> Config {
        Config::builder()
            .consecutive_failures(Some(5))
            .failure_rate(Some(0.5))
            .count_window(100)
            .build()
            .unwrap()
    }

    fn header() -> (Header, [u8; HEADER_BYTES]) {
        let c = config();
        let h = Header::new(&c, Geometry::new(&c, 8, 4).unwrap(), 12_345);
        (h, h.encode())
    }

    #[test]
    fn a_header_round_trips() {
        let (h, b) = header();
        let back = Header::decode(&b, h.total_size, &config(), 8, 4).unwrap();
        assert_eq!(back, h);
        assert_eq!(h.geometry.slot_size % 128, 0);
        assert_eq!(h.geometry.stripes_at % 128, 0);
        // 100 slots: 4 words, plus cursor and counts.
        assert_eq!(h.geometry.window_words, 6);
    }

    #[test]
    fn every_mismatch_is_named() {
        let (h, b) = header();
        let c = config();
        let other = Config::builder()
            .consecutive_failures(Some(6))
            .failure_rate(Some(0.5))
            .count_window(100)
            .build()
            .unwrap();
        assert!(matches!(
            Header::decode(&b, h.total_size, &other, 8, 4),
            Err(LayoutError::ConfigMismatch { .. })
        ));
        assert_eq!(
            Header::decode(&b, h.total_size, &c, 9, 4),
            Err(LayoutError::GeometryMismatch("capacity"))
        );
        assert_eq!(
            Header::decode(&b, h.total_size, &c, 8, 5),
            Err(LayoutError::GeometryMismatch("stripe count"))
        );
        assert_eq!(
            Header::decode(&b, h.total_size - 1, &c, 8, 4),
            Err(LayoutError::Truncated {
                found: h.total_size - 1,
                needed: h.total_size
            })
        );
        assert!(matches!(
            Header::decode(&b[..64], h.total_size, &c, 8, 4),
            Err(LayoutError::Truncated { .. })
        ));
        let mut foreign = b;
        foreign[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\0");
        assert_eq!(
            Header::decode(&foreign, h.total_size, &c, 8, 4),
            Err(LayoutError::BadMagic)
        );
        let mut newer = b;
        newer[H_VERSION] = 2;
        assert_eq!(
            Header::decode(&newer, h.total_size, &c, 8, 4),
            Err(LayoutError::Version(2))
        );
    }

    #[test]
    fn per_process_fields_stay_out_of_the_hash() {
        let a = Config::builder().seed(1).build().unwrap();
        let b = Config::builder()
            .seed(2)
            .metrics(false)
            .latency_histogram(Some(Duration::from_secs(60)))
            .build()
            .unwrap();
        assert_eq!(config_hash(&a), config_hash(&b));
        let c = Config::builder()
            .open_duration(Duration::from_secs(7))
            .build()
            .unwrap();
        assert_ne!(config_hash(&a), config_hash(&c));
    }

    proptest! {
        /// Any single flipped bit of a valid header is refused: the
        /// checksum covers every field, the reserved bytes must be zero.
        #[test]
        fn any_flipped_bit_is_refused(bit in 0usize..HEADER_BYTES * 8) {
            let (h, mut b) = header();
            b[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Header::decode(&b, h.total_size, &config(), 8, 4).is_err());
        }

        #[test]
        fn names_encode_within_bounds(name in ".{0,130}") {
            match encode_name(&name) {
                Some(b) => {
                    prop_assert!(!name.is_empty() && name.len() <= NAME_MAX);
                    prop_assert_eq!(&b[1..=name.len()], name.as_bytes());
                }
                None => prop_assert!(name.is_empty() || name.len() > NAME_MAX),
            }
        }
    }
}
