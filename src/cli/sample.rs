//! `vae sample`: a grid (or a `.npy`) of images drawn from a trained run.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc.

use super::{plural, resolve_label, sample_path, temperature_arg};
use crate::checkpoint::RunDir;
use crate::core::{Pool, Rng};
use crate::images;
use crate::run::GRID_PADDING;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;

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

/// `vae sample`.
///
/// # Errors
/// The run cannot be loaded, `--label` does not fit it, it is an `ae`, or the output cannot be
/// written.
pub fn sample(a: SampleArgs) -> Result<()> {
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
        sampler.describe(&config.model.prior)
    );
    Ok(())
}
