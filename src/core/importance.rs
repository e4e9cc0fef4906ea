//! Kernels of the importance-weighted objective (Burda, Grosse & Salakhutdinov 2015, eq. 8
//! and §3), each forward beside its backward:
//!
//! ```text
//! loss(x) = −log (1/k) Σ_s w_s,   w_s = p(x|z_s) p(z_s) / q(z_s|x),   z_s = μ + σ·ε_s
//! log p(z_s) − log q(z_s|x) = Σ_j −½ z_sj² + ½ ε_sj² + ½ log σ²_j   (the 2π factors cancel)
//! ∂loss/∂θ = −Σ_s w̃_s ∂log w_s/∂θ,   w̃_s = w_s / Σ_t w_t   (their §3, the gradient estimator)
//! ```
//!
//! Their "VAE with k samples" baseline (§5) is the same pass with uniform weights: loss(x) =
//! −(1/k) Σ_s log w_s, the k-sample estimate of the ELBO, with gradient −Σ_s (1/k) ∂log w_s/∂θ.
//!
//! Layout: the k samples of the batch's B examples are k blocks of B columns, sample-major:
//! column `s·B + b` is sample s of example b. `enc` \[2·latent, B\] holds μ rows then log σ²
//! rows; `eps`, `z`, `dz` are \[latent, k·B\].

use super::kernels::map_row_sum;
use super::simd::{self, simd_fn};

/// The reparameterised draw z = μ + ε·exp(½ log σ²) (Kingma & Welling 2014, eq. 10): the one
/// definition every kernel and the evaluation use.
#[inline(always)]
pub fn draw(mu: f32, logvar: f32, eps: f32) -> f32 {
    mu + eps * simd::exp(0.5 * logvar)
}

/// −log q(z|x) of one dimension at the draw z = μ + σε, without its ½ log 2π:
/// ½ (ε² + log σ²) (the 2π factors cancel against the prior's).
#[inline(always)]
pub fn neg_log_posterior(eps: f32, logvar: f32) -> f32 {
    0.5 * (eps * eps + logvar)
}

/// log N(z; 0, 1) of one dimension, without its −½ log 2π: −½ z².
#[inline(always)]
pub fn log_standard_normal(z: f32) -> f32 {
    -0.5 * z * z
}

simd_fn! {
    /// `z[j, s·B + b] = μ[j, b] + ε[j, s·B + b]·exp(½ log σ²[j, b])` for every sample s.
    /// Shapes: `enc` \[2·latent, B\]; `eps`, `z` \[latent, k·B\].
    pub fn reparameterize_samples(enc: &[f32], eps: &[f32], z: &mut [f32], batch: usize) {
        let cols = eps.len() / (enc.len() / (2 * batch));
        let (mu, logvar) = enc.split_at(enc.len() / 2);
        let rows = mu.chunks_exact(batch).zip(logvar.chunks_exact(batch));
        for ((mrow, lrow), (erow, zrow)) in rows.zip(eps.chunks_exact(cols).zip(z.chunks_exact_mut(cols))) {
            for (eblock, zblock) in erow.chunks_exact(batch).zip(zrow.chunks_exact_mut(batch)) {
                for i in 0..batch {
                    zblock[i] = draw(mrow[i], lrow[i], eblock[i]);
                }
            }
        }
    }
}

/// The loss of every example and the normalised weights of its samples, from the decoder's
/// per-column reconstruction losses `bce` \[k·B\] (= −log p(x|z) per column).
///
/// Writes `weights` \[k·B\] = w̃ and `losses` \[B\] = ln k − log Σ_s w_s; returns the sums
/// over the batch of the loss and of the mean reconstruction loss `(1/k) Σ_s bce`. With
/// `uniform`, the k-sample ELBO instead: `weights` = 1/k and `losses` = −(1/k) Σ_s log w_s.
/// `log_prior` \[k·B\], when given, is each column's log p(z) in place of N(0, I)'s −½‖z‖²
/// (both without the (2π)^{−L/2} factor, which cancels against q's).
#[allow(clippy::too_many_arguments)]
pub fn importance_weights(
    enc: &[f32],
    eps: &[f32],
    z: &[f32],
    bce: &[f32],
    weights: &mut [f32],
    losses: &mut [f32],
    batch: usize,
    uniform: bool,
    log_prior: Option<&[f32]>,
) -> (f64, f64) {
    let cols = bce.len();
    let k = cols / batch;
    let latent = enc.len() / (2 * batch);
    let logvar = &enc[latent * batch..];
    // log w per column, accumulated in `weights`: −bce, then the prior/posterior terms.
    for (w, &b) in weights.iter_mut().zip(bce) {
        *w = -b;
    }
    for j in 0..latent {
        let (erow, zrow) = (&eps[j * cols..(j + 1) * cols], &z[j * cols..(j + 1) * cols]);
        let lrow = &logvar[j * batch..(j + 1) * batch];
        let blocks = weights.chunks_exact_mut(batch).zip(erow.chunks_exact(batch).zip(zrow.chunks_exact(batch)));
        for (wblock, (eblock, zblock)) in blocks {
            for (((w, &e), &z), &lv) in wblock.iter_mut().zip(eblock).zip(zblock).zip(lrow) {
                // N(0, I)'s log-density, unless another prior's is added below.
                let prior = if log_prior.is_some() { 0.0 } else { log_standard_normal(z) };
                *w += neg_log_posterior(e, lv) + prior;
            }
        }
    }
    if let Some(lp) = log_prior {
        for (w, &v) in weights.iter_mut().zip(lp) {
            *w += v;
        }
    }
    let (mut loss_sum, mut bce_sum) = (0.0f64, 0.0f64);
    let ln_k = (k as f64).ln();
    if uniform {
        let share = 1.0 / k as f64;
        for b in 0..batch {
            let mean_log_w: f64 = (0..k).map(|s| weights[s * batch + b] as f64).sum::<f64>() * share;
            for s in 0..k {
                let c = s * batch + b;
                weights[c] = share as f32;
                bce_sum += bce[c] as f64 * share;
            }
            losses[b] = -mean_log_w as f32;
            loss_sum -= mean_log_w;
        }
        return (loss_sum, bce_sum);
    }
    for b in 0..batch {
        let max = (0..k).map(|s| weights[s * batch + b]).fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = (0..k).map(|s| (weights[s * batch + b] as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        for s in 0..k {
            let c = s * batch + b;
            weights[c] = (weights[c] as f64 - lse).exp() as f32;
            bce_sum += bce[c] as f64 / k as f64;
        }
        losses[b] = (ln_k - lse) as f32;
        loss_sum += ln_k - lse;
    }
    (loss_sum, bce_sum)
}

simd_fn! {
    /// Weights the decoder's output gradient by sample: `dl[r, c] *= w̃[c]`, and writes the
    /// output-bias gradient `db[r] = Σ_c dl[r, c]` (summed in `LANES` independent lanes so the
    /// loop vectorises). Shapes: `dl` \[rows, k·B\], `weights` \[k·B\].
    pub fn weight_columns(dl: &mut [f32], weights: &[f32], db: &mut [f32]) {
        for (row, d) in dl.chunks_exact_mut(weights.len()).zip(db) {
            *d = map_row_sum(row, weights, |v, w| v * w);
        }
    }
}

simd_fn! {
    /// Backward of the importance-weighted loss to the encoder head, given `dz` (the
    /// decoder's gradient, already weighted by w̃): with g = dz + w̃·z (the prior's share),
    /// `∂/∂μ = Σ_s g`, `∂/∂log σ² = Σ_s g·ε·½σ − ½ Σ_s w̃` (the posterior's share, ε fixed),
    /// and the head's bias gradient `db[r] = Σ_b denc[r, b]`.
    ///
    /// Shapes: `enc`, `denc` \[2·latent, B\]; `eps`, `z`, `dz` \[latent, k·B\]; `weights`
    /// \[k·B\]; `db` \[2·latent\].
    pub fn importance_backward(
        enc: &[f32],
        eps: &[f32],
        z: &[f32],
        dz: &[f32],
        weights: &[f32],
        denc: &mut [f32],
        db: &mut [f32],
        batch: usize,
    ) {
        let cols = weights.len();
        let latent = enc.len() / (2 * batch);
        let (_, logvar) = enc.split_at(latent * batch);
        let (dmu, dlogvar) = denc.split_at_mut(latent * batch);
        let (db_mu, db_logvar) = db.split_at_mut(latent);
        for j in 0..latent {
            let r = j * cols..(j + 1) * cols;
            let (erow, zrow, dzrow) = (&eps[r.clone()], &z[r.clone()], &dz[r]);
            let lrow = &logvar[j * batch..(j + 1) * batch];
            let (dmrow, dlrow) = (&mut dmu[j * batch..(j + 1) * batch], &mut dlogvar[j * batch..(j + 1) * batch]);
            dmrow.fill(0.0);
            dlrow.fill(0.0);
            for s in 0..cols / batch {
                let c0 = s * batch;
                for i in 0..batch {
                    let c = c0 + i;
                    let g = dzrow[c] + weights[c] * zrow[c];
                    dmrow[i] += g;
                    dlrow[i] += 0.5 * (g * erow[c] * simd::exp(0.5 * lrow[i]) - weights[c]);
                }
            }
            db_mu[j] = dmrow.iter().sum();
            db_logvar[j] = dlrow.iter().sum();
        }
    }
}
