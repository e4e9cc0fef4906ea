//! The decoder's likelihood p(x|z): which density the output parameterises, its loss and
//! gradient, its log-density for evaluation, and the mean that pictures show.

use crate::core::likelihood::{self as k, Mixture};
use crate::core::{Pool, Rng, Shape};
use serde::{Deserialize, Serialize};

/// The density of a pixel given the decoder's output o.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Likelihood {
    /// Bernoulli(σ(o)): the tutorial's binary cross-entropy. A proper likelihood for binary
    /// images; on grey levels it is the usual, improper, choice.
    #[default]
    Bernoulli,
    /// Normal(o, σ²): σ fixed (`sigma`), or a learned log-variance per channel (`None`).
    Gaussian { sigma: Option<f32> },
    /// Continuous Bernoulli(σ(o)) (Loaiza-Ganem & Cunningham 2019): a proper density on
    /// [0, 1], the Bernoulli with its normalising constant.
    ContinuousBernoulli,
    /// A Normal(o, σ²)'s mass on each 8-bit value's bin, σ learned per channel
    /// ([`k::discretized`]): a probability over the 256 values, so its bits per dimension
    /// are a code length as they stand.
    DiscretizedGaussian,
    /// PixelCNN++'s discretized mixture of `mixtures` logistics per pixel, with RGB's
    /// channels depending linearly on the earlier ones ([`k::mixture`]): a probability over
    /// the 256 values; the decoder outputs every component's parameters.
    LogisticMixture { mixtures: usize },
}

/// The default number of components of [`Likelihood::LogisticMixture`] (PixelCNN++'s).
pub const DEFAULT_MIXTURES: usize = 10;

/// The most components of a mixture.
pub const MAX_MIXTURES: usize = 64;

/// Initial log-scale of a mixture's logistics: s = e^(−2.5) ≈ 0.08, a standard deviation of
/// sπ/√3 ≈ 0.15, close to [`LEARNED_LOGVAR_INIT`]'s σ for the same reason.
pub const MIXTURE_LOG_SCALE_INIT: f32 = -2.5;

/// Initial log-variance of a learned Gaussian likelihood: σ = e^(−2) ≈ 0.135, the scale of
/// a blurry reconstruction's error on [0, 1] data. At σ = 1 the reconstruction term is so
/// weak against the KL that the encoder's units collapse in the first epochs, before Adam
/// (which moves it ~1e-3 per step) has brought the variance down.
pub const LEARNED_LOGVAR_INIT: f32 = -4.0;

impl Likelihood {
    pub fn name(&self) -> &'static str {
        match self {
            Likelihood::Bernoulli => "bernoulli",
            Likelihood::Gaussian { .. } => "gaussian",
            Likelihood::ContinuousBernoulli => "continuous-bernoulli",
            Likelihood::DiscretizedGaussian => "discretized-gaussian",
            Likelihood::LogisticMixture { .. } => "logistic-mixture",
        }
    }

    /// A readable description: `gaussian (σ = 0.1)`, `gaussian (learned σ per channel)`.
    pub fn describe(&self) -> String {
        match self {
            Likelihood::Gaussian { sigma: Some(s) } => format!("gaussian (σ = {s})"),
            Likelihood::Gaussian { sigma: None } => "gaussian (learned σ per channel)".into(),
            Likelihood::DiscretizedGaussian => "discretized-gaussian (learned σ per channel)".into(),
            Likelihood::LogisticMixture { mixtures } => format!("logistic-mixture ({mixtures} components)"),
            other => other.name().into(),
        }
    }

    /// Whether the model has a learned log-variance per channel (`likelihood.logvar`).
    pub fn learns_variance(&self) -> bool {
        matches!(self, Likelihood::Gaussian { sigma: None } | Likelihood::DiscretizedGaussian)
    }

    /// Whether it is a density on [0, 1] or ℝ (so bits per dimension of 8-bit data mean
    /// something), rather than a probability of binary values.
    pub fn is_continuous(&self) -> bool {
        matches!(self, Likelihood::Gaussian { .. } | Likelihood::ContinuousBernoulli)
    }

    /// Whether it is a probability of the 256 values of 8-bit data.
    pub fn is_discrete(&self) -> bool {
        matches!(self, Likelihood::DiscretizedGaussian | Likelihood::LogisticMixture { .. })
    }

    /// The mixture's parameter layout on images of `shape`, if it is one.
    pub fn mixture(&self, shape: Shape) -> Option<Mixture> {
        match *self {
            Likelihood::LogisticMixture { mixtures } => {
                Some(Mixture { channels: shape.channels, plane: shape.plane(), components: mixtures })
            }
            _ => None,
        }
    }

    /// The decoder's output channels for images of `shape`: one per image channel, or the
    /// mixture's parameters per position.
    pub fn output_channels(&self, shape: Shape) -> usize {
        self.mixture(shape).map_or(shape.channels, |m| m.params())
    }

    /// The output value `o` whose distribution has mean `mean` (clipped to [0.001, 0.999]):
    /// the logit of the mean for the Bernoulli (whose mean is λ = σ(o)), the logit whose
    /// continuous Bernoulli has that mean (its mean is not λ: Loaiza-Ganem & Cunningham 2019,
    /// §4; [`k::cb_logit_of_mean`]), and the mean itself for the Gaussian. Starting the
    /// output bias here (Burda, Grosse & Salakhutdinov 2015's code, `get_train_bias_np`) has
    /// the untrained decoder draw the average image, so the first steps need not spend the
    /// encoder's signal learning it.
    pub fn link_of_mean(&self, mean: f32) -> f32 {
        let m = (mean as f64).clamp(0.001, 0.999);
        match self {
            Likelihood::Gaussian { .. } | Likelihood::DiscretizedGaussian | Likelihood::LogisticMixture { .. } => mean,
            Likelihood::Bernoulli => (m / (1.0 - m)).ln() as f32,
            Likelihood::ContinuousBernoulli => k::cb_logit_of_mean(m) as f32,
        }
    }

    /// Checks the settings; the message names the flag.
    ///
    /// # Errors
    /// A message naming `--sigma` if a fixed Gaussian σ is not a positive finite number.
    pub fn validate(&self) -> Result<(), String> {
        if let Likelihood::Gaussian { sigma: Some(s) } = self
            && !(s.is_finite() && *s > 0.0)
        {
            return Err(format!("--sigma must be a positive number, got {s}"));
        }
        if let Likelihood::LogisticMixture { mixtures } = self
            && !(1..=MAX_MIXTURES).contains(mixtures)
        {
            return Err(format!("--mixtures must be between 1 and {MAX_MIXTURES}, got {mixtures}"));
        }
        Ok(())
    }

    /// The per-row log-variance of a Gaussian: the learned per-channel values spread over
    /// each channel's `plane` rows, or 2 ln σ everywhere. Empty for the others.
    pub fn fill_logvar(&self, learned: &[f32], plane: usize, rows: &mut [f32]) {
        match self {
            Likelihood::Gaussian { sigma: Some(s) } => rows.fill(2.0 * s.ln()),
            Likelihood::Gaussian { sigma: None } | Likelihood::DiscretizedGaussian => {
                for (block, &lv) in rows.chunks_exact_mut(plane).zip(learned) {
                    block.fill(lv);
                }
            }
            _ => {}
        }
    }

    /// Forward and backward of Σ −log p(x|z) per column on images of `shape` (P values).
    /// `out` holds the output layer's product `[R, cols]` on entry (R = P, or the mixture's
    /// parameters · plane; bias `bias` \[R\] added here) and ∂loss/∂out on exit; writes the
    /// row sums (the bias gradient) into `db` \[R\], a Gaussian's log-variance row gradients
    /// into `dlogvar` \[P\], and each column's loss into `col_loss[..cols]`. Targets `x`
    /// \[P, cols\].
    #[allow(clippy::too_many_arguments)]
    pub fn loss(
        &self,
        pool: &Pool,
        shape: Shape,
        out: &mut [f32],
        bias: &[f32],
        logvar: &[f32],
        x: &[f32],
        db: &mut [f32],
        dlogvar: &mut [f32],
        col_loss: &mut [f32],
        cols: usize,
    ) {
        match self {
            Likelihood::Bernoulli => k::bernoulli_bce(pool, out, bias, x, db, col_loss, cols),
            Likelihood::Gaussian { .. } => k::gaussian_nll(pool, out, bias, logvar, x, db, dlogvar, col_loss, cols),
            Likelihood::ContinuousBernoulli => k::continuous_bernoulli_nll(pool, out, bias, x, db, col_loss, cols),
            Likelihood::DiscretizedGaussian => {
                k::discretized_gaussian_nll(pool, out, bias, logvar, x, db, dlogvar, col_loss, cols)
            }
            Likelihood::LogisticMixture { .. } => {
                let m = self.mixture(shape).expect("a mixture");
                k::logistic_mixture_nll(pool, m, out, bias, x, db, col_loss, cols)
            }
        }
    }

    /// Forward only: each column's log p(x|z) into `col_ll[..cols]`. Shapes as [`Likelihood::loss`].
    #[allow(clippy::too_many_arguments)]
    pub fn log_likelihood(
        &self,
        pool: &Pool,
        shape: Shape,
        out: &[f32],
        bias: &[f32],
        logvar: &[f32],
        x: &[f32],
        col_ll: &mut [f32],
        cols: usize,
    ) {
        match self {
            Likelihood::Bernoulli => k::bernoulli_log_likelihood(pool, out, bias, x, col_ll, cols),
            Likelihood::Gaussian { .. } => k::gaussian_log_likelihood(pool, out, bias, logvar, x, col_ll, cols),
            Likelihood::ContinuousBernoulli => k::continuous_bernoulli_log_likelihood(pool, out, bias, x, col_ll, cols),
            Likelihood::DiscretizedGaussian => {
                k::discretized_gaussian_log_likelihood(pool, out, bias, logvar, x, col_ll, cols)
            }
            Likelihood::LogisticMixture { .. } => {
                let m = self.mixture(shape).expect("a mixture");
                k::logistic_mixture_log_likelihood(pool, m, out, bias, x, col_ll, cols)
            }
        }
    }

    /// The image a decoder output stands for, in place: the mean of p(x|z) (σ(o) for the
    /// Bernoulli, the continuous Bernoulli's own mean, the Gaussian's mean clamped to [0, 1],
    /// the mixture's mean in the first P rows of `out`).
    pub fn mean(&self, shape: Shape, out: &mut [f32], bias: &[f32], cols: usize) {
        match self {
            Likelihood::LogisticMixture { .. } => {
                k::mixture::logistic_mixture_mean(self.mixture(shape).expect("a mixture"), out, bias, cols)
            }
            Likelihood::Bernoulli => k::bias_sigmoid(out, bias, cols),
            Likelihood::Gaussian { .. } | Likelihood::DiscretizedGaussian => k::bias_clamp(out, bias, cols),
            Likelihood::ContinuousBernoulli => k::bias_cb_mean(out, bias, cols),
        }
    }
}

impl Likelihood {
    /// One image drawn from p(x|z) per column, in place in the first P rows of `out`, as
    /// [`Likelihood::mean`] writes the mean: `out` \[R, cols\] the output layer's product,
    /// `bias` \[R\], `logvar` \[P\] a Gaussian's per-row log-variance. Each draw is a value
    /// the likelihood gives mass to: 0 or 1 for the Bernoulli; μ + σε clamped to [0, 1] for
    /// the Gaussian (a density on dequantized values in [0, 1)); the continuous Bernoulli's
    /// inverse CDF ln(1 + u(eˡ − 1))/l; the discretized likelihoods' values v/255.
    #[allow(clippy::too_many_arguments)]
    pub fn draw(&self, shape: Shape, out: &mut [f32], bias: &[f32], logvar: &[f32], cols: usize, rng: &mut Rng) {
        if let Some(m) = self.mixture(shape) {
            return k::mixture::logistic_mixture_sample(m, out, bias, cols, rng);
        }
        let p = shape.size();
        assert!(bias.len() >= p && out.len() >= p * cols, "out needs [P, cols]");
        let mut normal = [0.0f32; 1];
        for (r, row) in out[..p * cols].chunks_exact_mut(cols).enumerate() {
            for o in row {
                let theta = (*o + bias[r]) as f64;
                let u = rng.uniform();
                *o = match self {
                    Likelihood::Bernoulli => f32::from(u < 1.0 / (1.0 + (-theta).exp())),
                    Likelihood::ContinuousBernoulli if theta.abs() < 1e-6 => u as f32,
                    Likelihood::ContinuousBernoulli => ((u * theta.exp_m1()).ln_1p() / theta).clamp(0.0, 1.0) as f32,
                    Likelihood::Gaussian { .. } | Likelihood::DiscretizedGaussian => {
                        rng.fill_normal(&mut normal);
                        let x = theta + (0.5 * logvar[r] as f64).exp() * normal[0] as f64;
                        if self.is_discrete() {
                            ((x * 255.0).round().clamp(0.0, 255.0) / 255.0) as f32
                        } else {
                            x.clamp(0.0, 1.0) as f32
                        }
                    }
                    Likelihood::LogisticMixture { .. } => unreachable!("drawn above"),
                };
            }
        }
    }
}

impl std::fmt::Display for Likelihood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws take values the likelihood gives mass to, with its mean: 4,000 draws per row
    /// (output 0.3 + bias 0.1): Bernoulli 0/1 with frequency σ(0.4) = 0.5987; Gaussian
    /// (σ = 0.05, clamped) and discretized Gaussian (on the grid v/255) around 0.4; the
    /// continuous Bernoulli's mean at l = 0.4 is 1/(1 − e⁻⁰·⁴) − 1/0.4 = 0.5332; each within
    /// 4 standard errors.
    #[test]
    fn draws_have_the_likelihoods_means() {
        let shape = Shape::new(1, 1, 1);
        let cols = 4000;
        let logvar = [2.0 * 0.05f32.ln()];
        let cases = [
            (Likelihood::Bernoulli, 0.5987, 0.49),
            (Likelihood::Gaussian { sigma: Some(0.05) }, 0.4, 0.05),
            (Likelihood::DiscretizedGaussian, 0.4, 0.05),
            (Likelihood::ContinuousBernoulli, 0.5332, 0.29),
        ];
        for (lik, mean, sd) in cases {
            let mut out = vec![0.3f32; cols];
            lik.draw(shape, &mut out, &[0.1], &logvar, cols, &mut Rng::new(5));
            let got = out.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
            assert!((got - mean).abs() < 4.0 * sd / (cols as f64).sqrt(), "{lik}: {got} vs {mean}");
            assert!(out.iter().all(|&v| (0.0..=1.0).contains(&v)), "{lik}");
            if lik.is_discrete() {
                assert!(out.iter().all(|&v| ((v * 255.0).round() - v * 255.0).abs() < 1e-4), "{lik}: off the grid");
            }
            if lik == Likelihood::Bernoulli {
                assert!(out.iter().all(|&v| v == 0.0 || v == 1.0));
            }
        }
    }

    /// logit(m) = ln(m / (1 − m)): 0 at ½, ln(0.001/0.999) = −6.9068 at the lower clip; the
    /// Gaussian's mean parameter is the mean itself; the continuous Bernoulli's output has
    /// that mean (not λ = σ(o) = m, which has another).
    #[test]
    fn link_of_mean_inverts_each_mean() {
        let b = Likelihood::Bernoulli;
        assert_eq!(b.link_of_mean(0.5), 0.0);
        assert!((b.link_of_mean(0.0) - (0.001f64 / 0.999).ln() as f32).abs() < 1e-6);
        assert!((b.link_of_mean(1.0) + b.link_of_mean(0.0)).abs() < 1e-5, "the clip is symmetric");
        assert_eq!(Likelihood::Gaussian { sigma: None }.link_of_mean(0.3), 0.3);
        for m in [0.001f32, 0.02, 0.4, 0.93, 0.999] {
            let o = Likelihood::ContinuousBernoulli.link_of_mean(m);
            assert!((k::cb_mean(o) - m).abs() < 2e-6, "{m}: the mean of {o} is {}", k::cb_mean(o));
        }
    }
}
