use std::time::Instant;
use vae::core::{Pool, Shape};
use vae::model::{Model, ModelConfig, ModelKind};
use vae::nn::LayerKind;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let shape = if args.len() > 1 { Shape::new(3, 64, 64) } else { Shape::mnist() };
    let latent = if args.len() > 1 { 128 } else { 20 };
    let b = 128;
    let config = ModelConfig::conv(ModelKind::Vae, shape, latent);
    let model = Model::init(config.clone(), 1);
    let pool = Pool::new(2);
    let lay = &model.network.layout;
    let mut grads = vec![0.0; model.params.len()];
    let layers: Vec<_> = lay.encoder.iter().chain([&lay.head]).chain(&lay.decoder).chain([&lay.output]).collect();
    let mut total = 0.0;
    for (i, l) in layers.iter().enumerate() {
        let x = vec![0.5f32; l.inputs() * b];
        let mut y = vec![0.0f32; l.outputs() * b];
        let mut dx = vec![0.0f32; l.inputs() * b];
        let mut col = vec![0.0f32; l.scratch_len(2)];
        let reps = 20;
        let t = Instant::now();
        for _ in 0..reps {
            l.forward(&pool, &model.params, &x, &mut y, &mut col, b, None);
        }
        let f = t.elapsed().as_secs_f64() / reps as f64 * 1e3;
        let t = Instant::now();
        for _ in 0..reps {
            l.backward(
                &pool,
                &model.params,
                &mut grads,
                &x,
                &y,
                if i > 0 { Some((&mut dx, l.inputs())) } else { None },
                None,
                &mut col,
                b,
            );
        }
        let bw = t.elapsed().as_secs_f64() / reps as f64 * 1e3;
        let macs = l.macs() * b;
        let kind = match &l.kind {
            LayerKind::Linear { .. } => "lin",
            LayerKind::Conv2d { .. } => "conv",
            _ => "convT",
        };
        println!(
            "{:14} {kind:5} fwd {f:7.3} ms ({:6.1} GF/s)  bwd {bw:7.3} ms ({:6.1} GF/s)",
            l.name,
            2.0 * macs as f64 / f / 1e6,
            (if i > 0 { 4.0 } else { 2.0 }) * macs as f64 / bw / 1e6
        );
        total += f + bw;
    }
    println!("total {total:.3} ms per step -> {:.2} s per 468 steps", total * 468.0 / 1e3);
}
