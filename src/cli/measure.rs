//! The measuring and serving commands: `eval`, `classifier train`, `serve`.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc: placeholders such as
//! `<dataset>` are meant literally.
#![allow(rustdoc::invalid_html_tags)]

use super::DataArgs;
use super::args::{MAX_EPOCHS, MAX_LIMIT, count};
use crate::checkpoint::RunDir;
use crate::classifier::{ClassifierOptions, train_classifier};
use crate::eval::report::{EvalOptions, SplitName, run_eval};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(next_line_help = true)]
#[command(allow_negative_numbers = true)]
pub struct EvalArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub moved: super::args::MovedData,
    /// Split to evaluate on
    #[arg(long, value_enum, default_value_t = SplitName::Test)]
    pub split: SplitName,
    /// Passes over the split for the ELBO's mean ± standard error, 1 to 10000
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = count(1, 10_000))]
    pub elbo_samples: usize,
    /// Importance samples per image for the IWAE bound, 1 to 1000000 (the papers use 5000)
    #[arg(long, default_value_t = 5000, value_parser = count(1, 1_000_000))]
    pub k: usize,
    /// Random seed of every draw
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate only N images of the split, a sample stratified across classes (seeded by the
    /// run's seed), N ≥ 1 [default: all]
    #[arg(long, value_name = "N", value_parser = count(1, MAX_LIMIT))]
    pub limit: Option<usize>,
    /// Generated images for the classifier-based scores: 0 skips them, else 2 to 1000000
    /// (below 1000 the Fréchet distance means little)
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = count(0, 1_000_000))]
    pub generated: usize,
    /// Temperature of the generated images: z ~ N(0, T² I) (1 = the model's prior)
    #[arg(long, value_name = "T", default_value_t = 1.0, value_parser = crate::cli::temperature_arg)]
    pub temperature: f32,
    /// Where the generated images' codes come from: auto (the run's fitted mixture when it has
    /// one for its current weights, else the prior), prior, or gmm
    #[arg(long, value_enum, default_value_t = crate::sampler::SamplerName::Auto)]
    pub sampler: crate::sampler::SamplerName,
    /// Classifier run directory [default: RUN_DIR/../classifier-<dataset>, then runs/classifier-<dataset>]
    #[arg(long, value_name = "DIR")]
    pub classifier: Option<PathBuf>,
    /// Threads; 0 = all cores
    #[arg(long, default_value_t = 0, value_parser = crate::cli::threads_arg)]
    pub threads: usize,
    /// Number format of the products: f32, or bf16 with f32 sums where the CPU has
    /// AVX512_BF16 (faster; the figures move by bf16's rounding, and the report records it)
    #[arg(long, value_enum, default_value_t = crate::core::bf16::Precision::F32)]
    pub precision: crate::core::bf16::Precision,
    /// Write the report (JSON) to FILE instead of adding it to RUN_DIR/evals.jsonl and
    /// RUN_DIR/eval.json
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print nothing but errors (the report is still written)
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct ServeArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub moved: super::args::MovedData,
    /// Port to listen on (0 picks a free one)
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on; 0.0.0.0 makes the page (which has no password) reachable by
    /// anyone on the network
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Worker threads; 0 = all cores
    #[arg(long, default_value_t = 0, value_parser = crate::cli::threads_arg)]
    pub threads: usize,
    /// Seconds a client has to send a request's headers (from connecting, or from its
    /// previous response on a kept-alive connection)
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = seconds)]
    pub header_timeout: f64,
    /// Seconds without a byte either way after which a connection is closed
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = seconds)]
    pub idle_timeout: f64,
    /// Connections served at once; more are closed on arrival (lowered to what the
    /// open-file limit allows)
    #[arg(long, value_name = "N", default_value_t = crate::serve::listen::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Where the samples panel draws its codes from: auto (the run's fitted mixture when it
    /// has one for its current weights, else the prior), prior, or gmm
    #[arg(long, value_enum, default_value_t = crate::sampler::SamplerName::Auto)]
    pub sampler: crate::sampler::SamplerName,
    /// Number format of the products: f32, or bf16 with f32 sums where the CPU has
    /// AVX512_BF16 (faster; pictures and figures move by bf16's rounding)
    #[arg(long, value_enum, default_value_t = crate::core::bf16::Precision::F32)]
    pub precision: crate::core::bf16::Precision,
}

/// A timeout flag: a positive number of seconds, at most a day.
fn seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds between 0 and 86400 (e.g. 10 or 0.5)")),
    }
}

impl ServeArgs {
    /// The connection limits the flags ask for.
    /// The server's options from these flags (saying so when `--precision bf16` falls back).
    pub fn options(&self) -> crate::serve::ServeOptions {
        if let Err(why) = self.precision.path() {
            eprintln!("note: --precision {}: {why}; serving in f32", self.precision.name());
        }
        crate::serve::ServeOptions {
            host: self.host.clone(),
            port: self.port,
            threads: self.threads,
            limits: self.limits(),
            sampler: self.sampler,
            precision: self.precision,
        }
    }

    pub fn limits(&self) -> crate::serve::Limits {
        crate::serve::Limits {
            header_timeout: std::time::Duration::from_secs_f64(self.header_timeout),
            idle_timeout: std::time::Duration::from_secs_f64(self.idle_timeout),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ClassifierCommand {
    /// Train the classifier (an MLP, ≥ 98% test accuracy) and save it
    Train(ClassifierTrainArgs),
}

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct ClassifierTrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Epochs, 1 to 100000 [default: 15; for an image folder, enough for about 3,000 steps,
    /// 15 to 1000 epochs]
    #[arg(long, value_name = "N", value_parser = count(1, MAX_EPOCHS))]
    pub epochs: Option<usize>,
    /// Random seed
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Threads; 0 = all cores
    #[arg(long, default_value_t = 0, value_parser = crate::cli::threads_arg)]
    pub threads: usize,
    /// Where to save it [default: runs/classifier-<dataset>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Train on N images only, a sample stratified across classes (seeded by --seed), N ≥ 1
    /// [default: all]
    #[arg(long, value_name = "N", value_parser = count(1, MAX_LIMIT))]
    pub train_limit: Option<usize>,
    /// Replace a classifier already saved in the output directory
    #[arg(long)]
    pub force: bool,
    /// conv: 4x4 stride-2 convolutions of 32, 64, … channels down to a side of 4, then 256
    /// features; mlp: hidden layers of 1024 and 256 on the pixels [default: conv for an image
    /// folder, mlp for MNIST-format data]
    #[arg(long, value_enum)]
    pub arch: Option<crate::model::Arch>,
    /// Print nothing but errors
    #[arg(long, short)]
    pub quiet: bool,
}

/// `vae eval`: every metric of a run, printed as a table and kept in the run's history (or
/// written to `-o FILE`).
///
/// # Errors
/// As [`run_eval`]: a flag is out of range, the run, its data or the classifier cannot be loaded,
/// or the report cannot be written.
pub fn eval(a: EvalArgs) -> Result<()> {
    if let Err(why) = a.precision.path() {
        eprintln!("note: --precision {}: {why}; evaluating in f32", a.precision.name());
    }
    run_eval(&RunDir::new(&a.run_dir), &a.options()).map(|_| ())
}

impl EvalArgs {
    /// The evaluation these flags ask for.
    pub fn options(&self) -> EvalOptions {
        EvalOptions {
            split: self.split,
            elbo_samples: self.elbo_samples,
            k: self.k,
            seed: self.seed,
            limit: self.limit,
            threads: self.threads,
            classifier: self.classifier.clone(),
            generated: self.generated,
            temperature: self.temperature,
            sampler: self.sampler,
            quiet: self.quiet,
            output: self.output.clone(),
            data_dir: self.moved.data_dir.clone(),
            precision: self.precision,
        }
    }
}

/// `vae classifier train`: trains the classifier and says where it was saved.
///
/// # Errors
/// If the data flags do not fit the data, or training fails as [`train_classifier`] describes.
pub fn classifier_train(a: ClassifierTrainArgs) -> Result<()> {
    let opts = ClassifierOptions {
        dataset: a.data.source(a.seed)?,
        epochs: a.epochs,
        seed: a.seed,
        threads: a.threads,
        out: a.out,
        train_limit: a.train_limit,
        quiet: a.quiet,
        force: a.force,
        arch: a.arch,
    };
    let (dir, run) = train_classifier(&opts)?;
    if !a.quiet {
        println!("saved the classifier ({:.2}% test accuracy) in {}", 100.0 * run.test_accuracy, dir.display());
    }
    Ok(())
}
