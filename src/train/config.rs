//! How a run is trained (`config.json`'s `train` part): epochs, batch, Adam, β, the
//! objective and the output bias's initialisation, and what each option means.

use crate::core::bf16::Precision;
use crate::core::{AdamConfig, Purpose, Rng};
use crate::data::binarize::binarize_split;
use crate::data::{Augment, Binarize, Dataset, Source};
use crate::schedule::LrSchedule;
use serde::{Deserialize, Serialize};

/// How a run is trained; saved in `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total epochs the run is meant to reach.
    pub epochs: usize,
    pub batch_size: usize,
    pub adam: AdamConfig,
    /// Weight of the KL term (1 = the ELBO; Higgins et al. 2017 for β ≠ 1).
    pub beta: f32,
    pub seed: u64,
    /// Threads used; results are reproducible for the same seed and thread count.
    pub threads: usize,
    pub dataset: Source,
    /// Use only N training examples, a seeded sample stratified across classes (for quick
    /// experiments and tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// Use only N test examples, sampled the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    /// Binarized MNIST: none (grey levels), dynamic or static.
    #[serde(default, skip_serializing_if = "Binarize::is_none")]
    pub binarize: Binarize,
    /// What training minimises: the ELBO (the tutorial's) or the importance-weighted bound.
    #[serde(default, skip_serializing_if = "Objective::is_elbo")]
    pub objective: Objective,
    /// The learning rate of each epoch as a multiple of `adam.lr`.
    #[serde(default, skip_serializing_if = "LrSchedule::is_constant")]
    pub lr_schedule: LrSchedule,
    /// How the weights were initialised.
    #[serde(default, skip_serializing_if = "Init::is_pytorch")]
    pub init: Init,
    /// Where the output bias starts: as `init` sets it, or at the training set's mean image.
    #[serde(default, skip_serializing_if = "OutputBias::is_init")]
    pub output_bias: OutputBias,
    /// Epochs of KL warm-up: the KL weight rises linearly to `beta`, `beta · min(1, e / N)`
    /// in epoch e (Sønderby et al. 2016; Tomczak & Welling 2018 use 100); 0 = none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kl_warmup: usize,
    /// Random flips and shifts of the training images ([`crate::data::augment`]).
    #[serde(default, skip_serializing_if = "Augment::is_none")]
    pub augment: Augment,
    /// The number format of the products (`--precision`): f32, or bf16 with f32 sums where
    /// the CPU has it (elsewhere the run trains in f32). Weights, Adam and checkpoints stay
    /// f32 either way.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Data-parallel workers (MPI ranks, `mpirun -n N`), each computing 1/N of every batch
    /// on `threads` threads; 1 for one process. Results are reproducible for the same seed,
    /// threads and world size.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub world_size: usize,
    /// Micro-batches each worker computes its part of a batch in, one after another
    /// (`--micro-batches`): their f32 gradients are added in f64 in order and rounded once,
    /// exactly as `world_size × micro_batches` workers' would be, so one process with
    /// `micro_batches = N` trains an N-worker run's bits, and activations need 1/N of the
    /// memory. 1 = the whole part at once.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub micro_batches: usize,
    /// FactorVAE's weight of the total correlation, γ (`--gamma`; Kim & Mnih's dSprites
    /// figures use 35 among others); `None` for every other objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f32>,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

pub use crate::model::Init;

/// Where the decoder's output bias starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum OutputBias {
    /// As `--init` sets every bias
    #[default]
    Init,
    /// So the untrained decoder's mean is the training set's mean image (the logit of each
    /// pixel's mean for a Bernoulli likelihood, as Burda et al.'s code starts it)
    DataMean,
}

impl OutputBias {
    pub fn is_init(&self) -> bool {
        *self == OutputBias::Init
    }
}

/// The training objective.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// −ELBO = BCE + β·KL with the KL in closed form, one draw of z per example (Kingma &
    /// Welling 2014; the tutorial's loss).
    #[default]
    Elbo,
    /// −log (1/k) Σ_s w_s with k draws per example (Burda, Grosse & Salakhutdinov 2015): a
    /// tighter bound on log p(x) that rewards using more of the latent space.
    Iwae { k: usize },
    /// −(1/k) Σ_s log w_s: the ELBO estimated with k draws per example, the KL term by the
    /// same draws (Burda et al. 2015's "VAE with k samples"); k = 1 is the ELBO with a
    /// sampled KL.
    #[serde(rename = "elbo_k")]
    ElboK { k: usize },
    /// β-TCVAE (Chen et al. 2018): −ELBO + (β − 1)·TC, the total correlation of the batch's
    /// draws estimated by minibatch-weighted sampling with the training set's size
    /// ([`crate::core::tc`]); `--beta` weights the TC, the KL's other parts keep weight 1.
    Tcvae,
    /// FactorVAE (Kim & Mnih 2018): −ELBO + γ·TC, the TC estimated by a discriminator trained
    /// beside the model ([`crate::model::factorvae`]); γ is [`TrainConfig::gamma`].
    Factorvae,
}

/// Most importance samples per example `--objective iwae` accepts (Burda et al. use 5 and 50).
pub const MAX_IWAE_SAMPLES: usize = 100;

impl Objective {
    pub fn is_elbo(&self) -> bool {
        *self == Objective::Elbo
    }

    /// Whether a model of this kind can be trained on the objective (the importance-weighted
    /// bound needs q(z|x) to draw from); the message names the flags.
    ///
    /// # Errors
    /// A message naming the flags if the objective is `iwae` and `kind` is not variational.
    pub fn check_model(&self, kind: crate::model::ModelKind) -> Result<(), String> {
        if !self.is_elbo() && !kind.variational() {
            return Err(format!(
                "--objective {} needs a variational model: the {kind} has no q(z|x) to draw from; use --model vae or cvae",
                self.label()
            ));
        }
        Ok(())
    }

    /// Draws of z per example.
    pub fn samples(&self) -> usize {
        match self {
            Objective::Elbo | Objective::Tcvae | Objective::Factorvae => 1,
            Objective::Iwae { k } | Objective::ElboK { k } => *k,
        }
    }

    /// Short name: `elbo`, `iwae k=5`, `elbo k=5`.
    pub fn label(&self) -> String {
        match self {
            Objective::Elbo => "elbo".to_string(),
            Objective::Tcvae => "tcvae".to_string(),
            Objective::Factorvae => "factorvae".to_string(),
            Objective::Iwae { k } => format!("iwae k={k}"),
            Objective::ElboK { k } => format!("elbo k={k}"),
        }
    }
}

impl TrainConfig {
    /// Applies the run's data options: example limits (a seeded sample stratified across
    /// classes, [`crate::data::subset`]), then binarization (a static draw of the training
    /// set; for both modes, a fixed draw of the test set).
    pub fn prepare(&self, data: &mut Dataset) {
        use crate::data::subset::sample;
        if let Some(n) = self.train_limit {
            data.train = sample(&data.train, n, self.seed);
        }
        if let Some(n) = self.test_limit {
            data.test = sample(&data.test, n, self.seed);
        }
        if self.binarize == Binarize::Static {
            binarize_split(&mut data.train, &mut Rng::stream(self.seed, Purpose::Binarize, 0));
        }
        if self.binarize != Binarize::None {
            binarize_split(&mut data.test, &mut Rng::stream(self.seed, Purpose::Binarize, 1));
        }
    }

    /// Checks values; the message names the flag to change.
    ///
    /// # Errors
    /// A message naming the flag if the epochs, batch size or an example limit is 0, the learning
    /// rate or β is not a valid number, or `iwae`'s k is outside 1..=[`MAX_IWAE_SAMPLES`] or
    /// combined with β ≠ 1.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        if self.micro_batches == 0 {
            return Err("--micro-batches must be at least 1".into());
        }
        crate::core::collective::check_split(self.batch_size, self.world_size.max(1), self.micro_batches)?;
        if !(self.adam.lr.is_finite() && self.adam.lr > 0.0) {
            return Err(format!("--lr must be a positive number, got {}", self.adam.lr));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(format!("--beta must be a non-negative number, got {}", self.beta));
        }
        if self.train_limit == Some(0) || self.test_limit == Some(0) {
            return Err("--train-limit and --test-limit must be at least 1".into());
        }
        if let Objective::Iwae { k } | Objective::ElboK { k } = self.objective
            && !(1..=MAX_IWAE_SAMPLES).contains(&k)
        {
            return Err(format!("--k must be between 1 and {MAX_IWAE_SAMPLES}, got {k}"));
        }
        match (self.objective, self.gamma) {
            (Objective::Factorvae, Some(g)) if !(g.is_finite() && g >= 0.0) => {
                return Err(format!("--gamma must be a non-negative number, got {g}"));
            }
            (Objective::Factorvae, Some(_)) => {}
            (Objective::Factorvae, None) => return Err("--objective factorvae needs --gamma".into()),
            (_, Some(_)) => {
                return Err(
                    "--gamma weights FactorVAE's total correlation; add --objective factorvae, or drop --gamma".into(),
                );
            }
            (_, None) => {}
        }
        if self.objective == Objective::Tcvae && self.kl_warmup > 0 {
            return Err(
                "--kl-warmup ramps the KL's weight, but β-TCVAE keeps the KL at weight 1 and weights the total \
                 correlation by --beta; drop --kl-warmup"
                    .into(),
            );
        }
        if let Objective::Iwae { .. } = self.objective
            && (self.beta != 1.0 || self.kl_warmup > 0)
        {
            return Err(
                "--beta and --kl-warmup weight the ELBO's KL term, and the importance-weighted bound has none \
                        to weight; drop them, or train --objective elbo"
                    .into(),
            );
        }
        if !(self.adam.eps.is_finite() && self.adam.eps > 0.0) {
            return Err(format!("--adam-eps must be a positive number, got {}", self.adam.eps));
        }
        Ok(())
    }
}
