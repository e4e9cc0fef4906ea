//! `vae fit-sampler`: fits a Gaussian mixture to a run's training codes (ex-post density
//! estimation, Ghosh et al. 2020), for `--sampler gmm` in `sample`, `eval` and `serve`.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc.

use super::explore::Loaded;
use crate::core::{Purpose, Rng};
use crate::data::Binarize;
use crate::data::binarize::binarize_split;
use crate::eval::report::{SplitName, eval_split};
use crate::sampler;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct FitSamplerArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub moved: super::args::MovedData,
    /// Components of the Gaussian mixture (full covariances), 1 to 100; a cvae gets one
    /// mixture per label
    #[arg(long, value_name = "K", default_value_t = sampler::DEFAULT_COMPONENTS, value_parser = super::args::count(1, 100))]
    pub gmm: usize,
    /// Seed of the k-means++ starting points
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print nothing but errors
    #[arg(long, short)]
    pub quiet: bool,
}

/// `vae fit-sampler`: encodes the training set (μ of q(z|x)), fits the mixture(s) by EM and
/// writes them to the run's `sampler-gmm.json`.
///
/// # Errors
/// If the run or its data cannot be loaded, the model is an ae, a label has fewer than two
/// images, or the file cannot be written. A label with fewer than 2·latent codes per component
/// gets fewer components, with a warning.
pub fn fit_sampler(a: FitSamplerArgs) -> Result<()> {
    let l = Loaded::open(&a.run_dir, &a.moved)?;
    let c = l.model.config();
    if !c.kind.variational() {
        bail!(
            "{} holds an ae: it is never sampled, so it needs no sampler; train --model vae or cvae",
            a.run_dir.display()
        );
    }
    crate::io::check_writable(&l.dir.file(sampler::GMM_FILE))
        .with_context(|| format!("cannot write in {}", a.run_dir.display()))?;
    // The images the model trained on (its --train-limit, if any).
    let mut split = eval_split(&l.config, &l.data()?, SplitName::Train, l.config.train.train_limit)?;
    if l.config.train.binarize == Binarize::Dynamic {
        // The encoder saw binary images: encode one fixed draw of them.
        binarize_split(&mut split, &mut Rng::stream(l.config.train.seed, Purpose::Binarize, 2));
    }
    let epoch = l.dir.model_epoch()?.unwrap_or(0);
    let groups = if c.kind.conditional() { c.classes } else { 1 };
    let bar = crate::progress::bar(!a.quiet, groups, "fitting", "mixtures");
    let fitted = sampler::fit(
        &l.model,
        &l.pool,
        &split,
        sampler::FitSettings::thorough(a.gmm, a.seed),
        epoch,
        &mut |done, _| bar.set_position(done as u64),
    )
    .map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    let path = sampler::save(&l.dir, &fitted).with_context(|| format!("cannot write in {}", a.run_dir.display()))?;
    if a.quiet {
        return Ok(());
    }
    let names = l.config.class_names();
    let capped = sampler::capped(&fitted, &names);
    if !capped.is_empty() {
        eprintln!(
            "warning: too few codes for {} components (one per {} codes) in: {}",
            a.gmm,
            2 * c.latent_dim,
            capped.join(", ")
        );
    }
    println!(
        "{}{}-component Gaussian mixture{} fitted to μ of q(z|x) of {} training images (epoch {epoch}):",
        if capped.is_empty() { "" } else { "up-to-" },
        a.gmm,
        if groups > 1 { "s, one per label," } else { "" },
        crate::text::group(split.len())
    );
    println!("{:>10}  {:>7}  {:>10}  {:>14}  {:>14}", "label", "codes", "iterations", "log q(z) GMM", "log N(z; 0, I)");
    for m in &fitted.mixtures {
        let label = m.label.map_or("all".to_string(), |y| names.get(y as usize).cloned().unwrap_or(y.to_string()));
        let iters = format!("{}{}", m.iterations, if m.converged { "" } else { " (max)" });
        println!("{label:>10}  {:>7}  {iters:>10}  {:>14.2}  {:>14.2}", m.codes, m.log_density, m.prior_log_density);
    }
    println!("(mean log-density of the codes, nats per code: higher means the density fits them better)");
    println!("wrote {}; use it with `vae sample {} --sampler gmm`", path.display(), a.run_dir.display());
    Ok(())
}
