//! Command-line interface: argument definitions and the commands behind them.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc: placeholders such as
//! `<dataset>` are meant literally.
#![allow(rustdoc::invalid_html_tags)]

use crate::checkpoint::{RunConfig, RunDir};
use crate::core::{AdamConfig, Pool, Rng};
use crate::data::{Binarize, Dataset, Source};
use crate::images;
use crate::model::config::Activation;
use crate::model::{ModelConfig, ModelKind};
use crate::run::{GRID_PADDING, Run};
use crate::train::TrainConfig;
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub mod explore;
pub mod measure;

pub use measure::{ClassifierCommand, ClassifierTrainArgs, EvalArgs, ServeArgs};

#[derive(Parser, Debug)]
#[command(name = "vae", version, about = "Train, evaluate and explore variational autoencoders on images")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (default: the tutorial's VAE on embedded MNIST), or resume a run.
    Train(TrainArgs),
    /// Draw a grid of samples from a trained run.
    Sample(SampleArgs),
    /// Time training and the test pass; print s/epoch, steps/s, GFLOP/s and peak memory.
    Bench(BenchArgs),
    /// Measure a trained run: ELBO, importance-weighted NLL bound, active units, sample scores.
    Eval(EvalArgs),
    /// Test images (or your PNGs) beside their reconstructions.
    Reconstruct(explore::ReconstructArgs),
    /// Walk the latent space between two images (linear and spherical), or across labels.
    Interpolate(explore::InterpolateArgs),
    /// Sweep latent dimensions one at a time, one row per dimension.
    Traverse(explore::TraverseArgs),
    /// Decode a grid over the latent plane (the prior's quantiles, or the top principal plane).
    Manifold(explore::ManifoldArgs),
    /// Plot the test set's latent means coloured by label.
    Scatter(explore::ScatterArgs),
    /// Plot the learning curves of metrics.jsonl.
    Plot(explore::PlotArgs),
    /// Explore a trained model in the browser: sliders, label picker, drawing pad.
    Serve(ServeArgs),
    /// The built-in MNIST classifier used by `vae eval` to score samples.
    #[command(subcommand)]
    Classifier(ClassifierCommand),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetName {
    /// MNIST, embedded in the binary.
    Mnist,
    /// Fashion-MNIST from Debian's `dataset-fashion-mnist` package.
    FashionMnist,
}

#[derive(Args, Debug, Default)]
pub struct DataArgs {
    /// Dataset to train on [default: mnist]
    #[arg(long, value_enum, conflicts_with = "data_dir")]
    pub dataset: Option<DatasetName>,
    /// Train on a folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte,
    /// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each raw or .gz)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataArgs {
    pub fn source(&self) -> Source {
        match (&self.data_dir, self.dataset) {
            (Some(d), _) => Source::Dir(d.clone()),
            (None, Some(DatasetName::FashionMnist)) => Source::FashionMnist,
            _ => Source::Mnist,
        }
    }
}

#[derive(Args, Debug, Default)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Model to train [default: vae]
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Dimension of the latent space z [default: 20]
    #[arg(long)]
    pub latent_dim: Option<usize>,
    /// Width of the hidden layers [default: 400]
    #[arg(long)]
    pub hidden_dim: Option<usize>,
    /// Hidden layers in the encoder and in the decoder [default: 1]
    #[arg(long)]
    pub hidden_layers: Option<usize>,
    /// Non-linearity of the hidden layers [default: relu]
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// Weight of the KL term; 1 is the ELBO [default: 1.0]
    #[arg(long)]
    pub beta: Option<f32>,
    /// Adam learning rate [default: 0.001]
    #[arg(long)]
    pub lr: Option<f32>,
    /// Examples per optimisation step [default: 128]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Total epochs; with --resume, the total to reach [default: 50]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Random seed for initialisation, shuffling and noise [default: 1]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads to use; 0 = all cores [default: 0]
    #[arg(long, value_parser = threads_arg)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Run directory to create [default: runs/<model>-<UTC time>]
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR after its last completed epoch
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Train on the first N training examples only [default: all]
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test examples only [default: all]
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    /// Binarized MNIST: each pixel ~ Bernoulli(intensity), resampled at every use
    /// (dynamic) or drawn once (static) [default: none]
    #[arg(long, value_enum)]
    pub binarize: Option<Binarize>,
    /// Print nothing but errors
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    /// Number of images
    #[arg(short, long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub n: u32,
    /// Digit to draw (cvae only); without it a cvae's row r shows digit r
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub label: Option<u8>,
    /// Random seed of the latent draws
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per grid row
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub nrow: u32,
    /// Output PNG [default: RUN_DIR/samples/sample-seed<S>.png]
    #[arg(short, long, value_name = "FILE.png")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Epochs to train
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: u32,
    /// Model to benchmark
    #[arg(long, value_enum, default_value_t = ModelKind::Vae)]
    pub model: ModelKind,
    /// Threads; 0 = all cores
    #[arg(long, default_value_t = 0, value_parser = crate::cli::threads_arg)]
    pub threads: usize,
    /// Print one JSON object on one line
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train(a),
        Command::Sample(a) => sample(a),
        Command::Reconstruct(a) => explore::reconstruct(a),
        Command::Interpolate(a) => explore::interpolate(a),
        Command::Traverse(a) => explore::traverse(a),
        Command::Manifold(a) => explore::manifold(a),
        Command::Scatter(a) => explore::scatter(a),
        Command::Plot(a) => explore::plot(a),
        Command::Serve(a) => crate::serve::run(&a.run_dir, &a.host, a.port, a.threads),
        Command::Bench(a) => crate::bench::bench(a.model, a.epochs as usize, a.threads, a.json),
        Command::Eval(a) => measure::eval(a),
        Command::Classifier(ClassifierCommand::Train(a)) => measure::classifier_train(a),
    }
}

fn load_data(source: &Source) -> Result<Dataset> {
    Ok(Dataset::load(source)?)
}

fn train(a: TrainArgs) -> Result<()> {
    let mut run = if let Some(dir) = a.resume.clone() {
        let fixed: [(&str, bool); 15] = [
            ("--binarize", a.binarize.is_some()),
            ("--model", a.model.is_some()),
            ("--hidden-layers", a.hidden_layers.is_some()),
            ("--activation", a.activation.is_some()),
            ("--latent-dim", a.latent_dim.is_some()),
            ("--hidden-dim", a.hidden_dim.is_some()),
            ("--beta", a.beta.is_some()),
            ("--lr", a.lr.is_some()),
            ("--batch-size", a.batch_size.is_some()),
            ("--seed", a.seed.is_some()),
            ("--threads", a.threads.is_some()),
            ("--dataset", a.data.dataset.is_some()),
            ("--data-dir", a.data.data_dir.is_some()),
            ("--train-limit", a.train_limit.is_some()),
            ("--test-limit", a.test_limit.is_some()),
        ];
        if let Some((flag, _)) = fixed.iter().find(|(_, given)| *given) {
            bail!(
                "{flag} cannot be changed when resuming: the run's config.json fixes it (only --epochs may be given with --resume)"
            );
        }
        let config = RunDir::new(&dir).load_config()?;
        let data = load_data(&config.train.dataset)?;
        Run::resume(dir, a.epochs, data)?
    } else {
        let source = a.data.source();
        let data = load_data(&source)?;
        let kind = a.model.unwrap_or(ModelKind::Vae);
        let tutorial = ModelConfig::tutorial(kind);
        let model = ModelConfig {
            kind,
            image_rows: data.train.rows,
            image_cols: data.train.cols,
            hidden_dim: a.hidden_dim.unwrap_or(tutorial.hidden_dim),
            latent_dim: a.latent_dim.unwrap_or(tutorial.latent_dim),
            hidden_layers: a.hidden_layers.unwrap_or(1),
            activation: a.activation.unwrap_or_default(),
        };
        let threads = match a.threads.unwrap_or(0) {
            0 => crate::core::pool::available_threads(),
            t => t,
        };
        let train = TrainConfig {
            epochs: a.epochs.unwrap_or(50),
            batch_size: a.batch_size.unwrap_or(128),
            adam: AdamConfig { lr: a.lr.unwrap_or(1e-3), ..AdamConfig::default() },
            beta: a.beta.unwrap_or(1.0),
            seed: a.seed.unwrap_or(1),
            threads,
            dataset: source,
            train_limit: a.train_limit,
            test_limit: a.test_limit,
            binarize: a.binarize.unwrap_or_default(),
        };
        let out = a.out.clone().unwrap_or_else(|| default_run_dir(kind));
        let config = RunConfig { model, train, version: env!("CARGO_PKG_VERSION").to_string() };
        Run::create(out, config, data)?
    };
    let t = &run.trainer;
    if t.epoch >= t.config.epochs {
        println!(
            "{} already completed {} of {} epochs; pass --epochs N (the new total) to train further",
            run.dir.path.display(),
            t.epoch,
            t.config.epochs
        );
        return Ok(());
    }
    if !a.quiet {
        let verb = if t.epoch > 0 { format!("resuming after epoch {}", t.epoch) } else { "training".into() };
        println!(
            "{verb} {} ({} parameters) on {}: {} train / {} test images, {} steps/epoch, {} threads -> {}",
            t.model.config().kind,
            group(t.model.params.len()),
            t.config.dataset,
            t.data.train.len(),
            t.data.test.len(),
            t.steps_per_epoch(),
            t.pool.threads(),
            run.dir.path.display()
        );
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
    run.train(a.quiet)?;
    let recon = run.save_reconstructions()?;
    let curves = explore::write_curves(&run.dir, None)?;
    if !a.quiet {
        println!(
            "done: weights in {}, samples in {}, reconstructions in {}, learning curves in {}",
            run.dir.file(crate::checkpoint::MODEL_FILE).display(),
            run.dir.samples_dir().display(),
            recon.display(),
            curves.display()
        );
    }
    Ok(())
}

fn sample(a: SampleArgs) -> Result<()> {
    let dir = RunDir::new(&a.run_dir);
    let (config, model) = dir.load_model()?;
    let kind = config.model.kind;
    if a.label.is_some() && !kind.conditional() {
        bail!(
            "--label needs a conditional model, but {} holds a {kind} model; train one with `vae train --model cvae`",
            a.run_dir.display()
        );
    }
    let n = a.n as usize;
    let labels: Option<Vec<u8>> = kind.conditional().then(|| match a.label {
        Some(d) => vec![d; n],
        None => (0..n).map(|i| ((i / a.nrow as usize) % 10) as u8).collect(),
    });
    let pool = Pool::new(0);
    let mut rng = Rng::stream(a.seed, crate::core::Purpose::User, 0);
    let imgs = model.sample(&pool, n, labels.as_deref(), &mut rng);
    let c = model.config();
    let grid = images::grid(&imgs, c.image_rows, c.image_cols, a.nrow as usize, GRID_PADDING);
    let out = a.output.unwrap_or_else(|| {
        let label = a.label.map(|d| format!("-label{d}")).unwrap_or_default();
        dir.samples_dir().join(format!("sample-seed{}{label}.png", a.seed))
    });
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    grid.save(&out).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} ({}x{}, {n} samples)", out.display(), grid.width, grid.height);
    Ok(())
}

/// `runs/<model>-YYYYMMDD-HHMMSS` (UTC), with a suffix if that already exists.
fn default_run_dir(kind: ModelKind) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let stamp = format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60);
    let base = PathBuf::from("runs").join(format!("{kind}-{stamp}"));
    let mut path = base.clone();
    let mut i = 2;
    while path.exists() {
        path = PathBuf::from(format!("{}-{i}", base.display()));
        i += 1;
    }
    path
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// 652824 → "652,824".
/// The one line `vae` prints for a failure: the error and its causes, each cause added only
/// if the text so far does not already say it (our error types quote their source's message).
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line
}

/// Parses `--threads`: 0 (all cores) up to the cores this machine lets us use. More threads
/// than cores only slow our hot fork-join pool down, so that is refused rather than obeyed.
pub fn threads_arg(s: &str) -> std::result::Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("expected a whole number of threads, got {s:?}"))?;
    let cores = crate::core::pool::available_threads();
    if n > cores {
        return Err(format!("{n} is more than the {cores} cores here; use 0 (all cores) or at most {cores}"));
    }
    Ok(n)
}

pub fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_digit_groups() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(group(652_824), "652,824");
        assert_eq!(group(12), "12");
    }

    #[test]
    fn error_line_says_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        // A thiserror type that quotes its source: the source is not repeated.
        let quoted = crate::checkpoint::CheckpointError::Write { path: "x/a.png".into(), source: io() };
        let line = error_line(&anyhow::Error::from(quoted));
        assert_eq!(line.matches("No such file or directory").count(), 1, "{line}");
        // A context over a cause it does not quote: the cause is appended.
        let wrapped = anyhow::Error::from(io()).context("cannot write out.png");
        assert_eq!(error_line(&wrapped), "cannot write out.png: No such file or directory");
    }
}
