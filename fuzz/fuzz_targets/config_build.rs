//! `cargo +nightly fuzz run config_build`: see `circuit_fuzz::config_build`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| circuit_fuzz::config_build(data));
