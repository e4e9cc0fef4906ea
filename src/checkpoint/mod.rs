//! The run directory: its configuration, weights, optimizer state and metrics.
//!
//! ```text
//! RUN_DIR/config.json              RunConfig: the model and how it was trained
//! RUN_DIR/model.safetensors        weights, PyTorch names and [out, in] layouts
//! RUN_DIR/train-state.safetensors  params + Adam moments + epoch/step: what --resume reads
//! RUN_DIR/metrics.jsonl            one EpochMetrics record per completed epoch
//! RUN_DIR/samples/epoch-NNN.png    a 10×10 sample grid per epoch (about 100 of them in longer runs)
//! ```
//!
//! Every file is written atomically (temporary file, fsync, rename). Per epoch the order is
//! metrics, weights, then train state: the train state is the commit point, and resuming
//! drops metric records past it, so killing the process at any moment leaves the last
//! completed epoch loadable.
//!
//! One concern per file: [`RunConfig`] (`config`), the [`RunDir`] API (`rundir`), the weights'
//! safetensors I/O (`tensors`), the train state `--resume` reads (`state`), and what a
//! directory is (`dirkind`).

mod config;
pub mod dirkind;
mod rundir;
mod state;
mod tensors;

pub use config::{RunConfig, find_label};
use dirkind::DirKind;
pub use rundir::RunDir;
pub use state::{TrainState, state_bytes, state_from_bytes};
use std::path::{Path, PathBuf};
pub use tensors::{model_bytes, model_from_bytes, tensors_bytes, tensors_from_bytes};

pub const CONFIG_FILE: &str = "config.json";
pub const MODEL_FILE: &str = "model.safetensors";
pub const STATE_FILE: &str = "train-state.safetensors";
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The files a run's images were read from ([`crate::data::record`]).
pub const DATA_FILES: &str = "data-files.tsv";

/// What went wrong with a run directory. Messages name the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0} is not a run directory (no config.json); pass a directory made by `vae train`")]
    NotARun(PathBuf),
    #[error("{dir} holds no classifier (no config.json); train one with `vae classifier train --out {dir}`", dir = .0.display())]
    NoClassifier(PathBuf),
    #[error("{0} has no {MODEL_FILE}: the run has not completed an epoch yet; train it (`vae train --resume {dir}`) or pick another run", dir = .0.display())]
    NoWeights(PathBuf),
    #[error("{0} has no {STATE_FILE} to resume from; start a new run with `vae train`")]
    NoState(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source} (is the disk full or the directory read-only?)")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is corrupt: {reason}; restore it from a backup or retrain the run")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{dir} is {} directory, not {}; pass one made by `{}`",
        found.describe(), expected.describe(), expected.made_by(), dir = dir.display()
    )]
    WrongKind { dir: PathBuf, found: DirKind, expected: DirKind },
    #[error(
        "{0} holds a config.json that vae did not write; pass a directory made by `vae train` (or an empty one for new work)"
    )]
    Foreign(PathBuf),
}

impl CheckpointError {
    pub(crate) fn corrupt(path: &Path, reason: impl std::fmt::Display) -> CheckpointError {
        CheckpointError::Corrupt { path: path.to_owned(), reason: reason.to_string() }
    }
}

pub use crate::metrics::EpochMetrics;

pub use crate::io::write_atomic;

pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    write_atomic(path, bytes).map_err(|source| CheckpointError::Write { path: path.to_owned(), source })
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    std::fs::read(path).map_err(|source| CheckpointError::Read { path: path.to_owned(), source })
}
