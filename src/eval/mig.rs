//! The mutual information gap (MIG; Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of
//! Disentanglement in VAEs", §4.1), as disentanglement_lib computes it (Locatello et al. 2019,
//! `mig.py`): each code dimension discretized into 20 equal-width bins over its range, the
//! mutual information I(z_i; v_k) of every dimension i with every factor k from their joint
//! histogram (nats), and per factor the gap between its two most informative dimensions,
//! divided by the factor's entropy H(v_k):
//!
//! MIG = (1/K) Σ_k (I(z_{j(k)}; v_k) − max_{j ≠ j(k)} I(z_j; v_k)) / H(v_k),
//! j(k) = argmax_j I(z_j; v_k).

/// Bins per code dimension (disentanglement_lib's `discretizer_fn` default).
pub const BINS: usize = 20;

/// The bin (1 ..= `bins`) of every value of each code dimension: `codes` is `[n, latent]`,
/// the result `[latent][n]`. Bins split the dimension's range [min, max] into `bins` equal
/// parts, as `np.digitize(x, np.histogram(x, bins)[1][:-1])` does (the maximum falls in the
/// last; a constant dimension, whose histogram numpy spreads over [x − ½, x + ½], in the
/// middle one).
pub fn discretize(codes: &[f32], latent: usize, bins: usize) -> Vec<Vec<usize>> {
    let n = codes.len() / latent.max(1);
    (0..latent)
        .map(|d| {
            let column = (0..n).map(|i| codes[i * latent + d] as f64);
            let (lo, hi) = column.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
            let edges: Vec<f64> = (0..bins).map(|b| lo + (hi - lo) * b as f64 / bins as f64).collect();
            column.map(|v| edges.iter().take_while(|&&e| e <= v).count()).collect()
        })
        .collect()
}

/// The mutual information of two discrete variables observed together, in nats, from their
/// joint counts (scikit-learn's `mutual_info_score`): Σ p(a, b) ln(p(a, b) / (p(a) p(b))).
pub fn mutual_information(a: &[usize], b: &[usize]) -> f64 {
    let n = a.len() as f64;
    let (na, nb) = (a.iter().max().map_or(0, |m| m + 1), b.iter().max().map_or(0, |m| m + 1));
    let mut joint = vec![0u32; na * nb];
    let (mut ca, mut cb) = (vec![0u32; na], vec![0u32; nb]);
    for (&x, &y) in a.iter().zip(b) {
        joint[x * nb + y] += 1;
        ca[x] += 1;
        cb[y] += 1;
    }
    let mut mi = 0.0;
    for x in 0..na {
        for y in 0..nb {
            let c = joint[x * nb + y] as f64;
            if c > 0.0 {
                mi += c / n * (c * n / (ca[x] as f64 * cb[y] as f64)).ln();
            }
        }
    }
    mi.max(0.0)
}

/// The entropy of a discrete variable from its observations, in nats.
pub fn entropy(a: &[usize]) -> f64 {
    mutual_information(a, a)
}

/// MIG and what it is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct Mig {
    /// The mean normalised gap over the factors, in [0, 1].
    pub score: f64,
    /// Each factor's normalised gap.
    pub gaps: Vec<f64>,
    /// I(z_i; v_k), `[latent][factors]`, nats.
    pub information: Vec<Vec<f64>>,
    /// For each factor, the code dimension that informs most about it.
    pub best: Vec<usize>,
}

/// MIG of `codes` (`[n, latent]`) against the factors (`[n, F]` levels), with `bins` bins
/// per code dimension ([`BINS`] in disentanglement_lib).
pub fn mig(codes: &[f32], latent: usize, factors: &[usize], num_factors: usize, bins: usize) -> Mig {
    let z = discretize(codes, latent, bins);
    let v: Vec<Vec<usize>> =
        (0..num_factors).map(|k| factors.chunks_exact(num_factors).map(|f| f[k]).collect()).collect();
    let information: Vec<Vec<f64>> =
        z.iter().map(|zi| v.iter().map(|vk| mutual_information(zi, vk)).collect()).collect();
    let mut gaps = Vec::with_capacity(num_factors);
    let mut best = Vec::with_capacity(num_factors);
    for (k, vk) in v.iter().enumerate() {
        let mut column: Vec<(f64, usize)> = information.iter().enumerate().map(|(i, row)| (row[k], i)).collect();
        column.sort_by(|a, b| b.0.total_cmp(&a.0));
        let second = column.get(1).map_or(0.0, |c| c.0);
        let h = entropy(vk);
        gaps.push(if h > 0.0 { (column[0].0 - second) / h } else { 0.0 });
        best.push(column[0].1);
    }
    let score = gaps.iter().sum::<f64>() / num_factors.max(1) as f64;
    Mig { score, gaps, information, best }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_numpys_digitize_of_the_histogram_edges() {
        // Range 0..10 in 5 bins: edges 0, 2, 4, 6, 8 (10 dropped); 10 lands in bin 5.
        let codes = [0.0, 1.9, 2.0, 5.0, 9.99, 10.0];
        assert_eq!(discretize(&codes, 1, 5), vec![vec![1, 1, 2, 3, 5, 5]]);
        // A constant dimension: numpy's range [x − ½, x + ½], x in the middle bin.
        assert_eq!(discretize(&[3.0, 3.0], 1, 20), vec![vec![11, 11]]);
    }

    #[test]
    fn information_and_entropy_on_known_distributions() {
        // A fair coin: ln 2 nats; a copy of it shares all of it, an independent one none.
        let a = [0, 1, 0, 1, 0, 1, 0, 1];
        let copy = [1, 0, 1, 0, 1, 0, 1, 0];
        let independent = [0, 0, 1, 1, 0, 0, 1, 1];
        assert!((entropy(&a) - std::f64::consts::LN_2).abs() < 1e-12);
        assert!((mutual_information(&a, &copy) - std::f64::consts::LN_2).abs() < 1e-12);
        assert!(mutual_information(&a, &independent).abs() < 1e-12);
    }

    #[test]
    fn a_code_that_copies_each_factor_into_its_own_dimension_scores_one() {
        // Two factors of 4 levels, every combination 5 times; dimension 0 = factor 1,
        // dimension 1 = factor 0, dimension 2 noise-free constant.
        let mut codes = Vec::new();
        let mut factors = Vec::new();
        for rep in 0..5 {
            for a in 0..4 {
                for b in 0..4 {
                    factors.extend([a, b]);
                    codes.extend([b as f32, a as f32, 0.5 + 0.0 * rep as f32]);
                }
            }
        }
        let m = mig(&codes, 3, &factors, 2, BINS);
        assert!((m.score - 1.0).abs() < 1e-12, "{m:?}");
        assert_eq!(m.best, [1, 0]);
        // One dimension carrying both factors (a + 4b; 16 bins, one per combination) scores
        // 1 as well: MIG asks only that no second dimension compete for a factor, not that a
        // dimension serve one factor (Chen et al. 2018 say so; DCI's disentanglement asks it).
        let entangled: Vec<f32> = factors.chunks(2).flat_map(|f| [(f[0] + 4 * f[1]) as f32, 0.0]).collect();
        let e = mig(&entangled, 2, &factors, 2, 16);
        assert!((e.score - 1.0).abs() < 1e-12, "{e:?}");
        // Copied into two dimensions: the gap closes.
        let twice: Vec<f32> = factors.chunks(2).flat_map(|f| [f[0] as f32, f[0] as f32 + 0.1]).collect();
        let t = mig(&twice, 2, &factors, 2, BINS);
        assert!(t.gaps[0].abs() < 1e-12 && t.gaps[1].abs() < 1e-12, "{t:?}");
    }
}
