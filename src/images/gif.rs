//! Animated GIFs of picture sequences (`vae traverse --gif`): every frame the same size,
//! looping forever.

use super::Image;

impl Image {
    /// This picture in the top-left corner of a black `width` × `height` one (no smaller
    /// than itself).
    pub fn padded(&self, width: usize, height: usize) -> Image {
        let (w, h, c) = (width.max(self.width), height.max(self.height), self.channels);
        let mut pixels = vec![0u8; w * h * c];
        for (r, row) in self.pixels.chunks_exact(self.width * c).enumerate() {
            pixels[r * w * c..][..row.len()].copy_from_slice(row);
        }
        Image { width: w, height: h, channels: c, pixels }
    }
}

/// The bytes of a GIF showing `frames` in order, each for `delay_ms` (rounded to the
/// format's hundredths), looping forever. Grey frames index a palette of the 256 grey levels,
/// so every pixel is kept exactly; colour frames are quantised to 256 colours each (NeuQuant).
///
/// # Panics
/// If there are no frames or they differ in size or kind.
pub fn animated_gif(frames: &[Image], delay_ms: u32) -> Vec<u8> {
    let first = frames.first().expect("at least one frame");
    let (w, h, c) = (first.width, first.height, first.channels);
    assert!(frames.iter().all(|f| (f.width, f.height, f.channels) == (w, h, c)), "frames differ in size or kind");
    let (w16, h16) = (u16::try_from(w).expect("GIF width"), u16::try_from(h).expect("GIF height"));
    let grey: Vec<u8> = (0..=255u8).flat_map(|v| [v, v, v]).collect();
    let mut bytes = Vec::new();
    {
        let palette: &[u8] = if c == 1 { &grey } else { &[] };
        let mut encoder = gif::Encoder::new(&mut bytes, w16, h16, palette).expect("writing to memory");
        encoder.set_repeat(gif::Repeat::Infinite).expect("writing to memory");
        let delay = u16::try_from(delay_ms.div_ceil(10)).unwrap_or(u16::MAX);
        for f in frames {
            let mut frame = if c == 1 {
                gif::Frame {
                    width: w16,
                    height: h16,
                    buffer: std::borrow::Cow::Borrowed(&f.pixels),
                    ..Default::default()
                }
            } else {
                gif::Frame::from_rgb_speed(w16, h16, &f.pixels, 1)
            };
            frame.delay = delay;
            encoder.write_frame(&frame).expect("writing to memory");
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_keeps_the_picture_in_the_corner() {
        let img = Image { width: 2, height: 1, channels: 1, pixels: vec![7, 9] };
        let p = img.padded(3, 2);
        assert_eq!((p.width, p.height, p.pixels), (3, 2, vec![7, 9, 0, 0, 0, 0]));
    }

    /// Three grey frames decode back as three frames of the same pixels, each shown 120 ms.
    #[test]
    fn frames_round_trip() {
        use image::AnimationDecoder;
        let frames: Vec<Image> = (0..3u8)
            .map(|k| Image {
                width: 40,
                height: 2,
                channels: 1,
                pixels: (0..80).map(|i| if i == 7 { 200 + k } else { i % 3 }).collect(),
            })
            .collect();
        let bytes = animated_gif(&frames, 120);
        let decoded = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).unwrap();
        let got: Vec<image::Frame> = decoded.into_frames().collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 3);
        for (g, want) in got.iter().zip(&frames) {
            assert_eq!(g.delay().numer_denom_ms(), (120, 1));
            // Every grey level kept exactly (a sampled palette lost the few bright pixels of
            // mostly black frames).
            let grey: Vec<u8> = g.buffer().pixels().map(|p| p[0]).collect();
            assert_eq!(grey, want.pixels);
        }
    }
}
