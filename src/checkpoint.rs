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

pub mod dirkind;

use crate::core::AdamState;
use crate::model::{Model, ModelConfig, Network, TensorInfo};
use crate::train::TrainConfig;
use dirkind::DirKind;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
    fn corrupt(path: &Path, reason: impl std::fmt::Display) -> CheckpointError {
        CheckpointError::Corrupt { path: path.to_owned(), reason: reason.to_string() }
    }
}

/// Everything that defines a run; written before the first step, read by every command
/// that rebuilds the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Always [`DirKind::VaeRun`]: what the directory is (see `dirkind`).
    #[serde(default = "crate::checkpoint::dirkind::vae_run")]
    pub kind: DirKind,
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// The `vae` version that created the run.
    pub version: String,
}

/// The class `spec` names among `names`: its number (`3`) or its name in any case (`Cat`).
pub fn find_label(names: &[String], spec: &str) -> Option<u8> {
    let spec = spec.trim();
    match spec.parse::<usize>() {
        Ok(i) if i < names.len() => Some(i as u8),
        _ => names.iter().position(|n| n.eq_ignore_ascii_case(spec)).map(|i| i as u8),
    }
}

impl RunConfig {
    /// Whether pictures given to this run are digits to prepare as MNIST was (28×28 grey
    /// models of MNIST-format data), rather than photos to resize.
    pub fn digit_pictures(&self) -> bool {
        use crate::data::Source;
        self.model.shape() == crate::core::Shape::mnist()
            && matches!(self.train.dataset, Source::Mnist | Source::Dir(_))
    }

    /// How a user's picture is made into this run's input: as MNIST's digits for a digit
    /// model, else as its image folder's pictures were (their `--background`; white for IDX
    /// data of other shapes).
    pub fn picture_preparation(&self) -> crate::images::Preparation {
        use crate::images::Preparation;
        if self.digit_pictures() {
            return Preparation::Digits;
        }
        let background = match &self.train.dataset {
            crate::data::Source::Folder(f) => f.background,
            _ => crate::data::Background::White,
        };
        Preparation::Photo { background }
    }

    /// The classes' names: the image folder's, or the IDX dataset's (digits, clothes).
    pub fn class_names(&self) -> Vec<String> {
        if !self.model.class_names.is_empty() {
            return self.model.class_names.clone();
        }
        let names = self.train.dataset.idx_class_names().unwrap_or_default();
        if names.len() == self.model.classes { names } else { (0..self.model.classes).map(|c| c.to_string()).collect() }
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

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn tensor_f32(st: &SafeTensors, name: &str, shape: &[usize], path: &Path) -> Result<Vec<f32>, CheckpointError> {
    let t = st.tensor(name).map_err(|_| CheckpointError::corrupt(path, format!("tensor {name} is missing")))?;
    if t.dtype() != Dtype::F32 || t.shape() != shape {
        return Err(CheckpointError::corrupt(
            path,
            format!("tensor {name} is {:?} {:?}, expected F32 {shape:?}", t.dtype(), t.shape()),
        ));
    }
    Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

fn metadata(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>, CheckpointError> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::corrupt(path, e))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

fn meta_number(meta: &HashMap<String, String>, key: &str, path: &Path) -> Result<u64, CheckpointError> {
    meta.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CheckpointError::corrupt(path, format!("metadata `{key}` is missing")))
}

/// A run directory on disk.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

/// What `--resume` restores.
pub struct TrainState {
    pub model: Model,
    pub adam: AdamState,
    /// Completed epochs.
    pub epoch: usize,
}

impl RunDir {
    /// The run directory at `path` (nothing is read or created until a method asks).
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    /// The path of the file `name` in the run directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `samples/`: the per-epoch sample grids and `vae sample`'s pictures.
    pub fn samples_dir(&self) -> PathBuf {
        self.path.join("samples")
    }

    /// Creates the directory (and `samples/`).
    ///
    /// # Errors
    /// [`CheckpointError::Write`] if the directory or its `samples/` cannot be created.
    pub fn create(&self) -> Result<(), CheckpointError> {
        std::fs::create_dir_all(self.samples_dir())
            .map_err(|source| CheckpointError::Write { path: self.samples_dir(), source })
    }

    /// Writes `config.json` (atomically, replacing any earlier one).
    ///
    /// # Errors
    /// [`CheckpointError::Write`] if the file cannot be written.
    pub fn save_config(&self, config: &RunConfig) -> Result<(), CheckpointError> {
        let json = serde_json::to_string_pretty(config).expect("config serialises");
        write(&self.file(CONFIG_FILE), format!("{json}\n").as_bytes())
    }

    /// Reads `config.json` and checks its model settings.
    ///
    /// # Errors
    /// [`CheckpointError::NotARun`] if the directory has no `config.json`,
    /// [`CheckpointError::WrongKind`] or [`CheckpointError::Foreign`] if it holds another kind's or
    /// one `vae` did not write, [`CheckpointError::Read`] if it cannot be read, and
    /// [`CheckpointError::Corrupt`] if it is not a valid run config or its model settings are
    /// invalid.
    pub fn load_config(&self) -> Result<RunConfig, CheckpointError> {
        let path = self.file(CONFIG_FILE);
        if DirKind::VaeRun.expect(&self.path)?.is_none() {
            return Err(CheckpointError::NotARun(self.path.clone()));
        }
        let text = read(&path)?;
        let config: RunConfig = serde_json::from_slice(&text).map_err(|e| CheckpointError::corrupt(&path, e))?;
        config.model.validate().map_err(|e| CheckpointError::corrupt(&path, e))?;
        Ok(config)
    }

    /// Saves the weights under PyTorch's names and shapes.
    ///
    /// # Errors
    /// [`CheckpointError::Write`] if `model.safetensors` cannot be written.
    pub fn save_model(&self, model: &Model, epoch: usize) -> Result<(), CheckpointError> {
        let bytes = model_bytes(model, epoch);
        write(&self.file(MODEL_FILE), &bytes)
    }

    /// Loads the run's config and weights; the weights' names and shapes must match it.
    ///
    /// # Errors
    /// The errors of [`RunDir::load_config`]; [`CheckpointError::NoWeights`] if `model.safetensors`
    /// does not exist, [`CheckpointError::Read`] if it cannot be read, and
    /// [`CheckpointError::Corrupt`] if it is not valid safetensors or a tensor is missing, has the
    /// wrong shape or holds NaN or infinite values.
    pub fn load_model(&self) -> Result<(RunConfig, Model), CheckpointError> {
        let config = self.load_config()?;
        let path = self.file(MODEL_FILE);
        if !path.is_file() {
            return Err(CheckpointError::NoWeights(self.path.clone()));
        }
        let model = model_from_bytes(&read(&path)?, &config.model, &path)?;
        Ok((config, model))
    }

    /// Saves parameters, Adam moments and progress: the commit point of an epoch.
    ///
    /// # Errors
    /// [`CheckpointError::Write`] if `train-state.safetensors` cannot be written.
    pub fn save_state(&self, model: &Model, adam: &AdamState, epoch: usize) -> Result<(), CheckpointError> {
        write(&self.file(STATE_FILE), &state_bytes(model, adam, epoch))
    }

    /// Reads `train-state.safetensors` for a model of `config`: what `--resume` continues from.
    ///
    /// # Errors
    /// [`CheckpointError::NoState`] if the file does not exist, [`CheckpointError::Read`] if it
    /// cannot be read, and [`CheckpointError::Corrupt`] if it is not valid safetensors, a tensor is
    /// missing or has the wrong shape, or its `epoch` or `step` metadata is missing.
    pub fn load_state(&self, config: &ModelConfig) -> Result<TrainState, CheckpointError> {
        let path = self.file(STATE_FILE);
        if !path.is_file() {
            return Err(CheckpointError::NoState(self.path.clone()));
        }
        state_from_bytes(&read(&path)?, config, &path)
    }

    /// The epoch recorded in `model.safetensors`, if the file exists.
    ///
    /// # Errors
    /// [`CheckpointError::Read`] if the file cannot be read, [`CheckpointError::Corrupt`] if its
    /// header is not valid safetensors or has no `epoch` metadata.
    pub fn model_epoch(&self) -> Result<Option<usize>, CheckpointError> {
        let path = self.file(MODEL_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let meta = metadata(&read(&path)?, &path)?;
        Ok(Some(meta_number(&meta, "epoch", &path)? as usize))
    }

    /// Writes `metrics.jsonl`, one record per line, replacing the file.
    ///
    /// # Errors
    /// [`CheckpointError::Write`] if the file cannot be written.
    pub fn save_metrics(&self, records: &[EpochMetrics]) -> Result<(), CheckpointError> {
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r).expect("metrics serialise"));
            text.push('\n');
        }
        write(&self.file(METRICS_FILE), text.as_bytes())
    }

    /// Writes `data-files.tsv`, the files the run's images were read from.
    ///
    /// # Errors
    /// [`CheckpointError::Write`] if the file cannot be written.
    pub fn save_files(&self, files: &crate::data::record::FileList) -> Result<(), CheckpointError> {
        write(&self.file(DATA_FILES), files.to_text().as_bytes())
    }

    /// The files the run's images were read from (`None` for a built-in dataset, or a run
    /// made before they were recorded).
    ///
    /// # Errors
    /// [`CheckpointError::Read`] if the file exists but cannot be read, [`CheckpointError::Corrupt`]
    /// if a line is not a record.
    pub fn load_files(&self) -> Result<Option<crate::data::record::FileList>, CheckpointError> {
        let path = self.file(DATA_FILES);
        if !path.is_file() {
            return Ok(None);
        }
        let text = read(&path)?;
        let list = crate::data::record::FileList::from_text(&String::from_utf8_lossy(&text))
            .map_err(|e| CheckpointError::corrupt(&path, e))?;
        Ok(Some(list))
    }

    /// The metric records, oldest first (none if the file does not exist yet).
    ///
    /// # Errors
    /// [`CheckpointError::Read`] if the file cannot be read, [`CheckpointError::Corrupt`] (naming
    /// the line) if a record is not a valid [`EpochMetrics`].
    pub fn load_metrics(&self) -> Result<Vec<EpochMetrics>, CheckpointError> {
        let path = self.file(METRICS_FILE);
        if !path.is_file() {
            return Ok(Vec::new());
        }
        let text = read(&path)?;
        let text = String::from_utf8_lossy(&text);
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| CheckpointError::corrupt(&path, format!("line {}: {e}", i + 1)))
            })
            .collect()
    }
}

/// A train state as `train-state.safetensors` bytes: the flat parameters, Adam's moments, and
/// the epoch and step in the metadata.
pub fn state_bytes(model: &Model, adam: &AdamState, epoch: usize) -> Vec<u8> {
    let n = model.params.len();
    let (p, m, v) = (f32_bytes(&model.params), f32_bytes(&adam.m), f32_bytes(&adam.v));
    fn view(b: &[u8], n: usize) -> TensorView<'_> {
        TensorView::new(Dtype::F32, vec![n], b).expect("sizes match")
    }
    let tensors = [("params", view(&p, n)), ("exp_avg", view(&m, n)), ("exp_avg_sq", view(&v, n))];
    let meta = HashMap::from([
        ("epoch".to_string(), epoch.to_string()),
        ("step".to_string(), adam.step.to_string()),
        ("format".to_string(), "vae-train-state-1".to_string()),
    ]);
    serialize(tensors, meta)
}

/// Parses a train state (`train-state.safetensors`) for `config`: parameters, Adam moments
/// and progress.
///
/// # Errors
/// [`CheckpointError::Corrupt`] if the bytes are not safetensors, a tensor is missing or has
/// the wrong shape, or the metadata lacks the epoch or step.
pub fn state_from_bytes(bytes: &[u8], config: &ModelConfig, path: &Path) -> Result<TrainState, CheckpointError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::corrupt(path, e))?;
    let meta = metadata(bytes, path)?;
    let network = Network::new(config.clone());
    let n = [network.layout.len];
    let params = tensor_f32(&st, "params", &n, path)?;
    let m = tensor_f32(&st, "exp_avg", &n, path)?;
    let v = tensor_f32(&st, "exp_avg_sq", &n, path)?;
    let epoch = meta_number(&meta, "epoch", path)? as usize;
    let step = meta_number(&meta, "step", path)?;
    Ok(TrainState { model: Model { network, params }, adam: AdamState { m, v, step }, epoch })
}

/// Named tensors of a flat buffer as safetensors bytes (f32, the tensors' shapes).
pub fn tensors_bytes(tensors: &[TensorInfo], params: &[f32], meta: HashMap<String, String>) -> Vec<u8> {
    let data: Vec<(&str, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|t| (t.name.as_str(), t.shape.clone(), f32_bytes(&params[t.range.clone()]))).collect();
    let views = data
        .iter()
        .map(|(name, shape, bytes)| (*name, TensorView::new(Dtype::F32, shape.clone(), bytes).expect("sizes match")));
    serialize(views, meta)
}

/// `safetensors::serialize` with a reproducible header. The crate writes `__metadata__` from a
/// `HashMap`, so its key order (and the file's bytes) changed from process to process; the
/// header is re-serialised with every object's keys sorted. Same tokens, same length, same
/// data offsets: only the order of keys changes, so same-seed runs give byte-identical files.
fn serialize<'a>(
    tensors: impl IntoIterator<Item = (&'a str, TensorView<'a>)>,
    meta: HashMap<String, String>,
) -> Vec<u8> {
    let mut bytes = safetensors::serialize(tensors, Some(meta)).expect("valid tensors");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8-byte length")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("safetensors writes JSON");
    // serde_json's map is a BTreeMap (no `preserve_order`): serialising sorts every object.
    let sorted = serde_json::to_vec(&header).expect("JSON serialises");
    assert!(sorted.len() <= n, "a re-serialised header never grows");
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + n].fill(b' '); // safetensors pads its header with spaces
    bytes
}

/// Parses safetensors bytes into a flat buffer of `len` floats; every tensor must be
/// present with its shape, and every value finite.
///
/// # Errors
/// [`CheckpointError::Corrupt`], naming `path`, if the bytes are not valid safetensors, a tensor is
/// missing or not F32 of its shape, or a value is NaN or infinite.
pub fn tensors_from_bytes(
    bytes: &[u8],
    tensors: &[TensorInfo],
    len: usize,
    path: &Path,
) -> Result<Vec<f32>, CheckpointError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::corrupt(path, e))?;
    let mut params = vec![0.0f32; len];
    for t in tensors {
        params[t.range.clone()].copy_from_slice(&tensor_f32(&st, &t.name, &t.shape, path)?);
    }
    if params.iter().any(|p| !p.is_finite()) {
        return Err(CheckpointError::corrupt(path, "it holds NaN or infinite weights"));
    }
    Ok(params)
}

/// The weights as safetensors bytes: PyTorch's `state_dict` names and shapes, f32.
pub fn model_bytes(model: &Model, epoch: usize) -> Vec<u8> {
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("model".to_string(), model.config().kind.name().to_string()),
        ("epoch".to_string(), epoch.to_string()),
    ]);
    tensors_bytes(&model.network.layout.tensors, &model.params, meta)
}

/// Parses safetensors weights for `config`; every tensor must be present with its shape.
///
/// # Errors
/// [`CheckpointError::Corrupt`] as [`tensors_from_bytes`]: not valid safetensors, a missing or
/// misshapen tensor, or a weight that is NaN or infinite.
pub fn model_from_bytes(bytes: &[u8], config: &ModelConfig, path: &Path) -> Result<Model, CheckpointError> {
    let network = Network::new(config.clone());
    let params = tensors_from_bytes(bytes, &network.layout.tensors, network.layout.len, path)?;
    Ok(Model { network, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs made before the rename wrote `train_bce`/`test_bce`: still read, into the new
    /// fields; new records write `train_reconstruction`/`test_reconstruction`, and a run
    /// without test images writes no test fields at all.
    #[test]
    fn metrics_read_the_old_names_and_write_the_new() {
        let old = r#"{"epoch":1,"step":468,"train_objective":163.8,"train_bce":149.9,"train_kl":13.9,
            "train_batch_loss":20971.8,"test_loss":126.4,"test_bce":107.5,"test_kl":18.8,"seconds":1.1,
            "images_per_sec":52676.6}"#;
        let m: EpochMetrics = serde_json::from_str(old).unwrap();
        assert_eq!((m.train_reconstruction, m.test_reconstruction), (149.9, Some(107.5)));
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"train_reconstruction\":149.9") && text.contains("\"test_reconstruction\":107.5"));
        assert!(!text.contains("bce"), "{text}");
        let none = EpochMetrics { test_loss: None, test_reconstruction: None, test_kl: None, ..m };
        assert!(!serde_json::to_string(&none).unwrap().contains("test"));
    }
}
