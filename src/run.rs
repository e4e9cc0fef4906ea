//! A training run end to end: set-up or resume, the epoch loop with its progress bar and
//! report line, and the files each epoch leaves in the run directory.

use crate::checkpoint::dirkind::DirKind;
use crate::checkpoint::{CheckpointError, EpochMetrics, RunConfig, RunDir};
use crate::core::{AdamState, Purpose, Rng};
use crate::data::Dataset;
use crate::images;
use crate::lock::{DirLock, LockError};
use crate::model::{Model, ModelConfig};
use crate::train::{Diverged, EpochError, Trainer, sample_grid_inputs};
use std::path::PathBuf;

pub mod observer;
pub use observer::{Observer, Terminal, format_epoch};
use std::time::Instant;

/// Images in the per-epoch sample grid (10 × 10, as the tutorial).
pub const GRID_IMAGES: usize = 100;
/// Images per grid row.
pub const GRID_ROW: usize = 10;
/// The picture a finished run writes last.
pub const RECONSTRUCTIONS: &str = "reconstructions.png";
/// Captions of a grid of (input, reconstruction) pairs `columns` wide: `title` above, "in" and
/// "out" below alternate columns.
pub fn pair_captions(title: String, columns: usize) -> crate::plot::Captions {
    crate::plot::Captions {
        title: Some(title),
        columns: (0..columns).map(|c| if c % 2 == 0 { "in" } else { "out" }.to_string()).collect(),
        ..Default::default()
    }
}

/// torchvision's `save_image` padding.
pub const GRID_PADDING: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Diverged; `retry` says what is left and how to try again.
    #[error("{source}; {retry}")]
    Diverged { source: Diverged, retry: String },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}")]
    Invalid(String),
    /// The workers of a data-parallel run could not sum a step or a test pass.
    #[error(transparent)]
    Collective(#[from] crate::core::collective::CollectiveError),
    /// An [`Observer`] stopped training after an epoch (every completed epoch is kept).
    #[error("{0}")]
    Stopped(String),
    /// Ctrl-C: the run directory holds every completed epoch and nothing of the interrupted one.
    #[error("{}", interrupted_message(*epoch, *last_saved, dir))]
    Interrupted { epoch: usize, last_saved: usize, dir: PathBuf },
}

fn interrupted_message(epoch: usize, last_saved: usize, dir: &std::path::Path) -> String {
    let (dir, vae) = (dir.display(), crate::text::command_name());
    if last_saved == 0 {
        format!(
            "interrupted during epoch {epoch}, before any epoch was saved; `{vae} train --resume {dir}` starts it again"
        )
    } else {
        format!(
            "interrupted during epoch {epoch}; {dir} keeps epochs 1–{last_saved}: continue with `{vae} train --resume {dir}`"
        )
    }
}

/// What `vae train --resume` may change; `None` keeps the run's setting.
#[derive(Clone, Debug, Default)]
pub struct ResumeChanges {
    /// The total epochs to reach.
    pub epochs: Option<usize>,
    /// The learning rate from the next epoch on.
    pub lr: Option<f32>,
    /// Threads from now on (0 is resolved by the caller). Sums then run in another order, so
    /// the results differ in the last bits from an uninterrupted run.
    pub threads: Option<usize>,
    /// Where the run's data folder moved (checked by the caller to hold the same images).
    pub moved: Option<crate::data::Source>,
    /// Data-parallel workers from now on (MPI ranks). Another count splits each batch
    /// differently, so sums run in another order, as with `threads`.
    pub world_size: Option<usize>,
    /// Micro-batches per worker from now on; with `world_size` it fixes the order of the sums.
    pub micro_batches: Option<usize>,
}

/// A process's part in a run trained by several data-parallel workers (MPI ranks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Role {
    /// The run's only writer (alone, or rank 0): creates, locks and writes the run directory.
    #[default]
    Writer,
    /// Any other worker: reads what it needs from the run directory (a shared file system),
    /// trains its part of every batch, and writes nothing.
    Follower,
}

/// A run ready to train: fresh or resumed.
pub struct Run {
    pub dir: RunDir,
    pub config: RunConfig,
    pub trainer: Trainer,
    pub metrics: Vec<EpochMetrics>,
    /// Held while the run trains: a second process writing here is refused (the writer's).
    _lock: Option<DirLock>,
    /// Whether this process writes the run directory ([`Role::Writer`]).
    writes: bool,
    /// Whether this process made the directory (so a run that diverges before saving
    /// anything can take it away again).
    created_dir: bool,
}

impl Run {
    /// Starts a new run in `dir` (which must not already hold one): writes `config.json`
    /// before the first step.
    ///
    /// # Errors
    /// [`RunError::Invalid`] if the config is invalid, the batch is larger than the training set,
    /// or `dir` already holds a run or another kind of directory; [`RunError::Lock`] if another
    /// process holds `dir`; and [`RunError::Checkpoint`] if `dir` cannot be read, created or
    /// written.
    pub fn create(dir: PathBuf, config: RunConfig, data: Dataset) -> Result<Run, RunError> {
        Run::create_as(dir, config, data, Role::Writer)
    }

    /// [`Run::create`] for a process in `role`: a [`Role::Follower`] builds the same trainer
    /// from the same seed and touches nothing on disk (the writer makes the directory).
    ///
    /// # Errors
    /// As [`Run::create`].
    pub fn create_as(dir: PathBuf, config: RunConfig, data: Dataset, role: Role) -> Result<Run, RunError> {
        config.model.validate().map_err(RunError::Invalid)?;
        config.train.validate().map_err(RunError::Invalid)?;
        config.train.objective.check_model(config.model.kind).map_err(RunError::Invalid)?;
        use crate::train::Objective;
        if matches!(config.train.objective, Objective::Tcvae | Objective::Factorvae)
            && !config.model.prior.is_standard()
        {
            return Err(RunError::Invalid(format!(
                "--objective {} adds the total correlation to the standard prior's closed-form KL; drop --prior",
                config.train.objective.label()
            )));
        }
        if (config.train.objective == Objective::Factorvae) != config.model.discriminator.is_some() {
            return Err(RunError::Invalid("FactorVAE's model and its discriminator come together".into()));
        }
        if config.train.objective == Objective::Factorvae && config.model.kind.conditional() {
            return Err(RunError::Invalid(
                "--objective factorvae permutes unconditioned codes; train it with --model vae".into(),
            ));
        }
        let dir = RunDir::new(dir);
        if role == Role::Writer {
            check_new(&dir)?;
        }
        let model = Model::init_with(config.model.clone(), config.train.seed, config.train.init);
        let adam = AdamState::new(model.params.len());
        let mut trainer = Trainer::new(config.train.clone(), model, adam, 0, data);
        trainer.init_output_bias();
        check_batch(&trainer)?;
        if role == Role::Follower {
            return Ok(Run {
                dir,
                config,
                trainer,
                metrics: Vec::new(),
                _lock: None,
                writes: false,
                created_dir: false,
            });
        }
        let created_dir = !dir.path.exists();
        dir.create()?;
        // Checked again under the lock: another process may have started a run here.
        let lock = DirLock::acquire(&dir.path)?;
        check_new(&dir)?;
        dir.save_config(&config)?;
        if let Some(files) = &trainer.data.files {
            dir.save_files(files)?;
        }
        Ok(Run { dir, config, trainer, metrics: Vec::new(), _lock: Some(lock), writes: true, created_dir })
    }

    /// Reopens a run after its last completed epoch; what `changes` gives replaces the run's
    /// setting from the next epoch on (and is saved in its `config.json`).
    ///
    /// # Errors
    /// [`RunError::Checkpoint`] if the run cannot be read (not a run, no train state, corrupt
    /// files) or its config cannot be rewritten; [`RunError::Lock`] if another process holds it;
    /// and [`RunError::Invalid`] if the data does not fit the model, the learning rate is
    /// invalid, or the epochs are fewer than those already completed.
    pub fn resume(dir: PathBuf, changes: ResumeChanges, data: Dataset) -> Result<Run, RunError> {
        Run::resume_as(dir, changes, data, Role::Writer)
    }

    /// [`Run::resume`] for a process in `role`: a [`Role::Follower`] reads the run and applies
    /// `changes` in memory only (the writer saves them), without taking the lock.
    ///
    /// # Errors
    /// As [`Run::resume`].
    pub fn resume_as(dir: PathBuf, changes: ResumeChanges, data: Dataset, role: Role) -> Result<Run, RunError> {
        let ResumeChanges { epochs, lr, threads, moved, world_size, micro_batches } = changes;
        let writes = role == Role::Writer;
        let dir = RunDir::new(dir);
        dir.load_config()?; // a clear error before taking a lock in the wrong directory
        let lock = if writes { Some(DirLock::acquire(&dir.path)?) } else { None };
        let mut config = dir.load_config()?;
        let save_config = |config: &RunConfig| if writes { dir.save_config(config) } else { Ok(()) };
        let mut fresh = false;
        let state = match dir.load_state(&config.model) {
            // Killed before its first train state was committed (during epoch 1, or while
            // saving it): start again from the seed, exactly as the uninterrupted run did. Never
            // when a later epoch was written: then the state was removed by hand.
            Err(CheckpointError::NoState(_)) if first_epoch_at_most(&dir)? => {
                let model = Model::init_with(config.model.clone(), config.train.seed, config.train.init);
                let adam = AdamState::new(model.params.len());
                fresh = true;
                crate::checkpoint::TrainState { model, adam, epoch: 0 }
            }
            other => other?,
        };
        check_data(&config.model, &data)?;
        if let Some(lr) = lr {
            config.train.adam.lr = lr;
            config.train.validate().map_err(RunError::Invalid)?;
            save_config(&config)?;
        }
        if let Some(t) = threads.filter(|&t| t != config.train.threads) {
            config.train.threads = t;
            save_config(&config)?;
        }
        if let Some(n) = world_size.filter(|&n| n != config.train.world_size) {
            config.train.world_size = n;
            save_config(&config)?;
        }
        if let Some(k) = micro_batches.filter(|&k| k != config.train.micro_batches) {
            config.train.micro_batches = k;
            save_config(&config)?;
        }
        if let Some(source) = moved {
            config.train.dataset = source;
            save_config(&config)?;
        }
        // What the run trains on from here: the folder as it is now.
        if let Some(files) = data.files.as_ref().filter(|_| writes) {
            dir.save_files(files)?;
        }
        if let Some(e) = epochs {
            if e < state.epoch {
                return Err(RunError::Invalid(format!(
                    "--epochs {e} is fewer than the {} epochs {} has already completed; give the new total, \
                     larger than that, to train further",
                    state.epoch,
                    dir.path.display()
                )));
            }
            config.train.epochs = e;
            save_config(&config)?;
        }
        if writes {
            dir.create()?; // samples/ may have been removed, or never made
            // Half-written files of a process killed while saving: never read, only clutter.
            crate::io::remove_stale_temps(&dir.path);
            crate::io::remove_stale_temps(&dir.samples_dir());
        }
        let mut metrics = dir.load_metrics()?;
        metrics.retain(|m| m.epoch <= state.epoch);
        let mut trainer = Trainer::new(config.train.clone(), state.model, state.adam, state.epoch, data);
        trainer.watched = metrics.iter().map(EpochMetrics::watched).collect();
        if fresh {
            trainer.init_output_bias();
        }
        Ok(Run { dir, config, trainer, metrics, _lock: lock, writes, created_dir: false })
    }

    /// Trains up to the configured number of epochs, saving after each, with the command
    /// line's progress bar and report lines ([`Terminal`]; nothing when `quiet`).
    ///
    /// # Errors
    /// As [`Run::train_observed`].
    pub fn train(&mut self, quiet: bool) -> Result<(), RunError> {
        let mut terminal = Terminal::new(quiet, self.config.train.lr_schedule.to_string());
        self.train_observed(&mut terminal)
    }

    /// Trains up to the configured number of epochs, saving after each, telling `observer`.
    ///
    /// # Errors
    /// [`RunError::Diverged`] if the loss stops being finite, [`RunError::Interrupted`] if
    /// [`Trainer::interrupt`] is raised, [`RunError::Stopped`] if the observer stops it,
    /// [`RunError::Checkpoint`] if an epoch's files cannot be written, and
    /// [`RunError::Invalid`] if its sample grid cannot be drawn.
    pub fn train_observed(&mut self, observer: &mut dyn Observer) -> Result<(), RunError> {
        let total = self.config.train.epochs;
        let steps = self.trainer.steps_per_epoch();
        let (grid_z, grid_labels) = sample_grid_inputs(&self.trainer.model, self.config.train.seed, GRID_IMAGES);
        while self.trainer.epoch < total {
            let epoch = self.trainer.epoch + 1;
            let interrupted = || RunError::Interrupted { epoch, last_saved: epoch - 1, dir: self.dir.path.clone() };
            if self.trainer.interrupt.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(interrupted());
            }
            observer.epoch_start(epoch, total, steps);
            let start = Instant::now();
            let t = self.trainer.train_epoch(&mut |step, _, running| observer.step(step, running));
            let t = match t {
                Ok(t) => t,
                Err(EpochError::Diverged(d)) => return Err(self.diverged(d)),
                Err(EpochError::Interrupted { .. }) => return Err(interrupted()),
                Err(EpochError::Collective(e)) => return Err(e.into()),
            };
            let seconds = start.elapsed().as_secs_f64();
            let test = self.trainer.test_loss()?;
            // Data-parallel workers must still hold one model before it is saved.
            self.trainer.check_agreement()?;
            let m = self.trainer.metrics(&t, test, seconds);
            self.trainer.watched.push(m.watched());
            let grid = sample_grid_due(m.epoch, total).then_some((&grid_z[..], grid_labels.as_deref()));
            self.save_epoch(&m, grid)?;
            let next_lr = self.trainer.adam_config(epoch + 1).lr;
            observer.epoch_end(&m, total, next_lr).map_err(RunError::Stopped)?;
        }
        Ok(())
    }

    /// The error of a diverged run, and its clean-up: a run that saved no epoch leaves
    /// nothing behind (so the same command with a lower `--lr` starts afresh); one that did
    /// keeps them all and continues with `--resume --lr`.
    fn diverged(&self, d: Diverged) -> RunError {
        let dir = self.dir.path.display();
        let lower = format!("{:e}", d.lr / 10.0);
        let retry = if d.last_saved == 0 {
            let removed = self.remove_unsaved();
            format!(
                "no epoch was saved{removed}; run the same command with a lower learning rate (e.g. --lr {lower})",
                removed = if removed { format!(" and {dir} was removed") } else { String::new() }
            )
        } else {
            format!(
                "{dir} keeps epochs 1–{}: continue from there with a lower learning rate, \
                 `{vae} train --resume {dir} --lr {lower}`",
                d.last_saved,
                vae = crate::text::command_name(),
            )
        };
        RunError::Diverged { source: d, retry }
    }

    /// Removes what a run that never completed an epoch wrote: its config, its empty
    /// `samples/`, its lock file, and the directory itself when this process made it and it
    /// is now empty. Whatever else is there stays. Returns whether the config went.
    fn remove_unsaved(&self) -> bool {
        if !self.writes {
            return false;
        }
        let removed = std::fs::remove_file(self.dir.file(crate::checkpoint::CONFIG_FILE)).is_ok();
        let _ = std::fs::remove_file(self.dir.file(crate::checkpoint::DATA_FILES));
        let _ = std::fs::remove_dir(self.dir.samples_dir()); // only if empty
        let _ = std::fs::remove_file(self.dir.file(crate::lock::LOCK_FILE));
        if self.created_dir {
            let _ = std::fs::remove_dir(&self.dir.path); // only if empty
        }
        removed
    }

    /// Saves an epoch: its sample grid from the fixed `grid` = (z, labels) when given, its
    /// metrics, the weights and the train state.
    fn save_epoch(&mut self, m: &EpochMetrics, grid: Option<(&[f32], Option<&[u8]>)>) -> Result<(), RunError> {
        self.metrics.push(m.clone());
        if !self.writes {
            return Ok(());
        }
        if let Some((z, labels)) = grid {
            self.save_grid(m.epoch, z, labels)?;
        }
        // Order matters: the train state is the commit point (see `checkpoint`).
        self.dir.save_metrics(&self.metrics)?;
        self.dir.save_model(&self.trainer.model, m.epoch)?;
        self.dir.save_state(&self.trainer.model, &self.trainer.adam, m.epoch)?;
        Ok(())
    }

    /// Writes `samples/epoch-NNN.png`, the grid decoded from the fixed z (and labels); for a
    /// mixture prior, z placed in the prior's components ([`crate::model::PriorDensity::place`]).
    fn save_grid(&self, epoch: usize, z: &[f32], labels: Option<&[u8]>) -> Result<(), RunError> {
        let trainer = &self.trainer;
        // A mixture prior's grid: the fixed noise placed in the current prior's components.
        let placed = trainer.model.network.prior_density(&trainer.pool, &trainer.model.params).place(z);
        let z = &placed[..];
        let imgs = trainer.model.decode(&trainer.pool, z, labels).map_err(|e| RunError::Invalid(e.to_string()))?;
        self.save_grid_images(epoch, &imgs)
    }

    /// Fits the latent mixture `vae sample` and `serve` draw from by default
    /// ([`crate::sampler`]): up to `k` components per mixture, fitted as
    /// [`crate::sampler::FitSettings::after_training`] says, and saves it; then redraws the
    /// last epoch's grid from it. Returns the mixture.
    ///
    /// # Errors
    /// [`RunError::Invalid`] when a class has fewer than two training images or the codes are
    /// not finite, [`RunError::Checkpoint`] when the files cannot be written.
    pub fn fit_sampler(&self, k: usize) -> Result<crate::sampler::FittedGmm, RunError> {
        use crate::sampler;
        let t = &self.trainer;
        let seed = self.config.train.seed;
        let mut binarized;
        let mut split = &t.data.train;
        if self.config.train.binarize == crate::data::Binarize::Dynamic {
            // The encoder saw binary images: encode one fixed draw of them (as `vae fit-sampler`).
            binarized = t.data.train.clone();
            crate::data::binarize::binarize_split(&mut binarized, &mut Rng::stream(seed, Purpose::Binarize, 2));
            split = &binarized;
        }
        let settings = sampler::FitSettings::after_training(k);
        let fitted =
            sampler::fit(&t.model, &t.pool, split, settings, t.epoch, &mut |_, _| {}).map_err(RunError::Invalid)?;
        sampler::save(&self.dir, &fitted)
            .map_err(|source| CheckpointError::Write { path: self.dir.file(sampler::GMM_FILE), source })?;
        let (_, labels) = sample_grid_inputs(&t.model, seed, GRID_IMAGES);
        let mut rng = Rng::stream(seed, Purpose::User, 300);
        let imgs = sampler::LatentSampler::Gmm(fitted.clone())
            .sample(&t.model, &t.pool, GRID_IMAGES, labels.as_deref(), 1.0, &mut rng)
            .map_err(|e| RunError::Invalid(e.to_string()))?;
        self.save_grid_images(t.epoch, &imgs)?;
        Ok(fitted)
    }

    /// The path of epoch `epoch`'s sample grid.
    pub fn grid_path(&self, epoch: usize) -> PathBuf {
        self.dir.samples_dir().join(format!("epoch-{epoch:03}.png"))
    }

    /// Writes `imgs` (`GRID_IMAGES` decoded samples) as `samples/epoch-NNN.png`, rows captioned
    /// with their class for an image folder's cvae.
    fn save_grid_images(&self, epoch: usize, imgs: &[f32]) -> Result<(), RunError> {
        let c = self.trainer.model.config();
        let mut grid = images::grid(imgs, c.shape(), GRID_ROW, GRID_PADDING);
        if c.kind.conditional() && !c.class_names.is_empty() {
            // An image folder's cvae: name each row's class (MNIST's grids stay torchvision's).
            let captions: Vec<String> =
                (0..GRID_IMAGES / GRID_ROW).map(|r| c.class_names[r % c.class_names.len()].clone()).collect();
            grid = crate::plot::caption_rows(&grid, c.image_rows, GRID_PADDING, &captions)
                .map_err(|e| RunError::Invalid(e.to_string()))?;
        }
        let path = self.grid_path(epoch);
        grid.save(&path).map_err(|source| CheckpointError::Write { path, source })?;
        Ok(())
    }

    /// Writes `reconstructions.png`: 50 test images (training images if there are none), each
    /// followed by its reconstruction (z = μ), five pairs per row.
    ///
    /// # Errors
    /// [`RunError::Checkpoint`] if the picture cannot be written, [`RunError::Invalid`] if the test
    /// images do not fit the model.
    pub fn save_reconstructions(&self) -> Result<PathBuf, RunError> {
        let t = &self.trainer;
        let c = t.model.config();
        // 50 test images sampled across the classes, each row showing them in turn (training
        // images for a run that has no test images).
        let (split, which) = match t.data.test.is_empty() {
            true => (&t.data.train, "training"),
            false => (&t.data.test, "test"),
        };
        let shown = crate::data::subset::preview_indices(split, 50, self.config.train.seed);
        let test = crate::data::subset::select(split, &shown);
        let n = test.len();
        let p = c.pixels();
        let originals = test.images_f32(n);
        let labels = c.kind.conditional().then_some(&test.labels[..]);
        let invalid = |e: crate::model::InputError| RunError::Invalid(e.to_string());
        let enc = t.model.encode(&t.pool, &originals, labels).map_err(invalid)?;
        let recon = t.model.decode(&t.pool, &enc.mu, labels).map_err(invalid)?;
        let pairs = images::pairs(&originals, &recon, p);
        let grid = images::grid(&pairs, c.shape(), GRID_ROW, GRID_PADDING);
        let captions = pair_captions(format!("{n} {which} images (in), reconstructed (out)"), GRID_ROW);
        let grid = crate::plot::annotate(&grid, (c.image_rows, c.image_cols), GRID_PADDING, &captions)
            .map_err(|e| RunError::Invalid(e.to_string()))?;
        let path = self.dir.file(RECONSTRUCTIONS);
        grid.save(&path).map_err(|source| CheckpointError::Write { path: path.clone(), source })?;
        Ok(path)
    }
}

/// Whether `dir` may receive a new run: nothing of `vae`'s there yet.
fn check_new(dir: &RunDir) -> Result<(), RunError> {
    let d = dir.path.display();
    match DirKind::of(&dir.path)? {
        None => Ok(()),
        Some(DirKind::VaeRun) => Err(RunError::Invalid(format!(
            "{d} already holds a run; continue it with `vae train --resume {d}` or choose another --out"
        ))),
        Some(kind) => Err(RunError::Invalid(format!(
            "{d} is {} directory; `vae train` never replaces another kind of directory: choose another --out",
            kind.describe()
        ))),
    }
}

/// Whether everything `dir` records comes from its first epoch at most (metrics and weights):
/// with no train state, that is a run killed before its first commit, safe to start again.
fn first_epoch_at_most(dir: &RunDir) -> Result<bool, CheckpointError> {
    let metrics = dir.load_metrics()?;
    Ok(metrics.iter().all(|m| m.epoch <= 1) && dir.model_epoch()?.is_none_or(|e| e <= 1))
}

fn check_batch(t: &Trainer) -> Result<(), RunError> {
    if t.steps_per_epoch() == 0 {
        return Err(RunError::Invalid(format!(
            "--batch-size {} is larger than the {} training examples; lower it",
            t.config.batch_size,
            t.data.train.len()
        )));
    }
    Ok(())
}

fn check_data(model: &ModelConfig, data: &Dataset) -> Result<(), RunError> {
    if data.train.shape != model.shape() {
        return Err(RunError::Invalid(format!(
            "the data has {} images but the run's model takes {}",
            data.train.shape,
            model.shape()
        )));
    }
    Ok(())
}

/// Sample grids a run keeps at most (plus its last epoch's): a long schedule's 3,280 epochs
/// would otherwise leave 3,280 pictures (92 MB).
pub const MAX_SAMPLE_GRIDS: usize = 100;

/// Whether epoch `epoch` of `total` writes its sample grid: every epoch of a run of up to
/// [`MAX_SAMPLE_GRIDS`] epochs; else every ⌈total / 100⌉-th, the first and the last.
pub fn sample_grid_due(epoch: usize, total: usize) -> bool {
    let every = total.div_ceil(MAX_SAMPLE_GRIDS).max(1);
    epoch == 1 || epoch == total || epoch.is_multiple_of(every)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_runs_keep_about_a_hundred_sample_grids() {
        let due = |total: usize| (1..=total).filter(|&e| sample_grid_due(e, total)).collect::<Vec<_>>();
        // Up to 100 epochs: every one.
        assert_eq!(due(50), (1..=50).collect::<Vec<_>>());
        assert_eq!(due(100).len(), 100);
        // Burda et al.'s 3,280: every 33rd (99 of them), the first and the last.
        let kept = due(3280);
        assert_eq!(kept.len(), 101);
        assert_eq!((kept[0], kept[1], kept[100]), (1, 33, 3280));
        // One past the bound: every 2nd, the first and the last.
        assert_eq!(due(101).len(), 52);
    }
}
