//! `vae encode`: a split's latent codes, for use in other tools (NumPy, pandas, R, …).
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc.

use super::explore::Loaded;
use crate::eval::report::{SplitName, eval_split_indexed};
use crate::export::{csv, npy, npy_i64, npy_strings, npy_u8, npz};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct EncodeArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub moved: super::args::MovedData,
    /// Split to encode
    #[arg(long, value_enum, default_value_t = SplitName::Test)]
    pub split: SplitName,
    /// Encode only N images, a sample stratified across classes (seeded by the run's seed),
    /// N ≥ 1 [default: all]
    #[arg(long, value_name = "N", value_parser = super::args::count(1, super::args::MAX_LIMIT))]
    pub limit: Option<usize>,
    /// Encode your own pictures instead of a split: files, or folders of them (any size,
    /// converted as the run's training images were); each row names its file
    #[arg(long, value_name = "FILE|DIR", num_args = 1.., conflicts_with_all = ["split", "limit"])]
    pub input: Vec<PathBuf>,
    /// cvae: the class of every --input picture (number or name) [default: from each
    /// picture's folder or file name, as `vae reconstruct` reads it]
    #[arg(long, value_name = "C", requires = "input")]
    pub label: Option<String>,
    /// Output: .csv (index, path for --input, label, then μ and log σ² of each dimension), .npy (μ only,
    /// float32 [images, latent], in the split's order) or .npz (`mu`, `logvar`, `labels`,
    /// `paths` for --input pictures, else `index` in the split: `numpy.load(FILE)["mu"]`) [default: RUN_DIR/latents-<split>.csv, or
    /// RUN_DIR/latents-inputs.csv]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// What is encoded: images `[n, pixels]`, their labels, and for each its index in the split
/// or its file.
struct Inputs {
    images: Vec<f32>,
    labels: Vec<u8>,
    index: Vec<usize>,
    paths: Option<Vec<String>>,
}

fn inputs(a: &EncodeArgs, l: &Loaded) -> Result<Inputs> {
    if a.input.is_empty() {
        let (split, index) = eval_split_indexed(&l.config, &l.data()?, a.split, a.limit)?;
        return Ok(Inputs { images: split.images_f32(split.len()), labels: split.labels, index, paths: None });
    }
    let c = l.model.config();
    let label = l.label(a.label.as_deref())?;
    let names = l.config.class_names();
    let files = super::reconstruct::input_pictures(&a.input)?;
    let mut images = Vec::with_capacity(files.len() * c.pixels());
    let mut labels = Vec::with_capacity(files.len());
    for f in &files {
        images.extend(crate::images::load_picture(f, c.shape(), l.config.picture_preparation())?);
        let class = match (l.conditional(), label.or_else(|| super::reconstruct::label_from_path(f, &names))) {
            (false, _) => 0,
            (true, Some(class)) => class,
            (true, None) => bail!(
                "cannot tell the class of {} for this cvae: pass --label C, or name the file or its folder after its class",
                f.display()
            ),
        };
        labels.push(class);
    }
    let paths = files.iter().map(|f| f.display().to_string()).collect();
    Ok(Inputs { images, labels, index: (0..files.len()).collect(), paths: Some(paths) })
}

/// `vae encode`: writes the encoder's means (and log-variances) of a split or of pictures.
///
/// # Errors
/// If the run, its data or a picture cannot be loaded, the output is not .csv, .npy or .npz,
/// or it cannot be written.
pub fn encode(a: EncodeArgs) -> Result<()> {
    let out = a.output.clone().unwrap_or_else(|| {
        let what = match (a.input.is_empty(), a.split) {
            (false, _) => "inputs",
            (true, SplitName::Test) => "test",
            (true, SplitName::Train) => "train",
        };
        a.run_dir.join(format!("latents-{what}.csv"))
    });
    let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some(f @ ("npy" | "csv" | "npz")) => f.to_string(),
        _ => bail!("-o {}: latents are written as .csv, .npy or .npz; end the name in one of those", out.display()),
    };
    crate::io::check_writable(&out).with_context(|| format!("cannot write {}", out.display()))?;
    let l = Loaded::open(&a.run_dir, &a.moved)?;
    let Inputs { images, labels: y, index, paths } = inputs(&a, &l)?;
    let c = l.model.config();
    let labels = c.kind.conditional().then_some(&y[..]);
    let enc = l.model.encode(&l.pool, &images, labels)?;
    let (n, d) = (y.len(), c.latent_dim);
    let variational = c.kind.variational();
    let bytes = match format.as_str() {
        "npy" => npy(&[n, d], &enc.mu),
        "npz" => {
            let mut arrays = vec![("mu", npy(&[n, d], &enc.mu))];
            if variational {
                arrays.push(("logvar", npy(&[n, d], &enc.logvar)));
            }
            arrays.push(("labels", npy_u8(&y)));
            match &paths {
                Some(p) => arrays.push(("paths", npy_strings(p))),
                None => arrays.push(("index", npy_i64(&index.iter().map(|&i| i as i64).collect::<Vec<_>>()))),
            }
            npz(&arrays)?
        }
        _ => {
            let mut columns = vec!["index".to_string()];
            if paths.is_some() {
                columns.push("path".into());
            }
            columns.push("label".into());
            columns.extend((0..d).map(|j| format!("mu_{j}")));
            if variational {
                columns.extend((0..d).map(|j| format!("logvar_{j}")));
            }
            let names = l.config.class_names();
            let rows = (0..n).map(|i| {
                let label = names.get(y[i] as usize).cloned().unwrap_or_default();
                let mut row = vec![index[i].to_string()];
                if let Some(p) = &paths {
                    row.push(csv_field(&p[i]));
                }
                row.push(label);
                row.extend(enc.mu[i * d..(i + 1) * d].iter().map(f32::to_string));
                if variational {
                    row.extend(enc.logvar[i * d..(i + 1) * d].iter().map(f32::to_string));
                }
                row
            });
            csv(&columns, rows).into_bytes()
        }
    };
    crate::io::write_atomic(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} ({} × {d}-d codes)", out.display(), crate::text::plural(n, "image"));
    Ok(())
}

/// A CSV field, quoted (RFC 4180) when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}
