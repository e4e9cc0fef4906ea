//! The picture commands: interpolate, traverse, manifold, scatter (reconstruct and plot have
//! their own files), and what they share: a loaded run, saving a grid.

use super::args::MovedData;
use super::resolve_label;
use crate::checkpoint::{RunConfig, RunDir};
use crate::core::{Pool, Purpose, Rng};
use crate::data::Split;
use crate::eval::report::{SplitName, eval_split};
use crate::explore::{
    lerp_path, plane_grid, principal_plane, prior_plane, prior_plane_of, project, slerp_path, traversal,
};
use crate::images::{self, Image, load_picture};
use crate::model::{Model, one_hot};
use crate::plot::{Captions, annotate, save_png, scatter_png};
use crate::run::GRID_PADDING;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct InterpolateArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub moved: MovedData,
    /// Start: a test-set index or a picture file (with --labels: optional, else a random z)
    #[arg(long)]
    pub from: Option<String>,
    /// End: a test-set index or a picture file
    #[arg(long)]
    pub to: Option<String>,
    /// Images per path, endpoints included, 2 to 100 (odd: the midpoint is one of them; the
    /// default 11 steps t = 0, 0.1, …, 1)
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub steps: u32,
    /// Add a spherical (slerp) path below the linear one
    #[arg(long)]
    pub slerp: bool,
    /// cvae: keep z and sweep the labels (style kept, class changed)
    #[arg(long)]
    pub labels: bool,
    /// Class of picture inputs, by number or name (cvae only)
    #[arg(long)]
    pub label: Option<String>,
    /// Seed of the random z of --labels without --from
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output picture, .png or .jpg [default: RUN_DIR/interpolate-<from>-<to>.png, or
    /// RUN_DIR/interpolate-labels-<from or seed>.png]
    #[arg(short, long, value_name = "FILE.png", value_parser = crate::cli::picture_path)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(next_line_help = true)]
#[command(allow_negative_numbers = true)]
pub struct TraverseArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub moved: MovedData,
    /// Dimensions to sweep: a range `0..10` or a list `0,3,7` [default: 0..min(10, latent)]
    #[arg(long)]
    pub dims: Option<String>,
    /// Sweep each dimension over [-RANGE, RANGE], RANGE > 0
    #[arg(long, default_value_t = 3.0, value_parser = super::args::positive)]
    pub range: f32,
    /// Images per row, 2 to 100
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub steps: u32,
    /// Hold the other dimensions at this test image's encoding [default: z = 0]
    #[arg(long, value_name = "INDEX")]
    pub image: Option<String>,
    /// Class for cvae, by number or name [default: the image's, or 0]
    #[arg(long)]
    pub label: Option<String>,
    /// Output picture, .png or .jpg, or .gif for an animation [default: RUN_DIR/traverse.png,
    /// RUN_DIR/traverse-<image>.png, or traverse.gif with --gif]
    #[arg(short, long, value_name = "FILE.png", value_parser = traverse_path)]
    pub output: Option<PathBuf>,
    /// Write an animated GIF instead: each frame sets every swept dimension to the same value,
    /// one image per dimension (rows labelled as in the picture), sweeping forth and back
    #[arg(long)]
    pub gif: bool,
}

/// `vae traverse -o`: a picture's path, or a `.gif` for the animation.
fn traverse_path(s: &str) -> std::result::Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("gif")) {
        return Ok(path);
    }
    crate::cli::picture_path(s).map_err(|e| format!("{e}, or .gif for an animation"))
}

/// Milliseconds each frame of a `--gif` traversal shows.
const GIF_FRAME_MS: u32 = 120;

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct ManifoldArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub moved: MovedData,
    /// Grid size N (N x N images), 2 to 100
    #[arg(short = 'n', long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub size: u32,
    /// Class for cvae, by number or name [default: 0]
    #[arg(long)]
    pub label: Option<String>,
    /// Output picture, .png or .jpg [default: RUN_DIR/manifold.png, or
    /// RUN_DIR/manifold-<class>.png with --label]
    #[arg(short, long, value_name = "FILE.png", value_parser = crate::cli::picture_path)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct ScatterArgs {
    /// Run directory made by `vae train`
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub moved: MovedData,
    /// Split to plot
    #[arg(long, value_enum, default_value_t = SplitName::Test)]
    pub split: SplitName,
    /// Plot N images, a seeded sample across the classes, N ≥ 1 [default: all]
    #[arg(long, value_name = "N", value_parser = super::args::count(1, super::args::MAX_LIMIT))]
    pub limit: Option<usize>,
    /// Output picture, .png or .jpg [default: RUN_DIR/scatter.png]
    #[arg(short, long, value_name = "FILE.png", value_parser = crate::cli::picture_path)]
    pub output: Option<PathBuf>,
}

/// A run's model with what the commands need around it.
pub(super) struct Loaded {
    pub dir: RunDir,
    pub config: RunConfig,
    pub model: Model,
    pub pool: Pool,
    /// `--data-dir`: where the run's folder moved, if it did.
    pub moved_to: Option<PathBuf>,
}

impl Loaded {
    /// Opens the run at `path`, whose images are read (when a command needs them) from where
    /// `moved` says its folder is now.
    pub fn open(path: &Path, moved: &MovedData) -> Result<Loaded> {
        let dir = RunDir::new(path);
        let (config, model) = dir.load_model()?;
        Ok(Loaded { dir, config, model, pool: Pool::new(0), moved_to: moved.data_dir.clone() })
    }

    /// The run's dataset, from where it is now ([`crate::rundata::load`]).
    pub fn data(&self) -> Result<crate::data::Dataset> {
        crate::rundata::load(&self.dir, &self.config, self.moved_to.as_deref(), false)
    }

    pub fn conditional(&self) -> bool {
        self.model.config().kind.conditional()
    }

    /// The run's test images, prepared as in training; for a run without any, an error
    /// ending in `instead` (what the command can do without them).
    pub fn test(&self, instead: &str) -> Result<Split> {
        self.split(SplitName::Test, instead)
    }

    /// [`Loaded::test`], or the training images for `SplitName::Train`.
    pub fn split(&self, which: SplitName, instead: &str) -> Result<Split> {
        let data = self.data()?;
        if which == SplitName::Test && data.test.is_empty() {
            bail!("{}; {instead}", crate::eval::report::no_test_images(&self.config));
        }
        eval_split(&self.config, &data, which, None)
    }

    pub fn out(&self, given: Option<PathBuf>, name: &str) -> PathBuf {
        given.unwrap_or_else(|| self.dir.file(name))
    }

    /// Reconstructions `[n, pixels]` of images `[n, pixels]`, decoded from their means.
    pub fn reconstruct(&self, images: &[f32], labels: &[u8]) -> Result<Vec<f32>> {
        let mu = self.encode(images, labels)?;
        Ok(self.model.decode(&self.pool, &mu, self.conditional().then_some(labels))?)
    }

    /// Encodes images `[n, pixels]` to their means μ `[n, latent]`.
    pub fn encode(&self, images: &[f32], labels: &[u8]) -> Result<Vec<f32>> {
        Ok(self.model.encode(&self.pool, images, self.conditional().then_some(labels))?.mu)
    }

    fn labels_for(&self, n: usize, label: u8) -> Option<Vec<u8>> {
        self.conditional().then(|| vec![label; n])
    }

    /// `--label`, checked against the run: a class number or name, for a cvae only.
    pub fn label(&self, spec: Option<&str>) -> Result<Option<u8>> {
        let Some(spec) = spec else { return Ok(None) };
        if !self.conditional() {
            bail!(
                "--label needs a conditional model, but {} holds a {} model",
                self.dir.path.display(),
                self.model.config().kind
            );
        }
        resolve_label(&self.config, spec, &self.dir.path).map(Some)
    }

    fn one_hot(&self, label: u8) -> Vec<f32> {
        one_hot(label, self.model.config().classes)
    }

    pub fn grid(&self, images: &[f32], nrow: usize) -> Image {
        images::grid(images, self.model.config().shape(), nrow, GRID_PADDING)
    }

    /// [`Loaded::grid`] with `captions` around it.
    pub fn annotated(&self, images: &[f32], nrow: usize, captions: &Captions) -> Result<Image> {
        let c = self.model.config();
        Ok(annotate(&self.grid(images, nrow), (c.image_rows, c.image_cols), GRID_PADDING, captions)?)
    }
}

/// Saves a grid (PNG or JPEG by the name), making its folder, and says where.
pub(super) fn save(grid: &Image, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    grid.save(path).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {} ({}x{})", path.display(), grid.width, grid.height);
    Ok(())
}

/// The test split, read the first time a test-set index asks for it (pictures of one's own
/// need no data).
#[derive(Default)]
struct LazyTest(std::cell::OnceCell<Split>);

impl LazyTest {
    fn get(&self, l: &Loaded) -> Result<&Split> {
        if let Some(split) = self.0.get() {
            return Ok(split);
        }
        let split = l.test("give a picture file instead of a test-set index")?;
        Ok(self.0.get_or_init(|| split))
    }
}

/// An image named on the command line: a test-set index or a picture file, with its label
/// and how to call it ("test image 3", "cat.png"). A cvae's picture takes its class from
/// `--label`, else from its folder's or file's name.
fn resolve_image(
    l: &Loaded,
    test: &LazyTest,
    spec: &str,
    flag: &str,
    label: Option<u8>,
) -> Result<(Vec<f32>, u8, String)> {
    if let Ok(i) = spec.parse::<usize>() {
        let test = test.get(l)?;
        if i >= test.len() {
            bail!("{flag} {i} is not a test-set index (0..={}); give an index or a picture file", test.len() - 1);
        }
        return Ok((test.image_f32(i), label.unwrap_or(test.labels[i]), format!("test image {i}")));
    }
    let path = Path::new(spec);
    let img = load_picture(path, l.model.config().shape(), l.config.picture_preparation())?;
    let name = path.file_name().map_or_else(|| spec.to_string(), |n| n.to_string_lossy().into_owned());
    let label = match label.or_else(|| super::reconstruct::label_from_path(path, &l.config.class_names())) {
        Some(label) => label,
        None if l.conditional() => bail!(
            "{flag} {spec} is a picture: a cvae also needs its class; pass --label C, or name the file after its class"
        ),
        None => 0,
    };
    Ok((img, label, name))
}

/// A file-name part for an image spec: the index, or the picture's stem.
fn spec_name(spec: &str) -> String {
    Path::new(spec).file_stem().map_or_else(|| spec.to_string(), |s| s.to_string_lossy().into_owned())
}

/// " (class NAME)" for a cvae, "" otherwise.
fn class_note(l: &Loaded, label: u8) -> String {
    if l.conditional() { format!(" (class {})", l.config.class_names()[label as usize]) } else { String::new() }
}

/// Column captions for a sweep of `steps` values from `from` to `to`.
fn sweep(from: f32, to: f32, steps: usize) -> Vec<String> {
    (0..steps).map(|i| format!("{:.1}", from + (to - from) * i as f32 / (steps - 1).max(1) as f32)).collect()
}

/// `vae interpolate`: images decoded along latent paths between two images, or across a cvae's
/// labels.
///
/// # Errors
/// If the run or its test set cannot be loaded, `--from` or `--to` is missing or names neither a
/// test-set index nor a readable picture, `--labels` or `--label` is given for a model that is not
/// conditional, or the grid cannot be written.
pub fn interpolate(a: InterpolateArgs) -> Result<()> {
    let l = Loaded::open(&a.run_dir, &a.moved)?;
    let label = l.label(a.label.as_deref())?;
    let c = l.model.config().clone();
    let test = LazyTest::default();
    let steps = a.steps as usize;
    if a.labels {
        if !l.conditional() {
            bail!("--labels needs a conditional model, but {} holds a {} model", l.dir.path.display(), c.kind);
        }
        let (z, whose, file) = match &a.from {
            Some(spec) => {
                let (img, label, name) = resolve_image(&l, &test, spec, "--from", label)?;
                (
                    l.encode(&img, &[label])?,
                    format!("the code of {name}"),
                    format!("interpolate-labels-{}.png", spec_name(spec)),
                )
            }
            None => {
                let mut z = vec![0.0; c.latent_dim];
                Rng::stream(a.seed, Purpose::User, 1).fill_normal(&mut z);
                (z, format!("a random z (seed {})", a.seed), format!("interpolate-labels-seed{}.png", a.seed))
            }
        };
        let zs: Vec<f32> = (0..c.classes).flat_map(|_| z.iter().copied()).collect();
        let labels: Vec<u8> = (0..c.classes).map(|k| k as u8).collect();
        let imgs = l.model.decode(&l.pool, &zs, Some(&labels))?;
        let per_row = c.classes.min(20);
        let names = l.config.class_names();
        let captions = Captions {
            title: Some(format!("one z ({whose}) decoded with every class: the style kept, the class changed")),
            columns: names.iter().take(per_row).cloned().collect(),
            rows: if c.classes > per_row {
                (0..c.classes.div_ceil(per_row)).map(|r| format!("{}…", names[r * per_row])).collect()
            } else {
                Vec::new()
            },
            footer: None,
        };
        return save(&l.annotated(&imgs, per_row, &captions)?, &l.out(a.output, &file));
    }
    let (Some(from), Some(to)) = (&a.from, &a.to) else {
        bail!("interpolate needs --from A and --to B (test-set indices or PNG files), or --labels for a cvae");
    };
    let (img_a, la, name_a) = resolve_image(&l, &test, from, "--from", label)?;
    let (img_b, lb, name_b) = resolve_image(&l, &test, to, "--to", label)?;
    let (za, zb) = (l.encode(&img_a, &[la])?, l.encode(&img_b, &[lb])?);
    let mut paths = vec![lerp_path(&za, &zb, steps)];
    if a.slerp {
        paths.push(slerp_path(&za, &zb, steps));
    }
    // For a cvae the label moves with z: a one-hot blend from A's digit to B's.
    let cond: Vec<f32> = lerp_path(&l.one_hot(la), &l.one_hot(lb), steps);
    let mut imgs = Vec::new();
    for path in &paths {
        imgs.extend(l.model.decode_conditioned(&l.pool, path, l.conditional().then_some(&cond[..]))?);
    }
    let rows = if a.slerp { vec!["linear".into(), "spherical".into()] } else { vec!["linear".into()] };
    let captions = Captions {
        title: Some(format!(
            "from {name_a}{} to {name_b}{}, through their codes' means",
            class_note(&l, la),
            class_note(&l, lb)
        )),
        rows,
        columns: sweep(0.0, 1.0, steps),
        footer: Some("t: the fraction of the way from the first code to the second".into()),
    };
    let file = format!("interpolate-{}-{}.png", spec_name(from), spec_name(to));
    save(&l.annotated(&imgs, steps, &captions)?, &l.out(a.output, &file))
}

/// Parses `0..10` or `0,3,7`.
///
/// # Errors
/// If `spec` is neither a range nor a list of numbers, names no dimension, or names one the latent
/// space (of `latent` dimensions) does not have.
pub fn parse_dims(spec: &str, latent: usize) -> Result<Vec<usize>> {
    let bad = || {
        anyhow::anyhow!("--dims {spec:?}: give a range like 0..10 or a list like 0,3,7 (latent dimensions 0..{latent})")
    };
    let dims: Vec<usize> = if let Some((a, b)) = spec.split_once("..") {
        let (a, b): (usize, usize) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
        // Checked before the range is built: `0..100000000000` would allocate 800 GB.
        if b > latent && a < b {
            bail!("--dims: dimension {} does not exist; the latent space has dimensions 0..{latent}", a.max(latent));
        }
        (a..b).collect()
    } else {
        spec.split(',').map(|d| d.trim().parse().map_err(|_| bad())).collect::<Result<_>>()?
    };
    if dims.is_empty() {
        return Err(bad());
    }
    if let Some(&d) = dims.iter().find(|&&d| d >= latent) {
        bail!("--dims: dimension {d} does not exist; the latent space has dimensions 0..{latent}");
    }
    Ok(dims)
}

/// `vae traverse`: one row per latent dimension, swept over `[-range, range]` around z = 0 or an
/// image's code.
///
/// # Errors
/// If the run cannot be loaded, `--label`, `--range` or `--dims` is invalid, `--image` names
/// neither a test-set index nor a readable picture, or the grid cannot be written.
pub fn traverse(a: TraverseArgs) -> Result<()> {
    let l = Loaded::open(&a.run_dir, &a.moved)?;
    let label = l.label(a.label.as_deref())?;
    let c = l.model.config().clone();
    let dims = match &a.dims {
        Some(s) => parse_dims(s, c.latent_dim)?,
        None => (0..c.latent_dim.min(10)).collect(),
    };
    let gif = a.gif || a.output.as_ref().is_some_and(|o| o.extension().is_some_and(|e| e.eq_ignore_ascii_case("gif")));
    if a.gif && a.output.as_ref().is_some_and(|o| !o.extension().is_some_and(|e| e.eq_ignore_ascii_case("gif"))) {
        bail!("--gif writes an animation: end -o in .gif, or drop --gif for a picture");
    }
    let ext = if gif { "gif" } else { "png" };
    let (base, label, around, file) = match &a.image {
        Some(spec) => {
            let (img, label, name) = resolve_image(&l, &LazyTest::default(), spec, "--image", label)?;
            (l.encode(&img, &[label])?, label, format!("{name}'s code"), format!("traverse-{}.{ext}", spec_name(spec)))
        }
        None => (vec![0.0; c.latent_dim], label.unwrap_or(0), "z = 0".to_string(), format!("traverse.{ext}")),
    };
    let steps = a.steps as usize;
    let zs = traversal(&base, &dims, a.range, steps);
    let n = zs.len() / c.latent_dim;
    let imgs = l.model.decode(&l.pool, &zs, l.labels_for(n, label).as_deref())?;
    if gif {
        return traverse_gif(&l, &imgs, &dims, a.range, steps, &around, label, &l.out(a.output, &file));
    }
    let captions = Captions {
        title: Some(format!(
            "each row sets one latent dimension from {} to {}, the others held at {around}{}",
            -a.range,
            a.range,
            class_note(&l, label)
        )),
        rows: row_names(&l, &dims)?,
        columns: sweep(-a.range, a.range, steps),
        footer: None,
    };
    save(&l.annotated(&imgs, steps, &captions)?, &l.out(a.output, &file))
}

/// The frames of a traversal, forth and back: frame t shows each swept dimension's image at
/// step t (`images` as decoded, dimension-major), one per row.
#[allow(clippy::too_many_arguments)]
fn traverse_gif(
    l: &Loaded,
    images: &[f32],
    dims: &[usize],
    range: f32,
    steps: usize,
    around: &str,
    label: u8,
    path: &Path,
) -> Result<()> {
    let pixels = l.model.config().pixels();
    let rows = row_names(l, dims)?;
    let values = sweep(-range, range, steps);
    let order: Vec<usize> = (0..steps).chain((1..steps.saturating_sub(1)).rev()).collect();
    let mut frames = Vec::with_capacity(order.len());
    for &t in &order {
        let frame: Vec<f32> =
            (0..dims.len()).flat_map(|d| images[(d * steps + t) * pixels..][..pixels].iter().copied()).collect();
        let captions = Captions {
            title: Some(format!(
                "each row's dimension at {:>5}, the others at {around}{}",
                values[t],
                class_note(l, label)
            )),
            rows: rows.clone(),
            columns: Vec::new(),
            footer: None,
        };
        frames.push(l.annotated(&frame, 1, &captions)?);
    }
    // Titles of different widths make frames of different sizes: pad all to the largest.
    let (w, h) = frames.iter().fold((0, 0), |(w, h), f| (f.width.max(w), f.height.max(h)));
    let frames: Vec<Image> = frames.iter().map(|f| f.padded(w, h)).collect();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    crate::io::write_atomic(path, &crate::images::gif::animated_gif(&frames, GIF_FRAME_MS))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {} ({} frames of {}x{})", path.display(), frames.len(), frames[0].width, frames[0].height);
    Ok(())
}

/// The traversal's row captions: `z3`, or for a run on data with known factors (dSprites)
/// `z3 position x`, the factor the dimension carries most (by MIG's normalised mutual
/// information over 10,000 draws; `z3 –` where it carries none).
fn row_names(l: &Loaded, dims: &[usize]) -> Result<Vec<String>> {
    let Ok(truth) = super::disentangle::truth_of(&l.dir.path, &l.config.train.dataset) else {
        return Ok(dims.iter().map(|d| format!("z{d}")).collect());
    };
    let factors = crate::eval::disentanglement::factor_of_each_dimension(&l.model, &l.pool, truth.as_ref(), 10_000, 1)?;
    let names = truth.names();
    Ok(dims.iter().map(|&d| format!("z{d} {}", factors[d].map_or("–", |k| names[k].as_str()))).collect())
}

/// `vae manifold`: an N × N grid of images decoded over a latent plane.
///
/// # Errors
/// If the run cannot be loaded, `--label` does not fit it, its latent space has a single dimension,
/// the test set (needed above two dimensions) cannot be read, or the grid cannot be written.
pub fn manifold(a: ManifoldArgs) -> Result<()> {
    let l = Loaded::open(&a.run_dir, &a.moved)?;
    let label = l.label(a.label.as_deref())?;
    let c = l.model.config().clone();
    let (plane, axes) = match c.latent_dim {
        1 => bail!("manifold needs a latent space of at least 2 dimensions; {} has 1", l.dir.path.display()),
        2 => (prior_plane(), ("z0", "z1", "the prior's quantiles")),
        _ if l.moved_to.is_none() && crate::rundata::source(&l.dir, &l.config, None).is_err() => {
            // Decoding needs no data: without the folder, the plane of the first two dimensions.
            eprintln!(
                "note: {} has no images at hand to find its codes' principal plane (give --data-dir DIR if its \
                 folder moved); decoding over z0 and z1 instead",
                l.dir.path.display()
            );
            (
                prior_plane_of(c.latent_dim),
                ("z0", "z1", "the prior's quantiles of z0 and z1, the other dimensions at 0"),
            )
        }
        _ => {
            // The test codes' plane, or the training codes' for a run without test images.
            let data = l.data()?;
            let which = if data.test.is_empty() { SplitName::Train } else { SplitName::Test };
            let split = eval_split(&l.config, &data, which, None)?;
            let plane = principal_plane(&l.encode(&split.images_f32(split.len()), &split.labels)?, c.latent_dim);
            let over = match which {
                SplitName::Test => "the test codes' top principal plane (in standard deviations)",
                SplitName::Train => "the training codes' top principal plane (in standard deviations)",
            };
            (plane, ("PC1", "PC2", over))
        }
    };
    let n = a.size as usize;
    let zs = plane_grid(&plane, n);
    let shown = label.unwrap_or(0);
    let imgs = l.model.decode(&l.pool, &zs, l.labels_for(n * n, shown).as_deref())?;
    let q = crate::explore::normal_grid(n);
    let (x, y, over) = axes;
    let captions = Captions {
        title: Some(format!("decoded over {over}{}", class_note(&l, shown))),
        rows: q.iter().rev().map(|v| format!("{v:.1}")).collect(),
        columns: q.iter().map(|v| format!("{v:.1}")).collect(),
        footer: Some(format!(
            "{x} left to right (below), {y} bottom to top (left): the normal quantiles at (i + ½)/{n}"
        )),
    };
    let file = match label {
        Some(d) if l.conditional() => format!("manifold-{}.png", spec_name(&l.config.class_names()[d as usize])),
        _ => "manifold.png".to_string(),
    };
    save(&l.annotated(&imgs, n, &captions)?, &l.out(a.output, &file))
}

/// `vae scatter`: the test set's latent means, coloured by class.
///
/// # Errors
/// If the run or its test set cannot be loaded, `--limit` is 0, or the plot cannot be drawn or
/// written.
pub fn scatter(a: ScatterArgs) -> Result<()> {
    let l = Loaded::open(&a.run_dir, &a.moved)?;
    let c = l.model.config().clone();
    let mut test = l.split(a.split, "plot the training images with --split train")?;
    if let Some(n) = a.limit {
        test = crate::data::subset::sample(&test, n, l.config.train.seed);
    }
    let mu = l.encode(&test.images_f32(test.len()), &test.labels)?;
    let (points, xl, yl) = if c.latent_dim == 1 {
        (mu.iter().map(|&v| [v, 0.0]).collect(), "E[z0|x]".to_string(), String::new())
    } else if c.latent_dim == 2 {
        (mu.chunks_exact(2).map(|p| [p[0], p[1]]).collect(), "E[z0|x]".to_string(), "E[z1|x]".to_string())
    } else {
        let plane = principal_plane(&mu, c.latent_dim);
        let pc = |k: usize| format!("principal direction {} of E[z|x] (s.d. {:.2})", k + 1, plane.scales[k]);
        (project(&mu, &plane), pc(0), pc(1))
    };
    let title = format!(
        "{} {} images in the latent space of {} ({}-d), coloured by class",
        test.len(),
        a.split.noun(),
        c.kind,
        c.latent_dim
    );
    let names = if c.classes > 1 { l.config.class_names() } else { Vec::new() };
    let png = scatter_png(&points, &test.labels, &names, &title, &xl, &yl)?;
    let path = l.out(a.output, "scatter.png");
    save_png(&path, &png)?;
    println!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_sweeps_include_the_midpoint() {
        let t = super::sweep(0.0, 1.0, 11);
        assert_eq!((t[0].as_str(), t[5].as_str(), t[10].as_str()), ("0.0", "0.5", "1.0"));
        assert_eq!(super::sweep(-3.0, 3.0, 11)[5], "0.0");
    }

    /// Ranges and lists within the latent space parse; a huge range is refused before it is
    /// built, and so is a dimension past the end, empty ranges and junk.
    #[test]
    fn dims_are_checked_before_they_are_built() {
        use super::parse_dims;
        assert_eq!(parse_dims("0..3", 20).unwrap(), [0, 1, 2]);
        assert_eq!(parse_dims("4, 7,19", 20).unwrap(), [4, 7, 19]);
        let huge = parse_dims("0..100000000000", 20).unwrap_err().to_string();
        assert!(huge.contains("dimension 20 does not exist") && huge.contains("0..20"), "{huge}");
        assert!(parse_dims("0..21", 20).is_err() && parse_dims("20", 20).is_err());
        assert!(parse_dims("5..5", 20).is_err() && parse_dims("a..b", 20).is_err() && parse_dims("", 20).is_err());
    }
}
