//! `cargo +nightly fuzz run snapshot_restore`: see `circuit_fuzz::snapshot_restore`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| circuit_fuzz::snapshot_restore(data));
