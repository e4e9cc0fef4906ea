//! Learning-rate schedules: the rate of each epoch as a multiple of the base `--lr`.
//!
//! - `constant`: the base rate throughout (the tutorial's).
//! - `step:N:F`: multiplied by F every N epochs (PyTorch's `StepLR`).
//! - `stages:S:G:F`: S stages, stage i (from 0) lasting G^i epochs at lr·F^i, then the last
//!   rate from there on. Burda, Grosse & Salakhutdinov (2015, §5) train 3^i passes at
//!   1e-3·10^(−i/7) for i = 0…7: `stages:8:3:0.719686` (10^(−1/7) = 0.7196857), 3,280 epochs,
//!   which `burda` names.
//! - `plateau:N:F`: multiplied by F once the watched loss (the test loss, or the training
//!   objective of a run without test images) has gone N epochs without improving on its best
//!   by a relative 1e-4 (PyTorch's `ReduceLROnPlateau` with `threshold=1e-4`, reducing after N
//!   bad epochs rather than N + 1), down to lr/1000. `plateau` is `plateau:10:0.5`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A learning-rate schedule; saved in `config.json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum LrSchedule {
    /// The base rate at every epoch.
    #[default]
    Constant,
    /// The base rate times `factor` every `every` epochs.
    Step { every: usize, factor: f64 },
    /// `stages` stages, stage i lasting `growth`^i epochs at the base rate times `factor`^i.
    Stages { stages: usize, growth: usize, factor: f64 },
    /// The base rate times `factor` each time the watched loss has gone `patience` epochs
    /// without a new best.
    Plateau { patience: usize, factor: f64 },
}

/// `plateau`'s epochs without improvement before the rate drops.
pub const DEFAULT_PATIENCE: usize = 10;

/// `plateau`'s multiplier: the rate halves.
pub const DEFAULT_PLATEAU_FACTOR: f64 = 0.5;

/// The least multiple of the base rate `plateau` goes down to.
pub const PLATEAU_FLOOR: f64 = 1e-3;

/// A new best must beat the old one by this fraction of it (PyTorch's default threshold).
const PLATEAU_THRESHOLD: f64 = 1e-4;

/// Most epochs a `stages` schedule may span (as `vae train --epochs`).
pub const MAX_SPAN: usize = 100_000;

/// Burda et al. (2015)'s schedule: 8 stages of 3^i epochs, each 10^(−1/7) times the last.
pub const BURDA: LrSchedule = LrSchedule::Stages { stages: 8, growth: 3, factor: 0.719_685_673_001_152_2 };

impl LrSchedule {
    pub fn is_constant(&self) -> bool {
        *self == LrSchedule::Constant
    }

    /// The multiple of the base rate used in `epoch` (counted from 1), where `watched` holds
    /// the loss `plateau` watches for each completed epoch in order (only the ones before
    /// `epoch` are read; other schedules ignore it).
    pub fn factor(&self, epoch: usize, watched: &[f64]) -> f64 {
        let done = epoch.saturating_sub(1);
        match *self {
            LrSchedule::Constant => 1.0,
            LrSchedule::Plateau { patience, factor } => {
                let (mut best, mut bad, mut f) = (f64::INFINITY, 0, 1.0);
                for &loss in &watched[..done.min(watched.len())] {
                    if best == f64::INFINITY || loss < best - PLATEAU_THRESHOLD * best.abs() {
                        (best, bad) = (loss, 0);
                    } else {
                        bad += 1;
                        if bad >= patience {
                            (f, bad) = ((f * factor).max(PLATEAU_FLOOR), 0);
                        }
                    }
                }
                f
            }
            LrSchedule::Step { every, factor } => factor.powi((done / every.max(1)).min(i32::MAX as usize) as i32),
            LrSchedule::Stages { stages, growth, factor } => {
                let (mut stage, mut end) = (0usize, 1usize);
                let mut length = 1usize;
                while done >= end && stage + 1 < stages {
                    stage += 1;
                    length = length.saturating_mul(growth);
                    end = end.saturating_add(length);
                }
                factor.powi(stage as i32)
            }
        }
    }

    /// The epochs the schedule spans, where it has an end (`stages`: Σ_i growth^i).
    pub fn epochs(&self) -> Option<usize> {
        match *self {
            LrSchedule::Stages { stages, growth, .. } => {
                let (mut total, mut length) = (0usize, 1usize);
                for _ in 0..stages {
                    total = total.saturating_add(length);
                    length = length.saturating_mul(growth);
                }
                Some(total)
            }
            _ => None,
        }
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LrSchedule::Constant => write!(f, "constant"),
            s if s == BURDA => write!(f, "burda"),
            LrSchedule::Step { every, factor } => write!(f, "step:{every}:{factor}"),
            LrSchedule::Stages { stages, growth, factor } => write!(f, "stages:{stages}:{growth}:{factor}"),
            LrSchedule::Plateau { patience, factor } => write!(f, "plateau:{patience}:{factor}"),
        }
    }
}

impl FromStr for LrSchedule {
    type Err = String;

    /// `constant`, `burda`, `step:N:F`, `stages:S:G:F` or `plateau[:N[:F]]`; the message shows
    /// the forms.
    fn from_str(s: &str) -> Result<Self, String> {
        const FORMS: &str = "constant, burda, step:N:F (×F every N epochs), stages:S:G:F (S stages of G^i epochs \
                             at lr·F^i) or plateau[:N[:F]] (×F, default 0.5, after N epochs, default 10, without a \
                             better test loss)";
        let parts: Vec<&str> = s.trim().split(':').collect();
        let count = |v: &str| v.parse::<usize>().ok().filter(|&n| (1..=1_000_000).contains(&n));
        let factor = |v: &str| v.parse::<f64>().ok().filter(|f| f.is_finite() && *f > 0.0);
        let bad = || format!("'{s}' is not a schedule; use {FORMS}");
        match parts.as_slice() {
            ["constant"] => Ok(LrSchedule::Constant),
            ["burda"] => Ok(BURDA),
            ["step", n, f] => {
                Ok(LrSchedule::Step { every: count(n).ok_or_else(bad)?, factor: factor(f).ok_or_else(bad)? })
            }
            ["plateau", rest @ ..] if rest.len() <= 2 => {
                let patience = rest.first().map_or(Some(DEFAULT_PATIENCE), |n| count(n)).ok_or_else(bad)?;
                let factor = rest.get(1).map_or(Some(DEFAULT_PLATEAU_FACTOR), |f| factor(f)).filter(|&f| f < 1.0);
                Ok(LrSchedule::Plateau { patience, factor: factor.ok_or_else(bad)? })
            }
            ["stages", s, g, f] => {
                let stages = count(s).filter(|&s| s <= 64).ok_or_else(bad)?;
                let schedule = LrSchedule::Stages {
                    stages,
                    growth: count(g).ok_or_else(bad)?,
                    factor: factor(f).ok_or_else(bad)?,
                };
                match schedule.epochs() {
                    Some(e) if e <= MAX_SPAN => Ok(schedule),
                    _ => Err(format!("'{s}' spans more than {MAX_SPAN} epochs; use fewer stages")),
                }
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burda_spans_3280_epochs_with_eight_rates() {
        assert_eq!(BURDA.epochs(), Some(3280));
        // Stage i covers epochs (3^i − 1)/2 + 1 ..= (3^(i+1) − 1)/2.
        let f = 10f64.powf(-1.0 / 7.0);
        for (epoch, stage) in [(1, 0), (2, 1), (4, 1), (5, 2), (13, 2), (14, 3), (1093, 6), (1094, 7), (3280, 7)] {
            assert!((BURDA.factor(epoch, &[]) - f.powi(stage)).abs() < 1e-12, "epoch {epoch}");
        }
        // After the last stage the last rate stays: 1e-3·10^(−1) = 1e-4.
        assert!((BURDA.factor(5000, &[]) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn step_decays_every_n_epochs() {
        let s: LrSchedule = "step:10:0.5".parse().unwrap();
        let f = |e| s.factor(e, &[]);
        assert_eq!((f(1), f(10), f(11), f(21)), (1.0, 1.0, 0.5, 0.25));
        assert_eq!(s.epochs(), None);
        assert_eq!(LrSchedule::Constant.factor(1_000, &[]), 1.0);
    }

    #[test]
    fn parses_and_prints_round_trip() {
        for text in ["constant", "burda", "step:10:0.5", "stages:3:2:0.1", "plateau:3:0.25"] {
            let s: LrSchedule = text.parse().unwrap();
            assert_eq!(s.to_string(), text);
            assert_eq!(s.to_string().parse::<LrSchedule>().unwrap(), s);
        }
        assert_eq!("stages:8:3:0.7196856730011522".parse::<LrSchedule>().unwrap(), BURDA);
        assert_eq!("plateau".parse::<LrSchedule>().unwrap(), LrSchedule::Plateau { patience: 10, factor: 0.5 });
        assert_eq!("plateau:4".parse::<LrSchedule>().unwrap(), LrSchedule::Plateau { patience: 4, factor: 0.5 });
    }

    /// Patience 2, halving: the losses improve in epochs 1–2, stall in 3–4 (the rate halves
    /// from epoch 5), improve by less than the 1e-4 threshold in 5 and 6 (halves again from
    /// epoch 7), improve in 7, and stall in 8–9 (a third halving from epoch 10).
    #[test]
    fn plateau_halves_after_patience_epochs_without_a_new_best() {
        let s: LrSchedule = "plateau:2".parse().unwrap();
        let losses = [10.0, 9.0, 9.5, 9.0, 8.9995, 8.9995, 8.0, 8.5, 8.0];
        let rates: Vec<f64> = (1..=10).map(|e| s.factor(e, &losses)).collect();
        assert_eq!(rates, [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]);
        // Only epochs before the one asked about count, however long the history.
        assert_eq!(s.factor(4, &losses), 1.0);
        // Down to the floor and no further.
        let flat = vec![1.0; 200];
        assert_eq!(s.factor(201, &flat), PLATEAU_FLOOR);
        // Steady improvement never lowers it, losses below zero (a Gaussian's) included.
        let falling: Vec<f64> = (0..50).map(|e| 5.0 - e as f64).collect();
        assert_eq!("plateau:1".parse::<LrSchedule>().unwrap().factor(51, &falling), 1.0);
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "",
            "cosine",
            "step:0:0.5",
            "step:10",
            "step:10:-1",
            "stages:8:3",
            "stages:100:3:0.5",
            "stages:30:3:0.5",
            "plateau:0",
            "plateau:5:1.5",
            "plateau:5:0.5:2",
        ] {
            let e = bad.parse::<LrSchedule>().unwrap_err();
            assert!(e.contains("schedule") || e.contains("epochs"), "{bad}: {e}");
        }
    }
}
