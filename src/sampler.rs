//! Where generated images' latent codes come from: the model's prior N(0, I), or a Gaussian
//! mixture fitted after training to the training set's codes (ex-post density estimation,
//! Ghosh et al. 2020, §4), one mixture per label for a conditional model. The aggregate
//! posterior q(z) = E_x q(z|x) rarely fills N(0, I) evenly; drawing from a density fitted
//! to it avoids the "holes" between what the decoder saw, so samples look more like data.
//!
//! A fitted mixture lives in the run directory as [`GMM_FILE`] (JSON, readable), with the
//! epoch of the weights it was fitted to: `vae fit-sampler` writes it, and `sample`, `eval`
//! and `serve` read it with `--sampler gmm`.

use crate::checkpoint::RunDir;
use crate::core::{Pool, Purpose, Rng};
use crate::data::Split;
use crate::gmm::{FitReport, Gmm};
use crate::model::Model;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The fitted mixture's file in a run directory.
pub const GMM_FILE: &str = "sampler-gmm.json";

/// `--sampler`'s values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SamplerName {
    /// The fitted mixture when the run has one for its current weights (`vae train` fits it
    /// at the end), else the prior
    #[default]
    Auto,
    /// z ~ the model's prior: N(0, I), or its mixture (VampPrior, `--prior mog`)
    Prior,
    /// z ~ the Gaussian mixture fitted to the training codes (per label for a cvae); an error
    /// when the run has none
    Gmm,
}

impl std::fmt::Display for SamplerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SamplerName::Auto => "auto",
            SamplerName::Prior => "prior",
            SamplerName::Gmm => "gmm",
        })
    }
}

/// Components `vae train` fits per mixture by default, and `vae fit-sampler`'s default.
pub const DEFAULT_COMPONENTS: usize = 10;

/// Codes per mixture `vae train` fits to at most (a seeded sample of the training set's):
/// enough for a 10-component mixture in 20–128 dimensions, and a few seconds of EM.
pub const TRAIN_FIT_CODES: usize = 10_000;

/// The components a mixture of `codes` codes in `dim` dimensions gets when `wanted` are
/// asked for: at most one per 2·dim codes (a full covariance has dim(dim+1)/2 entries; fewer
/// codes per component overfit them), at least 1.
pub fn components_for(codes: usize, dim: usize, wanted: usize) -> usize {
    (codes / (2 * dim.max(1))).clamp(1, wanted.max(1))
}

/// One label's mixture (or the only one), with how its fit went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelMixture {
    /// The class it was fitted on (a cvae's), or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<u8>,
    /// Training codes it was fitted to.
    pub codes: usize,
    pub iterations: usize,
    pub converged: bool,
    /// Mean log-density of those codes under the mixture, and under N(0, I), nats per code.
    pub log_density: f64,
    pub prior_log_density: f64,
    pub gmm: Gmm,
}

/// A fitted sampler as saved in [`GMM_FILE`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FittedGmm {
    /// Components per mixture.
    pub components: usize,
    /// The model epoch whose encoder made the codes.
    pub epoch: usize,
    pub seed: u64,
    /// What the codes are: "mu of q(z|x)" of the training images.
    pub codes: String,
    pub mixtures: Vec<LabelMixture>,
}

/// A sampler ready to draw codes for a model.
#[derive(Clone, Debug)]
pub enum LatentSampler {
    Prior,
    Gmm(FittedGmm),
}

/// Why a sampler cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("{0} has no fitted sampler; fit one with `vae fit-sampler {1} --gmm 10`")]
    Missing(String, String),
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0} is corrupt ({1}); fit it again with `vae fit-sampler {2} --gmm 10`")]
    Corrupt(String, String, String),
    #[error(
        "{path} was fitted to the weights of epoch {fitted}, but the model is now at epoch {now}; fit it again with `vae fit-sampler {run} --gmm {k}`"
    )]
    Stale { path: String, fitted: usize, now: usize, run: String, k: usize },
}

impl LatentSampler {
    /// The sampler `name` for the run in `dir`, whose model is at `epoch` with `latent` dimensions
    /// and `classes` labels (0: unconditional).
    ///
    /// # Errors
    /// [`SamplerError`] when the mixture is missing, unreadable, malformed, fitted to another
    /// epoch's weights, or does not fit the model.
    pub fn load(
        name: SamplerName,
        dir: &RunDir,
        epoch: usize,
        latent: usize,
        classes: usize,
    ) -> Result<LatentSampler, SamplerError> {
        if name == SamplerName::Prior {
            return Ok(LatentSampler::Prior);
        }
        match (name, LatentSampler::load_gmm(dir, epoch, latent, classes)) {
            // Auto: no mixture, or one fitted to older weights (training resumed with
            // `--fit-sampler 0`): the prior, as `describe` then says.
            (SamplerName::Auto, Err(SamplerError::Missing(..) | SamplerError::Stale { .. })) => {
                Ok(LatentSampler::Prior)
            }
            (_, loaded) => loaded,
        }
    }

    /// [`LatentSampler::load`] for `SamplerName::Gmm`.
    fn load_gmm(dir: &RunDir, epoch: usize, latent: usize, classes: usize) -> Result<LatentSampler, SamplerError> {
        let path = dir.file(GMM_FILE);
        let (shown, run) = (path.display().to_string(), dir.path.display().to_string());
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SamplerError::Missing(run.clone(), run)),
            Err(e) => return Err(SamplerError::Read(shown, e)),
        };
        let corrupt = |why: String| SamplerError::Corrupt(shown.clone(), why, run.clone());
        let mut fitted: FittedGmm = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        for m in &mut fitted.mixtures {
            m.gmm = m.gmm.clone().checked().map_err(|e| corrupt(e.to_string()))?;
            if m.gmm.dim != latent {
                return Err(corrupt(format!("its codes have {} dimensions, the model's {latent}", m.gmm.dim)));
            }
        }
        let labels: Vec<Option<u8>> = fitted.mixtures.iter().map(|m| m.label).collect();
        let want: Vec<Option<u8>> =
            if classes == 0 { vec![None] } else { (0..classes).map(|c| Some(c as u8)).collect() };
        if labels != want {
            return Err(corrupt(format!("it holds mixtures for labels {labels:?}, the model needs {want:?}")));
        }
        if fitted.epoch != epoch {
            return Err(SamplerError::Stale {
                path: shown,
                fitted: fitted.epoch,
                now: epoch,
                run,
                k: fitted.components,
            });
        }
        Ok(LatentSampler::Gmm(fitted))
    }

    pub fn name(&self) -> SamplerName {
        match self {
            LatentSampler::Prior => SamplerName::Prior,
            LatentSampler::Gmm(_) => SamplerName::Gmm,
        }
    }

    /// `n` codes `[n, latent]` from a fitted mixture, each component's spread scaled by
    /// `temperature`, from the mixture of each code's label where there is one per label
    /// (labels clamped to the mixtures there are).
    fn draw(
        f: &FittedGmm,
        n: usize,
        latent: usize,
        labels: Option<&[u8]>,
        temperature: f32,
        rng: &mut Rng,
    ) -> Vec<f32> {
        let mut z = Vec::with_capacity(n * latent);
        for i in 0..n {
            let which = match (labels, f.mixtures.len()) {
                (Some(l), m) if m > 1 => (l[i] as usize).min(m - 1),
                _ => 0,
            };
            z.extend(f.mixtures[which].gmm.sample(1, temperature as f64, rng).iter().map(|&v| v as f32));
        }
        z
    }
}

/// How a mixture is fitted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitSettings {
    /// Components per mixture at most (each gets [`components_for`] its codes).
    pub components: usize,
    /// Fit each mixture to at most this many of its codes, a seeded sample (`None`: all).
    pub max_codes: Option<usize>,
    /// EM stops after this many iterations, or when the mean log-likelihood per code
    /// improves by less than `tol`.
    pub max_iter: usize,
    pub tol: f64,
    /// Seed of the sample and of the k-means++ starting points.
    pub seed: u64,
}

impl FitSettings {
    /// `vae fit-sampler`'s: every code, EM to 1e-5 nats per code or 300 iterations.
    pub fn thorough(components: usize, seed: u64) -> FitSettings {
        FitSettings { components, max_codes: None, max_iter: 300, tol: 1e-5, seed }
    }

    /// The end of `vae train`'s: at most [`TRAIN_FIT_CODES`] codes per mixture, EM to
    /// scikit-learn's `GaussianMixture` defaults (1e-3 nats per code, 100 iterations), so
    /// it takes seconds.
    pub fn after_training(components: usize) -> FitSettings {
        FitSettings { components, max_codes: Some(TRAIN_FIT_CODES), max_iter: 100, tol: 1e-3, seed: 1 }
    }
}

/// Fits a mixture to the codes (μ of q(z|x)) of `split` under `model`, one per label for a
/// conditional model, as `settings` say. `progress(done, total)` after each mixture.
///
/// # Errors
/// A message when a label has fewer than two training images or the codes are not finite.
pub fn fit(
    model: &Model,
    pool: &Pool,
    split: &Split,
    settings: FitSettings,
    epoch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FittedGmm, String> {
    let FitSettings { components: k, max_codes, max_iter, tol, seed } = settings;
    let c = model.config();
    let (latent, classes) = (c.latent_dim, c.cond_dim());
    let groups: Vec<Option<u8>> = if classes == 0 { vec![None] } else { (0..classes).map(|y| Some(y as u8)).collect() };
    // Which images each mixture is fitted to: all of its label's, or a seeded sample of them.
    let mut members: Vec<Vec<usize>> = groups
        .iter()
        .map(|label| (0..split.len()).filter(|&i| label.is_none_or(|y| split.labels[i] == y)).collect())
        .collect();
    if let Some(max) = max_codes {
        for (g, m) in members.iter_mut().enumerate() {
            if m.len() > max {
                Rng::stream(seed, Purpose::User, 200 + g as u64).shuffle(m);
                m.truncate(max);
                m.sort_unstable();
            }
        }
    }
    let mut wanted = vec![false; split.len()];
    members.iter().flatten().for_each(|&i| wanted[i] = true);
    let order: Vec<usize> = (0..split.len()).filter(|&i| wanted[i]).collect();
    // Codes of the wanted images, in `order`, encoded a chunk at a time.
    let mut codes = vec![0.0f64; split.len() * latent];
    const CHUNK: usize = 1000;
    let p = c.pixels();
    for chunk in order.chunks(CHUNK) {
        let images: Vec<f32> =
            chunk.iter().flat_map(|&i| split.images[i * p..(i + 1) * p].iter().map(|&v| v as f32 / 255.0)).collect();
        let labels: Option<Vec<u8>> = (classes > 0).then(|| chunk.iter().map(|&i| split.labels[i]).collect());
        let enc = model.encode(pool, &images, labels.as_deref()).map_err(|e| e.to_string())?;
        for (j, &i) in chunk.iter().enumerate() {
            for (dst, &v) in codes[i * latent..(i + 1) * latent].iter_mut().zip(&enc.mu[j * latent..(j + 1) * latent]) {
                *dst = v as f64;
            }
        }
    }
    let mut mixtures = Vec::new();
    for (g, (label, members)) in groups.iter().zip(&members).enumerate() {
        let data: Vec<f64> =
            members.iter().flat_map(|&i| codes[i * latent..(i + 1) * latent].iter().copied()).collect();
        let n = members.len();
        let name = label.map_or("the training set".to_string(), |y| format!("label {y}"));
        if n < 2 {
            return Err(format!(
                "{name} has {n} training image{}: a mixture needs at least 2",
                if n == 1 { "" } else { "s" }
            ));
        }
        let kg = components_for(n, latent, k);
        let mut rng = Rng::stream(seed, Purpose::User, 100 + g as u64);
        let (gmm, FitReport { log_likelihoods, converged }) =
            Gmm::fit(&data, latent, kg, max_iter, tol, &mut rng).map_err(|e| format!("{name}: {e}"))?;
        let log_2pi = (2.0 * std::f64::consts::PI).ln();
        let prior = -0.5 * data.iter().map(|v| v * v).sum::<f64>() / n as f64 - 0.5 * latent as f64 * log_2pi;
        mixtures.push(LabelMixture {
            label: *label,
            codes: n,
            iterations: log_likelihoods.len(),
            converged,
            log_density: gmm.mean_log_density(&data),
            prior_log_density: prior,
            gmm,
        });
        progress(g + 1, groups.len());
    }
    Ok(FittedGmm { components: k, epoch, seed, codes: "mu of q(z|x) of the training images".into(), mixtures })
}

/// The mixtures of `f` that got fewer components than asked for, as "label (n codes: k
/// components)" phrases for a warning (empty when every mixture got them all).
pub fn capped(f: &FittedGmm, names: &[String]) -> Vec<String> {
    f.mixtures
        .iter()
        .filter(|m| m.gmm.components() < f.components)
        .map(|m| {
            let who = m.label.map_or("the training set".to_string(), |y| {
                names.get(y as usize).cloned().unwrap_or_else(|| format!("label {y}"))
            });
            format!("{who} ({} codes: {})", m.codes, crate::text::plural(m.gmm.components(), "component"))
        })
        .collect()
}

/// Writes `fitted` to the run's [`GMM_FILE`] atomically; returns its path.
///
/// # Errors
/// If the file cannot be written.
pub fn save(dir: &RunDir, fitted: &FittedGmm) -> std::io::Result<PathBuf> {
    let path = dir.file(GMM_FILE);
    let text = serde_json::to_string(fitted).expect("a mixture serialises");
    crate::io::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

impl LatentSampler {
    /// `n` images `[n, pixels]` decoded from codes drawn by this sampler (the prior's exactly
    /// as [`Model::sample_at`]).
    ///
    /// # Errors
    /// [`crate::model::InputError`] when the labels do not fit the model or the temperature
    /// is negative or not finite.
    pub fn sample(
        &self,
        model: &Model,
        pool: &Pool,
        n: usize,
        labels: Option<&[u8]>,
        temperature: f32,
        rng: &mut Rng,
    ) -> Result<Vec<f32>, crate::model::InputError> {
        let z = self.codes(model, pool, n, labels, temperature, rng)?;
        model.decode(pool, &z, labels)
    }

    /// `n` codes `[n, latent]` drawn by this sampler at `temperature` (labels pick a
    /// per-label mixture's component set), the draws [`LatentSampler::sample`] decodes.
    ///
    /// # Errors
    /// [`crate::model::InputError`] when the temperature is negative or not finite.
    pub fn codes(
        &self,
        model: &Model,
        pool: &Pool,
        n: usize,
        labels: Option<&[u8]>,
        temperature: f32,
        rng: &mut Rng,
    ) -> Result<Vec<f32>, crate::model::InputError> {
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(crate::model::InputError::Temperature(temperature));
        }
        let latent = model.config().latent_dim;
        Ok(match self {
            LatentSampler::Prior => model.prior_codes(pool, n, temperature, rng),
            // Labels are checked by decode; draw clamps them so a bad one cannot panic first.
            LatentSampler::Gmm(f) => Self::draw(f, n, latent, labels.filter(|l| l.len() == n), temperature, rng),
        })
    }

    /// One line for reports: `prior N(0, I)` (or the model's mixture prior, `prior: mixture of
    /// 10 Gaussians`) or `fitted Gaussian mixture (10 components per label, epoch 50)`.
    pub fn describe(&self, prior: &crate::model::config::Prior) -> String {
        match self {
            LatentSampler::Prior if prior.is_standard() => "prior N(0, I)".into(),
            LatentSampler::Prior => format!("prior: {}", prior.describe()),
            LatentSampler::Gmm(f) => format!(
                "fitted Gaussian mixture ({}{} components{}, epoch {})",
                if f.mixtures.iter().any(|m| m.gmm.components() < f.components) { "up to " } else { "" },
                f.components,
                if f.mixtures.len() > 1 { " per label" } else { "" },
                f.epoch
            ),
        }
    }
}
