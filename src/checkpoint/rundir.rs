//! A run directory on disk: where each file lives, and reading and writing them.

use super::tensors::{meta_number, metadata};
use super::*;
use crate::core::AdamState;
use crate::model::{Model, ModelConfig};

/// A run directory on disk.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
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
