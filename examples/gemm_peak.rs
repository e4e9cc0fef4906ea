use std::time::Instant;
use vae::core::{Mat, Pool, matmul};
fn main() {
    let pool = Pool::new(2);
    for (m, k, n) in [
        (1024usize, 1024usize, 1024usize),
        (64, 512, 6272),
        (512, 64, 6272),
        (64, 6272, 512),
        (400, 784, 128),
        (784, 400, 128),
        (32, 16, 25088),
        (16, 32, 25088),
        (32, 25088, 16),
    ] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let reps = (2e9 / (m * n * k) as f64).max(3.0) as usize;
        matmul(&pool, &mut c, Mat::new(&a, m, k), Mat::new(&b, k, n), false);
        let t = Instant::now();
        for _ in 0..reps {
            matmul(&pool, &mut c, Mat::new(&a, m, k), Mat::new(&b, k, n), false);
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!("{m:5} x {k:5} x {n:6}: {:.3} ms, {:.1} GFLOP/s", s * 1e3, 2.0 * (m * n * k) as f64 / s / 1e9);
    }
}
