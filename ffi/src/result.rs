//! The one result enum, its names, and the thread-local last error.

use std::ffi::{c_char, CStr};

use crate::boundary::{arg_out, ffi_boundary, last_error, static_cstr, write_text};

/// The result of every fallible call.
///
/// Discriminants are fixed and never renumbered; new codes are only ever
/// appended. Functions return it as a `uint32_t`; compare it with the
/// `CIRCUIT_RESULT_*` constants. `CIRCUIT_RESULT_OK` is 0.
///
/// Codes fall into three groups: `OK`; answers that are not errors
/// (`REJECTED_*`, `STALE`, `BUFFER_TOO_SMALL`, `RETRY_EXHAUSTED`,
/// `BUDGET_EXHAUSTED`, `EMPTY`), which never touch the last error, so the
/// call path never allocates; and errors (every other code), which always
/// set the calling thread's last error (see `circuit_last_error`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum circuit_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument was out of range or an enum value was unknown.
    InvalidArgument = 2,
    /// A configuration value, or the combination of values, was refused.
    InvalidConfig = 3,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 4,
    /// `acquire`: the breaker is OPEN; the call must not be made.
    RejectedOpen = 5,
    /// `acquire`: an operator forced the breaker open.
    RejectedForcedOpen = 6,
    /// `acquire`: HALF_OPEN and every probe slot is taken.
    RejectedHalfOpenFull = 7,
    /// `record`: the permit belongs to an earlier generation; the outcome
    /// was counted as stale and changed nothing else.
    Stale = 8,
    /// The caller's buffer is too small; the required length was written.
    BufferTooSmall = 9,
    /// The named thing does not exist (or there was nothing to do).
    NotFound = 10,
    /// A hard limit was reached (for example the registry's breaker cap).
    LimitExceeded = 11,
    /// The library caught an internal panic; nothing was changed that the
    /// call did not complete. Please report it with the last error.
    Panic = 12,
    /// Retry helpers: the policy's attempts are used up; do not retry.
    RetryExhausted = 13,
    /// Retry helpers: the retry budget refused this retry; do not retry.
    BudgetExhausted = 14,
    /// Polling: there is nothing to return (empty queue, end of iteration).
    Empty = 15,
    /// This library was built without the feature the function needs (the
    /// slim library has no fleet sync: see `circuit_features`).
    NotBuilt = 16,
    /// `acquire`: the breaker is ramping up after recovery and this call is
    /// outside the fraction it admits now (see
    /// `circuit_config_builder_set_ramp`).
    RejectedRampLimited = 17,
    /// Host-shared segments: a system call on the segment file failed
    /// (open, stat, read, create, link, mmap); the last error names the
    /// call, the path and the OS error.
    SegmentIo = 18,
    /// Host-shared segments: the file is not a segment this library may use
    /// for this config: truncated, not a circuit segment, another layout
    /// version, a corrupt header, or made for another config, capacity or
    /// stripe count (the last error says which). Nothing in it was changed.
    SegmentInvalid = 19,
    /// Host-shared segments: the path is a symlink or not a regular file,
    /// the file belongs to another user, or its mode grants more than the
    /// mode asked for. It is not opened.
    SegmentUnsafe = 20,
    /// Host-shared segments: a live process has been claiming the slot of
    /// this name for longer than the claim wait; try again.
    SegmentBusy = 21,
    /// `circuit_breaker_restore`: the snapshot is shorter than its record.
    SnapshotTruncated = 22,
    /// `circuit_breaker_restore`: the bytes are not a circuit snapshot.
    SnapshotForeign = 23,
    /// `circuit_breaker_restore`: a snapshot of a format version this
    /// library does not read.
    SnapshotVersion = 24,
    /// `circuit_breaker_restore`: the snapshot's checksum does not match,
    /// or a field is out of range.
    SnapshotCorrupt = 25,
    /// `circuit_breaker_restore`: the snapshot was taken from a breaker
    /// with another config.
    SnapshotConfigMismatch = 26,
}

impl circuit_result {
    /// Every code, indexed by discriminant.
    pub const ALL: [circuit_result; 27] = [
        circuit_result::Ok,
        circuit_result::NullArgument,
        circuit_result::InvalidArgument,
        circuit_result::InvalidConfig,
        circuit_result::InvalidUtf8,
        circuit_result::RejectedOpen,
        circuit_result::RejectedForcedOpen,
        circuit_result::RejectedHalfOpenFull,
        circuit_result::Stale,
        circuit_result::BufferTooSmall,
        circuit_result::NotFound,
        circuit_result::LimitExceeded,
        circuit_result::Panic,
        circuit_result::RetryExhausted,
        circuit_result::BudgetExhausted,
        circuit_result::Empty,
        circuit_result::NotBuilt,
        circuit_result::RejectedRampLimited,
        circuit_result::SegmentIo,
        circuit_result::SegmentInvalid,
        circuit_result::SegmentUnsafe,
        circuit_result::SegmentBusy,
        circuit_result::SnapshotTruncated,
        circuit_result::SnapshotForeign,
        circuit_result::SnapshotVersion,
        circuit_result::SnapshotCorrupt,
        circuit_result::SnapshotConfigMismatch,
    ];

    /// Converts a code received from C.
    pub fn from_u32(v: u32) -> Option<circuit_result> {
        circuit_result::ALL.get(v as usize).copied()
    }

    /// The code's C name, as a NUL-terminated static string.
    pub fn c_name(self) -> &'static CStr {
        match self {
            circuit_result::Ok => c"CIRCUIT_RESULT_OK",
            circuit_result::NullArgument => c"CIRCUIT_RESULT_NULL_ARGUMENT",
            circuit_result::InvalidArgument => c"CIRCUIT_RESULT_INVALID_ARGUMENT",
            circuit_result::InvalidConfig => c"CIRCUIT_RESULT_INVALID_CONFIG",
            circuit_result::InvalidUtf8 => c"CIRCUIT_RESULT_INVALID_UTF8",
            circuit_result::RejectedOpen => c"CIRCUIT_RESULT_REJECTED_OPEN",
            circuit_result::RejectedForcedOpen => c"CIRCUIT_RESULT_REJECTED_FORCED_OPEN",
            circuit_result::RejectedHalfOpenFull => c"CIRCUIT_RESULT_REJECTED_HALF_OPEN_FULL",
            circuit_result::Stale => c"CIRCUIT_RESULT_STALE",
            circuit_result::BufferTooSmall => c"CIRCUIT_RESULT_BUFFER_TOO_SMALL",
            circuit_result::NotFound => c"CIRCUIT_RESULT_NOT_FOUND",
            circuit_result::LimitExceeded => c"CIRCUIT_RESULT_LIMIT_EXCEEDED",
            circuit_result::Panic => c"CIRCUIT_RESULT_PANIC",
            circuit_result::RetryExhausted => c"CIRCUIT_RESULT_RETRY_EXHAUSTED",
            circuit_result::BudgetExhausted => c"CIRCUIT_RESULT_BUDGET_EXHAUSTED",
            circuit_result::Empty => c"CIRCUIT_RESULT_EMPTY",
            circuit_result::NotBuilt => c"CIRCUIT_RESULT_NOT_BUILT",
            circuit_result::RejectedRampLimited => c"CIRCUIT_RESULT_REJECTED_RAMP_LIMITED",
            circuit_result::SegmentIo => c"CIRCUIT_RESULT_SEGMENT_IO",
            circuit_result::SegmentInvalid => c"CIRCUIT_RESULT_SEGMENT_INVALID",
            circuit_result::SegmentUnsafe => c"CIRCUIT_RESULT_SEGMENT_UNSAFE",
            circuit_result::SegmentBusy => c"CIRCUIT_RESULT_SEGMENT_BUSY",
            circuit_result::SnapshotTruncated => c"CIRCUIT_RESULT_SNAPSHOT_TRUNCATED",
            circuit_result::SnapshotForeign => c"CIRCUIT_RESULT_SNAPSHOT_FOREIGN",
            circuit_result::SnapshotVersion => c"CIRCUIT_RESULT_SNAPSHOT_VERSION",
            circuit_result::SnapshotCorrupt => c"CIRCUIT_RESULT_SNAPSHOT_CORRUPT",
            circuit_result::SnapshotConfigMismatch => c"CIRCUIT_RESULT_SNAPSHOT_CONFIG_MISMATCH",
        }
    }

    /// The code's C name.
    pub fn name(self) -> &'static str {
        // The names are ASCII literals.
        self.c_name().to_str().unwrap_or("CIRCUIT_RESULT_?")
    }
}

/// The name of a result code (for example `"CIRCUIT_RESULT_REJECTED_OPEN"`),
/// as a static NUL-terminated string; `"CIRCUIT_RESULT_UNKNOWN"` for a value
/// that is not a code. Never NULL; the caller must not free it.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn circuit_result_str(result: u32) -> *const c_char {
    ffi_boundary! {
        match circuit_result::from_u32(result) {
            Some(r) => static_cstr(r.c_name()),
            None => static_cstr(c"CIRCUIT_RESULT_UNKNOWN"),
        }
    }
}

/// Copies the calling thread's last error message into `buf`.
///
/// Every call that returns an error code (see `circuit_result` for the
/// codes that are answers, not errors) first sets a message for its thread;
/// other calls do not clear it, as with `errno`. The message starts with
/// the code's name.
///
/// Required-length protocol: `len` is the size of `buf`. If the message
/// and its terminating NUL fit, they are copied, `*out_len` receives the
/// message length (without the NUL) and `CIRCUIT_RESULT_OK` is returned.
/// Otherwise nothing is copied, `*out_len` receives the message length
/// (allocate at least `*out_len + 1`) and `CIRCUIT_RESULT_BUFFER_TOO_SMALL`
/// is returned. `buf` may be NULL when `len` is 0 to ask for the length.
/// This function never changes the last error itself, except to report a
/// NULL `out_len` or a NULL `buf` with a non-zero `len`.
///
/// # Safety
/// `buf` must be NULL or writable for `len` bytes; `out_len` must be a
/// valid pointer to a `size_t`.
///
/// Thread safety: safe from any thread; each thread has its own message.
#[no_mangle]
pub unsafe extern "C" fn circuit_last_error(
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> circuit_result {
    ffi_boundary! {
        let out_len = arg_out!(out_len);
        // Copy the message first: `write_text` may itself set the last
        // error (NULL `buf`), which must not happen while it is borrowed.
        let message = last_error();
        // SAFETY: `buf`/`len` are passed on under this function's contract.
        unsafe { write_text(&message, buf, len, out_len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_dense() {
        for (i, r) in circuit_result::ALL.iter().enumerate() {
            assert_eq!(*r as u32, i as u32);
            assert_eq!(circuit_result::from_u32(i as u32), Some(*r));
            assert!(r.name().starts_with("CIRCUIT_RESULT_"));
        }
        let past = circuit_result::ALL.len() as u32;
        assert_eq!(circuit_result::from_u32(past), None);
        assert_eq!(circuit_result::from_u32(u32::MAX), None);
    }
}
