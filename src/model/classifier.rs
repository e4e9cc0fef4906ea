//! The built-in classifiers that judge samples (label accuracy of a conditional model's
//! images, a Fréchet distance of penultimate-layer features, the diversity of predicted
//! labels), on the same compute core as the models:
//!
//! ```text
//! mlp (MNIST-style data):
//!   x [P, B] → h1 = relu(fc1·x) [1024, B] → h2 = relu(fc2·h1) [256, B]  (the features)
//! conv (image folders):
//!   x [C·S·S, B] → relu(conv.0(x)) [32·S/2·S/2, B] → … (4×4 stride-2, channels doubling to at
//!   most 256, until the side is 4 or less) → h = relu(fc2·flatten) [256, B]  (the features)
//! both:
//!   logits = fc3·h [classes, B],  loss = Σ_b −log softmax(logits)_{y_b}
//! ```

use crate::core::activations::Activation;
use crate::core::activations::activation_backward;
use crate::core::kernels::{gather_images, row_sums};
use crate::core::{Pool, Purpose, Rng, Shape};
use crate::data::{NUM_CLASSES, Split};
use crate::nn::{Layer, LayerKind, LayoutBuilder, halving};
use serde::{Deserialize, Serialize};

fn one() -> usize {
    1
}

fn ten() -> usize {
    NUM_CLASSES
}

/// Width of the conv classifier's first convolution (each next one doubles it).
pub const FIRST_WIDTH: usize = 32;
/// Widest convolution of the conv classifier.
pub const MAX_WIDTH: usize = 256;
/// The conv classifier's feature dimension (its one hidden linear layer).
pub const CONV_FEATURES: usize = 256;

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
    /// Channels of each 4×4 stride-2 convolution, first to last (none: an MLP on pixels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<usize>,
    /// Widths of the hidden linear layers; the last is the feature dimension.
    pub hidden: Vec<usize>,
}

impl ClassifierConfig {
    /// The MLP for MNIST-style data: two hidden layers of 1024 and 256.
    pub fn mnist() -> ClassifierConfig {
        let conv = Vec::new();
        ClassifierConfig {
            image_rows: 28,
            image_cols: 28,
            channels: 1,
            classes: NUM_CLASSES,
            conv,
            hidden: vec![1024, 256],
        }
    }

    /// The MLP for images of `shape` in `classes` classes.
    pub fn for_data(shape: Shape, classes: usize) -> ClassifierConfig {
        ClassifierConfig {
            image_rows: shape.height,
            image_cols: shape.width,
            channels: shape.channels,
            classes,
            ..Self::mnist()
        }
    }

    /// The small convolutional classifier for images of `shape` in `classes` classes:
    /// 32, 64, 128, … (at most 256) channels of 4×4 stride-2 convolutions until the side is 4
    /// or less (at least one), then 256 features.
    pub fn conv_for_data(shape: Shape, classes: usize) -> ClassifierConfig {
        let (mut side, mut width, mut conv) = (shape.height.min(shape.width), FIRST_WIDTH, Vec::new());
        while conv.is_empty() || side > 4 {
            conv.push(width);
            width = (2 * width).min(MAX_WIDTH);
            side = (side + 2 * crate::nn::PADDING).saturating_sub(crate::nn::KERNEL) / crate::nn::STRIDE + 1;
        }
        ClassifierConfig { conv, hidden: vec![CONV_FEATURES], ..Self::for_data(shape, classes) }
    }

    pub fn shape(&self) -> Shape {
        Shape::new(self.channels, self.image_rows, self.image_cols)
    }

    pub fn pixels(&self) -> usize {
        self.shape().size()
    }

    /// Dimension of the penultimate-layer features.
    pub fn features(&self) -> usize {
        *self.hidden.last().unwrap_or(&self.classes)
    }

    /// `conv` or `mlp`, and its layers' widths.
    pub fn describe(&self) -> String {
        let list = |v: &[usize]| v.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(",");
        match self.conv.is_empty() {
            true => format!("mlp {}", list(&self.hidden)),
            false => format!("conv {} + {}", list(&self.conv), list(&self.hidden)),
        }
    }

    /// Checks the sizes: a message naming what is wrong (a corrupt config).
    ///
    /// # Errors
    /// If a size is 0, there are fewer than 2 classes or more than 256, or no hidden layer.
    pub fn validate(&self) -> Result<(), String> {
        let sizes = [self.image_rows, self.image_cols, self.channels];
        if sizes.contains(&0) || self.hidden.is_empty() || self.hidden.contains(&0) || self.conv.contains(&0) {
            return Err("the classifier's sizes must all be at least 1, with at least one hidden layer".into());
        }
        if !(2..=crate::model::config::MAX_CLASSES).contains(&self.classes) || self.conv.len() > 8 {
            return Err(format!("the classifier has {} classes and {} convolutions", self.classes, self.conv.len()));
        }
        Ok(())
    }

    /// The layers with PyTorch's names and shapes (`conv.0`, … then `fc1`, `fc2`, `fc3` for
    /// the MLP, `fc2`, `fc3` after the convolutions), and the tensor list.
    pub fn layout(&self) -> (Vec<Layer>, Vec<crate::model::TensorInfo>, usize) {
        let mut b = LayoutBuilder::default();
        let mut layers = Vec::new();
        let (mut channels, mut h, mut w) = (self.channels, self.image_rows, self.image_cols);
        for (i, &out) in self.conv.iter().enumerate() {
            let geometry = halving(channels, h, w);
            (h, w) = (geometry.out_height(), geometry.out_width());
            layers.push(b.layer(&format!("conv.{i}"), LayerKind::Conv2d { geometry, out_channels: out }));
            channels = out;
        }
        let mut inputs = channels * h * w;
        let first_fc = 4 - self.hidden.len().min(2) - 1; // fc1, fc2 for two hidden layers; fc2 for one
        for (j, &width) in self.hidden.iter().enumerate() {
            layers.push(b.linear(&format!("fc{}", first_fc + j), inputs, width));
            inputs = width;
        }
        layers.push(b.linear(&format!("fc{}", first_fc + self.hidden.len()), inputs, self.classes));
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

/// Buffers for one batch: each layer's output, and their gradients.
pub struct ClassifierWorkspace {
    pub batch: usize,
    /// The input, `[pixels, batch]`.
    pub x: Vec<f32>,
    /// Each hidden layer's output after its ReLU, `[outputs, batch]`.
    pub h: Vec<Vec<f32>>,
    pub logits: Vec<f32>,
    dh: Vec<Vec<f32>>,
    /// The convolutions' scratch.
    col: Vec<f32>,
}

impl ClassifierWorkspace {
    pub fn new(c: &ClassifierConfig, batch: usize) -> ClassifierWorkspace {
        ClassifierWorkspace::with_threads(c, batch, crate::core::pool::available_threads())
    }

    /// Buffers for a pool of `threads`.
    pub fn with_threads(c: &ClassifierConfig, batch: usize, threads: usize) -> ClassifierWorkspace {
        let (layers, _, _) = c.layout();
        let hidden = &layers[..layers.len() - 1];
        let v = |rows: usize| vec![0.0f32; rows * batch];
        ClassifierWorkspace {
            batch,
            x: v(c.pixels()),
            h: hidden.iter().map(|l| v(l.outputs())).collect(),
            logits: v(c.classes),
            dh: hidden.iter().map(|l| v(l.outputs())).collect(),
            col: vec![0.0; layers.iter().map(|l| l.scratch_len(threads)).max().unwrap_or(0)],
        }
    }

    /// The features of the last [`Classifier::forward`]: `[features, batch]`.
    pub fn features(&self) -> &[f32] {
        self.h.last().expect("a hidden layer")
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
    /// PyTorch's initialisation of `nn.Linear` and `nn.Conv2d` (U(±1/√fan_in)).
    pub fn init(config: ClassifierConfig, seed: u64) -> Classifier {
        let (layers, tensors, len) = config.layout();
        let mut params = vec![0.0f32; len];
        let mut rng = Rng::stream(seed, Purpose::Init, 1);
        super::init_params(&tensors, super::Init::Pytorch, &mut rng, &mut params);
        Classifier { config, layers, params }
    }

    /// Forward pass from `ws.x`: every hidden layer's ReLU output in `ws.h` (the last is the
    /// features), the logits (with bias) in `ws.logits`.
    pub fn forward(&self, pool: &Pool, ws: &mut ClassifierWorkspace) {
        let b = ws.batch;
        let (last, hidden) = self.layers.split_last().expect("an output layer");
        for (i, layer) in hidden.iter().enumerate() {
            let (done, rest) = ws.h.split_at_mut(i);
            let input = done.last().map_or(&ws.x[..], |h| &h[..]);
            layer.forward(pool, &self.params, input, &mut rest[0], &mut ws.col, b, Some(Activation::Relu));
        }
        let features = ws.h.last().expect("a hidden layer");
        last.forward(pool, &self.params, features, &mut ws.logits, &mut ws.col, b, None);
        crate::core::kernels::bias_add(&mut ws.logits, &self.params[last.b.clone()], b);
    }

    /// Gradients after [`Classifier::forward`] and [`softmax_cross_entropy`] (which left
    /// ∂loss/∂logits in `ws.logits`).
    pub fn backward(&self, pool: &Pool, grads: &mut [f32], ws: &mut ClassifierWorkspace) {
        let b = ws.batch;
        let n = self.layers.len();
        let last = &self.layers[n - 1];
        row_sums(&ws.logits, b, &mut grads[last.b.clone()]);
        for i in (0..n).rev() {
            let layer = &self.layers[i];
            let input = if i == 0 { &ws.x[..] } else { &ws.h[i - 1][..] };
            let (below_dh, upper) = ws.dh.split_at_mut(i);
            let dy: &[f32] = if i == n - 1 { &ws.logits } else { &upper[0] };
            if i == 0 {
                layer.backward(pool, &self.params, grads, input, dy, None, None, &mut ws.col, b);
                continue;
            }
            // The ReLU below, fused into a convolution's input gradient where it can be.
            let below = &self.layers[i - 1];
            let mut db = vec![0.0f32; below.bias_len()];
            let dx = &mut below_dh[i - 1];
            let rows = layer.inputs();
            let fused = layer.backward(
                pool,
                &self.params,
                grads,
                input,
                dy,
                Some((dx, rows)),
                Some((input, &mut db)),
                &mut ws.col,
                b,
            );
            if !fused {
                activation_backward(pool, Activation::Relu, dx, input, &mut db, below.spatial() * b);
            }
            grads[below.b.clone()].copy_from_slice(&db);
        }
    }

    /// Predicted labels and features `[n, features]` of `n` images `[n, pixels]` in [0, 1].
    pub fn predict(&self, pool: &Pool, images: &[f32]) -> (Vec<u8>, Vec<f32>) {
        let (p, f) = (self.config.pixels(), self.config.features());
        let n = images.len() / p;
        let (mut labels, mut features) = (Vec::with_capacity(n), vec![0.0f32; n * f]);
        let batch = 500.min(n.max(1));
        let mut ws = ClassifierWorkspace::with_threads(&self.config, batch, pool.threads());
        for start in (0..n).step_by(batch) {
            let b = batch.min(n - start);
            if b != ws.batch {
                ws = ClassifierWorkspace::with_threads(&self.config, b, pool.threads());
            }
            crate::model::transpose_into(&images[start * p..(start + b) * p], b, p, &mut ws.x);
            self.forward(pool, &mut ws);
            let h = ws.features();
            for col in 0..b {
                let best =
                    (0..self.config.classes).max_by(|&r, &s| ws.logits[r * b + col].total_cmp(&ws.logits[s * b + col]));
                labels.push(best.unwrap_or(0) as u8);
                for j in 0..f {
                    features[(start + col) * f + j] = h[j * b + col];
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
    /// (random translation: the cheapest augmentation that lifts an MLP past 98%) and, with
    /// `flip`, mirrored left–right with probability ½.
    pub fn fill_batch(
        &self,
        split: &Split,
        idx: &[u32],
        (shift, flip): (i32, bool),
        rng: &mut Rng,
        ws: &mut ClassifierWorkspace,
    ) {
        let (rows, cols, b) = (self.config.image_rows as i32, self.config.image_cols as i32, ws.batch);
        let plane = (rows * cols) as usize;
        gather_images(&split.images, self.config.pixels(), idx, &mut ws.x);
        if shift == 0 && !flip {
            return;
        }
        let span = (2 * shift + 1) as u64;
        for (col, &image) in idx.iter().enumerate() {
            let (dy, dx) = (rng.below(span) as i32 - shift, rng.below(span) as i32 - shift);
            let mirror = flip && rng.next_u64() & 1 == 1;
            for (ch, src) in split.image(image as usize).chunks_exact(plane).enumerate() {
                for r in 0..rows {
                    for c in 0..cols {
                        let (sr, mut sc) = (r - dy, c - dx);
                        if mirror {
                            sc = cols - 1 - sc;
                        }
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
        let config = ClassifierConfig { image_rows: 2, image_cols: 3, hidden: vec![5, 4], ..ClassifierConfig::mnist() };
        check_gradients(config, &[1, 8, 4]);
    }

    /// Two convolutions (6×6 → 3×3 → 1×1 with 4×4 kernels, stride 2, padding 1) on two
    /// channels, then 5 features: every weight and bias, the convolutions' included.
    #[test]
    fn conv_gradients_match_finite_differences() {
        let config = ClassifierConfig {
            image_rows: 6,
            image_cols: 6,
            channels: 2,
            classes: 3,
            conv: vec![3, 4],
            hidden: vec![5],
        };
        let (layers, tensors, _) = config.layout();
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names[..4], ["conv.0.weight", "conv.0.bias", "conv.1.weight", "conv.1.bias"]);
        assert_eq!(names[4..], ["fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]);
        assert_eq!((layers[1].outputs(), tensors[4].shape.clone()), (4, vec![5, 4]));
        check_gradients(config, &[2, 0, 1]);
    }

    /// The conv classifier's depth by image side: halve to 4 or less, at least once.
    #[test]
    fn conv_classifiers_halve_down_to_a_side_of_four() {
        let widths = |side: usize| ClassifierConfig::conv_for_data(Shape::new(3, side, side), 10).conv;
        assert_eq!(widths(32), [32, 64, 128]);
        assert_eq!(widths(64), [32, 64, 128, 256]);
        assert_eq!(widths(128), [32, 64, 128, 256, 256]);
        assert_eq!(widths(4), [32]);
        assert_eq!(widths(28), [32, 64, 128]);
        assert_eq!(ClassifierConfig::conv_for_data(Shape::new(3, 32, 32), 10).describe(), "conv 32,64,128 + 256");
    }

    fn check_gradients(config: ClassifierConfig, labels: &[u8]) {
        let mut clf = Classifier::init(config.clone(), 3);
        clf.params.iter_mut().enumerate().for_each(|(i, p)| *p += if i % 4 == 0 { 0.0 } else { 0.05 });
        let pool = Pool::new(1);
        let p = config.pixels();
        let x: Vec<f32> = (0..p * 3).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
        let loss = |params: &[f32]| -> f64 {
            let c = Classifier { params: params.to_vec(), ..clf.clone() };
            let mut ws = ClassifierWorkspace::new(&config, 3);
            ws.x.copy_from_slice(&x);
            c.forward(&pool, &mut ws);
            softmax_cross_entropy(&mut ws.logits, labels, 3)
        };
        let mut ws = ClassifierWorkspace::new(&config, 3);
        ws.x.copy_from_slice(&x);
        clf.forward(&pool, &mut ws);
        softmax_cross_entropy(&mut ws.logits, labels, 3);
        let mut grads = vec![0.0f32; clf.params.len()];
        clf.backward(&pool, &mut grads, &mut ws);
        let mut bad = Vec::new();
        for i in 0..clf.params.len() {
            let h = 1e-3f32;
            let (mut a, mut b) = (clf.params.clone(), clf.params.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&a) - loss(&b)) / (2.0 * h as f64);
            if (grads[i] as f64 - fd).abs() >= 2e-3 * (1.0 + fd.abs()) {
                bad.push(format!("{i}: {} vs {fd}", grads[i]));
            }
        }
        assert!(bad.is_empty(), "{} of {}: {bad:?}", bad.len(), clf.params.len());
    }
}
