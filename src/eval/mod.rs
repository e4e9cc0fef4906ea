//! Honest metrics for a trained model: the ELBO with its standard error, the
//! importance-weighted bound on log p(x), active units, and classifier-based sample scores.
//!
//! Sign convention: log-likelihoods and their bounds (`elbo`, `iwae`, `reconstruction`) are
//! printed as they are — negative numbers of nats per example, higher is better; `kl` is
//! positive; `nll` = −IWAE_k is the positive "test NLL" of papers, lower is better.

pub mod dci;
pub mod disentanglement;
pub mod factor_scores;
pub mod frechet;
pub mod gbt;
pub mod history;
pub mod iwae;
pub mod logistic;
pub mod mig;
pub mod report;
pub mod scores;
pub mod truth;

use crate::core::{Pool, Purpose, Rng};
use crate::data::Split;
use crate::model::Model;
use crate::train::evaluate;
use serde::{Deserialize, Serialize};

/// A Monte-Carlo estimate: mean and standard error of the mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    pub se: f64,
}

impl Estimate {
    /// Mean and standard error (sample standard deviation / √n; 0 for one value).
    pub fn of(values: &[f64]) -> Estimate {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        if values.len() < 2 {
            return Estimate { mean, se: 0.0 };
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Estimate { mean, se: (var / n).sqrt() }
    }
}

/// The ELBO per example, E_q\[log p(x|z)\] − KL(q(z|x) ‖ p(z)) (Kingma & Welling 2014, eq. 3),
/// with z sampled once per image in each of `draws` passes over the split.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ElboReport {
    /// ELBO in nats per example (≤ log p(x)); mean ± standard error over the passes.
    pub elbo: Estimate,
    /// E_q\[log p(x|z)\] = −BCE, nats per example.
    pub reconstruction: Estimate,
    /// KL(q(z|x) ‖ p(z)), nats per example: analytic for N(0, I) (the same in every pass),
    /// estimated by log q(z|x) − log p(z) at each pass's draw for a mixture prior (the mean over
    /// the passes).
    pub kl: f64,
    /// The KL's standard error over the passes (0 for the analytic KL).
    #[serde(default)]
    pub kl_se: f64,
    pub draws: usize,
}

/// ELBO over `draws` independent passes (noise streams `Purpose::Eval` 0..draws).
pub fn elbo(model: &Model, split: &Split, pool: &Pool, draws: usize, seed: u64) -> ElboReport {
    let passes: Vec<_> =
        (0..draws).map(|s| evaluate(model, split, pool, Rng::stream(seed, Purpose::Eval, s as u64))).collect();
    let recon: Vec<f64> = passes.iter().map(|t| -t.bce).collect();
    let kl = Estimate::of(&passes.iter().map(|t| t.kl).collect::<Vec<_>>());
    let total: Vec<f64> = passes.iter().map(|t| -t.bce - t.kl).collect();
    ElboReport { elbo: Estimate::of(&total), reconstruction: Estimate::of(&recon), kl: kl.mean, kl_se: kl.se, draws }
}

/// The importance-weighted bound summarised over a split.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct IwaeReport {
    pub k: usize,
    /// Mean IWAE_k over the images (≤ log p(x)), with the standard error across images.
    pub bound: Estimate,
    /// −bound.mean: the "test NLL" of papers, in nats.
    pub nll: f64,
    pub seconds: f64,
}

/// Active units (Burda et al. 2015, §5.2): dimensions u with Cov_x(E_{q(z|x)}\[z_u\]) > 0.01.
/// Returns each dimension's variance of μ_u across the images.
pub fn latent_activity(mu: &[f32], latent: usize) -> Vec<f64> {
    let n = (mu.len() / latent.max(1)) as f64;
    (0..latent)
        .map(|u| {
            let vals = mu.iter().skip(u).step_by(latent).map(|&v| v as f64);
            let mean = vals.clone().sum::<f64>() / n;
            vals.map(|v| (v - mean).powi(2)).sum::<f64>() / n
        })
        .collect()
}

/// Burda et al.'s threshold on the activity.
pub const ACTIVE_THRESHOLD: f64 = 0.01;

/// The dimensions whose activity exceeds [`ACTIVE_THRESHOLD`].
pub fn active_units(activity: &[f64]) -> Vec<usize> {
    activity.iter().enumerate().filter(|(_, a)| **a > ACTIVE_THRESHOLD).map(|(u, _)| u).collect()
}

/// A KL per example below which the latent code counts as collapsed, in nats: ln 10. The
/// average KL(q(z|x) ‖ p(z)) bounds the information z carries about x, I(x; z), for any prior
/// (Hoffman & Johnson 2016, "ELBO surgery"), and telling ten equally likely kinds of picture
/// apart takes ln 10 nats: a code under it cannot even do that.
pub const COLLAPSED_KL: f64 = std::f64::consts::LN_10;

/// What to tell a user whose variational model's KL per example is `kl` (the last epoch's
/// test KL, or `vae eval`'s), when it is below [`COLLAPSED_KL`]: the decoder models the
/// pictures without the code (posterior collapse: Bowman et al. 2016). The remedy named
/// follows the run's KL weight `beta` and warm-up `warmup` (epochs, 0 for none): a β above 1
/// pushes towards collapse itself; otherwise a KL warm-up is the usual cure.
pub fn collapse_note(kl: f64, beta: f32, warmup: usize) -> Option<String> {
    if kl.is_nan() || kl >= COLLAPSED_KL {
        return None;
    }
    let remedy = match warmup {
        _ if beta > 1.0 => format!("a smaller `--beta` than this run's {beta} lets the code carry more"),
        0 => "train it again with `--kl-warmup 5` (the KL's weight rising over 5 epochs) to keep the code in use"
            .to_string(),
        n => format!("more epochs, or a longer `--kl-warmup` than this run's {n}, may bring the code into use"),
    };
    Some(format!(
        "note: the latent code is nearly unused: KL {kl:.2} nats per image, which bounds what z says about x; \
         the likelihood models the pictures on its own (posterior collapse); {remedy}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Below ln 10 nats a note, naming the remedy for the run's β and warm-up; at or above
    /// it (and for a NaN) none.
    #[test]
    fn a_collapsed_code_gets_a_note_naming_the_remedy() {
        let note = collapse_note(0.369, 1.0, 0).expect("0.37 nats is collapsed");
        assert!(note.contains("KL 0.37 nats") && note.contains("--kl-warmup 5"), "{note}");
        let longer = collapse_note(2.3, 1.0, 5).expect("2.3 < ln 10");
        assert!(longer.contains("longer `--kl-warmup` than this run's 5,"), "{longer}");
        let heavy = collapse_note(0.04, 200.0, 5).expect("0.04 nats is collapsed");
        assert!(heavy.contains("smaller `--beta` than this run's 200"), "{heavy}");
        assert_eq!(collapse_note(std::f64::consts::LN_10, 1.0, 0), None);
        assert_eq!(collapse_note(25.0, 1.0, 0), None);
        assert_eq!(collapse_note(f64::NAN, 1.0, 0), None);
    }

    #[test]
    fn estimate_has_the_textbook_standard_error() {
        // Values 1..=4: mean 2.5, sample variance 5/3, se = sqrt(5/3 / 4).
        let e = Estimate::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(e.mean, 2.5);
        assert!((e.se - (5.0f64 / 12.0).sqrt()).abs() < 1e-12);
        assert_eq!(Estimate::of(&[7.0]).se, 0.0);
    }

    #[test]
    fn activity_is_the_variance_of_the_means() {
        // Two dimensions over four images: dim 0 varies (±1, variance 1), dim 1 is constant.
        let mu = [1.0, 5.0, -1.0, 5.0, 1.0, 5.0, -1.0, 5.0];
        let a = latent_activity(&mu, 2);
        assert_eq!(a, vec![1.0, 0.0]);
        assert_eq!(active_units(&a), vec![0]);
    }
}
