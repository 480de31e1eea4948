//! A run of atomic words that a window or ring reads through one pointer:
//! either its own heap allocation (an in-process breaker) or words borrowed
//! from a mapped segment slot (a host-shared breaker, `crate::shared`).
//!
//! Both are the same type, read the same way (a pointer and a length, no
//! branch), so a window's logic does not know where its words live; only
//! `Drop` asks whether to free them. It is the size of the
//! `Box<[AtomicU64]>` it replaces (16 bytes).

use core::ptr::NonNull;

use crate::loom_shim::AtomicU64;

/// Heap-owned or borrowed atomic words.
pub(crate) struct WordBox {
    ptr: NonNull<AtomicU64>,
    len: u32,
    owned: bool,
}

// SAFETY: the words are atomics (`Sync`); an owned box is freed only by
// `Drop`, and borrowed words outlive the box (the contract of `borrowed`).
unsafe impl Send for WordBox {}
// SAFETY: as above; every access through `&WordBox` is atomic.
unsafe impl Sync for WordBox {}

impl WordBox {
    /// `n` fresh words on the heap, word `i` holding `init(i)`.
    pub(crate) fn heap(n: usize, init: impl Fn(usize) -> u64) -> WordBox {
        let words: Box<[AtomicU64]> = (0..n).map(|i| AtomicU64::new(init(i))).collect();
        let len = u32::try_from(words.len()).expect("window words fit in u32");
        let raw = Box::into_raw(words).cast::<AtomicU64>();
        WordBox {
            // Box pointers are never null (dangling, not null, when empty).
            ptr: NonNull::new(raw).expect("box pointer"),
            len,
            owned: true,
        }
    }

    /// `len` words at `ptr`, not owned.
    ///
    /// # Safety
    /// `ptr` must point at `len` initialised, 8-aligned words that stay
    /// mapped and are accessed only atomically for as long as the box (and
    /// every reference it hands out) lives.
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) unsafe fn borrowed(ptr: NonNull<AtomicU64>, len: u32) -> WordBox {
        WordBox {
            ptr,
            len,
            owned: false,
        }
    }

    /// Borrowed words split in two: the first `n`, and the rest.
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) fn split_at(self, n: usize) -> (WordBox, WordBox) {
        assert!(!self.owned && n <= self.len as usize);
        let rest = self.len - n as u32;
        // SAFETY: two disjoint runs within the borrowed words, which
        // outlive both boxes as they outlive `self` (`borrowed`'s
        // contract); `self` is not owned, so dropping it frees nothing.
        unsafe {
            let tail = NonNull::new_unchecked(self.ptr.as_ptr().add(n));
            (
                WordBox::borrowed(self.ptr, n as u32),
                WordBox::borrowed(tail, rest),
            )
        }
    }

    /// The first word's address (borrowed words only: it must not
    /// outlive the words, which `borrowed`'s contract keeps alive).
    #[cfg(all(unix, target_has_atomic = "64", not(circuit_loom)))]
    pub(crate) fn first(&self) -> NonNull<AtomicU64> {
        assert!(!self.owned && self.len > 0);
        self.ptr
    }

    /// Heap bytes the box owns (0 for borrowed words).
    pub(crate) fn heap_bytes(&self) -> usize {
        if self.owned {
            self.len as usize * core::mem::size_of::<AtomicU64>()
        } else {
            0
        }
    }
}

impl core::ops::Deref for WordBox {
    type Target = [AtomicU64];

    #[inline]
    fn deref(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` points at `len` live words: an owned allocation
        // freed only by `Drop`, or borrowed words that outlive the box.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len as usize) }
    }
}

impl Drop for WordBox {
    fn drop(&mut self) {
        if self.owned {
            let slice = core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len as usize);
            // SAFETY: an owned box came from `Box::into_raw` in `heap` with
            // this length and is freed only here, once.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

impl core::fmt::Debug for WordBox {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WordBox")
            .field("len", &self.len)
            .field("owned", &self.owned)
            .finish()
    }
}
