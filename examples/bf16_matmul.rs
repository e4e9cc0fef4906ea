//! Times the bf16 product (`core::bf16`, `vdpbf16ps` where the CPU has AVX512_BF16) against
//! the f32 one (`core::matmul`, the `gemm` crate) on the tutorial MLP's products at batch 128
//! and on a square one, two threads. `cargo run --release --example bf16_matmul`. Best of 7
//! rounds of 8 calls, in ms; GFLOP/s counts 2·M·N·K, packing included for bf16 (and, in the
//! last column, the left operand packed beforehand, as a weight would be once per update).

#[path = "common/timing.rs"]
mod timing;
use timing::time;
use vae::core::bf16::{PackedA, hardware, matmul_bf16, matmul_packed};
use vae::core::{Mat, Pool, matmul};

fn main() {
    let pool = Pool::new(2);
    println!("bf16 path: {}", if hardware() { "vdpbf16ps" } else { "portable (no AVX512_BF16)" });
    // (name, M, K, N): fc1 forward [400, 784]·[784, 128], its weight gradient
    // [400, 128]·[128, 784], fc3's input gradient [400, 784]·[784, 128], and 1024³.
    for (name, m, k, n) in
        [("fc1 forward", 400, 784, 128), ("fc1 weight grad", 400, 128, 784), ("square", 1024, 1024, 1024)]
    {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0.0f32; m * n];
        let gf = |ms: f64| 2.0 * (m * n * k) as f64 / ms / 1e6;
        let f32_ms = time(&mut || matmul(&pool, &mut c, Mat::new(&a, m, k), Mat::new(&b, k, n), false));
        let bf_ms = time(&mut || matmul_bf16(&pool, &mut c, Mat::new(&a, m, k), Mat::new(&b, k, n), false));
        let packed = PackedA::new(&pool, Mat::new(&a, m, k));
        let pk_ms = time(&mut || matmul_packed(&pool, &mut c, &packed, Mat::new(&b, k, n), false));
        println!(
            "{name:16} [{m}, {k}]x[{k}, {n}]  f32 {f32_ms:6.3} ms ({:4.0} GF/s)  bf16 {bf_ms:6.3} ms ({:4.0})  \
             a pre-packed {pk_ms:6.3} ms ({:4.0})",
            gf(f32_ms),
            gf(bf_ms),
            gf(pk_ms)
        );
    }
    // Packing a weight alone: [400, 784] row-major (the forward's) and its transpose (the
    // input gradient's).
    let w: Vec<f32> = (0..400 * 784).map(|i| (i % 7) as f32 * 0.1).collect();
    let fwd = time(&mut || drop(PackedA::new(&pool, Mat::new(&w, 400, 784))));
    let back = time(&mut || drop(PackedA::new(&pool, Mat::new(&w, 784, 400).t())));
    println!("packing [400, 784]: row-major {fwd:.3} ms, transposed view {back:.3} ms");
    // Packing a right operand (a one-row left operand makes the product negligible): an
    // activation [784, 128] as the forward reads it, and transposed as the weight gradient does.
    let one = PackedA::new(&pool, Mat::new(&w[..784], 1, 784));
    let one_b = PackedA::new(&pool, Mat::new(&w[..128], 1, 128));
    let mut c = vec![0.0f32; 784];
    let fwd = time(&mut || matmul_packed(&pool, &mut c, &one, Mat::new(&w[..784 * 128], 784, 128), false));
    let back = time(&mut || matmul_packed(&pool, &mut c, &one_b, Mat::new(&w[..784 * 128], 784, 128).t(), false));
    println!("packing [784, 128] on the right: row-major {fwd:.3} ms, transposed view {back:.3} ms");
}
