//! A run's images, wherever they are now: the folder its `config.json` names, or the one
//! `--data-dir` says it moved to, checked against the files the run recorded when it trained
//! (`data-files.tsv`, [`crate::data::record`]). A moved folder must hold the same images; a
//! folder changed in place is read as it is, with a warning saying what changed.

use crate::checkpoint::{RunConfig, RunDir};
use crate::data::record::Difference;
use crate::data::{Dataset, Source};
use anyhow::{Result, bail};
use std::path::Path;

/// The source to read `config`'s images from: moved to `moved_to` when given.
///
/// # Errors
/// If `moved_to` is given for a built-in dataset, or, without it, the run's folder is gone
/// (the message asks for `--data-dir`).
pub fn source(run: &RunDir, config: &RunConfig, moved_to: Option<&Path>) -> Result<Source> {
    let recorded = &config.train.dataset;
    if let Some(to) = moved_to {
        return match recorded.moved_to(to) {
            Some(source) => Ok(source),
            None => bail!(
                "--data-dir names where a run's data folder moved, but {} trained on {recorded}, which has no \
                 folder; drop --data-dir",
                run.path.display()
            ),
        };
    }
    if let Some(dir) = recorded.dir().filter(|d| !d.is_dir()) {
        bail!(
            "{} trained on {}, which is no longer there; if the folder moved, say where with --data-dir DIR",
            run.path.display(),
            dir.display()
        );
    }
    Ok(recorded.clone())
}

/// How `data` differs from the files `run` recorded (`None` if it recorded none, or
/// `data` has no file list).
///
/// # Errors
/// If the record exists but cannot be read.
pub fn difference(run: &RunDir, data: &Dataset) -> Result<Option<Difference>> {
    let (Some(record), Some(now)) = (run.load_files()?, &data.files) else { return Ok(None) };
    Ok(Some(record.compare(now)).filter(|d| !d.is_empty()))
}

/// Checks the images read from `source` against the run's record: from a moved folder
/// (`moved`) they must be the same; a folder changed in place gets a warning (unless
/// `quiet`). Returns what changed.
///
/// # Errors
/// If a moved folder's files differ from the record, or the record cannot be read.
pub fn check(run: &RunDir, source: &Source, data: &Dataset, moved: bool, quiet: bool) -> Result<Option<Difference>> {
    let Some(d) = difference(run, data)? else { return Ok(None) };
    let dir = source.dir().map_or_else(|| source.to_string(), |d| d.display().to_string());
    if moved {
        bail!(
            "{dir} does not hold the images {} trained on: {}; give --data-dir the folder it trained on (or train a \
             new run on this one)",
            run.path.display(),
            d.describe()
        );
    }
    if !quiet {
        eprintln!(
            "warning: {dir} changed since {} read it: {}; using it as it is now",
            run.path.display(),
            d.describe()
        );
    }
    Ok(Some(d))
}

/// Loads a run's dataset from where it is now ([`source`]) and checks it ([`check`]).
///
/// # Errors
/// Those of [`source`] and [`check`], and the data's own ([`Dataset::load`]).
pub fn load(run: &RunDir, config: &RunConfig, moved_to: Option<&Path>, quiet: bool) -> Result<Dataset> {
    let source = source(run, config, moved_to)?;
    let data = Dataset::load(&source)?;
    check(run, &source, &data, moved_to.is_some(), quiet)?;
    Ok(data)
}

/// `config` with its dataset read from where [`source`] found it, for the comparisons
/// that follow (a classifier trained on the moved folder judges this run too).
///
/// # Errors
/// As [`source`].
pub fn relocated(run: &RunDir, config: &RunConfig, moved_to: Option<&Path>) -> Result<RunConfig> {
    let mut config = config.clone();
    config.train.dataset = source(run, &config, moved_to)?;
    Ok(config)
}
