//! The IDX file format of MNIST (LeCun et al., <http://yann.lecun.com/exdb/mnist/>): a
//! big-endian header `0x00 0x00 <type> <rank>`, `rank` u32 dimensions, then the data.
//! We read unsigned-byte (`type = 0x08`) files of rank 1 (labels) and 3 (images), gzipped or
//! raw, and check every field before trusting it.

use std::io::Read;
use std::path::{Path, PathBuf};

/// What can be wrong with a data file. Every message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "cannot read {path}: {source} (check the path, or pass --data-dir DIR holding the four MNIST-format files)"
    )]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid gzip file: {source} (re-download or decompress it)")]
    Gzip { path: PathBuf, source: std::io::Error },
    #[error("{path} decompresses to more than {limit} bytes; no IDX file is that large (is it the right file?)")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path} is too short for an IDX header ({len} bytes); the file is truncated or not IDX")]
    TooShort { path: PathBuf, len: usize },
    #[error(
        "{path} has magic {magic:#010x}, expected {expected:#010x} (unsigned-byte IDX of rank {rank}); is this the right file?"
    )]
    Magic { path: PathBuf, magic: u32, expected: u32, rank: u8 },
    #[error("{path} has a zero dimension ({dims:?}); the file is empty or corrupt")]
    ZeroDim { path: PathBuf, dims: Vec<u32> },
    #[error("{path} is {actual} bytes but its header {dims:?} needs {expected}; the file is truncated or padded")]
    Length { path: PathBuf, dims: Vec<u32>, expected: usize, actual: usize },
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels; they must be a matching pair")]
    CountMismatch { images: PathBuf, n_images: usize, labels: PathBuf, n_labels: usize },
    #[error("{path} holds label {label} at index {index}; labels must be 0-9")]
    Label { path: PathBuf, label: u8, index: usize },
    #[error("{path} holds {shape} images but the training images are {want}; the two must match")]
    Shape { path: PathBuf, shape: crate::core::Shape, want: crate::core::Shape },
    #[error("{path}: {reason}")]
    Npy { path: PathBuf, reason: String },
    #[error("{0}")]
    Missing(String),
    #[error(transparent)]
    Folder(#[from] crate::data::folder::FolderError),
}

/// The most bytes a gzipped IDX file may decompress to (MNIST's largest is 47 MB): a
/// corrupt or hostile file that claims more is refused instead of filling memory.
pub const MAX_DECOMPRESSED: u64 = 4 << 30;

/// Decompresses `bytes` if they start with the gzip magic `1f 8b`; returns them as is otherwise.
///
/// # Errors
/// [`DataError::Gzip`] if the bytes start like gzip but do not decompress, and
/// [`DataError::TooLarge`] if they decompress to more than [`MAX_DECOMPRESSED`] bytes.
pub fn maybe_gunzip(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    gunzip_at_most(bytes, path, MAX_DECOMPRESSED)
}

/// [`maybe_gunzip`] with the limit `limit`.
///
/// # Errors
/// As [`maybe_gunzip`], with `limit` in place of [`MAX_DECOMPRESSED`].
pub fn gunzip_at_most(bytes: &[u8], path: &Path, limit: u64) -> Result<Vec<u8>, DataError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(5).min(limit as usize));
    flate2::read::GzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip { path: path.to_owned(), source })?;
    if out.len() as u64 > limit {
        return Err(DataError::TooLarge { path: path.to_owned(), limit });
    }
    Ok(out)
}

/// Parses an unsigned-byte IDX file of the given rank; returns its dimensions and data.
///
/// # Errors
/// [`DataError::TooShort`] if the header is cut off, [`DataError::Magic`] if the file is not
/// unsigned-byte IDX of `rank`, [`DataError::ZeroDim`] if a dimension is 0, and
/// [`DataError::Length`] if the data's length does not match the header.
pub fn parse(bytes: &[u8], rank: u8, path: &Path) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let header = 4 + 4 * rank as usize;
    if bytes.len() < header {
        return Err(DataError::TooShort { path: path.to_owned(), len: bytes.len() });
    }
    let word = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    let expected = 0x0000_0800 | rank as u32;
    let magic = word(0);
    if magic != expected {
        return Err(DataError::Magic { path: path.to_owned(), magic, expected, rank });
    }
    let dims32: Vec<u32> = (1..=rank as usize).map(word).collect();
    if dims32.contains(&0) {
        return Err(DataError::ZeroDim { path: path.to_owned(), dims: dims32 });
    }
    let dims: Vec<usize> = dims32.iter().map(|&d| d as usize).collect();
    let len = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let actual = bytes.len() - header;
    match len {
        Some(expected) if expected == actual => Ok((dims, bytes[header..].to_vec())),
        _ => Err(DataError::Length {
            path: path.to_owned(),
            dims: dims32,
            expected: len.map_or(usize::MAX, |l| l + header),
            actual: bytes.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(rank: u8, dims: &[u32], data_len: usize) -> Vec<u8> {
        let mut v = vec![0, 0, 8, rank];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend((0..data_len).map(|i| i as u8));
        v
    }

    #[test]
    fn parses_a_well_formed_image_file() {
        let (dims, data) = parse(&idx(3, &[2, 3, 4], 24), 3, Path::new("x")).unwrap();
        assert_eq!(dims, vec![2, 3, 4]);
        assert_eq!(data, (0..24).collect::<Vec<u8>>());
    }

    #[test]
    fn rejects_bad_files_with_a_message_naming_them() {
        let p = Path::new("train-images-idx3-ubyte");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0, 0, 8], "too short"),
            (idx(1, &[5], 50), "magic 0x00000801"),
            (idx(3, &[2, 3, 4], 23), "truncated"),
            (idx(3, &[2, 3, 4], 25), "truncated or padded"),
            (idx(3, &[0, 28, 28], 0), "zero dimension"),
            (idx(3, &[u32::MAX, u32::MAX, u32::MAX], 0), "needs"),
        ];
        for (bytes, want) in cases {
            let msg = parse(&bytes, 3, p).unwrap_err().to_string();
            assert!(msg.contains(want) && msg.contains("train-images-idx3-ubyte"), "{msg}");
        }
    }

    #[test]
    fn a_gzip_bomb_is_refused_at_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(gz.len() < 4096, "1 MiB of zeros compresses to {} bytes", gz.len());
        let p = Path::new("bomb.gz");
        assert_eq!(gunzip_at_most(&gz, p, 1 << 20).unwrap().len(), 1 << 20);
        let err = gunzip_at_most(&gz, p, (1 << 20) - 1).unwrap_err().to_string();
        assert!(err.contains("bomb.gz decompresses to more than 1048575 bytes"), "{err}");
    }

    #[test]
    fn gzip_is_detected_and_corruption_reported() {
        use std::io::Write;
        let raw = idx(1, &[3], 3);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(maybe_gunzip(&gz, Path::new("a.gz")).unwrap(), raw);
        assert_eq!(maybe_gunzip(&raw, Path::new("a")).unwrap(), raw);
        let broken = &gz[..gz.len() - 6];
        let msg = maybe_gunzip(broken, Path::new("a.gz")).unwrap_err().to_string();
        assert!(msg.contains("a.gz is not a valid gzip file"), "{msg}");
    }
}
