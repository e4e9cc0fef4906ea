//! Profiling aid: the implicit weight gradient of MNIST's second convolution, in a loop.
use vae::core::Pool;
use vae::core::conv::{columns_product_t, scratch_len};
use vae::core::im2col::ConvGeometry;
fn main() {
    let pool = Pool::new(0);
    let (b, m) = (128, 64);
    let g = ConvGeometry { channels: 32, height: 14, width: 14, kernel: 4, stride: 2, padding: 1 };
    let (k, n) = (g.col_rows(), g.out_plane() * b);
    let (x, e) = (vec![0.5f32; g.in_size() * b], vec![0.1f32; m * n]);
    let (mut d, mut s) = (vec![0.0f32; m * k], vec![0.0f32; scratch_len(pool.threads())]);
    let t = std::time::Instant::now();
    for _ in 0..2000 {
        columns_product_t(&pool, &g, &e, m, &x, &mut d, &mut s, b);
    }
    println!("{:.3} ms per call", t.elapsed().as_secs_f64() / 2000.0 * 1e3);
}
