//! The total correlation of the aggregate posterior, TC = KL(q(z) ‖ Π_d q(z_d)), estimated on
//! a minibatch by minibatch-weighted sampling (Chen, Li, Grosse & Duvenaud 2018, "Isolating
//! Sources of Disentanglement in VAEs", §3 and appendix C.1), the term β-TCVAE weights.
//!
//! For a batch of B examples from a data set of N, each with q(z|x_j) = N(μ_j, diag σ²_j) and
//! a draw z_i from its own posterior, with a_ijd = log N(z_id; μ_jd, σ²_jd):
//!
//! log q̂(z_i)   = logsumexp_j Σ_d a_ijd − log(N·B)
//! log q̂(z_id)  = logsumexp_j a_ijd − log(N·B)
//! TC_i         = log q̂(z_i) − Σ_d log q̂(z_id)
//!
//! Its gradient: ∂TC_i/∂a_ijd = w_ij − v_ijd with w_i· = softmax_j Σ_d a_ijd and
//! v_i·d = softmax_j a_ijd; ∂a/∂z_id = −(z_id − μ_jd)/σ²_jd = −∂a/∂μ_jd, and
//! ∂a/∂log σ²_jd = ½((z_id − μ_jd)²/σ²_jd − 1).

/// log √(2π).
const HALF_LOG_2PI: f64 = 0.918_938_533_204_672_8;

/// Σ_i TC_i over the batch (nats), and `weight` times its gradient: with respect to each draw
/// z, into `dz` `[latent, batch]`, and with respect to the posteriors' parameters through
/// a_ijd directly (not through z), into `denc` `[2·latent, batch]` (μ rows, then log σ²).
/// Both are overwritten. `enc` is `[2·latent, batch]`, `z` `[latent, batch]`.
pub fn total_correlation(
    enc: &[f32],
    z: &[f32],
    batch: usize,
    dataset: usize,
    weight: f32,
    dz: &mut [f32],
    denc: &mut [f32],
) -> f64 {
    let latent = z.len() / batch;
    let (mu, logvar) = enc.split_at(latent * batch);
    let at = |d: usize, j: usize| d * batch + j;
    let inv_var: Vec<f64> = logvar.iter().map(|&lv| (-(lv as f64)).exp()).collect();
    let log_nb = ((dataset.max(1) * batch) as f64).ln();
    let w = weight as f64;
    let mut dz64 = vec![0.0f64; latent * batch];
    let mut denc64 = vec![0.0f64; 2 * latent * batch];
    let mut a = vec![0.0f64; batch * latent]; // a[j, d] for the current i
    let mut total = 0.0;
    for i in 0..batch {
        for j in 0..batch {
            for d in 0..latent {
                let diff = z[at(d, i)] as f64 - mu[at(d, j)] as f64;
                a[j * latent + d] =
                    -HALF_LOG_2PI - 0.5 * logvar[at(d, j)] as f64 - 0.5 * diff * diff * inv_var[at(d, j)];
            }
        }
        // w_ij: softmax over j of the joint log-density.
        let joint: Vec<f64> = (0..batch).map(|j| a[j * latent..(j + 1) * latent].iter().sum()).collect();
        let (lse_joint, wj) = softmax(&joint);
        let mut tc = lse_joint - log_nb;
        let mut column = vec![0.0f64; batch];
        for d in 0..latent {
            for (j, c) in column.iter_mut().enumerate() {
                *c = a[j * latent + d];
            }
            let (lse, vj) = softmax(&column);
            tc -= lse - log_nb;
            for j in 0..batch {
                let g = w * (wj[j] - vj[j]);
                if g == 0.0 {
                    continue;
                }
                let diff = z[at(d, i)] as f64 - mu[at(d, j)] as f64;
                let s = diff * inv_var[at(d, j)];
                dz64[at(d, i)] -= g * s;
                denc64[at(d, j)] += g * s;
                denc64[latent * batch + at(d, j)] += g * 0.5 * (diff * s - 1.0);
            }
        }
        total += tc;
    }
    dz.iter_mut().zip(&dz64).for_each(|(o, &v)| *o = v as f32);
    denc.iter_mut().zip(&denc64).for_each(|(o, &v)| *o = v as f32);
    total
}

/// logsumexp of `v`, and the softmax of `v`.
fn softmax(v: &[f64]) -> (f64, Vec<f64>) {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    (m + s.ln(), e.iter().map(|x| x / s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TC by its definition, written out again in f64: log-densities by the Gaussian's formula,
    /// log-sum-exps by plain sums of exponentials.
    fn tc_reference(mu: &[f64], lv: &[f64], z: &[f64], latent: usize, batch: usize, dataset: usize) -> f64 {
        let log_n = |i: usize, j: usize, d: usize| {
            let var = lv[d * batch + j].exp();
            let x = z[d * batch + i] - mu[d * batch + j];
            (-(x * x) / (2.0 * var)).exp() / (2.0 * std::f64::consts::PI * var).sqrt()
        };
        let nb = (dataset * batch) as f64;
        (0..batch)
            .map(|i| {
                let q: f64 = (0..batch).map(|j| (0..latent).map(|d| log_n(i, j, d)).product::<f64>()).sum::<f64>() / nb;
                let marginals: f64 =
                    (0..latent).map(|d| ((0..batch).map(|j| log_n(i, j, d)).sum::<f64>() / nb).ln()).sum();
                q.ln() - marginals
            })
            .sum()
    }

    #[test]
    fn the_estimate_and_its_gradient_match_an_f64_reference() {
        let (latent, batch, dataset) = (3, 5, 100);
        let mut rng = crate::core::Rng::new(4);
        let mut draw = |n: usize, s: f64| (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) * s).collect::<Vec<f64>>();
        let (mu, lv, z) = (draw(latent * batch, 1.0), draw(latent * batch, 0.5), draw(latent * batch, 1.5));
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let enc: Vec<f32> = f32s(&mu).into_iter().chain(f32s(&lv)).collect();
        let (mut dz, mut denc) = (vec![0.0; latent * batch], vec![0.0; 2 * latent * batch]);
        let weight = 2.5;
        let tc = total_correlation(&enc, &f32s(&z), batch, dataset, weight, &mut dz, &mut denc);
        // The same f32-rounded inputs, evaluated in f64.
        let round = |v: &[f64]| v.iter().map(|&x| x as f32 as f64).collect::<Vec<f64>>();
        let (mu, lv, z) = (round(&mu), round(&lv), round(&z));
        let want = tc_reference(&mu, &lv, &z, latent, batch, dataset);
        assert!((tc - want).abs() < 1e-9 * want.abs().max(1.0), "{tc} vs {want}");
        // Central differences of the reference, against weight × the analytic gradient.
        let h = 1e-5;
        let fd = |which: usize, k: usize| {
            let mut p = [mu.clone(), lv.clone(), z.clone()];
            p[which][k] += h;
            let up = tc_reference(&p[0], &p[1], &p[2], latent, batch, dataset);
            p[which][k] -= 2.0 * h;
            let down = tc_reference(&p[0], &p[1], &p[2], latent, batch, dataset);
            weight as f64 * (up - down) / (2.0 * h)
        };
        for k in 0..latent * batch {
            // ∂/∂z through z only; ∂/∂μ and ∂/∂log σ² through a_ijd only (z held fixed).
            for (which, got) in [(2, dz[k]), (0, denc[k]), (1, denc[latent * batch + k])] {
                let want = fd(which, k);
                assert!((got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()), "input {which}, {k}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn independent_dimensions_of_one_point_have_no_total_correlation() {
        // One example: q̂(z) is its own diagonal Gaussian, the product of the q̂(z_d), so the
        // estimate is the constants alone: −log N + D·log N = (D − 1)·log N; no gradient.
        let (latent, dataset) = (4, 10);
        let enc = vec![0.3f32; 2 * latent];
        let z = vec![0.1f32; latent];
        let (mut dz, mut denc) = (vec![0.0; latent], vec![0.0; 2 * latent]);
        let tc = total_correlation(&enc, &z, 1, dataset, 1.0, &mut dz, &mut denc);
        assert!((tc - 3.0 * (dataset as f64).ln()).abs() < 1e-9, "{tc}");
        assert!(dz.iter().chain(&denc).all(|&g| g.abs() < 1e-7));
    }
}
