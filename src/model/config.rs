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

/// Where each layer's weights live in the flat parameter (and gradient) buffer.
///
/// The μ and log σ² heads are adjacent (`fc_mu.weight` then `fc_logvar.weight`, likewise
/// the biases), so both are one `[2·latent, hidden]` product.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub fc1_w: Range<usize>,
    pub fc1_b: Range<usize>,
    /// `fc_mu.weight` (and `fc_logvar.weight` after it for variational models).
    pub enc_w: Range<usize>,
    pub enc_b: Range<usize>,
    pub fc2_w: Range<usize>,
    pub fc2_b: Range<usize>,
    pub fc3_w: Range<usize>,
    pub fc3_b: Range<usize>,
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
        }
    }

    /// Pixels per image: the decoder's output size.
    pub fn pixels(&self) -> usize {
        self.image_rows * self.image_cols
    }

    /// Size of the label vector appended to inputs (10 for `cvae`, else 0).
    pub fn cond_dim(&self) -> usize {
        if self.kind.conditional() {
            NUM_CLASSES
        } else {
            0
        }
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
        if self.kind.variational() {
            2 * self.latent_dim
        } else {
            self.latent_dim
        }
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
        if self.hidden_dim > 1 << 16 || self.latent_dim > 1 << 14 {
            return Err("--hidden-dim (max 65536) or --latent-dim (max 16384) is too large".into());
        }
        Ok(())
    }

    /// Multiply-adds of one training step per example (forward and backward; the input
    /// gradient of `fc1` is not needed).
    pub fn train_macs_per_example(&self) -> usize {
        let (h, e, d, p, i) = (
            self.hidden_dim,
            self.encoder_out(),
            self.decoder_in(),
            self.pixels(),
            self.encoder_in(),
        );
        let forward = i * h + h * e + d * h + h * p;
        forward + (h * p * 2) + (d * h + self.latent_dim * h) + (h * e * 2) + (i * h)
    }

    pub fn layout(&self) -> Layout {
        let (h, l, p) = (self.hidden_dim, self.latent_dim, self.pixels());
        let mut tensors = Vec::new();
        let mut at = 0usize;
        let mut push = |name: &'static str, shape: Vec<usize>| -> Range<usize> {
            let n: usize = shape.iter().product();
            let r = at..at + n;
            at += n;
            tensors.push(TensorInfo {
                name,
                shape,
                range: r.clone(),
            });
            r
        };
        let fc1_w = push("fc1.weight", vec![h, self.encoder_in()]);
        let fc1_b = push("fc1.bias", vec![h]);
        let mu_w = push("fc_mu.weight", vec![l, h]);
        let lv_w = self
            .kind
            .variational()
            .then(|| push("fc_logvar.weight", vec![l, h]));
        let mu_b = push("fc_mu.bias", vec![l]);
        let lv_b = self
            .kind
            .variational()
            .then(|| push("fc_logvar.bias", vec![l]));
        let fc2_w = push("fc2.weight", vec![h, self.decoder_in()]);
        let fc2_b = push("fc2.bias", vec![h]);
        let fc3_w = push("fc3.weight", vec![p, h]);
        let fc3_b = push("fc3.bias", vec![p]);
        let enc_w = mu_w.start..lv_w.map_or(mu_w.end, |r| r.end);
        let enc_b = mu_b.start..lv_b.map_or(mu_b.end, |r| r.end);
        Layout {
            fc1_w,
            fc1_b,
            enc_w,
            enc_b,
            fc2_w,
            fc2_b,
            fc3_w,
            fc3_b,
            tensors,
            len: at,
        }
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
        assert_eq!(layout.enc_w.len(), 40 * 400);
    }

    #[test]
    fn cvae_widens_fc1_and_fc2_by_ten_and_ae_drops_logvar() {
        let c = ModelConfig::tutorial(ModelKind::Cvae).layout();
        assert_eq!(c.tensors[0].shape, vec![400, 794]);
        assert_eq!(
            c.tensors
                .iter()
                .find(|t| t.name == "fc2.weight")
                .unwrap()
                .shape,
            vec![400, 30]
        );
        let a = ModelConfig::tutorial(ModelKind::Ae).layout();
        assert!(a.tensors.iter().all(|t| !t.name.starts_with("fc_logvar")));
        assert_eq!(a.enc_w.len(), 20 * 400);
    }

    #[test]
    fn work_per_epoch_matches_the_design_note() {
        // The design note: ~1.64 M multiply-adds per example per step, ~196 GFLOP per epoch.
        let macs = ModelConfig::tutorial(ModelKind::Vae).train_macs_per_example();
        assert!((1_600_000..1_700_000).contains(&macs), "{macs}");
    }
}
