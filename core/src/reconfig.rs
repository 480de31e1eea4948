//! Live reconfiguration (invariant 18): a running breaker takes a new
//! config without losing its state.
//!
//! **The config cell.** A breaker reads its config through one pointer
//! ([`ConfigCell`]), loaded once per call with `Acquire`: on the
//! platforms the project measures this is the same plain load as the
//! `Arc<Config>` dereference it replaces, so the closed paths cost what
//! they did. A new config is published by one `Release` swap of that
//! pointer. A reader may go on using the config it loaded after the swap,
//! so a replaced config is never freed while the breaker lives: it is kept
//! in the breaker's pool ([`Pool`]) and freed when the breaker drops. The
//! pool keeps one copy of each distinct config (a config equal to a kept
//! one is published from the pool instead of being kept again), so its size
//! is bounded by the number of distinct configs the breaker was given, not
//! by the number of changes: flipping between two configs a million times
//! keeps two.
//!
//! **The window.** A breaker's first window lives inline (the memory
//! budget: DESIGN.md section 6). A window of another shape is another
//! window, published by pointer in the side box. The config says where the
//! window is (`WindowAt`, a byte the record path reads from the config it
//! loads anyway): none, inline, or the side box's; a config published with
//! its window in the side box is the breaker's own copy.
//! A breaker reconfigured back to a shape it had before gets that window
//! back (emptied, then seeded), so the pool holds at most one window per
//! distinct shape, plus the inline one.
//!
//! What a new window holds (seeding, from the window being replaced):
//! - count to count: the most recent `min(calls in the old window, new
//!   size)` outcomes, in their order;
//! - time to time: each live bucket of the old window goes, whole, into the
//!   new bucket that covers the old bucket's start, if that new bucket is
//!   within the new window; older ones are dropped (outcomes inside a
//!   bucket have no finer time);
//! - count to time, time to count, or no window before: empty;
//! - the same shape (only thresholds changed): the window itself, untouched;
//! - a breaker not in an admitting state (OPEN, HALF_OPEN, FORCED_OPEN):
//!   empty, since its window is not recorded into and is cleared when it
//!   closes again.
//!
//! A record that loaded the old config just before the swap may land its
//! sample in the old window after the new one was seeded: at most one
//! sample per thread caught mid-record is lost to the window (it is still
//! in the call counters and the consecutive-failure count), the same
//! allowance invariant 6 makes for a transition's clear. A transition that
//! clears the statistics while a window is being replaced is detected by
//! the generation (the settle CAS of `Breaker::settle_window`), and a
//! winner that finds the config changed while it cleared clears the new
//! window too. One race is left, and bounded: a transition between two
//! admitting states (a reset, an override set or cleared) whose CAS lands
//! just before the reconfiguration reads the state word, and whose winner
//! clears the old window after it was copied but reads the config before
//! the new one is published, leaves the copied samples in the new window,
//! where they age out as any sample does (a count window's within `size`
//! records). Closing it would take a SeqCst handshake on every transition.

use std::sync::{Arc, Mutex, PoisonError};

use crate::config::{Config, WindowKind};
use crate::loom_shim::{AtomicPtr, Ordering};
use crate::window::Window;

/// Where a breaker finds its window: a byte of the config, read on the
/// record path from the config it loads anyway (invariant 18). Equality
/// ignores it: it says where a window is, not what the config is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowAt(pub(crate) u8);

impl WindowAt {
    /// The breaker's inline window, or none if it has none: every config
    /// `build` makes (a breaker is created with an inline window exactly
    /// when its config reads one).
    pub(crate) const INLINE: WindowAt = WindowAt(0);
    /// The window published in the breaker's side box, or none if that is
    /// null (a config that reads no window, on a breaker with an inline
    /// window): only on a breaker's own copy of a config.
    pub(crate) const SIDE: WindowAt = WindowAt(1);

    pub(crate) fn is_side(self) -> bool {
        self.0 == Self::SIDE.0
    }
}

impl PartialEq for WindowAt {
    fn eq(&self, _: &WindowAt) -> bool {
        true
    }
}

/// The breaker's config pointer (invariant 18). Owns one strong count of
/// the `Arc<Config>` it points to.
#[derive(Debug)]
pub(crate) struct ConfigCell(AtomicPtr<Config>);

impl ConfigCell {
    pub(crate) fn new(config: Arc<Config>) -> ConfigCell {
        ConfigCell(AtomicPtr::new(Arc::into_raw(config).cast_mut()))
    }

    /// The config now. One `Acquire` load (invariant 18): a plain load
    /// on x86-64 and AArch64's `ldar`, as cheap as the `Arc` it replaces.
    #[inline]
    pub(crate) fn load(&self) -> &Config {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: the pointer came from `Arc::into_raw` in `new` or
        // `publish`; the config it points to is freed only by `Drop` (the
        // current one) or when the breaker's pool drops (replaced ones),
        // both after the breaker's last `&self` (invariant 18).
        unsafe { &*p }
    }

    /// Publishes `config` and returns the config it replaced, which the
    /// caller must keep alive until the breaker drops. Callers hold the
    /// breaker's pool lock, so publishers are serialised.
    pub(crate) fn publish(&self, config: Arc<Config>) -> Arc<Config> {
        let raw = Arc::into_raw(config).cast_mut();
        // AcqRel: Release publishes the config (and, before it, any window
        // the side box now holds) to readers' Acquire loads; Acquire takes
        // the old pointer's config as written (invariant 18).
        let old = self.0.swap(raw, Ordering::AcqRel);
        // SAFETY: `old` came from `Arc::into_raw` and the cell owned its
        // strong count, which moves to the returned `Arc`.
        unsafe { Arc::from_raw(old.cast_const()) }
    }
}

impl Drop for ConfigCell {
    fn drop(&mut self) {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: the cell owns one strong count of the pointer, released
        // here once; `&mut self`: no reader is left.
        drop(unsafe { Arc::from_raw(p.cast_const()) });
    }
}

/// What a breaker keeps once it has been reconfigured: the published
/// window (when it is not the inline one) and everything replaced. In the
/// lazily allocated side box (`striped::Side`), so a breaker never
/// reconfigured pays nothing for it.
#[derive(Debug)]
pub(crate) struct Reconfig {
    /// The window in use when the config says `WindowAt::SIDE`. Points
    /// into `pool.windows`.
    window: AtomicPtr<Window>,
    /// Serialises reconfigurations of this breaker and owns what they
    /// replaced.
    pool: Mutex<Pool>,
}

/// Configs and windows replaced by reconfigurations, freed with the
/// breaker (invariant 18): one per distinct config, one per distinct
/// window shape.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    configs: Vec<Arc<Config>>,
    /// Boxed so that a window does not move when the list grows: calls
    /// hold references to it (invariant 18).
    #[allow(clippy::vec_box)]
    windows: Vec<Box<Window>>,
}

impl Reconfig {
    pub(crate) fn new() -> Reconfig {
        Reconfig {
            window: AtomicPtr::new(std::ptr::null_mut()),
            pool: Mutex::new(Pool::default()),
        }
    }

    /// The published window (when the config says `WindowAt::SIDE`).
    #[inline]
    pub(crate) fn window(&self) -> Option<&Window> {
        // Acquire: pairs with the Release store in `set_window` (the
        // window's contents are seeded before it is published,
        // invariant 18).
        let p = self.window.load(Ordering::Acquire);
        // SAFETY: non-null pointers point into `pool.windows`, whose boxes
        // are freed only when this `Reconfig` drops.
        unsafe { p.as_ref() }
    }

    pub(crate) fn set_window(&self, window: Option<&Window>) {
        let p = window.map_or(std::ptr::null_mut(), |w| (w as *const Window).cast_mut());
        // Release: the window's seeded contents before the pointer
        // (invariant 18).
        self.window.store(p, Ordering::Release);
    }

    /// A kept window of shape `kind`, or a new one (kept from now on), from
    /// `pool` (this `Reconfig`'s, locked). It is emptied before it is
    /// returned; a straggler record of an earlier use may still land one
    /// sample in it (invariant 6).
    pub(crate) fn window_for(&self, pool: &mut Pool, kind: WindowKind) -> &Window {
        let i = match pool.windows.iter().position(|w| w.fits(kind)) {
            Some(i) => i,
            None => {
                pool.windows.push(Box::new(Window::new(kind)));
                pool.windows.len() - 1
            }
        };
        let p: *const Window = &*pool.windows[i];
        // SAFETY: a window box in the pool is never removed or freed before
        // this `Reconfig` drops (invariant 18), and a box's contents do not
        // move when the list grows.
        let w = unsafe { &*p };
        w.clear();
        w
    }

    /// The pool, locked. A panic while it was held leaves nothing half
    /// done that matters here (each field is a list of kept values).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pool {
    /// `config` as an `Arc`: a kept config equal to it (with its window in
    /// the same place) if there is one (taken out of the pool: it is about
    /// to be published), else `config` itself.
    pub(crate) fn take_config(&mut self, config: Arc<Config>) -> Arc<Config> {
        let same = |c: &Arc<Config>| **c == *config && c.window_at.0 == config.window_at.0;
        match self.configs.iter().position(same) {
            Some(i) => self.configs.swap_remove(i),
            None => config,
        }
    }

    /// Keeps a replaced config until the breaker drops. The pool never
    /// holds a config equal to the published one (`take_config` took it
    /// out) and the replaced one differs from the new one, so the pool's
    /// configs stay distinct.
    pub(crate) fn keep_config(&mut self, config: Arc<Config>) {
        self.configs.push(config);
    }

    /// Heap bytes of the kept windows.
    pub(crate) fn window_bytes(&self) -> usize {
        self.windows
            .iter()
            .map(|w| w.heap_bytes() + std::mem::size_of::<Window>())
            .sum()
    }
}
