//! What a directory `vae` wrote holds: every one records its kind in `config.json`
//! (`"kind": "vae-run"` or `"classifier"`), and every command that writes or reads one checks
//! it first, so no command replaces another kind of work, `--force` included.
//!
//! Directories written before the field existed are recognised by their keys (a VAE run's
//! `model` and `train`, a classifier's `classifier`).

use super::{CONFIG_FILE, CheckpointError, read};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The kinds of directory `vae` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirKind {
    /// `vae train`: config, weights, train state, metrics, samples.
    VaeRun,
    /// `vae classifier train`: the judge `vae eval` scores samples with.
    Classifier,
}

impl DirKind {
    /// "a VAE run", "a classifier": what error messages call it.
    pub fn describe(self) -> &'static str {
        match self {
            DirKind::VaeRun => "a VAE run",
            DirKind::Classifier => "a classifier",
        }
    }

    /// The command that makes a directory of this kind.
    pub fn made_by(self) -> &'static str {
        match self {
            DirKind::VaeRun => "vae train",
            DirKind::Classifier => "vae classifier train",
        }
    }

    /// What `dir` holds: `None` when it has no `config.json` (an empty or unrelated
    /// directory, or none at all).
    ///
    /// # Errors
    /// [`CheckpointError::Read`] if `config.json` cannot be read, [`CheckpointError::Corrupt`]
    /// if it is not JSON, and [`CheckpointError::Foreign`] if it is JSON no `vae` command wrote.
    pub fn of(dir: &Path) -> Result<Option<DirKind>, CheckpointError> {
        let path = dir.join(CONFIG_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let foreign = || CheckpointError::Foreign(dir.to_owned());
        let value: serde_json::Value = serde_json::from_slice(&read(&path)?)
            .map_err(|e| CheckpointError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        let object = value.as_object().ok_or_else(foreign)?;
        if let Some(kind) = object.get("kind") {
            return serde_json::from_value(kind.clone()).map(Some).map_err(|_| foreign());
        }
        if object.contains_key("classifier") {
            Ok(Some(DirKind::Classifier))
        } else if object.contains_key("model") && object.contains_key("train") {
            Ok(Some(DirKind::VaeRun))
        } else {
            Err(foreign())
        }
    }

    /// Checks that `dir` holds this kind (or nothing): the guard before reading or writing it.
    ///
    /// # Errors
    /// [`CheckpointError::WrongKind`] naming what `dir` is, or the errors of [`DirKind::of`].
    pub fn expect(self, dir: &Path) -> Result<Option<DirKind>, CheckpointError> {
        match DirKind::of(dir)? {
            Some(found) if found != self => {
                Err(CheckpointError::WrongKind { dir: dir.to_owned(), found, expected: self })
            }
            other => Ok(other),
        }
    }
}

/// The serde default of a VAE run's `kind` (configs written before it was recorded).
pub fn vae_run() -> DirKind {
    DirKind::VaeRun
}

/// The serde default of a classifier's `kind`.
pub fn classifier() -> DirKind {
    DirKind::Classifier
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(config: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(CONFIG_FILE), config).unwrap();
        d
    }

    #[test]
    fn kinds_from_the_field_and_from_old_keys() {
        let none = tempfile::tempdir().unwrap();
        assert_eq!(DirKind::of(none.path()).unwrap(), None);
        assert_eq!(DirKind::of(&none.path().join("missing")).unwrap(), None);
        let cases = [
            (r#"{"kind": "vae-run"}"#, DirKind::VaeRun),
            (r#"{"kind": "classifier", "model": 1, "train": 2}"#, DirKind::Classifier),
            (r#"{"model": {}, "train": {}, "version": "0.1.0"}"#, DirKind::VaeRun),
            (r#"{"classifier": {}, "dataset": "Mnist"}"#, DirKind::Classifier),
        ];
        for (json, kind) in cases {
            assert_eq!(DirKind::of(dir_with(json).path()).unwrap(), Some(kind), "{json}");
        }
    }

    #[test]
    fn foreign_configs_are_named_not_guessed() {
        let truncated = DirKind::of(dir_with("{").path()).unwrap_err();
        assert!(matches!(truncated, CheckpointError::Corrupt { .. }), "{truncated}");
        for json in ["[1, 2]", r#"{"architectures": ["BertModel"]}"#, r#"{"kind": "tokenizer"}"#] {
            let d = dir_with(json);
            let err = DirKind::of(d.path()).unwrap_err();
            assert!(matches!(err, CheckpointError::Foreign(_)), "{json}: {err}");
            assert!(err.to_string().contains("vae did not write"), "{err}");
        }
    }

    #[test]
    fn expect_names_what_the_directory_is() {
        let d = dir_with(r#"{"classifier": {}}"#);
        let err = DirKind::VaeRun.expect(d.path()).unwrap_err().to_string();
        assert!(err.contains("is a classifier directory, not a VAE run"), "{err}");
        assert_eq!(DirKind::Classifier.expect(d.path()).unwrap(), Some(DirKind::Classifier));
        let e = tempfile::tempdir().unwrap();
        assert_eq!(DirKind::VaeRun.expect(e.path()).unwrap(), None);
    }
}
