//! `vae train`'s flags (clap derive) and what they become: the model's config, its prior and
//! likelihood, and the objective.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc: placeholders such as
//! `<model>` are meant literally.
#![allow(rustdoc::invalid_html_tags)]

use crate::cli::args::{MAX_EPOCHS, MAX_LIMIT, count, non_negative, positive};
use crate::cli::{DataArgs, threads_arg};
use crate::core::Shape;
use crate::data::Binarize;
use crate::model::config::Activation;
use crate::model::{Arch, Likelihood, ModelConfig, ModelKind};
use crate::train::Objective;
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Default)]
#[command(next_line_help = true)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Model to train [default: vae]
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Layers of the encoder and decoder: fully connected (the tutorial's), stride-2
    /// convolutions, or those with residual blocks at each resolution [default: mlp; conv for
    /// --dataset dsprites]
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Dimension of the latent space z, 1 to 16384 [default: 20; 10 for --dataset dsprites]
    #[arg(long, value_name = "D", value_parser = count(1, 1 << 14))]
    pub latent_dim: Option<usize>,
    /// mlp: width of the hidden layers, 1 to 65536 [default: 400]; conv, resnet: a fully
    /// connected layer of this width after the convolutions and before the transposed ones
    /// [default: none; 256 for --dataset dsprites]
    #[arg(long, value_name = "H", value_parser = count(1, 1 << 16))]
    pub hidden_dim: Option<usize>,
    /// mlp: hidden layers in the encoder and in the decoder, 1 to 16 [default: 1]
    #[arg(long, value_name = "L", value_parser = count(1, 16))]
    pub hidden_layers: Option<usize>,
    /// resnet: residual blocks (two 3x3 convolutions and a skip) per resolution, in the
    /// encoder and the decoder, 1 to 16 [default: 1]
    #[arg(long, value_name = "N", value_parser = count(1, crate::model::config::MAX_BLOCKS))]
    pub blocks: Option<usize>,
    /// conv, resnet: channels of each stride-2 4x4 convolution, mirrored by the decoder [default:
    /// 32,64 for 28x28; 32,64,128 for 32; 32,64,128,256 for 64; 32,64,128,256,256 for 128;
    /// 32,32,64,64 for --dataset dsprites, disentanglement_lib's]
    #[arg(long, value_name = "W1,W2,...", value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    /// The decoder's likelihood p(x|z) [default: bernoulli]
    #[arg(long, value_enum)]
    pub likelihood: Option<LikelihoodName>,
    /// Fixed standard deviation of --likelihood gaussian, > 0 [default: learned, one per
    /// channel]
    #[arg(long, value_name = "SIGMA", value_parser = positive)]
    pub sigma: Option<f32>,
    /// Components of --likelihood logistic-mixture, 1 to 64 [default: 10, PixelCNN++'s]
    #[arg(long, value_name = "K", value_parser = count(1, crate::model::likelihood::MAX_MIXTURES))]
    pub mixtures: Option<usize>,
    /// The prior p(z) [default: standard]
    #[arg(long, value_enum)]
    pub prior: Option<PriorName>,
    /// --prior vamp: learned pseudo-inputs, 1 to 4096 [default: 500, Tomczak & Welling's]
    #[arg(long, value_name = "K", value_parser = count(1, crate::model::config::MAX_PSEUDO_INPUTS))]
    pub pseudo_inputs: Option<usize>,
    /// --prior mog: Gaussian components, 1 to 4096 [default: 10]
    #[arg(long, value_name = "K", value_parser = count(1, crate::model::config::MAX_PSEUDO_INPUTS))]
    pub components: Option<usize>,
    /// Non-linearity of the hidden layers [default: relu]
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// Weight of the KL term, ≥ 0; 1 is the ELBO [default: 1.0]
    #[arg(long, value_parser = non_negative)]
    pub beta: Option<f32>,
    /// A CSV of the ground-truth factors of the folder's pictures (header `file,<factor>,…`,
    /// then each picture's path in the folder and its value of each factor; every combination
    /// of values needs a picture), kept in the run as factors.csv for `vae disentanglement`
    #[arg(long, value_name = "FILE.csv")]
    pub factors: Option<PathBuf>,
    /// FactorVAE's weight of the total correlation, γ ≥ 0 (Kim & Mnih 2018; only with
    /// --objective factorvae) [default: 35]
    #[arg(long, value_parser = non_negative)]
    pub gamma: Option<f32>,
    /// Epochs of KL warm-up: the KL weight rises linearly from β/N in epoch 1 to β in epoch N
    /// (Sønderby et al. 2016; Tomczak & Welling use 100 for the VampPrior); 0 for none
    /// [default: 5 for a vae with --likelihood logistic-mixture on the ELBO, where without it
    /// the latent code often collapses; otherwise none]
    #[arg(long, value_name = "N", value_parser = count(0, MAX_EPOCHS))]
    pub kl_warmup: Option<usize>,
    /// What training minimises [default: elbo]
    #[arg(long, value_enum)]
    pub objective: Option<ObjectiveName>,
    /// Draws of z per example, 1 to 100: for iwae, the importance samples [default: 5]; for
    /// elbo, k > 1 averages the ELBO over k draws with the KL estimated by them (Burda et
    /// al.'s "VAE with k samples") [default: 1, the closed-form KL]
    #[arg(long, value_parser = count(1, crate::train::MAX_IWAE_SAMPLES))]
    pub k: Option<usize>,
    /// Adam learning rate, > 0; with --resume, the rate from the next epoch on; scaled by
    /// --lr-schedule [default: 0.001]
    #[arg(long, value_parser = positive)]
    pub lr: Option<f32>,
    /// Learning rate by epoch: constant; step:N:F (×F every N epochs); stages:S:G:F (S stages,
    /// stage i lasting G^i epochs at lr·F^i); burda (stages:8:3:10^(-1/7), 3,280 epochs, Burda
    /// et al. 2015); plateau, plateau:N or plateau:N:F (×F, default 0.5, each time the test loss has gone N
    /// epochs, default 10, without a new best; down to lr/1000) [default: constant]
    #[arg(long, value_name = "SCHEDULE")]
    pub lr_schedule: Option<crate::schedule::LrSchedule>,
    /// Adam's ε, > 0 (Burda et al. use 1e-4) [default: 1e-8, PyTorch's]
    #[arg(long, value_name = "EPS", value_parser = positive)]
    pub adam_eps: Option<f32>,
    /// How the weights start [default: pytorch]
    #[arg(long, value_enum)]
    pub init: Option<crate::train::Init>,
    /// Where the decoder's output bias starts [default: init]
    #[arg(long, value_enum)]
    pub output_bias: Option<crate::train::OutputBias>,
    /// Examples per optimisation step, 1 to 65536 [default: 128]
    #[arg(long, value_name = "B", value_parser = count(1, 1 << 16))]
    pub batch_size: Option<usize>,
    /// Total epochs, 1 to 100000; with --resume, the total to reach [default: 50, or the
    /// length of a stages schedule]
    #[arg(long, value_name = "N", value_parser = count(1, MAX_EPOCHS))]
    pub epochs: Option<usize>,
    /// Random seed for initialisation, shuffling and noise [default: 1]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads to use; 0 = all cores [default: 0]. With --resume, the run continues on them
    /// (its results then differ in the last bits from an uninterrupted run)
    #[arg(long, value_parser = threads_arg)]
    pub threads: Option<usize>,
    /// Compute each batch in N micro-batches, one after another, their gradients added up in
    /// f64: the same step with 1/N of the activation memory, and the same bits as N MPI
    /// processes (`mpirun -n N`) would train. With --resume it may change: keeping processes ×
    /// micro-batches the same keeps the bits [default: 1]
    #[arg(long, value_name = "N", value_parser = crate::cli::args::count(1, 1 << 16))]
    pub micro_batches: Option<usize>,
    /// Number format of the products (linear layers and convolutions): f32, or bf16 with f32
    /// sums where the CPU has AVX512_BF16 (AMD Zen 4/5, Intel Xeon from Cooper Lake on;
    /// elsewhere the run trains in f32 and says so). Weights, Adam, losses and checkpoints
    /// stay f32 [default: f32]
    #[arg(long, value_enum)]
    pub precision: Option<crate::core::bf16::Precision>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Run directory to create [default: runs/<model>-<UTC time>]
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR after its last completed epoch
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Train on N training examples only, a sample stratified across classes (seeded by
    /// --seed), N ≥ 1 [default: all]
    #[arg(long, value_name = "N", value_parser = count(1, MAX_LIMIT))]
    pub train_limit: Option<usize>,
    /// Evaluate on N test examples only, sampled the same way, N ≥ 1 [default: all]
    #[arg(long, value_name = "N", value_parser = count(1, MAX_LIMIT))]
    pub test_limit: Option<usize>,
    /// Random changes to each training image at every use, for small folders: hflip (mirror
    /// left-right with probability 1/2), crop (shift by up to P pixels, repeating the edge, as
    /// torchvision's RandomCrop(padding=P, padding_mode="edge"); P = 1/8 of the side, or
    /// crop:P), a list such as hflip,crop, or none [default: none]
    #[arg(long, value_name = "LIST")]
    pub augment: Option<crate::data::augment::AugmentArg>,
    /// Binarized MNIST: each pixel ~ Bernoulli(intensity), resampled at every use
    /// (dynamic) or drawn once (static) [default: none]
    #[arg(long, value_enum)]
    pub binarize: Option<Binarize>,
    /// At the end of training (and of each resumed stretch), fit a Gaussian mixture of up to
    /// K components (per class for a cvae) to the training codes, which `vae sample`, `serve`
    /// and `eval` then draw from instead of the prior (their `--sampler prior` still can);
    /// 0 to skip, 0 to 100
    #[arg(long, value_name = "K", default_value_t = crate::sampler::DEFAULT_COMPONENTS, value_parser = count(0, 100))]
    pub fit_sampler: usize,
    /// Print nothing but errors
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--prior`'s values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorName {
    /// N(0, I)
    Standard,
    /// The VampPrior (Tomczak & Welling 2018): a mixture of the posteriors of --pseudo-inputs learned inputs; the KL term is estimated by sampling
    Vamp,
    /// A learned mixture of --components diagonal Gaussians (equal weights); the KL term is estimated by sampling
    Mog,
}

/// Components of `--prior mog` without `--components`.
pub const DEFAULT_COMPONENTS: usize = 10;

/// Pseudo-inputs of `--prior vamp` without `--pseudo-inputs` (Tomczak & Welling's MNIST setting).
pub const DEFAULT_PSEUDO_INPUTS: usize = 500;

/// The prior the flags ask for; `--pseudo-inputs` only with vamp, `--components` only with
/// mog (both need a vae: [`ModelConfig::validate`] checks).
fn prior(a: &TrainArgs) -> Result<crate::model::config::Prior> {
    use crate::model::config::Prior;
    let name = a.prior.unwrap_or(PriorName::Standard);
    if a.pseudo_inputs.is_some() && name != PriorName::Vamp {
        bail!("--pseudo-inputs sets the components of --prior vamp; add --prior vamp")
    }
    if a.components.is_some() && name != PriorName::Mog {
        bail!("--components sets the Gaussians of --prior mog; add --prior mog")
    }
    Ok(match name {
        PriorName::Standard => Prior::Standard,
        PriorName::Vamp => Prior::Vamp { pseudo_inputs: a.pseudo_inputs.unwrap_or(DEFAULT_PSEUDO_INPUTS) },
        PriorName::Mog => Prior::Mog { components: a.components.unwrap_or(DEFAULT_COMPONENTS) },
    })
}

/// `--likelihood`'s values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LikelihoodName {
    /// Bernoulli(σ(o)), the tutorial's binary cross-entropy
    Bernoulli,
    /// Normal(o, σ²) with σ learned per channel, or fixed by --sigma
    Gaussian,
    /// The continuous Bernoulli (Loaiza-Ganem & Cunningham 2019): a proper density on [0, 1]
    ContinuousBernoulli,
    /// A Normal(o, σ²)'s mass on each 8-bit value's bin, σ learned per channel: a probability
    /// of the 256 values (PixelCNN++'s discretization)
    DiscretizedGaussian,
    /// PixelCNN++'s discretized mixture of logistics (--mixtures components per pixel, RGB
    /// channels depending on the earlier ones): a probability of the 256 values
    LogisticMixture,
}

/// The likelihood the flags ask for; `--sigma` only makes sense with a Gaussian.
fn likelihood(a: &TrainArgs) -> Result<Likelihood> {
    let name = a.likelihood.unwrap_or(LikelihoodName::Bernoulli);
    if a.mixtures.is_some() && name != LikelihoodName::LogisticMixture {
        bail!("--mixtures sets the components of --likelihood logistic-mixture; add --likelihood logistic-mixture");
    }
    Ok(match (name, a.sigma) {
        (LikelihoodName::Gaussian, sigma) => Likelihood::Gaussian { sigma },
        (_, Some(_)) => {
            bail!("--sigma sets the standard deviation of --likelihood gaussian; add --likelihood gaussian")
        }
        (LikelihoodName::Bernoulli, None) => Likelihood::Bernoulli,
        (LikelihoodName::ContinuousBernoulli, None) => Likelihood::ContinuousBernoulli,
        (LikelihoodName::DiscretizedGaussian, None) => Likelihood::DiscretizedGaussian,
        (LikelihoodName::LogisticMixture, None) => {
            Likelihood::LogisticMixture { mixtures: a.mixtures.unwrap_or(crate::model::likelihood::DEFAULT_MIXTURES) }
        }
    })
}

/// The model the flags ask for on images of `shape` with `classes` classes.
pub(super) fn model_config(a: &TrainArgs, shape: Shape, classes: usize) -> Result<ModelConfig> {
    let kind = a.model.unwrap_or(ModelKind::Vae);
    if !kind.variational() && (a.beta.is_some() || a.kl_warmup.is_some()) {
        let flag = if a.beta.is_some() { "--beta" } else { "--kl-warmup" };
        bail!("{flag} weights the KL term, and an ae has none; drop {flag}, or train --model vae");
    }
    // dSprites defaults to disentanglement_lib's model: 4x4 stride-2 convolutions of 32, 32,
    // 64 and 64 channels, a 256-unit layer, 10 latents (Locatello et al. 2019).
    let dsprites = a.data.dataset == Some(crate::cli::DatasetName::Dsprites);
    let latent = a.latent_dim.unwrap_or(if dsprites { 10 } else { 20 });
    if a.blocks.is_some() && a.arch != Some(Arch::Resnet) {
        bail!("--blocks sets the residual blocks of --arch resnet; add --arch resnet");
    }
    let arch = a.arch.unwrap_or(if dsprites { Arch::Conv } else { Arch::default() });
    let mut config = match arch {
        Arch::Mlp => {
            if a.widths.is_some() {
                bail!("--widths sets the channels of --arch conv; add --arch conv, or use --hidden-dim for an mlp");
            }
            ModelConfig {
                kind,
                image_rows: shape.height,
                image_cols: shape.width,
                channels: shape.channels,
                hidden_dim: a.hidden_dim.unwrap_or(400),
                latent_dim: latent,
                hidden_layers: a.hidden_layers.unwrap_or(1),
                ..ModelConfig::tutorial(kind)
            }
        }
        arch @ (Arch::Conv | Arch::Resnet) => {
            if a.hidden_layers.is_some() {
                bail!(
                    "--hidden-layers sizes an mlp; a conv model's layers are set by --widths (e.g. --widths 32,64), \
                     and --hidden-dim adds one fully connected layer"
                );
            }
            let blocks = a.blocks.unwrap_or(crate::model::config::DEFAULT_BLOCKS);
            let mut c = match arch {
                Arch::Resnet => ModelConfig::resnet(kind, shape, latent, blocks),
                _ => ModelConfig::conv(kind, shape, latent),
            };
            c.widths = a.widths.clone().unwrap_or(if dsprites { vec![32, 32, 64, 64] } else { c.widths });
            c.hidden_dim = a.hidden_dim.unwrap_or(if dsprites { 256 } else { 0 });
            c
        }
    };
    config.classes = classes;
    config.prior = prior(a)?;
    config.activation = a.activation.unwrap_or_default();
    config.likelihood = likelihood(a)?;
    // A density is fitted to dequantized values, so its bound is a code length for the bytes.
    config.dequantize = config.likelihood.is_continuous();
    if a.objective == Some(ObjectiveName::Factorvae) {
        config.discriminator = Some(crate::model::config::Discriminator::default());
    }
    if !config.likelihood.is_continuous() || a.binarize.is_none_or(|b| b.is_none()) {
        return Ok(config);
    }
    bail!(
        "--likelihood {} is a density for grey levels, but --binarize makes every pixel 0 or 1, where a density can \
         grow without bound; use the default --likelihood bernoulli for binarized data",
        config.likelihood.name()
    )
}

/// `--objective`'s values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectiveName {
    /// The ELBO, BCE + β·KL with the KL in closed form (the tutorial's)
    Elbo,
    /// The importance-weighted bound with --k samples (Burda, Grosse & Salakhutdinov 2015)
    Iwae,
    /// β-TCVAE (Chen et al. 2018): the ELBO with the total correlation of the codes weighted
    /// by --beta (β = 6 in Locatello et al. 2019), estimated on each batch
    Tcvae,
    /// FactorVAE (Kim & Mnih 2018): the ELBO plus --gamma times the total correlation, estimated
    /// by a discriminator (6 layers of 1,000 units) trained beside the model
    Factorvae,
}

/// FactorVAE's γ when `--objective factorvae` is given without `--gamma` (Locatello et al.
/// 2019 sweep 10–100; Kim & Mnih's dSprites figures include 35).
pub const DEFAULT_GAMMA: f32 = 35.0;

/// Importance samples per example when `--objective iwae` is given without `--k`.
pub const DEFAULT_K: usize = 5;

impl ObjectiveName {
    /// The objective, with `k` draws per example for `iwae`.
    pub fn with_k(self, k: usize) -> Objective {
        match self {
            ObjectiveName::Elbo => Objective::Elbo,
            ObjectiveName::Iwae => Objective::Iwae { k },
            ObjectiveName::Tcvae => Objective::Tcvae,
            ObjectiveName::Factorvae => Objective::Factorvae,
        }
    }
}

/// The objective the flags ask for: `--k` draws for `iwae` (default [`DEFAULT_K`]), or the
/// k-draw ELBO for `elbo --k K` (any K, 1 included: the ELBO with a sampled KL).
pub(super) fn objective(a: &TrainArgs) -> Result<Objective> {
    Ok(match (a.objective.unwrap_or(ObjectiveName::Elbo), a.k) {
        (ObjectiveName::Elbo, Some(k)) => Objective::ElboK { k },
        (name @ (ObjectiveName::Tcvae | ObjectiveName::Factorvae), Some(_)) => {
            let name = if name == ObjectiveName::Tcvae { "β-TCVAE" } else { "FactorVAE" };
            bail!("--k sets the draws of --objective elbo or iwae; {name} takes one draw")
        }
        (name, k) => name.with_k(k.unwrap_or(DEFAULT_K)),
    })
}

/// Epochs of KL warm-up when `--kl-warmup` is not given: [`MIXTURE_WARMUP`] for a
/// variational model with the logistic mixture trained on the ELBO, none otherwise.
pub(super) fn default_warmup(model: &ModelConfig, objective: Objective) -> usize {
    let elbo = matches!(objective, Objective::Elbo | Objective::ElboK { .. });
    let mixture = matches!(model.likelihood, Likelihood::LogisticMixture { .. });
    if elbo && mixture && model.kind.variational() { MIXTURE_WARMUP } else { 0 }
}

/// The logistic mixture's default KL warm-up, in epochs. The per-pixel mixture can explain
/// pictures without the code, and on the icons (BENCHMARKS.md, sessions 22–23) the code
/// collapsed on one seed in five in `vae` and three in PyTorch; warmed up over 5 epochs, on
/// none in either, and both scored 0.14 bits/dim better on average.
pub const MIXTURE_WARMUP: usize = 5;
