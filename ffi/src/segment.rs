//! Host-shared segments: a mapped file whose named slots hold breakers that
//! every process of the host shares (`circuit_core::shared`). A segment's
//! breaker is an ordinary `circuit_breaker` handle: every breaker function
//! works on it.

use std::ffi::c_char;
use std::path::PathBuf;
use std::time::Duration;

use circuit_core::shared::{shm_path, Segment, SegmentError, SegmentOptions};

use crate::boundary::{arg_out, arg_ref, arg_str, fail, ffi_boundary, null_argument};
use crate::breaker::circuit_breaker;
use crate::config::circuit_config;
use crate::handle::{clone_shared, free_shared, handle_of, new_shared};
use crate::result::circuit_result;

/// `circuit_segment_open`: slots (breaker names) when `capacity` is 0.
pub const CIRCUIT_SEGMENT_DEFAULT_CAPACITY: u32 = 64;
/// `circuit_segment_open`: process stripes per slot when `stripes` is 0.
pub const CIRCUIT_SEGMENT_DEFAULT_STRIPES: u32 = 16;
/// `circuit_segment_open`: file mode when `mode` is 0 (owner only).
pub const CIRCUIT_SEGMENT_DEFAULT_MODE: u32 = 0o600;

/// An open host-shared segment: a file mapped into this process, whose
/// named slots hold breakers shared by every process that opens the same
/// file with the same config. Reference-counted like a breaker: each handle
/// from `circuit_segment_open` is released with `circuit_segment_free`;
/// breakers taken from it keep the mapping alive on their own.
#[derive(Debug)]
pub struct circuit_segment {
    _opaque: [u8; 0],
}

handle_of!(circuit_segment => Shared Segment);

/// The result code and last error for a segment error.
fn segment_error(e: SegmentError) -> circuit_result {
    let code = match &e {
        SegmentError::Io { .. } => circuit_result::SegmentIo,
        SegmentError::Layout(_) => circuit_result::SegmentInvalid,
        SegmentError::NotRegular
        | SegmentError::ForeignOwner { .. }
        | SegmentError::Permissions { .. } => circuit_result::SegmentUnsafe,
        SegmentError::Options(_) | SegmentError::SegmentName | SegmentError::BreakerName => {
            circuit_result::InvalidArgument
        }
        SegmentError::Full { .. } => circuit_result::LimitExceeded,
        SegmentError::Busy => circuit_result::SegmentBusy,
    };
    fail(code, e)
}

/// Opens the host-shared segment `path_or_name` for breakers of `config`,
/// creating it if it does not exist (race-free: of several processes
/// creating it at once, one does and the others open it).
///
/// `path_or_name` (UTF-8, `path_or_name_len` bytes): a name of 1 to 200
/// characters of `A-Z a-z 0-9 . _ -` (not starting with `.`) opens
/// `/dev/shm/circuit.<name>`; a string with a `/` is a file path. Every
/// process sharing the segment must open it with the same config (a hash of
/// every field that shapes the breaker's words is in the header; another
/// config is `CIRCUIT_RESULT_SEGMENT_INVALID`), `capacity` (named slots, 0:
/// `CIRCUIT_SEGMENT_DEFAULT_CAPACITY`, at most 65536) and `stripes`
/// (process counter stripes per slot, 0: `CIRCUIT_SEGMENT_DEFAULT_STRIPES`,
/// at most 1024). `mode` (0: `CIRCUIT_SEGMENT_DEFAULT_MODE`, 0600) is the
/// new file's mode, and an existing file with any permission bit beyond it
/// is refused (`CIRCUIT_RESULT_SEGMENT_UNSAFE`); it must include 0600.
///
/// On success `*out_segment` receives a handle owned by the caller
/// (release it with `circuit_segment_free`). Errors:
/// `CIRCUIT_RESULT_SEGMENT_IO`, `_SEGMENT_INVALID`, `_SEGMENT_UNSAFE`,
/// `_INVALID_ARGUMENT` (name, capacity, stripes or mode out of range),
/// with the reason in the last error; nothing is created or changed then.
///
/// # Safety
/// `path_or_name` must point to `path_or_name_len` readable bytes;
/// `config` must be a live config; `out_segment` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_segment_open(
    path_or_name: *const c_char,
    path_or_name_len: usize,
    config: *const circuit_config,
    capacity: u32,
    stripes: u32,
    mode: u32,
    out_segment: *mut *const circuit_segment,
) -> circuit_result {
    ffi_boundary! {
        let target = arg_str!(path_or_name, path_or_name_len);
        let config = arg_ref!(config);
        let out = arg_out!(out_segment);
        let path = if target.contains('/') {
            PathBuf::from(target)
        } else {
            match shm_path(target) {
                Ok(p) => p,
                Err(e) => return segment_error(e),
            }
        };
        let options = SegmentOptions {
            capacity: if capacity == 0 { CIRCUIT_SEGMENT_DEFAULT_CAPACITY } else { capacity },
            stripes: if stripes == 0 { CIRCUIT_SEGMENT_DEFAULT_STRIPES } else { stripes },
            mode: if mode == 0 { CIRCUIT_SEGMENT_DEFAULT_MODE } else { mode },
            claim_wait: Duration::from_secs(1),
        };
        match Segment::open(&path, &config.config, &options) {
            Ok(segment) => {
                out.write(new_shared(segment));
                circuit_result::Ok
            }
            Err(e) => segment_error(e),
        }
    }
}

/// The breaker named `name` (UTF-8, `name_len` bytes, 1 to 119) of
/// `segment`: an ordinary breaker handle (every `circuit_breaker_*`
/// function works on it; release it with `circuit_breaker_free`) whose
/// state, deadline, probe slots, window and call counters are the
/// segment's, shared by every process that opens this name there. It runs
/// the segment's config on the host's `CLOCK_MONOTONIC`; its listeners,
/// latency histogram and transition counts stay in this process.
/// Transitions won by another process reach this process's listeners on
/// its next call, once, with reason `CIRCUIT_REASON_REMOTE`.
///
/// Errors: `CIRCUIT_RESULT_INVALID_ARGUMENT` (a name out of range),
/// `_LIMIT_EXCEEDED` (every slot holds another name), `_SEGMENT_BUSY` (a
/// live process is still claiming the slot), `_SEGMENT_INVALID` (a slot
/// word no version writes).
///
/// # Safety
/// `segment` must be a live segment, `name` point to `name_len` readable
/// bytes, `out_breaker` a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_segment_breaker(
    segment: *const circuit_segment,
    name: *const c_char,
    name_len: usize,
    out_breaker: *mut *const circuit_breaker,
) -> circuit_result {
    ffi_boundary! {
        let out = arg_out!(out_breaker);
        let name = arg_str!(name, name_len);
        // SAFETY: by contract NULL or a live segment handle.
        let Some(seg) = (unsafe { clone_shared(segment) }) else {
            return null_argument("segment");
        };
        match seg.breaker(name) {
            Ok(b) => {
                out.write(new_shared(b));
                circuit_result::Ok
            }
            Err(e) => segment_error(e),
        }
    }
}

/// Releases a segment handle (NULL is ignored). The mapping stays while
/// any breaker taken from it lives; the file stays until removed.
///
/// # Safety
/// `segment` must be NULL or a live segment whose reference the caller
/// gives up.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_segment_free(segment: *const circuit_segment) {
    ffi_boundary! {
        // SAFETY: by contract NULL or a live handle given up here.
        unsafe { free_shared(segment) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_segment_error_has_its_code() {
        let io = SegmentError::Io {
            op: "open",
            path: PathBuf::from("/x"),
            source: std::io::Error::other("no"),
        };
        assert_eq!(segment_error(io), circuit_result::SegmentIo);
        assert_eq!(
            segment_error(SegmentError::Permissions { mode: 0o666 }),
            circuit_result::SegmentUnsafe
        );
        assert_eq!(
            segment_error(SegmentError::Full { capacity: 1 }),
            circuit_result::LimitExceeded
        );
        assert_eq!(
            segment_error(SegmentError::Busy),
            circuit_result::SegmentBusy
        );
        assert_eq!(
            segment_error(SegmentError::BreakerName),
            circuit_result::InvalidArgument
        );
    }
}
