//! Writes each fuzz target's seed inputs to `fuzz/corpus/<target>/seed-<i>` (from the repo
//! root: `cargo run --release --example fuzz_seeds`). See RELIABILITY.md.

fn main() -> std::io::Result<()> {
    for (target, _) in vae::fuzzing::TARGETS {
        let dir = std::path::Path::new("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in vae::fuzzing::seeds(target).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed)?;
        }
    }
    Ok(())
}
