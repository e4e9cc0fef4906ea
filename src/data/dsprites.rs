//! dSprites (Matthey, Higgins, Hassabis & Lerchner 2017, "dSprites: disentanglement testing
//! sprites dataset"), generated here rather than downloaded: every combination of five
//! ground-truth factors, exactly once, as a binary 64 × 64 image.
//!
//! | factor | levels | values (as the published `latents_values`) |
//! |---|---|---|
//! | shape | 3 | square, ellipse, heart |
//! | scale | 6 | 0.5 … 1, evenly spaced |
//! | orientation | 40 | 0 … 2π radians, evenly spaced (both ends: levels 0 and 39 draw the same image, as in the published file) |
//! | position x | 32 | 0 … 1, evenly spaced |
//! | position y | 32 | 0 … 1, evenly spaced |
//!
//! 3 · 6 · 40 · 32 · 32 = 737,280 images, in the published order (shape slowest, position y
//! fastest: [`index`]). The grids are the published ones exactly; the drawing is ours, since
//! the original renderer was never released: a position maps the shape's centre linearly onto
//! pixels 16 … 48 of the 64 (x left to right, y top to bottom); at scale 1 the square's side is
//! 20 px, the ellipse's axes 28 × 14 px, the heart 23 px wide (the implicit curve
//! (x² + y² − 1)³ = x² y³, point down), so no shape at any orientation leaves the canvas; a
//! pixel is on when its centre lies inside the shape (no anti-aliasing: the published images
//! are binary too). The outlines and sizes are close to, not equal to, the published
//! sprites': a model trained here is compared with published figures as a model on a
//! rendering of the same factor grid.

use crate::core::Shape;

/// Pixels per side.
pub const SIDE: usize = 64;
/// The factors' names, in the published order.
pub const FACTORS: [&str; 5] = ["shape", "scale", "orientation", "position x", "position y"];
/// Levels of each factor.
pub const LEVELS: [usize; 5] = [3, 6, 40, 32, 32];
/// The shapes' names (the labels of a dSprites dataset: a CVAE conditions on shape).
pub const SHAPES: [&str; 3] = ["square", "ellipse", "heart"];
/// Images in the dataset: one per combination of levels.
pub const COUNT: usize = 3 * 6 * 40 * 32 * 32;

/// The image shape: one channel, 64 × 64.
pub fn shape() -> Shape {
    Shape::new(1, SIDE, SIDE)
}

/// The value of `factor` at `level` (the shape's is its index 0, 1, 2).
pub fn value(factor: usize, level: usize) -> f64 {
    let last = (LEVELS[factor] - 1) as f64;
    let t = level as f64 / last;
    match factor {
        0 => level as f64,
        1 => 0.5 + 0.5 * t,
        2 => 2.0 * std::f64::consts::PI * t,
        _ => t,
    }
}

/// The position of the image with these factor levels in the published order.
pub fn index(levels: [usize; 5]) -> usize {
    levels.iter().zip(LEVELS).fold(0, |i, (&l, n)| i * n + l)
}

/// The factor levels of image `index` ([`index`]'s inverse).
pub fn levels(mut index: usize) -> [usize; 5] {
    let mut out = [0; 5];
    for f in (0..5).rev() {
        out[f] = index % LEVELS[f];
        index /= LEVELS[f];
    }
    out
}

/// Whether the point (u, v) of the shape's own frame (pixels at scale 1, v up, centred) is
/// inside `shape`.
fn inside(shape: usize, u: f64, v: f64) -> bool {
    match shape {
        0 => u.abs() <= 10.0 && v.abs() <= 10.0,
        1 => (u / 14.0).powi(2) + (v / 7.0).powi(2) <= 1.0,
        _ => {
            // The implicit heart spans x ∈ [−1.14, 1.14], y ∈ [−1, 1.24]: centred on its box,
            // 10 px per unit.
            let (x, y) = (u / 10.0, v / 10.0 + 0.12);
            let r = x * x + y * y - 1.0;
            r * r * r - x * x * y * y * y <= 0.0
        }
    }
}

/// Draws the image with factor levels `levels` into `out` (`SIDE²` bytes, 0 or 255).
pub fn render(levels: [usize; 5], out: &mut [u8]) {
    let [shape, ..] = levels;
    let scale = value(1, levels[1]);
    let (sin, cos) = value(2, levels[2]).sin_cos();
    let (cx, cy) = (16.0 + 32.0 * value(3, levels[3]), 16.0 + 32.0 * value(4, levels[4]));
    out[..SIDE * SIDE].fill(0);
    // Every shape stays within 16 px of its centre at scale 1.
    let lo = |c: f64| ((c - 16.0).floor().max(0.0)) as usize;
    let hi = |c: f64| ((c + 16.0).ceil() as usize).min(SIDE);
    for row in lo(cy)..hi(cy) {
        let dy = row as f64 + 0.5 - cy;
        for col in lo(cx)..hi(cx) {
            let dx = col as f64 + 0.5 - cx;
            // Into the shape's frame: undo the rotation (counter-clockwise as seen, with rows
            // running down), then the scale; v points up.
            let u = (cos * dx - sin * dy) / scale;
            let v = (sin * dx + cos * dy) / scale;
            if inside(shape, u, -v) {
                out[row * SIDE + col] = 255;
            }
        }
    }
}

/// Images held out for testing: a fixed sample of the 737,280 (the same for every seed, so
/// that test losses compare across runs).
pub const TEST_IMAGES: usize = 10_000;

/// Every image, drawn on all cores: a fixed sample of [`TEST_IMAGES`] as the test split, the
/// rest for training, each in the published order; the labels are the shapes.
pub fn dataset() -> super::Dataset {
    // The test images: a seeded sample.
    let mut held = vec![false; COUNT];
    let mut rng = crate::core::Rng::stream(0, crate::core::Purpose::User, COUNT as u64);
    let mut n = 0;
    while n < TEST_IMAGES {
        let i = rng.below(COUNT as u64) as usize;
        n += usize::from(!std::mem::replace(&mut held[i], true));
    }
    let ids = |test: bool| (0..COUNT).filter(|&i| held[i] == test).collect::<Vec<_>>();
    let (train, test) = (draw(&ids(false)), draw(&ids(true)));
    super::Dataset { train, test, classes: SHAPES.iter().map(|s| s.to_string()).collect(), files: None }
}

/// The images `ids` (published indices) as a split, drawn on all cores, labelled by shape.
pub fn draw(ids: &[usize]) -> super::Split {
    let p = SIDE * SIDE;
    let mut images = vec![0u8; ids.len() * p];
    let per = ids.len().div_ceil(crate::core::pool::available_threads().max(1)).max(1);
    std::thread::scope(|s| {
        for (part, out) in ids.chunks(per).zip(images.chunks_mut(per * p)) {
            s.spawn(move || part.iter().zip(out.chunks_exact_mut(p)).for_each(|(&i, img)| render(levels(i), img)));
        }
    });
    let labels = ids.iter().map(|&i| levels(i)[0] as u8).collect();
    super::Split { images, labels, shape: shape() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(levels: [usize; 5]) -> Vec<u8> {
        let mut out = vec![0; SIDE * SIDE];
        render(levels, &mut out);
        out
    }

    fn area(img: &[u8]) -> usize {
        img.iter().filter(|&&v| v == 255).count()
    }

    #[test]
    fn the_grids_are_the_published_ones() {
        assert_eq!(COUNT, 737_280);
        assert_eq!(LEVELS.iter().product::<usize>(), COUNT);
        assert_eq!((value(1, 0), value(1, 5)), (0.5, 1.0));
        assert!((value(1, 1) - 0.6).abs() < 1e-12);
        assert_eq!(value(2, 39), 2.0 * std::f64::consts::PI);
        assert_eq!((value(3, 0), value(3, 31), value(4, 31)), (0.0, 1.0, 1.0));
        for i in [0, 1, 31, 32, 1023, 1024, 40_959, COUNT - 1] {
            assert_eq!(index(levels(i)), i);
        }
        assert_eq!(levels(COUNT - 1), [2, 5, 39, 31, 31]);
        assert_eq!(index([0, 0, 0, 0, 1]), 1, "position y varies fastest");
    }

    #[test]
    fn sizes_scale_with_the_square_of_the_scale() {
        // A 20 px square at scale 1, its centre on a pixel corner (position 0 → pixel 16):
        // exactly 400 pixel centres inside.
        assert_eq!(area(&image([0, 5, 0, 0, 0])), 400);
        for (shape, name) in SHAPES.iter().enumerate() {
            let (big, small) = (area(&image([shape, 5, 0, 15, 15])) as f64, area(&image([shape, 0, 0, 15, 15])) as f64);
            assert!((big / small - 4.0).abs() < 0.4, "{name}: {big} against {small}");
        }
        // The ellipse: π · 14 · 7 ≈ 308 px at scale 1.
        let e = area(&image([1, 5, 0, 15, 15])) as f64;
        assert!((e - 307.9).abs() < 8.0, "{e}");
    }

    #[test]
    fn the_first_and_last_orientations_draw_the_same_image() {
        for (shape, name) in SHAPES.iter().enumerate() {
            assert_eq!(image([shape, 3, 0, 7, 20]), image([shape, 3, 39, 7, 20]));
            assert_ne!(image([shape, 3, 0, 7, 20]), image([shape, 3, 5, 7, 20]), "{name}");
        }
    }

    #[test]
    fn every_shape_stays_on_the_canvas_and_centred_on_its_position() {
        for shape in 0..3 {
            for orientation in (0..40).step_by(3) {
                for (x, y) in [(0, 0), (31, 31), (0, 31), (16, 5)] {
                    let img = image([shape, 5, orientation, x, y]);
                    let on: Vec<(usize, usize)> =
                        (0..SIDE * SIDE).filter(|&i| img[i] == 255).map(|i| (i % SIDE, i / SIDE)).collect();
                    // Nothing touches the border: the shape was not clipped.
                    assert!(on.iter().all(|&(c, r)| c > 0 && r > 0 && c < SIDE - 1 && r < SIDE - 1));
                    if shape < 2 {
                        // Square and ellipse are symmetric about their centre.
                        let mean = |f: fn(&(usize, usize)) -> usize| {
                            on.iter().map(|p| f(p) as f64 + 0.5).sum::<f64>() / on.len() as f64
                        };
                        let (cx, cy) = (16.0 + 32.0 * value(3, x), 16.0 + 32.0 * value(4, y));
                        assert!((mean(|p| p.0) - cx).abs() < 0.5 && (mean(|p| p.1) - cy).abs() < 0.5);
                    }
                }
            }
        }
    }

    #[test]
    fn the_heart_points_down_and_the_ellipse_lies_along_x() {
        let heart = image([2, 5, 0, 15, 15]);
        let width_at = |row: usize| (0..SIDE).filter(|&c| heart[row * SIDE + c] == 255).count();
        let rows: Vec<usize> = (0..SIDE).filter(|&r| width_at(r) > 0).collect();
        let (top, bottom) = (rows[0], *rows.last().unwrap());
        // The lobes are at the top, wide; the point at the bottom, narrow.
        assert!(width_at(top + 3) > 3 * width_at(bottom - 1), "{} vs {}", width_at(top + 3), width_at(bottom - 1));
        let ellipse = image([1, 5, 0, 15, 15]);
        let span = |horizontal: bool| {
            (0..SIDE * SIDE)
                .filter(|&i| ellipse[i] == 255)
                .map(|i| if horizontal { i % SIDE } else { i / SIDE })
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        assert_eq!((span(true), span(false)), (28, 14));
    }
}
