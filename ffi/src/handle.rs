//! Typed handles: the one way a pointer handed to C becomes a Rust value
//! again.
//!
//! Every handle type of the header (`circuit_breaker`, `circuit_clock`...)
//! is an opaque marker struct with no fields of its own. Its [`Handle`]
//! implementation says two things, once:
//!
//! - which Rust value the pointer really points to ([`Handle::Rust`]);
//! - how that value is owned while C holds the pointer
//!   ([`Handle::Ownership`]): [`Shared`], an `Arc` with one strong
//!   reference per pointer given out (retain/free count references), or
//!   [`Boxed`], a `Box` with exactly one owner (free destroys it).
//!
//! The functions here are generic over the handle type, and each asks for
//! the ownership it needs in its bounds. So:
//!
//! - a handle cannot be read as another handle's Rust type: the type is
//!   taken from the pointer's own type, there is no cast to get wrong;
//! - a shared handle cannot be freed as a boxed one, nor a boxed one
//!   retained or released like an `Arc`: the call does not compile.
//!
//! ```
//! # use circuit::handle::*;
//! // The right way round compiles.
//! unsafe fn right(b: *const circuit::circuit_breaker, c: *mut circuit::circuit_clock) {
//!     let _: Option<&circuit_core::Breaker> = as_ref(b);
//!     free_shared(b);
//!     free_boxed(c);
//! }
//! ```
//!
//! ```compile_fail,E0271
//! # use circuit::handle::*;
//! // A breaker is shared (an `Arc`): freeing it as a box does not compile.
//! unsafe fn wrong(b: *mut circuit::circuit_breaker) { free_boxed(b) }
//! ```
//!
//! ```compile_fail,E0271
//! # use circuit::handle::*;
//! // A clock is boxed (one owner): taking a reference to it like an `Arc`
//! // does not compile.
//! unsafe fn wrong(c: *const circuit::circuit_clock) { let _ = clone_shared(c); }
//! ```
//!
//! ```compile_fail,E0308
//! # use circuit::handle::*;
//! // A config handle is not a breaker.
//! unsafe fn wrong(c: *const circuit::circuit_config) -> &'static circuit_core::Breaker {
//!     as_ref(c).unwrap()
//! }
//! ```
//!
//! Releasing a shared handle goes through `boundary::release`, so a
//! release made inside a callback is deferred until the outermost library
//! call returns (see "Releases inside callbacks" in `boundary`).

use std::sync::Arc;

/// The ownership of a shared handle: the pointer is `Arc::into_raw` of the
/// Rust value; each pointer given to C carries one strong reference.
#[derive(Debug)]
pub enum Shared {}

/// The ownership of a boxed handle: the pointer is `Box::into_raw` of the
/// Rust value; its one owner frees it.
#[derive(Debug)]
pub enum Boxed {}

mod sealed {
    pub trait Ownership {}
    impl Ownership for super::Shared {}
    impl Ownership for super::Boxed {}
}

/// [`Shared`] or [`Boxed`], and nothing else.
pub trait Ownership: sealed::Ownership {}
impl Ownership for Shared {}
impl Ownership for Boxed {}

/// An opaque handle type of the C ABI: what it points to and how that is
/// owned. One implementation per handle type, right under its declaration
/// (written out, not generated: cbindgen reads the declaration to emit
/// `typedef struct name name;`); a type can have only one, so its ownership
/// cannot be stated twice.
pub trait Handle {
    /// The Rust value behind the pointer.
    type Rust;
    /// [`Shared`] (an `Arc`) or [`Boxed`] (a `Box`).
    type Ownership: Ownership;
}

/// States a handle type's [`Handle`] implementation in one line, under its
/// declaration: `handle_of!(circuit_clock => Boxed FfiClock);`.
macro_rules! handle_of {
    ($name:ty => $ownership:ident $rust:ty) => {
        impl $crate::handle::Handle for $name {
            type Rust = $rust;
            type Ownership = $crate::handle::$ownership;
        }
    };
}
pub(crate) use handle_of;

fn cast<H: Handle>(ptr: *const H) -> *const H::Rust {
    ptr.cast()
}

/// Gives C a new shared handle holding `value`'s one reference.
pub fn new_shared<H: Handle<Ownership = Shared>>(value: H::Rust) -> *const H {
    share(Arc::new(value))
}

/// Gives C one reference of an existing `Arc` as a handle.
pub fn share<H: Handle<Ownership = Shared>>(value: Arc<H::Rust>) -> *const H {
    Arc::into_raw(value).cast()
}

/// A handle to `value` lent to C without a reference of its own: valid
/// while `value` is (e.g. a breaker borrowed from a registry iterator).
pub fn lend<H: Handle<Ownership = Shared>>(value: &Arc<H::Rust>) -> *const H {
    Arc::as_ptr(value).cast()
}

/// Gives C a new boxed handle owning `value`.
pub fn new_boxed<H: Handle<Ownership = Boxed>>(value: H::Rust) -> *mut H {
    Box::into_raw(Box::new(value)).cast()
}

/// The value behind a handle (`None` for NULL), for the duration of a call.
///
/// # Safety
/// `ptr` must be NULL or a live handle of type `H` made by this module
/// ([`new_shared`], [`share`] or [`new_boxed`] of `H`), not freed before
/// the returned reference's last use.
pub unsafe fn as_ref<'a, H: Handle>(ptr: *const H) -> Option<&'a H::Rust> {
    // SAFETY: the caller's contract: NULL or a live `H::Rust` (both
    // `Arc::into_raw` and `Box::into_raw` point at the value itself).
    unsafe { cast(ptr).as_ref() }
}

/// The value behind a boxed handle, mutably (`None` for NULL).
///
/// # Safety
/// As [`as_ref`], and no other reference to the value may be used while the
/// returned one is (the C contract of a `*mut` receiver: one thread at a
/// time). Only boxed handles qualify: a shared value has other owners.
pub unsafe fn as_mut<'a, H: Handle<Ownership = Boxed>>(ptr: *mut H) -> Option<&'a mut H::Rust> {
    // SAFETY: the caller's contract: NULL or the only live use of a boxed
    // `H::Rust`.
    unsafe { ptr.cast::<H::Rust>().as_mut() }
}

/// Takes one more reference to a shared handle's value (`None` for NULL);
/// the caller's own reference is untouched.
///
/// # Safety
/// `ptr` must be NULL or a live shared handle of type `H` on which the
/// caller holds a reference.
pub unsafe fn clone_shared<H: Handle<Ownership = Shared>>(ptr: *const H) -> Option<Arc<H::Rust>> {
    if ptr.is_null() {
        return None;
    }
    let raw = cast(ptr);
    // SAFETY: `raw` is `Arc::into_raw` of an `H::Rust` with at least the
    // caller's reference alive (contract), so the count is at least 1.
    unsafe {
        Arc::increment_strong_count(raw);
        Some(Arc::from_raw(raw))
    }
}

/// Adds one reference to a shared handle (`*_retain`); NULL does nothing.
///
/// # Safety
/// As [`clone_shared`]; the new reference is the caller's to release.
pub unsafe fn retain<H: Handle<Ownership = Shared>>(ptr: *const H) {
    // SAFETY: the caller's contract, passed on.
    std::mem::forget(unsafe { clone_shared(ptr) });
}

/// Releases one reference to a shared handle (`*_free`); NULL does nothing.
/// The value is destroyed with its last reference, at once or, inside a
/// callback, when the outermost library call returns.
///
/// # Safety
/// `ptr` must be NULL or a live shared handle of type `H` on which the
/// caller holds a reference it gives up here.
pub unsafe fn free_shared<H: Handle<Ownership = Shared>>(ptr: *const H)
where
    H::Rust: 'static,
{
    if ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` is `Arc::into_raw` of an `H::Rust` and the caller gives
    // up the reference it holds (contract).
    let owned = unsafe { Arc::from_raw(cast(ptr)) };
    // Inside a callback the call that runs it may be borrowing this very
    // value: then the reference is given back after that call.
    crate::boundary::release(owned);
}

/// Destroys a boxed handle's value (`*_free`); NULL does nothing.
///
/// # Safety
/// `ptr` must be NULL or a live boxed handle of type `H`, not used
/// afterwards (freed once).
pub unsafe fn free_boxed<H: Handle<Ownership = Boxed>>(ptr: *mut H) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` is `Box::into_raw` of an `H::Rust`, owned by the caller
    // who gives it up (contract).
    drop(unsafe { Box::from_raw(ptr.cast::<H::Rust>()) });
}
