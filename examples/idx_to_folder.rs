//! Writes an IDX dataset out as a folder of PNG files, `OUT/{train,test}/<class>/<index>.png`,
//! the layout `vae train --data-dir` reads as a labelled image folder with its own split.
//! Used to check that a folder of images trains to the same figures as the IDX files.
//!
//! `cargo run --release --example idx_to_folder -- fashion-mnist OUT [LIMIT]`
//! (`mnist`, `fashion-mnist`, or an IDX directory; LIMIT images per split).

use std::path::PathBuf;
use vae::data::{Dataset, Source};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(which), Some(out)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: idx_to_folder mnist|fashion-mnist|IDX_DIR OUT [LIMIT]");
    };
    let source = match which.as_str() {
        "mnist" => Source::Mnist,
        "fashion-mnist" => Source::FashionMnist,
        dir => Source::Dir(PathBuf::from(dir)),
    };
    let limit: usize = args.get(2).map_or(Ok(usize::MAX), |s| s.parse())?;
    let data = Dataset::load(&source)?;
    for (name, split) in [("train", &data.train), ("test", &data.test)] {
        for i in 0..split.len().min(limit) {
            // Class folder names: the dataset's class names, made file-name safe.
            let class = data.classes[split.labels[i] as usize].replace('/', "-");
            let dir = PathBuf::from(out).join(name).join(format!("{}-{class}", split.labels[i]));
            std::fs::create_dir_all(&dir)?;
            let (h, w) = (split.shape.height as u32, split.shape.width as u32);
            let img = image::GrayImage::from_raw(w, h, split.image(i).to_vec()).expect("sizes match");
            img.save(dir.join(format!("{i:05}.png")))?;
        }
    }
    Ok(())
}
