//! `vae runs`: the runs in a folder, newest first, with what each is and how far it got.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc.

use crate::checkpoint::RunDir;
use crate::checkpoint::dirkind::DirKind;
use anyhow::{Context, Result};
use clap::Args;
use clap::ValueEnum as _;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct RunsArgs {
    /// Folder holding run directories
    #[arg(default_value = "runs")]
    pub dir: PathBuf,
}

/// One line of the listing.
struct Row {
    modified: std::time::SystemTime,
    cells: [String; 6],
}

/// The time a run last changed: its newest metrics, weights or config.
fn modified(dir: &Path) -> std::time::SystemTime {
    ["metrics.jsonl", "model.safetensors", "config.json"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).and_then(|m| m.modified()).ok())
        .max()
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// The listing's row for a VAE run, or a line saying why it cannot be read.
fn row(path: &Path) -> Row {
    let dir = RunDir::new(path);
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let cells = match dir.load_config() {
        Ok(config) => {
            let m = &config.model;
            let layers = m.layers_summary();
            let metrics = dir.load_metrics().unwrap_or_default();
            let test = metrics.last().and_then(|r| r.test_loss).map_or("-".to_string(), |l| format!("{l:.2}"));
            let evals = crate::eval::history::load(path);
            let nll = crate::eval::history::fullest(&evals).map_or("-".to_string(), |e| {
                let (nll, k, images) = (e["iwae"]["nll"].as_f64(), e["iwae"]["k"].as_u64(), e["images"].as_u64());
                match (nll, k, images) {
                    (Some(nll), Some(k), Some(n)) => {
                        format!("{nll:.2} (k={k}, {} images)", crate::text::group(n as usize))
                    }
                    _ => "-".to_string(),
                }
            });
            let nll = match crate::eval::history::latest(&evals, "disentanglement") {
                Some(d) => format!("{nll}; MIG {:.3}", d["mig"]["mean"].as_f64().unwrap_or(f64::NAN)),
                None => nll,
            };
            [
                name,
                {
                    let objective = config.train.objective;
                    let trained = if objective.is_elbo() { String::new() } else { format!(", {}", objective.label()) };
                    let prior = match m.prior {
                        crate::model::config::Prior::Standard => String::new(),
                        crate::model::config::Prior::Vamp { pseudo_inputs: k } => format!(", vamp {k}"),
                        crate::model::config::Prior::Mog { components: k } => format!(", mog {k}"),
                    };
                    let t = &config.train;
                    let beta = if t.beta == 1.0 { String::new() } else { format!(", β {}", t.beta) };
                    let gamma = t.gamma.map_or(String::new(), |g| format!(", γ {g}"));
                    let warmup = if t.kl_warmup == 0 { String::new() } else { format!(", warm-up {}", t.kl_warmup) };
                    let bf16 = if t.precision.is_f32() { "" } else { ", bf16" };
                    format!("{} {layers}, z{}{trained}{prior}{beta}{gamma}{warmup}{bf16}", m.kind, m.latent_dim)
                },
                match config.train.binarize.to_possible_value().filter(|_| !config.train.binarize.is_none()) {
                    // The flag's own value name (`--binarize dynamic`).
                    Some(b) => format!("{}, {} binarized", config.train.dataset, b.get_name()),
                    None => config.train.dataset.to_string(),
                },
                format!("{}/{}", metrics.last().map_or(0, |r| r.epoch), config.train.epochs),
                test,
                nll,
            ]
        }
        Err(e) => [name, format!("unreadable: {e}"), String::new(), String::new(), String::new(), String::new()],
    };
    Row { modified: modified(path), cells }
}

/// `vae runs`: lists the VAE runs in a folder, newest first.
///
/// # Errors
/// If the folder cannot be read.
pub fn runs(a: RunsArgs) -> Result<()> {
    let entries = std::fs::read_dir(&a.dir)
        .with_context(|| format!("cannot list {} (pass the folder holding your runs)", a.dir.display()))?;
    let mut rows: Vec<Row> = Vec::new();
    let mut classifiers = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        match DirKind::of(&path) {
            Ok(Some(DirKind::VaeRun)) => rows.push(row(&path)),
            Ok(Some(DirKind::Classifier)) => classifiers.push(path.display().to_string()),
            // Another program's folder: not ours to list.
            Ok(None) | Err(crate::checkpoint::CheckpointError::Foreign(_)) => {}
            // Ours but damaged: listed, saying why.
            Err(_) => rows.push(row(&path)),
        }
    }
    if rows.is_empty() {
        println!("no runs in {}; `vae train` makes one", a.dir.display());
        return Ok(());
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.modified));
    let header = ["run", "model", "data", "epochs", "test loss", "best NLL (IWAE); MIG"].map(String::from);
    let all: Vec<&[String; 6]> = std::iter::once(&header).chain(rows.iter().map(|r| &r.cells)).collect();
    let widths: Vec<usize> = (0..6).map(|c| all.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in all {
        let line: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
    if !classifiers.is_empty() {
        println!("classifiers: {}", classifiers.join(", "));
    }
    Ok(())
}
