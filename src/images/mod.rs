//! Image grids and picture files, laid out like torchvision's `make_grid` / `save_image` so
//! pictures match the tutorial's pixel for pixel, in grey or colour; and (`picture`) the
//! conversion of a user's picture into a model's input.

pub mod gif;
pub mod picture;

pub use picture::{PictureError, Preparation, load_picture};

use crate::core::Shape;
use std::path::Path;

/// An 8-bit grey or RGB picture, row-major, channels interleaved (as PNG stores them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub pixels: Vec<u8>,
}

/// torchvision's conversion of an intensity in [0, 1] to a byte: `(v·255 + 0.5)` clamped to
/// [0, 255] and truncated.
pub fn to_byte(v: f32) -> u8 {
    (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8
}

/// Images `a` and `b` (`[n, pixels]` each) interleaved as `a₀ b₀ a₁ b₁ …`: each input beside
/// its reconstruction in a [`grid`].
pub fn pairs(a: &[f32], b: &[f32], pixels: usize) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "pairs need as many images on each side");
    a.chunks_exact(pixels).zip(b.chunks_exact(pixels)).flat_map(|(x, y)| x.iter().chain(y)).copied().collect()
}

/// Tiles `images` (`n` images of `shape`, each channel-major, intensities in [0, 1], one
/// after another) into a grid of `nrow` images per row with `padding` black pixels around
/// and between them — torchvision's `make_grid(..., nrow, padding)`. A 10×10 grid of 28×28
/// images with padding 2 is 302×302.
pub fn grid(images: &[f32], shape: Shape, nrow: usize, padding: usize) -> Image {
    let (rows, cols, ch) = (shape.height, shape.width, shape.channels);
    let (plane, size) = (shape.plane(), shape.size());
    let n = images.len() / size.max(1);
    let xmaps = nrow.min(n).max(1);
    let ymaps = n.div_ceil(xmaps).max(1);
    let (cell_h, cell_w) = (rows + padding, cols + padding);
    let (height, width) = (ymaps * cell_h + padding, xmaps * cell_w + padding);
    let mut out = vec![0u8; width * height * ch];
    for k in 0..n {
        let (gy, gx) = (k / xmaps, k % xmaps);
        let (y0, x0) = (gy * cell_h + padding, gx * cell_w + padding);
        let img = &images[k * size..(k + 1) * size];
        for r in 0..rows {
            for c in 0..cols {
                let dst = ((y0 + r) * width + x0 + c) * ch;
                for k in 0..ch {
                    out[dst + k] = to_byte(img[k * plane + r * cols + c]);
                }
            }
        }
    }
    Image { width, height, channels: ch, pixels: out }
}

/// Picture file formats `vae` writes, chosen by the file name's extension.
/// Whether `path` names a JPEG file (`.jpg` or `.jpeg`, any case).
pub fn is_jpeg(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
}

impl Image {
    /// PNG bytes (8-bit grey or RGB).
    pub fn to_png(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut buf, self.width as u32, self.height as u32);
            enc.set_color(if self.channels == 3 { png::ColorType::Rgb } else { png::ColorType::Grayscale });
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().expect("writing to a Vec cannot fail");
            w.write_image_data(&self.pixels).expect("sizes match");
        }
        buf
    }

    /// JPEG bytes at quality 95.
    pub fn to_jpeg(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        let color = if self.channels == 3 { image::ExtendedColorType::Rgb8 } else { image::ExtendedColorType::L8 };
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 95)
            .encode(&self.pixels, self.width as u32, self.height as u32, color)
            .expect("encoding to a Vec cannot fail");
        buf
    }

    /// Writes the picture atomically (temporary file, then rename): JPEG for a `.jpg` or
    /// `.jpeg` name, PNG otherwise.
    ///
    /// # Errors
    /// The I/O error if the file cannot be written (see [`crate::io::write_atomic`]).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = if is_jpeg(path) { self.to_jpeg() } else { self.to_png() };
        crate::io::write_atomic(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_interleave_inputs_and_reconstructions() {
        assert_eq!(pairs(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 2), [1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 8.0]);
    }

    #[test]
    fn a_ten_by_ten_grid_of_mnist_digits_is_302_pixels_square() {
        let imgs = vec![1.0f32; 100 * 784];
        let g = grid(&imgs, Shape::mnist(), 10, 2);
        assert_eq!((g.width, g.height, g.channels), (302, 302, 1));
        // Padding is black, image pixels white: row 0 is padding, row 2 starts an image.
        assert!(g.pixels[..302].iter().all(|&p| p == 0));
        assert_eq!(g.pixels[2 * 302 + 2], 255);
        assert_eq!(g.pixels[2 * 302 + 30], 0);
        assert_eq!(g.pixels[2 * 302 + 32], 255);
    }

    #[test]
    fn incomplete_last_row_and_rounding_follow_torchvision() {
        let g = grid(&[0.5f32; 3 * 4], Shape::new(1, 2, 2), 2, 1);
        assert_eq!((g.width, g.height), (7, 7));
        // 0.5·255 + 0.5 = 128.0 → 128.
        assert_eq!(g.pixels[7 + 1], 128);
        assert_eq!(to_byte(-1.0), 0);
        assert_eq!(to_byte(2.0), 255);
        assert_eq!(to_byte(1.0 / 255.0), 1);
    }

    #[test]
    fn colour_images_are_interleaved_for_the_file() {
        // One 1x2 RGB image, channel-major: R = [1, 0], G = [0, 1], B = [0, 0].
        let g = grid(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0], Shape::new(3, 1, 2), 1, 0);
        assert_eq!((g.width, g.height, g.channels), (2, 1, 3));
        assert_eq!(g.pixels, [255, 0, 0, 0, 255, 0]);
    }

    #[test]
    fn png_and_jpeg_round_trip() {
        let g = grid(&[0.25f32; 3 * 784], Shape::new(3, 28, 28), 1, 2);
        let back = image::load_from_memory(&g.to_png()).unwrap().to_rgb8();
        assert_eq!((back.width(), back.height()), (32, 32));
        assert_eq!(back.as_raw(), &g.pixels);
        // JPEG is lossy at edges; a flat image (no padding) comes back within rounding.
        let flat = grid(&[0.25f32; 3 * 784], Shape::new(3, 28, 28), 1, 0);
        let jpeg = image::load_from_memory_with_format(&flat.to_jpeg(), image::ImageFormat::Jpeg).unwrap().to_rgb8();
        assert_eq!((jpeg.width(), jpeg.height()), (28, 28));
        assert!(jpeg.as_raw().iter().zip(&flat.pixels).all(|(a, b)| a.abs_diff(*b) <= 2));
    }
}
