//! `vae train`: its arguments, a new run or a resumed one, Ctrl-C, and the files it ends with.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc: placeholders such as
//! `<model>` are meant literally.
#![allow(rustdoc::invalid_html_tags)]

use super::args::{MAX_EPOCHS, MAX_LIMIT, count, non_negative, positive};
use super::launch::{Group, check_batch};
use super::{DataArgs, curves, group, load_data, threads_arg};
use crate::checkpoint::{RunConfig, RunDir};
use crate::core::AdamConfig;
use crate::core::Shape;
use crate::data::Binarize;
use crate::data::Source;
use crate::model::config::Activation;
use crate::model::{Arch, Likelihood, ModelConfig, ModelKind};
use crate::run::{RECONSTRUCTIONS, ResumeChanges, Role, Run};
use crate::train::{Objective, TrainConfig};
use anyhow::Context as _;
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
fn model_config(a: &TrainArgs, shape: Shape, classes: usize) -> Result<ModelConfig> {
    let kind = a.model.unwrap_or(ModelKind::Vae);
    if !kind.variational() && (a.beta.is_some() || a.kl_warmup.is_some()) {
        let flag = if a.beta.is_some() { "--beta" } else { "--kl-warmup" };
        bail!("{flag} weights the KL term, and an ae has none; drop {flag}, or train --model vae");
    }
    // dSprites defaults to disentanglement_lib's model: 4x4 stride-2 convolutions of 32, 32,
    // 64 and 64 channels, a 256-unit layer, 10 latents (Locatello et al. 2019).
    let dsprites = a.data.dataset == Some(super::DatasetName::Dsprites);
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
fn objective(a: &TrainArgs) -> Result<Objective> {
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
fn default_warmup(model: &ModelConfig, objective: Objective) -> usize {
    let elbo = matches!(objective, Objective::Elbo | Objective::ElboK { .. });
    let mixture = matches!(model.likelihood, Likelihood::LogisticMixture { .. });
    if elbo && mixture && model.kind.variational() { MIXTURE_WARMUP } else { 0 }
}

/// The logistic mixture's default KL warm-up, in epochs. The per-pixel mixture can explain
/// pictures without the code, and on the icons (BENCHMARKS.md, sessions 22–23) the code
/// collapsed on one seed in five in `vae` and three in PyTorch; warmed up over 5 epochs, on
/// none in either, and both scored 0.14 bits/dim better on average.
pub const MIXTURE_WARMUP: usize = 5;

/// `vae train`: trains a new run, or continues one with `--resume`.
///
/// # Errors
/// If a flag the run's config fixes is given with `--resume`, a flag is invalid, the data cannot be
/// loaded, the run directory cannot be created, locked, read or written (see [`Run::create`] and
/// [`Run::resume`]), training diverges or is interrupted, or the closing pictures cannot be
/// written.
pub fn train(a: TrainArgs) -> Result<()> {
    let mut group = Group::from_launcher()?;
    let result = train_in(a, &mut group);
    group.conclude(result)
}

/// [`train`] as a process of `group`: rank 0 (or a process alone) writes the run and prints;
/// the other ranks train their part of every batch silently.
fn train_in(a: TrainArgs, group: &mut Group) -> Result<()> {
    let quiet = a.quiet || group.role == Role::Follower;
    let Some(mut run) = open_as(&a, group)? else { return Ok(()) };
    if let Some(collective) = group.take_collective() {
        run.trainer.join(collective).map_err(anyhow::Error::msg)?;
    }
    if !quiet {
        announce(&run);
    }
    // First Ctrl-C: stop before the next step, keeping every completed epoch (the error names
    // the resume command). A second one exits at once, which is safe too: files are replaced
    // atomically.
    let interrupt = run.trainer.interrupt.clone();
    let _ = ctrlc::set_handler(move || {
        if interrupt.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    let (step, start) = (run.trainer.adam.step, std::time::Instant::now());
    run.train(quiet)?;
    if group.role == Role::Follower {
        return Ok(());
    }
    group.report(run.trainer.adam.step - step, start.elapsed().as_secs_f64());
    finish(&run, a.fit_sampler, a.quiet)
}

/// The run the flags ask for, ready to train: a new one, or `--resume`'s. `None` when it has
/// already completed its epochs (said on stdout, and its closing pictures made if it was
/// killed before them).
///
/// # Errors
/// As [`train`], for everything before the first step.
pub fn open(a: &TrainArgs) -> Result<Option<Run>> {
    open_as(a, &Group::alone())
}

/// [`open`] for a process of `group`: a follower reads the run rank 0 writes, and says
/// nothing.
fn open_as(a: &TrainArgs, group: &Group) -> Result<Option<Run>> {
    let quiet = a.quiet || group.role == Role::Follower;
    let run = if let Some(dir) = a.resume.clone() {
        let fixed: [(&str, bool); 36] = [
            ("--augment", a.augment.is_some()),
            ("--kl-warmup", a.kl_warmup.is_some()),
            ("--prior", a.prior.is_some()),
            ("--pseudo-inputs", a.pseudo_inputs.is_some()),
            ("--components", a.components.is_some()),
            ("--lr-schedule", a.lr_schedule.is_some()),
            ("--adam-eps", a.adam_eps.is_some()),
            ("--init", a.init.is_some()),
            ("--output-bias", a.output_bias.is_some()),
            ("--arch", a.arch.is_some()),
            ("--widths", a.widths.is_some()),
            ("--blocks", a.blocks.is_some()),
            ("--likelihood", a.likelihood.is_some()),
            ("--sigma", a.sigma.is_some()),
            ("--mixtures", a.mixtures.is_some()),
            ("--objective", a.objective.is_some()),
            ("--k", a.k.is_some()),
            ("--binarize", a.binarize.is_some()),
            ("--model", a.model.is_some()),
            ("--hidden-layers", a.hidden_layers.is_some()),
            ("--activation", a.activation.is_some()),
            ("--latent-dim", a.latent_dim.is_some()),
            ("--hidden-dim", a.hidden_dim.is_some()),
            ("--beta", a.beta.is_some()),
            ("--gamma", a.gamma.is_some()),
            ("--factors", a.factors.is_some()),
            ("--batch-size", a.batch_size.is_some()),
            ("--seed", a.seed.is_some()),
            ("--dataset", a.data.dataset.is_some()),
            ("--image-size", a.data.image_size.is_some()),
            ("--color", a.data.color.is_some()),
            ("--background", a.data.background.is_some()),
            ("--test-fraction", a.data.test_fraction.is_some()),
            ("--train-limit", a.train_limit.is_some()),
            ("--test-limit", a.test_limit.is_some()),
            ("--precision", a.precision.is_some()),
        ];
        if let Some((flag, _)) = fixed.iter().find(|(_, given)| *given) {
            bail!(
                "{flag} cannot be changed when resuming: the run's config.json fixes it (only --epochs, --lr, --threads, --micro-batches, and --data-dir for a folder that moved, may be given with --resume)"
            );
        }
        let config = RunDir::new(&dir).load_config()?;
        let micro = a.micro_batches.unwrap_or(config.train.micro_batches);
        check_batch(config.train.batch_size, group.size, micro)?;
        let threads = a.threads.map(|t| resolve_threads(t, group));
        if let Some(t) = threads.filter(|&t| t != config.train.threads)
            && !quiet
        {
            eprintln!(
                "note: resuming on {t} thread{} where the run used {}: sums now add up in another order, so from here \
                 on the figures and weights differ in the last bits from an uninterrupted run",
                if t == 1 { "" } else { "s" },
                config.train.threads
            );
        }
        let (parts, recorded) = (group.size * micro, config.train.world_size * config.train.micro_batches);
        if parts != recorded && !quiet {
            eprintln!(
                "note: resuming with each batch in {parts} part{} (processes × micro-batches) where the run used \
                 {recorded}: sums now add up in another order, so from here on the figures and weights differ in the \
                 last bits from an uninterrupted run (--micro-batches {} keeps them)",
                if parts == 1 { "" } else { "s" },
                if recorded.is_multiple_of(group.size) { (recorded / group.size).to_string() } else { "N".into() },
            );
        }
        let run_dir = RunDir::new(&dir);
        let moved_to = a.data.data_dir.as_deref();
        let source = crate::rundata::source(&run_dir, &config, moved_to)?;
        let (data, _) = load_data(&source, quiet)?;
        // A moved folder must hold the same images; one changed in place is trained on as it
        // is now, with a warning (and the record follows it).
        crate::rundata::check(&run_dir, &source, &data, moved_to.is_some(), quiet)?;
        let moved = moved_to.map(|_| source);
        let world_size = Some(group.size);
        let changes =
            ResumeChanges { epochs: a.epochs, lr: a.lr, threads, moved, world_size, micro_batches: Some(micro) };
        Run::resume_as(dir, changes, data, group.role)?
    } else {
        let seed = a.seed.unwrap_or(1);
        check_early(a)?;
        check_batch(a.batch_size.unwrap_or(128), group.size, a.micro_batches.unwrap_or(1))?;
        let (data, source) = load_data(&a.data.source(seed)?, quiet)?;
        let kind = a.model.unwrap_or(ModelKind::Vae);
        let mut model = model_config(a, data.train.shape, data.classes.len())?;
        if matches!(source, Source::Folder(_) | Source::Arrays(_)) {
            model.class_names = data.classes.clone();
        }
        if kind.conditional() && data.classes.len() >= 2 && !quiet {
            warn_small_classes(&data, a.batch_size.unwrap_or(128), a.train_limit);
        }
        let threads = resolve_threads(a.threads.unwrap_or(0), group);
        let schedule = a.lr_schedule.unwrap_or_default();
        let objective = objective(a)?;
        let train = TrainConfig {
            epochs: a.epochs.or(schedule.epochs()).unwrap_or(50),
            batch_size: a.batch_size.unwrap_or(128),
            adam: AdamConfig {
                lr: a.lr.unwrap_or(1e-3),
                eps: a.adam_eps.unwrap_or(AdamConfig::default().eps),
                ..AdamConfig::default()
            },
            beta: a.beta.unwrap_or(1.0),
            seed,
            threads,
            dataset: source,
            train_limit: a.train_limit,
            test_limit: a.test_limit,
            binarize: a.binarize.unwrap_or_default(),
            objective,
            lr_schedule: schedule,
            init: a.init.unwrap_or_default(),
            output_bias: a.output_bias.unwrap_or_default(),
            kl_warmup: a.kl_warmup.unwrap_or_else(|| default_warmup(&model, objective)),
            augment: a.augment.unwrap_or_default().resolve(data.train.shape).map_err(anyhow::Error::msg)?,
            precision: recorded_precision(a.precision.unwrap_or_default()),
            world_size: group.size,
            micro_batches: a.micro_batches.unwrap_or(1),
            gamma: match a.objective {
                Some(ObjectiveName::Factorvae) => Some(a.gamma.unwrap_or(DEFAULT_GAMMA)),
                _ => a.gamma,
            },
        };
        let out = a.out.clone().unwrap_or_else(|| default_run_dir(kind));
        let config = RunConfig {
            kind: crate::checkpoint::dirkind::DirKind::VaeRun,
            model,
            train,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        // The folder's factors, checked against its pictures before anything is written.
        let factors = match (&a.factors, &config.train.dataset) {
            (None, _) => None,
            (Some(csv), Source::Folder(folder)) => {
                crate::eval::truth::FolderFactors::load(csv, folder)?;
                Some(std::fs::read(csv).with_context(|| format!("cannot read {}", csv.display()))?)
            }
            (Some(_), _) => {
                bail!(
                    "--factors gives the factors of an image folder's pictures; add --data-dir DIR, or drop --factors"
                )
            }
        };
        let run = Run::create_as(out, config, data, group.role)?;
        if let Some(bytes) = factors.filter(|_| group.role == Role::Writer) {
            let path = run.dir.file(crate::eval::truth::FACTORS_FILE);
            crate::io::write_atomic(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
        }
        run
    };
    let t = &run.trainer;
    if t.epoch >= t.config.epochs {
        if group.role == Role::Follower {
            return Ok(None);
        }
        println!(
            "{} already completed its {}; pass --epochs N (the new total) to train further",
            run.dir.path.display(),
            crate::text::plural(t.config.epochs, "epoch")
        );
        // Killed after its last epoch but before the closing pictures: make them now.
        if !run.dir.file(RECONSTRUCTIONS).exists() {
            run.save_reconstructions()?;
            curves::write_curves(&run.dir, None)?;
        }
        return Ok(None);
    }
    Ok(Some(run))
}

/// The line that starts training: what trains on what, where, and in which precision.
pub fn announce(run: &Run) {
    let t = &run.trainer;
    let verb = if t.epoch > 0 { format!("resuming after epoch {}", t.epoch) } else { "training".into() };
    let augment = t.config.augment;
    println!(
        "{verb} {} ({} parameters{}) on {}: {} train{} / {} test images, {} steps/epoch, {} -> {}",
        t.model.config().kind,
        group(t.model.network.layout.model_len),
        match t.model.network.layout.len - t.model.network.layout.model_len {
            0 => String::new(),
            d => format!(", and a discriminator of {}", group(d)),
        },
        t.config.dataset,
        t.data.train.len(),
        if augment.is_none() { String::new() } else { format!(" ({})", augment.label()) },
        t.data.test.len(),
        t.steps_per_epoch(),
        match t.config.world_size {
            1 => crate::text::plural(t.pool.threads(), "thread"),
            n => format!("{n} processes × {}", crate::text::plural(t.pool.threads(), "thread")),
        },
        run.dir.path.display()
    );
    match t.config.precision.path() {
        Ok(path) if t.config.precision.runs_bf16() => println!("precision: {path}"),
        Ok(_) => {}
        Err(why) => eprintln!("note: --precision {}: {why}; training in f32", t.config.precision.name()),
    }
}

/// The end of a run that trained to its last epoch: the latent mixture (`--fit-sampler K`,
/// 0 to skip), the learning curves and the reconstructions, said on stdout unless `quiet`.
///
/// # Errors
/// If the mixture cannot be fitted or a file cannot be written.
pub fn finish(run: &Run, fit_sampler_k: usize, quiet: bool) -> Result<()> {
    let fitted = fit_sampler(run, fit_sampler_k, quiet)?;
    // Curves first: reconstructions.png is the last file a finished run writes.
    let curves = curves::write_curves(&run.dir, None)?;
    let recon = run.save_reconstructions()?;
    if !quiet {
        println!(
            "done: weights in {}, samples in {}, reconstructions in {}, learning curves in {}",
            run.dir.file(crate::checkpoint::MODEL_FILE).display(),
            run.dir.samples_dir().display(),
            recon.display(),
            curves.display()
        );
        let (d, vae) = (run.dir.path.display(), crate::text::command_name());
        let (c, last) = (&run.config, run.metrics.last());
        if let Some(m) = last
            && c.model.kind.variational()
            && let Some(note) =
                crate::eval::collapse_note(m.test_kl.unwrap_or(m.train_kl), c.train.beta, c.train.kl_warmup)
        {
            eprintln!("{note}");
        }
        if fitted {
            println!(
                "next: `{vae} sample {d}` draws new images from the fitted mixture (`--sampler prior` from N(0, I)), \
                 `{vae} eval {d}` measures it, `{vae} serve {d}` opens it in the browser"
            );
        } else {
            println!("next: `{vae} eval {d}` measures it, `{vae} serve {d}` opens it in the browser");
        }
    }
    Ok(())
}

/// The end of training: fits the latent mixture ([`Run::fit_sampler`]) with up to `k`
/// components, unless `k` is 0 or the model is never sampled, and says what it did. Returns
/// whether a mixture was fitted.
fn fit_sampler(run: &Run, k: usize, quiet: bool) -> Result<bool> {
    let c = run.trainer.model.config();
    if k == 0 || !c.kind.variational() {
        return Ok(false);
    }
    let start = std::time::Instant::now();
    let fitted = run.fit_sampler(k)?;
    if quiet {
        return Ok(true);
    }
    let codes: usize = fitted.mixtures.iter().map(|m| m.codes).sum();
    let gain: f64 = fitted.mixtures.iter().map(|m| (m.log_density - m.prior_log_density) * m.codes as f64).sum::<f64>()
        / codes.max(1) as f64;
    println!(
        "sampler: a Gaussian mixture of up to {k} components{} fitted to {} training codes in {:.1} s \
         ({gain:+.1} nats per code over N(0, I)); epoch {}'s grid redrawn from it -> {}",
        if fitted.mixtures.len() > 1 { " per class" } else { "" },
        group(codes),
        start.elapsed().as_secs_f64(),
        run.trainer.epoch,
        run.grid_path(run.trainer.epoch).display()
    );
    let capped = crate::sampler::capped(&fitted, &run.config.class_names());
    if !capped.is_empty() {
        eprintln!(
            "warning: too few training images for {k} components (one per {} codes) in: {}",
            2 * c.latent_dim,
            capped.join(", ")
        );
    }
    Ok(true)
}

/// Warns when a cvae's class has fewer training images than a batch: its label is then in
/// few steps of an epoch, and it is learned (and sampled) worse than the others.
fn warn_small_classes(data: &crate::data::Dataset, batch: usize, limit: Option<usize>) {
    // A limit's sample takes each class's quota of it: the counts follow without drawing it.
    let all = data.train.label_counts(data.classes.len());
    let counts = limit.map_or_else(|| all.clone(), |n| crate::data::subset::quotas(&all, n));
    let small: Vec<String> = counts
        .iter()
        .zip(&data.classes)
        .filter(|(n, _)| **n < batch)
        .map(|(n, name)| format!("{name} ({n})"))
        .collect();
    if !small.is_empty() {
        eprintln!(
            "warning: {} fewer training images than a batch of {batch}: {}; the cvae sees {} in few steps \
             and learns {} worse (more images, or a smaller --batch-size, help)",
            if small.len() == 1 { "1 class has".to_string() } else { format!("{} classes have", small.len()) },
            small.join(", "),
            if small.len() == 1 { "it" } else { "them" },
            if small.len() == 1 { "it" } else { "them" },
        );
    }
}

/// Checks the model and training flags before any data is read (decoding a large folder
/// takes a while, and a typo should not wait for it), wherever the flags fix the images'
/// shape: MNIST's, or a folder's with `--image-size` (its channels from `--color`, RGB
/// otherwise: either is valid). The class count is checked once the data is loaded.
fn check_early(a: &TrainArgs) -> Result<()> {
    let shape = match (&a.data.data_dir, a.data.image_size) {
        (None, _) if a.data.dataset == Some(super::DatasetName::Dsprites) => crate::data::dsprites::shape(),
        (None, _) => Shape::mnist(),
        (Some(_), Some(s)) => {
            let channels = if a.data.color == Some(crate::data::Color::Grey) { 1 } else { 3 };
            Shape::new(channels, s, s)
        }
        (Some(_), None) => return Ok(()),
    };
    a.augment.unwrap_or_default().resolve(shape).map_err(anyhow::Error::msg)?;
    model_config(a, shape, 10)?.validate().map_err(anyhow::Error::msg)
}

/// The precision a new run records: the one asked for, or f32 where bf16 cannot run here
/// (said once, so that `config.json` and `vae runs` tell what the run trained in).
fn recorded_precision(asked: crate::core::bf16::Precision) -> crate::core::bf16::Precision {
    match asked.path() {
        Ok(_) => asked,
        Err(why) => {
            eprintln!("note: --precision {}: {why}; training in f32 (and config.json says so)", asked.name());
            crate::core::bf16::Precision::F32
        }
    }
}

/// `--threads`: 0 means all cores (shared among the group's processes on this machine).
fn resolve_threads(threads: usize, group: &Group) -> usize {
    if threads == 0 { group.default_threads() } else { threads }
}

/// `runs/<model>-YYYYMMDD-HHMMSS` (UTC), with a suffix if that already exists.
fn default_run_dir(kind: ModelKind) -> PathBuf {
    let base = PathBuf::from("runs").join(format!("{kind}-{}", crate::clock::stamp()));
    let mut path = base.clone();
    let mut i = 2;
    while path.exists() {
        path = PathBuf::from(format!("{}-{i}", base.display()));
        i += 1;
    }
    path
}
