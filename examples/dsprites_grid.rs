//! Draws `docs/dsprites.png`: generated dSprites, one row per (shape, scale), orientations
//! across, each at a different position. `cargo run --release --example dsprites_grid`.

use vae::data::dsprites::{self, LEVELS};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let p = dsprites::SIDE * dsprites::SIDE;
    let columns = 10;
    let mut pixels = Vec::new();
    for shape in 0..LEVELS[0] {
        for scale in [0, 5] {
            for c in 0..columns {
                let levels = [shape, scale, c * 4, (c * 7) % 32, (c * 13 + shape * 5) % 32];
                let mut img = vec![0u8; p];
                dsprites::render(levels, &mut img);
                pixels.extend(img.iter().map(|&v| v as f32 / 255.0));
            }
        }
    }
    let grid = vae::images::grid(&pixels, dsprites::shape(), columns, 2);
    grid.save(std::path::Path::new("docs/dsprites.png"))?;
    println!("docs/dsprites.png: rows square, ellipse, heart at scales 0.5 and 1; orientations 0 to 2π·36/39 across");
    Ok(())
}
