//! A folder of NumPy arrays as a dataset: `train-images.npy` (`uint8`, `[N, H, W]` or
//! `[N, C, H, W]` with C = 1 or 3), `train-labels.npy` (integers, `[N]`), the same two for the
//! test split, and optionally `classes.json` (the class names, a JSON list of strings). This
//! is how `vae.train` in Python hands its arrays to a run, and how a command-line user can
//! train on arrays saved with `np.save`.
//!
//! The reader accepts NumPy's format versions 1–3, C order, little-endian integers.

use super::{DataError, Dataset, MAX_CLASSES, Split};
use crate::core::Shape;
use std::path::{Path, PathBuf};

/// The files of an arrays folder, in the order train images, train labels, test images,
/// test labels.
pub const FILE_NAMES: [&str; 4] = ["train-images.npy", "train-labels.npy", "test-images.npy", "test-labels.npy"];

/// The optional class names of an arrays folder.
pub const CLASSES_FILE: &str = "classes.json";

/// Whether `dir` is an arrays folder (holds `train-images.npy`).
pub fn holds_arrays(dir: &Path) -> bool {
    dir.join(FILE_NAMES[0]).is_file()
}

/// One parsed `.npy`: its `descr` (e.g. `|u1`, `<i8`), shape, and data bytes.
#[derive(Debug)]
pub struct Npy<'a> {
    pub descr: String,
    pub shape: Vec<usize>,
    pub data: &'a [u8],
}

fn bad(path: &Path, why: impl Into<String>) -> DataError {
    DataError::Npy { path: path.to_owned(), reason: why.into() }
}

/// Parses a `.npy` file's header (format 1.0 to 3.0) and checks its data length.
///
/// # Errors
/// [`DataError::Npy`] if the magic, version or header is malformed, the array is in Fortran
/// order, or the data is shorter or longer than the header says.
pub fn parse<'a>(bytes: &'a [u8], path: &Path) -> Result<Npy<'a>, DataError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad(path, "not a .npy file (no \\x93NUMPY magic); save arrays with np.save"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize, 12),
        v => return Err(bad(path, format!("format version {v} is not one NumPy writes (1 to 3)"))),
    };
    let header =
        bytes.get(start..start + len).ok_or_else(|| bad(path, "the header is cut off; the file is truncated"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad(path, "the header is not text"))?;
    let field = |key: &str| -> Result<&str, DataError> {
        let at = header.find(&format!("'{key}':")).ok_or_else(|| bad(path, format!("the header has no '{key}'")))?;
        Ok(header[at + key.len() + 3..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr.strip_prefix('\'').and_then(|d| d.split('\'').next()).ok_or_else(|| bad(path, "bad 'descr'"))?;
    if field("fortran_order")?.starts_with("True") {
        return Err(bad(path, "the array is in Fortran order; save np.ascontiguousarray(x) instead"));
    }
    let shape = field("shape")?;
    let inner = shape.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or_else(|| bad(path, "bad 'shape'"))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad(path, format!("bad dimension {s:?} in 'shape'"))))
        .collect::<Result<Vec<_>, _>>()?;
    let width = element_bytes(descr).ok_or_else(|| {
        bad(path, format!("holds dtype {descr}; images must be uint8 and labels integers (x.astype(np.uint8))"))
    })?;
    let data = &bytes[start + len..];
    let want = shape.iter().product::<usize>() * width;
    if data.len() != want {
        return Err(bad(path, format!("its shape {shape:?} needs {want} data bytes but it holds {}", data.len())));
    }
    Ok(Npy { descr: descr.to_string(), shape, data })
}

/// Bytes per element of the integer dtypes read here.
fn element_bytes(descr: &str) -> Option<usize> {
    match descr {
        "|u1" | "|i1" => Some(1),
        "<u2" | "<i2" => Some(2),
        "<u4" | "<i4" => Some(4),
        "<u8" | "<i8" => Some(8),
        _ => None,
    }
}

/// The integer at index `i` of `a`, as i64 (u64 values past i64 wrap to negatives, which the
/// label check then refuses).
fn integer(a: &Npy, i: usize) -> i64 {
    let w = element_bytes(&a.descr).expect("checked by parse");
    let b = &a.data[i * w..(i + 1) * w];
    let signed = a.descr.as_bytes()[1] == b'i';
    match (w, signed) {
        (1, false) => b[0] as i64,
        (1, true) => b[0] as i8 as i64,
        (2, false) => u16::from_le_bytes([b[0], b[1]]) as i64,
        (2, true) => i16::from_le_bytes([b[0], b[1]]) as i64,
        (4, false) => u32::from_le_bytes(b.try_into().expect("4")) as i64,
        (4, true) => i32::from_le_bytes(b.try_into().expect("4")) as i64,
        _ => i64::from_le_bytes(b.try_into().expect("8")),
    }
}

/// Reads one split: images `[N, H, W]` or `[N, C, H, W]` of `uint8`, labels `[N]`.
fn split(dir: &Path, images: &str, labels: &str) -> Result<Split, DataError> {
    let (ipath, lpath) = (dir.join(images), dir.join(labels));
    let read = |p: &PathBuf| std::fs::read(p).map_err(|source| DataError::Io { path: p.clone(), source });
    let (ibytes, lbytes) = (read(&ipath)?, read(&lpath)?);
    let im = parse(&ibytes, &ipath)?;
    if im.descr != "|u1" {
        return Err(bad(&ipath, format!("holds dtype {}; images must be uint8 (0–255)", im.descr)));
    }
    let shape = match im.shape[..] {
        [_, h, w] => Shape::new(1, h, w),
        [_, c @ (1 | 3), h, w] => Shape::new(c, h, w),
        _ => {
            return Err(bad(
                &ipath,
                format!("has shape {:?}; images must be [N, H, W] or [N, C, H, W] with C = 1 or 3", im.shape),
            ));
        }
    };
    if shape.height == 0 || shape.width == 0 {
        return Err(bad(&ipath, format!("has shape {:?}: its images are empty", im.shape)));
    }
    let lab = parse(&lbytes, &lpath)?;
    if lab.shape.len() != 1 {
        return Err(bad(&lpath, format!("has shape {:?}; labels must be one integer per image, [N]", lab.shape)));
    }
    let n = im.shape[0];
    if lab.shape[0] != n {
        return Err(DataError::CountMismatch { images: ipath, n_images: n, labels: lpath, n_labels: lab.shape[0] });
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let v = integer(&lab, i);
        if !(0..MAX_CLASSES as i64).contains(&v) {
            return Err(bad(&lpath, format!("holds label {v} at index {i}; labels must be 0 to {}", MAX_CLASSES - 1)));
        }
        out.push(v as u8);
    }
    Ok(Split { images: im.data.to_vec(), labels: out, shape })
}

/// Loads an arrays folder; the class names are `classes.json`'s, or "0", "1", … up to the
/// largest label.
///
/// # Errors
/// [`DataError::Io`] if a file cannot be read, [`DataError::Npy`] if one is malformed or
/// holds the wrong dtype or shape, [`DataError::CountMismatch`] if a split's images and labels
/// differ in number, [`DataError::Shape`] if the two splits' images differ in shape, and
/// [`DataError::Missing`] if `classes.json` is malformed or names fewer classes than a label
/// needs.
pub fn load(dir: &Path) -> Result<Dataset, DataError> {
    let [ti, tl, ei, el] = FILE_NAMES;
    for name in FILE_NAMES {
        if !dir.join(name).is_file() {
            return Err(DataError::Missing(format!(
                "{} is missing {name}; an arrays folder holds all of {}",
                dir.display(),
                FILE_NAMES.join(", ")
            )));
        }
    }
    let train = split(dir, ti, tl)?;
    let test = split(dir, ei, el)?;
    if train.shape != test.shape {
        return Err(DataError::Shape { path: dir.join(ei), shape: test.shape, want: train.shape });
    }
    let largest = train.labels.iter().chain(&test.labels).copied().max().unwrap_or(0) as usize;
    let path = dir.join(CLASSES_FILE);
    let classes: Vec<String> = if path.is_file() {
        let text = std::fs::read(&path).map_err(|source| DataError::Io { path: path.clone(), source })?;
        let names: Vec<String> = serde_json::from_slice(&text)
            .map_err(|e| DataError::Missing(format!("{} is not a JSON list of class names ({e})", path.display())))?;
        if names.len() <= largest {
            return Err(DataError::Missing(format!(
                "{} names {} classes but a label is {largest}; name every class",
                path.display(),
                names.len()
            )));
        }
        names
    } else {
        (0..=largest).map(|c| c.to_string()).collect()
    };
    let files = FILE_NAMES
        .iter()
        .chain(path.is_file().then_some(&CLASSES_FILE))
        .map(|name| {
            let p = dir.join(name);
            let bytes = std::fs::read(&p).map_err(|source| DataError::Io { path: p.clone(), source })?;
            Ok(super::record::FileRecord::of(dir, &p, &bytes))
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    Ok(Dataset { train, test, classes, files: Some(super::record::FileList { files }) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{npy_i64, npy_u8_shaped};

    fn write(dir: &Path, train: (&[usize], &[u8], &[i64]), test: (&[usize], &[u8], &[i64])) {
        std::fs::write(dir.join(FILE_NAMES[0]), npy_u8_shaped(train.0, train.1)).unwrap();
        std::fs::write(dir.join(FILE_NAMES[1]), npy_i64(train.2)).unwrap();
        std::fs::write(dir.join(FILE_NAMES[2]), npy_u8_shaped(test.0, test.1)).unwrap();
        std::fs::write(dir.join(FILE_NAMES[3]), npy_i64(test.2)).unwrap();
    }

    #[test]
    fn round_trip_of_colour_arrays_with_names() {
        let dir = tempfile::tempdir().unwrap();
        let train: Vec<u8> = (0..2 * 3 * 2 * 2).map(|v| v as u8).collect();
        write(dir.path(), (&[2, 3, 2, 2], &train, &[0, 2]), (&[1, 3, 2, 2], &train[..12], &[1]));
        std::fs::write(dir.path().join(CLASSES_FILE), r#"["cat", "dog", "owl"]"#).unwrap();
        assert!(holds_arrays(dir.path()));
        let d = load(dir.path()).unwrap();
        assert_eq!(d.train.shape, Shape::new(3, 2, 2));
        assert_eq!(d.train.images, train);
        assert_eq!(d.train.labels, vec![0, 2]);
        assert_eq!(d.test.labels, vec![1]);
        assert_eq!(d.classes, vec!["cat", "dog", "owl"]);
        assert_eq!(d.files.unwrap().files.len(), 5);
    }

    #[test]
    fn grey_arrays_name_classes_by_number() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), (&[2, 1, 1], &[0, 255], &[3, 0]), (&[1, 1, 1], &[7], &[1]));
        let d = load(dir.path()).unwrap();
        assert_eq!(d.train.shape, Shape::new(1, 1, 1));
        assert_eq!(d.classes, vec!["0", "1", "2", "3"]);
    }

    #[test]
    fn bad_arrays_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let err = |p: &Path| load(p).unwrap_err().to_string();
        write(p, (&[2, 1, 1], &[0, 1], &[0]), (&[1, 1, 1], &[7], &[1]));
        assert!(err(p).contains("holds 2 images") && err(p).contains("train-labels.npy"), "{}", err(p));
        write(p, (&[2, 1, 1], &[0, 1], &[0, 300]), (&[1, 1, 1], &[7], &[1]));
        assert!(err(p).contains("label 300 at index 1"), "{}", err(p));
        write(p, (&[2, 2, 1, 1], &[0, 1, 2, 3], &[0, 1]), (&[1, 1, 1], &[7], &[1]));
        assert!(err(p).contains("C = 1 or 3"), "{}", err(p));
        write(p, (&[2, 1, 1], &[0, 1], &[0, 1]), (&[1, 2, 1], &[7, 8], &[1]));
        assert!(err(p).contains("must match"), "{}", err(p));
        let f32s = crate::export::npy(&[2, 1, 1], &[0.0, 1.0]);
        std::fs::write(p.join(FILE_NAMES[0]), &f32s).unwrap();
        assert!(err(p).contains("dtype <f4") && err(p).contains("uint8"), "{}", err(p));
        let bytes = npy_u8_shaped(&[2, 1, 1], &[0, 1]);
        std::fs::write(p.join(FILE_NAMES[0]), &bytes[..bytes.len() - 1]).unwrap();
        assert!(err(p).contains("needs 2 data bytes but it holds 1"), "{}", err(p));
        std::fs::write(p.join(FILE_NAMES[0]), b"not numpy").unwrap();
        assert!(err(p).contains("not a .npy file"), "{}", err(p));
        std::fs::remove_file(p.join(FILE_NAMES[3])).unwrap();
        assert!(err(p).contains("missing test-labels.npy"), "{}", err(p));
    }

    #[test]
    fn class_names_must_cover_every_label() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), (&[2, 1, 1], &[0, 1], &[0, 2]), (&[1, 1, 1], &[7], &[1]));
        std::fs::write(dir.path().join(CLASSES_FILE), r#"["a", "b"]"#).unwrap();
        assert!(load(dir.path()).unwrap_err().to_string().contains("names 2 classes but a label is 2"));
    }
}
