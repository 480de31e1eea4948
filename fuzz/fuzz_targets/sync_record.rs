//! `cargo +nightly fuzz run sync_record`: see `circuit_fuzz::sync_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| circuit_fuzz::sync_record(data));
