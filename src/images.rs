//! Grey-scale image grids and PNG files, laid out like torchvision's `make_grid` /
//! `save_image` so pictures match the tutorial's pixel for pixel.

use std::path::Path;

/// An 8-bit grey image, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// torchvision's conversion of an intensity in [0, 1] to a byte: `(v·255 + 0.5)` clamped to
/// [0, 255] and truncated.
pub fn to_byte(v: f32) -> u8 {
    (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8
}

/// Tiles `images` (`n` images of `rows × cols` intensities in [0, 1], one after another)
/// into a grid of `nrow` images per row with `padding` black pixels around and between
/// them — torchvision's `make_grid(..., nrow, padding)`. A 10×10 grid of 28×28 images with
/// padding 2 is 302×302.
pub fn grid(images: &[f32], rows: usize, cols: usize, nrow: usize, padding: usize) -> GrayImage {
    let pixels = rows * cols;
    let n = images.len() / pixels.max(1);
    let xmaps = nrow.min(n).max(1);
    let ymaps = n.div_ceil(xmaps).max(1);
    let (cell_h, cell_w) = (rows + padding, cols + padding);
    let (height, width) = (ymaps * cell_h + padding, xmaps * cell_w + padding);
    let mut out = vec![0u8; width * height];
    for k in 0..n {
        let (gy, gx) = (k / xmaps, k % xmaps);
        let (y0, x0) = (gy * cell_h + padding, gx * cell_w + padding);
        let img = &images[k * pixels..(k + 1) * pixels];
        for r in 0..rows {
            let dst = &mut out[(y0 + r) * width + x0..(y0 + r) * width + x0 + cols];
            for (d, &v) in dst.iter_mut().zip(&img[r * cols..(r + 1) * cols]) {
                *d = to_byte(v);
            }
        }
    }
    GrayImage { width, height, pixels: out }
}

impl GrayImage {
    /// PNG bytes (8-bit grey).
    pub fn to_png(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut buf, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().expect("writing to a Vec cannot fail");
            w.write_image_data(&self.pixels).expect("sizes match");
        }
        buf
    }

    /// Writes the PNG atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::checkpoint::write_atomic(path, &self.to_png())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ten_by_ten_grid_of_mnist_digits_is_302_pixels_square() {
        let imgs = vec![1.0f32; 100 * 784];
        let g = grid(&imgs, 28, 28, 10, 2);
        assert_eq!((g.width, g.height), (302, 302));
        // Padding is black, image pixels white: row 0 is padding, row 2 starts an image.
        assert!(g.pixels[..302].iter().all(|&p| p == 0));
        assert_eq!(g.pixels[2 * 302 + 2], 255);
        assert_eq!(g.pixels[2 * 302 + 30], 0);
        assert_eq!(g.pixels[2 * 302 + 32], 255);
    }

    #[test]
    fn incomplete_last_row_and_rounding_follow_torchvision() {
        let g = grid(&[0.5f32; 3 * 4], 2, 2, 2, 1);
        assert_eq!((g.width, g.height), (7, 7));
        // 0.5·255 + 0.5 = 128.0 → 128.
        assert_eq!(g.pixels[7 + 1], 128);
        assert_eq!(to_byte(-1.0), 0);
        assert_eq!(to_byte(2.0), 255);
        assert_eq!(to_byte(1.0 / 255.0), 1);
    }

    #[test]
    fn png_round_trips() {
        let g = grid(&[0.25f32; 784], 28, 28, 1, 2);
        let bytes = g.to_png();
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (32, 32));
        assert_eq!(&buf[..info.buffer_size()], &g.pixels[..]);
    }
}
