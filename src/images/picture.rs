//! A user's picture (PNG, JPEG, BMP, GIF, WebP; any size) as a model's input.
//!
//! Digit models (28×28 grey, trained on MNIST-format data) get MNIST's own preparation
//! ([`mnistify`]: the digit's bounding box scaled into 20×20, centred by its centre of mass,
//! white on black), since a photo of a digit looks nothing like MNIST otherwise. Every other
//! model gets what its training images got: transparent pixels on the run's `--background`,
//! converted to its channels, the shorter side resized and the centre cropped to its shape
//! (`data::transform`, torchvision's `Resize` + `CenterCrop`).

use crate::core::Shape;
use crate::data::transform::{Background, luma, to_tensor};
use std::path::Path;

/// Largest picture side accepted.
pub const MAX_SIDE: u32 = crate::core::shape::MAX_SIDE as u32;

/// Why an input picture could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("cannot read {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{name} is not a readable PNG, JPEG, BMP, GIF or WebP image: {reason}")]
    Decode { name: String, reason: String },
    #[error("{name} is {width}x{height}; pictures up to {MAX_SIDE}x{MAX_SIDE} are accepted")]
    TooLarge { name: String, width: u32, height: u32 },
    #[error(
        "{name} is {width}x{height}; at most {max_pixels} pixels are accepted here (the model is far smaller: scale it down first)"
    )]
    TooManyPixels { name: String, width: u32, height: u32, max_pixels: u64 },
}

/// Decodes picture bytes, refusing a header larger than [`MAX_SIDE`] before decoding.
///
/// # Errors
/// [`PictureError::Decode`] if the format is unknown, the bytes do not decode or the picture
/// has no pixels (a side of 0),
/// [`PictureError::TooLarge`] if the header claims a side above [`MAX_SIDE`].
pub fn decode(bytes: &[u8], name: &str) -> Result<image::DynamicImage, PictureError> {
    decode_limited(bytes, name, u64::from(MAX_SIDE) * u64::from(MAX_SIDE))
}

/// [`decode`], also refusing a header that claims more than `max_pixels` pixels (width ×
/// height) before any pixel is decoded: a 1 MB upload of a flat 4096×4096 PNG would
/// otherwise take 64 MB to decode.
///
/// # Errors
/// As [`decode`]; [`PictureError::TooManyPixels`] above `max_pixels`.
pub fn decode_limited(bytes: &[u8], name: &str, max_pixels: u64) -> Result<image::DynamicImage, PictureError> {
    use image::ImageDecoder;
    let err = |e: &dyn std::fmt::Display| PictureError::Decode { name: name.to_string(), reason: e.to_string() };
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| err(&e))?;
    if reader.format().is_none() {
        return Err(err(&"unknown format"));
    }
    let decoder = reader.into_decoder().map_err(|e| err(&e))?;
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(PictureError::TooLarge { name: name.to_string(), width, height });
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(PictureError::TooManyPixels { name: name.to_string(), width, height, max_pixels });
    }
    if width == 0 || height == 0 {
        return Err(err(&format_args!("it is {width}x{height}: no pixels")));
    }
    image::DynamicImage::from_decoder(decoder).map_err(|e| err(&e))
}

/// How a user's picture becomes a model's input: as the run's training images were made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preparation {
    /// MNIST's own preparation ([`mnistify`]), for digit models.
    Digits,
    /// Composited on `background`, converted to the model's channels, resized and
    /// centre-cropped: an image folder's preparation.
    Photo { background: Background },
}

/// A picture as the model's input `[shape.size()]` in [0, 1], channel-major, prepared as
/// `prep` says.
pub fn to_input(img: &image::DynamicImage, shape: Shape, prep: Preparation) -> Vec<f32> {
    let background = match prep {
        Preparation::Photo { background } => background,
        Preparation::Digits => return digit_input(img, shape),
    };
    let mut bytes = vec![0u8; shape.size()];
    to_tensor(img, shape.channels, Some((shape.height, shape.width)), background, &mut bytes);
    bytes.iter().map(|&v| v as f32 / 255.0).collect()
}

/// [`Preparation::Digits`]: transparency on white, luma, then [`mnistify`].
fn digit_input(img: &image::DynamicImage, shape: Shape) -> Vec<f32> {
    {
        let rgba = img.to_rgba8();
        let grey: Vec<f32> = rgba
            .pixels()
            .map(|p| {
                let (l, a) = (luma(p[0], p[1], p[2]) as f32 / 255.0, p[3] as f32 / 255.0);
                l * a + (1.0 - a)
            })
            .collect();
        mnistify(&grey, img.width() as usize, img.height() as usize, shape.height, shape.width)
    }
}

/// Reads a picture file and converts it with [`to_input`].
///
/// # Errors
/// [`PictureError::Read`] if the file cannot be read, and the errors of [`decode`].
pub fn load_picture(path: &Path, shape: Shape, prep: Preparation) -> Result<Vec<f32>, PictureError> {
    let bytes = std::fs::read(path).map_err(|source| PictureError::Read { path: path.to_owned(), source })?;
    Ok(to_input(&decode(&bytes, &path.display().to_string())?, shape, prep))
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

#[cfg(test)]
mod tests;
