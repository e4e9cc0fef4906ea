//! `vae encode`: a split's latent codes, for use in other tools (NumPy, pandas, R, …).
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc.

use super::explore::Loaded;
use crate::eval::report::{SplitName, eval_split_indexed};
use crate::export::{csv, npy};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct EncodeArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    /// Split to encode
    #[arg(long, value_enum, default_value_t = SplitName::Test)]
    pub split: SplitName,
    /// Encode only N images, a sample stratified across classes (seeded by the run's seed),
    /// N ≥ 1 [default: all]
    #[arg(long, value_name = "N", value_parser = super::args::count(1, super::args::MAX_LIMIT))]
    pub limit: Option<usize>,
    /// Output: .csv (index, label, then μ and log σ² of each dimension) or .npy (μ only,
    /// float32 [images, latent], in the split's order) [default: RUN_DIR/latents-<split>.csv]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `vae encode`: writes the encoder's means (and log-variances) of a split.
///
/// # Errors
/// If the run or its data cannot be loaded, the output is neither .csv nor .npy, or it cannot be
/// written.
pub fn encode(a: EncodeArgs) -> Result<()> {
    let out = a.output.clone().unwrap_or_else(|| {
        let split = if a.split == SplitName::Test { "test" } else { "train" };
        a.run_dir.join(format!("latents-{split}.csv"))
    });
    let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let as_npy = match ext.as_deref() {
        Some("npy") => true,
        Some("csv") => false,
        _ => bail!("-o {}: latents are written as .csv or .npy; end the name in one of those", out.display()),
    };
    crate::io::check_writable(&out).with_context(|| format!("cannot write {}", out.display()))?;
    let l = Loaded::open(&a.run_dir)?;
    let (split, index) = eval_split_indexed(&l.config, a.split, a.limit)?;
    let c = l.model.config();
    let labels = c.kind.conditional().then_some(&split.labels[..]);
    let enc = l.model.encode(&l.pool, &split.images_f32(split.len()), labels)?;
    let (n, d) = (split.len(), c.latent_dim);
    let bytes = if as_npy {
        npy(&[n, d], &enc.mu)
    } else {
        let mut columns = vec!["index".to_string(), "label".to_string()];
        columns.extend((0..d).map(|j| format!("mu_{j}")));
        let variational = c.kind.variational();
        if variational {
            columns.extend((0..d).map(|j| format!("logvar_{j}")));
        }
        let names = l.config.class_names();
        let rows = (0..n).map(|i| {
            let label = names.get(split.labels[i] as usize).cloned().unwrap_or_default();
            let mut row = vec![index[i].to_string(), label];
            row.extend(enc.mu[i * d..(i + 1) * d].iter().map(f32::to_string));
            if variational {
                row.extend(enc.logvar[i * d..(i + 1) * d].iter().map(f32::to_string));
            }
            row
        });
        csv(&columns, rows).into_bytes()
    };
    crate::io::write_atomic(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} ({} × {d}-d codes)", out.display(), crate::text::plural(n, "image"));
    Ok(())
}
