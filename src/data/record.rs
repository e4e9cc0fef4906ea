//! What a run's images were read from: each file's path (relative to the data folder), size
//! and content hash, in the order the images were read. `vae train` keeps it in the run
//! directory (`data-files.tsv`), so a later command can tell whether a folder, wherever it is
//! now, still holds the same images, and say what changed.
//!
//! One line per file, its three fields separated by tabs:
//!
//! ```text
//! # vae data files: bytes, FNV-1a 64 of the contents, path relative to the data folder
//! 5120 9f2c0e51d3a77b10 cat/0001.png
//! ```

use super::cache::Fnv;
use std::collections::HashMap;
use std::path::Path;

/// One image file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileRecord {
    /// Relative to the data folder, components joined by `/`.
    pub path: String,
    pub bytes: u64,
    /// FNV-1a (64 bits) of the file's contents.
    pub hash: u64,
}

impl FileRecord {
    /// The record of `contents`, read from `path` under `root`.
    pub fn of(root: &Path, path: &Path, contents: &[u8]) -> FileRecord {
        let rel = path.strip_prefix(root).unwrap_or(path);
        let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        FileRecord { path: parts.join("/"), bytes: contents.len() as u64, hash: content_hash(contents) }
    }
}

/// FNV-1a of a file's bytes, 8 at a time for speed (a different function from [`Fnv`]'s
/// byte-wise one, which keys the cache: this one only ever compares with itself).
pub fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = Fnv::default().value();
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = (h ^ u64::from_le_bytes(c.try_into().expect("8 bytes"))).wrapping_mul(0x0100_0000_01b3);
    }
    for &b in chunks.remainder() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The files of a dataset, in the order its images were read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileList {
    pub files: Vec<FileRecord>,
}

/// How two file lists differ, by relative path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Difference {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    /// A few of the paths, with what happened to each.
    pub examples: Vec<String>,
}

const HEADER: &str = "# vae data files: bytes, FNV-1a 64 of the contents, path relative to the data folder";

impl Difference {
    pub fn is_empty(&self) -> bool {
        self.added + self.removed + self.changed == 0
    }

    /// `2 added, 1 removed, 1 changed (b.png added, …)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [(self.added, "added"), (self.removed, "removed"), (self.changed, "changed")] {
            if n > 0 {
                parts.push(format!("{} {what}", crate::text::plural(n, "file")));
            }
        }
        format!("{} ({})", parts.join(", "), self.examples.join(", "))
    }
}

impl FileList {
    /// The text of `data-files.tsv`.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(40 * self.files.len() + HEADER.len() + 1);
        s.push_str(HEADER);
        s.push('\n');
        for f in &self.files {
            s.push_str(&format!("{}\t{:016x}\t{}\n", f.bytes, f.hash, f.path));
        }
        s
    }

    /// Parses [`FileList::to_text`]'s output.
    ///
    /// # Errors
    /// A message naming the line that is not `bytes<TAB>hash<TAB>path`.
    pub fn from_text(text: &str) -> Result<FileList, String> {
        let mut files = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let mut parts = line.splitn(3, '\t');
            let parsed = (|| {
                let bytes = parts.next()?.parse().ok()?;
                let hash = u64::from_str_radix(parts.next()?, 16).ok()?;
                Some(FileRecord { bytes, hash, path: parts.next()?.to_string() })
            })();
            files.push(parsed.ok_or_else(|| format!("line {} is not bytes, hash and path separated by tabs", i + 1))?);
        }
        Ok(FileList { files })
    }

    /// What `now` has that `self` (the record) lacks, and the reverse, by path; a file whose
    /// size or contents differ is changed.
    pub fn compare(&self, now: &FileList) -> Difference {
        let before: HashMap<&str, &FileRecord> = self.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let after: HashMap<&str, &FileRecord> = now.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let mut d = Difference::default();
        let note = |d: &mut Difference, path: &str, what: &str| {
            if d.examples.len() < 3 {
                d.examples.push(format!("{path} {what}"));
            }
        };
        for f in &now.files {
            match before.get(f.path.as_str()) {
                None => {
                    d.added += 1;
                    note(&mut d, &f.path, "added");
                }
                Some(old) if (old.bytes, old.hash) != (f.bytes, f.hash) => {
                    d.changed += 1;
                    note(&mut d, &f.path, "changed");
                }
                Some(_) => {}
            }
        }
        for f in self.files.iter().filter(|f| !after.contains_key(f.path.as_str())) {
            d.removed += 1;
            note(&mut d, &f.path, "removed");
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str, contents: &[u8]) -> FileRecord {
        FileRecord::of(Path::new("/data"), &Path::new("/data").join(path), contents)
    }

    #[test]
    fn text_round_trips_paths_with_spaces_and_tabs_last() {
        let list = FileList { files: vec![rec("cat/a b.png", b"abc"), rec("dog/\u{e9}t\u{e9}.jpg", b"")] };
        assert_eq!(list.files[0].path, "cat/a b.png");
        assert_eq!(list.files[0].bytes, 3);
        let text = list.to_text();
        assert!(text.starts_with("# vae data files"));
        assert_eq!(FileList::from_text(&text).unwrap(), list);
        assert!(FileList::from_text("12\tzz\ta.png\n").unwrap_err().contains("line 1"));
        assert!(FileList::from_text("# header\n12\t0f\n").unwrap_err().contains("line 2"));
    }

    #[test]
    fn compare_counts_added_removed_and_changed_files() {
        let before = FileList { files: vec![rec("a.png", b"1"), rec("b.png", b"2"), rec("c.png", b"3")] };
        assert!(before.compare(&before.clone()).is_empty());
        // Same size, other contents: the hash tells.
        let after = FileList { files: vec![rec("a.png", b"1"), rec("c.png", b"4"), rec("d.png", b"5")] };
        let d = before.compare(&after);
        assert_eq!((d.added, d.removed, d.changed), (1, 1, 1));
        assert_eq!(
            d.describe(),
            "1 file added, 1 file removed, 1 file changed (c.png changed, d.png added, b.png removed)"
        );
    }

    /// The 8-byte-at-a-time hash: the empty input is FNV's offset basis; one byte is the
    /// FNV-1a step; any byte of a longer input changes it.
    #[test]
    fn content_hash_sees_every_byte() {
        assert_eq!(content_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(content_hash(b"a"), (0xcbf2_9ce4_8422_2325u64 ^ 0x61).wrapping_mul(0x0100_0000_01b3));
        let base: Vec<u8> = (0..19).collect();
        for i in 0..base.len() {
            let mut other = base.clone();
            other[i] ^= 1;
            assert_ne!(content_hash(&base), content_hash(&other), "byte {i}");
        }
    }
}
