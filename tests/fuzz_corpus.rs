//! Replays every committed fuzz input (`fuzz/corpus/<target>/`, crashes found included) and
//! the targets' seeds through the same entry points the fuzzers call, so a parser defect
//! fixed once stays fixed on stable Rust without cargo-fuzz. See RELIABILITY.md.

use std::path::Path;

#[test]
fn every_corpus_input_is_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, run) in vae::fuzzing::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 4, "{}: the corpus holds only {} inputs", dir.display(), files.len());
        for file in &files {
            let data = std::fs::read(file).unwrap();
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("{target} panics on {}", file.display());
            }
        }
    }
}

#[test]
fn every_seed_is_accepted() {
    // Seeds are well-formed inputs (a fuzzer started from rejected ones explores little):
    // each must pass its parser, or get a 2xx from the API, and the targets' checks.
    for (target, run) in vae::fuzzing::TARGETS {
        let seeds = vae::fuzzing::seeds(target);
        assert!(seeds.len() >= 4, "{target}");
        for (i, seed) in seeds.iter().enumerate() {
            assert!(run(seed), "{target} seed {i} is refused");
        }
    }
}

#[test]
fn refused_inputs_are_refused() {
    use vae::fuzzing::{http, idx, picture, run_files, safetensors};
    assert!(!idx(b"\x00\x00\x08\x03\x00\x00\x00\x02"), "a truncated header");
    assert!(!idx(&[0x1f, 0x8b, 8, 0, 0]), "a truncated gzip stream");
    assert!(!run_files(br#"{"model": {"kind": "vae"}}"#));
    assert!(!safetensors(&[0, 8, 0, 0, 0, 0, 0, 0, 0, b'{', b'}']));
    assert!(!picture(b"\x89PNG\r\n\x1a\n"));
    assert!(!http(b"\x00\x00/api/sample?n=0"), "n must be at least 1");
    assert!(!http(b"\x01\x01/api/decode\n{\"z\":[0,0,0]}"), "a cvae needs a label");
    assert!(!http(b"\x00\x02/api/nothing?a=%zz"), "no such endpoint");
}
