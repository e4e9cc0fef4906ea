//! Image datasets: MNIST embedded in the binary, Debian's Fashion-MNIST, or any folder
//! holding the four standard IDX files.

pub mod binarize;
pub mod idx;

pub use binarize::Binarize;

pub use idx::DataError;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Number of classes of MNIST-style datasets (digits 0–9, or ten kinds of clothes).
pub const NUM_CLASSES: usize = 10;

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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// MNIST, compiled into the binary.
    Mnist,
    /// Fashion-MNIST from Debian's `dataset-fashion-mnist` package.
    FashionMnist,
    /// A folder holding the four standard file names (gzip or raw).
    Dir(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Mnist => write!(f, "MNIST (embedded)"),
            Source::FashionMnist => write!(f, "Fashion-MNIST ({FASHION_MNIST_DIR})"),
            Source::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

/// One split: `count` grey images of `rows × cols` bytes, row-major, and their labels.
#[derive(Clone, Debug)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
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

    /// Examples per label 0–9.
    pub fn label_counts(&self) -> [usize; NUM_CLASSES] {
        let mut c = [0; NUM_CLASSES];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    /// Parses an (image file, label file) pair and checks they match.
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
        Ok(Split { images: pixels, labels: labs, rows: idims[1], cols: idims[2] })
    }
}

/// The training and test splits of a dataset.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub train: Split,
    pub test: Split,
}

impl Dataset {
    /// Loads a dataset; the two splits are decoded on two threads.
    pub fn load(source: &Source) -> Result<Dataset, DataError> {
        let (files, dir): ([Vec<u8>; 4], PathBuf) = match source {
            Source::Mnist => {
                let dir = PathBuf::from("<embedded>/data/mnist");
                return decode_pair(std::array::from_fn(|i| (EMBEDDED[i], dir.join(FILE_NAMES[i]))));
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
        decode_pair(std::array::from_fn(|i| (files[i].as_slice(), paths[i].clone())))
    }
}

fn decode_pair(files: [(&[u8], PathBuf); 4]) -> Result<Dataset, DataError> {
    let [tri, trl, tei, tel] = &files;
    let (train, test) = std::thread::scope(|s| {
        let test = s.spawn(|| Split::from_idx((tei.0, &tei.1), (tel.0, &tel.1)));
        let train = Split::from_idx((tri.0, &tri.1), (trl.0, &trl.1));
        (train, test.join().expect("test-set decoder panicked"))
    });
    let (train, test) = (train?, test?);
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(DataError::Shape {
            path: tei.1.clone(),
            rows: test.rows,
            cols: test.cols,
            want_rows: train.rows,
            want_cols: train.cols,
        });
    }
    Ok(Dataset { train, test })
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
