//! Where a training step's time goes: input gather, forward, backward and Adam, for the
//! MNIST conv VAE, the 64x64 colour one, the tutorial's MLP (`mlp`, an epoch's 469 steps),
//! or Burda et al.'s 784-200-200-50 tanh MLP at batch 20 (with K > 1: the K-sample IWAE
//! step). `cargo run --release --example step_times [colour | mlp | burda [K]]`;
//! `PRECISION=bf16` runs the products as `--precision bf16` does.
use std::time::Instant;
use vae::bench::random_dataset;
use vae::core::{AdamConfig, AdamState, Pool, Rng, Shape, adam_step};
use vae::model::{Model, ModelConfig, ModelKind, Workspace};
use vae::train::fill_inputs;

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let k: usize = std::env::args().nth(2).and_then(|v| v.parse().ok()).unwrap_or(1);
    let (config, b, steps) = match arg.as_str() {
        "colour" => (ModelConfig::conv(ModelKind::Vae, Shape::new(3, 64, 64), 128), 128, 30),
        "burda" => {
            let c = ModelConfig {
                hidden_dim: 200,
                hidden_layers: 2,
                latent_dim: 50,
                ..ModelConfig::tutorial(ModelKind::Vae)
            };
            (ModelConfig { activation: vae::model::config::Activation::Tanh, ..c }, 20, 3000)
        }
        "mlp" => (ModelConfig::tutorial(ModelKind::Vae), 128, 469),
        _ => (ModelConfig::conv(ModelKind::Vae, Shape::mnist(), 20), 128, 30),
    };
    let data = random_dataset(config.shape(), steps, b, 10);
    let model = Model::init(config, 1);
    let mut params = model.params.clone();
    let pool = Pool::new(0);
    let precision = match std::env::var("PRECISION").as_deref() {
        Ok("bf16") => vae::core::bf16::Precision::Bf16,
        _ => vae::core::bf16::Precision::F32,
    };
    let _scope = precision.scope();
    let mut ws = Workspace::with_samples(model.config(), b, k, pool.threads());
    let mut grads = vec![0.0; params.len()];
    let mut adam = AdamState::new(params.len());
    let mut t = [0.0f64; 4];
    for step in 0..steps {
        let idx: Vec<u32> = (step * b..(step + 1) * b).map(|i| i as u32).collect();
        let s0 = Instant::now();
        fill_inputs(&pool, &data.train, &idx, model.config(), &mut ws, None, None);
        Rng::fill_example_normals(&pool, step as u64, &idx, k, &mut ws.eps);
        let s1 = Instant::now();
        if k > 1 {
            model.network.forward_iwae(&pool, &params, &mut ws);
        } else {
            model.network.forward(&pool, &params, &mut ws);
        }
        let s2 = Instant::now();
        if k > 1 {
            model.network.backward_iwae(&pool, &params, &mut grads, &mut ws, 1.0);
        } else {
            model.network.backward(&pool, &params, &mut grads, &mut ws, 1.0);
        }
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
        "per step (ms): inputs {:.3}  forward {:.3}  backward {:.3}  adam {:.3}  total {:.3}",
        t[0],
        t[1],
        t[2],
        t[3],
        t.iter().sum::<f64>()
    );
}
