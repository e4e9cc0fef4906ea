use std::time::Instant;
use vae::core::conv::*;
use vae::core::im2col::{ConvGeometry, im2col};
use vae::core::{Mat, Pool, matmul};
fn t(f: &mut dyn FnMut()) -> f64 {
    f();
    let s = Instant::now();
    for _ in 0..30 {
        f();
    }
    s.elapsed().as_secs_f64() / 30.0 * 1e3
}
fn main() {
    let pool = Pool::new(2);
    let b = 128;
    for (c, side, m) in [(1usize, 28usize, 32usize), (32, 14, 64)] {
        let g = ConvGeometry { channels: c, height: side, width: side, kernel: 4, stride: 2, padding: 1 };
        let (k, n) = (g.col_rows(), g.out_plane() * b);
        let x = vec![0.5f32; g.in_size() * b];
        let a = vec![0.1f32; m * k];
        let e = vec![0.1f32; m * n];
        let mut y = vec![0.0f32; m * n];
        let mut d = vec![0.0f32; m * k];
        let mut dx = vec![0.0f32; g.in_size() * b];
        let mut col = vec![0.0f32; k * n];
        let mut s = vec![0.0f32; scratch_len(2)];
        println!("C={c} side={side} M={m}: K={k} N={n}");
        println!("  im2col full        {:.3} ms", t(&mut || im2col(&pool, &g, &x, &mut col, b)));
        println!(
            "  gemm a·col         {:.3} ms",
            t(&mut || matmul(&pool, &mut y, Mat::new(&a, m, k), Mat::new(&col, k, n), false))
        );
        println!(
            "  columns_product    {:.3} ms",
            t(&mut || columns_product(&pool, &g, Mat::new(&a, m, k), &x, &mut y, &mut s, b))
        );
        println!(
            "  gemm e·colT        {:.3} ms",
            t(&mut || matmul(&pool, &mut d, Mat::new(&e, m, n), Mat::new(&col, k, n).t(), false))
        );
        println!(
            "  columns_product_t  {:.3} ms",
            t(&mut || columns_product_t(&pool, &g, &e, m, &x, &mut d, &mut s, b))
        );
        println!(
            "  gemm aT·e          {:.3} ms",
            t(&mut || matmul(&pool, &mut col, Mat::new(&a, m, k).t(), Mat::new(&e, m, n), false))
        );
        println!(
            "  col2im_product     {:.3} ms",
            t(&mut || col2im_product(&pool, &g, Mat::new(&a, m, k), &e, &mut dx, &mut s, b))
        );
    }
}
