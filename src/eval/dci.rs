//! DCI (Eastwood & Williams 2018, "A framework for the quantitative evaluation of
//! disentangled representations", §3), as disentanglement_lib's `dci.py` computes it: for each
//! factor, gradient-boosted trees ([`super::gbt`]) predict its level from the codes (means of
//! q(z|x), one image per point); their feature importances form R \[codes, factors\]. Then
//!
//! ```text
//! disentanglement  Σ_i ρ_i (1 − H_K(P_i·)),   P_ij = R_ij / Σ_k R_ik,  ρ_i = Σ_j R_ij / Σ R
//! completeness     Σ_j ρ̃_j (1 − H_D(P̃_·j)),  P̃_ij = R_ij / Σ_k R_kj,  ρ̃_j = Σ_i R_ij / Σ R
//! informativeness  the trees' accuracy on held-out points, averaged over the factors
//! ```
//!
//! with entropies in base K (factors) and D (codes), 1e-11 added to every R_ij first, as there.

use super::gbt::Boosted;

/// DCI's three figures, with the importance matrix they come from.
#[derive(Clone, Debug, PartialEq)]
pub struct Dci {
    pub disentanglement: f64,
    pub completeness: f64,
    /// Mean accuracy over the factors on the held-out points, and on the fitting points.
    pub informativeness: f64,
    pub informativeness_train: f64,
    /// R \[codes\]\[factors\].
    pub importance: Vec<Vec<f64>>,
}

/// Entropy of `p` (normalised here) in base `base`.
fn entropy(p: &[f64], base: usize) -> f64 {
    let total: f64 = p.iter().sum();
    -p.iter().map(|&v| v / total).filter(|&q| q > 0.0).map(|q| q * q.ln()).sum::<f64>() / (base as f64).ln()
}

/// DCI from an importance matrix `r` \[codes\]\[factors\] (accuracies filled in by the caller).
pub fn from_importance(r: &[Vec<f64>]) -> (f64, f64) {
    let (d, k) = (r.len(), r.first().map_or(0, Vec::len));
    let r: Vec<Vec<f64>> = r.iter().map(|row| row.iter().map(|v| v + 1e-11).collect()).collect();
    let total: f64 = r.iter().flatten().sum();
    let disentanglement =
        if k < 2 { 1.0 } else { r.iter().map(|row| row.iter().sum::<f64>() / total * (1.0 - entropy(row, k))).sum() };
    let completeness = if d < 2 {
        1.0
    } else {
        (0..k)
            .map(|j| {
                let column: Vec<f64> = r.iter().map(|row| row[j]).collect();
                column.iter().sum::<f64>() / total * (1.0 - entropy(&column, d))
            })
            .sum()
    };
    (disentanglement, completeness)
}

/// DCI of codes `train` / `test` \[n, codes\] against factor levels `train_y` / `test_y`
/// \[n, factors\] with `levels[j]` values each.
pub fn dci(train: &[f32], train_y: &[usize], test: &[f32], test_y: &[usize], codes: usize, levels: &[usize]) -> Dci {
    let f = levels.len();
    let mut importance = vec![vec![0.0; f]; codes];
    let (mut acc, mut acc_train) = (0.0, 0.0);
    for (j, &classes) in levels.iter().enumerate() {
        let y: Vec<usize> = train_y.chunks_exact(f).map(|v| v[j]).collect();
        let yt: Vec<usize> = test_y.chunks_exact(f).map(|v| v[j]).collect();
        let model = Boosted::fit(train, codes, &y, classes);
        for (i, &v) in model.importances.iter().enumerate() {
            importance[i][j] = v.abs();
        }
        acc += model.accuracy(test, &yt);
        acc_train += model.accuracy(train, &y);
    }
    let (disentanglement, completeness) = from_importance(&importance);
    Dci {
        disentanglement,
        completeness,
        informativeness: acc / f as f64,
        informativeness_train: acc_train / f as f64,
        importance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A diagonal importance matrix is perfectly disentangled and complete; one code carrying
    /// every factor equally is neither (its entropy is maximal: D = 0), and is complete for
    /// each factor (C = 1).
    #[test]
    fn the_extreme_matrices_give_zero_and_one() {
        let (d, c) = from_importance(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!((d - 1.0).abs() < 1e-9 && (c - 1.0).abs() < 1e-9, "{d} {c}");
        let (d, c) = from_importance(&[vec![1.0, 1.0], vec![0.0, 0.0]]);
        assert!(d.abs() < 1e-9 && (c - 1.0).abs() < 1e-9, "{d} {c}");
        // Two codes sharing one factor equally: disentangled, C = 1 − H₂(½, ½) = 0 for it.
        let (d, c) = from_importance(&[vec![1.0, 0.0], vec![1.0, 0.0]]);
        assert!((d - 1.0).abs() < 1e-9 && c.abs() < 1e-9, "{d} {c}");
    }

    /// A worked case: R = [[3, 1], [0, 2]]. ρ = (4/6, 2/6); code 0's P = (¾, ¼), H₂ =
    /// 0.811278; code 1's is (0, 1), H₂ = 0. D = 4/6·(1 − 0.811278) + 2/6·1 = 0.459148.
    /// Factor 0's column (1, 0): C₀ = 1; factor 1's (⅓, ⅔): H₂ = 0.918296; ρ̃ = (3/6, 3/6);
    /// C = ½·1 + ½·0.081704 = 0.540852.
    #[test]
    fn a_worked_matrix() {
        let (d, c) = from_importance(&[vec![3.0, 1.0], vec![0.0, 2.0]]);
        assert!((d - 0.459148).abs() < 1e-5, "{d}");
        assert!((c - 0.540852).abs() < 1e-5, "{c}");
    }

    /// Codes that are the factors themselves (plus an idle code) give D, C and I near 1.
    #[test]
    fn codes_equal_to_the_factors_score_near_one() {
        let levels = [3usize, 4];
        let mut rng = crate::core::Rng::new(2);
        let mut make = |n: usize| {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let v = [rng.below(3) as usize, rng.below(4) as usize];
                x.extend([v[0] as f32, v[1] as f32, rng.uniform_f32()]);
                y.extend(v);
            }
            (x, y)
        };
        let (train, train_y) = make(300);
        let (test, test_y) = make(100);
        let r = dci(&train, &train_y, &test, &test_y, 3, &levels);
        assert!(r.informativeness == 1.0, "{r:?}");
        assert!(r.disentanglement > 0.95 && r.completeness > 0.9, "{r:?}");
    }
}
