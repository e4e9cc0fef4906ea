//! `vae eval`: every metric of a run, printed as a table and kept in the run's history
//! (`evals.jsonl`, the latest also as `eval.json`; see [`super::history`]) or written to `-o FILE`.

use super::iwae::{encode_split, iwae};
use super::{ElboReport, IwaeReport, active_units, elbo, latent_activity};
use crate::checkpoint::{RunConfig, RunDir, write_atomic};
use crate::core::Pool;
use crate::core::bf16::Precision;
use crate::data::{Dataset, Split};
use crate::model::Model;
use crate::sampler::{LatentSampler, SamplerName};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// Which split to evaluate on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SplitName {
    #[default]
    Test,
    Train,
}

impl SplitName {
    /// `test` or `training`, as in "50 test images".
    pub fn noun(self) -> &'static str {
        match self {
            SplitName::Test => "test",
            SplitName::Train => "training",
        }
    }
}

#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub split: SplitName,
    pub elbo_samples: usize,
    pub k: usize,
    pub seed: u64,
    /// Evaluate the first N images only.
    pub limit: Option<usize>,
    pub threads: usize,
    /// Classifier run directory for the sample scores (`None`: the default location).
    pub classifier: Option<PathBuf>,
    /// Generated images for the classifier-based scores.
    pub generated: usize,
    /// Standard deviation of the generated images' z (1 = the prior N(0, I)).
    pub temperature: f32,
    /// Where the generated images' codes come from.
    pub sampler: SamplerName,
    pub quiet: bool,
    /// Write the report here instead of into the run directory.
    pub output: Option<PathBuf>,
    /// Where the run's data folder is now, if it moved (`--data-dir`).
    pub data_dir: Option<PathBuf>,
    /// The products' number format (bf16 where the CPU runs it, else f32).
    pub precision: Precision,
}

/// Fewer generated images than this make the Fréchet distance mostly noise and bias (the
/// estimate is biased upward by O(1/n); papers use 10,000): the table says so.
pub const FEW_GENERATED: usize = 1000;

/// The settings an evaluation ran with, recorded beside its figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    pub k: usize,
    pub elbo_samples: usize,
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    pub generated: usize,
    pub temperature: f32,
    pub threads: usize,
    #[serde(default, skip_serializing_if = "is_prior")]
    pub sampler: SamplerName,
    /// The products' number format that ran (f32 unless bf16 ran).
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

fn is_prior(s: &SamplerName) -> bool {
    *s == SamplerName::Prior
}

/// One evaluation: a line of `evals.jsonl`, all of `eval.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalReport {
    pub run: String,
    /// When it ran (RFC 3339, UTC; empty in reports of older versions).
    #[serde(default)]
    pub time: String,
    /// How it ran (absent in reports of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<EvalSettings>,
    pub model: String,
    /// What the run was trained on: "elbo", or "iwae k=K".
    pub objective: String,
    pub epoch: usize,
    pub split: SplitName,
    pub images: usize,
    pub binarized: bool,
    /// The decoder's likelihood, e.g. "bernoulli", "gaussian (learned σ per channel)".
    #[serde(default)]
    pub likelihood: String,
    /// The image shape, e.g. "64x64 RGB".
    #[serde(default)]
    pub shape: String,
    /// The NLL bound in bits per dimension (see [`BitsPerDim`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits_per_dim: Option<BitsPerDim>,
    pub sign_convention: String,
    pub elbo: ElboReport,
    pub iwae: IwaeReport,
    /// Cov_x(E_q\[z_u\]) per latent dimension.
    pub activity: Vec<f64>,
    pub active_units: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<super::scores::SampleScores>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier_note: Option<String>,
}

/// The NLL bound per dimension in bits, and how it was computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BitsPerDim {
    pub value: f64,
    pub how: String,
}

impl BitsPerDim {
    /// For a density on [0, 1]^D (Gaussian, continuous Bernoulli) fitted to dequantized data
    /// x = (v + u)/256 (Theis, van den Oord & Bethge 2016, eq. 8): the density of y = 256·x
    /// is p(x)/256^D, and E_u[log p(y)] ≤ log P(v), so bits/dim = (NLL + D·ln 256) / (D·ln 2)
    /// bounds the bytes' code length. A run made before dequantization saw x = v/255: the
    /// same formula, labelled as not a code length (a density at grid points can exceed the
    /// bin's probability, even give negative bits). For the Bernoulli, a probability of binary
    /// values, NLL / (D·ln 2): bits per binary dimension, a code length for binarized data.
    pub fn of(nll: f64, dims: usize, likelihood: &crate::model::Likelihood, dequantized: bool) -> BitsPerDim {
        let d = dims as f64;
        let ln2 = std::f64::consts::LN_2;
        let continuous = likelihood.is_continuous();
        let value = if continuous { (nll + d * 256f64.ln()) / (d * ln2) } else { nll / (d * ln2) };
        let how = match (continuous, dequantized) {
            _ if likelihood.is_discrete() => {
                format!(
                    "NLL / (D·ln 2), D = {dims}: a probability of the 256 values, so a bound on the bytes' code length"
                )
            }
            (true, true) => format!(
                "(NLL + D·ln 256) / (D·ln 2), D = {dims}, on dequantized x = (v + u)/256: a bound on the bytes' code length"
            ),
            (true, false) => format!(
                "(NLL + D·ln 256) / (D·ln 2), D = {dims}, at x = v/255: NOT a code length (trained before dequantization; retrain to get one)"
            ),
            (false, _) => format!("NLL / (D·ln 2), D = {dims}: bits per binary value of the Bernoulli likelihood"),
        };
        BitsPerDim { value, how }
    }
}

pub const SIGN_CONVENTION: &str = "elbo, iwae.bound and reconstruction are log-likelihoods (and bounds) in nats per \
     example: negative, higher is better, each <= log p(x); kl is positive; iwae.nll = -iwae.bound, lower is better";

/// The split a run is evaluated on: `data` (the run's dataset, [`crate::rundata::load`])
/// with the run's binarization (a dynamically binarized run's training images drawn binary
/// once, seeded, as its test images are), and with `limit`, a seeded sample of that many stratified
/// across classes.
///
/// # Errors
/// If the test split is asked for and the run has none (trained with `--test-fraction 0`).
pub fn eval_split(config: &RunConfig, data: &Dataset, which: SplitName, limit: Option<usize>) -> anyhow::Result<Split> {
    Ok(eval_split_indexed(config, data, which, limit)?.0)
}

/// [`eval_split`], with each example's index in the whole split.
///
/// # Errors
/// As [`eval_split`].
pub fn eval_split_indexed(
    config: &RunConfig,
    data: &Dataset,
    which: SplitName,
    limit: Option<usize>,
) -> anyhow::Result<(Split, Vec<usize>)> {
    let whole = match which {
        SplitName::Test => &data.test,
        SplitName::Train => &data.train,
    };
    if whole.is_empty() && which == SplitName::Test {
        anyhow::bail!("{}; use the training images with --split train", no_test_images(config));
    }
    // The sample depends on the labels and the seed only, so these are the indices `prepare`
    // keeps below.
    let indices = match limit {
        Some(n) => crate::data::subset::sample_indices(whole, n, config.train.seed),
        None => (0..whole.len()).collect(),
    };
    // The limit applied as training applies its own (the same seeded stratified sample, then
    // binarization), so the run's own --train-limit gives back the images it trained on.
    let empty = Split { images: Vec::new(), labels: Vec::new(), shape: whole.shape };
    let mut one = Dataset { train: empty.clone(), test: empty, classes: Vec::new(), files: None };
    let mut train = config.train.clone();
    train.train_limit = limit.filter(|_| which == SplitName::Train);
    train.test_limit = limit.filter(|_| which == SplitName::Test);
    match which {
        SplitName::Test => one.test = whole.clone(),
        SplitName::Train => one.train = whole.clone(),
    }
    train.prepare(&mut one);
    if which == SplitName::Train && config.train.binarize == crate::data::binarize::Binarize::Dynamic {
        // Training drew fresh binary images every epoch, so the training images are scored
        // as binary images too: one seeded draw, as the test set's (its own stream).
        let mut rng = crate::core::Rng::stream(config.train.seed, crate::core::Purpose::Binarize, 2);
        crate::data::binarize::binarize_split(&mut one.train, &mut rng);
    }
    let split = match which {
        SplitName::Test => one.test,
        SplitName::Train => one.train,
    };
    debug_assert_eq!(split.len(), indices.len());
    Ok((split, indices))
}

/// Says that a run has no test images (a command adds what to do instead).
pub fn no_test_images(config: &RunConfig) -> String {
    format!("the run trained on all of {} (--test-fraction 0), so it has no test images", config.train.dataset)
}

fn bar(quiet: bool, len: usize, what: &str) -> indicatif::ProgressBar {
    crate::progress::bar(!quiet, len, what, "images")
}

/// Runs every metric on `dir`'s model, prints the table, then keeps the report (see the
/// module docs). Where the report goes is checked before any work.
///
/// # Errors
/// If `k` or `elbo_samples` is 0, `generated` is 1, or `limit` is `Some(0)`; the report's
/// destination is not writable; the run's model, metrics or data cannot be loaded; the
/// classifier cannot be loaded or does not fit the model (see
/// [`sample_scores`](super::scores::sample_scores)); or the report cannot be written (the
/// table is printed before).
pub fn run_eval(dir: &RunDir, opts: &EvalOptions) -> anyhow::Result<EvalReport> {
    if opts.k == 0 {
        anyhow::bail!("--k must be at least 1 (5000 is the papers' setting)");
    }
    if opts.elbo_samples == 0 {
        anyhow::bail!("--elbo-samples must be at least 1");
    }
    if opts.limit == Some(0) {
        anyhow::bail!("--limit must be at least 1 (leave it out to evaluate the whole split)");
    }
    if opts.generated == 1 {
        anyhow::bail!(
            "--generated must be 0 (no sample scores) or at least 2: the Fréchet distance compares two covariances"
        );
    }
    let destination = opts.output.clone().unwrap_or_else(|| dir.file(super::history::HISTORY_FILE));
    crate::io::check_writable(&destination).map_err(|e| {
        let hint = if opts.output.is_some() { "" } else { "; pass -o FILE to write the report elsewhere" };
        anyhow::anyhow!("cannot write {}: {e}{hint}", destination.display())
    })?;
    let (config, model) = dir.load_model()?;
    let epoch = dir.load_metrics()?.last().map_or(0, |m| m.epoch);
    let c = model.config();
    let sampler = match opts.generated {
        0 => LatentSampler::Prior,
        _ => LatentSampler::load(opts.sampler, dir, dir.model_epoch()?.unwrap_or(0), c.latent_dim, c.cond_dim())?,
    };
    let config = crate::rundata::relocated(dir, &config, opts.data_dir.as_deref())?;
    let data = crate::rundata::load(dir, &config, opts.data_dir.as_deref(), opts.quiet)?;
    let split = eval_split(&config, &data, opts.split, opts.limit)?;
    let pool = Pool::new(opts.threads);
    let _precision = opts.precision.scope();
    let elbo = elbo(&model, &split, &pool, opts.elbo_samples, opts.seed);
    let (mu, _) = encode_split(&model, &split, &pool, crate::train::eval_dequantize_key(model.config(), opts.seed));
    let activity = latent_activity(&mu, model.config().latent_dim);
    let start = Instant::now();
    let progress = bar(opts.quiet, split.len(), &format!("IWAE-{}", opts.k));
    let bounds = iwae(&model, &split, opts.k, opts.seed, &pool, &mut |done| progress.set_position(done as u64));
    progress.finish_and_clear();
    let bound = super::Estimate::of(&bounds);
    let iwae = IwaeReport { k: opts.k, bound, nll: -bound.mean, seconds: start.elapsed().as_secs_f64() };
    let (samples, classifier_note) = super::scores::sample_scores(dir, &config, &data, &model, &pool, opts, &sampler)?;
    let report = EvalReport {
        run: dir.path.display().to_string(),
        time: crate::clock::rfc3339_now(),
        settings: Some(EvalSettings {
            k: opts.k,
            elbo_samples: opts.elbo_samples,
            seed: opts.seed,
            limit: opts.limit,
            generated: opts.generated,
            temperature: opts.temperature,
            threads: pool.threads(),
            // The sampler used, not the one asked for (auto resolves to one of the two).
            sampler: match (opts.generated, opts.sampler) {
                (0, SamplerName::Auto) => SamplerName::Prior,
                (0, asked) => asked,
                _ => sampler.name(),
            },
            precision: if opts.precision.runs_bf16() { Precision::Bf16 } else { Precision::F32 },
        }),
        model: config.model.kind.to_string(),
        objective: config.train.objective.label(),
        epoch,
        split: opts.split,
        images: split.len(),
        binarized: !config.train.binarize.is_none(),
        likelihood: config.model.likelihood.describe(),
        shape: config.model.shape().to_string(),
        bits_per_dim: Some(BitsPerDim::of(
            iwae.nll,
            config.model.pixels(),
            &config.model.likelihood,
            config.model.dequantize,
        )),
        sign_convention: SIGN_CONVENTION.to_string(),
        elbo,
        iwae,
        active_units: active_units(&activity),
        activity,
        samples,
        classifier_note,
    };
    // The table first: whatever happens to the file, the figures are on the screen.
    if !opts.quiet {
        print!("{}", table(&report, &model));
        if model.config().kind.variational()
            && let Some(note) = super::collapse_note(report.elbo.kl, config.train.beta, config.train.kl_warmup)
        {
            eprintln!("{note}");
        }
    }
    let value = serde_json::to_value(&report).expect("report serialises");
    let written = match &opts.output {
        Some(path) => {
            let pretty = serde_json::to_string_pretty(&value).expect("report serialises");
            write_atomic(path, format!("{pretty}\n").as_bytes()).map(|()| path.clone())
        }
        None => super::history::append(&dir.path, &value).map(|()| destination.clone()),
    };
    let path = written.map_err(|e| anyhow::anyhow!("cannot write {}: {e}", destination.display()))?;
    if !opts.quiet {
        println!("wrote {}", path.display());
    }
    Ok(report)
}

/// The human-readable table.
pub fn table(r: &EvalReport, model: &Model) -> String {
    let mut t = String::new();
    let line = |t: &mut String, name: &str, value: String, note: &str| {
        t.push_str(&format!("{name:<34} {value:>22}   {note}\n"));
    };
    t.push_str(&format!(
        "{}{} after epoch {} on the {} set ({} images{}{}); nats per example{}\n",
        r.model,
        if r.objective == "elbo" { String::new() } else { format!(" (trained on the {} bound)", r.objective) },
        r.epoch,
        if r.split == SplitName::Test { "test" } else { "training" },
        r.images,
        if r.binarized { ", binarized" } else { "" },
        if r.likelihood.is_empty() || r.likelihood == "bernoulli" && r.shape == "28x28 grey" {
            String::new()
        } else {
            format!(", {}, {} likelihood", r.shape, r.likelihood)
        },
        if r.settings.as_ref().is_some_and(|s| !s.precision.is_f32()) { "; products in bf16" } else { "" }
    ));
    let e = &r.elbo;
    let cond = if model.config().kind.conditional() { "log p(x|y)" } else { "log p(x)" };
    if model.config().kind.variational() {
        let note = format!("≤ {cond}, higher is better; ± s.e. over {} draws", e.draws);
        line(&mut t, "ELBO", format!("{:.3} ± {:.3}", e.elbo.mean, e.elbo.se), &note);
        let recon = format!("{:.3} ± {:.3}", e.reconstruction.mean, e.reconstruction.se);
        line(&mut t, "  reconstruction E_q[log p(x|z)]", recon, "");
        let prior = model.config().prior;
        let (value, how) = if prior.is_standard() {
            (format!("{:.3}", e.kl), "analytic".to_string())
        } else {
            (
                format!("{:.3} ± {:.3}", e.kl, e.kl_se),
                format!(
                    "estimated: {}, log q(z|x) − log p(z) at one draw per image; ± s.e. over {} draws",
                    prior.describe(),
                    e.draws
                ),
            )
        };
        line(&mut t, "  KL(q(z|x) ‖ p(z))", value, &how);
    } else {
        // An autoencoder has no q(z|x): its "ELBO" is just the reconstruction at z = μ.
        let recon = format!("{:.3}", e.reconstruction.mean);
        line(&mut t, "reconstruction log p(x|z = μ(x))", recon, "ae: no q(z|x), so no ELBO");
        t.push_str("  (ae: IWAE below uses q = N(μ(x), I) as its proposal, a valid but loose bound)\n");
    }
    let i = &r.iwae;
    line(
        &mut t,
        &format!("IWAE-{}", i.k),
        format!("{:.3} ± {:.3}", i.bound.mean, i.bound.se),
        &format!("≤ {cond}; ± s.e. across images; {:.1} s", i.seconds),
    );
    line(
        &mut t,
        &format!("NLL bound (−IWAE-{})", i.k),
        format!("{:.3}", i.nll),
        "the papers' test NLL, lower is better",
    );
    // Bits per dimension: for colour images or densities, where papers report it.
    let l = &model.config().likelihood;
    let shown = |_: &&BitsPerDim| model.config().channels > 1 || l.is_continuous() || l.is_discrete();
    if let Some(b) = r.bits_per_dim.as_ref().filter(shown) {
        line(&mut t, "bits per dimension", format!("{:.4}", b.value), &b.how);
    }
    let l = model.config().latent_dim;
    line(&mut t, "active units", format!("{} / {l}", r.active_units.len()), "Cov_x(E_q[z_u]) > 0.01 (Burda et al.)");
    if let Some(s) = &r.samples {
        t.push_str(&super::scores::table(s));
    }
    if let Some(note) = &r.classifier_note {
        t.push_str(&format!("sample scores: {note}\n"));
    }
    t
}
