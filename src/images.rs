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

/// Why an input picture could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{name} is not a readable PNG image: {reason}")]
    Decode { name: String, reason: String },
    #[error("{name} is {width}x{height}; images up to 4096x4096 are accepted")]
    TooLarge { name: String, width: u32, height: u32 },
}

/// Decodes a PNG of any colour type and bit depth into luminance in [0, 1] (alpha is
/// composited over white). Returns (width, height, values row-major).
pub fn decode_png(bytes: &[u8], name: &str) -> Result<(usize, usize, Vec<f32>), ImageError> {
    let err = |e: png::DecodingError| ImageError::Decode { name: name.to_string(), reason: e.to_string() };
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(err)?;
    let (width, height) = (reader.info().width, reader.info().height);
    if width > 4096 || height > 4096 {
        return Err(ImageError::TooLarge { name: name.to_string(), width, height });
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| ImageError::Decode { name: name.to_string(), reason: "image too large".into() })?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(err)?;
    let (color, _) = reader.output_color_type();
    let channels = color.samples();
    let stride = info.line_size;
    let mut out = Vec::with_capacity(width as usize * height as usize);
    for y in 0..height as usize {
        let row = &buf[y * stride..];
        for x in 0..width as usize {
            let px = &row[x * channels..(x + 1) * channels];
            let f = |v: u8| v as f32 / 255.0;
            let (lum, alpha) = match color {
                png::ColorType::Grayscale => (f(px[0]), 1.0),
                png::ColorType::GrayscaleAlpha => (f(px[0]), f(px[1])),
                png::ColorType::Rgb => (0.299 * f(px[0]) + 0.587 * f(px[1]) + 0.114 * f(px[2]), 1.0),
                _ => (0.299 * f(px[0]) + 0.587 * f(px[1]) + 0.114 * f(px[2]), f(px[3])),
            };
            out.push(lum * alpha + (1.0 - alpha));
        }
    }
    Ok((width as usize, height as usize, out))
}

/// Bilinear sample of `src` (w × h) at (x, y) in pixel-centre coordinates; 0 outside.
fn sample(src: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let (x, y) = (x - 0.5, y - 0.5);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f32, yi: f32| -> f32 {
        if xi < 0.0 || yi < 0.0 || xi >= w as f32 || yi >= h as f32 { 0.0 } else { src[yi as usize * w + xi as usize] }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Turns any grey picture of a digit into an MNIST-style `rows × cols` image, as LeCun et
/// al. prepared MNIST: white digit on black (a light background is inverted), the digit's
/// bounding box scaled to fit 20/28 of the frame keeping its aspect ratio (area-averaged),
/// then shifted so its centre of mass is the frame's centre.
pub fn mnistify(grey: &[f32], width: usize, height: usize, rows: usize, cols: usize) -> Vec<f32> {
    // Light background (judged by the border) ⇒ dark strokes: invert.
    let border: Vec<f32> = (0..width)
        .flat_map(|x| [grey[x], grey[(height - 1) * width + x]])
        .chain((0..height).flat_map(|y| [grey[y * width], grey[y * width + width - 1]]))
        .collect();
    let light = border.iter().sum::<f32>() / border.len().max(1) as f32 > 0.5;
    let ink: Vec<f32> = grey.iter().map(|&v| if light { 1.0 - v } else { v }).collect();
    // Bounding box of the ink.
    let (mut x0, mut y0, mut x1, mut y1) = (width, height, 0, 0);
    for y in 0..height {
        for x in 0..width {
            if ink[y * width + x] > 0.1 {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
    }
    if x0 >= x1 {
        (x0, y0, x1, y1) = (0, 0, width, height);
    }
    let (bw, bh) = ((x1 - x0) as f32, (y1 - y0) as f32);
    let fit = 20.0 / 28.0 * rows.min(cols) as f32;
    let scale = fit / bw.max(bh);
    let (dw, dh) = (bw * scale, bh * scale);
    // Area-average: 4×4 bilinear samples per output pixel.
    let mut box_img = vec![0.0f32; rows * cols];
    let (ox, oy) = ((cols as f32 - dw) / 2.0, (rows as f32 - dh) / 2.0);
    const SUB: usize = 4;
    for r in 0..rows {
        for c in 0..cols {
            let mut acc = 0.0;
            for sy in 0..SUB {
                for sx in 0..SUB {
                    let u = (c as f32 + (sx as f32 + 0.5) / SUB as f32 - ox) / scale + x0 as f32;
                    let v = (r as f32 + (sy as f32 + 0.5) / SUB as f32 - oy) / scale + y0 as f32;
                    let inside = u >= x0 as f32 && u <= x1 as f32 && v >= y0 as f32 && v <= y1 as f32;
                    acc += if inside { sample(&ink, width, height, u, v) } else { 0.0 };
                }
            }
            box_img[r * cols + c] = (acc / (SUB * SUB) as f32).clamp(0.0, 1.0);
        }
    }
    // Centre of mass to the centre.
    let mass: f32 = box_img.iter().sum();
    if mass <= 0.0 {
        return box_img;
    }
    let cy = box_img.iter().enumerate().map(|(i, v)| (i / cols) as f32 * v).sum::<f32>() / mass;
    let cx = box_img.iter().enumerate().map(|(i, v)| (i % cols) as f32 * v).sum::<f32>() / mass;
    let (sy, sx) = (((rows as f32 - 1.0) / 2.0 - cy).round() as i64, ((cols as f32 - 1.0) / 2.0 - cx).round() as i64);
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows as i64 {
        for c in 0..cols as i64 {
            let (sr, sc) = (r - sy, c - sx);
            if (0..rows as i64).contains(&sr) && (0..cols as i64).contains(&sc) {
                out[(r * cols as i64 + c) as usize] = box_img[(sr * cols as i64 + sc) as usize];
            }
        }
    }
    out
}

/// Reads a PNG file of a digit and converts it with [`mnistify`].
pub fn load_digit(path: &Path, rows: usize, cols: usize) -> Result<Vec<f32>, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Read { path: path.to_owned(), source })?;
    let (w, h, grey) = decode_png(&bytes, &path.display().to_string())?;
    Ok(mnistify(&grey, w, h, rows, cols))
}

#[cfg(test)]
mod digit_tests {
    use super::*;

    fn png_rgba(w: u32, h: u32, px: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
        let mut buf = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut buf, w, h);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let data: Vec<u8> = (0..h).flat_map(|y| (0..w).flat_map(|x| px(x, y)).collect::<Vec<_>>()).collect();
            enc.write_header().unwrap().write_image_data(&data).unwrap();
        }
        buf
    }

    #[test]
    fn a_dark_stroke_on_white_becomes_a_centred_white_digit() {
        // A 100x60 white picture with a black vertical bar off to the left.
        let bytes =
            png_rgba(
                100,
                60,
                |x, y| if (10..20).contains(&x) && (5..55).contains(&y) { [0, 0, 0, 255] } else { [255; 4] },
            );
        let (w, h, grey) = decode_png(&bytes, "bar.png").unwrap();
        assert_eq!((w, h), (100, 60));
        let img = mnistify(&grey, w, h, 28, 28);
        assert_eq!(img.len(), 784);
        // Background black, the bar white, 20 pixels tall, centred.
        assert_eq!(img[0], 0.0);
        let col_mass: Vec<f32> = (0..28).map(|c| (0..28).map(|r| img[r * 28 + c]).sum()).collect();
        let peak = (0..28).max_by(|&a, &b| col_mass[a].total_cmp(&col_mass[b])).unwrap();
        assert!((13..=14).contains(&peak), "bar centred, got column {peak}");
        let rows_with_ink = (0..28).filter(|&r| (0..28).any(|c| img[r * 28 + c] > 0.5)).count();
        assert!((19..=21).contains(&rows_with_ink), "{rows_with_ink}");
    }

    #[test]
    fn transparent_background_counts_as_white_and_garbage_is_an_error() {
        let bytes = png_rgba(8, 8, |x, _| if x == 4 { [0, 0, 0, 255] } else { [0, 0, 0, 0] });
        let (_, _, grey) = decode_png(&bytes, "t.png").unwrap();
        assert_eq!(grey[0], 1.0);
        assert_eq!(grey[4], 0.0);
        let msg = decode_png(b"not a png", "junk.png").unwrap_err().to_string();
        assert!(msg.contains("junk.png is not a readable PNG"), "{msg}");
    }
}
