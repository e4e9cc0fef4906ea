//! Files written so that a crash never leaves half of one: every file `vae` writes goes
//! through [`write_atomic`].

use std::io::Write;
use std::path::Path;

/// The temporary name [`write_atomic`] writes `name` under, in the same directory:
/// `.NAME.tmp-PID-SUFFIX`, the suffix unique within the process (a counter mixed with the
/// clock), so two threads writing the same file never share a temporary.
fn temp_name(name: &str, pid: u32) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!(".{name}.tmp-{pid}-{n}x{nanos:08x}")
}

/// Creates `path` for writing, failing if anything (a file, a symbolic link) is already
/// there: `O_EXCL`, so a planted link is never followed.
fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync,
/// rename over the target, then fsync of the directory so the rename itself is durable.
///
/// # Errors
/// The I/O error of creating, writing, syncing or renaming the temporary file, which is then
/// removed; a directory that cannot be synced is no error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(temp_name(&name, std::process::id()));
    let result = (|| {
        let mut f = create_new(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // Best effort: some file systems cannot open or sync a directory.
    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

/// Whether [`write_atomic`] could write `path`, checked before long work so that a result is
/// not computed for nothing: a probe file is created and removed in its directory.
///
/// # Errors
/// The I/O error of creating the probe (permission denied, no such directory, read-only file
/// system), or `IsADirectory` if `path` is a directory.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, "it is a directory"));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let probe = dir.join(temp_name("write-probe", std::process::id()));
    create_new(&probe)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Removes the temporary files that processes killed inside [`write_atomic`] left in `dir`
/// (those of processes no longer alive; Linux's `/proc` tells). Returns how many went.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `.NAME.tmp-PID-SUFFIX`, or `.NAME.tmp-PID` as earlier versions named them.
        let pid_of = |tail: &str| tail.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp-")).and_then(|(_, t)| pid_of(t)) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists() || !Path::new("/proc/self").exists();
        if pid != std::process::id() && !alive && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.json"], "no temporary file left");
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A pid above the kernel's maximum (4194304) is never alive.
        let dead = dir.path().join(temp_name("model.safetensors", 9_999_999));
        let mine = dir.path().join(temp_name("config.json", std::process::id()));
        let other = dir.path().join(".hidden.tmp-notapid");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        let old_style = dir.path().join(".metrics.jsonl.tmp-9999998");
        std::fs::write(&old_style, b"x").unwrap();
        assert_eq!(remove_stale_temps(dir.path()), 2);
        assert!(!dead.exists() && !old_style.exists() && mine.exists() && other.exists());
    }

    /// Temporary names never repeat within a process, and a link planted where the
    /// temporary goes is not followed: the write fails and the link's target is untouched.
    #[test]
    #[cfg(unix)]
    fn temporaries_are_unique_and_never_follow_links() {
        let names: std::collections::HashSet<String> = (0..1000).map(|_| temp_name("a", 1)).collect();
        assert_eq!(names.len(), 1000);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_new(&link).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        // Threads writing one file at once each finish with a whole file.
        let path = dir.path().join("shared.json");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let path = &path;
                s.spawn(move || write_atomic(path, &[t; 1000]).unwrap());
            }
        });
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() == 1000 && bytes.iter().all(|&b| b == bytes[0]));
    }
}
