//! HTTP semantics every integration shares (README "HTTP clients"): which
//! [`Outcome`] a response status records, and how a `Retry-After` header
//! becomes an open duration. No HTTP library is needed: a status is a
//! number and a header value is bytes. The C ABI exports both
//! (`circuit_http_outcome`, `circuit_http_retry_after`), so the Python and
//! Go integrations apply these rules instead of restating them.
//!
//! ```
//! use circuit_core::http::{outcome_for_status, parse_retry_after};
//! use circuit_core::Outcome;
//! use std::time::{Duration, SystemTime};
//!
//! assert_eq!(outcome_for_status(503), Outcome::Failure);
//! assert_eq!(outcome_for_status(404), Outcome::Ignored);
//! let delay = parse_retry_after(b"7", SystemTime::now()).unwrap();
//! assert_eq!(delay, Duration::from_secs(7));
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::call::Outcome;

/// The default classification of a response status:
///
/// | status | outcome |
/// |---|---|
/// | 100-399 | `Success` (a redirect is an answer, followed or not) |
/// | 429 | `Failure` (the server is shedding load) |
/// | other 400-499 | `Ignored` (the caller's mistake says nothing of the server) |
/// | 500-599 | `Failure` |
/// | anything else | `Failure` (a server that answers garbage is failing) |
pub fn outcome_for_status(status: u32) -> Outcome {
    match status {
        100..=399 => Outcome::Success,
        429 => Outcome::Failure,
        400..=499 => Outcome::Ignored,
        _ => Outcome::Failure,
    }
}

/// Longest `Retry-After` value looked at, in bytes. The longest valid one,
/// an RFC 850 date with a long weekday name, is 33 bytes; anything longer
/// than this is refused unread.
pub const MAX_RETRY_AFTER_LEN: usize = 128;

/// Why a `Retry-After` value gave no delay. The breaker then opens for its
/// configuration's computed duration, as if there were no header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfterError {
    /// Empty or only whitespace.
    Empty,
    /// Longer than [`MAX_RETRY_AFTER_LEN`] bytes (the length is given).
    TooLong(usize),
    /// Contains a byte that is not printable ASCII.
    NotAscii,
    /// Neither delta-seconds nor an HTTP-date.
    Malformed,
}

impl fmt::Display for RetryAfterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryAfterError::Empty => f.write_str("Retry-After value is empty"),
            RetryAfterError::TooLong(n) => write!(
                f,
                "Retry-After value of {n} bytes is longer than {MAX_RETRY_AFTER_LEN}"
            ),
            RetryAfterError::NotAscii => {
                f.write_str("Retry-After value contains a byte that is not printable ASCII")
            }
            RetryAfterError::Malformed => {
                f.write_str("Retry-After value is neither delta-seconds nor an HTTP-date")
            }
        }
    }
}

impl std::error::Error for RetryAfterError {}

/// The delay a `Retry-After` header value asks for, `now` being the wall
/// clock time the response arrived (RFC 9110 section 10.2.3):
///
/// - delta-seconds: ASCII digits only (no sign, no fraction); a value
///   beyond `u64::MAX` seconds saturates;
/// - an HTTP-date (IMF-fixdate, RFC 850 or asctime): the time from `now`
///   until then, zero for a date in the past.
///
/// Surrounding spaces and tabs are allowed. Anything else, and any value
/// longer than [`MAX_RETRY_AFTER_LEN`] bytes, is an error. Never panics.
/// The breaker clamps the delay to its `max_open_duration` when it records
/// it (`Breaker::record_with_retry_after`).
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Result<Duration, RetryAfterError> {
    if value.len() > MAX_RETRY_AFTER_LEN {
        return Err(RetryAfterError::TooLong(value.len()));
    }
    let value = trim_ows(value);
    if value.is_empty() {
        return Err(RetryAfterError::Empty);
    }
    if !value.iter().all(|b| (b' '..=b'~').contains(b)) {
        return Err(RetryAfterError::NotAscii);
    }
    if value.iter().all(u8::is_ascii_digit) {
        let seconds = value.iter().fold(0u64, |acc, d| {
            acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        return Ok(Duration::from_secs(seconds));
    }
    // Printable ASCII, checked above, is UTF-8.
    let text = std::str::from_utf8(value).map_err(|_| RetryAfterError::NotAscii)?;
    let date = httpdate::parse_http_date(text).map_err(|_| RetryAfterError::Malformed)?;
    Ok(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `value` without leading and trailing spaces and tabs (HTTP's OWS).
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::UNIX_EPOCH;

    /// 1994-11-06 08:49:37 UTC, the date of RFC 9110's examples.
    fn rfc_example() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn statuses_classify_by_class() {
        for (status, want) in [
            (100, Outcome::Success),
            (200, Outcome::Success),
            (204, Outcome::Success),
            (302, Outcome::Success),
            (399, Outcome::Success),
            (400, Outcome::Ignored),
            (404, Outcome::Ignored),
            (428, Outcome::Ignored),
            (429, Outcome::Failure),
            (430, Outcome::Ignored),
            (499, Outcome::Ignored),
            (500, Outcome::Failure),
            (503, Outcome::Failure),
            (599, Outcome::Failure),
            (0, Outcome::Failure),
            (99, Outcome::Failure),
            (600, Outcome::Failure),
            (70_000, Outcome::Failure),
            (u32::MAX, Outcome::Failure),
        ] {
            assert_eq!(outcome_for_status(status), want, "status {status}");
        }
    }

    #[test]
    fn delta_seconds() {
        let now = rfc_example();
        for (v, secs) in [
            (&b"0"[..], 0),
            (b"7", 7),
            (b"120", 120),
            (b"  7\t", 7),
            (b"0007", 7),
            (b"18446744073709551615", u64::MAX),
            (b"18446744073709551616", u64::MAX),
            (b"99999999999999999999999999999999999999", u64::MAX),
        ] {
            assert_eq!(
                parse_retry_after(v, now),
                Ok(Duration::from_secs(secs)),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn http_dates_in_all_three_formats() {
        let now = rfc_example();
        for v in [
            &b"Sun, 06 Nov 1994 08:49:46 GMT"[..],
            b"Sunday, 06-Nov-94 08:49:46 GMT",
            b"Sun Nov  6 08:49:46 1994",
            b" Sun, 06 Nov 1994 08:49:46 GMT ",
        ] {
            assert_eq!(
                parse_retry_after(v, now),
                Ok(Duration::from_secs(9)),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        // In the past, or exactly now: no wait.
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:49:30 GMT", now),
            Ok(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GMT", now),
            Ok(Duration::ZERO)
        );
        // A date relative to a `now` with a fraction of a second.
        let later = now + Duration::from_millis(250);
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:49:46 GMT", later),
            Ok(Duration::from_millis(8750))
        );
    }

    #[test]
    fn unusable_values_are_errors() {
        let now = rfc_example();
        for (v, want) in [
            (&b""[..], RetryAfterError::Empty),
            (b" \t ", RetryAfterError::Empty),
            (b"soon", RetryAfterError::Malformed),
            (b"-7", RetryAfterError::Malformed),
            (b"+7", RetryAfterError::Malformed),
            (b"7.5", RetryAfterError::Malformed),
            (b"7 8", RetryAfterError::Malformed),
            (b"0x10", RetryAfterError::Malformed),
            (b"Sun, 06 Nov 1994 25:49:46 GMT", RetryAfterError::Malformed),
            (b"Sun, 31 Feb 1994 08:49:46 GMT", RetryAfterError::Malformed),
            (b"7\r\n", RetryAfterError::NotAscii),
            (b"\x007", RetryAfterError::NotAscii),
            (b"\xff\xfe", RetryAfterError::NotAscii),
            ("\u{0667}".as_bytes(), RetryAfterError::NotAscii), // Arabic-Indic 7
        ] {
            assert_eq!(
                parse_retry_after(v, now),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        let long = vec![b'7'; MAX_RETRY_AFTER_LEN + 1];
        assert_eq!(
            parse_retry_after(&long, now),
            Err(RetryAfterError::TooLong(MAX_RETRY_AFTER_LEN + 1))
        );
        let longest = vec![b'7'; MAX_RETRY_AFTER_LEN];
        assert_eq!(
            parse_retry_after(&longest, now),
            Ok(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn a_clock_at_either_end_of_time_does_not_panic() {
        for now in [UNIX_EPOCH, UNIX_EPOCH + Duration::from_nanos(u64::MAX)] {
            let _ = parse_retry_after(b"Sun, 06 Nov 1994 08:49:46 GMT", now);
            assert_eq!(parse_retry_after(b"3", now), Ok(Duration::from_secs(3)));
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            now_ns in any::<u64>(),
        ) {
            let now = UNIX_EPOCH + Duration::from_nanos(now_ns);
            let _ = parse_retry_after(&bytes, now);
        }

        #[test]
        fn near_valid_text_never_panics(
            text in "[ \t]{0,2}([0-9]{0,30}|[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT)[ \t]{0,2}",
            now_ns in any::<u64>(),
        ) {
            let now = UNIX_EPOCH + Duration::from_nanos(now_ns);
            let _ = parse_retry_after(text.as_bytes(), now);
        }

        #[test]
        fn every_digit_string_is_its_value(secs in any::<u64>(), pad in 0usize..3) {
            let text = format!("{}{secs}{}", " ".repeat(pad), "\t".repeat(pad));
            prop_assert_eq!(
                parse_retry_after(text.as_bytes(), UNIX_EPOCH),
                Ok(Duration::from_secs(secs))
            );
        }

        #[test]
        fn every_formatted_date_is_its_distance(
            now_s in 0u64..4_000_000_000,
            ahead in 0u64..1_000_000,
            frac_ms in 0u64..1000,
        ) {
            let now = UNIX_EPOCH + Duration::from_secs(now_s) + Duration::from_millis(frac_ms);
            let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(now_s + ahead));
            let want = Duration::from_secs(ahead).saturating_sub(Duration::from_millis(frac_ms));
            prop_assert_eq!(parse_retry_after(date.as_bytes(), now), Ok(want));
        }
    }
}
