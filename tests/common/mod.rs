//! Helpers shared by the command-line tests.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::Path;

pub fn vae() -> Command {
    Command::cargo_bin("vae").unwrap()
}

/// Quick training flags: 512 images, batches of 64, 200 test images.
pub const SMALL: [&str; 6] = ["--train-limit", "512", "--test-limit", "200", "--batch-size", "64"];

pub fn train(dir: &Path, extra: &[&str]) -> String {
    let out = vae().args(["train", "--out"]).arg(dir).args(SMALL).args(extra).assert().success();
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

/// Runs `args`, expects failure with exactly one `Error:` line containing every `needle`.
pub fn fails(args: &[&str], needles: &[&str]) -> String {
    let out = vae().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one error line, got {stderr}");
    assert!(lines[0].starts_with("Error:") || lines[0].starts_with("error:"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: {stderr:?} lacks {n:?}");
    }
    stderr
}

pub fn png_size(path: &Path) -> (u32, u32) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let info = dec.read_info().unwrap();
    (info.info().width, info.info().height)
}

pub fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
