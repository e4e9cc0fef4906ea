//! The committed fuzz corpus, `fuzz/corpus/<target>.gz` (one packed file per target, see
//! `vae::fuzzing::pack`), and the working folders cargo-fuzz reads and writes,
//! `fuzz/corpus/<target>/` (not committed). From the repository root:
//!
//! ```text
//! cargo run --release --example fuzz_corpus -- unpack   # .gz (+ seeds) -> folders, to fuzz
//! cargo run --release --example fuzz_corpus -- pack     # folders -> .gz, after `cargo fuzz cmin`
//! ```
//!
//! See RELIABILITY.md.

use std::path::Path;
use vae::fuzzing::{TARGETS, pack, seeds, unpack};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("fuzz/corpus");
    let command = std::env::args().nth(1).unwrap_or_default();
    for (target, _) in TARGETS {
        let (dir, packed) = (root.join(target), root.join(format!("{target}.gz")));
        match command.as_str() {
            "unpack" => {
                std::fs::create_dir_all(&dir)?;
                let mut inputs = seeds(target);
                if packed.is_file() {
                    inputs.extend(unpack(&std::fs::read(&packed)?)?);
                }
                for (i, input) in inputs.iter().enumerate() {
                    std::fs::write(dir.join(format!("input-{i:05}")), input)?;
                }
                println!("{target}: {} inputs in {}", inputs.len(), dir.display());
            }
            "pack" => {
                let mut files: Vec<_> =
                    std::fs::read_dir(&dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
                files.sort();
                let inputs: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
                let bytes = pack(&inputs);
                std::fs::write(&packed, &bytes)?;
                println!("{target}: {} inputs, {} bytes in {}", inputs.len(), bytes.len(), packed.display());
            }
            _ => return Err("usage: fuzz_corpus unpack|pack".into()),
        }
    }
    Ok(())
}
