#![no_main]
//! `cargo +nightly fuzz run safetensors`: see RELIABILITY.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vae::fuzzing::safetensors(data);
});
