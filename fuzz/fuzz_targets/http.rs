#![no_main]
//! `cargo +nightly fuzz run http`: see RELIABILITY.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vae::fuzzing::http(data);
});
