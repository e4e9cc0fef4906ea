//! Command-line interface: argument definitions and the commands behind them.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc: placeholders such as
//! `<dataset>` are meant literally.
#![allow(rustdoc::invalid_html_tags)]

use crate::data::{Dataset, Source};
use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub mod args;
pub mod bench;
pub mod cache;
pub mod curves;
pub mod disentangle;
pub mod encode;
pub mod explore;
pub mod fit_sampler;
pub mod launch;
pub mod measure;
pub mod reconstruct;
pub mod runs;
pub mod sample;
pub mod train;

pub use crate::text::{group, plural};
pub use bench::BenchArgs;
pub use measure::{ClassifierCommand, ClassifierTrainArgs, EvalArgs, ServeArgs};
pub use sample::SampleArgs;
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
    /// Score how well a run's codes separate its data's known factors (dSprites, or a folder
    /// trained with --factors): MIG, the β-VAE and FactorVAE scores and DCI, as
    /// disentanglement_lib computes them.
    Disentanglement(disentangle::DisentanglementArgs),
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
    /// dSprites (Matthey et al. 2017): 737,280 binary 64x64 shapes with their five factors,
    /// generated (not downloaded); the shape is the label
    Dsprites,
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
            (None, Some(DatasetName::Dsprites)) => Source::Dsprites,
            _ => Source::Mnist,
        };
        if let Source::Dir(d) | Source::Arrays(d) = &source
            && let Some((flag, _)) = self.folder_flags().into_iter().find(|(_, given)| *given)
        {
            let what = if matches!(source, Source::Dir(_)) { "MNIST-format files" } else { "NumPy arrays" };
            bail!("{flag} applies to image folders, but {} holds {what}; drop {flag}", d.display());
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
        Command::Sample(a) => sample::sample(a),
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
            crate::serve::run(&a.run_dir, &a.options(), moved)
        }
        Command::Bench(a) => bench::bench(a),
        Command::Eval(a) => measure::eval(a),
        Command::Disentanglement(a) => disentangle::disentanglement(a),
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
