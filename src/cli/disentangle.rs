//! `vae disentanglement RUN`: the disentanglement scores of a run trained on data with known
//! factors ([`crate::eval::disentanglement`]), printed and kept in its `evals.jsonl`.

use super::args::count;
use crate::checkpoint::RunDir;
use crate::data::Source;
use crate::eval::disentanglement::{Settings, evaluate};
use crate::eval::factor_scores::Counts;
use crate::eval::truth::GroundTruth;
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct DisentanglementArgs {
    /// The run directory (trained on --dataset dsprites, or on a folder with --factors)
    pub run_dir: PathBuf,
    /// Repeats on fresh draws; the standard errors come from their spread
    #[arg(long, default_value_t = 3, value_parser = count(1, 100))]
    pub repeats: usize,
    /// Points the β-VAE and FactorVAE classifiers are fitted on (half as many score them), and
    /// images MIG and the FactorVAE variances are estimated from (the default is
    /// disentanglement_lib's)
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = count(10, 1_000_000))]
    pub points: usize,
    /// Images DCI's trees are fitted on (half as many score them), one per point, apart from
    /// --points: the trees need many to not overfit, and single images encode quickly (the
    /// default is disentanglement_lib's)
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = count(10, 1_000_000))]
    pub dci_points: usize,
    /// Images per point of the classifier scores
    #[arg(long, default_value_t = 64, value_parser = count(2, 4096))]
    pub batch: usize,
    /// Seeds the draws
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Threads; 0 = all cores
    #[arg(long, default_value_t = 0, value_parser = crate::cli::threads_arg)]
    pub threads: usize,
    /// Print nothing but errors
    #[arg(long, short)]
    pub quiet: bool,
}

/// The ground truth of the data a run trained on.
///
/// # Errors
/// When that data has no known factors.
pub fn truth_of(dir: &std::path::Path, source: &Source) -> Result<Box<dyn GroundTruth>> {
    match crate::eval::truth::known_factors(dir, source)? {
        Some(truth) => Ok(truth),
        None => bail!(
            "{} trained on {source}, whose images have no known factors; the disentanglement scores need a run \
             trained with --dataset dsprites, or on a folder with --factors FILE.csv",
            dir.display()
        ),
    }
}

/// `vae disentanglement`.
///
/// # Errors
/// If the run cannot be read, its data has no known factors, or its history cannot be written.
pub fn disentanglement(a: DisentanglementArgs) -> Result<()> {
    let dir = RunDir::new(&a.run_dir);
    let (config, model) = dir.load_model()?;
    let truth = truth_of(&a.run_dir, &config.train.dataset)?;
    crate::io::check_writable(&dir.file(crate::eval::history::HISTORY_FILE))?;
    let pool = crate::core::Pool::new(a.threads);
    let counts = Counts { batch: a.batch, train: a.points, eval: a.points / 2, variance: a.points };
    let settings =
        Settings { counts, mig_images: a.points, dci_points: a.dci_points, repeats: a.repeats, seed: a.seed };
    let start = std::time::Instant::now();
    let mut bar: Option<(String, indicatif::ProgressBar)> = None;
    let mut progress = |what: &str, done: usize, total: usize| {
        if bar.as_ref().is_none_or(|(w, _)| w != what) {
            bar = Some((what.to_string(), crate::progress::bar(!a.quiet, total, what, "points")));
        }
        if let Some((_, b)) = &bar {
            b.set_position(done as u64);
        }
    };
    let report = evaluate(&model, &pool, truth.as_ref(), settings, &mut progress)?;
    if let Some((_, b)) = bar {
        b.finish_and_clear();
    }
    let mut record = report.to_json();
    record["seconds"] = start.elapsed().as_secs_f64().into();
    record["epoch"] = dir.load_metrics().ok().and_then(|m| m.last().map(|m| m.epoch)).into();
    crate::eval::history::append(&a.run_dir, &record)?;
    if !a.quiet {
        let pm = |e: crate::eval::Estimate| format!("{:.3} ± {:.3}", e.mean, e.se);
        let gaps: Vec<String> =
            report.factors.iter().zip(&report.mig_gaps).map(|(f, g)| format!("{f} {g:.2}")).collect();
        println!(
            "{} on {}: {} of {} points ({} images each), mean ± standard error, in {:.0} s",
            a.run_dir.display(),
            config.train.dataset,
            crate::text::plural(a.repeats, "repeat"),
            crate::text::group(a.points),
            a.batch,
            start.elapsed().as_secs_f64()
        );
        println!("MIG               {}  (per factor: {})", pm(report.mig), gaps.join(", "));
        println!("β-VAE score       {}  (on the fitting points {})", pm(report.beta_vae), pm(report.beta_vae_train));
        println!(
            "FactorVAE score   {}  (on the fitting points {})",
            pm(report.factor_vae),
            pm(report.factor_vae_train)
        );
        println!(
            "DCI               disentanglement {}, completeness {}, informativeness {} (on the fitting points {})",
            pm(report.dci_disentanglement),
            pm(report.dci_completeness),
            pm(report.dci_informativeness),
            pm(report.dci_informativeness_train)
        );
        println!("kept in {}", dir.file(crate::eval::history::HISTORY_FILE).display());
    }
    Ok(())
}
