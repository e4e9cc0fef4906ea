//! Image datasets: MNIST embedded in the binary, Debian's Fashion-MNIST, any folder holding
//! the four standard IDX files, or any folder of images (`folder`).

/// Most classes a labelled dataset may have (labels are stored as bytes).
pub const MAX_CLASSES: usize = 256;

pub mod augment;
pub mod binarize;
pub mod cache;
pub mod dsprites;
pub mod factors;
pub mod folder;
pub mod idx;
pub mod npy;
pub mod record;
pub mod subset;
pub mod transform;

pub use augment::Augment;
pub use binarize::Binarize;
pub use folder::{Background, Color, FolderSource};
pub use idx::DataError;

use crate::core::Shape;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Number of classes of MNIST-style datasets (digits 0–9, or ten kinds of clothes).
pub const NUM_CLASSES: usize = 10;

/// Fashion-MNIST's class names (Xiao, Rasul & Vollgraf 2017, table 1).
pub const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// The standard file names, in the order train images, train labels, test images, test labels.
pub const FILE_NAMES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// Where Debian's `dataset-fashion-mnist` package puts its files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

static EMBEDDED: [&[u8]; 4] = [
    include_bytes!("../../data/mnist/train-images-idx3-ubyte.gz"),
    include_bytes!("../../data/mnist/train-labels-idx1-ubyte.gz"),
    include_bytes!("../../data/mnist/t10k-images-idx3-ubyte.gz"),
    include_bytes!("../../data/mnist/t10k-labels-idx1-ubyte.gz"),
];

/// The embedded MNIST files, gzipped, in [`FILE_NAMES`] order.
pub fn embedded_files() -> [&'static [u8]; 4] {
    EMBEDDED
}

/// Which data a run trains on; stored in the run's `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// MNIST, compiled into the binary.
    Mnist,
    /// Fashion-MNIST from Debian's `dataset-fashion-mnist` package.
    FashionMnist,
    /// A folder holding the four standard file names (gzip or raw).
    Dir(PathBuf),
    /// A folder of images, with how they were turned into tensors.
    Folder(FolderSource),
    /// A folder of NumPy arrays ([`npy`]): what `vae.train` in Python trains on.
    Arrays(PathBuf),
    /// dSprites, generated ([`dsprites`]).
    Dsprites,
}

impl Source {
    /// The source `--data-dir DIR` names: the IDX files if DIR holds them, else its images.
    pub fn for_dir(dir: &Path, folder: impl FnOnce() -> FolderSource) -> Source {
        if FILE_NAMES.iter().any(|name| resolve(dir, name).is_some()) {
            Source::Dir(dir.to_owned())
        } else if npy::holds_arrays(dir) {
            Source::Arrays(dir.to_owned())
        } else {
            Source::Folder(folder())
        }
    }

    /// Whether two sources hold the same images: the same built-in dataset, or the same
    /// folder (compared canonically). How a folder is resized or coloured is left to the
    /// shape checks.
    pub fn same_images(&self, other: &Source) -> bool {
        let same_dir = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        match (self, other) {
            (Source::Mnist, Source::Mnist)
            | (Source::FashionMnist, Source::FashionMnist)
            | (Source::Dsprites, Source::Dsprites) => true,
            (Source::Dir(a), Source::Dir(b)) | (Source::Arrays(a), Source::Arrays(b)) => same_dir(a, b),
            (Source::Folder(a), Source::Folder(b)) => same_dir(&a.dir, &b.dir),
            _ => false,
        }
    }

    /// The data flags of a command that loads this source again, e.g. ` --data-dir DIR
    /// --image-size 64` (empty for MNIST, the default).
    pub fn flags(&self) -> String {
        match self {
            Source::Mnist => String::new(),
            Source::FashionMnist => " --dataset fashion-mnist".to_string(),
            Source::Dsprites => " --dataset dsprites".to_string(),
            Source::Dir(d) | Source::Arrays(d) => format!(" --data-dir {}", d.display()),
            Source::Folder(f) => {
                let size = f.image_size.map(|s| format!(" --image-size {s}")).unwrap_or_default();
                let color = f.color.map(|c| format!(" --color {}", c.name())).unwrap_or_default();
                format!(" --data-dir {}{size}{color}", f.dir.display())
            }
        }
    }

    /// The folder the images are read from (`None` for the built-in datasets).
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Source::Dir(d) | Source::Arrays(d) => Some(d),
            Source::Folder(f) => Some(&f.dir),
            Source::Mnist | Source::FashionMnist | Source::Dsprites => None,
        }
    }

    /// The same source read from `dir` instead, with the same options (`None` for the
    /// built-in datasets, which have no folder to move).
    pub fn moved_to(&self, dir: &Path) -> Option<Source> {
        match self {
            Source::Dir(_) => Some(Source::Dir(dir.to_owned())),
            Source::Arrays(_) => Some(Source::Arrays(dir.to_owned())),
            Source::Folder(f) => Some(Source::Folder(FolderSource { dir: dir.to_owned(), ..f.clone() })),
            Source::Mnist | Source::FashionMnist | Source::Dsprites => None,
        }
    }

    /// Class names of an IDX dataset (`None` for a folder, whose names come with its data).
    pub fn idx_class_names(&self) -> Option<Vec<String>> {
        match self {
            Source::FashionMnist => Some(FASHION_CLASSES.iter().map(|s| s.to_string()).collect()),
            Source::Mnist | Source::Dir(_) => Some((0..NUM_CLASSES).map(|d| d.to_string()).collect()),
            Source::Dsprites => Some(dsprites::SHAPES.iter().map(|s| s.to_string()).collect()),
            Source::Folder(_) | Source::Arrays(_) => None,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Mnist => write!(f, "MNIST (embedded)"),
            Source::FashionMnist => write!(f, "Fashion-MNIST ({FASHION_MNIST_DIR})"),
            Source::Dsprites => write!(f, "dSprites (generated)"),
            Source::Dir(d) => write!(f, "{}", d.display()),
            Source::Arrays(d) => write!(f, "arrays in {}", d.display()),
            Source::Folder(s) => write!(f, "{}", s.dir.display()),
        }
    }
}

/// One split: `count` images of `shape`, each `channels × height × width` bytes
/// (channel-major, rows top to bottom), and their labels (all 0 for unlabelled data).
#[derive(Clone, Debug)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub shape: Shape,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (`channels · height · width`).
    pub fn pixels(&self) -> usize {
        self.shape.size()
    }

    /// Image `i` as bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let p = self.pixels();
        &self.images[i * p..(i + 1) * p]
    }

    /// The first `n` examples (all of them if `n` is larger).
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * self.pixels());
    }

    /// Examples per label `0..classes`.
    pub fn label_counts(&self, classes: usize) -> Vec<usize> {
        let mut c = vec![0; classes];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    /// Image `i` as intensities in [0, 1] (`v / 255`, torchvision's `ToTensor`).
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.image(i).iter().map(|&v| v as f32 / 255.0).collect()
    }

    /// The first `n` images as intensities `[n, pixels]` in [0, 1].
    pub fn images_f32(&self, n: usize) -> Vec<f32> {
        self.images[..n.min(self.len()) * self.pixels()].iter().map(|&v| v as f32 / 255.0).collect()
    }

    /// The mean image \[pixels\] in [0, 1]: each pixel's intensity averaged over the split
    /// (zeros for an empty split).
    pub fn mean_image(&self) -> Vec<f32> {
        let p = self.pixels();
        let mut sums = vec![0u64; p];
        for image in self.images.chunks_exact(p) {
            sums.iter_mut().zip(image).for_each(|(s, &v)| *s += v as u64);
        }
        let n = (self.len().max(1) * 255) as f64;
        sums.iter().map(|&s| (s as f64 / n) as f32).collect()
    }

    /// Parses an (image file, label file) pair and checks they match.
    ///
    /// # Errors
    /// The errors of [`idx::maybe_gunzip`] and [`idx::parse`]; [`DataError::CountMismatch`] if the
    /// files hold different numbers of images and labels, and [`DataError::Label`] if a label is
    /// not 0–9.
    pub fn from_idx(images: (&[u8], &Path), labels: (&[u8], &Path)) -> Result<Split, DataError> {
        let (idims, pixels) = idx::parse(&idx::maybe_gunzip(images.0, images.1)?, 3, images.1)?;
        let (_, labs) = idx::parse(&idx::maybe_gunzip(labels.0, labels.1)?, 1, labels.1)?;
        if idims[0] != labs.len() {
            return Err(DataError::CountMismatch {
                images: images.1.to_owned(),
                n_images: idims[0],
                labels: labels.1.to_owned(),
                n_labels: labs.len(),
            });
        }
        if let Some(index) = labs.iter().position(|&l| l as usize >= NUM_CLASSES) {
            return Err(DataError::Label { path: labels.1.to_owned(), label: labs[index], index });
        }
        Ok(Split { images: pixels, labels: labs, shape: Shape::new(1, idims[1], idims[2]) })
    }
}

/// The training and test splits of a dataset, its classes' names (empty for unlabelled
/// data), and the files it was read from (`None` for the built-in datasets).
#[derive(Clone, Debug)]
pub struct Dataset {
    pub train: Split,
    pub test: Split,
    pub classes: Vec<String>,
    pub files: Option<record::FileList>,
}

impl Dataset {
    /// Loads a dataset; IDX splits are decoded on two threads, image folders on all cores
    /// (without a progress bar; see [`folder::load`] for one, and for what was skipped).
    ///
    /// # Errors
    /// [`DataError::Folder`] for an image folder (see [`folder::load`]); [`DataError::Missing`] if
    /// Fashion-MNIST, the data directory or one of its four files is missing, [`DataError::Io`] if
    /// a file cannot be read, the errors of [`Split::from_idx`] for a malformed file, and
    /// [`DataError::Shape`] if the test images' shape differs from the training images'.
    pub fn load(source: &Source) -> Result<Dataset, DataError> {
        if let Source::Folder(f) = source {
            return Ok(folder::load(f, false)?.0);
        }
        if let Source::Arrays(dir) = source {
            return npy::load(dir);
        }
        if let Source::Dsprites = source {
            return Ok(dsprites::dataset());
        }
        let (files, dir): ([Vec<u8>; 4], PathBuf) = match source {
            Source::Folder(_) | Source::Arrays(_) | Source::Dsprites => unreachable!("handled above"),
            Source::Mnist => {
                let dir = PathBuf::from("<embedded>/data/mnist");
                let files = std::array::from_fn(|i| (EMBEDDED[i], dir.join(FILE_NAMES[i])));
                return decode_pair(files, source.idx_class_names().unwrap_or_default());
            }
            Source::FashionMnist => {
                let dir = PathBuf::from(FASHION_MNIST_DIR);
                if !dir.is_dir() {
                    return Err(DataError::Missing(format!(
                        "Fashion-MNIST not found in {FASHION_MNIST_DIR}; install it with \
                         `apt-get install dataset-fashion-mnist`, or pass --data-dir DIR"
                    )));
                }
                (read_files(&dir)?, dir)
            }
            Source::Dir(dir) => (read_files(dir)?, dir.clone()),
        };
        let paths: [PathBuf; 4] = std::array::from_fn(|i| resolve(&dir, FILE_NAMES[i]).unwrap_or_default());
        let classes = source.idx_class_names().unwrap_or_default();
        let mut data = decode_pair(std::array::from_fn(|i| (files[i].as_slice(), paths[i].clone())), classes)?;
        if let Source::Dir(_) = source {
            let files = (0..4).map(|i| record::FileRecord::of(&dir, &paths[i], &files[i])).collect();
            data.files = Some(record::FileList { files });
        }
        Ok(data)
    }
}

fn decode_pair(files: [(&[u8], PathBuf); 4], classes: Vec<String>) -> Result<Dataset, DataError> {
    let [tri, trl, tei, tel] = &files;
    let (train, test) = std::thread::scope(|s| {
        let test = s.spawn(|| Split::from_idx((tei.0, &tei.1), (tel.0, &tel.1)));
        let train = Split::from_idx((tri.0, &tri.1), (trl.0, &trl.1));
        (train, test.join().expect("test-set decoder panicked"))
    });
    let (train, test) = (train?, test?);
    if train.shape != test.shape {
        return Err(DataError::Shape { path: tei.1.clone(), shape: test.shape, want: train.shape });
    }
    Ok(Dataset { train, test, classes, files: None })
}

/// `dir/name.gz` if present, else `dir/name`.
fn resolve(dir: &Path, name: &str) -> Option<PathBuf> {
    let gz = dir.join(format!("{name}.gz"));
    let raw = dir.join(name);
    if gz.is_file() {
        Some(gz)
    } else if raw.is_file() {
        Some(raw)
    } else {
        None
    }
}

fn read_files(dir: &Path) -> Result<[Vec<u8>; 4], DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing(format!(
            "data directory {} does not exist; pass --data-dir DIR holding {} (gzip or raw)",
            dir.display(),
            FILE_NAMES.join(", ")
        )));
    }
    let mut out: [Vec<u8>; 4] = Default::default();
    for (slot, name) in out.iter_mut().zip(FILE_NAMES) {
        let path = resolve(dir, name).ok_or_else(|| {
            DataError::Missing(format!(
                "{} is missing {name} (or {name}.gz); a data directory needs all of {}",
                dir.display(),
                FILE_NAMES.join(", ")
            ))
        })?;
        *slot = std::fs::read(&path).map_err(|source| DataError::Io { path: path.clone(), source })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three 1×2 images: pixel 0 is (0 + 255 + 51)/3/255 = 0.4, pixel 1 (255·3)/3/255 = 1.
    #[test]
    fn mean_image_averages_each_pixel() {
        let split =
            Split { images: vec![0, 255, 255, 255, 51, 255], labels: vec![0, 1, 2], shape: Shape::new(1, 1, 2) };
        let mean = split.mean_image();
        assert!((mean[0] - 0.4).abs() < 1e-7 && mean[1] == 1.0, "{mean:?}");
        let empty = Split { images: vec![], labels: vec![], shape: Shape::new(1, 1, 2) };
        assert_eq!(empty.mean_image(), vec![0.0, 0.0]);
    }
}
