//! Model configuration and the layout of the flat parameter buffer.

use crate::data::NUM_CLASSES;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Which model: the tutorial's VAE, its conditional VAE, or the plain autoencoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Variational autoencoder (Kingma & Welling 2014): Gaussian q(z|x), Bernoulli p(x|z).
    Vae,
    /// Conditional VAE (Sohn et al. 2015): the one-hot label joins the encoder's and the
    /// decoder's inputs.
    Cvae,
    /// Deterministic autoencoder: z = μ(x), no sampling, no KL term.
    Ae,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Vae => "vae",
            ModelKind::Cvae => "cvae",
            ModelKind::Ae => "ae",
        }
    }

    /// Whether the model takes a label.
    pub fn conditional(self) -> bool {
        self == ModelKind::Cvae
    }

    /// Whether q(z|x) is a distribution (sampled, with a KL term).
    pub fn variational(self) -> bool {
        self != ModelKind::Ae
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub use crate::core::activations::Activation;

fn one() -> usize {
    1
}

/// The architecture: everything needed to rebuild a model from its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Image height in pixels (28 for MNIST).
    pub image_rows: usize,
    /// Image width in pixels (28 for MNIST).
    pub image_cols: usize,
    /// Width of the encoder's and decoder's hidden layer (400 in the tutorial).
    pub hidden_dim: usize,
    /// Dimension of z (20 in the tutorial).
    pub latent_dim: usize,
    /// Hidden layers in the encoder and, mirrored, in the decoder (1 in the tutorial).
    #[serde(default = "one")]
    pub hidden_layers: usize,
    #[serde(default)]
    pub activation: Activation,
}

/// One named tensor inside the flat buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// PyTorch's `state_dict` name, e.g. `fc1.weight`.
    pub name: &'static str,
    /// PyTorch's shape: `[out, in]` for weights, `[out]` for biases.
    pub shape: Vec<usize>,
    pub range: Range<usize>,
}

/// A linear layer's place in the flat buffer: weight `[out, in]` and bias `[out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub w: Range<usize>,
    pub b: Range<usize>,
    pub inputs: usize,
    pub outputs: usize,
}

/// Where each layer's weights live in the flat parameter (and gradient) buffer.
///
/// Names follow the tutorial's PyTorch module: encoder hidden layers `fc1` (then `fc1_2`,
/// `fc1_3`, … when `hidden_layers` > 1), heads `fc_mu` and `fc_logvar`, decoder hidden
/// layers `fc2` (then `fc2_2`, …), output `fc3`. The μ and log σ² heads are adjacent
/// (`fc_mu.weight` then `fc_logvar.weight`, likewise the biases), so both are one
/// `[2·latent, hidden]` product.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Encoder hidden layers, input first.
    pub encoder: Vec<Linear>,
    /// `fc_mu` (and `fc_logvar` after it for variational models) as one layer.
    pub head: Linear,
    /// Decoder hidden layers, z first.
    pub decoder: Vec<Linear>,
    /// `fc3`: the logits of the Bernoulli means.
    pub output: Linear,
    pub tensors: Vec<TensorInfo>,
    pub len: usize,
}

impl ModelConfig {
    /// The tutorial's architecture for `kind` on 28×28 images.
    pub fn tutorial(kind: ModelKind) -> ModelConfig {
        ModelConfig {
            kind,
            image_rows: 28,
            image_cols: 28,
            hidden_dim: 400,
            latent_dim: 20,
            hidden_layers: 1,
            activation: Activation::Relu,
        }
    }

    /// Pixels per image: the decoder's output size.
    pub fn pixels(&self) -> usize {
        self.image_rows * self.image_cols
    }

    /// Size of the label vector appended to inputs (10 for `cvae`, else 0).
    pub fn cond_dim(&self) -> usize {
        if self.kind.conditional() { NUM_CLASSES } else { 0 }
    }

    /// Encoder input: pixels then the one-hot label.
    pub fn encoder_in(&self) -> usize {
        self.pixels() + self.cond_dim()
    }

    /// Decoder input: z then the one-hot label.
    pub fn decoder_in(&self) -> usize {
        self.latent_dim + self.cond_dim()
    }

    /// Rows of the encoder head: μ and log σ² for variational models, μ alone for `ae`.
    pub fn encoder_out(&self) -> usize {
        if self.kind.variational() { 2 * self.latent_dim } else { self.latent_dim }
    }

    /// Checks sizes; the message names the flag to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden_dim == 0 {
            return Err("--hidden-dim must be at least 1".into());
        }
        if self.latent_dim == 0 {
            return Err("--latent-dim must be at least 1".into());
        }
        if self.pixels() == 0 {
            return Err("images must have at least one pixel".into());
        }
        if self.hidden_layers == 0 || self.hidden_layers > 16 {
            return Err("--hidden-layers must be between 1 and 16".into());
        }
        if self.hidden_dim > 1 << 16 || self.latent_dim > 1 << 14 {
            return Err("--hidden-dim (max 65536) or --latent-dim (max 16384) is too large".into());
        }
        Ok(())
    }

    /// Multiply-adds of one training step per example (forward and backward; the input
    /// gradient of `fc1` is not needed).
    pub fn train_macs_per_example(&self) -> usize {
        self.train_macs_per_example_with(1)
    }

    /// The same with `samples` draws of z per example (the importance-weighted objective):
    /// the encoder runs once, the decoder once per draw.
    pub fn train_macs_per_example_with(&self, samples: usize) -> usize {
        let (h, e, d, p, i) =
            (self.hidden_dim, self.encoder_out(), self.decoder_in(), self.pixels(), self.encoder_in());
        let deep = (self.hidden_layers - 1) * h * h;
        // Forward, weight gradients, input gradients (fc1's is not needed; fc2's only for z).
        let encoder = (i * h + h * e + deep) + (i * h + h * e + deep) + (h * e + deep);
        let decoder = (d * h + h * p + deep) + (d * h + h * p + deep) + (self.latent_dim * h + h * p + deep);
        encoder + samples * decoder
    }

    /// Multiply-adds of decoding one z into logits.
    pub fn decode_macs(&self) -> usize {
        let h = self.hidden_dim;
        self.decoder_in() * h + (self.hidden_layers - 1) * h * h + h * self.pixels()
    }

    pub fn layout(&self) -> Layout {
        let (h, l, p) = (self.hidden_dim, self.latent_dim, self.pixels());
        let names = LayerNames::for_layers(self.hidden_layers);
        let mut b = LayoutBuilder::default();
        let encoder: Vec<Linear> = (0..self.hidden_layers)
            .map(|j| b.linear(names.encoder[j], if j == 0 { self.encoder_in() } else { h }, h))
            .collect();
        let mu_w = b.push("fc_mu.weight", vec![l, h]);
        let lv_w = self.kind.variational().then(|| b.push("fc_logvar.weight", vec![l, h]));
        let mu_b = b.push("fc_mu.bias", vec![l]);
        let lv_b = self.kind.variational().then(|| b.push("fc_logvar.bias", vec![l]));
        let head = Linear {
            w: mu_w.start..lv_w.map_or(mu_w.end, |r| r.end),
            b: mu_b.start..lv_b.map_or(mu_b.end, |r| r.end),
            inputs: h,
            outputs: self.encoder_out(),
        };
        let decoder: Vec<Linear> = (0..self.hidden_layers)
            .map(|j| b.linear(names.decoder[j], if j == 0 { self.decoder_in() } else { h }, h))
            .collect();
        let output = b.linear(("fc3.weight", "fc3.bias"), h, p);
        Layout { encoder, head, decoder, output, tensors: b.tensors, len: b.len }
    }
}

/// Lays named tensors out one after another in a flat buffer.
#[derive(Default)]
pub struct LayoutBuilder {
    pub tensors: Vec<TensorInfo>,
    pub len: usize,
}

impl LayoutBuilder {
    /// Appends a tensor of `shape`; returns its range.
    pub fn push(&mut self, name: &'static str, shape: Vec<usize>) -> Range<usize> {
        let n: usize = shape.iter().product();
        let r = self.len..self.len + n;
        self.len += n;
        self.tensors.push(TensorInfo { name, shape, range: r.clone() });
        r
    }

    /// Appends a linear layer: weight `[outputs, inputs]`, then bias `[outputs]`.
    pub fn linear(&mut self, (w, b): (&'static str, &'static str), inputs: usize, outputs: usize) -> Linear {
        let w = self.push(w, vec![outputs, inputs]);
        let b = self.push(b, vec![outputs]);
        Linear { w, b, inputs, outputs }
    }
}

/// Tensor names of the hidden layers: `fc1`, `fc1_2`, … and `fc2`, `fc2_2`, ….
struct LayerNames {
    encoder: Vec<(&'static str, &'static str)>,
    decoder: Vec<(&'static str, &'static str)>,
}

impl LayerNames {
    fn for_layers(n: usize) -> LayerNames {
        // Names are 'static so layouts stay cheap to clone; at most 16 layers exist.
        fn leak(s: String) -> &'static str {
            static CACHE: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
            let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = cache.iter().find(|c| **c == s) {
                return hit;
            }
            let leaked: &'static str = Box::leak(s.into_boxed_str());
            cache.push(leaked);
            leaked
        }
        let names = |base: &str| -> Vec<(&'static str, &'static str)> {
            (0..n)
                .map(|j| {
                    let layer = if j == 0 { base.to_string() } else { format!("{base}_{}", j + 1) };
                    (leak(format!("{layer}.weight")), leak(format!("{layer}.bias")))
                })
                .collect()
        };
        LayerNames { encoder: names("fc1"), decoder: names("fc2") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_vae_has_pytorchs_parameter_count_and_names() {
        // 784·400+400 + 2·(400·20+20) + 20·400+400 + 400·784+784 = 652,824.
        let layout = ModelConfig::tutorial(ModelKind::Vae).layout();
        assert_eq!(layout.len, 652_824);
        let names: Vec<_> = layout.tensors.iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "fc1.weight",
                "fc1.bias",
                "fc_mu.weight",
                "fc_logvar.weight",
                "fc_mu.bias",
                "fc_logvar.bias",
                "fc2.weight",
                "fc2.bias",
                "fc3.weight",
                "fc3.bias"
            ]
        );
        assert_eq!(layout.tensors[0].shape, vec![400, 784]);
        assert_eq!(layout.head.w.len(), 40 * 400);
    }

    #[test]
    fn cvae_widens_fc1_and_fc2_by_ten_and_ae_drops_logvar() {
        let c = ModelConfig::tutorial(ModelKind::Cvae).layout();
        assert_eq!(c.tensors[0].shape, vec![400, 794]);
        assert_eq!(c.tensors.iter().find(|t| t.name == "fc2.weight").unwrap().shape, vec![400, 30]);
        let a = ModelConfig::tutorial(ModelKind::Ae).layout();
        assert!(a.tensors.iter().all(|t| !t.name.starts_with("fc_logvar")));
        assert_eq!(a.head.w.len(), 20 * 400);
    }

    #[test]
    fn deeper_models_name_their_extra_layers() {
        let c =
            ModelConfig { hidden_layers: 2, hidden_dim: 200, latent_dim: 50, ..ModelConfig::tutorial(ModelKind::Vae) };
        let names: Vec<_> = c.layout().tensors.iter().map(|t| t.name).collect();
        assert_eq!(&names[..4], ["fc1.weight", "fc1.bias", "fc1_2.weight", "fc1_2.bias"]);
        assert!(names.contains(&"fc2_2.weight"));
        // Burda et al.'s one-layer model: 784-200-200-50 and mirrored.
        let l = c.layout();
        assert_eq!(
            l.len,
            (784 * 200 + 200)
                + (200 * 200 + 200)
                + 2 * (200 * 50 + 50)
                + (50 * 200 + 200)
                + (200 * 200 + 200)
                + (200 * 784 + 784)
        );
    }

    #[test]
    fn work_per_epoch_matches_the_design_note() {
        // The design note: ~1.64 M multiply-adds per example per step, ~196 GFLOP per epoch.
        // Encoder: fc1 forward + weight gradient 2·784·400, head forward + weight + input
        // gradients 3·400·40 = 675,200. Decoder: fc2 forward + weight gradient 2·20·400,
        // fc3 all three 3·400·784, fc2's input gradient (z only) 20·400 = 964,800.
        let c = ModelConfig::tutorial(ModelKind::Vae);
        assert_eq!(c.train_macs_per_example(), 675_200 + 964_800);
        // Importance-weighted with k = 5: the decoder's share five times.
        assert_eq!(c.train_macs_per_example_with(5), 675_200 + 5 * 964_800);
    }
}
