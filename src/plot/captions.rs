//! Captions beside the rows of an image grid: a cvae's sample grid says which class each
//! row shows.

use super::*;
use crate::images::Image;

/// Height in pixels of caption text.
const TEXT: u32 = 13;

/// `grid` with a strip on its left holding `labels[r]` centred on grid row `r` (rows of
/// `cell` pixels after `padding`), in light grey on the grid's black. The strip is as wide
/// as the longest label (names past 24 characters are shortened). A grey grid stays grey.
///
/// # Errors
/// Font or drawing errors.
pub fn caption_rows(grid: &Image, cell: usize, padding: usize, labels: &[String]) -> Result<Image, PlotError> {
    ensure_font()?;
    let short = |s: &String| {
        if s.chars().count() > 24 { format!("{}…", s.chars().take(23).collect::<String>()) } else { s.clone() }
    };
    let labels: Vec<String> = labels.iter().map(short).collect();
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let margin = (8 + 8 * longest).max(16) as u32;
    let (w, h) = (grid.width as u32 + margin, grid.height as u32);
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let style = (FONT, TEXT)
            .into_text_style(&root)
            .color(&RGBColor(215, 215, 215))
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (r, label) in labels.iter().enumerate() {
            let y = padding + r * (cell + padding) + cell / 2;
            if y >= h as usize {
                break;
            }
            root.draw_text(label, &style, (margin as i32 - 6, y as i32))
                .map_err(|e| PlotError::Draw { chart: "captions".into(), message: e.to_string() })?;
        }
        root.present().map_err(|e| PlotError::Draw { chart: "captions".into(), message: e.to_string() })?;
    }
    // The grid to the right of the strip.
    let ch = grid.channels;
    for y in 0..grid.height {
        for x in 0..grid.width {
            let src = &grid.pixels[(y * grid.width + x) * ch..][..ch];
            let dst = &mut buf[(y * w as usize + margin as usize + x) * 3..][..3];
            if ch == 3 { dst.copy_from_slice(src) } else { dst.fill(src[0]) }
        }
    }
    let pixels = if ch == 3 { buf } else { buf.chunks_exact(3).map(|p| p[0].max(p[1]).max(p[2])).collect() };
    Ok(Image { width: w as usize, height: h as usize, channels: ch, pixels })
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
        assert_eq!(margin, 8 + 8 * 11);
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
