//! Times the element-wise passes on a 64x64 colour model's largest feature map
//! (32 channels x 32 x 32 x batch 128). `cargo run --release --example elementwise`.
use std::time::Instant;
use vae::core::Pool;
use vae::core::activations::{Activation, activation_backward, bias_activation};
fn main() {
    let pool = Pool::new(0);
    let (rows, cols) = (32usize, 32 * 32 * 128);
    let mut h = vec![0.3f32; rows * cols];
    let mut dh = vec![0.2f32; rows * cols];
    let bias = vec![0.1f32; rows];
    let mut db = vec![0.0f32; rows];
    let best = |f: &mut dyn FnMut()| {
        (0..10)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min)
    };
    let mb = (rows * cols * 4) as f64 / 1e6;
    let f = best(&mut || bias_activation(&pool, Activation::Relu, &mut h, &bias, cols));
    println!("bias + relu        {f:.3} ms ({:.1} GB/s read+write)", 2.0 * mb / f);
    let b = best(&mut || activation_backward(&pool, Activation::Relu, &mut dh, &h, &mut db, cols));
    println!("relu backward      {b:.3} ms ({:.1} GB/s)", 3.0 * mb / b);
}
