//! Snapshot and restore: a breaker's state, counters and window as bytes
//! that another process restores (`Breaker::snapshot`, `Breaker::restore`;
//! the record format is `circuit_core::snapshot`).

use circuit_core::SnapshotError;

use crate::boundary::{arg_out, arg_ref, fail, ffi_boundary};
use crate::breaker::circuit_breaker;
use crate::result::circuit_result;

/// The result code of a refused snapshot.
fn snapshot_code(e: &SnapshotError) -> circuit_result {
    match e {
        SnapshotError::Truncated { .. } => circuit_result::SnapshotTruncated,
        SnapshotError::Foreign => circuit_result::SnapshotForeign,
        SnapshotError::Version(_) => circuit_result::SnapshotVersion,
        SnapshotError::Corrupt(_) => circuit_result::SnapshotCorrupt,
        SnapshotError::ConfigMismatch { .. } => circuit_result::SnapshotConfigMismatch,
    }
}

/// Writes a snapshot of `breaker` (its state with the time left in its
/// deadline, backoff level, statistics, window and call counters, a few
/// hundred bytes) into `buf` under the required-length protocol for bytes:
/// if the record fits in `cap` bytes it is copied, `*out_len` receives its
/// length and `CIRCUIT_RESULT_OK` is returned; otherwise nothing is copied,
/// `*out_len` receives the length needed and
/// `CIRCUIT_RESULT_BUFFER_TOO_SMALL` is returned (`buf` may be NULL when
/// `cap` is 0). Each call takes a new snapshot, whose length may have grown
/// since the last (the window fills up): call again until it fits. The
/// record is binary (no NUL); keep it anywhere and give it to
/// `circuit_breaker_restore`, in this process or another.
///
/// # Safety
/// `breaker` must be a live breaker; `buf` NULL (with `cap` 0) or writable
/// for `cap` bytes; `out_len` a valid pointer.
///
/// Thread safety: safe from any thread, while other threads call the
/// breaker.
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_snapshot(
    breaker: *const circuit_breaker,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let out_len = arg_out!(out_len);
        if buf.is_null() && cap != 0 {
            return crate::boundary::null_argument("buf");
        }
        let record = b.snapshot();
        if buf.is_null() || cap < record.len() {
            out_len.write(record.len());
            return circuit_result::BufferTooSmall;
        }
        // SAFETY: `buf` is non-NULL and writable for `cap >= record.len()`
        // bytes (this function's contract, checked bound); `record` is a
        // distinct Rust allocation.
        unsafe { std::ptr::copy_nonoverlapping(record.as_ptr(), buf, record.len()) };
        out_len.write(record.len());
        circuit_result::Ok
    }
}

/// Restores a record from `circuit_breaker_snapshot` (`len` bytes at
/// `buf`) into `breaker`, whose config must match the one the record was
/// taken with (metrics, latency histogram and seed aside). The recorded
/// state is entered in one transition with reason
/// `CIRCUIT_REASON_RESTORED` (outstanding permits become stale); its
/// deadline is what was left less the wall-clock time since the snapshot,
/// never more than was left nor than the config allows (an OPEN breaker
/// stays open for the rest of its window); a HALF_OPEN one comes back with
/// no probe held. The window and statistics replace the breaker's; the
/// call counters are added to its own. See the README, "Snapshot and
/// restore".
///
/// A refused record changes nothing and returns
/// `CIRCUIT_RESULT_SNAPSHOT_TRUNCATED` (too short),
/// `CIRCUIT_RESULT_SNAPSHOT_FOREIGN` (not a circuit snapshot),
/// `CIRCUIT_RESULT_SNAPSHOT_VERSION` (another format version),
/// `CIRCUIT_RESULT_SNAPSHOT_CORRUPT` (checksum or a field out of range) or
/// `CIRCUIT_RESULT_SNAPSHOT_CONFIG_MISMATCH` (taken with another config),
/// with the last error saying more.
///
/// # Safety
/// `breaker` must be a live breaker; `buf` must point to `len` readable
/// bytes (NULL only with `len` 0).
///
/// Thread safety: safe from any thread, while other threads call the
/// breaker (they see the old state or the restored one).
#[no_mangle]
pub unsafe extern "C" fn circuit_breaker_restore(
    breaker: *const circuit_breaker,
    buf: *const u8,
    len: usize,
) -> circuit_result {
    ffi_boundary! {
        let b = arg_ref!(breaker);
        let bytes: &[u8] = if buf.is_null() {
            if len != 0 {
                return crate::boundary::null_argument("buf");
            }
            &[]
        } else if len > isize::MAX as usize {
            return fail(
                circuit_result::InvalidArgument,
                format_args!("`len` of {len} bytes is too long"),
            );
        } else {
            // SAFETY: the contract requires `buf` to point to `len`
            // readable bytes for the duration of the call; non-NULL and the
            // `isize::MAX` bound are checked above.
            unsafe { std::slice::from_raw_parts(buf, len) }
        };
        match b.restore(bytes) {
            Ok(()) => circuit_result::Ok,
            Err(e) => fail(snapshot_code(&e), e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::{
        circuit_breaker_force, circuit_breaker_free, circuit_breaker_new, circuit_breaker_state,
    };
    use crate::config::{
        circuit_config_builder_build, circuit_config_builder_new, circuit_config_free,
    };

    #[test]
    fn each_refusal_has_its_code() {
        let cases = [
            (
                SnapshotError::Truncated {
                    found: 1,
                    needed: 2,
                },
                circuit_result::SnapshotTruncated,
            ),
            (SnapshotError::Foreign, circuit_result::SnapshotForeign),
            (SnapshotError::Version(9), circuit_result::SnapshotVersion),
            (
                SnapshotError::Corrupt("checksum"),
                circuit_result::SnapshotCorrupt,
            ),
            (
                SnapshotError::ConfigMismatch {
                    found: 1,
                    expected: 2,
                },
                circuit_result::SnapshotConfigMismatch,
            ),
        ];
        let mut seen = std::collections::HashSet::new();
        for (e, code) in cases {
            assert_eq!(snapshot_code(&e), code);
            assert!(seen.insert(code as u32));
        }
    }

    #[test]
    fn a_snapshot_round_trips_through_the_abi() {
        // SAFETY: every pointer below is a live local or a handle made here.
        unsafe {
            let builder = circuit_config_builder_new();
            let mut config = std::ptr::null_mut();
            assert_eq!(
                circuit_config_builder_build(builder, &mut config),
                circuit_result::Ok
            );
            let mut a = std::ptr::null();
            let mut b = std::ptr::null();
            assert_eq!(
                circuit_breaker_new(config, std::ptr::null(), &mut a),
                circuit_result::Ok
            );
            assert_eq!(
                circuit_breaker_new(config, std::ptr::null(), &mut b),
                circuit_result::Ok
            );
            assert_eq!(
                circuit_breaker_force(a, crate::breaker::circuit_override::ForcedOpen as u32, 0),
                circuit_result::Ok
            );
            let mut len = 0usize;
            assert_eq!(
                circuit_breaker_snapshot(a, std::ptr::null_mut(), 0, &mut len),
                circuit_result::BufferTooSmall
            );
            let mut buf = vec![0u8; len];
            assert_eq!(
                circuit_breaker_snapshot(a, buf.as_mut_ptr(), len - 1, &mut len),
                circuit_result::BufferTooSmall
            );
            assert_eq!(
                circuit_breaker_snapshot(a, buf.as_mut_ptr(), buf.len(), &mut len),
                circuit_result::Ok
            );
            assert_eq!(
                circuit_breaker_restore(b, buf.as_ptr(), len - 1),
                circuit_result::SnapshotTruncated
            );
            assert_eq!(
                circuit_breaker_restore(b, std::ptr::null(), 5),
                circuit_result::NullArgument
            );
            assert_eq!(
                circuit_breaker_restore(b, buf.as_ptr(), len),
                circuit_result::Ok
            );
            let mut state = 0u32;
            assert_eq!(circuit_breaker_state(b, &mut state), circuit_result::Ok);
            assert_eq!(state, crate::breaker::circuit_state::ForcedOpen as u32);
            circuit_breaker_free(a);
            circuit_breaker_free(b);
            circuit_config_free(config);
        }
    }
}
