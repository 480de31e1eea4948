//! A mapped segment file: race-free creation, validation, named slots,
//! process stripes (invariant 13).
//!
//! Creation: the creator writes the whole header into a private temporary
//! file beside the target (`O_CREAT | O_EXCL`, the requested mode), sizes
//! it, and publishes it with `link(2)`, which fails if the name exists. So
//! the name only ever holds a complete segment: a process that opens it
//! never sees a half-written header and never waits for an "initialised"
//! flag. Of several processes creating at once exactly one `link` wins;
//! the others drop their temporary file and open the winner's.
//!
//! Opening: the file must be a regular file (`O_NOFOLLOW`: no symlink),
//! owned by this process's effective user, with no permission bits beyond
//! the requested mode, at least as long as its header says, and its header
//! must decode ([`Header::decode`]) for this config, capacity and stripe
//! count. Anything else is an error naming the reason; nothing in a refused
//! file is read past its header.
//!
//! What another user can do: nothing with the default mode 0600 (they can
//! neither open nor replace the file; `/dev/shm` is sticky, so they cannot
//! unlink it either). With a wider mode, any process that can write the
//! file can make every breaker in it say anything (force it open, fake
//! counts) and, by truncating it, make the processes that map it fault on
//! their next access (`SIGBUS`): grant write access only to processes
//! trusted as much as the owner. One that can only read it learns the
//! breakers' names, states and counts.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::{
    encode_name, Geometry, Header, LayoutError, CONTROL_AT, HEADER_BYTES, HOT_AT, NAME_MAX,
    SLOT_CLAIMING, SLOT_FREE, SLOT_READY, STRIPE_BYTES,
};
use crate::breaker::{Breaker, Env};
use crate::call::{Outcome, RejectReason};
use crate::config::Config;
use crate::events::ListenerSet;
use crate::loom_shim::{AtomicU64, Ordering};
use crate::place::{Mapped, SlotWords};
use crate::state::{ProbeLedger, StampCell, State, StateCell};

/// Options of [`Segment::open`].
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    /// Named slots (breakers) the segment holds.
    pub capacity: u32,
    /// Process stripes per slot: processes that may record without
    /// sharing a counter line (more share stripes; counts stay exact).
    pub stripes: u32,
    /// File mode when creating; an existing file with any bit beyond it is
    /// refused. Default 0600.
    pub mode: u32,
    /// How long to wait for a slot another process is claiming.
    pub claim_wait: Duration,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            capacity: 64,
            stripes: 16,
            mode: 0o600,
            claim_wait: Duration::from_secs(1),
        }
    }
}

/// Why a segment or slot could not be opened.
#[derive(Debug)]
pub enum SegmentError {
    /// A system call failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file is not a valid segment for this config (see the reason).
    Layout(LayoutError),
    /// The file is a symlink, a directory or another special file.
    NotRegular,
    /// The file is owned by another user.
    ForeignOwner {
        /// Its owner.
        uid: u32,
    },
    /// The file grants more than the requested mode.
    Permissions {
        /// Its mode bits.
        mode: u32,
    },
    /// Options out of range (capacity, stripes, mode).
    Options(&'static str),
    /// A segment name with characters other than `[A-Za-z0-9._-]`, or
    /// empty, or longer than 200 bytes.
    SegmentName,
    /// A breaker name that is empty or longer than `NAME_MAX` bytes.
    BreakerName,
    /// Every slot holds another name.
    Full {
        /// The segment's capacity.
        capacity: u32,
    },
    /// A live process has been claiming the slot for longer than the
    /// claim wait.
    Busy,
}

impl std::fmt::Display for SegmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentError::Io { op, path, source } => {
                write!(f, "{op} {}: {source}", path.display())
            }
            SegmentError::Layout(e) => e.fmt(f),
            SegmentError::NotRegular => f.write_str("segment path is not a regular file"),
            SegmentError::ForeignOwner { uid } => {
                write!(
                    f,
                    "segment file is owned by uid {uid}, not this process's user"
                )
            }
            SegmentError::Permissions { mode } => {
                write!(f, "segment file mode {mode:04o} grants more than requested")
            }
            SegmentError::Options(what) => write!(f, "segment options: {what}"),
            SegmentError::SegmentName => {
                f.write_str("segment name: 1-200 characters of A-Z a-z 0-9 . _ -")
            }
            SegmentError::BreakerName => {
                write!(f, "breaker name: 1-{NAME_MAX} bytes in a shared segment")
            }
            SegmentError::Full { capacity } => {
                write!(f, "segment full: all {capacity} slots hold other breakers")
            }
            SegmentError::Busy => f.write_str("slot is being claimed by a live process"),
        }
    }
}

impl std::error::Error for SegmentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SegmentError::Io { source, .. } => Some(source),
            SegmentError::Layout(e) => Some(e),
            _ => None,
        }
    }
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> SegmentError + 'p {
    move |source| SegmentError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The path of a segment named `name` under `/dev/shm`.
pub fn shm_path(name: &str) -> Result<PathBuf, SegmentError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(SegmentError::SegmentName);
    }
    Ok(PathBuf::from(format!("/dev/shm/circuit.{name}")))
}

/// A mapped segment. Unmapped when dropped; the file stays (remove it with
/// [`Segment::remove`] when no process needs it any more).
#[derive(Debug)]
pub struct Segment {
    base: NonNull<u8>,
    header: Header,
    path: PathBuf,
    claim_wait: Duration,
    /// The config uses a count window (its counts word starts biased).
    count_window: bool,
    /// The config every breaker of the segment runs (its hash is in the
    /// header).
    config: Arc<Config>,
}

// SAFETY: the mapping is shared memory accessed only through atomics (slot
// words, names, blocks) or read once at open (the header); it lives until
// drop, and nothing in `Segment` is tied to a thread.
unsafe impl Send for Segment {}
// SAFETY: as above; every access through `&Segment` is atomic.
unsafe impl Sync for Segment {}

impl Segment {
    /// Opens the segment at `path` for breakers of `config`, creating it if
    /// it does not exist (race-free, see the module docs).
    pub fn open(
        path: &Path,
        config: &Config,
        opts: &SegmentOptions,
    ) -> Result<Segment, SegmentError> {
        if opts.mode & !0o777 != 0 || opts.mode & 0o600 != 0o600 {
            return Err(SegmentError::Options(
                "mode must be within 0777 and include 0600",
            ));
        }
        let geometry = Geometry::new(config, opts.capacity, opts.stripes)
            .ok_or(SegmentError::Options("capacity 1-65536, stripes 1-1024"))?;
        // Bounded: each round either opens the file or finds it gone after
        // losing a link race, which needs another process to remove it.
        for _ in 0..8 {
            match Self::open_existing(path, config, opts) {
                Err(SegmentError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound => {}
                other => return other,
            }
            Self::create(path, config, geometry, opts)?;
        }
        Self::open_existing(path, config, opts)
    }

    fn open_existing(
        path: &Path,
        config: &Config,
        opts: &SegmentOptions,
    ) -> Result<Segment, SegmentError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    SegmentError::NotRegular
                } else {
                    io_err("open", path)(e)
                }
            })?;
        let meta = file.metadata().map_err(io_err("stat", path))?;
        if !meta.file_type().is_file() {
            return Err(SegmentError::NotRegular);
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if meta.uid() != euid {
            return Err(SegmentError::ForeignOwner { uid: meta.uid() });
        }
        let mode = meta.mode() & 0o7777;
        if mode & !opts.mode != 0 {
            return Err(SegmentError::Permissions { mode });
        }
        let mut head = [0u8; HEADER_BYTES];
        let got = read_prefix(&file, &mut head).map_err(io_err("read", path))?;
        let header = Header::decode(
            &head[..got],
            meta.len(),
            config,
            opts.capacity,
            opts.stripes,
        )
        .map_err(SegmentError::Layout)?;
        let len = usize::try_from(header.total_size)
            .map_err(|_| SegmentError::Options("segment larger than the address space"))?;
        let base = map(&file, len).map_err(io_err("mmap", path))?;
        Ok(Segment {
            base,
            header,
            path: path.to_path_buf(),
            claim_wait: opts.claim_wait,
            count_window: config.uses_window()
                && matches!(config.window, crate::config::WindowKind::Count { .. }),
            config: Arc::new(config.clone()),
        })
    }

    fn create(
        path: &Path,
        config: &Config,
        geometry: Geometry,
        opts: &SegmentOptions,
    ) -> Result<(), SegmentError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file_name = path.file_name().ok_or(SegmentError::NotRegular)?;
        let tmp = dir.join(format!(
            ".{}.{}.{}.tmp",
            file_name.to_string_lossy(),
            std::process::id(),
            crate::rng::fresh_seed()
        ));
        let result = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(opts.mode)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)
                .map_err(io_err("create", &tmp))?;
            // The umask may have narrowed the mode; never widened it.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(opts.mode))
                .map_err(io_err("chmod", &tmp))?;
            let header = Header::new(config, geometry, stamp_base());
            file.set_len(header.total_size)
                .map_err(io_err("truncate", &tmp))?;
            file.write_all_at(&header.encode(), 0)
                .map_err(io_err("write", &tmp))?;
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(()),
                // Another process published first: open theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(io_err("link", path)(e)),
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }

    /// Removes the segment's file (processes that have it mapped keep
    /// their mapping; the next `open` creates a fresh one).
    pub fn remove(path: &Path) -> Result<(), SegmentError> {
        std::fs::remove_file(path).map_err(io_err("unlink", path))
    }

    /// The file this segment maps.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The word at byte `offset` of the mapping.
    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.header.total_size as usize);
        // SAFETY: in bounds and 8-aligned (checked above; the mapping is
        // page-aligned); the mapping lives as long as `self`; every access
        // to shared words is atomic.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// The breaker named `name`: an ordinary [`Breaker`] whose decision
    /// words are the slot's (claimed for the name if no slot holds it yet,
    /// see [`Segment::slot`]), whose call counts go to this process's
    /// stripe of the slot, and which runs the segment's config on
    /// [`HostClock`](super::HostClock) with the segment's stamp base.
    /// Listeners, the latency histogram and the transition statistics stay
    /// with this breaker, in this process. Every breaker of one name, in
    /// any process of the host, shares one state (`crate::place`).
    pub fn breaker(self: &Arc<Segment>, name: &str) -> Result<Breaker, SegmentError> {
        self.breaker_in(Arc::from(name), self.env(None))
    }

    /// The config every breaker of the segment runs (its hash is in the
    /// header).
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The environment of this segment's breakers: [`HostClock`](super::HostClock),
    /// the segment's stamp base, and `parent` (a registry's listener set).
    pub(crate) fn env(&self, parent: Option<Arc<ListenerSet>>) -> Arc<Env> {
        Env::on_base(Arc::new(super::HostClock), self.header.stamp_base, parent)
    }

    /// As [`Segment::breaker`], in `env` (from [`Segment::env`]: a
    /// registry's, which forwards events to its listeners).
    pub(crate) fn breaker_in(
        self: &Arc<Segment>,
        name: Arc<str>,
        env: Arc<Env>,
    ) -> Result<Breaker, SegmentError> {
        let slot = self.slot(&name)?;
        let stripe = slot.stripe();
        let g = self.header.geometry;
        let at = slot.at;
        let ptr = |offset: usize| {
            // Offsets within the slot, which `word` checks is in bounds.
            let _ = self.word(offset);
            // SAFETY: in bounds (checked above) of a live mapping.
            NonNull::new(unsafe { self.base.as_ptr().add(offset) }).expect("mapped")
        };
        let words = SlotWords {
            control: ptr(at + CONTROL_AT),
            probes: ptr(at + CONTROL_AT + 16),
            stats: ptr(at + HOT_AT),
            window: ptr(at + HOT_AT + 16),
            window_len: g.window_words,
            stripe: ptr(stripe.at + 8),
            stripes: ptr(at + g.stripes_at + 8),
            stripe_count: g.stripes,
            stripe_stride: STRIPE_BYTES as u32,
        };
        // The last word of the window and of the last stripe's counters
        // are in bounds too.
        if g.window_words > 0 {
            let _ = self.word(at + HOT_AT + 16 + 8 * (g.window_words as usize - 1));
        }
        let _ = self.word(at + g.stripes_at + (g.stripes as usize - 1) * STRIPE_BYTES + 8 * 9);
        // SAFETY: the offsets follow `layout` (control line: state word,
        // stamp, ledger; hot line: consecutive failures, EWMA, window words;
        // stripes: owner, then `CallCounters` in order, `repr(C)`), every
        // word of them is in the mapping (checked above) and 8-aligned, a
        // READY slot's words are initialised (invariant 13), and the
        // mapping lives as long as the `Arc<Segment>` the place holds.
        let mapped = unsafe { Mapped::new(words, self.clone()) };
        let mut b = Breaker::shared(name, self.config.clone(), env);
        b.set_mapped(mapped);
        Ok(b)
    }

    /// The slot named `name`, claiming a free one for it if no slot holds
    /// it. Processes that ask for one name at once get one slot: the probe
    /// order starts at the name's hash, a claim is a CAS on the slot word,
    /// and a process that finds a slot being claimed waits for its name.
    pub fn slot(&self, name: &str) -> Result<Slot<'_>, SegmentError> {
        let encoded = encode_name(name).ok_or(SegmentError::BreakerName)?;
        let cap = self.header.geometry.capacity;
        let start =
            (super::layout::Fnv::new().bytes(name.as_bytes()).finish() % u64::from(cap)) as u32;
        for k in 0..cap {
            let i = (start + k) % cap;
            let slot = Slot {
                segment: self,
                at: self.header.geometry.slot_at(i),
            };
            if slot.settle(&encoded, self.claim_wait)? {
                return Ok(slot);
            }
        }
        Err(SegmentError::Full { capacity: cap })
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: the mapping made by `map` with this length; no reference
        // into it outlives `self` (slots borrow the segment).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.header.total_size as usize);
        }
    }
}

fn read_prefix(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn map(file: &File, len: usize) -> io::Result<NonNull<u8>> {
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh shared mapping of a file we hold open; the kernel
    // picks the address; the result is checked before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

/// A stamp base on `CLOCK_MONOTONIC`, host-wide on Linux: now, less the
/// same slack as `Env::stamp_base`.
fn stamp_base() -> u64 {
    use crate::clock::Clock;
    let now = super::HostClock.now();
    now - now.min(crate::breaker::STAMP_SLACK) / 1000 * 1000
}

/// True when no process has id `pid` (a claim or stripe it held is free).
pub(crate) fn process_gone(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// One named slot of a segment: a breaker's shared words.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    segment: &'a Segment,
    at: usize,
}

/// Call counters of a slot: every process stripe summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotCounts {
    /// Per `Outcome as usize`.
    pub outcomes: [u64; 4],
    /// Rejections, all reasons.
    pub rejected: u64,
}

/// A stripe's counters after its owner word, in `CallCounters` order:
/// four outcomes, slow, stale, three rejection reasons.
const REJECTED_AT: usize = 6;
const _: () = assert!(8 + 8 * (REJECTED_AT + 3) <= STRIPE_BYTES);

const NAME_WORDS: usize = (NAME_MAX + 1) / 8;
const _: () = assert!((NAME_MAX + 1) % 8 == 0 && 8 + 8 * NAME_WORDS <= CONTROL_AT);

impl<'a> Slot<'a> {
    fn slot_word(&self) -> &'a AtomicU64 {
        self.segment.word(self.at)
    }

    fn name_matches(&self, encoded: &[u8; NAME_MAX + 1]) -> bool {
        (0..NAME_WORDS).all(|w| {
            let want = u64::from_le_bytes(encoded[8 * w..8 * w + 8].try_into().expect("8"));
            self.segment
                .word(self.at + 8 + 8 * w)
                .load(Ordering::Relaxed)
                == want
        })
    }

    /// Decides this slot for `name`: true when it holds the name (found or
    /// claimed now), false when it holds another. Invariant 13.
    fn settle(&self, encoded: &[u8; NAME_MAX + 1], wait: Duration) -> Result<bool, SegmentError> {
        let word = self.slot_word();
        let deadline = Instant::now() + wait;
        let me = u64::from(std::process::id()) << 8 | SLOT_CLAIMING;
        loop {
            // Acquire pairs with the Release store of READY: a READY slot's
            // name and initial block are visible (invariant 13).
            let w = word.load(Ordering::Acquire);
            if w == SLOT_READY {
                return Ok(self.name_matches(encoded));
            }
            let claimable =
                w == SLOT_FREE || (w & 0xFF == SLOT_CLAIMING && process_gone((w >> 8) as u32));
            if claimable {
                // AcqRel: one claimer wins; a takeover from a dead claimer
                // sees what it wrote, and rewrites all of it.
                if word
                    .compare_exchange(w, me, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.initialise(encoded);
                    // Release: name and block before READY (invariant 13).
                    word.store(SLOT_READY, Ordering::Release);
                    return Ok(true);
                }
                continue;
            }
            if w & 0xFF != SLOT_CLAIMING {
                return Err(SegmentError::Layout(LayoutError::Corrupt("slot word")));
            }
            if Instant::now() >= deadline {
                return Err(SegmentError::Busy);
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Writes the name and a fresh breaker block (CLOSED, generation 0,
    /// empty window, zero counters), with the same initial words the
    /// in-process breaker starts from.
    fn initialise(&self, encoded: &[u8; NAME_MAX + 1]) {
        let s = self.segment;
        for w in 0..NAME_WORDS {
            let v = u64::from_le_bytes(encoded[8 * w..8 * w + 8].try_into().expect("8"));
            s.word(self.at + 8 + 8 * w).store(v, Ordering::Relaxed);
        }
        let g = s.header.geometry;
        let end = self.at + g.slot_size;
        let mut off = self.at + CONTROL_AT;
        while off < end {
            s.word(off).store(0, Ordering::Relaxed);
            off += 8;
        }
        // The control line holds the core's own cell types; write their
        // initial values through their constructors so a slot starts as a
        // new in-process breaker does.
        // SAFETY: each cell is `repr(transparent)` over one AtomicU64, the
        // offsets are in bounds and 8-aligned, and the slot is ours alone
        // while CLAIMING.
        unsafe {
            let ctl = s.base.as_ptr().add(self.at + CONTROL_AT);
            ctl.cast::<StateCell>().write(StateCell::new());
            ctl.add(8).cast::<StampCell>().write(StampCell::new());
            ctl.add(16).cast::<ProbeLedger>().write(ProbeLedger::new());
        }
        if s.count_window {
            // Hot line: consecutive failures, EWMA, then the count window's
            // cursor and biased counts (`window/count.rs`).
            s.word(self.at + HOT_AT + 24)
                .store(crate::window::COUNTS_EMPTY, Ordering::Relaxed);
        }
    }

    /// The slot's state word.
    pub(crate) fn state_cell(&self) -> &'a StateCell {
        // SAFETY: `repr(transparent)` over the AtomicU64 at that offset.
        unsafe {
            &*(self.segment.word(self.at + CONTROL_AT) as *const AtomicU64).cast::<StateCell>()
        }
    }

    /// The breaker's state as the shared word says.
    pub fn state(&self) -> State {
        self.state_cell().load().state()
    }

    /// The shared generation: it moves with every transition, whichever
    /// process won it, so a process that remembers the last one it saw
    /// learns of every transition won elsewhere.
    pub fn generation(&self) -> u32 {
        self.state_cell().load().generation()
    }

    /// Claims a process stripe for this process (by CAS on its owner word:
    /// a free one, or one whose owner is gone, keeping that owner's
    /// counts), or shares the least contended choice, stripe `pid mod n`,
    /// when all are held by live processes. Counts stay exact either way.
    pub fn stripe(&self) -> Stripe<'a> {
        let g = self.segment.header.geometry;
        let pid = u64::from(std::process::id());
        let first = self.at + g.stripes_at;
        let owner = |i: u32| self.segment.word(first + i as usize * STRIPE_BYTES);
        let mut chosen = None;
        for i in 0..g.stripes {
            let w = owner(i);
            let cur = w.load(Ordering::Relaxed);
            if cur == pid {
                chosen = Some(i);
                break;
            }
            let free = cur == 0 || process_gone(cur as u32);
            // Relaxed: the owner word is a hint which process writes the
            // stripe; every count is an RMW, so any choice is exact.
            if free
                && w.compare_exchange(cur, pid, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                chosen = Some(i);
                break;
            }
        }
        let i = chosen.unwrap_or((pid % u64::from(g.stripes)) as u32);
        Stripe {
            segment: self.segment,
            at: first + i as usize * STRIPE_BYTES,
        }
    }

    /// Sums every stripe.
    pub fn counts(&self) -> SlotCounts {
        let g = self.segment.header.geometry;
        let mut c = SlotCounts::default();
        for i in 0..g.stripes as usize {
            let st = Stripe {
                segment: self.segment,
                at: self.at + g.stripes_at + i * STRIPE_BYTES,
            };
            for (k, o) in c.outcomes.iter_mut().enumerate() {
                *o = o.saturating_add(st.counter(k).load(Ordering::Relaxed));
            }
            for k in REJECTED_AT..REJECTED_AT + 3 {
                c.rejected = c
                    .rejected
                    .saturating_add(st.counter(k).load(Ordering::Relaxed));
            }
        }
        c
    }
}

/// One process's counter stripe in a slot.
#[derive(Debug, Clone, Copy)]
pub struct Stripe<'a> {
    segment: &'a Segment,
    at: usize,
}

impl Stripe<'_> {
    fn counter(&self, k: usize) -> &AtomicU64 {
        self.segment.word(self.at + 8 + 8 * k)
    }

    /// Counts one outcome.
    #[inline]
    pub fn outcome(&self, outcome: Outcome) {
        // Relaxed: a statistic (invariant 8).
        self.counter(outcome as usize)
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one rejection.
    #[inline]
    pub fn rejected(&self, reason: RejectReason) {
        self.counter(REJECTED_AT + reason as usize)
            .fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::builder()
            .failure_rate(Some(0.5))
            .count_window(40)
            .build()
            .unwrap()
    }

    /// A pid that existed and has exited (reaped).
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn a_claim_left_by_a_dead_process_is_taken_over() {
        let dir = std::env::temp_dir().join(format!("circuit-shm-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let opts = SegmentOptions {
            capacity: 1,
            stripes: 2,
            claim_wait: Duration::from_millis(20),
            ..SegmentOptions::default()
        };
        let seg = Segment::open(&dir.join("seg"), &config(), &opts).unwrap();
        let at = seg.header.geometry.slot_at(0);
        // A live claimer (this process) holds the slot past the wait: busy.
        let me = u64::from(std::process::id()) << 8 | SLOT_CLAIMING;
        seg.word(at).store(me, Ordering::Relaxed);
        assert!(matches!(seg.slot("x"), Err(SegmentError::Busy)));
        // A dead one: taken over, and the slot starts as a new breaker.
        let dead = u64::from(dead_pid()) << 8 | SLOT_CLAIMING;
        seg.word(at).store(dead, Ordering::Relaxed);
        seg.word(at + CONTROL_AT).store(0xdead, Ordering::Relaxed);
        let slot = seg.slot("x").unwrap();
        assert_eq!(slot.state(), State::Closed);
        assert_eq!(slot.generation(), 0);
        assert_eq!(seg.word(at).load(Ordering::Relaxed), SLOT_READY);
        // The count window's counts word starts biased, as in the heap breaker.
        assert_eq!(
            seg.word(at + HOT_AT + 24).load(Ordering::Relaxed),
            crate::window::COUNTS_EMPTY
        );
        // Not a slot word any version writes: refused, not reinterpreted.
        seg.word(at).store(7, Ordering::Relaxed);
        assert!(matches!(seg.slot("x"), Err(SegmentError::Layout(_))));
        // Stripes: a dead owner's stripe is taken over with its counts.
        seg.word(at).store(SLOT_READY, Ordering::Relaxed);
        let first = at + seg.header.geometry.stripes_at;
        seg.word(first)
            .store(u64::from(dead_pid()), Ordering::Relaxed);
        seg.word(first + 8).store(5, Ordering::Relaxed);
        let stripe = slot.stripe();
        assert_eq!(stripe.at, first);
        stripe.outcome(Outcome::Success);
        assert_eq!(slot.counts().outcomes[Outcome::Success as usize], 6);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
