//! `cargo +nightly fuzz run http_retry_after`: see `circuit_fuzz::http_retry_after`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| circuit_fuzz::http_retry_after(data));
