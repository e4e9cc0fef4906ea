//! Training-time augmentation, `--augment hflip,crop`: each training image of each step is
//! flipped left–right with probability ½ (torchvision's `RandomHorizontalFlip()`) and/or cut
//! from a copy padded by P pixels on every side at a uniform offset (torchvision's
//! `RandomCrop(S, padding=P, padding_mode="edge")`: the border repeats the image's edge
//! pixels, so no black or white frame enters what the decoder learns). Test images are
//! never augmented.

use crate::core::{Rng, Shape};
use serde::{Deserialize, Serialize};

/// The augmentations of a run; saved in `config.json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// Flip each image left–right with probability ½.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hflip: bool,
    /// Shift each image by up to this many pixels in each direction (0 = no crop).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub crop: usize,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// What `--augment` asked for, before the images' size fixes the default padding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AugmentArg {
    pub hflip: bool,
    /// `crop` (`Some(None)`: the default padding) or `crop:P`.
    pub crop: Option<Option<usize>>,
}

impl std::str::FromStr for AugmentArg {
    type Err = String;

    /// A comma-separated list of `hflip`, `crop` and `crop:P`, or `none`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut a = AugmentArg::default();
        for part in s.split(',').map(str::trim) {
            match part.split_once(':') {
                _ if part == "none" => {}
                _ if part == "hflip" => a.hflip = true,
                _ if part == "crop" => a.crop = Some(None),
                Some(("crop", p)) => match p.parse::<usize>() {
                    Ok(p) if p >= 1 => a.crop = Some(Some(p)),
                    _ => return Err(format!("'{part}': crop's padding must be a whole number of pixels ≥ 1")),
                },
                _ => {
                    return Err(format!(
                        "'{part}' is not an augmentation; use hflip, crop (padding S/8), crop:P, or a list such as \
                         hflip,crop"
                    ));
                }
            }
        }
        Ok(a)
    }
}

impl AugmentArg {
    /// The augmentation for images of `shape`: `crop`'s padding defaults to an eighth of the
    /// shorter side (4 pixels at 32×32, as CIFAR training pads), at least 1.
    ///
    /// # Errors
    /// A message naming `--augment` if the padding is more than half the shorter side.
    pub fn resolve(&self, shape: Shape) -> Result<Augment, String> {
        let side = shape.height.min(shape.width);
        let crop = match self.crop {
            None => 0,
            Some(None) => (side / 8).max(1),
            Some(Some(p)) if p <= side / 2 => p,
            Some(Some(p)) => {
                return Err(format!(
                    "--augment crop:{p} shifts the {side}-pixel images by more than half their side; use at most \
                     crop:{}",
                    side / 2
                ));
            }
        };
        Ok(Augment { hflip: self.hflip, crop })
    }
}

impl Augment {
    pub fn is_none(&self) -> bool {
        !self.hflip && self.crop == 0
    }

    /// `hflip,crop:4`, or `none`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.hflip {
            parts.push("hflip".to_string());
        }
        if self.crop > 0 {
            parts.push(format!("crop:{}", self.crop));
        }
        if parts.is_empty() { "none".into() } else { parts.join(",") }
    }

    /// Writes `src`, one channel-major image of `shape`, flipped and shifted into `dst`.
    /// Every image draws three numbers from `rng` (flip, column and row shift) whatever is
    /// enabled, so the stream's use does not depend on the options.
    pub fn apply(&self, src: &[u8], dst: &mut [u8], shape: Shape, rng: &mut Rng) {
        let (h, w) = (shape.height, shape.width);
        let span = 2 * self.crop as u64 + 1;
        let flip = rng.next_u64() & 1 == 1 && self.hflip;
        let dx = rng.below(span) as isize - self.crop as isize;
        let dy = rng.below(span) as isize - self.crop as isize;
        let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
        for (plane, src) in dst.chunks_exact_mut(h * w).zip(src.chunks_exact(h * w)) {
            for (y, row) in plane.chunks_exact_mut(w).enumerate() {
                let sy = clamp(y as isize + dy, h);
                for (xo, v) in row.iter_mut().enumerate() {
                    let xs = if flip { w - 1 - xo } else { xo };
                    *v = src[sy * w + clamp(xs as isize + dx, w)];
                }
            }
        }
    }

    /// The images `idx` of `images` (`[n, shape.size()]` bytes), each augmented by the draws
    /// of its own stream under `key` ([`Rng::example`]), one after another in `out` (resized
    /// to `[idx.len(), shape.size()]`).
    pub fn batch(&self, images: &[u8], idx: &[u32], shape: Shape, key: u64, out: &mut Vec<u8>) {
        let p = shape.size();
        out.resize(idx.len() * p, 0);
        for (dst, &i) in out.chunks_exact_mut(p).zip(idx) {
            self.apply(&images[i as usize * p..(i as usize + 1) * p], dst, shape, &mut Rng::example(key, i as u64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Purpose;

    #[test]
    fn parses_lists_and_resolves_the_padding() {
        let a: AugmentArg = "hflip,crop".parse().unwrap();
        assert_eq!(a.resolve(Shape::new(3, 32, 32)).unwrap(), Augment { hflip: true, crop: 4 });
        assert_eq!(a.resolve(Shape::new(1, 28, 28)).unwrap().crop, 3);
        assert_eq!(a.resolve(Shape::new(1, 4, 4)).unwrap().crop, 1);
        let c: AugmentArg = "crop:2".parse().unwrap();
        assert_eq!(c.resolve(Shape::new(3, 64, 64)).unwrap(), Augment { hflip: false, crop: 2 });
        assert!(c.resolve(Shape::new(1, 3, 3)).unwrap_err().contains("crop:1"));
        assert!("none".parse::<AugmentArg>().unwrap().resolve(Shape::mnist()).unwrap().is_none());
        for bad in ["flip", "crop:0", "crop:x", "hflip,rotate", ""] {
            assert!(bad.parse::<AugmentArg>().is_err(), "{bad}");
        }
        assert_eq!(Augment { hflip: true, crop: 4 }.label(), "hflip,crop:4");
    }

    /// One 2×3 image with two channels, flipped and shifted by hand: every output pixel is
    /// the input's pixel at the mirrored column plus the shift, clamped to the edge.
    #[test]
    fn flips_and_shifts_with_edge_padding() {
        let shape = Shape::new(2, 2, 3);
        let image: Vec<u8> = (0..12).collect();
        let aug = Augment { hflip: true, crop: 1 };
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut rng = Rng::stream(seed, Purpose::Augment, 1);
            let mut probe = rng.clone();
            let flip = probe.next_u64() & 1 == 1;
            let dx = probe.below(3) as isize - 1;
            let dy = probe.below(3) as isize - 1;
            let mut x = vec![0u8; 12];
            aug.apply(&image, &mut x, shape, &mut rng);
            for c in 0..2 {
                for y in 0..2isize {
                    for col in 0..3isize {
                        let xs = if flip { 2 - col } else { col };
                        let (sy, sx) = ((y + dy).clamp(0, 1), (xs + dx).clamp(0, 2));
                        let want = image[c * 6 + (sy * 3 + sx) as usize];
                        assert_eq!(x[c * 6 + (y * 3 + col) as usize], want, "seed {seed}");
                    }
                }
            }
            seen.insert((flip, dx, dy));
        }
        // 200 draws reach all 2 × 3 × 3 combinations.
        assert_eq!(seen.len(), 18);
    }

    /// A batch takes the images it names, in order, each with its own draw: only flips
    /// here, so each output is its image or its mirror, and both occur.
    #[test]
    fn a_batch_augments_each_named_image() {
        let shape = Shape::new(1, 1, 4);
        let images: Vec<u8> = (0..12).collect(); // three 1×4 images
        let mut out = Vec::new();
        let (mut plain, mut mirrored) = (0, 0);
        for seed in 0..20 {
            let key = Rng::example_key(seed, Purpose::Augment, 1);
            Augment { hflip: true, crop: 0 }.batch(&images, &[2, 0], shape, key, &mut out);
            assert_eq!(out.len(), 8);
            for (got, i) in out.chunks(4).zip([2usize, 0]) {
                let src = &images[i * 4..i * 4 + 4];
                let rev: Vec<u8> = src.iter().rev().copied().collect();
                match got {
                    g if g == src => plain += 1,
                    g if g == &rev[..] => mirrored += 1,
                    g => panic!("{g:?} is neither image {i} nor its mirror"),
                }
            }
        }
        assert!(plain > 5 && mirrored > 5, "{plain} plain, {mirrored} mirrored");
    }
}
