//! Writes a run's data as NumPy arrays, exactly the images `vae` trains and evaluates on
//! (the folder decoded and split as the run's config says): `OUT/train.npy` and
//! `OUT/test.npy`, `uint8` `[N, C, H, W]`, and `OUT/train_labels.npy`, `OUT/test_labels.npy`.
//! Used to train the PyTorch reference on the same pictures (`bench/torch_colour.py`).
//!
//! `cargo run --release --example run_data_npy -- RUN_DIR OUT`

use std::path::PathBuf;
use vae::checkpoint::RunDir;
use vae::export::{npy_i64, npy_u8_shaped};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(run), Some(out)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: run_data_npy RUN_DIR OUT");
    };
    let dir = RunDir::new(run);
    let config = dir.load_config()?;
    let data = vae::rundata::load(&dir, &config, None, true)?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    for (name, split) in [("train", &data.train), ("test", &data.test)] {
        let s = split.shape;
        let shape = [split.len(), s.channels, s.height, s.width];
        std::fs::write(out.join(format!("{name}.npy")), npy_u8_shaped(&shape, &split.images))?;
        let labels: Vec<i64> = split.labels.iter().map(|&l| i64::from(l)).collect();
        std::fs::write(out.join(format!("{name}_labels.npy")), npy_i64(&labels))?;
        println!("{name}: {shape:?} -> {}", out.join(format!("{name}.npy")).display());
    }
    Ok(())
}
