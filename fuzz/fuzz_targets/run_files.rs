#![no_main]
//! `cargo +nightly fuzz run run_files`: see RELIABILITY.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vae::fuzzing::run_files(data);
});
