//! One writer per directory: an advisory lock (`flock`) on `DIR/.vae.lock`, held for as long
//! as a command writes there. The kernel releases it when the process exits, however it
//! exits (SIGKILL included), so a lock file left behind by a dead process never blocks
//! anyone: only a live holder does. The holder's process id is written into the file for
//! the error message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".vae.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{dir} is in use by another vae process{holder}; wait for it to finish (or stop it) before writing here",
        dir = .dir.display(),
        holder = .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Busy { dir: PathBuf, pid: Option<u32> },
    #[error("cannot lock {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The lock of one directory; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist) without waiting.
    ///
    /// # Errors
    /// [`LockError::Busy`] when a live process holds it, [`LockError::Io`] when the lock
    /// file cannot be opened. A file system without `flock` support gives no lock and no
    /// error: the directory is then as unguarded as it was before locks existed.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io { path: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Busy { dir: dir.to_owned(), pid: text.trim().parse().ok() });
            }
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Best effort: the pid only improves the message another process prints.
        let _ = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| write!(file, "{}", std::process::id()));
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        // A second open file description in the same process conflicts as another process's would.
        let err = DirLock::acquire(dir.path()).unwrap_err();
        match &err {
            LockError::Busy { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("in use by another vae process"), "{err}");
        drop(first);
        let _again = DirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_lock_file_left_behind_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "999999").unwrap();
        let _lock = DirLock::acquire(dir.path()).unwrap();
        let pid: u32 = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap().parse().unwrap();
        assert_eq!(pid, std::process::id());
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = DirLock::acquire(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
    }
}
