//! Gaussian mixtures with full covariances, fitted by expectation–maximisation (Dempster,
//! Laird & Rubin 1977; the updates as Bishop 2006, §9.2.2, eqs. 9.23–9.27):
//!
//! ```text
//! E:  r_ik = π_k N(x_i | μ_k, Σ_k) / Σ_j π_j N(x_i | μ_j, Σ_j)
//! M:  N_k = Σ_i r_ik,  π_k = N_k / n,  μ_k = Σ_i r_ik x_i / N_k,
//!     Σ_k = Σ_i r_ik (x_i − μ_k)(x_i − μ_k)ᵀ / N_k + λI     (λ = [`REG`], as scikit-learn's reg_covar)
//! log N(x | μ, Σ) = −½ (D log 2π + log |Σ| + ‖L⁻¹(x − μ)‖²),  Σ = L Lᵀ (Cholesky)
//! ```
//!
//! Each iteration never lowers the data's log-likelihood Σ_i log Σ_k π_k N(x_i | μ_k, Σ_k)
//! (up to λ's nudge); the fit starts from k-means++ seeds refined by Lloyd's k-means, as
//! scikit-learn's `GaussianMixture(init_params="kmeans")`. Used for ex-post density
//! estimation in the latent space (Ghosh et al. 2020, §4: "ex-post density estimation").

use crate::core::Rng;
use crate::core::logsumexp::log_sum_exp;
use serde::{Deserialize, Serialize};

/// Added to every covariance's diagonal so it stays positive definite (scikit-learn's default).
pub const REG: f64 = 1e-6;

/// A mixture of `weights.len()` Gaussians in `dim` dimensions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gmm {
    pub dim: usize,
    /// Mixing weights π_k, summing to 1.
    pub weights: Vec<f64>,
    /// Means, `[K, D]` row-major.
    pub means: Vec<f64>,
    /// Covariances, `[K, D, D]` row-major, symmetric positive definite.
    pub covariances: Vec<f64>,
    /// Lower Cholesky factors of the covariances, `[K, D, D]`, and log |Σ_k|: derived.
    #[serde(skip)]
    chol: Vec<f64>,
    #[serde(skip)]
    log_dets: Vec<f64>,
}

/// What is wrong with a mixture's numbers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GmmError {
    #[error("the mixture's arrays disagree: {0}")]
    Shape(String),
    #[error("the mixing weights must be ≥ 0 and sum to 1 (they sum to {0})")]
    Weights(f64),
    #[error("component {0}'s covariance is not symmetric positive definite")]
    Covariance(usize),
    #[error("the mixture holds a value that is not a finite number")]
    NotFinite,
}

/// How a fit went: the mean log-likelihood per point after each iteration (never
/// decreasing), and whether it met the tolerance before the iteration limit.
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    pub log_likelihoods: Vec<f64>,
    pub converged: bool,
}

impl Gmm {
    /// A mixture from its parameters, checked (shapes, weights, finite, positive definite).
    ///
    /// # Errors
    /// [`GmmError`] naming what is wrong.
    pub fn new(dim: usize, weights: Vec<f64>, means: Vec<f64>, covariances: Vec<f64>) -> Result<Gmm, GmmError> {
        let k = weights.len();
        if dim == 0 || k == 0 || means.len() != k * dim || covariances.len() != k * dim * dim {
            return Err(GmmError::Shape(format!(
                "{k} weights, {} mean values and {} covariance values in {dim} dimensions",
                means.len(),
                covariances.len()
            )));
        }
        if weights.iter().chain(&means).chain(&covariances).any(|v| !v.is_finite()) {
            return Err(GmmError::NotFinite);
        }
        let total: f64 = weights.iter().sum();
        if weights.iter().any(|&w| w < 0.0) || (total - 1.0).abs() > 1e-6 {
            return Err(GmmError::Weights(total));
        }
        let mut g = Gmm { dim, weights, means, covariances, chol: Vec::new(), log_dets: Vec::new() };
        g.factor()?;
        Ok(g)
    }

    /// Rebuilds the derived Cholesky factors (after deserialising).
    ///
    /// # Errors
    /// As [`Gmm::new`].
    pub fn checked(self) -> Result<Gmm, GmmError> {
        Gmm::new(self.dim, self.weights, self.means, self.covariances)
    }

    pub fn components(&self) -> usize {
        self.weights.len()
    }

    fn factor(&mut self) -> Result<(), GmmError> {
        self.chol = vec![0.0; self.covariances.len()];
        self.log_dets = vec![0.0; self.components()];
        (0..self.components()).try_for_each(|k| self.factor_one(k))
    }

    /// Factors component k's covariance into `chol` and `log_dets` (allocated).
    fn factor_one(&mut self, k: usize) -> Result<(), GmmError> {
        let d = self.dim;
        let cov = &self.covariances[k * d * d..(k + 1) * d * d];
        let l = &mut self.chol[k * d * d..(k + 1) * d * d];
        for i in 0..d {
            for j in 0..i {
                if (cov[i * d + j] - cov[j * d + i]).abs() > 1e-9 * (1.0 + cov[i * d + j].abs()) {
                    return Err(GmmError::Covariance(k));
                }
            }
        }
        if !cholesky(cov, l, d) {
            return Err(GmmError::Covariance(k));
        }
        self.log_dets[k] = 2.0 * (0..d).map(|i| l[i * d + i].ln()).sum::<f64>();
        Ok(())
    }

    /// log N(x | μ_k, Σ_k) for every component, into `out` \[K\]; `scratch` \[D\].
    fn component_log_densities(&self, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let d = self.dim;
        let log_2pi = (2.0 * std::f64::consts::PI).ln();
        for (k, o) in out.iter_mut().enumerate() {
            let l = &self.chol[k * d * d..(k + 1) * d * d];
            let mu = &self.means[k * d..(k + 1) * d];
            // Forward substitution: y = L⁻¹ (x − μ).
            let mut sq = 0.0;
            for i in 0..d {
                let row = &l[i * d..i * d + i];
                let s: f64 = row.iter().zip(&scratch[..i]).map(|(a, b)| a * b).sum();
                let y = (x[i] - mu[i] - s) / l[i * d + i];
                scratch[i] = y;
                sq += y * y;
            }
            *o = -0.5 * (d as f64 * log_2pi + self.log_dets[k] + sq);
        }
    }

    /// log p(x) = log Σ_k π_k N(x | μ_k, Σ_k) of one point `x` \[D\].
    pub fn log_density(&self, x: &[f64]) -> f64 {
        let mut logs = vec![0.0; self.components()];
        let mut scratch = vec![0.0; self.dim];
        self.component_log_densities(x, &mut logs, &mut scratch);
        for (l, w) in logs.iter_mut().zip(&self.weights) {
            *l += w.ln();
        }
        log_sum_exp(&logs)
    }

    /// Mean log-density of the points `data` \[n, D\].
    pub fn mean_log_density(&self, data: &[f64]) -> f64 {
        let n = data.len() / self.dim;
        data.chunks_exact(self.dim).map(|x| self.log_density(x)).sum::<f64>() / n.max(1) as f64
    }

    /// Draws `n` points, `[n, D]`: a component by its weight, then μ_k + T·L_k ε with ε
    /// standard normal (T = `temperature` scales each component's spread; 1 is the mixture).
    pub fn sample(&self, n: usize, temperature: f64, rng: &mut Rng) -> Vec<f64> {
        let d = self.dim;
        let mut out = vec![0.0; n * d];
        let mut eps = vec![0.0f32; d];
        for x in out.chunks_exact_mut(d) {
            let u = rng.uniform();
            let mut k = 0;
            let mut acc = self.weights[0];
            while u >= acc && k + 1 < self.components() {
                k += 1;
                acc += self.weights[k];
            }
            rng.fill_normal(&mut eps);
            let l = &self.chol[k * d * d..(k + 1) * d * d];
            for i in 0..d {
                let s: f64 = (0..=i).map(|j| l[i * d + j] * eps[j] as f64).sum();
                x[i] = self.means[k * d + i] + temperature * s;
            }
        }
        out
    }

    /// Fits `k` components to `data` \[n, D\] by EM from k-means seeds drawn with `rng`,
    /// until the mean log-likelihood per point improves by less than `tol` or after
    /// `max_iter` iterations.
    ///
    /// # Errors
    /// [`GmmError::Shape`] when there are fewer points than components or `data` is not a
    /// whole number of points, [`GmmError::NotFinite`] when a value is not finite.
    pub fn fit(
        data: &[f64],
        dim: usize,
        k: usize,
        max_iter: usize,
        tol: f64,
        rng: &mut Rng,
    ) -> Result<(Gmm, FitReport), GmmError> {
        if dim == 0 || !data.len().is_multiple_of(dim) || k == 0 || data.len() / dim < k {
            return Err(GmmError::Shape(format!("{} values in {dim} dimensions for {k} components", data.len())));
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(GmmError::NotFinite);
        }
        let n = data.len() / dim;
        let labels = kmeans(data, dim, k, 20, rng);
        let mut resp = vec![0.0; n * k];
        for (i, &c) in labels.iter().enumerate() {
            resp[i * k + c] = 1.0;
        }
        let mut gmm = m_step(data, dim, k, &resp)?;
        let mut report = FitReport { log_likelihoods: Vec::new(), converged: false };
        for _ in 0..max_iter {
            let ll = e_step(&gmm, data, &mut resp);
            let change = report.log_likelihoods.last().map(|&prev| ll - prev);
            report.log_likelihoods.push(ll);
            match change {
                // Converged: the likelihood stopped moving.
                Some(c) if c.abs() < tol => {
                    report.converged = true;
                    break;
                }
                // EM never lowers it but for rounding or a covariance made diagonal: stop,
                // and do not call that converged.
                Some(c) if c < 0.0 => break,
                _ => {}
            }
            gmm = m_step(data, dim, k, &resp)?;
        }
        Ok((gmm, report))
    }
}

/// Responsibilities of every component for every point, into `resp` \[n, K\]; returns the
/// mean log-likelihood per point.
fn e_step(gmm: &Gmm, data: &[f64], resp: &mut [f64]) -> f64 {
    let (d, k) = (gmm.dim, gmm.components());
    let log_w: Vec<f64> = gmm.weights.iter().map(|w| w.ln()).collect();
    let mut scratch = vec![0.0; d];
    let mut total = 0.0;
    for (x, r) in data.chunks_exact(d).zip(resp.chunks_exact_mut(k)) {
        gmm.component_log_densities(x, r, &mut scratch);
        for (v, lw) in r.iter_mut().zip(&log_w) {
            *v += lw;
        }
        let lse = log_sum_exp(r);
        total += lse;
        for v in r.iter_mut() {
            *v = (*v - lse).exp();
        }
    }
    total / (data.len() / d) as f64
}

/// The maximising weights, means and covariances for responsibilities `resp` \[n, K\]. A
/// component with (almost) no responsibility is parked at the data's mean with the data's
/// variance on its diagonal (the data's scale, whatever it is) and a weight of ~0.
///
/// # Errors
/// [`GmmError::Covariance`] when a component's covariance cannot be factored even as its
/// diagonal (values so large that their squares overflow).
fn m_step(data: &[f64], d: usize, k: usize, resp: &[f64]) -> Result<Gmm, GmmError> {
    let n = data.len() / d;
    let data_mean: Vec<f64> = (0..d).map(|j| data.iter().skip(j).step_by(d).sum::<f64>() / n as f64).collect();
    let data_var: Vec<f64> = (0..d)
        .map(|j| data.iter().skip(j).step_by(d).map(|v| (v - data_mean[j]).powi(2)).sum::<f64>() / n as f64)
        .collect();
    let mut nk = vec![0.0; k];
    let mut means = vec![0.0; k * d];
    for (x, r) in data.chunks_exact(d).zip(resp.chunks_exact(k)) {
        for c in 0..k {
            nk[c] += r[c];
            for (m, v) in means[c * d..(c + 1) * d].iter_mut().zip(x) {
                *m += r[c] * v;
            }
        }
    }
    let mut covs = vec![0.0; k * d * d];
    let mut diff = vec![0.0; d];
    for c in 0..k {
        let mean = &mut means[c * d..(c + 1) * d];
        if nk[c] < 1e-10 {
            // An empty component: park it at the data's mean with the data's variances.
            mean.copy_from_slice(&data_mean);
            for j in 0..d {
                covs[c * d * d + j * d + j] = data_var[j] + REG;
            }
            continue;
        }
        mean.iter_mut().for_each(|m| *m /= nk[c]);
        let mean = &means[c * d..(c + 1) * d];
        let cov = &mut covs[c * d * d..(c + 1) * d * d];
        for (x, r) in data.chunks_exact(d).zip(resp.chunks_exact(k)) {
            let w = r[c];
            if w == 0.0 {
                continue;
            }
            for ((t, v), m) in diff.iter_mut().zip(x).zip(mean) {
                *t = v - m;
            }
            for i in 0..d {
                let wi = w * diff[i];
                for j in 0..=i {
                    cov[i * d + j] += wi * diff[j];
                }
            }
        }
        for i in 0..d {
            for j in 0..=i {
                let v = cov[i * d + j] / nk[c];
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
            cov[i * d + i] += REG;
        }
    }
    let total: f64 = nk.iter().sum();
    let weights = nk.iter().map(|v| v / total).collect();
    let mut g = Gmm { dim: d, weights, means, covariances: covs, chol: vec![0.0; k * d * d], log_dets: vec![0.0; k] };
    (0..k).try_for_each(|c| factor_or_diagonal(&mut g, c))?;
    Ok(g)
}

/// Factors component c, or, when its covariance is numerically indefinite despite λ, that
/// component alone falls back to its diagonal.
///
/// # Errors
/// [`GmmError::Covariance`] when even the diagonal does not factor (an infinite variance).
fn factor_or_diagonal(g: &mut Gmm, c: usize) -> Result<(), GmmError> {
    if g.factor_one(c).is_ok() {
        return Ok(());
    }
    let d = g.dim;
    for i in 0..d {
        for j in 0..d {
            if i != j {
                g.covariances[c * d * d + i * d + j] = 0.0;
            }
        }
    }
    g.factor_one(c)
}

/// Lloyd's k-means from k-means++ seeds (Arthur & Vassilvitskii 2007); returns each
/// point's cluster.
fn kmeans(data: &[f64], d: usize, k: usize, rounds: usize, rng: &mut Rng) -> Vec<usize> {
    let n = data.len() / d;
    let point = |i: usize| &data[i * d..(i + 1) * d];
    let dist = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
    let mut centres: Vec<f64> = point((rng.uniform() * n as f64) as usize % n).to_vec();
    let mut nearest: Vec<f64> = (0..n).map(|i| dist(point(i), &centres[..d])).collect();
    while centres.len() < k * d {
        let total: f64 = nearest.iter().sum();
        let mut u = rng.uniform() * total;
        let mut pick = n - 1;
        for (i, &v) in nearest.iter().enumerate() {
            if u < v {
                pick = i;
                break;
            }
            u -= v;
        }
        let c = point(pick).to_vec();
        for (i, v) in nearest.iter_mut().enumerate() {
            *v = v.min(dist(point(i), &c));
        }
        centres.extend(c);
    }
    let mut labels = vec![0; n];
    for _ in 0..rounds {
        for (i, l) in labels.iter_mut().enumerate() {
            let x = point(i);
            *l = (0..k)
                .min_by(|&a, &b| {
                    dist(x, &centres[a * d..(a + 1) * d]).total_cmp(&dist(x, &centres[b * d..(b + 1) * d]))
                })
                .unwrap_or(0);
        }
        let mut sums = vec![0.0; k * d];
        let mut counts = vec![0usize; k];
        for (i, &l) in labels.iter().enumerate() {
            counts[l] += 1;
            for (s, v) in sums[l * d..(l + 1) * d].iter_mut().zip(point(i)) {
                *s += v;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..d {
                    centres[c * d + j] = sums[c * d + j] / counts[c] as f64;
                }
            }
        }
    }
    labels
}

/// `l` = the lower Cholesky factor of the symmetric `a` (both \[D, D\]); false when `a` is
/// not positive definite.
fn cholesky(a: &[f64], l: &mut [f64], d: usize) -> bool {
    l.fill(0.0);
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|t| l[i * d + t] * l[j * d + t]).sum();
            if i == j {
                let v = a[i * d + i] - s;
                if !(v > 0.0 && v.is_finite()) {
                    return false;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    true
}

#[cfg(test)]
mod tests;
