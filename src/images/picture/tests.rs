//! Pictures to model inputs: the digit preparation, the plain one, and bad files.

use super::*;
use image::{DynamicImage, Rgba, RgbaImage};

fn png(w: u32, h: u32, px: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| Rgba(px(x, y)));
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    buf.into_inner()
}

#[test]
fn a_dark_stroke_on_white_becomes_a_centred_white_digit() {
    // A 100x60 white picture with a black vertical bar off to the left.
    let bytes =
        png(100, 60, |x, y| if (10..20).contains(&x) && (5..55).contains(&y) { [0, 0, 0, 255] } else { [255; 4] });
    let img = decode(&bytes, "bar.png").unwrap();
    assert_eq!((img.width(), img.height()), (100, 60));
    let x = to_input(&img, Shape::mnist(), Preparation::Digits);
    assert_eq!(x.len(), 784);
    // Background black, the bar white, 20 pixels tall, centred.
    assert_eq!(x[0], 0.0);
    let col_mass: Vec<f32> = (0..28).map(|c| (0..28).map(|r| x[r * 28 + c]).sum()).collect();
    let peak = (0..28).max_by(|&a, &b| col_mass[a].total_cmp(&col_mass[b])).unwrap();
    assert!((13..=14).contains(&peak), "bar centred, got column {peak}");
    let rows_with_ink = (0..28).filter(|&r| (0..28).any(|c| x[r * 28 + c] > 0.5)).count();
    assert!((19..=21).contains(&rows_with_ink), "{rows_with_ink}");
}

#[test]
fn other_models_get_resize_and_centre_crop_in_their_channels() {
    // 60x40, red on the left half, blue on the right: to 3x20x20 the crop keeps x 10..50 of
    // the 30x20 resize, so the left columns are red and the right blue.
    let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(60, 40, |x, _| {
        if x < 30 { Rgba([255, 0, 0, 255]) } else { Rgba([0, 0, 255, 255]) }
    }));
    let x = to_input(&img, Shape::new(3, 20, 20), WHITE);
    assert_eq!(x.len(), 3 * 400);
    let at = |c: usize, r: usize, col: usize| x[c * 400 + r * 20 + col];
    assert_eq!((at(0, 10, 0), at(2, 10, 0)), (1.0, 0.0));
    assert_eq!((at(0, 10, 19), at(2, 10, 19)), (0.0, 1.0));
    // Grey models read the luma; transparency is the run's background.
    let clear = DynamicImage::ImageRgba8(RgbaImage::from_pixel(8, 8, Rgba([0, 0, 0, 0])));
    assert!(to_input(&clear, Shape::new(1, 4, 4), WHITE).iter().all(|&v| v == 1.0));
    let black = Preparation::Photo { background: Background::Black };
    assert!(to_input(&clear, Shape::new(1, 4, 4), black).iter().all(|&v| v == 0.0));
    // Half-transparent red on black: half the red, in a colour model.
    let half = DynamicImage::ImageRgba8(RgbaImage::from_pixel(8, 8, Rgba([255, 0, 0, 128])));
    let x = to_input(&half, Shape::new(3, 4, 4), black);
    assert!((x[0] - 128.0 / 255.0).abs() <= 1.0 / 255.0 && x[16] == 0.0 && x[32] == 0.0, "{:?}", &x[..1]);
}

const WHITE: Preparation = Preparation::Photo { background: Background::White };

#[test]
fn garbage_and_huge_headers_are_refused_with_the_name() {
    let msg = decode(b"not a picture", "junk.png").unwrap_err().to_string();
    assert!(msg.contains("junk.png is not a readable PNG, JPEG"), "{msg}");
    // A PNG header claiming 100,000 x 100,000 pixels: refused before any pixel is decoded.
    let mut huge = png(1, 1, |_, _| [0; 4]);
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let mut crc = flate2::Crc::new(); // the IHDR chunk's CRC covers its type and data
    crc.update(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    let msg = decode(&huge, "huge.png").unwrap_err().to_string();
    assert!(msg.contains("huge.png is 100000x100000; pictures up to 4096x4096"), "{msg}");
}

#[test]
fn a_picture_without_pixels_is_refused() {
    // Found by `cargo fuzz run picture`: a GIF with a 0x0 screen decoded to an empty image,
    // and resizing it divided by zero.
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/zero-size.gif")).unwrap();
    let err = decode(&bytes, "zero.gif").unwrap_err();
    assert_eq!(err.to_string(), "zero.gif is not a readable PNG, JPEG, BMP, GIF or WebP image: it is 0x0: no pixels");
}
