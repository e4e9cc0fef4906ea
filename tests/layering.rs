//! The crate's modules form layers, and a module may use only modules of lower layers
//! (README, "Layout"): read from the sources, so a new `use` that points up, or sideways
//! within a layer, fails here instead of growing a circle.

use std::collections::BTreeMap;
use std::path::Path;

/// Lowest first. Within a layer no module uses another.
const LAYERS: &[&[&str]] = &[
    &["core", "clock", "io", "lock", "text", "export", "schedule", "metrics"],
    &["nn", "progress", "gmm", "cluster"],
    &["data"],
    &["images", "model"],
    &["train"],
    &["checkpoint"],
    &["classifier", "rundata", "sampler", "explore"],
    &["eval", "plot"],
    &["run"],
    &["serve", "bench"],
    &["cli", "fuzzing"],
];

/// The top-level modules each `src/` module names as `crate::X`, with the file that does.
fn uses() -> BTreeMap<String, Vec<(String, String)>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = rel.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && name != module {
                out.entry(module.clone()).or_default().push((name, rel.display().to_string()));
            }
        }
    }
    out
}

#[test]
fn modules_use_only_lower_layers() {
    let layer_of = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
    let mut wrong = Vec::new();
    let all = uses();
    for (module, used) in &all {
        let Some(mine) = layer_of(module) else {
            wrong.push(format!("src/{module}: not in any layer; add it to LAYERS (and README's map)"));
            continue;
        };
        for (name, file) in used {
            match layer_of(name) {
                Some(theirs) if theirs < mine => {}
                Some(_) => wrong.push(format!("src/{file} ({module}) uses crate::{name}, which is not below it")),
                None => {} // a macro or a re-export at the root (`crate::simd_fn`)
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every layer's modules exist, so the list does not rot.
    for m in LAYERS.iter().flat_map(|l| l.iter()) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        assert!(src.join(format!("{m}.rs")).is_file() || src.join(m).is_dir(), "LAYERS names {m}, which is gone");
    }
}
