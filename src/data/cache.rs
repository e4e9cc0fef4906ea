//! The decoded-folder cache: an image folder decoded once is stored as raw bytes, keyed by
//! every file's path, size and modification time and by the decoding options, so the next
//! run on the same folder starts at once. A cache file that is missing, stale, truncated or
//! corrupt is ignored (and rewritten): the cache can never make a load fail.
//!
//! Location: `$VAE_CACHE_DIR`, else `$XDG_CACHE_HOME/vae`, else `~/.cache/vae`. It keeps to
//! `$VAE_CACHE_LIMIT_MB` (default [`DEFAULT_LIMIT_MB`], 2 GB): after each write the least
//! recently used entries go first (a read marks an entry used). `vae cache` lists and
//! clears it.
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
    /// The file of each image, in order.
    pub files: Vec<super::record::FileRecord>,
}

/// The cache directory, if one can be named.
pub fn dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("VAE_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("vae")))
        .or_else(|| env("HOME").map(|h| h.join(".cache").join("vae")))
}

/// The cache's size limit when `VAE_CACHE_LIMIT_MB` is not set, in MB.
pub const DEFAULT_LIMIT_MB: u64 = 2048;

/// The size limit in bytes: `$VAE_CACHE_LIMIT_MB` MB (an unreadable value counts as unset).
pub fn limit_bytes() -> u64 {
    let mb = std::env::var("VAE_CACHE_LIMIT_MB").ok().and_then(|v| v.trim().parse::<u64>().ok());
    mb.unwrap_or(DEFAULT_LIMIT_MB).saturating_mul(1 << 20)
}

/// One cached decode.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: PathBuf,
    pub bytes: u64,
    /// When it was last written or read.
    pub used: std::time::SystemTime,
}

/// The entries in `dir`, least recently used first.
pub fn entries_in(dir: &std::path::Path) -> Vec<Entry> {
    let Ok(list) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<Entry> = list
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("folder-") && name.ends_with(".bin")
        })
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file().then(|| Entry {
                path: e.path(),
                bytes: m.len(),
                used: m.modified().unwrap_or(std::time::UNIX_EPOCH),
            })
        })
        .collect();
    out.sort_by_key(|e| (e.used, e.path.clone()));
    out
}

/// Removes the least recently used entries of `dir` until they total at most `limit` bytes,
/// never `keep` (the entry just written). Returns the entries removed.
pub fn prune(dir: &std::path::Path, limit: u64, keep: &std::path::Path) -> Vec<Entry> {
    let entries = entries_in(dir);
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut removed = Vec::new();
    for e in entries {
        if total <= limit {
            break;
        }
        if e.path != keep && std::fs::remove_file(&e.path).is_ok() {
            total -= e.bytes;
            removed.push(e);
        }
    }
    removed
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
    // Mark it used, so the size limit removes others first.
    if let Some(p) = path(key)
        && let Ok(f) = std::fs::File::options().append(true).open(p)
    {
        let _ = f.set_modified(std::time::SystemTime::now());
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
    if crate::io::write_atomic(&path, &bytes).is_ok()
        && let Some(dir) = path.parent()
    {
        prune(dir, limit_bytes(), &path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// An entry of `mb` MB last used `age` seconds after the epoch.
    fn entry(dir: &std::path::Path, name: &str, mb: usize, age: u64) -> PathBuf {
        let p = dir.join(format!("folder-{name}.bin"));
        std::fs::write(&p, vec![0u8; mb << 20]).unwrap();
        std::fs::File::options()
            .append(true)
            .open(&p)
            .unwrap()
            .set_modified(UNIX_EPOCH + Duration::from_secs(age))
            .unwrap();
        p
    }

    #[test]
    fn the_least_recently_used_entries_go_first_down_to_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let (old, mid, new) = (entry(d, "a", 3, 100), entry(d, "b", 3, 200), entry(d, "c", 3, 300));
        std::fs::write(d.join("notes.txt"), b"not ours").unwrap();
        assert_eq!(
            entries_in(d).iter().map(|e| e.path.clone()).collect::<Vec<_>>(),
            vec![old.clone(), mid.clone(), new.clone()]
        );
        // 9 MB against a 7 MB limit: the oldest goes.
        let removed = prune(d, 7 << 20, &new);
        assert_eq!(removed.iter().map(|e| e.path.clone()).collect::<Vec<_>>(), vec![old.clone()]);
        assert!(!old.exists() && mid.exists() && new.exists() && d.join("notes.txt").exists());
        // A limit below the newest alone: all but the one kept go.
        prune(d, 0, &new);
        assert!(!mid.exists() && new.exists());
        assert_eq!(entries_in(d).len(), 1);
    }
}
