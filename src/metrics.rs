//! The record of one epoch, a line of a run's `metrics.jsonl`: what training measures and
//! every command that reads a run's history shows.

use serde::{Deserialize, Serialize};

/// One epoch's record in `metrics.jsonl`. Losses are in nats per example unless named
/// otherwise; "reconstruction" is the likelihood's −log p(x|z) (the BCE of a Bernoulli);
/// "loss" is the negative ELBO (reconstruction + KL) for variational models and the
/// reconstruction for `ae`; `train_objective` is what was minimised (reconstruction + β·KL).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub step: u64,
    pub train_objective: f64,
    /// The likelihood's −log p(x|z) per example (the tutorial's BCE for a Bernoulli; called
    /// `train_bce` in runs made before it was renamed).
    #[serde(alias = "train_bce")]
    pub train_reconstruction: f64,
    pub train_kl: f64,
    /// The tutorial's figure: the mean over steps of the summed batch objective.
    pub train_batch_loss: f64,
    /// The test figures; absent for a run with no test images (`--test-fraction 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    #[serde(default, alias = "test_bce", skip_serializing_if = "Option::is_none")]
    pub test_reconstruction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_kl: Option<f64>,
    pub seconds: f64,
    pub images_per_sec: f64,
    /// The learning rate of this epoch (`--resume --lr` can change it; absent in runs
    /// written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f32>,
    /// The KL weight of this epoch, recorded while a run has a KL warm-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f32>,
}

impl EpochMetrics {
    /// The loss `--lr-schedule plateau` watches: the test loss, or for a run without test
    /// images the training objective.
    pub fn watched(&self) -> f64 {
        self.test_loss.unwrap_or(self.train_objective)
    }
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
