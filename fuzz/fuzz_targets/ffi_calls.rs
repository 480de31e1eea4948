//! `cargo +nightly fuzz run ffi_calls`: see `circuit_fuzz::ffi_calls`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| circuit_fuzz::ffi_calls(data));
