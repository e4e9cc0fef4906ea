//! Each likelihood's log-density and gradients against an f64 evaluation written from the
//! density's definition, and the continuous Bernoulli's constant and mean against numerical
//! integration.
#![allow(clippy::needless_range_loop)] // index loops mirror the formulas

use super::*;
use crate::core::Rng;

const ROWS: usize = 37; // not a multiple of the lanes or the thread split
const COLS: usize = 21;

struct Case {
    out: Vec<f32>,
    bias: Vec<f32>,
    logvar: Vec<f32>,
    x: Vec<f32>,
}

fn case(seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    let mut out = vec![0.0f32; ROWS * COLS];
    rng.fill_normal(&mut out);
    // Logits from tiny (the continuous Bernoulli's series) to large, both signs.
    out.iter_mut().enumerate().for_each(|(i, v)| *v *= [0.01, 0.3, 1.0, 4.0, 12.0][i % 5]);
    let bias = (0..ROWS).map(|r| 0.05 * (r as f32 - 18.0) / 18.0).collect();
    let logvar = (0..ROWS).map(|r| -3.0 + 0.1 * r as f32).collect();
    // Targets in [0, 1], some exactly 0 and 1.
    let x = (0..ROWS * COLS)
        .map(|i| match i % 7 {
            0 => 0.0,
            1 => 1.0,
            _ => rng.uniform_f32(),
        })
        .collect();
    Case { out, bias, logvar, x }
}

fn sigmoid(l: f64) -> f64 {
    1.0 / (1.0 + (-l).exp())
}

/// ln σ(l), without rounding σ(l) to 1 first: −ln(1 + e⁻ˡ).
fn log_sigmoid(l: f64) -> f64 {
    if l > 0.0 { -(-l).exp().ln_1p() } else { l - l.exp().ln_1p() }
}

/// log C(λ) of the continuous Bernoulli from its definition, C(λ) = 2 artanh(1 − 2λ)/(1 − 2λ)
/// (2 at λ = ½), with λ = σ(l): artanh(1 − 2λ) = ½ ln((1 − λ)/λ) and 1 − 2λ = σ(−l) − σ(l),
/// each computed from λ's logarithms so that no 1 − λ rounds to 0.
fn cb_log_c(l: f64) -> f64 {
    let one_minus_2lam = sigmoid(-l) - sigmoid(l);
    if one_minus_2lam.abs() < 1e-12 {
        return 2f64.ln();
    }
    (2.0 * 0.5 * (log_sigmoid(-l) - log_sigmoid(l)) / one_minus_2lam).ln()
}

/// −log p(x | l) of the continuous Bernoulli, p = C(λ) λˣ (1 − λ)¹⁻ˣ.
fn cb_nll(l: f64, x: f64) -> f64 {
    -(cb_log_c(l) + x * log_sigmoid(l) + (1.0 - x) * log_sigmoid(-l))
}

fn bernoulli_nll(l: f64, x: f64) -> f64 {
    -(x * log_sigmoid(l) + (1.0 - x) * log_sigmoid(-l))
}

fn gaussian_nll_ref(mu: f64, lv: f64, x: f64) -> f64 {
    0.5 * (2.0 * std::f64::consts::PI).ln() + 0.5 * lv + (x - mu) * (x - mu) / (2.0 * lv.exp())
}

fn close(got: f32, want: f64, tol: f64, what: &str) {
    assert!((got as f64 - want).abs() <= tol * (1.0 + want.abs()), "{what}: {got} vs {want}");
}

/// Checks a fused kernel's per-column losses, per-element gradient and bias gradient
/// against `nll(l, x)`, differentiated by central differences.
fn check(
    what: &str,
    c: &Case,
    got_loss: &[f32],
    got_grad: &[f32],
    got_db: &[f32],
    nll: impl Fn(f64, usize, f64) -> f64,
) {
    for col in 0..COLS {
        let want: f64 = (0..ROWS)
            .map(|r| nll(c.out[r * COLS + col] as f64 + c.bias[r] as f64, r, c.x[r * COLS + col] as f64))
            .sum();
        close(got_loss[col], want, 2e-5, &format!("{what} loss of column {col}"));
    }
    let h = 1e-5;
    for r in 0..ROWS {
        let mut db = 0.0;
        for col in 0..COLS {
            let (l, x) = (c.out[r * COLS + col] as f64 + c.bias[r] as f64, c.x[r * COLS + col] as f64);
            let fd = (nll(l + h, r, x) - nll(l - h, r, x)) / (2.0 * h);
            close(got_grad[r * COLS + col], fd, 2e-4, &format!("{what} gradient at ({r}, {col}), l = {l}"));
            db += fd;
        }
        close(got_db[r], db, 2e-4, &format!("{what} bias gradient of row {r}"));
    }
}

#[test]
fn every_likelihood_matches_its_f64_definition_on_one_and_two_threads() {
    for threads in [1, 2] {
        let pool = Pool::new(threads);
        let c = case(3);
        let mut scratch = vec![0.0; threads * COLS];

        let (mut out, mut db) = (c.out.clone(), vec![0.0; ROWS]);
        bernoulli_bce(&pool, &mut out, &c.bias, &c.x, &mut db, &mut scratch, COLS);
        check("bernoulli", &c, &scratch[..COLS], &out, &db, |l, _, x| bernoulli_nll(l, x));
        let mut ll = vec![0.0; threads * COLS];
        bernoulli_log_likelihood(&pool, &c.out, &c.bias, &c.x, &mut ll, COLS);
        (0..COLS).for_each(|i| assert_eq!(ll[i], -scratch[i], "log-likelihood is −loss"));

        let (mut out, mut db) = (c.out.clone(), vec![0.0; ROWS]);
        continuous_bernoulli_nll(&pool, &mut out, &c.bias, &c.x, &mut db, &mut scratch, COLS);
        check("continuous bernoulli", &c, &scratch[..COLS], &out, &db, |l, _, x| cb_nll(l, x));
        continuous_bernoulli_log_likelihood(&pool, &c.out, &c.bias, &c.x, &mut ll, COLS);
        (0..COLS).for_each(|i| close(ll[i], -scratch[i] as f64, 1e-6, "continuous bernoulli log-likelihood"));

        let (mut out, mut db, mut dlv) = (c.out.clone(), vec![0.0; ROWS], vec![0.0; ROWS]);
        gaussian_nll(&pool, &mut out, &c.bias, &c.logvar, &c.x, &mut db, &mut dlv, &mut scratch, COLS);
        let lv = |r: usize| c.logvar[r] as f64;
        check("gaussian", &c, &scratch[..COLS], &out, &db, |mu, r, x| gaussian_nll_ref(mu, lv(r), x));
        gaussian_log_likelihood(&pool, &c.out, &c.bias, &c.logvar, &c.x, &mut ll, COLS);
        (0..COLS).for_each(|i| close(ll[i], -scratch[i] as f64, 1e-6, "gaussian log-likelihood"));
        // The log-variance gradient, by central differences in v.
        for r in 0..ROWS {
            let h = 1e-5;
            let fd: f64 = (0..COLS)
                .map(|col| {
                    let (mu, x) = (c.out[r * COLS + col] as f64 + c.bias[r] as f64, c.x[r * COLS + col] as f64);
                    (gaussian_nll_ref(mu, lv(r) + h, x) - gaussian_nll_ref(mu, lv(r) - h, x)) / (2.0 * h)
                })
                .sum();
            close(dlv[r], fd, 2e-4, &format!("gaussian log-variance gradient of row {r}"));
        }
    }
}

#[test]
fn the_weighted_log_variance_gradient_weights_each_column() {
    let pool = Pool::new(1);
    let c = case(5);
    let (mut dmu, mut db, mut dlv) = (c.out.clone(), vec![0.0; ROWS], vec![0.0; ROWS]);
    let mut scratch = vec![0.0; COLS];
    gaussian_nll(&pool, &mut dmu, &c.bias, &c.logvar, &c.x, &mut db, &mut dlv, &mut scratch, COLS);
    let weights: Vec<f32> = (0..COLS).map(|i| (i as f32 + 1.0) / 100.0).collect();
    let mut got = vec![0.0; ROWS];
    gaussian_weighted_logvar_grad(&dmu, &weights, &c.logvar, &mut got);
    for r in 0..ROWS {
        let want: f64 = (0..COLS)
            .map(|col| {
                let d = c.out[r * COLS + col] as f64 + c.bias[r] as f64 - c.x[r * COLS + col] as f64;
                weights[col] as f64 * (0.5 - d * d / (2.0 * (c.logvar[r] as f64).exp()))
            })
            .sum();
        close(got[r], want, 2e-5, &format!("row {r}"));
    }
}

/// ∫₀¹ f by Simpson's rule on 20,000 intervals.
fn integrate(f: impl Fn(f64) -> f64) -> f64 {
    let n = 20_000;
    let h = 1.0 / n as f64;
    (0..=n)
        .map(|i| {
            f(i as f64 * h)
                * if i == 0 || i == n {
                    1.0
                } else if i % 2 == 1 {
                    4.0
                } else {
                    2.0
                }
        })
        .sum::<f64>()
        * h
        / 3.0
}

#[test]
fn the_continuous_bernoulli_is_normalised_and_its_mean_is_right() {
    for l in [-30.0f32, -5.0, -0.71, -0.69, -0.2, -1e-3, 0.0, 1e-3, 0.3, 0.69, 0.71, 2.0, 9.0, 40.0] {
        let log_c = cb_log_norm(l) as f64;
        close(cb_log_norm(l), cb_log_c(l as f64), 1e-6, &format!("log C at {l}"));
        let (lo, hi) = (log_sigmoid(-(l as f64)), log_sigmoid(l as f64));
        let density = |x: f64| (log_c + x * hi + (1.0 - x) * lo).exp();
        let mass = integrate(density);
        assert!((mass - 1.0).abs() < 2e-6, "l = {l}: ∫ p = {mass}");
        let mean = integrate(|x| x * density(x));
        assert!((cb_mean(l) as f64 - mean).abs() < 2e-6, "l = {l}: mean {} vs {mean}", cb_mean(l));
        // The derivative of log C by central differences of the f64 definition.
        let h = 1e-4;
        let fd = (cb_log_c(l as f64 + h) - cb_log_c(l as f64 - h)) / (2.0 * h);
        close(cb_log_norm_grad(l), fd, 1e-6, &format!("d log C/dl at {l}"));
    }
    assert_eq!(cb_log_norm(0.0), std::f32::consts::LN_2);
    assert_eq!(cb_mean(0.0), 0.5);
}

/// Why dequantization: one byte v = 128, certain, modelled by a Gaussian centred on its
/// value. At the grid point v/255 a narrow density exceeds 256, so "(NLL + ln 256)/ln 2"
/// goes negative: not a code length. On dequantized x = (v + u)/256, E_u[−log p(x)] + ln 256
/// ≥ −log P(v) = 0 for every σ (Theis et al. 2016, eq. 8), with the kernels as used.
#[test]
fn dequantized_gaussian_bits_are_never_negative() {
    let pool = Pool::new(1);
    let v = 128u8;
    let draws: Vec<f32> = (0..4096).map(|i| crate::core::kernels::dequantized(v, 9, i, 0)).collect();
    for sigma in [1e-4f32, 1e-3, 0.01, 0.1, 1.0] {
        let logvar = [2.0 * sigma.ln()];
        let bits = |x: &[f32], mu: f32| {
            let n = x.len();
            let mut ll = vec![0.0f32; n];
            gaussian_log_likelihood(&pool, &vec![0.0; n], &[mu], &logvar, x, &mut ll, n);
            let nll = -ll.iter().map(|&l| l as f64).sum::<f64>() / n as f64;
            (nll + 256f64.ln()) / std::f64::consts::LN_2
        };
        let dequantized = bits(&draws, (v as f32 + 0.5) / 256.0);
        assert!(dequantized >= -1e-3, "σ = {sigma}: {dequantized} bits");
        if sigma <= 1e-3 {
            let grid = bits(&[v as f32 / 255.0], v as f32 / 255.0);
            assert!(grid < -0.5, "σ = {sigma}: the grid point gives {grid} bits");
        }
    }
    // The noise fills the bin: its mean is near ½ and every value inside [v, v + 1)/256.
    let mean_u = draws.iter().map(|&x| x as f64 * 256.0 - v as f64).sum::<f64>() / draws.len() as f64;
    assert!((mean_u - 0.5).abs() < 0.02, "{mean_u}");
    assert!(draws.iter().all(|&x| (x * 256.0) >= v as f32 && (x * 256.0) < v as f32 + 1.0));
}

/// `--output-bias data-mean` for the continuous Bernoulli: the logit found for a mean has
/// that mean ([`cb_mean`], to f32 accuracy), across the range the bias is clipped to; λ = m
/// would not (at λ = 0.2 the mean is 0.39).
#[test]
fn the_continuous_bernoulli_logit_of_a_mean_has_that_mean() {
    for m in [0.001, 0.01, 0.2, 0.45, 0.5, 0.55, 0.8, 0.99, 0.999] {
        let l = cb_logit_of_mean(m);
        let got = cb_mean(l as f32) as f64;
        assert!((got - m).abs() < 2e-6, "mean {m}: logit {l} has mean {got}");
    }
    let lambda_logit = (0.2f32 / 0.8).ln();
    assert!((cb_mean(lambda_logit) - 0.388).abs() < 0.001, "{}", cb_mean(lambda_logit));
}
