//! A decoded picture to a tensor's bytes, as torchvision prepares images: transparent pixels
//! composited onto a background, converted to grey (PIL's `convert("L")`) or RGB, the shorter
//! side resized to S (`Resize(S)`, bilinear with antialiasing) and the centre S×S kept
//! (`CenterCrop(S)`), written channel-major.

use image::{DynamicImage, ImageBuffer, Pixel, Rgb, imageops};

/// What transparent pixels are composited onto.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Background {
    #[default]
    White,
    Black,
}

/// ITU-R 601-2 luma with PIL's fixed-point weights (0.299, 0.587, 0.114 in 16 bits).
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// The output size of torchvision's `Resize(size)` for a `width × height` image: the shorter
/// side becomes `size`, the longer one `⌊size · long / short⌋`.
pub fn resized(width: usize, height: usize, size: usize) -> (usize, usize) {
    if width <= height { (size, size * height / width) } else { (size * width / height, size) }
}

/// The smallest resize of a `width × height` image that covers `rows × cols`, keeping the
/// aspect ratio: [`resized`] to the side that binds.
pub fn covering(width: usize, height: usize, rows: usize, cols: usize) -> (usize, usize) {
    if rows == cols {
        return resized(width, height, rows);
    }
    let (w, h) = (width as f64, height as f64);
    let scale = (cols as f64 / w).max(rows as f64 / h);
    (((w * scale).round() as usize).max(cols), ((h * scale).round() as usize).max(rows))
}

/// Python's `round` (half to even), which torchvision's `CenterCrop` uses for its offsets.
fn round_half_even(v: f64) -> usize {
    let r = v.round();
    (if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 { r - v.signum() } else { r }) as usize
}

/// Whether any pixel has colour (R, G and B not all equal).
pub fn has_colour(img: &DynamicImage) -> bool {
    match img {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageLumaA8(_) => false,
        DynamicImage::ImageLuma16(_) | DynamicImage::ImageLumaA16(_) => false,
        other => other.to_rgb8().pixels().any(|p| p[0] != p[1] || p[1] != p[2]),
    }
}

/// Writes `img` into `out` (`channels × rows × cols` bytes, channel-major): composited onto
/// `background`, grey (1 channel) or RGB (3), and, when `target` = (rows, cols) is given,
/// resized so it covers the target and centre-cropped to it (for a square target, exactly
/// torchvision's `Resize(S)` + `CenterCrop(S)`); otherwise it must already be its size.
pub fn to_tensor(
    img: &DynamicImage,
    channels: usize,
    target: Option<(usize, usize)>,
    background: Background,
    out: &mut [u8],
) {
    let bg = match background {
        Background::White => 255u32,
        Background::Black => 0,
    };
    let rgba = img.to_rgba8();
    let (w, h) = (rgba.width(), rgba.height());
    let rgb: ImageBuffer<Rgb<u8>, Vec<u8>> = ImageBuffer::from_fn(w, h, |x, y| {
        let p = rgba.get_pixel(x, y).channels().to_owned();
        let a = p[3] as u32;
        let mix = |v: u8| ((v as u32 * a + bg * (255 - a) + 127) / 255) as u8;
        Rgb([mix(p[0]), mix(p[1]), mix(p[2])])
    });
    let (rgb, w, h) = match target {
        Some((th, tw)) if (w as usize, h as usize) != (tw, th) => {
            let (rw, rh) = covering(w as usize, h as usize, th, tw);
            let scaled = if (rw, rh) == (w as usize, h as usize) {
                rgb
            } else {
                imageops::resize(&rgb, rw as u32, rh as u32, imageops::FilterType::Triangle)
            };
            let top = round_half_even((rh - th) as f64 / 2.0);
            let left = round_half_even((rw - tw) as f64 / 2.0);
            let cropped = imageops::crop_imm(&scaled, left as u32, top as u32, tw as u32, th as u32).to_image();
            (cropped, tw as u32, th as u32)
        }
        _ => (rgb, w, h),
    };
    let plane = (w * h) as usize;
    assert_eq!(out.len(), channels * plane, "to_tensor: out holds {channels}x{h}x{w}");
    for (i, p) in rgb.pixels().enumerate() {
        if channels == 1 {
            out[i] = luma(p[0], p[1], p[2]);
        } else {
            for c in 0..3 {
                out[c * plane + i] = p[c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};

    #[test]
    fn resize_and_crop_follow_torchvision() {
        assert_eq!(resized(100, 60, 30), (50, 30));
        assert_eq!(resized(60, 100, 30), (30, 50));
        assert_eq!(resized(33, 33, 28), (28, 28));
        // Python rounds halves to even: CenterCrop's offset of (35 − 28)/2 = 3.5 is 4, 2.5 is 2.
        assert_eq!((round_half_even(3.5), round_half_even(2.5), round_half_even(1.2)), (4, 2, 1));
    }

    #[test]
    fn transparency_colour_and_layout() {
        // 2x1: an opaque red pixel and a fully transparent one.
        let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(2, 1, |x, _| {
            if x == 0 { Rgba([255, 0, 0, 255]) } else { Rgba([0, 0, 0, 0]) }
        }));
        assert!(has_colour(&img));
        let mut rgb = [0u8; 6];
        to_tensor(&img, 3, None, Background::White, &mut rgb);
        // Channel-major: R plane, G plane, B plane; the transparent pixel is white.
        assert_eq!(rgb, [255, 255, 0, 255, 0, 255]);
        let mut grey = [0u8; 2];
        to_tensor(&img, 1, None, Background::Black, &mut grey);
        assert_eq!(grey, [luma(255, 0, 0), 0]);
        assert_eq!(luma(255, 0, 0), 76); // 0.299 · 255 = 76.2
    }

    #[test]
    fn a_wide_picture_is_resized_then_centre_cropped() {
        // 40x20, left half black, right half white: resized to 20 high → 40x20 → crop 20x20
        // from x = 10: half black, half white.
        let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(40, 20, |x, _| {
            if x < 20 { Rgba([0, 0, 0, 255]) } else { Rgba([255, 255, 255, 255]) }
        }));
        let mut out = vec![0u8; 20 * 20];
        to_tensor(&img, 1, Some((20, 20)), Background::White, &mut out);
        assert_eq!((out[0], out[9], out[10], out[19]), (0, 0, 255, 255));
        // Downscaling antialiases: a one-pixel checkerboard shrunk 4x averages to mid-grey,
        // where sampling would have kept pure black and white.
        let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(80, 80, |x, y| {
            if (x + y) % 2 == 0 { Rgba([0, 0, 0, 255]) } else { Rgba([255, 255, 255, 255]) }
        }));
        let mut out = vec![0u8; 400];
        to_tensor(&img, 1, Some((20, 20)), Background::White, &mut out);
        assert!(out.iter().all(|&v| (110..=145).contains(&v)), "{out:?}");
    }
}
