//! Captions around an image grid, so a picture says what it shows: a title, a label beside
//! each row (a cvae's class, a traversed dimension), one below each column (a swept value)
//! and a footer.

use super::*;
use crate::images::Image;

/// Height in pixels of caption text.
const TEXT: u32 = 13;
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
    super::text::width(text, TEXT as f64)
}

/// `s` cut to at most `max` pixels wide with an ellipsis, at a word boundary (a space, `-`,
/// `_` or `.`) when one falls in its second half.
fn shorten(s: &str, max: usize) -> String {
    if text_width(s) <= max {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    let fits = |n: usize| text_width(&format!("{}…", chars[..n].iter().collect::<String>())) <= max;
    let mut n = chars.len();
    while n > 1 && !fits(n) {
        n -= 1;
    }
    // A word ends at i if a boundary character follows it (or nothing does).
    let ends_word = |i: usize| i == chars.len() || matches!(chars[i], ' ' | '-' | '_' | '.');
    let cut = (n / 2..=n).rev().find(|&i| ends_word(i)).unwrap_or(n);
    format!("{}…", chars[..cut].iter().collect::<String>().trim_end())
}

/// Widest a row label's line may be, in pixels.
const ROW_WIDTH: usize = 200;

/// A row label as one line, or two (broken at the last word boundary that fits) when it
/// is wider than [`ROW_WIDTH`] and `two` lines fit the row; what is still too long is
/// shortened at a word boundary.
fn row_lines(label: &str, two: bool) -> Vec<String> {
    if text_width(label) <= ROW_WIDTH || !two {
        return vec![shorten(label, ROW_WIDTH)];
    }
    let chars: Vec<char> = label.chars().collect();
    let first_fits = |i: usize| text_width(&chars[..i].iter().collect::<String>()) <= ROW_WIDTH;
    let breaks = (1..chars.len()).filter(|&i| matches!(chars[i - 1], ' ' | '-' | '_') || chars[i] == '(');
    let mut fitting = breaks.filter(|&i| first_fits(i)).collect::<Vec<_>>();
    let longest = || (1..chars.len()).rev().find(|&i| first_fits(i)).unwrap_or(1);
    let at = fitting.pop().unwrap_or_else(longest);
    let (a, b): (String, String) = (chars[..at].iter().collect(), chars[at..].iter().collect());
    vec![a.trim_end().to_string(), shorten(b.trim_start(), ROW_WIDTH)]
}

/// `grid` (cells of `cell` = (height, width) pixels after `padding`) with `captions` drawn
/// around it in light grey on black: the title above, row labels on the left (in two lines
/// where they are long and the rows tall enough), column labels below (on two staggered
/// lines where they are wider than a cell, each then shortened to two cells) and the
/// footer. The canvas widens to fit the title. A grey grid stays grey.
///
/// # Errors
/// Font or drawing errors.
pub fn annotate(grid: &Image, cell: (usize, usize), padding: usize, captions: &Captions) -> Result<Image, PlotError> {
    ensure_font()?;
    let (cell_h, cell_w) = cell;
    let two_rows = cell_h + padding >= 2 * TEXT as usize + 2;
    let rows: Vec<Vec<String>> = captions.rows.iter().map(|s| row_lines(s, two_rows)).collect();
    let longest = rows.iter().flatten().map(|l| text_width(l)).max().unwrap_or(0);
    // Column labels: one line if each fits its cell, else two staggered lines.
    let pitch = cell_w + padding;
    let stagger = captions.columns.iter().any(|l| text_width(l) + 4 > pitch);
    let columns: Vec<String> = match stagger {
        true => captions.columns.iter().map(|l| shorten(l, 2 * pitch - 4)).collect(),
        false => captions.columns.clone(),
    };
    // Room on the left for the row labels, and for column labels centred on the first cells.
    let centre = |c: usize| padding + c * pitch + cell_w / 2;
    let overhang = columns.iter().enumerate().map(|(c, l)| (text_width(l) / 2 + 3).saturating_sub(centre(c)));
    let left = if rows.is_empty() { 0 } else { (12 + longest).max(16) }.max(overhang.max().unwrap_or(0));
    let right = columns.iter().enumerate().map(|(c, l)| left + centre(c) + text_width(l) / 2 + 3).max().unwrap_or(0);
    let column_lines = if columns.is_empty() {
        0
    } else if stagger {
        2
    } else {
        1
    };
    let top = if captions.title.is_some() { STRIP } else { 0 };
    let line = TEXT as usize + 3;
    let labels_height = if column_lines == 0 { 0 } else { STRIP + (column_lines - 1) * line };
    let bottom = labels_height + usize::from(captions.footer.is_some()) * STRIP;
    let line_width = |t: &Option<String>| t.as_ref().map_or(0, |t| text_width(t) + 12);
    let w = (left + grid.width).max(right).max(line_width(&captions.title)).max(line_width(&captions.footer));
    let h = top + grid.height + bottom;
    let mut buf = vec![0u8; w * h * 3];
    let draw_err = |e: &dyn std::fmt::Display| PlotError::Draw { chart: "captions".into(), message: e.to_string() };
    {
        let root = super::text::Crisp(BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32))).into_drawing_area();
        let style =
            |h: HPos, v: VPos| (FONT, TEXT).into_text_style(&root).color(&RGBColor(215, 215, 215)).pos(Pos::new(h, v));
        if let Some(title) = &captions.title {
            root.draw_text(title, &style(HPos::Left, VPos::Center), (6, (STRIP / 2) as i32))
                .map_err(|e| draw_err(&e))?;
        }
        for (r, lines) in rows.iter().enumerate() {
            let y = top + padding + r * (cell_h + padding) + cell_h / 2;
            if y >= top + grid.height {
                break;
            }
            for (i, text) in lines.iter().enumerate() {
                let dy = (2 * i as i32 - (lines.len() as i32 - 1)) * line as i32 / 2;
                root.draw_text(text, &style(HPos::Right, VPos::Center), (left as i32 - 6, y as i32 + dy))
                    .map_err(|e| draw_err(&e))?;
            }
        }
        for (c, label) in columns.iter().enumerate() {
            let x = left + centre(c);
            let y = top + grid.height + STRIP / 2 + if stagger && c % 2 == 1 { line } else { 0 };
            root.draw_text(label, &style(HPos::Center, VPos::Center), (x as i32, y as i32))
                .map_err(|e| draw_err(&e))?;
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

    /// Names wider than their cells go on two staggered lines: every one is drawn (none
    /// thinned out), the first not clipped at the left edge nor the last at the right.
    #[test]
    fn wide_column_labels_are_staggered_and_all_drawn() {
        let names: Vec<String> =
            ["actions", "apps", "categories", "devices", "emblems", "emotes", "mimetypes", "places", "status"]
                .map(String::from)
                .to_vec();
        let grid = crate::images::grid(&vec![0.0f32; 9 * 3 * 32 * 32], Shape::new(3, 32, 32), 9, 2);
        let captions = Captions { columns: names.clone(), ..Captions::default() };
        let out = annotate(&grid, (32, 32), 2, &captions).unwrap();
        assert_eq!(out.height, grid.height + STRIP + TEXT as usize + 3, "two lines of labels");
        let left = (text_width("actions") / 2 + 3).saturating_sub(2 + 16);
        assert!(left > 0 && out.width >= left + grid.width, "room on the left: {} for {}", out.width, grid.width);
        // Ink below each column's centre, on the line its parity puts it.
        let lit = |x0: usize, y0: usize| {
            (y0.saturating_sub(5)..y0 + 5)
                .flat_map(|y| (x0 - 6..x0 + 6).map(move |x| (x, y)))
                .filter(|&(x, y)| out.pixels[(y * out.width + x) * 3] > 100)
                .count()
        };
        for (c, name) in names.iter().enumerate() {
            let x = out.width - grid.width + 2 + c * 34 + 16;
            let y = grid.height + STRIP / 2 + if c % 2 == 1 { TEXT as usize + 3 } else { 0 };
            assert!(lit(x, y) > 5, "label {c} ({name}) not drawn");
        }
        // Labels that fit their cells stay on one line.
        let narrow = Captions { columns: (0..9).map(|c| c.to_string()).collect(), ..Captions::default() };
        assert_eq!(annotate(&grid, (32, 32), 2, &narrow).unwrap().height, grid.height + STRIP);
    }

    /// A long row label breaks at a word boundary into two lines where the row is tall
    /// enough, and is shortened at a word boundary where it is not.
    #[test]
    fn long_row_labels_wrap_or_shorten_at_word_boundaries() {
        let long = "preferences-desktop-accessibility.png (places)";
        assert!(text_width(long) > ROW_WIDTH);
        assert_eq!(row_lines(long, true), ["preferences-desktop-", "accessibility.png (places)"]);
        let one = row_lines(long, false);
        assert_eq!(one.len(), 1);
        assert!(one[0].ends_with('…') && text_width(&one[0]) <= ROW_WIDTH, "{one:?}");
        assert!(!one[0].contains("accessi…"), "cut mid-word: {one:?}");
        assert_eq!(row_lines("kate.png (apps)", true), ["kate.png (apps)"]);
        assert_eq!(shorten("mimetypes", 1000), "mimetypes");
        assert_eq!(shorten("a-b-c-d-e-f-g-h-i-j", text_width("a-b-c-d-e…")), "a-b-c-d-e…");
    }
}
