//! Gradient-boosted decision trees for classification, as scikit-learn's
//! `GradientBoostingClassifier()` with its defaults fits them (Friedman 2001, Algorithm 6,
//! "L_K-TreeBoost"), for DCI's importance matrix ([`super::dci`]): 100 stages of one
//! depth-3 regression tree per class, fitted to the residuals y_k − p_k of the softmax of the
//! raw scores, learning rate 0.1, each leaf's value one Newton step
//! γ = (K − 1)/K · Σ r / Σ p(1 − p); raw scores start at the log class priors. Two classes
//! take scikit-learn's binomial route instead: one tree per stage on y − σ(raw), raw starting
//! at the log-odds, γ = Σ r / Σ p(1 − p). Only the classes present in the sample exist for
//! the trees, as in scikit-learn. A split minimises the squared error of the residuals
//! (`grow`); a feature's importance is the squared error its splits remove, summed over all
//! trees and normalised to sum 1 (`feature_importances_`). `dci_agrees_with_scikit_learn` in
//! tests/disentanglement.rs checks all of it against scikit-learn 1.9.1.

/// Boosting stages (scikit-learn's `n_estimators`).
pub const STAGES: usize = 100;
/// Shrinkage of each stage (`learning_rate`).
pub const LEARNING_RATE: f64 = 0.1;
/// Depth of each tree (`max_depth`).
pub const DEPTH: usize = 3;

#[derive(Clone, Debug)]
enum Node {
    Split { feature: usize, threshold: f64, left: usize, right: usize },
    Leaf(f64),
}

/// A fitted classifier: for each stage, one tree per class (one in all for two classes).
#[derive(Clone, Debug)]
pub struct Boosted {
    /// The labels present in the fitting sample, in order (scikit-learn's `classes_`): the
    /// trees know only these.
    present: Vec<usize>,
    features: usize,
    init: Vec<f64>,
    trees: Vec<Vec<Node>>,
    /// Each feature's squared error removed, summed over all trees, normalised to sum 1 (or
    /// all zero when no tree split).
    pub importances: Vec<f64>,
}

/// One node's residual sums while a level is split.
#[derive(Clone, Copy, Default)]
struct Stats {
    n: f64,
    sum: f64,
    sq: f64,
}

impl Stats {
    /// n × the variance of the node's targets (scikit-learn's `weighted_n · impurity`).
    fn weighted_impurity(&self) -> f64 {
        self.n * (self.sq / self.n - (self.sum / self.n).powi(2))
    }
}

/// scikit-learn's `FEATURE_THRESHOLD`: values closer than this are not split between.
const FEATURE_THRESHOLD: f64 = 1e-7;

/// Clipped to \[ε, 1 − ε\] as scikit-learn's intercept-only fit does.
fn clip_probability(p: f64) -> f64 {
    p.clamp(f64::EPSILON, 1.0 - f64::EPSILON)
}

impl Boosted {
    /// Fits `x` \[n, features\] (row-major) to `y` \[n\] in `0..classes`.
    ///
    /// # Panics
    /// If the shapes disagree or a label is out of range.
    pub fn fit(x: &[f32], features: usize, y: &[usize], classes: usize) -> Boosted {
        let n = y.len();
        assert!(x.len() == n * features && n > 0 && y.iter().all(|&c| c < classes), "bad shapes or labels");
        let col = |f: usize, i: usize| x[i * features + f];
        let mut counts = vec![0usize; classes];
        y.iter().for_each(|&c| counts[c] += 1);
        let present: Vec<usize> = (0..classes).filter(|&c| counts[c] > 0).collect();
        let k = present.len();
        let mut index = vec![0; classes];
        present.iter().enumerate().for_each(|(j, &c)| index[c] = j);
        let y: Vec<usize> = y.iter().map(|&c| index[c]).collect();
        let prior = |j: usize| clip_probability(counts[present[j]] as f64 / n as f64);
        // Raw scores: K log priors (multinomial deviance, softmax), or for two classes one
        // log-odds of the second (binomial deviance, one tree per stage); one class, no trees.
        let (init, per_stage): (Vec<f64>, usize) = match k {
            1 => (vec![], 0),
            2 => (vec![(prior(1) / (1.0 - prior(1))).ln()], 1),
            _ => ((0..k).map(|j| prior(j).ln()).collect(), k),
        };
        let mut importances = vec![0.0; features];
        if per_stage == 0 {
            return Boosted { present, features, init, trees: Vec::new(), importances };
        }
        let mut trees = Vec::new();
        // Each feature's sample order, sorted once.
        let order: Vec<Vec<u32>> = (0..features)
            .map(|f| {
                let mut o: Vec<u32> = (0..n as u32).collect();
                o.sort_by(|&a, &b| col(f, a as usize).total_cmp(&col(f, b as usize)));
                o
            })
            .collect();
        let mut raw: Vec<f64> = (0..n).flat_map(|_| init.iter().copied()).collect();
        let mut p = vec![0.0f64; n * per_stage];
        let (mut residual, mut leaf_of) = (vec![0.0f64; n], vec![0usize; n]);
        // Friedman's (K − 1)/K on the multinomial leaves; none on the binomial ones.
        let shrink = if per_stage == 1 { 1.0 } else { (k as f64 - 1.0) / k as f64 };
        for _ in 0..STAGES {
            for (row, q) in raw.chunks_exact(per_stage).zip(p.chunks_exact_mut(per_stage)) {
                if per_stage == 1 {
                    q[0] = 1.0 / (1.0 + (-row[0]).exp());
                } else {
                    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
                    q.iter_mut().zip(row).for_each(|(q, v)| *q = (v - m).exp() / z);
                }
            }
            for c in 0..per_stage {
                // The class this tree scores: the second of two, else its own.
                let class = if per_stage == 1 { 1 } else { c };
                for i in 0..n {
                    residual[i] = f64::from(u8::from(y[i] == class)) - p[i * per_stage + c];
                }
                let (mut tree, gains) = grow(&order, x, features, &residual, &mut leaf_of);
                // Newton leaves: shrink · Σ r / Σ p(1 − p) over each leaf's samples.
                let mut num = vec![0.0f64; tree.len()];
                let mut den = vec![0.0f64; tree.len()];
                for i in 0..n {
                    let q = p[i * per_stage + c];
                    num[leaf_of[i]] += residual[i];
                    den[leaf_of[i]] += q * (1.0 - q);
                }
                for (j, node) in tree.iter_mut().enumerate() {
                    if let Node::Leaf(v) = node {
                        *v = if den[j].abs() < 1e-150 { 0.0 } else { shrink * num[j] / den[j] };
                    }
                }
                for i in 0..n {
                    if let Node::Leaf(v) = tree[leaf_of[i]] {
                        raw[i * per_stage + c] += LEARNING_RATE * v;
                    }
                }
                importances.iter_mut().zip(&gains).for_each(|(s, g)| *s += g);
                trees.push(tree);
            }
        }
        let total: f64 = importances.iter().sum();
        if total > 0.0 {
            importances.iter_mut().for_each(|v| *v /= total);
        }
        Boosted { present, features, init, trees, importances }
    }

    /// The most likely class of each row of `x` \[n, features\] (the first on a tie).
    pub fn predict(&self, x: &[f32]) -> Vec<usize> {
        let per_stage = self.init.len();
        x.chunks_exact(self.features)
            .map(|row| {
                let mut raw = self.init.clone();
                for (t, tree) in self.trees.iter().enumerate() {
                    let mut j = 0;
                    let v = loop {
                        match tree[j] {
                            Node::Split { feature, threshold, left, right } => {
                                j = if f64::from(row[feature]) <= threshold { left } else { right }
                            }
                            Node::Leaf(v) => break v,
                        }
                    };
                    raw[t % per_stage] += LEARNING_RATE * v;
                }
                let j = match per_stage {
                    0 => 0,
                    1 => usize::from(raw[0] > 0.0),
                    _ => (0..per_stage).max_by(|&a, &b| raw[a].total_cmp(&raw[b]).then(b.cmp(&a))).unwrap_or(0),
                };
                self.present[j]
            })
            .collect()
    }

    /// The fraction of `y` that [`Boosted::predict`] gets right.
    pub fn accuracy(&self, x: &[f32], y: &[usize]) -> f64 {
        let hits = self.predict(x).iter().zip(y).filter(|(a, b)| a == b).count();
        hits as f64 / y.len().max(1) as f64
    }
}

/// Grows one regression tree of depth [`DEPTH`] on `target` as scikit-learn's
/// `DecisionTreeRegressor(criterion="friedman_mse", max_depth=3)` does, level by level: a node
/// whose variance is within f64's ε of zero stays a leaf; otherwise it splits where Friedman's
/// improvement (Σ_l·n_r − Σ_r·n_l)² / (n_l·n_r) is largest (the first such place), halfway
/// between two values at least [`FEATURE_THRESHOLD`] apart. Returns its nodes (leaves' values
/// unset) and the squared error each feature's splits removed (n·var − n_l·var_l −
/// n_r·var_r), and leaves each sample's leaf in `leaf_of`.
fn grow(
    order: &[Vec<u32>],
    x: &[f32],
    features: usize,
    target: &[f64],
    leaf_of: &mut [usize],
) -> (Vec<Node>, Vec<f64>) {
    let n = target.len();
    let mut nodes = vec![Node::Leaf(0.0)];
    let mut gains = vec![0.0; features];
    leaf_of.iter_mut().for_each(|l| *l = 0);
    let mut frontier = vec![0usize]; // node ids splittable at this level
    for _ in 0..DEPTH {
        // Node id → its slot in this level's arrays.
        let slot = |id: usize| frontier.iter().position(|&f| f == id);
        let mut total = vec![Stats::default(); frontier.len()];
        for i in 0..n {
            if let Some(s) = slot(leaf_of[i]) {
                total[s].n += 1.0;
                total[s].sum += target[i];
                total[s].sq += target[i] * target[i];
            }
        }
        let splittable: Vec<bool> = total.iter().map(|t| t.weighted_impurity() / t.n > f64::EPSILON).collect();
        let slots: Vec<Option<usize>> = (0..nodes.len()).map(|id| slot(id).filter(|&s| splittable[s])).collect();
        // Best (proxy improvement, feature, threshold, left's stats) per slot.
        let mut best: Vec<Option<(f64, usize, f64, Stats)>> = vec![None; frontier.len()];
        for (f, o) in order.iter().enumerate() {
            let mut left = vec![Stats::default(); frontier.len()];
            let mut last: Vec<Option<f32>> = vec![None; frontier.len()];
            for &i in o {
                let i = i as usize;
                let Some(s) = slots[leaf_of[i]] else { continue };
                let v = x[i * features + f];
                if let Some(prev) = last[s].filter(|&p| f64::from(v) > f64::from(p) + FEATURE_THRESHOLD) {
                    let (l, t) = (left[s], total[s]);
                    let (nr, sr) = (t.n - l.n, t.sum - l.sum);
                    let diff = l.sum * nr - sr * l.n;
                    let proxy = diff * diff / (l.n * nr);
                    if best[s].is_none_or(|(g, ..)| proxy > g) {
                        let mut threshold = f64::from(prev) / 2.0 + f64::from(v) / 2.0;
                        if threshold == f64::from(v) || threshold.is_infinite() {
                            threshold = f64::from(prev);
                        }
                        best[s] = Some((proxy, f, threshold, l));
                    }
                }
                left[s].n += 1.0;
                left[s].sum += target[i];
                left[s].sq += target[i] * target[i];
                last[s] = Some(v);
            }
        }
        let mut next = Vec::new();
        for (s, &id) in frontier.iter().enumerate() {
            let Some((_, feature, threshold, l)) = best[s] else { continue };
            let t = total[s];
            let r = Stats { n: t.n - l.n, sum: t.sum - l.sum, sq: t.sq - l.sq };
            let (left, right) = (nodes.len(), nodes.len() + 1);
            nodes.push(Node::Leaf(0.0));
            nodes.push(Node::Leaf(0.0));
            nodes[id] = Node::Split { feature, threshold, left, right };
            gains[feature] += t.weighted_impurity() - l.weighted_impurity() - r.weighted_impurity();
            next.extend([left, right]);
        }
        for i in 0..n {
            if let Node::Split { feature, threshold, left, right } = nodes[leaf_of[i]] {
                leaf_of[i] = if f64::from(x[i * features + feature]) <= threshold { left } else { right };
            }
        }
        frontier = next;
        if frontier.is_empty() {
            break;
        }
    }
    (nodes, gains)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels that are one feature's thresholds: that feature carries all the importance, and
    /// the trees classify held-out points perfectly.
    #[test]
    fn the_informative_feature_takes_the_importance() {
        let (n, features) = (600, 3);
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut rng = crate::core::Rng::new(5);
        for _ in 0..n {
            let row: Vec<f32> = (0..features).map(|_| rng.uniform_f32()).collect();
            y.push(((row[1] * 4.0) as usize).min(3));
            x.extend(row);
        }
        let model = Boosted::fit(&x[..400 * features], features, &y[..400], 4);
        assert!(model.importances[1] > 0.95, "{:?}", model.importances);
        assert!((model.importances.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(model.accuracy(&x[..400 * features], &y[..400]) == 1.0);
        assert!(model.accuracy(&x[400 * features..], &y[400..]) > 0.97);
    }

    /// One split of a two-class sample: the tree's threshold is the midpoint between the two
    /// groups, and the first stage's leaves are the Newton step of the residuals.
    #[test]
    fn a_stump_splits_at_the_midpoint() {
        let x = [0.0f32, 1.0, 2.0, 3.0];
        let order = vec![vec![0u32, 1, 2, 3]];
        let target = [0.5, 0.5, -0.5, -0.5];
        let mut leaf_of = [0usize; 4];
        let (nodes, gains) = grow(&order, &x, 1, &target, &mut leaf_of);
        assert!(matches!(nodes[0], Node::Split { feature: 0, threshold, .. } if threshold == 1.5));
        // Squared error removed: 4·0.25 − 0 = 1 (n_l·n_r/n·(ȳ_l − ȳ_r)² = 2·2/4·1).
        assert_eq!(gains, vec![1.0]);
        assert_eq!(leaf_of[0], leaf_of[1]);
        assert_ne!(leaf_of[1], leaf_of[2]);
    }

    /// Classes absent from the sample do not exist for the trees (as scikit-learn's
    /// `classes_`): labels 1 and 3 of 5 are fitted as two classes and predicted by their own
    /// names; a factor with one level needs no tree and has no important feature.
    #[test]
    fn only_the_classes_present_are_fitted() {
        let x: Vec<f32> = (0..40).map(|i| i as f32).collect();
        let y: Vec<usize> = (0..40).map(|i| if i < 20 { 1 } else { 3 }).collect();
        let model = Boosted::fit(&x, 1, &y, 5);
        assert_eq!(model.trees.len(), STAGES, "one binomial tree per stage");
        assert_eq!(model.predict(&[0.0, 39.0]), vec![1, 3]);
        assert_eq!(model.importances, vec![1.0]);
        let single = Boosted::fit(&x, 1, &[2; 40], 5);
        assert!(single.trees.is_empty());
        assert_eq!(single.importances, vec![0.0]);
        assert_eq!(single.accuracy(&x, &[2; 40]), 1.0);
    }
}
