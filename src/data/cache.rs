//! The decoded-folder cache: an image folder decoded once is stored as raw bytes, keyed by
//! every file's path, size and modification time and by the decoding options, so the next
//! run on the same folder starts at once. A cache file that is missing, stale, truncated or
//! corrupt is ignored (and rewritten): the cache can never make a load fail.
//!
//! Location: `$VAE_CACHE_DIR`, else `$XDG_CACHE_HOME/vae`, else `~/.cache/vae`.
//!
//! ```text
//! "VAEFOLD1" | key u64 LE | metadata length u64 LE | metadata JSON | labels [n] | images [n·P]
//! ```

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const MAGIC: &[u8; 8] = b"VAEFOLD1";

/// FNV-1a, 64 bits (Fowler, Noll & Vo): a stable hash of the listing and options.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x0100_0000_01b3);
        self
    }

    pub fn value(&self) -> u64 {
        self.0
    }
}

/// What is stored beside the pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: Vec<String>,
    /// Whether the folder has `train/` and `test/` (then `from_test` is the split).
    pub split_dirs: bool,
    /// Which folder split each image came from (`train/`, `test/`), if the folder has them.
    pub from_test: Vec<bool>,
    pub report: super::folder::Skipped,
}

/// The cache directory, if one can be named.
pub fn dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("VAE_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("vae")))
        .or_else(|| env("HOME").map(|h| h.join(".cache").join("vae")))
}

fn path(key: u64) -> Option<PathBuf> {
    dir().map(|d| d.join(format!("folder-{key:016x}.bin")))
}

/// The cached decode for `key`: metadata, labels and images, or `None`.
pub fn read(key: u64) -> Option<(Meta, Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(path(key)?).ok()?;
    let header = bytes.get(..24)?;
    if &header[..8] != MAGIC || u64::from_le_bytes(header[8..16].try_into().ok()?) != key {
        return None;
    }
    let meta_len = usize::try_from(u64::from_le_bytes(header[16..24].try_into().ok()?)).ok()?;
    let meta: Meta = serde_json::from_slice(bytes.get(24..24usize.checked_add(meta_len)?)?).ok()?;
    let n = meta.from_test.len();
    let pixels = meta.channels.checked_mul(meta.height)?.checked_mul(meta.width)?;
    let body = &bytes[24 + meta_len..];
    if body.len() != n.checked_mul(pixels)?.checked_add(n)? {
        return None;
    }
    let (labels, images) = body.split_at(n);
    // Unlabelled data has every label 0.
    if labels.iter().any(|&l| l as usize >= meta.classes.len().max(1)) {
        return None;
    }
    Some((meta, labels.to_vec(), images.to_vec()))
}

/// Stores a decode; failures (no home, read-only disk) only mean no cache next time.
pub fn write(key: u64, meta: &Meta, labels: &[u8], images: &[u8]) {
    let Some(path) = path(key) else { return };
    if let Some(parent) = path.parent()
        && std::fs::create_dir_all(parent).is_err()
    {
        return;
    }
    let json = serde_json::to_vec(meta).expect("metadata serialises");
    let mut bytes = Vec::with_capacity(24 + json.len() + labels.len() + images.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&key.to_le_bytes());
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(labels);
    bytes.extend_from_slice(images);
    let _ = crate::io::write_atomic(&path, &bytes);
}
