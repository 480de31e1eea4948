//! `cargo +nightly fuzz run breaker_ops`: see `circuit_fuzz::breaker_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| circuit_fuzz::breaker_ops(data));
