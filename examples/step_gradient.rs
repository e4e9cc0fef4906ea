//! One training step's gradient at a run's trained weights: the first batch of epoch 1 as
//! `vae train` draws it for the run's seed (shuffle, noise; mixture or Gaussian likelihood on
//! folder pictures), the loss summed over the batch (−ELBO, β = 1), and ∂loss/∂weight written
//! as safetensors under the weights' own names. `bench/step_gradient.py` computes the same
//! in PyTorch and compares each tensor (issue 23: the two trainings are one computation at a
//! trained model's parameters, not only near the initial ones).
//!
//! `cargo run --release --example step_gradient -- RUN_DIR OUT.safetensors`

use vae::checkpoint::{RunDir, model_bytes};
use vae::core::{Pool, Purpose, Rng};
use vae::model::{Model, Workspace};
use vae::train::fill_inputs;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(run), Some(out)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: step_gradient RUN_DIR OUT.safetensors");
    };
    let dir = RunDir::new(run);
    let (config, model) = dir.load_model()?;
    let data = vae::rundata::load(&dir, &config, None, true)?;
    let (seed, b, epoch) = (config.train.seed, config.train.batch_size, 1);
    let pool = Pool::new(config.train.threads);
    let mut order: Vec<u32> = (0..data.train.len() as u32).collect();
    Rng::stream(seed, Purpose::Shuffle, epoch).shuffle(&mut order);
    let idx = &order[..b];
    let c = model.config().clone();
    let dequantize = c.dequantize.then(|| Rng::stream(seed, Purpose::Dequantize, epoch).next_u64());
    let mut ws = Workspace::with_samples(&c, b, 1, pool.threads());
    fill_inputs(&pool, &data.train, idx, &c, &mut ws, None, dequantize);
    Rng::fill_example_normals(&pool, Rng::example_key(seed, Purpose::TrainNoise, epoch), idx, 1, &mut ws.eps);
    let loss = model.network.forward(&pool, &model.params, &mut ws);
    let mut grads = vec![0.0f32; model.params.len()];
    model.network.backward(&pool, &model.params, &mut grads, &mut ws, 1.0);
    println!("loss {:.6} (reconstruction {:.6}, kl {:.6})", loss.bce + loss.kl, loss.bce, loss.kl);
    let g = Model { network: model.network.clone(), params: grads };
    std::fs::write(out, model_bytes(&g, 0))?;
    Ok(())
}
