//! The two classifier scores of disentanglement: which factor was held fixed, told from the
//! codes of a batch of images. As disentanglement_lib computes them (Locatello et al. 2019,
//! `beta_vae.py` and `factor_vae.py`), from the means of q(z|x):
//!
//! - **β-VAE score** (Higgins et al. 2017, §3): a point is a factor k and 64 pairs of images
//!   that agree on k (all else drawn afresh); its feature is the mean absolute difference of
//!   the pairs' codes, per dimension. A linear classifier ([`Logistic`]) learns k from 10,000
//!   points; the score is its accuracy on 5,000 others.
//! - **FactorVAE score** (Kim & Mnih 2018, §4): each code dimension is scaled by its standard
//!   deviation over 10,000 images, dimensions whose variance is at most 0.05 dropped; a point
//!   is 64 images sharing factor k, and its vote the dimension whose (scaled) variance over
//!   them is smallest. A majority vote maps each dimension to a factor (from 10,000 votes);
//!   the score is that map's accuracy on 5,000 others.

use super::logistic::Logistic;
use super::truth::GroundTruth;
use crate::core::Rng;
use crate::model::InputError;

/// The codes of images with the given factors (`[n, F]` levels in, `[n, latent]` out): a
/// model's means ([`super::truth::codes`]), or in tests any function of the factors.
pub type Encode<'a> = dyn FnMut(&[usize]) -> Result<Vec<f32>, InputError> + 'a;

/// Sample counts of the two scores (disentanglement_lib's defaults by [`Default`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Images per point.
    pub batch: usize,
    /// Points to fit the classifier on.
    pub train: usize,
    /// Points to score it on.
    pub eval: usize,
    /// Images for the FactorVAE score's per-dimension variances.
    pub variance: usize,
}

impl Default for Counts {
    fn default() -> Counts {
        Counts { batch: 64, train: 10_000, eval: 5_000, variance: 10_000 }
    }
}

/// A classifier's accuracy on the points it was fitted to and on fresh ones (the score).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Accuracy {
    pub train: f64,
    pub eval: f64,
}

/// Points encoded this many at a time (images = points · batch, or twice that).
const POINTS_PER_PASS: usize = 16;

/// The β-VAE score of the codes `encode` gives on `truth`. `progress(done, total)` is told after each pass.
///
/// # Errors
/// If the images do not fit the model.
pub fn beta_vae(
    truth: &dyn GroundTruth,
    latent: usize,
    encode: &mut Encode,
    counts: Counts,
    rng: &mut Rng,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Accuracy, InputError> {
    let (f, b) = (truth.levels().len(), counts.batch);
    let total = counts.train + counts.eval;
    let (mut features, mut labels) = (Vec::with_capacity(total * latent), Vec::with_capacity(total));
    // A point: 64 pairs agreeing on factor k, the first images then their partners.
    let draw = |k: usize, rng: &mut Rng| {
        let mut pairs = truth.sample(b, rng);
        let mut second = truth.sample(b, rng);
        for (s, t) in second.chunks_exact_mut(f).zip(pairs.chunks_exact(f)) {
            s[k] = t[k];
        }
        pairs.extend(second);
        pairs
    };
    in_passes(f, total, encode, rng, draw, progress, |_, k, point| {
        let (first, second) = point.split_at(b * latent);
        for d in 0..latent {
            let sum: f64 = (0..b).map(|i| (first[i * latent + d] - second[i * latent + d]).abs() as f64).sum();
            features.push(sum / b as f64);
        }
        labels.push(k);
    })?;
    let split = counts.train * latent;
    let classifier = Logistic::fit(&features[..split], &labels[..counts.train], latent, f, 1.0);
    Ok(Accuracy {
        train: classifier.accuracy(&features[..split], &labels[..counts.train]),
        eval: classifier.accuracy(&features[split..], &labels[counts.train..]),
    })
}

/// Both scores' points, `total` of them, [`POINTS_PER_PASS`] encoded at a time: each a
/// factor k drawn uniformly from the `f` and the images `draw(k, rng)` gives (`[n, F]`
/// levels); `each(index, k, codes)` gets its codes `[n, latent]` in order, and `progress`
/// the count after each pass.
fn in_passes(
    f: usize,
    total: usize,
    encode: &mut Encode,
    rng: &mut Rng,
    draw: impl Fn(usize, &mut Rng) -> Vec<usize>,
    progress: &mut dyn FnMut(usize, usize),
    mut each: impl FnMut(usize, usize, &[f32]),
) -> Result<(), InputError> {
    let mut done = 0;
    while done < total {
        let points = POINTS_PER_PASS.min(total - done);
        let mut factors = Vec::new();
        let ks: Vec<usize> = (0..points)
            .map(|_| {
                let k = rng.below(f as u64) as usize;
                factors.extend(draw(k, rng));
                k
            })
            .collect();
        let z = encode(&factors)?;
        let per = z.len() / points;
        for (p, (&k, codes)) in ks.iter().zip(z.chunks_exact(per)).enumerate() {
            each(done + p, k, codes);
        }
        done += points;
        progress(done, total);
    }
    Ok(())
}

/// Per-dimension variance of `codes` (`[n, latent]`), with n − 1 in the denominator (numpy's
/// `ddof=1`, as disentanglement_lib).
pub fn variances(codes: &[f32], latent: usize) -> Vec<f64> {
    let n = codes.len() / latent;
    (0..latent)
        .map(|d| {
            let mean = (0..n).map(|i| codes[i * latent + d] as f64).sum::<f64>() / n as f64;
            (0..n).map(|i| (codes[i * latent + d] as f64 - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0).max(1.0)
        })
        .collect()
}

/// The FactorVAE score of the codes `encode` gives on `truth`; 0 when no dimension is active. `progress(done,
/// total)` is told after each pass.
///
/// # Errors
/// If the images do not fit the model.
pub fn factor_vae(
    truth: &dyn GroundTruth,
    latent: usize,
    encode: &mut Encode,
    counts: Counts,
    rng: &mut Rng,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Accuracy, InputError> {
    let (f, b) = (truth.levels().len(), counts.batch);
    let global = variances(&encode(&truth.sample(counts.variance, rng))?, latent);
    let active: Vec<usize> = (0..latent).filter(|&d| global[d] > 0.05).collect();
    if active.is_empty() {
        return Ok(Accuracy::default());
    }
    let total = counts.train + counts.eval;
    // votes[(dimension, factor)], for the fitting points and the scoring points.
    let (mut fit, mut score) = (vec![0usize; active.len() * f], vec![0usize; active.len() * f]);
    // A point: 64 images sharing the first one's factor k.
    let draw = |k: usize, rng: &mut Rng| {
        let mut batch = truth.sample(b, rng);
        let fixed = batch[k];
        batch.chunks_exact_mut(f).for_each(|row| row[k] = fixed);
        batch
    };
    in_passes(f, total, encode, rng, draw, progress, |index, k, point| {
        let local = variances(point, latent);
        let vote = (0..active.len())
            .min_by(|&i, &j| (local[active[i]] / global[active[i]]).total_cmp(&(local[active[j]] / global[active[j]])))
            .unwrap_or(0);
        let votes = if index < counts.train { &mut fit } else { &mut score };
        votes[vote * f + k] += 1;
    })?;
    // Each dimension's factor: the one it voted for most while fitting.
    let map: Vec<usize> = (0..active.len())
        .map(|d| (0..f).max_by_key(|&k| (fit[d * f + k], std::cmp::Reverse(k))).unwrap_or(0))
        .collect();
    let accuracy = |votes: &[usize]| {
        let right: usize = (0..active.len()).map(|d| votes[d * f + map[d]]).sum();
        right as f64 / votes.iter().sum::<usize>().max(1) as f64
    };
    Ok(Accuracy { train: accuracy(&fit), eval: accuracy(&score) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two factors of 5 and 8 levels.
    struct Grid;
    impl GroundTruth for Grid {
        fn names(&self) -> Vec<String> {
            vec!["a".into(), "b".into()]
        }
        fn levels(&self) -> Vec<usize> {
            vec![5, 8]
        }
        fn observe(&self, _: &[usize]) -> (Vec<f32>, Vec<u8>) {
            unreachable!("the tests encode factors directly")
        }
    }

    const SMALL: Counts = Counts { batch: 16, train: 300, eval: 200, variance: 1000 };

    /// Codes (a, b, 0) with a little noise: each factor its own dimension, the third dead.
    fn disentangled(factors: &[usize], rng: &mut Rng) -> Vec<f32> {
        factors
            .chunks(2)
            .flat_map(|f| [f[0] as f32 + 0.01 * rng.uniform_f32(), f[1] as f32, 0.001 * rng.uniform_f32()])
            .collect()
    }

    #[test]
    fn codes_that_copy_the_factors_score_one() {
        let mut noise = Rng::new(3);
        let mut encode = |f: &[usize]| Ok(disentangled(f, &mut noise));
        let b = beta_vae(&Grid, 3, &mut encode, SMALL, &mut Rng::new(1), &mut |_, _| {}).unwrap();
        assert_eq!((b.train, b.eval), (1.0, 1.0));
        let f = factor_vae(&Grid, 3, &mut encode, SMALL, &mut Rng::new(1), &mut |_, _| {}).unwrap();
        assert_eq!((f.train, f.eval), (1.0, 1.0));
    }

    #[test]
    fn codes_that_mix_the_factors_score_less_and_constant_codes_score_nothing() {
        // Both dimensions move with both factors: holding one fixed leaves both varying.
        let mut mixed = |f: &[usize]| -> Result<Vec<f32>, InputError> {
            Ok(f.chunks(2).flat_map(|f| [(f[0] + f[1]) as f32, f[0] as f32 - f[1] as f32]).collect())
        };
        let fv = factor_vae(&Grid, 2, &mut mixed, SMALL, &mut Rng::new(1), &mut |_, _| {}).unwrap();
        assert!(fv.eval < 0.9, "{fv:?}");
        let mut dead = |f: &[usize]| -> Result<Vec<f32>, InputError> { Ok(vec![0.0; f.len() / 2 * 3]) };
        let none = factor_vae(&Grid, 3, &mut dead, SMALL, &mut Rng::new(1), &mut |_, _| {}).unwrap();
        assert_eq!(none, Accuracy::default());
        // The β-VAE score of constant codes: chance, the classifier knows nothing.
        let bv = beta_vae(&Grid, 3, &mut dead, SMALL, &mut Rng::new(1), &mut |_, _| {}).unwrap();
        assert!(bv.eval < 0.7, "{bv:?}");
    }
}
