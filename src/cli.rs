//! Command-line interface: argument definitions and the commands behind them.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc: placeholders such as
//! `<dataset>` are meant literally.
#![allow(rustdoc::invalid_html_tags)]

use crate::checkpoint::RunDir;
use crate::core::{Pool, Rng};
use crate::data::{Dataset, Source};
use crate::images;
use crate::model::ModelKind;
use crate::run::GRID_PADDING;
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub mod args;
pub mod cache;
pub mod curves;
pub mod encode;
pub mod explore;
pub mod fit_sampler;
pub mod measure;
pub mod reconstruct;
pub mod runs;
pub mod train;

pub use crate::text::{group, plural};
pub use measure::{ClassifierCommand, ClassifierTrainArgs, EvalArgs, ServeArgs};
pub use train::TrainArgs;

#[derive(Parser, Debug)]
#[command(name = "vae", version, about = "Train, evaluate and explore variational autoencoders on images")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (default: the tutorial's VAE on embedded MNIST), or resume a run.
    Train(Box<TrainArgs>),
    /// Draw a grid of samples from a trained run.
    Sample(SampleArgs),
    /// Time training and the test pass; print s/epoch, steps/s, GFLOP/s and peak memory.
    Bench(BenchArgs),
    /// Measure a trained run: ELBO, importance-weighted NLL bound, active units, sample scores.
    Eval(EvalArgs),
    /// Test images (or your PNGs) beside their reconstructions.
    Reconstruct(reconstruct::ReconstructArgs),
    /// Walk the latent space between two images (linear and spherical), or across labels.
    Interpolate(explore::InterpolateArgs),
    /// Sweep latent dimensions one at a time, one row per dimension.
    Traverse(explore::TraverseArgs),
    /// Decode a grid over the latent plane (the prior's quantiles, or the top principal plane).
    Manifold(explore::ManifoldArgs),
    /// Plot the test set's latent means coloured by label.
    Scatter(explore::ScatterArgs),
    /// Plot the learning curves of metrics.jsonl.
    Plot(curves::PlotArgs),
    /// List the runs in a folder, newest first: model, data, epochs, test loss, best NLL.
    Runs(runs::RunsArgs),
    /// Write a split's latent codes to CSV or NPY, for other tools.
    Encode(encode::EncodeArgs),
    /// Fit a Gaussian mixture to the training codes, for sampling with --sampler gmm.
    FitSampler(fit_sampler::FitSamplerArgs),
    /// Explore a trained model in the browser: sliders, label picker, drawing pad.
    Serve(ServeArgs),
    /// List the decoded-folder cache (kept under VAE_CACHE_LIMIT_MB, default 2048), or clear it.
    Cache(cache::CacheArgs),
    /// The built-in MNIST classifier used by `vae eval` to score samples.
    #[command(subcommand)]
    Classifier(ClassifierCommand),
    /// Print a shell completion script for bash, zsh, fish, elvish or PowerShell.
    ///
    /// For example: `vae completions bash > ~/.local/share/bash-completion/completions/vae`.
    Completions(CompletionsArgs),
}

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct CompletionsArgs {
    /// Shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetName {
    /// MNIST, embedded in the binary.
    Mnist,
    /// Fashion-MNIST from Debian's `dataset-fashion-mnist` package.
    FashionMnist,
}

#[derive(Args, Debug, Default)]
#[command(next_line_help = true)]
pub struct DataArgs {
    /// Dataset to train on [default: mnist]
    #[arg(long, value_enum, conflicts_with = "data_dir")]
    pub dataset: Option<DatasetName>,
    /// Train on a folder of images (PNG, JPEG, BMP, GIF, WebP; searched recursively; one
    /// sub-folder per class for labels; train/ and test/ sub-folders as the split), or one
    /// holding the four MNIST-format files (train-images-idx3-ubyte, …; raw or .gz)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Image folders: resize the shorter side to S and crop the centre S x S [default: the
    /// images' own size, when they all agree]
    #[arg(long, value_name = "S")]
    pub image_size: Option<usize>,
    /// Image folders: read the images in grey or colour [default: rgb if any image is in
    /// colour]
    #[arg(long, value_enum)]
    pub color: Option<crate::data::Color>,
    /// Image folders: what transparent pixels are composited onto [default: white]
    #[arg(long, value_enum)]
    pub background: Option<crate::data::Background>,
    /// Image folders without train/ and test/: the fraction held out for testing, from 0 up to
    /// 1, drawn with --seed; 0 trains on every image (then no test loss is measured, and the
    /// commands that show test images ask for pictures of your own) [default: 0.1]
    #[arg(long, value_name = "F", value_parser = args::fraction)]
    pub test_fraction: Option<f64>,
}

impl DataArgs {
    /// The data the flags name; an image folder's split is drawn with `seed`.
    ///
    /// # Errors
    /// If an image-folder flag (`--image-size`, `--color`, `--background`, `--test-fraction`) is
    /// given without `--data-dir`, or for a folder of MNIST-format files. (Checked here, not
    /// by clap, so that `train --resume` can first say that these cannot change.)
    pub fn source(&self, seed: u64) -> Result<Source> {
        if self.data_dir.is_none()
            && let Some((flag, _)) = self.folder_flags().into_iter().find(|(_, given)| *given)
        {
            bail!("{flag} applies to image folders: give the folder with --data-dir DIR");
        }
        let source = match (&self.data_dir, self.dataset) {
            (Some(d), _) => Source::for_dir(d, || crate::data::FolderSource {
                dir: d.clone(),
                image_size: self.image_size,
                color: self.color,
                background: self.background.unwrap_or_default(),
                test_fraction: self.test_fraction.unwrap_or(0.1),
                split_seed: seed,
            }),
            (None, Some(DatasetName::FashionMnist)) => Source::FashionMnist,
            _ => Source::Mnist,
        };
        if let Source::Dir(d) = &source
            && let Some((flag, _)) = self.folder_flags().into_iter().find(|(_, given)| *given)
        {
            bail!("{flag} applies to image folders, but {} holds MNIST-format files; drop {flag}", d.display());
        }
        Ok(source)
    }

    /// The image-folder flags and whether each was given.
    pub fn folder_flags(&self) -> [(&'static str, bool); 4] {
        [
            ("--image-size", self.image_size.is_some()),
            ("--color", self.color.is_some()),
            ("--background", self.background.is_some()),
            ("--test-fraction", self.test_fraction.is_some()),
        ]
    }
}

#[derive(Args, Debug)]
#[command(next_line_help = true)]
#[command(allow_negative_numbers = true)]
pub struct SampleArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    /// Number of images, 1 to 10000
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub n: u32,
    /// Class to draw, by number or name (cvae only); without it a cvae's row r shows class r
    #[arg(long)]
    pub label: Option<String>,
    /// Random seed of the latent draws
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Draw z ~ N(0, T² I) (with --sampler gmm, each component's spread × T): below 1, more
    /// typical and less varied images
    #[arg(long, value_name = "T", default_value_t = 1.0, value_parser = temperature_arg)]
    pub temperature: f32,
    /// Where codes come from: auto (the mixture `vae train` fitted to the training codes, when
    /// the run has one for its current weights; else the prior), prior, or gmm
    #[arg(long, value_enum, default_value_t = crate::sampler::SamplerName::Auto)]
    pub sampler: crate::sampler::SamplerName,
    /// Draw each image from p(x|z) instead of showing its mean: 0/1 pixels for the Bernoulli,
    /// 8-bit values for the discretized likelihoods, noise around the mean for the densities
    #[arg(long)]
    pub sample_pixels: bool,
    /// Images per grid row, 1 to 1000
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub nrow: u32,
    /// Output: a picture (.png or .jpg), or the images' values (.npy: float32 [N, channels,
    /// height, width] in [0, 1]) [default: RUN_DIR/samples/sample-seed<S>.png, plus -label<D>
    /// and -t<T> when given, -gmm or -prior when --sampler names one, -pixels with
    /// --sample-pixels]
    #[arg(short, long, value_name = "FILE.png", value_parser = sample_path)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct BenchArgs {
    /// Epochs to train, 1 to 1000
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub epochs: u32,
    /// Model to benchmark
    #[arg(long, value_enum, default_value_t = ModelKind::Vae)]
    pub model: ModelKind,
    /// Layers: the tutorial's mlp, or the reference's convolutions
    #[arg(long, value_enum, default_value_t = crate::model::Arch::Mlp)]
    pub arch: crate::model::Arch,
    /// conv: channels per stride-2 layer [default: by image side, as `vae train`]
    #[arg(long, value_name = "W1,W2,...", value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    /// Dimension of z, 1 to 16384
    #[arg(long, value_name = "D", default_value_t = 20, value_parser = args::count(1, 1 << 14))]
    pub latent_dim: usize,
    /// Train on random binary images of C channels and side S instead of MNIST (as the
    /// PyTorch reference's SHAPE=C,S), e.g. 3,64
    #[arg(long, value_name = "C,S", value_parser = shape_arg)]
    pub shape: Option<crate::core::Shape>,
    /// Steps per epoch on --shape's random images, 1 to 100000
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub steps: u32,
    /// Examples per step, 1 to 65536
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch_size: u32,
    /// Objective to train on
    #[arg(long, value_enum, default_value_t = train::ObjectiveName::Elbo)]
    pub objective: train::ObjectiveName,
    /// Importance samples per example for --objective iwae, 1 to 100 [default: 5]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=crate::train::MAX_IWAE_SAMPLES as i64))]
    pub k: Option<u32>,
    /// Threads; 0 = all cores
    #[arg(long, default_value_t = 0, value_parser = crate::cli::threads_arg)]
    pub threads: usize,
    /// Print one JSON object on one line
    #[arg(long)]
    pub json: bool,
}

/// Runs the command `cli` names.
///
/// # Errors
/// The command's own failure (a run or dataset that cannot be read, a flag out of range, a file
/// that cannot be written, …), with a message that names the fix.
pub fn run(cli: Cli) -> Result<()> {
    // A misspelt VAE_SIMD would silently run at full speed: refuse it, naming the fix.
    crate::core::simd::requested()?;
    match cli.command {
        Command::Train(a) => train::train(*a),
        Command::Sample(a) => sample(a),
        Command::Reconstruct(a) => reconstruct::reconstruct(a),
        Command::Interpolate(a) => explore::interpolate(a),
        Command::Traverse(a) => explore::traverse(a),
        Command::Manifold(a) => explore::manifold(a),
        Command::Scatter(a) => explore::scatter(a),
        Command::Plot(a) => curves::plot(a),
        Command::Runs(a) => runs::runs(a),
        Command::Encode(a) => encode::encode(a),
        Command::FitSampler(a) => fit_sampler::fit_sampler(a),
        Command::Cache(a) => cache::cache(a),
        Command::Serve(a) => {
            let moved = a.moved.data_dir.as_deref();
            crate::serve::run(&a.run_dir, &a.host, a.port, a.threads, a.limits(), a.sampler, moved)
        }
        Command::Bench(a) => bench(a),
        Command::Eval(a) => measure::eval(a),
        Command::Classifier(ClassifierCommand::Train(a)) => measure::classifier_train(a),
        Command::Completions(a) => {
            clap_complete::generate(
                a.shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "vae",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// Loads a dataset for a command that trains on it: an image folder with progress bars and
/// a line saying what was decoded or skipped (unless `quiet`), its colour resolved in the
/// returned source.
pub(crate) fn load_data(source: &Source, quiet: bool) -> Result<(Dataset, Source)> {
    match source {
        Source::Folder(f) => {
            let (data, report) = crate::data::folder::load(f, !quiet)?;
            if !quiet {
                println!("{}: {}", f.dir.display(), report.summary());
            }
            let resolved = Source::Folder(crate::data::FolderSource { color: Some(report.color), ..f.clone() });
            Ok((data, resolved))
        }
        other => Ok((Dataset::load(other)?, other.clone())),
    }
}

/// Parses `--shape C,S`: 1 or 3 channels, a side from 4 to 1024.
fn shape_arg(s: &str) -> std::result::Result<crate::core::Shape, String> {
    let parsed = s.split_once(',').and_then(|(c, side)| Some((c.trim().parse().ok()?, side.trim().parse().ok()?)));
    match parsed {
        Some((c @ (1 | 3), side @ 4..=1024)) => Ok(crate::core::Shape::new(c, side, side)),
        _ => Err(format!("expected CHANNELS,SIDE with 1 or 3 channels and a side of 4 to 1024 (e.g. 3,64), got {s:?}")),
    }
}

fn bench(a: BenchArgs) -> Result<()> {
    if a.objective == train::ObjectiveName::Elbo && a.k.is_some() {
        bail!("--k sets the samples of --objective iwae; add --objective iwae");
    }
    let objective = a.objective.with_k(a.k.map_or(train::DEFAULT_K, |k| k as usize));
    objective.check_model(a.model).map_err(anyhow::Error::msg)?;
    let shape = a.shape.unwrap_or(crate::core::Shape::mnist());
    let mut model = match a.arch {
        crate::model::Arch::Mlp => {
            if a.widths.is_some() {
                bail!("--widths sets the channels of --arch conv; add --arch conv");
            }
            let t = crate::model::ModelConfig::tutorial(a.model);
            crate::model::ModelConfig {
                image_rows: shape.height,
                image_cols: shape.width,
                channels: shape.channels,
                latent_dim: a.latent_dim,
                ..t
            }
        }
        crate::model::Arch::Conv => {
            let mut c = crate::model::ModelConfig::conv(a.model, shape, a.latent_dim);
            if let Some(w) = a.widths {
                c.widths = w;
            }
            c
        }
    };
    model.classes = 10;
    model.validate().map_err(anyhow::Error::msg)?;
    let opts = crate::bench::BenchOptions {
        model,
        objective,
        epochs: a.epochs as usize,
        threads: a.threads,
        batch: a.batch_size as usize,
        random_steps: a.shape.map(|_| a.steps as usize),
        json: a.json,
    };
    crate::bench::bench(&opts)
}

fn sample(a: SampleArgs) -> Result<()> {
    let dir = RunDir::new(&a.run_dir);
    let (config, model) = dir.load_model()?;
    let kind = config.model.kind;
    if !kind.variational() {
        bail!(
            "{} holds an ae, which has no prior to sample from (its codes follow no known distribution); \
             `vae reconstruct` shows what it learned, or train --model vae",
            a.run_dir.display()
        );
    }
    if a.label.is_some() && !kind.conditional() {
        bail!(
            "--label needs a conditional model, but {} holds a {kind} model; train one with `vae train --model cvae`",
            a.run_dir.display()
        );
    }
    let label = a.label.as_deref().map(|spec| resolve_label(&config, spec, &a.run_dir)).transpose()?;
    let n = a.n as usize;
    let classes = config.model.classes.max(1);
    let labels: Option<Vec<u8>> = kind.conditional().then(|| match label {
        Some(d) => vec![d; n],
        None => (0..n).map(|i| ((i / a.nrow as usize) % classes) as u8).collect(),
    });
    let sampler = crate::sampler::LatentSampler::load(
        a.sampler,
        &dir,
        dir.model_epoch()?.unwrap_or(0),
        config.model.latent_dim,
        config.model.cond_dim(),
    )?;
    let pool = Pool::new(0);
    let mut rng = Rng::stream(a.seed, crate::core::Purpose::User, 0);
    let imgs = if a.sample_pixels {
        let z = sampler.codes(&model, &pool, n, labels.as_deref(), a.temperature, &mut rng)?;
        let mut pixels = Rng::stream(a.seed, crate::core::Purpose::User, 1);
        model.decode_drawn(&pool, &z, labels.as_deref(), &mut pixels)?
    } else {
        sampler.sample(&model, &pool, n, labels.as_deref(), a.temperature, &mut rng)?
    };
    let c = model.config();
    if let Some(out) = a.output.as_ref().filter(|o| o.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))) {
        let s = c.shape();
        crate::io::write_atomic(out, &crate::export::npy(&[n, s.channels, s.height, s.width], &imgs))
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!(
            "wrote {} ({}, float32 [{n}, {}, {}, {}])",
            out.display(),
            plural(n, "sample"),
            s.channels,
            s.height,
            s.width
        );
        return Ok(());
    }
    let mut grid = images::grid(&imgs, c.shape(), a.nrow as usize, GRID_PADDING);
    if kind.conditional() && label.is_none() {
        // Row r shows class r: say which, beside the row.
        let names = config.class_names();
        let rows = n.div_ceil(a.nrow as usize);
        let captions: Vec<String> = (0..rows).map(|r| names[r % classes].clone()).collect();
        grid = crate::plot::caption_rows(&grid, c.image_rows, GRID_PADDING, &captions)?;
    }
    let out = a.output.unwrap_or_else(|| {
        let label = label.map(|d| format!("-label{d}")).unwrap_or_default();
        let t = if a.temperature == 1.0 { String::new() } else { format!("-t{}", a.temperature) };
        // Named by the sampler only when one was asked for by name.
        let s = if a.sampler == crate::sampler::SamplerName::Auto { String::new() } else { format!("-{}", a.sampler) };
        let pixels = if a.sample_pixels { "-pixels" } else { "" };
        dir.samples_dir().join(format!("sample-seed{}{label}{t}{s}{pixels}.png", a.seed))
    });
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    grid.save(&out).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "wrote {} ({}x{}, {}; codes from the {})",
        out.display(),
        grid.width,
        grid.height,
        plural(n, "sample"),
        sampler.describe()
    );
    Ok(())
}

/// A `--label` value: a class number (`3`) or name (`cat`, any case), checked against the
/// run's classes; the error lists them.
///
/// # Errors
/// If `spec` is neither the number nor the name of one of the run's classes; the message lists
/// them.
pub fn resolve_label(config: &crate::checkpoint::RunConfig, spec: &str, run: &std::path::Path) -> Result<u8> {
    let names = config.class_names();
    let spec = spec.trim();
    if let Some(label) = find_label(&names, spec) {
        return Ok(label);
    }
    let listed: Vec<String> = names
        .iter()
        .enumerate()
        .take(12)
        .map(|(i, n)| if n == &i.to_string() { n.clone() } else { format!("{i} {n}") })
        .collect();
    let more = if names.len() > 12 { format!(", … ({} in all)", names.len()) } else { String::new() };
    bail!("--label {spec:?} is not a class of {}; its classes are {}{more}", run.display(), listed.join(", "))
}

pub use crate::checkpoint::find_label;

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

/// Parses an output picture's path: the name must end in `.png`, `.jpg` or `.jpeg` (any case),
/// the formats pictures are written in, so a file's bytes always match its name.
///
/// # Errors
/// A message for clap if the extension is missing or another format's.
pub fn picture_path(s: &str) -> std::result::Result<PathBuf, String> {
    let path = PathBuf::from(s);
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png" | "jpg" | "jpeg") => Ok(path),
        _ => Err(format!("pictures are written as PNG or JPEG: end the name in .png or .jpg, got {s:?}")),
    }
}

/// Parses `vae sample -o`: a picture's path, or a `.npy` file for the values.
///
/// # Errors
/// A message for clap if the extension is none of .png, .jpg, .jpeg, .npy.
pub fn sample_path(s: &str) -> std::result::Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
        return Ok(path);
    }
    picture_path(s).map_err(|_| format!("samples are written as .png, .jpg or .npy: end the name in one, got {s:?}"))
}

/// Parses `--temperature`: a finite number ≥ 0 (the standard deviation of z is T).
///
/// # Errors
/// A message for clap if `s` is not a finite number ≥ 0.
pub fn temperature_arg(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(format!("expected a number ≥ 0 (1 = the prior N(0, I), 0.8 = z ~ N(0, 0.64 I)), got {s:?}")),
    }
}

/// Parses `--threads`: 0 (all cores) up to the cores this machine lets us use. More threads
/// than cores only slow our hot fork-join pool down, so that is refused rather than obeyed.
///
/// # Errors
/// A message for clap if `s` is not a whole number, or is more than the cores available.
pub fn threads_arg(s: &str) -> std::result::Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("expected a whole number of threads, got {s:?}"))?;
    let cores = crate::core::pool::available_threads();
    if n > cores {
        return Err(format!(
            "{n} is more than the {} here; use 0 (all cores) or at most {cores}",
            plural(cores, "core")
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

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
