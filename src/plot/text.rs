//! Text drawn glyph by glyph at its true sub-pixel position. plotters' own text path truncates
//! every glyph's pen position to a whole pixel and drops its left side bearing, which at
//! caption sizes runs letters together or apart ("ob jects", "1.5 8") and loses thin ones
//! (an "i", a "."). [`Crisp`] wraps the bitmap backend and lays text out with `ab_glyph`
//! directly: kerning, advances and bearings in fractional pixels, coverage blended into the
//! canvas; plotters' rotations (the y axis title) still apply.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};

/// The embedded font, parsed once.
fn font() -> &'static FontRef<'static> {
    static FONT: std::sync::OnceLock<FontRef<'static>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(super::FONT_BYTES).expect("the embedded DejaVu Sans parses"))
}

/// One line of text laid out at `size` pixels (ascent − descent): its width and height in
/// whole pixels, and each covered pixel relative to the box's top-left corner with its
/// coverage in (0, 1].
pub struct Layout {
    pub width: i32,
    pub height: i32,
    pub pixels: Vec<(i32, i32, f32)>,
}

/// Lays out `text` at `size` pixels.
pub fn layout(text: &str, size: f64) -> Layout {
    let scale = PxScale::from(size as f32);
    let f = font().as_scaled(scale);
    let ascent = f.ascent();
    let mut caret = 0.0f32;
    let mut prev = None;
    let mut pixels = Vec::new();
    for c in text.chars() {
        let id = f.glyph_id(c);
        if let Some(p) = prev {
            caret += f.kern(p, id);
        }
        prev = Some(id);
        let glyph = id.with_scale_and_position(scale, point(caret, ascent));
        if let Some(outline) = f.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|x, y, coverage| {
                if coverage > 0.0 {
                    pixels.push((b.min.x as i32 + x as i32, b.min.y as i32 + y as i32, coverage.min(1.0)));
                }
            });
        }
        caret += f.h_advance(id);
    }
    Layout { width: caret.ceil() as i32, height: (ascent - f.descent()).ceil() as i32, pixels }
}

/// The width in whole pixels of `text` at `size` pixels.
pub fn width(text: &str, size: f64) -> usize {
    layout(text, size).width.max(0) as usize
}

/// plotters' bitmap backend, with text drawn by [`layout`].
pub struct Crisp<'a>(pub BitMapBackend<'a>);

type Error<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

impl<'a> DrawingBackend for Crisp<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), Error<'a>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), Error<'a>> {
        self.0.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), Error<'a>> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Result<(), Error<'a>> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Error<'a>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Error<'a>> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.0.fill_polygon(vert, style)
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result<(), Error<'a>> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<T: BackendTextStyle>(&self, text: &str, style: &T) -> Result<(u32, u32), Error<'a>> {
        let l = layout(text, style.size());
        Ok((l.width.max(0) as u32, l.height.max(0) as u32))
    }

    /// As plotters' default `draw_text` (anchor, then rotation about `pos`), with the glyphs
    /// of [`layout`].
    fn draw_text<T: BackendTextStyle>(&mut self, text: &str, style: &T, pos: BackendCoord) -> Result<(), Error<'a>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let l = layout(text, style.size());
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -l.width,
            HPos::Center => -l.width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -l.height / 2,
            VPos::Bottom => -l.height,
        };
        let trans = style.transform();
        let (w, h) = self.get_size();
        for (x, y, coverage) in l.pixels {
            let (x, y) = trans.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                let c = BackendColor { alpha: color.alpha * coverage as f64, rgb: color.rgb };
                self.0.draw_pixel((x, y), c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every glyph of a string keeps its ink: "i", "." and "l" are each drawn (plotters lost
    /// thin ones), and the letters advance by their true widths, so "ob jects" has no gap
    /// wider than the space it should not have.
    #[test]
    fn thin_glyphs_keep_their_ink_and_letters_their_spacing() {
        for s in ["i", ".", "l", "1"] {
            let l = layout(s, 13.0);
            let ink: f32 = l.pixels.iter().map(|p| p.2).sum();
            assert!(ink > 1.5, "{s:?}: ink {ink}");
        }
        // Columns with ink across "objects": no run of empty columns as wide as a space.
        let l = layout("objects", 13.0);
        let mut inked = vec![0.0f32; l.width as usize + 2];
        for &(x, _, c) in &l.pixels {
            inked[x.clamp(0, l.width) as usize] += c;
        }
        let space = layout("a b", 13.0).width - layout("ab", 13.0).width;
        assert!(space >= 3, "a space is {space} px");
        let mut gap = 0;
        let mut widest = 0;
        for &v in &inked[1..l.width as usize - 1] {
            gap = if v < 0.05 { gap + 1 } else { 0 };
            widest = widest.max(gap);
        }
        assert!(widest < space, "a {widest}-pixel gap inside \"objects\"");
        // Widths add up: a string is as wide as its parts (no kerning between these).
        assert!((layout("file.png", 13.0).width - layout("file", 13.0).width - layout(".png", 13.0).width).abs() <= 1);
    }
}
