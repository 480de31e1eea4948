//! The one place where the boundary's safety lives.
//!
//! Every exported function has the same shape:
//!
//! ```text
//! #[no_mangle]
//! pub unsafe extern "C" fn circuit_thing(x: *const circuit_x, out: *mut u32) -> circuit_result {
//!     ffi_boundary! {
//!         let x = arg_ref!(x);
//!         let out = arg_out!(out);
//!         out.write(x.value());
//!         circuit_result::Ok
//!     }
//! }
//! ```
//!
//! - [`ffi_boundary!`] runs the body under `catch_unwind`; a panic becomes
//!   `CIRCUIT_RESULT_PANIC` (or the function's defined value, see
//!   [`Boundary`]) plus a last-error message. No panic unwinds into C.
//! - [`arg_ref!`] / [`arg_mut!`] / [`arg_out!`] are the NULL checks: a
//!   NULL required pointer returns `CIRCUIT_RESULT_NULL_ARGUMENT` and names
//!   the argument in the last error. `arg_ref!`/`arg_mut!` take handles
//!   only, typed by [`crate::handle`].
//! - [`arg_enum!`] converts a `uint32_t` from C, refusing unknown values
//!   (never trust an enum from C).
//! - [`arg_str!`] takes a pointer and a length and validates UTF-8.
//! - [`fail`] sets the thread-local last error and returns a code.
//! - [`call_foreign`] wraps every call into the host's code (listener
//!   callbacks, finalizers), and [`release`] is how a handle's reference is
//!   given back: a release made inside a callback is deferred until the
//!   outermost library call on that thread returns (see "Releases inside
//!   callbacks" below).
//!
//! The macros are written so that cbindgen, which does not expand macros,
//! still sees every exported signature: only function bodies are wrapped.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::fmt::Display;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::result::circuit_result;

/// What an exported function returns when the boundary has to answer for it:
/// after a caught panic.
pub(crate) trait Boundary {
    /// The defined value returned after a panic was caught.
    fn on_panic() -> Self;
}

impl Boundary for circuit_result {
    fn on_panic() -> Self {
        circuit_result::Panic
    }
}

impl Boundary for () {
    fn on_panic() -> Self {}
}

impl Boundary for u32 {
    fn on_panic() -> Self {
        0
    }
}

impl Boundary for u64 {
    fn on_panic() -> Self {
        0
    }
}

impl<T> Boundary for *const T {
    fn on_panic() -> Self {
        std::ptr::null()
    }
}

impl<T> Boundary for *mut T {
    fn on_panic() -> Self {
        std::ptr::null_mut()
    }
}

/// Static strings handed to C: NUL-terminated, never freed.
pub(crate) fn static_cstr(s: &'static std::ffi::CStr) -> *const c_char {
    s.as_ptr()
}

thread_local! {
    /// The message of the last failing call on this thread (errno-like: a
    /// successful call does not clear it, so the hot path never touches it).
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `message` as this thread's last error.
pub(crate) fn set_last_error(message: impl Display) {
    // `try_with`: during thread teardown the slot may be gone; losing a
    // message then is better than panicking.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut s) = slot.try_borrow_mut() {
            use std::fmt::Write;
            s.clear();
            let _ = write!(s, "{message}");
        }
    });
}

/// A copy of this thread's last error message ("" if none).
pub(crate) fn last_error() -> String {
    LAST_ERROR
        .try_with(|slot| slot.try_borrow().map(|s| s.clone()).unwrap_or_default())
        .unwrap_or_default()
}

/// Sets the last error to `message` and returns `code`: the one way an
/// exported function reports a failure.
#[cold]
pub(crate) fn fail(code: circuit_result, message: impl Display) -> circuit_result {
    set_last_error(format_args!("{}: {message}", code.name()));
    code
}

/// Called by [`ffi_boundary!`] when the body panicked.
#[cold]
pub(crate) fn caught_panic<T: Boundary>(payload: Box<dyn Any + Send>) -> T {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    };
    set_last_error(format_args!(
        "{}: internal error (panic caught at the C boundary): {message}",
        circuit_result::Panic.name()
    ));
    // Dropping a payload can itself panic; that one must not escape either.
    if let Err(again) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload))) {
        std::mem::forget(again);
    }
    T::on_panic()
}

// ----- Releases inside callbacks -------------------------------------------
//
// A callback runs inside a library call that borrows the object it was
// called about (`circuit_breaker_record(b, ...)` holds `&Breaker` for its
// whole duration, and the core's transition goes on reading the breaker
// after the listeners return). If the callback releases the last reference
// to that object, freeing it at once would leave the library call running
// on freed memory. So a release made while a callback runs on this thread
// is deferred: the reference is parked in a thread-local list and given
// back when the outermost library call on this thread returns (its
// `ffi_boundary!` epilogue), when nothing of the library borrows anything
// any more. A thread runs the host's code inside a library call only
// through `call_foreign`, so a depth of 0 there means no library frame is
// below. The call path pays one relaxed load of a global counter that is
// zero unless a release is parked somewhere; the thread-local state is only
// touched by callbacks and releases.
//
// A thread that the library runs itself (the fleet-sync worker) makes no
// exported call: what its callbacks release is given back when the thread
// ends (the list's destructor).

thread_local! {
    /// Callbacks into the host running on this thread (nested).
    static CALLBACK_DEPTH: Cell<usize> = const { Cell::new(0) };
    /// References released inside callbacks, not given back yet.
    static PARKED: RefCell<Parked> = const { RefCell::new(Parked(Vec::new())) };
}

/// A thread's parked references; when the thread ends they are given back
/// and leave the shared count.
struct Parked(Vec<Box<dyn Any>>);

impl Drop for Parked {
    fn drop(&mut self) {
        PARKED_ANYWHERE.fetch_sub(self.0.len(), Relaxed);
    }
}

/// References parked on any thread: a hint that lets every exported call
/// check one shared word instead of its thread's list. Each thread reads its
/// own increments in program order; other threads at worst look at their
/// own (empty) list once, so relaxed suffices.
static PARKED_ANYWHERE: AtomicUsize = AtomicUsize::new(0);

fn callback_depth() -> usize {
    CALLBACK_DEPTH.try_with(Cell::get).unwrap_or(0)
}

/// Calls into the host's code (a callback or a finalizer). Every such call
/// goes through here, so that releases it makes are deferred.
pub(crate) fn call_foreign<R>(f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            let _ = CALLBACK_DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    let entered = CALLBACK_DEPTH.try_with(|d| d.set(d.get() + 1)).is_ok();
    let _leave = entered.then_some(Leave);
    f()
}

/// Gives back one reference (`owned`, e.g. an `Arc` rebuilt from a handle):
/// at once outside callbacks, otherwise when the outermost library call on
/// this thread returns.
pub(crate) fn release<T: Any>(owned: T) {
    if callback_depth() == 0 {
        drop(owned);
        return;
    }
    let mut owned = Some(owned);
    let _ = PARKED.try_with(|list| {
        if let Ok(mut list) = list.try_borrow_mut() {
            if let Some(o) = owned.take() {
                list.0.push(Box::new(o));
                PARKED_ANYWHERE.fetch_add(1, Relaxed);
            }
        }
    });
    // The list is gone (the thread is ending inside a callback): keeping
    // the reference forever is safe, freeing it now might not be.
    std::mem::forget(owned);
}

/// The epilogue of every exported function (see `ffi_boundary!`).
#[inline(always)]
pub(crate) fn after_call() {
    if PARKED_ANYWHERE.load(Relaxed) != 0 {
        give_back_parked();
    }
}

#[cold]
fn give_back_parked() {
    if callback_depth() != 0 {
        return; // a nested call: the outermost one gives them back
    }
    loop {
        let batch = PARKED
            .try_with(|list| {
                list.try_borrow_mut()
                    .map(|mut l| Parked(std::mem::take(&mut l.0)))
            })
            .ok()
            .and_then(Result::ok);
        // Dropping `batch` takes it off the shared count.
        let Some(batch) = batch.filter(|b| !b.0.is_empty()) else {
            return;
        };
        // Dropping may run finalizers, which may release more: loop. A
        // panic in a destructor must not unwind into C.
        if let Err(payload) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(batch)))
        {
            std::mem::forget(payload);
        }
    }
}

/// Runs an exported function's body, turning a panic into the function's
/// defined value (see [`Boundary`]). `return` inside the body returns from
/// the exported function. Afterwards, with nothing borrowed any more, it
/// gives back references that callbacks released during the call (see
/// [`release`]).
macro_rules! ffi_boundary {
    ($($body:tt)*) => {{
        let value = match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(payload) => $crate::boundary::caught_panic(payload),
        };
        $crate::boundary::after_call();
        value
    }};
}
pub(crate) use ffi_boundary;

/// The value behind a required handle argument (see [`crate::handle`]:
/// its type comes from the handle's type), or return
/// `CIRCUIT_RESULT_NULL_ARGUMENT` naming the argument.
macro_rules! arg_ref {
    ($ptr:ident) => {
        // SAFETY: every exported function's contract (the header's
        // conventions) requires a non-NULL handle argument to be a live
        // handle of its type created by this library, for the duration of
        // the call; NULL is checked here.
        match unsafe { $crate::handle::as_ref($ptr) } {
            Some(r) => r,
            None => return $crate::boundary::null_argument(stringify!($ptr)),
        }
    };
}
pub(crate) use arg_ref;

/// The value behind an optional handle argument (NULL = `None`).
macro_rules! arg_ref_opt {
    ($ptr:ident) => {
        // SAFETY: as for `arg_ref!`; NULL maps to `None`.
        unsafe { $crate::handle::as_ref($ptr) }
    };
}
pub(crate) use arg_ref_opt;

/// The value behind a required boxed handle taken as `*mut` (builders,
/// iterators), mutably, or return `CIRCUIT_RESULT_NULL_ARGUMENT`.
macro_rules! arg_mut {
    ($ptr:ident) => {
        // SAFETY: as for `arg_ref!`; in addition the contract of every
        // function taking a `*mut` receiver forbids concurrent use of that
        // object, so this is the only reference for the call's duration.
        match unsafe { $crate::handle::as_mut($ptr) } {
            Some(r) => r,
            None => return $crate::boundary::null_argument(stringify!($ptr)),
        }
    };
}
pub(crate) use arg_mut;

/// An [`Out`] from a required output pointer, or return
/// `CIRCUIT_RESULT_NULL_ARGUMENT`.
macro_rules! arg_out {
    ($ptr:ident) => {
        match ::std::ptr::NonNull::new($ptr) {
            // SAFETY: the contract of every function with an output pointer
            // requires it to be valid for a write of its type and properly
            // aligned; NULL is excluded here.
            Some(p) => unsafe { $crate::boundary::Out::new(p) },
            None => return $crate::boundary::null_argument(stringify!($ptr)),
        }
    };
}
pub(crate) use arg_out;

/// An `Option<Out>` from an optional output pointer (NULL = not wanted).
macro_rules! arg_out_opt {
    ($ptr:ident) => {
        // SAFETY: as for `arg_out!`; NULL maps to `None`.
        ::std::ptr::NonNull::new($ptr).map(|p| unsafe { $crate::boundary::Out::new(p) })
    };
}
pub(crate) use arg_out_opt;

/// A Rust value from a `uint32_t` enum code, or return
/// `CIRCUIT_RESULT_INVALID_ARGUMENT` naming the argument and the value.
macro_rules! arg_enum {
    ($convert:expr, $value:ident) => {
        match $convert($value) {
            Some(v) => v,
            None => {
                return $crate::boundary::fail(
                    $crate::result::circuit_result::InvalidArgument,
                    format_args!("unknown value {} for `{}`", $value, stringify!($value)),
                )
            }
        }
    };
}
pub(crate) use arg_enum;

/// A `&str` from a pointer and a length (no NUL needed). NULL with length 0
/// is the empty string; NULL with another length is
/// `CIRCUIT_RESULT_NULL_ARGUMENT`; bytes that are not UTF-8 are
/// `CIRCUIT_RESULT_INVALID_UTF8`.
macro_rules! arg_str {
    ($ptr:ident, $len:ident) => {{
        let bytes: &[u8] = if $ptr.is_null() {
            if $len != 0 {
                return $crate::boundary::null_argument(stringify!($ptr));
            }
            &[]
        } else if $len > isize::MAX as usize {
            return $crate::boundary::fail(
                $crate::result::circuit_result::InvalidArgument,
                format_args!("`{}` of {} bytes is too long", stringify!($len), $len),
            );
        } else {
            // SAFETY: the contract requires `ptr` to point to `len` readable
            // bytes for the duration of the call; non-NULL and the
            // `isize::MAX` bound are checked above.
            unsafe { ::std::slice::from_raw_parts($ptr.cast::<u8>(), $len) }
        };
        match ::std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                return $crate::boundary::fail(
                    $crate::result::circuit_result::InvalidUtf8,
                    format_args!("`{}` is not UTF-8: {e}", stringify!($ptr)),
                )
            }
        }
    }};
}
pub(crate) use arg_str;

/// Returned by the NULL-check macros.
#[cold]
pub(crate) fn null_argument(name: &str) -> circuit_result {
    fail(
        circuit_result::NullArgument,
        format_args!("`{name}` is NULL"),
    )
}

/// A checked output pointer: written at most once, at the end of a
/// successful call ("outputs are written only on success").
#[derive(Debug)]
pub(crate) struct Out<'a, T> {
    ptr: NonNull<T>,
    _call: PhantomData<&'a mut T>,
}

impl<T> Out<'_, T> {
    /// # Safety
    /// `ptr` must be valid for a write of `T` and aligned for the duration
    /// of the exported call.
    pub(crate) unsafe fn new(ptr: NonNull<T>) -> Self {
        Out {
            ptr,
            _call: PhantomData,
        }
    }

    /// Writes the output (without reading or dropping the old contents,
    /// which may be uninitialised C memory).
    #[inline]
    pub(crate) fn write(self, value: T) {
        // SAFETY: `Out::new`'s contract: valid for a write and aligned.
        unsafe { self.ptr.as_ptr().write(value) }
    }

    /// The raw pointer, for functions that copy a prefix of a struct.
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

/// Copies `text` and a NUL into `buf` of `len` bytes under the
/// required-length protocol: on success writes the text's length (without
/// the NUL) to `out_len` and returns OK; when `len` is smaller than that
/// length plus one, writes nothing to `buf`, writes the text's length to
/// `out_len` and returns `BUFFER_TOO_SMALL` (an answer, not an error: the
/// last error is untouched). `buf` may be NULL only with `len` 0.
///
/// # Safety
/// `buf` must be NULL or valid for `len` bytes of writes.
pub(crate) unsafe fn write_text(
    text: &str,
    buf: *mut c_char,
    len: usize,
    out_len: Out<'_, usize>,
) -> circuit_result {
    if buf.is_null() && len != 0 {
        return null_argument("buf");
    }
    let needed = text.len();
    if buf.is_null() || len <= needed {
        out_len.write(needed);
        return circuit_result::BufferTooSmall;
    }
    // SAFETY: `buf` is non-NULL and valid for `len > needed` bytes (the
    // caller's contract, checked bound); `text` is a distinct Rust string.
    unsafe { copy_text(text.as_bytes(), buf) };
    out_len.write(needed);
    circuit_result::Ok
}

/// Copies `bytes` and a NUL to `buf`.
///
/// # Safety
/// `buf` must be valid for `bytes.len() + 1` bytes of writes and must not
/// overlap `bytes`.
pub(crate) unsafe fn copy_text(bytes: &[u8], buf: *mut c_char) {
    // SAFETY: the caller's contract.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
        buf.add(bytes.len()).write(0);
    }
}

/// A `#[repr(C)]` struct whose first field is `uint32_t struct_size`: the
/// caller sets it to the size of the struct it was compiled with, the
/// library fills that prefix only and writes back how many bytes it filled.
/// Fields are only ever appended, so old programs and new libraries (and
/// the reverse) agree on every field both know.
pub(crate) trait SizeTagged: Copy {
    /// Smallest `struct_size` accepted (always 8: the size field and the
    /// next 4 bytes).
    const MIN_SIZE: u32 = 8;
    /// Stores the size filled.
    fn set_struct_size(&mut self, size: u32);
}

/// Reads and checks the caller's `struct_size`: at least
/// [`SizeTagged::MIN_SIZE`] and a multiple of 8 (the alignment of every
/// such struct, so any `sizeof` qualifies). Returns the bytes to fill.
pub(crate) fn struct_size<T: SizeTagged>(
    out: &Out<'_, T>,
    name: &str,
) -> Result<usize, circuit_result> {
    // SAFETY: `out` is non-NULL and aligned, and its first field, a `u32`,
    // is readable under every exported function's contract for size-tagged
    // structs (the caller sets it).
    let size = unsafe { out.as_ptr().cast::<u32>().read() };
    if size < T::MIN_SIZE || size % 8 != 0 {
        return Err(fail(
            circuit_result::InvalidArgument,
            format_args!(
                "`{name}->struct_size` {size} must be a multiple of 8 and at least {}",
                T::MIN_SIZE
            ),
        ));
    }
    Ok((size as usize).min(std::mem::size_of::<T>()))
}

/// Writes the first `n` bytes of `value` (from [`struct_size`]), with
/// `struct_size` set to `n`.
pub(crate) fn fill_sized<T: SizeTagged>(out: Out<'_, T>, mut value: T, n: usize) {
    let n = n.min(std::mem::size_of::<T>());
    value.set_struct_size(n as u32);
    // SAFETY: the caller's struct has at least `n` writable bytes (its
    // `struct_size`, checked by `struct_size`, bounded by our size); the
    // local `value` cannot overlap it.
    unsafe {
        std::ptr::copy_nonoverlapping(
            std::ptr::addr_of!(value).cast::<u8>(),
            out.as_ptr().cast::<u8>(),
            n,
        );
    }
}
