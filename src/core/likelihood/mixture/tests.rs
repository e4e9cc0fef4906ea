//! The mixture against an f64 evaluation written from its definition (σ(b) − σ(a) as a plain
//! difference), its probabilities summed over every value, its draws against its
//! probabilities.

use super::*;

/// σ(t) in f64.
fn sigmoid(t: f64) -> f64 {
    1.0 / (1.0 + (-t).exp())
}

/// log p(x) from the definition, in f64: `params` \[params\] of one position, `v` the
/// channels' values 0…255.
fn reference(m: &Mixture, params: &[f64], v: &[u32]) -> f64 {
    let kk = m.components;
    let top = params[..kk].iter().cloned().fold(f64::MIN, f64::max);
    let lse = top + params[..kk].iter().map(|l| (l - top).exp()).sum::<f64>().ln();
    let x: Vec<f64> = v.iter().map(|&v| v as f64 / 255.0).collect();
    let mut terms = Vec::new();
    for k in 0..kk {
        let mut t = params[k] - lse;
        for c in 0..m.channels {
            let coef = |i: usize| params[m.coef(i, k)].tanh();
            let mu = params[m.mean(c, k)]
                + match (m.channels, c) {
                    (3, 1) => coef(0) * x[0],
                    (3, 2) => coef(1) * x[0] + coef(2) * x[1],
                    _ => 0.0,
                };
            let s = params[m.log_scale(c, k)].max(MIN_LOG_SCALE as f64).exp();
            let h = 1.0 / 510.0;
            // P = σ(b) − σ(a), or σ(−a) − σ(−b) on the right of the mean so that the
            // difference of two numbers near 1 never cancels.
            let a = if v[c] == 0 { f64::NEG_INFINITY } else { (x[c] - h - mu) / s };
            let b = if v[c] == 255 { f64::INFINITY } else { (x[c] + h - mu) / s };
            let mass = if a > 0.0 { sigmoid(-a) - sigmoid(-b) } else { sigmoid(b) - sigmoid(a) };
            t += mass.ln();
        }
        terms.push(t);
    }
    let top = terms.iter().cloned().fold(f64::MIN, f64::max);
    top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
}

/// Parameters of one position with component weights, means across [0, 1] and beyond,
/// scales from a tenth of a bin to the whole range, and coefficients of both signs.
fn params(m: &Mixture, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut p = vec![0.0f32; m.params()];
    for k in 0..m.components {
        p[k] = rng.uniform_f32() * 4.0 - 2.0;
        for c in 0..m.channels {
            p[m.mean(c, k)] = rng.uniform_f32() * 1.4 - 0.2;
            p[m.log_scale(c, k)] = rng.uniform_f32() * 6.0 - 6.4;
            if m.channels == 3 {
                p[m.coef(c, k)] = rng.uniform_f32() * 3.0 - 1.5;
            }
        }
    }
    p
}

/// log p of every column of one position, through the forward-only kernel: `p` \[params\]
/// broadcast over the columns, `x` \[channels, cols\] values 0…255.
fn log_probs(m: &Mixture, p: &[f32], x: &[f32], cols: usize) -> Vec<f32> {
    let pool = Pool::new(1);
    let out: Vec<f32> = p.iter().flat_map(|&v| std::iter::repeat_n(v, cols)).collect();
    let bias = vec![0.0f32; m.params()];
    let xs: Vec<f32> = x.iter().map(|v| v / 255.0).collect();
    let mut ll = vec![0.0f32; cols];
    logistic_mixture_log_likelihood(&pool, *m, &out, &bias, &xs, &mut ll, cols);
    ll
}

/// The 256 probabilities of one grey pixel sum to 1 within 1e-5, for one and for five
/// components, and each is the definition's within 1e-5 relative.
#[test]
fn grey_probabilities_sum_to_one() {
    for (components, seed) in [(1, 1), (5, 2), (5, 3), (10, 4)] {
        let m = Mixture { channels: 1, plane: 1, components };
        let p = params(&m, seed);
        let x: Vec<f32> = (0..256).map(|v| v as f32).collect();
        let ll = log_probs(&m, &p, &x, 256);
        let total: f64 = ll.iter().map(|&l| (l as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5, "K = {components}: {total}");
        let pd: Vec<f64> = p.iter().map(|&v| v as f64).collect();
        for v in 0..256u32 {
            let want = reference(&m, &pd, &[v]);
            let got = ll[v as usize] as f64;
            assert!((got - want).abs() < 1e-5 * want.abs().max(1.0), "K {components} v {v}: {got} vs {want}");
        }
    }
}

/// The 256³ probabilities of one RGB pixel, with the channels' linear dependence, sum to 1
/// within 1e-5: the kernel evaluates every (G, B) pair for each R.
#[test]
fn rgb_probabilities_sum_to_one() {
    let m = Mixture { channels: 3, plane: 1, components: 2 };
    let p = params(&m, 7);
    let cols = 256 * 256;
    let mut x = vec![0.0f32; 3 * cols];
    for i in 0..cols {
        (x[cols + i], x[2 * cols + i]) = ((i / 256) as f32, (i % 256) as f32);
    }
    let mut total = 0.0f64;
    for r in 0..256 {
        x[..cols].fill(r as f32);
        total += log_probs(&m, &p, &x, cols).iter().map(|&l| (l as f64).exp()).sum::<f64>();
    }
    assert!((total - 1.0).abs() < 1e-5, "{total}");
}

/// Loss and every parameter's gradient against the f64 definition and its central
/// differences, for grey and RGB pixels at the edge values and in the middle, on columns
/// that are not a multiple of the lanes.
#[test]
fn gradients_match_the_definition() {
    for (channels, components) in [(1, 3), (3, 3)] {
        let m = Mixture { channels, plane: 1, components };
        let cols = 19;
        let pool = Pool::new(1);
        let mut out = vec![0.0f32; m.params() * cols];
        let mut x = vec![0.0f32; channels * cols];
        for col in 0..cols {
            let p = params(&m, 100 + col as u64);
            for (i, &v) in p.iter().enumerate() {
                out[i * cols + col] = v;
            }
            for c in 0..channels {
                x[c * cols + col] = [0.0f32, 255.0, 128.0, 3.0, 250.0, 77.0][(col + 2 * c) % 6] / 255.0;
            }
        }
        let bias: Vec<f32> = (0..m.params()).map(|i| 0.01 * (i % 3) as f32).collect();
        let (mut grad, mut db, mut loss) = (out.clone(), vec![0.0; m.params()], vec![0.0; cols]);
        logistic_mixture_nll(&pool, m, &mut grad, &bias, &x, &mut db, &mut loss, cols);
        for col in 0..cols {
            let p: Vec<f64> = (0..m.params()).map(|i| (out[i * cols + col] + bias[i]) as f64).collect();
            let v: Vec<u32> = (0..channels).map(|c| (x[c * cols + col] * 255.0).round() as u32).collect();
            let want = -reference(&m, &p, &v);
            assert!(
                (loss[col] as f64 - want).abs() < 2e-5 * want.abs().max(1.0),
                "{channels} {col}: {} vs {want}",
                loss[col]
            );
            for i in 0..m.params() {
                let h = 1e-5;
                let (mut up, mut down) = (p.clone(), p.clone());
                up[i] += h;
                down[i] -= h;
                let fd = (reference(&m, &down, &v) - reference(&m, &up, &v)) / (2.0 * h);
                let got = grad[i * cols + col] as f64;
                assert!((got - fd).abs() < 2e-3 * (1.0 + fd.abs()), "C {channels} col {col} param {i}: {got} vs {fd}");
            }
        }
        for i in 0..m.params() {
            let sum: f32 = grad[i * cols..(i + 1) * cols].iter().sum();
            assert!((db[i] - sum).abs() < 1e-4 * sum.abs().max(1.0), "db {i}: {} vs {sum}", db[i]);
        }
    }
}

/// The mean's gradient where a value sits near its component's centre, the case training
/// meets at every pixel a component has learned: ∂(−log P)/∂μ = (σ′(b) − σ′(a))/(s·P)
/// (P = σ(b) − σ(a), ∂a/∂μ = ∂b/∂μ = −1/s) is small there, a difference of near-equal terms.
/// Against f64, for centres 0.03 to 0.3 grey levels from the value and scales from a quarter
/// of a bin to 30 levels: within 1e-6 relative for a grey or red value (its mean is the
/// parameter itself) and 1e-4 for green and blue (their means add tanh(coefficient)·value,
/// whose f32 sum carries an ulp of ~100 grey levels). Taken as 1 − σ(a) − σ(b) in f32 with
/// μ rounded before the edges were subtracted, they missed by 2.3e-5 and 4.7e-4.
#[test]
fn mean_gradient_near_a_component_centre_is_exact() {
    let sigma_prime = |t: f64| sigmoid(t) * (1.0 - sigmoid(t));
    let values = [100.0f32, 150.0, 200.0];
    // The worst relative error of the values without and with dependencies, and where.
    let mut worst = [(0.0f64, String::new()), (0.0f64, String::new())];
    for channels in [1, 3] {
        let m = Mixture { channels, plane: 1, components: 1 };
        for (log_scale, offset) in [(-2.0f32, 0.03f32), (-2.0, -0.3), (-4.0, 0.1), (-6.5, 0.05)] {
            let mut p = vec![0.0f32; m.params()];
            let ths = [0.3f32, -0.4, 0.5];
            let mut shift = [0.0f64; 3];
            for c in 0..channels {
                if channels == 3 {
                    p[m.coef(c, 0)] = ths[c];
                }
                // The part of 255μ_c that the earlier channels add, in f64.
                let th = |i: usize| (ths[i] as f64).tanh();
                shift[c] = match (channels, c) {
                    (3, 1) => th(0) * values[0] as f64,
                    (3, 2) => th(1) * values[0] as f64 + th(2) * values[1] as f64,
                    _ => 0.0,
                };
                p[m.mean(c, 0)] = ((values[c] as f64 + offset as f64 - shift[c]) / 255.0) as f32;
                p[m.log_scale(c, 0)] = log_scale;
            }
            let x: Vec<f32> = values[..channels].iter().map(|v| v / 255.0).collect();
            let (mut g, mut db, mut loss) = (p.clone(), vec![0.0; p.len()], vec![0.0; 1]);
            logistic_mixture_nll(&Pool::new(1), m, &mut g, &vec![0.0; p.len()], &x, &mut db, &mut loss, 1);
            for c in 0..channels {
                let mu = (p[m.mean(c, 0)] as f64 * 255.0 + shift[c]) / 255.0;
                let s = (log_scale as f64).exp();
                let (a, b) = ((values[c] as f64 - 0.5) / 255.0 - mu, (values[c] as f64 + 0.5) / 255.0 - mu);
                let (a, b) = (a / s, b / s);
                let want = (sigma_prime(b) - sigma_prime(a)) / (s * (sigmoid(b) - sigmoid(a)));
                let got = g[m.mean(c, 0)] as f64;
                let rel = ((got - want) / want).abs();
                let at = format!("C {channels} c {c} log s {log_scale} offset {offset}: {got} vs {want} ({rel:.1e})");
                let w = &mut worst[usize::from(c > 0)];
                if rel >= w.0 {
                    *w = (rel, at);
                }
            }
        }
    }
    assert!(worst[0].0 <= 1e-6, "{}", worst[0].1);
    assert!(worst[1].0 <= 1e-4, "{}", worst[1].1);
}

/// Two threads over many positions give the one-thread losses, and the forward-only kernel
/// the same log-likelihood.
#[test]
fn kernels_agree_across_threads() {
    let m = Mixture { channels: 3, plane: 150, components: 4 };
    let cols = 5;
    let mut rng = Rng::new(9);
    let mut out = vec![0.0f32; m.params() * m.plane * cols];
    rng.fill_normal(&mut out);
    let bias = vec![-0.5f32; m.params() * m.plane];
    let x: Vec<f32> = (0..3 * m.plane * cols).map(|i| ((i * 37) % 256) as f32 / 255.0).collect();
    let run = |threads| {
        let pool = Pool::new(threads);
        let (mut g, mut db, mut loss) = (out.clone(), vec![0.0; bias.len()], vec![0.0; threads * cols]);
        logistic_mixture_nll(&pool, m, &mut g, &bias, &x, &mut db, &mut loss, cols);
        let mut ll = vec![0.0; threads * cols];
        logistic_mixture_log_likelihood(&pool, m, &out, &bias, &x, &mut ll, cols);
        (loss[..cols].to_vec(), ll[..cols].to_vec(), g)
    };
    let (one, two) = (run(1), run(2));
    for c in 0..cols {
        assert!((one.0[c] - two.0[c]).abs() < 1e-3 && (one.0[c] + two.1[c]).abs() < 1e-3, "{c}");
    }
    assert_eq!(one.2, two.2, "each position's gradient comes from one thread either way");
}

/// Draws follow the probabilities: 40,000 grey draws of one pixel, each value's count
/// within 5 standard deviations of its expectation.
#[test]
fn draws_follow_the_probabilities_and_the_mean_is_mu() {
    let m = Mixture { channels: 1, plane: 1, components: 3 };
    let p = vec![0.5f32, -0.3, 0.1, 0.2, 0.5, 0.8, -3.0, -4.0, -2.5];
    let x: Vec<f32> = (0..256).map(|v| v as f32).collect();
    let probs: Vec<f64> = log_probs(&m, &p, &x, 256).iter().map(|&l| (l as f64).exp()).collect();
    let n = 40_000;
    let mut out: Vec<f32> = p.iter().flat_map(|&v| std::iter::repeat_n(v, n)).collect();
    logistic_mixture_sample(m, &mut out, &vec![0.0; m.params()], n, &mut Rng::new(3));
    let mut counts = vec![0u32; 256];
    for &v in &out[..n] {
        counts[(v * 255.0).round() as usize] += 1;
    }
    for v in 0..256 {
        let want = probs[v] * n as f64;
        let sd = (want * (1.0 - probs[v])).sqrt().max(1.0);
        assert!((counts[v] as f64 - want).abs() < 5.0 * sd, "value {v}: {} draws, expected {want:.1}", counts[v]);
    }
    // The mean picture is the distribution's mean, Σ_v (v/255)·P(v), within 2e-3 (the
    // rounding to the grid), also with a component far beyond 1 that puts its mass on 255.
    for p in [p, vec![0.5, -0.3, 0.1, 0.2, 3.0, -0.4, -3.0, -4.0, -2.5]] {
        let probs: Vec<f64> = log_probs(&m, &p, &x, 256).iter().map(|&l| (l as f64).exp()).collect();
        let want: f64 = probs.iter().enumerate().map(|(v, p)| v as f64 / 255.0 * p).sum();
        let mut out = p.clone();
        logistic_mixture_mean(m, &mut out, &[0.0; 9], 1);
        assert!((out[0] as f64 - want).abs() < 2e-3, "{} vs {want}", out[0]);
    }
}
