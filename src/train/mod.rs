//! Training: the loop over epochs and steps, the test pass, and what each epoch reports.
//!
//! The tutorial's setup (see `reference/seed-model.md`): batches of 128 drawn from a
//! fresh permutation each epoch, the last incomplete batch dropped (468 steps on MNIST),
//! Adam on the summed batch loss.

use crate::core::collective::{Alone, Collective, part};
use crate::core::{AdamConfig, AdamState, Pool, Purpose, Rng, adam_step, adam_step_parts};
use crate::data::{Binarize, Dataset};
use crate::metrics::EpochMetrics;
use crate::model::{BatchLoss, Model, Workspace};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::core::bf16::Precision;

mod config;
mod evaluate;

pub use config::*;
use evaluate::{Batch, fill_from};
pub use evaluate::{eval_dequantize_key, evaluate, evaluate_each, evaluate_range, fill_inputs, sample_grid_inputs};

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
