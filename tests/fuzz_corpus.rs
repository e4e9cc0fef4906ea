//! Replays every committed fuzz input (`fuzz/corpus/<target>.gz`, the minimised corpus of the
//! fuzzing runs with every crash found) and the targets' seeds through the same entry points
//! the fuzzers call, so a parser defect fixed once stays fixed on stable Rust without
//! cargo-fuzz. See RELIABILITY.md.

use std::path::Path;

#[test]
fn every_corpus_input_is_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, run) in vae::fuzzing::TARGETS {
        let path = root.join(format!("{target}.gz"));
        let packed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let inputs = vae::fuzzing::unpack(&packed).unwrap();
        assert!(inputs.len() >= 100, "{}: the corpus holds only {} inputs", path.display(), inputs.len());
        let accepted = inputs.iter().enumerate().filter(|(i, data)| {
            std::panic::catch_unwind(|| run(data)).unwrap_or_else(|_| panic!("{target} panics on input {i}"))
        });
        // The corpus explores both sides: inputs that parse and inputs that are refused.
        let n = accepted.count();
        assert!(n > 0 && n < inputs.len(), "{target}: {n} of {} accepted", inputs.len());
    }
}

#[test]
fn packing_round_trips() {
    let inputs = vec![vec![], vec![1, 2, 3], vec![0; 70_000]];
    assert_eq!(vae::fuzzing::unpack(&vae::fuzzing::pack(&inputs)).unwrap(), inputs);
    let packed = vae::fuzzing::pack(&[vec![9; 10]]);
    assert!(vae::fuzzing::unpack(&packed[..packed.len() - 3]).is_err(), "a truncated file");
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
