#![no_main]
//! `cargo +nightly fuzz run idx`: see RELIABILITY.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vae::fuzzing::idx(data);
});
