//! `vae disentanglement`: how well a run's codes separate the data's ground-truth factors, by
//! the scores of disentanglement_lib (Locatello et al. 2019): MIG ([`super::mig`]), the β-VAE
//! score and the FactorVAE score ([`super::factor_scores`]), and DCI ([`super::dci`]), each
//! repeated on fresh draws and reported with its standard error over the repeats.

use super::Estimate;
use super::factor_scores::{self, Accuracy, Counts};
use super::truth::{GroundTruth, codes};
use super::{dci, mig};
use crate::core::{Pool, Purpose, Rng};
use crate::model::{InputError, Model};
use serde_json::{Value, json};

/// What to draw, and how often.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Sample counts of the two classifier scores (disentanglement_lib's by default).
    pub counts: Counts,
    /// Images MIG is estimated from (10,000 in disentanglement_lib).
    pub mig_images: usize,
    /// Images DCI's trees are fitted on; half as many score them (10,000 and 5,000 there).
    pub dci_points: usize,
    /// Repeats, each on fresh draws: the standard errors come from their spread.
    pub repeats: usize,
    /// Seeds the draws.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { counts: Counts::default(), mig_images: 10_000, dci_points: 10_000, repeats: 3, seed: 1 }
    }
}

/// The scores of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub factors: Vec<String>,
    pub mig: Estimate,
    /// Each factor's normalised gap, averaged over the repeats.
    pub mig_gaps: Vec<f64>,
    /// Each factor's most informative code dimension (the first repeat's), for labelling
    /// traversals.
    pub best_dims: Vec<usize>,
    /// I(z_i; v_k) of the first repeat, `[latent][factors]`, nats.
    pub information: Vec<Vec<f64>>,
    /// Accuracies on the held-out points (the scores) and on the fitting points.
    pub beta_vae: Estimate,
    pub beta_vae_train: Estimate,
    pub factor_vae: Estimate,
    pub factor_vae_train: Estimate,
    /// DCI's disentanglement, completeness and informativeness (held-out accuracy, and on
    /// the fitting points), from `counts.train` and `counts.eval` single images.
    pub dci_disentanglement: Estimate,
    pub dci_completeness: Estimate,
    pub dci_informativeness: Estimate,
    pub dci_informativeness_train: Estimate,
    /// The first repeat's importance matrix \[latent\]\[factors\].
    pub dci_importance: Vec<Vec<f64>>,
    pub settings: Settings,
}

/// Scores `model`'s codes on `truth`. `progress(what, done, total)` follows each score.
///
/// # Errors
/// If the images do not fit the model.
pub fn evaluate(
    model: &Model,
    pool: &Pool,
    truth: &dyn GroundTruth,
    settings: Settings,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Report, InputError> {
    let latent = model.config().latent_dim;
    let f = truth.levels().len();
    let mut encode = |factors: &[usize]| codes(model, pool, truth, factors);
    let (mut migs, mut gaps, mut first): (Vec<f64>, Vec<Vec<f64>>, Option<mig::Mig>) = (Vec::new(), Vec::new(), None);
    let (mut beta, mut factor): (Vec<Accuracy>, Vec<Accuracy>) = (Vec::new(), Vec::new());
    let mut dcis: Vec<dci::Dci> = Vec::new();
    for r in 0..settings.repeats.max(1) {
        let mut rng = Rng::stream(settings.seed, Purpose::Disentanglement, r as u64);
        let factors = truth.sample(settings.mig_images, &mut rng);
        progress("MIG", 0, 1);
        let m = mig::mig(&encode(&factors)?, latent, &factors, f, mig::BINS);
        progress("MIG", 1, 1);
        migs.push(m.score);
        gaps.push(m.gaps.clone());
        first.get_or_insert(m);
        let counts = settings.counts;
        beta.push(factor_scores::beta_vae(truth, latent, &mut encode, counts, &mut rng, &mut |d, t| {
            progress("β-VAE score", d, t)
        })?);
        factor.push(factor_scores::factor_vae(truth, latent, &mut encode, counts, &mut rng, &mut |d, t| {
            progress("FactorVAE score", d, t)
        })?);
        progress("DCI", 0, f);
        let n = settings.dci_points;
        let (train_y, test_y) = (truth.sample(n, &mut rng), truth.sample(n / 2, &mut rng));
        let (train, test) = (encode(&train_y)?, encode(&test_y)?);
        dcis.push(dci::dci(&train, &train_y, &test, &test_y, latent, &truth.levels()));
        progress("DCI", f, f);
    }
    let first = first.expect("at least one repeat");
    let n = gaps.len() as f64;
    let est = |v: &[Accuracy], pick: fn(&Accuracy) -> f64| Estimate::of(&v.iter().map(pick).collect::<Vec<_>>());
    Ok(Report {
        factors: truth.names(),
        mig: Estimate::of(&migs),
        mig_gaps: (0..f).map(|k| gaps.iter().map(|g| g[k]).sum::<f64>() / n).collect(),
        best_dims: first.best,
        information: first.information,
        beta_vae: est(&beta, |a| a.eval),
        beta_vae_train: est(&beta, |a| a.train),
        factor_vae: est(&factor, |a| a.eval),
        factor_vae_train: est(&factor, |a| a.train),
        dci_disentanglement: Estimate::of(&dcis.iter().map(|d| d.disentanglement).collect::<Vec<_>>()),
        dci_completeness: Estimate::of(&dcis.iter().map(|d| d.completeness).collect::<Vec<_>>()),
        dci_informativeness: Estimate::of(&dcis.iter().map(|d| d.informativeness).collect::<Vec<_>>()),
        dci_informativeness_train: Estimate::of(&dcis.iter().map(|d| d.informativeness_train).collect::<Vec<_>>()),
        dci_importance: dcis.first().map(|d| d.importance.clone()).unwrap_or_default(),
        settings,
    })
}

/// Each code dimension's factor: the one it carries most information about, as a fraction
/// of that factor's entropy (the normalisation MIG uses), estimated from `images` draws;
/// `None` for an inactive dimension (its means' variance at most 0.05, the FactorVAE score's
/// pruning) or one that carries less than 5% of every factor.
///
/// # Errors
/// If the images do not fit the model.
pub fn factor_of_each_dimension(
    model: &Model,
    pool: &Pool,
    truth: &dyn GroundTruth,
    images: usize,
    seed: u64,
) -> Result<Vec<Option<usize>>, InputError> {
    let f = truth.levels().len();
    let factors = truth.sample(images, &mut Rng::stream(seed, Purpose::Disentanglement, u64::MAX));
    let latent = model.config().latent_dim;
    let z = codes(model, pool, truth, &factors)?;
    let active: Vec<bool> = factor_scores::variances(&z, latent).iter().map(|&v| v > 0.05).collect();
    let m = mig::mig(&z, latent, &factors, f, mig::BINS);
    let entropy: Vec<f64> =
        (0..f).map(|k| mig::entropy(&factors.chunks_exact(f).map(|v| v[k]).collect::<Vec<_>>())).collect();
    Ok(m.information
        .iter()
        .zip(active)
        .map(|(row, active)| {
            let share = |k: usize| if entropy[k] > 0.0 { row[k] / entropy[k] } else { 0.0 };
            (0..f).max_by(|&a, &b| share(a).total_cmp(&share(b))).filter(|&k| active && share(k) >= 0.05)
        })
        .collect())
}

impl Report {
    /// The record `evals.jsonl` keeps (`"kind": "disentanglement"`, beside `vae eval`'s).
    pub fn to_json(&self) -> Value {
        let e = |x: Estimate| json!({ "mean": x.mean, "se": x.se });
        let c = self.settings.counts;
        json!({
            "kind": "disentanglement",
            "factors": self.factors,
            "mig": e(self.mig),
            "mig_gaps": self.mig_gaps,
            "best_dims": self.best_dims,
            "mutual_information": self.information,
            "beta_vae": e(self.beta_vae),
            "beta_vae_train": e(self.beta_vae_train),
            "factor_vae": e(self.factor_vae),
            "factor_vae_train": e(self.factor_vae_train),
            "dci": {
                "disentanglement": e(self.dci_disentanglement),
                "completeness": e(self.dci_completeness),
                "informativeness": e(self.dci_informativeness),
                "informativeness_train": e(self.dci_informativeness_train),
                "importance": self.dci_importance,
            },
            "settings": {
                "batch": c.batch, "train_points": c.train, "eval_points": c.eval,
                "variance_images": c.variance, "mig_images": self.settings.mig_images,
                "mig_bins": mig::BINS, "dci_points": self.settings.dci_points, "repeats": self.settings.repeats, "seed": self.settings.seed,
            },
        })
    }
}
