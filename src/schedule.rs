//! Learning-rate schedules: the rate of each epoch as a multiple of the base `--lr`.
//!
//! - `constant`: the base rate throughout (the tutorial's).
//! - `step:N:F`: multiplied by F every N epochs (PyTorch's `StepLR`).
//! - `stages:S:G:F`: S stages, stage i (from 0) lasting G^i epochs at lr·F^i, then the last
//!   rate from there on. Burda, Grosse & Salakhutdinov (2015, §5) train 3^i passes at
//!   1e-3·10^(−i/7) for i = 0…7: `stages:8:3:0.719686` (10^(−1/7) = 0.7196857), 3,280 epochs,
//!   which `burda` names.

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
}

/// Most epochs a `stages` schedule may span (as `vae train --epochs`).
pub const MAX_SPAN: usize = 100_000;

/// Burda et al. (2015)'s schedule: 8 stages of 3^i epochs, each 10^(−1/7) times the last.
pub const BURDA: LrSchedule = LrSchedule::Stages { stages: 8, growth: 3, factor: 0.719_685_673_001_152_2 };

impl LrSchedule {
    pub fn is_constant(&self) -> bool {
        *self == LrSchedule::Constant
    }

    /// The multiple of the base rate used in `epoch` (counted from 1).
    pub fn factor(&self, epoch: usize) -> f64 {
        let done = epoch.saturating_sub(1);
        match *self {
            LrSchedule::Constant => 1.0,
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
        }
    }
}

impl FromStr for LrSchedule {
    type Err = String;

    /// `constant`, `burda`, `step:N:F` or `stages:S:G:F`; the message shows the forms.
    fn from_str(s: &str) -> Result<Self, String> {
        const FORMS: &str = "constant, burda, step:N:F (×F every N epochs) or stages:S:G:F (S stages of G^i epochs \
                             at lr·F^i)";
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
            assert!((BURDA.factor(epoch) - f.powi(stage)).abs() < 1e-12, "epoch {epoch}");
        }
        // After the last stage the last rate stays: 1e-3·10^(−1) = 1e-4.
        assert!((BURDA.factor(5000) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn step_decays_every_n_epochs() {
        let s: LrSchedule = "step:10:0.5".parse().unwrap();
        assert_eq!((s.factor(1), s.factor(10), s.factor(11), s.factor(21)), (1.0, 1.0, 0.5, 0.25));
        assert_eq!(s.epochs(), None);
        assert_eq!(LrSchedule::Constant.factor(1_000), 1.0);
    }

    #[test]
    fn parses_and_prints_round_trip() {
        for text in ["constant", "burda", "step:10:0.5", "stages:3:2:0.1"] {
            let s: LrSchedule = text.parse().unwrap();
            assert_eq!(s.to_string(), text);
            assert_eq!(s.to_string().parse::<LrSchedule>().unwrap(), s);
        }
        assert_eq!("stages:8:3:0.7196856730011522".parse::<LrSchedule>().unwrap(), BURDA);
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in
            ["", "cosine", "step:0:0.5", "step:10", "step:10:-1", "stages:8:3", "stages:100:3:0.5", "stages:30:3:0.5"]
        {
            let e = bad.parse::<LrSchedule>().unwrap_err();
            assert!(e.contains("schedule") || e.contains("epochs"), "{bad}: {e}");
        }
    }
}
