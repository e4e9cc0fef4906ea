//! A folder of images as a dataset, as torchvision's `ImageFolder` reads one: PNG, JPEG, BMP,
//! GIF and WebP files, found recursively; each sub-folder of the root is a class (sorted by
//! name, label = its index), and `train/` + `test/` sub-folders, when both exist, are the
//! split. A folder without class sub-folders is unlabelled.
//!
//! Decoding runs on all cores in two passes: the headers first (sizes and colour types, so
//! the image shape is known and every image can be decoded straight into its place in one
//! u8 buffer), then the pixels. Unreadable files are skipped and reported; a header claiming
//! a huge image is refused before anything is allocated. The result is cached (`cache`).

use super::cache::{self, Fnv};
use super::record::{FileList, FileRecord};
use super::transform;
use super::{Dataset, Split};
use crate::core::{Purpose, Rng, Shape};
use image::ImageDecoder;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, UNIX_EPOCH};

pub use super::transform::Background;

/// Grey or colour tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// One channel (PIL's luma of colour images).
    Grey,
    /// Three channels, red, green, blue.
    Rgb,
}

impl Color {
    /// The flag value: `grey` or `rgb`.
    pub fn name(self) -> &'static str {
        match self {
            Color::Grey => "grey",
            Color::Rgb => "rgb",
        }
    }
}

/// How a run reads an image folder; stored in its `config.json` (with the colour resolved),
/// so every later command decodes the same tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FolderSource {
    pub dir: PathBuf,
    /// Resize the shorter side to this and crop the centre square (`None`: as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    /// `None`: RGB if any image is stored in colour, else grey.
    #[serde(default)]
    pub color: Option<Color>,
    #[serde(default)]
    pub background: Background,
    /// Fraction of the images held out as the test set when the folder has no `test/`.
    pub test_fraction: f64,
    /// Seed of that split.
    pub split_seed: u64,
}

/// Largest side a header may claim: larger images are refused before decoding.
pub const MAX_SIDE: u32 = 16_384;

/// File name extensions read as images.
pub const EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "gif", "webp"];

/// How many skipped files an error or report names.
const NAMED: usize = 3;

/// What can make a folder unusable. Messages name the folder and the fix.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error(
        "{0} does not exist or is not a folder; pass --data-dir DIR holding images (one sub-folder per class for labels) or the four MNIST-format files"
    )]
    NotADir(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{dir} holds no readable images{skipped}; --data-dir needs PNG, JPEG, BMP, GIF or WebP files (in class sub-folders for labels)"
    )]
    Empty { dir: PathBuf, skipped: String },
    #[error(
        "the images differ in size ({a} is {aw}x{ah}, {b} is {bw}x{bh}); pass --image-size S to resize every image's shorter side to S and crop the centre"
    )]
    MixedSizes { a: String, aw: u32, ah: u32, b: String, bw: u32, bh: u32 },
    #[error("{dir}/test has class folder {class:?}, which {dir}/train lacks; the two must have the same classes")]
    UnknownTestClass { dir: PathBuf, class: String },
    #[error("{dir} has {n} class folders; at most 256 are supported")]
    TooManyClasses { dir: PathBuf, n: usize },
    #[error("{dir}: {what} holds no readable images; {fix}")]
    EmptySplit { dir: PathBuf, what: String, fix: String },
    #[error("--image-size must be between 1 and {MAX_SIDE}, got {0}")]
    BadSize(usize),
    #[error("--test-fraction must be in [0, 1), got {0}")]
    BadFraction(f64),
    #[error(
        "{link} leads back to {target}, which holds it: the folder would be read forever; remove the link or point it elsewhere"
    )]
    LinkLoop { link: PathBuf, target: PathBuf },
}

/// Files a load passed over, for the report line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// Files whose extension is not an image's.
    pub not_images: usize,
    /// Images that could not be decoded, or are too large.
    pub unreadable: usize,
    /// Images directly in a root that has class folders.
    pub outside_classes: usize,
    /// The first few of each, with the reason.
    pub examples: Vec<String>,
}

impl Skipped {
    fn note(&mut self, what: String) {
        if self.examples.len() < NAMED {
            self.examples.push(what);
        }
    }

    /// `; skipped 2 unreadable images (a.jpg: …, b.png: …)`, or nothing.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        if self.unreadable > 0 {
            parts.push(plural(self.unreadable, "unreadable image"));
        }
        if self.not_images > 0 {
            parts.push(plural(self.not_images, "non-image file"));
        }
        if self.outside_classes > 0 {
            parts.push(format!("{} outside the class folders", plural(self.outside_classes, "image")));
        }
        if parts.is_empty() {
            return String::new();
        }
        format!("; skipped {} ({})", parts.join(", "), self.examples.join("; "))
    }
}

/// What a load did.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub images: usize,
    pub shape: Shape,
    pub skipped: Skipped,
    /// Read from the cache rather than decoded.
    pub cached: bool,
    pub seconds: f64,
    /// The colour the images were read in (resolved when `color` was `None`).
    pub color: Color,
}

impl LoadReport {
    /// `decoded 70,000 images (28x28 grey) in 6.1 s; skipped …`.
    pub fn summary(&self) -> String {
        let verb = if self.cached { "read the cached decode of" } else { "decoded" };
        let images = crate::text::plural(self.images, "image");
        format!("{verb} {images} ({}) in {:.1} s{}", self.shape, self.seconds, self.skipped.describe())
    }
}

/// One image file found by the walk.
struct Entry {
    path: PathBuf,
    label: u8,
    test: bool,
}

/// An image decoded from bytes in memory; `None` as the format if they are not an image.
fn reader(bytes: &[u8]) -> Result<image::ImageReader<std::io::Cursor<&[u8]>>, String> {
    let reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    Ok(reader)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FolderError + '_ {
    move |source| FolderError::Io { path: path.to_owned(), source }
}

fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn hidden(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

/// Folder depth the walk descends to.
const MAX_DEPTH: usize = 32;

/// Where a walk has been: symbolic links are followed, but each folder and file is read once
/// (a second link to it is passed over), and a link to a folder that holds it is a loop.
#[derive(Default)]
struct Seen {
    /// Canonical paths of the folders being walked, outermost first.
    stack: Vec<PathBuf>,
    /// Canonical paths of every folder and file met so far.
    all: std::collections::HashSet<PathBuf>,
}

/// Every non-hidden file under `dir`, sorted, with its size and modification time.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64, u128)>, depth: usize, seen: &mut Seen) -> Result<(), FolderError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let canonical = std::fs::canonicalize(dir).map_err(io_err(dir))?;
    seen.all.insert(canonical.clone());
    seen.stack.push(canonical);
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io_err(dir))?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if hidden(&path) {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(io_err(&path))?;
        let real = std::fs::canonicalize(&path).map_err(io_err(&path))?;
        if meta.is_dir() && seen.stack.contains(&real) {
            return Err(FolderError::LinkLoop { link: path, target: real });
        }
        // Reached again through a link: read once (`walk` records each folder it enters).
        if seen.all.contains(&real) {
            continue;
        }
        if meta.is_dir() {
            walk(&path, out, depth + 1, seen)?;
        } else if meta.is_file() {
            seen.all.insert(real);
            let mtime =
                meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            out.push((path, meta.len(), mtime));
        }
    }
    seen.stack.pop();
    Ok(())
}

/// The class folders of `root` (sorted sub-folders holding images) and its labelled entries.
fn classify(
    root: &Path,
    files: &[(PathBuf, u64, u128)],
    skipped: &mut Skipped,
) -> (Vec<String>, Vec<(PathBuf, Option<String>)>) {
    let mut classes: Vec<String> = Vec::new();
    let mut entries = Vec::new();
    for (path, _, _) in files {
        let Ok(rel) = path.strip_prefix(root) else { continue };
        if !is_image(path) {
            skipped.not_images += 1;
            skipped.note(format!("{}: not an image file", rel.display()));
            continue;
        }
        let mut parts = rel.components();
        let first = parts.next().map(|c| c.as_os_str().to_string_lossy().into_owned());
        let class = if parts.next().is_some() { first } else { None };
        if let Some(c) = &class
            && !classes.contains(c)
        {
            classes.push(c.clone());
        }
        entries.push((path.clone(), class));
    }
    classes.sort();
    (classes, entries)
}

/// Lists the images of a folder with their labels and split, and the class names.
#[allow(clippy::type_complexity)]
fn list(dir: &Path) -> Result<(Vec<Entry>, Vec<String>, Skipped, Fnv, bool), FolderError> {
    let mut files = Vec::new();
    walk(dir, &mut files, 0, &mut Seen::default())?;
    let mut key = Fnv::default();
    for (path, size, mtime) in &files {
        key.bytes(path.as_os_str().as_encoded_bytes()).bytes(&size.to_le_bytes()).bytes(&mtime.to_le_bytes());
    }
    let mut skipped = Skipped::default();
    let (train, test) = (dir.join("train"), dir.join("test"));
    let split_dirs = train.is_dir() && test.is_dir();
    let roots: Vec<(PathBuf, bool)> =
        if split_dirs { vec![(train, false), (test, true)] } else { vec![(dir.to_owned(), false)] };
    let mut classes: Vec<String> = Vec::new();
    let mut entries = Vec::new();
    for (root, is_test) in &roots {
        let (found, listed) = classify(root, &files, &mut skipped);
        if !is_test {
            classes = found;
        } else if let Some(c) = found.iter().find(|c| !classes.contains(c)) {
            return Err(FolderError::UnknownTestClass { dir: dir.to_owned(), class: c.clone() });
        }
        for (path, class) in listed {
            let label = match (&class, classes.is_empty()) {
                (_, true) => 0,
                (Some(c), false) => classes.iter().position(|x| x == c).expect("known class") as u8,
                (None, false) => {
                    skipped.outside_classes += 1;
                    skipped.note(format!("{}: not in a class folder", path.display()));
                    continue;
                }
            };
            entries.push(Entry { path, label, test: *is_test });
        }
    }
    if classes.len() > super::MAX_CLASSES {
        return Err(FolderError::TooManyClasses { dir: dir.to_owned(), n: classes.len() });
    }
    Ok((entries, classes, skipped, key, split_dirs))
}

/// A decoder for `path` with the header read, refusing sides above [`MAX_SIDE`] or of 0.
fn open(path: &Path) -> Result<impl ImageDecoder, String> {
    let reader =
        image::ImageReader::open(path).map_err(|e| e.to_string())?.with_guessed_format().map_err(|e| e.to_string())?;
    limited(reader)
}

/// [`open`] for a file already read into memory.
fn open_bytes(bytes: &[u8]) -> Result<impl ImageDecoder + '_, String> {
    limited(reader(bytes)?)
}

/// The decoder of `reader` with [`MAX_SIDE`] as its limit, refusing sides above it or of 0.
fn limited<'a, R: std::io::BufRead + std::io::Seek + 'a>(
    mut reader: image::ImageReader<R>,
) -> Result<impl ImageDecoder + 'a, String> {
    if reader.format().is_none() {
        return Err("not a PNG, JPEG, BMP, GIF or WebP image".into());
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!("{w}x{h} is larger than {MAX_SIDE}x{MAX_SIDE}"));
    }
    if w == 0 || h == 0 {
        return Err(format!("it is {w}x{h}: no pixels"));
    }
    Ok(decoder)
}

/// Runs `f(i)` for every `i in 0..n` on all cores, ticking `bar`.
fn parallel(n: usize, bar: &indicatif::ProgressBar, f: &(dyn Fn(usize) + Sync)) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..crate::core::pool::available_threads() {
            s.spawn(|| {
                loop {
                    let start = next.fetch_add(16, Ordering::Relaxed);
                    if start >= n {
                        return;
                    }
                    for i in start..(start + 16).min(n) {
                        f(i);
                    }
                    bar.inc((start + 16).min(n) as u64 - start as u64);
                }
            });
        }
    });
}

fn bar(show: bool, len: usize, what: &str) -> indicatif::ProgressBar {
    crate::progress::bar(show, len, what, "images")
}

/// What an image's header says: width, height, stored in colour; or why it is unreadable.
type Header = Result<(u32, u32, bool), String>;

/// Decodes the images of `entries` into one buffer, noting the failures in `skipped`.
fn decode_all(
    entries: &[Entry],
    source: &FolderSource,
    skipped: &mut Skipped,
    show: bool,
) -> Result<Decoded, FolderError> {
    let n = entries.len();
    // Pass 1: headers.
    let headers: Vec<std::sync::Mutex<Header>> = (0..n).map(|_| std::sync::Mutex::new(Err(String::new()))).collect();
    let b = bar(show, n, "reading ");
    parallel(n, &b, &|i| {
        let r = open(&entries[i].path).map(|d| {
            let (w, h) = d.dimensions();
            let colour = !matches!(
                d.color_type(),
                image::ColorType::L8 | image::ColorType::La8 | image::ColorType::L16 | image::ColorType::La16
            );
            (w, h, colour)
        });
        *headers[i].lock().unwrap_or_else(|e| e.into_inner()) = r;
    });
    b.finish_and_clear();
    let headers: Vec<Header> = headers.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).collect();
    let mut readable = Vec::with_capacity(n);
    for (i, h) in headers.iter().enumerate() {
        match h {
            Ok(_) => readable.push(i),
            Err(reason) => {
                skipped.unreadable += 1;
                skipped.note(format!("{}: {reason}", entries[i].path.display()));
            }
        }
    }
    let size = |i: usize| headers[i].as_ref().map(|&(w, h, _)| (w, h)).expect("readable");
    let (height, width) = match source.image_size {
        Some(s) => (s, s),
        None => {
            let Some(&first) = readable.first() else {
                return Ok(Decoded { shape: Shape::new(1, 0, 0), images: vec![], kept: vec![], files: vec![] });
            };
            if let Some(&other) = readable.iter().find(|&&i| size(i) != size(first)) {
                let ((aw, ah), (bw, bh)) = (size(first), size(other));
                let name = |i: usize| entries[i].path.display().to_string();
                return Err(FolderError::MixedSizes { a: name(first), aw, ah, b: name(other), bw, bh });
            }
            (size(first).1 as usize, size(first).0 as usize)
        }
    };
    let color = source.color.unwrap_or_else(|| {
        if readable.iter().any(|&i| headers[i].as_ref().is_ok_and(|h| h.2)) { Color::Rgb } else { Color::Grey }
    });
    let channels = if color == Color::Rgb { 3 } else { 1 };
    let shape = Shape::new(channels, height, width);
    // Pass 2: pixels, each image straight into its slot.
    let p = shape.size();
    let mut images = vec![0u8; readable.len() * p];
    let ok: Vec<std::sync::atomic::AtomicBool> = (0..readable.len()).map(|_| Default::default()).collect();
    let failures = std::sync::Mutex::new(Vec::new());
    let slots = crate::core::pool::SyncMut::new(&mut images);
    let b = bar(show, readable.len(), "decoding");
    let records: Vec<std::sync::OnceLock<FileRecord>> = (0..readable.len()).map(|_| Default::default()).collect();
    parallel(readable.len(), &b, &|j| {
        let entry = &entries[readable[j]];
        // Read once: hashed for the run's record of its files, then decoded from memory.
        let decoded = std::fs::read(&entry.path).map_err(|e| e.to_string()).and_then(|bytes| {
            let img = open_bytes(&bytes).and_then(|d| image::DynamicImage::from_decoder(d).map_err(|e| e.to_string()));
            let _ = records[j].set(FileRecord::of(&source.dir, &entry.path, &bytes));
            img
        });
        match decoded {
            Ok(img) => {
                // SAFETY: each j writes its own slot.
                let slot = unsafe { slots.slice(j * p..(j + 1) * p) };
                transform::to_tensor(&img, channels, source.image_size.map(|s| (s, s)), source.background, slot);
                ok[j].store(true, Ordering::Relaxed);
            }
            Err(e) => failures.lock().unwrap_or_else(|e| e.into_inner()).push((j, e)),
        }
    });
    b.finish_and_clear();
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort();
    for (j, reason) in failures {
        skipped.unreadable += 1;
        skipped.note(format!("{}: {reason}", entries[readable[j]].path.display()));
    }
    // Close the gaps of images that failed in pass 2, in place.
    let mut kept = Vec::with_capacity(readable.len());
    let mut files = Vec::with_capacity(readable.len());
    for ((j, &i), record) in readable.iter().enumerate().zip(records) {
        if ok[j].load(Ordering::Relaxed) {
            let dst = kept.len();
            if dst != j {
                images.copy_within(j * p..(j + 1) * p, dst * p);
            }
            kept.push(i);
            files.push(record.into_inner().expect("a decoded image was read"));
        }
    }
    images.truncate(kept.len() * p);
    Ok(Decoded { shape, images, kept, files })
}

/// What [`decode_all`] made: the images of `shape`, which entries they are, and their files.
struct Decoded {
    shape: Shape,
    images: Vec<u8>,
    kept: Vec<usize>,
    files: Vec<FileRecord>,
}

/// Every picture of the folder as `source` reads it, in file order: from the cache, or
/// decoded (and cached); with its labels and whether it came from the cache.
fn decoded(source: &FolderSource, progress: bool) -> Result<(cache::Meta, Vec<u8>, Vec<u8>, bool), FolderError> {
    let dir = &source.dir;
    if !dir.is_dir() {
        return Err(FolderError::NotADir(dir.clone()));
    }
    if let Some(s) = source.image_size.filter(|&s| s == 0 || s > MAX_SIDE as usize) {
        return Err(FolderError::BadSize(s));
    }
    if !(0.0..1.0).contains(&source.test_fraction) {
        return Err(FolderError::BadFraction(source.test_fraction));
    }
    let (entries, classes, mut skipped, mut key, split_dirs) = list(dir)?;
    key.bytes(b"vae-folder-3")
        .bytes(&source.image_size.unwrap_or(0).to_le_bytes())
        .bytes(format!("{:?} {:?}", source.color, source.background).as_bytes());
    let key = key.value();
    Ok(match cache::read(key) {
        Some((meta, labels, images)) => (meta, labels, images, true),
        None => {
            let Decoded { shape, images, kept, files } = decode_all(&entries, source, &mut skipped, progress)?;
            let labels: Vec<u8> = kept.iter().map(|&i| entries[i].label).collect();
            let from_test = kept.iter().map(|&i| entries[i].test).collect();
            let meta = cache::Meta {
                channels: shape.channels,
                height: shape.height,
                width: shape.width,
                classes: classes.clone(),
                split_dirs,
                from_test,
                report: skipped.clone(),
                files,
            };
            if !labels.is_empty() {
                cache::write(key, &meta, &labels, &images);
            }
            (meta, labels, images, false)
        }
    })
}

/// Every picture of a folder in file order, as training reads them ([`pictures`]).
pub struct Pictures {
    pub shape: Shape,
    /// Paths relative to the folder, `/` between components.
    pub paths: Vec<String>,
    /// `[n, pixels]` bytes.
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

/// Every picture of the folder in file order, as training reads them (for `--factors`, which
/// names pictures by path).
///
/// # Errors
/// As [`load`].
pub fn pictures(source: &FolderSource) -> Result<Pictures, FolderError> {
    let (meta, labels, images, _) = decoded(source, false)?;
    let shape = Shape::new(meta.channels, meta.height, meta.width);
    Ok(Pictures { shape, paths: meta.files.into_iter().map(|f| f.path).collect(), images, labels })
}

/// Loads an image folder (from the cache when nothing changed); `progress` shows bars on a
/// terminal.
///
/// # Errors
/// [`FolderError::NotADir`] if the folder does not exist, [`FolderError::BadSize`] or
/// [`FolderError::BadFraction`] for an out-of-range option, [`FolderError::Io`] if a folder cannot
/// be listed, [`FolderError::UnknownTestClass`] or [`FolderError::TooManyClasses`] for unusable
/// class folders, [`FolderError::MixedSizes`] if the images differ in size and no `image_size` is
/// set, [`FolderError::Empty`] if no image is readable, and [`FolderError::EmptySplit`] if the
/// training or test split would be empty.
pub fn load(source: &FolderSource, progress: bool) -> Result<(Dataset, LoadReport), FolderError> {
    let start = Instant::now();
    let dir = &source.dir;
    let (meta, labels, images, was_cached) = decoded(source, progress)?;
    let shape = Shape::new(meta.channels, meta.height, meta.width);
    if labels.is_empty() {
        return Err(FolderError::Empty { dir: dir.clone(), skipped: meta.report.describe() });
    }
    let (train, test) = split(&meta, &labels, &images, shape, source, dir)?;
    let color = if shape.channels == 3 { Color::Rgb } else { Color::Grey };
    let report = LoadReport {
        images: labels.len(),
        shape,
        skipped: meta.report.clone(),
        cached: was_cached,
        seconds: start.elapsed().as_secs_f64(),
        color,
    };
    let files = Some(FileList { files: meta.files });
    Ok((Dataset { train, test, classes: meta.classes, files }, report))
}

/// The train/test split: the folder's own, or `test_fraction` of the images drawn with the
/// seed (in file order within each split; none at all for a fraction of 0).
fn split(
    meta: &cache::Meta,
    labels: &[u8],
    images: &[u8],
    shape: Shape,
    source: &FolderSource,
    dir: &Path,
) -> Result<(Split, Split), FolderError> {
    let n = labels.len();
    let is_test: Vec<bool> = if meta.split_dirs {
        meta.from_test.clone()
    } else {
        let mut order: Vec<u32> = (0..n as u32).collect();
        Rng::stream(source.split_seed, Purpose::Split, 0).shuffle(&mut order);
        let n_test = ((n as f64 * source.test_fraction).ceil() as usize).min(n.saturating_sub(1));
        let mut t = vec![false; n];
        order[..n_test].iter().for_each(|&i| t[i as usize] = true);
        t
    };
    let p = shape.size();
    let take = |want: bool| -> Split {
        let idx: Vec<usize> = (0..n).filter(|&i| is_test[i] == want).collect();
        let mut imgs = Vec::with_capacity(idx.len() * p);
        idx.iter().for_each(|&i| imgs.extend_from_slice(&images[i * p..(i + 1) * p]));
        Split { images: imgs, labels: idx.iter().map(|&i| labels[i]).collect(), shape }
    };
    let (train, test) = (take(false), take(true));
    if train.is_empty() {
        let fix = if meta.split_dirs {
            "put training images in train/<class>/"
        } else {
            "add images, or lower --test-fraction"
        };
        let fix = fix.to_string();
        return Err(FolderError::EmptySplit { dir: dir.to_owned(), what: "the training split".into(), fix });
    }
    // --test-fraction 0 asks for no test images: everything trains.
    let none_asked = source.test_fraction == 0.0 && !meta.split_dirs;
    if test.is_empty() && !none_asked {
        let what = if meta.split_dirs { "test/" } else { "the test split" };
        let fix = if meta.split_dirs {
            "put test images in test/<class>/, or remove test/ to split by --test-fraction".to_string()
        } else {
            "add images: one image is not enough to split".to_string()
        };
        return Err(FolderError::EmptySplit { dir: dir.to_owned(), what: what.into(), fix });
    }
    Ok((train, test))
}
