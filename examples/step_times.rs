//! Where a training step's time goes: input gather, forward, backward and Adam, for the
//! MNIST conv VAE or (with any argument) the 64x64 colour one.
//! `cargo run --release --example step_times [colour]`.
use std::time::Instant;
use vae::bench::random_dataset;
use vae::core::{AdamConfig, AdamState, Pool, Rng, Shape, adam_step};
use vae::model::{Model, ModelConfig, ModelKind, Workspace};
use vae::train::fill_inputs;

fn main() {
    let colour = std::env::args().nth(1).is_some();
    let (shape, latent) = if colour { (Shape::new(3, 64, 64), 128) } else { (Shape::mnist(), 20) };
    let b = 128;
    let data = random_dataset(shape, 30, b, 10);
    let model = Model::init(ModelConfig::conv(ModelKind::Vae, shape, latent), 1);
    let mut params = model.params.clone();
    let pool = Pool::new(0);
    let mut ws = Workspace::new(model.config(), b, pool.threads());
    let mut grads = vec![0.0; params.len()];
    let mut adam = AdamState::new(params.len());
    let mut rng = Rng::new(1);
    let mut t = [0.0f64; 4];
    let steps = 30;
    for step in 0..steps {
        let idx: Vec<u32> = (step * b..(step + 1) * b).map(|i| i as u32).collect();
        let s0 = Instant::now();
        fill_inputs(&pool, &data.train, &idx, model.config(), &mut ws, None);
        rng.fill_normal(&mut ws.eps);
        let s1 = Instant::now();
        model.network.forward(&pool, &params, &mut ws);
        let s2 = Instant::now();
        model.network.backward(&pool, &params, &mut grads, &mut ws, 1.0);
        let s3 = Instant::now();
        adam_step(&pool, &AdamConfig::default(), &mut params, &grads, &mut adam);
        let s4 = Instant::now();
        if step >= 5 {
            for (acc, d) in t.iter_mut().zip([s1 - s0, s2 - s1, s3 - s2, s4 - s3]) {
                *acc += d.as_secs_f64() * 1e3 / (steps - 5) as f64;
            }
        }
    }
    println!(
        "per step (ms): inputs {:.2}  forward {:.2}  backward {:.2}  adam {:.2}  total {:.2}",
        t[0],
        t[1],
        t[2],
        t[3],
        t.iter().sum::<f64>()
    );
}
