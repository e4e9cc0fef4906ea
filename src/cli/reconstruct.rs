//! `vae reconstruct`: test images, or a user's pictures, beside their reconstructions.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc.

use super::explore::{Loaded, save};
use super::find_label;
use crate::plot::{Captions, annotate};
use crate::run::{GRID_PADDING, pair_captions};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct ReconstructArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub moved: super::args::MovedData,
    /// How many: N test images (a seeded sample across the classes), or at most N --input
    /// pictures (1 to 10000)
    #[arg(short = 'n', long = "count", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
    /// Reconstruct these pictures instead (repeatable): PNG/JPEG/BMP/GIF/WebP files, or folders
    /// of them; any size, converted to the run's image shape
    #[arg(long, value_name = "FILE|DIR", num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// cvae: the class of every --input picture, by number or name [default: each picture's
    /// own, from its folder's name or the start of its file name, e.g. 7-mine.png or cat/x.jpg]
    #[arg(long)]
    pub label: Option<String>,
    /// Output picture, .png or .jpg [default: RUN_DIR/reconstructions-test.png, or
    /// RUN_DIR/reconstructions-<input name>.png]
    #[arg(short, long, value_name = "FILE.png", value_parser = crate::cli::picture_path)]
    pub output: Option<PathBuf>,
}

/// The picture files `--input` names: files as given, folders' pictures sorted, in order.
pub(crate) fn input_pictures(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut all = Vec::new();
    for input in inputs {
        if input.is_file() {
            all.push(input.clone());
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(input)
            .with_context(|| format!("cannot read --input {}", input.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                crate::data::folder::EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(ext))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("--input {} holds no pictures (PNG, JPEG, BMP, GIF or WebP files)", input.display());
        }
        all.extend(files);
    }
    Ok(all)
}

/// A picture's class from its path: its folder's name (`cat/x.jpg`, as image folders are
/// labelled), else the start of its file name up to `-`, `_`, `.` or a space (`7-mine.png`).
pub fn label_from_path(path: &Path, names: &[String]) -> Option<u8> {
    let folder = path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let head = stem.split(['-', '_', '.', ' ']).next().unwrap_or_default().to_string();
    folder.and_then(|f| find_label(names, &f)).or_else(|| find_label(names, &head))
}

/// The default output name for `--input`: after the one input's name, else "inputs".
fn default_name(inputs: &[PathBuf]) -> String {
    let stem = match inputs {
        [one] => one.file_stem().map(|s| s.to_string_lossy().into_owned()),
        _ => None,
    };
    format!("reconstructions-{}.png", stem.unwrap_or_else(|| "inputs".into()))
}

/// `vae reconstruct`: test images, or `--input` pictures, beside their reconstructions.
///
/// # Errors
/// If the run cannot be loaded, `--label` does not fit it, the test set or an `--input` picture
/// cannot be read, a cvae's picture has no class (neither `--label` nor its name tells), or
/// the grid cannot be written.
pub fn reconstruct(a: ReconstructArgs) -> Result<()> {
    let l = Loaded::open(&a.run_dir, &a.moved)?;
    let label = l.label(a.label.as_deref())?;
    let c = l.model.config().clone();
    let n = a.count as usize;
    let names = l.config.class_names();
    let p = c.pixels();
    if a.input.is_empty() {
        let test = l.test("give pictures of your own with --input FILE|DIR")?;
        // A seeded sample across the classes, each row showing them in turn.
        let shown = crate::data::subset::preview_indices(&test, n, l.config.train.seed);
        let test = crate::data::subset::select(&test, &shown);
        let n = test.len();
        let (images, labels) = (test.images_f32(n), test.labels.clone());
        let recon = l.reconstruct(&images, &labels)?;
        let pairs = crate::images::pairs(&images, &recon, p);
        let columns = 16.min(2 * n);
        let captions = pair_captions(format!("{n} test images (in) and their reconstructions (out)"), columns);
        let grid = annotate(&l.grid(&pairs, columns), (c.image_rows, c.image_cols), GRID_PADDING, &captions)?;
        return save(&grid, &l.out(a.output, "reconstructions-test.png"));
    }
    let files = input_pictures(&a.input)?;
    let files = &files[..n.min(files.len())];
    let mut images = Vec::with_capacity(files.len() * p);
    let mut labels = Vec::with_capacity(files.len());
    let mut rows = Vec::with_capacity(files.len());
    for f in files {
        images.extend(crate::images::load_picture(f, c.shape(), l.config.picture_preparation())?);
        let name = f.file_name().map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into_owned());
        if !l.conditional() {
            labels.push(0);
            rows.push(name);
            continue;
        }
        let Some(class) = label.or_else(|| label_from_path(f, &names)) else {
            bail!(
                "cannot tell the class of {} for this cvae: pass --label C, name the file after its class \
                 (e.g. {}-{name}), or put it in a folder named after its class",
                f.display(),
                names.first().map_or("0", String::as_str)
            );
        };
        labels.push(class);
        rows.push(format!("{name} ({})", names[class as usize]));
    }
    let recon = l.reconstruct(&images, &labels)?;
    let pairs = crate::images::pairs(&images, &recon, p);
    let how = match l.config.picture_preparation() {
        crate::images::Preparation::Digits => "prepared as MNIST digits",
        crate::images::Preparation::Photo { background: crate::data::Background::Black } => {
            "on black, resized and centre-cropped"
        }
        crate::images::Preparation::Photo { .. } => "resized and centre-cropped",
    };
    let captions = Captions {
        title: Some(format!("your pictures ({how}) and their reconstructions")),
        rows,
        columns: vec!["input".into(), "output".into()],
        footer: None,
    };
    let grid = annotate(&l.grid(&pairs, 2), (c.image_rows, c.image_cols), GRID_PADDING, &captions)?;
    save(&grid, &l.out(a.output, &default_name(&a.input)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_is_labelled_by_its_folder_or_the_start_of_its_name() {
        let digits: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        assert_eq!(label_from_path(Path::new("mine/7-fat.png"), &digits), Some(7));
        assert_eq!(label_from_path(Path::new("3/scan.png"), &digits), Some(3));
        assert_eq!(label_from_path(Path::new("scan.png"), &digits), None);
        assert_eq!(label_from_path(Path::new("12.png"), &digits), None, "no class 12");
        let pets = vec!["cat".to_string(), "dog".to_string()];
        assert_eq!(label_from_path(Path::new("photos/Dog_01.jpg"), &pets), Some(1));
        assert_eq!(label_from_path(Path::new("cat/x.jpg"), &pets), Some(0));
        assert_eq!(label_from_path(Path::new("1 dog.png"), &pets), Some(1));
        assert_eq!(default_name(&[PathBuf::from("a/cat.png")]), "reconstructions-cat.png");
        assert_eq!(default_name(&[PathBuf::from("photos")]), "reconstructions-photos.png");
        assert_eq!(default_name(&[PathBuf::from("a.png"), PathBuf::from("b.png")]), "reconstructions-inputs.png");
    }
}
