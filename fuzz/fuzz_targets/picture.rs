#![no_main]
//! `cargo +nightly fuzz run picture`: see RELIABILITY.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vae::fuzzing::picture(data);
});
