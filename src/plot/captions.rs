//! Captions around an image grid, so a picture says what it shows: a title, a label beside
//! each row (a cvae's class, a traversed dimension), one below each column (a swept value)
//! and a footer.

use super::*;
use crate::images::Image;

/// Height in pixels of caption text.
const TEXT: u32 = 13;
/// Rough width of one caption character at [`TEXT`] pixels (DejaVu Sans averages ~0.6 em).
const CHAR: usize = 8;
/// Height of a strip holding one line of text.
const STRIP: usize = TEXT as usize + 10;

/// Text around an image grid; every part is optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Captions {
    /// A line above the grid saying what it shows.
    pub title: Option<String>,
    /// One label left of each grid row.
    pub rows: Vec<String>,
    /// One label below each grid column (thinned out where cells are too narrow for them).
    pub columns: Vec<String>,
    /// A line below the column labels (e.g. what the columns sweep).
    pub footer: Option<String>,
}

/// `grid` with a strip on its left holding `labels[r]` centred on grid row `r` (rows of
/// `cell` pixels after `padding`), in light grey on the grid's black. The strip is as wide
/// as the longest label (names past 24 characters are shortened). A grey grid stays grey.
///
/// # Errors
/// Font or drawing errors.
pub fn caption_rows(grid: &Image, cell: usize, padding: usize, labels: &[String]) -> Result<Image, PlotError> {
    let captions = Captions { rows: labels.to_vec(), ..Captions::default() };
    annotate(grid, (cell, cell), padding, &captions)
}

/// The width in pixels of `text` in the caption font.
fn text_width(text: &str) -> usize {
    let mut one = [0u8; 3];
    let area = BitMapBackend::with_buffer(&mut one, (1, 1)).into_drawing_area();
    let style = (FONT, TEXT).into_text_style(&area);
    area.estimate_text_size(text, &style).map_or(CHAR * text.chars().count(), |(w, _)| w as usize)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() > max { format!("{}…", s.chars().take(max - 1).collect::<String>()) } else { s.to_string() }
}

/// `grid` (cells of `cell` = (height, width) pixels after `padding`) with `captions` drawn
/// around it in light grey on black: the title above, row labels on the left, column labels
/// and the footer below. The canvas widens to fit the title. A grey grid stays grey.
///
/// # Errors
/// Font or drawing errors.
pub fn annotate(grid: &Image, cell: (usize, usize), padding: usize, captions: &Captions) -> Result<Image, PlotError> {
    ensure_font()?;
    let rows: Vec<String> = captions.rows.iter().map(|s| shorten(s, 24)).collect();
    let longest = rows.iter().map(|l| text_width(l)).max().unwrap_or(0);
    let left = if rows.is_empty() { 0 } else { (12 + longest).max(16) };
    let top = if captions.title.is_some() { STRIP } else { 0 };
    let bottom = usize::from(!captions.columns.is_empty()) * STRIP + usize::from(captions.footer.is_some()) * STRIP;
    let line_width = |t: &Option<String>| t.as_ref().map_or(0, |t| text_width(t) + 12);
    let w = (left + grid.width).max(line_width(&captions.title)).max(line_width(&captions.footer));
    let h = top + grid.height + bottom;
    let mut buf = vec![0u8; w * h * 3];
    let draw_err = |e: &dyn std::fmt::Display| PlotError::Draw { chart: "captions".into(), message: e.to_string() };
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
        let style =
            |h: HPos, v: VPos| (FONT, TEXT).into_text_style(&root).color(&RGBColor(215, 215, 215)).pos(Pos::new(h, v));
        let (cell_h, cell_w) = cell;
        if let Some(title) = &captions.title {
            root.draw_text(title, &style(HPos::Left, VPos::Center), (6, (STRIP / 2) as i32))
                .map_err(|e| draw_err(&e))?;
        }
        for (r, label) in rows.iter().enumerate() {
            let y = top + padding + r * (cell_h + padding) + cell_h / 2;
            if y >= top + grid.height {
                break;
            }
            root.draw_text(label, &style(HPos::Right, VPos::Center), (left as i32 - 6, y as i32))
                .map_err(|e| draw_err(&e))?;
        }
        // Column labels: the first, the last, and every k-th between, so none overlap.
        let widest = captions.columns.iter().map(|l| text_width(l)).max().unwrap_or(0) + 6;
        let every = widest.div_ceil(cell_w + padding).max(1);
        let y = (top + grid.height + STRIP / 2) as i32;
        let n = captions.columns.len();
        for (c, label) in captions.columns.iter().enumerate() {
            if !(c + 1 == n || c % every == 0 && n - 1 - c >= every) {
                continue;
            }
            let x = left + padding + c * (cell_w + padding) + cell_w / 2;
            root.draw_text(label, &style(HPos::Center, VPos::Center), (x as i32, y)).map_err(|e| draw_err(&e))?;
        }
        if let Some(footer) = &captions.footer {
            let y = (h - STRIP / 2) as i32;
            root.draw_text(footer, &style(HPos::Left, VPos::Center), (6, y)).map_err(|e| draw_err(&e))?;
        }
        root.present().map_err(|e| draw_err(&e))?;
    }
    let ch = grid.channels;
    for y in 0..grid.height {
        for x in 0..grid.width {
            let src = &grid.pixels[(y * grid.width + x) * ch..][..ch];
            let dst = &mut buf[((top + y) * w + left + x) * 3..][..3];
            if ch == 3 { dst.copy_from_slice(src) } else { dst.fill(src[0]) }
        }
    }
    let pixels = if ch == 3 { buf } else { buf.chunks_exact(3).map(|p| p[0].max(p[1]).max(p[2])).collect() };
    Ok(Image { width: w, height: h, channels: ch, pixels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Shape;

    #[test]
    fn rows_get_their_labels_in_a_strip_left_of_the_grid() {
        let grid = crate::images::grid(&vec![1.0f32; 6 * 28 * 28], Shape::mnist(), 3, 2);
        let labels = vec!["T-shirt/top".to_string(), "Ankle boot".to_string()];
        let out = caption_rows(&grid, 28, 2, &labels).unwrap();
        assert_eq!((out.height, out.channels), (grid.height, 1));
        let margin = out.width - grid.width;
        assert_eq!(margin, 12 + text_width("T-shirt/top").max(text_width("Ankle boot")));
        assert!((50..90).contains(&text_width("T-shirt/top")), "{}", text_width("T-shirt/top"));
        // The grid is intact on the right; the strip has text pixels on each row's band.
        for y in 0..grid.height {
            assert_eq!(
                &out.pixels[y * out.width + margin..][..grid.width],
                &grid.pixels[y * grid.width..][..grid.width]
            );
        }
        let lit = |y0: usize, y1: usize| {
            (y0..y1)
                .flat_map(|y| (0..margin).map(move |x| (x, y)))
                .filter(|&(x, y)| out.pixels[y * out.width + x] > 100)
                .count()
        };
        assert!(lit(2, 30) > 20 && lit(32, 60) > 20, "captions not drawn");
        // A colour grid stays colour.
        let colour = crate::images::grid(&[0.5f32; 3 * 16], Shape::new(3, 4, 4), 1, 1);
        assert_eq!(caption_rows(&colour, 4, 1, &labels[..1]).unwrap().channels, 3);
    }
}
