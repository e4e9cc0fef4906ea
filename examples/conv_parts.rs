//! Times the three convolution products (`core::conv`) on the shapes of the reference models,
//! for both implementations: the portable blocked one and, on AVX-512 CPUs, the implicit-GEMM
//! kernels, and in bf16 the blocked products on gathered pairs and, with AVX512_BF16, the
//! paired ones. `cargo run --release --example conv_parts [BATCH [THREADS]]` (default 128, all
//! cores). Best of 7 rounds of 8 calls, in ms.

#[path = "common/timing.rs"]
mod timing;
use timing::time;
use vae::core::conv::{col2im_product, columns_product, columns_product_t, force_portable, scratch_len};
use vae::core::im2col::ConvGeometry;
use vae::core::{Mat, Pool};

fn main() {
    let b: usize = std::env::args().nth(1).map_or(128, |s| s.parse().expect("a batch size"));
    let pool = Pool::new(std::env::args().nth(2).map_or(0, |s| s.parse().expect("a thread count")));
    // (input channels, side, output channels, kernel, stride): MNIST's two convolutions, a
    // 64x64 colour model's first, second, third and fourth; a 32x32 resnet's block
    // convolutions (3x3, stride 1) at each resolution.
    let shapes = [
        (1usize, 28usize, 32usize, 4usize, 2usize),
        (32, 14, 64, 4, 2),
        (3, 64, 32, 4, 2),
        (32, 32, 64, 4, 2),
        (64, 16, 128, 4, 2),
        (128, 8, 256, 4, 2),
        (32, 16, 32, 3, 1),
        (64, 8, 64, 3, 1),
        (128, 4, 128, 3, 1),
    ];
    for (c, side, m, kernel, stride) in shapes {
        let g = ConvGeometry::new(c, side, side, kernel, stride, 1).unwrap();
        let (k, n) = (g.col_rows(), g.out_plane() * b);
        let (x, a, e) = (vec![0.5f32; g.in_size() * b], vec![0.1f32; m * k], vec![0.1f32; m * n]);
        let (mut y, mut d, mut dx) = (vec![0.0f32; m * n], vec![0.0f32; m * k], vec![0.0f32; g.in_size() * b]);
        let mut s = vec![0.0f32; scratch_len(pool.threads())];
        let gflops = |ms: f64| 2.0 * (m * k * n) as f64 / ms / 1e6;
        println!("C={c} side={side} M={m} kernel {kernel} stride {stride}: K={k} N={n}");
        let bf16 = vae::core::bf16::hardware();
        let paths = [
            ("blocked f32  ", true, false),
            ("implicit f32 ", false, false),
            ("blocked bf16 ", true, true),
            ("paired bf16  ", false, true),
        ];
        for (name, portable, half) in paths.into_iter().filter(|p| bf16 || !p.2) {
            force_portable(portable);
            vae::core::bf16::set_enabled(half);
            let f = time(&mut || columns_product(&pool, &g, Mat::new(&a, m, k), &x, &mut y, &mut s, b, None, None));
            let w = time(&mut || columns_product_t(&pool, &g, &e, m, &x, &mut d, &mut s, b));
            let t = time(&mut || col2im_product(&pool, &g, Mat::new(&a, m, k), &e, &mut dx, &mut s, b, None, None));
            println!(
                "  {name}  forward {f:6.3} ({:4.0} GF/s)  weight grad {w:6.3} ({:4.0})  col2im {t:6.3} ({:4.0})",
                gflops(f),
                gflops(w),
                gflops(t)
            );
        }
    }
}
