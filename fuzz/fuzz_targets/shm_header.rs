//! `cargo +nightly fuzz run shm_header`: see `circuit_fuzz::shm_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| circuit_fuzz::shm_header(data));
