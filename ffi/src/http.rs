//! HTTP integrations' shared rules (`circuit_core::http`): the default
//! outcome of a response status and the delay of a `Retry-After` header,
//! so that every wrapper classifies and honours `Retry-After` the same way.

use std::ffi::c_char;
use std::time::{Duration, UNIX_EPOCH};

use circuit_core::clock::duration_to_nanos;
use circuit_core::http::{
    outcome_for_status, parse_retry_after, RetryAfterError, MAX_RETRY_AFTER_LEN,
};

use crate::boundary::{arg_out, fail, ffi_boundary, null_argument};
use crate::result::circuit_result;

/// Longest `Retry-After` value `circuit_http_retry_after` looks at, in
/// bytes; a longer one is `CIRCUIT_RESULT_NOT_FOUND`, unread.
pub const CIRCUIT_HTTP_RETRY_AFTER_MAX_LEN: usize = 128;

const _: () = assert!(CIRCUIT_HTTP_RETRY_AFTER_MAX_LEN == MAX_RETRY_AFTER_LEN);

/// Writes the default `circuit_outcome` of an HTTP response status to
/// `*out_outcome`: 100-399 SUCCESS; 429 FAILURE; other 400-499 IGNORED;
/// 500-599 FAILURE; any other number FAILURE (a server that answers
/// garbage is failing). Returns `CIRCUIT_RESULT_OK`, or
/// `CIRCUIT_RESULT_NULL_ARGUMENT` when `out_outcome` is NULL.
///
/// # Safety
/// `out_outcome` must be a valid pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_http_outcome(
    status: u32,
    out_outcome: *mut u32,
) -> circuit_result {
    ffi_boundary! {
        let out_outcome = arg_out!(out_outcome);
        out_outcome.write(outcome_for_status(status) as u32);
        circuit_result::Ok
    }
}

/// Parses a `Retry-After` header value and writes the delay it asks for,
/// in nanoseconds, to `*out_delay_ns`; pass that delay to
/// `circuit_breaker_record_retry_after` (which clamps it to the
/// configured maximum open duration).
///
/// `value` is the header's raw bytes, `value_len` long (no NUL needed; NULL
/// with `value_len` 0 is the empty value). `now_unix_ns` is the wall-clock
/// time the response arrived, in nanoseconds since the Unix epoch. Accepted:
/// delta-seconds (ASCII digits only; too many saturate) or an HTTP-date
/// (IMF-fixdate, RFC 850 or asctime; its distance from `now_unix_ns`, 0 for
/// a date in the past), with optional surrounding spaces and tabs.
///
/// Returns `CIRCUIT_RESULT_OK`; `CIRCUIT_RESULT_NOT_FOUND` when the value
/// gives no usable delay (empty, garbage, not ASCII, longer than
/// `CIRCUIT_HTTP_RETRY_AFTER_MAX_LEN`), with the reason in the last error:
/// record without a `Retry-After` then; `CIRCUIT_RESULT_NULL_ARGUMENT` for
/// a NULL `out_delay_ns`, or a NULL `value` with a non-zero `value_len`;
/// `CIRCUIT_RESULT_INVALID_ARGUMENT` for a `now_unix_ns` the platform's
/// clock cannot represent (none on 64-bit Linux).
/// `*out_delay_ns` is written only on `CIRCUIT_RESULT_OK`.
///
/// # Safety
/// `value` must point to `value_len` readable bytes (it may be NULL when
/// `value_len` is 0; a length over `CIRCUIT_HTTP_RETRY_AFTER_MAX_LEN` is
/// refused before any byte is read); `out_delay_ns` must be a valid
/// pointer.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn circuit_http_retry_after(
    value: *const c_char,
    value_len: usize,
    now_unix_ns: u64,
    out_delay_ns: *mut u64,
) -> circuit_result {
    ffi_boundary! {
        let out_delay_ns = arg_out!(out_delay_ns);
        if value.is_null() && value_len != 0 {
            return null_argument("value");
        }
        if value_len > MAX_RETRY_AFTER_LEN {
            // Refused by its length alone, before any byte is read.
            let e = RetryAfterError::TooLong(value_len);
            return fail(circuit_result::NotFound, format_args!("no usable delay: {e}"));
        }
        let bytes: &[u8] = if value_len == 0 {
            &[]
        } else {
            // SAFETY: the contract requires `value` to point to `value_len`
            // readable bytes; it is non-NULL (checked above) and the length
            // is at most `MAX_RETRY_AFTER_LEN`.
            unsafe { std::slice::from_raw_parts(value.cast::<u8>(), value_len) }
        };
        let Some(now) = UNIX_EPOCH.checked_add(Duration::from_nanos(now_unix_ns)) else {
            return fail(
                circuit_result::InvalidArgument,
                format_args!("`now_unix_ns` {now_unix_ns} is beyond this platform's clock"),
            );
        };
        let parsed = parse_retry_after(bytes, now);
        match parsed {
            Ok(delay) => {
                out_delay_ns.write(duration_to_nanos(delay));
                circuit_result::Ok
            }
            Err(e) => fail(circuit_result::NotFound, format_args!("no usable delay: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boundary::last_error;
    use circuit_core::Outcome;

    fn retry_after(value: &[u8], now_ns: u64) -> (circuit_result, u64) {
        let mut out = 12345;
        // SAFETY: `value` is a live slice, `out` a local.
        let r = unsafe {
            circuit_http_retry_after(value.as_ptr().cast(), value.len(), now_ns, &mut out)
        };
        (r, out)
    }

    #[test]
    fn outcome_codes_are_the_cores() {
        for status in [0, 100, 200, 302, 404, 429, 500, 599, 600, u32::MAX] {
            let mut out = 99;
            // SAFETY: `out` is a local.
            let r = unsafe { circuit_http_outcome(status, &mut out) };
            assert_eq!(r, circuit_result::Ok);
            assert_eq!(Outcome::from_u32(out), Some(outcome_for_status(status)));
        }
        // SAFETY: NULL is the case under test.
        let r = unsafe { circuit_http_outcome(200, std::ptr::null_mut()) };
        assert_eq!(r, circuit_result::NullArgument);
        assert!(last_error().contains("out_outcome"));
    }

    #[test]
    fn retry_after_delays_and_refusals() {
        assert_eq!(retry_after(b"7", 0), (circuit_result::Ok, 7_000_000_000));
        // 1994-11-06 08:49:37.5 UTC.
        let now = 784_111_777_500_000_000;
        assert_eq!(
            retry_after(b"Sun, 06 Nov 1994 08:49:46 GMT", now),
            (circuit_result::Ok, 8_500_000_000)
        );
        assert_eq!(
            retry_after(b"99999999999999999999", now),
            (circuit_result::Ok, u64::MAX)
        );
        // The last nanosecond of a `u64` clock: a date is in the past.
        assert_eq!(
            retry_after(b"Sun, 06 Nov 1994 08:49:46 GMT", u64::MAX),
            (circuit_result::Ok, 0)
        );
        assert_eq!(
            retry_after(b"3", u64::MAX),
            (circuit_result::Ok, 3_000_000_000)
        );
        for bad in [&b"soon"[..], b"", b"\xff7", b"7\n"] {
            assert_eq!(retry_after(bad, now), (circuit_result::NotFound, 12345));
            assert!(last_error().starts_with("CIRCUIT_RESULT_NOT_FOUND: no usable delay"));
        }
        let long = vec![b'1'; CIRCUIT_HTTP_RETRY_AFTER_MAX_LEN + 1];
        assert_eq!(retry_after(&long, now), (circuit_result::NotFound, 12345));
        assert!(last_error().contains("longer than"), "{}", last_error());
        let mut out = 1;
        // SAFETY: a huge length with a NULL value is refused unread.
        let r = unsafe { circuit_http_retry_after(std::ptr::null(), usize::MAX, 0, &mut out) };
        assert_eq!((r, out), (circuit_result::NullArgument, 1));
        // SAFETY: NULL with 0 is the empty value.
        let r = unsafe { circuit_http_retry_after(std::ptr::null(), 0, 0, &mut out) };
        assert_eq!((r, out), (circuit_result::NotFound, 1));
        // SAFETY: a length over the limit is refused before any byte is read.
        let r = unsafe { circuit_http_retry_after(c"7".as_ptr(), usize::MAX, 0, &mut out) };
        assert_eq!((r, out), (circuit_result::NotFound, 1));
        // SAFETY: NULL output is the case under test.
        let r = unsafe { circuit_http_retry_after(c"7".as_ptr(), 1, 0, std::ptr::null_mut()) };
        assert_eq!(r, circuit_result::NullArgument);
    }
}
