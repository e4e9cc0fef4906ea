//! The bf16 peak of this CPU (`vdpbf16ps` on registers, no memory traffic; with
//! `VAE_SIMD=amx` on an AMX CPU, `tdpbf16ps` on tiles): the ceiling that `vae bench
//! --precision bf16` reports its achieved GFLOP/s against. One thread, then all.
//! `cargo run --release --example bf16_peak`, `VAE_SIMD=amx cargo run --release --example
//! bf16_peak`.

use vae::core::Pool;
use vae::core::bf16::peak_gflops;

fn main() {
    let cpu = vae::core::cpu::cpu();
    println!("{}", cpu.summary());
    let path = vae::core::bf16::Precision::Bf16.path().map_or_else(|e| e, String::from);
    println!("path: {path}");
    for threads in [1, vae::core::pool::available_threads()] {
        let pool = Pool::new(threads);
        let best = (0..5).filter_map(|_| peak_gflops(&pool, 0.2)).fold(0.0f64, f64::max);
        match best {
            0.0 => println!("no AVX512_BF16 here: nothing to measure"),
            peak => println!("{threads} thread(s): {peak:.0} GFLOP/s bf16 (best of 5 probes of 0.2 s)"),
        }
    }
}
