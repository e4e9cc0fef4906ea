//! The library's encode and decode of a run's 10,000 test images, timed in Rust: the figure
//! the Python package's calls are compared with (bench/python_overhead.py).
//!
//!     cargo run --release --example encode_decode -- RUN_DIR [THREADS]

use std::time::Instant;
use vae::checkpoint::RunDir;
use vae::core::{Pool, Purpose, Rng};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = RunDir::new(args.get(1).expect("usage: encode_decode RUN_DIR [THREADS]"));
    let threads = args.get(2).map_or(Ok(0), |t| t.parse())?;
    let (config, model) = dir.load_model()?;
    let data = vae::rundata::load(&dir, &config, None, true)?;
    let images: Vec<f32> = data.test.images.iter().map(|&v| v as f32 / 255.0).collect();
    let pool = Pool::new(threads);
    let best = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let mu = model.encode(&pool, &images, None)?.mu;
    let n = data.test.len();
    let encode = best(&mut || drop(model.encode(&pool, &images, None)));
    let decode = best(&mut || drop(model.decode(&pool, &mu, None)));
    let sample = best(&mut || drop(model.sample(&pool, n, None, &mut Rng::stream(1, Purpose::User, 0))));
    println!("encode {n}: best of 5 {:.1} ms", encode * 1e3);
    println!("decode {n}: best of 5 {:.1} ms", decode * 1e3);
    println!("sample {n}: best of 5 {:.1} ms", sample * 1e3);
    Ok(())
}
