//! Multinomial logistic regression with an L2 penalty, the classifier of the β-VAE score
//! (Higgins et al. 2017; disentanglement_lib uses scikit-learn's `LogisticRegression()` with
//! its defaults): minimises ½‖W‖² + C Σ_i −log softmax(W x_i + b)_{y_i}, the intercepts b
//! unpenalised, by Newton's method (the problem is small: features × classes parameters).
//! scikit-learn stops L-BFGS after 100 iterations; this runs to convergence.

/// A fitted classifier: `weights` `[classes, features]`, `bias` `[classes]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
    pub features: usize,
    pub classes: usize,
}

impl Logistic {
    /// Fits `x` (`[n, features]`) to labels `y` (each below `classes`) with penalty 1/`c`.
    pub fn fit(x: &[f64], y: &[usize], features: usize, classes: usize, c: f64) -> Logistic {
        let mut model =
            Logistic { weights: vec![0.0; classes * features], bias: vec![0.0; classes], features, classes };
        let dim = classes * (features + 1);
        let mut loss = model.loss(x, y, c);
        for _ in 0..100 {
            let (grad, hess) = model.derivatives(x, y, c);
            if grad.iter().map(|g| g.abs()).fold(0.0, f64::max) < 1e-9 * (1.0 + loss) {
                break;
            }
            let step = solve(hess, grad.clone(), dim);
            // Backtracking on the Newton direction (the loss is convex).
            let mut t = 1.0;
            loop {
                let trial = model.moved(&step, -t);
                let l = trial.loss(x, y, c);
                if l <= loss - 1e-4 * t * grad.iter().zip(&step).map(|(g, s)| g * s).sum::<f64>() || t < 1e-10 {
                    model = trial;
                    loss = l;
                    break;
                }
                t *= 0.5;
            }
        }
        model
    }

    /// Class scores of one example.
    fn scores(&self, x: &[f64]) -> Vec<f64> {
        (0..self.classes)
            .map(|k| {
                self.bias[k]
                    + self.weights[k * self.features..(k + 1) * self.features]
                        .iter()
                        .zip(x)
                        .map(|(w, v)| w * v)
                        .sum::<f64>()
            })
            .collect()
    }

    /// The most probable class of each example of `x`.
    pub fn predict(&self, x: &[f64]) -> Vec<usize> {
        x.chunks_exact(self.features)
            .map(|xi| {
                let s = self.scores(xi);
                (0..self.classes).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap_or(0)
            })
            .collect()
    }

    /// The fraction of `x` classified as `y`.
    pub fn accuracy(&self, x: &[f64], y: &[usize]) -> f64 {
        let right = self.predict(x).iter().zip(y).filter(|(p, t)| p == t).count();
        right as f64 / y.len().max(1) as f64
    }

    fn probabilities(&self, xi: &[f64]) -> Vec<f64> {
        let s = self.scores(xi);
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
        let z: f64 = e.iter().sum();
        e.iter().map(|v| v / z).collect()
    }

    fn loss(&self, x: &[f64], y: &[usize], c: f64) -> f64 {
        let penalty = 0.5 * self.weights.iter().map(|w| w * w).sum::<f64>();
        let nll: f64 =
            x.chunks_exact(self.features).zip(y).map(|(xi, &yi)| -self.probabilities(xi)[yi].max(1e-300).ln()).sum();
        penalty + c * nll
    }

    /// Gradient and Hessian in the order (class 0: weights, bias), (class 1: …), ….
    fn derivatives(&self, x: &[f64], y: &[usize], c: f64) -> (Vec<f64>, Vec<f64>) {
        let (f, k) = (self.features + 1, self.classes);
        let dim = k * f;
        let mut grad = vec![0.0; dim];
        let mut hess = vec![0.0; dim * dim];
        for (xi, &yi) in x.chunks_exact(self.features).zip(y) {
            let p = self.probabilities(xi);
            let xt: Vec<f64> = xi.iter().copied().chain([1.0]).collect();
            for a in 0..k {
                let r = p[a] - f64::from(a == yi);
                for (u, &xu) in xt.iter().enumerate() {
                    grad[a * f + u] += c * r * xu;
                }
                for b in 0..k {
                    let w = c * p[a] * (f64::from(a == b) - p[b]);
                    for (u, &xu) in xt.iter().enumerate() {
                        let row = (a * f + u) * dim + b * f;
                        for (v, &xv) in xt.iter().enumerate() {
                            hess[row + v] += w * xu * xv;
                        }
                    }
                }
            }
        }
        for a in 0..k {
            for u in 0..f {
                let i = a * f + u;
                if u < self.features {
                    grad[i] += self.weights[a * self.features + u];
                    hess[i * dim + i] += 1.0;
                } else {
                    // The intercepts' shared shift changes nothing: a tiny ridge keeps the
                    // system solvable without moving the optimum's predictions.
                    hess[i * dim + i] += 1e-9;
                }
            }
        }
        (grad, hess)
    }

    /// This model moved by `t · step` (same order as [`Logistic::derivatives`]).
    fn moved(&self, step: &[f64], t: f64) -> Logistic {
        let f = self.features + 1;
        let mut m = self.clone();
        for a in 0..self.classes {
            for u in 0..self.features {
                m.weights[a * self.features + u] += t * step[a * f + u];
            }
            m.bias[a] += t * step[a * f + self.features];
        }
        m
    }
}

/// Solves `a x = b` (`a` `[n, n]`) by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Vec<f64> {
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs())).unwrap_or(col);
        if pivot != col {
            for j in 0..n {
                a.swap(col * n + j, pivot * n + j);
            }
            b.swap(col, pivot);
        }
        let d = a[col * n + col];
        if d.abs() < 1e-300 {
            continue;
        }
        for row in col + 1..n {
            let factor = a[row * n + col] / d;
            if factor != 0.0 {
                for j in col..n {
                    a[row * n + j] -= factor * a[col * n + j];
                }
                b[row] -= factor * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|j| a[row * n + j] * x[j]).sum();
        let d = a[row * n + row];
        x[row] = if d.abs() < 1e-300 { 0.0 } else { (b[row] - s) / d };
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_classes_are_learned_and_the_gradient_vanishes_at_the_optimum() {
        // Three classes, each the feature that is largest.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..90 {
            let k = i % 3;
            let mut row = vec![0.1 * ((i * 7) % 5) as f64; 3];
            row[k] += 2.0;
            x.extend(row);
            y.push(k);
        }
        let m = Logistic::fit(&x, &y, 3, 3, 1.0);
        assert_eq!(m.accuracy(&x, &y), 1.0);
        let (grad, _) = m.derivatives(&x, &y, 1.0);
        assert!(grad.iter().all(|g| g.abs() < 1e-6), "{grad:?}");
    }

    #[test]
    fn one_feature_two_classes_matches_the_closed_form_optimum() {
        // Labels independent of a zero feature: the weight stays 0 (penalised, no signal) and
        // the intercepts give p(class 1) = 3/4, the class frequency: b1 − b0 = ln 3.
        let x = vec![0.0; 8];
        let y = [1, 1, 1, 0, 1, 1, 1, 0];
        let m = Logistic::fit(&x, &y, 1, 2, 1.0);
        assert!(m.weights.iter().all(|w| w.abs() < 1e-9));
        assert!(((m.bias[1] - m.bias[0]) - 3f64.ln()).abs() < 1e-6, "{:?}", m.bias);
    }
}
