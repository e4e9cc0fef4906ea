//! Model configuration and the layout of the flat parameter buffer: which layers, in what
//! order, under which PyTorch names.

use super::likelihood::Likelihood;
use crate::core::Shape;
use crate::nn::{Layer, LayerKind, LayoutBuilder, TensorInfo, halving};
use serde::{Deserialize, Serialize};
use std::ops::Range;

pub use crate::core::activations::Activation;

/// Which model: the tutorial's VAE, its conditional VAE, or the plain autoencoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
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

/// The encoder's and decoder's kind of layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Fully connected layers on the flattened image (the tutorial's).
    #[default]
    Mlp,
    /// Stride-2 4×4 convolutions, mirrored by transposed convolutions
    /// (`reference/conv-model.md`).
    Conv,
    /// `conv` with residual blocks at each resolution (He et al. 2016, without batch
    /// normalisation, so evaluation equals training): after each of the encoder's stride-2
    /// convolutions, and before each of the decoder's transposed ones, `blocks` times
    /// `act(x + conv2(act(conv1(x))))` with 3×3 convolutions keeping the channels.
    Resnet,
}

impl Arch {
    /// Whether the layers are convolutions on feature maps (`conv`, `resnet`), configured by
    /// `widths`, rather than fully connected.
    pub fn convolutional(self) -> bool {
        matches!(self, Arch::Conv | Arch::Resnet)
    }
}

/// Residual blocks per resolution of `--arch resnet` when `--blocks` is not given.
pub const DEFAULT_BLOCKS: usize = 1;
/// Most residual blocks per resolution `--blocks` accepts.
pub const MAX_BLOCKS: usize = 16;

fn one() -> usize {
    1
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// Classes of the runs made before the class count was recorded: MNIST's ten.
fn ten() -> usize {
    10
}

pub use crate::data::MAX_CLASSES;
/// Most parameters a model may have (f32: 4 GB), checked before anything is allocated.
pub const MAX_PARAMETERS: usize = 1 << 30;

/// The architecture: everything needed to rebuild a model from its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Image height in pixels (28 for MNIST).
    pub image_rows: usize,
    /// Image width in pixels (28 for MNIST).
    pub image_cols: usize,
    /// 1 (grey) or 3 (RGB).
    #[serde(default = "one")]
    pub channels: usize,
    /// Classes of the data: a cvae's one-hot label has this length.
    #[serde(default = "ten")]
    pub classes: usize,
    /// The classes' names (a labelled image folder's sub-folders); empty for MNIST-style
    /// data, whose classes are named by the dataset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_names: Vec<String>,
    #[serde(default)]
    pub arch: Arch,
    /// MLP: width of the encoder's and decoder's hidden layers (400 in the tutorial). Conv:
    /// the width of a fully connected layer between the feature maps and the heads, and
    /// between z and the decoder's first map (`encoder_fc`, `decoder_fc`; 256 in
    /// disentanglement_lib's model), 0 for none (the reference conv model's).
    pub hidden_dim: usize,
    /// Dimension of z (20 in the tutorial).
    pub latent_dim: usize,
    /// MLP: hidden layers in the encoder and, mirrored, in the decoder (1 in the tutorial).
    #[serde(default = "one")]
    pub hidden_layers: usize,
    #[serde(default)]
    pub activation: Activation,
    /// Conv: channels of each stride-2 convolution of the encoder, mirrored by the decoder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub widths: Vec<usize>,
    /// Resnet: residual blocks at each resolution of the encoder and of the decoder (0 for the
    /// other architectures).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub blocks: usize,
    #[serde(default)]
    pub likelihood: Likelihood,
    /// The prior p(z): N(0, I), or the VampPrior's mixture of posteriors of learned
    /// pseudo-inputs.
    #[serde(default, skip_serializing_if = "Prior::is_standard")]
    pub prior: Prior,
    /// The continuous likelihood is fitted to dequantized data, x = (v + u)/256 with u ~ U(0, 1)
    /// per value (Theis, van den Oord & Bethge 2016, eq. 8), so its bound on the 8-bit data's
    /// log-likelihood is a code length. Absent in runs made before (which saw v/255).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dequantize: bool,
    /// FactorVAE's discriminator (Kim & Mnih 2018), trained beside the model: its weights
    /// follow the model's in the flat buffer, as `discriminator.{2j}` of an `nn.Sequential`
    /// of linear layers and LeakyReLU(0.2). `None` for every other objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discriminator: Option<Discriminator>,
}

/// FactorVAE's discriminator: `layers` hidden linear layers of `hidden` units with
/// LeakyReLU(0.2), then 2 logits (q(z) against the product of its marginals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discriminator {
    pub hidden: usize,
    pub layers: usize,
}

impl Default for Discriminator {
    /// Kim & Mnih's and disentanglement_lib's: 6 layers of 1,000 units.
    fn default() -> Self {
        Discriminator { hidden: 1000, layers: 6 }
    }
}

/// The prior over z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Prior {
    /// N(0, I) (Kingma & Welling 2014).
    #[default]
    Standard,
    /// The VampPrior (Tomczak & Welling 2018): p(z) = (1/K) Σ_k q(z | u_k) over K learned
    /// pseudo-inputs u_k, stored as `prior.pseudo_inputs` \[K, C, H, W\] and clipped to \[0, 1\]
    /// (their hardtanh).
    Vamp { pseudo_inputs: usize },
    /// A learned mixture of K diagonal Gaussians, p(z) = (1/K) Σ_k N(z; m_k, diag(e^{v_k}))
    /// (the VampPrior's mixture with free components: Tomczak & Welling 2018, §3's "mixture
    /// of Gaussians" baseline; Dilokthanakul et al. 2016), stored as `prior.means` \[K, L\]
    /// and `prior.logvars` \[K, L\].
    Mog { components: usize },
}

/// Most pseudo-inputs `--pseudo-inputs` accepts.
pub const MAX_PSEUDO_INPUTS: usize = 4096;

impl Prior {
    pub fn is_standard(&self) -> bool {
        *self == Prior::Standard
    }

    /// The pseudo-inputs of a VampPrior (0 for the standard prior).
    /// The mixture's components: K for a VampPrior or a Gaussian mixture, 0 for N(0, I).
    pub fn components(&self) -> usize {
        match self {
            Prior::Standard => 0,
            Prior::Vamp { pseudo_inputs: k } | Prior::Mog { components: k } => *k,
        }
    }

    /// The prior in a few words, as `vae runs` and `vae eval` name it (empty for N(0, I)).
    pub fn describe(&self) -> String {
        match self {
            Prior::Standard => String::new(),
            Prior::Vamp { pseudo_inputs } => format!("VampPrior of {pseudo_inputs} pseudo-inputs"),
            Prior::Mog { components } => format!("mixture of {components} Gaussians"),
        }
    }

    pub fn pseudo_inputs(&self) -> usize {
        match self {
            Prior::Standard => 0,
            Prior::Vamp { pseudo_inputs } => *pseudo_inputs,
            Prior::Mog { .. } => 0,
        }
    }
}

/// Where each layer's weights live in the flat parameter (and gradient) buffer.
///
/// MLP names follow the tutorial's PyTorch module: encoder hidden layers `fc1` (then `fc1_2`,
/// `fc1_3`, … when `hidden_layers` > 1), heads `fc_mu` and `fc_logvar`, decoder hidden
/// layers `fc2` (then `fc2_2`, …), output `fc3`. Conv names follow the reference module
/// (`reference/torch_conv_reference.py`): `encoder.{i}`, `fc_mu`, `fc_logvar`,
/// `decoder_input`, `decoder.{j}`; a resnet adds `encoder_res.{i}.{r}.conv1`/`.conv2` after
/// `encoder.{i}` and `decoder_res.{j}.{r}.conv1`/`.conv2` before `decoder.{j}`
/// (`bench/conv_fixture.py`'s module). The μ and log σ² heads are adjacent (`fc_mu.weight` then
/// `fc_logvar.weight`, likewise the biases), so both are one `[2·latent, in]` product.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Encoder layers, input first, each followed by the activation.
    pub encoder: Vec<Layer>,
    /// `fc_mu` (and `fc_logvar` after it for variational models) as one linear layer.
    pub head: Layer,
    /// Decoder layers before the output, z first, each followed by the activation.
    pub decoder: Vec<Layer>,
    /// The decoder's last layer: the likelihood's parameters (`fc3`, or the last
    /// `decoder.{j}`).
    pub output: Layer,
    /// A Gaussian likelihood's learned log-variance per channel (`likelihood.logvar`).
    pub logvar: Option<Range<usize>>,
    /// A VampPrior's pseudo-inputs \[K, C, H, W\] (`prior.pseudo_inputs`).
    pub pseudo_inputs: Option<Range<usize>>,
    /// A Gaussian-mixture prior's means and log-variances, each \[K, L\] (`prior.means`,
    /// `prior.logvars`).
    pub prior_means: Option<Range<usize>>,
    pub prior_logvars: Option<Range<usize>>,
    /// FactorVAE's discriminator layers, input first (empty without one); all of them after
    /// the model's own parameters, from [`Layout::model_len`] on.
    pub discriminator: Vec<Layer>,
    /// Where the model's own parameters end (the discriminator's begin).
    pub model_len: usize,
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
            channels: 1,
            classes: 10,
            class_names: Vec::new(),
            arch: Arch::Mlp,
            hidden_dim: 400,
            latent_dim: 20,
            hidden_layers: 1,
            activation: Activation::Relu,
            widths: Vec::new(),
            blocks: 0,
            likelihood: Likelihood::Bernoulli,
            prior: Prior::Standard,
            dequantize: false,
            discriminator: None,
        }
    }

    /// The reference convolutional model (`conv-model.md`) for `kind` on images of `shape`,
    /// with [`default_widths`] for its side.
    pub fn conv(kind: ModelKind, shape: Shape, latent_dim: usize) -> ModelConfig {
        ModelConfig {
            arch: Arch::Conv,
            image_rows: shape.height,
            image_cols: shape.width,
            channels: shape.channels,
            hidden_dim: 0,
            hidden_layers: 0,
            latent_dim,
            widths: default_widths(shape.height.min(shape.width)),
            ..ModelConfig::tutorial(kind)
        }
    }

    /// The conv model with `blocks` residual blocks per resolution (`--arch resnet`).
    pub fn resnet(kind: ModelKind, shape: Shape, latent_dim: usize, blocks: usize) -> ModelConfig {
        ModelConfig { arch: Arch::Resnet, blocks, ..ModelConfig::conv(kind, shape, latent_dim) }
    }

    /// The layers in a few words, as `vae runs` and `vae bench` show them: `mlp 400`,
    /// `mlp 400x2`, `conv 32,64`, `resnet 32,64 x2` (blocks per resolution).
    pub fn layers_summary(&self) -> String {
        let widths = || self.widths.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        match self.arch {
            Arch::Mlp if self.hidden_layers > 1 => format!("mlp {}x{}", self.hidden_dim, self.hidden_layers),
            Arch::Mlp => format!("mlp {}", self.hidden_dim),
            Arch::Conv if self.hidden_dim > 0 => format!("conv {} fc {}", widths(), self.hidden_dim),
            Arch::Conv => format!("conv {}", widths()),
            Arch::Resnet => format!("resnet {} x{}", widths(), self.blocks),
        }
    }

    pub fn shape(&self) -> Shape {
        Shape::new(self.channels, self.image_rows, self.image_cols)
    }

    /// Values per image (`channels · rows · cols`): the decoder's output size.
    pub fn pixels(&self) -> usize {
        self.shape().size()
    }

    /// Rows of the decoder's output: the likelihood's parameters for every position
    /// ([`Likelihood::output_channels`] · rows · cols; P for one parameter per value).
    pub fn output_rows(&self) -> usize {
        self.likelihood.output_channels(self.shape()) * self.shape().plane()
    }

    /// Size of the label vector a cvae appends to its inputs (`classes`; 0 for the others).
    pub fn cond_dim(&self) -> usize {
        if self.kind.conditional() { self.classes } else { 0 }
    }

    /// Rows of the encoder's input buffer: the pixels, then an MLP cvae's one-hot label.
    pub fn encoder_in(&self) -> usize {
        match self.arch {
            Arch::Mlp => self.pixels() + self.cond_dim(),
            Arch::Conv | Arch::Resnet => self.pixels(),
        }
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
    ///
    /// # Errors
    /// A message naming the flag to change if the image sides or channels are out of range, the
    /// latent, hidden or layer sizes are 0 or too large, the parameters exceed [`MAX_PARAMETERS`],
    /// the images have no pixel, a cvae has fewer than 2 classes or the data more than
    /// [`MAX_CLASSES`], the likelihood's settings are invalid ([`Likelihood::validate`]), or the
    /// conv widths do not fit the image ([`check_widths`]).
    pub fn validate(&self) -> Result<(), String> {
        let sides = 1..=crate::core::shape::MAX_SIDE;
        if !sides.contains(&self.image_rows) || !sides.contains(&self.image_cols) {
            return Err(format!(
                "images of {}x{} cannot be modelled: each side must be between 1 and {}",
                self.image_cols,
                self.image_rows,
                sides.end()
            ));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(format!("images with {} channels cannot be modelled: 1 (grey) or 3 (RGB)", self.channels));
        }
        if self.latent_dim == 0 {
            return Err("--latent-dim must be at least 1".into());
        }
        if self.pixels() == 0 {
            return Err("images must have at least one pixel".into());
        }
        if self.latent_dim > 1 << 14 {
            return Err("--latent-dim is too large (max 16384)".into());
        }
        if self.kind.conditional() && self.classes < 2 {
            let has = if self.classes == 1 { "one class".to_string() } else { "no class labels".to_string() };
            return Err(format!(
                "--model cvae needs labelled data with at least 2 classes (an image folder's class \
                 sub-folders); this data has {has}, so use --model vae"
            ));
        }
        if self.classes > MAX_CLASSES {
            return Err(format!("the data has {} classes; at most {MAX_CLASSES} are supported", self.classes));
        }
        self.likelihood.validate()?;
        if let Prior::Vamp { pseudo_inputs } = self.prior {
            if self.kind != ModelKind::Vae {
                return Err(format!(
                    "--prior vamp needs --model vae: its pseudo-inputs carry no label for a cvae, and an ae has no \
                     prior (got {})",
                    self.kind
                ));
            }
            if !(1..=MAX_PSEUDO_INPUTS).contains(&pseudo_inputs) {
                return Err(format!("--pseudo-inputs must be between 1 and {MAX_PSEUDO_INPUTS}, got {pseudo_inputs}"));
            }
        }
        if let Prior::Mog { components } = self.prior {
            if self.kind != ModelKind::Vae {
                return Err(format!(
                    "--prior mog needs --model vae: its components carry no label for a cvae, and an ae has no \
                     prior (got {})",
                    self.kind
                ));
            }
            if !(1..=MAX_PSEUDO_INPUTS).contains(&components) {
                return Err(format!("--components must be between 1 and {MAX_PSEUDO_INPUTS}, got {components}"));
            }
        }
        match self.arch {
            Arch::Mlp => {
                if self.hidden_dim == 0 {
                    return Err("--hidden-dim must be at least 1".into());
                }
                if self.hidden_layers == 0 || self.hidden_layers > 16 {
                    return Err("--hidden-layers must be between 1 and 16".into());
                }
                if self.hidden_dim > 1 << 16 {
                    return Err("--hidden-dim is too large (max 65536)".into());
                }
            }
            Arch::Conv | Arch::Resnet => {
                check_widths(&self.widths, self.shape())?;
                if self.hidden_dim > 1 << 16 {
                    return Err("--hidden-dim is too large (max 65536)".into());
                }
            }
        }
        match (self.arch, self.blocks) {
            (Arch::Resnet, 1..=MAX_BLOCKS) | (Arch::Mlp | Arch::Conv, 0) => {}
            (Arch::Resnet, n) => return Err(format!("--blocks must be between 1 and {MAX_BLOCKS}, got {n}")),
            (_, _) => {
                return Err(
                    "--blocks sets the residual blocks of --arch resnet; drop --blocks, or train --arch resnet".into(),
                );
            }
        }
        let parameters = self.layout().len;
        if parameters > MAX_PARAMETERS {
            return Err(format!(
                "the model would have {parameters} parameters; at most {MAX_PARAMETERS} (4 GB of weights) are \
                 supported: use fewer or narrower layers"
            ));
        }
        Ok(())
    }

    /// Multiply-adds of one training step per example (forward and backward; the input
    /// gradient of the first encoder layer is not needed).
    pub fn train_macs_per_example(&self) -> usize {
        self.train_macs_per_example_with(1)
    }

    /// The same with `samples` draws of z per example (the importance-weighted objective):
    /// the encoder runs once, the decoder once per draw.
    pub fn train_macs_per_example_with(&self, samples: usize) -> usize {
        let layout = self.layout();
        // Forward, weight gradient, and input gradient where one is needed.
        let mut encoder = 0;
        for (j, layer) in layout.encoder.iter().chain([&layout.head]).enumerate() {
            encoder += 2 * layer.macs() + if j > 0 { layer.macs() } else { 0 };
        }
        let mut decoder = 0;
        for (j, layer) in layout.decoder.iter().chain([&layout.output]).enumerate() {
            // The first layer's input gradient is needed for z only, not the label rows.
            let input = if j == 0 { layer.macs() / layer.inputs() * self.latent_dim } else { layer.macs() };
            decoder += 2 * layer.macs() + input;
        }
        encoder + samples * decoder
    }

    /// Multiply-adds of decoding one z into the output.
    pub fn decode_macs(&self) -> usize {
        let layout = self.layout();
        layout.decoder.iter().chain([&layout.output]).map(Layer::macs).sum()
    }

    pub fn layout(&self) -> Layout {
        let mut b = LayoutBuilder::default();
        let (encoder, head_in) = match self.arch {
            Arch::Mlp => {
                let h = self.hidden_dim;
                let encoder: Vec<Layer> = (0..self.hidden_layers)
                    .map(|j| b.linear(&numbered("fc1", j), if j == 0 { self.encoder_in() } else { h }, h))
                    .collect();
                (encoder, h)
            }
            Arch::Conv | Arch::Resnet => {
                let mut encoder = Vec::new();
                let (mut c, mut h, mut w) = (self.channels, self.image_rows, self.image_cols);
                for (i, &width) in self.widths.iter().enumerate() {
                    let kind = LayerKind::Conv2d { geometry: halving(c, h, w), out_channels: width };
                    encoder.push(b.layer(&format!("encoder.{i}"), kind));
                    (c, h, w) = (width, h / 2, w / 2);
                    // encoder_res.{i}.{j}: the blocks at the side encoder.{i} made.
                    for j in 0..self.blocks {
                        encoder.extend(b.residual_block(&format!("encoder_res.{i}.{j}"), c, h, w));
                    }
                }
                // With a hidden layer (disentanglement_lib's conv encoder), the flattened
                // features through `encoder_fc` first.
                let features = match self.hidden_dim {
                    0 => c * h * w,
                    hidden => {
                        encoder.push(b.linear("encoder_fc", c * h * w, hidden));
                        hidden
                    }
                };
                // The features, then a cvae's one-hot label (the reference's torch.cat).
                (encoder, features + self.cond_dim())
            }
        };
        let head = self.head(&mut b, head_in);
        let (decoder, output) = match self.arch {
            Arch::Mlp => {
                let h = self.hidden_dim;
                let decoder = (0..self.hidden_layers)
                    .map(|j| b.linear(&numbered("fc2", j), if j == 0 { self.decoder_in() } else { h }, h))
                    .collect();
                (decoder, b.linear("fc3", h, self.output_rows()))
            }
            Arch::Conv | Arch::Resnet => {
                let n = self.widths.len();
                let side = |i: usize| (self.image_rows >> i, self.image_cols >> i);
                let (h, w) = side(n);
                let map = self.widths[n - 1] * h * w;
                let mut decoder = match self.hidden_dim {
                    0 => vec![b.linear("decoder_input", self.decoder_in(), map)],
                    // decoder_input to the hidden layer, decoder_fc to the first feature map.
                    hidden => {
                        vec![b.linear("decoder_input", self.decoder_in(), hidden), b.linear("decoder_fc", hidden, map)]
                    }
                };
                // decoder_res.{j}, then decoder.{j}: ConvTranspose2d(w_{n−j} → w_{n−j−1}), back up
                // to the image's channels.
                for j in 0..n {
                    let i = n - 1 - j; // decoder.{j}'s output is the encoder's layer-i input side
                    let (h, w) = side(i + 1);
                    for r in 0..self.blocks {
                        decoder.extend(b.residual_block(&format!("decoder_res.{j}.{r}"), self.widths[i], h, w));
                    }
                    let out_channels =
                        if i == 0 { self.likelihood.output_channels(self.shape()) } else { self.widths[i - 1] };
                    let (h, w) = side(i);
                    let kind = LayerKind::ConvTranspose2d {
                        geometry: halving(out_channels, h, w),
                        in_channels: self.widths[i],
                    };
                    decoder.push(b.layer(&format!("decoder.{j}"), kind));
                }
                let output = decoder.pop().expect("at least one width");
                (decoder, output)
            }
        };
        let logvar = self.likelihood.learns_variance().then(|| b.push("likelihood.logvar", vec![self.channels], None));
        let k = self.prior.pseudo_inputs();
        let shape = vec![k, self.channels, self.image_rows, self.image_cols];
        let pseudo_inputs = (k > 0).then(|| b.push("prior.pseudo_inputs", shape, None));
        let (prior_means, prior_logvars) = match self.prior {
            Prior::Mog { components } => {
                let shape = vec![components, self.latent_dim];
                (Some(b.push("prior.means", shape.clone(), None)), Some(b.push("prior.logvars", shape, None)))
            }
            _ => (None, None),
        };
        let model_len = b.len;
        let discriminator = match self.discriminator {
            None => Vec::new(),
            Some(d) => (0..=d.layers)
                .map(|j| {
                    let inputs = if j == 0 { self.latent_dim } else { d.hidden };
                    let outputs = if j == d.layers { 2 } else { d.hidden };
                    // nn.Sequential(Linear, LeakyReLU, Linear, …): the linear layers are 0, 2, 4, …
                    b.linear(&format!("discriminator.{}", 2 * j), inputs, outputs)
                })
                .collect(),
        };
        Layout {
            encoder,
            head,
            decoder,
            output,
            logvar,
            pseudo_inputs,
            prior_means,
            prior_logvars,
            discriminator,
            model_len,
            tensors: b.tensors,
            len: b.len,
        }
    }

    /// `fc_mu` and, for variational models, `fc_logvar`, laid out as one `[E, inputs]` layer.
    fn head(&self, b: &mut LayoutBuilder, inputs: usize) -> Layer {
        let l = self.latent_dim;
        let fan_in = Some(inputs);
        let mu_w = b.push("fc_mu.weight", vec![l, inputs], fan_in);
        let lv_w = self.kind.variational().then(|| b.push("fc_logvar.weight", vec![l, inputs], fan_in));
        let mu_b = b.push("fc_mu.bias", vec![l], fan_in);
        let lv_b = self.kind.variational().then(|| b.push("fc_logvar.bias", vec![l], fan_in));
        Layer {
            name: "fc_mu".into(),
            kind: LayerKind::Linear { inputs, outputs: self.encoder_out() },
            w: mu_w.start..lv_w.map_or(mu_w.end, |r| r.end),
            b: mu_b.start..lv_b.map_or(mu_b.end, |r| r.end),
            residual: false,
        }
    }
}

/// `base`, `base_2`, `base_3`, … for hidden layer j = 0, 1, 2, ….
fn numbered(base: &str, j: usize) -> String {
    if j == 0 { base.to_string() } else { format!("{base}_{}", j + 1) }
}

/// The default `--widths` for a side: one stride-2 layer per halving while the side stays a
/// whole number of pixels and at least 4 (up to 5 layers), 32 channels doubling to 256 at
/// most: 28 → 32,64 (the reference); 32 → 32,64,128; 64 → 32,64,128,256;
/// 128 → 32,64,128,256,256. Empty when the side cannot be halved once.
pub fn default_widths(side: usize) -> Vec<usize> {
    let mut widths = Vec::new();
    let mut s = side;
    while widths.len() < 5 && s.is_multiple_of(2) && s / 2 >= 4 {
        widths.push((32 << widths.len()).min(256));
        s /= 2;
    }
    widths
}

/// Checks `--widths` against the image: every layer halves both sides, so each must be
/// divisible by 2^layers.
///
/// # Errors
/// A message naming the flags to change if `widths` is empty, a width is 0 or above 4096, or the
/// image sides are not divisible by 2 to the power of the number of widths.
pub fn check_widths(widths: &[usize], shape: Shape) -> Result<(), String> {
    if widths.is_empty() {
        return Err(format!(
            "--arch conv needs at least one width, and a {} side cannot be halved; pass --image-size with an even \
             size (28, 32, 64, …)",
            shape.height.min(shape.width)
        ));
    }
    if widths.contains(&0) || widths.iter().any(|&w| w > 4096) {
        return Err(format!("--widths {widths:?}: every width must be between 1 and 4096"));
    }
    let n = widths.len();
    let factor = 1usize.checked_shl(n as u32).filter(|_| n < 16).unwrap_or(usize::MAX);
    let (h, w) = (shape.height, shape.width);
    if !(h.is_multiple_of(factor) && w.is_multiple_of(factor)) || h / factor == 0 || w / factor == 0 {
        let suggestion = default_widths(h.min(w));
        let fewer = if suggestion.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = suggestion.iter().map(usize::to_string).collect();
            format!(", or fewer widths (--widths {})", list.join(","))
        };
        return Err(format!(
            "--widths {} has {n} stride-2 layers, so the image sides must be divisible by 2^{n} = {factor}, but the \
             images are {w}x{h}; pass --image-size {}{fewer}",
            widths.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
            (h.min(w) / factor).max(1) * factor,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
