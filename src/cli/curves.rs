//! `vae plot`: learning curves of one run, or several runs' test curves side by side.

use crate::checkpoint::{EpochMetrics, RunDir};
use crate::plot::{Curve, curves_png, save_png};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct PlotArgs {
    /// Run directory made by `vae train`; give several to compare their test curves
    #[arg(required = true, num_args = 1..)]
    pub run_dirs: Vec<PathBuf>,
    /// Output picture, .png or .jpg [default: RUN_DIR/curves.png for one run; for several,
    /// compare-<A>-vs-<B>.png beside the first run]
    #[arg(short, long, value_name = "FILE.png", value_parser = crate::cli::picture_path)]
    pub output: Option<PathBuf>,
}

/// What the train curve shows: the objective the run minimised.
fn train_label(config: &crate::checkpoint::RunConfig) -> String {
    use crate::train::Objective;
    let weighted = if config.train.kl_warmup > 0 { "β·KL, β warming up" } else { "β·KL" };
    match config.train.objective {
        Objective::Iwae { k } => format!("train (−IWAE bound, k = {k})"),
        Objective::ElboK { k } => format!("train (reconstruction + {weighted}, {k} draws)"),
        Objective::Elbo if !config.model.prior.is_standard() => {
            format!("train (reconstruction + {weighted}, KL at the draw)")
        }
        Objective::Elbo => format!("train (reconstruction + {weighted})"),
        Objective::Tcvae => "train (reconstruction + KL + (β − 1)·TC)".to_string(),
        Objective::Factorvae => format!("train (reconstruction + {weighted} + γ·TC)"),
    }
}

/// Writes the learning curves of a run directory; returns the path.
///
/// # Errors
/// If the run's config or metrics cannot be read, it has no completed epoch yet, or the picture
/// cannot be drawn or written.
pub fn write_curves(dir: &RunDir, output: Option<PathBuf>) -> Result<PathBuf> {
    let config = dir.load_config()?;
    let metrics = dir.load_metrics()?;
    if metrics.is_empty() {
        bail!("{} has no completed epochs in metrics.jsonl yet", dir.path.display());
    }
    let curve = |name: &str, f: &dyn Fn(&EpochMetrics) -> Option<f64>| Curve {
        name: name.to_string(),
        points: metrics.iter().filter_map(|m| Some((m.epoch as f64, f(m)?))).collect(),
    };
    let mut panels = vec![
        (
            "Loss per example".to_string(),
            "nats".to_string(),
            vec![curve(&train_label(&config), &|m| Some(m.train_objective)), curve("test (−ELBO)", &|m| m.test_loss)],
        ),
        (
            "Reconstruction (−log p(x|z))".to_string(),
            "nats".to_string(),
            vec![curve("train", &|m| Some(m.train_reconstruction)), curve("test", &|m| m.test_reconstruction)],
        ),
    ];
    if config.model.kind.variational() {
        panels.push((
            "KL(q(z|x) ‖ p(z))".to_string(),
            "nats".to_string(),
            vec![curve("train", &|m| Some(m.train_kl)), curve("test", &|m| m.test_kl)],
        ));
    }
    let name = dir.path.canonicalize().unwrap_or_else(|_| dir.path.clone());
    let name = name.file_name().map_or_else(|| dir.path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let title =
        format!("{name}: {} learning curves, {}", config.model.kind, crate::text::plural(metrics.len(), "epoch"));
    let png = curves_png(&title, &panels, "epoch")?;
    let path = output.unwrap_or_else(|| dir.file("curves.png"));
    save_png(&path, &png)?;
    Ok(path)
}

/// Writes one panel per test figure (and the training objective), one curve per run, named
/// by its directory; returns the path.
///
/// # Errors
/// If a run's config or metrics cannot be read, a run has no completed epoch yet, or the picture
/// cannot be drawn or written.
pub fn write_comparison(dirs: &[RunDir], output: Option<PathBuf>) -> Result<PathBuf> {
    let mut runs = Vec::with_capacity(dirs.len());
    let mut likelihoods: Vec<&'static str> = Vec::new();
    for dir in dirs {
        let config = dir.load_config()?;
        let name = config.model.likelihood.name();
        if !likelihoods.contains(&name) {
            likelihoods.push(name);
        }
        let metrics = dir.load_metrics()?;
        if metrics.is_empty() {
            bail!("{} has no completed epochs in metrics.jsonl yet", dir.path.display());
        }
        runs.push((run_name(dir, dirs), config.model.kind.variational(), metrics));
    }
    type Figure = fn(&EpochMetrics) -> Option<f64>;
    let panel = |title: &str, f: Figure, only_variational: bool| {
        // Every run keeps its place (so its colour) in every panel; an ae has no KL to draw.
        let curves = runs
            .iter()
            .map(|(name, variational, metrics)| match *variational || !only_variational {
                true => Curve {
                    name: name.clone(),
                    points: metrics.iter().filter_map(|m| Some((m.epoch as f64, f(m)?))).collect(),
                },
                false => Curve { name: format!("{name} (no KL)"), points: Vec::new() },
            })
            .collect();
        (title.to_string(), "nats".to_string(), curves)
    };
    let mut panels = vec![
        panel(
            if runs.iter().all(|r| r.1) {
                "Test loss per example (−ELBO)"
            } else {
                "Test loss (−ELBO; an ae's: its BCE)"
            },
            |m| m.test_loss,
            false,
        ),
        panel("Test reconstruction (−log p(x|z))", |m| m.test_reconstruction, false),
    ];
    if runs.iter().any(|r| r.1) {
        panels.push(panel("Test KL(q(z|x) ‖ p(z))", |m| m.test_kl, true));
    }
    panels.push(panel("Train objective (reconstruction + β·KL)", |m| Some(m.train_objective), false));
    let names: Vec<String> = runs.iter().map(|r| r.0.clone()).collect();
    let mut title = format!("{} runs compared: {}", runs.len(), names.join(", "));
    if likelihoods.len() > 1 {
        // A Bernoulli's BCE and a Gaussian's negative log-density are different quantities
        // (one is a probability, the other a density with its own scale).
        let note = format!(
            "their likelihoods differ ({}), so their losses are not comparable; only their shapes are",
            likelihoods.join(", ")
        );
        eprintln!("note: {note}");
        title = format!("{title} — {note}");
    }
    let png = curves_png(&title, &panels, "epoch")?;
    let path = output.unwrap_or_else(|| default_comparison(dirs));
    save_png(&path, &png)?;
    Ok(path)
}

/// Where a comparison goes by default: beside the runs (in the first run's parent folder),
/// named after them, so comparisons of other runs do not overwrite it.
fn default_comparison(dirs: &[RunDir]) -> PathBuf {
    let name = |d: &RunDir| {
        let path = d.path.canonicalize().unwrap_or_else(|_| d.path.clone());
        path.file_name().map_or_else(|| "run".to_string(), |n| n.to_string_lossy().into_owned())
    };
    let file = match dirs {
        [a, b] => format!("compare-{}-vs-{}.png", name(a), name(b)),
        [a, b, c] => format!("compare-{}-vs-{}-vs-{}.png", name(a), name(b), name(c)),
        [a, rest @ ..] => format!("compare-{}-and-{}-more.png", name(a), rest.len()),
        [] => "compare.png".to_string(),
    };
    let parent = dirs.first().and_then(|d| d.path.parent()).filter(|p| !p.as_os_str().is_empty());
    parent.map_or_else(|| PathBuf::from(&file), |p| p.join(&file))
}

/// A run's legend entry: its directory's name, or the whole path where two names clash.
fn run_name(dir: &RunDir, all: &[RunDir]) -> String {
    let name = |d: &RunDir| d.path.file_name().map(|n| n.to_string_lossy().into_owned());
    match name(dir) {
        Some(n) if all.iter().filter(|d| name(d).as_deref() == Some(n.as_str())).count() == 1 => n,
        _ => dir.path.display().to_string(),
    }
}

/// `vae plot`: the learning curves of one run, or several runs' side by side; prints the path
/// written.
///
/// # Errors
/// As [`write_curves`] and [`write_comparison`]: a run cannot be read or has no completed epoch, or
/// the picture cannot be drawn or written.
pub fn plot(a: PlotArgs) -> Result<()> {
    let dirs: Vec<RunDir> = a.run_dirs.iter().map(RunDir::new).collect();
    let path = match dirs.as_slice() {
        [one] => write_curves(one, a.output)?,
        many => write_comparison(many, a.output)?,
    };
    println!("wrote {}", path.display());
    Ok(())
}
