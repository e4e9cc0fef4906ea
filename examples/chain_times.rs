//! Each layer's forward and backward timed inside a chain (inputs fresh from the layer
//! before, as in a training step), for the 64x64 colour conv VAE's encoder and decoder, or
//! the MNIST one's (`mnist`). `cargo run --release --example chain_times [mnist]`;
//! `PRECISION=bf16` runs the products as `--precision bf16` does.
use std::time::Instant;
use vae::core::activations::Activation;
use vae::core::{Buffer, Pool, Rng, Shape};
use vae::model::{Model, ModelConfig, ModelKind};

fn main() {
    let b = 128;
    let config = match std::env::args().nth(1).as_deref() {
        Some("mnist") => ModelConfig::conv(ModelKind::Vae, Shape::mnist(), 20),
        _ => ModelConfig::conv(ModelKind::Vae, Shape::new(3, 64, 64), 128),
    };
    let model = Model::init(config, 1);
    let pool = Pool::new(0);
    let precision = match std::env::var("PRECISION").as_deref() {
        Ok("bf16") => vae::core::bf16::Precision::Bf16,
        _ => vae::core::bf16::Precision::F32,
    };
    let _scope = precision.scope();
    let lay = &model.network.layout;
    let layers: Vec<_> = lay.encoder.iter().chain(lay.decoder.iter().skip(1)).chain([&lay.output]).collect();
    let mut x = vec![0.0f32; layers[0].inputs() * b];
    Rng::new(1).fill_normal(&mut x);
    let mut col = vec![0.0f32; layers[0].scratch_len(2).max(1)];
    let mut grads = vec![0.0; model.params.len()];
    let (mut fwd, mut bwd) = (vec![0.0; layers.len()], vec![0.0; layers.len()]);
    // Buffers allocated (and touched) once, on cache lines, as a workspace's are: outs[i] is
    // layer i's output, dins[i] the gradient of its input.
    let filled = |len: usize| {
        let mut v = Buffer::zeros(len);
        v.fill(0.1);
        v
    };
    let mut outs: Vec<Buffer> = layers.iter().map(|l| filled(l.outputs() * b)).collect();
    let mut dins: Vec<Buffer> = layers.iter().map(|l| filled(l.inputs() * b)).collect();
    let reps = 12;
    for rep in 0..reps {
        for i in 0..layers.len() {
            let (before, rest) = outs.split_at_mut(i);
            let input: &[f32] = if i == 0 { &x } else { &before[i - 1] };
            let t = Instant::now();
            layers[i].forward(&pool, &model.params, input, &mut rest[0], &mut col, b, Some(Activation::Relu));
            if rep >= 2 {
                fwd[i] += t.elapsed().as_secs_f64() * 1e3 / (reps - 2) as f64;
            }
        }
        for i in (0..layers.len()).rev() {
            let input: &[f32] = if i == 0 { &x } else { &outs[i - 1] };
            let (lo, hi) = dins.split_at_mut(i + 1);
            let dy: &[f32] = if i + 1 < layers.len() { &hi[0] } else { &outs[i] };
            let dx = (i > 0).then_some((&mut lo[i][..], layers[i].inputs()));
            let t = Instant::now();
            layers[i].backward(&pool, &model.params, &mut grads, input, dy, dx, None, &mut col, b);
            if rep >= 2 {
                bwd[i] += t.elapsed().as_secs_f64() * 1e3 / (reps - 2) as f64;
            }
        }
    }
    for (i, l) in layers.iter().enumerate() {
        println!("{:14} fwd {:6.2} ms  bwd {:6.2} ms", l.name, fwd[i], bwd[i]);
    }
    println!("total fwd {:.1} bwd {:.1}", fwd.iter().sum::<f64>(), bwd.iter().sum::<f64>());
}
