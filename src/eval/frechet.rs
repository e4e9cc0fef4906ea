//! The Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017's
//! FID, here on our MNIST classifier's features):
//!
//! ```text
//! d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{½})
//! ```
//!
//! Tr((Σ₁Σ₂)^{½}) = Tr((Σ₁^{½} Σ₂ Σ₁^{½})^{½}) = Σ √λᵢ of the symmetric PSD matrix
//! Σ₁^{½} Σ₂ Σ₁^{½}, so two symmetric eigen-decompositions (cyclic Jacobi, f64) suffice.

/// Mean and covariance (divisor n − 1) of `n` rows of dimension `d`, in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    /// Row-major `[d, d]`.
    pub cov: Vec<f64>,
}

impl Gaussian {
    pub fn fit(rows: &[f32], d: usize) -> Gaussian {
        let n = rows.len() / d;
        assert!(n >= 2, "need at least two feature vectors");
        let mut mean = vec![0.0f64; d];
        for r in rows.chunks_exact(d) {
            mean.iter_mut().zip(r).for_each(|(m, &v)| *m += v as f64);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0f64; d * d];
        let mut centred = vec![0.0f64; d];
        for r in rows.chunks_exact(d) {
            centred.iter_mut().zip(r).zip(&mean).for_each(|((c, &v), m)| *c = v as f64 - m);
            for i in 0..d {
                let ci = centred[i];
                if ci == 0.0 {
                    continue;
                }
                for j in i..d {
                    cov[i * d + j] += ci * centred[j];
                }
            }
        }
        for i in 0..d {
            for j in i..d {
                let v = cov[i * d + j] / (n as f64 - 1.0);
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
        }
        Gaussian { mean, cov }
    }
}

/// Eigenvalues and eigenvectors (columns of the returned row-major `[d, d]` matrix) of a
/// symmetric matrix, by cyclic Jacobi rotations (Golub & Van Loan, §8.5) to machine precision.
pub fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0f64; d * d];
    (0..d).for_each(|i| v[i * d + i] = 1.0);
    let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j].powi(2))
            .sum();
        if off.sqrt() <= 1e-15 * norm.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() <= f64::MIN_POSITIVE {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

/// Square root of a symmetric PSD matrix (negative eigenvalues from rounding clamp to 0).
pub fn sqrt_psd(a: &[f64], d: usize) -> Vec<f64> {
    let (vals, vecs) = symmetric_eigen(a, d);
    let roots: Vec<f64> = vals.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let mut out = vec![0.0f64; d * d];
    for i in 0..d {
        for j in 0..d {
            out[i * d + j] = (0..d).map(|k| vecs[i * d + k] * roots[k] * vecs[j * d + k]).sum();
        }
    }
    out
}

fn matmul_sq(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut c = vec![0.0f64; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            for j in 0..d {
                c[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    c
}

/// The Fréchet distance d² between two fitted Gaussians.
pub fn frechet_distance(g1: &Gaussian, g2: &Gaussian) -> f64 {
    let d = g1.mean.len();
    let mean_term: f64 = g1.mean.iter().zip(&g2.mean).map(|(a, b)| (a - b).powi(2)).sum();
    let s1 = sqrt_psd(&g1.cov, d);
    let mut m = matmul_sq(&matmul_sq(&s1, &g2.cov, d), &s1, d);
    // Symmetrise away rounding before the eigen-decomposition.
    for i in 0..d {
        for j in i + 1..d {
            let v = 0.5 * (m[i * d + j] + m[j * d + i]);
            m[i * d + j] = v;
            m[j * d + i] = v;
        }
    }
    let (vals, _) = symmetric_eigen(&m, d);
    let tr_sqrt: f64 = vals.iter().map(|&l| l.max(0.0).sqrt()).sum();
    let tr = |c: &[f64]| (0..d).map(|i| c[i * d + i]).sum::<f64>();
    (mean_term + tr(&g1.cov) + tr(&g2.cov) - 2.0 * tr_sqrt).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Rng;

    #[test]
    fn jacobi_recovers_a_known_spectrum() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (mut vals, _) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        vals.sort_by(f64::total_cmp);
        assert!((vals[0] - 1.0).abs() < 1e-12 && (vals[1] - 3.0).abs() < 1e-12);
        let s = sqrt_psd(&[4.0, 0.0, 0.0, 9.0], 2);
        assert!((s[0] - 2.0).abs() < 1e-12 && (s[3] - 3.0).abs() < 1e-12 && s[1].abs() < 1e-12);
    }

    #[test]
    fn a_set_is_at_distance_zero_from_itself() {
        let mut rng = Rng::new(5);
        let mut x = vec![0.0f32; 500 * 6];
        rng.fill_normal(&mut x);
        let g = Gaussian::fit(&x, 6);
        assert!(frechet_distance(&g, &g) < 1e-9);
    }

    #[test]
    fn shifted_and_scaled_gaussians_have_the_analytic_distance() {
        // N(0, I) vs N(m, 4I) in d dims: ‖m‖² + d·(1 + 4 − 2·√(1·4)) = ‖m‖² + d.
        let d = 4;
        let g1 = Gaussian { mean: vec![0.0; d], cov: (0..d * d).map(|i| f64::from(i % (d + 1) == 0)).collect() };
        let g2 = Gaussian { mean: vec![1.0, 2.0, 0.0, -1.0], cov: g1.cov.iter().map(|v| 4.0 * v).collect() };
        assert!((frechet_distance(&g1, &g2) - (6.0 + 4.0)).abs() < 1e-9);
        // A correlated covariance against itself shifted by m: exactly ‖m‖².
        let c = vec![2.0, 0.5, 0.0, 0.5, 1.0, 0.3, 0.0, 0.3, 1.5];
        let a = Gaussian { mean: vec![0.0; 3], cov: c.clone() };
        let b = Gaussian { mean: vec![3.0, 0.0, 4.0], cov: c };
        assert!((frechet_distance(&a, &b) - 25.0).abs() < 1e-9);
        // From samples the estimate approaches the analytic value.
        let mut rng = Rng::new(9);
        let mut x = vec![0.0f32; 20_000 * 2];
        let mut y = vec![0.0f32; 20_000 * 2];
        rng.fill_normal(&mut x);
        rng.fill_normal(&mut y);
        y.iter_mut().enumerate().for_each(|(i, v)| *v = 2.0 * *v + if i % 2 == 0 { 3.0 } else { 0.0 });
        let fd = frechet_distance(&Gaussian::fit(&x, 2), &Gaussian::fit(&y, 2));
        assert!((fd - (9.0 + 2.0)).abs() < 0.3, "{fd}");
    }
}
