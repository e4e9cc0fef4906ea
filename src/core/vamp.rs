//! The VampPrior (Tomczak & Welling 2018, eq. 9): a mixture of the variational posteriors of
//! K learned pseudo-inputs u_k, p_λ(z) = (1/K) Σ_k q(z | u_k), its log-density on a batch of
//! codes and every gradient, each forward beside its backward.
//!
//! With (μ_k, log σ²_k) the encoder's output for u_k and ρ_kj = exp(−log σ²_kj), in the same
//! convention as `core::importance` (the (2π)^{−L/2} factors of prior and posterior cancel,
//! so both leave them out):
//!
//! ```text
//! a_kc = Σ_j −½ log σ²_kj − ½ (z_jc − μ_kj)² ρ_kj
//!      = c_k + Σ_j (μρ)_kj z_jc − ½ Σ_j ρ_kj z_jc²,   c_k = Σ_j −½ log σ²_kj − ½ μ_kj² ρ_kj
//! log p_λ(z_c) = log Σ_k exp(a_kc) − log K,     r_kc = softmax_k(a_kc)
//! ∂ log p_λ(z_c)/∂z_jc = Σ_k r_kc (μ_kj − z_jc) ρ_kj = ((μρ)ᵀ r)_jc − z_jc (ρᵀ r)_jc
//! ```
//!
//! so the K×C table `a` and the gradient are four matrix products. For a loss
//! −Σ_c w_c log p_λ(z_c) (w the samples' weights) and s_kc = w_c r_kc, S_k = Σ_c s_kc:
//!
//! ```text
//! ∂/∂μ_kj     = −ρ_kj ((z sᵀ)_jk − μ_kj S_k)
//! ∂/∂log σ²_kj = ½ S_k − ½ ρ_kj ((z² sᵀ)_jk − 2 μ_kj (z sᵀ)_jk + μ_kj² S_k)
//! ```
//!
//! Layouts: codes `z` \[L, C\] (features × columns); the pseudo-inputs' encodings `enc`
//! \[2L, K\] (μ rows, then log σ² rows), as the encoder writes them.

use super::matmul::{Mat, matmul};
use super::pool::{Pool, SyncMut};
use super::simd::{self, simd_fn};

/// Columns of the K×C table one pass of [`softmax_tile`] takes: its K rows of 64 floats
/// (256 bytes each) stay in L1/L2 across the pass's three sweeps.
const TILE: usize = 64;

simd_fn! {
    /// For the columns `tile` of `a` \[K, stride\]: a_kc += c_k, then the column's softmax
    /// r_kc = exp(a_kc − max_k a_kc) / Σ_k exp(a_kc − max_k a_kc) in place, and
    /// `log_p[c] = max_k a_kc + log Σ_k exp(a_kc − max_k a_kc) − log K`. Sweeps the table
    /// row by row so each pass vectorises across the tile's columns.
    fn softmax_tile(a: &SyncMut<'_, f32>, stride: usize, tile: std::ops::Range<usize>, constant: &[f32], log_p: &mut [f32]) {
        let w = tile.len();
        let (mut max, mut sum) = ([f32::NEG_INFINITY; TILE], [0.0f32; TILE]);
        let (max, sum) = (&mut max[..w], &mut sum[..w]);
        // SAFETY: row i of this tile's columns; the caller gives each tile to one thread.
        let row = |i: usize| unsafe { a.slice(i * stride + tile.start..i * stride + tile.end) };
        for (i, &ci) in constant.iter().enumerate() {
            for (v, m) in row(i).iter_mut().zip(max.iter_mut()) {
                *v += ci;
                *m = if *v > *m { *v } else { *m };
            }
        }
        for i in 0..constant.len() {
            for ((v, &m), s) in row(i).iter_mut().zip(max.iter()).zip(sum.iter_mut()) {
                *v = simd::exp(*v - m);
                *s += *v;
            }
        }
        let mut inv = [0.0f32; TILE];
        inv[..w].iter_mut().zip(sum.iter()).for_each(|(r, &s)| *r = 1.0 / s);
        for i in 0..constant.len() {
            row(i).iter_mut().zip(&inv[..w]).for_each(|(v, &r)| *v *= r);
        }
        let ln_k = (constant.len() as f32).ln();
        for ((lp, &m), &s) in log_p.iter_mut().zip(max.iter()).zip(sum.iter()) {
            *lp = m + s.ln() - ln_k;
        }
    }
}

/// The mixture's terms, computed once per set of pseudo-input encodings.
#[derive(Clone, Debug)]
pub struct Mixture {
    pub components: usize,
    pub latent: usize,
    /// μ_kj ρ_kj and ρ_kj, `[K, L]` row-major; μ_kj `[K, L]`; c_k `[K]`.
    mu_rho: Vec<f32>,
    rho: Vec<f32>,
    mu: Vec<f32>,
    constant: Vec<f32>,
}

impl Mixture {
    /// The terms of the mixture whose components the encoder gave as `enc` \[2L, K\].
    pub fn new(enc: &[f32], latent: usize, components: usize) -> Mixture {
        let (l, k) = (latent, components);
        assert_eq!(enc.len(), 2 * l * k, "enc is [2L, K]");
        let mut m = Mixture {
            components: k,
            latent: l,
            mu_rho: vec![0.0; k * l],
            rho: vec![0.0; k * l],
            mu: vec![0.0; k * l],
            constant: vec![0.0; k],
        };
        for j in 0..l {
            for c in 0..k {
                let (mu, lv) = (enc[j * k + c], enc[(l + j) * k + c]);
                let rho = (-lv).exp();
                m.mu[c * l + j] = mu;
                m.rho[c * l + j] = rho;
                m.mu_rho[c * l + j] = mu * rho;
                m.constant[c] += -0.5 * lv - 0.5 * mu * mu * rho;
            }
        }
        m
    }

    /// log p_λ(z_c) of each column of `z` \[L, C\] into `log_p` \[C\], and the
    /// responsibilities r \[K, C\] into `resp`; `z2` \[L, C\] is scratch (left holding z²).
    pub fn log_density(&self, pool: &Pool, z: &[f32], z2: &mut [f32], resp: &mut [f32], log_p: &mut [f32]) {
        let (l, k, cols) = (self.latent, self.components, log_p.len());
        for (q, &v) in z2[..l * cols].iter_mut().zip(&z[..l * cols]) {
            *q = -0.5 * v * v;
        }
        matmul(pool, resp, Mat::new(&self.mu_rho, k, l), Mat::new(z, l, cols), false);
        matmul(pool, resp, Mat::new(&self.rho, k, l), Mat::new(z2, l, cols), true);
        let (table, constant) = (SyncMut::new(resp), &self.constant[..]);
        let lp = SyncMut::new(log_p);
        pool.for_ranges(cols, TILE, 2 * TILE, &|_, r| {
            for start in r.clone().step_by(TILE) {
                let tile = start..(start + TILE).min(r.end);
                // SAFETY: each tile's columns belong to one range of one thread.
                softmax_tile(&table, cols, tile.clone(), constant, unsafe { lp.slice(tile) });
            }
        });
        for q in z2[..l * cols].iter_mut() {
            *q *= -2.0;
        }
    }

    /// −∂ log p_λ(z_c)/∂z_jc into `neg_grad` \[L, C\], from the responsibilities `resp`
    /// \[K, C\] of [`Mixture::log_density`]: z_jc (ρᵀ r)_jc − ((μρ)ᵀ r)_jc.
    pub fn neg_grad_z(&self, pool: &Pool, z: &[f32], resp: &[f32], scratch: &mut [f32], neg_grad: &mut [f32]) {
        let (l, k) = (self.latent, self.components);
        let cols = resp.len() / k;
        matmul(pool, scratch, Mat::new(&self.rho, k, l).t(), Mat::new(resp, k, cols), false);
        matmul(pool, neg_grad, Mat::new(&self.mu_rho, k, l).t(), Mat::new(resp, k, cols), false);
        for ((g, &s), &zv) in neg_grad[..l * cols].iter_mut().zip(&scratch[..l * cols]).zip(&z[..l * cols]) {
            *g = zv * s - *g;
        }
    }

    /// The gradient of −Σ_c w_c log p_λ(z_c) with respect to the components' encodings,
    /// `denc` \[2L, K\] (μ rows, then log σ² rows), from `z` \[L, C\], `z2` = z² \[L, C\] (as
    /// [`Mixture::log_density`] leaves it), the responsibilities `resp` \[K, C\] (overwritten
    /// with s = w·r) and the weights `w` \[C\]. `zs`, `z2s` are \[L, K\] scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn encoding_grad(
        &self,
        pool: &Pool,
        z: &[f32],
        z2: &[f32],
        resp: &mut [f32],
        w: &[f32],
        zs: &mut [f32],
        z2s: &mut [f32],
        denc: &mut [f32],
    ) {
        let (l, k, cols) = (self.latent, self.components, w.len());
        let mut s_sum = vec![0.0f32; k];
        for (i, row) in resp[..k * cols].chunks_exact_mut(cols).enumerate() {
            let mut total = 0.0f32;
            for (r, &wc) in row.iter_mut().zip(w) {
                *r *= wc;
                total += *r;
            }
            s_sum[i] = total;
        }
        matmul(pool, zs, Mat::new(z, l, cols), Mat::new(resp, k, cols).t(), false);
        matmul(pool, z2s, Mat::new(z2, l, cols), Mat::new(resp, k, cols).t(), false);
        let (dmu, dlv) = denc.split_at_mut(l * k);
        for j in 0..l {
            for i in 0..k {
                let (mu, rho) = (self.mu[i * l + j], self.rho[i * l + j]);
                let (a, b, s) = (zs[j * k + i], z2s[j * k + i], s_sum[i]);
                dmu[j * k + i] = -rho * (a - mu * s);
                dlv[j * k + i] = 0.5 * s - 0.5 * rho * (b - 2.0 * mu * a + mu * mu * s);
            }
        }
    }

    /// `n` codes `[n, L]` drawn from the mixture: a component uniformly, then
    /// μ_k + T·σ_k ε.
    pub fn sample(&self, n: usize, temperature: f32, rng: &mut super::Rng) -> Vec<f32> {
        let l = self.latent;
        let mut z = vec![0.0f32; n * l];
        rng.fill_normal(&mut z);
        for row in z.chunks_exact_mut(l) {
            let i = ((rng.uniform() * self.components as f64) as usize).min(self.components - 1);
            self.shift(row, i, temperature);
        }
        z
    }

    /// Noise `row` \[L\] moved into component `i`: ε ↦ μ_i + T·σ_i ε.
    fn shift(&self, row: &mut [f32], i: usize, temperature: f32) {
        let l = self.latent;
        for (j, v) in row.iter_mut().enumerate() {
            let sigma = 1.0 / self.rho[i * l + j].sqrt();
            *v = self.mu[i * l + j] + temperature * sigma * *v;
        }
    }

    /// Fixed noise `eps` \[n, L\] placed in the mixture without drawing anything: row r in
    /// component ⌊r·K/n⌋ (spread evenly over the components), μ_k + σ_k ε_r. The training
    /// run's per-epoch sample grid uses it, so each cell follows one pseudo-input from epoch
    /// to epoch as the prior is learnt.
    pub fn place(&self, eps: &[f32]) -> Vec<f32> {
        let l = self.latent;
        let n = eps.len() / l;
        let mut z = eps[..n * l].to_vec();
        for (r, row) in z.chunks_exact_mut(l).enumerate() {
            self.shift(row, r * self.components / n, 1.0);
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Rng;

    fn setup(l: usize, k: usize, cols: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut rng = Rng::new(3);
        let mut enc = vec![0.0f32; 2 * l * k];
        rng.fill_normal(&mut enc);
        for v in &mut enc[l * k..] {
            *v *= 0.5; // log σ² in about ±1
        }
        let mut z = vec![0.0f32; l * cols];
        rng.fill_normal(&mut z);
        let w: Vec<f32> = (0..cols).map(|c| 0.5 + c as f32 / cols as f32).collect();
        (enc, z, w)
    }

    /// a_ic = log q(z_c | u_i) (without the 2π factor) in f64, straight from the definition.
    fn component(enc: &[f64], z: &[f64], l: usize, k: usize, cols: usize, i: usize, c: usize) -> f64 {
        (0..l)
            .map(|j| {
                let (mu, lv) = (enc[j * k + i], enc[(l + j) * k + i]);
                let d = z[j * cols + c] - mu;
                -0.5 * lv - 0.5 * d * d * (-lv).exp()
            })
            .sum()
    }

    /// log p_λ(z) in f64 straight from the definition.
    fn reference(enc: &[f64], z: &[f64], l: usize, k: usize, cols: usize) -> Vec<f64> {
        (0..cols)
            .map(|c| {
                let a: Vec<f64> = (0..k).map(|i| component(enc, z, l, k, cols, i, c)).collect();
                let max = a.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                max + a.iter().map(|v| (v - max).exp()).sum::<f64>().ln() - (k as f64).ln()
            })
            .collect()
    }

    /// On 9 columns (part of one tile, one thread) and on 300 (tiles of 64 and a part one,
    /// split between two threads), with 7 and 500 components.
    #[test]
    fn log_density_matches_the_definition() {
        for (l, k, cols, threads) in [(5, 7, 9, 1), (6, 500, 300, 2)] {
            let (enc, z, _) = setup(l, k, cols);
            let m = Mixture::new(&enc, l, k);
            let (mut z2, mut resp, mut lp) = (vec![0.0; l * cols], vec![0.0; k * cols], vec![0.0; cols]);
            m.log_density(&Pool::new(threads), &z, &mut z2, &mut resp, &mut lp);
            let e64: Vec<f64> = enc.iter().map(|&v| v as f64).collect();
            let z64: Vec<f64> = z.iter().map(|&v| v as f64).collect();
            let want = reference(&e64, &z64, l, k, cols);
            for (a, b) in lp.iter().zip(&want) {
                assert!((*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
            for c in 0..cols {
                let total: f32 = (0..k).map(|i| resp[i * cols + c]).sum();
                assert!((total - 1.0).abs() < 1e-5, "column {c}: {total}");
                // The largest responsibility is the component with the largest density.
                let best = (0..k).max_by(|&a, &b| resp[a * cols + c].total_cmp(&resp[b * cols + c])).unwrap();
                let d = |i: usize| component(&e64, &z64, l, k, cols, i, c);
                assert!((0..k).all(|i| d(i) <= d(best) + 1e-4), "column {c}");
            }
        }
        // One component: log N(z; μ, σ²) (without the 2π factor).
        let one = Mixture::new(&[0.5, (0.3f32).ln()], 1, 1);
        let (mut q, mut r, mut p) = (vec![0.0], vec![0.0], vec![0.0]);
        one.log_density(&Pool::new(1), &[1.1], &mut q, &mut r, &mut p);
        let want = -0.5 * 0.3f64.ln() - 0.5 * 0.36 / 0.3;
        assert!((p[0] as f64 - want).abs() < 1e-6);
    }

    /// Every gradient against central differences of the f64 definition of
    /// L = −Σ_c w_c log p_λ(z_c).
    #[test]
    fn gradients_match_finite_differences() {
        let (l, k, cols) = (4, 6, 5);
        let (enc, z, w) = setup(l, k, cols);
        let pool = Pool::new(1);
        let m = Mixture::new(&enc, l, k);
        let (mut z2, mut resp, mut lp) = (vec![0.0; l * cols], vec![0.0; k * cols], vec![0.0; cols]);
        m.log_density(&pool, &z, &mut z2, &mut resp, &mut lp);
        let (mut scratch, mut gz) = (vec![0.0; l * cols], vec![0.0; l * cols]);
        m.neg_grad_z(&pool, &z, &resp, &mut scratch, &mut gz);
        let (mut zs, mut z2s, mut denc) = (vec![0.0; l * k], vec![0.0; l * k], vec![0.0; 2 * l * k]);
        m.encoding_grad(&pool, &z, &z2, &mut resp, &w, &mut zs, &mut z2s, &mut denc);
        let e64: Vec<f64> = enc.iter().map(|&v| v as f64).collect();
        let z64: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        let loss = |e: &[f64], z: &[f64]| -> f64 {
            reference(e, z, l, k, cols).iter().zip(&w).map(|(p, &wc)| -(wc as f64) * p).sum()
        };
        let h = 1e-5;
        for i in 0..z64.len() {
            let (mut a, mut b) = (z64.clone(), z64.clone());
            a[i] += h;
            b[i] -= h;
            // −∂log p(z_c)/∂z = ∂L/∂z / w_c.
            let fd = (loss(&e64, &a) - loss(&e64, &b)) / (2.0 * h) / w[i % cols] as f64;
            assert!((gz[i] as f64 - fd).abs() < 1e-3 * (1.0 + fd.abs()), "z {i}: {} vs {fd}", gz[i]);
        }
        for i in 0..e64.len() {
            let (mut a, mut b) = (e64.clone(), e64.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&a, &z64) - loss(&b, &z64)) / (2.0 * h);
            assert!((denc[i] as f64 - fd).abs() < 1e-3 * (1.0 + fd.abs()), "enc {i}: {} vs {fd}", denc[i]);
        }
    }

    /// Two components, N(−5, 0.25) and N(5, 4) in one dimension; four rows of noise: the
    /// first two go to component 0, the last two to component 1, each μ + σ ε.
    #[test]
    fn place_spreads_fixed_noise_over_the_components() {
        let m = Mixture::new(&[-5.0, 5.0, 0.25f32.ln(), 4f32.ln()], 1, 2);
        let z = m.place(&[0.0, 2.0, 0.0, -1.0]);
        let want = [-5.0, -4.0, 5.0, 3.0];
        for (a, b) in z.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{z:?}");
        }
    }

    #[test]
    fn samples_come_from_the_components() {
        // Two far-apart components with tiny spread: every draw sits at one of the means.
        let enc = [-5.0f32, 5.0, (1e-6f32).ln(), (1e-6f32).ln()];
        let m = Mixture::new(&enc, 1, 2);
        let z = m.sample(1000, 1.0, &mut Rng::new(1));
        let left = z.iter().filter(|&&v| (v + 5.0).abs() < 0.01).count();
        let right = z.iter().filter(|&&v| (v - 5.0).abs() < 0.01).count();
        assert_eq!(left + right, 1000);
        assert!((400..600).contains(&left), "{left}");
    }
}
