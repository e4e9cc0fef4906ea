//! Binarized MNIST: each pixel drawn as Bernoulli(intensity), so the Bernoulli likelihood is
//! a proper probability and test log-likelihoods compare with published tables.
//!
//! `dynamic`: resampled every time an image is used in training (Burda et al. 2015, §5);
//! the test set is binarized once with a fixed seed so evaluations are repeatable.
//! `static`: one fixed draw of both splits, seeded by the run's seed.

use super::Split;
use crate::core::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Binarize {
    /// Grey levels as they are, intensities in [0, 1] (the tutorial's).
    #[default]
    None,
    /// A fresh Bernoulli draw of every training image each time it is used.
    Dynamic,
    /// One fixed Bernoulli draw of the training and test sets.
    Static,
}

impl Binarize {
    pub fn is_none(&self) -> bool {
        *self == Binarize::None
    }
}

/// P(pixel = 1) = v/255 as a threshold on a uniform u32: `u < threshold(v)`.
#[inline]
fn threshold(v: u8) -> u64 {
    (v as u64 * (1u64 << 32)).div_ceil(255)
}

/// Replaces every pixel of `split` by 0 or 255, each 255 with probability v/255.
pub fn binarize_split(split: &mut Split, rng: &mut Rng) {
    for px in &mut split.images {
        let u = rng.next_u64() >> 32;
        *px = if u < threshold(*px) { 255 } else { 0 };
    }
}

/// Like `kernels::gather_images`, but each pixel is a fresh Bernoulli(v/255) draw in {0, 1},
/// the image at `indices[b]` tossing the coins of example `ids[b]`'s own stream under `key`
/// ([`Rng::example`]; the two differ when the images are an augmented copy of the batch).
/// Shapes: `images` [count, pixels] bytes, `x` [pixels, batch].
pub fn gather_binarized(images: &[u8], pixels: usize, (indices, ids): (&[u32], &[u32]), x: &mut [f32], key: u64) {
    let batch = indices.len();
    for (b, (&i, &id)) in indices.iter().zip(ids).enumerate() {
        let rng = &mut Rng::example(key, id as u64);
        let img = &images[i as usize * pixels..(i as usize + 1) * pixels];
        for (f, pair) in img.chunks(2).enumerate() {
            let r = rng.next_u64();
            let (u0, u1) = (r >> 32, r & 0xffff_ffff);
            x[2 * f * batch + b] = f32::from(u8::from(u0 < threshold(pair[0])));
            if let Some(&v) = pair.get(1) {
                x[(2 * f + 1) * batch + b] = f32::from(u8::from(u1 < threshold(v)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_stays_black_white_stays_white_grey_is_a_coin() {
        assert_eq!(threshold(0), 0);
        assert_eq!(threshold(255), 1 << 32);
        let mut s = Split {
            images: [0, 255, 128, 64].repeat(20_000),
            labels: vec![0; 20_000],
            shape: crate::core::Shape::new(1, 2, 2),
        };
        binarize_split(&mut s, &mut Rng::new(1));
        let ones = |k: usize| s.images.iter().skip(k).step_by(4).filter(|&&v| v == 255).count() as f64 / 20_000.0;
        assert_eq!((ones(0), ones(1)), (0.0, 1.0));
        // Binomial standard error sqrt(p(1-p)/n) ≈ 0.0035; allow 5 of them.
        assert!((ones(2) - 128.0 / 255.0).abs() < 0.018, "{}", ones(2));
        assert!((ones(3) - 64.0 / 255.0).abs() < 0.016, "{}", ones(3));
    }

    #[test]
    fn dynamic_gather_draws_fresh_values_in_the_transposed_layout() {
        let images = [0u8, 255, 128, 255, 0, 128];
        let (mut a, mut b) = (vec![9.0f32; 6], vec![9.0f32; 6]);
        let mut differs = false;
        for key in 0..50 {
            gather_binarized(&images, 3, (&[1, 0], &[1, 0]), &mut a, 2 * key);
            gather_binarized(&images, 3, (&[1, 0], &[1, 0]), &mut b, 2 * key + 1);
            // x[f, b]: column 0 is image 1, column 1 is image 0.
            assert_eq!((a[0], a[1], a[2], a[3]), (1.0, 0.0, 0.0, 1.0));
            differs |= a[4] != b[4] || a[5] != b[5];
        }
        assert!(differs, "grey pixels never changed between draws");
        // An image's coins are its own: alone, or at another batch position, the same draw.
        let (mut one, mut two) = (vec![0.0f32; 3], vec![0.0f32; 6]);
        for key in 0..20 {
            gather_binarized(&images, 3, (&[0], &[0]), &mut one, key);
            gather_binarized(&images, 3, (&[1, 0], &[1, 0]), &mut two, key);
            assert_eq!(one, [two[1], two[3], two[5]]);
        }
    }
}
