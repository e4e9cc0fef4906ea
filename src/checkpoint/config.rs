//! The run's configuration, `config.json`: the model and how it was trained.

use super::dirkind::DirKind;
use crate::model::ModelConfig;
use crate::train::TrainConfig;
use serde::{Deserialize, Serialize};

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
