//! `cargo +nightly fuzz run sync_notice`: see `circuit_fuzz::sync_notice`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| circuit_fuzz::sync_notice(data));
