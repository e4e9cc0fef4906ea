//! The built-in MNIST classifier: an MLP on the same compute core, used to score samples
//! (label accuracy of a conditional model's digits, a Fréchet distance of penultimate-layer
//! features, the diversity of predicted labels).
//!
//! ```text
//! x [P, B] → h1 = relu(W1·x + b1) [H1, B] → h2 = relu(W2·h1 + b2) [H2, B]  (the features)
//!          → logits = W3·h2 + b3 [10, B],  loss = Σ_b −log softmax(logits)_{y_b}
//! ```

use crate::core::activations::Activation;
use crate::core::activations::{activation_backward, bias_activation};
use crate::core::kernels::{gather_images, row_sums};
use crate::core::{Mat, Pool, Purpose, Rng, matmul};
use crate::data::{NUM_CLASSES, Split};
use crate::nn::{Layer, LayoutBuilder};
use serde::{Deserialize, Serialize};

fn one() -> usize {
    1
}

fn ten() -> usize {
    NUM_CLASSES
}

/// Architecture of the classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    pub image_rows: usize,
    pub image_cols: usize,
    #[serde(default = "one")]
    pub channels: usize,
    /// Outputs: the dataset's classes (10 for classifiers saved before this was recorded).
    #[serde(default = "ten")]
    pub classes: usize,
    /// Widths of the two hidden layers; the second is the feature dimension.
    pub hidden: [usize; 2],
}

impl ClassifierConfig {
    pub fn mnist() -> ClassifierConfig {
        ClassifierConfig { image_rows: 28, image_cols: 28, channels: 1, classes: NUM_CLASSES, hidden: [1024, 256] }
    }

    /// The classifier for images of `shape` in `classes` classes.
    pub fn for_data(shape: crate::core::Shape, classes: usize) -> ClassifierConfig {
        ClassifierConfig {
            image_rows: shape.height,
            image_cols: shape.width,
            channels: shape.channels,
            classes,
            ..Self::mnist()
        }
    }

    pub fn shape(&self) -> crate::core::Shape {
        crate::core::Shape::new(self.channels, self.image_rows, self.image_cols)
    }

    pub fn pixels(&self) -> usize {
        self.shape().size()
    }

    /// Dimension of the penultimate-layer features.
    pub fn features(&self) -> usize {
        self.hidden[1]
    }

    /// `fc1`, `fc2`, `fc3` with PyTorch's names and shapes, and the tensor list.
    pub fn layout(&self) -> (Vec<Layer>, Vec<crate::model::TensorInfo>, usize) {
        let dims = [self.pixels(), self.hidden[0], self.hidden[1], self.classes];
        let names = ["fc1", "fc2", "fc3"];
        let mut b = LayoutBuilder::default();
        let layers = names.into_iter().enumerate().map(|(j, n)| b.linear(n, dims[j], dims[j + 1])).collect();
        (layers, b.tensors, b.len)
    }
}

/// A classifier with its parameters.
#[derive(Clone, Debug)]
pub struct Classifier {
    pub config: ClassifierConfig,
    pub layers: Vec<Layer>,
    pub params: Vec<f32>,
}

/// Buffers for one batch.
pub struct ClassifierWorkspace {
    pub batch: usize,
    pub x: Vec<f32>,
    pub h: [Vec<f32>; 2],
    pub logits: Vec<f32>,
    dh: [Vec<f32>; 2],
}

impl ClassifierWorkspace {
    pub fn new(c: &ClassifierConfig, batch: usize) -> ClassifierWorkspace {
        let v = |rows: usize| vec![0.0f32; rows * batch];
        ClassifierWorkspace {
            batch,
            x: v(c.pixels()),
            h: [v(c.hidden[0]), v(c.hidden[1])],
            logits: v(c.classes),
            dh: [v(c.hidden[0]), v(c.hidden[1])],
        }
    }
}

/// Softmax cross-entropy over the class rows of `logits` [classes, B], forward and backward:
/// returns Σ_b −log softmax(l_b)_{y_b} and overwrites `logits` with ∂/∂l = softmax − onehot.
pub fn softmax_cross_entropy(logits: &mut [f32], labels: &[u8], batch: usize) -> f64 {
    let classes = logits.len() / batch;
    let mut loss = 0.0f64;
    for (b, &y) in labels.iter().enumerate() {
        let col = |r: usize| r * batch + b;
        let max = (0..classes).map(|r| logits[col(r)]).fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = (0..classes).map(|r| ((logits[col(r)] - max) as f64).exp()).sum();
        let log_z = max as f64 + sum.ln();
        loss += log_z - logits[col(y as usize)] as f64;
        for r in 0..classes {
            let p = (logits[col(r)] as f64 - log_z).exp() as f32;
            logits[col(r)] = p - f32::from(r == y as usize);
        }
    }
    loss
}

impl Classifier {
    /// `nn.Linear` initialisation (U(±1/√fan_in)).
    pub fn init(config: ClassifierConfig, seed: u64) -> Classifier {
        let (layers, _, len) = config.layout();
        let mut params = vec![0.0f32; len];
        let mut rng = Rng::stream(seed, Purpose::Init, 1);
        for layer in &layers {
            let bound = 1.0 / (layer.inputs() as f64).sqrt();
            for i in layer.w.clone().chain(layer.b.clone()) {
                params[i] = ((rng.uniform() * 2.0 - 1.0) * bound) as f32;
            }
        }
        Classifier { config, layers, params }
    }

    /// Forward pass from `ws.x`: features in `ws.h[1]`, logits (with bias) in `ws.logits`.
    pub fn forward(&self, pool: &Pool, ws: &mut ClassifierWorkspace) {
        let b = ws.batch;
        let [l1, l2, l3] = [&self.layers[0], &self.layers[1], &self.layers[2]];
        let p = &self.params;
        let [h1, h2] = &mut ws.h;
        matmul(pool, h1, Mat::new(&p[l1.w.clone()], l1.outputs(), l1.inputs()), Mat::new(&ws.x, l1.inputs(), b), false);
        bias_activation(pool, Activation::Relu, h1, &p[l1.b.clone()], b);
        matmul(pool, h2, Mat::new(&p[l2.w.clone()], l2.outputs(), l2.inputs()), Mat::new(h1, l2.inputs(), b), false);
        bias_activation(pool, Activation::Relu, h2, &p[l2.b.clone()], b);
        matmul(
            pool,
            &mut ws.logits,
            Mat::new(&p[l3.w.clone()], l3.outputs(), l3.inputs()),
            Mat::new(h2, l3.inputs(), b),
            false,
        );
        crate::core::kernels::bias_add(&mut ws.logits, &p[l3.b.clone()], b);
    }

    /// Gradients after [`Classifier::forward`] and [`softmax_cross_entropy`] (which left
    /// ∂loss/∂logits in `ws.logits`).
    pub fn backward(&self, pool: &Pool, grads: &mut [f32], ws: &mut ClassifierWorkspace) {
        let b = ws.batch;
        let p = &self.params;
        let [h1, h2] = &ws.h;
        let [d1, d2] = &mut ws.dh;
        let layer = |j: usize| &self.layers[j];
        let (l1, l2, l3) = (layer(0), layer(1), layer(2));
        matmul(
            pool,
            &mut grads[l3.w.clone()],
            Mat::new(&ws.logits, l3.outputs(), b),
            Mat::new(h2, l3.inputs(), b).t(),
            false,
        );
        row_sums(&ws.logits, b, &mut grads[l3.b.clone()]);
        matmul(
            pool,
            d2,
            Mat::new(&p[l3.w.clone()], l3.outputs(), l3.inputs()).t(),
            Mat::new(&ws.logits, l3.outputs(), b),
            false,
        );
        activation_backward(pool, Activation::Relu, d2, h2, &mut grads[l2.b.clone()], b);
        matmul(pool, &mut grads[l2.w.clone()], Mat::new(d2, l2.outputs(), b), Mat::new(h1, l2.inputs(), b).t(), false);
        matmul(
            pool,
            d1,
            Mat::new(&p[l2.w.clone()], l2.outputs(), l2.inputs()).t(),
            Mat::new(d2, l2.outputs(), b),
            false,
        );
        activation_backward(pool, Activation::Relu, d1, h1, &mut grads[l1.b.clone()], b);
        matmul(
            pool,
            &mut grads[l1.w.clone()],
            Mat::new(d1, l1.outputs(), b),
            Mat::new(&ws.x, l1.inputs(), b).t(),
            false,
        );
    }

    /// Predicted labels and features `[n, features]` of `n` images `[n, pixels]` in [0, 1].
    pub fn predict(&self, pool: &Pool, images: &[f32]) -> (Vec<u8>, Vec<f32>) {
        let (p, f) = (self.config.pixels(), self.config.features());
        let n = images.len() / p;
        let (mut labels, mut features) = (Vec::with_capacity(n), vec![0.0f32; n * f]);
        let batch = 500.min(n.max(1));
        let mut ws = ClassifierWorkspace::new(&self.config, batch);
        for start in (0..n).step_by(batch) {
            let b = batch.min(n - start);
            if b != ws.batch {
                ws = ClassifierWorkspace::new(&self.config, b);
            }
            crate::model::transpose_into(&images[start * p..(start + b) * p], b, p, &mut ws.x);
            self.forward(pool, &mut ws);
            for col in 0..b {
                let best =
                    (0..self.config.classes).max_by(|&r, &s| ws.logits[r * b + col].total_cmp(&ws.logits[s * b + col]));
                labels.push(best.unwrap_or(0) as u8);
                for j in 0..f {
                    features[(start + col) * f + j] = ws.h[1][j * b + col];
                }
            }
        }
        (labels, features)
    }

    /// Accuracy on a split (intensities v/255).
    pub fn accuracy(&self, pool: &Pool, split: &Split) -> f64 {
        let images = split.images_f32(split.len());
        let (pred, _) = self.predict(pool, &images);
        let right = pred.iter().zip(&split.labels).filter(|(a, b)| a == b).count();
        right as f64 / split.len().max(1) as f64
    }

    /// Fills `ws.x` with the batch `idx`, each image shifted by up to ±`shift` pixels
    /// (random translation: the cheapest augmentation that lifts an MLP past 98%).
    pub fn fill_batch(&self, split: &Split, idx: &[u32], shift: i32, rng: &mut Rng, ws: &mut ClassifierWorkspace) {
        let (rows, cols, b) = (self.config.image_rows as i32, self.config.image_cols as i32, ws.batch);
        let plane = (rows * cols) as usize;
        gather_images(&split.images, self.config.pixels(), idx, &mut ws.x);
        if shift == 0 {
            return;
        }
        let span = (2 * shift + 1) as u64;
        for (col, &image) in idx.iter().enumerate() {
            let (dy, dx) = (rng.below(span) as i32 - shift, rng.below(span) as i32 - shift);
            for (ch, src) in split.image(image as usize).chunks_exact(plane).enumerate() {
                for r in 0..rows {
                    for c in 0..cols {
                        let (sr, sc) = (r - dy, c - dx);
                        let inside = (0..rows).contains(&sr) && (0..cols).contains(&sc);
                        let v = if inside { src[(sr * cols + sc) as usize] as f32 / 255.0 } else { 0.0 };
                        ws.x[(ch * plane + (r * cols + c) as usize) * b + col] = v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_of_uniform_logits_is_ln_10_and_its_gradient_sums_to_zero() {
        let mut logits = vec![0.0f32; 10 * 2];
        let loss = softmax_cross_entropy(&mut logits, &[3, 7], 2);
        assert!((loss - 2.0 * 10f64.ln()).abs() < 1e-9);
        // Column 0: 0.1 everywhere except −0.9 at its label 3.
        assert!((logits[3 * 2] + 0.9).abs() < 1e-7 && (logits[0] - 0.1).abs() < 1e-7);
        let col_sum: f32 = (0..10).map(|r| logits[r * 2 + 1]).sum();
        assert!(col_sum.abs() < 1e-6);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let config = ClassifierConfig { image_rows: 2, image_cols: 3, hidden: [5, 4], ..ClassifierConfig::mnist() };
        let mut clf = Classifier::init(config.clone(), 3);
        clf.params.iter_mut().enumerate().for_each(|(i, p)| *p += if i % 4 == 0 { 0.0 } else { 0.05 });
        let pool = Pool::new(1);
        let labels = [1u8, 8, 4];
        let x: Vec<f32> = (0..6 * 3).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
        let loss = |params: &[f32]| -> f64 {
            let c = Classifier { params: params.to_vec(), ..clf.clone() };
            let mut ws = ClassifierWorkspace::new(&config, 3);
            ws.x.copy_from_slice(&x);
            c.forward(&pool, &mut ws);
            softmax_cross_entropy(&mut ws.logits, &labels, 3)
        };
        let mut ws = ClassifierWorkspace::new(&config, 3);
        ws.x.copy_from_slice(&x);
        clf.forward(&pool, &mut ws);
        softmax_cross_entropy(&mut ws.logits, &labels, 3);
        let mut grads = vec![0.0f32; clf.params.len()];
        clf.backward(&pool, &mut grads, &mut ws);
        for i in 0..clf.params.len() {
            let h = 1e-2f32;
            let (mut a, mut b) = (clf.params.clone(), clf.params.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&a) - loss(&b)) / (2.0 * h as f64);
            assert!((grads[i] as f64 - fd).abs() < 2e-3 * (1.0 + fd.abs()), "param {i}: {} vs {fd}", grads[i]);
        }
    }
}
