//! Training: the loop over epochs and steps, the test pass, and what each epoch reports.
//!
//! The tutorial's setup (see `reference/seed-model.md`): batches of 128 drawn from a
//! fresh permutation each epoch, the last incomplete batch dropped (468 steps on MNIST),
//! Adam on the summed batch loss.

use crate::core::collective::{Alone, Collective, part};
use crate::core::{AdamConfig, AdamState, Pool, Purpose, Rng, adam_step, adam_step_parts, kernels};
use crate::data::binarize::{binarize_split, gather_binarized};
use crate::data::{Augment, Binarize, Dataset, Source, Split};
use crate::metrics::EpochMetrics;
use crate::model::{BatchLoss, Model, Workspace};
use crate::schedule::LrSchedule;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::core::bf16::Precision;

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

/// The loss went NaN or infinite: training stops without saving that state.
#[derive(Debug, thiserror::Error)]
#[error("the loss became {value} at epoch {epoch}, step {step}: training diverged at --lr {lr}")]
pub struct Diverged {
    pub value: f64,
    pub epoch: usize,
    pub step: usize,
    pub last_saved: usize,
    pub lr: f32,
}

/// Why an epoch ended before its last step.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error(transparent)]
    Diverged(#[from] Diverged),
    /// [`Trainer::interrupt`] was raised (by Ctrl-C in `vae train`). The epoch's partial updates
    /// live only in memory; the run directory still holds the last completed epoch.
    #[error("interrupted during epoch {epoch}, before step {step}")]
    Interrupted { epoch: usize, step: usize },
    /// The workers training together could not sum a step ([`Trainer::join`]).
    #[error(transparent)]
    Collective(#[from] crate::core::collective::CollectiveError),
}

/// Sums over one training epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct EpochTrain {
    pub loss: BatchLoss,
    /// Objective terms beyond BCE + β·KL, summed: β-TCVAE's (β − 1)·TC.
    pub penalty: f64,
    pub examples: usize,
    pub steps: usize,
}

/// Per-example test figures: reconstruction BCE and KL, in nats.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TestLoss {
    pub bce: f64,
    pub kl: f64,
}

/// `acc += g` in f64 (`acc = g` when `first`): micro-batch gradients added in order.
fn add_f64(acc: &mut [f64], g: &[f32], first: bool) {
    for (a, &v) in acc.iter_mut().zip(g) {
        *a = if first { v as f64 } else { *a + v as f64 };
    }
}

/// Test-pass batch size: large batches keep `gemm` efficient; memory stays ~10 MB. A multiple
/// of 16, so that in bf16 the convolutions take their paired products (whole 16-image chunks;
/// at 500 they took the blocked ones: the conv MNIST test pass 0.354 → 0.300 s).
pub const EVAL_BATCH: usize = 512;

/// A model being trained, with every buffer it needs.
pub struct Trainer {
    pub config: TrainConfig,
    pub model: Model,
    pub adam: AdamState,
    /// Completed epochs.
    pub epoch: usize,
    pub data: Dataset,
    pub pool: Pool,
    /// Raise it (from any thread, e.g. a Ctrl-C handler) to stop [`Trainer::train_epoch`]
    /// before its next step.
    pub interrupt: Arc<AtomicBool>,
    /// The loss `--lr-schedule plateau` watches, one per completed epoch in order
    /// ([`EpochMetrics::watched`]); the run (`run::Run`) appends to it.
    pub watched: Vec<f64>,
    grads: Vec<f32>,
    /// The f64 sum of a step's micro-batch gradients (empty with one micro-batch).
    grads_f64: Vec<f64>,
    /// FactorVAE's discriminator buffers (empty for the other objectives).
    disc: crate::model::factorvae::DiscWork,
    ws: Workspace,
    order: Vec<u32>,
    /// The batch's augmented images `[batch, pixels]` ([`Augment::batch`]).
    augmented: Vec<u8>,
    /// 0, 1, …, batch − 1: the augmented batch's indices.
    order_identity: Vec<u32>,
    /// The workers this trainer shares each batch with ([`Trainer::join`]); alone by default.
    collective: Box<dyn Collective>,
}

impl Trainer {
    pub fn new(config: TrainConfig, model: Model, adam: AdamState, epoch: usize, mut data: Dataset) -> Trainer {
        config.prepare(&mut data);
        let pool = Pool::new(config.threads);
        let micro = config.batch_size / config.micro_batches.max(1);
        let ws = Workspace::with_samples(model.config(), micro, config.objective.samples(), pool.threads());
        let grads = vec![0.0; model.params.len()];
        let grads_f64 = if config.micro_batches > 1 { vec![0.0; model.params.len()] } else { Vec::new() };
        let order = (0..data.train.len() as u32).collect();
        let interrupt = Arc::new(AtomicBool::new(false));
        let watched = Vec::new();
        let augmented = Vec::new();
        let order_identity = (0..config.batch_size as u32).collect();
        Trainer {
            config,
            model,
            adam,
            epoch,
            data,
            pool,
            interrupt,
            watched,
            grads,
            grads_f64,
            disc: Default::default(),
            ws,
            order,
            augmented,
            order_identity,
            collective: Box::new(Alone),
        }
    }

    /// Trains data-parallel with the workers of `collective` from now on: each takes its
    /// part of every batch (the batch of `config.batch_size` stays the global one), and the
    /// gradients and losses are summed across workers before the same Adam step on each.
    /// With the same seed the workers train what one trainer would, up to summation order:
    /// every draw belongs to its example, not to the worker computing it.
    ///
    /// # Errors
    /// If the batch does not split evenly across the workers and their micro-batches.
    pub fn join(&mut self, collective: Box<dyn Collective>) -> Result<(), String> {
        let (b, n, k) = (self.config.batch_size, collective.size(), self.config.micro_batches);
        crate::core::collective::check_split(b, n, k)?;
        let c = self.model.config();
        self.ws = Workspace::with_samples(c, b / (n * k), self.config.objective.samples(), self.pool.threads());
        self.collective = collective;
        Ok(())
    }

    /// This worker's part of each batch: positions `start..end` of the global batch.
    pub fn batch_part(&self) -> std::ops::Range<usize> {
        part(self.config.batch_size, self.collective.rank(), self.collective.size())
    }

    /// Starts the output bias as `config.output_bias` asks, from the prepared training set
    /// (after `--train-limit` and a static binarization); called once, before the first step.
    pub fn init_output_bias(&mut self) {
        if self.config.output_bias == OutputBias::DataMean {
            self.model.set_output_bias_to_mean(&self.data.train.mean_image());
        }
    }

    /// Optimisation steps per epoch (the last incomplete batch is dropped).
    pub fn steps_per_epoch(&self) -> usize {
        self.data.train.len() / self.config.batch_size
    }

    /// Trains one epoch; `progress(step, steps, running objective per example)` is called
    /// after every step. Stops early if the loss stops being finite or [`Trainer::interrupt`]
    /// is raised; `self.epoch` then stays where it was. The epoch, `progress` included, runs
    /// with subnormals flushed to zero ([`crate::core::fpmode`]); the calling thread's
    /// floating-point mode is restored on return.
    ///
    /// # Errors
    /// [`EpochError::Diverged`] if the objective stops being finite, [`EpochError::Interrupted`] if
    /// [`Trainer::interrupt`] was raised; the parameters keep the epoch's earlier steps.
    pub fn train_epoch(&mut self, progress: &mut dyn FnMut(usize, usize, f64)) -> Result<EpochTrain, EpochError> {
        // Subnormals flushed for the serial kernels too (the pool's jobs flush on their own);
        // the caller's mode comes back when the epoch returns.
        let _flush = crate::core::FlushDenormals::new();
        let _precision = self.config.precision.scope();
        let epoch = self.epoch as u64 + 1;
        let seed = self.config.seed;
        let mut shuffle = Rng::stream(seed, Purpose::Shuffle, epoch);
        // Every example's noise, coins and moves are its own (seed, epoch and example), never
        // its batch position's or its worker's: a batch split across workers draws the same.
        let noise = Rng::example_key(seed, Purpose::TrainNoise, epoch);
        let coins = Rng::example_key(seed, Purpose::DynamicBinarize, epoch);
        let moves = Rng::example_key(seed, Purpose::Augment, epoch);
        // A fresh u for every value at every use: each image is used once an epoch.
        let dequantize =
            self.model.config().dequantize.then(|| Rng::stream(seed, Purpose::Dequantize, epoch).next_u64());
        let dynamic = self.config.binarize == Binarize::Dynamic;
        for (i, o) in self.order.iter_mut().enumerate() {
            *o = i as u32;
        }
        shuffle.shuffle(&mut self.order);
        let (b, steps) = (self.config.batch_size, self.steps_per_epoch());
        let mine = self.batch_part();
        let adam = self.adam_config(epoch as usize);
        let beta = self.beta_at(epoch as usize);
        let mut total = EpochTrain::default();
        let net = &self.model.network;
        let c = net.config.clone();
        for step in 0..steps {
            if self.interrupt.load(Ordering::Relaxed) {
                return Err(EpochError::Interrupted { epoch: epoch as usize, step: step + 1 });
            }
            // This worker's part, in `micro_batches` micro-batches one after another: each
            // one's gradient in f32, added up in f64 in order.
            let micro = self.config.micro_batches;
            let shard = mine.len() / micro;
            let tcvae = self.config.objective == Objective::Tcvae;
            let factorvae = self.config.objective == Objective::Factorvae;
            // β-TCVAE: the KL at weight 1, and (β − 1)·TC; FactorVAE: β·KL and γ·TC (over each
            // micro-batch of each worker).
            let (kl_weight, tc_weight) = match self.config.objective {
                Objective::Tcvae => (1.0, beta - 1.0),
                Objective::Factorvae => (beta, self.config.gamma.unwrap_or(0.0)),
                _ => (beta, 0.0),
            };
            let mut sums = [0.0f64; 3];
            for m in 0..micro {
                let start = step * b + mine.start + m * shard;
                let idx = &self.order[start..start + shard];
                let (train, coins) = (&self.data.train, (dynamic.then_some(coins), dequantize));
                let labels = idx.iter().map(|&i| train.labels[i as usize]);
                if self.config.augment.is_none() {
                    let batch = Batch { images: &train.images, idx, ids: idx };
                    fill_from(&self.pool, batch, labels, &c, &mut self.ws, coins);
                } else {
                    // The batch's images flipped and shifted, one after another, then read in order.
                    self.config.augment.batch(&train.images, idx, train.shape, moves, &mut self.augmented);
                    let batch = Batch { images: &self.augmented, idx: &self.order_identity[..idx.len()], ids: idx };
                    fill_from(&self.pool, batch, labels, &c, &mut self.ws, coins);
                }
                if c.kind.variational() {
                    Rng::fill_example_normals(
                        &self.pool,
                        noise,
                        idx,
                        self.config.objective.samples(),
                        &mut self.ws.eps,
                    );
                }
                let iwae = matches!(self.config.objective, Objective::Iwae { .. } | Objective::ElboK { .. });
                let importance = matches!(self.config.objective, Objective::Iwae { .. });
                let loss = if iwae {
                    net.forward_samples(&self.pool, &self.model.params, &mut self.ws, importance)
                } else {
                    net.forward(&self.pool, &self.model.params, &mut self.ws)
                };
                let tc = if tcvae {
                    net.total_correlation(&mut self.ws, self.data.train.len(), tc_weight)
                } else if factorvae {
                    let part = self.collective.rank() * micro + m;
                    let mut rng = crate::model::factorvae::permutation_rng(seed, epoch, step, part);
                    let (params, disc) = (&self.model.params, &mut self.disc);
                    net.factorvae(&self.pool, params, &mut self.grads, &mut self.ws, disc, tc_weight, &mut rng).tc
                } else {
                    0.0
                };
                for (s, v) in sums.iter_mut().zip([loss.bce, loss.kl, tc]) {
                    *s += v;
                }
                if iwae {
                    net.backward_iwae(&self.pool, &self.model.params, &mut self.grads, &mut self.ws, beta);
                } else if tcvae || factorvae {
                    net.backward_tc(&self.pool, &self.model.params, &mut self.grads, &mut self.ws);
                } else {
                    net.backward(&self.pool, &self.model.params, &mut self.grads, &mut self.ws, beta);
                }
                if micro > 1 {
                    add_f64(&mut self.grads_f64, &self.grads, m == 0);
                }
            }
            // The batch's loss over every worker, so that all agree on a divergence.
            self.collective.sum_f64(&mut sums)?;
            let loss = BatchLoss { bce: sums[0], kl: sums[1] };
            let penalty = tc_weight as f64 * sums[2];
            let objective = loss.bce + kl_weight as f64 * loss.kl + penalty;
            if !objective.is_finite() {
                return Err(EpochError::Diverged(Diverged {
                    value: objective,
                    epoch: epoch as usize,
                    step: step + 1,
                    last_saved: self.epoch,
                    lr: adam.lr,
                }));
            }
            if micro > 1 {
                // Unrounded across workers too: one rounding, as for that many workers' f32 sums.
                self.collective.sum_f64(&mut self.grads_f64)?;
                for (g, &s) in self.grads.iter_mut().zip(&self.grads_f64) {
                    *g = s as f32;
                }
            } else {
                self.collective.sum_f32(&mut self.grads)?;
            }
            let layout = &net.layout;
            if layout.discriminator.is_empty() {
                adam_step(&self.pool, &adam, &mut self.model.params, &self.grads, &mut self.adam);
            } else {
                // The model by the run's Adam, the discriminator by its own (fixed) settings.
                let parts = [
                    (0..layout.model_len, adam),
                    (layout.model_len..layout.len, crate::model::factorvae::DISCRIMINATOR_ADAM),
                ];
                adam_step_parts(&self.pool, &parts, &mut self.model.params, &self.grads, &mut self.adam);
            }
            total.loss.bce += loss.bce;
            total.loss.kl += loss.kl;
            total.penalty += penalty;
            total.examples += b;
            total.steps += 1;
            let running = (total.loss.bce + kl_weight as f64 * total.loss.kl + total.penalty) / total.examples as f64;
            progress(step + 1, steps, running);
        }
        self.epoch += 1;
        Ok(total)
    }

    /// The KL term's weight in `epoch` (from 1): `beta`, ramped over the warm-up.
    pub fn beta_at(&self, epoch: usize) -> f32 {
        match self.config.kl_warmup {
            0 => self.config.beta,
            n => (self.config.beta as f64 * (epoch as f64 / n as f64).min(1.0)) as f32,
        }
    }

    /// Adam's settings in `epoch` (from 1): the base rate scaled by the schedule.
    pub fn adam_config(&self, epoch: usize) -> AdamConfig {
        let lr = (self.config.adam.lr as f64 * self.config.lr_schedule.factor(epoch, &self.watched)) as f32;
        AdamConfig { lr, ..self.config.adam }
    }

    /// Test loss per example with z sampled once per image (the tutorial's test figure),
    /// with noise drawn from the epoch's own stream; `None` without test images. Workers
    /// ([`Trainer::join`]) each evaluate their part of the split and sum.
    ///
    /// # Errors
    /// When the workers cannot sum.
    pub fn test_loss(&mut self) -> Result<Option<TestLoss>, crate::core::collective::CollectiveError> {
        let rng = Rng::stream(self.config.seed, Purpose::TestNoise, self.epoch as u64);
        let _precision = self.config.precision.scope();
        let n = self.data.test.len();
        if n == 0 {
            return Ok(None);
        }
        let range = part(n, self.collective.rank(), self.collective.size());
        let sum = evaluate_range(&self.model, &self.data.test, range, &self.pool, rng);
        let mut sums = [sum.bce, sum.kl];
        self.collective.sum_f64(&mut sums)?;
        Ok(Some(TestLoss { bce: sums[0] / n as f64, kl: sums[1] / n as f64 }))
    }

    /// Compares a checksum of this worker's parameters and Adam state with every other
    /// worker's ([`Trainer::join`]); alone, nothing to compare. Called before each checkpoint:
    /// workers that drifted apart (a flipped bit, a different build) stop the run there.
    ///
    /// # Errors
    /// [`CollectiveError::Drift`](crate::core::collective::CollectiveError::Drift) naming the
    /// first worker that differs from worker 0, or when the workers cannot gather.
    pub fn check_agreement(&mut self) -> Result<(), crate::core::collective::CollectiveError> {
        if self.collective.size() == 1 {
            return Ok(());
        }
        let state = self.model.params.iter().chain(&self.adam.m).chain(&self.adam.v).map(|x| x.to_bits());
        let step = [self.adam.step as u32, (self.adam.step >> 32) as u32];
        let mine = crate::core::collective::checksum(state.chain(step));
        let all = self.collective.gather_u64(mine)?;
        match all.iter().position(|&c| c != all[0]) {
            None => Ok(()),
            Some(rank) => Err(crate::core::collective::CollectiveError::Drift {
                rank,
                epoch: self.epoch,
                theirs: all[rank],
                first: all[0],
            }),
        }
    }

    /// Builds an epoch's metrics record from its sums and the test pass.
    pub fn metrics(&self, t: &EpochTrain, test: Option<TestLoss>, seconds: f64) -> EpochMetrics {
        let n = t.examples.max(1) as f64;
        let beta = self.beta_at(self.epoch);
        let kl_weight = if self.config.objective == Objective::Tcvae { 1.0 } else { beta };
        let objective = (t.loss.bce + kl_weight as f64 * t.loss.kl + t.penalty) / n;
        EpochMetrics {
            epoch: self.epoch,
            step: self.adam.step,
            train_objective: objective,
            train_reconstruction: t.loss.bce / n,
            train_kl: t.loss.kl / n,
            train_batch_loss: objective * self.config.batch_size as f64,
            test_loss: test.map(|t| t.bce + t.kl),
            test_reconstruction: test.map(|t| t.bce),
            test_kl: test.map(|t| t.kl),
            seconds,
            images_per_sec: t.examples as f64 / seconds.max(1e-9),
            lr: Some(self.adam_config(self.epoch).lr),
            beta: (self.config.kl_warmup > 0).then_some(beta),
        }
    }
}

/// Copies the batch `idx` of `split` into `ws.x` (pixel rows) and a cvae's labels into `ws.y`.
/// With `coins = Some(key)`, every pixel is a fresh Bernoulli(intensity) draw from the
/// image's own stream under the key (dynamic binarization);
/// with `dequantize = Some(key)`, every value is (v + u)/256 with u drawn from the key and
/// the image's index ([`kernels::dequantized`]).
pub fn fill_inputs(
    pool: &Pool,
    split: &Split,
    idx: &[u32],
    config: &crate::model::ModelConfig,
    ws: &mut Workspace,
    coins: Option<u64>,
    dequantize: Option<u64>,
) {
    let labels = idx.iter().map(|&i| split.labels[i as usize]);
    let batch = Batch { images: &split.images, idx, ids: idx };
    fill_from(pool, batch, labels, config, ws, (coins, dequantize));
}

/// Where a batch's images come from: bytes `[n, pixels]`, the batch's indices into them,
/// and each column's image id (its index in the dataset, which keys its dequantization).
struct Batch<'a> {
    images: &'a [u8],
    idx: &'a [u32],
    ids: &'a [u32],
}

/// [`fill_inputs`] from a [`Batch`] and the batch's labels, with its binarization coins or
/// dequantization key.
fn fill_from(
    pool: &Pool,
    batch: Batch<'_>,
    labels: impl Iterator<Item = u8>,
    config: &crate::model::ModelConfig,
    ws: &mut Workspace,
    (coins, dequantize): (Option<u64>, Option<u64>),
) {
    let (p, b) = (config.pixels(), ws.batch);
    let Batch { images, idx, ids } = batch;
    debug_assert_eq!(idx.len(), b);
    let x = &mut ws.x[..p * b];
    match (coins, dequantize) {
        (Some(key), _) => gather_binarized(images, p, (idx, ids), x, key),
        (None, Some(key)) => kernels::gather_dequantized(pool, images, p, (idx, ids), key, x),
        (None, None) => kernels::gather_images_parallel(pool, images, p, idx, x),
    }
    if config.cond_dim() > 0 {
        kernels::one_hot(labels, config.cond_dim(), &mut ws.y, b);
    }
}

/// The key of the dequantization noise of an evaluation seeded `seed` (`None` for a model
/// fitted to the grid values).
pub fn eval_dequantize_key(config: &crate::model::ModelConfig, seed: u64) -> Option<u64> {
    config.dequantize.then(|| Rng::stream(seed, Purpose::Dequantize, u64::MAX).next_u64())
}

/// Mean per-example BCE and KL over `split` with one z ~ q(z|x) per image (z = μ for `ae`),
/// each image's noise its own (drawn from `rng`'s key and its index, [`Rng::example`]).
pub fn evaluate(model: &Model, split: &Split, pool: &Pool, rng: Rng) -> TestLoss {
    let n = split.len();
    if n == 0 {
        return TestLoss::default();
    }
    let sum = evaluate_range(model, split, 0..n, pool, rng);
    TestLoss { bce: sum.bce / n as f64, kl: sum.kl / n as f64 }
}

/// Each image's loss in [`evaluate`]'s pass (−ELBO at its one draw, nats), `[n]`.
pub fn evaluate_each(model: &Model, split: &Split, pool: &Pool, rng: Rng) -> Vec<f64> {
    let mut out = Vec::with_capacity(split.len());
    evaluate_chunks(model, split, 0..split.len(), pool, rng, &mut |ws, _| out.extend(ws.example_losses()));
    out
}

/// [`evaluate`]'s sums (not means) over the images `range` of `split`, each drawing the noise
/// it draws in the whole split's pass.
pub fn evaluate_range(model: &Model, split: &Split, range: std::ops::Range<usize>, pool: &Pool, rng: Rng) -> BatchLoss {
    let mut sum = BatchLoss::default();
    evaluate_chunks(model, split, range, pool, rng, &mut |_, loss| {
        sum.bce += loss.bce;
        sum.kl += loss.kl;
    });
    sum
}

/// The test pass over the images `range` of `split`, chunk by chunk, each chunk's workspace
/// and loss handed to `each` after its forward pass.
fn evaluate_chunks(
    model: &Model,
    split: &Split,
    range: std::ops::Range<usize>,
    pool: &Pool,
    mut rng: Rng,
    each: &mut dyn FnMut(&Workspace, BatchLoss),
) {
    let _flush = crate::core::FlushDenormals::new();
    let c = model.config();
    let n = range.len();
    if n == 0 {
        return;
    }
    // The dequantization noise of this pass (drawn first, only for models that use it).
    let dequantize = c.dequantize.then(|| rng.next_u64());
    let noise = rng.next_u64();
    let mut ws = Workspace::inference(c, EVAL_BATCH.min(n), 1, pool.threads());
    let mut small: Option<Workspace> = None;
    let all: Vec<u32> = (range.start as u32..range.end as u32).collect();
    for chunk in all.chunks(EVAL_BATCH) {
        let ws = if chunk.len() == ws.batch {
            &mut ws
        } else {
            small.insert(Workspace::inference(c, chunk.len(), 1, pool.threads()))
        };
        fill_inputs(pool, split, chunk, c, ws, None, dequantize);
        if c.kind.variational() {
            Rng::fill_example_normals(pool, noise, chunk, 1, &mut ws.eps);
        }
        let loss = model.network.forward(pool, &model.params, ws);
        each(ws, loss);
    }
}

/// The fixed latent draws (and labels) of the per-epoch sample grid: `rows × 10` images;
/// for `cvae` row r shows class r (modulo the class count).
pub fn sample_grid_inputs(model: &Model, seed: u64, n: usize) -> (Vec<f32>, Option<Vec<u8>>) {
    let c = model.config();
    let mut z = vec![0.0; n * c.latent_dim];
    Rng::stream(seed, Purpose::Samples, 0).fill_normal(&mut z);
    let labels = c.kind.conditional().then(|| (0..n).map(|i| ((i / 10) % c.classes) as u8).collect());
    (z, labels)
}
