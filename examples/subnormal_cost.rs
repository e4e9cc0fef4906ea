//! What a subnormal costs on this CPU: Adam's update over the tutorial VAE's 652,824
//! parameters, with moments that are ordinary numbers and with moments in the subnormal
//! range, each with and without [`vae::core::FlushDenormals`].
//!
//! `cargo run --release --example subnormal_cost`

use std::time::Instant;

fn pass(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let (b1, b2, eps, lr) = (0.9f32, 0.999f32, 1e-8f32, 1e-3f32);
    for i in 0..p.len() {
        let mi = m[i] + (1.0 - b1) * (g[i] - m[i]);
        let vi = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * mi / (vi.sqrt() + eps);
    }
}

fn time(flush: bool, moment: f32) -> f64 {
    let n = 652_824;
    let (mut p, g) = (vec![0.01f32; n], vec![0.0f32; n]);
    let mut best = f64::INFINITY;
    for _ in 0..20 {
        // Fresh moments each pass, so they stay at `moment`'s magnitude.
        let (mut m, mut v) = (vec![moment; n], vec![moment; n]);
        let _guard = flush.then(vae::core::FlushDenormals::new);
        let t = Instant::now();
        pass(&mut p, &g, &mut m, &mut v);
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box((&p, &m, &v));
    }
    best * 1e3
}

fn main() {
    println!("Adam over 652,824 parameters, best of 20 passes, one thread:");
    for (name, moment) in [("normal moments (1e-3)", 1e-3f32), ("subnormal moments (1e-39)", 1e-39)] {
        println!("  {name:28} {:7.3} ms plain   {:7.3} ms with FTZ/DAZ", time(false, moment), time(true, moment));
    }
}
